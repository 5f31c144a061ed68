#!/usr/bin/env bash
# Builds the documentation site, offline and strictly:
#   docs/build.sh [OUT_DIR]        (default build/docs; the site is OUT_DIR/site)
# 1. renders docs/frame_journey.dot (Graphviz) to SVG,
# 2. generates the API reference from the headers' doc comments (Doxygen;
#    an undocumented public name or any other warning fails),
# 3. stages docs/ with both, then `mkdocs build --strict` (a broken link, a
#    page missing from the files or a snippet that does not exist fails).
# Needs: mkdocs (>= 1.4), mkdocs-material, doxygen, graphviz (Debian packages
# of those names). Also `cmake --build <build> --target docs`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/build/docs}" && cd "${1:-$root/build/docs}" && pwd)"
MKDOCS="${MKDOCS:-mkdocs}"
for tool in "$MKDOCS" doxygen dot; do
  command -v "$tool" >/dev/null || { echo "docs/build.sh: $tool not found (Debian packages: mkdocs mkdocs-material doxygen graphviz)" >&2; exit 2; }
done
cd "$root"
stage="$out/src"
rm -rf "$stage" "$out/site" "$out/doxygen"
mkdir -p "$stage"
cp -r docs/. "$stage/"
rm -f "$stage/build.sh" "$stage/Doxyfile" "$stage/check_readme.cmake" "$stage/expand_sections.py"
# Section snippets ("file:name"), which Debian's pymdownx 9.5 lacks.
"${PYTHON:-python3}" docs/expand_sections.py "$stage" "$root"

# 1. The picture of a frame's journey.
mkdir -p "$stage/images"
dot -Tsvg docs/frame_journey.dot -o "$stage/images/frame_journey.svg"

# 2. The API reference (HTML), linked from api.md as api/index.html.
(cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $out/doxygen") | doxygen - >"$out/doxygen.log" 2>&1 || {
  cat "$out/doxygen.log" >&2
  echo "docs/build.sh: doxygen failed (every warning is an error: document the names above)" >&2
  exit 1
}
cp -r "$out/doxygen/html" "$stage/api"
# The benchmark plots the performance page shows.
mkdir -p "$stage/bench"
cp bench/*.png "$stage/bench/" 2>/dev/null || true

# 3. The site. The config is the repository's, pointed at the staged pages;
#    snippets stay relative to the repository root (the working directory).
cfg="$out/mkdocs.yml"
sed -e "s|^docs_dir: docs$|docs_dir: $stage|" mkdocs.yml >"$cfg"
echo "site_dir: $out/site" >>"$cfg"
status=0
"$MKDOCS" build --strict --config-file "$cfg" >"$out/mkdocs.log" 2>&1 || status=$?
# (Debian's jinja2 prints a DeprecationWarning traceback at INFO level: noise.)
grep -v -E 'DeprecationWarning|jinja2/lexer.py|self.current = next|unicode-escape|^\s*$' "$out/mkdocs.log" >&2 || true
if ((status != 0)); then
  echo "docs/build.sh: mkdocs build --strict failed" >&2
  exit 1
fi
echo "docs/build.sh: site in $out/site (open $out/site/index.html)"

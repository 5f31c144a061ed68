#!/usr/bin/env python3
"""Expands section snippets in the staged documentation pages.

    --8<-- "examples/x.cpp:name"

includes the lines of examples/x.cpp between the markers `--8<-- [start:name]`
and `--8<-- [end:name]` (the marker lines themselves left out), as newer
pymdownx.snippets does. Debian 12's pymdownx 9.5 includes whole files only,
so docs/build.sh runs this first; whole-file snippets are left to pymdownx.
Strict: a missing file or section fails the build, naming the page and line.

usage: expand_sections.py STAGE_DIR REPO_ROOT
"""
import pathlib
import re
import sys

SNIPPET = re.compile(r'^(\s*)--8<-- "([^"]+):([A-Za-z_][A-Za-z0-9_-]*)"\s*$')


def section(path: pathlib.Path, name: str) -> list:
    lines = path.read_text().splitlines()
    start = [i for i, l in enumerate(lines) if re.search(r'--8<-- \[start:' + re.escape(name) + r'\]', l)]
    end = [i for i, l in enumerate(lines) if re.search(r'--8<-- \[end:' + re.escape(name) + r'\]', l)]
    if len(start) != 1 or len(end) != 1 or end[0] <= start[0]:
        raise LookupError(f"{path}: section '{name}' needs exactly one [start:{name}] and one later [end:{name}] marker")
    body = [l for l in lines[start[0] + 1:end[0]] if '--8<-- [' not in l]  # nested markers are not code
    indent = min((len(l) - len(l.lstrip()) for l in body if l.strip()), default=0)
    return [l[indent:] for l in body]


def main() -> int:
    stage, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    failed = False
    for page in sorted(stage.rglob('*.md')):
        out, changed = [], False
        for number, line in enumerate(page.read_text().splitlines(), 1):
            m = SNIPPET.match(line)
            if not m:
                out.append(line)
                continue
            try:
                out.extend(m.group(1) + l for l in section(root / m.group(2), m.group(3)))
                changed = True
            except (OSError, LookupError) as e:
                print(f"docs/expand_sections.py: {page.relative_to(stage)}:{number}: {e}", file=sys.stderr)
                failed = True
        if changed:
            page.write_text('\n'.join(out) + '\n')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

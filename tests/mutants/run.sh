#!/usr/bin/env bash
# The mutation suite (tests/mutants/README.md): every mutant in mutants.txt
# applied to a scratch copy of the tree, the check it names built and run,
# killed / survived reported. Exits non-zero if any mutant survives, is
# stale (its line not found exactly once) or does not compile.
#   tests/mutants/run.sh --all        # the whole table
#   tests/mutants/run.sh --ci         # the CI subset (<= 5 min on 2 cores)
#   tests/mutants/run.sh --only ID    # one mutant (repeatable)
#   tests/mutants/run.sh --list       # the table
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec python3 "$here/mutate.py" "$@"

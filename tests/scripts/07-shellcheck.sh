#!/usr/bin/env bash
# The bash scripts and these tests are shellcheck-clean; the Python ones compile.
set -euo pipefail
# shellcheck source=tests/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd shellcheck python3

cd "$repo"
shellcheck -x scripts/load scripts/profile scripts/test .ci/run tests/scripts/run-all tests/scripts/lib.sh tests/scripts/[0-9][0-9]-*.sh
for s in scripts/tune-kernel scripts/queue-stats scripts/bench-compare; do
    python3 -c 'import ast,sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$s" || fail "$s does not parse"
done
for s in scripts/load scripts/profile scripts/test; do
    grep -q '^set -euo pipefail$' "$s" || fail "$s lacks set -euo pipefail"
done
note "shellcheck clean"

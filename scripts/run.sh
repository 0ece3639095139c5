#!/usr/bin/env bash
# Install what is missing to build and run (not the test tools: scripts/test.sh installs
# those), build shoal, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --run
# without the tests unless a test run set the build up already (cmocka is a test tool)
[ -d build ] || meson setup build -Dtests=false >/dev/null
ninja -C build
exec build/tools/shoal run "$@"

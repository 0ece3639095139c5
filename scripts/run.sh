#!/usr/bin/env bash
# Install what is missing, build shoal, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build
exec build/tools/shoal run "$@"

#!/usr/bin/env bash
# Install what shoal builds and tests with, if missing (Debian 12, as root).
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config liburing-dev libnuma-dev libhwloc-dev
	libcmocka-dev libinih-dev libjansson-dev clang libclang-rt-14-dev clang-format git)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

#!/usr/bin/env bash
# Install what shoal builds and tests with, if missing (Debian 12, as root).
#   --run     only what building and running shoal needs (scripts/run.sh): no test tools
#   --arm64   instead: what the arm64 cross build needs (scripts/test.sh --cross): Debian's
#             cross compiler and, through multiarch, the arm64 builds of the libraries
set -euo pipefail
# building and running: the compiler and meson, the libraries, scdoc for the man page,
# erlang-dev for libei (the Erlang distribution gateway, [dist]), libmicrohttpd for shoal
# metrics --listen (both optional to the build: -Ddist=auto, -Dmetrics_http=auto)
run_pkgs=(build-essential meson ninja-build pkg-config liburing-dev libnuma-dev libhwloc-dev
	libinih-dev libjansson-dev libncurses-dev libmicrohttpd-dev scdoc erlang-dev)
# testing too: cmocka, tmux (shoal top in a real terminal), clang and its libFuzzer runtime,
# clang-format (the style check), git, erlang-nox (a real BEAM node for the [dist] tests)
pkgs=("${run_pkgs[@]}" libcmocka-dev tmux clang libclang-rt-14-dev clang-format git erlang-nox)
arm64=0
for a in "$@"; do
	case "$a" in
	--run) pkgs=("${run_pkgs[@]}") ;;
	--arm64) arm64=1 ;;
	*) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
if [ "$arm64" = 1 ]; then
	pkgs=(gcc-aarch64-linux-gnu liburing-dev:arm64 libnuma-dev:arm64 libhwloc-dev:arm64
		libinih-dev:arm64 libjansson-dev:arm64 libcmocka-dev:arm64 libncurses-dev:arm64)
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		echo "adding the arm64 architecture to dpkg (multiarch)"
		dpkg --add-architecture arm64
	fi
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	if [ "$arm64" = 1 ]; then
		# An arm64 library must be the same version as its amd64 twin (Multi-Arch: same),
		# so apt may upgrade amd64 packages to match; it must never remove one.
		plan=$(apt-get -s install --no-install-recommends "${missing[@]}")
		if grep -q '^Remv' <<<"$plan"; then
			echo "deps.sh: installing the arm64 libraries would remove these packages:" >&2
			grep '^Remv' <<<"$plan" >&2
			echo "deps.sh: nothing installed; install the arm64 packages by hand" \
				"(apt-get install ${missing[*]}) if that is acceptable" >&2
			exit 3
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}"
	else
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	fi
fi

#!/usr/bin/env bash
# Install what is missing, build shoal with -Werror, run every test (meson test), then the
# libFuzzer target of the segment validator for a bounded number of runs (clang).
#   --sanitize   the same tests built with AddressSanitizer + UBSan (build-asan/)
#   --soak       also run the long soak/stress suite
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
dir=build
opts=(-Dwerror=true -Dtests=true)
sanitize=0
for a in "$@"; do
	case "$a" in
	--sanitize) sanitize=1 ;;
	--soak) opts+=(-Dsoak=true) ;;
	*) echo "test.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
if [ "$sanitize" = 1 ]; then
	dir=build-asan
	opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
	meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir"
meson test -C "$dir" --print-errorlogs --num-processes 2
if [ "$sanitize" = 0 ]; then
	# the layout STYLE.md asks for, as .clang-format states it
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
	echo "clang-format: every C file conforms"
	# meson install gives other programs what they need to build against shoal
	bash tests/install_check.sh "$dir"
	# the validator under libFuzzer (clang, ASan+UBSan), bounded
	if [ -d build-fuzz ]; then
		CC=clang meson setup --reconfigure build-fuzz -Dfuzz=true -Dtests=false >/dev/null
	else
		CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false >/dev/null
	fi
	ninja -C build-fuzz fuzz/fuzz_validate
	meson test -C build-fuzz --print-errorlogs --suite fuzz
fi

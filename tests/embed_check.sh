#!/usr/bin/env bash
# The embedding example (examples/embed) builds with shoal as a meson subproject and runs:
# copy it to a scratch directory, put this source tree in its subprojects/shoal, build it
# (shoal's library from source, without its tests), then run it against a live instance.
# Usage: embed_check.sh SHOAL_BIN SOURCE_ROOT
set -euo pipefail
bin=$(realpath "$1") src=$(realpath "$2")
inst="t-embed-$$"
work=$(mktemp -d)
run=
trap 'rm -rf "$work"; "$bin" shutdown --instance "$inst" --wait --timeout 10000 >/dev/null 2>&1 || true; [ -z "$run" ] || kill "$run" 2>/dev/null || true' EXIT
cp -r "$src/examples/embed" "$work/app"
mkdir -p "$work/app/subprojects"
ln -s "$src" "$work/app/subprojects/shoal"
# an installed shoal must not be found first: the subproject is what is checked here
meson setup "$work/build" "$work/app" --wrap-mode=nodownload --force-fallback-for=shoal \
	>"$work/setup.log" 2>&1 || {
	cat "$work/setup.log" >&2
	echo "embed_check: meson setup of the example failed" >&2
	exit 1
}
grep -q "Dependency shoal found: YES .*(overridden)" "$work/setup.log" || {
	cat "$work/setup.log" >&2
	echo "embed_check: dependency('shoal') did not resolve to the subproject" >&2
	exit 1
}
ninja -C "$work/build" embed >"$work/build.log" 2>&1 || {
	tail -30 "$work/build.log" >&2
	echo "embed_check: building the example failed" >&2
	exit 1
}
printf '[instance]\nworkers = 1\nstatus_interval = 0\n' >"$work/cfg.ini"
exec 4< <(exec "$bin" run "$work/cfg.ini" --instance "$inst" --quiet --ready-fd 1 2>/dev/null)
run=$!
read -r -t 15 line <&4 || true
if [ "${line:-}" != ready ]; then
	echo "embed_check: the instance did not become ready" >&2
	exit 1
fi
out=$("$work/build/embed" "$inst" 2>&1) || {
	echo "embed_check: the example failed: $out" >&2
	exit 1
}
echo "$out"
case "$out" in
*"answered 'ping'"*) ;;
*)
	echo "embed_check: the example said '$out'" >&2
	exit 1
	;;
esac
"$bin" shutdown --instance "$inst" --wait --timeout 10000
wait "$run"
run=
echo "embed check: ok"

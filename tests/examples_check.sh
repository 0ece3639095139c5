#!/usr/bin/env bash
# The examples work: run an instance that loads the example plugin (examples/hello), call its
# greeter with the example client, check the answer, stop the instance in order.
# Usage: examples_check.sh SHOAL_BIN PLUGIN CLIENT
set -euo pipefail
bin=$(realpath "$1") plugin=$(realpath "$2") client=$(realpath "$3")
inst="t-examples-$$"
cfg=$(mktemp)
run=
# whatever happens, no instance outlives the check: shut it down, and kill a run that was
# not up yet to be shut down
trap 'rm -f "$cfg"; "$bin" shutdown --instance "$inst" --wait --timeout 10000 >/dev/null 2>&1 || true; [ -z "$run" ] || kill "$run" 2>/dev/null || true' EXIT
printf '[instance]\nworkers = 1\nstatus_interval = 0\n[types]\nload = %s\n[agent greeter]\ntype = greeter\n' \
	"$plugin" >"$cfg"
# ready: the run writes "ready" to its --ready-fd (here its stdout) once every worker and
# agent is up; read waits for that line (15 s at most)
exec 4< <(exec "$bin" run "$cfg" --instance "$inst" --quiet --ready-fd 1 2>/dev/null)
run=$!
read -r -t 15 line <&4 || true
if [ "${line:-}" != ready ]; then
	echo "examples_check: the instance did not become ready" >&2
	exit 1
fi
out=$("$client" "$inst" world 2>&1) || true
echo "$out"
case "$out" in
"hello, world (greeting "*")") ;;
*)
	echo "examples_check: the client said '$out'" >&2
	exit 1
	;;
esac
"$bin" shutdown --instance "$inst" --wait --timeout 10000
wait "$run"
run=
trap 'rm -f "$cfg"' EXIT
echo "examples check: ok"

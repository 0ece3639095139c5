#!/usr/bin/env bash
# The examples work: run an instance that loads the example plugin (examples/hello), call its
# greeter with the example client, check the answer, stop the instance in order.
# Then the systemd unit example (examples/systemd) passes `systemd-analyze verify` with its
# ExecStart pointed at this build (where systemd-analyze is installed; said when not).
# Usage: examples_check.sh SHOAL_BIN PLUGIN CLIENT UNIT
set -euo pipefail
bin=$(realpath "$1") plugin=$(realpath "$2") client=$(realpath "$3") unit=$(realpath "$4")
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
if command -v systemd-analyze >/dev/null; then
	d=$(mktemp -d)
	trap 'rm -rf "$d" "$cfg"' EXIT
	sed "s#^ExecStart=/usr/local/bin/shoal #ExecStart=$bin #" "$unit" >"$d/shoal.service"
	grep -q "^ExecStart=$bin run " "$d/shoal.service" || {
		echo "examples_check: the unit's ExecStart is not '/usr/local/bin/shoal run ...'" >&2
		exit 1
	}
	systemd-analyze verify --man=no "$d/shoal.service"
	grep -q '^Type=notify$' "$unit" || {
		echo "examples_check: the unit is not Type=notify" >&2
		exit 1
	}
	echo "examples check: the systemd unit verifies"
else
	echo "examples check: systemd-analyze is not installed: the systemd unit was not verified"
fi
echo "examples check: ok"

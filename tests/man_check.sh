#!/usr/bin/env bash
# The man page covers the command: every subcommand `shoal --help` lists has its entry
# (*shoal NAME*) in docs/shoal.1.scd, and the built page is there and names each of them.
# Usage: man_check.sh SHOAL_BIN SCD_SOURCE BUILT_PAGE
set -euo pipefail
bin=$1 scd=$2 page=$3
[ -s "$page" ] || { echo "man_check: $page is missing or empty" >&2; exit 1; }
missing=0
for cmd in $("$bin" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
	if ! grep -q "^\*shoal $cmd\*" "$scd"; then
		echo "man_check: shoal $cmd has no entry in $scd" >&2
		missing=1
	fi
	if ! grep -q "shoal $cmd" "$page"; then
		echo "man_check: shoal $cmd is not in the built page $page" >&2
		missing=1
	fi
done
exit "$missing"

#!/usr/bin/env bash
# The bash completion (tools/shoal.bash) completes subcommands, options, instance names and
# the agent names of a live instance: each case drives _shoal as bash does (COMP_WORDS,
# COMP_CWORD) and checks COMPREPLY.
# Usage: completion_check.sh SHOAL_BIN COMPLETION_SCRIPT
set -euo pipefail
bin=$(realpath "$1") script=$(realpath "$2")
inst="t-compl-$$"
cfg=$(mktemp)
run=
trap 'rm -f "$cfg"; "$bin" shutdown --instance "$inst" --wait --timeout 10000 >/dev/null 2>&1 || true; [ -z "$run" ] || kill "$run" 2>/dev/null || true' EXIT
# shellcheck source=/dev/null
source "$script"
fail=0

# complete LINE (words split on spaces; a trailing space starts an empty word); sets REPLY_LIST
complete_line()
{
	local line=$1
	read -r -a COMP_WORDS <<<"$line"
	COMP_WORDS[0]=$bin
	[[ $line == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	# as bash runs it: without errexit (a failing lookup inside is an empty list)
	set +e
	_shoal
	set -e
	REPLY_LIST=" ${COMPREPLY[*]:-} "
}

# expect LINE WORD...: each WORD is among the completions of LINE
expect()
{
	local line=$1 w
	shift
	complete_line "$line"
	for w in "$@"; do
		if [[ $REPLY_LIST != *" $w "* ]]; then
			echo "completion_check: '$line<TAB>' gave [$REPLY_LIST], not '$w'" >&2
			fail=1
		fi
	done
}

# refuse LINE WORD: WORD is not among the completions of LINE
refuse()
{
	complete_line "$1"
	if [[ $REPLY_LIST == *" $2 "* ]]; then
		echo "completion_check: '$1<TAB>' offered '$2': [$REPLY_LIST]" >&2
		fail=1
	fi
}

expect "shoal " run inspect call var bench top shutdown
expect "shoal ins" inspect
refuse "shoal ins" run
expect "shoal inspect --" --json --names --instance --all
expect "shoal run --log-format " json text
expect "shoal bench " ipc registry coord

printf '[instance]\nworkers = 1\nstatus_interval = 0\n[agent e]\ntype = echo\ncount = 3\nname = echo-%%u\n' >"$cfg"
exec 4< <(exec "$bin" run "$cfg" --instance "$inst" --quiet --ready-fd 1 2>/dev/null)
run=$!
read -r -t 15 line <&4 || true
if [ "${line:-}" != ready ]; then
	echo "completion_check: the instance did not become ready" >&2
	exit 1
fi
expect "shoal inspect --instance t-compl-" "$inst"
expect "shoal call --instance $inst " echo-0 echo-1 echo-2
expect "shoal call --instance $inst echo-" echo-0 echo-2
# the payload after the name is no agent name
refuse "shoal call --instance $inst echo-1 " echo-0
SHOAL_INSTANCE=$inst expect "shoal monitor echo-0 " echo-1
"$bin" shutdown --instance "$inst" --wait --timeout 10000
wait "$run"
run=
[ $fail -eq 0 ] || exit 1
echo "completion check: ok"

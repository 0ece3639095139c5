# bash completion for shoal(1): subcommands, each subcommand's options, instance names (the
# segments in /dev/shm) and agent names (the registry of the instance the line names, through
# `shoal inspect --names`). Installed as share/bash-completion/completions/shoal.
#
# The subcommands and options are read from `shoal help` and `shoal COMMAND --help`, so the
# completion follows the binary it completes and cannot fall behind it.

# The instances on this machine: /dev/shm/shoal.NAME (not the wake FIFOs, NAME:wake.PID).
_shoal_instances()
{
	local f
	for f in /dev/shm/shoal.*; do
		[[ -e $f ]] || continue
		f=${f#/dev/shm/shoal.}
		[[ $f == *:* ]] && continue
		printf '%s\n' "$f"
	done
}

# The instance the command line names (--instance NAME or --instance=NAME), else
# $SHOAL_INSTANCE, else 'default', as the commands themselves decide.
_shoal_instance_of_line()
{
	local i
	for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
		case ${COMP_WORDS[i]} in
		--instance=*)
			printf '%s\n' "${COMP_WORDS[i]#--instance=}"
			return
			;;
		--instance)
			printf '%s\n' "${COMP_WORDS[i + 1]}"
			return
			;;
		esac
	done
	printf '%s\n' "${SHOAL_INSTANCE:-default}"
}

_shoal()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local bin=${COMP_WORDS[0]} cmd="" i npos=0 words
	COMPREPLY=()

	# the subcommand: the first word after the binary that is not an option
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} != -* ]]; then
			if [[ -z $cmd ]]; then
				cmd=${COMP_WORDS[i]}
			elif [[ ${COMP_WORDS[i - 1]} != --instance && ${COMP_WORDS[i - 1]} != --timeout ]]; then
				npos=$((npos + 1)) # a positional argument of the subcommand
			fi
		fi
	done
	if [[ -z $cmd ]]; then
		words=$("$bin" help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
		mapfile -t COMPREPLY < <(compgen -W "$words help" -- "$cur")
		return
	fi
	case $prev in
	--instance)
		mapfile -t COMPREPLY < <(compgen -W "$(_shoal_instances)" -- "$cur")
		return
		;;
	--log-format)
		mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
		return
		;;
	--textfile)
		# shoal metrics --textfile PATH
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		words=$("$bin" "$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
		return
	fi
	case $cmd in
	call | send | stop | monitor)
		# the agent: call/send/stop take one name first, monitor any number
		if [[ $cmd == monitor || $npos -eq 0 ]]; then
			words=$("$bin" inspect --names --instance "$(_shoal_instance_of_line)" 2>/dev/null)
			mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
		fi
		;;
	bench)
		if [[ $npos -eq 0 ]]; then
			words=$("$bin" bench --help 2>/dev/null | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
			mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
		fi
		;;
	run)
		# a config file
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		;;
	esac
}
complete -F _shoal shoal

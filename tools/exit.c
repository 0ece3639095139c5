/*
 * The one mapping from an -errno to the shoal command's exit code, for every subcommand:
 *   0  ok;
 *   1  a check failed: a wait that timed out (-ETIMEDOUT), a call dropped as a poison
 *      message (-ECANCELED), a compare-and-set that lost (-EBUSY); commands also return it for an
 * agent's error reply and a missed benchmark target, which no errno tells apart; 2  usage or bad
 * input: a bad argument or config (-EINVAL, -ENAMETOOLONG, -EMSGSIZE, -ELIBBAD a type library that
 * does not load, -EPROTOTYPE a value of another type than its variable's), an unknown instance or
 * agent
 *      (-ENOENT, -ESTALE), one that exists already (-EEXIST), a bad, foreign or truncated
 *      segment (the validator's -EBADMSG, -EPROTO, -EPROTONOSUPPORT, -EUCLEAN, -ERANGE,
 *      -EDOM, -ENOEXEC, -EPERM/-EACCES not ours, -ENXIO another instance's name, -EFAULT
 *      unreadable), a path that is not what it should be (-ENOTDIR, -EISDIR);
 *   3  a system failure: everything else, including any errno not listed here.
 */
#include <errno.h>

#include "tools/tools.h"

/* See tools.h. */
int tool_exit_for(int err)
{
	switch (-err) {
	case 0:
		return EXIT_OK;
	case ETIMEDOUT:
	case ECANCELED:
	case EBUSY:
		return EXIT_CHECK;
	case EINVAL:
	case ENAMETOOLONG:
	case EMSGSIZE:
	case ELIBBAD:
	case EPROTOTYPE:
	case ENOENT:
	case ESTALE:
	case EEXIST:
	case EBADMSG:
	case EPROTO:
	case EPROTONOSUPPORT:
	case EUCLEAN:
	case ERANGE:
	case EDOM:
	case ENOEXEC:
	case EPERM:
	case EACCES:
	case ENXIO:
	case EFAULT:
	case ENOTDIR:
	case EISDIR:
		return EXIT_USAGE;
	default:
		return EXIT_SYSTEM;
	}
}

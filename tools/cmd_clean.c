/* shoal clean: remove a stale instance. Idempotent; refuses a live instance. */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ipc/ipc.h"
#include "shm/shm.h"
#include "shm/view.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal clean [--instance NAME] [--force]\n"
		   "Removes the segment of an instance whose supervisor is gone (stale) or that\n"
		   "was stopped and kept, or that its creator left half-created (it died before\n"
		   "publishing it), and says what it threw away (agents, queued messages,\n"
		   "checkpoints). To keep those, run the instance again on its configuration\n"
		   "instead: 'shoal run' adopts a dead supervisor's segment. Refuses a live\n"
		   "instance, and one being created. Nothing to remove is success.\n"
		   "  --force  also remove a segment that fails validation (corrupt, foreign "
		   "layout)\n");
}

/* Say what a removal did; a CLI exit code. */
static int report_removal(const char *instance, int ret, const char *what)
{
	if (ret == -ESTALE) {
		printf("instance '%s': not removed: since the %s segment was looked at, its name "
		       "was taken by another file (a new instance); left that alone\n",
		       instance, what);
		return EXIT_OK;
	}
	if (ret == -ENOENT) {
		printf("instance '%s': nothing to clean (removed meanwhile)\n", instance);
		return EXIT_OK;
	}
	if (ret) {
		fprintf(stderr, "shoal clean: removing '%s': %s\n", instance, strerror(-ret));
		return EXIT_SYSTEM;
	}
	printf("instance '%s': removed the %s segment\n", instance, what);
	return EXIT_OK;
}

/* Remove the file judged unreadable: the one seen before attaching, if still in place. */
static int remove_seen(const char *instance, const struct stat *seen, const char *what)
{
	return report_removal(instance, shm_seg_unlink_if(instance, seen->st_dev, seen->st_ino),
			      what);
}

/* What a removal throws away, read (through the guard) before it. */
struct contents {
	struct shm_view *v; /* the snapshot it is counted from */
	enum shm_liveness l;
	uint32_t state; /* enum shm_inst_state */
	uint32_t agents, checkpoints;
	uint64_t queued;
};

static int read_contents(const struct shm_seg *seg, void *arg)
{
	struct contents *c = arg;
	int ret;

	ret = shm_view_create(seg, &c->v);
	if (ret)
		return ret;
	/* liveness without a heartbeat limit: gone or not is all clean asks */
	ret = shm_view_take(seg, 0, c->v);
	if (ret)
		return ret;
	c->l = c->v->hdr.liveness;
	c->state = c->v->hdr.state;
	if (!c->v->hdr.published)
		return 0; /* never published: nothing in it was anyone's */
	for (uint32_t i = 0; i < c->v->nagents; i++) {
		const struct shm_view_agent *a = &c->v->agents[i];

		if (a->state == SHM_AGENT_STOPPED)
			continue;
		/* mailboxes are no table: ipc/ reads them */
		c->queued += ipc_mbox_depth(seg, a->slot);
		/* inboxes (the supervisor's control inbox, clients') are no agents */
		if (!strcmp(a->type, "control") || !strcmp(a->type, "client"))
			continue;
		c->agents++;
		c->checkpoints += a->ckpt_len != 0;
	}
	return 0;
}

int cmd_clean(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	bool force = false;
	struct shm_seg *seg;
	struct contents what = {0};
	enum shm_liveness l;
	struct stat seen;
	char err[512];
	int c, ret, ex;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	/* the identity of what we judge: removed only if the name still names it */
	ret = shm_seg_stat(instance, &seen);
	if (ret == -ENOENT) {
		printf("instance '%s': nothing to clean\n", instance);
		return EXIT_OK;
	}
	if (ret == -EINVAL) {
		fprintf(stderr, "shoal clean: instance name '%s': use 1..%u of A-Z a-z 0-9 _ . -\n",
			instance, SHM_INSTANCE_MAX - 1);
		return EXIT_USAGE;
	}
	/* a creator that died before publishing: recognisable without reading further */
	ret = shm_seg_remove_abandoned(instance, err, sizeof(err));
	if (ret == 0) {
		printf("instance '%s': removed %s\n", instance, err);
		return EXIT_OK;
	}
	if (ret == -EINPROGRESS) {
		fprintf(stderr, "shoal clean: %s; not removed\n", err);
		return EXIT_USAGE;
	}
	ret = shm_seg_attach(instance, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY, 0,
			     &seg, err, sizeof(err));
	if (ret == -ENOENT) {
		printf("instance '%s': nothing to clean\n", instance);
		return EXIT_OK;
	}
	if (ret == -EINVAL) {
		fprintf(stderr, "shoal clean: %s\n", err);
		return EXIT_USAGE;
	}
	if (ret) {
		if (!force) {
			fprintf(stderr,
				"shoal clean: %s\nnot removed: use --force to remove an unreadable "
				"segment\n",
				err);
			return tool_exit_for(ret);
		}
		return remove_seen(instance, &seen, "unreadable (--force)");
	}
	/* these reads go through the mapping: a page that cannot be backed is an unreadable
	 * segment, not a SIGBUS */
	ret = shm_seg_guard(seg, read_contents, &what, NULL);
	shm_view_free(what.v);
	l = what.l;
	if (ret) {
		shm_seg_detach(seg);
		if (!force) {
			fprintf(stderr,
				"shoal clean: instance '%s': its segment cannot be read (%s)\nnot "
				"removed: use --force to remove an unreadable segment\n",
				instance,
				ret == -EUCLEAN ? "its region table does not fit it"
				: ret == -EFAULT
					? "truncated, or a hole a full /dev/shm cannot back"
					: strerror(-ret));
			return EXIT_USAGE;
		}
		return remove_seen(instance, &seen, "unreadable (--force)");
	}
	if (l == SHM_LIVE_OK || l == SHM_LIVE_UNRESPONSIVE) {
		fprintf(stderr,
			"shoal clean: instance '%s' is live (supervisor pid %u); stop it first "
			"with 'shoal shutdown --instance %s --wait'\n",
			instance, atomic_load(&shm_hdr(seg)->sup_pid), instance);
		shm_seg_detach(seg);
		return EXIT_USAGE;
	}
	/* the file we attached to and judged, not whatever the name names by now */
	ret = shm_seg_remove(seg);
	shm_seg_detach(seg);
	ex = report_removal(instance, ret,
			    what.state == SHM_INST_SUP_DEAD ? "supervisor-dead"
							    : shm_liveness_name(l));
	if (!ret && what.agents)
		printf("threw away %u agents, %" PRIu64 " queued messages, %u checkpoints\n",
		       what.agents, what.queued, what.checkpoints);
	/* the wake FIFOs its killed processes left behind */
	ipc_wake_sweep();
	return ex;
}

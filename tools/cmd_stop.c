/* shoal stop NAME: orderly stop of an agent (terminate, names and groups removed). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal stop NAME [--wait [--timeout MS]] [--instance NAME]\n"
		   "Asks the agent registered as NAME to stop: its terminate callback runs, its\n"
		   "names, groups and monitors are removed, its monitors get DOWN, its slot is "
		   "freed.\n"
		   "  --wait        return once the stop is done (its name is free again)\n"
		   "  --timeout MS  how long --wait waits (default 5000); exit 1 past it\n");
}

/* The stop is done: the slot is free, or already another agent's. */
static bool agent_is_gone(const struct shm_seg *seg, shoal_handle_t h)
{
	return wrk_agent_get(seg, h) == NULL;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	struct tool_client cl;
	shoal_handle_t h;
	long timeout = 5000;
	bool wait = false;
	int c, rc, ex;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:wt:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 't':
			if (tool_parse_timeout("stop", optarg, &timeout))
				return EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	ex = tool_client_open(&cl, "stop", instance, false);
	if (ex)
		return ex;
	ex = tool_client_lookup(&cl, argv[optind], &h);
	if (ex)
		goto out;
	rc = wrk_agent_stop(cl.seg, h);
	if (rc == 0 && wait) {
		if (tool_client_wait(&cl, agent_is_gone, h, timeout) == 0) {
			printf("%s: stopped\n", argv[optind]);
		} else {
			fprintf(stderr, "shoal stop: agent '%s' did not stop within %ld ms\n",
				argv[optind], timeout);
			ex = EXIT_CHECK;
		}
	} else if (rc == 0) {
		printf("%s: stop requested\n", argv[optind]);
	} else if (rc == -ENOENT || rc == -ESTALE) {
		fprintf(stderr, "shoal stop: agent '%s' is already gone\n", argv[optind]);
		ex = EXIT_USAGE;
	} else {
		fprintf(stderr, "shoal stop: %s\n", strerror(-rc));
		ex = EXIT_SYSTEM;
	}
out:
	tool_client_close(&cl);
	return ex;
}

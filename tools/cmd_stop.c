/* shoal stop NAME: orderly stop of an agent (terminate, names and groups removed). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal stop NAME [--instance NAME]\n"
		   "Asks the agent registered as NAME to stop: its terminate callback runs, its\n"
		   "names, groups and monitors are removed, its monitors get DOWN, its slot is "
		   "freed.\n");
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	struct tool_client cl;
	shoal_handle_t h;
	int c, rc, ex;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
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
	if (rc == 0) {
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

/* shoal monitor NAME... [--count N] [--timeout MS]: print the DOWN and UP notices of agents. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "shoal/client.h"
#include "tools/client.h"

#define MONITOR_MAX 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal monitor NAME... [--count N] [--timeout MS] [--instance NAME]\n"
		"Monitors the agents registered as NAME... and prints a line per notice, as it\n"
		"comes: 'NAME: down (REASON)' when one crashes, fails or stops, 'NAME: up' when\n"
		"it runs again after a restart. Prints 'watching NAME (handle H)' for each first,\n"
		"and ends (exit 0) when the instance stops.\n"
		"  --count N     exit 0 after N notices (default: run until interrupted)\n"
		"  --timeout MS  exit 1 if no notice came for MS ms (default: wait for ever)\n");
}

static const char *reason_name(uint32_t r)
{
	switch (r) {
	case SHOAL_DOWN_CRASH:
		return "crash: its worker died";
	case SHOAL_DOWN_FAILED:
		return "failed past its restart intensity";
	case SHOAL_DOWN_STOPPED:
		return "stopped";
	case SHOAL_DOWN_ERROR:
		return "a callback failed: restarting";
	default:
		return "?";
	}
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"count", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct tool_args a = {.timeout_ms = -1};
	shoal_handle_t h[MONITOR_MAX];
	uint64_t ref[MONITOR_MAX];
	struct shoal_client *c;
	char err[512], buf[64];
	long count = -1, seen = 0; /* -1: until interrupted */
	int ex, n, rc;

	ex = tool_client_args("monitor", argc, argv, opts, "i:n:t:h", 't', -1, usage,
			      tool_count_opt, &count, &a);
	if (ex >= 0)
		return ex;
	if (count == 0) {
		fprintf(stderr,
			"shoal monitor: --count 0 would wait for no notice; give at least 1, "
			"or leave it out to watch until interrupted\n");
		return EXIT_USAGE;
	}
	n = argc - optind;
	if (n > MONITOR_MAX) {
		fprintf(stderr, "shoal monitor: at most %d names\n", MONITOR_MAX);
		return EXIT_USAGE;
	}
	rc = shoal_client_open(a.instance, &c, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shoal monitor: %s\n", err);
		return tool_exit_for(rc);
	}
	for (int i = 0; i < n; i++) {
		const char *name = argv[optind + i];

		rc = shoal_client_lookup(c, name, &h[i]);
		if (rc == 0)
			rc = shoal_client_monitor(c, h[i], &ref[i]);
		if (rc) {
			fprintf(stderr, "shoal monitor: '%s': %s\n", name,
				rc == -ENOENT ? "no agent of that name" : strerror(-rc));
			shoal_client_close(c);
			return rc == -ENOENT || rc == -ESTALE ? EXIT_USAGE : EXIT_SYSTEM;
		}
		printf("watching %s (handle %#llx)\n", name, (unsigned long long)h[i]);
	}
	fflush(stdout);
	ex = EXIT_OK;
	while (count < 0 || seen < count) {
		struct shoal_down d;
		struct shoal_msg m;
		const char *name = "?";

		rc = shoal_client_recv(c, &m, buf, sizeof(buf), (int)a.timeout_ms);
		if (rc == -ETIMEDOUT) {
			fprintf(stderr, "shoal monitor: no notice within %ld ms\n", a.timeout_ms);
			ex = EXIT_CHECK;
			break;
		}
		if (rc == -ESHUTDOWN || rc == -EOWNERDEAD) {
			printf("instance '%s' %s\n", a.instance,
			       rc == -ESHUTDOWN ? "stopped" : "lost its supervisor");
			ex = rc == -ESHUTDOWN ? EXIT_OK : EXIT_CHECK;
			break;
		}
		if (rc) {
			fprintf(stderr, "shoal monitor: %s\n", strerror(-rc));
			ex = EXIT_SYSTEM;
			break;
		}
		if (!(m.flags & SHOAL_MSG_SYSTEM) || m.len < sizeof(d))
			continue; /* not a notice: someone cast to our inbox */
		memcpy(&d, m.data, sizeof(d));
		for (int i = 0; i < n; i++)
			if (ref[i] == d.ref)
				name = argv[optind + i];
		if (d.up)
			printf("%s: up\n", name);
		else
			printf("%s: down (%s)\n", name, reason_name(d.reason));
		fflush(stdout);
		seen++;
	}
	shoal_client_close(c);
	return ex;
}

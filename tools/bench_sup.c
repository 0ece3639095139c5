/*
 * A benchmark's own instance: the supervisor run in a forked child of the benchmark (it dies
 * with it), from a config text, waited for until ready; and its orderly stop.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/log.h"
#include "supervisor/sup.h"
#include "tools/bench.h"
#include "tools/tools.h"

/* See bench.h. The benchmark's main thread. */
pid_t bench_sup_start(const char *bench, const char *text)
{
	/* quiet: the report is the output (a --json one must be all of it) */
	struct sup_run_opts ro = {.status = false, .log_format = SHM_LOG_QUIET};
	struct sup_config *c = calloc(1, sizeof(*c));
	struct pollfd p = {.events = POLLIN};
	char err[512] = "", b[8];
	int pfd[2];
	pid_t sup = -1;

	if (!c)
		return -1;
	sup_config_init(c);
	if (sup_config_parse_string(c, "<bench>", text, err, sizeof(err))) {
		fprintf(stderr, "shoal bench %s: %s\n", bench, err);
		goto out_free;
	}
	if (pipe(pfd) < 0)
		goto out_free;
	sup = fork();
	if (sup == 0) {
		/* the benchmark's death stops the instance in order */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(pfd[0]);
		ro.ready_fd = pfd[1];
		{
			int r = sup_run(c, &ro);

			_exit(r == SUP_RUN_INTENSITY ? EXIT_CHECK : tool_exit_for(r));
		}
	}
	close(pfd[1]);
	p.fd = pfd[0];
	if (sup > 0 && (poll(&p, 1, 10000) != 1 || read(pfd[0], b, sizeof(b)) != 6)) {
		fprintf(stderr, "shoal bench %s: the instance did not become ready\n", bench);
		bench_sup_stop(bench, sup);
		sup = -1;
	}
	close(pfd[0]);
out_free:
	free(c);
	return sup;
}

/* See bench.h. The benchmark's main thread. */
int bench_sup_stop(const char *bench, pid_t sup)
{
	int st = 0;

	kill(sup, SIGTERM);
	if (waitpid(sup, &st, 0) != sup || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "shoal bench %s: the supervisor ended with status 0x%x\n", bench,
			st);
		return -1;
	}
	return 0;
}

/*
 * The [dist] gateway's supervision: fork it once the instance is ready, watch its pidfd in the
 * supervisor's ring, restart it when it dies (after the [restart] backoff for its streak of
 * deaths), end it at the end of the run. What it does is dist/gateway.c's.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist/dist.h"
#include "shm/shm.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* See sup_int.h. */
void sup_gateway_init(struct sup *s)
{
	s->gw.pidfd = -1;
	if (s->c->dist.node[0])
		s->gw.start_at = sup_now();
}

/* The child: no supervisor fd of ours (the ring, signalfd, pipes) stays open in it. */
static void __attribute__((noreturn)) gateway_child(struct sup *s, pid_t parent)
{
	sup_child_prepare(s->seg, parent);
	/* stdin, stdout and stderr stay: the gateway says what it does on stderr */
	(void)close_range(3, ~0u, 0);
	_exit(dist_gateway_main(&s->c->dist, s->c->instance) & 0xff);
}

static void gateway_start(struct sup *s)
{
	pid_t pid, self = getpid();

	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "shoal: gateway: cannot fork it: %s; trying again\n",
			strerror(errno));
		s->gw.start_at = sup_now() + (uint64_t)s->c->policy.backoff_max_ms * 1000000u;
		return;
	}
	if (pid == 0)
		gateway_child(s, self);
	s->gw.pidfd = sup_pidfd_open(pid);
	if (s->gw.pidfd < 0) {
		/* cannot watch it: do not leave it running unwatched */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		s->gw.start_at = sup_now() + (uint64_t)s->c->policy.backoff_max_ms * 1000000u;
		return;
	}
	s->gw.pid = pid;
	s->gw.start_at = 0;
	s->gw.started_ns = sup_now();
	sup_arm_poll(s, s->gw.pidfd, UD(K_GATEWAY, 0, ++s->gw.gen));
}

/* See sup_int.h. */
void sup_gateway_tick(struct sup *s)
{
	uint64_t now = sup_now();

	if (!s->gw.start_at || s->gw.pid || now < s->gw.start_at)
		return;
	if (s->stopping) {
		s->gw.start_at = 0;
		return;
	}
	/* a client of the instance: it can attach once the instance is ready */
	if (!s->ready_sent) {
		s->gw.start_at = now + TICK_NS;
		return;
	}
	gateway_start(s);
}

/* Collect it; its exit status said as a sentence in buf. */
static void gateway_reap(struct sup *s, char *buf, size_t cap)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)s->gw.pidfd, &si, WEXITED) < 0 || !si.si_pid)
		snprintf(buf, cap, "ended");
	else if (si.si_code == CLD_EXITED)
		snprintf(buf, cap, "exited with code %d", si.si_status);
	else
		snprintf(buf, cap, "was killed by signal %d (%s)", si.si_status,
			 sigabbrev_np(si.si_status) ? sigabbrev_np(si.si_status) : "?");
	close(s->gw.pidfd);
	s->gw.pidfd = -1;
	s->gw.pid = 0;
	s->gw.gen++;
}

/* See sup_int.h. */
void sup_gateway_died(struct sup *s)
{
	const struct sup_policy *p = &s->c->policy;
	pid_t pid = s->gw.pid;
	uint32_t delay;
	char how[64];

	gateway_reap(s, how, sizeof(how));
	/* its process slot reads DEAD now: repair it (a client's repair) at once */
	sup_clients_scan(s, true);
	if (s->stopping)
		return;
	if (sup_now() - s->gw.started_ns >= (uint64_t)p->period_ms * 1000000u)
		s->gw.streak = 0;
	s->gw.streak++;
	s->gw.restarts++;
	delay = sup_backoff_ms(p, s->gw.streak);
	fprintf(stderr, "shoal: gateway (pid %d) %s; restarting it%s\n", (int)pid, how,
		delay ? "" : " now");
	if (delay)
		fprintf(stderr, "shoal: gateway: restart in %u ms (death %u in a row)\n", delay,
			s->gw.streak);
	s->gw.start_at = sup_now() + (uint64_t)delay * 1000000u;
	if (!s->gw.start_at)
		s->gw.start_at = 1;
}

/* See sup_int.h. */
void sup_gateway_stop(struct sup *s)
{
	struct pollfd pf = {.fd = s->gw.pidfd, .events = POLLIN};
	char how[64];

	s->gw.start_at = 0;
	if (!s->gw.pid)
		return;
	sup_pidfd_kill(s->gw.pidfd, SIGTERM);
	/* it holds nothing that needs an orderly end: the stop timeout, then SIGKILL */
	if (poll(&pf, 1, (int)s->c->stop_timeout_ms) != 1)
		sup_pidfd_kill(s->gw.pidfd, SIGKILL);
	gateway_reap(s, how, sizeof(how));
	sup_clients_scan(s, true);
}

/*
 * The exit log: what a worker's exit is recorded as in its process slot (code, signal,
 * reason) and remembered for the restart-intensity message.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdarg.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hwloc.h>
#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/uring_futex.h"
#include "shm/event.h"
#include "shm/log.h"
#include "shm/registry.h"
#include "shm/trace.h"
#include "shoal/agent.h"
#include "supervisor/sup.h"
#include "supervisor/sup_int.h"

/* Remember the slot's last exit in w's ring of reasons (for the intensity message). */
void sup_exit_note_reason(struct sup_worker *w, const struct shm_proc *p)
{
	char *r = w->reasons[w->nreasons % REASONS_MAX];
	/* relaxed: the supervisor wrote these itself (sup_exit_record()) */
	uint32_t pid = atomic_load_explicit(&p->last_pid, memory_order_relaxed);
	int32_t code = atomic_load_explicit(&p->last_code, memory_order_relaxed);
	int32_t sig = atomic_load_explicit(&p->last_signal, memory_order_relaxed);
	uint32_t reason = atomic_load_explicit(&p->last_reason, memory_order_relaxed);

	if (sig)
		snprintf(r, 64, "pid %u killed by signal %d (%s)", pid, sig,
			 shm_exit_reason_name(reason));
	else
		snprintf(r, 64, "pid %u exited with code %d (%s)", pid, code,
			 shm_exit_reason_name(reason));
	w->nreasons++;
}

/* Whether w's cgroup counted an OOM kill since its launch (the cap stopped it). */
bool sup_exit_is_oom(struct sup *s, struct sup_worker *w)
{
	return w->cap_mech == SUP_CAP_CGROUP &&
	       sup_cap_oom_kills(s->c, w->windex, w->cap_mech) > w->oom_base;
}

/*
 * Record an exit of pid (slot epoch `epoch`) in w's slot. `status` is a wait status
 * (WIFEXITED/WIFSIGNALED encoding), or -1 when unknown. oom: 1 or 0 if the caller
 * established whether the memory cap ended it (before a new launch reset the cgroup's
 * baseline), -1 to look now. again: the same exit, now with its status.
 */
void sup_exit_record(struct sup *s, struct sup_worker *w, pid_t pid, uint32_t epoch, int status,
		     bool asked_to_stop, bool hung, int oom, bool again)
{
	struct shm_proc *p = sup_wproc(s, w);
	uint32_t reason;

	/*
	 * relaxed: a status for tools (cmd_inspect.c); the exit log's seq orders its own copy
	 * (shm_exit_record()), a reader of these fields may see a mix of two exits for an instant
	 */
	atomic_store_explicit(&p->last_pid, (uint32_t)pid, memory_order_relaxed);
	atomic_store_explicit(&p->last_epoch, epoch, memory_order_relaxed);
	if (status >= 0 && WIFEXITED(status)) {
		int32_t code = WEXITSTATUS(status);

		atomic_store_explicit(&p->last_code, code, memory_order_relaxed);
		atomic_store_explicit(&p->last_signal, 0, memory_order_relaxed);
		if (code == WRK_EXIT_MEMCAP)
			reason = SHM_EXIT_MEMCAP;
		else if (code == 0 && asked_to_stop)
			reason = SHM_EXIT_NORMAL;
		else
			reason = SHM_EXIT_CODE;
	} else {
		atomic_store_explicit(&p->last_code, -1, memory_order_relaxed);
		atomic_store_explicit(&p->last_signal, status >= 0 ? WTERMSIG(status) : 0,
				      memory_order_relaxed);
		reason = SHM_EXIT_SIGNAL;
	}
	if (oom < 0 ? sup_exit_is_oom(s, w) : oom)
		reason = SHM_EXIT_MEMCAP;
	else if (hung && !asked_to_stop)
		reason = SHM_EXIT_HANG;
	atomic_store_explicit(&p->last_reason, reason, memory_order_relaxed);
	atomic_store_explicit(&p->last_exit_ns, shm_wall_ns(), memory_order_relaxed);
	if (again)
		shm_exit_update(s->seg, w->slot); /* the same exit, now with its status */
	else
		shm_exit_record(s->seg, w->slot);
	shm_change_bump(s->seg);
}

/* A wait status from a waitid siginfo. */
int sup_exit_wait_status(const siginfo_t *si)
{
	if (si->si_code == CLD_EXITED)
		return (si->si_status & 0xff) << 8;
	return si->si_status & 0x7f;
}

/* The slot's owner epoch if pid still owns it (it died after claiming), else 0. */
uint32_t sup_exit_owner_epoch(struct sup *s, struct sup_worker *w, pid_t pid)
{
	/* own still names the dead owner, unless it died before claiming the slot */
	uint64_t own = atomic_load_explicit(&sup_wproc(s, w)->own, memory_order_acquire);

	return (pid_t)(own >> 32) == pid ? (uint32_t)own : 0;
}

/*
 * The exit status of a process that has begun to exit, before it can be waited for: the
 * kernel sets it (the last field of /proc/PID/stat, a wait status) before it tears the
 * address space down, and so before the robust-futex wake that told us. -1 if unreadable.
 */
int sup_exit_early_status(pid_t pid)
{
	struct shm_pid_stat st;

	return shm_pid_stat_read(pid, &st) ? -1 : st.exit_code;
}

/* A machine-friendly name of an exit reason, for the JSON event lines. */
static const char *reason_key(uint32_t reason)
{
	switch (reason) {
	case SHM_EXIT_CODE:
		return "exit_code";
	case SHM_EXIT_SIGNAL:
		return "signal";
	case SHM_EXIT_MEMCAP:
		return "memory_cap";
	case SHM_EXIT_HANG:
		return "hang";
	default:
		return "unknown";
	}
}

/*
 * See sup_int.h. Best effort: a segment without a ring (or a full one: the oldest event goes)
 * records nothing more to say about it; nobody waits on the ring. Supervisor thread only.
 */
void sup_event(struct sup *s, struct sup_worker *w, enum shm_event_kind kind, pid_t pid,
	       const struct shm_event *ex, const char *fmt, ...)
{
	struct shm_event e;
	va_list ap;

	if (ex)
		e = *ex;
	else
		shm_event_init(&e, kind);
	e.kind = kind;
	if (w) {
		e.worker = (int32_t)w->windex;
		e.slot = w->slot;
	}
	e.pid = (uint32_t)pid;
	va_start(ap, fmt);
	vsnprintf(e.text, sizeof(e.text), fmt, ap);
	va_end(ap);
	(void)shm_event_append(s->seg, &e, NULL);
}

/*
 * The ring's record of that exit: a crash (or a memory-cap stop) with its reason, code and
 * signal, and the restart to come in the text, cut to the record's 40 bytes.
 */
static void sup_exit_ring_event(struct sup *s, struct sup_worker *w, uint32_t pid, uint32_t reason,
				int32_t code, int32_t sig, int64_t restart_ms)
{
	struct shm_event e;
	char status[24], next[40];

	shm_event_init(&e, SHM_EV_WORKER_CRASH);
	e.reason = reason;
	e.code = code;
	e.signal = sig;
	if (sig)
		snprintf(status, sizeof(status), "%s", shm_log_signal_name(sig));
	else if (code >= 0)
		snprintf(status, sizeof(status), "exit code %d", code);
	else
		snprintf(status, sizeof(status), "status unknown");
	if (restart_ms < 0)
		snprintf(next, sizeof(next), "no restart");
	else if (restart_ms)
		snprintf(next, sizeof(next), "restart in %" PRId64 " ms", restart_ms);
	else
		snprintf(next, sizeof(next), "restart now");
	sup_event(s, w, reason == SHM_EXIT_MEMCAP ? SHM_EV_MEMCAP : SHM_EV_WORKER_CRASH, (pid_t)pid,
		  &e, "%s%s; %s", reason == SHM_EXIT_HANG ? "hang, " : "", status, next);
}

/*
 * The event line of an unasked-for exit of w, just recorded in its slot (sup_exit_record()),
 * with what comes next: restart_ms 0 a restart now, > 0 after that backoff, < 0 none (the
 * restart intensity tripped). Supervisor thread only.
 */
void sup_exit_event(struct sup *s, struct sup_worker *w, int64_t restart_ms)
{
	const struct shm_proc *p = sup_wproc(s, w);
	/* relaxed: the supervisor wrote these itself (sup_exit_record()) */
	uint32_t pid = atomic_load_explicit(&p->last_pid, memory_order_relaxed);
	int32_t code = atomic_load_explicit(&p->last_code, memory_order_relaxed);
	int32_t sig = atomic_load_explicit(&p->last_signal, memory_order_relaxed);
	uint32_t reason = atomic_load_explicit(&p->last_reason, memory_order_relaxed);
	char how[96], status[64], next[64], who[48];
	json_t *f;

	if (sig)
		snprintf(status, sizeof(status), "signal %d (%s)", sig, shm_log_signal_name(sig));
	else if (code >= 0)
		snprintf(status, sizeof(status), "exit code %d", code);
	else
		snprintf(status, sizeof(status), "status not known yet");
	switch (reason) {
	case SHM_EXIT_MEMCAP:
		snprintf(how, sizeof(how), "stopped by its memory cap (%s)", status);
		break;
	case SHM_EXIT_HANG:
		snprintf(how, sizeof(how), "killed for a hang (%s)", status);
		break;
	case SHM_EXIT_CODE:
		snprintf(how, sizeof(how), "%s", status);
		break;
	default:
		snprintf(how, sizeof(how), "%s%s", sig ? "killed by " : "died, ", status);
		break;
	}
	if (restart_ms < 0)
		snprintf(next, sizeof(next), "not restarted (restart intensity exceeded)");
	else if (restart_ms)
		snprintf(next, sizeof(next), "restarting in %" PRId64 " ms (backoff)", restart_ms);
	else
		snprintf(next, sizeof(next), "restarting now");
	snprintf(who, sizeof(who), "worker %u (pid %u)", w->windex, pid);
	f = json_pack("{s:i, s:i, s:s, s:i, s:i, s:I}", "worker", (int)w->windex, "pid", (int)pid,
		      "reason", reason_key(reason), "signal", sig, "code", code, "restart_ms",
		      (json_int_t)restart_ms);
	if (f && sig)
		json_object_set_new(f, "signal_name", json_string(shm_log_signal_name(sig)));
	shm_log_event("worker.exit", who, f, "exited: %s; %s", how, next);
	sup_exit_ring_event(s, w, pid, reason, code, sig, restart_ms);
}

/*
 * shoal bench ipc: mailbox round trips (consumer spinning, consumer parked) and throughput
 * (1 and 2 producers; 16, 64, 1024 bytes) across two processes pinned to two cores, with
 * the floors measured in the same run on the same cores: a cache-line ping-pong, a raw
 * futex ping-pong, an io_uring FUTEX_WAIT ping-pong and a pipe ping-pong.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "ipc/ipc.h"
#include "ipc/uring_futex.h"
#include "shm/cpu.h"
#include "shm/hist.h"
#include "shm/shm.h"
#include "tools/bench.h"
#include "tools/tools.h"

#define T_STOP	   0xdeadu
#define MAX_CHUNKS 8192
#define CHUNK	   1024
#define BATCH	   32 /* messages per ipc_send_batch() in the batched throughput rows */
/* throughput runs of each telemetry setting, alternated; best kept (telemetry_tp()) */
#define TELEMETRY_TP_ROUNDS 3

/* Words the benchmark's processes share (anonymous shared memory), one per 128 bytes. */
struct bshared {
	_Atomic uint32_t ping;
	uint8_t pad0[124];
	_Atomic uint32_t pong;
	uint8_t pad1[124];
	_Atomic uint32_t ready;
	_Atomic uint32_t go;
	_Atomic uint32_t fail;
	uint32_t nchunks;
	_Atomic uint64_t alloc; /* bytes the producers allocated while sending */
	uint64_t t_start, t_end;
	uint64_t chunk_ns[MAX_CHUNKS];
};

static struct bshared *sh;
static enum ipc_wake_mech park_mech; /* what rtt_park's waiter used */

static inline void relax(void)
{
	shm_cpu_relax();
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static pid_t fork_pinned(int cpu)
{
	pid_t pid = fork();

	if (pid == 0)
		bench_pin(cpu);
	return pid;
}

static int reap(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

/* --- baselines --- */

enum pp_kind { PP_CACHELINE, PP_FUTEX, PP_URING, PP_PIPE };

static void uring_futex_wait(struct io_uring *ring, _Atomic uint32_t *w, uint32_t v)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;

	if (!sqe)
		return;
	ipc_prep_futex(sqe, IORING_OP_FUTEX_WAIT, w, v);
	io_uring_submit_and_wait(ring, 1);
	if (io_uring_peek_cqe(ring, &cqe) == 0)
		io_uring_cqe_seen(ring, cqe);
}

/* Wait until *w != v by the given mechanism. */
static void pp_wait(enum pp_kind k, struct io_uring *ring, _Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load_explicit(w, memory_order_acquire) == v) {
		if (k == PP_CACHELINE)
			relax();
		else if (k == PP_FUTEX)
			futex_wait(w, v);
		else
			uring_futex_wait(ring, w, v);
	}
}

static void pp_post(enum pp_kind k, _Atomic uint32_t *w, uint32_t v)
{
	atomic_store_explicit(w, v, memory_order_release);
	if (k != PP_CACHELINE)
		futex_wake(w);
}

/* One ping-pong baseline: n round trips into ns[], parent on cpu_a, child on cpu_b. */
static int pingpong(const char *name, enum pp_kind k, uint32_t n, const struct bench_opts *o,
		    uint64_t *ns)
{
	struct io_uring ring;
	int p2c[2], c2p[2];
	uint64_t t0;
	pid_t pid;
	char b = 0;

	if (k == PP_PIPE && (pipe(p2c) || pipe(c2p)))
		return -errno;
	atomic_store(&sh->ping, 0);
	atomic_store(&sh->pong, 0);
	pid = fork_pinned(o->cpu_b);
	if (pid == 0) {
		if (k == PP_URING && io_uring_queue_init(4, &ring, 0))
			_exit(2);
		for (uint32_t i = 1; i <= n + 1000; i++) {
			if (k == PP_PIPE) {
				if (read(p2c[0], &b, 1) != 1 || write(c2p[1], &b, 1) != 1)
					_exit(3);
				continue;
			}
			pp_wait(k, &ring, &sh->ping, i - 1);
			pp_post(k, &sh->pong, i);
		}
		_exit(0);
	}
	if (k == PP_URING && io_uring_queue_init(4, &ring, 0))
		return -ENOSYS;
	for (uint32_t i = 1; i <= n + 1000; i++) {
		t0 = bench_ticks();
		if (k == PP_PIPE) {
			if (write(p2c[1], &b, 1) != 1 || read(c2p[0], &b, 1) != 1)
				break;
		} else {
			pp_post(k, &sh->ping, i);
			pp_wait(k, &ring, &sh->pong, i - 1);
		}
		if (i > 1000)
			ns[i - 1001] = (uint64_t)bench_ticks_to_ns(bench_ticks() - t0);
	}
	if (reap(pid))
		fprintf(stderr, "shoal bench ipc: %s child failed\n", name);
	if (k == PP_URING)
		io_uring_queue_exit(&ring);
	if (k == PP_PIPE) {
		close(p2c[0]), close(p2c[1]), close(c2p[0]), close(c2p[1]);
	}
	return 0;
}

static double rate_of(const uint64_t *ns, uint32_t n)
{
	double sum = 0;

	for (uint32_t i = 0; i < n; i++)
		sum += (double)ns[i];
	return sum > 0 ? 1e9 * n / sum : 0;
}

/*
 * The floor for one message at a time: a single-producer ring in the benchmark's own shared
 * memory, written with plain stores. Per message the producer (one call, not inlined)
 * writes a 32-byte header and the payload into the next 64-byte cell and release-stores the
 * cell's stamp (a plain store on x86); the consumer spins on the stamp at its head, reads
 * the message and publishes its head every FLOOR_HEAD_EVERY messages, which the producer
 * checks for room only when its cached copy says the ring is full. No claim, no tail, no
 * wake, no crash model: what a send costs with one known producer and a spinning consumer.
 */
#define FLOOR_CELLS	 4096u
#define FLOOR_HEAD_EVERY 64u

struct floor_ring {
	_Atomic uint64_t head; /* consumer-written: messages consumed (a multiple of 64) */
	uint8_t pad[120];
	struct floor_cell {
		uint64_t from, ref;
		uint32_t type, flags, len;
		_Atomic uint32_t stamp; /* position + 1 of the message in this cell */
		uint8_t data[32];
	} cells[FLOOR_CELLS];
};

struct floor_prod {
	struct floor_ring *ring;
	uint64_t tail, head; /* producer-private: next position, last head read */
};

static __attribute__((noinline)) void floor_send(struct floor_prod *p, const void *data,
						 uint32_t len)
{
	struct floor_cell *c;

	while (p->tail - p->head >= FLOOR_CELLS) {
		/* acquire: the consumer's reads of the cells below head are done */
		p->head = atomic_load_explicit(&p->ring->head, memory_order_acquire);
		if (p->tail - p->head >= FLOOR_CELLS)
			relax();
	}
	c = &p->ring->cells[p->tail % FLOOR_CELLS];
	c->from = 1;
	c->ref = 0;
	c->type = 1;
	c->flags = 0;
	c->len = len;
	memcpy(c->data, data, len);
	/* release: the message's bytes before its stamp */
	atomic_store_explicit(&c->stamp, (uint32_t)(p->tail + 1), memory_order_release);
	p->tail++;
}

/* plain_ring_1p_16: n messages of 16 bytes through the floor ring, consumer on cpu_b. */
static int floor_ring(struct bench_report *r, uint64_t n, const struct bench_opts *o)
{
	struct floor_ring *ring = mmap(NULL, sizeof(*ring), PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct floor_prod p = {.ring = ring};
	uint8_t buf[16] = {0};
	uint64_t *ns, chunks;
	double secs;
	pid_t cons;

	if (ring == MAP_FAILED)
		return -errno;
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->go, 0);
	cons = fork_pinned(o->cpu_b);
	if (cons == 0) {
		uint64_t h = 0, last, sum = 0;

		atomic_store(&sh->ready, 1);
		while (!atomic_load(&sh->go))
			relax();
		last = sh->t_start = bench_now_ns();
		sh->nchunks = 0;
		for (; h < n; h++) {
			struct floor_cell *c = &ring->cells[h % FLOOR_CELLS];

			/* acquire: pairs with the producer's release of the stamp */
			while (atomic_load_explicit(&c->stamp, memory_order_acquire) !=
			       (uint32_t)(h + 1))
				relax();
			sum += c->len + c->data[0];
			if ((h + 1) % FLOOR_HEAD_EVERY == 0)
				/* release: our reads of the cells before the producer's rewrite */
				atomic_store_explicit(&ring->head, h + 1, memory_order_release);
			if ((h + 1) % CHUNK == 0 && sh->nchunks < MAX_CHUNKS) {
				uint64_t now = bench_now_ns();

				sh->chunk_ns[sh->nchunks++] = (now - last) / CHUNK;
				last = now;
			}
		}
		sh->t_end = bench_now_ns();
		_exit(sum == n * 16 ? 0 : 4);
	}
	bench_pin(o->cpu_a);
	while (!atomic_load(&sh->ready))
		relax();
	atomic_store(&sh->go, 1);
	for (uint64_t i = 0; i < n; i++)
		floor_send(&p, buf, sizeof(buf));
	if (reap(cons))
		atomic_store(&sh->fail, 1);
	munmap(ring, sizeof(*ring));
	secs = (double)(sh->t_end - sh->t_start) / 1e9;
	chunks = sh->nchunks ? sh->nchunks : 1;
	ns = calloc(chunks, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	memcpy(ns, sh->chunk_ns, sh->nchunks * sizeof(*ns));
	bench_add_baseline(r, "plain_ring_1p_16", ns, sh->nchunks, secs > 0 ? (double)n / secs : 0);
	free(ns);
	return 0;
}

/* --- shoal --- */

struct peek_ctx {
	struct shm_seg *seg;
	uint32_t slot;
};

static bool has_msg(void *arg)
{
	struct peek_ctx *c = arg;
	struct ipc_msg m;

	return ipc_mbox_peek(c->seg, c->slot, &m) == 0;
}

/* Take the next message of slot, spinning (w NULL) or parking. */
static void next_msg(struct shm_seg *seg, struct ipc_waiter *w, uint32_t slot, struct ipc_msg *m)
{
	struct peek_ctx c = {seg, slot};

	if (!w) {
		while (ipc_mbox_peek_spin(seg, slot, m, 64))
			;
		return;
	}
	while (ipc_mbox_peek(seg, slot, m))
		ipc_waiter_wait(w, 0, 0, has_msg, &c, NULL);
}

static shoal_handle_t new_agent(struct shm_seg *seg, uint32_t host)
{
	struct shm_agent *a;
	uint32_t slot;

	if (shm_agent_alloc(seg, 0, &slot))
		return SHOAL_HANDLE_NONE;
	a = shm_agent_at(seg, slot);
	ipc_mbox_init(seg, slot);
	atomic_store_explicit(&a->worker, host + 1, memory_order_relaxed);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	shm_change_bump(seg);
	return shoal_handle_make(slot, atomic_load_explicit(&a->gen, memory_order_relaxed));
}

static void host_agent(struct shm_seg *seg, shoal_handle_t h)
{
	atomic_store_explicit(&shm_agent_at(seg, shoal_handle_slot(h))->worker, seg->self + 1,
			      memory_order_release);
}

static int child_claim(struct shm_seg *seg)
{
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		return -1;
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	return 0;
}

/* n round trips into ns[]: parent sends to b, the child answers to a; park: both park. */
static int rtt(struct shm_seg *seg, bool park, uint32_t n, const struct bench_opts *o, uint64_t *ns,
	       uint64_t *alloc)
{
	uint64_t a0;
	shoal_handle_t a = new_agent(seg, seg->self), b = new_agent(seg, seg->self);
	struct ipc_waiter *w = NULL;
	uint8_t buf[16] = {0};
	struct ipc_msg m;
	pid_t pid;

	if (!a || !b)
		return -ENOMEM;
	atomic_store(&sh->ready, 0);
	pid = fork_pinned(o->cpu_b);
	if (pid == 0) {
		if (child_claim(seg) || (park && ipc_waiter_create(seg, IPC_WAKE_AUTO, &w)))
			_exit(2);
		host_agent(seg, b);
		atomic_store(&sh->ready, 1);
		for (;;) {
			next_msg(seg, w, shoal_handle_slot(b), &m);
			if (m.type == T_STOP)
				_exit(0);
			if (ipc_send(seg, a, b, 1, 0, 0, m.data, m.len, -1))
				_exit(3);
			ipc_mbox_consume(seg, shoal_handle_slot(b), &m);
		}
	}
	while (!atomic_load(&sh->ready))
		relax();
	if (park && ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
		return -ENOSYS;
	if (w)
		park_mech = ipc_waiter_mech(w);
	a0 = bench_alloc_bytes();
	for (uint32_t i = 0; i < n + 1000; i++) {
		uint64_t t0 = bench_ticks();

		if (ipc_send(seg, b, a, 1, 0, 0, buf, sizeof(buf), -1))
			break;
		next_msg(seg, w, shoal_handle_slot(a), &m);
		ipc_mbox_consume(seg, shoal_handle_slot(a), &m);
		if (i >= 1000)
			ns[i - 1000] = (uint64_t)bench_ticks_to_ns(bench_ticks() - t0);
	}
	*alloc += bench_alloc_bytes() - a0;
	ipc_send(seg, b, a, T_STOP, 0, 0, NULL, 0, -1);
	reap(pid);
	if (w)
		ipc_waiter_destroy(w);
	shm_agent_free(seg, shoal_handle_slot(a));
	shm_agent_free(seg, shoal_handle_slot(b));
	return 0;
}

/* Rounds that alternate a baseline and the shoal figure compared with it. */
#define PAIR_ROUNDS 5

/*
 * A shoal round trip and its floor, measured alternately in PAIR_ROUNDS rounds (n each in
 * total) so that both see the same placement of the virtual CPUs: a cache-line round trip
 * between two vCPUs varies several-fold from one moment to the next on this machine.
 */
static int rtt_pair(struct bench_report *r, struct shm_seg *seg, const char *base, enum pp_kind k,
		    const char *name, bool park, uint32_t n, const struct bench_opts *o)
{
	uint64_t alloc = 0;
	uint32_t per = n / PAIR_ROUNDS;
	uint64_t *bns = calloc(n, sizeof(*bns)), *sns = calloc(n, sizeof(*sns));
	struct bench_row *row;
	int err = 0;

	if (!bns || !sns) {
		err = -ENOMEM;
		goto out_free;
	}
	/* mapped before the timing: a first-touch fault is the benchmark's, not the path's */
	memset(bns, 0, n * sizeof(*bns));
	memset(sns, 0, n * sizeof(*sns));
	n = per * PAIR_ROUNDS;
	for (uint32_t i = 0; i < PAIR_ROUNDS && !err; i++) {
		err = pingpong(base, k, per, o, bns + i * per);
		if (!err)
			err = rtt(seg, park, per, o, sns + i * per, &alloc);
	}
	if (err)
		goto out_free;
	bench_add_baseline(r, base, bns, n, rate_of(bns, n));
	row = bench_add_result(r, name, sns, n, rate_of(sns, n), base);
	/* this side's sends and takes, warm-up included */
	if (row)
		row->alloc_per_op = (double)alloc / ((double)n + 1000.0 * PAIR_ROUNDS);
out_free:
	free(bns);
	free(sns);
	return err;
}

/* A baseline measured on its own. */
static int baseline(struct bench_report *r, const char *name, enum pp_kind k, uint32_t n,
		    const struct bench_opts *o)
{
	uint64_t *ns = calloc(n, sizeof(*ns));
	int err;

	if (!ns)
		return -ENOMEM;
	memset(ns, 0, n * sizeof(*ns)); /* mapped before the timing */
	err = pingpong(name, k, n, o, ns);
	if (!err)
		bench_add_baseline(r, name, ns, n, rate_of(ns, n));
	free(ns);
	return err;
}

/* Throughput: nprod producers send n messages of len bytes in total; one consumer. */
static int throughput(struct bench_report *r, struct shm_seg *seg, const char *name, uint32_t nprod,
		      uint32_t len, uint64_t n, uint32_t batch, const struct bench_opts *o)
{
	shoal_handle_t b = new_agent(seg, seg->self);
	uint64_t *ns, chunks;
	struct bench_row *row;
	pid_t cons, prod[2];
	double secs;

	if (!b)
		return -ENOMEM;
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->go, 0);
	atomic_store(&sh->alloc, 0); /* seq_cst: the bench's own shared words, off the timing */
	/* the consumer on cpu_b, the producer(s) on cpu_a (2 cores: 2 producers share one) */
	cons = fork();
	if (cons == 0) {
		struct ipc_waiter *w;
		uint64_t got = 0, last;

		bench_pin(o->cpu_b);
		if (child_claim(seg) || ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
			_exit(2);
		host_agent(seg, b);
		atomic_store(&sh->ready, 1);
		while (!atomic_load(&sh->go))
			relax();
		last = sh->t_start = bench_now_ns();
		sh->nchunks = 0;
		while (got < n) {
			struct peek_ctx c = {seg, shoal_handle_slot(b)};
			struct ipc_msg m;

			if (ipc_mbox_peek(seg, c.slot, &m)) {
				ipc_waiter_wait(w, 200000, 1000000000u, has_msg, &c, NULL);
				continue;
			}
			ipc_mbox_consume(seg, c.slot, &m);
			if (++got % CHUNK == 0 && sh->nchunks < MAX_CHUNKS) {
				uint64_t now = bench_now_ns();

				sh->chunk_ns[sh->nchunks++] = (now - last) / CHUNK;
				last = now;
			}
		}
		sh->t_end = bench_now_ns();
		_exit(0);
	}
	while (!atomic_load(&sh->ready))
		relax();
	for (uint32_t p = 0; p < nprod; p++) {
		prod[p] = fork();
		if (prod[p] == 0) {
			static uint8_t buf[1024];
			uint64_t mine = n / nprod + (p == 0 ? n % nprod : 0), a0;
			struct ipc_out out[BATCH];

			for (uint32_t i = 0; i < BATCH; i++)
				out[i] = (struct ipc_out){
					.to = b, .type = 1, .len = len, .data = buf};
			bench_pin(o->cpu_a);
			if (child_claim(seg))
				_exit(2);
			atomic_fetch_add(&sh->ready, 1);
			while (!atomic_load(&sh->go))
				relax();
			a0 = bench_alloc_bytes();
			for (uint64_t i = 0; i < mine;) {
				uint32_t nb = mine - i < batch ? (uint32_t)(mine - i) : batch;
				int sent;

				if (batch == 1)
					sent = ipc_send(seg, b, 0, 1, 0, 0, buf, len, -1) ? -1 : 1;
				else
					sent = ipc_send_batch(seg, 0, out, nb, -1);
				if (sent <= 0)
					_exit(3);
				i += (uint64_t)sent;
			}
			atomic_fetch_add(&sh->alloc, bench_alloc_bytes() - a0);
			_exit(0);
		}
	}
	while (atomic_load(&sh->ready) != 1 + nprod)
		relax();
	atomic_store(&sh->go, 1);
	for (uint32_t p = 0; p < nprod; p++)
		if (reap(prod[p]))
			atomic_store(&sh->fail, 1);
	if (reap(cons))
		atomic_store(&sh->fail, 1);
	secs = (double)(sh->t_end - sh->t_start) / 1e9;
	chunks = sh->nchunks ? sh->nchunks : 1;
	ns = calloc(chunks, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	memcpy(ns, sh->chunk_ns, sh->nchunks * sizeof(*ns));
	/* against the plain-store ring: the floor for messages across the two cores */
	row = bench_add_result(r, name, ns, sh->nchunks, secs > 0 ? (double)n / secs : 0,
			       "plain_ring_1p_16");
	/* the producers' sends (the consumer's takes allocate nothing either: not counted) */
	if (row)
		row->alloc_per_op = (double)atomic_load(&sh->alloc) / (double)n;
	free(ns);
	shm_agent_free(seg, shoal_handle_slot(b));
	return 0;
}

/*
 * rtt_spin with the latency histograms on and off (shm_hist_set_enabled(), inherited by the
 * forked answerer), alternately in PAIR_ROUNDS rounds of n / PAIR_ROUNDS each: their
 * budget (bench/budgets.txt) holds the "on" row's p50 to the "off" baseline's. Leaves
 * recording on. The relative difference of the p50s into *overhead.
 */
static int telemetry_rtt(struct bench_report *r, struct shm_seg *seg, uint32_t n,
			 const struct bench_opts *o, double *overhead)
{
	uint32_t per = n / PAIR_ROUNDS;
	uint64_t *off = calloc(n, sizeof(*off)), *on = calloc(n, sizeof(*on));
	struct bench_row *b, *row;
	uint64_t alloc = 0; /* counted by the rtt_spin rows, not these */
	int err = 0;

	if (!off || !on) {
		err = -ENOMEM;
		goto out_free;
	}
	memset(off, 0, n * sizeof(*off)); /* mapped before the timing */
	memset(on, 0, n * sizeof(*on));
	n = per * PAIR_ROUNDS;
	for (uint32_t i = 0; i < PAIR_ROUNDS && !err; i++) {
		shm_hist_set_enabled(false);
		err = rtt(seg, false, per, o, off + i * per, &alloc);
		shm_hist_set_enabled(true);
		if (!err)
			err = rtt(seg, false, per, o, on + i * per, &alloc);
	}
	if (err)
		goto out_free;
	b = bench_add_baseline(r, "rtt_spin_telemetry_off", off, n, rate_of(off, n));
	row = bench_add_result(r, "rtt_spin_telemetry_on", on, n, rate_of(on, n),
			       "rtt_spin_telemetry_off");
	if (b && row && b->p50_ns > 0)
		*overhead = row->p50_ns / b->p50_ns - 1.0;
out_free:
	shm_hist_set_enabled(true);
	free(off);
	free(on);
	return err;
}

/*
 * Batched throughput (1 producer, 16 bytes) with the histograms off and on, alternated in
 * TELEMETRY_TP_ROUNDS runs each of n messages, the best run of each kept as a row (their
 * budget compares the rates: bench/budgets.txt). The relative loss into *overhead.
 */
static int telemetry_tp(struct bench_report *r, struct shm_seg *seg, uint64_t n,
			const struct bench_opts *o, double *overhead)
{
	static struct bench_report scratch;
	struct bench_row best[2] = {{.ops_per_s = 0}, {.ops_per_s = 0}}, *row;

	for (uint32_t i = 0; i < 2 * TELEMETRY_TP_ROUNDS; i++) {
		int on = i % 2;

		scratch.nresults = 0;
		shm_hist_set_enabled(on);
		scratch.nbaselines = 0;
		if (throughput(&scratch, seg, on ? "on" : "off", 1, 16, n, BATCH, o) ||
		    !scratch.nresults)
			continue;
		if (scratch.results[0].ops_per_s > best[on].ops_per_s)
			best[on] = scratch.results[0];
	}
	shm_hist_set_enabled(true);
	if (!best[0].ops_per_s || !best[1].ops_per_s || r->nresults + 2 > BENCH_MAX_ROWS)
		return -EIO;
	snprintf(best[0].name, sizeof(best[0].name), "throughput_1p_16_telemetry_off");
	snprintf(best[1].name, sizeof(best[1].name), "throughput_1p_16_telemetry_on");
	r->results[r->nresults++] = best[0];
	row = &r->results[r->nresults++];
	*row = best[1];
	snprintf(row->vs, sizeof(row->vs), "%s", best[0].name);
	*overhead = 1.0 - best[1].ops_per_s / best[0].ops_per_s;
	return 0;
}

/*
 * shoal bench ipc (see the top of this file): its rows into rep. Returns a CLI exit code. The
 * tool's main thread.
 */
int bench_ipc(struct bench_opts *o, struct bench_report *rep)
{
	uint32_t n_spin = o->quick ? 20000 : 200000, n_park = o->quick ? 2000 : 20000;
	uint64_t n_tp = o->quick ? 1000000 : 10000000;
	double tel_rtt = 0, tel_tp = 0;
	char tel[512];
	struct shm_seg *seg = NULL;
	struct shm_cfg cfg;
	char inst[64], err[256];

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return EXIT_SYSTEM;
	snprintf(inst, sizeof(inst), "bench-ipc-%d", (int)getpid());
	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.mbox_cells = 4096;
	cfg.max_procs = 128; /* every forked side claims a slot of its own and leaves it */
	if (shm_seg_create(inst, &cfg, &seg, err, sizeof(err))) {
		fprintf(stderr, "shoal bench ipc: %s\n", err);
		return EXIT_SYSTEM;
	}
	shm_seg_publish(seg);
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false)) {
		fprintf(stderr, "shoal bench ipc: no process slot\n");
		goto out_unlink;
	}
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
	bench_pin(o->cpu_a);

	rtt_pair(rep, seg, "cacheline_rtt", PP_CACHELINE, "rtt_spin", false, n_spin, o);
	rtt_pair(rep, seg, "futex_rtt", PP_FUTEX, "rtt_park", true, n_park, o);
	baseline(rep, "uring_futex_rtt", PP_URING, n_park, o);
	baseline(rep, "pipe_rtt", PP_PIPE, n_park, o);
	{
		static const uint32_t lens[3] = {16, 64, 1024};

		for (uint32_t p = 1; p <= 2; p++) {
			for (int i = 0; i < 3; i++) {
				char name[40];
				uint64_t n = lens[i] == 1024 ? n_tp / 4 : n_tp;

				snprintf(name, sizeof(name), "throughput_%up_%u", p, lens[i]);
				throughput(rep, seg, name, p, lens[i], n, BATCH, o);
			}
		}
		/*
		 * The same, one ipc_send() per message, after the floor for one message at a
		 * time measured just before them (their budgets compare their rates with
		 * their batched twins' and the plain-store ring's: bench/budgets.txt).
		 */
		floor_ring(rep, n_tp, o);
		for (uint32_t p = 1; p <= 2; p++) {
			char name[40];

			snprintf(name, sizeof(name), "throughput_%up_16_single", p);
			throughput(rep, seg, name, p, 16, n_tp, 1, o);
		}
	}
	/* the latency histograms' cost: the same paths with recording off, in this run */
	if (telemetry_rtt(rep, seg, n_spin, o, &tel_rtt) ||
	    telemetry_tp(rep, seg, n_tp / 2, o, &tel_tp))
		snprintf(tel, sizeof(tel), "; telemetry overhead: NOT MEASURED (a run failed)");
	else
		snprintf(
			tel, sizeof(tel),
			"; telemetry overhead (histograms on vs off, alternated in this run; "
			"positive: on was slower; budget: bench/budgets.txt): rtt_spin p50 "
			"%+.1f%%, "
			"batched throughput_1p_16 ops/s %+.1f%% (send and lookup: 1 in %u timed, a "
			"batch counts once)",
			tel_rtt * 100, tel_tp * 100, SHM_HIST_SAMPLE);
	snprintf(rep->notes, sizeof(rep->notes),
		 "cpus %d,%d; wake mechanism %s; mailbox %u cells; rtt_spin: the consumer spins in "
		 "ipc_mbox_peek_spin(); rtt_spin/cacheline_rtt and "
		 "rtt_park/futex_rtt measured alternately in %d rounds; rtt_park: both sides "
		 "park (no spin), no timeout linked; throughput rows: consumer pinned to cpu %d, "
		 "producer(s) to cpu %d (2 producers share that core), p50/p99 are ns per "
		 "message over chunks of %d, ops/s is the total over the whole run; "
		 "throughput_* rows send with ipc_send_batch() in runs of %d "
		 "(*_single: one ipc_send() per message); plain_ring_1p_16: a single-producer "
		 "ring written with plain stores, one call per message, consumer spinning (the "
		 "floor for one message at a time)%s%s",
		 o->cpu_a, o->cpu_b, park_mech == IPC_WAKE_EVENTFD ? "eventfd" : "io_uring futex",
		 cfg.mbox_cells, PAIR_ROUNDS, o->cpu_b, o->cpu_a, CHUNK, BATCH, tel,
		 atomic_load(&sh->fail) ? "; A CHILD FAILED" : "");
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
	return atomic_load(&sh->fail) ? EXIT_SYSTEM : EXIT_OK;
out_unlink:
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
	return EXIT_SYSTEM;
}

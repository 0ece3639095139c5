/* test_mbox: the MPSC mailbox: order, wrap, stress, crash repair, re-init, errors, threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ipc/ipc_int.h"
#include "shm/registry.h"
#include "tests/ipc_test_util.h"

#define MAX_SENDERS 64

/* Bookkeeping shared by the test's processes (anonymous shared memory). */
struct book {
	_Atomic uint64_t acked[MAX_SENDERS]; /* sends that returned 0, per sender */
	_Atomic uint64_t recv[MAX_SENDERS];  /* messages applied by the consumer, per sender */
	_Atomic uint32_t slot_of[MAX_SENDERS];
	_Atomic uint64_t errors;
	_Atomic uint64_t redelivered;
	_Atomic uint64_t total;
	_Atomic uint32_t stop;
	_Atomic uint32_t ready;
	_Atomic uint32_t consumer_slot;
	_Atomic uint32_t at_pad; /* test_mbox_pad_then_full: the producer stamped filler */
	_Atomic uint32_t go;	 /* ... and may publish it */
	char why[512];
};

static struct book *bk;
static unsigned callback_spins; /* pauses per handled message in consumer_main() */

static void book_error(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&bk->errors, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(bk->why, sizeof(bk->why), fmt, ap);
		va_end(ap);
	}
}

/*
 * Record why (fmt) plus the mailbox's state as its consumer and producers see it: the
 * words a hang needs (head, tail, freed, the sequence words and stamps at the head and at
 * the tail, whether the consumer is parked).
 */
static void book_stuck(struct shm_seg *seg, uint32_t slot, const char *what)
{
	struct ipc_mbox m;
	uint64_t h, t, f, sh, st;
	uint32_t c = atomic_load(&bk->consumer_slot);

	ipc_mbox_resolve(seg, slot, &m);
	h = atomic_load(&m.h->head);
	t = atomic_load(&m.h->tail);
	f = atomic_load(&m.h->freed);
	sh = atomic_load(&m.seq[h & m.mask]);
	st = atomic_load(&m.seq[t & m.mask]);
	book_error("%s: head %llu tail %llu freed %llu polls %u recheck %u; seq[h] pos %llu st %u "
		   "k %u own %u stamp %#x (ready %#x); seq[t] pos %llu st %u k %u; consumer "
		   "parked %u",
		   what, (unsigned long long)h, (unsigned long long)t, (unsigned long long)f,
		   atomic_load(&m.h->polls), atomic_load(&m.h->recheck),
		   (unsigned long long)ipc_seq_pos(sh), ipc_seq_state(sh), ipc_seq_k(sh),
		   ipc_seq_owner(sh), atomic_load(ipc_stamp_at(&m, h)),
		   ipc_stamp_make(h, IPC_ST_READY), (unsigned long long)ipc_seq_pos(st),
		   ipc_seq_state(st), ipc_seq_k(st), atomic_load(&shm_proc_at(seg, c)->parked));
}

/* Payload: sender, sequence, then bytes derived from the sequence. */
struct pl_head {
	uint32_t sender;
	uint32_t len;
	uint64_t seq;
};

static uint32_t mixed_len(uint64_t seq)
{
	if (seq % 64 == 63)
		return 1000;
	return 16 + (uint32_t)((seq * 7919) % 240);
}

static void make_payload(uint8_t *buf, uint32_t sender, uint64_t seq, uint32_t len)
{
	struct pl_head h = {.sender = sender, .len = len, .seq = seq};

	memcpy(buf, &h, sizeof(h));
	for (uint32_t i = sizeof(h); i < len; i++)
		buf[i] = (uint8_t)(seq + i);
}

/* Check a message's payload; returns false (and records why) when it is corrupt. */
static bool check_payload(const struct ipc_msg *m, struct pl_head *out)
{
	const uint8_t *d = m->data;

	if (m->len < sizeof(*out)) {
		book_error("short message %u", m->len);
		return false;
	}
	memcpy(out, d, sizeof(*out));
	if (out->len != m->len || out->sender >= MAX_SENDERS) {
		book_error("bad header: len %u vs %u, sender %u", out->len, m->len, out->sender);
		return false;
	}
	if (m->len > sizeof(*out) && d[m->len - 1] != (uint8_t)(out->seq + m->len - 1)) {
		book_error("corrupt payload of %u/%llu", out->sender, (unsigned long long)out->seq);
		return false;
	}
	return true;
}

struct peek_ctx {
	struct shm_seg *seg;
	uint32_t slot;
};

static bool has_msg_or_stop(void *arg)
{
	struct peek_ctx *c = arg;
	struct ipc_msg m;

	return atomic_load(&bk->stop) || ipc_mbox_peek(c->seg, c->slot, &m) == 0;
}

/*
 * Messages applied, from the per-sender counts: the truth the redelivery check reads. The
 * separate total (for the parent's kill points) lags it by one when a consumer is killed
 * between the two stores, and a successor that waited for it would wait for ever.
 */
static uint64_t applied_total(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < MAX_SENDERS; i++)
		n += atomic_load_explicit(&bk->recv[i], memory_order_relaxed);
	return n;
}

/*
 * A consumer process: takes a process slot, becomes the host of `to`, recovers, then
 * applies messages in per-sender order until `total` were applied or stop is set and the
 * mailbox is empty. die_at: raise SIGKILL after applying that many (0: never).
 */
static void consumer_main(struct shm_seg *seg, shoal_handle_t to, uint64_t total, uint64_t die_at)
{
	uint32_t slot = shoal_handle_slot(to);
	struct peek_ctx c = {seg, slot};
	struct ipc_waiter *w;
	uint64_t applied = 0;

	it_child_claim(seg);
	if (ipc_waiter_create(seg, IPC_WAKE_AUTO, &w))
		_exit(91);
	it_host(seg, to, seg->self);
	atomic_store(&bk->consumer_slot, seg->self);
	ipc_mbox_recover(seg, slot);
	atomic_store(&bk->ready, 1);
	for (;;) {
		struct ipc_msg m;
		struct pl_head h;
		uint64_t want;

		if (total && applied_total() >= total)
			break;
		if (ipc_mbox_peek(seg, slot, &m)) {
			int r;

			if (atomic_load(&bk->stop))
				break;
			r = ipc_waiter_wait(w, 20000, 10000000000ull, has_msg_or_stop, &c, NULL);
			if (r == 0) {
				book_stuck(seg, slot, "consumer: no message for 10 s");
				_exit(3);
			}
			continue;
		}
		if (!check_payload(&m, &h))
			_exit(4);
		want = atomic_load_explicit(&bk->recv[h.sender], memory_order_relaxed);
		if (m.flags & IPC_F_REDELIVERED) {
			atomic_fetch_add(&bk->redelivered, 1);
			if (h.seq + 1 == want)
				goto consume; /* applied before the crash */
		}
		if (h.seq != want) {
			book_error("sender %u: got %llu, want %llu (flags %x)", h.sender,
				   (unsigned long long)h.seq, (unsigned long long)want, m.flags);
			_exit(5);
		}
		atomic_store_explicit(&bk->recv[h.sender], want + 1, memory_order_release);
		atomic_fetch_add_explicit(&bk->total, 1, memory_order_release);
		applied++;
		if (die_at && applied == die_at)
			raise(SIGKILL);
		/* a callback that takes a while, so random kills often land inside one */
		for (unsigned i = 0; i < callback_spins; i++)
			shm_cpu_relax();
	consume:
		ipc_mbox_consume(seg, slot, &m);
	}
	_exit(0);
}

#define BATCH_MAX 8

/*
 * A producer process: sends count messages as `sender`, recording each acknowledged one;
 * batch > 1 sends runs of up to `batch` messages with ipc_send_batch().
 */
static void producer_main(struct shm_seg *seg, shoal_handle_t to, uint32_t sender, uint64_t count,
			  bool mixed, uint32_t batch)
{
	static uint8_t buf[BATCH_MAX][1024];
	struct ipc_out out[BATCH_MAX];

	it_child_claim(seg);
	atomic_store(&bk->slot_of[sender], seg->self);
	for (uint64_t q = 0; q < count;) {
		uint32_t nb = batch > 1 ? 1 + (uint32_t)(q % batch) : 1;
		int r;

		if (nb > count - q)
			nb = (uint32_t)(count - q);
		for (uint32_t i = 0; i < nb; i++) {
			uint32_t len = mixed ? mixed_len(q + i) : 16;

			make_payload(buf[i], sender, q + i, len);
			out[i] = (struct ipc_out){.to = to, .type = 1, .len = len, .data = buf[i]};
		}
		if (batch > 1)
			r = ipc_send_batch(seg, 0, out, nb, 10000);
		else
			r = ipc_send(seg, to, SHOAL_HANDLE_NONE, 1, 0, 0, buf[0], out[0].len,
				     10000);
		if (r == -ETIMEDOUT) {
			char what[64];

			snprintf(what, sizeof(what), "producer %u: send %llu timed out", sender,
				 (unsigned long long)q);
			book_stuck(seg, shoal_handle_slot(to), what);
			_exit(6);
		}
		if (r < 0) {
			book_error("producer %u: send %llu: %d", sender, (unsigned long long)q, r);
			_exit(6);
		}
		q += batch > 1 ? (uint64_t)r : 1;
		atomic_store_explicit(&bk->acked[sender], q, memory_order_release);
	}
	_exit(0);
}

static pid_t spawn_consumer(struct shm_seg *seg, shoal_handle_t to, uint64_t total, uint64_t die_at)
{
	pid_t pid;

	atomic_store(&bk->ready, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		consumer_main(seg, to, total, die_at);
	assert_true(it_wait_u32(&bk->ready, 1, 10000));
	return pid;
}

static pid_t spawn_producer(struct shm_seg *seg, shoal_handle_t to, uint32_t sender, uint64_t count,
			    bool mixed, uint32_t batch)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		producer_main(seg, to, sender, count, mixed, batch);
	return pid;
}

static int setup(void **state)
{
	(void)state;
	bk = it_shared(sizeof(*bk));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	munmap(bk, sizeof(*bk));
	return 0;
}

static void assert_no_errors(void)
{
	if (atomic_load(&bk->errors))
		fail_msg("%llu errors, first: %s", (unsigned long long)atomic_load(&bk->errors),
			 bk->why);
}

/* --- single process --- */

static void test_mbox_order_and_stats(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_mbox_stats st;
	struct ipc_msg m;
	char buf[64];

	(void)state;
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	for (int i = 0; i < 5; i++) {
		snprintf(buf, sizeof(buf), "message %d", i);
		assert_int_equal(ipc_send(seg, a, (shoal_handle_t)77, 9, 0, 100 + i, buf,
					  (uint32_t)strlen(buf) + 1, 0),
				 0);
	}
	assert_int_equal(ipc_mbox_depth(seg, slot), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		snprintf(buf, sizeof(buf), "message %d", i);
		assert_string_equal((const char *)m.data, buf);
		assert_int_equal(m.from, 77);
		assert_int_equal(m.type, 9);
		assert_int_equal(m.ref, 100 + i);
		assert_int_equal(m.flags, 0);
		/* a second peek without consume hands out the same message */
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_string_equal((const char *)m.data, buf);
		ipc_mbox_consume(seg, slot, &m);
	}
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.dequeued, 5);
	assert_int_equal(st.enqueued, 5);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.cells, 256);
	it_destroy(seg);
}

/*
 * A lagging tail: the one-cell path moves the tail after its stamp, so the consumer may
 * take and free the message first. The next producer finds the tail's cell a lap ahead; it
 * must move the tail and put its message, not call the mailbox full, and the stats must not
 * count the lag as used cells.
 */
static void test_mbox_lagging_tail(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_mbox_stats st;
	struct ipc_mbox mb;
	struct ipc_msg m;

	(void)state;
	ipc_mbox_resolve(seg, slot, &mb);
	for (int i = 0; i < 8; i++)
		assert_int_equal(ipc_send(seg, a, 0, (uint32_t)i, 0, 0, "x", 1, 0), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* the empty peek frees the first line of cells: position 7's cell is FREE(7 + 16) */
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	assert_true(atomic_load(&mb.seq[7]) == ipc_seq_make(7 + 16, IPC_S_FREE, 0, 0));
	/* the producer of position 7 had not moved the tail yet */
	atomic_store(&mb.h->tail, 7);
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.cells_used, 0);
	assert_int_equal(ipc_send(seg, a, 0, 99, 0, 0, "y", 1, 0), 0);
	assert_int_equal(atomic_load(&mb.h->tail), 9);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 99);
	assert_int_equal(m.pos, 8);
	ipc_mbox_consume(seg, slot, &m);
	/* a message of more than one cell takes the general path: the same */
	atomic_store(&mb.h->tail, 8);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	{
		char big[100] = "big";

		assert_int_equal(ipc_send(seg, a, 0, 100, 0, 0, big, sizeof(big), 0), 0);
	}
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 100);
	assert_int_equal(m.pos, 9);
	ipc_mbox_consume(seg, slot, &m);
	it_destroy(seg);
}

/*
 * ipc_mbox_peek_spin(): empty after its spins; a message sent by another process while it
 * spins; filler at the head, which only the full peek behind the spin skips.
 */
static void test_mbox_peek_spin(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	uint8_t big[460] = {0};
	struct ipc_msg m;
	pid_t pid;

	(void)state;
	it_host(seg, a, seg->self);
	assert_int_equal(ipc_mbox_peek_spin(seg, slot, &m, 100), -EAGAIN);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		it_child_claim(seg);
		_exit(ipc_send(seg, a, 0, 5, 0, 0, "hello", 6, 1000) ? 1 : 0);
	}
	{
		uint64_t deadline = shm_now_ns() + 10000000000ull;
		int r;

		while ((r = ipc_mbox_peek_spin(seg, slot, &m, 1000)) == -EAGAIN &&
		       shm_now_ns() < deadline)
			;
		assert_int_equal(r, 0);
	}
	assert_true(it_ok(it_wait_child(pid, 10000)));
	assert_int_equal(m.type, 5);
	assert_string_equal((const char *)m.data, "hello");
	ipc_mbox_consume(seg, slot, &m);
	/* 8 cells at position 1 fit; the next 8 do not fit before the end: filler at 9 */
	assert_int_equal(ipc_send(seg, a, 0, 6, 0, 0, big, sizeof(big), 0), 0);
	assert_int_equal(ipc_mbox_peek_spin(seg, slot, &m, 10), 0);
	assert_int_equal(m.type, 6);
	ipc_mbox_consume(seg, slot, &m);
	/* the empty peek frees the consumed cells (lazily freed until then) */
	assert_int_equal(ipc_mbox_peek_spin(seg, slot, &m, 10), -EAGAIN);
	assert_int_equal(ipc_send(seg, a, 0, 7, 0, 0, big, sizeof(big), 0), 0);
	assert_int_equal(ipc_mbox_peek_spin(seg, slot, &m, 10), 0);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.pos, 16);
	ipc_mbox_consume(seg, slot, &m);
	assert_int_equal(ipc_mbox_peek_spin(seg, slot, &m, 10), -EAGAIN);
	it_destroy(seg);
}

/* Many laps of a small ring with sizes that force padding at the end. */
static void test_mbox_wrap_and_pad(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	uint8_t buf[480];
	uint64_t sent = 0, got = 0;

	(void)state;
	while (got < 20000) {
		struct ipc_msg m;
		struct pl_head h;
		uint32_t len = 16 + (uint32_t)((sent * 131) % 464);

		make_payload(buf, 0, sent, len);
		if (ipc_send(seg, a, 0, 0, 0, 0, buf, len, 0) == 0) {
			sent++;
			continue;
		}
		/* full: drain one or two */
		for (int i = 0; i < 2 && ipc_mbox_peek(seg, slot, &m) == 0; i++) {
			assert_true(check_payload(&m, &h));
			assert_int_equal(h.seq, got);
			got++;
			ipc_mbox_consume(seg, slot, &m);
		}
	}
	assert_no_errors();
	it_destroy(seg);
}

/* Selective receive takes a reply out of the middle; the others keep their order. */
static void test_mbox_take_reply_in_place(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_msg m;
	char buf[16];

	(void)state;
	assert_int_equal(ipc_send(seg, a, 0, 1, 0, 0, "one", 4, 0), 0);
	assert_int_equal(ipc_send(seg, a, 0, 1, IPC_F_REPLY, 42, "reply", 6, 0), 0);
	assert_int_equal(ipc_send(seg, a, 0, 1, 0, 0, "two", 4, 0), 0);
	assert_int_equal(ipc_mbox_take_reply(seg, slot, 41, &m, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(ipc_mbox_take_reply(seg, slot, 42, &m, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "reply");
	assert_int_equal(m.len, 6);
	assert_int_equal(ipc_mbox_depth(seg, slot), 2);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_string_equal((const char *)m.data, "one");
	ipc_mbox_consume(seg, slot, &m);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_string_equal((const char *)m.data, "two");
	ipc_mbox_consume(seg, slot, &m);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	/* a reply at the head taken by an inbox that never peeks still frees its cells */
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(ipc_send(seg, a, 0, 1, IPC_F_REPLY, 1000 + i, "r", 2, 0), 0);
		assert_int_equal(ipc_mbox_take_reply(seg, slot, 1000 + i, &m, buf, sizeof(buf)), 0);
	}
	it_destroy(seg);
}

/* --- errors --- */

/*
 * Payload bytes where a later lap's first cell keeps its stamp word must not pass for a
 * stamp: a 2-cell message whose payload holds, in its second cell's stamp word, the very
 * stamp that cell's next-lap position would carry. Once the ring has come round to it, the
 * consumer must find nothing there (the free cleared the word), then the real message.
 */
static void test_mbox_stamp_not_forged(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	uint8_t big[64];
	uint32_t forged = ipc_stamp_make(16 + 1, IPC_ST_READY);
	struct ipc_msg m;

	(void)state;
	memset(big, 0xab, sizeof(big));
	/* cell 1's bytes 28..31 are payload bytes 64 + 28 - 32 = 60..63 */
	memcpy(big + 60, &forged, sizeof(forged));
	assert_int_equal(ipc_msg_cells(sizeof(big)), 2);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, big, sizeof(big), 0), 0);
	for (int i = 2; i < 16; i++)
		assert_int_equal(ipc_send(seg, a, 0, 7, 0, 0, "x", 1, 0), 0);
	for (int i = 0; i < 15; i++) {
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* position 16 (cell 0), then the head at 17: cell 1, never claimed in this lap */
	assert_int_equal(ipc_send(seg, a, 0, 8, 0, 0, "y", 1, 0), 0);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 8);
	ipc_mbox_consume(seg, slot, &m);
	for (int i = 0; i < 300; i++)
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	assert_int_equal(ipc_send(seg, a, 0, 9, 0, 0, "z", 1, 0), 0);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 9);
	assert_int_equal(m.pos, 17);
	it_destroy(seg);
}

static void test_mbox_full_eagain(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	struct ipc_mbox_stats st;
	struct ipc_msg m;
	int i;

	(void)state;
	for (i = 0; i < 16; i++)
		assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), 0);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), -EAGAIN);
	ipc_mbox_stats(seg, shoal_handle_slot(a), &st);
	assert_int_equal(st.depth, 16);
	assert_int_equal(st.cells_used, 16);
	/* room again after one is consumed */
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(a), &m), 0);
	ipc_mbox_consume(seg, shoal_handle_slot(a), &m);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), 0);
	it_destroy(seg);
}

static void test_mbox_full_timeout(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint64_t t0;
	pid_t pid;

	(void)state;
	for (int i = 0; i < 16; i++)
		assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), 0);
	t0 = shm_now_ns();
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 30), -ETIMEDOUT);
	assert_true(shm_now_ns() - t0 >= 30000000u);
	/* a waiting sender gets in once another process consumes */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ipc_msg m;

		it_child_claim(seg);
		while (!atomic_load(&bk->ready))
			sched_yield();
		if (ipc_mbox_peek(seg, shoal_handle_slot(a), &m))
			_exit(1);
		ipc_mbox_consume(seg, shoal_handle_slot(a), &m);
		_exit(0);
	}
	atomic_store(&bk->ready, 1);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "y", 1, 10000), 0);
	assert_true(it_ok(it_wait_child(pid, 10000)));
	atomic_store(&bk->ready, 0);
	it_destroy(seg);
}

static void test_mbox_oversized(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	static uint8_t big[4097];
	struct ipc_msg m;

	(void)state;
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, big, 4097, 0), -EMSGSIZE);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, big, 4096, 0), 0);
	assert_int_equal(ipc_mbox_peek(seg, shoal_handle_slot(a), &m), 0);
	assert_int_equal(m.len, 4096);
	it_destroy(seg);
}

static void test_mbox_stale_handle(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg), b;

	(void)state;
	shm_agent_free(seg, shoal_handle_slot(a));
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), -ENOENT);
	b = it_agent(seg);
	assert_int_equal(shoal_handle_slot(b), shoal_handle_slot(a));
	assert_int_not_equal(b, a);
	assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "x", 1, 0), -ESTALE);
	assert_int_equal(ipc_send(seg, b, 0, 0, 0, 0, "x", 1, 0), 0);
	assert_int_equal(ipc_send(seg, shoal_handle_make(1000000, 1), 0, 0, 0, 0, "x", 1, 0),
			 -ENOENT);
	/* a DOWN agent still takes messages: its mailbox outlives its crash */
	atomic_store(&shm_agent_at(seg, shoal_handle_slot(b))->state, SHM_AGENT_DOWN);
	assert_int_equal(ipc_send(seg, b, 0, 0, 0, 0, "x", 1, 0), 0);
	assert_int_equal(ipc_mbox_depth(seg, shoal_handle_slot(b)), 2);
	it_destroy(seg);
}

/* --- many processes --- */

/* 2 producers, 1 consumer, mixed sizes: every message once, in per-sender order. */
static void test_mbox_stress_2p1c(void **state)
{
	uint64_t n = it_env_u64("SHOAL_TEST_MSGS", IT_SANITIZED ? 1000000 : 10000000);
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	pid_t c, p0, p1;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	c = spawn_consumer(seg, a, n, 0);
	p0 = spawn_producer(seg, a, 0, n / 2, true, 1);
	p1 = spawn_producer(seg, a, 1, n - n / 2, true, BATCH_MAX);
	if (!it_ok(it_wait_child(p0, 120000)) || !it_ok(it_wait_child(p1, 120000)) ||
	    !it_ok(it_wait_child(c, 120000)))
		fail_msg("a child failed: %s", bk->why);
	assert_no_errors();
	assert_int_equal(atomic_load(&bk->recv[0]), n / 2);
	assert_int_equal(atomic_load(&bk->recv[1]), n - n / 2);
	assert_int_equal(atomic_load(&bk->redelivered), 0);
	it_destroy(seg);
}

/*
 * Producers SIGKILLed at random points while a steady producer and the consumer run:
 * every acknowledged message arrives, in order, nothing hangs behind a dead claim.
 */
static void test_mbox_kill_producers(void **state)
{
	struct shm_seg *seg = it_create("mbox", 64, 1024);
	shoal_handle_t a = it_agent(seg);
	const uint32_t steady = MAX_SENDERS - 1, victims = 16;
	pid_t c, s;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	srandom((unsigned)getpid());
	c = spawn_consumer(seg, a, 0, 0);
	s = spawn_producer(seg, a, steady, IT_SANITIZED ? 30000 : 100000, true, 1);
	for (uint32_t v = 0; v < victims; v++) {
		uint64_t at = 1 + (uint64_t)random() % 3000;
		pid_t p = spawn_producer(seg, a, v, UINT64_MAX / 2, true, v % 2 ? BATCH_MAX : 1);
		int status;

		if (!it_wait_u64(&bk->acked[v], at, 20000))
			fail_msg("victim %u stuck at %llu (errors: %s)", v,
				 (unsigned long long)atomic_load(&bk->acked[v]), bk->why);
		/* a few spins more so the kill lands at varying instructions */
		for (long i = random() % 20000; i > 0; i--)
			shm_cpu_relax();
		kill(p, SIGKILL);
		status = it_wait_child(p, 10000);
		assert_true(WIFSIGNALED(status));
		it_repair(seg, atomic_load(&bk->slot_of[v]));
	}
	if (!it_ok(it_wait_child(s, 60000)))
		fail_msg("steady producer failed: %s", bk->why);
	for (uint32_t v = 0; v < victims; v++)
		assert_true(it_wait_u64(&bk->recv[v], atomic_load(&bk->acked[v]), 20000));
	assert_true(it_wait_u64(&bk->recv[steady], atomic_load(&bk->acked[steady]), 20000));
	atomic_store(&bk->stop, 1);
	ipc_ring(seg, atomic_load(&bk->consumer_slot));
	assert_true(it_ok(it_wait_child(c, 20000)));
	assert_no_errors();
	for (uint32_t v = 0; v < victims; v++) {
		/* at most the send in flight when it died got in unacknowledged */
		assert_true(atomic_load(&bk->recv[v]) <= atomic_load(&bk->acked[v]) + BATCH_MAX);
	}
	assert_int_equal(ipc_mbox_depth(seg, shoal_handle_slot(a)), 0);
	{
		struct ipc_mbox_stats st;

		ipc_mbox_stats(seg, shoal_handle_slot(a), &st);
		print_message("%u producers killed, %llu claims skipped, %llu full waits\n",
			      victims, (unsigned long long)st.skipped_dead,
			      (unsigned long long)st.full_waits);
	}
	it_destroy(seg);
}

/*
 * The consumer SIGKILLed at random points and restarted: nothing queued is lost, a
 * message seen twice is flagged redelivered, order holds.
 */
static void test_mbox_kill_consumer(void **state)
{
	struct shm_seg *seg = it_create("mbox", 64, 1024);
	shoal_handle_t a = it_agent(seg);
	uint64_t per = IT_SANITIZED ? 30000 : 200000;
	int kills = 0, c_status = -2;
	pid_t c, p0, p1;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	srandom((unsigned)getpid() * 7);
	callback_spins = 300;
	c = spawn_consumer(seg, a, 2 * per, 0);
	p0 = spawn_producer(seg, a, 0, per, true, 1);
	p1 = spawn_producer(seg, a, 1, per, true, BATCH_MAX);
	for (int k = 0; k < 15 && c_status == -2; k++) {
		uint64_t at = atomic_load(&bk->total) + 1 + (uint64_t)random() % (per / 20);
		int status;

		if (at > 2 * per)
			break; /* (almost) done: let this consumer finish */
		if (!it_wait_u64(&bk->total, at, 20000))
			fail_msg("consumer stuck at %llu: %s",
				 (unsigned long long)atomic_load(&bk->total), bk->why);
		for (long i = random() % 5000; i > 0; i--)
			shm_cpu_relax();
		kill(c, SIGKILL);
		status = it_wait_child(c, 10000);
		if (WIFEXITED(status)) {
			c_status = status; /* it finished before the kill landed */
			break;
		}
		kills++;
		it_repair(seg, atomic_load(&bk->consumer_slot));
		c = spawn_consumer(seg, a, 2 * per, 0);
	}
	if (c_status == -2)
		c_status = it_wait_child(c, 60000);
	callback_spins = 0;
	if (!it_ok(it_wait_child(p0, 60000)) || !it_ok(it_wait_child(p1, 60000)) ||
	    !it_ok(c_status))
		fail_msg("a child failed: %s", bk->why);
	assert_no_errors();
	assert_int_equal(atomic_load(&bk->recv[0]), per);
	assert_int_equal(atomic_load(&bk->recv[1]), per);
	print_message("consumer killed %d times, %llu messages redelivered\n", kills,
		      (unsigned long long)atomic_load(&bk->redelivered));
	it_destroy(seg);
}

/* A consumer killed inside its callback: the restarted one gets that message, flagged. */
static void test_mbox_redelivered_flag(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint8_t buf[64];
	int status;
	pid_t c;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	for (uint64_t q = 0; q < 10; q++) {
		make_payload(buf, 0, q, 32);
		assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, buf, 32, 0), 0);
	}
	c = spawn_consumer(seg, a, 10, 5); /* dies after applying message 4 */
	status = it_wait_child(c, 10000);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(atomic_load(&bk->recv[0]), 5);
	it_repair(seg, atomic_load(&bk->consumer_slot));
	c = spawn_consumer(seg, a, 10, 0);
	assert_true(it_ok(it_wait_child(c, 10000)));
	assert_no_errors();
	assert_int_equal(atomic_load(&bk->recv[0]), 10);
	assert_int_equal(atomic_load(&bk->redelivered), 1);
	{
		struct ipc_mbox_stats st;

		ipc_mbox_stats(seg, shoal_handle_slot(a), &st);
		assert_int_equal(st.redelivered, 1);
	}
	it_destroy(seg);
}

/*
 * A producer process that claims k cells at position pos of slot's mailbox (moving the
 * tail past them), writes `stamp` (if not 0) into the stamp word of the claim's cell
 * `stamp_cell`, and is SIGKILLed holding the claim. Its process slot is in bk->slot_of[0].
 */
static void die_holding_claim(struct shm_seg *seg, uint32_t slot, uint64_t pos, uint32_t k,
			      uint64_t stamp_cell, uint32_t stamp)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct ipc_mbox mb;
		uint64_t s = ipc_seq_make(pos, IPC_S_FREE, 0, 0);

		it_child_claim(seg);
		atomic_store(&bk->slot_of[0], seg->self);
		atomic_store(&shm_proc_at(seg, seg->self)->mbox_intent, slot + 1);
		ipc_mbox_resolve(seg, slot, &mb);
		if (!atomic_compare_exchange_strong(&mb.seq[pos & mb.mask], &s,
						    ipc_seq_make(pos, IPC_S_CLAIMED, k, seg->self)))
			_exit(2);
		atomic_store(&mb.h->tail, pos + k);
		if (stamp)
			atomic_store(ipc_stamp_at(&mb, stamp_cell), stamp);
		raise(SIGKILL);
	}
	assert_true(WIFSIGNALED(it_wait_child(pid, 10000)));
}

/*
 * A dead producer's claim over 2 cells, its second cell's stamp word holding bytes that
 * read as that cell's READY stamp a lap later: skipping the claim zeroes them, so the head
 * finds nothing there when the ring comes round.
 */
static void test_mbox_dead_claim_stamp(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_msg m;

	(void)state;
	die_holding_claim(seg, slot, 0, 2, 1, ipc_stamp_make(16 + 1, IPC_ST_READY));
	assert_int_equal(it_repair(seg, atomic_load(&bk->slot_of[0])), 1);
	for (int i = 2; i < 17; i++) {
		assert_int_equal(ipc_send(seg, a, 0, (uint32_t)i, 0, 0, "x", 1, 0), 0);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_int_equal(m.type, i);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* the head is at 17: cell 1, unclaimed in this lap */
	for (int i = 0; i < 300; i++)
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	it_destroy(seg);
}

/*
 * The window between an agent slot reading STARTING (S2 in shm_agent_alloc()) and its
 * mailbox's init: a send with the previous incarnation's handle and a broadcast over a
 * group that still lists that handle are turned away and write nothing (the slot's new
 * generation is published with STARTING); the supervisor's repair of a producer that died
 * holding a claim in the previous incarnation's ring does write there, and the init that
 * follows resets all of it: the new incarnation starts empty and takes messages.
 */
static void test_mbox_slot_window(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t old = it_agent(seg), now;
	uint32_t slot = shoal_handle_slot(old), again, dead;
	uint64_t len = SHM_MBOX_STRIDE(16);
	uint8_t *box = shm_mbox_at(seg, slot), *before = malloc(len);
	struct shm_agent *a = shm_agent_at(seg, slot);
	struct ipc_msg m;

	(void)state;
	assert_non_null(before);
	assert_int_equal(shm_grp_join(seg, "win", 3, old), 0);
	assert_int_equal(ipc_send(seg, old, 0, 1, 0, 0, "a", 1, 0), 0);
	die_holding_claim(seg, slot, 1, 1, 0, 0);
	dead = atomic_load(&bk->slot_of[0]);
	/* freed (its group membership left behind) and allocated again: the window opens */
	shm_agent_free(seg, slot);
	assert_int_equal(shm_agent_alloc(seg, 0, &again), 0);
	assert_int_equal(again, slot);
	assert_int_equal(atomic_load(&a->state), SHM_AGENT_STARTING);
	memcpy(before, box, len);
	assert_int_equal(ipc_send(seg, old, 0, 2, 0, 0, "b", 1, 0), -ESTALE);
	assert_int_equal(ipc_broadcast(seg, 0, "win", 3, "c", 1, 0), -ESTALE);
	assert_memory_equal(before, box, len);
	/* the repair walks the ring the dead producer named: the previous incarnation's */
	assert_int_equal(it_repair(seg, dead), 1);
	assert_memory_not_equal(before, box, len);
	ipc_mbox_init(seg, slot);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	now = shoal_handle_make(slot, atomic_load(&a->gen));
	assert_int_not_equal(now, old);
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	assert_int_equal(ipc_send(seg, now, 0, 4, 0, 0, "d", 1, 0), 0);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 4);
	ipc_mbox_consume(seg, slot, &m);
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	free(before);
	it_destroy(seg);
}

/*
 * A stale sender's stop: the sender's thread faults on one protected page of the mailbox
 * (its first access there: the tail, or the sequence word it claims or checks) and the
 * SIGSEGV handler frees the agent slot, allocates it again and initialises its mailbox
 * (what another process could do while the sender was descheduled), then lets the faulting
 * instruction run again. The stop is at an instruction of the library's own code, which
 * needs no hook on the send path.
 */
static struct {
	struct shm_seg *seg;
	uint32_t slot;	/* the agent slot to free and allocate again */
	uintptr_t page; /* the protected page */
	uintptr_t at;	/* the address the sender faulted on */
	uint32_t again; /* the slot the allocation returned */
	int hits;	/* stops so far */
	int alloc_err;	/* shm_agent_alloc()'s result */
} stop;

static void reincarnate(struct shm_seg *seg, uint32_t slot, uint32_t *again, int *err)
{
	struct shm_agent *a = shm_agent_at(seg, slot);

	shm_agent_free(seg, slot);
	*err = shm_agent_alloc(seg, 0, again);
	if (*err || *again != slot)
		return;
	ipc_mbox_init(seg, slot);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
}

static void stop_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t at = (uintptr_t)si->si_addr, psz = (uintptr_t)sysconf(_SC_PAGESIZE);

	(void)sig;
	(void)uc;
	if (at < stop.page || at >= stop.page + psz)
		_exit(98); /* a fault of its own, not our stop */
	mprotect((void *)stop.page, psz, PROT_READ | PROT_WRITE);
	stop.at = at;
	stop.hits++;
	reincarnate(stop.seg, stop.slot, &stop.again, &stop.alloc_err);
}

/* Arm a stop at the first access to the page holding addr. */
static void stop_arm(struct shm_seg *seg, uint32_t slot, const void *addr)
{
	uintptr_t psz = (uintptr_t)sysconf(_SC_PAGESIZE);
	struct sigaction sa = {.sa_sigaction = stop_handler, .sa_flags = SA_SIGINFO};

	memset(&stop, 0, sizeof(stop));
	stop.seg = seg;
	stop.slot = slot;
	stop.page = (uintptr_t)addr & ~(psz - 1);
	assert_int_equal(sigaction(SIGSEGV, &sa, NULL), 0);
	assert_int_equal(mprotect((void *)stop.page, psz, PROT_NONE), 0);
}

#define T_STALE 666u
#define T_FRESH 7u

enum stale_path { STALE_SMALL, STALE_LARGE, STALE_BATCH };
enum stale_stop { STOP_CHECKED, STOP_TAIL_READ };

/*
 * One stale send: a sender whose handle passed check_to() (gen G) stops, the agent slot is
 * freed, allocated again (G + 1) and its mailbox initialised, and the sender goes on:
 * STOP_CHECKED before it reads the tail, STOP_TAIL_READ after (at its claim, or at its
 * look at the last cell it needs). The message was meant for the previous agent: the send
 * must fail with -ESTALE, and the new incarnation must not see it: its mailbox empty, then
 * taking fresh messages of every kind (one cell, several, a batch) in order, with the depth
 * and the statistics they imply.
 */
static void stale_send_case(enum stale_path path, enum stale_stop where)
{
	struct shm_seg *seg = it_create("mbox", 4096, 1024);
	shoal_handle_t old = it_agent(seg), now;
	uint32_t slot = shoal_handle_slot(old), n = 0;
	struct shm_agent *a = shm_agent_at(seg, slot);
	static uint8_t big[200];
	struct ipc_mbox_stats st;
	struct ipc_out out[3];
	struct ipc_mbox mb;
	struct ipc_msg m;
	uint64_t t;
	int r;

	ipc_mbox_resolve(seg, slot, &mb);
	/* the previous incarnation's ring: 1024 messages through it, 2 still queued */
	for (int i = 0; i < 1026; i++)
		assert_int_equal(ipc_send(seg, old, 0, T_STALE, 0, 0, "o", 1, 0), 0);
	for (int i = 0; i < 1024; i++) {
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* a tail whose sequence words are not on the tail's page */
	t = atomic_load(&mb.h->tail);
	assert_int_equal(t, 1026);
	if (where == STOP_CHECKED)
		stop_arm(seg, slot, &mb.h->tail);
	else
		stop_arm(seg, slot, &mb.seq[t & mb.mask]);
	switch (path) {
	case STALE_SMALL:
		r = ipc_send(seg, old, 0, T_STALE, 0, 0, "stale", 6, 0);
		break;
	case STALE_LARGE:
		r = ipc_send(seg, old, 0, T_STALE, 0, 0, big, sizeof(big), 0);
		break;
	default:
		for (int i = 0; i < 2; i++)
			out[i] = (struct ipc_out){
				.to = old, .type = T_STALE, .len = 5, .data = "stale"};
		r = ipc_send_batch(seg, 0, out, 2, 0);
		break;
	}
	signal(SIGSEGV, SIG_DFL);
	assert_int_equal(stop.hits, 1);
	assert_int_equal(stop.alloc_err, 0);
	assert_int_equal(stop.again, slot);
	/* the stop was where it was meant to be */
	if (where == STOP_CHECKED)
		assert_true(stop.at == (uintptr_t)&mb.h->tail);
	else
		assert_true(stop.at >= (uintptr_t)&mb.seq[t & mb.mask] &&
			    stop.at < (uintptr_t)&mb.seq[(t & mb.mask) + 4]);
	assert_int_equal(r, -ESTALE);
	now = shoal_handle_make(slot, atomic_load(&a->gen));
	assert_int_not_equal(now, old);
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	/* the new incarnation's ring, one cell at a time past where the stale one aimed */
	for (; n < 1100; n++) {
		assert_int_equal(ipc_send(seg, now, 0, T_FRESH, 0, n, "f", 2, 0), 0);
		assert_int_equal(ipc_mbox_depth(seg, slot), 1);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_int_equal(m.type, T_FRESH);
		assert_int_equal(m.ref, n);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* then every kind of send */
	for (int lap = 0; lap < 1100; lap++) {
		assert_int_equal(ipc_send(seg, now, 0, T_FRESH, 0, n, "f", 2, 0), 0);
		assert_int_equal(ipc_send(seg, now, 0, T_FRESH, 0, n + 1, big, sizeof(big), 0), 0);
		for (int i = 0; i < 3; i++)
			out[i] = (struct ipc_out){
				.to = now, .type = T_FRESH, .len = 8, .data = "batched"};
		assert_int_equal(ipc_send_batch(seg, 0, out, 3, 0), 3);
		assert_int_equal(ipc_mbox_depth(seg, slot), 5);
		for (uint32_t i = 0; i < 5; i++) {
			assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
			assert_int_equal(m.type, T_FRESH);
			if (i < 2)
				assert_int_equal(m.ref, n + i);
			ipc_mbox_consume(seg, slot, &m);
		}
		n += 5;
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	}
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.dequeued, n);
	assert_int_equal(st.enqueued, n);
	assert_int_equal(st.cells_used, 0);
	assert_int_equal(st.skipped_dead, 0);
	it_destroy(seg);
}

/* A stale sender on the one-cell path (ipc_mbox_put_small()), both stops. */
static void test_mbox_stale_sender_small(void **state)
{
	(void)state;
	stale_send_case(STALE_SMALL, STOP_CHECKED);
	stale_send_case(STALE_SMALL, STOP_TAIL_READ);
}

/* A stale sender of a message of several cells (the general path, try_put()). */
static void test_mbox_stale_sender_large(void **state)
{
	(void)state;
	stale_send_case(STALE_LARGE, STOP_CHECKED);
	stale_send_case(STALE_LARGE, STOP_TAIL_READ);
}

/* A stale sender of a batch (ipc_send_batch(): one claim for the run). */
static void test_mbox_stale_sender_batch(void **state)
{
	(void)state;
	stale_send_case(STALE_BATCH, STOP_CHECKED);
	stale_send_case(STALE_BATCH, STOP_TAIL_READ);
}

/* test_mbox_repair_races_reinit: the agent slot the repair's hook reincarnates. */
static struct {
	struct shm_seg *seg;
	uint32_t slot, again;
	int hits, err;
} rep;

/* Repair's hook: at its first look at a sequence word, free, allocate and init the slot. */
static void repair_hook(int point)
{
	if (point != IPC_HOOK_REPAIR_READ || rep.hits++)
		return;
	reincarnate(rep.seg, rep.slot, &rep.again, &rep.err);
}

/*
 * The supervisor's repair of a producer that died holding a claim in an agent's mailbox,
 * racing the slot's free, allocation and mailbox init: it read a word of the previous
 * incarnation's ring (a message at the head, which it helps the tail past) before the
 * init and acts on it after. Nothing it read there may match the new ring: the new tail
 * must not move past a cell nobody claimed (the next message would never be delivered),
 * and the new incarnation takes messages as a fresh one does, for laps.
 */
static void test_mbox_repair_races_reinit(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t old = it_agent(seg), now;
	uint32_t slot = shoal_handle_slot(old), dead;
	struct ipc_mbox_stats st;
	struct ipc_msg m;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	assert_int_equal(ipc_send(seg, old, 0, T_STALE, 0, 0, "o", 1, 0), 0);
	die_holding_claim(seg, slot, 1, 1, 0, 0);
	dead = atomic_load(&bk->slot_of[0]);
	memset(&rep, 0, sizeof(rep));
	rep.seg = seg;
	rep.slot = slot;
	ipc_mbox_test_hook = repair_hook;
	/* its claim went with the previous incarnation's ring: nothing left to skip */
	assert_int_equal(it_repair(seg, dead), 0);
	ipc_mbox_test_hook = NULL;
	assert_true(rep.hits >= 1);
	assert_int_equal(rep.err, 0);
	assert_int_equal(rep.again, slot);
	now = shoal_handle_make(slot, atomic_load(&shm_agent_at(seg, slot)->gen));
	assert_int_not_equal(now, old);
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	for (uint64_t i = 0; i < 40; i++) {
		assert_int_equal(ipc_send(seg, now, 0, T_FRESH, 0, i, "f", 2, 0), 0);
		assert_int_equal(ipc_mbox_depth(seg, slot), 1);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_int_equal(m.type, T_FRESH);
		assert_int_equal(m.ref, i);
		ipc_mbox_consume(seg, slot, &m);
	}
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.dequeued, 40);
	assert_int_equal(st.cells_used, 0);
	assert_int_equal(st.skipped_dead, 0);
	it_destroy(seg);
}

/* The page of addr, protected or given back. */
static void page_protect(const void *addr, int prot)
{
	uintptr_t psz = (uintptr_t)sysconf(_SC_PAGESIZE);

	if (mprotect((void *)((uintptr_t)addr & ~(psz - 1)), psz, prot))
		_exit(97);
}

/* test_mbox_reinit_waits_live_claim: the cell whose page the stopped sender faults on. */
static const void *held_cell;

/* The sender's stop, in its own process: until the test says go. */
static void held_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t psz = (uintptr_t)sysconf(_SC_PAGESIZE), at = (uintptr_t)si->si_addr;
	uintptr_t page = (uintptr_t)held_cell & ~(psz - 1);
	uint64_t dl = shm_now_ns() + 10000000000ull;

	(void)sig;
	(void)uc;
	if (at < page || at >= page + psz)
		_exit(98);
	atomic_store(&bk->at_pad, 1);
	while (!atomic_load(&bk->go))
		if (shm_now_ns() > dl)
			_exit(7);
	page_protect(held_cell, PROT_READ | PROT_WRITE);
}

struct init_arg {
	struct shm_seg *seg;
	uint32_t slot;
	_Atomic uint32_t done;
};

static void *init_thread(void *p)
{
	struct init_arg *ia = p;

	ipc_mbox_init(ia->seg, ia->slot);
	atomic_store(&ia->done, 1);
	return NULL;
}

/*
 * Send and take count one-cell messages through the new incarnation `now` one at a time
 * (past every cell of the ring when count exceeds it): each arrives, in order, alone.
 */
static void assert_ring_takes(struct shm_seg *seg, shoal_handle_t now, uint64_t count)
{
	uint32_t slot = shoal_handle_slot(now);
	struct ipc_msg m;

	for (uint64_t i = 0; i < count; i++) {
		assert_int_equal(ipc_send(seg, now, 0, T_FRESH, 0, i, "f", 2, 0), 0);
		assert_int_equal(ipc_mbox_depth(seg, slot), 1);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_int_equal(m.type, T_FRESH);
		assert_int_equal(m.ref, i);
		ipc_mbox_consume(seg, slot, &m);
	}
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
}

/*
 * A sender whose claim in the previous incarnation's ring was made (and its generation
 * checked) before the slot was freed, and which is still writing the claim's cells when
 * the slot's mailbox is initialised again. Its batch of two messages holds one claim and
 * stores the second message's sequence word while it holds it. The init must wait for the
 * claim before it hands those cells to the new ring (it has not returned 300 ms later), go
 * on once the sender publishes, and leave a ring that takes messages for laps.
 */
static void test_mbox_reinit_waits_live_claim(void **state)
{
	struct shm_seg *seg = it_create("mbox", 4096, 1024);
	shoal_handle_t old = it_agent(seg), now;
	uint32_t slot = shoal_handle_slot(old), again;
	struct shm_agent *a = shm_agent_at(seg, slot);
	struct init_arg ia = {.seg = seg, .slot = slot};
	struct ipc_mbox_stats st;
	struct ipc_mbox mb;
	struct ipc_msg m;
	pthread_t th;
	pid_t pid;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	ipc_mbox_resolve(seg, slot, &mb);
	for (int i = 0; i < 1026; i++) {
		assert_int_equal(ipc_send(seg, old, 0, T_STALE, 0, 0, "o", 1, 0), 0);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		ipc_mbox_consume(seg, slot, &m);
	}
	/* its cells are on a page of their own, away from the tail and sequence words */
	held_cell = mb.cells + (1026 & mb.mask) * SHM_MBOX_CELL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction sa = {.sa_sigaction = held_handler, .sa_flags = SA_SIGINFO};
		struct ipc_out out[2] = {{.to = old, .type = T_STALE, .len = 8, .data = "stale 1"},
					 {.to = old, .type = T_STALE, .len = 8, .data = "stale 2"}};

		it_child_claim(seg);
		sigaction(SIGSEGV, &sa, NULL);
		page_protect(held_cell, PROT_NONE);
		_exit(ipc_send_batch(seg, 0, out, 2, 0) == 2 ? 0 : 1);
	}
	assert_true(it_wait_u32(&bk->at_pad, 1, 10000));
	/* the sender holds its claim at 1026; the slot is freed and allocated again */
	assert_int_equal(ipc_seq_state(atomic_load(&mb.seq[1026])), IPC_S_CLAIMED);
	shm_agent_free(seg, slot);
	assert_int_equal(shm_agent_alloc(seg, 0, &again), 0);
	assert_int_equal(again, slot);
	assert_int_equal(pthread_create(&th, NULL, init_thread, &ia), 0);
	/* not done while the claim is held: a window within the init's own wait, unscaled */
	assert_false(it_wait_u32_unscaled(&ia.done, 1, 300));
	atomic_store(&bk->go, 1);
	assert_true(it_ok(it_wait_child(pid, 10000)));
	assert_true(it_wait_u32(&ia.done, 1, 10000));
	pthread_join(th, NULL);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	now = shoal_handle_make(slot, atomic_load(&a->gen));
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	assert_ring_takes(seg, now, 2 * 4096 + 3);
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.dequeued, 2 * 4096 + 3);
	assert_int_equal(st.cells_used, 0);
	it_destroy(seg);
}

/*
 * The same with a sender that died holding its claim (not repaired yet): nothing will
 * write those cells any more, and the init does not wait for it.
 */
static void test_mbox_reinit_dead_claim(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t old = it_agent(seg), now;
	uint32_t slot = shoal_handle_slot(old), again;
	struct shm_agent *a = shm_agent_at(seg, slot);
	uint64_t t0;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	assert_int_equal(ipc_send(seg, old, 0, T_STALE, 0, 0, "o", 1, 0), 0);
	die_holding_claim(seg, slot, 1, 2, 0, 0);
	shm_agent_free(seg, slot);
	assert_int_equal(shm_agent_alloc(seg, 0, &again), 0);
	assert_int_equal(again, slot);
	t0 = shm_now_ns();
	ipc_mbox_init(seg, slot);
	assert_true(shm_now_ns() - t0 < 500000000ull);
	atomic_store_explicit(&a->state, SHM_AGENT_RUNNING, memory_order_release);
	now = shoal_handle_make(slot, atomic_load(&a->gen));
	assert_int_equal(ipc_mbox_depth(seg, slot), 0);
	assert_ring_takes(seg, now, 40);
	/* its repair, later, finds nothing of it in the new ring */
	assert_int_equal(it_repair(seg, atomic_load(&bk->slot_of[0])), 0);
	assert_ring_takes(seg, now, 40);
	it_destroy(seg);
}

/* Send sender's next message of len bytes (its per-sender sequence in *seq). */
static int send_seq(struct shm_seg *seg, shoal_handle_t to, uint32_t sender, uint64_t *seq,
		    uint32_t len, int timeout_ms)
{
	uint8_t buf[256];
	int r;

	make_payload(buf, sender, *seq, len);
	r = ipc_send(seg, to, SHOAL_HANDLE_NONE, 1, 0, 0, buf, len, timeout_ms);
	if (r == 0)
		(*seq)++;
	return r;
}

/* The producer's hook: stop between stamping filler and publishing it, until told. */
static void pad_hook(int point)
{
	uint64_t dl = shm_now_ns() + 10000000000ull;

	if (point != IPC_HOOK_PAD_STAMPED)
		return;
	atomic_store(&bk->at_pad, 1);
	while (!atomic_load(&bk->go))
		if (shm_now_ns() > dl)
			_exit(7);
}

/*
 * Filler whose producer is slow to publish it: the consumer parks at it (a live claim at
 * its head), other producers fill the ring behind it and wait for room. When the filler's
 * producer publishes it and finds no room either, it must ring the consumer, or all of
 * them wait for ever (found by the 2-producer stress: 'producer 0 timed out ... seq[h] PAD,
 * consumer parked').
 */
static void test_mbox_pad_then_full(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	struct ipc_mbox mb;
	uint64_t seq0 = 0;
	uint32_t cslot;
	pid_t c, p;
	int r;

	(void)state;
	memset(bk, 0, sizeof(*bk));
	c = spawn_consumer(seg, a, 0, 0);
	cslot = atomic_load(&bk->consumer_slot);
	/* the tail to cell 14: a 3-cell message will need filler to the end of the ring */
	for (int i = 0; i < 14; i++)
		assert_int_equal(send_seq(seg, a, 0, &seq0, 16, 1000), 0);
	assert_true(it_wait_u64(&bk->recv[0], 14, 10000));
	p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		uint64_t seq1 = 0;

		it_child_claim(seg);
		ipc_mbox_test_hook = pad_hook;
		_exit(send_seq(seg, a, 1, &seq1, 100, 5000) == 0 ? 0 : 1);
	}
	assert_true(it_wait_u32(&bk->at_pad, 1, 10000));
	/*
	 * Up to 14 messages behind the filler, then the ring is full. Up to IPC_FREE_LINE - 1 of
	 * the 14 consumed cells may still wait to be freed (an idle consumer frees whole lines
	 * of sequence words: ipc/mbox.c), so the ring fills after 21 to 28 messages in all; this
	 * used to assert exactly 28, which failed whenever a cell was not freed yet.
	 */
	for (r = 0; r == 0;)
		r = send_seq(seg, a, 0, &seq0, 16, 0);
	assert_int_equal(r, -EAGAIN);
	ipc_mbox_resolve(seg, shoal_handle_slot(a), &mb);
	if (seq0 < 28 - (8 - 1) || seq0 > 28)
		fail_msg("the ring filled after %llu messages, not 21..28 (freed %llu)",
			 (unsigned long long)seq0, (unsigned long long)atomic_load(&mb.h->freed));
	/* the consumer parks: nothing to deliver behind a live claim at its head */
	assert_true(it_wait_u32(&shm_proc_at(seg, cslot)->parked, 1, 10000));
	atomic_store(&bk->go, 1);
	/* the filler is published, its producer's message waits for room: all arrive */
	assert_true(it_ok(it_wait_child(p, 10000)));
	assert_true(it_wait_u64(&bk->recv[0], seq0, 10000));
	assert_true(it_wait_u64(&bk->recv[1], 1, 10000));
	atomic_store(&bk->stop, 1);
	ipc_ring(seg, cslot);
	assert_true(it_ok(it_wait_child(c, 10000)));
	assert_no_errors();
	it_destroy(seg);
}

/*
 * A dead claim repaired while the head is still before it, behind a live producer's claim:
 * the consumer's empty peeks at that live claim must not use up repair's request to read
 * the sequence words. Once the head reaches the skipped claim, the message after it is
 * delivered at the next peek (a consumer parked on peek would otherwise sleep with a full
 * mailbox, its producers waiting for room and nobody ringing).
 */
static void test_mbox_skip_behind_live_claim(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_wire hw = {.type = 5};
	struct ipc_mbox mb;
	struct ipc_msg m;
	uint64_t s = ipc_seq_make(0, IPC_S_FREE, 0, 0);

	(void)state;
	ipc_mbox_resolve(seg, slot, &mb);
	/* position 0: our own claim, in progress */
	assert_true(atomic_compare_exchange_strong(&mb.seq[0], &s,
						   ipc_seq_make(0, IPC_S_CLAIMED, 1, seg->self)));
	atomic_store(&mb.h->tail, 1);
	/* position 1: a producer that dies holding its claim */
	die_holding_claim(seg, slot, 1, 1, 0, 0);
	assert_int_equal(it_repair(seg, atomic_load(&bk->slot_of[0])), 1);
	/* position 2: a complete message */
	assert_int_equal(ipc_send(seg, a, 0, 7, 0, 0, "m", 1, 0), 0);
	/* the head waits at the live claim; its empty peeks come and go */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	/* the claim at 0 completes */
	memcpy(mb.cells, &hw, offsetof(struct ipc_wire, stamp));
	atomic_store(ipc_stamp_at(&mb, 0), ipc_stamp_make(0, IPC_ST_READY));
	s = ipc_seq_make(0, IPC_S_CLAIMED, 1, seg->self);
	assert_true(
		atomic_compare_exchange_strong(&mb.seq[0], &s, ipc_seq_make(0, IPC_S_READY, 1, 0)));
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 5);
	ipc_mbox_consume(seg, slot, &m);
	/* the head is at the skipped claim: the message behind it, at once */
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.pos, 2);
	ipc_mbox_consume(seg, slot, &m);
	assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
	it_destroy(seg);
}

/* A claim left by a dead producer: skipped by repair, or by the consumer itself. */
static void test_mbox_dead_claim(void **state)
{
	struct shm_seg *seg = it_create("mbox", 256, 4096);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct ipc_mbox_stats st;
	struct ipc_msg m;

	(void)state;
	for (int round = 0; round < 2; round++) {
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0) {
			struct ipc_mbox mb;
			uint64_t t, s;

			it_child_claim(seg);
			atomic_store(&bk->slot_of[0], seg->self);
			if (ipc_send(seg, a, 0, 0, 0, 0, "before", 7, 0))
				_exit(1);
			/* claim the next cell as ipc_mbox_put() does, then die before READY */
			atomic_store(&shm_proc_at(seg, seg->self)->mbox_intent, slot + 1);
			ipc_mbox_resolve(seg, slot, &mb);
			t = atomic_load(&mb.h->tail);
			s = atomic_load(&mb.seq[t & mb.mask]);
			if (!atomic_compare_exchange_strong(
				    &mb.seq[t & mb.mask], &s,
				    ipc_seq_make(t, IPC_S_CLAIMED, 1, seg->self)))
				_exit(2);
			if (round == 0)
				atomic_store(&mb.h->tail, t + 1); /* round 1: the tail stays */
			raise(SIGKILL);
		}
		status = it_wait_child(pid, 10000);
		assert_true(WIFSIGNALED(status));
		/* a live producer's message behind the dead claim */
		assert_int_equal(ipc_send(seg, a, 0, 0, 0, 0, "after", 6, 0), 0);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_string_equal((const char *)m.data, "before");
		ipc_mbox_consume(seg, slot, &m);
		/* the claim's owner is not known dead yet: the consumer waits */
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
		if (round == 0) {
			assert_int_equal(it_repair(seg, atomic_load(&bk->slot_of[0])), 1);
		} else {
			/* marked dead, not repaired: the consumer skips the claim itself, at its
			 * next read of the sequence words (one per 256 empty peeks) */
			atomic_store(&shm_proc_at(seg, atomic_load(&bk->slot_of[0]))->state,
				     SHM_PROC_DEAD);
			for (int i = 0; i < 256 && ipc_mbox_peek(seg, slot, &m); i++)
				;
		}
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), 0);
		assert_string_equal((const char *)m.data, "after");
		ipc_mbox_consume(seg, slot, &m);
		assert_int_equal(ipc_mbox_peek(seg, slot, &m), -EAGAIN);
		if (round == 1)
			it_repair(seg, atomic_load(&bk->slot_of[0]));
	}
	ipc_mbox_stats(seg, slot, &st);
	assert_int_equal(st.skipped_dead, 2);
	it_destroy(seg);
}

/* --- threads, for ThreadSanitizer --- */

struct thr_arg {
	struct shm_seg *seg;
	shoal_handle_t to;
	uint64_t n;
	uint32_t sender;
};

static void *thr_producer(void *p)
{
	struct thr_arg *t = p;
	uint8_t buf[256];

	for (uint64_t q = 0; q < t->n; q++) {
		uint32_t len = 16 + (uint32_t)(q % 200);

		make_payload(buf, t->sender, q, len);
		while (ipc_send(t->seg, t->to, 0, 0, 0, 0, buf, len, 0) == -EAGAIN)
			sched_yield();
	}
	return NULL;
}

static void test_mbox_two_threads(void **state)
{
	struct shm_seg *seg = it_create("mbox", 64, 480);
	shoal_handle_t a = it_agent(seg);
	uint32_t slot = shoal_handle_slot(a);
	struct thr_arg args[2] = {{seg, a, 50000, 0}, {seg, a, 50000, 1}};
	uint64_t next[2] = {0, 0}, end = shm_now_ns() + 120000000000ull;
	pthread_t th[2];

	(void)state;
	memset(bk, 0, sizeof(*bk));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thr_producer, &args[i]), 0);
	while (next[0] + next[1] < 100000) {
		struct ipc_msg m;
		struct pl_head h;

		if (ipc_mbox_peek(seg, slot, &m)) {
			assert_true(shm_now_ns() < end);
			sched_yield();
			continue;
		}
		assert_true(check_payload(&m, &h));
		assert_true(h.sender < 2);
		assert_int_equal(h.seq, next[h.sender]);
		next[h.sender]++;
		ipc_mbox_consume(seg, slot, &m);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	it_destroy(seg);
}

/* A stale sender thread while the mailbox's slot is freed, allocated and initialised again. */
struct reinit_sender {
	struct shm_seg seg; /* a copy of the attachment with its own process slot */
	uint32_t slot;
	_Atomic uint32_t stop;
	_Atomic uint64_t sent, refused;
	_Atomic int err; /* an unexpected result, 0 none */
};

static void *reinit_send(void *arg)
{
	struct reinit_sender *s = arg;
	struct shm_agent *a = shm_agent_at(&s->seg, s->slot);

	while (!atomic_load(&s->stop)) {
		/* the handle of whichever incarnation is there now: stale by the send, often */
		uint32_t gen = atomic_load_explicit(&a->gen, memory_order_relaxed);
		shoal_handle_t h = shoal_handle_make(s->slot, gen);
		/* a full mailbox waits (1 ms) for space: the space words in the header */
		int r = ipc_send(&s->seg, h, 0, 0, 0, gen, "reinit", 7, 1);

		if (r == 0)
			atomic_fetch_add(&s->sent, 1);
		else if (r == -ESTALE || r == -ENOENT || r == -ETIMEDOUT || r == -EAGAIN)
			atomic_fetch_add(&s->refused, 1);
		else {
			atomic_store(&s->err, r);
			break;
		}
	}
	return NULL;
}

/*
 * A sender thread with whatever handle the slot has at the moment while the main thread,
 * its consumer, takes a few messages, then frees, allocates and initialises the slot again
 * (ipc_mbox_init(): I1, I0): every message delivered was sent with the
 * handle of the incarnation that receives it. For ThreadSanitizer: the init's stores
 * against a stale sender's claim, its tail moves and its wait for space.
 */
static void test_mbox_reinit_threads(void **state)
{
	struct shm_seg *seg = it_create("mbox", 16, 256);
	shoal_handle_t h = it_agent(seg);
	struct reinit_sender s = {.seg = *seg, .slot = shoal_handle_slot(h)};
	uint64_t got = 0;
	pthread_t t;

	(void)state;
	s.seg.self = UINT32_MAX;
	assert_int_equal(shm_proc_claim(&s.seg, SHM_ROLE_CLIENT, false), 0);
	assert_int_equal(pthread_create(&t, NULL, reinit_send, &s), 0);
	for (int round = 0; round < 2000; round++) {
		struct shm_agent *a = shm_agent_at(seg, s.slot);
		uint32_t gen = atomic_load(&a->gen), again = 0;
		uint64_t tries = atomic_load(&s.sent) + atomic_load(&s.refused);
		uint64_t end = shm_now_ns() + 10000000000ull;
		struct ipc_msg m;
		int err = 0;

		/* the sender's next send, so each incarnation meets one */
		while (atomic_load(&s.sent) + atomic_load(&s.refused) == tries &&
		       !atomic_load(&s.err))
			assert_true(shm_now_ns() < end);
		for (int i = 0; i < 4 && ipc_mbox_peek(seg, s.slot, &m) == 0; i++) {
			if (m.ref != gen)
				fail_msg("round %d: a message sent to generation %llu reached "
					 "generation %u",
					 round, (unsigned long long)m.ref, gen);
			ipc_mbox_consume(seg, s.slot, &m);
			got++;
		}
		reincarnate(seg, s.slot, &again, &err);
		assert_int_equal(err, 0);
		assert_int_equal(again, s.slot);
	}
	atomic_store(&s.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&s.err), 0);
	print_message("reinit: %llu sent, %llu refused, %llu delivered\n",
		      (unsigned long long)atomic_load(&s.sent),
		      (unsigned long long)atomic_load(&s.refused), (unsigned long long)got);
	shm_proc_release(&s.seg);
	it_destroy(seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mbox_order_and_stats),
		cmocka_unit_test(test_mbox_lagging_tail),
		cmocka_unit_test(test_mbox_peek_spin),
		cmocka_unit_test(test_mbox_wrap_and_pad),
		cmocka_unit_test(test_mbox_take_reply_in_place),
		cmocka_unit_test(test_mbox_stamp_not_forged),
		cmocka_unit_test(test_mbox_full_eagain),
		cmocka_unit_test(test_mbox_full_timeout),
		cmocka_unit_test(test_mbox_oversized),
		cmocka_unit_test(test_mbox_stale_handle),
		cmocka_unit_test(test_mbox_dead_claim),
		cmocka_unit_test(test_mbox_dead_claim_stamp),
		cmocka_unit_test(test_mbox_slot_window),
		cmocka_unit_test(test_mbox_stale_sender_small),
		cmocka_unit_test(test_mbox_stale_sender_large),
		cmocka_unit_test(test_mbox_stale_sender_batch),
		cmocka_unit_test(test_mbox_repair_races_reinit),
		cmocka_unit_test(test_mbox_reinit_waits_live_claim),
		cmocka_unit_test(test_mbox_reinit_dead_claim),
		cmocka_unit_test(test_mbox_skip_behind_live_claim),
		cmocka_unit_test(test_mbox_pad_then_full),
		cmocka_unit_test(test_mbox_redelivered_flag),
		cmocka_unit_test(test_mbox_two_threads),
		cmocka_unit_test(test_mbox_reinit_threads),
		cmocka_unit_test(test_mbox_stress_2p1c),
		cmocka_unit_test(test_mbox_kill_producers),
		cmocka_unit_test(test_mbox_kill_consumer),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (soaks of one test) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, setup, teardown);
}

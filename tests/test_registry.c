/* test_registry: the lock-free registry: API, full table, reuse, races, crashes at every step. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support.h"
#include "shm/registry.h"
#include "shm/registry_int.h"
#include "shm/shm.h"

static char inst[64];
static pid_t test_pid; /* the test process: forked children exit if it is gone */

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-reg-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	shm_seg_unlink(inst);
	return 0;
}

static struct shm_seg *make_seg(uint32_t cap)
{
	struct shm_cfg cfg;

	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = cap;
	cfg.max_groups = 8;
	cfg.group_members = 8;
	return ts_seg_make(inst, &cfg, SHM_ROLE_SUPERVISOR);
}

static void done_seg(struct shm_seg *seg)
{
	ts_seg_drop(seg, inst);
}

static int reg(struct shm_seg *seg, uint32_t ns, const char *name, shoal_handle_t h)
{
	return shm_reg_register(seg, ns, name, strlen(name), h, NULL);
}

static int unreg(struct shm_seg *seg, uint32_t ns, const char *name)
{
	return shm_reg_unregister(seg, ns, name, strlen(name), SHOAL_HANDLE_NONE);
}

static shoal_handle_t look(const struct shm_seg *seg, uint32_t ns, const char *name)
{
	shoal_handle_t h = 0;

	if (shm_reg_lookup(seg, ns, name, strlen(name), &h, NULL))
		return 0;
	return h;
}

static void assert_check(const struct shm_seg *seg)
{
	char err[256] = "";

	if (shm_reg_check(seg, err, sizeof(err)))
		fail_msg("registry check: %s", err);
}

static void test_registry_basic(void **state)
{
	struct shm_seg *seg = make_seg(256);
	struct shm_reg_meta m = {.len = 5}, out;
	shoal_handle_t h;

	(void)state;
	assert_int_equal(reg(seg, 0, "alpha", 11), 0);
	assert_int_equal(look(seg, 0, "alpha"), 11);
	assert_int_equal(look(seg, 0, "beta"), 0);
	assert_int_equal(shm_reg_lookup(seg, 0, "beta", 4, &h, NULL), -ENOENT);
	assert_int_equal(reg(seg, 0, "alpha", 12), -EEXIST);
	assert_int_equal(look(seg, 0, "alpha"), 11);
	memcpy(m.data, "hello", 5);
	assert_int_equal(shm_reg_reregister(seg, 0, "alpha", 5, 13, &m), 0);
	assert_int_equal(shm_reg_lookup(seg, 0, "alpha", 5, &h, &out), 0);
	assert_int_equal(h, 13);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "hello", 5);
	assert_int_equal(shm_reg_reregister(seg, 0, "nope", 4, 13, NULL), -ENOENT);
	assert_int_equal(shm_reg_unregister(seg, 0, "alpha", 5, 99), -ESTALE);
	assert_int_equal(shm_reg_unregister(seg, 0, "alpha", 5, 13), 0);
	assert_int_equal(unreg(seg, 0, "alpha"), -ENOENT);
	assert_int_equal(look(seg, 0, "alpha"), 0);
	assert_int_equal(reg(seg, 0, "alpha", 14), 0);
	assert_int_equal(look(seg, 0, "alpha"), 14);
	assert_check(seg);
	done_seg(seg);
}

static void test_registry_meta_roundtrip(void **state)
{
	struct shm_seg *seg = make_seg(64);
	struct shm_reg_meta m, out;

	(void)state;
	for (uint32_t len = 0; len <= SHOAL_META_MAX; len++) {
		char name[16];

		snprintf(name, sizeof(name), "m%u", len);
		memset(&m, 0, sizeof(m));
		m.len = len;
		for (uint32_t i = 0; i < len; i++)
			m.data[i] = (uint8_t)(i * 7 + len);
		assert_int_equal(shm_reg_register(seg, 3, name, strlen(name), 100 + len, &m), 0);
		memset(&out, 0xff, sizeof(out));
		assert_int_equal(
			shm_reg_lookup(seg, 3, name, strlen(name), &(shoal_handle_t){0}, &out), 0);
		assert_int_equal(out.len, len);
		assert_memory_equal(out.data, m.data, len);
	}
	m.len = SHOAL_META_MAX + 1;
	assert_int_equal(shm_reg_register(seg, 3, "toolong", 7, 1, &m), -EINVAL);
	done_seg(seg);
}

static void test_registry_bad_names(void **state)
{
	struct shm_seg *seg = make_seg(64);
	char n64[65], n63[64];
	shoal_handle_t h;

	(void)state;
	memset(n64, 'x', 64);
	n64[64] = 0;
	memset(n63, 'y', 63);
	n63[63] = 0;
	assert_int_equal(shm_reg_register(seg, 0, "", 0, 1, NULL), -EINVAL);
	assert_int_equal(shm_reg_register(seg, 0, n64, 64, 1, NULL), -EINVAL);
	assert_int_equal(shm_reg_register(seg, 0, "a\0b", 3, 1, NULL), -EINVAL);
	assert_int_equal(shm_reg_register(seg, 0, NULL, 3, 1, NULL), -EINVAL);
	assert_int_equal(shm_reg_register(seg, SHM_NS_MAX + 1, "a", 1, 1, NULL), -EINVAL);
	assert_int_equal(shm_reg_register(seg, 0, "a", 1, SHOAL_HANDLE_NONE, NULL), -EINVAL);
	assert_int_equal(shm_reg_lookup(seg, 0, n64, 64, &h, NULL), -EINVAL);
	assert_int_equal(shm_reg_lookup(seg, 0, "", 0, &h, NULL), -EINVAL);
	assert_int_equal(shm_reg_unregister(seg, 0, "a\0b", 3, 0), -EINVAL);
	/* a NUL anywhere inside, at every length: a lookup says -EINVAL, not -ENOENT */
	assert_int_equal(shm_reg_lookup(seg, 0, "a\0b", 3, &h, NULL), -EINVAL);
	for (uint32_t len = 1; len <= SHOAL_NAME_MAX; len++)
		for (uint32_t at = 0; at < len; at++) {
			memset(n64, 'n', len);
			n64[at] = 0;
			assert_int_equal(shm_reg_lookup(seg, 0, n64, len, &h, NULL), -EINVAL);
		}
	/* 63 bytes is fine, and so is every length up to it */
	assert_int_equal(shm_reg_register(seg, 0, n63, 63, 7, NULL), 0);
	assert_int_equal(look(seg, 0, n63), 7);
	assert_int_equal(shm_reg_count(seg), 1);
	done_seg(seg);
}

/* Name i of length len: bytes from a pattern, the last one varied by i. */
static void len_name(char *buf, uint32_t len, uint32_t i)
{
	for (uint32_t j = 0; j < len; j++)
		buf[j] = (char)('a' + (j * 7 + len) % 26);
	buf[len - 1] = (char)('A' + i);
	buf[len] = 0;
}

static int lens_visit(uint32_t ns, const char *name, shoal_handle_t h,
		      const struct shm_reg_meta *meta, void *arg)
{
	char want[SHOAL_NAME_MAX + 1];
	uint32_t len = (uint32_t)(h >> 8), i = (uint32_t)(h & 0xff);

	(void)meta;
	assert_int_equal(ns, 4);
	len_name(want, len, i);
	assert_string_equal(name, want);
	(*(int *)arg)++;
	return 0;
}

/*
 * Every name length, with names that share all but their last byte, across the word
 * boundaries the lookup paths split on (8, 16 and the 40 bytes an entry line holds), in a
 * table full enough that some live past their home bucket.
 */
static void test_registry_name_lengths(void **state)
{
	struct shm_seg *seg = make_seg(256);
	char name[SHOAL_NAME_MAX + 2];
	struct shm_reg_meta m = {.len = 9}, out;
	struct shm_reg_stats st;
	shoal_handle_t h;
	int n = 0;

	(void)state;
	memcpy(m.data, "metadata!", 9);
	for (uint32_t len = 1; len <= SHOAL_NAME_MAX; len++)
		for (uint32_t i = 0; i < 3; i++) {
			len_name(name, len, i);
			assert_int_equal(shm_reg_register(seg, 4, name, len, len << 8 | i, &m), 0);
		}
	assert_int_equal(shm_reg_stats(seg, &st), 0);
	assert_true(st.longest_probe > 1);
	for (uint32_t len = 1; len <= SHOAL_NAME_MAX; len++) {
		for (uint32_t i = 0; i < 3; i++) {
			len_name(name, len, i);
			assert_int_equal(look(seg, 4, name), len << 8 | i);
			assert_int_equal(look(seg, 5, name), 0);
			memset(&out, 0, sizeof(out));
			assert_int_equal(shm_reg_lookup(seg, 4, name, len, &h, &out), 0);
			assert_int_equal(h, len << 8 | i);
			assert_int_equal(out.len, 9);
			assert_memory_equal(out.data, "metadata!", 9);
		}
		/* one more or one less byte, or another last byte: not registered */
		len_name(name, len, 3);
		assert_int_equal(look(seg, 4, name), 0);
		len_name(name, len, 0);
		name[len] = 'z';
		name[len + 1] = 0;
		if (len < SHOAL_NAME_MAX)
			assert_int_equal(look(seg, 4, name), 0);
		if (len > 1) {
			name[len - 1] = 0;
			assert_int_not_equal(look(seg, 4, name), len << 8);
		}
	}
	assert_int_equal(shm_reg_foreach(seg, lens_visit, &n), 0);
	assert_int_equal(n, 3 * SHOAL_NAME_MAX);
	assert_check(seg);
	for (uint32_t len = 1; len <= SHOAL_NAME_MAX; len++)
		for (uint32_t i = 0; i < 3; i++) {
			len_name(name, len, i);
			assert_int_equal(unreg(seg, 4, name), 0);
			assert_int_equal(look(seg, 4, name), 0);
		}
	assert_int_equal(shm_reg_count(seg), 0);
	assert_check(seg);
	done_seg(seg);
}

/* The name word holding byte `byte` of the live entry that maps to h. */
static _Atomic uint64_t *entry_name_word(const struct shm_seg *seg, shoal_handle_t h, uint32_t byte)
{
	const struct shm_hdr *hd = shm_hdr(seg);
	uint8_t *base = seg->base + hd->regions[SHM_R_REGISTRY].off;
	uint32_t cap = hd->cfg.reg_capacity, w = byte / 8;
	struct shm_reg_entry *e = (void *)(base + SHM_REG_ENTRIES_OFF(cap));
	struct shm_reg_ext *x = (void *)(base + SHM_REG_EXTS_OFF(cap));

	for (uint32_t i = 0; i < cap; i++)
		if (SHM_REG_CTL_STATE(atomic_load(&e[i].ctl)) == SHM_REG_LIVE &&
		    atomic_load(&e[i].handle) == h)
			return w < SHM_REG_NAME_HOT_WORDS ? &e[i].name[w]
							  : &x[i].name[w - SHM_REG_NAME_HOT_WORDS];
	return NULL;
}

/*
 * A lookup compares the whole name, not only its hash: an entry whose stored name differs
 * from the one asked for in any word (first, middle, last, in the entry's line or in its
 * extension) is not found, by every lookup path.
 */
static void test_registry_name_compared(void **state)
{
	static const uint32_t lens[] = {3, 8, 12, 16, 24, 40, 41, 50, 63};
	struct shm_seg *seg = make_seg(64);
	char name[SHOAL_NAME_MAX + 1];
	struct shm_reg_meta out;
	shoal_handle_t h;

	(void)state;
	for (uint32_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
		uint32_t len = lens[t];

		len_name(name, len, 0);
		assert_int_equal(reg(seg, 6, name, 1000 + len), 0);
		for (uint32_t byte = 0; byte < len; byte += 7) {
			_Atomic uint64_t *w = entry_name_word(seg, 1000 + len, byte);
			uint64_t v;

			assert_non_null(w);
			v = atomic_load(w);
			atomic_store(w, v ^ (0x01ull << (8 * (byte % 8))));
			assert_int_equal(shm_reg_lookup(seg, 6, name, len, &h, NULL), -ENOENT);
			assert_int_equal(shm_reg_lookup(seg, 6, name, len, &h, &out), -ENOENT);
			atomic_store(w, v);
			assert_int_equal(look(seg, 6, name), 1000 + len);
		}
	}
	done_seg(seg);
}

static void test_registry_namespaces(void **state)
{
	struct shm_seg *seg = make_seg(64);

	(void)state;
	assert_int_equal(reg(seg, 0, "same", 1), 0);
	assert_int_equal(reg(seg, 1, "same", 2), 0);
	assert_int_equal(reg(seg, SHM_NS_MAX, "same", 3), 0);
	assert_int_equal(look(seg, 0, "same"), 1);
	assert_int_equal(look(seg, 1, "same"), 2);
	assert_int_equal(look(seg, SHM_NS_MAX, "same"), 3);
	assert_int_equal(look(seg, 2, "same"), 0);
	assert_int_equal(unreg(seg, 1, "same"), 0);
	assert_int_equal(look(seg, 0, "same"), 1);
	assert_int_equal(look(seg, 1, "same"), 0);
	assert_check(seg);
	done_seg(seg);
}

static void test_registry_full_table(void **state)
{
	struct shm_seg *seg = make_seg(16);
	char name[32];

	(void)state;
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "full-%d", i);
		assert_int_equal(reg(seg, 0, name, 100 + i), 0);
	}
	assert_int_equal(reg(seg, 0, "one-more", 999), -ENOSPC);
	assert_int_equal(reg(seg, 0, "full-3", 999), -EEXIST);
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "full-%d", i);
		assert_int_equal(look(seg, 0, name), 100 + i);
	}
	assert_int_equal(look(seg, 0, "one-more"), 0);
	assert_int_equal(shm_reg_count(seg), 16);
	assert_check(seg);
	/* one freed entry is enough again */
	assert_int_equal(unreg(seg, 0, "full-7"), 0);
	assert_int_equal(reg(seg, 0, "one-more", 999), 0);
	assert_int_equal(look(seg, 0, "one-more"), 999);
	assert_check(seg);
	done_seg(seg);
}

static void test_registry_slot_reuse(void **state)
{
	struct shm_seg *seg = make_seg(64);
	struct shm_reg_stats st;
	uint64_t live[48] = {0};
	char name[32];
	unsigned seed = 1;

	(void)state;
	/* 100,000 cycles through a 64-entry table kept 75% full */
	for (int cycle = 0; cycle < 100000; cycle++) {
		int i = (int)(rand_r(&seed) % 48);

		snprintf(name, sizeof(name), "reuse-%d", i);
		if (live[i]) {
			assert_int_equal(unreg(seg, 0, name), 0);
			live[i] = 0;
		} else {
			assert_int_equal(reg(seg, 0, name, (uint64_t)cycle + 1), 0);
			live[i] = (uint64_t)cycle + 1;
		}
		if (cycle % 5000 == 0) {
			assert_check(seg);
			assert_int_equal(shm_reg_stats(seg, &st), 0);
			assert_int_equal(st.overflow_excess, 0);
		}
	}
	for (int i = 0; i < 48; i++) {
		snprintf(name, sizeof(name), "reuse-%d", i);
		assert_int_equal(look(seg, 0, name), live[i]);
	}
	assert_int_equal(shm_reg_stats(seg, &st), 0);
	assert_int_equal(st.overflow_excess, 0);
	assert_int_equal(st.claimed, 0);
	assert_true(st.longest_chain <= 8); /* 8 buckets: bounded by the table, not history */
	/* emptied, every counter is back to zero: no tombstones left behind */
	for (int i = 0; i < 48; i++) {
		snprintf(name, sizeof(name), "reuse-%d", i);
		if (live[i])
			assert_int_equal(unreg(seg, 0, name), 0);
	}
	assert_int_equal(shm_reg_stats(seg, &st), 0);
	assert_int_equal(st.live, 0);
	assert_int_equal(st.longest_chain, 1);
	done_seg(seg);
}

struct visit {
	int n;
	uint64_t sum;
	int stop_at;
};

static int visit_fn(uint32_t ns, const char *name, shoal_handle_t h,
		    const struct shm_reg_meta *meta, void *arg)
{
	struct visit *v = arg;

	(void)meta;
	assert_int_equal(ns, 5);
	assert_int_equal(strncmp(name, "each-", 5), 0);
	v->n++;
	v->sum += h;
	return v->stop_at && v->n == v->stop_at ? 42 : 0;
}

static void test_registry_foreach_count(void **state)
{
	struct shm_seg *seg = make_seg(128);
	struct visit v = {0};
	char name[32];

	(void)state;
	for (int i = 1; i <= 50; i++) {
		snprintf(name, sizeof(name), "each-%d", i);
		assert_int_equal(reg(seg, 5, name, (uint64_t)i), 0);
	}
	assert_int_equal(shm_reg_count(seg), 50);
	assert_int_equal(shm_reg_foreach(seg, visit_fn, &v), 0);
	assert_int_equal(v.n, 50);
	assert_int_equal(v.sum, 50 * 51 / 2);
	v = (struct visit){.stop_at = 10};
	assert_int_equal(shm_reg_foreach(seg, visit_fn, &v), 42);
	assert_int_equal(v.n, 10);
	assert_int_equal(shm_reg_unregister_handle(seg, 7), 1);
	assert_int_equal(shm_reg_count(seg), 49);
	done_seg(seg);
}

static void test_registry_readonly_lookup(void **state)
{
	struct shm_seg *seg = make_seg(64), *ro = NULL;
	char err[256];

	(void)state;
	assert_int_equal(reg(seg, 0, "visible", 77), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 100, &ro, err, sizeof(err)), 0);
	assert_int_equal(look(ro, 0, "visible"), 77);
	assert_int_equal(shm_reg_count(ro), 1);
	assert_int_equal(reg(ro, 0, "nope", 1), -EROFS);
	assert_check(ro);
	shm_seg_detach(ro);
	done_seg(seg);
}

/* --- two threads racing on one mapping (for ThreadSanitizer) --- */

#define RACE_NAMES 2000

struct racer {
	struct shm_seg seg; /* a copy of the attachment with its own process slot */
	shoal_handle_t handle;
	_Atomic int *go;
	int wins[RACE_NAMES];
};

static void *race_thread(void *arg)
{
	struct racer *r = arg;
	char name[32];

	for (int i = 0; i < RACE_NAMES; i++) {
		snprintf(name, sizeof(name), "race-%d", i);
		/* step together every 16 names so the registrations really overlap */
		if (i % 16 == 0) {
			atomic_fetch_add(r->go, 1);
			while (atomic_load(r->go) < 2 * (i / 16 + 1))
				;
		}
		r->wins[i] = reg(&r->seg, 0, name, r->handle) == 0;
		if (i % 3 == 0 && r->wins[i]) {
			/* and some unregister/re-register churn the other thread races with */
			assert_int_equal(
				shm_reg_reregister(&r->seg, 0, name, strlen(name), r->handle, NULL),
				0);
		}
	}
	return NULL;
}

static void test_registry_thread_race(void **state)
{
	struct shm_seg *seg = make_seg(4096);
	static struct racer r[2];
	_Atomic int go = 0;
	pthread_t t[2];
	char name[32];

	(void)state;
	for (int k = 0; k < 2; k++) {
		memcpy(&r[k].seg, seg, sizeof(*seg));
		r[k].seg.self = UINT32_MAX;
		assert_int_equal(shm_proc_claim(&r[k].seg, SHM_ROLE_CLIENT, false), 0);
		shm_proc_set_state(&r[k].seg, SHM_PROC_RUNNING);
		r[k].handle = 1000 + (uint64_t)k;
		r[k].go = &go;
	}
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, race_thread, &r[k]), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	for (int i = 0; i < RACE_NAMES; i++) {
		snprintf(name, sizeof(name), "race-%d", i);
		if (r[0].wins[i] + r[1].wins[i] != 1)
			fail_msg("%s: %d winners", name, r[0].wins[i] + r[1].wins[i]);
		assert_int_equal(look(seg, 0, name), r[0].wins[i] ? 1000 : 1001);
	}
	assert_int_equal(shm_reg_count(seg), RACE_NAMES);
	assert_check(seg);
	for (int k = 0; k < 2; k++)
		shm_proc_release(&r[k].seg);
	done_seg(seg);
}

/* A name past the entry's hot words: its bytes 40..59 live in the extension. */
#define LONG_NAME   "seqlock-body-name-long-enough-to-reach-the-ext-words-0123456"
#define BODY_READS  50000u
#define BODY_ROUNDS 2000u

struct body_race {
	struct shm_seg seg;    /* a copy of the attachment with its own process slot */
	_Atomic uint32_t go;   /* the reader is reading: start writing */
	_Atomic uint32_t stop; /* the reader is done: stop writing */
	_Atomic uint64_t last; /* the last round the writer completed */
};

/* The metadata round k writes: 1 + k % SHOAL_META_MAX bytes, each k's low byte. */
static void body_meta(uint64_t k, struct shm_reg_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->len = 1 + (uint32_t)(k % SHOAL_META_MAX);
	memset(m->data, (int)(k & 0xff), m->len);
}

static void *body_writer(void *arg)
{
	struct body_race *r = arg;
	struct shm_reg_meta m;

	while (!atomic_load(&r->go))
		;
	for (uint64_t k = 2; !atomic_load(&r->stop); k++) {
		body_meta(k, &m);
		shm_reg_reregister(&r->seg, 0, "torn", 4, k, &m);
		if (k % 2)
			shm_reg_unregister(&r->seg, 0, LONG_NAME, strlen(LONG_NAME), k - 1);
		else
			shm_reg_register(&r->seg, 0, LONG_NAME, strlen(LONG_NAME), k, &m);
		atomic_store(&r->last, k);
	}
	return NULL;
}

/* An entry's handle and metadata must come from one round: metadata says which. */
static bool body_whole(shoal_handle_t h, const struct shm_reg_meta *m)
{
	struct shm_reg_meta want;

	body_meta(h, &want);
	return m->len == want.len && !memcmp(m->data, want.data, SHOAL_META_MAX);
}

static int body_visit(uint32_t ns, const char *name, shoal_handle_t h, const struct shm_reg_meta *m,
		      void *arg)
{
	(void)ns;
	if (strcmp(name, "torn") && strcmp(name, LONG_NAME))
		fail_msg("foreach: a name no one registered: '%s'", name);
	if (!body_whole(h, m))
		fail_msg("foreach: '%s' handle %llu with metadata of another round", name,
			 (unsigned long long)h);
	++*(uint64_t *)arg;
	return 0;
}

/*
 * A writer thread re-registers and registers/unregisters over the same mapping as a reader
 * thread's lookups and foreach: the reader never sees one round's handle with another's
 * metadata, nor a name that was never registered.
 */
static void test_registry_body_threads(void **state)
{
	struct shm_seg *seg = make_seg(64);
	static struct body_race r;
	struct shm_reg_meta m;
	uint64_t seen = 0, last;
	shoal_handle_t h;
	uint32_t i;
	pthread_t t;
	int ret;

	(void)state;
	memcpy(&r.seg, seg, sizeof(*seg));
	r.seg.self = UINT32_MAX;
	atomic_store(&r.go, 0);
	atomic_store(&r.stop, 0);
	atomic_store(&r.last, 1);
	assert_int_equal(shm_proc_claim(&r.seg, SHM_ROLE_CLIENT, false), 0);
	shm_proc_set_state(&r.seg, SHM_PROC_RUNNING);
	body_meta(1, &m);
	assert_int_equal(shm_reg_register(seg, 0, "torn", 4, 1, &m), 0);
	assert_int_equal(pthread_create(&t, NULL, body_writer, &r), 0);
	atomic_store(&r.go, 1);
	/* read only once the writer writes, until both did enough (one may start first) */
	while (atomic_load(&r.last) < 2)
		;
	for (i = 0; i < BODY_READS || atomic_load(&r.last) < BODY_ROUNDS; i++) {
		assert_int_equal(shm_reg_lookup(seg, 0, "torn", 4, &h, &m), 0);
		if (!body_whole(h, &m))
			fail_msg("lookup: handle %llu with metadata of another round",
				 (unsigned long long)h);
		ret = shm_reg_lookup(seg, 0, LONG_NAME, strlen(LONG_NAME), &h, &m);
		if (ret == 0 && !body_whole(h, &m))
			fail_msg("lookup: long name, handle %llu with metadata of another round",
				 (unsigned long long)h);
		assert_true(ret == 0 || ret == -ENOENT);
		if (i % 16 == 0)
			assert_int_equal(shm_reg_foreach(seg, body_visit, &seen), 0);
	}
	atomic_store(&r.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	last = atomic_load(&r.last);
	assert_int_equal(look(seg, 0, "torn"), last);
	assert_int_equal(look(seg, 0, LONG_NAME), last % 2 ? 0 : last);
	assert_true(seen > 0);
	assert_check(seg);
	print_message("registry: %llu writer rounds during %u reads\n", (unsigned long long)last,
		      i);
	shm_proc_release(&r.seg);
	done_seg(seg);
}

/* --- a writer stopped at each step --- */

static int kill_at;
static int kill_count; /* SHM_REG_STEP_COUNTER: die at this occurrence */

static void kill_hook(int step)
{
	if (step == kill_at && --kill_count <= 0)
		raise(SIGKILL);
}

/* Make the calling (child) process a writer with its own slot; it dies with the test. */
static void child_claim(struct shm_seg *seg)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != test_pid)
		_exit(91); /* the test died before we could ask to follow it */
	seg->self = UINT32_MAX;
	if (shm_proc_claim(seg, SHM_ROLE_CLIENT, false))
		_exit(90);
	shm_proc_set_state(seg, SHM_PROC_RUNNING);
}

/* What the supervisor does after a death: mark DEAD, repair, mark EXITED. */
static int bury(struct shm_seg *seg, uint32_t slot, bool repair)
{
	struct shm_proc *p = shm_proc_at(seg, slot);
	int n = 0;

	atomic_store(&p->state, SHM_PROC_DEAD);
	if (repair) {
		n = shm_reg_repair(seg, slot);
		assert_true(n >= 0);
		assert_true(shm_grp_repair(seg, slot) >= 0);
		atomic_store(&p->state, SHM_PROC_EXITED);
	}
	return n;
}

enum op { OP_REG, OP_UNREG, OP_REREG };

/*
 * Fork a writer that does op on "victim" and kills itself at step (occurrence nth). Returns
 * its slot once it is dead, or UINT32_MAX if it finished without reaching the step.
 */
static uint32_t run_victim(struct shm_seg *seg, enum op op, int step, int nth, uint64_t h)
{
	_Atomic uint32_t *slot =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t s;
	pid_t pid;
	int wst;

	assert_true(slot != MAP_FAILED);
	atomic_store(slot, UINT32_MAX);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_reg_meta m = {.len = 3, .data = "new"};

		child_claim(seg);
		atomic_store(slot, seg->self);
		kill_at = step;
		kill_count = nth;
		shm_reg_test_hook = kill_hook;
		if (op == OP_REG)
			reg(seg, 0, "victim", h);
		else if (op == OP_UNREG)
			unreg(seg, 0, "victim");
		else
			shm_reg_reregister(seg, 0, "victim", 6, h, &m);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	s = atomic_load(slot);
	munmap((void *)slot, 4096);
	assert_true(s != UINT32_MAX);
	if (WIFEXITED(wst)) {
		assert_int_equal(WEXITSTATUS(wst), 0);
		atomic_store(&shm_proc_at(seg, s)->state, SHM_PROC_EXITED);
		return UINT32_MAX;
	}
	assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
	return s;
}

static char fillers[11][32];

/*
 * Fill a 16-entry table (2 buckets) so that "victim" lives past its home bucket: its home
 * bucket full (8 fillers homed there), 3 more elsewhere, 5 entries left.
 */
static void fill_around_victim(struct shm_seg *seg)
{
	int home = shm_reg_home(seg, 0, "victim", 6), in_home = 0, other = 0, n = 0;
	char name[32];

	assert_true(home >= 0);
	for (int i = 0; n < 11; i++) {
		int hh;

		snprintf(name, sizeof(name), "fill-%d", i);
		hh = shm_reg_home(seg, 0, name, strlen(name));
		if (hh == home ? in_home >= 8 : other >= 3)
			continue;
		if (hh == home)
			in_home++;
		else
			other++;
		assert_int_equal(reg(seg, 0, name, 500 + (uint64_t)n), 0);
		snprintf(fillers[n++], sizeof(fillers[0]), "%s", name);
	}
}

static void check_fillers(struct shm_seg *seg)
{
	for (int i = 0; i < 11; i++)
		assert_int_equal(look(seg, 0, fillers[i]), 500 + (uint64_t)i);
}

static void test_registry_crash_steps_register(void **state)
{
	static const struct {
		int step, nth;
	} steps[] = {
		{SHM_REG_STEP_RESERVED, 1}, {SHM_REG_STEP_FILLED, 1},  {SHM_REG_STEP_COUNTER, 1},
		{SHM_REG_STEP_PENDING, 1},  {SHM_REG_STEP_SCANNED, 1}, {SHM_REG_STEP_LIVE, 1},
	};

	(void)state;
	for (unsigned k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		for (int variant = 0; variant < 4; variant++) {
			struct shm_seg *seg = make_seg(16);
			bool live_expected = steps[k].step == SHM_REG_STEP_LIVE;
			uint32_t slot;
			shoal_handle_t h;

			fill_around_victim(seg);
			slot = run_victim(seg, OP_REG, steps[k].step, steps[k].nth, 42);
			assert_true(slot != UINT32_MAX);
			/* readers are never blocked by the dead claim */
			h = look(seg, 0, "victim");
			assert_true(h == 0 || (live_expected && h == 42));
			if (variant == 0) {
				/* repair alone */
				assert_true(bury(seg, slot, true) >= (live_expected ? 0 : 1));
				assert_check(seg);
				assert_int_equal(look(seg, 0, "victim"), live_expected ? 42 : 0);
			} else if (variant == 3) {
				/*
				 * a writer with a larger tag (claimed after the death) meets the
				 * dead claim: a smaller pending one is probed, found dead and taken
				 * over
				 */
				struct shm_seg late;

				bury(seg, slot, false);
				memcpy(&late, seg, sizeof(late));
				late.self = UINT32_MAX;
				assert_int_equal(shm_proc_claim(&late, SHM_ROLE_CLIENT, false), 0);
				shm_proc_set_state(&late, SHM_PROC_RUNNING);
				assert_int_equal(reg(&late, 0, "victim", 44),
						 live_expected ? -EEXIST : 0);
				assert_int_equal(look(seg, 0, "victim"), live_expected ? 42 : 44);
				if (steps[k].step == SHM_REG_STEP_PENDING ||
				    steps[k].step == SHM_REG_STEP_SCANNED)
					assert_check(seg); /* resolved by the writer, before any
							      repair */
				shm_proc_release(&late);
				bury(seg, slot, true);
				assert_check(seg);
			} else if (variant == 1) {
				/* another writer meets it: registering the same name */
				bury(seg, slot, false);
				assert_int_equal(reg(seg, 0, "victim", 43),
						 live_expected ? -EEXIST : 0);
				assert_int_equal(look(seg, 0, "victim"), live_expected ? 42 : 43);
				bury(seg, slot, true);
				assert_check(seg);
			} else {
				/* another writer needs the space: fill the table to the brim */
				char name[32];
				int ok = 0;

				bury(seg, slot, false);
				for (int i = 0; i < 5; i++) {
					snprintf(name, sizeof(name), "more-%d", i);
					ok += reg(seg, 0, name, 700 + (uint64_t)i) == 0;
				}
				/* 11 fillers + 5: the dead claim's entry was taken over and reused
				 */
				assert_int_equal(ok, live_expected ? 4 : 5);
				atomic_store(&shm_proc_at(seg, slot)->state, SHM_PROC_EXITED);
				assert_check(seg);
			}
			check_fillers(seg);
			done_seg(seg);
		}
	}
}

static void test_registry_crash_steps_unregister(void **state)
{
	static const int steps[] = {SHM_REG_STEP_DELETING, SHM_REG_STEP_UNTAGGED,
				    SHM_REG_STEP_RECORDED};

	(void)state;
	for (unsigned k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		for (int variant = 0; variant < 2; variant++) {
			struct shm_seg *seg = make_seg(16);
			struct shm_reg_stats st;
			uint32_t slot;

			fill_around_victim(seg);
			assert_int_equal(reg(seg, 0, "victim", 42), 0);
			slot = run_victim(seg, OP_UNREG, steps[k], 1, 0);
			assert_true(slot != UINT32_MAX);
			/* the deletion linearised at its claim: readers see it gone */
			assert_int_equal(look(seg, 0, "victim"), 0);
			if (variant == 0) {
				bury(seg, slot, true);
			} else {
				bury(seg, slot, false);
				assert_int_equal(reg(seg, 0, "victim", 43), 0);
				assert_int_equal(look(seg, 0, "victim"), 43);
				bury(seg, slot, true);
				assert_int_equal(unreg(seg, 0, "victim"), 0);
			}
			assert_check(seg);
			assert_int_equal(look(seg, 0, "victim"), 0);
			check_fillers(seg);
			assert_int_equal(shm_reg_stats(seg, &st), 0);
			/* a crash between record and decrement may leave one count high, no more */
			assert_true(st.overflow_excess <=
				    (steps[k] == SHM_REG_STEP_RECORDED ? 1u : 0u));
			done_seg(seg);
		}
	}
}

static void test_registry_crash_steps_reregister(void **state)
{
	static const int steps[] = {SHM_REG_STEP_INTENT, SHM_REG_STEP_UPDATING,
				    SHM_REG_STEP_REWRITING};

	(void)state;
	for (unsigned k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		for (int variant = 0; variant < 3; variant++) {
			struct shm_seg *seg = make_seg(16);
			bool claimed = steps[k] != SHM_REG_STEP_INTENT;
			struct shm_reg_meta m;
			shoal_handle_t h;
			uint32_t slot;

			fill_around_victim(seg);
			assert_int_equal(reg(seg, 0, "victim", 42), 0);
			slot = run_victim(seg, OP_REREG, steps[k], 1, 77);
			assert_true(slot != UINT32_MAX);
			/* a reader sees the old pair or the new one, whole, and is not blocked */
			assert_int_equal(shm_reg_lookup(seg, 0, "victim", 6, &h, &m), 0);
			if (claimed) {
				assert_int_equal(h, 77);
				assert_int_equal(m.len, 3);
				assert_memory_equal(m.data, "new", 3);
			} else {
				assert_int_equal(h, 42);
				assert_int_equal(m.len, 0);
			}
			if (variant == 0) {
				bury(seg, slot, true);
				assert_int_equal(look(seg, 0, "victim"), claimed ? 77 : 42);
			} else if (variant == 1) {
				/* another writer re-registers: it finishes the dead update first */
				bury(seg, slot, false);
				assert_int_equal(shm_reg_reregister(seg, 0, "victim", 6, 88, NULL),
						 0);
				assert_int_equal(look(seg, 0, "victim"), 88);
				bury(seg, slot, true);
			} else {
				/* another writer unregisters with the expectation of the new handle
				 */
				bury(seg, slot, false);
				assert_int_equal(
					shm_reg_unregister(seg, 0, "victim", 6, claimed ? 77 : 42),
					0);
				assert_int_equal(look(seg, 0, "victim"), 0);
				bury(seg, slot, true);
			}
			assert_check(seg);
			check_fillers(seg);
			done_seg(seg);
		}
	}
}

/* --- many processes, random operations, random SIGKILLs, checked against a model --- */

#define NWRK	       3
#define NOWN	       12
#define NCON	       6
#define OPS_PER_WORKER 1000000
#define KILLS	       60

enum { IF_NONE, IF_REG, IF_UNREG, IF_REREG, IF_REGC, IF_UNREGC };

struct wlog {
	_Atomic uint64_t ops;	      /* operations completed (acknowledged) */
	_Atomic uint64_t next_handle; /* handle counter */
	_Atomic uint32_t slot;	      /* process slot of the current incarnation */
	_Atomic uint32_t failed;      /* a model mismatch seen by the worker (line) */
	_Atomic uint64_t own[NOWN];   /* acknowledged handle of own name i, 0 absent */
	_Atomic uint64_t con[NCON];   /* handle if we hold contested name i */
	_Atomic uint32_t if_kind;     /* operation in flight */
	_Atomic uint32_t if_idx;
	_Atomic uint64_t if_handle;
	_Atomic uint64_t if_old;
	_Atomic uint64_t dbg[3]; /* what a failed check saw: result, got, expected */
	_Atomic uint32_t phase;	 /* where the worker is: 1 claiming, 2 lookup, 3 between ops */
	char dump[512];		 /* entries of the name at a failed check */
};

static struct wlog *wlogs;
static _Atomic uint32_t *stop_all; /* set by the controller: workers may exit */
/* each worker's operations: raised by the controller while no kill has hit a claim yet */
static _Atomic uint64_t *op_limit;

static void own_name(char *buf, int w, int i)
{
	snprintf(buf, 32, "w%d-own-%d", w, i);
}

static void con_name(char *buf, int i)
{
	snprintf(buf, 32, "contested-%d", i);
}

#define WFAIL(l)                                                                                   \
	do {                                                                                       \
		atomic_store(&l->failed, __LINE__);                                                \
		_exit(3);                                                                          \
	} while (0)

/* Describe every entry that holds name (test diagnostics). */
static void dump_name(const struct shm_seg *seg, const char *name, char *out, size_t len)
{
	const struct shm_hdr *h = shm_hdr(seg);
	const uint8_t *base = seg->base + h->regions[SHM_R_REGISTRY].off;
	uint32_t cap = h->cfg.reg_capacity;
	const struct shm_reg_entry *e = (const void *)(base + SHM_REG_ENTRIES_OFF(cap));
	const struct shm_reg_ext *x = (const void *)(base + SHM_REG_EXTS_OFF(cap));
	size_t n = 0;

	for (uint32_t i = 0; i < cap && n < len; i++) {
		char nm[65] = "";

		for (uint32_t j = 0; j < 8; j++) {
			uint64_t v = j < SHM_REG_NAME_HOT_WORDS
					     ? atomic_load(&e[i].name[j])
					     : atomic_load(&x[i].name[j - SHM_REG_NAME_HOT_WORDS]);

			memcpy(nm + 8 * j, &v, 8);
		}
		if (strcmp(nm, name))
			continue;
		n += (size_t)snprintf(out + n, len - n,
				      "[%u st %u tag/seq %#llx seq %llu handle %#llx route %#llx] ",
				      i, SHM_REG_CTL_STATE(atomic_load(&e[i].ctl)),
				      (unsigned long long)SHM_REG_CTL_TAG(atomic_load(&e[i].ctl)),
				      (unsigned long long)atomic_load(&x[i].seq),
				      (unsigned long long)atomic_load(&e[i].handle),
				      (unsigned long long)atomic_load(&x[i].route));
	}
}

static void worker_run(struct shm_seg *seg, int w)
{
	struct wlog *l = &wlogs[w];
	unsigned seed = (unsigned)getpid() * 2654435761u;
	char name[32];

	atomic_store(&l->phase, 1);
	child_claim(seg);
	atomic_store(&l->slot, seg->self);
	while (atomic_load(&l->ops) < atomic_load(op_limit)) {
		atomic_store(&l->phase, 3);
		int r = (int)(rand_r(&seed) % 100), i, ret;
		uint64_t h = ((uint64_t)(w + 1) << 40) | atomic_fetch_add(&l->next_handle, 1);
		shoal_handle_t got = 0;

		if (r < 60) {
			i = (int)(rand_r(&seed) % NOWN);
			own_name(name, w, i);
			uint64_t cur = atomic_load(&l->own[i]);

			if (r < 20) {
				atomic_store(&l->phase, 2);
				ret = shm_reg_lookup(seg, 0, name, strlen(name), &got, NULL);
				if (cur ? ret || got != cur : ret != -ENOENT) {
					atomic_store(&l->dbg[0], (uint64_t)(int64_t)ret);
					atomic_store(&l->dbg[1], got);
					atomic_store(&l->dbg[2], cur);
					dump_name(seg, name, l->dump, sizeof(l->dump));
					WFAIL(l);
				}
			} else {
				int kind = !cur ? IF_REG : r < 40 ? IF_UNREG : IF_REREG;

				atomic_store(&l->if_idx, i);
				atomic_store(&l->if_handle, h);
				atomic_store(&l->if_old, cur);
				atomic_store(&l->if_kind, kind);
				if (kind == IF_REG) {
					if (reg(seg, 0, name, h))
						WFAIL(l);
					atomic_store(&l->own[i], h);
				} else if (kind == IF_UNREG) {
					if (shm_reg_unregister(seg, 0, name, strlen(name), cur))
						WFAIL(l);
					atomic_store(&l->own[i], 0);
				} else {
					if (shm_reg_reregister(seg, 0, name, strlen(name), h, NULL))
						WFAIL(l);
					atomic_store(&l->own[i], h);
				}
				atomic_store(&l->if_kind, IF_NONE);
			}
		} else {
			i = (int)(rand_r(&seed) % NCON);
			con_name(name, i);
			uint64_t cur = atomic_load(&l->con[i]);

			if (r < 75) {
				atomic_store(&l->phase, 2);
				ret = shm_reg_lookup(seg, 0, name, strlen(name), &got, NULL);
				if (cur && (ret || got != cur))
					WFAIL(l);
			} else if (!cur) {
				atomic_store(&l->if_idx, i);
				atomic_store(&l->if_handle, h);
				atomic_store(&l->if_kind, IF_REGC);
				ret = reg(seg, 0, name, h);
				if (ret && ret != -EEXIST)
					WFAIL(l);
				if (!ret)
					atomic_store(&l->con[i], h);
				atomic_store(&l->if_kind, IF_NONE);
			} else {
				atomic_store(&l->if_idx, i);
				atomic_store(&l->if_handle, cur);
				atomic_store(&l->if_kind, IF_UNREGC);
				if (shm_reg_unregister(seg, 0, name, strlen(name), cur))
					WFAIL(l);
				atomic_store(&l->con[i], 0);
				atomic_store(&l->if_kind, IF_NONE);
			}
		}
		atomic_fetch_add(&l->ops, 1);
	}
	/* done: wait to be told (so an exit is never mistaken for a kill) */
	{
		uint64_t deadline = shm_now_ns() + 120000000000ull;

		while (!atomic_load(stop_all) && shm_now_ns() < deadline)
			sched_yield();
	}
	_exit(0);
}

static pid_t spawn_worker(struct shm_seg *seg, int w)
{
	pid_t pid;

	atomic_store(&wlogs[w].slot, UINT32_MAX);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		worker_run(seg, w);
	return pid;
}

/* After repair: settle a dead worker's in-flight op from the table (either outcome). */
static void settle(struct shm_seg *seg, int w)
{
	struct wlog *l = &wlogs[w];
	uint32_t kind = atomic_load(&l->if_kind), i = atomic_load(&l->if_idx);
	uint64_t h = atomic_load(&l->if_handle), now;
	char name[32];

	if (kind == IF_NONE)
		return;
	if (kind == IF_REGC || kind == IF_UNREGC) {
		con_name(name, (int)i);
		now = look(seg, 0, name);
		if (kind == IF_REGC)
			atomic_store(&l->con[i], now == h ? h : 0);
		else
			atomic_store(&l->con[i], now == h ? h : 0);
	} else {
		uint64_t acked = atomic_load(&l->own[i]), old = atomic_load(&l->if_old), want;

		own_name(name, w, (int)i);
		now = look(seg, 0, name);
		want = kind == IF_UNREG ? 0 : h;
		/* the op happened or not; the model may already hold either value */
		if (now != want && now != old)
			fail_msg("worker %d %s: in-flight op %u left %#llx, want %#llx or %#llx "
				 "(acked %#llx)",
				 w, name, kind, (unsigned long long)now, (unsigned long long)want,
				 (unsigned long long)old, (unsigned long long)acked);
		atomic_store(&l->own[i], now);
	}
	atomic_store(&l->if_kind, IF_NONE);
}

static void check_model(struct shm_seg *seg, int w)
{
	char name[32];

	for (int i = 0; i < NOWN; i++) {
		uint64_t want = atomic_load(&wlogs[w].own[i]), got;

		own_name(name, w, i);
		got = look(seg, 0, name);
		if (got != want)
			fail_msg("worker %d %s: table %#llx, acknowledged %#llx", w, name,
				 (unsigned long long)got, (unsigned long long)want);
	}
}

/* Dead claims the registry's repair has resolved so far. */
static uint64_t reg_repaired(struct shm_seg *seg)
{
	const struct shm_reg_hdr *rh =
		(const void *)(seg->base + shm_hdr(seg)->regions[SHM_R_REGISTRY].off);

	return atomic_load(&rh->repaired);
}

static bool wait_ops(int w, uint64_t target, uint64_t deadline)
{
	while (atomic_load(&wlogs[w].ops) < target && !atomic_load(&wlogs[w].failed)) {
		if (shm_now_ns() > deadline)
			return false;
		sched_yield();
	}
	return true;
}

static void test_registry_crash_model(void **state)
{
	struct shm_seg *seg = make_seg(128);
	pid_t pids[NWRK];
	unsigned seed = 12345;
	int kills = 0, wst;

	(void)state;
	wlogs = mmap(NULL, sizeof(struct wlog) * NWRK, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(wlogs != MAP_FAILED);
	memset(wlogs, 0, sizeof(struct wlog) * NWRK);
	stop_all = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(stop_all != MAP_FAILED);
	atomic_store(stop_all, 0);
	op_limit = (_Atomic uint64_t *)((char *)stop_all + 64);
	atomic_store(op_limit, OPS_PER_WORKER);
	for (int w = 0; w < NWRK; w++)
		pids[w] = spawn_worker(seg, w);
	while (kills < KILLS) {
		int w = (int)(rand_r(&seed) % NWRK);
		uint64_t ops = atomic_load(&wlogs[w].ops), target;
		uint32_t slot;

		if (ops >= atomic_load(op_limit) - 100) {
			bool all = true;

			for (int v = 0; v < NWRK; v++)
				all = all &&
				      atomic_load(&wlogs[v].ops) >= atomic_load(op_limit) - 100;
			if (!all)
				continue;
			/*
			 * The workers outran the kills (a loaded machine) before one landed in a
			 * claim: more operations, up to four times, so that the repair of a dead
			 * claim is exercised (checked at the end), not left to luck.
			 */
			if (!reg_repaired(seg) && atomic_load(op_limit) < 5ull * OPS_PER_WORKER) {
				atomic_fetch_add(op_limit, OPS_PER_WORKER);
				continue;
			}
			break;
		}
		/* wait until it is running and has done a random few more operations */
		target = ops + 1 + rand_r(&seed) % 400;
		if (!wait_ops(w, target < atomic_load(op_limit) ? target : atomic_load(op_limit),
			      shm_now_ns() + 20000000000ull)) {
			pid_t p = waitpid(pids[w], &wst, WNOHANG);

			fail_msg("worker %d made no progress (failed at line %u, in flight %u, "
				 "phase "
				 "%u, ops %llu, slot %u, %s %#x)",
				 w, atomic_load(&wlogs[w].failed), atomic_load(&wlogs[w].if_kind),
				 atomic_load(&wlogs[w].phase),
				 (unsigned long long)atomic_load(&wlogs[w].ops),
				 atomic_load(&wlogs[w].slot), p == pids[w] ? "exited" : "running",
				 p == pids[w] ? wst : 0);
		}
		kill(pids[w], SIGKILL);
		assert_int_equal(waitpid(pids[w], &wst, 0), pids[w]);
		if (WIFEXITED(wst))
			print_message("slots: %u %u %u\n", atomic_load(&wlogs[0].slot),
				      atomic_load(&wlogs[1].slot), atomic_load(&wlogs[2].slot));
		if (WIFEXITED(wst))
			print_message(
				"entries: %s lost claims %llu\n", wlogs[w].dump,
				(unsigned long long)atomic_load(
					&((const struct shm_reg_hdr
						   *)(seg->base +
						      shm_hdr(seg)->regions[SHM_R_REGISTRY].off))
						 ->lost));
		if (WIFEXITED(wst))
			fail_msg(
				"worker %d exited %d (model mismatch at line %u: %lld %#llx %#llx)",
				w, WEXITSTATUS(wst), atomic_load(&wlogs[w].failed),
				(long long)atomic_load(&wlogs[w].dbg[0]),
				(unsigned long long)atomic_load(&wlogs[w].dbg[1]),
				(unsigned long long)atomic_load(&wlogs[w].dbg[2]));
		slot = atomic_load(&wlogs[w].slot);
		if (slot != UINT32_MAX) {
			bury(seg, slot, true);
		}
		settle(seg, w);
		check_model(seg, w);
		pids[w] = spawn_worker(seg, w);
		kills++;
	}
	for (int w = 0; w < NWRK; w++)
		if (!wait_ops(w, atomic_load(op_limit), shm_now_ns() + 30000000000ull))
			fail_msg("worker %d did not finish", w);
	atomic_store(stop_all, 1);
	for (int w = 0; w < NWRK; w++) {
		assert_int_equal(waitpid(pids[w], &wst, 0), pids[w]);
		if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
			fail_msg("worker %d ended with status %#x (model mismatch at line %u: %llu "
				 "%#llx %#llx)",
				 w, wst, atomic_load(&wlogs[w].failed),
				 (unsigned long long)atomic_load(&wlogs[w].dbg[0]),
				 (unsigned long long)atomic_load(&wlogs[w].dbg[1]),
				 (unsigned long long)atomic_load(&wlogs[w].dbg[2]));
		if (atomic_load(&wlogs[w].slot) != UINT32_MAX)
			atomic_store(&shm_proc_at(seg, atomic_load(&wlogs[w].slot))->state,
				     SHM_PROC_EXITED);
	}
	print_message("kills: %d\n", kills);
	assert_true(kills >= 10);
	{
		const struct shm_reg_hdr *rh =
			(const void *)(seg->base + shm_hdr(seg)->regions[SHM_R_REGISTRY].off);
		struct shm_reg_stats st;

		print_message("registry: %llu dead claims resolved, %llu aborted, %llu lost\n",
			      (unsigned long long)atomic_load(&rh->repaired),
			      (unsigned long long)atomic_load(&rh->aborted),
			      (unsigned long long)atomic_load(&rh->lost));
		assert_int_equal(atomic_load(&rh->lost), 0);
		/* the statistics tools read say the same, without the registry's internals */
		assert_int_equal(shm_reg_stats(seg, &st), 0);
		assert_int_equal(st.repaired, atomic_load(&rh->repaired));
		assert_int_equal(st.aborted, atomic_load(&rh->aborted));
		assert_int_equal(st.lost, 0);
		assert_true(st.repaired > 0);
	}
	assert_check(seg);
	for (int w = 0; w < NWRK; w++)
		check_model(seg, w);
	for (int i = 0; i < NCON; i++) {
		char name[32];
		uint64_t holder = 0;

		con_name(name, i);
		for (int w = 0; w < NWRK; w++) {
			uint64_t c = atomic_load(&wlogs[w].con[i]);

			if (c && holder)
				fail_msg("%s held by two workers", name);
			if (c)
				holder = c;
		}
		assert_int_equal(look(seg, 0, name), holder);
	}
	munmap(wlogs, sizeof(struct wlog) * NWRK);
	munmap((void *)stop_all, 4096);
	done_seg(seg);
}

/* --- named namespaces (shm/ns.c) --- */

/* A child's exit status within ms, or -1 (the child is killed then). */
static int reap_within(pid_t pid, int ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0), st = -1;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_true(fd >= 0);
	if (poll(&p, 1, ms) != 1)
		kill(pid, SIGKILL);
	if (waitpid(pid, &st, 0) != pid)
		st = -1;
	close(fd);
	return st;
}

static void test_registry_ns_names(void **state)
{
	struct shm_seg *seg = make_seg(64);
	uint32_t a, b, again;
	char buf[32];

	(void)state;
	assert_int_equal(shm_ns_get(seg, "tuners", 6, false, &a), -ENOENT);
	assert_int_equal(shm_ns_get(seg, "tuners", 6, true, &a), 0);
	assert_true(a >= SHM_NS_NAMED_FIRST && a <= SHM_NS_NAMED_LAST);
	assert_int_equal(shm_ns_get(seg, "tuners", 6, false, &again), 0);
	assert_int_equal(again, a);
	assert_int_equal(shm_ns_get(seg, "tuners", 6, true, &again), 0);
	assert_int_equal(again, a);
	assert_int_equal(shm_ns_get(seg, "workers", 7, true, &b), 0);
	assert_true(b != a);
	/* the same name in two named namespaces and the default one: three entries */
	assert_int_equal(reg(seg, a, "x", 1), 0);
	assert_int_equal(reg(seg, b, "x", 2), 0);
	assert_int_equal(reg(seg, SHM_NS_DEFAULT, "x", 3), 0);
	assert_int_equal(look(seg, a, "x"), 1);
	assert_int_equal(look(seg, b, "x"), 2);
	assert_int_equal(look(seg, SHM_NS_DEFAULT, "x"), 3);
	/* back from the number, for tools */
	assert_int_equal(shm_ns_name(seg, a, buf, sizeof(buf)), 6);
	assert_string_equal(buf, "tuners");
	assert_int_equal(shm_ns_name(seg, b, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "workers");
	assert_int_equal(shm_ns_name(seg, b, buf, 7), -ENOSPC);
	assert_int_equal(shm_ns_name(seg, 5, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(shm_ns_name(seg, a == SHM_NS_NAMED_LAST ? a - 1 : a + 1, buf, sizeof(buf)),
			 b == (a == SHM_NS_NAMED_LAST ? a - 1 : a + 1) ? 7 : -ENOENT);
	/* bad names */
	assert_int_equal(shm_ns_get(seg, "", 0, true, &a), -EINVAL);
	assert_int_equal(shm_ns_get(seg, "sixteen-bytes-xx", 16, true, &a), -EINVAL);
	assert_int_equal(shm_ns_get(seg, "a\0b", 3, true, &a), -EINVAL);
	assert_int_equal(shm_ns_get(seg, NULL, 3, true, &a), -EINVAL);
	assert_int_equal(shm_ns_get(seg, "fifteen-bytes-x", 15, true, &a), 0);
	assert_check(seg);
	done_seg(seg);
}

/* A table with no room for the number's claim: -ENOSPC, and nothing half made. */
static void test_registry_ns_full(void **state)
{
	struct shm_seg *seg = make_seg(16);
	uint32_t ns;
	char name[16];
	int i, r = 0;

	(void)state;
	for (i = 0; r == 0 && i < 64; i++) {
		snprintf(name, sizeof(name), "ns%d", i);
		r = shm_ns_get(seg, name, strlen(name), true, &ns);
	}
	assert_int_equal(r, -ENOSPC);
	/* each named namespace takes two entries: 8 fit in 16; the failed one left none */
	assert_int_equal(i - 1, 8);
	assert_int_equal(shm_reg_count(seg), 16);
	assert_int_equal(shm_ns_get(seg, name, strlen(name), false, &ns), -ENOENT);
	assert_check(seg);
	done_seg(seg);
}

/*
 * A creator killed after taking a number, before naming it: the number stays taken and
 * unnamed (no tool shows a name for it), and creating the name again picks another one.
 */
static void test_registry_ns_dead_creator(void **state)
{
	struct shm_seg *seg = make_seg(64);
	struct shm_reg_meta m = {.len = 5, .data = "probe"};
	uint32_t first, ns;
	char key[16], buf[32];

	(void)state;
	/* the number "probe" tries first: create it, note it, start again */
	assert_int_equal(shm_ns_get(seg, "probe", 5, true, &first), 0);
	done_seg(seg);
	seg = make_seg(64);
	snprintf(key, sizeof(key), "%u", first);
	assert_int_equal(shm_reg_register(seg, SHM_NS_NUMBERS, key, strlen(key), first, &m), 0);
	assert_int_equal(shm_ns_name(seg, first, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(shm_ns_get(seg, "probe", 5, false, &ns), -ENOENT);
	assert_int_equal(shm_ns_get(seg, "probe", 5, true, &ns), 0);
	assert_true(ns != first);
	assert_int_equal(shm_ns_name(seg, ns, buf, sizeof(buf)), 5);
	assert_check(seg);
	done_seg(seg);
}

#define NS_RACE_NAMES 40

/*
 * Two processes create the same names at once, in the same order (so they race on most of
 * them): every name ends with one number, the same in both, no two names share one, and
 * the losers gave their numbers back.
 */
static void test_registry_ns_race(void **state)
{
	struct shm_seg *seg = make_seg(512);
	_Atomic uint32_t(*got)[NS_RACE_NAMES] =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	_Atomic uint32_t *go;
	pid_t pid[2];
	char name[16];

	(void)state;
	assert_true(got != MAP_FAILED);
	go = (_Atomic uint32_t *)&got[2][0];
	for (int c = 0; c < 2; c++) {
		pid[c] = fork();
		assert_true(pid[c] >= 0);
		if (pid[c] == 0) {
			child_claim(seg);
			atomic_fetch_add(go, 1);
			while (atomic_load(go) < 2)
				;
			for (int j = 0; j < NS_RACE_NAMES; j++) {
				uint32_t ns;

				snprintf(name, sizeof(name), "race%d", j);
				if (shm_ns_get(seg, name, strlen(name), true, &ns))
					_exit(2);
				atomic_store(&got[c][j], ns);
			}
			_exit(0);
		}
	}
	for (int c = 0; c < 2; c++) {
		int st = reap_within(pid[c], 20000);

		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	for (int i = 0; i < NS_RACE_NAMES; i++) {
		uint32_t ns;

		assert_int_equal(atomic_load(&got[0][i]), atomic_load(&got[1][i]));
		for (int j = 0; j < i; j++)
			assert_true(atomic_load(&got[0][i]) != atomic_load(&got[0][j]));
		snprintf(name, sizeof(name), "race%d", i);
		assert_int_equal(shm_ns_get(seg, name, strlen(name), false, &ns), 0);
		assert_int_equal(ns, atomic_load(&got[0][i]));
	}
	/* numbers given back by the losers of a race: exactly two entries per name */
	assert_int_equal(shm_reg_count(seg), 2 * NS_RACE_NAMES);
	munmap((void *)got, 4096);
	assert_check(seg);
	done_seg(seg);
}

int main(void)
{
	test_pid = getpid();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registry_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_meta_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_name_lengths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_name_compared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_full_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_slot_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_foreach_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_readonly_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_thread_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_body_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_crash_steps_register, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registry_crash_steps_unregister, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registry_crash_steps_reregister, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registry_crash_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_ns_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_ns_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_ns_dead_creator, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_ns_race, setup, teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_validate: the fuzz target (fuzz/fuzz_validate.c) driven without libFuzzer: seeded
 * from a valid header, a bounded number of mutations (bit flips, interesting values in
 * fields, sizes), each run through the validator. Any crash or sanitizer report fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shm/event.h"
#include "shm/shm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Events in the seed's ring, and the bytes of it the seed carries (head and records). */
#define SEED_EVENTS	3u
#define SEED_RING_BYTES (sizeof(struct shm_event_ring) + SEED_EVENTS * sizeof(struct shm_event))
#define SEED_BYTES	(4 + SHM_HDR_SIZE + SEED_RING_BYTES)

/*
 * A valid small segment, as the fuzz input format: size prefix, header bytes, then the first
 * bytes of its event ring (which the target lays at the ring's region) holding SEED_EVENTS
 * events appended the way writers append them.
 */
static size_t make_seed(uint8_t *in, size_t cap)
{
	struct shm_hdr *h;
	struct shm_seg seg = {.fd = -1, .self = UINT32_MAX, .writable = true};
	struct shm_cfg cfg;
	uint32_t size;
	uint8_t *full;

	assert_true(cap >= SEED_BYTES);
	memset(in, 0, cap);
	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	cfg.max_groups = 4;
	cfg.group_members = 4;
	cfg.mbox_cells = 256;
	cfg.max_monitors = 16;
	cfg.events = 16;
	size = (uint32_t)shm_layout_compute(&cfg, (struct shm_region[SHM_R_COUNT]){0});
	full = aligned_alloc(SHM_PAGE, size);
	assert_non_null(full);
	memset(full, 0, size);
	h = (struct shm_hdr *)full;
	h->magic = SHM_MAGIC;
	h->layout_major = SHM_LAYOUT_MAJOR;
	h->layout_minor = SHM_LAYOUT_MINOR;
	h->hdr_size = SHM_HDR_SIZE;
	h->nregions = SHM_R_COUNT;
	h->cfg = cfg;
	h->seg_size = shm_layout_compute(&cfg, h->regions);
	assert_true(h->seg_size > 0);
	atomic_store(&h->ready, SHM_READY_WORD);
	snprintf(h->instance, sizeof(h->instance), "seed");
	assert_int_equal(h->seg_size, size);
	seg.base = full;
	seg.size = size;
	for (unsigned i = 0; i < SEED_EVENTS; i++) {
		struct shm_event e;

		shm_event_init(&e, SHM_EV_WORKER_CRASH);
		e.worker = (int32_t)i;
		shm_event_set_text(&e, "seed %u", i);
		assert_int_equal(shm_event_append(&seg, &e, NULL), 0);
	}
	memcpy(in, &size, 4);
	memcpy(in + 4, full, SHM_HDR_SIZE);
	memcpy(in + 4 + SHM_HDR_SIZE, full + h->regions[SHM_R_EVENTS].off, SEED_RING_BYTES);
	free(full);
	return SEED_BYTES;
}

static void test_validate_seed_is_valid(void **state)
{
	static uint8_t in[SEED_BYTES];
	struct shm_event out[8];
	struct shm_event_scan st = {0};
	struct shm_seg seg = {.fd = -1, .self = UINT32_MAX};
	uint64_t cursor = 0;
	uint32_t size;
	uint8_t *buf;
	char err[256];

	(void)state;
	make_seed(in, sizeof(in));
	memcpy(&size, in, 4);
	buf = calloc(1, size);
	assert_non_null(buf);
	memcpy(buf, in + 4, SHM_HDR_SIZE);
	assert_int_equal(shm_seg_validate(buf, size, err, sizeof(err)), SHM_V_OK);
	/* laid where the target lays it, the ring holds the seed's events */
	memcpy(buf + ((struct shm_hdr *)buf)->regions[SHM_R_EVENTS].off, in + 4 + SHM_HDR_SIZE,
	       SEED_RING_BYTES);
	seg.base = buf;
	seg.size = size;
	assert_int_equal(shm_event_scan(&seg, &cursor, out, 8, 0, &st), SEED_EVENTS);
	assert_string_equal(out[2].text, "seed 2");
	free(buf);
}

static void test_validate_mutations(void **state)
{
	static uint8_t seed[SEED_BYTES], in[SEED_BYTES];
	static const uint64_t interesting[] = {0,
					       1,
					       63,
					       64,
					       4095,
					       4096,
					       0x7fffffff,
					       0xffffffff,
					       0x100000000ull,
					       UINT64_MAX,
					       UINT64_MAX - 4095};
	size_t n = make_seed(seed, sizeof(seed));
	unsigned iters = 200000;
	const char *env = getenv("SHOAL_FUZZ_ITERS");

	(void)state;
	if (env)
		iters = (unsigned)strtoul(env, NULL, 10);
	for (unsigned it = 0; it < iters; it++) {
		unsigned nmut = 1 + next() % 4;

		memcpy(in, seed, n);
		for (unsigned m = 0; m < nmut; m++) {
			/* mostly the first 400 bytes, where the header's fields are, and the
			 * event ring's head and records */
			size_t off = next() % 8 < 5   ? next() % 400
				     : next() % 8 < 6 ? next() % n
						      : 4 + SHM_HDR_SIZE + next() % SEED_RING_BYTES;

			switch (next() % 3) {
			case 0:
				in[off] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1:
				off &= ~(size_t)7;
				if (off + 8 <= n) {
					uint64_t v =
						interesting[next() % (sizeof(interesting) / 8)];

					memcpy(in + off, &v, 8);
				}
				break;
			default:
				in[off] = (uint8_t)next();
				break;
			}
		}
		LLVMFuzzerTestOneInput(in, n);
		/* truncated inputs too */
		LLVMFuzzerTestOneInput(in, 4 + next() % (n - 4));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_seed_is_valid),
		cmocka_unit_test(test_validate_mutations),
	};

	return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}

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

/* A valid small segment's header, as the fuzz input format: size prefix + header bytes. */
static size_t make_seed(uint8_t *in, size_t cap)
{
	static _Alignas(64) uint8_t page[SHM_HDR_SIZE];
	struct shm_hdr *h = (struct shm_hdr *)page;
	struct shm_cfg cfg;
	uint32_t size;

	assert_true(cap >= 4 + SHM_HDR_SIZE);
	memset(in, 0, cap);
	memset(page, 0, sizeof(page));
	shm_cfg_default(&cfg);
	cfg.max_agents = 16;
	cfg.reg_capacity = 64;
	cfg.max_groups = 4;
	cfg.group_members = 4;
	cfg.mbox_cells = 256;
	cfg.max_monitors = 16;
	h->magic = SHM_MAGIC;
	h->layout_major = SHM_LAYOUT_MAJOR;
	h->hdr_size = SHM_HDR_SIZE;
	h->nregions = SHM_R_COUNT;
	h->cfg = cfg;
	h->seg_size = shm_layout_compute(&cfg, h->regions);
	assert_true(h->seg_size > 0);
	atomic_store(&h->ready, SHM_READY_WORD);
	snprintf(h->instance, sizeof(h->instance), "seed");
	size = (uint32_t)h->seg_size;
	memcpy(in, &size, 4);
	memcpy(in + 4, page, SHM_HDR_SIZE);
	return 4 + SHM_HDR_SIZE;
}

static void test_validate_seed_is_valid(void **state)
{
	static uint8_t in[4 + SHM_HDR_SIZE];
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
	free(buf);
}

static void test_validate_mutations(void **state)
{
	static uint8_t seed[4 + SHM_HDR_SIZE], in[4 + SHM_HDR_SIZE];
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
			/* mostly the first 400 bytes: that is where the fields are */
			size_t off = next() % 8 ? next() % 400 : next() % n;

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

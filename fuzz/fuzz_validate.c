/*
 * Fuzz target: random bytes into the segment validator. The first 4 bytes of the input pick
 * the size the validator is told (bounded); the rest is the segment's first bytes, zero
 * padded. Asserts: no crash, and an OK verdict really means every region is in bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/shm.h"

#define FUZZ_MAX_SIZE (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* zero pages, mapped lazily; only the first bytes are ever written (and re-zeroed) */
	static _Alignas(4096) uint8_t buf[FUZZ_MAX_SIZE];
	uint32_t claimed = 0;
	char err[256];
	size_t n;

	if (size < 4)
		return 0;
	memcpy(&claimed, data, 4);
	claimed %= FUZZ_MAX_SIZE;
	data += 4;
	size -= 4;
	n = size < claimed ? size : claimed;
	memcpy(buf, data, n);
	if (shm_seg_validate(buf, claimed, err, sizeof(err)) == SHM_V_OK) {
		const struct shm_hdr *h = (const struct shm_hdr *)buf;

		for (unsigned i = 0; i < SHM_R_COUNT; i++)
			if (h->regions[i].off + h->regions[i].size > claimed)
				abort();
	}
	memset(buf, 0, n);
	return 0;
}

/*
 * Fuzz target: random bytes into the segment validator. The first 4 bytes of the input pick
 * the size the validator is told (bounded); the rest is the segment's first bytes, zero
 * padded. Asserts: no crash, and an OK verdict really means every region is in bounds.
 *
 * A segment the validator accepts is then read as the tools read it after an attach: the
 * input's bytes past the header are also laid at the event ring's region (its head and first
 * records), and the ring is scanned as `shoal events` and the view scan it (shm/event.c).
 * Asserts: no crash, and every event returned has its strings terminated in their fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/event.h"
#include "shm/shm.h"

/* Scan the ring of validated segment buf as a tool would; abort on a bad event. */
static void read_events(uint8_t *buf, size_t size)
{
	struct shm_seg seg = {.base = buf, .size = size, .fd = -1, .self = UINT32_MAX};
	struct shm_event out[32];
	struct shm_event_scan st = {0};
	uint64_t next = shm_event_next(&seg);
	/* from a little before the end, and from 0: the missed count's path too */
	uint64_t cursors[2] = {next > 40 ? next - 40 : 0, 0};

	for (unsigned c = 0; c < 2; c++) {
		for (unsigned k = 0; k < 3; k++) {
			uint32_t got = shm_event_scan(&seg, &cursors[c], out, 32,
						      k == 1 ? SHM_EVENT_HOLD : 0, &st);

			if (got > 32)
				abort();
			for (uint32_t i = 0; i < got; i++)
				if (!memchr(out[i].name, 0, sizeof(out[i].name)) ||
				    !memchr(out[i].text, 0, sizeof(out[i].text)))
					abort();
			if (st.held)
				cursors[c]++;
		}
	}
}

#define FUZZ_MAX_SIZE (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* zero pages, mapped lazily; only the first bytes are ever written (and re-zeroed) */
	static _Alignas(4096) uint8_t buf[FUZZ_MAX_SIZE];
	uint32_t claimed = 0;
	char err[256];
	size_t n, ev_off = 0, ev_len = 0;

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
		const struct shm_region *ev = &h->regions[SHM_R_EVENTS];

		for (unsigned i = 0; i < SHM_R_COUNT; i++)
			if (h->regions[i].off + h->regions[i].size > claimed)
				abort();
		if (n > SHM_HDR_SIZE && ev->size) {
			ev_off = ev->off;
			ev_len = n - SHM_HDR_SIZE < ev->size ? n - SHM_HDR_SIZE : ev->size;
			memcpy(buf + ev_off, data + SHM_HDR_SIZE, ev_len);
		}
		read_events(buf, claimed);
	}
	memset(buf, 0, n);
	if (ev_len)
		memset(buf + ev_off, 0, ev_len);
	return 0;
}

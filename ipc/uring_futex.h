/*
 * io_uring futex requests, filled by hand: liburing 2.3 has no helpers for them and
 * Debian 12's kernel headers lack the constants (IORING_OP_FUTEX_WAIT/WAKE are Linux 6.7+).
 * Shared by the wakeups (ipc/wake.c) and the supervisor's ring (death words, its doorbell).
 */
#ifndef SHOAL_IPC_URING_FUTEX_H
#define SHOAL_IPC_URING_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <liburing.h>

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef IORING_OP_FUTEX_WAKE
#define IORING_OP_FUTEX_WAKE 52
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

/* A free SQE of ring, submitting what is queued if it is full; NULL if still none. */
static inline struct io_uring_sqe *ipc_uring_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

/*
 * A FUTEX_WAIT (val: the expected value) or FUTEX_WAKE (val: how many) on a 32-bit word.
 * Shared futex (never FUTEX2_PRIVATE): the words live in the segment, across processes.
 */
static inline void ipc_prep_futex(struct io_uring_sqe *sqe, uint8_t op, _Atomic uint32_t *word,
				  uint64_t val)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op;
	sqe->fd = FUTEX2_SIZE_U32;
	sqe->addr = (uint64_t)(uintptr_t)word;
	sqe->addr2 = val;
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
}

#endif

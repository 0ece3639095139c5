/*
 * Round records (layout minor 8): the shared state of a broadcast with acknowledgements.
 * shm/round.c keeps the record (claim, fill, answer bits, free); ipc/round.c sends the
 * messages, wakes the owner and repairs after a death.
 */
#ifndef SHM_ROUND_H
#define SHM_ROUND_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/shm.h"
#include "shoal/shoal.h"

/* What a member did in a round (shm_round_member()). */
enum shm_round_mstate {
	SHM_ROUND_M_ABSENT = 0, /* no answer (yet) */
	SHM_ROUND_M_ACKED = 1,	/* its handler returned */
	SHM_ROUND_M_DEAD = 2,	/* died, stopped or could not be reached during the round */
	SHM_ROUND_M_YES = 3,	/* a VOTE round's member voted yes */
	SHM_ROUND_M_NO = 4,	/* a VOTE round's member voted no */
};

/*
 * Take a free round record for the calling process (its claim tag: a dead owner's record is
 * freed by the repair of its slot, and a record whose owner's claim is dead, its slot
 * released or DEAD, is taken over like a free one). Returns 0 with the record's slot and new
 * generation, or -ENOSPC (every record in use, or the segment has none: [segment] rounds = 0),
 * -EROFS. Any process with a process slot; the record stays PREP until shm_round_publish().
 */
int shm_round_claim(struct shm_seg *seg, uint32_t *slot_out, uint32_t *gen_out);
/*
 * Fill a claimed record for n members (n <= group_members) and publish it (ACTIVE): the
 * answers of round (slot, gen) count from now on. The claimer, before it sends.
 */
void shm_round_publish(struct shm_seg *seg, uint32_t slot, uint32_t gen, shoal_handle_t owner,
		       const shoal_handle_t *members, uint32_t n, uint64_t deadline_ns,
		       uint64_t user_ref);
/*
 * Make claimed round (slot, gen) a VOTE round (enum shm_round_kind: its bits mean answered
 * and yes). The claimer, between shm_round_claim() and shm_round_publish().
 */
void shm_round_set_kind(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t kind);
/*
 * Record member idx's answer to round (slot, gen): acked, or dead (dead set). Idempotent: a
 * second answer of the same member changes nothing (the first decides). Returns 1 if this
 * call completed the round (the caller wakes its owner: ipc_round_answer()), 0 if not,
 * -ESTALE if the round is over or the record was reused (a late or duplicate answer),
 * -EINVAL for an index or slot out of range. Any process.
 */
int shm_round_answer(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx, bool dead);
/*
 * Attach value (< SHM_ROUND_NO_VALUE) to member idx's answer to round (slot, gen): an
 * allocation's demand. Call before shm_round_answer() for that member, from the same thread
 * (the answer publishes it). The first value stays: returns 0, -EALREADY (a value was set,
 * or the member answered already: a redelivered message changes nothing), -ESTALE (the
 * round is over or the record was reused), -EINVAL (index, slot or value out of range).
 */
int shm_round_set_value(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
			uint32_t value);
/*
 * Member idx's value: true and *value if it answered (not dead) with one, else false. The
 * owner (or anyone), typically once the round is over.
 */
bool shm_round_value(const struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
		     uint32_t *value);
/*
 * Record member idx's vote in a VOTE round (slot, gen): yes or no, in the one CAS that marks
 * it answered. In a VOTE round shm_round_answer() counts an ack (dead false) as yes: a member
 * that has no vote consents. Returns as shm_round_answer(). Any process.
 */
int shm_round_vote(struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx, bool yes);
/* Has every member of round (slot, gen) answered or died? Any process. */
bool shm_round_is_complete(const struct shm_seg *seg, uint32_t slot, uint32_t gen);
/* Member idx of round (slot, gen): its handle (may be NULL) and enum shm_round_mstate. */
uint32_t shm_round_member(const struct shm_seg *seg, uint32_t slot, uint32_t gen, uint32_t idx,
			  shoal_handle_t *handle);
/*
 * Finish every answer whose process died between its bits (set a parent's bit for each full
 * word): the repair of a dead slot. Returns 1 if the round is complete (its owner may not
 * have been woken: the caller wakes it; a second wake is harmless), else 0.
 */
int shm_round_settle(struct shm_seg *seg, uint32_t slot, uint32_t gen);
/* Free round (slot, gen): its owner when done. */
void shm_round_free(struct shm_seg *seg, uint32_t slot, uint32_t gen);
/*
 * Free the record in slot if its owner's claim tag is still tag (a dead owner's): the repair
 * of the owner's slot. A record already taken over by a claimer stays its.
 */
void shm_round_free_dead(struct shm_seg *seg, uint32_t slot, uint64_t tag);
/* The record in slot (NULL out of range or none): for the repair's and tools' scans. */
struct shm_round *shm_round_at(const struct shm_seg *seg, uint32_t slot);
/* Records in use (claimed), for tests and tools. Read-only safe. */
uint32_t shm_round_in_use(const struct shm_seg *seg);

/*
 * Test hook: when set, an answer calls it at numbered steps (SHM_ROUND_STEP_*) so a test can
 * kill the answering process exactly there. NULL in production: one load per answer.
 */
enum {
	SHM_ROUND_STEP_LEAF_FULL = 1, /* a level-0 word filled, its parent's bit not yet set */
};
extern void (*shm_round_test_hook)(int step);

/* A round's message reference: (gen << 32) | (slot << 16) | member index. */
static inline uint64_t shm_round_ref(uint32_t slot, uint32_t gen, uint32_t idx)
{
	return ((uint64_t)gen << 32) | ((uint64_t)(slot & 0xffffu) << 16) | (idx & 0xffffu);
}

#endif

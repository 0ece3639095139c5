/*
 * shoal stress: the books every participant writes (agents in the workers, the forked
 * clients, the tool itself), the message format, and the checker's bookkeeping.
 *
 * The books are one MAP_SHARED anonymous mapping the tool makes before it forks the
 * supervisor and the clients: workers (forked by the supervisor, never exec'd) and clients
 * inherit it, so every process writes into the same pages, and the pages outlive any of them.
 *
 * Each (sender, receiver) pair has a stream of sequence numbers 1, 2, 3, ... The sender
 * writes its side, the receiver its own; each side has one writer at a time (an agent's
 * callbacks run one at a time, a client id is run by one process at a time), so a side's
 * words are written by plain read-modify-write of relaxed atomics, with release stores where
 * the order matters to the checker reading a dead writer's side.
 *
 * The checker's functions (stress_pair_*, stress_payload_*) touch nothing but their
 * arguments, so tests/test_stress.c can drive them with a fabricated record stream.
 */
#ifndef TOOLS_STRESS_H
#define TOOLS_STRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define STRESS_AGENTS_MAX  64u /* stable agents (st-000 ...): the receivers */
#define STRESS_CLIENTS_MAX 32u /* client ids (one process at a time each) */
/* senders: the agents, the clients, then the tool itself (its bursts) */
#define STRESS_SENDERS_MAX (STRESS_AGENTS_MAX + STRESS_CLIENTS_MAX + 1u)
#define STRESS_RANGES	   64u /* ranges a pair's maybe and gap lists hold */

#define STRESS_MAGIC  0x53545253u /* "STRS" */
#define STRESS_TO_ALL 0xffffu	  /* a broadcast's receiver id */

/* What a message is (struct stress_payload.kind). */
enum stress_kind {
	STRESS_K_STREAM = 1, /* a cast, batched send or call in its pair's stream */
	STRESS_K_BCAST = 2,  /* a broadcast: checked for corruption, not in a stream */
	STRESS_K_CHURN = 3,  /* a cast to a churn agent (it may be stopped with it queued) */
	STRESS_K_ECHO = 4,   /* a call's reply: the request's seq and sum */
};

/*
 * A message's payload: who, to whom, which number, and a checksum over all of it (the fill
 * included: its bytes and length are a function of seq, so a torn or shifted copy shows).
 */
struct stress_payload {
	uint32_t magic; /* STRESS_MAGIC */
	uint16_t kind;	/* enum stress_kind */
	uint16_t from;	/* sender id */
	uint16_t to;	/* receiver id, STRESS_TO_ALL for a broadcast */
	uint16_t fill;	/* bytes of fill after the header */
	uint32_t rsvd;	/* zero */
	uint64_t seq;	/* the pair's sequence number (a broadcast: the sender's own count) */
	uint64_t sum;	/* FNV-1a 64 of the whole payload with this field zero */
};

#define STRESS_FILL_MAX 64u
#define STRESS_MSG_MAX	(sizeof(struct stress_payload) + STRESS_FILL_MAX)

/*
 * Write a payload into buf (at least STRESS_MSG_MAX bytes). Returns its length. Any
 * process.
 */
uint32_t stress_payload_make(void *buf, uint16_t kind, uint16_t from, uint16_t to, uint64_t seq);
/*
 * Check a received payload: 0 and its header in *out, or -EBADMSG (too short, wrong magic,
 * wrong length for its seq, or a checksum that does not match). Any process.
 */
int stress_payload_check(const void *data, uint32_t len, struct stress_payload *out);

/* A range of sequence numbers, lo..hi inclusive. */
struct stress_range {
	uint64_t lo, hi;
};

/* One (sender, receiver) pair's books. */
struct stress_pair {
	/* --- the sender's side --- */
	_Atomic uint64_t next; /* the next number to send; every one below went or is maybe */
	_Atomic uint64_t infl; /* the highest number of a send under way, 0 none */
	_Atomic uint32_t nmaybe;
	_Atomic uint32_t maybe_over; /* maybe ranges that did not fit */
	/* numbers a sender that died mid-send may or may not have sent */
	struct stress_range maybe[STRESS_RANGES];
	/* --- the receiver's side --- */
	_Atomic uint64_t hi;	      /* the highest number delivered */
	_Atomic uint64_t redelivered; /* deliveries flagged SHOAL_MSG_REDELIVERED */
	_Atomic uint64_t dup;	      /* a number seen again without the flag */
	_Atomic uint64_t ooo;	      /* a number below hi, not seen before, without the flag */
	_Atomic uint32_t ngap;
	_Atomic uint32_t gap_over; /* gaps that did not fit */
	/* numbers skipped when a higher one came first */
	struct stress_range gap[STRESS_RANGES];
};

/* What one delivery was (stress_pair_note()). */
enum stress_note {
	STRESS_NEW = 0,	       /* the next number, or a higher one (what it skipped is a gap) */
	STRESS_REDELIVERY = 1, /* a number seen already, flagged redelivered: allowed */
	STRESS_DUP = 2,	       /* a number seen already, not flagged: a violation */
	STRESS_OOO = 3,	       /* a skipped number that came late, not flagged: a violation */
};

/*
 * Sender: a send of the numbers up to last is under way (release: visible before the
 * send's own stores). The sender's process.
 */
void stress_pair_begin(struct stress_pair *p, uint64_t last);
/* Sender: number seq went (the send returned it accepted). The sender's process. */
void stress_pair_commit(struct stress_pair *p, uint64_t seq);
/* Sender: the send is over (after its commits): what did not go will be sent again. */
void stress_pair_end(struct stress_pair *p);
/*
 * A batch from sender id of per consecutive stream numbers to each of the two distinct
 * stable agents to[0] and to[1]: begins both pairs and fills out[0 .. 2 * per) (payloads
 * in buf, their numbers in seqs). stress_batch_done() then commits the n that a send
 * accepted (in out's order) and ends both pairs. The sender's process; per <= 3.
 */
struct shoal_out;
void stress_batch_fill(uint32_t id, const uint32_t to[2], uint32_t per, struct shoal_out *out,
		       unsigned char (*buf)[STRESS_MSG_MAX], uint64_t *seqs);
void stress_batch_done(uint32_t id, const uint32_t to[2], uint32_t per, const uint64_t *seqs,
		       int n);
/*
 * Sender, when a new incarnation takes the sender id over (an agent's init, a client
 * process's start): numbers a dead predecessor had under way become maybe, and the next
 * number moves past them, so no number is ever sent with two contents.
 */
void stress_pair_recover(struct stress_pair *p);
/*
 * Receiver: note the delivery of number seq, flagged redelivered or not. Returns what it
 * was. The receiver's process.
 */
enum stress_note stress_pair_note(struct stress_pair *p, uint64_t seq, bool redelivered);

/* A pair's books judged at the end (stress_pair_check()). */
struct stress_pair_result {
	uint64_t sent;	     /* numbers known to have gone */
	uint64_t delivered;  /* distinct numbers delivered */
	uint64_t maybe;	     /* numbers whose send is not known to have gone */
	uint64_t lost;	     /* numbers that went (or may have) and never came, not maybe */
	uint64_t first_lost; /* the lowest of those, 0 none */
	bool uncheckable;    /* a list overflowed: the pair cannot be judged */
};

/*
 * Judge a pair once no send is under way and everything sent had time to arrive: a number
 * is lost when it is below next, or in a gap, and in no maybe range (nor the range a dead
 * sender had under way). Any process; reads only p.
 */
void stress_pair_check(const struct stress_pair *p, struct stress_pair_result *r);

/* The first violation anybody saw during the run (later ones are counted, not kept). */
enum stress_violation_kind {
	STRESS_V_NONE = 0,
	STRESS_V_DUP = 1,	 /* duplicated without the redelivered flag */
	STRESS_V_OOO = 2,	 /* out of order outside a redelivery */
	STRESS_V_CORRUPT = 3,	 /* a payload whose checksum or addressing is wrong */
	STRESS_V_REGISTRY = 4,	 /* a stable name resolved wrong while the run went on */
	STRESS_V_CALL_REPLY = 5, /* a call's reply that does not echo its request */
};

struct stress_violation {
	_Atomic uint32_t set; /* 0 until the first one is written (claimed by CAS to 1, 2 done) */
	uint32_t kind;	      /* enum stress_violation_kind */
	uint32_t from, to;    /* sender and receiver ids */
	uint64_t seq;	      /* the number concerned */
	uint64_t aux;	      /* kind-dependent: the pair's hi, the handle found, ... */
};

/* Record a violation if it is the first (any process). */
void stress_violation_note(struct stress_violation *v, uint32_t kind, uint32_t from, uint32_t to,
			   uint64_t seq, uint64_t aux);

/* A stable agent's books (index = its number in st-NNN). */
struct stress_agent_rec {
	_Atomic uint64_t handle;	/* written by the tool once the instance is up */
	_Atomic uint32_t fail_req;	/* the tool asks its next callback to fail */
	_Atomic uint32_t memhog_req;	/* the tool asks it to allocate past its worker's cap */
	_Atomic uint32_t joined;	/* it joined the broadcast group */
	_Atomic uint32_t rsvd;		/* zero */
	_Atomic uint64_t inits;		/* init ran (first start and every restart) */
	_Atomic uint64_t fails;		/* callbacks failed on request */
	_Atomic uint64_t memcap_hits;	/* an allocation past the cap was refused */
	_Atomic uint64_t memcap_miss;	/* an allocation past the cap succeeded (no cap) */
	_Atomic uint64_t backpressure;	/* sends refused with -EAGAIN (a full mailbox) */
	_Atomic uint64_t send_err;	/* sends refused otherwise */
	_Atomic uint64_t async_sent;	/* async calls sent */
	_Atomic uint64_t async_replied; /* their replies (an echo) */
	_Atomic uint64_t async_err;	/* their error replies */
	_Atomic uint64_t bcast_sent;	/* broadcast messages put (members reached) */
	_Atomic uint64_t bcast_recv;	/* broadcast messages received */
	_Atomic uint64_t bseq;		/* its broadcasts' count */
	_Atomic uint64_t lookups;	/* lookups of stable names */
};

/* A client id's books, over every process that ran it. */
struct stress_client_rec {
	_Atomic int32_t pid;		/* the process running it now, 0 none */
	_Atomic uint32_t in_call;	/* 1 while it waits for a call's reply */
	_Atomic uint64_t runs;		/* processes started */
	_Atomic uint64_t calls;		/* calls made (sync and async) */
	_Atomic uint64_t calls_ok;	/* answered with the echo */
	_Atomic uint64_t calls_err;	/* failed with an error (counted by kind below) */
	_Atomic uint64_t calls_timeout; /* of those, -ETIMEDOUT */
	_Atomic uint64_t calls_hung;	/* took longer than their timeout and a grace */
	_Atomic uint64_t sends;		/* casts and batched messages accepted */
	_Atomic uint64_t backpressure;	/* sends refused with -EAGAIN / -ETIMEDOUT */
	_Atomic uint64_t bcasts;	/* broadcasts made */
	_Atomic uint64_t lookups;	/* lookups */
	_Atomic uint64_t spawns;	/* churn agents spawned */
	_Atomic uint64_t stops;		/* churn agents stopped */
	_Atomic uint64_t var_updates;	/* variable updates committed */
	_Atomic uint64_t proposals;	/* proposals made */
	_Atomic uint64_t proposals_ok;	/* of those, committed */
	_Atomic uint64_t checkouts;	/* pool checkouts */
	_Atomic uint64_t op_errors;	/* other operations that failed with an error */
};

/* The books: one mapping shared by every process of the run. */
struct stress_log {
	uint32_t magic;	   /* STRESS_MAGIC */
	uint32_t nagents;  /* stable agents */
	uint32_t nclients; /* client ids */
	uint32_t tool_id;  /* the tool's sender id: nagents + nclients */
	uint64_t seed;
	_Atomic uint32_t go; /* 1: the workload runs */
	/*
	 * 1: the cap is a cgroup's memory.max (stress --cgroup), which an untouched allocation
	 * does not reach: the hog writes its pages and its worker is OOM-killed. Set before
	 * the instance starts.
	 */
	uint32_t hog_touch;
	_Atomic uint64_t hog_touched; /* hogs that began writing past the cgroup cap */
	_Atomic uint32_t stopping;    /* 1: the end: senders stop */
	struct stress_violation first;
	_Atomic uint64_t violations; /* every violation seen while running */
	_Atomic uint64_t corrupt;    /* corrupted payloads */
	struct stress_agent_rec agent[STRESS_AGENTS_MAX];
	struct stress_client_rec client[STRESS_CLIENTS_MAX + 1]; /* + the tool's */
	struct stress_pair pair[STRESS_SENDERS_MAX][STRESS_AGENTS_MAX];
};

/* The books of this process (inherited by every process forked after they were made). */
extern struct stress_log *stress_log;

/* Register the stress agent types in this process (tools/stress_agent.c). 0 or -errno. */
int stress_types_register(void);

/* The stable agents' names: st-000, st-001, ... */
#define STRESS_AGENT_FMT "st-%03u"
#define STRESS_GROUP	 "stress.all"
#define STRESS_POOL	 "stress-pool"
#define STRESS_VAR	 "stress.v"
/* --attach-ok: the variable (a blob) holding the path of the books' file in /dev/shm */
#define STRESS_LOG_VAR	    "stress.log"
#define STRESS_LOG_PATH_MAX 64

#endif

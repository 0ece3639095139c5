/*
 * shoal events [--instance NAME] [--follow] [--since SEQ] [--json]: the instance's event ring
 * (shm/event.h) as lines, attached read-only. --follow waits on the segment's change counter
 * (every append bumps it) until the instance stops.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "shm/event.h"
#include "shm/shm.h"
#include "tools/tools.h"

#define EVENTS_BATCH 256 /* events copied per scan */
/*
 * How long a follower waits for an incomplete event's writer before it says the event is
 * incomplete and goes on: an append takes well under a microsecond, so a writer still at it
 * after this long was killed (or stopped) midway.
 */
#define EVENTS_GRACE_NS 200000000ull
/*
 * A follower's longest futex wait: a supervisor killed outright bumps nothing, so the wait
 * ends now and then to look at its liveness (an orderly stop bumps the counter and ends it
 * at once).
 */
#define EVENTS_LIVENESS_NS 1000000000ull

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal events [--instance NAME] [--follow] [--since SEQ] [--json]\n"
		"Prints the instance's event ring, oldest first, one line per event: time (UTC),\n"
		"sequence number, kind, who (worker, pid, agent) and a short text. Attaches\n"
		"read-only. Events overwritten before they were read are counted ('missed N\n"
		"events'); an event whose writer died while writing it is reported incomplete.\n"
		"  --since SEQ  start at event number SEQ (default 0: everything still kept)\n"
		"  --follow     after the ring, wait for new events and print them as they come,\n"
		"               until the instance stops (then exit 0; 1 if its supervisor died)\n"
		"  --json       one JSON object per line: {\"seq\", \"time_ns\", \"time\", "
		"\"kind\",\n"
		"               \"reason\", \"code\", \"signal\", \"worker\", \"pid\", \"slot\", "
		"\"agent\",\n"
		"               \"name\", \"text\"}; also {\"missed\": N} and {\"incomplete\": "
		"SEQ}\n");
}

/* Copy a string a segment wrote into out (cap bytes): printable ASCII only, '?' else. */
static void clean_copy(char *out, size_t cap, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < cap && i < n && s[i]; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[i] = 0;
}

static void format_time(uint64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	char base[32];

	if (!gmtime_r(&t, &tm) || !strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, cap, "-");
		return;
	}
	snprintf(buf, cap, "%s.%06uZ", base, (unsigned)(ns % 1000000000u / 1000u));
}

/* See tools.h. */
void tool_event_line(const struct shm_event *e, char *buf, size_t cap)
{
	char when[48], who[128], name[sizeof(e->name) + 1], text[sizeof(e->text) + 1];
	size_t n = 0;

	format_time(e->time_ns, when, sizeof(when));
	clean_copy(name, sizeof(name), e->name, sizeof(e->name));
	clean_copy(text, sizeof(text), e->text, sizeof(e->text));
	who[0] = 0;
	if (e->worker >= 0)
		n += (size_t)snprintf(who + n, sizeof(who) - n, "worker %d", e->worker);
	if (e->pid && n < sizeof(who))
		n += (size_t)snprintf(who + n, sizeof(who) - n, "%spid %u", n ? " " : "", e->pid);
	if (e->agent && n < sizeof(who))
		n += (size_t)snprintf(who + n, sizeof(who) - n, "%sagent '%s' %#" PRIx64,
				      n ? " " : "", name, e->agent);
	if (!who[0])
		snprintf(who, sizeof(who), "-");
	snprintf(buf, cap, "%s  #%" PRIu64 "  %-14s  %s: %s", when,
		 (uint64_t)atomic_load_explicit(&e->seq, memory_order_relaxed),
		 shm_event_kind_name(e->kind), who, text);
}

/* See tools.h. */
struct json_t *tool_event_json(const struct shm_event *e)
{
	char when[48], name[sizeof(e->name) + 1], text[sizeof(e->text) + 1];

	format_time(e->time_ns, when, sizeof(when));
	clean_copy(name, sizeof(name), e->name, sizeof(e->name));
	clean_copy(text, sizeof(text), e->text, sizeof(e->text));
	/* numbers: JSON readers take them as doubles; a sequence or a handle (inspect --json
	 * writes handles as integers too) stays exact up to 2^53 */
	return json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:o, s:s, s:s}", "seq",
			 (json_int_t)atomic_load_explicit(&e->seq, memory_order_relaxed), "time_ns",
			 (json_int_t)e->time_ns, "time", when, "kind", shm_event_kind_name(e->kind),
			 "reason", shm_event_reason_name(e->kind, e->reason), "code", (int)e->code,
			 "signal", (int)e->signal, "worker", (int)e->worker, "pid",
			 (json_int_t)e->pid, "slot",
			 (json_int_t)(e->slot == UINT32_MAX ? -1 : (json_int_t)e->slot), "agent",
			 e->agent ? json_integer((json_int_t)e->agent) : json_null(), "name", name,
			 "text", text);
}

/* What a run prints: its options and where it is. */
struct events_run {
	const char *instance;
	bool json;
	bool follow;
	uint64_t cursor;	  /* the next event to print */
	struct shm_event_scan st; /* what the scans passed over */
	uint64_t missed_shown;	  /* of st.missed, how many were said */
	struct shm_event buf[EVENTS_BATCH];
	uint32_t got;
};

static void print_json(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s)
		puts(s);
	free(s);
	json_decref(o);
}

/* Print what the last scan found: a missed count first (it came before them), the events. */
static void print_scan(struct events_run *r)
{
	uint64_t missed = r->st.missed - r->missed_shown;

	if (missed) {
		if (r->json)
			print_json(json_pack("{s:I}", "missed", (json_int_t)missed));
		else
			printf("-- missed %" PRIu64
			       " event%s (overwritten before they were read)\n",
			       missed, missed == 1 ? "" : "s");
		r->missed_shown = r->st.missed;
	}
	for (uint32_t i = 0; i < r->got; i++) {
		if (r->json) {
			print_json(tool_event_json(&r->buf[i]));
		} else {
			char line[512];

			tool_event_line(&r->buf[i], line, sizeof(line));
			puts(line);
		}
	}
	r->got = 0;
	fflush(stdout);
}

/* Pass over the incomplete event at the cursor, and say so. */
static void skip_incomplete(struct events_run *r)
{
	if (r->json)
		print_json(json_pack("{s:I}", "incomplete", (json_int_t)r->cursor));
	else
		printf("-- #%" PRIu64 " incomplete (its writer died or was overtaken while "
		       "writing it)\n",
		       r->cursor);
	fflush(stdout);
	r->cursor++;
	r->st.incomplete++;
}

/* One scan, for shm_seg_guard(): a fault reading the ring becomes -EFAULT. */
static int scan_once(const struct shm_seg *seg, void *arg)
{
	struct events_run *r = arg;

	r->got = shm_event_scan(seg, &r->cursor, r->buf, EVENTS_BATCH, SHM_EVENT_HOLD, &r->st);
	return 0;
}

/*
 * Scan and print until the end of the ring. An incomplete event: skipped (and said) with
 * skip, else the drain stops there (r->st.held). 0, or -EFAULT with the offset in *bad.
 */
static int drain(struct shm_seg *seg, struct events_run *r, bool skip, uint64_t *bad)
{
	for (;;) {
		int ret = shm_seg_guard(seg, scan_once, r, bad);

		if (ret)
			return ret;
		print_scan(r);
		if (r->st.held) {
			if (!skip)
				return 0;
			skip_incomplete(r);
			continue;
		}
		if (r->got < EVENTS_BATCH && !r->st.held)
			return 0;
	}
}

/*
 * Print the ring, then each event as it comes, until the instance stops: -ESHUTDOWN (in
 * order) or -EOWNERDEAD (its supervisor died), said on stderr; -EFAULT; another -errno.
 */
static int follow(struct shm_seg *seg, struct events_run *r, uint64_t *bad)
{
	uint64_t held_at = UINT64_MAX, held_since = 0;

	/* on stderr: stdout keeps to events (one JSON object a line with --json) */
	fprintf(stderr, "shoal events: following instance '%s' from #%" PRIu64 " (^C stops)\n",
		r->instance, r->cursor);
	for (;;) {
		/* read before the scan: an append after it moves the counter past c */
		uint32_t c = shm_change_read(seg);
		int gone = shm_seg_gone(seg, shm_seg_liveness(seg, 0));
		uint64_t now, deadline;
		int ret = drain(seg, r, false, bad);

		if (ret)
			return ret;
		now = shm_now_ns();
		if (r->st.held) {
			if (held_at != r->cursor) {
				held_at = r->cursor;
				held_since = now;
			}
			if (now - held_since >= EVENTS_GRACE_NS || gone) {
				/* its writer had time enough */
				skip_incomplete(r);
				held_at = UINT64_MAX;
				continue;
			}
		}
		if (gone) {
			fprintf(stderr, "shoal events: instance '%s' %s\n", r->instance,
				gone == -ESHUTDOWN ? "stopped" : "lost its supervisor");
			return gone;
		}
		deadline = now + EVENTS_LIVENESS_NS;
		if (r->st.held && held_since + EVENTS_GRACE_NS < deadline)
			deadline = held_since + EVENTS_GRACE_NS;
		ret = shm_change_wait(seg, c, deadline);
		if (ret && ret != -ETIMEDOUT)
			return ret;
	}
}

static int parse_seq(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

int cmd_events(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'}, {"follow", no_argument, NULL, 'f'},
		{"since", required_argument, NULL, 's'},    {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},	    {NULL, 0, NULL, 0},
	};
	static struct events_run r;
	struct shm_seg *seg;
	uint64_t bad = 0;
	char err[512];
	int c, ret, ex;

	memset(&r, 0, sizeof(r));
	r.instance = tool_default_instance();
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:fs:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			r.instance = optarg;
			break;
		case 'f':
			r.follow = true;
			break;
		case 's':
			if (parse_seq(optarg, &r.cursor)) {
				fprintf(stderr,
					"shoal events: --since takes an event number (0 or more), "
					"not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			r.json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shoal events: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	ret = shm_seg_attach(r.instance, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT, 0, &seg, err,
			     sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal events: %s\n", err);
		return tool_exit_for(ret);
	}
	if (!shm_event_capacity(seg)) {
		fprintf(stderr,
			"shoal events: instance '%s' keeps no events (it was made with [segment] "
			"events = 0); give it a ring, e.g. events = 4096, when it next starts\n",
			r.instance);
		ex = EXIT_USAGE;
		goto out_detach;
	}
	ret = r.follow ? follow(seg, &r, &bad) : drain(seg, &r, true, &bad);
	if (ret == -EFAULT) {
		fprintf(stderr,
			"shoal events: instance '%s': byte %" PRIu64 " of its segment cannot be "
			"read (the file was truncated, or has a hole a full /dev/shm cannot back); "
			"the output above is incomplete\n",
			r.instance, bad);
		ex = EXIT_USAGE;
	} else if (ret == -ESHUTDOWN || !ret) {
		ex = EXIT_OK;
	} else if (ret == -EOWNERDEAD) {
		ex = EXIT_CHECK;
	} else {
		fprintf(stderr, "shoal events: instance '%s': %s\n", r.instance, strerror(-ret));
		ex = EXIT_SYSTEM;
	}
out_detach:
	shm_seg_detach(seg);
	return ex;
}

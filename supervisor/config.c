/* The run configuration: an INI file parsed with libinih, and the embedded default. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <hwloc.h>
#include <ini.h>

#include "shm/event.h"
#include "shm/shm.h"
#include "shoal/agent.h"
#include "slo/slo.h"
#include "supervisor/sup.h"
#include "workers/wrk.h"

const char sup_default_config[] =
	"; shoal's embedded default: one worker per core and a demo population.\n"
	"[instance]\n"
	"name = default\n"
	"workers = 0\n"
	"placement = spread\n"
	"status_interval = 5\n"
	"\n"
	"[restart]\n"
	"strategy = one_for_one\n"
	"intensity = 10\n"
	"period = 10\n"
	"\n"
	"; the demo: tuners search shared hyperparameters (the variables best.*), the\n"
	"; coordinator keeps the best and announces it with acknowledged broadcasts, and\n"
	"; tuners draw evaluators from a pool\n"
	"[agent coordinator]\n"
	"type = coordinator\n"
	"\n"
	"[agent tuner]\n"
	"type = tuner\n"
	"count = 100\n"
	"name = tuner-%03u\n"
	"\n"
	"[pool evaluators]\n"
	"type = echo\n"
	"size = 4\n"
	"overflow = 4\n";

#define MAX_SECTIONS (SUP_MAX_AGENT_SPECS + 16) /* section headers remembered */
#define MAX_SEC_KEYS 24				/* keys remembered per section */

/* Parser state: the line being read and the first error. */
struct parse {
	struct sup_config *c;
	const char *name;	      /* file name for messages */
	const char *text;	      /* string source, or NULL */
	FILE *file;		      /* file source, or NULL */
	int line;		      /* lines handed to inih so far */
	bool indented;		      /* the line being parsed starts with blanks */
	int err_line;		      /* line of the first handler error, 0 none */
	char err[320];		      /* its message */
	char why[96];		      /* a value's specific fault, for BADVAL; "" none */
	struct sup_agent_spec *agent; /* the [agent] section being read */
	uint32_t nsecs;		      /* used entries of secs[] */
	struct {
		char name[72]; /* canonical section name ("agent NAME" with one blank) */
		int line;      /* its header's line */
	} secs[MAX_SECTIONS];  /* every section header read so far */
	uint32_t nkeys;	       /* used entries of keys[] */
	struct {
		char key[32]; /* a key set in the current section */
		int line;     /* where */
	} keys[MAX_SEC_KEYS];
};

/* See sup.h. Callers: any thread. */
void sup_config_init(struct sup_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->source, sizeof(c->source), "<default>");
	snprintf(c->instance, sizeof(c->instance), "default");
	c->placement = SUP_PLACE_SPREAD;
	c->stop_timeout_ms = 5000;
	c->ready_timeout_ms = 10000;
	c->status_interval_ms = 5000;
	c->slo_interval_ms = 10000;
	c->spare = true;
	c->policy.strategy = SUP_ONE_FOR_ONE;
	c->policy.intensity = 10;
	c->policy.period_ms = 10000;
	c->policy.backoff_initial_ms = 10;
	c->policy.backoff_max_ms = 2000;
	c->policy.backoff_factor = 2;
	c->policy.backoff_first = false;
	c->policy.hang_ms = 10000;
	shm_cfg_default(&c->shm);
	snprintf(c->dist.listen, sizeof(c->dist.listen), "127.0.0.1");
	c->dist.ticktime_s = 60; /* the BEAM's default net_ticktime */
	c->dist.monitors = true;
}

/* See sup.h. Callers: any thread. */
const char *sup_strategy_name(uint32_t s)
{
	switch (s) {
	case SUP_ONE_FOR_ONE:
		return "one_for_one";
	case SUP_ONE_FOR_ALL:
		return "one_for_all";
	case SUP_REST_FOR_ONE:
		return "rest_for_one";
	}
	return "?";
}

/*
 * A leading zero reads as octal to some people and decimal to others ("010"), and strtoull's
 * base 0 took "0x10" too: integers are plain decimal. Says why in ps->why when it refuses
 * a number for its leading zero, so the message can name both readings.
 */
static bool is_leading_zero(struct parse *ps, const char *s, size_t ndigits)
{
	unsigned long long dec, oct;
	bool octal = true;

	if (s[0] != '0')
		return false;
	if (s[1] == 'x' || s[1] == 'X') {
		errno = 0;
		dec = strtoull(s + 2, NULL, 16);
		if (s[2] && !s[2 + strspn(s + 2, "0123456789abcdefABCDEF")] && !errno)
			snprintf(ps->why, sizeof(ps->why), "hexadecimal is not allowed; write %llu",
				 dec);
		return true;
	}
	if (ndigits < 2)
		return false;
	for (size_t i = 0; i < ndigits; i++)
		octal &= s[i] <= '7';
	errno = 0;
	dec = strtoull(s, NULL, 10);
	oct = strtoull(s, NULL, 8);
	if (errno)
		return true;
	if (octal && oct != dec)
		snprintf(ps->why, sizeof(ps->why),
			 "leading zeros are not allowed; write %llu (or %llu if octal was meant)",
			 dec, oct);
	else
		snprintf(ps->why, sizeof(ps->why), "leading zeros are not allowed; write %llu",
			 dec);
	return true;
}

static int parse_u64(struct parse *ps, const char *s, uint64_t max, uint64_t *out)
{
	size_t n = strspn(s, "0123456789");
	unsigned long long v;

	if (!n || (s[n] && !(n == 1 && (s[1] == 'x' || s[1] == 'X'))))
		return -EINVAL;
	if (is_leading_zero(ps, s, n))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, NULL, 10);
	if (errno || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u32(struct parse *ps, const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	int r = parse_u64(ps, s, max, &v);

	if (!r)
		*out = (uint32_t)v;
	return r;
}

static int parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/*
 * Seconds with an optional fraction ("10", "0.5", "2s") or "NNNms", into milliseconds. Only
 * decimal digits and one point: strtod alone also took "nan", "inf" and hex floats, and NaN
 * slipped through every range check. A nonzero time that rounds to 0 ms is refused, since 0
 * means "off" for several keys ("0.1ms" silently turned hang detection off).
 */
static int parse_ms(struct parse *ps, const char *s, uint32_t *out)
{
	size_t ni = strspn(s, "0123456789"), nf = 0;
	const char *end = s + ni;
	double v;

	if (*end == '.') {
		nf = strspn(end + 1, "0123456789");
		if (!nf)
			return -EINVAL;
		end += 1 + nf;
	}
	if (!ni && !nf)
		return -EINVAL;
	if (ni > 1 && s[0] == '0') {
		snprintf(ps->why, sizeof(ps->why),
			 "leading zeros are not allowed; write the number without them");
		return -EINVAL;
	}
	v = strtod(s, NULL);
	if (!strcmp(end, "ms"))
		;
	else if (!*end || !strcmp(end, "s"))
		v *= 1000.0;
	else
		return -EINVAL;
	if (!(v >= 0 && v <= 86400000.0))
		return -EINVAL;
	*out = (uint32_t)(v + 0.5);
	if (v > 0 && !*out) {
		snprintf(ps->why, sizeof(ps->why),
			 "it rounds to 0 ms, which means off; write 0 if that is meant");
		return -EINVAL;
	}
	return 0;
}

/* See sup.h. Callers: any thread. */
int sup_size_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!*s || *s == '-' || *s == '+' || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end || v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/*
 * See sup.h. Callers: any thread. Written here rather than hwloc_bitmap_list_sscanf(): that
 * one is lenient where a config must not be (Debian's hwloc 2.9 reads "0x3" as cpu 3,
 * "0-3x" as 0-3, "3-1" as no cpu and "0-" as an infinite set, all without an error), and
 * a typo in cpus would silently run the workers elsewhere. test_config_bad_cpus holds it.
 */
int sup_cpulist_parse(const char *s, uint64_t set[SUP_MAX_CPUS / 64])
{
	memset(set, 0, SUP_MAX_CPUS / 8);
	while (*s) {
		char *end;
		unsigned long a, b;

		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				return -EINVAL;
			b = strtoul(end + 1, &end, 10);
		}
		if (a > b || b >= SUP_MAX_CPUS)
			return -EINVAL;
		for (unsigned long i = a; i <= b; i++)
			set[i / 64] |= 1ull << (i % 64);
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return 0;
}

/*
 * A name pattern holds at most one conversion, of u or d with optional 0-padding and
 * width ("%03u"); "%%" is a literal percent. Returns conversions found, or -EINVAL.
 */
static int pattern_check(const char *p)
{
	int conv = 0;

	for (; *p; p++) {
		if (*p != '%')
			continue;
		if (p[1] == '%') {
			p++;
			continue;
		}
		p++;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p != 'u' && *p != 'd')
			return -EINVAL;
		conv++;
	}
	return conv > 1 ? -EINVAL : conv;
}

/* See sup.h. Callers: any thread. */
int sup_agent_name(const struct sup_agent_spec *s, uint32_t i, char *name, size_t cap)
{
	int n;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	n = snprintf(name, cap, s->pattern, i);
#pragma GCC diagnostic pop
	if (n < 0 || (size_t)n >= cap || n >= 64)
		return -ENAMETOOLONG;
	return 0;
}

#define FAIL(ps, ...)                                                                              \
	do {                                                                                       \
		if (!(ps)->err_line) {                                                             \
			(ps)->err_line = (ps)->line;                                               \
			snprintf((ps)->err, sizeof((ps)->err), __VA_ARGS__);                       \
		}                                                                                  \
		return 0;                                                                          \
	} while (0)

#define BADVAL(ps, sec, key, val, what)                                                            \
	FAIL(ps, "[%s] %s = '%s': %s", sec, key, val, (ps)->why[0] ? (ps)->why : (what))

static int on_instance(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_config *c = ps->c;

	if (!strcmp(k, "name")) {
		if (!shm_is_valid_instance(v))
			BADVAL(ps, sec, k, v,
			       "an instance name is 1..47 of [A-Za-z0-9_.-], "
			       "not starting with '.'");
		snprintf(c->instance, sizeof(c->instance), "%s", v);
	} else if (!strcmp(k, "workers")) {
		if (parse_u32(ps, v, SUP_MAX_WORKERS, &c->workers))
			BADVAL(ps, sec, k, v, "a worker count 0..1024 (0: one per core)");
	} else if (!strcmp(k, "cpus")) {
		uint64_t set[SUP_MAX_CPUS / 64];

		if (strlen(v) >= sizeof(c->cpus) || sup_cpulist_parse(v, set))
			BADVAL(ps, sec, k, v, "a cpu list such as 0-3,6");
		snprintf(c->cpus, sizeof(c->cpus), "%s", v);
		c->cpus_line = ps->line;
	} else if (!strcmp(k, "placement")) {
		if (!strcmp(v, "spread"))
			c->placement = SUP_PLACE_SPREAD;
		else if (!strcmp(v, "none"))
			c->placement = SUP_PLACE_NONE;
		else
			BADVAL(ps, sec, k, v, "spread or none");
	} else if (!strcmp(k, "stop_timeout")) {
		if (parse_ms(ps, v, &c->stop_timeout_ms) || !c->stop_timeout_ms)
			BADVAL(ps, sec, k, v, "a positive time in seconds (or NNNms)");
	} else if (!strcmp(k, "ready_timeout")) {
		if (parse_ms(ps, v, &c->ready_timeout_ms) || !c->ready_timeout_ms)
			BADVAL(ps, sec, k, v, "a positive time in seconds (or NNNms)");
	} else if (!strcmp(k, "spare")) {
		if (parse_bool(v, &c->spare))
			BADVAL(ps, sec, k, v, "true or false");
	} else if (!strcmp(k, "status_interval")) {
		if (parse_ms(ps, v, &c->status_interval_ms))
			BADVAL(ps, sec, k, v, "a time in seconds (or NNNms), 0 for none");
	} else {
		FAIL(ps,
		     "[%s]: unknown key '%s' (name, workers, cpus, placement, stop_timeout, "
		     "ready_timeout, status_interval, spare)",
		     sec, k);
	}
	return 1;
}

static int on_restart(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_policy *p = &ps->c->policy;

	if (!strcmp(k, "strategy")) {
		if (!strcmp(v, "one_for_one"))
			p->strategy = SUP_ONE_FOR_ONE;
		else if (!strcmp(v, "one_for_all"))
			p->strategy = SUP_ONE_FOR_ALL;
		else if (!strcmp(v, "rest_for_one"))
			p->strategy = SUP_REST_FOR_ONE;
		else
			BADVAL(ps, sec, k, v, "one_for_one, one_for_all or rest_for_one");
	} else if (!strcmp(k, "intensity")) {
		if (parse_u32(ps, v, 1000000, &p->intensity))
			BADVAL(ps, sec, k, v, "a number of restarts 0..1000000");
	} else if (!strcmp(k, "period")) {
		if (parse_ms(ps, v, &p->period_ms) || !p->period_ms)
			BADVAL(ps, sec, k, v, "a positive time in seconds (or NNNms)");
	} else if (!strcmp(k, "backoff_initial")) {
		if (parse_ms(ps, v, &p->backoff_initial_ms))
			BADVAL(ps, sec, k, v, "a time in seconds (or NNNms)");
	} else if (!strcmp(k, "backoff_max")) {
		if (parse_ms(ps, v, &p->backoff_max_ms))
			BADVAL(ps, sec, k, v, "a time in seconds (or NNNms)");
	} else if (!strcmp(k, "backoff_factor")) {
		if (parse_u32(ps, v, 100, &p->backoff_factor) || !p->backoff_factor)
			BADVAL(ps, sec, k, v, "an integer 1..100");
	} else if (!strcmp(k, "backoff_first")) {
		if (parse_bool(v, &p->backoff_first))
			BADVAL(ps, sec, k, v, "true or false");
	} else if (!strcmp(k, "hang_timeout")) {
		if (parse_ms(ps, v, &p->hang_ms) || (p->hang_ms && p->hang_ms < 200))
			BADVAL(ps, sec, k, v, "0 (off) or a time of at least 200ms");
	} else {
		FAIL(ps,
		     "[%s]: unknown key '%s' (strategy, intensity, period, backoff_initial, "
		     "backoff_max, backoff_factor, backoff_first, hang_timeout)",
		     sec, k);
	}
	return 1;
}

static int on_memory(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_config *c = ps->c;

	if (!strcmp(k, "cap")) {
		if (sup_size_parse(v, &c->mem_cap))
			BADVAL(ps, sec, k, v, "a size in bytes, K, M or G (0: no cap)");
	} else if (!strcmp(k, "cgroup")) {
		if (v[0] != '/' || strlen(v) >= sizeof(c->cgroup) - 32)
			BADVAL(ps, sec, k, v,
			       "an absolute path of a delegated cgroup v2 directory");
		snprintf(c->cgroup, sizeof(c->cgroup), "%s", v);
		c->cgroup_line = ps->line;
	} else {
		FAIL(ps, "[%s]: unknown key '%s' (cap, cgroup)", sec, k);
	}
	return 1;
}

static int on_segment(struct parse *ps, const char *sec, const char *k, const char *v)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{"max_procs", offsetof(struct shm_cfg, max_procs)},
		{"max_agents", offsetof(struct shm_cfg, max_agents)},
		{"registry_capacity", offsetof(struct shm_cfg, reg_capacity)},
		{"max_groups", offsetof(struct shm_cfg, max_groups)},
		{"group_members", offsetof(struct shm_cfg, group_members)},
		{"mailbox_cells", offsetof(struct shm_cfg, mbox_cells)},
		{"max_message", offsetof(struct shm_cfg, max_msg)},
		{"checkpoint_bytes", offsetof(struct shm_cfg, ckpt_bytes)},
		{"max_monitors", offsetof(struct shm_cfg, max_monitors)},
		{"client_inboxes", offsetof(struct shm_cfg, max_inboxes)},
		{"pools", offsetof(struct shm_cfg, max_pools)},
		{"pool_members", offsetof(struct shm_cfg, pool_members)},
		{"rounds", offsetof(struct shm_cfg, max_rounds)},
		{"subscriptions", offsetof(struct shm_cfg, max_subs)},
	};
	uint32_t val;

	if (!strcmp(k, "mode")) {
		size_t n = strspn(v, "01234567");

		/* octal digits only: strtoul also took "-0" and blanks */
		if (!(n == 3 || (n == 4 && v[0] == '0')) || v[n])
			BADVAL(ps, sec, k, v, "an octal file mode such as 0600");
		ps->c->shm.mode = (uint32_t)strtoul(v, NULL, 8);
		ps->c->mode_line = ps->line;
		return 1;
	}
	if (!strcmp(k, "shared_with_group")) {
		if (parse_bool(v, &ps->c->shared_with_group))
			BADVAL(ps, sec, k, v, "yes or no");
		return 1;
	}
	if (!strcmp(k, "variables")) {
		if (parse_u32(ps, v, SHM_VAR_MAX, &ps->c->shm.max_vars))
			BADVAL(ps, sec, k, v, "a count 0..1048576 (0: no variables)");
		return 1;
	}
	if (!strcmp(k, "variable_bytes")) {
		if (parse_u32(ps, v, SHM_VAR_BYTES_MAX, &val) || val < 8 || val % 8)
			BADVAL(ps, sec, k, v,
			       "a blob size in bytes, a multiple of 8 from 8 to 4096 (such as "
			       "256)");
		ps->c->shm.var_bytes = val;
		return 1;
	}
	if (!strcmp(k, "events")) {
		/* checked here, not only by shm_cfg_check(), so the error names its line */
		if (parse_u32(ps, v, SHM_EVENT_MAX, &val) ||
		    (val && (val < SHM_EVENT_MIN || (val & (val - 1)))))
			BADVAL(ps, sec, k, v,
			       "0 (no event ring) or a power of two from 16 to 1048576 (such as "
			       "4096)");
		ps->c->shm.events = val;
		return 1;
	}
	if (!strcmp(k, "max_size")) {
		if (sup_size_parse(v, &ps->c->seg_max) || !ps->c->seg_max)
			BADVAL(ps, sec, k, v, "a positive size in bytes, K, M or G");
		ps->c->seg_max_line = ps->line;
		return 1;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(k, keys[i].key))
			continue;
		if (parse_u32(ps, v, UINT32_MAX, &val))
			BADVAL(ps, sec, k, v, "a non-negative integer");
		memcpy((char *)&ps->c->shm + keys[i].off, &val, sizeof(val));
		if (!strcmp(k, "max_procs"))
			ps->c->max_procs_line = ps->line;
		else if (!strcmp(k, "max_agents"))
			ps->c->max_agents_line = ps->line;
		else if (!strcmp(k, "registry_capacity"))
			ps->c->reg_capacity_line = ps->line;
		return 1;
	}
	FAIL(ps,
	     "[%s]: unknown key '%s' (max_procs, max_agents, registry_capacity, max_groups, "
	     "group_members, mailbox_cells, max_message, checkpoint_bytes, max_monitors, "
	     "client_inboxes, variables, variable_bytes, pools, pool_members, rounds, "
	     "subscriptions, events, mode, shared_with_group, max_size)",
	     sec, k);
}

static int on_types(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_config *c = ps->c;

	if (strcmp(k, "load"))
		FAIL(ps, "[%s]: unknown key '%s' (load)", sec, k);
	if (!*v || strlen(v) >= SUP_PATH_MAX)
		BADVAL(ps, sec, k, v, "the path of an agent type library (.so)");
	if (c->nlibs == SUP_MAX_LIBS)
		FAIL(ps, "[%s]: more than %u libraries", sec, SUP_MAX_LIBS);
	snprintf(c->libs[c->nlibs], SUP_PATH_MAX, "%s", v);
	c->lib_lines[c->nlibs++] = ps->line;
	return 1;
}

/*
 * [slo]: the budgets file the supervisor checks the live histograms against, and how often.
 * The file itself is read by sup_config_check(), so --check and the start refuse a bad one.
 */
static int on_slo(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_config *c = ps->c;

	if (!strcmp(k, "budgets")) {
		if (!*v || strlen(v) >= sizeof(c->slo_budgets))
			BADVAL(ps, sec, k, v, "the path of a budgets file (docs/budgets.md)");
		snprintf(c->slo_budgets, sizeof(c->slo_budgets), "%s", v);
		c->slo_budgets_line = ps->line;
	} else if (!strcmp(k, "interval")) {
		if (parse_ms(ps, v, &c->slo_interval_ms))
			BADVAL(ps, sec, k, v, "a time in seconds (or NNNms), e.g. 10 or 500ms");
		if (c->slo_interval_ms < SUP_SLO_MIN_INTERVAL_MS)
			BADVAL(ps, sec, k, v,
			       "below 100ms, the supervisor's tick the checks run on; write "
			       "100ms or more");
	} else {
		FAIL(ps, "[%s]: unknown key '%s' (budgets, interval)", sec, k);
	}
	return 1;
}

static int on_agent(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_agent_spec *a = ps->agent;

	if (!strcmp(k, "type")) {
		if (!*v || strlen(v) >= sizeof(a->type))
			BADVAL(ps, sec, k, v, "an agent type name of 1..31 bytes");
		snprintf(a->type, sizeof(a->type), "%s", v);
	} else if (!strcmp(k, "count")) {
		if (parse_u32(ps, v, 1u << 20, &a->count) || !a->count)
			BADVAL(ps, sec, k, v, "a count 1..1048576");
	} else if (!strcmp(k, "name")) {
		if (!*v || strlen(v) >= sizeof(a->pattern) || pattern_check(v) < 0)
			BADVAL(ps, sec, k, v,
			       "a name, or a pattern with one %u such as "
			       "'tuner-%03u'");
		snprintf(a->pattern, sizeof(a->pattern), "%s", v);
	} else if (!strcmp(k, "worker")) {
		uint32_t w;

		a->worker_line = ps->line;
		if (!strcmp(v, "any"))
			a->worker = -1;
		else if (!parse_u32(ps, v, SUP_MAX_WORKERS - 1, &w))
			a->worker = (int32_t)w;
		else
			BADVAL(ps, sec, k, v, "a worker index or 'any'");
	} else {
		FAIL(ps, "[%s]: unknown key '%s' (type, count, name, worker)", sec, k);
	}
	return 1;
}

/* [dist]: the Erlang distribution gateway; checked against the machine in check_dist(). */
static int on_dist(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct dist_conf *d = &ps->c->dist;
	struct in_addr a;

	if (!d->line)
		d->line = ps->line;
	if (!strcmp(k, "node")) {
		if (!dist_is_valid_node(v, ps->why, sizeof(ps->why)))
			BADVAL(ps, sec, k, v, "a node name");
		snprintf(d->node, sizeof(d->node), "%s", v);
		d->node_line = ps->line;
	} else if (!strcmp(k, "cookie_file")) {
		if (!*v || strlen(v) >= sizeof(d->cookie_file))
			BADVAL(ps, sec, k, v, "a file's path of 1..255 bytes");
		snprintf(d->cookie_file, sizeof(d->cookie_file), "%s", v);
		d->cookie_line = ps->line;
	} else if (!strcmp(k, "listen")) {
		if (strlen(v) >= sizeof(d->listen) || inet_pton(AF_INET, v, &a) != 1)
			BADVAL(ps, sec, k, v,
			       "an IPv4 address to listen on, such as 127.0.0.1 (the default) or "
			       "0.0.0.0 for every interface");
		snprintf(d->listen, sizeof(d->listen), "%s", v);
	} else if (!strcmp(k, "port")) {
		if (parse_u32(ps, v, 65535, &d->port))
			BADVAL(ps, sec, k, v, "a port 0..65535 (0: any free port)");
	} else if (!strcmp(k, "net_ticktime")) {
		if (parse_u32(ps, v, 3600, &d->ticktime_s) || d->ticktime_s < 2)
			BADVAL(ps, sec, k, v,
			       "seconds 2..3600, as the BEAM's net_ticktime (default 60): a "
			       "connection silent that long is closed");
	} else if (!strcmp(k, "monitors")) {
		if (parse_bool(v, &d->monitors))
			BADVAL(ps, sec, k, v,
			       "yes or no: whether Erlang nodes may monitor agents (default yes)");
	} else {
		FAIL(ps,
		     "[%s]: unknown key '%s' (node, cookie_file, listen, port, net_ticktime, "
		     "monitors)",
		     sec, k);
	}
	return 1;
}

/* Find or open the spec for section "pool NAME". NULL (and an error) if it cannot be. */
static struct sup_pool_spec *pool_section(struct parse *ps, const char *sec)
{
	struct sup_config *c = ps->c;
	const char *name = sec + 4;
	struct sup_pool_spec *p;

	while (*name == ' ')
		name++;
	for (uint32_t i = 0; i < c->npools; i++)
		if (!strcmp(c->pools[i].name, name))
			return &c->pools[i];
	if (!*name || strlen(name) >= sizeof(p->name))
		FAIL(ps, "[%s]: a pool section is [pool NAME] with a name of 1..47 bytes", sec);
	if (c->npools == SUP_MAX_POOL_SPECS)
		FAIL(ps, "[%s]: more than %u pool sections", sec, SUP_MAX_POOL_SPECS);
	p = &c->pools[c->npools++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->size = 1;
	p->line = ps->line;
	return p;
}

static int on_pool(struct parse *ps, const char *sec, const char *k, const char *v)
{
	struct sup_pool_spec *p = pool_section(ps, sec);

	if (!p)
		return 0;
	if (!strcmp(k, "type")) {
		if (!*v || strlen(v) >= sizeof(p->type))
			BADVAL(ps, sec, k, v, "an agent type name of 1..31 bytes");
		snprintf(p->type, sizeof(p->type), "%s", v);
	} else if (!strcmp(k, "size")) {
		if (parse_u32(ps, v, 1u << 16, &p->size) || !p->size)
			BADVAL(ps, sec, k, v, "a count 1..65536");
	} else if (!strcmp(k, "overflow")) {
		if (parse_u32(ps, v, 1u << 16, &p->overflow))
			BADVAL(ps, sec, k, v, "a count 0..65536");
	} else {
		FAIL(ps, "[%s]: unknown key '%s' (type, size, overflow)", sec, k);
	}
	return 1;
}

/* Find or open the spec for section "agent NAME". NULL (and an error) if it cannot be. */
static struct sup_agent_spec *agent_section(struct parse *ps, const char *sec)
{
	struct sup_config *c = ps->c;
	const char *name = sec + 5;
	struct sup_agent_spec *a;

	while (*name == ' ')
		name++;
	for (uint32_t i = 0; i < c->nagents; i++)
		if (!strcmp(c->agents[i].section, name))
			return &c->agents[i];
	if (!*name || strlen(name) >= sizeof(a->section))
		FAIL(ps, "[%s]: an agent section is [agent NAME] with a name of 1..63 bytes", sec);
	if (c->nagents == SUP_MAX_AGENT_SPECS) {
		if (!ps->err_line) {
			ps->err_line = ps->line;
			snprintf(ps->err, sizeof(ps->err), "[%s]: more than %u agent sections", sec,
				 SUP_MAX_AGENT_SPECS);
		}
		return NULL;
	}
	a = &c->agents[c->nagents++];
	memset(a, 0, sizeof(*a));
	snprintf(a->section, sizeof(a->section), "%s", name);
	snprintf(a->pattern, sizeof(a->pattern), "%s", name);
	a->count = 1;
	a->worker = -1;
	a->line = ps->line;
	return a;
}

/*
 * A key set twice in one section: the second used to win silently. [types] load is a list
 * and repeats. inih (built with multi-line entries, as Debian's is) hands an indented line
 * over as a second value of the key before it: say so, as that is what the user sees.
 */
static bool is_key_repeated(struct parse *ps, const char *sec, const char *k)
{
	if (!strcmp(sec, "types") && !strcmp(k, "load"))
		return false;
	for (uint32_t i = 0; i < ps->nkeys; i++) {
		if (strcmp(ps->keys[i].key, k))
			continue;
		if (!ps->err_line) {
			ps->err_line = ps->line;
			if (ps->indented)
				snprintf(ps->err, sizeof(ps->err),
					 "[%s]: an indented line continues the value of '%s' "
					 "(line %d); remove the indentation",
					 sec, k, ps->keys[i].line);
			else
				snprintf(ps->err, sizeof(ps->err),
					 "[%s]: '%s' is set again (first at line %d); keep one",
					 sec, k, ps->keys[i].line);
		}
		return true;
	}
	/* a longer key is unknown in every section, and is refused as that */
	if (ps->nkeys < MAX_SEC_KEYS && strlen(k) < sizeof(ps->keys[0].key)) {
		snprintf(ps->keys[ps->nkeys].key, sizeof(ps->keys[0].key), "%s", k);
		ps->keys[ps->nkeys++].line = ps->line;
	}
	return false;
}

static int on_kv(void *user, const char *sec, const char *k, const char *v)
{
	struct parse *ps = user;

	ps->why[0] = 0;
	if (is_key_repeated(ps, sec, k))
		return 0;
	if (!strcmp(sec, "instance"))
		return on_instance(ps, sec, k, v);
	if (!strcmp(sec, "restart"))
		return on_restart(ps, sec, k, v);
	if (!strcmp(sec, "memory"))
		return on_memory(ps, sec, k, v);
	if (!strcmp(sec, "segment"))
		return on_segment(ps, sec, k, v);
	if (!strcmp(sec, "types"))
		return on_types(ps, sec, k, v);
	if (!strcmp(sec, "slo"))
		return on_slo(ps, sec, k, v);
	if (!strncmp(sec, "agent", 5) && (sec[5] == ' ' || sec[5] == 0)) {
		ps->agent = agent_section(ps, sec);
		if (!ps->agent)
			return 0;
		return on_agent(ps, sec, k, v);
	}
	if (!strncmp(sec, "pool", 4) && (sec[4] == ' ' || sec[4] == 0))
		return on_pool(ps, sec, k, v);
	if (!strcmp(sec, "dist"))
		return on_dist(ps, sec, k, v);
	if (!*sec)
		FAIL(ps,
		     "'%s' outside a section: put it under [instance], [restart], [memory], "
		     "[segment], [types], [slo], [agent NAME], [pool NAME] or [dist]",
		     k);
	FAIL(ps,
	     "unknown section [%s] (instance, restart, memory, segment, types, slo, agent NAME, "
	     "pool NAME, dist)",
	     sec);
}

static void fail_at(struct parse *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first error, at a line the reader names (FAIL takes the current one). */
static void fail_at(struct parse *ps, int line, const char *fmt, ...)
{
	va_list ap;

	if (ps->err_line)
		return;
	ps->err_line = line;
	va_start(ap, fmt);
	vsnprintf(ps->err, sizeof(ps->err), fmt, ap);
	va_end(ap);
}

/*
 * A section header's name as inih reads it ("[ name ]" keeps its blanks; a ';' after a blank
 * starts a comment), with the blanks after "agent" folded to one, since agent_section()
 * skips them: "[agent a]" and "[agent  a]" are one section. False if the line is no header.
 */
static bool header_name(const char *line, char *out, size_t cap)
{
	const char *p = line, *e;
	size_t n;

	while (isspace((unsigned char)*p))
		p++;
	if (*p++ != '[')
		return false;
	for (e = p; *e && *e != ']'; e++)
		if (*e == ';' && e > p && isspace((unsigned char)e[-1]))
			return false;
	if (*e != ']')
		return false;
	n = (size_t)(e - p);
	if (n > 5 && !strncmp(p, "agent ", 6)) {
		const char *q = p + 5;

		while (*q == ' ')
			q++;
		snprintf(out, cap, "agent %.*s", (int)(e - q), q);
	} else {
		snprintf(out, cap, "%.*s", (int)n, p);
	}
	return true;
}

/* A section may appear once: two [instance] sections used to merge, the last key winning. */
static bool is_section_repeated(struct parse *ps, const char *line)
{
	char name[sizeof(ps->secs[0].name)];

	if (!header_name(line, name, sizeof(name)))
		return false;
	ps->nkeys = 0;
	for (uint32_t i = 0; i < ps->nsecs; i++) {
		if (strcmp(ps->secs[i].name, name))
			continue;
		fail_at(ps, ps->line,
			"[%s] appears again (first at line %d): a section may appear once; "
			"merge them",
			name, ps->secs[i].line);
		return true;
	}
	if (ps->nsecs == MAX_SECTIONS) {
		fail_at(ps, ps->line, "more than %u sections", MAX_SECTIONS);
		return true;
	}
	snprintf(ps->secs[ps->nsecs].name, sizeof(ps->secs[0].name), "%s", name);
	ps->secs[ps->nsecs++].line = ps->line;
	return false;
}

/*
 * inih reads one line per call: counting them gives the handler its line number. inih gives
 * a buffer of num bytes (INI_MAX_LINE, 200 as Debian builds it) and parses what does not fit
 * as a line of its own: a long comment's tail could set a key, and every later line number
 * was off. Such a line is refused here, with its number, and parsing stops (NULL reads as
 * the end). Refusing, rather than moving to a parser without the limit: no key of a shoal
 * config needs that much but a [types] load path of more than about 190 bytes (a symlink
 * shortens it), and this keeps the parser the distribution ships, and its syntax.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	size_t n, max = (size_t)num - 2; /* a line's bytes without its '\n' */

	if (ps->file) {
		if (!fgets(str, num, ps->file))
			return NULL;
		n = strlen(str);
		if (n && str[n - 1] == '\n')
			n--;
	} else {
		const char *nl;

		if (!*ps->text)
			return NULL;
		nl = strchr(ps->text, '\n');
		n = nl ? (size_t)(nl - ps->text) : strlen(ps->text);
		if (n <= max) {
			memcpy(str, ps->text, n + (nl ? 1 : 0));
			str[n + (nl ? 1 : 0)] = 0;
			ps->text += n + (nl ? 1 : 0);
		}
	}
	/* count as inih does (one line per call), so its error line and ours agree */
	ps->line++;
	if (n > max) {
		fail_at(ps, ps->line,
			"the line is longer than %zu bytes, the most the parser reads; shorten it "
			"(a long comment: split it over several lines)",
			max);
		return NULL;
	}
	ps->indented = *str == ' ' || *str == '\t';
	/* after a key, inih reads an indented line as that key's continuation, even "  [x]" */
	if (!(ps->indented && ps->nkeys) && is_section_repeated(ps, str))
		return NULL;
	return str;
}

/* "file:line", or "file" when line is 0 (a default, or not from the file). */
static const char *at(char *buf, size_t cap, const char *name, int line)
{
	if (line)
		snprintf(buf, cap, "%s:%d", name, line);
	else
		snprintf(buf, cap, "%s", name);
	return buf;
}

/*
 * Checks that need the whole file, and nothing of the machine. After parsing, and again in
 * sup_config_check(), as the command line may have changed the config since. `name` is the
 * file name for messages.
 */
static int check_whole(const struct sup_config *c, const char *name, char *err, size_t errlen)
{
	uint64_t total = 0;
	char why[200], where[SUP_PATH_MAX + 16];

	for (uint32_t i = 0; i < c->npools; i++) {
		const struct sup_pool_spec *p = &c->pools[i];

		if (!p->type[0]) {
			snprintf(err, errlen, "%s:%d: [pool %s]: no 'type' key", name, p->line,
				 p->name);
			return -EINVAL;
		}
		if ((uint64_t)p->size + p->overflow > c->shm.pool_members) {
			snprintf(err, errlen,
				 "%s:%d: [pool %s]: size %u + overflow %u exceed [segment] "
				 "pool_members (%u); raise pool_members",
				 name, p->line, p->name, p->size, p->overflow, c->shm.pool_members);
			return -EINVAL;
		}
	}
	if (c->npools > c->shm.max_pools) {
		snprintf(err, errlen, "%s: %u [pool] sections but [segment] pools is %u; raise it",
			 name, c->npools, c->shm.max_pools);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < c->nagents; i++) {
		const struct sup_agent_spec *a = &c->agents[i];
		char aname[80];
		int conv = pattern_check(a->pattern);

		if (!a->type[0]) {
			snprintf(err, errlen, "%s:%d: [agent %s]: no 'type' key", name, a->line,
				 a->section);
			return -EINVAL;
		}
		if (conv == 0 && a->count > 1) {
			snprintf(err, errlen,
				 "%s:%d: [agent %s]: count %u needs a name pattern with %%u "
				 "(e.g. '%s-%%03u'), or the names would collide",
				 name, a->line, a->section, a->count, a->section);
			return -EINVAL;
		}
		if (sup_agent_name(a, a->count - 1, aname, sizeof(aname))) {
			snprintf(err, errlen, "%s:%d: [agent %s]: names from '%s' exceed 63 bytes",
				 name, a->line, a->section, a->pattern);
			return -EINVAL;
		}
		if (c->workers && a->worker >= (int32_t)c->workers) {
			snprintf(err, errlen,
				 "%s:%d: [agent %s]: worker %d, but there are %u workers "
				 "(0..%u)",
				 name, a->worker_line, a->section, a->worker, c->workers,
				 c->workers - 1);
			return -EINVAL;
		}
		total += a->count;
	}
	/* the supervisor's control inbox is an agent slot too (sup_ctl_open()) */
	if (total + 1 > c->shm.max_agents) {
		snprintf(
			err, errlen,
			"%s: [segment] max_agents is %u, but %llu agents are configured and the "
			"supervisor's control inbox takes one more slot; raise it to at least %llu",
			at(where, sizeof(where), name, c->max_agents_line), c->shm.max_agents,
			(unsigned long long)total, (unsigned long long)total + 1);
		return -EINVAL;
	}
	/* each agent registers its name at start; the registry takes no more than its capacity */
	if (total > c->shm.reg_capacity) {
		snprintf(
			err, errlen,
			"%s: [segment] registry_capacity = %u: the %llu agents configured register "
			"a name each; raise it to a power of two of at least %llu",
			at(where, sizeof(where), name, c->reg_capacity_line), c->shm.reg_capacity,
			(unsigned long long)total, (unsigned long long)total);
		return -EINVAL;
	}
	if (c->policy.backoff_max_ms < c->policy.backoff_initial_ms) {
		snprintf(err, errlen,
			 "%s: [restart] backoff_max (%u ms) is below backoff_initial "
			 "(%u ms)",
			 name, c->policy.backoff_max_ms, c->policy.backoff_initial_ms);
		return -EINVAL;
	}
	/*
	 * The segment holds the process table and every mailbox: whoever may write it may
	 * forge messages and claim or free any slot. Other users never; the group only when
	 * the file says so in so many words.
	 */
	if (c->shm.mode & 0007) {
		snprintf(err, errlen,
			 "%s:%d: [segment] mode = '%04o': other users could rewrite the process "
			 "table; use 0600 (or 0660 with shared_with_group = yes)",
			 name, c->mode_line, c->shm.mode);
		return -EINVAL;
	}
	if (c->shm.mode & 0070 && !c->shared_with_group) {
		snprintf(err, errlen,
			 "%s:%d: [segment] mode = '%04o': group members could rewrite the process "
			 "table; add shared_with_group = yes to [segment] if that is meant, or use "
			 "0600",
			 name, c->mode_line, c->shm.mode);
		return -EINVAL;
	}
	if ((c->shm.mode & 0600) != 0600) {
		snprintf(err, errlen,
			 "%s:%d: [segment] mode = '%04o': the owner needs read and write (0600) "
			 "for its own tools to attach",
			 name, c->mode_line, c->shm.mode);
		return -EINVAL;
	}
	if (shm_cfg_check(&c->shm, why, sizeof(why))) {
		snprintf(err, errlen, "%s: [segment] %s", name, why);
		return -EINVAL;
	}
	return 0;
}

static int parse_run(struct parse *ps, char *err, size_t errlen)
{
	int r = ini_parse_stream(read_line, ps, on_kv, ps);

	if (r < 0) {
		snprintf(err, errlen, "%s: cannot read it", ps->name);
		return -EIO;
	}
	if (r > 0) {
		if (ps->err_line == r)
			snprintf(err, errlen, "%s:%d: %s", ps->name, r, ps->err);
		else
			snprintf(err, errlen,
				 "%s:%d: syntax error: expected '[section]', "
				 "'key = value' or a ';' comment",
				 ps->name, r);
		return -EINVAL;
	}
	if (ps->err_line) { /* inih stopped counting: still report ours */
		snprintf(err, errlen, "%s:%d: %s", ps->name, ps->err_line, ps->err);
		return -EINVAL;
	}
	return check_whole(ps->c, ps->name, err, errlen);
}

/* See sup.h. Callers: any thread. */
int sup_config_parse_string(struct sup_config *c, const char *name, const char *text, char *err,
			    size_t errlen)
{
	struct parse ps = {.c = c, .name = name, .text = text};

	snprintf(c->source, sizeof(c->source), "%s", name);
	snprintf(c->text, sizeof(c->text), "%s", text);
	return parse_run(&ps, err, errlen);
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/* See sup.h. Callers: any thread. */
int sup_config_load(struct sup_config *c, const char *path, char *err, size_t errlen)
{
	struct parse ps = {.c = c};
	struct stat st;
	size_t n;
	int fd, r;

	if (!path)
		return sup_config_parse_string(c, "<default>", sup_default_config, err, errlen);
	ps.name = path;
	/*
	 * Non-blocking, so a FIFO with no writer does not hang `shoal run --check`; then only a
	 * regular file: a directory read as an empty config, and /dev/zero or a FIFO never
	 * ends.
	 */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: %s, not a config file: give the path of a regular file",
			 path, file_kind(st.st_mode));
		close(fd);
		return -EINVAL;
	}
	ps.file = fdopen(fd, "r");
	if (!ps.file) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	snprintf(c->source, sizeof(c->source), "%s", path);
	n = fread(c->text, 1, sizeof(c->text) - 1, ps.file);
	c->text[n] = 0;
	rewind(ps.file);
	r = parse_run(&ps, err, errlen);
	fclose(ps.file);
	return r;
}

/* See sup.h. Callers: any thread. */
const char *sup_size_format(uint64_t b, char *buf, size_t cap)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)b;
	unsigned u = 0;

	if (b < 1024) {
		snprintf(buf, cap, "%llu bytes", (unsigned long long)b);
		return buf;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, "%.1f %s", v, unit[u]);
	return buf;
}

/*
 * Declare each [types] library (wrk_types_declare()): it is loaded in a child process to
 * learn its type names, never here, so neither `--check` nor the supervisor runs a
 * library's code; the workers load it themselves. Then every [agent] type must be known.
 */
static_assert(SUP_MAX_LIBS <= WRK_MAX_LIBS, "every [types] line can be declared");

static int check_types(const struct sup_config *c, char *err, size_t errlen)
{
	char why[256];

	/* the libraries of this config only (a process may check several configs) */
	wrk_types_forget();
	for (uint32_t i = 0; i < c->nlibs; i++) {
		int r = wrk_types_declare(c->libs[i], why, sizeof(why));

		if (r == -ELIBBAD || r == -ETIMEDOUT || r == -EEXIST || r == -ENAMETOOLONG) {
			snprintf(err, errlen, "%s:%d: [types] load = %s: %s", c->source,
				 c->lib_lines[i], c->libs[i], why);
			return -EINVAL;
		}
		if (r)
			return r; /* no fork, no pipe: a system failure */
	}
	for (uint32_t i = 0; i < c->npools; i++) {
		const struct sup_pool_spec *p = &c->pools[i];

		if (wrk_type_is_known(p->type))
			continue;
		snprintf(err, errlen, "%s:%d: [pool %s]: unknown agent type '%s'", c->source,
			 p->line, p->name, p->type);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < c->nagents; i++) {
		const struct sup_agent_spec *a = &c->agents[i];
		size_t n;

		if (wrk_type_is_known(a->type))
			continue;
		n = (size_t)snprintf(err, errlen,
				     "%s:%d: [agent %s]: unknown agent type '%s' (built in:",
				     c->source, a->line, a->section, a->type);
		for (const char *const *t = wrk_builtin_type_names; *t && n < errlen; t++)
			n += (size_t)snprintf(err + n, errlen - n, " %s", *t);
		if (n < errlen)
			snprintf(err + n, errlen - n, "; or load a library under [types])");
		return -EINVAL;
	}
	return 0;
}

/*
 * The cgroup must be a directory in a cgroup v2 filesystem: elsewhere (cgroup = /tmp/x) the
 * workers' memory.max could not be written, and they ran uncapped with a warning per launch.
 */
/*
 * The budgets file of [slo] budgets (or --budgets) parses: every bad line as FILE:LINE, and
 * where the file was named. -EINVAL (a missing or unreadable file too: the config names it),
 * -ENOMEM.
 */
static int check_slo(const struct sup_config *c, char *err, size_t errlen)
{
	struct slo_budgets b = {0};
	char why[400] = "", where[SUP_PATH_MAX + 48];
	int r;

	if (!c->slo_budgets[0])
		return 0;
	r = slo_budgets_load(&b, c->slo_budgets, why, sizeof(why));
	slo_budgets_free(&b);
	if (!r)
		return 0;
	if (c->slo_budgets_line)
		snprintf(where, sizeof(where), "the [slo] budgets of %s:%d", c->source,
			 c->slo_budgets_line);
	else
		snprintf(where, sizeof(where), "--budgets");
	snprintf(err, errlen, "%s\n(%s; format in docs/budgets.md)", why, where);
	return r == -ENOMEM ? r : -EINVAL;
}

static int check_cgroup(const struct sup_config *c, char *err, size_t errlen)
{
	char where[SUP_PATH_MAX + 16];
	struct statfs fs;
	struct stat st;

	if (!c->cgroup[0])
		return 0;
	at(where, sizeof(where), c->source, c->cgroup_line);
	if (statfs(c->cgroup, &fs) < 0 || stat(c->cgroup, &st) < 0) {
		snprintf(err, errlen,
			 "%s: [memory] cgroup = '%s': %s; give a delegated cgroup v2 directory",
			 where, c->cgroup, strerror(errno));
		return -EINVAL;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "%s: [memory] cgroup = '%s': not in a cgroup v2 filesystem (or not a "
			 "directory); give a delegated directory under the cgroup2 mount, usually "
			 "/sys/fs/cgroup",
			 where, c->cgroup);
		return -EINVAL;
	}
	return 0;
}

/*
 * The cpus exist, and the workers as sup_run() counts and places them (one per usable core
 * when workers is 0, over the NUMA nodes as place_workers() in sup_run.c does) fit max_procs and
 * every pinned agent's worker index. Writes the worker and node counts.
 */
static int check_workers(const struct sup_config *c, struct sup_config_facts *f, uint32_t *nnodes,
			 char *err, size_t errlen)
{
	uint64_t set[SUP_MAX_CPUS / 64];
	char where[SUP_PATH_MAX + 16], list[256];
	hwloc_topology_t topo = NULL;
	hwloc_const_bitmap_t have;
	struct sup_core *cores = NULL;
	struct sup_place *pl = NULL;
	int nc, r = -EINVAL;
	uint32_t n;

	*nnodes = 1;
	if (c->cpus[0] && sup_cpulist_parse(c->cpus, set)) {
		snprintf(err, errlen, "%s: cpus '%s': a cpu list such as 0-3,6", c->source,
			 c->cpus);
		return -EINVAL;
	}
	if (hwloc_topology_init(&topo) < 0) {
		topo = NULL; /* nothing to destroy */
		goto out_nomem;
	}
	if (hwloc_topology_load(topo) < 0) {
		snprintf(err, errlen, "%s: cannot read this machine's topology (hwloc)", c->source);
		r = -ENODEV;
		goto out_free;
	}
	/* hwloc leaves out the cpus this process may not use (cgroup cpuset) */
	have = hwloc_topology_get_topology_cpuset(topo);
	hwloc_bitmap_list_snprintf(list, sizeof(list), have);
	for (unsigned i = 0; c->cpus[0] && i < SUP_MAX_CPUS; i++) {
		if (!(set[i / 64] >> (i % 64) & 1) || hwloc_bitmap_isset(have, i))
			continue;
		if (c->cpus_line)
			snprintf(err, errlen,
				 "%s:%d: [instance] cpus = '%s': cpu %u does not exist here, or is "
				 "not allowed to this process (usable: %s)",
				 c->source, c->cpus_line, c->cpus, i, list);
		else
			snprintf(err, errlen,
				 "--cpus '%s': cpu %u does not exist here, or is not allowed to "
				 "this process (usable: %s)",
				 c->cpus, i, list);
		goto out_free;
	}
	cores = calloc(SUP_MAX_CPUS, sizeof(*cores));
	if (!cores)
		goto out_nomem;
	nc = sup_topo_cores(topo, c->cpus[0] ? set : NULL, cores, SUP_MAX_CPUS);
	if (nc < 0) {
		snprintf(err, errlen, "%s: no usable core in cpus '%s' (usable: %s)", c->source,
			 c->cpus, list);
		goto out_free;
	}
	n = c->workers ? c->workers : (uint32_t)nc;
	f->workers = n;
	if (c->shm.max_procs < n + 2) {
		snprintf(err, errlen,
			 "%s: [segment] max_procs = %u: too small for %u workers%s, the supervisor "
			 "and a client; raise it to at least %u",
			 at(where, sizeof(where), c->source, c->max_procs_line), c->shm.max_procs,
			 n, c->workers ? "" : " (one per usable core)", n + 2);
		goto out_free;
	}
	for (uint32_t i = 0; i < c->nagents; i++) {
		const struct sup_agent_spec *a = &c->agents[i];

		if (a->worker < 0 || (uint32_t)a->worker < n)
			continue;
		snprintf(err, errlen,
			 "%s:%d: [agent %s]: worker %d, but there are %u workers (0..%u)",
			 c->source, a->worker_line, a->section, a->worker, n, n - 1);
		goto out_free;
	}
	pl = calloc(n, sizeof(*pl));
	if (!pl)
		goto out_nomem;
	if (sup_place_compute(cores, (uint32_t)nc, n, pl) < 0) {
		snprintf(err, errlen, "%s: no usable core to place the workers on", c->source);
		goto out_free;
	}
	for (uint32_t i = 0; i < n; i++)
		if (pl[i].node >= 0 && (uint32_t)pl[i].node + 1 > *nnodes)
			*nnodes = (uint32_t)pl[i].node + 1 > 64 ? 64 : (uint32_t)pl[i].node + 1;
	r = 0;
	goto out_free;

out_nomem:
	snprintf(err, errlen, "%s: out of memory", c->source);
	r = -ENOMEM;
out_free:
	free(pl);
	free(cores);
	if (topo)
		hwloc_topology_destroy(topo);
	return r;
}

/*
 * The segment's size against its ceiling and /dev/shm. The default ceiling is half the RAM:
 * the segment is created with MAP_POPULATE, so every byte of it is resident from the start
 * (tmpfs pages, swapped only under pressure), and past half the RAM the workers, their
 * agents and the rest of the machine are short of memory. A fixed figure would be too small
 * for large machines or meaningless for small ones. A larger segment is one key away.
 */
static int check_segment(const struct sup_config *c, struct sup_config_facts *f, uint32_t nnodes,
			 char *err, size_t errlen)
{
	struct shm_region regions[SHM_R_COUNT];
	struct shm_cfg cfg = c->shm;
	char why[200], a[32], b[32];
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	struct statvfs vfs;

	cfg.nworkers = f->workers;
	cfg.nnodes = nnodes;
	if (shm_cfg_check(&cfg, why, sizeof(why))) {
		snprintf(err, errlen, "%s: [segment] %s", c->source, why);
		return -EINVAL;
	}
	f->seg_size = shm_layout_compute(&cfg, regions);
	f->seg_max = c->seg_max;
	if (!f->seg_max && pages > 0 && psz > 0)
		f->seg_max = (uint64_t)pages * (uint64_t)psz / 2;
	if (f->seg_max && f->seg_size > f->seg_max) {
		if (c->seg_max_line)
			snprintf(err, errlen,
				 "%s:%d: [segment] max_size = %s: the segment would be %s, above "
				 "[segment] max_size; lower max_agents, mailbox_cells or the other "
				 "[segment] sizes, or raise max_size",
				 c->source, c->seg_max_line,
				 sup_size_format(f->seg_max, a, sizeof(a)),
				 sup_size_format(f->seg_size, b, sizeof(b)));
		else
			snprintf(
				err, errlen,
				"%s: the segment would be %s, above [segment] max_size (%s, half "
				"this machine's RAM); lower max_agents, mailbox_cells or the other "
				"[segment] sizes, or set max_size",
				c->source, sup_size_format(f->seg_size, b, sizeof(b)),
				sup_size_format(f->seg_max, a, sizeof(a)));
		return -EINVAL;
	}
	/* shm_open() objects live in /dev/shm: what is free there now is what it can take */
	if (statvfs("/dev/shm", &vfs) < 0)
		return 0;
	f->shm_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	{
		/* a segment of this instance there already (a dead supervisor's, which run
		 * adopts) holds the room it needs */
		char path[SHM_INSTANCE_MAX + 16];
		struct stat st;

		snprintf(path, sizeof(path), "/dev/shm/shoal.%s", c->instance);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			f->shm_free += (uint64_t)st.st_blocks * 512u;
	}
	if (f->seg_size > f->shm_free) {
		snprintf(err, errlen,
			 "%s: the segment would be %s, more than the %s free in /dev/shm; free "
			 "space there, or lower max_agents, mailbox_cells or the other [segment] "
			 "sizes",
			 c->source, sup_size_format(f->seg_size, b, sizeof(b)),
			 sup_size_format(f->shm_free, a, sizeof(a)));
		return -ENOSPC; /* bad config for --check; at start, a system failure */
	}
	return 0;
}

/*
 * [dist]: a node and a cookie file are both needed (there is no default cookie), the cookie
 * file must be one Erlang would accept, and this shoal must have been built with libei.
 */
static int check_dist(const struct sup_config *c, char *err, size_t errlen)
{
	const struct dist_conf *d = &c->dist;
	char cookie[DIST_COOKIE_MAX], why[384], where[SUP_PATH_MAX + 16];

	/* a [dist] section, or shoal run's --node / --cookie-file (line 0) */
	if (!d->line && !d->node[0] && !d->cookie_file[0])
		return 0;
	if (!dist_is_available()) {
		snprintf(err, errlen,
			 "%s: [dist]: this shoal was built without the Erlang distribution "
			 "(libei, from Debian's erlang-dev); install erlang-dev and rebuild "
			 "(meson -Ddist=enabled), or remove the [dist] section",
			 at(where, sizeof(where), c->source, d->line));
		return -EINVAL;
	}
	if (!d->node[0]) {
		snprintf(err, errlen,
			 "%s: [dist]: no 'node' key: name the node, e.g. node = shoal@127.0.0.1 "
			 "(or --node)",
			 at(where, sizeof(where), c->source, d->line));
		return -EINVAL;
	}
	if (!d->cookie_file[0]) {
		snprintf(err, errlen,
			 "%s: [dist]: no 'cookie_file' key: the cookie is required (there is "
			 "no default); write it to a file only you can read (chmod 600) and name "
			 "it here (or with --cookie-file)",
			 at(where, sizeof(where), c->source, d->line));
		return -EINVAL;
	}
	if (dist_cookie_read(d->cookie_file, cookie, sizeof(cookie), why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s%s",
			 at(where, sizeof(where), c->source, d->cookie_line),
			 d->cookie_line ? "[dist] " : "--cookie-file: ", why);
		return -EINVAL;
	}
	explicit_bzero(cookie, sizeof(cookie));
	return 0;
}

/* See sup.h. Callers: the tool's main thread. */
int sup_config_check(const struct sup_config *c, struct sup_config_facts *facts, char *err,
		     size_t errlen)
{
	struct sup_config_facts f = {0};
	uint32_t nnodes;
	int r;

	r = check_whole(c, c->source, err, errlen);
	if (!r)
		r = check_types(c, err, errlen);
	if (!r)
		r = check_slo(c, err, errlen);
	if (!r)
		r = check_cgroup(c, err, errlen);
	if (!r)
		r = check_dist(c, err, errlen);
	if (!r)
		r = check_workers(c, &f, &nnodes, err, errlen);
	if (!r)
		r = check_segment(c, &f, nnodes, err, errlen);
	if (facts)
		*facts = f;
	return r;
}

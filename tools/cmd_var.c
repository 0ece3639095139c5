/*
 * shoal var get NAME... | set NAME VALUE [NAME VALUE...] | list | watch NAME...: an instance's
 * coordination variables (shm/var.c), through a client slot like the other client commands;
 * watch through a client's inbox and subscriptions (shm/varsub.c), as shoal monitor.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm/registry.h"
#include "shm/var.h"
#include "shoal/client.h"
#include "tools/client.h"
#include "workers/wrk.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoal var get NAME... [--instance NAME]\n"
		"       shoal var set NAME VALUE [NAME VALUE...] [--timeout MS] [--instance NAME]\n"
		"       shoal var list [--instance NAME]\n"
		"       shoal var watch [NAME...] [--prefix P] [--count N] [--timeout MS]\n"
		"                       [--instance NAME]\n"
		"get prints variables (several: as of one instant). set changes them as one\n"
		"update: readers see all of the new values or none. A variable that does not\n"
		"exist yet is created by set, typed by its value: an integer is an int64, another\n"
		"number a double, anything else a blob of its bytes (created first, at version\n"
		"0, then set). An existing variable's value is read as its type. A writer holding\n"
		"one of them is waited on up to --timeout ms (default 5000). Options may come\n"
		"anywhere; values may be negative numbers; '--' ends the options.\n"
		"watch prints each change of the variables named, or of those whose name starts\n"
		"with P, as it comes (changes that come faster than it prints are coalesced: it\n"
		"prints the newest value). It exits 0 after N changes, 1 if none came within\n"
		"--timeout ms (default: wait for ever).\n");
}

static const char *type_name(uint32_t t)
{
	return t == SHM_VAR_INT ? "int" : t == SHM_VAR_DOUBLE ? "double" : "blob";
}

/* The options: --instance, --timeout, --help, '--'; everything else is positional. */
struct var_args {
	const char *instance;
	long timeout_ms;
	const char *pos[2 * SHM_VAR_MANY + 1];
	int npos;
};

static int parse_args(const char *cmd, int argc, char **argv, struct var_args *a)
{
	bool opts = true;

	a->instance = tool_default_instance();
	a->timeout_ms = 5000;
	a->npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *val = NULL;

		if (opts && !strcmp(s, "--")) {
			opts = false;
			continue;
		}
		if (opts && (!strcmp(s, "-h") || !strcmp(s, "--help"))) {
			usage(stdout);
			return EXIT_OK;
		}
		if (opts && (!strncmp(s, "--instance", 10) || !strncmp(s, "--timeout", 9))) {
			bool inst = s[2] == 'i';
			size_t k = inst ? 10 : 9;

			if (s[k] == '=')
				val = s + k + 1;
			else if (!s[k] && i + 1 < argc)
				val = argv[++i];
			else if (s[k]) {
				fprintf(stderr, "shoal var %s: unknown option '%s'\n", cmd, s);
				usage(stderr);
				return EXIT_USAGE;
			} else {
				fprintf(stderr, "shoal var %s: '%s' needs a value\n", cmd, s);
				return EXIT_USAGE;
			}
			if (inst)
				a->instance = val;
			else if (tool_parse_timeout("var", val, &a->timeout_ms))
				return EXIT_USAGE;
			continue;
		}
		/* a value such as -0.5 is a value, not an option */
		if (opts && s[0] == '-' && s[1] == '-') {
			fprintf(stderr, "shoal var %s: unknown option '%s'\n", cmd, s);
			usage(stderr);
			return EXIT_USAGE;
		}
		if (a->npos == (int)(sizeof(a->pos) / sizeof(a->pos[0]))) {
			fprintf(stderr, "shoal var %s: at most %u variables at once\n", cmd,
				SHM_VAR_MANY);
			return EXIT_USAGE;
		}
		a->pos[a->npos++] = s;
	}
	return -1;
}

static int check_name(const char *cmd, const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SHOAL_NAME_MAX) {
		fprintf(stderr, "shoal var %s: '%s' is not a valid name (1..%d bytes)\n", cmd, name,
			SHOAL_NAME_MAX);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* The variable named name, or a sentence (an agent's name, none) and EXIT_USAGE. */
static int lookup(struct tool_client *cl, const char *cmd, const char *name, uint64_t *id)
{
	shoal_handle_t h;

	if (check_name(cmd, name))
		return EXIT_USAGE;
	if (!shm_var_lookup(cl->seg, SHM_NS_DEFAULT, name, strlen(name), id))
		return EXIT_OK;
	if (!shm_reg_lookup(cl->seg, SHM_NS_DEFAULT, name, strlen(name), &h, NULL))
		fprintf(stderr, "shoal var %s: '%s' is an agent's name, not a variable\n", cmd,
			name);
	else
		fprintf(stderr, "shoal var %s: no variable named '%s' in instance '%s'\n", cmd,
			name, cl->seg->instance);
	return EXIT_USAGE;
}

/* A value for people: a number as such, a blob as a quoted string if printable, else hex. */
static void print_value(const struct shm_var_val *v)
{
	const uint8_t *b = v->buf;
	bool text = true;

	if (v->type == SHM_VAR_INT) {
		printf("%lld", (long long)v->num.i);
		return;
	}
	if (v->type == SHM_VAR_DOUBLE) {
		printf("%.17g", v->num.d);
		return;
	}
	for (uint32_t i = 0; i < v->len; i++)
		if (b[i] < 0x20 || b[i] > 0x7e || b[i] == '"' || b[i] == '\\')
			text = false;
	if (text) {
		printf("\"%.*s\"", (int)v->len, (const char *)b);
		return;
	}
	printf("0x");
	for (uint32_t i = 0; i < v->len; i++)
		printf("%02x", b[i]);
}

static void print_var(const struct tool_client *cl, const char *name, const struct shm_var_val *v)
{
	time_t secs = (time_t)(v->time_ns / 1000000000u);
	struct tm tm;
	char when[32] = "?";

	if (gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s = ", name);
	print_value(v);
	printf("  (%s, version %llu, written %s.%03uZ by ", type_name(v->type),
	       (unsigned long long)v->version, when, (unsigned)(v->time_ns / 1000000u % 1000u));
	if (v->writer && shoal_handle_slot(v->writer) < shm_hdr(cl->seg)->cfg.max_agents)
		printf("agent %u.%u, ", shoal_handle_slot(v->writer), shoal_handle_gen(v->writer));
	printf("process slot %u)\n", SHM_TAG_SLOT(v->wtag));
}

static int get(struct tool_client *cl, const struct var_args *a)
{
	static uint8_t bufs[SHM_VAR_MANY][SHM_VAR_BYTES_MAX];
	struct shm_var_val v[SHM_VAR_MANY];
	uint64_t ids[SHM_VAR_MANY];
	int n = a->npos, rc;

	if (n < 1 || n > (int)SHM_VAR_MANY) {
		fprintf(stderr, "shoal var get: 1..%u names\n", SHM_VAR_MANY);
		return EXIT_USAGE;
	}
	for (int i = 0; i < n; i++) {
		rc = lookup(cl, "get", a->pos[i], &ids[i]);
		if (rc)
			return rc;
		v[i] = (struct shm_var_val){.buf = bufs[i], .cap = sizeof(bufs[i])};
	}
	rc = n == 1 ? shm_var_read(cl->seg, ids[0], &v[0])
		    : shm_var_read_many(cl->seg, ids, (uint32_t)n, v);
	if (rc) {
		fprintf(stderr, "shoal var get: %s\n", shoal_strerror(rc));
		return tool_exit_for(rc);
	}
	for (int i = 0; i < n; i++)
		print_var(cl, a->pos[i], &v[i]);
	return EXIT_OK;
}

/* Does s read as an int64 (decimal, optional sign)? */
static bool parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!*s || strspn(s, "+-0123456789") != strlen(s))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return false;
	*out = v;
	return true;
}

/* Does s read as a finite double (digits, sign, point, exponent only: no "nan", "0x")? */
static bool parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "+-0123456789.eE") != strlen(s) || !strpbrk(s, "0123456789"))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v))
		return false;
	*out = v;
	return true;
}

/* The type a new variable takes from its first value. */
static uint32_t type_of(const char *s)
{
	int64_t i;
	double d;

	if (parse_int(s, &i))
		return SHM_VAR_INT;
	if (parse_double(s, &d))
		return SHM_VAR_DOUBLE;
	return SHM_VAR_BLOB;
}

/* A number's bytes, for an op's data. */
union num {
	int64_t i;
	double d;
};

/* The value words of one op: a number into *num, a blob as s itself. */
static int make_op(struct tool_client *cl, const char *name, const char *s, uint64_t id,
		   uint32_t type, union num *num, struct shm_var_op *op)
{
	uint32_t cap = shm_var_bytes(cl->seg);

	*op = (struct shm_var_op){.id = id, .type = type, .expect = SHM_VAR_ANY};
	if (type == SHM_VAR_INT && !parse_int(s, &num->i)) {
		fprintf(stderr, "shoal var set: '%s' is an int variable; '%s' is not an integer\n",
			name, s);
		return EXIT_USAGE;
	}
	if (type == SHM_VAR_DOUBLE && !parse_double(s, &num->d)) {
		fprintf(stderr, "shoal var set: '%s' is a double variable; '%s' is not a number\n",
			name, s);
		return EXIT_USAGE;
	}
	if (type == SHM_VAR_BLOB) {
		size_t len = strlen(s);

		if (len > cap) {
			fprintf(stderr,
				"shoal var set: '%s': a value of %zu bytes; variables of instance "
				"'%s' hold at most %u ([segment] variable_bytes)\n",
				name, len, cl->seg->instance, cap);
			return EXIT_USAGE;
		}
		op->len = (uint32_t)len;
		op->data = s;
		return EXIT_OK;
	}
	op->len = 8;
	op->data = num;
	return EXIT_OK;
}

static int set(struct tool_client *cl, const struct var_args *a)
{
	union num nums[SHM_VAR_MANY];
	struct shm_var_op ops[SHM_VAR_MANY];
	uint64_t ids[SHM_VAR_MANY], end;
	int n = a->npos / 2, rc, ex;
	uint32_t bad = 0;

	if (a->npos < 2 || a->npos % 2 || n > (int)SHM_VAR_MANY) {
		fprintf(stderr, "shoal var set: NAME VALUE pairs, 1..%u of them\n", SHM_VAR_MANY);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = 0; i < n; i++) {
		const char *name = a->pos[2 * i], *val = a->pos[2 * i + 1];
		uint32_t type;

		if (check_name("set", name))
			return EXIT_USAGE;
		for (int k = 0; k < i; k++)
			if (!strcmp(a->pos[2 * k], name)) {
				fprintf(stderr, "shoal var set: '%s' is named twice\n", name);
				return EXIT_USAGE;
			}
		rc = shm_var_lookup(cl->seg, SHM_NS_DEFAULT, name, strlen(name), &ids[i]);
		if (rc == -ENOENT) {
			/* first set: create it, typed by the value (a racing creator may win) */
			rc = shm_var_create(cl->seg, SHM_NS_DEFAULT, name, strlen(name),
					    type_of(val), &ids[i]);
			if (rc == -EEXIST && !ids[i]) {
				fprintf(stderr,
					"shoal var set: '%s' is an agent's name, not a variable\n",
					name);
				return EXIT_USAGE;
			}
			if (rc == -ENOSPC) {
				fprintf(stderr,
					"shoal var set: no room for '%s': instance '%s' uses all "
					"its %u variables (or its registry is full); raise "
					"[segment] variables\n",
					name, cl->seg->instance, shm_hdr(cl->seg)->cfg.max_vars);
				return tool_exit_for(rc);
			}
			if (rc == -ENODEV) {
				fprintf(stderr,
					"shoal var set: instance '%s' has no variables ([segment] "
					"variables = 0)\n",
					cl->seg->instance);
				return EXIT_USAGE;
			}
			if (rc && rc != -EEXIST) {
				fprintf(stderr, "shoal var set: '%s': %s\n", name,
					shoal_strerror(rc));
				return tool_exit_for(rc);
			}
		} else if (rc) {
			fprintf(stderr, "shoal var set: '%s': %s\n", name, shoal_strerror(rc));
			return tool_exit_for(rc);
		}
		if (shm_var_info(cl->seg, ids[i], NULL, NULL, 0, &type))
			return lookup(cl, "set", name, &ids[i]);
		ex = make_op(cl, name, val, ids[i], type, &nums[i], &ops[i]);
		if (ex)
			return ex;
	}
	end = shm_now_ns() + (uint64_t)a->timeout_ms * 1000000u;
	while ((rc = shm_var_update(cl->seg, ops, (uint32_t)n, 0, NULL, &bad)) == -EAGAIN &&
	       shm_now_ns() < end)
		;
	if (rc == -EAGAIN) {
		fprintf(stderr,
			"shoal var set: a writer kept holding the variables for %ld ms; nothing "
			"changed\n",
			a->timeout_ms);
		return EXIT_CHECK;
	}
	if (rc) {
		fprintf(stderr, "shoal var set: '%s': %s\n",
			a->pos[2 * (bad < (uint32_t)n ? bad : 0)], shoal_strerror(rc));
		return tool_exit_for(rc);
	}
	/* its subscribers hear of it (shoal var watch, agents, clients) */
	wrk_var_notify(cl->seg, ids, (uint32_t)n, 0);
	for (int i = 0; i < n; i++) {
		static uint8_t buf[SHM_VAR_BYTES_MAX];
		struct shm_var_val v = {.buf = buf, .cap = sizeof(buf)};

		if (!shm_var_read(cl->seg, ids[i], &v))
			print_var(cl, a->pos[2 * i], &v);
	}
	return EXIT_OK;
}

static int list_visit(uint64_t id, uint32_t ns, const char *name, uint32_t type, void *arg)
{
	static uint8_t buf[SHM_VAR_BYTES_MAX];
	struct tool_client *cl = arg;
	struct shm_var_val v = {.buf = buf, .cap = sizeof(buf)};
	char nsname[SHM_NS_NAME_MAX + 1];

	(void)type;
	if (shm_var_read(cl->seg, id, &v))
		return 0; /* gone meanwhile */
	if (shm_var_proposal(cl->seg, id))
		printf("[proposal open] ");
	if (ns == SHM_NS_DEFAULT)
		print_var(cl, name, &v);
	else if (shm_ns_name(cl->seg, ns, nsname, sizeof(nsname)) >= 0)
		printf("%s/", nsname), print_var(cl, name, &v);
	else
		printf("%u/", ns), print_var(cl, name, &v);
	return 0;
}

static int list(struct tool_client *cl, const struct var_args *a)
{
	struct shm_var_stats st;

	if (a->npos) {
		usage(stderr);
		return EXIT_USAGE;
	}
	shm_var_foreach(cl->seg, list_visit, cl);
	if (!shm_var_stats(cl->seg, &st))
		printf("%u of %u variables\n", st.live, st.capacity);
	return EXIT_OK;
}

/* What watch has printed: each variable's last version (prefix watches print what moved). */
#define WATCH_MAX 256
struct watch {
	struct shoal_client *c;
	const char *prefix;
	uint64_t var[WATCH_MAX];
	uint64_t version[WATCH_MAX];
	char name[WATCH_MAX][SHOAL_NAME_MAX + 1];
	int n;
	long printed;
	long count;
	bool quiet; /* record versions, print nothing (at the start) */
};

/* Print var if it moved past what was printed of it. */
static void watch_print(struct watch *w, uint64_t var, const char *name)
{
	static uint8_t buf[SHM_VAR_BYTES_MAX];
	struct shoal_var_value v = {.buf = buf, .cap = sizeof(buf)};
	struct shm_var_val sv;
	int i;

	if (w->count >= 0 && w->printed >= w->count)
		return;
	if (shoal_client_var_read(w->c, var, &v))
		return; /* gone meanwhile */
	for (i = 0; i < w->n && w->var[i] != var; i++)
		;
	if (i == w->n) {
		if (w->n == WATCH_MAX)
			i = WATCH_MAX - 1; /* forget the last: it may print twice, never lose one */
		else
			w->n++;
		w->var[i] = var;
		w->version[i] = UINT64_MAX;
		snprintf(w->name[i], sizeof(w->name[i]), "%s", name);
	}
	if (w->version[i] == v.version)
		return;
	w->version[i] = v.version;
	if (w->quiet)
		return;
	sv = (struct shm_var_val){.type = v.type,
				  .len = v.len < v.cap ? v.len : v.cap,
				  .buf = buf,
				  .cap = v.cap,
				  .num = {.i = v.num.i}};
	printf("%s = ", w->name[i]);
	print_value(&sv);
	printf("  (version %llu, writer ", (unsigned long long)v.version);
	if (v.writer)
		printf("agent %u.%u, ", shoal_handle_slot(v.writer), shoal_handle_gen(v.writer));
	printf("process slot %u)\n", SHM_TAG_SLOT(v.writer_tag));
	fflush(stdout);
	w->printed++;
}

static int watch_prefix_visit(const char *name, shoal_var_t var, uint32_t type, void *arg)
{
	struct watch *w = arg;

	(void)type;
	if (!strncmp(name, w->prefix, strlen(w->prefix)))
		watch_print(w, var, name);
	return 0;
}

static int watch(int argc, char **argv)
{
	const char *instance = tool_default_instance(), *names[SHM_VAR_MANY];
	static struct watch w;
	uint64_t refs[SHM_VAR_MANY + 1];
	long timeout_ms = -1;
	char err[256];
	int n = 0, ex = EXIT_OK, rc;

	w.prefix = NULL;
	w.count = -1;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			return EXIT_OK;
		}
		if (!strcmp(s, "--instance") || !strcmp(s, "--timeout") || !strcmp(s, "--count") ||
		    !strcmp(s, "--prefix")) {
			if (!val) {
				fprintf(stderr, "shoal var watch: '%s' needs a value\n", s);
				return EXIT_USAGE;
			}
			i++;
			if (s[2] == 'i') {
				instance = val;
			} else if (s[2] == 't') {
				if (tool_parse_timeout("var watch", val, &timeout_ms))
					return EXIT_USAGE;
			} else if (s[2] == 'c') {
				w.count = tool_parse_count(val);
				if (w.count < 1) {
					fprintf(stderr,
						"shoal var watch: --count '%s': give a number of "
						"changes, at least 1\n",
						val);
					return EXIT_USAGE;
				}
			} else {
				if (check_name("watch", val))
					return EXIT_USAGE;
				w.prefix = val;
			}
			continue;
		}
		if (s[0] == '-' && s[1] == '-') {
			fprintf(stderr, "shoal var watch: unknown option '%s'\n", s);
			usage(stderr);
			return EXIT_USAGE;
		}
		if (n == (int)SHM_VAR_MANY) {
			fprintf(stderr, "shoal var watch: at most %u names\n", SHM_VAR_MANY);
			return EXIT_USAGE;
		}
		if (check_name("watch", s))
			return EXIT_USAGE;
		names[n++] = s;
	}
	if (!n && !w.prefix) {
		fprintf(stderr, "shoal var watch: name a variable or give --prefix P\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	rc = shoal_client_open(instance, &w.c, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "shoal var watch: %s\n", err);
		return tool_exit_for(rc);
	}
	for (int i = 0; i <= n; i++) {
		if (i == n && !w.prefix)
			break;
		rc = shoal_client_var_subscribe(w.c, i < n ? names[i] : w.prefix,
						i < n ? 0 : SHOAL_VAR_SUB_PREFIX, &refs[i]);
		if (rc) {
			fprintf(stderr, "shoal var watch: '%s': %s\n", i < n ? names[i] : w.prefix,
				rc == -ENOENT ? "no variable of that name (or the instance has no "
						"variables)"
				: rc == -ENOSPC
					? "no free subscription: raise [segment] subscriptions"
					: strerror(-rc));
			shoal_client_close(w.c);
			return rc == -ENOENT ? EXIT_USAGE : EXIT_SYSTEM;
		}
		printf("watching %s%s\n", i < n ? names[i] : w.prefix, i < n ? "" : "*");
	}
	/* what is there now is not a change: only what moves from here on prints */
	w.quiet = true;
	for (int i = 0; i < n; i++) {
		shoal_var_t var;

		if (!shoal_client_var_lookup(w.c, names[i], &var))
			watch_print(&w, var, names[i]);
	}
	if (w.prefix)
		shoal_client_var_list(w.c, watch_prefix_visit, &w);
	w.quiet = false;
	fflush(stdout);
	while (w.count < 0 || w.printed < w.count) {
		uint8_t buf[256];
		struct shoal_var_note note;
		struct shoal_msg m;

		rc = shoal_client_recv(w.c, &m, buf, sizeof(buf), (int)timeout_ms);
		if (rc == -ETIMEDOUT) {
			fprintf(stderr, "shoal var watch: no change within %ld ms\n", timeout_ms);
			ex = EXIT_CHECK;
			break;
		}
		if (rc == -ESHUTDOWN || rc == -EOWNERDEAD) {
			printf("instance '%s' %s\n", instance,
			       rc == -ESHUTDOWN ? "stopped" : "lost its supervisor");
			ex = rc == -ESHUTDOWN ? EXIT_OK : EXIT_CHECK;
			break;
		}
		if (rc) {
			fprintf(stderr, "shoal var watch: %s\n", strerror(-rc));
			ex = EXIT_SYSTEM;
			break;
		}
		if (!(m.flags & SHOAL_MSG_SYSTEM) || m.type != SHOAL_T_VAR || m.len < sizeof(note))
			continue; /* not a notification: someone cast to our inbox */
		memcpy(&note, m.data, sizeof(note));
		for (int i = 0; i < n; i++)
			if (refs[i] == note.sub)
				watch_print(&w, note.var, names[i]);
		if (w.prefix && refs[n] == note.sub)
			/* coalesced: every variable under the prefix that moved */
			shoal_client_var_list(w.c, watch_prefix_visit, &w);
	}
	shoal_client_close(w.c);
	return ex;
}

int cmd_var(int argc, char **argv)
{
	struct tool_client cl;
	struct var_args a;
	const char *sub = argc > 1 ? argv[1] : NULL;
	int ex;

	if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help")) {
		usage(sub ? stdout : stderr);
		return sub ? EXIT_OK : EXIT_USAGE;
	}
	if (!strcmp(sub, "watch"))
		return watch(argc - 1, argv + 1);
	if (strcmp(sub, "get") && strcmp(sub, "set") && strcmp(sub, "list")) {
		fprintf(stderr, "shoal var: unknown subcommand '%s' (get, set, list, watch)\n",
			sub);
		usage(stderr);
		return EXIT_USAGE;
	}
	ex = parse_args(sub, argc - 1, argv + 1, &a);
	if (ex >= 0)
		return ex;
	ex = tool_client_open(&cl, "var", a.instance, false);
	if (ex)
		return ex;
	if (!strcmp(sub, "get"))
		ex = get(&cl, &a);
	else if (!strcmp(sub, "set"))
		ex = set(&cl, &a);
	else
		ex = list(&cl, &a);
	tool_client_close(&cl);
	return ex;
}

/*
 * The budgets format (docs/budgets.md): one budget a line,
 *
 *   OPERATION STAT [<=|>=] LIMIT [BASELINE] [info]   # comment
 *
 * STAT one of p50 p90 p99 p99.9 mean rate; LIMIT a time (20us), a rate (1M/s) or a factor
 * of the same statistic of BASELINE measured in the same run (2x cacheline_rtt).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slo/slo.h"

static const char *const stat_names[SLO_STAT_N] = {
	[SLO_P50] = "p50",    [SLO_P90] = "p90",   [SLO_P99] = "p99",
	[SLO_P999] = "p99.9", [SLO_MEAN] = "mean", [SLO_RATE] = "rate",
};

const char *slo_stat_name(enum slo_stat s)
{
	return s < SLO_STAT_N ? stat_names[s] : "?";
}

/* Append one "FILE:LINE: ..." message to err (as much as fits; the first always starts it). */
static void say(char *err, size_t errlen, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void say(char *err, size_t errlen, const char *file, unsigned line, const char *fmt, ...)
{
	size_t used = err && errlen ? strlen(err) : 0;
	va_list ap;
	int n;

	if (!err || used + 1 >= errlen)
		return;
	n = snprintf(err + used, errlen - used, "%s%s:%u: ", used ? "\n" : "", file, line);
	if (n < 0 || (size_t)n >= errlen - used)
		return;
	used += (size_t)n;
	va_start(ap, fmt);
	vsnprintf(err + used, errlen - used, fmt, ap);
	va_end(ap);
}

static bool is_name(const char *s)
{
	if (!*s || strlen(s) >= SLO_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_-.:/", *s))
			return false;
	return true;
}

/* A time unit's ns, or 0. */
static double time_unit(const char *u)
{
	if (!strcmp(u, "ns"))
		return 1;
	if (!strcmp(u, "us") || !strcmp(u, "\u00b5s"))
		return 1e3;
	if (!strcmp(u, "ms"))
		return 1e6;
	if (!strcmp(u, "s"))
		return 1e9;
	return 0;
}

/*
 * One limit token: *limit and *ratio set; 0, or -EINVAL with the problem and its fix said.
 * Rates are "N/s" with an optional k, M or G before the "/s".
 */
static int parse_limit(const char *tok, enum slo_stat st, double *limit, bool *ratio, char *why,
		       size_t cap)
{
	bool rate = st == SLO_RATE;
	char *end;
	double v = strtod(tok, &end), mul;

	*ratio = false;
	if (end == tok || !isfinite(v) || tok[0] == '+' || tok[0] == '-' ||
	    isalpha((unsigned char)tok[0])) {
		snprintf(why, cap,
			 "limit '%s' is not a number; write e.g. %s, or a factor of a baseline "
			 "such as 2x cacheline_rtt",
			 tok, rate ? "1M/s" : "20us");
		return -EINVAL;
	}
	if (v <= 0) {
		snprintf(why, cap,
			 "limit '%s' is not above zero; a budget bounds a positive figure", tok);
		return -EINVAL;
	}
	if (!strcmp(end, "x")) {
		*ratio = true;
		*limit = v;
		return 0;
	}
	if (!*end) {
		if (rate)
			snprintf(why, cap, "limit '%s' has no unit; write a rate such as %s/s", tok,
				 tok);
		else
			snprintf(why, cap,
				 "limit '%s' has no unit; write %sns, %sus, %sms or %ss (or a "
				 "factor: %sx BASELINE)",
				 tok, tok, tok, tok, tok, tok);
		return -EINVAL;
	}
	if (rate) {
		const char *u = end;

		mul = 1;
		if (*u == 'k' || *u == 'M' || *u == 'G') {
			mul = *u == 'k' ? 1e3 : *u == 'M' ? 1e6 : 1e9;
			u++;
		}
		if (strcmp(u, "/s")) {
			snprintf(why, cap,
				 "rate limit '%s': unit '%s' is not a rate; write operations per "
				 "second such as 500k/s, 1M/s or 2G/s",
				 tok, end);
			return -EINVAL;
		}
		*limit = v * mul;
		return 0;
	}
	mul = time_unit(end);
	if (!mul) {
		if (strstr(end, "/s"))
			snprintf(why, cap,
				 "%s bounds a time, not a rate ('%s'); write a time such as 20us, "
				 "or use the statistic 'rate'",
				 stat_names[st], tok);
		else
			snprintf(why, cap, "limit '%s': unknown unit '%s'; write ns, us, ms or s",
				 tok, end);
		return -EINVAL;
	}
	*limit = v * mul;
	return 0;
}

static int push(struct slo_budgets *b, const struct slo_budget *bg)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct slo_budget *v = realloc(b->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = *bg;
	return 0;
}

/* One line's tokens (comment cut, split on blanks) into bg; 1 if blank, 0, or -EINVAL. */
static int parse_line(char *s, struct slo_budget *bg, char *why, size_t cap)
{
	char *tok[8], *save = NULL, *c = strchr(s, '#');
	int nt = 0, i = 0;
	bool ratio;

	if (c)
		*c = 0;
	for (char *t = strtok_r(s, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (nt == 8) {
			snprintf(why, cap,
				 "too many words; a budget is OPERATION STAT [<=|>=] "
				 "LIMIT [BASELINE] [info]");
			return -EINVAL;
		}
		tok[nt++] = t;
	}
	if (nt == 0)
		return 1;
	memset(bg, 0, sizeof(*bg));
	if (nt < 3) {
		snprintf(why, cap,
			 "'%s%s%s' is not a budget; write OPERATION STAT LIMIT, e.g. 'call p99 "
			 "20us'",
			 tok[0], nt > 1 ? " " : "", nt > 1 ? tok[1] : "");
		return -EINVAL;
	}
	if (!is_name(tok[0])) {
		snprintf(why, cap,
			 "operation '%.60s': a name of 1..%d letters, digits and _-.:/ is expected",
			 tok[0], SLO_NAME_MAX - 1);
		return -EINVAL;
	}
	snprintf(bg->op, sizeof(bg->op), "%s", tok[i++]);
	for (bg->stat = 0; bg->stat < SLO_STAT_N; bg->stat++)
		if (!strcmp(tok[i], stat_names[bg->stat]))
			break;
	if (bg->stat == SLO_STAT_N) {
		snprintf(why, cap,
			 "unknown statistic '%.20s'; write p50, p90, p99, p99.9, mean or rate%s",
			 tok[i],
			 !strcmp(tok[i], "p999") ? " (p99.9 for the 99.9th percentile)" : "");
		return -EINVAL;
	}
	i++;
	bg->cmp = bg->stat == SLO_RATE ? SLO_GE : SLO_LE;
	if (!strcmp(tok[i], "<=") || !strcmp(tok[i], ">=")) {
		bg->cmp = tok[i][0] == '<' ? SLO_LE : SLO_GE;
		i++;
	} else if (strspn(tok[i], "<>=!") == strlen(tok[i])) {
		snprintf(why, cap, "comparison '%s': write <= or >= (or nothing: %s)", tok[i],
			 bg->stat == SLO_RATE ? "a rate is a floor" : "a time is a ceiling");
		return -EINVAL;
	}
	if (i == nt) {
		snprintf(why, cap, "no limit after '%s'; write e.g. %s %s %s", tok[i - 1], bg->op,
			 stat_names[bg->stat], bg->stat == SLO_RATE ? "1M/s" : "20us");
		return -EINVAL;
	}
	if (parse_limit(tok[i], bg->stat, &bg->limit, &ratio, why, cap))
		return -EINVAL;
	i++;
	if (ratio) {
		if (i == nt || !strcmp(tok[i], "info")) {
			snprintf(why, cap,
				 "factor '%s' of what? name the same-run baseline after it, e.g. "
				 "'%s "
				 "cacheline_rtt'",
				 tok[i - 1], tok[i - 1]);
			return -EINVAL;
		}
		if (!is_name(tok[i])) {
			snprintf(why, cap, "baseline '%.60s' is not an operation's name", tok[i]);
			return -EINVAL;
		}
		if (!strcmp(tok[i], bg->op)) {
			snprintf(why, cap, "'%s' is its own baseline; name another operation",
				 bg->op);
			return -EINVAL;
		}
		snprintf(bg->vs, sizeof(bg->vs), "%s", tok[i++]);
	}
	if (i < nt && !strcmp(tok[i], "info")) {
		bg->info = true;
		i++;
	}
	if (i < nt) {
		snprintf(why, cap,
			 "unexpected '%.40s' after the limit; only a baseline (after a factor such "
			 "as 2x), 'info' or a # comment may follow",
			 tok[i]);
		return -EINVAL;
	}
	return 0;
}

int slo_budgets_parse(struct slo_budgets *b, const char *file, const char *text, char *err,
		      size_t errlen)
{
	size_t n0 = b->n;
	unsigned line = 0;
	int bad = 0, rc = 0;

	if (err && errlen)
		err[0] = 0;
	snprintf(b->file, sizeof(b->file), "%s", file);
	while (*text) {
		size_t len = strcspn(text, "\n");
		char buf[512], why[256];
		struct slo_budget bg;
		int r;

		line++;
		if (len >= sizeof(buf)) {
			say(err, errlen, file, line, "a line of %zu bytes; at most %zu", len,
			    sizeof(buf) - 1);
			bad++;
		} else {
			memcpy(buf, text, len);
			buf[len] = 0;
			r = parse_line(buf, &bg, why, sizeof(why));
			if (r < 0) {
				say(err, errlen, file, line, "%s", why);
				bad++;
			} else if (r == 0 && !bad) {
				bg.line = line;
				rc = push(b, &bg);
				if (rc)
					break;
			}
		}
		text += len;
		if (*text == '\n')
			text++;
	}
	if (bad || rc)
		b->n = n0; /* all or nothing */
	return rc ? rc : bad ? -EINVAL : 0;
}

int slo_budgets_load(struct slo_budgets *b, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s; give a budgets file (docs/budgets.md)", path,
			 strerror(-rc));
		return rc;
	}
	{
		FILE *m = open_memstream(&text, &len);
		char chunk[4096];
		size_t got;

		if (!m) {
			fclose(f);
			snprintf(err, errlen, "%s: out of memory reading it", path);
			return -ENOMEM;
		}
		rc = 0;
		while (!rc && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (fwrite(chunk, 1, got, m) != got)
				rc = -ENOMEM; /* a memory stream fails only for memory */
		if (!rc && ferror(f))
			rc = -EIO;
		if (fclose(m) && !rc)
			rc = -ENOMEM;
	}
	fclose(f);
	if (rc == -ENOMEM) {
		snprintf(err, errlen, "%s: out of memory reading it", path);
	} else if (rc) {
		snprintf(err, errlen, "%s: cannot read it (%s)", path, strerror(-rc));
	} else if (text && memchr(text, 0, len)) {
		snprintf(err, errlen, "%s: a NUL byte: not a budgets text file", path);
		rc = -EINVAL;
	} else {
		rc = slo_budgets_parse(b, path, text ? text : "", err, errlen);
	}
	free(text);
	return rc;
}

void slo_budgets_free(struct slo_budgets *b)
{
	free(b->v);
	b->v = NULL;
	b->n = b->cap = 0;
}

/* The figure of op's statistic st: NaN when op is absent or st not measured. */
static double figure(const struct slo_figures *fig, size_t n, const char *op, enum slo_stat st)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(fig[i].op, op))
			continue;
		return isfinite(fig[i].stat[st]) && fig[i].stat[st] > 0 ? fig[i].stat[st] : NAN;
	}
	return NAN;
}

unsigned slo_budgets_check(const struct slo_budgets *b, const struct slo_figures *fig, size_t n,
			   struct slo_result *out)
{
	unsigned broken = 0;

	for (size_t i = 0; i < b->n; i++) {
		const struct slo_budget *bg = &b->v[i];
		struct slo_result *r = &out[i];

		r->value = figure(fig, n, bg->op, bg->stat);
		r->base = bg->vs[0] ? figure(fig, n, bg->vs, bg->stat) : NAN;
		r->measured = bg->vs[0] ? r->value / r->base : r->value;
		if (!isfinite(r->measured)) {
			r->verdict = SLO_NO_DATA;
			continue;
		}
		r->verdict =
			(bg->cmp == SLO_LE ? r->measured <= bg->limit : r->measured >= bg->limit)
				? SLO_MET
				: SLO_BROKEN;
		broken += r->verdict == SLO_BROKEN && !bg->info;
	}
	return broken;
}

/* A time or a rate with its unit, short. */
static void fmt_value(char *buf, size_t cap, double v, bool rate)
{
	if (!isfinite(v))
		snprintf(buf, cap, "-");
	else if (rate)
		snprintf(buf, cap,
			 v >= 1e9   ? "%.3gG/s"
			 : v >= 1e6 ? "%.3gM/s"
			 : v >= 1e3 ? "%.3gk/s"
				    : "%.3g/s",
			 v >= 1e9   ? v / 1e9
			 : v >= 1e6 ? v / 1e6
			 : v >= 1e3 ? v / 1e3
				    : v);
	else if (v < 1e3)
		snprintf(buf, cap, "%.0fns", v);
	else if (v < 1e6)
		snprintf(buf, cap, "%.3gus", v / 1e3);
	else if (v < 1e9)
		snprintf(buf, cap, "%.3gms", v / 1e6);
	else
		snprintf(buf, cap, "%.3gs", v / 1e9);
}

char *slo_value_format(double v, enum slo_stat st, char *buf, size_t cap)
{
	fmt_value(buf, cap, v, st == SLO_RATE);
	return buf;
}

char *slo_budget_format(const struct slo_budget *bg, char *buf, size_t cap)
{
	char lim[96];

	if (bg->vs[0])
		snprintf(lim, sizeof(lim), "%gx %s", bg->limit, bg->vs);
	else
		fmt_value(lim, sizeof(lim), bg->limit, bg->stat == SLO_RATE);
	snprintf(buf, cap, "%s %s %s %s%s", bg->op, stat_names[bg->stat],
		 bg->cmp == SLO_LE ? "<=" : ">=", lim, bg->info ? " info" : "");
	return buf;
}

char *slo_result_format(const struct slo_budget *bg, const struct slo_result *r, char *buf,
			size_t cap)
{
	bool rate = bg->stat == SLO_RATE;
	const char *v = r->verdict == SLO_NO_DATA ? "not measured"
			: r->verdict == SLO_MET	  ? "met"
			: bg->info		  ? "missed (info)"
						  : "BROKEN";
	char a[32], c[32];

	fmt_value(a, sizeof(a), r->value, rate);
	if (bg->vs[0]) {
		fmt_value(c, sizeof(c), r->base, rate);
		/* two decimals, or three digits below 0.1 (0.0155x is not "0.02x" against 0.02) */
		snprintf(buf, cap,
			 r->measured < 0.1 ? "%s / %s %s = %.3gx, limit %s %gx: %s"
					   : "%s / %s %s = %.2fx, limit %s %gx: %s",
			 a, bg->vs, c, r->measured, bg->cmp == SLO_LE ? "<=" : ">=", bg->limit, v);
	} else {
		fmt_value(c, sizeof(c), bg->limit, rate);
		snprintf(buf, cap, "%s, limit %s %s: %s", a, bg->cmp == SLO_LE ? "<=" : ">=", c, v);
	}
	return buf;
}

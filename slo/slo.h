/*
 * slo: latency and rate budgets. One text format (docs/budgets.md), one parser and one
 * verdict function, shared by `shoal bench --check` (the CI gate, bench/budgets.txt) and,
 * later, the supervisor's live checks (`shoal run --budgets`) and `shoal slo-check`. It reads
 * no segment and keeps no state: a budgets file in, verdicts over a table of figures out.
 */
#ifndef SLO_SLO_H
#define SLO_SLO_H

#include <stdbool.h>
#include <stddef.h>

#define SLO_NAME_MAX 48 /* an operation's name, with its NUL */

/* The statistics a budget can bound. */
enum slo_stat {
	SLO_P50,
	SLO_P90,
	SLO_P99,
	SLO_P999,
	SLO_MEAN,
	SLO_RATE, /* operations per second */
	SLO_STAT_N
};

enum slo_cmp {
	SLO_LE, /* the figure must be at most the limit (the default for times) */
	SLO_GE, /* at least (the default for rates) */
};

/* One line of a budgets file. */
struct slo_budget {
	char op[SLO_NAME_MAX];
	enum slo_stat stat;
	enum slo_cmp cmp;
	double limit;	       /* ns for times, operations/s for rates, a factor if vs[0] */
	char vs[SLO_NAME_MAX]; /* "": an absolute limit; else the same-run baseline's name */
	bool info;	       /* printed, never fails a check */
	unsigned line;	       /* in its file, for messages */
};

struct slo_budgets {
	struct slo_budget *v;
	size_t n, cap;
	char file[256]; /* the name messages give */
};

/* A verdict. */
enum slo_verdict {
	SLO_MET,
	SLO_BROKEN,
	SLO_NO_DATA, /* the operation (or its baseline) was not measured */
};

/* The figures of one operation; a statistic not measured is NaN (or <= 0). */
struct slo_figures {
	const char *op;
	double stat[SLO_STAT_N]; /* times in ns, the rate in operations/s */
};

/* One budget's verdict. */
struct slo_result {
	double value;	 /* the operation's statistic */
	double base;	 /* the baseline's (a ratio budget), else NaN */
	double measured; /* what was compared with the limit: value, or value / base */
	enum slo_verdict verdict;
};

/*
 * Parse budgets text (file names it in messages) and append its budgets to *b (zeroed or
 * from an earlier call). Every bad line is reported in err as "FILE:LINE: problem; fix", one
 * per line, as many as fit. Returns 0, -EINVAL when a line is bad (nothing of the text is
 * kept then), -ENOMEM. Any thread; b is the caller's, and after an error as after success
 * the caller frees it (slo_budgets_free()): the parse may have grown its array.
 */
int slo_budgets_parse(struct slo_budgets *b, const char *file, const char *text, char *err,
		      size_t errlen);

/*
 * slo_budgets_parse() on the file at path. Returns 0, -EINVAL (err says which lines), or the
 * -errno of reading it (err says so, naming the file). Any thread.
 */
int slo_budgets_load(struct slo_budgets *b, const char *path, char *err, size_t errlen);

/* Free what the parser allocated; b is empty again. Any thread. */
void slo_budgets_free(struct slo_budgets *b);

/*
 * The verdict of each budget of b over the figures fig[0..n) (found by operation name; a
 * name measured twice: the first). out[] has b->n entries. Returns the number of budgets
 * broken that are not informational. Any thread.
 */
unsigned slo_budgets_check(const struct slo_budgets *b, const struct slo_figures *fig, size_t n,
			   struct slo_result *out);

/*
 * A figure with its unit, short: a time ("850ns", "12.3us") or, for SLO_RATE, a rate
 * ("1.2M/s"); "-" for NaN. Returns buf. Any thread.
 */
char *slo_value_format(double v, enum slo_stat st, char *buf, size_t cap);

/* A statistic's name as the format spells it ("p99.9"). */
const char *slo_stat_name(enum slo_stat s);

/*
 * A budget as text, in the format (e.g. "rtt_spin p50 <= 2x cacheline_rtt"), into buf.
 * Returns buf. Any thread.
 */
char *slo_budget_format(const struct slo_budget *bg, char *buf, size_t cap);

/*
 * A verdict as one line: the figure, the baseline and the ratio for a ratio budget
 * ("170 ns / 120 ns = 1.42x, limit 2x: met"), the figure and the limit otherwise. Returns
 * buf. Any thread.
 */
char *slo_result_format(const struct slo_budget *bg, const struct slo_result *r, char *buf,
			size_t cap);

#endif

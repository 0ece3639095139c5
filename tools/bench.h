/* The benchmark harness: samples -> percentiles, baselines in the same run, ratios, JSON. */
#ifndef TOOLS_BENCH_H
#define TOOLS_BENCH_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <jansson.h>

#include "slo/slo.h"

#define BENCH_NAME_MAX 48
#define BENCH_MAX_ROWS 32

/* One measured operation. Latencies in ns. */
struct bench_row {
	char name[BENCH_NAME_MAX];
	double p50_ns, p90_ns, p99_ns, p999_ns, mean_ns, stddev_ns, ops_per_s;
	double alloc_per_op; /* bytes malloc'd per operation in this process; NaN: not counted */
	uint64_t samples;
	char vs[BENCH_NAME_MAX]; /* baseline to compare with ("" none) */
};

/*
 * The platform's own hiccups: the gaps between back-to-back clock reads of a thread that
 * does nothing else (as jHiccup does), on each benchmark CPU, measured before a suite runs.
 */
struct bench_hiccup {
	double p50_ns, p99_ns, p999_ns, max_ns;
	uint64_t gaps;	     /* clock reads taken */
	uint64_t over_100us; /* gaps of 100 us or more */
	uint64_t dur_ns;     /* how long it ran */
	int cpus[2];	     /* the CPUs it ran on (-1: not pinned) */
};

struct bench_report {
	const char *bench;  /* "registry", "ipc", ... */
	char bench_buf[24]; /* bench's text for a report loaded from JSON */
	struct bench_row results[BENCH_MAX_ROWS];
	struct bench_row baselines[BENCH_MAX_ROWS];
	unsigned nresults, nbaselines;
	struct bench_hiccup hiccup;
	double steal_pct; /* the host's steal during the suite, -1 unknown */
	char notes[4096]; /* free text printed after the table (and as "notes" in JSON) */
};

/* Options common to every benchmark. */
struct bench_opts {
	bool json;
	bool quick;	  /* fewer iterations (CI smoke) */
	bool check;	  /* exit 1 when a gating budget is broken */
	int cpu_a, cpu_b; /* the two cores to pin to (-1: first two allowed) */
	const char *instance;
	const char *budgets;  /* --budgets FILE (NULL: the default file) */
	const char *baseline; /* --baseline FILE: a saved --json run to compare with */
	bool no_monitors;     /* --no-monitors: bench dist's instances say [dist] monitors = no */
};

/*
 * Turn latency samples (ns, modified: sorted in place) into a row. ops_per_s is given
 * by the caller (measured over the whole run, not derived from the mean, so a
 * multi-process run reports its aggregate rate).
 */
void bench_row_fill(struct bench_row *row, const char *name, uint64_t *ns, size_t n,
		    double ops_per_s);
struct bench_row *bench_add_result(struct bench_report *r, const char *name, uint64_t *ns, size_t n,
				   double ops_per_s, const char *vs);
struct bench_row *bench_add_baseline(struct bench_report *r, const char *name, uint64_t *ns,
				     size_t n, double ops_per_s);
/*
 * Allocation counting: every malloc, calloc and realloc of this process's own code (the
 * shoal tool is linked with --wrap for them: tools/bench_alloc.c), in bytes requested,
 * since the start. Not counted: allocations inside other libraries (libc's own strdup,
 * jansson, plugins) and other processes'. Any thread.
 */
uint64_t bench_alloc_bytes(void);
/* row's alloc_per_op: bytes counted since bytes0 (a bench_alloc_bytes()) over ops. */
void bench_row_alloc(struct bench_row *row, uint64_t bytes0, double ops);

/*
 * The hiccup meter: a thread per CPU given (cpu_a, and cpu_b when it differs; -1: unpinned)
 * reads the clock back to back for dur_ns and the gaps go into *out. started, if given, is
 * set to 1 once the first thread has read the clock (a test's cue). Returns 0 or -errno.
 * The calling thread waits for it to end.
 */
int bench_hiccup_measure(uint64_t dur_ns, int cpu_a, int cpu_b, _Atomic uint32_t *started,
			 struct bench_hiccup *out);

/* A report as one JSON object (its hiccups and rows; the caller adds budgets). */
json_t *bench_report_json(const struct bench_report *r);
/* A report as a table on f. */
void bench_report_text(const struct bench_report *r, FILE *f);

/*
 * A report's rows as figures for slo_budgets_check() (results, then baselines): at most cap
 * into fig; fig[i].op points into r. Returns how many.
 */
size_t bench_report_figures(const struct bench_report *r, struct slo_figures *fig, size_t cap);

/*
 * Check the budgets over the reports' figures and print one line each (text on f, or append
 * objects to the JSON array ja; neither: only the count). all: a budget no report measured is a
 * failure (a misspelt row) when it gates; else it is left out (another suite's). Returns the number
 * of gating budgets broken (or unmeasured, with all).
 */
unsigned bench_budgets_report(const struct slo_budgets *b, const struct bench_report *const *reps,
			      size_t n, bool all, FILE *f, json_t *ja);

/*
 * Load a saved --json run (one suite's object or `all`'s) into reps[0..cap). Returns how many
 * reports, or -errno with the reason in err. The tool's thread.
 */
int bench_saved_load(const char *path, struct bench_report *reps, size_t cap, char *err,
		     size_t errlen);

/*
 * Compare a run with a saved one, suite by suite and row by row, on ratios to same-run
 * baselines only (a row's p50 over its baseline's p50; its rate over its baseline's rate):
 * a figure regressed when it is worse than the saved one by more than the noise threshold
 * (at least tol; wider for rows whose samples spread and for p50s of a few timer steps:
 * see bench.c). One line per figure on
 * f (or an object in ja). Returns the number of regressions.
 */
unsigned bench_compare(const struct bench_report *const *now, size_t n,
		       const struct bench_report *saved, size_t nsaved, double tol, FILE *f,
		       json_t *ja);

/*
 * A cycle counter calibrated to ns: cheap enough to time one short operation (shm/cpu.h's:
 * rdtscp on x86; on arm64 the generic timer, whose tick is 1 ns to 40 ns depending on the
 * machine, so a single short sample there can be coarse). Also marks the start of the run for
 * the host-steal figure bench_report_print() prints.
 */
void bench_clock_init(void);
uint64_t bench_ticks(void);
double bench_ticks_to_ns(uint64_t ticks);
uint64_t bench_now_ns(void);
/* The host's steal, percent of this VM's CPU time since bench_clock_init(); -1 unknown. */
double bench_steal_pct(void);

/* Pin the calling thread to a CPU; returns 0 or -errno. */
int bench_pin(int cpu);
/* The first two CPUs this process may run on (b == a when only one). */
void bench_pick_cpus(int *a, int *b);

/* Parse the common options; returns index of the first unparsed arg, or -1 on error. */
int bench_parse_common(int argc, char **argv, struct bench_opts *o);

/*
 * The suites: each fills r (its rows, baselines and notes) and returns a CLI exit code
 * (EXIT_OK when r is complete). The tool's main thread.
 */
int bench_control(struct bench_opts *o, struct bench_report *r);
int bench_coord(struct bench_opts *o, struct bench_report *r);
int bench_dist(struct bench_opts *o, struct bench_report *r);
/* bench coord's variables part (bench_coord_vars.c): rows into r, its notes set; 0/-errno. */
int bench_coord_vars(struct bench_opts *o, struct bench_report *r);
/* bench coord's pool rows (bench_coord_pool.c): rows into r, notes appended; 0/-errno. */
int bench_coord_pool(struct bench_opts *o, struct bench_report *r);
int bench_ipc(struct bench_opts *o, struct bench_report *r);
int bench_registry(struct bench_opts *o, struct bench_report *r);
int bench_restart(struct bench_opts *o, struct bench_report *r);

/*
 * A benchmark's own instance from config `text`: `shoal run` in a forked child that gets
 * SIGTERM when the benchmark dies, waited for until every worker and agent is ready (10 s).
 * Its pid, or -1 with the reason on stderr. bench_sup_stop(): SIGTERM, reap, 0 if it
 * stopped cleanly (else says so). The benchmark's main thread.
 */
pid_t bench_sup_start(const char *bench, const char *text);
int bench_sup_stop(const char *bench, pid_t sup);

#endif

/* The benchmark harness: samples -> percentiles, baselines in the same run, ratios, JSON. */
#ifndef TOOLS_BENCH_H
#define TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_NAME_MAX 48
#define BENCH_MAX_ROWS 32

/* A floor on a row's ops_per_s as a fraction of another row's in the same run. */
struct bench_ops_target {
	char vs[BENCH_NAME_MAX]; /* the other row: a result or a baseline ("" none) */
	double ratio;		 /* ops_per_s must be at least ratio x the other's */
};

#define BENCH_OPS_TARGETS 2

/* One measured operation. Latencies in ns. */
struct bench_row {
	char name[BENCH_NAME_MAX];
	double p50_ns, p99_ns, p999_ns, mean_ns, ops_per_s;
	uint64_t samples;
	char vs[BENCH_NAME_MAX]; /* baseline to compare with ("" none) */
	double target_ns;	 /* a target on p50/p99 (see target_pct), 0 none */
	int target_pct;		 /* 50 or 99: which percentile target_ns bounds */
	double target_ops;	 /* a floor on ops_per_s, 0 none */
	double target_ratio;	 /* a ceiling on p50 / baseline p50, 0 none */
	struct bench_ops_target ops_targets[BENCH_OPS_TARGETS]; /* bench_row_ops_target() */
};

struct bench_report {
	const char *bench; /* "registry", "ipc", ... */
	struct bench_row results[BENCH_MAX_ROWS];
	struct bench_row baselines[BENCH_MAX_ROWS];
	unsigned nresults, nbaselines;
	bool json;
	char notes[4096]; /* free text printed after the table (and as "notes" in JSON) */
};

/* Options common to every benchmark. */
struct bench_opts {
	bool json;
	bool quick;	  /* fewer iterations (CI smoke) */
	bool check;	  /* exit 1 when a target is missed */
	int cpu_a, cpu_b; /* the two cores to pin to (-1: first two allowed) */
	const char *instance;
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
 * Require row's ops_per_s to be at least ratio x that of the row named vs (a result or a
 * baseline of the same report, looked up when printed; a missing one is no target). Returns
 * 0, or -ENOSPC when the row has BENCH_OPS_TARGETS such targets already. The benchmark's
 * thread.
 */
int bench_row_ops_target(struct bench_row *row, const char *vs, double ratio);
/* Print the table (or JSON). Returns the number of targets missed. */
int bench_report_print(const struct bench_report *r);

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

/* Pin the calling thread to a CPU; returns 0 or -errno. */
int bench_pin(int cpu);
/* The first two CPUs this process may run on (b == a when only one). */
void bench_pick_cpus(int *a, int *b);

/* Parse the common options; returns index of the first unparsed arg, or -1 on error. */
int bench_parse_common(int argc, char **argv, struct bench_opts *o);

int bench_control(int argc, char **argv, struct bench_opts *o);
int bench_dist(int argc, char **argv, struct bench_opts *o);
int bench_coord(int argc, char **argv, struct bench_opts *o);
/* bench coord's variables part (bench_coord_vars.c): rows into r, its notes set; 0/-errno. */
int bench_coord_vars(struct bench_opts *o, struct bench_report *r);
/* bench coord's pool rows (bench_coord_pool.c): rows into r, notes appended; 0/-errno. */
int bench_coord_pool(struct bench_opts *o, struct bench_report *r);
int bench_ipc(int argc, char **argv, struct bench_opts *o);
int bench_registry(int argc, char **argv, struct bench_opts *o);
int bench_restart(int argc, char **argv, struct bench_opts *o);

/*
 * A benchmark's own instance from config `text`: `shoal run` in a forked child that gets
 * SIGTERM when the benchmark dies, waited for until every worker and agent is ready (10 s).
 * Its pid, or -1 with the reason on stderr. bench_sup_stop(): SIGTERM, reap, 0 if it
 * stopped cleanly (else says so). The benchmark's main thread.
 */
pid_t bench_sup_start(const char *bench, const char *text);
int bench_sup_stop(const char *bench, pid_t sup);

#endif

/* SPDX-License-Identifier: MIT */
/* bench.h: what fugue-bench and fugue-bench-lttng share — clocks, figures, statistics, a ring consumer. */
#ifndef FL_BENCH_H
#define FL_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define FL_BENCH_TSC 1
#endif

/* ---- clocks ------------------------------------------------------------------------ */

/*
 * Batches are timed with the TSC (lfence-ordered rdtsc) when the CPU has an
 * invariant one, converted with a calibration against CLOCK_MONOTONIC taken at
 * start; elsewhere with clock_gettime. A batch is 16..4096 calls, so the clock
 * read costs well under 1% of what it times.
 */
extern double fl_bench_tsc_per_ns; /* 0: no usable TSC, ticks are ns of CLOCK_MONOTONIC */

uint64_t fl_bench_mono_ns(void);
/* Calibrates the TSC (or decides not to use it); ms of spinning per try. */
void fl_bench_clock_init(unsigned ms);

static inline uint64_t fl_bench_ticks(void)
{
#ifdef FL_BENCH_TSC
	if (fl_bench_tsc_per_ns > 0) {
		_mm_lfence(); /* earlier work has finished before the read */
		uint64_t t = __rdtsc();
		_mm_lfence(); /* later work starts after it */
		return t;
	}
#endif
	return fl_bench_mono_ns();
}

static inline double fl_bench_ticks_ns(uint64_t ticks)
{
	return fl_bench_tsc_per_ns > 0 ? (double)ticks / fl_bench_tsc_per_ns : (double)ticks;
}

/* ---- figures ----------------------------------------------------------------------- */

/* One reported figure: its samples (one per batch or per round), unit and target. */
struct fl_fig {
	char key[64];
	char unit[16];
	double *v;
	size_t n, cap;
	char absent[256]; /* non-empty: not measured, and why */
	int target_op;	  /* 0 none, '<' means <=, '>' means >= */
	double target;
	char note[160];
};

/* Finds or creates the figure key. */
struct fl_fig *fl_fig(const char *key, const char *unit);
void fl_fig_add(struct fl_fig *f, double v);
void fl_fig_target(struct fl_fig *f, int op, double value);
void fl_fig_absent(const char *key, const char *unit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fl_fig_note(struct fl_fig *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct fl_stats_summary {
	double median, p99, p999, min, max, mean;
	size_t runs;
};
void fl_fig_summary(const struct fl_fig *f, struct fl_stats_summary *s);

/* Every figure so far, in creation order. */
size_t fl_fig_count(void);
struct fl_fig *fl_fig_at(size_t i);

/* Writes the samples of every figure to dir/<key>.txt, one per line (for the plots). */
int fl_fig_dump_samples(const char *dir);

/* ---- the machine ------------------------------------------------------------------- */

struct fl_machine {
	char cpu[128];
	char kernel[128];
	char hypervisor[32];
	int cores;
	int tsc_invariant; /* constant_tsc and nonstop_tsc */
	double loadavg1;
};
void fl_machine_get(struct fl_machine *m);

/* ---- a minimal ring consumer, for when no fugue-logd is at hand ----------------------- */

/*
 * A forked process that attaches to the named rings and moves every lane's
 * tail forward as records arrive, sleeping 20 us when all are empty, the way a
 * drainer with nothing to write would. It counts records and payload bytes in a
 * shared page. Stop it with fl_consumer_stop.
 */
struct fl_consumer_shared {
	volatile int stop;
	volatile int ready;
	volatile uint64_t records;
	volatile uint64_t bytes;
	volatile int error;
};

struct fl_consumer {
	int pid;
	struct fl_consumer_shared *sh;
};

int fl_consumer_start(struct fl_consumer *c, const char *const *shm_names, int n);
/* Stops it and waits; returns 0, or -EIO when it met a corrupt lane. */
int fl_consumer_stop(struct fl_consumer *c);

/* ---- small helpers ------------------------------------------------------------------ */

/* A 100-byte printable payload and a 4 KiB transcript-like chunk of terminal output. */
void fl_bench_small_payload(char out[100]);
void fl_bench_transcript_chunk(char *out, size_t len, uint64_t seed);

/* Samples from a child over a pipe: lines "key unit v1 v2 ...". */
int fl_bench_read_samples(FILE *in);
void fl_bench_write_samples(FILE *out, const struct fl_fig *f);

#endif

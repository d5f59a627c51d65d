/* SPDX-License-Identifier: MIT */
/* fugue_bench.c: fugue-bench — emit cost, no-slowdown ratio, lossless end to end, memory, lz4, side by side. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "bench.h"
#include "fuguelog.h"
#include "doorbell.h"
#include "ring.h"
#include "sink.h"

#ifndef FL_BENCH_LOGD
#define FL_BENCH_LOGD ""
#endif
#ifndef FL_BENCH_LTTNG
#define FL_BENCH_LTTNG ""
#endif
#if FL_BENCH_LTTNG_MISSING == 1
#define FL_BENCH_LTTNG_WHY "not built: pkg-config found no lttng-ust (apt-get install liblttng-ust-dev)"
#elif FL_BENCH_LTTNG_MISSING == 2
#define FL_BENCH_LTTNG_WHY "not built in sanitizer builds"
#else
#define FL_BENCH_LTTNG_WHY "fugue-bench-lttng is missing next to fugue-bench"
#endif
#ifndef FL_BENCH_SOURCE_DIR
#define FL_BENCH_SOURCE_DIR ""
#endif

#define SMALL 100
#define CHUNK 4096
#define NCHUNKS 16

static struct {
	int json, quick;
	const char *samples_dir;
	char logd[4096];  /* fugue-logd to run, "" for the built-in consumer */
	char lttng[4096]; /* fugue-bench-lttng, "" when not built */
	char tmp[4096];	  /* private scratch dir */
	char prefix[64];  /* shm prefix of every ring we create */
	const char *drainer_name;
	int nsessions;
	int only_small, only_4k; /* e2e.small / e2e.transcript4k named alone */
} opt;

static char small_payload[SMALL];
static char chunks[NCHUNKS][CHUNK];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fugue-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* ---- sessions and the drainer --------------------------------------------------------- */

struct bsession {
	fl_session *s;
	char id[64];
	char shm[160];
};

static void bs_open(struct bsession *b, int level, uint32_t lanes, uint64_t lane_size, int block)
{
	char why[256] = "";
	snprintf(b->id, sizeof b->id, "bench-%d-%d", (int)getpid(), ++opt.nsessions);
	struct fl_session_opts o = {.id = b->id,
				    .level = level,
				    .lanes = lanes,
				    .lane_size = lane_size,
				    .full_policy = block ? FL_FULL_BLOCK : FL_FULL_DROP};
	/* FUGUE_SESSION_LOG would override the level each variant needs */
	unsetenv("FUGUE_SESSION_LOG");
	int rc = fl_session_open(&b->s, &o, why, sizeof why);
	if (rc < 0)
		die("cannot open a session: %s (%s)", why, strerror(-rc));
	fl_ring_name(b->shm, sizeof b->shm, NULL, b->id);
}

static void bs_close(struct bsession *b)
{
	fl_session_close(b->s);
	b->s = NULL;
}

/* Every lane's tail has caught up with its head; bounded wait, 0 or -ETIMEDOUT. */
static int bs_wait_drained(struct bsession *b, double max_s)
{
	struct fl_ring r;
	char why[256];
	if (fl_ring_attach(&r, b->shm, why, sizeof why) < 0)
		return -ENOENT;
	uint64_t deadline = fl_bench_mono_ns() + (uint64_t)(max_s * 1e9);
	int rc = -ETIMEDOUT;
	while (fl_bench_mono_ns() < deadline) {
		int busy = 0;
		for (uint32_t l = 0; l < r.lane_count; l++)
			busy |= fl_load_acquire(&r.lanes[l].head) != fl_load_acquire(&r.lanes[l].tail);
		if (!busy) {
			rc = 0;
			break;
		}
		usleep(50);
	}
	fl_ring_detach(&r);
	return rc;
}

static uint64_t bs_dropped(struct bsession *b)
{
	struct fl_stats st;
	fl_session_stats(b->s, &st);
	return st.dropped;
}

struct drainer {
	int logd; /* 1: a fugue-logd process, 0: the built-in consumer */
	pid_t pid;
	struct fl_consumer c;
	char root[4096];
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		die("cannot write %s: %s", path, strerror(errno));
}

static void rm_rf(const char *path)
{
	char cmd[8300];
	if (!path[0] || !strcmp(path, "/"))
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		say("fugue-bench: could not remove %s\n", path);
}

/*
 * Starts the drainer for rings already open: fugue-logd with a private root,
 * config (no rotation, so lines are counted in one file) and shm prefix, or
 * the built-in consumer attached to the given rings.
 */
static void drainer_start(struct drainer *d, struct bsession **ss, int n)
{
	static int count;
	memset(d, 0, sizeof *d);
	if (!opt.logd[0]) {
		const char *names[64];
		for (int i = 0; i < n && i < 64; i++)
			names[i] = ss[i]->shm;
		if (fl_consumer_start(&d->c, names, n) < 0)
			die("the built-in consumer could not attach");
		return;
	}
	d->logd = 1;
	snprintf(d->root, sizeof d->root, "%s/logd%d", opt.tmp, ++count);
	mkdir(d->root, 0700);
	char conf[4200];
	snprintf(conf, sizeof conf, "%s/logging.conf", d->root);
	write_file(conf, "# fugue-bench: one active file per class, so lines are counted in place\n"
			 "max_file_size = 0\nmax_session_size = 0\n");
	char root[4200];
	snprintf(root, sizeof root, "%s/logs", d->root);
	fflush(NULL);
	pid_t parent = getpid();
	d->pid = fork();
	if (d->pid < 0)
		die("fork: %s", strerror(errno));
	if (d->pid == 0) {
		/* its log beside its root: shown when it fails, quiet otherwise */
		char log[4300];
		snprintf(log, sizeof log, "%s/fugue-logd.stderr", d->root);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1); /* not our stdout: a reader of it (check_json.py) waits for its end */
			dup2(fd, 2);
		}
		/* a bench that dies (die() exits at once) takes its drainer with it */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		setenv("FUGUE_SHM_PREFIX", opt.prefix, 1);
		setenv("FUGUE_LOG_DIR", root, 1);
		execl(opt.logd, opt.logd, "--root", root, "--config", conf, "--foreground", (char *)NULL);
		fprintf(stderr, "fugue-bench: cannot run %s: %s\n", opt.logd, strerror(errno));
		_exit(127);
	}
	snprintf(d->root, sizeof d->root, "%s", root);
}

/* Copies fugue-logd's stderr to ours, for a failure report. */
static void drainer_log(struct drainer *d)
{
	char path[4300], buf[4096];
	snprintf(path, sizeof path, "%s/../fugue-logd.stderr", d->root);
	FILE *f = fopen(path, "r");
	size_t n;
	while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, stderr);
	if (f)
		fclose(f);
}

static void drainer_stop(struct drainer *d)
{
	if (!d->logd) {
		if (fl_consumer_stop(&d->c) < 0)
			die("the built-in consumer met a corrupt lane");
		return;
	}
	int st;
	kill(d->pid, SIGTERM);
	for (int i = 0; i < 500 && waitpid(d->pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(d->pid, &st, WNOHANG) == 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &st, 0);
	}
	/*
	 * Its lines are not read after it stops. Left in place until the end,
	 * the gigabytes of the emit and threads scenarios' lines made later
	 * scenarios' drainers slower: e2e.small cost 305-1630 ns per event after
	 * them against 340-360 ns alone (2026-12-03).
	 */
	rm_rf(d->root);
}

static int drainer_alive(struct drainer *d)
{
	int st;
	return !d->logd || waitpid(d->pid, &st, WNOHANG) == 0;
}

/* utime+stime of the drainer in ns, from /proc/<pid>/stat. */
static double drainer_cpu_ns(struct drainer *d)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", d->logd ? (int)d->pid : d->c.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, stt = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
		return 0;
	return (double)(ut + stt) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

/* A field of /proc/<pid>/status in KiB. */
static double proc_status_kib(int pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	double v = -1;
	size_t fl = strlen(field);
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, field, fl) && line[fl] == ':')
			v = strtod(line + fl + 1, NULL);
	if (f)
		fclose(f);
	return v;
}

/* ---- emit cost ------------------------------------------------------------------------ */

struct emit_ctx {
	struct bsession *filt, *full;
	FILE *out;
};

static __attribute__((noinline)) double time_empty(int calls)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++)
		__asm__ __volatile__("" ::"r"(small_payload));
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

static __attribute__((noinline)) double time_filtered(fl_session *s, int calls)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++) {
		fl_emit_transcript(s, 0, 1, small_payload, SMALL);
		__asm__ __volatile__("" ::"r"(small_payload));
	}
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

static __attribute__((noinline)) double time_emit(fl_session *s, const void *data, size_t len, int calls,
						  uint64_t *errs)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++)
		*errs += fl_emit_transcript(s, 0, 1, data, len) <= 0;
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

/* What one event's timestamp costs: the vDSO's fenced read, and a plain TSC read (what it could be). */
static __attribute__((noinline)) double time_clock(int tsc, int calls)
{
	uint64_t t0 = fl_bench_ticks(), acc = 0;
	for (int i = 0; i < calls; i++) {
#ifdef FL_BENCH_TSC
		if (tsc) {
			acc += __rdtsc();
			continue;
		}
#endif
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		acc += (uint64_t)ts.tv_nsec;
	}
	__asm__ __volatile__("" ::"r"(acc));
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

/* The same event through stdio: a timestamp, pid, tid and payload as one text line. */
static __attribute__((noinline)) double time_fprintf(FILE *f, const void *data, size_t len, int calls)
{
	uint32_t pid = (uint32_t)getpid(), tid = (uint32_t)syscall(SYS_gettid);
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(f, "%lld.%09ld %u %u transcript 1 %zu ", (long long)ts.tv_sec, ts.tv_nsec, pid, tid, len);
		fwrite(data, 1, len, f);
		putc('\n', f);
	}
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

static void scen_emit(void)
{
	struct bsession filt, full;
	bs_open(&filt, FL_LEVEL_SPAWNS, 4, 1 << 20, 0);
	bs_open(&full, FL_LEVEL_FULL, 4, 8 << 20, 0);
	struct bsession *ss[] = {&filt, &full};
	struct drainer d;
	drainer_start(&d, ss, 2);
	pid_t dpid = d.logd ? d.pid : d.c.pid;
	char path[4200];
	snprintf(path, sizeof path, "%s/fprintf.log", opt.tmp);
	FILE *out = fopen(path, "w");
	if (!out)
		die("cannot create %s: %s", path, strerror(errno));
	static char obuf[1 << 16];
	setvbuf(out, obuf, _IOFBF, sizeof obuf);

	struct fl_fig *fe = fl_fig("emit.empty", "ns"), *ff = fl_fig("emit.filtered", "ns"),
		      *fs = fl_fig("emit.small", "ns"), *ft = fl_fig("emit.transcript4k", "ns"),
		      *fps = fl_fig("fprintf.small", "ns"), *fpt = fl_fig("fprintf.transcript4k", "ns"),
		      *rf = fl_fig("ratio.filtered", "x"), *fsp = fl_fig("emit.small.percall", "ns"),
		      *crt = fl_fig("clock.realtime", "ns"), *ctsc = fl_fig("clock.tsc", "ns"),
		      *fsq = fl_fig("emit.small.paused", "ns");
	fl_fig_note(fsq, "emit.small with the drainer stopped (SIGSTOP) for the samples: what its work beside the "
			 "session costs the call");
	fl_fig_note(crt, "clock_gettime(CLOCK_REALTIME), what every admitted emit pays today");
	fl_fig_note(ctsc, "a plain rdtsc, for comparison (x86 only)");
	fl_fig_target(rf, '<', 1.1);
	fl_fig_target(fs, '<', 22);
	fl_fig_note(fs, "target on the median; p99.9 target 150 ns is checked on emit.small.percall");
	fl_fig_target(fsp, '<', 150);
	fl_fig_note(fsp, "one call per TSC pair, pair overhead subtracted; target on p99.9");
	fl_fig_note(ff, "per call; emit.empty is the same loop without the call");

	/* warm up: claim lanes, fault the ring pages in */
	uint64_t errs = 0;
	for (int i = 0; i < 3 * 8; i++) {
		time_emit(full.s, chunks[0], CHUNK, 256, &errs);
		bs_wait_drained(&full, 30);
	}
	bs_wait_drained(&full, 30);
	errs = 0; /* the ring counts any loss, warm-up included */
	int rounds = opt.quick ? 10 : 200;
	for (int r = 0; r < rounds; r++) {
		double e_sum = 0, f_sum = 0;
		for (int v0 = 0; v0 < 9; v0++) {
			int v = (v0 + r) % 9; /* rotate the order so drift spreads evenly */
			if (v == 8)
				kill(dpid, SIGSTOP);
			for (int b = 0; b < 16; b++) {
				switch (v) {
				case 0: {
					double x = time_empty(4096);
					fl_fig_add(fe, x);
					e_sum += x;
					break;
				}
				case 1: {
					double x = time_filtered(filt.s, 4096);
					fl_fig_add(ff, x);
					f_sum += x;
					break;
				}
				case 2:
					fl_fig_add(fs, time_emit(full.s, small_payload, SMALL, 64, &errs));
					break;
				case 3:
					fl_fig_add(ft, time_emit(full.s, chunks[b % NCHUNKS], CHUNK, 16, &errs));
					break;
				case 4:
					fl_fig_add(fps, time_fprintf(out, small_payload, SMALL, 64));
					break;
				case 5:
					fl_fig_add(fpt, time_fprintf(out, chunks[b % NCHUNKS], CHUNK, 16));
					break;
				case 6:
					fl_fig_add(crt, time_clock(0, 256));
					break;
				case 7:
#ifdef FL_BENCH_TSC
					fl_fig_add(ctsc, time_clock(1, 256));
#endif
					break;
				case 8:
					fl_fig_add(fsq, time_emit(full.s, small_payload, SMALL, 64, &errs));
					break;
				}
			}
			if (v == 8)
				kill(dpid, SIGCONT);
		}
		fl_fig_add(rf, f_sum / e_sum);
		/* the ring holds a round; empty it before the next so nothing is ever dropped */
		if (bs_wait_drained(&full, 30) < 0)
			die("the drainer did not keep up within 30 s");
		fflush(out);
		rewind(out);
		if (ftruncate(fileno(out), 0) < 0)
			die("ftruncate: %s", strerror(errno));
	}
	/* per call: each call between two TSC reads, minus what the pair costs */
	struct fl_fig over = {0};
	int percall = opt.quick ? 2000 : 200000;
	for (int i = 0; i < 2000; i++) {
		uint64_t t0 = fl_bench_ticks();
		fl_fig_add(&over, fl_bench_ticks_ns(fl_bench_ticks() - t0));
	}
	struct fl_stats_summary os;
	fl_fig_summary(&over, &os);
	free(over.v);
	for (int i = 0; i < percall; i++) {
		uint64_t t0 = fl_bench_ticks();
		errs += fl_emit_transcript(full.s, 0, 1, small_payload, SMALL) <= 0;
		double x = fl_bench_ticks_ns(fl_bench_ticks() - t0) - os.median;
		fl_fig_add(fsp, x);
		if (i % 4096 == 4095 && bs_wait_drained(&full, 30) < 0)
			die("the drainer did not keep up within 30 s");
	}
	bs_wait_drained(&full, 30);
	if (!ctsc->n)
		fl_fig_absent("clock.tsc", "ns", "no x86 TSC");
	struct fl_fig *fd = fl_fig("emit.drops", "events");
	fl_fig_add(fd, (double)(bs_dropped(&full) + errs));
	fl_fig_target(fd, '<', 0);
	fclose(out);
	unlink(path);
	bs_close(&filt);
	bs_close(&full);
	drainer_stop(&d);
	fl_ring_unlink(filt.shm);
	fl_ring_unlink(full.shm);
}

/* ---- threads ----------------------------------------------------------------------------- */

struct thr {
	pthread_t t;
	fl_session *s;
	struct bsession *bs; /* warm-up: push this much through the lane first, draining between */
	uint64_t warm_bytes;
	pthread_barrier_t *bar;
	int batches;
	double *ns;
	uint64_t errs;
	uint64_t start, end;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	for (uint64_t done = 0; done < t->warm_bytes; done += 64 * CHUNK) {
		for (int i = 0; i < 64; i++)
			fl_emit_transcript(t->s, 0, 1, chunks[i % NCHUNKS], CHUNK);
		bs_wait_drained(t->bs, 30);
	}
	pthread_barrier_wait(t->bar);
	t->start = fl_bench_mono_ns();
	for (int b = 0; b < t->batches; b++)
		t->ns[b] = time_emit(t->s, small_payload, SMALL, 64, &t->errs);
	t->end = fl_bench_mono_ns();
	return NULL;
}

static void scen_threads(void)
{
	struct bsession s;
	bs_open(&s, FL_LEVEL_FULL, 8, 4 << 20, 0);
	struct bsession *ss[] = {&s};
	struct drainer d;
	drainer_start(&d, ss, 1);
	static const int counts[] = {1, 2, 4};
	struct fl_fig *lat[3], *thr[3];
	for (int i = 0; i < 3; i++) {
		char k[64];
		snprintf(k, sizeof k, "emit.small.t%d", counts[i]);
		lat[i] = fl_fig(k, "ns");
		snprintf(k, sizeof k, "throughput.small.t%d", counts[i]);
		thr[i] = fl_fig(k, "Mevents/s");
	}
	uint64_t errs = 0;
	int rounds = opt.quick ? 4 : 60, batches = 128;
	/* round -1 warms up: every lane the threads will claim (the lowest free ones) gets its pages faulted in */
	for (int r = -1; r < rounds; r++)
		for (int i0 = r < 0 ? 2 : 0; i0 < 3; i0++) {
			int i = r < 0 ? 2 : (i0 + r) % 3, n = counts[i];
			struct thr t[4];
			pthread_barrier_t bar;
			pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
			double ns[4][128];
			for (int k = 0; k < n; k++) {
				t[k] = (struct thr){.s = s.s,
						    .bs = &s,
						    .bar = &bar,
						    .batches = batches,
						    .ns = ns[k],
						    .warm_bytes = r < 0 ? (5u << 20) : 0};
				if (pthread_create(&t[k].t, NULL, thr_main, &t[k]))
					die("pthread_create failed");
			}
			pthread_barrier_wait(&bar);
			uint64_t start = UINT64_MAX, end = 0;
			for (int k = 0; k < n; k++) {
				pthread_join(t[k].t, NULL);
				end = t[k].end > end ? t[k].end : end;
				start = t[k].start < start ? t[k].start : start;
				errs += t[k].errs;
				for (int b = 0; b < batches && r >= 0; b++)
					fl_fig_add(lat[i], ns[k][b]);
			}
			pthread_barrier_destroy(&bar);
			if (r >= 0)
				fl_fig_add(thr[i], (double)n * batches * 64 / (double)(end - start) * 1e3);
			if (bs_wait_drained(&s, 30) < 0)
				die("the drainer did not keep up within 30 s");
		}
	struct fl_fig *fd = fl_fig("emit.threads.drops", "events");
	fl_fig_add(fd, (double)(bs_dropped(&s) + errs));
	fl_fig_target(fd, '<', 0);
	bs_close(&s);
	drainer_stop(&d);
	fl_ring_unlink(s.shm);
}

/* ---- no-slowdown ratio ---------------------------------------------------------------------- */

/*
 * What a session does with each 4 KiB of output before it could log it: copy
 * it out of the pty buffer, parse it (lines, escape sequences), checksum it.
 * About 1-2 us on a current core. LOG selects the variant at compile time:
 * 0 no logging call at all, 1 one transcript call per chunk.
 */
static uint64_t sink;

/* The chunk copied to dst, then its lines and escapes counted and its bytes hashed, into sink. */
static inline __attribute__((always_inline)) void copy_and_parse(char *dst, const char *src)
{
	memcpy(dst, src, CHUNK);
	__asm__ __volatile__("" ::"r"(dst) : "memory");
	uint64_t lines = 0, esc = 0;
	for (const char *p = dst, *e = dst + CHUNK; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		lines++;
	for (const char *p = dst, *e = dst + CHUNK; (p = memchr(p, '\x1b', (size_t)(e - p))); p++)
		esc++;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < CHUNK; i += 8) {
		uint64_t w;
		memcpy(&w, dst + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	sink += h + lines + esc;
}

static inline __attribute__((always_inline)) void work_chunk(fl_session *s, int log, const char *src, char *dst)
{
	copy_and_parse(dst, src);
	if (log)
		fl_emit_transcript(s, 0, 1, dst, CHUNK);
}

static __attribute__((noinline)) double session_loop_plain(int n)
{
	static char dst[CHUNK];
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < n; i++)
		work_chunk(NULL, 0, chunks[i % NCHUNKS], dst);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0);
}

static __attribute__((noinline)) double session_loop_logged(fl_session *s, int n)
{
	static char dst[CHUNK];
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < n; i++)
		work_chunk(s, 1, chunks[i % NCHUNKS], dst);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0);
}

/*
 * The floor of the no-slowdown figures on this machine: the same work, with
 * its chunks ending up in a 1 MiB shared mapping that a forked reader reads
 * whole as soon as each is published, as fugue-logd reads a lane. The
 * mapping's lines then move between the cores, which no logging call that
 * hands bytes to another process avoids; a private buffer (session_loop_window)
 * keeps them in one core's cache. copy: the work on an L1-hot buffer, then a
 * copy into the window (what fl_emit_transcript does); else the work in place
 * (zero-copy capture).
 */
#define WIN_SIZE (1u << 20)
#define WIN_STEP (CHUNK + 56) /* a record's data, header and padding */
#define WIN_WRAP (WIN_SIZE - 2 * CHUNK)
#define WIN_SLOTS 240u /* unread chunks at most: fewer than WIN_WRAP / WIN_STEP, so none is overwritten */

struct shwin {
	_Alignas(64) _Atomic uint64_t head; /* chunks published */
	_Alignas(64) _Atomic uint64_t tail; /* chunks read */
	_Atomic int stop;
	_Alignas(64) char data[WIN_SIZE];
};

struct shwin_prod {
	struct shwin *w;
	pid_t pid;
	size_t off;
	uint64_t head, tail; /* the producer's count and its cached copy of the reader's */
};

/* The forked reader: every published chunk read whole, then the tail moved; naps when idle for a while. */
static void shwin_read(struct shwin *w)
{
	uint64_t t = 0, sum = 0;
	size_t off = 0;
	for (unsigned idle = 0;;) {
		uint64_t h = atomic_load_explicit(&w->head, memory_order_acquire);
		if (t == h) {
			if (atomic_load_explicit(&w->stop, memory_order_acquire))
				break;
			if (++idle < 200) { /* about 10-30 us: a chunk of work is 2 us */
				__builtin_ia32_pause();
			} else {
				usleep(50); /* do not take the CPU from fugue-logd in the other variants */
				idle = 0;
			}
			continue;
		}
		idle = 0;
		for (; t != h; t++) {
			for (size_t i = 0; i < CHUNK; i += 8) {
				uint64_t v;
				memcpy(&v, w->data + off + i, 8);
				sum += v;
			}
			off = (off + WIN_STEP) % WIN_WRAP;
			atomic_store_explicit(&w->tail, t + 1, memory_order_release);
		}
	}
	__asm__ __volatile__("" ::"r"(sum));
	_exit(0);
}

static void shwin_open(struct shwin_prod *p)
{
	memset(p, 0, sizeof *p);
	p->w = mmap(NULL, sizeof *p->w, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->w == MAP_FAILED)
		die("shared window: mmap: %s", strerror(errno));
	memset(p->w, 0, sizeof *p->w);
	fflush(NULL);
	if ((p->pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a bench that dies takes its reader along */
		shwin_read(p->w);
	}
}

/* Untimed, before a round: the reader has read everything, as the ring is emptied before a logged round. */
static void shwin_wait_read(struct shwin_prod *p)
{
	while (atomic_load_explicit(&p->w->tail, memory_order_acquire) != p->head)
		usleep(20);
	p->tail = p->head;
}

static void shwin_close(struct shwin_prod *p)
{
	atomic_store_explicit(&p->w->stop, 1, memory_order_release);
	int st = 0;
	waitpid(p->pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("shared window: the reader failed (status %#x)", st);
	munmap(p->w, sizeof *p->w);
}

static __attribute__((noinline)) double session_loop_shared(struct shwin_prod *p, int n, int copy)
{
	static char dst[CHUNK];
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < n; i++) {
		while (p->head - p->tail >= WIN_SLOTS)
			p->tail = atomic_load_explicit(&p->w->tail, memory_order_acquire);
		char *at = p->w->data + p->off;
		if (copy) {
			copy_and_parse(dst, chunks[i % NCHUNKS]);
			memcpy(at, dst, CHUNK);
		} else {
			copy_and_parse(at, chunks[i % NCHUNKS]);
		}
		p->off = (p->off + WIN_STEP) % WIN_WRAP;
		atomic_store_explicit(&p->w->head, ++p->head, memory_order_release);
	}
	return fl_bench_ticks_ns(fl_bench_ticks() - t0);
}

static void scen_ratio(void)
{
	struct bsession sp, fu;
	bs_open(&sp, FL_LEVEL_SPAWNS, 4, 1 << 20, 0);
	/* the default geometry (4 lanes of 1 MiB): a round of 128 chunks fits, and a lane fits in L2 */
	bs_open(&fu, FL_LEVEL_FULL, 0, 0, 0);
	struct bsession *ss[] = {&sp, &fu};
	struct drainer d;
	drainer_start(&d, ss, 2);
	struct fl_fig *rs = fl_fig("ratio.spawns", "x"), *rfu = fl_fig("ratio.full", "x"),
		      *rp = fl_fig("ratio.full.paused", "x"), *wk = fl_fig("ratio.work", "ns/chunk"),
		      *rfl = fl_fig("ratio.full.floor", "x");
	fl_fig_note(rp, "c/a with the drainer stopped (SIGSTOP) while the round runs: the emit cost alone");
	fl_fig_note(rfl, "f/a: a's work, then each chunk copied into a 1 MiB shared mapping that another process "
			 "reads as it is published; no logging call");
	struct shwin_prod win;
	shwin_open(&win);
	fl_fig_target(rs, '<', 1.01);
	fl_fig_target(rfu, '<', 1.05);
	fl_fig_note(rs, "b/a per round of 128 chunks; a = no logging call compiled in");
	fl_fig_note(rfu, "c/a per round of 128 chunks, default ring, drainer running, ring emptied between rounds");
	int n = 128, rounds = opt.quick ? 10 : 300;
	/* warm up: claim the lane and fault in all of it, so rounds measure the steady state */
	for (int i = 0; i < 3 * 8; i++) {
		session_loop_logged(fu.s, n);
		bs_wait_drained(&fu, 30);
	}
	pid_t dpid = d.logd ? d.pid : d.c.pid;
	for (int r = 0; r < rounds; r++) {
		double t[5];
		for (int v0 = 0; v0 < 5; v0++) {
			int v = (v0 + r) % 5;
			/* each round at full must fit the lane on its own: start it empty (untimed) */
			if ((v == 2 || v == 3) && bs_wait_drained(&fu, 30) < 0)
				die("the drainer did not keep up within 30 s");
			if (v == 3)
				kill(dpid, SIGSTOP);
			if (v == 4)
				shwin_wait_read(&win);
			t[v] = v == 0	? session_loop_plain(n)
			       : v == 4 ? session_loop_shared(&win, n, 1)
					: session_loop_logged(v == 1 ? sp.s : fu.s, n);
			if (v == 3)
				kill(dpid, SIGCONT);
		}
		fl_fig_add(rs, t[1] / t[0]);
		fl_fig_add(rfu, t[2] / t[0]);
		fl_fig_add(rp, t[3] / t[0]);
		fl_fig_add(rfl, t[4] / t[0]);
		fl_fig_add(wk, t[0] / n);
		if (bs_wait_drained(&fu, 30) < 0)
			die("the drainer did not keep up within 30 s");
	}
	struct fl_fig *fd = fl_fig("ratio.drops", "events");
	fl_fig_add(fd, (double)bs_dropped(&fu));
	fl_fig_target(fd, '<', 0);
	shwin_close(&win);
	bs_close(&sp);
	bs_close(&fu);
	drainer_stop(&d);
	fl_ring_unlink(sp.shm);
	fl_ring_unlink(fu.shm);
}

/* ---- end to end ------------------------------------------------------------------------------ */

/* Counts complete lines holding "transcript" in a growing file, reading only what is new. */
struct line_counter {
	char path[4300];
	uint64_t off, lines, bytes;
	char *buf;
};

/* Writes total bytes of buf into a new file at path as the sink does (FL_SINK_WRITE at a time, blocks
 * FL_SINK_PREALLOC ahead), removes it; GB/s. */
static double lim_pagecache_gbs(const char *path, const char *buf, size_t total)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create %s: %s", path, strerror(errno));
	uint64_t t0 = fl_bench_mono_ns(), ahead = 0;
	for (size_t done = 0; done < total; done += FL_SINK_WRITE) { /* the drainer's write size and allocation */
		(void)fl_sink_alloc_ahead(fd, done, FL_SINK_WRITE, &ahead); /* without it, the write alone */
		if (write(fd, buf, FL_SINK_WRITE) != FL_SINK_WRITE)
			die("write to %s: %s", path, strerror(errno));
	}
	double secs = (double)(fl_bench_mono_ns() - t0) / 1e9;
	close(fd);
	unlink(path);
	return (double)total / secs / 1e9;
}

/*
 * Writes and removes bytes of scratch file in the bench's scratch dir, so the
 * page cache a round is about to fill comes from memory this guest touched a
 * moment ago. On a VM with free page reporting (Firecracker's guests boot with
 * page_reporting.page_reporting_order=11), memory freed for about two seconds
 * goes back to the host, and the next write into the page cache faults it in
 * again: 700 MiB written after 6 s idle took 0.43-0.51 GB/s, written again at
 * once 3.4-4.4 GB/s (2026-12-03, AMD guest). The fault time is the writer's
 * system time, so a round's drainer CPU measured that host, not fugue-logd.
 * limit.pagecache.reported measures the host's share on its own.
 */
static void warm_page_cache(uint64_t bytes)
{
	static char buf[FL_SINK_WRITE];
	char path[4200];
	snprintf(path, sizeof path, "%s/warm.page-cache", opt.tmp);
	lim_pagecache_gbs(path, buf, bytes);
}

/* One blocking session at full, a fugue-logd draining it, and a counter of the lines it writes. */
static void lossless_open(struct bsession *s, struct drainer *d, struct line_counter *lc, uint32_t lanes,
			  uint64_t lane_size)
{
	bs_open(s, FL_LEVEL_FULL, lanes, lane_size, 1);
	struct bsession *ss[] = {s};
	drainer_start(d, ss, 1);
	memset(lc, 0, sizeof *lc);
	if (!(lc->buf = malloc(1 << 20)))
		die("out of memory");
	snprintf(lc->path, sizeof lc->path, "%s/%s/system.jsonl", d->root, s->id);
}

static void lc_poll(struct line_counter *lc)
{
	int fd = open(lc->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = pread(fd, lc->buf, 1 << 20, (off_t)lc->off);
		if (n <= 0)
			break;
		char *end = memrchr(lc->buf, '\n', (size_t)n);
		if (!end)
			break;
		for (char *p = lc->buf, *nl; p <= end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end + 1 - p));
			if (memmem(p, (size_t)(nl - p), "\"transcript\"", 12))
				lc->lines++;
		}
		lc->off += (uint64_t)(end + 1 - lc->buf);
	}
	lc->bytes = lc->off;
	close(fd);
}

/*
 * One session, drainer and file per round, removed after it: a round writes
 * about 0.7 GB of lines, and with one file for all rounds the last rounds of a
 * full run (after the emit and threads scenarios had written theirs) cost the
 * drainer 1.2-2.4 us of CPU per small event against 0.3-0.4 us for the first,
 * in this code and in the code before it alike. A user's file rotates at 10 MiB.
 */
static void e2e_run(const char *key, int small, long n, int rounds)
{
	char k[96];
	struct fl_fig *f = fl_fig(key, small ? "events/s" : "MB/s");
	snprintf(k, sizeof k, "%s.drainer_cpu", key);
	struct fl_fig *cpu = fl_fig(k, "ns/event");
	snprintf(k, sizeof k, "%s.disk", key);
	struct fl_fig *disk = fl_fig(k, "MB/s");
	snprintf(k, sizeof k, "%s.drops", key);
	struct fl_fig *drops = fl_fig(k, "events");
	fl_fig_target(f, '>', small ? 4e6 : 1500);
	if (small)
		fl_fig_target(cpu, '<', 200);
	fl_fig_target(drops, '<', 0);
	/* timed until the ring is drained (see below), then counted */
	fl_fig_note(f, small ? "100-byte transcript events, blocking mode, timed to the drained ring, counted on disk"
			     : "4 KiB transcript chunks in, blocking mode, timed to the drained ring, counted on disk");
	uint64_t lost = 0;
	for (int r = 0; r < rounds; r++) {
		struct bsession s;
		struct drainer d;
		struct line_counter lc;
		lossless_open(&s, &d, &lc, 4, 4 << 20);
		/* about what the round writes, and a quarter more: a 100-byte event is a 340-byte line */
		warm_page_cache((uint64_t)n * (small ? 340 : 5000) / 4 * 5);
		double c0 = drainer_cpu_ns(&d);
		uint64_t t0 = fl_bench_mono_ns();
		for (long i = 0; i < n; i++) {
			int64_t rc = small ? fl_emit_transcript(s.s, 0, 1, small_payload, SMALL)
					   : fl_emit_transcript(s.s, 0, 1, chunks[i % NCHUNKS], CHUNK);
			if (rc <= 0)
				die("%s: emit returned %lld in blocking mode", key, (long long)rc);
		}
		/*
		 * The clock stops when every lane's tail has caught up with its head:
		 * fugue-logd moves a tail only after that batch's lines are written
		 * and checkpointed. The lines are counted after that, untimed: read
		 * inside the clock, the 0.7 GB of a small-event round cost the bench
		 * 0.2-0.26 s of a 0.5-0.8 s round (2026-12-03, Intel guest).
		 */
		if (bs_wait_drained(&s, 600) < 0)
			drainer_log(&d), die("%s: the ring was not drained within 600 s", key);
		double secs = (double)(fl_bench_mono_ns() - t0) / 1e9, used = drainer_cpu_ns(&d) - c0;
		uint64_t want = (uint64_t)n, deadline = fl_bench_mono_ns() + 600 * 1000000000ull;
		while (lc_poll(&lc), lc.lines < want) {
			if (!drainer_alive(&d) || fl_bench_mono_ns() > deadline)
				drainer_log(&d), die("%s: %" PRIu64 " of %" PRIu64 " lines reached %s", key, lc.lines,
						     want, lc.path);
			usleep(200);
		}
		if (lc.lines != want)
			die("%s: %" PRIu64 " lines on disk, %" PRIu64 " emitted", key, lc.lines, want);
		fl_fig_add(f, small ? (double)n / secs : (double)n * CHUNK / secs / 1e6);
		fl_fig_add(cpu, used / (double)n);
		fl_fig_add(disk, (double)lc.bytes / secs / 1e6);
		lost += bs_dropped(&s);
		bs_close(&s);
		drainer_stop(&d);
		fl_ring_unlink(s.shm);
		free(lc.buf);
	}
	fl_fig_add(drops, (double)lost);
}

static void scen_e2e(void)
{
	if (!opt.logd[0]) {
		const char *why = "fugue-logd not found (build drainer/ or pass --logd PATH)";
		fl_fig_absent("e2e.small", "events/s", "%s", why);
		fl_fig_absent("e2e.transcript4k", "MB/s", "%s", why);
		return;
	}
	if (!opt.only_4k || opt.only_small)
		e2e_run("e2e.small", 1, opt.quick ? 20000 : 2000000, opt.quick ? 1 : 5);
	if (!opt.only_small || opt.only_4k)
		e2e_run("e2e.transcript4k", 0, opt.quick ? 2000 : 100000, opt.quick ? 1 : 5);
}

/* ---- zero-copy ratio ------------------------------------------------------------------------ */

/*
 * The same session work as work_chunk, but the chunk is produced straight into
 * a reserved transcript record (the memcpy standing for read(2) from the pty)
 * and parsed there; commit publishes it. No copy into the ring at all.
 */
static inline __attribute__((always_inline)) void work_chunk_captured(fl_session *s, const char *src)
{
	static char spare[CHUNK];
	struct fl_capture c;
	int got = fl_capture_transcript(s, 0, 1, CHUNK, &c) > 0 && c.cap >= CHUNK;
	char *dst = got ? c.data : spare; /* below full or lane full: the session still does its work */
	copy_and_parse(dst, src);
	if (got)
		fl_capture_commit(s, &c, CHUNK);
}

static __attribute__((noinline)) double session_loop_captured(fl_session *s, int n)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < n; i++)
		work_chunk_captured(s, chunks[i % NCHUNKS]);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0);
}

/*
 * The plain work, no logging call, on a chunk that moves through a 1 MiB
 * buffer (8-aligned) as the ring's records do: what working where the bytes
 * were read costs by itself, beside a loop that reuses one L1-hot buffer.
 */
static __attribute__((noinline)) double session_loop_window(int n)
{
	static char win[WIN_SIZE] __attribute__((aligned(64)));
	static size_t off;
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < n; i++) {
		work_chunk(NULL, 0, chunks[i % NCHUNKS], win + off);
		off = (off + WIN_STEP) % WIN_WRAP;
	}
	return fl_bench_ticks_ns(fl_bench_ticks() - t0);
}

static void scen_zerocopy(void)
{
	struct bsession fu;
	bs_open(&fu, FL_LEVEL_FULL, 0, 0, 0);
	struct bsession *ss[] = {&fu};
	struct drainer d;
	drainer_start(&d, ss, 1);
	struct fl_fig *rz = fl_fig("ratio.full.zerocopy", "x"), *rw = fl_fig("ratio.zerocopy.window", "x");
	fl_fig_target(rz, '<', 1.02);
	fl_fig_note(rz, "z/a per round of 128 chunks, each read into its reserved record; a = no logging call");
	fl_fig_note(rw, "w/a: a's work, no logging call, on chunks moving through 1 MiB as records do");
	struct fl_fig *rzf = fl_fig("ratio.zerocopy.floor", "x");
	fl_fig_note(rzf, "f/a: a's work done in place in a 1 MiB shared mapping that another process reads as each "
			 "chunk is published; no logging call");
	struct shwin_prod win;
	shwin_open(&win);
	int n = 128, rounds = opt.quick ? 10 : 300;
	for (int i = 0; i < 3 * 8; i++) {
		session_loop_captured(fu.s, n);
		bs_wait_drained(&fu, 30);
	}
	for (int r = 0; r < rounds; r++) {
		double t[4];
		for (int v0 = 0; v0 < 4; v0++) {
			int v = (v0 + r) % 4;
			if (v == 1 && bs_wait_drained(&fu, 30) < 0)
				die("the drainer did not keep up within 30 s");
			if (v == 3)
				shwin_wait_read(&win);
			t[v] = v == 0	? session_loop_plain(n)
			       : v == 1 ? session_loop_captured(fu.s, n)
			       : v == 2 ? session_loop_window(n)
					: session_loop_shared(&win, n, 0);
		}
		fl_fig_add(rz, t[1] / t[0]);
		fl_fig_add(rw, t[2] / t[0]);
		fl_fig_add(rzf, t[3] / t[0]);
	}
	shwin_close(&win);
	if (bs_wait_drained(&fu, 30) < 0)
		die("the drainer did not keep up within 30 s");
	struct fl_fig *fd = fl_fig("ratio.zerocopy.drops", "events");
	fl_fig_add(fd, (double)bs_dropped(&fu));
	fl_fig_target(fd, '<', 0);
	bs_close(&fu);
	drainer_stop(&d);
	fl_ring_unlink(fu.shm);
}

/* ---- bare limits of this machine, and every target as a ratio to its limit ------------------ */

/*
 * What the admitted call could cost here at best, with nothing of ours in it:
 * the level check, the timestamp read the way the library reads it, a 16-byte
 * record header, a 100-byte copy and a release store of the head. Once into a
 * private buffer (one core, nobody reads), once into a shared anonymous
 * mapping that a forked consumer reads in batches (the cache lines then move
 * between cores, the way they do under fugue-logd). Page-cache bandwidth is
 * the ceiling for what the drainer writes.
 */
#define LIM_DATA (1u << 20) /* one lane of the default geometry */
#define LIM_REC 120u	    /* 16-byte header + 100 bytes, 8-byte aligned */
#define LIM_BATCH (32u << 10)

struct lim_ctl {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) _Atomic int level;
	_Atomic int stop;
	_Atomic int error;
	_Atomic uint64_t records;
	_Alignas(64) uint8_t data[LIM_DATA];
};

struct lim_prod {
	struct lim_ctl *c;
	uint64_t head, tail; /* the producer's head and its cached copy of the consumer's tail */
	int tsc, shared;
};

static inline __attribute__((always_inline)) void lim_put(struct lim_prod *p, const char *payload)
{
	if (atomic_load_explicit(&p->c->level, memory_order_relaxed) < FL_LEVEL_FULL)
		return;
	uint64_t ts;
	if (p->tsc) {
		ts = fl_rdtsc();
	} else {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		ts = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	}
	uint64_t h = p->head, off = h & (LIM_DATA - 1), pad = off + LIM_REC > LIM_DATA ? LIM_DATA - off : 0;
	while (p->shared && h + pad + LIM_REC - p->tail > LIM_DATA)
		p->tail = atomic_load_explicit(&p->c->tail, memory_order_acquire);
	if (pad) { /* a record never wraps: a zero-length header says "skip to the end" */
		memset(p->c->data + off, 0, 8);
		h += pad;
		off = 0;
	}
	uint8_t *d = p->c->data + off;
	uint32_t hdr[2] = {SMALL, 1};
	memcpy(d, hdr, 8);
	memcpy(d + 8, &ts, 8);
	memcpy(d + 16, payload, SMALL);
	p->head = h + LIM_REC;
	atomic_store_explicit(&p->c->head, p->head, memory_order_release);
}

static __attribute__((noinline)) double lim_time(struct lim_prod *p, int calls)
{
	uint64_t t0 = fl_bench_ticks();
	for (int i = 0; i < calls; i++)
		lim_put(p, small_payload);
	return fl_bench_ticks_ns(fl_bench_ticks() - t0) / calls;
}

/* The forked consumer: waits for a batch, reads every record of it whole, then moves the tail once. */
static void lim_consume(struct lim_ctl *c)
{
	uint64_t t = 0, sum = 0;
	for (;;) {
		uint64_t h = atomic_load_explicit(&c->head, memory_order_acquire);
		int stop = atomic_load_explicit(&c->stop, memory_order_acquire);
		if (h - t < LIM_BATCH && !(stop && h != t)) {
			if (stop)
				break;
			__builtin_ia32_pause();
			continue;
		}
		while (t != h) {
			uint64_t off = t & (LIM_DATA - 1);
			uint32_t len;
			memcpy(&len, c->data + off, 4);
			if (!len) {
				t += LIM_DATA - off;
				continue;
			}
			if (len != SMALL) {
				atomic_store(&c->error, 1);
				_exit(1);
			}
			for (uint32_t i = 0; i < LIM_REC; i += 8) {
				uint64_t w;
				memcpy(&w, c->data + off + i, 8);
				sum += w;
			}
			t += LIM_REC;
			atomic_fetch_add_explicit(&c->records, 1, memory_order_relaxed);
		}
		atomic_store_explicit(&c->tail, t, memory_order_release);
	}
	__asm__ __volatile__("" ::"r"(sum));
	_exit(0);
}

/* A loop of register arithmetic: no memory traffic, so all it takes from another CPU is a shared core. */
static __attribute__((noreturn)) void lim_spin(void)
{
	uint64_t x = 1;
	for (;;)
		__asm__ __volatile__("imul %0, %0\n\tadd $1, %0" : "+r"(x));
}

/*
 * Whether this CPU shares its core with another: limit.emit_core and the
 * ratio scenario's plain session work, each timed with a pure arithmetic loop
 * pinned to another CPU running and stopped (SIGSTOP), alternating. Separate
 * cores: both ratios are 1. Hyperthreads of one core (or vCPUs a hypervisor
 * runs so): both rise, and so does every figure measured while fugue-logd
 * works beside the session.
 */
static void lim_sibling(struct lim_prod *pa, int rounds)
{
	const char *kc = "limit.emit_core.sibling_busy", *kw = "limit.work.sibling_busy";
	int here = sched_getcpu(), other = -1;
	cpu_set_t mine, one;
	if (here < 0 || sched_getaffinity(0, sizeof mine, &mine) < 0) {
		fl_fig_absent(kc, "ns", "sched_getcpu: %s", strerror(errno));
		fl_fig_absent(kw, "x", "sched_getcpu: %s", strerror(errno));
		return;
	}
	for (int c = 0; c < CPU_SETSIZE && other < 0; c++)
		if (c != here && CPU_ISSET(c, &mine))
			other = c;
	if (other < 0) {
		fl_fig_absent(kc, "ns", "one CPU only: no other CPU to load");
		fl_fig_absent(kw, "x", "one CPU only: no other CPU to load");
		return;
	}
	CPU_ZERO(&one);
	CPU_SET(here, &one);
	sched_setaffinity(0, sizeof one, &one); /* stay where the spinner is not */
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		CPU_ZERO(&one);
		CPU_SET(other, &one);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (sched_setaffinity(0, sizeof one, &one) < 0)
			_exit(1);
		lim_spin();
	}
	kill(pid, SIGSTOP);
	struct fl_fig *sib = fl_fig(kc, "ns"), *wk = fl_fig(kw, "x");
	fl_fig_note(sib, "limit.emit_core while another CPU runs register arithmetic: above limit.emit_core "
			 "when the two CPUs share a core");
	fl_fig_note(wk, "the ratio scenario's plain work (128 chunks) with that loop running / stopped, per round");
	for (int r = 0; r < rounds; r++) {
		double t[2];
		for (int v0 = 0; v0 < 2; v0++) {
			int busy = (v0 + r) % 2;
			kill(pid, busy ? SIGCONT : SIGSTOP);
			usleep(2000); /* the spinner is running, or stopped */
			t[busy] = session_loop_plain(128);
			for (int b = 0; busy && b < 16; b++)
				fl_fig_add(sib, lim_time(pa, 64));
		}
		fl_fig_add(wk, t[1] / t[0]);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	sched_setaffinity(0, sizeof mine, &mine);
}

static void scen_limits(void)
{
	struct fl_fig *core = fl_fig("limit.emit_core", "ns"), *ring = fl_fig("limit.ring_batched", "ns"),
		      *pc = fl_fig("limit.pagecache", "GB/s"), *pcr = fl_fig("limit.pagecache.reported", "GB/s");
	fl_fig_note(pcr, "limit.pagecache for 1 GiB, 6 s after the last write: on a VM with free page reporting the "
			 "host has taken freed memory back by then, and the write faults it in again (the e2e rounds "
			 "warm the page cache first, warm_page_cache)");
	fl_fig_note(core, "level check + timestamp as the library reads it + 16 B header + 100 B copy + release "
			  "store, private buffer, one core");
	fl_fig_note(ring, "the same into a shared anonymous mapping, a forked consumer reading in 32 KiB batches");
	fl_fig_note(pc,
		    "write(2) of FL_SINK_WRITE (256 KiB) buffers, the drainer's write size, into a fresh file in the "
		    "bench's scratch dir");
	struct lim_ctl *own = aligned_alloc(64, sizeof *own);
	struct lim_ctl *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!own || sh == MAP_FAILED)
		die("limits: out of memory");
	memset(own, 0, sizeof *own);
	atomic_store(&own->level, FL_LEVEL_FULL);
	atomic_store(&sh->level, FL_LEVEL_FULL);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		lim_consume(sh);
	}
	int tsc = fl_tsc_usable() > 0;
	struct lim_prod pa = {.c = own, .tsc = tsc}, pb = {.c = sh, .tsc = tsc, .shared = 1};
	for (int i = 0; i < 4 * (int)(LIM_DATA / LIM_REC); i++) { /* fault both in, start the consumer's loop */
		lim_put(&pa, small_payload);
		lim_put(&pb, small_payload);
	}
	int rounds = opt.quick ? 10 : 200;
	for (int r = 0; r < rounds; r++)
		for (int v0 = 0; v0 < 2; v0++)
			for (int b = 0; b < 16; b++) {
				if ((v0 + r) % 2)
					fl_fig_add(ring, lim_time(&pb, 64));
				else
					fl_fig_add(core, lim_time(&pa, 64));
			}
	atomic_store_explicit(&sh->stop, 1, memory_order_release);
	lim_sibling(&pa, rounds);
	int st = 0;
	waitpid(pid, &st, 0);
	uint64_t got = atomic_load(&sh->records), want = pb.head;
	if (!WIFEXITED(st) || WEXITSTATUS(st) || atomic_load(&sh->error))
		die("limits: the ring consumer failed (status %d)", st);
	if (got * LIM_REC > want)
		die("limits: the ring consumer read %" PRIu64 " records of at most %" PRIu64, got, want / LIM_REC);
	munmap(sh, sizeof *sh);
	free(own);

	char path[4200], *buf = malloc(FL_SINK_WRITE);
	if (!buf)
		die("limits: out of memory");
	for (size_t i = 0; i < FL_SINK_WRITE / CHUNK; i++)
		memcpy(buf + i * CHUNK, chunks[i % NCHUNKS], CHUNK);
	snprintf(path, sizeof path, "%s/limits.pagecache", opt.tmp);
	size_t total = opt.quick ? (16u << 20) : (256u << 20);
	lim_pagecache_gbs(path, buf, total); /* warm-up: the allocator's and the file system's first touches */
	for (int r = 0; r < (opt.quick ? 3 : 9); r++)
		fl_fig_add(pc, lim_pagecache_gbs(path, buf, total));
	for (int r = 0; r < (opt.quick ? 1 : 3); r++) {
		sleep(6);
		fl_fig_add(pcr, lim_pagecache_gbs(path, buf, opt.quick ? total : 4 * total));
	}
	free(buf);
}

/* The median of a measured figure, or NAN when it is absent or was not run. */
static double fig_median(const char *key)
{
	for (size_t i = 0; i < fl_fig_count(); i++) {
		struct fl_fig *f = fl_fig_at(i);
		if (!strcmp(f->key, key) && f->n && !f->absent[0]) {
			struct fl_stats_summary s;
			fl_fig_summary(f, &s);
			return s.median;
		}
	}
	return NAN;
}

/* key = num / den (den scaled), with a target; absent, saying what is missing, when one was not measured. */
static void limit_ratio(const char *key, const char *num, const char *den, double scale, int op, double target,
			const char *note)
{
	double a = fig_median(num), b = fig_median(den) * scale;
	if (isnan(a) || isnan(b) || b <= 0) {
		fl_fig_absent(key, "x", "needs %s and %s measured in the same run", num, den);
		return;
	}
	struct fl_fig *f = fl_fig(key, "x");
	fl_fig_add(f, a / b);
	if (op) /* 0: a figure to read beside its target's, no verdict of its own */
		fl_fig_target(f, op, target);
	fl_fig_note(f, "%s", note);
}

/*
 * After every scenario: the ratios of issue 15's targets to this machine's
 * limits. Their targets are the absolute targets divided by the limits
 * measured when they were set (88a9123: 14.5 ns one core, 26 ns across
 * processes in batches, 2.3 GB/s into the page cache).
 */
static void limits_finish(void)
{
	/* measured by fugue-bench-lttng, whose samples carry no target */
	for (size_t i = 0; i < fl_fig_count(); i++)
		if (!strcmp(fl_fig_at(i)->key, "lttng.speedup.small") && !fl_fig_at(i)->absent[0])
			fl_fig_target(fl_fig_at(i), '>', 5);
	/* beside ratio.full and ratio.full.zerocopy, when their scenario ran */
	if (!isnan(fig_median("ratio.full.floor")))
		limit_ratio("ratio.full.vs_floor", "ratio.full", "ratio.full.floor", 1, 0, 0,
			    "ratio.full / ratio.full.floor, medians: the call's cost over the cross-core floor");
	if (!isnan(fig_median("ratio.zerocopy.floor")))
		limit_ratio(
		    "ratio.full.zerocopy.vs_floor", "ratio.full.zerocopy", "ratio.zerocopy.floor", 1, 0, 0,
		    "ratio.full.zerocopy / ratio.zerocopy.floor, medians: capture's cost over the cross-core floor");
	if (isnan(fig_median("limit.emit_core")))
		return;
	limit_ratio("emit.small.vs_limit", "emit.small", "limit.emit_core", 1, '<', 1.5,
		    "emit.small / limit.emit_core, medians; 22 ns / 14.5 ns when the target was set");
	limit_ratio("emit.small.vs_ring", "emit.small", "limit.ring_batched", 1, '<', 0.85,
		    "emit.small / limit.ring_batched, medians; 22 ns / 26 ns when the target was set");
	limit_ratio("e2e.small.vs_pagecache", "e2e.small.disk", "limit.pagecache", 1000, '>', 0.58,
		    "JSON bytes on disk per second / page-cache bandwidth; 4 M events/s x 335 B / 2.3 GB/s");
	limit_ratio("e2e.transcript4k.vs_pagecache", "e2e.transcript4k", "limit.pagecache", 1000, '>', 0.65,
		    "transcript bytes in per second / page-cache bandwidth; 1.5 GB/s / 2.3 GB/s");
}

/* A field of /proc/<pid>/smaps_rollup in KiB, summed over the names given; -1 when unreadable. */
static double smaps_kib(int pid, const char *const *fields, int n)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	double v = 0;
	while (fgets(line, sizeof line, f))
		for (int i = 0; i < n; i++) {
			size_t l = strlen(fields[i]);
			if (!strncmp(line, fields[i], l) && line[l] == ':')
				v += strtod(line + l + 1, NULL);
		}
	fclose(f);
	return v;
}

/*
 * n live sessions of the default geometry under one private fugue-logd: its
 * own memory once it has attached every ring and drained one event of each.
 * Every ring is allocated at open (n x 4 MiB of /dev/shm for the duration).
 */
static void mem_sessions(int n)
{
	char key[64], pkey[64];
	snprintf(key, sizeof key, "mem.drainer_anon.s%d", n);
	snprintf(pkey, sizeof pkey, "mem.drainer_private.s%d", n);
	if (!opt.logd[0]) {
		fl_fig_absent(key, "MiB", "fugue-logd not found");
		return;
	}
	/* the rings' fds are closed once mapped, but the drainer holds one per ring while attaching */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct bsession *s = calloc((size_t)n, sizeof *s), **ss = calloc((size_t)n, sizeof *ss);
	if (!s || !ss)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		bs_open(&s[i], FL_LEVEL_FULL, 0, 0, 1);
		ss[i] = &s[i];
	}
	struct drainer d;
	drainer_start(&d, ss, n);
	for (int i = 0; i < n; i++)
		fl_emit_transcript(s[i].s, 0, 1, small_payload, SMALL);
	for (int i = 0; i < n; i++)
		if (bs_wait_drained(&s[i], 300) < 0)
			drainer_log(&d), die("mem: fugue-logd did not drain session %d of %d", i, n);
	struct fl_fig *anon = fl_fig(key, "MiB"), *priv = fl_fig(pkey, "MiB");
	fl_fig_target(anon, '<', 32);
	fl_fig_note(anon, "RssAnon of fugue-logd with every session attached and drained (default geometry)");
	fl_fig_note(priv, "Private_Clean + Private_Dirty of fugue-logd (smaps_rollup), same moment");
	static const char *const pf[] = {"Private_Clean", "Private_Dirty"};
	fl_fig_add(anon, proc_status_kib(d.pid, "RssAnon") / 1024.0);
	fl_fig_add(priv, smaps_kib(d.pid, pf, 2) / 1024.0);
	for (int i = 0; i < n; i++)
		bs_close(&s[i]);
	drainer_stop(&d);
	for (int i = 0; i < n; i++)
		fl_ring_unlink(s[i].shm);
	free(s);
	free(ss);
}

/* ---- memory ---------------------------------------------------------------------------------- */

static void scen_mem(void)
{
	struct fl_fig *shm = fl_fig("mem.shm_per_session", "MiB");
	uint64_t ring = fl_ring_size(4, 1 << 20);
	fl_fig_add(shm, (double)ring / 1048576.0);
	fl_fig_note(shm, "default geometry: 4 lanes of 1 MiB plus header and lane table");
	if (!opt.logd[0]) {
		fl_fig_absent("mem.drainer_rss", "MiB", "fugue-logd not found (build drainer/ or pass --logd PATH)");
		fl_fig_absent("mem.drainer_rss.s32", "MiB", "fugue-logd not found");
		return;
	}
	int rounds = opt.quick ? 1 : 3;
	struct fl_fig *r1 = fl_fig("mem.drainer_rss", "MiB"), *r32 = fl_fig("mem.drainer_rss.s32", "MiB");
	fl_fig_target(r1, '<', 32 + (double)ring / 1048576.0);
	fl_fig_target(r32, '<', 32 + 32 * (double)ring / 1048576.0);
	fl_fig_note(r1, "VmHWM of fugue-logd, 1 session of default geometry; target 32 MiB + its ring");
	fl_fig_note(r32, "VmHWM of fugue-logd, 32 sessions; target 32 MiB + 32 rings");
	for (int r = 0; r < rounds; r++)
		for (int which = 0; which < 2; which++) {
			int n = which ? 32 : 1;
			struct bsession s[32], *ss[32];
			for (int i = 0; i < n; i++) {
				bs_open(&s[i], FL_LEVEL_FULL, 0, 0, 1);
				ss[i] = &s[i];
			}
			struct drainer d;
			drainer_start(&d, ss, n);
			/* every lane written past its end once: the drainer sees full rings and wraps */
			for (int i = 0; i < n; i++) {
				for (int k = 0; k < 600; k++)
					fl_emit_transcript(s[i].s, 0, 1, chunks[k % NCHUNKS], CHUNK);
				for (int k = 0; k < 4000; k++)
					fl_emit_transcript(s[i].s, 0, 1, small_payload, SMALL);
			}
			for (int i = 0; i < n; i++)
				if (bs_wait_drained(&s[i], 120) < 0)
					die("mem: fugue-logd did not drain session %d", i);
			double hwm = proc_status_kib(d.pid, "VmHWM");
			fl_fig_add(which ? r32 : r1, hwm / 1024.0);
			/* its own memory apart from the rings it maps, at the end (RssAnon has no peak) */
			fl_fig_add(fl_fig(which ? "mem.drainer_anon.s32" : "mem.drainer_anon", "MiB"),
				   proc_status_kib(d.pid, "RssAnon") / 1024.0);
			fl_fig_add(fl_fig(which ? "mem.drainer_shm.s32" : "mem.drainer_shm", "MiB"),
				   proc_status_kib(d.pid, "RssShmem") / 1024.0);
			for (int i = 0; i < n; i++)
				bs_close(&s[i]);
			drainer_stop(&d);
			for (int i = 0; i < n; i++)
				fl_ring_unlink(s[i].shm);
		}
	mem_sessions(opt.quick ? 50 : 2000);
}

/* ---- compression ----------------------------------------------------------------------------- */

/* JSON lines like the drainer writes for transcript events. */
static size_t make_jsonl(char *out, size_t cap)
{
	size_t p = 0;
	uint64_t seq = 0, ts = 1764088413123456789ull;
	while (p + 8 * CHUNK < cap) {
		const char *c = chunks[seq % NCHUNKS];
		p += (size_t)snprintf(out + p, cap - p,
				      "{\"ts\":\"2026-11-25T16:33:%02llu.%09lluZ\",\"seq\":%llu,\"session\":"
				      "\"0193a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b\",\"class\":\"system\",\"event\":"
				      "\"transcript\",\"level\":\"full\",\"pid\":41234,\"tid\":41234,\"id\":\"%llu\","
				      "\"data\":{\"stream\":1,\"bytes\":\"",
				      (unsigned long long)(ts / 1000000000u % 60),
				      (unsigned long long)(ts % 1000000000u), (unsigned long long)seq,
				      (unsigned long long)(seq + 1) << 6);
		for (size_t i = 0; i < CHUNK; i++) {
			unsigned char ch = (unsigned char)c[i];
			if (ch == '"' || ch == '\\') {
				out[p++] = '\\';
				out[p++] = (char)ch;
			} else if (ch == '\n') {
				out[p++] = '\\';
				out[p++] = 'n';
			} else if (ch < 0x20) {
				p += (size_t)snprintf(out + p, cap - p, "\\u%04x", ch);
			} else {
				out[p++] = (char)ch;
			}
		}
		p += (size_t)snprintf(out + p, cap - p, "\"}}\n");
		seq++;
		ts += 1700;
	}
	return p;
}

static void scen_compress(void)
{
	size_t cap = opt.quick ? (4u << 20) : (32u << 20);
	char *in = malloc(cap);
	if (!in)
		die("out of memory");
	size_t len = make_jsonl(in, cap);
	struct fl_fig *mbs = fl_fig("compress.lz4", "MB/s"), *ratio = fl_fig("compress.ratio", "x");
	fl_fig_note(mbs, "fl_archive_bench: the archiver's own LZ4F settings, transcript JSON lines in, one thread");
	int rounds = opt.quick ? 2 : 10;
	for (int r = 0; r < rounds; r++) {
		double mb, x;
		int rc = fl_archive_bench(in, len, opt.quick ? 50000000ull : 500000000ull, &mb, &x);
		if (rc < 0)
			die("fl_archive_bench: %s", strerror(-rc));
		fl_fig_add(mbs, mb);
		fl_fig_add(ratio, x);
	}
	free(in);
}

/* ---- LTTng-UST side by side ------------------------------------------------------------------------ */

static void scen_lttng(void)
{
	static const char *const keys[] = {"lttng.small", "lttng.transcript4k"};
	if (!opt.lttng[0] || access(opt.lttng, X_OK) < 0) {
		for (int i = 0; i < 2; i++)
			fl_fig_absent(keys[i], "ns", "%s", FL_BENCH_LTTNG_WHY);
		return;
	}
	int p[2];
	if (pipe(p) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(opt.lttng, opt.lttng, opt.quick ? "--quick" : "--full", opt.tmp, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *in = fdopen(p[0], "r");
	int got = in ? fl_bench_read_samples(in) : 0;
	if (in)
		fclose(in);
	int st = 0;
	waitpid(pid, &st, 0);
	if (!got || !WIFEXITED(st) || WEXITSTATUS(st))
		for (int i = 0; i < 2; i++) {
			struct fl_fig *f = fl_fig(keys[i], "ns");
			if (!f->n && !f->absent[0])
				fl_fig_absent(keys[i], "ns", "fugue-bench-lttng failed (exit %d); see its stderr",
					      WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
}

/* ---- output ------------------------------------------------------------------------------------ */

static void commit_id(char *out, size_t cap)
{
	snprintf(out, cap, "unknown");
	if (!FL_BENCH_SOURCE_DIR[0])
		return;
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --short HEAD 2>/dev/null", FL_BENCH_SOURCE_DIR);
	FILE *p = popen(cmd, "r");
	if (p) {
		char buf[64];
		if (fgets(buf, sizeof buf, p)) {
			buf[strcspn(buf, "\n")] = 0;
			snprintf(out, cap, "%s", buf);
		}
		pclose(p);
	}
}

static void json_str(FILE *o, const char *s)
{
	putc('"', o);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(o, "\\%c", c);
		else if (c < 0x20)
			fprintf(o, "\\u%04x", c);
		else
			putc(c, o);
	}
	putc('"', o);
}

static int target_met(const struct fl_fig *f, const struct fl_stats_summary *s)
{
	/* latency targets on the median, except the per-call one which is on p99.9 */
	double v = !strcmp(f->key, "emit.small.percall") ? s->p999 : s->median;
	if (strstr(f->key, "drops"))
		v = s->max;
	return f->target_op == '<' ? v <= f->target : v >= f->target;
}

static void print_json(const struct fl_machine *m, const char *commit)
{
	FILE *o = stdout;
	fprintf(o, "{\n  \"machine\": {\"cpu\": ");
	json_str(o, m->cpu);
	fprintf(o, ", \"cores\": %d, \"kernel\": ", m->cores);
	json_str(o, m->kernel);
	fprintf(o, ", \"hypervisor\": \"%s\", \"tsc_invariant\": %s, \"tsc_ghz\": %.4f, \"loadavg1\": %.2f},\n",
		m->hypervisor, m->tsc_invariant ? "true" : "false", fl_bench_tsc_per_ns, m->loadavg1);
	fprintf(o, "  \"meta\": {\"commit\": ");
	json_str(o, commit);
	fprintf(o, ", \"quick\": %s, \"drainer\": ", opt.quick ? "true" : "false");
	json_str(o, opt.drainer_name);
	fprintf(o, ", \"timer\": \"%s\"}", fl_bench_tsc_per_ns > 0 ? "tsc" : "clock_monotonic");
	for (size_t i = 0; i < fl_fig_count(); i++) {
		const struct fl_fig *f = fl_fig_at(i);
		fprintf(o, ",\n  ");
		json_str(o, f->key);
		fprintf(o, ": {\"unit\": ");
		json_str(o, f->unit);
		if (f->absent[0]) {
			fprintf(o, ", \"absent\": true, \"reason\": ");
			json_str(o, f->absent);
			fprintf(o, "}");
			continue;
		}
		struct fl_stats_summary s;
		fl_fig_summary(f, &s);
		const char *names[] = {"median", "p99", "p999", "min", "max", "mean"};
		double vals[] = {s.median, s.p99, s.p999, s.min, s.max, s.mean};
		for (int k = 0; k < 6; k++)
			if (isfinite(vals[k]))
				fprintf(o, ", \"%s\": %.5g", names[k], vals[k]);
			else
				fprintf(o, ", \"%s\": null", names[k]);
		fprintf(o, ", \"runs\": %zu", s.runs);
		if (f->target_op)
			fprintf(o, ", \"target\": \"%s %g\", \"met\": %s", f->target_op == '<' ? "<=" : ">=", f->target,
				target_met(f, &s) ? "true" : "false");
		if (f->note[0]) {
			fprintf(o, ", \"note\": ");
			json_str(o, f->note);
		}
		fprintf(o, "}");
	}
	fprintf(o, "\n}\n");
}

static void print_table(const struct fl_machine *m, const char *commit)
{
	printf("fugue-bench%s on %s, %d cores, %s%s; commit %s; drainer: %s; timer: %s\n", opt.quick ? " --quick" : "",
	       m->cpu, m->cores, m->kernel, !strcmp(m->hypervisor, "yes") ? " (virtual machine)" : "", commit,
	       opt.drainer_name, fl_bench_tsc_per_ns > 0 ? "TSC" : "CLOCK_MONOTONIC");
	printf("%-28s %-10s %11s %11s %11s %11s %11s %6s  %s\n", "figure", "unit", "median", "p99", "p99.9", "min",
	       "max", "runs", "target");
	for (size_t i = 0; i < fl_fig_count(); i++) {
		const struct fl_fig *f = fl_fig_at(i);
		if (f->absent[0]) {
			printf("%-28s %-10s absent: %s\n", f->key, f->unit, f->absent);
			continue;
		}
		struct fl_stats_summary s;
		fl_fig_summary(f, &s);
		char tgt[48] = "";
		if (f->target_op)
			snprintf(tgt, sizeof tgt, "%s %g %s", f->target_op == '<' ? "<=" : ">=", f->target,
				 target_met(f, &s) ? "met" : "MISSED");
		printf("%-28s %-10s %11.4g %11.4g %11.4g %11.4g %11.4g %6zu  %s\n", f->key, f->unit, s.median, s.p99,
		       s.p999, s.min, s.max, s.runs, tgt);
	}
}

/* ---- main --------------------------------------------------------------------------------------- */

/* ---- wake: the doorbell, bursts after idle, a steady start --------------------------------- */

/* Attaches a second handle to b's ring, for watching its tail from the outside. */
static void bs_watch(struct bsession *b, struct fl_ring *r)
{
	char why[256];
	if (fl_ring_attach(r, b->shm, why, sizeof why) < 0)
		die("cannot watch %s: %s", b->shm, why);
}

/* Emits n actions of about 100 bytes at rate per second (0: unpaced); returns how many the lane dropped. */
static uint64_t paced(struct bsession *b, long n, double rate)
{
	static const char detail[48] = "a paced record of about one hundred bytes";
	uint64_t before = bs_dropped(b), t0 = fl_bench_mono_ns();
	for (long i = 0; i < n; i++) {
		if (rate > 0 && (i & 63) == 0)
			while ((double)(fl_bench_mono_ns() - t0) < (double)i * 1e9 / rate)
				fl_cpu_relax();
		fl_emit_action(b->s, 0, "burst", "bench", detail);
	}
	return bs_dropped(b) - before;
}

/*
 * Half of what the drainer takes end to end, in events/s: the rate the
 * issue's target paces a burst after idle at. e2e.small when this run measured
 * it, else a quick blocking run of the same 100-byte transcript events.
 */
static double wake_half_rate(void)
{
	double e2e = fig_median("e2e.small");
	if (e2e > 0)
		return e2e / 2;
	struct bsession s;
	struct drainer d;
	struct line_counter lc;
	lossless_open(&s, &d, &lc, 1, 1u << 20);
	long n = opt.quick ? 50000 : 300000;
	uint64_t t0 = fl_bench_mono_ns(), deadline = t0 + 120 * 1000000000ull;
	for (long i = 0; i < n; i++) /* e2e.small's events: the line counter counts transcripts */
		if (fl_emit_transcript(s.s, 0, 1, small_payload, SMALL) <= 0)
			die("wake: emit failed in blocking mode");
	while (lc_poll(&lc), lc.lines < (uint64_t)n) {
		if (!drainer_alive(&d) || fl_bench_mono_ns() > deadline)
			drainer_log(&d), die("wake: %" PRIu64 " of %ld lines reached %s", lc.lines, n, lc.path);
		usleep(200);
	}
	double rate = (double)n / ((double)(fl_bench_mono_ns() - t0) / 1e9);
	bs_close(&s);
	drainer_stop(&d);
	fl_ring_unlink(s.shm);
	free(lc.buf);
	return rate / 2;
}

static void scen_wake(void)
{
	if (!opt.logd[0]) {
		fl_fig_absent("wake.latency", "us", "needs fugue-logd (its doorbell)");
		return;
	}
	/* every figure first: fl_fig may move them all when it grows, so no pointer is held across a call */
	double half = wake_half_rate();
	struct fl_fig *pace = fl_fig("burst.after_idle.rate", "events/s");
	fl_fig_note(pace, "half the drainer's end-to-end rate in this run (e2e.small, else measured here)");
	fl_fig_add(pace, half);
	struct fl_fig *lat = fl_fig("wake.latency", "us"), *idle = fl_fig("burst.after_idle", "events"),
		      *steady = fl_fig("start.steady", "events"), *fits = fl_fig("burst.fits_lane", "events"),
		      *att = fl_fig("attach.latency", "us");
	fl_fig_note(att, "fl_session_open returned -> the drainer has the ring in its table");
	fl_fig_note(lat, "a 4 KiB lane crosses its watermark (1/8) while the drainer sleeps -> its tail first moves");
	fl_fig_note(idle, "lost of 200k events of ~100 B paced at burst.after_idle.rate, after 3 s idle");
	fl_fig_note(steady, "lost of a session starting at 200k events/s for 0.5 s (attach_timeout_ns set)");
	fl_fig_note(fits, "lost of an unpaced burst of 7/8 of a lane after 1 s idle");
	struct drainer d;
	struct bsession b, w;
	bs_open(&b, FL_LEVEL_FULL, 1, 1u << 20, 0);
	/* the latency on a 4 KiB lane: a watermark of 512 bytes, so the figure is the wake-up, not the drain */
	bs_open(&w, FL_LEVEL_FULL, 1, 4096, 0);
	struct bsession *bp[2] = {&b, &w};
	drainer_start(&d, bp, 2);
	struct fl_ring r, rw;
	bs_watch(&b, &r);
	bs_watch(&w, &rw);
	for (int i = 0; i < 2000 && !(fl_ring_attached(&r) && fl_ring_attached(&rw)); i++)
		usleep(1000);
	int rounds = opt.quick ? 5 : 40;
	for (int i = 0; i < rounds; i++) {
		usleep(250000); /* past the safety timer: the workers sleep on the doorbell */
		uint64_t tail = fl_load_acquire(&rw.lanes[0].tail), head = fl_load_acquire(&rw.lanes[0].head);
		/* just past the watermark: the last emit rings */
		while (fl_load_acquire(&rw.lanes[0].head) - head < FL_BELL_WATERMARK(rw.lane_size))
			fl_emit_action(w.s, 0, "wake", "bench", "");
		uint64_t t0 = fl_bench_mono_ns();
		while (fl_load_acquire(&rw.lanes[0].tail) == tail && fl_bench_mono_ns() - t0 < 1000000000ull)
			fl_cpu_relax();
		fl_fig_add(lat, (double)(fl_bench_mono_ns() - t0) / 1e3);
	}
	fl_ring_detach(&rw);
	bs_close(&w);
	fl_fig_target(lat, '<', 1000);
	usleep(opt.quick ? 500000 : 3000000);
	fl_fig_add(idle, (double)paced(&b, opt.quick ? 50000 : 200000, half));
	fl_fig_target(idle, '<', 0);
	bs_wait_drained(&b, 10);
	usleep(1000000);
	fl_fig_add(fits, (double)paced(&b, (long)(r.lane_size * 7 / 8 / 128), 0));
	fl_fig_target(fits, '<', 0);
	fl_ring_detach(&r);
	bs_close(&b);

	/* creation to attach: fl_session_open returns, then the drainer's attached word is set */
	for (int i = 0; i < (opt.quick ? 5 : 30); i++) {
		struct bsession a;
		bs_open(&a, FL_LEVEL_FULL, 1, 1u << 20, 0);
		uint64_t t0 = fl_bench_mono_ns();
		struct fl_ring ra;
		bs_watch(&a, &ra);
		while (!fl_ring_attached(&ra) && fl_bench_mono_ns() - t0 < 2000000000ull)
			fl_cpu_relax();
		fl_fig_add(att, (double)(fl_bench_mono_ns() - t0) / 1e3);
		fl_ring_detach(&ra);
		bs_close(&a);
		usleep(20000);
	}
	fl_fig_target(att, '<', 1000);

	/* a new session at 200k events/s from its first event, after the handshake */
	char why[256] = "";
	struct bsession n;
	snprintf(n.id, sizeof n.id, "bench-%d-%d", (int)getpid(), ++opt.nsessions);
	struct fl_session_opts o = {.id = n.id, .level = FL_LEVEL_FULL, .attach_timeout_ns = 5000000000ull};
	if (fl_session_open(&n.s, &o, why, sizeof why) < 0)
		die("cannot open a session: %s", why);
	fl_ring_name(n.shm, sizeof n.shm, NULL, n.id);
	fl_fig_add(steady, (double)paced(&n, opt.quick ? 20000 : 100000, 200000));
	fl_fig_target(steady, '<', 0);
	bs_close(&n);
	drainer_stop(&d);
}

/* scenario run: its own file, sharing the drainer helpers above */
#include "run_bench.c"

static const struct {
	const char *name;
	void (*run)(void);
} scenarios[] = {
    {"emit", scen_emit},     {"threads", scen_threads}, {"ratio", scen_ratio},	     {"zerocopy", scen_zerocopy},
    {"e2e", scen_e2e},	     {"mem", scen_mem},		{"compress", scen_compress}, {"lttng", scen_lttng},
    {"limits", scen_limits}, {"wake", scen_wake},	{"run", scen_run},
};

static int wanted(const char *name, char **args, int n)
{
	if (!n)
		return 1;
	for (int i = 0; i < n; i++) {
		size_t l = strcspn(args[i], ".");
		if (!strncmp(args[i], name, l) && !name[l])
			return 1;
		/* fprintf.* runs beside emit.*, emit.small.tN and throughput.* in threads */
		if (!strcmp(name, "emit") && !strncmp(args[i], "fprintf", 7))
			return 1;
		if (!strcmp(name, "threads") &&
		    (!strncmp(args[i], "emit.small.t", 12) || !strncmp(args[i], "throughput", 10)))
			return 1;
		if (!strcmp(name, "compress") && !strncmp(args[i], "compress", 8))
			return 1;
		if (!strcmp(name, "wake") &&
		    (!strncmp(args[i], "burst", 5) || !strncmp(args[i], "start", 5) || !strncmp(args[i], "attach", 6)))
			return 1;
	}
	return 0;
}

static void usage(FILE *o)
{
	fprintf(o,
		"usage: fugue-bench [--json] [--quick] [--samples DIR] [--logd PATH|--no-logd] [SCENARIO...]\n"
		"scenarios: emit threads ratio zerocopy e2e mem compress lttng limits wake run (or figure keys such as "
		"emit.small)\n");
}

static void find_sibling(char *out, size_t cap, const char *built, const char *rel)
{
	out[0] = 0;
	if (built[0] && access(built, X_OK) == 0) {
		snprintf(out, cap, "%s", built);
		return;
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return;
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = 0;
	char cand[8200];
	snprintf(cand, sizeof cand, "%s/%s", self, rel);
	if (access(cand, X_OK) == 0)
		snprintf(out, cap, "%s", cand);
}

int main(int argc, char **argv)
{
	char *args[64];
	int nargs = 0, no_logd = 0;
	const char *logd = getenv("FUGUE_BENCH_LOGD");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			opt.json = 1;
		else if (!strcmp(argv[i], "--quick"))
			opt.quick = 1;
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			opt.samples_dir = argv[++i];
		else if (!strcmp(argv[i], "--logd") && i + 1 < argc)
			logd = argv[++i];
		else if (!strcmp(argv[i], "--no-logd"))
			no_logd = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			usage(stderr);
			return 2;
		} else if (nargs < 64) {
			opt.only_small |= !strcmp(argv[i], "e2e.small");
			opt.only_4k |= !strcmp(argv[i], "e2e.transcript4k");
			args[nargs++] = argv[i];
		}
	}
	for (int i = 0; i < nargs; i++) {
		int ok = 0;
		for (size_t k = 0; k < sizeof scenarios / sizeof scenarios[0]; k++)
			ok |= wanted(scenarios[k].name, &args[i], 1);
		if (!ok) {
			fprintf(stderr, "fugue-bench: no scenario '%s'\n", args[i]);
			usage(stderr);
			return 2;
		}
	}
	if (logd && *logd)
		snprintf(opt.logd, sizeof opt.logd, "%s", logd);
	else
		find_sibling(opt.logd, sizeof opt.logd, FL_BENCH_LOGD, "../drainer/fugue-logd");
	if (!opt.logd[0]) /* installed: side by side in one bin directory */
		find_sibling(opt.logd, sizeof opt.logd, "", "fugue-logd");
	if (no_logd)
		opt.logd[0] = 0;
	find_sibling(opt.lttng, sizeof opt.lttng, FL_BENCH_LTTNG, "fugue-bench-lttng");
	opt.drainer_name = opt.logd[0] ? "fugue-logd" : "built-in consumer (fugue-logd not found)";

	/* our own shm prefix unless the caller (ctest) gave one, so we never touch live sessions */
	const char *pre = getenv("FUGUE_SHM_PREFIX");
	if (pre && *pre)
		snprintf(opt.prefix, sizeof opt.prefix, "%s", pre);
	else
		snprintf(opt.prefix, sizeof opt.prefix, "flbench-%d-", (int)getpid());
	setenv("FUGUE_SHM_PREFIX", opt.prefix, 1);
	const char *t = getenv("FL_TEST_TMP");
	if (!t || !*t)
		t = getenv("TMPDIR");
	snprintf(opt.tmp, sizeof opt.tmp, "%s/fugue-bench.XXXXXX", t && *t ? t : "/tmp");
	if (t && getenv("FL_TEST_TMP")) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "mkdir -p '%s'", t);
		if (system(cmd) != 0)
			die("cannot create %s", t);
	}
	if (!mkdtemp(opt.tmp))
		die("cannot create a scratch dir %s: %s", opt.tmp, strerror(errno));

	fl_bench_small_payload(small_payload);
	for (int i = 0; i < NCHUNKS; i++)
		fl_bench_transcript_chunk(chunks[i], CHUNK, (uint64_t)i + 1);
	fl_bench_clock_init(opt.quick ? 20 : 200);
	struct fl_machine m;
	fl_machine_get(&m);
	say("fugue-bench: %s, %d cores, %s; drainer: %s\n", m.cpu, m.cores, m.kernel, opt.drainer_name);

	for (size_t k = 0; k < sizeof scenarios / sizeof scenarios[0]; k++)
		if (wanted(scenarios[k].name, args, nargs)) {
			say("fugue-bench: %s...\n", scenarios[k].name);
			scenarios[k].run();
		}
	limits_finish();

	char commit[64];
	commit_id(commit, sizeof commit);
	if (opt.samples_dir && fl_fig_dump_samples(opt.samples_dir) < 0)
		die("cannot write samples into %s", opt.samples_dir);
	if (opt.json)
		print_json(&m, commit);
	else
		print_table(&m, commit);
	rm_rf(opt.tmp);
	/* a prefix of our own leaves nothing in /dev/shm: the doorbell fugue-logd keeps across
	   restarts (doorbell.h) has no one left to ring once this run is over */
	char bell[sizeof opt.prefix + sizeof FL_BELL_SUFFIX + 1];
	if (!(pre && *pre) && fl_bell_name(bell, sizeof bell, opt.prefix) == 0)
		shm_unlink(bell);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* bench.c: clock calibration, figures and their statistics, machine facts and a minimal ring consumer. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

double fl_bench_tsc_per_ns;

uint64_t fl_bench_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cpuinfo_has(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f)) {
		if (strncmp(line, "flags", 5))
			continue;
		for (char *t = strtok(strchr(line, ':') ? strchr(line, ':') + 1 : line, " \n"); t;
		     t = strtok(NULL, " \n"))
			if (!strcmp(t, flag))
				found = 1;
		break;
	}
	fclose(f);
	return found;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void fl_bench_clock_init(unsigned ms)
{
	fl_bench_tsc_per_ns = 0;
#ifdef FL_BENCH_TSC
	if (!cpuinfo_has("constant_tsc") || !cpuinfo_has("nonstop_tsc"))
		return;
	double r[5];
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = fl_bench_mono_ns(), c0 = __rdtsc(), t1, c1;
		do {
			t1 = fl_bench_mono_ns();
			c1 = __rdtsc();
		} while (t1 - t0 < (uint64_t)ms * 1000000u / 5);
		r[i] = (double)(c1 - c0) / (double)(t1 - t0);
	}
	qsort(r, 5, sizeof r[0], cmp_double);
	fl_bench_tsc_per_ns = r[2];
#else
	(void)ms;
#endif
}

/* ---- figures ------------------------------------------------------------------------ */

/* Each figure allocated on its own: a scenario holds its fl_fig pointers while later ones are added. */
static struct fl_fig **figs;
static size_t nfigs, capfigs;

struct fl_fig *fl_fig(const char *key, const char *unit)
{
	for (size_t i = 0; i < nfigs; i++)
		if (!strcmp(figs[i]->key, key))
			return figs[i];
	if (nfigs == capfigs) {
		capfigs = capfigs ? 2 * capfigs : 64;
		figs = realloc(figs, capfigs * sizeof *figs);
		if (!figs)
			abort();
	}
	struct fl_fig *f = calloc(1, sizeof *f);
	if (!f)
		abort();
	figs[nfigs++] = f;
	snprintf(f->key, sizeof f->key, "%s", key);
	snprintf(f->unit, sizeof f->unit, "%s", unit);
	return f;
}

void fl_fig_add(struct fl_fig *f, double v)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 256;
		f->v = realloc(f->v, f->cap * sizeof *f->v);
		if (!f->v)
			abort();
	}
	f->v[f->n++] = v;
}

void fl_fig_target(struct fl_fig *f, int op, double value)
{
	f->target_op = op;
	f->target = value;
}

void fl_fig_absent(const char *key, const char *unit, const char *fmt, ...)
{
	struct fl_fig *f = fl_fig(key, unit);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->absent, sizeof f->absent, fmt, ap);
	va_end(ap);
}

void fl_fig_note(struct fl_fig *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->note, sizeof f->note, fmt, ap);
	va_end(ap);
}

/* Nearest-rank percentile of sorted v. */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p * (double)n);
	if (k < 1)
		k = 1;
	return v[k - 1];
}

void fl_fig_summary(const struct fl_fig *f, struct fl_stats_summary *s)
{
	memset(s, 0, sizeof *s);
	s->runs = f->n;
	if (!f->n)
		return;
	double *v = malloc(f->n * sizeof *v);
	if (!v)
		abort();
	memcpy(v, f->v, f->n * sizeof *v);
	qsort(v, f->n, sizeof *v, cmp_double);
	double sum = 0;
	for (size_t i = 0; i < f->n; i++)
		sum += v[i];
	s->mean = sum / (double)f->n;
	s->median = f->n % 2 ? v[f->n / 2] : (v[f->n / 2 - 1] + v[f->n / 2]) / 2;
	s->p99 = pct(v, f->n, 0.99);
	s->p999 = pct(v, f->n, 0.999);
	s->min = v[0];
	s->max = v[f->n - 1];
	free(v);
}

size_t fl_fig_count(void)
{
	return nfigs;
}

struct fl_fig *fl_fig_at(size_t i)
{
	return i < nfigs ? figs[i] : NULL;
}

int fl_fig_dump_samples(const char *dir)
{
	for (size_t i = 0; i < nfigs; i++) {
		if (!figs[i]->n)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s.txt", dir, figs[i]->key);
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		for (size_t k = 0; k < figs[i]->n; k++)
			fprintf(f, "%.3f\n", figs[i]->v[k]);
		fclose(f);
	}
	return 0;
}

/* ---- machine -------------------------------------------------------------------------- */

void fl_machine_get(struct fl_machine *m)
{
	memset(m, 0, sizeof *m);
	snprintf(m->cpu, sizeof m->cpu, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	while (f && fgets(line, sizeof line, f)) {
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			char *v = strchr(line, ':') + 2;
			v[strcspn(v, "\n")] = 0;
			snprintf(m->cpu, sizeof m->cpu, "%s", v);
			break;
		}
	}
	if (f)
		fclose(f);
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof m->kernel, "%s %s", u.sysname, u.release);
	m->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	m->tsc_invariant = cpuinfo_has("constant_tsc") && cpuinfo_has("nonstop_tsc");
	snprintf(m->hypervisor, sizeof m->hypervisor, "%s", cpuinfo_has("hypervisor") ? "yes" : "no");
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &m->loadavg1) != 1)
			m->loadavg1 = -1;
		fclose(f);
	}
}

/* ---- consumer ------------------------------------------------------------------------- */

static void consume(struct fl_consumer_shared *sh, const char *const *names, int n)
{
	struct fl_ring *r = calloc((size_t)n, sizeof *r);
	struct fl_rec recs[256];
	char why[256];
	if (!r)
		_exit(1);
	for (int i = 0; i < n; i++)
		if (fl_ring_attach(&r[i], names[i], why, sizeof why) < 0) {
			fprintf(stderr, "fugue-bench consumer: %s\n", why);
			sh->error = 1;
			sh->ready = 1;
			_exit(1);
		}
	sh->ready = 1;
	while (!sh->stop) {
		int got = 0;
		for (int i = 0; i < n; i++)
			for (uint32_t l = 0; l < r[i].lane_count; l++) {
				uint64_t next;
				int k = fl_lane_peek(&r[i], l, recs, 256, &next, why, sizeof why);
				if (k < 0) {
					fprintf(stderr, "fugue-bench consumer: %s\n", why);
					sh->error = 1;
					_exit(1);
				}
				if (!k)
					continue;
				uint64_t bytes = 0;
				for (int j = 0; j < k; j++)
					bytes += recs[j].len;
				fl_lane_release(&r[i], l, next);
				sh->records += (uint64_t)k;
				sh->bytes += bytes;
				got = 1;
			}
		if (!got) {
			struct timespec ts = {0, 20000};
			nanosleep(&ts, NULL);
		}
	}
	_exit(0);
}

int fl_consumer_start(struct fl_consumer *c, const char *const *shm_names, int n)
{
	c->sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->sh == MAP_FAILED)
		return -errno;
	memset(c->sh, 0, sizeof *c->sh);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		consume(c->sh, shm_names, n);
	c->pid = pid;
	while (!c->sh->ready)
		usleep(100);
	return c->sh->error ? -EIO : 0;
}

int fl_consumer_stop(struct fl_consumer *c)
{
	int st = 0, err;
	c->sh->stop = 1;
	waitpid(c->pid, &st, 0);
	err = c->sh->error;
	munmap(c->sh, 4096);
	return err || !WIFEXITED(st) || WEXITSTATUS(st) ? -EIO : 0;
}

/* ---- payloads ----------------------------------------------------------------------- */

void fl_bench_small_payload(char out[100])
{
	static const char s[] = "user ran `make -j2 test` in ~/src/fugue; 14 targets, 0 warnings; cache hit 93%; "
				"next: deploy staging";
	memcpy(out, s, 100);
}

/* Terminal output as a coding session produces it: build lines, paths, numbers, some colour codes. */
void fl_bench_transcript_chunk(char *out, size_t len, uint64_t seed)
{
	static const char *const words[] = {
	    "compiling",
	    "src/drainer/writer.c",
	    "warning:",
	    "unused",
	    "variable",
	    "'n'",
	    "[-Wunused]",
	    "\x1b[32mok\x1b[0m",
	    "test",
	    "passed",
	    "in",
	    "ms",
	    "->",
	    "cargo",
	    "build",
	    "--release",
	    "error[E0382]:",
	    "borrow",
	    "of",
	    "moved",
	    "value:",
	    "`buf`",
	    "Finished",
	    "dev",
	    "profile",
	    "\x1b[1;31mFAILED\x1b[0m",
	    "assert_eq!(left,",
	    "right)",
	    "diff",
	    "--git",
	    "a/README.md",
	    "b/README.md",
	    "@@",
	    "-12,7",
	    "+12,9",
	    "$",
	    "ls",
	    "-la",
	    "total",
	    "drwxr-xr-x",
	    "node_modules/",
	};
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	size_t p = 0;
	while (p < len) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		const char *w;
		char num[24];
		if (x % 7 == 0) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)(x >> 40) % 100000);
			w = num;
		} else {
			w = words[(x >> 8) % (sizeof words / sizeof words[0])];
		}
		for (const char *c = w; *c && p < len; c++)
			out[p++] = *c;
		if (p < len)
			out[p++] = (x >> 20) % 9 == 0 ? '\n' : ' ';
	}
}

/* ---- samples over a pipe ------------------------------------------------------------------ */

void fl_bench_write_samples(FILE *out, const struct fl_fig *f)
{
	if (f->absent[0]) {
		fprintf(out, "absent %s %s %s\n", f->key, f->unit, f->absent);
		return;
	}
	fprintf(out, "fig %s %s", f->key, f->unit);
	for (size_t i = 0; i < f->n; i++)
		fprintf(out, " %.3f", f->v[i]);
	fprintf(out, "\n");
}

int fl_bench_read_samples(FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	while (getline(&line, &cap, in) > 0) {
		char kind[16], key[64], unit[16];
		int off = 0;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "%15s %63s %15s %n", kind, key, unit, &off) < 3)
			continue;
		if (!strcmp(kind, "absent")) {
			fl_fig_absent(key, unit, "%s", line + off);
		} else if (!strcmp(kind, "fig")) {
			struct fl_fig *f = fl_fig(key, unit);
			char *p = line + off, *e;
			for (double v = strtod(p, &e); e != p; v = strtod(p, &e)) {
				fl_fig_add(f, v);
				p = e;
			}
		} else {
			continue;
		}
		n++;
	}
	free(line);
	return n;
}

/* SPDX-License-Identifier: MIT */
/* cli_ls.c: fugue-log ls — every session ring under the shm prefix, with level, liveness, rate, fill and drops. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fuguelog.h"
#include "guard.h"
#include "grow.h"
#include "ring.h"
#include "rings.h"

#define SAMPLE_NS 200000000L /* events/s: lane sequence counters sampled this far apart */

struct ent {
	char id[FL_RING_ID_MAX + 1];
	char shm[FL_RING_ID_MAX + 80];
	struct fl_ring r;
	int ok;
	char why[200];
	const char *state; /* live, closed, gone, broken */
	uint64_t seq0, seq1, drops;
	double t0, t1, fill;
	uint64_t queued;
};

struct list {
	struct ent *v;
	size_t n, cap;
};

static struct ent *add(struct list *l)
{
	struct ent *nv = fl_grow(l->v, &l->cap, l->n, sizeof *nv, 16);
	if (!nv)
		return NULL;
	l->v = nv;
	struct ent *e = &l->v[l->n++];
	memset(e, 0, sizeof *e);
	e->r.fd = -1;
	return e;
}

static int found(const char *id, const char *shm, void *arg)
{
	struct ent *e = add(arg);
	if (!e)
		return -ENOMEM;
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->shm, sizeof e->shm, "%s", shm);
	return 0;
}

static void found_bad(const char *name, void *arg)
{
	struct ent *e = add(arg);
	if (!e)
		return;
	char safe[FL_RING_ID_MAX + 80];
	fl_cli_printable(safe, sizeof safe, name); /* a hostile name must not reach a terminal raw */
	snprintf(e->id, sizeof e->id, "%.*s", FL_RING_ID_MAX, safe);
	snprintf(e->why, sizeof e->why, "shm object /%s does not end in a valid session id", safe);
	e->state = "broken";
}

/* Sum of lane sequence numbers (records produced, dropped ones included) and drops. */
static void sample(struct ent *e, uint64_t *seq, double *t)
{
	uint64_t s = 0, d = 0, q = 0;
	double fill = 0;
	for (uint32_t l = 0; l < e->r.lane_count; l++) {
		uint64_t lseq, head, drops;
		fl_lane_snapshot(&e->r, l, &lseq, &head, &drops);
		uint64_t tail = fl_load_acquire(&e->r.lanes[l].tail);
		uint64_t used = head - tail; /* untrusted: clamp to the lane */
		if (used > e->r.lane_size)
			used = e->r.lane_size;
		q += used;
		double f = (double)used / (double)e->r.lane_size;
		if (f > fill)
			fill = f;
		s += lseq;
		d += drops;
	}
	*seq = s;
	*t = fl_cli_now();
	e->drops = d;
	e->fill = fill;
	e->queued = q;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct ent *)a)->id, ((const struct ent *)b)->id);
}

static void iso_time(int64_t ns, char *out, size_t cap)
{
	time_t sec = (time_t)(ns / 1000000000);
	struct tm tm;
	if (ns <= 0 || !gmtime_r(&sec, &tm)) {
		snprintf(out, cap, "?");
		return;
	}
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void help(void)
{
	printf("usage: fugue-log ls [--json] [--root DIR] [--config FILE]\n"
	       "\n"
	       "Lists the session rings under the shm prefix (FUGUE_SHM_PREFIX, default \"fugue-\"):\n"
	       "id, producer pid, level, state (live; closed: the producer closed it and the drainer\n"
	       "has not finished yet; gone: the producer died without closing; broken: the ring\n"
	       "failed validation, with the reason), events/s (sampled over 200 ms), fill (of the\n"
	       "fullest lane: how close the session is to dropping) and drops so far. A ring no\n"
	       "drainer has attached yet shows state 'wait' (JSON: \"attached\": false).\n"
	       "\n"
	       "  --json   one JSON object: {\"prefix\":..,\"sessions\":[{\"id\",\"pid\",\"level\",\"generation\",\n"
	       "           \"state\",\"events\",\"events_per_s\",\"fill\",\"queued_bytes\",\"drops\",\"lanes\",\n"
	       "           \"lane_size\",\"started\",\"attached\",\"reason\"}]}\n"
	       "\n"
	       "Exit codes: 0 listed (also when there are none), 1 the shm directory cannot be read\n"
	       "or the config is bad, 2 usage error.\n");
}

/* Reads the command line: 0, -1 when help was printed, or a usage exit code. */
static int parse_args(int argc, char **argv, int *json)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, FL_CLI_COMMON_OPTS, {0}};
	int c;
	while ((c = getopt_long(argc, argv, "+hj", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'j':
			*json = 1;
			break;
		case 'h':
			help();
			return -1;
		default:
			return fl_cli_usage_err("ls", "bad option");
		}
	}
	if (optind < argc)
		return fl_cli_usage_err("ls", "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Attaches e's ring, sets its state and takes the first sample; 1 when it is live. */
static int attach(struct ent *e)
{
	char why[160] = "";
	int rc = fl_ring_attach(&e->r, e->shm, why, sizeof why);
	if (rc < 0) {
		e->state = "broken";
		if (rc == -EACCES)
			snprintf(e->why, sizeof e->why, "permission denied: %s belongs to another user", e->shm);
		else if (rc == -ENOENT)
			snprintf(e->why, sizeof e->why, "vanished while listing (the drainer finished it)");
		else
			snprintf(e->why, sizeof e->why, "%s", *why ? why : strerror(-rc));
		return 0;
	}
	e->ok = 1;
	int live = 0;
	if (fl_load_acquire(&e->r.hdr->closed))
		e->state = "closed";
	else if (fl_ring_owner_alive(&e->r) != 0) /* a failed check is not "gone" */
		e->state = "live", live = 1;
	else
		e->state = "gone";
	sample(e, &e->seq0, &e->t0);
	return live;
}

/* Attaches every ring found, samples them twice SAMPLE_NS apart (once when none is live), sorts by id. */
static void measure(struct list *l)
{
	int any_live = 0;
	for (size_t i = 0; i < l->n; i++)
		if (!l->v[i].state && attach(&l->v[i]))
			any_live = 1;
	if (any_live) {
		struct timespec ts = {0, SAMPLE_NS};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].ok) {
			if (any_live)
				sample(&l->v[i], &l->v[i].seq1, &l->v[i].t1);
			else
				l->v[i].seq1 = l->v[i].seq0, l->v[i].t1 = l->v[i].t0;
		}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].ok && fl_guard_tripped(l->v[i].r.hdr)) {
			/* what was sampled may be zeros: say so rather than print them */
			l->v[i].ok = 0;
			l->v[i].state = "broken";
			snprintf(l->v[i].why, sizeof l->v[i].why, "the ring was truncated while being read");
		}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, by_id);
}

/* One session as a member of --json's "sessions" array (first: no comma before it). */
static void print_json(const struct ent *e, double rate, int first)
{
	printf("%s{\"id\":", first ? "" : ",");
	fl_cli_json_str(stdout, e->id);
	printf(",\"state\":\"%s\"", e->state);
	if (e->ok) {
		uint64_t w = fl_ring_level_word(&e->r);
		char started[40];
		iso_time(e->r.hdr->start_realtime_ns, started, sizeof started);
		printf(",\"pid\":%u,\"level\":\"%s\",\"generation\":%llu,\"events\":%llu,"
		       "\"events_per_s\":%.1f,\"fill\":%.4f,\"queued_bytes\":%llu,\"drops\":%llu,"
		       "\"lanes\":%u,\"lane_size\":%llu,\"started\":\"%s\",\"attached\":%s",
		       e->r.hdr->pid, fl_level_name(FL_LEVEL_VALUE(w)), (unsigned long long)FL_LEVEL_GEN(w),
		       (unsigned long long)e->seq1, rate, e->fill, (unsigned long long)e->queued,
		       (unsigned long long)e->drops, e->r.lane_count, (unsigned long long)e->r.lane_size, started,
		       fl_ring_attached(&e->r) ? "true" : "false");
	} else {
		printf(",\"reason\":");
		fl_cli_json_str(stdout, e->why);
	}
	printf("}");
}

/* One session as a row of the table. */
static void print_row(const struct ent *e, double rate)
{
	if (e->ok)
		printf("%-36s %8u %-8s %-6s %9.0f %4.0f%% %8llu\n", e->id, e->r.hdr->pid,
		       fl_level_name(FL_LEVEL_VALUE(fl_ring_level_word(&e->r))),
		       strcmp(e->state, "live") || fl_ring_attached(&e->r) ? e->state : "wait", rate, e->fill * 100,
		       (unsigned long long)e->drops);
	else
		printf("%-36s %8s %-8s %-6s  %s\n", e->id, "-", "-", "broken", e->why);
}

/* Prints the list (a table, or one JSON object) and detaches every ring. */
static void print_list(struct list *l, int json, const char *prefix)
{
	if (json) {
		printf("{\"prefix\":");
		fl_cli_json_str(stdout, prefix);
		printf(",\"sessions\":[");
	} else if (l->n) {
		printf("%-36s %8s %-8s %-6s %9s %5s %8s\n", "SESSION", "PID", "LEVEL", "STATE", "EV/S", "FILL",
		       "DROPS");
	} else {
		fprintf(stderr, "no sessions under shm prefix '%s'\n", prefix);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct ent *e = &l->v[i];
		double dt = e->t1 - e->t0;
		double rate = e->ok && dt > 0 ? (double)(e->seq1 - e->seq0) / dt : 0;
		if (json)
			print_json(e, rate, i == 0);
		else
			print_row(e, rate);
		fl_ring_detach(&e->r);
	}
	if (json)
		printf("]}\n");
}

int fl_cmd_ls(int argc, char **argv)
{
	int json = 0;
	int rc = parse_args(argc, argv, &json);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	struct fl_config cfg;
	if ((rc = fl_cli_config(&cfg)))
		return rc;

	fl_cli_guard();
	struct list l = {0};
	rc = fl_rings_scan(cfg.shm_prefix, found, found_bad, &l);
	if (rc < 0) {
		fl_cli_err("cannot list %s: %s", FL_SHM_DIR, strerror(-rc));
		free(l.v);
		return FL_EXIT_FAIL;
	}
	measure(&l);
	print_list(&l, json, cfg.shm_prefix);
	free(l.v);
	return fflush(stdout) ? FL_EXIT_FAIL : FL_EXIT_OK;
}

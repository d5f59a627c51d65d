/* SPDX-License-Identifier: MIT */
/* mkseeds: writes the fuzz seed corpora (real ring images, real encoded events) into tests/fuzz/corpus/. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuguelog.h"
#include "ring.h"

static const char *outdir;
static char prefix[64];

static void write_file(const char *sub, const char *name, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "mkseeds: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* One of every kind the producer writes, so each body shape is a seed. */
static void emit_all(fl_session *s)
{
	const char *argv[] = {"fugue", "--x", ""};
	const char *args[] = {"a", "b\xff"};
	fl_emit_spawn(s, 0, 42, 1, argv, 3, "/home/u");
	fl_emit_action(s, 0, "kill", "child-3", "by user");
	fl_emit_command(s, 0, "ls", args, 2);
	fl_emit_completion(s, 0, "turn", "ok", 1234);
	fl_emit_error(s, 0, -5, "bad \"thing\"\n", "io");
	fl_emit_state(s, 0, "idle", "busy", "prompt");
	fl_emit_prompt(s, 0, "hello \xe2\x82\xac", 9);
	fl_emit_transcript(s, 0, 1, "\x00\x01\x1b[0m\xc0\xaf", 9);
	fl_emit_input(s, 0, "y\n", 2);
	fl_emit_exit(s, 0, 0, 9, 5000);
}

struct thr {
	fl_session *s;
	int count;
};

static void *emitter(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < t->count; i++)
		emit_all(t->s);
	return NULL;
}

static fl_session *open_session(const char *id, uint32_t lanes)
{
	fl_session *s;
	char why[256] = "";
	struct fl_session_opts o = {
	    .id = id, .level = FL_LEVEL_FULL, .lanes = lanes, .lane_size = 4096, .shm_prefix = prefix};
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc < 0) {
		fprintf(stderr, "mkseeds: %s\n", why);
		exit(1);
	}
	return s;
}

static void attach(const char *id, struct fl_ring *r)
{
	char name[256], why[256] = "";
	fl_ring_name(name, sizeof name, prefix, id);
	if (fl_ring_attach(r, name, why, sizeof why) < 0) {
		fprintf(stderr, "mkseeds: %s\n", why);
		exit(1);
	}
}

static void finish(const char *id, fl_session *s, const char *file, int dump_events)
{
	struct fl_ring r;
	attach(id, &r);
	write_file("fuzz_ring", file, r.hdr, r.map_size);
	for (uint32_t l = 0; dump_events && l < r.lane_count; l++) {
		struct fl_rec recs[64];
		uint64_t next;
		char why[256];
		int n = fl_lane_peek(&r, l, recs, 64, &next, why, sizeof why);
		for (int i = 0; i < n && i < 10; i++) {
			char name[64];
			snprintf(name, sizeof name, "rec%02d.pb", i + 1);
			write_file("fuzz_event", name, recs[i].data, recs[i].len);
		}
	}
	char name[256];
	fl_ring_name(name, sizeof name, prefix, id);
	fl_ring_detach(&r);
	fl_session_close(s);
	fl_ring_unlink(name);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds CORPUS_DIR\n");
		return 2;
	}
	outdir = argv[1];
	snprintf(prefix, sizeof prefix, "flseed-%d-", (int)getpid());

	/* one lane, one of each kind: also the fuzz_event seeds */
	fl_session *s = open_session("seed-one", 1);
	emit_all(s);
	finish("seed-one", s, "one-lane.img", 1);

	/* two lanes written by two threads */
	s = open_session("seed-two", 2);
	pthread_t t[2];
	struct thr a = {s, 1}, b = {s, 2};
	pthread_create(&t[0], NULL, emitter, &a);
	pthread_join(t[0], NULL);
	pthread_create(&t[1], NULL, emitter, &b);
	pthread_join(t[1], NULL);
	finish("seed-two", s, "two-lanes.img", 0);

	/* a wrapped lane: consume, refill past the end so a pad record sits at the wrap, count drops */
	s = open_session("seed-wrap", 1);
	struct fl_ring r;
	attach("seed-wrap", &r);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 12; i++)
			emit_all(s); /* overfills: the rest is dropped and counted */
		struct fl_rec recs[64];
		uint64_t next;
		char why[256];
		int n;
		while ((n = fl_lane_peek(&r, 0, recs, 5, &next, why, sizeof why)) > 0 && round < 2)
			fl_lane_release(&r, 0, next);
	}
	fl_ring_detach(&r);
	finish("seed-wrap", s, "wrapped.img", 0);
	return 0;
}

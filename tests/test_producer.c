/* SPDX-License-Identifier: MIT */
/* test_producer: libfuguelog sessions, levels, ids, lanes and typed emits, decoded back with protobuf-c. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test.h"

#include "fuguelog.h"
#include "fugue_event.pb-c.h"
#include "ring.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Every case starts without FUGUE_SESSION_LOG and with an empty HOME, whatever the caller's. */
static int hermetic(void **state)
{
	(void)state;
	unsetenv("FUGUE_SESSION_LOG");
	setenv("HOME", fl_test_tmp(), 1);
	return 0;
}

static uint32_t tid_now(void)
{
	return (uint32_t)syscall(SYS_gettid);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Now in the ring's clock: what its records' ts_ns holds (raw TSC ticks when the session chose the TSC). */
static uint64_t ring_now(const struct fl_ring *r)
{
	return r->hdr->clock == FL_RING_CLOCK_TSC ? fl_rdtsc() : realtime_ns();
}

/* Scales iteration counts down under sanitizers (scripts/test sets FL_SANITIZED). */
static unsigned scaled(unsigned n, unsigned div)
{
	const char *s = getenv("FL_SANITIZED");
	return s && *s ? n / div : n;
}

static fl_session *open_ok(struct fl_session_opts o)
{
	fl_session *s = NULL;
	char why[512] = "", name[160];
	/* a ring left by an earlier failed run of this case (the prefix is the case's own) */
	if (o.id && fl_ring_name(name, sizeof name, NULL, o.id) == 0)
		fl_ring_unlink(name);
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc != 0)
		fail_msg("fl_session_open: %d: %s", rc, why);
	assert_non_null(s);
	return s;
}

static void ring_of(const fl_session *s, struct fl_ring *r)
{
	char name[160], why[256];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, fl_session_id(s)), 0);
	if (fl_ring_attach(r, name, why, sizeof why) != 0)
		fail_msg("attach %s: %s", name, why);
}

/* Closes the session and removes its ring, as the drainer would once done. */
static void close_and_unlink(fl_session *s)
{
	char name[160];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, fl_session_id(s)), 0);
	assert_int_equal(fl_session_close(s), 0);
	assert_int_equal(fl_ring_unlink(name), 0);
}

/* Takes the next record of lane, decodes it with protobuf-c and releases it; NULL when empty. */
static Fugue__Event *take(struct fl_ring *r, uint32_t lane, uint64_t *seq)
{
	struct fl_rec rec;
	uint64_t nt;
	char why[256];
	int n = fl_lane_peek(r, lane, &rec, 1, &nt, why, sizeof why);
	if (n < 0)
		fail_msg("lane %u: %s", lane, why);
	if (n == 0)
		return NULL;
	Fugue__Event *e = fugue__event__unpack(NULL, rec.len, rec.data);
	if (!e)
		fail_msg("lane %u seq %llu: protobuf-c cannot decode a %u-byte record", lane,
			 (unsigned long long)rec.seq, rec.len);
	if (seq)
		*seq = rec.seq;
	fl_lane_release(r, lane, nt);
	return e;
}

/* Records waiting in lane, without consuming them. */
static int pending(struct fl_ring *r, uint32_t lane)
{
	struct fl_rec rec[256];
	uint64_t nt;
	char why[256];
	int n = fl_lane_peek(r, lane, rec, 256, &nt, why, sizeof why);
	assert_true(n >= 0);
	return n;
}

static void drain(struct fl_ring *r, uint32_t lane)
{
	Fugue__Event *e;
	while ((e = take(r, lane, NULL)))
		fugue__event__free_unpacked(e, NULL);
}

/* One emit of kind k with fixed fields, through the public inline calls. */
static int64_t emit_kind(fl_session *s, int k)
{
	static const char *const argv[] = {"fugue", "--x"};
	switch (k) {
	case FL_KIND_SPAWN:
		return fl_emit_spawn(s, 0, 1, 2, argv, 2, "/");
	case FL_KIND_EXIT:
		return fl_emit_exit(s, 0, 0, 9, 100);
	case FL_KIND_ACTION:
		return fl_emit_action(s, 0, "kill", "c1", "");
	case FL_KIND_COMMAND:
		return fl_emit_command(s, 0, "ls", argv, 2);
	case FL_KIND_COMPLETION:
		return fl_emit_completion(s, 0, "turn", "ok", 5);
	case FL_KIND_ERROR:
		return fl_emit_error(s, 0, -5, "boom", "x.c");
	case FL_KIND_STATE:
		return fl_emit_state(s, 0, "idle", "busy", "input");
	case FL_KIND_PROMPT:
		return fl_emit_prompt(s, 0, "hi", 2);
	case FL_KIND_TRANSCRIPT:
		return fl_emit_transcript(s, 0, 1, "out", 3);
	case FL_KIND_INPUT:
		return fl_emit_input(s, 0, "in", 2);
	}
	fail_msg("no kind %d", k);
	return -1;
}

/* ---- round trips -------------------------------------------------------------------- */

/* Random bytes; with nul 0 none is NUL, so the result is a C string of any (even invalid) UTF-8. */
static void rnd_bytes(unsigned *seed, uint8_t *p, size_t n, int nul)
{
	for (size_t i = 0; i < n; i++) {
		p[i] = (uint8_t)rand_r(seed);
		if (!nul && !p[i])
			p[i] = 0xC0; /* never valid in UTF-8 */
	}
}

static char *rnd_str(unsigned *seed, char *buf, size_t maxlen)
{
	size_t n = (size_t)rand_r(seed) % (maxlen + 1);
	rnd_bytes(seed, (uint8_t *)buf, n, 0);
	buf[n] = 0;
	return buf;
}

static uint64_t rnd64(unsigned *seed)
{
	uint64_t v = 0;
	for (int i = 0; i < 4; i++)
		v = (v << 16) ^ (uint64_t)(rand_r(seed) & 0xffff);
	/* every size of varint, and often zero (which proto3 omits) */
	switch (rand_r(seed) % 4) {
	case 0:
		return 0;
	case 1:
		return v >> (rand_r(seed) % 64);
	default:
		return v;
	}
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

struct expect {
	int kind;
	uint64_t ref;
	uint32_t u1, u2;
	int32_t i1, i2;
	uint64_t dur;
	const char *s1, *s2, *s3;
	const char *const *rep;
	uint32_t nrep;
	const uint8_t *bytes;
	size_t nbytes;
};

static int64_t emit_expect(fl_session *s, const struct expect *x)
{
	switch (x->kind) {
	case FL_KIND_SPAWN:
		return fl_emit_spawn(s, x->ref, x->u1, x->u2, x->rep, x->nrep, x->s1);
	case FL_KIND_EXIT:
		return fl_emit_exit(s, x->ref, x->i1, x->i2, x->dur);
	case FL_KIND_ACTION:
		return fl_emit_action(s, x->ref, x->s1, x->s2, x->s3);
	case FL_KIND_COMMAND:
		return fl_emit_command(s, x->ref, x->s1, x->rep, x->nrep);
	case FL_KIND_COMPLETION:
		return fl_emit_completion(s, x->ref, x->s1, x->s2, x->dur);
	case FL_KIND_ERROR:
		return fl_emit_error(s, x->ref, x->i1, x->s1, x->s2);
	case FL_KIND_STATE:
		return fl_emit_state(s, x->ref, x->s1, x->s2, x->s3);
	case FL_KIND_PROMPT:
		return fl_emit_prompt(s, x->ref, x->bytes, x->nbytes);
	case FL_KIND_TRANSCRIPT:
		return fl_emit_transcript(s, x->ref, x->u1, x->bytes, x->nbytes);
	case FL_KIND_INPUT:
		return fl_emit_input(s, x->ref, x->bytes, x->nbytes);
	}
	fail_msg("no kind %d", x->kind);
	return -1;
}

static void check_rep(char **got, size_t n, const char *const *want, uint32_t nwant)
{
	assert_int_equal(n, want ? nwant : 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(got[i], str_or_empty(want[i]));
}

static void check_bytes(ProtobufCBinaryData got, const uint8_t *want, size_t n)
{
	assert_int_equal(got.len, n);
	if (n)
		assert_memory_equal(got.data, want, n);
}

/* Emits x, decodes the record with protobuf-c and compares every field. */
static void roundtrip(fl_session *s, struct fl_ring *r, const struct expect *x, uint64_t want_seq)
{
	uint64_t before = ring_now(r);
	int64_t id = emit_expect(s, x);
	uint64_t after = ring_now(r);
	if (id <= 0)
		fail_msg("kind %s: emit returned %lld", fl_kind_name(x->kind), (long long)id);
	uint64_t seq;
	Fugue__Event *e = take(r, 0, &seq);
	assert_non_null(e);
	assert_int_equal(seq, want_seq);
	assert_int_equal(e->id, (uint64_t)id);
	assert_int_equal(e->id, ((want_seq + 1) << 6) | 0); /* lane 0 */
	assert_int_equal(e->ref, x->ref);
	assert_int_equal(e->pid, (uint32_t)getpid());
	assert_int_equal(e->tid, tid_now());
	assert_true(e->ts_ns >= before && e->ts_ns <= after);
	assert_int_equal(e->body_case, x->kind + 5);
	switch (x->kind) {
	case FL_KIND_SPAWN:
		assert_int_equal(e->spawn->pid, x->u1);
		assert_int_equal(e->spawn->ppid, x->u2);
		check_rep(e->spawn->argv, e->spawn->n_argv, x->rep, x->nrep);
		assert_string_equal(e->spawn->cwd, str_or_empty(x->s1));
		break;
	case FL_KIND_EXIT:
		assert_int_equal(e->exit->status, x->i1);
		assert_int_equal(e->exit->signal, x->i2);
		assert_int_equal(e->exit->duration_ns, x->dur);
		assert_false(e->exit->abandoned);
		break;
	case FL_KIND_ACTION:
		assert_string_equal(e->action->action, str_or_empty(x->s1));
		assert_string_equal(e->action->target, str_or_empty(x->s2));
		assert_string_equal(e->action->detail, str_or_empty(x->s3));
		break;
	case FL_KIND_COMMAND:
		assert_string_equal(e->command->name, str_or_empty(x->s1));
		check_rep(e->command->args, e->command->n_args, x->rep, x->nrep);
		break;
	case FL_KIND_COMPLETION:
		assert_string_equal(e->completion->task, str_or_empty(x->s1));
		assert_string_equal(e->completion->outcome, str_or_empty(x->s2));
		assert_int_equal(e->completion->duration_ns, x->dur);
		break;
	case FL_KIND_ERROR:
		assert_int_equal(e->error->code, x->i1);
		assert_string_equal(e->error->message, str_or_empty(x->s1));
		assert_string_equal(e->error->origin, str_or_empty(x->s2));
		break;
	case FL_KIND_STATE:
		assert_string_equal(e->state->from, str_or_empty(x->s1));
		assert_string_equal(e->state->to, str_or_empty(x->s2));
		assert_string_equal(e->state->reason, str_or_empty(x->s3));
		break;
	case FL_KIND_PROMPT:
		check_bytes(e->prompt->text, x->bytes, x->nbytes);
		break;
	case FL_KIND_TRANSCRIPT:
		assert_int_equal(e->transcript->stream, x->u1);
		check_bytes(e->transcript->data, x->bytes, x->nbytes);
		break;
	case FL_KIND_INPUT:
		check_bytes(e->input->data, x->bytes, x->nbytes);
		break;
	}
	fugue__event__free_unpacked(e, NULL);
}

/* Every kind, random field values of every size class, decoded by protobuf-c to the same values. */
static void test_roundtrip_random(void **state)
{
	(void)state;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	const char *fixed = getenv("FL_TEST_SEED");
	if (fixed)
		seed = (unsigned)strtoul(fixed, NULL, 0);
	printf("seed %u (set FL_TEST_SEED to repeat)\n", seed);
	fl_session *s = open_ok((struct fl_session_opts){.id = "rt-random", .level = FL_LEVEL_FULL, .lanes = 1});
	struct fl_ring r;
	ring_of(s, &r);
	static char s1[300], s2[300], s3[300], reps[8][40];
	static uint8_t bytes[4096];
	const char *rep[8];
	uint64_t seq = 0;
	unsigned rounds = scaled(300, 3);
	for (unsigned i = 0; i < rounds; i++) {
		struct expect x = {.kind = FL_KIND_SPAWN + (int)(i % 10)};
		x.ref = rnd64(&seed);
		x.u1 = (uint32_t)rnd64(&seed);
		x.u2 = (uint32_t)rnd64(&seed);
		x.i1 = (int32_t)rnd64(&seed);
		x.i2 = (int32_t)rnd64(&seed);
		x.dur = rnd64(&seed);
		x.s1 = rand_r(&seed) % 8 ? rnd_str(&seed, s1, 299) : NULL;
		x.s2 = rnd_str(&seed, s2, 299);
		x.s3 = rand_r(&seed) % 8 ? rnd_str(&seed, s3, 40) : NULL;
		x.nrep = (uint32_t)rand_r(&seed) % 8;
		for (uint32_t k = 0; k < x.nrep; k++)
			rep[k] = rand_r(&seed) % 6 ? rnd_str(&seed, reps[k], 39) : NULL;
		x.rep = rand_r(&seed) % 10 ? rep : NULL;
		x.nbytes = (size_t)rand_r(&seed) % sizeof bytes;
		rnd_bytes(&seed, bytes, x.nbytes, 1);
		x.bytes = bytes;
		roundtrip(s, &r, &x, seq++);
	}
	assert_null(take(&r, 0, NULL));
	struct fl_stats st;
	assert_int_equal(fl_session_stats(s, &st), 0);
	assert_int_equal(st.emitted, rounds);
	assert_int_equal(st.admitted, rounds);
	assert_int_equal(st.dropped, 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* Empty and 64 KiB payloads, bytes that are not UTF-8 (NULs, lone continuation bytes, 0xff). */
static void test_roundtrip_sizes(void **state)
{
	(void)state;
	/* a quarter of 512 KiB holds a 64 KiB payload and its envelope */
	fl_session *s = open_ok(
	    (struct fl_session_opts){.id = "rt-sizes", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 512 * 1024});
	struct fl_ring r;
	ring_of(s, &r);
	size_t big = 64 * 1024;
	uint8_t *junk = malloc(big);
	char *bigstr = malloc(big + 1);
	assert_non_null(junk);
	assert_non_null(bigstr);
	for (size_t i = 0; i < big; i++) {
		static const uint8_t bad[] = {0x00, 0xff, 0x80, 0xc0, 0xfe, 0xed, 0xa0, 0xf8};
		junk[i] = bad[i % sizeof bad] ^ (uint8_t)(i >> 11);
		bigstr[i] = (char)(0x80 | (i % 64)); /* continuation bytes only: never valid UTF-8 */
	}
	bigstr[big] = 0;
	static const char *const argv[] = {"", "\xff\xfe", NULL, "a"};
	uint64_t seq = 0;
	for (int kind = FL_KIND_SPAWN; kind <= FL_KIND_INPUT; kind++) {
		/* every field empty or zero: the body must still be there */
		struct expect x = {.kind = kind};
		roundtrip(s, &r, &x, seq++);
		/* 64 KiB in the big field */
		x = (struct expect){.kind = kind,
				    .ref = UINT64_MAX,
				    .u1 = UINT32_MAX,
				    .u2 = 1,
				    .i1 = INT32_MIN,
				    .i2 = -1,
				    .dur = UINT64_MAX,
				    .s1 = bigstr,
				    .s2 = "\xc3\x28",
				    .s3 = "",
				    .rep = argv,
				    .nrep = 4,
				    .bytes = junk,
				    .nbytes = big};
		roundtrip(s, &r, &x, seq++);
		x.nbytes = 1;
		x.s1 = "\xe2\x82";
		roundtrip(s, &r, &x, seq++);
	}
	free(junk);
	free(bigstr);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* ---- levels ------------------------------------------------------------------------- */

/* docs/levels.md's table, written out again so the library's own table is checked against it. */
static const struct {
	const char *name;
	int min;
	int cls;
} design[] = {
    [FL_KIND_SPAWN] = {"spawn", FL_LEVEL_SPAWNS, FL_CLASS_SYSTEM},
    [FL_KIND_EXIT] = {"exit", FL_LEVEL_SPAWNS, FL_CLASS_SYSTEM},
    [FL_KIND_ACTION] = {"action", FL_LEVEL_SPAWNS, FL_CLASS_USER},
    [FL_KIND_COMMAND] = {"command", FL_LEVEL_SPAWNS, FL_CLASS_USER},
    [FL_KIND_COMPLETION] = {"completion", FL_LEVEL_SIGNALS, FL_CLASS_SYSTEM},
    [FL_KIND_ERROR] = {"error", FL_LEVEL_SIGNALS, FL_CLASS_SYSTEM},
    [FL_KIND_STATE] = {"state", FL_LEVEL_SIGNALS, FL_CLASS_SYSTEM},
    [FL_KIND_PROMPT] = {"prompt", FL_LEVEL_PROMPTS, FL_CLASS_USER},
    [FL_KIND_TRANSCRIPT] = {"transcript", FL_LEVEL_FULL, FL_CLASS_SYSTEM},
    [FL_KIND_INPUT] = {"input", FL_LEVEL_FULL, FL_CLASS_USER},
    [FL_KIND_LEVEL] = {"level", FL_LEVEL_SPAWNS, FL_CLASS_SYSTEM},
    [FL_KIND_DROPPED] = {"dropped", FL_LEVEL_SPAWNS, FL_CLASS_SYSTEM},
};

static void test_level_table(void **state)
{
	(void)state;
	for (int k = 1; k <= FL_KIND_MAX; k++) {
		assert_string_equal(fl_kind_name(k), design[k].name);
		assert_int_equal(fl_kind_min_level(k), design[k].min);
		assert_int_equal(fl_kind_class(k), design[k].cls);
		assert_int_equal(fl_kind_parse(design[k].name), k);
	}
	assert_null(fl_kind_name(0));
	assert_null(fl_kind_name(FL_KIND_MAX + 1));
	assert_int_equal(fl_kind_parse("bogus"), -EINVAL);
	static const char *const names[] = {NULL, "spawns", "signals", "prompts", "full"};
	for (int l = FL_LEVEL_SPAWNS; l <= FL_LEVEL_FULL; l++) {
		assert_int_equal(fl_level_parse(names[l]), l);
		char num[2] = {(char)('0' + l), 0};
		assert_int_equal(fl_level_parse(num), l);
		assert_string_equal(fl_level_name(l), names[l]);
	}
	/* names in any case: FUGUE_SESSION_LOG=FULL is what a user types */
	assert_int_equal(fl_level_parse("FULL"), FL_LEVEL_FULL);
	assert_int_equal(fl_level_parse("Signals"), FL_LEVEL_SIGNALS);
	static const char *const bad[] = {"", "0", "5", "full ", " full", "bogus", "11", "fulll"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(fl_level_parse(bad[i]), -EINVAL);
	assert_int_equal(fl_level_parse(NULL), -EINVAL);
	assert_string_equal(fl_level_name(0), "?");
	assert_string_equal(fl_level_name(5), "?");

	fl_session *s = open_ok((struct fl_session_opts){.id = "levels", .level = FL_LEVEL_FULL, .lanes = 1});
	struct fl_ring r;
	ring_of(s, &r);
	int prev = FL_LEVEL_FULL;
	uint64_t admitted = 0, seq = 0;
	for (int l = FL_LEVEL_SPAWNS; l <= FL_LEVEL_FULL; l++) {
		assert_int_equal(fl_set_level(s, l), prev);
		assert_int_equal(fl_get_level(s), l);
		prev = l;
		for (int k = FL_KIND_SPAWN; k <= FL_KIND_INPUT; k++) {
			int64_t id = emit_kind(s, k);
			if (design[k].min <= l) {
				if (id <= 0)
					fail_msg("%s at level %s: %lld, want an id", design[k].name, names[l],
						 (long long)id);
				admitted++;
				uint64_t got_seq;
				Fugue__Event *e = take(&r, 0, &got_seq);
				assert_non_null(e);
				assert_int_equal(e->body_case, k + 5);
				assert_int_equal(e->id, (uint64_t)id);
				assert_int_equal(got_seq, seq++);
				fugue__event__free_unpacked(e, NULL);
			} else if (id != 0) {
				fail_msg("%s at level %s: %lld, want 0 (filtered)", design[k].name, names[l],
					 (long long)id);
			}
			assert_int_equal(pending(&r, 0), 0);
		}
	}
	/* 4 + 7 + 8 + 10 */
	assert_int_equal(admitted, 29);
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_int_equal(st.emitted, 29);
	assert_int_equal(st.admitted, 29);
	assert_int_equal(st.dropped, 0);
	/* the generation counts every change: open at full (gen 0), then four sets */
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&r)), 4);
	assert_int_equal(fl_set_level(s, 0), -EINVAL);
	assert_int_equal(fl_set_level(s, 5), -EINVAL);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&r)), 4);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* A level written through another mapping (what `fugue-log level` does) is seen by the very next emit. */
static void test_level_second_mapping(void **state)
{
	(void)state;
	fl_session *s = open_ok((struct fl_session_opts){.id = "level-map", .level = FL_LEVEL_SIGNALS, .lanes = 1});
	struct fl_ring b;
	ring_of(s, &b);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(&b)), FL_LEVEL_SIGNALS);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&b)), 0);
	assert_true(fl_emit_completion(s, 0, "t", "ok", 1) > 0);
	assert_int_equal(fl_emit_prompt(s, 0, "p", 1), 0);

	fl_ring_level_set(&b, FL_LEVEL_SPAWNS);
	assert_int_equal(fl_emit_completion(s, 0, "t", "ok", 1), 0);
	assert_true(fl_emit_spawn(s, 0, 1, 0, NULL, 0, NULL) > 0);
	assert_int_equal(fl_get_level(s), FL_LEVEL_SPAWNS);

	fl_ring_level_set(&b, FL_LEVEL_FULL);
	assert_true(fl_emit_transcript(s, 0, 1, "x", 1) > 0);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&b)), 2);

	/* and the other way: the library's set is seen through the second mapping */
	assert_int_equal(fl_set_level(s, FL_LEVEL_PROMPTS), FL_LEVEL_FULL);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(&b)), FL_LEVEL_PROMPTS);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&b)), 3);
	assert_int_equal(fl_emit_input(s, 0, "i", 1), 0);

	/* a flip away and back still counts twice */
	fl_ring_level_set(&b, FL_LEVEL_SPAWNS);
	fl_ring_level_set(&b, FL_LEVEL_PROMPTS);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&b)), 5);

	/* three admitted records in order: completion, spawn, transcript */
	static const int want[] = {FUGUE__EVENT__BODY_COMPLETION, FUGUE__EVENT__BODY_SPAWN,
				   FUGUE__EVENT__BODY_TRANSCRIPT};
	for (int i = 0; i < 3; i++) {
		uint64_t seq;
		Fugue__Event *e = take(&b, 0, &seq);
		assert_non_null(e);
		assert_int_equal(e->body_case, want[i]);
		assert_int_equal(seq, (uint64_t)i);
		fugue__event__free_unpacked(e, NULL);
	}
	assert_null(take(&b, 0, NULL));
	fl_ring_detach(&b);
	close_and_unlink(s);
}

/* ---- ids, levels and options refused ----------------------------------------------- */

static void expect_refused(struct fl_session_opts o, const char *needle1, const char *needle2)
{
	fl_session *s = (fl_session *)1;
	char why[512] = "";
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc != -EINVAL)
		fail_msg("open (id %s) returned %d, want -EINVAL; why: %s", o.id ? o.id : "(null)", rc, why);
	assert_null(s);
	if (!strstr(why, needle1) || (needle2 && !strstr(why, needle2)))
		fail_msg("why '%s' does not name '%s'%s%s", why, needle1, needle2 ? " and " : "",
			 needle2 ? needle2 : "");
}

static void test_refused_ids(void **state)
{
	(void)state;
	char longest[66];
	memset(longest, 'a', 65);
	longest[65] = 0;
	const char *bad[] = {"", "a/b", "..", ".", longest, "a b", "\n", "é", "a\tb", "id*", "x:y"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(fl_id_check(bad[i]), -EINVAL);
		expect_refused((struct fl_session_opts){.id = bad[i]}, "session id", "refused");
	}
	assert_int_equal(fl_id_check(NULL), -EINVAL);
	/* the edges that are fine */
	longest[64] = 0;
	const char *good[] = {longest, "a", "A.b_c-9", "...", ".x", "-"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(fl_id_check(good[i]), 0);
		fl_session *s = open_ok((struct fl_session_opts){.id = good[i], .lanes = 1, .lane_size = 4096});
		assert_string_equal(fl_session_id(s), good[i]);
		close_and_unlink(s);
	}
}

static const char *write_conf(const char *name, const char *text)
{
	static char path[2][1200];
	static int which;
	char *p = path[which++ % 2];
	snprintf(p, sizeof path[0], "%s/%s", fl_test_tmp(), name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static void test_refused_levels(void **state)
{
	(void)state;
	unsetenv("FUGUE_SESSION_LOG");
	setenv("FUGUE_SESSION_LOG", "bogus", 1);
	expect_refused((struct fl_session_opts){.id = "lv"}, "FUGUE_SESSION_LOG", "bogus");
	expect_refused((struct fl_session_opts){.id = "lv", .level = FL_LEVEL_FULL}, "FUGUE_SESSION_LOG", "bogus");
	unsetenv("FUGUE_SESSION_LOG");
	expect_refused((struct fl_session_opts){.id = "lv", .level = 9}, "level 9", NULL);
	expect_refused((struct fl_session_opts){.id = "lv", .level = -1}, "level -1", NULL);
	const char *cfg = write_conf("bogus.conf", "# test\ndefault_level = bogus\n");
	expect_refused((struct fl_session_opts){.id = "lv", .config_path = cfg}, "default_level", "bogus");
	expect_refused((struct fl_session_opts){.id = "lv", .config_path = cfg}, cfg, NULL);
	cfg = write_conf("broken.conf", "default_level = full\nthis line is not ini\n");
	expect_refused((struct fl_session_opts){.id = "lv", .config_path = cfg}, "broken.conf:2:", NULL);
	/* the geometry and policy options too */
	expect_refused((struct fl_session_opts){.id = "lv", .lanes = 3}, "lanes", NULL);
	expect_refused((struct fl_session_opts){.id = "lv", .lanes = 128}, "lanes", NULL);
	expect_refused((struct fl_session_opts){.id = "lv", .lane_size = 5000}, "lane size", NULL);
	expect_refused((struct fl_session_opts){.id = "lv", .lane_size = 2048}, "lane size", NULL);
	expect_refused((struct fl_session_opts){.id = "lv", .full_policy = 7}, "full_policy", NULL);
	/* nothing of the refused opens was left behind */
	char name[160];
	struct fl_ring r;
	fl_ring_name(name, sizeof name, NULL, "lv");
	assert_int_equal(fl_ring_attach(&r, name, NULL, 0), -ENOENT);
}

static int level_of(struct fl_session_opts o)
{
	o.id = "prec";
	o.lanes = 1;
	o.lane_size = 4096;
	fl_session *s = open_ok(o);
	int l = fl_get_level(s);
	close_and_unlink(s);
	return l;
}

/* FUGUE_SESSION_LOG > session option > config default_level > signals. */
static void test_level_precedence(void **state)
{
	(void)state;
	const char *prompts = write_conf("prompts.conf", "[fuguelog]\ndefault_level = prompts\n");
	const char *nolevel = write_conf("nolevel.conf", "root = /tmp/x\n");
	unsetenv("FUGUE_SESSION_LOG");

	assert_int_equal(level_of((struct fl_session_opts){.config_path = nolevel}), FL_LEVEL_SIGNALS);
	assert_int_equal(level_of((struct fl_session_opts){.config_path = prompts}), FL_LEVEL_PROMPTS);
	assert_int_equal(level_of((struct fl_session_opts){.config_path = prompts, .level = FL_LEVEL_SPAWNS}),
			 FL_LEVEL_SPAWNS);
	setenv("FUGUE_SESSION_LOG", "full", 1);
	assert_int_equal(level_of((struct fl_session_opts){.config_path = prompts, .level = FL_LEVEL_SPAWNS}),
			 FL_LEVEL_FULL);
	assert_int_equal(level_of((struct fl_session_opts){.config_path = nolevel}), FL_LEVEL_FULL);
	setenv("FUGUE_SESSION_LOG", "1", 1);
	assert_int_equal(level_of((struct fl_session_opts){.level = FL_LEVEL_FULL}), FL_LEVEL_SPAWNS);
	/* an empty variable is the same as none */
	setenv("FUGUE_SESSION_LOG", "", 1);
	assert_int_equal(level_of((struct fl_session_opts){.config_path = prompts}), FL_LEVEL_PROMPTS);
	unsetenv("FUGUE_SESSION_LOG");

	/* without config_path the file is $HOME/.fugue/logging.conf */
	char home[1200], dir[1300];
	snprintf(home, sizeof home, "%s/home", fl_test_tmp());
	snprintf(dir, sizeof dir, "%s/.fugue", home);
	mkdir(home, 0700);
	mkdir(dir, 0700);
	setenv("HOME", home, 1);
	char conf[1400];
	snprintf(conf, sizeof conf, "%s/logging.conf", dir);
	unlink(conf); /* from an earlier run */
	assert_int_equal(level_of((struct fl_session_opts){0}), FL_LEVEL_SIGNALS);
	write_conf("home/.fugue/logging.conf", "default_level = full\n");
	assert_int_equal(level_of((struct fl_session_opts){0}), FL_LEVEL_FULL);
	assert_int_equal(level_of((struct fl_session_opts){.level = FL_LEVEL_PROMPTS}), FL_LEVEL_PROMPTS);
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* No id given: a UUIDv7 (RFC 9562) whose time is now, usable as a ring name. */
static void test_uuid7_id(void **state)
{
	(void)state;
	uint64_t before_ms = realtime_ns() / 1000000;
	fl_session *s = open_ok((struct fl_session_opts){.lanes = 1, .lane_size = 4096});
	fl_session *s2 = open_ok((struct fl_session_opts){.lanes = 1, .lane_size = 4096});
	uint64_t after_ms = realtime_ns() / 1000000;
	const char *id = fl_session_id(s);
	printf("id %s\n", id);
	assert_int_equal(strlen(id), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(id[i], '-');
		else if (!is_hex(id[i]))
			fail_msg("id %s: char %d is not lowercase hex", id, i);
	}
	assert_int_equal(id[14], '7');
	assert_non_null(strchr("89ab", id[19]));
	char ms_hex[13];
	memcpy(ms_hex, id, 8);
	memcpy(ms_hex + 8, id + 9, 4);
	ms_hex[12] = 0;
	uint64_t ms = strtoull(ms_hex, NULL, 16);
	assert_true(ms >= before_ms && ms <= after_ms);
	assert_int_equal(fl_id_check(id), 0);
	assert_string_not_equal(id, fl_session_id(s2));

	struct fl_ring r;
	ring_of(s, &r);
	assert_string_equal(r.hdr->id, id);
	fl_ring_detach(&r);

	char buf[37];
	fl_id_new(buf);
	assert_int_equal(strlen(buf), 36);
	assert_int_equal(buf[14], '7');
	close_and_unlink(s);
	close_and_unlink(s2);
}

/* A second open of a live id is refused and names the ring. */
static void test_exists_refused(void **state)
{
	(void)state;
	fl_session *s = open_ok((struct fl_session_opts){.id = "twice", .lanes = 1, .lane_size = 4096});
	fl_session *s2 = (fl_session *)1;
	char why[512] = "";
	struct fl_session_opts o = {.id = "twice"};
	assert_int_equal(fl_session_open(&s2, &o, why, sizeof why), -EEXIST);
	assert_null(s2);
	assert_non_null(strstr(why, "twice"));
	close_and_unlink(s);
}

/* ---- full lanes, oversize, stats --------------------------------------------------- */

static void check_stats(fl_session *s, uint64_t emitted, uint64_t admitted, uint64_t dropped)
{
	struct fl_stats st;
	assert_int_equal(fl_session_stats(s, &st), 0);
	assert_int_equal(st.emitted, emitted);
	assert_int_equal(st.admitted, admitted);
	assert_int_equal(st.dropped, dropped);
}

/*
 * The n records in lane 0 (never wrapped) are all there, in order, and fill it:
 * one more of the same size would not have fitted.
 */
static void assert_lane_full(struct fl_ring *r, unsigned n)
{
	struct fl_rec recs[128];
	uint64_t nt, seq, head, drops;
	char why[256];
	assert_true(n > 0 && n < 128);
	assert_int_equal(fl_lane_peek(r, 0, recs, 128, &nt, why, sizeof why), (int)n);
	uint64_t used = 0;
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(recs[i].seq, i);
		used += fl_rec_space(recs[i].len);
	}
	fl_lane_snapshot(r, 0, &seq, &head, &drops);
	assert_int_equal(head, used);
	assert_true(used + fl_rec_space(recs[n - 1].len) > r->lane_size);
}

/* A full lane drops exactly what does not fit, counts it, leaves a gap; a release makes room again. */
static void test_full_lane(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "full", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096});
	struct fl_ring r;
	ring_of(s, &r);
	uint8_t data[100];
	memset(data, 0xab, sizeof data);
	unsigned n = 0;
	int64_t id;
	while ((id = fl_emit_input(s, 0, data, sizeof data)) > 0)
		n++;
	assert_int_equal(id, -ENOBUFS);
	for (int i = 0; i < 9; i++)
		assert_int_equal(fl_emit_input(s, 0, data, sizeof data), -ENOBUFS);
	assert_int_equal(fl_emit_input(s, 0, data, sizeof data), -ENOBUFS);
	check_stats(s, n + 11, n, 11);
	uint64_t seq, head, drops;
	fl_lane_snapshot(&r, 0, &seq, &head, &drops);
	assert_int_equal(seq, n + 11);
	assert_int_equal(drops, 11);

	assert_lane_full(&r, n);
	drain(&r, 0);

	id = fl_emit_input(s, 0, data, sizeof data);
	assert_true(id > 0);
	Fugue__Event *e = take(&r, 0, &seq);
	assert_non_null(e);
	assert_int_equal(seq, n + 11); /* the gap of eleven is visible to the drainer */
	assert_int_equal(e->id, (uint64_t)id);
	assert_int_equal(e->id >> 6, n + 12);
	check_bytes(e->input->data, data, sizeof data);
	fugue__event__free_unpacked(e, NULL);
	check_stats(s, n + 12, n + 1, 11);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* Beyond a quarter of the lane: -EMSGSIZE, counted as dropped; the largest that fits goes through. */
static void test_emsgsize(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "big", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096});
	struct fl_ring r;
	ring_of(s, &r);
	uint32_t max = fl_ring_max_record(&r);
	assert_int_equal(max, 1008);
	static uint8_t data[8192];
	memset(data, 0x5a, sizeof data);

	assert_int_equal(fl_emit_input(s, 0, data, 5000), -EMSGSIZE);
	check_stats(s, 1, 0, 1);
	/* two records to learn the envelope size at this id width (seq >= 1: two-byte id varint) */
	assert_true(fl_emit_input(s, 0, data, 500) > 0);
	struct fl_rec rec;
	uint64_t nt;
	char why[256];
	assert_int_equal(fl_lane_peek(&r, 0, &rec, 1, &nt, why, sizeof why), 1);
	assert_int_equal(rec.seq, 1);
	uint32_t envelope = rec.len - 500;
	fl_lane_release(&r, 0, nt);

	uint32_t fit = max - envelope;
	int64_t id = fl_emit_input(s, 0, data, fit);
	assert_true(id > 0);
	assert_int_equal(fl_lane_peek(&r, 0, &rec, 1, &nt, why, sizeof why), 1);
	assert_int_equal(rec.len, max);
	Fugue__Event *e = fugue__event__unpack(NULL, rec.len, rec.data);
	assert_non_null(e);
	check_bytes(e->input->data, data, fit);
	fugue__event__free_unpacked(e, NULL);
	fl_lane_release(&r, 0, nt);

	assert_int_equal(fl_emit_input(s, 0, data, fit + 1), -EMSGSIZE);
	assert_int_equal(fl_emit_prompt(s, 0, data, sizeof data), -EMSGSIZE);
	assert_int_equal(fl_emit_transcript(s, 0, 2, data, 4096), -EMSGSIZE);
	check_stats(s, 6, 2, 4);
	uint64_t seq, head, drops;
	fl_lane_snapshot(&r, 0, &seq, &head, &drops);
	assert_int_equal(seq, 6);
	assert_int_equal(drops, 4);
	/* a filtered call is not counted at all */
	fl_set_level(s, FL_LEVEL_SPAWNS);
	assert_int_equal(fl_emit_input(s, 0, data, 5000), 0);
	check_stats(s, 6, 2, 4);
	assert_int_equal(pending(&r, 0), 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* ---- lanes and threads -------------------------------------------------------------- */

struct worker {
	fl_session *s;
	pthread_barrier_t *before, *mid, *after; /* optional: hold the thread at these points */
	unsigned count;
	uint32_t index;
	uint32_t tid;
	uint32_t owner_seen;	   /* the lane owner word while this thread was alive */
	uint32_t owner_at_barrier; /* the same, when every thread had emitted once */
	struct fl_ring *ring;
	int64_t first_id, last_id;
	unsigned errors;
};

/* Emits count transcripts, stream = index, data = the 64-bit counter. */
static void *work(void *arg)
{
	struct worker *w = arg;
	w->tid = tid_now();
	for (uint64_t i = 0; i < w->count; i++) {
		int64_t id = fl_emit_transcript(w->s, 0, w->index, &i, sizeof i);
		if (id <= 0)
			w->errors++;
		if (i == 0)
			w->first_id = id;
		w->last_id = id;
		if (i == 0 && w->before) {
			pthread_barrier_wait(w->before);
			if (w->ring)
				w->owner_at_barrier = fl_load_acquire(&w->ring->lanes[w->first_id & 63].owner);
		}
		if (i == 0 && w->mid)
			pthread_barrier_wait(w->mid);
	}
	if (w->ring)
		w->owner_seen = fl_load_acquire(&w->ring->lanes[w->first_id & 63].owner);
	if (w->after)
		pthread_barrier_wait(w->after);
	return NULL;
}

static void run_worker(struct worker *w)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, work, w), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w->errors, 0);
}

/* The lane of an exited thread goes back to the pool, and is handed out again once drained. */
static void test_lane_reclaim(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "reclaim", .level = FL_LEVEL_FULL, .lanes = 2, .lane_size = 4096});
	struct fl_ring r;
	ring_of(s, &r);
	struct worker a = {.s = s, .count = 3, .ring = &r};
	run_worker(&a);
	assert_int_equal(a.first_id & 63, 0);
	assert_int_equal(a.owner_seen, a.tid);
	assert_int_equal(fl_load_acquire(&r.lanes[0].owner), 0); /* given back at thread exit */

	/* lane 0 still holds a's records: b prefers the drained lane 1 */
	struct worker b = {.s = s, .count = 2, .ring = &r};
	run_worker(&b);
	assert_int_equal(b.first_id & 63, 1);
	assert_int_equal(b.owner_seen, b.tid);
	assert_int_equal(pending(&r, 0), 3);
	drain(&r, 0);
	drain(&r, 1);

	/* both drained and free: c gets lane 0 again and carries on its sequence */
	struct worker c = {.s = s, .count = 2, .ring = &r};
	run_worker(&c);
	assert_int_equal(c.first_id & 63, 0);
	assert_int_equal(c.first_id >> 6, 4); /* seq 3: a's three came first */
	assert_int_equal(c.owner_seen, c.tid);
	uint64_t seq;
	Fugue__Event *e = take(&r, 0, &seq);
	assert_non_null(e);
	assert_int_equal(seq, 3);
	assert_int_equal(e->tid, c.tid);
	fugue__event__free_unpacked(e, NULL);
	check_stats(s, 7, 7, 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* With one lane, a thread after the first one exited owns lane 0 (not shared mode). */
static void test_lane_reclaim_one_lane(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "reclaim1", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 16384});
	struct fl_ring r;
	ring_of(s, &r);
	struct worker a = {.s = s, .count = 2, .ring = &r};
	run_worker(&a);
	assert_int_equal(a.owner_seen, a.tid);
	struct worker b = {.s = s, .count = 2, .ring = &r};
	run_worker(&b); /* lane 0 not drained yet: still free, so b owns it */
	assert_int_equal(b.owner_seen, b.tid);
	drain(&r, 0);

	/* now share it: c holds lane 0 while d arrives; c goes on (locked now), then both exit */
	pthread_barrier_t before, mid, after;
	pthread_barrier_init(&before, NULL, 2);
	pthread_barrier_init(&mid, NULL, 2);
	pthread_barrier_init(&after, NULL, 2);
	struct worker c = {
	    .s = s, .count = 50, .ring = &r, .before = &before, .mid = &mid, .after = &after, .index = 1};
	struct worker d = {.s = s, .count = 50, .ring = &r, .index = 2};
	pthread_t tc, td;
	assert_int_equal(pthread_create(&tc, NULL, work, &c), 0);
	pthread_barrier_wait(&before); /* c owns lane 0 and has emitted once */
	assert_int_equal(pthread_create(&td, NULL, work, &d), 0);
	assert_int_equal(pthread_join(td, NULL), 0);
	assert_int_equal(d.first_id & 63, 0);
	assert_int_equal(d.owner_seen, c.tid); /* d only shared it */
	pthread_barrier_wait(&mid);
	pthread_barrier_wait(&after);
	assert_int_equal(pthread_join(tc, NULL), 0);
	assert_int_equal(c.errors + d.errors, 0);
	assert_int_equal(fl_load_acquire(&r.lanes[0].owner), 0);

	/* e, after both are gone, owns the lane again even though it was shared and is not drained */
	struct worker e = {.s = s, .count = 1, .ring = &r};
	run_worker(&e);
	assert_int_equal(e.owner_seen, e.tid);

	/* every record there, each thread's in order */
	uint64_t next[3] = {0, 0, 0}, want_seq = 4;
	Fugue__Event *ev;
	uint64_t seq;
	unsigned total = 0;
	while ((ev = take(&r, 0, &seq))) {
		assert_int_equal(seq, want_seq++);
		uint32_t st = ev->transcript->stream;
		assert_true(st <= 2);
		uint64_t ctr;
		assert_int_equal(ev->transcript->data.len, 8);
		memcpy(&ctr, ev->transcript->data.data, 8);
		if (st != 0) {
			assert_int_equal(ctr, next[st]);
			next[st]++;
		}
		total++;
		fugue__event__free_unpacked(ev, NULL);
	}
	assert_int_equal(total, 101);
	assert_int_equal(next[1], 50);
	assert_int_equal(next[2], 50);
	check_stats(s, 105, 105, 0);
	pthread_barrier_destroy(&before);
	pthread_barrier_destroy(&mid);
	pthread_barrier_destroy(&after);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

struct consumer {
	struct fl_ring *ring;
	_Atomic int stop;
	unsigned threads;
	uint64_t want;
	uint64_t got;
	uint64_t next[64];    /* per producer thread: next counter expected */
	uint64_t lane_seq[8]; /* per lane: next sequence number expected */
	uint32_t lane_stream[8];
	unsigned slow; /* release one record at a time, yielding in between */
	char err[256];
};

/* Drains every lane until it has seen want records, checking order and exactly-once. */
static void *consume(void *arg)
{
	struct consumer *c = arg;
	struct fl_rec recs[64];
	char why[256];
	while (c->got < c->want && !c->err[0]) {
		unsigned seen = 0;
		for (uint32_t l = 0; l < c->ring->lane_count && !c->err[0]; l++) {
			uint64_t nt;
			int n = fl_lane_peek(c->ring, l, recs, c->slow ? 1 : 64, &nt, why, sizeof why);
			if (n < 0) {
				snprintf(c->err, sizeof c->err, "%s", why);
				break;
			}
			for (int i = 0; i < n; i++) {
				if (recs[i].seq != c->lane_seq[l]++) {
					snprintf(c->err, sizeof c->err, "lane %u: seq %llu, want %llu", l,
						 (unsigned long long)recs[i].seq,
						 (unsigned long long)c->lane_seq[l] - 1);
					break;
				}
				Fugue__Event *e = fugue__event__unpack(NULL, recs[i].len, recs[i].data);
				if (!e || e->body_case != FUGUE__EVENT__BODY_TRANSCRIPT ||
				    e->transcript->stream >= c->threads || e->transcript->data.len != 8) {
					snprintf(c->err, sizeof c->err, "lane %u seq %llu: bad record", l,
						 (unsigned long long)recs[i].seq);
					if (e)
						fugue__event__free_unpacked(e, NULL);
					break;
				}
				uint64_t ctr;
				memcpy(&ctr, e->transcript->data.data, 8);
				uint32_t st = e->transcript->stream;
				if (ctr != c->next[st])
					snprintf(c->err, sizeof c->err, "thread %u: counter %llu, want %llu", st,
						 (unsigned long long)ctr, (unsigned long long)c->next[st]);
				c->next[st]++;
				fugue__event__free_unpacked(e, NULL);
				c->got++;
			}
			fl_lane_release(c->ring, l, nt);
			seen += (unsigned)n;
			if (c->slow)
				sched_yield();
		}
		if (!seen)
			sched_yield();
	}
	return NULL;
}

enum { MULTI = 10, MULTI_ROUNDS = 5 };

struct multi {
	fl_session *s[MULTI];
	int64_t ids[MULTI_ROUNDS][MULTI];
	struct fl_ring *r;
	uint32_t tid, owner_seen[MULTI];
};

static void *emit_round_robin(void *arg)
{
	struct multi *m = arg;
	m->tid = tid_now();
	for (int round = 0; round < MULTI_ROUNDS; round++)
		for (int i = 0; i < MULTI; i++)
			m->ids[round][i] = fl_emit_state(m->s[i], 0, "a", "b", NULL);
	for (int i = 0; i < MULTI; i++)
		m->owner_seen[i] = fl_load_acquire(&m->r[i].lanes[0].owner);
	return NULL;
}

/*
 * One thread, more sessions than it keeps lane slots for (8): it finds its own
 * lane again after an eviction, and at exit gives back every lane it owns.
 */
static void test_many_sessions_one_thread(void **state)
{
	(void)state;
	static struct multi m;
	static struct fl_ring r[MULTI];
	m.r = r;
	for (int i = 0; i < MULTI; i++) {
		char id[32];
		snprintf(id, sizeof id, "multi-%d", i);
		m.s[i] =
		    open_ok((struct fl_session_opts){.id = id, .level = FL_LEVEL_FULL, .lanes = 2, .lane_size = 4096});
		ring_of(m.s[i], &r[i]);
	}
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, emit_round_robin, &m), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	for (int i = 0; i < MULTI; i++) {
		for (int round = 0; round < MULTI_ROUNDS; round++)
			assert_int_equal(m.ids[round][i], ((int64_t)round + 1) << 6); /* lane 0, seq = round */
		assert_int_equal(m.owner_seen[i], m.tid);
		assert_int_equal(fl_load_acquire(&r[i].lanes[0].owner), 0);
		assert_int_equal(fl_load_acquire(&r[i].lanes[1].owner), 0);
		assert_int_equal(pending(&r[i], 0), MULTI_ROUNDS);
		assert_int_equal(pending(&r[i], 1), 0);
		fl_ring_detach(&r[i]);
		close_and_unlink(m.s[i]);
	}
}

/* More threads than lanes: the extra ones share under a lock; nothing lost, each thread's order kept. */
static void test_shared_lanes(void **state)
{
	(void)state;
	enum { T = 6 };
	unsigned per = scaled(20000, 5);
	fl_session *s = open_ok((struct fl_session_opts){
	    .id = "shared", .level = FL_LEVEL_FULL, .lanes = 2, .lane_size = 16384, .full_policy = FL_FULL_BLOCK});
	struct fl_ring r;
	ring_of(s, &r);
	struct consumer c = {.ring = &r, .threads = T, .want = (uint64_t)T * per};
	pthread_t ct, t[T];
	struct worker w[T];
	pthread_barrier_t before;
	pthread_barrier_init(&before, NULL, T);
	assert_int_equal(pthread_create(&ct, NULL, consume, &c), 0);
	for (uint32_t i = 0; i < T; i++) {
		/* everyone has claimed before anyone goes on, so four threads must share */
		w[i] = (struct worker){.s = s, .count = per, .index = i, .before = &before, .ring = &r};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	unsigned owners = 0;
	for (int i = 0; i < T; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
		owners += w[i].owner_at_barrier == w[i].tid;
	}
	assert_int_equal(owners, 2); /* one per lane; the other four shared */
	assert_int_equal(pthread_join(ct, NULL), 0);
	if (c.err[0])
		fail_msg("consumer: %s", c.err);
	assert_int_equal(c.got, (uint64_t)T * per);
	for (int i = 0; i < T; i++)
		assert_int_equal(c.next[i], per);
	assert_int_equal(c.lane_seq[0] + c.lane_seq[1], (uint64_t)T * per);
	check_stats(s, (uint64_t)T * per, (uint64_t)T * per, 0);
	pthread_barrier_destroy(&before);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/*
 * Threads that come and go while others emit: lanes are claimed, shared, given
 * back and claimed again under load; still every record exactly once, in order.
 */
static void test_lane_churn(void **state)
{
	(void)state;
	enum { T = 24 };
	unsigned per = scaled(3000, 5);
	fl_session *s = open_ok((struct fl_session_opts){
	    .id = "churn", .level = FL_LEVEL_FULL, .lanes = 2, .lane_size = 8192, .full_policy = FL_FULL_BLOCK});
	struct fl_ring r;
	ring_of(s, &r);
	struct consumer c = {.ring = &r, .threads = T, .want = (uint64_t)T * per};
	pthread_t ct, t[T];
	struct worker w[T];
	assert_int_equal(pthread_create(&ct, NULL, consume, &c), 0);
	/* in waves of three, each wave started while the last is still running */
	for (uint32_t i = 0; i < T; i++) {
		w[i] = (struct worker){.s = s, .count = per, .index = i};
		assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
		if (i % 3 == 2 && i >= 5) /* wave i/3 started: wait for the one before it */
			for (uint32_t k = i - 5; k <= i - 3; k++)
				assert_int_equal(pthread_join(t[k], NULL), 0);
	}
	for (uint32_t i = T - 3; i < T; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(pthread_join(ct, NULL), 0);
	if (c.err[0])
		fail_msg("consumer: %s", c.err);
	for (int i = 0; i < T; i++) {
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(c.next[i], per);
	}
	assert_int_equal(c.got, (uint64_t)T * per);
	assert_int_equal(c.lane_seq[0] + c.lane_seq[1], (uint64_t)T * per);
	check_stats(s, (uint64_t)T * per, (uint64_t)T * per, 0);
	assert_int_equal(fl_load_acquire(&r.lanes[0].owner), 0);
	assert_int_equal(fl_load_acquire(&r.lanes[1].owner), 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* ---- blocking mode ------------------------------------------------------------------ */

/* A tiny lane and a consumer that releases one record at a time: FL_FULL_BLOCK loses nothing. */
static void test_block_slow_consumer(void **state)
{
	(void)state;
	unsigned n = scaled(5000, 5);
	fl_session *s = open_ok((struct fl_session_opts){
	    .id = "block", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096, .full_policy = FL_FULL_BLOCK});
	struct fl_ring r;
	ring_of(s, &r);
	struct consumer c = {.ring = &r, .threads = 1, .want = n, .slow = 1};
	pthread_t ct;
	assert_int_equal(pthread_create(&ct, NULL, consume, &c), 0);
	for (uint64_t i = 0; i < n; i++) {
		int64_t id = fl_emit_transcript(s, 0, 0, &i, sizeof i);
		if (id <= 0)
			fail_msg("emit %llu: %lld", (unsigned long long)i, (long long)id);
	}
	assert_int_equal(pthread_join(ct, NULL), 0);
	if (c.err[0])
		fail_msg("consumer: %s", c.err);
	assert_int_equal(c.got, n);
	assert_int_equal(c.next[0], n);
	check_stats(s, n, n, 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* With a timeout and nobody draining, a blocked emit gives up with -ENOBUFS and counts the drop. */
static void test_block_timeout(void **state)
{
	(void)state;
	fl_session *s = open_ok((struct fl_session_opts){.id = "block-to",
							 .level = FL_LEVEL_FULL,
							 .lanes = 1,
							 .lane_size = 4096,
							 .full_policy = FL_FULL_BLOCK,
							 .block_timeout_ns = 5 * 1000 * 1000});
	struct fl_ring r;
	ring_of(s, &r);
	uint8_t data[100] = {1};
	unsigned n = 0;
	int64_t id;
	while ((id = fl_emit_input(s, 0, data, sizeof data)) > 0)
		n++;
	assert_int_equal(id, -ENOBUFS);
	/* it blocked only when the lane was really full: as many fit as in drop mode */
	assert_lane_full(&r, n);
	assert_int_equal(fl_emit_input(s, 0, data, sizeof data), -ENOBUFS);
	check_stats(s, n + 2, n, 2);
	assert_int_equal(fl_load_acquire(&r.lanes[0].waiters), 0);
	drain(&r, 0);
	id = fl_emit_input(s, 0, data, sizeof data);
	assert_true(id > 0);
	assert_int_equal(id >> 6, n + 3);
	check_stats(s, n + 3, n + 1, 2);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

struct dropper {
	fl_session *s;
	_Atomic int done;
	unsigned n;
};

static void *drop_many(void *arg)
{
	struct dropper *d = arg;
	uint8_t data[200] = {0};
	for (unsigned i = 0; i < d->n; i++)
		fl_emit_input(d->s, 0, data, sizeof data);
	atomic_store(&d->done, 1);
	return NULL;
}

/* Stats polled while another thread drops: never more dropped than emitted, totals exact at the end. */
static void test_stats_while_dropping(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "stats", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096});
	struct dropper d = {.s = s, .n = scaled(2000000, 10)};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, drop_many, &d), 0);
	uint64_t polls = 0, last_emitted = 0;
	while (!atomic_load(&d.done)) {
		struct fl_stats st;
		fl_session_stats(s, &st);
		if (st.dropped > st.emitted || st.admitted > st.emitted || st.admitted + st.dropped != st.emitted)
			fail_msg("poll %llu: emitted %llu admitted %llu dropped %llu", (unsigned long long)polls,
				 (unsigned long long)st.emitted, (unsigned long long)st.admitted,
				 (unsigned long long)st.dropped);
		assert_true(st.emitted >= last_emitted);
		last_emitted = st.emitted;
		polls++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_int_equal(st.emitted, d.n);
	struct fl_ring r;
	ring_of(s, &r);
	assert_true(st.admitted > 0);
	assert_int_equal(st.admitted, (uint64_t)pending(&r, 0)); /* nobody drained: the full lane's worth */
	assert_int_equal(st.dropped, d.n - st.admitted);
	fl_ring_detach(&r);
	printf("%llu polls\n", (unsigned long long)polls);
	close_and_unlink(s);
}

/* A forked child must not write into the parent's lanes: its emits are refused, its close is local. */
static void test_fork_child_refused(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "forked", .level = FL_LEVEL_FULL, .lanes = 2, .lane_size = 4096});
	assert_true(fl_emit_input(s, 0, "p", 1) > 0); /* this thread owns lane 0 */
	fflush(stdout);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int ok = fl_emit_input(s, 0, "c", 1) == -ECHILD &&
			 fl_emit_spawn(s, 0, 1, 0, NULL, 0, NULL) == -ECHILD && fl_get_level(s) == FL_LEVEL_FULL;
		ok = ok && fl_session_close(s) == 0;
		_exit(ok ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct fl_ring r;
	ring_of(s, &r);
	assert_int_equal(fl_load_acquire(&r.hdr->closed), 0);
	assert_int_equal(pending(&r, 0), 1);
	assert_int_equal(pending(&r, 1), 0);
	int64_t id = fl_emit_input(s, 0, "p", 1);
	assert_int_equal(id, (2 << 6) | 0);
	check_stats(s, 2, 2, 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* Zero-copy capture: records filled in place decode with protobuf-c byte for byte, at every wrap offset. */
static void test_capture_roundtrip(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "capture", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096});
	struct fl_ring r;
	ring_of(s, &r);
	struct fl_capture c;
	uint8_t want[1100];
	unsigned rounds = scaled(3000, 10);
	for (unsigned i = 0; i < rounds; i++) {
		size_t n = 1 + (i * 37) % 900;
		for (size_t k = 0; k < n; k++)
			want[k] = (uint8_t)(i + k * 7);
		uint32_t stream = i % 3;
		uint64_t ref = i % 2 ? 1000 + i : 0;
		int input = i % 5 == 4;
		int64_t id = input ? fl_capture_input(s, ref, 900, &c) : fl_capture_transcript(s, ref, stream, 900, &c);
		assert_true(id > 0);
		assert_non_null(c.data);
		assert_true(c.cap >= n);
		/* 8-aligned whatever the header holds (ref or not, stream 0..2, input): parsing in place is not slowed
		 */
		assert_int_equal((uintptr_t)c.data % 8, 0);
		memcpy(c.data, want, n);
		assert_int_equal(fl_capture_commit(s, &c, n), id);
		Fugue__Event *e = take(&r, 0, NULL);
		assert_non_null(e);
		assert_int_equal(e->id, (uint64_t)id);
		assert_int_equal(e->ref, ref);
		assert_int_equal(e->pid, (uint32_t)getpid());
		assert_int_equal(e->tid, tid_now());
		assert_true(e->ts_ns > 0);
		if (input) {
			assert_int_equal(e->body_case, FUGUE__EVENT__BODY_INPUT);
			check_bytes(e->input->data, want, n);
		} else {
			assert_int_equal(e->body_case, FUGUE__EVENT__BODY_TRANSCRIPT);
			assert_int_equal(e->transcript->stream, stream);
			check_bytes(e->transcript->data, want, n);
		}
		fugue__event__free_unpacked(e, NULL);
	}
	/* abandoned (n = 0) and refused (n > cap) reservations publish nothing and spend no seq */
	int64_t a = fl_capture_transcript(s, 0, 1, 64, &c);
	assert_true(a > 0);
	assert_int_equal(fl_capture_commit(s, &c, 0), 0);
	int64_t b = fl_capture_transcript(s, 0, 1, 64, &c);
	assert_int_equal(b, a);
	assert_int_equal(fl_capture_commit(s, &c, c.cap + 1), -EINVAL);
	assert_int_equal(pending(&r, 0), 0);
	assert_int_equal(fl_emit_input(s, 0, "x", 1), a);
	drain(&r, 0);
	/* the cap is bounded by what one record may hold, a quarter of the lane */
	assert_true(fl_capture_transcript(s, 0, 1, 1 << 20, &c) > 0);
	size_t cap = c.cap;
	assert_true(cap < 1024 && cap > 900);
	memset(c.data, 'z', cap);
	assert_true(fl_capture_commit(s, &c, cap) > 0);
	Fugue__Event *e = take(&r, 0, NULL);
	assert_non_null(e);
	assert_int_equal(e->transcript->data.len, cap);
	fugue__event__free_unpacked(e, NULL);
	assert_int_equal(fl_capture_transcript(s, 0, 1, 0, &c), -EINVAL);

	/* below full: 0, nothing reserved, the capture left as it was */
	fl_set_level(s, FL_LEVEL_PROMPTS);
	struct fl_capture untouched = {.data = want, .cap = 7};
	assert_int_equal(fl_capture_transcript(s, 0, 1, 64, &untouched), 0);
	assert_int_equal(fl_capture_input(s, 0, 64, &untouched), 0);
	assert_ptr_equal(untouched.data, want);
	assert_int_equal(untouched.cap, 7);
	assert_int_equal(pending(&r, 0), 0);
	check_stats(s, rounds + 2, rounds + 2, 0);
	fl_ring_detach(&r);
	close_and_unlink(s);
}

/* A full lane: the reservation is refused and counted as dropped, like an emit. */
static void test_capture_full(void **state)
{
	(void)state;
	fl_session *s =
	    open_ok((struct fl_session_opts){.id = "capfull", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 4096});
	struct fl_capture c;
	unsigned n = 0;
	int64_t id;
	while ((id = fl_capture_transcript(s, 0, 1, 200, &c)) > 0) {
		memset(c.data, 'a', 200);
		assert_true(fl_capture_commit(s, &c, 200) > 0);
		n++;
	}
	assert_int_equal(id, -ENOBUFS);
	assert_true(n > 10);
	check_stats(s, n + 1, n, 1);
	close_and_unlink(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_roundtrip_random, hermetic),
    cmocka_unit_test_setup(test_roundtrip_sizes, hermetic),
    cmocka_unit_test_setup(test_level_table, hermetic),
    cmocka_unit_test_setup(test_level_second_mapping, hermetic),
    cmocka_unit_test_setup(test_refused_ids, hermetic),
    cmocka_unit_test_setup(test_refused_levels, hermetic),
    cmocka_unit_test_setup(test_level_precedence, hermetic),
    cmocka_unit_test_setup(test_uuid7_id, hermetic),
    cmocka_unit_test_setup(test_exists_refused, hermetic),
    cmocka_unit_test_setup(test_full_lane, hermetic),
    cmocka_unit_test_setup(test_emsgsize, hermetic),
    cmocka_unit_test_setup(test_lane_reclaim, hermetic),
    cmocka_unit_test_setup(test_lane_reclaim_one_lane, hermetic),
    cmocka_unit_test_setup(test_shared_lanes, hermetic),
    cmocka_unit_test_setup(test_block_slow_consumer, hermetic),
    cmocka_unit_test_setup(test_block_timeout, hermetic),
    cmocka_unit_test_setup(test_fork_child_refused, hermetic),
    cmocka_unit_test_setup(test_stats_while_dropping, hermetic),
    cmocka_unit_test_setup(test_many_sessions_one_thread, hermetic),
    cmocka_unit_test_setup(test_lane_churn, hermetic),
    cmocka_unit_test_setup(test_capture_roundtrip, hermetic),
    cmocka_unit_test_setup(test_capture_full, hermetic),
};

FL_TEST_MAIN("producer", tests)

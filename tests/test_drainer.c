/* SPDX-License-Identifier: MIT */
/* test_drainer.c: fugue-logd end to end — real producer processes, a real drainer process, real files, exact counts. */
#define _GNU_SOURCE
#include "fl_test.h"
#include "fl_itest.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "fuguelog.h"
#include "config.h"
#include "checkpoint.h"
#include "jsonl.h"
#include "sink.h"
#include "ring.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static char root[1024];

/* A fresh log root and no rings of this test left over. */
static void fresh(void)
{
	unsetenv("FUGUE_SESSION_LOG"); /* the levels here are the test's, not the caller's */
	snprintf(root, sizeof root, "%s/root", fl_test_tmp());
	fl_it_rmtree(root);
	fl_it_shm_cleanup();
}

static fl_session *open_session(const char *id, int level, int block, uint32_t lanes, uint64_t lane_size)
{
	fl_session *s = NULL;
	char why[256] = "";
	struct fl_session_opts o = {.id = id,
				    .level = level,
				    .lanes = lanes,
				    .lane_size = lane_size,
				    .full_policy = block ? FL_FULL_BLOCK : FL_FULL_DROP,
				    /* bounded, so a drainer that died makes the test fail instead of hang */
				    .block_timeout_ns = 60ull * 1000000000u};
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc < 0) {
		fprintf(stderr, "fl_session_open(%s): %s\n", id, why);
		_exit(90);
	}
	return s;
}

static const char *const argv3[] = {"sh", "-c", "echo \"quoted\"\tand\ttabs"};
static const char *const args2[] = {"--flag", "h\xc3\xa9llo \xe2\x9c\x93"};

/*
 * One round of every producer kind, each referring to the spawn of the round;
 * text with escapes, valid multibyte UTF-8, and bytes that are not UTF-8.
 */
static int emit_round(fl_session *s, int i)
{
	static const uint8_t bin[] = {'o', 'u', 't', 0xff, 0xfe, 0x00, '\n', 0x1b, '[', 'm'};
	static const uint8_t ctl[] = {'l', 's', 0x00, '\r', '\n', 0x7f};
	char task[32];
	snprintf(task, sizeof task, "task-%d", i);
	int64_t sp = fl_emit_spawn(s, 0, 1000u + (uint32_t)i, 1, argv3, 3, "/tmp/dir \"x\"");
	if (sp <= 0)
		return -1;
	uint64_t r = (uint64_t)sp;
	int64_t rc = 0;
	rc |= fl_emit_action(s, r, "attach", "pane-1", "") < 0;
	rc |= fl_emit_command(s, r, "make", args2, 2) < 0;
	rc |= fl_emit_completion(s, r, task, "ok", 12345) < 0;
	rc |= fl_emit_error(s, r, -2, "no such file: \\path\\", "open") < 0;
	rc |= fl_emit_state(s, r, "idle", "busy", "turn") < 0;
	static const char prompt[] = "write a \"poem\"\n\xe2\x80\xa8 please";
	rc |= fl_emit_prompt(s, r, prompt, sizeof prompt - 1) < 0;
	rc |= fl_emit_transcript(s, r, 1, bin, sizeof bin) < 0;
	rc |= fl_emit_input(s, r, ctl, sizeof ctl) < 0;
	rc |= fl_emit_exit(s, r, 0, 0, 99) < 0;
	return rc ? -1 : 0;
}

/* Forks a producer child that runs fn(arg) and exits with its return value. */
static pid_t spawn_child(int (*fn)(void *), void *arg)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
		_exit(fn(arg));
	}
	return p;
}

/* The child's exit code (128+signal when killed); a child still running after 120 s is killed and fails the test. */
static int child_status(pid_t p)
{
	int st;
	double end = fl_it_now() + 120;
	for (;;) {
		pid_t r = waitpid(p, &st, WNOHANG);
		if (r == p)
			break;
		assert_true(r == 0);
		if (fl_it_now() > end) {
			kill(p, SIGKILL);
			waitpid(p, &st, 0);
			fail_msg("producer child %d still running after 120 s", (int)p);
		}
		fl_it_sleep_ms(2);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void session_dir(char *out, size_t cap, const char *id)
{
	snprintf(out, cap, "%s/%s", root, id);
}

/* Runs check_jsonl.py on one session with the checks every test wants plus extra ones. */
static void check(const char *id, const char *const *extra)
{
	const char *args[48] = {"--gapless", "--unique-ids", "--refs", "--lane-order"};
	int n = 4;
	for (int i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	char dir[1200];
	session_dir(dir, sizeof dir, id);
	int rc = fl_it_check(dir, args);
	if (rc == 77)
		skip();
	if (rc != 0) {
		char out[1200];
		snprintf(out, sizeof out, "%s/check.json", fl_test_tmp());
		char *b = fl_it_read_file(out, NULL);
		fprintf(stderr, "check_jsonl.py on %s failed (%d): %s\n", dir, rc, b ? b : "");
		free(b);
	}
	assert_int_equal(rc, 0);
}

/* "key=n" into a pool of strings that lives for the test. */
static const char *expect(char pool[][64], int *used, const char *key, long n)
{
	snprintf(pool[*used], 64, "--expect=%s=%ld", key, n);
	return pool[(*used)++];
}

/* ---- unit: the line renderer --------------------------------------------------------------- */

static int has(const struct fl_jbuf *b, const char *needle)
{
	return memmem(b->p, b->len, needle, strlen(needle)) != NULL;
}

static void test_render_line(void **state)
{
	(void)state;
	struct fl_jbuf b = {0};
	struct fl_tsfmt tc = {0};
	Fugue__Event ev = FUGUE__EVENT__INIT;
	Fugue__Transcript t = FUGUE__TRANSCRIPT__INIT;
	uint8_t bytes[] = {'a', 0xff};
	ev.ts_ns = 1795624926123456789ull;
	ev.id = 129;
	ev.ref = 64;
	ev.pid = 7;
	ev.tid = 8;
	ev.body_case = FUGUE__EVENT__BODY_TRANSCRIPT;
	ev.transcript = &t;
	t.stream = 2;
	t.data.data = bytes;
	t.data.len = sizeof bytes;
	assert_int_equal(fl_jsonl_render(&b, &tc, &ev, "s-1", 5), 0);
	const char *want =
	    "{\"ts\":\"2026-11-25T16:42:06.123456789Z\",\"ts_ns\":\"1795624926123456789\",\"seq\":5,"
	    "\"session\":\"s-1\",\"class\":\"system\",\"event\":\"transcript\",\"level\":\"full\",\"pid\":7,"
	    "\"tid\":8,\"id\":\"129\",\"ref\":\"64\",\"data\":{\"stream\":2,\"data_b64\":\"Yf8=\"}}\n";
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.p, want, b.len);

	/* valid UTF-8 with control characters: a JSON string with escapes */
	uint8_t text[] = {'"', '\\', '\n', 0x01, 0x00, 0xc3, 0xa9};
	t.data.data = text;
	t.data.len = sizeof text;
	b.len = 0;
	assert_int_equal(fl_jsonl_render(&b, &tc, &ev, "s-1", 6), 0);
	assert_true(has(&b, "\"data\":\"\\\"\\\\\\n\\u0001\\u0000\xc3\xa9\"}}\n"));

	/* a level change seen for the first time: old is not known */
	Fugue__Level lv = FUGUE__LEVEL__INIT;
	lv.new_ = 4;
	lv.changes = 3;
	ev.body_case = FUGUE__EVENT__BODY_LEVEL;
	ev.level = &lv;
	b.len = 0;
	assert_int_equal(fl_jsonl_render(&b, &tc, &ev, "s-1", 7), 0);
	assert_true(has(&b, "\"data\":{\"old\":null,\"new\":\"full\",\"changes\":\"3\"}}\n"));

	/* no body: refused, buffer unchanged */
	ev.body_case = FUGUE__EVENT__BODY__NOT_SET;
	size_t before = b.len;
	assert_int_equal(fl_jsonl_render(&b, &tc, &ev, "s-1", 8), -EINVAL);
	assert_int_equal(b.len, before);

	/* the time cache must not leak one second's date into the next */
	char t1[32];
	fl_jsonl_time(&tc, 1795624926999999999ull, t1);
	assert_string_equal(t1, "2026-11-25T16:42:06.999999999Z");
	fl_jsonl_time(&tc, 1795624927000000000ull, t1);
	assert_string_equal(t1, "2026-11-25T16:42:07.000000000Z");
	fl_jsonl_time(&tc, 0, t1);
	assert_string_equal(t1, "1970-01-01T00:00:00.000000000Z");

	assert_true(fl_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));
	assert_false(fl_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
	assert_false(fl_utf8_valid((const uint8_t *)"\xc0\xaf", 2));	     /* overlong */
	assert_false(fl_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(fl_utf8_valid((const uint8_t *)"\xe2\x82", 2));	     /* cut short */
	fl_jbuf_free(&b);
}

/* ---- unit: checkpoint slots and sink resume ----------------------------------------------- */

static int scratch_dir(const char *name)
{
	char p[1200];
	snprintf(p, sizeof p, "%s/%s", fl_test_tmp(), name);
	fl_it_rmtree(p);
	assert_int_equal(mkdir(p, 0700), 0);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	return fd;
}

static void test_checkpoint_slots(void **state)
{
	(void)state;
	int dfd = scratch_dir("ckpt");
	struct fl_ckpt c = {0}, got;
	struct fl_ckpt_file f;
	assert_int_equal(fl_ckpt_load(dfd, &got), -ENOENT);
	assert_int_equal(fl_ckpt_open(&f, dfd), 0);
	c.next_seq = 10;
	assert_int_equal(fl_ckpt_write(&f, &c, 0), 0);
	c.next_seq = 20;
	c.lane_next[3] = 77;
	assert_int_equal(fl_ckpt_write(&f, &c, 1), 0);
	assert_int_equal(fl_ckpt_load(dfd, &got), 0);
	assert_int_equal(got.next_seq, 20);
	assert_int_equal(got.lane_next[3], 77);
	fl_ckpt_close(&f);

	/* a torn newest slot (generation 2 lives in slot 0): the older one wins */
	int fd = openat(dfd, ".checkpoint", O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 200), 1);
	assert_int_equal(fl_ckpt_load(dfd, &got), 0);
	assert_int_equal(got.next_seq, 10);

	/* writing on continues after the valid slot and never overwrites it */
	assert_int_equal(fl_ckpt_open(&f, dfd), 0);
	c.next_seq = 30;
	assert_int_equal(fl_ckpt_write(&f, &c, 0), 0);
	assert_int_equal(fl_ckpt_load(dfd, &got), 0);
	assert_int_equal(got.next_seq, 30);
	fl_ckpt_close(&f);

	/* both slots damaged: no checkpoint to trust */
	assert_int_equal(pwrite(fd, "X", 1, 200), 1);
	assert_int_equal(pwrite(fd, "X", 1, 4096 + 200), 1);
	assert_int_equal(fl_ckpt_load(dfd, &got), -EBADMSG);
	close(fd);
	close(dfd);
}

static void test_sink_resume_truncates(void **state)
{
	(void)state;
	int rfd = scratch_dir("sinkroot");
	char why[256];
	struct fl_sink *s;
	struct fl_sink_state st;
	assert_int_equal(fl_sink_open(&s, rfd, "sess", NULL, why, sizeof why), 0);
	assert_int_equal(fl_sink_append(s, FL_SINK_SYSTEM, "a\n", 2, 1, 100), 0);
	assert_int_equal(fl_sink_append(s, FL_SINK_USER, "bb\n", 3, 2, 101), 0);
	assert_int_equal(fl_sink_append(s, FL_SINK_SYSTEM, "ccc\n", 4, 3, 102), 0);
	assert_int_equal(fl_sink_flush(s), 0);
	fl_sink_get_state(s, &st); /* what a checkpoint would hold */
	assert_int_equal(st.size[FL_SINK_SYSTEM], 6);
	assert_int_equal(st.size[FL_SINK_USER], 3);
	assert_int_equal(st.lines[FL_SINK_SYSTEM], 2);
	assert_int_equal(st.first_seq[FL_SINK_SYSTEM], 1);
	assert_int_equal(st.last_seq[FL_SINK_SYSTEM], 3);
	/* lines after the checkpoint, then a crash */
	assert_int_equal(fl_sink_append(s, FL_SINK_SYSTEM, "dddd\n", 5, 4, 103), 0);
	assert_int_equal(fl_sink_append(s, FL_SINK_USER, "eeeee\n", 6, 5, 104), 0);
	fl_sink_close(s);

	char p[1200];
	snprintf(p, sizeof p, "%s/sinkroot/sess/system.jsonl", fl_test_tmp());
	size_t n;
	char *b = fl_it_read_file(p, &n);
	assert_int_equal(n, 11);
	free(b);
	assert_int_equal(fl_sink_open(&s, rfd, "sess", &st, why, sizeof why), 0);
	b = fl_it_read_file(p, &n);
	assert_int_equal(n, 6);
	assert_memory_equal(b, "a\nccc\n", 6);
	free(b);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	fl_sink_close(s);

	/* a file shorter than its checkpoint is refused, not silently extended */
	assert_int_equal(truncate(p, 2), 0);
	assert_int_equal(fl_sink_open(&s, rfd, "sess", &st, why, sizeof why), -EBADMSG);

	/* a symlink in place of the session directory is refused */
	snprintf(p, sizeof p, "%s/sinkroot/evil", fl_test_tmp());
	assert_int_equal(symlink("/tmp", p), 0);
	assert_true(fl_sink_open(&s, rfd, "evil", NULL, why, sizeof why) < 0);
	close(rfd);
}

/* ---- every kind at every level ---------------------------------------------------------------- */

struct kinds_arg {
	char id[32];
	int level;
	int rounds;
};

static int kinds_child(void *a)
{
	struct kinds_arg *k = a;
	fl_session *s = open_session(k->id, k->level, 1, 4, 1u << 16);
	for (int i = 0; i < k->rounds; i++)
		if (emit_round(s, i) < 0)
			return 91;
	fl_session_close(s);
	return 0;
}

static void test_every_kind_every_level(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	int rounds = (int)fl_it_scale(500, 5);
	struct kinds_arg ka[4];
	pid_t kids[4];
	for (int l = 1; l <= 4; l++) {
		ka[l - 1] = (struct kinds_arg){.level = l, .rounds = rounds};
		snprintf(ka[l - 1].id, sizeof ka[l - 1].id, "kinds-%s", fl_level_name(l));
		kids[l - 1] = spawn_child(kinds_child, &ka[l - 1]);
	}
	for (int l = 0; l < 4; l++)
		assert_int_equal(child_status(kids[l]), 0);
	for (int l = 0; l < 4; l++)
		assert_true(fl_it_wait_state(root, ka[l].id, "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	for (int l = 1; l <= 4; l++) {
		char pool[32][64];
		int used = 0;
		const char *extra[40] = {"--state", "ended"};
		int n = 2;
		long total = 0, user = 0, system = 0;
		for (int k = FL_KIND_SPAWN; k <= FL_KIND_INPUT; k++) {
			char key[32];
			long want = fl_kind_min_level(k) <= l ? rounds : 0;
			snprintf(key, sizeof key, "event:%s", fl_kind_name(k));
			extra[n++] = expect(pool, &used, key, want);
			total += want;
			if (fl_kind_class(k) == FL_CLASS_USER)
				user += want;
			else
				system += want;
		}
		extra[n++] = expect(pool, &used, "total", total);
		extra[n++] = expect(pool, &used, "class:user", user);
		extra[n++] = expect(pool, &used, "class:system", system);
		extra[n++] = expect(pool, &used, "file:user.jsonl", user);
		extra[n++] = expect(pool, &used, "file:system.jsonl", system);
		extra[n++] = expect(pool, &used, "producer_lines", total);
		extra[n++] = expect(pool, &used, "drops", 0);
		extra[n++] = expect(pool, &used, "level_lines", 0);
		extra[n] = NULL;
		check(ka[l - 1].id, extra);
	}
	assert_int_equal(fl_it_shm_cleanup(), 0); /* every ended ring was unlinked by the drainer */
}

/* ---- the level flipped 1,000 times under full-speed emits ---------------------------------------- */

struct shared {
	_Atomic int stop;
	_Atomic int ready;
	_Atomic long progress;
	struct fl_stats st;
};

struct flips_arg {
	const char *id;
	struct shared *sh;
};

static int flips_child(void *a)
{
	struct flips_arg *f = a;
	/* small lanes and drop mode: losses happen and must be accounted exactly */
	fl_session *s = open_session(f->id, FL_LEVEL_FULL, 0, 2, 1u << 14);
	static const char chunk[200] = "transcript bytes";
	atomic_store(&f->sh->ready, 1);
	for (uint64_t i = 0; !atomic_load_explicit(&f->sh->stop, memory_order_relaxed); i++) {
		fl_emit_transcript(s, 0, 1, chunk, sizeof chunk);
		fl_emit_action(s, 0, "tick", "x", "");
		if ((i & 1023) == 0)
			sched_yield(); /* let the drainer run now and then on a small machine */
	}
	fl_session_stats(s, &f->sh->st);
	fl_session_close(s);
	return 0;
}

static void test_level_flips(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	struct flips_arg fa = {"flips", sh};
	pid_t kid = spawn_child(flips_child, &fa);
	while (!atomic_load(&sh->ready))
		fl_it_sleep_ms(1);
	char name[256], why[256];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, "flips"), 0);
	struct fl_ring r;
	assert_int_equal(fl_ring_attach(&r, name, why, sizeof why), 0);
	for (int i = 0; i < 1000; i++) {
		fl_ring_level_set(&r, i % 2 ? FL_LEVEL_FULL : FL_LEVEL_SPAWNS);
		if (i % 10 == 0)
			fl_it_sleep_ms(1); /* spread the flips over the run, so the drainer sees many of them apart */
	}
	atomic_store(&sh->stop, 1);
	assert_int_equal(child_status(kid), 0);
	fl_ring_detach(&r);
	assert_true(fl_it_wait_state(root, "flips", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	print_message("flips: admitted %llu, dropped %llu\n", (unsigned long long)sh->st.admitted,
		      (unsigned long long)sh->st.dropped);
	char pool[8][64];
	int used = 0;
	const char *extra[] = {"--state",
			       "ended",
			       "--level-chain", /* every line knows old and new: never null, each old the last new */
			       "full",
			       expect(pool, &used, "producer_lines", (long)sh->st.admitted),
			       expect(pool, &used, "drops", (long)sh->st.dropped),
			       expect(pool, &used, "level_changes", 1000),
			       NULL};
	check("flips", extra);
	munmap(sh, sizeof *sh);
}

/* ---- the drainer SIGKILLed and restarted 20 times during a run -------------------------------- */

struct steady_arg {
	const char *id;
	long count;
	uint32_t lanes;
	struct shared *sh;
};

static int steady_child(void *a)
{
	struct steady_arg *k = a;
	/* blocking mode and small lanes: the producer can only move on while a drainer runs, and loses nothing */
	fl_session *s = open_session(k->id, FL_LEVEL_FULL, 1, k->lanes, 1u << 14);
	for (long i = 0; i < k->count; i++) {
		int64_t rc = i % 3 ? fl_emit_action(s, 0, "step", "t", "detail text")
				   : fl_emit_transcript(s, 0, 1, "some output\n", 12);
		if (rc <= 0)
			return 92;
		atomic_store_explicit(&k->sh->progress, i + 1, memory_order_relaxed);
	}
	fl_session_close(s);
	return 0;
}

struct progress_arg {
	struct shared *sh;
	long want, count;
};

static int progress_cond(void *a)
{
	struct progress_arg *p = a;
	long got = atomic_load(&p->sh->progress);
	return got >= p->want || got >= p->count;
}

static void test_drainer_killed_20_times(void **state)
{
	(void)state;
	fresh();
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	struct steady_arg sa = {"restarts", fl_it_scale(200000, 10), 4, sh};
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	pid_t kid = spawn_child(steady_child, &sa);
	unsigned seed = 12345;
	int during = 0;
	for (int k = 0; k < 20; k++) {
		/* the producer moves only while this drainer drains: wait for a slice of the run, then kill anywhere */
		struct progress_arg pa = {sh, atomic_load(&sh->progress) + sa.count / 25, sa.count};
		fl_it_wait(progress_cond, &pa, 10);
		fl_it_sleep_ms(rand_r(&seed) % 4);
		during += atomic_load(&sh->progress) < sa.count;
		fl_it_drainer_kill(&d);
		fl_it_drainer_start(&d, root, NULL);
	}
	assert_int_equal(child_status(kid), 0);
	print_message("restarts: %d of 20 kills while the producer was still emitting\n", during);
	assert_true(fl_it_wait_state(root, "restarts", "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	char pool[4][64];
	int used = 0;
	const char *extra[] = {"--state", "ended", expect(pool, &used, "total", sa.count),
			       expect(pool, &used, "producer_lines", sa.count), NULL};
	check("restarts", extra);
	munmap(sh, sizeof *sh);
}

/* ---- a producer SIGKILLed mid-run --------------------------------------------------------------- */

struct victim_arg {
	const char *id;
	long count;
	struct shared *sh;
};

struct victim_half {
	fl_session *s;
	long count;
	int bad;
};

static void *victim_thread(void *a)
{
	struct victim_half *h = a;
	for (long i = 0; i < h->count; i++)
		if (fl_emit_transcript(h->s, 0, (uint32_t)i, "partial output", 14) <= 0)
			h->bad = 1;
	return NULL;
}

/* Two threads (two lanes) publish count events, then the process idles with its session open. */
static int victim_child(void *a)
{
	struct victim_arg *v = a;
	fl_session *s = open_session(v->id, FL_LEVEL_FULL, 1, 4, 1u << 14);
	struct victim_half h[2] = {{s, v->count / 2, 0}, {s, v->count - v->count / 2, 0}};
	pthread_t t;
	if (pthread_create(&t, NULL, victim_thread, &h[0]))
		return 94;
	victim_thread(&h[1]);
	pthread_join(t, NULL);
	if (h[0].bad || h[1].bad)
		return 93;
	atomic_store(&v->sh->ready, 1);
	for (;;)
		pause(); /* alive with an open session until SIGKILL */
}

static void test_producer_killed(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	struct victim_arg va = {"victim", fl_it_scale(20000, 4), sh};
	pid_t kid = spawn_child(victim_child, &va);
	while (!atomic_load(&sh->ready))
		fl_it_sleep_ms(1);
	kill(kid, SIGKILL);
	assert_int_equal(child_status(kid), 128 + SIGKILL);
	assert_true(fl_it_wait_state(root, "victim", "abandoned", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	char pool[4][64];
	int used = 0;
	const char *extra[] = {"--state",
			       "abandoned",
			       expect(pool, &used, "producer_lines", va.count),
			       expect(pool, &used, "abandoned", 1),
			       expect(pool, &used, "total", va.count + 1),
			       NULL};
	check("victim", extra);
	assert_int_equal(fl_it_shm_cleanup(), 0);
	munmap(sh, sizeof *sh);
}

/* ---- 32 sessions at once -------------------------------------------------------------------------- */

static void test_32_sessions(void **state)
{
	(void)state;
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	enum { N = 32 };
	struct kinds_arg ka[N];
	pid_t kids[N];
	int rounds = (int)fl_it_scale(300, 6);
	for (int i = 0; i < N; i++) {
		ka[i] = (struct kinds_arg){.level = FL_LEVEL_FULL, .rounds = rounds};
		snprintf(ka[i].id, sizeof ka[i].id, "many-%02d", i);
		kids[i] = spawn_child(kinds_child, &ka[i]);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(child_status(kids[i]), 0);
	for (int i = 0; i < N; i++)
		assert_true(fl_it_wait_state(root, ka[i].id, "ended", 60));
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	for (int i = 0; i < N; i++) {
		char pool[4][64];
		int used = 0;
		const char *extra[] = {"--state", "ended", expect(pool, &used, "total", 10L * rounds),
				       expect(pool, &used, "class:user", 4L * rounds), NULL};
		check(ka[i].id, extra);
	}
	assert_int_equal(fl_it_shm_cleanup(), 0);
}

/* ---- options, exit codes, daemon mode, SIGHUP ------------------------------------------------ */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

struct pidfile_arg {
	const char *path;
	int present;
};

static int pidfile_cond(void *a)
{
	struct pidfile_arg *p = a;
	return (access(p->path, F_OK) == 0) == p->present;
}

/* Waits (bounded) until the file holds the text. */
static int log_says(const char *path, const char *text)
{
	double end = fl_it_now() + 30;
	do {
		char *b = fl_it_read_file(path, NULL);
		int yes = b && strstr(b, text);
		free(b);
		if (yes)
			return 1;
		fl_it_sleep_ms(10);
	} while (fl_it_now() < end);
	return 0;
}

/* Kills the daemon this test started (its pid file names it), so a failed assertion leaves nothing
   running to hold the shm prefix for the next run. */
static int kill_daemon(void **state)
{
	(void)state;
	char pidf[1200];
	snprintf(pidf, sizeof pidf, "%s/root/r1/fugue-logd.pid", fl_test_tmp());
	char *op = fl_it_read_file(pidf, NULL);
	if (op && atoi(op) > 1) {
		char cmdp[64];
		snprintf(cmdp, sizeof cmdp, "/proc/%d/cmdline", atoi(op));
		char *cmd = fl_it_read_file(cmdp, NULL);
		if (cmd && strstr(cmd, "fugue-logd")) /* only if that pid is still our daemon */
			kill((pid_t)atoi(op), SIGKILL);
		free(cmd);
	}
	free(op);
	return 0;
}

static void test_options_daemon_sighup(void **state)
{
	/* a daemon left by an earlier run killed before its teardown would hold the prefix */
	kill_daemon(state);
	fresh();
	unsetenv("FUGUE_LOG_DIR");
	char bin[1024], conf[1200], r1[1200], r2[1200], pidf[1300], errf[1200];
	fl_it_build_path(bin, sizeof bin, "drainer/fugue-logd");
	snprintf(conf, sizeof conf, "%s/logd.conf", fl_test_tmp());
	snprintf(r1, sizeof r1, "%s/r1", root);
	snprintf(r2, sizeof r2, "%s/r2", root);
	snprintf(pidf, sizeof pidf, "%s/fugue-logd.pid", r1);
	snprintf(errf, sizeof errf, "%s/stdout.txt", fl_test_tmp());

	const char *bogus[] = {bin, "--bogus", NULL};
	assert_int_equal(fl_it_run(bogus, errf), 2);
	const char *relative[] = {bin, "--root", "relative/dir", NULL};
	assert_int_equal(fl_it_run(relative, errf), 3); /* a bad root, like a bad config */
	write_text(conf, "workers = lots\n");
	const char *bad[] = {bin, "--foreground", "--config", conf, NULL};
	assert_int_equal(fl_it_run(bad, errf), 3);
	const char *help[] = {bin, "--help", NULL};
	assert_int_equal(fl_it_run(help, errf), 0);
	char *h = fl_it_read_file(errf, NULL);
	assert_non_null(strstr(h, "Exit codes"));
	free(h);

	/* daemon mode: the parent returns 0 at once, the daemon writes its pid file */
	char text[2600];
	snprintf(text, sizeof text, "root = %s\n", r1);
	write_text(conf, text);
	const char *daemon[] = {bin, "--config", conf, NULL};
	assert_int_equal(fl_it_run(daemon, NULL), 0);
	struct pidfile_arg pa = {pidf, 1};
	assert_true(fl_it_wait(pidfile_cond, &pa, 30));
	char *ps = fl_it_read_file(pidf, NULL);
	pid_t dpid = (pid_t)atoi(ps);
	free(ps);
	assert_true(dpid > 1);
	assert_int_equal(kill(dpid, 0), 0);
	/* one drainer per prefix */
	const char *again[] = {bin, "--foreground", "--config", conf, NULL};
	assert_int_equal(fl_it_run(again, NULL), 4);

	/* SIGHUP: a bad config is refused and the daemon goes on; a new root takes the next sessions */
	char log[1300];
	snprintf(log, sizeof log, "%s/fugue-logd.log", r1);
	write_text(conf, "retention = forever\n");
	assert_int_equal(kill(dpid, SIGHUP), 0);
	assert_true(log_says(log, "config refused"));
	snprintf(text, sizeof text, "root = %s\n", r2);
	write_text(conf, text);
	assert_int_equal(kill(dpid, SIGHUP), 0);
	assert_true(log_says(log, "new sessions go to"));
	struct kinds_arg ka = {.id = "after-hup", .level = FL_LEVEL_FULL, .rounds = 3};
	assert_int_equal(child_status(spawn_child(kinds_child, &ka)), 0);
	assert_true(fl_it_wait_state(r2, "after-hup", "ended", 60));

	/* SIGTERM: clean stop, pid file gone */
	assert_int_equal(kill(dpid, SIGTERM), 0);
	pa.present = 0;
	assert_true(fl_it_wait(pidfile_cond, &pa, 60));
	snprintf(root, sizeof root, "%s", r2);
	const char *extra[] = {"--state", "ended", "--expect=total=30", NULL};
	check("after-hup", extra);
}

/* ---- niceness ---------------------------------------------------------------------------------- */

/* How many of pid's threads run at a niceness other than want (field 19 of /proc/<pid>/task/<tid>/stat); -1 unreadable.
 */
static int threads_not_at(pid_t pid, int want, int *threads)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int off = 0;
	*threads = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[600], buf[1024];
		snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		const char *p = strrchr(buf, ')'); /* the name may hold spaces; fields 3.. follow it */
		int field = 2, nice = 99;
		for (; p && *p; p++)
			if (*p == ' ' && ++field == 19) {
				nice = atoi(p + 1);
				break;
			}
		if (n == 0) /* a thread that ended while we looked */
			continue;
		(*threads)++;
		off += nice != want;
	}
	closedir(d);
	return off;
}

struct nice_arg {
	pid_t pid;
	int want;
};

static int all_at_nice(void *a)
{
	struct nice_arg *na = a;
	int threads = 0;
	return threads_not_at(na->pid, na->want, &threads) == 0 && threads > 1;
}

/* Every thread of fugue-logd at the niceness asked for: 10 by default, then the file's at SIGHUP, --nice over it. */
static void test_nice(void **state)
{
	(void)state;
	errno = 0;
	int base = getpriority(PRIO_PROCESS, 0);
	if (base > 10) {
		print_message("this test runs at nice %d, above the default of 10: skipped\n", base);
		skip();
	}
	fresh();
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	assert_true(log_says(d.log, "at nice 10"));
	struct nice_arg na = {d.pid, FL_CONFIG_NICE};
	assert_true(fl_it_wait(all_at_nice, &na, 30)); /* every worker and the housekeeping threads */
	/* a session drained while niced: its lines are all there */
	struct kinds_arg ka = {.id = "niced", .level = FL_LEVEL_FULL, .rounds = 2};
	assert_int_equal(child_status(spawn_child(kinds_child, &ka)), 0);
	assert_true(fl_it_wait_state(root, "niced", "ended", 60));
	/* SIGHUP: a new value reaches the threads already running; a refused one changes nothing */
	write_text(d.config, "nice = 13\n");
	assert_int_equal(kill(d.pid, SIGHUP), 0);
	na.want = 13;
	assert_true(fl_it_wait(all_at_nice, &na, 30));
	write_text(d.config, "nice = 25\n");
	assert_int_equal(kill(d.pid, SIGHUP), 0);
	assert_true(log_says(d.log, "nice=25 is refused: use 0"));
	int threads = 0;
	assert_int_equal(threads_not_at(d.pid, 13, &threads), 0);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	const char *extra[] = {"--state", "ended", "--expect=total=20", NULL};
	check("niced", extra);

	/* --nice over the file */
	write_text(d.config, "nice = 13\n");
	const char *over[] = {"--nice", "11", NULL};
	fl_it_drainer_start(&d, root, over);
	assert_true(log_says(d.log, "at nice 11"));
	na = (struct nice_arg){d.pid, 11};
	assert_true(fl_it_wait(all_at_nice, &na, 30));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	/* started at nice 15 without the right to lower it: it says so and drains at 15 */
	const char *via[] = {"setpriv", "--bounding-set", "-sys_nice", "nice", "-n", "15", NULL};
	fl_it_drainer_start_via(&d, root, via, over, 0);
	assert_true(log_says(d.log, "cannot set nice 11"));
	assert_true(log_says(d.log, "staying at nice 15"));
	assert_true(log_says(d.log, "at nice 15"));
	fl_it_assert_alive(&d);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_render_line),
    cmocka_unit_test(test_checkpoint_slots),
    cmocka_unit_test(test_sink_resume_truncates),
    cmocka_unit_test(test_every_kind_every_level),
    cmocka_unit_test(test_level_flips),
    cmocka_unit_test(test_drainer_killed_20_times),
    cmocka_unit_test(test_producer_killed),
    cmocka_unit_test(test_32_sessions),
    cmocka_unit_test_teardown(test_options_daemon_sighup, kill_daemon),
    cmocka_unit_test(test_nice),
};

FL_TEST_MAIN("drainer", tests)

/* SPDX-License-Identifier: MIT */
/* test_faults: the real fugue-logd against hostile rings, planted symlinks, a full disk and processes killed at random.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_test.h"

#include "fl_itest.h"
#include "checkpoint.h"
#include "fugue_event.pb-c.h"
#include "fuguelog.h"
#include "ring.h"
#include "rings.h"

/* ---- helpers -------------------------------------------------------------------------- */

static char root[1024];

static int setup(void **state)
{
	(void)state;
	fl_it_fresh_root(root, sizeof root);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char sticky[512]; /* test_unlink_retried_once_logged's object, when it failed while immutable */
	snprintf(sticky, sizeof sticky, "/dev/shm/%ssticky", fl_ring_prefix());
	if (access(sticky, F_OK) == 0) {
		const char *off[] = {"chattr", "-i", sticky, NULL};
		fl_it_run(off, "/dev/null");
	}
	fl_it_shm_cleanup();
	char mnt[1100];
	snprintf(mnt, sizeof mnt, "%s/mnt", fl_test_tmp());
	umount2(mnt, MNT_DETACH); /* test_disk_full's tmpfs, also when it failed half way */
	return 0;
}

static void path_of(char *out, size_t cap, const char *id, const char *file)
{
	snprintf(out, cap, "%s/%s/%s", root, id, file);
}

/* 1 when the drainer's log holds needle. */
static int log_has(const struct fl_itd *d, const char *needle)
{
	char *b = fl_it_read_file(d->log, NULL);
	int yes = b && strstr(b, needle);
	free(b);
	return yes;
}

struct log_arg {
	const struct fl_itd *d;
	const char *needle;
};

static int log_cond(void *a)
{
	struct log_arg *l = a;
	return log_has(l->d, l->needle);
}

static void wait_log(const struct fl_itd *d, const char *needle)
{
	struct log_arg a = {d, needle};
	if (!fl_it_wait(log_cond, &a, 30)) {
		char *b = fl_it_read_file(d->log, NULL);
		fail_msg("the drainer never logged '%s'; its log:\n%s", needle, b ? b : "(none)");
	}
}

/* The drainer outlived what the test made it meet, and stops cleanly. */
static void stop_alive(struct fl_itd *d)
{
	fl_it_assert_alive(d);
	assert_int_equal(fl_it_drainer_stop(d), 0);
}

static void check_dir(const char *id, const char *const *args)
{
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/%s", root, id);
	int rc = fl_it_check(dir, args);
	if (rc == 77)
		skip();
	if (rc != 0) {
		char out[1100];
		snprintf(out, sizeof out, "%s/check.json", fl_test_tmp());
		char *b = fl_it_read_file(out, NULL);
		fail_msg("check_jsonl.py failed (%d) on %s: %s", rc, dir, b ? b : "");
	}
}

static fl_session *open_session(const char *id, int lanes, uint64_t lane_size, int block)
{
	fl_session *s;
	char why[256] = "";
	struct fl_session_opts o = {.id = id,
				    .level = FL_LEVEL_FULL,
				    .lanes = (uint32_t)lanes,
				    .lane_size = lane_size,
				    .full_policy = block ? FL_FULL_BLOCK : FL_FULL_DROP};
	int rc = fl_session_open(&s, &o, why, sizeof why);
	if (rc < 0)
		fail_msg("fl_session_open %s: %s", id, why);
	return s;
}

/* A raw ring, for records no library would write. */
static void raw_ring(struct fl_ring *r, const char *id, uint32_t lanes)
{
	char name[256];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);
	struct fl_ring_params p = {.id = id, .lane_count = lanes, .lane_size = 4096, .level = FL_LEVEL_FULL};
	assert_int_equal(fl_ring_create(r, name, &p), 0);
}

static void raw_publish(struct fl_ring *r, uint32_t lane, const void *data, uint32_t len, uint32_t type)
{
	struct fl_reservation res = {0};
	assert_int_equal(fl_lane_reserve(r, lane, len, &res), 0);
	memcpy(res.payload, data, len);
	fl_lane_commit(r, &res);
	if (type != FL_REC_DATA) {
		uint16_t t = (uint16_t)type;
		memcpy(res.payload - FL_REC_HDR + 4, &t, 2); /* the header's type */
	}
}

/* An action Event as the producer would encode it, with seq-derived id. */
static void raw_action(struct fl_ring *r, uint32_t lane, const char *detail)
{
	Fugue__Event ev = FUGUE__EVENT__INIT;
	Fugue__Action a = FUGUE__ACTION__INIT;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ev.ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	ev.id = ((atomic_load(&r->lanes[lane].seq) + 1) << 6) | lane;
	ev.pid = (uint32_t)getpid();
	ev.body_case = FUGUE__EVENT__BODY_ACTION;
	ev.action = &a;
	a.action = (char *)"raw";
	a.detail = (char *)detail;
	uint8_t buf[512];
	size_t n = fugue__event__pack(&ev, buf);
	raw_publish(r, lane, buf, (uint32_t)n, FL_REC_DATA);
}

static void raw_close(struct fl_ring *r)
{
	fl_store_release(&r->hdr->closed, 1);
	fl_ring_detach(r);
}

/* ---- names and the CLI ---------------------------------------------------------------- */

/* Every CLI entry point that takes a session id refuses a bad one before touching anything. */
static void test_cli_bad_ids(void **state)
{
	(void)state;
	char bin[1024], long_id[80];
	fl_it_build_path(bin, sizeof bin, "drainer/fugue-log");
	memset(long_id, 'x', 65);
	long_id[65] = 0;
	const char *ids[] = {"../x", "a/b", "..", ".", "", long_id, "a b", "x\n"};
	mkdir(root, 0700);
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
		const char *emit[] = {bin, "--root", root, "emit", "--event", "action", "--session-id", ids[i], NULL};
		const char *level[] = {bin, "--root", root, "level", ids[i], "full", NULL};
		const char *cat[] = {bin, "--root", root, "cat", ids[i], NULL};
		const char *const *cmds[] = {emit, level, cat};
		for (int c = 0; c < 3; c++) {
			int rc = fl_it_run(cmds[c], "/dev/null");
			if (rc != 2)
				fail_msg("fugue-log %s with id '%s' exited %d, want 2 (usage)", cmds[c][3], ids[i], rc);
		}
	}
	assert_int_equal(fl_it_shm_cleanup(), 0); /* no ring was created */
	char probe[1200];
	snprintf(probe, sizeof probe, "%s/x", root);
	assert_int_equal(access(probe, F_OK), -1); /* nothing appeared under the root */
}

/* Directories 0700 and files 0600 whatever the drainer's umask. */
static void test_log_modes(void **state)
{
	(void)state;
	mode_t old = umask(0);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	umask(old);
	fl_session *s = open_session("modes", 1, 4096, 1);
	fl_emit_action(s, 0, "a", "b", "c");
	fl_emit_transcript(s, 0, 1, "out", 3);
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "modes", "ended", 30));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	struct stat st;
	assert_int_equal(stat(root, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	char p[1200];
	snprintf(p, sizeof p, "%s/modes", root);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	const char *files[] = {"system.jsonl", "user.jsonl", "session.json"};
	for (size_t i = 0; i < 3; i++) {
		path_of(p, sizeof p, "modes", files[i]);
		assert_int_equal(stat(p, &st), 0);
		if ((st.st_mode & 07777) != 0600)
			fail_msg("%s has mode %03o, want 0600", p, st.st_mode & 07777);
	}
}

/* A symlink planted in the log root, as the session directory or as a log file, is never written through. */
static void test_symlinks_not_followed(void **state)
{
	(void)state;
	char elsewhere[1100], victim[1200], p[1200];
	snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", fl_test_tmp());
	fl_it_rmtree(elsewhere);
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	snprintf(victim, sizeof victim, "%s/victim", elsewhere);
	int fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);

	assert_int_equal(mkdir(root, 0700), 0);
	snprintf(p, sizeof p, "%s/linkdir", root); /* <root>/linkdir -> elsewhere */
	assert_int_equal(symlink(elsewhere, p), 0);
	snprintf(p, sizeof p, "%s/linkfile", root); /* <root>/linkfile/system.jsonl -> victim */
	assert_int_equal(mkdir(p, 0700), 0);
	path_of(p, sizeof p, "linkfile", "system.jsonl");
	assert_int_equal(symlink(victim, p), 0);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *a = open_session("linkdir", 1, 4096, 0);
	fl_session *b = open_session("linkfile", 1, 4096, 0);
	fl_session *c = open_session("plain", 1, 4096, 0);
	fl_emit_exit(a, 0, 0, 0, 1);
	fl_emit_exit(b, 0, 0, 0, 1);
	fl_emit_exit(c, 0, 0, 0, 1);
	fl_session_close(c);
	/* the plain session is drained; the other two are refused with a reason and retried */
	assert_true(fl_it_wait_state(root, "plain", "ended", 30));
	wait_log(&d, "session linkdir: ");
	wait_log(&d, "session linkfile: ");
	fl_it_assert_alive(&d);
	fl_session_close(a);
	fl_session_close(b);
	fl_it_drainer_kill(&d);

	char *v = fl_it_read_file(victim, NULL);
	assert_non_null(v);
	assert_string_equal(v, "precious\n");
	free(v);
	/* nothing was created through the directory link either */
	snprintf(p, sizeof p, "%s/system.jsonl", elsewhere);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof p, "%s/session.json", elsewhere);
	assert_int_equal(access(p, F_OK), -1);
	/* and the links are still links */
	struct stat st;
	snprintf(p, sizeof p, "%s/linkdir", root);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	path_of(p, sizeof p, "linkfile", "system.jsonl");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* ---- hostile rings against the drainer ------------------------------------------------ */

/* A ring with a bad header is refused with a logged reason; the drainer goes on with the others. */
static void test_drainer_refuses_bad_rings(void **state)
{
	(void)state;
	struct fl_ring bad;
	raw_ring(&bad, "bad-version", 1);
	bad.hdr->version = 99;
	char name[256];
	snprintf(name, sizeof name, "/dev/shm/%sbad name", fl_ring_prefix());
	int fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("good", 1, 4096, 1);
	for (int i = 0; i < 50; i++)
		fl_emit_action(s, 0, "act", "t", "d");
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "good", "ended", 30));
	wait_log(&d, "layout version 99");
	wait_log(&d, "not a valid session id");
	fl_it_assert_alive(&d);
	const char *args[] = {"--gapless", "--unique-ids", "--state", "ended", "--expect", "event:action=50", NULL};
	check_dir("good", args);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	/* refused rings are left alone: not unlinked, no directory */
	char p[1200];
	snprintf(p, sizeof p, "%s/bad-version", root);
	assert_int_equal(access(p, F_OK), -1);
	fl_ring_detach(&bad);
	unlink(name);
}

/* A corrupt record quarantines its lane with an error line; undecodable bytes are one error line; the rest goes on. */
static void test_corrupt_record_quarantines_lane(void **state)
{
	(void)state;
	struct fl_ring r;
	raw_ring(&r, "corrupt", 2);
	raw_action(&r, 0, "lane0-first");
	raw_publish(&r, 0, "\x01\x02\x03\x04\x05\x06\x07\x08", 8, 0x0bad); /* unknown record type */
	raw_action(&r, 0, "lane0-never");
	raw_action(&r, 1, "lane1-a");
	raw_publish(&r, 1, "\xff\xff\xff\xff", 4, FL_REC_DATA); /* a record, but not protobuf */
	raw_action(&r, 1, "lane1-b");
	raw_close(&r);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	assert_true(fl_it_wait_state(root, "corrupt", "ended", 30));
	wait_log(&d, "lane 0 quarantined");
	stop_alive(&d);

	char sys[1200], usr[1200];
	path_of(sys, sizeof sys, "corrupt", "system.jsonl");
	path_of(usr, sizeof usr, "corrupt", "user.jsonl");
	assert_int_equal(fl_it_count_in(usr, "lane0-first"), 1);
	assert_int_equal(fl_it_count_in(usr, "lane0-never"), 0);
	assert_int_equal(fl_it_count_in(usr, "lane1-a"), 1);
	assert_int_equal(fl_it_count_in(usr, "lane1-b"), 1);
	assert_int_equal(fl_it_count_in(sys, "lane 0 quarantined"), 1);
	assert_int_equal(fl_it_count_in(sys, "unknown type"), 1);
	assert_int_equal(fl_it_count_in(sys, "not a fugue Event"), 1);
	const char *args[] = {"--gapless", "--expect", "errors=2", "--expect", "event:action=3", NULL};
	check_dir("corrupt", args);
}

/* A producer truncating its ring under the drainer costs that session, not the drainer. */
static void test_truncated_ring(void **state)
{
	(void)state;
	struct fl_ring r;
	raw_ring(&r, "shrinker", 1);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	raw_action(&r, 0, "before-shrink");
	assert_true(fl_it_wait_lines(root, "shrinker", 1, 30));

	/* a record written but not yet published, then the lanes cut off, then head moved */
	struct fl_reservation res = {0};
	assert_int_equal(fl_lane_reserve(&r, 0, 64, &res), 0);
	memset(res.payload, 0x5a, 64);
	struct fl_rec_hdr h = {64, FL_REC_DATA, res.tag, res.seq};
	memcpy(res.payload - FL_REC_HDR, &h, sizeof h);
	assert_int_equal(ftruncate(r.fd, 4096), 0); /* the header page (with the lane table) stays */
	fl_store_release(&r.lanes[0].head, res.end);

	wait_log(&d, "truncated by its producer");
	assert_true(fl_it_wait_state(root, "shrinker", "abandoned", 30));
	fl_it_assert_alive(&d);
	/* and it still drains others */
	fl_session *s = open_session("after", 1, 4096, 1);
	fl_emit_action(s, 0, "still", "draining", "");
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "after", "ended", 30));
	assert_int_equal(fl_it_drainer_stop(&d), 0);

	char sys[1200], usr[1200];
	path_of(sys, sizeof sys, "shrinker", "system.jsonl");
	path_of(usr, sizeof usr, "shrinker", "user.jsonl");
	assert_int_equal(fl_it_count_in(usr, "before-shrink"), 1);
	assert_int_equal(fl_it_count_in(sys, "truncated its shm object"), 1);
	fl_ring_detach(&r);
}

/* ---- a full disk ---------------------------------------------------------------------- */

/* Fills the filesystem of dir with a ballast file until it refuses a byte more; returns its path. */
static void fill_up(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char chunk[4096];
	memset(chunk, 'B', sizeof chunk);
	while (write(fd, chunk, sizeof chunk) > 0)
		;
	while (write(fd, chunk, 1) > 0) /* the last partial page */
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
}

/* Watches the active files of a session like a tailing reader: were they ever shorter than before? */
struct watch {
	char path[2][1300];
	_Atomic int stop;
	long shrunk; /* times a file was seen shorter than at the previous look */
	long looks;
};

static void *watch_main(void *a)
{
	struct watch *w = a;
	off_t last[2] = {0, 0};
	while (!atomic_load(&w->stop)) {
		for (int i = 0; i < 2; i++) {
			struct stat st;
			if (stat(w->path[i], &st) == 0) {
				if (st.st_size < last[i])
					w->shrunk++;
				last[i] = st.st_size;
			}
		}
		w->looks++;
		usleep(500);
	}
	return NULL;
}

/*
 * The disk fills while a session emits: the drainer keeps running and stops
 * moving tails, so the producer drops and counts; once there is room again it
 * writes what it had accepted, the drops, and an error line about the outage.
 * Nothing admitted is lost or doubled.
 */
static void test_disk_full(void **state)
{
	(void)state;
	char mnt[1100], ballast[1200];
	snprintf(mnt, sizeof mnt, "%s/mnt", fl_test_tmp());
	mkdir(mnt, 0700);
	if (mount("fl-test", mnt, "tmpfs", 0, "size=1m,mode=0700") < 0) {
		print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
		skip();
	}
	snprintf(root, sizeof root, "%s/root", mnt);
	snprintf(ballast, sizeof ballast, "%s/ballast", mnt);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("full", 1, 4096, 0);
	char text[256];
	memset(text, 't', sizeof text);
	assert_true(fl_emit_transcript(s, 0, 1, text, sizeof text) > 0);
	assert_true(fl_it_wait_lines(root, "full", 1, 30)); /* files exist, then the disk fills */
	static struct watch wt;
	snprintf(wt.path[0], sizeof wt.path[0], "%s/full/system.jsonl", root);
	snprintf(wt.path[1], sizeof wt.path[1], "%s/full/user.jsonl", root);
	atomic_store(&wt.stop, 0);
	wt.shrunk = wt.looks = 0;
	pthread_t wth;
	assert_int_equal(pthread_create(&wth, NULL, watch_main, &wt), 0);
	fill_up(ballast);

	/* far more than the lane holds: most of it waits in the ring or is dropped */
	long tries = 0;
	while (tries < 20000) {
		fl_emit_transcript(s, 0, 1, text, sizeof text);
		tries++;
		if (tries % 500 == 0 && log_has(&d, "No space left"))
			break;
	}
	for (int i = 0; i < 2000; i++) /* keep going while the drainer cannot write */
		fl_emit_transcript(s, 0, 1, text, sizeof text);
	wait_log(&d, "No space left");
	fl_it_assert_alive(&d);
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_true(st.dropped > 0); /* the ring filled up behind the stuck drainer */

	unlink(ballast);
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "full", "ended", 60));
	atomic_store(&wt.stop, 1);
	pthread_join(wth, NULL);
	assert_int_equal(fl_it_drainer_stop(&d), 0);
	print_message(
	    "admitted %llu, dropped %llu while the disk was full; active files shrank %ld times in %ld looks\n",
	    (unsigned long long)st.admitted, (unsigned long long)st.dropped, wt.shrunk, wt.looks);
	/* shipping.md: an active file is cut back only after a crash, never while the drainer runs */
	assert_int_equal(wt.shrunk, 0);

	char e1[64], e2[64];
	snprintf(e1, sizeof e1, "event:transcript=%llu", (unsigned long long)st.admitted);
	snprintf(e2, sizeof e2, "drops=%llu", (unsigned long long)st.dropped);
	const char *args[] = {"--gapless", "--unique-ids", "--state", "ended", "--expect", e1, "--expect", e2, NULL};
	check_dir("full", args);
	char sys[1200];
	path_of(sys, sizeof sys, "full", "system.jsonl");
	if (fl_it_count_in(sys, "\"event\":\"error\"") < 1)
		fail_msg("no error line says the drainer could not write for a while");
}

/*
 * A checkpoint write never needs space: once the files hold a batch's lines,
 * a full disk must not fail the checkpoint that covers them (the session would
 * then resume from the older one and cut the files back while a reader tails
 * them). Both slots are written on a disk that has no byte left.
 */
static void test_checkpoint_on_full_disk(void **state)
{
	(void)state;
	char mnt[1100], ballast[1200];
	snprintf(mnt, sizeof mnt, "%s/mnt", fl_test_tmp());
	mkdir(mnt, 0700);
	if (mount("fl-test", mnt, "tmpfs", 0, "size=256k,mode=0700") < 0) {
		print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
		skip();
	}
	snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
	int d = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	struct fl_ckpt_file f = {.fd = -1};
	assert_int_equal(fl_ckpt_open(&f, d), 0);
	struct fl_ckpt c;
	/* allocated but never written: no checkpoint yet, not a damaged one (a reopen starts afresh) */
	assert_int_equal(fl_ckpt_load(d, &c), -ENOENT);
	memset(&c, 0, sizeof c);
	c.next_seq = 1;
	assert_int_equal(fl_ckpt_write(&f, &c, 1), 0); /* the first generation: one slot */
	fill_up(ballast);
	for (uint64_t seq = 2; seq <= 5; seq++) {
		c.next_seq = seq;
		assert_int_equal(fl_ckpt_write(&f, &c, 1), 0);
	}
	fl_ckpt_close(&f);
	struct fl_ckpt back;
	assert_int_equal(fl_ckpt_load(d, &back), 0);
	assert_int_equal(back.next_seq, 5);
	close(d);
}

/* ---- trust: other users, shared roots, reused ids, hostile counters ------------------- */

/* The second user the trust tests act as; created when missing (root only, else the test is skipped). */
static void second_user(uid_t *uid, gid_t *gid)
{
	if (geteuid() != 0) {
		print_message("not root: no second uid to test with, skipped\n");
		skip();
	}
	struct passwd *pw = getpwnam("fltest2");
	if (!pw) {
		const char *argv[] = {"useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "fltest2", NULL};
		fl_it_run(argv, "/dev/null");
		pw = getpwnam("fltest2");
	}
	if (!pw) {
		print_message("cannot create the user fltest2: skipped\n");
		skip();
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

/* Runs fn(arg) in a child that is the second user; fails the test when the child does not exit 0. */
static void as_user(uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(90);
		umask(0);
		_exit(fn(arg));
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("the child acting as uid %u failed (status %#x)", (unsigned)uid, st);
}

static int make_foreign_ring(void *arg)
{
	const char *id = arg;
	char name[256];
	struct fl_ring r;
	struct fl_ring_params p = {.id = id, .lane_count = 1, .lane_size = 4096, .level = FL_LEVEL_FULL};
	if (fl_ring_name(name, sizeof name, NULL, id) < 0 || fl_ring_create(&r, name, &p) < 0)
		return 1;
	raw_action(&r, 0, "forged line");
	fl_store_release(&r.hdr->closed, 1);
	return 0;
}

/* A ring another user made under our prefix is reported once and left alone: no lines, no directory, no unlink. */
static void test_foreign_ring_refused(void **state)
{
	(void)state;
	uid_t uid;
	gid_t gid;
	second_user(&uid, &gid);
	as_user(uid, gid, make_foreign_ring, (void *)"forged");
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("mine", 1, 4096, 1);
	fl_emit_action(s, 0, "act", "t", "d");
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "mine", "ended", 30));
	wait_log(&d, "belongs to uid");
	fl_it_sleep_ms(1500); /* several rescans: still one line */
	stop_alive(&d);
	assert_int_equal(fl_it_count_in(d.log, "belongs to uid"), 1);
	char p[1200], shm[256];
	snprintf(p, sizeof p, "%s/forged", root);
	assert_int_equal(access(p, F_OK), -1);
	fl_ring_name(shm, sizeof shm, NULL, "forged");
	snprintf(p, sizeof p, FL_SHM_DIR "%s", shm);
	assert_int_equal(access(p, F_OK), 0);
}

/* Our own ring, but readable by the group: refused with the mode in the reason. */
static void test_ring_mode_refused(void **state)
{
	(void)state;
	struct fl_ring r;
	raw_ring(&r, "grp", 1);
	raw_action(&r, 0, "should wait");
	char shm[256], p[1200];
	fl_ring_name(shm, sizeof shm, NULL, "grp");
	snprintf(p, sizeof p, FL_SHM_DIR "%s", shm);
	assert_int_equal(chmod(p, 0640), 0);
	raw_close(&r);
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	wait_log(&d, "has mode 0640");
	stop_alive(&d);
	snprintf(p, sizeof p, "%s/grp", root);
	assert_int_equal(access(p, F_OK), -1);
}

struct squat {
	char dir[1200];
};

static int squat_dir(void *arg)
{
	struct squat *q = arg;
	char f[1300];
	if (mkdir(q->dir, 0777) < 0)
		return 1;
	snprintf(f, sizeof f, "%s/user.jsonl", q->dir);
	int fd = open(f, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (fd < 0)
		return 2;
	close(fd);
	return 0;
}

/*
 * A world-writable root where another user pre-created <root>/<id>/ (0777)
 * and user.jsonl (0666): the drainer writes nothing there, says why, keeps the
 * records in the ring, and writes them all once the directory is out of the way.
 */
static void test_shared_root_squatter(void **state)
{
	(void)state;
	uid_t uid;
	gid_t gid;
	second_user(&uid, &gid);
	mkdir(root, 0700);
	assert_int_equal(chmod(root, 0777), 0);
	/* the other user must reach the root: its ancestors under the scratch dir are made traversable */
	char up[1024];
	snprintf(up, sizeof up, "%s", root);
	for (char *slash; (slash = strrchr(up, '/')) && slash != up;) {
		*slash = 0;
		struct stat st;
		if (stat(up, &st) == 0 && !(st.st_mode & S_IXOTH))
			chmod(up, (st.st_mode & 07777) | 0711);
	}
	struct squat q;
	snprintf(q.dir, sizeof q.dir, "%s/sq", root);
	as_user(uid, gid, squat_dir, &q);

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("sq", 1, 1 << 16, 1);
	for (int i = 0; i < 5; i++)
		fl_emit_action(s, 0, "secret", "t", "not for the squatter");
	fl_session_close(s);
	wait_log(&d, "belongs to uid");
	char f[1300], moved[1300];
	snprintf(f, sizeof f, "%s/user.jsonl", q.dir);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_false(fl_it_session_state_is(root, "sq", "ended"));
	snprintf(moved, sizeof moved, "%s/sq.squatted", root);
	assert_int_equal(rename(q.dir, moved), 0);
	assert_true(fl_it_wait_state(root, "sq", "ended", 30));
	stop_alive(&d);
	assert_int_equal(fl_it_count_in(f, "not for the squatter"), 5);
	snprintf(f, sizeof f, "%s/user.jsonl", moved);
	assert_int_equal(fl_it_count_in(f, "not for the squatter"), 0);
	assert_int_equal(fl_it_count_in(d.log, "belongs to uid"), 1);
}

/* A new ring with the id of an ended session is refused at open: the ended session's files stay final. */
static void test_ended_id_not_reused(void **state)
{
	(void)state;
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("again", 1, 4096, 1);
	for (int i = 0; i < 3; i++)
		fl_emit_action(s, 0, "first", "t", "first life");
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "again", "ended", 30));
	char shm[256], p[1200];
	fl_ring_name(shm, sizeof shm, NULL, "again");
	snprintf(p, sizeof p, FL_SHM_DIR "%s", shm);
	for (int i = 0; i < 3000 && access(p, F_OK) == 0; i++) /* the manifest is final just before the unlink */
		fl_it_sleep_ms(10);
	s = open_session("again", 1, 4096, 1);
	fl_emit_action(s, 0, "second", "t", "second life");
	fl_session_close(s);
	wait_log(&d, "reuses the id of a session that ended");
	fl_it_sleep_ms(1000);
	stop_alive(&d);
	char f[1200];
	path_of(f, sizeof f, "again", "user.jsonl");
	assert_int_equal(fl_it_count_in(f, "first life"), 3);
	assert_int_equal(fl_it_count_in(f, "second life"), 0);
	assert_int_equal(fl_it_count_in(d.log, "reuses the id"), 1);
	assert_int_equal(access(p, F_OK), 0); /* its records wait in the ring */
}

/*
 * A finished session whose shm object cannot be unlinked (made immutable
 * after the drainer mapped it): its files are final, the failure is logged
 * once, the unlink is retried with backoff, and it goes once it can.
 */
static void test_unlink_retried_once_logged(void **state)
{
	(void)state;
	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	fl_session *s = open_session("sticky", 1, 4096, 1);
	fl_emit_action(s, 0, "act", "t", "d");
	assert_true(fl_it_wait_lines(root, "sticky", 1, 30)); /* mapped by the drainer */
	char shm[256], p[1200];
	fl_ring_name(shm, sizeof shm, NULL, "sticky");
	snprintf(p, sizeof p, FL_SHM_DIR "%s", shm);
	const char *on[] = {"chattr", "+i", p, NULL}, *off[] = {"chattr", "-i", p, NULL};
	if (fl_it_run(on, "/dev/null") != 0) {
		fl_session_close(s);
		fl_it_drainer_stop(&d);
		print_message("cannot make %s immutable (needs root and a kernel whose tmpfs has chattr): skipped\n",
			      p);
		skip();
	}
	fl_session_close(s);
	assert_true(fl_it_wait_state(root, "sticky", "ended", 30));
	wait_log(&d, "cannot be unlinked");
	fl_it_sleep_ms(3500); /* retries at 1 s, 2 s: still one line */
	assert_int_equal(fl_it_count_in(d.log, "cannot be unlinked"), 1);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(fl_it_run(off, "/dev/null"), 0);
	wait_log(&d, "unlinked at last");
	assert_int_equal(access(p, F_OK), -1);
	stop_alive(&d);
	const char *args[] = {"--gapless", "--state", "ended", "--expect", "event:action=1", NULL};
	check_dir("sticky", args);
}

/*
 * Counters and header values a hostile ring makes up: a seq jump of 2^63 is an
 * error line (no absurd dropped count), a seq going back is an error line,
 * clock anchors at the int64 extremes are no undefined behaviour, and a ring
 * claiming pid 1 with another start time is not live forever.
 */
static void test_hostile_counters(void **state)
{
	(void)state;
	struct fl_ring r;
	raw_ring(&r, "jump", 1);
	raw_action(&r, 0, "seq-zero");
	atomic_store(&r.lanes[0].seq, 1ull << 63);
	raw_action(&r, 0, "seq-huge");
	atomic_store(&r.lanes[0].seq, 5);
	raw_action(&r, 0, "seq-back");
	raw_close(&r);

	raw_ring(&r, "clk", 1);
	raw_action(&r, 0, "odd clock");
	r.hdr->clock = FL_RING_CLOCK_TSC;
	r.hdr->anchor_tsc = 1;
	r.hdr->anchor_realtime_ns = INT64_MIN;
	r.hdr->start_realtime_ns = INT64_MAX;
	raw_close(&r);

	raw_ring(&r, "init", 1);
	raw_action(&r, 0, "claims pid 1");
	uint64_t init_start = 0;
	fl_proc_start(1, &init_start);
	r.hdr->pid = 1;
	r.hdr->pid_start = init_start + 12345;
	fl_ring_detach(&r); /* not closed: only the liveness check can end it */

	struct fl_itd d;
	fl_it_drainer_start(&d, root, NULL);
	assert_true(fl_it_wait_state(root, "jump", "ended", 30));
	assert_true(fl_it_wait_state(root, "clk", "ended", 30));
	assert_true(fl_it_wait_state(root, "init", "abandoned", 30));
	stop_alive(&d);

	char sys[1200], usr[1200];
	path_of(sys, sizeof sys, "jump", "system.jsonl");
	path_of(usr, sizeof usr, "jump", "user.jsonl");
	assert_int_equal(fl_it_count_in(usr, "seq-zero"), 1);
	assert_int_equal(fl_it_count_in(usr, "seq-huge"), 1);
	assert_int_equal(fl_it_count_in(usr, "seq-back"), 0);
	assert_int_equal(fl_it_count_in(sys, "sequence numbers jump by 9223372036854775807"), 1);
	assert_int_equal(fl_it_count_in(sys, "sequence numbers went backwards"), 1);
	assert_int_equal(fl_it_count_in(sys, "\"event\":\"dropped\""), 0);
	const char *args[] = {"--state", "ended", NULL};
	check_dir("jump", args);
	check_dir("clk", args);
	path_of(usr, sizeof usr, "init", "user.jsonl");
	assert_int_equal(fl_it_count_in(usr, "claims pid 1"), 1);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_cli_bad_ids, setup, teardown),
    cmocka_unit_test_setup_teardown(test_log_modes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_drainer_refuses_bad_rings, setup, teardown),
    cmocka_unit_test_setup_teardown(test_corrupt_record_quarantines_lane, setup, teardown),
    cmocka_unit_test_setup_teardown(test_truncated_ring, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    cmocka_unit_test_setup_teardown(test_checkpoint_on_full_disk, setup, teardown),
    cmocka_unit_test_setup_teardown(test_foreign_ring_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ring_mode_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shared_root_squatter, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ended_id_not_reused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_hostile_counters, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unlink_retried_once_logged, setup, teardown),
};

FL_TEST_MAIN("faults", tests)

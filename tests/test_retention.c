/* SPDX-License-Identifier: MIT */
/* test_retention: each retention rule alone and together, with exact surviving file sets and one log line per removal.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test.h"
#include "retention.h"

#define DAY (86400ll * 1000000000ll)

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000ll + t.tv_nsec;
}

static char g_root[1024];
static int64_t g_now;

/* A fresh log root for one case; returns its fd. */
static int fresh_root(const char *name)
{
	snprintf(g_root, sizeof g_root, "%s/%s", fl_test_tmp(), name);
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", g_root, g_root);
	assert_int_equal(system(cmd), 0);
	g_now = now_ns();
	int fd = open(g_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* <root>/<sess>/<name> with exactly size bytes and an mtime age_ns before g_now. */
static void mkfile(const char *sess, const char *name, size_t size, int64_t age_ns)
{
	char path[1400];
	snprintf(path, sizeof path, "%s/%s", g_root, sess);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/%s/%s", g_root, sess, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < size; i++)
		fputc('a' + (int)(i % 26), f);
	assert_int_equal(fclose(f), 0);
	int64_t t = g_now - age_ns;
	struct timespec ts[2] = {{t / 1000000000ll, t % 1000000000ll}, {t / 1000000000ll, t % 1000000000ll}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* A manifest of exactly 64 bytes saying state. */
static void mkmanifest(const char *sess, const char *state)
{
	char text[65];
	int n = snprintf(text, sizeof text, "{\"session\":\"%s\",\"state\":\"%s\"}", sess, state);
	memset(text + n, ' ', 63 - (size_t)n);
	text[63] = '\n';
	text[64] = 0;
	char path[1400];
	snprintf(path, sizeof path, "%s/%s/session.json", g_root, sess);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Asserts the sorted names in <root>/<sub> equal want ("a b c"; "-" = the directory must not exist). */
static void expect_files(const char *sub, const char *want)
{
	char path[1400], got[4096] = "";
	snprintf(path, sizeof path, "%s/%s", g_root, sub);
	DIR *d = opendir(path);
	if (!strcmp(want, "-")) {
		if (d)
			closedir(d);
		if (d)
			fail_msg("%s should be gone", sub);
		return;
	}
	if (!d)
		fail_msg("%s is missing", sub);
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof names[0], cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(got, " ");
		strcat(got, names[i]);
		free(names[i]);
	}
	if (strcmp(got, want))
		fail_msg("%s holds\n  [%s]\nwanted\n  [%s]", sub, got, want);
}

/* Lines of the drainer log, with python checking each is JSON with the expected shape and seq 1..n. */
static int log_lines(const char *grep)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "python3 - '%s/" FL_RETENTION_LOG "' '%s' <<'EOF'\n"
		 "import json,sys\n"
		 "n=0\n"
		 "try: lines=open(sys.argv[1]).read().splitlines()\n"
		 "except FileNotFoundError: lines=[]\n"
		 "for i,l in enumerate(lines):\n"
		 "  o=json.loads(l)\n"
		 "  assert o['seq']==i+1 and o['event']=='retention' and o['class']=='system', l\n"
		 "  d=o['data']; assert d['scope'] in ('segment','session') and d['bytes']>=0, l\n"
		 "  assert list(o)[:3]==['ts','ts_ns','seq'], l\n"
		 "  if sys.argv[2] in l: n+=1\n"
		 "sys.exit(min(n,100))\n"
		 "EOF",
		 g_root, grep);
	int st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void run(int root, uint64_t retention_s, uint64_t session_cap, uint64_t total_cap, struct fl_retention_stats *st)
{
	struct fl_retention_policy p = {
	    .retention_s = retention_s, .max_session_size = session_cap, .max_total_size = total_cap};
	struct fl_retention_hooks h = {.by = "test"};
	assert_int_equal(fl_retention_run(root, &p, g_now, &h, st), 0);
}

/* A live session, an ended old one, an ended recent one, an ended old one still compressing. */
static void build_age_tree(void)
{
	mkfile("live", "system.000001.jsonl.lz4", 100, 10 * DAY);
	mkfile("live", "user.000002.jsonl.lz4", 100, 8 * DAY);
	mkfile("live", "system.000003.jsonl.lz4", 100, 1 * DAY);
	mkfile("live", "system.000004.jsonl", 100, 10 * DAY); /* closed, not yet archived */
	mkfile("live", "user.000005.jsonl", 100, 9 * DAY);    /* archive being written: the pair stays */
	mkfile("live", "user.000005.jsonl.lz4", 50, 9 * DAY);
	mkfile("live", "system.jsonl", 100, 10 * DAY); /* active, however old */
	mkfile("live", "user.jsonl", 0, 10 * DAY);
	mkmanifest("live", "live");
	mkfile("oldend", "system.000001.jsonl.lz4", 100, 20 * DAY);
	mkfile("oldend", "system.jsonl", 100, 9 * DAY);
	mkfile("oldend", "user.jsonl", 100, 9 * DAY);
	mkmanifest("oldend", "ended");
	mkfile("newend", "system.000001.jsonl.lz4", 100, 10 * DAY);
	mkfile("newend", "system.jsonl", 100, 1 * DAY);
	mkmanifest("newend", "abandoned");
	mkfile("pending", "system.000001.jsonl.lz4", 100, 10 * DAY);
	mkfile("pending", "system.000002.jsonl", 100, 9 * DAY);
	mkfile("pending", "system.jsonl", 100, 9 * DAY);
	mkmanifest("pending", "ended");
	mkfile("nomanifest", "system.000001.jsonl.lz4", 100, 10 * DAY);
	mkfile("nomanifest", "system.jsonl", 100, 9 * DAY);
}

static void test_age_rule(void **state)
{
	(void)state;
	int root = fresh_root("age");
	build_age_tree();
	struct fl_retention_stats st;
	run(root, 7 * 86400, 0, 0, &st);
	expect_files("live", "session.json system.000003.jsonl.lz4 system.000004.jsonl system.jsonl "
			     "user.000005.jsonl user.000005.jsonl.lz4 user.jsonl");
	expect_files("oldend", "-");
	expect_files("newend", "session.json system.jsonl");
	expect_files("pending", "session.json system.000002.jsonl system.jsonl");
	expect_files("nomanifest", "system.jsonl"); /* no manifest: treated as live, never removed whole */
	assert_int_equal(st.sessions, 5);
	assert_int_equal(st.removed_sessions, 1);
	assert_int_equal(st.removed_segments, 5);
	assert_int_equal(st.freed_bytes, 5 * 100 + 300 + 64);
	assert_int_equal(log_lines("\"event\""), 6);
	assert_int_equal(log_lines("\"scope\":\"session\""), 1);
	assert_int_equal(log_lines("\"session\":\"oldend\""), 1);
	assert_int_equal(log_lines("\"reason\":\"retention\""), 6);
	assert_int_equal(log_lines("\"by\":\"test\""), 6);
	/* A second pass finds nothing more to do. */
	run(root, 7 * 86400, 0, 0, &st);
	assert_int_equal(st.removed_segments + st.removed_sessions, 0);
	assert_int_equal(log_lines("\"event\""), 6);
	/* retention 0 keeps everything. */
	mkfile("live", "system.000009.jsonl.lz4", 100, 400 * DAY);
	run(root, 0, 0, 0, &st);
	assert_int_equal(st.removed_segments + st.removed_sessions, 0);
	close(root);
}

static void test_session_cap(void **state)
{
	(void)state;
	int root = fresh_root("sesscap");
	/* 5 archives of 1000 bytes, oldest first by mtime (not by number), + active 500 + manifest 64 = 5564 */
	mkfile("a", "system.000001.jsonl.lz4", 1000, 3 * DAY);
	mkfile("a", "user.000002.jsonl.lz4", 1000, 5 * DAY);
	mkfile("a", "system.000003.jsonl.lz4", 1000, 2 * DAY);
	mkfile("a", "user.000004.jsonl.lz4", 1000, 4 * DAY);
	mkfile("a", "system.000005.jsonl.lz4", 1000, 1 * DAY);
	mkfile("a", "system.000006.jsonl", 3000, 6 * DAY); /* waiting for compression: never removed */
	mkfile("a", "system.jsonl", 500, 9 * DAY);
	mkmanifest("a", "live");
	/* b is under the cap and untouched. */
	mkfile("b", "system.000001.jsonl.lz4", 1000, 30 * DAY);
	mkfile("b", "system.jsonl", 10, 30 * DAY);
	mkmanifest("b", "ended");
	struct fl_retention_stats st;
	/* a holds 8564 bytes; with a cap of 6000 the three oldest archives by mtime go (-> 5564). */
	run(root, 0, 6000, 0, &st);
	expect_files("a", "session.json system.000003.jsonl.lz4 system.000005.jsonl.lz4 system.000006.jsonl "
			  "system.jsonl");
	expect_files("b", "session.json system.000001.jsonl.lz4 system.jsonl");
	assert_int_equal(st.removed_segments, 3);
	assert_int_equal(st.freed_bytes, 3000);
	assert_int_equal(log_lines("\"reason\":\"max_session_size\""), 3);
	assert_int_equal(log_lines("user.000002.jsonl.lz4"), 1);
	assert_int_equal(log_lines("user.000004.jsonl.lz4"), 1);
	assert_int_equal(log_lines("system.000001.jsonl.lz4"), 1);
	/* A cap below what cannot go leaves the active and uncompressed files. */
	run(root, 0, 1, 0, &st);
	expect_files("a", "session.json system.000006.jsonl system.jsonl");
	expect_files("b", "session.json system.jsonl");
	assert_int_equal(st.removed_segments, 3);
	close(root);
}

static void test_total_cap(void **state)
{
	(void)state;
	int root = fresh_root("totalcap");
	mkfile("a", "system.000001.jsonl.lz4", 1000, 6 * DAY);
	mkfile("a", "system.000002.jsonl.lz4", 1000, 2 * DAY);
	mkfile("a", "system.jsonl", 936, 0);
	mkmanifest("a", "live"); /* a: 3000 */
	mkfile("b", "user.000001.jsonl.lz4", 1000, 5 * DAY);
	mkfile("b", "user.000002.jsonl.lz4", 1000, 3 * DAY);
	mkfile("b", "system.jsonl", 936, 0);
	mkmanifest("b", "live"); /* b: 3000 */
	mkfile("c", "system.jsonl", 936, 4 * DAY);
	mkfile("c", "user.jsonl", 1000, 4 * DAY);
	mkmanifest("c", "ended"); /* c: 2000, an ended session is one unit, 4 days old */
	struct fl_retention_stats st;
	/* 8000 bytes; cap 4500: go a/1 (6d, ->7000), b/1 (5d, ->6000), c whole (4d, ->4000). */
	run(root, 0, 0, 4500, &st);
	expect_files("a", "session.json system.000002.jsonl.lz4 system.jsonl");
	expect_files("b", "session.json system.jsonl user.000002.jsonl.lz4");
	expect_files("c", "-");
	assert_int_equal(st.removed_segments, 2);
	assert_int_equal(st.removed_sessions, 1);
	assert_int_equal(st.total_bytes, 4000);
	assert_int_equal(log_lines("\"reason\":\"max_total_size\""), 3);
	/* Off (0) does nothing however large the root. */
	run(root, 0, 0, 0, &st);
	assert_int_equal(st.removed_segments + st.removed_sessions, 0);
	assert_int_equal(st.total_bytes, 4000);
	close(root);
}

static void test_rules_together(void **state)
{
	(void)state;
	int root = fresh_root("together");
	build_age_tree();
	/* add a session that is fine by age but over the per-session cap, and push the root over its cap */
	mkfile("big", "system.000001.jsonl.lz4", 2000, 3 * DAY);
	mkfile("big", "system.000002.jsonl.lz4", 2000, 2 * DAY);
	mkfile("big", "system.000003.jsonl.lz4", 2000, 1 * DAY);
	mkfile("big", "system.jsonl", 936, 0);
	mkmanifest("big", "live");
	struct fl_retention_stats st;
	/*
	 * After the age rule: live 514, newend 164, pending 264, nomanifest 100,
	 * big 7000. The per-session cap (5000) takes big/1, the oldest (-> 5000).
	 * The root then holds 6042 > 6000: the oldest unit is big/2 (2 days; the
	 * ended newend is 1 day old, pending cannot go whole) (-> 4042).
	 */
	run(root, 7 * 86400, 5000, 6000, &st);
	expect_files("live", "session.json system.000003.jsonl.lz4 system.000004.jsonl system.jsonl "
			     "user.000005.jsonl user.000005.jsonl.lz4 user.jsonl");
	expect_files("oldend", "-");
	expect_files("newend", "session.json system.jsonl");
	expect_files("pending", "session.json system.000002.jsonl system.jsonl");
	expect_files("nomanifest", "system.jsonl");
	expect_files("big", "session.json system.000003.jsonl.lz4 system.jsonl");
	assert_int_equal(st.removed_sessions, 1);
	assert_int_equal(st.removed_segments, 5 + 2);
	assert_int_equal(log_lines("\"reason\":\"retention\""), 6);
	assert_int_equal(log_lines("\"reason\":\"max_session_size\""), 1);
	assert_int_equal(log_lines("\"reason\":\"max_total_size\""), 1);
	assert_int_equal(log_lines("\"session\":\"big\""), 2);
	close(root);
}

static void test_remove_session(void **state)
{
	(void)state;
	int root = fresh_root("cleanup");
	mkfile("gone", "system.jsonl", 10, 0);
	mkfile("gone", "user.jsonl", 10, 0);
	mkfile("gone", ".checkpoint", 10, 0);
	mkfile("kept", "system.jsonl", 10, 0);
	struct fl_retention_hooks h = {.by = "test"};
	assert_int_equal(fl_retention_remove_session(root, "gone", FL_RET_CLEANUP, &h), 0);
	expect_files("gone", "-");
	expect_files("kept", "system.jsonl");
	assert_int_equal(log_lines("\"reason\":\"cleanup_on_exit\""), 1);
	assert_int_equal(log_lines("\"files\":3"), 1);
	assert_int_equal(fl_retention_remove_session(root, "gone", FL_RET_CLEANUP, &h), -ENOENT);
	assert_int_equal(fl_retention_remove_session(root, "../x", FL_RET_CLEANUP, &h), -EINVAL);
	/* A removal a crash interrupted is finished by the next pass. */
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "mkdir '%s/@removing.zombie' && touch '%s/@removing.zombie/system.jsonl'", g_root,
		 g_root);
	assert_int_equal(system(cmd), 0);
	run(root, 0, 0, 0, NULL);
	expect_files("@removing.zombie", "-");
	expect_files(".", "@fugue-logd.jsonl @gc.lock kept");
	close(root);
}

/* fugue-log gc: the same pass from the command line, config from --config, a ring in shm keeps a session live. */
static void test_gc_cli(void **state)
{
	(void)state;
	int root = fresh_root("gccli");
	build_age_tree();
	mkfile("ringup", "system.000001.jsonl.lz4", 100, 10 * DAY);
	mkfile("ringup", "system.jsonl", 100, 9 * DAY);
	mkmanifest("ringup", "ended"); /* but its ring is still there: live, so only the old archive goes */
	const char *prefix = getenv("FUGUE_SHM_PREFIX");
	assert_non_null(prefix);
	char shm[512], conf[1400], cmd[4096];
	snprintf(shm, sizeof shm, "/dev/shm/%sringup", prefix);
	FILE *f = fopen(shm, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(conf, sizeof conf, "%s/../gc.conf", g_root);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs("retention = 7d\nmax_session_size = 0\n", f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "'%s/drainer/fugue-log' --root '%s' --config '%s' gc > '%s/../gc.out'",
		 getenv("FL_BUILD_DIR"), g_root, conf, g_root);
	int st = system(cmd);
	unlink(shm);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	expect_files("live", "session.json system.000003.jsonl.lz4 system.000004.jsonl system.jsonl "
			     "user.000005.jsonl user.000005.jsonl.lz4 user.jsonl");
	expect_files("oldend", "-");
	expect_files("newend", "session.json system.jsonl");
	expect_files("ringup", "session.json system.jsonl");
	assert_int_equal(log_lines("\"by\":\"fugue-log gc\""), 7);
	snprintf(cmd, sizeof cmd,
		 "grep -c '^removed ' '%s/../gc.out' | grep -qx 7 && "
		 "grep -qx 'removed oldend (whole session) (retention, 364 bytes)' '%s/../gc.out' && "
		 "grep -q '^gc: 6 sessions, removed 6 segments and 1 sessions, freed 964 bytes' '%s/../gc.out'",
		 g_root, g_root, g_root);
	assert_int_equal(system(cmd), 0);
	/* usage errors are 2 */
	snprintf(cmd, sizeof cmd, "'%s/drainer/fugue-log' gc --bogus 2>/dev/null", getenv("FL_BUILD_DIR"));
	st = system(cmd);
	assert_int_equal(WEXITSTATUS(st), 2);
	close(root);
}

/* An ended session's segment list follows the disk after a pass: removed entries dropped, late archives marked. */
static void test_manifest_refresh(void **state)
{
	(void)state;
	int root = fresh_root("refresh");
	mkfile("s", "system.000001.jsonl.lz4", 100, 10 * DAY); /* goes: older than retention */
	mkfile("s", "user.000002.jsonl.lz4", 77, 1 * DAY);     /* the manifest still says closed */
	mkfile("s", "system.000003.jsonl", 200, 1 * DAY);      /* closed, waiting */
	mkfile("s", "system.jsonl", 10, 0);
	char path[1400];
	snprintf(path, sizeof path, "%s/s/session.json", g_root);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"id\":\"s\",\"state\":\"ended\",\"segments\":["
	      "{\"n\":1,\"class\":\"system\",\"file\":\"system.000001.jsonl.lz4\",\"state\":\"archived\",\"lines\":1,"
	      "\"size\":300,\"compressed\":100},"
	      "{\"n\":2,\"class\":\"user\",\"file\":\"user.000002.jsonl\",\"state\":\"closed\",\"lines\":2,"
	      "\"size\":400,\"compressed\":null},"
	      "{\"n\":3,\"class\":\"system\",\"file\":\"system.000003.jsonl\",\"state\":\"closed\",\"lines\":3,"
	      "\"size\":200,\"compressed\":null}],\"files\":{}}\n",
	      f);
	fclose(f);
	struct fl_retention_stats st;
	run(root, 7 * 86400, 0, 0, &st);
	assert_int_equal(st.removed_segments, 1);
	char cmd[2048];
	snprintf(
	    cmd, sizeof cmd,
	    "python3 -c \"import json,sys; m=json.load(open(sys.argv[1])); s=m['segments']; "
	    "assert [x['n'] for x in s]==[2,3], s; "
	    "assert s[0]=={'n':2,'class':'user','file':'user.000002.jsonl.lz4','state':'archived','lines':2,"
	    "'size':400,'compressed':77}, s[0]; "
	    "assert s[1]['state']=='closed' and s[1]['compressed'] is None; assert m['files']=={} and m['id']=='s'\" "
	    "'%s'",
	    path);
	assert_int_equal(system(cmd), 0);
	/* unchanged now: not rewritten */
	struct stat a, b;
	assert_int_equal(stat(path, &a), 0);
	run(root, 7 * 86400, 0, 0, &st);
	assert_int_equal(stat(path, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	close(root);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_age_rule),	     cmocka_unit_test(test_session_cap),    cmocka_unit_test(test_total_cap),
    cmocka_unit_test(test_rules_together),   cmocka_unit_test(test_remove_session), cmocka_unit_test(test_gc_cli),
    cmocka_unit_test(test_manifest_refresh),
};

FL_TEST_MAIN("retention", tests)

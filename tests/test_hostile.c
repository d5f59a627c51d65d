/* SPDX-License-Identifier: MIT */
/* test_hostile: rings and names crafted by a hostile producer are refused with a reason, never trusted. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fl_test.h"

#include "fuguelog.h"
#include "guard.h"
#include "ring.h"
#include "rings.h"

/* ---- helpers -------------------------------------------------------------------------- */

static const char *prefix(void)
{
	return fl_ring_prefix(); /* $FUGUE_SHM_PREFIX, unique per ctest test */
}

static void shm_name(char *out, size_t cap, const char *id)
{
	assert_int_equal(fl_ring_name(out, cap, NULL, id), 0);
}

/* Creates a genuine 2-lane ring, then lets edit() corrupt its mapped header before the attach under test. */
static void make_ring(const char *id, struct fl_ring *r)
{
	char name[256];
	shm_name(name, sizeof name, id);
	fl_ring_unlink(name);
	struct fl_ring_params p = {.id = id, .lane_count = 2, .lane_size = 4096, .level = FL_LEVEL_FULL};
	assert_int_equal(fl_ring_create(r, name, &p), 0);
}

static int attach_expect(const char *id, int want_rc, const char *want_why)
{
	char name[256], why[512] = "";
	struct fl_ring a;
	shm_name(name, sizeof name, id);
	int rc = fl_ring_attach(&a, name, why, sizeof why);
	if (rc == 0)
		fl_ring_detach(&a);
	if (rc != want_rc || !strstr(why, want_why)) {
		print_error("attach of %s: rc %d (want %d), reason '%s' (want '%s')\n", id, rc, want_rc, why, want_why);
		return -1;
	}
	return 0;
}

static void drop(const char *id)
{
	char name[256];
	shm_name(name, sizeof name, id);
	fl_ring_unlink(name);
}

/* Number of objects in /dev/shm that carry this test's prefix. */
static int count_shm(void)
{
	DIR *d = opendir(FL_SHM_DIR);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, prefix(), strlen(prefix()));
	closedir(d);
	return n;
}

/* ---- hostile headers ------------------------------------------------------------------ */

enum edit {
	E_MAGIC,
	E_VERSION,
	E_HDR_SIZE,
	E_LANES_HUGE,
	E_LANES_ZERO,
	E_LANES_NOT_POW2,
	E_LANE_SIZE_HUGE,
	E_LANE_SIZE_SMALL,
	E_LANES_OFF_WRAP,
	E_DATA_OFF_WRAP,
	E_DATA_OFF_PAST,
	E_TOTAL_BEYOND_MAP,
	E_GEOMETRY_BEYOND_MAP,
	E_ID_UNTERMINATED,
	E_COUNT
};

static const struct {
	const char *what;
	int rc;
	const char *why;
} expect[E_COUNT] = {
    [E_MAGIC] = {"bad magic", -EBADF, "bad magic"},
    [E_VERSION] = {"version 1, the layout before record tags", -EPROTO, "an older libfuguelog"},
    [E_HDR_SIZE] = {"header size", -EPROTO, "layout version"},
    [E_LANES_HUGE] = {"4 billion lanes", -EPROTO, "bad geometry"},
    [E_LANES_ZERO] = {"0 lanes", -EPROTO, "bad geometry"},
    [E_LANES_NOT_POW2] = {"3 lanes", -EPROTO, "bad geometry"},
    [E_LANE_SIZE_HUGE] = {"lane of 2^63", -EPROTO, "bad geometry"},
    [E_LANE_SIZE_SMALL] = {"lane of 64", -EPROTO, "bad geometry"},
    [E_LANES_OFF_WRAP] = {"lanes offset wraps", -EPROTO, "bad offsets"},
    [E_DATA_OFF_WRAP] = {"data offset wraps", -EPROTO, "bad offsets"},
    [E_DATA_OFF_PAST] = {"data offset past the end", -EPROTO, "bad offsets"},
    [E_TOTAL_BEYOND_MAP] = {"total size beyond the mapping", -EPROTO, "size mismatch"},
    [E_GEOMETRY_BEYOND_MAP] = {"64 lanes of 1 GiB in 12 KiB", -EPROTO, "size mismatch"},
    [E_ID_UNTERMINATED] = {"id without NUL", -EPROTO, "NUL"},
};

static void apply(struct fl_ring_hdr *h, enum edit e)
{
	switch (e) {
	case E_MAGIC:
		h->magic ^= 1;
		break;
	case E_VERSION:
		h->version = 1;
		break;
	case E_HDR_SIZE:
		h->hdr_size = 1u << 31;
		break;
	case E_LANES_HUGE:
		h->lane_count = UINT32_MAX;
		break;
	case E_LANES_ZERO:
		h->lane_count = 0;
		break;
	case E_LANES_NOT_POW2:
		h->lane_count = 3;
		break;
	case E_LANE_SIZE_HUGE:
		h->lane_size = 1ull << 63;
		break;
	case E_LANE_SIZE_SMALL:
		h->lane_size = 64;
		break;
	case E_LANES_OFF_WRAP:
		h->lanes_off = UINT64_MAX - 63;
		break;
	case E_DATA_OFF_WRAP:
		h->data_off = UINT64_MAX - 4095;
		break;
	case E_DATA_OFF_PAST:
		h->data_off = h->total_size;
		break;
	case E_TOTAL_BEYOND_MAP:
		h->total_size = 1ull << 40;
		break;
	case E_GEOMETRY_BEYOND_MAP: {
		/* self-consistent header for a ring far larger than the object */
		h->lane_count = 64;
		h->lane_size = 1ull << 30;
		h->data_off = 12288;
		h->total_size = 12288 + 64 * (1ull << 30);
		break;
	}
	case E_ID_UNTERMINATED:
		memset(h->id, 'a', sizeof h->id);
		break;
	case E_COUNT:
		break;
	}
}

static void test_header_refused(void **state)
{
	(void)state;
	int failed = 0;
	for (int e = 0; e < E_COUNT; e++) {
		struct fl_ring r;
		make_ring("hostile", &r);
		apply(r.hdr, (enum edit)e);
		if (attach_expect("hostile", expect[e].rc, expect[e].why) < 0) {
			print_error("  case: %s\n", expect[e].what);
			failed++;
		}
		fl_ring_detach(&r);
		drop("hostile");
	}
	assert_int_equal(failed, 0);
	/* and the untouched ring is accepted, so the cases above fail for their edit alone */
	struct fl_ring r;
	make_ring("hostile", &r);
	assert_int_equal(attach_expect("hostile", 0, ""), 0);
	fl_ring_detach(&r);
	drop("hostile");
}

/* Objects whose size alone says they are not rings: empty, shorter than a header, absurdly large. */
static void test_object_size_refused(void **state)
{
	(void)state;
	static const struct {
		off_t size;
		const char *why;
	} c[] = {
	    {0, "impossible size"},
	    {100, "impossible size"},
	    {(off_t)1 << 45, "impossible size"},
	    {8192, "bad magic"},
	};
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		char name[256];
		shm_name(name, sizeof name, "sized");
		int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		if (ftruncate(fd, c[i].size) < 0) {
			close(fd);
			fl_ring_unlink(name);
			fail_msg("ftruncate to %lld: %s", (long long)c[i].size, strerror(errno));
		}
		close(fd);
		assert_int_equal(attach_expect("sized", -EBADF, c[i].why), 0);
		fl_ring_unlink(name);
	}
}

/* A symlink in the shm directory is not followed, whatever it points at. */
static void test_shm_symlink_refused(void **state)
{
	(void)state;
	struct fl_ring r;
	make_ring("target", &r);
	char link[512], target[512];
	snprintf(link, sizeof link, FL_SHM_DIR "/%slinked", prefix());
	snprintf(target, sizeof target, FL_SHM_DIR "/%starget", prefix());
	unlink(link);
	assert_int_equal(symlink(target, link), 0);
	int rc = attach_expect("linked", -ELOOP, "cannot open");
	unlink(link);
	fl_ring_detach(&r);
	drop("target");
	assert_int_equal(rc, 0);
}

/* ---- hostile lanes -------------------------------------------------------------------- */

static void publish(struct fl_ring *r, uint32_t lane, const char *s)
{
	struct fl_reservation res = {0};
	assert_int_equal(fl_lane_reserve(r, lane, (uint32_t)strlen(s), &res), 0);
	memcpy(res.payload, s, strlen(s));
	fl_lane_commit(r, &res);
}

enum lane_edit {
	L_HEAD_UNALIGNED,
	L_HEAD_FAR,
	L_TAIL_AHEAD,
	L_TYPE,
	L_LEN_HUGE,
	L_LEN_PAST_HEAD,
	L_PAD_SHORT,
	L_COUNT
};

static void test_corrupt_lane_refused(void **state)
{
	(void)state;
	static const char *const want[L_COUNT] = {
	    [L_HEAD_UNALIGNED] = "unaligned head",
	    [L_HEAD_FAR] = "lane holds",
	    [L_TAIL_AHEAD] = "lane holds",
	    [L_TYPE] = "unknown type",
	    [L_LEN_HUGE] = "beyond the lane",
	    [L_LEN_PAST_HEAD] = "beyond the lane or the head",
	    [L_PAD_SHORT] = "does not reach the end",
	};
	for (int e = 0; e < L_COUNT; e++) {
		struct fl_ring r, a;
		char name[256], why[512] = "";
		make_ring("lanes", &r);
		publish(&r, 0, "first record");
		publish(&r, 0, "second record");
		publish(&r, 1, "the other lane is fine");
		shm_name(name, sizeof name, "lanes");
		assert_int_equal(fl_ring_attach(&a, name, why, sizeof why), 0);
		struct fl_lane_ctl *c = &a.lanes[0];
		struct fl_rec_hdr *first = (struct fl_rec_hdr *)a.data;
		switch ((enum lane_edit)e) {
		case L_HEAD_UNALIGNED:
			c->head += 3;
			break;
		case L_HEAD_FAR:
			c->head += 2 * a.lane_size;
			break;
		case L_TAIL_AHEAD:
			c->tail = c->head + 64;
			break;
		case L_TYPE:
			first->type = 0x1234;
			break;
		case L_LEN_HUGE:
			first->len = UINT32_MAX;
			break;
		case L_LEN_PAST_HEAD:
			first->len = 200; /* inside the lane, past what was published */
			break;
		case L_PAD_SHORT:
			first->type = FL_REC_PAD;
			break;
		case L_COUNT:
			break;
		}
		struct fl_rec recs[8];
		uint64_t next;
		int rc = fl_lane_peek(&a, 0, recs, 8, &next, why, sizeof why);
		if (rc != -EBADMSG || !strstr(why, want[e]))
			fail_msg("lane edit %d: rc %d, reason '%s' (want -EBADMSG and '%s')", e, rc, why, want[e]);
		/* quarantining lane 0 does not touch lane 1 */
		assert_int_equal(fl_lane_peek(&a, 1, recs, 8, &next, why, sizeof why), 1);
		assert_int_equal(recs[0].len, strlen("the other lane is fine"));
		fl_ring_detach(&a);
		fl_ring_detach(&r);
		drop("lanes");
	}
}

/* A producer that truncates its object under the consumer: the guard turns SIGBUS into zeros. */
static void test_truncate_after_attach(void **state)
{
	(void)state;
	assert_int_equal(fl_guard_install(), 0);
	struct fl_ring r, a;
	char name[256], why[512] = "";
	make_ring("shrink", &r);
	publish(&r, 1, "published before the shrink");
	shm_name(name, sizeof name, "shrink");
	assert_int_equal(fl_ring_attach(&a, name, why, sizeof why), 0);
	assert_int_equal(fl_guard_tripped(a.hdr), 0);
	assert_int_equal(ftruncate(r.fd, 4096), 0); /* the header page stays, the lanes go */

	struct fl_rec recs[8];
	uint64_t next;
	/* without the guard this read is a SIGBUS and the test process dies */
	int rc = fl_lane_peek(&a, 1, recs, 8, &next, why, sizeof why);
	assert_int_equal(fl_guard_tripped(a.hdr), 1);
	assert_true(rc == 0 || rc == -EBADMSG); /* zeros: nothing, or refused; never invented records */
	/* the replaced mapping is all zeros: the magic is gone, so it cannot be re-validated */
	struct fl_ring v;
	assert_int_equal(fl_ring_validate(&v, a.hdr, a.map_size, why, sizeof why), -EBADF);
	fl_ring_detach(&a);

	/* a fresh attach sees the short object and refuses it with a reason */
	assert_int_equal(attach_expect("shrink", -EPROTO, "size mismatch"), 0);
	fl_ring_detach(&r);
	drop("shrink");
}

/*
 * A SIGBUS outside every guarded ring still kills: the guard hides nothing else.
 * The child is a fresh exec of this binary (FL_HOSTILE_SIGBUS_CHILD set), so no
 * cmocka handler sits behind the guard; it runs from a constructor, before main.
 */
__attribute__((constructor)) static void sigbus_child(void)
{
	const char *path = getenv("FL_HOSTILE_SIGBUS_CHILD");
	if (!path)
		return;
	if (fl_guard_install() < 0)
		_exit(2);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		_exit(3);
	volatile uint8_t *p = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		_exit(4);
	(void)p[4096]; /* past the end of the file: SIGBUS */
	_exit(0);
}

static void test_guard_passes_other_sigbus(void **state)
{
	(void)state;
	char path[1024];
	snprintf(path, sizeof path, "%s/bus", fl_test_tmp());
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("FL_HOSTILE_SIGBUS_CHILD", path, 1);
		execl("/proc/self/exe", "test_hostile", (char *)NULL);
		_exit(5);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/*
	 * SIGBUS, or under a sanitizer its report and then abort (ASan) or exit 66
	 * (TSan); a guard that swallowed it would exit 0 or spin until the timeout.
	 */
	const char *san = getenv("FL_SANITIZED");
	int sanitized = san && *san && strcmp(san, "0");
	if (WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) <= 5 || !sanitized))
		fail_msg("the child survived a SIGBUS outside any ring (exit %d)", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		assert_true(WTERMSIG(st) == SIGBUS || (sanitized && WTERMSIG(st) == SIGABRT));
}

/* The guard has no fixed size: 20,000 mappings register (the old table stopped at 1024), and all unregister. */
static void test_guard_table_full(void **state)
{
	(void)state;
	enum { N = 20000 };
	uint8_t *fake = malloc((size_t)N * 4096); /* distinct page-aligned-ish bases; never faulted */
	assert_non_null(fake);
	assert_int_equal(fl_guard_install(), 0);
	size_t base = fl_guard_count();
	for (int i = 0; i < N; i++)
		assert_int_equal(fl_guard_add(fake + (size_t)i * 4096, 4096), 0);
	assert_int_equal(fl_guard_count(), base + N);
	assert_int_equal(fl_guard_tripped(fake + 7 * 4096), 0);
	for (int i = 0; i < N; i += 2)
		fl_guard_del(fake + (size_t)i * 4096);
	assert_int_equal(fl_guard_count(), base + N / 2);
	/* freed entries are reused */
	for (int i = 0; i < N; i += 2)
		assert_int_equal(fl_guard_add(fake + (size_t)i * 4096, 4096), 0);
	for (int i = 0; i < N; i++)
		fl_guard_del(fake + (size_t)i * 4096);
	assert_int_equal(fl_guard_count(), base);
	free(fake);
}

/* Out of fds, the liveness check says "could not look" (-EMFILE), never "gone": a live producer is not abandoned. */
static void test_liveness_not_judged_on_emfile(void **state)
{
	(void)state;
	struct fl_ring r, a;
	char name[256], why[256];
	make_ring("alive", &r);
	shm_name(name, sizeof name, "alive");
	assert_int_equal(fl_ring_attach(&a, name, why, sizeof why), 0);
	assert_int_equal(fl_ring_owner_alive(&a), 1);
	struct rlimit old, none;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = 3; /* stdin, stdout, stderr: the next open fails */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
	int rc = fl_ring_owner_alive(&a);
	setrlimit(RLIMIT_NOFILE, &old);
	assert_int_equal(rc, -EMFILE);
	/* a pid that does not exist is gone, a start time that differs is gone */
	uint64_t st;
	assert_int_equal(fl_proc_start(0x3fffffff, &st), -ESRCH);
	a.hdr->pid_start++;
	assert_int_equal(fl_ring_owner_alive(&a), 0);
	fl_ring_detach(&a);
	fl_ring_detach(&r);
	drop("alive");
}

/* ---- permissions and names ------------------------------------------------------------ */

static void test_shm_mode_0600(void **state)
{
	(void)state;
	static const mode_t masks[] = {0, 022, 077};
	for (size_t i = 0; i < sizeof masks / sizeof *masks; i++) {
		mode_t old = umask(masks[i]);
		fl_session *s;
		char why[256] = "", name[256];
		struct fl_session_opts o = {.id = "perm"};
		int rc = fl_session_open(&s, &o, why, sizeof why);
		umask(old);
		assert_int_equal(rc, 0);
		shm_name(name, sizeof name, "perm");
		struct stat st;
		char path[512];
		snprintf(path, sizeof path, FL_SHM_DIR "%s", name);
		assert_int_equal(stat(path, &st), 0);
		if ((st.st_mode & 07777) != 0600)
			fail_msg("umask %03o: ring mode %03o, want 0600", masks[i], st.st_mode & 07777);
		fl_session_close(s);
		fl_ring_unlink(name);
	}
}

static const char *const bad_ids[] = {
    "",		 ".",	       "..", "a/b",  "../etc", "/abs", "a b", "tab\t",
    "new\nline", "semi;colon", "é",  "a\\b", "%2e%2e", "x*",   NULL, /* the 65-byte id is appended at run time */
};

static void test_session_id_refused(void **state)
{
	(void)state;
	char long_id[FL_RING_ID_MAX + 2];
	memset(long_id, 'x', FL_RING_ID_MAX + 1);
	long_id[FL_RING_ID_MAX + 1] = 0;
	int before = count_shm();
	for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
		const char *id = bad_ids[i] ? bad_ids[i] : long_id;
		fl_session *s = (fl_session *)1;
		char why[256] = "";
		struct fl_session_opts o = {.id = id};
		int rc = fl_session_open(&s, &o, why, sizeof why);
		if (rc != -EINVAL || s != NULL || !strstr(why, "refused"))
			fail_msg("id '%s': rc %d, why '%s' (want -EINVAL and a reason)", id, rc, why);
		assert_int_equal(fl_id_check(id), -EINVAL);
	}
	assert_int_equal(count_shm(), before); /* nothing was created for any of them */

	/* the limits themselves are accepted: 64 bytes, dots inside, every allowed character */
	long_id[FL_RING_ID_MAX] = 0;
	const char *good[] = {long_id, "a..b", ".hidden", "A-Z_a-z.0-9"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		fl_session *s;
		char why[256] = "", name[256];
		struct fl_session_opts o = {.id = good[i]};
		assert_int_equal(fl_session_open(&s, &o, why, sizeof why), 0);
		shm_name(name, sizeof name, good[i]);
		fl_session_close(s);
		fl_ring_unlink(name);
	}
}

struct scan_seen {
	int good, bad;
	char last_bad[512];
};

static int on_ring(const char *id, const char *shm, void *arg)
{
	struct scan_seen *s = arg;
	(void)shm;
	assert_int_equal(fl_id_check(id), 0);
	s->good++;
	return 0;
}

static void on_bad(const char *name, void *arg)
{
	struct scan_seen *s = arg;
	s->bad++;
	snprintf(s->last_bad, sizeof s->last_bad, "%s", name);
}

/* Discovery never hands a bad id to the drainer, whatever names sit in /dev/shm. */
static void test_scan_skips_bad_names(void **state)
{
	(void)state;
	char long_id[FL_RING_ID_MAX + 2];
	memset(long_id, 'y', FL_RING_ID_MAX + 1);
	long_id[FL_RING_ID_MAX + 1] = 0;
	const char *bad[] = {"..", ".", "sp ace", "new\nline", "semi;colon", long_id, ""};
	const size_t nbad = sizeof bad / sizeof *bad;
	for (size_t i = 0; i < nbad; i++) {
		char path[512];
		snprintf(path, sizeof path, FL_SHM_DIR "/%s%s", prefix(), bad[i]);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd < 0)
			fail_msg("cannot create %s: %s", path, strerror(errno));
		close(fd);
	}
	struct fl_ring r;
	make_ring("good-one", &r);

	struct scan_seen seen = {0};
	assert_int_equal(fl_rings_scan(prefix(), on_ring, on_bad, &seen), 0);
	for (size_t i = 0; i < nbad; i++) {
		char path[512];
		snprintf(path, sizeof path, FL_SHM_DIR "/%s%s", prefix(), bad[i]);
		unlink(path);
	}
	fl_ring_detach(&r);
	drop("good-one");
	assert_int_equal(seen.good, 1);
	assert_int_equal(seen.bad, (int)nbad);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_header_refused),
    cmocka_unit_test(test_object_size_refused),
    cmocka_unit_test(test_shm_symlink_refused),
    cmocka_unit_test(test_corrupt_lane_refused),
    cmocka_unit_test(test_truncate_after_attach),
    cmocka_unit_test(test_guard_passes_other_sigbus),
    cmocka_unit_test(test_guard_table_full),
    cmocka_unit_test(test_shm_mode_0600),
    cmocka_unit_test(test_session_id_refused),
    cmocka_unit_test(test_scan_skips_bad_names),
    cmocka_unit_test(test_liveness_not_judged_on_emfile),
};

FL_TEST_MAIN("hostile", tests)

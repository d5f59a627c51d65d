/* SPDX-License-Identifier: MIT */
/* cli_cat.c: fugue-log cat — a session's lines from every segment of both classes, merged by seq, followed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonl.h"
#include "cli.h"
#include "fuguelog.h"
#include "ring.h"
#include "archive.h"
#include "manifest.h"
#include "segindex.h"
#include "segread.h"
#include "sessread.h"

/*
 * While following, a line of one class is held back until the other class
 * shows a line too, or the line is the next seq after the last one printed, or
 * this long has passed: the drainer writes one batch to both files, so the
 * other file can briefly lag behind.
 */
#define FOLLOW_GRACE_S 1.0
#define FOLLOW_POLL_MS 1000 /* rescan even without an inotify event (and check session.json) */

struct stream {
	const char *cls;
	int dirfd;
	struct fl_segread *rd;
	int64_t last_seg; /* number of the last rotated segment opened, -1 before any */
	int on_active;
	int rotated; /* the active file we hold was renamed: read it to its end, then move on */
	int dead;
	dev_t dev;
	ino_t ino;
	int have_last;
	uint64_t last_seq;
	char *pend; /* the next line of this class, not yet printed */
	size_t plen, pcap;
	uint64_t pseq;
	int pseq_ok, has_pend;
	double held_since;
	unsigned errors;
};

static volatile sig_atomic_t interrupted;

/* --since/--until (inclusive, ns): lines outside are not printed, segments the manifest puts outside are not read */
static int64_t cat_since, cat_until = INT64_MAX;
static int cat_timed;
static struct fl_segindex cat_idx;

static int line_in_range(const char *line, size_t len)
{
	const char *v;
	size_t n;
	uint64_t ts = 0;
	if (fl_json_field(line, len, "ts_ns", &v, &n) == 0) {
		/* a string since schema 2, a bare number in files written before */
		if (n >= 2 && v[0] == '"') {
			v++;
			n -= 2;
		}
		for (size_t i = 0; i < n && v[i] >= '0' && v[i] <= '9'; i++)
			ts = ts * 10 + (uint64_t)(v[i] - '0');
	} else if (fl_json_field(line, len, "ts", &v, &n) < 0 || n < 2 || fl_ts_parse(v + 1, n - 2, &ts) < 0) {
		return 0; /* no time: not in any range */
	}
	return (int64_t)ts >= cat_since && (int64_t)ts <= cat_until;
}

static int cat_follow; /* --follow */

/* --output: 0 the JSON lines as stored, else fl_cat_render's text or transcript */
static int cat_output;

static void print_line(const char *line, size_t len)
{
	if (cat_output)
		fl_cat_render(stdout, cat_output, line, len);
	else
		fwrite(line, 1, len, stdout), fputc('\n', stdout);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void warn_seg(struct stream *st, const char *why)
{
	fprintf(stderr, "fugue-log cat: %s; skipping the rest of that file\n", why);
	st->errors++;
}

static ino_t segread_ino(const struct fl_segread *rd)
{
	struct stat sb;
	return fl_segread_stat(rd, &sb) == 0 ? sb.st_ino : 0;
}

/* open_next's answer when the class's files could not be listed. */
static int list_failed(struct stream *st, int n)
{
	if (n == -EAGAIN && cat_follow)
		return 0; /* rotating faster than it can be listed: the next wake-up lists again */
	if (n == -EAGAIN)
		fprintf(stderr,
			"fugue-log cat: the session directory kept changing while it was listed (rotating faster than "
			"it can be listed); the %s lines stop here: run the command again\n",
			st->cls);
	else
		fprintf(stderr, "fugue-log cat: cannot list the session directory: %s\n", strerror(-n));
	st->errors++;
	st->dead = 1;
	return n;
}

/* Listings open_next takes when each time the file it picked moved before it could be opened. */
#define OPEN_TRIES 64

/* Opens the next file of the class: the first rotated segment after last_seg, else the active file. */
static int open_next(struct stream *st)
{
	char why[300];
	for (int attempt = 0; attempt < OPEN_TRIES; attempt++) {
		struct fl_seg *v;
		int n = fl_segments_list(st->dirfd, st->cls, &v);
		if (n < 0)
			return list_failed(st, n);
		const struct fl_seg *pick = NULL;
		for (int i = 0; i < n && !pick; i++)
			if (v[i].num == FL_SEG_ACTIVE ||
			    ((int64_t)v[i].num > st->last_seg &&
			     !(cat_timed && fl_segindex_skip(&cat_idx, st->cls, v[i].num, cat_since, cat_until))))
				pick = &v[i];
		if (!pick) {
			fl_segments_free(v, n);
			return 0;
		}
		int rc = fl_segread_open(&st->rd, st->dirfd, pick->name, why, sizeof why);
		if (rc == -ENOENT && pick->num != FL_SEG_ACTIVE && !pick->lz4) {
			/* compressed and removed between the listing and the open: read the archive */
			char lz[sizeof pick->name + 8];
			snprintf(lz, sizeof lz, "%s.lz4", pick->name);
			rc = fl_segread_open(&st->rd, st->dirfd, lz, why, sizeof why);
		}
		uint64_t num = pick->num;
		/* compared while the listing still holds the listed active file, so its inode is not reused */
		int moved = rc == 0 && num == FL_SEG_ACTIVE && segread_ino(st->rd) != pick->ino;
		fl_segments_free(v, n);
		if (rc == -ENOENT)
			continue; /* rotated or removed under us: list again */
		if (moved) {
			/* rotated since the listing: the segment it became comes first */
			fl_segread_close(st->rd);
			st->rd = NULL;
			continue;
		}
		if (rc < 0) {
			warn_seg(st, why);
			if (num == FL_SEG_ACTIVE) {
				st->dead = 1;
				return rc;
			}
			st->last_seg = num;
			continue;
		}
		st->on_active = num == FL_SEG_ACTIVE;
		st->rotated = 0;
		if (st->on_active) {
			struct stat sb;
			fl_segread_stat(st->rd, &sb);
			st->dev = sb.st_dev;
			st->ino = sb.st_ino;
		} else {
			st->last_seg = num;
		}
		return 1;
	}
	if (cat_follow)
		return 0; /* the next wake-up tries again */
	fprintf(stderr,
		"fugue-log cat: the %s files kept rotating while they were opened; the %s lines stop here: run the "
		"command again\n",
		st->cls, st->cls);
	st->errors++;
	st->dead = 1;
	return -EAGAIN;
}

/* The active file we read from is no longer the one under the active name: it was rotated. */
static int active_moved(struct stream *st)
{
	char name[80];
	struct stat sb;
	snprintf(name, sizeof name, "%s.jsonl", st->cls);
	if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT;
	return sb.st_dev != st->dev || sb.st_ino != st->ino;
}

/* Makes st->pend the next line of the class: 1 when there is one, 0 when nothing more for now. */
static int stream_fill(struct stream *st)
{
	char why[300];
	while (!st->has_pend && !st->dead) {
		if (!st->rd) {
			int rc = open_next(st);
			if (rc <= 0)
				return 0;
		}
		const char *line;
		size_t len;
		int rc = fl_segread_next(st->rd, &line, &len, why, sizeof why);
		if (rc == 1) {
			uint64_t seq;
			int ok = fl_line_seq(line, len, &seq) == 0;
			if (ok && st->have_last && seq <= st->last_seq)
				continue; /* read again after a rotation: already printed */
			if (cat_timed && !line_in_range(line, len))
				continue;
			if (len + 1 > st->pcap) {
				size_t nc = len + 1 + 4096;
				char *np = realloc(st->pend, nc);
				if (!np) {
					fprintf(stderr, "fugue-log cat: out of memory for a %zu-byte line\n", len);
					st->errors++;
					st->dead = 1;
					return 0;
				}
				st->pend = np;
				st->pcap = nc;
			}
			memcpy(st->pend, line, len);
			st->plen = len;
			st->pseq = seq;
			st->pseq_ok = ok;
			st->has_pend = 1;
			st->held_since = fl_cli_now();
			return 1;
		}
		if (rc < 0) {
			warn_seg(st, why);
			fl_segread_close(st->rd);
			st->rd = NULL;
			if (st->on_active)
				st->dead = 1; /* the active file cannot be read on: stop this class */
			continue;
		}
		if (!st->on_active || st->rotated) {
			/* a finished segment, or the renamed active file read to its end */
			fl_segread_close(st->rd);
			st->rd = NULL;
			st->on_active = 0;
			continue;
		}
		if (!active_moved(st))
			return 0;
		st->rotated = 1; /* lines may have been appended before the rename: read on */
	}
	return st->has_pend;
}

/* 1 when session.json says the session is over (or its directory is gone). */
static int session_over(int dirfd)
{
	struct stat sb;
	if (fstat(dirfd, &sb) == 0 && sb.st_nlink == 0)
		return 1;
	return fl_manifest_over(dirfd);
}

/* Sleeps until the directory changes, the timeout passes or a signal comes. */
static void wait_change(int ifd, int timeout_ms)
{
	fflush(stdout);
	if (ifd < 0) {
		struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		return;
	}
	struct pollfd p = {ifd, POLLIN, 0};
	if (poll(&p, 1, timeout_ms) > 0) {
		char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
		while (read(ifd, buf, sizeof buf) > 0)
			; /* only the wake-up matters; the streams look for themselves */
	}
}

/* One stderr note per hole in seq, so a log that retention trimmed never passes for a whole one. */
static void note_gap(const char *id, const char *root, uint64_t from, uint64_t to)
{
	fflush(stdout); /* the note lands between the lines it is about */
	if (from == to)
		fprintf(stderr, "fugue-log: seq %llu of %s is not on disk", (unsigned long long)from, id);
	else
		fprintf(stderr, "fugue-log: seq %llu-%llu of %s are not on disk", (unsigned long long)from,
			(unsigned long long)to, id);
	fprintf(stderr, " (removed by retention: %s/@fugue-logd.jsonl lists what went and why)\n", root);
}

static void help(void)
{
	printf("usage: fugue-log cat SESSION [--class user|system] [--follow] [--since T] [--until T]\n"
	       "                     [--output json|text|transcript] [--root DIR] [--config FILE]\n"
	       "\n"
	       "Prints the JSON lines of SESSION from <root>/SESSION/: for each class, the rotated\n"
	       "segments in segment order (lz4 archives <class>.NNNNNN.jsonl.lz4 decompressed on the\n"
	       "fly, plain <class>.NNNNNN.jsonl when both exist), then the active <class>.jsonl; both\n"
	       "classes merged by the \"seq\" field (shared by both files and gapless).\n"
	       "\n"
	       "  --class C   only user or only system lines\n"
	       "  --follow    keep printing lines as fugue-logd appends them, across rotations, until\n"
	       "              the session's session.json says \"ended\" or \"abandoned\", or SIGINT/SIGTERM\n"
	       "              (with --follow, a session whose directory does not exist yet but whose\n"
	       "              ring does is waited for)\n"
	       "  --since T   only lines with since <= ts; T is ISO 8601 (2026-11-25T16:33:33Z, +01:00\n"
	       "              offsets, a date alone is its midnight UTC), @EPOCH_SECONDS, or a time\n"
	       "              before now: 30s, 10m, 2h, 7d\n"
	       "  --until T   only lines with ts <= until (same forms); segments that session.json\n"
	       "              puts wholly outside the range are not even opened\n"
	       "  --output F  json (default): the lines as stored; text: one short line per event\n"
	       "              (time, kind, summary), like journalctl -o short; transcript: the raw\n"
	       "              bytes of the transcript events only (what 'fugue-log run' recorded)\n"
	       "  --root DIR  the log root (default: FUGUE_LOG_DIR, config 'root', ~/.fugue/logs)\n"
	       "\n"
	       "A hole in seq (lines removed by retention) is said on stderr, once per hole, unless\n"
	       "--class, --since or --until make holes expected.\n"
	       "\n"
	       "Exit codes: 0 printed (also after SIGINT with --follow); 1 a file could not be read or\n"
	       "an archive is corrupt (the readable lines are still printed, the problem on stderr);\n"
	       "2 usage error; 3 no log directory for SESSION under the root.\n");
}

/* What the command line asked for; --since/--until go to cat_since/cat_until. */
struct cat_args {
	const char *cls; /* NULL: both classes */
	int follow;
	const char *id;
};

/* A --since or --until value into *t; 0, or the usage exit code. */
static int parse_time_opt(int c, const char *arg, int64_t *t)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (fl_time_arg_parse(arg, (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec, t) < 0)
		return fl_cli_usage_err("cat",
					"--%s '%s': use ISO 8601 (2026-11-25T16:33:33Z), "
					"@EPOCH_SECONDS or a time ago like 10m",
					c == 'S' ? "since" : "until", arg);
	cat_timed = 1;
	return 0;
}

/* Reads the command line into a; 0, -1 when help was printed, or a usage exit code. */
static int parse_args(struct cat_args *a, int argc, char **argv)
{
	static const struct option opts[] = {{"class", required_argument, NULL, 'c'},
					     {"follow", no_argument, NULL, 'f'},
					     {"since", required_argument, NULL, 'S'},
					     {"until", required_argument, NULL, 'U'},
					     {"output", required_argument, NULL, 'o'},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	int c, rc;
	while ((c = getopt_long(argc, argv, "hfc:", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'c':
			if (strcmp(optarg, "user") && strcmp(optarg, "system"))
				return fl_cli_usage_err("cat", "--class '%s': use user or system", optarg);
			a->cls = optarg;
			break;
		case 'o':
			if ((cat_output = fl_cat_output_parse(optarg)) < 0)
				return fl_cli_usage_err("cat", "--output '%s': use json, text or transcript", optarg);
			break;
		case 'f':
			a->follow = 1;
			break;
		case 'S':
		case 'U':
			if ((rc = parse_time_opt(c, optarg, c == 'S' ? &cat_since : &cat_until)))
				return rc;
			break;
		case 'h':
			help();
			return -1;
		default:
			return fl_cli_usage_err("cat", "bad option");
		}
	}
	if (argc - optind != 1)
		return fl_cli_usage_err("cat", argc == optind ? "name a SESSION (see 'fugue-log ls')"
							      : "give exactly one SESSION");
	a->id = argv[optind];
	if (fl_id_check(a->id) < 0)
		return fl_cli_usage_err("cat", "'%s' is not a session id: ids are 1 to 64 of A-Z a-z 0-9 . _ -", a->id);
	return 0;
}

/*
 * Opens <root>/<id>; with --follow, waits for the drainer to create it while
 * the session's ring exists. Returns the fd, or -1 with *exit set (0 when
 * interrupted while waiting).
 */
static int open_session_dir(const struct cat_args *a, const struct fl_config *cfg, int *exit)
{
	int rootfd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int dirfd = rootfd < 0 ? -1 : openat(rootfd, a->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0 && (errno == ENOENT) && a->follow) {
		/* the drainer creates the directory on its first batch: wait while the ring exists */
		char shm[FL_RING_ID_MAX + 80];
		struct fl_ring r;
		if (fl_ring_name(shm, sizeof shm, cfg->shm_prefix, a->id) == 0 &&
		    fl_ring_attach(&r, shm, NULL, 0) == 0) {
			fl_ring_detach(&r);
			while (dirfd < 0 && !interrupted) {
				wait_change(-1, 200);
				if (rootfd < 0)
					rootfd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (rootfd >= 0)
					dirfd = openat(rootfd, a->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			}
			if (interrupted && dirfd < 0) {
				close(rootfd);
				*exit = FL_EXIT_OK;
				return -1;
			}
		} else {
			errno = ENOENT;
		}
	}
	if (dirfd < 0) {
		int e = errno;
		if (rootfd >= 0)
			close(rootfd);
		if (e == ENOENT) {
			fl_cli_err("no logs for session '%s' under %s (is fugue-logd running with this root? "
				   "'fugue-log ls' lists live sessions; --root or FUGUE_LOG_DIR pick another root)",
				   a->id, cfg->root);
			*exit = FL_EXIT_NOSESSION;
			return -1;
		}
		fl_cli_err("cannot open %s/%s: %s", cfg->root, a->id,
			   e == ELOOP || e == ENOTDIR ? "not a directory (symlinks are not followed)" : strerror(e));
		*exit = FL_EXIT_FAIL;
		return -1;
	}
	close(rootfd);
	return dirfd;
}

/* An inotify fd on the session directory for --follow, or -1: polling still works, only slower to notice. */
static int watch_dir(int dirfd)
{
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	char path[PATH_MAX + 80];
	snprintf(path, sizeof path, "/proc/self/fd/%d", dirfd);
	if (ifd >= 0 && inotify_add_watch(ifd, path,
					  IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
					      IN_DELETE | IN_DELETE_SELF) < 0) {
		close(ifd);
		ifd = -1;
	}
	return ifd;
}

/* The stream whose pending line goes out next: lines without a seq at once, else the smallest seq. */
static struct stream *next_stream(struct stream *sv, int ns, int *pending)
{
	struct stream *best = NULL;
	*pending = 0;
	for (int i = 0; i < ns; i++) {
		if (stream_fill(&sv[i]))
			(*pending)++;
		if (!sv[i].has_pend)
			continue;
		if (!best || !sv[i].pseq_ok || (best->pseq_ok && sv[i].pseq < best->pseq))
			best = &sv[i];
	}
	return best;
}

/* Prints the streams merged by seq until they end (or, following, the session does). */
static void merge_out(struct stream *sv, int ns, int dirfd, int ifd, const struct cat_args *a, const char *root)
{
	/* seq is gapless over both classes: a hole in a full, untimed read is lines that are gone */
	int gap_notes = !a->cls && !cat_timed;
	int final = !a->follow;
	/* seq starts at 1, so the first line needs no wait (unless --since cut the start off) */
	int have_out = !cat_timed, pending;
	uint64_t last_out = 0;
	while (!interrupted) {
		struct stream *best = next_stream(sv, ns, &pending);
		if (!best) {
			if (final)
				break;
			wait_change(ifd, FOLLOW_POLL_MS);
			if (session_over(dirfd))
				final = 1; /* one more pass reads what was written before the end */
			continue;
		}
		if (!final && pending < ns && best->pseq_ok && !(have_out && best->pseq == last_out + 1)) {
			double left = FOLLOW_GRACE_S - (fl_cli_now() - best->held_since);
			if (left > 0) {
				wait_change(ifd, (int)(left * 1000) + 1);
				if (session_over(dirfd))
					final = 1;
				continue;
			}
		}
		if (gap_notes && best->pseq_ok && best->pseq > last_out + 1)
			note_gap(a->id, root, last_out + 1, best->pseq - 1);
		print_line(best->pend, best->plen);
		best->has_pend = 0;
		if (best->pseq_ok) {
			best->last_seq = best->pseq;
			best->have_last = 1;
			last_out = best->pseq;
			have_out = 1;
		}
	}
}

int fl_cmd_cat(int argc, char **argv)
{
	struct cat_args a = {0};
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	struct fl_config cfg;
	if ((rc = fl_cli_config(&cfg)))
		return rc;

	struct sigaction sa = {0};
	sa.sa_handler = on_signal; /* no SA_RESTART: poll and nanosleep return to look at the flag */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int dirfd = open_session_dir(&a, &cfg, &rc);
	if (dirfd < 0)
		return rc;
	if (cat_timed && fl_segindex_load(dirfd, &cat_idx) < 0)
		fl_segindex_free(&cat_idx); /* an unreadable manifest only costs reading every segment */

	struct stream sv[2];
	int ns = 0;
	static const char *const both[] = {"system", "user"};
	for (int i = 0; i < 2; i++) {
		if (a.cls && strcmp(a.cls, both[i]))
			continue;
		memset(&sv[ns], 0, sizeof sv[ns]);
		sv[ns].cls = both[i];
		sv[ns].dirfd = dirfd;
		sv[ns].last_seg = -1;
		ns++;
	}
	cat_follow = a.follow;
	int ifd = a.follow ? watch_dir(dirfd) : -1;
	merge_out(sv, ns, dirfd, ifd, &a, cfg.root);

	unsigned errors = 0;
	for (int i = 0; i < ns; i++) {
		fl_segread_close(sv[i].rd);
		free(sv[i].pend);
		errors += sv[i].errors;
	}
	if (ifd >= 0)
		close(ifd);
	fl_segindex_free(&cat_idx);
	close(dirfd);
	if (fflush(stdout) || ferror(stdout)) {
		fl_cli_err("cannot write to stdout");
		return FL_EXIT_FAIL;
	}
	return errors ? FL_EXIT_FAIL : FL_EXIT_OK;
}

/* SPDX-License-Identifier: MIT */
/* retention.h: deciding which archived segments and ended sessions go, removing them, and recording every removal. */
#ifndef FL_RETENTION_H
#define FL_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * Rules (docs/rotation.md), applied in this order by one pass:
 *  0. cleanup_on_exit: every ended session goes whole;
 *  1. retention: an ended session whose newest line is older than retention_s
 *     is removed whole; in every other session, archived segments whose newest
 *     line is older go;
 *  2. max_session_size: while a session's bytes on disk pass the cap, its
 *     oldest archived segment goes;
 *  3. max_total_size: while the root's bytes pass the cap, the oldest unit
 *     across the root goes, a unit being an archived segment of any session or
 *     a whole ended session.
 * Only complete archives (`.lz4` with no plain or .tmp sibling of the same
 * number) are ever removed on their own: never an active file, never a closed
 * segment still waiting for compression. A session with a segment waiting for
 * compression is never removed whole.
 *
 * "Newest line" time is the file's mtime: the drainer writes each line within
 * moments of its ts, a rotation renames without touching mtime, and an archive
 * is given its plain segment's mtime. For a whole session it is the newest
 * mtime of its segment and active files. A session is ended when its
 * session.json says "state":"ended" or "abandoned" (or the caller's live hook
 * says so); without a readable manifest it counts as live.
 *
 * Passes are serialized across processes (fugue-logd and `fugue-log gc`) by an
 * flock on <root>/@gc.lock. Names holding '@' can never be session ids
 * ([A-Za-z0-9._-]), so nothing here can collide with a session directory.
 */

#define FL_RETENTION_LOG "@fugue-logd.jsonl" /* the drainer's own log, in the root */

struct fl_retention_policy {
	uint64_t retention_s;	   /* 0 = keep forever */
	uint64_t max_session_size; /* bytes; 0 = off */
	uint64_t max_total_size;   /* bytes; 0 = off */
	int cleanup_on_exit;	   /* remove every ended session whole (once nothing waits for compression) */
};

void fl_retention_policy_from_config(struct fl_retention_policy *p, const struct fl_config *c);

enum fl_retention_reason {
	FL_RET_RETENTION = 0,	 /* a segment older than retention */
	FL_RET_SESSION_SIZE = 1, /* max_session_size */
	FL_RET_TOTAL_SIZE = 2,	 /* max_total_size */
	FL_RET_ENDED = 3,	 /* an ended session older than retention, whole */
	FL_RET_CLEANUP = 4,	 /* cleanup_on_exit, whole */
};

/* "retention", "max_session_size", "max_total_size", "retention" (ended), "cleanup_on_exit". */
const char *fl_retention_reason_name(enum fl_retention_reason r);

/* One removal, as reported after it happened. */
struct fl_retention_removal {
	const char *session;
	const char *file; /* segment file name, or NULL when the whole session directory went */
	enum fl_retention_reason reason;
	uint64_t bytes;	   /* bytes freed */
	uint64_t files;	   /* files removed */
	int64_t newest_ns; /* newest line (mtime) of what went */
	int live;	   /* the session was live */
};

/*
 * Hooks; every one may be NULL. live(arg, id) returns 1 live, 0 ended, -1
 * "ask the manifest". report(arg, r) is called after each removal with the
 * gc lock held; NULL reports every removal with fl_retention_log_append(by).
 */
struct fl_retention_hooks {
	int (*live)(void *arg, const char *session);
	void (*report)(void *arg, const struct fl_retention_removal *r);
	void *arg;
	const char *by; /* who removed: "fugue-logd", "fugue-log gc"; for the log lines */
};

struct fl_retention_stats {
	uint64_t sessions;	   /* sessions looked at */
	uint64_t removed_segments; /* segments removed on their own */
	uint64_t removed_sessions; /* sessions removed whole */
	uint64_t freed_bytes;
	uint64_t total_bytes; /* the root's bytes after the pass */
};

/*
 * One pass over every session under root_fd at time now_ns (CLOCK_REALTIME).
 * Blocks on the gc lock while another pass runs. Thread-safe (no shared state
 * besides the lock file). Returns 0 or -errno; st may be NULL.
 */
int fl_retention_run(int root_fd, const struct fl_retention_policy *p, int64_t now_ns,
		     const struct fl_retention_hooks *h, struct fl_retention_stats *st);

/*
 * Removes the session directory `id` whole (cleanup_on_exit or an explicit
 * request), under the gc lock, and reports it with reason. The caller makes
 * sure nothing writes there any more. Returns 0, -ENOENT, or -errno.
 */
int fl_retention_remove_session(int root_fd, const char *id, enum fl_retention_reason reason,
				const struct fl_retention_hooks *h);

/*
 * Appends the `retention` line for r to <root>/@fugue-logd.jsonl (created
 * 0600): one write with O_APPEND; seq numbers that file's lines from 1. The
 * caller holds the gc lock (report hooks run with it held). When line is not
 * NULL (cap at least 1 KiB), the line written is left there, NUL-terminated,
 * for a caller that also prints it ("" when none was built). Returns 0 or -errno.
 */
int fl_retention_log_append(int root_fd, const struct fl_retention_removal *r, const char *by, char *line, size_t cap);

/*
 * Renders the `retention` line for r (with seq and ts_ns) into buf, ending in
 * '\n', for writing into a live session's system.jsonl. Returns the length,
 * or -ENOSPC when buf is too small (1 KiB is always enough).
 */
int fl_retention_render(char *buf, size_t len, const struct fl_retention_removal *r, uint64_t seq, int64_t ts_ns,
			const char *by);

#endif

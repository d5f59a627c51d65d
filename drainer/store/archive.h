/* SPDX-License-Identifier: MIT */
/* archive.h: closed segments — their names, lz4 archiving (crash-safe, idempotent) and the compressor thread. */
#ifndef FL_ARCHIVE_H
#define FL_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "segread.h"

/*
 * Closed segments of a session directory, named by the one grammar in
 * segread.h (fl_seg_name, fl_seg_parse) and read through its one reader
 * (fl_seg_read), so archiving, retention and `cat` agree on every name and byte.
 * Every call here works relative to a session directory fd and opens with
 * O_NOFOLLOW, so a symlink planted in a session directory is refused.
 */

/* What a segment holds, found by reading it (plain or lz4). Times are ns since the epoch, 0 when unknown. */
struct fl_seg_info {
	uint64_t lines;
	uint64_t first_seq, last_seq;
	uint64_t first_ts, last_ts;
	uint64_t plain_bytes; /* decompressed size */
};

/*
 * Reads the segment `name` in dirfd (plain or .lz4, decided by the name) and
 * fills info from its lines' leading "ts" and "seq" fields. A last line without
 * its newline is not counted. Returns 0, -EBADMSG for a corrupt or incomplete
 * archive, or -errno.
 */
int fl_seg_scan(int dirfd, const char *name, struct fl_seg_info *info);

/* Decodes an archive completely; 0 when every frame is whole and its checksums match, sets *plain_bytes. */
int fl_archive_verify(int dirfd, const char *lz4_name, uint64_t *plain_bytes);

struct fl_archive_stats {
	uint64_t in_bytes;  /* plain bytes read */
	uint64_t out_bytes; /* archive bytes written (0 when an existing archive was kept) */
};

/*
 * Archives the closed plain segment `plain` (a FL_SEG_PLAIN name) in dirfd:
 * compress into the .tmp name, fsync it, rename it to the .lz4 name, fsync the
 * directory, and only then unlink the plain segment and fsync the directory
 * again. Idempotent and crash-safe at every point: when an .lz4 already sits
 * next to the plain segment, it is kept only if it decodes whole and matches
 * the plain bytes exactly, and redone otherwise; when only the .lz4 exists the
 * job is already done (returns 0). The archive gets the plain segment's mode
 * and mtime. The caller must not append to `plain` any more. Safe to call from
 * any thread; two calls for the same segment at once are not (the compressor
 * thread serializes them). Returns 0, -ENOENT if neither file exists, or -errno.
 */
int fl_archive_segment(int dirfd, const char *plain, struct fl_archive_stats *st);

/*
 * Finishes interrupted archiving in a session directory: removes every .tmp,
 * and for each closed plain segment calls todo(name, arg) so the caller can
 * (re)queue it (fl_archive_segment sorts out a plain+lz4 pair). Segments whose
 * number is at or above skip_from are left alone (a drainer passes its next
 * segment number for rotations that are not checkpointed yet; others pass
 * UINT64_MAX). Returns the number of plain segments reported, or -errno.
 */
int fl_archive_recover(int dirfd, uint64_t skip_from, void (*todo)(const char *plain, void *arg), void *arg);

/* ---- The compressor thread: archiving off the draining path. ---- */

struct fl_archiver;

/*
 * Called on the compressor thread after each job, with the segment's name, the
 * job's tag, the result of fl_archive_segment and its stats. Must not call back
 * into the archiver's enqueue from a path that waits for idle.
 */
typedef void (*fl_archive_done_fn)(void *arg, uint64_t tag, const char *plain, int rc,
				   const struct fl_archive_stats *st);

/*
 * Starts the compressor thread. done may be NULL. For crash tests only, the
 * environment variable FUGUE_ARCHIVE_PAUSE_MS makes each job sleep that long
 * after writing the first piece of its temp archive. Returns 0 or -errno.
 */
int fl_archiver_start(struct fl_archiver **out, fl_archive_done_fn done, void *arg);

/*
 * Queues `plain` in dirfd for archiving. dirfd is dup'ed, so the caller may
 * close its own right away. Takes a mutex for a few instructions and never waits
 * for compression; safe from any thread. Returns 0 or -errno (-ESHUTDOWN after stop).
 */
int fl_archiver_enqueue(struct fl_archiver *a, int dirfd, const char *plain, uint64_t tag);

/* Blocks until the queue is empty and no job runs (tests, shutdown, gc). */
void fl_archiver_wait_idle(struct fl_archiver *a);

/* Jobs queued or running right now. */
unsigned fl_archiver_pending(struct fl_archiver *a);

/*
 * Stops the thread and frees everything. With finish set, the queued jobs run
 * first; otherwise they are dropped (their plain segments stay, and the next
 * start's fl_archive_recover finds them). NULL is fine.
 */
void fl_archiver_stop(struct fl_archiver *a, int finish);

/*
 * Benchmark hook: compresses len bytes from buf in memory with exactly the
 * settings archives use, repeated until at least min_ns passed, and reports
 * input MB/s (10^6 bytes) and the ratio plain/compressed. Returns 0 or -errno.
 */
int fl_archive_bench(const void *buf, size_t len, uint64_t min_ns, double *mb_per_s, double *ratio);

#endif

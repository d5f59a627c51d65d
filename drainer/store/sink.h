/* SPDX-License-Identifier: MIT */
/* sink.h: the per-session directory writer — <root>/<id>/system.jsonl and user.jsonl, buffered appends. */
#ifndef FL_SINK_H
#define FL_SINK_H

#include <stddef.h>
#include <stdint.h>

struct fl_jbuf; /* jsonl.h */

/*
 * One sink per session directory. Every file operation is relative to the
 * session directory's fd (opened O_DIRECTORY|O_NOFOLLOW under the root), every
 * file is opened O_NOFOLLOW, directories are 0700 and files 0600, so a symlink
 * planted in the log tree is refused rather than followed. A directory or file
 * that is not ours, or that group or others can write, is refused too.
 *
 * Lines are buffered per class (rendered straight into the buffer:
 * fl_sink_line_buf) and reach the files with one write() per FL_SINK_WRITE bytes;
 * fl_sink_flush writes what is buffered; fl_sink_trim frees empty buffers. The state (sizes, line
 * counts, seq and time ranges of the active files) is what the checkpoint
 * stores: reopening with a state truncates each active file back to its size,
 * so lines written after the last checkpoint disappear and are written again.
 *
 * Concurrency: a sink is used by one thread at a time (the worker that holds
 * the session); no internal locking.
 */

enum { FL_SINK_SYSTEM = 0, FL_SINK_USER = 1, FL_SINK_CLASSES = 2 }; /* == enum fl_class */

/*
 * Per class, one write() once this many bytes of lines are buffered (and at
 * the end of every batch). On Linux 6.18/ext4 (AMD EPYC guest), against
 * 64 KiB: 256 KiB cut e2e.small's drainer CPU 240 -> 220 ns per event and
 * raised 4 KiB chunks 1460-1515 -> 1590-1620 MB/s; 512 KiB and 1 MiB gained
 * 2-5 ns more for twice and four times the memory of a busy session
 * (bench/limits.md). fugue-bench's limit.pagecache writes in the same size.
 */
#define FL_SINK_WRITE (256u * 1024)

/*
 * A file taking writes of FL_SINK_WRITE / 2 bytes or more gets its blocks this
 * far ahead (fallocate, FALLOC_FL_KEEP_SIZE): ext4 then maps each page to a
 * block it already has instead of reserving a delayed allocation per page.
 * 512 MiB in 256 KiB writes (AMD EPYC guest, ext4): 2.4-3.0 GB/s of the
 * writer's CPU without, 3.3-3.8 with 1 MiB steps (bench/limits.md). The blocks
 * past the size are given back (ftruncate to the size) at rotation, when the
 * session goes quiet, at close, and at reopen after a crash. limit.pagecache
 * writes the same way.
 */
#define FL_SINK_PREALLOC (1024u * 1024)

/*
 * The sink's allocation ahead for a write of n bytes at offset at of fd: when
 * it would pass *ahead (how far blocks are allocated; 0 at first), blocks up to
 * FL_SINK_PREALLOC past its end, and *ahead moves there. Returns 0 or the
 * -errno of fallocate (*ahead unchanged). fugue-bench's limit.pagecache writes
 * through it too.
 */
int fl_sink_alloc_ahead(int fd, uint64_t at, size_t n, uint64_t *ahead);

/* Checkpointed state of the active files; {0} is a fresh session. Fixed layout: it is stored on disk. */
struct fl_sink_state {
	uint64_t size[FL_SINK_CLASSES];	     /* bytes in each active file */
	uint64_t lines[FL_SINK_CLASSES];     /* lines in each active file */
	uint64_t first_seq[FL_SINK_CLASSES]; /* seq of the active file's first line, 0 = empty */
	uint64_t last_seq[FL_SINK_CLASSES];
	int64_t first_ts[FL_SINK_CLASSES]; /* ts_ns of its first and last line */
	int64_t last_ts[FL_SINK_CLASSES];
	uint64_t segments[FL_SINK_CLASSES]; /* rotated segments so far (rotation) */
	uint64_t total_bytes;		    /* bytes ever appended, over all classes and segments */
	uint64_t next_segment;		    /* number of the next rotated segment, shared by both classes; 0 = 1 */
	int64_t min_ts[FL_SINK_CLASSES];    /* smallest and largest ts_ns in each active file (lanes merge by time */
	int64_t max_ts[FL_SINK_CLASSES];    /* per batch, so a late record can be older than the last line) */
	uint64_t reserved[2];		    /* zero */
};

struct fl_sink;

/* File names of the active files, by class. */
const char *fl_sink_file_name(int cls);

/*
 * Creates (0700) and opens <root_fd>/<id>, then opens or creates both active
 * files. With resume not NULL each file is truncated to resume->size (a file
 * shorter than that is an error: -EBADMSG with why); with NULL both start
 * empty (they are truncated: nothing in them was ever checkpointed).
 * Returns 0 or -errno, with a one-line reason in why.
 */
int fl_sink_open(struct fl_sink **out, int root_fd, const char *id, const struct fl_sink_state *resume, char *why,
		 size_t whylen);

/*
 * 0 when fd (a session directory or file) belongs to this process's euid and
 * neither group nor others can write it; else -EPERM (or a failed fstat's
 * -errno) with a reason naming what. Nothing is written where this fails, so a
 * user who pre-creates `<root>/<id>/` or its files in a shared root reads nothing.
 */
int fl_sink_check_private(int fd, const char *what, char *why, size_t whylen);

/*
 * Appends one complete line (ending in '\n') of class cls with its seq and
 * ts_ns. Buffered; returns 0 or the -errno of a failed write that cannot wait
 * (the sink must then be closed and reopened from the last checkpoint).
 * A copy into the buffer; fl_sink_line_buf saves it.
 */
int fl_sink_append(struct fl_sink *s, int cls, const char *line, size_t len, uint64_t seq, int64_t ts_ns);

/*
 * The buffer of class cls's lines not yet written, so the next line can be
 * rendered straight into it: append one complete line at its end (growing it
 * with fl_jbuf_reserve), then call fl_sink_commit_line with the length the
 * buffer had before, or put that length back to drop the line. NULL when out
 * of memory. Nothing else may change the buffer.
 */
struct fl_jbuf *fl_sink_line_buf(struct fl_sink *s, int cls);

/*
 * Accounts the line that fl_sink_line_buf's buffer holds from at to its end,
 * as fl_sink_append does: rotation before it when due, its seq and ts_ns, and
 * a write() once the buffer holds 64 KiB. Returns 0 or -errno as fl_sink_append.
 */
int fl_sink_commit_line(struct fl_sink *s, int cls, size_t at, uint64_t seq, int64_t ts_ns);

/* Frees the buffers that hold nothing and the blocks allocated ahead, for a session gone quiet; the next line
 * allocates again. */
void fl_sink_trim(struct fl_sink *s);

/*
 * Writes every buffered byte. Returns 0 or -errno. A write error that can pass
 * (fl_sink_write_error_waits: a full disk, a quota, EIO) leaves the bytes not
 * written in the buffer: call again later and the files go on from where they
 * stopped, never shortened. fl_sink_append keeps buffering through such an
 * error (the buffer grows by what the caller appends meanwhile).
 */
int fl_sink_flush(struct fl_sink *s);

/* 1 for a write error that a later fl_sink_flush may get past (ENOSPC, EDQUOT, EFBIG, EIO, ...). */
int fl_sink_write_error_waits(int rc);

/* fl_sink_flush, then fdatasync of both files and fsync of the directory. */
int fl_sink_sync(struct fl_sink *s);

/* The state as of the last append (what the files hold once flushed). */
void fl_sink_get_state(const struct fl_sink *s, struct fl_sink_state *st);

/* The session directory's fd, for the checkpoint and the manifest; owned by the sink. */
int fl_sink_dirfd(const struct fl_sink *s);

/* Flushes (best effort), closes the files and the directory, frees s. NULL is fine. */
void fl_sink_close(struct fl_sink *s);

/* ---- Rotation (docs/rotation.md) ---- */

struct fl_archiver;

/*
 * Sets rotation for every sink, open or opened later (fugue-logd at start and
 * on SIGHUP; any thread): a class's active file is rotated when a line would
 * take it past max_file_size bytes (0 = never) — flushed, fdatasync'ed,
 * renamed to <class>.<NNNNNN>.jsonl, a new active file created, the directory
 * fsync'ed. Rotated segments are queued on arch (NULL: they stay plain) once a
 * checkpoint covers them, see fl_sink_committed. Default: 0, NULL.
 */
void fl_sink_set_rotation(uint64_t max_file_size, struct fl_archiver *arch);
void fl_sink_get_rotation(uint64_t *max_file_size, struct fl_archiver **arch);

/*
 * Call right after a checkpoint holding fl_sink_get_state's state is written:
 * the segments rotated before it are queued for compression. Before that they
 * must not be touched: a crash before the checkpoint makes fl_sink_open undo
 * their rotation (the lowest uncheckpointed segment of a class is renamed back
 * to the active name and truncated to the checkpointed size; later ones go).
 */
void fl_sink_committed(struct fl_sink *s);

/*
 * The session.json member listing the segments that still exist:
 * "segments":[{"n","class","file","state":"archived"|"closed","lines",
 * "first_seq","last_seq","first_ts(_ns)","last_ts(_ns)","size","compressed"}].
 * Returns a malloc'ed string (free it) or NULL when out of memory.
 */
char *fl_sink_segments_json(const struct fl_sink *s);

/*
 * Opens (creating 0700 with parents) the log root as a directory fd. Returns the
 * fd or -errno with why.
 */
int fl_sink_open_root(const char *root, char *why, size_t whylen);

#endif

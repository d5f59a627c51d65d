/* SPDX-License-Identifier: MIT */
/* segread.h: reading a session's log segments (plain or lz4 frame) line by line, and finding them in order. */
#ifndef FL_SEGREAD_H
#define FL_SEGREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/*
 * A session directory holds, per audit class (system, user):
 *
 *   <class>.NNNNNN.jsonl.lz4   archived segment: lz4 frames (one or more, concatenated)
 *   <class>.NNNNNN.jsonl       rotated segment, plain (before or while it is compressed)
 *   <class>.jsonl              the active file, appended to by fugue-logd
 *
 * Segments are read in segment-number order, then the active file. When a
 * segment exists both plain and archived, the plain one is authoritative: the
 * plain file is removed only after its archive is complete and fsynced.
 *
 * Concurrency: a reader is used by one thread. Every file is opened relative
 * to a directory fd with O_NOFOLLOW, so a symlink planted in the directory is
 * refused rather than followed.
 */

#define FL_SEGREAD_MAX_LINE (256u << 20) /* longer lines are refused with -E2BIG */

struct fl_segread;

/*
 * Opens name (a file name, no '/') relative to dirfd. Whether it is lz4 is
 * decided by the ".lz4" suffix. A file named "<class>.jsonl" is the active
 * file: an incomplete last line (no '\n' yet) is held back until it is
 * complete, so a reader never returns half a line the drainer is still
 * writing; in any other file a final line without '\n' is returned as is.
 * Returns 0 and *out, or -errno (-ENOENT, -ELOOP for a symlink, -EINVAL for
 * a bad name, -ENOMEM) with a reason in why when it is not NULL.
 */
int fl_segread_open(struct fl_segread **out, int dirfd, const char *name, char *why, size_t whylen);

/*
 * Returns the next line: 1 with *line and *len set (without the '\n'; valid until
 * the next call or close), 0 at the end of what is in the file now (calling
 * again later returns lines appended since, for plain files), or -errno:
 * -EBADMSG for a corrupt or truncated lz4 archive (a truncated archive is only
 * reported at its end, after every complete line before it), -E2BIG for a line
 * over FL_SEGREAD_MAX_LINE, -EIO etc. for read errors; why says what.
 */
int fl_segread_next(struct fl_segread *r, const char **line, size_t *len, char *why, size_t whylen);

/* fstat of the open file (for rotation checks: compare st_ino with the name's). */
int fl_segread_stat(const struct fl_segread *r, struct stat *st);

/* Closes the file and frees r. NULL is fine. */
void fl_segread_close(struct fl_segread *r);

/* One file of a class, as found by fl_segments_list. */
struct fl_seg {
	uint32_t num; /* segment number; UINT32_MAX for the active file */
	int lz4;      /* 1 for <class>.NNNNNN.jsonl.lz4 */
	char name[96];
};

#define FL_SEG_ACTIVE UINT32_MAX

/*
 * Lists the files of class cls ("system", "user") in dirfd in reading order:
 * segments by number (the plain one when both exist), then the active file if
 * present. Names that do not match the patterns exactly are ignored.
 * Returns the count and *out (free() it; NULL when 0), or -errno.
 */
int fl_segments_list(int dirfd, const char *cls, struct fl_seg **out);

/*
 * Finds the value of top-level key in one JSON object line: *val and *vlen span
 * the raw value (a string keeps its quotes). Skips nested objects, arrays and
 * strings with escapes correctly. Only the line up to the value is checked:
 * what follows it is not validated (a key early in a long line is cheap).
 * Returns 0, or -ENOENT / -EBADMSG.
 */
int fl_json_field(const char *line, size_t len, const char *key, const char **val, size_t *vlen);

/* The "seq" of a line as an unsigned integer; -ENOENT/-EBADMSG when absent or not a number. */
int fl_line_seq(const char *line, size_t len, uint64_t *seq);

#endif

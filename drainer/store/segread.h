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
 *   <class>.jsonl                   the active file, appended to by fugue-logd
 *   <class>.<NNNNNN>.jsonl          a rotated segment, plain (before or while it is compressed)
 *   <class>.<NNNNNN>.jsonl.lz4      its archive: lz4 frames (one or more, concatenated)
 *   <class>.<NNNNNN>.jsonl.lz4.tmp  an archive being written (never trusted; removed on recovery)
 *
 * NNNNNN is the session's segment counter, shared by both classes: at least 6
 * digits, a u64. fl_seg_name and fl_seg_parse are the one grammar of these
 * names; the writer, the archiver, retention and the lister all use it.
 *
 * Segments are read in segment-number order, then the active file. When a
 * segment exists both plain and archived, the plain one is authoritative: the
 * plain file is removed only after its archive is complete and fsynced.
 *
 * Concurrency: a reader is used by one thread. Every file is opened relative
 * to a directory fd with O_NOFOLLOW, so a symlink planted in the directory is
 * refused rather than followed.
 */

enum fl_seg_kind {
	FL_SEG_PLAIN = 1, /* <class>.<N>.jsonl */
	FL_SEG_LZ4 = 2,	  /* <class>.<N>.jsonl.lz4 */
	FL_SEG_TMP = 3,	  /* <class>.<N>.jsonl.lz4.tmp */
};

#define FL_SEG_NAME_MAX 64

/* Writes "<cls>.<n, 6+ digits>.jsonl" (+".lz4" for FL_SEG_LZ4, +".lz4.tmp" for FL_SEG_TMP). -ENAMETOOLONG if it does
 * not fit. */
int fl_seg_name(char *buf, size_t len, const char *cls, uint64_t n, enum fl_seg_kind kind);

/*
 * Parses a directory entry name. Returns its kind and fills cls (at most 15
 * characters, [a-z]) and n; returns 0 when the name is not a segment (the active
 * files, session.json and anything foreign are not segments).
 */
int fl_seg_parse(const char *name, char cls[16], uint64_t *n);

/* A directory entry that is a segment, as fl_seg_each hands it over (valid during the call). */
struct fl_seg_ent {
	const char *name;
	char cls[16];
	uint64_t n;
	enum fl_seg_kind kind;
};

/*
 * The one lister of segment names: calls fn for every entry of dirfd that
 * fl_seg_parse accepts (any class and kind, directory order). Stops when fn
 * returns non-zero and returns that value; returns 0 or -errno.
 */
int fl_seg_each(int dirfd, int (*fn)(void *arg, const struct fl_seg_ent *e), void *arg);

/*
 * Streams the content of `name` in dirfd to fn in pieces, through the same
 * reader as fl_segread_next: decompressed for `.lz4` names (every frame
 * checked to its end, content checksum included, at least one frame), as is
 * otherwise. Stops when fn returns non-zero and returns that value.
 * Returns 0, -EBADMSG for a corrupt or truncated archive, or -errno.
 */
int fl_seg_read(int dirfd, const char *name, int (*fn)(void *arg, const void *buf, size_t len), void *arg);

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
	uint64_t num; /* segment number; FL_SEG_ACTIVE for the active file */
	int lz4;      /* 1 for <class>.NNNNNN.jsonl.lz4 */
	char name[96];
	ino_t ino; /* the active file's inode when listed (0 for segments): opened by name, compare st_ino */
	int pin;   /* the active file held (O_PATH) until fl_segments_free, so ino is never another file's; -1 */
};

#define FL_SEG_ACTIVE UINT64_MAX

/* Directory walks fl_segments_list makes at most before it gives up with -EAGAIN (it naps 1 ms every 64). */
#define FL_SEG_LIST_WALKS 4096

/*
 * Lists the files of class cls ("system", "user") in dirfd in reading order:
 * segments by number (the plain one when both exist), then the active file if
 * present (segments found by fl_seg_each). Other names are ignored.
 *
 * The listing is complete: every segment that existed when it began is in it
 * (one that retention removed meanwhile may be listed or not), and when the
 * active file is listed, no segment rotated before it is missing, also while
 * fugue-logd rotates and the archiver replaces plain segments with .lz4
 * ones. To make sure, the directory is walked until two walks in a row agree
 * while the active name held one file: two walks when nothing changes. A
 * directory that keeps changing faster than that gets -EAGAIN after
 * FL_SEG_LIST_WALKS walks (some 70 ms of them), never a listing that might
 * miss a segment; the caller may list again later or report it. May sleep:
 * for readers, not for the drainer's hot paths. Any thread may call it, any
 * number at once.
 *
 * After the call, files move on: a listed plain segment may since have been
 * replaced by its archive (try the name with ".lz4"), and a reader that opens
 * the active name and finds another inode than ino must list again (it
 * rotated; the segment it became is then listed before the new active file).
 * The listing holds the active file (one fd) until fl_segments_free, so that
 * comparison cannot be fooled by a newer file that got the inode number of a
 * rotated and removed one: compare before freeing the listing.
 * Returns the count and *out (NULL when 0), -EAGAIN as above, or -errno.
 */
int fl_segments_list(int dirfd, const char *cls, struct fl_seg **out);

/* Frees a listing of n files from fl_segments_list and lets its active file go. NULL is fine. */
void fl_segments_free(struct fl_seg *v, int n);

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

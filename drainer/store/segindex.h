/* SPDX-License-Identifier: MIT */
/* segindex.h: the segment list of session.json (seq and time ranges), for readers that skip segments, and time
 * arguments. */
#ifndef FL_SEGINDEX_H
#define FL_SEGINDEX_H

#include <stddef.h>
#include <stdint.h>

/* One segment as session.json lists it (docs/rotation.md). */
struct fl_segindex_ent {
	uint64_t n;   /* segment number */
	char cls[16]; /* "system" / "user" */
	uint64_t first_seq, last_seq;
	int64_t first_ts, last_ts; /* ns since the epoch, the smallest and largest ts in it; 0 when unknown */
};

struct fl_segindex {
	struct fl_segindex_ent *v;
	size_t n;
};

/*
 * Reads the "segments" array of dirfd/session.json into idx (free with
 * fl_segindex_free). A missing manifest or one without segments gives an
 * empty index (every segment is then read). Returns 0, -ENOMEM, or -EBADMSG
 * when the file is not the JSON it should be (idx is then empty).
 */
int fl_segindex_load(int dirfd, struct fl_segindex *idx);

void fl_segindex_free(struct fl_segindex *idx);

/*
 * 1 when segment n of class cls holds no line with since <= ts <= until
 * according to the index (so a reader may skip it), 0 when it may hold some
 * or the index does not know it. since/until: ns, 0 / INT64_MAX for open ends.
 */
int fl_segindex_skip(const struct fl_segindex *idx, const char *cls, uint64_t n, int64_t since, int64_t until);

/*
 * Brings the "segments" list of dirfd/session.json in line with the disk,
 * for a session nothing else writes any more (ended, not live): entries whose
 * file is gone (retention) are dropped, `closed` entries whose archive is now
 * complete become `archived` with their compressed size. Rewrites the file
 * (temp, fsync, rename) only when something changed. Returns 1 when it
 * rewrote, 0 when nothing changed or there is no list, or -errno.
 */
int fl_segindex_refresh(int dirfd);

/*
 * Parses a time argument to ns since the epoch: ISO 8601 / RFC 3339
 * ("2026-11-25T16:33:33Z", fraction up to 9 digits, "Z" or "+HH:MM"/"-HH:MM",
 * no zone = UTC, a space instead of "T", or a date alone = its midnight UTC),
 * "@SECONDS[.FRACTION]" since the epoch, or a duration before now_ns ("90s",
 * "10m", "2h", "7d", "1w"). Returns 0 or -EINVAL.
 */
int fl_time_arg_parse(const char *s, int64_t now_ns, int64_t *out_ns);

#endif

/* SPDX-License-Identifier: MIT */
/* manifest.h: <session dir>/session.json — who the session was, its state, level history and drop totals. */
#ifndef FL_MANIFEST_H
#define FL_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

/* One level change the drainer saw; also the record format of <session dir>/.levels. */
struct fl_level_rec {
	int64_t ts_ns; /* when the drainer saw it */
	uint64_t seq;  /* seq of its `level` line */
	uint32_t old;  /* 0 = not known (changed before the drainer first looked) */
	uint32_t new_;
	uint64_t changes; /* generation steps */
};

/* Everything session.json says; the writer reads, never owns. */
struct fl_manifest {
	const char *id;
	uint32_t pid;
	int64_t start_ns; /* the producer's CLOCK_REALTIME at open */
	uint32_t level;	  /* level in force, 1..4 (0 = not known) */
	uint32_t lanes;
	uint64_t lane_size;
	const struct fl_ckpt *ck;	   /* state, end, end_ns, drops, seq, file state */
	const struct fl_level_rec *levels; /* the last nlevels changes, oldest first */
	size_t nlevels;
	const char *extra; /* NULL, or more members as JSON text ("\"k\":v,...") appended inside the object */
};

/* Most level changes listed in session.json; older ones still count in level_changes. */
#define FL_MANIFEST_MAX_LEVELS 256

/*
 * Writes dirfd/session.json atomically: a temp file (0600, O_NOFOLLOW), then
 * rename over the old one; durable adds fsync of the file and the directory.
 * Returns 0 or -errno.
 */
int fl_manifest_write(int dirfd, const struct fl_manifest *m, int durable);

/*
 * Replaces dirfd/session.json with text, durably, for a rewriter that is not
 * the drainer (retention bringing the segment list in line with the disk):
 * its temp file is not the drainer's. Returns 0 or -errno.
 */
int fl_manifest_rewrite(int dirfd, const char *text, size_t len);

/* "live", "ended" or "abandoned". */
const char *fl_manifest_state_name(uint32_t end);

/*
 * The one loader of session.json: reads dirfd/session.json (O_NOFOLLOW) whole
 * into *buf (free() it) and *len. A missing, empty or oversized (over
 * FL_MANIFEST_MAX_BYTES) file is no manifest: 0 with *buf NULL. Returns 0 or
 * -ENOMEM.
 */
#define FL_MANIFEST_MAX_BYTES (64u << 20)
int fl_manifest_load(int dirfd, char **buf, size_t *len);

/*
 * An unsigned field of a session.json object (obj, len bytes): the 64-bit
 * times (start_ns, first_ts_ns, ...) are decimal strings, bare numbers in
 * manifests written before; both are read exactly. 0 with *v, -ENOENT when the
 * key is absent or null, -EBADMSG when it is no unsigned integer.
 */
int fl_manifest_u64(const char *obj, size_t len, const char *key, uint64_t *v);

/*
 * 1 when dirfd/session.json says the session is over ("state" is "ended" or
 * "abandoned"); 0 when it says "live", or there is no readable manifest.
 */
int fl_manifest_over(int dirfd);

#endif

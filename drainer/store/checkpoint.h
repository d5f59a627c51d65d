/* SPDX-License-Identifier: MIT */
/* checkpoint.h: a session's drain position on disk, so a restarted drainer neither loses nor repeats a line. */
#ifndef FL_CHECKPOINT_H
#define FL_CHECKPOINT_H

#include <stdint.h>

#include "ring.h"
#include "sink.h"

/*
 * The file <session dir>/.checkpoint holds two fixed slots, written in turn
 * with one pwrite each; each carries a generation and a checksum, and the
 * valid slot with the higher generation wins. A write torn by a crash leaves
 * the other slot intact, so there is always a consistent checkpoint.
 *
 * Protocol (drain.c): write the lines, flush, write the checkpoint, then move
 * the ring tails. On restart: truncate the files to sink.size and skip every
 * record whose lane sequence number is below lane_next.
 */

enum fl_ckpt_end { FL_CKPT_LIVE = 0, FL_CKPT_ENDED = 1, FL_CKPT_ABANDONED = 2 };

/* Fixed layout: it is the on-disk payload. {0} is a new session. */
struct fl_ckpt {
	/* which incarnation of the ring these positions belong to */
	uint32_t ring_pid;
	uint32_t lane_count;
	uint64_t ring_pid_start;
	int64_t ring_start_ns;
	uint64_t next_seq;		       /* seq of the next line; lines start at 1 */
	uint64_t level_word;		       /* last level word seen; 0 = none yet */
	uint64_t lane_next[FL_RING_MAX_LANES]; /* next expected lane sequence number */
	uint64_t quarantined;		       /* bit per lane: corrupt, no longer read */
	uint64_t drops;			       /* records reported lost, all lanes */
	uint64_t level_changes;		       /* generation steps reported */
	uint64_t level_hist;		       /* entries in .levels that are valid */
	uint64_t undecodable;		       /* records reported as undecodable */
	uint64_t lines[FL_SINK_CLASSES];       /* lines written per class, all segments */
	uint32_t end;			       /* enum fl_ckpt_end */
	uint32_t pad;
	int64_t end_ns; /* when it ended (CLOCK_REALTIME) */
	struct fl_sink_state sink;
};

/*
 * Reads the newest valid slot of dirfd/.checkpoint into c. Returns 0, -ENOENT
 * when there is no checkpoint, -EBADMSG when no slot is valid.
 */
int fl_ckpt_load(int dirfd, struct fl_ckpt *c);

/* The open checkpoint file of a session. */
struct fl_ckpt_file {
	int fd;
	uint64_t gen; /* generation of the last slot written */
};

/*
 * Opens (creating 0600, O_NOFOLLOW) dirfd/.checkpoint. gen continues from the
 * newest valid slot so the next write goes to the other one. Returns 0 or -errno.
 */
int fl_ckpt_open(struct fl_ckpt_file *f, int dirfd);

/* Writes c to the older slot. durable adds an fdatasync. Returns 0 or -errno. */
int fl_ckpt_write(struct fl_ckpt_file *f, const struct fl_ckpt *c, int durable);

void fl_ckpt_close(struct fl_ckpt_file *f);

#endif

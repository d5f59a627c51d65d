/* SPDX-License-Identifier: MIT */
/* drain_priv.h: the worker and session state shared by the files of the drain step (drain.h is the API). */
#ifndef FL_DRAIN_PRIV_H
#define FL_DRAIN_PRIV_H

#include <stdint.h>

#include "arena.h"
#include "checkpoint.h"
#include "clock.h"
#include "drain.h"
#include "fugue_event.pb-c.h"
#include "jsonl.h"
#include "manifest.h"
#include "sink.h"

#define FL_DRAIN_BATCH 1024 /* records per lane per batch */
#define FL_DRAIN_ORIGIN "fugue-logd"

/* One line to write: its sort key and the decoded event (in the worker's arena). */
struct fl_item {
	int64_t ts;
	Fugue__Event *ev;
	uint32_t tag; /* a producer record's level tag | FL_ITEM_TAGGED, else 0 */
};

#define FL_ITEM_TAGGED 0x10000u

struct fl_drain_worker {
	struct fl_arena arena;
	ProtobufCAllocator alloc;
	struct fl_rec recs[FL_DRAIN_BATCH];
	struct fl_item *items;
	size_t nitems, items_cap;
	/* items[lane_from[r], lane_to[r]) is run r: one per lane in lane order, the last the drainer's own */
	size_t lane_from[FL_RING_MAX_LANES + 1], lane_to[FL_RING_MAX_LANES + 1];
	uint64_t tails[FL_RING_MAX_LANES];
	uint64_t level_word; /* read after this batch's heads */
	int whole;	     /* the batch read every lane up to its head */
	struct fl_tsfmt tc;
	struct fl_clock_cal cal; /* TSC rings: this worker's calibration (clock.h) */
};

struct fl_dsess {
	struct fl_ring *ring;
	struct fl_clock_sess clk; /* the ring's clock, read once at attach */
	char id[FL_RING_ID_MAX + 1];
	char shm_name[128];
	int open;
	struct fl_sink *sink;
	struct fl_ckpt_file ckf;
	int levels_fd;
	struct fl_ckpt ck;
	uint32_t ending; /* FL_CKPT_ENDED or FL_CKPT_ABANDONED once decided */
	int idle;
	int truncated;	      /* the producer shrank its shm object: the mapping reads zeros (ringbuf/guard.h) */
	int64_t outage_since; /* CLOCK_REALTIME of the first failure of the files, 0 = none pending */
	int outage_errno;     /* the last failure's errno, for the error line written once it ends */
	int64_t retry_ns;     /* current backoff */
	int64_t alive_checked, manifest_at, retry_at;
	int slot, slot_wait; /* holds an fd slot (budget.h) / waits for one */
	int flush_pending;   /* a batch is rendered and accounted, but the files have not taken all of it */
	uint64_t pend_tails[FL_RING_MAX_LANES]; /* the tails that batch moves once it is written */
	uint64_t resuming; /* lanes re-reading records a checkpoint already covers: seq below next is no news */
	int64_t unlink_at, unlink_ns; /* finished, but its shm object could not be unlinked: retry then */
	int manifest_dirty;
	char last_error[256];
	/* the newest level changes for session.json, oldest first; grown on the first change, not per session */
	struct fl_level_rec *levels;
	size_t nlevels, levels_cap; /* nlevels <= levels_cap <= FL_MANIFEST_MAX_LEVELS */
};

/* dsess.c: the session's files */
/* Opens the files under root, resuming from the checkpoint when it belongs to this ring; without a free
 * fd slot (budget.h) it returns 0 and leaves s->open 0. */
int fl_dsess_open(struct fl_dsess *s, const char *root);
/* Closes the files and hands the fd slot back. */
void fl_dsess_close_files(struct fl_dsess *s);
/* The next try after a failure: 100 ms, doubling up to 5 s while it lasts. */
void fl_dsess_back_off(struct fl_dsess *s);
/* The files refuse bytes for now (a full disk): keep them open and the lines buffered, log once, retry. */
int fl_dsess_wait_for_files(struct fl_dsess *s, int rc);
/* Logs a failure once per distinct message, closes the files and schedules the retry; returns rc. */
int fl_dsess_fail(struct fl_dsess *s, int rc, const char *what);
/* session.json from the checkpoint, the level history and the sink's segment list. */
int fl_dsess_write_manifest(struct fl_dsess *s, int durable);
void fl_dsess_push_level(struct fl_dsess *s, const struct fl_level_rec *r);

/* synth.c: the lines the drainer makes itself; each returns 0 or -ENOMEM */
/* Appends an item to the worker's list. */
int fl_item_push(struct fl_drain_worker *w, int64_t ts, Fugue__Event *ev);
/* A `level` event for a change of the level word from s->ck.level_word to lw, or NULL. */
Fugue__Event *fl_synth_level(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint64_t lw);
/* An `error` event from fugue-logd with this code and message (copied), or NULL. */
Fugue__Event *fl_synth_error(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, int code, const char *msg);
/* An abandoned `exit` event for a producer that vanished, or NULL. */
Fugue__Event *fl_synth_abandoned(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts);
int fl_push_error(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, int code, const char *msg);
int fl_push_dropped(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t count);
/* A jump of gap sequence numbers in lane whose drop counter reads drops: a dropped line, or an error line
 * and a clamped count when the counter cannot explain the jump. */
int fl_push_gap(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t gap, uint64_t drops);

/* merge.c: ordering and writing */
/* The kind (FL_KIND_*) of a decoded event; inline, as every record asks it. */
static inline int fl_event_kind(const Fugue__Event *ev)
{
	/* the body's field numbers are the kinds' plus 5 (proto/fugue_event.proto) */
	return (int)ev->body_case - 5;
}
/* Writes one item as a line with the next seq and does its accounting. */
int fl_emit_line(struct fl_drain_worker *w, struct fl_dsess *s, const struct fl_item *it);
/* After a whole batch: a level change no record was emitted under yet gets its line at the end. */
int fl_level_catch_up(struct fl_drain_worker *w, struct fl_dsess *s, int64_t now, size_t *written);
/* Merges the nruns item runs by timestamp and writes them, each level line right before the first record
 * emitted under its level; *written counts the lines. */
int fl_write_merged(struct fl_drain_worker *w, struct fl_dsess *s, unsigned nruns, size_t *written);

#endif

/* SPDX-License-Identifier: MIT */
/* drain.c: the drain step — peek the lanes, decode, merge, write, checkpoint, release; and a session's end. */
#define _GNU_SOURCE
#include "drain_priv.h"
#include "guard.h"
#include "budget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuguelog.h"
#include "sysutil.h"

#define BATCH_BYTES (1u << 20)	      /* record bytes per batch, over all lanes ... */
#define LANE_MIN_BYTES (32u << 10)    /* ... but at least this much per lane */
#define ROUNDS 8		      /* batches per step, so one busy session cannot starve the others */
#define ALIVE_EVERY_NS 50000000	      /* idle sessions check their producer this often */
#define MANIFEST_EVERY_NS 200000000ll /* session.json follows a live session this closely */
#define UNLINK_MIN_NS 1000000000ll    /* a ring that cannot be unlinked is retried after this, */
#define UNLINK_MAX_NS 60000000000ll   /* doubling up to this */
#define ARENA_KEEP (4u << 20)	      /* an idle worker keeps at most this much decode arena */

int fl_drain_worker_new(struct fl_drain_worker **out)
{
	struct fl_drain_worker *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	fl_arena_allocator(&w->arena, &w->alloc);
	*out = w;
	return 0;
}

void fl_drain_worker_free(struct fl_drain_worker *w)
{
	if (!w)
		return;
	fl_arena_destroy(&w->arena);
	free(w->items);
	free(w);
}

void fl_drain_worker_idle(struct fl_drain_worker *w)
{
	if (w->arena.cap <= ARENA_KEEP)
		return;
	fl_arena_trim(&w->arena, ARENA_KEEP);
	fl_budget_trim();
}

/* ---- one batch ----------------------------------------------------------------------- */

/* The drainer's own items of a batch: a level change, an outage, quarantined lanes. */
struct own_items {
	Fugue__Event *ev[FL_RING_MAX_LANES + 2];
	unsigned n;
};

/* The error line for an outage just over (level lines go with the records: merge.c). */
static int own_events(struct fl_drain_worker *w, struct fl_dsess *s, int64_t now, struct own_items *own)
{
	if (s->outage_since) {
		/* the files failed and were reopened from the checkpoint: say so where it happened */
		char msg[300];
		snprintf(msg, sizeof msg,
			 "could not write the session files for %lld s (%s); resumed: nothing accepted was lost, what "
			 "producers dropped meanwhile is in the dropped lines",
			 (long long)((now - s->outage_since) / 1000000000), strerror(s->outage_errno));
		if (!(own->ev[own->n] = fl_synth_error(w, s, now, -s->outage_errno, msg)))
			return -ENOMEM;
		own->n++;
	}
	return 0;
}

/* Peeks lane l into w->recs within the batch's byte budget; returns the count or -errno with why. */
static int peek_lane(struct fl_drain_worker *w, struct fl_dsess *s, uint32_t l, uint64_t *next_tail, char *why,
		     size_t whylen)
{
	struct fl_ring *r = s->ring;
	/* a clock it cannot convert quarantines the lanes: ticks are never printed as times */
	int n = fl_clock_check(&w->cal, &s->clk, why, whylen);
	if (n == 0)
		n = fl_lane_peek(r, l, w->recs, FL_DRAIN_BATCH, next_tail, why, whylen);
	if (n <= 1)
		return n;
	/* a byte budget per lane and batch: big records must not blow up the arena's decoded copies */
	uint32_t nl = r->lane_count;
	uint64_t bytes = 0, budget = BATCH_BYTES / nl > LANE_MIN_BYTES ? BATCH_BYTES / nl : LANE_MIN_BYTES;
	int keep = n;
	for (int i = 0; i < n && keep == n; i++)
		if ((bytes += w->recs[i].len) >= budget)
			keep = i + 1;
	if (keep < n)
		n = fl_lane_peek(r, l, w->recs, (unsigned)keep, next_tail, why, whylen);
	return n;
}

/* A corrupt lane is never read again; the others go on. The error line goes with the drainer's own. */
static int quarantine(struct fl_drain_worker *w, struct fl_dsess *s, uint32_t l, int err, const char *why, int64_t now,
		      struct own_items *own)
{
	s->ck.quarantined |= 1ull << l;
	char msg[400];
	snprintf(msg, sizeof msg, "lane %u quarantined: %s", l, why);
	fl_drain_log("session %s: %s", s->id, msg);
	if (!(own->ev[own->n] = fl_synth_error(w, s, now, err, msg)))
		return -ENOMEM;
	own->n++;
	s->manifest_dirty = 1;
	return 0;
}

/* Decodes one record of lane l into the items (with a dropped line before it for a gap); *last_ts moves. */
static int take_record(struct fl_drain_worker *w, struct fl_dsess *s, uint32_t l, const struct fl_rec *rec,
		       uint64_t drops, int64_t *last_ts)
{
	uint64_t *next = &s->ck.lane_next[l];
	/* a private copy in the arena: the producer may still write the shared bytes, and the fast
	 * decoder's bytes fields point into the copy */
	uint8_t *copy = fl_arena_alloc(&w->arena, rec->len ? rec->len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, rec->data, rec->len);
	Fugue__Event *ev = NULL;
	int rc = fl_event_decode(copy, rec->len, &w->alloc, &ev);
	if (rc < 0)
		return rc;
	if (rc == 0) /* not the plain form: protobuf-c decides, and may refuse */
		ev = fugue__event__unpack(&w->alloc, rec->len, copy);
	int ok = ev && fl_event_kind(ev) >= FL_KIND_SPAWN && fl_event_kind(ev) <= FL_KIND_INPUT;
	if (ok)
		ev->ts_ns = fl_clock_convert(&w->cal, &s->clk, l, ev->ts_ns);
	int64_t ts = ok ? (int64_t)(ev->ts_ns > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns) : *last_ts;
	if (rec->seq > *next && fl_push_gap(w, s, ts, l, rec->seq - *next, drops) < 0)
		return -ENOMEM;
	if (ok) {
		rc = fl_item_push(w, ts, ev);
		if (rc == 0)
			w->items[w->nitems - 1].tag = rec->tag | FL_ITEM_TAGGED;
	} else {
		char msg[200];
		snprintf(msg, sizeof msg, "lane %u record %llu: %u bytes are not a fugue Event of a producer kind", l,
			 (unsigned long long)rec->seq, rec->len);
		s->ck.undecodable++;
		rc = fl_push_error(w, s, ts, -EBADMSG, msg);
	}
	if (rc < 0)
		return rc;
	*last_ts = ts;
	*next = rec->seq + 1;
	return 0;
}

/* A record at or below the lane's last seq: one written before a restart, or a producer gone wrong. */
static int backwards(struct fl_drain_worker *w, struct fl_dsess *s, uint32_t l, const struct fl_rec *rec,
		     int64_t last_ts)
{
	if (s->resuming >> l & 1)
		return 0; /* written before a restart, its tail not yet moved */
	/* a producer's seq never goes back: say so where it happened, and skip the record */
	char msg[200];
	snprintf(msg, sizeof msg,
		 "lane %u: record with seq %llu after seq %llu: sequence numbers went backwards, record skipped", l,
		 (unsigned long long)rec->seq, (unsigned long long)(s->ck.lane_next[l] - 1));
	return fl_push_error(w, s, last_ts, -EBADMSG, msg);
}

/* Reads lane l into run l of the items; *moved is set when its tail will move. */
static int read_lane(struct fl_drain_worker *w, struct fl_dsess *s, uint32_t l, int64_t now, struct own_items *own,
		     int *moved)
{
	struct fl_ring *r = s->ring;
	char why[256];
	w->lane_from[l] = w->lane_to[l] = w->nitems;
	w->tails[l] = fl_load_relaxed(&r->lanes[l].tail);
	if (s->ck.quarantined >> l & 1)
		return 0;
	uint64_t sseq, shead, sdrops, next_tail;
	fl_lane_snapshot(r, l, &sseq, &shead, &sdrops);
	int n = peek_lane(w, s, l, &next_tail, why, sizeof why);
	if (n < 0)
		return quarantine(w, s, l, n, why, now, own);
	uint64_t *next = &s->ck.lane_next[l];
	int64_t last_ts = now;
	for (int i = 0; i < n; i++) {
		if (w->recs[i].seq < *next) {
			if (backwards(w, s, l, &w->recs[i], last_ts) < 0)
				return -ENOMEM;
			continue;
		}
		s->resuming &= ~(1ull << l);
		if (take_record(w, s, l, &w->recs[i], sdrops, &last_ts) < 0)
			return -ENOMEM;
	}
	/* losses after the last record: every seq below sseq was published at or before shead */
	if ((int64_t)(next_tail - shead) >= 0 && sseq > *next) {
		if (fl_push_gap(w, s, last_ts, l, sseq - *next, sdrops) < 0)
			return -ENOMEM;
		*next = sseq;
	}
	w->lane_to[l] = w->nitems;
	if (next_tail != w->tails[l])
		*moved = 1;
	w->tails[l] = next_tail;
	return 0;
}

/*
 * Writes the merged items, flushes and checkpoints; *written counts the lines.
 * s->ck is restored on failure, except when the files only refuse bytes for
 * now: then the batch stays accounted, its lines wait in the sink and
 * s->flush_pending is set.
 */
static int commit(struct fl_drain_worker *w, struct fl_dsess *s, const struct fl_ckpt *before, size_t *written)
{
	int rc = 0;
	int level_only = w->whole && FL_LEVEL_GEN(w->level_word) != FL_LEVEL_GEN(s->ck.level_word);
	if (w->nitems || level_only) {
		rc = fl_write_merged(w, s, s->ring->lane_count + 1, written);
		if (rc == 0)
			rc = fl_level_catch_up(w, s, fl_now_ns(CLOCK_REALTIME), written);
		if (rc == 0)
			rc = fl_sink_flush(s->sink);
		if (rc == 0) {
			fl_sink_get_state(s->sink, &s->ck.sink);
			rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
		}
		if (rc < 0 && fl_sink_write_error_waits(rc)) {
			/*
			 * The disk is full (say): the lines wait in the sink, or are in the
			 * files already and only the checkpoint is missing; finish_pending
			 * does the rest. The files are never cut back while we run.
			 */
			memcpy(s->pend_tails, w->tails, s->ring->lane_count * sizeof *w->tails);
			s->flush_pending = 1;
			return rc;
		}
		if (rc == 0) {
			/* segments rotated in this batch are covered now and may be compressed */
			fl_sink_committed(s->sink);
			if (s->ck.sink.next_segment != before->sink.next_segment)
				s->manifest_dirty = 1;
		}
	} else if (s->ck.quarantined != before->quarantined) {
		rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
	}
	if (rc < 0)
		s->ck = *before;
	return rc;
}

/*
 * A batch whose lines the files refused for a while: write the rest where the
 * files stopped, then checkpoint and move its tails, as batch would have.
 * Returns 0 once done, or the -errno of the write or checkpoint.
 */
static int finish_pending(struct fl_dsess *s)
{
	int rc = fl_sink_flush(s->sink);
	if (rc < 0)
		return rc;
	fl_sink_get_state(s->sink, &s->ck.sink);
	rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
	if (rc < 0)
		return rc;
	fl_sink_committed(s->sink);
	s->flush_pending = 0;
	s->manifest_dirty = 1;
	for (uint32_t l = 0; l < s->ring->lane_count; l++)
		if (s->pend_tails[l] != fl_load_relaxed(&s->ring->lanes[l].tail))
			fl_lane_release(s->ring, l, s->pend_tails[l]);
	return 0;
}

/* Moves the tails: only now are the records safely in the files and the checkpoint. */
static void release_tails(struct fl_drain_worker *w, struct fl_dsess *s)
{
	struct fl_ring *r = s->ring;
	for (uint32_t l = 0; l < r->lane_count; l++)
		if (w->tails[l] != fl_load_relaxed(&r->lanes[l].tail))
			fl_lane_release(r, l, w->tails[l]);
}

/* Gathers every lane's records and the drainer's own items into runs; s->ck is restored on failure. */
static int gather(struct fl_drain_worker *w, struct fl_dsess *s, const struct fl_ckpt *before, int *moved)
{
	struct fl_ring *r = s->ring;
	uint32_t nl = r->lane_count;
	int64_t now = fl_now_ns(CLOCK_REALTIME);
	struct own_items own = {.n = 0};
	if (own_events(w, s, now, &own) < 0)
		return -ENOMEM;
	for (uint32_t l = 0; l < nl; l++)
		if (read_lane(w, s, l, now, &own, moved) < 0)
			goto nomem;
	/*
	 * The level word after the heads: every record read above was reserved
	 * under this generation or an older one. The batch holds everything
	 * published when no lane's head moved past what was read.
	 */
	w->level_word = fl_ring_level_word(r);
	w->whole = 1;
	for (uint32_t l = 0; l < nl; l++)
		if (!(s->ck.quarantined >> l & 1) && fl_load_acquire(&r->lanes[l].head) != w->tails[l])
			w->whole = 0;
	w->lane_from[nl] = w->nitems;
	for (unsigned i = 0; i < own.n; i++)
		if (fl_item_push(w, (int64_t)own.ev[i]->ts_ns, own.ev[i]) < 0)
			goto nomem;
	w->lane_to[nl] = w->nitems;
	return 0;
nomem:
	s->ck = *before;
	return -ENOMEM;
}

/*
 * One batch: reads, decodes and orders what the lanes hold, writes the lines,
 * checkpoints, then moves the tails. Returns lines written, or -errno before
 * any tail moved; *moved says whether records or pads were consumed.
 */
static int batch(struct fl_drain_worker *w, struct fl_dsess *s, int *moved)
{
	*moved = 0;
	fl_arena_reset(&w->arena);
	w->nitems = 0;
	struct fl_ckpt before = s->ck; /* restored when the batch cannot be written */
	int rc = gather(w, s, &before, moved);
	if (rc < 0)
		return rc;
	if (fl_guard_tripped(s->ring->hdr)) {
		/* truncated while we read it: what came from the zeroed mapping is not believed; the step ends it */
		s->ck = before;
		*moved = 0;
		return 0;
	}
	size_t written = 0;
	rc = commit(w, s, &before, &written);
	if (rc < 0)
		return rc;
	s->outage_since = 0; /* its error line (if any) is in the files now */
	s->retry_ns = 0;
	release_tails(w, s);
	return (int)written;
}

/* ---- the end ------------------------------------------------------------------------- */

/* The lines that close a session that did not close itself: the truncation error, the abandoned exit. */
static int end_lines(struct fl_drain_worker *w, struct fl_dsess *s, int64_t now, const struct fl_ckpt *before)
{
	int rc;
	if (s->truncated) {
		struct fl_item eit = {now, fl_synth_error(w, s, now, -EFAULT,
							  "the producer truncated its shm object: records not yet "
							  "drained are lost")};
		if (!eit.ev)
			return -ENOMEM;
		rc = fl_emit_line(w, s, &eit);
		if (rc < 0) {
			s->ck = *before;
			return fl_dsess_fail(s, rc, "cannot write the truncation error line");
		}
	}
	if (s->ending == FL_CKPT_ABANDONED) {
		struct fl_item it = {now, fl_synth_abandoned(w, s, now)};
		if (!it.ev)
			return -ENOMEM;
		rc = fl_emit_line(w, s, &it);
		if (rc == 0)
			rc = fl_sink_flush(s->sink);
		if (rc < 0) {
			s->ck = *before;
			return fl_dsess_fail(s, rc, "cannot write the exit line");
		}
	}
	return 0;
}

/* Marks the checkpoint ended and makes the files and the checkpoint durable. */
static int final_checkpoint(struct fl_drain_worker *w, struct fl_dsess *s)
{
	struct fl_ckpt before = s->ck;
	int64_t now = fl_now_ns(CLOCK_REALTIME);
	fl_arena_reset(&w->arena);
	int rc = end_lines(w, s, now, &before);
	if (rc < 0)
		return rc;
	s->ck.end = s->ending;
	s->ck.end_ns = now;
	rc = fl_sink_sync(s->sink);
	if (rc == 0) {
		fl_sink_get_state(s->sink, &s->ck.sink);
		rc = fl_ckpt_write(&s->ckf, &s->ck, 1);
	}
	if (rc < 0) {
		s->ck = before;
		return fl_dsess_fail(s, rc, "cannot write the final checkpoint");
	}
	fl_sink_committed(s->sink);
	return 0;
}

/*
 * The last act of a finished session. A ring that cannot be unlinked stays
 * attached (it costs no fd) and is retried with backoff, logged once, instead
 * of being rediscovered and finished again at every rescan.
 */
static int unlink_ring(struct fl_dsess *s, int *status)
{
	int rc = fl_ring_unlink(s->shm_name);
	if (rc == 0 || rc == -ENOENT) {
		if (s->unlink_ns)
			fl_drain_log("session %s: %s unlinked at last", s->id, s->shm_name);
		*status = FL_DRAIN_FINISHED;
		return 0;
	}
	if (!s->unlink_ns)
		fl_drain_log("session %s: its files are final, but %s cannot be unlinked (%s): retrying with backoff",
			     s->id, s->shm_name, strerror(-rc));
	s->unlink_ns =
	    s->unlink_ns ? (s->unlink_ns * 2 > UNLINK_MAX_NS ? UNLINK_MAX_NS : s->unlink_ns * 2) : UNLINK_MIN_NS;
	s->unlink_at = fl_now_ns(CLOCK_MONOTONIC) + s->unlink_ns;
	return 0;
}

/* Writes the end: the closing lines, the final checkpoint, synced files, manifest, and the shm unlink. */
static int finish(struct fl_drain_worker *w, struct fl_dsess *s, int *status)
{
	int rc;
	if (s->ck.end == FL_CKPT_LIVE && (rc = final_checkpoint(w, s)) < 0)
		return rc;
	rc = fl_dsess_write_manifest(s, 1);
	if (rc < 0)
		return fl_dsess_fail(s, rc, "cannot write the final session.json");
	fl_dsess_close_files(s); /* final: the slot goes to a session that needs it */
	return unlink_ring(s, status);
}

/* ---- the step ------------------------------------------------------------------------ */

/* Decides whether the session is ending: closed by its producer, or the producer is gone. */
static void check_ending(struct fl_dsess *s, int64_t mono)
{
	if (s->ending)
		return;
	/* pairs with the store-release of closed in fl_session_close: its heads are visible now */
	if (fl_load_acquire(&s->ring->hdr->closed))
		s->ending = FL_CKPT_ENDED;
	else if (s->idle && mono - s->alive_checked >= ALIVE_EVERY_NS) {
		s->alive_checked = mono;
		int alive = fl_ring_owner_alive(s->ring);
		if (alive == 0)
			s->ending = FL_CKPT_ABANDONED;
		else if (alive < 0) /* could not look: the producer is not judged on that */
			fl_budget_note(alive, "cannot read /proc to check whether producers live");
	}
}

/* 1 once a SIGBUS in this ring was caught: nothing in the mapping can be believed any more. */
static int check_truncated(struct fl_dsess *s)
{
	if (!s->truncated && fl_guard_tripped(s->ring->hdr)) {
		fl_drain_log("session %s: shm object %s was truncated by its producer; ending the session", s->id,
			     s->shm_name);
		s->truncated = 1;
		s->ending = FL_CKPT_ABANDONED;
	}
	if (s->truncated)
		s->idle = 1;
	return s->truncated;
}

/* Opens the files and writes what an outage held back; 1 when the step may go on, else 0 or -errno. */
static int ready(struct fl_dsess *s, const char *root, int64_t mono)
{
	if (!s->open) {
		if (mono < s->retry_at)
			return 0;
		int rc = fl_dsess_open(s, root);
		if (rc < 0)
			return rc;
		if (!s->open)
			return 0; /* waiting for an fd slot */
	}
	if (s->flush_pending) {
		if (mono < s->retry_at)
			return 0;
		int rc = finish_pending(s);
		if (rc < 0 && fl_sink_write_error_waits(rc))
			return fl_dsess_wait_for_files(s, rc);
		if (rc < 0)
			return fl_dsess_fail(
			    s, rc, "writing the lines held during an outage failed; resuming from the checkpoint");
	}
	return 1;
}

/* Up to ROUNDS batches; returns the lines written or -errno (the session then fails and retries). */
static int run_batches(struct fl_drain_worker *w, struct fl_dsess *s, int *moved)
{
	int total = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int n = batch(w, s, moved);
		if (n < 0 && s->flush_pending)
			return fl_dsess_wait_for_files(s, n);
		if (n < 0) {
			char what[128];
			snprintf(what, sizeof what, "writing failed (%s); resuming from the checkpoint", strerror(-n));
			return fl_dsess_fail(s, n, what);
		}
		total += n;
		if (!n && !*moved)
			break;
	}
	return total;
}

int fl_drain_step(struct fl_drain_worker *w, struct fl_dsess *s, const char *root, int *status)
{
	*status = FL_DRAIN_LIVE;
	int64_t mono = fl_now_ns(CLOCK_MONOTONIC);
	if (s->unlink_ns)
		return mono < s->unlink_at ? 0 : unlink_ring(s, status);
	int rc = ready(s, root, mono);
	if (rc <= 0)
		return rc;
	if (s->ck.end != FL_CKPT_LIVE) {
		/* ended before a restart: only the manifest and the unlink may be missing */
		s->ending = s->ck.end;
		return finish(w, s, status);
	}
	if (check_truncated(s))
		return finish(w, s, status) < 0 ? -EIO : 0;
	check_ending(s, mono);
	int moved = 0;
	int total = run_batches(w, s, &moved);
	if (total < 0)
		return total;
	s->idle = !total && !moved;
	if (total)
		s->manifest_dirty = 1; /* next_seq and the file sizes moved */
	/* a truncation caught during this step (by the liveness check, say) ends it as a truncation */
	if (check_truncated(s) || (s->ending && s->idle))
		return finish(w, s, status) < 0 ? -EIO : 0;
	if (s->manifest_dirty && (mono - s->manifest_at >= MANIFEST_EVERY_NS || fl_budget_pressure())) {
		rc = fl_dsess_write_manifest(s, 0);
		if (rc < 0)
			fl_drain_log("session %s: cannot write session.json: %s", s->id, strerror(-rc));
	}
	/* sessions wait for fd slots: hand ours back; the checkpoint is written, a reopen resumes exactly */
	if (fl_budget_pressure())
		fl_dsess_close_files(s);
	if (s->idle) {
		if (s->sink)
			fl_sink_trim(s->sink); /* a quiet session keeps no line buffers */
		fl_drain_worker_idle(w);
	}
	return total;
}

int fl_drain_quiesce(struct fl_drain_worker *w, struct fl_dsess *s, const char *root, int *status)
{
	int rc = 0;
	*status = FL_DRAIN_LIVE;
	/* a bounded number of steps: a producer that never stops must not hold the shutdown */
	for (int i = 0; i < 64; i++) {
		rc = fl_drain_step(w, s, root, status);
		if (rc <= 0 || *status == FL_DRAIN_FINISHED)
			break;
	}
	if (*status == FL_DRAIN_FINISHED || !s->open)
		return rc < 0 ? rc : 0;
	rc = fl_sink_sync(s->sink);
	if (rc == 0) {
		fl_sink_get_state(s->sink, &s->ck.sink);
		rc = fl_ckpt_write(&s->ckf, &s->ck, 1);
		if (rc == 0)
			fl_sink_committed(s->sink);
	}
	int mrc = fl_dsess_write_manifest(s, 1);
	return rc < 0 ? rc : mrc;
}

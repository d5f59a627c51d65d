/* SPDX-License-Identifier: MIT */
/* merge.c: the lanes' records merged by timestamp and written as numbered lines, with their accounting. */
#define _GNU_SOURCE
#include "drain_priv.h"

#include <errno.h>
#include <unistd.h>

#include "fuguelog.h"

/* A level line goes into .levels at its index, so a batch written again after a crash overwrites it. */
static int record_level(struct fl_dsess *s, const Fugue__Event *ev, uint64_t seq)
{
	struct fl_level_rec r = {(int64_t)ev->ts_ns, seq, ev->level->old, ev->level->new_, ev->level->changes};
	if (pwrite(s->levels_fd, &r, sizeof r, (off_t)(s->ck.level_hist * sizeof r)) != (ssize_t)sizeof r)
		return -EIO;
	s->ck.level_hist++;
	s->ck.level_changes += r.changes;
	fl_dsess_push_level(s, &r);
	s->manifest_dirty = 1;
	return 0;
}

int fl_emit_line(struct fl_drain_worker *w, struct fl_dsess *s, const struct fl_item *it)
{
	Fugue__Event *ev = it->ev;
	uint64_t seq = s->ck.next_seq;
	int kind = fl_event_kind(ev);
	int cls = fl_kind_class(kind);
	if (cls < 0)
		return -EINVAL; /* as the renderer says of a kind it does not know */
	/* rendered straight into the sink's buffer: no copy of the line */
	struct fl_jbuf *b = fl_sink_line_buf(s->sink, cls);
	if (!b)
		return -ENOMEM;
	size_t at = b->len;
	int rc = fl_jsonl_render(b, &w->tc, ev, s->id, seq);
	if (rc < 0)
		return rc;
	rc = fl_sink_commit_line(s->sink, cls, at, seq, (int64_t)ev->ts_ns);
	if (rc < 0)
		return rc;
	s->ck.next_seq++;
	s->ck.lines[cls]++;
	/* id 0: the drainer's own line, not a producer's record of that kind */
	if (kind == FL_KIND_DROPPED && !ev->id) {
		s->ck.drops += ev->dropped->count;
		s->manifest_dirty = 1;
	} else if (kind == FL_KIND_LEVEL && !ev->id) {
		return record_level(s, ev, seq);
	}
	return 0;
}

/* ---- level lines ---------------------------------------------------------------------- */

/* Writes the level line from the announced word to (gen, value); that becomes the announced word. */
static int level_line(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint64_t gen, uint8_t value,
		      size_t *written)
{
	Fugue__Event *ev = fl_synth_level(w, s, ts, (gen << 8) | value);
	if (!ev)
		return -ENOMEM;
	s->ck.level_word = (gen << 8) | value;
	struct fl_item it = {ts, ev, 0};
	int rc = fl_emit_line(w, s, &it);
	if (rc == 0)
		(*written)++;
	return rc;
}

/*
 * Before a producer record: its tag holds the level and the low 8 bits of the
 * generation it was reserved under. Its full generation is the newest one at
 * or below the level word read after the heads that ends in those bits; one
 * newer than the announced one gets its level line right here, before it.
 */
static int level_before(struct fl_drain_worker *w, struct fl_dsess *s, const struct fl_item *it, size_t *written)
{
	if (!(it->tag & FL_ITEM_TAGGED))
		return 0;
	uint64_t top = FL_LEVEL_GEN(w->level_word), had = FL_LEVEL_GEN(s->ck.level_word);
	uint64_t gen = (top & ~(uint64_t)0xff) | (it->tag >> 8 & 0xff);
	if (gen > top)
		gen -= 256; /* below 0 only for a tag no generation here had: then it wraps and stays > top */
	if (gen > top || gen <= had)
		return 0; /* emitted under the announced level (or an impossible tag): no line */
	return level_line(w, s, it->ts, gen, (uint8_t)(it->tag & 0xff), written);
}

int fl_level_catch_up(struct fl_drain_worker *w, struct fl_dsess *s, int64_t now, size_t *written)
{
	if (!w->whole || FL_LEVEL_GEN(w->level_word) == FL_LEVEL_GEN(s->ck.level_word))
		return 0;
	return level_line(w, s, now, FL_LEVEL_GEN(w->level_word), FL_LEVEL_VALUE(w->level_word), written);
}

/* Run a goes before run b: earlier head item, then the lower run (lanes before the drainer's own items). */
static int run_before(const struct fl_drain_worker *w, const size_t *pos, unsigned a, unsigned b)
{
	int64_t ta = w->items[pos[a]].ts, tb = w->items[pos[b]].ts;
	return ta < tb || (ta == tb && a < b);
}

static void sift_down(const struct fl_drain_worker *w, const size_t *pos, unsigned *heap, unsigned n, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, m = i;
		if (l < n && run_before(w, pos, heap[l], heap[m]))
			m = l;
		if (l + 1 < n && run_before(w, pos, heap[l + 1], heap[m]))
			m = l + 1;
		if (m == i)
			return;
		unsigned t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
}

/*
 * Merges the item runs (one per lane, each in lane order, then the drainer's
 * own items) by timestamp and writes them: a binary heap of runs, so a line
 * costs log2(lanes) comparisons, also with 64 lanes.
 */
int fl_write_merged(struct fl_drain_worker *w, struct fl_dsess *s, unsigned nruns, size_t *written)
{
	size_t pos[FL_RING_MAX_LANES + 1];
	unsigned heap[FL_RING_MAX_LANES + 1], n = 0;
	for (unsigned r = 0; r < nruns; r++) {
		pos[r] = w->lane_from[r];
		if (pos[r] < w->lane_to[r])
			heap[n++] = r;
	}
	for (unsigned i = n / 2; i-- > 0;)
		sift_down(w, pos, heap, n, i);
	while (n) {
		unsigned r = heap[0];
		int rc = level_before(w, s, &w->items[pos[r]], written);
		if (rc == 0)
			rc = fl_emit_line(w, s, &w->items[pos[r]]);
		if (rc < 0)
			return rc;
		(*written)++;
		if (++pos[r] == w->lane_to[r])
			heap[0] = heap[--n];
		sift_down(w, pos, heap, n, 0);
	}
	return 0;
}

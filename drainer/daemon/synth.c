/* SPDX-License-Identifier: MIT */
/* synth.c: the lines the drainer writes itself — level changes, drops, its errors and an abandoned exit. */
#include "drain_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuguelog.h"
#include "grow.h"

int fl_item_push(struct fl_drain_worker *w, int64_t ts, Fugue__Event *ev)
{
	struct fl_item *p = fl_grow(w->items, &w->items_cap, w->nitems, sizeof *p, 4096);
	if (!p)
		return -ENOMEM;
	w->items = p;
	w->items[w->nitems].ts = ts;
	w->items[w->nitems].ev = ev;
	w->items[w->nitems].tag = 0;
	w->nitems++;
	return 0;
}

/* A line the drainer makes: id 0, the producer's pid, tid 0, the body initialized; NULL without memory. */
static Fugue__Event *synth(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, Fugue__Event__BodyCase body)
{
	Fugue__Event *ev = fl_arena_alloc(&w->arena, sizeof *ev);
	if (!ev)
		return NULL;
	fugue__event__init(ev);
	ev->ts_ns = (uint64_t)ts;
	ev->pid = s->ck.ring_pid;
	ev->body_case = body;
	switch (body) {
	case FUGUE__EVENT__BODY_LEVEL:
		if ((ev->level = fl_arena_alloc(&w->arena, sizeof *ev->level)))
			fugue__level__init(ev->level);
		return ev->level ? ev : NULL;
	case FUGUE__EVENT__BODY_DROPPED:
		if ((ev->dropped = fl_arena_alloc(&w->arena, sizeof *ev->dropped)))
			fugue__dropped__init(ev->dropped);
		return ev->dropped ? ev : NULL;
	case FUGUE__EVENT__BODY_ERROR:
		if ((ev->error = fl_arena_alloc(&w->arena, sizeof *ev->error)))
			fugue__error__init(ev->error);
		return ev->error ? ev : NULL;
	case FUGUE__EVENT__BODY_EXIT:
		if ((ev->exit = fl_arena_alloc(&w->arena, sizeof *ev->exit)))
			fugue__exit__init(ev->exit);
		return ev->exit ? ev : NULL;
	default:
		return NULL;
	}
}

Fugue__Event *fl_synth_level(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint64_t lw)
{
	uint64_t gen_old = FL_LEVEL_GEN(s->ck.level_word), gen_new = FL_LEVEL_GEN(lw);
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_LEVEL);
	if (!ev)
		return NULL;
	ev->level->old = FL_LEVEL_VALUE(s->ck.level_word);
	ev->level->new_ = FL_LEVEL_VALUE(lw);
	/* the generation is 56 bits and wraps: a jump of several changes is said so */
	ev->level->changes = (gen_new - gen_old) & (UINT64_MAX >> 8);
	return ev;
}

Fugue__Event *fl_synth_error(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, int code, const char *msg)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_ERROR);
	if (!ev || !(ev->error->message = fl_arena_strdup(&w->arena, msg)))
		return NULL;
	ev->error->code = code;
	ev->error->origin = (char *)FL_DRAIN_ORIGIN;
	return ev;
}

Fugue__Event *fl_synth_abandoned(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_EXIT);
	if (!ev)
		return NULL;
	ev->exit->abandoned = 1;
	/* start time is the producer's word: unsigned, so a hostile one cannot overflow */
	ev->exit->duration_ns = ts > s->ck.ring_start_ns ? (uint64_t)ts - (uint64_t)s->ck.ring_start_ns : 0;
	return ev;
}

int fl_push_error(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, int code, const char *msg)
{
	Fugue__Event *ev = fl_synth_error(w, s, ts, code, msg);
	return ev ? fl_item_push(w, ts, ev) : -ENOMEM;
}

int fl_push_dropped(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t count)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_DROPPED);
	if (!ev)
		return -ENOMEM;
	ev->dropped->count = count;
	ev->dropped->lane = lane;
	return fl_item_push(w, ts, ev);
}

/*
 * The lane's drop counter (drops, as read with its seq) bounds what an honest
 * producer can have lost, so a bigger jump is a forged or broken ring: an
 * error line says so and the dropped count is clamped to the counter.
 */
int fl_push_gap(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t gap, uint64_t drops)
{
	/*
	 * A drop stores its seq, then its count (fl_lane_drop), and a lane has one
	 * writer at a time: a snapshot taken between the two stores sees one spent
	 * seq more than the count says. That one is a real drop, not a lie.
	 */
	if (gap - 1 <= drops)
		return fl_push_dropped(w, s, ts, lane, gap);
	char msg[200];
	snprintf(msg, sizeof msg,
		 "lane %u: sequence numbers jump by %llu, but the lane counts only %llu drops: the ring's counters "
		 "are not believed",
		 lane, (unsigned long long)gap, (unsigned long long)drops);
	int rc = fl_push_error(w, s, ts, -EBADMSG, msg);
	if (rc == 0 && drops)
		rc = fl_push_dropped(w, s, ts, lane, drops);
	return rc;
}

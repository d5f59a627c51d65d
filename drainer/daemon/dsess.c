/* SPDX-License-Identifier: MIT */
/* dsess.c: a drained session's files — open and resume from the checkpoint, fail and retry, the manifest. */
#define _GNU_SOURCE
#include "drain_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "budget.h"
#include "guard.h"
#include "fuguelog.h"
#include "sysutil.h"

#define RETRY_MIN_NS 100000000ll  /* a session whose files failed is retried after this, */
#define RETRY_MAX_NS 5000000000ll /* doubling up to this while the failure lasts */
#define LEVELS_NAME ".levels"

int fl_dsess_new(struct fl_dsess **out, struct fl_ring *ring, const char *id, const char *shm_name)
{
	struct fl_dsess *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->ring = ring;
	fl_clock_sess_init(&s->clk, ring->hdr);
	snprintf(s->id, sizeof s->id, "%s", id);
	snprintf(s->shm_name, sizeof s->shm_name, "%s", shm_name);
	s->ckf.fd = -1;
	s->levels_fd = -1;
	*out = s;
	return 0;
}

const char *fl_dsess_id(const struct fl_dsess *s)
{
	return s->id;
}

void fl_dsess_close_files(struct fl_dsess *s)
{
	fl_sink_close(s->sink);
	s->sink = NULL;
	fl_ckpt_close(&s->ckf);
	if (s->levels_fd >= 0)
		close(s->levels_fd);
	s->levels_fd = -1;
	s->open = 0;
	if (s->slot)
		fl_budget_release();
	s->slot = 0;
}

void fl_dsess_free(struct fl_dsess *s)
{
	if (!s)
		return;
	fl_dsess_close_files(s);
	fl_budget_unwait(&s->slot_wait);
	free(s->levels);
	free(s);
}

void fl_dsess_back_off(struct fl_dsess *s)
{
	s->retry_ns = s->retry_ns ? (s->retry_ns * 2 > RETRY_MAX_NS ? RETRY_MAX_NS : s->retry_ns * 2) : RETRY_MIN_NS;
	s->retry_at = fl_now_ns(CLOCK_MONOTONIC) + s->retry_ns;
}

/* Logs what once per distinct message (last_error holds a prefix of a long one). */
static void log_once(struct fl_dsess *s, const char *what)
{
	if (strncmp(s->last_error, what, sizeof s->last_error - 1)) {
		fl_drain_log("session %s: %s", s->id, what);
		snprintf(s->last_error, sizeof s->last_error, "%s", what);
	}
}

int fl_dsess_fail(struct fl_dsess *s, int rc, const char *what)
{
	int was_open = s->open;
	if (fl_budget_is_resource(rc))
		fl_budget_note(rc, what); /* the drainer's condition, not the session's: one line for all sessions */
	else
		log_once(s, what);
	fl_dsess_close_files(s);
	/* an outage is reported in the files once they can be written again (batch); a failed open wrote nothing */
	if (!s->outage_since && rc != -EEXIST && (was_open || !fl_budget_is_resource(rc)))
		s->outage_since = fl_now_ns(CLOCK_REALTIME);
	s->outage_errno = rc < 0 ? -rc : EIO;
	fl_dsess_back_off(s);
	return rc;
}

int fl_dsess_wait_for_files(struct fl_dsess *s, int rc)
{
	char what[160];
	snprintf(what, sizeof what, "cannot write its files (%s); holding the lines and retrying", strerror(-rc));
	log_once(s, what);
	if (!s->outage_since)
		s->outage_since = fl_now_ns(CLOCK_REALTIME);
	s->outage_errno = -rc;
	fl_dsess_back_off(s);
	return rc;
}

/*
 * Most sessions never change level, so the list starts empty and doubles as
 * changes come. Full, the oldest goes (a memmove of at most 8 KiB, per level
 * change). The manifest only summarizes .levels, which keeps every change: when
 * the list cannot grow, it keeps the newest it has room for.
 */
void fl_dsess_push_level(struct fl_dsess *s, const struct fl_level_rec *r)
{
	if (s->nlevels == s->levels_cap && s->levels_cap < FL_MANIFEST_MAX_LEVELS) {
		size_t cap = s->levels_cap ? s->levels_cap * 2 : 4;
		cap = cap < FL_MANIFEST_MAX_LEVELS ? cap : FL_MANIFEST_MAX_LEVELS;
		struct fl_level_rec *n = realloc(s->levels, cap * sizeof *n);
		if (n) {
			s->levels = n;
			s->levels_cap = cap;
		}
	}
	if (!s->levels_cap)
		return;
	if (s->nlevels == s->levels_cap) {
		memmove(s->levels, s->levels + 1, (s->nlevels - 1) * sizeof *s->levels);
		s->nlevels--;
	}
	s->levels[s->nlevels++] = *r;
}

int fl_dsess_write_manifest(struct fl_dsess *s, int durable)
{
	struct fl_manifest m = {
	    .id = s->id,
	    .pid = s->ck.ring_pid,
	    .start_ns = s->ck.ring_start_ns,
	    .level = FL_LEVEL_VALUE(s->ck.level_word ? s->ck.level_word : fl_ring_level_word(s->ring)),
	    .lanes = s->ring->lane_count,
	    .lane_size = s->ring->lane_size,
	    .ck = &s->ck,
	    .levels = s->levels,
	    .nlevels = s->nlevels,
	};
	char *segs = fl_sink_segments_json(s->sink);
	m.extra = segs;
	int rc = segs ? fl_manifest_write(fl_sink_dirfd(s->sink), &m, durable) : -ENOMEM;
	free(segs);
	if (rc == 0) {
		s->manifest_dirty = 0;
		s->manifest_at = fl_now_ns(CLOCK_MONOTONIC);
	}
	return rc;
}

/* Loads <root>/<id>/.checkpoint into *ck: 1 when there is one, 0 when not, or -errno (the failure logged). */
static int load_checkpoint(struct fl_dsess *s, int root_fd, const char *root, struct fl_ckpt *ck)
{
	char why[512];
	if (mkdirat(root_fd, s->id, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		snprintf(why, sizeof why, "cannot create %s/%s: %s", root, s->id, strerror(-e));
		return fl_dsess_fail(s, e, why);
	}
	int dirfd = openat(root_fd, s->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		int e = -errno;
		snprintf(why, sizeof why, "cannot open %s/%s: %s", root, s->id, strerror(-e));
		return fl_dsess_fail(s, e, why);
	}
	char what[FL_RING_ID_MAX + 300];
	snprintf(what, sizeof what, "%s/%s", root, s->id);
	int rc = fl_sink_check_private(dirfd, what, why, sizeof why);
	if (rc < 0) {
		close(dirfd);
		return fl_dsess_fail(s, rc, why);
	}
	rc = fl_ckpt_load(dirfd, ck);
	close(dirfd);
	if (rc < 0 && rc != -ENOENT) {
		snprintf(why, sizeof why,
			 "checkpoint in %s/%s is unreadable (%s); move the directory away to start over", root, s->id,
			 strerror(-rc));
		return fl_dsess_fail(s, rc, why);
	}
	if (rc < 0)
		memset(ck, 0, sizeof *ck);
	return rc == 0;
}

/* 1 when checkpoint ck was written for this ring. */
static int same_ring(const struct fl_dsess *s, const struct fl_ckpt *ck)
{
	const struct fl_ring_hdr *h = s->ring->hdr;
	/* a ring truncated since the checkpoint reads zeros: the checkpoint's word about it stands */
	return fl_guard_tripped(h) ||
	       (ck->ring_pid == h->pid && ck->ring_pid_start == h->pid_start &&
		ck->ring_start_ns == h->start_realtime_ns && ck->lane_count == s->ring->lane_count);
}

/* The checkpoint to go on from: *ck when it belongs to this ring, else ck's files and seq with fresh positions. */
static void adopt_checkpoint(struct fl_dsess *s, struct fl_ckpt *ck, int have, int same)
{
	const struct fl_ring_hdr *h = s->ring->hdr;
	if (have && !same) {
		/* a new ring under an id seen before: keep the files and seq, restart the ring positions */
		memset(ck->lane_next, 0, sizeof ck->lane_next);
		ck->quarantined = 0;
		ck->level_word = 0;
		ck->end = FL_CKPT_LIVE;
		ck->end_ns = 0;
		have = 0;
	}
	if (!have) {
		/* the level before the first change: the first level line knows its old value */
		uint32_t l0 = h->level0;
		ck->level_word =
		    l0 >= FL_LEVEL_SPAWNS && l0 <= FL_LEVEL_FULL ? l0 : FL_LEVEL_VALUE(fl_ring_level_word(s->ring));
		ck->ring_pid = h->pid;
		ck->ring_pid_start = h->pid_start;
		ck->ring_start_ns = h->start_realtime_ns;
		ck->lane_count = s->ring->lane_count;
	}
	if (!ck->next_seq)
		ck->next_seq = 1;
	s->ck = *ck;
}

/* Opens .levels and reloads the newest level changes the checkpoint covers, for the manifest. */
static int open_levels(struct fl_dsess *s)
{
	const struct fl_ckpt *ck = &s->ck;
	s->levels_fd = openat(fl_sink_dirfd(s->sink), LEVELS_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->levels_fd < 0)
		return fl_dsess_fail(s, -errno, "cannot open its .levels");
	s->nlevels = 0;
	uint64_t from = ck->level_hist > FL_MANIFEST_MAX_LEVELS ? ck->level_hist - FL_MANIFEST_MAX_LEVELS : 0;
	for (uint64_t i = from; i < ck->level_hist; i++) {
		struct fl_level_rec r;
		if (pread(s->levels_fd, &r, sizeof r, (off_t)(i * sizeof r)) != (ssize_t)sizeof r)
			break;
		fl_dsess_push_level(s, &r);
	}
	/* records past the checkpoint belong to a batch that is written again */
	if (ftruncate(s->levels_fd, (off_t)(ck->level_hist * sizeof(struct fl_level_rec))) < 0)
		return fl_dsess_fail(s, -errno, "cannot truncate its .levels");
	return 0;
}

int fl_dsess_open(struct fl_dsess *s, const char *root)
{
	char why[512];
	if (!s->slot && !fl_budget_acquire(&s->slot_wait))
		return 0; /* every slot is held: the records wait in the ring, the holders hand slots back */
	s->slot = 1;
	int root_fd = fl_sink_open_root(root, why, sizeof why);
	if (root_fd < 0)
		return fl_dsess_fail(s, root_fd, why);
	struct fl_ckpt ck;
	int have = load_checkpoint(s, root_fd, root, &ck);
	if (have < 0) {
		close(root_fd);
		return have;
	}
	int same = have && same_ring(s, &ck);
	if (have && !same && ck.end != FL_CKPT_LIVE) {
		/* an ended session's files are final: a new ring reusing its id is refused, its records wait */
		close(root_fd);
		snprintf(why, sizeof why,
			 "a new ring %s reuses the id of a session that %s; its directory %s/%s is final, so the ring "
			 "is not drained: give the session a new id, or move that directory away",
			 s->shm_name, ck.end == FL_CKPT_ENDED ? "ended" : "was abandoned", root, s->id);
		return fl_dsess_fail(s, -EEXIST, why);
	}
	int rc = fl_sink_open(&s->sink, root_fd, s->id, have ? &ck.sink : NULL, why, sizeof why);
	close(root_fd);
	if (rc < 0)
		return fl_dsess_fail(s, rc, why);
	adopt_checkpoint(s, &ck, have, same);
	rc = fl_ckpt_open(&s->ckf, fl_sink_dirfd(s->sink));
	if (rc < 0)
		return fl_dsess_fail(s, rc, "cannot open its .checkpoint");
	if ((rc = open_levels(s)) < 0)
		return rc;
	s->open = 1;
	s->last_error[0] = 0;
	s->resuming = ~0ull; /* the tails may trail the checkpoint: those records are skipped quietly */
	fl_budget_ok();
	s->manifest_dirty = 1;
	rc = fl_dsess_write_manifest(s, 0);
	if (rc < 0)
		return fl_dsess_fail(s, rc, "cannot write session.json");
	return 0;
}

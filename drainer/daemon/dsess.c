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

static void close_files(struct fl_dsess *s)
{
	fl_sink_close(s->sink);
	s->sink = NULL;
	fl_ckpt_close(&s->ckf);
	if (s->levels_fd >= 0)
		close(s->levels_fd);
	s->levels_fd = -1;
	s->open = 0;
}

void fl_dsess_free(struct fl_dsess *s)
{
	if (!s)
		return;
	close_files(s);
	free(s);
}

int fl_dsess_fail(struct fl_dsess *s, int rc, const char *what)
{
	if (strcmp(s->last_error, what)) {
		fl_drain_log("session %s: %s", s->id, what);
		snprintf(s->last_error, sizeof s->last_error, "%s", what);
	}
	close_files(s);
	/* an outage is reported in the files once they can be written again (the next batch) */
	if (!s->outage_since)
		s->outage_since = fl_now_ns(CLOCK_REALTIME);
	s->outage_errno = rc < 0 ? -rc : EIO;
	s->retry_ns = s->retry_ns ? (s->retry_ns * 2 > RETRY_MAX_NS ? RETRY_MAX_NS : s->retry_ns * 2) : RETRY_MIN_NS;
	s->retry_at = fl_now_ns(CLOCK_MONOTONIC) + s->retry_ns;
	return rc;
}

void fl_dsess_push_level(struct fl_dsess *s, const struct fl_level_rec *r)
{
	s->levels[s->nlevels % FL_MANIFEST_MAX_LEVELS] = *r;
	s->nlevels++;
}

int fl_dsess_write_manifest(struct fl_dsess *s, int durable)
{
	struct fl_level_rec lv[FL_MANIFEST_MAX_LEVELS];
	size_t n = s->nlevels < FL_MANIFEST_MAX_LEVELS ? s->nlevels : FL_MANIFEST_MAX_LEVELS;
	for (size_t i = 0; i < n; i++)
		lv[i] = s->levels[(s->nlevels - n + i) % FL_MANIFEST_MAX_LEVELS];
	struct fl_manifest m = {
	    .id = s->id,
	    .pid = s->ck.ring_pid,
	    .start_ns = s->ck.ring_start_ns,
	    .level = FL_LEVEL_VALUE(s->ck.level_word ? s->ck.level_word : fl_ring_level_word(s->ring)),
	    .lanes = s->ring->lane_count,
	    .lane_size = s->ring->lane_size,
	    .ck = &s->ck,
	    .levels = lv,
	    .nlevels = n,
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
	int rc = fl_ckpt_load(dirfd, ck);
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

/* The checkpoint to go on from: *ck when it belongs to this ring, else ck's files and seq with fresh positions. */
static void adopt_checkpoint(struct fl_dsess *s, struct fl_ckpt *ck, int have)
{
	const struct fl_ring_hdr *h = s->ring->hdr;
	if (have && (ck->ring_pid != h->pid || ck->ring_pid_start != h->pid_start ||
		     ck->ring_start_ns != h->start_realtime_ns || ck->lane_count != s->ring->lane_count)) {
		/* a new ring under an id seen before: keep the files and seq, restart the ring positions */
		memset(ck->lane_next, 0, sizeof ck->lane_next);
		ck->quarantined = 0;
		ck->level_word = 0;
		ck->end = FL_CKPT_LIVE;
		ck->end_ns = 0;
		have = 0;
	}
	if (!have) {
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
	s->nlevels = ck->level_hist; /* the circular index counts every change */
	/* records past the checkpoint belong to a batch that is written again */
	if (ftruncate(s->levels_fd, (off_t)(ck->level_hist * sizeof(struct fl_level_rec))) < 0)
		return fl_dsess_fail(s, -errno, "cannot truncate its .levels");
	return 0;
}

int fl_dsess_open(struct fl_dsess *s, const char *root)
{
	char why[512];
	int root_fd = fl_sink_open_root(root, why, sizeof why);
	if (root_fd < 0)
		return fl_dsess_fail(s, root_fd, why);
	struct fl_ckpt ck;
	int have = load_checkpoint(s, root_fd, root, &ck);
	if (have < 0) {
		close(root_fd);
		return have;
	}
	int rc = fl_sink_open(&s->sink, root_fd, s->id, have ? &ck.sink : NULL, why, sizeof why);
	close(root_fd);
	if (rc < 0)
		return fl_dsess_fail(s, rc, why);
	adopt_checkpoint(s, &ck, have);
	rc = fl_ckpt_open(&s->ckf, fl_sink_dirfd(s->sink));
	if (rc < 0)
		return fl_dsess_fail(s, rc, "cannot open its .checkpoint");
	if ((rc = open_levels(s)) < 0)
		return rc;
	s->open = 1;
	s->last_error[0] = 0;
	s->manifest_dirty = 1;
	rc = fl_dsess_write_manifest(s, 0);
	if (rc < 0)
		return fl_dsess_fail(s, rc, "cannot write session.json");
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* drain.c: per-session draining — peek, decode into an arena, merge by time, write, checkpoint, release. */
#define _GNU_SOURCE
#include "drain.h"
#include "guard.h"
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clock.h"
#include "decode.h"
#include "fuguelog.h"
#include "jsonl.h"
#include "manifest.h"
#include "sink.h"

#define BATCH 1024		      /* records per lane per batch */
#define BATCH_BYTES (1u << 20)	      /* record bytes per batch, over all lanes ... */
#define LANE_MIN_BYTES (32u << 10)    /* ... but at least this much per lane */
#define ROUNDS 8		      /* batches per step, so one busy session cannot starve the others */
#define ALIVE_EVERY_NS 50000000	      /* idle sessions check their producer this often */
#define MANIFEST_EVERY_NS 200000000ll /* session.json follows a live session this closely */
#define RETRY_MIN_NS 100000000ll      /* a session whose files failed is retried after this, */
#define RETRY_MAX_NS 5000000000ll     /* doubling up to this while the failure lasts */
#define UNLINK_MIN_NS 1000000000ll    /* a ring that cannot be unlinked is retried after this, */
#define UNLINK_MAX_NS 60000000000ll   /* doubling up to this */
#define ARENA_KEEP (4u << 20)	      /* an idle worker keeps at most this much decode arena */
#define LEVELS_NAME ".levels"
#define ORIGIN "fugue-logd"

/* ---- logging ------------------------------------------------------------------------ */

static void log_stderr(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

static void (*logger)(const char *line) = log_stderr;

void fl_drain_set_logger(void (*fn)(const char *line))
{
	logger = fn ? fn : log_stderr;
}

void fl_drain_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	logger(line);
}

static int64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- bump arena for protobuf-c ------------------------------------------------------ */

/*
 * protobuf-c's unpack allocates the message, every string and every bytes field;
 * with this allocator it bumps a pointer in one block per batch and free is a
 * no-op. Overflow goes to extra blocks, and the next reset grows the main block
 * to cover them, so a steady load settles to zero mallocs.
 */
struct arena_extra {
	struct arena_extra *next;
	max_align_t data[];
};

struct arena {
	uint8_t *base;
	size_t used, cap;
	size_t extra_bytes;
	struct arena_extra *extra;
};

static void *arena_alloc(void *d, size_t n)
{
	struct arena *a = d;
	n = (n + 15) & ~(size_t)15;
	if (n <= a->cap - a->used) {
		void *p = a->base + a->used;
		a->used += n;
		return p;
	}
	struct arena_extra *e = malloc(sizeof *e + n);
	if (!e)
		return NULL;
	e->next = a->extra;
	a->extra = e;
	a->extra_bytes += n;
	return e->data;
}

static void arena_free(void *d, void *p)
{
	(void)d;
	(void)p;
}

static void arena_reset(struct arena *a)
{
	size_t want = a->used + a->extra_bytes;
	while (a->extra) {
		struct arena_extra *e = a->extra;
		a->extra = e->next;
		free(e);
	}
	a->extra_bytes = 0;
	a->used = 0;
	if (want > a->cap) {
		size_t cap = a->cap ? a->cap : 1u << 20;
		while (cap < want)
			cap *= 2;
		uint8_t *p = malloc(cap);
		if (p) {
			free(a->base);
			a->base = p;
			a->cap = cap;
		}
	}
}

/* ---- worker and session ------------------------------------------------------------- */

struct item {
	int64_t ts;
	Fugue__Event *ev;
	uint32_t tag; /* a producer record's level tag | ITEM_TAGGED, else 0 */
};

#define ITEM_TAGGED 0x10000u

struct fl_drain_worker {
	struct arena arena;
	ProtobufCAllocator alloc;
	struct fl_rec recs[BATCH];
	struct item *items;
	size_t nitems, items_cap;
	size_t lane_from[FL_RING_MAX_LANES + 1], lane_to[FL_RING_MAX_LANES + 1];
	uint64_t tails[FL_RING_MAX_LANES];
	struct fl_jbuf line;
	uint64_t level_word; /* read after the heads of this batch */
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
	struct fl_level_rec levels[FL_MANIFEST_MAX_LEVELS]; /* the newest changes, circular */
	size_t nlevels;
};

int fl_drain_worker_new(struct fl_drain_worker **out)
{
	struct fl_drain_worker *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->alloc.alloc = arena_alloc;
	w->alloc.free = arena_free;
	w->alloc.allocator_data = &w->arena;
	*out = w;
	return 0;
}

void fl_drain_worker_free(struct fl_drain_worker *w)
{
	if (!w)
		return;
	w->arena.used = 0;
	arena_reset(&w->arena);
	free(w->arena.base);
	free(w->items);
	fl_jbuf_free(&w->line);
	free(w);
}

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
	if (s->slot)
		fl_budget_release();
	s->slot = 0;
}

void fl_dsess_free(struct fl_dsess *s)
{
	if (!s)
		return;
	close_files(s);
	fl_budget_unwait(&s->slot_wait);
	free(s);
}

/* The next try after a failure: 100 ms, doubling up to 5 s while it lasts. */
static void back_off(struct fl_dsess *s)
{
	s->retry_ns = s->retry_ns ? (s->retry_ns * 2 > RETRY_MAX_NS ? RETRY_MAX_NS : s->retry_ns * 2) : RETRY_MIN_NS;
	s->retry_at = now_ns(CLOCK_MONOTONIC) + s->retry_ns;
}

/* Logs a session's failure once per distinct message, and schedules the retry. */
static int fail(struct fl_dsess *s, int rc, const char *what)
{
	int was_open = s->open;
	if (fl_budget_is_resource(rc)) {
		/* the drainer's condition, not the session's: one line for all sessions */
		fl_budget_note(rc, what);
	} else if (strncmp(s->last_error, what, sizeof s->last_error - 1)) { /* it holds a prefix of a long one */
		fl_drain_log("session %s: %s", s->id, what);
		snprintf(s->last_error, sizeof s->last_error, "%s", what);
	}
	close_files(s);
	/* an outage is reported in the files once they can be written again (batch); a failed open wrote nothing */
	if (!s->outage_since && rc != -EEXIST && (was_open || !fl_budget_is_resource(rc)))
		s->outage_since = now_ns(CLOCK_REALTIME);
	s->outage_errno = rc < 0 ? -rc : EIO;
	back_off(s);
	return rc;
}

/*
 * The files refuse bytes for now (a full disk): the session keeps them open
 * and its lines buffered, logs once, and tries again with fail's backoff.
 */
static int wait_for_files(struct fl_dsess *s, int rc)
{
	char what[160];
	snprintf(what, sizeof what, "cannot write its files (%s); holding the lines and retrying", strerror(-rc));
	if (strncmp(s->last_error, what, sizeof s->last_error - 1)) {
		fl_drain_log("session %s: %s", s->id, what);
		snprintf(s->last_error, sizeof s->last_error, "%s", what);
	}
	if (!s->outage_since)
		s->outage_since = now_ns(CLOCK_REALTIME);
	s->outage_errno = -rc;
	back_off(s);
	return rc;
}

static void push_level(struct fl_dsess *s, const struct fl_level_rec *r)
{
	s->levels[s->nlevels % FL_MANIFEST_MAX_LEVELS] = *r;
	s->nlevels++;
}

static int write_manifest(struct fl_dsess *s, int durable)
{
	struct fl_level_rec lv[FL_MANIFEST_MAX_LEVELS];
	size_t n = s->nlevels < FL_MANIFEST_MAX_LEVELS ? s->nlevels : FL_MANIFEST_MAX_LEVELS;
	for (size_t i = 0; i < n; i++)
		lv[i] = s->levels[(s->nlevels - n + i) % FL_MANIFEST_MAX_LEVELS];
	const struct fl_ring_hdr *h = s->ring->hdr;
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
	(void)h;
	char *segs = fl_sink_segments_json(s->sink); /* rotation (h6): the segment list */
	m.extra = segs;
	int rc = segs ? fl_manifest_write(fl_sink_dirfd(s->sink), &m, durable) : -ENOMEM;
	free(segs);
	if (rc == 0) {
		s->manifest_dirty = 0;
		s->manifest_at = now_ns(CLOCK_MONOTONIC);
	}
	return rc;
}

/* Opens the files, resuming from the checkpoint when it belongs to this ring. */
static int open_session(struct fl_dsess *s, const char *root)
{
	char why[512];
	if (!s->slot && !fl_budget_acquire(&s->slot_wait))
		return 0; /* every slot is held: the records wait in the ring, the holders hand slots back */
	s->slot = 1;
	int root_fd = fl_sink_open_root(root, why, sizeof why);
	if (root_fd < 0)
		return fail(s, root_fd, why);
	if (mkdirat(root_fd, s->id, 0700) < 0 && errno != EEXIST) {
		int e = -errno;
		snprintf(why, sizeof why, "cannot create %s/%s: %s", root, s->id, strerror(-e));
		close(root_fd);
		return fail(s, e, why);
	}
	int dirfd = openat(root_fd, s->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0) {
		int e = -errno;
		snprintf(why, sizeof why, "cannot open %s/%s: %s", root, s->id, strerror(-e));
		close(root_fd);
		return fail(s, e, why);
	}
	char what[FL_RING_ID_MAX + 300];
	snprintf(what, sizeof what, "%s/%s", root, s->id);
	int rc = fl_sink_check_private(dirfd, what, why, sizeof why);
	if (rc < 0) {
		close(dirfd);
		close(root_fd);
		return fail(s, rc, why);
	}
	struct fl_ckpt ck;
	rc = fl_ckpt_load(dirfd, &ck);
	close(dirfd);
	if (rc < 0 && rc != -ENOENT) {
		close(root_fd);
		snprintf(why, sizeof why,
			 "checkpoint in %s/%s is unreadable (%s); move the directory away to start over", root, s->id,
			 strerror(-rc));
		return fail(s, rc, why);
	}
	const struct fl_ring_hdr *h = s->ring->hdr;
	int have = rc == 0;
	if (!have)
		memset(&ck, 0, sizeof ck);
	/* a ring truncated since the checkpoint reads zeros: the checkpoint's word about it stands */
	int same_ring = have && (fl_guard_tripped(h) ||
				 (ck.ring_pid == h->pid && ck.ring_pid_start == h->pid_start &&
				  ck.ring_start_ns == h->start_realtime_ns && ck.lane_count == s->ring->lane_count));
	if (have && !same_ring && ck.end != FL_CKPT_LIVE) {
		/* an ended session's files are final: a new ring reusing its id is refused, its records wait */
		close(root_fd);
		snprintf(why, sizeof why,
			 "a new ring %s reuses the id of a session that %s; its directory %s/%s is final, so the ring "
			 "is not drained: give the session a new id, or move that directory away",
			 s->shm_name, ck.end == FL_CKPT_ENDED ? "ended" : "was abandoned", root, s->id);
		return fail(s, -EEXIST, why);
	}
	rc = fl_sink_open(&s->sink, root_fd, s->id, have ? &ck.sink : NULL, why, sizeof why);
	close(root_fd);
	if (rc < 0)
		return fail(s, rc, why);
	if (have && !same_ring) {
		/* a new ring under an id seen before: keep the files and seq, restart the ring positions */
		memset(ck.lane_next, 0, sizeof ck.lane_next);
		ck.quarantined = 0;
		ck.level_word = 0;
		ck.end = FL_CKPT_LIVE;
		ck.end_ns = 0;
		have = 0;
	}
	if (!have) {
		/* the level before the first change: the first level line knows its old value */
		uint32_t l0 = h->level0;
		ck.level_word =
		    l0 >= FL_LEVEL_SPAWNS && l0 <= FL_LEVEL_FULL ? l0 : FL_LEVEL_VALUE(fl_ring_level_word(s->ring));
		ck.ring_pid = h->pid;
		ck.ring_pid_start = h->pid_start;
		ck.ring_start_ns = h->start_realtime_ns;
		ck.lane_count = s->ring->lane_count;
	}
	if (!ck.next_seq)
		ck.next_seq = 1;
	s->ck = ck;
	int dfd = fl_sink_dirfd(s->sink);
	rc = fl_ckpt_open(&s->ckf, dfd);
	if (rc < 0)
		return fail(s, rc, "cannot open its .checkpoint");
	s->levels_fd = openat(dfd, LEVELS_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->levels_fd < 0)
		return fail(s, -errno, "cannot open its .levels");
	/* the level history kept for the manifest: the newest entries that the checkpoint covers */
	s->nlevels = 0;
	uint64_t from = ck.level_hist > FL_MANIFEST_MAX_LEVELS ? ck.level_hist - FL_MANIFEST_MAX_LEVELS : 0;
	for (uint64_t i = from; i < ck.level_hist; i++) {
		struct fl_level_rec r;
		if (pread(s->levels_fd, &r, sizeof r, (off_t)(i * sizeof r)) != (ssize_t)sizeof r)
			break;
		push_level(s, &r);
	}
	s->nlevels = ck.level_hist; /* the circular index counts every change */
	if (ftruncate(s->levels_fd, (off_t)(ck.level_hist * sizeof(struct fl_level_rec))) < 0)
		return fail(s, -errno, "cannot truncate its .levels");
	s->open = 1;
	s->last_error[0] = 0;
	s->resuming = ~0ull; /* the tails may trail the checkpoint: those records are skipped quietly */
	fl_budget_ok();
	s->manifest_dirty = 1;
	rc = write_manifest(s, 0);
	if (rc < 0)
		return fail(s, rc, "cannot write session.json");
	return 0;
}

/* ---- items --------------------------------------------------------------------------- */

static int push_item(struct fl_drain_worker *w, int64_t ts, Fugue__Event *ev)
{
	if (w->nitems == w->items_cap) {
		size_t cap = w->items_cap ? w->items_cap * 2 : 4096;
		struct item *p = realloc(w->items, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		w->items = p;
		w->items_cap = cap;
	}
	w->items[w->nitems].ts = ts;
	w->items[w->nitems].ev = ev;
	w->items[w->nitems].tag = 0;
	w->nitems++;
	return 0;
}

/* A line the drainer makes (level, dropped, error, abandoned exit): id 0, the producer's pid, tid 0. */
static Fugue__Event *synth(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, Fugue__Event__BodyCase body)
{
	Fugue__Event *ev = arena_alloc(&w->arena, sizeof *ev);
	if (!ev)
		return NULL;
	fugue__event__init(ev);
	ev->ts_ns = (uint64_t)ts;
	ev->pid = s->ck.ring_pid;
	ev->body_case = body;
	switch (body) {
	case FUGUE__EVENT__BODY_LEVEL:
		ev->level = arena_alloc(&w->arena, sizeof *ev->level);
		if (ev->level)
			fugue__level__init(ev->level);
		break;
	case FUGUE__EVENT__BODY_DROPPED:
		ev->dropped = arena_alloc(&w->arena, sizeof *ev->dropped);
		if (ev->dropped)
			fugue__dropped__init(ev->dropped);
		break;
	case FUGUE__EVENT__BODY_ERROR:
		ev->error = arena_alloc(&w->arena, sizeof *ev->error);
		if (ev->error)
			fugue__error__init(ev->error);
		break;
	case FUGUE__EVENT__BODY_EXIT:
		ev->exit = arena_alloc(&w->arena, sizeof *ev->exit);
		if (ev->exit)
			fugue__exit__init(ev->exit);
		break;
	default:
		return NULL;
	}
	return ev->spawn ? ev : NULL;
}

static char *arena_strdup(struct fl_drain_worker *w, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = arena_alloc(&w->arena, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

static int push_error(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, int code, const char *msg)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_ERROR);
	if (!ev)
		return -ENOMEM;
	ev->error->code = code;
	ev->error->message = arena_strdup(w, msg);
	ev->error->origin = (char *)ORIGIN;
	if (!ev->error->message)
		return -ENOMEM;
	return push_item(w, ts, ev);
}

static int push_dropped(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t count)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_DROPPED);
	if (!ev)
		return -ENOMEM;
	ev->dropped->count = count;
	ev->dropped->lane = lane;
	return push_item(w, ts, ev);
}

/*
 * A jump of gap sequence numbers in lane: a dropped line. The lane's drop
 * counter (drops, as read with its seq) bounds what an honest producer can
 * have lost, so a bigger jump is a forged or broken ring: an error line says
 * so and the dropped count is clamped to the counter.
 */
static int push_gap(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint32_t lane, uint64_t gap,
		    uint64_t drops)
{
	if (gap <= drops)
		return push_dropped(w, s, ts, lane, gap);
	char msg[200];
	snprintf(msg, sizeof msg,
		 "lane %u: sequence numbers jump by %llu, but the lane counts only %llu drops: the ring's counters "
		 "are not believed",
		 lane, (unsigned long long)gap, (unsigned long long)drops);
	int rc = push_error(w, s, ts, -EBADMSG, msg);
	if (rc == 0 && drops)
		rc = push_dropped(w, s, ts, lane, drops);
	return rc;
}

/* ---- one batch ----------------------------------------------------------------------- */

static int kind_of(const Fugue__Event *ev)
{
	return (int)ev->body_case - 5;
}

/* Writes one item as a line with the next seq and does its accounting. */
static int emit_line(struct fl_drain_worker *w, struct fl_dsess *s, const struct item *it)
{
	Fugue__Event *ev = it->ev;
	uint64_t seq = s->ck.next_seq;
	w->line.len = 0;
	int rc = fl_jsonl_render(&w->line, &w->tc, ev, s->id, seq);
	if (rc < 0)
		return rc;
	int kind = kind_of(ev);
	int cls = fl_kind_class(kind);
	rc = fl_sink_append(s->sink, cls, w->line.p, w->line.len, seq, (int64_t)ev->ts_ns);
	if (rc < 0)
		return rc;
	s->ck.next_seq++;
	s->ck.lines[cls]++;
	if (kind == FL_KIND_DROPPED && !ev->id) {
		s->ck.drops += ev->dropped->count;
		s->manifest_dirty = 1;
	} else if (kind == FL_KIND_LEVEL && !ev->id) {
		struct fl_level_rec r = {(int64_t)ev->ts_ns, seq, ev->level->old, ev->level->new_, ev->level->changes};
		/* at its index, so a batch written again after a crash overwrites the same record */
		if (pwrite(s->levels_fd, &r, sizeof r, (off_t)(s->ck.level_hist * sizeof r)) != (ssize_t)sizeof r)
			return -EIO;
		s->ck.level_hist++;
		s->ck.level_changes += r.changes;
		push_level(s, &r);
		s->manifest_dirty = 1;
	}
	return 0;
}

/* ---- level lines ------------------------------------------------------------------------ */

/* Writes a level line from the announced word to (gen, value), and makes that the announced word. */
static int level_line(struct fl_drain_worker *w, struct fl_dsess *s, int64_t ts, uint64_t gen, uint8_t value,
		      size_t *written)
{
	Fugue__Event *ev = synth(w, s, ts, FUGUE__EVENT__BODY_LEVEL);
	if (!ev)
		return -ENOMEM;
	uint64_t had = s->ck.level_word;
	ev->level->old = FL_LEVEL_VALUE(had);
	ev->level->new_ = value;
	ev->level->changes = (gen - FL_LEVEL_GEN(had)) & (UINT64_MAX >> 8);
	s->ck.level_word = (gen << 8) | value; /* before emit_line: it records the change for the manifest */
	struct item it = {ts, ev, 0};
	int rc = emit_line(w, s, &it);
	if (rc == 0)
		(*written)++;
	return rc;
}

/*
 * Before a producer record: its tag holds the level and the low 8 bits of the
 * generation it was reserved under. The full generation is the newest one at
 * or below the level word read after the heads that ends in those bits; one
 * newer than the announced one gets its level line right here, before it.
 */
static int level_before(struct fl_drain_worker *w, struct fl_dsess *s, const struct item *it, size_t *written)
{
	if (!(it->tag & ITEM_TAGGED))
		return 0;
	uint64_t top = FL_LEVEL_GEN(w->level_word), had = FL_LEVEL_GEN(s->ck.level_word);
	uint64_t gen = (top & ~(uint64_t)0xff) | (it->tag >> 8 & 0xff);
	if (gen > top)
		gen -= 256; /* wraps below 0 only for a tag no generation here had: then gen > top still */
	if (gen > top || gen <= had)
		return 0; /* emitted under the announced level (or an impossible tag): no line */
	return level_line(w, s, it->ts, gen, (uint8_t)(it->tag & 0xff), written);
}

/* After a whole batch: changes no record was emitted under yet get their line at the end. */
static int level_catch_up(struct fl_drain_worker *w, struct fl_dsess *s, int64_t now, size_t *written)
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
static int write_merged(struct fl_drain_worker *w, struct fl_dsess *s, unsigned nruns, size_t *written)
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
			rc = emit_line(w, s, &w->items[pos[r]]);
		if (rc < 0)
			return rc;
		(*written)++;
		if (++pos[r] == w->lane_to[r])
			heap[0] = heap[--n];
		sift_down(w, pos, heap, n, 0);
	}
	return 0;
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

/*
 * One batch: reads, decodes and orders what the lanes hold, writes the lines,
 * checkpoints, then moves the tails. Returns lines written, or -errno before
 * any tail moved; *moved says whether records or pads were consumed.
 */
static int batch(struct fl_drain_worker *w, struct fl_dsess *s, int *moved)
{
	struct fl_ring *r = s->ring;
	uint32_t nl = r->lane_count;
	int64_t now = now_ns(CLOCK_REALTIME);
	char why[256];
	Fugue__Event *own[FL_RING_MAX_LANES + 2]; /* the drainer's own items: level change, outage, quarantines */
	unsigned nown = 0;
	int rc;

	*moved = 0;
	arena_reset(&w->arena);
	w->nitems = 0;

	if (s->outage_since) {
		/* the files failed and were reopened from the checkpoint: say so where it happened */
		char msg[300];
		snprintf(msg, sizeof msg,
			 "could not write the session files for %lld s (%s); resumed: nothing accepted was lost, what "
			 "producers dropped meanwhile is in the dropped lines",
			 (long long)((now - s->outage_since) / 1000000000), strerror(s->outage_errno));
		Fugue__Event *ev = synth(w, s, now, FUGUE__EVENT__BODY_ERROR);
		if (!ev || !(ev->error->message = arena_strdup(w, msg)))
			return -ENOMEM;
		ev->error->code = -s->outage_errno;
		ev->error->origin = (char *)ORIGIN;
		own[nown++] = ev;
	}
	struct fl_ckpt before = s->ck; /* restored when the batch cannot be written */
	for (uint32_t l = 0; l < nl; l++) {
		w->lane_from[l] = w->lane_to[l] = w->nitems;
		w->tails[l] = fl_load_relaxed(&r->lanes[l].tail);
		if (s->ck.quarantined >> l & 1)
			continue;
		uint64_t sseq, shead, sdrops;
		fl_lane_snapshot(r, l, &sseq, &shead, &sdrops);
		uint64_t next_tail;
		/* a clock it cannot convert quarantines the lanes: ticks are never printed as times */
		int n = fl_clock_check(&w->cal, &s->clk, why, sizeof why);
		if (n == 0)
			n = fl_lane_peek(r, l, w->recs, BATCH, &next_tail, why, sizeof why);
		if (n > 1) {
			/* a byte budget per lane and batch: big records must not blow up the arena's decoded copies */
			uint64_t bytes = 0,
				 budget = BATCH_BYTES / nl > LANE_MIN_BYTES ? BATCH_BYTES / nl : LANE_MIN_BYTES;
			int keep = n;
			for (int i = 0; i < n && keep == n; i++)
				if ((bytes += w->recs[i].len) >= budget)
					keep = i + 1;
			if (keep < n)
				n = fl_lane_peek(r, l, w->recs, (unsigned)keep, &next_tail, why, sizeof why);
		}
		if (n < 0) {
			/* a corrupt lane is never read again; the others go on */
			s->ck.quarantined |= 1ull << l;
			char msg[400];
			snprintf(msg, sizeof msg, "lane %u quarantined: %s", l, why);
			fl_drain_log("session %s: %s", s->id, msg);
			Fugue__Event *ev = synth(w, s, now, FUGUE__EVENT__BODY_ERROR);
			if (!ev || !(ev->error->message = arena_strdup(w, msg)))
				goto nomem;
			ev->error->code = n;
			ev->error->origin = (char *)ORIGIN;
			own[nown++] = ev;
			s->manifest_dirty = 1;
			continue;
		}
		uint64_t *next = &s->ck.lane_next[l];
		int64_t last_ts = now;
		for (int i = 0; i < n; i++) {
			const struct fl_rec *rec = &w->recs[i];
			if (rec->seq < *next) {
				if (s->resuming >> l & 1)
					continue; /* written before a restart, its tail not yet moved */
				/* a producer's seq never goes back: say so where it happened, and skip the record */
				char msg[200];
				snprintf(
				    msg, sizeof msg,
				    "lane %u: record with seq %llu after seq %llu: sequence numbers went backwards, "
				    "record skipped",
				    l, (unsigned long long)rec->seq, (unsigned long long)(*next - 1));
				if (push_error(w, s, last_ts, -EBADMSG, msg) < 0)
					goto nomem;
				continue;
			}
			s->resuming &= ~(1ull << l);
			/*
			 * A private copy in the arena: the producer may still write the shared
			 * bytes, and the fast decoder's bytes fields point into the copy.
			 */
			uint8_t *copy = arena_alloc(&w->arena, rec->len ? rec->len : 1);
			if (!copy)
				goto nomem;
			memcpy(copy, rec->data, rec->len);
			Fugue__Event *ev = NULL;
			rc = fl_event_decode(copy, rec->len, &w->alloc, &ev);
			if (rc < 0)
				goto nomem;
			if (rc == 0) /* not the plain form: protobuf-c decides, and may refuse */
				ev = fugue__event__unpack(&w->alloc, rec->len, copy);
			int ok = ev && kind_of(ev) >= FL_KIND_SPAWN && kind_of(ev) <= FL_KIND_INPUT;
			if (ok)
				ev->ts_ns = fl_clock_convert(&w->cal, &s->clk, l, ev->ts_ns);
			int64_t ts =
			    ok ? (int64_t)(ev->ts_ns > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : ev->ts_ns) : last_ts;
			if (rec->seq > *next && push_gap(w, s, ts, l, rec->seq - *next, sdrops) < 0)
				goto nomem;
			if (ok) {
				rc = push_item(w, ts, ev);
				if (rc == 0)
					w->items[w->nitems - 1].tag = rec->tag | ITEM_TAGGED;
			} else {
				char msg[200];
				snprintf(msg, sizeof msg,
					 "lane %u record %llu: %u bytes are not a fugue Event of a producer kind", l,
					 (unsigned long long)rec->seq, rec->len);
				s->ck.undecodable++;
				rc = push_error(w, s, ts, -EBADMSG, msg);
			}
			if (rc < 0)
				goto nomem;
			last_ts = ts;
			*next = rec->seq + 1;
		}
		/* losses after the last record: every seq below sseq was published at or before shead */
		if ((int64_t)(next_tail - shead) >= 0 && sseq > *next) {
			if (push_gap(w, s, last_ts, l, sseq - *next, sdrops) < 0)
				goto nomem;
			*next = sseq;
		}
		w->lane_to[l] = w->nitems;
		if (next_tail != w->tails[l])
			*moved = 1;
		w->tails[l] = next_tail;
	}
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
	for (unsigned i = 0; i < nown; i++)
		if (push_item(w, (int64_t)own[i]->ts_ns, own[i]) < 0)
			goto nomem;
	w->lane_to[nl] = w->nitems;
	if (fl_guard_tripped(r->hdr)) {
		/* truncated while we read it: what came from the zeroed mapping is not believed; the step ends it */
		s->ck = before;
		*moved = 0;
		return 0;
	}

	size_t written = 0;
	if (!w->nitems && w->whole && FL_LEVEL_GEN(w->level_word) != FL_LEVEL_GEN(s->ck.level_word)) {
		/* a change and nothing to write: its line alone */
		rc = level_catch_up(w, s, now, &written);
		if (rc == 0)
			rc = fl_sink_flush(s->sink);
		if (rc == 0) {
			fl_sink_get_state(s->sink, &s->ck.sink);
			rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
		}
		if (rc < 0) {
			s->ck = before;
			return rc;
		}
	} else if (w->nitems) {
		rc = write_merged(w, s, nl + 1, &written);
		if (rc == 0)
			rc = level_catch_up(w, s, now, &written);
		if (rc == 0)
			rc = fl_sink_flush(s->sink);
		if (rc < 0 && fl_sink_write_error_waits(rc)) {
			/* the disk is full (say): the lines wait in the sink, the file is never cut back */
			memcpy(s->pend_tails, w->tails, nl * sizeof *w->tails);
			s->flush_pending = 1;
			return rc;
		}
		if (rc == 0) {
			fl_sink_get_state(s->sink, &s->ck.sink);
			rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
		}
		if (rc < 0) {
			s->ck = before;
			return rc;
		}
		/* rotation (h6): segments rotated in this batch are covered now and may be compressed */
		fl_sink_committed(s->sink);
		if (s->ck.sink.next_segment != before.sink.next_segment)
			s->manifest_dirty = 1;
	} else if (s->ck.quarantined != before.quarantined) {
		rc = fl_ckpt_write(&s->ckf, &s->ck, 0);
		if (rc < 0) {
			s->ck = before;
			return rc;
		}
	}
	s->outage_since = 0; /* its error line (if any) is in the files now */
	s->retry_ns = 0;
	/* only now are the records safely in the files and the checkpoint */
	for (uint32_t l = 0; l < nl; l++)
		if (w->tails[l] != fl_load_relaxed(&r->lanes[l].tail))
			fl_lane_release(r, l, w->tails[l]);
	return (int)written;
nomem:
	s->ck = before;
	return -ENOMEM;
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
	s->unlink_at = now_ns(CLOCK_MONOTONIC) + s->unlink_ns;
	return 0;
}

/* An idle worker gives back a decode arena that one big batch grew, and the heap it came from. */
void fl_drain_worker_idle(struct fl_drain_worker *w)
{
	if (w->arena.cap <= ARENA_KEEP && w->line.cap <= ARENA_KEEP)
		return;
	w->arena.used = 0;
	arena_reset(&w->arena);
	if (w->arena.cap > ARENA_KEEP) {
		free(w->arena.base);
		w->arena.base = NULL;
		w->arena.cap = 0;
	}
	if (w->line.cap > ARENA_KEEP)
		fl_jbuf_free(&w->line);
	fl_budget_trim();
}

/* Writes the end: the abandoned exit line, the final checkpoint, synced files, manifest, and the shm unlink. */
static int finish(struct fl_drain_worker *w, struct fl_dsess *s, int *status)
{
	int rc;
	if (s->ck.end == FL_CKPT_LIVE) {
		struct fl_ckpt before = s->ck;
		int64_t now = now_ns(CLOCK_REALTIME);
		arena_reset(&w->arena);
		if (s->truncated) {
			Fugue__Event *er = synth(w, s, now, FUGUE__EVENT__BODY_ERROR);
			if (!er)
				return -ENOMEM;
			er->error->code = -EFAULT;
			er->error->message =
			    (char *)"the producer truncated its shm object: records not yet drained are lost";
			er->error->origin = (char *)ORIGIN;
			struct item eit = {now, er};
			rc = emit_line(w, s, &eit);
			if (rc < 0) {
				s->ck = before;
				return fail(s, rc, "cannot write the truncation error line");
			}
		}
		if (s->ending == FL_CKPT_ABANDONED) {
			Fugue__Event *ev = synth(w, s, now, FUGUE__EVENT__BODY_EXIT);
			if (!ev)
				return -ENOMEM;
			ev->exit->abandoned = 1;
			/* start time is the producer's word: unsigned, so a hostile one cannot overflow */
			ev->exit->duration_ns =
			    now > s->ck.ring_start_ns ? (uint64_t)now - (uint64_t)s->ck.ring_start_ns : 0;
			struct item it = {now, ev};
			rc = emit_line(w, s, &it);
			if (rc == 0)
				rc = fl_sink_flush(s->sink);
			if (rc < 0) {
				s->ck = before;
				return fail(s, rc, "cannot write the exit line");
			}
		}
		s->ck.end = s->ending;
		s->ck.end_ns = now;
		rc = fl_sink_sync(s->sink);
		if (rc == 0) {
			fl_sink_get_state(s->sink, &s->ck.sink);
			rc = fl_ckpt_write(&s->ckf, &s->ck, 1);
		}
		if (rc < 0) {
			s->ck = before;
			return fail(s, rc, "cannot write the final checkpoint");
		}
		fl_sink_committed(s->sink);
	}
	rc = write_manifest(s, 1);
	if (rc < 0)
		return fail(s, rc, "cannot write the final session.json");
	close_files(s); /* final: the slot goes to a session that needs it */
	return unlink_ring(s, status);
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

int fl_drain_step(struct fl_drain_worker *w, struct fl_dsess *s, const char *root, int *status)
{
	*status = FL_DRAIN_LIVE;
	int64_t mono = now_ns(CLOCK_MONOTONIC);
	if (s->unlink_ns)
		return mono < s->unlink_at ? 0 : unlink_ring(s, status);
	if (!s->open) {
		if (mono < s->retry_at)
			return 0;
		int rc = open_session(s, root);
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
			return wait_for_files(s, rc);
		if (rc < 0)
			return fail(s, rc,
				    "writing the lines held during an outage failed; resuming from the checkpoint");
	}
	if (s->ck.end != FL_CKPT_LIVE) {
		/* ended before a restart: only the manifest and the unlink may be missing */
		s->ending = s->ck.end;
		return finish(w, s, status);
	}
	if (check_truncated(s))
		return finish(w, s, status) < 0 ? -EIO : 0;
	if (!s->ending) {
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
	int total = 0, moved = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int n = batch(w, s, &moved);
		if (n < 0 && s->flush_pending)
			return wait_for_files(s, n);
		if (n < 0) {
			char what[128];
			snprintf(what, sizeof what, "writing failed (%s); resuming from the checkpoint", strerror(-n));
			return fail(s, n, what);
		}
		total += n;
		if (!n && !moved)
			break;
	}
	s->idle = !total && !moved;
	if (total)
		s->manifest_dirty = 1; /* next_seq and the file sizes moved */
	/* a truncation caught during this step (by the liveness check, say) ends it as a truncation */
	if (check_truncated(s) || (s->ending && s->idle))
		return finish(w, s, status) < 0 ? -EIO : 0;
	if (s->manifest_dirty && (mono - s->manifest_at >= MANIFEST_EVERY_NS || fl_budget_pressure())) {
		int rc = write_manifest(s, 0);
		if (rc < 0)
			fl_drain_log("session %s: cannot write session.json: %s", s->id, strerror(-rc));
	}
	/* sessions wait for fd slots: hand ours back; the checkpoint is written, a reopen resumes exactly */
	if (fl_budget_pressure())
		close_files(s);
	if (s->idle)
		fl_drain_worker_idle(w);
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
	int mrc = write_manifest(s, 1);
	return rc < 0 ? rc : mrc;
}

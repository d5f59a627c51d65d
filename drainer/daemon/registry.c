/* SPDX-License-Identifier: MIT */
/* registry.c: session discovery (inotify + rescan), the RCU session table and the drain worker threads. */
#define _GNU_SOURCE
#include "registry.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-memb.h> /* before rculfhash.h, as that header requires */
#include <urcu/rculfhash.h>

#include "budget.h"
#include "doorbell.h"
#include "drain.h"
#include "ring.h"
#include "rings.h"
#include "sysutil.h"

#define RESCAN_MS 5000		      /* safety-net rescan with inotify (a lost event: queue overflow) */
#define RESCAN_POLL_MS 500	      /* without inotify: the rescan is how new rings are found */
#define REJECT_YOUNG_NS 2000000000ll  /* a refused name this young may be a ring being created: retried often */
#define REJECT_RETRY_NS 30000000000ll /* an older one is retried this rarely (it may have been fixed) */
#define REJECT_BUCKETS 4096
#define REJECT_FRESH_NS 50000000ll /* ... and this young one is most likely being created: every 250 us */
#define BACKOFF_MIN_NS 1000000	   /* without a doorbell, idle workers nap from this ... */
#define BACKOFF_MAX_NS 50000000	   /* ... up to this */
/*
 * A worker asleep on the doorbell looks anyway after SAFETY_NS while lines
 * flowed in the last QUIET_NS (a trickle below the watermark, the manifest of a
 * session that just went quiet) or sessions wait for fd slots, else after
 * SAFETY_IDLE_NS. Nothing depends on
 * the long timer for correctness: a lane reaching its watermark, a new ring, a
 * session close and a blocked producer all ring, and the Dekker handshake
 * loses no ring; what waits for it is a lane below 1/8 full that stays so
 * (its lines appear up to SAFETY_IDLE_NS late), the liveness check of idle
 * producers, and retries after a failure (docs/drainer.md).
 */
#define SAFETY_NS 100000000ull
#define SAFETY_IDLE_NS 5000000000ull
#define QUIET_NS 2000000000ll

struct ent {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	_Atomic int busy; /* a worker is stepping it */
	_Atomic int done; /* finished: the discovery thread removes it */
	unsigned long hash;
	struct fl_ring ring;
	struct fl_dsess *ds;
	char id[FL_RING_ID_MAX + 1];
	char shm[128];
};

/*
 * A shm name that could not be attached: remembered in a hash set so it is
 * reported once and costs a rescan one lookup. Retried at every rescan while
 * young (a ring being created has no header for a moment), then every
 * REJECT_RETRY_NS, so thousands of junk names cost an idle drainer nothing.
 */
struct rejected {
	struct rejected *next, *hnext;
	char name[256];
	int64_t first_ns, tried_ns;
	int reported;
	int seen; /* in the current scan */
};

struct fl_registry {
	struct cds_lfht *ht;
	/* workers read it under the RCU read lock; C11 acquire/release so TSan sees the hand-over
	   (it does not see liburcu's rcu_dereference), freed only after a grace period */
	_Atomic(char *) root;
	char prefix[80];
	unsigned nworkers;
	pthread_t *workers;
	pthread_t discovery;
	int inotify_fd;
	int stop_fd; /* eventfd: wakes the discovery thread's poll at stop (-1: it polls with a timeout) */
	_Atomic int stop;
	struct rejected *rejected;
	struct rejected *rej_hash[REJECT_BUCKETS];
	unsigned young;	      /* rejected names still young at the last scan: fast rescans only for them */
	unsigned fresh;	      /* of them, those seen first REJECT_FRESH_NS ago or less */
	struct fl_bell *bell; /* producers ring it; workers sleep on it (NULL: they nap) */
	_Atomic unsigned count;
};

static unsigned long hash_id(const char *id)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *id; id++) {
		h ^= (uint8_t)*id;
		h *= 0x100000001b3ull;
	}
	return (unsigned long)h;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
	return !strcmp(caa_container_of(node, struct ent, node)->id, key);
}

/*
 * Bumped (release) by every thread after each read-side pass and before it
 * adds or hands an entry to call_rcu; acquired by the call_rcu callbacks and by
 * workers before they touch an entry. The grace period and the hash table
 * already order all of these; this makes that order visible to
 * ThreadSanitizer, which cannot see into liburcu or through membarrier(). A
 * global, so a callback acquires it before it reads anything of its entry.
 */
static _Atomic unsigned long epoch;

static void pass_done(struct fl_registry *r)
{
	(void)r;
	atomic_fetch_add_explicit(&epoch, 1, memory_order_release);
}

static void free_ent(struct rcu_head *head)
{
	struct ent *e = caa_container_of(head, struct ent, rcu);
	/* acquire pairs with pass_done (see epoch); release pairs with the last look in fl_registry_stop */
	atomic_fetch_add_explicit(&epoch, 1, memory_order_acq_rel);
	fl_dsess_free(e->ds);
	fl_ring_detach(&e->ring);
	free(e);
}

#if defined(__SANITIZE_THREAD__)
/*
 * liburcu is not built with ThreadSanitizer: its grace periods, call_rcu and
 * work queues synchronize through membarrier() and futexes that TSan cannot
 * see, so memory it allocates in one thread and frees in its own worker looks
 * racy. Only what liburcu itself calls is ignored; our side of every hand-off
 * is made visible explicitly (epoch).
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "called_from_lib:liburcu-memb.so\ncalled_from_lib:liburcu-cds.so\ncalled_from_lib:liburcu-common.so\n";
}
#endif

/* ---- discovery ------------------------------------------------------------------------ */

static struct rejected *find_rejected(struct fl_registry *r, const char *name)
{
	for (struct rejected *x = r->rej_hash[hash_id(name) % REJECT_BUCKETS]; x; x = x->hnext)
		if (!strcmp(x->name, name))
			return x;
	return NULL;
}

/* A new entry for name in the list and the hash set, or NULL without memory. */
static struct rejected *add_rejected(struct fl_registry *r, const char *name)
{
	struct rejected *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	snprintf(x->name, sizeof x->name, "%s", name);
	x->first_ns = fl_now_ns(CLOCK_MONOTONIC);
	x->next = r->rejected;
	r->rejected = x;
	struct rejected **b = &r->rej_hash[hash_id(x->name) % REJECT_BUCKETS];
	x->hnext = *b;
	*b = x;
	return x;
}

/* Drops x from the hash set (the caller unlinks it from the list and frees it). */
static void unhash_rejected(struct fl_registry *r, struct rejected *x)
{
	struct rejected **pp = &r->rej_hash[hash_id(x->name) % REJECT_BUCKETS];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
}

/*
 * A ring just entered the table: its producer may wait for that at open (the
 * attached word), and a worker asleep on the doorbell starts on it now.
 */
static void announce(struct fl_registry *r, struct ent *e)
{
	fl_ring_set_attached(&e->ring);
	if (r->bell)
		fl_bell_wake_all(r->bell);
}

/* Called by fl_rings_scan for each candidate; only the discovery thread (or the stopping caller) runs it. */
static int on_ring(const char *id, const char *shm_name, void *arg)
{
	struct fl_registry *r = arg;
	unsigned long h = hash_id(id);
	struct cds_lfht_iter it;
	urcu_memb_read_lock();
	cds_lfht_lookup(r->ht, h, match_id, id, &it);
	int known = cds_lfht_iter_get_node(&it) != NULL;
	urcu_memb_read_unlock();
	pass_done(r);
	if (known)
		return 0;

	struct rejected *x = find_rejected(r, shm_name);
	int64_t now = fl_now_ns(CLOCK_MONOTONIC);
	if (x && x->reported && now - x->tried_ns < REJECT_RETRY_NS) {
		x->seen = 1; /* refused before and reported: not worth an open and a map at every scan */
		return 0;
	}
	struct ent *e = calloc(1, sizeof *e);
	if (!e)
		return 0;
	char why[256] = "";
	int rc = fl_ring_attach(&e->ring, shm_name, why, sizeof why);
	if (rc < 0 && fl_budget_is_resource(rc)) {
		/* the drainer's shortage, not the ring's fault: retried at the next scan, one log line in all */
		free(e);
		fl_budget_note(rc, "cannot attach rings");
		if (x)
			x->seen = 1;
		return 0;
	}
	if (rc < 0) {
		free(e);
		if (!x)
			x = add_rejected(r, shm_name);
		if (x) {
			x->seen = 1;
			x->tried_ns = now;
			if (now - x->first_ns <= REJECT_YOUNG_NS)
				r->young++;
			if (now - x->first_ns <= REJECT_FRESH_NS)
				r->fresh++;
			/* a ring being created has no header for a moment: only a lasting failure is news */
			if (!x->reported && now - x->first_ns > REJECT_YOUNG_NS) {
				fl_drain_log("ignoring shm object %s: %s", shm_name, why);
				x->reported = 1;
			}
		}
		return 0;
	}
	if (x)
		x->seen = 0; /* attached now: dropped at the end of the scan */
	e->hash = h;
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->shm, sizeof e->shm, "%s", shm_name);
	rc = fl_dsess_new(&e->ds, &e->ring, id, shm_name);
	if (rc < 0) {
		fl_ring_detach(&e->ring);
		free(e);
		return 0;
	}
	cds_lfht_node_init(&e->node);
	/*
	 * Publishes the entry's fields to the workers, which acquire epoch before
	 * touching an entry. cds_lfht_add orders them too, but inside liburcu,
	 * where ThreadSanitizer cannot see it.
	 */
	pass_done(r);
	urcu_memb_read_lock();
	cds_lfht_add(r->ht, h, &e->node);
	urcu_memb_read_unlock();
	pass_done(r);
	atomic_fetch_add(&r->count, 1);
	announce(r, e);
	return 0;
}

static void on_bad(const char *name, void *arg)
{
	struct fl_registry *r = arg;
	char shm[300];
	snprintf(shm, sizeof shm, "/%s", name);
	struct rejected *x = find_rejected(r, shm);
	if (!x && (x = add_rejected(r, shm))) {
		x->reported = 1;
		fl_drain_log("ignoring shm object %s: the part after the prefix is not a valid session id", shm);
	}
	if (x)
		x->seen = 1;
}

static void scan(struct fl_registry *r)
{
	for (struct rejected *x = r->rejected; x; x = x->next)
		x->seen = 0;
	r->young = r->fresh = 0;
	int rc = fl_rings_scan(r->prefix, on_ring, on_bad, r);
	if (rc < 0)
		fl_drain_log("cannot scan %s: %s", FL_SHM_DIR, strerror(-rc));
	/* forget names that are gone or attached, so the list stays small */
	for (struct rejected **pp = &r->rejected; *pp;) {
		struct rejected *x = *pp;
		if (!x->seen) {
			*pp = x->next;
			unhash_rejected(r, x);
			free(x);
		} else
			pp = &x->next;
	}
}

/* Removes finished sessions; their memory goes after a grace period. */
static void reap(struct fl_registry *r)
{
	struct cds_lfht_iter it;
	struct ent *e;
	urcu_memb_read_lock();
	cds_lfht_for_each_entry(r->ht, &it, e, node)
	{
		if (atomic_load(&e->done) && !atomic_load(&e->busy) && cds_lfht_del(r->ht, &e->node) == 0) {
			atomic_fetch_sub(&r->count, 1);
			pass_done(r); /* our last look at e happens before free_ent */
			urcu_memb_call_rcu(&e->rcu, free_ent);
		}
	}
	urcu_memb_read_unlock();
	pass_done(r);
}

/* How long the discovery thread may sleep: a name seen just now is retried every 250 us, young ones soon. */
static int discovery_timeout_ms(const struct fl_registry *r, int64_t since_scan_ms)
{
	if (r->inotify_fd < 0)
		return 50;
	if (r->young)
		return r->fresh ? 0 : 50;
	int64_t left = RESCAN_MS - since_scan_ms;
	return left > 0 ? (int)left : 0;
}

/*
 * Drains the inotify queue: 1 when a name under our prefix came (or events
 * were lost), so names other users and other prefixes create in the shared
 * /dev/shm cost a read, not a scan.
 */
static int ours_created(struct fl_registry *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	size_t plen = strlen(r->prefix);
	int ours = 0;
	ssize_t n;
	while ((n = read(r->inotify_fd, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
			if ((ev->mask & IN_Q_OVERFLOW) || (ev->len && !strncmp(ev->name, r->prefix, plen)))
				ours = 1;
			off += (ssize_t)(sizeof *ev + ev->len);
		}
	return ours;
}

static void *discovery_main(void *arg)
{
	struct fl_registry *r = arg;
	urcu_memb_register_thread();
	pthread_setname_np(pthread_self(), "fl-discovery");
	int64_t last = fl_now_ns(CLOCK_MONOTONIC);
	while (!atomic_load(&r->stop)) {
		int64_t now = fl_now_ns(CLOCK_MONOTONIC);
		int wake = 0;
		int tmo = discovery_timeout_ms(r, (now - last) / 1000000);
		if (r->inotify_fd >= 0) {
			struct pollfd p[2] = {{r->inotify_fd, POLLIN, 0}, {r->stop_fd, POLLIN, 0}};
			/* IN_CREATE comes before the creator wrote the header: a fresh name is looked at again in 250
			 * us */
			struct timespec ts = {tmo / 1000, (long)(tmo % 1000) * 1000000L + (r->fresh ? 250000 : 0)};
			int n = ppoll(p, r->stop_fd >= 0 ? 2 : 1, &ts, NULL);
			if (n > 0 && (p[0].revents & POLLIN))
				wake = ours_created(r);
		} else {
			struct timespec ts = {0, 50 * 1000000};
			nanosleep(&ts, NULL);
		}
		if (atomic_load(&r->stop))
			break;
		now = fl_now_ns(CLOCK_MONOTONIC);
		/* finished sessions leave the table first: a new ring under the same id is then not "known" */
		reap(r);
		int period = r->inotify_fd >= 0 ? RESCAN_MS : RESCAN_POLL_MS;
		if (wake || now - last >= period * 1000000ll || r->young) {
			scan(r);
			last = now;
		}
	}
	urcu_memb_unregister_thread();
	return NULL;
}

/* ---- workers ----------------------------------------------------------------------------- */

/*
 * One pass over every session: each one not claimed by another worker gets a
 * step. Returns the work done: lines written, plus one per session finished
 * (its slot may let a waiting session open at the next pass).
 */
static long pass(struct fl_registry *r, struct fl_drain_worker *w)
{
	long lines = 0;
	struct cds_lfht_iter it;
	struct ent *e;
	urcu_memb_read_lock();
	/* pairs with the exchange in fl_registry_set_root */
	const char *root = atomic_load_explicit(&r->root, memory_order_acquire);
	cds_lfht_for_each_entry(r->ht, &it, e, node)
	{
		int zero = 0;
		/* pairs with the pass_done before cds_lfht_add in on_ring */
		(void)atomic_load_explicit(&epoch, memory_order_acquire);
		if (atomic_load(&e->done) || !atomic_compare_exchange_strong(&e->busy, &zero, 1))
			continue;
		/* re-check under the claim: another worker may have finished it just before */
		if (!atomic_load(&e->done)) {
			int status;
			int n = fl_drain_step(w, e->ds, root, &status);
			if (n > 0)
				lines += n;
			if (status == FL_DRAIN_FINISHED) {
				atomic_store(&e->done, 1);
				lines++;
			}
		}
		atomic_store(&e->busy, 0);
	}
	urcu_memb_read_unlock();
	pass_done(r);
	return lines;
}

/*
 * Drains while there is work. With nothing anywhere, the worker arms the
 * doorbell (sleepers set, full fence), makes one more pass — the Dekker
 * handshake with fl_bell_ring: whatever a producer published before it looked
 * at sleepers is drained by that pass — and sleeps until a ring, a new ring in
 * the table, or the safety timeout.
 */
static void *worker_main(void *arg)
{
	struct fl_registry *r = arg;
	struct fl_drain_worker *w;
	if (fl_drain_worker_new(&w) < 0) {
		fl_drain_log("worker: out of memory");
		return NULL;
	}
	urcu_memb_register_thread();
	pthread_setname_np(pthread_self(), "fl-worker");
	int64_t backoff = BACKOFF_MIN_NS;
	int armed = 0;
	uint32_t word = 0;
	int64_t last_lines = fl_now_ns(CLOCK_MONOTONIC);
	while (!atomic_load(&r->stop)) {
		if (pass(r, w)) {
			backoff = BACKOFF_MIN_NS;
			armed = 0;
			last_lines = fl_now_ns(CLOCK_MONOTONIC);
			continue;
		}
		if (!armed)
			fl_drain_worker_idle(w); /* memory a big session grew goes back before the sleep */
		if (!r->bell) {
			/* no doorbell (refused at start): nap, longer each idle round */
			struct timespec ts = {0, (long)backoff};
			nanosleep(&ts, NULL);
			backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : backoff * 2;
			continue;
		}
		if (!armed) {
			word = fl_bell_arm(r->bell);
			armed = 1;
			continue; /* the pass after arming */
		}
		/* sessions waiting for an fd slot get one at a pass, not by a ring */
		int quiet = fl_now_ns(CLOCK_MONOTONIC) - last_lines >= QUIET_NS && !fl_budget_pressure();
		fl_bell_sleep(r->bell, word, quiet ? SAFETY_IDLE_NS : SAFETY_NS);
		armed = 0;
	}
	urcu_memb_unregister_thread();
	fl_drain_worker_free(w);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int fl_registry_start(struct fl_registry **out, const struct fl_registry_opts *o)
{
	struct fl_registry *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->root = strdup(o->root);
	snprintf(r->prefix, sizeof r->prefix, "%s", o->prefix);
	r->nworkers = o->workers ? o->workers : 1;
	r->workers = calloc(r->nworkers, sizeof *r->workers);
	r->ht = cds_lfht_new_flavor(64, 64, 0, CDS_LFHT_AUTO_RESIZE, &urcu_memb_flavor, NULL);
	if (!r->root || !r->workers || !r->ht) {
		if (r->ht)
			cds_lfht_destroy(r->ht, NULL);
		free(r->root);
		free(r->workers);
		free(r);
		return -ENOMEM;
	}
	urcu_memb_register_thread();
	r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->inotify_fd >= 0 && inotify_add_watch(r->inotify_fd, FL_SHM_DIR, IN_CREATE | IN_MOVED_TO) < 0) {
		fl_drain_log("no inotify on %s (%s): rescanning every %d ms", FL_SHM_DIR, strerror(errno),
			     RESCAN_POLL_MS);
		close(r->inotify_fd);
		r->inotify_fd = -1;
	}
	r->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* without it the poll still ends within RESCAN_MS */
	char bname[128], why[300] = "";
	if (fl_bell_name(bname, sizeof bname, r->prefix) == 0 && !(r->bell = fl_bell_create(bname, why, sizeof why)))
		fl_drain_log("no doorbell (%s): idle workers nap up to %d ms instead", why, BACKOFF_MAX_NS / 1000000);
	scan(r); /* rings that exist now are drained from the first worker round */
	int rc = pthread_create(&r->discovery, NULL, discovery_main, r);
	unsigned started = 0;
	for (; rc == 0 && started < r->nworkers; started++)
		rc = pthread_create(&r->workers[started], NULL, worker_main, r);
	if (rc) {
		fl_drain_log("cannot start threads: %s", strerror(rc));
		r->nworkers = started;
		fl_registry_stop(r);
		return -rc;
	}
	*out = r;
	return 0;
}

int fl_registry_set_root(struct fl_registry *r, const char *root)
{
	char *n = strdup(root);
	if (!n)
		return -ENOMEM;
	char *old = atomic_exchange_explicit(&r->root, n, memory_order_acq_rel);
	urcu_memb_synchronize_rcu();
	free(old);
	return 0;
}

unsigned fl_registry_count(struct fl_registry *r)
{
	return atomic_load(&r->count);
}

int fl_registry_stop(struct fl_registry *r)
{
	atomic_store(&r->stop, 1);
	if (r->bell)
		fl_bell_wake_all(r->bell); /* workers asleep on it see stop now */
	if (r->stop_fd >= 0 && eventfd_write(r->stop_fd, 1) < 0)
		fl_drain_log("cannot wake the discovery thread: %s; it stops within %d ms", strerror(errno), RESCAN_MS);
	if (r->discovery)
		pthread_join(r->discovery, NULL);
	for (unsigned i = 0; i < r->nworkers; i++)
		pthread_join(r->workers[i], NULL);

	/* every thread but this one has stopped: finish the work here */
	int first = 0;
	struct fl_drain_worker *w = NULL;
	if (fl_drain_worker_new(&w) < 0)
		first = -ENOMEM;
	scan(r);
	struct cds_lfht_iter it;
	struct ent *e;
	urcu_memb_read_lock();
	cds_lfht_for_each_entry(r->ht, &it, e, node)
	{
		if (w && !atomic_load(&e->done)) {
			int status;
			int rc = fl_drain_quiesce(w, e->ds, r->root, &status);
			if (rc < 0 && !first)
				first = rc;
		}
		if (cds_lfht_del(r->ht, &e->node) == 0) {
			pass_done(r); /* our last look at e happens before free_ent */
			urcu_memb_call_rcu(&e->rcu, free_ent);
		}
	}
	urcu_memb_read_unlock();
	pass_done(r);
	fl_drain_worker_free(w);
	urcu_memb_barrier();					  /* every free_ent has run */
	(void)atomic_load_explicit(&epoch, memory_order_acquire); /* pairs with free_ent */
	if (r->inotify_fd >= 0)
		close(r->inotify_fd);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	cds_lfht_destroy(r->ht, NULL);
	while (r->rejected) {
		struct rejected *x = r->rejected;
		r->rejected = x->next;
		free(x);
	}
	fl_bell_unmap(r->bell);
	free(r->root);
	free(r->workers);
	free(r);
	urcu_memb_unregister_thread();
	return first;
}

/* SPDX-License-Identifier: MIT */
/* registry.h: the live sessions of fugue-logd — RCU hash table, discovery thread, drain workers. */
#ifndef FL_REGISTRY_H
#define FL_REGISTRY_H

/*
 * Sessions live in an RCU-protected lock-free hash table keyed by session id
 * (liburcu, memb flavour). Only the discovery thread adds and removes; workers
 * walk the table under the read lock, claim a session with a CAS on its busy
 * flag (so exactly one worker drains it at a time) and step it. A finished or
 * removed session is unmapped by call_rcu after a grace period, so a worker
 * that still holds a pointer from its walk never touches freed memory.
 *
 * Discovery: inotify on the shm directory (IN_CREATE, IN_MOVED_TO) wakes a
 * rescan with fl_rings_scan; a periodic rescan catches anything inotify missed
 * and retries rings that could not be attached yet (a ring being created is
 * refused until its header is complete; a name seen in the last 50 ms is
 * retried every 250 us). An attached ring gets its attached word set.
 *
 * Idle workers sleep on the drainer's doorbell (ringbuf/doorbell.h), which
 * producers ring when a lane passes its watermark, with a 100 ms safety timer.
 */

struct fl_registry;

struct fl_registry_opts {
	const char *root;   /* log root (copied) */
	const char *prefix; /* shm name prefix (copied) */
	unsigned workers;   /* drain threads, >= 1 */
};

/* Starts the discovery thread and the workers. The calling thread gets registered with RCU. Returns 0 or -errno. */
int fl_registry_start(struct fl_registry **out, const struct fl_registry_opts *o);

/* Sessions discovered after this call go under root (sessions already open keep their directory). */
int fl_registry_set_root(struct fl_registry *r, const char *root);

/* Sessions in the table now (for the daemon's log). */
unsigned fl_registry_count(struct fl_registry *r);

/*
 * Stops the threads, then (in the caller) rescans once, drains what every ring
 * holds now, writes every checkpoint and manifest, and frees everything after
 * a final rcu_barrier. Returns 0, or the first -errno met while quiescing.
 */
int fl_registry_stop(struct fl_registry *r);

#endif

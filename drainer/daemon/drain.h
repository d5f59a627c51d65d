/* SPDX-License-Identifier: MIT */
/* drain.h: draining one session's ring into its files — decode, order, number, account, checkpoint, end. */
#ifndef FL_DRAIN_H
#define FL_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/*
 * A step (fl_drain_step) reads every lane of one ring up to a batch limit,
 * decodes the records with protobuf-c into a per-worker bump arena, merges the
 * lanes by timestamp, numbers each line with the session's next `seq`, adds
 * `level` lines for level-word generation changes and `dropped` lines where a
 * lane's sequence numbers jump, writes the lines, writes the checkpoint, and
 * only then moves the lane tails. A session ends when its producer closed it
 * or is gone and nothing is left to read: a vanished producer gets an `exit`
 * line with abandoned=true, then the manifest is final and the shm object is
 * unlinked.
 *
 * Concurrency: a worker context belongs to one thread. A session is stepped by
 * one thread at a time (the registry's claim flag guarantees it); different
 * sessions may be stepped in parallel.
 */

struct fl_drain_worker;
struct fl_dsess;

/* Lines the daemon writes about itself (stderr or its log file). Default: stderr. */
void fl_drain_set_logger(void (*fn)(const char *line));
void fl_drain_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int fl_drain_worker_new(struct fl_drain_worker **out);
void fl_drain_worker_free(struct fl_drain_worker *w);

/* Called when the worker found nothing to do: buffers one big batch grew go back to the system. */
void fl_drain_worker_idle(struct fl_drain_worker *w);

/*
 * A session to drain. ring is attached and stays owned by the caller (the
 * registry unmaps it after a grace period); id and shm_name are copied. The
 * files are opened lazily by the first step, under the root given there.
 */
int fl_dsess_new(struct fl_dsess **out, struct fl_ring *ring, const char *id, const char *shm_name);

/* Closes the files (after a final flush); does not checkpoint. NULL is fine. */
void fl_dsess_free(struct fl_dsess *s);

enum fl_drain_status {
	FL_DRAIN_LIVE = 0,     /* more may come */
	FL_DRAIN_FINISHED = 1, /* the session ended, its files are final and its shm object is gone */
};

/*
 * One step of session s: opens its files under root on the first call (resuming
 * from the checkpoint), then up to a few batches. Returns the number of lines
 * written (0 when there was nothing), or -errno when the files could not be
 * written (the session then reopens from its last checkpoint on a later step,
 * so nothing is lost or repeated). *status says whether the session finished.
 */
int fl_drain_step(struct fl_drain_worker *w, struct fl_dsess *s, const char *root, int *status);

/*
 * For shutdown: drains what is in the ring now (a bounded number of batches, so
 * a producer that never stops cannot hold the drainer), then writes the
 * checkpoint, syncs the files and writes the manifest (state stays live unless
 * the session ended). Returns 0 or -errno.
 */
int fl_drain_quiesce(struct fl_drain_worker *w, struct fl_dsess *s, const char *root, int *status);

/* Id of the session. */
const char *fl_dsess_id(const struct fl_dsess *s);

#endif

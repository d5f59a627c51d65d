/* SPDX-License-Identifier: MIT */
/* housekeep.h: fugue-logd's background work off the draining path — the compressor thread and the retention timer. */
#ifndef FL_HOUSEKEEP_H
#define FL_HOUSEKEEP_H

#include <stdint.h>

#include "archive.h"
#include "config.h"

/*
 * One per daemon. Owns:
 *  - the compressor thread (fl_archiver), which sinks get through
 *    fl_housekeep_archiver() to queue segments they rotated;
 *  - a retention thread that runs fl_retention_run over the root every
 *    FL_HOUSEKEEP_PERIOD_S seconds (FUGUE_GC_INTERVAL in seconds overrides it),
 *    after each archive the compressor finishes (so every rotation is followed
 *    by a pass once its segment becomes removable, at most one a second);
 *    with cleanup_on_exit that pass also removes sessions that ended.
 * Neither ever runs on a drain worker; the calls below take a mutex for a few
 * instructions and never wait for compression or file removal.
 */

#define FL_HOUSEKEEP_PERIOD_S 60

struct fl_housekeep;

/*
 * Starts both threads for cfg (root, shm prefix, the rotation and retention
 * keys), and first finishes what a previous run left: in every session
 * directory, temp archives are removed and closed segments that the session's
 * checkpoint covers are queued for compression. Sets the sinks' rotation
 * (fl_sink_set_rotation). Returns 0 or -errno.
 */
int fl_housekeep_start(struct fl_housekeep **out, const struct fl_config *cfg);

/* The compressor, for the sinks. */
struct fl_archiver *fl_housekeep_archiver(struct fl_housekeep *h);

/* New rotation and retention keys (SIGHUP). Safe from any thread. */
void fl_housekeep_reconfigure(struct fl_housekeep *h, const struct fl_config *cfg);

/* Asks for a retention pass soon (after a rotation). Safe from any thread. */
void fl_housekeep_kick(struct fl_housekeep *h);

/*
 * Stops: the compressor finishes the segments already queued (so a clean
 * shutdown leaves no plain closed segments), the retention thread stops after
 * its current pass. NULL is fine.
 */
void fl_housekeep_stop(struct fl_housekeep *h);

#endif

/* SPDX-License-Identifier: MIT */
/* budget.h: fugue-logd's resource budget — open-file slots for sessions, and resource errors that only wait. */
#ifndef FL_BUDGET_H
#define FL_BUDGET_H

/*
 * File descriptors. A mapped ring costs none (fl_ring_attach closes its fd).
 * A session whose files are open costs FL_BUDGET_FDS_PER_SESSION (directory,
 * two active files, the segment index, the checkpoint, the level history).
 * At start fl_budget_init raises the soft RLIMIT_NOFILE to the hard limit and
 * divides what it got, less a reserve for the daemon's own transient fds, into
 * slots: only that many sessions keep their files open at once. A session
 * takes a slot before it opens its files; when none is free it waits (its
 * records stay in its ring) and says so, which makes the holders give their
 * slots back at the end of their next step (their checkpoint is written by
 * then, so a reopen resumes exactly).
 *
 * Resource errors (EMFILE, ENFILE, ENOMEM) are a condition of the drainer, not
 * of a session: they never end a session, never lose a record (the tails do
 * not move), and are logged once when the condition starts and once when it
 * ends, not per session or per attempt.
 *
 * Memory: fl_budget_init also fixes glibc's mmap threshold, so big buffers
 * (a session with 16 MiB records) are mapped and unmapped instead of staying
 * in the heap; fl_budget_trim gives free heap back to the system.
 *
 * Thread safety: every function may be called from any thread.
 */

#define FL_BUDGET_FDS_PER_SESSION 6

/* Raises the soft fd limit, sets the slots and the malloc policy. Returns the slots. */
unsigned fl_budget_init(void);

/* Slots in force (0 before fl_budget_init: then every acquire succeeds). */
unsigned fl_budget_slots(void);

/*
 * Takes a slot for a session about to open its files: 1 when it got one, 0
 * when none is free (*waiting is then set, and counted, until a later call
 * gets one). waiting belongs to the session and starts at 0.
 */
int fl_budget_acquire(int *waiting);

/* Gives a slot back (the session closed its files). */
void fl_budget_release(void);

/* Withdraws a waiting session that no longer needs a slot (it is freed). */
void fl_budget_unwait(int *waiting);

/* 1 while some session waits for a slot: holders then give theirs back after each step. */
int fl_budget_pressure(void);

/* 1 for EMFILE, ENFILE and ENOMEM (as -errno or errno): a condition to wait out. */
int fl_budget_is_resource(int err);

/* Logs the resource condition err (once, until it has been clear for a while), what was being done. */
void fl_budget_note(int err, const char *what);

/* A step succeeded in opening or writing: a noted condition that has lasted is logged as over. */
void fl_budget_ok(void);

/* Returns free heap memory to the system (malloc_trim); cheap to call when idle. */
void fl_budget_trim(void);

#endif

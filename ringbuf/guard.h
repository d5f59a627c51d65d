/* SPDX-License-Identifier: MIT */
/* guard.h: survive a producer that truncates its shm object under a consumer's mapping (SIGBUS guard). */
#ifndef FL_GUARD_H
#define FL_GUARD_H

#include <stddef.h>

/*
 * A producer owns its shm object and can ftruncate it smaller at any time.
 * Touching a mapped page past the new end then raises SIGBUS in whoever reads
 * it: the drainer, or `fugue-log`. A size check (fstat) before each cycle
 * narrows the window but cannot close it, so the guard closes it instead:
 *
 *   fl_guard_install() puts a SIGBUS handler in place (once per process).
 *   fl_ring_attach registers every ring it maps, fl_ring_detach unregisters it.
 *   A SIGBUS inside a registered mapping replaces the whole mapping with
 *   private zero pages (one mmap MAP_FIXED, async-signal-safe as a system call)
 *   and marks it tripped; the faulting load is retried and reads zeros. Zeros
 *   never validate as records (fl_lane_peek finds head == tail or refuses the
 *   lane), so nothing is invented; the consumer checks fl_guard_tripped each
 *   cycle and detaches that ring with a logged reason.
 *   A SIGBUS anywhere else goes to the previous handler (or kills as usual).
 *
 * Without fl_guard_install, registration is a no-op and SIGBUS kills as usual.
 * There is no fixed limit: the table the handler scans grows by doubling (a
 * new table is published with one atomic store, old ones are kept, so a
 * handler running on another thread never reads freed memory). Registration
 * fails only when memory does (-ENOMEM), and fl_ring_attach then refuses the
 * ring rather than map it unguarded.
 *
 * Thread safety: every function may be called from any thread (registration
 * takes a mutex); the handler takes no lock and reads with atomic loads only.
 */

/* Installs the SIGBUS handler; idempotent. Returns 0 or -errno. */
int fl_guard_install(void);

/* Registers [base, base+size); called by fl_ring_attach. 0, or -ENOMEM. No-op (0) without install. */
int fl_guard_add(void *base, size_t size);

/* Unregisters the mapping at base; called by fl_ring_detach before munmap. */
void fl_guard_del(void *base);

/* 1 when a SIGBUS hit the mapping at base (it now reads zeros), else 0. */
int fl_guard_tripped(const void *base);

/* Mappings registered now (for tests and the daemon's log). */
size_t fl_guard_count(void);

#endif

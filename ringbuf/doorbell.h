/* SPDX-License-Identifier: MIT */
/* doorbell.h: the drainer's doorbell — one shm futex page per shm prefix that producers ring to wake it. */
#ifndef FL_DOORBELL_H
#define FL_DOORBELL_H

/*
 * One doorbell per drainer (per shm prefix): the object "/<prefix>@doorbell",
 * mode 0600, created by fugue-logd and never removed, so producers that mapped
 * it stay connected across drainer restarts. '@' is not a session-id
 * character, so the name can never be a ring's.
 *
 * Protocol (docs/drainer.md, "Waking"):
 *  - A drain worker with nothing to do reads word, sets sleepers, issues a full
 *    fence, drains every ring once more, and only when that found nothing does
 *    FUTEX_WAIT on word (with a safety timeout).
 *  - A producer whose lane holds at least FL_BELL_WATERMARK bytes issues a full
 *    fence, and when sleepers is set, clears it with an exchange; the one that
 *    cleared it bumps word and FUTEX_WAKEs. That is one system call per sleep
 *    of the drainer, whatever the number of producers.
 * The two fences make it a Dekker handshake: either the producer sees
 * sleepers, or the worker's last pass sees the producer's head.
 */

#include <stdint.h>

#include "ring.h"

#define FL_BELL_MAGIC 0x4c4c454245554755ULL /* "UGUEBELL" */
#define FL_BELL_VERSION 1u
#define FL_BELL_SUFFIX "@doorbell"

/* A lane rings at 1/8 of its size, and looks again every 1/32 while it stays above. */
#define FL_BELL_WATERMARK(lane_size) ((lane_size) / 8)
#define FL_BELL_STEP(lane_size) ((lane_size) / 32)

struct fl_bell {
	uint64_t magic;
	uint32_t version;
	uint32_t size;					  /* sizeof(struct fl_bell) */
	_Alignas(FL_CACHELINE) _Atomic uint32_t sleepers; /* a worker sleeps (or is about to) */
	_Atomic uint32_t word;				  /* futex word: bumped by each ring */
	_Atomic uint64_t rings;				  /* rings so far, for ls and the bench */
	uint8_t pad[4096 - 2 * FL_CACHELINE];
};

/* "/<prefix>@doorbell"; prefix NULL means fl_ring_prefix(). */
int fl_bell_name(char *out, size_t cap, const char *prefix);

/*
 * Drainer: opens the doorbell, creating it when missing. An object of the
 * wrong owner, mode, size or layout is refused with a reason (the drainer then
 * runs on its timer alone). Returns the mapping or NULL.
 */
struct fl_bell *fl_bell_create(const char *name, char *why, size_t whylen);

/*
 * Producer: maps an existing doorbell, only when it is a regular object of
 * this euid with no group or other bits and the right layout. NULL otherwise.
 */
struct fl_bell *fl_bell_open(const char *name);

void fl_bell_unmap(struct fl_bell *b);

/* Rings when a worker sleeps: the exchange lets exactly one ringer make the system call. */
void fl_bell_ring(struct fl_bell *b);

/*
 * Drainer worker: the sleep, in two halves around the worker's last look.
 * fl_bell_arm returns the word to wait on, after setting sleepers and a full
 * fence; fl_bell_sleep waits for a ring or timeout_ns. Returns 1 when woken by
 * a ring (or the word moved), 0 on timeout.
 */
uint32_t fl_bell_arm(struct fl_bell *b);
int fl_bell_sleep(struct fl_bell *b, uint32_t word, uint64_t timeout_ns);

/* Drainer: wakes its own workers (a new ring was attached), without waiting for sleepers. */
void fl_bell_wake_all(struct fl_bell *b);

#endif

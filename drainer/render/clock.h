/* SPDX-License-Identifier: MIT */
/* clock.h: turns record timestamps into CLOCK_REALTIME ns — TSC rings through the drainer's own calibration. */
#ifndef FL_CLOCK_H
#define FL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/*
 * A ring with clock FL_RING_CLOCK_TSC stamps records with raw TSC ticks (one
 * unfenced rdtsc in the producer). The drainer converts them with two things
 * it trusts:
 *
 *  - a rate, ticks to ns, that it measures itself against CLOCK_MONOTONIC over
 *    its own lifetime: a 5 ms first estimate, then refined at every anchor so
 *    its error shrinks as 1/lifetime. MONOTONIC, not MONOTONIC_RAW: REALTIME
 *    runs at MONOTONIC's NTP-disciplined rate (they differ by an offset that
 *    only a clock step changes), and REALTIME is what the lines carry;
 *  - anchors, (TSC, CLOCK_REALTIME) pairs read together: the producer's, taken
 *    at session open (in the ring header), and the drainer's own, re-read
 *    whenever a record is newer than it. Each record is converted from the
 *    anchor nearest to it: realtime = anchor_rt + (tsc - anchor_tsc) * rate.
 *
 * Why nearest-anchor and not one anchor per session: the conversion error is
 * the distance to the anchor times the rate error plus whatever NTP slewed
 * REALTIME meanwhile (up to 500 ppm, 0.5 ms per second). With a live drainer a
 * record is converted within milliseconds of a fresh anchor, so it lands
 * within a microsecond of the CLOCK_REALTIME of its emit, slews and steps
 * included; a session-open anchor alone would drift by the whole session's
 * slew. Records that waited out a drainer outage are converted from whichever
 * end is nearer. A step of REALTIME (settimeofday, NTP step) between records
 * could make the mapping go back: each lane's converted times are clamped to
 * be non-decreasing, so a lane's lines keep their emit order.
 */

/* Ticks to ns as ticks * mult >> shift, overflow-safe (128-bit product), saturating at UINT64_MAX. */
static inline uint64_t fl_clock_scale(uint64_t ticks, uint64_t mult, unsigned shift)
{
	unsigned __int128 p = (unsigned __int128)ticks * mult >> shift;
	return p > UINT64_MAX ? UINT64_MAX : (uint64_t)p;
}

/* mult for shift such that ns == ticks * mult >> shift; 0 when ticks is 0 or the rate overflows. */
uint64_t fl_clock_mult(uint64_t ns, uint64_t ticks, unsigned shift);

/*
 * anchor_rt + (tsc - anchor_tsc) in ns, both directions, saturating at the
 * int64 range. Pure; the unit tests check it against exact arithmetic.
 */
int64_t fl_clock_from_anchor(uint64_t tsc, uint64_t anchor_tsc, int64_t anchor_rt, uint64_t mult, unsigned shift);

#define FL_CLOCK_SHIFT 48 /* mult = ns per tick << 48: exact to 1e-14, and up to 100 ns per tick fits 64 bits */

/* The drainer's calibration: one per worker thread, {0} before its first use. */
struct fl_clock_cal {
	int state;	   /* 0 not measured yet, 1 ready, -1 this machine's TSC cannot be trusted */
	uint64_t base_tsc; /* the calibration baseline: (TSC, CLOCK_MONOTONIC) at first use */
	int64_t base_mono;
	uint64_t mult;	     /* ticks to ns at FL_CLOCK_SHIFT */
	uint64_t anchor_tsc; /* the freshest (TSC, CLOCK_REALTIME) pair */
	int64_t anchor_rt;
	uint64_t refreshes; /* anchors taken, for tests and stats */
	char why[160];	    /* when state is -1 */
};

/* One ring's clock as the drainer saw it at attach: trusted copies, the header may change later. */
struct fl_clock_sess {
	uint32_t clock;	 /* the header's clock value */
	int have_anchor; /* the producer's anchor passed its sanity check */
	uint64_t anchor_tsc;
	int64_t anchor_rt;
	int64_t last[FL_RING_MAX_LANES]; /* per lane: the last converted time, to keep lanes ordered */
};

/* Copies the clock and anchor of an attached ring's header into cs. */
void fl_clock_sess_init(struct fl_clock_sess *cs, const struct fl_ring_hdr *h);

/*
 * 0 when records of this ring can be converted, measuring the rate first when
 * this is the first TSC ring of cal (about 5 ms, once). -EPROTO, with a one-line
 * reason in why, for a clock value this drainer does not know or a TSC it
 * cannot trust: the caller quarantines the ring's lanes rather than print ticks
 * as times. Caller: the thread that owns cal.
 */
int fl_clock_check(struct fl_clock_cal *cal, const struct fl_clock_sess *cs, char *why, size_t whylen);

/*
 * The CLOCK_REALTIME ns of a record of lane whose ts_ns field is raw, after
 * fl_clock_check said 0. REALTIME rings pass through unchanged; TSC rings are
 * converted from the nearest anchor (re-anchoring when the record is newer
 * than cal's anchor) and clamped to the lane's previous result.
 */
uint64_t fl_clock_convert(struct fl_clock_cal *cal, struct fl_clock_sess *cs, uint32_t lane, uint64_t raw);

/* Takes a fresh anchor and refines the rate. Exposed for tests. */
void fl_clock_refresh(struct fl_clock_cal *cal);

#endif

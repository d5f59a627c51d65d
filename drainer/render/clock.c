/* SPDX-License-Identifier: MIT */
/* clock.c: TSC-to-CLOCK_REALTIME conversion for fugue-logd — calibration, anchors, per-lane ordering. */
#define _GNU_SOURCE
#include "clock.h"
#include "why.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#define FIRST_NS 5000000ll /* the first rate estimate's baseline */
#define REANCHOR_NS 10000  /* a record newer than an anchor this young is converted from it */
#define MIN_HZ 10000000.0  /* a measured TSC rate outside these is not believed */
#define MAX_HZ 100000000000.0
#define ANCHOR_SANE_NS 1000000000 /* the producer's anchor must agree with its start time this well */

uint64_t fl_clock_mult(uint64_t ns, uint64_t ticks, unsigned shift)
{
	if (!ticks || shift > 63)
		return 0;
	unsigned __int128 m = ((unsigned __int128)ns << shift) / ticks;
	return m > UINT64_MAX ? 0 : (uint64_t)m;
}

/* fl_clock_from_anchor, inlined into fl_clock_convert: it runs once per record. */
static inline int64_t from_anchor(uint64_t tsc, uint64_t anchor_tsc, int64_t anchor_rt, uint64_t mult, unsigned shift)
{
	if (tsc >= anchor_tsc) {
		uint64_t d = fl_clock_scale(tsc - anchor_tsc, mult, shift);
		/* anchor_rt + d <= INT64_MAX  <=>  d <= INT64_MAX - anchor_rt, which fits uint64 for any anchor_rt */
		uint64_t room = (uint64_t)INT64_MAX - (uint64_t)anchor_rt;
		return d > room ? INT64_MAX : (int64_t)((uint64_t)anchor_rt + d);
	}
	uint64_t d = fl_clock_scale(anchor_tsc - tsc, mult, shift);
	/* anchor_rt - d >= INT64_MIN  <=>  d <= anchor_rt - INT64_MIN, computed in uint64 */
	uint64_t room = (uint64_t)anchor_rt - (uint64_t)INT64_MIN;
	return d > room ? INT64_MIN : (int64_t)((uint64_t)anchor_rt - d);
}

int64_t fl_clock_from_anchor(uint64_t tsc, uint64_t anchor_tsc, int64_t anchor_rt, uint64_t mult, unsigned shift)
{
	return from_anchor(tsc, anchor_tsc, anchor_rt, mult, shift);
}

/* The tightest of a few rdtsc / clock_gettime(c) / rdtsc brackets; TSC at its middle. */
static void pair(clockid_t c, uint64_t *tsc, int64_t *ns)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		struct timespec ts;
		uint64_t t0 = fl_rdtsc();
		clock_gettime(c, &ts);
		uint64_t t1 = fl_rdtsc();
		if (t1 - t0 < best) {
			best = t1 - t0;
			*tsc = t0 + (t1 - t0) / 2;
			*ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		}
	}
}

void fl_clock_refresh(struct fl_clock_cal *cal)
{
	uint64_t t = 0;
	int64_t m = 0;
	pair(CLOCK_MONOTONIC, &t, &m);
	if (t > cal->base_tsc && m - cal->base_mono >= FIRST_NS) {
		uint64_t mult = fl_clock_mult((uint64_t)(m - cal->base_mono), t - cal->base_tsc, FL_CLOCK_SHIFT);
		if (mult)
			cal->mult = mult;
	}
	pair(CLOCK_REALTIME, &cal->anchor_tsc, &cal->anchor_rt);
	cal->refreshes++;
}

static void calibrate(struct fl_clock_cal *cal)
{
	if (!fl_tsc_usable()) {
		cal->state = -1;
		fl_why(cal->why, sizeof cal->why,
		       "this machine's TSC is not constant_tsc and nonstop_tsc (/proc/cpuinfo), so its ticks have no "
		       "fixed rate");
		return;
	}
	pair(CLOCK_MONOTONIC, &cal->base_tsc, &cal->base_mono);
	struct timespec d = {0, FIRST_NS};
	while (nanosleep(&d, &d) < 0 && errno == EINTR)
		;
	fl_clock_refresh(cal);
	double hz = cal->mult ? (double)(1ull << FL_CLOCK_SHIFT) * 1e9 / (double)cal->mult : 0;
	if (hz < MIN_HZ || hz > MAX_HZ) {
		cal->state = -1;
		fl_why(cal->why, sizeof cal->why,
		       "the TSC measured %.0f Hz against CLOCK_MONOTONIC, which is not believable", hz);
		return;
	}
	cal->state = 1;
}

void fl_clock_sess_init(struct fl_clock_sess *cs, const struct fl_ring_hdr *h)
{
	*cs = (struct fl_clock_sess){0};
	cs->clock = h->clock;
	cs->anchor_tsc = h->anchor_tsc;
	cs->anchor_rt = h->anchor_realtime_ns;
	/* both are the producer's word: the difference in 128 bits, so INT64_MIN - INT64_MAX cannot overflow */
	__int128 off = (__int128)cs->anchor_rt - (__int128)h->start_realtime_ns;
	/* untrusted: an anchor that disagrees with the start time is ignored, the drainer's own serves */
	cs->have_anchor =
	    cs->clock == FL_RING_CLOCK_TSC && cs->anchor_tsc && off > -ANCHOR_SANE_NS && off < ANCHOR_SANE_NS;
}

int fl_clock_check(struct fl_clock_cal *cal, const struct fl_clock_sess *cs, char *why, size_t whylen)
{
	if (cs->clock == FL_RING_CLOCK_REALTIME)
		return 0;
	if (cs->clock != FL_RING_CLOCK_TSC) {
		fl_why(why, whylen,
		       "ring clock %u is unknown to this fugue-logd (it reads 0, CLOCK_REALTIME ns, and 1, TSC ticks); "
		       "its records are not read: run a fugue-logd as new as the producer",
		       cs->clock);
		return -EPROTO;
	}
	if (!cal->state)
		calibrate(cal);
	if (cal->state < 0) {
		fl_why(why, whylen,
		       "ring clock 1 (TSC ticks) cannot be converted: %s; run the producer with "
		       "FUGUE_CLOCK=realtime",
		       cal->why);
		return -EPROTO;
	}
	return 0;
}

static uint64_t dist(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

uint64_t fl_clock_convert(struct fl_clock_cal *cal, struct fl_clock_sess *cs, uint32_t lane, uint64_t raw)
{
	if (cs->clock != FL_RING_CLOCK_TSC || cal->state != 1)
		return raw;
	/*
	 * A record newer than the anchor: take a fresh one, which is then newer than
	 * every record already published. Not again within REANCHOR_NS: a record
	 * "from the future" (skewed or forged) must not make every record pay.
	 */
	if (raw > cal->anchor_tsc &&
	    fl_clock_scale(fl_rdtsc() - cal->anchor_tsc, cal->mult, FL_CLOCK_SHIFT) > REANCHOR_NS)
		fl_clock_refresh(cal);
	int64_t rt;
	if (cs->have_anchor && dist(raw, cs->anchor_tsc) < dist(raw, cal->anchor_tsc))
		rt = from_anchor(raw, cs->anchor_tsc, cs->anchor_rt, cal->mult, FL_CLOCK_SHIFT);
	else
		rt = from_anchor(raw, cal->anchor_tsc, cal->anchor_rt, cal->mult, FL_CLOCK_SHIFT);
	uint64_t out = rt < 0 ? 0 : (uint64_t)rt;
	if (lane < FL_RING_MAX_LANES) {
		if (out < (uint64_t)cs->last[lane])
			out = (uint64_t)cs->last[lane];
		cs->last[lane] = (int64_t)(out > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : out);
	}
	return out;
}

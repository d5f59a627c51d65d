/* SPDX-License-Identifier: MIT */
/* fuzz_ring: the fuzz input is a whole hostile shm image; the consumer must validate it and drain it safely. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fugue_event.pb-c.h"
#include "ring.h"

#define MAX_BATCH 16

/* A broken invariant is a finding: abort so libFuzzer keeps the input. */
#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_ring: invariant broken: %s (line %d)\n", #c, __LINE__);                  \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

static void drain_lane(struct fl_ring *r, uint32_t lane, unsigned max, uint8_t *img, uint64_t size)
{
	const uint8_t *lo = r->data + (uint64_t)lane * r->lane_size;
	const uint8_t *hi = lo + r->lane_size;
	CHECK(lo >= img && hi <= img + size);
	/*
	 * Nobody moves head here, so everything between tail and head is consumed
	 * after at most lane_size / 16 records plus pads: a loop that runs longer
	 * is the endless loop the drainer must never enter.
	 */
	uint64_t bound = r->lane_size / FL_REC_HDR + 4;
	for (uint64_t it = 0;; it++) {
		CHECK(it <= bound);
		struct fl_rec recs[MAX_BATCH];
		uint64_t tail = atomic_load_explicit(&r->lanes[lane].tail, memory_order_relaxed);
		uint64_t next = ~0ull;
		char why[256] = "";
		int n = fl_lane_peek(r, lane, recs, max, &next, why, sizeof why);
		if (n < 0) {
			CHECK(n == -EBADMSG);
			CHECK(why[0] != 0); /* quarantine needs a reason */
			CHECK(memchr(why, 0, sizeof why));
			return;
		}
		CHECK((unsigned)n <= max);
		CHECK(next - tail <= r->lane_size);
		for (int i = 0; i < n; i++) {
			CHECK(recs[i].data >= lo + FL_REC_HDR);
			CHECK(recs[i].data + recs[i].len <= hi);
			CHECK(recs[i].len <= r->lane_size / 4);
			/* what the drainer does next with the bytes: decode them (bounded by len) */
			Fugue__Event *e = fugue__event__unpack(NULL, recs[i].len, recs[i].data);
			if (e)
				fugue__event__free_unpacked(e, NULL);
		}
		if (next == tail) {
			CHECK(n == 0);
			return;
		}
		fl_lane_release(r, lane, next);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* a real mapping is page-aligned; the image gets at least cache-line alignment */
	size_t cap = (len + 63) & ~(size_t)63;
	uint8_t *img = aligned_alloc(64, cap ? cap : 64);
	if (!img)
		return 0;
	memcpy(img, data, len);

	struct fl_ring r;
	memset(&r, 0, sizeof r);
	char why[256] = "";
	int rc = fl_ring_validate(&r, img, len, why, sizeof why);
	if (rc < 0) {
		CHECK(rc == -EBADF || rc == -EPROTO);
		CHECK(why[0] != 0); /* every refusal is logged with a reason */
	} else {
		CHECK(r.lane_count >= 1 && r.lane_count <= FL_RING_MAX_LANES);
		CHECK(r.map_size == len);
		CHECK((uint8_t *)r.lanes + r.lane_count * sizeof *r.lanes <= img + len);
		CHECK(r.data + (uint64_t)r.lane_count * r.lane_size <= img + len);
		/* the batch size varies with the input so partial batches are explored too */
		unsigned max = 1 + (len ? data[len - 1] : 0) % MAX_BATCH;
		(void)fl_ring_level_word(&r);
		for (uint32_t l = 0; l < r.lane_count; l++) {
			uint64_t seq, head, drops;
			fl_lane_snapshot(&r, l, &seq, &head, &drops);
			drain_lane(&r, l, max, img, len);
		}
	}
	free(img);
	return 0;
}

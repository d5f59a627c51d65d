/* SPDX-License-Identifier: MIT */
/* test_ring: the shared-memory ring alone — layout, publish/consume, wrap, full lanes, validation. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl_test.h"

#include "ring.h"

static char name[160];

/* A fresh ring named after the test's own FUGUE_SHM_PREFIX, with the geometry asked for. */
static struct fl_ring *make_ring(uint32_t lanes, uint64_t lane_size)
{
	static struct fl_ring r;
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, "ringtest"), 0);
	fl_ring_unlink(name);
	struct fl_ring_params p = {.id = "ringtest", .lane_count = lanes, .lane_size = lane_size, .level = 2};
	assert_int_equal(fl_ring_create(&r, name, &p), 0);
	return &r;
}

static int setup(void **state)
{
	*state = make_ring(2, 4096);
	return 0;
}

static int teardown(void **state)
{
	fl_ring_detach(*state);
	assert_int_equal(fl_ring_unlink(name), 0);
	return 0;
}

/* Payload byte i of the record with sequence number seq: checkable without keeping a copy. */
static uint8_t pattern(uint64_t seq, uint32_t lane, uint32_t i)
{
	return (uint8_t)(seq * 131 + lane * 17 + i * 7 + (i >> 8));
}

static void fill(uint8_t *p, uint64_t seq, uint32_t lane, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = pattern(seq, lane, i);
}

static void check(const struct fl_rec *rec, uint64_t seq, uint32_t lane, uint32_t len)
{
	assert_int_equal(rec->seq, seq);
	assert_int_equal(rec->len, len);
	for (uint32_t i = 0; i < len; i++)
		if (rec->data[i] != pattern(seq, lane, i))
			fail_msg("lane %u seq %llu len %u: byte %u is %#x, want %#x", lane, (unsigned long long)seq,
				 len, i, rec->data[i], pattern(seq, lane, i));
}

static int publish_seq(struct fl_ring *r, uint32_t lane, uint32_t len)
{
	struct fl_reservation res = {0};
	int rc = fl_lane_reserve(r, lane, len, &res);
	if (rc < 0)
		return rc;
	fill(res.payload, res.seq, lane, len);
	fl_lane_commit(r, &res);
	return 0;
}

static void publish(struct fl_ring *r, uint32_t lane, const void *data, uint32_t len)
{
	struct fl_reservation res = {0};
	assert_int_equal(fl_lane_reserve(r, lane, len, &res), 0);
	memcpy(res.payload, data, len);
	fl_lane_commit(r, &res);
}

static void test_publish_consume(void **state)
{
	struct fl_ring *r = *state;
	publish(r, 0, "hello", 5);
	publish(r, 1, "world!", 6);
	struct fl_rec recs[8];
	uint64_t nt;
	char why[256];
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), 1);
	assert_int_equal(recs[0].len, 5);
	assert_memory_equal(recs[0].data, "hello", 5);
	assert_int_equal(recs[0].seq, 0);
	assert_int_equal(nt, fl_rec_space(5));
	fl_lane_release(r, 0, nt);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), 0);
	assert_int_equal(fl_lane_peek(r, 1, recs, 8, &nt, why, sizeof why), 1);
	assert_memory_equal(recs[0].data, "world!", 6);
	assert_int_equal(recs[0].seq, 0);
}

static void test_attach_sees_same(void **state)
{
	struct fl_ring *r = *state;
	struct fl_ring b;
	char why[256];
	assert_int_equal(fl_ring_attach(&b, name, why, sizeof why), 0);
	assert_string_equal(b.hdr->id, "ringtest");
	assert_int_equal(b.lane_count, 2);
	assert_int_equal(b.lane_size, 4096);
	assert_int_equal(b.hdr->pid, (uint32_t)getpid());
	assert_int_equal(fl_ring_owner_alive(&b), 1);
	/* a record published through one mapping is read through the other */
	publish(r, 1, "abc", 3);
	struct fl_rec rec;
	uint64_t nt;
	assert_int_equal(fl_lane_peek(&b, 1, &rec, 1, &nt, why, sizeof why), 1);
	assert_memory_equal(rec.data, "abc", 3);
	fl_lane_release(&b, 1, nt);
	assert_int_equal(fl_load_acquire(&r->lanes[1].tail), nt);
	fl_ring_detach(&b);
}

/* Every change bumps the generation, including a flip back to the same value. */
static void test_level_generation(void **state)
{
	struct fl_ring *r = *state;
	struct fl_ring b;
	char why[256];
	assert_int_equal(fl_ring_level_word(r), 2);
	assert_int_equal(fl_ring_attach(&b, name, why, sizeof why), 0);
	uint64_t old = fl_ring_level_set(&b, 4);
	assert_int_equal(old, 2);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(r)), 4);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(r)), 1);
	fl_ring_level_set(r, 2);
	fl_ring_level_set(&b, 2);
	assert_int_equal(FL_LEVEL_VALUE(fl_ring_level_word(&b)), 2);
	assert_int_equal(FL_LEVEL_GEN(fl_ring_level_word(&b)), 3);
	fl_ring_detach(&b);
}

static void test_bad_magic_refused(void **state)
{
	(void)state;
	_Alignas(64) static uint64_t img[1024];
	struct fl_ring r;
	char why[256] = "";
	assert_int_equal(fl_ring_validate(&r, img, sizeof img, why, sizeof why), -EBADF);
	assert_non_null(strstr(why, "magic"));
}

/* A header that lies about its geometry is refused before anything trusts it. */
static void test_bad_header_refused(void **state)
{
	struct fl_ring *r = *state;
	uint64_t size = r->map_size;
	uint8_t *img = aligned_alloc(FL_CACHELINE, size); /* validate refuses misaligned images */
	assert_non_null(img);
	struct fl_ring v;
	char why[256];

	memcpy(img, r->hdr, size);
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), 0);
	assert_int_equal(v.lane_count, 2);

	((struct fl_ring_hdr *)img)->version = 99;
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "version"));

	memcpy(img, r->hdr, size);
	((struct fl_ring_hdr *)img)->lane_size = 3000;
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "geometry"));

	memcpy(img, r->hdr, size);
	((struct fl_ring_hdr *)img)->total_size += 4096;
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "size mismatch"));

	memcpy(img, r->hdr, size);
	assert_int_equal(fl_ring_validate(&v, img, size - 8, why, sizeof why), -EPROTO); /* mapping too short */
	assert_non_null(strstr(why, "size mismatch"));

	memcpy(img, r->hdr, size);
	((struct fl_ring_hdr *)img)->data_off += 8;
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "offsets"));

	memcpy(img, r->hdr, size);
	memset(((struct fl_ring_hdr *)img)->id, 'x', sizeof r->hdr->id);
	assert_int_equal(fl_ring_validate(&v, img, size, why, sizeof why), -EPROTO);
	assert_non_null(strstr(why, "NUL"));

	assert_int_equal(fl_ring_validate(&v, img, 100, why, sizeof why), -EBADF);
	free(img);
}

/*
 * Every record size from 1 byte to the largest a lane takes, many times around
 * a small lane: fill until the reserve says full, then read everything back and
 * check bytes and sequence numbers. Whether the lane is full is also computed
 * here from the layout rules, so a reserve that refuses too early or accepts
 * too much fails the test.
 */
static void wrap_all_sizes(uint64_t lane_size)
{
	struct fl_ring *r = make_ring(2, lane_size);
	uint32_t max = fl_ring_max_record(r);
	uint64_t seq = 0, wraps_before = 0;
	struct fl_rec *recs = calloc(lane_size / FL_REC_HDR, sizeof *recs);
	char why[256];
	assert_non_null(recs);
	assert_int_equal(max, lane_size / 4 - FL_REC_HDR);
	/* a different pattern in lane 1 that must survive lane 0's traffic untouched */
	assert_int_equal(publish_seq(r, 1, 100), 0);

	for (uint32_t len = 1; len <= max; len++) {
		uint64_t tail = fl_load_acquire(&r->lanes[0].tail);
		uint64_t head = fl_load_acquire(&r->lanes[0].head);
		assert_int_equal(head, tail); /* drained */
		unsigned n = 0;
		for (;;) {
			uint64_t off = head & (lane_size - 1);
			uint64_t need = fl_rec_space(len);
			uint64_t skip = off + need > lane_size ? lane_size - off : 0;
			int fits = head + skip + need - tail <= lane_size;
			int rc = publish_seq(r, 0, len);
			assert_int_equal(rc, fits ? 0 : -ENOBUFS);
			if (rc < 0)
				break;
			head += skip + need;
			wraps_before += skip != 0;
			n++;
		}
		assert_int_equal(fl_load_acquire(&r->lanes[0].head), head);
		/* read back in batches of up to 3 so tails land everywhere */
		unsigned got = 0;
		while (got < n) {
			uint64_t nt;
			int k = fl_lane_peek(r, 0, recs, 3, &nt, why, sizeof why);
			if (k <= 0)
				fail_msg("len %u: peek returned %d after %u of %u: %s", len, k, got, n, why);
			for (int i = 0; i < k; i++)
				check(&recs[i], seq++, 0, len);
			got += (unsigned)k;
			fl_lane_release(r, 0, nt);
		}
		uint64_t nt;
		assert_int_equal(fl_lane_peek(r, 0, recs, 3, &nt, why, sizeof why), 0);
		assert_int_equal(fl_load_acquire(&r->lanes[0].tail), head);
	}
	/* the lane went around many times and hit both kinds of wrap */
	assert_true(fl_load_acquire(&r->lanes[0].head) / lane_size > 100);
	assert_true(wraps_before > 100);
	assert_int_equal(fl_load_acquire(&r->lanes[0].seq), seq);
	assert_int_equal(fl_load_acquire(&r->lanes[0].drops), 0);

	struct fl_rec one;
	uint64_t nt;
	assert_int_equal(fl_lane_peek(r, 1, &one, 1, &nt, why, sizeof why), 1);
	check(&one, 0, 1, 100);
	free(recs);
	fl_ring_detach(r);
	assert_int_equal(fl_ring_unlink(name), 0);
}

static void test_wrap_every_size_4k(void **state)
{
	(void)state;
	wrap_all_sizes(4096);
}

static void test_wrap_every_size_8k(void **state)
{
	(void)state;
	wrap_all_sizes(8192);
}

/* Producer and consumer interleaved at random: the consumer reads part of what is there. */
static void test_wrap_interleaved(void **state)
{
	(void)state;
	unsigned seed = (unsigned)getpid();
	printf("seed %u\n", seed);
	struct fl_ring *r = make_ring(1, 4096);
	uint32_t max = fl_ring_max_record(r);
	uint64_t wseq = 0, rseq = 0;
	uint32_t lens[4096];
	char why[256];
	for (int round = 0; round < 20000; round++) {
		int writes = rand_r(&seed) % 6;
		for (int i = 0; i < writes; i++) {
			uint32_t len =
			    rand_r(&seed) % 2 ? 1u + (uint32_t)rand_r(&seed) % 64u : 1u + (uint32_t)rand_r(&seed) % max;
			if (publish_seq(r, 0, len) == 0)
				lens[wseq++ % 4096] = len;
		}
		struct fl_rec recs[4];
		uint64_t nt;
		int k = fl_lane_peek(r, 0, recs, 1 + rand_r(&seed) % 4, &nt, why, sizeof why);
		assert_true(k >= 0);
		for (int i = 0; i < k; i++, rseq++)
			check(&recs[i], rseq, 0, lens[rseq % 4096]);
		fl_lane_release(r, 0, nt);
	}
	assert_true(wseq - rseq < 4096 / 16);
	assert_true(fl_load_acquire(&r->lanes[0].head) / 4096 > 100);
	fl_ring_detach(r);
	assert_int_equal(fl_ring_unlink(name), 0);
}

/* A full lane: reserve says -ENOBUFS; drops are counted and leave a gap in the sequence. */
static void test_full_lane_drops(void **state)
{
	struct fl_ring *r = *state;
	unsigned n = 0;
	while (publish_seq(r, 0, 100) == 0)
		n++;
	assert_int_equal(n, 4096 / fl_rec_space(100));
	for (int i = 0; i < 5; i++) {
		struct fl_reservation res;
		assert_int_equal(fl_lane_reserve(r, 0, 8, &res), -ENOBUFS);
		assert_int_equal(fl_lane_drop(r, 0), n + (unsigned)i);
	}
	uint64_t seq, head, drops;
	fl_lane_snapshot(r, 0, &seq, &head, &drops);
	assert_int_equal(seq, n + 5);
	assert_int_equal(drops, 5);
	assert_int_equal(head, n * fl_rec_space(100));

	struct fl_rec recs[64];
	uint64_t nt;
	char why[256];
	assert_int_equal(fl_lane_peek(r, 0, recs, 64, &nt, why, sizeof why), (int)n);
	for (unsigned i = 0; i < n; i++)
		check(&recs[i], i, 0, 100);
	/* releasing only part of the batch makes exactly that much room */
	fl_lane_release(r, 0, 2 * fl_rec_space(100));
	assert_int_equal(publish_seq(r, 0, 100), 0);
	assert_int_equal(publish_seq(r, 0, 100), 0);
	assert_int_equal(publish_seq(r, 0, 100), -ENOBUFS);
	fl_lane_release(r, 0, nt);
	assert_int_equal(fl_lane_peek(r, 0, recs, 64, &nt, why, sizeof why), 2);
	check(&recs[0], n + 5, 0, 100); /* the gap of five shows */
	check(&recs[1], n + 6, 0, 100);
}

/* Every way a corrupt lane can lie is refused with -EBADMSG and a reason. */
static void test_peek_rejects_corruption(void **state)
{
	struct fl_ring *r = *state;
	struct fl_lane_ctl *c = &r->lanes[0];
	uint8_t *lane = r->data;
	struct fl_rec recs[8];
	uint64_t nt;
	char why[256];
	struct fl_rec_hdr h;

	publish(r, 0, "0123456789", 10);
	publish(r, 0, "abc", 3);

	memcpy(&h, lane, sizeof h);
	h.type = 0x1234;
	memcpy(lane, &h, sizeof h);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "unknown type"));

	h.type = FL_REC_DATA;
	h.len = 4096;
	memcpy(lane, &h, sizeof h);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "beyond"));

	h.len = 48; /* inside the lane but past the head */
	memcpy(lane, &h, sizeof h);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "beyond"));

	h.len = 10;
	memcpy(lane, &h, sizeof h);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), 2);

	uint64_t head = fl_load_relaxed(&c->head);
	fl_store_relaxed(&c->head, head + 4);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "unaligned"));

	fl_store_relaxed(&c->head, head + 8192);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "lane holds"));

	/* a pad that does not reach the end of the lane */
	fl_store_relaxed(&c->head, head);
	struct fl_rec_hdr first;
	memcpy(&first, lane, sizeof first);
	h = (struct fl_rec_hdr){100, FL_REC_PAD, 0, 0};
	memcpy(lane, &h, sizeof h);
	assert_int_equal(fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "pad record"));
	/* nothing moved the tail */
	assert_int_equal(fl_load_relaxed(&c->tail), 0);

	/* a head that stops inside the next header, after two sound records */
	memcpy(lane, &first, sizeof first);
	fl_store_relaxed(&c->head, head + 8);
	int k = fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why);
	if (k == 2) { /* the sound records before the damage may come out first */
		assert_memory_equal(recs[1].data, "abc", 3);
		assert_int_equal(nt, head);
		fl_lane_release(r, 0, nt);
		k = fl_lane_peek(r, 0, recs, 8, &nt, why, sizeof why);
	}
	assert_int_equal(k, -EBADMSG);
	assert_non_null(strstr(why, "inside a record header"));
}

struct releaser {
	struct fl_ring *r;
	_Atomic int go;
	uint64_t released;
};

static void *release_later(void *arg)
{
	struct releaser *x = arg;
	while (!atomic_load(&x->go))
		sched_yield();
	struct fl_rec recs[64];
	uint64_t nt;
	char why[256];
	int k = fl_lane_peek(x->r, 0, recs, 64, &nt, why, sizeof why);
	x->released = (uint64_t)k;
	fl_lane_release(x->r, 0, nt);
	return NULL;
}

/* Blocking-mode wait: times out with nobody draining, returns once a consumer releases. */
static void test_wait_room(void **state)
{
	struct fl_ring *r = *state;
	uint32_t max = fl_ring_max_record(r);
	unsigned n = 0;
	while (publish_seq(r, 0, max) == 0)
		n++;
	assert_int_equal(n, 4);
	assert_int_equal(fl_lane_wait_room(r, 0, max, 1000 * 1000), -ETIMEDOUT);
	assert_int_equal(fl_load_relaxed(&r->lanes[0].waiters), 0);

	struct releaser x = {.r = r};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, release_later, &x), 0);
	atomic_store(&x.go, 1);
	assert_int_equal(fl_lane_wait_room(r, 0, max, 0), 0);
	pthread_join(t, NULL);
	assert_int_equal(x.released, 4);
	assert_int_equal(publish_seq(r, 0, max), 0);
	assert_int_equal(fl_load_relaxed(&r->lanes[0].waiters), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_publish_consume, setup, teardown),
    cmocka_unit_test_setup_teardown(test_attach_sees_same, setup, teardown),
    cmocka_unit_test_setup_teardown(test_level_generation, setup, teardown),
    cmocka_unit_test(test_bad_magic_refused),
    cmocka_unit_test_setup_teardown(test_bad_header_refused, setup, teardown),
    cmocka_unit_test(test_wrap_every_size_4k),
    cmocka_unit_test(test_wrap_every_size_8k),
    cmocka_unit_test(test_wrap_interleaved),
    cmocka_unit_test_setup_teardown(test_full_lane_drops, setup, teardown),
    cmocka_unit_test_setup_teardown(test_peek_rejects_corruption, setup, teardown),
    cmocka_unit_test_setup_teardown(test_wait_room, setup, teardown),
};

FL_TEST_MAIN("ring", tests)

/* SPDX-License-Identifier: MIT */
/* test_producer_stress: 4 producer threads x 1,000,000 events drained by a consumer in another process. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl_test.h"

#include "fuguelog.h"
#include "fugue_event.pb-c.h"
#include "ring.h"

enum { THREADS = 4 };

/* What the consumer process found, sent back through a pipe. */
struct verdict {
	uint64_t got;
	uint64_t per_thread[THREADS];
	uint64_t lane_records[THREADS];
	uint64_t drops;
	uint32_t lane_of_thread[THREADS];
	char err[256];
};

/*
 * A bump allocator for protobuf-c's unpack: millions of decodes without a
 * malloc each. Reset before every record; free is a no-op.
 */
struct arena {
	_Alignas(16) uint8_t buf[4096];
	size_t used;
};

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size = (size + 15) & ~(size_t)15;
	if (a->used + size > sizeof a->buf)
		return NULL; /* protobuf-c reports it as a decode failure */
	void *p = a->buf + a->used;
	a->used += size;
	return p;
}

static void arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

static int ring_closed(const struct fl_ring *r)
{
	/* pairs with the store-release of closed in fl_session_close */
	return (int)fl_load_acquire(&r->hdr->closed);
}

/*
 * The consumer process: attaches by name, drains every lane until the session
 * is closed and everything is read, and checks each record: one producer
 * thread per lane, whose counter equals the lane sequence number (each emit
 * spends one, written or dropped), sequence numbers strictly increasing and, in
 * blocking mode, consecutive. Gives up (and says so) when nothing moves for a
 * long time, so a lost record fails the test instead of hanging it.
 */
static void consumer(const char *name, int block, int out)
{
	struct verdict v = {0};
	struct fl_ring r;
	char why[256];
	static struct arena arena;
	ProtobufCAllocator alloc = {arena_alloc, arena_free, &arena};
	uint64_t lane_seq[FL_RING_MAX_LANES] = {0}, lane_got[FL_RING_MAX_LANES] = {0};
	int32_t lane_thread[FL_RING_MAX_LANES];
	struct fl_rec recs[256];

	for (unsigned i = 0; i < FL_RING_MAX_LANES; i++)
		lane_thread[i] = -1;
	if (fl_ring_attach(&r, name, why, sizeof why) != 0) {
		snprintf(v.err, sizeof v.err, "attach: %s", why);
		goto done;
	}
	struct timespec last_progress;
	clock_gettime(CLOCK_MONOTONIC, &last_progress);
	for (;;) {
		int closed = ring_closed(&r); /* before the sweep: a close seen here means the sweep sees all */
		uint64_t seen = 0;
		for (uint32_t l = 0; l < r.lane_count; l++) {
			uint64_t nt;
			int n = fl_lane_peek(&r, l, recs, 256, &nt, why, sizeof why);
			if (n < 0) {
				snprintf(v.err, sizeof v.err, "peek: %s", why);
				goto done;
			}
			for (int i = 0; i < n; i++) {
				if (block ? recs[i].seq != lane_seq[l] : recs[i].seq < lane_seq[l]) {
					snprintf(v.err, sizeof v.err, "lane %u: seq %llu, want %s%llu", l,
						 (unsigned long long)recs[i].seq,
						 block ? "" : ">= ", (unsigned long long)lane_seq[l]);
					goto done;
				}
				lane_seq[l] = recs[i].seq + 1;
				lane_got[l]++;
				arena.used = 0;
				Fugue__Event *e = fugue__event__unpack(&alloc, recs[i].len, recs[i].data);
				if (!e || e->body_case != FUGUE__EVENT__BODY_TRANSCRIPT ||
				    e->transcript->stream >= THREADS || e->transcript->data.len != 8) {
					snprintf(v.err, sizeof v.err, "lane %u seq %llu: not a stress record", l,
						 (unsigned long long)recs[i].seq);
					goto done;
				}
				uint32_t t = e->transcript->stream;
				uint64_t ctr;
				memcpy(&ctr, e->transcript->data.data, 8);
				if (lane_thread[l] < 0) {
					lane_thread[l] = (int32_t)t;
					v.lane_of_thread[t] = l;
				}
				if (lane_thread[l] != (int32_t)t) {
					snprintf(v.err, sizeof v.err, "lane %u: thread %u wrote into thread %d's lane",
						 l, t, lane_thread[l]);
					goto done;
				}
				if (ctr != recs[i].seq) {
					snprintf(v.err, sizeof v.err, "thread %u: counter %llu at lane seq %llu", t,
						 (unsigned long long)ctr, (unsigned long long)recs[i].seq);
					goto done;
				}
				if (e->id != ((recs[i].seq + 1) << 6 | l)) {
					snprintf(v.err, sizeof v.err, "lane %u seq %llu: id %llu", l,
						 (unsigned long long)recs[i].seq, (unsigned long long)e->id);
					goto done;
				}
				v.per_thread[t]++;
				v.got++;
			}
			fl_lane_release(&r, l, nt);
			seen += (uint64_t)n;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seen) {
			last_progress = now;
		} else if (closed) {
			break;
		} else {
			if (now.tv_sec - last_progress.tv_sec > 120) {
				snprintf(v.err, sizeof v.err, "no progress for 120 s after %llu records",
					 (unsigned long long)v.got);
				goto done;
			}
			sched_yield();
		}
	}
	for (uint32_t l = 0; l < r.lane_count; l++) {
		uint64_t seq, head, drops;
		fl_lane_snapshot(&r, l, &seq, &head, &drops);
		v.drops += drops;
		if (l < THREADS)
			v.lane_records[l] = lane_got[l];
		/* exactly once: what arrived plus what was counted lost is every sequence number spent */
		if (lane_got[l] + drops != seq) {
			snprintf(v.err, sizeof v.err, "lane %u: %llu records + %llu drops != %llu emits", l,
				 (unsigned long long)lane_got[l], (unsigned long long)drops, (unsigned long long)seq);
			break;
		}
	}
done:
	fl_ring_detach(&r);
	if (write(out, &v, sizeof v) != (ssize_t)sizeof v)
		_exit(3);
	_exit(v.err[0] ? 1 : 0);
}

struct producer {
	fl_session *s;
	pthread_barrier_t *claimed; /* nobody exits before all have their lane: one thread per lane */
	uint32_t index;
	uint64_t count;
	uint64_t bad;
	int64_t bad_rc;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (uint64_t i = 0; i < p->count; i++) {
		int64_t id = fl_emit_transcript(p->s, 0, p->index, &i, sizeof i);
		if (id <= 0) {
			p->bad++;
			p->bad_rc = id;
		}
		if (i == 0)
			pthread_barrier_wait(p->claimed);
	}
	return NULL;
}

static void stress(int block)
{
	const char *san = getenv("FL_SANITIZED");
	uint64_t per = san && *san ? 100000 : 1000000;
	const char *n_env = getenv("FL_STRESS_EVENTS");
	if (n_env)
		per = strtoull(n_env, NULL, 10);
	printf("%d threads x %llu events, %s mode\n", THREADS, (unsigned long long)per, block ? "block" : "drop");

	char id[48];
	snprintf(id, sizeof id, "stress-%d", block);
	fl_session *s = NULL;
	char why[512] = "";
	struct fl_session_opts o = {.id = id,
				    .level = FL_LEVEL_FULL,
				    .lanes = THREADS,
				    .lane_size = 256 * 1024,
				    .full_policy = block ? FL_FULL_BLOCK : FL_FULL_DROP};
	if (fl_session_open(&s, &o, why, sizeof why) != 0)
		fail_msg("open: %s", why);
	char name[160];
	assert_int_equal(fl_ring_name(name, sizeof name, NULL, id), 0);

	/* fork before any thread exists: the child is a plain single-threaded consumer */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	fflush(stdout);
	pid_t parent = getpid();
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* a parent that fails an assertion must not leave us holding ctest's output open */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(4);
		close(pfd[0]);
		consumer(name, block, pfd[1]);
	}
	close(pfd[1]);

	struct producer p[THREADS];
	pthread_t t[THREADS];
	pthread_barrier_t claimed;
	pthread_barrier_init(&claimed, NULL, THREADS);
	for (uint32_t i = 0; i < THREADS; i++) {
		p[i] = (struct producer){.s = s, .index = i, .count = per, .claimed = &claimed};
		assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	}
	uint64_t admitted = 0;
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (block && p[i].bad)
			fail_msg("thread %d: %llu emits failed, last %lld", i, (unsigned long long)p[i].bad,
				 (long long)p[i].bad_rc);
		admitted += per - p[i].bad;
	}
	pthread_barrier_destroy(&claimed);
	struct fl_stats st;
	fl_session_stats(s, &st);
	assert_int_equal(fl_session_close(s), 0);

	struct verdict v;
	ssize_t n = read(pfd[0], &v, sizeof v);
	close(pfd[0]);
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	fl_ring_unlink(name);
	assert_int_equal(n, (ssize_t)sizeof v);
	if (v.err[0])
		fail_msg("consumer: %s", v.err);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	printf("consumer got %llu records, producer dropped %llu\n", (unsigned long long)v.got,
	       (unsigned long long)st.dropped);
	assert_int_equal(st.emitted, THREADS * per);
	assert_int_equal(st.admitted, admitted);
	assert_int_equal(st.dropped, THREADS * per - admitted);
	assert_int_equal(v.drops, st.dropped);
	/* every admitted record arrived exactly once: counters are consecutive, so count is enough */
	assert_int_equal(v.got, admitted);
	uint32_t lanes_used = 0;
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(v.per_thread[i], per - p[i].bad);
		lanes_used |= 1u << v.lane_of_thread[i];
	}
	assert_int_equal(lanes_used, (1u << THREADS) - 1); /* one lane each */
	if (block)
		assert_int_equal(st.dropped, 0);
}

/* FL_FULL_BLOCK: nothing may be lost, so every one of the 4 million is checked. */
static void test_four_threads_block(void **state)
{
	(void)state;
	stress(1);
}

/*
 * FL_FULL_DROP: losses are allowed but must be exact: each thread's records
 * arrive once and in order, each gap in a lane's sequence is a counted drop.
 */
static void test_four_threads_drop(void **state)
{
	(void)state;
	stress(0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_four_threads_block),
    cmocka_unit_test(test_four_threads_drop),
};

FL_TEST_MAIN("producer_stress", tests)

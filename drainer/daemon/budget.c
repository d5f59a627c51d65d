/* SPDX-License-Identifier: MIT */
/* budget.c: fd slots for sessions' files, once-per-condition logging of resource errors, heap trimming. */
#define _GNU_SOURCE
#include "budget.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "drain.h"
#include "sysutil.h"

#define MMAP_THRESHOLD (1 << 20) /* a buffer this big is its own mapping, unmapped when freed */
#define CLEAR_NS 1000000000ll	 /* a condition unseen this long is over */

static _Atomic unsigned slots, held, waiting;

/* The current resource condition: its errno (0 none), when last seen. Under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int cond_errno;
static int64_t cond_seen, cond_since;
static unsigned long cond_count;

unsigned fl_budget_init(void)
{
	struct rlimit rl;
	rlim_t have = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rlim_t old = rl.rlim_cur;
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				rl.rlim_cur = old;
		}
		have = rl.rlim_cur;
	}
	/* the daemon's own fds (log, lock, inotify, compression, transient opens) come off the top */
	rlim_t reserve = have < 256 ? have / 3 : 64;
	rlim_t n = have > reserve ? (have - reserve) / FL_BUDGET_FDS_PER_SESSION : 0;
	if (n < 1)
		n = 1;
	if (n > 1u << 20)
		n = 1u << 20;
	atomic_store(&slots, (unsigned)n);
	/* a fixed threshold also switches off glibc's dynamic one, which would keep big freed buffers in the heap */
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD);
	fl_drain_log("fd limit %llu: files of up to %u sessions open at once (%d fds each)", (unsigned long long)have,
		     (unsigned)n, FL_BUDGET_FDS_PER_SESSION);
	return (unsigned)n;
}

unsigned fl_budget_slots(void)
{
	return atomic_load(&slots);
}

int fl_budget_acquire(int *w)
{
	unsigned max = atomic_load(&slots);
	unsigned h = atomic_load(&held);
	while (!max || h < max) {
		if (atomic_compare_exchange_weak(&held, &h, h + 1)) {
			fl_budget_unwait(w);
			return 1;
		}
	}
	if (!*w) {
		*w = 1;
		atomic_fetch_add(&waiting, 1);
	}
	return 0;
}

void fl_budget_release(void)
{
	unsigned h = atomic_load(&held);
	while (h && !atomic_compare_exchange_weak(&held, &h, h - 1))
		;
}

void fl_budget_unwait(int *w)
{
	if (*w) {
		*w = 0;
		atomic_fetch_sub(&waiting, 1);
	}
}

int fl_budget_pressure(void)
{
	return atomic_load_explicit(&waiting, memory_order_relaxed) != 0;
}

int fl_budget_is_resource(int err)
{
	if (err < 0)
		err = -err;
	return err == EMFILE || err == ENFILE || err == ENOMEM;
}

void fl_budget_note(int err, const char *what)
{
	if (err < 0)
		err = -err;
	int64_t now = fl_now_ns(CLOCK_MONOTONIC);
	pthread_mutex_lock(&mu);
	int news = cond_errno != err;
	if (news) {
		cond_errno = err;
		cond_since = now;
		cond_count = 0;
	}
	cond_seen = now;
	cond_count++;
	pthread_mutex_unlock(&mu);
	if (news)
		fl_drain_log(
		    "%s (%s): waiting and retrying with backoff; no session ends and no record is lost over it", what,
		    strerror(err));
}

void fl_budget_ok(void)
{
	int64_t now = fl_now_ns(CLOCK_MONOTONIC);
	int over = 0, err = 0;
	unsigned long count = 0;
	int64_t lasted = 0;
	pthread_mutex_lock(&mu);
	if (cond_errno && now - cond_seen > CLEAR_NS) {
		over = 1;
		err = cond_errno;
		count = cond_count;
		lasted = cond_seen - cond_since;
		cond_errno = 0;
	}
	pthread_mutex_unlock(&mu);
	if (over)
		fl_drain_log("%s is over: it lasted %lld ms, %lu attempts waited on it", strerror(err),
			     (long long)(lasted / 1000000), count);
}

void fl_budget_trim(void)
{
	malloc_trim(0);
}

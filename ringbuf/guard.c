/* SPDX-License-Identifier: MIT */
/* guard.c: a SIGBUS handler that turns a truncated shm mapping into zeros instead of a dead consumer. */
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * One registered mapping. Entries are never freed (a handler on another thread
 * may be reading one), only recycled through a free list; base 0 = unused.
 */
struct gent {
	_Atomic uintptr_t base;
	_Atomic size_t size;
	_Atomic int tripped;
	size_t idx;	    /* its slot; stable, as a bigger table copies slots to the same index */
	struct gent *hnext; /* by-base hash chain or free list; under the mutex only */
};

/* What the handler scans: every slot, NULL or an entry. Replaced (never freed) when full. */
struct gtab {
	size_t cap;
	struct gtab *older; /* kept for handlers that loaded it before the swap */
	_Atomic(struct gent *) slot[];
};

#define HBUCKETS 4096 /* by-base lookup for del and tripped: chains stay short at 10,000s of rings */
#define FIRST_CAP 256

static _Atomic(struct gtab *) table;
static size_t used, hint; /* slots holding an entry, where to look for a free one; under mu */
static struct gent *hash[HBUCKETS], *free_ents;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int installed;
static struct sigaction previous;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	struct gtab *t = atomic_load(&table);
	for (size_t i = 0; t && i < t->cap; i++) {
		struct gent *e = atomic_load(&t->slot[i]);
		if (!e)
			continue;
		uintptr_t b = atomic_load(&e->base);
		size_t n = atomic_load(&e->size);
		/* base again: an entry recycled between the two loads must not pair one ring's base with another's size
		 */
		if (!b || atomic_load(&e->base) != b || a < b || a - b >= n)
			continue;
		/* private zeros over the whole ring: the retried load succeeds, nothing validates */
		if (mmap((void *)b, n, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
		    MAP_FAILED) {
			atomic_store(&e->tripped, 1);
			return;
		}
		break;
	}
	/* not a guarded ring: behave as if we were not here */
	if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
		previous.sa_sigaction(sig, si, uc);
		return;
	}
	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* back to the default action; returning retries the access, which then kills as usual */
	signal(SIGBUS, SIG_DFL);
}

int fl_guard_install(void)
{
	int expect = 0;
	if (!atomic_compare_exchange_strong(&installed, &expect, 1))
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous) < 0) {
		int e = -errno;
		atomic_store(&installed, 0);
		return e;
	}
	return 0;
}

static size_t bucket(uintptr_t base)
{
	/* mappings are page aligned: the low 12 bits say nothing */
	return (size_t)((base >> 12) * 0x9E3779B97F4A7C15ull >> 52) % HBUCKETS;
}

/* The entry registered at base, and the link pointing at it; under mu. */
static struct gent **find(uintptr_t base)
{
	struct gent **pp = &hash[bucket(base)];
	while (*pp && atomic_load_explicit(&(*pp)->base, memory_order_relaxed) != base)
		pp = &(*pp)->hnext;
	return pp;
}

/* A table with room for one more entry; under mu. */
static struct gtab *room(void)
{
	struct gtab *t = atomic_load(&table);
	if (t && used < t->cap)
		return t;
	size_t cap = t ? t->cap * 2 : FIRST_CAP;
	struct gtab *n = calloc(1, sizeof *n + cap * sizeof n->slot[0]);
	if (!n)
		return NULL;
	n->cap = cap;
	n->older = t;
	for (size_t i = 0; t && i < t->cap; i++)
		atomic_init(&n->slot[i], atomic_load_explicit(&t->slot[i], memory_order_relaxed));
	/* release: a handler that loads the new table sees every slot copied into it */
	atomic_store(&table, n);
	return n;
}

int fl_guard_add(void *base, size_t size)
{
	if (!atomic_load(&installed) || !base)
		return 0;
	pthread_mutex_lock(&mu);
	struct gtab *t = room();
	struct gent *e = free_ents;
	if (e)
		free_ents = e->hnext;
	else
		e = calloc(1, sizeof *e);
	if (!t || !e) {
		if (e) {
			e->hnext = free_ents;
			free_ents = e;
		}
		pthread_mutex_unlock(&mu);
		return -ENOMEM;
	}
	/* size and tripped first: the handler trusts size only once it sees base */
	atomic_store(&e->size, size);
	atomic_store(&e->tripped, 0);
	atomic_store(&e->base, (uintptr_t)base);
	size_t i = hint % t->cap;
	while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
		i = (i + 1) % t->cap; /* used < cap: a free slot exists */
	hint = i + 1;
	e->idx = i;
	atomic_store(&t->slot[i], e);
	used++;
	struct gent **pp = &hash[bucket((uintptr_t)base)];
	e->hnext = *pp;
	*pp = e;
	pthread_mutex_unlock(&mu);
	return 0;
}

void fl_guard_del(void *base)
{
	if (!base)
		return;
	pthread_mutex_lock(&mu);
	struct gent **pp = find((uintptr_t)base), *e = *pp;
	struct gtab *t = atomic_load(&table);
	if (e && t) {
		*pp = e->hnext;
		atomic_store(&t->slot[e->idx], NULL);
		used--;
		atomic_store(&e->base, 0);
		e->hnext = free_ents;
		free_ents = e;
	}
	pthread_mutex_unlock(&mu);
}

int fl_guard_tripped(const void *base)
{
	if (!base || !atomic_load(&installed))
		return 0;
	pthread_mutex_lock(&mu);
	struct gent *e = *find((uintptr_t)base);
	int t = e ? atomic_load(&e->tripped) : 0;
	pthread_mutex_unlock(&mu);
	return t;
}

size_t fl_guard_count(void)
{
	pthread_mutex_lock(&mu);
	size_t n = used;
	pthread_mutex_unlock(&mu);
	return n;
}

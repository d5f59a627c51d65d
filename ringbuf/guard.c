/* SPDX-License-Identifier: MIT */
/* guard.c: a SIGBUS handler that turns a truncated shm mapping into zeros instead of a dead consumer. */
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

struct slot {
	_Atomic int used;	/* claimed by fl_guard_add, so two adders never share a slot */
	_Atomic uintptr_t base; /* 0 = not (yet) guarding; the handler looks only at set ones */
	_Atomic size_t size;
	_Atomic int tripped;
};

static struct slot slots[FL_GUARD_SLOTS];
static _Atomic int installed;
static struct sigaction previous;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (unsigned i = 0; i < FL_GUARD_SLOTS; i++) {
		uintptr_t b = atomic_load(&slots[i].base);
		size_t n = atomic_load(&slots[i].size);
		if (!b || a < b || a - b >= n)
			continue;
		/* private zeros over the whole ring: the retried load succeeds, nothing validates */
		if (mmap((void *)b, n, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
		    MAP_FAILED) {
			atomic_store(&slots[i].tripped, 1);
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

int fl_guard_add(void *base, size_t size)
{
	if (!atomic_load(&installed) || !base)
		return 0;
	for (unsigned i = 0; i < FL_GUARD_SLOTS; i++) {
		int expect = 0;
		if (atomic_load(&slots[i].used) || !atomic_compare_exchange_strong(&slots[i].used, &expect, 1))
			continue;
		/* size and tripped first: the handler reads them only once base is set */
		atomic_store(&slots[i].size, size);
		atomic_store(&slots[i].tripped, 0);
		atomic_store(&slots[i].base, (uintptr_t)base);
		return 0;
	}
	return -ENOSPC;
}

void fl_guard_del(void *base)
{
	for (unsigned i = 0; base && i < FL_GUARD_SLOTS; i++)
		if (atomic_load(&slots[i].base) == (uintptr_t)base) {
			atomic_store(&slots[i].base, 0);
			atomic_store(&slots[i].used, 0);
			return;
		}
}

int fl_guard_tripped(const void *base)
{
	for (unsigned i = 0; base && i < FL_GUARD_SLOTS; i++)
		if (atomic_load(&slots[i].base) == (uintptr_t)base)
			return atomic_load(&slots[i].tripped);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/* barrier.h: the only memory-ordering helpers the shared-memory ring uses. */
#ifndef FL_BARRIER_H
#define FL_BARRIER_H

#include <stdatomic.h>

/* Every call site names the store or load it pairs with in one comment. */
#define fl_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define fl_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define fl_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define fl_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define fl_smp_mb() atomic_thread_fence(memory_order_seq_cst)
#define fl_compiler_barrier() atomic_signal_fence(memory_order_seq_cst)

static inline void fl_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	fl_compiler_barrier();
#endif
}

#endif

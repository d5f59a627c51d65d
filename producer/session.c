/* SPDX-License-Identifier: MIT */
/* session.c: libfuguelog — session open/close, level resolution, lane claiming, typed emits. */
#define _GNU_SOURCE
#include "fuguelog.h"
#include "why.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "encode.h"
#include "ring.h"
#include "sysutil.h"

#if defined(__SANITIZE_THREAD__)
#define FL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_TSAN 1
#endif
#endif

#define TLS_SLOTS 8

struct lane_guard {
	_Alignas(FL_CACHELINE) _Atomic uint32_t busy; /* owner is inside an emit */
	_Atomic uint32_t shared;		      /* overflow threads write here too: lock */
	pthread_mutex_t lock;
};

struct fl_session {
	struct fl__session_head head; /* first: the inline level check reads it */
	struct fl_ring ring;
	uint64_t gen; /* unique per open, so stale thread-local slots never match */
	uint32_t pid;
	uint32_t max_record;
	int block;
	int tsc; /* events carry raw TSC ticks (ring clock FL_RING_CLOCK_TSC) */
	uint64_t block_timeout_ns;
	struct fl_session *next; /* in the list of open sessions */
	char id[FL_RING_ID_MAX + 1];
	char shm_name[FL_RING_ID_MAX + 80];
	struct lane_guard guard[];
};

struct tls_slot {
	const fl_session *s;
	uint64_t gen;
	uint32_t lane;
	uint32_t shared;
	/* fields 4 and 5 of every event this thread writes (pid, tid), encoded once at claim */
	uint8_t who[16];
	uint32_t who_len;
};

static __thread struct tls_slot tls_slots[TLS_SLOTS];
static __thread unsigned tls_next;
/*
 * The slot of this thread's last emit, in initial-exec TLS: one %fs-relative
 * load, where the slots above (general-dynamic TLS in the shared library) cost
 * a call to __tls_get_addr on every emit. Eight bytes, well within the static
 * TLS that glibc keeps for libraries loaded later with dlopen(). A slot that
 * is cleared or reused no longer matches its session, so the pointer is never
 * stale in a way that matters.
 */
static const struct tls_slot no_slot; /* matches no session: tls_last needs no NULL test */
static __thread struct tls_slot *tls_last __attribute__((tls_model("initial-exec"))) = (struct tls_slot *)&no_slot;
static __thread uint32_t tls_tid;
static __thread int tls_registered;

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static fl_session *open_list;
static uint64_t open_gen;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int membarrier_cmd = -1;
static int owner_fence;		  /* no membarrier(): owners fence on entry instead */
static _Atomic uint32_t proc_pid; /* this process; reset in a forked child */

/* ---- names, levels, kinds ----------------------------------------------------------- */

static const char *const level_names[] = {NULL, "spawns", "signals", "prompts", "full"};

#define KIND_ROW(K, name, num, lvl, cls) [FL_KIND_##K] = {name, FL_LEVEL_##lvl, FL_CLASS_##cls},
static const struct {
	const char *name;
	int min;
	int cls;
} kinds[] = {FL_KINDS(KIND_ROW)};
#undef KIND_ROW

/* bindings and the option struct rely on enums being plain ints */
_Static_assert(sizeof(enum fl_level) == sizeof(int) && sizeof(enum fl_clock) == sizeof(int) &&
		   sizeof(enum fl_full_policy) == sizeof(int),
	       "enums are int-sized");

unsigned fl_version(void)
{
	return FUGUELOG_VERSION_NUMBER;
}

int fl_level_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int l = FL_LEVEL_SPAWNS; l <= FL_LEVEL_FULL; l++)
		if (!strcasecmp(name, level_names[l]) || (name[0] == '0' + l && !name[1]))
			return l;
	return -EINVAL;
}

const char *fl_level_name(int level)
{
	return level >= FL_LEVEL_SPAWNS && level <= FL_LEVEL_FULL ? level_names[level] : "?";
}

const char *fl_kind_name(int kind)
{
	return kind >= 1 && kind <= FL_KIND_MAX ? kinds[kind].name : NULL;
}

int fl_kind_min_level(int kind)
{
	return kind >= 1 && kind <= FL_KIND_MAX ? kinds[kind].min : 0;
}

int fl_kind_class(int kind)
{
	return kind >= 1 && kind <= FL_KIND_MAX ? kinds[kind].cls : -1;
}

int fl_kind_parse(const char *name)
{
	for (int k = 1; name && k <= FL_KIND_MAX; k++)
		if (!strcmp(name, kinds[k].name))
			return k;
	return -EINVAL;
}

int fl_id_check(const char *id)
{
	if (!id)
		return -EINVAL;
	size_t n = strnlen(id, FL_RING_ID_MAX + 1);
	if (n == 0 || n > FL_RING_ID_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return -EINVAL;
	}
	if (!strcmp(id, ".") || !strcmp(id, ".."))
		return -EINVAL;
	return 0;
}

void fl_id_new(char out[37])
{
	uint8_t b[16];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
		/* no entropy source: mix the clock and pid, still unique enough per host */
		uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&b;
		for (int i = 0; i < 16; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			b[i] = (uint8_t)x;
		}
	}
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* RFC 9562 variant */
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = 0;
}

/* ---- level resolution: FUGUE_SESSION_LOG > option > config default_level > signals -------- */

/*
 * The config file is read on every open, whatever the level source, so a
 * broken file is refused here exactly as fugue-logd and fugue-log refuse it.
 */
static int resolve_level(const struct fl_session_opts *o, char *why, size_t whylen)
{
	struct fl_config c;
	int rc = fl_config_load(&c, o->config_path, why, whylen);
	if (rc < 0)
		return -EINVAL; /* a missing explicit file too: the caller's option is wrong */
	const char *env = getenv("FUGUE_SESSION_LOG");
	if (env && *env)
		return c.default_level; /* fl_config_load parsed it */
	if (o->level) {
		if (o->level < FL_LEVEL_SPAWNS || o->level > FL_LEVEL_FULL) {
			fl_why(why, whylen, "level %d is not a level; use 1 (spawns) .. 4 (full)", (int)o->level);
			return -EINVAL;
		}
		return o->level;
	}
	return c.default_level;
}

/* FUGUE_CLOCK > option > auto. Returns enum fl_clock or -EINVAL. */
static int resolve_clock(const struct fl_session_opts *o, char *why, size_t whylen)
{
	const char *env = getenv("FUGUE_CLOCK");
	if (env && *env) {
		if (!strcmp(env, "auto"))
			return FL_CLOCK_AUTO;
		if (!strcmp(env, "realtime"))
			return FL_CLOCK_REALTIME;
		if (!strcmp(env, "tsc"))
			return FL_CLOCK_TSC;
		fl_why(why, whylen, "FUGUE_CLOCK=%s is not a clock; use auto, realtime or tsc", env);
		return -EINVAL;
	}
	if (o->clock < FL_CLOCK_AUTO || o->clock > FL_CLOCK_TSC) {
		fl_why(why, whylen, "clock %d is not a clock; use FL_CLOCK_AUTO, FL_CLOCK_REALTIME or FL_CLOCK_TSC",
		       (int)o->clock);
		return -EINVAL;
	}
	return o->clock;
}

/* ---- lanes ------------------------------------------------------------------------- */

static uint32_t my_tid(void)
{
	if (!tls_tid)
		tls_tid = (uint32_t)syscall(SYS_gettid);
	return tls_tid;
}

/* Thread exit: give back every lane this thread owns in a still-open session. */
static void release_lanes(void *arg)
{
	(void)arg;
	uint32_t me = tls_tid;
	pthread_mutex_lock(&open_lock);
	/*
	 * Every lane this thread owns in this process's sessions, not only those
	 * still in a slot: a slot evicted by a ninth session, or one that went
	 * shared, still owns its lane. The CAS fails harmlessly on other lanes.
	 */
	for (fl_session *s = me ? open_list : NULL; s; s = s->next) {
		if (s->pid != atomic_load_explicit(&proc_pid, memory_order_relaxed))
			continue;
		for (uint32_t l = 0; l < s->ring.lane_count; l++) {
			uint32_t o = me;
			atomic_compare_exchange_strong(&s->ring.lanes[l].owner, &o, 0);
		}
	}
	memset(tls_slots, 0, sizeof tls_slots);
	tls_registered = 0; /* a later destructor that emits re-arms this one */
	pthread_mutex_unlock(&open_lock);
}

/*
 * fork(): the child's thread inherits the forking thread's lane slots and cached
 * tid, so it would write into a lane the parent still owns. Forget them; emits
 * into sessions the parent opened are then refused (see emit()).
 */
static void after_fork_child(void)
{
	memset(tls_slots, 0, sizeof tls_slots);
	tls_tid = 0;
	atomic_store_explicit(&proc_pid, (uint32_t)getpid(), memory_order_relaxed);
}

static void exit_key_init(void)
{
	pthread_key_create(&exit_key, release_lanes);
	pthread_atfork(NULL, NULL, after_fork_child);
	atomic_store_explicit(&proc_pid, (uint32_t)getpid(), memory_order_relaxed);
	long q;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0)
		membarrier_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
	else if ((q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0)) > 0 && (q & MEMBARRIER_CMD_GLOBAL))
		membarrier_cmd = MEMBARRIER_CMD_GLOBAL;
	else
		owner_fence = 1; /* a plain fence on the sharer's side alone is not a Dekker handshake */
}

static int owner_gone(uint32_t pid, uint32_t tid)
{
	return tid && syscall(SYS_tgkill, pid, tid, 0) < 0 && errno == ESRCH;
}

static int lane_drained(const struct fl_lane_ctl *c)
{
	return fl_load_acquire(&c->head) == fl_load_acquire(&c->tail);
}

/*
 * Slow path of the first emit of a thread into a session. Out of line: inlined
 * into lane_lookup, GCC's -Wtsan refuses its fence in the TSan build.
 */
static __attribute__((noinline)) struct tls_slot *claim_lane(fl_session *s)
{
	uint32_t me = my_tid();
	uint32_t n = s->ring.lane_count;
	int lane = -1;

	if (!tls_registered) {
		pthread_setspecific(exit_key, (void *)1); /* any non-NULL value runs the destructor */
		tls_registered = 1;
	}
	/* ours already (slot evicted), then free and drained, then free, then owner gone */
	for (int pass = 0; pass < 4 && lane < 0; pass++) {
		for (uint32_t l = 0; l < n && lane < 0; l++) {
			struct fl_lane_ctl *c = &s->ring.lanes[l];
			uint32_t o = atomic_load(&c->owner);
			int want = pass == 0   ? o == me
				   : pass == 1 ? o == 0 && lane_drained(c)
				   : pass == 2 ? o == 0
					       : o != me && owner_gone(s->pid, o) && lane_drained(c);
			if (want && (o == me || atomic_compare_exchange_strong(&c->owner, &o, me)))
				lane = (int)l;
		}
	}
	int shared = 0;
	if (lane < 0) {
		/* more threads than lanes: share one under its lock, correct but slower */
		lane = (int)(me % n);
		shared = 1;
		struct lane_guard *g = &s->guard[lane];
		pthread_mutex_lock(&g->lock);
		if (!atomic_load(&g->shared)) {
			atomic_store(&g->shared, 1);
			/* make the owner's busy flag visible, or make it see shared on its next emit */
			if (membarrier_cmd >= 0)
				syscall(SYS_membarrier, membarrier_cmd, 0);
			else
				fl_smp_mb();
			while (atomic_load_explicit(&g->busy, memory_order_acquire))
				fl_cpu_relax();
		}
		pthread_mutex_unlock(&g->lock);
	}
	struct tls_slot *t = &tls_slots[tls_next++ % TLS_SLOTS];
	t->s = s;
	t->gen = s->gen;
	t->lane = (uint32_t)lane;
	t->shared = (uint32_t)shared;
	uint8_t *w = t->who;
	*w++ = (uint8_t)pb_tag(4, PB_VARINT);
	w = pb_varint(w, s->pid);
	*w++ = (uint8_t)pb_tag(5, PB_VARINT);
	w = pb_varint(w, me);
	t->who_len = (uint32_t)(w - t->who);
	return t;
}

/* lane_for's slow path: this thread's slot for s among all of them, else a new one. */
static __attribute__((noinline)) struct tls_slot *lane_lookup(fl_session *s)
{
	/*
	 * The slots' address once: in the shared library (general-dynamic TLS)
	 * GCC otherwise called __tls_get_addr again for every slot it compared.
	 */
	struct tls_slot *slots = tls_slots;
	__asm__("" : "+r"(slots));
	struct tls_slot *t = NULL;
	for (unsigned i = 0; i < TLS_SLOTS && !t; i++)
		if (slots[i].s == s && slots[i].gen == s->gen)
			t = &slots[i];
	if (!t)
		t = claim_lane(s);
	tls_last = t;
	return t;
}

static inline struct tls_slot *lane_for(fl_session *s)
{
	struct tls_slot *t = tls_last;
	if (__builtin_expect(t->s == s && t->gen == s->gen, 1))
		return t;
	return lane_lookup(s);
}

/* Enter the lane: the owner raises busy and checks shared; sharers take the lock. */
static inline int lane_enter(fl_session *s, struct tls_slot *t)
{
	struct lane_guard *g = &s->guard[t->lane];
	if (!t->shared) {
#ifdef FL_TSAN
		atomic_exchange(&g->busy, 1); /* a full barrier TSan understands */
		if (!atomic_load_explicit(&g->shared, memory_order_acquire))
			return 0;
#else
		/* paired with membarrier() in claim_lane: no fence needed on this side */
		fl_store_relaxed(&g->busy, 1);
		if (__builtin_expect(owner_fence, 0))
			fl_smp_mb(); /* pairs with fl_smp_mb() in claim_lane when membarrier() is missing */
		else
			fl_compiler_barrier();
		if (!fl_load_relaxed(&g->shared))
			return 0;
#endif
		fl_store_release(&g->busy, 0);
		t->shared = 1; /* the lane became shared: from now on, lock like everyone */
	}
	pthread_mutex_lock(&g->lock);
	return 1;
}

static inline void lane_leave(fl_session *s, struct tls_slot *t, int locked)
{
	struct lane_guard *g = &s->guard[t->lane];
	if (locked)
		pthread_mutex_unlock(&g->lock);
	else
		fl_store_release(&g->busy, 0); /* pairs with the acquire spin in claim_lane */
}

/* ---- open / close ------------------------------------------------------------------- */

/* The start-up handshake: the drainer sets the ring's attached word when it has the ring in its table. */
static int wait_attached(fl_session *s, uint64_t timeout_ns)
{
	if (!timeout_ns)
		return 0;
	return fl_ring_wait_attached(&s->ring, timeout_ns) == 0 ? 0 : FL_OPEN_UNATTACHED;
}

int fl_session_open(fl_session **out, const struct fl_session_opts *opts, char *why, size_t whylen)
{
	struct fl_session_opts none = {0};
	const struct fl_session_opts *o = opts ? opts : &none;
	char idbuf[40];
	const char *id = o->id;

	*out = NULL;
	pthread_once(&exit_once, exit_key_init);
	for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
		if (o->reserved[i]) {
			fl_why(why, whylen,
			       "fl_session_opts.reserved[%zu] is not zero: this library (%u) does not know that "
			       "option; zero the struct, or use a newer library",
			       i, fl_version());
			return -EINVAL;
		}
	if (id) {
		if (fl_id_check(id) < 0) {
			fl_why(why, whylen,
			       "session id '%.80s' refused: use 1 to 64 of A-Z a-z 0-9 . _ - (not '.' or '..')", id);
			return -EINVAL;
		}
	} else {
		fl_id_new(idbuf);
		id = idbuf;
	}
	int level = resolve_level(o, why, whylen);
	if (level < 0)
		return level;
	int clock = resolve_clock(o, why, whylen);
	if (clock < 0)
		return clock;
	if (o->full_policy != FL_FULL_DROP && o->full_policy != FL_FULL_BLOCK) {
		fl_why(why, whylen, "full_policy %d is neither FL_FULL_DROP nor FL_FULL_BLOCK", (int)o->full_policy);
		return -EINVAL;
	}
	uint32_t lanes = o->lanes ? o->lanes : 4;
	uint64_t lane_size = o->lane_size ? o->lane_size : (1ull << 20);
	if (!fl_ring_size(lanes, lane_size)) {
		fl_why(why, whylen,
		       "%u lanes of %llu bytes: lanes must be a power of two up to %u, lane size a power "
		       "of two from 4 KiB to 1 GiB",
		       lanes, (unsigned long long)lane_size, FL_RING_MAX_LANES);
		return -EINVAL;
	}

	/* aligned: the lane guards are _Alignas(FL_CACHELINE), which calloc does not promise */
	size_t ssize = sizeof(struct fl_session) + lanes * sizeof(struct lane_guard);
	fl_session *s = aligned_alloc(FL_CACHELINE, (ssize + FL_CACHELINE - 1) & ~(size_t)(FL_CACHELINE - 1));
	if (!s)
		return -ENOMEM;
	memset(s, 0, ssize);
	snprintf(s->id, sizeof s->id, "%s", id);
	int rc = fl_ring_name(s->shm_name, sizeof s->shm_name, o->shm_prefix, id);
	if (rc == 0) {
		struct fl_ring_params p = {.id = id,
					   .lane_count = lanes,
					   .lane_size = lane_size,
					   .flags = o->full_policy == FL_FULL_BLOCK ? FL_RING_F_BLOCK : 0,
					   .level = (uint8_t)level,
					   /* the ring falls back to REALTIME when the TSC is not fit (fl_tsc_usable) */
					   .clock =
					       clock == FL_CLOCK_REALTIME ? FL_RING_CLOCK_REALTIME : FL_RING_CLOCK_TSC};
		rc = fl_ring_create(&s->ring, s->shm_name, &p);
	}
	if (rc < 0) {
		if (rc == -EEXIST)
			fl_why(why, whylen,
			       "a ring for session '%s' exists (%s): pick another id, or let the drainer "
			       "finish the old one",
			       id, s->shm_name);
		else
			fl_why(why, whylen, "cannot create ring %s: %s", s->shm_name, strerror(-rc));
		free(s);
		return rc;
	}
	for (uint32_t l = 0; l < lanes; l++)
		pthread_mutex_init(&s->guard[l].lock, NULL);
	s->head.level_word = &s->ring.hdr->level;
	s->pid = (uint32_t)getpid();
	s->max_record = fl_ring_max_record(&s->ring);
	s->block = o->full_policy == FL_FULL_BLOCK;
	s->tsc = s->ring.hdr->clock == FL_RING_CLOCK_TSC;
	s->block_timeout_ns = o->block_timeout_ns;
	fl_ring_bell_use(&s->ring, o->shm_prefix); /* the prefix made the ring name, so it is valid here */

	pthread_mutex_lock(&open_lock);
	s->gen = ++open_gen;
	s->next = open_list;
	open_list = s;
	pthread_mutex_unlock(&open_lock);
	*out = s;
	return wait_attached(s, o->attach_timeout_ns);
}

int fl_session_close(fl_session *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&open_lock);
	for (fl_session **pp = &open_list; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&open_lock);
	/* a forked child only lets go of its copy: the ring is still the parent's */
	if (s->pid == atomic_load_explicit(&proc_pid, memory_order_relaxed)) {
		/* pairs with the drainer's load-acquire of closed: every head store is before it */
		fl_store_release(&s->ring.hdr->closed, 1);
		fl_ring_bell_ring(&s->ring); /* the drainer finishes the session now, not on its timer */
	}
	for (uint32_t l = 0; l < s->ring.lane_count; l++)
		pthread_mutex_destroy(&s->guard[l].lock);
	fl_ring_detach(&s->ring);
	free(s);
	return 0;
}

const char *fl_session_id(const fl_session *s)
{
	return s->id;
}

int fl_set_level(fl_session *s, int level)
{
	if (level < FL_LEVEL_SPAWNS || level > FL_LEVEL_FULL)
		return -EINVAL;
	return FL_LEVEL_VALUE(fl_ring_level_set(&s->ring, (uint8_t)level));
}

int fl_get_level(const fl_session *s)
{
	return FL_LEVEL_VALUE(fl_ring_level_word(&s->ring));
}

int fl_session_stats(const fl_session *s, struct fl_stats *st)
{
	memset(st, 0, sizeof *st);
	for (uint32_t l = 0; l < s->ring.lane_count; l++) {
		uint64_t seq, head, drops;
		fl_lane_snapshot(&s->ring, l, &seq, &head, &drops);
		st->emitted += seq;
		st->dropped += drops;
	}
	st->admitted = st->emitted - st->dropped;
	st->lanes = s->ring.lane_count;
	st->lane_size = s->ring.lane_size;
	st->clock = s->tsc ? FL_CLOCK_TSC : FL_CLOCK_REALTIME;
	st->attached = fl_ring_attached(&s->ring) != 0;
	return 0;
}

/* ---- emit --------------------------------------------------------------------------- */

/* Bytes of an event without its body: ts, id, ref, pid and tid, and the body's tag and length. */
/*
 * Room for a len-byte record in lane: 0 with res filled, or -EMSGSIZE (over the
 * ring's record limit) / -ENOBUFS (full, after the bounded wait in blocking
 * mode), each counted as a drop in the lane so the drainer sees the gap.
 */
static inline __attribute__((always_inline)) int64_t claim(fl_session *s, uint32_t lane, size_t len,
							   struct fl_reservation *res)
{
	int64_t ret = -EMSGSIZE;
	if (__builtin_expect(len <= s->max_record, 1)) {
		ret = fl_lane_reserve(&s->ring, lane, (uint32_t)len, res);
		if (__builtin_expect(ret < 0, 0) && s->block &&
		    fl_lane_wait_room(&s->ring, lane, (uint32_t)len, s->block_timeout_ns) == 0)
			ret = fl_lane_reserve(&s->ring, lane, (uint32_t)len, res);
		if (__builtin_expect(ret < 0, 0))
			ret = -ENOBUFS;
	}
	if (__builtin_expect(ret < 0, 0))
		fl_lane_drop(&s->ring, lane);
	return ret;
}

/*
 * The producer-unique id of the record a lane numbers seq: the lane's next
 * sequence number above the lane (at most 64 lanes). Never 0, which means "no
 * ref". The id is also the call's return value.
 */
static inline uint64_t record_id(uint64_t seq, uint32_t lane)
{
	return ((seq + 1) << 6) | lane;
}

static inline size_t head_size(const struct tls_slot *t, uint64_t id, uint64_t ref, unsigned body_field, size_t body)
{
	return 9 + 1 + pb_varint_size(id) + (ref ? 1 + pb_varint_size(ref) : 0) + t->who_len +
	       pb_varint_size(pb_tag(body_field, PB_LEN)) + pb_varint_size(body);
}

/* Writes what head_size counted at the start of a payload of len bytes; returns where the body goes. */
static inline uint8_t *put_head(uint8_t *p, size_t len, const fl_session *s, const struct tls_slot *t, uint64_t id,
				uint64_t ref, unsigned body_field, size_t body)
{
	uint8_t *end = p + len;
	/* an unfenced rdtsc overlaps with the encoding; the vDSO's clock_gettime fences it (docs/benchmarks.md) */
	uint64_t ts = s->tsc ? fl_rdtsc() : (uint64_t)fl_now_ns(CLOCK_REALTIME);
	*p++ = (uint8_t)pb_tag(1, PB_FIXED64);
	memcpy(p, &ts, 8); /* little-endian hosts only: fixed64 is little-endian on the wire */
	p += 8;
	*p++ = (uint8_t)pb_tag(2, PB_VARINT);
	p = pb_varint(p, id);
	if (ref) {
		*p++ = (uint8_t)pb_tag(3, PB_VARINT);
		p = pb_varint(p, ref);
	}
	/* one fixed-size copy when the record has room after it (the body overwrites the excess) */
	if ((size_t)(end - p) >= sizeof t->who)
		memcpy(p, t->who, sizeof t->who);
	else
		memcpy(p, t->who, t->who_len);
	p += t->who_len;
	p = pb_varint(p, pb_tag(body_field, PB_LEN));
	return pb_varint(p, body);
}

/*
 * An event's body: the generic field list (f, nf), or, for transcript, input
 * and prompt, an optional varint field 1 and one bytes field, written without
 * the field loops for the calls a session makes most.
 */
struct body {
	const struct fl_field *f;
	int nf;
	uint64_t num1;
	unsigned data_field;
	const void *data;
	uint32_t dlen;
};

static inline __attribute__((always_inline)) size_t body_size(const struct body *b, int generic)
{
	if (generic)
		return fl_fields_size(b->f, b->nf);
	return (b->num1 ? 1 + pb_varint_size(b->num1) : 0) + (b->dlen ? pb_len_size(b->data_field, b->dlen) : 0);
}

static inline __attribute__((always_inline)) void body_write(uint8_t *p, const struct body *b, int generic)
{
	if (generic) {
		fl_fields_write(p, b->f, b->nf);
		return;
	}
	if (b->num1) {
		*p++ = (uint8_t)pb_tag(1, PB_VARINT);
		p = pb_varint(p, b->num1);
	}
	if (b->dlen)
		pb_len(p, b->data_field, b->data, b->dlen);
}

/* Encodes Event{ts,id,ref,pid,tid,body} straight into the lane; generic is a constant at each call. */
static inline __attribute__((always_inline)) int64_t emit_body(fl_session *s, int kind, uint64_t ref,
							       const struct body *b, int generic)
{
	/* after fork(): the lanes and their locks belong to the parent */
	if (__builtin_expect(s->pid != atomic_load_explicit(&proc_pid, memory_order_relaxed), 0))
		return -ECHILD;
	struct tls_slot *t = lane_for(s);
	uint32_t lane = t->lane;
	size_t body = body_size(b, generic);
	unsigned body_field = (unsigned)kind + 5;
	int locked = lane_enter(s, t);
	uint64_t seq = fl_load_relaxed(&s->ring.lanes[lane].seq); /* ours while entered */
	uint64_t id = record_id(seq, lane);
	size_t len = head_size(t, id, ref, body_field, body) + body;
	int64_t ret;
	struct fl_reservation res;

	if (__builtin_expect((ret = claim(s, lane, len, &res)) < 0, 0))
		goto out;
	body_write(put_head(res.payload, len, s, t, id, ref, body_field, body), b, generic);
	fl_lane_commit(&s->ring, &res);
	ret = (int64_t)id;
out:
	lane_leave(s, t, locked);
	return ret;
}

static int64_t emit(fl_session *s, int kind, uint64_t ref, const struct fl_field *f, int nf)
{
	const struct body b = {.f = f, .nf = nf};
	return emit_body(s, kind, ref, &b, 1);
}

static inline __attribute__((always_inline)) int64_t emit_data(fl_session *s, int kind, uint64_t ref, uint64_t num1,
							       unsigned data_field, const void *data, uint32_t dlen)
{
	const struct body b = {.num1 = num1, .data_field = data_field, .data = data, .dlen = dlen};
	return emit_body(s, kind, ref, &b, 0);
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "fixed64 timestamps are copied as is");

#define STR(n, s)                                                                                                      \
	{                                                                                                              \
		.num = (n), .type = F_BYTES, .len = (s) ? (uint32_t)strlen(s) : 0, .p = (s)                            \
	}
#define BYTES(n, d, l)                                                                                                 \
	{                                                                                                              \
		.num = (n), .type = F_BYTES, .len = (uint32_t)(l), .p = (d)                                            \
	}
#define U64(n, v)                                                                                                      \
	{                                                                                                              \
		.num = (n), .type = F_U64, .u = (uint64_t)(v)                                                          \
	}
#define I32(n, v)                                                                                                      \
	{                                                                                                              \
		.num = (n), .type = F_I32, .u = (uint64_t)(uint32_t)(int32_t)(v)                                       \
	}
#define REP(n, a, c)                                                                                                   \
	{                                                                                                              \
		.num = (n), .type = F_REP, .len = (a) ? (c) : 0, .p = (a)                                              \
	}
#define EMIT(kind, ...)                                                                                                \
	do {                                                                                                           \
		const struct fl_field f_[] = {__VA_ARGS__};                                                            \
		return emit(s, (kind), ref, f_, (int)(sizeof f_ / sizeof f_[0]));                                      \
	} while (0)

/* Payloads beyond 4 GiB cannot be one record: count the loss like any oversize event. */
static int64_t too_big(fl_session *s)
{
	if (s->pid != atomic_load_explicit(&proc_pid, memory_order_relaxed))
		return -ECHILD;
	struct tls_slot *t = lane_for(s);
	int locked = lane_enter(s, t);
	fl_lane_drop(&s->ring, t->lane);
	lane_leave(s, t, locked);
	return -EMSGSIZE;
}

int64_t fl__emit_spawn(fl_session *s, uint64_t ref, uint32_t pid, uint32_t ppid, const char *const *argv, uint32_t argc,
		       const char *cwd)
{
	EMIT(FL_KIND_SPAWN, U64(1, pid), U64(2, ppid), REP(3, argv, argc), STR(4, cwd));
}

int64_t fl__emit_exit(fl_session *s, uint64_t ref, int32_t status, int32_t sig, uint64_t duration_ns)
{
	EMIT(FL_KIND_EXIT, I32(1, status), I32(2, sig), U64(3, duration_ns));
}

int64_t fl__emit_action(fl_session *s, uint64_t ref, const char *action, const char *target, const char *detail)
{
	EMIT(FL_KIND_ACTION, STR(1, action), STR(2, target), STR(3, detail));
}

int64_t fl__emit_command(fl_session *s, uint64_t ref, const char *name, const char *const *args, uint32_t nargs)
{
	EMIT(FL_KIND_COMMAND, STR(1, name), REP(2, args, nargs));
}

int64_t fl__emit_completion(fl_session *s, uint64_t ref, const char *task, const char *outcome, uint64_t duration_ns)
{
	EMIT(FL_KIND_COMPLETION, STR(1, task), STR(2, outcome), U64(3, duration_ns));
}

int64_t fl__emit_error(fl_session *s, uint64_t ref, int32_t code, const char *message, const char *origin)
{
	EMIT(FL_KIND_ERROR, I32(1, code), STR(2, message), STR(3, origin));
}

int64_t fl__emit_state(fl_session *s, uint64_t ref, const char *from, const char *to, const char *reason)
{
	EMIT(FL_KIND_STATE, STR(1, from), STR(2, to), STR(3, reason));
}

int64_t fl__emit_prompt(fl_session *s, uint64_t ref, const void *text, size_t len)
{
	if (len > UINT32_MAX)
		return too_big(s);
	return emit_data(s, FL_KIND_PROMPT, ref, 0, 1, text, (uint32_t)len);
}

int64_t fl__emit_transcript(fl_session *s, uint64_t ref, uint32_t stream, const void *data, size_t len)
{
	if (len > UINT32_MAX)
		return too_big(s);
	return emit_data(s, FL_KIND_TRANSCRIPT, ref, stream, 2, data, (uint32_t)len);
}

int64_t fl__emit_input(fl_session *s, uint64_t ref, const void *data, size_t len)
{
	if (len > UINT32_MAX)
		return too_big(s);
	return emit_data(s, FL_KIND_INPUT, ref, 0, 1, data, (uint32_t)len);
}

/* ---- zero-copy capture -------------------------------------------------------------- */

/* What a struct fl_capture's priv_ holds between reserve and commit. */
struct capture_priv {
	struct fl_reservation res; /* sized for cap bytes; shrunk to the n committed */
	uint8_t *body_len;	   /* the body's fixed five-byte length */
	uint32_t hdr;		   /* record bytes before the data */
	uint32_t locked;	   /* lane_enter took the lane's lock */
};
_Static_assert(sizeof(struct capture_priv) <= sizeof(((struct fl_capture *)0)->priv_), "capture state fits");

/* A length as a five-byte varint (0x80-continued): any value up to 2^35 keeps the same width. */
static inline uint8_t *pb_varint5(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v | 0x80);
	p[1] = (uint8_t)((v >> 7) | 0x80);
	p[2] = (uint8_t)((v >> 14) | 0x80);
	p[3] = (uint8_t)((v >> 21) | 0x80);
	p[4] = (uint8_t)(v >> 28);
	return p + 5;
}

/* v as a varint of exactly w bytes (w >= its shortest size, <= 10): 0x80-continued, still the same value. */
static inline uint8_t *pb_varint_w(uint8_t *p, uint64_t v, size_t w)
{
	for (size_t i = 1; i < w; i++, v >>= 7)
		*p++ = (uint8_t)(v | 0x80);
	*p++ = (uint8_t)v;
	return p;
}

/*
 * Reserves Event{id,ref,pid,tid,body{[stream], data}} for max data bytes; the
 * timestamp and both lengths are written at commit. The lane stays entered
 * until then, so no other record can land between. The data starts 8-aligned
 * (records are, and the id, pid and tid varints are widened by the 0..7 bytes
 * it takes):
 * callers read(2) into it and then parse it in place, and misaligned data
 * cost their loads ~15% (bench/limits.md).
 */
static int64_t capture(fl_session *s, int kind, uint64_t ref, uint32_t stream, size_t max, struct fl_capture *c)
{
	if (__builtin_expect(s->pid != atomic_load_explicit(&proc_pid, memory_order_relaxed), 0))
		return -ECHILD;
	if (!max)
		return -EINVAL;
	struct tls_slot *t = lane_for(s);
	uint32_t lane = t->lane;
	uint32_t tid = tls_tid;
	int locked = lane_enter(s, t);
	uint64_t seq = fl_load_relaxed(&s->ring.lanes[lane].seq); /* ours while entered */
	uint64_t id = record_id(seq, lane);
	/* data field: tag, five-byte length; transcript adds its stream before it */
	size_t inner = (kind == FL_KIND_TRANSCRIPT && stream ? 1 + pb_varint_size(stream) : 0) + 1 + 5;
	size_t idw = pb_varint_size(id), pidw = pb_varint_size(s->pid), tidw = pb_varint_size(tid);
	size_t hdr = 9 + 1 + idw + (ref ? 1 + pb_varint_size(ref) : 0) + 1 + pidw + 1 + tidw + 1 + 5 + inner;
	/* the pad goes into id up to 10 bytes, then pid up to 5, then tid: zero 7-bit groups, the same values */
	size_t pad = (FL_REC_ALIGN - (FL_REC_HDR + hdr) % FL_REC_ALIGN) % FL_REC_ALIGN, w;
	hdr += pad;
	w = pad < 10 - idw ? pad : 10 - idw;
	idw += w, pad -= w;
	w = pad < 5 - pidw ? pad : 5 - pidw;
	pidw += w, pad -= w;
	tidw += pad; /* beyond 5 bytes only once id >= 2^35 (a uint32 varint may have 10: decoders truncate) */
	if (hdr >= s->max_record) {
		fl_lane_drop(&s->ring, lane);
		lane_leave(s, t, locked);
		return -EMSGSIZE;
	}
	size_t cap = max < s->max_record - hdr ? max : s->max_record - hdr;
	struct capture_priv *cp = (struct capture_priv *)(void *)c->priv_;
	uint32_t len = (uint32_t)(hdr + cap);
	int rc = fl_lane_reserve(&s->ring, lane, len, &cp->res);
	if (rc < 0 && s->block && fl_lane_wait_room(&s->ring, lane, len, s->block_timeout_ns) == 0)
		rc = fl_lane_reserve(&s->ring, lane, len, &cp->res);
	if (rc < 0) {
		fl_lane_drop(&s->ring, lane);
		lane_leave(s, t, locked);
		return -ENOBUFS;
	}
	uint8_t *p = cp->res.payload + 9; /* the timestamp goes in at commit */
	*p++ = (uint8_t)pb_tag(2, PB_VARINT);
	p = pb_varint_w(p, id, idw);
	if (ref) {
		*p++ = (uint8_t)pb_tag(3, PB_VARINT);
		p = pb_varint(p, ref);
	}
	*p++ = (uint8_t)pb_tag(4, PB_VARINT);
	p = pb_varint_w(p, s->pid, pidw);
	*p++ = (uint8_t)pb_tag(5, PB_VARINT);
	p = pb_varint_w(p, tid, tidw);
	*p++ = (uint8_t)pb_tag((unsigned)kind + 5, PB_LEN);
	cp->body_len = p;
	p += 5;
	if (kind == FL_KIND_TRANSCRIPT && stream) {
		*p++ = (uint8_t)pb_tag(1, PB_VARINT);
		p = pb_varint(p, stream);
	}
	*p++ = (uint8_t)pb_tag(kind == FL_KIND_TRANSCRIPT ? 2 : 1, PB_LEN);
	cp->hdr = (uint32_t)hdr;
	cp->locked = (uint32_t)locked;
	c->data = cp->res.payload + hdr;
	c->cap = cap;
	return (int64_t)id;
}

int64_t fl__capture_transcript(fl_session *s, uint64_t ref, uint32_t stream, size_t max, struct fl_capture *c)
{
	return capture(s, FL_KIND_TRANSCRIPT, ref, stream, max, c);
}

int64_t fl__capture_input(fl_session *s, uint64_t ref, size_t max, struct fl_capture *c)
{
	return capture(s, FL_KIND_INPUT, ref, 0, max, c);
}

int64_t fl_capture_commit(fl_session *s, struct fl_capture *c, size_t n)
{
	struct capture_priv *cp = (struct capture_priv *)(void *)c->priv_;
	struct tls_slot t = {.s = s, .lane = cp->res.lane};
	int64_t ret = 0;
	if (n > c->cap) {
		ret = -EINVAL;
	} else if (n) {
		uint8_t *rec = cp->res.payload;
		uint8_t *data_len = rec + cp->hdr - 5;
		pb_varint5(cp->body_len, (uint32_t)((size_t)(data_len + 5 - (cp->body_len + 5)) + n));
		pb_varint5(data_len, (uint32_t)n);
		uint64_t ts = s->tsc ? fl_rdtsc() : (uint64_t)fl_now_ns(CLOCK_REALTIME);
		rec[0] = (uint8_t)pb_tag(1, PB_FIXED64);
		memcpy(rec + 1, &ts, 8);
		/* the record shrinks from hdr + cap to hdr + n: its end moves back by the space saved */
		uint32_t len = cp->hdr + (uint32_t)n;
		cp->res.end -= fl_rec_space(cp->res.len) - fl_rec_space(len);
		cp->res.len = len;
		uint64_t seq = cp->res.seq;
		fl_lane_commit(&s->ring, &cp->res);
		ret = (int64_t)record_id(seq, cp->res.lane);
	}
	/* abandoned: head never moved, so the bytes written are invisible and the seq is unspent */
	lane_leave(s, &t, (int)cp->locked);
	c->data = NULL;
	c->cap = 0;
	return ret;
}

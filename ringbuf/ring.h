/* SPDX-License-Identifier: MIT */
/* ring.h: the shared-memory ring of one session — layout, create/attach, lanes, publish/consume. */
#ifndef FL_RING_H
#define FL_RING_H

/*
 * The ring knows bytes, not protobuf. One POSIX shm object per session:
 *
 *   [struct fl_ring_hdr][struct fl_lane_ctl x lane_count][pad to page][lane 0 bytes]...[lane N-1 bytes]
 *
 * Each lane is a single-producer/single-consumer byte ring. head (producer) and
 * tail (consumer) are free-running 64-bit byte counters compared by subtraction.
 * A record is a 16-byte struct fl_rec_hdr and its payload, padded to 8 bytes,
 * never split across the wrap: a record that does not fit before the end is
 * preceded by a PAD record (or, when fewer than 16 bytes remain, an implicit skip).
 *
 * Concurrency contract:
 *  - head, seq, drops, cached_tail, nudge_at: written only by the lane's owner thread.
 *  - tail, wake: written only by the consumer (the drainer).
 *  - attached (the header's drainer line): written only by the consumer.
 *  - level: written by anyone with a CAS that bumps the generation.
 *  - Every field the consumer reads is untrusted and validated before use.
 *
 * Functions return 0 (or a count) on success and -errno on failure; none sets errno.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "barrier.h"

#define FL_RING_MAGIC 0x474f4c4555475546ULL /* "FUGUELOG" */
#define FL_RING_VERSION 2u		    /* 2: record tag, drainer line, nudge_at */
#define FL_CACHELINE 64
#define FL_RING_MAX_LANES 64u
#define FL_RING_MIN_LANE_SIZE 4096ull
#define FL_RING_MAX_LANE_SIZE (1ull << 30)
#define FL_RING_ID_MAX 64 /* bytes of a session id, without the NUL */
#define FL_REC_HDR 16u
#define FL_REC_ALIGN 8u

#define FL_REC_DATA 0x4443u /* "CD": a payload record */
#define FL_REC_PAD 0x4150u  /* "PA": skip to the end of the lane */

#define FL_RING_F_BLOCK 1u /* producer waits for room instead of dropping */

/* Values of fl_ring_hdr.clock. A consumer refuses a ring whose clock it does not know. */
#define FL_RING_CLOCK_REALTIME 0u /* ts_ns is CLOCK_REALTIME nanoseconds */
#define FL_RING_CLOCK_TSC 1u	  /* ts_ns is raw TSC ticks; the consumer converts (drainer/render/clock.h) */

/* Level word: low byte the value, bits 8..63 a generation bumped by every change. */
#define FL_LEVEL_VALUE(w) ((uint8_t)((w)&0xffu))
#define FL_LEVEL_GEN(w) ((w) >> 8)

struct fl_ring_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size; /* sizeof(struct fl_ring_hdr) of the writer */
	uint64_t total_size;
	uint64_t lane_size;
	uint64_t lanes_off; /* offset of the lane control table */
	uint64_t data_off;  /* offset of lane 0's bytes; lane i at data_off + i*lane_size */
	uint32_t lane_count;
	uint32_t flags;
	uint32_t pid;
	uint32_t clock;	    /* FL_RING_CLOCK_*: what the ts_ns field of every record holds */
	uint64_t pid_start; /* starttime of pid from /proc/<pid>/stat (clock ticks), for pid reuse */
	int64_t start_realtime_ns;
	int64_t start_monotonic_ns;
	char id[FL_RING_ID_MAX + 8]; /* NUL-terminated session id */
	_Atomic uint32_t closed;     /* set by the producer when it closes the session */
	uint32_t level0;	     /* the level word's value at create (its generation 0), for the first level line */
	/* FL_RING_CLOCK_TSC: one (TSC, CLOCK_REALTIME ns) pair read together at create, for the drainer */
	uint64_t anchor_tsc;
	int64_t anchor_realtime_ns;
	_Alignas(FL_CACHELINE) _Atomic uint64_t level; /* alone on its cache line */
	uint8_t level_pad[FL_CACHELINE - sizeof(uint64_t)];
	/*
	 * The drainer's line, next to its wake words: the only header bytes it
	 * writes. attached is a futex word, 0 until a drainer has taken the ring
	 * into its table, then that drainer's pid; the producer may wait on it at
	 * open (fl_ring_wait_attached) and uses a change of it as its cue to map
	 * the drainer's doorbell (ringbuf/doorbell.h).
	 */
	_Alignas(FL_CACHELINE) _Atomic uint32_t attached;
	uint8_t drainer_pad[FL_CACHELINE - sizeof(uint32_t)];
};

struct fl_lane_ctl {
	/* producer's cache line */
	_Alignas(FL_CACHELINE) _Atomic uint64_t head;
	_Atomic uint64_t seq;	  /* next record sequence number; counts drops too */
	_Atomic uint64_t drops;	  /* records lost to a full lane */
	uint64_t cached_tail;	  /* owner's copy of tail, reloaded only when short of room */
	_Atomic uint32_t owner;	  /* tid of the owning thread, 0 = free */
	_Atomic uint32_t waiters; /* producers asleep on wake in blocking mode */
	uint64_t nudge_at;	  /* head at which the owner next looks at the doorbell (fl_lane_nudge) */
	/* consumer's cache line */
	_Alignas(FL_CACHELINE) _Atomic uint64_t tail;
	_Atomic uint32_t wake; /* futex word: bumped by the consumer after moving tail */
};

struct fl_rec_hdr {
	uint32_t len;  /* payload bytes, without header and padding */
	uint16_t type; /* FL_REC_DATA or FL_REC_PAD */
	uint16_t tag;  /* low 16 bits of the level word when reserved: the level and 8 bits of its generation */
	uint64_t seq;  /* lane sequence number */
};

struct fl_bell;

/* Process-local handle of a mapped ring. */
struct fl_ring {
	struct fl_ring_hdr *hdr;
	struct fl_lane_ctl *lanes;
	uint8_t *data;
	uint64_t lane_size; /* trusted copies, validated at attach */
	uint64_t map_size;
	uint32_t lane_count;
	int fd;
	/* producer side: the doorbell (fl_ring_bell_use); unused by a consumer */
	struct fl_bell *_Atomic bell;
	_Atomic uint32_t bell_for; /* the attached value the last doorbell lookup was made for */
	_Atomic uint32_t bell_busy;
	char bell_name[96];
};

/* Parameters of fl_ring_create; 0 in lane_count/lane_size means 4 lanes of 1 MiB. */
struct fl_ring_params {
	const char *id;	     /* session id, already validated by the caller */
	uint32_t lane_count; /* power of two, 1..FL_RING_MAX_LANES */
	uint64_t lane_size;  /* power of two, FL_RING_MIN_LANE_SIZE..FL_RING_MAX_LANE_SIZE */
	uint32_t flags;	     /* FL_RING_F_* */
	uint8_t level;	     /* initial value of the level word */
	uint32_t clock;	     /* FL_RING_CLOCK_*; TSC only when fl_tsc_usable() said so */
};

/* Bytes a ring with these sizes needs, or 0 when they are out of range. */
uint64_t fl_ring_size(uint32_t lane_count, uint64_t lane_size);

/* Builds the shm name "/<prefix><id>" into out; prefix NULL means $FUGUE_SHM_PREFIX or "fugue-". */
int fl_ring_name(char *out, size_t cap, const char *prefix, const char *id);

/* The shm prefix in force: $FUGUE_SHM_PREFIX when set and valid, else "fugue-". */
const char *fl_ring_prefix(void);

/*
 * Creates the shm object name (mode 0600, O_EXCL) and maps it. Fills the header
 * with this process's pid, start time and clocks. Returns 0, -EEXIST when a ring
 * of that name exists, -EINVAL for bad params, or another -errno.
 */
int fl_ring_create(struct fl_ring *r, const char *name, const struct fl_ring_params *p);

/*
 * Opens (O_NOFOLLOW) and maps an existing ring read-write and validates its
 * header against the mapping. Only a regular object owned by this process's
 * euid with no group or other permission bits is mapped (fstat before mmap).
 * The fd is closed once the ring is mapped (r->fd is -1). On failure returns
 * -errno and, when why is not NULL, a one-line reason (-EPROTO: bad
 * magic/version/layout; -EBADF: not a ring at all; -EPERM: not ours or not
 * private; -ENOMEM: the SIGBUS guard could not register it).
 */
int fl_ring_attach(struct fl_ring *r, const char *name, char *why, size_t whylen);

/*
 * Validates a ring image of size bytes at base: magic, version, sizes, offsets,
 * lane count, id. Pure: reads only [base, base+size). On success fills the
 * trusted fields of r (no fd). Used by attach and by the fuzzers.
 */
int fl_ring_validate(struct fl_ring *r, void *base, uint64_t size, char *why, size_t whylen);

/* Unmaps and closes; the shm object stays. Safe on a zeroed handle. */
void fl_ring_detach(struct fl_ring *r);

/* Removes the shm object by name. */
int fl_ring_unlink(const char *name);

/*
 * 1 while the process that created the ring lives: its pid exists and has the
 * start time recorded in the header (so a reused pid does not count); 0 when it
 * is gone (no such pid, or another start time); -errno when the check itself
 * failed (EMFILE, ENOMEM, ...), which says nothing about the producer.
 */
int fl_ring_owner_alive(const struct fl_ring *r);

/* starttime of a process from /proc/<pid>/stat in clock ticks: 0, -ESRCH when it is gone, or -errno. */
int fl_proc_start(int pid, uint64_t *start);

/* ---- clocks ------------------------------------------------------------------------ */

/*
 * 1 when this machine's TSC may stamp records: x86-64, and /proc/cpuinfo lists
 * constant_tsc (fixed rate) and nonstop_tsc (keeps counting in deep C-states).
 * Read once per process; any thread.
 */
int fl_tsc_usable(void);

/* The time stamp counter, not fenced: it overlaps with the work around it. 0 off x86-64. */
static inline uint64_t fl_rdtsc(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#else
	return 0;
#endif
}

/*
 * Reads the TSC and CLOCK_REALTIME as close together as it can (the tightest
 * of a few rdtsc / clock_gettime / rdtsc brackets, TSC at its middle). Returns
 * the bracket width in ticks: the uncertainty of the pair.
 */
uint64_t fl_tsc_anchor(uint64_t *tsc, int64_t *realtime_ns);

/* ---- level word ---------------------------------------------------------------- */

static inline uint64_t fl_ring_level_word(const struct fl_ring *r)
{
	/* pairs with the CAS in fl_ring_level_set */
	return fl_load_acquire(&r->hdr->level);
}

/*
 * Sets the level value with one CAS that bumps the generation. Any thread, any
 * process with write access. Returns the word before the change.
 */
uint64_t fl_ring_level_set(struct fl_ring *r, uint8_t value);

/* ---- start-up handshake and doorbell (ringbuf/doorbell.h) ---------------------------- */

/*
 * Producer: waits until a drainer has attached the ring (the header's attached
 * word is non-zero), at most timeout_ns. Returns 0 when attached, -ETIMEDOUT.
 */
int fl_ring_wait_attached(struct fl_ring *r, uint64_t timeout_ns);

/* Consumer: marks the ring attached by this process and wakes a producer waiting at open. */
void fl_ring_set_attached(struct fl_ring *r);

/* 1 when a drainer has attached the ring. */
static inline int fl_ring_attached(const struct fl_ring *r)
{
	/* pairs with the store-release in fl_ring_set_attached */
	return fl_load_acquire(&r->hdr->attached) != 0;
}

/*
 * Producer: the doorbell of the drainer for this shm prefix (NULL: $FUGUE_SHM_PREFIX
 * or "fugue-"). Maps it now when it exists, else later, on the slow path, once a
 * drainer has attached the ring. Without one, a sleeping drainer finds the
 * records on its safety timer. Returns 0 or -errno (only for a bad prefix).
 */
int fl_ring_bell_use(struct fl_ring *r, const char *prefix);

/* Producer: rings the doorbell when a drainer sleeps (session close, a full lane in blocking mode). */
void fl_ring_bell_ring(struct fl_ring *r);

/* ---- producer side: only the lane's owner calls these ----------------------------- */

static inline uint64_t fl_rec_space(uint32_t len)
{
	return FL_REC_HDR + (((uint64_t)len + FL_REC_ALIGN - 1) & ~(uint64_t)(FL_REC_ALIGN - 1));
}

/* Largest payload a lane accepts: a quarter of it, so progress never stalls on one record. */
static inline uint32_t fl_ring_max_record(const struct fl_ring *r)
{
	return (uint32_t)(r->lane_size / 4 - FL_REC_HDR);
}

struct fl_reservation {
	uint8_t *payload; /* len bytes to fill */
	uint64_t seq;	  /* sequence number the record will carry */
	uint64_t end;	  /* head after commit */
	uint32_t len;
	uint16_t lane; /* < FL_RING_MAX_LANES */
	uint16_t tag;  /* the record's tag: the level word's low 16 bits at reserve */
};

/*
 * Reserves room for a len-byte record in lane. No system call, no lock. Returns
 * 0 with res filled, or -ENOBUFS when the lane is full (the caller then calls
 * fl_lane_drop or waits). len must not exceed fl_ring_max_record.
 */
static inline int fl_lane_reserve(struct fl_ring *r, uint32_t lane, uint32_t len, struct fl_reservation *res)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	uint64_t size = r->lane_size;
	uint64_t head = fl_load_relaxed(&c->head); /* our own store */
	uint64_t off = head & (size - 1);
	uint64_t need = fl_rec_space(len);
	uint64_t skip = off + need > size ? size - off : 0;
	uint64_t end = head + skip + need;

	if (end - c->cached_tail > size) {
		/* pairs with the store-release of tail in fl_lane_release */
		c->cached_tail = fl_load_acquire(&c->tail);
		if (end - c->cached_tail > size)
			return -105; /* -ENOBUFS, without <errno.h> in every includer */
	}
	uint8_t *lane_base = r->data + (uint64_t)lane * size;
	if (skip >= FL_REC_HDR) {
		struct fl_rec_hdr pad = {(uint32_t)(skip - FL_REC_HDR), FL_REC_PAD, 0, 0};
		memcpy(lane_base + off, &pad, sizeof pad);
	}
	uint64_t at = skip ? 0 : off;
	/* the same line the inline level check just read: the level this record is emitted under */
	res->tag = (uint16_t)fl_load_relaxed(&r->hdr->level);
	res->payload = lane_base + at + FL_REC_HDR;
	res->seq = fl_load_relaxed(&c->seq); /* our own store */
	res->end = end;
	res->len = len;
	res->lane = (uint16_t)lane;
	return 0;
}

/*
 * The doorbell's slow path, called by fl_lane_commit when head passes the
 * lane's nudge_at: reloads tail, and when the lane holds at least a watermark
 * (FL_BELL_WATERMARK) while a drainer sleeps, rings the doorbell once. Sets the
 * next nudge_at. Owner only.
 */
void fl_lane_nudge(struct fl_ring *r, uint32_t lane, uint64_t head);

/*
 * Publishes a reserved record: header, then one store-release of head. The
 * doorbell costs the common path one compare: nudge_at is a position on the
 * owner's own cache line, moved ahead by the slow path.
 */
static inline void fl_lane_commit(struct fl_ring *r, const struct fl_reservation *res)
{
	struct fl_lane_ctl *c = &r->lanes[res->lane];
	struct fl_rec_hdr h = {res->len, FL_REC_DATA, res->tag, res->seq};
	memcpy(res->payload - FL_REC_HDR, &h, sizeof h);
	/* pairs with the load-acquire of head in fl_lane_peek */
	fl_store_release(&c->head, res->end);
	/* after head: a consumer that sees seq also sees this record (fl_lane_snapshot) */
	fl_store_release(&c->seq, res->seq + 1);
	if (__builtin_expect((int64_t)(res->end - c->nudge_at) >= 0, 0))
		fl_lane_nudge(r, res->lane, res->end);
}

/* Counts one record lost to a full lane; its sequence number is spent, so the gap shows. */
static inline uint64_t fl_lane_drop(struct fl_ring *r, uint32_t lane)
{
	struct fl_lane_ctl *c = &r->lanes[lane];
	uint64_t seq = fl_load_relaxed(&c->seq);
	/* pairs with the load-acquire of seq in fl_lane_snapshot */
	fl_store_release(&c->seq, seq + 1);
	/* after seq, release: a reader that sees this count also sees a seq at least as new */
	fl_store_release(&c->drops, fl_load_relaxed(&c->drops) + 1);
	return seq;
}

/*
 * Blocking mode: waits until a len-byte record fits in lane, spinning briefly
 * then sleeping on the lane's futex word, which the consumer bumps after moving
 * tail. timeout_ns 0 waits forever. Returns 0 when room was seen, -ETIMEDOUT.
 */
int fl_lane_wait_room(struct fl_ring *r, uint32_t lane, uint32_t len, uint64_t timeout_ns);

/* ---- consumer side: one consumer per ring ----------------------------------------- */

struct fl_rec {
	const uint8_t *data; /* inside the mapping; the producer could still scribble on it */
	uint32_t len;
	uint16_t tag; /* as the producer wrote it: untrusted */
	uint64_t seq;
};

/*
 * Reads up to max records of lane starting at its tail, validating every
 * header, length and offset against the lane. Does not move the tail. Returns
 * the count (0 when empty) and sets *next_tail to the tail after them, or
 * -EBADMSG with a reason when the lane is corrupt (the caller quarantines it).
 * Records before a damaged one are returned first; the call that starts at
 * the damage returns -EBADMSG, so nothing sound is lost to a later fault.
 */
int fl_lane_peek(struct fl_ring *r, uint32_t lane, struct fl_rec *out, unsigned max, uint64_t *next_tail, char *why,
		 size_t whylen);

/* Stores the new tail (release) and wakes producers blocked on the lane. */
void fl_lane_release(struct fl_ring *r, uint32_t lane, uint64_t new_tail);

/*
 * A consistent look at a lane's counters for loss accounting: every record with
 * a sequence number below *seq has been published at or before *head, so a
 * number below *seq missing from the records up to *head was dropped; and
 * *drops <= *seq, so seq - drops (records written) never underflows.
 */
static inline void fl_lane_snapshot(const struct fl_ring *r, uint32_t lane, uint64_t *seq, uint64_t *head,
				    uint64_t *drops)
{
	const struct fl_lane_ctl *c = &r->lanes[lane];
	/* first, pairs with the store-release of drops in fl_lane_drop (which follows its seq store) */
	*drops = fl_load_acquire(&c->drops);
	/* pairs with the store-release of seq in fl_lane_commit/fl_lane_drop */
	*seq = fl_load_acquire(&c->seq);
	/* pairs with the store-release of head in fl_lane_commit */
	*head = fl_load_acquire(&c->head);
}

#endif

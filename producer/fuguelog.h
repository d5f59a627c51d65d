/* SPDX-License-Identifier: MIT */
/* fuguelog.h: the one public header of libfuguelog — sessions, levels, typed emit calls. */
#ifndef FUGUELOG_H
#define FUGUELOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A session process opens one session, which creates its shared-memory ring
 * (/dev/shm/<prefix><id>); every emit call encodes one protobuf Event straight
 * into the calling thread's lane. An out-of-process drainer (fugue-logd) turns
 * the ring into files. Errors are returned as -errno; nothing sets errno.
 *
 * Thread safety: every call may be made from any thread, except that
 * fl_session_close must not race with emits on the same session.
 */

/* Levels are cumulative: a session at level L records every kind whose minimum is <= L. */
enum fl_level {
	FL_LEVEL_SPAWNS = 1,  /* session lifecycle, user actions and commands */
	FL_LEVEL_SIGNALS = 2, /* + completions, errors, state changes */
	FL_LEVEL_PROMPTS = 3, /* + initial prompts */
	FL_LEVEL_FULL = 4,    /* + complete transcripts and input */
};

/* Kind numbers are the Event oneof field numbers minus 5 (proto/fugue_event.proto). */
enum fl_kind {
	FL_KIND_SPAWN = 1,
	FL_KIND_EXIT,
	FL_KIND_ACTION,
	FL_KIND_COMMAND,
	FL_KIND_COMPLETION,
	FL_KIND_ERROR,
	FL_KIND_STATE,
	FL_KIND_PROMPT,
	FL_KIND_TRANSCRIPT,
	FL_KIND_INPUT,
	FL_KIND_LEVEL,	 /* written by the drainer only */
	FL_KIND_DROPPED, /* written by the drainer only */
	FL_KIND_MAX = FL_KIND_DROPPED,
};

enum fl_class { FL_CLASS_SYSTEM = 0, FL_CLASS_USER = 1 };

/* What a full lane does: drop the record and count it (default), or wait for room. */
enum fl_full_policy { FL_FULL_DROP = 0, FL_FULL_BLOCK = 1 };

/*
 * What stamps each event. AUTO: the TSC when the CPU has constant_tsc and
 * nonstop_tsc (one unfenced rdtsc, converted to CLOCK_REALTIME by the drainer),
 * else clock_gettime(CLOCK_REALTIME). TSC without those flags falls back to
 * REALTIME. $FUGUE_CLOCK (auto, realtime, tsc) overrides the option.
 */
enum fl_clock { FL_CLOCK_AUTO = 0, FL_CLOCK_REALTIME = 1, FL_CLOCK_TSC = 2 };

/* Session options; {0} is a sane default for every field. */
struct fl_session_opts {
	const char *id;		    /* NULL: a new UUIDv7; else [A-Za-z0-9._-]{1,64} */
	int level;		    /* 0: $FUGUE_SESSION_LOG, else config default_level, else signals;
				       a non-zero level here is overridden by $FUGUE_SESSION_LOG only */
	uint32_t lanes;		    /* 0: 4. Power of two, at most 64: one per emitting thread */
	uint64_t lane_size;	    /* 0: 1 MiB. Power of two, 4 KiB .. 1 GiB */
	int full_policy;	    /* enum fl_full_policy */
	uint64_t block_timeout_ns;  /* FL_FULL_BLOCK: 0 waits forever, else drops after this */
	const char *shm_prefix;	    /* NULL: $FUGUE_SHM_PREFIX, else "fugue-" */
	const char *config_path;    /* NULL: $HOME/.fugue/logging.conf */
	int clock;		    /* enum fl_clock; 0: AUTO */
	uint64_t attach_timeout_ns; /* 0: do not wait. Else open waits up to this long for a drainer to
				       attach the ring, and returns FL_OPEN_UNATTACHED if none did */
};

/* Counters of one session, summed over its lanes. */
struct fl_stats {
	uint64_t emitted;  /* calls that passed the level check */
	uint64_t admitted; /* written into the ring */
	uint64_t dropped;  /* lost to a full lane or refused as too large */
	uint32_t lanes;
	uint64_t lane_size;
	int clock; /* FL_CLOCK_REALTIME or FL_CLOCK_TSC: the one in force */
};

typedef struct fl_session fl_session;

/* The part of a session the inline level check reads; do not touch. */
struct fl__session_head {
	const _Atomic uint64_t *level_word; /* in shared memory: low byte is the level */
};

/*
 * fl_session_open's result when opts->attach_timeout_ns passed without a
 * drainer attaching the ring: the session is open and usable (*out is set),
 * but events may be lost to a full lane until a drainer comes.
 */
#define FL_OPEN_UNATTACHED 1

/*
 * Opens a session: validates the id, resolves the level, creates the ring, and
 * with opts->attach_timeout_ns waits (bounded) until a drainer has attached it.
 * Returns 0 and *out, FL_OPEN_UNATTACHED and *out (the wait timed out), or
 * -EINVAL (bad id, level or geometry; *why, when given, says which), -EEXIST
 * (a live ring of that id exists), or another -errno.
 */
int fl_session_open(fl_session **out, const struct fl_session_opts *opts, char *why, size_t whylen);

/* Marks the ring closed (the drainer then finishes the files and removes it) and frees s. */
int fl_session_close(fl_session *s);

/* The session's id, valid until close. */
const char *fl_session_id(const fl_session *s);

/* Sets the level with one atomic write to the shared level word; returns the old level or -EINVAL. */
int fl_set_level(fl_session *s, int level);

/* The current level (1..4). */
int fl_get_level(const fl_session *s);

/* Fills *st; cheap enough to poll. */
int fl_session_stats(const fl_session *s, struct fl_stats *st);

/* "spawns".."full" (or "1".."4") to a level; -EINVAL for anything else. */
int fl_level_parse(const char *name);
/* Level to name; "?" when out of range. */
const char *fl_level_name(int level);
/* Kind to its name ("spawn", ...), minimum level and audit class; NULL/0/-1 when out of range. */
const char *fl_kind_name(int kind);
int fl_kind_min_level(int kind);
int fl_kind_class(int kind);
/* Name to kind; -EINVAL when unknown. */
int fl_kind_parse(const char *name);

/* 0 when id matches [A-Za-z0-9._-]{1,64} and is not "." or ".."; -EINVAL otherwise. */
int fl_id_check(const char *id);

/* Writes a new UUIDv7 (36 chars + NUL) into out[37]. */
void fl_id_new(char out[37]);

/*
 * Emit calls. Each returns the event's id (> 0) when it was written, 0 when its
 * kind is above the session's level, -ENOBUFS when the lane was full (the loss
 * is counted and reported by the drainer), -EMSGSIZE when the event is larger
 * than a quarter of a lane (counted as dropped too), -ECHILD in a child forked
 * after the session was opened (the ring is the parent's; open a new session).
 * ref is the id of a related event, or 0.
 * The level check is inline: a relaxed load, a compare, a branch.
 */
int64_t fl__emit_spawn(fl_session *s, uint64_t ref, uint32_t pid, uint32_t ppid, const char *const *argv, uint32_t argc,
		       const char *cwd);
int64_t fl__emit_exit(fl_session *s, uint64_t ref, int32_t status, int32_t sig, uint64_t duration_ns);
int64_t fl__emit_action(fl_session *s, uint64_t ref, const char *action, const char *target, const char *detail);
int64_t fl__emit_command(fl_session *s, uint64_t ref, const char *name, const char *const *args, uint32_t nargs);
int64_t fl__emit_completion(fl_session *s, uint64_t ref, const char *task, const char *outcome, uint64_t duration_ns);
int64_t fl__emit_error(fl_session *s, uint64_t ref, int32_t code, const char *message, const char *origin);
int64_t fl__emit_state(fl_session *s, uint64_t ref, const char *from, const char *to, const char *reason);
int64_t fl__emit_prompt(fl_session *s, uint64_t ref, const void *text, size_t len);
int64_t fl__emit_transcript(fl_session *s, uint64_t ref, uint32_t stream, const void *data, size_t len);
int64_t fl__emit_input(fl_session *s, uint64_t ref, const void *data, size_t len);

static inline int fl__admits(const fl_session *s, int min_level)
{
	const struct fl__session_head *h = (const struct fl__session_head *)s;
	return (int)(uint8_t)atomic_load_explicit(h->level_word, memory_order_relaxed) >= min_level;
}

/*
 * The filtered path is the fall-through: a taken branch per filtered call
 * doubles the cost of a tight loop (fugue-bench emit.filtered), while the
 * admitted path, tens of ns anyway, pays at most one taken jump.
 */
#define FL__EMIT(min, call) (__builtin_expect(fl__admits(s, (min)), 0) ? (call) : 0)

static inline int64_t fl_emit_spawn(fl_session *s, uint64_t ref, uint32_t pid, uint32_t ppid, const char *const *argv,
				    uint32_t argc, const char *cwd)
{
	return FL__EMIT(FL_LEVEL_SPAWNS, fl__emit_spawn(s, ref, pid, ppid, argv, argc, cwd));
}
static inline int64_t fl_emit_exit(fl_session *s, uint64_t ref, int32_t status, int32_t sig, uint64_t duration_ns)
{
	return FL__EMIT(FL_LEVEL_SPAWNS, fl__emit_exit(s, ref, status, sig, duration_ns));
}
static inline int64_t fl_emit_action(fl_session *s, uint64_t ref, const char *action, const char *target,
				     const char *detail)
{
	return FL__EMIT(FL_LEVEL_SPAWNS, fl__emit_action(s, ref, action, target, detail));
}
static inline int64_t fl_emit_command(fl_session *s, uint64_t ref, const char *name, const char *const *args,
				      uint32_t nargs)
{
	return FL__EMIT(FL_LEVEL_SPAWNS, fl__emit_command(s, ref, name, args, nargs));
}
static inline int64_t fl_emit_completion(fl_session *s, uint64_t ref, const char *task, const char *outcome,
					 uint64_t duration_ns)
{
	return FL__EMIT(FL_LEVEL_SIGNALS, fl__emit_completion(s, ref, task, outcome, duration_ns));
}
static inline int64_t fl_emit_error(fl_session *s, uint64_t ref, int32_t code, const char *message, const char *origin)
{
	return FL__EMIT(FL_LEVEL_SIGNALS, fl__emit_error(s, ref, code, message, origin));
}
static inline int64_t fl_emit_state(fl_session *s, uint64_t ref, const char *from, const char *to, const char *reason)
{
	return FL__EMIT(FL_LEVEL_SIGNALS, fl__emit_state(s, ref, from, to, reason));
}
static inline int64_t fl_emit_prompt(fl_session *s, uint64_t ref, const void *text, size_t len)
{
	return FL__EMIT(FL_LEVEL_PROMPTS, fl__emit_prompt(s, ref, text, len));
}
static inline int64_t fl_emit_transcript(fl_session *s, uint64_t ref, uint32_t stream, const void *data, size_t len)
{
	return FL__EMIT(FL_LEVEL_FULL, fl__emit_transcript(s, ref, stream, data, len));
}
static inline int64_t fl_emit_input(fl_session *s, uint64_t ref, const void *data, size_t len)
{
	return FL__EMIT(FL_LEVEL_FULL, fl__emit_input(s, ref, data, len));
}

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT */
/* fuguelog.h: the one public header of libfuguelog — sessions, levels, typed emit calls. */
#ifndef FUGUELOG_H
#define FUGUELOG_H

#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
#include <atomic>
#else
#include <stdatomic.h>
#endif

/*
 * The version of this header. fl_version() returns the library's, so a program
 * can refuse a library older than the header it was built with. The soname
 * stays libfuguelog.so.0 while structs only grow into their reserved fields.
 */
#define FUGUELOG_VERSION_MAJOR 0
#define FUGUELOG_VERSION_MINOR 2
#define FUGUELOG_VERSION_PATCH 0
#define FUGUELOG_VERSION_NUMBER (FUGUELOG_VERSION_MAJOR * 10000 + FUGUELOG_VERSION_MINOR * 100 + FUGUELOG_VERSION_PATCH)

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

/* FUGUELOG_VERSION_NUMBER of the library actually loaded. */
unsigned fl_version(void);

/* Levels are cumulative: a session at level L records every kind whose minimum is <= L. */
enum fl_level {
	FL_LEVEL_DEFAULT = 0, /* in fl_session_opts only: resolve it (see there) */
	FL_LEVEL_SPAWNS = 1,  /* session lifecycle, user actions and commands */
	FL_LEVEL_SIGNALS = 2, /* + completions, errors, state changes */
	FL_LEVEL_PROMPTS = 3, /* + initial prompts */
	FL_LEVEL_FULL = 4,    /* + complete transcripts and input */
};

enum fl_class { FL_CLASS_SYSTEM = 0, FL_CLASS_USER = 1 };

/*
 * The one list of event kinds: X(NAME, "name", number, minimum level, class).
 * The number is the kind's Event oneof field number minus 5
 * (proto/fugue_event.proto); docs/levels.md's tables are checked against it
 * (tests/test_vocabulary.c). The library's tables, the inline emitters below
 * and the drainer all expand it; add a kind here and nowhere else.
 */
#define FL_KINDS(X)                                                                                                    \
	X(SPAWN, "spawn", 1, SPAWNS, SYSTEM)                                                                           \
	X(EXIT, "exit", 2, SPAWNS, SYSTEM)                                                                             \
	X(ACTION, "action", 3, SPAWNS, USER)                                                                           \
	X(COMMAND, "command", 4, SPAWNS, USER)                                                                         \
	X(COMPLETION, "completion", 5, SIGNALS, SYSTEM)                                                                \
	X(ERROR, "error", 6, SIGNALS, SYSTEM)                                                                          \
	X(STATE, "state", 7, SIGNALS, SYSTEM)                                                                          \
	X(PROMPT, "prompt", 8, PROMPTS, USER)                                                                          \
	X(TRANSCRIPT, "transcript", 9, FULL, SYSTEM)                                                                   \
	X(INPUT, "input", 10, FULL, USER)                                                                              \
	X(LEVEL, "level", 11, SPAWNS, SYSTEM)	  /* drainer */                                                        \
	X(DROPPED, "dropped", 12, SPAWNS, SYSTEM) /* drainer */

#define FL__KIND_ENUM(K, name, num, lvl, cls) FL_KIND_##K = num,
enum fl_kind {
	FL_KINDS(FL__KIND_ENUM) FL_KIND_MAX = FL_KIND_DROPPED,
	FL_KIND_FIRST_DRAINER = FL_KIND_LEVEL, /* kinds from here on are written by the drainer only */
};
#undef FL__KIND_ENUM

/* FL_KIND_MIN_<NAME>: a kind's minimum level as a constant, for inline level checks. */
#define FL__KIND_MIN(K, name, num, lvl, cls) FL_KIND_MIN_##K = FL_LEVEL_##lvl,
enum fl__kind_min { FL_KINDS(FL__KIND_MIN) };
#undef FL__KIND_MIN

/* What a full lane does: drop the record and count it (default), or wait for room. */
enum fl_full_policy { FL_FULL_DROP = 0, FL_FULL_BLOCK = 1 };

/*
 * What stamps each event. AUTO: the TSC when the CPU has constant_tsc and
 * nonstop_tsc (one unfenced rdtsc, converted to CLOCK_REALTIME by the drainer),
 * else clock_gettime(CLOCK_REALTIME). TSC without those flags falls back to
 * REALTIME. $FUGUE_CLOCK (auto, realtime, tsc) overrides the option.
 */
enum fl_clock { FL_CLOCK_AUTO = 0, FL_CLOCK_REALTIME = 1, FL_CLOCK_TSC = 2 };

/*
 * Session options; {0} is a sane default for every field. The struct never
 * changes size: a new option takes the front slot of reserved[], which must be
 * zero (fl_session_open refuses a non-zero slot it does not know with
 * -EINVAL, so a program built against a newer header fails loudly on an
 * older library instead of losing the option).
 */
struct fl_session_opts {
	const char *id;			 /* NULL: a new UUIDv7; else [A-Za-z0-9._-]{1,64} */
	enum fl_level level;		 /* DEFAULT: $FUGUE_SESSION_LOG, else config default_level, else
					    signals; any other level is overridden by $FUGUE_SESSION_LOG only */
	uint32_t lanes;			 /* 0: 4. Power of two, at most 64: one per emitting thread */
	uint64_t lane_size;		 /* 0: 1 MiB. Power of two, 4 KiB .. 1 GiB */
	enum fl_full_policy full_policy; /* 0: FL_FULL_DROP */
	uint64_t block_timeout_ns;	 /* FL_FULL_BLOCK: 0 waits forever, else drops after this */
	const char *shm_prefix;		 /* NULL: $FUGUE_SHM_PREFIX, else "fugue-" */
	const char *config_path;	 /* NULL: $HOME/.fugue/logging.conf (may be missing); else must exist */
	enum fl_clock clock;		 /* 0: FL_CLOCK_AUTO */
	uint64_t attach_timeout_ns;	 /* 0: do not wait. Else open waits up to this long for a drainer
					    to attach the ring; FL_OPEN_UNATTACHED says none did */
	uint64_t reserved[7];		 /* must be zero */
};

/* Counters of one session, summed over its lanes. reserved[] grows like fl_session_opts'. */
struct fl_stats {
	uint64_t emitted;  /* calls that passed the level check */
	uint64_t admitted; /* written into the ring */
	uint64_t dropped;  /* lost to a full lane or refused as too large */
	uint32_t lanes;
	uint64_t lane_size;
	enum fl_clock clock;  /* FL_CLOCK_REALTIME or FL_CLOCK_TSC: the one in force */
	uint64_t attached;    /* 1 once a drainer has attached the ring (its records are being drained), else 0;
				 a library older than this field leaves it 0 */
	uint64_t reserved[7]; /* zero */
};

typedef struct fl_session fl_session;

/*
 * The part of a session the inline level check reads; do not write it. It is
 * the first member of every fl_session, so bindings may read the level word
 * through it: one relaxed 64-bit load, the level in the low byte.
 */
struct fl__session_head {
#ifdef __cplusplus
	const std::atomic<uint64_t> *level_word; /* same object as the C view: lock-free, 8 bytes */
#else
	const _Atomic uint64_t *level_word; /* in shared memory: low byte is the level */
#endif
};

/*
 * fl_session_open's result when opts->attach_timeout_ns passed without a
 * drainer attaching the ring: the session is open and usable (*out is set),
 * but events may be lost to a full lane until a drainer comes.
 */
#define FL_OPEN_UNATTACHED 1

/*
 * Opens a session: validates the id, resolves the level, reads the config
 * file (the same reader and rules as fugue-logd and fugue-log,
 * docs/configuration.md), creates the ring, and with opts->attach_timeout_ns
 * waits (bounded) until a drainer has attached it. Returns 0 and *out,
 * FL_OPEN_UNATTACHED and *out (the wait timed out: the session is usable), or
 * -EINVAL (bad id, level, geometry or reserved field; a config file with an
 * unknown key or section, a bad value or a syntax error; an explicit
 * config_path that does not exist) with *why, when given, saying which —
 * file:line, the key and what is allowed for the config —, -EEXIST (a live
 * ring of that id exists), or another -errno.
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

/* Fills *st (reserved[] zeroed); cheap enough to poll. */
int fl_session_stats(const fl_session *s, struct fl_stats *st);

/*
 * The one parser of level names, used by the library, fugue-log and
 * fugue-logd: "spawns", "signals", "prompts", "full" in any case ("FULL"), or
 * "1".."4"; -EINVAL for anything else (no spaces).
 */
int fl_level_parse(const char *name);
/* Level to its lower-case name; "?" when out of range. */
const char *fl_level_name(int level);
/* Kind to its name ("spawn", ...), minimum level and audit class; NULL/0/-1 when out of range. */
const char *fl_kind_name(int kind);
int fl_kind_min_level(int kind);
int fl_kind_class(int kind);
/* Name to kind (exact, lower case); -EINVAL when unknown. */
int fl_kind_parse(const char *name);

/* 0 when id matches [A-Za-z0-9._-]{1,64} and is not "." or ".."; -EINVAL otherwise. */
int fl_id_check(const char *id);

/* Writes a new UUIDv7 (36 chars + NUL) into out[37]. */
void fl_id_new(char out[37]);

/*
 * Emit calls, one per kind. Each encodes one Event into the calling thread's
 * lane and returns:
 *   > 0        the event's id (unique in the session; pass it as another
 *              event's ref to tie the two together across files),
 *   0          the kind is above the session's level: nothing was done,
 *   -ENOBUFS   the lane was full (FL_FULL_DROP, or FL_FULL_BLOCK timed out);
 *              the loss is counted and the drainer writes a `dropped` line,
 *   -EMSGSIZE  the event is larger than a quarter of a lane (counted as dropped),
 *   -ECHILD    called in a child forked after the session was opened (the ring
 *              is the parent's; open a new session).
 * ref is the id of a related event, or 0. Strings may be NULL (recorded as
 * empty); byte payloads may hold anything. The level check is inline, one
 * relaxed load, a compare and a branch; only admitted calls enter the library.
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
#ifdef __cplusplus
	return (int)(uint8_t)h->level_word->load(std::memory_order_relaxed) >= min_level;
#else
	return (int)(uint8_t)atomic_load_explicit(h->level_word, memory_order_relaxed) >= min_level;
#endif
}

/*
 * The filtered path is the fall-through: a taken branch per filtered call
 * doubles the cost of a tight loop (fugue-bench emit.filtered), while the
 * admitted path, tens of ns anyway, pays at most one taken jump.
 */
#define FL__EMIT(kind, call) (__builtin_expect(fl__admits(s, FL_KIND_MIN_##kind), 0) ? (call) : 0)

/* `spawn` (spawns, system): a session or child process started — its pid, ppid, argv[argc] and cwd. */
static inline int64_t fl_emit_spawn(fl_session *s, uint64_t ref, uint32_t pid, uint32_t ppid, const char *const *argv,
				    uint32_t argc, const char *cwd)
{
	return FL__EMIT(SPAWN, fl__emit_spawn(s, ref, pid, ppid, argv, argc, cwd));
}

/* `exit` (spawns, system): it ended — wait status, terminating signal (0: none), how long it ran. */
static inline int64_t fl_emit_exit(fl_session *s, uint64_t ref, int32_t status, int32_t sig, uint64_t duration_ns)
{
	return FL__EMIT(EXIT, fl__emit_exit(s, ref, status, sig, duration_ns));
}

/* `action` (spawns, user): an explicit user action ("kill", "attach", ...), its target and detail. */
static inline int64_t fl_emit_action(fl_session *s, uint64_t ref, const char *action, const char *target,
				     const char *detail)
{
	return FL__EMIT(ACTION, fl__emit_action(s, ref, action, target, detail));
}

/* `command` (spawns, user): a command the user ran — its name and args[nargs]. */
static inline int64_t fl_emit_command(fl_session *s, uint64_t ref, const char *name, const char *const *args,
				      uint32_t nargs)
{
	return FL__EMIT(COMMAND, fl__emit_command(s, ref, name, args, nargs));
}

/* `completion` (signals, system): a task or turn completed — its name, outcome and duration. */
static inline int64_t fl_emit_completion(fl_session *s, uint64_t ref, const char *task, const char *outcome,
					 uint64_t duration_ns)
{
	return FL__EMIT(COMPLETION, fl__emit_completion(s, ref, task, outcome, duration_ns));
}

/* `error` (signals, system): an error — its code, message and origin. */
static inline int64_t fl_emit_error(fl_session *s, uint64_t ref, int32_t code, const char *message, const char *origin)
{
	return FL__EMIT(ERROR, fl__emit_error(s, ref, code, message, origin));
}

/* `state` (signals, system): an internal state change — from, to and why. */
static inline int64_t fl_emit_state(fl_session *s, uint64_t ref, const char *from, const char *to, const char *reason)
{
	return FL__EMIT(STATE, fl__emit_state(s, ref, from, to, reason));
}

/* `prompt` (prompts, user): the initial prompt given to the session, text[len] (any bytes). */
static inline int64_t fl_emit_prompt(fl_session *s, uint64_t ref, const void *text, size_t len)
{
	return FL__EMIT(PROMPT, fl__emit_prompt(s, ref, text, len));
}

/* `transcript` (full, system): output bytes data[len] on a stream (1 stdout, 2 stderr, or yours). */
static inline int64_t fl_emit_transcript(fl_session *s, uint64_t ref, uint32_t stream, const void *data, size_t len)
{
	return FL__EMIT(TRANSCRIPT, fl__emit_transcript(s, ref, stream, data, len));
}

/* `input` (full, user): input the user typed or sent, data[len] (any bytes). */
static inline int64_t fl_emit_input(fl_session *s, uint64_t ref, const void *data, size_t len)
{
	return FL__EMIT(INPUT, fl__emit_input(s, ref, data, len));
}

/* ---- zero-copy capture: reserve a transcript or input record, fill it, commit ------------ */

/*
 * A reservation of one transcript or input record in the calling thread's
 * lane. data/cap are for the caller; the rest belongs to the library.
 */
struct fl_capture {
	void *data;	   /* room for up to cap bytes, inside the ring */
	size_t cap;	   /* <= the max asked for: also bounded by a quarter of the lane */
	uint64_t priv_[6]; /* the library's; do not touch */
};

/*
 * Reserves a transcript record (stream as in fl_emit_transcript) or an input
 * record for up to max bytes, so a caller can produce the bytes in place
 * (read(2) from a PTY straight into the ring) and publish them with
 * fl_capture_commit. Returns the id the event will carry (> 0) with *c filled,
 * 0 when the kind is above the level (*c untouched: the inline check costs one
 * relaxed load, a compare and a branch), -ENOBUFS (lane full, counted as
 * dropped), -EINVAL (max 0), -ECHILD (forked child). Between reserve and
 * commit the lane is the caller's: the same thread must commit, soon and
 * without emitting into the same session in between.
 */
int64_t fl__capture_transcript(fl_session *s, uint64_t ref, uint32_t stream, size_t max, struct fl_capture *c);
int64_t fl__capture_input(fl_session *s, uint64_t ref, size_t max, struct fl_capture *c);

/*
 * Publishes the first n bytes of a reservation (n <= c->cap) as the record,
 * stamped now. n == 0 abandons it: nothing is published and nothing counted.
 * Returns the event's id, 0 when abandoned, -EINVAL when n > c->cap
 * (abandoned too). The record's length fields have a fixed width (five-byte
 * varints), so it decodes as any protobuf Event does.
 */
int64_t fl_capture_commit(fl_session *s, struct fl_capture *c, size_t n);

static inline int64_t fl_capture_transcript(fl_session *s, uint64_t ref, uint32_t stream, size_t max,
					    struct fl_capture *c)
{
	return FL__EMIT(TRANSCRIPT, fl__capture_transcript(s, ref, stream, max, c));
}
static inline int64_t fl_capture_input(fl_session *s, uint64_t ref, size_t max, struct fl_capture *c)
{
	return FL__EMIT(INPUT, fl__capture_input(s, ref, max, c));
}

#ifdef __cplusplus
}
#endif
#endif

/* SPDX-License-Identifier: MIT */
/* jsonl.h: renders one decoded Event as one JSON line (docs/schema.md); pure, no I/O, fuzzable. */
#ifndef FL_JSONL_H
#define FL_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include "fugue_event.pb-c.h"

/* A growable byte buffer; {0} is an empty buffer. */
struct fl_jbuf {
	char *p;
	size_t len;
	size_t cap;
};

/* Makes room for more bytes after len. Returns 0 or -ENOMEM (the buffer is unchanged). */
int fl_jbuf_reserve(struct fl_jbuf *b, size_t more);

/* Frees the bytes and zeroes b. */
void fl_jbuf_free(struct fl_jbuf *b);

#define FL_TSFMT_SESSION_MAX 64 /* longest session id whose rendered key is cached */

/*
 * Cache of the formatted date and time of one second, so a burst of events in
 * the same second costs no gmtime_r, and of what the lines of a batch repeat:
 * the session's rendered "session" key, the run from "class" to "id" of
 * the last kind, pid and tid, and the digits of the last seq. {0} is empty.
 * One per thread.
 */
struct fl_tsfmt {
	int64_t sec;
	int valid;
	char text[24]; /* "YYYY-MM-DDTHH:MM:SS." */
	char secd[20]; /* sec in decimal: ts_ns without its nine fraction digits */
	uint8_t secn;
	uint8_t sess_len;			       /* 0 = nothing cached */
	uint16_t sess_jlen;			       /* bytes of sess_json */
	char sess[FL_TSFMT_SESSION_MAX];	       /* the id (not terminated) */
	char sess_json[32 + 6 * FL_TSFMT_SESSION_MAX]; /* ,"session":"..." as put_text writes it; copied in
							* 32-byte steps */
	int mid_kind;				       /* 0 = nothing cached */
	uint32_t mid_pid, mid_tid, mid_len;
	char mid[128]; /* ,"class":...,"tid":N,"id":" of the last kind, pid and tid */
	uint64_t seq;  /* the last seq written, in decimal in seqd (seqn digits; 0 = nothing cached): */
	uint8_t seqn;  /* the next line's seq is that plus one, counted up in the text */
	char seqd[24];
};

/*
 * Formats ns since the epoch as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" into out (at
 * least 32 bytes) and returns the length (30). Values beyond INT64_MAX are
 * treated as INT64_MAX, so any untrusted timestamp formats.
 */
size_t fl_jsonl_time(struct fl_tsfmt *tc, uint64_t ns, char *out);

/*
 * Appends to b the JSON line of ev, with the trailing '\n': ts, ts_ns, seq,
 * session, class, event, level (the kind's minimum level), pid, tid, id, ref,
 * data. Text that is valid UTF-8 goes out as a JSON string (control characters
 * as \u00XX or the short escapes); a text or bytes field that is not valid
 * UTF-8 goes out base64 under its name + "_b64". A level body with old == 0
 * renders "old":null (not known). Every field of ev is treated as untrusted.
 * Returns 0, -EINVAL when ev has no body or a kind this build does not know (b
 * unchanged), or -ENOMEM (b unchanged).
 */
int fl_jsonl_render(struct fl_jbuf *b, struct fl_tsfmt *tc, const Fugue__Event *ev, const char *session, uint64_t seq);

/* 1 when s[0..len) is valid UTF-8 (RFC 3629: no overlongs, surrogates or values above U+10FFFF). */
int fl_utf8_valid(const uint8_t *s, size_t len);

/* Standard base64 (RFC 4648, with padding) of s into out, which holds 4*((len+2)/3) bytes; returns that. */
size_t fl_base64(const uint8_t *s, size_t len, char *out);

/*
 * The "ts" of a line, read back: "2026-11-25T16:33:33.123456789Z" (fraction optional, 1-9
 * digits) to ns since the epoch; -EINVAL if it is not that form. The inverse of what
 * fl_jsonl_render writes, so the time format has one owner.
 */
int fl_ts_parse(const char *s, size_t len, uint64_t *ns);

#endif

/* SPDX-License-Identifier: MIT */
/* sessread.h: a finished read of one session's events, both classes merged by seq, and their fields decoded. */
#ifndef FL_SESSREAD_H
#define FL_SESSREAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One line as read: valid until the next fl_sessread_next. */
struct fl_evline {
	const char *line;
	size_t len;
	uint64_t seq, ts_ns;
	char kind[16];	  /* "event", e.g. "transcript"; "" when absent */
	const char *data; /* the "data" object, or NULL */
	size_t dlen;
};

struct fl_sessread;

/*
 * Opens <root>/<id>/ for reading what is on disk now (segments, lz4 archives,
 * active files; no following). Returns 0, -ENOENT (no such session), or
 * -errno; why says what.
 */
int fl_sessread_open(struct fl_sessread **out, const char *root, const char *id, char *why, size_t whylen);

/* The next line in seq order: 1, 0 at the end, or -errno (a corrupt file: why says which; read on after it). */
int fl_sessread_next(struct fl_sessread *r, struct fl_evline *ev, char *why, size_t whylen);

void fl_sessread_close(struct fl_sessread *r);

/* Fills ev from one JSON line (seq, ts_ns, kind, data); fields that are absent stay zero. */
void fl_evline_parse(struct fl_evline *ev, const char *line, size_t len);

/*
 * The event's summary for a human: the bytes of transcript/input/prompt, argv
 * for spawn, status or signal for exit, "from -> to : reason" for state, and
 * so on. Returns 0 with *out (malloc'd, *n bytes) or -ENOMEM.
 */
int fl_evline_summary(const struct fl_evline *ev, char **out, size_t *n);

/* The text array key of the event's data (e.g. spawn's argv) joined with spaces: 0 and *out (malloc'd). */
int fl_evline_words(const struct fl_evline *ev, const char *key, char **out);

/*
 * The bytes of field key in a JSON object (docs/schema.md): the JSON string
 * under key unescaped, or the base64 under key_b64 decoded. Returns 0 with
 * *out (malloc'd, free() it; NUL-terminated past *n), -ENOENT or -EBADMSG.
 */
int fl_json_bytes(const char *obj, size_t len, const char *key, uint8_t **out, size_t *n);

/* An unsigned integer field of a JSON object: 0 or -ENOENT/-EBADMSG. */
int fl_json_u64(const char *obj, size_t len, const char *key, uint64_t *v);

enum { FL_CAT_JSON = 0, FL_CAT_TEXT = 1, FL_CAT_TRANSCRIPT = 2 };

/* "json", "text", "transcript" to FL_CAT_*, -EINVAL otherwise. */
int fl_cat_output_parse(const char *s);

/* Prints one JSON line as fl_text_line's text (FL_CAT_TEXT) or its transcript bytes (FL_CAT_TRANSCRIPT). */
void fl_cat_render(FILE *f, int mode, const char *line, size_t len);

#endif

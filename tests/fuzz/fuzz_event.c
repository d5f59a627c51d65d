/* SPDX-License-Identifier: MIT */
/* fuzz_event: the fuzz input is one hostile record payload; decoding it and rendering it must stay safe and valid. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fugue_event.pb-c.h"
#include "json_check.h"
#ifdef FL_FUZZ_JSONL
#include "decode.h"
#include "jsonl.h"
#endif

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_event: invariant broken: %s (line %d)\n", #c, __LINE__);                 \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

/* The validator must be able to say no, or a broken renderer would pass unnoticed. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	static const char *const good[] = {
	    "{}\n",
	    "{\"a\":[1,-0.5e+3,true,false,null,\"\\u00e9\\ud83d\\ude00\\n\"],\"b\":{}}\n",
	    "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}\n",
	};
	static const char *const bad[] = {
	    "{}",
	    "{} \n{}\n",
	    "{\"a\":01}\n",
	    "{\"a\":\"\x01\"}\n",
	    "{\"a\":\"\\x\"}\n",
	    "{\"a\":NaN}\n",
	    "{\"a\":\"\xc0\xaf\"}\n",
	    "{\"a\":\"\xed\xa0\x80\"}\n",
	    "{\"a\":\"\\ud800\"}\n",
	    "{\"a\":1,}\n",
	    "[1]\n",
	    "{\"a\":\"\xff\"}\n",
	    "{\"a\":\"x\n\"}\n",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		CHECK(fl_json_line_check(good[i], strlen(good[i]), NULL) == 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK(fl_json_line_check(bad[i], strlen(bad[i]), NULL) < 0);
	return 0;
}

/* Whatever unpack accepts is internally consistent: the oneof case names a present body. */
static void check_event(const Fugue__Event *e)
{
	const void *body[] = {
	    [FUGUE__EVENT__BODY_SPAWN] = e->spawn,	     [FUGUE__EVENT__BODY_EXIT] = e->exit,
	    [FUGUE__EVENT__BODY_ACTION] = e->action,	     [FUGUE__EVENT__BODY_COMMAND] = e->command,
	    [FUGUE__EVENT__BODY_COMPLETION] = e->completion, [FUGUE__EVENT__BODY_ERROR] = e->error,
	    [FUGUE__EVENT__BODY_STATE] = e->state,	     [FUGUE__EVENT__BODY_PROMPT] = e->prompt,
	    [FUGUE__EVENT__BODY_TRANSCRIPT] = e->transcript, [FUGUE__EVENT__BODY_INPUT] = e->input,
	    [FUGUE__EVENT__BODY_LEVEL] = e->level,	     [FUGUE__EVENT__BODY_DROPPED] = e->dropped,
	};
	if (e->body_case != FUGUE__EVENT__BODY__NOT_SET) {
		CHECK(e->body_case >= FUGUE__EVENT__BODY_SPAWN && e->body_case <= FUGUE__EVENT__BODY_DROPPED);
		CHECK(body[e->body_case] != NULL);
	}
}

/*
 * protobuf-c keeps unknown fields verbatim, even ones with a malformed tag
 * (field 0 spelled as an overlong varint), and re-emits them in a shorter form
 * that it then refuses: such input has no fixed point, through no fault of ours.
 */
static int has_unknown(const Fugue__Event *e)
{
	if (e->base.n_unknown_fields)
		return 1;
	const ProtobufCMessage *body = NULL;
	for (unsigned i = 0; i < e->base.descriptor->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &e->base.descriptor->fields[i];
		if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->id == e->body_case)
			body = *(const ProtobufCMessage *const *)((const char *)e + f->offset);
	}
	return body && body->n_unknown_fields;
}

#ifdef FL_FUZZ_JSONL
/* What the drainer writes for a decoded record: exactly one strict JSON line, or a refusal that wrote nothing. */
static void check_render(const Fugue__Event *e, uint64_t seq)
{
	static struct fl_tsfmt tc; /* kept across inputs, as a worker keeps it across records */
	struct fl_jbuf b = {0};
	int rc = fl_jsonl_render(&b, &tc, e, "fuzz-session", seq);
	if (rc < 0) {
		CHECK(rc == -EINVAL); /* no body or an unknown kind; -ENOMEM cannot happen at these sizes */
		CHECK(b.len == 0);
	} else {
		size_t at = 0;
		if (fl_json_line_check(b.p, b.len, &at) < 0) {
			fprintf(stderr, "fuzz_event: not a strict JSON line (offset %zu): %.*s\n", at, (int)b.len, b.p);
			abort();
		}
		CHECK(memmem(b.p, b.len, "\"session\":\"fuzz-session\"", 24) != NULL);
	}
	fl_jbuf_free(&b);
}

static void *plain_alloc(void *d, size_t n)
{
	(void)d;
	return malloc(n ? n : 1);
}

/* the fast decoder only frees through its own list: every block it took, for the sanitizers */
struct blocks {
	void *p[64];
	unsigned n;
};

static void *list_alloc(void *d, size_t n)
{
	struct blocks *b = d;
	if (b->n == sizeof b->p / sizeof *b->p)
		return NULL;
	void *p = plain_alloc(NULL, n);
	if (p)
		b->p[b->n++] = p;
	return p;
}

static void list_free(void *d, void *p)
{
	(void)d;
	(void)p;
}

/*
 * Differential: when drainer/render/decode.c takes the input, protobuf-c must accept
 * it too and the two events must render to the same line (every field).
 */
static void check_decode(const uint8_t *data, size_t len, const Fugue__Event *ref)
{
	struct blocks bl = {.n = 0};
	ProtobufCAllocator a = {list_alloc, list_free, &bl};
	Fugue__Event *e = NULL;
	int rc = fl_event_decode(data, len, &a, &e);
	CHECK(rc == 0 || rc == 1 || rc == -ENOMEM);
	if (rc == 1) {
		if (!ref) {
			fprintf(stderr, "fuzz_event: fast decoder took what protobuf-c refuses\n");
			abort();
		}
		CHECK(e->body_case == ref->body_case);
		CHECK(e->ts_ns == ref->ts_ns && e->id == ref->id && e->ref == ref->ref && e->pid == ref->pid &&
		      e->tid == ref->tid);
		struct fl_tsfmt tc = {0};
		struct fl_jbuf x = {0}, y = {0};
		int r1 = fl_jsonl_render(&x, &tc, e, "s", 7), r2 = fl_jsonl_render(&y, &tc, ref, "s", 7);
		CHECK(r1 == r2);
		if (x.len != y.len || (x.len && memcmp(x.p, y.p, x.len))) {
			fprintf(stderr, "fuzz_event: decoders differ:\n%.*s%.*s", (int)x.len, x.p, (int)y.len, y.p);
			abort();
		}
		fl_jbuf_free(&x);
		fl_jbuf_free(&y);
	}
	for (unsigned i = 0; i < bl.n; i++)
		free(bl.p[i]);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	Fugue__Event *e = fugue__event__unpack(NULL, len, data);
#ifdef FL_FUZZ_JSONL
	check_decode(data, len, e);
#endif
	if (!e)
		return 0;
	check_event(e);
#ifdef FL_FUZZ_JSONL
	check_render(e, len ? data[0] * 1000003ull : 0);
#endif

	if (has_unknown(e)) {
		fugue__event__free_unpacked(e, NULL);
		return 0;
	}
	/* re-encoding what was decoded must decode to the same bytes again (a fixed point) */
	size_t n = fugue__event__get_packed_size(e);
	uint8_t *buf = malloc(n + 1);
	CHECK(buf);
	CHECK(fugue__event__pack(e, buf) == n);
	Fugue__Event *e2 = fugue__event__unpack(NULL, n, buf);
	CHECK(e2);
	size_t n2 = fugue__event__get_packed_size(e2);
	CHECK(n2 == n);
	uint8_t *buf2 = malloc(n2 + 1);
	CHECK(buf2);
	CHECK(fugue__event__pack(e2, buf2) == n2);
	CHECK(!memcmp(buf, buf2, n));
	free(buf2);
	fugue__event__free_unpacked(e2, NULL);
	free(buf);

	fugue__event__free_unpacked(e, NULL);
	return 0;
}

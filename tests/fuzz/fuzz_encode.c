/* SPDX-License-Identifier: MIT */
/* fuzz_encode: fuzz-chosen events go through libfuguelog's in-place encoder and zero-copy capture; protobuf-c must
 * decode each exactly. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fugue_event.pb-c.h"
#include "fuguelog.h"
#include "ring.h"

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_encode: invariant broken: %s (line %d)\n", #c, __LINE__);                \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

#define MAX_PARTS 8

static fl_session *sess;
static struct fl_ring ring; /* the consumer's view of the same shm object */
static char shm[128];

static void cleanup(void)
{
	fl_ring_detach(&ring);
	fl_session_close(sess);
	fl_ring_unlink(shm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	char prefix[64], why[256] = "";
	snprintf(prefix, sizeof prefix, "flfz-%d-", (int)getpid());
	/* 64 KiB: records up to 16 KiB, so the lane wraps (pads) every few inputs */
	struct fl_session_opts o = {
	    .id = "enc", .level = FL_LEVEL_FULL, .lanes = 1, .lane_size = 1u << 16, .shm_prefix = prefix};
	CHECK(fl_session_open(&sess, &o, why, sizeof why) == 0);
	fl_ring_name(shm, sizeof shm, prefix, "enc");
	CHECK(fl_ring_attach(&ring, shm, why, sizeof why) == 0);
	atexit(cleanup);
	return 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void same_str(const char *got, const char *want)
{
	CHECK(got && !strcmp(got, want));
}

static void same_bytes(ProtobufCBinaryData got, const uint8_t *want, size_t len)
{
	CHECK(got.len == len && (!len || !memcmp(got.data, want, len)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 17)
		return 0;
	int kind = 1 + data[0] % 12;
	/* 11 and 12: the same transcript and input through reserve, fill in place, commit */
	int captured = kind > 10;
	if (captured)
		kind = kind == 11 ? FL_KIND_TRANSCRIPT : FL_KIND_INPUT;
	uint64_t ref = le64(data + 1), num = le64(data + 9);
	const uint8_t *rest = data + 17;
	size_t rlen = len - 17;

	/* the rest as NUL-separated C strings, for the text fields */
	char *copy = malloc(rlen + 1);
	CHECK(copy);
	memcpy(copy, rest, rlen);
	copy[rlen] = 0;
	const char *part[MAX_PARTS];
	int np = 0;
	for (char *p = copy; np < MAX_PARTS; np++) {
		part[np] = p;
		size_t n = strlen(p);
		if (p + n >= copy + rlen) {
			np++;
			break;
		}
		p += n + 1;
	}
	for (int i = np; i < MAX_PARTS; i++)
		part[i] = "";
	uint32_t nlist = np > 2 ? (uint32_t)np - 2 : 0; /* argv/args: the parts after the first two */

	int64_t id;
	switch (kind) {
	case FL_KIND_SPAWN:
		id = fl_emit_spawn(sess, ref, (uint32_t)num, (uint32_t)(num >> 32), part + 2, nlist, part[0]);
		break;
	case FL_KIND_EXIT:
		id = fl_emit_exit(sess, ref, (int32_t)num, (int32_t)(num >> 32), ref ^ num);
		break;
	case FL_KIND_ACTION:
		id = fl_emit_action(sess, ref, part[0], part[1], part[2]);
		break;
	case FL_KIND_COMMAND:
		id = fl_emit_command(sess, ref, part[0], part + 2, nlist);
		break;
	case FL_KIND_COMPLETION:
		id = fl_emit_completion(sess, ref, part[0], part[1], num);
		break;
	case FL_KIND_ERROR:
		id = fl_emit_error(sess, ref, (int32_t)num, part[0], part[1]);
		break;
	case FL_KIND_STATE:
		id = fl_emit_state(sess, ref, part[0], part[1], part[2]);
		break;
	case FL_KIND_PROMPT:
		id = fl_emit_prompt(sess, ref, rest, rlen);
		break;
	case FL_KIND_TRANSCRIPT:
		if (!captured) {
			id = fl_emit_transcript(sess, ref, (uint32_t)num, rest, rlen);
			break;
		}
		/* fall through */
	default:
		if (!captured) {
			id = fl_emit_input(sess, ref, rest, rlen);
			break;
		}
		struct fl_capture c;
		size_t max = rlen + (num >> 58) + 1; /* room beyond what is filled, up to 64 bytes */
		id = kind == FL_KIND_TRANSCRIPT ? fl_capture_transcript(sess, ref, (uint32_t)num, max, &c)
						: fl_capture_input(sess, ref, max, &c);
		CHECK(id > 0 && c.cap > 0 && c.cap <= max);
		if (c.cap < rlen)
			rlen = c.cap; /* larger than a record may be: the cap says how much fits */
		memcpy(c.data, rest, rlen);
		int64_t cid = fl_capture_commit(sess, &c, rlen);
		CHECK(rlen ? cid == id : cid == 0);
		if (!rlen)
			id = -EMSGSIZE; /* abandoned: nothing in the lane, as for a refused event */
		break;
	}
	CHECK(id > 0 || id == -EMSGSIZE); /* every record is consumed below, so the lane never fills */

	struct fl_rec rec[2];
	uint64_t next;
	char why[256];
	int n = fl_lane_peek(&ring, 0, rec, 2, &next, why, sizeof why);
	if (id < 0) {
		CHECK(n == 0);
	} else {
		CHECK(n == 1);
		Fugue__Event *e = fugue__event__unpack(NULL, rec[0].len, rec[0].data);
		CHECK(e);
		CHECK(e->id == (uint64_t)id && e->ref == ref && e->pid == (uint32_t)getpid());
		CHECK(e->body_case == (Fugue__Event__BodyCase)(kind + 5));
		switch (kind) {
		case FL_KIND_SPAWN:
			CHECK(e->spawn->pid == (uint32_t)num && e->spawn->ppid == (uint32_t)(num >> 32));
			CHECK(e->spawn->n_argv == nlist);
			for (uint32_t i = 0; i < nlist; i++)
				same_str(e->spawn->argv[i], part[2 + i]);
			same_str(e->spawn->cwd, part[0]);
			break;
		case FL_KIND_EXIT:
			CHECK(e->exit->status == (int32_t)num && e->exit->signal == (int32_t)(num >> 32));
			CHECK(e->exit->duration_ns == (ref ^ num) && !e->exit->abandoned);
			break;
		case FL_KIND_ACTION:
			same_str(e->action->action, part[0]);
			same_str(e->action->target, part[1]);
			same_str(e->action->detail, part[2]);
			break;
		case FL_KIND_COMMAND:
			same_str(e->command->name, part[0]);
			CHECK(e->command->n_args == nlist);
			for (uint32_t i = 0; i < nlist; i++)
				same_str(e->command->args[i], part[2 + i]);
			break;
		case FL_KIND_COMPLETION:
			same_str(e->completion->task, part[0]);
			same_str(e->completion->outcome, part[1]);
			CHECK(e->completion->duration_ns == num);
			break;
		case FL_KIND_ERROR:
			CHECK(e->error->code == (int32_t)num);
			same_str(e->error->message, part[0]);
			same_str(e->error->origin, part[1]);
			break;
		case FL_KIND_STATE:
			same_str(e->state->from, part[0]);
			same_str(e->state->to, part[1]);
			same_str(e->state->reason, part[2]);
			break;
		case FL_KIND_PROMPT:
			same_bytes(e->prompt->text, rest, rlen);
			break;
		case FL_KIND_TRANSCRIPT:
			CHECK(e->transcript->stream == (uint32_t)num);
			same_bytes(e->transcript->data, rest, rlen);
			break;
		default:
			same_bytes(e->input->data, rest, rlen);
			break;
		}
		/* byte for byte: protobuf-c's own encoding of what it decoded is what the producer wrote */
		size_t plen = fugue__event__get_packed_size(e);
		uint8_t *buf = malloc(plen + 1);
		CHECK(buf && fugue__event__pack(e, buf) == plen);
		if (captured) {
			/*
			 * the same, except that both lengths are five-byte varints and the id's varint (then
			 * pid's and tid's) is widened so the data starts 8-aligned: only the sizes differ
			 */
			size_t body = kind == FL_KIND_TRANSCRIPT ? fugue__transcript__get_packed_size(e->transcript)
								 : fugue__input__get_packed_size(e->input);
			size_t vb = 1, vd = 1;
			for (size_t v = body; v >= 0x80; v >>= 7)
				vb++;
			for (size_t v = rlen; v >= 0x80; v >>= 7)
				vd++;
			size_t wide = rec[0].len - (plen + (5 - vb) + (5 - vd));
			CHECK(rec[0].len >= plen + (5 - vb) + (5 - vd) && wide < 8);
			CHECK((uintptr_t)(rec[0].data + rec[0].len - rlen) % 8 == 0);
			CHECK(!memcmp(buf + plen - rlen, rec[0].data + rec[0].len - rlen, rlen));
		} else {
			CHECK(plen == rec[0].len && !memcmp(buf, rec[0].data, plen));
		}
		free(buf);
		fugue__event__free_unpacked(e, NULL);
	}
	fl_lane_release(&ring, 0, next);
	free(copy);
	return 0;
}

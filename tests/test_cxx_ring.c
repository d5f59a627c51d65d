/* SPDX-License-Identifier: MIT */
/* test_cxx_ring.c: test_cxx's C half — reads a session's ring back and decodes it with protobuf-c. */
#include "test_cxx_ring.h"

#include <stdio.h>
#include <string.h>

#include "fugue_event.pb-c.h"
#include "ring.h"

int cxx_ring_read(const char *id, struct cxx_rec *out, int max, char *why, size_t whylen)
{
	char name[200];
	struct fl_ring r;
	if (fl_ring_name(name, sizeof name, NULL, id) < 0 || fl_ring_attach(&r, name, why, whylen) < 0)
		return -1;
	struct fl_rec rec[64];
	uint64_t nt;
	int n = fl_lane_peek(&r, 0, rec, 64, &nt, why, whylen);
	for (int i = 0; i < n && i < max; i++) {
		Fugue__Event *e = fugue__event__unpack(NULL, rec[i].len, rec[i].data);
		if (!e) {
			snprintf(why, whylen, "record %d: protobuf-c cannot decode it", i);
			n = -1;
			break;
		}
		struct cxx_rec *o = &out[i];
		memset(o, 0, sizeof *o);
		o->kind = (int)e->body_case - 5;
		o->id = e->id;
		o->ref = e->ref;
		switch (e->body_case) {
		case FUGUE__EVENT__BODY_SPAWN:
			snprintf(o->text, sizeof o->text, "%s %s", e->spawn->n_argv ? e->spawn->argv[0] : "",
				 e->spawn->cwd);
			break;
		case FUGUE__EVENT__BODY_ERROR:
			snprintf(o->text, sizeof o->text, "%d %s", e->error->code, e->error->message);
			break;
		case FUGUE__EVENT__BODY_PROMPT:
			snprintf(o->text, sizeof o->text, "%.*s", (int)e->prompt->text.len,
				 (char *)e->prompt->text.data);
			break;
		case FUGUE__EVENT__BODY_TRANSCRIPT:
			snprintf(o->text, sizeof o->text, "%u %.*s", e->transcript->stream,
				 (int)e->transcript->data.len, (char *)e->transcript->data.data);
			break;
		default:
			break;
		}
		fugue__event__free_unpacked(e, NULL);
	}
	fl_ring_detach(&r);
	fl_ring_unlink(name);
	return n;
}

/* SPDX-License-Identifier: MIT */
/* test_cxx_ring.h: what test_cxx (C++) asks of its C half, which may include the ring's C11 headers. */
#ifndef TEST_CXX_RING_H
#define TEST_CXX_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cxx_rec {
	int kind;
	uint64_t id, ref;
	char text[128]; /* the fields the test checks, printed */
};

/* Decodes up to max records of lane 0 of session id's ring, then removes the ring; returns the count or -1. */
int cxx_ring_read(const char *id, struct cxx_rec *out, int max, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif

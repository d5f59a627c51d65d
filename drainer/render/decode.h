/* SPDX-License-Identifier: MIT */
/* decode.h: a fast decoder of the common, plainly encoded Event that defers everything else to protobuf-c. */
#ifndef FL_DECODE_H
#define FL_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "fugue_event.pb-c.h"

/*
 * Decodes p[0..len) into *out when the record is in the plain form the
 * producer writes: every field at most once, tags in their shortest varint,
 * the wire types of the schema, no unknown fields, one body of a kind other
 * than spawn or command (those have repeated fields), all lengths in bounds.
 * The Event and its body come from alloc (one block); bytes fields point into p, which
 * must outlive the Event; strings are copied and NUL-terminated as protobuf-c
 * does. For such input the result equals fugue__event__unpack's (the fuzz
 * target fuzz_event checks it). Returns 1 decoded, 0 when the input is not
 * in that form (the caller then uses fugue__event__unpack, which decides
 * what is malformed), -ENOMEM when alloc failed.
 */
int fl_event_decode(const uint8_t *p, size_t len, ProtobufCAllocator *alloc, Fugue__Event **out);

#endif

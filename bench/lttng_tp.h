/* SPDX-License-Identifier: MIT */
/* lttng_tp.h: the LTTng-UST tracepoint fugue-bench compares against — the same transcript event as fl_emit_transcript.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER fugue_bench
#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "lttng_tp.h"

#if !defined(FL_LTTNG_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define FL_LTTNG_TP_H

#include <lttng/tracepoint.h>
#include <stddef.h>
#include <stdint.h>

/* ref, stream and the bytes; pid and tid come from the vpid/vtid contexts, the time from the ring. */
LTTNG_UST_TRACEPOINT_EVENT(fugue_bench, transcript,
			   LTTNG_UST_TP_ARGS(uint64_t, ref, uint32_t, stream, const uint8_t *, data, size_t, len),
			   LTTNG_UST_TP_FIELDS(lttng_ust_field_integer(uint64_t, ref, ref)
						   lttng_ust_field_integer(uint32_t, stream, stream)
						       lttng_ust_field_sequence(uint8_t, data, data, size_t, len)))

#endif

#include <lttng/tracepoint-event.h>

/* SPDX-License-Identifier: MIT */
/* lttng_tp.c: instantiates the fugue_bench tracepoint provider, statically linked into fugue-bench-lttng. */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "lttng_tp.h"

/* SPDX-License-Identifier: MIT */
/* sysutil.h: the clock read and the full write every module shares, so each is written once. */
#ifndef FL_SYSUTIL_H
#define FL_SYSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds on clock c (CLOCK_REALTIME for timestamps, CLOCK_MONOTONIC for intervals). Any thread.
 * Inline: the producer's emit path reads the clock on every admitted call. */
static inline int64_t fl_now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Writes all len bytes of buf to fd, retrying short writes and EINTR. Returns 0 or -errno. */
int fl_write_full(int fd, const void *buf, size_t len);

#endif

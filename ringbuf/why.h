/* SPDX-License-Identifier: MIT */
/* why.h: the one helper every module uses to fill a caller's one-line error reason. */
#ifndef FL_WHY_H
#define FL_WHY_H

#include <stddef.h>

/* printf into why[whylen] when the caller asked for a reason (why != NULL); never fails. */
void fl_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

/* SPDX-License-Identifier: MIT */
/* why.c: fill a caller's one-line error reason. */
#include "why.h"

#include <stdarg.h>
#include <stdio.h>

void fl_why(char *why, size_t whylen, const char *fmt, ...)
{
	if (!why || !whylen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

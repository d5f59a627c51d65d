/* SPDX-License-Identifier: MIT */
/* log.c: the lines the daemon writes about itself, through a logger fugue-logd may replace (drain.h). */
#include "drain.h"

#include <stdarg.h>
#include <stdio.h>

static void log_stderr(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

static void (*logger)(const char *line) = log_stderr;

void fl_drain_set_logger(void (*fn)(const char *line))
{
	logger = fn ? fn : log_stderr;
}

void fl_drain_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	logger(line);
}

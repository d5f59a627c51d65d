/* SPDX-License-Identifier: MIT */
/* sysutil.c: the shared full write (sysutil.h). */
#include "sysutil.h"

#include <errno.h>
#include <unistd.h>

int fl_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

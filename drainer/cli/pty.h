/* SPDX-License-Identifier: MIT */
/* pty.h: running a program on a new pseudo-terminal, relaying the real terminal to it, as script(1) does. */
#ifndef FL_PTY_H
#define FL_PTY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Which bytes a reservation is for: what the PTY wrote, or what stdin gave before the PTY gets it. */
enum fl_pty_dir { FL_PTY_OUTPUT, FL_PTY_INPUT };

/*
 * What the relay reports as it runs; every callback may be NULL. ctx is
 * passed back unchanged. Callbacks run on the relay's thread, between polls.
 */
struct fl_pty_hooks {
	void *ctx;
	/* the child exists (its pid) and the PTY has this size (0x0 when stdin is no terminal) */
	void (*started)(void *ctx, pid_t pid, unsigned rows, unsigned cols);
	/*
	 * Zero-copy capture of both directions: reserve returns where up to max
	 * bytes may be read to (*cap of them), or NULL when the bytes are not to
	 * be kept (the relay then reads into its own buffer); commit(ctx, dir, n)
	 * publishes the n bytes read (0: nothing). The relay then copies them on
	 * (to stdout, to the PTY) from where they were read; it never writes into
	 * a committed reservation.
	 */
	uint8_t *(*reserve)(void *ctx, enum fl_pty_dir dir, size_t max, size_t *cap);
	void (*commit)(void *ctx, enum fl_pty_dir dir, size_t n);
	void (*resize)(void *ctx, unsigned rows, unsigned cols);
	void (*error)(void *ctx, int code, const char *what); /* code is -errno */
};

/*
 * Most bytes of output read into one record and written on in one write(2):
 * two of the 4 KiB the line discipline hands out per read. Larger chunks keep
 * the inner PTY waiting while a big write to the terminal drains: `run -- cat`
 * of 64 MiB took 1.64-1.72 s with 8 KiB, 2.0 s with 16 KiB and 2.3-2.5 s with
 * 64 KiB (bare cat 1.28 s, script(1) 1.45 s; bench/limits.md, 2026-12-03).
 */
#define FL_PTY_CHUNK (8u << 10)

struct fl_pty_opts {
	size_t chunk; /* most bytes per output/input reservation: 0 means FL_PTY_CHUNK */
};

/* How the child ended. */
struct fl_pty_result {
	int status; /* exit status, or 0 when killed */
	int signal; /* the signal that killed it, or 0 */
};

/*
 * Runs argv[0] (searched in PATH) on a new PTY and relays: stdin to the PTY
 * (in raw mode when stdin is a terminal, restored on every return), PTY
 * output to stdout; window size at start and on SIGWINCH; SIGTERM, SIGHUP,
 * SIGINT and SIGQUIT are passed to the child; the child stopping (Ctrl-Z)
 * stops us with the terminal restored, and SIGCONT resumes both. When stdin
 * is not a terminal the PTY does not echo, and stdin's EOF is passed on as
 * VEOF. Returns 0 with *res when the child ran and ended, or -errno when the
 * PTY or the child could not be made (hooks->error was told why); a child
 * that cannot exec exits 127 (126 when not executable), as a shell's does.
 */
int fl_pty_run(char *const argv[], const struct fl_pty_opts *opts, const struct fl_pty_hooks *hooks,
	       struct fl_pty_result *res);

#endif

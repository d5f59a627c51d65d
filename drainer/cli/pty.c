/* SPDX-License-Identifier: MIT */
/* pty.c: the PTY relay behind fugue-log run — raw mode, window size, job control, EOF and exit status. */
#define _GNU_SOURCE
#include "pty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <utmp.h>

struct relay {
	const struct fl_pty_hooks *h;
	int master;
	pid_t child;
	int tty; /* stdin is a terminal */
	int raw; /* and is in raw mode now */
	struct termios orig;
	struct winsize ws;
	uint8_t *buf;
	size_t chunk;
	uint8_t pend[4096]; /* stdin bytes read but not yet taken by the PTY */
	size_t plen, poff;
	int in_eof, eof_sent, out_ok;
};

static void say_error(struct relay *r, int code, const char *what)
{
	if (r->h->error)
		r->h->error(r->h->ctx, code, what);
}

static void raw_on(struct relay *r)
{
	if (!r->tty || r->raw)
		return;
	struct termios t = r->orig;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
		r->raw = 1;
}

static void raw_off(struct relay *r)
{
	if (r->raw && tcsetattr(STDIN_FILENO, TCSADRAIN, &r->orig) == 0)
		r->raw = 0;
}

/* Copies the real terminal's size to the PTY; reports it when it changed (or always, when report > 1). */
static void sync_size(struct relay *r, int report)
{
	struct winsize ws;
	if (!r->tty || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	ioctl(r->master, TIOCSWINSZ, &ws);
	int changed = ws.ws_row != r->ws.ws_row || ws.ws_col != r->ws.ws_col;
	r->ws = ws;
	if (report && changed && r->h->resize)
		r->h->resize(r->h->ctx, ws.ws_row, ws.ws_col);
}

static void child_exec(int slave, char *const argv[], const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (login_tty(slave) < 0)
		_exit(126);
	execvp(argv[0], argv);
	int e = errno;
	fprintf(stderr, "fugue-log run: cannot run '%s': %s\n", argv[0], strerror(e));
	_exit(e == ENOENT ? 127 : 126);
}

/* Reads what the PTY has: 1 got bytes, 0 nothing now, -1 closed (EIO once every slave fd is gone). */
static int pump_output(struct relay *r)
{
	size_t cap = r->chunk;
	uint8_t *dst = r->h->reserve ? r->h->reserve(r->h->ctx, r->chunk, &cap) : NULL;
	ssize_t n = read(r->master, dst ? dst : r->buf, dst ? cap : r->chunk);
	int e = errno;
	if (dst)
		r->h->commit(r->h->ctx, n > 0 ? (size_t)n : 0);
	errno = e;
	if (n > 0) {
		const uint8_t *p = dst ? dst : r->buf;
		if (!r->h->reserve && r->h->output)
			r->h->output(r->h->ctx, p, (size_t)n);
		/* a committed record stays in place until this thread reserves again: copy it from there */
		for (size_t off = 0; r->out_ok && off < (size_t)n;) {
			ssize_t w = write(STDOUT_FILENO, p + off, (size_t)n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				r->out_ok = 0; /* stdout gone (EPIPE): keep recording, stop copying */
			else
				off += (size_t)w;
		}
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0 && errno != EIO)
		say_error(r, -errno, "read from the PTY");
	return -1;
}

static void suspend(struct relay *r);

/*
 * The suspend character typed while the program's own process group is in
 * the foreground: the kernel discards it (that group is orphaned: its parent,
 * this relay, is in another session), so the relay stops the program itself
 * and then suspends, and Ctrl-Z works as it would without the relay. A shell
 * run under the relay gets ^Z for its jobs as usual (their groups are not
 * orphaned).
 */
static int take_suspend(struct relay *r)
{
	struct termios t;
	if (!r->tty || tcgetattr(r->master, &t) < 0 || !(t.c_lflag & ISIG) || t.c_cc[VSUSP] == _POSIX_VDISABLE ||
	    tcgetpgrp(r->master) != r->child)
		return 0;
	size_t k = 0, found = 0;
	for (size_t i = 0; i < r->plen; i++)
		if (r->pend[i] == t.c_cc[VSUSP])
			found++;
		else
			r->pend[k++] = r->pend[i];
	r->plen = k;
	return found > 0;
}

static void pump_input(struct relay *r)
{
	ssize_t n = read(STDIN_FILENO, r->pend, r->chunk < sizeof r->pend ? r->chunk : sizeof r->pend);
	if (n > 0) {
		if (r->h->input)
			r->h->input(r->h->ctx, r->pend, (size_t)n);
		r->plen = (size_t)n;
		r->poff = 0;
		if (take_suspend(r)) {
			kill(-r->child, SIGSTOP);
			suspend(r);
		}
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		r->in_eof = 1;
	}
}

/* stdin ended: the program sees end of input as a terminal would give it, VEOF at the start of a line. */
static void send_eof(struct relay *r)
{
	struct termios t;
	if (tcgetattr(r->master, &t) == 0 && (t.c_lflag & ICANON)) {
		if (write(r->master, &t.c_cc[VEOF], 1) == 1)
			r->eof_sent = 1;
	} else {
		r->eof_sent = 1; /* a raw-mode program has no EOF character: it just sees no more input */
	}
}

/* The child stopped (Ctrl-Z): give the terminal back, stop ourselves; on SIGCONT take it again. */
static void suspend(struct relay *r)
{
	raw_off(r);
	raise(SIGSTOP);
	raw_on(r);
	sync_size(r, 1);
	pid_t fg = tcgetpgrp(r->master);
	if (fg > 0 && fg != r->child)
		kill(-fg, SIGCONT);
	kill(-r->child, SIGCONT);
}

int fl_pty_run(char *const argv[], const struct fl_pty_opts *opts, const struct fl_pty_hooks *hooks,
	       struct fl_pty_result *res)
{
	static const struct fl_pty_hooks none;
	struct relay r = {.h = hooks ? hooks : &none, .out_ok = 1};
	r.chunk = opts && opts->chunk ? opts->chunk : 64 << 10;
	r.buf = malloc(r.chunk);
	if (!r.buf)
		return -ENOMEM;
	r.tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &r.orig) == 0;
	if (r.tty)
		ioctl(STDIN_FILENO, TIOCGWINSZ, &r.ws);

	int slave;
	if (openpty(&r.master, &slave, NULL, r.tty ? &r.orig : NULL, r.tty ? &r.ws : NULL) < 0) {
		int e = -errno;
		say_error(&r, e, "openpty");
		free(r.buf);
		return e;
	}
	if (!r.tty) {
		/* nobody types here: no echo, as script(1) does for a non-terminal stdin */
		struct termios t;
		if (tcgetattr(slave, &t) == 0) {
			t.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(slave, TCSANOW, &t);
		}
	}
	sigset_t set, old;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGCONT};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		int e = -errno;
		say_error(&r, e, "signalfd");
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(r.master), close(slave), free(r.buf);
		return e;
	}
	struct sigaction ign = {.sa_handler = SIG_IGN}, oldpipe;
	sigaction(SIGPIPE, &ign, &oldpipe);

	r.child = fork();
	if (r.child == 0) {
		close(r.master);
		close(sfd);
		sigaction(SIGPIPE, &oldpipe, NULL);
		child_exec(slave, argv, &old);
	}
	int rc = 0;
	if (r.child < 0) {
		rc = -errno;
		say_error(&r, rc, "fork");
		goto out;
	}
	close(slave);
	slave = -1;
	fcntl(r.master, F_SETFL, fcntl(r.master, F_GETFL) | O_NONBLOCK);
	if (r.h->started)
		r.h->started(r.h->ctx, r.child, r.ws.ws_row, r.ws.ws_col);
	raw_on(&r);

	int wstatus = 0, exited = 0, closed = 0;
	while (!closed) {
		if (r.in_eof && !r.plen && !r.eof_sent)
			send_eof(&r);
		struct pollfd p[3] = {{r.master, POLLIN, 0}, {sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
		if (r.plen)
			p[0].events |= POLLOUT;
		nfds_t np = r.in_eof || r.plen ? 2 : 3;
		/* once the child is gone, read what it left in the PTY, then stop */
		if (poll(p, np, exited ? 0 : -1) < 0 && errno != EINTR) {
			rc = -errno;
			say_error(&r, rc, "poll");
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int k = pump_output(&r);
			if (k < 0)
				closed = 1;
		} else if (exited) {
			closed = 1;
		}
		if (r.plen && (p[0].revents & POLLOUT)) {
			ssize_t w = write(r.master, r.pend + r.poff, r.plen);
			if (w > 0)
				r.poff += (size_t)w, r.plen -= (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				r.plen = 0;
		}
		if (np == 3 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
			pump_input(&r);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				int sig = (int)si.ssi_signo;
				if (sig == SIGWINCH) {
					sync_size(&r, 1);
				} else if (sig == SIGTSTP) {
					kill(r.child, SIGSTOP);
				} else if (sig == SIGCHLD) {
					int st;
					pid_t w;
					while ((w = waitpid(r.child, &st, WNOHANG | WUNTRACED)) > 0) {
						if (WIFSTOPPED(st)) {
							if (r.tty)
								suspend(&r);
							else
								kill(r.child, SIGCONT); /* no terminal to give back */
						} else {
							wstatus = st;
							exited = 1;
						}
					}
				} else if (sig != SIGCONT) {
					kill(r.child, sig);
				}
			}
		}
	}
	if (!exited)
		waitpid(r.child, &wstatus, 0);
	res->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;
	res->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
out:
	raw_off(&r);
	sigaction(SIGPIPE, &oldpipe, NULL);
	close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (slave >= 0)
		close(slave);
	close(r.master);
	free(r.buf);
	return rc;
}

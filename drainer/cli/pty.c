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
	int master, slave, sfd;
	pid_t child;
	int tty; /* stdin is a terminal */
	int raw; /* and is in raw mode now */
	struct termios orig;
	struct winsize ws;
	sigset_t old;		  /* the signal mask before the relay blocked its signals */
	struct sigaction oldpipe; /* SIGPIPE's disposition before the relay ignored it */
	uint8_t *buf;
	size_t chunk;
	uint8_t pend[4096]; /* stdin bytes read but not yet taken by the PTY */
	size_t plen, poff;
	int in_eof, eof_sent, out_ok;
	int wstatus, exited;
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

/* The bytes read from the PTY to stdout, while stdout takes them. */
static void copy_out(struct relay *r, const uint8_t *p, size_t n)
{
	for (size_t off = 0; r->out_ok && off < n;) {
		ssize_t w = write(STDOUT_FILENO, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			r->out_ok = 0; /* stdout gone (EPIPE): keep recording, stop copying */
		else
			off += (size_t)w;
	}
}

/*
 * Reads what the PTY has, into one reservation: the line discipline hands out
 * at most 4 KiB a read, so a program writing fast fills it with two reads and
 * the record and the write to stdout carry up to a chunk (FL_PTY_CHUNK) at
 * once. Returns 1 got bytes, 0 nothing now, -1 closed (EIO once every slave
 * fd is gone).
 */
static int pump_output(struct relay *r)
{
	size_t cap = r->chunk, got = 0;
	uint8_t *dst = r->h->reserve ? r->h->reserve(r->h->ctx, FL_PTY_OUTPUT, r->chunk, &cap) : NULL;
	uint8_t *p = dst ? dst : r->buf;
	ssize_t n = 0;
	while (got < cap && (n = read(r->master, p + got, cap - got)) > 0)
		got += (size_t)n;
	int e = n < 0 ? errno : EIO; /* 0 is an end as EIO is */
	if (dst)
		r->h->commit(r->h->ctx, FL_PTY_OUTPUT, got);
	/* a committed record stays in place until this thread reserves again: copy it from there */
	copy_out(r, p, got);
	if (got)
		return 1; /* a close after the bytes shows again at the next read */
	if (e == EAGAIN || e == EINTR)
		return 0;
	if (e != EIO)
		say_error(r, -e, "read from the PTY");
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

/* Reads stdin straight into an input record when one is kept, then into pend, which the PTY is fed from. */
static void pump_input(struct relay *r)
{
	size_t max = r->chunk < sizeof r->pend ? r->chunk : sizeof r->pend, cap = max;
	uint8_t *dst = r->h->reserve ? r->h->reserve(r->h->ctx, FL_PTY_INPUT, max, &cap) : NULL;
	ssize_t n = read(STDIN_FILENO, dst ? dst : r->pend, dst ? cap : max);
	int e = errno;
	if (dst) {
		r->h->commit(r->h->ctx, FL_PTY_INPUT, n > 0 ? (size_t)n : 0);
		if (n > 0) /* the relay's own copy: the suspend character is taken out of it, not of the record */
			memcpy(r->pend, dst, (size_t)n);
	}
	errno = e;
	if (n > 0) {
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

/* A new PTY, its size and modes from the real terminal when there is one. */
static int open_pty(struct relay *r)
{
	r->tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &r->orig) == 0;
	if (r->tty)
		ioctl(STDIN_FILENO, TIOCGWINSZ, &r->ws);
	if (openpty(&r->master, &r->slave, NULL, r->tty ? &r->orig : NULL, r->tty ? &r->ws : NULL) < 0) {
		int e = -errno;
		say_error(r, e, "openpty");
		return e;
	}
	if (!r->tty) {
		/* nobody types here: no echo, as script(1) does for a non-terminal stdin */
		struct termios t;
		if (tcgetattr(r->slave, &t) == 0) {
			t.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(r->slave, TCSANOW, &t);
		}
	}
	return 0;
}

/* The signals the relay handles arrive on a signalfd; SIGPIPE is ignored so a closed stdout is an error. */
static int take_signals(struct relay *r)
{
	sigset_t set;
	sigemptyset(&set);
	int sigs[] = {SIGCHLD, SIGWINCH, SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGTSTP, SIGCONT};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, &r->old);
	r->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (r->sfd < 0) {
		int e = -errno;
		say_error(r, e, "signalfd");
		sigprocmask(SIG_SETMASK, &r->old, NULL);
		return e;
	}
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ign, &r->oldpipe);
	return 0;
}

static void give_back_signals(struct relay *r)
{
	sigaction(SIGPIPE, &r->oldpipe, NULL);
	close(r->sfd);
	sigprocmask(SIG_SETMASK, &r->old, NULL);
}

/* Forks the child onto the PTY's slave; the parent keeps only the master, non-blocking. */
static int spawn(struct relay *r, char *const argv[])
{
	r->child = fork();
	if (r->child == 0) {
		close(r->master);
		close(r->sfd);
		sigaction(SIGPIPE, &r->oldpipe, NULL);
		child_exec(r->slave, argv, &r->old);
	}
	if (r->child < 0) {
		int e = -errno;
		say_error(r, e, "fork");
		return e;
	}
	close(r->slave);
	r->slave = -1;
	fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);
	raw_on(r); /* before the spawn is reported: whoever waits for it to type finds the terminal raw */
	if (r->h->started)
		r->h->started(r->h->ctx, r->child, r->ws.ws_row, r->ws.ws_col);
	return 0;
}

/* The child changed state: stopped (Ctrl-Z) suspends the relay too, ended is remembered. */
static void reap(struct relay *r)
{
	int st;
	pid_t w;
	while ((w = waitpid(r->child, &st, WNOHANG | WUNTRACED)) > 0) {
		if (WIFSTOPPED(st)) {
			if (r->tty)
				suspend(r);
			else
				kill(r->child, SIGCONT); /* no terminal to give back */
		} else {
			r->wstatus = st;
			r->exited = 1;
		}
	}
}

static void take_signal(struct relay *r, int sig)
{
	if (sig == SIGWINCH)
		sync_size(r, 1);
	else if (sig == SIGTSTP)
		kill(r->child, SIGSTOP);
	else if (sig == SIGCHLD)
		reap(r);
	else if (sig != SIGCONT)
		kill(r->child, sig);
}

/* Feeds pend to the PTY as far as it takes it now. */
static void feed_pty(struct relay *r)
{
	ssize_t w = write(r->master, r->pend + r->poff, r->plen);
	if (w > 0)
		r->poff += (size_t)w, r->plen -= (size_t)w;
	else if (w < 0 && errno != EAGAIN && errno != EINTR)
		r->plen = 0;
}

/* One poll and what it found; 1 when the relay is done (the PTY closed, or the child left and it is empty). */
static int relay_step(struct relay *r, int *rc)
{
	if (r->in_eof && !r->plen && !r->eof_sent)
		send_eof(r);
	struct pollfd p[3] = {{r->master, POLLIN, 0}, {r->sfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
	if (r->plen)
		p[0].events |= POLLOUT;
	nfds_t np = r->in_eof || r->plen ? 2 : 3;
	/* once the child is gone, read what it left in the PTY, then stop */
	if (poll(p, np, r->exited ? 0 : -1) < 0 && errno != EINTR) {
		*rc = -errno;
		say_error(r, *rc, "poll");
		return 1;
	}
	int done = 0;
	if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
		done = pump_output(r) < 0;
	else if (r->exited)
		done = 1;
	if (r->plen && (p[0].revents & POLLOUT))
		feed_pty(r);
	if (np == 3 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
		pump_input(r);
	struct signalfd_siginfo si;
	if (p[1].revents & POLLIN)
		while (read(r->sfd, &si, sizeof si) == (ssize_t)sizeof si)
			take_signal(r, (int)si.ssi_signo);
	return done;
}

int fl_pty_run(char *const argv[], const struct fl_pty_opts *opts, const struct fl_pty_hooks *hooks,
	       struct fl_pty_result *res)
{
	static const struct fl_pty_hooks none;
	struct relay r = {.h = hooks ? hooks : &none, .out_ok = 1, .master = -1, .slave = -1, .sfd = -1};
	r.chunk = opts && opts->chunk ? opts->chunk : FL_PTY_CHUNK;
	r.buf = malloc(r.chunk);
	if (!r.buf)
		return -ENOMEM;
	int rc = open_pty(&r);
	if (rc == 0 && (rc = take_signals(&r)) == 0) {
		if ((rc = spawn(&r, argv)) == 0) {
			while (!relay_step(&r, &rc))
				;
			if (!r.exited)
				waitpid(r.child, &r.wstatus, 0);
			res->status = WIFEXITED(r.wstatus) ? WEXITSTATUS(r.wstatus) : 0;
			res->signal = WIFSIGNALED(r.wstatus) ? WTERMSIG(r.wstatus) : 0;
		}
		raw_off(&r);
		give_back_signals(&r);
	}
	if (r.slave >= 0)
		close(r.slave);
	if (r.master >= 0)
		close(r.master);
	free(r.buf);
	return rc;
}

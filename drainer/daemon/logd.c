/* SPDX-License-Identifier: MIT */
/* logd.c: fugue-logd — options, config, single-instance lock, daemonizing, signals, and the registry's lifetime. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "drain.h"
#include "housekeep.h"
#include "guard.h"
#include "budget.h"
#include "registry.h"
#include "rings.h"
#include "sink.h"

/* Exit codes, also in --help. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_RUNNING = 4 };

static const char usage[] =
    "usage: fugue-logd [--root DIR] [--config FILE] [--foreground] [--workers N] [--nice N]\n"
    "\n"
    "Drains every fugue session ring in /dev/shm into <root>/<session>/{system,user}.jsonl\n"
    "and session.json (see docs/layout.md and docs/schema.md).\n"
    "\n"
    "  --root DIR     log root, absolute or ~/... (default: $FUGUE_LOG_DIR, config 'root',\n"
    "                 ~/.fugue/logs; a relative root is refused with exit 3)\n"
    "  --config FILE  config file (default ~/.fugue/logging.conf; a missing default is fine)\n"
    "  --foreground   stay attached and log to stderr (default: daemonize, log to <root>/fugue-logd.log,\n"
    "                 pid in <root>/fugue-logd.pid)\n"
    "  --workers N    drain threads (default: config 'workers', else one per core, at most 4)\n"
    "  --nice N       scheduling niceness 0..19 of every thread (default: config 'nice', else 10: a CPU\n"
    "                 shared with a busy session goes mostly to the session)\n"
    "  -h, --help     this text\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain what the rings hold, checkpoint and exit 0; SIGHUP reloads the config.\n"
    "Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage, 3 bad config or root, 4 another fugue-logd\n"
    "already drains this shm prefix.\n";

static FILE *log_file;	       /* NULL: stderr */
static char pidpath[PATH_MAX]; /* set when daemonized */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(const char *line)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	FILE *f = log_file ? log_file : stderr;
	fprintf(f, "%s.%03ldZ fugue-logd[%d]: %s\n", stamp, ts.tv_nsec / 1000000, (int)getpid(), line);
	fflush(f);
	pthread_mutex_unlock(&log_lock);
}

static unsigned default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > 4 ? 4 : (unsigned)n;
}

/* What the command line asked for; NULL/0 = not given. */
struct args {
	const char *root, *config;
	int foreground;
	unsigned workers;
	int nice;				       /* -1: not given */
	char root_abs[PATH_MAX], config_abs[PATH_MAX]; /* what root and config point to once resolved */
};

/* Loads the config and applies the command line over it. */
static int load_config(struct fl_config *c, const struct args *a)
{
	char why[1024];
	int rc = fl_config_load(c, a->config, why, sizeof why);
	if (rc < 0) {
		fl_drain_log("config: %s", why);
		return rc;
	}
	if (a->root)
		snprintf(c->root, sizeof c->root, "%s", a->root);
	if (a->workers)
		c->workers = a->workers;
	if (!c->workers)
		c->workers = default_workers();
	if (a->nice >= 0)
		c->nice = a->nice;
	return 0;
}

/*
 * Every thread of the daemon at niceness n (on Linux it is per thread: the
 * ones started later inherit it). Lowering it needs CAP_SYS_NICE or
 * RLIMIT_NICE; without them the daemon says so and keeps what it has.
 */
static void apply_nice(int n)
{
	int now = getpriority(PRIO_PROCESS, 0), failed = 0, err = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		if (*end || tid <= 0)
			continue;
		if (setpriority(PRIO_PROCESS, (id_t)tid, n) < 0 && errno != ESRCH)
			failed++, err = errno;
	}
	if (d)
		closedir(d);
	else if (setpriority(PRIO_PROCESS, 0, n) < 0)
		failed++, err = errno;
	if (failed)
		fl_drain_log("cannot set nice %d (%s): staying at nice %d; a lower niceness than the current one needs "
			     "CAP_SYS_NICE or a higher RLIMIT_NICE (or set 'nice' to %d or more)",
			     n, strerror(err), now, now);
}

/*
 * One drainer per shm prefix: two would both move the same tails. The lock is
 * an abstract unix socket named after the uid and prefix: the kernel frees it
 * when the process dies, even by SIGKILL, and it leaves no file behind.
 */
static int take_lock(const char *prefix)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "fugue-logd/%u/%s", (unsigned)getuid(), prefix);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fl_drain_log("cannot create the lock socket: %s", strerror(errno));
		return -errno;
	}
	if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE) {
			fl_drain_log("another fugue-logd already drains shm prefix '%s'; stop it first", prefix);
			return -EBUSY;
		}
		fl_drain_log("cannot bind the lock socket: %s", strerror(e));
		return -e;
	}
	return fd;
}

/* Writes <root>/fugue-logd.pid aside and renames it, so a reader never sees an empty pid file. */
static void write_pidfile(const char *root)
{
	char pid[32];
	snprintf(pidpath, sizeof pidpath, "%s/fugue-logd.pid", root);
	char tmppath[sizeof pidpath + 8];
	snprintf(tmppath, sizeof tmppath, "%s.tmp", pidpath);
	int pfd = open(tmppath, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (pfd < 0) {
		fl_drain_log("cannot write %s: %s", tmppath, strerror(errno));
		return;
	}
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	int ok = write(pfd, pid, (size_t)n) == n;
	close(pfd);
	if (!ok || rename(tmppath, pidpath) < 0) {
		fl_drain_log("cannot write %s", pidpath);
		unlink(tmppath);
	}
}

/*
 * Classic double fork: no controlling terminal, not a process group leader,
 * stdio away from the terminal. The first process exits only once the daemon
 * has written its pid file (a byte on a pipe), so whoever started fugue-logd
 * can read the pid file as soon as the command returns.
 */
static int daemonize(const char *root)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/fugue-logd.log", root);
	int lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lfd < 0) {
		fl_drain_log("cannot open log file %s: %s", path, strerror(errno));
		return -errno;
	}
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p > 0) {
		close(ready[1]);
		char b;
		ssize_t r;
		while ((r = read(ready[0], &b, 1)) < 0 && errno == EINTR)
			;
		_exit(r == 1 ? EXIT_OK : EXIT_FAIL);
	}
	close(ready[0]);
	setsid();
	p = fork();
	if (p < 0)
		_exit(EXIT_FAIL);
	if (p > 0)
		_exit(EXIT_OK);
	if (chdir("/") < 0)
		_exit(EXIT_FAIL);
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (nul > 2)
			close(nul);
	}
	dup2(lfd, 2);
	log_file = fdopen(lfd, "a");
	write_pidfile(root); /* for whoever has to stop it: service scripts, tests */
	if (write(ready[1], "", 1) != 1)
		fl_drain_log("cannot tell the starting process that the daemon is up: %s", strerror(errno));
	close(ready[1]);
	return 0;
}

/* Parses the command line; returns -1 to go on, else the exit code (help, bad usage, bad root). */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"root", required_argument, NULL, 'r'},
	    {"config", required_argument, NULL, 'c'},
	    {"foreground", no_argument, NULL, 'f'},
	    {"workers", required_argument, NULL, 'w'},
	    {"nice", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	a->nice = -1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			a->root = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'f':
			a->foreground = 1;
			break;
		case 'w': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 64) {
				fprintf(stderr, "fugue-logd: --workers takes 1..64, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			a->workers = (unsigned)v;
			break;
		}
		case 'n':
			if (fl_parse_nice(optarg, &a->nice) < 0) {
				fprintf(stderr, "fugue-logd: --nice: '%s' is refused: %s\n", optarg, FL_NICE_ALLOWED);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fugue-logd: unexpected argument '%s'\n%s", argv[optind], usage);
		return EXIT_USAGE;
	}
	/* everything resolved before daemonizing: the daemon runs in /, where relative paths mean something else */
	char why[PATH_MAX + 256];
	if (a->root) {
		if (fl_config_root_check(a->root, "--root", a->root_abs, sizeof a->root_abs, why, sizeof why) < 0) {
			fprintf(stderr, "fugue-logd: %s\n", why);
			return EXIT_CONFIG;
		}
		a->root = a->root_abs;
	}
	if (a->config && a->config[0] != '/' && realpath(a->config, a->config_abs))
		a->config = a->config_abs; /* SIGHUP reloads it from / */
	return -1;
}

/*
 * Signals are taken by sigwait in the main thread only; every thread started later inherits the
 * mask. Blocked first thing, so a SIGTERM during start-up is a clean stop, not a kill.
 */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Config, root, the single-instance lock and daemonizing; returns the lock fd, or -(exit code). */
static int start_up(const struct args *a, struct fl_config *cfg)
{
	/* a producer may truncate its shm object under our mapping: turn that SIGBUS into a logged end */
	int grc = fl_guard_install();
	if (grc < 0)
		fl_drain_log("cannot install the SIGBUS guard (%s): a truncated ring would kill the drainer",
			     strerror(-grc));
	if (load_config(cfg, a) < 0)
		return -EXIT_CONFIG;
	char why[512];
	int rfd = fl_sink_open_root(cfg->root, why, sizeof why);
	if (rfd < 0) {
		fl_drain_log("%s", why);
		return -EXIT_CONFIG;
	}
	close(rfd);
	int lock = take_lock(cfg->shm_prefix);
	if (lock < 0)
		return lock == -EBUSY ? -EXIT_RUNNING : -EXIT_FAIL;
	if (!a->foreground && daemonize(cfg->root) < 0) {
		close(lock);
		return -EXIT_FAIL;
	}
	apply_nice(cfg->nice); /* before any other thread starts: they inherit it */
	return lock;
}

/* SIGHUP: a config that loads replaces the old one, except what changes only at restart. */
static void reload(const struct args *a, struct fl_config *cfg, struct fl_registry *reg, struct fl_housekeep *hk)
{
	struct fl_config next;
	if (load_config(&next, a) < 0) {
		fl_drain_log("SIGHUP: config refused, keeping the old one");
		return;
	}
	if (strcmp(next.shm_prefix, cfg->shm_prefix) || next.workers != cfg->workers)
		fl_drain_log("SIGHUP: shm prefix and workers change only at restart");
	if (strcmp(next.root, cfg->root)) {
		fl_drain_log("SIGHUP: new sessions go to %s (open ones stay in %s)", next.root, cfg->root);
		fl_registry_set_root(reg, next.root);
	}
	snprintf(next.shm_prefix, sizeof next.shm_prefix, "%s", cfg->shm_prefix);
	next.workers = cfg->workers;
	if (next.nice != cfg->nice)
		apply_nice(next.nice);
	*cfg = next;
	fl_housekeep_reconfigure(hk, cfg);
	fl_drain_log("SIGHUP: config reloaded (%s)", cfg->path[0] ? cfg->path : "defaults");
}

/* Waits for signals until SIGTERM or SIGINT, reloading on SIGHUP. */
static void serve(const sigset_t *set, const struct args *a, struct fl_config *cfg, struct fl_registry *reg,
		  struct fl_housekeep *hk)
{
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(a, cfg, reg, hk);
			continue;
		}
		fl_drain_log("%s: draining %u session%s and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM",
			     fl_registry_count(reg), fl_registry_count(reg) == 1 ? "" : "s");
		return;
	}
}

int main(int argc, char **argv)
{
	struct args a = {0};
	sigset_t set;
	fl_drain_set_logger(log_line);
	block_signals(&set);
	int code = parse_args(argc, argv, &a);
	if (code >= 0)
		return code;
	struct fl_config cfg;
	int lock = start_up(&a, &cfg);
	if (lock < 0)
		return -lock;

	/* compression and retention before the registry, so sinks rotate from their first line */
	struct fl_housekeep *hk;
	int rc = fl_housekeep_start(&hk, &cfg);
	if (rc < 0) {
		fl_drain_log("cannot start compression and retention: %s", strerror(-rc));
		return EXIT_FAIL;
	}
	/* every fd the hard limit allows, shared out as slots for sessions' files (budget.h) */
	fl_budget_init();
	struct fl_registry *reg;
	struct fl_registry_opts ro = {.root = cfg.root, .prefix = cfg.shm_prefix, .workers = cfg.workers};
	rc = fl_registry_start(&reg, &ro);
	if (rc < 0) {
		fl_drain_log("cannot start: %s", strerror(-rc));
		return EXIT_FAIL;
	}
	fl_drain_log("draining shm prefix '%s' into %s with %u worker%s at nice %d", cfg.shm_prefix, cfg.root,
		     cfg.workers, cfg.workers == 1 ? "" : "s", getpriority(PRIO_PROCESS, 0));
	serve(&set, &a, &cfg, reg, hk);
	rc = fl_registry_stop(reg);
	fl_housekeep_stop(hk); /* after the workers: the archives queued by their last checkpoints are finished */
	if (rc < 0)
		fl_drain_log("stopped with an error: %s", strerror(-rc));
	else
		fl_drain_log("stopped");
	if (pidpath[0])
		unlink(pidpath);
	close(lock);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

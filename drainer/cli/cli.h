/* SPDX-License-Identifier: MIT */
/* cli.h: what the fugue-log subcommands share — exit codes, messages, option plumbing, config. */
#ifndef FL_CLI_H
#define FL_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* Exit codes of every fugue-log command (docs/cli.md). */
enum {
	FL_EXIT_OK = 0,
	FL_EXIT_FAIL = 1,      /* the command ran and failed: I/O, permissions, bad config, corrupt data */
	FL_EXIT_USAGE = 2,     /* bad command line: unknown option, bad level/kind/number/session id */
	FL_EXIT_NOSESSION = 3, /* no ring (level) or no log directory (cat) for that session */
};

/* Options every command takes; fl_cli_config applies them over file and environment. */
struct fl_cli_common {
	const char *root;   /* --root DIR */
	const char *config; /* --config FILE */
};

extern struct fl_cli_common fl_cli;

/* getopt_long entries and codes of the common options; put FL_CLI_COMMON_OPTS in every table. */
enum { FL_OPT_ROOT = 0x1000, FL_OPT_CONFIG, FL_OPT_HELP };
#define FL_CLI_COMMON_OPTS                                                                                             \
	{"root", required_argument, NULL, FL_OPT_ROOT}, {"config", required_argument, NULL, FL_OPT_CONFIG},            \
	{                                                                                                              \
		"help", no_argument, NULL, 'h'                                                                         \
	}

/*
 * Handles a common option inside a command's getopt loop: returns 1 when c was
 * one (and consumed), 0 otherwise.
 */
int fl_cli_common_opt(int c, const char *arg);

/* Loads config (file, env) then applies --root. Prints why and returns FL_EXIT_FAIL on error, else 0. */
int fl_cli_config(struct fl_config *cfg);

/*
 * Installs the SIGBUS guard (ringbuf/guard.h) before a command maps rings: a
 * producer may truncate its shm object under us, and the command must then
 * report that ring rather than die. Says so on stderr when it cannot.
 */
void fl_cli_guard(void);

/* "fugue-log: <msg>\n" on stderr. */
void fl_cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Unknown option / missing argument: says so, points at --help, returns FL_EXIT_USAGE. */
int fl_cli_usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a non-negative integer (decimal) / size (K/M/G) / float; -EINVAL when bad. */
int fl_cli_u64(const char *s, uint64_t *out);
int fl_cli_double(const char *s, double *out);

/* Monotonic clock in seconds. */
double fl_cli_now(void);

/* Copies src into dst with every byte outside printable ASCII as '?': names found in /dev/shm are untrusted. */
void fl_cli_printable(char *dst, size_t cap, const char *src);

/* Writes s as a JSON string (quotes, escapes) to f. */
void fl_cli_json_str(FILE *f, const char *s);

struct fl_sessread;
struct fl_evline;

/*
 * The one SESSION operand of a command that reads a recorded session: checks
 * that argv[optind] is the only operand left and is a session id. Returns 0,
 * or FL_EXIT_USAGE having said what was wrong.
 */
int fl_cli_session_arg(const char *cmd, int argc, char **argv);

/*
 * Loads the config and opens session id's files for reading (sessread.h).
 * Returns 0 with *r, or an exit code having said why: FL_EXIT_NOSESSION when
 * the session has no log directory.
 */
int fl_cli_session_open(const char *id, struct fl_sessread **r);

/*
 * Calls fn on each line of r that has data, in seq order, then closes r. A
 * corrupt file is reported and read past. fn returns 0 to go on, FL_EXIT_FAIL
 * to go on after a failure it reported, or -1 to stop after one. Returns
 * FL_EXIT_OK, or FL_EXIT_FAIL when anything failed.
 */
int fl_cli_session_each(struct fl_sessread *r, int (*fn)(const struct fl_evline *ev, void *arg), void *arg);

int fl_cmd_run(int argc, char **argv);
int fl_cmd_ls(int argc, char **argv);
int fl_cmd_level(int argc, char **argv);
int fl_cmd_emit(int argc, char **argv);
int fl_cmd_cat(int argc, char **argv);
int fl_cmd_replay(int argc, char **argv);
int fl_cmd_export(int argc, char **argv);
int fl_cmd_gc(int argc, char **argv); /* cli_gc.c (retention.h) */

#endif

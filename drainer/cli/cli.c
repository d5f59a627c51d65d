/* SPDX-License-Identifier: MIT */
/* cli.c: fugue-log — command dispatch, global options and the helpers its subcommands share. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuguelog.h"
#include "guard.h"
#include "sessread.h"

struct fl_cli_common fl_cli;

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
} commands[] = {
    {"run", fl_cmd_run, "run a program on a PTY and record it as a session: script(1) for sessions"},
    {"ls", fl_cmd_ls, "list sessions: pid, level, live or not, events/s, ring fill, drops"},
    {"level", fl_cmd_level, "read or set a session's level (one atomic write)"},
    {"emit", fl_cmd_emit, "write events as one session: logger(1) for sessions, and a load generator"},
    {"cat", fl_cmd_cat, "print a session's log, both audit classes merged by seq, archives included"},
    {"replay", fl_cmd_replay, "play a recorded session's transcript with its timing, as scriptreplay does"},
    {"export", fl_cmd_export, "write a recorded session as an asciicast v2 file or script(1) timing + log"},
    {"gc", fl_cmd_gc, "apply the retention rules to the log root now (docs/rotation.md)"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: fugue-log [--root DIR] [--config FILE] COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "\n'fugue-log COMMAND --help' describes each command.\n"
		   "  --root DIR     log root, absolute or ~/... (default: FUGUE_LOG_DIR, config 'root',\n"
		   "                 ~/.fugue/logs)\n"
		   "  --config FILE  config file (default ~/.fugue/logging.conf)\n"
		   "Shared memory prefix: FUGUE_SHM_PREFIX (default \"fugue-\").\n"
		   "Exit codes: 0 ok, 1 failure, 2 usage error, 3 no such session.\n");
}

void fl_cli_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fugue-log: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int fl_cli_usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fugue-log %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(see 'fugue-log %s --help')\n", cmd);
	va_end(ap);
	return FL_EXIT_USAGE;
}

int fl_cli_common_opt(int c, const char *arg)
{
	switch (c) {
	case FL_OPT_ROOT:
		fl_cli.root = arg;
		return 1;
	case FL_OPT_CONFIG:
		fl_cli.config = arg;
		return 1;
	}
	return 0;
}

int fl_cli_config(struct fl_config *cfg)
{
	char why[PATH_MAX + 256];
	if (fl_config_load(cfg, fl_cli.config, why, sizeof why) < 0) {
		fl_cli_err("%s", why);
		return FL_EXIT_FAIL;
	}
	if (fl_cli.root &&
	    fl_config_root_check(fl_cli.root, "--root", cfg->root, sizeof cfg->root, why, sizeof why) < 0) {
		fl_cli_err("%s", why);
		return FL_EXIT_USAGE;
	}
	return 0;
}

int fl_cli_session_arg(const char *cmd, int argc, char **argv)
{
	if (optind + 1 != argc)
		return fl_cli_usage_err(cmd, "give exactly one SESSION");
	if (fl_id_check(argv[optind]) < 0)
		return fl_cli_usage_err(cmd, "'%s' is not a session id: ids are 1 to 64 of A-Z a-z 0-9 . _ -",
					argv[optind]);
	return 0;
}

int fl_cli_session_open(const char *id, struct fl_sessread **r)
{
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	char why[512];
	rc = fl_sessread_open(r, cfg.root, id, why, sizeof why);
	if (rc < 0) {
		fl_cli_err("%s", why);
		return rc == -ENOENT ? FL_EXIT_NOSESSION : FL_EXIT_FAIL;
	}
	return 0;
}

int fl_cli_session_each(struct fl_sessread *r, int (*fn)(const struct fl_evline *ev, void *arg), void *arg)
{
	struct fl_evline ev;
	char why[512];
	int rc, ret = FL_EXIT_OK;
	while ((rc = fl_sessread_next(r, &ev, why, sizeof why)) != 0) {
		if (rc < 0) {
			fl_cli_err("%s", why);
			ret = FL_EXIT_FAIL;
			continue;
		}
		if (!ev.data)
			continue;
		rc = fn(&ev, arg);
		if (rc)
			ret = FL_EXIT_FAIL;
		if (rc < 0)
			break;
	}
	fl_sessread_close(r);
	return ret;
}

void fl_cli_guard(void)
{
	int rc = fl_guard_install();
	if (rc < 0)
		fl_cli_err("cannot install the SIGBUS guard (%s): a ring truncated while read would kill this command",
			   strerror(-rc));
}

int fl_cli_u64(const char *s, uint64_t *out)
{
	return fl_parse_size(s, out);
}

int fl_cli_double(const char *s, double *out)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

double fl_cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void fl_cli_printable(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; cap && i < cap - 1 && src[i]; i++)
		dst[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '?';
	if (cap)
		dst[i] = 0;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if invalid. */
static int utf8_len(const unsigned char *p)
{
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		unsigned lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		unsigned lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

void fl_cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int n;
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else if (*p < 0x80)
			fputc(*p, f);
		else if ((n = utf8_len(p)) > 0)
			fwrite(p, 1, (size_t)n, f), p += n - 1;
		else
			fprintf(f, "\\u%04x", *p); /* a stray byte: still valid JSON, shown as its value */
	}
	fputc('"', f);
}

/* Global options before the command: --root, --config (also --opt=value). */
static int global_opt(const char *a, const char *next, int *used)
{
	static const char *const names[] = {"--root", "--config"};
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(names[i]);
		if (strncmp(a, names[i], n))
			continue;
		const char *v = a[n] == '=' ? a + n + 1 : !a[n] ? next : NULL;
		if (!v && !a[n])
			return -1; /* missing value */
		if (!v)
			continue;
		*used = a[n] == '=' ? 1 : 2;
		fl_cli_common_opt(i ? FL_OPT_CONFIG : FL_OPT_ROOT, v);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return FL_EXIT_OK;
		}
		int used = 0;
		int rc = global_opt(argv[i], i + 1 < argc ? argv[i + 1] : NULL, &used);
		if (rc < 0) {
			fl_cli_err("%s needs a value; see 'fugue-log --help'", argv[i]);
			return FL_EXIT_USAGE;
		}
		if (!rc) {
			fl_cli_err("unknown option '%s' before the command; see 'fugue-log --help'", argv[i]);
			return FL_EXIT_USAGE;
		}
		i += used;
	}
	if (i >= argc) {
		usage(stderr);
		return FL_EXIT_USAGE;
	}
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		if (!strcmp(argv[i], commands[k].name)) {
			optind = 1; /* each command parses its own argv, argv[0] being its name */
			return commands[k].fn(argc - i, argv + i);
		}
	if (!strcmp(argv[i], "help")) {
		usage(stdout);
		return FL_EXIT_OK;
	}
	fprintf(stderr, "fugue-log: unknown command '%s'; commands are:", argv[i]);
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		fprintf(stderr, " %s", commands[k].name);
	fprintf(stderr, " (see 'fugue-log --help')\n");
	return FL_EXIT_USAGE;
}

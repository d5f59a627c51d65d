/* SPDX-License-Identifier: MIT */
/* cli_level.c: fugue-log level — read a session's level word, or set it with one CAS that bumps the generation. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuguelog.h"
#include "guard.h"
#include "ring.h"
#include "rings.h"

static void help(void)
{
	printf("usage: fugue-log level SESSION [LEVEL]\n"
	       "       fugue-log level --all [LEVEL]\n"
	       "\n"
	       "Without LEVEL, prints the level of SESSION (one word), or 'ID LEVEL' per session with\n"
	       "--all. With LEVEL (spawns, signals, prompts, full, or 1-4), sets it with one atomic\n"
	       "write to the ring's level word, which also bumps the word's generation so the drainer\n"
	       "records the change; prints 'OLD -> NEW' ('ID: OLD -> NEW' with --all). Setting the\n"
	       "level a session already has changes nothing. --all sets every live session and\n"
	       "skips closed, gone and broken rings (named on stderr).\n"
	       "\n"
	       "  --all          every session under the shm prefix (FUGUE_SHM_PREFIX, default \"fugue-\")\n"
	       "  --root DIR, --config FILE   as for every command\n"
	       "\n"
	       "Exit codes: 0 done; 1 a ring could not be opened or the session has ended (for a\n"
	       "set); 2 usage error (unknown level, bad session id); 3 no such session.\n");
}

/* Reads or sets one attached ring; prints the result. Returns an exit code. */
static int one(struct fl_ring *r, const char *id, int level, int all)
{
	uint64_t w = fl_ring_level_word(r);
	int old = FL_LEVEL_VALUE(w);
	if (level < 0) {
		if (all)
			printf("%s %s\n", id, fl_level_name(old));
		else
			printf("%s\n", fl_level_name(old));
		return FL_EXIT_OK;
	}
	int closed = fl_load_acquire(&r->hdr->closed) != 0;
	if (closed || fl_ring_owner_alive(r) == 0) {
		const char *how = closed ? "was closed" : "lost its producer";
		if (all) {
			fprintf(stderr, "fugue-log level: skipping %s: it %s\n", id, how);
			return FL_EXIT_OK;
		}
		fl_cli_err("session '%s' %s; its level no longer matters (the drainer is finishing it)", id, how);
		return FL_EXIT_FAIL;
	}
	if (old != level)
		old = FL_LEVEL_VALUE(fl_ring_level_set(r, (uint8_t)level));
	if (all)
		printf("%s: %s -> %s\n", id, fl_level_name(old), fl_level_name(level));
	else
		printf("%s -> %s\n", fl_level_name(old), fl_level_name(level));
	return FL_EXIT_OK;
}

struct all_ctx {
	int level;
	int rc;
	unsigned seen;
};

static int each(const char *id, const char *shm, void *arg)
{
	struct all_ctx *a = arg;
	struct fl_ring r;
	char why[200];
	a->seen++;
	int rc = fl_ring_attach(&r, shm, why, sizeof why);
	if (rc == -ENOENT)
		return 0; /* finished by the drainer while we looked */
	if (rc < 0) {
		fprintf(stderr, "fugue-log level: skipping %s: %s\n", id, why);
		if (a->level < 0)
			a->rc = FL_EXIT_FAIL;
		return 0;
	}
	int erc = one(&r, id, a->level, 1);
	if (fl_guard_tripped(r.hdr)) {
		fprintf(stderr, "fugue-log level: %s: its ring was truncated while being read\n", id);
		erc = FL_EXIT_FAIL;
	}
	if (erc)
		a->rc = erc;
	fl_ring_detach(&r);
	return 0;
}

static void bad_name(const char *name, void *arg)
{
	(void)arg;
	char safe[300];
	fl_cli_printable(safe, sizeof safe, name);
	fprintf(stderr, "fugue-log level: skipping /%s: not a valid session id\n", safe);
}

struct level_args {
	int all;
	const char *id; /* NULL with --all */
	int level;	/* -1: read, not set */
};

/* Reads the command line into a: 0, -1 when help was printed, or a usage exit code. */
static int parse_args(struct level_args *a, int argc, char **argv)
{
	static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, FL_CLI_COMMON_OPTS, {0}};
	int c;
	while ((c = getopt_long(argc, argv, "ha", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'a':
			a->all = 1;
			break;
		case 'h':
			help();
			return -1;
		default:
			return fl_cli_usage_err("level", "bad option");
		}
	}
	int npos = argc - optind;
	const char *lvname = NULL;
	if (a->all) {
		if (npos > 1)
			return fl_cli_usage_err("level", "--all takes at most one argument, the LEVEL");
		lvname = npos ? argv[optind] : NULL;
	} else {
		if (npos < 1)
			return fl_cli_usage_err("level", "name a SESSION (see 'fugue-log ls') or use --all");
		if (npos > 2)
			return fl_cli_usage_err("level", "unexpected argument '%s'", argv[optind + 2]);
		a->id = argv[optind];
		lvname = npos > 1 ? argv[optind + 1] : NULL;
	}
	if (lvname && (a->level = fl_level_parse(lvname)) < 0)
		return fl_cli_usage_err("level", "unknown level '%s': use " FL_LEVEL_ALLOWED, lvname);
	if (a->id && fl_id_check(a->id) < 0)
		return fl_cli_usage_err("level", "'%s' is not a session id: ids are 1 to 64 of A-Z a-z 0-9 . _ -",
					a->id);
	return 0;
}

/* --all: reads or sets every session under the prefix. Returns an exit code. */
static int level_all(const struct fl_config *cfg, int level)
{
	struct all_ctx a = {level, FL_EXIT_OK, 0};
	int rc = fl_rings_scan(cfg->shm_prefix, each, bad_name, &a);
	if (rc < 0) {
		fl_cli_err("cannot list %s: %s", FL_SHM_DIR, strerror(-rc));
		return FL_EXIT_FAIL;
	}
	if (!a.seen)
		fprintf(stderr, "fugue-log level: no sessions under shm prefix '%s'\n", cfg->shm_prefix);
	return a.rc;
}

/* Reads or sets session id's level. Returns an exit code. */
static int level_session(const struct fl_config *cfg, const char *id, int level)
{
	char shm[FL_RING_ID_MAX + 80], why[200];
	int rc = fl_ring_name(shm, sizeof shm, cfg->shm_prefix, id);
	if (rc < 0) {
		fl_cli_err("cannot build the shm name of '%s' with prefix '%s'", id, cfg->shm_prefix);
		return FL_EXIT_FAIL;
	}
	struct fl_ring r;
	rc = fl_ring_attach(&r, shm, why, sizeof why);
	if (rc == -ENOENT) {
		fl_cli_err("no session '%s' (no ring %s under %s); 'fugue-log ls' lists the sessions, and "
			   "FUGUE_SHM_PREFIX must match the session's",
			   id, shm, FL_SHM_DIR);
		return FL_EXIT_NOSESSION;
	}
	if (rc == -EACCES) {
		fl_cli_err("permission denied on %s%s: the session belongs to another user; run as that user",
			   FL_SHM_DIR, shm);
		return FL_EXIT_FAIL;
	}
	if (rc < 0) {
		fl_cli_err("session '%s' has a broken ring: %s", id, why);
		return FL_EXIT_FAIL;
	}
	rc = one(&r, id, level, 0);
	if (fl_guard_tripped(r.hdr)) {
		fl_cli_err("session '%s': its ring was truncated while being read; what was printed may be wrong", id);
		rc = FL_EXIT_FAIL;
	}
	fl_ring_detach(&r);
	return rc;
}

int fl_cmd_level(int argc, char **argv)
{
	struct level_args a = {.level = -1};
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	struct fl_config cfg;
	if ((rc = fl_cli_config(&cfg)))
		return rc;
	fl_cli_guard();
	return a.all ? level_all(&cfg, a.level) : level_session(&cfg, a.id, a.level);
}

/* SPDX-License-Identifier: MIT */
/* cli_gc.c: fugue-log gc — one retention pass over the log root now, each removal printed and logged. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "retention.h"
#include "rings.h"

struct gc_ctx {
	int root_fd;
	int json;
	const char *prefix;
	unsigned failed_logs;
};

/* A session whose ring is still in shm is live, whatever its manifest says. */
static int gc_live(void *arg, const char *id)
{
	struct gc_ctx *g = arg;
	char path[256];
	snprintf(path, sizeof path, FL_SHM_DIR "/%s%s", g->prefix, id);
	return access(path, F_OK) == 0 ? 1 : -1;
}

static void gc_report(void *arg, const struct fl_retention_removal *r)
{
	struct gc_ctx *g = arg;
	char line[1024];
	/* one line built once: what --json prints is byte for byte what the root's log got */
	int rc = fl_retention_log_append(g->root_fd, r, "fugue-log gc", line, sizeof line);
	if (rc < 0)
		g->failed_logs++;
	if (g->json && line[0])
		fputs(line, stdout);
	else if (!g->json)
		printf("removed %s%s%s (%s, %" PRIu64 " bytes)\n", r->session, r->file ? "/" : "",
		       r->file ? r->file : " (whole session)", fl_retention_reason_name(r->reason), r->bytes);
}

static void gc_help(FILE *f)
{
	fprintf(f, "usage: fugue-log gc [--json] [--root DIR] [--config FILE]\n\n"
		   "Applies the retention rules to the log root now, as fugue-logd does on its timer:\n"
		   "  retention         archived segments whose newest line is older go; ended sessions that\n"
		   "                    old go whole (default 7d; 0 = keep forever)\n"
		   "  max_session_size  a session's oldest archived segments go while it is larger (default 1G)\n"
		   "  max_total_size    the oldest archived segments or ended sessions across the root go while\n"
		   "                    the root is larger (default 0 = off)\n"
		   "Active files and segments still waiting for compression are never removed. Every removal\n"
		   "is printed (--json: as the retention line) and appended to <root>/@fugue-logd.jsonl.\n"
		   "See docs/rotation.md. Exit codes: 0 done, 1 failure (missing or unreadable root, bad config),\n"
		   "2 usage.\n");
}

int fl_cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, FL_CLI_COMMON_OPTS, {0}};
	struct gc_ctx g = {0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'j':
			g.json = 1;
			break;
		case 'h':
			gc_help(stdout);
			return FL_EXIT_OK;
		default:
			return fl_cli_usage_err("gc", "unknown option or missing value");
		}
	}
	if (optind < argc)
		return fl_cli_usage_err("gc", "unexpected argument '%s'", argv[optind]);
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	g.prefix = cfg.shm_prefix;
	g.root_fd = open(cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.root_fd < 0) {
		if (errno == ENOENT) {
			fl_cli_err("the log root %s does not exist (is it the root fugue-logd writes to? --root or "
				   "FUGUE_LOG_DIR pick another)",
				   cfg.root);
			return FL_EXIT_FAIL;
		}
		fl_cli_err("cannot open the log root %s: %s", cfg.root, strerror(errno));
		return FL_EXIT_FAIL;
	}
	struct fl_retention_policy pol;
	fl_retention_policy_from_config(&pol, &cfg);
	struct fl_retention_hooks hooks = {.live = gc_live, .report = gc_report, .arg = &g, .by = "fugue-log gc"};
	struct fl_retention_stats st;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	rc = fl_retention_run(g.root_fd, &pol, (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec, &hooks, &st);
	close(g.root_fd);
	if (rc < 0) {
		fl_cli_err("retention pass over %s failed: %s", cfg.root, strerror(-rc));
		return FL_EXIT_FAIL;
	}
	if (!g.json)
		printf("gc: %" PRIu64 " sessions, removed %" PRIu64 " segments and %" PRIu64 " sessions, freed %" PRIu64
		       " bytes, %" PRIu64 " bytes left\n",
		       st.sessions, st.removed_segments, st.removed_sessions, st.freed_bytes, st.total_bytes);
	if (g.failed_logs) {
		fl_cli_err("%u removals could not be recorded in %s/" FL_RETENTION_LOG, g.failed_logs, cfg.root);
		return FL_EXIT_FAIL;
	}
	return FL_EXIT_OK;
}

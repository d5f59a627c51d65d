/* SPDX-License-Identifier: MIT */
/* test_config: logging.conf parsing, value parsers, env overrides and the refusals they give. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_test.h"
#include "fl_itest.h"

#include "config.h"
#include "fuguelog.h"
#include "ring.h"

static const char *write_conf(const char *text)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/conf-%d.conf", fl_test_tmp(), (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_sizes_and_durations(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(fl_parse_size("10M", &v), 0);
	assert_int_equal(v, 10u << 20);
	assert_int_equal(fl_parse_size("512KiB", &v), 0);
	assert_int_equal(v, 512u << 10);
	assert_int_equal(fl_parse_size("1G", &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(fl_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(fl_parse_size("-1", &v), -EINVAL);
	assert_int_equal(fl_parse_size("10X", &v), -EINVAL);
	assert_int_equal(fl_parse_size("", &v), -EINVAL);
	assert_int_equal(fl_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(fl_parse_duration("7d", &v), 0);
	assert_int_equal(v, 7 * 86400);
	assert_int_equal(fl_parse_duration("10m", &v), 0);
	assert_int_equal(v, 600);
	assert_int_equal(fl_parse_duration("45", &v), 0);
	assert_int_equal(v, 45);
	assert_int_equal(fl_parse_duration("3x", &v), -EINVAL);
	assert_int_equal(fl_parse_duration("3dd", &v), -EINVAL);
}

static void test_file_and_env(void **state)
{
	(void)state;
	struct fl_config c;
	char why[512] = "";
	unsetenv("FUGUE_LOG_DIR");
	unsetenv("FUGUE_SESSION_LOG");
	const char *p = write_conf("# comment\ndefault_level = full\nroot = /tmp/flroot\nmax_file_size = 64K\n"
				   "[fuguelog]\nretention = 2h\ncleanup_on_exit = yes\nworkers = 3\nnice = 0\n");
	assert_int_equal(fl_config_load(&c, p, why, sizeof why), 0);
	assert_int_equal(c.default_level, 4);
	assert_string_equal(c.root, "/tmp/flroot");
	assert_int_equal(c.max_file_size, 64 << 10);
	assert_int_equal(c.retention_s, 7200);
	assert_int_equal(c.cleanup_on_exit, 1);
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.nice, 0);
	assert_int_equal(c.max_session_size, 1u << 30);
	fl_config_defaults(&c);
	assert_int_equal(c.nice, FL_CONFIG_NICE);
	setenv("FUGUE_LOG_DIR", "/tmp/other", 1);
	setenv("FUGUE_SESSION_LOG", "prompts", 1);
	assert_int_equal(fl_config_load(&c, p, why, sizeof why), 0);
	assert_string_equal(c.root, "/tmp/other");
	assert_int_equal(c.default_level, 3);
	setenv("FUGUE_SESSION_LOG", "loud", 1);
	assert_int_equal(fl_config_load(&c, p, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "FUGUE_SESSION_LOG=loud"));
	unsetenv("FUGUE_SESSION_LOG");
	unsetenv("FUGUE_LOG_DIR");
}

static void test_bad_values_refused(void **state)
{
	(void)state;
	struct fl_config c;
	char why[512] = "";
	assert_int_equal(fl_config_load(&c, write_conf("max_file_size = lots\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "max_file_size=lots"));
	assert_non_null(strstr(why, "10M"));
	assert_int_equal(fl_config_load(&c, write_conf("default_level = chatty\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "spawns, signals, prompts or full"));
	assert_int_equal(fl_config_load(&c, write_conf("colour = blue\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "unknown key"));
	assert_int_equal(fl_config_load(&c, write_conf("retention = soon\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "retention=soon"));
	static const char *const nices[] = {"nice = 20\n", "nice = -5\n", "nice = low\n", "nice = 5x\n", "nice =\n"};
	for (size_t i = 0; i < sizeof nices / sizeof nices[0]; i++) {
		why[0] = 0;
		if (fl_config_load(&c, write_conf(nices[i]), why, sizeof why) != -EINVAL || !strstr(why, ":1: nice=") ||
		    !strstr(why, "use 0 (compete with the sessions as an equal) to 19"))
			fail_msg("'%s' gave '%s'", nices[i], why);
	}
	int n = -1;
	assert_int_equal(fl_parse_nice("19", &n), 0);
	assert_int_equal(n, 19);
	assert_int_equal(fl_parse_nice("", &n), -EINVAL);
	assert_int_equal(fl_parse_nice(NULL, &n), -EINVAL);
	assert_int_equal(n, 19);
	assert_int_equal(fl_config_load(&c, "/nonexistent/fugue.conf", why, sizeof why), -ENOENT);
}

/* One rule for a log root from every source: absolute, or ~ and ~/x from $HOME; relative refused. */
static void test_roots(void **state)
{
	(void)state;
	struct fl_config c;
	char why[1024] = "", home[1100], want[1200];
	snprintf(home, sizeof home, "%s/home", fl_test_tmp());
	setenv("HOME", home, 1);
	unsetenv("FUGUE_LOG_DIR");
	fl_config_defaults(&c);
	assert_int_equal(fl_config_root_check("/abs/logs", "--root", c.root, sizeof c.root, why, sizeof why), 0);
	assert_string_equal(c.root, "/abs/logs");
	assert_int_equal(fl_config_root_check("~", "--root", c.root, sizeof c.root, why, sizeof why), 0);
	assert_string_equal(c.root, home);
	assert_int_equal(fl_config_root_check("~/x/y", "--root", c.root, sizeof c.root, why, sizeof why), 0);
	snprintf(want, sizeof want, "%s/x/y", home);
	assert_string_equal(c.root, want);
	assert_int_equal(fl_config_root_check("rel/x", "--root", c.root, sizeof c.root, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "--root=rel/x is refused"));
	assert_string_equal(c.root, want); /* a refused value changes nothing */
	assert_int_equal(fl_config_root_check("~bob/x", "--root", c.root, sizeof c.root, why, sizeof why), -EINVAL);
	assert_int_equal(fl_config_root_check("", "--root", c.root, sizeof c.root, why, sizeof why), -EINVAL);

	/* the config key and the environment go through the same rule */
	assert_int_equal(fl_config_load(&c, write_conf("root = ~/logs\n"), why, sizeof why), 0);
	snprintf(want, sizeof want, "%s/logs", home);
	assert_string_equal(c.root, want);
	assert_int_equal(fl_config_load(&c, write_conf("# a comment\nroot = logs\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, ".conf:2: root=logs is refused"));
	assert_non_null(strstr(why, "absolute"));
	setenv("FUGUE_LOG_DIR", "relx", 1);
	assert_int_equal(fl_config_load(&c, write_conf("\n"), why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "FUGUE_LOG_DIR=relx is refused"));
	setenv("FUGUE_LOG_DIR", "~/env", 1);
	assert_int_equal(fl_config_load(&c, write_conf("\n"), why, sizeof why), 0);
	snprintf(want, sizeof want, "%s/env", home);
	assert_string_equal(c.root, want);
	unsetenv("FUGUE_LOG_DIR");
}

/* Runs a tool on a config file: `fugue-log --config F ls` or `fugue-logd --config F --foreground`. */
static int tool_verdict(const char *tool, const char *conf)
{
	char bin[1200];
	fl_it_build_path(bin, sizeof bin, tool);
	char out[1200];
	snprintf(out, sizeof out, "%s/tool.out", fl_test_tmp());
	if (strstr(tool, "logd")) {
		/* a config that passed would leave the daemon running: the timeout ends it (exit 124) */
		const char *argv[] = {"timeout", "20", bin, "--config", conf, "--foreground", NULL};
		return fl_it_run(argv, out);
	}
	const char *argv[] = {bin, "--config", conf, "ls", NULL};
	return fl_it_run(argv, out);
}

/* fl_session_open's verdict on a config file, with why. */
static int open_verdict(const char *conf, char *why, size_t whylen)
{
	fl_session *s = NULL;
	struct fl_session_opts o = {.id = "verdict", .lanes = 1, .lane_size = 4096, .config_path = conf};
	char name[200];
	fl_ring_name(name, sizeof name, NULL, "verdict");
	fl_ring_unlink(name);
	int rc = fl_session_open(&s, &o, why, whylen);
	if (rc == 0) {
		fl_session_close(s);
		fl_ring_unlink(name);
	}
	return rc;
}

/* The library, fugue-log and fugue-logd give the same verdict on the same file (exit codes: docs/cli.md,
 * docs/drainer.md). */
static void test_same_verdict_everywhere(void **state)
{
	(void)state;
	char home[1100], root[1200];
	snprintf(home, sizeof home, "%s/home", fl_test_tmp());
	snprintf(root, sizeof root, "%s/root", fl_test_tmp());
	setenv("HOME", home, 1);
	setenv("FUGUE_LOG_DIR", root, 1);
	unsetenv("FUGUE_SESSION_LOG");
	static const struct {
		const char *text, *needle1, *needle2;
	} bad[] = {
	    {"defualt_level = full\n", ":1: defualt_level=full is refused", "unknown key; known: default_level"},
	    {"[fuguelog]\nroot = /tmp\n[daemon]\nworkers = 2\n", ":4: workers=2 is refused", "[fuguelog]"},
	    {"max_file_size = 10M # comment\n", "max_file_size=10M # comment is refused", "starts with ' ;'"},
	    {"default_level = full\nnot a key value line\n", ":2: this line is not", NULL},
	};
	char why[1024];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char name[64];
		snprintf(name, sizeof name, "verdict-%zu.conf", i);
		char path[1200];
		snprintf(path, sizeof path, "%s/%s", fl_test_tmp(), name);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(bad[i].text, f);
		fclose(f);
		why[0] = 0;
		int rc = open_verdict(path, why, sizeof why);
		if (rc != -EINVAL || !strstr(why, path) || !strstr(why, bad[i].needle1) ||
		    (bad[i].needle2 && !strstr(why, bad[i].needle2)))
			fail_msg("case %zu: fl_session_open returned %d, why '%s'", i, rc, why);
		assert_int_equal(tool_verdict("drainer/fugue-log", path), 1);
		assert_int_equal(tool_verdict("drainer/fugue-logd", path), 3);
	}
	/* an explicit file that does not exist */
	char missing[1200];
	snprintf(missing, sizeof missing, "%s/missing.conf", fl_test_tmp());
	assert_int_equal(open_verdict(missing, why, sizeof why), -EINVAL);
	assert_non_null(strstr(why, "missing.conf: config file not found"));
	assert_int_equal(tool_verdict("drainer/fugue-log", missing), 1);
	assert_int_equal(tool_verdict("drainer/fugue-logd", missing), 3);
	/* and a good one, with the comment form that is allowed after a value */
	const char *good = write_conf("default_level = prompts ; why not\nmax_file_size = 10M ; segments\n");
	assert_int_equal(open_verdict(good, why, sizeof why), 0);
	assert_int_equal(tool_verdict("drainer/fugue-log", good), 0);
	unsetenv("FUGUE_LOG_DIR");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sizes_and_durations),	    cmocka_unit_test(test_file_and_env),
    cmocka_unit_test(test_bad_values_refused),	    cmocka_unit_test(test_roots),
    cmocka_unit_test(test_same_verdict_everywhere),
};

FL_TEST_MAIN("config", tests)

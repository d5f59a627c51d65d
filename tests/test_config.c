/* SPDX-License-Identifier: MIT */
/* test_config: logging.conf parsing, value parsers, env overrides and the refusals they give. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fl_test.h"
#include "config.h"

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
				   "[fuguelog]\nretention = 2h\ncleanup_on_exit = yes\nworkers = 3\n");
	assert_int_equal(fl_config_load(&c, p, why, sizeof why), 0);
	assert_int_equal(c.default_level, 4);
	assert_string_equal(c.root, "/tmp/flroot");
	assert_int_equal(c.max_file_size, 64 << 10);
	assert_int_equal(c.retention_s, 7200);
	assert_int_equal(c.cleanup_on_exit, 1);
	assert_int_equal(c.workers, 3);
	assert_int_equal(c.max_session_size, 1u << 30);
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
	assert_int_equal(fl_config_load(&c, "/nonexistent/fugue.conf", why, sizeof why), -ENOENT);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sizes_and_durations),
    cmocka_unit_test(test_file_and_env),
    cmocka_unit_test(test_bad_values_refused),
};

FL_TEST_MAIN("config", tests)

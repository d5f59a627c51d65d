/* SPDX-License-Identifier: MIT */
/* test_vocabulary: docs/levels.md's tables and proto/fugue_event.proto agree with the one kind list, FL_KINDS. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "fl_test.h"
#include "fl_itest.h"

#include "fuguelog.h"

struct kind {
	const char *name;
	int num, min, cls;
};

#define ROW(K, name, num, lvl, cls) {name, num, FL_LEVEL_##lvl, FL_CLASS_##cls},
static const struct kind list[] = {FL_KINDS(ROW)};
#undef ROW
#define NKINDS (int)(sizeof list / sizeof list[0])

static const char *const level_names[] = {NULL, "spawns", "signals", "prompts", "full"};

static char *slurp(const char *rel)
{
	char path[1200];
	fl_it_source_path(path, sizeof path, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s: %s", path, strerror(errno));
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

/* Splits a markdown table row "| a | b |" into trimmed cells (backticks dropped); returns their count. */
static int cells(char *line, char *out[], int max)
{
	int n = 0;
	if (line[0] != '|')
		return 0;
	for (char *p = line + 1, *bar; n < max && (bar = strchr(p, '|')); p = bar + 1) {
		*bar = 0;
		while (isspace((unsigned char)*p) || *p == '`')
			p++;
		char *e = bar;
		while (e > p && (isspace((unsigned char)e[-1]) || e[-1] == '`'))
			*--e = 0;
		out[n++] = p;
	}
	return n;
}

static int level_of(const char *name)
{
	for (int l = 1; l <= 4; l++)
		if (!strcmp(name, level_names[l]))
			return l;
	return -1;
}

/* The "Every kind" table: one row per kind, in list order, with its min level and class. */
static void test_levels_md_kind_table(void **state)
{
	(void)state;
	char *doc = slurp("docs/levels.md");
	char *t = strstr(doc, "| kind | min level | class (file) | what |");
	assert_non_null(t);
	int row = 0;
	for (char *line = strtok(t, "\n"); line && line[0] == '|'; line = strtok(NULL, "\n")) {
		char *c[8];
		if (cells(line, c, 8) < 3 || !strcmp(c[0], "kind") || c[0][0] == '-')
			continue;
		if (row >= NKINDS)
			fail_msg("levels.md lists more kinds than FL_KINDS: %s", c[0]);
		const struct kind *k = &list[row++];
		if (strcmp(c[0], k->name) || level_of(c[1]) != k->min || strcmp(c[2], k->cls ? "user" : "system"))
			fail_msg("levels.md row %d says %s/%s/%s; FL_KINDS says %s/%s/%s", row, c[0], c[1], c[2],
				 k->name, level_names[k->min], k->cls ? "user" : "system");
	}
	assert_int_equal(row, NKINDS);
}

/* The level table: numbers 1-4 in order, and each level's "records" cell names exactly the kinds it adds. */
static void test_levels_md_level_table(void **state)
{
	(void)state;
	char *doc = slurp("docs/levels.md");
	char *t = strstr(doc, "| level | number | records | typical use |");
	assert_non_null(t);
	int l = 0;
	for (char *line = strtok(t, "\n"); line && line[0] == '|'; line = strtok(NULL, "\n")) {
		char raw[1024];
		snprintf(raw, sizeof raw, "%s", line);
		char *c[8];
		if (cells(line, c, 8) < 3 || !strcmp(c[0], "level") || c[0][0] == '-')
			continue;
		l++;
		assert_true(l <= 4);
		assert_string_equal(c[0], level_names[l]);
		assert_int_equal(atoi(c[1]), l);
		/* the records cell (third) of the raw line: every `kind` quoted there */
		char *rec = raw;
		for (int i = 0; i < 2; i++)
			rec = strchr(rec + 1, '|');
		char *end = strchr(rec + 1, '|');
		*end = 0;
		for (int k = 0; k < NKINDS; k++) {
			char q[40];
			snprintf(q, sizeof q, "`%s`", list[k].name);
			int quoted = strstr(rec, q) != NULL;
			/* the drainer's kinds are written at every level and named below the table */
			int want = list[k].min == l && list[k].num < FL_KIND_FIRST_DRAINER;
			if (quoted != want)
				fail_msg("levels.md: the %s row %s `%s`", level_names[l], quoted ? "names" : "misses",
					 list[k].name);
		}
	}
	assert_int_equal(l, 4);
}

/* Each oneof field is the kind's name at number kind + 5, and each message's comment states its kind. */
static void test_proto_matches(void **state)
{
	(void)state;
	char *proto = slurp("proto/fugue_event.proto");
	for (int k = 0; k < NKINDS; k++) {
		char want[80], cap[40];
		snprintf(cap, sizeof cap, "%s", list[k].name);
		cap[0] = (char)toupper((unsigned char)cap[0]);
		snprintf(want, sizeof want, "    %s %s = %d;\n", cap, list[k].name, list[k].num + 5);
		if (!strstr(proto, want))
			fail_msg("fugue_event.proto has no oneof line '%.*s'", (int)strlen(want) - 1, want);
		char msg[80];
		snprintf(msg, sizeof msg, "message %s {", cap);
		char *m = strstr(proto, msg);
		assert_non_null(m);
		char *eol = strchr(m, '\n');
		char comment[200];
		snprintf(comment, sizeof comment, "%.*s", (int)(eol - m), m);
		char kn[40], lv[60], cl[60];
		snprintf(kn, sizeof kn, "// kind %d,", list[k].num);
		snprintf(lv, sizeof lv, " %s,", level_names[list[k].min]);
		snprintf(cl, sizeof cl, " %s", list[k].cls ? "user" : "system");
		if (!strstr(comment, kn) || !strstr(comment, lv) || !strstr(comment, cl))
			fail_msg("fugue_event.proto: '%s' does not say kind %d, %s, %s", comment, list[k].num,
				 level_names[list[k].min], list[k].cls ? "user" : "system");
	}
}

/* The library's own tables are the list. */
static void test_library_tables(void **state)
{
	(void)state;
	for (int k = 0; k < NKINDS; k++) {
		assert_int_equal(list[k].num, k + 1);
		assert_string_equal(fl_kind_name(list[k].num), list[k].name);
		assert_int_equal(fl_kind_min_level(list[k].num), list[k].min);
		assert_int_equal(fl_kind_class(list[k].num), list[k].cls);
	}
	assert_int_equal(NKINDS, FL_KIND_MAX);
	assert_null(fl_kind_name(FL_KIND_MAX + 1));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_levels_md_kind_table),
    cmocka_unit_test(test_levels_md_level_table),
    cmocka_unit_test(test_proto_matches),
    cmocka_unit_test(test_library_tables),
};

FL_TEST_MAIN("vocabulary", tests)

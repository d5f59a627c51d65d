/* SPDX-License-Identifier: MIT */
/* config.c: parse and validate logging.conf (inih) and the environment overrides. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuguelog.h"

/* $HOME when it is absolute, else the passwd entry's home; NULL when neither is known. */
static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	if (home && home[0] == '/')
		return home;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
}

void fl_config_defaults(struct fl_config *c)
{
	memset(c, 0, sizeof *c);
	const char *home = home_dir();
	snprintf(c->root, sizeof c->root, "%s/.fugue/logs", home ? home : "/tmp");
	snprintf(c->shm_prefix, sizeof c->shm_prefix, "fugue-");
	c->default_level = FL_LEVEL_SIGNALS;
	c->max_file_size = 10ull << 20;
	c->retention_s = 7ull * 86400;
	c->max_session_size = 1ull << 30;
	c->nice = FL_CONFIG_NICE;
}

/* The leading decimal of s (no sign); *end points after it. */
static int parse_leading(const char *s, unsigned long long *v, char **end)
{
	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno || *end == s ? -EINVAL : 0;
}

/* The factor of unit letter c: muls[i] for letters[i]; 0 when c is none of them. */
static uint64_t unit_factor(char c, const char *letters, const uint64_t *muls)
{
	const char *p = c ? strchr(letters, c) : NULL;
	return p ? muls[p - letters] : 0;
}

int fl_parse_size(const char *s, uint64_t *out)
{
	static const uint64_t muls[] = {1ull << 10, 1ull << 10, 1ull << 20, 1ull << 20,
					1ull << 30, 1ull << 30, 1ull << 40, 1ull << 40};
	char *end;
	unsigned long long v;
	if (parse_leading(s, &v, &end) < 0)
		return -EINVAL;
	uint64_t mul = unit_factor(*end, "kKmMgGtT", muls);
	if (mul)
		end++;
	else
		mul = 1;
	if (!strcasecmp(end, "ib") && mul > 1)
		end += 2;
	else if (!strcasecmp(end, "b"))
		end++;
	if (*end || v > UINT64_MAX / mul)
		return -EINVAL;
	*out = (uint64_t)v * mul;
	return 0;
}

int fl_parse_duration(const char *s, uint64_t *out_s)
{
	static const uint64_t muls[] = {1, 60, 3600, 86400, 7 * 86400};
	char *end;
	unsigned long long v;
	if (parse_leading(s, &v, &end) < 0)
		return -EINVAL;
	uint64_t mul = *end ? unit_factor(*end, "smhdw", muls) : 1;
	if (!mul || (*end && end[1]) || v > UINT64_MAX / mul)
		return -EINVAL;
	*out_s = (uint64_t)v * mul;
	return 0;
}

int fl_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "yes", "true", "on"}, *const no[] = {"0", "no", "false", "off"};
	for (unsigned i = 0; s && i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = 1, 0;
		if (!strcasecmp(s, no[i]))
			return *out = 0, 0;
	}
	return -EINVAL;
}

int fl_parse_nice(const char *s, int *out)
{
	char *end;
	long v = s ? strtol(s, &end, 10) : -1;
	if (!s || !*s || *end || v < 0 || v > 19)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int fl_config_root_check(const char *value, const char *source, char *out, size_t outlen, char *why, size_t whylen)
{
	const char *home = NULL;
	if (value && value[0] == '~' && (!value[1] || value[1] == '/')) {
		if (!(home = home_dir())) {
			snprintf(why, whylen, "%s=%s is refused: ~ needs HOME set to an absolute path", source, value);
			return -EINVAL;
		}
		value++;
	}
	if (!value || (!home && value[0] != '/')) {
		snprintf(why, whylen,
			 "%s=%s is refused: use an absolute directory path or ~/... (expanded from "
			 "$HOME); a relative root would depend on where fugue-logd was started",
			 source, value ? value : "");
		return -EINVAL;
	}
	char buf[PATH_MAX];
	size_t n = (size_t)snprintf(buf, sizeof buf, "%s%s", home ? home : "", value);
	if (n >= outlen || n >= sizeof buf) {
		snprintf(why, whylen, "%s=%.64s... is refused: the path is longer than %zu bytes", source, value,
			 outlen - 1);
		return -EINVAL;
	}
	memcpy(out, buf, n + 1);
	return 0;
}

struct load {
	struct fl_config *c;
	FILE *f;
	char *why;
	size_t whylen;
	int line;      /* of the text inih is parsing now */
	int next_line; /* of the next text the reader returns */
	int bad;       /* line of the first refused key, 0 while none */
};

/* inih's reader, counting lines so a refusal can say file:line (inih tells its handler no line). */
static char *read_line(char *buf, int size, void *stream)
{
	struct load *l = stream;
	char *r = fgets(buf, size, l->f);
	if (r) {
		l->line = l->next_line;
		if (strchr(buf, '\n'))
			l->next_line++;
	}
	return r;
}

static int refuse(struct load *l, const char *key, const char *value, const char *allowed)
{
	if (l->bad)
		return 0; /* inih goes on after an error; the first one is the one to fix */
	/* inih strips ' ;' comments after a value, not '#': say so when it is the likely cause */
	const char *hash = strstr(value, " #");
	snprintf(l->why, l->whylen, "%s:%d: %s=%s is refused: %s%s", l->c->path, l->line, key, value, allowed,
		 hash ? " (a comment after a value starts with ' ;'; '#' only starts a comment at the start of a line)"
		      : "");
	l->bad = l->line;
	return 0;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct load *l = user;
	struct fl_config *c = l->c;
	if (*section && strcmp(section, "fuguelog"))
		return refuse(l, key, value, "keys belong at the top level or under [fuguelog]");
	if (!strcmp(key, "default_level")) {
		int v = fl_level_parse(value);
		if (v < 0)
			return refuse(l, key, value, "use " FL_LEVEL_ALLOWED);
		c->default_level = v;
	} else if (!strcmp(key, "root")) {
		char src[PATH_MAX + 32];
		snprintf(src, sizeof src, "%s:%d: root", c->path, l->line);
		if (!l->bad && fl_config_root_check(value, src, c->root, sizeof c->root, l->why, l->whylen) < 0)
			l->bad = l->line;
	} else if (!strcmp(key, "workers")) {
		char *end;
		long v = strtol(value, &end, 10);
		if (*end || end == value || v < 0 || v > 64)
			return refuse(l, key, value, "use 0 (one per core, at most 4) to 64");
		c->workers = (unsigned)v;
	} else if (!strcmp(key, "max_file_size") || !strcmp(key, "max_session_size") ||
		   !strcmp(key, "max_total_size")) {
		uint64_t v;
		if (fl_parse_size(value, &v) < 0)
			return refuse(l, key, value, "use a size like 4096, 512K, 10M or 1G (0 turns it off)");
		if (!strcmp(key, "max_file_size")) {
			if (v && v < 4096)
				return refuse(l, key, value, "use at least 4K, or 0 for no rotation");
			c->max_file_size = v;
		} else if (!strcmp(key, "max_session_size")) {
			c->max_session_size = v;
		} else {
			c->max_total_size = v;
		}
	} else if (!strcmp(key, "retention")) {
		if (fl_parse_duration(value, &c->retention_s) < 0)
			return refuse(l, key, value, "use a duration like 30s, 10m, 12h or 7d (0 keeps forever)");
	} else if (!strcmp(key, "cleanup_on_exit")) {
		if (fl_parse_bool(value, &c->cleanup_on_exit) < 0)
			return refuse(l, key, value, "use yes or no");
	} else if (!strcmp(key, "nice")) {
		if (fl_parse_nice(value, &c->nice) < 0)
			return refuse(l, key, value, FL_NICE_ALLOWED);
	} else {
		return refuse(l, key, value,
			      "unknown key; known: default_level, root, workers, max_file_size, retention, "
			      "max_session_size, max_total_size, cleanup_on_exit, nice");
	}
	return 1;
}

int fl_config_load(struct fl_config *c, const char *path, char *why, size_t whylen)
{
	char dflt[PATH_MAX];
	char scratch[8];
	if (!why) {
		why = scratch;
		whylen = sizeof scratch;
	}
	fl_config_defaults(c);
	if (!path) {
		const char *home = getenv("HOME");
		snprintf(dflt, sizeof dflt, "%s/.fugue/logging.conf", home && *home ? home : ".");
	}
	const char *file = path ? path : dflt;
	struct stat st;
	if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* read as a file, a directory gives no lines: it would pass for an empty config */
		snprintf(why, whylen, "%s: is a directory, not a config file; give the path of the file", file);
		return -EINVAL;
	}
	if (access(file, F_OK) == 0) {
		snprintf(c->path, sizeof c->path, "%s", file);
		struct load l = {c, fopen(file, "re"), why, whylen, 1, 1, 0};
		if (!l.f) {
			snprintf(why, whylen, "%s: cannot read it (%s)", file, strerror(errno));
			return -EINVAL;
		}
		int rc = ini_parse_stream(read_line, &l, handler, &l);
		fclose(l.f);
		if (rc > 0 && (!l.bad || rc < l.bad)) /* a syntax error came before any refused key */
			snprintf(why, whylen, "%s:%d: this line is not 'key = value', '[section]' or a comment", file,
				 rc);
		if (rc != 0 || l.bad)
			return -EINVAL;
	} else if (path) {
		snprintf(why, whylen, "%s: config file not found; create it, or name one that exists", path);
		return -ENOENT;
	}

	const char *v = getenv("FUGUE_LOG_DIR");
	if (v && *v && fl_config_root_check(v, "FUGUE_LOG_DIR", c->root, sizeof c->root, why, whylen) < 0)
		return -EINVAL;
	v = getenv("FUGUE_SESSION_LOG");
	if (v && *v) {
		int lv = fl_level_parse(v);
		if (lv < 0) {
			snprintf(why, whylen, "FUGUE_SESSION_LOG=%s is refused: use " FL_LEVEL_ALLOWED, v);
			return -EINVAL;
		}
		c->default_level = lv;
	}
	v = getenv("FUGUE_SHM_PREFIX");
	if (v && *v) {
		if (strlen(v) >= sizeof c->shm_prefix - 1 || strchr(v, '/')) {
			snprintf(why, whylen, "FUGUE_SHM_PREFIX=%s is refused: use up to 64 characters, no '/'", v);
			return -EINVAL;
		}
		snprintf(c->shm_prefix, sizeof c->shm_prefix, "%s", v);
	}
	return 0;
}

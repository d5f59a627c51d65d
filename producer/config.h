/* SPDX-License-Identifier: MIT */
/* config.h: logging.conf, environment overrides and the value parsers shared by fugue-logd and fugue-log. */
#ifndef FL_CONFIG_H
#define FL_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Precedence, lowest first: built-in defaults < config file < environment
 * (FUGUE_LOG_DIR, FUGUE_SESSION_LOG, FUGUE_SHM_PREFIX) < command line (the
 * caller overrides fields after fl_config_load). Keys live at the top level of
 * the file or under [fuguelog]; unknown keys and sections, bad values and
 * syntax errors are refused. The one reader of logging.conf: libfuguelog
 * (fl_session_open), fugue-logd and fugue-log all call fl_config_load.
 */
struct fl_config {
	char path[PATH_MAX];	   /* the file read ("" when none existed) */
	char root[PATH_MAX];	   /* log root; default ~/.fugue/logs */
	char shm_prefix[72];	   /* default "fugue-" */
	int default_level;	   /* 1..4; default 2 (signals) */
	unsigned workers;	   /* 0: one per core, at most 4 */
	uint64_t max_file_size;	   /* bytes; default 10M; 0 = no rotation */
	uint64_t retention_s;	   /* seconds; default 7d; 0 = keep forever */
	uint64_t max_session_size; /* bytes; default 1G; 0 = off */
	uint64_t max_total_size;   /* bytes; default 0 = off */
	int cleanup_on_exit;	   /* 0/1; default 0 */
	int nice;		   /* fugue-logd's niceness, 0..19; default FL_CONFIG_NICE */
};

/*
 * fugue-logd yields to the sessions it records: on a CPU it shares with a busy
 * session it takes about a tenth of it, and the scheduler moves it to an idle
 * CPU (docs/configuration.md, 'nice').
 */
#define FL_CONFIG_NICE 10

/* What fl_level_parse accepts, for messages that refuse a level. */
#define FL_LEVEL_ALLOWED "spawns, signals, prompts or full (or 1-4; any case)"

/* Fills the built-in defaults (root from $HOME, else the passwd entry, else /tmp). */
void fl_config_defaults(struct fl_config *c);

/*
 * Defaults, then the file (path, or $HOME/.fugue/logging.conf when NULL; a
 * missing default file is fine, a missing explicit one is not), then the
 * environment. Returns 0, or -EINVAL/-ENOENT with why saying the file, line,
 * key, value and what is allowed.
 */
int fl_config_load(struct fl_config *c, const char *path, char *why, size_t whylen);

/*
 * The one rule for a log root, whatever its source (config 'root',
 * FUGUE_LOG_DIR, --root): an absolute path, or "~" / "~/..." expanded from
 * $HOME (else the passwd entry). Relative paths and "~user" are refused,
 * because fugue-logd changes to / when it daemonizes and a relative root would
 * silently move there. source names where the value came from in why
 * ("FUGUE_LOG_DIR", "--root", "file:line: root"). Writes the result into out;
 * returns 0, or -EINVAL with why saying "<source>=<value> is refused: <what to do>".
 */
int fl_config_root_check(const char *value, const char *source, char *out, size_t outlen, char *why, size_t whylen);

/* "10M", "512K", "1G", "4096" (bytes; K/M/G are powers of 1024, optional B/iB). -EINVAL if bad. */
int fl_parse_size(const char *s, uint64_t *out);

/* "30s", "10m", "2h", "7d", "0" (plain numbers are seconds). -EINVAL if bad. */
int fl_parse_duration(const char *s, uint64_t *out_s);

/* "yes/no/true/false/on/off/1/0". -EINVAL if bad. */
int fl_parse_bool(const char *s, int *out);

/* A niceness for fugue-logd: 0..19 (a negative one, more CPU than the sessions get, needs privilege). */
int fl_parse_nice(const char *s, int *out);
#define FL_NICE_ALLOWED "use 0 (compete with the sessions as an equal) to 19 (yield the most); default 10"

#endif

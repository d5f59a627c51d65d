/* SPDX-License-Identifier: MIT */
/* cmd_export.c: fugue-log export — a recorded session as an asciicast v2 file or script(1)'s timing file and log. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fuguelog.h"
#include "sessread.h"

static void help(void)
{
	printf("usage: fugue-log export SESSION --format asciicast|script [--output FILE] [--timing FILE]\n"
	       "\n"
	       "Writes what 'fugue-log run' recorded in SESSION in another player's format:\n"
	       "  asciicast  asciinema's v2 file: a header line {\"version\":2,\"width\",\"height\",\n"
	       "             \"timestamp\",\"command\"}, then [t,\"o\",text] output, [t,\"i\",text] input\n"
	       "             and [t,\"r\",\"COLSxROWS\"] resizes, one JSON array a line (bytes that are\n"
	       "             not UTF-8 become U+FFFD, as asciicast text must be UTF-8)\n"
	       "  script     script(1)'s advanced timing file (--timing, required) and its log\n"
	       "             (--output): 'scriptreplay -T TIMING -B LOG' plays it, and so does\n"
	       "             'scriptreplay -T TIMING -O LOG' when no input was recorded\n"
	       "\n"
	       "  --output FILE  where the cast or the log goes (default stdout)\n"
	       "  --timing FILE  the timing file (--format script only)\n"
	       "\n"
	       "Exit codes: 0 written; 1 a file could not be read or written; 2 usage error; 3 no\n"
	       "such session.\n");
}

/* Length of the UTF-8 sequence at p (n bytes left): >0 valid, 0 invalid, -1 a valid but cut-off start. */
static int utf8_seq(const uint8_t *p, size_t n)
{
	int len;
	unsigned lo = 0x80, hi = 0xbf;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if (i == 1 ? p[1] < lo || p[1] > hi : (p[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

/*
 * Writes p as a JSON string of UTF-8 text. A sequence cut off at the end is
 * kept in carry (up to 3 bytes) for the next chunk of the same stream, so a
 * character split between two reads is not lost.
 */
static void cast_text(FILE *f, uint8_t *carry, size_t *ncarry, const uint8_t *p, size_t n, int last)
{
	uint8_t *buf = malloc(*ncarry + n + 1);
	if (!buf)
		return;
	memcpy(buf, carry, *ncarry);
	if (n)
		memcpy(buf + *ncarry, p, n);
	n += *ncarry;
	*ncarry = 0;
	fputc('"', f);
	for (size_t i = 0; i < n;) {
		uint8_t ch = buf[i];
		int k = utf8_seq(buf + i, n - i);
		if (k < 0 && !last) {
			memcpy(carry, buf + i, n - i);
			*ncarry = n - i;
			break;
		}
		if (k <= 0) {
			fputs("\xef\xbf\xbd", f);
			i++;
		} else if (k > 1) {
			fwrite(buf + i, 1, (size_t)k, f);
			i += (size_t)k;
		} else {
			if (ch == '"' || ch == '\\')
				fprintf(f, "\\%c", ch);
			else if (ch == '\n')
				fputs("\\n", f);
			else if (ch == '\r')
				fputs("\\r", f);
			else if (ch == '\t')
				fputs("\\t", f);
			else if (ch < 0x20 || ch == 0x7f)
				fprintf(f, "\\u%04x", ch);
			else
				fputc(ch, f);
			i++;
		}
	}
	fputc('"', f);
	free(buf);
}

struct exp {
	FILE *out, *tm;
	int cast;
	uint64_t t0, prev;
	uint8_t carry[2][4];
	size_t ncarry[2];
	int header;
};

static int parse_size(const uint8_t *s, unsigned *rows, unsigned *cols)
{
	return sscanf((const char *)s, "%ux%u", rows, cols) == 2 ? 0 : -EINVAL;
}

static void header(struct exp *x, const struct fl_evline *spawn, unsigned rows, unsigned cols)
{
	char *line = NULL;
	if (spawn && spawn->data)
		fl_evline_words(spawn, "argv", &line); /* joined with spaces: for display, as asciinema's "command" */
	time_t ts = (time_t)(x->t0 / 1000000000ull);
	if (x->cast) {
		fprintf(x->out,
			"{\"version\":2,\"width\":%u,\"height\":%u,\"timestamp\":%lld,\"command\":", cols ? cols : 80,
			rows ? rows : 24, (long long)ts);
		fl_cli_json_str(x->out, line ? line : "");
		fputs("}\n", x->out);
	} else {
		struct tm tmv;
		char date[64];
		gmtime_r(&ts, &tmv);
		strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S+00:00", &tmv);
		fprintf(x->out, "Script started on %s [COMMAND=\"%s\"]\n", date, line ? line : "");
		fprintf(x->tm, "H 0.000000 START_TIME %s\nH 0.000000 COMMAND %s\n", date, line ? line : "");
		if (cols)
			fprintf(x->tm, "H 0.000000 COLUMNS %u\nH 0.000000 LINES %u\n", cols, rows);
	}
	free(line);
	x->header = 1;
}

int fl_cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
					     {"output", required_argument, NULL, 'o'},
					     {"timing", required_argument, NULL, 't'},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	const char *format = NULL, *output = NULL, *timing = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "hf:o:t:", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 't':
			timing = optarg;
			break;
		case 'h':
			help();
			return FL_EXIT_OK;
		default:
			return fl_cli_usage_err("export", "bad option");
		}
	}
	if (optind + 1 != argc)
		return fl_cli_usage_err("export", "give exactly one SESSION");
	if (fl_id_check(argv[optind]) < 0)
		return fl_cli_usage_err("export", "'%s' is not a session id: ids are 1 to 64 of A-Z a-z 0-9 . _ -",
					argv[optind]);
	if (!format || (strcmp(format, "asciicast") && strcmp(format, "script")))
		return fl_cli_usage_err("export", "--format asciicast or --format script is required");
	struct exp x = {.cast = !strcmp(format, "asciicast")};
	if (!x.cast && !timing)
		return fl_cli_usage_err("export", "--format script needs --timing FILE (the log goes to --output)");
	if (x.cast && timing)
		return fl_cli_usage_err("export", "--timing is for --format script only");
	struct fl_config cfg;
	int rc = fl_cli_config(&cfg);
	if (rc)
		return rc;
	struct fl_sessread *r;
	char why[512];
	rc = fl_sessread_open(&r, cfg.root, argv[optind], why, sizeof why);
	if (rc < 0) {
		fl_cli_err("%s", why);
		return rc == -ENOENT ? FL_EXIT_NOSESSION : FL_EXIT_FAIL;
	}
	x.out = output ? fopen(output, "w") : stdout;
	x.tm = timing ? fopen(timing, "w") : NULL;
	if (!x.out || (timing && !x.tm)) {
		fl_cli_err("cannot create %s: %s", !x.out ? output : timing, strerror(errno));
		if (x.out && x.out != stdout)
			fclose(x.out);
		fl_sessread_close(r);
		return FL_EXIT_FAIL;
	}
	int ret = FL_EXIT_OK;
	struct fl_evline ev;
	char *spawn = NULL;
	size_t spawn_len = 0;
	while ((rc = fl_sessread_next(r, &ev, why, sizeof why)) != 0) {
		if (rc < 0) {
			fl_cli_err("%s", why);
			ret = FL_EXIT_FAIL;
			continue;
		}
		if (!ev.data)
			continue;
		if (!x.t0)
			x.t0 = x.prev = ev.ts_ns;
		int out = !strcmp(ev.kind, "transcript"), in = !strcmp(ev.kind, "input");
		int st = !strcmp(ev.kind, "state");
		if (!strcmp(ev.kind, "spawn") && !spawn) {
			spawn = strndup(ev.line, ev.len);
			spawn_len = ev.len;
			continue;
		}
		uint8_t *b = NULL, *to = NULL;
		size_t n = 0, tn = 0;
		unsigned rows = 0, cols = 0;
		if (st && (fl_json_bytes(ev.data, ev.dlen, "to", &to, &tn) < 0 || parse_size(to, &rows, &cols) < 0)) {
			free(to);
			continue; /* a state that is not a size */
		}
		if (st && !x.header) {
			/* the first size, from the start state, goes into the header; later ones are resizes */
			struct fl_evline sp;
			if (spawn)
				fl_evline_parse(&sp, spawn, spawn_len);
			header(&x, spawn ? &sp : NULL, rows, cols);
			free(to);
			continue;
		}
		if (!st && !out && !in)
			continue;
		if (!x.header)
			header(&x, NULL, 0, 0);
		if (!st && fl_json_bytes(ev.data, ev.dlen, "data", &b, &n) < 0) {
			fl_cli_err("seq %llu: %s without readable data; skipped", (unsigned long long)ev.seq, ev.kind);
			ret = FL_EXIT_FAIL;
			continue;
		}
		double t = (double)(ev.ts_ns - x.t0) / 1e9, d = (double)(ev.ts_ns - x.prev) / 1e9;
		if (ev.ts_ns < x.prev)
			d = 0;
		else
			x.prev = ev.ts_ns;
		if (x.cast) {
			fprintf(x.out, "[%.6f, \"%s\", ", t, st ? "r" : out ? "o" : "i");
			if (st)
				fprintf(x.out, "\"%ux%u\"", cols, rows);
			else
				cast_text(x.out, x.carry[in], &x.ncarry[in], b, n, 0);
			fputs("]\n", x.out);
		} else if (st) {
			fprintf(x.tm, "S %.6f SIGWINCH ROWS=%u COLS=%u\n", d, rows, cols);
		} else {
			fprintf(x.tm, "%c %.6f %zu\n", out ? 'O' : 'I', d, n);
			fwrite(b, 1, n, x.out);
		}
		free(b);
		free(to);
	}
	if (!x.header)
		header(&x, NULL, 0, 0);
	for (int in = 0; in < 2; in++)
		if (x.cast && x.ncarry[in]) {
			/* a character cut off by the end of the recording: shown as U+FFFD rather than lost */
			fprintf(x.out, "[%.6f, \"%s\", ", (double)(x.prev - x.t0) / 1e9, in ? "i" : "o");
			cast_text(x.out, x.carry[in], &x.ncarry[in], NULL, 0, 1);
			fputs("]\n", x.out);
		}
	free(spawn);
	fl_sessread_close(r);
	if ((x.out != stdout && fclose(x.out)) || (x.out == stdout && fflush(stdout)) || (x.tm && fclose(x.tm))) {
		fl_cli_err("cannot write the export: %s", strerror(errno));
		ret = FL_EXIT_FAIL;
	}
	return ret;
}

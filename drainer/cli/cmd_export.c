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
	char *spawn; /* the spawn line, for the header's command */
	size_t spawn_len;
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

/* The size a state event moved to ("ROWSxCOLS"): 0, or -1 when it is not a size. */
static int state_size(const struct fl_evline *ev, unsigned *rows, unsigned *cols)
{
	uint8_t *to = NULL;
	size_t tn = 0;
	int rc = fl_json_bytes(ev->data, ev->dlen, "to", &to, &tn) < 0 || parse_size(to, rows, cols) < 0 ? -1 : 0;
	free(to);
	return rc;
}

/* Writes one output, input (data b, n bytes) or resize (st) event at ts_ns. */
static void put_record(struct exp *x, uint64_t ts_ns, int st, int in, const uint8_t *b, size_t n, unsigned rows,
		       unsigned cols)
{
	double t = (double)(ts_ns - x->t0) / 1e9, d = (double)(ts_ns - x->prev) / 1e9;
	if (ts_ns < x->prev)
		d = 0;
	else
		x->prev = ts_ns;
	if (x->cast) {
		fprintf(x->out, "[%.6f, \"%s\", ", t, st ? "r" : in ? "i" : "o");
		if (st)
			fprintf(x->out, "\"%ux%u\"", cols, rows);
		else
			cast_text(x->out, x->carry[in], &x->ncarry[in], b, n, 0);
		fputs("]\n", x->out);
	} else if (st) {
		fprintf(x->tm, "S %.6f SIGWINCH ROWS=%u COLS=%u\n", d, rows, cols);
	} else {
		fprintf(x->tm, "%c %.6f %zu\n", in ? 'I' : 'O', d, n);
		fwrite(b, 1, n, x->out);
	}
}

/* One event of the session (fl_cli_session_each): kept for the header, written, or passed over. */
static int put_event(const struct fl_evline *ev, void *arg)
{
	struct exp *x = arg;
	if (!x->t0)
		x->t0 = x->prev = ev->ts_ns;
	int out = !strcmp(ev->kind, "transcript"), in = !strcmp(ev->kind, "input");
	int st = !strcmp(ev->kind, "state");
	if (!strcmp(ev->kind, "spawn") && !x->spawn) {
		x->spawn = strndup(ev->line, ev->len);
		x->spawn_len = ev->len;
		return 0;
	}
	unsigned rows = 0, cols = 0;
	if (st && state_size(ev, &rows, &cols) < 0)
		return 0; /* a state that is not a size */
	if (st && !x->header) {
		/* the first size, from the start state, goes into the header; later ones are resizes */
		struct fl_evline sp;
		if (x->spawn)
			fl_evline_parse(&sp, x->spawn, x->spawn_len);
		header(x, x->spawn ? &sp : NULL, rows, cols);
		return 0;
	}
	if (!st && !out && !in)
		return 0;
	if (!x->header)
		header(x, NULL, 0, 0);
	uint8_t *b = NULL;
	size_t n = 0;
	if (!st && fl_json_bytes(ev->data, ev->dlen, "data", &b, &n) < 0) {
		fl_cli_err("seq %llu: %s without readable data; skipped", (unsigned long long)ev->seq, ev->kind);
		return FL_EXIT_FAIL;
	}
	put_record(x, ev->ts_ns, st, in, b, n, rows, cols);
	free(b);
	return 0;
}

/* The header when no event gave one, and characters cut off by the end of the recording. */
static void finish(struct exp *x)
{
	if (!x->header)
		header(x, NULL, 0, 0);
	for (int in = 0; in < 2; in++)
		if (x->cast && x->ncarry[in]) {
			/* shown as U+FFFD rather than lost */
			fprintf(x->out, "[%.6f, \"%s\", ", (double)(x->prev - x->t0) / 1e9, in ? "i" : "o");
			cast_text(x->out, x->carry[in], &x->ncarry[in], NULL, 0, 1);
			fputs("]\n", x->out);
		}
}

struct exp_args {
	const char *format, *output, *timing;
};

/* Reads the command line into a: 0, -1 when help was printed, or a usage exit code. */
static int parse_args(struct exp_args *a, int argc, char **argv)
{
	static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
					     {"output", required_argument, NULL, 'o'},
					     {"timing", required_argument, NULL, 't'},
					     FL_CLI_COMMON_OPTS,
					     {0}};
	int c;
	while ((c = getopt_long(argc, argv, "hf:o:t:", opts, NULL)) != -1) {
		if (fl_cli_common_opt(c, optarg))
			continue;
		switch (c) {
		case 'f':
			a->format = optarg;
			break;
		case 'o':
			a->output = optarg;
			break;
		case 't':
			a->timing = optarg;
			break;
		case 'h':
			help();
			return -1;
		default:
			return fl_cli_usage_err("export", "bad option");
		}
	}
	int rc = fl_cli_session_arg("export", argc, argv);
	if (rc)
		return rc;
	if (!a->format || (strcmp(a->format, "asciicast") && strcmp(a->format, "script")))
		return fl_cli_usage_err("export", "--format asciicast or --format script is required");
	int cast = !strcmp(a->format, "asciicast");
	if (!cast && !a->timing)
		return fl_cli_usage_err("export", "--format script needs --timing FILE (the log goes to --output)");
	if (cast && a->timing)
		return fl_cli_usage_err("export", "--timing is for --format script only");
	return 0;
}

/* Creates --output (or takes stdout) and --timing: 0, or -1 having said why, with neither left open. */
static int open_outputs(struct exp *x, const struct exp_args *a)
{
	x->out = a->output ? fopen(a->output, "w") : stdout;
	x->tm = a->timing ? fopen(a->timing, "w") : NULL;
	if (x->out && (!a->timing || x->tm))
		return 0;
	fl_cli_err("cannot create %s: %s", !x->out ? a->output : a->timing, strerror(errno));
	if (x->out && x->out != stdout)
		fclose(x->out);
	return -1;
}

int fl_cmd_export(int argc, char **argv)
{
	struct exp_args a = {0};
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc < 0 ? FL_EXIT_OK : rc;
	struct fl_sessread *r;
	if ((rc = fl_cli_session_open(argv[optind], &r)))
		return rc;
	struct exp x = {.cast = !strcmp(a.format, "asciicast")};
	if (open_outputs(&x, &a) < 0) {
		fl_sessread_close(r);
		return FL_EXIT_FAIL;
	}
	int ret = fl_cli_session_each(r, put_event, &x);
	finish(&x);
	free(x.spawn);
	if ((x.out != stdout && fclose(x.out)) || (x.out == stdout && fflush(stdout)) || (x.tm && fclose(x.tm))) {
		fl_cli_err("cannot write the export: %s", strerror(errno));
		ret = FL_EXIT_FAIL;
	}
	return ret;
}

/* SPDX-License-Identifier: MIT */
/* text.h: one short human line per event (time, kind, summary), as journalctl -o short prints. */
#ifndef FL_TEXT_H
#define FL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define FL_TEXT_SUMMARY_MAX 100 /* summary characters shown; longer ones end in "..." */

/*
 * Writes "Mon DD HH:MM:SS.mmm KIND SUMMARY\n" into out (cap bytes, NUL
 * terminated, cut to fit): the time in local time (TZ), the summary with
 * control bytes shown as \n \r \t \e or \xHH and bytes that are not UTF-8 as
 * \xHH, so the line is one terminal line whatever the bytes were. Returns the
 * length written.
 */
size_t fl_text_line(char *out, size_t cap, uint64_t ts_ns, const char *kind, const uint8_t *summary, size_t slen);

#endif

/* include/tftpgw/json.h - a growing text buffer (the metrics exposition
 * and the live transfers view build their answers in one) and JSON string
 * escaping (RFC 8259) for the live view (docs/metrics.md, "Live
 * transfers"). Owner: gateway/json.c. Pure: no I/O, no clock. */
#ifndef TFTPGW_JSON_H
#define TFTPGW_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "tftpgw/common.h"

/* A NUL-terminated text that grows as needed. Out of memory sets oom and
 * later appends do nothing, so a builder checks once at the end. */
struct tg_jbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

void tg_jbuf_add(struct tg_jbuf *b, const char *s, size_t n);
void tg_jbuf_str(struct tg_jbuf *b, const char *s);
void tg_jbuf_printf(struct tg_jbuf *b, const char *fmt, ...) TG_PRINTF(2, 3);
/* s as a JSON string, quotes included; NULL becomes null. */
void tg_jbuf_jstr(struct tg_jbuf *b, const char *s);

/* Escape the bytes s[0..n) for the inside of a JSON string (RFC 8259
 * section 7): " and \ get a backslash, control bytes and DEL become
 * \u00XX, and so do < > & (the text may end up in a page). Valid UTF-8
 * passes through; each byte of an invalid sequence (a stray continuation
 * byte, a truncated or overlong sequence, a surrogate, beyond U+10FFFF) is
 * written as \u00XX, so the result is always valid JSON and no byte is
 * lost. Writes at most cap - 1 bytes and a NUL (when cap > 0) and returns
 * the length the whole escape needs, like snprintf. */
size_t tg_json_escape(const char *s, size_t n, char *out, size_t cap);

#endif

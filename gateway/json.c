/* gateway/json.c - a growing text buffer and JSON string escaping for the
 * live transfers view. File names come from clients, so every byte of
 * them must come out as valid JSON whatever it is (include/tftpgw/json.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tftpgw/json.h"

static void grow(struct tg_jbuf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    if (b->oom || b->len + need < b->cap)
        return;
    while (cap <= b->len + need)
        cap *= 2;
    p = tg_realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

void tg_jbuf_add(struct tg_jbuf *b, const char *s, size_t n)
{
    grow(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tg_jbuf_str(struct tg_jbuf *b, const char *s)
{
    tg_jbuf_add(b, s, strlen(s));
}

void tg_jbuf_printf(struct tg_jbuf *b, const char *fmt, ...)
{
    va_list ap, again;
    int n;

    va_start(ap, fmt);
    va_copy(again, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        grow(b, (size_t)n);
        if (!b->oom) {
            vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
            b->len += (size_t)n;
        }
    }
    va_end(again);
}

void tg_jbuf_jstr(struct tg_jbuf *b, const char *s)
{
    size_t n, need;

    if (!s) {
        tg_jbuf_str(b, "null");
        return;
    }
    n = strlen(s);
    need = tg_json_escape(s, n, NULL, 0);
    grow(b, need + 2);
    if (b->oom)
        return;
    b->p[b->len++] = '"';
    tg_json_escape(s, n, b->p + b->len, need + 1);
    b->len += need;
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if there is
 * none: the ranges of RFC 3629 section 4, which exclude overlong forms and
 * surrogates. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len, i;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

static void put(char *out, size_t cap, size_t at, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (out && at + i + 1 < cap)
            out[at + i] = s[i];
}

size_t tg_json_escape(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, at = 0;

    while (i < n) {
        unsigned char c = u[i];
        char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        size_t ulen;

        if (c == '"' || c == '\\') {
            char two[2] = {'\\', (char)c};

            put(out, cap, at, two, 2);
            at += 2;
            i++;
        } else if (c < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '&') {
            put(out, cap, at, esc, 6);
            at += 6;
            i++;
        } else if (c < 0x80) {
            put(out, cap, at, (const char *)&u[i], 1);
            at++;
            i++;
        } else if ((ulen = utf8_len(&u[i], n - i)) > 0) {
            put(out, cap, at, (const char *)&u[i], ulen);
            at += ulen;
            i += ulen;
        } else {
            /* One byte of an invalid sequence: its value as a code point
             * (U+0080..U+00FF), so nothing is dropped and the rest of the
             * name resynchronises at the next byte. */
            put(out, cap, at, esc, 6);
            at += 6;
            i++;
        }
    }
    if (out && cap > 0)
        out[at < cap ? at : cap - 1] = '\0';
    return at;
}

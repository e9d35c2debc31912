/* gateway/path.c - client filename to safe relative path. */
#include <string.h>

#include "tftpgw/path.h"

static bool is_sep(unsigned char c)
{
    /* Windows boot programs send backslashes (docs/protocol.md, File
     * names). */
    return c == '/' || c == '\\';
}

/* Length of the UTF-8 sequence at s (1 to 4), or 0 when it is invalid:
 * RFC 3629 ranges, so overlong forms (C0 AE is a disguised '.'), surrogates
 * and code points above U+10FFFF are all refused. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;          /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f;          /* above: UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;          /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f;          /* above: beyond U+10FFFF */
    } else {
        return 0;               /* continuation byte, C0, C1, F5..FF */
    }
    /* A NUL terminator fails the range test, so this never reads past it. */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Everything that makes a name unacceptable whatever its length, checked over
 * the whole input first so a refusal never depends on where truncation hits. */
static int check_name(const unsigned char *s)
{
    size_t seg = 0;     /* bytes in the current segment so far */
    bool dots = true;   /* the current segment is only dots so far */

    for (;;) {
        unsigned char c = *s;
        size_t n;

        if (c == '\0' || is_sep(c)) {
            if (dots && seg == 2)
                return TG_EACCES;       /* ".." would climb out of the root */
            if (c == '\0')
                return 0;
            seg = 0;
            dots = true;
            s++;
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            return TG_EACCES;
        n = utf8_len(s);
        if (n == 0)
            return TG_EACCES;
        if (c != '.')
            dots = false;
        seg += n;
        s += n;
    }
}

int tg_path_normalize(const char *in, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t limit, len = 0;
    int rc;

    if (!in || !out)
        return TG_EINVAL;
    if (cap > 0)
        out[0] = '\0';
    rc = check_name(s);
    if (rc < 0)
        return rc;

    /* Room for the result without its NUL. */
    limit = cap < TG_PATH_MAX ? cap : TG_PATH_MAX;
    limit = limit > 0 ? limit - 1 : 0;

    while (*s) {
        const unsigned char *seg;
        size_t seglen, need;

        while (is_sep(*s))
            s++;
        seg = s;
        while (*s && !is_sep(*s))
            s++;
        seglen = (size_t)(s - seg);
        if (seglen == 0 || (seglen == 1 && seg[0] == '.'))
            continue;
        need = seglen + (len > 0 ? 1 : 0);
        if (need > limit - len) {
            if (cap > 0)
                out[0] = '\0';
            return TG_ENAMETOOLONG;
        }
        if (len > 0)
            out[len++] = '/';
        memcpy(out + len, seg, seglen);
        len += seglen;
    }
    if (len == 0)
        return TG_ENOENT;
    out[len] = '\0';
    return 0;
}

const char *tg_path_basename(const char *norm)
{
    const char *slash = strrchr(norm, '/');

    return slash ? slash + 1 : norm;
}

void tg_path_lower(char *s)
{
    /* ASCII only, by hand: tolower() follows the locale, and a locale
     * that folds single bytes of a UTF-8 sequence would corrupt it. */
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* gateway/uri.c - URL path encoding. */
#include "tftpgw/uri.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int encode(const char *key, char *out, size_t cap, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *key; key++) {
        unsigned char c = (unsigned char)*key;

        if (unreserved(c) || (keep_slash && c == '/')) {
            if (n + 1 >= cap)
                return TG_ENAMETOOLONG;
            out[n++] = (char)c;
        } else {
            if (n + 3 >= cap)
                return TG_ENAMETOOLONG;
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 0xf];
        }
    }
    if (n >= cap)
        return TG_ENAMETOOLONG;
    out[n] = '\0';
    return (int)n;
}

int tg_uri_encode_path(const char *key, char *out, size_t cap)
{
    return encode(key, out, cap, true);
}

int tg_uri_encode_component(const char *s, char *out, size_t cap)
{
    return encode(s, out, cap, false);
}

/* gateway/cachectl.c - the response fields a shared cache obeys (RFC 9111
 * section 5) and the freshness they give (section 4.2). Pure: the http
 * engine feeds it header lines, the cache asks it what to do. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "tftpgw/cachectl.h"

/* RFC 9111 section 1.2.2: a delta-seconds too large to represent is
 * 2^31 seconds. */
#define DELTA_MAX 2147483648LL

void tg_cc_init(struct tg_cache_control *c)
{
    memset(c, 0, sizeof(*c));
    c->max_age = c->s_maxage = c->expires = c->date = c->age = -1;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* delta-seconds (RFC 9111 section 1.2.2): digits only; -1 when it is not
 * one. */
static int64_t delta_seconds(const char *v, size_t n)
{
    int64_t x = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        if (x < DELTA_MAX)
            x = x * 10 + (v[i] - '0');
    }
    return x < DELTA_MAX ? x : DELTA_MAX;
}

/* An HTTP-date (RFC 9110 section 5.6.7, all three forms); -1 when not. */
static int64_t http_date(const char *v, size_t n)
{
    char tmp[64];
    time_t t;

    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    t = curl_getdate(tmp, NULL);
    return t < 0 ? -1 : (int64_t)t;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* One directive of Cache-Control: name, and its argument (quotes already
 * removed) or NULL. Unknown directives are ignored (section 5.2.3). */
static void directive(struct tg_cache_control *c, const char *nm, size_t nl, const char *arg,
                      size_t al)
{
    int64_t d;

    if (name_is(nm, nl, "no-store")) {
        c->no_store = true;
    } else if (name_is(nm, nl, "private")) {
        /* Qualified private="field" would let the rest be stored; keeping
         * none of it is the safe reading for a shared cache. */
        c->private_ = true;
    } else if (name_is(nm, nl, "no-cache")) {
        c->no_cache = true;
    } else if (name_is(nm, nl, "max-age") || name_is(nm, nl, "s-maxage")) {
        int64_t *slot = nm[0] == 'm' || nm[0] == 'M' ? &c->max_age : &c->s_maxage;

        /* An argument that is no number makes the response stale. */
        d = arg ? delta_seconds(arg, al) : -1;
        if (*slot < 0)
            *slot = d < 0 ? 0 : d;
    }
}

/* Cache-Control = #cache-directive (RFC 9111 section 5.2); a quoted
 * argument may hold commas and backslash escapes. */
static void cache_control(struct tg_cache_control *c, const char *p, const char *end)
{
    while (p < end) {
        const char *nm, *arg = NULL;
        size_t nl, al = 0;
        char q[128];

        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        nm = p;
        while (p < end && *p != '=' && *p != ',' && !is_ows(*p))
            p++;
        nl = (size_t)(p - nm);
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_ows(*p))
                p++;
            if (p < end && *p == '"') {
                for (p++; p < end && *p != '"'; p++) {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    if (al < sizeof(q))
                        q[al++] = *p;
                }
                p += p < end; /* the closing quote */
                arg = q;
            } else {
                arg = p;
                while (p < end && *p != ',' && !is_ows(*p))
                    p++;
                al = (size_t)(p - arg);
            }
        }
        if (nl > 0)
            directive(c, nm, nl, arg, al);
        while (p < end && *p != ',')
            p++; /* anything after a directive up to the next comma */
    }
}

/* Vary = "*" / #field-name (RFC 9110 section 12.5.5): kept lower-case,
 * each name followed by ','. Too many to keep is as good as "*". */
static void vary(struct tg_cache_control *c, const char *p, const char *end)
{
    while (p < end) {
        const char *nm;
        size_t nl, have = strlen(c->vary);

        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        nm = p;
        while (p < end && *p != ',' && !is_ows(*p))
            p++;
        nl = (size_t)(p - nm);
        if (nl == 0)
            continue;
        if (nl == 1 && nm[0] == '*') {
            c->vary_star = true;
        } else if (have + nl + 2 > sizeof(c->vary)) {
            c->vary_star = true;
        } else {
            for (size_t i = 0; i < nl; i++)
                c->vary[have + i] = (char)tolower((unsigned char)nm[i]);
            c->vary[have + nl] = ',';
            c->vary[have + nl + 1] = '\0';
        }
    }
}

void tg_cc_header(struct tg_cache_control *c, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len), *v, *end = line + len;
    size_t nl;

    if (!colon)
        return;
    nl = (size_t)(colon - line);
    v = colon + 1;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    if (name_is(line, nl, "Cache-Control")) {
        cache_control(c, v, end);
    } else if (name_is(line, nl, "Vary")) {
        vary(c, v, end);
    } else if (name_is(line, nl, "Expires")) {
        if (c->expires < 0 && !c->expires_bad) {
            c->expires = http_date(v, (size_t)(end - v));
            c->expires_bad = c->expires < 0;
        }
    } else if (name_is(line, nl, "Date")) {
        if (c->date < 0)
            c->date = http_date(v, (size_t)(end - v));
    } else if (name_is(line, nl, "Age")) {
        if (c->age < 0)
            c->age = delta_seconds(v, (size_t)(end - v));
    }
}

int64_t tg_cc_fresh_ms(const struct tg_cache_control *c, int64_t now_s)
{
    int64_t life, age = 0;

    if (c->no_cache)
        return 0;
    if (c->s_maxage >= 0) /* shared caches only, wins (section 5.2.2.10) */
        life = c->s_maxage;
    else if (c->max_age >= 0)
        life = c->max_age;
    else if (c->expires_bad)
        return 0;
    else if (c->expires >= 0)
        life = c->expires - (c->date >= 0 ? c->date : now_s);
    else
        return -1;
    /* The age it had on arrival (section 4.2.3), without the request's own
     * round trip: Age, or how far Date lies behind now. */
    if (c->date >= 0 && now_s > c->date)
        age = now_s - c->date;
    if (c->age > age)
        age = c->age;
    life -= age;
    return life > 0 ? life * 1000 : 0;
}

/* Does the comma-terminated list hold name (lower-case)? */
static bool vary_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');

        if ((size_t)(comma - p) == n && !strncmp(p, name, n))
            return true;
        p = comma + 1;
    }
    return false;
}

const char *tg_cc_unstorable(const struct tg_cache_control *c, bool client_headers)
{
    if (c->no_store)
        return "Cache-Control no-store";
    if (c->private_)
        return "Cache-Control private";
    if (c->vary_star)
        return "Vary: *";
    if (client_headers && vary_has(c->vary, "x-tftp-client"))
        return "Vary: X-TFTP-Client (differs per client)";
    if (client_headers && vary_has(c->vary, "x-tftp-file"))
        return "Vary: X-TFTP-File (differs per request)";
    return NULL;
}

/* gateway/util.c - allocation wrappers and the protocol error helper. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/common.h"

/* Single-threaded by design (one loop), except libuv's thread pool, which
 * never allocates through these; plain counters are enough. */
static long live_allocs;
static long fail_countdown;

static bool should_fail(void)
{
    if (fail_countdown > 0 && --fail_countdown == 0)
        return true;
    return false;
}

void *tg_malloc(size_t n)
{
    void *p;

    if (should_fail())
        return NULL;
    p = malloc(n ? n : 1);
    if (p)
        live_allocs++;
    return p;
}

void *tg_calloc(size_t n, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = calloc(n ? n : 1, size ? size : 1);
    if (p)
        live_allocs++;
    return p;
}

void *tg_realloc(void *p, size_t n)
{
    void *q;

    if (!p)
        return tg_malloc(n);
    if (should_fail())
        return NULL;
    q = realloc(p, n ? n : 1);
    return q;
}

char *tg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = tg_malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

void tg_free(void *p)
{
    if (!p)
        return;
    live_allocs--;
    free(p);
}

long tg_alloc_live(void)
{
    return live_allocs;
}

void tg_alloc_fail_after(long n)
{
    fail_countdown = n;
}

void tg_error_set(struct tg_error *e, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

/* The one parser of "1.2.3.4:69" and "[2001:db8::1]:69" for sockets we
 * bind (listeners, the metrics endpoint). Numeric only: no DNS at start. */
int tg_sockaddr_parse(const char *spec, bool port0_ok, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon, *h, *d;
    size_t hl;
    unsigned long port = 0;

    memset(out, 0, sizeof(*out));
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':')
            return TG_EINVAL;
        h = spec + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return TG_EINVAL;
        h = spec;
        hl = (size_t)(colon - spec);
    }
    if (hl == 0 || hl >= sizeof(host) || colon[1] == '\0' || strlen(colon + 1) > 5)
        return TG_EINVAL;
    for (d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return TG_EINVAL;
        port = port * 10 + (unsigned long)(*d - '0');
    }
    if (port > 65535 || (port == 0 && !port0_ok))
        return TG_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (spec[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return TG_EINVAL;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;

        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return TG_EINVAL;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    }
    return 0;
}

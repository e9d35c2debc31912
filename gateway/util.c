/* gateway/util.c - allocation wrappers and the protocol error helper. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/common.h"

/* Atomic: several worker loops allocate through these (libuv's thread
 * pool never does). */
static _Atomic long live_allocs;
static _Atomic long fail_countdown;

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

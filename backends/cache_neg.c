/* backends/cache_neg.c - the cache's negative entries: keys the upstream
 * answered "not found" (HTTP 404/410, S3 NoSuchKey) within negative_ttl.
 * Boot loaders probe many names that do not exist (PXELINUX about ten
 * before `default`), so a fleet booting at once would otherwise send the
 * origin one request per probe per machine.
 *
 * A blind sender can ask for any number of random names, so the table is
 * bounded: NEG_MAX entries of a fixed size each (the key's SHA-256, not
 * the key), the oldest dropped first. Entries are kept in the order they
 * expire (one ttl for all; a renewed entry moves to the end), so expired
 * ones are dropped from the front as new ones come. */
#include <string.h>

#include "cache.h"

static size_t neg_bucket(const uint8_t h[TG_SHA256_LEN])
{
    size_t b;

    memcpy(&b, h, sizeof(b));
    return b % NEG_BUCKETS;
}

static struct negent *neg_find(struct cache_backend *cb, const uint8_t h[TG_SHA256_LEN])
{
    struct negent *n;

    for (n = cb->neg.buckets[neg_bucket(h)]; n; n = n->hnext)
        if (!memcmp(n->h, h, TG_SHA256_LEN))
            return n;
    return NULL;
}

static void neg_unlink_order(struct cache_backend *cb, struct negent *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        cb->neg.oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        cb->neg.newest = n->older;
    n->older = n->newer = NULL;
}

static void neg_append(struct cache_backend *cb, struct negent *n)
{
    n->older = cb->neg.newest;
    if (cb->neg.newest)
        cb->neg.newest->newer = n;
    else
        cb->neg.oldest = n;
    cb->neg.newest = n;
}

static void neg_remove(struct cache_backend *cb, struct negent *n)
{
    struct negent **pp;

    for (pp = &cb->neg.buckets[neg_bucket(n->h)]; *pp; pp = &(*pp)->hnext)
        if (*pp == n) {
            *pp = n->hnext;
            break;
        }
    neg_unlink_order(cb, n);
    cb->neg.count--;
    tg_free(n);
}

/* Drop what expired, oldest first. */
static void neg_expire(struct cache_backend *cb, uint64_t now)
{
    while (cb->neg.oldest && cb->neg.oldest->until_ms <= now)
        neg_remove(cb, cb->neg.oldest);
}

bool cache_neg_hit(struct cache_backend *cb, const char *key)
{
    uint8_t h[TG_SHA256_LEN];
    struct negent *n;

    if (cb->neg.count == 0)
        return false;
    neg_expire(cb, tg_uv_now_ms(cb));
    tg_sha256(key, strlen(key), h);
    n = neg_find(cb, h);
    return n != NULL;
}

void cache_neg_add(struct cache_backend *cb, const char *key)
{
    uint8_t h[TG_SHA256_LEN];
    uint64_t now = tg_uv_now_ms(cb);
    struct negent *n;

    if (cb->neg_ttl_ms == 0)
        return;
    neg_expire(cb, now);
    tg_sha256(key, strlen(key), h);
    if ((n = neg_find(cb, h)) != NULL) {
        neg_unlink_order(cb, n);
    } else {
        if (cb->neg.count >= NEG_MAX)
            neg_remove(cb, cb->neg.oldest);
        if (!(n = tg_calloc(1, sizeof(*n))))
            return; /* remembering a miss is an optimisation only */
        memcpy(n->h, h, TG_SHA256_LEN);
        n->hnext = cb->neg.buckets[neg_bucket(h)];
        cb->neg.buckets[neg_bucket(h)] = n;
        cb->neg.count++;
    }
    n->until_ms = now + cb->neg_ttl_ms;
    neg_append(cb, n);
}

void cache_neg_drop(struct cache_backend *cb, const char *key)
{
    uint8_t h[TG_SHA256_LEN];
    struct negent *n;

    if (cb->neg.count == 0)
        return;
    tg_sha256(key, strlen(key), h);
    if ((n = neg_find(cb, h)) != NULL)
        neg_remove(cb, n);
}

void cache_neg_free(struct cache_backend *cb)
{
    while (cb->neg.oldest)
        neg_remove(cb, cb->neg.oldest);
}

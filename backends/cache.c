/* backends/cache.c - an edge cache in front of another backend.
 *
 * One upstream fetch per key (single flight): the first RRQ of a missing key
 * starts a fill that writes the upstream stream into an anonymous file in
 * `dir`; every RRQ of that key while it runs follows the fill at its own
 * pace, reading what is already on disk. A complete fill is fsynced and
 * linked into place atomically, so a crash (kill -9 included) never leaves a
 * copy that could serve wrong bytes. Hits are served from disk with the size
 * known at once. After `ttl` a conditional request revalidates; when the
 * upstream fails, a copy no older than ttl + stale_if_error is served.
 *
 * Disk is bounded: committed copies plus the bytes of every running fill
 * stay under `max_size` (least recently used copies are evicted to make
 * room), and a fill writes nothing once the file system's free space would
 * drop below `min_free`. A fill that cannot store any more relays the rest
 * of the body to its readers through one memory chunk and is not kept. A
 * fill that no reader follows any more is cancelled after `fill_grace`. A
 * body whose end is only the connection closing is relayed, never kept.
 *
 * Files: dir/<sha256(key)>.data and .meta (key, size, validators, fetch
 * time). The index is rebuilt from them at start-up; the key in the .meta
 * is compared again whenever a copy is opened. Every disk operation after
 * start-up runs on libuv's thread pool.
 *
 * This file: the index, the disk budget, the start-up scan, configuration
 * and the backend's operations. Fills: backends/cache_fill.c; read
 * streams: backends/cache_read.c; shared parts: backends/cache.h. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "tftpgw/cachectl.h"
#include "tftpgw/keys.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"

uint64_t cache_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cache_fresh_ms(struct cache_backend *cb, const struct tg_http_meta *m)
{
    int64_t f;

    if (!m || cb->ttl_override)
        return cb->ttl_ms;
    f = tg_cc_fresh_ms(&m->cc, (int64_t)(cache_wall_ms() / 1000));
    return f < 0 ? cb->ttl_ms : (uint64_t)f;
}

/* Hash table buckets only; entries are told apart by their whole key. */
static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static size_t bucket_of(const char *key)
{
    return fnv1a(key, 0xcbf29ce484222325ULL) % NBUCKETS;
}

/* A file name per key: finding two keys with one name means breaking
 * SHA-256, and the key in the .meta is checked on every open anyway. */
static void key_name(const char *key, char out[NAME_LEN + 1])
{
    tg_sha256_hex(key, strlen(key), out);
}

/* ---- index ---- */

static struct centry *lookup(struct cache_backend *cb, const char *key, bool create)
{
    size_t b = bucket_of(key);
    struct centry *e;

    for (e = cb->buckets[b]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    if (!create || !(e = tg_calloc(1, sizeof(*e))))
        return NULL;
    if (!(e->key = tg_strdup(key))) {
        tg_free(e);
        return NULL;
    }
    key_name(key, e->name);
    e->next = cb->buckets[b];
    cb->buckets[b] = e;
    return e;
}

/* Drop an entry that holds nothing any more. */
void cache_entry_gc(struct cache_backend *cb, struct centry *e)
{
    struct centry **pp;

    if (e->present || e->fill || e->readers > 0 || e->holders > 0 || e->pins > 0)
        return;
    for (pp = &cb->buckets[bucket_of(e->key)]; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    tg_free(e->key);
    tg_free(e);
}

/* ---- small async helpers ---- */

struct unlink_job {
    uv_work_t w;
    int dirfd;
    char name[NAME_LEN + 1];
};

static void unlink_work(uv_work_t *w)
{
    struct unlink_job *j = w->data;
    char p[NAME_LEN + 8];

    snprintf(p, sizeof(p), "%s.meta", j->name);
    unlinkat(j->dirfd, p, 0);
    snprintf(p, sizeof(p), "%s.data", j->name);
    unlinkat(j->dirfd, p, 0);
}

static void unlink_after(uv_work_t *w, int status)
{
    (void)status;
    tg_free(w->data);
}

void cache_unlink_copy(struct cache_backend *cb, const char *name)
{
    struct unlink_job *j = tg_calloc(1, sizeof(*j));

    if (!j)
        return;
    j->dirfd = cb->dirfd;
    memcpy(j->name, name, sizeof(j->name));
    j->w.data = j;
    if (uv_queue_work(cb->base.loop, &j->w, unlink_work, unlink_after) != 0)
        tg_free(j);
}

/* ---- disk budget ---- */

static void drop_copy(struct cache_backend *cb, struct centry *e, const char *what)
{
    e->present = false;
    cb->total -= e->size;
    cb->st.evictions++;
    tg_metrics_cache_event(cb->base.name, "eviction");
    cache_unlink_copy(cb, e->name);
    tg_log(TG_LOG_INFO, "cache %s: %s %s (%lld bytes)", cb->base.name, what, e->key,
           (long long)e->size);
    cache_entry_gc(cb, e);
}

/* Evict least-recently-used copies nobody reads until the committed copies
 * take no more than limit (a copy being read stays: its reader holds the
 * file, so removing it would free nothing). */
static void evict_to(struct cache_backend *cb, int64_t limit)
{
    while (cb->total > limit) {
        struct centry *victim = NULL, *e;
        size_t b;

        for (b = 0; b < NBUCKETS; b++)
            for (e = cb->buckets[b]; e; e = e->next)
                if (e->present && e->readers == 0 && e->pins == 0 && !e->fill &&
                    (!victim || e->used < victim->used))
                    victim = e;
        if (!victim)
            return;
        drop_copy(cb, victim, "evicted");
    }
}

void cache_evict(struct cache_backend *cb)
{
    evict_to(cb, cb->max_size - cb->filling);
}

/* Bytes of copies that evict_to may remove. */
int64_t cache_evictable(struct cache_backend *cb)
{
    int64_t n = 0;
    struct centry *e;
    size_t b;

    for (b = 0; b < NBUCKETS; b++)
        for (e = cb->buckets[b]; e; e = e->next)
            if (e->present && e->readers == 0 && e->pins == 0 && !e->fill)
                n += e->size;
    return n;
}

/* Count bytes more of a fill's file against max_size. Older copies are
 * evicted only when that makes room; otherwise nothing is evicted and the
 * answer is no. */
bool cache_budget_take(struct cache_backend *cb, struct tmpf *t, int64_t bytes)
{
    int64_t over = cb->total + cb->filling + bytes - cb->max_size;

    if (over > 0) {
        if (bytes > cb->max_size - cb->filling || cache_evictable(cb) < over)
            return false;
        evict_to(cb, cb->total - over);
    }
    t->charged += bytes;
    cb->filling += bytes;
    return true;
}

/* ---- backend operations ---- */

static int cache_open_read(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb_fn, void *arg, struct tg_stream **out)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    struct centry *e = lookup(cb, a->key, true);
    struct creader *r;
    uint64_t now = cache_wall_ms();
    int rc;

    if (!e)
        return TG_ENOMEM;
    if (!(r = cache_reader_new(cb, e, cb_fn, arg)) ||
        !(r->filename = tg_strdup(a->filename ? a->filename : a->key))) {
        if (r)
            cache_reader_drop(r);
        cache_entry_gc(cb, e);
        return TG_ENOMEM;
    }
    /* A fill sends the upstream what a direct request would. */
    snprintf(r->client_ip, sizeof(r->client_ip), "%s", a->client_ip ? a->client_ip : "");
    if (!e->fill && cache_neg_hit(cb, a->key)) {
        cb->st.negative_hits++;
        tg_metrics_cache_event(cb->base.name, "negative_hit");
        rc = cache_reader_not_found(r);
    } else if (!e->fill && e->present && now - e->fetched_ms < e->fresh_ms) {
        cb->st.hits++;
        tg_metrics_cache_event(cb->base.name, "hit");
        rc = cache_open_copy(r);
    } else {
        if (e->fill) {
            cb->st.hits++; /* single flight: no new upstream request */
            tg_metrics_cache_event(cb->base.name, "hit");
        } else if (e->present) {
            cb->st.revalidations++;
            tg_metrics_cache_event(cb->base.name, "revalidation");
        } else {
            cb->st.misses++;
            tg_metrics_cache_event(cb->base.name, "miss");
        }
        rc = cache_reader_join(r);
    }
    if (rc != 0) {
        cache_reader_drop(r);
        cache_entry_gc(cb, e);
        return rc;
    }
    *out = &r->base;
    return 0;
}

/* Uploads go to the upstream as they are; the cached copy is dropped so the
 * next read fetches what was written. */
static void cache_invalidate(struct tg_backend *b, const char *key)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    struct centry *e = lookup(cb, key, false);

    cache_neg_drop(cb, key);
    if (e && e->present)
        e->fetched_ms = 0; /* stale: revalidated on the next read */
    if (e && e->fill) {
        /* Readers already on it finish with what they started; later ones
         * must not join a fetch of the content being replaced. */
        e->fill->orphan = true;
        e->fill = NULL;
    }
}

static int cache_open_write(struct tg_backend *b, const struct tg_open_args *a,
                            tg_stream_cb *cb_fn, void *arg, struct tg_stream **out)
{
    struct cache_backend *cb = (struct cache_backend *)b;

    cache_invalidate(b, a->key);
    return cb->up->ops->open_write(cb->up, a, cb_fn, arg, out);
}

static void cache_destroy(struct tg_backend *b)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    size_t i;

    tg_log(TG_LOG_INFO,
           "cache %s: hits=%llu misses=%llu revalidations=%llu stale=%llu evictions=%llu "
           "upstream_bytes=%llu served_bytes=%llu cancelled=%llu not_stored=%llu "
           "negative_hits=%llu",
           b->name, (unsigned long long)cb->st.hits, (unsigned long long)cb->st.misses,
           (unsigned long long)cb->st.revalidations, (unsigned long long)cb->st.stale,
           (unsigned long long)cb->st.evictions, (unsigned long long)cb->st.up_bytes,
           (unsigned long long)cb->st.served_bytes, (unsigned long long)cb->st.cancelled,
           (unsigned long long)cb->st.not_stored, (unsigned long long)cb->st.negative_hits);
    cache_neg_free(cb);
    for (i = 0; i < NBUCKETS; i++) {
        struct centry *e, *n;

        for (e = cb->buckets[i]; e; e = n) {
            n = e->next;
            tg_free(e->key);
            tg_free(e);
        }
    }
    for (i = 0; i < cb->nprefetch; i++)
        tg_free(cb->prefetch[i]);
    tg_free(cb->prefetch);
    if (cb->dirfd >= 0)
        close(cb->dirfd);
    tg_free(cb->dir);
    tg_free(cb->up_name);
    tg_free(b->name);
    tg_free(cb);
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Files of this cache that no entry can own: temporaries of fills cut
 * short, and copies named the way earlier versions did (FNV-1a). */
static bool leftover(const char *n, size_t l)
{
    if (l > 8 && !strcmp(n + l - 8, ".tmpdata"))
        return true;
    if (l > 9 && !strcmp(n + l - 9, ".meta.tmp"))
        return true;
    return l == OLD_NAME_LEN + 5 && all_hex(n, OLD_NAME_LEN) &&
           (!strcmp(n + OLD_NAME_LEN, ".meta") || !strcmp(n + OLD_NAME_LEN, ".data"));
}

/* Start-up (before the loop runs): rebuild the index from dir. A .meta
 * without its .data, or whose size disagrees, or filed under another key's
 * name, is dropped with its data; leftovers are removed. */
static void scan_dir(struct cache_backend *cb)
{
    DIR *d = fdopendir(dup(cb->dirfd));
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t l = strlen(n);
        char line[2048], key[1024] = "", etag[128] = "", lastmod[64] = "", data[NAME_LEN + 8];
        long long size = -1;
        unsigned long long fetched = 0, fresh = cb->ttl_ms;
        struct stat st;
        struct centry *e;
        FILE *m;
        int fd;

        if (leftover(n, l)) {
            unlinkat(cb->dirfd, n, 0);
            continue;
        }
        if (l != NAME_LEN + 5 || strcmp(n + NAME_LEN, ".meta") != 0)
            continue;
        fd = openat(cb->dirfd, n, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !(m = fdopen(fd, "r"))) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        while (fgets(line, sizeof(line), m)) {
            line[strcspn(line, "\n")] = '\0';
            if (!strncmp(line, "size ", 5))
                size = atoll(line + 5);
            else if (!strncmp(line, "fetched ", 8))
                fetched = strtoull(line + 8, NULL, 10);
            else if (!strncmp(line, "fresh ", 6))
                fresh = strtoull(line + 6, NULL, 10);
            else if (!strncmp(line, "etag ", 5) && strcmp(line + 5, "-"))
                snprintf(etag, sizeof(etag), "%.127s", line + 5);
            else if (!strncmp(line, "lastmod ", 8) && strcmp(line + 8, "-"))
                snprintf(lastmod, sizeof(lastmod), "%.63s", line + 8);
            else if (!strncmp(line, "key ", 4))
                snprintf(key, sizeof(key), "%.1023s", line + 4);
        }
        fclose(m);
        snprintf(data, sizeof(data), "%.*s.data", NAME_LEN, n);
        e = NULL;
        if (key[0] && size >= 0 && fstatat(cb->dirfd, data, &st, 0) == 0 &&
            st.st_size == size) {
            char want[NAME_LEN + 1];

            key_name(key, want);
            if (!strncmp(want, n, NAME_LEN))
                e = lookup(cb, key, true);
        }
        if (!e) {
            unlinkat(cb->dirfd, n, 0);
            unlinkat(cb->dirfd, data, 0);
            continue;
        }
        e->present = true;
        e->size = size;
        e->fetched_ms = fetched;
        e->fresh_ms = fresh;
        e->used = fetched; /* oldest fetch is evicted first after a restart */
        snprintf(e->val.etag, sizeof(e->val.etag), "%s", etag);
        snprintf(e->val.last_modified, sizeof(e->val.last_modified), "%s", lastmod);
        cb->total += size;
    }
    closedir(d);
    /* Later uses of the clock must rank above every restored entry. */
    cb->clock = cache_wall_ms();
}

static int set_upstream(void *obj, const char *v, char *msg, size_t cap)
{
    struct cache_backend *cb = obj;
    char *dup;

    if (!v[0] || !strcmp(v, cb->base.name)) {
        snprintf(msg, cap, "%s",
                 v[0] ? "a cache cannot be its own upstream" : "name of another backend");
        return TG_EINVAL;
    }
    if (!(dup = tg_strdup(v)))
        return TG_ENOMEM;
    tg_free(cb->up_name);
    cb->up_name = dup;
    return 0;
}

/* `prefetch = a.bin, b.bin`: fetched at start-up. */
static int add_prefetch(void *obj, const char *v, char *msg, size_t cap)
{
    struct cache_backend *cb = obj;
    char *copy = tg_strdup(v), *tok, *save = NULL;
    int rc = copy ? 0 : TG_ENOMEM;

    (void)msg;
    (void)cap;
    for (tok = copy ? strtok_r(copy, ", \t", &save) : NULL; tok && rc == 0;
         tok = strtok_r(NULL, ", \t", &save)) {
        char **grown = tg_realloc(cb->prefetch, (cb->nprefetch + 1) * sizeof(char *));

        if (grown)
            cb->prefetch = grown;
        if (!grown || !(grown[cb->nprefetch] = tg_strdup(tok)))
            rc = TG_ENOMEM;
        else
            cb->nprefetch++;
    }
    tg_free(copy);
    return rc;
}

#define CB(f) TG_KEY_AT(struct cache_backend, f)
#define YEARS_100 (100ull * 365 * 86400)

static const struct tg_key cache_keys[] = {
    {.name = "upstream", .type = TG_KEY_FUNC, .set = set_upstream, .flags = TG_KEY_REQUIRED},
    {.name = "dir", .type = TG_KEY_STRING, CB(dir), .flags = TG_KEY_REQUIRED | TG_KEY_ABSOLUTE,
     .bad = "an absolute directory"},
    {.name = "max_size", .type = TG_KEY_SIZE, CB(max_size), .min = 1, .max = INT64_MAX,
     .def = "1G", .bad = "invalid value"},
    {.name = "min_free", .type = TG_KEY_SIZE, CB(min_free), .max = INT64_MAX, .def = "64M",
     .bad = "a size (0, 64M, 1G)"},
    {.name = "ttl", .type = TG_KEY_DURATION, CB(ttl_ms), .max = YEARS_100, .scale = 1000,
     .unit_ms = 1000, .def = "300"},
    {.name = "stale_if_error", .type = TG_KEY_DURATION, CB(stale_ms), .max = YEARS_100,
     .scale = 1000, .unit_ms = 1000, .def = "86400"},
    {.name = "negative_ttl", .type = TG_KEY_DURATION, CB(neg_ttl_ms), .max = YEARS_100,
     .scale = 1000, .unit_ms = 1000, .def = "10"},
    {.name = "ttl_override", .type = TG_KEY_BOOL, CB(ttl_override), .def = "no",
     .bad = "yes or no"},
    {.name = "fill_grace", .type = TG_KEY_DURATION, CB(grace_ms), .max = 3600, .scale = 1000,
     .unit_ms = 1000, .def = "5"},
    {.name = "prefetch", .type = TG_KEY_FUNC, .set = add_prefetch},
};

/* Start-up: the directory, its free space, and what it holds. */
static int cache_open_dir(struct cache_backend *cb, const struct tg_backend_cfg *cfg, char *err,
                          size_t errlen)
{
    struct statvfs sv;

    /* Before the loop: blocking disk calls are fine here. */
    mkdir(cb->dir, 0755);
    cb->dirfd = open(cb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cb->dirfd < 0) {
        snprintf(err, errlen, "line %d: dir: %s: %s", cfg->line, cb->dir, strerror(errno));
        return TG_EINVAL;
    }
    cb->anon_ok = tg_lfs_can_link_anon(cb->dirfd);
    scan_dir(cb);
    if (cb->total > 0)
        tg_log(TG_LOG_INFO, "cache %s: %lld bytes of copies found in %s", cfg->name,
               (long long)cb->total, cb->dir);
    if (cb->min_free > 0 && fstatvfs(cb->dirfd, &sv) == 0 &&
        (uint64_t)sv.f_bavail * sv.f_frsize < (uint64_t)cb->min_free)
        tg_log(TG_LOG_WARN, "cache %s: %s has %llu bytes free, less than min_free (%lld): "
                            "nothing is stored until there is more",
               cfg->name, cb->dir, (unsigned long long)sv.f_bavail * sv.f_frsize,
               (long long)cb->min_free);
    return 0;
}

static int cache_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                        struct tg_backend **out, char *err, size_t errlen)
{
    struct tg_key_table tab = {cache_keys, TG_ARRAY_LEN(cache_keys), NULL};
    struct cache_backend *cb = tg_calloc(1, sizeof(*cb));
    int rc;

    if (!cb || !(cb->base.name = tg_strdup(cfg->name))) {
        snprintf(err, errlen, "out of memory");
        tg_free(cb);
        return TG_ENOMEM;
    }
    cb->base.ops = &tg_cache_backend_ops;
    cb->base.loop = loop;
    cb->dirfd = -1;
    tab.obj = cb;
    rc = tg_key_parse_backend(&tab, 1, cfg, "a cache backend", err, errlen);
    if (rc == 0) {
        cb->up_line = tg_config_kv(cfg, "upstream")->line;
        /* --check-config: the settings are valid; the directory is the
         * running gateway's. */
        if (!tg_backend_check_only && cache_open_dir(cb, cfg, err, errlen) != 0)
            rc = TG_EINVAL;
    }
    if (rc != 0) {
        cache_destroy(&cb->base);
        return rc;
    }
    *out = &cb->base;
    return 0;
}

static int cache_link(struct tg_backend *b, struct tg_backend *(*find)(void *ctx, const char *name),
                      void *ctx, char *err, size_t errlen)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    size_t i;

    cb->up = find(ctx, cb->up_name);
    if (!cb->up) {
        snprintf(err, errlen, "line %d: upstream: no backend named \"%s\"", cb->up_line,
                 cb->up_name);
        return TG_EINVAL;
    }
    if (cb->up->ops == &tg_cache_backend_ops) {
        snprintf(err, errlen, "line %d: upstream: \"%s\" is a cache itself", cb->up_line,
                 cb->up_name);
        return TG_EINVAL;
    }
    if (tg_backend_check_only)
        return 0;
    cache_evict(cb);
    for (i = 0; i < cb->nprefetch; i++) {
        struct centry *e = lookup(cb, cb->prefetch[i], true);

        if (e && !e->fill && !e->present) {
            cb->st.misses++;
            tg_metrics_cache_event(cb->base.name, "miss");
            if (!cache_fill_start(cb, e, false, true, NULL))
                cache_entry_gc(cb, e);
        }
    }
    return 0;
}

const struct tg_backend_ops tg_cache_backend_ops = {
    .type = "cache",
    .create = cache_create,
    .destroy = cache_destroy,
    .open_read = cache_open_read,
    .open_write = cache_open_write,
    .link = cache_link,
    .invalidate = cache_invalidate,
};

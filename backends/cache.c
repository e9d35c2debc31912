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
 * start-up runs on libuv's thread pool. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/backend.h"
#include "tftpgw/keys.h"
#include "tftpgw/life.h"
#include "tftpgw/localfs.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/options.h"
#include "tftpgw/sha256.h"

#define CHUNK (64 * 1024)
#define NBUCKETS 1024
#define NAME_LEN (2 * TG_SHA256_LEN) /* hex SHA-256 of the key */
#define OLD_NAME_LEN 32              /* earlier versions: two FNV-1a hashes */
#define META_MAX 8192

struct fill;
struct creader;
struct cache_backend;

struct centry {
    struct centry *next; /* hash chain */
    char *key;
    char name[NAME_LEN + 1];
    bool present;        /* a committed copy is on disk */
    int64_t size;
    uint64_t fetched_ms; /* wall clock, so freshness survives a restart */
    struct tg_validators val;
    uint64_t used;       /* LRU clock */
    int readers;         /* readers of the committed copy */
    int holders;         /* every reader pointing here, whatever its state */
    int pins;            /* open fill files that are this entry's copy */
    struct fill *fill;   /* fetch or revalidation in flight */
};

/* A fill's anonymous file, shared by the fill and every reader that follows
 * it: one descriptor, closed (freeing its blocks) when the last holder lets
 * go, so a reader that ends holds nothing. Its bytes count against max_size
 * until then, or until they became a committed copy. */
struct tmpf {
    struct cache_backend *cb;
    struct centry *pin;  /* committed: the entry whose copy this inode is */
    int fd;
    int refs;
    int64_t charged;     /* bytes counted in cb->filling */
};

struct cache_stats {
    uint64_t hits, misses, revalidations, stale, evictions, up_bytes, served_bytes;
    uint64_t cancelled, not_stored;
};

struct cache_backend {
    struct tg_backend base;
    struct tg_backend *up;
    char *up_name;
    int up_line;
    char *dir;
    int dirfd;
    int64_t max_size, total;
    int64_t filling;     /* bytes the running fills hold on disk */
    int64_t min_free;    /* free-space floor of the file system */
    uint64_t ttl_ms, stale_ms, grace_ms;
    char **prefetch;
    size_t nprefetch;
    struct centry *buckets[NBUCKETS];
    uint64_t clock;
    bool anon_ok;        /* fill files may be anonymous (tg_lfs_can_link_anon) */
    int fills;           /* fills alive */
    struct cache_stats st;
};

/* F_RELAYING: storing stopped; what is on disk stays readable for readers
 * behind, the rest passes through buf, one chunk at a time, at the pace of
 * the slowest reader. */
enum fill_state { F_OPENING, F_FILLING, F_RELAYING, F_COMMITTING, F_DONE, F_FAILED };

struct fill {
    struct cache_backend *cb;
    struct centry *e;
    struct tg_stream *up;
    bool reval;
    bool prefetch;       /* nobody asked: no reader to wait for */
    bool orphan;         /* a write replaced the object: never becomes the copy */
    bool up_opened, fd_ready, up_eof, writing;
    enum fill_state state;
    struct tmpf *tf;     /* the file being written */
    int64_t size, filled;
    int64_t stored;      /* relaying: the bytes on disk */
    int64_t roff;        /* relaying: offset of the rlen bytes in buf */
    size_t rlen;
    struct tg_validators val; /* the upstream's, for the .meta */
    uint8_t *buf;
    size_t blen;
    struct tg_lfs_tmp_req open; /* the fill file; open.tmp names it for the commit */
    char prefix[NAME_LEN + 2];  /* "<hash>.": its temporary names start so */
    uv_work_t work, wwork;
    ssize_t wres;        /* write worker: bytes written */
    int wr_errno;
    bool below_floor;    /* write worker: free space under min_free */
    bool unlink_old;     /* write worker: remove the outdated copy first */
    int werr;            /* commit worker */
    struct tg_life life; /* held by fs requests and work; closed when DONE or FAILED */
    uv_timer_t timer;    /* fill_grace; relay steps run from it, off the readers' calls */
    struct creader *readers; /* waiting or following */
    struct tg_error err;
};

enum reader_state { R_WAIT, R_OPENING, R_OPEN, R_FAILED };

struct copy_job;

struct creader {
    struct tg_stream base;
    struct cache_backend *cb;
    struct centry *e;
    struct fill *fill;   /* set while waiting for / following a fill */
    struct creader *next, *prev;
    enum reader_state state;
    bool on_copy;        /* counted in e->readers */
    bool stale;
    int fd;              /* a committed copy's own descriptor, or -1 */
    struct tmpf *tf;     /* a fill's file, while this reader needs it */
    int64_t pos, avail, total;
    uint8_t *buf;
    size_t boff, blen;
    bool reading, want;
    struct tg_life life; /* held by fs requests and work in flight */
    uv_fs_t req;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
static void entry_gc(struct cache_backend *cb, struct centry *e)
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

/* ---- fill files ---- */

static struct tmpf *tmpf_new(struct cache_backend *cb, int fd)
{
    struct tmpf *t = tg_calloc(1, sizeof(*t));

    if (t) {
        t->cb = cb;
        t->fd = fd;
        t->refs = 1;
    }
    return t;
}

static struct tmpf *tmpf_ref(struct tmpf *t)
{
    t->refs++;
    return t;
}

static void tmpf_unref(struct tmpf *t)
{
    struct cache_backend *cb;

    if (!t || --t->refs > 0)
        return;
    cb = t->cb;
    cb->filling -= t->charged;
    tg_lfs_close_async(cb->base.loop, t->fd);
    if (t->pin) {
        t->pin->pins--;
        entry_gc(cb, t->pin);
    }
    tg_free(t);
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

static void unlink_copy(struct cache_backend *cb, const char *name)
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
    unlink_copy(cb, e->name);
    tg_log(TG_LOG_INFO, "cache %s: %s %s (%lld bytes)", cb->base.name, what, e->key,
           (long long)e->size);
    entry_gc(cb, e);
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

static void evict(struct cache_backend *cb)
{
    evict_to(cb, cb->max_size - cb->filling);
}

/* Bytes of copies that evict_to may remove. */
static int64_t evictable(struct cache_backend *cb)
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
static bool budget_take(struct cache_backend *cb, struct tmpf *t, int64_t bytes)
{
    int64_t over = cb->total + cb->filling + bytes - cb->max_size;

    if (over > 0) {
        if (bytes > cb->max_size - cb->filling || evictable(cb) < over)
            return false;
        evict_to(cb, cb->total - over);
    }
    t->charged += bytes;
    cb->filling += bytes;
    return true;
}

/* The same for a fill's next bytes. A fill that replaces changed content
 * may drop the old version first, when nobody reads it and that makes
 * room: otherwise a file above half of max_size could never be refreshed.
 * Its files are removed by the fill's next write, on the same chain of
 * work as the commit that will take their names. */
static bool fill_budget(struct fill *f, int64_t bytes)
{
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;
    int64_t over = cb->total + cb->filling + bytes - cb->max_size;

    if (budget_take(cb, f->tf, bytes))
        return true;
    if (!f->reval || !e->present || e->readers > 0 || e->pins > 0 ||
        bytes > cb->max_size - cb->filling || evictable(cb) + e->size < over)
        return false;
    e->present = false;
    cb->total -= e->size;
    f->unlink_old = true;
    tg_log(TG_LOG_INFO, "cache %s: dropped the outdated copy of %s (%lld bytes) to make room "
                        "for its new content", cb->base.name, e->key, (long long)e->size);
    return budget_take(cb, f->tf, bytes);
}

/* ---- readers ---- */

static void reader_notify(struct creader *r, enum tg_stream_ev ev)
{
    if (!r->life.closed)
        r->base.cb(&r->base, ev, r->base.arg);
}

static int reader_fd(const struct creader *r)
{
    return r->tf ? r->tf->fd : r->fd;
}

/* Let go of the disk at once when nothing of ours is in flight on it;
 * otherwise the completion does. */
static void reader_drop_disk(struct creader *r)
{
    if (tg_life_busy(&r->life))
        return;
    tmpf_unref(r->tf);
    r->tf = NULL;
    if (r->fd >= 0) {
        tg_lfs_close_async(r->cb->base.loop, r->fd);
        r->fd = -1;
    }
}

static void reader_fin(struct tg_life *l)
{
    struct creader *r = tg_container_of(l, struct creader, life);

    reader_drop_disk(r);
    tg_free(r->buf);
    tg_free(r);
}

static void reader_fail(struct creader *r, const struct tg_error *e)
{
    r->base.err = *e;
    r->state = R_FAILED;
    reader_drop_disk(r);
    reader_notify(r, TG_STREAM_FAILED);
}

static void fill_unfollowed(struct fill *f);

static void detach(struct creader *r)
{
    struct fill *f = r->fill;

    if (!f)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        f->readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    r->fill = NULL;
    if (!f->readers)
        fill_unfollowed(f);
}

/* ---- serving a committed copy ---- */

/* Opening a copy checks, off the loop, that its .meta names this very key:
 * a copy whose key differs (a file put there by hand, a damaged or
 * tampered .meta) is never served for it. The job owns copies of what the
 * worker reads, as the entry may go while it runs. */
struct copy_job {
    uv_work_t w;
    struct creader *r;
    int dirfd;
    char name[NAME_LEN + 1];
    char *key;
    int fd;
    int64_t size;
    int err;             /* errno of a failed open, or 0 */
    bool mismatch;
    char found[128];     /* the key the .meta holds, for the log */
};

static void copy_check_work(uv_work_t *w)
{
    struct copy_job *j = w->data;
    char p[NAME_LEN + 8], meta[META_MAX + 1];
    const char *k = NULL, *end;
    size_t kl = strlen(j->key), got = 0;
    struct stat st;
    int mfd;

    snprintf(p, sizeof(p), "%s.meta", j->name);
    if ((mfd = openat(j->dirfd, p, O_RDONLY | O_CLOEXEC)) < 0) {
        j->err = errno;
        return;
    }
    while (got < META_MAX) {
        ssize_t n = read(mfd, meta + got, META_MAX - got);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(mfd);
    meta[got] = '\0';
    if (!strncmp(meta, "key ", 4))
        k = meta + 4;
    else if ((k = strstr(meta, "\nkey ")) != NULL)
        k += 5;
    if (!k || strncmp(k, j->key, kl) != 0 || (k[kl] != '\n' && k[kl] != '\0')) {
        j->mismatch = true;
        if (k) {
            end = strchr(k, '\n');
            snprintf(j->found, sizeof(j->found), "%.*s",
                     (int)(end ? (size_t)(end - k) : strlen(k)), k);
        }
        return;
    }
    snprintf(p, sizeof(p), "%s.data", j->name);
    if ((j->fd = openat(j->dirfd, p, O_RDONLY | O_CLOEXEC)) < 0) {
        j->err = errno;
        return;
    }
    if (fstat(j->fd, &st) != 0) {
        j->err = errno;
        close(j->fd);
        j->fd = -1;
        return;
    }
    j->size = st.st_size;
}

static int reader_join(struct creader *r);

/* The copy cannot serve this key: it is no copy of it. Drop it, and fetch
 * anew as on a miss (a stale reader has nothing to fall back on). */
static void copy_unusable(struct creader *r, const struct copy_job *j)
{
    struct cache_backend *cb = r->cb;
    struct centry *e = r->e;
    struct tg_error err;

    if (j->mismatch) {
        char found[160], want[160];

        tg_log(TG_LOG_WARN, "cache %s: %s.meta names the key \"%s\", not \"%s\": not served, "
                            "treated as a miss", cb->base.name, e->name,
               tg_log_sanitize(j->found, found, sizeof(found)),
               tg_log_sanitize(e->key, want, sizeof(want)));
    } else {
        tg_log(TG_LOG_WARN, "cache %s: copy of %s vanished: treated as a miss", cb->base.name,
               e->key);
    }
    r->on_copy = false;
    e->readers--;
    if (e->present) {
        e->present = false;
        cb->total -= e->size;
        /* A fill in flight renames its own copy over these names. */
        if (!e->fill && j->mismatch)
            unlink_copy(cb, e->name);
    }
    tg_error_set(&err, TG_TFTP_EUNDEF, "cached copy unreadable");
    if (r->stale) {
        reader_fail(r, &err);
        return;
    }
    cb->st.misses++;
    tg_metrics_cache_event(cb->base.name, "miss");
    if (reader_join(r) != 0)
        reader_fail(r, &err);
}

static void on_copy_checked(uv_work_t *w, int status)
{
    struct copy_job *j = w->data;
    struct creader *r = j->r;

    if (j->fd >= 0)
        r->fd = j->fd;
    if (tg_life_release(&r->life)) {
        /* closed meanwhile: the release let it go */
    } else if (status == 0 && (j->mismatch || j->err == ENOENT)) {
        copy_unusable(r, j);
    } else if (status != 0 || j->fd < 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cached copy unreadable");
        reader_fail(r, &e);
    } else {
        r->state = R_OPEN;
        r->avail = r->total = r->base.size = j->size;
        reader_notify(r, TG_STREAM_OPENED);
    }
    tg_free(j->key);
    tg_free(j);
}

/* Serve the committed copy; its size is the file's own, taken after open,
 * so a copy replaced meanwhile is read whole either way. */
static int open_copy(struct creader *r)
{
    struct copy_job *j = tg_calloc(1, sizeof(*j));

    if (!j || !(j->key = tg_strdup(r->e->key))) {
        tg_free(j);
        return TG_ENOMEM;
    }
    j->r = r;
    j->dirfd = r->cb->dirfd;
    j->fd = -1;
    memcpy(j->name, r->e->name, sizeof(j->name));
    j->w.data = j;
    if (uv_queue_work(r->cb->base.loop, &j->w, copy_check_work, on_copy_checked) != 0) {
        tg_free(j->key);
        tg_free(j);
        return TG_EIO;
    }
    tg_life_hold(&r->life);
    r->state = R_OPENING;
    r->on_copy = true;
    r->e->readers++;
    r->e->used = ++r->cb->clock;
    return 0;
}

/* ---- following a fill ---- */

/* A waiting reader joins the fill's data: a hold on the fill's file while
 * the fill stores, nothing while it relays. Runs from fill callbacks. */
static void follow(struct creader *r, struct fill *f)
{
    if (f->state == F_FILLING)
        r->tf = tmpf_ref(f->tf);
    r->state = R_OPEN;
    r->avail = f->state == F_FILLING ? f->filled : f->stored;
    r->total = -1;
    r->base.size = f->size;
    reader_notify(r, TG_STREAM_OPENED);
}

/* A reader that joined a fill already streaming: now it may start. */
static void on_follow_stat(uv_fs_t *req)
{
    struct creader *r = req->data;

    uv_fs_req_cleanup(req);
    if (tg_life_release(&r->life))
        return;
    if (r->state != R_WAIT) {
        reader_drop_disk(r); /* failed meanwhile */
        return;
    }
    r->state = R_OPEN;
    reader_notify(r, TG_STREAM_OPENED);
}

static void on_read(uv_fs_t *req)
{
    struct creader *r = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    r->reading = false;
    if (tg_life_release(&r->life))
        return;
    if (r->state == R_FAILED) {
        reader_drop_disk(r);
        return;
    }
    if (n <= 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cached copy read failed");
        reader_fail(r, &e);
        return;
    }
    r->boff = 0;
    r->blen = (size_t)n;
    r->pos += n;
    if (r->want) {
        r->want = false;
        reader_notify(r, TG_STREAM_READABLE);
    }
}

static void fill_kick(struct fill *f);

/* A relaying reader past the stored bytes needs the file no more. */
static void reader_trim(struct creader *r)
{
    struct fill *f = r->fill;

    if (r->tf && !tg_life_busy(&r->life) && r->blen == 0 && f && f->state == F_RELAYING &&
        r->pos >= f->stored) {
        tmpf_unref(r->tf);
        r->tf = NULL;
    }
}

/* Past the stored bytes of a relaying fill: straight from its chunk. The
 * fill moves on (outside this call) once every reader has the chunk. */
static ssize_t relay_pull(struct creader *r, struct fill *f, uint8_t *dst, size_t len)
{
    int64_t end = f->roff + (int64_t)f->rlen;
    size_t n;

    reader_trim(r);
    if (r->pos >= f->roff && r->pos < end) {
        n = (size_t)(end - r->pos) < len ? (size_t)(end - r->pos) : len;
        memcpy(dst, f->buf + (r->pos - f->roff), n);
        r->pos += (int64_t)n;
        r->cb->st.served_bytes += n;
        if (r->pos == end)
            fill_kick(f);
        return (ssize_t)n;
    }
    r->want = true;
    fill_kick(f);
    return TG_EAGAIN;
}

static ssize_t cache_pull(struct tg_stream *s, uint8_t *dst, size_t len);
static void cache_close(struct tg_stream *s);

/* The cache's own streams only read: writes are the upstream's streams. */
static const struct tg_stream_ops cache_read_ops = {
    .pull = cache_pull,
    .close = cache_close,
};

static ssize_t cache_pull(struct tg_stream *s, uint8_t *dst, size_t len)
{
    struct creader *r = (struct creader *)s;
    size_t n;

    if (r->state == R_FAILED)
        return TG_EIO;
    if (r->state != R_OPEN)
        return TG_EINVAL;
    if (r->blen > 0) {
        n = len < r->blen ? len : r->blen;
        memcpy(dst, r->buf + r->boff, n);
        r->boff += n;
        r->blen -= n;
        r->cb->st.served_bytes += n;
        return (ssize_t)n;
    }
    if (r->total >= 0 && r->pos >= r->total)
        return 0;
    if (r->fill && r->fill->state == F_RELAYING && r->pos >= r->fill->stored)
        return relay_pull(r, r->fill, dst, len);
    r->want = true;
    if (!r->reading && r->pos < r->avail) {
        int64_t left = r->avail - r->pos;
        uv_buf_t b = uv_buf_init((char *)r->buf, (unsigned)(left < CHUNK ? left : CHUNK));

        r->req.data = r;
        if (uv_fs_read(r->cb->base.loop, &r->req, reader_fd(r), &b, 1, r->pos, on_read) != 0) {
            tg_error_set(&r->base.err, TG_TFTP_EUNDEF, "cached copy read failed");
            r->state = R_FAILED;
            return TG_EIO;
        }
        r->reading = true;
        tg_life_hold(&r->life);
    }
    /* Otherwise the fill has not got further: its progress wakes us. */
    return TG_EAGAIN;
}

static void cache_close(struct tg_stream *s)
{
    struct creader *r = (struct creader *)s;
    struct centry *e = r->e;

    detach(r);
    if (r->on_copy) {
        e->readers--;
        r->on_copy = false;
    }
    e->holders--;
    entry_gc(r->cb, e);
    tg_life_close(&r->life);
}

/* ---- fills ---- */

static void on_fill_closed(uv_handle_t *h)
{
    struct fill *f = h->data;

    f->cb->fills--;
    tg_free(f->buf);
    tg_free(f);
}

/* The fill is over (DONE or FAILED) and nothing of it runs any more. */
static void fill_fin(struct tg_life *l)
{
    struct fill *f = tg_container_of(l, struct fill, life);
    struct cache_backend *cb = f->cb;

    if (f->state == F_DONE && !f->err.msg[0])
        tg_error_set(&f->err, TG_TFTP_EUNDEF, "cache fetch ended");
    /* Nobody stays linked to a fill that is going away. */
    while (f->readers) {
        struct creader *r = f->readers;

        detach(r);
        if (r->tf && f->state == F_DONE) {
            r->avail = r->total = f->filled;
            if (r->state == R_OPEN && r->want && !r->reading && r->blen == 0) {
                r->want = false;
                reader_notify(r, TG_STREAM_READABLE);
            }
        } else if (r->state != R_FAILED) {
            reader_fail(r, &f->err);
        }
    }
    tmpf_unref(f->tf);
    f->tf = NULL;
    if (f->e->fill == f)
        f->e->fill = NULL;
    f->e->holders--;
    entry_gc(cb, f->e);
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_fill_closed);
}

/* The fill ends without a copy: upstream closed, every reader told (or
 * served a stale copy), the file let go of. */
static void fill_stop(struct fill *f, const struct tg_error *err)
{
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;
    uint64_t age = wall_ms() - e->fetched_ms;
    struct creader *r, *next;

    /* err may live in the upstream stream closed below: keep a copy. */
    f->err = *err;
    err = &f->err;
    f->state = F_FAILED;
    if (f->unlink_old && !f->writing) {
        f->unlink_old = false; /* no write will come to remove it */
        unlink_copy(cb, e->name);
    }
    /* Nobody may join a failed fill while its last requests drain. */
    if (e->fill == f)
        e->fill = NULL;
    if (f->up) {
        tg_stream_close(f->up);
        f->up = NULL;
    }
    /* The upstream says the object is gone or forbidden: that is an answer,
     * not a failure (RFC 5861 serves stale on 5xx and connection errors). */
    if (err->code != TG_TFTP_EUNDEF && e->present && f->reval)
        e->fetched_ms = 0;
    for (r = f->readers; r; r = next) {
        next = r->next;
        detach(r);
        if (r->state == R_FAILED)
            continue;
        /* Not started yet and a copy recent enough: serve it stale. */
        if (r->state == R_WAIT && !r->tf && !tg_life_busy(&r->life) && e->present &&
            err->code == TG_TFTP_EUNDEF && age <= cb->ttl_ms + cb->stale_ms) {
            cb->st.stale++;
            tg_metrics_cache_event(cb->base.name, "stale");
            r->stale = true;
            tg_log(TG_LOG_WARN, "cache %s: serving stale copy of %s (age %llu s): upstream "
                                "failed", cb->base.name, e->key, (unsigned long long)(age / 1000));
            if (open_copy(r) == 0)
                continue;
        }
        reader_fail(r, err);
    }
    uv_timer_stop(&f->timer);
    tg_life_close(&f->life);
}

static void fill_fail(struct fill *f, const struct tg_error *err)
{
    tg_log(TG_LOG_WARN, "cache %s: upstream fetch of %s failed: %s", f->cb->base.name, f->e->key,
           err->msg);
    fill_stop(f, err);
}

/* Nobody reads it: stop the upstream request and free the file. */
static void fill_cancel(struct fill *f, const char *why)
{
    struct cache_backend *cb = f->cb;
    struct tg_error e;

    tg_log(TG_LOG_INFO, "cache %s: fetch of %s cancelled after %lld bytes: %s", cb->base.name,
           f->e->key, (long long)(f->state == F_RELAYING ? f->roff + (int64_t)f->rlen : f->filled),
           why);
    cb->st.cancelled++;
    tg_metrics_cache_event(cb->base.name, "cancelled");
    tg_error_set(&e, TG_TFTP_EUNDEF, "cache fetch cancelled");
    fill_stop(f, &e);
}

static void wake_readers(struct fill *f)
{
    struct creader *r, *next;

    for (r = f->readers; r; r = next) {
        next = r->next;
        if (!r->tf)
            continue;
        r->avail = f->filled;
        if (f->up_eof)
            r->total = f->filled;
        if (f->up_eof)
            detach(r); /* every byte is on disk: on its own from here */
        if (r->state != R_OPEN)
            continue;
        if (r->want && !r->reading && r->blen == 0 &&
            (r->pos < r->avail || (r->total >= 0 && r->pos >= r->total))) {
            r->want = false;
            reader_notify(r, TG_STREAM_READABLE);
        }
    }
}

/* The copy's description: a temporary, fsynced, renamed over the old
 * .meta; then the directory. Thread pool. Returns an errno value. */
static int write_meta(const struct fill *f)
{
    const struct centry *e = f->e;
    struct tg_lfs_tmp_spec spec = {0};
    struct tg_lfs_tmp t;
    char text[META_MAX], meta[NAME_LEN + 8];
    int n, err;

    n = snprintf(text, sizeof(text),
                 "tftpgw-cache 1\nsize %lld\nfetched %llu\netag %s\nlastmod %s\nkey %s\n",
                 (long long)f->filled, (unsigned long long)wall_ms(),
                 f->val.etag[0] ? f->val.etag : "-",
                 f->val.last_modified[0] ? f->val.last_modified : "-", e->key);
    if (n < 0 || (size_t)n >= sizeof(text))
        return ENAMETOOLONG;
    spec.dirfd = f->cb->dirfd;
    spec.flags = O_WRONLY;
    spec.mode = 0644;
    spec.anon_ok = f->cb->anon_ok;
    spec.prefix = f->prefix;
    spec.suffix = ".meta.tmp"; /* a leftover is removed at start-up */
    if ((err = tg_lfs_tmp_open(&t, &spec)) != 0)
        return err;
    if (tg_lfs_pwrite_all(t.fd, text, (size_t)n, 0, &err) == (size_t)n && fsync(t.fd) != 0)
        err = errno;
    snprintf(meta, sizeof(meta), "%s.meta", e->name);
    if (!err)
        err = tg_lfs_publish(&t, f->cb->dirfd, meta, true, false);
    tg_lfs_tmp_discard(&t);
    if (!err)
        fsync(f->cb->dirfd);
    return err;
}

/* Thread pool: the fill file becomes <hash>.data, then its .meta. */
static void commit_work(uv_work_t *w)
{
    struct fill *f = w->data;
    char data[NAME_LEN + 8];

    if (fsync(f->tf->fd) != 0) {
        f->werr = errno;
        return;
    }
    /* Data first, then its description: a .meta whose size disagrees with
     * the .data is discarded at start-up. */
    snprintf(data, sizeof(data), "%s.data", f->e->name);
    f->werr = tg_lfs_publish(&f->open.tmp, f->cb->dirfd, data, true, false);
    if (!f->werr)
        f->werr = write_meta(f);
}

static void commit_after(uv_work_t *w, int status)
{
    struct fill *f = w->data;
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;

    if (status != 0 && !f->werr)
        f->werr = EIO;
    if (f->orphan && !f->werr) {
        /* A write came while the copy was being linked: it is already out
         * of date, so it must not be served fresh. */
        e->fetched_ms = 0;
    }
    if (f->werr) {
        /* The copy is not kept; readers already have every byte. */
        tg_log(TG_LOG_WARN, "cache %s: could not keep %s: %s", cb->base.name, e->key,
               strerror(f->werr));
        if (e->present) {
            e->present = false;
            cb->total -= e->size;
        }
    } else {
        if (e->present)
            cb->total -= e->size;
        e->present = true;
        e->size = f->filled;
        e->fetched_ms = f->orphan ? 0 : wall_ms();
        e->val = f->val;
        e->used = ++cb->clock;
        /* The file's bytes are the copy's now; while readers still hold
         * the file, the copy is pinned (evicting it would free nothing). */
        cb->filling -= f->tf->charged;
        f->tf->charged = 0;
        cb->total += e->size;
        f->tf->pin = e;
        e->pins++;
    }
    f->state = F_DONE;
    if (e->fill == f)
        e->fill = NULL;
    evict(cb);
    tg_life_close(&f->life);
    tg_life_release(&f->life); /* the commit job's hold: now it is freed */
}

/* Every byte is on disk. keep: it may become the copy. */
static void fill_commit(struct fill *f, bool keep)
{
    f->state = F_COMMITTING;
    if (f->up) {
        tg_stream_close(f->up);
        f->up = NULL;
    }
    wake_readers(f);
    if (!keep || f->orphan) {
        /* Relayed only: its readers read on from the file they hold. */
        f->state = F_DONE;
        tg_life_close(&f->life);
        return;
    }
    f->work.data = f;
    if (uv_queue_work(f->cb->base.loop, &f->work, commit_work, commit_after) != 0) {
        f->state = F_DONE;
        tg_life_close(&f->life);
        return;
    }
    tg_life_hold(&f->life);
}

static void not_stored(struct fill *f, int level, const char *why)
{
    struct cache_backend *cb = f->cb;

    tg_log(level, "cache %s: %s not kept: %s", cb->base.name, f->e->key, why);
    cb->st.not_stored++;
    tg_metrics_cache_event(cb->base.name, "not_stored");
}

/* ---- relaying ---- */

static void on_fill_timer(uv_timer_t *t);

/* Run the relay from the loop soon, never inside a reader's own call. */
static void fill_kick(struct fill *f)
{
    if (!f->life.closed)
        uv_timer_start(&f->timer, on_fill_timer, 0, 0);
}

/* Storing stops at f->filled; with have_chunk, buf holds blen bytes after
 * that which were not stored. Later readers start a fetch of their own:
 * the start of the body is not kept for them. */
static void start_relay(struct fill *f, bool have_chunk)
{
    struct creader *r;

    f->state = F_RELAYING;
    f->stored = f->roff = f->filled;
    f->rlen = have_chunk ? f->blen : 0;
    if (have_chunk)
        f->cb->st.up_bytes += f->blen;
    f->blen = 0;
    if (f->e->fill == f)
        f->e->fill = NULL;
    /* The fill writes no more: the file lives on only for readers still
     * behind its end, and is freed when they pass it. */
    tmpf_unref(f->tf);
    f->tf = NULL;
    for (r = f->readers; r; r = r->next) {
        r->avail = f->stored;
        reader_trim(r);
    }
    fill_kick(f);
}

/* The next chunk once every reader has the current one; the end when the
 * upstream ends; cancelled when nobody is left to relay to. */
static void relay_step(struct fill *f)
{
    struct creader *r, *next;
    int64_t end = f->roff + (int64_t)f->rlen;
    bool any = false, all_past = true;
    ssize_t n;

    /* Readers waiting for bytes the chunk holds (the one that stopped
     * storing brings its chunk along). */
    for (r = f->readers; r; r = next) {
        next = r->next;
        if (r->state == R_OPEN && r->want && r->blen == 0 && r->pos >= f->roff &&
            r->pos < end) {
            r->want = false;
            reader_notify(r, TG_STREAM_READABLE);
        }
    }
    for (r = f->readers; r; r = r->next) {
        if (r->state == R_FAILED)
            continue;
        any = true;
        if (r->pos < end)
            all_past = false;
    }
    if (!any) {
        fill_cancel(f, "no reader left to relay to");
        return;
    }
    if (!all_past)
        return;
    n = tg_stream_pull(f->up, f->buf, CHUNK);
    if (n == TG_EAGAIN)
        return;
    if (n < 0) {
        fill_fail(f, &f->up->err);
        return;
    }
    if (n == 0) {
        struct tg_error e;

        if (f->size >= 0 && end != f->size) {
            tg_error_set(&e, TG_TFTP_EUNDEF, "upstream ended early");
            fill_fail(f, &e);
            return;
        }
        tg_stream_close(f->up);
        f->up = NULL;
        f->up_eof = true;
        /* Every reader is at the end: it needs nothing more of the fill. */
        for (r = f->readers; r; r = next) {
            next = r->next;
            r->total = end;
            detach(r);
            if (r->state == R_OPEN && r->want) {
                r->want = false;
                reader_notify(r, TG_STREAM_READABLE);
            }
        }
        f->state = F_DONE;
        tg_life_close(&f->life);
        return;
    }
    f->roff = end;
    f->rlen = (size_t)n;
    f->cb->st.up_bytes += (uint64_t)n;
    for (r = f->readers; r; r = next) {
        next = r->next;
        if (r->state == R_OPEN && r->want && r->blen == 0) {
            r->want = false;
            reader_notify(r, TG_STREAM_READABLE);
        }
    }
}

static void on_fill_timer(uv_timer_t *t)
{
    struct fill *f = t->data;

    if (f->state == F_RELAYING) {
        relay_step(f);
    } else if ((f->state == F_OPENING || f->state == F_FILLING) && !f->readers &&
               !f->prefetch) {
        char why[64];

        snprintf(why, sizeof(why), "no reader for %llu ms",
                 (unsigned long long)f->cb->grace_ms);
        fill_cancel(f, why);
    }
}

/* The last reader left. A fetch someone asked for goes on for fill_grace:
 * UEFI firmware declines the first transfer after its tsize probe (ERROR 8)
 * and asks again at once, and that must still cost one fetch. */
static void fill_unfollowed(struct fill *f)
{
    if (f->life.closed)
        return;
    if (f->state == F_RELAYING)
        fill_kick(f);
    else if ((f->state == F_OPENING || f->state == F_FILLING) && !f->prefetch)
        uv_timer_start(&f->timer, on_fill_timer, f->cb->grace_ms, 0);
}

/* ---- storing ---- */

/* On the thread pool: the free-space floor, then the chunk. statvfs reads
 * the file system's counters, no disk I/O; a few fills at once can each
 * pass it, so the floor may be undercut by one chunk per running fill. */
static void write_work(uv_work_t *w)
{
    struct fill *f = w->data;
    int fd = f->tf->fd;

    f->below_floor = false;
    f->wr_errno = 0;
    if (f->unlink_old) {
        char p[NAME_LEN + 8];

        f->unlink_old = false;
        snprintf(p, sizeof(p), "%s.meta", f->e->name);
        unlinkat(f->cb->dirfd, p, 0);
        snprintf(p, sizeof(p), "%s.data", f->e->name);
        unlinkat(f->cb->dirfd, p, 0);
    }
    if (f->cb->min_free > 0) {
        struct statvfs sv;

        if (fstatvfs(fd, &sv) == 0 &&
            (uint64_t)sv.f_bavail * sv.f_frsize < (uint64_t)f->cb->min_free + f->blen) {
            f->below_floor = true;
            f->wres = 0;
            return;
        }
    }
    f->wres = (ssize_t)tg_lfs_pwrite_all(fd, f->buf, f->blen, (off_t)f->filled, &f->wr_errno);
}

static void fill_pump(struct fill *f);

static void on_fill_written(uv_work_t *w, int status)
{
    struct fill *f = w->data;
    char why[160];

    f->writing = false;
    if (tg_life_release(&f->life) || f->state != F_FILLING)
        return;
    if (status != 0 || f->below_floor || f->wres != (ssize_t)f->blen) {
        /* The chunk is still in buf: the readers get it and the rest. */
        if (f->below_floor)
            snprintf(why, sizeof(why), "free space in %s below min_free (%lld bytes) after %lld "
                     "bytes; relayed to its readers", f->cb->dir, (long long)f->cb->min_free,
                     (long long)f->filled);
        else
            snprintf(why, sizeof(why), "cache write failed after %lld bytes: %s; relayed to its "
                     "readers", (long long)f->filled,
                     status != 0 ? "cancelled" : strerror(f->wr_errno ? f->wr_errno : EIO));
        not_stored(f, TG_LOG_WARN, why);
        start_relay(f, true);
        return;
    }
    f->filled += (int64_t)f->blen;
    f->cb->st.up_bytes += f->blen;
    f->blen = 0;
    wake_readers(f);
    fill_pump(f);
}

/* The upstream ended. Only a body whose end is proven may become the copy:
 * a length that arrived whole, or a chunked body's last chunk. */
static void fill_end(struct fill *f)
{
    bool unproven = f->up->http && f->up->http->end_unproven;
    struct tg_error e;

    if (f->size >= 0 && f->filled != f->size) {
        tg_error_set(&e, TG_TFTP_EUNDEF, "upstream ended early");
        fill_fail(f, &e);
        return;
    }
    f->up_eof = true;
    if (unproven)
        not_stored(f, TG_LOG_INFO, "the upstream ended it by closing the connection (no "
                                   "Content-Length, not chunked), so it may be cut short; "
                                   "relayed only");
    fill_commit(f, !unproven);
}

/* Upstream bytes to disk, one write in flight, each counted against
 * max_size before it is written. */
static void fill_pump(struct fill *f)
{
    ssize_t n;

    if (f->state != F_FILLING || f->writing)
        return;
    n = tg_stream_pull(f->up, f->buf, CHUNK);
    if (n == TG_EAGAIN)
        return;
    if (n < 0) {
        fill_fail(f, &f->up->err);
        return;
    }
    if (n == 0) {
        fill_end(f);
        return;
    }
    f->blen = (size_t)n;
    if (f->size < 0 && !fill_budget(f, n)) {
        char why[128];

        snprintf(why, sizeof(why), "more than max_size (%lld bytes) allows after %lld bytes; "
                 "relayed to its readers", (long long)f->cb->max_size, (long long)f->filled);
        not_stored(f, TG_LOG_INFO, why);
        start_relay(f, true);
        return;
    }
    f->wwork.data = f;
    if (uv_queue_work(f->cb->base.loop, &f->wwork, write_work, on_fill_written) != 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cache write failed");
        fill_fail(f, &e);
        return;
    }
    f->writing = true;
    tg_life_hold(&f->life);
}

/* Both the upstream answer and the temp file are there: readers may join.
 * A known size is counted against max_size at once, whole. */
static void fill_ready(struct fill *f)
{
    struct creader *r, *next;

    if (!f->up_opened || !f->fd_ready || f->state != F_OPENING)
        return;
    if (f->size >= 0 && !fill_budget(f, f->size)) {
        char why[128];

        snprintf(why, sizeof(why), "%lld bytes do not fit max_size (%lld bytes); relayed to its "
                 "readers", (long long)f->size, (long long)f->cb->max_size);
        not_stored(f, TG_LOG_INFO, why);
        start_relay(f, false);
    } else {
        f->state = F_FILLING;
    }
    for (r = f->readers; r; r = next) {
        next = r->next;
        if (r->state == R_WAIT)
            follow(r, f);
    }
    fill_pump(f);
}

static void on_upstream(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct fill *f = arg;
    struct centry *e = f->e;

    switch (ev) {
    case TG_STREAM_OPENED:
        if (f->up->http && f->up->http->not_modified) {
            struct creader *r, *next;

            /* 304: the copy is good for another ttl; its .meta keeps the
             * old time, so a restart revalidates once more (harmless). */
            e->fetched_ms = wall_ms();
            tg_stream_close(f->up);
            f->up = NULL;
            f->state = F_DONE;
            e->fill = NULL;
            for (r = f->readers; r; r = next) {
                next = r->next;
                detach(r);
                if (!e->present || open_copy(r) != 0) {
                    struct tg_error err;

                    tg_error_set(&err, TG_TFTP_EUNDEF, "cached copy vanished");
                    reader_fail(r, &err);
                }
            }
            tg_life_close(&f->life);
            return;
        }
        f->up_opened = true;
        f->size = f->up->size;
        if (f->up->http)
            f->val = f->up->http->val;
        fill_ready(f);
        break;
    case TG_STREAM_READABLE:
        if (f->state == F_RELAYING)
            relay_step(f);
        else
            fill_pump(f);
        break;
    case TG_STREAM_FAILED:
        fill_fail(f, &s->err);
        break;
    default:
        break;
    }
}

static void on_fill_tmp(struct tg_lfs_tmp_req *req)
{
    struct fill *f = tg_container_of(req, struct fill, open);
    int err = req->err;

    if (!err && !(f->tf = tmpf_new(f->cb, req->tmp.fd))) {
        close(req->tmp.fd); /* just made, empty: nothing to flush */
        err = ENOMEM;
    }
    if (tg_life_release(&f->life))
        return; /* over meanwhile: the release let it go */
    if (err) {
        struct tg_error e;

        /* The reason is for the operator, not the client (docs/security.md). */
        tg_log(TG_LOG_WARN, "cache %s: cannot create a file in %s: %s", f->cb->base.name,
               f->cb->dir, uv_strerror(-err));
        tg_error_set(&e, TG_TFTP_EUNDEF, "cache cannot create a file");
        fill_fail(f, &e);
        return;
    }
    f->fd_ready = true;
    fill_ready(f);
}

static struct fill *fill_start(struct cache_backend *cb, struct centry *e, bool reval,
                               bool prefetch)
{
    struct tg_open_args a;
    struct fill *f = tg_calloc(1, sizeof(*f));
    int rc;

    if (!f || !(f->buf = tg_malloc(CHUNK))) {
        tg_free(f);
        return NULL;
    }
    tg_life_init(&f->life, fill_fin);
    f->cb = cb;
    f->e = e;
    f->size = -1;
    f->reval = reval;
    f->prefetch = prefetch;
    memset(&a, 0, sizeof(a));
    a.key = e->key;
    a.filename = e->key;
    a.client_ip = "";
    a.size_hint = -1;
    a.blksize = CHUNK;
    if (reval) {
        a.if_changed = &e->val;
    }
    rc = cb->up->ops->open_read(cb->up, &a, on_upstream, f, &f->up);
    if (rc != 0) {
        tg_free(f->buf);
        tg_free(f);
        return NULL;
    }
    /* An anonymous file where possible: a fill cut short by a crash then
     * leaves nothing; a named one ends in .tmpdata, removed at start-up. */
    snprintf(f->prefix, sizeof(f->prefix), "%s.", e->name);
    f->open.spec.dirfd = cb->dirfd;
    f->open.spec.flags = O_RDWR;
    f->open.spec.mode = 0644;
    f->open.spec.anon_ok = cb->anon_ok;
    f->open.spec.prefix = f->prefix;
    f->open.spec.suffix = ".tmpdata";
    rc = tg_lfs_tmp_open_async(cb->base.loop, &f->open, on_fill_tmp);
    if (rc != 0) {
        tg_stream_close(f->up);
        tg_free(f->buf);
        tg_free(f);
        return NULL;
    }
    uv_timer_init(cb->base.loop, &f->timer);
    f->timer.data = f;
    tg_life_hold(&f->life);
    cb->fills++;
    e->fill = f;
    e->holders++;
    return f;
}

/* ---- backend operations ---- */

/* Follow e's fill, starting one when none runs. The reader waits (R_WAIT);
 * a fill already streaming is joined through a fstat of its file, so that
 * OPENED comes from the loop, never from inside open_read. */
static int reader_join(struct creader *r)
{
    struct cache_backend *cb = r->cb;
    struct centry *e = r->e;
    struct fill *f;

    if (!e->fill && !fill_start(cb, e, e->present, false))
        return TG_EIO;
    f = e->fill;
    r->state = R_WAIT;
    r->fill = f;
    r->next = f->readers;
    if (r->next)
        r->next->prev = r;
    f->readers = r;
    uv_timer_stop(&f->timer); /* followed again: no cancel */
    if (f->state == F_FILLING || f->state == F_COMMITTING) {
        r->tf = tmpf_ref(f->tf);
        r->avail = f->filled;
        r->base.size = f->size;
        if (f->state == F_COMMITTING) {
            /* Every byte is on disk already: read it on our own. */
            detach(r);
            r->total = f->filled;
        }
        r->req.data = r;
        if (uv_fs_fstat(cb->base.loop, &r->req, r->tf->fd, on_follow_stat) != 0) {
            detach(r);
            tmpf_unref(r->tf);
            r->tf = NULL;
            return TG_EIO;
        }
        tg_life_hold(&r->life);
    }
    return 0;
}

static int cache_open_read(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb_fn, void *arg, struct tg_stream **out)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    struct centry *e = lookup(cb, a->key, true);
    struct creader *r;
    uint64_t now = wall_ms();
    int rc;

    if (!e)
        return TG_ENOMEM;
    r = tg_calloc(1, sizeof(*r));
    if (!r || !(r->buf = tg_malloc(CHUNK))) {
        tg_free(r);
        entry_gc(cb, e);
        return TG_ENOMEM;
    }
    tg_life_init(&r->life, reader_fin);
    r->base.ops = &cache_read_ops;
    r->base.backend = b;
    r->base.cb = cb_fn;
    r->base.arg = arg;
    r->base.size = -1;
    r->cb = cb;
    r->e = e;
    r->fd = -1;
    r->total = -1;
    e->holders++;
    if (!e->fill && e->present && now - e->fetched_ms < cb->ttl_ms) {
        cb->st.hits++;
        tg_metrics_cache_event(cb->base.name, "hit");
        rc = open_copy(r);
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
        rc = reader_join(r);
    }
    if (rc != 0) {
        e->holders--;
        tg_free(r->buf);
        tg_free(r);
        entry_gc(cb, e);
        return rc;
    }
    *out = &r->base;
    return 0;
}

/* Uploads go to the upstream as they are; the cached copy is dropped so the
 * next read fetches what was written. */
static int cache_open_write(struct tg_backend *b, const struct tg_open_args *a,
                            tg_stream_cb *cb_fn, void *arg, struct tg_stream **out)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    struct centry *e = lookup(cb, a->key, false);

    if (e && e->present)
        e->fetched_ms = 0; /* stale: revalidated on the next read */
    if (e && e->fill) {
        /* Readers already on it finish with what they started; later ones
         * must not join a fetch of the content being replaced. */
        e->fill->orphan = true;
        e->fill = NULL;
    }
    return cb->up->ops->open_write(cb->up, a, cb_fn, arg, out);
}

static void cache_destroy(struct tg_backend *b)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    size_t i;

    tg_log(TG_LOG_INFO,
           "cache %s: hits=%llu misses=%llu revalidations=%llu stale=%llu evictions=%llu "
           "upstream_bytes=%llu served_bytes=%llu cancelled=%llu not_stored=%llu",
           b->name, (unsigned long long)cb->st.hits, (unsigned long long)cb->st.misses,
           (unsigned long long)cb->st.revalidations, (unsigned long long)cb->st.stale,
           (unsigned long long)cb->st.evictions, (unsigned long long)cb->st.up_bytes,
           (unsigned long long)cb->st.served_bytes, (unsigned long long)cb->st.cancelled,
           (unsigned long long)cb->st.not_stored);
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
        unsigned long long fetched = 0;
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
        e->used = fetched; /* oldest fetch is evicted first after a restart */
        snprintf(e->val.etag, sizeof(e->val.etag), "%s", etag);
        snprintf(e->val.last_modified, sizeof(e->val.last_modified), "%s", lastmod);
        cb->total += size;
    }
    closedir(d);
    /* Later uses of the clock must rank above every restored entry. */
    cb->clock = wall_ms();
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
    {.name = "ttl", .type = TG_KEY_UINT, CB(ttl_ms), .max = YEARS_100, .scale = 1000,
     .def = "300", .bad = "seconds"},
    {.name = "stale_if_error", .type = TG_KEY_UINT, CB(stale_ms), .max = YEARS_100,
     .scale = 1000, .def = "86400", .bad = "seconds"},
    {.name = "fill_grace", .type = TG_KEY_UINT, CB(grace_ms), .max = 3600, .scale = 1000,
     .def = "5", .bad = "seconds, 0..3600"},
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
    evict(cb);
    for (i = 0; i < cb->nprefetch; i++) {
        struct centry *e = lookup(cb, cb->prefetch[i], true);

        if (e && !e->fill && !e->present) {
            cb->st.misses++;
            tg_metrics_cache_event(cb->base.name, "miss");
            if (!fill_start(cb, e, false, true))
                entry_gc(cb, e);
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
};

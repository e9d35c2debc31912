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
 * Files: dir/<hash>.data and dir/<hash>.meta (key, size, validators, fetch
 * time). The index is rebuilt from them at start-up. Every disk operation
 * after start-up runs on libuv's thread pool. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/backend.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/options.h"

#define CHUNK (64 * 1024)
#define NBUCKETS 1024
#define NAME_LEN 32

struct fill;
struct creader;

struct centry {
    struct centry *next; /* hash chain */
    char *key;
    char name[NAME_LEN + 1];
    bool present;        /* a committed copy is on disk */
    int64_t size;
    uint64_t fetched_ms; /* wall clock, so freshness survives a restart */
    char etag[128];
    char lastmod[64];
    uint64_t used;       /* LRU clock */
    int readers;         /* readers of the committed copy */
    int holders;         /* every reader pointing here, whatever its state */
    struct fill *fill;   /* fetch or revalidation in flight */
};

struct cache_stats {
    uint64_t hits, misses, revalidations, stale, evictions, up_bytes, served_bytes;
};

struct cache_backend {
    struct tg_backend base;
    struct tg_backend *up;
    char *up_name;
    int up_line;
    char *dir;
    int dirfd;
    int64_t max_size, total;
    uint64_t ttl_ms, stale_ms;
    char **prefetch;
    size_t nprefetch;
    struct centry *buckets[NBUCKETS];
    uint64_t clock;
    unsigned seq;
    int fills;           /* fills alive: destroy waits for none */
    struct cache_stats st;
};

enum fill_state { F_OPENING, F_FILLING, F_COMMITTING, F_DONE, F_FAILED };

struct fill {
    struct cache_backend *cb;
    struct centry *e;
    struct tg_stream *up;
    bool reval;
    bool orphan;         /* a write replaced the object: never becomes the copy */
    bool up_opened, fd_ready, up_eof, writing, readable;
    enum fill_state state;
    int fd;
    char tmpname[NAME_LEN + 32]; /* named-temp fallback; "" with O_TMPFILE */
    int64_t size, filled;
    char etag[128], lastmod[64];
    uint8_t *buf;
    size_t blen;
    uv_fs_t open_req, write_req;
    uv_work_t work;
    int werr;
    unsigned seq;        /* names this fill's temporaries (read by the worker) */
    bool tmp_fallback;   /* O_TMPFILE refused: a named temporary instead */
    int ops;             /* fs requests and work in flight */
    struct creader *readers; /* waiting or following */
    struct tg_error err;
};

enum reader_state { R_WAIT, R_OPENING, R_OPEN, R_FAILED };

struct creader {
    struct tg_stream base;
    struct cache_backend *cb;
    struct centry *e;
    struct fill *fill;   /* set while waiting for / following a fill */
    struct creader *next, *prev;
    enum reader_state state;
    bool on_copy;        /* counted in e->readers */
    bool stale;
    int fd;
    int64_t pos, avail, total;
    uint8_t *buf;
    size_t boff, blen;
    bool reading, want, closed;
    int ops;
    uv_fs_t req;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* 128 bits of two differently seeded hashes: a file name per key. */
static void key_name(const char *key, char out[NAME_LEN + 1])
{
    snprintf(out, NAME_LEN + 1, "%016llx%016llx",
             (unsigned long long)fnv1a(key, 0xcbf29ce484222325ULL),
             (unsigned long long)fnv1a(key, 0x84222325cbf29ce4ULL));
}

/* ---- index ---- */

static struct centry *lookup(struct cache_backend *cb, const char *key, bool create)
{
    size_t b = fnv1a(key, 0xcbf29ce484222325ULL) % NBUCKETS;
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

    if (e->present || e->fill || e->readers > 0 || e->holders > 0)
        return;
    for (pp = &cb->buckets[fnv1a(e->key, 0xcbf29ce484222325ULL) % NBUCKETS]; *pp;
         pp = &(*pp)->next)
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

/* Evict least-recently-used copies nobody reads until under max_size
 * (a copy being read stays: its reader holds the file). */
static void evict(struct cache_backend *cb)
{
    while (cb->total > cb->max_size) {
        struct centry *victim = NULL, *e;
        struct unlink_job *j;
        size_t b;

        for (b = 0; b < NBUCKETS; b++)
            for (e = cb->buckets[b]; e; e = e->next)
                if (e->present && e->readers == 0 && !e->fill &&
                    (!victim || e->used < victim->used))
                    victim = e;
        if (!victim)
            return;
        victim->present = false;
        cb->total -= victim->size;
        cb->st.evictions++;
        tg_metrics_cache_event(cb->base.name, "eviction");
        j = tg_calloc(1, sizeof(*j));
        if (j) {
            j->dirfd = cb->dirfd;
            memcpy(j->name, victim->name, sizeof(j->name));
            j->w.data = j;
            if (uv_queue_work(cb->base.loop, &j->w, unlink_work, unlink_after) != 0)
                tg_free(j);
        }
        tg_log(TG_LOG_INFO, "cache %s: evicted %s (%lld bytes)", cb->base.name, victim->key,
               (long long)victim->size);
        entry_gc(cb, victim);
    }
}

/* ---- readers ---- */

static void reader_notify(struct creader *r, enum tg_stream_ev ev)
{
    if (!r->closed)
        r->base.cb(&r->base, ev, r->base.arg);
}

static void reader_release(struct creader *r)
{
    if (!r->closed || r->ops > 0)
        return;
    tg_fs_close_async(r->cb->base.loop, r->fd);
    tg_free(r->buf);
    tg_free(r);
}

static void reader_fail(struct creader *r, const struct tg_error *e)
{
    r->base.err = *e;
    r->state = R_FAILED;
    reader_notify(r, TG_STREAM_FAILED);
}

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
}

static void on_copy_stat(uv_fs_t *req)
{
    struct creader *r = req->data;
    int64_t size = req->result == 0 ? (int64_t)req->statbuf.st_size : -1;

    uv_fs_req_cleanup(req);
    r->ops--;
    if (r->closed) {
        reader_release(r);
        return;
    }
    if (size < 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cached copy unreadable");
        reader_fail(r, &e);
        return;
    }
    r->state = R_OPEN;
    r->avail = r->total = r->base.size = size;
    reader_notify(r, TG_STREAM_OPENED);
}

static void on_copy_open(uv_fs_t *req)
{
    struct creader *r = req->data;
    ssize_t fd = req->result;

    uv_fs_req_cleanup(req);
    r->ops--;
    if (fd >= 0)
        r->fd = (int)fd;
    if (r->closed) {
        reader_release(r);
        return;
    }
    if (fd < 0 || uv_fs_fstat(r->cb->base.loop, &r->req, r->fd, on_copy_stat) != 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cached copy unreadable");
        reader_fail(r, &e);
        return;
    }
    r->ops++;
}

/* Serve the committed copy; its size is the file's own, taken after open,
 * so a copy replaced meanwhile is read whole either way. */
static int open_copy(struct creader *r)
{
    char p[1024];

    snprintf(p, sizeof(p), "%s/%s.data", r->cb->dir, r->e->name);
    r->state = R_OPENING;
    r->on_copy = true;
    r->e->readers++;
    r->e->used = ++r->cb->clock;
    r->req.data = r;
    if (uv_fs_open(r->cb->base.loop, &r->req, p, O_RDONLY | O_CLOEXEC, 0, on_copy_open) != 0)
        return TG_EIO;
    r->ops++;
    return 0;
}

/* A waiting reader joins the fill's data: a descriptor of its own on the
 * fill's anonymous file. Runs from fill callbacks (the loop). */
static void follow(struct creader *r, struct fill *f)
{
    r->fd = dup(f->fd); /* no disk I/O: a descriptor table entry */
    if (r->fd < 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "server out of descriptors");
        detach(r);
        reader_fail(r, &e);
        return;
    }
    r->state = R_OPEN;
    r->avail = f->filled;
    r->total = f->up_eof ? f->filled : -1;
    r->base.size = f->size;
    reader_notify(r, TG_STREAM_OPENED);
}

static void on_follow_stat(uv_fs_t *req);

/* A reader that joined a fill already streaming: now it may start. */
static void on_follow_stat(uv_fs_t *req)
{
    struct creader *r = req->data;

    uv_fs_req_cleanup(req);
    r->ops--;
    if (r->closed) {
        reader_release(r);
        return;
    }
    if (r->state != R_WAIT)
        return; /* failed meanwhile */
    r->state = R_OPEN;
    reader_notify(r, TG_STREAM_OPENED);
}

static void on_read(uv_fs_t *req)
{
    struct creader *r = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    r->ops--;
    r->reading = false;
    if (r->closed) {
        reader_release(r);
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
    r->want = true;
    if (!r->reading && r->pos < r->avail) {
        int64_t left = r->avail - r->pos;
        uv_buf_t b = uv_buf_init((char *)r->buf, (unsigned)(left < CHUNK ? left : CHUNK));

        r->req.data = r;
        if (uv_fs_read(r->cb->base.loop, &r->req, r->fd, &b, 1, r->pos, on_read) != 0) {
            tg_error_set(&r->base.err, TG_TFTP_EUNDEF, "cached copy read failed");
            r->state = R_FAILED;
            return TG_EIO;
        }
        r->reading = true;
        r->ops++;
    }
    /* Otherwise the fill has not got further: its progress wakes us. */
    return TG_EAGAIN;
}

static void cache_close(struct tg_stream *s)
{
    struct creader *r = (struct creader *)s;
    struct centry *e = r->e;

    r->closed = true;
    detach(r);
    if (r->on_copy) {
        e->readers--;
        r->on_copy = false;
    }
    e->holders--;
    entry_gc(r->cb, e);
    reader_release(r);
}

/* ---- fills ---- */

static void fill_release(struct fill *f)
{
    struct cache_backend *cb = f->cb;

    if (f->state != F_DONE && f->state != F_FAILED)
        return;
    if (f->ops > 0 || f->up)
        return;
    /* Nobody stays linked to a fill that is going away. */
    while (f->readers) {
        struct creader *r = f->readers;

        detach(r);
        if (r->fd >= 0 && f->state == F_DONE) {
            r->avail = r->total = f->filled;
            if (r->state == R_OPEN && r->want && !r->reading && r->blen == 0) {
                r->want = false;
                reader_notify(r, TG_STREAM_READABLE);
            }
        } else if (r->state != R_FAILED) {
            reader_fail(r, &f->err);
        }
    }
    tg_fs_close_async(cb->base.loop, f->fd);
    if (f->e->fill == f)
        f->e->fill = NULL;
    f->e->holders--;
    entry_gc(cb, f->e);
    tg_free(f->buf);
    tg_free(f);
    cb->fills--;
}

static void fill_fail(struct fill *f, const struct tg_error *err)
{
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;
    uint64_t age = wall_ms() - e->fetched_ms;
    struct creader *r, *next;

    /* err may live in the upstream stream closed below: keep a copy. */
    f->err = *err;
    err = &f->err;
    f->state = F_FAILED;
    /* Nobody may join a failed fill while its last requests drain. */
    if (e->fill == f)
        e->fill = NULL;
    if (f->up) {
        tg_stream_close(f->up);
        f->up = NULL;
    }
    tg_log(TG_LOG_WARN, "cache %s: upstream fetch of %s failed: %s", cb->base.name, e->key,
           err->msg);
    /* The upstream says the object is gone or forbidden: that is an answer,
     * not a failure (RFC 5861 serves stale on 5xx and connection errors). */
    if (err->code != TG_TFTP_EUNDEF && e->present && f->reval)
        e->fetched_ms = 0;
    for (r = f->readers; r; r = next) {
        next = r->next;
        detach(r);
        /* Not started yet and a copy recent enough: serve it stale. */
        if (r->state == R_WAIT && r->fd < 0 && r->ops == 0 && e->present &&
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
    fill_release(f);
}

static void fill_pump(struct fill *f);

static void wake_readers(struct fill *f)
{
    struct creader *r, *next;

    for (r = f->readers; r; r = next) {
        next = r->next;
        if (r->fd < 0)
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

static void commit_work(uv_work_t *w)
{
    struct fill *f = w->data;
    struct centry *e = f->e;
    char proc[64], tmp[NAME_LEN + 40], data[NAME_LEN + 8], meta[NAME_LEN + 8],
        mtmp[NAME_LEN + 32];
    FILE *m;
    int mfd;

    if (fsync(f->fd) != 0) {
        f->werr = errno;
        return;
    }
    snprintf(data, sizeof(data), "%s.data", e->name);
    if (f->tmpname[0]) {
        snprintf(tmp, sizeof(tmp), "%s", f->tmpname);
    } else {
        snprintf(tmp, sizeof(tmp), "%s.%u.tmpdata", e->name, f->seq);
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
        unlinkat(f->cb->dirfd, tmp, 0);
        if (linkat(AT_FDCWD, proc, f->cb->dirfd, tmp, AT_SYMLINK_FOLLOW) != 0) {
            f->werr = errno;
            return;
        }
    }
    /* Data first, then its description: a .meta whose size disagrees with
     * the .data is discarded at start-up. */
    if (renameat(f->cb->dirfd, tmp, f->cb->dirfd, data) != 0) {
        f->werr = errno;
        unlinkat(f->cb->dirfd, tmp, 0);
        return;
    }
    f->tmpname[0] = '\0';
    snprintf(meta, sizeof(meta), "%s.meta", e->name);
    snprintf(mtmp, sizeof(mtmp), "%s.%u.meta.tmp", e->name, f->seq);
    mfd = openat(f->cb->dirfd, mtmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (mfd < 0 || !(m = fdopen(mfd, "w"))) {
        f->werr = errno;
        if (mfd >= 0)
            close(mfd);
        return;
    }
    fprintf(m, "tftpgw-cache 1\nsize %lld\nfetched %llu\netag %s\nlastmod %s\nkey %s\n",
            (long long)f->filled, (unsigned long long)wall_ms(), f->etag[0] ? f->etag : "-",
            f->lastmod[0] ? f->lastmod : "-", e->key);
    if (fflush(m) != 0 || fsync(fileno(m)) != 0)
        f->werr = errno;
    fclose(m);
    if (!f->werr && renameat(f->cb->dirfd, mtmp, f->cb->dirfd, meta) != 0)
        f->werr = errno;
    if (!f->werr)
        fsync(f->cb->dirfd);
}

static void commit_after(uv_work_t *w, int status)
{
    struct fill *f = w->data;
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;

    f->ops--;
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
        memcpy(e->etag, f->etag, sizeof(e->etag));
        memcpy(e->lastmod, f->lastmod, sizeof(e->lastmod));
        e->used = ++cb->clock;
        cb->total += e->size;
    }
    f->state = F_DONE;
    if (e->fill == f)
        e->fill = NULL;
    evict(cb);
    fill_release(f);
}

static void fill_commit(struct fill *f)
{
    f->state = F_COMMITTING;
    if (f->up) {
        tg_stream_close(f->up);
        f->up = NULL;
    }
    wake_readers(f);
    if (f->filled > f->cb->max_size || f->orphan) {
        /* Too big to keep, or overtaken by a write: it was only relayed. */
        f->state = F_DONE;
        fill_release(f);
        return;
    }
    f->work.data = f;
    if (uv_queue_work(f->cb->base.loop, &f->work, commit_work, commit_after) != 0) {
        f->state = F_DONE;
        fill_release(f);
        return;
    }
    f->ops++;
}

static void on_fill_written(uv_fs_t *req)
{
    struct fill *f = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    f->ops--;
    f->writing = false;
    if (f->state != F_FILLING) {
        fill_release(f);
        return;
    }
    if (n < 0 || (size_t)n != f->blen) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cache write failed: %s",
                     n < 0 ? uv_strerror((int)n) : "short write");
        fill_fail(f, &e);
        return;
    }
    f->filled += n;
    f->cb->st.up_bytes += (uint64_t)n;
    f->blen = 0;
    wake_readers(f);
    fill_pump(f);
}

/* Upstream bytes to disk, one write in flight. */
static void fill_pump(struct fill *f)
{
    while (f->state == F_FILLING && f->fd_ready && f->up_opened && !f->writing) {
        ssize_t n = tg_stream_pull(f->up, f->buf, CHUNK);
        uv_buf_t b;

        if (n == TG_EAGAIN)
            return;
        if (n < 0) {
            fill_fail(f, &f->up->err);
            return;
        }
        if (n == 0) {
            if (f->size >= 0 && f->filled != f->size) {
                struct tg_error e;

                tg_error_set(&e, TG_TFTP_EUNDEF, "upstream ended early");
                fill_fail(f, &e);
                return;
            }
            f->up_eof = true;
            fill_commit(f);
            return;
        }
        f->blen = (size_t)n;
        b = uv_buf_init((char *)f->buf, (unsigned)n);
        f->write_req.data = f;
        if (uv_fs_write(f->cb->base.loop, &f->write_req, f->fd, &b, 1, f->filled,
                        on_fill_written) != 0) {
            struct tg_error e;

            tg_error_set(&e, TG_TFTP_EUNDEF, "cache write failed");
            fill_fail(f, &e);
            return;
        }
        f->writing = true;
        f->ops++;
    }
}

/* Both the upstream answer and the temp file are there: readers may join. */
static void fill_ready(struct fill *f)
{
    struct creader *r, *next;

    if (!f->up_opened || !f->fd_ready || f->state != F_OPENING)
        return;
    f->state = F_FILLING;
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
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;

    (void)s;
    switch (ev) {
    case TG_STREAM_OPENED:
        if (f->up->not_modified) {
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
            fill_release(f);
            return;
        }
        f->up_opened = true;
        f->size = f->up->size;
        memcpy(f->etag, f->up->etag, sizeof(f->etag));
        memcpy(f->lastmod, f->up->last_modified, sizeof(f->lastmod));
        fill_ready(f);
        break;
    case TG_STREAM_READABLE:
        fill_pump(f);
        break;
    case TG_STREAM_FAILED:
        fill_fail(f, &s->err);
        break;
    default:
        break;
    }
    (void)cb;
}

static void on_fill_tmp(uv_fs_t *req)
{
    struct fill *f = req->data;
    ssize_t fd = req->result;

    uv_fs_req_cleanup(req);
    f->ops--;
    if (fd >= 0)
        f->fd = (int)fd;
    if (f->state == F_FAILED || f->state == F_DONE) {
        fill_release(f);
        return;
    }
    if (fd < 0 && !f->tmp_fallback &&
        (fd == -EOPNOTSUPP || fd == UV_EISDIR || fd == UV_EINVAL)) {
        /* No O_TMPFILE here: a named temporary, removed at start-up if a
         * crash leaves it. */
        char p[1024];

        f->tmp_fallback = true;
        snprintf(f->tmpname, sizeof(f->tmpname), "%s.%u.tmpdata", f->e->name, f->seq);
        snprintf(p, sizeof(p), "%s/%s", f->cb->dir, f->tmpname);
        f->open_req.data = f;
        if (uv_fs_open(f->cb->base.loop, &f->open_req, p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                       0644, on_fill_tmp) == 0) {
            f->ops++;
            return;
        }
    }
    if (fd < 0) {
        struct tg_error e;

        tg_error_set(&e, TG_TFTP_EUNDEF, "cache cannot create a file: %s",
                     uv_strerror((int)fd));
        fill_fail(f, &e);
        return;
    }
    f->fd_ready = true;
    fill_ready(f);
}

static struct fill *fill_start(struct cache_backend *cb, struct centry *e, bool reval)
{
    struct tg_open_args a;
    struct fill *f = tg_calloc(1, sizeof(*f));
    int rc;

    if (!f || !(f->buf = tg_malloc(CHUNK))) {
        tg_free(f);
        return NULL;
    }
    f->cb = cb;
    f->e = e;
    f->fd = -1;
    f->size = -1;
    f->reval = reval;
    f->seq = ++cb->seq;
    memset(&a, 0, sizeof(a));
    a.key = e->key;
    a.filename = e->key;
    a.client_ip = "";
    a.size_hint = -1;
    a.blksize = CHUNK;
    if (reval) {
        a.if_none_match = e->etag[0] ? e->etag : NULL;
        a.if_modified_since = e->lastmod[0] ? e->lastmod : NULL;
    }
    rc = cb->up->ops->open_read(cb->up, &a, on_upstream, f, &f->up);
    if (rc != 0) {
        tg_free(f->buf);
        tg_free(f);
        return NULL;
    }
    /* An anonymous file: a fill cut short by a crash leaves nothing. */
    f->open_req.data = f;
    rc = uv_fs_open(cb->base.loop, &f->open_req, cb->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644,
                    on_fill_tmp);
    if (rc != 0) {
        tg_stream_close(f->up);
        tg_free(f->buf);
        tg_free(f);
        return NULL;
    }
    f->ops++;
    cb->fills++;
    e->fill = f;
    e->holders++;
    return f;
}

/* ---- backend operations ---- */

static int cache_open_read(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb_fn, void *arg, struct tg_stream **out)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    struct centry *e = lookup(cb, a->key, true);
    struct creader *r;
    uint64_t now = wall_ms();

    if (!e)
        return TG_ENOMEM;
    r = tg_calloc(1, sizeof(*r));
    if (!r || !(r->buf = tg_malloc(CHUNK))) {
        tg_free(r);
        entry_gc(cb, e);
        return TG_ENOMEM;
    }
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
        if (open_copy(r) != 0) {
            e->readers--;
            e->holders--;
            tg_free(r->buf);
            tg_free(r);
            return TG_EIO;
        }
        *out = &r->base;
        return 0;
    }
    if (!e->fill) {
        if (e->present)
            cb->st.revalidations++;
        else
            cb->st.misses++;
        tg_metrics_cache_event(cb->base.name, e->present ? "revalidation" : "miss");
        if (!fill_start(cb, e, e->present)) {
            e->holders--;
            tg_free(r->buf);
            tg_free(r);
            entry_gc(cb, e);
            return TG_EIO;
        }
    } else {
        cb->st.hits++; /* single flight: no new upstream request */
        tg_metrics_cache_event(cb->base.name, "hit");
    }
    /* Join the fill. One already streaming is followed at once, from the
     * loop: a fstat of the shared file makes the round. */
    r->state = R_WAIT;
    r->fill = e->fill;
    r->next = e->fill->readers;
    if (r->next)
        r->next->prev = r;
    e->fill->readers = r;
    if (e->fill->state == F_FILLING || e->fill->state == F_COMMITTING) {
        struct fill *f = e->fill;

        r->fd = dup(f->fd);
        r->avail = f->filled;
        r->base.size = f->size;
        if (f->state == F_COMMITTING) {
            /* Every byte is on disk already: read it on our own. */
            detach(r);
            r->total = f->filled;
        }
        r->req.data = r;
        if (r->fd < 0 || uv_fs_fstat(b->loop, &r->req, r->fd, on_follow_stat) != 0) {
            detach(r);
            e->holders--;
            if (r->fd >= 0)
                close(r->fd);
            tg_free(r->buf);
            tg_free(r);
            return TG_EIO;
        }
        r->ops++;
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

static int cache_unsupported(struct tg_stream *s)
{
    (void)s;
    return TG_EINVAL; /* reads only: writes are upstream streams */
}

static int cache_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    (void)src;
    (void)len;
    return cache_unsupported(s);
}

static void cache_destroy(struct tg_backend *b)
{
    struct cache_backend *cb = (struct cache_backend *)b;
    size_t i;

    tg_log(TG_LOG_INFO,
           "cache %s: hits=%llu misses=%llu revalidations=%llu stale=%llu evictions=%llu "
           "upstream_bytes=%llu served_bytes=%llu",
           b->name, (unsigned long long)cb->st.hits, (unsigned long long)cb->st.misses,
           (unsigned long long)cb->st.revalidations, (unsigned long long)cb->st.stale,
           (unsigned long long)cb->st.evictions, (unsigned long long)cb->st.up_bytes,
           (unsigned long long)cb->st.served_bytes);
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

/* Start-up (before the loop runs): rebuild the index from dir. A .meta
 * without its .data, or whose size disagrees, is dropped with its data;
 * temporaries of fills cut short are removed. */
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

        if (l > 8 && !strcmp(n + l - 8, ".tmpdata")) {
            unlinkat(cb->dirfd, n, 0);
            continue;
        }
        if (l > 9 && !strcmp(n + l - 9, ".meta.tmp")) {
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
        snprintf(e->etag, sizeof(e->etag), "%s", etag);
        snprintf(e->lastmod, sizeof(e->lastmod), "%s", lastmod);
        cb->total += size;
    }
    closedir(d);
    /* Later uses of the clock must rank above every restored entry. */
    cb->clock = wall_ms();
}

static int parse_seconds(const char *v, uint64_t *ms)
{
    uint64_t n;

    if (tg_parse_u64(v, 100u * 365 * 86400, &n) != 0)
        return TG_EINVAL;
    *ms = n * 1000u;
    return 0;
}

static int cache_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                        struct tg_backend **out, char *err, size_t errlen)
{
    struct cache_backend *cb = tg_calloc(1, sizeof(*cb));
    size_t i;

    if (!cb) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    cb->base.ops = &tg_cache_backend_ops;
    cb->base.loop = loop;
    cb->base.name = tg_strdup(cfg->name);
    cb->dirfd = -1;
    cb->max_size = 1LL << 30;
    cb->ttl_ms = 300000;
    cb->stale_ms = 86400000;
    if (!cb->base.name)
        goto oom;
    for (i = 0; i < cfg->nkv; i++) {
        const struct tg_kv *kv = &cfg->kv[i];
        const char *k = kv->key, *v = kv->value;
        char why[128] = "invalid value";
        bool bad = false;

        if (!strcmp(k, "upstream")) {
            cb->up_line = kv->line;
            if (!v[0]) {
                snprintf(why, sizeof(why), "name of another backend");
                bad = true;
            } else if (!strcmp(v, cfg->name)) {
                snprintf(why, sizeof(why), "a cache cannot be its own upstream");
                bad = true;
            } else if (!(cb->up_name = tg_strdup(v))) {
                goto oom;
            }
        } else if (!strcmp(k, "dir")) {
            if (v[0] != '/') {
                snprintf(why, sizeof(why), "an absolute directory");
                bad = true;
            } else if (!(cb->dir = tg_strdup(v))) {
                goto oom;
            }
        } else if (!strcmp(k, "max_size")) {
            bad = tg_config_parse_size(v, &cb->max_size) != 0 || cb->max_size <= 0;
        } else if (!strcmp(k, "ttl")) {
            bad = parse_seconds(v, &cb->ttl_ms) != 0;
            if (bad)
                snprintf(why, sizeof(why), "seconds");
        } else if (!strcmp(k, "stale_if_error")) {
            bad = parse_seconds(v, &cb->stale_ms) != 0;
            if (bad)
                snprintf(why, sizeof(why), "seconds");
        } else if (!strcmp(k, "prefetch")) {
            char *copy = tg_strdup(v), *tok, *save = NULL;

            if (!copy)
                goto oom;
            for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
                char **grown = tg_realloc(cb->prefetch, (cb->nprefetch + 1) * sizeof(char *));

                if (!grown || !(grown[cb->nprefetch] = tg_strdup(tok))) {
                    if (grown)
                        cb->prefetch = grown;
                    tg_free(copy);
                    goto oom;
                }
                cb->prefetch = grown;
                cb->nprefetch++;
            }
            tg_free(copy);
        } else {
            snprintf(why, sizeof(why), "unknown key for a cache backend");
            bad = true;
        }
        if (bad) {
            snprintf(err, errlen, "line %d: %s: %s", kv->line, k, why);
            cache_destroy(&cb->base);
            return TG_EINVAL;
        }
    }
    if (!cb->up_name || !cb->dir) {
        snprintf(err, errlen, "line %d: %s: required for a cache backend", cfg->line,
                 !cb->up_name ? "upstream" : "dir");
        cache_destroy(&cb->base);
        return TG_EINVAL;
    }
    if (tg_backend_check_only) {
        *out = &cb->base; /* the settings are valid; the directory is the running one's */
        return 0;
    }
    /* Start-up, before the loop: blocking disk calls are fine here. */
    mkdir(cb->dir, 0755);
    cb->dirfd = open(cb->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cb->dirfd < 0) {
        snprintf(err, errlen, "line %d: dir: %s: %s", cfg->line, cb->dir, strerror(errno));
        cache_destroy(&cb->base);
        return TG_EINVAL;
    }
    scan_dir(cb);
    if (cb->total > 0)
        tg_log(TG_LOG_INFO, "cache %s: %lld bytes of copies found in %s", cfg->name,
               (long long)cb->total, cb->dir);
    *out = &cb->base;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    cache_destroy(&cb->base);
    return TG_ENOMEM;
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
            if (!fill_start(cb, e, false))
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
    .pull = cache_pull,
    .push = cache_push,
    .commit = cache_unsupported,
    .close = cache_close,
    .link = cache_link,
};

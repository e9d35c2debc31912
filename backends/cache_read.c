/* backends/cache_read.c - the cache's read streams: a committed copy read
 * from disk (its .meta checked against the key first), or a fill followed
 * at the reader's own pace, from the fill's file or, once the fill only
 * relays, from its chunk in memory. Bytes in the page cache go straight
 * into the caller's buffers (preadv2 with RWF_NOWAIT on the loop, which
 * never waits, as backends/file.c does); the rest is read on the thread
 * pool into a staging of R_STAGE bytes that exists only while it holds
 * them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"

/* A page-cache miss reads this much on the thread pool; the reader's
 * staging is freed once handed on. */
#define R_STAGE (16 * 1024)

/* ---- readers ---- */

void cache_reader_notify(struct creader *r, enum tg_stream_ev ev)
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
    cache_tmpf_unref(r->tf);
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
    tg_free(r->filename);
    tg_free(r->buf);
    tg_free(r);
}

void cache_reader_fail(struct creader *r, const struct tg_error *e)
{
    r->base.err = *e;
    r->state = R_FAILED;
    reader_drop_disk(r);
    cache_reader_notify(r, TG_STREAM_FAILED);
}

void cache_detach(struct creader *r)
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
    if (f->starter == r)
        f->starter = NULL;
    if (!f->readers)
        cache_fill_unfollowed(f);
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
            cache_unlink_copy(cb, e->name);
    }
    tg_error_set(&err, TG_TFTP_EUNDEF, "cached copy unreadable");
    if (r->stale) {
        cache_reader_fail(r, &err);
        return;
    }
    cb->st.misses++;
    tg_metrics_cache_event(cb->base.name, "miss");
    if (cache_reader_join(r) != 0)
        cache_reader_fail(r, &err);
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
        cache_reader_fail(r, &e);
    } else {
        r->state = R_OPEN;
        r->avail = r->total = r->base.size = j->size;
        cache_reader_notify(r, TG_STREAM_OPENED);
    }
    tg_free(j->key);
    tg_free(j);
}

/* Serve the committed copy; its size is the file's own, taken after open,
 * so a copy replaced meanwhile is read whole either way. */
int cache_open_copy(struct creader *r)
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
void cache_follow(struct creader *r, struct fill *f)
{
    if (f->state == F_FILLING)
        r->tf = cache_tmpf_ref(f->tf);
    r->state = R_OPEN;
    r->avail = f->state == F_FILLING ? f->filled : f->stored;
    r->total = -1;
    r->base.size = f->size;
    cache_reader_notify(r, TG_STREAM_OPENED);
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
    cache_reader_notify(r, TG_STREAM_OPENED);
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
        cache_reader_fail(r, &e);
        return;
    }
    r->boff = 0;
    r->blen = (size_t)n;
    r->pos += n;
    if (r->want) {
        r->want = false;
        cache_reader_notify(r, TG_STREAM_READABLE);
    }
}

/* A relaying reader past the stored bytes needs the file no more. */
void cache_reader_trim(struct creader *r)
{
    struct fill *f = r->fill;

    if (r->tf && !tg_life_busy(&r->life) && r->blen == 0 && f && f->state == F_RELAYING &&
        r->pos >= f->stored) {
        cache_tmpf_unref(r->tf);
        r->tf = NULL;
    }
}

/* Past the stored bytes of a relaying fill: straight from its chunk. The
 * fill moves on (outside this call) once every reader has the chunk. */
static ssize_t relay_read(struct creader *r, struct fill *f, const struct iovec *iov, unsigned n)
{
    int64_t end = f->roff + (int64_t)f->rlen;
    size_t got;

    cache_reader_trim(r);
    if (r->pos >= f->roff && r->pos < end) {
        got = tg_iov_copy(iov, n, 0, f->buf + (r->pos - f->roff), (size_t)(end - r->pos));
        r->pos += (int64_t)got;
        r->cb->st.served_bytes += got;
        if (r->pos == end)
            cache_fill_kick(f);
        return (ssize_t)got;
    }
    r->want = true;
    cache_fill_kick(f);
    return TG_EAGAIN;
}

static ssize_t cache_read(struct tg_stream *s, const struct iovec *iov, unsigned n);
static void cache_close(struct tg_stream *s);

/* A committed copy, opened and not read yet: the whole object is in
 * r->fd, which stays open (and the copy safe from eviction, e->readers)
 * until close. */
static int cache_at_rest(struct tg_stream *s)
{
    struct creader *r = (struct creader *)s;

    return r->state == R_OPEN && r->on_copy && !r->fill && !r->tf && r->fd >= 0 &&
           r->pos == 0 && r->blen == 0 ? r->fd : -1;
}

static void cache_served(struct tg_stream *s, uint64_t bytes)
{
    struct creader *r = (struct creader *)s;

    r->cb->st.served_bytes += bytes;
}

/* The cache's own streams only read: writes are the upstream's streams. */
static const struct tg_stream_ops cache_read_ops = {
    .read = cache_read,
    .close = cache_close,
    .at_rest = cache_at_rest,
    .served = cache_served,
};

/* What of [pos, avail) the page cache holds, straight into iov: > 0
 * bytes, or <= 0 when the thread pool has to read (a miss, or the file
 * ended before avail, which that read then reports). Never past avail:
 * beyond it a fill's file may be half written. */
static ssize_t read_cached(struct creader *r, const struct iovec *iov, unsigned n)
{
    return tg_lfs_read_nowait(reader_fd(r), iov, n, r->pos, r->avail - r->pos);
}

/* A miss: the next R_STAGE bytes through the thread pool (READABLE
 * follows from on_read). */
static ssize_t stage_read(struct creader *r)
{
    int64_t left = r->avail - r->pos;
    uv_buf_t b;

    if (!r->buf && !(r->buf = tg_malloc(R_STAGE))) {
        tg_error_set(&r->base.err, TG_TFTP_EUNDEF, "out of memory");
        r->state = R_FAILED;
        return TG_EIO;
    }
    b = uv_buf_init((char *)r->buf, (unsigned)(left < R_STAGE ? left : R_STAGE));
    r->req.data = r;
    if (uv_fs_read(r->cb->base.loop, &r->req, reader_fd(r), &b, 1, r->pos, on_read) != 0) {
        tg_error_set(&r->base.err, TG_TFTP_EUNDEF, "cached copy read failed");
        r->state = R_FAILED;
        return TG_EIO;
    }
    r->reading = true;
    tg_life_hold(&r->life);
    return TG_EAGAIN;
}

/* A small ask (lock-step): the next R_STAGE bytes from the page cache into
 * the staging, so each block does not cost a system call of its own, as
 * backends/file.c reads ahead. > 0 bytes staged, or <= 0 on a miss. */
static ssize_t read_ahead(struct creader *r)
{
    int64_t left = r->avail - r->pos;
    struct iovec v;
    ssize_t got;

    if (!r->buf && !(r->buf = tg_malloc(R_STAGE)))
        return -1;
    v.iov_base = r->buf;
    v.iov_len = left < R_STAGE ? (size_t)left : R_STAGE;
    if ((got = read_cached(r, &v, 1)) > 0) {
        r->boff = 0;
        r->blen = (size_t)got;
        r->pos += got;
    }
    return got;
}

static ssize_t copy_staged(struct creader *r, const struct iovec *iov, unsigned n)
{
    ssize_t got = (ssize_t)tg_iov_copy(iov, n, 0, r->buf + r->boff, r->blen);

    r->boff += (size_t)got;
    r->blen -= (size_t)got;
    r->cb->st.served_bytes += (uint64_t)got;
    return got;
}

static ssize_t cache_read(struct tg_stream *s, const struct iovec *iov, unsigned n)
{
    struct creader *r = (struct creader *)s;
    size_t ask = 0;
    ssize_t got;

    if (r->state == R_FAILED)
        return TG_EIO;
    if (r->state != R_OPEN)
        return TG_EINVAL;
    if (r->blen > 0)
        return copy_staged(r, iov, n);
    if (r->total >= 0 && r->pos >= r->total)
        return 0;
    if (r->fill && r->fill->state == F_RELAYING && r->pos >= r->fill->stored)
        return relay_read(r, r->fill, iov, n);
    for (unsigned i = 0; i < n; i++)
        ask += iov[i].iov_len;
    if (!r->reading && r->pos < r->avail && ask < R_STAGE && read_ahead(r) > 0)
        return copy_staged(r, iov, n);
    if (!r->reading && r->pos < r->avail && (got = read_cached(r, iov, n)) > 0) {
        /* Window-sized asks go straight: no staging kept for them. */
        tg_free(r->buf);
        r->buf = NULL;
        r->pos += got;
        r->cb->st.served_bytes += (uint64_t)got;
        return got;
    }
    r->want = true;
    if (!r->reading && r->pos < r->avail)
        return stage_read(r);
    /* Otherwise the fill has not got further: its progress wakes us. */
    return TG_EAGAIN;
}

static void cache_close(struct tg_stream *s)
{
    struct creader *r = (struct creader *)s;
    struct centry *e = r->e;

    cache_detach(r);
    if (r->on_copy) {
        e->readers--;
        r->on_copy = false;
    }
    e->holders--;
    cache_entry_gc(r->cb, e);
    tg_life_close(&r->life);
}

/* ---- joining a fill ---- */

/* Follow e's fill, starting one when none runs. The reader waits (R_WAIT);
 * a fill already streaming is joined through a fstat of its file, so that
 * OPENED comes from the loop, never from inside open_read. */
int cache_reader_join(struct creader *r)
{
    struct cache_backend *cb = r->cb;
    struct centry *e = r->e;
    struct fill *f;

    if (!e->fill && !cache_fill_start(cb, e, e->present, false, r))
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
        r->tf = cache_tmpf_ref(f->tf);
        r->avail = f->filled;
        r->base.size = f->size;
        if (f->state == F_COMMITTING) {
            /* Every byte is on disk already: read it on our own. */
            cache_detach(r);
            r->total = f->filled;
        }
        r->req.data = r;
        if (uv_fs_fstat(cb->base.loop, &r->req, r->tf->fd, on_follow_stat) != 0) {
            cache_detach(r);
            cache_tmpf_unref(r->tf);
            r->tf = NULL;
            return TG_EIO;
        }
        tg_life_hold(&r->life);
    }
    return 0;
}

/* ---- new streams ---- */

/* A read stream on e, counted in e->holders; NULL when out of memory. */
struct creader *cache_reader_new(struct cache_backend *cb, struct centry *e, tg_stream_cb *fn,
                                 void *arg)
{
    struct creader *r = tg_calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    tg_life_init(&r->life, reader_fin);
    r->base.ops = &cache_read_ops;
    r->base.backend = &cb->base;
    r->base.cb = fn;
    r->base.arg = arg;
    r->base.size = -1;
    r->cb = cb;
    r->e = e;
    r->fd = -1;
    r->total = -1;
    e->holders++;
    return r;
}

/* A stream that never started (open_read failed): no callback ran. */
void cache_reader_drop(struct creader *r)
{
    r->e->holders--;
    tg_free(r->filename);
    tg_free(r->buf);
    tg_free(r);
}

static void not_found_work(uv_work_t *w)
{
    (void)w; /* nothing: the answer only has to come from the loop */
}

static void on_not_found(uv_work_t *w, int status)
{
    struct creader *r = w->data;
    struct tg_error e;

    (void)status;
    if (tg_life_release(&r->life))
        return;
    tg_error_set(&e, TG_TFTP_ENOTFOUND, "file not found");
    cache_reader_fail(r, &e);
}

/* The key has a negative entry: ERROR 1, without asking the upstream.
 * FAILED must not come from inside open_read, so it goes through the
 * thread pool's completion on the loop. */
int cache_reader_not_found(struct creader *r)
{
    r->nwork.data = r;
    if (uv_queue_work(r->cb->base.loop, &r->nwork, not_found_work, on_not_found) != 0)
        return TG_EIO;
    tg_life_hold(&r->life);
    r->state = R_WAIT;
    return 0;
}

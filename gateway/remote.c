/* gateway/remote.c - worker i's stand-in for a backend that runs on worker
 * 0's loop.
 *
 * A cache must be one per process: one index, one fill per key (50 cold
 * requests spread over the workers make one upstream request), one owner
 * of its directory. So worker 0 runs it, and every other worker opens its
 * reads through this stand-in: the open goes to worker 0 as a call
 * (tg_worker_call), worker 0 opens the real stream and pulls its bytes
 * into a staging ring the size of the transfer's window, and the session
 * on worker i reads them out. Each side wakes the other only when the
 * other waits: worker i when it found the ring empty, worker 0 when the
 * ring was full and half of it has come free. Neither ever waits for the
 * other (invariant 1); the ring and the stream are the only things they
 * share, under the stream's mutex.
 *
 * A committed copy needs no ring: worker 0 lends its descriptor (a dup,
 * ops->at_rest) and keeps its stream open, so the copy cannot be evicted,
 * and worker i reads the file in place until it closes.
 *
 * A write goes to worker i's own instance of the cache's upstream, as the
 * cache's own open_write would send it, after worker 0's cache forgot the
 * key (ops->invalidate).
 *
 * Lifetime: the stream is freed by whichever side lets go last. Worker i
 * holds it until close(), worker 0 until it closed the real stream, and
 * each queued call holds it until its function ran. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "remote.h"
#include "tftpgw/keys.h"
#include "tftpgw/localfs.h"
#include "tftpgw/log.h"

#define RING_MIN (16 * 1024)
#define RING_MAX (256 * 1024)

struct remote_backend {
    struct tg_backend base;
    struct tg_worker *home;      /* this worker */
    struct tg_worker *owner;     /* worker 0 */
    struct tg_backend *target;   /* worker 0's backend */
    struct tg_backend *up;       /* this worker's instance of the upstream */
    char *up_name;
};

struct xstream {
    struct tg_stream base;       /* worker i's side */
    struct remote_backend *rb;
    struct tg_call to_owner, to_home;
    /* the request, copied: the session's strings are its own */
    char *key, *filename, *mac;
    char ip[64];
    size_t blksize;
    /* worker 0 only */
    struct tg_stream *up;
    bool open_tried, owner_done;
    /* worker i only */
    bool opened_told, failed_told, home_done;
    /* worker i, a copy at rest (at_rest): read in place from hfd, a page
     * cache miss through worker i's own thread pool into stage */
    int hfd;
    int64_t pos;
    uint8_t *stage;
    size_t soff, slen;
    uint64_t served_home;
    bool reading, want, broken;
    uv_fs_t req;
    /* under mu */
    uv_mutex_t mu;
    int refs;
    bool q_owner, q_home;        /* a call is queued */
    bool closed;                 /* worker i closed its side */
    bool opened, failed, eof;
    bool waiting;                /* worker i found the ring empty */
    bool full;                   /* worker 0 stopped pulling: the ring was full */
    int fd;                      /* worker 0's dup of the copy at rest, or -1 */
    bool lent;                   /* a copy at rest: worker 0 never pulls */
    uint64_t served;             /* bytes worker i read in place */
    int64_t size;
    struct tg_error err;
    uint8_t *ring;
    size_t cap, head, len;
};

static void xs_unref(struct xstream *xs)
{
    bool last;

    uv_mutex_lock(&xs->mu);
    last = --xs->refs == 0;
    uv_mutex_unlock(&xs->mu);
    if (!last)
        return;
    /* A lent descriptor nobody closed: worker 0 had closed before it
     * heard of worker i's close (shutdown). */
    if (xs->fd >= 0)
        close(xs->fd);
    uv_mutex_destroy(&xs->mu);
    tg_free(xs->ring);
    tg_free(xs->stage);
    tg_free(xs->key);
    tg_free(xs->filename);
    tg_free(xs->mac);
    tg_free(xs);
}

/* Queue xs's call to one side unless one is queued already (it will see
 * the new state when it runs). False when that side has closed. */
static bool xs_post(struct xstream *xs, bool to_owner)
{
    bool *queued = to_owner ? &xs->q_owner : &xs->q_home;
    struct tg_call *c = to_owner ? &xs->to_owner : &xs->to_home;
    struct tg_worker *w = to_owner ? xs->rb->owner : xs->rb->home;

    uv_mutex_lock(&xs->mu);
    if (*queued || (!to_owner && xs->closed)) {
        uv_mutex_unlock(&xs->mu);
        return true;
    }
    *queued = true;
    xs->refs++;
    uv_mutex_unlock(&xs->mu);
    if (tg_worker_call(w, c))
        return true;
    /* That worker has closed: nobody will run the call. */
    uv_mutex_lock(&xs->mu);
    *queued = false;
    uv_mutex_unlock(&xs->mu);
    xs_unref(xs);
    return false;
}

/* ---- worker 0's side ---- */

static void owner_set_failed(struct xstream *xs, const struct tg_error *e)
{
    uv_mutex_lock(&xs->mu);
    if (!xs->failed) {
        xs->failed = true;
        xs->err = *e;
    }
    uv_mutex_unlock(&xs->mu);
    xs_post(xs, false);
}

/* Bring the real stream's bytes into the free part of the ring. Worker i
 * only reads [head, head + len), so the free part is written outside the
 * lock. */
static void owner_pull(struct xstream *xs)
{
    bool wake = false;

    for (;;) {
        size_t tail, room;
        ssize_t n;

        uv_mutex_lock(&xs->mu);
        if (xs->closed || xs->eof || xs->failed || !xs->opened || xs->lent) {
            uv_mutex_unlock(&xs->mu);
            break;
        }
        /* No ring before the session's first read (invariant 2): its
         * first read makes it and asks for bytes. */
        if (!xs->ring || xs->len == xs->cap) {
            xs->full = true;
            uv_mutex_unlock(&xs->mu);
            break;
        }
        tail = (xs->head + xs->len) % xs->cap;
        room = tail >= xs->head ? xs->cap - tail : xs->head - tail;
        if (room > xs->cap - xs->len)
            room = xs->cap - xs->len;
        uv_mutex_unlock(&xs->mu);
        n = tg_stream_read1(xs->up, xs->ring + tail, room);
        if (n == TG_EAGAIN)
            break; /* READABLE follows */
        uv_mutex_lock(&xs->mu);
        if (n > 0)
            xs->len += (size_t)n;
        else if (n == 0)
            xs->eof = true;
        else {
            xs->failed = true;
            xs->err = xs->up->err;
        }
        wake |= xs->waiting;
        uv_mutex_unlock(&xs->mu);
        if (n <= 0)
            break;
    }
    if (wake)
        xs_post(xs, false);
}

static void owner_cb(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct xstream *xs = arg;

    (void)s;
    if (ev == TG_STREAM_OPENED) {
        int fd = xs->up->ops->at_rest ? xs->up->ops->at_rest(xs->up) : -1;

        /* A copy at rest is read in place by worker i: worker 0 keeps the
         * stream open (the copy is safe from eviction) and copies nothing. */
        if (fd >= 0)
            fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        uv_mutex_lock(&xs->mu);
        xs->opened = true;
        xs->size = xs->up->size;
        xs->fd = fd;
        xs->lent = fd >= 0;
        uv_mutex_unlock(&xs->mu);
        xs_post(xs, false);
        if (fd < 0)
            owner_pull(xs);
    } else if (ev == TG_STREAM_READABLE) {
        owner_pull(xs);
    } else if (ev == TG_STREAM_FAILED) {
        owner_set_failed(xs, &xs->up->err);
    }
}

static void owner_open(struct xstream *xs)
{
    struct tg_backend *t = xs->rb->target;
    struct tg_open_args a = {
        .key = xs->key, .client_ip = xs->ip, .client_mac = xs->mac, .filename = xs->filename,
        .size_hint = -1, .blksize = xs->blksize, .window = xs->cap,
    };
    struct tg_error e;

    xs->open_tried = true;
    if (t->ops->open_read(t, &a, owner_cb, xs, &xs->up) != 0) {
        xs->up = NULL;
        tg_error_set(&e, TG_TFTP_EUNDEF, "storage unavailable");
        owner_set_failed(xs, &e);
    }
}

static void on_owner_call(struct tg_call *c)
{
    struct xstream *xs = tg_container_of(c, struct xstream, to_owner);
    bool closed;

    uv_mutex_lock(&xs->mu);
    xs->q_owner = false;
    closed = xs->closed;
    uv_mutex_unlock(&xs->mu);
    if (closed && !xs->owner_done) {
        int fd;

        xs->owner_done = true;
        /* A lent descriptor worker i never took: closed off the loop, as
         * the copy may have been evicted once the stream below lets go. */
        uv_mutex_lock(&xs->mu);
        fd = xs->fd;
        xs->fd = -1;
        uv_mutex_unlock(&xs->mu);
        if (fd >= 0)
            tg_lfs_close_async(xs->rb->target->loop, fd);
        if (xs->up && xs->served && xs->up->ops->served)
            xs->up->ops->served(xs->up, xs->served);
        if (xs->up)
            tg_stream_close(xs->up);
        xs->up = NULL;
        xs_unref(xs); /* worker 0's own hold */
    } else if (!closed && !xs->open_tried) {
        owner_open(xs);
    } else if (!closed && xs->up) {
        owner_pull(xs);
    }
    xs_unref(xs); /* the call's */
}

/* ---- worker i's side ---- */

static void on_home_call(struct tg_call *c)
{
    struct xstream *xs = tg_container_of(c, struct xstream, to_home);
    bool opened, failed, ready;

    uv_mutex_lock(&xs->mu);
    xs->q_home = false;
    opened = xs->opened;
    failed = xs->failed;
    ready = xs->waiting && (xs->len > 0 || xs->eof || xs->failed);
    if (ready)
        xs->waiting = false;
    if (opened && !xs->opened_told && !xs->home_done) {
        xs->base.size = xs->size;
        xs->hfd = xs->fd;
        xs->fd = -1; /* worker i's now */
    }
    uv_mutex_unlock(&xs->mu);
    if (xs->home_done) {
        xs_unref(xs);
        return;
    }
    /* Nothing left from the call once a callback ran: the session may
     * have closed the stream inside it. The ref keeps xs alive. */
    if (opened && !xs->opened_told) {
        xs->opened_told = true;
        xs->base.cb(&xs->base, TG_STREAM_OPENED, xs->base.arg);
    } else if (failed && !opened && !xs->failed_told) {
        /* A failure after OPENED is told by read(), after the bytes
         * before it. */
        xs->failed_told = true;
        xs->base.err = xs->err;
        xs->base.cb(&xs->base, TG_STREAM_FAILED, xs->base.arg);
    } else if (ready && xs->opened_told) {
        xs->base.cb(&xs->base, TG_STREAM_READABLE, xs->base.arg);
    }
    xs_unref(xs);
}

static void on_home_read(uv_fs_t *req)
{
    struct xstream *xs = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    xs->reading = false;
    if (xs->home_done) {
        tg_lfs_close_async(xs->rb->base.loop, xs->hfd);
        xs->hfd = -1;
    } else {
        if (n <= 0)
            xs->broken = true;
        xs->soff = 0;
        xs->slen = n > 0 ? (size_t)n : 0;
        xs->pos += n > 0 ? n : 0;
        if (xs->want) {
            xs->want = false;
            xs->base.cb(&xs->base, TG_STREAM_READABLE, xs->base.arg);
        }
    }
    xs_unref(xs);
}

/* What of the copy the page cache holds, straight into iov; <= 0 when
 * the thread pool has to read it. */
static ssize_t read_nowait(struct xstream *xs, const struct iovec *iov, unsigned n)
{
    return tg_lfs_read_nowait(xs->hfd, iov, n, xs->pos, xs->base.size - xs->pos);
}

/* A copy at rest, on worker i alone: worker 0 is not involved again until
 * close. */
static ssize_t read_in_place(struct xstream *xs, const struct iovec *iov, unsigned n)
{
    int64_t left = xs->base.size - xs->pos;
    size_t ask = 0;
    ssize_t got;
    uv_buf_t b;

    if (xs->slen > 0) {
        got = (ssize_t)tg_iov_copy(iov, n, 0, xs->stage + xs->soff, xs->slen);
        xs->soff += (size_t)got;
        xs->slen -= (size_t)got;
        xs->served_home += (uint64_t)got;
        return got;
    }
    if (xs->broken) {
        tg_error_set(&xs->base.err, TG_TFTP_EUNDEF, "cached copy read failed");
        return TG_EIO;
    }
    if (left <= 0)
        return 0;
    xs->want = true;
    if (xs->reading)
        return TG_EAGAIN;
    for (unsigned i = 0; i < n; i++)
        ask += iov[i].iov_len;
    if (ask < xs->cap && (xs->stage || (xs->stage = tg_malloc(xs->cap)))) {
        /* A small ask (lock-step): read ahead into the staging, so each
         * block does not cost a system call of its own. */
        struct iovec v = {xs->stage, left < (int64_t)xs->cap ? (size_t)left : xs->cap};

        if ((got = read_nowait(xs, &v, 1)) > 0) {
            xs->want = false;
            xs->soff = 0;
            xs->slen = (size_t)got;
            xs->pos += got;
            return read_in_place(xs, iov, n);
        }
    }
    if ((got = read_nowait(xs, iov, n)) > 0) {
        xs->want = false;
        xs->pos += got;
        xs->served_home += (uint64_t)got;
        return got;
    }
    if (!xs->stage && !(xs->stage = tg_malloc(xs->cap))) {
        tg_error_set(&xs->base.err, TG_TFTP_EUNDEF, "out of memory");
        return TG_ENOMEM;
    }
    b = uv_buf_init((char *)xs->stage, (unsigned)(left < (int64_t)xs->cap ? left : (int64_t)xs->cap));
    xs->req.data = xs;
    if (uv_fs_read(xs->rb->base.loop, &xs->req, xs->hfd, &b, 1, xs->pos, on_home_read) != 0) {
        tg_error_set(&xs->base.err, TG_TFTP_EUNDEF, "cached copy read failed");
        return TG_EIO;
    }
    xs->reading = true;
    uv_mutex_lock(&xs->mu);
    xs->refs++; /* the read's, until on_home_read */
    uv_mutex_unlock(&xs->mu);
    return TG_EAGAIN;
}

static ssize_t xs_read(struct tg_stream *s, const struct iovec *iov, unsigned n)
{
    struct xstream *xs = (struct xstream *)s;
    size_t want = 0, got = 0;
    bool kick = false;
    ssize_t rc;

    if (xs->hfd >= 0)
        return read_in_place(xs, iov, n);
    for (unsigned i = 0; i < n; i++)
        want += iov[i].iov_len;
    uv_mutex_lock(&xs->mu);
    if (!xs->ring && !(xs->ring = tg_malloc(xs->cap))) {
        uv_mutex_unlock(&xs->mu);
        tg_error_set(&xs->base.err, TG_TFTP_EUNDEF, "out of memory");
        return TG_ENOMEM;
    }
    while (got < want && xs->len > 0) {
        size_t seg = xs->cap - xs->head < xs->len ? xs->cap - xs->head : xs->len;
        size_t m = tg_iov_copy(iov, n, got, xs->ring + xs->head, seg);

        got += m;
        xs->head = (xs->head + m) % xs->cap;
        xs->len -= m;
        if (m < seg)
            break;
    }
    if (xs->full && xs->len <= xs->cap / 2) {
        xs->full = false;
        kick = true;
    }
    if (got > 0) {
        rc = (ssize_t)got;
    } else if (xs->failed) {
        xs->base.err = xs->err;
        rc = TG_EIO;
    } else if (xs->eof) {
        rc = 0;
    } else {
        xs->waiting = true;
        rc = TG_EAGAIN;
    }
    uv_mutex_unlock(&xs->mu);
    if (kick)
        xs_post(xs, true);
    return rc;
}

static void xs_close(struct tg_stream *s)
{
    struct xstream *xs = (struct xstream *)s;

    xs->home_done = true;
    if (xs->hfd >= 0 && !xs->reading) {
        tg_lfs_close_async(xs->rb->base.loop, xs->hfd);
        xs->hfd = -1;
    }
    uv_mutex_lock(&xs->mu);
    xs->closed = true;
    xs->served = xs->served_home;
    uv_mutex_unlock(&xs->mu);
    xs_post(xs, true);
    xs_unref(xs); /* worker i's hold */
}

static const struct tg_stream_ops xs_ops = {.read = xs_read, .close = xs_close};

static size_t ring_size(const struct tg_open_args *a)
{
    size_t w = a->window ? a->window : a->blksize;

    return w < RING_MIN ? RING_MIN : w > RING_MAX ? RING_MAX : w;
}

static int remote_open_read(struct tg_backend *b, const struct tg_open_args *a,
                            tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct remote_backend *rb = (struct remote_backend *)b;
    struct xstream *xs = tg_calloc(1, sizeof(*xs));

    if (!xs)
        return TG_ENOMEM;
    xs->cap = ring_size(a);
    xs->key = tg_strdup(a->key);
    xs->filename = tg_strdup(a->filename ? a->filename : a->key);
    xs->mac = a->client_mac ? tg_strdup(a->client_mac) : NULL;
    uv_mutex_init(&xs->mu);
    xs->refs = 1; /* worker i's; worker 0's is taken when it has the call */
    if (!xs->key || !xs->filename || (a->client_mac && !xs->mac)) {
        xs_unref(xs);
        return TG_ENOMEM;
    }
    snprintf(xs->ip, sizeof(xs->ip), "%s", a->client_ip ? a->client_ip : "");
    xs->blksize = a->blksize;
    xs->base.ops = &xs_ops;
    xs->base.backend = b;
    xs->base.cb = cb;
    xs->base.arg = arg;
    xs->base.size = -1;
    xs->fd = xs->hfd = -1;
    xs->rb = rb;
    xs->to_owner.fn = on_owner_call;
    xs->to_home.fn = on_home_call;
    xs->refs++; /* worker 0's, before it can run the call */
    if (!xs_post(xs, true)) {
        /* Worker 0 has closed: the gateway is shutting down. */
        xs->refs = 1;
        xs_unref(xs);
        return TG_EIO;
    }
    *out = &xs->base;
    return 0;
}

/* ---- writes and the backend ---- */

struct forget {
    struct tg_call call;
    struct tg_backend *target;
    char key[];
};

static void on_forget(struct tg_call *c)
{
    struct forget *f = tg_container_of(c, struct forget, call);

    f->target->ops->invalidate(f->target, f->key);
    tg_free(f);
}

static int remote_open_write(struct tg_backend *b, const struct tg_open_args *a,
                             tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct remote_backend *rb = (struct remote_backend *)b;
    size_t kl = strlen(a->key) + 1;
    struct forget *f;

    if (!rb->up)
        return TG_EINVAL;
    if (rb->target->ops->invalidate) {
        if (!(f = tg_malloc(sizeof(*f) + kl)))
            return TG_ENOMEM;
        f->call.fn = on_forget;
        f->target = rb->target;
        memcpy(f->key, a->key, kl);
        if (!tg_worker_call(rb->owner, &f->call)) {
            tg_free(f);
            return TG_EIO;
        }
    }
    return rb->up->ops->open_write(rb->up, a, cb, arg, out);
}

static int remote_link(struct tg_backend *b, struct tg_backend *(*find)(void *ctx, const char *name),
                       void *ctx, char *err, size_t errlen)
{
    struct remote_backend *rb = (struct remote_backend *)b;

    if (!rb->up_name)
        return 0;
    if (!(rb->up = find(ctx, rb->up_name))) {
        snprintf(err, errlen, "upstream: no backend named \"%s\"", rb->up_name);
        return TG_EINVAL;
    }
    return 0;
}

static void remote_destroy(struct tg_backend *b)
{
    struct remote_backend *rb = (struct remote_backend *)b;

    tg_free(rb->up_name);
    tg_free(b->name);
    tg_free(rb);
}

/* Not in TG_BACKEND_TYPES: built only by gateway/server.c, for workers. */
static const struct tg_backend_ops remote_ops = {
    .type = "remote",
    .destroy = remote_destroy,
    .open_read = remote_open_read,
    .open_write = remote_open_write,
    /* A link op: a reload keeps the stand-in only when it keeps every
     * backend, as worker 0 then keeps the cache it stands for. */
    .link = remote_link,
};

int tg_remote_create(struct tg_worker *w, struct tg_backend *target,
                     const struct tg_backend_cfg *cfg, struct tg_backend **out, char *err,
                     size_t errlen)
{
    const struct tg_kv *up = tg_config_kv(cfg, "upstream");
    struct remote_backend *rb;

    if (!target) {
        snprintf(err, errlen, "worker 0 runs no backend \"%s\" to stand in for", cfg->name);
        return TG_EINVAL;
    }
    if (!(rb = tg_calloc(1, sizeof(*rb))) || !(rb->base.name = tg_strdup(cfg->name)) ||
        (up && !(rb->up_name = tg_strdup(up->value)))) {
        if (rb)
            remote_destroy(&rb->base);
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    rb->base.ops = &remote_ops;
    rb->base.loop = &w->loop;
    rb->home = w;
    rb->owner = &w->all->w[0];
    rb->target = target;
    *out = &rb->base;
    return 0;
}

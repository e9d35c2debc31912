/* backends/cache_fill.c - the cache's fills: one upstream fetch per key,
 * written into a temporary file in the cache directory (gateway/localfs.c)
 * one chunk at a time on the thread pool, each chunk counted against
 * max_size and checked against min_free first. A complete fill with a
 * proven end is fsynced and published as <hash>.data, then its .meta; a
 * fill that cannot store any more relays the rest of the body to its
 * readers through one chunk; a fill nobody follows is cancelled after
 * fill_grace. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache.h"
#include "tftpgw/cachectl.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"

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

struct tmpf *cache_tmpf_ref(struct tmpf *t)
{
    t->refs++;
    return t;
}

void cache_tmpf_unref(struct tmpf *t)
{
    struct cache_backend *cb;

    if (!t || --t->refs > 0)
        return;
    cb = t->cb;
    cb->filling -= t->charged;
    tg_lfs_close_async(cb->base.loop, t->fd);
    if (t->pin) {
        t->pin->pins--;
        cache_entry_gc(cb, t->pin);
    }
    tg_free(t);
}

/* ---- disk budget of a fill ---- */

/* Count a fill's next bytes against max_size (cache_budget_take). A fill
 * that replaces changed content may drop the old version first, when
 * nobody reads it and that makes room: otherwise a file above half of
 * max_size could never be refreshed. Its files are removed by the fill's
 * next write, on the same chain of work as the commit that will take
 * their names. */
static bool fill_budget(struct fill *f, int64_t bytes)
{
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;
    int64_t over = cb->total + cb->filling + bytes - cb->max_size;

    if (cache_budget_take(cb, f->tf, bytes))
        return true;
    if (!f->reval || !e->present || e->readers > 0 || e->pins > 0 ||
        bytes > cb->max_size - cb->filling || cache_evictable(cb) + e->size < over)
        return false;
    e->present = false;
    cb->total -= e->size;
    f->unlink_old = true;
    tg_log(TG_LOG_INFO, "cache %s: dropped the outdated copy of %s (%lld bytes) to make room "
                        "for its new content", cb->base.name, e->key, (long long)e->size);
    return cache_budget_take(cb, f->tf, bytes);
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

        cache_detach(r);
        if (r->tf && f->state == F_DONE) {
            r->avail = r->total = f->filled;
            if (r->state == R_OPEN && r->want && !r->reading && r->blen == 0) {
                r->want = false;
                cache_reader_notify(r, TG_STREAM_READABLE);
            }
        } else if (r->state != R_FAILED) {
            cache_reader_fail(r, &f->err);
        }
    }
    cache_tmpf_unref(f->tf);
    f->tf = NULL;
    if (f->e->fill == f)
        f->e->fill = NULL;
    f->e->holders--;
    cache_entry_gc(cb, f->e);
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_fill_closed);
}

/* The fill ends without a copy: upstream closed, every reader told (or
 * served a stale copy), the file let go of. */
static void fill_stop(struct fill *f, const struct tg_error *err)
{
    struct cache_backend *cb = f->cb;
    struct centry *e = f->e;
    uint64_t age = cache_wall_ms() - e->fetched_ms;
    struct creader *r, *next;

    /* err may live in the upstream stream closed below: keep a copy. */
    f->err = *err;
    err = &f->err;
    f->state = F_FAILED;
    if (f->unlink_old && !f->writing) {
        f->unlink_old = false; /* no write will come to remove it */
        cache_unlink_copy(cb, e->name);
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
    /* Not found is remembered for negative_ttl; nothing else is (a 5xx or
     * a timeout says nothing about the object). A write since the fill
     * began may have created it. */
    if (err->code == TG_TFTP_ENOTFOUND && !f->orphan)
        cache_neg_add(cb, e->key);
    for (r = f->readers; r; r = next) {
        next = r->next;
        cache_detach(r);
        if (r->state == R_FAILED)
            continue;
        /* Not started yet and a copy recent enough: serve it stale. */
        if (r->state == R_WAIT && !r->tf && !tg_life_busy(&r->life) && e->present &&
            err->code == TG_TFTP_EUNDEF && age <= e->fresh_ms + cb->stale_ms) {
            cb->st.stale++;
            tg_metrics_cache_event(cb->base.name, "stale");
            r->stale = true;
            tg_log(TG_LOG_WARN, "cache %s: serving stale copy of %s (age %llu s): upstream "
                                "failed", cb->base.name, e->key, (unsigned long long)(age / 1000));
            if (cache_open_copy(r) == 0)
                continue;
        }
        cache_reader_fail(r, err);
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
            cache_detach(r); /* every byte is on disk: on its own from here */
        if (r->state != R_OPEN)
            continue;
        if (r->want && !r->reading && r->blen == 0 &&
            (r->pos < r->avail || (r->total >= 0 && r->pos >= r->total))) {
            r->want = false;
            cache_reader_notify(r, TG_STREAM_READABLE);
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
                 "tftpgw-cache 1\nsize %lld\nfetched %llu\nfresh %llu\netag %s\nlastmod %s\n"
                 "key %s\n",
                 (long long)f->filled, (unsigned long long)cache_wall_ms(),
                 (unsigned long long)f->fresh_ms,
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
        e->fetched_ms = f->orphan ? 0 : cache_wall_ms();
        e->fresh_ms = f->fresh_ms;
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
    cache_evict(cb);
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
void cache_fill_kick(struct fill *f)
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
    cache_tmpf_unref(f->tf);
    f->tf = NULL;
    for (r = f->readers; r; r = r->next) {
        r->avail = f->stored;
        cache_reader_trim(r);
    }
    cache_fill_kick(f);
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
            cache_reader_notify(r, TG_STREAM_READABLE);
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
    n = tg_stream_read1(f->up, f->buf, CHUNK);
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
            cache_detach(r);
            if (r->state == R_OPEN && r->want) {
                r->want = false;
                cache_reader_notify(r, TG_STREAM_READABLE);
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
            cache_reader_notify(r, TG_STREAM_READABLE);
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
void cache_fill_unfollowed(struct fill *f)
{
    if (f->life.closed)
        return;
    if (f->state == F_RELAYING)
        cache_fill_kick(f);
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
    n = tg_stream_read1(f->up, f->buf, CHUNK);
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
    if (f->no_keep) {
        /* Nothing of it touches the disk: relayed through one chunk. */
        start_relay(f, false);
    } else if (f->size >= 0 && !fill_budget(f, f->size)) {
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
            cache_follow(r, f);
    }
    fill_pump(f);
}

/* The answer may be relayed, never kept (no-store, private, a Vary the
 * cache cannot honour). It is not reusable (RFC 9111 section 4), so only
 * the request it answers gets it: readers that joined the fetch while it
 * was on its way each send their own, and so does every later one. */
static void fill_not_kept(struct fill *f)
{
    struct cache_backend *cb = f->cb;
    struct creader *r, *next;

    tg_log(TG_LOG_DEBUG, "cache %s: %s not stored: %s; relayed only", cb->base.name, f->e->key,
           f->no_keep);
    cb->st.not_stored++;
    tg_metrics_cache_event(cb->base.name, "not_stored");
    if (f->e->fill == f)
        f->e->fill = NULL;
    for (r = f->readers; r; r = next) {
        next = r->next;
        if (r == f->starter || r->state != R_WAIT || r->tf || tg_life_busy(&r->life))
            continue;
        cache_detach(r);
        if (cache_reader_join(r) != 0) {
            struct tg_error err;

            tg_error_set(&err, TG_TFTP_EUNDEF, "cache fetch failed");
            cache_reader_fail(r, &err);
        }
    }
}

static void on_upstream(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct fill *f = arg;
    struct centry *e = f->e;
    struct cache_backend *cb = f->cb;

    switch (ev) {
    case TG_STREAM_OPENED:
        if (f->up->http && f->up->http->not_modified) {
            struct creader *r, *next;

            /* 304: the copy is good for another lifetime, the one the
             * 304 gives when it gives one (RFC 9111 section 4.3.4); its
             * .meta keeps the old time, so a restart revalidates once
             * more (harmless). */
            e->fetched_ms = cache_wall_ms();
            if (cb->ttl_override || tg_cc_fresh_ms(&f->up->http->cc, (int64_t)(e->fetched_ms /
                                                                              1000)) >= 0)
                e->fresh_ms = cache_fresh_ms(cb, f->up->http);
            tg_stream_close(f->up);
            f->up = NULL;
            f->state = F_DONE;
            e->fill = NULL;
            for (r = f->readers; r; r = next) {
                next = r->next;
                cache_detach(r);
                if (!e->present || cache_open_copy(r) != 0) {
                    struct tg_error err;

                    tg_error_set(&err, TG_TFTP_EUNDEF, "cached copy vanished");
                    cache_reader_fail(r, &err);
                }
            }
            tg_life_close(&f->life);
            return;
        }
        f->up_opened = true;
        f->size = f->up->size;
        if (f->up->http)
            f->val = f->up->http->val;
        f->fresh_ms = cache_fresh_ms(cb, f->up->http);
        if (f->up->http && (f->no_keep = tg_cc_unstorable(&f->up->http->cc,
                                                          f->up->http->client_headers)))
            fill_not_kept(f);
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

struct fill *cache_fill_start(struct cache_backend *cb, struct centry *e, bool reval,
                               bool prefetch, struct creader *by)
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
    /* The headers a direct request would carry (X-TFTP-Client, X-TFTP-File):
     * the request that starts the fill; none for a prefetch. */
    a.filename = by ? by->filename : e->key;
    a.client_ip = by ? by->client_ip : "";
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
    f->starter = by;
    e->fill = f;
    e->holders++;
    return f;
}

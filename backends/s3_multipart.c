/* backends/s3_multipart.c - S3 uploads without a size. They cannot be a
 * chunked PUT (S3 refuses those): they are spooled to a temporary file
 * that has no name (gateway/localfs.c) and sent as a multipart upload, a
 * part as soon as it fills, and completed after the last block; the disk
 * behind uploaded parts is released at once. An upload smaller than one
 * part becomes a single PUT from the spool. The client's final ACK waits
 * for S3's success; a close before it aborts the upload. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3.h"
#include "tftpgw/localfs.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/uri.h"

#define CHUNK (64 * 1024)

/* ---- multipart upload from a spool file ---- */

enum mp_state {
    MP_PROBING,  /* create mode: HEAD */
    MP_SPOOLOPEN,
    MP_OPEN,     /* taking data */
    MP_COMMITTING,
    MP_COMMITTED,
    MP_FAILED
};

struct s3mp {
    struct tg_stream base;
    struct s3_backend *sb;
    char *key;
    char url[3 * TG_PATH_MAX + 2048];
    char client_mac[TG_MAC_STRLEN]; /* each part says which device, as a PUT would */
    bool create;
    enum mp_state state;
    struct tg_life life;  /* held by fs requests, work, calls, the part, callbacks */
    bool want;            /* the session waits for WRITABLE */
    bool in_call;         /* inside push/commit: no callbacks now */
    size_t blk;

    int fd;               /* the spool file: anonymous, or unlinked at once */
    struct tg_lfs_tmp_req spool;
    /* Staging of pushed data: `fill` collects, `flush` is being written. */
    uint8_t *fill, *flush;
    size_t fill_len, flush_len, cap;
    bool writing;
    uv_fs_t write_req;
    int64_t spooled;      /* bytes on the spool file */
    int64_t on_disk;      /* of those, not yet released by hole punching */

    char upload_id[512];  /* "" until initiated */
    struct s3call *call;  /* initiate, complete */
    struct tg_stream *part; /* the part (or single PUT) in flight */
    int part_no;
    int64_t part_off, part_len, part_fed;
    uint8_t *rbuf;
    uv_fs_t read_req;
    bool reading, part_ready;
    size_t rbuf_len, rbuf_off;
    uv_work_t punch_req;
    int64_t punch_off, punch_len, punched_to;
    int punch_rc;
    bool punching;
    bool single;          /* the whole object goes up as one PUT */
    char *xml;            /* CompleteMultipartUpload body being built */
    size_t xml_len, xml_cap;
};

static void mp_step(struct s3mp *mp);
static int mp_push(struct tg_stream *s, const uint8_t *src, size_t len);
static int mp_commit(struct tg_stream *s);
static void mp_close(struct tg_stream *s);

/* A multipart upload is a write stream of its own. */
static const struct tg_stream_ops s3mp_ops = {
    .push = mp_push,
    .commit = mp_commit,
    .close = mp_close,
};

static void mp_fin(struct tg_life *l)
{
    struct s3mp *mp = tg_container_of(l, struct s3mp, life);

    if (mp->fd >= 0)
        tg_lfs_close_async(mp->base.backend->loop, mp->fd);
    mp->sb->spool_used -= mp->on_disk;
    tg_free(mp->key);
    tg_free(mp->fill);
    tg_free(mp->flush);
    tg_free(mp->rbuf);
    tg_free(mp->xml);
    tg_free(mp);
}

static void mp_notify(struct s3mp *mp, enum tg_stream_ev ev)
{
    /* Inside push/commit the result goes back as a return code instead
     * (backend.h: no callback inside the call that caused it). */
    if (!mp->life.closed && !mp->in_call)
        mp->base.cb(&mp->base, ev, mp->base.arg);
}

/* The session waits for room: room in staging and the spool at most two
 * parts ahead of S3. */
static bool has_room(const struct s3mp *mp)
{
    return mp->fill_len + mp->blk <= mp->cap &&
           mp->spooled + (int64_t)mp->flush_len - mp->part_off <= 2 * mp->sb->part_size;
}

static void maybe_writable(struct s3mp *mp)
{
    if (mp->want && mp->state == MP_OPEN && !mp->in_call && has_room(mp)) {
        mp->want = false;
        mp_notify(mp, TG_STREAM_WRITABLE);
    }
}

static void mp_fail(struct s3mp *mp, uint16_t code, const char *fmt, ...) TG_PRINTF(3, 4);

static void mp_fail(struct s3mp *mp, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    if (mp->state == MP_FAILED || mp->state == MP_COMMITTED)
        return;
    mp->base.err.code = code;
    va_start(ap, fmt);
    vsnprintf(mp->base.err.msg, sizeof(mp->base.err.msg), fmt, ap);
    va_end(ap);
    mp->state = MP_FAILED;
    mp_notify(mp, TG_STREAM_FAILED);
}

/* Map into a copy: formatting err.msg into itself is undefined. */
static void mp_fail_s3(struct s3mp *mp, long status, const char *body)
{
    struct tg_error e;

    s3_map_error(&e, status, body);
    mp_fail(mp, e.code, "%s", e.msg);
}

/* A multipart control request failed: the client gets a generic text, the
 * log the detail (curl's error, or the status with S3's code and message,
 * or why a redirect was not followed). */
static void mp_call_failed(struct s3mp *mp, const struct s3call *c, const char *what)
{
    char detail[512];

    if (c->rc != CURLE_OK) {
        snprintf(detail, sizeof(detail), "%s: curl %d (%s): %s", what, (int)c->rc,
                 curl_easy_strerror(c->rc), c->errbuf[0] ? c->errbuf : "no detail");
    } else if (c->status >= 300 && c->status < 400) {
        snprintf(detail, sizeof(detail), "%s: HTTP %ld refused: %s", what, c->status, c->why);
    } else {
        char d[320];

        s3_detail(c->status, c->resp, d, sizeof(d));
        snprintf(detail, sizeof(detail), "%s: %s", what, d);
    }
    hx_log_failure(mp->sb->base.name, c->method, c->hop_url ? c->hop_url : c->url, NULL, NULL,
                   detail);
    if (c->rc != CURLE_OK)
        mp_fail(mp, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE);
    else
        mp_fail_s3(mp, c->status, c->resp);
}

static void on_spool_written(uv_fs_t *req)
{
    struct s3mp *mp = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    mp->writing = false;
    /* The request's hold covers this callback: the session may close us. */
    if (!mp->life.closed) {
        if (n < 0 || (size_t)n != mp->flush_len) {
            /* The spool's path and errno are ours to know, not the client's. */
            tg_log(TG_LOG_WARN, "backend %s: spool write in %s failed: %s", mp->sb->base.name,
                   mp->sb->spool_dir, n < 0 ? uv_strerror((int)n) : "short write");
            mp_fail(mp, n == UV_ENOSPC ? TG_TFTP_ENOSPACE : TG_TFTP_EUNDEF,
                    "spool write failed");
        } else {
            mp->spooled += n;
            mp->flush_len = 0;
            mp_step(mp);
        }
    }
    tg_life_release(&mp->life);
}

static void start_flush(struct s3mp *mp)
{
    uint8_t *t;
    uv_buf_t b;

    if (mp->writing || mp->fill_len == 0 || mp->fd < 0)
        return;
    t = mp->flush;
    mp->flush = mp->fill;
    mp->fill = t;
    mp->flush_len = mp->fill_len;
    mp->fill_len = 0;
    b = uv_buf_init((char *)mp->flush, (unsigned)mp->flush_len);
    mp->write_req.data = mp;
    if (uv_fs_write(mp->base.backend->loop, &mp->write_req, mp->fd, &b, 1, mp->spooled,
                    on_spool_written) == 0) {
        mp->writing = true;
        tg_life_hold(&mp->life);
    } else {
        mp_fail(mp, TG_TFTP_EUNDEF, "spool write failed");
    }
    maybe_writable(mp);
}

/* Release disk behind parts already uploaded, so one upload never holds
 * more than a couple of parts on the spool. */
static void punch_work(uv_work_t *w)
{
    struct s3mp *mp = w->data;

    mp->punch_rc = fallocate(mp->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             mp->punch_off, mp->punch_len);
}

static void punch_after(uv_work_t *w, int status)
{
    struct s3mp *mp = w->data;

    mp->punching = false;
    /* A filesystem without hole punching keeps the bytes until close. */
    if (status == 0 && mp->punch_rc == 0) {
        mp->on_disk -= mp->punch_len;
        mp->sb->spool_used -= mp->punch_len;
    }
    mp->punched_to = mp->punch_off + mp->punch_len;
    if (!mp->life.closed)
        mp_step(mp);
    tg_life_release(&mp->life);
}

static void feed_part(struct s3mp *mp);

static void on_spool_read(uv_fs_t *req)
{
    struct s3mp *mp = req->data;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    mp->reading = false;
    if (!mp->life.closed) {
        if (n <= 0) {
            mp_fail(mp, TG_TFTP_EUNDEF, "spool read failed");
        } else {
            mp->rbuf_len = (size_t)n;
            mp->rbuf_off = 0;
            feed_part(mp);
        }
    }
    tg_life_release(&mp->life);
}

/* Move spool bytes into the part's PUT: read a chunk, push it, repeat. */
static void feed_part(struct s3mp *mp)
{
    while (mp->part && mp->part_ready && !mp->reading && mp->state != MP_FAILED) {
        if (mp->rbuf_off < mp->rbuf_len) {
            int rc = hx_push(mp->part, mp->rbuf + mp->rbuf_off, mp->rbuf_len - mp->rbuf_off);

            if (rc == TG_EAGAIN)
                return; /* WRITABLE from the part resumes us */
            if (rc < 0) {
                mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload failed");
                return;
            }
            mp->part_fed += (int64_t)(mp->rbuf_len - mp->rbuf_off);
            mp->rbuf_off = mp->rbuf_len;
            continue;
        }
        if (mp->part_fed == mp->part_len) {
            mp->part_ready = false; /* all in: wait for COMMITTED */
            if (hx_commit(mp->part) < 0)
                mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload failed");
            return;
        } else {
            int64_t left = mp->part_len - mp->part_fed;
            uv_buf_t b = uv_buf_init((char *)mp->rbuf, (unsigned)(left < CHUNK ? left : CHUNK));

            mp->read_req.data = mp;
            if (uv_fs_read(mp->base.backend->loop, &mp->read_req, mp->fd, &b, 1,
                           mp->part_off + mp->part_fed, on_spool_read) != 0) {
                mp_fail(mp, TG_TFTP_EUNDEF, "spool read failed");
                return;
            }
            mp->reading = true;
            tg_life_hold(&mp->life);
            return;
        }
    }
}

static bool xml_append(struct s3mp *mp, const char *s)
{
    size_t n = strlen(s);

    if (mp->xml_len + n + 1 > mp->xml_cap) {
        size_t cap = (mp->xml_cap + n + 1) * 2;
        char *x = tg_realloc(mp->xml, cap);

        if (!x)
            return false;
        mp->xml = x;
        mp->xml_cap = cap;
    }
    memcpy(mp->xml + mp->xml_len, s, n + 1);
    mp->xml_len += n;
    return true;
}

static void on_part(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct s3mp *mp = arg;

    tg_life_hold(&mp->life);
    if (mp->life.closed || mp->state == MP_FAILED) {
        tg_life_release(&mp->life);
        return;
    }
    switch (ev) {
    case TG_STREAM_OPENED:
        mp->part_ready = true;
        feed_part(mp);
        break;
    case TG_STREAM_WRITABLE:
        feed_part(mp);
        break;
    case TG_STREAM_COMMITTED: {
        char entry[256];

        if (!mp->single) {
            snprintf(entry, sizeof(entry),
                     "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", mp->part_no,
                     s->http->val.etag);
            if (!xml_append(mp, entry)) {
                mp_fail(mp, TG_TFTP_EUNDEF, "out of memory");
                break;
            }
        }
        hx_close(mp->part);
        mp->part = NULL;
        tg_life_release(&mp->life); /* the part's; ours is still held */
        mp->part_off += mp->part_len;
        if (mp->single) {
            mp->state = MP_COMMITTED;
            mp_notify(mp, TG_STREAM_COMMITTED);
            break;
        }
        /* One hole punch at a time, covering every part sent since the
         * last one. */
        if (!mp->punching && mp->part_off > mp->punched_to) {
            mp->punch_off = mp->punched_to;
            mp->punch_len = mp->part_off - mp->punched_to;
            mp->punch_req.data = mp;
            if (uv_queue_work(mp->base.backend->loop, &mp->punch_req, punch_work,
                              punch_after) == 0) {
                mp->punching = true;
                tg_life_hold(&mp->life);
            }
        }
        mp_step(mp);
        break;
    }
    case TG_STREAM_FAILED:
        mp_fail(mp, s->err.code, "%s", s->err.msg);
        break;
    default:
        break;
    }
    tg_life_release(&mp->life);
}

static void start_part(struct s3mp *mp, int64_t len)
{
    struct tg_open_args a;
    char q[1700], id[1600];
    int rc;

    memset(&a, 0, sizeof(a));
    a.key = mp->key;
    a.size_hint = len;
    a.overwrite = true; /* the create check was made before; parts never probe */
    a.client_mac = mp->client_mac[0] ? mp->client_mac : NULL;
    a.blksize = CHUNK;
    if (mp->single) {
        rc = s3_object_url(mp->sb, mp->key, NULL, mp->url, sizeof(mp->url));
    } else if (mp->part_no >= 10000) {
        mp_fail(mp, TG_TFTP_ENOSPACE, "upload too large for S3 (10000 parts of part_size)");
        return;
    } else {
        mp->part_no++;
        if (tg_uri_encode_component(mp->upload_id, id, sizeof(id)) < 0) {
            mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload id too long");
            return;
        }
        /* Parameters sorted: 7.88 signs them as written. */
        snprintf(q, sizeof(q), "?partNumber=%d&uploadId=%s", mp->part_no, id);
        rc = s3_object_url(mp->sb, mp->key, q, mp->url, sizeof(mp->url));
    }
    mp->part_len = len;
    mp->part_fed = 0;
    mp->rbuf_len = mp->rbuf_off = 0;
    mp->part_ready = false;
    if (rc == 0)
        rc = hx_open(mp->base.backend, &mp->sb->conf, &s3_profile, mp->sb, mp->url, &a, true,
                     on_part, mp, &mp->part);
    if (rc != 0) {
        mp->part = NULL;
        mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload could not start");
        return;
    }
    tg_life_hold(&mp->life);
}

static void on_completed(struct s3call *c, void *arg)
{
    struct s3mp *mp = arg;

    mp->call = NULL;
    if (!mp->life.closed && mp->state != MP_FAILED) {
        /* A 200 answer may still carry an <Error> document. */
        if (c->rc != CURLE_OK || c->status >= 300 || strstr(c->resp, "<Error>")) {
            mp_call_failed(mp, c, "CompleteMultipartUpload");
        } else {
            mp->upload_id[0] = '\0'; /* complete: nothing to abort any more */
            mp->state = MP_COMMITTED;
            mp_notify(mp, TG_STREAM_COMMITTED);
        }
    }
    tg_life_release(&mp->life);
}

static void on_initiated(struct s3call *c, void *arg)
{
    struct s3mp *mp = arg;

    mp->call = NULL;
    if (!mp->life.closed && mp->state != MP_FAILED) {
        s3_xml_value(c->resp, "UploadId", mp->upload_id, sizeof(mp->upload_id));
        if (c->rc != CURLE_OK || c->status >= 300 || !mp->upload_id[0]) {
            mp_call_failed(mp, c, "CreateMultipartUpload");
        } else {
            mp_step(mp);
        }
    }
    tg_life_release(&mp->life);
}

/* Decide what happens next, from the spool and upload state. */
static void mp_step(struct s3mp *mp)
{
    int64_t ready = mp->spooled - mp->part_off;

    if (mp->state != MP_OPEN && mp->state != MP_COMMITTING)
        return;
    start_flush(mp);
    if (mp->part || mp->call)
        return;
    if (mp->state == MP_COMMITTING && mp->fill_len == 0 && !mp->writing) {
        if (!mp->upload_id[0] && mp->part_no == 0) {
            /* Smaller than one part: one PUT with its length. */
            mp->single = true;
            start_part(mp, mp->spooled);
            return;
        }
        if (ready > 0) {
            start_part(mp, ready); /* the last part may be short */
            return;
        }
        if (!xml_append(mp, "</CompleteMultipartUpload>")) {
            mp_fail(mp, TG_TFTP_EUNDEF, "out of memory");
            return;
        }
        {
            char q[1700], id[1600];

            if (tg_uri_encode_component(mp->upload_id, id, sizeof(id)) < 0)
                id[0] = '\0'; /* object_url below then fails cleanly */
            snprintf(q, sizeof(q), "?uploadId=%s", id);
            if (!id[0] || s3_object_url(mp->sb, mp->key, q, mp->url, sizeof(mp->url)) != 0 ||
                !(mp->call = s3_call_start(mp->sb, "POST", mp->url, mp->xml, on_completed, mp))) {
                mp_fail(mp, TG_TFTP_EUNDEF, "S3 complete could not start");
                return;
            }
            tg_life_hold(&mp->life);
        }
        return;
    }
    if (ready >= mp->sb->part_size) {
        if (!mp->upload_id[0]) {
            if (s3_object_url(mp->sb, mp->key, "?uploads=", mp->url, sizeof(mp->url)) != 0 ||
                !(mp->call = s3_call_start(mp->sb, "POST", mp->url, NULL, on_initiated, mp))) {
                mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload could not start");
                return;
            }
            tg_life_hold(&mp->life);
            return;
        }
        start_part(mp, mp->sb->part_size);
    }
    maybe_writable(mp);
}

static void on_spool_open(struct tg_lfs_tmp_req *req)
{
    struct s3mp *mp = tg_container_of(req, struct s3mp, spool);

    /* The job's hold covers this callback: the session may close us. */
    if (mp->life.closed) {
        if (!req->err)
            tg_lfs_close_async(mp->base.backend->loop, req->tmp.fd);
    } else if (req->err) {
        tg_log(TG_LOG_WARN, "backend %s: cannot create a spool file in %s: %s",
               mp->sb->base.name, mp->sb->spool_dir, uv_strerror(-req->err));
        mp_fail(mp, TG_TFTP_EUNDEF, "cannot spool the upload");
    } else {
        mp->fd = req->tmp.fd;
        mp->state = MP_OPEN;
        mp_notify(mp, TG_STREAM_OPENED);
    }
    tg_life_release(&mp->life);
}

static void open_spool(struct s3mp *mp)
{
    struct tg_lfs_tmp_spec *spec = &mp->spool.spec;
    int rc;

    mp->state = MP_SPOOLOPEN;
    /* An anonymous file leaves nothing behind even after a crash; where
     * spool_dir has no O_TMPFILE, a named one loses its name at once. */
    spec->dirfd = AT_FDCWD;
    spec->dir = mp->sb->spool_dir;
    spec->flags = O_RDWR;
    spec->mode = 0600;
    spec->anon_ok = true;
    spec->unlink_named = true;
    spec->prefix = ".tftpgw-spool-";
    rc = tg_lfs_tmp_open_async(mp->base.backend->loop, &mp->spool, on_spool_open);
    if (rc != 0) {
        tg_log(TG_LOG_WARN, "backend %s: cannot create a spool file in %s: %s",
               mp->sb->base.name, mp->sb->spool_dir, uv_strerror(rc));
        mp_fail(mp, TG_TFTP_EUNDEF, "cannot spool the upload");
        return;
    }
    tg_life_hold(&mp->life);
}

static void on_probed(struct s3call *c, void *arg)
{
    struct s3mp *mp = arg;

    mp->call = NULL;
    if (!mp->life.closed) {
        if (c->rc == CURLE_OK && c->status >= 200 && c->status < 300)
            mp_fail(mp, TG_TFTP_EEXISTS, "file already exists");
        else if (c->status == 404 || c->status == 410)
            open_spool(mp);
        else
            mp_call_failed(mp, c, "create-mode probe");
    }
    tg_life_release(&mp->life);
}

int s3_mp_open(struct s3_backend *sb, const struct tg_open_args *a, tg_stream_cb *cb,
                   void *arg, struct tg_stream **out)
{
    struct s3mp *mp = tg_calloc(1, sizeof(*mp));
    char url[3 * TG_PATH_MAX + 2048];

    if (!mp)
        return TG_ENOMEM;
    tg_life_init(&mp->life, mp_fin);
    mp->base.ops = &s3mp_ops;
    mp->base.backend = &sb->base;
    mp->base.cb = cb;
    mp->base.arg = arg;
    mp->base.size = -1;
    mp->sb = sb;
    mp->fd = -1;
    mp->create = !a->overwrite;
    mp->blk = a->blksize ? a->blksize : TG_SEGSIZE;
    mp->cap = mp->blk * 2 > CHUNK ? mp->blk * 2 : CHUNK;
    mp->key = tg_strdup(a->key);
    if (a->client_mac)
        snprintf(mp->client_mac, sizeof(mp->client_mac), "%s", a->client_mac);
    mp->fill = tg_malloc(mp->cap);
    mp->flush = tg_malloc(mp->cap);
    mp->rbuf = tg_malloc(CHUNK);
    if (!mp->key || !mp->fill || !mp->flush || !mp->rbuf ||
        !xml_append(mp, "<CompleteMultipartUpload>")) {
        tg_life_close(&mp->life);
        return TG_ENOMEM;
    }
    if (mp->create) {
        mp->state = MP_PROBING;
        if (s3_object_url(sb, a->key, NULL, url, sizeof(url)) != 0 ||
            !(mp->call = s3_call_start(sb, "HEAD", url, NULL, on_probed, mp))) {
            tg_life_close(&mp->life);
            return TG_EIO;
        }
        tg_life_hold(&mp->life);
    } else {
        mp->in_call = true; /* a failure here is our return code, not a callback */
        open_spool(mp);
        mp->in_call = false;
        if (mp->state == MP_FAILED) {
            tg_life_close(&mp->life);
            return TG_EIO;
        }
    }
    *out = &mp->base;
    return 0;
}

static int mp_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    struct s3mp *mp = (struct s3mp *)s;

    if (mp->state == MP_FAILED)
        return TG_EIO;
    if (mp->state != MP_OPEN)
        return TG_EINVAL;
    if (mp->sb->spool_max > 0 && mp->sb->spool_used + (int64_t)len > mp->sb->spool_max) {
        tg_error_set(&mp->base.err, TG_TFTP_ENOSPACE, "upload spool is full");
        mp->state = MP_FAILED;
        return TG_ENOSPC;
    }
    /* Backpressure: the spool may run at most two parts ahead of S3. */
    if (len > mp->cap - mp->fill_len || !has_room(mp)) {
        mp->want = true;
        return TG_EAGAIN;
    }
    memcpy(mp->fill + mp->fill_len, src, len);
    mp->fill_len += len;
    mp->on_disk += (int64_t)len;
    mp->sb->spool_used += (int64_t)len;
    if (mp->fill_len >= mp->cap / 2) {
        mp->in_call = true;
        start_flush(mp);
        mp->in_call = false;
    }
    return mp->state == MP_FAILED ? TG_EIO : 0;
}

static int mp_commit(struct tg_stream *s)
{
    struct s3mp *mp = (struct s3mp *)s;

    if (mp->state == MP_FAILED)
        return TG_EIO;
    if (mp->state != MP_OPEN)
        return TG_EINVAL;
    mp->state = MP_COMMITTING;
    mp->in_call = true;
    mp_step(mp);
    mp->in_call = false;
    return mp->state == MP_FAILED ? TG_EIO : 0;
}

static void mp_close(struct tg_stream *s)
{
    struct s3mp *mp = (struct s3mp *)s;

    /* Their holds go first; close() below frees once nothing else runs. */
    if (mp->call) {
        s3_call_cancel(mp->call);
        mp->call = NULL;
        tg_life_release(&mp->life);
    }
    if (mp->part) {
        hx_close(mp->part);
        mp->part = NULL;
        tg_life_release(&mp->life);
    }
    if (mp->upload_id[0]) {
        /* Real S3 keeps the parts of an unfinished upload (and bills them)
         * until it is aborted. */
        char q[1700], id[1600], url[3 * TG_PATH_MAX + 2048];

        if (tg_uri_encode_component(mp->upload_id, id, sizeof(id)) > 0 &&
            snprintf(q, sizeof(q), "?uploadId=%s", id) > 0 &&
            s3_object_url(mp->sb, mp->key, q, url, sizeof(url)) == 0)
            (void)s3_call_start(mp->sb, "DELETE", url, NULL, NULL, NULL);
    }
    tg_life_close(&mp->life);
}


/* backends/s3.c - S3-compatible object storage: signed streaming GETs, and
 * uploads that are complete objects or nothing.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4). Debian 12's 7.88.1
 * neither adds x-amz-content-sha256 nor canonicalises the query, so every
 * request carries that header and every query is built sorted and encoded
 * (digest M21-M24).
 *
 * Reads and uploads with a known size (tsize) use the shared HTTP engine:
 * one streamed GET or one PUT with Content-Length. Uploads without a size
 * cannot be a chunked PUT (S3 refuses those, digest M18): they are spooled
 * to an unlinked temporary file and sent as a multipart upload, a part as
 * soon as it fills, and completed after the last block. An upload smaller
 * than one part becomes a single PUT from the spool. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_engine.h"
#include "tftpgw/keys.h"
#include "tftpgw/localfs.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/uri.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PART_MIN (5LL << 20)
#define PART_MAX (5LL << 30)
#define SINGLE_PUT_MAX (5LL << 30)
#define CHUNK (64 * 1024)
#define RESP_MAX (16 * 1024)

/* The keys as configured, while s3_create turns them into what requests
 * need. */
struct s3_keys {
    char *endpoint, *bucket, *region, *prefix, *access, *secret, *token;
    int path_style; /* -1: by endpoint */
};

struct s3_backend {
    struct tg_backend base;
    struct hx_conf conf;
    struct s3_keys k;
    char *obj_base;   /* "https://host/bucket/prefix" or "https://bucket.host/prefix" */
    char *sigv4;      /* "aws:amz:REGION:s3" */
    char *userpwd;    /* "KEY:SECRET" */
    char *token;      /* session token or NULL */
    char *spool_dir;
    int64_t part_size, spool_max, spool_used;
};

/* ---- S3 error documents ---- */

#ifdef UNIT_TESTING
void xml_value(const char *body, const char *tag, char *out, size_t cap);
void map_s3_error(struct tg_error *e, long status, const char *body);
void s3_detail(long status, const char *body, char *out, size_t cap);
int object_url(const struct s3_backend *sb, const char *key, const char *query, char *out,
               size_t cap);
#endif

TG_STATIC void xml_value(const char *body, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    const char *a, *b;
    size_t n;

    out[0] = '\0';
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if (!body || !(a = strstr(body, open)))
        return;
    a += strlen(open);
    if (!(b = strstr(a, close)))
        return;
    n = (size_t)(b - a) < cap - 1 ? (size_t)(b - a) : cap - 1;
    memcpy(out, a, n);
    out[n] = '\0';
}

/* The S3 code decides, the status is the fallback (HEAD answers carry no
 * body). The texts are what a client reads: the S3 code and message name
 * the store's insides and go to the log instead (s3_detail). */
TG_STATIC void map_s3_error(struct tg_error *e, long status, const char *body)
{
    char code[64];

    xml_value(body, "Code", code, sizeof(code));
    if (!strcmp(code, "NoSuchKey") || (!code[0] && (status == 404 || status == 410)))
        tg_error_set(e, TG_TFTP_ENOTFOUND, "file not found");
    else if (!strcmp(code, "AccessDenied") || !strcmp(code, "SignatureDoesNotMatch") ||
             !strcmp(code, "InvalidAccessKeyId") || !strcmp(code, "ExpiredToken") ||
             !strcmp(code, "InvalidToken") || (!code[0] && (status == 401 || status == 403)))
        tg_error_set(e, TG_TFTP_EACCESS, "access denied by upstream");
    else if (!strcmp(code, "EntityTooLarge"))
        tg_error_set(e, TG_TFTP_ENOSPACE, "upstream refused the size");
    else if (!strcmp(code, "PreconditionFailed"))
        tg_error_set(e, TG_TFTP_EEXISTS, "file already exists");
    else
        tg_error_set(e, TG_TFTP_EUNDEF, "upstream error %ld", status);
}

/* For the log line: the status, S3's error code and message. */
TG_STATIC void s3_detail(long status, const char *body, char *out, size_t cap)
{
    char code[64], msg[200];

    xml_value(body, "Code", code, sizeof(code));
    xml_value(body, "Message", msg, sizeof(msg));
    snprintf(out, cap, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code, msg[0] ? ": " : "",
             msg);
}

/* Signing and the headers 7.88 will not add itself. */
static int sign(const struct s3_backend *sb, CURL *e, const char *method,
                struct curl_slist **l)
{
    bool body = !strcmp(method, "PUT") || !strcmp(method, "POST");
    int rc;

    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sb->sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, sb->userpwd);
    /* Streamed bodies cannot be hashed in advance; S3 accepts an unsigned
     * payload, integrity rests on TLS (digest M25). */
    rc = hx_add_header(l, "x-amz-content-sha256: ", body ? "UNSIGNED-PAYLOAD" : EMPTY_SHA256);
    if (rc == 0 && sb->token)
        rc = hx_add_header(l, "x-amz-security-token: ", sb->token);
    return rc;
}

static int s3_prepare(struct hx_stream *hs, const char *method, struct curl_slist **l)
{
    return sign(hs->owner, hs->x.easy, method, l);
}

static void s3_map_error(struct hx_stream *hs, long status, const char *body)
{
    struct tg_error e;
    char detail[320];

    map_s3_error(&e, status, body);
    s3_detail(status, body, detail, sizeof(detail));
    /* Not found and exists are answers; anything else is worth a line. */
    if (e.code == TG_TFTP_ENOTFOUND || e.code == TG_TFTP_EEXISTS)
        hx_fail(hs, e.code, e.msg);
    else
        hx_fail_log(hs, e.code, e.msg, "%s", detail);
}

static const struct hx_profile s3_profile = {
    s3_prepare,   /* prepare */
    s3_map_error, /* map_error */
    false,        /* if_none_match: HEAD first; not every store knows it */
    false,        /* drop_expect: would break the signature on 7.88 */
};

TG_STATIC int object_url(const struct s3_backend *sb, const char *key, const char *query,
                         char *out, size_t cap)
{
    char enc[3 * TG_PATH_MAX];

    if (tg_uri_encode_path(key, enc, sizeof(enc)) < 0)
        return TG_ENAMETOOLONG;
    if ((size_t)snprintf(out, cap, "%s%s%s", sb->obj_base, enc, query ? query : "") >= cap)
        return TG_ENAMETOOLONG;
    return 0;
}

/* ---- small signed requests (multipart control) ---- */

struct s3call;
typedef void s3call_cb(struct s3call *c, void *arg);

struct s3call {
    struct tg_curl_xfer x;
    struct s3_backend *sb;
    const char *method;   /* a literal */
    char *url;            /* the configured origin's URL */
    char *hop_url;        /* where a followed redirect led, or NULL */
    int hops;
    struct curl_slist *hdrs;
    char *body;
    s3call_cb *cb;
    void *arg;
    long status;
    CURLcode rc;
    char resp[RESP_MAX];
    size_t rlen;
    char errbuf[CURL_ERROR_SIZE];
    char why[200];        /* a redirect not followed, for the log */
    /* Fire-and-forget calls (abort on close) hold the loop open, at most
     * DETACHED_MS, because curl's own handles do not (curl_uv.c). */
    uv_timer_t guard;
    bool detached;
};

#define DETACHED_MS 15000

static size_t call_body(char *p, size_t size, size_t n, void *arg)
{
    struct s3call *c = arg;
    size_t len = size * n, k = len < RESP_MAX - 1 - c->rlen ? len : RESP_MAX - 1 - c->rlen;

    memcpy(c->resp + c->rlen, p, k);
    c->rlen += k;
    c->resp[c->rlen] = '\0';
    return len;
}

static void call_free(struct s3call *c)
{
    if (c->x.easy)
        curl_easy_cleanup(c->x.easy);
    curl_slist_free_all(c->hdrs);
    tg_free(c->body);
    tg_free(c->url);
    tg_free(c->hop_url);
    tg_free(c);
}

static void on_guard_closed(uv_handle_t *h)
{
    call_free(h->data);
}

static void end_detached(struct s3call *c)
{
    uv_timer_stop(&c->guard);
    uv_close((uv_handle_t *)&c->guard, on_guard_closed);
}

static void on_guard(uv_timer_t *t)
{
    struct s3call *c = t->data;

    tg_log(TG_LOG_WARN, "S3 cleanup request did not finish in %d ms; given up", DETACHED_MS);
    tg_curl_remove(&c->x);
    end_detached(c);
}

/* A 3xx to a control request. Only the create-mode probe (HEAD) follows
 * one, under the backend's `redirects` policy and signed only at the
 * configured origin (backends/http.c decides); POST and DELETE carry an
 * upload's state and are never redirected. True: restarted. */
static bool call_redirect(struct s3call *c)
{
    const struct hx_conf *conf = &c->sb->conf;
    char *to = NULL;
    bool foreign = false;

    curl_easy_getinfo(c->x.easy, CURLINFO_REDIRECT_URL, &to);
    if (strcmp(c->method, "HEAD") != 0) {
        snprintf(c->why, sizeof(c->why), "a %s is not redirected", c->method);
        return false;
    }
    if (!to || strlen(to) > HX_URL_MAX ||
        (c->status != 301 && c->status != 302 && c->status != 303 && c->status != 307 &&
         c->status != 308)) {
        snprintf(c->why, sizeof(c->why), "no redirect to follow");
        return false;
    }
    if (hx_redirect_check(conf, c->url, to, c->hops, &foreign, c->why, sizeof(c->why)) != 0)
        return false;
    tg_free(c->hop_url);
    if (!(c->hop_url = tg_strdup(to))) {
        snprintf(c->why, sizeof(c->why), "out of memory");
        return false;
    }
    c->hops++;
    curl_easy_setopt(c->x.easy, CURLOPT_URL, c->hop_url);
    hx_transport(c->x.easy, conf, !foreign);
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    if (!foreign && sign(c->sb, c->x.easy, c->method, &c->hdrs) != 0) {
        snprintf(c->why, sizeof(c->why), "out of memory");
        return false;
    }
    curl_easy_setopt(c->x.easy, CURLOPT_HTTPHEADER, c->hdrs);
    c->rlen = 0;
    c->resp[0] = c->errbuf[0] = '\0';
    if (tg_curl_add(conf->cu, &c->x) != 0) {
        snprintf(c->why, sizeof(c->why), "cannot restart the request");
        return false;
    }
    return true;
}

static void call_done(struct tg_curl_xfer *x, CURLcode rc)
{
    struct s3call *c = tg_container_of(x, struct s3call, x);

    c->rc = rc;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (rc == CURLE_OK && c->status >= 300 && c->status < 400 && call_redirect(c))
        return;
    if (c->cb)
        c->cb(c, c->arg);
    else if (rc != CURLE_OK || c->status >= 300)
        tg_log(TG_LOG_WARN, "S3 cleanup request failed: HTTP %ld %s", c->status,
               rc != CURLE_OK ? curl_easy_strerror(rc) : "");
    if (c->detached)
        end_detached(c);
    else
        call_free(c);
}

/* method POST (body may be NULL for an empty one), DELETE or HEAD. The
 * callback runs once, from the loop; cb NULL: fire and forget. */
static struct s3call *call_start(struct s3_backend *sb, const char *method, const char *url,
                                 const char *body, s3call_cb *cb, void *arg)
{
    struct s3call *c = tg_calloc(1, sizeof(*c));
    CURL *e;

    if (!c)
        return NULL;
    c->cb = cb;
    c->arg = arg;
    c->sb = sb;
    c->method = method;
    c->x.done = call_done;
    c->x.cu = sb->conf.cu;
    c->x.cap = sb->conf.cap;
    if (!(e = c->x.easy = curl_easy_init()) || (body && !(c->body = tg_strdup(body))) ||
        !(c->url = tg_strdup(url)) || sign(sb, e, method, &c->hdrs) != 0) {
        call_free(c);
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    hx_transport(e, &sb->conf, true);
    /* Completing a large upload can take S3 a while; bounded all the same. */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 300000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, call_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(c->body ? strlen(c->body) : 0));
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (tg_curl_add(sb->conf.cu, &c->x) != 0) {
        call_free(c);
        return NULL;
    }
    if (!cb) {
        c->detached = true;
        uv_timer_init(sb->base.loop, &c->guard);
        c->guard.data = c;
        uv_timer_start(&c->guard, on_guard, DETACHED_MS, 0);
    }
    return c;
}

static void call_cancel(struct s3call *c)
{
    tg_curl_remove(&c->x);
    call_free(c);
}

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

    map_s3_error(&e, status, body);
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
            if (uv_queue_work(mp->base.backend->loop, &mp->punch_req, punch_work, punch_after) == 0) {
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
    a.blksize = CHUNK;
    if (mp->single) {
        rc = object_url(mp->sb, mp->key, NULL, mp->url, sizeof(mp->url));
    } else if (mp->part_no >= 10000) {
        mp_fail(mp, TG_TFTP_ENOSPACE, "upload too large for S3 (10000 parts of part_size)");
        return;
    } else {
        mp->part_no++;
        if (tg_uri_encode_component(mp->upload_id, id, sizeof(id)) < 0) {
            mp_fail(mp, TG_TFTP_EUNDEF, "S3 upload id too long");
            return;
        }
        /* digest M23: parameters sorted, as 7.88 signs them as written. */
        snprintf(q, sizeof(q), "?partNumber=%d&uploadId=%s", mp->part_no, id);
        rc = object_url(mp->sb, mp->key, q, mp->url, sizeof(mp->url));
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
        xml_value(c->resp, "UploadId", mp->upload_id, sizeof(mp->upload_id));
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
            if (!id[0] || object_url(mp->sb, mp->key, q, mp->url, sizeof(mp->url)) != 0 ||
                !(mp->call = call_start(mp->sb, "POST", mp->url, mp->xml, on_completed, mp))) {
                mp_fail(mp, TG_TFTP_EUNDEF, "S3 complete could not start");
                return;
            }
            tg_life_hold(&mp->life);
        }
        return;
    }
    if (ready >= mp->sb->part_size) {
        if (!mp->upload_id[0]) {
            if (object_url(mp->sb, mp->key, "?uploads=", mp->url, sizeof(mp->url)) != 0 ||
                !(mp->call = call_start(mp->sb, "POST", mp->url, NULL, on_initiated, mp))) {
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

static int mp_open(struct s3_backend *sb, const struct tg_open_args *a, tg_stream_cb *cb,
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
        if (object_url(sb, a->key, NULL, url, sizeof(url)) != 0 ||
            !(mp->call = call_start(sb, "HEAD", url, NULL, on_probed, mp))) {
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
        call_cancel(mp->call);
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
            object_url(mp->sb, mp->key, q, url, sizeof(url)) == 0)
            (void)call_start(mp->sb, "DELETE", url, NULL, NULL, NULL);
    }
    tg_life_close(&mp->life);
}

/* ---- the backend type ---- */

static int s3_open_read(struct tg_backend *b, const struct tg_open_args *a, tg_stream_cb *cb,
                        void *arg, struct tg_stream **out)
{
    struct s3_backend *sb = (struct s3_backend *)b;
    char url[3 * TG_PATH_MAX + 2048];

    if (object_url(sb, a->key, NULL, url, sizeof(url)) != 0)
        return TG_ENAMETOOLONG;
    return hx_open(b, &sb->conf, &s3_profile, sb, url, a, false, cb, arg, out);
}

static int s3_open_write(struct tg_backend *b, const struct tg_open_args *a,
                         tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct s3_backend *sb = (struct s3_backend *)b;
    char url[3 * TG_PATH_MAX + 2048];

    if (a->size_hint < 0 || a->size_hint > SINGLE_PUT_MAX)
        return mp_open(sb, a, cb, arg, out);
    if (object_url(sb, a->key, NULL, url, sizeof(url)) != 0)
        return TG_ENAMETOOLONG;
    return hx_open(b, &sb->conf, &s3_profile, sb, url, a, true, cb, arg, out);
}


static void keys_free(struct s3_keys *k)
{
    tg_free(k->endpoint);
    tg_free(k->bucket);
    tg_free(k->region);
    tg_free(k->prefix);
    tg_free(k->access);
    tg_free(k->secret);
    tg_free(k->token);
    memset(k, 0, sizeof(*k));
}

static void s3_destroy(struct tg_backend *b)
{
    struct s3_backend *sb = (struct s3_backend *)b;

    keys_free(&sb->k);
    tg_free(sb->obj_base);
    tg_free(sb->sigv4);
    tg_free(sb->userpwd);
    tg_free(sb->token);
    tg_free(sb->spool_dir);
    tg_free(sb->base.name);
    hx_conf_free(&sb->conf);
    tg_free(sb);
}

/* ---- configuration ---- */

static int keep(char **dst, const char *v)
{
    char *dup = tg_strdup(v);

    if (!dup)
        return TG_ENOMEM;
    tg_free(*dst);
    *dst = dup;
    return 0;
}

static int refuse(char *msg, size_t cap, const char *why)
{
    snprintf(msg, cap, "%s", why);
    return TG_EINVAL;
}

static int set_endpoint(void *obj, const char *v, char *msg, size_t cap)
{
    if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
        return refuse(msg, cap, "must start with http:// or https://");
    return keep(&((struct s3_backend *)obj)->k.endpoint, v);
}

static int set_bucket(void *obj, const char *v, char *msg, size_t cap)
{
    size_t n = strlen(v);

    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.' || *p == '_' || (*p >= 'A' && *p <= 'Z')))
            n = 0;
    if (n < 3 || n > 63)
        return refuse(msg, cap, "3..63 characters of a-z 0-9 . - _");
    return keep(&((struct s3_backend *)obj)->k.bucket, v);
}

static int set_region(void *obj, const char *v, char *msg, size_t cap)
{
    if (!*v || strpbrk(v, ":/ "))
        return refuse(msg, cap, "a region name such as us-east-1");
    return keep(&((struct s3_backend *)obj)->k.region, v);
}

static int set_prefix(void *obj, const char *v, char *msg, size_t cap)
{
    if (v[0] == '/' || strstr(v, "..") || strpbrk(v, "\r\n\t"))
        return refuse(msg, cap, "no leading '/', no '..'");
    return keep(&((struct s3_backend *)obj)->k.prefix, v);
}

static int set_path_style(void *obj, const char *v, char *msg, size_t cap)
{
    bool b;

    if (tg_config_parse_bool(v, &b) != 0)
        return refuse(msg, cap, "invalid value");
    ((struct s3_backend *)obj)->k.path_style = b;
    return 0;
}

#define SB(f) TG_KEY_AT(struct s3_backend, f)

static const struct tg_key s3_keys[] = {
    {.name = "endpoint", .type = TG_KEY_FUNC, .set = set_endpoint},
    {.name = "bucket", .type = TG_KEY_FUNC, .set = set_bucket, .flags = TG_KEY_REQUIRED},
    {.name = "region", .type = TG_KEY_FUNC, .set = set_region, .def = "us-east-1"},
    {.name = "prefix", .type = TG_KEY_FUNC, .set = set_prefix, .def = ""},
    {.name = "path_style", .type = TG_KEY_FUNC, .set = set_path_style},
    {.name = "access_key", .type = TG_KEY_STRING, SB(k.access), .flags = TG_KEY_EMPTY_OK},
    {.name = "secret_key", .type = TG_KEY_STRING, SB(k.secret), .flags = TG_KEY_EMPTY_OK},
    {.name = "session_token", .type = TG_KEY_STRING, SB(k.token), .flags = TG_KEY_EMPTY_OK},
    {.name = "part_size", .type = TG_KEY_SIZE, SB(part_size), .min = PART_MIN, .max = PART_MAX,
     .def = "8M", .bad = "invalid value", .range = "5M..5G (S3's part limits)"},
    {.name = "spool_max", .type = TG_KEY_SIZE, SB(spool_max), .max = INT64_MAX, .def = "1G",
     .bad = "invalid value"},
    {.name = "spool_dir", .type = TG_KEY_STRING, SB(spool_dir), .flags = TG_KEY_ABSOLUTE,
     .bad = "an absolute directory"},
};

/* Credentials: the config (${VAR} allowed), else the usual environment. */
static int s3_credentials(struct s3_backend *sb, const struct tg_backend_cfg *cfg, char *err,
                          size_t errlen)
{
    const char *access = sb->k.access, *secret = sb->k.secret, *token = sb->k.token;
    bool literal = secret && !strstr(secret, "${");
    char a[256], s[256], t[2048], why[160], buf[600];

    if (!access)
        access = getenv("AWS_ACCESS_KEY_ID") ? "${AWS_ACCESS_KEY_ID}" : NULL;
    if (!secret)
        secret = getenv("AWS_SECRET_ACCESS_KEY") ? "${AWS_SECRET_ACCESS_KEY}" : NULL;
    if (!token && getenv("AWS_SESSION_TOKEN"))
        token = "${AWS_SESSION_TOKEN}";
    if (!access || !secret) {
        snprintf(err, errlen,
                 "line %d: access_key: credentials needed (access_key and secret_key, or "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", cfg->line);
        return TG_EINVAL;
    }
    if (hx_expand_env(access, a, sizeof(a), why, sizeof(why)) != 0 ||
        hx_expand_env(secret, s, sizeof(s), why, sizeof(why)) != 0 ||
        (token && hx_expand_env(token, t, sizeof(t), why, sizeof(why)) != 0)) {
        snprintf(err, errlen, "line %d: credentials: %s", cfg->line, why);
        return TG_EINVAL;
    }
    if (literal && cfg->file) {
        struct stat st;

        /* A secret others can read is no secret (never logged, though). */
        if (stat(cfg->file, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
            tg_log(TG_LOG_WARN, "%s holds the secret key of backend %s and is readable by "
                                "others: chmod 600 it, or use ${VAR} or AWS_SECRET_ACCESS_KEY",
                   cfg->file, cfg->name);
    }
    snprintf(buf, sizeof(buf), "%s:%s", a, s);
    if (!(sb->userpwd = tg_strdup(buf)) || (token && !(sb->token = tg_strdup(t))))
        return TG_ENOMEM;
    return 0;
}

/* Endpoint and addressing: AWS defaults to virtual-hosted buckets,
 * self-hosted stores to path style. The prefix is a folder. */
static int s3_addressing(struct s3_backend *sb, const struct tg_backend_cfg *cfg, char *err,
                         size_t errlen)
{
    const struct s3_keys *k = &sb->k;
    char host[512], buf[1024], pfx[3 * 256 + 2];
    const char *scheme = "https://";
    int path_style = k->path_style;
    size_t i;
    ssize_t n;

    if (k->endpoint) {
        scheme = !strncmp(k->endpoint, "https://", 8) ? "https://" : "http://";
        snprintf(host, sizeof(host), "%s", k->endpoint + strlen(scheme));
        if (path_style < 0)
            path_style = strstr(host, "amazonaws.com") == NULL;
    } else {
        snprintf(host, sizeof(host), "s3.%s.amazonaws.com", k->region);
        if (path_style < 0)
            path_style = 0;
    }
    i = strlen(host);
    while (i > 0 && host[i - 1] == '/')
        host[--i] = '\0';
    if (path_style)
        snprintf(buf, sizeof(buf), "%s%s/%s/", scheme, host, k->bucket);
    else
        snprintf(buf, sizeof(buf), "%s%s.%s/", scheme, k->bucket, host);
    /* "tftp" must not reach "tftp-private/x" through a key "-private/x"
     * (invariant 5). */
    n = tg_uri_encode_path(k->prefix, pfx, sizeof(pfx) - 1);
    if (n > 0 && pfx[n - 1] != '/') {
        pfx[n] = '/';
        pfx[n + 1] = '\0';
        tg_log(TG_LOG_WARN,
               "backend %s: prefix \"%s\" is a folder: keys are read and written under "
               "\"%s/\" only (write prefix = %s/ to say so)",
               cfg->name, k->prefix, k->prefix, k->prefix);
    }
    if (n < 0 || strlen(buf) + strlen(pfx) >= sizeof(buf)) {
        snprintf(err, errlen, "line %d: prefix: too long", cfg->line);
        return TG_EINVAL;
    }
    strcat(buf, pfx);
    sb->obj_base = tg_strdup(buf);
    snprintf(buf, sizeof(buf), "aws:amz:%s:s3", k->region);
    sb->sigv4 = tg_strdup(buf);
    return sb->obj_base && sb->sigv4 ? 0 : TG_ENOMEM;
}

static int s3_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                     struct tg_backend **out, char *err, size_t errlen)
{
    struct s3_backend *sb = tg_calloc(1, sizeof(*sb));
    int rc;

    if (!sb || !(sb->base.name = tg_strdup(cfg->name))) {
        snprintf(err, errlen, "out of memory");
        tg_free(sb);
        return TG_ENOMEM;
    }
    sb->base.ops = &tg_s3_backend_ops;
    sb->base.loop = loop;
    sb->k.path_style = -1;
    hx_conf_init(&sb->conf);
    {
        const struct tg_key_table t[] = {{hx_conf_keys, hx_conf_nkeys, &sb->conf},
                                         {s3_keys, TG_ARRAY_LEN(s3_keys), sb}};

        rc = tg_key_parse_backend(t, TG_ARRAY_LEN(t), cfg, "an s3 backend", err, errlen);
    }
    if (rc == 0)
        rc = s3_credentials(sb, cfg, err, errlen);
    if (rc == 0)
        rc = s3_addressing(sb, cfg, err, errlen);
    if (rc == 0 && !sb->spool_dir) {
        const char *t = getenv("TMPDIR");

        if (!(sb->spool_dir = tg_strdup(t && t[0] == '/' ? t : "/tmp")))
            rc = TG_ENOMEM;
    }
    if (rc == 0 && hx_conf_start(&sb->conf, loop) != 0)
        rc = TG_ENOMEM;
    keys_free(&sb->k);
    if (rc != 0) {
        if (rc == TG_ENOMEM)
            snprintf(err, errlen, "out of memory");
        s3_destroy(&sb->base);
        return rc;
    }
    *out = &sb->base;
    return 0;
}

const struct tg_backend_ops tg_s3_backend_ops = {
    .type = "s3",
    .create = s3_create,
    .destroy = s3_destroy,
    .open_read = s3_open_read,
    .open_write = s3_open_write,
};

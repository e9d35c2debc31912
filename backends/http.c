/* backends/http.c - RRQ as a streamed GET, WRQ as a streamed PUT, through
 * the shared curl multi handle (gateway/curl_uv.c).
 *
 * Memory per stream is one ring of max(64 KiB, 2 x blksize): curl's write
 * callback fills it and pauses the transfer when it is full (digest M9),
 * the session's pull() drains it and resumes curl. Uploads run the other
 * way round with the read callback. HTTP/1.1 only and no content decoding,
 * so a paused transfer never buffers more than that (digest M13). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/backend.h"
#include "tftpgw/curl_uv.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/uri.h"

#define RING_MIN (64 * 1024)

struct http_backend {
    struct tg_backend base;
    struct tg_curl *cu;
    char *url;                  /* base URL, ends with '/' */
    char **headers;             /* "Name: value", ${VAR} already expanded */
    size_t nheaders;
    char *ca_file, *client_cert, *client_key;
    bool insecure, client_headers;
    long connect_timeout_ms, stall_timeout_ms, max_redirects;
};

enum hs_state {
    HS_PROBING,    /* create-mode WRQ: HEAD before the PUT */
    HS_OPENING,    /* request sent, no body byte yet (read) */
    HS_OPEN,
    HS_EOF,        /* read: upstream finished; the ring may still hold data */
    HS_COMMITTING, /* write: all data given to curl, waiting for the answer */
    HS_COMMITTED,
    HS_FAILED
};

/* Events a stream owes its session, delivered outside curl (dispatch). */
#define EV_OPENED (1u << TG_STREAM_OPENED)
#define EV_READABLE (1u << TG_STREAM_READABLE)
#define EV_WRITABLE (1u << TG_STREAM_WRITABLE)
#define EV_COMMITTED (1u << TG_STREAM_COMMITTED)
#define EV_FAILED (1u << TG_STREAM_FAILED)

struct http_stream {
    struct tg_stream base;
    struct http_backend *hb;
    struct tg_curl_xfer x;
    struct curl_slist *hdrs;
    char *url;
    bool write, create;
    enum hs_state state;
    uint8_t *ring;
    size_t cap, head, len;
    bool paused;      /* curl is paused by our callback */
    bool want;        /* the session got TG_EAGAIN and waits for an event */
    unsigned pending; /* EV_* bits */
    int dispatching;
    bool closed;
    char errbuf[CURL_ERROR_SIZE];
};

extern const struct tg_backend_ops tg_http_backend_ops;

/* ---- ring ---- */

static size_t ring_put(struct http_stream *hs, const uint8_t *src, size_t n)
{
    size_t tail = (hs->head + hs->len) % hs->cap, first = hs->cap - tail;

    if (n > hs->cap - hs->len)
        n = hs->cap - hs->len;
    if (first > n)
        first = n;
    memcpy(hs->ring + tail, src, first);
    memcpy(hs->ring, src + first, n - first);
    hs->len += n;
    return n;
}

static size_t ring_get(struct http_stream *hs, uint8_t *dst, size_t n)
{
    size_t first = hs->cap - hs->head;

    if (n > hs->len)
        n = hs->len;
    if (first > n)
        first = n;
    memcpy(dst, hs->ring + hs->head, first);
    memcpy(dst + first, hs->ring, n - first);
    hs->head = (hs->head + n) % hs->cap;
    hs->len -= n;
    return n;
}

/* ---- events ---- */

static void stream_free(struct http_stream *hs)
{
    if (hs->x.easy)
        curl_easy_cleanup(hs->x.easy);
    curl_slist_free_all(hs->hdrs);
    tg_free(hs->url);
    tg_free(hs->ring);
    tg_free(hs);
}

static void dispatch(struct http_stream *hs)
{
    static const enum tg_stream_ev order[] = {TG_STREAM_OPENED, TG_STREAM_READABLE,
                                              TG_STREAM_WRITABLE, TG_STREAM_COMMITTED,
                                              TG_STREAM_FAILED};

    hs->dispatching++;
    for (size_t i = 0; i < TG_ARRAY_LEN(order) && !hs->closed; i++) {
        if (!(hs->pending & (1u << order[i])))
            continue;
        hs->pending &= ~(1u << order[i]);
        hs->base.cb(&hs->base, order[i], hs->base.arg);
    }
    hs->dispatching--;
    /* The session may close us from its callback: free only now. */
    if (hs->closed && hs->dispatching == 0)
        stream_free(hs);
}

static void on_wake(struct tg_curl_xfer *x)
{
    dispatch(tg_container_of(x, struct http_stream, x));
}

/* From inside a curl callback: record, deliver later. */
static void owe(struct http_stream *hs, unsigned ev)
{
    hs->pending |= ev;
    tg_curl_wake(&hs->x);
}

static void set_failed(struct http_stream *hs, uint16_t code, const char *fmt, ...)
    TG_PRINTF(3, 4);

static void set_failed(struct http_stream *hs, uint16_t code, const char *fmt, ...)
{
    va_list ap;

    hs->base.err.code = code;
    va_start(ap, fmt);
    vsnprintf(hs->base.err.msg, sizeof(hs->base.err.msg), fmt, ap);
    va_end(ap);
    hs->state = HS_FAILED;
    hs->pending = EV_FAILED;
}

/* Shared status mapping (digest B9). */
static void fail_status(struct http_stream *hs, long st)
{
    if (st == 404 || st == 410)
        set_failed(hs, TG_TFTP_ENOTFOUND, "file not found");
    else if (st == 401 || st == 403)
        set_failed(hs, TG_TFTP_EACCESS, "access denied by upstream (HTTP %ld)", st);
    else if (hs->write && (st == 409 || st == 412))
        set_failed(hs, TG_TFTP_EEXISTS, "file already exists");
    else if (hs->write && (st == 413 || st == 507))
        set_failed(hs, TG_TFTP_ENOSPACE, "upstream refused the size (HTTP %ld)", st);
    else
        set_failed(hs, TG_TFTP_EUNDEF, "upstream HTTP %ld", st);
}

static void fail_curl(struct http_stream *hs, CURLcode rc)
{
    const char *what = hs->errbuf[0] ? hs->errbuf : curl_easy_strerror(rc);

    if (rc == CURLE_OPERATION_TIMEDOUT)
        set_failed(hs, TG_TFTP_EUNDEF, "upstream timed out: %.100s", what);
    else
        set_failed(hs, TG_TFTP_EUNDEF, "upstream failed: %.100s", what);
}

/* ---- curl callbacks: bytes and flags only ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct http_stream *hs = arg;
    size_t n = size * nmemb;

    if (hs->state == HS_OPENING) {
        curl_off_t cl = -1;

        /* Headers are complete once the first body byte arrives. */
        curl_easy_getinfo(hs->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        hs->base.size = cl >= 0 ? (int64_t)cl : -1;
        hs->state = HS_OPEN;
        owe(hs, EV_OPENED);
    }
    /* Take the whole chunk or none of it: curl offers it again after the
     * pause (digest M9). */
    if (n > hs->cap - hs->len) {
        hs->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    ring_put(hs, (const uint8_t *)ptr, n);
    if (hs->want && hs->state == HS_OPEN) {
        hs->want = false;
        owe(hs, EV_READABLE);
    }
    return n;
}

static size_t on_upload(char *ptr, size_t size, size_t nitems, void *arg)
{
    struct http_stream *hs = arg;
    size_t n;

    if (hs->len == 0) {
        if (hs->state == HS_COMMITTING)
            return 0; /* end of the body */
        hs->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    n = ring_get(hs, (uint8_t *)ptr, size * nitems);
    if (hs->want) {
        hs->want = false;
        owe(hs, EV_WRITABLE);
    }
    return n;
}

/* ---- request set-up ---- */

static int add_header(struct http_stream *hs, const char *name, const char *value)
{
    char line[TG_PATH_MAX + 64];
    struct curl_slist *n;

    snprintf(line, sizeof(line), "%s%s", name, value);
    n = curl_slist_append(hs->hdrs, line);
    if (!n)
        return TG_ENOMEM;
    hs->hdrs = n;
    return 0;
}

static int setup_easy(struct http_stream *hs, const struct tg_open_args *a)
{
    struct http_backend *hb = hs->hb;
    CURL *e = hs->x.easy;
    size_t i;
    int rc = 0;

    for (i = 0; i < hb->nheaders && rc == 0; i++)
        rc = add_header(hs, hb->headers[i], "");
    if (rc == 0 && hb->client_headers) {
        rc = add_header(hs, "X-TFTP-Client: ", a->client_ip ? a->client_ip : "");
        if (rc == 0)
            rc = add_header(hs, "X-TFTP-File: ", a->filename ? a->filename : "");
    }
    if (rc != 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_URL, hs->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hs->hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, hs->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, hb->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, hb->max_redirects);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, hb->connect_timeout_ms);
    /* A stall is a second without a byte; paused transfers are exempt
     * (digest M14), so a slow TFTP client never trips it. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (hb->stall_timeout_ms + 999) / 1000);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, hb->insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, hb->insecure ? 0L : 2L);
    if (hb->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, hb->ca_file);
    if (hb->client_cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, hb->client_cert);
    if (hb->client_key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, hb->client_key);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    return 0;
}

static void on_done(struct tg_curl_xfer *x, CURLcode rc);

static int start_put(struct http_stream *hs, int64_t size)
{
    CURL *e = hs->x.easy;

    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(e, CURLOPT_READDATA, hs);
    /* Content-Length when the client announced tsize, else chunked
     * (digest M17). */
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(size >= 0 ? size : -1));
    hs->state = HS_OPEN;
    return tg_curl_add(hs->hb->cu, &hs->x);
}

static void on_done(struct tg_curl_xfer *x, CURLcode rc)
{
    struct http_stream *hs = tg_container_of(x, struct http_stream, x);
    long st = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
    if (hs->state == HS_PROBING) {
        /* create mode: the object must not exist yet. */
        if (rc == CURLE_OK && st >= 200 && st < 300) {
            set_failed(hs, TG_TFTP_EEXISTS, "file already exists");
        } else if (st == 404 || st == 410) {
            if (start_put(hs, hs->base.size) == 0) {
                hs->pending |= EV_OPENED;
            } else {
                set_failed(hs, TG_TFTP_EUNDEF, "upstream unavailable");
            }
        } else if (st >= 400) {
            fail_status(hs, st);
        } else {
            fail_curl(hs, rc);
        }
        dispatch(hs);
        return;
    }
    if (rc == CURLE_OK && (st == 0 || (st >= 200 && st < 300))) {
        if (hs->write) {
            hs->state = HS_COMMITTED;
            hs->pending |= EV_COMMITTED;
        } else {
            if (hs->state == HS_OPENING) {
                curl_off_t cl = -1;

                curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                hs->base.size = cl >= 0 ? (int64_t)cl : 0;
                hs->pending |= EV_OPENED;
            }
            hs->state = HS_EOF;
            if (hs->want) {
                hs->want = false;
                hs->pending |= EV_READABLE;
            }
        }
    } else if (st >= 400 || (rc == CURLE_OK && st >= 300)) {
        fail_status(hs, st);
    } else {
        fail_curl(hs, rc);
    }
    dispatch(hs);
}

/* ---- operations ---- */

static int stream_new(struct tg_backend *b, const struct tg_open_args *a, bool write,
                      tg_stream_cb *cb, void *arg, struct http_stream **out)
{
    struct http_backend *hb = (struct http_backend *)b;
    struct http_stream *hs;
    char enc[3 * TG_PATH_MAX];
    size_t ul;

    if (tg_uri_encode_path(a->key, enc, sizeof(enc)) < 0)
        return TG_ENAMETOOLONG;
    hs = tg_calloc(1, sizeof(*hs));
    if (!hs)
        return TG_ENOMEM;
    hs->base.backend = b;
    hs->base.cb = cb;
    hs->base.arg = arg;
    hs->base.size = -1;
    hs->hb = hb;
    hs->write = write;
    hs->cap = a->blksize * 2 > RING_MIN ? a->blksize * 2 : RING_MIN;
    ul = strlen(hb->url) + strlen(enc) + 1;
    hs->ring = tg_malloc(hs->cap);
    hs->url = tg_malloc(ul);
    hs->x.easy = curl_easy_init();
    hs->x.done = on_done;
    hs->x.wake = on_wake;
    hs->x.cu = hb->cu;
    if (!hs->ring || !hs->url || !hs->x.easy) {
        stream_free(hs);
        return TG_ENOMEM;
    }
    snprintf(hs->url, ul, "%s%s", hb->url, enc);
    if (setup_easy(hs, a) != 0) {
        stream_free(hs);
        return TG_ENOMEM;
    }
    *out = hs;
    return 0;
}

static int http_open_read(struct tg_backend *b, const struct tg_open_args *a,
                          tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct http_stream *hs;
    int rc = stream_new(b, a, false, cb, arg, &hs);

    if (rc != 0)
        return rc;
    curl_easy_setopt(hs->x.easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(hs->x.easy, CURLOPT_WRITEDATA, hs);
    hs->state = HS_OPENING;
    if ((rc = tg_curl_add(hs->hb->cu, &hs->x)) != 0) {
        stream_free(hs);
        return rc;
    }
    *out = &hs->base;
    return 0;
}

static int http_open_write(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct http_stream *hs;
    int rc = stream_new(b, a, true, cb, arg, &hs);

    if (rc != 0)
        return rc;
    hs->base.size = a->size_hint;
    hs->create = !a->overwrite;
    /* A 100-continue round trip buys nothing here: the body trickles in at
     * TFTP speed anyway. */
    rc = add_header(hs, "Expect:", "");
    if (rc == 0 && hs->create) {
        /* Servers that know If-None-Match refuse an existing object
         * atomically (412 -> ERROR 6); the HEAD catches the rest early. */
        rc = add_header(hs, "If-None-Match: *", "");
        if (rc == 0) {
            curl_easy_setopt(hs->x.easy, CURLOPT_HTTPHEADER, hs->hdrs);
            curl_easy_setopt(hs->x.easy, CURLOPT_NOBODY, 1L);
            curl_easy_setopt(hs->x.easy, CURLOPT_FAILONERROR, 0L);
            hs->state = HS_PROBING;
            rc = tg_curl_add(hs->hb->cu, &hs->x);
            /* The PUT reuses the handle: errors count again from then. */
        }
    } else if (rc == 0) {
        curl_easy_setopt(hs->x.easy, CURLOPT_HTTPHEADER, hs->hdrs);
        rc = start_put(hs, a->size_hint);
        if (rc == 0)
            owe(hs, EV_OPENED); /* delivered from the loop, never inside open */
    }
    if (rc != 0) {
        tg_curl_remove(&hs->x);
        stream_free(hs);
        return rc;
    }
    *out = &hs->base;
    return 0;
}

static ssize_t http_pull(struct tg_stream *s, uint8_t *dst, size_t len)
{
    struct http_stream *hs = (struct http_stream *)s;
    size_t n;

    if (hs->state == HS_FAILED)
        return TG_EIO;
    n = ring_get(hs, dst, len);
    if (n > 0) {
        /* Room for a whole curl chunk again: resume. curl may call on_body
         * before this returns (digest M10); that only fills the ring. */
        if (hs->paused && hs->cap - hs->len >= CURL_MAX_WRITE_SIZE) {
            hs->paused = false;
            curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
        }
        return (ssize_t)n;
    }
    if (hs->state == HS_EOF)
        return 0;
    hs->want = true;
    return TG_EAGAIN;
}

static int http_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    struct http_stream *hs = (struct http_stream *)s;

    if (hs->state == HS_FAILED)
        return TG_EIO;
    if (hs->state != HS_OPEN)
        return TG_EINVAL;
    if (len > hs->cap - hs->len) {
        hs->want = true;
        return TG_EAGAIN;
    }
    ring_put(hs, src, len);
    if (hs->paused) {
        hs->paused = false;
        curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
    }
    return 0;
}

static int http_commit(struct tg_stream *s)
{
    struct http_stream *hs = (struct http_stream *)s;

    if (hs->state == HS_FAILED)
        return TG_EIO;
    if (hs->state != HS_OPEN)
        return TG_EINVAL;
    hs->state = HS_COMMITTING;
    if (hs->paused) {
        hs->paused = false;
        curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
    }
    return 0;
}

static void http_close(struct tg_stream *s)
{
    struct http_stream *hs = (struct http_stream *)s;

    hs->closed = true;
    /* Removing an unfinished PUT drops the connection mid-body, and the
     * server discards the partial object. */
    tg_curl_remove(&hs->x);
    if (hs->dispatching == 0)
        stream_free(hs);
}

/* ---- configuration ---- */

static void http_destroy(struct tg_backend *b)
{
    struct http_backend *hb = (struct http_backend *)b;
    size_t i;

    for (i = 0; i < hb->nheaders; i++)
        tg_free(hb->headers[i]);
    tg_free(hb->headers);
    tg_free(hb->url);
    tg_free(hb->ca_file);
    tg_free(hb->client_cert);
    tg_free(hb->client_key);
    tg_free(hb->base.name);
    tg_curl_release(hb->cu);
    tg_free(hb);
}

/* "${VAR}" in a header value comes from the environment, so tokens need not
 * sit in the config file. */
static int expand_env(const char *in, char *out, size_t cap, char *bad, size_t badlen)
{
    size_t n = 0;

    while (*in) {
        if (in[0] == '$' && in[1] == '{') {
            const char *end = strchr(in + 2, '}'), *val;
            char name[128];
            size_t nl;

            if (!end || (nl = (size_t)(end - in - 2)) == 0 || nl >= sizeof(name)) {
                snprintf(bad, badlen, "unterminated ${...}");
                return TG_EINVAL;
            }
            memcpy(name, in + 2, nl);
            name[nl] = '\0';
            if (!(val = getenv(name))) {
                snprintf(bad, badlen, "environment variable %s is not set", name);
                return TG_EINVAL;
            }
            if (n + strlen(val) >= cap)
                goto toolong;
            memcpy(out + n, val, strlen(val));
            n += strlen(val);
            in = end + 1;
            continue;
        }
        if (n + 1 >= cap)
            goto toolong;
        out[n++] = *in++;
    }
    out[n] = '\0';
    return 0;
toolong:
    snprintf(bad, badlen, "value too long");
    return TG_EINVAL;
}

static int parse_ms(const char *v, long max, long *out)
{
    uint64_t n;

    if (tg_parse_u64(v, (uint64_t)max, &n) != 0)
        return TG_EINVAL;
    *out = (long)n;
    return 0;
}

static int http_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                       struct tg_backend **out, char *err, size_t errlen)
{
    struct http_backend *hb = tg_calloc(1, sizeof(*hb));
    size_t i;

    if (!hb) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    hb->base.ops = &tg_http_backend_ops;
    hb->base.loop = loop;
    hb->base.name = tg_strdup(cfg->name);
    hb->client_headers = true;
    hb->connect_timeout_ms = 5000;
    hb->stall_timeout_ms = 10000;
    hb->max_redirects = 5;
    hb->headers = tg_calloc(cfg->nkv ? cfg->nkv : 1, sizeof(char *));
    if (!hb->base.name || !hb->headers)
        goto oom;
    for (i = 0; i < cfg->nkv; i++) {
        const struct tg_kv *kv = &cfg->kv[i];
        const char *k = kv->key, *v = kv->value;
        char why[160] = "invalid value";
        int bad = 0;

        if (!strcmp(k, "url")) {
            size_t l = strlen(v);

            if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
                snprintf(why, sizeof(why), "must start with http:// or https://");
                bad = 1;
            } else if (!(hb->url = tg_malloc(l + 2))) {
                goto oom;
            } else {
                /* Keys are appended under the base path, never beside it. */
                snprintf(hb->url, l + 2, "%s%s", v, l && v[l - 1] == '/' ? "" : "/");
            }
        } else if (!strcmp(k, "header")) {
            char exp[1024];

            if (!strchr(v, ':')) {
                snprintf(why, sizeof(why), "expected \"Name: value\"");
                bad = 1;
            } else if (expand_env(v, exp, sizeof(exp), why, sizeof(why)) != 0) {
                bad = 1;
            } else if (strpbrk(exp, "\r\n")) {
                snprintf(why, sizeof(why), "line breaks are not allowed");
                bad = 1;
            } else if (!(hb->headers[hb->nheaders++] = tg_strdup(exp))) {
                goto oom;
            }
        } else if (!strcmp(k, "ca_file") || !strcmp(k, "client_cert") ||
                   !strcmp(k, "client_key")) {
            char **dst = !strcmp(k, "ca_file") ? &hb->ca_file
                         : !strcmp(k, "client_cert") ? &hb->client_cert : &hb->client_key;

            if (!(*dst = tg_strdup(v)))
                goto oom;
        } else if (!strcmp(k, "insecure")) {
            bad = tg_config_parse_bool(v, &hb->insecure) != 0;
        } else if (!strcmp(k, "client_headers")) {
            bad = tg_config_parse_bool(v, &hb->client_headers) != 0;
        } else if (!strcmp(k, "connect_timeout")) {
            bad = parse_ms(v, 600000, &hb->connect_timeout_ms) != 0 || hb->connect_timeout_ms < 100;
            if (bad)
                snprintf(why, sizeof(why), "milliseconds, 100..600000");
        } else if (!strcmp(k, "stall_timeout")) {
            bad = parse_ms(v, 600000, &hb->stall_timeout_ms) != 0 || hb->stall_timeout_ms < 1000;
            if (bad)
                snprintf(why, sizeof(why), "milliseconds, 1000..600000");
        } else if (!strcmp(k, "max_redirects")) {
            bad = parse_ms(v, 50, &hb->max_redirects) != 0;
            if (bad)
                snprintf(why, sizeof(why), "0..50");
        } else {
            snprintf(why, sizeof(why), "unknown key for an http backend");
            bad = 1;
        }
        if (bad) {
            snprintf(err, errlen, "line %d: %s: %s", kv->line, k, why);
            http_destroy(&hb->base);
            return TG_EINVAL;
        }
    }
    if (!hb->url) {
        snprintf(err, errlen, "line %d: url: required for an http backend", cfg->line);
        http_destroy(&hb->base);
        return TG_EINVAL;
    }
    if (hb->insecure)
        tg_log(TG_LOG_WARN, "backend %s: TLS verification is off (insecure = yes)", cfg->name);
    hb->cu = tg_curl_acquire(loop);
    if (!hb->cu)
        goto oom;
    *out = &hb->base;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    http_destroy(&hb->base);
    return TG_ENOMEM;
}

const struct tg_backend_ops tg_http_backend_ops = {
    "http",          /* type */
    http_create,     /* create */
    http_destroy,    /* destroy */
    http_open_read,  /* open_read */
    http_open_write, /* open_write */
    http_pull,       /* pull */
    http_push,       /* push */
    http_commit,     /* commit */
    http_close,      /* close */
};

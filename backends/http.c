/* backends/http.c - the HTTP(S) backend (RRQ as a streamed GET, WRQ as a
 * streamed PUT) and the request engine it shares with the s3 backend, all
 * on the loop's shared curl multi handle (gateway/curl_uv.c).
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
#include <strings.h>

#include "http_engine.h"
#include "tftpgw/keys.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/uri.h"

#define RING_MIN (64 * 1024)

#define EV_BIT(e) (1u << (e))

const struct tg_stream_ops hx_read_ops = {
    .pull = hx_pull,
    .close = hx_close,
};

const struct tg_stream_ops hx_write_ops = {
    .push = hx_push,
    .commit = hx_commit,
    .close = hx_close,
};

/* ---- ring ---- */

static size_t ring_put(struct hx_stream *hs, const uint8_t *src, size_t n)
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

static size_t ring_get(struct hx_stream *hs, uint8_t *dst, size_t n)
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

static void stream_release(struct hx_stream *hs)
{
    if (hs->x.easy)
        curl_easy_cleanup(hs->x.easy);
    curl_slist_free_all(hs->hdrs);
    tg_free(hs->url);
    tg_free(hs->hop_url);
    tg_free(hs->client_ip);
    tg_free(hs->filename);
    tg_free(hs->ring);
    tg_free(hs);
}

static void on_stall_closed(uv_handle_t *h)
{
    stream_release(h->data);
}

static void stream_free(struct hx_stream *hs)
{
    if (!hs->stall_init) {
        stream_release(hs);
        return;
    }
    uv_timer_stop(&hs->stall);
    uv_close((uv_handle_t *)&hs->stall, on_stall_closed);
}

static void stream_fin(struct tg_life *l)
{
    stream_free(tg_container_of(l, struct hx_stream, life));
}

static void dispatch(struct hx_stream *hs)
{
    static const enum tg_stream_ev order[] = {TG_STREAM_OPENED, TG_STREAM_READABLE,
                                              TG_STREAM_WRITABLE, TG_STREAM_COMMITTED,
                                              TG_STREAM_FAILED};

    /* The owner may close us from its callback: the hold defers the free. */
    tg_life_hold(&hs->life);
    for (size_t i = 0; i < TG_ARRAY_LEN(order) && !hs->life.closed; i++) {
        if (!(hs->pending & EV_BIT(order[i])))
            continue;
        hs->pending &= ~EV_BIT(order[i]);
        hs->base.cb(&hs->base, order[i], hs->base.arg);
    }
    tg_life_release(&hs->life);
}

static void on_wake(struct tg_curl_xfer *x)
{
    dispatch(tg_container_of(x, struct hx_stream, x));
}

/* From inside a curl callback: record, deliver later. */
static void owe(struct hx_stream *hs, enum tg_stream_ev ev)
{
    hs->pending |= EV_BIT(ev);
    tg_curl_wake(&hs->x);
}

static const char *hx_method(const struct hx_stream *hs)
{
    if (hs->state == HX_PROBING)
        return "HEAD";
    return hs->write ? "PUT" : "GET";
}

void hx_fail(struct hx_stream *hs, uint16_t code, const char *wire)
{
    hs->base.err.code = code;
    snprintf(hs->base.err.msg, sizeof(hs->base.err.msg), "%s", wire);
    hs->state = HX_FAILED;
    hs->pending = EV_BIT(TG_STREAM_FAILED);
}

void hx_fail_log(struct hx_stream *hs, uint16_t code, const char *wire, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    hx_log_failure(hs->base.backend->name, hx_method(hs), hs->hop_url ? hs->hop_url : hs->url,
                   hs->client_ip, hs->filename, detail);
    hx_fail(hs, code, wire);
}

void hx_fail_status(struct hx_stream *hs, long st, const char *detail)
{
    const char *d = detail ? detail : "", *sp = d[0] ? " " : "";
    char wire[64];

    if (st == 404 || st == 410) {
        hx_fail(hs, TG_TFTP_ENOTFOUND, "file not found"); /* an answer, not a failure */
    } else if (st == 401 || st == 403) {
        hx_fail_log(hs, TG_TFTP_EACCESS, "access denied by upstream", "HTTP %ld%s%s", st, sp, d);
    } else if (hs->create && (st == 409 || st == 412)) {
        hx_fail(hs, TG_TFTP_EEXISTS, "file already exists");
    } else if (hs->write && (st == 413 || st == 507)) {
        hx_fail_log(hs, TG_TFTP_ENOSPACE, "upstream refused the size", "HTTP %ld%s%s", st, sp, d);
    } else {
        snprintf(wire, sizeof(wire), "upstream error %ld", st);
        hx_fail_log(hs, TG_TFTP_EUNDEF, wire, "HTTP %ld%s%s", st, sp, d);
    }
}

/* Connection refused, name not resolved, TLS, timeouts, a connection lost
 * mid-body: the client learns only that the upstream is unavailable. */
static void fail_curl(struct hx_stream *hs, CURLcode rc)
{
    hx_fail_log(hs, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE, "curl %d (%s): %s", (int)rc,
                curl_easy_strerror(rc), hs->errbuf[0] ? hs->errbuf : "no detail");
}

/* A URL for a log line: user:password is a secret and is left out. */
static void url_for_log(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *at = memrchr(host, '@', strcspn(host, "/?#"));
    char tmp[HX_URL_MAX + 16];

    if (at)
        snprintf(tmp, sizeof(tmp), "%.*s%s", (int)(host - url), url, at + 1);
    else
        snprintf(tmp, sizeof(tmp), "%s", url);
    tg_log_sanitize(tmp, out, cap);
}

void hx_log_failure(const char *backend, const char *method, const char *url,
                    const char *client_ip, const char *filename, const char *detail)
{
    char u[600], d[700], f[300];

    url_for_log(url, u, sizeof(u));
    tg_log_sanitize(detail, d, sizeof(d));
    if (client_ip && client_ip[0])
        tg_log(TG_LOG_WARN, "backend %s: %s %s failed: %s (client %s file \"%s\")", backend,
               method, u, d, client_ip, tg_log_sanitize(filename ? filename : "", f, sizeof(f)));
    else
        tg_log(TG_LOG_WARN, "backend %s: %s %s failed: %s", backend, method, u, d);
}

/* ---- curl callbacks: bytes and flags only ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct hx_stream *hs = arg;
    size_t n = size * nmemb;

    hs->last_move = uv_now(hs->base.backend->loop);
    if (hs->state == HX_OPENING || hs->write)
        curl_easy_getinfo(hs->x.easy, CURLINFO_RESPONSE_CODE, &hs->status);
    if (hs->write || hs->status >= 300) {
        /* An error document, or a PUT's answer: keep its start for the
         * profile (S3 names the error in it), never hand it on. */
        size_t k = n < HX_ERRBODY - 1 - hs->errlen ? n : HX_ERRBODY - 1 - hs->errlen;

        memcpy(hs->errbody + hs->errlen, ptr, k);
        hs->errlen += k;
        hs->errbody[hs->errlen] = '\0';
        return n;
    }
    if (hs->state == HX_OPENING) {
        curl_off_t cl = -1;

        /* Headers are complete once the first body byte arrives. */
        curl_easy_getinfo(hs->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        hs->base.size = cl >= 0 ? (int64_t)cl : -1;
        hs->state = HX_OPEN;
        owe(hs, TG_STREAM_OPENED);
    }
    /* Take the whole chunk or none of it: curl offers it again after the
     * pause (digest M9). */
    if (n > hs->cap - hs->len) {
        hs->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    ring_put(hs, (const uint8_t *)ptr, n);
    if (hs->want) {
        hs->want = false;
        owe(hs, TG_STREAM_READABLE);
    }
    return n;
}

static size_t on_upload(char *ptr, size_t size, size_t nitems, void *arg)
{
    struct hx_stream *hs = arg;
    size_t n;

    if (hs->len == 0) {
        if (hs->state == HX_COMMITTING)
            return 0; /* end of the body */
        hs->paused = true;
        return CURL_READFUNC_PAUSE;
    }
    n = ring_get(hs, (uint8_t *)ptr, size * nitems);
    hs->last_move = uv_now(hs->base.backend->loop);
    if (hs->want) {
        hs->want = false;
        owe(hs, TG_STREAM_WRITABLE);
    }
    return n;
}

static void copy_header_value(const char *v, const char *end, char *out, size_t cap)
{
    size_t k;

    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    k = (size_t)(end - v);
    while (k > 0 && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
        k--;
    if (k < cap) {
        memcpy(out, v, k);
        out[k] = '\0';
    }
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    struct hx_stream *hs = arg;
    size_t n = size * nitems;

    hs->last_move = uv_now(hs->base.backend->loop);
    /* Validators for the cache; S3 also names a multipart part by its
     * ETag. A new status line starts a new response (redirects). */
    if (n > 5 && strncmp(buf, "HTTP/", 5) == 0) {
        hs->meta.val.etag[0] = hs->meta.val.last_modified[0] = '\0';
        hs->chunked = false;
    } else if (n > 18 && strncasecmp(buf, "Transfer-Encoding:", 18) == 0) {
        char te[128] = "";

        copy_header_value(buf + 18, buf + n, te, sizeof(te));
        hs->chunked = strcasestr(te, "chunked") != NULL;
    } else if (n > 5 && strncasecmp(buf, "ETag:", 5) == 0) {
        copy_header_value(buf + 5, buf + n, hs->meta.val.etag, sizeof(hs->meta.val.etag));
    } else if (n > 14 && strncasecmp(buf, "Last-Modified:", 14) == 0) {
        copy_header_value(buf + 14, buf + n, hs->meta.val.last_modified,
                          sizeof(hs->meta.val.last_modified));
    }
    return n;
}

/* ---- requests ---- */

int hx_add_header(struct curl_slist **l, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    char *line = tg_malloc(nl + vl + 1);
    struct curl_slist *n;

    /* Sized to fit: a session token or a bearer token can be kilobytes. */
    if (!line)
        return TG_ENOMEM;
    memcpy(line, name, nl);
    memcpy(line + nl, value, vl + 1);
    n = curl_slist_append(*l, line);
    tg_free(line);
    if (!n)
        return TG_ENOMEM;
    *l = n;
    return 0;
}

void hx_transport(CURL *e, const struct hx_conf *c, bool creds)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by the engine, which applies `redirects`
     * and decides which credentials go along (on_redirect). */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    /* Our own floor, whatever the system's OpenSSL policy says: an
     * upstream that offers less than TLS 1.2 is refused. */
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_PROXY_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(e, CURLOPT_SSLCERT, creds ? c->client_cert : NULL);
    curl_easy_setopt(e, CURLOPT_SSLKEY, creds ? c->client_key : NULL);
    if (!creds) {
        /* A profile's signing (s3) set these; the basic default without
         * a user sends no Authorization at all. */
        curl_easy_setopt(e, CURLOPT_AWS_SIGV4, NULL);
        curl_easy_setopt(e, CURLOPT_USERPWD, NULL);
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
}

/* Options every request of a stream shares. */
static void setup_common(struct hx_stream *hs)
{
    CURL *e = hs->x.easy;

    curl_easy_setopt(e, CURLOPT_URL, hs->url);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, hs->errbuf);
    hx_transport(e, hs->conf, true);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, hs);
}

/* Fresh headers for the next request on this handle. A request to another
 * origin than the configured one (a redirect under `redirects = any`)
 * carries none of the profile's: no configured header, no X-TFTP-*, no
 * signature. */
static int prepare(struct hx_stream *hs, const char *method)
{
    struct curl_slist *l = NULL;
    bool put = strcmp(method, "PUT") == 0;
    int rc = hs->foreign ? 0 : hs->prof->prepare(hs, method, &l);

    /* A 100-continue round trip buys nothing: the body trickles in at TFTP
     * speed anyway. */
    if (rc == 0 && put && hs->prof->drop_expect)
        rc = hx_add_header(&l, "Expect:", "");
    if (rc == 0 && put && hs->create && hs->prof->if_none_match)
        rc = hx_add_header(&l, "If-None-Match: *", "");
    if (rc == 0 && !strcmp(method, "GET") && hs->cond.etag[0])
        rc = hx_add_header(&l, "If-None-Match: ", hs->cond.etag);
    if (rc == 0 && !strcmp(method, "GET") && hs->cond.last_modified[0])
        rc = hx_add_header(&l, "If-Modified-Since: ", hs->cond.last_modified);
    if (rc != 0) {
        curl_slist_free_all(l);
        return rc;
    }
    curl_slist_free_all(hs->hdrs);
    hs->hdrs = l;
    curl_easy_setopt(hs->x.easy, CURLOPT_HTTPHEADER, hs->hdrs);
    return 0;
}

static int start_put(struct hx_stream *hs)
{
    CURL *e = hs->x.easy;
    int rc = prepare(hs, "PUT");

    if (rc != 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(e, CURLOPT_READDATA, hs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, hs);
    /* Content-Length when the size is known (the client's tsize), else
     * chunked (digest M17). */
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
                     (curl_off_t)(hs->base.size >= 0 ? hs->base.size : -1));
    hs->state = HX_OPEN;
    return tg_curl_add(hs->conf->cu, &hs->x);
}

static bool is_redirect(long st)
{
    return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

/* Back to the configured URL with every credential (a create-mode PUT
 * after a HEAD that was redirected). */
static void back_to_origin(struct hx_stream *hs)
{
    if (!hs->hop_url)
        return;
    tg_free(hs->hop_url);
    hs->hop_url = NULL;
    hs->foreign = false;
    curl_easy_setopt(hs->x.easy, CURLOPT_URL, hs->url);
    hx_transport(hs->x.easy, hs->conf, true);
}

/* A 3xx answer to a GET or HEAD: curl never follows (hx_transport); the
 * engine does, under the backend's `redirects` policy, with the same easy
 * handle and fresh headers. Returns true when the request was restarted;
 * otherwise the stream has failed. A PUT is never redirected: its body
 * was streamed from the session and cannot be sent again. */
static bool on_redirect(struct hx_stream *hs, long st)
{
    const char *method = hx_method(hs);
    char *to = NULL, why[160], wire[64];
    bool foreign = false;

    snprintf(wire, sizeof(wire), "upstream error %ld", st);
    curl_easy_getinfo(hs->x.easy, CURLINFO_REDIRECT_URL, &to);
    if (hs->write && hs->state != HX_PROBING) {
        hx_fail_log(hs, TG_TFTP_EUNDEF, wire, "HTTP %ld to %.300s: a PUT is not redirected", st,
                    to ? to : "(no Location)");
        return false;
    }
    if (!is_redirect(st) || !to) {
        hx_fail_log(hs, TG_TFTP_EUNDEF, wire, "HTTP %ld without a redirect to follow", st);
        return false;
    }
    if (strlen(to) > HX_URL_MAX) {
        hx_fail_log(hs, TG_TFTP_EUNDEF, wire, "HTTP %ld to a URL of %zu bytes: refused", st,
                    strlen(to));
        return false;
    }
    if (hx_redirect_check(hs->conf, hs->url, to, hs->hops, &foreign, why, sizeof(why)) != 0) {
        hx_fail_log(hs, TG_TFTP_EUNDEF, wire, "HTTP %ld to %.300s refused: %s", st, to, why);
        return false;
    }
    /* `to` belongs to the handle and changes with its next request. */
    tg_free(hs->hop_url);
    if (!(hs->hop_url = tg_strdup(to))) {
        hx_fail(hs, TG_TFTP_EUNDEF, "out of memory");
        return false;
    }
    hs->hops++;
    hs->foreign = foreign;
    curl_easy_setopt(hs->x.easy, CURLOPT_URL, hs->hop_url);
    hx_transport(hs->x.easy, hs->conf, !foreign);
    hs->status = 0;
    hs->errlen = 0;
    hs->errbody[0] = hs->errbuf[0] = '\0';
    hs->meta.val.etag[0] = hs->meta.val.last_modified[0] = '\0';
    hs->last_move = uv_now(hs->base.backend->loop);
    if (prepare(hs, method) != 0 || tg_curl_add(hs->conf->cu, &hs->x) != 0) {
        hx_fail(hs, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE);
        return false;
    }
    if (tg_log_enabled(TG_LOG_DEBUG)) {
        char u[600];

        url_for_log(hs->hop_url, u, sizeof(u));
        tg_log(TG_LOG_DEBUG, "backend %s: %s redirected (HTTP %ld) to %s%s",
               hs->base.backend->name, method, st, u,
               foreign ? ", another origin: no credentials sent" : "");
    }
    return true;
}

/* create mode: the object must not exist yet. */
static void on_probed(struct hx_stream *hs, CURLcode rc, long st)
{
    if (rc == CURLE_OK && st >= 200 && st < 300) {
        hx_fail(hs, TG_TFTP_EEXISTS, "file already exists");
    } else if (st == 404 || st == 410) {
        back_to_origin(hs);
        if (start_put(hs) == 0)
            hs->pending |= EV_BIT(TG_STREAM_OPENED);
        else
            hx_fail(hs, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE);
    } else if (st >= 400) {
        hs->prof->map_error(hs, st, "");
    } else if (rc == CURLE_OK && st >= 300) {
        if (on_redirect(hs, st))
            return;
    } else if (rc == CURLE_OK) {
        hx_fail_status(hs, st, "to a HEAD");
    } else {
        fail_curl(hs, rc);
    }
    dispatch(hs);
}

static void on_done(struct tg_curl_xfer *x, CURLcode rc)
{
    struct hx_stream *hs = tg_container_of(x, struct hx_stream, x);
    long st = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
    hs->status = st;
    if (hs->state == HX_PROBING) {
        on_probed(hs, rc, st);
        return;
    }
    if (rc == CURLE_OK && st == 304 && !hs->write &&
        (hs->cond.etag[0] || hs->cond.last_modified[0])) {
        /* Revalidated: the caller keeps its copy. */
        hs->meta.not_modified = true;
        hs->base.size = -1;
        if (hs->state == HX_OPENING)
            hs->pending |= EV_BIT(TG_STREAM_OPENED);
        hs->state = HX_EOF;
    } else if (rc == CURLE_OK && st >= 200 && st < 300) {
        curl_off_t up = 0;

        curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up);
        if (hs->write && hs->state != HX_COMMITTING &&
            (hs->base.size < 0 || up != (curl_off_t)hs->base.size)) {
            /* The server answered before it had the body: whatever it
             * says, the object is not what the client is sending. */
            hx_fail_log(hs, TG_TFTP_EUNDEF, "upstream answered before the upload was complete",
                        "HTTP %ld after %lld of %lld bytes", st, (long long)up,
                        (long long)hs->base.size);
        } else if (hs->write && hs->state != HX_COMMITTING) {
            /* Every byte is sent (an empty body is sent at once): COMMITTED
             * waits for commit(), or the owner would see an upload finish
             * that it has not finished. */
            hs->done_early = true;
        } else if (hs->write) {
            hs->state = HX_COMMITTED;
            hs->pending |= EV_BIT(TG_STREAM_COMMITTED);
        } else {
            curl_off_t cl = -1;

            /* curl checks a Content-Length or the last chunk; without
             * either, only the connection's close ended the body. */
            curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
            hs->meta.end_unproven = cl < 0 && !hs->chunked;
            if (hs->state == HX_OPENING) {
                /* An empty body: OPENED was never sent from on_body. */
                hs->base.size = 0;
                hs->pending |= EV_BIT(TG_STREAM_OPENED);
            }
            hs->state = HX_EOF;
            if (hs->want) {
                hs->want = false;
                hs->pending |= EV_BIT(TG_STREAM_READABLE);
            }
        }
    } else if (st >= 400 && (rc == CURLE_OK || hs->errlen > 0 || hs->write)) {
        hs->prof->map_error(hs, st, hs->errbody);
    } else if (st >= 300 && st < 400 && (rc == CURLE_OK || hs->write)) {
        if (on_redirect(hs, st))
            return;
    } else if (rc == CURLE_OK) {
        hx_fail_status(hs, st, "unexpected");
    } else {
        fail_curl(hs, rc);
    }
    dispatch(hs);
}

/* stall_timeout: nothing moved either way while the transfer was not
 * paused by us. curl's low-speed check averages over several seconds and
 * would answer far later; a paused transfer is the TFTP side's doing. */
static void on_stall_check(uv_timer_t *t)
{
    struct hx_stream *hs = t->data;
    uint64_t now = uv_now(hs->base.backend->loop);
    bool active = hs->state == HX_PROBING || hs->state == HX_OPENING ||
                  hs->state == HX_OPEN || hs->state == HX_COMMITTING;

    if (!active || hs->life.closed || !hs->x.added) {
        uv_timer_stop(t);
        return;
    }
    if (hs->paused || hs->x.queued) {
        hs->last_move = now; /* waiting for us, or for a connection slot */
        return;
    }
    if (now - hs->last_move < (uint64_t)hs->conf->stall_timeout_ms)
        return;
    uv_timer_stop(t);
    tg_curl_remove(&hs->x);
    hx_fail_log(hs, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE, "stalled: nothing moved for %ld ms",
                hs->conf->stall_timeout_ms);
    dispatch(hs);
}

int hx_open(struct tg_backend *b, const struct hx_conf *conf, const struct hx_profile *prof,
            void *owner, const char *url, const struct tg_open_args *a, bool write,
            tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct hx_stream *hs = tg_calloc(1, sizeof(*hs));
    int rc;

    if (!hs)
        return TG_ENOMEM;
    tg_life_init(&hs->life, stream_fin);
    hs->base.ops = write ? &hx_write_ops : &hx_read_ops;
    hs->base.http = &hs->meta;
    hs->base.backend = b;
    hs->base.cb = cb;
    hs->base.arg = arg;
    hs->base.size = write ? a->size_hint : -1;
    hs->conf = conf;
    hs->prof = prof;
    hs->owner = owner;
    hs->write = write;
    hs->create = write && !a->overwrite;
    hs->cap = a->blksize * 2 > RING_MIN ? a->blksize * 2 : RING_MIN;
    hs->ring = tg_malloc(hs->cap);
    hs->url = tg_strdup(url);
    hs->client_ip = tg_strdup(a->client_ip ? a->client_ip : "");
    hs->filename = tg_strdup(a->filename ? a->filename : "");
    if (a->if_changed && !write)
        hs->cond = *a->if_changed;
    hs->x.easy = curl_easy_init();
    hs->x.done = on_done;
    hs->x.wake = on_wake;
    hs->x.cu = conf->cu;
    hs->x.cap = conf->cap;
    if (!hs->ring || !hs->url || !hs->client_ip || !hs->filename || !hs->x.easy) {
        stream_free(hs);
        return TG_ENOMEM;
    }
    setup_common(hs);
    uv_timer_init(b->loop, &hs->stall);
    hs->stall.data = hs;
    hs->stall_init = true;
    hs->last_move = uv_now(b->loop);
    {
        uint64_t every = (uint64_t)conf->stall_timeout_ms / 4;

        uv_timer_start(&hs->stall, on_stall_check, every, every < 100 ? 100 : every);
    }
    if (!write) {
        rc = prepare(hs, "GET");
        curl_easy_setopt(hs->x.easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(hs->x.easy, CURLOPT_WRITEDATA, hs);
        hs->state = HX_OPENING;
        if (rc == 0)
            rc = tg_curl_add(conf->cu, &hs->x);
    } else if (hs->create) {
        rc = prepare(hs, "HEAD");
        curl_easy_setopt(hs->x.easy, CURLOPT_NOBODY, 1L);
        hs->state = HX_PROBING;
        if (rc == 0)
            rc = tg_curl_add(conf->cu, &hs->x);
    } else {
        rc = start_put(hs);
        if (rc == 0)
            owe(hs, TG_STREAM_OPENED); /* from the loop, never inside open */
    }
    if (rc != 0) {
        tg_curl_remove(&hs->x);
        stream_free(hs);
        return rc;
    }
    *out = &hs->base;
    return 0;
}

ssize_t hx_pull(struct tg_stream *s, uint8_t *dst, size_t len)
{
    struct hx_stream *hs = (struct hx_stream *)s;
    size_t n;

    if (hs->state == HX_FAILED)
        return TG_EIO;
    n = ring_get(hs, dst, len);
    if (n > 0) {
        /* Room for a whole curl chunk again: resume. curl may call on_body
         * before this returns (digest M10); that only fills the ring. */
        if (hs->paused && hs->cap - hs->len >= CURL_MAX_WRITE_SIZE) {
            hs->paused = false;
            hs->last_move = uv_now(hs->base.backend->loop);
            curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
        }
        return (ssize_t)n;
    }
    if (hs->state == HX_EOF)
        return 0;
    hs->want = true;
    return TG_EAGAIN;
}

int hx_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    struct hx_stream *hs = (struct hx_stream *)s;

    if (hs->state == HX_FAILED)
        return TG_EIO;
    if (hs->state != HX_OPEN)
        return TG_EINVAL;
    if (len > hs->cap - hs->len) {
        hs->want = true;
        return TG_EAGAIN;
    }
    ring_put(hs, src, len);
    if (hs->paused) {
        hs->paused = false;
        hs->last_move = uv_now(hs->base.backend->loop);
        curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
    }
    return 0;
}

int hx_commit(struct tg_stream *s)
{
    struct hx_stream *hs = (struct hx_stream *)s;

    if (hs->state == HX_FAILED)
        return TG_EIO;
    if (hs->state != HX_OPEN)
        return TG_EINVAL;
    if (hs->done_early && hs->len > 0) {
        hx_fail(hs, TG_TFTP_EUNDEF, "upstream answered before the upload was complete");
        return TG_EIO;
    }
    hs->state = HX_COMMITTING;
    if (hs->done_early) {
        hs->state = HX_COMMITTED;
        owe(hs, TG_STREAM_COMMITTED); /* delivered from the loop */
        return 0;
    }
    if (hs->paused) {
        hs->paused = false;
        curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
    }
    return 0;
}

void hx_close(struct tg_stream *s)
{
    struct hx_stream *hs = (struct hx_stream *)s;

    /* Removing an unfinished PUT drops the connection mid-body, and the
     * server discards the partial object. */
    tg_curl_remove(&hs->x);
    tg_life_close(&hs->life);
}

/* ---- redirect policy ---- */

/* scheme, host and port (the scheme's default when absent) of url. */
static bool origin_parts(const char *url, char **scheme, char **host, char **port)
{
    CURLU *u = curl_url();
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK;

    curl_url_cleanup(u);
    return ok;
}

bool hx_same_origin(const char *a, const char *b)
{
    char *s1 = NULL, *h1 = NULL, *p1 = NULL, *s2 = NULL, *h2 = NULL, *p2 = NULL;
    bool same = origin_parts(a, &s1, &h1, &p1) && origin_parts(b, &s2, &h2, &p2) &&
                !strcasecmp(s1, s2) && !strcasecmp(h1, h2) && !strcmp(p1, p2);

    curl_free(s1);
    curl_free(h1);
    curl_free(p1);
    curl_free(s2);
    curl_free(h2);
    curl_free(p2);
    return same;
}

int hx_redirect_check(const struct hx_conf *c, const char *origin, const char *to, int hops,
                      bool *foreign, char *why, size_t whylen)
{
    bool https = !strncasecmp(origin, "https:", 6);

    *foreign = false;
    if (c->redirects == HX_REDIR_NONE) {
        snprintf(why, whylen, "redirects = none");
        return TG_EINVAL;
    }
    if (hops >= c->max_redirects) {
        snprintf(why, whylen, "more than max_redirects = %ld", c->max_redirects);
        return TG_EINVAL;
    }
    if (strncasecmp(to, "http://", 7) && strncasecmp(to, "https://", 8)) {
        snprintf(why, whylen, "not an http or https URL");
        return TG_EINVAL;
    }
    if (https && strncasecmp(to, "https://", 8)) {
        snprintf(why, whylen, "would leave https for http");
        return TG_EINVAL;
    }
    *foreign = !hx_same_origin(origin, to);
    if (*foreign && c->redirects == HX_REDIR_SAME_ORIGIN) {
        snprintf(why, whylen, "another origin (redirects = same-origin)");
        return TG_EINVAL;
    }
    return 0;
}

/* ---- shared configuration ---- */

#define HX(f) TG_KEY_AT(struct hx_conf, f)

static const char *const redirect_names[] = {"same-origin", "any", "none", NULL};

/* The transport keys of both backend types (gateway/keys.c reads them). */
const struct tg_key hx_conf_keys[] = {
    {.name = "ca_file", .type = TG_KEY_STRING, HX(ca_file), .flags = TG_KEY_EMPTY_OK},
    {.name = "client_cert", .type = TG_KEY_STRING, HX(client_cert), .flags = TG_KEY_EMPTY_OK},
    {.name = "client_key", .type = TG_KEY_STRING, HX(client_key), .flags = TG_KEY_EMPTY_OK},
    {.name = "insecure", .type = TG_KEY_BOOL, HX(insecure), .def = "no", .bad = "invalid value"},
    {.name = "connect_timeout", .type = TG_KEY_UINT, HX(connect_timeout_ms), .min = 100,
     .max = 600000, .def = "5000", .bad = "milliseconds, 100..600000"},
    {.name = "stall_timeout", .type = TG_KEY_UINT, HX(stall_timeout_ms), .min = 1000,
     .max = 600000, .def = "10000", .bad = "milliseconds, 1000..600000"},
    {.name = "max_redirects", .type = TG_KEY_UINT, HX(max_redirects), .min = 0, .max = 50,
     .def = "5", .bad = "0..50"},
    {.name = "redirects", .type = TG_KEY_ENUM, HX(redirects), .names = redirect_names,
     .flags = TG_KEY_CASE, .def = "same-origin", .bad = "same-origin, any or none"},
    {.name = "max_connections", .type = TG_KEY_UINT, HX(max_connections), .min = 1,
     .max = 10000, .def = "64", .bad = "1..10000"},
};
const size_t hx_conf_nkeys = TG_ARRAY_LEN(hx_conf_keys);

void hx_conf_init(struct hx_conf *c)
{
    memset(c, 0, sizeof(*c));
    /* No default is a string: nothing to allocate, nothing can fail. */
    (void)tg_key_defaults(c, hx_conf_keys, hx_conf_nkeys);
}

int hx_conf_start(struct hx_conf *c, uv_loop_t *loop)
{
    if (!(c->cap = tg_curl_cap_new((unsigned)c->max_connections)))
        return TG_ENOMEM;
    return (c->cu = tg_curl_acquire(loop)) ? 0 : TG_ENOMEM;
}

void hx_conf_free(struct hx_conf *c)
{
    tg_free(c->ca_file);
    tg_free(c->client_cert);
    tg_free(c->client_key);
    tg_curl_release(c->cu);
    c->cu = NULL;
    tg_curl_cap_free(c->cap);
    c->cap = NULL;
}

int hx_conf_key(struct hx_conf *c, const char *k, const char *v, char *why, size_t whylen)
{
    const struct tg_key *row = tg_key_find(hx_conf_keys, hx_conf_nkeys, k);
    int rc;

    if (!row)
        return 0;
    rc = tg_key_set(c, row, v, why, whylen);
    return rc < 0 ? rc : 1;
}

int hx_expand_env(const char *in, char *out, size_t cap, char *why, size_t whylen)
{
    size_t n = 0;

    while (*in) {
        if (in[0] == '$' && in[1] == '{') {
            const char *end = strchr(in + 2, '}'), *val;
            char name[128];
            size_t nl, vl;

            if (!end || (nl = (size_t)(end - in - 2)) == 0 || nl >= sizeof(name)) {
                snprintf(why, whylen, "unterminated ${...}");
                return TG_EINVAL;
            }
            memcpy(name, in + 2, nl);
            name[nl] = '\0';
            if (!(val = getenv(name))) {
                snprintf(why, whylen, "environment variable %s is not set", name);
                return TG_EINVAL;
            }
            vl = strlen(val);
            if (n + vl >= cap)
                goto toolong;
            memcpy(out + n, val, vl);
            n += vl;
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
    snprintf(why, whylen, "value too long");
    return TG_EINVAL;
}

/* ---- the http backend type ---- */

struct http_backend {
    struct tg_backend base;
    struct hx_conf conf;
    char *url;      /* base URL, ends with '/' */
    char **headers; /* "Name: value", ${VAR} already expanded */
    size_t nheaders;
    bool client_headers;
    char *user, *password; /* the url's user:password, taken out of it */
};

static int http_prepare(struct hx_stream *hs, const char *method, struct curl_slist **l)
{
    const struct http_backend *hb = hs->owner;
    size_t i;
    int rc = 0;

    (void)method;
    if (hb->user) {
        curl_easy_setopt(hs->x.easy, CURLOPT_USERNAME, hb->user);
        curl_easy_setopt(hs->x.easy, CURLOPT_PASSWORD, hb->password);
    }
    for (i = 0; i < hb->nheaders && rc == 0; i++)
        rc = hx_add_header(l, hb->headers[i], "");
    if (rc == 0 && hb->client_headers) {
        rc = hx_add_header(l, "X-TFTP-Client: ", hs->client_ip);
        if (rc == 0)
            rc = hx_add_header(l, "X-TFTP-File: ", hs->filename);
    }
    /* FAILONERROR would hide the status of a failed PUT behind a send
     * error; errors are read from the status instead. */
    return rc;
}

static void http_map_error(struct hx_stream *hs, long status, const char *body)
{
    (void)body;
    hx_fail_status(hs, status, NULL);
}

static const struct hx_profile http_profile = {
    http_prepare,   /* prepare */
    http_map_error, /* map_error */
    true,           /* if_none_match */
    true,           /* drop_expect */
};

static int http_open(struct tg_backend *b, const struct tg_open_args *a, bool write,
                     tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct http_backend *hb = (struct http_backend *)b;
    char enc[3 * TG_PATH_MAX], url[3 * TG_PATH_MAX + 512];

    if (tg_uri_encode_path(a->key, enc, sizeof(enc)) < 0)
        return TG_ENAMETOOLONG;
    if ((size_t)snprintf(url, sizeof(url), "%s%s", hb->url, enc) >= sizeof(url))
        return TG_ENAMETOOLONG;
    return hx_open(b, &hb->conf, &http_profile, hb, url, a, write, cb, arg, out);
}

static int http_open_read(struct tg_backend *b, const struct tg_open_args *a,
                          tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    return http_open(b, a, false, cb, arg, out);
}

static int http_open_write(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    return http_open(b, a, true, cb, arg, out);
}

static void http_destroy(struct tg_backend *b)
{
    struct http_backend *hb = (struct http_backend *)b;
    size_t i;

    for (i = 0; i < hb->nheaders; i++)
        tg_free(hb->headers[i]);
    tg_free(hb->headers);
    tg_free(hb->url);
    tg_free(hb->user);
    tg_free(hb->password);
    tg_free(hb->base.name);
    hx_conf_free(&hb->conf);
    tg_free(hb);
}

/* user:password in the url is taken out of it and sent as options of
 * their own, so it goes with every request to the configured origin, a
 * followed redirect within it too, and with none elsewhere (hx_transport
 * clears it). The url left behind holds no secret for a log line. */
static int take_userinfo(struct http_backend *hb)
{
    CURLU *u = curl_url();
    char *user = NULL, *pw = NULL, *host, *at;
    int rc = 0;

    if (!u)
        return TG_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, hb->url, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
        curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE);
    }
    if (user || pw) {
        hb->user = tg_strdup(user ? user : "");
        hb->password = tg_strdup(pw ? pw : "");
        if (!hb->user || !hb->password)
            rc = TG_ENOMEM;
        host = strstr(hb->url, "://") + 3;
        at = memrchr(host, '@', strcspn(host, "/?#"));
        if (at)
            memmove(host, at + 1, strlen(at + 1) + 1);
    }
    curl_free(user);
    curl_free(pw);
    curl_url_cleanup(u);
    return rc;
}

static int set_url(void *obj, const char *v, char *msg, size_t cap)
{
    struct http_backend *hb = obj;
    size_t l = strlen(v);

    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        snprintf(msg, cap, "must start with http:// or https://");
        return TG_EINVAL;
    }
    tg_free(hb->url);
    if (!(hb->url = tg_malloc(l + 2)))
        return TG_ENOMEM;
    /* Keys are appended under the base path, never beside it. */
    snprintf(hb->url, l + 2, "%s%s", v, l && v[l - 1] == '/' ? "" : "/");
    return 0;
}

/* `header = Name: value`, the one key a section may repeat. */
static int add_header(void *obj, const char *v, char *msg, size_t cap)
{
    struct http_backend *hb = obj;
    char exp[1024], **grown;

    if (!strchr(v, ':')) {
        snprintf(msg, cap, "expected \"Name: value\"");
        return TG_EINVAL;
    }
    if (hx_expand_env(v, exp, sizeof(exp), msg, cap) != 0)
        return TG_EINVAL;
    if (strpbrk(exp, "\r\n")) {
        snprintf(msg, cap, "line breaks are not allowed");
        return TG_EINVAL;
    }
    if (!(grown = tg_realloc(hb->headers, (hb->nheaders + 1) * sizeof(char *))))
        return TG_ENOMEM;
    hb->headers = grown;
    if (!(grown[hb->nheaders] = tg_strdup(exp)))
        return TG_ENOMEM;
    hb->nheaders++;
    return 0;
}

#define HB(f) TG_KEY_AT(struct http_backend, f)

static const struct tg_key http_keys[] = {
    {.name = "url", .type = TG_KEY_FUNC, .set = set_url, .flags = TG_KEY_REQUIRED},
    {.name = "header", .type = TG_KEY_FUNC, .set = add_header},
    {.name = "client_headers", .type = TG_KEY_BOOL, HB(client_headers), .def = "yes",
     .bad = "invalid value"},
};

static int http_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                       struct tg_backend **out, char *err, size_t errlen)
{
    struct http_backend *hb = tg_calloc(1, sizeof(*hb));
    int rc;

    if (!hb || !(hb->base.name = tg_strdup(cfg->name))) {
        snprintf(err, errlen, "out of memory");
        tg_free(hb);
        return TG_ENOMEM;
    }
    hb->base.ops = &tg_http_backend_ops;
    hb->base.loop = loop;
    hx_conf_init(&hb->conf);
    {
        const struct tg_key_table t[] = {{hx_conf_keys, hx_conf_nkeys, &hb->conf},
                                         {http_keys, TG_ARRAY_LEN(http_keys), hb}};

        rc = tg_key_parse_backend(t, TG_ARRAY_LEN(t), cfg, "an http backend", err, errlen);
    }
    if (rc == 0 && take_userinfo(hb) != 0)
        rc = TG_ENOMEM;
    if (rc == 0 && hb->conf.insecure)
        tg_log(TG_LOG_WARN, "backend %s: TLS verification is off (insecure = yes)", cfg->name);
    if (rc == 0 && hx_conf_start(&hb->conf, loop) != 0)
        rc = TG_ENOMEM;
    if (rc != 0) {
        if (rc == TG_ENOMEM)
            snprintf(err, errlen, "out of memory");
        http_destroy(&hb->base);
        return rc;
    }
    *out = &hb->base;
    return 0;
}

const struct tg_backend_ops tg_http_backend_ops = {
    .type = "http",
    .create = http_create,
    .destroy = http_destroy,
    .open_read = http_open_read,
    .open_write = http_open_write,
};

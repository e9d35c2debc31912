/* backends/http_engine.c - the streaming request engine that the http and
 * s3 backends share (backends/http_engine.h), on the loop's shared curl
 * multi handle (gateway/curl_uv.c).
 *
 * A GET has no buffer of its own in steady state: its body goes from
 * curl's receive buffer (CURLOPT_BUFFERSIZE, sized to the window by
 * hx_rcvbuf) straight into the buffers the session's read() offers, which
 * are the window's free slots. read() resumes curl and lets it read the
 * connection (tg_curl_pull) until those buffers are full. What does not
 * fit goes into a spill of one receive buffer, and curl is then paused
 * until a read() empties the spill, so the body waits in the socket, not
 * here. docs/design.md, "The HTTP engine", has the measurements.
 * Uploads keep a ring of max(64 KiB, 2 x blksize) that push() fills and
 * curl's read callback drains. HTTP/1.1 only and no content decoding, so
 * a paused transfer never holds more than one receive buffer. Redirects
 * are followed here, not by curl; the policy and the transport options
 * are in backends/http_transport.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_engine.h"
#include "tftpgw/cachectl.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/uri.h"

#define RING_MIN (64 * 1024)
#define PULL_MAX 16     /* pulls per read: 16 receive buffers at most */

#define EV_BIT(e) (1u << (e))

const struct tg_stream_ops hx_read_ops = {
    .read = hx_read,
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
    tg_free(hs->spill);
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

static void resume(struct hx_stream *hs);

static void on_wake(struct tg_curl_xfer *x)
{
    struct hx_stream *hs = tg_container_of(x, struct hx_stream, x);

    if (hs->resume_owed) {
        hs->resume_owed = false;
        if (hs->paused && hs->spill_len == 0 && hs->state == HX_OPEN && hs->x.added) {
            resume(hs);
            tg_curl_pull(&hs->x); /* the chunk now, not a loop turn later */
        }
    }
    dispatch(hs);
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

/* ---- curl callbacks: bytes and flags only ---- */

/* Inside curl's write callback: stop curl's receive loop after this chunk
 * (libcurl checks the pause between chunks), so the next one stays in the
 * socket rather than in a paused copy of curl's own. read() resumes it. */
static void hold_off(struct hx_stream *hs)
{
    if (!hs->paused) {
        hs->paused = true;
        curl_easy_pause(hs->x.easy, CURLPAUSE_ALL);
    }
}

/* Outside curl calls: let curl read again (and hand over a chunk it
 * kept, if a pause ever left one with it). */
static void resume(struct hx_stream *hs)
{
    hs->resume_owed = false;
    hs->paused = false;
    hs->last_move = uv_now(hs->base.backend->loop);
    curl_easy_pause(hs->x.easy, CURLPAUSE_CONT);
}

static bool spill_fits(struct hx_stream *hs, size_t n)
{
    uint8_t *p;

    if (n <= hs->spill_cap)
        return true;
    /* curl's chunks are at most its receive buffer: the spill is one. */
    p = tg_realloc(hs->spill, n > hs->rcvbuf ? n : hs->rcvbuf);
    if (!p)
        return false;
    hs->spill = p;
    hs->spill_cap = n > hs->rcvbuf ? n : hs->rcvbuf;
    return true;
}

/* A GET's body chunk: into the running read's buffers as far as they
 * have room, the rest into the spill when it is empty, and then curl is
 * held off until a read() empties the spill. So a transfer holds at most
 * its receive buffer and one spill, however far the TFTP side lags. */
static size_t take_body(struct hx_stream *hs, const char *ptr, size_t n)
{
    size_t k = 0;

    if (hs->rd_iov && hs->spill_len == 0 && hs->rd_at < hs->rd_room) {
        k = tg_iov_copy(hs->rd_iov, hs->rd_n, hs->rd_at, ptr, n);
        hs->rd_at += k;
        if (k == n)
            return n;
    }
    if (hs->spill_len == 0) {
        if (!spill_fits(hs, n - k))
            return 0; /* CURLE_WRITE_ERROR: the GET fails */
        memcpy(hs->spill, ptr + k, n - k);
        hs->spill_off = 0;
        hs->spill_len = n - k;
        hold_off(hs);
        if (!hs->rd_iov && hs->want) {
            hs->want = false;
            owe(hs, TG_STREAM_READABLE);
        }
        return n;
    }
    /* Only if the pause did not hold: curl keeps the chunk itself. */
    hs->paused = true;
    if (hs->want) {
        hs->want = false;
        owe(hs, TG_STREAM_READABLE);
    }
    return CURL_WRITEFUNC_PAUSE;
}

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
    return take_body(hs, ptr, n);
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
        tg_cc_init(&hs->meta.cc);
        hs->chunked = false;
        return n;
    }
    /* What a shared cache may do with the response (RFC 9111 section 5). */
    tg_cc_header(&hs->meta.cc, buf, n);
    if (n > 18 && strncasecmp(buf, "Transfer-Encoding:", 18) == 0) {
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
     * chunked. */
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
    tg_cc_init(&hs->meta.cc);
    hs->last_move = uv_now(hs->base.backend->loop);
    if (prepare(hs, method) != 0 || tg_curl_add(hs->conf->cu, &hs->x) != 0) {
        hx_fail(hs, TG_TFTP_EUNDEF, HX_WIRE_UNAVAILABLE);
        return false;
    }
    if (tg_log_enabled(TG_LOG_DEBUG)) {
        char u[600];

        hx_url_for_log(hs->hop_url, u, sizeof(u));
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

size_t hx_ring_cap(size_t blksize)
{
    return blksize * 2 > RING_MIN ? blksize * 2 : RING_MIN;
}

size_t hx_rcvbuf(size_t blksize, size_t window)
{
    /* A recv costs a trip through curl. A window larger than 16 KiB comes
     * in as few recvs of at most 16 KiB as it can, each a whole number of
     * blocks, so curl's buffer and the spill hold a part of a window, not
     * 16 KiB each. A smaller window (lock-step) still takes 16 KiB per
     * recv, and the spill serves the next reads without curl: one block
     * per recv lost 72 of 200 lock-step storm transfers to the open
     * timeout, and at every windowsize it cut windowsize 64 to a fifth. */
    const size_t max = CURL_MAX_WRITE_SIZE;
    size_t recvs, per;

    if (blksize == 0 || blksize >= max)
        return max;
    if (window <= max)
        return max / blksize * blksize;
    recvs = (window + max - 1) / max;
    per = (window / blksize + recvs - 1) / recvs;
    return per * blksize > max ? max / blksize * blksize : per * blksize;
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
    if (write) {
        hs->cap = hx_ring_cap(a->blksize);
        hs->ring = tg_malloc(hs->cap);
    }
    hs->url = tg_strdup(url);
    hs->client_ip = tg_strdup(a->client_ip ? a->client_ip : "");
    hs->filename = tg_strdup(a->filename ? a->filename : "");
    if (a->client_mac)
        snprintf(hs->client_mac, sizeof(hs->client_mac), "%s", a->client_mac);
    if (a->if_changed && !write)
        hs->cond = *a->if_changed;
    tg_cc_init(&hs->meta.cc);
    hs->x.easy = curl_easy_init();
    hs->x.done = on_done;
    hs->x.wake = on_wake;
    hs->x.cu = conf->cu;
    hs->x.cap = conf->cap;
    if ((write && !hs->ring) || !hs->url || !hs->client_ip || !hs->filename || !hs->x.easy) {
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
        hs->rcvbuf = hx_rcvbuf(a->blksize, a->window);
        curl_easy_setopt(hs->x.easy, CURLOPT_BUFFERSIZE, (long)hs->rcvbuf);
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

/* ---- held probes: the engine's half (policy in backends/http_hold.c) ---- */

static void on_held_event(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    /* Nobody owns a held GET: what happens to it is seen at adoption. */
    (void)s, (void)ev, (void)arg;
}

void hx_park(struct hx_stream *hs)
{
    hs->base.cb = on_held_event;
    hs->base.arg = NULL;
    hs->want = false;
    hs->pending = 0;
    /* No more body than curl holds already (invariant 2): curl stops
     * reading the socket, and TCP pushes back on the upstream. */
    if (hs->state == HX_OPEN && hs->x.added && !hs->paused) {
        hs->paused = true;
        curl_easy_pause(hs->x.easy, CURLPAUSE_ALL);
    }
}

void hx_reopen(struct hx_stream *hs, tg_stream_cb *cb, void *arg)
{
    hs->base.cb = cb;
    hs->base.arg = arg;
    hs->base.adopted = true;
    /* Still paused: the owner's first read resumes it, and the body goes
     * straight into that read's buffers. */
    if (hs->state != HX_FAILED)
        owe(hs, TG_STREAM_OPENED); /* from the loop, never inside open */
}

/* Let curl read the connection into iov while this runs. A chunk that
 * does not fit leaves its rest in the spill and pauses curl (take_body),
 * so while the window waits for its ACKs the body stays in the socket and
 * TCP pushes back on the upstream (invariant 2). */
static size_t pull_into(struct hx_stream *hs, const struct iovec *iov, unsigned n, size_t got,
                        size_t room)
{
    hs->rd_iov = iov;
    hs->rd_n = n;
    hs->rd_at = got;
    hs->rd_room = room;
    if (hs->paused)
        resume(hs);
    /* A pull lets curl read while the socket has bytes; pull again while
     * one brings bytes and room is left (bounded: a fast origin cannot
     * keep one read in here). */
    for (unsigned k = 0;
         k < PULL_MAX && !hs->paused && hs->rd_at < hs->rd_room && hs->state == HX_OPEN; k++) {
        size_t before = hs->rd_at;

        tg_curl_pull(&hs->x);
        if (hs->rd_at == before)
            break;
    }
    got = hs->rd_at;
    hs->rd_iov = NULL;
    return got;
}

ssize_t hx_read(struct tg_stream *s, const struct iovec *iov, unsigned n)
{
    struct hx_stream *hs = (struct hx_stream *)s;
    size_t room = 0, got = 0;

    if (hs->state == HX_FAILED)
        return TG_EIO;
    for (unsigned i = 0; i < n; i++)
        room += iov[i].iov_len;
    if (hs->spill_len > 0) {
        got = tg_iov_copy(iov, n, 0, hs->spill + hs->spill_off, hs->spill_len);
        hs->spill_off += got;
        hs->spill_len -= got;
    }
    if (got < room && hs->spill_len == 0 && hs->state == HX_OPEN && hs->x.added)
        got = pull_into(hs, iov, n, got, room);
    /* The spill is empty: let its next chunk come while the window waits
     * for its ACKs. Resumed on the next loop turn, after the session has
     * sent what it read: resuming costs curl a socket update and a timer,
     * and the lock-step critical path should not carry them. */
    if (hs->spill_len == 0 && hs->paused && hs->state == HX_OPEN && hs->x.added &&
        !hs->resume_owed) {
        hs->resume_owed = true;
        tg_curl_wake(&hs->x);
    }
    hs->given += got;
    if (got > 0)
        return (ssize_t)got;
    if (hs->state == HX_FAILED)
        return TG_EIO;
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

/* backends/s3_call.c - small signed S3 requests whose answer is kept in
 * memory (at most RESP_MAX bytes): the multipart upload's create-mode
 * probe (HEAD), CreateMultipartUpload and CompleteMultipartUpload (POST),
 * and AbortMultipartUpload (DELETE), which is sent after its stream is
 * gone and so holds a bounded timer of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3.h"
#include "tftpgw/log.h"

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
    if (!foreign && s3_sign(c->sb, c->x.easy, c->method, &c->hdrs) != 0) {
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
struct s3call *s3_call_start(struct s3_backend *sb, const char *method, const char *url,
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
        !(c->url = tg_strdup(url)) || s3_sign(sb, e, method, &c->hdrs) != 0) {
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

void s3_call_cancel(struct s3call *c)
{
    tg_curl_remove(&c->x);
    call_free(c);
}


/* backends/http.c - the HTTP(S) backend: RRQ as a streamed GET, WRQ as a
 * streamed PUT, on the request engine (backends/http_engine.c) with a
 * profile that adds the configured headers, X-TFTP-Client and X-TFTP-File,
 * and the url's user:password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_engine.h"
#include "tftpgw/log.h"
#include "tftpgw/uri.h"

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
        hs->meta.client_headers = true; /* a Vary on them is per client */
        rc = hx_add_header(l, "X-TFTP-Client: ", hs->client_ip);
        if (rc == 0)
            rc = hx_add_header(l, "X-TFTP-File: ", hs->filename);
        if (rc == 0 && hs->client_mac[0])
            rc = hx_add_header(l, "X-TFTP-Client-MAC: ", hs->client_mac);
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
    /* A download after a declined tsize probe continues the probe's GET. */
    if (hx_adopt(&((struct http_backend *)b)->conf, a, cb, arg, out) == 0)
        return 0;
    return http_open(b, a, false, cb, arg, out);
}

static int http_hold(struct tg_backend *b, struct tg_stream *s, const struct tg_open_args *a)
{
    return hx_hold(&((struct http_backend *)b)->conf, s, a);
}

static void http_drop_held(struct tg_backend *b)
{
    hx_held_drop(&((struct http_backend *)b)->conf);
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
    /* Held GETs first: their removal needs the multi handle. */
    hx_held_free(&hb->conf);
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
    .hold = http_hold,
    .drop_held = http_drop_held,
};

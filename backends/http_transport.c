/* backends/http_transport.c - what the http and s3 backends share around
 * the request engine: the transport options of every easy handle, the
 * redirect policy, the configuration keys of both types, ${VAR}
 * expansion, headers, and the log line of a failed request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_engine.h"
#include "tftpgw/log.h"

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

/* ---- failures ---- */

/* A URL for a log line: user:password is a secret and is left out. */
void hx_url_for_log(const char *url, char *out, size_t cap)
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

    hx_url_for_log(url, u, sizeof(u));
    tg_log_sanitize(detail, d, sizeof(d));
    if (client_ip && client_ip[0])
        tg_log(TG_LOG_WARN, "backend %s: %s %s failed: %s (client %s file \"%s\")", backend,
               method, u, d, client_ip, tg_log_sanitize(filename ? filename : "", f, sizeof(f)));
    else
        tg_log(TG_LOG_WARN, "backend %s: %s %s failed: %s", backend, method, u, d);
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
    {.name = "connect_timeout", .type = TG_KEY_DURATION, HX(connect_timeout_ms), .min = 100,
     .max = 600000, .unit_ms = 1, .def = "5000"},
    {.name = "stall_timeout", .type = TG_KEY_DURATION, HX(stall_timeout_ms), .min = 1000,
     .max = 600000, .unit_ms = 1, .def = "10000"},
    {.name = "max_redirects", .type = TG_KEY_UINT, HX(max_redirects), .min = 0, .max = 50,
     .def = "5", .bad = "0..50"},
    {.name = "redirects", .type = TG_KEY_ENUM, HX(redirects), .names = redirect_names,
     .flags = TG_KEY_CASE, .def = "same-origin", .bad = "same-origin, any or none"},
    {.name = "max_connections", .type = TG_KEY_UINT, HX(max_connections), .min = 1,
     .max = 10000, .def = "64", .bad = "1..10000"},
    {.name = "probe_hold", .type = TG_KEY_DURATION, HX(probe_hold_s), .min = 0, .max = 60,
     .unit_ms = 1000, .def = "3"},
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
    unsigned n = tg_backend_workers > 1 ? tg_backend_workers : 1;

    /* Each worker's instance gets its share, so the origin sees at most
     * max_connections from the process (at least 1 per worker). */
    if (!(c->cap = tg_curl_cap_new((unsigned)c->max_connections / n)))
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

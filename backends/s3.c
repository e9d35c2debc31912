/* backends/s3.c - S3-compatible object storage: signed streaming GETs, and
 * uploads that are complete objects or nothing. This file has the backend
 * type (configuration, addressing, credentials), request signing and S3's
 * error documents; reads and uploads of a known size (tsize) are one
 * streamed GET or one PUT with Content-Length on the shared HTTP engine.
 * Uploads without a size: backends/s3_multipart.c.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4). Debian 12's 7.88.1
 * neither adds x-amz-content-sha256 nor canonicalises the query, so every
 * request carries that header and every query is built sorted and encoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "s3.h"
#include "tftpgw/keys.h"
#include "tftpgw/log.h"
#include "tftpgw/uri.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- S3 error documents ---- */

void s3_xml_value(const char *body, const char *tag, char *out, size_t cap)
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
void s3_map_error(struct tg_error *e, long status, const char *body)
{
    char code[64];

    s3_xml_value(body, "Code", code, sizeof(code));
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
void s3_detail(long status, const char *body, char *out, size_t cap)
{
    char code[64], msg[200];

    s3_xml_value(body, "Code", code, sizeof(code));
    s3_xml_value(body, "Message", msg, sizeof(msg));
    snprintf(out, cap, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code, msg[0] ? ": " : "",
             msg);
}

/* Signing and the headers 7.88 will not add itself. */
int s3_sign(const struct s3_backend *sb, CURL *e, const char *method,
                struct curl_slist **l)
{
    bool body = !strcmp(method, "PUT") || !strcmp(method, "POST");
    int rc;

    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sb->sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, sb->userpwd);
    /* Streamed bodies cannot be hashed in advance; S3 accepts an unsigned
     * payload, integrity rests on TLS. */
    rc = hx_add_header(l, "x-amz-content-sha256: ", body ? "UNSIGNED-PAYLOAD" : EMPTY_SHA256);
    if (rc == 0 && sb->token)
        rc = hx_add_header(l, "x-amz-security-token: ", sb->token);
    return rc;
}

static int s3_prepare(struct hx_stream *hs, const char *method, struct curl_slist **l)
{
    int rc = s3_sign(hs->owner, hs->x.easy, method, l);

    /* Known only when the route's key named {client_mac}; a store that
     * logs request headers then sees which device asked. */
    if (rc == 0 && hs->client_mac[0])
        rc = hx_add_header(l, "X-TFTP-Client-MAC: ", hs->client_mac);
    return rc;
}

static void s3_profile_error(struct hx_stream *hs, long status, const char *body)
{
    struct tg_error e;
    char detail[320];

    s3_map_error(&e, status, body);
    s3_detail(status, body, detail, sizeof(detail));
    /* Not found and exists are answers; anything else is worth a line. */
    if (e.code == TG_TFTP_ENOTFOUND || e.code == TG_TFTP_EEXISTS)
        hx_fail(hs, e.code, e.msg);
    else
        hx_fail_log(hs, e.code, e.msg, "%s", detail);
}

const struct hx_profile s3_profile = {
    s3_prepare,   /* prepare */
    s3_profile_error, /* map_error */
    false,        /* if_none_match: HEAD first; not every store knows it */
    false,        /* drop_expect: would break the signature on 7.88 */
};

int s3_object_url(const struct s3_backend *sb, const char *key, const char *query,
                         char *out, size_t cap)
{
    char enc[3 * TG_PATH_MAX];

    if (tg_uri_encode_path(key, enc, sizeof(enc)) < 0)
        return TG_ENAMETOOLONG;
    if ((size_t)snprintf(out, cap, "%s%s%s", sb->obj_base, enc, query ? query : "") >= cap)
        return TG_ENAMETOOLONG;
    return 0;
}

/* ---- the backend type ---- */

static int s3_open_read(struct tg_backend *b, const struct tg_open_args *a, tg_stream_cb *cb,
                        void *arg, struct tg_stream **out)
{
    struct s3_backend *sb = (struct s3_backend *)b;
    char url[3 * TG_PATH_MAX + 2048];

    /* A download after a declined tsize probe continues the probe's GET. */
    if (hx_adopt(&sb->conf, a, cb, arg, out) == 0)
        return 0;
    if (s3_object_url(sb, a->key, NULL, url, sizeof(url)) != 0)
        return TG_ENAMETOOLONG;
    return hx_open(b, &sb->conf, &s3_profile, sb, url, a, false, cb, arg, out);
}

static int s3_hold(struct tg_backend *b, struct tg_stream *s, const struct tg_open_args *a)
{
    return hx_hold(&((struct s3_backend *)b)->conf, s, a);
}

static void s3_drop_held(struct tg_backend *b)
{
    hx_held_drop(&((struct s3_backend *)b)->conf);
}

static int s3_open_write(struct tg_backend *b, const struct tg_open_args *a,
                         tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct s3_backend *sb = (struct s3_backend *)b;
    char url[3 * TG_PATH_MAX + 2048];

    if (a->size_hint < 0 || a->size_hint > SINGLE_PUT_MAX)
        return s3_mp_open(sb, a, cb, arg, out);
    if (s3_object_url(sb, a->key, NULL, url, sizeof(url)) != 0)
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
    /* Held GETs first: their removal needs the multi handle. */
    hx_held_free(&sb->conf);
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
    .hold = s3_hold,
    .drop_held = s3_drop_held,
    .open_write = s3_open_write,
};

/* backends/s3.h - the s3 backend's own parts, shared by its files:
 *   backends/s3.c            the backend: configuration, signing, object
 *                            URLs, S3 error documents; reads and uploads of
 *                            a known size on the HTTP engine
 *   backends/s3_call.c       small signed control requests (HEAD, POST,
 *                            DELETE) with their answer in memory
 *   backends/s3_multipart.c  uploads without a size: a spool file sent as
 *                            a multipart upload */
#ifndef TFTPGW_S3_H
#define TFTPGW_S3_H

#include "http_engine.h"

#define PART_MIN (5LL << 20)
#define PART_MAX (5LL << 30)
#define SINGLE_PUT_MAX (5LL << 30)
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

/* backends/s3.c */
extern const struct hx_profile s3_profile;
/* Sign a request (curl's SigV4) and add the headers 7.88 will not. */
int s3_sign(const struct s3_backend *sb, CURL *e, const char *method, struct curl_slist **l);
/* The object's URL: endpoint, bucket, prefix, the key encoded as SigV4's
 * canonical URI wants it, then query (sorted, encoded) if any. */
int s3_object_url(const struct s3_backend *sb, const char *key, const char *query, char *out,
                  size_t cap);
/* The text of <tag> in an XML answer ("" when absent), cut to fit. */
void s3_xml_value(const char *body, const char *tag, char *out, size_t cap);
/* An S3 error answer as the client's TFTP error (generic texts). */
void s3_map_error(struct tg_error *e, long status, const char *body);
/* For the log line: the status, S3's error code and message. */
void s3_detail(long status, const char *body, char *out, size_t cap);

/* backends/s3_call.c */
/* method POST (body may be NULL for an empty one), DELETE or HEAD at url.
 * cb runs once, from the loop; cb NULL: fire and forget (bounded). NULL
 * when it cannot start. */
struct s3call *s3_call_start(struct s3_backend *sb, const char *method, const char *url,
                             const char *body, s3call_cb *cb, void *arg);
/* Abandon a call before its callback; it is freed. */
void s3_call_cancel(struct s3call *c);

/* backends/s3_multipart.c */
/* A write stream for an upload without a known size (or above a single
 * PUT's limit): spooled, then one PUT or a multipart upload. */
int s3_mp_open(struct s3_backend *sb, const struct tg_open_args *a, tg_stream_cb *cb, void *arg,
               struct tg_stream **out);

#endif

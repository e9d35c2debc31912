/* backends/http_engine.h - the streaming request machinery that the http and
 * s3 backends share (owner: backends/http.c). A backend supplies a profile:
 * the headers and options of each request (authentication lives there) and
 * how an error response becomes a TFTP error. */
#ifndef TFTPGW_HTTP_ENGINE_H
#define TFTPGW_HTTP_ENGINE_H

#include "tftpgw/backend.h"
#include "tftpgw/curl_uv.h"

/* Transport settings common to both backend types. */
struct hx_conf {
    struct tg_curl *cu;
    struct tg_curl_cap *cap; /* max_connections of this backend */
    char *ca_file, *client_cert, *client_key;
    bool insecure;
    long connect_timeout_ms, stall_timeout_ms, max_redirects, max_connections;
};

struct hx_stream;

struct hx_profile {
    /* Build this request's headers into *hdrs and set its options on
     * hs->x.easy; method is "GET", "HEAD" or "PUT". */
    int (*prepare)(struct hx_stream *hs, const char *method, struct curl_slist **hdrs);
    /* A response >= 400: status and the start of its body (NUL-terminated). */
    void (*map_error)(struct hx_stream *hs, long status, const char *body);
    bool if_none_match; /* create-mode PUTs carry If-None-Match: * */
    /* Send "Expect:" to skip 100-continue. Not under SigV4 on curl 7.88,
     * which signs the empty removal header too (digest M24). */
    bool drop_expect;
};

enum hx_state {
    HX_PROBING,    /* create-mode WRQ: HEAD before the PUT */
    HX_OPENING,    /* GET sent, no body byte yet */
    HX_OPEN,
    HX_EOF,        /* GET finished; the ring may still hold data */
    HX_COMMITTING, /* PUT: all data handed to curl, waiting for the answer */
    HX_COMMITTED,
    HX_FAILED
};

#define HX_ERRBODY 512

struct hx_stream {
    struct tg_stream base;
    const struct hx_conf *conf;
    const struct hx_profile *prof;
    void *owner;          /* the backend's data, for its profile hooks */
    struct tg_curl_xfer x;
    struct curl_slist *hdrs;
    char *url;
    char *client_ip, *filename;
    char *if_none_match, *if_modified_since; /* conditional GET (cache) */
    bool write, create;
    enum hx_state state;
    uint8_t *ring;
    size_t cap, head, len;
    bool paused;          /* curl is paused by our callback */
    bool want;            /* the owner got TG_EAGAIN and waits for an event */
    unsigned pending;     /* events owed, delivered outside curl */
    int dispatching;
    bool closed;
    long status;
    bool done_early;      /* PUT answered before commit() (Content-Length 0) */
    bool chunked;         /* the response is Transfer-Encoding: chunked */
    uv_timer_t stall;     /* fails the request when no byte moves */
    bool stall_init;
    uint64_t last_move;   /* loop time of the last byte either way */
    char errbody[HX_ERRBODY];
    size_t errlen;
    char errbuf[CURL_ERROR_SIZE];
};

/* Open a streamed GET (write false) or PUT (write true; with !a->overwrite a
 * HEAD goes first and an existing object is ERROR 6). url is copied. */
int hx_open(struct tg_backend *b, const struct hx_conf *conf, const struct hx_profile *prof,
            void *owner, const char *url, const struct tg_open_args *a, bool write,
            tg_stream_cb *cb, void *arg, struct tg_stream **out);
ssize_t hx_pull(struct tg_stream *s, uint8_t *dst, size_t len);
int hx_push(struct tg_stream *s, const uint8_t *src, size_t len);
int hx_commit(struct tg_stream *s);
void hx_close(struct tg_stream *s);

/* For map_error hooks. */
void hx_fail(struct hx_stream *hs, uint16_t code, const char *fmt, ...) TG_PRINTF(3, 4);
void hx_fail_status(struct hx_stream *hs, long status); /* digest B9 mapping */
int hx_add_header(struct curl_slist **l, const char *name, const char *value);

/* Config keys shared by both types (ca_file, insecure, client_cert,
 * client_key, connect_timeout, stall_timeout, max_redirects,
 * max_connections). Returns 1
 * when the key was taken, 0 when it is not a transport key, < 0 with why
 * filled on a bad value. */
int hx_conf_key(struct hx_conf *c, const char *key, const char *value, char *why,
                size_t whylen);
void hx_conf_init(struct hx_conf *c);
/* After the keys: the loop's curl handle and this backend's connection
 * cap. Returns 0, or TG_ENOMEM. */
int hx_conf_start(struct hx_conf *c, uv_loop_t *loop);
void hx_conf_free(struct hx_conf *c);
/* ${VAR} from the environment, so secrets need not sit in the file. */
int hx_expand_env(const char *in, char *out, size_t cap, char *why, size_t whylen);

#endif

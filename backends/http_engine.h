/* backends/http_engine.h - the streaming request machinery that the http and
 * s3 backends share (owners: backends/http_engine.c, the streams;
 * backends/http_transport.c, transport options, redirect policy, keys). A
 * backend supplies a profile: the headers and options of each request
 * (authentication lives there) and how an error response becomes a TFTP
 * error. */
#ifndef TFTPGW_HTTP_ENGINE_H
#define TFTPGW_HTTP_ENGINE_H

#include "tftpgw/backend.h"
#include "tftpgw/curl_uv.h"
#include "tftpgw/keys.h"
#include "tftpgw/life.h"
#include "tftpgw/neigh.h"

/* Which redirects a request follows (`redirects = ...`). */
enum hx_redirects {
    HX_REDIR_SAME_ORIGIN, /* only to the configured scheme, host and port */
    HX_REDIR_ANY,         /* elsewhere too, but without credentials there */
    HX_REDIR_NONE         /* a 3xx is an error */
};

/* Transport settings common to both backend types. */
struct hx_conf {
    struct tg_curl *cu;
    struct tg_curl_cap *cap; /* max_connections of this backend */
    char *ca_file, *client_cert, *client_key;
    bool insecure;
    long connect_timeout_ms, stall_timeout_ms, max_redirects, max_connections;
    enum hx_redirects redirects;
    long probe_hold_s;       /* probe_hold: seconds a declined probe's GET waits; 0: off */
    struct hx_held *held;    /* those GETs (backends/http_hold.c); NULL until the first */
};

/* What a client is told when the upstream cannot be reached or answers
 * with an unmapped error; the detail goes to the log only. */
#define HX_WIRE_UNAVAILABLE "upstream unavailable"
/* A redirect target longer than this is refused (memory per stream). */
#define HX_URL_MAX 8192

struct hx_stream;

struct hx_profile {
    /* Build this request's headers into *hdrs and set its options on
     * hs->x.easy; method is "GET", "HEAD" or "PUT". */
    int (*prepare)(struct hx_stream *hs, const char *method, struct curl_slist **hdrs);
    /* A response >= 400: status and the start of its body (NUL-terminated). */
    void (*map_error)(struct hx_stream *hs, long status, const char *body);
    bool if_none_match; /* create-mode PUTs carry If-None-Match: * */
    /* Send "Expect:" to skip 100-continue. Not under SigV4 on curl 7.88,
     * which signs the empty removal header too. */
    bool drop_expect;
};

enum hx_state {
    HX_PROBING,    /* create-mode WRQ: HEAD before the PUT */
    HX_OPENING,    /* GET sent, no body byte yet */
    HX_OPEN,
    HX_EOF,        /* GET finished; curl or the spill may still hold data */
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
    char *url;            /* the configured origin's URL for this key */
    char *hop_url;        /* where a followed redirect led, or NULL */
    int hops;             /* redirects followed */
    bool foreign;         /* hop_url is another origin: no credentials */
    char *client_ip, *filename;
    char client_mac[TG_MAC_STRLEN]; /* "" when not known (tg_open_args) */
    struct tg_validators cond; /* a conditional GET (the cache), "" when none */
    struct tg_http_meta meta;  /* what the answer said; base.http points here */
    bool write, create;
    enum hx_state state;
    /* PUT: the ring the session pushes into and curl's read callback
     * drains. */
    uint8_t *ring;
    size_t cap, head, len;
    /* GET: no ring. While hx_read runs, on_body copies into the reader's
     * buffers (rd_*); what does not fit, and a chunk outside hx_read, goes
     * into the spill (rcvbuf bytes, allocated on first need) and curl is
     * paused until a read empties it. */
    size_t rcvbuf;        /* CURLOPT_BUFFERSIZE: no chunk is larger */
    uint8_t *spill;
    size_t spill_cap, spill_off, spill_len;
    const struct iovec *rd_iov; /* the running hx_read's buffers, or NULL */
    unsigned rd_n;
    size_t rd_at, rd_room;      /* bytes put in them, bytes they hold */
    bool paused;          /* curl is paused by us */
    bool resume_owed;     /* resume on the next loop turn (read ahead) */
    bool want;            /* the owner got TG_EAGAIN and waits for an event */
    unsigned pending;     /* events owed, delivered outside curl */
    struct tg_life life;  /* held while events are delivered */
    long status;
    bool done_early;      /* PUT answered before commit() (Content-Length 0) */
    bool chunked;         /* the response is Transfer-Encoding: chunked */
    uv_timer_t stall;     /* fails the request when no byte moves */
    bool stall_init;
    uint64_t last_move;   /* loop time of the last byte either way */
    uint64_t given;       /* body bytes handed to the owner by hx_read */
    char errbody[HX_ERRBODY];
    size_t errlen;
    char errbuf[CURL_ERROR_SIZE];
};

/* Open a streamed GET (write false) or PUT (write true; with !a->overwrite a
 * HEAD goes first and an existing object is ERROR 6). url is copied. */
int hx_open(struct tg_backend *b, const struct hx_conf *conf, const struct hx_profile *prof,
            void *owner, const char *url, const struct tg_open_args *a, bool write,
            tg_stream_cb *cb, void *arg, struct tg_stream **out);
/* The engine's streams: GETs read, PUTs write (base.ops is one of these). */
extern const struct tg_stream_ops hx_read_ops, hx_write_ops;
ssize_t hx_read(struct tg_stream *s, const struct iovec *iov, unsigned n);
int hx_push(struct tg_stream *s, const uint8_t *src, size_t len);
int hx_commit(struct tg_stream *s);
void hx_close(struct tg_stream *s);

/* The ring a PUT for this blksize gets: max(64 KiB, 2 x blksize). */
size_t hx_ring_cap(size_t blksize);
/* curl's receive buffer for a GET read in blksize pieces: the block,
 * between curl's minimum (1 KiB) and its default (16 KiB). */
size_t hx_rcvbuf(size_t blksize, size_t window);

/* Held probes (probe_hold; owner: backends/http_hold.c). A UEFI client
 * asks for tsize, declines our OACK with ERROR 8 (RFC 2347) and asks
 * again from a new port: the first GET, untouched, serves the second
 * request. hx_hold takes a GET whose OACK was declined before any byte
 * was read, pauses it and keeps it under (a->key, a->client_ip) for
 * probe_hold seconds; returns 0 when it took the stream (else the caller
 * closes it). hx_adopt gives a held GET to a new RRQ with the same key
 * from the same address: 0 and *out set, OPENED follows from the loop;
 * 1 when there is none to adopt. hx_held_drop releases every held GET
 * (reload, shutdown); hx_held_free, before hx_conf_free, at destroy. */
/* The engine's half: park takes the stream from its owner (events go
 * nowhere) and pauses the GET; reopen hands it to a new owner, running
 * again, with OPENED (or the FAILED that came meanwhile) from the loop. */
void hx_park(struct hx_stream *hs);
void hx_reopen(struct hx_stream *hs, tg_stream_cb *cb, void *arg);
int hx_hold(struct hx_conf *c, struct tg_stream *s, const struct tg_open_args *a);
int hx_adopt(struct hx_conf *c, const struct tg_open_args *a, tg_stream_cb *cb, void *arg,
             struct tg_stream **out);
void hx_held_drop(struct hx_conf *c);
/* hx_held_drop, and the table's timer closed (its memory freed from the
 * close callback, as the loop runs once more after the backends go). */
void hx_held_free(struct hx_conf *c);

/* For map_error hooks. The client gets `wire`, a short text that says
 * nothing about the upstream's insides; hx_fail_log also logs one line
 * with the request and the detail (curl's error, the status, the URL). */
void hx_fail(struct hx_stream *hs, uint16_t code, const char *wire);
void hx_fail_log(struct hx_stream *hs, uint16_t code, const char *wire, const char *fmt, ...)
    TG_PRINTF(4, 5);
/* The HTTP status mapping: 404/410 -> 1, 401/403 -> 2, 409/412 (create)
 * -> 6, 413/507 (write) -> 3, anything else ERROR 0 "upstream error N".
 * detail (may be NULL) is logged with the status. */
void hx_fail_status(struct hx_stream *hs, long status, const char *detail);
int hx_add_header(struct curl_slist **l, const char *name, const char *value);
/* A URL for a log line: user:password is a secret and is left out. */
void hx_url_for_log(const char *url, char *out, size_t cap);
/* One log line about a failed upstream request: backend, method, URL
 * (userinfo removed), detail; client and file when known. */
void hx_log_failure(const char *backend, const char *method, const char *url,
                    const char *client_ip, const char *filename, const char *detail);

/* Options every easy handle of both backend types gets, set here only:
 * protocols, connect timeout, TLS verification and the TLS 1.2 minimum.
 * creds false leaves out (and clears) every credential the handle could
 * carry: client certificate and key, SigV4 signing, user:password. */
void hx_transport(CURL *e, const struct hx_conf *c, bool creds);
/* The redirect policy, for both backend types. May a request whose
 * configured target is `origin` follow a redirect to `to` after `hops`
 * redirects? 0: yes, and *foreign says whether `to` is another origin
 * (scheme, host, port) than the configured one, where no credential or
 * configured header may go; < 0: no, why says why (for the log). */
int hx_redirect_check(const struct hx_conf *c, const char *origin, const char *to, int hops,
                      bool *foreign, char *why, size_t whylen);
/* Same scheme, host (case-insensitive) and port (defaults applied). */
bool hx_same_origin(const char *a, const char *b);

/* The config keys both types share (ca_file, insecure, client_cert,
 * client_key, connect_timeout, stall_timeout, max_redirects, redirects,
 * max_connections): a table for tg_key_parse_backend over a struct hx_conf. */
extern const struct tg_key hx_conf_keys[];
extern const size_t hx_conf_nkeys;
/* One of them: 1 when the key was taken, 0 when it is not a transport
 * key, < 0 with why filled on a bad value. */
int hx_conf_key(struct hx_conf *c, const char *key, const char *value, char *why,
                size_t whylen);
/* Zeroed, with every default. */
void hx_conf_init(struct hx_conf *c);
/* After the keys: the loop's curl handle and this backend's connection
 * cap. Returns 0, or TG_ENOMEM. */
int hx_conf_start(struct hx_conf *c, uv_loop_t *loop);
void hx_conf_free(struct hx_conf *c);
/* ${VAR} from the environment, so secrets need not sit in the file. */
int hx_expand_env(const char *in, char *out, size_t cap, char *why, size_t whylen);

#endif

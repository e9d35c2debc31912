/* include/tftpgw/backend.h - what a session may ask of storage.
 *
 * Contract, for every backend type:
 *  - open_read/open_write return 0 with *out set, then exactly one of OPENED
 *    or FAILED follows; or they return < 0 at once and no callback follows.
 *  - Callbacks never run inside the call that caused them (open, read, push,
 *    commit, close): always later, from the loop. So a session never sees
 *    its stream call back into it re-entrantly.
 *  - Read: after OPENED, s->size is the size in bytes or -1. read() puts
 *    the next bytes into the caller's buffers and returns how many (> 0,
 *    perhaps fewer than asked), 0 at end of file, TG_EAGAIN (READABLE
 *    follows once, then ask again), or another negative code with s->err
 *    filled. FAILED may arrive at any time after OPENED.
 *  - Write: push() takes all len bytes (copied) or returns TG_EAGAIN, and then
 *    WRITABLE follows once. commit() after the last push; COMMITTED or FAILED
 *    follows. Nothing is visible in the backend before COMMITTED.
 *  - close() is called exactly once by the owner, also from inside the
 *    stream's own callback. No callback fires after it returns. Closing an
 *    uncommitted write stream aborts it and leaves nothing behind.
 *  - Memory a stream holds is bounded by a small constant, never the file.
 *  - A stream carries its own operations (tg_stream_ops): a read stream
 *    has read, a write stream push and commit; the wrappers below answer
 *    TG_EINVAL for the others.
 *  - Held probes (optional, http and s3: probe_hold): instead of close(),
 *    the owner of a read stream whose OACK the client declined (ERROR 8,
 *    RFC 2347) before any byte was read may offer it to hold(). A backend
 *    that takes it owns it from then on, paused, for a while; a later
 *    open_read for the same key from the same client address may return
 *    that stream (tg_stream.adopted set) instead of a new one, with the
 *    same size and http meta, and OPENED follows from the loop as for any
 *    open. Each held stream is adopted once at most; the rest are closed
 *    by the backend (after its probe_hold, at drop_held, at destroy).
 */
#ifndef TFTPGW_BACKEND_H
#define TFTPGW_BACKEND_H

#include <sys/types.h>
#include <sys/uio.h>
#include <uv.h>

#include "tftpgw/config.h"

struct tg_backend;
struct tg_stream;

enum tg_stream_ev {
    TG_STREAM_OPENED,
    TG_STREAM_READABLE,
    TG_STREAM_WRITABLE,
    TG_STREAM_COMMITTED,
    TG_STREAM_FAILED /* s->err has the TFTP code and text */
};

typedef void tg_stream_cb(struct tg_stream *s, enum tg_stream_ev ev, void *arg);

/* An object's validators (RFC 9110 section 8.8): what a cache keeps to
 * ask an HTTP upstream whether its copy is still current. "" when absent. */
struct tg_validators {
    char etag[128];
    char last_modified[64];
};

/* What an HTTP response said about storing and reusing it (RFC 9111
 * section 5), for a shared cache. Filled line by line by tg_cc_header
 * (include/tftpgw/cachectl.h); -1 is "absent" for the numbers. */
struct tg_cache_control {
    bool no_store, private_, no_cache;
    int64_t max_age, s_maxage; /* delta-seconds; the first occurrence counts */
    int64_t expires;           /* Unix seconds */
    bool expires_bad;          /* present but no date: already stale (RFC 9111 section 5.3) */
    int64_t date, age;         /* Unix seconds; delta-seconds */
    bool vary_star;            /* Vary: *, or more names than vary[] holds */
    char vary[160];            /* lower-case field names, each followed by ',' */
};

/* What an HTTP(S) upstream said about the object behind a stream (http
 * and s3 backends; tg_stream.http is NULL for the others). */
struct tg_http_meta {
    struct tg_validators val; /* after OPENED (S3: a part's ETag after COMMITTED) */
    struct tg_cache_control cc; /* after OPENED: the final response's */
    /* the request carried X-TFTP-Client and X-TFTP-File, which differ per
     * client and request: a response that varies on them is per client */
    bool client_headers;
    bool not_modified;        /* a conditional open found the object unchanged */
    /* at end of data: the end was only the connection closing (no
     * Content-Length, not chunked; RFC 9112 section 6.3), so a body cut
     * short looks the same as a whole one */
    bool end_unproven;
};

struct tg_open_args {
    const char *key;       /* route-expanded and normalised: "a/b/c" */
    const char *client_ip; /* for backends that pass it upstream */
    const char *client_mac; /* "52-54-00-12-34-56" when the route looked it up, else NULL */
    const char *filename;  /* the request's normalised filename */
    int64_t size_hint;     /* WRQ: tsize, or -1 */
    bool overwrite;        /* WRQ: replace an existing object; false: ERROR 6 if it exists */
    size_t blksize;        /* lets a backend size its staging */
    /* RRQ, route case = insensitive: each component of key matches a name
     * whatever its (ASCII) case; an exact match wins. Only the file
     * backend supports it; config refuses it on others. */
    bool nocase;
    /* RRQ: bytes in flight at most (blksize x windowsize), so a stream
     * that stages bytes for the window can size its staging to it. */
    size_t window;
    /* RRQ revalidation (the cache): backends that can ask conditionally
     * (If-None-Match, If-Modified-Since) do, and answer OPENED with
     * s->http->not_modified set and no data. NULL: unconditional. */
    const struct tg_validators *if_changed;
};

/* A stream's operations. A read stream sets read, a write stream push and
 * commit; close is every stream's. */
struct tg_stream_ops {
    /* Read: the next bytes into iov[0..n), in order, filling each buffer
     * before the next. Returns > 0 bytes (fewer than asked is no sign of
     * the end), 0 at end of data, TG_EAGAIN (READABLE follows once; ask
     * again), or another negative code with s->err filled. The buffers
     * are the stream's only during the call, so the caller may free or
     * reuse them at once: a stream whose data is at rest reads straight
     * into them when the bytes are at hand (the page cache), and into its
     * own staging when they are not; a stream fed from the network copies
     * out of the staging its producer fills. */
    ssize_t (*read)(struct tg_stream *s, const struct iovec *iov, unsigned n);
    /* Write: takes all len bytes (copied) or TG_EAGAIN, WRITABLE follows. */
    int (*push)(struct tg_stream *s, const uint8_t *src, size_t len);
    /* Write: after the last push; COMMITTED or FAILED follows. */
    int (*commit)(struct tg_stream *s);
    void (*close)(struct tg_stream *s);
    /* Optional, read (the cache's committed copies): after OPENED and
     * before any read, when bytes [0, size) are all at rest in a file that
     * nothing writes any more, its descriptor (the stream's own, open
     * until close), so that another worker reads it in place
     * (gateway/remote.c); -1 otherwise. */
    int (*at_rest)(struct tg_stream *s);
    /* Optional, with at_rest: bytes read in place, counted as the
     * stream's own; before close. */
    void (*served)(struct tg_stream *s, uint64_t bytes);
};

struct tg_backend_ops {
    const char *type; /* "file", "http", "s3", "cache" */
    int (*create)(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                  struct tg_backend **out, char *err, size_t errlen);
    void (*destroy)(struct tg_backend *b); /* no streams may be open */
    int (*open_read)(struct tg_backend *b, const struct tg_open_args *a,
                     tg_stream_cb *cb, void *arg, struct tg_stream **out);
    int (*open_write)(struct tg_backend *b, const struct tg_open_args *a,
                      tg_stream_cb *cb, void *arg, struct tg_stream **out);
    /* Optional, after every backend exists: find the backends this one
     * wraps (the cache's upstream). */
    int (*link)(struct tg_backend *b, struct tg_backend *(*find)(void *ctx, const char *name),
                void *ctx, char *err, size_t errlen);
    /* Optional: take a declined probe's read stream, opened with a (see
     * the contract above). 0: the backend owns it now; otherwise the
     * caller still owns it and closes it. */
    int (*hold)(struct tg_backend *b, struct tg_stream *s, const struct tg_open_args *a);
    /* Optional: close every held stream now (reload, shutdown). */
    void (*drop_held)(struct tg_backend *b);
    /* Optional: a write of key started through another worker's stand-in
     * for this backend (gateway/remote.c), which wrote to its own copy of
     * the upstream: forget what is kept of key, as open_write would. */
    void (*invalidate)(struct tg_backend *b, const char *key);
};

#ifdef UNIT_TESTING
/* backends/file.c: off makes every read go through the thread pool. */
void tg_file_nowait_for_tests(bool on);
#endif

/* Embedded first in each backend type's own struct. */
struct tg_backend {
    const struct tg_backend_ops *ops;
    char *name;
    uv_loop_t *loop;
};

/* Embedded first in each stream type's own struct. */
struct tg_stream {
    const struct tg_stream_ops *ops;
    struct tg_backend *backend;
    tg_stream_cb *cb;
    void *arg;
    int64_t size;        /* read: after OPENED, bytes or -1 */
    struct tg_error err; /* after FAILED or a negative read/push */
    const struct tg_http_meta *http; /* NULL unless the backend speaks HTTP */
    bool adopted;        /* read: continues a held probe's stream (hold above) */
};

/* tg_file_backend_ops, tg_http_backend_ops, ...: one per TG_BACKEND_TYPES. */
#define TG_BACKEND_OPS_DECL(t) extern const struct tg_backend_ops tg_##t##_backend_ops;
TG_BACKEND_TYPES(TG_BACKEND_OPS_DECL)
#undef TG_BACKEND_OPS_DECL

/* Create a backend from its config section by type; err names the key and
 * line ("line 12: root: ..."). Owner: gateway/backend.c. */
int tg_backend_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                      struct tg_backend **out, char *err, size_t errlen);
void tg_backend_destroy(struct tg_backend *b);
/* Close the streams b holds for declined probes (ops->drop_held), if any.
 * Owner: gateway/backend.c. */
void tg_backend_drop_held(struct tg_backend *b);
/* Set by `tftpgw --check-config`: backends validate their settings but
 * start no work (no cache scan or prefetch in a directory a running
 * gateway may own). */
extern bool tg_backend_check_only;
/* The worker loops each build their own backend instances ([server]
 * workers): a limit meant for the whole process (max_connections) is
 * shared out among them. Set before the first backend is built. Owner:
 * gateway/backend.c. */
extern unsigned tg_backend_workers;

/* Copy up to len bytes of src into iov[0..n), starting `at` bytes into
 * them; returns the bytes copied (fewer when the buffers are full). For
 * read streams that hand out staged bytes. Owner: gateway/backend.c. */
size_t tg_iov_copy(const struct iovec *iov, unsigned n, size_t at, const void *src, size_t len);

/* The operations, through the stream's own table; an operation the stream
 * does not have (a push on a read stream) is TG_EINVAL. */
static inline ssize_t tg_stream_read(struct tg_stream *s, const struct iovec *iov, unsigned n)
{
    return s->ops->read ? s->ops->read(s, iov, n) : TG_EINVAL;
}
/* One buffer: the cache's fill and netascii's staging read this way. */
static inline ssize_t tg_stream_read1(struct tg_stream *s, uint8_t *dst, size_t len)
{
    struct iovec iov = {dst, len};

    return tg_stream_read(s, &iov, 1);
}
static inline int tg_stream_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    return s->ops->push ? s->ops->push(s, src, len) : TG_EINVAL;
}
static inline int tg_stream_commit(struct tg_stream *s)
{
    return s->ops->commit ? s->ops->commit(s) : TG_EINVAL;
}
static inline void tg_stream_close(struct tg_stream *s)
{
    s->ops->close(s);
}

#endif

/* include/tftpgw/backend.h - what a session may ask of storage.
 *
 * Contract, for every backend type:
 *  - open_read/open_write return 0 with *out set, then exactly one of OPENED
 *    or FAILED follows; or they return < 0 at once and no callback follows.
 *  - Callbacks never run inside the call that caused them (open, pull, push,
 *    commit, close): always later, from the loop. So a session never sees
 *    its stream call back into it re-entrantly.
 *  - Read: after OPENED, s->size is the size in bytes or -1. pull() returns
 *    > 0 bytes (up to len), 0 at end of file, TG_EAGAIN (READABLE follows
 *    once), or another negative code with s->err filled. FAILED may arrive
 *    at any time after OPENED.
 *  - Write: push() takes all len bytes (copied) or returns TG_EAGAIN, and then
 *    WRITABLE follows once. commit() after the last push; COMMITTED or FAILED
 *    follows. Nothing is visible in the backend before COMMITTED.
 *  - close() is called exactly once by the owner, also from inside the
 *    stream's own callback. No callback fires after it returns. Closing an
 *    uncommitted write stream aborts it and leaves nothing behind.
 *  - Memory a stream holds is bounded by a small constant, never the file.
 */
#ifndef TFTPGW_BACKEND_H
#define TFTPGW_BACKEND_H

#include <sys/types.h>
#include <uv.h>

#include "tftpgw/config.h"

struct tg_backend;
struct tg_stream;

enum tg_stream_ev {
    TG_STREAM_OPENED,
    TG_STREAM_READABLE,
    TG_STREAM_WRITABLE,
    TG_STREAM_COMMITTED,
    TG_STREAM_FAILED, /* s->err has the TFTP code and text */
    TG_STREAM_DIRECT  /* read_direct() finished: s->direct_result */
};

typedef void tg_stream_cb(struct tg_stream *s, enum tg_stream_ev ev, void *arg);

struct tg_open_args {
    const char *key;       /* route-expanded and normalised: "a/b/c" */
    const char *client_ip; /* for backends that pass it upstream */
    const char *filename;  /* the request's normalised filename */
    int64_t size_hint;     /* WRQ: tsize, or -1 */
    bool overwrite;        /* WRQ: replace an existing object; false: ERROR 6 if it exists */
    size_t blksize;        /* lets a backend size its staging */
    /* RRQ revalidation (the cache): backends that can ask conditionally do,
     * and answer OPENED with s->not_modified set and no data. */
    const char *if_none_match;     /* an ETag, or NULL */
    const char *if_modified_since; /* an HTTP date, or NULL */
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
    ssize_t (*pull)(struct tg_stream *s, uint8_t *dst, size_t len);
    int (*push)(struct tg_stream *s, const uint8_t *src, size_t len);
    int (*commit)(struct tg_stream *s);
    void (*close)(struct tg_stream *s);
    /* Optional, after every backend exists: find the backends this one
     * wraps (the cache's upstream). */
    int (*link)(struct tg_backend *b, struct tg_backend *(*find)(void *ctx, const char *name),
                void *ctx, char *err, size_t errlen);
    /* Optional, read streams of data at rest (a file): read the next bytes
     * straight into the caller's buffers, one preadv off the loop, then
     * TG_STREAM_DIRECT with s->direct_result (bytes, fewer than asked only
     * at the end, or < 0 with s->err). The buffers stay the caller's and
     * must live until then. A stream is read with pull() or with this,
     * never both. It spares the session a copy and the stream its staging.
     * Returns TG_DIRECT_DONE instead when the bytes were at hand (page
     * cache) and are already in the buffers: direct_result is set and no
     * event follows. */
    int (*read_direct)(struct tg_stream *s, const uv_buf_t *bufs, unsigned nbufs);
};

#define TG_DIRECT_DONE 1

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
    struct tg_backend *backend;
    tg_stream_cb *cb;
    void *arg;
    int64_t size;        /* read: after OPENED, bytes or -1 */
    struct tg_error err; /* after FAILED or a negative pull/push */
    /* read, after OPENED, where the backend knows them (HTTP, S3) */
    char etag[128];
    char last_modified[64];
    bool not_modified;   /* a conditional open found the object unchanged */
    /* read, at end of file: the end was only the connection closing (no
     * Content-Length, not chunked; RFC 9112 section 6.3), so a body cut
     * short looks the same as a whole one */
    bool end_unproven;
    ssize_t direct_result;
};

extern const struct tg_backend_ops tg_file_backend_ops;
extern const struct tg_backend_ops tg_http_backend_ops;
extern const struct tg_backend_ops tg_s3_backend_ops;
extern const struct tg_backend_ops tg_cache_backend_ops;

/* Create a backend from its config section by type; err names the key and
 * line ("line 12: root: ..."). Owner: gateway/backend.c. */
int tg_backend_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                      struct tg_backend **out, char *err, size_t errlen);
void tg_backend_destroy(struct tg_backend *b);
/* Set by `tftpgw --check-config`: backends validate their settings but
 * start no work (no cache scan or prefetch in a directory a running
 * gateway may own). */
extern bool tg_backend_check_only;
/* Close a descriptor on the thread pool: the last close of a big unlinked
 * file frees its blocks, which is disk work the loop must not wait for. */
void tg_fs_close_async(uv_loop_t *loop, int fd);

static inline ssize_t tg_stream_pull(struct tg_stream *s, uint8_t *dst, size_t len)
{
    return s->backend->ops->pull(s, dst, len);
}
static inline int tg_stream_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    return s->backend->ops->push(s, src, len);
}
static inline int tg_stream_commit(struct tg_stream *s)
{
    return s->backend->ops->commit(s);
}
static inline void tg_stream_close(struct tg_stream *s)
{
    s->backend->ops->close(s);
}

#endif

/* backends/cache.h - the cache backend's own parts, shared by its files:
 *   backends/cache.c       the backend: index, disk budget, start-up scan,
 *                          configuration, open_read/open_write
 *   backends/cache_fill.c  fills: one upstream fetch per key into a file,
 *                          relaying, committing the copy
 *   backends/cache_read.c  readers: a committed copy, or a fill followed
 *   backends/cache_neg.c   negative entries: keys the upstream said are
 *                          not found, within negative_ttl
 * Everything here runs on the loop; the thread-pool jobs are the files'. */
#ifndef TFTPGW_CACHE_H
#define TFTPGW_CACHE_H

#include "tftpgw/backend.h"
#include "tftpgw/life.h"
#include "tftpgw/localfs.h"
#include "tftpgw/sha256.h"

#define CHUNK (64 * 1024)
#define NBUCKETS 1024
#define NAME_LEN (2 * TG_SHA256_LEN) /* hex SHA-256 of the key */
#define OLD_NAME_LEN 32              /* earlier versions: two FNV-1a hashes */
#define META_MAX 8192
#define NEG_MAX 4096     /* negative entries per cache (docs/security.md) */
#define NEG_BUCKETS 1024

struct fill;
struct creader;
struct cache_backend;

struct centry {
    struct centry *next; /* hash chain */
    char *key;
    char name[NAME_LEN + 1];
    bool present;        /* a committed copy is on disk */
    int64_t size;
    uint64_t fetched_ms; /* wall clock, so freshness survives a restart */
    uint64_t fresh_ms;   /* how long after fetched_ms the copy is fresh */
    struct tg_validators val;
    uint64_t used;       /* LRU clock */
    int readers;         /* readers of the committed copy */
    int holders;         /* every reader pointing here, whatever its state */
    int pins;            /* open fill files that are this entry's copy */
    struct fill *fill;   /* fetch or revalidation in flight */
};

/* A fill's anonymous file, shared by the fill and every reader that follows
 * it: one descriptor, closed (freeing its blocks) when the last holder lets
 * go, so a reader that ends holds nothing. Its bytes count against max_size
 * until then, or until they became a committed copy. */
struct tmpf {
    struct cache_backend *cb;
    struct centry *pin;  /* committed: the entry whose copy this inode is */
    int fd;
    int refs;
    int64_t charged;     /* bytes counted in cb->filling */
};

struct cache_stats {
    uint64_t hits, misses, revalidations, stale, evictions, up_bytes, served_bytes;
    uint64_t cancelled, not_stored, negative_hits;
};

/* A key the upstream said does not exist: its SHA-256 only, so every
 * entry costs the same whatever the key's length. */
struct negent {
    struct negent *hnext;          /* hash chain */
    struct negent *older, *newer;  /* expiry order */
    uint8_t h[TG_SHA256_LEN];
    uint64_t until_ms;             /* loop time */
};

struct negtab {
    struct negent *buckets[NEG_BUCKETS];
    struct negent *oldest, *newest;
    size_t count;                  /* at most NEG_MAX */
};

struct cache_backend {
    struct tg_backend base;
    struct tg_backend *up;
    char *up_name;
    int up_line;
    char *dir;
    int dirfd;
    int64_t max_size, total;
    int64_t filling;     /* bytes the running fills hold on disk */
    int64_t min_free;    /* free-space floor of the file system */
    uint64_t ttl_ms, stale_ms, grace_ms;
    uint64_t neg_ttl_ms; /* negative_ttl; 0: misses are not remembered */
    bool ttl_override;   /* ttl, not the origin's freshness */
    struct negtab neg;
    char **prefetch;
    size_t nprefetch;
    struct centry *buckets[NBUCKETS];
    uint64_t clock;
    bool anon_ok;        /* fill files may be anonymous (tg_lfs_can_link_anon) */
    int fills;           /* fills alive */
    struct cache_stats st;
};

/* F_RELAYING: storing stopped; what is on disk stays readable for readers
 * behind, the rest passes through buf, one chunk at a time, at the pace of
 * the slowest reader. */
enum fill_state { F_OPENING, F_FILLING, F_RELAYING, F_COMMITTING, F_DONE, F_FAILED };

struct fill {
    struct cache_backend *cb;
    struct centry *e;
    struct tg_stream *up;
    bool reval;
    bool prefetch;       /* nobody asked: no reader to wait for */
    bool orphan;         /* a write replaced the object: never becomes the copy */
    bool up_opened, fd_ready, up_eof, writing;
    enum fill_state state;
    struct tmpf *tf;     /* the file being written */
    int64_t size, filled;
    int64_t stored;      /* relaying: the bytes on disk */
    int64_t roff;        /* relaying: offset of the rlen bytes in buf */
    size_t rlen;
    struct tg_validators val; /* the upstream's, for the .meta */
    uint64_t fresh_ms;   /* freshness the upstream's answer gives */
    const char *no_keep; /* why the answer may be relayed but not kept */
    struct creader *starter; /* the reader whose request the fill sends */
    uint8_t *buf;
    size_t blen;
    struct tg_lfs_tmp_req open; /* the fill file; open.tmp names it for the commit */
    char prefix[NAME_LEN + 2];  /* "<hash>.": its temporary names start so */
    uv_work_t work, wwork;
    ssize_t wres;        /* write worker: bytes written */
    int wr_errno;
    bool below_floor;    /* write worker: free space under min_free */
    bool unlink_old;     /* write worker: remove the outdated copy first */
    int werr;            /* commit worker */
    struct tg_life life; /* held by fs requests and work; closed when DONE or FAILED */
    uv_timer_t timer;    /* fill_grace; relay steps run from it, off the readers' calls */
    struct creader *readers; /* waiting or following */
    struct tg_error err;
};

enum reader_state { R_WAIT, R_OPENING, R_OPEN, R_FAILED };

struct creader {
    struct tg_stream base;
    struct cache_backend *cb;
    struct centry *e;
    struct fill *fill;   /* set while waiting for / following a fill */
    struct creader *next, *prev;
    enum reader_state state;
    bool on_copy;        /* counted in e->readers */
    bool stale;
    int fd;              /* a committed copy's own descriptor, or -1 */
    struct tmpf *tf;     /* a fill's file, while this reader needs it */
    int64_t pos, avail, total;
    uint8_t *buf;
    size_t boff, blen;
    bool reading, want;
    char client_ip[64];  /* the request's, for the upstream (X-TFTP-Client) */
    char *filename;      /* the request's, for the upstream (X-TFTP-File) */
    uv_work_t nwork;     /* a negative entry's answer, from the loop */
    struct tg_life life; /* held by fs requests and work in flight */
    uv_fs_t req;
};

static inline uint64_t tg_uv_now_ms(struct cache_backend *cb)
{
    return uv_now(cb->base.loop);
}

/* backends/cache.c */
uint64_t cache_wall_ms(void);
/* The freshness a fill's answer gives: the origin's (RFC 9111 section
 * 4.2), or ttl when it says nothing or ttl_override is on. */
uint64_t cache_fresh_ms(struct cache_backend *cb, const struct tg_http_meta *m);
/* Drop an entry that holds nothing any more. */
void cache_entry_gc(struct cache_backend *cb, struct centry *e);
/* Remove dir/<name>.meta and .data, on the thread pool. */
void cache_unlink_copy(struct cache_backend *cb, const char *name);
/* Evict least recently used copies until copies and fills fit max_size. */
void cache_evict(struct cache_backend *cb);
/* Bytes of copies that eviction may remove. */
int64_t cache_evictable(struct cache_backend *cb);
/* Count bytes more of a fill's file against max_size, evicting older
 * copies only when that makes room; false when it cannot. */
bool cache_budget_take(struct cache_backend *cb, struct tmpf *t, int64_t bytes);

/* backends/cache_fill.c */
struct tmpf *cache_tmpf_ref(struct tmpf *t);
void cache_tmpf_unref(struct tmpf *t);
/* A fetch of e's object from the upstream (reval: conditional; prefetch:
 * nobody asked); NULL when it cannot start. */
struct fill *cache_fill_start(struct cache_backend *cb, struct centry *e, bool reval,
                              bool prefetch, struct creader *by);
/* Run the relay from the loop soon, never inside a reader's own call. */
void cache_fill_kick(struct fill *f);
/* The last reader left: fill_grace starts (or the relay moves on). */
void cache_fill_unfollowed(struct fill *f);

/* backends/cache_read.c */
void cache_reader_notify(struct creader *r, enum tg_stream_ev ev);
void cache_reader_fail(struct creader *r, const struct tg_error *e);
/* Off the fill's list of readers. */
void cache_detach(struct creader *r);
/* A waiting reader starts on the fill's data. */
void cache_follow(struct creader *r, struct fill *f);
/* A relaying reader past the stored bytes lets go of the file. */
void cache_reader_trim(struct creader *r);
/* Serve e's committed copy (its .meta is checked first, off the loop). */
int cache_open_copy(struct creader *r);
/* Follow e's fill, starting one when none runs. */
int cache_reader_join(struct creader *r);
/* A read stream on e, counted in e->holders; NULL when out of memory. */
struct creader *cache_reader_new(struct cache_backend *cb, struct centry *e, tg_stream_cb *fn,
                                 void *arg);
/* A stream that never started (its open failed): no callback ran. */
void cache_reader_drop(struct creader *r);
/* Answer ERROR 1 from the loop: the key has a negative entry. */
int cache_reader_not_found(struct creader *r);

/* backends/cache_neg.c */
bool cache_neg_hit(struct cache_backend *cb, const char *key);
/* Remember that the upstream does not have key, for negative_ttl. */
void cache_neg_add(struct cache_backend *cb, const char *key);
/* A write may create it: forget the miss. */
void cache_neg_drop(struct cache_backend *cb, const char *key);
void cache_neg_free(struct cache_backend *cb);

#endif

/* include/tftpgw/curl_uv.h - the one place libcurl's multi interface meets
 * libuv. One multi handle per loop, shared by every HTTP and S3 backend, so
 * keep-alive connections to an upstream are reused across transfers.
 *
 * Rules for users, because libcurl forbids some calls inside its own
 * callbacks (multi calls such as curl_multi_remove_handle fail there with
 * CURLM_RECURSIVE_API_CALL; curl_easy_pause may not be called from the
 * socket callback): from inside a curl callback (write, read, header) only
 * move bytes and set flags; ask for a wake-up with
 * tg_curl_wake(), and act in x->wake, which runs after curl has returned.
 * tg_curl_remove() and session callbacks only run outside curl callbacks. */
#ifndef TFTPGW_CURL_UV_H
#define TFTPGW_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

#include "tftpgw/common.h"

struct tg_curl;
struct tg_curl_xfer;
struct tg_curl_cap;

typedef void tg_curl_done_cb(struct tg_curl_xfer *x, CURLcode result);
typedef void tg_curl_wake_cb(struct tg_curl_xfer *x);

/* Embedded in a backend's stream; one easy handle in the multi at a time. */
struct tg_curl_xfer {
    CURL *easy;
    tg_curl_done_cb *done; /* the transfer ended; the handle is already removed */
    tg_curl_wake_cb *wake; /* a wake-up asked for from inside a curl callback */
    struct tg_curl *cu;
    struct tg_curl_cap *cap; /* the backend's connection cap, or NULL */
    bool added;              /* in the multi handle, or queued for it */
    bool queued;             /* waiting for a slot under cap */
    bool counted;            /* holds one of cap's slots */
    bool wake_queued;
    struct tg_curl_xfer *wake_next;
    struct tg_curl_xfer *cap_next; /* FIFO of cap's waiting transfers */
};

/* At most max transfers of one backend run at once; each HTTP/1.1 transfer
 * is one upstream connection, so this caps the connections a flood of
 * requests can open. Further ones wait in FIFO order and start when a
 * running one ends; a waiting one that is removed leaves the queue. */
struct tg_curl_cap {
    unsigned max, running, waiting;
    struct tg_curl_xfer *head, *tail;
};

/* The loop's shared multi handle, created on first use; reference counted. */
struct tg_curl *tg_curl_acquire(uv_loop_t *loop);
void tg_curl_release(struct tg_curl *cu);

/* Add x->easy (with done/wake set) to the multi handle; with x->cap set
 * and every slot taken, queue it instead (it starts later by itself). */
int tg_curl_add(struct tg_curl *cu, struct tg_curl_xfer *x);
/* Take it out before it finished (abort), or out of the queue; no done
 * callback follows. Not allowed from inside a curl callback. */
void tg_curl_remove(struct tg_curl_xfer *x);
/* A cap of max (>= 1) running transfers; free only once none uses it. */
struct tg_curl_cap *tg_curl_cap_new(unsigned max);
void tg_curl_cap_free(struct tg_curl_cap *cap);
/* From inside a curl callback: run x->wake soon, outside curl. */
void tg_curl_wake(struct tg_curl_xfer *x);
/* Outside curl callbacks (a stream's read): let curl read x's connection
 * now, so its write callback runs inside the caller. Transfers that end
 * meanwhile and wake-ups are delivered on the next loop turn, never inside
 * this call. Nothing happens for a transfer not running. */
void tg_curl_pull(struct tg_curl_xfer *x);

#endif

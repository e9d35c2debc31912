/* gateway/curl_uv.c - libcurl's multi-socket API driven by libuv
 * (libcurl's CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION contracts
 * and libuv's poll handle rules; curl's multi-uv.c example is the model).
 *
 * Every uv handle here is unref'd: idle keep-alive connections and curl's
 * timers must not keep the loop alive once the server has shut down. A
 * transfer in flight always belongs to a session whose own handles are
 * referenced. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tftpgw/curl_uv.h"
#include "tftpgw/log.h"

struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct tg_curl *cu;
};

struct tg_curl {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    int refs;
    struct tg_curl_xfer *wake_head; /* wake-ups queued from curl callbacks */
    int inmulti;                    /* easy handles added and not yet removed */
    struct poll_ctx **fds;          /* by descriptor, for the close hook */
    size_t nfds;
    struct tg_curl *next;
};

/* One multi per loop; several worker loops (gateway/workers.c) acquire
 * and release from their own threads, so the list and curl's global
 * set-up are under a lock (taken only when a backend is built or freed). */
static pthread_mutex_t all_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tg_curl *all;
static int global_refs;

static void drain_wakeups(struct tg_curl *cu)
{
    struct tg_curl_xfer *x;

    while ((x = cu->wake_head) != NULL) {
        cu->wake_head = x->wake_next;
        x->wake_next = NULL;
        x->wake_queued = false;
        if (x->wake)
            x->wake(x);
    }
}

static int multi_add(struct tg_curl *cu, struct tg_curl_xfer *x)
{
    CURLMcode mc = curl_multi_add_handle(cu->multi, x->easy);

    if (mc != CURLM_OK) {
        tg_log(TG_LOG_ERROR, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return TG_EIO;
    }
    cu->inmulti++;
    return 0;
}

/* Give free slots to waiting transfers, oldest first. One that cannot be
 * added ends as a failed transfer would, through its done callback. */
static void cap_start_waiting(struct tg_curl_cap *cap)
{
    while (cap->head && cap->running < cap->max) {
        struct tg_curl_xfer *x = cap->head;

        cap->head = x->cap_next;
        if (!cap->head)
            cap->tail = NULL;
        x->cap_next = NULL;
        x->queued = false;
        cap->waiting--;
        if (multi_add(x->cu, x) != 0) {
            x->added = false;
            x->done(x, CURLE_FAILED_INIT);
            continue;
        }
        x->counted = true;
        cap->running++;
    }
}

static void cap_release(struct tg_curl_xfer *x)
{
    if (x->counted) {
        x->counted = false;
        x->cap->running--;
    }
}

static void check_done(struct tg_curl *cu)
{
    CURLMsg *msg;
    struct tg_curl_cap *cap;
    int left;

    /* Copy what the message holds before removing the handle: libcurl's
     * curl_multi_info_read documents the message as invalid after that. */
    while ((msg = curl_multi_info_read(cu->multi, &left)) != NULL) {
        struct tg_curl_xfer *x = NULL;
        CURL *easy;
        CURLcode rc;

        if (msg->msg != CURLMSG_DONE)
            continue;
        easy = msg->easy_handle;
        rc = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(cu->multi, easy);
        cu->inmulti--;
        if (!x)
            continue;
        x->added = false;
        cap = x->cap;
        /* The slot is free before done runs: a transfer that goes on with
         * its next request (a HEAD, then the PUT) takes it again at once
         * instead of queueing behind strangers. x may be gone after done. */
        cap_release(x);
        x->done(x, rc);
        if (cap)
            cap_start_waiting(cap);
    }
    drain_wakeups(cu);
}

static void socket_action(struct tg_curl *cu, curl_socket_t fd, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(cu->multi, fd, flags, &running);

    if (mc != CURLM_OK)
        tg_log(TG_LOG_ERROR, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    check_done(cu);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poll_ctx *pc = h->data;
    int flags = 0;

    /* libuv reports POLLERR/POLLHUP as a negative status (libuv's
     * uv_poll_cb contract). Let curl read and write: it then meets the real
     * error ("connection reset by peer") instead of a generic select
     * failure. */
    if (status < 0)
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    socket_action(pc->cu, pc->fd, flags);
}

static void on_timeout(uv_timer_t *t)
{
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void free_ctx(uv_handle_t *h)
{
    tg_free(h->data);
}

static void forget_fd(struct tg_curl *cu, curl_socket_t fd)
{
    struct poll_ctx *pc;

    if (fd < 0 || (size_t)fd >= cu->nfds || !(pc = cu->fds[fd]))
        return;
    cu->fds[fd] = NULL;
    /* Stop polling before the descriptor can be closed: libuv's poll
     * handle rules forbid closing a descriptor that is still polled. */
    uv_poll_stop(&pc->poll);
    uv_close((uv_handle_t *)&pc->poll, free_ctx);
    if (cu->multi)
        curl_multi_assign(cu->multi, fd, NULL);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct tg_curl *cu = userp;
    struct poll_ctx *pc = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        /* Only stop polling: a paused transfer's socket comes back at its
         * next read, and a new poll handle would cost an ioctl and an
         * epoll_ctl more each time. The handle goes when curl closes the
         * descriptor (on_close_socket). */
        if (pc || (fd >= 0 && (size_t)fd < cu->nfds && (pc = cu->fds[fd]) != NULL))
            uv_poll_stop(&pc->poll);
        return 0;
    }
    if (!pc && fd >= 0 && (size_t)fd < cu->nfds && cu->fds[fd]) {
        /* A context curl forgot (no REMOVE came): take it back. */
        pc = cu->fds[fd];
        curl_multi_assign(cu->multi, fd, pc);
    }
    if (!pc) {
        if ((size_t)fd >= cu->nfds) {
            size_t n = (size_t)fd + 64;
            struct poll_ctx **grown = tg_realloc(cu->fds, n * sizeof(*grown));

            if (!grown)
                return -1;
            memset(grown + cu->nfds, 0, (n - cu->nfds) * sizeof(*grown));
            cu->fds = grown;
            cu->nfds = n;
        }
        pc = tg_calloc(1, sizeof(*pc));
        if (!pc || uv_poll_init_socket(cu->loop, &pc->poll, fd) != 0) {
            tg_free(pc);
            return -1;
        }
        pc->fd = fd;
        pc->cu = cu;
        pc->poll.data = pc;
        uv_unref((uv_handle_t *)&pc->poll);
        cu->fds[fd] = pc;
        curl_multi_assign(cu->multi, fd, pc);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (uv_poll_start(&pc->poll, events, on_poll) != 0)
        tg_log(TG_LOG_ERROR, "curl socket %d cannot be polled", (int)fd);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct tg_curl *cu = userp;

    (void)multi;
    /* libcurl's CURLMOPT_TIMERFUNCTION contract: one timer that replaces
     * the previous one, -1 stops it. Never call curl from here (that
     * recurses); 0 runs on the next loop iteration. */
    if (timeout_ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* curl closes its sockets through here (CURLOPT_CLOSESOCKETFUNCTION), so a
 * descriptor is never closed while libuv still polls it, even when curl
 * closes before it reports CURL_POLL_REMOVE. Its data is the long-lived
 * context, never a transfer: libcurl keeps a connection's callbacks from
 * the handle that opened it and may call them after that handle is gone. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    forget_fd(clientp, fd);
    return close(fd);
}

static struct tg_curl *acquire_locked(uv_loop_t *loop)
{
    struct tg_curl *cu;

    for (cu = all; cu; cu = cu->next)
        if (cu->loop == loop) {
            cu->refs++;
            return cu;
        }
    if (global_refs++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        global_refs--;
        return NULL;
    }
    cu = tg_calloc(1, sizeof(*cu));
    if (!cu || !(cu->multi = curl_multi_init())) {
        tg_free(cu);
        if (--global_refs == 0)
            curl_global_cleanup();
        return NULL;
    }
    cu->loop = loop;
    cu->refs = 1;
    uv_timer_init(loop, &cu->timer);
    uv_unref((uv_handle_t *)&cu->timer);
    cu->timer.data = cu;
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    cu->next = all;
    all = cu;
    return cu;
}

struct tg_curl *tg_curl_acquire(uv_loop_t *loop)
{
    struct tg_curl *cu;

    pthread_mutex_lock(&all_mu);
    cu = acquire_locked(loop);
    pthread_mutex_unlock(&all_mu);
    return cu;
}

static void free_cu(uv_handle_t *h)
{
    struct tg_curl *cu = h->data;

    tg_free(cu->fds);
    tg_free(cu);
}

void tg_curl_release(struct tg_curl *cu)
{
    struct tg_curl **pp;

    if (!cu)
        return;
    pthread_mutex_lock(&all_mu);
    if (--cu->refs > 0) {
        pthread_mutex_unlock(&all_mu);
        return;
    }
    for (pp = &all; *pp; pp = &(*pp)->next)
        if (*pp == cu) {
            *pp = cu->next;
            break;
        }
    pthread_mutex_unlock(&all_mu);
    /* curl_multi_cleanup may still call the socket callback (REMOVE) for
     * cached connections; the loop must run again for the uv_close
     * callbacks. */
    curl_multi_cleanup(cu->multi);
    cu->multi = NULL;
    for (size_t fd = 0; fd < cu->nfds; fd++)
        forget_fd(cu, (curl_socket_t)fd); /* none left open, normally */
    uv_close((uv_handle_t *)&cu->timer, free_cu);
    pthread_mutex_lock(&all_mu);
    if (--global_refs == 0)
        curl_global_cleanup();
    pthread_mutex_unlock(&all_mu);
}

int tg_curl_add(struct tg_curl *cu, struct tg_curl_xfer *x)
{
    struct tg_curl_cap *cap = x->cap;

    x->cu = cu;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(x->easy, CURLOPT_CLOSESOCKETDATA, cu);
    if (cap && cap->running >= cap->max) {
        x->cap_next = NULL;
        if (cap->tail)
            cap->tail->cap_next = x;
        else
            cap->head = x;
        cap->tail = x;
        cap->waiting++;
        x->queued = true;
        x->added = true;
        return 0;
    }
    if (multi_add(cu, x) != 0)
        return TG_EIO;
    if (cap) {
        x->counted = true;
        cap->running++;
    }
    x->added = true;
    return 0;
}

static void cap_unqueue(struct tg_curl_xfer *x)
{
    struct tg_curl_cap *cap = x->cap;
    struct tg_curl_xfer **pp, *prev = NULL;

    for (pp = &cap->head; *pp; prev = *pp, pp = &(*pp)->cap_next)
        if (*pp == x) {
            *pp = x->cap_next;
            if (cap->tail == x)
                cap->tail = prev;
            cap->waiting--;
            break;
        }
    x->cap_next = NULL;
    x->queued = false;
}

void tg_curl_remove(struct tg_curl_xfer *x)
{
    struct tg_curl_xfer **pp;

    if (x->wake_queued) {
        for (pp = &x->cu->wake_head; *pp; pp = &(*pp)->wake_next)
            if (*pp == x) {
                *pp = x->wake_next;
                break;
            }
        x->wake_queued = false;
    }
    if (x->queued) {
        cap_unqueue(x);
        x->added = false;
        return;
    }
    if (x->added) {
        curl_multi_remove_handle(x->cu->multi, x->easy);
        x->cu->inmulti--;
        x->added = false;
        if (x->counted) {
            cap_release(x);
            cap_start_waiting(x->cap);
        }
    }
}

struct tg_curl_cap *tg_curl_cap_new(unsigned max)
{
    struct tg_curl_cap *cap = tg_calloc(1, sizeof(*cap));

    if (cap)
        cap->max = max > 0 ? max : 1;
    return cap;
}

void tg_curl_cap_free(struct tg_curl_cap *cap)
{
    tg_free(cap);
}

void tg_curl_wake(struct tg_curl_xfer *x)
{
    if (x->wake_queued)
        return;
    x->wake_queued = true;
    x->wake_next = x->cu->wake_head;
    x->cu->wake_head = x;
    /* Run the glue on the next loop turn, even when curl's own timer is far
     * off: the wake-up is delivered after that socket action, and curl
     * sets its timer again from there. */
    uv_timer_start(&x->cu->timer, on_timeout, 0, 0);
}

void tg_curl_pull(struct tg_curl_xfer *x)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    int running;
    CURLMcode mc;

    if (!x->added || x->queued ||
        curl_easy_getinfo(x->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
        return;
    mc = curl_multi_socket_action(x->cu->multi, fd, CURL_CSELECT_IN, &running);
    /* Inside another curl call (a stream read from a curl callback's
     * path) curl refuses; the bytes then come from the poll as before. */
    if (mc != CURLM_OK && mc != CURLM_RECURSIVE_API_CALL)
        tg_log(TG_LOG_ERROR, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    /* Fewer running than added: one ended here, and check_done reports it
     * on the next turn. (Wake-ups asked for here start that turn by
     * themselves; otherwise curl's own timer stays as curl set it.) */
    if (mc == CURLM_OK && running < x->cu->inmulti)
        uv_timer_start(&x->cu->timer, on_timeout, 0, 0);
}

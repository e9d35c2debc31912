/* gateway/neighwait.c - requests waiting for their client's MAC, and the
 * rtnetlink lookups that answer them (gateway/neighwait.h).
 *
 * Why a non-blocking netlink socket under uv_poll, not uv_queue_work: the
 * kernel answers an RTM_GETNEIGH "get" from memory, within the sendmsg, so
 * there is nothing to wait for that a thread would hide; a thread-pool job
 * would instead take one of libuv's four threads that the file backend's
 * disk reads and fsyncs share, and a burst of lookups (a boot storm, or a
 * spoofing sender) would delay every disk transfer behind it. One socket,
 * lookups told apart by sequence number, no locks; the loop never blocks
 * (invariant 1: MSG_DONTWAIT both ways, the answer read when poll says so).
 *
 * A lookup asks RTM_GETNEIGH for the client's address on the interface its
 * request came in on. When there is no entry, one RTM_GETROUTE says why
 * (behind a router, a local address, or simply not in the table), so the
 * operator's log line explains the refusal. */
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "neighwait.h"
#include "tftpgw/log.h"
#include "tftpgw/sockaddr.h"

#define RX_BUF 8192
#define RX_BURST 16 /* datagrams read per wakeup */
#define TICK_MS 250 /* how often lookups are checked for a timeout */

enum stage { IDLE = 0, ASK_NEIGH, ASK_ROUTE };

struct lookup {
    enum stage stage;
    struct tg_neigh_key k;
    uint32_t seq;
    uint64_t started_ms;
};

struct parked {
    bool used;
    struct tg_neigh_key k;
    tg_mw_cb *cb;
    void *owner;
    struct sockaddr_storage peer, local;
    unsigned ifindex;
    uint8_t *dgram;
    size_t len;
};

struct tg_macwait {
    uv_loop_t *loop;
    struct tg_neigh_cache *cache; /* allocated with the socket */
    int fd;
    bool open, closed, broken; /* broken: the socket could not be had */
    uv_poll_t poll;
    uv_timer_t timer;
    uint32_t seq;
    unsigned inflight;
    struct lookup look[TG_MW_INFLIGHT];
    struct parked park[TG_MW_PARKED];
    struct tg_neigh_budget budget; /* TG_MW_RATE lookups a second */
};

struct tg_macwait *tg_macwait_new(uv_loop_t *loop)
{
    struct tg_macwait *mw = tg_calloc(1, sizeof(*mw));

    if (!mw)
        return NULL;
    mw->loop = loop;
    mw->fd = -1;
    tg_neigh_budget_init(&mw->budget, TG_MW_RATE);
    return mw;
}

static void on_readable(uv_poll_t *h, int status, int events);
static void on_tick(uv_timer_t *t);

/* The socket, the timer and the cache, on first use: a configuration that
 * never names {client_mac} opens nothing (and a unit file that forbids
 * AF_NETLINK costs only this feature). */
static bool ensure_open(struct tg_macwait *mw)
{
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

    if (mw->open)
        return true;
    if (mw->broken || mw->closed)
        return false;
    mw->cache = tg_neigh_cache_new(NULL);
    mw->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (!mw->cache || mw->fd < 0 || bind(mw->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        uv_poll_init_socket(mw->loop, &mw->poll, mw->fd) != 0) {
        tg_log(TG_LOG_WARN, "client MAC lookup: no rtnetlink socket: %s; routes using "
                            "{client_mac} refuse every client",
               mw->fd < 0 ? strerror(errno) : "setup failed");
        if (mw->fd >= 0)
            close(mw->fd);
        mw->fd = -1;
        mw->broken = true;
        return false;
    }
    mw->poll.data = mw;
    uv_timer_init(mw->loop, &mw->timer);
    mw->timer.data = mw;
    uv_poll_start(&mw->poll, UV_READABLE, on_readable);
    mw->open = true;
    return true;
}

enum tg_neigh_state tg_macwait_cached(struct tg_macwait *mw, const struct tg_neigh_key *k,
                                      char mac[TG_MAC_STRLEN], char why[TG_NEIGH_WHY_MAX])
{
    if (!ensure_open(mw)) {
        snprintf(why, TG_NEIGH_WHY_MAX, "lookup unavailable (no rtnetlink socket)");
        return TG_NEIGH_UNKNOWN;
    }
    return tg_neigh_cache_get(mw->cache, k, uv_now(mw->loop), mac, why);
}

/* ---- answers ---- */

/* The answer for l: cached, then every request parked on it goes back to
 * its owner (the cache now answers it), and the slot is free. */
static void finish(struct tg_macwait *mw, struct lookup *l, const char *mac, const char *why)
{
    struct tg_neigh_key k = l->k;

    tg_neigh_cache_put(mw->cache, &k, uv_now(mw->loop), mac, why);
    l->stage = IDLE;
    mw->inflight--;
    for (unsigned i = 0; i < TG_MW_PARKED; i++) {
        struct parked *p = &mw->park[i];
        struct tg_mw_request r;

        if (!p->used || memcmp(&p->k, &k, sizeof(k)) != 0)
            continue;
        r = (struct tg_mw_request){p->dgram, p->len, (struct sockaddr *)&p->peer,
                                   (struct sockaddr *)&p->local, p->ifindex};
        /* Out of the list first: the callback may park again (a reload
         * made another route need it) and must find the slot free. */
        p->used = false;
        p->cb(p->owner, &r);
        tg_free(p->dgram);
        p->dgram = NULL;
    }
}

static bool send_ask(struct tg_macwait *mw, struct lookup *l, enum stage st)
{
    uint8_t buf[TG_NEIGH_MSG_MAX];
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    size_t n;

    l->seq = ++mw->seq;
    l->stage = st;
    n = st == ASK_NEIGH ? tg_neigh_build_get(buf, sizeof(buf), &l->k, l->seq)
                        : tg_neigh_build_route(buf, sizeof(buf), &l->k, l->seq);
    return n > 0 && sendto(mw->fd, buf, n, MSG_DONTWAIT, (struct sockaddr *)&kernel,
                           sizeof(kernel)) == (ssize_t)n;
}

static void no_entry(struct tg_macwait *mw, struct lookup *l, const struct tg_nl_answer *a)
{
    char why[TG_NEIGH_WHY_MAX];

    if (a && a->kind == TG_NL_ROUTE && a->local)
        snprintf(why, sizeof(why), "a local address, not a neighbour");
    else if (a && a->kind == TG_NL_ROUTE && a->gateway[0])
        snprintf(why, sizeof(why), "not on a directly attached network (via %s)", a->gateway);
    else
        snprintf(why, sizeof(why), "no neighbour entry on the arrival interface");
    finish(mw, l, NULL, why);
}

static void answer(struct tg_macwait *mw, const struct tg_nl_answer *a)
{
    struct lookup *l = NULL;
    char why[TG_NEIGH_WHY_MAX];

    for (unsigned i = 0; i < TG_MW_INFLIGHT && !l; i++)
        if (mw->look[i].stage != IDLE && mw->look[i].seq == a->seq)
            l = &mw->look[i];
    if (!l || (a->kind == TG_NL_ERROR && a->error == 0))
        return; /* not ours, or an ack after the answer */
    if (l->stage == ASK_NEIGH && a->kind == TG_NL_NEIGH) {
        if (a->mac[0])
            finish(mw, l, a->mac, NULL);
        else {
            snprintf(why, sizeof(why), "neighbour entry has no usable address (state 0x%x)",
                     a->state);
            finish(mw, l, NULL, why);
        }
    } else if (l->stage == ASK_NEIGH && a->kind == TG_NL_ERROR) {
        if (a->error != -ENOENT) {
            snprintf(why, sizeof(why), "lookup failed: %s", strerror(-a->error));
            finish(mw, l, NULL, why);
        } else if (!send_ask(mw, l, ASK_ROUTE)) {
            no_entry(mw, l, NULL);
        }
    } else if (l->stage == ASK_ROUTE && (a->kind == TG_NL_ROUTE || a->kind == TG_NL_ERROR)) {
        no_entry(mw, l, a->kind == TG_NL_ROUTE ? a : NULL);
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct tg_macwait *mw = h->data;
    uint8_t buf[RX_BUF];
    struct tg_nl_answer ans[8];

    if (status < 0 || !(events & UV_READABLE))
        return; /* lookups then time out (on_tick) */
    for (int round = 0; round < RX_BURST && mw->open; round++) {
        struct sockaddr_nl from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(mw->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from,
                             &fl);
        size_t na;

        if (n < 0 && errno == ENOBUFS)
            continue; /* answers were lost: their lookups time out */
        if (n <= 0)
            break;
        if (from.nl_pid != 0)
            continue; /* only the kernel answers lookups */
        na = tg_nl_parse(buf, (size_t)n, ans, TG_ARRAY_LEN(ans));
        for (size_t i = 0; i < na && mw->open; i++)
            answer(mw, &ans[i]);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct tg_macwait *mw = t->data;
    uint64_t now = uv_now(mw->loop);

    for (unsigned i = 0; i < TG_MW_INFLIGHT; i++)
        if (mw->look[i].stage != IDLE && now - mw->look[i].started_ms >= TG_MW_TIMEOUT_MS)
            finish(mw, &mw->look[i], NULL, "lookup timed out");
    if (mw->inflight == 0)
        uv_timer_stop(&mw->timer);
}

/* ---- asking ---- */

/* The running lookup for k, or a new one; NULL when none can start. */
static struct lookup *lookup_for(struct tg_macwait *mw, const struct tg_neigh_key *k)
{
    uint64_t now = uv_now(mw->loop);
    struct lookup *free_l = NULL;

    for (unsigned i = 0; i < TG_MW_INFLIGHT; i++) {
        if (mw->look[i].stage != IDLE && memcmp(&mw->look[i].k, k, sizeof(*k)) == 0)
            return &mw->look[i];
        if (mw->look[i].stage == IDLE && !free_l)
            free_l = &mw->look[i];
    }
    if (!free_l || !tg_neigh_budget_take(&mw->budget, now))
        return NULL;
    free_l->k = *k;
    free_l->started_ms = now;
    mw->inflight++;
    if (!send_ask(mw, free_l, ASK_NEIGH)) {
        /* Send buffer full or the socket gone: an answer like a timeout,
         * cached briefly so the retransmission does not ask again at once. */
        char why[TG_NEIGH_WHY_MAX];

        snprintf(why, sizeof(why), "lookup failed: %s", strerror(errno));
        tg_neigh_cache_put(mw->cache, k, now, NULL, why);
        free_l->stage = IDLE;
        mw->inflight--;
        return NULL;
    }
    if (!uv_is_active((uv_handle_t *)&mw->timer))
        uv_timer_start(&mw->timer, on_tick, TICK_MS, TICK_MS);
    return free_l;
}

enum tg_mw_park tg_macwait_park(struct tg_macwait *mw, const struct tg_neigh_key *k,
                                const struct tg_mw_request *r, tg_mw_cb *cb, void *owner)
{
    struct parked *p = NULL;

    if (!ensure_open(mw) || r->len > TG_MW_DGRAM_MAX)
        return TG_MW_FULL;
    for (unsigned i = 0; i < TG_MW_PARKED; i++) {
        struct parked *q = &mw->park[i];

        if (q->used && q->len == r->len && tg_sockaddr_equal((struct sockaddr *)&q->peer, r->peer) &&
            memcmp(q->dgram, r->dgram, r->len) == 0)
            return TG_MW_DUPLICATE; /* a retransmission: the first is answered */
        if (!q->used && !p)
            p = q;
    }
    if (!p || !(p->dgram = tg_malloc(r->len ? r->len : 1)))
        return TG_MW_FULL;
    if (!lookup_for(mw, k)) {
        tg_free(p->dgram);
        p->dgram = NULL;
        return TG_MW_FULL;
    }
    memcpy(p->dgram, r->dgram, r->len);
    p->len = r->len;
    p->k = *k;
    p->cb = cb;
    p->owner = owner;
    memcpy(&p->peer, r->peer, tg_sockaddr_len(r->peer));
    memcpy(&p->local, r->local, tg_sockaddr_len(r->local));
    p->ifindex = r->ifindex;
    p->used = true;
    return TG_MW_PARKED_OK;
}

/* ---- end ---- */

static void on_poll_closed(uv_handle_t *h)
{
    struct tg_macwait *mw = h->data;

    /* The descriptor outlives its poll handle (libuv poll.rst). */
    close(mw->fd);
    mw->fd = -1;
}

void tg_macwait_close(struct tg_macwait *mw)
{
    unsigned dropped = 0;

    if (!mw || mw->closed)
        return;
    mw->closed = true;
    for (unsigned i = 0; i < TG_MW_PARKED; i++) {
        if (!mw->park[i].used)
            continue;
        dropped++;
        mw->park[i].used = false;
        tg_free(mw->park[i].dgram);
        mw->park[i].dgram = NULL;
    }
    if (dropped)
        tg_log(TG_LOG_INFO, "shutdown: %u request(s) waiting for a client MAC dropped", dropped);
    if (!mw->open)
        return;
    mw->open = false;
    uv_poll_stop(&mw->poll);
    uv_close((uv_handle_t *)&mw->poll, on_poll_closed);
    uv_close((uv_handle_t *)&mw->timer, NULL);
}

void tg_macwait_free(struct tg_macwait *mw)
{
    if (!mw)
        return;
    tg_neigh_cache_free(mw->cache);
    tg_free(mw);
}

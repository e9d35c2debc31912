/* gateway/listener.c - the request sockets (port 69): parse, dedupe, limits,
 * then hand over to a session. Uses its own non-blocking socket under a
 * uv_poll_t, because libuv's UDP receive path cannot report the destination
 * address of a datagram (IP_PKTINFO), and replies must come from the address
 * the client asked (a client on a multi-homed host ignores any other). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heldmap.h"
#include "listener.h"
#include "neighwait.h"
#include "sendq.h"
#include "session.h"
#include "shared.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/packet.h"
#include "tftpgw/path.h"
#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"

#define BURST 64    /* datagrams taken per wakeup, so one busy socket cannot starve the loop */
#define RX_BATCH 16 /* datagrams per recvmmsg */
#define RX_SLOT_REQ 4096 /* per-transfer ports: only requests arrive here */
#define SINGLE_PORT_RCVBUF (8 << 20) /* single-port: every client's window lands here */

static void send_error(struct tg_listener *l, const struct sockaddr *peer,
                       uint16_t code, const char *msg)
{
    uint8_t pkt[512];
    size_t n = tg_pkt_build_error(pkt, sizeof(pkt), code, msg);

    /* Best effort: an ERROR is never retransmitted (RFC 1350 7). */
    if (n)
        (void)sendto(l->fd, pkt, n, 0, peer, tg_sockaddr_len(peer));
}

/* Broadcast and multicast requests are not ours to answer (RFC 1123 4.2.3.5). */
static bool dst_is_group(const struct sockaddr *dst)
{
    if (dst->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)dst)->sin_addr.s_addr);

        return a == 0xffffffffu || (a >> 28) == 0xe;
    }
    if (dst->sa_family == AF_INET6)
        return ((const struct sockaddr_in6 *)dst)->sin6_addr.s6_addr[0] == 0xff;
    return false;
}

static void refuse(struct tg_listener *l, const struct sockaddr *peer,
                   const char *what, const char *file, const struct tg_error *e)
{
    char ps[INET6_ADDRSTRLEN + 8], fs[160];

    l->rt->stats.requests_refused++;
    tg_sockaddr_str(peer, ps, sizeof(ps));
    tg_log(TG_LOG_INFO, "refused client=%s op=%s file=\"%s\" code=%u msg=\"%s\"",
           ps, what, file ? tg_log_sanitize(file, fs, sizeof(fs)) : "",
           e->code, e->msg);
    send_error(l, peer, e->code, e->msg);
}

static bool is_error(const uint8_t *buf, size_t len)
{
    return len >= 2 && buf[0] == 0 && buf[1] == TG_OP_ERROR;
}

/* Single-port mode: a datagram other than a request belongs to the session
 * of its address:port. True when it was taken care of here. */
static bool to_session(struct tg_listener *l, const uint8_t *buf, size_t len,
                       const struct sockaddr *peer)
{
    struct tg_reg_entry *e = tg_registry_find_peer(&l->rt->reg, peer);
    struct tg_error err;

    if (len >= 2 && buf[0] == 0 && (buf[1] == TG_OP_RRQ || buf[1] == TG_OP_WRQ))
        return false;
    /* A write on a port of its own (single_port_writes = no) takes nothing
     * from this port but requests. */
    if (e && e->shared) {
        tg_session_input(e->s, buf, len);
        return true;
    }
    /* Single-port mode's foreign TID: nothing runs for this address:port
     * (RFC 1350 4; an ERROR is never answered). */
    if (is_error(buf, len))
        return true;
    tg_error_set(&err, TG_TFTP_EBADID, "unknown transfer ID");
    refuse(l, peer, len >= 2 && buf[0] == 0 ? tg_pkt_opname(buf[1]) : "?", NULL, &err);
    return true;
}

/* A request from a client that already has a session: its retransmission,
 * a late duplicate, or (single-port) a new transfer from the same port.
 * True when nothing more is to be done with it. */
static bool known_request(struct tg_listener *l, const struct sockaddr *peer,
                          enum tg_opcode op, const char *filename)
{
    struct tg_registry *reg = &l->rt->reg;
    struct tg_reg_entry *e = tg_registry_find_dup(reg, peer, op, filename);

    if (e) {
        /* The client did not hear our first answer (RFC 1350 4). */
        tg_session_retransmit(e->s);
        return true;
    }
    if (l->rt->single_port && (e = tg_registry_find_peer(reg, peer)) != NULL && e->shared) {
        /* The same request again once data flows is a late duplicate;
         * anything else from this port starts over. */
        if (tg_registry_same_request(e, op, filename))
            return true;
        tg_session_supersede(e->s);
    }
    return false;
}

/* A place among max_sessions (and the client's max_sessions_per_client),
 * counted across every worker (gateway/shared.h) and held for the session
 * about to start: false when there is none. At max_sessions, may_evict
 * ends this worker's oldest session whose client never answered. */
static enum tg_admit reserve(struct tg_runtime *rt, const struct sockaddr *peer,
                             bool may_evict)
{
    const struct tg_server_cfg *sc = &rt->cfg->server;
    char ip[INET6_ADDRSTRLEN];
    enum tg_admit a = TG_ADMIT_FULL;

    if (tg_sockaddr_ip(peer, ip, sizeof(ip)) != 0)
        return TG_ADMIT_FULL;
    for (int round = 0; round < 2; round++) {
        unsigned lingering = sc->max_sessions_per_client
                                 ? tg_registry_count_lingering(&rt->reg, ip) : 0;

        a = tg_shared_reserve(rt->shared, ip, sc->max_sessions, sc->max_sessions_per_client,
                              lingering);
        if (a != TG_ADMIT_FULL || !may_evict || round > 0)
            break;
        if (!tg_registry_evict_unproven(&rt->reg)) {
            /* The unproven sessions may all be another worker's. */
            if (rt->room_elsewhere && rt->room_elsewhere(rt))
                return TG_ADMIT_ELSEWHERE;
            break;
        }
        tg_log(TG_LOG_INFO, "server full: evicted a session whose client never answered");
    }
    if (a == TG_ADMIT_OK)
        rt->reg.reserved = true;
    return a;
}

/* The place reserve() took, when no session took it over. */
static void unreserve(struct tg_runtime *rt, const struct sockaddr *peer)
{
    char ip[INET6_ADDRSTRLEN];

    if (!rt->reg.reserved)
        return;
    rt->reg.reserved = false;
    if (tg_sockaddr_ip(peer, ip, sizeof(ip)) == 0)
        tg_shared_release(rt->shared, ip);
}

/* Shutdown, rate limit, max_sessions and max_sessions_per_client: false
 * when the request was refused; true with a place reserved. */
static bool admit(struct tg_listener *l, const struct sockaddr *peer,
                  enum tg_opcode op, const char *filename)
{
    struct tg_runtime *rt = l->rt;
    const struct tg_server_cfg *sc = &rt->cfg->server;
    struct tg_error err;

    if (rt->draining) {
        tg_error_set(&err, TG_TFTP_EUNDEF, "server is shutting down");
        tg_metrics_request_refused("shutdown");
        refuse(l, peer, tg_pkt_opname(op), filename, &err);
        return false;
    }
    if (tg_ratelimit_check(rt->rate, peer, uv_now(rt->loop), sc->rate_limit, sc->rate_burst) !=
        TG_RATE_PASS) {
        /* One small ERROR per refused request: never more than came in. */
        tg_error_set(&err, TG_TFTP_EUNDEF, "rate limit exceeded, slow down");
        tg_metrics_request_refused("rate_limited");
        if (rt->rl_logged_s != uv_now(rt->loop) / 1000) {
            /* A flood must not become a log flood: a line a second. */
            rt->rl_logged_s = uv_now(rt->loop) / 1000;
            refuse(l, peer, tg_pkt_opname(op), filename, &err); /* counts it */
        } else {
            rt->stats.requests_refused++;
            send_error(l, peer, err.code, err.msg);
        }
        return false;
    }
    switch (reserve(rt, peer, true)) {
    case TG_ADMIT_OK:
        return true;
    case TG_ADMIT_ELSEWHERE:
        /* Deliberate silence: another worker ends one of its unanswered
         * sessions on its own loop, and the client's retransmission finds
         * the place (a line a second, as a flood may bring many). */
        if (rt->room_logged_s != uv_now(rt->loop) / 1000) {
            char ps[INET6_ADDRSTRLEN + 8];

            rt->room_logged_s = uv_now(rt->loop) / 1000;
            tg_sockaddr_str(peer, ps, sizeof(ps));
            tg_log(TG_LOG_INFO, "server full: another worker ends a session whose client never "
                                "answered; request from %s dropped (the client will "
                                "retransmit)", ps);
        }
        return false;
    default:
        tg_error_set(&err, TG_TFTP_EUNDEF, "server busy, try again later");
        tg_metrics_request_refused("busy");
        refuse(l, peer, tg_pkt_opname(op), filename, &err);
        return false;
    }
}

/* Hand an admitted request to its session; mac is "" when not known. */
static void start(struct tg_listener *l, const struct tg_packet *pkt,
                  const struct tg_mw_request *r, const char *mac)
{
    struct tg_request_ctx rc = {
        .op = pkt->op, .req = &pkt->u.req, .peer = r->peer, .local = r->local,
        .ifindex = r->ifindex, .listen_fd = l->fd, .client_mac = mac[0] ? mac : NULL,
        .sendq = l->sendq,
    };
    struct tg_error err;

    if (tg_session_start(l->rt, &rc, &err) != 0) {
        tg_metrics_request_refused(tg_metrics_refusal(err.code));
        refuse(l, r->peer, tg_pkt_opname(pkt->op), pkt->u.req.filename, &err);
    }
    unreserve(l->rt, r->peer); /* a session that never joined the registry */
}

static void mac_known(void *owner, const struct tg_mw_request *r);

/* Whether any route of the running configuration names {client_mac}: the
 * common configuration without one pays no path normalisation here. */
static bool any_mac_route(const struct tg_config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (tg_route_key_wants_mac(cfg->routes[i].key))
            return true;
    return false;
}

/* {client_mac}: when the route this request goes to names it, the MAC
 * from the cache (mac), or the request waits for a lookup (true: nothing
 * more to do now; it comes back through mac_known). A MAC that cannot be
 * known leaves mac "" and is logged here, with why; the session then
 * answers ERROR 2 "client MAC unknown". */
static bool mac_wait(struct tg_listener *l, const struct tg_packet *pkt,
                     const struct tg_mw_request *r, char mac[TG_MAC_STRLEN])
{
    struct tg_runtime *rt = l->rt;
    char norm[TG_PATH_MAX], why[TG_NEIGH_WHY_MAX] = "", ps[INET6_ADDRSTRLEN + 8];
    struct tg_neigh_key k;
    enum tg_mw_park how;

    mac[0] = '\0';
    if (!rt->macwait || !any_mac_route(rt->cfg) ||
        tg_path_normalize(pkt->u.req.filename, norm, sizeof(norm)) != 0 ||
        !tg_route_wants_mac(rt->cfg->routes, rt->cfg->nroutes, norm, r->peer, pkt->op) ||
        tg_neigh_key_of(r->peer, r->ifindex, &k) != 0)
        return false;
    tg_sockaddr_str(r->peer, ps, sizeof(ps));
    if (tg_neigh_is_loopback(&k))
        snprintf(why, sizeof(why), "loopback, not a neighbour");
    else if (tg_macwait_cached(rt->macwait, &k, mac, why) == TG_NEIGH_MISS) {
        how = tg_macwait_park(rt->macwait, &k, r, mac_known, l);
        if (how == TG_MW_FULL && rt->mac_logged_s != uv_now(rt->loop) / 1000) {
            /* A flood must not become a log flood: a line a second. */
            rt->mac_logged_s = uv_now(rt->loop) / 1000;
            tg_log(TG_LOG_INFO, "client MAC lookups busy: request from %s dropped "
                                "(the client will retransmit)", ps);
        }
        return true;
    }
    if (!mac[0])
        tg_log(TG_LOG_INFO, "client MAC unknown client=%s: %s", ps, why);
    return false;
}

/* A parked request's lookup ended: the cache answers it now. What changed
 * while it waited is checked again (shutdown, room). */
static void mac_known(void *owner, const struct tg_mw_request *r)
{
    struct tg_listener *l = owner;
    struct tg_runtime *rt = l->rt;
    struct tg_packet pkt;
    struct tg_error err;
    char mac[TG_MAC_STRLEN];

    if (!l->open || tg_pkt_parse(r->dgram, r->len, &pkt) != 0)
        return;
    if (rt->draining || reserve(rt, r->peer, false) != TG_ADMIT_OK) {
        tg_error_set(&err, TG_TFTP_EUNDEF, rt->draining ? "server is shutting down"
                                                        : "server busy, try again later");
        tg_metrics_request_refused(rt->draining ? "shutdown" : "busy");
        refuse(l, r->peer, tg_pkt_opname(pkt.op), pkt.u.req.filename, &err);
        return;
    }
    if (!mac_wait(l, &pkt, r, mac))
        start(l, &pkt, r, mac);
    else
        unreserve(rt, r->peer); /* waits again, holding no place */
}

/* A UEFI client's download comes from a new port and may reach another
 * worker's socket than its tsize probe did: it goes to the worker that
 * holds the probe's GET (probe_hold), which serves it as if its own socket
 * had received it. A note still pending (the session may yet be a probe:
 * its ERROR 8 is in that worker's socket before this request was sent)
 * asks that worker to confirm; a request that was no probe's download
 * comes back to the worker the kernel chose, so many clients behind one
 * address do not pile onto one worker. True when handed on. */
static bool held_elsewhere(struct tg_listener *l, const struct tg_packet *pkt,
                           const uint8_t *buf, size_t len, const struct sockaddr *peer,
                           const struct sockaddr *local, unsigned ifindex, enum tg_hand level,
                           unsigned from)
{
    struct tg_runtime *rt = l->rt;
    bool held;
    int k;

    if (pkt->op != TG_OP_RRQ || !rt->heldmap || !rt->hand_off || level == TG_HAND_FINAL)
        return false;
    k = tg_heldmap_find(rt->heldmap, peer, pkt->u.req.filename, uv_hrtime() / 1000000, &held);
    if (level == TG_HAND_NONE)
        return k >= 0 && (unsigned)k != rt->worker &&
               rt->hand_off(rt, (unsigned)k, l, buf, len, peer, local, ifindex,
                            held ? TG_HAND_FINAL : TG_HAND_CONFIRM);
    if (k >= 0 && (unsigned)k == rt->worker && held)
        return false; /* ours: adopt it here */
    return from != rt->worker &&
           rt->hand_off(rt, from, l, buf, len, peer, local, ifindex, TG_HAND_FINAL);
}

static void handle_datagram(struct tg_listener *l, const uint8_t *buf, size_t len,
                            const struct sockaddr *peer, const struct sockaddr *local,
                            unsigned ifindex, enum tg_hand level, unsigned from)
{
    struct tg_packet pkt;
    struct tg_error err;
    struct tg_mw_request r;
    char mac[TG_MAC_STRLEN];
    uint16_t port = peer->sa_family == AF_INET6
                        ? ((const struct sockaddr_in6 *)peer)->sin6_port
                        : ((const struct sockaddr_in *)peer)->sin_port;

    if (port == 0 || dst_is_group(local))
        return; /* nowhere to answer, or not addressed to us alone */
    if (l->rt->single_port && to_session(l, buf, len, peer))
        return;
    if (tg_pkt_parse(buf, len, &pkt) != 0) {
        /* An ERROR cut short before its code is still an ERROR, and an
         * ERROR is never answered (RFC 1350 7). */
        if (is_error(buf, len))
            return;
        tg_error_set(&err, TG_TFTP_EBADOP, "malformed request");
        tg_metrics_request_refused("bad_request");
        refuse(l, peer, "?", NULL, &err);
        return;
    }
    if (pkt.op == TG_OP_ERROR)
        return; /* never answer an ERROR (RFC 1350 7) */
    if (pkt.op != TG_OP_RRQ && pkt.op != TG_OP_WRQ) {
        tg_error_set(&err, TG_TFTP_EBADOP, "only RRQ and WRQ are served on this port");
        tg_metrics_request_refused("bad_request");
        refuse(l, peer, tg_pkt_opname(pkt.op), NULL, &err);
        return;
    }
    /* A retransmitted request first: its session is on this worker. */
    if (known_request(l, peer, pkt.op, pkt.u.req.filename) ||
        held_elsewhere(l, &pkt, buf, len, peer, local, ifindex, level, from) ||
        !admit(l, peer, pkt.op, pkt.u.req.filename))
        return;
    r = (struct tg_mw_request){buf, len, peer, local, ifindex};
    if (mac_wait(l, &pkt, &r, mac)) {
        unreserve(l->rt, peer); /* mac_known() reserves again */
        return;
    }
    start(l, &pkt, &r, mac);
}

void tg_listener_handed(struct tg_listener *l, const uint8_t *buf, size_t len,
                        const struct sockaddr *peer, const struct sockaddr *local, unsigned ifindex,
                        enum tg_hand level, unsigned from)
{
    if (l->open)
        handle_datagram(l, buf, len, peer, local, ifindex, level, from);
}

/* The destination of a request: replies come from it. Returns
 * false for a subnet-directed broadcast, which is not answered. */
static bool read_pktinfo(struct tg_listener *l, struct msghdr *mh,
                         struct sockaddr_storage *local, unsigned *ifindex)
{
    struct cmsghdr *c;

    *local = l->addr;
    *ifindex = 0;
    for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            ((struct sockaddr_in *)local)->sin_addr = pi.ipi_addr;
            *ifindex = (unsigned)pi.ipi_ifindex;
            /* Linux sets spec_dst to the header's destination for local
             * unicast and to an interface address for a subnet-directed
             * broadcast, which must not be answered (RFC 1123 4.2.3.5). */
            if (pi.ipi_spec_dst.s_addr != pi.ipi_addr.s_addr)
                return false;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            ((struct sockaddr_in6 *)local)->sin6_addr = pi.ipi6_addr;
            *ifindex = pi.ipi6_ifindex;
        }
    }
    return true;
}

typedef union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct cmsghdr align;
} ctl_buf;

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct tg_listener *l = h->data;
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct sockaddr_storage peers[RX_BATCH];
    ctl_buf ctl[RX_BATCH];
    int round, i, n;

    if (status < 0) {
        /* libuv stops watching after an error; say so loudly. */
        tg_log(TG_LOG_ERROR, "listener %s: poll: %s; no longer receiving requests",
               l->label, uv_strerror(status));
        return;
    }
    if (!(events & UV_READABLE))
        return;
    /* One recvmmsg per batch: in single-port mode every ACK and DATA of
     * every transfer comes through here. */
    for (round = 0; round < BURST / RX_BATCH && l->open; round++) {
        for (i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = l->rx + (size_t)i * l->rx_slot;
            iov[i].iov_len = l->rx_slot;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i].buf;
            msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
        }
        n = recvmmsg(l->fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break; /* EAGAIN: drained; errors from ICMP are of no use here */
        /* The replies this batch makes leave together (gateway/sendq.h). */
        tg_sendq_open(l->sendq, l->fd);
        for (i = 0; i < n && l->open; i++) {
            struct sockaddr_storage local;
            unsigned ifindex;

            if (!read_pktinfo(l, &msgs[i].msg_hdr, &local, &ifindex))
                continue;
            /* A datagram longer than a slot arrives cut to it: a request
             * that long is malformed anyway, and a DATA longer than any
             * blksize is refused by its session. */
            handle_datagram(l, iov[i].iov_base, msgs[i].msg_len,
                            (struct sockaddr *)&peers[i], (struct sockaddr *)&local, ifindex,
                            TG_HAND_NONE, l->rt->worker);
        }
        tg_sendq_flush(l->sendq);
        if (n < RX_BATCH)
            break;
    }
}

/* Options, buffers and the poll handle, for a bound socket of ours or one
 * systemd passed. Takes fd: closed here on failure. */
static int watch(struct tg_listener *l, int fd, char *err, size_t errlen)
{
    int one = 1, rc;

    if (l->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    else
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    if (l->rt->single_port) {
        int want = SINGLE_PORT_RCVBUF;

        /* Whole windows of many uploads queue here, not in per-transfer
         * sockets (FORCE works with CAP_NET_ADMIN, else the sysctl caps). */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    }
    /* In single-port mode a slot must hold the largest DATA any reload may
     * allow; pages are only touched as datagrams fill them. */
    l->rx_slot = l->rt->single_port ? TG_HDR + TG_BLKSIZE_MAX + 1 : RX_SLOT_REQ;
    l->rx = tg_malloc(l->rx_slot * RX_BATCH);
    if (l->rt->single_port)
        l->sendq = tg_sendq_new();
    if (!l->rx || (l->rt->single_port && !l->sendq)) {
        snprintf(err, errlen, "listen %s: out of memory", l->label);
        close(fd);
        return TG_ENOMEM;
    }
    rc = uv_poll_init_socket(l->rt->loop, &l->poll, fd);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s: poll: %s", l->label, uv_strerror(rc));
        close(fd);
        return rc;
    }
    l->poll.data = l;
    l->fd = fd;
    l->open = true;
    rc = uv_poll_start(&l->poll, UV_READABLE, on_readable);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s: poll: %s", l->label, uv_strerror(rc));
        tg_listener_close(l); /* the handle is live: close it through libuv */
        return rc;
    }
    tg_log(TG_LOG_INFO, "listening on %s%s%s", l->label, l->adopted ? " (from systemd)" : "",
           l->rt->single_port ? ", single-port mode" : "");
    return 0;
}

/* Single-port mode with several workers: every datagram of a transfer
 * must reach the worker whose session owns it. The kernel's own
 * SO_REUSEPORT hash of the 4-tuple would do only while the group never
 * changes; this program picks the socket from the client's address and
 * port alone: (address words XOR port XOR key) x 2654435769 >> 16, mod
 * workers. The key is drawn at random per process and is the same in every
 * worker's copy: a blind sender cannot choose source ports that all land on
 * one worker, so forged sessions spread as real ones do and each worker's
 * eviction of unproven sessions (gateway/listener.c, reserve) keeps working.
 * Sockets join the group in worker order (gateway/workers.c starts them
 * one after another), so index i is worker i's socket.
 *
 * A reuseport program sees the datagram from its UDP payload on; the IP
 * header is reached through SKF_NET_OFF. The version nibble decides, so an
 * IPv4 datagram on a dual-stack socket would hash as IPv4. None reaches
 * one today: the program goes only on sockets tg_listener_open made, and
 * those are IPv4 or IPV6_V6ONLY; a socket systemd passed may be dual-stack
 * (an IPv4-mapped peer), but passed sockets are never steered
 * (tg_workers_count keeps one worker for them in single-port mode).
 * tests/integration/workers.sh (workers_single_port_v6only) checks the
 * [::] case. IPv6 takes the UDP header right after the fixed header:
 * extension headers would hash other bytes, but the same ones for every
 * datagram of a flow. */
static int attach_steering(int fd, unsigned nworkers, uint32_t key)
{
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF),
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 8), /* not 4: to 11 */
        /* IPv4: source address at 12, UDP source port after IHL words */
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 4 */ BPF_STMT(BPF_ST, 0),
        /* 5 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, (uint32_t)SKF_NET_OFF),
        /* 6 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, (uint32_t)SKF_NET_OFF),
        /* 7 */ BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        /* 8 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 9 */ BPF_STMT(BPF_JMP | BPF_JA, 17), /* to 27 */
        /* 10 */ BPF_STMT(BPF_RET | BPF_K, 0),
        /* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 14), /* not 6: to 26 */
        /* IPv6: source address at 8..23, UDP source port at 40 */
        /* 12 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 8),
        /* 13 */ BPF_STMT(BPF_ST, 0),
        /* 14 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
        /* 15 */ BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        /* 16 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 17 */ BPF_STMT(BPF_ST, 0),
        /* 18 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 16),
        /* 19 */ BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        /* 20 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 21 */ BPF_STMT(BPF_ST, 0),
        /* 22 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 20),
        /* 23 */ BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        /* 24 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 25 */ BPF_STMT(BPF_JMP | BPF_JA, 2), /* to 28 */
        /* 26 */ BPF_STMT(BPF_RET | BPF_K, 0), /* neither: any one, always the same */
        /* 27 */ BPF_STMT(BPF_JMP | BPF_JA, 4), /* IPv4 joins at 32 */
        /* 28 */ BPF_STMT(BPF_ST, 0),
        /* 29 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_NET_OFF + 40),
        /* 30 */ BPF_STMT(BPF_LDX | BPF_W | BPF_MEM, 0),
        /* 31 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 32 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, key),
        /* 33 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 2654435769u),
        /* 34 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        /* 35 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
        /* 36 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog prog = {.len = TG_ARRAY_LEN(code), .filter = code};

    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog));
}

/* Several workers: each has its own socket on every listen address, all
 * in one SO_REUSEPORT group; in single-port mode steered per client
 * (steer_group, once bound). */
static int join_group(int fd, const char *spec, char *err, size_t errlen)
{
    int one = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int rc = -errno;

        snprintf(err, errlen, "listen %s: SO_REUSEPORT: %s", spec, strerror(errno));
        return rc;
    }
    return 0;
}

/* After bind: a program attached to a socket not yet bound would give it
 * a group of its own, and the next worker's bind would find the port taken.
 * Each worker attaches the same program; the group keeps the last. */
static int steer_group(int fd, const struct tg_runtime *rt, const char *spec, char *err,
                       size_t errlen)
{
    if (rt->nworkers < 2 || !rt->single_port || attach_steering(fd, rt->nworkers, rt->steer_key) == 0)
        return 0;
    snprintf(err, errlen, "listen %s: SO_ATTACH_REUSEPORT_CBPF: %s", spec, strerror(errno));
    return -errno;
}

int tg_listener_open(struct tg_listener *l, struct tg_runtime *rt,
                     const char *spec, char *err, size_t errlen)
{
    int one = 1, fd, rc;

    memset(l, 0, sizeof(*l));
    l->rt = rt;
    l->fd = -1;
    snprintf(l->label, sizeof(l->label), "%s", spec);
    if (tg_sockaddr_parse(spec, false, &l->addr) != 0) {
        snprintf(err, errlen, "listen %s: not ADDR:PORT", spec);
        return TG_EINVAL;
    }
    fd = socket(l->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s: socket: %s", spec, strerror(errno));
        return -errno;
    }
    /* One socket per family keeps addresses unmapped and pktinfo simple,
     * and keeps attach_steering's groups to one family: if it cannot be
     * set, the address is refused rather than left to the host's
     * net.ipv6.bindv6only. */
    if (l->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
        rc = -errno;
        snprintf(err, errlen, "listen %s: IPV6_V6ONLY: %s", spec, strerror(errno));
        close(fd);
        return rc;
    }
    if (rt->nworkers > 1 && (rc = join_group(fd, spec, err, errlen)) != 0) {
        close(fd);
        return rc;
    }
    if (bind(fd, (struct sockaddr *)&l->addr, tg_sockaddr_len((struct sockaddr *)&l->addr)) != 0) {
        rc = -errno;
        snprintf(err, errlen, "listen %s: bind: %s", spec, strerror(errno));
        close(fd);
        return rc;
    }
    if ((rc = steer_group(fd, rt, spec, err, errlen)) != 0) {
        close(fd);
        return rc;
    }
    return watch(l, fd, err, errlen);
}

int tg_listener_adopt(struct tg_listener *l, struct tg_runtime *rt, int fd,
                      char *err, size_t errlen)
{
    socklen_t al = sizeof(l->addr);
    int type = 0;
    socklen_t tl = sizeof(type);
    int fl;

    memset(l, 0, sizeof(*l));
    l->rt = rt;
    l->fd = -1;
    l->adopted = true;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &al) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM ||
        (l->addr.ss_family != AF_INET && l->addr.ss_family != AF_INET6)) {
        snprintf(err, errlen, "socket activation: descriptor %d is not a UDP socket", fd);
        return TG_EINVAL;
    }
    tg_sockaddr_str((struct sockaddr *)&l->addr, l->label, sizeof(l->label));
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(err, errlen, "socket activation: descriptor %d: %s", fd, strerror(errno));
        return -errno;
    }
    return watch(l, fd, err, errlen);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct tg_listener *l = h->data;

    /* The descriptor outlives its poll handle (libuv poll.rst). */
    close(l->fd);
    l->fd = -1;
}

void tg_listener_close(struct tg_listener *l)
{
    if (!l->open)
        return;
    l->open = false;
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, on_listener_closed);
}

void tg_listener_free(struct tg_listener *l)
{
    tg_free(l->rx);
    l->rx = NULL;
    tg_sendq_free(l->sendq);
    l->sendq = NULL;
}

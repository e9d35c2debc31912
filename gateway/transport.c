/* gateway/transport.c - a transfer's datagrams on a socket of its own or on
 * the listener's socket (single-port mode): one send path for both, with
 * UDP GSO, the replies' source address, pacing, and what a shared socket
 * keeps while its session is busy. */
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "transport.h"
#include "tftpgw/log.h"
#include "tftpgw/packet.h"
#include "tftpgw/sockaddr.h"

#define SEND_BATCH 64
#define GSO_MAX_BYTES 64512 /* below UDP's 65507-byte datagram limit */
#define GSO_MAX_SEGS 64     /* the kernel's UDP_MAX_SEGMENTS */
#define SKB_COST 1024       /* kernel accounting per datagram beyond its payload */

/* The reply's source on a shared socket bound to the wildcard address: the
 * control message makes it the address the client asked, as a socket
 * bound to it would (RFC 1123 4.2.3.5 wants the reply from there). */
static void set_source(struct tg_transport *tp, const struct sockaddr *local, unsigned ifindex)
{
    struct cmsghdr *c = (struct cmsghdr *)tp->cm.buf;

    memset(&tp->cm, 0, sizeof(tp->cm));
    if (local->sa_family == AF_INET6) {
        struct in6_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        pi.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr;
        pi.ipi6_ifindex = ifindex;
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        tp->cm_len = CMSG_SPACE(sizeof(pi));
    } else {
        struct in_pktinfo pi;

        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        tp->cm_len = CMSG_SPACE(sizeof(pi));
    }
}

static uint32_t random_u32(void)
{
    uint32_t r = 0;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)rand();
    return r;
}

static void set_port(struct sockaddr_storage *sa, unsigned port)
{
    if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

/* Bind to the request's destination address, on a port of port_range
 * (from a random start, so consecutive transfers do not get predictable
 * TIDs) or an ephemeral one. */
static int bind_local(int fd, struct sockaddr_storage *la, unsigned lo, unsigned hi)
{
    socklen_t len = tg_sockaddr_len((struct sockaddr *)la);
    unsigned span, start, i;

    if (!lo) {
        set_port(la, 0);
        return bind(fd, (struct sockaddr *)la, len) == 0 ? 0 : -errno;
    }
    span = hi - lo + 1;
    start = random_u32() % span;
    for (i = 0; i < span; i++) {
        set_port(la, lo + (start + i) % span);
        if (bind(fd, (struct sockaddr *)la, len) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -errno;
    }
    return -EADDRINUSE;
}

static int open_own(struct tg_transport *tp, const struct tg_tp_spec *spec)
{
    struct sockaddr_storage la;
    int fd, err;

    memset(&la, 0, sizeof(la));
    memcpy(&la, spec->local, tg_sockaddr_len(spec->local));
    if (la.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&la;

        if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
            s6->sin6_scope_id = spec->ifindex;
    }
    fd = socket(la.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    err = bind_local(fd, &la, spec->port_lo, spec->port_hi);
    if (err) {
        close(fd);
        return err;
    }
    tp->fd = fd;
    return 0;
}

int tg_tp_open(struct tg_transport *tp, const struct tg_tp_spec *spec)
{
    memset(tp, 0, sizeof(*tp));
    tp->fd = -1;
    memcpy(&tp->peer, spec->peer, tg_sockaddr_len(spec->peer));
    tg_sockaddr_str(spec->peer, tp->peer_str, sizeof(tp->peer_str));
    tp->pace = spec->pace;
    tp->rate = spec->rate;
    if (spec->listen_fd >= 0) {
        tp->kind = TG_TP_SHARED;
        tp->fd = spec->listen_fd;
        tp->q_cap = spec->hold_cap;
        tp->sendq = spec->sendq;
        set_source(tp, spec->local, spec->ifindex);
        return 0;
    }
    tp->kind = TG_TP_OWN;
    return open_own(tp, spec);
}

void tg_tp_close(struct tg_transport *tp)
{
    if (tp->kind == TG_TP_OWN && tp->fd >= 0)
        close(tp->fd);
    tp->fd = -1;
    tg_free(tp->q);
    tp->q = NULL;
}

unsigned tg_tp_fit_window(struct tg_transport *tp, unsigned windowsize, unsigned blksize)
{
    int want, got = 0;
    socklen_t gl = sizeof(got);
    unsigned fit;

    if (tp->kind != TG_TP_OWN || windowsize <= 1)
        return windowsize;
    /* The FORCE variant works with CAP_NET_ADMIN; otherwise the sysctl caps. */
    want = (int)(windowsize * (blksize + SKB_COST) + 65536);
    if (setsockopt(tp->fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
        (void)setsockopt(tp->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    if (getsockopt(tp->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) != 0 || got <= 0)
        return windowsize;
    /* Linux reports twice what was set; half is the payload room. */
    fit = (unsigned)(got / 2) / (blksize + SKB_COST);
    if (fit < 1)
        fit = 1;
    return fit < windowsize ? fit : windowsize;
}

static void set_msghdr(struct tg_transport *tp, struct msghdr *mh, struct iovec *iov)
{
    memset(mh, 0, sizeof(*mh));
    mh->msg_name = &tp->peer;
    mh->msg_namelen = tg_sockaddr_len((const struct sockaddr *)&tp->peer);
    mh->msg_iov = iov;
    mh->msg_iovlen = 1;
    if (tp->cm_len) {
        mh->msg_control = tp->cm.buf;
        mh->msg_controllen = tp->cm_len;
    }
}

void tg_tp_send(struct tg_transport *tp, const uint8_t *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh;

    set_msghdr(tp, &mh, &iov);
    if (tp->sendq && tg_sendq_add(tp->sendq, tp->fd, &mh))
        return;
    (void)sendmsg(tp->fd, &mh, 0);
}

typedef union {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
} gso_ctl;

/* Adjacent full slots of a window are one run of equal-sized datagrams in
 * memory: with UDP GSO (UDP_SEGMENT) the kernel cuts a whole run into
 * datagrams itself, one pass through the stack instead of one per block
 * (docs/profile.md: per-datagram sends took 3/4 of the CPU). */
static void add_gso(struct tg_transport *tp, struct msghdr *mh, gso_ctl *ctl, uint16_t seg)
{
    struct cmsghdr *c;

    memcpy(ctl->buf, tp->cm.buf, tp->cm_len);
    /* The padding after the 2-byte value goes to the kernel too. */
    memset(ctl->buf + tp->cm_len, 0, CMSG_SPACE(sizeof(seg)));
    c = (struct cmsghdr *)(ctl->buf + tp->cm_len);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    mh->msg_control = ctl->buf;
    mh->msg_controllen = tp->cm_len + CMSG_SPACE(sizeof(seg));
}

/* Up to SEND_BATCH datagrams in one sendmmsg. False when GSO was refused
 * (then nothing of the batch went out, and no_gso is set). */
static bool send_batch(struct tg_transport *tp, uint8_t *const *d, const size_t *len,
                       unsigned n, size_t seg)
{
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    gso_ctl ctl[SEND_BATCH];
    bool gso = !tp->no_gso && seg * 2 <= GSO_MAX_BYTES, used = false;
    unsigned i = 0, m = 0, k = 0;

    while (i < n) {
        unsigned j = i + 1;
        size_t bytes = len[i];

        while (gso && j < n && len[j - 1] == seg && d[j] == d[j - 1] + seg &&
               j - i < GSO_MAX_SEGS && bytes + len[j] <= GSO_MAX_BYTES)
            bytes += len[j++];
        iov[m].iov_base = d[i];
        iov[m].iov_len = bytes;
        set_msghdr(tp, &msgs[m].msg_hdr, &iov[m]);
        msgs[m].msg_len = 0;
        if (j - i > 1) {
            add_gso(tp, &msgs[m].msg_hdr, &ctl[m], (uint16_t)seg);
            used = true;
        }
        m++;
        i = j;
    }
    while (tp->sendq && k < m && tg_sendq_add(tp->sendq, tp->fd, &msgs[k].msg_hdr))
        k++;
    if (k == m)
        return true;
    /* Once part of the batch is queued, a refused GSO buffer is a loss
     * (the timer resends it), not a reason to send the queued part twice. */
    if (sendmmsg(tp->fd, msgs + k, m - k, 0) < 0 && used && k == 0 &&
        (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
        /* No GSO here: an old kernel, a device without checksum offload,
         * or a segment above the path MTU. */
        tg_log(TG_LOG_DEBUG, "session %s: UDP GSO refused (%s); sending datagrams one by one",
               tp->peer_str, strerror(errno));
        tp->no_gso = true;
        return false;
    }
    /* A datagram the kernel did not take is a lost packet, for the timer. */
    return true;
}

void tg_tp_send_many(struct tg_transport *tp, uint8_t *const *d, const size_t *len,
                     unsigned n, size_t seg)
{
    unsigned i, k;

    for (i = 0; i < n; i += k) {
        k = n - i < SEND_BATCH ? n - i : SEND_BATCH;
        if (!send_batch(tp, d + i, len + i, k, seg))
            (void)send_batch(tp, d + i, len + i, k, seg); /* once more, without GSO */
    }
}

/* Counted in KiB, with a bucket of one second's worth and at least 64 KiB
 * (a block of any size fits). An address whose set of buckets is full
 * waits like one over its rate. */
bool tg_tp_pace(struct tg_transport *tp, size_t len, uint64_t now_ms, unsigned *wait_ms)
{
    unsigned kib, burst, cost;

    if (tp->rate == 0)
        return true;
    kib = tp->rate >= 1024 ? (unsigned)(tp->rate / 1024) : 1;
    burst = kib > 64 ? kib : 64;
    cost = (unsigned)((len + 1023) / 1024);
    if (tg_ratelimit_take(tp->pace, (const struct sockaddr *)&tp->peer, now_ms, kib, burst,
                          cost) == TG_RATE_PASS)
        return true;
    *wait_ms = cost * 1000u / kib;
    if (*wait_ms == 0)
        *wait_ms = 1;
    return false;
}

ssize_t tg_tp_recv(struct tg_transport *tp, uint8_t *buf, size_t cap)
{
    struct sockaddr_storage from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(tp->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    uint8_t pkt[64];
    size_t m;

    if (n < 0)
        return TG_TP_AGAIN;
    if (tg_sockaddr_equal((struct sockaddr *)&from, (struct sockaddr *)&tp->peer))
        return n;
    /* RFC 1350 4: a foreign TID gets ERROR 5 and the transfer goes on. An
     * ERROR is never answered (RFC 1350 7). */
    if (!(n >= 2 && buf[0] == 0 && buf[1] == TG_OP_ERROR)) {
        m = tg_pkt_build_error(pkt, sizeof(pkt), TG_TFTP_EBADID, "unknown transfer ID");
        (void)sendto(tp->fd, pkt, m, 0, (struct sockaddr *)&from, fl);
    }
    return TG_TP_FOREIGN;
}

void tg_tp_hold(struct tg_transport *tp, const uint8_t *buf, size_t len)
{
    uint32_t l = (uint32_t)len;

    if (!tp->q && tp->q_cap && !(tp->q = tg_malloc(tp->q_cap))) {
        tp->dropped = true;
        return;
    }
    if (tp->q_off > 0) {
        memmove(tp->q, tp->q + tp->q_off, tp->q_used - tp->q_off);
        tp->q_used -= tp->q_off;
        tp->q_off = 0;
    }
    if (!tp->q || tp->q_used + sizeof(l) + len > tp->q_cap) {
        tg_log(TG_LOG_DEBUG, "session %s: store busy, datagram dropped", tp->peer_str);
        tp->dropped = true;
        return;
    }
    memcpy(tp->q + tp->q_used, &l, sizeof(l));
    memcpy(tp->q + tp->q_used + sizeof(l), buf, len);
    tp->q_used += sizeof(l) + len;
}

bool tg_tp_next_held(struct tg_transport *tp, const uint8_t **buf, size_t *len)
{
    uint32_t l;

    if (tp->q_off >= tp->q_used) {
        tp->q_off = tp->q_used = 0;
        return false;
    }
    memcpy(&l, tp->q + tp->q_off, sizeof(l));
    *buf = tp->q + tp->q_off + sizeof(l);
    *len = l;
    tp->q_off += sizeof(l) + l;
    return true;
}

bool tg_tp_take_dropped(struct tg_transport *tp)
{
    bool d = tp->dropped;

    tp->dropped = false;
    return d;
}

/* gateway/transport.h - how one transfer's datagrams reach its client and
 * come back: a socket of its own (RFC 1350's per-transfer TID) or, in
 * single-port mode, the listener's socket shared with every transfer. One
 * tagged struct, one send path. Owner: gateway/transport.c.
 *
 * It owns what is about sockets: binding within port_range, the receive
 * buffer an upload's window needs, the source address of replies on a
 * shared socket (IP_PKTINFO), UDP GSO and its fallback, client_rate pacing,
 * and the datagrams a shared socket must keep while the session does not
 * read. No libuv: the session polls the descriptor. */
#ifndef TFTPGW_TRANSPORT_H
#define TFTPGW_TRANSPORT_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sendq.h"
#include "tftpgw/ratelimit.h"

enum tg_tp_kind {
    TG_TP_OWN,   /* a socket of its own: its port is the transfer's TID */
    TG_TP_SHARED /* the listener's socket: the transfer is told apart by the client's address:port */
};

struct tg_tp_spec {
    const struct sockaddr *peer;  /* the client's address:port */
    const struct sockaddr *local; /* where the request came to: the source of our replies */
    unsigned ifindex;             /* for IPv6 link-local addresses */
    int listen_fd;                /* >= 0: share this listener socket (single-port mode) */
    unsigned port_lo, port_hi;    /* port_range for a socket of its own; 0: any port */
    size_t hold_cap;              /* shared: bytes kept while the session does not read */
    struct tg_ratelimit *pace;    /* client_rate buckets */
    size_t rate;                  /* client_rate in bytes per second; 0: no pacing */
    struct tg_sendq *sendq;       /* shared: the listener's batch of replies */
};

struct tg_transport {
    enum tg_tp_kind kind;
    int fd;
    struct sockaddr_storage peer;
    char peer_str[INET6_ADDRSTRLEN + 8]; /* "192.0.2.1:1234" for log lines */
    union {                       /* shared: IP_PKTINFO / IPV6_PKTINFO for replies */
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    } cm;
    size_t cm_len;
    bool no_gso;                  /* the kernel refused UDP GSO for this socket or path */
    struct tg_ratelimit *pace;
    size_t rate;
    struct tg_sendq *sendq;       /* shared: replies leave with the listener's batch */
    /* shared: datagrams that came while the session did not read, as
     * [u32 length][bytes] records; dropped: one did not fit */
    uint8_t *q;
    size_t q_cap, q_used, q_off;
    bool dropped;
};

/* A socket of its own bound to spec->local (port from port_range, else
 * ephemeral), or the listener's. Returns 0 or a negated errno. */
int tg_tp_open(struct tg_transport *tp, const struct tg_tp_spec *spec);
/* After the session's poll handle is closed: the descriptor (own) and the
 * kept datagrams. */
void tg_tp_close(struct tg_transport *tp);

/* An upload's whole window arrives at once: ask the kernel for a receive
 * buffer that holds it, and return the windowsize that fits what was
 * granted (at least 1; the same on a shared socket). */
unsigned tg_tp_fit_window(struct tg_transport *tp, unsigned windowsize, unsigned blksize);

/* One datagram to the client. A full socket buffer is a lost packet: the
 * session's timer covers it. */
void tg_tp_send(struct tg_transport *tp, const uint8_t *buf, size_t len);
/* n datagrams d[i] of len[i] bytes, in order, in as few system calls as
 * it takes: adjacent datagrams of seg bytes each are one UDP GSO buffer. */
void tg_tp_send_many(struct tg_transport *tp, uint8_t *const *d, const size_t *len,
                     unsigned n, size_t seg);
/* client_rate: may len more bytes go to the client's address at now_ms?
 * Otherwise *wait_ms says when to try again. */
bool tg_tp_pace(struct tg_transport *tp, size_t len, uint64_t now_ms, unsigned *wait_ms);

/* Own socket: the next datagram from the client into buf (bytes), or
 * TG_TP_AGAIN when none is waiting. A datagram from another address:port
 * is answered here with ERROR 5 (RFC 1350 4) and reported as
 * TG_TP_FOREIGN. */
#define TG_TP_AGAIN (-1)
#define TG_TP_FOREIGN (-2)
ssize_t tg_tp_recv(struct tg_transport *tp, uint8_t *buf, size_t cap);

/* Shared socket: keep a datagram while the session does not read (up to
 * hold_cap, as a socket of its own would buffer it); one that does not fit
 * is dropped and remembered. Then the kept ones in order, and whether any
 * was dropped since the last ask. */
void tg_tp_hold(struct tg_transport *tp, const uint8_t *buf, size_t len);
bool tg_tp_next_held(struct tg_transport *tp, const uint8_t **buf, size_t *len);
bool tg_tp_take_dropped(struct tg_transport *tp);

#endif

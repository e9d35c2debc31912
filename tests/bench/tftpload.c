/* tests/bench/tftpload.c - TFTP load generator (client side of RFC 1350,
 * 2347, 2348, 2349 and 7440) for benchmarking tftpgw or any other server.
 *
 *   tftpload --server ADDR --port PORT --file REMOTE [--expect LOCAL]
 *            [--op get|put] [--count N] [--concurrency C] [--blksize B]
 *            [--windowsize W] [--tsize] [--timeout-ms T] [--retries R]
 *            [--server-pid PID] [--duration-limit S]
 *
 * get: N RRQs of REMOTE, C in flight; every block is compared at its offset
 * with the content of LOCAL (when given). put: N WRQs of LOCAL's content,
 * transfer i (1..N) named REMOTE.i. Options go out only when asked for, so
 * the default request is plain RFC 1350. Mode is always octet; block
 * numbers roll over from 65535 to 0, as most peers do (docs/protocol.md,
 * Block number rollover).
 *
 * One epoll loop, one non-blocking UDP socket (our TID) per transfer. The
 * window logic is written here on purpose rather than taken from
 * gateway/window.c, so a bug there cannot hide itself in the benchmark; only
 * the packet codec is shared.
 *
 * stdout gets exactly one line:
 *   transfers_ok=N transfers_failed=N bytes=N seconds=S aggregate_MBps=X
 *   p50_s=X p99_s=X server_cpu_s=X server_peak_rss_kib=N
 * bytes counts the payload of the transfers that succeeded, seconds runs
 * from the first request to the last completion, MB is 10^6 bytes, the
 * percentiles are over successful transfers (first request to completion;
 * -1 when none). Counters and failure reasons go to stderr. Exit status 0
 * only when every transfer succeeded (and, for get with --expect, matched).
 * A put is only checked for protocol success: compare the stored files
 * yourself. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/packet.h"

/* A request fits in 512 octets (RFC 2347, Packet Formats). */
#define REQ_MAX 512
#define NAME_MAX_LEN 400     /* REMOTE plus ".N" must leave room for options */
/* One byte more than the largest legal DATA, and MSG_TRUNC, so an oversized
 * datagram is seen as such instead of being silently cut to fit. */
#define RBUF_MAX (TG_HDR + TG_BLKSIZE_MAX + 1)
#define CTL_BUF 516          /* ACK or ERROR we send */
#define MAX_EVENTS 256
#define DRAIN_MAX 256        /* datagrams per socket per wake-up: fairness */
#define RTO_CAP_MS 10000u
#define FAIL_REPORT_MAX 20
#define RCVBUF_MAX (4 << 20)
#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

enum load_op { OP_GET, OP_PUT };

enum xfer_state {
    XS_IDLE,
    XS_REQ,   /* request sent, no reply yet: the server's TID is unknown */
    XS_XFER   /* TID fixed, blocks moving */
};

struct xfer {
    enum xfer_state state;
    int fd;
    uint64_t id;              /* 1..count */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    size_t blksize;
    unsigned windowsize;
    /* get: last block received in order; put: last block ACKed. Both are
     * 64-bit sequences; only the wire wraps (docs/protocol.md, Block number
     * rollover). */
    uint64_t done;
    uint64_t next_send;       /* put: next block to transmit */
    uint64_t max_sent;        /* put: highest block ever transmitted */
    uint64_t nblocks;         /* put: the last (short, maybe empty) block */
    unsigned since_ack;       /* get: in-order blocks since our last ACK */
    bool nak_sent;            /* get: dup/gap already answered once */
    unsigned retries;
    unsigned rto_ms;
    uint64_t deadline;        /* ns, monotonic */
    uint64_t start;           /* ns, first request sent */
    size_t req_len;
    uint8_t req[REQ_MAX];
};

struct counters {
    uint64_t ok, failed, bytes;
    uint64_t timeouts, dup_data, gaps, dup_acks, foreign, send_eagain;
    uint64_t empty_oack, stale_oack, reported;
};

struct load {
    /* command line */
    const char *server, *port, *file, *expect;
    enum load_op op;
    uint64_t count;
    unsigned concurrency;
    unsigned blksize;         /* 0: not requested */
    unsigned windowsize;      /* 0: not requested */
    bool tsize;
    unsigned timeout_ms, retries;
    long server_pid;          /* -1: none */
    double duration_limit;

    /* set-up */
    struct sockaddr_storage srv;
    socklen_t srv_len;
    const uint8_t *content;   /* LOCAL, mapped read-only; NULL when empty */
    uint64_t content_size;
    bool have_content;
    char blksize_str[24], windowsize_str[24], tsize_str[24];
    struct tg_opt_pair opts[3];
    size_t nopts;
    int ep;
    int rcvbuf;

    /* run */
    struct xfer *xfers;       /* concurrency slots */
    unsigned active;
    uint64_t started;
    double *durations;        /* successful transfers, seconds */
    uint64_t ndur;
    uint64_t next_check;      /* earliest deadline may be due: scan then */
    struct counters c;
    uint8_t rbuf[RBUF_MAX];
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tftpload --server ADDR --port PORT --file REMOTE [--expect LOCAL]\n"
            "                [--op get|put] [--count N] [--concurrency C] [--blksize B]\n"
            "                [--windowsize W] [--tsize] [--timeout-ms T] [--retries R]\n"
            "                [--server-pid PID] [--duration-limit S]\n");
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static bool same_host(const struct sockaddr_storage *a,
                      const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

static uint16_t port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_port;
    return ((const struct sockaddr_in6 *)(const void *)a)->sin6_port;
}

static void note_deadline(struct load *L, uint64_t t)
{
    if (t < L->next_check)
        L->next_check = t;
}

/* Restart the retransmission clock. `progress` resets the backoff: only
 * forward movement earns back the base timeout (RFC 1123 4.2.3.2). */
static void arm(struct load *L, struct xfer *x, bool progress)
{
    if (progress) {
        x->retries = 0;
        x->rto_ms = L->timeout_ms;
    }
    x->deadline = now_ns() + (uint64_t)x->rto_ms * NS_PER_MS;
    note_deadline(L, x->deadline);
}

static void send_raw(struct load *L, struct xfer *x, const void *buf, size_t len,
                     const struct sockaddr_storage *to, socklen_t to_len)
{
    if (sendto(x->fd, buf, len, 0, (const struct sockaddr *)to, to_len) < 0) {
        /* A send that does not happen is a lost datagram: the timer recovers. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            L->c.send_eagain++;
    }
}

static void send_ack(struct load *L, struct xfer *x, uint64_t seq)
{
    uint8_t pkt[TG_HDR];
    size_t n = tg_pkt_build_ack(pkt, sizeof(pkt), (uint16_t)seq);

    send_raw(L, x, pkt, n, &x->peer, x->peer_len);
}

static void finish(struct load *L, struct xfer *x, bool ok, uint64_t bytes)
{
    if (ok) {
        L->c.ok++;
        L->c.bytes += bytes;
        L->durations[L->ndur++] = (double)(now_ns() - x->start) / (double)NS_PER_S;
    } else {
        L->c.failed++;
    }
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    x->state = XS_IDLE;
    L->active--;
}

/* End a transfer as failed. `code` >= 0 sends that ERROR to the server's TID
 * first, so it stops retransmitting; never in answer to an ERROR
 * (docs/protocol.md, Never answer an ERROR). */
static void fail(struct load *L, struct xfer *x, int code, const char *fmt, ...)
    TG_PRINTF(4, 5);

static void fail(struct load *L, struct xfer *x, int code, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (code >= 0 && x->state == XS_XFER) {
        uint8_t pkt[CTL_BUF];
        size_t n = tg_pkt_build_error(pkt, sizeof(pkt), (uint16_t)code, why);

        send_raw(L, x, pkt, n, &x->peer, x->peer_len);
    }
    if (L->c.reported++ < FAIL_REPORT_MAX)
        fprintf(stderr, "tftpload: transfer %" PRIu64 " failed: %s\n", x->id, why);
    finish(L, x, false, 0);
}

/* The DATA datagram for block seq goes out straight from the mapped file:
 * header on the stack, payload by reference, nothing allocated. */
static void put_send_block(struct load *L, struct xfer *x, uint64_t seq)
{
    uint8_t hdr[TG_HDR];
    uint64_t off = (seq - 1) * x->blksize;
    uint64_t left = L->content_size - off;
    struct iovec iov[2];
    struct msghdr mh;

    tg_pkt_build_data_hdr(hdr, sizeof(hdr), (uint16_t)seq);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = (void *)(uintptr_t)(L->content ? L->content + off : NULL);
    iov[1].iov_len = left < x->blksize ? (size_t)left : x->blksize;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = &x->peer;
    mh.msg_namelen = x->peer_len;
    mh.msg_iov = iov;
    mh.msg_iovlen = iov[1].iov_len ? 2 : 1;
    if (sendmsg(x->fd, &mh, 0) < 0 &&
        (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
        L->c.send_eagain++;
}

/* RFC 7440 4: up to windowsize blocks beyond the last ACK. */
static void put_send_window(struct load *L, struct xfer *x)
{
    while (x->next_send <= x->nblocks &&
           x->next_send <= x->done + x->windowsize) {
        put_send_block(L, x, x->next_send);
        if (x->next_send > x->max_sent)
            x->max_sent = x->next_send;
        x->next_send++;
    }
}

static void put_begin(struct load *L, struct xfer *x)
{
    /* A file that is a multiple of blksize ends with an empty block (RFC
     * 1350 sections 5 and 6). */
    x->nblocks = L->content_size / x->blksize + 1;
    x->done = 0;
    x->next_send = 1;
    x->max_sent = 0;
    arm(L, x, true);
    put_send_window(L, x);
}

static void put_on_ack(struct load *L, struct xfer *x, uint16_t wire)
{
    uint16_t adv = (uint16_t)(wire - (uint16_t)x->done);

    /* RFC 1123 4.2.3.1: a duplicate or stale ACK never triggers a resend;
     * only the timer does. An ACK of the window base counts as a duplicate
     * (docs/protocol.md, Duplicate ACKs). */
    if (adv == 0 || adv > x->max_sent - x->done) {
        L->c.dup_acks++;
        return;
    }
    x->done += adv;
    if (x->done == x->nblocks) {
        finish(L, x, true, L->content_size);
        return;
    }
    /* The next window starts after the ACK (RFC 7440 section 4). */
    x->next_send = x->done + 1;
    arm(L, x, true);
    put_send_window(L, x);
}

static void get_on_data(struct load *L, struct xfer *x, uint16_t wire,
                        const uint8_t *data, size_t len)
{
    uint16_t d = (uint16_t)(wire - (uint16_t)(x->done + 1));
    uint64_t off;

    if (d != 0) {
        if (d < 0x8000)
            L->c.gaps++;
        else
            L->c.dup_data++;
        /* Answer a duplicate or a gap with the last in-order block (RFC 1350
         * section 6, RFC 7440 section 4), once until something moves; a
         * flood of re-ACKs would only invite the server to resend the same
         * window again. */
        if (!x->nak_sent) {
            send_ack(L, x, x->done);
            x->nak_sent = true;
            x->since_ack = 0;
        }
        return;
    }
    if (len > x->blksize) {
        fail(L, x, TG_TFTP_EBADOP, "block %" PRIu64 " has %zu bytes, blksize is %zu",
             x->done + 1, len, x->blksize);
        return;
    }
    off = x->done * x->blksize;
    if (L->have_content) {
        if (off + len > L->content_size) {
            fail(L, x, TG_TFTP_EUNDEF, "file longer than %" PRIu64 " bytes",
                 L->content_size);
            return;
        }
        if (len && memcmp(data, L->content + off, len) != 0) {
            fail(L, x, TG_TFTP_EUNDEF, "block %" PRIu64 " differs from --expect",
                 x->done + 1);
            return;
        }
    }
    x->done++;
    x->nak_sent = false;
    if (len < x->blksize) {
        if (L->have_content && off + len != L->content_size) {
            fail(L, x, TG_TFTP_EUNDEF, "file ends at %" PRIu64 ", expected %" PRIu64,
                 off + len, L->content_size);
            return;
        }
        /* The short block is ACKed like any other (RFC 1350 section 6),
         * once: no dally here. */
        send_ack(L, x, x->done);
        finish(L, x, true, off + len);
        return;
    }
    if (++x->since_ack >= x->windowsize) {
        /* the last block of each window (RFC 7440 section 4) */
        send_ack(L, x, x->done);
        x->since_ack = 0;
    }
    arm(L, x, true);
}

/* Take exactly what the OACK says, within what we asked for (RFC 2347,
 * Negotiation Protocol; RFC 2348; RFC 2349; RFC 7440 section 3); anything
 * else is refused with ERROR 8. Returns false when the transfer has been
 * failed. */
static bool take_oack(struct load *L, struct xfer *x, const struct tg_packet *p)
{
    uint64_t v;
    size_t i;

    x->blksize = TG_SEGSIZE;
    x->windowsize = 1;
    /* An empty OACK should never be sent (docs/protocol.md, Options order
     * and repeats); count it and take it as "no options". */
    if (p->u.oack.nopts == 0)
        L->c.empty_oack++;
    for (i = 0; i < p->u.oack.nopts; i++) {
        const char *name = p->u.oack.opts[i].name;
        const char *val = p->u.oack.opts[i].value;

        if (L->blksize && strcasecmp(name, "blksize") == 0) {
            if (parse_u64(val, TG_BLKSIZE_MIN, L->blksize, &v) < 0)
                goto refuse;
            x->blksize = (size_t)v;
        } else if (L->windowsize && strcasecmp(name, "windowsize") == 0) {
            if (parse_u64(val, 1, L->windowsize, &v) < 0)
                goto refuse;
            x->windowsize = (unsigned)v;
        } else if (L->tsize && strcasecmp(name, "tsize") == 0) {
            if (parse_u64(val, 0, UINT64_MAX, &v) < 0)
                goto refuse;
            if (L->have_content && v != L->content_size) {
                fail(L, x, TG_TFTP_EOPTNEG, "tsize %" PRIu64 ", expected %" PRIu64,
                     v, L->content_size);
                return false;
            }
        } else {
            goto refuse; /* not requested (RFC 2347, Negotiation Protocol) */
        }
        continue;
refuse:
        fail(L, x, TG_TFTP_EOPTNEG, "OACK option %s=%s refused", name, val);
        return false;
    }
    return true;
}

/* The first datagram from the server fixes its TID (RFC 1350 4). */
static void on_first_reply(struct load *L, struct xfer *x, const struct tg_packet *p,
                           const struct sockaddr_storage *from, socklen_t from_len)
{
    memcpy(&x->peer, from, from_len);
    x->peer_len = from_len;
    x->state = XS_XFER;
    /* No OACK means the server took none of the options (RFC 2347,
     * Negotiation Protocol). */
    x->blksize = TG_SEGSIZE;
    x->windowsize = 1;
    x->done = 0;
    x->since_ack = 0;
    x->nak_sent = false;

    switch (p->op) {
    case TG_OP_OACK:
        if (L->nopts == 0) {
            fail(L, x, TG_TFTP_EOPTNEG, "OACK to a request without options");
            return;
        }
        if (!take_oack(L, x, p))
            return;
        if (L->op == OP_GET) {
            /* ACK 0 confirms the OACK (RFC 2347, Negotiation Protocol) */
            send_ack(L, x, 0);
            arm(L, x, true);
        } else {
            put_begin(L, x);   /* DATA 1, no ACK 0 (RFC 2347, Examples) */
        }
        return;
    case TG_OP_DATA:
        if (L->op == OP_GET && p->u.data.block == 1) {
            arm(L, x, true);
            get_on_data(L, x, p->u.data.block, p->u.data.data, p->u.data.len);
            return;
        }
        break;
    case TG_OP_ACK:
        if (L->op == OP_PUT && p->u.ack.block == 0) {
            put_begin(L, x); /* a plain WRQ's ACK 0 (RFC 1350 section 4) */
            return;
        }
        break;
    case TG_OP_ERROR:
        fail(L, x, -1, "server ERROR %u: %s", p->u.error.code, p->u.error.msg);
        return;
    default:
        break;
    }
    fail(L, x, TG_TFTP_EBADOP, "unexpected first reply %s", tg_pkt_opname(p->op));
}

static void on_datagram(struct load *L, struct xfer *x, size_t len,
                        const struct sockaddr_storage *from, socklen_t from_len)
{
    struct tg_packet p;

    if (!same_host(from, &L->srv)) {
        L->c.foreign++;
        return;
    }
    if (x->state == XS_XFER && port_of(from) != port_of(&x->peer)) {
        /* RFC 1350 section 4: a second server TID (say, from a
         * retransmitted request) gets ERROR 5 and our transfer goes on; an
         * ERROR gets nothing. */
        L->c.foreign++;
        if (len < 2 || ((L->rbuf[0] << 8) | L->rbuf[1]) != TG_OP_ERROR) {
            uint8_t pkt[CTL_BUF];
            size_t n = tg_pkt_build_error(pkt, sizeof(pkt), TG_TFTP_EBADID,
                                          "unknown transfer ID");

            send_raw(L, x, pkt, n, from, from_len);
        }
        return;
    }
    if (len > RBUF_MAX - 1 || tg_pkt_parse(L->rbuf, len, &p) < 0) {
        if (x->state == XS_XFER)
            fail(L, x, TG_TFTP_EBADOP, "malformed datagram of %zu bytes", len);
        else
            fail(L, x, -1, "malformed first reply of %zu bytes", len);
        return;
    }
    if (x->state == XS_REQ) {
        on_first_reply(L, x, &p, from, from_len);
        return;
    }
    switch (p.op) {
    case TG_OP_DATA:
        if (L->op == OP_GET) {
            get_on_data(L, x, p.u.data.block, p.u.data.data, p.u.data.len);
            return;
        }
        break;
    case TG_OP_ACK:
        if (L->op == OP_PUT) {
            put_on_ack(L, x, p.u.ack.block);
            return;
        }
        break;
    case TG_OP_OACK:
        /* The server's OACK timed out. For a get our ACK 0 was lost: say it
         * again. For a put our DATA 1 was lost: the timer resends (RFC 1123
         * 4.2.3.1). */
        L->c.stale_oack++;
        if (L->op == OP_GET && x->done == 0)
            send_ack(L, x, 0);
        return;
    case TG_OP_ERROR:
        fail(L, x, -1, "server ERROR %u: %s", p.u.error.code, p.u.error.msg);
        return;
    default:
        break;
    }
    fail(L, x, TG_TFTP_EBADOP, "unexpected %s", tg_pkt_opname(p.op));
}

static void on_readable(struct load *L, struct xfer *x)
{
    int i;

    for (i = 0; i < DRAIN_MAX && x->state != XS_IDLE; i++) {
        struct sockaddr_storage from;
        socklen_t from_len = sizeof(from);
        ssize_t n = recvfrom(x->fd, L->rbuf, sizeof(L->rbuf), MSG_TRUNC,
                             (struct sockaddr *)&from, &from_len);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR)
                continue;
            /* ICMP errors surface here on some stacks: the timer decides. */
            return;
        }
        on_datagram(L, x, (size_t)n, &from, from_len);
    }
}

static void on_timeout(struct load *L, struct xfer *x)
{
    if (++x->retries > L->retries) {
        fail(L, x, TG_TFTP_EUNDEF, "timed out after %u retries (%s, block %" PRIu64 ")",
             L->retries, x->state == XS_REQ ? "no reply to the request" : "transfer",
             x->done);
        return;
    }
    L->c.timeouts++;
    x->rto_ms = x->rto_ms * 2 > RTO_CAP_MS ? RTO_CAP_MS : x->rto_ms * 2;
    if (x->rto_ms < L->timeout_ms)
        x->rto_ms = L->timeout_ms;
    arm(L, x, false);
    if (x->state == XS_REQ) {
        send_raw(L, x, x->req, x->req_len, &L->srv, L->srv_len);
    } else if (L->op == OP_GET) {
        /* Re-ACK the last in-order block (RFC 1350 section 6); a windowed
         * sender restarts after it (RFC 7440 section 4). */
        send_ack(L, x, x->done);
        x->since_ack = 0;
        x->nak_sent = false;
    } else {
        x->next_send = x->done + 1; /* after the last ACK (RFC 7440 section 4) */
        put_send_window(L, x);
    }
}

static void start_one(struct load *L, struct xfer *x, uint32_t slot)
{
    char name[NAME_MAX_LEN + 24];
    struct epoll_event ev;

    memset(x, 0, sizeof(*x));
    x->id = ++L->started;
    x->fd = -1;
    x->state = XS_REQ;
    x->start = now_ns();
    L->active++;
    if (L->op == OP_PUT)
        snprintf(name, sizeof(name), "%s.%" PRIu64, L->file, x->id);
    else
        snprintf(name, sizeof(name), "%s", L->file);
    x->req_len = tg_pkt_build_request(x->req, sizeof(x->req),
                                      L->op == OP_GET ? TG_OP_RRQ : TG_OP_WRQ,
                                      name, "octet", L->opts, L->nopts);
    x->fd = socket(L->srv.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (x->fd < 0 || x->req_len == 0) {
        if (L->c.reported++ < FAIL_REPORT_MAX)
            fprintf(stderr, "tftpload: transfer %" PRIu64 " not started: %s\n", x->id,
                    x->fd < 0 ? strerror(errno) : "request too long");
        finish(L, x, false, 0);
        return;
    }
    /* A whole window may land before we read: keep the kernel from
     * dropping it, or the benchmark measures our socket, not the server. */
    if (L->rcvbuf > 0)
        (void)setsockopt(x->fd, SOL_SOCKET, SO_RCVBUF, &L->rcvbuf, sizeof(L->rcvbuf));
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = slot;
    if (epoll_ctl(L->ep, EPOLL_CTL_ADD, x->fd, &ev) < 0) {
        int e = errno;

        fail(L, x, -1, "epoll_ctl: %s", strerror(e));
        return;
    }
    arm(L, x, true);
    send_raw(L, x, x->req, x->req_len, &L->srv, L->srv_len);
}

static void check_timers(struct load *L)
{
    uint64_t now = now_ns();
    unsigned i;

    L->next_check = UINT64_MAX;
    for (i = 0; i < L->concurrency; i++) {
        struct xfer *x = &L->xfers[i];

        if (x->state == XS_IDLE)
            continue;
        if (x->deadline <= now)
            on_timeout(L, x);
        if (x->state != XS_IDLE)
            note_deadline(L, x->deadline);
    }
}

static void abort_all(struct load *L)
{
    unsigned i;

    for (i = 0; i < L->concurrency; i++) {
        struct xfer *x = &L->xfers[i];

        if (x->state != XS_IDLE)
            fail(L, x, TG_TFTP_EUNDEF, "duration limit of %g s reached",
                 L->duration_limit);
    }
    if (L->started < L->count) {
        fprintf(stderr, "tftpload: %" PRIu64 " transfers never started (duration limit)\n",
                L->count - L->started);
        L->c.failed += L->count - L->started;
        L->started = L->count;
    }
}

static int run(struct load *L)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t limit = now_ns() + (uint64_t)(L->duration_limit * (double)NS_PER_S);
    unsigned i;

    L->next_check = UINT64_MAX;
    for (;;) {
        uint64_t now, wake;
        long long wait_ms;
        int n, k;

        for (i = 0; i < L->concurrency && L->started < L->count; i++)
            if (L->xfers[i].state == XS_IDLE)
                start_one(L, &L->xfers[i], i);
        if (L->active == 0 && L->started >= L->count)
            return 0;
        now = now_ns();
        wake = L->next_check < limit ? L->next_check : limit;
        wait_ms = wake <= now ? 0 : (long long)((wake - now + NS_PER_MS - 1) / NS_PER_MS);
        if (wait_ms > 1000)
            wait_ms = 1000;
        n = epoll_wait(L->ep, evs, MAX_EVENTS, (int)wait_ms);
        if (n < 0 && errno != EINTR) {
            perror("tftpload: epoll_wait");
            return -1;
        }
        for (k = 0; k < n; k++) {
            struct xfer *x = &L->xfers[evs[k].data.u32];

            /* A slot that finished earlier in this batch stays idle until
             * the batch is over, so a stale event cannot hit a new fd. */
            if (x->state != XS_IDLE)
                on_readable(L, x);
        }
        now = now_ns();
        if (now >= limit) {
            abort_all(L);
            return 0;
        }
        if (now >= L->next_check)
            check_timers(L);
    }
}

/* utime + stime of the whole thread group, in clock ticks; -1 if unreadable. */
static long long proc_cpu_ticks(long pid)
{
    char path[64], buf[2048];
    unsigned long long ut, st;
    FILE *f;
    char *p;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return -1;
    /* fields 3..13 skipped, 14 utime, 15 stime (proc(5)) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

static long proc_vmhwm(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, uint64_t n, unsigned pct)
{
    uint64_t rank;

    if (n == 0)
        return -1.0;
    rank = (n * pct + 99) / 100;
    if (rank == 0)
        rank = 1;
    return v[rank - 1];
}

static int load_expect(struct load *L)
{
    struct stat st;
    int fd = open(L->expect, O_RDONLY | O_CLOEXEC);
    void *m;

    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "tftpload: %s: %s\n", L->expect, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    L->content_size = (uint64_t)st.st_size;
    L->have_content = true;
    if (st.st_size > 0) {
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "tftpload: mmap %s: %s\n", L->expect, strerror(errno));
            close(fd);
            return -1;
        }
        L->content = m;
    }
    close(fd);
    return 0;
}

static int resolve(struct load *L)
{
    struct addrinfo hints, *res;
    int r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    r = getaddrinfo(L->server, L->port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "tftpload: %s port %s: %s\n", L->server, L->port, gai_strerror(r));
        return -1;
    }
    memcpy(&L->srv, res->ai_addr, res->ai_addrlen);
    L->srv_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* One socket per transfer in flight: make sure the descriptor limit allows
 * it before the run, not halfway through. */
static int ensure_fd_limit(unsigned want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
            fprintf(stderr, "tftpload: descriptor limit %llu too low for %u\n",
                    (unsigned long long)rl.rlim_max, want);
            return -1;
        }
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            perror("tftpload: setrlimit");
            return -1;
        }
    }
    return 0;
}

static int parse_args(struct load *L, int argc, char **argv)
{
    enum { O_SERVER = 256, O_PORT, O_FILE, O_EXPECT, O_OP, O_COUNT, O_CONC,
           O_BLKSIZE, O_WINDOW, O_TSIZE, O_TIMEOUT, O_RETRIES, O_PID, O_LIMIT,
           O_HELP };
    static const struct option longopts[] = {
        {"server", required_argument, NULL, O_SERVER},
        {"port", required_argument, NULL, O_PORT},
        {"file", required_argument, NULL, O_FILE},
        {"expect", required_argument, NULL, O_EXPECT},
        {"op", required_argument, NULL, O_OP},
        {"count", required_argument, NULL, O_COUNT},
        {"concurrency", required_argument, NULL, O_CONC},
        {"blksize", required_argument, NULL, O_BLKSIZE},
        {"windowsize", required_argument, NULL, O_WINDOW},
        {"tsize", no_argument, NULL, O_TSIZE},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"server-pid", required_argument, NULL, O_PID},
        {"duration-limit", required_argument, NULL, O_LIMIT},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}
    };
    uint64_t v;
    char *end;
    int c;

    L->op = OP_GET;
    L->count = 1;
    L->concurrency = 1;
    L->timeout_ms = 1000;
    L->retries = 5;
    L->server_pid = -1;
    L->duration_limit = 600;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_SERVER:
            L->server = optarg;
            break;
        case O_PORT:
            if (parse_u64(optarg, 1, 65535, &v) < 0)
                goto bad;
            L->port = optarg;
            break;
        case O_FILE:
            L->file = optarg;
            break;
        case O_EXPECT:
            L->expect = optarg;
            break;
        case O_OP:
            if (strcmp(optarg, "get") == 0)
                L->op = OP_GET;
            else if (strcmp(optarg, "put") == 0)
                L->op = OP_PUT;
            else
                goto bad;
            break;
        case O_COUNT:
            if (parse_u64(optarg, 1, UINT32_MAX, &L->count) < 0)
                goto bad;
            break;
        case O_CONC:
            if (parse_u64(optarg, 1, 100000, &v) < 0)
                goto bad;
            L->concurrency = (unsigned)v;
            break;
        case O_BLKSIZE:
            if (parse_u64(optarg, TG_BLKSIZE_MIN, TG_BLKSIZE_MAX, &v) < 0)
                goto bad;
            L->blksize = (unsigned)v;
            break;
        case O_WINDOW:
            /* Above 32767 a 16-bit block number no longer tells an old
             * block from a new one. */
            if (parse_u64(optarg, 1, 32767, &v) < 0)
                goto bad;
            L->windowsize = (unsigned)v;
            break;
        case O_TSIZE:
            L->tsize = true;
            break;
        case O_TIMEOUT:
            if (parse_u64(optarg, 1, 600000, &v) < 0)
                goto bad;
            L->timeout_ms = (unsigned)v;
            break;
        case O_RETRIES:
            if (parse_u64(optarg, 0, 1000, &v) < 0)
                goto bad;
            L->retries = (unsigned)v;
            break;
        case O_PID:
            if (parse_u64(optarg, 1, INT32_MAX, &v) < 0)
                goto bad;
            L->server_pid = (long)v;
            break;
        case O_LIMIT:
            errno = 0;
            L->duration_limit = strtod(optarg, &end);
            if (errno || *end || !(L->duration_limit > 0) || L->duration_limit > 1e7)
                goto bad;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
        continue;
bad:
        fprintf(stderr, "tftpload: bad value '%s' for --%s\n", optarg,
                longopts[c - O_SERVER].name);
        return -1;
    }
    if (optind != argc || !L->server || !L->port || !L->file) {
        usage(stderr);
        return -1;
    }
    if (strlen(L->file) > NAME_MAX_LEN) {
        fprintf(stderr, "tftpload: --file longer than %d bytes\n", NAME_MAX_LEN);
        return -1;
    }
    if (L->op == OP_PUT && !L->expect) {
        fprintf(stderr, "tftpload: --op put needs --expect LOCAL (the content to send)\n");
        return -1;
    }
    if (L->concurrency > L->count)
        L->concurrency = (unsigned)L->count;
    return 0;
}

static void build_opts(struct load *L)
{
    size_t blk = L->blksize ? L->blksize : TG_SEGSIZE;
    size_t win = L->windowsize ? L->windowsize : 1;
    size_t want = 2 * win * (blk + TG_HDR + 64) + 65536;

    if (L->blksize) {
        snprintf(L->blksize_str, sizeof(L->blksize_str), "%u", L->blksize);
        L->opts[L->nopts++] = (struct tg_opt_pair){"blksize", L->blksize_str};
    }
    if (L->windowsize) {
        snprintf(L->windowsize_str, sizeof(L->windowsize_str), "%u", L->windowsize);
        L->opts[L->nopts++] = (struct tg_opt_pair){"windowsize", L->windowsize_str};
    }
    if (L->tsize) {
        /* RFC 2349, Transfer Size Option Specification: an RRQ asks with 0,
         * a WRQ states the size. */
        snprintf(L->tsize_str, sizeof(L->tsize_str), "%" PRIu64,
                 L->op == OP_PUT ? L->content_size : 0);
        L->opts[L->nopts++] = (struct tg_opt_pair){"tsize", L->tsize_str};
    }
    L->rcvbuf = want > RCVBUF_MAX ? RCVBUF_MAX : (int)want;
}

int main(int argc, char **argv)
{
    struct load *L = tg_calloc(1, sizeof(*L));
    long long cpu0 = -1, cpu1 = -1;
    long hwm = -1;
    uint64_t t0, t1;
    double secs, cpu_s = -1;
    int rc = 1;

    if (!L) {
        fprintf(stderr, "tftpload: out of memory\n");
        return 1;
    }
    L->ep = -1;
    if (parse_args(L, argc, argv) < 0)
        goto out;
    if (L->expect && load_expect(L) < 0)
        goto out;
    if (resolve(L) < 0 || ensure_fd_limit(L->concurrency + 32) < 0)
        goto out;
    build_opts(L);
    L->xfers = tg_calloc(L->concurrency, sizeof(*L->xfers));
    L->durations = tg_calloc((size_t)L->count, sizeof(*L->durations));
    L->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!L->xfers || !L->durations || L->ep < 0) {
        fprintf(stderr, "tftpload: set-up failed: %s\n", strerror(errno));
        goto out;
    }
    if (L->server_pid > 0)
        cpu0 = proc_cpu_ticks(L->server_pid);
    t0 = now_ns();
    if (run(L) < 0)
        goto out;
    t1 = now_ns();
    if (L->server_pid > 0) {
        cpu1 = proc_cpu_ticks(L->server_pid);
        hwm = proc_vmhwm(L->server_pid);
        if (cpu0 >= 0 && cpu1 >= cpu0)
            cpu_s = (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK);
    }
    secs = (double)(t1 - t0) / (double)NS_PER_S;
    qsort(L->durations, (size_t)L->ndur, sizeof(*L->durations), cmp_double);
    fprintf(stderr,
            "tftpload: timeouts=%" PRIu64 " dup_data=%" PRIu64 " gaps=%" PRIu64
            " dup_acks=%" PRIu64 " foreign=%" PRIu64 " send_eagain=%" PRIu64
            " empty_oack=%" PRIu64 " stale_oack=%" PRIu64 "\n",
            L->c.timeouts, L->c.dup_data, L->c.gaps, L->c.dup_acks, L->c.foreign,
            L->c.send_eagain, L->c.empty_oack, L->c.stale_oack);
    printf("transfers_ok=%" PRIu64 " transfers_failed=%" PRIu64 " bytes=%" PRIu64
           " seconds=%.3f aggregate_MBps=%.3f p50_s=%.6f p99_s=%.6f",
           L->c.ok, L->c.failed, L->c.bytes, secs,
           secs > 0 ? (double)L->c.bytes / secs / 1e6 : 0.0,
           percentile(L->durations, L->ndur, 50), percentile(L->durations, L->ndur, 99));
    if (cpu_s >= 0)
        printf(" server_cpu_s=%.2f", cpu_s);
    else
        printf(" server_cpu_s=-1");
    printf(" server_peak_rss_kib=%ld\n", hwm);
    fflush(stdout);
    rc = L->c.failed == 0 && L->c.ok == L->count ? 0 : 1;
out:
    if (L->ep >= 0)
        close(L->ep);
    if (L->content)
        munmap((void *)(uintptr_t)L->content, (size_t)L->content_size);
    tg_free(L->xfers);
    tg_free(L->durations);
    tg_free(L);
    return rc;
}

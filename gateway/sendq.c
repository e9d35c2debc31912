/* gateway/sendq.c - the replies of many transfers on one shared socket,
 * as one sendmmsg (gateway/sendq.h says when the queue is open).
 *
 * Fixed size, allocated with the listener: QMSGS datagrams or QBYTES
 * bytes, whichever fills first; a full queue is flushed and goes on
 * taking. A datagram bigger than the queue's bytes is sent by its caller,
 * after what is queued, so one transfer's datagrams keep their order. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>

#include "sendq.h"
#include "tftpgw/common.h"

#define QMSGS 64
#define QBYTES (256 * 1024)
#define QCTL 64 /* a pktinfo and a UDP_SEGMENT control message */

struct qmsg {
    struct sockaddr_storage name;
    union {
        char buf[QCTL];
        struct cmsghdr align;
    } ctl;
};

struct tg_sendq {
    int fd;         /* -1: closed */
    unsigned n;
    size_t used;
    struct mmsghdr mm[QMSGS];
    struct iovec iov[QMSGS];
    struct qmsg m[QMSGS];
    uint8_t bytes[QBYTES];
};

struct tg_sendq *tg_sendq_new(void)
{
    struct tg_sendq *q = tg_calloc(1, sizeof(*q));

    if (q)
        q->fd = -1;
    return q;
}

void tg_sendq_free(struct tg_sendq *q)
{
    tg_free(q);
}

void tg_sendq_open(struct tg_sendq *q, int fd)
{
    if (q)
        q->fd = fd;
}

/* A datagram cut by UDP GSO that the kernel refused: its segments one by
 * one, without the segment control message. */
static void send_split(int fd, struct msghdr *mh)
{
    struct cmsghdr *c;
    size_t seg = 0, off, len = mh->msg_iov[0].iov_len;

    for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_SEGMENT) {
            uint16_t s;

            memcpy(&s, CMSG_DATA(c), sizeof(s));
            seg = s;
            break;
        }
    }
    if (seg == 0)
        return; /* not a GSO datagram: a lost packet, for the session's timer */
    /* The segment size is the last control message (gateway/transport.c
     * appends it after the source address): keep what comes before it. */
    mh->msg_controllen = (size_t)((char *)c - (char *)mh->msg_control);
    if (mh->msg_controllen == 0)
        mh->msg_control = NULL;
    for (off = 0; off < len; off += seg) {
        struct iovec one = {(uint8_t *)mh->msg_iov[0].iov_base + off,
                            len - off < seg ? len - off : seg};

        mh->msg_iov = &one;
        (void)sendmsg(fd, mh, 0);
    }
}

void tg_sendq_flush(struct tg_sendq *q)
{
    unsigned i = 0;

    if (!q)
        return;
    while (i < q->n) {
        int r = sendmmsg(q->fd, q->mm + i, q->n - i, 0);

        if (r > 0) {
            i += (unsigned)r;
            continue;
        }
        /* The datagram at i failed: a full socket buffer is a lost packet,
         * like any send; GSO the path refuses goes again, cut by hand. */
        if (errno == EINVAL || errno == EIO || errno == ENOPROTOOPT || errno == EOPNOTSUPP)
            send_split(q->fd, &q->mm[i].msg_hdr);
        i++;
    }
    q->n = 0;
    q->used = 0;
    q->fd = -1;
}

bool tg_sendq_add(struct tg_sendq *q, int fd, const struct msghdr *mh)
{
    size_t len;
    struct msghdr *h;
    struct qmsg *m;

    if (!q || q->fd < 0 || fd != q->fd || mh->msg_iovlen != 1 ||
        mh->msg_controllen > QCTL || mh->msg_namelen > sizeof(m->name))
        return false;
    len = mh->msg_iov[0].iov_len;
    if (q->n == QMSGS || q->used + len > QBYTES) {
        tg_sendq_flush(q);
        q->fd = fd; /* still open: the batch goes on */
    }
    if (len > QBYTES)
        return false;
    m = &q->m[q->n];
    h = &q->mm[q->n].msg_hdr;
    memcpy(q->bytes + q->used, mh->msg_iov[0].iov_base, len);
    q->iov[q->n] = (struct iovec){q->bytes + q->used, len};
    memset(h, 0, sizeof(*h));
    memcpy(&m->name, mh->msg_name, mh->msg_namelen);
    h->msg_name = &m->name;
    h->msg_namelen = mh->msg_namelen;
    h->msg_iov = &q->iov[q->n];
    h->msg_iovlen = 1;
    if (mh->msg_controllen) {
        memcpy(m->ctl.buf, mh->msg_control, mh->msg_controllen);
        h->msg_control = m->ctl.buf;
        h->msg_controllen = mh->msg_controllen;
    }
    q->mm[q->n].msg_len = 0;
    q->used += len;
    q->n++;
    return true;
}

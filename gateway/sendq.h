/* gateway/sendq.h - the replies of many transfers on one shared socket,
 * sent as one sendmmsg. Owner: gateway/sendq.c.
 *
 * In single-port mode one recvmmsg brings the ACKs of many transfers, and
 * each answers with its next block. While the listener handles such a
 * batch the queue is open: a transport on that socket hands its datagrams
 * here, they are copied (a window slot may be refilled before the batch
 * ends) and leave together when the listener flushes. */
#ifndef TFTPGW_SENDQ_H
#define TFTPGW_SENDQ_H

#include <stdbool.h>
#include <sys/socket.h>

struct tg_sendq;

struct tg_sendq *tg_sendq_new(void);
void tg_sendq_free(struct tg_sendq *q);
/* Sends on fd are queued from now until tg_sendq_flush. */
void tg_sendq_open(struct tg_sendq *q, int fd);
/* What is queued leaves now, in order; the queue closes. */
void tg_sendq_flush(struct tg_sendq *q);
/* Queue a copy of mh (name, one iovec, control) when the queue is open on
 * fd; false when the caller must send it itself. */
bool tg_sendq_add(struct tg_sendq *q, int fd, const struct msghdr *mh);

#endif

/* gateway/listener.h - the request sockets (port 69). Owner:
 * gateway/listener.c. */
#ifndef TFTPGW_LISTENER_H
#define TFTPGW_LISTENER_H

#include <netinet/in.h>
#include <uv.h>

#include "runtime.h"

struct tg_listener {
    struct tg_runtime *rt;
    int fd;
    uv_poll_t poll;
    bool open;
    bool adopted;       /* handed over by systemd (socket activation) */
    uint8_t *rx;        /* recvmmsg slots, rx_slot bytes each */
    size_t rx_slot;
    struct tg_sendq *sendq; /* single-port: the replies of one batch, sent together */
    struct sockaddr_storage addr;
    char label[80]; /* "127.0.0.1:6969" */
};

int tg_listener_open(struct tg_listener *l, struct tg_runtime *rt,
                     const char *spec, char *err, size_t errlen);
/* Socket activation: take over a bound UDP socket systemd passed. */
int tg_listener_adopt(struct tg_listener *l, struct tg_runtime *rt, int fd,
                      char *err, size_t errlen);
/* A request worker from's socket received, handed to this worker
 * (runtime.h, hand_off): handled as if l had received it, at level. */
void tg_listener_handed(struct tg_listener *l, const uint8_t *buf, size_t len,
                        const struct sockaddr *peer, const struct sockaddr *local, unsigned ifindex,
                        enum tg_hand level, unsigned from);
void tg_listener_close(struct tg_listener *l);
void tg_listener_free(struct tg_listener *l); /* after the loop closed its handle */

#endif

/* tests/unit/test_sendq.c - gateway/sendq.c over real loopback UDP sockets:
 * queued datagrams leave in order and unchanged at the flush, to the
 * address each named; nothing leaves before; a full queue sends what it
 * holds and goes on taking; a datagram bigger than the queue, or one for
 * another socket or a closed queue, is the caller's to send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../gateway/sendq.h"

struct peer {
    int fd;
    struct sockaddr_in sa;
};

static void udp_open(struct peer *p)
{
    socklen_t l = sizeof(p->sa);

    p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(p->fd >= 0);
    memset(&p->sa, 0, sizeof(p->sa));
    p->sa.sin_family = AF_INET;
    p->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->fd, (struct sockaddr *)&p->sa, sizeof(p->sa)), 0);
    assert_int_equal(getsockname(p->fd, (struct sockaddr *)&p->sa, &l), 0);
}

static bool add(struct tg_sendq *q, int fd, struct peer *to, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {.msg_name = &to->sa, .msg_namelen = sizeof(to->sa),
                        .msg_iov = &iov, .msg_iovlen = 1};

    return tg_sendq_add(q, fd, &mh);
}

/* The next datagram on p, or -1 when none is waiting. */
static ssize_t take(struct peer *p, uint8_t *buf, size_t cap)
{
    return recv(p->fd, buf, cap, MSG_DONTWAIT);
}

static void test_order_and_targets(void **state)
{
    struct tg_sendq *q = tg_sendq_new();
    struct peer tx, a, b;
    uint8_t buf[2048], pkt[1472];
    unsigned i;

    (void)state;
    udp_open(&tx);
    udp_open(&a);
    udp_open(&b);
    tg_sendq_open(q, tx.fd);
    for (i = 0; i < 10; i++) {
        memset(pkt, (int)i, sizeof(pkt));
        assert_true(add(q, tx.fd, i % 2 ? &b : &a, pkt, 100 + i));
    }
    assert_int_equal(take(&a, buf, sizeof(buf)), -1); /* nothing before the flush */
    /* The window slot it came from may change at once: the queue copied it. */
    memset(pkt, 0xee, sizeof(pkt));
    tg_sendq_flush(q);
    for (i = 0; i < 10; i++) {
        ssize_t n = take(i % 2 ? &b : &a, buf, sizeof(buf));

        assert_int_equal(n, 100 + i);
        assert_int_equal(buf[0], i);
        assert_int_equal(buf[n - 1], i);
    }
    assert_int_equal(take(&a, buf, sizeof(buf)), -1);
    assert_int_equal(take(&b, buf, sizeof(buf)), -1);
    /* Closed after the flush: the caller sends. */
    assert_false(add(q, tx.fd, &a, pkt, 10));
    close(tx.fd);
    close(a.fd);
    close(b.fd);
    tg_sendq_free(q);
}

static void test_full_and_foreign(void **state)
{
    struct tg_sendq *q = tg_sendq_new();
    struct peer tx, other, a;
    static uint8_t big[300 * 1024];
    uint8_t buf[2048], pkt[1024];
    int rcv = 4 << 20;
    unsigned i, got = 0;

    (void)state;
    udp_open(&tx);
    udp_open(&other);
    udp_open(&a);
    (void)setsockopt(a.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    tg_sendq_open(q, tx.fd);
    assert_false(add(q, other.fd, &a, pkt, 10)); /* another socket's */
    assert_false(add(q, tx.fd, &a, big, sizeof(big))); /* bigger than the queue */
    /* 100 datagrams: the queue holds 64, sends them and takes the rest. */
    for (i = 0; i < 100; i++) {
        memset(pkt, (int)i, sizeof(pkt));
        assert_true(add(q, tx.fd, &a, pkt, sizeof(pkt)));
    }
    for (;;) {
        ssize_t n = take(&a, buf, sizeof(buf));

        if (n < 0)
            break;
        assert_int_equal(n, sizeof(pkt));
        assert_int_equal(buf[0], got);
        got++;
    }
    assert_int_equal(got, 64);
    tg_sendq_flush(q);
    for (;;) {
        ssize_t n = take(&a, buf, sizeof(buf));

        if (n < 0)
            break;
        assert_int_equal(buf[0], got);
        got++;
    }
    assert_int_equal(got, 100);
    close(tx.fd);
    close(other.fd);
    close(a.fd);
    tg_sendq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_targets),
        cmocka_unit_test(test_full_and_foreign),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

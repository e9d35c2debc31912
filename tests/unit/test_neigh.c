/* tests/unit/test_neigh.c - the pure parts of the client MAC lookup
 * (gateway/neigh.c): the MAC's text form, the rtnetlink requests as the
 * kernel's neigh_get and inet_rtm_getroute read them, replies built here
 * byte by byte as the kernel sends them, and the bounded cache with its
 * TTLs and eviction order. The clock is a plain number. */
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/common.h"
#include "tftpgw/neigh.h"
#include "tftpgw/ratelimit.h"

static const uint8_t key_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct tg_neigh_key v4key(const char *ip, unsigned ifindex)
{
    struct tg_neigh_key k;

    memset(&k, 0, sizeof(k));
    k.family = AF_INET;
    k.ifindex = ifindex;
    assert_int_equal(inet_pton(AF_INET, ip, k.addr), 1);
    return k;
}

static void test_mac_format(void **state)
{
    const uint8_t a[6] = {0x52, 0x54, 0x00, 0xAB, 0xcd, 0xEF};
    char out[TG_MAC_STRLEN];

    (void)state;
    assert_int_equal(tg_mac_format(a, 6, out), 0);
    assert_string_equal(out, "52-54-00-ab-cd-ef");
    assert_int_equal(strlen(out), TG_MAC_STRLEN - 1);
    assert_int_equal(tg_mac_format(a, 5, out), TG_EINVAL);
    assert_string_equal(out, "");
    assert_int_equal(tg_mac_format(a, 8, out), TG_EINVAL);
    assert_int_equal(tg_mac_format(NULL, 6, out), TG_EINVAL);
}

static void test_key_of(void **state)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;
    struct sockaddr_storage other;
    struct tg_neigh_key k;

    (void)state;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    assert_int_equal(tg_neigh_key_of((struct sockaddr *)&s6, 4, &k), 0);
    assert_int_equal(k.family, AF_INET);
    assert_memory_equal(k.addr, "\x0a\x01\x02\x03", 4);
    assert_int_equal(k.ifindex, 4);
    assert_false(tg_neigh_is_loopback(&k));

    inet_pton(AF_INET6, "fe80::1", &s6.sin6_addr);
    assert_int_equal(tg_neigh_key_of((struct sockaddr *)&s6, 3, &k), 0);
    assert_int_equal(k.family, AF_INET6);
    assert_false(tg_neigh_is_loopback(&k));
    inet_pton(AF_INET6, "::1", &s6.sin6_addr);
    tg_neigh_key_of((struct sockaddr *)&s6, 3, &k);
    assert_true(tg_neigh_is_loopback(&k));

    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.9", &s4.sin_addr);
    tg_neigh_key_of((struct sockaddr *)&s4, 7, &k);
    assert_true(tg_neigh_is_loopback(&k));
    inet_pton(AF_INET, "192.0.2.1", &s4.sin_addr);
    tg_neigh_key_of((struct sockaddr *)&s4, 1, &k); /* arrived on lo */
    assert_true(tg_neigh_is_loopback(&k));

    memset(&other, 0, sizeof(other));
    other.ss_family = AF_UNIX;
    assert_int_equal(tg_neigh_key_of((struct sockaddr *)&other, 2, &k), TG_EINVAL);
}

/* What the kernel's neigh_valid_get_req insists on: a bare ndmsg with the
 * family and device, no state/flags/type, and NDA_DST of the key length as
 * the only attribute. */
static void test_build_get(void **state)
{
    uint8_t buf[TG_NEIGH_MSG_MAX];
    struct tg_neigh_key k = v4key("10.0.0.2", 5);
    size_t n = tg_neigh_build_get(buf, sizeof(buf), &k, 77);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct ndmsg *nd = NLMSG_DATA(h);
    struct rtattr *rta = (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(*nd)));

    (void)state;
    assert_int_equal(n, NLMSG_ALIGN(NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*nd)) + RTA_LENGTH(4))));
    assert_int_equal(h->nlmsg_len, NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*nd)) + RTA_LENGTH(4)));
    assert_int_equal(h->nlmsg_type, RTM_GETNEIGH);
    assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST); /* no DUMP: one entry */
    assert_int_equal(h->nlmsg_seq, 77);
    assert_int_equal(nd->ndm_family, AF_INET);
    assert_int_equal(nd->ndm_ifindex, 5);
    assert_int_equal(nd->ndm_state | nd->ndm_flags | nd->ndm_type | nd->ndm_pad1 | nd->ndm_pad2, 0);
    assert_int_equal(rta->rta_type, NDA_DST);
    assert_int_equal(rta->rta_len, RTA_LENGTH(4));
    assert_memory_equal(RTA_DATA(rta), "\x0a\x00\x00\x02", 4);

    k.family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::7", k.addr);
    n = tg_neigh_build_get(buf, sizeof(buf), &k, 78);
    assert_int_equal(h->nlmsg_len, NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*nd)) + RTA_LENGTH(16)));
    assert_true(n <= TG_NEIGH_MSG_MAX);
    assert_int_equal(nd->ndm_family, AF_INET6);
    assert_int_equal(rta->rta_len, RTA_LENGTH(16));
    assert_memory_equal(RTA_DATA(rta), k.addr, 16);
    assert_int_equal(tg_neigh_build_get(buf, 20, &k, 1), 0); /* short buffer */
}

static void test_build_route(void **state)
{
    uint8_t buf[TG_NEIGH_MSG_MAX];
    struct tg_neigh_key k = v4key("10.0.3.2", 5);
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct rtmsg *rt = NLMSG_DATA(h);
    struct rtattr *rta = (struct rtattr *)((char *)rt + NLMSG_ALIGN(sizeof(*rt)));

    (void)state;
    assert_true(tg_neigh_build_route(buf, sizeof(buf), &k, 9) > 0);
    assert_int_equal(h->nlmsg_type, RTM_GETROUTE);
    assert_int_equal(rt->rtm_family, AF_INET);
    assert_int_equal(rt->rtm_dst_len, 32);
    assert_int_equal(rta->rta_type, RTA_DST);
    assert_memory_equal(RTA_DATA(rta), "\x0a\x00\x03\x02", 4);
}

/* ---- replies, as the kernel lays them out ---- */

static size_t put_attr(uint8_t *p, uint16_t type, const void *data, size_t len)
{
    struct rtattr *rta = (struct rtattr *)p;

    rta->rta_type = type;
    rta->rta_len = (unsigned short)RTA_LENGTH(len);
    memcpy(RTA_DATA(rta), data, len);
    return RTA_ALIGN(rta->rta_len);
}

static size_t neigh_reply(uint8_t *buf, uint32_t seq, uint16_t state, const uint8_t *ll,
                          size_t lllen)
{
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct ndmsg *nd = NLMSG_DATA(h);
    uint8_t *p = (uint8_t *)nd + NLMSG_ALIGN(sizeof(*nd));
    const uint8_t dst[4] = {10, 0, 0, 2};

    memset(buf, 0, 256);
    nd->ndm_family = AF_INET;
    nd->ndm_ifindex = 5;
    nd->ndm_state = state;
    p += put_attr(p, NDA_DST, dst, 4);
    if (ll)
        p += put_attr(p, NDA_LLADDR, ll, lllen);
    h->nlmsg_len = (uint32_t)(p - buf);
    h->nlmsg_type = RTM_NEWNEIGH;
    h->nlmsg_seq = seq;
    return NLMSG_ALIGN(h->nlmsg_len);
}

static size_t error_reply(uint8_t *buf, uint32_t seq, int error)
{
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct nlmsgerr *e = NLMSG_DATA(h);

    memset(buf, 0, NLMSG_LENGTH(sizeof(*e)));
    e->error = error;
    h->nlmsg_len = NLMSG_LENGTH(sizeof(*e));
    h->nlmsg_type = NLMSG_ERROR;
    h->nlmsg_seq = seq;
    return NLMSG_ALIGN(h->nlmsg_len);
}

static size_t route_reply(uint8_t *buf, uint32_t seq, unsigned char type, const char *gw)
{
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    struct rtmsg *rt = NLMSG_DATA(h);
    uint8_t *p = (uint8_t *)rt + NLMSG_ALIGN(sizeof(*rt));
    uint8_t a[4] = {10, 0, 3, 2};
    uint32_t oif = 5;

    memset(buf, 0, 256);
    rt->rtm_family = AF_INET;
    rt->rtm_dst_len = 32;
    rt->rtm_type = type;
    p += put_attr(p, RTA_DST, a, 4);
    p += put_attr(p, RTA_OIF, &oif, 4);
    if (gw) {
        inet_pton(AF_INET, gw, a);
        p += put_attr(p, RTA_GATEWAY, a, 4);
    }
    h->nlmsg_len = (uint32_t)(p - buf);
    h->nlmsg_type = RTM_NEWROUTE;
    h->nlmsg_seq = seq;
    return NLMSG_ALIGN(h->nlmsg_len);
}

static void test_parse_neigh(void **state)
{
    const uint8_t ll[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    uint8_t buf[512];
    struct tg_nl_answer a[4];
    size_t n;

    (void)state;
    n = neigh_reply(buf, 41, NUD_STALE, ll, 6);
    assert_int_equal(tg_nl_parse(buf, n, a, 4), 1);
    assert_int_equal(a[0].kind, TG_NL_NEIGH);
    assert_int_equal(a[0].seq, 41);
    assert_string_equal(a[0].mac, "52-54-00-12-34-56");

    /* entries whose address is not the peer's own */
    n = neigh_reply(buf, 42, NUD_FAILED, ll, 6);
    assert_int_equal(tg_nl_parse(buf, n, a, 4), 1);
    assert_string_equal(a[0].mac, "");
    assert_int_equal(a[0].state, NUD_FAILED);
    n = neigh_reply(buf, 43, NUD_INCOMPLETE, NULL, 0);
    tg_nl_parse(buf, n, a, 4);
    assert_string_equal(a[0].mac, "");
    n = neigh_reply(buf, 44, NUD_NOARP, ll, 6);
    tg_nl_parse(buf, n, a, 4);
    assert_string_equal(a[0].mac, "");
    n = neigh_reply(buf, 45, NUD_REACHABLE, ll, 5); /* not Ethernet */
    tg_nl_parse(buf, n, a, 4);
    assert_string_equal(a[0].mac, "");

    /* an answer and its error in one datagram; a message cut short ends it */
    n = neigh_reply(buf, 46, NUD_PERMANENT, ll, 6);
    n += error_reply(buf + n, 47, -ENOENT);
    assert_int_equal(tg_nl_parse(buf, n, a, 4), 2);
    assert_string_equal(a[0].mac, "52-54-00-12-34-56");
    assert_int_equal(a[1].kind, TG_NL_ERROR);
    assert_int_equal(a[1].seq, 47);
    assert_int_equal(a[1].error, -ENOENT);
    assert_int_equal(tg_nl_parse(buf, n - 4, a, 4), 1);
    assert_int_equal(tg_nl_parse(buf, 10, a, 4), 0);
    assert_int_equal(tg_nl_parse(buf, n, a, 1), 1); /* max respected */
}

static void test_parse_route(void **state)
{
    uint8_t buf[512];
    struct tg_nl_answer a[2];
    size_t n;

    (void)state;
    n = route_reply(buf, 5, RTN_UNICAST, "10.0.2.2");
    assert_int_equal(tg_nl_parse(buf, n, a, 2), 1);
    assert_int_equal(a[0].kind, TG_NL_ROUTE);
    assert_string_equal(a[0].gateway, "10.0.2.2");
    assert_false(a[0].local);
    n = route_reply(buf, 6, RTN_UNICAST, NULL); /* on link */
    tg_nl_parse(buf, n, a, 2);
    assert_string_equal(a[0].gateway, "");
    assert_false(a[0].local);
    n = route_reply(buf, 7, RTN_LOCAL, NULL);
    tg_nl_parse(buf, n, a, 2);
    assert_true(a[0].local);
    /* other messages are read as OTHER and skipped by the caller */
    ((struct nlmsghdr *)buf)->nlmsg_type = RTM_NEWLINK;
    tg_nl_parse(buf, n, a, 2);
    assert_int_equal(a[0].kind, TG_NL_OTHER);
}

/* ---- the cache ---- */

static void test_cache_ttl(void **state)
{
    struct tg_neigh_cache *c = tg_neigh_cache_new(key_a);
    struct tg_neigh_key k = v4key("10.0.0.2", 5), k2 = v4key("10.0.0.2", 6);
    char mac[TG_MAC_STRLEN], why[TG_NEIGH_WHY_MAX];

    (void)state;
    assert_non_null(c);
    assert_int_equal(tg_neigh_cache_get(c, &k, 1000, mac, why), TG_NEIGH_MISS);
    tg_neigh_cache_put(c, &k, 1000, "52-54-00-12-34-56", NULL);
    assert_int_equal(tg_neigh_cache_get(c, &k, 1000, mac, why), TG_NEIGH_KNOWN);
    assert_string_equal(mac, "52-54-00-12-34-56");
    /* the interface is part of the key */
    assert_int_equal(tg_neigh_cache_get(c, &k2, 1000, mac, why), TG_NEIGH_MISS);
    assert_int_equal(tg_neigh_cache_get(c, &k, 1000 + TG_NEIGH_POS_TTL_MS - 1, NULL, NULL),
                     TG_NEIGH_KNOWN);
    assert_int_equal(tg_neigh_cache_get(c, &k, 1000 + TG_NEIGH_POS_TTL_MS, mac, why),
                     TG_NEIGH_MISS);

    tg_neigh_cache_put(c, &k2, 5000, NULL, "not on a directly attached network (via 10.0.2.2)");
    assert_int_equal(tg_neigh_cache_get(c, &k2, 5000 + TG_NEIGH_NEG_TTL_MS - 1, mac, why),
                     TG_NEIGH_UNKNOWN);
    assert_string_equal(why, "not on a directly attached network (via 10.0.2.2)");
    assert_int_equal(tg_neigh_cache_get(c, &k2, 5000 + TG_NEIGH_NEG_TTL_MS, mac, why),
                     TG_NEIGH_MISS);
    /* a new answer replaces the old one in place */
    tg_neigh_cache_put(c, &k, 9000, NULL, "gone");
    tg_neigh_cache_put(c, &k, 9001, "52-54-00-00-00-01", NULL);
    assert_int_equal(tg_neigh_cache_count(c, 9001), 1);
    assert_int_equal(tg_neigh_cache_get(c, &k, 9001, mac, why), TG_NEIGH_KNOWN);
    assert_string_equal(mac, "52-54-00-00-00-01");
    tg_neigh_cache_put(c, &k, 9002, "", NULL); /* empty MAC: unknown */
    assert_int_equal(tg_neigh_cache_get(c, &k, 9002, mac, why), TG_NEIGH_UNKNOWN);
    assert_string_equal(why, "unknown");
    tg_neigh_cache_free(c);
}

/* A flood of negative answers does not push out a known MAC while there
 * are negatives to evict, and the table never holds more than its slots. */
static void test_cache_bounded(void **state)
{
    struct tg_neigh_cache *c = tg_neigh_cache_new(key_a);
    struct tg_neigh_key good = v4key("10.0.0.2", 5);
    char mac[TG_MAC_STRLEN];

    (void)state;
    tg_neigh_cache_put(c, &good, 0, "52-54-00-12-34-56", NULL);
    /* 20000 spoofed addresses, each answered "unknown", within the TTL */
    for (uint32_t i = 0; i < 20000; i++) {
        struct tg_neigh_key k = v4key("10.0.0.0", 5);

        k.addr[1] = (uint8_t)(i >> 16);
        k.addr[2] = (uint8_t)(i >> 8);
        k.addr[3] = (uint8_t)i;
        k.addr[0] = 11;
        tg_neigh_cache_put(c, &k, 1 + i / 100, NULL, "no neighbour entry");
        assert_true(tg_neigh_cache_count(c, 1 + i / 100) <= TG_NEIGH_SLOTS);
    }
    assert_int_equal(tg_neigh_cache_count(c, 201), TG_NEIGH_SLOTS);
    assert_int_equal(tg_neigh_cache_get(c, &good, 201, mac, NULL), TG_NEIGH_KNOWN);
    assert_string_equal(mac, "52-54-00-12-34-56");
    tg_neigh_cache_free(c);
}

/* When a whole set holds known MACs, the oldest goes. */
static void test_cache_evicts_oldest(void **state)
{
    struct tg_neigh_cache *c = tg_neigh_cache_new(key_a);
    struct tg_neigh_key first = v4key("10.9.0.1", 2);
    uint32_t i;

    (void)state;

    tg_neigh_cache_put(c, &first, 0, "52-54-00-00-00-01", NULL);
    /* positives at later times until first is gone */
    for (i = 0; i < 100000; i++) {
        struct tg_neigh_key k = v4key("10.8.0.0", 2);

        k.addr[2] = (uint8_t)(i >> 8);
        k.addr[3] = (uint8_t)i;
        k.addr[1] = (uint8_t)(i >> 16);
        tg_neigh_cache_put(c, &k, 1 + i / 1000, "52-54-00-00-00-02", NULL);
        if (tg_neigh_cache_get(c, &first, 1 + i / 1000, NULL, NULL) == TG_NEIGH_MISS)
            break;
    }
    assert_true(i < 100000);
    assert_true(i >= TG_NEIGH_WAYS - 1);
    tg_neigh_cache_free(c);
}

/* The lookup budget: a burst of `rate`, then `rate` a second, however the
 * calls are spread; the clock going backwards adds nothing. */
static void test_budget(void **state)
{
    struct tg_neigh_budget b;
    unsigned got = 0;

    (void)state;
    tg_neigh_budget_init(&b, 256);
    for (int i = 0; i < 1000; i++)
        got += tg_neigh_budget_take(&b, 5000);
    assert_int_equal(got, 256);
    assert_false(tg_neigh_budget_take(&b, 5000));
    /* one call a millisecond for 10 s: 2560 more, not 10000 */
    got = 0;
    for (uint64_t t = 5001; t <= 15000; t++)
        got += tg_neigh_budget_take(&b, t);
    assert_true(got >= 2555 && got <= 2560);
    /* idle for a minute: the burst again, never more */
    got = 0;
    for (int i = 0; i < 1000; i++)
        got += tg_neigh_budget_take(&b, 75000);
    assert_int_equal(got, 256);
    assert_false(tg_neigh_budget_take(&b, 1000)); /* backwards */
    tg_neigh_budget_init(&b, 0);
    assert_false(tg_neigh_budget_take(&b, 99999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac_format),
        cmocka_unit_test(test_key_of),
        cmocka_unit_test(test_build_get),
        cmocka_unit_test(test_build_route),
        cmocka_unit_test(test_parse_neigh),
        cmocka_unit_test(test_parse_route),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_bounded),
        cmocka_unit_test(test_cache_evicts_oldest),
        cmocka_unit_test(test_budget),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

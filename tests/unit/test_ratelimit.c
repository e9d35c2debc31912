/* tests/unit/test_ratelimit.c - the per-client rate buckets
 * (gateway/ratelimit.c): SipHash-2-4, bucket arithmetic, and that a crowd
 * of addresses forced into one probe set cannot take a slot from the
 * address that holds it. The clock is a plain number. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "tftpgw/common.h"
#include "tftpgw/ratelimit.h"

static const uint8_t key_a[TG_RATE_KEYLEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t key_b[TG_RATE_KEYLEN] = {0x5a, 0xa5, 7, 1, 9, 9, 2, 0, 3, 8, 1, 2, 7, 7, 0, 1};

static struct sockaddr_storage v4(uint32_t host_order, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(host_order);
    s->sin_port = htons(port);
    return ss;
}

static struct sockaddr_storage v6(const char *text, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, text, &s->sin6_addr), 1);
    s->sin6_port = htons(port);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static enum tg_rate_verdict check(struct tg_ratelimit *rl, const struct sockaddr_storage *ss,
                                  uint64_t now, unsigned rate, unsigned burst)
{
    return tg_ratelimit_check(rl, (const struct sockaddr *)ss, now, rate, burst);
}

/* n IPv4 addresses from 10.0.0.0/8, in order, whose set under rl is `set`. */
static void addrs_in_set(const struct tg_ratelimit *rl, unsigned set, struct sockaddr_storage *out,
                         size_t n, uint32_t start)
{
    uint32_t a = start;
    size_t got = 0;

    while (got < n) {
        struct sockaddr_storage ss = v4(a++, 69);

        assert_true(a < 0x0b000000u); /* a set has ~1/512 of them: plenty */
        if (tg_ratelimit_set_of(rl, SA(ss)) == set)
            out[got++] = ss;
    }
}

static void test_siphash_vectors(void **state)
{
    uint8_t msg[64];

    (void)state;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* The reference vectors: key 00..0f, message 00..(len-1). */
    assert_true(tg_siphash24(key_a, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(tg_siphash24(key_a, msg, 1) == 0x74f839c593dc67fdULL);
    assert_true(tg_siphash24(key_a, msg, 8) == 0x93f5f5799a932462ULL);
    assert_true(tg_siphash24(key_a, msg, 15) == 0xa129ca6149be45e5ULL);
    assert_true(tg_siphash24(key_a, msg, 63) == 0x958a324ceb064572ULL);
}

static void test_burst_then_refill(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage a = v4(0x0a000001, 1000);
    int i;

    (void)state;
    assert_non_null(rl);
    /* rate 2/s, burst 5: five at once, then one per 500 ms. */
    for (i = 0; i < 5; i++)
        assert_int_equal(check(rl, &a, 1000, 2, 5), TG_RATE_PASS);
    assert_int_equal(check(rl, &a, 1000, 2, 5), TG_RATE_LIMITED);
    assert_int_equal(check(rl, &a, 1499, 2, 5), TG_RATE_LIMITED); /* 0.998 tokens */
    assert_int_equal(check(rl, &a, 1500, 2, 5), TG_RATE_PASS);
    assert_int_equal(check(rl, &a, 1500, 2, 5), TG_RATE_LIMITED);
    /* Long idle: back to the full burst, not more. */
    for (i = 0; i < 5; i++)
        assert_int_equal(check(rl, &a, 100000, 2, 5), TG_RATE_PASS);
    assert_int_equal(check(rl, &a, 100000, 2, 5), TG_RATE_LIMITED);
    /* burst 0 means twice the rate. */
    a = v4(0x0a000002, 1000);
    for (i = 0; i < 6; i++)
        assert_int_equal(check(rl, &a, 5000, 3, 0), TG_RATE_PASS);
    assert_int_equal(check(rl, &a, 5000, 3, 0), TG_RATE_LIMITED);
    /* A limited request costs nothing: steady polling at the limit passes. */
    for (i = 1; i <= 20; i++) {
        assert_int_equal(check(rl, &a, 5000 + (uint64_t)i * 334, 3, 0), TG_RATE_PASS);
        assert_int_equal(check(rl, &a, 5000 + (uint64_t)i * 334, 3, 0), TG_RATE_LIMITED);
    }
    /* The port is not part of the key. */
    a = v4(0x0a000002, 2000);
    assert_int_equal(check(rl, &a, 5000 + 20 * 334, 3, 0), TG_RATE_LIMITED);
    /* A clock far ahead does not overflow; one that steps back refills nothing. */
    assert_int_equal(check(rl, &a, UINT64_MAX / 2, 1000000, 1000000), TG_RATE_PASS);
    a = v4(0x0a000003, 1);
    assert_int_equal(check(rl, &a, 10000, 1, 1), TG_RATE_PASS);
    assert_int_equal(check(rl, &a, 5, 1, 1), TG_RATE_LIMITED);
    tg_ratelimit_free(rl);
}

/* client_rate: many tokens at once (KiB of one datagram). */
static void test_take_cost(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage a = v4(0x0a000009, 1);
    const struct sockaddr *sa = (const struct sockaddr *)&a;

    (void)state;
    assert_non_null(rl);
    /* 100 KiB/s, bucket 128: two 64 KiB blocks, then a third after 640 ms. */
    assert_int_equal(tg_ratelimit_take(rl, sa, 1000, 100, 128, 64), TG_RATE_PASS);
    assert_int_equal(tg_ratelimit_take(rl, sa, 1000, 100, 128, 64), TG_RATE_PASS);
    assert_int_equal(tg_ratelimit_take(rl, sa, 1000, 100, 128, 1), TG_RATE_LIMITED);
    assert_int_equal(tg_ratelimit_take(rl, sa, 1639, 100, 128, 64), TG_RATE_LIMITED);
    assert_int_equal(tg_ratelimit_take(rl, sa, 1640, 100, 128, 64), TG_RATE_PASS);
    /* a refused take costs nothing: 2 KiB are there 20 ms later */
    assert_int_equal(tg_ratelimit_take(rl, sa, 1660, 100, 128, 2), TG_RATE_PASS);
    tg_ratelimit_free(rl);
}

static void test_off_and_null(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage a = v4(0x0a000001, 1);
    struct sockaddr_storage un;
    int i;

    (void)state;
    for (i = 0; i < 100; i++)
        assert_int_equal(check(rl, &a, 0, 0, 0), TG_RATE_PASS); /* rate_limit = 0 */
    for (i = 0; i < 100; i++)
        assert_int_equal(check(NULL, &a, 0, 1, 1), TG_RATE_PASS);
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    for (i = 0; i < 5; i++)
        assert_int_equal(check(rl, &un, 0, 1, 1), TG_RATE_PASS);
    tg_ratelimit_free(rl);
    tg_ratelimit_free(NULL);
}

/* The attack the table is built against: many addresses in the owner's
 * probe set (here found with the key in hand; without it, see
 * test_seed_moves_addresses). Owners that keep their buckets in use keep
 * their slots; every newcomer is refused, not an owner. */
static void test_owner_keeps_slot(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage owner, crowd[TG_RATE_WAYS - 1 + 200];
    unsigned set, i, passed = 0, refused_new = 0;
    uint64_t t;

    (void)state;
    owner = v4(0x0a000002, 69);
    set = tg_ratelimit_set_of(rl, SA(owner));
    addrs_in_set(rl, set, crowd, TG_ARRAY_LEN(crowd), 0x0a000003);
    /* The owner arrives first, then seven flooders fill the other ways
     * and flood on; two hundred more addresses of the set try too. */
    assert_int_equal(check(rl, &owner, 0, 2, 0), TG_RATE_PASS);
    for (t = 1; t <= 12000; t += 5) {
        for (i = 0; i < TG_ARRAY_LEN(crowd); i++) {
            enum tg_rate_verdict v = check(rl, &crowd[i], t, 2, 0);

            if (i < TG_RATE_WAYS - 1)
                assert_int_not_equal(v, TG_RATE_NO_SLOT); /* they hold slots */
            else if (t > 1)
                refused_new += v == TG_RATE_NO_SLOT;
            if (i >= TG_RATE_WAYS - 1)
                assert_int_not_equal(v, TG_RATE_PASS);
        }
        /* The owner: one request every 495 ms, just under its 2/s, so
         * its bucket never fills up again. */
        if (t % 495 == 1) {
            assert_int_equal(check(rl, &owner, t, 2, 0), TG_RATE_PASS);
            passed++;
        }
    }
    assert_int_equal(passed, 12000 / 495 + 1);
    assert_int_equal(refused_new, (2400 - 1) * 200);
    tg_ratelimit_free(rl);
}

/* Two addresses never share a bucket, even in one set. */
static void test_no_shared_bucket(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage a[2];
    int i;

    (void)state;
    addrs_in_set(rl, 7, a, 2, 0x0a000000);
    for (i = 0; i < 4; i++)
        assert_int_equal(check(rl, &a[0], 100, 2, 0), TG_RATE_PASS);
    assert_int_equal(check(rl, &a[0], 100, 2, 0), TG_RATE_LIMITED);
    for (i = 0; i < 4; i++)
        assert_int_equal(check(rl, &a[1], 100, 2, 0), TG_RATE_PASS);
    assert_int_equal(check(rl, &a[1], 100, 2, 0), TG_RATE_LIMITED);
    tg_ratelimit_free(rl);
}

/* A table full of addresses whose buckets refilled is free for new ones,
 * and within a set the least recently used refilled slot goes first. */
static void test_idle_table_reused(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    static unsigned per_set[TG_RATE_SETS];
    struct sockaddr_storage ss, lru[TG_RATE_WAYS + 1];
    unsigned i, no_slot = 0, pass = 0, want = 0;

    (void)state;
    /* 20000 addresses at once: every set fills, the rest are refused. */
    for (i = 0; i < 20000; i++) {
        ss = v4(0x0a000000u + i, 69);
        no_slot += check(rl, &ss, 1000, 2, 0) == TG_RATE_NO_SLOT;
    }
    assert_int_equal(no_slot, 20000 - TG_RATE_SLOTS);
    /* Two seconds on, all are full again; 20000 others get every slot. */
    memset(per_set, 0, sizeof(per_set));
    for (i = 0; i < 20000; i++) {
        ss = v4(0x0b000000u + i, 69);
        if (per_set[tg_ratelimit_set_of(rl, SA(ss))]++ < TG_RATE_WAYS)
            want++;
        pass += check(rl, &ss, 3000, 2, 0) == TG_RATE_PASS;
    }
    assert_int_equal(want, TG_RATE_SLOTS);
    assert_int_equal(pass, TG_RATE_SLOTS);
    tg_ratelimit_free(rl);

    /* LRU: eight in one set at 0..7 ms; at 5 s a ninth takes the first's
     * slot; with all eight slots busy again the first is the newcomer. */
    rl = tg_ratelimit_new(key_b);
    addrs_in_set(rl, 3, lru, TG_ARRAY_LEN(lru), 0x0a000000);
    for (i = 0; i < TG_RATE_WAYS; i++)
        assert_int_equal(check(rl, &lru[i], i, 2, 0), TG_RATE_PASS);
    assert_int_equal(check(rl, &lru[TG_RATE_WAYS], 100, 2, 0), TG_RATE_NO_SLOT);
    assert_int_equal(check(rl, &lru[TG_RATE_WAYS], 5000, 2, 0), TG_RATE_PASS);
    for (i = 1; i < TG_RATE_WAYS; i++)
        assert_int_equal(check(rl, &lru[i], 5001, 2, 0), TG_RATE_PASS);
    assert_int_equal(check(rl, &lru[0], 5002, 2, 0), TG_RATE_NO_SLOT);
    tg_ratelimit_free(rl);
}

static void test_ipv4_and_ipv6(void **state)
{
    struct tg_ratelimit *rl = tg_ratelimit_new(key_a);
    struct sockaddr_storage a4 = v4(0x01020304, 69);
    struct sockaddr_storage a6 = v6("::102:304", 69);
    struct sockaddr_storage m6 = v6("::ffff:1.2.3.4", 69);
    struct sockaddr_storage b6 = v6("2001:db8::1", 69), c6 = v6("2001:db8::2", 70);
    int i;

    (void)state;
    /* The same 4 bytes as IPv4, as IPv6 and mapped: three clients. */
    assert_int_equal(check(rl, &a4, 10, 1, 1), TG_RATE_PASS);
    assert_int_equal(check(rl, &a4, 10, 1, 1), TG_RATE_LIMITED);
    assert_int_equal(check(rl, &a6, 10, 1, 1), TG_RATE_PASS);
    assert_int_equal(check(rl, &a6, 10, 1, 1), TG_RATE_LIMITED);
    assert_int_equal(check(rl, &m6, 10, 1, 1), TG_RATE_PASS);
    /* Neighbouring IPv6 addresses have buckets of their own. */
    for (i = 0; i < 3; i++)
        assert_int_equal(check(rl, &b6, 20, 1, 3), TG_RATE_PASS);
    assert_int_equal(check(rl, &b6, 20, 1, 3), TG_RATE_LIMITED);
    assert_int_equal(check(rl, &c6, 20, 1, 3), TG_RATE_PASS);
    assert_int_equal(check(rl, &b6, 1020, 1, 3), TG_RATE_PASS);
    assert_int_equal(check(rl, &b6, 1020, 1, 3), TG_RATE_LIMITED);
    /* IPv6 sets spread like IPv4 ones: 4096 addresses of one /64 over at
     * least half the sets. */
    {
        static unsigned char used[TG_RATE_SETS];
        unsigned n = 0;
        char text[64];

        memset(used, 0, sizeof(used));
        for (i = 0; i < 4096; i++) {
            snprintf(text, sizeof(text), "2001:db8::%x", i);
            b6 = v6(text, 69);
            used[tg_ratelimit_set_of(rl, SA(b6))] = 1;
        }
        for (i = 0; i < TG_RATE_SETS; i++)
            n += used[i];
        assert_true(n > TG_RATE_SETS / 2);
    }
    tg_ratelimit_free(rl);
}

/* The key decides the placement: addresses that share a set under one key
 * are scattered under another, and a random key is not a fixed one. */
static void test_seed_moves_addresses(void **state)
{
    struct tg_ratelimit *a = tg_ratelimit_new(key_a), *b = tg_ratelimit_new(key_b);
    struct tg_ratelimit *r1 = tg_ratelimit_new(NULL), *r2 = tg_ratelimit_new(NULL);
    struct sockaddr_storage crowd[64], ss;
    unsigned i, same_b = 0, same_r = 0, differ_r12 = 0;
    unsigned first;

    (void)state;
    addrs_in_set(a, 42, crowd, TG_ARRAY_LEN(crowd), 0x0a000000);
    first = tg_ratelimit_set_of(b, SA(crowd[0]));
    for (i = 1; i < TG_ARRAY_LEN(crowd); i++) {
        same_b += tg_ratelimit_set_of(b, SA(crowd[i])) == first;
        same_r += tg_ratelimit_set_of(r1, SA(crowd[i])) == tg_ratelimit_set_of(r1, SA(crowd[0]));
    }
    /* By chance about 63/512 of them would stay together. */
    assert_true(same_b <= 3);
    assert_true(same_r <= 3);
    for (i = 0; i < 64; i++) {
        ss = v4(0x7f000001u + i, 69);
        differ_r12 += tg_ratelimit_set_of(r1, SA(ss)) != tg_ratelimit_set_of(r2, SA(ss));
        /* One key, one answer. */
        assert_int_equal(tg_ratelimit_set_of(a, SA(ss)), tg_ratelimit_set_of(a, SA(ss)));
    }
    assert_true(differ_r12 >= 56);
    tg_ratelimit_free(a);
    tg_ratelimit_free(b);
    tg_ratelimit_free(r1);
    tg_ratelimit_free(r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_take_cost),
        cmocka_unit_test(test_off_and_null),
        cmocka_unit_test(test_owner_keeps_slot),
        cmocka_unit_test(test_no_shared_bucket),
        cmocka_unit_test(test_idle_table_reused),
        cmocka_unit_test(test_ipv4_and_ipv6),
        cmocka_unit_test(test_seed_moves_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

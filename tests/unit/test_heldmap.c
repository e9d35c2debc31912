/* tests/unit/test_heldmap.c - where held probes wait (gateway/heldmap.c):
 * keyed by address without port and by name, taken once, timed, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "../../gateway/heldmap.h"

static const uint8_t KEY[TG_HELDMAP_KEYLEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* The worker of a note, and whether it is held: -1 when none. */
static int find(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                uint64_t now, bool *held)
{
    bool h;
    int w = tg_heldmap_find(m, peer, name, now, &h);

    if (held)
        *held = h;
    return w;
}

static void test_port_ignored_pending_then_held(void **state)
{
    struct tg_heldmap *m = tg_heldmap_new(8, KEY);
    struct sockaddr_storage probe = v4("10.0.0.7", 1500), dl = v4("10.0.0.7", 1501);
    bool held = true;
    uint64_t t;

    (void)state;
    assert_non_null(m);
    t = tg_heldmap_put(m, SA(probe), "boot.efi", 3, 1000);
    /* the download, from a new port of the same address: pending first */
    assert_int_equal(find(m, SA(dl), "boot.efi", 10, &held), 3);
    assert_false(held);
    tg_heldmap_held(m, SA(probe), "boot.efi", t + 1, 2000); /* not its token */
    assert_int_equal(find(m, SA(dl), "boot.efi", 10, &held), 3);
    assert_false(held);
    tg_heldmap_held(m, SA(probe), "boot.efi", t, 2000);
    assert_int_equal(find(m, SA(dl), "boot.efi", 1500, &held), 3);
    assert_true(held);
    /* the note stays until dropped or out of time */
    assert_int_equal(find(m, SA(dl), "boot.efi", 1999, NULL), 3);
    assert_int_equal(find(m, SA(dl), "boot.efi", 2000, NULL), -1);
    assert_int_equal(find(m, SA(dl), "boot.efi", 10, NULL), -1);
    tg_heldmap_free(m);
}

static void test_other_address_name_family(void **state)
{
    struct tg_heldmap *m = tg_heldmap_new(8, KEY);
    struct sockaddr_storage a = v4("10.0.0.7", 1500), b = v4("10.0.0.8", 1500);
    struct sockaddr_storage c = v6("2001:db8::7", 1500), d = v6("2001:db8::8", 1500);

    (void)state;
    tg_heldmap_put(m, SA(a), "boot.efi", 1, 1000);
    tg_heldmap_put(m, SA(c), "boot.efi", 2, 1000);
    assert_int_equal(find(m, SA(b), "boot.efi", 0, NULL), -1);
    assert_int_equal(find(m, SA(a), "Boot.efi", 0, NULL), -1);
    assert_int_equal(find(m, SA(d), "boot.efi", 0, NULL), -1);
    assert_int_equal(find(m, SA(c), "boot.efi", 0, NULL), 2);
    assert_int_equal(find(m, SA(a), "boot.efi", 0, NULL), 1);
    tg_heldmap_free(m);
}

static void test_time_is_up(void **state)
{
    struct tg_heldmap *m = tg_heldmap_new(8, KEY);
    struct sockaddr_storage a = v4("10.0.0.7", 1500);

    (void)state;
    tg_heldmap_put(m, SA(a), "x", 1, 500);
    assert_int_equal(find(m, SA(a), "x", 500, NULL), -1);
    /* a stale entry is gone after the failed take, and a new note wins */
    tg_heldmap_put(m, SA(a), "x", 1, 500);
    tg_heldmap_put(m, SA(a), "x", 4, 900);
    assert_int_equal(find(m, SA(a), "x", 600, NULL), 4);
    tg_heldmap_free(m);
}

/* Full: the oldest note is replaced, so the last cap notes are all found
 * (invariant 6: a flood of probes cannot grow the map). */
static void test_bounded_oldest_replaced(void **state)
{
    enum { CAP = 4, N = 10 };
    struct tg_heldmap *m = tg_heldmap_new(CAP, KEY);
    char name[16];

    (void)state;
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage a = v4("10.0.0.7", 1500);

        snprintf(name, sizeof(name), "f%d", i);
        tg_heldmap_put(m, SA(a), name, (unsigned)i, 1000);
    }
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage a = v4("10.0.0.7", 1500);

        snprintf(name, sizeof(name), "f%d", i);
        assert_int_equal(find(m, SA(a), name, 0, NULL), i >= N - CAP ? i : -1);
    }
    tg_heldmap_free(m);
}

/* A note is dropped only by its own token: a later put for the same
 * address and name is kept. */
static void test_drop_by_token(void **state)
{
    struct tg_heldmap *m = tg_heldmap_new(8, KEY);
    struct sockaddr_storage a = v4("10.0.0.7", 1500), b = v4("10.0.0.7", 2000);
    uint64_t t1, t2;

    (void)state;
    t1 = tg_heldmap_put(m, SA(a), "x", 1, 1000);
    assert_true(t1 != 0);
    tg_heldmap_drop(m, SA(b), "x", t1);
    assert_int_equal(find(m, SA(a), "x", 0, NULL), -1);
    t1 = tg_heldmap_put(m, SA(a), "x", 1, 1000);
    t2 = tg_heldmap_put(m, SA(a), "x", 2, 1000);
    assert_true(t2 != t1);
    tg_heldmap_drop(m, SA(a), "x", t1);
    assert_int_equal(find(m, SA(a), "x", 0, NULL), 2);
    tg_heldmap_free(m);
}

/* A long name is keyed by its start; nothing overflows. */
static void test_long_name(void **state)
{
    struct tg_heldmap *m = tg_heldmap_new(2, KEY);
    struct sockaddr_storage a = v4("10.0.0.7", 1500);
    char name[2000];

    (void)state;
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    tg_heldmap_put(m, SA(a), name, 1, 1000);
    assert_int_equal(find(m, SA(a), name, 0, NULL), 1);
    tg_heldmap_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_ignored_pending_then_held),
        cmocka_unit_test(test_other_address_name_family),
        cmocka_unit_test(test_time_is_up),
        cmocka_unit_test(test_bounded_oldest_replaced),
        cmocka_unit_test(test_drop_by_token),
        cmocka_unit_test(test_long_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_hold_table.c - backends/hold_table.c: one entry per
 * (key, address), the port never part of it; HT_MAX entries at most with
 * the oldest displaced; expiry by due time; everything can be taken out
 * (what a blind sender can make a backend hold: docs/security.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../backends/hold_table.h"
#include "tftpgw/common.h"

static int items[HT_MAX + 8];

static void drain(struct ht_table *t)
{
    while (ht_pop(t, NULL))
        ;
    assert_int_equal(t->n, 0);
}

static void test_take_matches_key_and_address(void **state)
{
    struct ht_table t = {0};
    void *d;

    (void)state;
    assert_int_equal(ht_put(&t, "boot.efi", "10.0.0.1", &items[0], 3000, &d), 0);
    assert_null(d);
    assert_null(ht_take(&t, "boot.efi", "10.0.0.2"));   /* another client */
    assert_null(ht_take(&t, "other.efi", "10.0.0.1"));  /* another key */
    assert_int_equal(t.n, 1);
    assert_ptr_equal(ht_take(&t, "boot.efi", "10.0.0.1"), &items[0]);
    assert_null(ht_take(&t, "boot.efi", "10.0.0.1"));   /* adopted once */
    assert_int_equal(t.n, 0);
}

static void test_one_per_key_and_address(void **state)
{
    struct ht_table t = {0};
    void *d;

    (void)state;
    assert_int_equal(ht_put(&t, "k", "10.0.0.1", &items[0], 1000, &d), 0);
    assert_int_equal(ht_put(&t, "k", "10.0.0.2", &items[1], 1000, &d), 0);
    assert_null(d);
    /* the same pair again: the older one is handed back to be released */
    assert_int_equal(ht_put(&t, "k", "10.0.0.1", &items[2], 2000, &d), 0);
    assert_ptr_equal(d, &items[0]);
    assert_int_equal(t.n, 2);
    assert_ptr_equal(ht_take(&t, "k", "10.0.0.1"), &items[2]);
    drain(&t);
}

static void test_cap_displaces_oldest(void **state)
{
    struct ht_table t = {0};
    char key[16];
    void *d;

    (void)state;
    for (int i = 0; i < HT_MAX; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(ht_put(&t, key, "10.0.0.1", &items[i], 1000 + (uint64_t)i, &d), 0);
        assert_null(d);
    }
    assert_int_equal(t.n, HT_MAX);
    for (int i = HT_MAX; i < HT_MAX + 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(ht_put(&t, key, "10.0.0.9", &items[i], 1000 + (uint64_t)i, &d), 0);
        assert_ptr_equal(d, &items[i - HT_MAX]); /* the oldest goes */
        assert_int_equal(t.n, HT_MAX);
    }
    assert_null(ht_take(&t, "k0", "10.0.0.1"));
    assert_ptr_equal(ht_take(&t, "k8", "10.0.0.1"), &items[8]);
    drain(&t);
}

static void test_expiry(void **state)
{
    struct ht_table t = {0};
    char *key = NULL;
    void *d;

    (void)state;
    assert_int_equal(ht_next_due(&t), 0);
    assert_int_equal(ht_put(&t, "a", "::1", &items[0], 3000, &d), 0);
    assert_int_equal(ht_put(&t, "b", "::1", &items[1], 4000, &d), 0);
    assert_int_equal(ht_next_due(&t), 3000);
    assert_null(ht_expire(&t, 2999, &key));
    assert_ptr_equal(ht_expire(&t, 3000, &key), &items[0]);
    assert_string_equal(key, "a");
    tg_free(key);
    assert_null(ht_expire(&t, 3500, NULL));
    assert_int_equal(ht_next_due(&t), 4000);
    assert_ptr_equal(ht_expire(&t, 9000, NULL), &items[1]);
    assert_int_equal(ht_next_due(&t), 0);
    assert_int_equal(t.n, 0);
}

static void test_address_too_long(void **state)
{
    struct ht_table t = {0};
    char ip[64];
    void *d;

    (void)state;
    memset(ip, '1', sizeof(ip) - 1);
    ip[sizeof(ip) - 1] = '\0';
    assert_int_equal(ht_put(&t, "k", ip, &items[0], 1, &d), TG_ENOMEM);
    assert_int_equal(t.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_matches_key_and_address),
        cmocka_unit_test(test_one_per_key_and_address),
        cmocka_unit_test(test_cap_displaces_oldest),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_address_too_long),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

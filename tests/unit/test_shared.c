/* tests/unit/test_shared.c - gateway/shared.c: the session counts every
 * worker's admission shares. max_sessions is never exceeded whichever
 * order places are taken and given back in; max_sessions_per_client counts
 * per address, minus what the caller says not to count; a place given back
 * is free again at once; threads taking and giving back concurrently never
 * lose a count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/shared.h"
#include "tftpgw/common.h"

static void test_max_sessions(void **state)
{
    struct tg_shared *sh = tg_shared_new();
    char ip[32];

    (void)state;
    assert_non_null(sh);
    for (int i = 0; i < 4; i++) {
        snprintf(ip, sizeof(ip), "10.0.0.%d", i);
        assert_int_equal(tg_shared_reserve(sh, ip, 4, 0, 0), TG_ADMIT_OK);
    }
    assert_int_equal(tg_shared_sessions(sh), 4);
    assert_int_equal(tg_shared_reserve(sh, "10.0.0.9", 4, 0, 0), TG_ADMIT_FULL);
    tg_shared_release(sh, "10.0.0.2");
    assert_int_equal(tg_shared_reserve(sh, "10.0.0.9", 4, 0, 0), TG_ADMIT_OK);
    assert_int_equal(tg_shared_reserve(sh, "10.0.0.8", 4, 0, 0), TG_ADMIT_FULL);
    assert_int_equal(tg_shared_sessions(sh), 4);
    tg_shared_free(sh);
}

static void test_per_client(void **state)
{
    struct tg_shared *sh = tg_shared_new();

    (void)state;
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 2, 0), TG_ADMIT_OK);
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 2, 0), TG_ADMIT_OK);
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 2, 0), TG_ADMIT_CLIENT);
    /* another address is not touched */
    assert_int_equal(tg_shared_reserve(sh, "::2", 100, 2, 0), TG_ADMIT_OK);
    /* one of ::1's two only lingers for a final ACK: it does not count */
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 2, 1), TG_ADMIT_OK);
    assert_int_equal(tg_shared_sessions(sh), 4);
    tg_shared_release(sh, "::1");
    tg_shared_release(sh, "::1");
    tg_shared_release(sh, "::1");
    tg_shared_release(sh, "::2");
    assert_int_equal(tg_shared_sessions(sh), 0);
    /* the per-address entries went with their last session */
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 1, 0), TG_ADMIT_OK);
    assert_int_equal(tg_shared_reserve(sh, "::1", 100, 1, 0), TG_ADMIT_CLIENT);
    tg_shared_release(sh, "::1");
    tg_shared_free(sh);
}

#define ROUNDS 20000

static void churn(void *arg)
{
    struct tg_shared *sh = arg;
    char ip[32];

    for (int i = 0; i < ROUNDS; i++) {
        snprintf(ip, sizeof(ip), "192.0.2.%d", i % 7);
        if (tg_shared_reserve(sh, ip, 1000000, 0, 0) == TG_ADMIT_OK)
            tg_shared_release(sh, ip);
    }
}

static void test_threads(void **state)
{
    struct tg_shared *sh = tg_shared_new();
    uv_thread_t t[4];

    (void)state;
    assert_int_equal(tg_shared_reserve(sh, "192.0.2.200", 10, 0, 0), TG_ADMIT_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(uv_thread_create(&t[i], churn, sh), 0);
    for (int i = 0; i < 4; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(tg_shared_sessions(sh), 1);
    tg_shared_release(sh, "192.0.2.200");
    assert_int_equal(tg_shared_sessions(sh), 0);
    tg_shared_free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_sessions),
        cmocka_unit_test(test_per_client),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

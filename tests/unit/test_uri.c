/* tests/unit/test_uri.c - URL path encoding, byte-exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/uri.h"

static void test_table(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"pxelinux.0", "pxelinux.0"},
        {"a/b/c", "a/b/c"},
        {"with space", "with%20space"},
        {"q?x=1#frag", "q%3Fx%3D1%23frag"},
        {"%2e%2e/x", "%252e%252e/x"},
        {"caf\xc3\xa9", "caf%C3%A9"},
        {"A-Z_a.z~0", "A-Z_a.z~0"},
        {"plus+amp&", "plus%2Bamp%26"},
        {"@:;", "%40%3A%3B"},
        {"", ""},
    };
    char out[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = tg_uri_encode_path(cases[i].in, out, sizeof(out));

        assert_int_equal(n, (int)strlen(cases[i].out));
        assert_string_equal(out, cases[i].out);
    }
}

static void test_capacity(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(tg_uri_encode_path("abcdefg", out, sizeof(out)), 7);
    assert_int_equal(tg_uri_encode_path("abcdefgh", out, sizeof(out)), TG_ENAMETOOLONG);
    assert_int_equal(tg_uri_encode_path("abcd ", out, sizeof(out)), 7);
    assert_string_equal(out, "abcd%20");
    assert_int_equal(tg_uri_encode_path("abcde ", out, sizeof(out)), TG_ENAMETOOLONG);
    assert_int_equal(tg_uri_encode_path("a", out, 1), TG_ENAMETOOLONG);
}

static void test_component(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(tg_uri_encode_component("a/b+c=d", out, sizeof(out)), 13);
    assert_string_equal(out, "a%2Fb%2Bc%3Dd");
    assert_int_equal(tg_uri_encode_component("VXBsb2FkIElE-._~", out, sizeof(out)), 16);
    assert_string_equal(out, "VXBsb2FkIElE-._~");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_component),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_sha256.c - gateway/sha256.c against the test vectors of
 * FIPS 180-4's examples (also in RFC 6234 section 8.5): "abc", the empty
 * message, the 448-bit two-block message, and one million 'a'; plus the
 * same digests fed in uneven pieces, across block boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/sha256.h"

#define TWO_BLOCK "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

static const char *const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char *const EMPTY =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *const TWO =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char *const MILLION =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void hex_of(const uint8_t d[TG_SHA256_LEN], char out[65])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < TG_SHA256_LEN; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[64] = '\0';
}

static void test_abc(void **state)
{
    char h[65];

    (void)state;
    tg_sha256_hex("abc", 3, h);
    assert_string_equal(h, ABC);
}

static void test_empty(void **state)
{
    char h[65];

    (void)state;
    tg_sha256_hex("", 0, h);
    assert_string_equal(h, EMPTY);
}

/* 448 bits: the padding no longer fits the block, a second one follows. */
static void test_two_blocks(void **state)
{
    char h[65];

    (void)state;
    assert_int_equal(strlen(TWO_BLOCK), 56);
    tg_sha256_hex(TWO_BLOCK, 56, h);
    assert_string_equal(h, TWO);
}

static void test_million_a(void **state)
{
    struct tg_sha256 c;
    uint8_t d[TG_SHA256_LEN], chunk[1000];
    char h[65];
    char *all = malloc(1000000);

    (void)state;
    assert_non_null(all);
    memset(all, 'a', 1000000);
    tg_sha256_hex(all, 1000000, h);
    assert_string_equal(h, MILLION);
    /* The same in 1000-byte updates. */
    memset(chunk, 'a', sizeof(chunk));
    tg_sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        tg_sha256_update(&c, chunk, sizeof(chunk));
    tg_sha256_final(&c, d);
    hex_of(d, h);
    assert_string_equal(h, MILLION);
    free(all);
}

/* Every split of the two-block message into two updates gives one digest:
 * the block buffer carries partial blocks correctly. */
static void test_splits(void **state)
{
    struct tg_sha256 c;
    uint8_t d[TG_SHA256_LEN];
    char h[65];

    (void)state;
    for (size_t cut = 0; cut <= 56; cut++) {
        tg_sha256_init(&c);
        tg_sha256_update(&c, TWO_BLOCK, cut);
        tg_sha256_update(&c, TWO_BLOCK + cut, 56 - cut);
        tg_sha256_final(&c, d);
        hex_of(d, h);
        assert_string_equal(h, TWO);
    }
    /* Byte by byte. */
    tg_sha256_init(&c);
    for (size_t i = 0; i < 3; i++)
        tg_sha256_update(&c, "abc" + i, 1);
    tg_sha256_final(&c, d);
    hex_of(d, h);
    assert_string_equal(h, ABC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_two_blocks),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_splits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

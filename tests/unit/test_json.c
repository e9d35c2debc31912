/* tests/unit/test_json.c - gateway/json.c: JSON string escaping of names a
 * client chose (quotes, backslashes, control bytes, invalid UTF-8), the
 * snprintf-like length contract, and the growing buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/json.h"

static void expect(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t got = tg_json_escape(in, n, out, sizeof(out));

    assert_string_equal(out, want);
    assert_int_equal(got, strlen(want));
    assert_int_equal(tg_json_escape(in, n, NULL, 0), strlen(want));
}

static void test_plain(void **state)
{
    (void)state;
    expect("", 0, "");
    expect("pxelinux.0", 10, "pxelinux.0");
    expect("a/b c-d_e", 9, "a/b c-d_e");
}

static void test_quotes_backslash_controls(void **state)
{
    (void)state;
    expect("a\"b", 3, "a\\\"b");
    expect("a\\b", 3, "a\\\\b");
    expect("\n\r\t\x01\x1f\x7f", 6, "\\u000a\\u000d\\u0009\\u0001\\u001f\\u007f");
    expect("<script>&", 9, "\\u003cscript\\u003e\\u0026");
    /* a NUL inside the counted bytes is escaped, not an end */
    expect("a\0b", 3, "a\\u0000b");
}

static void test_utf8(void **state)
{
    (void)state;
    expect("caf\xc3\xa9", 5, "caf\xc3\xa9");                   /* U+00E9 */
    expect("\xe2\x82\xac", 3, "\xe2\x82\xac");                 /* U+20AC */
    expect("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");         /* U+1F600 */
    expect("\xef\xbf\xbf", 3, "\xef\xbf\xbf");                 /* U+FFFF */
    expect("\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf");         /* U+10FFFF */
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    expect("\x80", 1, "\\u0080");                     /* stray continuation */
    expect("\xff\xfe", 2, "\\u00ff\\u00fe");          /* never in UTF-8 */
    expect("\xc0\xaf", 2, "\\u00c0\\u00af");          /* overlong '/' */
    expect("\xe0\x80\xaf", 3, "\\u00e0\\u0080\\u00af"); /* overlong, 3 bytes */
    expect("\xed\xa0\x80", 3, "\\u00ed\\u00a0\\u0080"); /* a surrogate */
    expect("\xf4\x90\x80\x80", 4, "\\u00f4\\u0090\\u0080\\u0080"); /* > U+10FFFF */
    expect("\xc3", 1, "\\u00c3");                     /* truncated at the end */
    expect("\xc3x", 2, "\\u00c3x");                   /* cut short: resync */
    expect("\xe2\x82", 2, "\\u00e2\\u0082");
}

static void test_truncation(void **state)
{
    char out[5];
    size_t got;

    (void)state;
    memset(out, 'Z', sizeof(out));
    got = tg_json_escape("abcdefgh", 8, out, sizeof(out));
    assert_int_equal(got, 8);
    assert_string_equal(out, "abcd");
    /* an escape that does not fit is cut, never overruns */
    memset(out, 'Z', sizeof(out));
    got = tg_json_escape("a\"\"", 3, out, sizeof(out));
    assert_int_equal(got, 5);
    assert_string_equal(out, "a\\\"\\");
    got = tg_json_escape("abc", 3, out, 0);
    assert_int_equal(got, 3);
}

static void test_jbuf(void **state)
{
    struct tg_jbuf b = {0};
    char big[10000];

    (void)state;
    tg_jbuf_str(&b, "{\"f\":");
    tg_jbuf_jstr(&b, "q\"\\\x01\xff");
    tg_jbuf_printf(&b, ",\"n\":%d,\"x\":", 42);
    tg_jbuf_jstr(&b, NULL);
    tg_jbuf_str(&b, "}");
    assert_false(b.oom);
    assert_string_equal(b.p, "{\"f\":\"q\\\"\\\\\\u0001\\u00ff\",\"n\":42,\"x\":null}");
    assert_int_equal(b.len, strlen(b.p));
    /* growth past the first allocation keeps everything */
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    b.len = 0;
    tg_jbuf_jstr(&b, big);
    assert_false(b.oom);
    assert_int_equal(b.len, 2 + 2 * (sizeof(big) - 1));
    assert_int_equal(b.p[0], '"');
    assert_int_equal(b.p[b.len - 1], '"');
    assert_int_equal(b.p[b.len], '\0');
    tg_free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quotes_backslash_controls),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_jbuf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

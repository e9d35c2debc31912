/* tests/unit/test_path.c - filename normalisation and traversal refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tftpgw/path.h"

#define CANARY 'Z'

static const struct {
    const char *in;
    int rc;
    const char *out; /* expected result when rc == 0 */
} cases[] = {
    /* traversal attempts */
    { "../x", TG_EACCES, NULL },
    { "a/../../x", TG_EACCES, NULL },
    { "..", TG_EACCES, NULL },
    { "../", TG_EACCES, NULL },
    { "/..", TG_EACCES, NULL },
    { "..\\x", TG_EACCES, NULL },
    { "a\\..\\b", TG_EACCES, NULL },
    { "a/b/..", TG_EACCES, NULL },       /* refused even if it stays inside */
    { "a/../b", TG_EACCES, NULL },
    { "x/./../y", TG_EACCES, NULL },
    { "a/..\\", TG_EACCES, NULL },
    /* absolute and redundant forms: relative to the root */
    { "/etc/passwd", 0, "etc/passwd" },
    { "//x", 0, "x" },
    { "./x", 0, "x" },
    { "a/./b", 0, "a/b" },
    { "a//b", 0, "a/b" },
    { "a/", 0, "a" },
    { "a/b/", 0, "a/b" },
    { "/./a/./", 0, "a" },
    { "a/.", 0, "a" },
    { "\\x", 0, "x" },
    { "a\\b", 0, "a/b" },
    { "\\\\server\\share\\f", 0, "server/share/f" },
    { "boot\\x64\\wdsnbp.com", 0, "boot/x64/wdsnbp.com" },
    { "a\\/\\b", 0, "a/b" },
    /* dots that are not a ".." segment are plain names */
    { "...", 0, "..." },
    { "..foo", 0, "..foo" },
    { "foo..", 0, "foo.." },
    { ".hidden", 0, ".hidden" },
    { "a/.../b", 0, "a/.../b" },
    { ". ", 0, ". " },
    { ".. ", 0, ".. " },
    /* '%' is not special: no URL decoding happens here */
    { "%2e%2e/x", 0, "%2e%2e/x" },
    { "%2f", 0, "%2f" },
    { "my file.txt", 0, "my file.txt" },
    { "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", 0, "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff" },
    /* control characters */
    { "a\x01" "b", TG_EACCES, NULL },
    { "\x01", TG_EACCES, NULL },
    { "a\x7f", TG_EACCES, NULL },
    { "a\tb", TG_EACCES, NULL },
    { "a\nb", TG_EACCES, NULL },
    { "a\rb", TG_EACCES, NULL },
    { "x\x1f", TG_EACCES, NULL },
    { "\x1b[2J", TG_EACCES, NULL },
    { "/\x01/", TG_EACCES, NULL },
    /* UTF-8 */
    { "\xc0\xae\xc0\xae/x", TG_EACCES, NULL },  /* overlong "..": refused */
    { "\xc0\xaf", TG_EACCES, NULL },            /* overlong '/' */
    { "\xc1\xbf", TG_EACCES, NULL },
    { "\xe0\x80\xae", TG_EACCES, NULL },        /* 3-byte overlong '.' */
    { "\xe0\x9f\xbf", TG_EACCES, NULL },        /* 3-byte overlong U+07FF */
    { "\xf0\x80\x80\xae", TG_EACCES, NULL },    /* 4-byte overlong '.' */
    { "\xf0\x8f\xbf\xbf", TG_EACCES, NULL },    /* 4-byte overlong U+FFFF */
    { "\xed\xa0\x80", TG_EACCES, NULL },        /* surrogate U+D800 */
    { "\xed\xbf\xbf", TG_EACCES, NULL },        /* surrogate U+DFFF */
    { "\xf4\x90\x80\x80", TG_EACCES, NULL },    /* U+110000 */
    { "\xf5\x80\x80\x80", TG_EACCES, NULL },
    { "\xff", TG_EACCES, NULL },
    { "\xfe", TG_EACCES, NULL },
    { "a\xff" "b", TG_EACCES, NULL },
    { "\x80", TG_EACCES, NULL },                /* lone continuation */
    { "\xc3", TG_EACCES, NULL },                /* truncated at the end */
    { "\xc3/x", TG_EACCES, NULL },              /* truncated before '/' */
    { "\xe2\x82", TG_EACCES, NULL },
    { "\xe2\x82/", TG_EACCES, NULL },
    { "\xf0\x9f\x98", TG_EACCES, NULL },
    { "\xc3\xa9\xa9", TG_EACCES, NULL },        /* stray continuation */
    { "caf\xc3\xa9", 0, "caf\xc3\xa9" },
    { "/dir\xc3\xa9/f\xc3\xbc.bin", 0, "dir\xc3\xa9/f\xc3\xbc.bin" },
    { "\xe2\x82\xac", 0, "\xe2\x82\xac" },      /* U+20AC */
    { "\xe0\xa0\x80", 0, "\xe0\xa0\x80" },      /* U+0800, smallest 3-byte */
    { "\xed\x9f\xbf", 0, "\xed\x9f\xbf" },      /* U+D7FF */
    { "\xee\x80\x80", 0, "\xee\x80\x80" },      /* U+E000 */
    { "\xef\xbf\xbf", 0, "\xef\xbf\xbf" },      /* U+FFFF */
    { "\xf0\x90\x80\x80", 0, "\xf0\x90\x80\x80" }, /* U+10000 */
    { "\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80" },
    { "\xf4\x8f\xbf\xbf", 0, "\xf4\x8f\xbf\xbf" }, /* U+10FFFF */
    /* U+0080 is a C1 control, but the header only names < 0x20 and 0x7f */
    { "\xc2\x80", 0, "\xc2\x80" },
    /* nothing left */
    { "", TG_ENOENT, NULL },
    { "/", TG_ENOENT, NULL },
    { "//", TG_ENOENT, NULL },
    { ".", TG_ENOENT, NULL },
    { "./", TG_ENOENT, NULL },
    { "/./.", TG_ENOENT, NULL },
    { "\\", TG_ENOENT, NULL },
    { "./\\.", TG_ENOENT, NULL },
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        char out[TG_PATH_MAX + 8];
        int rc;

        memset(out, CANARY, sizeof(out));
        rc = tg_path_normalize(cases[i].in, out, TG_PATH_MAX);
        if (rc != cases[i].rc)
            print_error("case %zu: input \"%s\"\n", i, cases[i].in);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(out, cases[i].out);
            assert_int_equal(out[strlen(out) + 1], CANARY);
            /* normalising a normalised path is the identity */
            {
                char again[TG_PATH_MAX];

                assert_int_equal(tg_path_normalize(out, again, sizeof(again)), 0);
                assert_string_equal(again, out);
            }
        } else {
            assert_int_equal(out[0], '\0');
        }
    }
}

/* Properties the header promises for every accepted result. */
static void test_result_shape(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        char out[TG_PATH_MAX];
        const char *p;

        if (tg_path_normalize(cases[i].in, out, sizeof(out)) != 0)
            continue;
        assert_true(out[0] != '/' && out[0] != '\0');
        assert_null(strstr(out, "//"));
        assert_null(strchr(out, '\\'));
        assert_int_not_equal(out[strlen(out) - 1], '/');
        for (p = out; *p;) {
            size_t n = strcspn(p, "/");

            assert_false(n == 1 && p[0] == '.');
            assert_false(n == 2 && p[0] == '.' && p[1] == '.');
            p += n;
            if (*p == '/')
                p++;
        }
    }
}

static void fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void test_lengths(void **state)
{
    static char in[4096], out[4096];

    (void)state;
    /* a 2000-char name */
    fill(in, 'a', 2000);
    memset(out, CANARY, sizeof(out));
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), TG_ENAMETOOLONG);
    assert_int_equal(out[0], '\0');

    /* TG_PATH_MAX - 1 fits, TG_PATH_MAX does not, whatever cap says */
    fill(in, 'b', TG_PATH_MAX - 1);
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), TG_PATH_MAX - 1);
    assert_int_equal(tg_path_normalize(in, out, TG_PATH_MAX), 0);
    assert_int_equal(tg_path_normalize(in, out, TG_PATH_MAX - 1),
                     TG_ENAMETOOLONG);
    fill(in, 'b', TG_PATH_MAX);
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), TG_ENAMETOOLONG);

    /* the limit applies to the result, not the input */
    memset(in, '/', 2000);
    strcpy(in + 2000, "file");
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), 0);
    assert_string_equal(out, "file");
    for (size_t i = 0; i < 1000; i++)
        memcpy(in + 2 * i, "./", 2);
    strcpy(in + 2000, "x//y");
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), 0);
    assert_string_equal(out, "x/y");

    /* separators count once they are kept */
    fill(in, 'c', TG_PATH_MAX - 3);
    strcat(in, "/d");                  /* result TG_PATH_MAX - 1 long */
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), 0);
    strcat(in, "d");
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), TG_ENAMETOOLONG);

    /* a refusal wins over the length, wherever the bad part is */
    fill(in, 'e', 2000);
    memcpy(in + 1500, "/../", 4);
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), TG_EACCES);
    fill(in, 'e', 2000);
    in[1999] = '\x01';
    assert_int_equal(tg_path_normalize(in, out, sizeof(out)), TG_EACCES);
}

static void test_small_cap(void **state)
{
    static const struct {
        const char *in;
        size_t cap;
        int rc;
        const char *out;
    } small[] = {
        { "abc", 4, 0, "abc" },
        { "abc", 3, TG_ENAMETOOLONG, NULL },
        { "abc", 1, TG_ENAMETOOLONG, NULL },
        { "/a", 2, 0, "a" },
        { "a/b", 4, 0, "a/b" },
        { "a/b", 3, TG_ENAMETOOLONG, NULL },
        { "a//b/", 4, 0, "a/b" },
        { "caf\xc3\xa9", 6, 0, "caf\xc3\xa9" },
        { "caf\xc3\xa9", 5, TG_ENAMETOOLONG, NULL },
        { "../x", 1, TG_EACCES, NULL },
        { "/", 1, TG_ENOENT, NULL },
    };

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(small); i++) {
        char out[16];
        int rc;

        memset(out, CANARY, sizeof(out));
        rc = tg_path_normalize(small[i].in, out, small[i].cap);
        assert_int_equal(rc, small[i].rc);
        if (rc == 0)
            assert_string_equal(out, small[i].out);
        else
            assert_int_equal(out[0], '\0');
        /* never a byte past cap */
        for (size_t j = small[i].cap; j < sizeof(out); j++)
            assert_int_equal(out[j], CANARY);
    }

    /* cap 0: nothing is written at all */
    {
        char out[2] = { CANARY, CANARY };

        assert_int_equal(tg_path_normalize("a", out, 0), TG_ENAMETOOLONG);
        assert_int_equal(tg_path_normalize("", out, 0), TG_ENOENT);
        assert_int_equal(tg_path_normalize("..", out, 0), TG_EACCES);
        assert_int_equal(out[0], CANARY);
    }
}

static void test_null_args(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(tg_path_normalize(NULL, out, sizeof(out)), TG_EINVAL);
    assert_int_equal(tg_path_normalize("a", NULL, 8), TG_EINVAL);
}

static void test_basename(void **state)
{
    static const struct {
        const char *norm;
        size_t off; /* where the basename starts */
    } b[] = {
        { "a/b/c", 4 },
        { "c", 0 },
        { "dir/file.bin", 4 },
        { "pxelinux.cfg/default", 13 },
        { "caf\xc3\xa9/x", 6 },
    };

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(b); i++)
        assert_ptr_equal(tg_path_basename(b[i].norm), b[i].norm + b[i].off);
}

static void test_lower(void **state)
{
    char a[] = "Boot/X64/WdsNbp.COM", b[] = "\xc3\x89t\xc3\xa9-Z@[`{", c[] = "";

    (void)state;
    tg_path_lower(a);
    assert_string_equal(a, "boot/x64/wdsnbp.com");
    /* ASCII only: UTF-8 bytes and the neighbours of A-Z are kept */
    tg_path_lower(b);
    assert_string_equal(b, "\xc3\x89t\xc3\xa9-z@[`{");
    tg_path_lower(c);
    assert_string_equal(c, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_result_shape),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_small_cap),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_basename),
        cmocka_unit_test(test_lower),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

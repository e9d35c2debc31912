/* tests/unit/test_http_config.c - the http backend's configuration keys:
 * exact error messages, defaults, ${VAR} expansion; the redirect policy
 * both backend types share (backends/http.c). No request is made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../backends/http_engine.h"
#include "tftpgw/backend.h"

static int create(const char *const *kv, size_t n, char *err, size_t errlen,
                  struct tg_backend **out)
{
    struct tg_kv kvs[8];
    struct tg_backend_cfg cfg;
    uv_loop_t loop;
    int rc;
    size_t i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.name = (char *)"web";
    cfg.type = (char *)"http";
    cfg.line = 3;
    for (i = 0; i < n; i++) {
        kvs[i].key = (char *)kv[2 * i];
        kvs[i].value = (char *)kv[2 * i + 1];
        kvs[i].line = 4 + (int)i;
    }
    cfg.kv = kvs;
    cfg.nkv = n;
    uv_loop_init(&loop);
    err[0] = '\0';
    rc = tg_backend_create(&loop, &cfg, out, err, errlen);
    if (rc == 0) {
        tg_backend_destroy(*out);
        *out = NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return rc;
}

static void test_errors(void **state)
{
    static const struct {
        const char *kv[4];
        size_t n;
        const char *msg;
    } cases[] = {
        {{"insecure", "no"}, 1, "line 3: url: required for an http backend"},
        {{"url", "ftp://x/"}, 1, "line 4: url: must start with http:// or https://"},
        {{"url", "http://x/", "header", "NoColon"}, 2, "line 5: header: expected \"Name: value\""},
        {{"url", "http://x/", "header", "A: ${TG_TEST_UNSET_VAR}"}, 2,
         "line 5: header: environment variable TG_TEST_UNSET_VAR is not set"},
        {{"url", "http://x/", "header", "A: ${OPEN"}, 2, "line 5: header: unterminated ${...}"},
        {{"url", "http://x/", "connect_timeout", "5"}, 2,
         "line 5: connect_timeout: 5 is out of range 100ms..10m"},
        {{"url", "http://x/", "stall_timeout", "abc"}, 2,
         "line 5: stall_timeout: \"abc\" is not a duration (a number of milliseconds, or 500ms, "
         "30s, 5m, 1h, 1d)"},
        {{"url", "http://x/", "max_redirects", "51"}, 2, "line 5: max_redirects: 0..50"},
        {{"url", "http://x/", "redirects", "all"}, 2,
         "line 5: redirects: same-origin, any or none"},
        {{"url", "http://x/", "redirects", ""}, 2, "line 5: redirects: same-origin, any or none"},
        {{"url", "http://x/", "max_connections", "0"}, 2, "line 5: max_connections: 1..10000"},
        {{"url", "http://x/", "max_connections", "10001"}, 2,
         "line 5: max_connections: 1..10000"},
        {{"url", "http://x/", "max_connections", "-1"}, 2, "line 5: max_connections: 1..10000"},
        {{"url", "http://x/", "insecure", "maybe"}, 2, "line 5: insecure: invalid value"},
        {{"url", "http://x/", "root", "/srv"}, 2, "line 5: root: unknown key for an http backend"},
    };
    struct tg_backend *b = NULL;
    char err[256];
    long live = tg_alloc_live();
    size_t i;

    (void)state;
    unsetenv("TG_TEST_UNSET_VAR");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(create(cases[i].kv, cases[i].n, err, sizeof(err), &b), TG_EINVAL);
        assert_string_equal(err, cases[i].msg);
        assert_int_equal(tg_alloc_live(), live);
    }
}

static void test_valid(void **state)
{
    const char *kv[] = {"url", "https://repo.example/boot", "header", "Authorization: Bearer ${TG_TEST_TOKEN}",
                        "insecure", "yes", "stall_timeout", "1500", "max_connections", "10000"};
    struct tg_backend *b = NULL;
    char err[256];
    long live = tg_alloc_live();

    (void)state;
    setenv("TG_TEST_TOKEN", "s3cret", 1);
    assert_int_equal(create(kv, 5, err, sizeof(err), &b), 0);
    assert_string_equal(err, "");
    assert_int_equal(tg_alloc_live(), live);
}

static void test_redirects_key(void **state)
{
    struct hx_conf c;
    char why[160];

    (void)state;
    hx_conf_init(&c);
    assert_int_equal(c.redirects, HX_REDIR_SAME_ORIGIN); /* the default */
    assert_int_equal(c.max_redirects, 5);
    assert_int_equal(hx_conf_key(&c, "redirects", "any", why, sizeof(why)), 1);
    assert_int_equal(c.redirects, HX_REDIR_ANY);
    assert_int_equal(hx_conf_key(&c, "redirects", "none", why, sizeof(why)), 1);
    assert_int_equal(c.redirects, HX_REDIR_NONE);
    assert_int_equal(hx_conf_key(&c, "redirects", "same-origin", why, sizeof(why)), 1);
    assert_int_equal(c.redirects, HX_REDIR_SAME_ORIGIN);
    hx_conf_free(&c);
}

static void test_same_origin(void **state)
{
    (void)state;
    assert_true(hx_same_origin("http://a.example/x", "http://a.example/y/z?q"));
    assert_true(hx_same_origin("http://A.Example/x", "HTTP://a.example:80/y"));
    assert_true(hx_same_origin("https://a.example/x", "https://a.example:443/"));
    assert_true(hx_same_origin("http://u:p@127.0.0.1:8080/b/", "http://127.0.0.1:8080/c"));
    assert_true(hx_same_origin("http://[::1]:81/", "http://[::1]:81/x"));
    assert_false(hx_same_origin("http://a.example/x", "https://a.example/x"));
    assert_false(hx_same_origin("http://a.example/x", "http://a.example:8080/x"));
    assert_false(hx_same_origin("http://a.example/x", "http://b.example/x"));
    assert_false(hx_same_origin("http://a.example/x", "http://a.example.evil/x"));
    assert_false(hx_same_origin("http://127.0.0.1:8080/", "http://127.0.0.1:8081/"));
    assert_false(hx_same_origin("http://a.example/", "http://a.example@b.example/"));
    assert_false(hx_same_origin("http://a.example/", "not a url"));
}

static void test_redirect_check(void **state)
{
    static const struct {
        enum hx_redirects policy;
        long max;
        int hops;
        const char *origin, *to;
        int rc;
        bool foreign;
        const char *why;
    } cases[] = {
        {HX_REDIR_SAME_ORIGIN, 5, 0, "http://h:1/a", "http://h:1/b", 0, false, ""},
        {HX_REDIR_SAME_ORIGIN, 5, 4, "http://h:1/a", "http://h:1/b", 0, false, ""},
        {HX_REDIR_SAME_ORIGIN, 5, 5, "http://h:1/a", "http://h:1/b", TG_EINVAL, false,
         "more than max_redirects = 5"},
        {HX_REDIR_SAME_ORIGIN, 0, 0, "http://h:1/a", "http://h:1/b", TG_EINVAL, false,
         "more than max_redirects = 0"},
        {HX_REDIR_SAME_ORIGIN, 5, 0, "http://h:1/a", "http://h:2/b", TG_EINVAL, true,
         "another origin (redirects = same-origin)"},
        {HX_REDIR_SAME_ORIGIN, 5, 0, "http://h:1/a", "http://evil/b", TG_EINVAL, true,
         "another origin (redirects = same-origin)"},
        {HX_REDIR_ANY, 5, 0, "http://h:1/a", "http://evil/b", 0, true, ""},
        {HX_REDIR_ANY, 5, 0, "http://h:1/a", "https://evil/b", 0, true, ""},
        {HX_REDIR_ANY, 5, 0, "http://h:1/a", "http://h:1/b", 0, false, ""},
        {HX_REDIR_ANY, 5, 0, "https://h/a", "http://h/b", TG_EINVAL, false,
         "would leave https for http"},
        {HX_REDIR_ANY, 5, 0, "http://h/a", "ftp://h/b", TG_EINVAL, false,
         "not an http or https URL"},
        {HX_REDIR_NONE, 5, 0, "http://h:1/a", "http://h:1/b", TG_EINVAL, false,
         "redirects = none"},
    };
    struct hx_conf c;
    char why[160];
    bool foreign;
    size_t i;

    (void)state;
    hx_conf_init(&c);
    for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
        c.redirects = cases[i].policy;
        c.max_redirects = cases[i].max;
        why[0] = '\0';
        assert_int_equal(hx_redirect_check(&c, cases[i].origin, cases[i].to, cases[i].hops,
                                           &foreign, why, sizeof(why)),
                         cases[i].rc);
        assert_string_equal(why, cases[i].why);
        if (cases[i].rc == 0)
            assert_int_equal(foreign, cases[i].foreign);
    }
    hx_conf_free(&c);
}

/* curl's receive buffer: whole blocks, at most 16 KiB, a window larger
 * than that in as few equal recvs as it can. */
static void test_rcvbuf(void **state)
{
    (void)state;
    /* lock-step and small windows: 16 KiB rounded down to whole blocks */
    assert_int_equal(hx_rcvbuf(1468, 1468), 11 * 1468);
    assert_int_equal(hx_rcvbuf(8192, 8192), 16384);
    assert_int_equal(hx_rcvbuf(512, 512), 16384);
    assert_int_equal(hx_rcvbuf(1468, 8 * 1468), 11 * 1468);
    /* windows: windowsize 16 in two recvs of 8 blocks, 64 in six of 11 */
    assert_int_equal(hx_rcvbuf(1468, 16 * 1468), 8 * 1468);
    assert_int_equal(hx_rcvbuf(1468, 64 * 1468), 11 * 1468);
    assert_int_equal(hx_rcvbuf(1024, 32 * 1024), 16 * 1024);
    assert_int_equal(hx_rcvbuf(1024, 24 * 1024), 12 * 1024);
    /* a block of 16 KiB or more: curl's default, the block comes in parts */
    assert_int_equal(hx_rcvbuf(65464, 65464), 16384);
    assert_int_equal(hx_rcvbuf(65464, 8 * 65464), 16384);
    assert_int_equal(hx_rcvbuf(16384, 4 * 16384), 16384);
    /* no session window (a cache fill): curl's default */
    assert_int_equal(hx_rcvbuf(0, 0), 16384);
    assert_int_equal(hx_rcvbuf(1468, 0), 11 * 1468);
    /* never more than 16 KiB, never less than a block */
    for (size_t blk = 8; blk <= 20000; blk += 97)
        for (size_t ws = 1; ws <= 64; ws += 7) {
            size_t b = hx_rcvbuf(blk, blk * ws);

            assert_true(b <= 16384);
            assert_true(b >= (blk < 16384 ? blk : 16384));
            if (blk < 16384)
                assert_int_equal(b % blk, 0);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_redirects_key),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_redirect_check),
        cmocka_unit_test(test_rcvbuf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

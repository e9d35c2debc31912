/* tests/unit/test_s3.c - the S3 backend's pure parts: object URLs (path
 * style and virtual-hosted, prefix, key encoding as SigV4 canonical URIs
 * need it), error documents, configuration errors. No request is made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/backend.h"

/* Internals of backends/s3.c. */
void s3_xml_value(const char *body, const char *tag, char *out, size_t cap);
void s3_map_error(struct tg_error *e, long status, const char *body);
void s3_detail(long status, const char *body, char *out, size_t cap);
int s3_object_url(const struct tg_backend *sb, const char *key, const char *query, char *out,
               size_t cap);

static uv_loop_t loop;

static int create(const char *const *kv, size_t n, char *err, struct tg_backend **out)
{
    static struct tg_kv kvs[12];
    static struct tg_backend_cfg cfg;
    size_t i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.name = (char *)"store";
    cfg.type = (char *)"s3";
    cfg.line = 7;
    for (i = 0; i < n; i++) {
        kvs[i].key = (char *)kv[2 * i];
        kvs[i].value = (char *)kv[2 * i + 1];
        kvs[i].line = 8 + (int)i;
    }
    cfg.kv = kvs;
    cfg.nkv = n;
    err[0] = '\0';
    return tg_backend_create(&loop, &cfg, out, err, 256);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop);
}

static void url_of(const char *const *kv, size_t n, const char *key, const char *query,
                   const char *want)
{
    struct tg_backend *b = NULL;
    char err[256], url[2048];

    assert_int_equal(create(kv, n, err, &b), 0);
    assert_int_equal(s3_object_url(b, key, query, url, sizeof(url)), 0);
    assert_string_equal(url, want);
    tg_backend_destroy(b);
}

static void test_urls(void **state)
{
    const char *path_style[] = {"endpoint", "http://127.0.0.1:4569", "bucket", "test-bucket",
                                "access_key", "AK", "secret_key", "SK"};
    const char *aws[] = {"bucket", "configs", "region", "eu-west-1", "access_key", "AK",
                         "secret_key", "SK", "prefix", "site a/"};
    const char *aws_path[] = {"bucket", "configs", "region", "eu-west-1", "access_key", "AK",
                              "secret_key", "SK", "path_style", "yes"};
    const char *minio_virtual[] = {"endpoint", "https://minio.lan:9000/", "bucket", "bk1",
                                   "access_key", "AK", "secret_key", "SK", "path_style", "no"};

    (void)state;
    /* Self-hosted endpoint: path style by default. */
    url_of(path_style, 4, "pxe/vmlinuz", NULL, "http://127.0.0.1:4569/test-bucket/pxe/vmlinuz");
    /* Keys as SigV4 canonical URIs want them: unreserved kept, the rest
     * %XX upper case, '/' kept; '+' and space never mean each other. */
    url_of(path_style, 4, "my file+(1).txt", NULL,
           "http://127.0.0.1:4569/test-bucket/my%20file%2B%281%29.txt");
    url_of(path_style, 4, "caf\xc3\xa9/r1.cfg", NULL,
           "http://127.0.0.1:4569/test-bucket/caf%C3%A9/r1.cfg");
    url_of(path_style, 4, "k", "?partNumber=2&uploadId=a%2Fb",
           "http://127.0.0.1:4569/test-bucket/k?partNumber=2&uploadId=a%2Fb");
    /* AWS: virtual-hosted by default; prefix applied and encoded. */
    url_of(aws, 5, "10.0.0.1/r1.cfg", NULL,
           "https://configs.s3.eu-west-1.amazonaws.com/site%20a/10.0.0.1/r1.cfg");
    url_of(aws_path, 5, "x", NULL, "https://s3.eu-west-1.amazonaws.com/configs/x");
    url_of(minio_virtual, 5, "x", NULL, "https://bk1.minio.lan:9000/x");
}

/* The prefix is a folder: without its '/', "tftp" plus a key "-private/x"
 * would be the sibling tftp-private/x (invariant 5). */
static void test_prefix_is_a_folder(void **state)
{
    const char *bare[] = {"endpoint", "http://127.0.0.1:4569", "bucket", "bucket",
                          "access_key", "AK", "secret_key", "SK", "prefix", "tftp"};
    const char *slash[] = {"endpoint", "http://127.0.0.1:4569", "bucket", "bucket",
                           "access_key", "AK", "secret_key", "SK", "prefix", "tftp/"};
    const char *deep[] = {"endpoint", "http://127.0.0.1:4569", "bucket", "bucket",
                          "access_key", "AK", "secret_key", "SK", "prefix", "a/b"};
    const char *none[] = {"endpoint", "http://127.0.0.1:4569", "bucket", "bucket",
                          "access_key", "AK", "secret_key", "SK", "prefix", ""};

    (void)state;
    url_of(bare, 5, "-private/secret.txt", NULL,
           "http://127.0.0.1:4569/bucket/tftp/-private/secret.txt");
    url_of(bare, 5, "x", NULL, "http://127.0.0.1:4569/bucket/tftp/x");
    url_of(slash, 5, "-private/secret.txt", NULL,
           "http://127.0.0.1:4569/bucket/tftp/-private/secret.txt");
    url_of(deep, 5, "c", NULL, "http://127.0.0.1:4569/bucket/a/b/c");
    url_of(none, 5, "-private/x", NULL, "http://127.0.0.1:4569/bucket/-private/x");
}

static void test_errors(void **state)
{
    static const struct {
        long status;
        const char *body;
        uint16_t code;
        const char *msg;
    } cases[] = {
        {404, "<Error><Code>NoSuchKey</Code></Error>", 1, "file not found"},
        {404, "", 1, "file not found"},
        /* The client's text never names the store's error code: that is
         * for the log (s3_detail). */
        {404, "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>",
         0, "upstream error 404"},
        {403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", 2, "access denied by upstream"},
        {403, "<Error><Code>InvalidAccessKeyId</Code></Error>", 2, "access denied by upstream"},
        {403, "<Error><Code>AccessDenied</Code></Error>", 2, "access denied by upstream"},
        {403, "", 2, "access denied by upstream"},
        {400, "<Error><Code>EntityTooLarge</Code></Error>", 3, "upstream refused the size"},
        {412, "<Error><Code>PreconditionFailed</Code></Error>", 6, "file already exists"},
        {500, "<Error><Code>InternalError</Code></Error>", 0, "upstream error 500"},
        {503, "", 0, "upstream error 503"},
        {503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>", 0,
         "upstream error 503"},
    };
    char detail[128];
    struct tg_error e;
    char v[16];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s3_map_error(&e, cases[i].status, cases[i].body);
        assert_int_equal(e.code, cases[i].code);
        assert_string_equal(e.msg, cases[i].msg);
    }
    s3_detail(404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist"
                   "</Message></Error>", detail, sizeof(detail));
    assert_string_equal(detail, "HTTP 404 NoSuchBucket: The specified bucket does not exist");
    s3_detail(503, "", detail, sizeof(detail));
    assert_string_equal(detail, "HTTP 503");
    s3_xml_value("<A><UploadId>abc</UploadId></A>", "UploadId", v, sizeof(v));
    assert_string_equal(v, "abc");
    s3_xml_value("<UploadId>0123456789abcdefXYZ</UploadId>", "UploadId", v, sizeof(v));
    assert_string_equal(v, "0123456789abcde"); /* truncated, terminated */
    s3_xml_value("<UploadId>open", "UploadId", v, sizeof(v));
    assert_string_equal(v, "");
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *kv[6];
        size_t n;
        const char *msg;
    } cases[] = {
        {{"access_key", "AK", "secret_key", "SK"}, 2, "line 7: bucket: required for an s3 backend"},
        {{"bucket", "bk1"}, 1,
         "line 7: access_key: credentials needed (access_key and secret_key, or "
         "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"},
        {{"bucket", "a b"}, 1, "line 8: bucket: 3..63 characters of a-z 0-9 . - _"},
        {{"bucket", "bk1", "endpoint", "s3.local"}, 2,
         "line 9: endpoint: must start with http:// or https://"},
        {{"bucket", "bk1", "part_size", "1M"}, 2, "line 9: part_size: 5M..5G (S3's part limits)"},
        {{"bucket", "bk1", "prefix", "../x"}, 2, "line 9: prefix: no leading '/', no '..'"},
        {{"bucket", "bk1", "spool_dir", "tmp"}, 2, "line 9: spool_dir: an absolute directory"},
        {{"bucket", "bk1", "url", "http://x/"}, 2, "line 9: url: unknown key for an s3 backend"},
        {{"bucket", "bk1", "access_key", "${TG_UNSET_KEY}", "secret_key", "SK"}, 3,
         "line 7: credentials: environment variable TG_UNSET_KEY is not set"},
    };
    struct tg_backend *b = NULL;
    char err[256];
    long live = tg_alloc_live();
    size_t i;

    (void)state;
    unsetenv("TG_UNSET_KEY");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(create(cases[i].kv, cases[i].n, err, &b), TG_EINVAL);
        assert_string_equal(err, cases[i].msg);
        assert_int_equal(tg_alloc_live(), live);
    }
}

static void test_env_credentials(void **state)
{
    const char *kv[] = {"bucket", "bk1", "endpoint", "http://127.0.0.1:1"};
    struct tg_backend *b = NULL;
    char err[256];

    (void)state;
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    assert_int_equal(create(kv, 2, err, &b), 0);
    tg_backend_destroy(b);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_prefix_is_a_folder),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_env_credentials),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}

/* tests/unit/test_cachectl.c - gateway/cachectl.c: the response fields a
 * shared cache obeys (RFC 9111 section 5) and the freshness they give
 * (section 4.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/cachectl.h"

/* Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 section 5.6.7's example) */
#define T0 784111777LL

static void feed(struct tg_cache_control *c, const char *line)
{
    tg_cc_header(c, line, strlen(line));
}

static struct tg_cache_control parse(const char *a, const char *b, const char *c3)
{
    struct tg_cache_control c;

    tg_cc_init(&c);
    if (a)
        feed(&c, a);
    if (b)
        feed(&c, b);
    if (c3)
        feed(&c, c3);
    return c;
}

static void test_nothing_said(void **state)
{
    struct tg_cache_control c = parse("Content-Type: text/plain\r\n", "ETag: \"x\"\r\n", NULL);

    (void)state;
    assert_false(c.no_store || c.private_ || c.no_cache || c.vary_star);
    assert_int_equal(c.max_age, -1);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), -1);
    assert_null(tg_cc_unstorable(&c, true));
}

static void test_no_store_private(void **state)
{
    struct tg_cache_control c = parse("Cache-Control: no-store\r\n", NULL, NULL);

    (void)state;
    assert_true(c.no_store);
    assert_string_equal(tg_cc_unstorable(&c, false), "Cache-Control no-store");
    c = parse("cache-control: PRIVATE\r\n", NULL, NULL);
    assert_true(c.private_);
    assert_string_equal(tg_cc_unstorable(&c, false), "Cache-Control private");
    /* qualified private: nothing of it is kept either */
    c = parse("Cache-Control: private=\"Set-Cookie\", max-age=60\r\n", NULL, NULL);
    assert_true(c.private_);
    assert_int_equal(c.max_age, 60);
}

static void test_no_cache_and_max_age_zero(void **state)
{
    struct tg_cache_control c = parse("Cache-Control: no-cache\r\n", NULL, NULL);

    (void)state;
    assert_true(c.no_cache);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    assert_null(tg_cc_unstorable(&c, true)); /* stored, revalidated every time */
    c = parse("Cache-Control: max-age=60, no-cache\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    c = parse("Cache-Control: max-age=0\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
}

static void test_max_age_and_s_maxage(void **state)
{
    struct tg_cache_control c = parse("Cache-Control: public, max-age=120\r\n", NULL, NULL);

    (void)state;
    assert_int_equal(c.max_age, 120);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 120000);
    /* s-maxage wins over max-age for a shared cache (section 5.2.2.10),
     * whichever comes first */
    c = parse("Cache-Control: max-age=120, s-maxage=30\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 30000);
    c = parse("Cache-Control: s-maxage=5,max-age=999\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 5000);
    /* and over Expires */
    c = parse("Cache-Control: max-age=7\r\n", "Expires: Sun, 06 Nov 1994 09:49:37 GMT\r\n",
              "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 7000);
    /* an argument that is no number: stale */
    c = parse("Cache-Control: max-age=soon\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    /* too large: 2^31 seconds (section 1.2.2) */
    c = parse("Cache-Control: max-age=99999999999999999999999\r\n", NULL, NULL);
    assert_int_equal(c.max_age, 2147483648LL);
}

static void test_expires_and_date(void **state)
{
    struct tg_cache_control c = parse("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                                      "Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n", NULL);

    (void)state;
    assert_int_equal(c.date, T0);
    assert_int_equal(c.expires, T0 + 60);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 60000);
    /* received 10 s after Date: 10 s of the 60 are gone */
    assert_int_equal(tg_cc_fresh_ms(&c, T0 + 10), 50000);
    /* the other two date forms of RFC 9110 section 5.6.7 */
    c = parse("Date: Sunday, 06-Nov-94 08:49:37 GMT\r\n", "Expires: Sun Nov  6 08:50:37 1994\r\n",
              NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 60000);
    /* without Date, against now */
    c = parse("Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n", NULL, NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0 + 20), 40000);
    /* in the past */
    assert_int_equal(tg_cc_fresh_ms(&c, T0 + 600), 0);
}

/* An Expires that is no date ("0", "-1") means already expired (section
 * 5.3). */
static void test_expires_invalid(void **state)
{
    struct tg_cache_control c = parse("Expires: 0\r\n", NULL, NULL);

    (void)state;
    assert_true(c.expires_bad);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    assert_null(tg_cc_unstorable(&c, false));
    c = parse("Expires: -1\r\n", "Cache-Control: max-age=30\r\n", NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 30000); /* max-age wins */
}

static void test_age(void **state)
{
    struct tg_cache_control c = parse("Cache-Control: max-age=100\r\n", "Age: 30\r\n", NULL);

    (void)state;
    assert_int_equal(c.age, 30);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 70000);
    c = parse("Cache-Control: max-age=100\r\n", "Age: 300\r\n", NULL);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    /* the larger of Age and how old Date says it is */
    c = parse("Cache-Control: max-age=100\r\n", "Age: 5\r\n",
              "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    assert_int_equal(tg_cc_fresh_ms(&c, T0 + 20), 80000);
    c = parse("Cache-Control: max-age=100\r\n", "Age: nonsense\r\n", NULL);
    assert_int_equal(c.age, -1);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 100000);
}

static void test_vary(void **state)
{
    struct tg_cache_control c = parse("Vary: Accept-Encoding\r\n", NULL, NULL);

    (void)state;
    assert_string_equal(c.vary, "accept-encoding,");
    assert_null(tg_cc_unstorable(&c, true));
    c = parse("Vary: accept-encoding, X-TFTP-Client\r\n", NULL, NULL);
    assert_string_equal(c.vary, "accept-encoding,x-tftp-client,");
    assert_non_null(tg_cc_unstorable(&c, true));
    /* not sent at all (client_headers = no): the same for every client */
    assert_null(tg_cc_unstorable(&c, false));
    c = parse("vary: User-Agent\r\n", "VARY:x-tftp-file\r\n", NULL);
    assert_string_equal(c.vary, "user-agent,x-tftp-file,");
    assert_string_equal(tg_cc_unstorable(&c, true), "Vary: X-TFTP-File (differs per request)");
    c = parse("Vary: *\r\n", NULL, NULL);
    assert_true(c.vary_star);
    assert_string_equal(tg_cc_unstorable(&c, false), "Vary: *");
    /* a name that merely starts like one does not count */
    c = parse("Vary: X-TFTP-Clientele\r\n", NULL, NULL);
    assert_null(tg_cc_unstorable(&c, true));
    /* more names than fit: as good as "*" */
    c = parse("Vary: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
              "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, "
              "cccccccccccccccccccccccccccccccccc\r\n", NULL, NULL);
    assert_true(c.vary_star);
}

/* Quoted arguments hide commas and directive names; unknown directives
 * are ignored (section 5.2.3). */
static void test_quoted_and_unknown(void **state)
{
    struct tg_cache_control c =
        parse("Cache-Control: ext=\"no-store, private\", max-age=\"40\"\r\n", NULL, NULL);

    (void)state;
    assert_false(c.no_store);
    assert_false(c.private_);
    assert_int_equal(c.max_age, 40);
    c = parse("Cache-Control: community=\"UCI\", foo, bar=1 , no-store\r\n", NULL, NULL);
    assert_true(c.no_store);
    c = parse("Cache-Control: x=\"a\\\"no-store\\\"\", s-maxage=9\r\n", NULL, NULL);
    assert_false(c.no_store);
    assert_int_equal(c.s_maxage, 9);
    c = parse("Cache-Control: no-storex, xprivate, must-revalidate\r\n", NULL, NULL);
    assert_false(c.no_store || c.private_ || c.no_cache);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), -1);
}

/* Directives of several Cache-Control lines add up; of a directive given
 * twice the first counts (RFC 9111 section 4.2.1). */
static void test_several_lines(void **state)
{
    struct tg_cache_control c =
        parse("Cache-Control: max-age=50\r\n", "CACHE-CONTROL: max-age=10, No-Cache\r\n",
              "Cache-Control: Public\r\n");

    (void)state;
    assert_int_equal(c.max_age, 50);
    assert_true(c.no_cache);
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 0);
    c = parse("Expires: Sun, 06 Nov 1994 08:50:37 GMT\r\n",
              "Expires: Sun, 06 Nov 1994 09:50:37 GMT\r\n", "Date: Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(tg_cc_fresh_ms(&c, T0), 60000);
    /* a line with no colon, and an empty value, change nothing */
    feed(&c, "Cache-Control no-store\r\n");
    feed(&c, "Cache-Control:\r\n");
    assert_false(c.no_store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_said),
        cmocka_unit_test(test_no_store_private),
        cmocka_unit_test(test_no_cache_and_max_age_zero),
        cmocka_unit_test(test_max_age_and_s_maxage),
        cmocka_unit_test(test_expires_and_date),
        cmocka_unit_test(test_expires_invalid),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_quoted_and_unknown),
        cmocka_unit_test(test_several_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

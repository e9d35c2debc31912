/* tests/unit/test_remap.c - tftpd-hpa remap rules: every flag, every
 * substitution, the bounds, malformed files (include/tftpgw/remap.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "tftpgw/path.h"
#include "tftpgw/remap.h"

static struct sockaddr_in v4;
static struct sockaddr_in6 v6, mapped;

static void addrs(void)
{
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.169", &v4.sin_addr);
    v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    mapped.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &mapped.sin6_addr);
}

static struct tg_remap *parse_ok(const char *text)
{
    struct tg_remap *rm = NULL;
    char err[256] = "";
    int rc = tg_remap_parse(text, strlen(text), &rm, err, sizeof(err));

    if (rc != 0)
        fail_msg("parse failed: %s", err);
    assert_non_null(rm);
    return rm;
}

/* Apply `rules` to `in`; returns the rc, out and msg filled. */
static int apply_full(const char *rules, const char *in, enum tg_opcode op,
                      const void *client, char *out, size_t cap, char *msg)
{
    struct tg_remap *rm = parse_ok(rules);
    int rc = tg_remap_apply(rm, in, op, client, out, cap, msg, TG_ERRMSG_MAX);

    tg_remap_free(rm);
    return rc;
}

/* rules over in (RRQ from 192.0.2.169) must give want. */
static void expect(const char *rules, const char *in, const char *want)
{
    char out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];
    int rc = apply_full(rules, in, TG_OP_RRQ, &v4, out, sizeof(out), msg);

    if (rc != 0)
        fail_msg("'%s' over \"%s\": rc %d (%s)", rules, in, rc, msg);
    if (strcmp(out, want) != 0)
        fail_msg("'%s' over \"%s\": got \"%s\", want \"%s\"", rules, in, out, want);
}

/* rules over in must be refused with rc and message want_msg. */
static void expect_refused(const char *rules, const char *in, int want_rc,
                           const char *want_msg)
{
    char out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];
    int rc = apply_full(rules, in, TG_OP_RRQ, &v4, out, sizeof(out), msg);

    assert_int_equal(rc, want_rc);
    assert_string_equal(msg, want_msg);
}

static void test_replace(void **state)
{
    (void)state;
    expect("r ^/ ", "/pxelinux.0", "pxelinux.0");       /* no replacement: removed */
    expect("r ^/", "/a", "a");
    expect("r b X", "abcb", "aXcb");                    /* first match only */
    expect("r zz X", "abc", "abc");                     /* no match: unchanged */
    expect("r ^(.*)\\.cfg$ cfg/\\1", "host.cfg", "cfg/host");
    expect("r \\\\ /", "boot\\x86\\wdsnbp.com", "boot/x86\\wdsnbp.com");
    /* rules run in order, each on the result of the ones before */
    expect("r a b\nr b c\n", "a", "c");
}

static void test_global(void **state)
{
    (void)state;
    expect("rg \\\\ /", "boot\\x86\\wdsnbp.com", "boot/x86/wdsnbp.com");
    expect("rg o 0", "foo/boo", "f00/b00");
    /* g without r changes nothing (tftpd-hpa drops it) */
    expect("g o 0", "foo", "foo");
    /* g starts again from the start of the new name each time */
    expect("rg ab a", "aabbb", "aa");
}

static void test_icase(void **state)
{
    (void)state;
    expect("r ^PXE X", "pxelinux", "pxelinux");
    expect("ri ^PXE X", "pxelinux", "Xlinux");
    expect("rgi a -", "AbA", "-b-");
}

static void test_exit(void **state)
{
    (void)state;
    expect("re ^a b\nr b c\n", "a", "b");    /* matched: the rest is skipped */
    expect("re ^z b\nr a c\n", "a", "c");    /* no match: goes on */
    expect("e ^a\nr a c\n", "a", "a");       /* e alone: stop, name as is */
}

static void test_restart(void **state)
{
    (void)state;
    /* s starts again from the very first rule (as tftp-hpa documents;
     * tftpd-hpa 5.2 restarts from the second: docs/migrating-from-tftpd-hpa.md) */
    expect("r ^nxx$ FIRST\nrs ^n(x{0,3})$ n\\1x\n", "n", "FIRST");
    expect("rs ^n(x{0,3})$ n\\1x\n", "n", "nxxxx");
    expect("s ^zz\nr a b\n", "a", "b"); /* no match: no restart */
}

static void test_abort(void **state)
{
    (void)state;
    expect_refused("a ^deny", "deny/x", TG_EACCES, TG_REMAP_DENIED);
    expect("a ^deny", "allow", "allow");
    /* the message is the replacement over the name, text around the match kept */
    expect_refused("a ^deny2 custom\\ message\\ \\0\\ \\i", "deny2zz", TG_EACCES,
                   "custom message deny2 192.0.2.169zz");
    /* earlier rewrites apply before an abort looks */
    expect_refused("r ^x deny\na ^deny", "x1", TG_EACCES, TG_REMAP_DENIED);
    /* inverted: refused when the regex does not match; groups are empty */
    expect_refused("a~ \\.(cfg|0)$ only\\ cfg\\ and\\ \\0<-", "kernel", TG_EACCES,
                   "only cfg and <-");
    expect("a~ \\.(cfg|0)$", "pxelinux.0", "pxelinux.0");
}

static void test_inverse(void **state)
{
    (void)state;
    expect("e~ /\nr ^ top/\n", "file", "file");   /* no '/': stop */
    expect("e~ /\nr ^ top/\n", "a/file", "top/a/file");
}

static void test_get_put(void **state)
{
    char out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];
    const char *rules = "rG ^ get/\nrP ^ put/\n";

    (void)state;
    assert_int_equal(apply_full(rules, "f", TG_OP_RRQ, &v4, out, sizeof(out), msg), 0);
    assert_string_equal(out, "get/f");
    assert_int_equal(apply_full(rules, "f", TG_OP_WRQ, &v4, out, sizeof(out), msg), 0);
    assert_string_equal(out, "put/f");
    /* a PUT-only abort does not refuse reads */
    assert_int_equal(apply_full("aP .", "f", TG_OP_RRQ, &v4, out, sizeof(out), msg), 0);
    assert_int_equal(apply_full("aP .", "f", TG_OP_WRQ, &v4, out, sizeof(out), msg),
                     TG_EACCES);
}

static void test_families(void **state)
{
    char out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];
    const char *rules = "r4 ^ v4/\nr6 ^ v6/\n";

    (void)state;
    assert_int_equal(apply_full(rules, "f", TG_OP_RRQ, &v4, out, sizeof(out), msg), 0);
    assert_string_equal(out, "v4/f");
    assert_int_equal(apply_full(rules, "f", TG_OP_RRQ, &v6, out, sizeof(out), msg), 0);
    assert_string_equal(out, "v6/f");
    /* a dual-stack socket's IPv4 client is an IPv4 client */
    assert_int_equal(apply_full(rules, "f", TG_OP_RRQ, &mapped, out, sizeof(out), msg), 0);
    assert_string_equal(out, "v4/f");
}

static void test_substitutions(void **state)
{
    char out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];

    (void)state;
    expect("r ^(a)(b)(c)(d)(e)(f)(g)(h)(i)$ \\9\\8\\7\\6\\5\\4\\3\\2\\1-\\0", "abcdefghi",
           "ihgfedcba-abcdefghi");
    expect("r ^a(x)?b \\1-", "ab", "-");        /* unmatched group: empty */
    expect("r ^(.*)$ \\i/\\1", "f", "192.0.2.169/f");
    expect("r ^(.*)$ \\x/\\1", "f", "C00002A9/f");
    expect("r ^ \\\\\\#\\ .", "f", "\\# .f");    /* \\ \# and \SPACE */
    expect("r ^ \\q", "f", "qf");                /* any other \c is c */
    expect("r ^ a\\", "f", "a\\f");              /* a trailing backslash is itself */
    expect("r ^(.*)$ \\U\\1\\E-\\L\\1\\EX", "aBc", "ABC-abcX");
    expect("r ^up(.*) \\Ux-\\1", "upab", "X-AB");
    assert_int_equal(apply_full("r ^ \\i,\\x,", "f", TG_OP_RRQ, &v6, out, sizeof(out), msg), 0);
    assert_string_equal(out, "2001:db8::1,20010DB8000000000000000000000001,f");
    assert_int_equal(apply_full("r ^ \\i,\\x,", "f", TG_OP_RRQ, &mapped, out, sizeof(out),
                                msg), 0);
    assert_string_equal(out, "10.1.2.3,0A010203,f");
    /* a comment ends the line; an escaped # does not */
    expect("r ^a b # c\n", "a", "b");
    expect("r ^a b\\#c\n", "a", "b#c");
    expect("r a\\ b X\n", "a b", "X");          /* escaped blank inside the regex */
    expect("# only a comment\n\n   \nr a b extra fields ignored\n", "a", "b");
}

/* K rewrites of one restart rule after F rules that never match, ended by
 * an e rule: K * (F + 2) + 1 steps. */
static char *steps_file(unsigned k, unsigned f)
{
    size_t cap = 64 + f * 32;
    char *t = malloc(cap);
    size_t n = (size_t)snprintf(t, cap, "e ^n");

    for (unsigned i = 0; i < k; i++)
        n += (size_t)snprintf(t + n, cap - n, "x");
    n += (size_t)snprintf(t + n, cap - n, "$\n");
    for (unsigned i = 0; i < f; i++)
        n += (size_t)snprintf(t + n, cap - n, "r ^NOMATCH%u q\n", i);
    snprintf(t + n, cap - n, "rs ^n(x*)$ n\\1x\n");
    return t;
}

static void test_step_limit(void **state)
{
    char *t;

    (void)state;
    t = steps_file(11, 91); /* 11 * 93 + 1 = 1024: the last step allowed */
    expect(t, "n", "nxxxxxxxxxxx");
    free(t);
    t = steps_file(8, 126); /* 8 * 128 + 1 = 1025 */
    expect_refused(t, "n", TG_EACCES, TG_REMAP_FAILURE);
    free(t);
    /* loops tftpd-hpa never leaves: a restart that always matches, a g
     * rule whose replacement matches again, an empty match */
    expect_refused("rs ^(.*)$ \\1", "a", TG_EACCES, TG_REMAP_FAILURE);
    expect_refused("rg q q", "q", TG_EACCES, TG_REMAP_FAILURE);
    expect_refused("rg x* ", "a", TG_EACCES, TG_REMAP_FAILURE);
    /* one that grows: the length bound ends it first */
    expect_refused("rg x* y", "a", TG_ENAMETOOLONG, TG_REMAP_FAILURE);
}

static void test_length_limit(void **state)
{
    char in[400], out[TG_PATH_MAX], msg[TG_ERRMSG_MAX];

    (void)state;
    memset(in, 'a', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    assert_int_equal(apply_full("r ^(.*)$ \\1\\1", in, TG_OP_RRQ, &v4, out, sizeof(out), msg), 0);
    assert_int_equal(strlen(out), 798);
    assert_int_equal(apply_full("r ^(.*)$ \\1\\1\\1", in, TG_OP_RRQ, &v4, out, sizeof(out),
                                msg), TG_ENAMETOOLONG);
    assert_string_equal(msg, TG_REMAP_FAILURE);
    assert_string_equal(out, "");
    /* the caller's cap bounds it too, input included */
    assert_int_equal(apply_full("r a bbbbbbbbbb", "a", TG_OP_RRQ, &v4, out, 8, msg),
                     TG_ENAMETOOLONG);
    assert_int_equal(apply_full("r z y", "abcdefgh", TG_OP_RRQ, &v4, out, 8, msg),
                     TG_ENAMETOOLONG);
    assert_int_equal(apply_full("r a bbbbbb", "a", TG_OP_RRQ, &v4, out, 8, msg), 0);
    assert_string_equal(out, "bbbbbb");
}

static void expect_bad(const char *text, size_t len, const char *want)
{
    struct tg_remap *rm = (void *)1;
    char err[256] = "";

    assert_int_equal(tg_remap_parse(text, len ? len : strlen(text), &rm, err, sizeof(err)),
                     TG_EINVAL);
    assert_null(rm);
    if (!strstr(err, want))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err, want);
}

static void test_malformed(void **state)
{
    char *big;

    (void)state;
    expect_bad("r a b\nrq a b\n", 0, "line 2: invalid flag 'q'");
    expect_bad("\n\nr~ a b\n", 0, "line 3: r rules cannot be inverted");
    expect_bad("r\n", 0, "line 1: no regex");
    expect_bad("r   # regex in a comment\n", 0, "line 1: no regex");
    expect_bad("# c\nr a(b c\n", 0, "line 2: bad regex");
    expect_bad("r a\0b c\n", 8, "line 1: NUL byte");
    /* labels and jumps of later tftp-hpa versions are not read */
    expect_bad("j a b\n", 0, "line 1: invalid flag 'j'");

    big = malloc(TG_REMAP_MAX_LINE + 16);
    memset(big, 'a', TG_REMAP_MAX_LINE + 8);
    memcpy(big, "r ", 2);
    big[TG_REMAP_MAX_LINE + 8] = '\0';
    expect_bad(big, strlen(big), "line 1: longer than 4096 bytes");
    free(big);

    big = malloc((TG_REMAP_MAX_RULES + 1) * 8 + 1);
    big[0] = '\0';
    for (int i = 0; i <= TG_REMAP_MAX_RULES; i++)
        strcat(big, "r a b\n");
    expect_bad(big, strlen(big), "line 1025: more than 1024 rules");
    big[strlen(big) - 6] = '\0'; /* exactly 1024: fine */
    struct tg_remap *rm = parse_ok(big);
    assert_int_equal(tg_remap_count(rm), TG_REMAP_MAX_RULES);
    tg_remap_free(rm);
    free(big);

    /* empty and comment-only files are valid and change nothing */
    rm = parse_ok("# nothing\n");
    assert_int_equal(tg_remap_count(rm), 0);
    tg_remap_free(rm);
    expect("", "abc", "abc");
    expect("r a b\r\n", "a", "b"); /* CRLF files */
}

static void test_load(void **state)
{
    char path[] = "/tmp/test_remap.XXXXXX", err[256];
    struct tg_remap *rm;
    int fd;

    (void)state;
    assert_true(tg_remap_load("/nonexistent/remap", &rm, err, sizeof(err)) < 0);
    assert_null(rm);
    assert_non_null(strstr(err, "/nonexistent/remap: No such file"));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "r a b\n\nx a b\n", 13), 13);
    close(fd);
    assert_int_equal(tg_remap_load(path, &rm, err, sizeof(err)), TG_EINVAL);
    assert_non_null(strstr(err, ":3: invalid flag 'x'"));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "r a b\n", 6), 6);
    close(fd);
    assert_int_equal(tg_remap_load(path, &rm, err, sizeof(err)), 0);
    assert_int_equal(tg_remap_count(rm), 1);
    tg_remap_free(rm);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace),     cmocka_unit_test(test_global),
        cmocka_unit_test(test_icase),       cmocka_unit_test(test_exit),
        cmocka_unit_test(test_restart),     cmocka_unit_test(test_abort),
        cmocka_unit_test(test_inverse),     cmocka_unit_test(test_get_put),
        cmocka_unit_test(test_families),    cmocka_unit_test(test_substitutions),
        cmocka_unit_test(test_step_limit),  cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_malformed),   cmocka_unit_test(test_load),
    };

    addrs();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

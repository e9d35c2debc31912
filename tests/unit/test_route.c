/* tests/unit/test_route.c - CIDRs, client addresses and first-match routing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "tftpgw/options.h"
#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"

/* ---- helpers ------------------------------------------------------------- */

static struct sockaddr_storage addr_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(4711);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons(4711);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* ---- tg_cidr_parse ------------------------------------------------------- */

struct cidr_case {
    const char *in;
    int rc;
    int family;
    unsigned bits;
    uint8_t addr[16];
};

static const struct cidr_case cidr_cases[] = {
    { "10.0.0.0/8", 0, AF_INET, 8, { 10 } },
    { "10.1.2.3/8", 0, AF_INET, 8, { 10 } },              /* host bits cleared */
    { "192.168.1.77/32", 0, AF_INET, 32, { 192, 168, 1, 77 } },
    { "192.168.1.77", 0, AF_INET, 32, { 192, 168, 1, 77 } }, /* host route */
    { "192.168.1.77/25", 0, AF_INET, 25, { 192, 168, 1, 0 } },
    { "192.168.1.255/25", 0, AF_INET, 25, { 192, 168, 1, 128 } },
    { "172.31.255.255/12", 0, AF_INET, 12, { 172, 16, 0, 0 } },
    { "0.0.0.0/0", 0, AF_INET, 0, { 0 } },
    { "1.2.3.4/0", 0, AF_INET, 0, { 0 } },
    { "10.0.0.0/008", 0, AF_INET, 8, { 10 } },
    { "2001:db8::/32", 0, AF_INET6, 32, { 0x20, 0x01, 0x0d, 0xb8 } },
    { "2001:db8:ffff::1/33", 0, AF_INET6, 33, { 0x20, 0x01, 0x0d, 0xb8, 0x80 } },
    { "::/0", 0, AF_INET6, 0, { 0 } },
    { "::1/128", 0, AF_INET6, 128, { [15] = 1 } },
    { "::1", 0, AF_INET6, 128, { [15] = 1 } },
    { "::ffff:10.0.0.1/128", 0, AF_INET6, 128,
      { [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 1 } },
    { "10.0.0.0/33", TG_EINVAL, 0, 0, { 0 } },
    { "::/129", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/", TG_EINVAL, 0, 0, { 0 } },
    { "/8", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/-1", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/+8", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/ 8", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/8 ", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/0008", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/8/8", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.0/0x8", TG_EINVAL, 0, 0, { 0 } },
    { "10.1", TG_EINVAL, 0, 0, { 0 } },
    { "10.0.0.256", TG_EINVAL, 0, 0, { 0 } },
    { " 10.0.0.1", TG_EINVAL, 0, 0, { 0 } },
    { "fe80::1%eth0", TG_EINVAL, 0, 0, { 0 } },
    { "localhost", TG_EINVAL, 0, 0, { 0 } },
    { "garbage/12", TG_EINVAL, 0, 0, { 0 } },
    { "", TG_EINVAL, 0, 0, { 0 } },
    { "/", TG_EINVAL, 0, 0, { 0 } },
    { "1111:2222:3333:4444:5555:6666:7777:8888:9999/64", TG_EINVAL, 0, 0, { 0 } },
};

static void test_cidr_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cidr_cases); i++) {
        const struct cidr_case *tc = &cidr_cases[i];
        struct tg_cidr c;
        int rc = tg_cidr_parse(tc->in, &c);

        if (rc != tc->rc)
            fail_msg("\"%s\": rc %d, want %d", tc->in, rc, tc->rc);
        if (rc < 0)
            continue;
        assert_int_equal(c.family, tc->family);
        assert_int_equal(c.bits, tc->bits);
        assert_memory_equal(c.addr, tc->addr, 16);
    }
    assert_int_equal(tg_cidr_parse(NULL, &(struct tg_cidr){ 0 }), TG_EINVAL);
}

/* ---- tg_cidr_contains ---------------------------------------------------- */

struct contains_case {
    const char *cidr;
    const char *client;
    bool in;
};

static const struct contains_case contains_cases[] = {
    { "10.0.0.0/8", "10.255.1.2", true },
    { "10.0.0.0/8", "11.0.0.1", false },
    { "10.0.0.0/8", "9.255.255.255", false },
    { "192.168.1.128/25", "192.168.1.128", true },
    { "192.168.1.128/25", "192.168.1.255", true },
    { "192.168.1.128/25", "192.168.1.127", false },
    { "192.0.2.7", "192.0.2.7", true },
    { "192.0.2.7", "192.0.2.8", false },
    { "0.0.0.0/0", "203.0.113.9", true },
    { "0.0.0.0/0", "2001:db8::1", false },       /* v4 net, plain v6 client */
    { "0.0.0.0/0", "::ffff:203.0.113.9", true },
    { "10.0.0.0/8", "::ffff:10.1.2.3", true },    /* dual-stack listener */
    { "10.0.0.0/8", "::ffff:11.1.2.3", false },
    { "10.0.0.0/8", "::10.1.2.3", false },        /* IPv4-compatible, not mapped */
    { "10.0.0.0/8", "64:ff9b::10.1.2.3", false }, /* NAT64, not mapped */
    { "2001:db8::/32", "2001:db8:1::1", true },
    { "2001:db8::/32", "2001:db9::1", false },
    { "2001:db8::/32", "10.0.0.1", false },
    { "2001:db8:8000::/33", "2001:db8:8000::1", true },
    { "2001:db8:8000::/33", "2001:db8:7fff::1", false },
    { "::1/128", "::1", true },
    { "::1/128", "::2", false },
    { "::/0", "fe80::1", true },
    { "::/0", "10.0.0.1", false },
    { "::ffff:0.0.0.0/96", "::ffff:10.1.2.3", true },
};

static void test_cidr_contains(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(contains_cases); i++) {
        const struct contains_case *tc = &contains_cases[i];
        struct sockaddr_storage ss = addr_of(tc->client);
        struct tg_cidr c;

        assert_int_equal(tg_cidr_parse(tc->cidr, &c), 0);
        if (tg_cidr_contains(&c, SA(ss)) != tc->in)
            fail_msg("%s in %s: want %d", tc->client, tc->cidr, tc->in);
    }
}

static void test_cidr_contains_other_family(void **state)
{
    struct sockaddr_un sun;
    struct tg_cidr c;

    (void)state;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_int_equal(tg_cidr_parse("0.0.0.0/0", &c), 0);
    assert_false(tg_cidr_contains(&c, (const struct sockaddr *)&sun));
    assert_false(tg_cidr_contains(&c, NULL));
}

/* ---- tg_sockaddr_ip ------------------------------------------------------ */

static void test_sockaddr_ip(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        { "192.0.2.1", "192.0.2.1" },
        { "0.0.0.0", "0.0.0.0" },
        { "2001:db8::1", "2001:db8::1" },
        { "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
        { "::ffff:192.0.2.7", "192.0.2.7" },
        { "::1", "::1" },
        { "fe80::1:2:3:4", "fe80::1:2:3:4" },
    };
    char buf[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;
    struct sockaddr_un sun;

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        ss = addr_of(cases[i].in);
        assert_int_equal(tg_sockaddr_ip(SA(ss), buf, sizeof(buf)), 0);
        assert_string_equal(buf, cases[i].out);
    }

    /* Exactly enough room, and one byte less. */
    ss = addr_of("192.0.2.1");
    assert_int_equal(tg_sockaddr_ip(SA(ss), buf, 10), 0);
    assert_string_equal(buf, "192.0.2.1");
    assert_int_equal(tg_sockaddr_ip(SA(ss), buf, 9), TG_ENOSPC);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_int_equal(tg_sockaddr_ip((const struct sockaddr *)&sun, buf, sizeof(buf)),
                     TG_EINVAL);
}

/* ---- tg_route_resolve ---------------------------------------------------- */

static struct tg_cidr lab_allow[2];
static struct tg_cidr only_ten[1];

/* Routes as the config parser would leave them: prefixes normalised,
 * globs without a leading '/'. */
static struct tg_route table[] = {
    { .name = "pxe", .match = "pxelinux.cfg/01-*", .is_glob = true,
      .backend = "b", .key = "macs/{basename}", .read = true, .max_size = -1 },
    { .name = "boot", .match = "boot", .backend = "b", .key = "images/{rest}",
      .read = true, .max_size = -1 },
    { .name = "boot2", .match = "boot", .backend = "b", .key = "never/{rest}",
      .read = true, .max_size = -1 },
    { .name = "lab", .match = "lab", .backend = "b", .key = "{client_ip}/{rest}",
      .read = true, .write = TG_WRITE_CREATE, .allow = lab_allow, .nallow = 2,
      .max_size = -1 },
    { .name = "up", .match = "up", .backend = "b", .key = "{path}",
      .read = false, .write = TG_WRITE_OVERWRITE, .max_size = 1024 },
    { .name = "esc", .match = "esc", .backend = "b", .key = "..{rest}",
      .read = true, .max_size = -1 },
    { .name = "long", .match = "long", .backend = "b", .key = "{path}/{path}",
      .read = true, .max_size = -1 },
    { .name = "odd", .match = "odd", .backend = "b", .key = "{nope}",
      .read = true, .max_size = -1 },
    { .name = "hosts", .match = "*.cfg", .is_glob = true, .backend = "b",
      .key = "per-host/{client_ip}-{basename}", .read = true, .max_size = -1 },
    { .name = "all", .match = "", .backend = "b", .key = "{path}", .read = true,
      .max_size = -1 },
};

/* No catch-all: lets "no route" and "not admitted" show. */
static struct tg_route narrow[] = {
    { .name = "ten", .match = "lab", .backend = "b", .key = "{path}",
      .read = true, .write = TG_WRITE_CREATE, .allow = only_ten, .nallow = 1,
      .max_size = -1 },
    { .name = "glob", .match = "*.efi", .is_glob = true, .backend = "b",
      .key = "{path}", .read = true, .max_size = -1 },
};

struct resolve_case {
    struct tg_route *routes;
    size_t n;
    const char *path;
    const char *client;
    enum tg_opcode op;
    int rc;
    uint16_t code;   /* when rc < 0 */
    const char *route;
    const char *key;
};

#define T table, TG_ARRAY_LEN(table)
#define N narrow, TG_ARRAY_LEN(narrow)

static const struct resolve_case resolve_cases[] = {
    /* glob vs prefix; {basename} */
    { T, "pxelinux.cfg/01-aa-bb-cc", "192.0.2.1", TG_OP_RRQ, 0, 0, "pxe", "macs/01-aa-bb-cc" },
    { T, "pxelinux.cfg/default", "192.0.2.1", TG_OP_RRQ, 0, 0, "all", "pxelinux.cfg/default" },
    /* prefixes take whole segments; {rest}; first match wins over boot2 */
    { T, "boot/efi/grubx64.efi", "192.0.2.1", TG_OP_RRQ, 0, 0, "boot", "images/efi/grubx64.efi" },
    { T, "boot", "192.0.2.1", TG_OP_RRQ, 0, 0, "boot", "images" },
    { T, "bootx64.efi", "192.0.2.1", TG_OP_RRQ, 0, 0, "all", "bootx64.efi" },
    /* allow list: v4, mapped v4, v6; a refused client falls through */
    { T, "lab/f.bin", "10.1.2.3", TG_OP_RRQ, 0, 0, "lab", "10.1.2.3/f.bin" },
    { T, "lab/f.bin", "::ffff:10.9.9.9", TG_OP_RRQ, 0, 0, "lab", "10.9.9.9/f.bin" },
    { T, "lab/f.bin", "2001:db8::5", TG_OP_WRQ, 0, 0, "lab", "2001:db8::5/f.bin" },
    { T, "lab/f.bin", "192.168.1.1", TG_OP_RRQ, 0, 0, "all", "lab/f.bin" },
    { T, "lab/f.bin", "2001:db9::5", TG_OP_RRQ, 0, 0, "all", "lab/f.bin" },
    /* operations: exact TFTP codes */
    { T, "lab/new", "10.0.0.1", TG_OP_WRQ, 0, 0, "lab", "10.0.0.1/new" },
    { T, "boot/x", "10.0.0.1", TG_OP_WRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { T, "up/file", "10.0.0.1", TG_OP_RRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { T, "up/file", "10.0.0.1", TG_OP_WRQ, 0, 0, "up", "up/file" },
    { T, "x", "10.0.0.1", TG_OP_DATA, TG_EINVAL, TG_TFTP_EBADOP, NULL, NULL },
    { T, "x", "10.0.0.1", TG_OP_ACK, TG_EINVAL, TG_TFTP_EBADOP, NULL, NULL },
    /* the template would climb out: "..{rest}" with an empty rest is ".." */
    { T, "esc", "10.0.0.1", TG_OP_RRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { T, "esc/a", "10.0.0.1", TG_OP_RRQ, 0, 0, "esc", "..a" },
    /* an unknown placeholder in a hand-built route is refused, not copied */
    { T, "odd/a", "10.0.0.1", TG_OP_RRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    /* {client_ip} with IPv6, and glob '*' crossing '/' */
    { T, "a/b/host.cfg", "2001:db8::1", TG_OP_RRQ, 0, 0, "hosts", "per-host/2001:db8::1-host.cfg" },
    { T, "a/b/host.cfg", "::ffff:192.0.2.1", TG_OP_RRQ, 0, 0, "hosts", "per-host/192.0.2.1-host.cfg" },
    /* no route / not admitted / allowed */
    { N, "other/file", "10.0.0.1", TG_OP_RRQ, TG_ENOENT, TG_TFTP_ENOTFOUND, NULL, NULL },
    { N, "other/file", "10.0.0.1", TG_OP_WRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { N, "lab/x", "192.168.1.1", TG_OP_RRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { N, "lab/x", "192.168.1.1", TG_OP_WRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
    { N, "lab/x", "10.0.0.1", TG_OP_WRQ, 0, 0, "ten", "lab/x" },
    { N, "boot/x/shim.efi", "192.168.1.1", TG_OP_RRQ, 0, 0, "glob", "boot/x/shim.efi" },
    { N, "boot/x/shim.efi", "192.168.1.1", TG_OP_WRQ, TG_EACCES, TG_TFTP_EACCESS, NULL, NULL },
};

static int setup_routes(void **state)
{
    (void)state;
    assert_int_equal(tg_cidr_parse("10.0.0.0/8", &lab_allow[0]), 0);
    assert_int_equal(tg_cidr_parse("2001:db8::/32", &lab_allow[1]), 0);
    assert_int_equal(tg_cidr_parse("10.0.0.0/8", &only_ten[0]), 0);
    return 0;
}

static void test_resolve(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(resolve_cases); i++) {
        const struct resolve_case *tc = &resolve_cases[i];
        struct sockaddr_storage ss = addr_of(tc->client);
        struct tg_route_match m;
        struct tg_error err = { 0 };
        int rc;

        memset(&m, 0x55, sizeof(m));
        rc = tg_route_resolve(tc->routes, tc->n, tc->path, SA(ss), tc->op, &m, &err);
        if (rc != tc->rc)
            fail_msg("case %zu (%s from %s): rc %d, want %d", i, tc->path,
                     tc->client, rc, tc->rc);
        if (rc < 0) {
            if (err.code != tc->code)
                fail_msg("case %zu: code %u, want %u", i, err.code, tc->code);
            assert_true(err.msg[0] != '\0');
            continue;
        }
        assert_non_null(m.route);
        if (strcmp(m.route->name, tc->route) != 0)
            fail_msg("case %zu: route %s, want %s", i, m.route->name, tc->route);
        if (strcmp(m.key, tc->key) != 0)
            fail_msg("case %zu: key \"%s\", want \"%s\"", i, m.key, tc->key);
    }
}

static void test_resolve_messages(void **state)
{
    struct sockaddr_storage ss = addr_of("10.0.0.1");
    struct tg_route_match m;
    struct tg_error err;

    (void)state;
    assert_int_equal(tg_route_resolve(narrow, TG_ARRAY_LEN(narrow), "nope",
                                      SA(ss), TG_OP_RRQ, &m, &err), TG_ENOENT);
    assert_int_equal(err.code, 1);
    assert_string_equal(err.msg, "File not found");
    assert_int_equal(tg_route_resolve(narrow, TG_ARRAY_LEN(narrow), "nope",
                                      SA(ss), TG_OP_WRQ, &m, &err), TG_EACCES);
    assert_int_equal(err.code, 2);
    assert_string_equal(err.msg, "Access violation");
    /* No routes at all behaves as "nothing fits". */
    assert_int_equal(tg_route_resolve(NULL, 0, "x", SA(ss), TG_OP_RRQ, &m, &err),
                     TG_ENOENT);
}

/* A key longer than TG_PATH_MAX - 1 after expansion is refused, and one
 * that just fits is not. */
static void test_resolve_key_length(void **state)
{
    struct sockaddr_storage ss = addr_of("10.0.0.1");
    struct tg_route_match m;
    struct tg_error err;
    char path[TG_PATH_MAX];
    size_t half = (TG_PATH_MAX - 2) / 2; /* "long/..." twice plus '/' */

    (void)state;
    memset(path, 'a', sizeof(path));
    memcpy(path, "long/", 5);
    path[half] = '\0';
    assert_int_equal(tg_route_resolve(table, TG_ARRAY_LEN(table), path, SA(ss),
                                      TG_OP_RRQ, &m, &err), 0);
    assert_int_equal(strlen(m.key), 2 * half + 1);
    assert_int_equal(strlen(m.key), TG_PATH_MAX - 1);

    path[half] = 'a';
    path[half + 1] = '\0';
    assert_int_equal(tg_route_resolve(table, TG_ARRAY_LEN(table), path, SA(ss),
                                      TG_OP_RRQ, &m, &err), TG_EACCES);
    assert_int_equal(err.code, TG_TFTP_EACCESS);
    assert_string_equal(m.key, "");
    assert_null(m.route);
}

/* case = lower: the route is matched against, and expands, the name in
 * lower case; other routes still see it as sent. */
static void test_resolve_lower(void **state)
{
    static struct tg_route routes[] = {
        { .name = "low", .match = "pxe", .backend = "b", .key = "{rest}", .read = true,
          .max_size = -1, .name_case = TG_CASE_LOWER },
        { .name = "glob", .match = "*.cfg", .is_glob = true, .backend = "b", .key = "{path}",
          .read = true, .max_size = -1, .name_case = TG_CASE_LOWER },
        { .name = "all", .match = "", .backend = "b", .key = "{path}", .read = true,
          .max_size = -1 },
    };
    static const struct { const char *path, *route, *key; } cases[] = {
        { "PXE/Menu.C32", "low", "menu.c32" },
        { "pxe/a/B", "low", "a/b" },
        { "PXEX/Menu.C32", "all", "PXEX/Menu.C32" },
        { "Boot/Default.CFG", "glob", "boot/default.cfg" },
        { "Boot/BCD", "all", "Boot/BCD" },
        { "\xc3\x89T\xc3\x89/A", "all", "\xc3\x89T\xc3\x89/A" },
        { "pxe/\xc3\x89T\xc3\x89", "low", "\xc3\x89t\xc3\x89" },
    };
    struct sockaddr_storage ss = addr_of("192.0.2.1");

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        struct tg_route_match m;
        struct tg_error err = { 0 };

        assert_int_equal(tg_route_resolve(routes, TG_ARRAY_LEN(routes), cases[i].path, SA(ss),
                                          TG_OP_RRQ, &m, &err), 0);
        assert_string_equal(m.route->name, cases[i].route);
        assert_string_equal(m.key, cases[i].key);
    }
    assert_int_equal(tg_route_nbackends(&routes[0]), 1);
    assert_string_equal(tg_route_backend_at(&routes[0], 0), "b");
    assert_null(tg_route_backend_at(&routes[0], 1));
}

/* {client_mac}: filled when known; without it ERROR 2 "client MAC
 * unknown"; wants_mac asks only for the route that would win and run. */
static void test_client_mac(void **state)
{
    static struct tg_route macs[] = {
        { .name = "off", .match = "cfg/ro", .backend = "b", .key = "x/{client_mac}",
          .read = false, .max_size = -1 },
        { .name = "cfg", .match = "cfg", .backend = "b", .key = "configs/{client_mac}/{basename}",
          .read = true, .write = TG_WRITE_CREATE, .max_size = -1 },
        { .name = "all", .match = "", .backend = "b", .key = "{path}", .read = true,
          .max_size = -1 },
    };
    struct sockaddr_storage c = addr_of("192.0.2.7");
    struct tg_route_match m;
    struct tg_error err;

    (void)state;
    assert_int_equal(tg_route_resolve_mac(macs, 3, "cfg/a/x.cfg", SA(c), "52-54-00-12-34-56",
                                          TG_OP_WRQ, &m, &err), 0);
    assert_string_equal(m.key, "configs/52-54-00-12-34-56/x.cfg");
    memset(&err, 0, sizeof(err));
    assert_int_equal(tg_route_resolve_mac(macs, 3, "cfg/x.cfg", SA(c), NULL, TG_OP_RRQ, &m, &err),
                     TG_EACCES);
    assert_int_equal(err.code, TG_TFTP_EACCESS);
    assert_string_equal(err.msg, "client MAC unknown");
    assert_null(m.route);
    assert_int_equal(tg_route_resolve(macs, 3, "cfg/x.cfg", SA(c), TG_OP_RRQ, &m, &err),
                     TG_EACCES);
    assert_int_equal(tg_route_resolve_mac(macs, 3, "cfg/x.cfg", SA(c), "", TG_OP_RRQ, &m, &err),
                     TG_EACCES);
    /* a route that does not name it never needs it */
    assert_int_equal(tg_route_resolve_mac(macs, 3, "f", SA(c), NULL, TG_OP_RRQ, &m, &err), 0);
    assert_string_equal(m.key, "f");

    assert_true(tg_route_wants_mac(macs, 3, "cfg/x.cfg", SA(c), TG_OP_WRQ));
    assert_true(tg_route_wants_mac(macs, 3, "cfg", SA(c), TG_OP_RRQ));
    assert_false(tg_route_wants_mac(macs, 3, "cfgx", SA(c), TG_OP_RRQ));
    assert_false(tg_route_wants_mac(macs, 3, "f", SA(c), TG_OP_RRQ));
    /* refused for the op anyway: no lookup */
    assert_false(tg_route_wants_mac(macs, 3, "cfg/ro", SA(c), TG_OP_RRQ));
    assert_false(tg_route_wants_mac(macs, 3, "f", SA(c), TG_OP_WRQ));
    assert_false(tg_route_wants_mac(macs, 3, "cfg/x", SA(c), TG_OP_ACK));
    assert_true(tg_route_key_wants_mac("a{client_mac}b"));
    assert_false(tg_route_key_wants_mac("{client_ip}"));
    assert_false(tg_route_key_wants_mac(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_contains),
        cmocka_unit_test(test_cidr_contains_other_family),
        cmocka_unit_test(test_sockaddr_ip),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_lower),
        cmocka_unit_test(test_resolve_messages),
        cmocka_unit_test(test_resolve_key_length),
        cmocka_unit_test(test_client_mac),
    };

    return cmocka_run_group_tests(tests, setup_routes, NULL);
}

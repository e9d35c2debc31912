/* tests/fuzz/fuzz_path.c - filename normalisation, routing and key
 * templating: no output may leave its root or its route's prefix.
 *
 * Input: 18 header bytes, then the filename (up to its first NUL, as a
 * request carries it).
 *   h[0]     bits 0-1: client family (IPv4, IPv6, IPv4-mapped IPv6, none of
 *            them); bit 2: WRQ instead of RRQ; bit 3: without the last
 *            route (the catch-all), so "no route fits" is reached too
 *   h[1..16] client address bytes
 *   h[17]    capacity of a second, exact-size normalisation buffer
 * Routes come from a fixed config parsed once by the real parser. */
#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tftpgw/config.h"
#include "tftpgw/log.h"
#include "tftpgw/path.h"
#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"
#include "tftpgw/uri.h"

#define HDR 18
#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every placeholder, prefix and glob routes, allow lists of both families,
 * read-only and write-only routes, and a catch-all. */
static const char config_text[] =
    "[backend b]\n"
    "type = file\n"
    "root = /srv/tftp\n"
    "[route efi]\n"
    "match = *.efi\n"
    "backend = b\n"
    "key = efi/{basename}\n"
    "[route hosts]\n"
    "match = pxelinux.cfg/01-*\n"
    "backend = b\n"
    "key = pxelinux/hosts/{basename}\n"
    "[route up]\n"
    "match = incoming\n"
    "backend = b\n"
    "key = incoming/{client_ip}/{rest}\n"
    "read = no\n"
    "write = create\n"
    "allow = 10.20.128.0/17, 2001:db8:20::/47\n"
    "[route boot]\n"
    "match = /boot/\n"
    "backend = b\n"
    "key = images/{rest}\n"
    "[route lab]\n"
    "match = lab/x\n"
    "backend = b\n"
    "key = lab/{client_ip}/{path}\n"
    "allow = 192.0.2.0/25, ::1\n"
    "write = overwrite\n"
    "[route per-host]\n"
    "match = h\n"
    "backend = b\n"
    "key = {client_ip}/{rest}\n"
    "[route glob-path]\n"
    "match = [a-c]*/*.cfg\n"
    "backend = b\n"
    "key = cfg/{path}/{basename}\n"
    "[route long]\n"
    "match = deep/*\n"
    "backend = b\n"
    "key = {path}/{rest}/{path}\n"
    "[route default]\n"
    "match = \"\"\n"
    "backend = b\n"
    "key = \"{path}\"\n";

static struct tg_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void)argc;
    (void)argv;
    if (tg_config_parse_string(config_text, "fuzz.ini", &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_path: config: %s\n", err);
        abort();
    }
    return 0;
}

/* A clean relative path: what every normalised name and key must be. */
static void check_clean(const char *s)
{
    size_t len = strlen(s);
    const char *seg = s;

    CHECK(len > 0 && len < TG_PATH_MAX);
    CHECK(s[0] != '/' && s[len - 1] != '/');
    CHECK(strchr(s, '\\') == NULL);
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);

            CHECK(n > 0);                                   /* no "//" */
            CHECK(!(n == 1 && seg[0] == '.'));
            CHECK(!(n == 2 && seg[0] == '.' && seg[1] == '.'));
            if (*p == '\0')
                break;
            seg = p + 1;
        } else {
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        }
    }
}

/* Reference normalisation, written from path.h: separators '/' and '\\',
 * empty and "." segments dropped. Returns -1 for a ".." segment or a
 * control character, else the joined length (may exceed TG_PATH_MAX). */
static long ref_normalize(const char *in, char *out, size_t cap)
{
    size_t len = 0;
    const char *p = in;

    for (const char *q = in; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return -1;
    while (*p) {
        const char *seg;
        size_t n;

        while (*p == '/' || *p == '\\')
            p++;
        seg = p;
        while (*p && *p != '/' && *p != '\\')
            p++;
        n = (size_t)(p - seg);
        if (n == 2 && seg[0] == '.' && seg[1] == '.')
            return -1;
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (len > 0 && len < cap)
            out[len] = '/';
        len += len > 0;
        for (size_t i = 0; i < n; i++, len++)
            if (len < cap)
                out[len] = seg[i];
    }
    if (len < cap)
        out[len] = '\0';
    return (long)len;
}

static bool fits(const struct tg_route *r, const char *path, const char **rest)
{
    size_t n = strlen(r->match);

    if (r->is_glob) {
        *rest = path;
        return fnmatch(r->match, path, 0) == 0;
    }
    if (n == 0) {
        *rest = path;
        return true;
    }
    if (strncmp(path, r->match, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return false;
    *rest = path[n] ? path + n + 1 : path + n;
    return true;
}

/* Bit by bit, independent of route.c: IPv4 networks also hold IPv4-mapped
 * IPv6 clients. */
static bool ref_contains(const struct tg_cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a;

    if (sa->sa_family == AF_INET && c->family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

        a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (c->family == AF_INET) {
            if (memcmp(a, mapped, 12) != 0)
                return false;
            a += 12;
        } else if (c->family != AF_INET6) {
            return false;
        }
    } else {
        return false;
    }
    for (unsigned b = 0; b < c->bits; b++)
        if (((a[b / 8] >> (7 - b % 8)) & 1) != ((c->addr[b / 8] >> (7 - b % 8)) & 1))
            return false;
    return true;
}

static bool admits(const struct tg_route *r, const struct sockaddr *sa)
{
    if (r->nallow == 0)
        return true;
    for (size_t i = 0; i < r->nallow; i++) {
        bool in = ref_contains(&r->allow[i], sa);

        CHECK(tg_cidr_contains(&r->allow[i], sa) == in);
        if (in)
            return true;
    }
    return false;
}

/* The key the route must produce, by plain text substitution; returns
 * false when a placeholder cannot be filled ({client_ip} of no address,
 * {client_mac} always: the harness resolves without one). */
static bool ref_expand(const char *t, const char *path, const char *rest,
                       const char *ip, char *out, size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    while (*t) {
        const char *val = NULL;
        size_t vlen;

        if (strncmp(t, "{path}", 6) == 0) {
            val = path;
            t += 6;
        } else if (strncmp(t, "{rest}", 6) == 0) {
            val = rest;
            t += 6;
        } else if (strncmp(t, "{basename}", 10) == 0) {
            const char *sl = strrchr(path, '/');

            val = sl ? sl + 1 : path;
            t += 10;
        } else if (strncmp(t, "{client_ip}", 11) == 0) {
            if (!ip)
                return false;
            val = ip;
            t += 11;
        } else if (strncmp(t, "{client_mac}", 12) == 0) {
            return false; /* tg_route_resolve knows no MAC: ERROR 2 */
        }
        if (val) {
            vlen = strlen(val);
        } else {
            val = t++;
            vlen = 1;
        }
        if (len + vlen >= cap)
            return false;
        memcpy(out + len, val, vlen);
        len += vlen;
        out[len] = '\0';
    }
    return true;
}

static void check_uri(const char *key)
{
    char enc[3 * TG_PATH_MAX + 1], dec[TG_PATH_MAX];
    int n = tg_uri_encode_path(key, enc, sizeof(enc));
    size_t d = 0;

    CHECK(n >= 0 && (size_t)n == strlen(enc));
    for (int i = 0; i < n; i++) {
        char c = enc[i];

        CHECK(c != '?' && c != '#' && c != '\\' && (unsigned char)c > 0x20 &&
              (unsigned char)c < 0x7f);
        if (c == '%') {
            unsigned v;

            CHECK(i + 2 < n && sscanf(enc + i + 1, "%2X", &v) == 1);
            dec[d++] = (char)v;
            i += 2;
        } else {
            dec[d++] = c;
        }
        CHECK(d < sizeof(dec));
    }
    dec[d] = '\0';
    CHECK(strcmp(dec, key) == 0);
}

static void check_sanitize(const char *name, size_t cap)
{
    char *out = malloc(cap ? cap : 1);

    CHECK(out);
    CHECK(tg_log_sanitize(name, out, cap) == out);
    if (cap > 0) {
        size_t n = strlen(out);

        CHECK(n < cap);
        for (size_t i = 0; i < n; i++)
            CHECK((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] < 0x7f);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    char norm[TG_PATH_MAX], refbuf[TG_PATH_MAX], want[4 * TG_PATH_MAX];
    char wantnorm[TG_PATH_MAX], ip[INET6_ADDRSTRLEN];
    const char *ipp = NULL;
    struct tg_route_match m;
    struct tg_error err;
    enum tg_opcode op;
    const struct tg_route *expect = NULL;
    const char *rest = NULL;
    bool fitted = false;
    char *name, *small;
    size_t cap2, nroutes;
    long reflen;
    int rc, rc2;

    if (size < HDR || size > 8192)
        return 0;
    memset(&ss, 0, sizeof(ss));
    switch (data[0] & 3) {
    case 0: {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, data + 1, 4);
        break;
    }
    case 1:
    case 2: {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, data + 1, 16);
        if ((data[0] & 3) == 2) {
            memset(&s6->sin6_addr, 0, 10);
            s6->sin6_addr.s6_addr[10] = 0xff;
            s6->sin6_addr.s6_addr[11] = 0xff;
        }
        break;
    }
    default:
        ss.ss_family = AF_UNIX;
        break;
    }
    op = (data[0] & 4) ? TG_OP_WRQ : TG_OP_RRQ;
    nroutes = (data[0] & 8) ? cfg->nroutes - 1 : cfg->nroutes;
    cap2 = data[17];

    name = malloc(size - HDR + 1);
    CHECK(name);
    memcpy(name, data + HDR, size - HDR);
    name[size - HDR] = '\0';

    check_sanitize(name, cap2);

    /* Normalisation against the reference and the stated invariants. */
    rc = tg_path_normalize(name, norm, sizeof(norm));
    reflen = ref_normalize(name, refbuf, sizeof(refbuf));
    if (reflen < 0) {
        CHECK(rc == TG_EACCES);
    } else if (rc == 0) {
        CHECK(reflen < TG_PATH_MAX && strcmp(norm, refbuf) == 0);
    } else if (rc == TG_ENOENT) {
        CHECK(reflen == 0);
    } else if (rc == TG_ENAMETOOLONG) {
        CHECK(reflen >= TG_PATH_MAX);
    } else {
        CHECK(rc == TG_EACCES); /* invalid UTF-8, which the reference skips */
    }
    if (rc != 0) {
        CHECK(norm[0] == '\0');
    } else {
        check_clean(norm);
        CHECK(strcmp(tg_path_basename(norm), strrchr(norm, '/') ?
                     strrchr(norm, '/') + 1 : norm) == 0);
        /* Idempotent: a clean path normalises to itself. */
        CHECK(tg_path_normalize(norm, refbuf, sizeof(refbuf)) == 0);
        CHECK(strcmp(norm, refbuf) == 0);
    }

    /* A small exact-size buffer: same answer, or too long, never overrun. */
    small = malloc(cap2 ? cap2 : 1);
    CHECK(small);
    rc2 = tg_path_normalize(name, small, cap2);
    if (rc == 0 && strlen(norm) < cap2) {
        CHECK(rc2 == 0 && strcmp(small, norm) == 0);
    } else if (rc == 0) {
        CHECK(rc2 == TG_ENAMETOOLONG && (cap2 == 0 || small[0] == '\0'));
    } else {
        CHECK(rc2 == rc); /* refusals and "empty" do not depend on the size */
    }
    free(small);

    if (rc != 0)
        goto out;

    /* Routing: the winner is the first route that fits and admits. */
    if (tg_sockaddr_ip(sa, ip, sizeof(ip)) == 0)
        ipp = ip;
    for (size_t i = 0; i < nroutes && !expect; i++) {
        const char *r;

        if (!fits(&cfg->routes[i], norm, &r))
            continue;
        fitted = true;
        if (admits(&cfg->routes[i], sa)) {
            expect = &cfg->routes[i];
            rest = r;
        }
    }
    CHECK(fitted || nroutes < cfg->nroutes); /* the catch-all fits every path */
    memset(&err, 0, sizeof(err));
    rc = tg_route_resolve(cfg->routes, nroutes, norm, sa, op, &m, &err);
    if (!fitted) {
        CHECK(op == TG_OP_RRQ ? rc == TG_ENOENT && err.code == TG_TFTP_ENOTFOUND
                              : rc == TG_EACCES && err.code == TG_TFTP_EACCESS);
        CHECK(m.key[0] == '\0' && m.route == NULL);
        goto out;
    }
    if (!expect || (op == TG_OP_RRQ && !expect->read) ||
        (op == TG_OP_WRQ && expect->write == TG_WRITE_OFF)) {
        CHECK(rc == TG_EACCES && err.code == TG_TFTP_EACCESS);
        CHECK(m.key[0] == '\0');
        goto out;
    }
    if (!ref_expand(expect->key, norm, rest, ipp, want, sizeof(want)) ||
        tg_path_normalize(want, wantnorm, sizeof(wantnorm)) != 0) {
        CHECK(rc == TG_EACCES && m.key[0] == '\0');
        goto out;
    }
    CHECK(rc == 0);
    CHECK(m.route == expect);
    CHECK(strcmp(m.key, wantnorm) == 0);
    check_clean(m.key);
    /* The key stays under the template's literal prefix: "images/{rest}"
     * gives "images/..." or, for the prefix itself ({rest} empty), "images". */
    {
        const char *brace = strchr(expect->key, '{');
        size_t lit = brace ? (size_t)(brace - expect->key) : strlen(expect->key);

        CHECK(strncmp(m.key, expect->key, lit) == 0 ||
              (lit > 0 && expect->key[lit - 1] == '/' &&
               strlen(m.key) == lit - 1 && strncmp(m.key, expect->key, lit - 1) == 0));
    }
    check_uri(m.key);
out:
    free(name);
    return 0;
}

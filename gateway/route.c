/* gateway/route.c - first-match routing of a request to a backend key. */
#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <string.h>

#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"

/* ---- addresses and networks ---------------------------------------------- */

int tg_cidr_parse(const char *s, struct tg_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash;
    size_t alen;
    unsigned bits, max;
    int family;

    if (!s || !out)
        return TG_EINVAL;
    slash = strchr(s, '/');
    alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return TG_EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';

    memset(out, 0, sizeof(*out));
    /* inet_pton is strict (no hostnames, no zone ids, no short IPv4 forms
     * like "10.1"), which is what an ACL wants. */
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        family = AF_INET6;
        max = 128;
    } else {
        return TG_EINVAL;
    }

    bits = max;
    if (slash) {
        const char *p = slash + 1;

        /* Digits only: strtoul would take "+8", " 8" and "-1". */
        if (*p == '\0' || strlen(p) > 3)
            return TG_EINVAL;
        bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return TG_EINVAL;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max)
            return TG_EINVAL;
    }

    /* Host bits are cleared so "10.1.2.3/8" means 10.0.0.0/8, and contains()
     * can compare whole bytes. */
    for (unsigned i = 0; i < max / 8; i++) {
        unsigned keep = bits > i * 8 ? bits - i * 8 : 0;

        if (keep < 8)
            out->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    out->family = family;
    out->bits = bits;
    return 0;
}

static bool prefix_equal(const uint8_t *net, const uint8_t *a, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(net, a, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    return (a[whole] & (uint8_t)(0xff00u >> rest)) == net[whole];
}

bool tg_cidr_contains(const struct tg_cidr *c, const struct sockaddr *sa)
{
    if (!c || !sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        if (c->family != AF_INET)
            return false;
        return prefix_equal(c->addr, (const uint8_t *)&sin->sin_addr, c->bits);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (c->family == AF_INET6)
            return prefix_equal(c->addr, sin6->sin6_addr.s6_addr, c->bits);
        /* A dual-stack [::] listener sees IPv4 clients as ::ffff:a.b.c.d;
         * the operator wrote IPv4 networks for them. */
        if (c->family == AF_INET && tg_sockaddr_v4mapped(sin6))
            return prefix_equal(c->addr, sin6->sin6_addr.s6_addr + 12, c->bits);
    }
    return false;
}

/* ---- matching ------------------------------------------------------------ */

/* The part of normpath a prefix route leaves over, or NULL when the route
 * does not fit. Prefixes match whole segments: "boot" takes "boot" and
 * "boot/x", never "bootx64.efi". */
static const char *route_fit(const struct tg_route *r, const char *normpath)
{
    size_t n;

    if (r->is_glob)
        return fnmatch(r->match, normpath, 0) == 0 ? normpath : NULL;
    n = strlen(r->match);
    if (n == 0)
        return normpath;
    if (strncmp(normpath, r->match, n) != 0)
        return NULL;
    if (normpath[n] == '\0')
        return normpath + n;
    if (normpath[n] == '/')
        return normpath + n + 1;
    return NULL;
}

static bool route_admits(const struct tg_route *r, const struct sockaddr *client)
{
    if (r->nallow == 0)
        return true;
    for (size_t i = 0; i < r->nallow; i++)
        if (tg_cidr_contains(&r->allow[i], client))
            return true;
    return false;
}

static bool append(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n >= cap - *len)
        return false;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return true;
}

/* Placeholders were checked when the config was parsed; an unknown one here
 * means the route was built by hand, and is refused rather than copied. */
static int expand_key(const char *tmpl, const char *path, const char *rest,
                      const struct sockaddr *client, const char *mac, char *buf, size_t cap)
{
    size_t len = 0;
    char ip[INET6_ADDRSTRLEN];

    buf[0] = '\0';
    while (*tmpl) {
        const char *open = strchr(tmpl, '{');
        const char *close, *val;
        size_t nlen;

        if (!open)
            return append(buf, cap, &len, tmpl, strlen(tmpl)) ? 0 : TG_ENAMETOOLONG;
        if (!append(buf, cap, &len, tmpl, (size_t)(open - tmpl)))
            return TG_ENAMETOOLONG;
        close = strchr(open, '}');
        if (!close)
            return TG_EINVAL;
        nlen = (size_t)(close - open - 1);
        if (nlen == 4 && memcmp(open + 1, "path", 4) == 0) {
            val = path;
        } else if (nlen == 4 && memcmp(open + 1, "rest", 4) == 0) {
            val = rest;
        } else if (nlen == 8 && memcmp(open + 1, "basename", 8) == 0) {
            val = tg_path_basename(path);
        } else if (nlen == 9 && memcmp(open + 1, "client_ip", 9) == 0) {
            if (tg_sockaddr_ip(client, ip, sizeof(ip)) < 0)
                return TG_EINVAL;
            val = ip;
        } else if (nlen == 10 && memcmp(open + 1, "client_mac", 10) == 0) {
            if (!mac || !mac[0])
                return TG_ENOMAC;
            val = mac;
        } else {
            return TG_EINVAL;
        }
        if (!append(buf, cap, &len, val, strlen(val)))
            return TG_ENAMETOOLONG;
        tmpl = close + 1;
    }
    return 0;
}

/* normpath in lower case (case = lower), false when it does not fit. */
static bool lower_copy(const char *normpath, char *out, size_t cap)
{
    size_t n = strlen(normpath);

    if (n >= cap)
        return false;
    memcpy(out, normpath, n + 1);
    tg_path_lower(out);
    return true;
}

size_t tg_route_nbackends(const struct tg_route *r)
{
    return r->nbackends ? r->nbackends : 1;
}

const char *tg_route_backend_at(const struct tg_route *r, size_t i)
{
    if (r->nbackends == 0)
        return i == 0 ? r->backend : NULL;
    return i < r->nbackends ? r->backends[i] : NULL;
}

int tg_route_resolve(const struct tg_route *routes, size_t n,
                     const char *normpath, const struct sockaddr *client,
                     enum tg_opcode op, struct tg_route_match *out,
                     struct tg_error *err)
{
    return tg_route_resolve_mac(routes, n, normpath, client, NULL, op, out, err);
}

int tg_route_resolve_mac(const struct tg_route *routes, size_t n,
                         const char *normpath, const struct sockaddr *client,
                         const char *client_mac, enum tg_opcode op,
                         struct tg_route_match *out, struct tg_error *err)
{
    const struct tg_route *win = NULL;
    const char *rest = NULL, *path = normpath;
    bool fitted = false;
    char lower[TG_PATH_MAX];
    /* Twice the key size: literal text plus a long {path} may overshoot
     * before normalisation shrinks it back ("a//b", "./"). */
    char raw[2 * TG_PATH_MAX];
    int rc;

    if (op != TG_OP_RRQ && op != TG_OP_WRQ) {
        tg_error_set(err, TG_TFTP_EBADOP, "Illegal TFTP operation");
        return TG_EINVAL;
    }
    out->route = NULL;
    out->key[0] = '\0';

    if (!lower_copy(normpath, lower, sizeof(lower)))
        lower[0] = '\0';
    for (size_t i = 0; i < n && !win; i++) {
        const char *p = routes[i].name_case == TG_CASE_LOWER ? lower : normpath;
        const char *r = p[0] ? route_fit(&routes[i], p) : NULL;

        if (!r)
            continue;
        fitted = true;
        /* A route the client may not use is skipped, not final: a later,
         * wider route may still serve it. */
        if (route_admits(&routes[i], client)) {
            win = &routes[i];
            rest = r;
            path = p;
        }
    }
    if (!win && !fitted) {
        if (op == TG_OP_RRQ) {
            tg_error_set(err, TG_TFTP_ENOTFOUND, "File not found");
            return TG_ENOENT;
        }
        tg_error_set(err, TG_TFTP_EACCESS, "Access violation");
        return TG_EACCES;
    }
    if (!win || (op == TG_OP_RRQ && !win->read) ||
        (op == TG_OP_WRQ && win->write == TG_WRITE_OFF)) {
        tg_error_set(err, TG_TFTP_EACCESS, "Access violation");
        return TG_EACCES;
    }

    rc = expand_key(win->key, path, rest, client, client_mac, raw, sizeof(raw));
    if (rc == TG_ENOMAC) {
        /* The route names devices by MAC: without one there is no key
         * that would be this device's own. */
        tg_error_set(err, TG_TFTP_EACCESS, "client MAC unknown");
        return TG_EACCES;
    }
    /* Invariant 5: whatever the template and the path, the key is a clean
     * relative path, so it cannot name anything above the backend root. */
    if (rc == 0)
        rc = tg_path_normalize(raw, out->key, sizeof(out->key));
    if (rc < 0) {
        out->key[0] = '\0';
        tg_error_set(err, TG_TFTP_EACCESS, "Access violation");
        return TG_EACCES;
    }
    out->route = win;
    return 0;
}

bool tg_route_key_wants_mac(const char *tmpl)
{
    return tmpl && strstr(tmpl, "{client_mac}") != NULL;
}

bool tg_route_wants_mac(const struct tg_route *routes, size_t n, const char *normpath,
                        const struct sockaddr *client, enum tg_opcode op)
{
    /* The same pick as tg_route_resolve_mac: the first route that fits
     * the path and admits the client. A request it refuses for the op is
     * refused without a lookup. */
    for (size_t i = 0; i < n; i++) {
        const struct tg_route *r = &routes[i];

        if (!route_fit(r, normpath) || !route_admits(r, client))
            continue;
        if ((op == TG_OP_RRQ && !r->read) || (op == TG_OP_WRQ && r->write == TG_WRITE_OFF) ||
            (op != TG_OP_RRQ && op != TG_OP_WRQ))
            return false;
        return tg_route_key_wants_mac(r->key);
    }
    return false;
}

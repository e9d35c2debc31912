/* include/tftpgw/route.h - first-match routing of a request to a backend key. */
#ifndef TFTPGW_ROUTE_H
#define TFTPGW_ROUTE_H

#include <sys/socket.h>

#include "tftpgw/packet.h"
#include "tftpgw/path.h"

struct tg_remap;

enum tg_write_mode { TG_WRITE_OFF = 0, TG_WRITE_CREATE, TG_WRITE_OVERWRITE };

/* `case`: how the letters of a request's name are read. EXACT: as sent.
 * LOWER: the normalised name in lower case (ASCII) before this route is
 * matched and its key expanded. INSENSITIVE: the key as sent, and the file
 * backend finds each path component whatever its case (reads only). */
enum tg_case_mode { TG_CASE_EXACT = 0, TG_CASE_LOWER, TG_CASE_INSENSITIVE };

struct tg_cidr {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t addr[16];  /* network byte order, host bits cleared */
    unsigned bits;
};

struct tg_route {
    char *name;
    int line;            /* of its [route NAME] header, for messages */
    char *match;         /* "" matches all; a glob if it has * ? or [ (fnmatch,
                            '*' crosses '/'); otherwise a path prefix */
    bool is_glob;
    char *backend;       /* name of a [backend NAME] section: the first of
                            backends[], the one writes go to */
    char **backends;     /* `backend = a, b`: tried in order on reads, the
                            first that has the object serves (layers) */
    size_t nbackends;    /* 0 in routes built by hand: backend alone */
    enum tg_case_mode name_case; /* `case`, default exact */
    char *key;           /* template: {path} {rest} {basename} {client_ip} {client_mac};
                            default "{path}" */
    bool read;           /* RRQ allowed (default yes) */
    enum tg_write_mode write; /* default off */
    struct tg_cidr *allow;    /* empty: every client */
    size_t nallow;
    int64_t max_size;    /* upload cap in bytes, -1: none */
    unsigned refuse;     /* TG_OPT_* bits this route never negotiates */
    char *remap_file;    /* `remap = FILE`: tftpd-hpa rules; NULL: none */
    struct tg_remap *remap; /* its rules, read at load and reload (remap.h) */
};

/* expand_key's "this template needs a MAC and has none" */
#define TG_ENOMAC (-ENXIO)

struct tg_route_match {
    const struct tg_route *route;
    char key[TG_PATH_MAX];
};

/* Pick the first route whose match fits `normpath` (already normalised) and
 * whose allow list holds the client, then check the operation:
 *  - no route fits the path: ERROR 1 (RRQ) / ERROR 2 (WRQ), TG_ENOENT/TG_EACCES;
 *  - routes fit the path but none admits the client: ERROR 2, TG_EACCES;
 *  - the winning route forbids the op (read = no, write = off): ERROR 2.
 * The key is expanded and normalised again, so a template can never produce
 * a path that climbs out of the backend's root (invariant 5); ERROR 2 if it
 * would. {path} is the whole path, {rest} the path after a prefix match
 * ({path} for globs), {basename} its last segment, {client_ip} the client's
 * address text (IPv4-mapped IPv6 shown as IPv4), {client_mac} its MAC
 * (tg_route_resolve_mac). A route with case = lower is matched against,
 * and expands, the lower-case form of normpath. */
int tg_route_resolve(const struct tg_route *routes, size_t n,
                     const char *normpath, const struct sockaddr *client,
                     enum tg_opcode op, struct tg_route_match *out,
                     struct tg_error *err);

/* The route's backends in order: backends[], or backend alone when the
 * list is empty (a route built by hand). */
size_t tg_route_nbackends(const struct tg_route *r);
const char *tg_route_backend_at(const struct tg_route *r, size_t i);

/* The same, with the client's MAC ("52-54-00-12-34-56") for {client_mac};
 * NULL when it is not known: a route whose key names {client_mac} then
 * answers ERROR 2 "client MAC unknown" (TG_EACCES). tg_route_resolve is
 * this with NULL. */
int tg_route_resolve_mac(const struct tg_route *routes, size_t n,
                         const char *normpath, const struct sockaddr *client,
                         const char *client_mac, enum tg_opcode op,
                         struct tg_route_match *out, struct tg_error *err);
/* Whether the route tg_route_resolve_mac would pick for this request (and
 * let it run) has a key naming {client_mac}: only then is a lookup worth
 * making. */
bool tg_route_wants_mac(const struct tg_route *routes, size_t n, const char *normpath,
                        const struct sockaddr *client, enum tg_opcode op);
/* A key template names {client_mac}. */
bool tg_route_key_wants_mac(const char *tmpl);

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (host route). */
int tg_cidr_parse(const char *s, struct tg_cidr *out);
/* IPv4-mapped IPv6 clients match IPv4 networks. */
bool tg_cidr_contains(const struct tg_cidr *c, const struct sockaddr *sa);

#endif

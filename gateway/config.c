/* gateway/config.c - the INI configuration (inih), validated once.
 *
 * inih does the key = value splitting, comments and whitespace. Everything
 * else goes through our own line reader (ini_parse_stream), because the
 * Debian build of inih r55 gives the handler no line numbers and never calls
 * it for a section without keys: the reader counts lines, sees every section
 * header (so an empty [route x] is still caught), and strips indentation so
 * an indented key is never taken for a continuation line.
 *
 * One file over 900 lines on purpose: the line reader, the three kinds of
 * section and the whole-file checks share one parse context, and every
 * message is built from it ("FILE:LINE: [section] key: ..."). Values go
 * through key tables (gateway/keys.c): server_keys[] and route_keys[]
 * here, each backend type's in its own file. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ini.h>

#include "tftpgw/config.h"
#include "tftpgw/keys.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/remap.h"
#include "tftpgw/window.h"

#define CONFIG_FILE_MAX (1024 * 1024) /* a config larger than this is a mistake */
#define NAME_MAX_LEN 64               /* of a [backend NAME] / [route NAME] */
#define VALUE_MAX 4096
#define MSG_MAX 256

/* ---- shared value parsers ------------------------------------------------ */



/* ---- parse state --------------------------------------------------------- */

enum sect_kind { SECT_NONE, SECT_SERVER, SECT_BACKEND, SECT_ROUTE };

#define SERVER_KEYS_MAX 32 /* also bounds the [route] and [backend] keys in seen[] */

struct parse_ctx {
    const char *file;          /* for messages: the path or "<string>" */
    const char *cur;           /* reader position in the text */
    int line;                  /* of the line last handed to inih */
    struct tg_config *cfg;

    enum sect_kind kind;
    char sect[NAME_MAX_LEN + 16]; /* "[route boot]", for messages */
    int server_line;           /* 0 until [server] is seen */
    int seen[SERVER_KEYS_MAX]; /* line each key of this section was set on */

    int rc;                    /* first error, 0 while none */
    int err_line;
    char *err;
    size_t errlen;
};

/* Record the first error only: later ones are often its consequences. */
static int fail(struct parse_ctx *c, int rc, int line, const char *sect,
                const char *key, const char *fmt, ...) TG_PRINTF(6, 7);

static int fail(struct parse_ctx *c, int rc, int line, const char *sect,
                const char *key, const char *fmt, ...)
{
    va_list ap;
    int n = 0;

    if (c->rc < 0)
        return c->rc;
    c->rc = rc;
    c->err_line = line;
    if (!c->err || c->errlen == 0)
        return rc;
    if (line > 0)
        n = snprintf(c->err, c->errlen, "%s:%d: ", c->file, line);
    else
        n = snprintf(c->err, c->errlen, "%s: ", c->file);
    if (n >= 0 && (size_t)n < c->errlen && sect && *sect)
        n += snprintf(c->err + n, c->errlen - (size_t)n, "%s%s", sect,
                      key ? " " : ": ");
    if (n >= 0 && (size_t)n < c->errlen && key)
        n += snprintf(c->err + n, c->errlen - (size_t)n, "%s: ", key);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int fail_oom(struct parse_ctx *c)
{
    return fail(c, TG_ENOMEM, c->line, NULL, NULL, "out of memory");
}

/* A value set into msg by a setter below: TG_EINVAL, or TG_ENOMEM. */
static int bad(char *msg, size_t cap, const char *fmt, ...) TG_PRINTF(3, 4);

static int bad(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}

/* Lists are separated by blanks or commas, so "a, b" and "a b" both work. */
static const char *next_token(const char *s, char *tok, size_t cap, int *rc)
{
    size_t n;

    *rc = 0;
    s += strspn(s, " \t,");
    if (*s == '\0')
        return NULL;
    n = strcspn(s, " \t,");
    if (n >= cap) {
        *rc = TG_ENAMETOOLONG;
        n = cap - 1;
    }
    memcpy(tok, s, n);
    tok[n] = '\0';
    return s + strcspn(s, " \t,");
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    /* Names end up in log lines and metrics labels: keep them plain. */
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* ---- [server] ------------------------------------------------------------ */

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_free(v[i]);
    tg_free(v);
}

static int parse_port(const char *s, unsigned *out)
{
    uint64_t v;

    if (tg_parse_u64(s, 65535, &v) < 0 || v == 0)
        return TG_EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* "1.2.3.4:69" or "[2001:db8::1]:69"; hostnames are not resolved, so a
 * config never depends on DNS at start-up. */
static int check_listen(const char *tok, char *msg, size_t cap)
{
    char addr[INET6_ADDRSTRLEN];
    uint8_t bin[16];
    const char *port;
    size_t alen;
    unsigned p;
    int family;

    if (tok[0] == '[') {
        const char *end = strstr(tok, "]:");

        if (!end)
            return bad(msg, cap, "\"%s\": expected [IPV6]:PORT", tok);
        alen = (size_t)(end - tok - 1);
        if (alen == 0 || alen >= sizeof(addr))
            return bad(msg, cap, "\"%s\": bad IPv6 address", tok);
        memcpy(addr, tok + 1, alen);
        port = end + 2;
        family = AF_INET6;
    } else {
        const char *colon = strrchr(tok, ':');

        if (!colon)
            return bad(msg, cap, "\"%s\": expected ADDR:PORT", tok);
        alen = (size_t)(colon - tok);
        if (memchr(tok, ':', alen))
            return bad(msg, cap, "\"%s\": write IPv6 addresses as [ADDR]:PORT", tok);
        if (alen == 0 || alen >= sizeof(addr))
            return bad(msg, cap, "\"%s\": bad IPv4 address", tok);
        memcpy(addr, tok, alen);
        port = colon + 1;
        family = AF_INET;
    }
    addr[alen] = '\0';
    if (inet_pton(family, addr, bin) != 1)
        return bad(msg, cap, "\"%s\": bad %s address", tok,
                   family == AF_INET ? "IPv4" : "IPv6");
    if (parse_port(port, &p) < 0)
        return bad(msg, cap, "\"%s\": port must be 1..65535", tok);
    return 0;
}

static int set_listen(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_server_cfg *s = obj;
    char tok[INET6_ADDRSTRLEN + 16];
    char **list = NULL;
    size_t n = 0;
    const char *p = v;
    int rc = 0;

    while ((p = next_token(p, tok, sizeof(tok), &rc)) != NULL) {
        char **grown;

        if (rc < 0) {
            rc = bad(msg, cap, "\"%s...\": too long for an address", tok);
            goto out;
        }
        rc = check_listen(tok, msg, cap);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(list[i], tok) == 0) {
                rc = bad(msg, cap, "\"%s\" is listed twice", tok);
                goto out;
            }
        }
        grown = tg_realloc(list, (n + 1) * sizeof(*list));
        if (!grown) {
            rc = TG_ENOMEM;
            goto out;
        }
        list = grown;
        list[n] = tg_strdup(tok);
        if (!list[n]) {
            rc = TG_ENOMEM;
            goto out;
        }
        n++;
    }
    if (n == 0) {
        rc = bad(msg, cap, "empty list");
        goto out;
    }
    free_list(s->listen, s->nlisten);
    s->listen = list;
    s->nlisten = n;
    return 0;
out:
    free_list(list, n);
    return rc;
}

static int set_port_range(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_server_cfg *s = obj;
    char lo[8], hi[8];
    const char *colon = strchr(v, ':');
    unsigned a, b;

    if (!colon || (size_t)(colon - v) >= sizeof(lo) || strlen(colon + 1) >= sizeof(hi))
        return bad(msg, cap, "expected LO:HI, e.g. 30000:30999");
    memcpy(lo, v, (size_t)(colon - v));
    lo[colon - v] = '\0';
    strcpy(hi, colon + 1);
    if (parse_port(lo, &a) < 0 || parse_port(hi, &b) < 0)
        return bad(msg, cap, "ports must be 1..65535");
    if (a > b)
        return bad(msg, cap, "%u is above %u", a, b);
    s->port_lo = a;
    s->port_hi = b;
    return 0;
}

/* [server] workers: "auto" is 0 here and becomes the CPUs this process
 * may run on when the server starts (gateway/workers.c). */
static int set_workers(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_server_cfg *s = obj;
    char *end;
    unsigned long n;

    if (strcmp(v, "auto") == 0) {
        s->workers = 0;
        return 0;
    }
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < 1 || n > TG_WORKERS_MAX)
        return bad(msg, cap, "\"%s\": a number 1..%u or auto", v, TG_WORKERS_MAX);
    s->workers = (unsigned)n;
    return 0;
}

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const log_target_names[] = { "stderr", "syslog", NULL };

#define SRV(f) TG_KEY_AT(struct tg_server_cfg, f)

/* One row per [server] key: parsing, bounds and defaults all come from here
 * (gateway/keys.c), and etc/tftpgw.ini documents the same rows. */
static const struct tg_key server_keys[] = {
    { .name = "listen", .type = TG_KEY_FUNC, .def = "0.0.0.0:69 [::]:69", .set = set_listen },
    { .name = "port_range", .type = TG_KEY_FUNC, .set = set_port_range },
    { .name = "max_sessions", .type = TG_KEY_UINT, SRV(max_sessions), .min = 1, .max = 100000,
      .def = "1000" },
    { .name = "max_sessions_per_client", .type = TG_KEY_UINT, SRV(max_sessions_per_client),
      .min = 0, .max = 100000, .def = "0" },
    { .name = "timeout", .type = TG_KEY_DURATION, SRV(timeout_ms), .min = 10, .max = 255000,
      .unit_ms = 1, .def = "1000" },
    { .name = "retries", .type = TG_KEY_UINT, SRV(retries), .min = 1, .max = 50, .def = "5" },
    { .name = "max_blksize", .type = TG_KEY_UINT, SRV(max_blksize), .min = TG_BLKSIZE_MIN,
      .max = TG_BLKSIZE_MAX, .def = "65464" },
    { .name = "max_windowsize", .type = TG_KEY_UINT, SRV(max_windowsize), .min = 1,
      .max = TG_WINDOW_MAX, .def = "64" },
    { .name = "max_window_bytes", .type = TG_KEY_SIZE, SRV(max_window_bytes), .min = 512,
      .max = 256u << 20, .def = "4M" },
    { .name = "rollover", .type = TG_KEY_UINT, SRV(rollover), .min = 0, .max = 1, .def = "0" },
    { .name = "user", .type = TG_KEY_STRING, SRV(user) },
    { .name = "log_level", .type = TG_KEY_ENUM, SRV(log_level), .def = "info",
      .names = log_level_names },
    { .name = "log_format", .type = TG_KEY_ENUM, SRV(log_format), .def = "text",
      .names = log_format_names },
    { .name = "log_target", .type = TG_KEY_ENUM, SRV(log_target), .def = "stderr",
      .names = log_target_names },
    { .name = "single_port", .type = TG_KEY_BOOL, SRV(single_port), .def = "no" },
    { .name = "single_port_window", .type = TG_KEY_SIZE, SRV(single_port_window), .min = 512,
      .max = 256u << 20, .def = "64k" },
    { .name = "single_port_writes", .type = TG_KEY_BOOL, SRV(single_port_writes), .def = "no" },
    { .name = "client_rate", .type = TG_KEY_SIZE, SRV(client_rate), .min = 0,
      .max = 4095ull << 20, .def = "0" },
    { .name = "metrics_listen", .type = TG_KEY_STRING, SRV(metrics_listen) },
    { .name = "drain_timeout", .type = TG_KEY_DURATION, SRV(drain_timeout_s), .min = 0,
      .max = 86400, .unit_ms = 1000, .def = "30" },
    { .name = "rate_limit", .type = TG_KEY_UINT, SRV(rate_limit), .min = 0, .max = 1000000,
      .def = "0" },
    { .name = "rate_burst", .type = TG_KEY_UINT, SRV(rate_burst), .min = 0, .max = 1000000,
      .def = "0" },
    { .name = "chroot", .type = TG_KEY_STRING, SRV(chroot) },
    { .name = "workers", .type = TG_KEY_FUNC, .def = "1", .set = set_workers },
};

_Static_assert(TG_ARRAY_LEN(server_keys) <= SERVER_KEYS_MAX, "seen[] too small");

static int server_defaults(struct tg_server_cfg *s)
{
    memset(s, 0, sizeof(*s));
    return tg_key_defaults(s, server_keys, TG_ARRAY_LEN(server_keys));
}

static void server_free(struct tg_server_cfg *s)
{
    free_list(s->listen, s->nlisten);
    tg_free(s->user);
    tg_free(s->metrics_listen);
    tg_free(s->chroot);
}

/* ---- [route NAME] -------------------------------------------------------- */

static const char *const placeholders[] = { "path", "rest", "basename", "client_ip",
                                            "client_mac" };

/* Checks the template's braces and names, then expands it with a harmless
 * stand-in so a literal "../" or "/.." is refused now, not per request. The
 * resolver normalises every real expansion again (invariant 5). */
static int check_key_template(const char *t, char *msg, size_t cap)
{
    char sample[TG_PATH_MAX], norm[TG_PATH_MAX];
    size_t len = 0;
    int rc;

    for (const char *p = t; *p; p++) {
        const char *add = p;
        size_t alen = 1;

        if (*p == '}')
            return bad(msg, cap, "'}' without '{'");
        if (*p == '{') {
            const char *end = strpbrk(p + 1, "{}");
            size_t nlen;
            bool known = false;

            if (!end || *end == '{')
                return bad(msg, cap, "'{' without '}'");
            nlen = (size_t)(end - p - 1);
            for (size_t i = 0; i < TG_ARRAY_LEN(placeholders); i++)
                if (strlen(placeholders[i]) == nlen &&
                    memcmp(placeholders[i], p + 1, nlen) == 0)
                    known = true;
            if (!known)
                return bad(msg, cap, "unknown placeholder {%.*s} (known: {path} "
                           "{rest} {basename} {client_ip} {client_mac})", (int)nlen, p + 1);
            add = "x";
            p = end;
        }
        if (len + alen >= sizeof(sample))
            return bad(msg, cap, "template too long");
        memcpy(sample + len, add, alen);
        len += alen;
    }
    sample[len] = '\0';
    rc = tg_path_normalize(sample, norm, sizeof(norm));
    if (rc == TG_ENOENT)
        return bad(msg, cap, "\"%s\" expands to an empty path", t);
    if (rc < 0)
        return bad(msg, cap, "\"%s\" would leave the backend root or holds "
                   "characters a path may not have", t);
    return 0;
}

static int replace_str(char **field, const char *v)
{
    char *dup = tg_strdup(v);

    if (!dup)
        return TG_ENOMEM;
    tg_free(*field);
    *field = dup;
    return 0;
}

static void free_layers(struct tg_route *r)
{
    free_list(r->backends, r->nbackends);
    r->backends = NULL;
    r->nbackends = 0;
}

/* The route's layers become list[0..n) (taken over); NULL when out of
 * memory. */
static char **route_layers_set(struct tg_route *r, char **list, size_t n)
{
    char **v = tg_calloc(n, sizeof(*v));

    if (!v)
        return NULL;
    memcpy(v, list, n * sizeof(*v));
    free_layers(r);
    r->nbackends = n;
    return v;
}

static int rset_match(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    char norm[TG_PATH_MAX];
    int rc;

    r->is_glob = strpbrk(v, "*?[") != NULL;
    if (r->is_glob) {
        /* Request paths arrive without a leading '/', so a pattern that has
         * one could never match. */
        v += strspn(v, "/");
        return replace_str(&r->match, v);
    }
    rc = tg_path_normalize(v, norm, sizeof(norm));
    if (rc == TG_ENOENT)
        return replace_str(&r->match, ""); /* "" or "/": everything */
    if (rc == TG_ENAMETOOLONG)
        return bad(msg, cap, "too long");
    if (rc < 0)
        return bad(msg, cap, "\"%s\" has a \"..\" segment or characters a path "
                   "may not have", v);
    return replace_str(&r->match, norm);
}

#define ROUTE_LAYERS_MAX 8 /* backends one route may try in turn */

/* `backend = local, edge`: layers tried in order on reads. Whether each
 * name has a [backend] section is checked once the whole file is read. */
static int rset_backend(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    char tok[NAME_MAX_LEN + 2];
    char *list[ROUTE_LAYERS_MAX];
    const char *p = v;
    size_t n = 0;
    int rc = 0;

    while ((p = next_token(p, tok, sizeof(tok), &rc)) != NULL) {
        if (rc < 0 || !valid_name(tok)) {
            rc = bad(msg, cap, "\"%s\" is not a backend name", tok);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(list[i], tok) == 0) {
                rc = bad(msg, cap, "\"%s\" is listed twice", tok);
                goto out;
            }
        if (n == ROUTE_LAYERS_MAX) {
            rc = bad(msg, cap, "more than %d backends", ROUTE_LAYERS_MAX);
            goto out;
        }
        if (!(list[n] = tg_strdup(tok))) {
            rc = TG_ENOMEM;
            goto out;
        }
        n++;
    }
    if (n == 0) {
        rc = bad(msg, cap, "empty list");
        goto out;
    }
    rc = replace_str(&r->backend, list[0]);
    if (rc == 0 && !(r->backends = route_layers_set(r, list, n)))
        rc = TG_ENOMEM;
    if (rc == 0)
        return 0;
out:
    for (size_t i = 0; i < n; i++)
        tg_free(list[i]);
    return rc;
}

static int rset_key(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    int rc = check_key_template(v, msg, cap);

    return rc < 0 ? rc : replace_str(&r->key, v);
}

static int rset_write(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    static const char *const names[] = { "off", "create", "overwrite" };

    for (size_t i = 0; i < TG_ARRAY_LEN(names); i++) {
        if (strcasecmp(v, names[i]) == 0) {
            r->write = (enum tg_write_mode)i;
            return 0;
        }
    }
    return bad(msg, cap, "\"%s\": expected off, create or overwrite", v);
}

static int rset_allow(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    char tok[INET6_ADDRSTRLEN + 16];
    struct tg_cidr *list = NULL;
    size_t n = 0;
    const char *p = v;
    int rc = 0;

    while ((p = next_token(p, tok, sizeof(tok), &rc)) != NULL) {
        struct tg_cidr *grown = tg_realloc(list, (n + 1) * sizeof(*list));

        if (!grown) {
            rc = TG_ENOMEM;
            goto out;
        }
        list = grown;
        if (rc < 0 || tg_cidr_parse(tok, &list[n]) < 0) {
            rc = bad(msg, cap, "\"%s\" is not an address or ADDR/BITS network", tok);
            goto out;
        }
        n++;
    }
    /* An empty list could be read as "nobody" or as "everybody"; make the
     * operator say which by leaving the key out instead. */
    if (n == 0) {
        rc = bad(msg, cap, "empty list (leave allow out to admit every client)");
        goto out;
    }
    tg_free(r->allow);
    r->allow = list;
    r->nallow = n;
    return 0;
out:
    tg_free(list);
    return rc;
}

static int rset_max_size(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    int rc = tg_config_parse_size(v, &r->max_size);

    if (rc == TG_ERANGE)
        return bad(msg, cap, "\"%s\" is too large", v);
    if (rc < 0)
        return bad(msg, cap, "\"%s\" is not a size (123, 64k, 4M, 1G)", v);
    return 0;
}

static int rset_refuse(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    static const struct { const char *name; unsigned bit; } opts[] = {
        { "blksize", TG_OPT_BLKSIZE }, { "timeout", TG_OPT_TIMEOUT },
        { "tsize", TG_OPT_TSIZE }, { "windowsize", TG_OPT_WINDOWSIZE },
    };
    char tok[32];
    const char *p = v;
    unsigned bits = 0;
    bool any = false;
    int rc;

    while ((p = next_token(p, tok, sizeof(tok), &rc)) != NULL) {
        size_t i;

        for (i = 0; i < TG_ARRAY_LEN(opts); i++)
            if (rc == 0 && strcasecmp(tok, opts[i].name) == 0)
                break;
        if (i == TG_ARRAY_LEN(opts))
            return bad(msg, cap, "unknown option \"%s\" (expected blksize, "
                       "timeout, tsize, windowsize)", tok);
        bits |= opts[i].bit;
        any = true;
    }
    if (!any)
        return bad(msg, cap, "empty list");
    r->refuse = bits;
    return 0;
}

/* The rules are read here, at load or reload (never on the loop), so a
 * bad file is refused with its line number like any bad key. */
static int rset_remap(void *obj, const char *v, char *msg, size_t cap)
{
    struct tg_route *r = obj;
    struct tg_remap *rm;
    char *file;
    int rc;

    if (!*v)
        return bad(msg, cap, "empty file name");
    if ((rc = tg_remap_load(v, &rm, msg, cap)) == TG_ENOMEM)
        return TG_ENOMEM;
    if (rc < 0)
        return TG_EINVAL;
    if (!(file = tg_strdup(v))) {
        tg_remap_free(rm);
        return TG_ENOMEM;
    }
    tg_remap_free(r->remap);
    tg_free(r->remap_file);
    r->remap = rm;
    r->remap_file = file;
    return 0;
}

static const char *const case_names[] = { "exact", "lower", "insensitive", NULL };

static const struct tg_key route_keys[] = {
    { .name = "match", .type = TG_KEY_FUNC, .set = rset_match },
    { .name = "backend", .type = TG_KEY_FUNC, .set = rset_backend },
    { .name = "key", .type = TG_KEY_FUNC, .set = rset_key },
    { .name = "read", .type = TG_KEY_BOOL, TG_KEY_AT(struct tg_route, read) },
    { .name = "write", .type = TG_KEY_FUNC, .set = rset_write },
    { .name = "allow", .type = TG_KEY_FUNC, .set = rset_allow },
    { .name = "max_size", .type = TG_KEY_FUNC, .set = rset_max_size },
    { .name = "refuse", .type = TG_KEY_FUNC, .set = rset_refuse },
    { .name = "case", .type = TG_KEY_ENUM, TG_KEY_AT(struct tg_route, name_case),
      .def = "exact", .names = case_names },
    { .name = "remap", .type = TG_KEY_FUNC, .set = rset_remap },
};

_Static_assert(TG_ARRAY_LEN(route_keys) <= SERVER_KEYS_MAX, "seen[] too small");

static void route_free(struct tg_route *r)
{
    tg_free(r->name);
    tg_free(r->match);
    tg_free(r->backend);
    free_layers(r);
    tg_free(r->key);
    tg_free(r->allow);
    tg_free(r->remap_file);
    tg_remap_free(r->remap);
}

static int route_init(struct tg_route *r, const char *name, int line)
{
    memset(r, 0, sizeof(*r));
    r->line = line;
    r->read = true;
    r->write = TG_WRITE_OFF;
    r->max_size = -1;
    r->name = tg_strdup(name);
    r->match = tg_strdup("");
    r->key = tg_strdup("{path}");
    if (!r->name || !r->match || !r->key) {
        route_free(r);
        return TG_ENOMEM;
    }
    return 0;
}

static void backend_free(struct tg_backend_cfg *b)
{
    tg_free(b->name);
    tg_free(b->type);
    for (size_t i = 0; i < b->nkv; i++) {
        tg_free(b->kv[i].key);
        tg_free(b->kv[i].value);
    }
    tg_free(b->kv);
}

/* ---- sections ------------------------------------------------------------ */

static int add_route(struct parse_ctx *c, const char *name, int line)
{
    struct tg_config *cfg = c->cfg;
    struct tg_route *grown;

    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return fail(c, TG_EINVAL, line, c->sect, NULL,
                        "duplicate section (first at line %d)", cfg->routes[i].line);
    grown = tg_realloc(cfg->routes, (cfg->nroutes + 1) * sizeof(*grown));
    if (!grown)
        return fail_oom(c);
    cfg->routes = grown;
    if (route_init(&cfg->routes[cfg->nroutes], name, line) < 0)
        return fail_oom(c);
    cfg->nroutes++;
    return 0;
}

static int add_backend(struct parse_ctx *c, const char *name, int line)
{
    struct tg_config *cfg = c->cfg;
    struct tg_backend_cfg *grown, *b;

    for (size_t i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].name, name) == 0)
            return fail(c, TG_EINVAL, line, c->sect, NULL,
                        "duplicate section (first at line %d)",
                        cfg->backends[i].line);
    grown = tg_realloc(cfg->backends, (cfg->nbackends + 1) * sizeof(*grown));
    if (!grown)
        return fail_oom(c);
    cfg->backends = grown;
    b = &cfg->backends[cfg->nbackends];
    memset(b, 0, sizeof(*b));
    b->line = line;
    b->name = tg_strdup(name);
    if (!b->name)
        return fail_oom(c);
    cfg->nbackends++;
    return 0;
}

/* s is a whole line without leading blanks, starting with '['. A header
 * without ']' is left to inih, which reports it as a syntax error. */
static int section_start(struct parse_ctx *c, const char *s)
{
    char kind[16], name[NAME_MAX_LEN + 2];
    const char *end = strchr(s, ']'), *p, *q;
    size_t n;

    if (!end)
        return 0;
    c->kind = SECT_NONE;
    memset(c->seen, 0, sizeof(c->seen));
    /* As written, for messages about the header itself; cut to fit. */
    n = (size_t)(end - s - 1);
    if (n > sizeof(c->sect) - 3)
        n = sizeof(c->sect) - 3;
    snprintf(c->sect, sizeof(c->sect), "[%.*s]", (int)n, s + 1);

    for (p = end + 1; isspace((unsigned char)*p); p++)
        ;
    if (*p && *p != ';' && *p != '#')
        return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                    "unexpected text after ']'");

    for (p = s + 1; p < end && isspace((unsigned char)*p); p++)
        ;
    for (q = p; q < end && !isspace((unsigned char)*q); q++)
        ;
    n = (size_t)(q - p);
    if (n >= sizeof(kind))
        n = sizeof(kind) - 1;
    memcpy(kind, p, n);
    kind[n] = '\0';
    for (p = q; p < end && isspace((unsigned char)*p); p++)
        ;
    for (q = end; q > p && isspace((unsigned char)q[-1]); q--)
        ;
    n = (size_t)(q - p);
    if (n >= sizeof(name))
        return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                    "name longer than %d characters", NAME_MAX_LEN);
    memcpy(name, p, n);
    name[n] = '\0';

    if (strcmp(kind, "server") == 0) {
        if (*name)
            return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                        "[server] takes no name");
        snprintf(c->sect, sizeof(c->sect), "[server]");
        if (c->server_line)
            return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                        "duplicate section (first at line %d)",
                        c->server_line);
        c->server_line = c->line;
        c->kind = SECT_SERVER;
        return 0;
    }
    if (strcmp(kind, "backend") != 0 && strcmp(kind, "route") != 0)
        return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                    "unknown section (expected [server], [backend NAME] "
                    "or [route NAME])");
    if (!*name)
        return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                    "missing name: [%s NAME]", kind);
    if (!valid_name(name))
        return fail(c, TG_EINVAL, c->line, c->sect, NULL,
                    "name may only use letters, digits, '_', '-' and '.'");
    snprintf(c->sect, sizeof(c->sect), "[%s %s]", kind, name);
    if (kind[0] == 'b') {
        if (add_backend(c, name, c->line) < 0)
            return c->rc;
        c->kind = SECT_BACKEND;
    } else {
        if (add_route(c, name, c->line) < 0)
            return c->rc;
        c->kind = SECT_ROUTE;
    }
    return 0;
}

/* ---- inih callbacks ------------------------------------------------------ */

static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *c = stream;
    const char *p = c->cur, *eol;
    size_t len;

    if (c->rc < 0 || *p == '\0')
        return NULL;
    eol = strchr(p, '\n');
    len = eol ? (size_t)(eol - p) : strlen(p);
    c->cur = p + len + (eol ? 1 : 0);
    c->line++;

    /* The BOM is dropped here rather than by inih so that a first line of
     * "\xEF\xBB\xBF[server]" is still seen as a section header below. */
    if (c->line == 1 && len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        len -= 3;
    }
    while (len > 0 && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    /* inih would cut a longer line in two and parse the tail as a line of
     * its own. It needs room for '\n' and the NUL (its docs say 3). */
    if (num < 3 || len > (size_t)num - 3) {
        fail(c, TG_EINVAL, c->line, NULL, NULL, "line longer than %d characters",
             num - 3);
        return NULL;
    }
    memcpy(str, p, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    if (*str == '[')
        section_start(c, str);
    return c->rc < 0 ? NULL : str;
}

static int server_key(struct parse_ctx *c, const char *name, const char *v)
{
    char msg[MSG_MAX];
    int rc;

    for (size_t i = 0; i < TG_ARRAY_LEN(server_keys); i++) {
        if (strcmp(name, server_keys[i].name) != 0)
            continue;
        if (c->seen[i])
            return fail(c, TG_EINVAL, c->line, c->sect, name,
                        "duplicate key (first at line %d)", c->seen[i]);
        c->seen[i] = c->line;
        rc = tg_key_set(&c->cfg->server, &server_keys[i], v, msg, sizeof(msg));
        if (rc == TG_ENOMEM)
            return fail_oom(c);
        if (rc < 0)
            return fail(c, rc, c->line, c->sect, name, "%s", msg);
        return 0;
    }
    return fail(c, TG_EINVAL, c->line, c->sect, name, "unknown key");
}

static int route_key(struct parse_ctx *c, const char *name, const char *v)
{
    struct tg_route *r = &c->cfg->routes[c->cfg->nroutes - 1];
    char msg[MSG_MAX];
    int rc;

    for (size_t i = 0; i < TG_ARRAY_LEN(route_keys); i++) {
        if (strcmp(name, route_keys[i].name) != 0)
            continue;
        if (c->seen[i])
            return fail(c, TG_EINVAL, c->line, c->sect, name,
                        "duplicate key (first at line %d)", c->seen[i]);
        c->seen[i] = c->line;
        rc = tg_key_set(r, &route_keys[i], v, msg, sizeof(msg));
        if (rc == TG_ENOMEM)
            return fail_oom(c);
        if (rc < 0)
            return fail(c, rc, c->line, c->sect, name, "%s", msg);
        return 0;
    }
    return fail(c, TG_EINVAL, c->line, c->sect, name, "unknown key");
}

#define TYPE_NAME(t) #t,
static const char *const backend_types[] = { TG_BACKEND_TYPES(TYPE_NAME) };

/* "file, http, s3 or cache", for messages. */
static const char *type_list(char *buf, size_t cap)
{
    size_t n = 0, last = TG_ARRAY_LEN(backend_types) - 1;

    buf[0] = '\0';
    for (size_t i = 0; i <= last && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i == 0 ? "" : i == last ? " or " : ", ",
                              backend_types[i]);
    return buf;
}

/* Only `type` is understood here; the backend checks its own keys when it
 * is created, so the parser stays ignorant of HTTP and S3. */
static int backend_key(struct parse_ctx *c, const char *name, const char *v)
{
    struct tg_backend_cfg *b = &c->cfg->backends[c->cfg->nbackends - 1];
    struct tg_kv *grown;
    char types[64];
    size_t i;

    if (strcmp(name, "type") == 0) {
        if (b->type)
            return fail(c, TG_EINVAL, c->line, c->sect, name,
                        "duplicate key (first at line %d)", c->seen[0]);
        for (i = 0; i < TG_ARRAY_LEN(backend_types); i++)
            if (strcmp(v, backend_types[i]) == 0)
                break;
        if (i == TG_ARRAY_LEN(backend_types))
            return fail(c, TG_EINVAL, c->line, c->sect, name,
                        "unknown type \"%s\" (expected %s)", v, type_list(types, sizeof(types)));
        b->type = tg_strdup(v);
        if (!b->type)
            return fail_oom(c);
        c->seen[0] = c->line;
        return 0;
    }
    /* `header` is the one key a backend may repeat: one per HTTP header. */
    for (i = 0; i < b->nkv && strcmp(name, "header") != 0; i++)
        if (strcmp(b->kv[i].key, name) == 0)
            return fail(c, TG_EINVAL, c->line, c->sect, name,
                        "duplicate key (first at line %d)", b->kv[i].line);
    grown = tg_realloc(b->kv, (b->nkv + 1) * sizeof(*grown));
    if (!grown)
        return fail_oom(c);
    b->kv = grown;
    grown[b->nkv].key = tg_strdup(name);
    grown[b->nkv].value = tg_strdup(v);
    grown[b->nkv].line = c->line;
    if (!grown[b->nkv].key || !grown[b->nkv].value) {
        tg_free(grown[b->nkv].key);
        tg_free(grown[b->nkv].value);
        return fail_oom(c);
    }
    b->nkv++;
    return 0;
}

/* inih's section argument is ignored: read_line tracks sections itself. */
static int on_key(void *user, const char *section, const char *name,
                  const char *value)
{
    struct parse_ctx *c = user;
    char v[VALUE_MAX];
    size_t n = strlen(value);
    int rc;

    (void)section;
    if (c->rc < 0)
        return 0;
    /* One pair of double quotes is dropped, so `match = ""` reads as the
     * empty string other INI dialects would make of it. */
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value++;
        n -= 2;
    }
    if (n >= sizeof(v)) {
        fail(c, TG_EINVAL, c->line, c->sect, name, "value too long");
        return 0;
    }
    memcpy(v, value, n);
    v[n] = '\0';

    switch (c->kind) {
    case SECT_SERVER:
        rc = server_key(c, name, v);
        break;
    case SECT_BACKEND:
        rc = backend_key(c, name, v);
        break;
    case SECT_ROUTE:
        rc = route_key(c, name, v);
        break;
    default:
        rc = fail(c, TG_EINVAL, c->line, NULL, name, "key outside of any section");
        break;
    }
    return rc < 0 ? 0 : 1;
}

/* ---- whole-config checks and entry points -------------------------------- */

static const struct tg_backend_cfg *find_backend(const struct tg_config *cfg,
                                                 const char *name)
{
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].name, name) == 0)
            return &cfg->backends[i];
    return NULL;
}

/* Every layer of the route names a [backend] section, and case =
 * insensitive only goes to backends that can look for a name whatever its
 * case: a directory can be listed, an HTTP or S3 namespace cannot (and a
 * cache keys its copies by the name its upstream knows). */
static int check_layers(struct parse_ctx *c, const struct tg_route *r, const char *sect)
{
    for (size_t i = 0; i < tg_route_nbackends(r); i++) {
        const char *name = tg_route_backend_at(r, i);
        const struct tg_backend_cfg *b = find_backend(c->cfg, name);

        if (!b)
            return fail(c, TG_EINVAL, r->line, sect, "backend", "no [backend %s] section",
                        name);
        if (r->name_case == TG_CASE_INSENSITIVE && strcmp(b->type, "file") != 0)
            return fail(c, TG_EINVAL, r->line, sect, "case",
                        "insensitive needs a file backend, but [backend %s] is type %s "
                        "(use case = lower, or name the files in one case)",
                        name, b->type);
    }
    return 0;
}

static int check_config(struct parse_ctx *c)
{
    const struct tg_config *cfg = c->cfg;
    char sect[NAME_MAX_LEN + 16], types[64];

    for (size_t i = 0; i < cfg->nbackends; i++) {
        const struct tg_backend_cfg *b = &cfg->backends[i];

        snprintf(sect, sizeof(sect), "[backend %s]", b->name);
        if (!b->type)
            return fail(c, TG_EINVAL, b->line, sect, "type", "missing (%s)",
                        type_list(types, sizeof(types)));
    }
    if (cfg->nroutes == 0)
        return fail(c, TG_EINVAL, 0, NULL, NULL,
                    "no [route NAME] section: at least one is required");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct tg_route *r = &cfg->routes[i];

        snprintf(sect, sizeof(sect), "[route %s]", r->name);
        if (!r->backend)
            return fail(c, TG_EINVAL, r->line, sect, "backend", "missing");
        if (check_layers(c, r, sect) < 0)
            return c->rc;
    }
    return 0;
}

void tg_config_free(struct tg_config *cfg)
{
    if (!cfg)
        return;
    tg_free(cfg->file);
    server_free(&cfg->server);
    for (size_t i = 0; i < cfg->nbackends; i++)
        backend_free(&cfg->backends[i]);
    tg_free(cfg->backends);
    for (size_t i = 0; i < cfg->nroutes; i++)
        route_free(&cfg->routes[i]);
    tg_free(cfg->routes);
    tg_free(cfg);
}

static struct tg_config *config_new(const char *file)
{
    struct tg_config *cfg = tg_calloc(1, sizeof(*cfg));

    if (!cfg)
        return NULL;
    if (server_defaults(&cfg->server) < 0)
        goto fail;
    if (file && !(cfg->file = tg_strdup(file)))
        goto fail;
    return cfg;
fail:
    tg_config_free(cfg);
    return NULL;
}

int tg_config_parse_string(const char *text, const char *filename,
                           struct tg_config **out, char *err, size_t errlen)
{
    struct parse_ctx c;
    int ret;

    memset(&c, 0, sizeof(c));
    c.file = filename ? filename : "<string>";
    c.cur = text ? text : "";
    c.err = err;
    c.errlen = errlen;
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;

    c.cfg = config_new(filename);
    if (!c.cfg)
        return fail(&c, TG_ENOMEM, 0, NULL, NULL, "out of memory");

    ret = ini_parse_stream(read_line, &c, on_key, &c);
    /* inih reports the first bad line, ours or its own; a line it blames
     * that we did not is a syntax error (no ']', no '='). */
    if (ret > 0 && (c.rc == 0 || ret < c.err_line)) {
        c.rc = 0;
        fail(&c, TG_EINVAL, ret, NULL, NULL,
             "syntax error: expected [section], KEY = VALUE or a comment");
    } else if (ret < 0 && c.rc == 0) {
        fail(&c, TG_ENOMEM, 0, NULL, NULL, "out of memory");
    }
    if (c.rc == 0)
        check_config(&c);
    if (c.rc < 0) {
        tg_config_free(c.cfg);
        return c.rc;
    }
    for (size_t bi = 0; bi < c.cfg->nbackends; bi++)
        c.cfg->backends[bi].file = c.cfg->file;
    *out = c.cfg;
    return 0;
}

int tg_config_load(const char *path, struct tg_config **out, char *err,
                   size_t errlen)
{
    FILE *f;
    struct stat st;
    char *text = NULL;
    size_t n;
    int rc;

    *out = NULL;
    f = fopen(path, "r");
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fileno(f), &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
        rc = TG_EINVAL;
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
                 CONFIG_FILE_MAX);
        goto out;
    }
    text = tg_malloc((size_t)st.st_size + 1);
    if (!text) {
        rc = TG_ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    n = fread(text, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        rc = TG_EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    text[n] = '\0';
    /* The text is handled as a C string: a NUL would silently end it. */
    if (memchr(text, '\0', n)) {
        rc = TG_EINVAL;
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        goto out;
    }
    rc = tg_config_parse_string(text, path, out, err, errlen);
out:
    tg_free(text);
    fclose(f);
    return rc;
}

struct tg_config *tg_config_embedded(const char *root, enum tg_write_mode write)
{
    struct tg_config *cfg;
    struct tg_backend_cfg *b;

    if (!root)
        return NULL;
    cfg = config_new(NULL);
    if (!cfg)
        return NULL;
    cfg->backends = tg_calloc(1, sizeof(*cfg->backends));
    if (!cfg->backends)
        goto fail;
    cfg->nbackends = 1;
    b = &cfg->backends[0];
    b->name = tg_strdup("root");
    b->type = tg_strdup("file");
    b->kv = tg_calloc(1, sizeof(*b->kv));
    if (!b->name || !b->type || !b->kv)
        goto fail;
    b->nkv = 1;
    b->kv[0].key = tg_strdup("root");
    b->kv[0].value = tg_strdup(root);
    if (!b->kv[0].key || !b->kv[0].value)
        goto fail;

    cfg->routes = tg_calloc(1, sizeof(*cfg->routes));
    if (!cfg->routes)
        goto fail;
    if (route_init(&cfg->routes[0], "default", 0) < 0)
        goto fail;
    cfg->nroutes = 1;
    cfg->routes[0].backend = tg_strdup("root");
    if (!cfg->routes[0].backend)
        goto fail;
    cfg->routes[0].write = write;
    return cfg;
fail:
    tg_config_free(cfg);
    return NULL;
}

int tg_config_set_listen(struct tg_config *cfg, char *const *list, size_t n)
{
    size_t i;

    for (i = 0; i < cfg->server.nlisten; i++)
        tg_free(cfg->server.listen[i]);
    tg_free(cfg->server.listen);
    cfg->server.listen = tg_calloc(n, sizeof(char *));
    if (!cfg->server.listen)
        return -1;
    cfg->server.nlisten = n;
    for (i = 0; i < n; i++)
        if (!(cfg->server.listen[i] = tg_strdup(list[i])))
            return -1;
    return 0;
}

int tg_config_set_remap(struct tg_config *cfg, const char *file, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        char msg[MSG_MAX];
        int rc = rset_remap(&cfg->routes[i], file, msg, sizeof(msg));

        if (rc < 0) {
            snprintf(err, errlen, "%s", rc == TG_ENOMEM ? "out of memory" : msg);
            return rc;
        }
    }
    return 0;
}

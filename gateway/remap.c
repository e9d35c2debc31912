/* gateway/remap.c - tftpd-hpa's filename remapping (include/tftpgw/remap.h).
 *
 * Pure: strings in, strings out. Every buffer is bounded by TG_PATH_MAX and
 * every request by TG_REMAP_MAX_STEPS, so a rule file cannot make one
 * request cost more than a fixed amount of work. */
#include "tftpgw/remap.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tftpgw/path.h"

enum {
    RF_REWRITE = 0x01, RF_GLOBAL = 0x02, RF_EXIT = 0x04, RF_RESTART = 0x08,
    RF_ABORT = 0x10, RF_INVERSE = 0x20, RF_GET = 0x40, RF_PUT = 0x80,
    RF_IPV4 = 0x100, RF_IPV6 = 0x200,
};

struct rule {
    unsigned flags;
    unsigned line;
    regex_t rx;
    char *repl;
};

struct tg_remap {
    struct rule *rules;
    size_t n;
};

/* ---- parsing ---- */

static int perr(char *err, size_t cap, unsigned line, const char *fmt, ...) TG_PRINTF(4, 5);
static int perr(char *err, size_t cap, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, cap, "line %u: ", line);

    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < cap)
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}

/* One field as tftpd-hpa reads it: leading blanks skipped, ended by an
 * unescaped blank or '#', backslashes kept (the regex and the replacement
 * read them). Returns its length (0: none left). */
static size_t field(const char **pp, const char *end, char *buf)
{
    const char *p = *pp;
    bool bs = false;
    size_t n = 0;

    while (p < end && isspace((unsigned char)*p))
        p++;
    while (p < end) {
        if (!bs && (isspace((unsigned char)*p) || *p == '#'))
            break;
        bs = !bs && *p == '\\';
        buf[n++] = *p++;
    }
    buf[n] = '\0';
    *pp = p;
    return n;
}

static int parse_flags(const char *f, unsigned line, unsigned *flags, int *rx,
                       char *err, size_t cap)
{
    static const char letters[] = "rgesa~GP46";
    static const unsigned bits[] = { RF_REWRITE, RF_GLOBAL, RF_EXIT, RF_RESTART, RF_ABORT,
                                     RF_INVERSE, RF_GET, RF_PUT, RF_IPV4, RF_IPV6 };

    *flags = 0;
    *rx = REG_EXTENDED;
    for (; *f; f++) {
        const char *at = strchr(letters, *f);

        if (*f == 'i')
            *rx |= REG_ICASE;
        else if (at)
            *flags |= bits[at - letters];
        else
            return perr(err, cap, line, "invalid flag '%c' (expected r g e s a i G P 4 6 ~)",
                        *f);
    }
    if ((*flags & (RF_REWRITE | RF_INVERSE)) == (RF_REWRITE | RF_INVERSE))
        return perr(err, cap, line, "r rules cannot be inverted (~)");
    if (!(*flags & RF_REWRITE))
        *flags &= ~(unsigned)RF_GLOBAL; /* g only repeats a replacement */
    return 0;
}

static int parse_line(const char *p, const char *end, unsigned line, struct rule *r,
                      bool *got, char *err, size_t cap)
{
    char buf[TG_REMAP_MAX_LINE + 1];
    int rxflags, rc;

    *got = false;
    if (!field(&p, end, buf))
        return 0; /* blank or comment */
    if ((rc = parse_flags(buf, line, &r->flags, &rxflags, err, cap)) != 0)
        return rc;
    if (!field(&p, end, buf))
        return perr(err, cap, line, "no regex");
    if ((rc = regcomp(&r->rx, buf, rxflags)) != 0) {
        char e[128];

        regerror(rc, &r->rx, e, sizeof(e)); /* nothing to regfree after a failure */
        return perr(err, cap, line, "bad regex: %s", e);
    }
    field(&p, end, buf);
    if (!(r->repl = tg_strdup(buf))) {
        regfree(&r->rx);
        return TG_ENOMEM;
    }
    r->line = line;
    *got = true;
    return 0;
}

int tg_remap_parse(const char *text, size_t len, struct tg_remap **out, char *err,
                   size_t errlen)
{
    struct tg_remap *rm = tg_calloc(1, sizeof(*rm));
    const char *p = text, *end = text + len;
    unsigned line = 0;
    int rc = 0;

    *out = NULL;
    if (!rm)
        return TG_ENOMEM;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        struct rule r;
        bool got;

        line++;
        if ((size_t)(eol - p) > TG_REMAP_MAX_LINE)
            rc = perr(err, errlen, line, "longer than %d bytes", TG_REMAP_MAX_LINE);
        else if (memchr(p, '\0', (size_t)(eol - p)))
            rc = perr(err, errlen, line, "NUL byte");
        else if ((rc = parse_line(p, eol, line, &r, &got, err, errlen)) == 0 && got) {
            if (rm->n == TG_REMAP_MAX_RULES) {
                regfree(&r.rx);
                tg_free(r.repl);
                rc = perr(err, errlen, line, "more than %d rules", TG_REMAP_MAX_RULES);
            } else if (!rm->rules &&
                       !(rm->rules = tg_calloc(TG_REMAP_MAX_RULES, sizeof(*rm->rules)))) {
                regfree(&r.rx);
                tg_free(r.repl);
                rc = TG_ENOMEM;
            } else {
                rm->rules[rm->n++] = r;
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (rc != 0) {
        tg_remap_free(rm);
        return rc;
    }
    *out = rm;
    return 0;
}

int tg_remap_load(const char *file, struct tg_remap **out, char *err, size_t errlen)
{
    char *buf, msg[256];
    size_t len = 0;
    ssize_t n;
    int fd, rc;

    *out = NULL;
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return rc;
    }
    if (!(buf = tg_malloc(TG_REMAP_MAX_FILE + 1))) {
        close(fd);
        return TG_ENOMEM;
    }
    while (len <= TG_REMAP_MAX_FILE &&
           (n = read(fd, buf + len, TG_REMAP_MAX_FILE + 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", file, strerror(errno));
            goto out;
        }
        len += (size_t)n;
    }
    if (len > TG_REMAP_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %d bytes", file, TG_REMAP_MAX_FILE);
        rc = TG_EINVAL;
        goto out;
    }
    rc = tg_remap_parse(buf, len, out, msg, sizeof(msg));
    if (rc == TG_EINVAL)
        snprintf(err, errlen, "%s:%s", file, msg + strlen("line "));
out:
    close(fd);
    tg_free(buf);
    return rc;
}

void tg_remap_free(struct tg_remap *rm)
{
    if (!rm)
        return;
    for (size_t i = 0; i < rm->n; i++) {
        regfree(&rm->rules[i].rx);
        tg_free(rm->rules[i].repl);
    }
    tg_free(rm->rules);
    tg_free(rm);
}

size_t tg_remap_count(const struct tg_remap *rm)
{
    return rm ? rm->n : 0;
}

/* ---- applying ---- */

/* The client address, IPv4-mapped IPv6 read as IPv4: family and bytes. */
static int client_addr(const struct sockaddr *sa, uint8_t a[16])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)sa)->sin6_addr;

        if (IN6_IS_ADDR_V4MAPPED(x)) {
            memcpy(a, x->s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(a, x->s6_addr, 16);
        return AF_INET6;
    }
    return AF_UNSPEC;
}

/* A bounded output buffer with \U \L \E applied on the way in. */
struct obuf {
    char *p;
    size_t n, cap;
    int xform; /* 0, 'U', 'L' */
    bool over;
};

static void put(struct obuf *o, const char *s, size_t len, bool xf)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (xf && o->xform == 'U')
            c = (char)toupper((unsigned char)c);
        else if (xf && o->xform == 'L')
            c = (char)tolower((unsigned char)c);
        if (o->n + 1 >= o->cap) {
            o->over = true;
            return;
        }
        o->p[o->n++] = c;
    }
    o->p[o->n] = '\0';
}

struct ctx {
    int af;
    uint8_t addr[16];
};

/* Expand a replacement: groups of `in` per m[] (rm_so -1: empty). */
static void expand(struct obuf *o, const char *repl, const char *in, const regmatch_t *m,
                   const struct ctx *cx)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    for (const char *p = repl; *p; p++) {
        if (*p != '\\' || !p[1]) { /* a trailing backslash is itself */
            put(o, p, 1, true);
            continue;
        }
        char c = *++p;

        if (c >= '0' && c <= '9') {
            const regmatch_t *g = &m[c - '0'];

            if (g->rm_so >= 0)
                put(o, in + g->rm_so, (size_t)(g->rm_eo - g->rm_so), true);
        } else if (c == 'U' || c == 'L') {
            o->xform = c;
        } else if (c == 'E') {
            o->xform = 0;
        } else if (c == 'i' && cx->af != AF_UNSPEC) {
            inet_ntop(cx->af, cx->addr, tmp, sizeof(tmp));
            put(o, tmp, strlen(tmp), true);
        } else if (c == 'x' && cx->af != AF_UNSPEC) {
            size_t len = cx->af == AF_INET ? 4 : 16;

            for (size_t i = 0; i < len; i++) {
                snprintf(tmp, sizeof(tmp), "%02X", cx->addr[i]);
                put(o, tmp, 2, true);
            }
        } else {
            put(o, &c, 1, true);
        }
    }
}

/* cur with its match m[0] replaced by the expanded replacement, into dst. */
static bool replace(char *dst, size_t cap, const char *cur, const char *repl,
                    const regmatch_t *m, const struct ctx *cx)
{
    struct obuf o = { dst, 0, cap, 0, false };

    dst[0] = '\0';
    put(&o, cur, (size_t)m[0].rm_so, false);
    expand(&o, repl, cur, m, cx);
    put(&o, cur + m[0].rm_eo, strlen(cur + m[0].rm_eo), false);
    return !o.over;
}

static bool applies(const struct rule *r, enum tg_opcode op, int af)
{
    if ((r->flags & RF_GET) && op != TG_OP_RRQ)
        return false;
    if ((r->flags & RF_PUT) && op != TG_OP_WRQ)
        return false;
    if ((r->flags & RF_IPV4) && af != AF_INET)
        return false;
    if ((r->flags & RF_IPV6) && af != AF_INET6)
        return false;
    return true;
}

/* The refusal of an `a` rule: its replacement expanded over the name
 * (tftpd-hpa keeps the text around the match), or "Access denied". */
static void abort_msg(const struct rule *r, const char *cur, const regmatch_t *m,
                      const struct ctx *cx, char *msg, size_t msgcap)
{
    static const regmatch_t none[10] = {
        { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
        { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
    };
    struct obuf o = { msg, 0, msgcap, 0, false };

    if (!msgcap)
        return;
    msg[0] = '\0';
    if (!r->repl[0])
        snprintf(msg, msgcap, "%s", TG_REMAP_DENIED);
    else if (r->flags & RF_INVERSE)
        expand(&o, r->repl, cur, none, cx);
    else
        replace(msg, msgcap, cur, r->repl, m, cx); /* truncated if long */
}

int tg_remap_apply(const struct tg_remap *rm, const char *in, enum tg_opcode op,
                   const struct sockaddr *client, char *out, size_t cap, char *msg,
                   size_t msgcap)
{
    char tmp[TG_PATH_MAX];
    struct ctx cx;
    unsigned steps = 0;
    regmatch_t m[10];

    if (msgcap)
        msg[0] = '\0';
    if (cap == 0)
        return TG_ENAMETOOLONG;
    cx.af = client_addr(client, cx.addr);
    if (strlen(in) >= cap || strlen(in) >= sizeof(tmp))
        goto toolong;
    strcpy(out, in);
    for (size_t i = 0; rm && i < rm->n; i++) {
        const struct rule *r = &rm->rules[i];
        int want = (r->flags & RF_INVERSE) ? REG_NOMATCH : 0;

        if (!applies(r, op, cx.af))
            continue;
        if (++steps > TG_REMAP_MAX_STEPS)
            goto failure;
        if (regexec(&r->rx, out, 10, m, 0) != want)
            continue;
        if (r->flags & RF_ABORT) {
            abort_msg(r, out, m, &cx, msg, msgcap);
            return TG_EACCES;
        }
        if (r->flags & RF_REWRITE) {
            /* g: again over the whole new name while it matches, as
             * tftpd-hpa does; each repeat is a step. */
            do {
                if (!replace(tmp, sizeof(tmp), out, r->repl, m, &cx) || strlen(tmp) >= cap)
                    goto toolong;
                strcpy(out, tmp);
                if (!(r->flags & RF_GLOBAL))
                    break;
                if (++steps > TG_REMAP_MAX_STEPS)
                    goto failure;
            } while (regexec(&r->rx, out, 10, m, 0) == 0);
        }
        if (r->flags & RF_EXIT)
            return 0;
        if (r->flags & RF_RESTART)
            i = (size_t)-1; /* the loop's i++ makes it the first rule */
    }
    return 0;
toolong:
    if (msgcap)
        snprintf(msg, msgcap, "%s", TG_REMAP_FAILURE);
    out[0] = '\0';
    return TG_ENAMETOOLONG;
failure:
    if (msgcap)
        snprintf(msg, msgcap, "%s", TG_REMAP_FAILURE);
    out[0] = '\0';
    return TG_EACCES;
}

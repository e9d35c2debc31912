/* gateway/neigh.c - a client's MAC from the kernel's neighbour table: the
 * rtnetlink messages, the MAC's text form and the cache of answers
 * (include/tftpgw/neigh.h says why the cache is built this way;
 * docs/security.md, "Client MAC lookup", what it protects and costs).
 * Pure: no I/O, no clock. */
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/common.h"
#include "tftpgw/neigh.h"
#include "tftpgw/ratelimit.h"

#define SETS (TG_NEIGH_SLOTS / TG_NEIGH_WAYS)
#define LOOPBACK_IFINDEX 1 /* the kernel gives lo index 1 in every namespace */

/* ---- addresses ---- */

int tg_neigh_key_of(const struct sockaddr *sa, unsigned ifindex, struct tg_neigh_key *out)
{
    memset(out, 0, sizeof(*out));
    out->ifindex = ifindex;
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        /* A dual-stack socket shows an IPv4 client as ::ffff:a.b.c.d; its
         * entry is in the IPv4 (ARP) table. */
        if (memcmp(a, mapped, 12) == 0) {
            out->family = AF_INET;
            memcpy(out->addr, a + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->addr, a, 16);
        }
        return 0;
    }
    return TG_EINVAL;
}

bool tg_neigh_is_loopback(const struct tg_neigh_key *k)
{
    static const uint8_t one6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    if (k->ifindex == LOOPBACK_IFINDEX)
        return true;
    if (k->family == AF_INET)
        return k->addr[0] == 127;
    return memcmp(k->addr, one6, 16) == 0;
}

int tg_mac_format(const uint8_t *ll, size_t len, char out[TG_MAC_STRLEN])
{
    static const char hex[] = "0123456789abcdef";

    out[0] = '\0';
    if (!ll || len != 6)
        return TG_EINVAL;
    for (size_t i = 0; i < 6; i++) {
        out[3 * i] = hex[ll[i] >> 4];
        out[3 * i + 1] = hex[ll[i] & 0xf];
        out[3 * i + 2] = i == 5 ? '\0' : '-';
    }
    return 0;
}

/* ---- requests ---- */

static size_t addr_len(const struct tg_neigh_key *k)
{
    return k->family == AF_INET ? 4 : 16;
}

/* Header, fixed part, then one address attribute of type at. */
static size_t build(void *buf, size_t cap, uint16_t type, const void *fixed, size_t flen,
                    uint16_t at, const struct tg_neigh_key *k, uint32_t seq)
{
    size_t alen = addr_len(k);
    size_t total = NLMSG_LENGTH(NLMSG_ALIGN(flen) + RTA_LENGTH(alen));
    struct nlmsghdr *h = buf;
    struct rtattr *rta;

    if (cap < NLMSG_ALIGN(total))
        return 0;
    memset(buf, 0, NLMSG_ALIGN(total));
    h->nlmsg_len = (uint32_t)total;
    h->nlmsg_type = type;
    /* A "get" without NLM_F_DUMP: the kernel answers for this one address
     * (neigh_get, Linux 5.0), never with the whole table. */
    h->nlmsg_flags = NLM_F_REQUEST;
    h->nlmsg_seq = seq;
    memcpy(NLMSG_DATA(h), fixed, flen);
    rta = (struct rtattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(flen));
    rta->rta_type = at;
    rta->rta_len = (unsigned short)RTA_LENGTH(alen);
    memcpy(RTA_DATA(rta), k->addr, alen);
    return NLMSG_ALIGN(total);
}

size_t tg_neigh_build_get(void *buf, size_t cap, const struct tg_neigh_key *k, uint32_t seq)
{
    struct ndmsg nd;

    memset(&nd, 0, sizeof(nd));
    nd.ndm_family = (uint8_t)k->family;
    /* The kernel wants the device (neigh_get): the interface the request
     * came in on is where a directly attached client's entry lives. */
    nd.ndm_ifindex = (int)k->ifindex;
    return build(buf, cap, RTM_GETNEIGH, &nd, sizeof(nd), NDA_DST, k, seq);
}

size_t tg_neigh_build_route(void *buf, size_t cap, const struct tg_neigh_key *k, uint32_t seq)
{
    struct rtmsg rt;

    memset(&rt, 0, sizeof(rt));
    rt.rtm_family = (uint8_t)k->family;
    rt.rtm_dst_len = (uint8_t)(addr_len(k) * 8);
    return build(buf, cap, RTM_GETROUTE, &rt, sizeof(rt), RTA_DST, k, seq);
}

/* ---- replies ---- */

static void parse_neigh(const struct nlmsghdr *h, struct tg_nl_answer *a)
{
    const struct ndmsg *nd = NLMSG_DATA(h);
    const struct rtattr *rta = (const struct rtattr *)((const char *)nd + NLMSG_ALIGN(sizeof(*nd)));
    int left = (int)h->nlmsg_len - (int)NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*nd)));
    /* Only entries the kernel itself would send to: an INCOMPLETE or
     * FAILED entry's address is stale or absent, a NOARP one is not the
     * peer's own. */
    const unsigned usable = NUD_PERMANENT | NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE;

    a->kind = TG_NL_NEIGH;
    a->state = nd->ndm_state;
    for (; left > 0 && RTA_OK(rta, left); rta = RTA_NEXT(rta, left))
        if (rta->rta_type == NDA_LLADDR && (nd->ndm_state & usable))
            tg_mac_format(RTA_DATA(rta), RTA_PAYLOAD(rta), a->mac);
}

static void parse_route(const struct nlmsghdr *h, struct tg_nl_answer *a)
{
    const struct rtmsg *rt = NLMSG_DATA(h);
    const struct rtattr *rta = (const struct rtattr *)((const char *)rt + NLMSG_ALIGN(sizeof(*rt)));
    int left = (int)h->nlmsg_len - (int)NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*rt)));

    a->kind = TG_NL_ROUTE;
    a->local = rt->rtm_type == RTN_LOCAL;
    for (; left > 0 && RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
        if (rta->rta_type != RTA_GATEWAY)
            continue;
        if (RTA_PAYLOAD(rta) == 4)
            inet_ntop(AF_INET, RTA_DATA(rta), a->gateway, sizeof(a->gateway));
        else if (RTA_PAYLOAD(rta) == 16)
            inet_ntop(AF_INET6, RTA_DATA(rta), a->gateway, sizeof(a->gateway));
    }
    /* Several next hops (RTA_MULTIPATH) or one through another family
     * (RTA_VIA): still behind a router, whichever it is. */
    if (!a->gateway[0] && !a->local) {
        rta = (const struct rtattr *)((const char *)rt + NLMSG_ALIGN(sizeof(*rt)));
        left = (int)h->nlmsg_len - (int)NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*rt)));
        for (; left > 0 && RTA_OK(rta, left); rta = RTA_NEXT(rta, left))
            if (rta->rta_type == RTA_MULTIPATH || rta->rta_type == RTA_VIA)
                snprintf(a->gateway, sizeof(a->gateway), "a router");
    }
}

size_t tg_nl_parse(const void *buf, size_t len, struct tg_nl_answer *out, size_t max)
{
    const struct nlmsghdr *h = buf;
    size_t n = 0;
    int left = len > 0x7fffffff ? 0x7fffffff : (int)len;

    for (; n < max && NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        struct tg_nl_answer *a = &out[n];

        memset(a, 0, sizeof(*a));
        a->seq = h->nlmsg_seq;
        if (h->nlmsg_type == NLMSG_ERROR) {
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                break;
            a->kind = TG_NL_ERROR;
            a->error = ((const struct nlmsgerr *)NLMSG_DATA(h))->error;
        } else if (h->nlmsg_type == RTM_NEWNEIGH) {
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg)))
                break;
            parse_neigh(h, a);
        } else if (h->nlmsg_type == RTM_NEWROUTE) {
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
                break;
            parse_route(h, a);
        }
        n++;
    }
    return n;
}

/* ---- the lookup budget ---- */

void tg_neigh_budget_init(struct tg_neigh_budget *b, unsigned rate)
{
    b->rate = rate;
    b->milli = (uint64_t)rate * 1000;
    b->last_ms = 0;
}

bool tg_neigh_budget_take(struct tg_neigh_budget *b, uint64_t now_ms)
{
    uint64_t cap = (uint64_t)b->rate * 1000;

    /* Counted in thousandths, so calls a millisecond apart still add up to
     * the rate (whole tokens would drop each call's fraction). */
    if (now_ms > b->last_ms) {
        uint64_t dt = now_ms - b->last_ms;

        b->milli = dt >= 1000 || b->milli + dt * b->rate >= cap ? cap : b->milli + dt * b->rate;
        b->last_ms = now_ms;
    }
    if (b->milli < 1000)
        return false;
    b->milli -= 1000;
    return true;
}

/* ---- the cache ---- */

struct slot {
    uint64_t expires_ms; /* 0: empty */
    uint64_t stored_ms;  /* age, for eviction */
    struct tg_neigh_key k;
    bool known;
    char text[TG_NEIGH_WHY_MAX]; /* the MAC, or why it is unknown */
};

struct tg_neigh_cache {
    uint8_t key[TG_RATE_KEYLEN];
    struct slot slot[TG_NEIGH_SLOTS];
};

static void random_key(uint8_t key[TG_RATE_KEYLEN])
{
    struct timespec ts;
    uint64_t mix[2];

    if (getrandom(key, TG_RATE_KEYLEN, GRND_NONBLOCK) == TG_RATE_KEYLEN)
        return;
    /* Early in boot: clocks and the process id still differ between runs
     * and are not visible on the network. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mix[0] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    mix[1] = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts;
    memcpy(key, mix, TG_RATE_KEYLEN);
}

struct tg_neigh_cache *tg_neigh_cache_new(const uint8_t *key)
{
    struct tg_neigh_cache *c = tg_calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (key)
        memcpy(c->key, key, TG_RATE_KEYLEN);
    else
        random_key(c->key);
    return c;
}

void tg_neigh_cache_free(struct tg_neigh_cache *c)
{
    tg_free(c);
}

static bool same_key(const struct tg_neigh_key *a, const struct tg_neigh_key *b)
{
    return a->family == b->family && a->ifindex == b->ifindex &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static struct slot *set_of(const struct tg_neigh_cache *c, const struct tg_neigh_key *k)
{
    uint8_t buf[1 + 16 + 4];

    buf[0] = (uint8_t)k->family;
    memcpy(buf + 1, k->addr, 16);
    memcpy(buf + 17, &k->ifindex, 4);
    return (struct slot *)&c->slot[(tg_siphash24(c->key, buf, sizeof(buf)) % SETS) *
                                   TG_NEIGH_WAYS];
}

enum tg_neigh_state tg_neigh_cache_get(const struct tg_neigh_cache *c, const struct tg_neigh_key *k,
                                       uint64_t now_ms, char *mac, char *why)
{
    const struct slot *s = set_of(c, k);

    for (unsigned i = 0; i < TG_NEIGH_WAYS; i++) {
        if (s[i].expires_ms <= now_ms || !same_key(&s[i].k, k))
            continue;
        if (s[i].known) {
            if (mac) {
                memcpy(mac, s[i].text, TG_MAC_STRLEN - 1);
                mac[TG_MAC_STRLEN - 1] = '\0';
            }
            return TG_NEIGH_KNOWN;
        }
        if (why)
            snprintf(why, TG_NEIGH_WHY_MAX, "%s", s[i].text);
        return TG_NEIGH_UNKNOWN;
    }
    return TG_NEIGH_MISS;
}

/* The slot k's answer goes to: its own, an empty or expired one, else the
 * oldest negative answer (a flood of spoofed addresses makes only those,
 * so it displaces its own kind first), else the oldest of the set. */
static struct slot *victim(struct slot *s, const struct tg_neigh_key *k, uint64_t now_ms)
{
    struct slot *neg = NULL, *old = &s[0];

    for (unsigned i = 0; i < TG_NEIGH_WAYS; i++)
        if (s[i].expires_ms && same_key(&s[i].k, k))
            return &s[i];
    for (unsigned i = 0; i < TG_NEIGH_WAYS; i++) {
        if (s[i].expires_ms <= now_ms)
            return &s[i];
        if (!s[i].known && (!neg || s[i].stored_ms < neg->stored_ms))
            neg = &s[i];
        if (s[i].stored_ms < old->stored_ms)
            old = &s[i];
    }
    return neg ? neg : old;
}

void tg_neigh_cache_put(struct tg_neigh_cache *c, const struct tg_neigh_key *k, uint64_t now_ms,
                        const char *mac, const char *why)
{
    struct slot *s = victim(set_of(c, k), k, now_ms);

    s->k = *k;
    s->known = mac && mac[0];
    s->stored_ms = now_ms;
    s->expires_ms = now_ms + (s->known ? TG_NEIGH_POS_TTL_MS : TG_NEIGH_NEG_TTL_MS);
    snprintf(s->text, sizeof(s->text), "%s", s->known ? mac : (why ? why : "unknown"));
}

size_t tg_neigh_cache_count(const struct tg_neigh_cache *c, uint64_t now_ms)
{
    size_t n = 0;

    for (size_t i = 0; i < TG_NEIGH_SLOTS; i++)
        n += c->slot[i].expires_ms > now_ms;
    return n;
}

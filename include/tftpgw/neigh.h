/* include/tftpgw/neigh.h - a client's MAC address from the kernel's
 * neighbour table: the pure parts. Owner: gateway/neigh.c.
 *
 * The rtnetlink messages asked and read (RTM_GETNEIGH for the client's
 * address on the interface its request arrived on; RTM_GETROUTE to say why
 * an address has no entry), the MAC's text form, and the cache of answers.
 * No I/O and no clock: gateway/neighwait.c sends, receives and passes the
 * time, so unit tests drive all of it (tests/unit/test_neigh.c).
 *
 * The cache is bounded and fair against a spoofing sender, as the rate
 * table is (include/tftpgw/ratelimit.h): an address lives in one set of
 * TG_NEIGH_WAYS slots chosen by SipHash-2-4 under a per-process random key;
 * a newcomer takes an empty or expired slot, else the oldest negative
 * answer, else the oldest answer of the set. */
#ifndef TFTPGW_NEIGH_H
#define TFTPGW_NEIGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TG_MAC_STRLEN 18        /* "52-54-00-12-34-56" and its NUL */
#define TG_NEIGH_WHY_MAX 64     /* why a MAC is unknown, for the log */
#define TG_NEIGH_SLOTS 1024     /* answers kept */
#define TG_NEIGH_WAYS 8         /* slots probed per address */
#define TG_NEIGH_POS_TTL_MS 30000 /* a MAC found is trusted this long */
#define TG_NEIGH_NEG_TTL_MS 2000  /* "unknown" is trusted this long */
#define TG_NEIGH_MSG_MAX 64     /* room for one request we build */

/* Who is asked about: address family (AF_INET, AF_INET6), the address in
 * network byte order, and the interface the request came in on. */
struct tg_neigh_key {
    int family;
    uint8_t addr[16];
    unsigned ifindex;
};

/* The key of a client address (IPv4-mapped IPv6 becomes IPv4). TG_EINVAL
 * for other families. */
int tg_neigh_key_of(const struct sockaddr *sa, unsigned ifindex, struct tg_neigh_key *out);
/* 127.0.0.0/8, ::1, or arrived on the loopback interface (ifindex 1 in
 * every network namespace): never in a neighbour table. */
bool tg_neigh_is_loopback(const struct tg_neigh_key *k);

/* "52-54-00-12-34-56": lower case, dash-separated. TG_EINVAL unless len is
 * 6 (an Ethernet address; other link layers have no MAC of that form). */
int tg_mac_format(const uint8_t *ll, size_t len, char out[TG_MAC_STRLEN]);

/* RTM_GETNEIGH for k (a "get", answered with one RTM_NEWNEIGH or an
 * NLMSG_ERROR) and RTM_GETROUTE for k's address, into buf; the length, or
 * 0 when cap is short. */
size_t tg_neigh_build_get(void *buf, size_t cap, const struct tg_neigh_key *k, uint32_t seq);
size_t tg_neigh_build_route(void *buf, size_t cap, const struct tg_neigh_key *k, uint32_t seq);

enum tg_nl_kind {
    TG_NL_OTHER = 0, /* a message we did not ask for: ignored */
    TG_NL_ERROR,     /* NLMSG_ERROR: error holds the negative errno (0: ack) */
    TG_NL_NEIGH,     /* RTM_NEWNEIGH */
    TG_NL_ROUTE,     /* RTM_NEWROUTE */
};

/* One message of a reply, read. */
struct tg_nl_answer {
    enum tg_nl_kind kind;
    uint32_t seq;
    int error;
    /* NEIGH: mac is "" when the entry has no usable address (INCOMPLETE,
     * FAILED, NOARP, or not Ethernet); state is ndm_state */
    char mac[TG_MAC_STRLEN];
    unsigned state;
    /* ROUTE: a next hop other than the client itself (text), or "" ;
     * local: the address is one of ours */
    char gateway[48];
    bool local;
};

/* Read the messages in one received datagram into out (at most max).
 * Returns how many were read; a message cut short ends the reading. */
size_t tg_nl_parse(const void *buf, size_t len, struct tg_nl_answer *out, size_t max);

/* ---- the lookup budget ---- */

/* A token bucket of `rate` lookups a second, `rate` at most saved up:
 * whatever a flood of forged addresses sends, the kernel is asked at most
 * that often. */
struct tg_neigh_budget {
    unsigned rate;
    uint64_t milli;   /* tokens x 1000: refilled by exactly rate per ms */
    uint64_t last_ms; /* when milli was last brought up to date */
};

void tg_neigh_budget_init(struct tg_neigh_budget *b, unsigned rate);
/* One lookup at now_ms: true when a token was taken. */
bool tg_neigh_budget_take(struct tg_neigh_budget *b, uint64_t now_ms);

/* ---- the cache ---- */

enum tg_neigh_state {
    TG_NEIGH_MISS = 0, /* nothing (or only an expired answer) kept */
    TG_NEIGH_KNOWN,    /* mac filled */
    TG_NEIGH_UNKNOWN,  /* why filled */
};

struct tg_neigh_cache;

/* key: 16 bytes, or NULL for fresh random bytes. NULL when out of memory. */
struct tg_neigh_cache *tg_neigh_cache_new(const uint8_t *key);
void tg_neigh_cache_free(struct tg_neigh_cache *c);
/* What is known of k at now_ms. mac (TG_MAC_STRLEN) and why
 * (TG_NEIGH_WHY_MAX) may be NULL. */
enum tg_neigh_state tg_neigh_cache_get(const struct tg_neigh_cache *c, const struct tg_neigh_key *k,
                                       uint64_t now_ms, char *mac, char *why);
/* Keep an answer: mac when found (TG_NEIGH_POS_TTL_MS), else why
 * (TG_NEIGH_NEG_TTL_MS). Replaces an earlier answer for k. */
void tg_neigh_cache_put(struct tg_neigh_cache *c, const struct tg_neigh_key *k, uint64_t now_ms,
                        const char *mac, const char *why);
/* Live answers (tests). */
size_t tg_neigh_cache_count(const struct tg_neigh_cache *c, uint64_t now_ms);

#endif

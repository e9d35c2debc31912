/* gateway/ratelimit.c - per-client request rate buckets in a fixed,
 * set-associative table (include/tftpgw/ratelimit.h says why it is built
 * this way; docs/security.md what it protects and costs).
 *
 * Tokens are counted in thousandths, so a bucket refills by exactly `rate`
 * thousandths per millisecond and no floating point drifts. */
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/common.h"
#include "tftpgw/ratelimit.h"

#define MILLI 1000u

struct slot {
    uint8_t addr[16];
    uint64_t last_ms;  /* when tokens were last brought up to date: also the LRU age */
    uint32_t milli;    /* tokens x 1000 at last_ms */
    uint8_t family;    /* 0: empty, else 4 or 6 (IPv4, IPv6) */
};

struct tg_ratelimit {
    /* Every worker loop shares one table (docs/design.md, "Workers"): the
     * lock is taken once per request (rate_limit) or once per send burst
     * (client_rate), never per datagram received. */
    pthread_mutex_t mu;
    uint8_t key[TG_RATE_KEYLEN];
    struct slot slot[TG_RATE_SLOTS];
};

/* ------------------------------------------------------------ SipHash-2-4 */

static uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define SIPROUND                                                                      \
    do {                                                                              \
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);                    \
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;                                        \
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;                                        \
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);                    \
    } while (0)

uint64_t tg_siphash24(const uint8_t key[TG_RATE_KEYLEN], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i, tail = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t t = 0; t < tail; t++)
        b |= (uint64_t)p[i + t] << (8 * t);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------ table */

/* The kernel's generator; if it is not ready this early in boot, the
 * best-effort pool (Linux 5.6); failing both, clocks and the process id,
 * which still differ between runs and are not visible on the network. */
static void random_key(uint8_t key[TG_RATE_KEYLEN])
{
    struct timespec a, b;
    uint64_t mix[4];

    if (getrandom(key, TG_RATE_KEYLEN, GRND_NONBLOCK) == TG_RATE_KEYLEN)
        return;
#ifdef GRND_INSECURE
    if (getrandom(key, TG_RATE_KEYLEN, GRND_INSECURE) == TG_RATE_KEYLEN)
        return;
#endif
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    mix[0] = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
    mix[1] = (uint64_t)b.tv_sec * 1000000000u + (uint64_t)b.tv_nsec;
    mix[2] = (uint64_t)getpid();
    mix[3] = (uint64_t)(uintptr_t)&a;
    memcpy(key, mix, TG_RATE_KEYLEN);
    mix[0] = tg_siphash24(key, mix, sizeof(mix));
    mix[1] = tg_siphash24(key, &mix[0], sizeof(mix[0]));
    memcpy(key, mix, TG_RATE_KEYLEN);
}

struct tg_ratelimit *tg_ratelimit_new(const uint8_t *key)
{
    struct tg_ratelimit *rl = tg_calloc(1, sizeof(*rl));

    if (!rl)
        return NULL;
    pthread_mutex_init(&rl->mu, NULL);
    if (key)
        memcpy(rl->key, key, TG_RATE_KEYLEN);
    else
        random_key(rl->key);
    return rl;
}

void tg_ratelimit_free(struct tg_ratelimit *rl)
{
    if (rl)
        pthread_mutex_destroy(&rl->mu);
    tg_free(rl);
}

/* The address alone, family first: the port is the client's to change. */
static bool addr_of(const struct sockaddr *sa, uint8_t out[17])
{
    memset(out, 0, 17);
    if (sa->sa_family == AF_INET6) {
        out[0] = 6;
        memcpy(out + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        out[0] = 4;
        memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else {
        return false;
    }
    return true;
}

unsigned tg_ratelimit_set_of(const struct tg_ratelimit *rl, const struct sockaddr *peer)
{
    uint8_t a[17];

    addr_of(peer, a);
    return (unsigned)(tg_siphash24(rl->key, a, sizeof(a)) % TG_RATE_SETS);
}

/* Tokens (thousandths) the slot holds at now, capped at cap. */
static uint32_t refilled(const struct slot *s, uint64_t now, unsigned rate, uint32_t cap)
{
    uint64_t dt = now > s->last_ms ? now - s->last_ms : 0;

    if (s->milli >= cap || dt >= (uint64_t)cap / rate + 1)
        return cap; /* also keeps dt * rate far from overflowing */
    dt = s->milli + dt * rate;
    return dt < cap ? (uint32_t)dt : cap;
}

/* The way an address not in the table may take: an empty one, else the
 * least recently used whose bucket is full again. NULL when all are busy. */
static struct slot *free_way(struct slot *set, uint64_t now, unsigned rate, uint32_t cap)
{
    struct slot *best = NULL;

    for (unsigned w = 0; w < TG_RATE_WAYS; w++) {
        struct slot *s = &set[w];

        if (!s->family)
            return s;
        if (refilled(s, now, rate, cap) == cap && (!best || s->last_ms < best->last_ms))
            best = s;
    }
    return best;
}

enum tg_rate_verdict tg_ratelimit_check(struct tg_ratelimit *rl, const struct sockaddr *peer,
                                        uint64_t now_ms, unsigned rate, unsigned burst)
{
    return tg_ratelimit_take(rl, peer, now_ms, rate, burst, 1);
}

static enum tg_rate_verdict take_locked(struct tg_ratelimit *rl, const uint8_t a[17],
                                        uint64_t now_ms, unsigned rate, unsigned burst,
                                        unsigned cost);

enum tg_rate_verdict tg_ratelimit_take(struct tg_ratelimit *rl, const struct sockaddr *peer,
                                       uint64_t now_ms, unsigned rate, unsigned burst,
                                       unsigned cost)
{
    uint8_t a[17];
    enum tg_rate_verdict v;

    if (!rl || rate == 0 || !addr_of(peer, a))
        return TG_RATE_PASS;
    pthread_mutex_lock(&rl->mu);
    v = take_locked(rl, a, now_ms, rate, burst, cost);
    pthread_mutex_unlock(&rl->mu);
    return v;
}

static enum tg_rate_verdict take_locked(struct tg_ratelimit *rl, const uint8_t a[17],
                                        uint64_t now_ms, unsigned rate, unsigned burst,
                                        unsigned cost)
{
    struct slot *set, *s = NULL;
    uint64_t b = burst ? burst : 2ull * rate;
    uint32_t cap;

    /* rate_burst is at most 1000000 (config.c), client_rate's burst at most
     * 4 GiB counted in KiB, so this never clamps there. */
    cap = b * MILLI < UINT32_MAX ? (uint32_t)(b * MILLI) : UINT32_MAX;
    set = &rl->slot[(tg_siphash24(rl->key, a, 17) % TG_RATE_SETS) * TG_RATE_WAYS];
    for (unsigned w = 0; w < TG_RATE_WAYS && !s; w++)
        if (set[w].family == a[0] && !memcmp(set[w].addr, a + 1, 16))
            s = &set[w];
    if (s) {
        s->milli = refilled(s, now_ms, rate, cap);
        if (now_ms > s->last_ms) /* a clock stepping back must not refill twice */
            s->last_ms = now_ms;
    } else {
        s = free_way(set, now_ms, rate, cap);
        if (!s)
            return TG_RATE_NO_SLOT;
        s->family = a[0];
        memcpy(s->addr, a + 1, 16);
        s->milli = cap; /* a new bucket starts full, as a forgotten one was */
        s->last_ms = now_ms;
    }
    if (s->milli < (uint64_t)cost * MILLI)
        return TG_RATE_LIMITED;
    s->milli -= cost * MILLI;
    return TG_RATE_PASS;
}

/* gateway/heldmap.c - which worker holds a client's probe GET
 * (gateway/heldmap.h). */
#include <netinet/in.h>
#include <string.h>
#include <uv.h>

#include "heldmap.h"
#include "tftpgw/common.h"
#include "tftpgw/ratelimit.h"

struct slot {
    uint64_t h;        /* 0: free */
    uint64_t until_ms;
    uint64_t seq;      /* put order: the oldest is replaced first; the token */
    unsigned worker;
    bool held;         /* the probe was declined and its GET is held */
};

struct tg_heldmap {
    uv_mutex_t mu;
    uint8_t key[TG_HELDMAP_KEYLEN];
    uint64_t seq;
    unsigned cap;
    struct slot s[];
};

struct tg_heldmap *tg_heldmap_new(unsigned cap, const uint8_t key[TG_HELDMAP_KEYLEN])
{
    struct tg_heldmap *m;

    if (cap == 0)
        cap = 1;
    m = tg_calloc(1, sizeof(*m) + cap * sizeof(m->s[0]));
    if (!m)
        return NULL;
    if (uv_mutex_init(&m->mu) != 0) {
        tg_free(m);
        return NULL;
    }
    memcpy(m->key, key, TG_HELDMAP_KEYLEN);
    m->cap = cap;
    return m;
}

void tg_heldmap_free(struct tg_heldmap *m)
{
    if (!m)
        return;
    uv_mutex_destroy(&m->mu);
    tg_free(m);
}

/* The address without its port, then the name: a probe and its download
 * come from different ports of one address. Never 0 (a free slot). */
static uint64_t hash(const struct tg_heldmap *m, const struct sockaddr *peer, const char *name)
{
    uint8_t buf[1 + 16 + 512];
    size_t n = 0, k = strlen(name);

    buf[n++] = (uint8_t)peer->sa_family;
    if (peer->sa_family == AF_INET6) {
        memcpy(buf + n, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
        n += 16;
    } else if (peer->sa_family == AF_INET) {
        memcpy(buf + n, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        n += 4;
    }
    if (k > sizeof(buf) - n)
        k = sizeof(buf) - n; /* a longer name: only its start, still keyed */
    memcpy(buf + n, name, k);
    n += k;
    uint64_t h = tg_siphash24(m->key, buf, n);

    return h ? h : 1;
}

uint64_t tg_heldmap_put(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                        unsigned worker, uint64_t until_ms)
{
    uint64_t token;
    uint64_t h = hash(m, peer, name);
    struct slot *use = NULL;

    uv_mutex_lock(&m->mu);
    /* The same entry again, else a free slot, else the oldest. */
    for (unsigned i = 0; i < m->cap; i++) {
        struct slot *s = &m->s[i];

        if (s->h == h) {
            use = s;
            break;
        }
        if (!use || (use->h != 0 && (s->h == 0 || s->seq < use->seq)))
            use = s;
    }
    token = ++m->seq;
    *use = (struct slot){.h = h, .until_ms = until_ms, .seq = token, .worker = worker};
    uv_mutex_unlock(&m->mu);
    return token;
}

/* The slot of h, or NULL; under the lock. */
static struct slot *slot_of(struct tg_heldmap *m, uint64_t h)
{
    for (unsigned i = 0; i < m->cap; i++)
        if (m->s[i].h == h)
            return &m->s[i];
    return NULL;
}

void tg_heldmap_drop(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                     uint64_t token)
{
    uint64_t h = hash(m, peer, name);
    struct slot *s;

    uv_mutex_lock(&m->mu);
    if ((s = slot_of(m, h)) != NULL && s->seq == token)
        s->h = 0;
    uv_mutex_unlock(&m->mu);
}

void tg_heldmap_held(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                     uint64_t token, uint64_t until_ms)
{
    uint64_t h = hash(m, peer, name);
    struct slot *s;

    uv_mutex_lock(&m->mu);
    if ((s = slot_of(m, h)) != NULL && s->seq == token) {
        s->held = true;
        s->until_ms = until_ms;
    }
    uv_mutex_unlock(&m->mu);
}

int tg_heldmap_find(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                    uint64_t now_ms, bool *held)
{
    uint64_t h = hash(m, peer, name);
    struct slot *s;
    int worker = -1;

    *held = false;
    uv_mutex_lock(&m->mu);
    if ((s = slot_of(m, h)) != NULL) {
        if (now_ms < s->until_ms) {
            worker = (int)s->worker;
            *held = s->held;
        } else {
            s->h = 0;
        }
    }
    uv_mutex_unlock(&m->mu);
    return worker;
}

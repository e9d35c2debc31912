/* gateway/registry.c - the server's sessions: a list and a table by client
 * address:port (request dedupe in both port modes, demultiplexing in
 * single-port mode), per-client counts, eviction, drain and shutdown. */
#include <string.h>

#include "registry.h"
#include "shared.h"
#include "tftpgw/sockaddr.h"

int tg_registry_init(struct tg_registry *r, unsigned max_sessions)
{
    memset(r, 0, sizeof(*r));
    /* Chains of about one session each at max_sessions. */
    for (r->mask = 63; r->mask < max_sessions && r->mask < 65535;)
        r->mask = r->mask * 2 + 1;
    r->tab = tg_calloc((size_t)r->mask + 1, sizeof(*r->tab));
    return r->tab ? 0 : TG_ENOMEM;
}

void tg_registry_free(struct tg_registry *r)
{
    tg_free(r->tab);
    r->tab = NULL;
}

static unsigned peer_hash(const struct sockaddr *sa)
{
    uint32_t h;

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        uint32_t w[4];

        memcpy(w, &s6->sin6_addr, sizeof(w));
        h = w[0] ^ w[1] ^ w[2] ^ w[3] ^ s6->sin6_port;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        h = s4->sin_addr.s_addr ^ ((uint32_t)s4->sin_port << 16);
    }
    /* Fibonacci hashing spreads clients that differ only in the port. */
    return (unsigned)((h * 2654435769u) >> 12);
}

static struct tg_reg_entry **chain(const struct tg_registry *r, const struct sockaddr *peer)
{
    return &r->tab[peer_hash(peer) & r->mask];
}

void tg_registry_add(struct tg_registry *r, struct tg_reg_entry *e)
{
    struct tg_reg_entry **c = chain(r, (const struct sockaddr *)&e->peer);

    e->prev = NULL;
    e->next = r->head;
    if (r->head)
        r->head->prev = e;
    r->head = e;
    r->count++;
    r->reserved = false;
    atomic_fetch_add_explicit(&r->unproven, 1, memory_order_relaxed);
    e->hnext = *c;
    *c = e;
}

void tg_registry_remove(struct tg_registry *r, struct tg_reg_entry *e)
{
    struct tg_reg_entry **pp;
    unsigned u = atomic_load_explicit(&r->unproven, memory_order_relaxed);

    if (u && !e->ops->proven(e->s))
        atomic_store_explicit(&r->unproven, u - 1, memory_order_relaxed);

    for (pp = chain(r, (const struct sockaddr *)&e->peer); *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    e->hnext = NULL;
    if (e->prev)
        e->prev->next = e->next;
    else if (r->head == e)
        r->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
    r->count--;
    if (r->shared)
        tg_shared_release(r->shared, e->ip);
    if (r->ended)
        r->ended(r->arg);
}

struct tg_reg_entry *tg_registry_find_peer(const struct tg_registry *r,
                                           const struct sockaddr *peer)
{
    struct tg_reg_entry *e;

    for (e = *chain(r, peer); e; e = e->hnext)
        if (tg_sockaddr_equal((const struct sockaddr *)&e->peer, peer))
            return e;
    return NULL;
}

struct tg_reg_entry *tg_registry_find_dup(const struct tg_registry *r,
                                          const struct sockaddr *peer,
                                          enum tg_opcode op, const char *filename)
{
    struct tg_reg_entry *e;

    for (e = *chain(r, peer); e; e = e->hnext)
        if (e->op == op && !e->ops->heard(e->s) &&
            tg_sockaddr_equal((const struct sockaddr *)&e->peer, peer) &&
            strcmp(e->reqname, filename) == 0)
            return e;
    return NULL;
}

bool tg_registry_same_request(const struct tg_reg_entry *e, enum tg_opcode op,
                              const char *filename)
{
    /* A finished upload only lingers for a lost final ACK: the client has
     * moved on, so any request from its port is a new one. */
    return e->ops->heard(e->s) && !e->ops->lingering(e->s) && e->op == op &&
           strcmp(e->reqname, filename) == 0;
}

unsigned tg_registry_count_client(const struct tg_registry *r, const struct sockaddr *peer)
{
    const struct tg_reg_entry *e;
    char ip[INET6_ADDRSTRLEN];
    unsigned n = 0;

    if (tg_sockaddr_ip(peer, ip, sizeof(ip)) != 0)
        return 0;
    for (e = r->head; e; e = e->next)
        if (!e->ops->lingering(e->s) && strcmp(e->ip, ip) == 0)
            n++;
    return n;
}

void tg_registry_proven(struct tg_registry *r)
{
    unsigned u = atomic_load_explicit(&r->unproven, memory_order_relaxed);

    if (u)
        atomic_store_explicit(&r->unproven, u - 1, memory_order_relaxed);
}

unsigned tg_registry_count_lingering(const struct tg_registry *r, const char *ip)
{
    const struct tg_reg_entry *e;
    unsigned n = 0;

    for (e = r->head; e; e = e->next)
        if (e->ops->lingering(e->s) && strcmp(e->ip, ip) == 0)
            n++;
    return n;
}

bool tg_registry_evict_unproven(struct tg_registry *r)
{
    struct tg_reg_entry *e, *oldest = NULL;

    /* New sessions go to the head: the last unproven one is the oldest.
     * Unproven, not unheard: a blind ACK must not make a spoofed session
     * safe from eviction. */
    unsigned n = 0;

    for (e = r->head; e; e = e->next) {
        if (e->ops->proven(e->s))
            continue;
        n++;
        if (!e->ops->lingering(e->s))
            oldest = e;
    }
    atomic_store_explicit(&r->unproven, n, memory_order_relaxed);
    if (!oldest)
        return false;
    oldest->ops->end(oldest->s, TG_END_EVICT, NULL);
    return true;
}

void tg_registry_abort_all(struct tg_registry *r, const char *msg)
{
    /* Every session leaves the list when it ends. */
    while (r->head)
        r->head->ops->end(r->head->s, TG_END_ABORT, msg);
}

void tg_registry_drain(struct tg_registry *r)
{
    struct tg_reg_entry *e, *next;

    for (e = r->head; e; e = next) {
        next = e->next;
        e->ops->end(e->s, TG_END_SHUTDOWN, NULL);
    }
}

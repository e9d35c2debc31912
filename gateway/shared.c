/* gateway/shared.c - the session counts every worker's admission shares.
 * One mutex: it is taken once when a request is admitted and once when a
 * session ends, never per datagram, so a few loops do not queue on it. */
#include <stdio.h>
#include <string.h>

#include "shared.h"
#include "tftpgw/common.h"

#define CHAINS 1024

struct client {
    struct client *next;
    unsigned n;
    char ip[46];
};

struct tg_shared {
    uv_mutex_t mu;
    unsigned sessions;
    struct client *tab[CHAINS];
};

struct tg_shared *tg_shared_new(void)
{
    struct tg_shared *sh = tg_calloc(1, sizeof(*sh));

    if (sh && uv_mutex_init(&sh->mu) != 0) {
        tg_free(sh);
        return NULL;
    }
    return sh;
}

void tg_shared_free(struct tg_shared *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i < CHAINS; i++)
        for (struct client *c = sh->tab[i], *next; c; c = next) {
            next = c->next;
            tg_free(c);
        }
    uv_mutex_destroy(&sh->mu);
    tg_free(sh);
}

static struct client **slot(struct tg_shared *sh, const char *ip)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    struct client **pp;

    for (const char *p = ip; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (pp = &sh->tab[h % CHAINS]; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->ip, ip) == 0)
            break;
    return pp;
}

enum tg_admit tg_shared_reserve(struct tg_shared *sh, const char *ip, unsigned max,
                                unsigned per_client, unsigned not_counted)
{
    enum tg_admit res = TG_ADMIT_OK;
    struct client **pp, *c;

    uv_mutex_lock(&sh->mu);
    pp = slot(sh, ip);
    c = *pp;
    if (sh->sessions >= max)
        res = TG_ADMIT_FULL;
    else if (per_client && c && c->n >= not_counted && c->n - not_counted >= per_client)
        res = TG_ADMIT_CLIENT;
    else if (!c && !(c = tg_calloc(1, sizeof(*c))))
        res = TG_ADMIT_FULL; /* out of memory: refuse rather than lose count */
    if (res == TG_ADMIT_OK) {
        if (!*pp) {
            snprintf(c->ip, sizeof(c->ip), "%s", ip);
            *pp = c;
        }
        c->n++;
        sh->sessions++;
    }
    uv_mutex_unlock(&sh->mu);
    return res;
}

void tg_shared_release(struct tg_shared *sh, const char *ip)
{
    struct client **pp, *c;

    uv_mutex_lock(&sh->mu);
    pp = slot(sh, ip);
    if ((c = *pp) != NULL && --c->n == 0) {
        *pp = c->next;
        tg_free(c);
    }
    if (sh->sessions)
        sh->sessions--;
    uv_mutex_unlock(&sh->mu);
}

unsigned tg_shared_sessions(struct tg_shared *sh)
{
    unsigned n;

    uv_mutex_lock(&sh->mu);
    n = sh->sessions;
    uv_mutex_unlock(&sh->mu);
    return n;
}

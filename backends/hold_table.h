/* backends/hold_table.h - the table of upstream streams a backend holds
 * after a declined tsize probe (probe_hold; owner: backends/hold_table.c).
 * Pure bookkeeping, no loop and no streams: entries are opaque items keyed
 * by (key, client address) with a due time, so tests/unit/test_hold_table.c
 * can check the bounds a blind sender meets (docs/security.md). */
#ifndef TFTPGW_HOLD_TABLE_H
#define TFTPGW_HOLD_TABLE_H

#include <arpa/inet.h>
#include <stdint.h>

/* Per backend: a flood of spoofed probes holds at most this many upstream
 * streams (connections and rings) at once. */
#define HT_MAX 32

struct ht_entry {
    char *key;                  /* the route-expanded key */
    char ip[INET6_ADDRSTRLEN];  /* the client's address, never its port */
    void *item;
    uint64_t due;               /* loop time (ms) when it is released */
};

/* Entries in the order they were put: the first is the oldest. */
struct ht_table {
    struct ht_entry e[HT_MAX];
    unsigned n;
};

/* Hold item under (key, ip) until due. One entry per (key, ip): an older
 * one for the same pair is displaced; at HT_MAX the oldest is. *displaced
 * is what the caller must now release (NULL: nothing). Returns 0, or
 * TG_ENOMEM (nothing changed, item not held). */
int ht_put(struct ht_table *t, const char *key, const char *ip, void *item, uint64_t due,
           void **displaced);
/* The item held under (key, ip), taken out of the table; NULL if none. */
void *ht_take(struct ht_table *t, const char *key, const char *ip);
/* One item due at or before now, taken out; NULL if none. *key (may be
 * NULL) gets its key, which the caller frees with tg_free. */
void *ht_expire(struct ht_table *t, uint64_t now, char **key);
/* Any item, taken out (to release all); NULL when empty. *key as for
 * ht_expire. */
void *ht_pop(struct ht_table *t, char **key);
/* The earliest due time; 0 when empty. */
uint64_t ht_next_due(const struct ht_table *t);

#endif

/* backends/hold_table.c - the hold table (backends/hold_table.h). Small
 * (HT_MAX entries) and kept in insertion order, so a linear scan and a
 * memmove are all it needs. */
#include <stdio.h>
#include <string.h>

#include "hold_table.h"
#include "tftpgw/common.h"

static void drop_at(struct ht_table *t, unsigned i, char **key)
{
    if (key)
        *key = t->e[i].key;
    else
        tg_free(t->e[i].key);
    memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
    t->n--;
}

static int find(const struct ht_table *t, const char *key, const char *ip)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strcmp(t->e[i].ip, ip) == 0 && strcmp(t->e[i].key, key) == 0)
            return (int)i;
    return -1;
}

int ht_put(struct ht_table *t, const char *key, const char *ip, void *item, uint64_t due,
           void **displaced)
{
    char *k = tg_strdup(key);
    struct ht_entry *e;
    int at;

    *displaced = NULL;
    if (!k || strlen(ip) >= sizeof(t->e[0].ip)) {
        tg_free(k);
        return TG_ENOMEM;
    }
    if ((at = find(t, key, ip)) >= 0) {
        /* A second probe from the same address: the newer one is what the
         * download will follow. */
        *displaced = t->e[at].item;
        drop_at(t, (unsigned)at, NULL);
    } else if (t->n == HT_MAX) {
        *displaced = t->e[0].item;
        drop_at(t, 0, NULL);
    }
    e = &t->e[t->n++];
    e->key = k;
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    e->item = item;
    e->due = due;
    return 0;
}

void *ht_take(struct ht_table *t, const char *key, const char *ip)
{
    int at = find(t, key, ip);
    void *item;

    if (at < 0)
        return NULL;
    item = t->e[at].item;
    drop_at(t, (unsigned)at, NULL);
    return item;
}

void *ht_expire(struct ht_table *t, uint64_t now, char **key)
{
    for (unsigned i = 0; i < t->n; i++) {
        if (t->e[i].due <= now) {
            void *item = t->e[i].item;

            drop_at(t, i, key);
            return item;
        }
    }
    return NULL;
}

void *ht_pop(struct ht_table *t, char **key)
{
    void *item;

    if (t->n == 0)
        return NULL;
    item = t->e[t->n - 1].item;
    drop_at(t, t->n - 1, key);
    return item;
}

uint64_t ht_next_due(const struct ht_table *t)
{
    uint64_t due = 0;

    for (unsigned i = 0; i < t->n; i++)
        if (due == 0 || t->e[i].due < due)
            due = t->e[i].due;
    return due;
}

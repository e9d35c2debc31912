/* gateway/live.h - the live transfers view's JSON document (GET
 * /transfers, docs/metrics.md). Owner: gateway/live.c. */
#ifndef TFTPGW_LIVE_H
#define TFTPGW_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

/* At most this many running transfers are listed ("truncated": true then),
 * so one request costs bounded work however many sessions run. */
#define TG_LIVE_MAX_ACTIVE 1000
/* ... and no more once their part of the answer reaches this: names of
 * escaped characters make a row up to ~2 KiB, and 64 connections may each
 * hold an answer (gateway/metrics.c). */
#define TG_LIVE_MAX_ACTIVE_BYTES (256 * 1024)

/* {"active":[...],"truncated":...,"finished":[...]} for the sessions of r
 * at the loop time now (ms). Returns tg_malloc'd text and its length, or
 * NULL when out of memory. */
char *tg_live_json(struct tg_registry *r, uint64_t now, size_t *len);

/* One worker's share of the view, built on its own loop (its sessions and
 * its ring of finished ones are only read there); worker 0 merges them. */
struct tg_live_part {
    char *active, *finished; /* comma-separated rows, tg_malloc'd */
    size_t alen, flen;
    unsigned count;
    bool truncated;
};
int tg_live_part(struct tg_registry *r, uint64_t now, struct tg_live_part *p);
void tg_live_part_free(struct tg_live_part *p);
char *tg_live_merge(struct tg_live_part *parts, size_t n, size_t *len);

#endif

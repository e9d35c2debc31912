/* backends/http_hold.c - held probes (probe_hold) for the http and s3
 * backends: the policy and the timer around backends/hold_table.c. The
 * engine's half (hx_park, hx_reopen) is in backends/http_engine.c.
 *
 * EDK2's TFTP client asks for tsize first, declines the OACK with ERROR 8
 * (RFC 2347 section "Negotiation Protocol"; RFC 2349) and then asks again
 * from a new port. Without a hold, each ask is a full upstream GET. With
 * one, the first GET waits, paused, for up to probe_hold seconds, and the
 * same client address asking for the same key takes it over.
 *
 * Bounds (invariant 6; docs/security.md, Held UEFI probes): one entry per
 * (key, address), HT_MAX per backend with the oldest released first, each
 * for probe_hold seconds, each a paused GET: one receive buffer and one upstream
 * connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hold_table.h"
#include "http_engine.h"
#include "tftpgw/log.h"

struct hx_held {
    struct ht_table t;
    uv_timer_t timer;
    long hold_ms;
};

static void release(struct hx_stream *hs, const char *key, const char *why)
{
    if (tg_log_enabled(TG_LOG_DEBUG)) {
        char k[160];

        tg_log(TG_LOG_DEBUG, "backend %s: held probe GET of \"%s\" for %s released: %s",
               hs->base.backend->name, tg_log_sanitize(key ? key : "", k, sizeof(k)),
               hs->client_ip, why);
    }
    hx_close(&hs->base);
}

static void on_due(uv_timer_t *t)
{
    struct hx_held *h = t->data;
    uint64_t now = uv_now(t->loop), next;
    struct hx_stream *hs;
    char *key = NULL, why[64];

    snprintf(why, sizeof(why), "not adopted within %ld s", h->hold_ms / 1000);
    while ((hs = ht_expire(&h->t, now, &key)) != NULL) {
        release(hs, key, why);
        tg_free(key);
        key = NULL;
    }
    if ((next = ht_next_due(&h->t)) != 0)
        uv_timer_start(t, on_due, next > now ? next - now : 0, 0);
}

static struct hx_held *held_get(struct hx_conf *c, uv_loop_t *loop)
{
    struct hx_held *h = c->held;

    if (h)
        return h;
    if (!(h = tg_calloc(1, sizeof(*h))))
        return NULL;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->hold_ms = c->probe_hold_s * 1000;
    return c->held = h;
}

int hx_hold(struct hx_conf *c, struct tg_stream *s, const struct tg_open_args *a)
{
    struct hx_stream *hs = (struct hx_stream *)s;
    struct hx_held *h;
    void *displaced;
    uint64_t now;

    /* Only a GET that answered and gave its owner nothing: what a later
     * RRQ adopts must start at byte 0 with the size the probe saw. A
     * conditional GET is the cache's, never a client's. */
    if (c->probe_hold_s <= 0 || s->ops != &hx_read_ops || hs->given != 0 ||
        (hs->state != HX_OPEN && hs->state != HX_EOF) || hs->meta.not_modified ||
        hs->cond.etag[0] || hs->cond.last_modified[0] || !a->key || !a->client_ip ||
        !a->client_ip[0])
        return 1;
    if (!(h = held_get(c, s->backend->loop)))
        return 1;
    now = uv_now(s->backend->loop);
    if (ht_put(&h->t, a->key, a->client_ip, hs, now + (uint64_t)h->hold_ms, &displaced) != 0)
        return 1;
    hx_park(hs);
    if (displaced)
        release(displaced, a->key, "another probe took its place");
    if (!uv_is_active((uv_handle_t *)&h->timer))
        uv_timer_start(&h->timer, on_due, ht_next_due(&h->t) - now, 0);
    if (tg_log_enabled(TG_LOG_DEBUG)) {
        char k[160];

        tg_log(TG_LOG_DEBUG, "backend %s: probe GET of \"%s\" for %s held for %ld s (%u held)",
               s->backend->name, tg_log_sanitize(a->key, k, sizeof(k)), a->client_ip,
               c->probe_hold_s, h->t.n);
    }
    return 0;
}

int hx_adopt(struct hx_conf *c, const struct tg_open_args *a, tg_stream_cb *cb, void *arg,
             struct tg_stream **out)
{
    struct hx_stream *hs;
    char k[160];

    if (!c->held || c->held->t.n == 0 || !a->key || !a->client_ip)
        return 1;
    if (!(hs = ht_take(&c->held->t, a->key, a->client_ip)))
        return 1;
    /* A conditional open wants a 304 the held GET cannot give; a failed
     * GET has nothing to give. Another blksize is fine: the body goes
     * into whatever buffers the new owner's reads offer. */
    if (a->if_changed || hs->state == HX_FAILED) {
        release(hs, a->key, "the new request cannot use it");
        return 1;
    }
    hx_reopen(hs, cb, arg);
    if (tg_log_enabled(TG_LOG_DEBUG))
        tg_log(TG_LOG_DEBUG, "backend %s: \"%s\" for %s continues a held probe GET",
               hs->base.backend->name, tg_log_sanitize(a->key, k, sizeof(k)), a->client_ip);
    *out = &hs->base;
    return 0;
}

void hx_held_drop(struct hx_conf *c)
{
    struct hx_stream *hs;
    char *key = NULL;

    if (!c->held)
        return;
    while ((hs = ht_pop(&c->held->t, &key)) != NULL) {
        release(hs, key, "reload or shutdown");
        tg_free(key);
        key = NULL;
    }
    uv_timer_stop(&c->held->timer);
}

static void on_timer_closed(uv_handle_t *t)
{
    tg_free(t->data);
}

void hx_held_free(struct hx_conf *c)
{
    if (!c->held)
        return;
    hx_held_drop(c);
    uv_close((uv_handle_t *)&c->held->timer, on_timer_closed);
    c->held = NULL;
}

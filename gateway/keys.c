/* gateway/keys.c - configuration keys read through tables
 * (include/tftpgw/keys.h): parsing, bounds, defaults and messages in one
 * place for [server] and every [backend NAME] type. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tftpgw/keys.h"
#include "tftpgw/options.h"

static int bad(char *msg, size_t cap, const char *fmt, ...) TG_PRINTF(3, 4);

static int bad(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return TG_EINVAL;
}

/* The row's own message when it has one, else the generic text. */
static int bad_value(const struct tg_key *k, const char *own, const char *v, char *msg,
                     size_t cap)
{
    if (!own)
        return TG_EINVAL; /* the caller wrote the generic text */
    if (k->flags & TG_KEY_GOT)
        return bad(msg, cap, "%s, got '%s'", own, v);
    return bad(msg, cap, "%s", own);
}

static void put_uint(void *field, size_t width, uint64_t v)
{
    switch (width) {
    case 1: { uint8_t x = (uint8_t)v; memcpy(field, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; memcpy(field, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(field, &x, 4); break; }
    default: memcpy(field, &v, 8); break;
    }
}

static int set_uint(void *field, const struct tg_key *k, const char *v, char *msg, size_t cap)
{
    uint64_t u;
    int rc = tg_parse_u64(v, UINT64_MAX, &u);

    if (rc == TG_EINVAL) {
        bad(msg, cap, "\"%s\" is not a number", v);
        return bad_value(k, k->bad, v, msg, cap);
    }
    if (rc < 0 || u < k->min || u > k->max) {
        bad(msg, cap, "%s is out of range %llu..%llu", v, (unsigned long long)k->min,
            (unsigned long long)k->max);
        return bad_value(k, k->range ? k->range : k->bad, v, msg, cap);
    }
    put_uint(field, k->width, u * (k->scale ? k->scale : 1));
    return 0;
}

static int set_size(void *field, const struct tg_key *k, const char *v, char *msg, size_t cap)
{
    int64_t sz;
    int rc = tg_config_parse_size(v, &sz);

    if (rc == TG_EINVAL) {
        bad(msg, cap, "\"%s\" is not a size (123, 64k, 4M, 1G)", v);
        return bad_value(k, k->bad, v, msg, cap);
    }
    if (rc < 0 || (uint64_t)sz < k->min || (uint64_t)sz > k->max) {
        bad(msg, cap, "%s is out of range %llu..%llu", v, (unsigned long long)k->min,
            (unsigned long long)k->max);
        return bad_value(k, k->range ? k->range : k->bad, v, msg, cap);
    }
    put_uint(field, k->width, (uint64_t)sz);
    return 0;
}

#define DURATION_MAX (100ull * 365 * 86400 * 1000)

static const struct {
    const char *name;
    uint64_t ms;
} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

int tg_parse_duration(const char *s, uint64_t bare_ms, uint64_t *ms)
{
    uint64_t n = 0, per = bare_ms;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return TG_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > DURATION_MAX)
            return TG_ERANGE;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (*p) {
        per = 0;
        for (size_t i = 0; i < TG_ARRAY_LEN(units) && !per; i++)
            if (!strcmp(p, units[i].name))
                per = units[i].ms;
        if (!per)
            return TG_EINVAL;
    }
    if (n > DURATION_MAX / per)
        return TG_ERANGE;
    *ms = n * per;
    return 0;
}

const char *tg_duration_fmt(uint64_t ms, char *buf, size_t cap)
{
    size_t i = 0;

    while (i + 1 < TG_ARRAY_LEN(units) && (ms == 0 ? units[i].ms != 1000 : ms % units[i].ms))
        i++;
    snprintf(buf, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].name);
    return buf;
}

/* Bounds and the stored value are in the row's own unit: a bare number
 * keeps meaning what it always meant for that key, so old files work. */
static int set_duration(void *field, const struct tg_key *k, const char *v, char *msg,
                        size_t cap)
{
    uint64_t ms, scale = k->scale ? k->scale : 1;
    char lo[24], hi[24];
    int rc = tg_parse_duration(v, k->unit_ms, &ms);

    if (rc == TG_EINVAL) {
        bad(msg, cap, "\"%s\" is not a duration (a number of %s, or 500ms, 30s, 5m, 1h, 1d)",
            v, k->unit_ms == 1 ? "milliseconds" : "seconds");
        return bad_value(k, k->bad, v, msg, cap);
    }
    if (rc < 0 || ms < k->min * k->unit_ms || ms > k->max * k->unit_ms) {
        bad(msg, cap, "%s is out of range %s..%s", v,
            tg_duration_fmt(k->min * k->unit_ms, lo, sizeof(lo)),
            tg_duration_fmt(k->max * k->unit_ms, hi, sizeof(hi)));
        return bad_value(k, k->range ? k->range : k->bad, v, msg, cap);
    }
    if ((ms * scale) % k->unit_ms)
        return bad(msg, cap, "%s: takes whole %s", v, k->unit_ms == 1 ? "milliseconds" : "seconds");
    put_uint(field, k->width, ms * scale / k->unit_ms);
    return 0;
}

static int set_enum(void *field, const struct tg_key *k, const char *v, char *msg, size_t cap)
{
    for (int i = 0; k->names[i]; i++) {
        if ((k->flags & TG_KEY_CASE) ? !strcmp(v, k->names[i]) : !strcasecmp(v, k->names[i])) {
            put_uint(field, k->width, (uint64_t)i);
            return 0;
        }
    }
    bad(msg, cap, "\"%s\": expected", v);
    for (int i = 0; k->names[i]; i++) {
        size_t n = strlen(msg);

        snprintf(msg + n, cap - n, "%s %s", i ? "," : "", k->names[i]);
    }
    return bad_value(k, k->bad, v, msg, cap);
}

static int set_string(void *field, const struct tg_key *k, const char *v, char *msg, size_t cap)
{
    char **sp = field, *dup;

    if (*v == '\0' && !(k->flags & TG_KEY_EMPTY_OK)) {
        bad(msg, cap, "empty value");
        return bad_value(k, k->bad, v, msg, cap);
    }
    if ((k->flags & TG_KEY_ABSOLUTE) && v[0] != '/') {
        bad(msg, cap, "\"%s\": expected an absolute path", v);
        return bad_value(k, k->bad, v, msg, cap);
    }
    if (!(dup = tg_strdup(v)))
        return TG_ENOMEM;
    tg_free(*sp);
    *sp = dup;
    return 0;
}

int tg_key_set(void *obj, const struct tg_key *k, const char *v, char *msg, size_t cap)
{
    char *field = (char *)obj + k->off;

    switch (k->type) {
    case TG_KEY_UINT:
        return set_uint(field, k, v, msg, cap);
    case TG_KEY_SIZE:
        return set_size(field, k, v, msg, cap);
    case TG_KEY_DURATION:
        return set_duration(field, k, v, msg, cap);
    case TG_KEY_ENUM:
        return set_enum(field, k, v, msg, cap);
    case TG_KEY_STRING:
        return set_string(field, k, v, msg, cap);
    case TG_KEY_BOOL:
        if (tg_config_parse_bool(v, (bool *)(void *)field) == 0)
            return 0;
        bad(msg, cap, "\"%s\": expected yes or no", v);
        return bad_value(k, k->bad, v, msg, cap);
    case TG_KEY_FUNC:
        return k->set(obj, v, msg, cap);
    }
    return bad(msg, cap, "unsupported key type");
}

int tg_key_defaults(void *obj, const struct tg_key *keys, size_t n)
{
    char msg[256];

    for (size_t i = 0; i < n; i++) {
        int rc;

        if (!keys[i].def)
            continue;
        rc = tg_key_set(obj, &keys[i], keys[i].def, msg, sizeof(msg));
        if (rc < 0)
            return rc; /* only TG_ENOMEM: the defaults are in range */
    }
    return 0;
}

const struct tg_key *tg_key_find(const struct tg_key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* The row for name in any of the tables, and the object it writes. */
static const struct tg_key *find_in(const struct tg_key_table *t, size_t nt, const char *name,
                                    void **obj)
{
    for (size_t i = 0; i < nt; i++) {
        const struct tg_key *k = tg_key_find(t[i].keys, t[i].n, name);

        if (k) {
            *obj = t[i].obj;
            return k;
        }
    }
    return NULL;
}

static int missing_keys(const struct tg_key_table *t, size_t nt, const struct tg_backend_cfg *cfg,
                        const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < nt; i++) {
        for (size_t j = 0; j < t[i].n; j++) {
            const struct tg_key *k = &t[i].keys[j];

            if (!(k->flags & TG_KEY_REQUIRED) || tg_config_kv(cfg, k->name))
                continue;
            if (k->missing)
                snprintf(err, errlen, "line %d: %s: %s", cfg->line, k->name, k->missing);
            else
                snprintf(err, errlen, "line %d: %s: required for %s", cfg->line, k->name, what);
            return TG_EINVAL;
        }
    }
    return 0;
}

int tg_key_parse_backend(const struct tg_key_table *t, size_t nt, const struct tg_backend_cfg *cfg,
                         const char *what, char *err, size_t errlen)
{
    char msg[256];
    int rc = 0;

    for (size_t i = 0; i < nt && rc == 0; i++)
        rc = tg_key_defaults(t[i].obj, t[i].keys, t[i].n);
    for (size_t i = 0; i < cfg->nkv && rc == 0; i++) {
        const struct tg_kv *kv = &cfg->kv[i];
        void *obj = NULL;
        const struct tg_key *k = find_in(t, nt, kv->key, &obj);

        if (!k) {
            snprintf(err, errlen, "line %d: %s: unknown key for %s", kv->line, kv->key, what);
            return TG_EINVAL;
        }
        msg[0] = '\0';
        rc = tg_key_set(obj, k, kv->value, msg, sizeof(msg));
        if (rc < 0 && rc != TG_ENOMEM) {
            snprintf(err, errlen, "line %d: %s: %s", kv->line, kv->key, msg);
            return TG_EINVAL;
        }
    }
    if (rc == TG_ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    return missing_keys(t, nt, cfg, what, err, errlen);
}

int tg_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    if (!s)
        return TG_EINVAL;
    for (size_t i = 0; i < TG_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return TG_EINVAL;
}

int tg_config_parse_size(const char *s, int64_t *out)
{
    char digits[24];
    size_t n;
    unsigned shift = 0;
    uint64_t v;
    int rc;

    if (!s)
        return TG_EINVAL;
    n = strlen(s);
    if (n > 0) {
        switch (s[n - 1]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: break;
        }
        if (shift)
            n--;
    }
    if (n == 0)
        return TG_EINVAL;
    if (n >= sizeof(digits)) {
        /* Too long for any int64; still tell syntax errors from overflow. */
        for (size_t i = 0; i < n; i++)
            if (s[i] < '0' || s[i] > '9')
                return TG_EINVAL;
        return TG_ERANGE;
    }
    memcpy(digits, s, n);
    digits[n] = '\0';
    rc = tg_parse_u64(digits, (uint64_t)INT64_MAX >> shift, &v);
    if (rc < 0)
        return rc;
    *out = (int64_t)(v << shift);
    return 0;
}

const struct tg_kv *tg_config_kv(const struct tg_backend_cfg *b, const char *key)
{
    for (size_t i = 0; i < b->nkv; i++)
        if (strcmp(b->kv[i].key, key) == 0)
            return &b->kv[i];
    return NULL;
}

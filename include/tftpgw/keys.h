/* include/tftpgw/keys.h - configuration keys read through tables (owner:
 * gateway/keys.c). One row per key says its type, bounds, default, the
 * message for a bad value and where the value goes; the [server] section
 * (gateway/config.c) and every backend type's [backend NAME] section are
 * read by this one piece of code. */
#ifndef TFTPGW_KEYS_H
#define TFTPGW_KEYS_H

#include "tftpgw/common.h"

struct tg_kv {
    char *key;
    char *value;
    int line;
};

/* Every backend type, in this one place: a [backend] section's type is
 * one of these names (gateway/config.c), and type NAME is served by
 * tg_NAME_backend_ops (include/tftpgw/backend.h, gateway/backend.c). */
#define TG_BACKEND_TYPES(X) X(file) X(http) X(s3) X(cache)

/* A [backend NAME] section. Keys beyond `type` are kept raw and checked by
 * the backend type itself when it is created (tg_backend_create). */
struct tg_backend_cfg {
    char *name;
    char *type;
    int line;
    const char *file;  /* the config file (borrowed), NULL when built in */
    struct tg_kv *kv;
    size_t nkv;
};

/* Look up a raw backend key; NULL when absent. */
const struct tg_kv *tg_config_kv(const struct tg_backend_cfg *b, const char *key);

/* Shared value parsers for config code (backends use them too). */
/* A duration: "500ms", "30s", "5m", "1h", "1d", or a bare number of
 * bare_ms milliseconds each; into *ms. 0, TG_EINVAL, or TG_ERANGE past
 * 100 years. Owner: gateway/keys.c. */
int tg_parse_duration(const char *s, uint64_t bare_ms, uint64_t *ms);
/* ms with the largest unit that states it exactly: "90s", "5m", "1d",
 * "250ms", "0s". Owner: gateway/keys.c. */
const char *tg_duration_fmt(uint64_t ms, char *buf, size_t cap);
int tg_config_parse_bool(const char *s, bool *out);        /* yes/no/true/false/on/off/1/0 */
int tg_config_parse_size(const char *s, int64_t *out);     /* 123, 4k, 8M, 1G (powers of 1024) */


enum tg_key_type {
    TG_KEY_UINT,   /* decimal min..max; the field (width 1..8) holds it x scale */
    TG_KEY_SIZE,   /* 123, 64k, 4M, 1G (powers of 1024), min..max; an 8-byte field */
    TG_KEY_DURATION, /* 500ms, 30s, 5m, 1h, 1d, or a bare number in the row's unit
                      * (unit_ms); min..max in that unit; stored like UINT x scale */
    TG_KEY_ENUM,   /* one of names[], case-insensitive unless TG_KEY_CASE: its index */
    TG_KEY_BOOL,   /* yes/no/true/false/on/off/1/0: a bool */
    TG_KEY_STRING, /* a copy (tg_strdup) in a char *, the old one freed */
    TG_KEY_FUNC    /* set(obj, value, msg, cap) */
};

#define TG_KEY_REQUIRED 0x01u /* [backend]: the section must have it */
#define TG_KEY_EMPTY_OK 0x02u /* TG_KEY_STRING: "" is a value */
#define TG_KEY_ABSOLUTE 0x04u /* TG_KEY_STRING: must start with '/' */
#define TG_KEY_CASE     0x08u /* TG_KEY_ENUM: names match exactly */
#define TG_KEY_GOT      0x10u /* a bad value's message ends ", got 'VALUE'" */

/* TG_KEY_FUNC: 0, TG_EINVAL with msg filled, or TG_ENOMEM. */
typedef int tg_key_set_fn(void *obj, const char *value, char *msg, size_t cap);

struct tg_key {
    const char *name;
    enum tg_key_type type;
    size_t off, width;        /* the field in obj: TG_KEY_AT(type, field) */
    uint64_t min, max;        /* UINT, SIZE: bounds of the value as written */
    uint64_t scale;           /* UINT, DURATION: stored = value x scale; 0 means 1 */
    uint64_t unit_ms;         /* DURATION: milliseconds of a bare number (1 or 1000) */
    const char *def;          /* default, parsed like a value; NULL: none */
    const char *const *names; /* ENUM: NULL-terminated; the value is the index */
    tg_key_set_fn *set;       /* FUNC */
    unsigned flags;           /* TG_KEY_* */
    const char *bad;          /* a bad value's message; NULL: one that names it */
    const char *range;        /* UINT, SIZE out of bounds; NULL: as bad */
    const char *missing;      /* REQUIRED and absent; NULL: "required for WHAT" */
};

#define TG_KEY_AT(type, field) .off = offsetof(type, field), .width = sizeof(((type *)0)->field)

/* A table and the object its rows write into. */
struct tg_key_table {
    const struct tg_key *keys;
    size_t n;
    void *obj;
};

const struct tg_key *tg_key_find(const struct tg_key *keys, size_t n, const char *name);
/* One value into obj by its row: 0, TG_EINVAL with msg saying what is
 * wrong (without the key's name), or TG_ENOMEM. */
int tg_key_set(void *obj, const struct tg_key *k, const char *value, char *msg, size_t cap);
/* Every default of the table into obj. 0 or TG_ENOMEM. */
int tg_key_defaults(void *obj, const struct tg_key *keys, size_t n);

/* A [backend NAME] section through its tables, for a backend type's
 * create(): the defaults, then each key in file order, then the required
 * ones. On the first problem err gets "line N: KEY: what is wrong" (a bad
 * value), "line N: KEY: unknown key for WHAT" (no row), or "line N: KEY:
 * required for WHAT" (N the section's line), and TG_EINVAL is returned;
 * TG_ENOMEM with "out of memory". what: "an http backend". */
int tg_key_parse_backend(const struct tg_key_table *tables, size_t ntables,
                         const struct tg_backend_cfg *cfg, const char *what, char *err,
                         size_t errlen);

#endif

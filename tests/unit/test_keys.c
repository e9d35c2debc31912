/* tests/unit/test_keys.c - configuration keys read through tables
 * (gateway/keys.c): each type into fields of every width, bounds, scale,
 * defaults, the generic and the rows' own messages, and a [backend]
 * section parsed through two tables: file order, unknown and required
 * keys, out of memory, nothing leaked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/keys.h"

struct conf {
    uint8_t u8;
    uint16_t u16;
    unsigned u32;
    uint64_t ms;
    int64_t size;
    bool flag;
    int mode;
    char *path;
    char *note;
    int calls;
};

struct extra {
    long timeout;
    char *url;
};

static const char *const modes[] = {"off", "on", "auto", NULL};

static int set_note(void *obj, const char *v, char *msg, size_t cap)
{
    struct conf *c = obj;

    c->calls++;
    if (!strcmp(v, "no")) {
        snprintf(msg, cap, "not that");
        return TG_EINVAL;
    }
    c->note = tg_strdup(v);
    return c->note ? 0 : TG_ENOMEM;
}

#define C(f) TG_KEY_AT(struct conf, f)
#define X(f) TG_KEY_AT(struct extra, f)

static const struct tg_key conf_keys[] = {
    {.name = "u8", .type = TG_KEY_UINT, C(u8), .min = 1, .max = 200, .def = "7"},
    {.name = "u16", .type = TG_KEY_UINT, C(u16), .max = 60000, .def = "1000"},
    {.name = "u32", .type = TG_KEY_UINT, C(u32), .min = 10, .max = 100, .bad = "10..100",
     .flags = TG_KEY_GOT},
    {.name = "ttl", .type = TG_KEY_UINT, C(ms), .max = 3600, .scale = 1000, .def = "5",
     .bad = "seconds"},
    {.name = "size", .type = TG_KEY_SIZE, C(size), .min = 512, .max = 1 << 30, .def = "4k",
     .bad = "a size", .range = "512..1G"},
    {.name = "flag", .type = TG_KEY_BOOL, C(flag), .def = "yes"},
    {.name = "mode", .type = TG_KEY_ENUM, C(mode), .names = modes, .def = "auto"},
    {.name = "exact", .type = TG_KEY_ENUM, C(mode), .names = modes, .flags = TG_KEY_CASE,
     .bad = "off, on or auto"},
    {.name = "path", .type = TG_KEY_STRING, C(path), .flags = TG_KEY_ABSOLUTE | TG_KEY_REQUIRED,
     .bad = "an absolute directory"},
    {.name = "note", .type = TG_KEY_FUNC, .set = set_note},
};

static const struct tg_key extra_keys[] = {
    {.name = "timeout", .type = TG_KEY_UINT, X(timeout), .min = 100, .max = 600000,
     .def = "5000", .bad = "milliseconds, 100..600000"},
    {.name = "url", .type = TG_KEY_STRING, X(url), .flags = TG_KEY_REQUIRED | TG_KEY_EMPTY_OK,
     .missing = "missing (give the upstream's URL)"},
};

static void conf_free(struct conf *c, struct extra *x)
{
    tg_free(c->path);
    tg_free(c->note);
    tg_free(x->url);
    memset(c, 0, sizeof(*c));
    memset(x, 0, sizeof(*x));
}

static int set(struct conf *c, const char *name, const char *v, char *msg)
{
    const struct tg_key *k = tg_key_find(conf_keys, TG_ARRAY_LEN(conf_keys), name);

    assert_non_null(k);
    msg[0] = '\0';
    return tg_key_set(c, k, v, msg, 128);
}

static void test_values(void **state)
{
    struct conf c;
    char msg[128];

    (void)state;
    memset(&c, 0xa5, sizeof(c));
    c.path = c.note = NULL;
    assert_int_equal(tg_key_defaults(&c, conf_keys, TG_ARRAY_LEN(conf_keys)), 0);
    assert_int_equal(c.u8, 7);
    assert_int_equal(c.u16, 1000);
    assert_int_equal(c.u32, 0xa5a5a5a5u); /* no default: untouched */
    assert_int_equal(c.ms, 5000);
    assert_int_equal(c.size, 4096);
    assert_true(c.flag);
    assert_int_equal(c.mode, 2);
    assert_null(c.path);

    assert_int_equal(set(&c, "u8", "200", msg), 0);
    assert_int_equal(c.u8, 200);
    assert_int_equal(c.u16, 1000); /* the neighbour field is intact */
    assert_int_equal(set(&c, "u16", "60000", msg), 0);
    assert_int_equal(c.u16, 60000);
    assert_int_equal(c.u8, 200);
    assert_int_equal(set(&c, "ttl", "3600", msg), 0);
    assert_int_equal(c.ms, 3600000);
    assert_int_equal(set(&c, "size", "1G", msg), 0);
    assert_int_equal(c.size, 1 << 30);
    assert_int_equal(set(&c, "flag", "off", msg), 0);
    assert_false(c.flag);
    assert_int_equal(set(&c, "mode", "ON", msg), 0); /* case-insensitive */
    assert_int_equal(c.mode, 1);
    assert_int_equal(set(&c, "exact", "off", msg), 0);
    assert_int_equal(c.mode, 0);
    assert_int_equal(set(&c, "path", "/srv/a", msg), 0);
    assert_int_equal(set(&c, "path", "/srv/b", msg), 0); /* the old copy is freed */
    assert_string_equal(c.path, "/srv/b");
    assert_int_equal(set(&c, "note", "hello", msg), 0);
    assert_string_equal(c.note, "hello");
    tg_free(c.path);
    tg_free(c.note);
}

static void test_messages(void **state)
{
    static const struct {
        const char *key, *value, *msg;
    } cases[] = {
        /* generic texts name the value and the bounds */
        {"u8", "abc", "\"abc\" is not a number"},
        {"u8", "0", "0 is out of range 1..200"},
        {"u8", "201", "201 is out of range 1..200"},
        {"u8", "-1", "\"-1\" is not a number"},
        {"u16", "99999999999999999999999", "99999999999999999999999 is out of range 0..60000"},
        {"flag", "maybe", "\"maybe\": expected yes or no"},
        {"mode", "sometimes", "\"sometimes\": expected off, on, auto"},
        /* a row's own text, with the value when it asks for it */
        {"u32", "9", "10..100, got '9'"},
        {"u32", "x", "10..100, got 'x'"},
        {"ttl", "3601", "seconds"},
        {"ttl", "5m", "seconds"},
        {"size", "lots", "a size"},
        {"size", "100", "512..1G"},
        {"exact", "ON", "off, on or auto"},
        {"path", "rel/dir", "an absolute directory"},
        {"path", "", "an absolute directory"},
        {"note", "no", "not that"},
    };
    struct conf c;
    char msg[128];
    long live = tg_alloc_live();

    (void)state;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        assert_int_equal(set(&c, cases[i].key, cases[i].value, msg), TG_EINVAL);
        assert_string_equal(msg, cases[i].msg);
    }
    assert_null(c.path);
    assert_int_equal(tg_alloc_live(), live);
}

static int parse(const struct tg_kv *kv, size_t n, struct conf *c, struct extra *x, char *err)
{
    struct tg_backend_cfg cfg = {(char *)"b", (char *)"test", 3, NULL, (struct tg_kv *)kv, n};
    const struct tg_key_table t[] = {{conf_keys, TG_ARRAY_LEN(conf_keys), c},
                                     {extra_keys, TG_ARRAY_LEN(extra_keys), x}};

    memset(c, 0, sizeof(*c));
    memset(x, 0, sizeof(*x));
    err[0] = '\0';
    return tg_key_parse_backend(t, TG_ARRAY_LEN(t), &cfg, "a test backend", err, 256);
}

#define KV(k, v, l) {(char *)(k), (char *)(v), (l)}

static void test_backend_section(void **state)
{
    static const struct {
        struct tg_kv kv[4];
        size_t n;
        const char *err;
    } cases[] = {
        {{KV("path", "/a", 4), KV("url", "", 5)}, 2, ""},
        {{KV("url", "x", 4)}, 1, "line 3: path: required for a test backend"},
        {{KV("path", "/a", 4)}, 1, "line 3: url: missing (give the upstream's URL)"},
        {{KV("colour", "red", 4), KV("u8", "0", 5)}, 2,
         "line 4: colour: unknown key for a test backend"},
        /* the first bad line wins, in file order, across both tables */
        {{KV("path", "/a", 4), KV("timeout", "5", 5), KV("u8", "0", 6)}, 3,
         "line 5: timeout: milliseconds, 100..600000"},
        {{KV("u32", "7", 4), KV("colour", "red", 5)}, 2, "line 4: u32: 10..100, got '7'"},
        /* value errors come before a missing key */
        {{KV("flag", "maybe", 9)}, 1, "line 9: flag: \"maybe\": expected yes or no"},
    };
    struct conf c;
    struct extra x;
    char err[256];
    long live = tg_alloc_live();

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        int rc = parse(cases[i].kv, cases[i].n, &c, &x, err);

        assert_string_equal(err, cases[i].err);
        assert_int_equal(rc, cases[i].err[0] ? TG_EINVAL : 0);
        if (rc == 0) {
            assert_int_equal(x.timeout, 5000); /* defaults of both tables */
            assert_int_equal(c.u8, 7);
            assert_string_equal(c.path, "/a");
            assert_string_equal(x.url, "");
        }
        conf_free(&c, &x);
        assert_int_equal(tg_alloc_live(), live);
    }
}

/* Every allocation of a parse can fail: "out of memory", TG_ENOMEM. */
static void test_out_of_memory(void **state)
{
    static const struct tg_kv kv[] = {KV("path", "/a", 4), KV("url", "u", 5),
                                       KV("note", "n", 6)};
    struct conf c;
    struct extra x;
    char err[256];
    long live = tg_alloc_live();
    long n;

    (void)state;
    for (n = 1; n < 10; n++) {
        int rc;

        tg_alloc_fail_after(n);
        rc = parse(kv, TG_ARRAY_LEN(kv), &c, &x, err);
        tg_alloc_fail_after(0);
        conf_free(&c, &x);
        assert_int_equal(tg_alloc_live(), live);
        if (rc == 0)
            break;
        assert_int_equal(rc, TG_ENOMEM);
        assert_string_equal(err, "out of memory");
    }
    assert_true(n == 4); /* three copies: the fourth allocation is past them */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_backend_section),
        cmocka_unit_test(test_out_of_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_config.c - INI parsing, validation, errors, embedded config;
 * and the logger (log.c has no test binary of its own and is linked here). */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tftpgw/config.h"
#include "tftpgw/log.h"
#include "tftpgw/options.h"
#include "tftpgw/remap.h"

/* ---- value parsers ------------------------------------------------------- */

static void test_parse_bool(void **state)
{
    static const struct {
        const char *in;
        int rc;
        bool v;
    } cases[] = {
        { "yes", 0, true }, { "YES", 0, true }, { "true", 0, true },
        { "On", 0, true }, { "1", 0, true }, { "no", 0, false },
        { "False", 0, false }, { "off", 0, false }, { "0", 0, false },
        { "", TG_EINVAL, false }, { "y", TG_EINVAL, false },
        { "2", TG_EINVAL, false }, { "yes ", TG_EINVAL, false },
        { "enable", TG_EINVAL, false },
    };

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        bool v = !cases[i].v;
        int rc = tg_config_parse_bool(cases[i].in, &v);

        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d", cases[i].in, rc);
        if (rc == 0)
            assert_int_equal(v, cases[i].v);
    }
    assert_int_equal(tg_config_parse_bool(NULL, &(bool){ false }), TG_EINVAL);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *in;
        int rc;
        int64_t v;
    } cases[] = {
        { "0", 0, 0 },
        { "123", 0, 123 },
        { "1k", 0, 1024 },
        { "64K", 0, 65536 },
        { "4M", 0, 4194304 },
        { "8m", 0, 8388608 },
        { "1G", 0, 1073741824 },
        { "2g", 0, 2147483648LL },
        { "9223372036854775807", 0, INT64_MAX },
        { "8589934591G", 0, INT64_MAX - ((1LL << 30) - 1) },
        { "9223372036854775808", TG_ERANGE, 0 },
        { "8589934592G", TG_ERANGE, 0 },
        { "99999999999999999999999999", TG_ERANGE, 0 },
        { "", TG_EINVAL, 0 },
        { "k", TG_EINVAL, 0 },
        { "-1", TG_EINVAL, 0 },
        { "+1", TG_EINVAL, 0 },
        { "1.5M", TG_EINVAL, 0 },
        { "1 M", TG_EINVAL, 0 },
        { " 1", TG_EINVAL, 0 },
        { "1T", TG_EINVAL, 0 },
        { "12kB", TG_EINVAL, 0 },
        { "0x10", TG_EINVAL, 0 },
        { "9999999999999999999999999x", TG_EINVAL, 0 },
    };

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        int64_t v = -7;
        int rc = tg_config_parse_size(cases[i].in, &v);

        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].v)
            fail_msg("\"%s\": %lld", cases[i].in, (long long)v);
        if (rc < 0)
            assert_int_equal(v, -7);
    }
}

/* Durations: a unit, or a bare number in the key's own unit. */
static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        uint64_t bare_ms;
        int rc;
        uint64_t ms;
        const char *fmt; /* tg_duration_fmt of ms */
    } cases[] = {
        { "0", 1000, 0, 0, "0s" },
        { "250", 1, 0, 250, "250ms" },
        { "250", 1000, 0, 250000, "250s" },
        { "500ms", 1000, 0, 500, "500ms" },
        { "30s", 1, 0, 30000, "30s" },
        { "90s", 1, 0, 90000, "90s" },
        { "5m", 1000, 0, 300000, "5m" },
        { "1h", 1000, 0, 3600000, "1h" },
        { "1d", 1000, 0, 86400000, "1d" },
        { "36500d", 1000, 0, 36500ull * 86400000, "36500d" },
        { "36501d", 1000, TG_ERANGE, 0, NULL },
        { "99999999999999999999999", 1, TG_ERANGE, 0, NULL },
        { "", 1, TG_EINVAL, 0, NULL },
        { "s", 1, TG_EINVAL, 0, NULL },
        { "1.5h", 1, TG_EINVAL, 0, NULL },
        { "1 s", 1, TG_EINVAL, 0, NULL },
        { "-1s", 1, TG_EINVAL, 0, NULL },
        { "1S", 1, TG_EINVAL, 0, NULL },
        { "1w", 1, TG_EINVAL, 0, NULL },
        { "1sec", 1, TG_EINVAL, 0, NULL },
        { "1ms5", 1, TG_EINVAL, 0, NULL },
    };
    char buf[24];

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        uint64_t ms = 7;
        int rc = tg_parse_duration(cases[i].in, cases[i].bare_ms, &ms);

        if (rc != cases[i].rc)
            fail_msg("\"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0 && ms != cases[i].ms)
            fail_msg("\"%s\": %llu ms", cases[i].in, (unsigned long long)ms);
        if (rc == 0)
            assert_string_equal(tg_duration_fmt(ms, buf, sizeof(buf)), cases[i].fmt);
        else
            assert_int_equal(ms, 7);
    }
}

#define DUR_BASE "[backend b]\ntype = file\n[route r]\nbackend = b\n[server]\n"

/* Old files keep working: a bare number means what it meant before. */
static void test_duration_keys(void **state)
{
    struct tg_config *cfg;
    char err[256];

    (void)state;
    assert_int_equal(tg_config_parse_string(DUR_BASE "timeout = 2s\ndrain_timeout = 5m\n", "t.ini",
                                            &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->server.timeout_ms, 2000);
    assert_int_equal(cfg->server.drain_timeout_s, 300);
    tg_config_free(cfg);
    assert_int_equal(tg_config_parse_string(DUR_BASE "timeout = 1500\ndrain_timeout = 45\n", "t.ini",
                                            &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->server.timeout_ms, 1500);
    assert_int_equal(cfg->server.drain_timeout_s, 45);
    tg_config_free(cfg);
}

/* ---- happy paths --------------------------------------------------------- */

/* Every key, set to something other than its default. Line numbers in the
 * comments on the right are what the assertions below expect. */
static const char full_config[] =
    "\xEF\xBB\xBF; tftpgw test config\r\n"                          /* 1 */
    "[server]\n"                                                     /* 2 */
    "listen = 127.0.0.1:6969, [::1]:6969 [2001:db8::1]:69\n"         /* 3 */
    "port_range = 30000:30999\n"                                     /* 4 */
    "max_sessions = 200\n"                                           /* 5 */
    "max_sessions_per_client = 4\n"                                  /* 6 */
    "timeout = 250\n"                                                /* 7 */
    "   retries = 7          ; indented: not a continuation line\n"  /* 8 */
    "max_blksize = 1468\n"                                           /* 9 */
    "max_windowsize = 16\n"                                          /* 10 */
    "max_window_bytes = 512k\n"                                      /* 11 */
    "rollover = 1\n"                                                 /* 12 */
    "user = tftp\n"                                                  /* 13 */
    "log_level = debug\n"                                            /* 14 */
    "log_format = json\n"                                            /* 15 */
    "\n"                                                             /* 16 */
    "# the disk\n"                                                   /* 17 */
    "[backend disk]\n"                                               /* 18 */
    "type = file\n"                                                  /* 19 */
    "root = /srv/tftp\n"                                             /* 20 */
    "\tfsync = yes\n"                                                /* 21 */
    "\n"                                                             /* 22 */
    "[ backend   web ]   ; spaces inside the brackets are fine\n"    /* 23 */
    "type = http\n"                                                  /* 24 */
    "url = http://127.0.0.1:8089/repo/\n"                            /* 25 */
    "header = \"X-Token: abc\"   ; the quotes are dropped\n"         /* 26 */
    "\n"                                                             /* 27 */
    "[route pxe]\n"                                                  /* 28 */
    "match = /pxelinux.cfg/01-*\n"                                   /* 29 */
    "backend = disk\n"                                               /* 30 */
    "key = macs/{basename}\n"                                        /* 31 */
    "read = yes\n"                                                   /* 32 */
    "write = off\n"                                                  /* 33 */
    "allow = 10.0.0.0/8, 2001:db8::/32 192.0.2.7\n"                  /* 34 */
    "max_size = 0\n"                                                 /* 35 */
    "refuse = blksize windowsize\n"                                  /* 36 */
    "\n"                                                             /* 37 */
    "[route uploads]\n"                                              /* 38 */
    "match = /incoming//\n"                                          /* 39 */
    "backend = disk\n"                                               /* 40 */
    "key = up/{client_ip}/{rest}\n"                                  /* 41 */
    "read = no\n"                                                    /* 42 */
    "write = overwrite\n"                                            /* 43 */
    "max_size = 16M\n"                                               /* 44 */
    "refuse = tsize, TIMEOUT\n"                                      /* 45 */
    "\n"                                                             /* 46 */
    "[route all]\n"                                                  /* 47 */
    "match = \"\"\n"                                                 /* 48 */
    "backend = web\n"                                                /* 49 */
    "key = \"{path}\"\n"                                             /* 50 */
    "write = create";                                                /* 51, no newline */

static void check_full(const struct tg_config *cfg)
{
    const struct tg_server_cfg *s = &cfg->server;
    const struct tg_backend_cfg *b;
    const struct tg_route *r;
    const struct tg_kv *kv;

    assert_int_equal(s->nlisten, 3);
    assert_string_equal(s->listen[0], "127.0.0.1:6969");
    assert_string_equal(s->listen[1], "[::1]:6969");
    assert_string_equal(s->listen[2], "[2001:db8::1]:69");
    assert_int_equal(s->port_lo, 30000);
    assert_int_equal(s->port_hi, 30999);
    assert_int_equal(s->max_sessions, 200);
    assert_int_equal(s->max_sessions_per_client, 4);
    assert_int_equal(s->timeout_ms, 250);
    assert_int_equal(s->retries, 7);
    assert_int_equal(s->max_blksize, 1468);
    assert_int_equal(s->max_windowsize, 16);
    assert_int_equal(s->max_window_bytes, 524288);
    assert_int_equal(s->rollover, 1);
    assert_string_equal(s->user, "tftp");
    assert_int_equal(s->log_level, TG_LOG_DEBUG);
    assert_int_equal(s->log_format, TG_LOG_JSON);

    assert_int_equal(cfg->nbackends, 2);
    b = &cfg->backends[0];
    assert_string_equal(b->name, "disk");
    assert_string_equal(b->type, "file");
    assert_int_equal(b->line, 18);
    assert_int_equal(b->nkv, 2);
    assert_string_equal(b->kv[0].key, "root");
    assert_string_equal(b->kv[0].value, "/srv/tftp");
    assert_int_equal(b->kv[0].line, 20);
    assert_string_equal(b->kv[1].key, "fsync");
    assert_string_equal(b->kv[1].value, "yes");
    assert_int_equal(b->kv[1].line, 21);
    kv = tg_config_kv(b, "root");
    assert_ptr_equal(kv, &b->kv[0]);
    assert_null(tg_config_kv(b, "type"));
    assert_null(tg_config_kv(b, "url"));

    b = &cfg->backends[1];
    assert_string_equal(b->name, "web");
    assert_string_equal(b->type, "http");
    assert_int_equal(b->line, 23);
    assert_int_equal(b->nkv, 2);
    assert_string_equal(tg_config_kv(b, "url")->value, "http://127.0.0.1:8089/repo/");
    assert_string_equal(tg_config_kv(b, "header")->value, "X-Token: abc");
    assert_int_equal(tg_config_kv(b, "header")->line, 26);

    assert_int_equal(cfg->nroutes, 3);
    r = &cfg->routes[0];
    assert_string_equal(r->name, "pxe");
    assert_int_equal(r->line, 28);
    assert_string_equal(r->match, "pxelinux.cfg/01-*");
    assert_true(r->is_glob);
    assert_string_equal(r->backend, "disk");
    assert_string_equal(r->key, "macs/{basename}");
    assert_true(r->read);
    assert_int_equal(r->write, TG_WRITE_OFF);
    assert_int_equal(r->nallow, 3);
    assert_int_equal(r->allow[0].family, AF_INET);
    assert_int_equal(r->allow[0].bits, 8);
    assert_int_equal(r->allow[0].addr[0], 10);
    assert_int_equal(r->allow[1].family, AF_INET6);
    assert_int_equal(r->allow[1].bits, 32);
    assert_memory_equal(r->allow[1].addr, "\x20\x01\x0d\xb8", 4);
    assert_int_equal(r->allow[2].family, AF_INET);
    assert_int_equal(r->allow[2].bits, 32);
    assert_memory_equal(r->allow[2].addr, "\xc0\x00\x02\x07", 4);
    assert_int_equal(r->max_size, 0);
    assert_int_equal(r->refuse, TG_OPT_BLKSIZE | TG_OPT_WINDOWSIZE);

    r = &cfg->routes[1];
    assert_string_equal(r->name, "uploads");
    assert_int_equal(r->line, 38);
    assert_string_equal(r->match, "incoming");
    assert_false(r->is_glob);
    assert_string_equal(r->key, "up/{client_ip}/{rest}");
    assert_false(r->read);
    assert_int_equal(r->write, TG_WRITE_OVERWRITE);
    assert_int_equal(r->nallow, 0);
    assert_null(r->allow);
    assert_int_equal(r->max_size, 16 << 20);
    assert_int_equal(r->refuse, TG_OPT_TSIZE | TG_OPT_TIMEOUT);

    r = &cfg->routes[2];
    assert_string_equal(r->name, "all");
    assert_int_equal(r->line, 47);
    assert_string_equal(r->match, "");
    assert_false(r->is_glob);
    assert_string_equal(r->backend, "web");
    assert_string_equal(r->key, "{path}");
    assert_true(r->read);
    assert_int_equal(r->write, TG_WRITE_CREATE);
    assert_int_equal(r->max_size, -1);
    assert_int_equal(r->refuse, 0);
}

static void test_full(void **state)
{
    long live = tg_alloc_live();
    struct tg_config *cfg = NULL;
    char err[256] = "untouched";

    (void)state;
    assert_int_equal(tg_config_parse_string(full_config, "full.ini", &cfg, err,
                                            sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_non_null(cfg);
    assert_string_equal(cfg->file, "full.ini");
    check_full(cfg);
    tg_config_free(cfg);
    assert_int_equal(tg_alloc_live(), live);
}

/* The smallest valid config: everything else takes its default. */
static void test_defaults(void **state)
{
    static const char text[] = "[backend b]\ntype = file\n[route r]\nbackend = b\n";
    long live = tg_alloc_live();
    struct tg_config *cfg = NULL;
    const struct tg_server_cfg *s;
    const struct tg_route *r;
    char err[256];

    (void)state;
    assert_int_equal(tg_config_parse_string(text, NULL, &cfg, err, sizeof(err)), 0);
    assert_null(cfg->file);
    s = &cfg->server;
    assert_int_equal(s->nlisten, 2);
    assert_string_equal(s->listen[0], "0.0.0.0:69");
    assert_string_equal(s->listen[1], "[::]:69");
    assert_int_equal(s->port_lo, 0);
    assert_int_equal(s->port_hi, 0);
    assert_int_equal(s->max_sessions, 1000);
    assert_int_equal(s->max_sessions_per_client, 0);
    assert_int_equal(s->timeout_ms, 1000);
    assert_int_equal(s->retries, 5);
    assert_int_equal(s->max_blksize, 65464);
    assert_int_equal(s->max_windowsize, 64);
    assert_int_equal(s->max_window_bytes, 4 << 20);
    assert_int_equal(s->rollover, 0);
    assert_null(s->user);
    assert_int_equal(s->log_level, TG_LOG_INFO);
    assert_int_equal(s->log_format, TG_LOG_TEXT);

    assert_int_equal(cfg->nbackends, 1);
    assert_int_equal(cfg->backends[0].nkv, 0);
    assert_null(cfg->backends[0].kv);
    assert_int_equal(cfg->nroutes, 1);
    r = &cfg->routes[0];
    assert_string_equal(r->name, "r");
    assert_int_equal(r->line, 3);
    assert_string_equal(r->match, "");
    assert_false(r->is_glob);
    assert_string_equal(r->backend, "b");
    assert_string_equal(r->key, "{path}");
    assert_true(r->read);
    assert_int_equal(r->write, TG_WRITE_OFF);
    assert_int_equal(r->nallow, 0);
    assert_int_equal(r->max_size, -1);
    assert_int_equal(r->refuse, 0);
    tg_config_free(cfg);
    assert_int_equal(tg_alloc_live(), live);
}

/* Windows line endings, tabs, ':' as separator, bounds at both ends. */
static void test_crlf_and_bounds(void **state)
{
    static const char lo[] =
        "[server]\r\n"
        "\tlisten: 0.0.0.0:1\r\n"
        "port_range = 1:1\r\n"
        "max_sessions = 1\r\n"
        "max_sessions_per_client = 0\r\n"
        "timeout = 10\r\n"
        "retries = 1\r\n"
        "max_blksize = 8\r\n"
        "max_windowsize = 1\r\n"
        "max_window_bytes = 512\r\n"
        "rollover = 0\r\n"
        "log_level = ERROR\r\n"
        "log_format = TEXT\r\n"
        "[backend b]\r\ntype = s3\r\n[route r]\r\nbackend = b\r\n";
    static const char hi[] =
        "[server]\n"
        "listen = [::]:65535\n"
        "port_range = 65535:65535\n"
        "max_sessions = 100000\n"
        "max_sessions_per_client = 100000\n"
        "timeout = 255000\n"
        "retries = 50\n"
        "max_blksize = 65464\n"
        "max_windowsize = 32768\n"
        "max_window_bytes = 256M\n"
        "rollover = 1\n"
        "[backend b]\ntype = cache\n[route r]\nbackend = b\n";
    struct tg_config *cfg;
    char err[256];

    (void)state;
    assert_int_equal(tg_config_parse_string(lo, "lo.ini", &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->server.nlisten, 1);
    assert_string_equal(cfg->server.listen[0], "0.0.0.0:1");
    assert_int_equal(cfg->server.port_lo, 1);
    assert_int_equal(cfg->server.port_hi, 1);
    assert_int_equal(cfg->server.max_sessions, 1);
    assert_int_equal(cfg->server.timeout_ms, 10);
    assert_int_equal(cfg->server.retries, 1);
    assert_int_equal(cfg->server.max_blksize, 8);
    assert_int_equal(cfg->server.max_windowsize, 1);
    assert_int_equal(cfg->server.max_window_bytes, 512);
    assert_int_equal(cfg->server.log_level, TG_LOG_ERROR);
    assert_int_equal(cfg->server.log_format, TG_LOG_TEXT);
    assert_string_equal(cfg->backends[0].type, "s3");
    tg_config_free(cfg);

    assert_int_equal(tg_config_parse_string(hi, "hi.ini", &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->server.listen[0], "[::]:65535");
    assert_int_equal(cfg->server.port_lo, 65535);
    assert_int_equal(cfg->server.max_sessions, 100000);
    assert_int_equal(cfg->server.max_sessions_per_client, 100000);
    assert_int_equal(cfg->server.timeout_ms, 255000);
    assert_int_equal(cfg->server.retries, 50);
    assert_int_equal(cfg->server.max_blksize, 65464);
    assert_int_equal(cfg->server.max_windowsize, 32768);
    assert_int_equal(cfg->server.max_window_bytes, 256u << 20);
    assert_string_equal(cfg->backends[0].type, "cache");
    tg_config_free(cfg);
}

/* ---- errors -------------------------------------------------------------- */

/* Four valid lines; a case's own lines start at line 5. */
#define BASE "[backend b]\ntype = file\n[route r]\nbackend = b\n"
#define SRV BASE "[server]\n" /* keys from line 6 */
#define RT BASE "[route q]\nbackend = b\n" /* keys from line 7 */

struct err_case {
    const char *text;
    const char *msg;
};

static const struct err_case err_cases[] = {
    /* sections */
    { BASE "[frobnicate x]\n", "t.ini:5: [frobnicate x]: unknown section "
      "(expected [server], [backend NAME] or [route NAME])" },
    { BASE "[servers]\n", "t.ini:5: [servers]: unknown section (expected [server], "
      "[backend NAME] or [route NAME])" },
    { BASE "[server main]\n", "t.ini:5: [server main]: [server] takes no name" },
    { BASE "[server]\n[server]\n", "t.ini:6: [server]: duplicate section (first at line 5)" },
    { BASE "[route r]\nbackend = b\n", "t.ini:5: [route r]: duplicate section (first at line 3)" },
    { BASE "[backend b]\ntype = file\n", "t.ini:5: [backend b]: duplicate section (first at line 1)" },
    { BASE "[route]\n", "t.ini:5: [route]: missing name: [route NAME]" },
    { BASE "[backend ]\n", "t.ini:5: [backend ]: missing name: [backend NAME]" },
    { BASE "[route a/b]\n", "t.ini:5: [route a/b]: name may only use letters, "
      "digits, '_', '-' and '.'" },
    { BASE "[route a b]\n", "t.ini:5: [route a b]: name may only use letters, "
      "digits, '_', '-' and '.'" },
    { BASE "[route " "x123456789x123456789x123456789x123456789x123456789x123456789x123456]\n",
      "t.ini:5: [route x123456789x123456789x123456789x123456789x123456789x123456789x123456]: "
      "name longer than 64 characters" },
    { BASE "[server] x\n", "t.ini:5: [server]: unexpected text after ']'" },
    { BASE "[server\n", "t.ini:5: syntax error: expected [section], KEY = VALUE or a comment" },
    { "foo = 1\n" BASE, "t.ini:1: foo: key outside of any section" },
    { SRV "not a pair\n", "t.ini:6: syntax error: expected [section], KEY = VALUE or a comment" },
    /* the first bad line wins, whoever finds it */
    { SRV "retries = 0\nnot a pair\n", "t.ini:6: [server] retries: 0 is out of range 1..50" },
    { SRV "not a pair\nretries = 0\n", "t.ini:6: syntax error: expected [section], KEY = VALUE or a comment" },
    { SRV "not a pair\n[bogus]\n", "t.ini:6: syntax error: expected [section], KEY = VALUE or a comment" },
    /* keys */
    { SRV "bogus = 1\n", "t.ini:6: [server] bogus: unknown key" },
    { SRV "Retries = 1\n", "t.ini:6: [server] Retries: unknown key" },
    { RT "bogus = 1\n", "t.ini:7: [route q] bogus: unknown key" },
    { SRV "retries = 3\n\nretries = 4\n", "t.ini:8: [server] retries: duplicate key (first at line 6)" },
    { RT "backend = b\n", "t.ini:7: [route q] backend: duplicate key (first at line 6)" },
    { BASE "[backend c]\ntype = file\nroot = /a\nroot = /b\n",
      "t.ini:8: [backend c] root: duplicate key (first at line 7)" },
    { BASE "[backend c]\ntype = file\ntype = http\n",
      "t.ini:7: [backend c] type: duplicate key (first at line 6)" },
    { BASE "[backend c]\ntype = ftp\n",
      "t.ini:6: [backend c] type: unknown type \"ftp\" (expected file, http, s3 or cache)" },
    /* [server] values */
    { SRV "listen = localhost:69\n", "t.ini:6: [server] listen: \"localhost:69\": bad IPv4 address" },
    { SRV "listen = 127.0.0.1\n", "t.ini:6: [server] listen: \"127.0.0.1\": expected ADDR:PORT" },
    { SRV "listen = 127.0.0.1:0\n", "t.ini:6: [server] listen: \"127.0.0.1:0\": port must be 1..65535" },
    { SRV "listen = 127.0.0.1:65536\n", "t.ini:6: [server] listen: \"127.0.0.1:65536\": port must be 1..65535" },
    { SRV "listen = 127.0.0.1:\n", "t.ini:6: [server] listen: \"127.0.0.1:\": port must be 1..65535" },
    { SRV "listen = 127.0.0.1:+69\n", "t.ini:6: [server] listen: \"127.0.0.1:+69\": port must be 1..65535" },
    { SRV "listen = :69\n", "t.ini:6: [server] listen: \":69\": bad IPv4 address" },
    { SRV "listen = ::1:69\n", "t.ini:6: [server] listen: \"::1:69\": write IPv6 addresses as [ADDR]:PORT" },
    { SRV "listen = [::1]69\n", "t.ini:6: [server] listen: \"[::1]69\": expected [IPV6]:PORT" },
    { SRV "listen = [10.0.0.1]:69\n", "t.ini:6: [server] listen: \"[10.0.0.1]:69\": bad IPv6 address" },
    { SRV "listen = []:69\n", "t.ini:6: [server] listen: \"[]:69\": bad IPv6 address" },
    { SRV "listen = 0.0.0.0:69 [::]:69, 0.0.0.0:69\n", "t.ini:6: [server] listen: \"0.0.0.0:69\" is listed twice" },
    { SRV "listen =\n", "t.ini:6: [server] listen: empty list" },
    { SRV "listen = , ,\n", "t.ini:6: [server] listen: empty list" },
    { SRV "port_range = 30000\n", "t.ini:6: [server] port_range: expected LO:HI, e.g. 30000:30999" },
    { SRV "port_range = 0:10\n", "t.ini:6: [server] port_range: ports must be 1..65535" },
    { SRV "port_range = 1:65536\n", "t.ini:6: [server] port_range: ports must be 1..65535" },
    { SRV "port_range = a:b\n", "t.ini:6: [server] port_range: ports must be 1..65535" },
    { SRV "port_range = 2:1\n", "t.ini:6: [server] port_range: 2 is above 1" },
    { SRV "max_sessions = 0\n", "t.ini:6: [server] max_sessions: 0 is out of range 1..100000" },
    { SRV "max_sessions = 100001\n", "t.ini:6: [server] max_sessions: 100001 is out of range 1..100000" },
    { SRV "max_sessions = abc\n", "t.ini:6: [server] max_sessions: \"abc\" is not a number" },
    { SRV "max_sessions = -1\n", "t.ini:6: [server] max_sessions: \"-1\" is not a number" },
    { SRV "max_sessions = 99999999999999999999999\n",
      "t.ini:6: [server] max_sessions: 99999999999999999999999 is out of range 1..100000" },
    { SRV "max_sessions_per_client = 100001\n",
      "t.ini:6: [server] max_sessions_per_client: 100001 is out of range 0..100000" },
    { SRV "timeout = 9\n", "t.ini:6: [server] timeout: 9 is out of range 10ms..255s" },
    { SRV "timeout = 255001\n", "t.ini:6: [server] timeout: 255001 is out of range 10ms..255s" },
    { SRV "timeout = 5m\n", "t.ini:6: [server] timeout: 5m is out of range 10ms..255s" },
    { SRV "timeout = 1.5s\n", "t.ini:6: [server] timeout: \"1.5s\" is not a duration "
      "(a number of milliseconds, or 500ms, 30s, 5m, 1h, 1d)" },
    { SRV "timeout = 1 s\n", "t.ini:6: [server] timeout: \"1 s\" is not a duration "
      "(a number of milliseconds, or 500ms, 30s, 5m, 1h, 1d)" },
    { SRV "drain_timeout = 1500ms\n", "t.ini:6: [server] drain_timeout: 1500ms: takes whole seconds" },
    { SRV "drain_timeout = 2d\n", "t.ini:6: [server] drain_timeout: 2d is out of range 0s..1d" },
    { SRV "drain_timeout = 1w\n", "t.ini:6: [server] drain_timeout: \"1w\" is not a duration "
      "(a number of seconds, or 500ms, 30s, 5m, 1h, 1d)" },
    { SRV "retries = 51\n", "t.ini:6: [server] retries: 51 is out of range 1..50" },
    { SRV "max_blksize = 7\n", "t.ini:6: [server] max_blksize: 7 is out of range 8..65464" },
    { SRV "max_blksize = 65465\n", "t.ini:6: [server] max_blksize: 65465 is out of range 8..65464" },
    { SRV "max_windowsize = 0\n", "t.ini:6: [server] max_windowsize: 0 is out of range 1..32768" },
    { SRV "max_windowsize = 32769\n", "t.ini:6: [server] max_windowsize: 32769 is out of range 1..32768" },
    { SRV "max_window_bytes = 511\n",
      "t.ini:6: [server] max_window_bytes: 511 is out of range 512..268435456" },
    { SRV "max_window_bytes = 257M\n",
      "t.ini:6: [server] max_window_bytes: 257M is out of range 512..268435456" },
    { SRV "max_window_bytes = 4X\n",
      "t.ini:6: [server] max_window_bytes: \"4X\" is not a size (123, 64k, 4M, 1G)" },
    { SRV "rollover = 2\n", "t.ini:6: [server] rollover: 2 is out of range 0..1" },
    { SRV "user =\n", "t.ini:6: [server] user: empty value" },
    { SRV "log_level = verbose\n",
      "t.ini:6: [server] log_level: \"verbose\": expected error, warn, info, debug" },
    { SRV "log_format = xml\n", "t.ini:6: [server] log_format: \"xml\": expected text, json" },
    /* [route] values */
    { RT "match = ../x\n",
      "t.ini:7: [route q] match: \"../x\" has a \"..\" segment or characters a path may not have" },
    { RT "key = ../{path}\n", "t.ini:7: [route q] key: \"../{path}\" would leave the "
      "backend root or holds characters a path may not have" },
    { RT "key = a/../../{path}\n", "t.ini:7: [route q] key: \"a/../../{path}\" would leave "
      "the backend root or holds characters a path may not have" },
    { RT "key = {path\n", "t.ini:7: [route q] key: '{' without '}'" },
    { RT "key = {pa{th}\n", "t.ini:7: [route q] key: '{' without '}'" },
    { RT "key = path}\n", "t.ini:7: [route q] key: '}' without '{'" },
    { RT "key = {{path}}\n", "t.ini:7: [route q] key: '{' without '}'" },
    { RT "key = {bogus}\n", "t.ini:7: [route q] key: unknown placeholder {bogus} "
      "(known: {path} {rest} {basename} {client_ip} {client_mac})" },
    { RT "key = {}\n", "t.ini:7: [route q] key: unknown placeholder {} "
      "(known: {path} {rest} {basename} {client_ip} {client_mac})" },
    { RT "key = {PATH}\n", "t.ini:7: [route q] key: unknown placeholder {PATH} "
      "(known: {path} {rest} {basename} {client_ip} {client_mac})" },
    { RT "key = /\n", "t.ini:7: [route q] key: \"/\" expands to an empty path" },
    { RT "read = maybe\n", "t.ini:7: [route q] read: \"maybe\": expected yes or no" },
    { RT "write = append\n", "t.ini:7: [route q] write: \"append\": expected off, create or overwrite" },
    { RT "allow = 10.0.0.0/33\n",
      "t.ini:7: [route q] allow: \"10.0.0.0/33\" is not an address or ADDR/BITS network" },
    { RT "allow = 10.0.0.0/8, host.example\n",
      "t.ini:7: [route q] allow: \"host.example\" is not an address or ADDR/BITS network" },
    { RT "allow =\n", "t.ini:7: [route q] allow: empty list (leave allow out to admit every client)" },
    { RT "max_size = -1\n", "t.ini:7: [route q] max_size: \"-1\" is not a size (123, 64k, 4M, 1G)" },
    { RT "max_size = 99999999999G\n", "t.ini:7: [route q] max_size: \"99999999999G\" is too large" },
    { RT "refuse = foo\n", "t.ini:7: [route q] refuse: unknown option \"foo\" "
      "(expected blksize, timeout, tsize, windowsize)" },
    { RT "refuse = ,\n", "t.ini:7: [route q] refuse: empty list" },
    { BASE "[route q]\nbackend = no/such\n",
      "t.ini:6: [route q] backend: \"no/such\" is not a backend name" },
    /* checks made once the whole file is read: they name the header line */
    { "[backend b]\nroot = /x\n[route r]\nbackend = b\n",
      "t.ini:1: [backend b] type: missing (file, http, s3 or cache)" },
    { BASE "[route q]\nmatch = x\n", "t.ini:5: [route q] backend: missing" },
    { BASE "[route q]\n", "t.ini:5: [route q] backend: missing" },
    { BASE "[route q]\nread = no\nbackend = nope\n", "t.ini:5: [route q] backend: no [backend nope] section" },
    /* layers and case */
    { BASE "[route q]\nbackend = b, nope\n", "t.ini:5: [route q] backend: no [backend nope] section" },
    { RT "case = upper\n", "t.ini:7: [route q] case: \"upper\": expected exact, lower, insensitive" },
    { BASE "[route q]\nbackend = b, b\n", "t.ini:6: [route q] backend: \"b\" is listed twice" },
    { BASE "[route q]\nbackend = ,\n", "t.ini:6: [route q] backend: empty list" },
    { BASE "[route q]\nbackend = a b c d e f g h i\n",
      "t.ini:6: [route q] backend: more than 8 backends" },
    { BASE "[backend w]\ntype = http\n[route q]\nbackend = b, w\ncase = insensitive\n",
      "t.ini:7: [route q] case: insensitive needs a file backend, but [backend w] is type "
      "http (use case = lower, or name the files in one case)" },
    /* remap: the rules file is read and checked at load */
    { RT "remap = /nonexistent/remap.rules\n",
      "t.ini:7: [route q] remap: /nonexistent/remap.rules: No such file or directory" },
    { RT "remap =\n", "t.ini:7: [route q] remap: empty file name" },
    { "[backend b]\ntype = file\n", "t.ini: no [route NAME] section: at least one is required" },
    { "", "t.ini: no [route NAME] section: at least one is required" },
    { "; only a comment\n[server]\n", "t.ini: no [route NAME] section: at least one is required" },
};

/* remap = FILE: the rules are read at load, a bad line names the file's
 * line after the config's */
static void test_remap_key(void **state)
{
    char path[] = "/tmp/test_config_remap.XXXXXX", text[512], err[512];
    struct tg_config *cfg = NULL;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "r ^a b\n# c\nrg x y\n", 18), 18);
    close(fd);
    snprintf(text, sizeof(text), "[backend b]\ntype = file\n[route q]\nbackend = b\n"
             "remap = %s\n", path);
    assert_int_equal(tg_config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->routes[0].remap_file, path);
    assert_int_equal(tg_remap_count(cfg->routes[0].remap), 2);
    tg_config_free(cfg);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "rz a b\n", 7), 7);
    close(fd);
    assert_int_equal(tg_config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), TG_EINVAL);
    assert_null(cfg);
    snprintf(text, sizeof(text), "t.ini:5: [route q] remap: %s:4: invalid flag 'z'", path);
    assert_non_null(strstr(err, text));
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(err_cases); i++) {
        long live = tg_alloc_live();
        struct tg_config *cfg = (struct tg_config *)&live; /* must become NULL */
        char err[512];
        int rc = tg_config_parse_string(err_cases[i].text, "t.ini", &cfg, err,
                                        sizeof(err));

        if (rc != TG_EINVAL)
            fail_msg("case %zu: rc %d, err \"%s\"", i, rc, rc ? err : "");
        assert_null(cfg);
        if (strcmp(err, err_cases[i].msg) != 0)
            fail_msg("case %zu:\n got  \"%s\"\n want \"%s\"", i, err, err_cases[i].msg);
        assert_int_equal(tg_alloc_live(), live);
    }
}

/* Without a file name the messages say "<string>"; a short buffer is cut,
 * not overrun; no buffer at all is fine. */
static void test_error_buffer(void **state)
{
    struct tg_config *cfg;
    char err[64];
    char tiny[12];

    (void)state;
    assert_int_equal(tg_config_parse_string(SRV "retries = 0\n", NULL, &cfg, err,
                                            sizeof(err)), TG_EINVAL);
    assert_string_equal(err, "<string>:6: [server] retries: 0 is out of range 1..50");
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(tg_config_parse_string(SRV "retries = 0\n", NULL, &cfg, tiny,
                                            sizeof(tiny)), TG_EINVAL);
    assert_string_equal(tiny, "<string>:6:");
    assert_int_equal(tg_config_parse_string(SRV "retries = 0\n", NULL, &cfg, NULL, 0),
                     TG_EINVAL);
    assert_null(cfg);
}

static void test_long_line(void **state)
{
    char text[1024], err[256];
    struct tg_config *cfg;
    size_t n;

    (void)state;
    n = (size_t)snprintf(text, sizeof(text), "%suser = ", SRV);
    memset(text + n, 'u', 300);
    strcpy(text + n + 300, "\n");
    assert_int_equal(tg_config_parse_string(text, "t.ini", &cfg, err, sizeof(err)),
                     TG_EINVAL);
    assert_non_null(strstr(err, "t.ini:6: line longer than "));
    assert_null(cfg);
}

/* Every allocation failure on the way gives TG_ENOMEM and leaks nothing. */
static void test_alloc_failures(void **state)
{
    long live = tg_alloc_live();
    int n, rc = -1;

    (void)state;
    for (n = 1; n < 1000; n++) {
        struct tg_config *cfg = NULL;
        char err[256] = "";

        tg_alloc_fail_after(n);
        rc = tg_config_parse_string(full_config, "full.ini", &cfg, err, sizeof(err));
        tg_alloc_fail_after(0);
        if (rc == 0) {
            check_full(cfg);
            tg_config_free(cfg);
            assert_int_equal(tg_alloc_live(), live);
            break;
        }
        if (rc != TG_ENOMEM)
            fail_msg("fail at %d: rc %d, \"%s\"", n, rc, err);
        assert_non_null(strstr(err, "out of memory"));
        assert_null(cfg);
        assert_int_equal(tg_alloc_live(), live);
    }
    assert_int_equal(rc, 0);
    assert_true(n > 20); /* the loop really went through the parser */
}

/* ---- embedded default ---------------------------------------------------- */

static void test_embedded(void **state)
{
    long live = tg_alloc_live();
    struct tg_config *cfg;
    const struct tg_route *r;

    (void)state;
    assert_null(tg_config_embedded(NULL, TG_WRITE_OFF));

    cfg = tg_config_embedded("/srv/tftp", TG_WRITE_CREATE);
    assert_non_null(cfg);
    assert_null(cfg->file);
    assert_int_equal(cfg->server.nlisten, 2);
    assert_string_equal(cfg->server.listen[0], "0.0.0.0:69");
    assert_string_equal(cfg->server.listen[1], "[::]:69");
    assert_int_equal(cfg->server.max_sessions, 1000);
    assert_int_equal(cfg->server.max_window_bytes, 4 << 20);
    assert_int_equal(cfg->nbackends, 1);
    assert_string_equal(cfg->backends[0].name, "root");
    assert_string_equal(cfg->backends[0].type, "file");
    assert_string_equal(tg_config_kv(&cfg->backends[0], "root")->value, "/srv/tftp");
    assert_int_equal(cfg->nroutes, 1);
    r = &cfg->routes[0];
    assert_string_equal(r->name, "default");
    assert_string_equal(r->match, "");
    assert_false(r->is_glob);
    assert_string_equal(r->backend, "root");
    assert_string_equal(r->key, "{path}");
    assert_true(r->read);
    assert_int_equal(r->write, TG_WRITE_CREATE);
    assert_int_equal(r->nallow, 0);
    assert_int_equal(r->max_size, -1);
    assert_int_equal(r->refuse, 0);
    tg_config_free(cfg);

    cfg = tg_config_embedded("/srv/tftp", TG_WRITE_OFF);
    assert_int_equal(cfg->routes[0].write, TG_WRITE_OFF);
    tg_config_free(cfg);
    tg_config_free(NULL);
    assert_int_equal(tg_alloc_live(), live);

    for (int n = 1; n < 100; n++) {
        tg_alloc_fail_after(n);
        cfg = tg_config_embedded("/x", TG_WRITE_OVERWRITE);
        tg_alloc_fail_after(0);
        if (cfg) {
            assert_int_equal(cfg->routes[0].write, TG_WRITE_OVERWRITE);
            tg_config_free(cfg);
            assert_int_equal(tg_alloc_live(), live);
            return;
        }
        assert_int_equal(tg_alloc_live(), live);
    }
    fail_msg("tg_config_embedded never succeeded");
}

/* ---- files --------------------------------------------------------------- */

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load(void **state)
{
    char dir[] = "/tmp/tg_config_XXXXXX";
    char path[64], err[256];
    struct tg_config *cfg;
    long live = tg_alloc_live();

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a.ini", dir);

    write_file(path, full_config, sizeof(full_config) - 1);
    assert_int_equal(tg_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg->file, path);
    check_full(cfg);
    tg_config_free(cfg);

    write_file(path, SRV "retries = 0\n", strlen(SRV "retries = 0\n"));
    assert_int_equal(tg_config_load(path, &cfg, err, sizeof(err)), TG_EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err, "/a.ini:6: [server] retries: "));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);

    write_file(path, BASE "\0[bogus]\n", sizeof(BASE "\0[bogus]\n") - 1);
    assert_int_equal(tg_config_load(path, &cfg, err, sizeof(err)), TG_EINVAL);
    assert_non_null(strstr(err, "contains a NUL byte"));

    assert_int_equal(tg_config_load(dir, &cfg, err, sizeof(err)), TG_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));

    assert_int_equal(unlink(path), 0);
    assert_int_equal(tg_config_load(path, &cfg, err, sizeof(err)), TG_ENOENT);
    assert_null(cfg);
    assert_non_null(strstr(err, "/a.ini: No such file or directory"));
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(tg_alloc_live(), live);
}

/* The shipped sample must stay loadable. */
static void test_sample(void **state)
{
    static const char *const where[] = { "etc/tftpgw.ini", "../etc/tftpgw.ini",
                                         "../../etc/tftpgw.ini" };
    struct tg_config *cfg;
    char err[256];

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(where); i++) {
        if (access(where[i], R_OK) != 0)
            continue;
        if (tg_config_load(where[i], &cfg, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        assert_true(cfg->nroutes >= 1);
        tg_config_free(cfg);
        return;
    }
    skip();
}

/* ---- logging ------------------------------------------------------------- */

static void test_log_sanitize(void **state)
{
    static const struct {
        const char *in;
        size_t cap;
        const char *out;
    } cases[] = {
        { "hello", 64, "hello" },
        { "a\"b\\c", 64, "a\\\"b\\\\c" },
        { "\x01\x1f\x7f\x80\xff", 64, "\\x01\\x1f\\x7f\\x80\\xff" },
        { "new\nline", 64, "new\\x0aline" },
        { "caf\xc3\xa9", 64, "caf\\xc3\\xa9" },
        { "", 8, "" },
        { NULL, 8, "" },
        { "abcdefgh", 9, "abcdefgh" },  /* exactly fits */
        { "abcdefgh", 8, "abcd..." },
        { "abcdefgh", 5, "a..." },
        { "abcdefgh", 4, "..." },
        { "abcdefgh", 3, ".." },
        { "abcdefgh", 2, "." },
        { "abcdefgh", 1, "" },
        { "ab\x01" "cd", 9, "ab\\x01cd" },
        { "ab\x01" "cd", 8, "ab..." },   /* escapes are never split */
        { "abc\"", 5, "a..." },
        { "abc\"", 6, "abc\\\"" },
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        memset(out, 'Z', sizeof(out));
        assert_ptr_equal(tg_log_sanitize(cases[i].in, out, cases[i].cap), out);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu: \"%s\", want \"%s\"", i, out, cases[i].out);
        assert_true(strlen(out) < cases[i].cap);
    }
    out[0] = 'Z';
    tg_log_sanitize("x", out, 0);
    assert_int_equal(out[0], 'Z');
}

/* Runs fn with stderr sent to a file and returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *buf, size_t cap)
{
    char path[] = "/tmp/tg_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    n = pread(fd, buf, cap - 1, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    close(fd);
    unlink(path);
}

/* "2026-11-21T06:16:29.123Z" */
static void assert_timestamp(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd')
            assert_true(isdigit((unsigned char)s[i]));
        else
            assert_int_equal(s[i], shape[i]);
    }
}

static void log_text(void)
{
    tg_log_init(TG_LOG_INFO, TG_LOG_TEXT, TG_LOG_STDERR);
    tg_log(TG_LOG_INFO, "hello %d", 42);
    tg_log(TG_LOG_DEBUG, "not shown");
    tg_log(TG_LOG_ERROR, "two\nlines");
}

static void log_json(void)
{
    tg_log_init(TG_LOG_DEBUG, TG_LOG_JSON, TG_LOG_STDERR);
    tg_log(TG_LOG_WARN, "a \"q\" \\ %s\t\x01\xe9", "x");
    tg_log(TG_LOG_DEBUG, "d");
}

static void log_quiet(void)
{
    tg_log_init(TG_LOG_ERROR, TG_LOG_TEXT, TG_LOG_STDERR);
    tg_log(TG_LOG_WARN, "no");
    tg_log(TG_LOG_INFO, "no");
}

static void test_log_output(void **state)
{
    static const char json1[] =
        "\",\"level\":\"warn\",\"msg\":\"a \\\"q\\\" \\\\ x\\t\\u0001\\u00e9\"}\n";
    char buf[1024];
    const char *p;

    (void)state;
    capture_stderr(log_text, buf, sizeof(buf));
    assert_timestamp(buf);
    assert_memory_equal(buf + 24, " info hello 42\n", 15);
    p = buf + 24 + 15;
    assert_timestamp(p);
    assert_string_equal(p + 24, " error two\\x0alines\n");

    capture_stderr(log_json, buf, sizeof(buf));
    assert_memory_equal(buf, "{\"ts\":\"", 7);
    assert_timestamp(buf + 7);
    p = buf + 7 + 24;
    assert_memory_equal(p, json1, sizeof(json1) - 1);
    p += sizeof(json1) - 1;
    assert_memory_equal(p, "{\"ts\":\"", 7);
    assert_timestamp(p + 7);
    assert_string_equal(p + 7 + 24, "\",\"level\":\"debug\",\"msg\":\"d\"}\n");

    capture_stderr(log_quiet, buf, sizeof(buf));
    assert_string_equal(buf, "");
}

static void test_log_enabled(void **state)
{
    (void)state;
    tg_log_init(TG_LOG_WARN, TG_LOG_TEXT, TG_LOG_STDERR);
    assert_true(tg_log_enabled(TG_LOG_ERROR));
    assert_true(tg_log_enabled(TG_LOG_WARN));
    assert_false(tg_log_enabled(TG_LOG_INFO));
    assert_false(tg_log_enabled(TG_LOG_DEBUG));
    tg_log_init(99, TG_LOG_TEXT, TG_LOG_STDERR);
    assert_true(tg_log_enabled(TG_LOG_DEBUG));
    assert_false(tg_log_enabled(TG_LOG_DEBUG + 1));
    tg_log_init(-5, TG_LOG_TEXT, TG_LOG_STDERR);
    assert_true(tg_log_enabled(TG_LOG_ERROR));
    assert_false(tg_log_enabled(TG_LOG_WARN));
    tg_log_init(TG_LOG_INFO, TG_LOG_TEXT, TG_LOG_STDERR);
}

/* `backend = a, b`: the layers in order, the first also in backend;
 * case defaults to exact. */
static void test_layers_and_case(void **state)
{
    static const char text[] =
        "[backend local]\ntype = file\n[backend edge]\ntype = cache\n"
        "[backend w]\ntype = file\n"
        "[route r]\nbackend = local, edge\ncase = lower\n"
        "[route s]\nbackend = w\ncase = INSENSITIVE\n"
        "[route t]\nbackend = local edge,w\n";
    struct tg_config *cfg;
    char err[256];
    long live = tg_alloc_live();

    (void)state;
    assert_int_equal(tg_config_parse_string(text, "t.ini", &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg->routes[0].nbackends, 2);
    assert_string_equal(cfg->routes[0].backend, "local");
    assert_string_equal(cfg->routes[0].backends[0], "local");
    assert_string_equal(cfg->routes[0].backends[1], "edge");
    assert_int_equal(tg_route_nbackends(&cfg->routes[0]), 2);
    assert_string_equal(tg_route_backend_at(&cfg->routes[0], 1), "edge");
    assert_null(tg_route_backend_at(&cfg->routes[0], 2));
    assert_int_equal(cfg->routes[0].name_case, TG_CASE_LOWER);
    assert_int_equal(cfg->routes[1].nbackends, 1);
    assert_int_equal(cfg->routes[1].name_case, TG_CASE_INSENSITIVE);
    assert_int_equal(cfg->routes[2].nbackends, 3);
    assert_string_equal(cfg->routes[2].backends[2], "w");
    assert_int_equal(cfg->routes[2].name_case, TG_CASE_EXACT);
    tg_config_free(cfg);
    /* a route built by hand (embedded config): backend alone */
    cfg = tg_config_embedded("/srv", TG_WRITE_OFF);
    assert_non_null(cfg);
    assert_int_equal(tg_route_nbackends(&cfg->routes[0]), 1);
    assert_string_equal(tg_route_backend_at(&cfg->routes[0], 0), "root");
    assert_null(tg_route_backend_at(&cfg->routes[0], 1));
    tg_config_free(cfg);
    assert_int_equal(tg_alloc_live(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_layers_and_case),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_duration_keys),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_crlf_and_bounds),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_remap_key),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_log_sanitize),
        cmocka_unit_test(test_log_output),
        cmocka_unit_test(test_log_enabled),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

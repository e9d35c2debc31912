/* tests/unit/test_cache.c - the cache backend's index: rebuilt from its
 * directory at start-up (bad or half-written entries dropped), LRU eviction
 * to max_size, configuration errors, a miss -> fill -> hit cycle over a
 * file-backend upstream on a real loop (no network), a copy whose .meta
 * names another key (never served), an object larger than max_size and a
 * disk below min_free (served whole, nothing kept, nothing left open), and
 * negative entries (remembered, dropped by a write, bounded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tftpgw/backend.h"
#include "tftpgw/sha256.h"

static char top[64], cdir[96], udir[96];
static uv_loop_t loop;
static struct tg_backend *upstream;

/* The file name the cache uses for a key: its SHA-256 in hex. */
static void name_of(const char *key, char *out, size_t cap)
{
    char h[65];

    tg_sha256_hex(key, strlen(key), h);
    snprintf(out, cap, "%s", h);
}

static void put_file(const char *dir, const char *name, const char *content)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static bool exists(const char *dir, const char *name)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void put_entry(const char *key, const char *data, long long meta_size,
                      unsigned long long fetched)
{
    char n[80], f[96], meta[512];

    name_of(key, n, sizeof(n));
    snprintf(f, sizeof(f), "%s.data", n);
    if (data)
        put_file(cdir, f, data);
    snprintf(meta, sizeof(meta), "tftpgw-cache 1\nsize %lld\nfetched %llu\netag -\nlastmod -\nkey %s\n",
             meta_size, fetched, key);
    snprintf(f, sizeof(f), "%s.meta", n);
    put_file(cdir, f, meta);
}

static bool has_entry(const char *key)
{
    char n[80], f[96];

    name_of(key, n, sizeof(n));
    snprintf(f, sizeof(f), "%s.data", n);
    return exists(cdir, f);
}

static struct tg_backend *find(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "up") == 0 ? upstream : NULL;
}

/* min_free 0: the tests must not depend on the free space of /tmp, except
 * the one that sets a floor no disk can meet. */
static int make_cache_floor(const char *max_size, const char *ttl, const char *min_free,
                            struct tg_backend **out, char *err)
{
    struct tg_kv kv[] = {{(char *)"upstream", (char *)"up", 2}, {(char *)"dir", cdir, 3},
                         {(char *)"max_size", (char *)max_size, 4}, {(char *)"ttl", (char *)ttl, 5},
                         {(char *)"min_free", (char *)min_free, 6}};
    struct tg_backend_cfg cfg = {(char *)"edge", (char *)"cache", 1, NULL, kv, 5};
    int rc = tg_backend_create(&loop, &cfg, out, err, 256);

    if (rc == 0)
        rc = (*out)->ops->link(*out, find, NULL, err, 256);
    return rc;
}

static int make_cache(const char *max_size, const char *ttl, struct tg_backend **out, char *err)
{
    return make_cache_floor(max_size, ttl, "0", out, err);
}

static int setup(void **state)
{
    struct tg_kv kv[] = {{(char *)"root", udir, 2}};
    struct tg_backend_cfg cfg = {(char *)"up", (char *)"file", 1, NULL, kv, 1};
    char err[256];

    (void)state;
    snprintf(top, sizeof(top), "/tmp/tg-cache-XXXXXX");
    assert_non_null(mkdtemp(top));
    snprintf(cdir, sizeof(cdir), "%s/cache", top);
    snprintf(udir, sizeof(udir), "%s/up", top);
    mkdir(cdir, 0755);
    mkdir(udir, 0755);
    uv_loop_init(&loop);
    return tg_backend_create(&loop, &cfg, &upstream, err, sizeof(err));
}

static int teardown(void **state)
{
    char cmd[160];

    (void)state;
    tg_backend_destroy(upstream);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    return system(cmd);
}

static void test_rebuild(void **state)
{
    struct tg_backend *b = NULL;
    char err[256], n[80], f[120];

    (void)state;
    put_entry("good.bin", "12345", 5, 1000);
    put_entry("short.bin", "123", 5, 1000);    /* data disagrees with meta */
    put_entry("nodata.bin", NULL, 5, 1000);     /* meta without data */
    name_of("leftover", n, sizeof(n));
    snprintf(f, sizeof(f), "%s.7.tmpdata", n);
    put_file(cdir, f, "half");                  /* a fill cut short */
    snprintf(f, sizeof(f), "%s.meta.tmp", n);
    put_file(cdir, f, "half");
    /* A meta under another key's name must not serve that name. */
    name_of("a.bin", n, sizeof(n));
    snprintf(f, sizeof(f), "%s.meta", n);
    put_file(cdir, f, "tftpgw-cache 1\nsize 1\nfetched 1\netag -\nlastmod -\nkey b.bin\n");
    snprintf(f, sizeof(f), "%s.data", n);
    put_file(cdir, f, "x");

    assert_int_equal(make_cache("1M", "300", &b, err), 0);
    assert_true(has_entry("good.bin"));
    assert_false(has_entry("short.bin"));
    assert_false(has_entry("nodata.bin"));
    assert_false(exists(cdir, f));
    name_of("leftover", n, sizeof(n));
    snprintf(f, sizeof(f), "%s.7.tmpdata", n);
    assert_false(exists(cdir, f));
    snprintf(f, sizeof(f), "%s.meta.tmp", n);
    assert_false(exists(cdir, f));
    tg_backend_destroy(b);
}

static void test_evict_at_start(void **state)
{
    struct tg_backend *b = NULL;
    char err[256], big[1100];

    (void)state;
    memset(big, 'x', 1000);
    big[1000] = '\0';
    put_entry("old.bin", big, 1000, 1000);
    put_entry("mid.bin", big, 1000, 2000);
    put_entry("new.bin", big, 1000, 3000);
    /* 2500 bytes allowed: the oldest fetch goes. */
    assert_int_equal(make_cache("2500", "300", &b, err), 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* unlinks run on the thread pool */
    assert_false(has_entry("old.bin"));
    assert_true(has_entry("mid.bin"));
    assert_true(has_entry("new.bin"));
    tg_backend_destroy(b);
}

static void test_config_errors(void **state)
{
    static const struct {
        struct tg_kv kv[2];
        size_t n;
        const char *msg;
    } cases[] = {
        {{{(char *)"dir", (char *)"/tmp/x", 2}}, 1, "line 1: upstream: required for a cache backend"},
        {{{(char *)"upstream", (char *)"up", 2}}, 1, "line 1: dir: required for a cache backend"},
        {{{(char *)"dir", (char *)"rel", 2}}, 1, "line 2: dir: an absolute directory"},
        {{{(char *)"ttl", (char *)"5x", 2}}, 1,
         "line 2: ttl: \"5x\" is not a duration (a number of seconds, or 500ms, 30s, 5m, 1h, 1d)"},
        {{{(char *)"min_free", (char *)"-1", 2}}, 1, "line 2: min_free: a size (0, 64M, 1G)"},
        {{{(char *)"min_free", (char *)"lots", 2}}, 1, "line 2: min_free: a size (0, 64M, 1G)"},
        {{{(char *)"fill_grace", (char *)"3601", 2}}, 1,
         "line 2: fill_grace: 3601 is out of range 0s..1h"},
        {{{(char *)"fill_grace", (char *)"2h", 2}}, 1,
         "line 2: fill_grace: 2h is out of range 0s..1h"},
        {{{(char *)"fill_grace", (char *)"1.5", 2}}, 1,
         "line 2: fill_grace: \"1.5\" is not a duration (a number of seconds, or 500ms, 30s, 5m, "
         "1h, 1d)"},
        {{{(char *)"max_size", (char *)"0", 2}}, 1, "line 2: max_size: invalid value"},
        {{{(char *)"url", (char *)"x", 2}}, 1, "line 2: url: unknown key for a cache backend"},
    };
    struct tg_backend *b = NULL;
    char err[256];
    long live = tg_alloc_live();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tg_backend_cfg cfg = {(char *)"edge", (char *)"cache", 1, NULL,
                                     (struct tg_kv *)cases[i].kv, cases[i].n};

        assert_int_equal(tg_backend_create(&loop, &cfg, &b, err, sizeof(err)), TG_EINVAL);
        assert_string_equal(err, cases[i].msg);
        assert_int_equal(tg_alloc_live(), live);
    }
}

struct rd {
    int opened, failed, eof, code;
    int64_t size;
    size_t got;
    char data[300 * 1024];
    struct tg_stream *s;
};

static void on_ev(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct rd *r = arg;

    if (ev == TG_STREAM_FAILED) {
        r->failed++;
        r->code = s->err.code;
        return;
    }
    if (ev == TG_STREAM_OPENED) {
        r->opened++;
        r->size = s->size;
    }
    for (;;) {
        ssize_t n = tg_stream_read1(s, (uint8_t *)r->data + r->got, sizeof(r->data) - 1 - r->got);

        if (n > 0) {
            r->got += (size_t)n;
            continue;
        }
        if (n == 0)
            r->eof++;
        break;
    }
}

static void read_key(struct tg_backend *b, const char *key, struct rd *r)
{
    struct tg_open_args a;

    memset(&a, 0, sizeof(a));
    memset(r, 0, sizeof(*r));
    a.key = key;
    a.filename = key;
    a.client_ip = "127.0.0.1";
    a.size_hint = -1;
    a.blksize = 512;
    assert_int_equal(b->ops->open_read(b, &a, on_ev, r, &r->s), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_stream_close(r->s);
}

static void test_fill_then_hit(void **state)
{
    struct tg_backend *b = NULL;
    char err[256];
    struct rd r;

    (void)state;
    put_file(udir, "boot.cfg", "menu default\n");
    assert_int_equal(make_cache("1M", "300", &b, err), 0);
    read_key(b, "boot.cfg", &r);             /* miss: fetched, then committed */
    assert_int_equal(r.opened, 1);
    assert_int_equal(r.eof, 1);
    assert_int_equal(r.size, 13);
    assert_string_equal(r.data, "menu default\n");
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(has_entry("boot.cfg"));
    {
        char p[160];

        snprintf(p, sizeof(p), "%s/boot.cfg", udir);
        unlink(p);                            /* upstream gone: a hit needs none */
    }
    read_key(b, "boot.cfg", &r);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.size, 13);
    assert_string_equal(r.data, "menu default\n");
    read_key(b, "missing.cfg", &r);          /* the upstream's own error */
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.code, 1);
    tg_backend_destroy(b);
}

static void put_random(const char *dir, const char *name, size_t n, char *copy)
{
    char p[256];
    FILE *f;

    for (size_t i = 0; i < n; i++)
        copy[i] = (char)(rand() & 0xff);
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(copy, 1, n, f), n);
    fclose(f);
}

static int open_fds(void)
{
    char p[64];
    int n = 0;

    for (int fd = 0; fd < 1024; fd++) {
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        if (access(p, F_OK) == 0)
            n++;
    }
    return n;
}

/* A copy whose .meta names another key (damaged, tampered, or a second
 * key hashing to the same name) is never served for this key: the open is
 * a miss, the object comes from the upstream and replaces the copy. */
static void test_key_mismatch_not_served(void **state)
{
    struct tg_backend *b = NULL;
    char err[256], n[80], f[120], meta[256];
    struct rd r;

    (void)state;
    put_file(udir, "a.bin", "from upstream\n");
    unsigned long long now = (unsigned long long)time(NULL) * 1000u;

    put_entry("a.bin", "PLANTED COPY!\n", 14, now); /* fresh: a hit */
    assert_int_equal(make_cache("1M", "300", &b, err), 0);
    assert_true(has_entry("a.bin"));    /* valid at start-up: indexed */
    /* Now the .meta under a.bin's name says it is b.bin's copy. */
    name_of("a.bin", n, sizeof(n));
    snprintf(f, sizeof(f), "%s.meta", n);
    snprintf(meta, sizeof(meta), "tftpgw-cache 1\nsize 14\nfetched %llu\netag -\nlastmod -\n"
             "key b.bin\n", now);
    put_file(cdir, f, meta);
    read_key(b, "a.bin", &r);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.opened, 1);
    assert_int_equal(r.eof, 1);
    assert_string_equal(r.data, "from upstream\n");
    uv_run(&loop, UV_RUN_DEFAULT);
    /* The fetch became the copy, with the right key. */
    unlink(strcat(strcpy(f, udir), "/a.bin"));
    read_key(b, "a.bin", &r);
    assert_int_equal(r.failed, 0);
    assert_string_equal(r.data, "from upstream\n");
    tg_backend_destroy(b);
}

/* Where the file system has no O_TMPFILE, fills go to named temporaries
 * (gateway/localfs.c) that commit renames into place: the copy is kept,
 * served on the next read, and no temporary is left in the directory. */
extern bool tg_lfs_force_no_tmpfile;

static void test_fill_named_temp(void **state)
{
    struct tg_backend *b = NULL;
    char err[256], cmd[256];
    struct rd r;

    (void)state;
    put_file(udir, "named.cfg", "named temp\n");
    tg_lfs_force_no_tmpfile = true;
    assert_int_equal(make_cache("1M", "300", &b, err), 0);
    read_key(b, "named.cfg", &r);
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_lfs_force_no_tmpfile = false;
    assert_int_equal(r.failed, 0);
    assert_string_equal(r.data, "named temp\n");
    assert_true(has_entry("named.cfg"));
    snprintf(cmd, sizeof(cmd), "ls %s | grep -q 'tmp'", cdir);
    assert_int_not_equal(system(cmd), 0); /* no .tmpdata or .meta.tmp left */
    snprintf(cmd, sizeof(cmd), "%s/named.cfg", udir);
    unlink(cmd);
    read_key(b, "named.cfg", &r);          /* a hit: the upstream is gone */
    assert_int_equal(r.failed, 0);
    assert_string_equal(r.data, "named temp\n");
    tg_backend_destroy(b);
}

/* An object larger than max_size is served whole, through the relay, and
 * nothing of it stays on disk or open. */
static void test_too_big_relayed(void **state)
{
    static char want[200 * 1024];
    struct tg_backend *b = NULL;
    char err[256];
    struct rd r;
    int fds;

    (void)state;
    put_random(udir, "big.bin", sizeof(want), want);
    assert_int_equal(make_cache("100K", "300", &b, err), 0);
    fds = open_fds();
    read_key(b, "big.bin", &r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.eof, 1);
    assert_int_equal(r.size, (int64_t)sizeof(want));
    assert_int_equal(r.got, sizeof(want));
    assert_memory_equal(r.data, want, sizeof(want));
    assert_false(has_entry("big.bin"));
    assert_int_equal(open_fds(), fds);
    tg_backend_destroy(b);
}

/* Free space below min_free: nothing is written, the reader still gets
 * every byte, and the next read fetches again. */
static void test_min_free_floor(void **state)
{
    static char want[150 * 1024];
    struct tg_backend *b = NULL;
    char err[256], p[160];
    struct rd r;
    int fds;

    (void)state;
    put_random(udir, "f.bin", sizeof(want), want);
    assert_int_equal(make_cache_floor("1G", "300", "1000000G", &b, err), 0);
    fds = open_fds();
    read_key(b, "f.bin", &r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.got, sizeof(want));
    assert_memory_equal(r.data, want, sizeof(want));
    assert_false(has_entry("f.bin"));
    assert_int_equal(open_fds(), fds);
    snprintf(p, sizeof(p), "%s/f.bin", udir);
    unlink(p);
    read_key(b, "f.bin", &r);            /* not a hit: the upstream answers */
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.code, 1);
    tg_backend_destroy(b);
}

/* A changed object above half of max_size replaces its outdated copy
 * (nobody reads it) instead of being refused for lack of room. */
static void test_refresh_big(void **state)
{
    static char want[120 * 1024];
    struct tg_backend *b = NULL;
    char err[256], n[80], p[300], *old = malloc(100 * 1024);
    struct rd r;
    FILE *fp;

    (void)state;
    assert_non_null(old);
    memset(old, 'o', 100 * 1024);
    old[100 * 1024 - 1] = '\0';
    put_entry("k.bin", old, 100 * 1024 - 1, 1000);     /* fetched long ago */
    put_random(udir, "k.bin", sizeof(want), want);
    assert_int_equal(make_cache("150K", "300", &b, err), 0);
    read_key(b, "k.bin", &r);                          /* revalidation: 200 */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.got, sizeof(want));
    assert_memory_equal(r.data, want, sizeof(want));
    name_of("k.bin", n, sizeof(n));
    snprintf(p, sizeof(p), "%s/%s.data", cdir, n);
    fp = fopen(p, "r");
    assert_non_null(fp);                               /* kept, not just relayed */
    assert_int_equal(fread(r.data, 1, sizeof(r.data), fp), sizeof(want));
    fclose(fp);
    assert_memory_equal(r.data, want, sizeof(want));
    free(old);
    tg_backend_destroy(b);
}

static void on_wev(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    int *done = arg;

    (void)s;
    if (ev == TG_STREAM_COMMITTED)
        *done = 1;
    else if (ev == TG_STREAM_FAILED)
        *done = -1;
}

/* Negative entries: a "not found" from the upstream is remembered (the
 * object appearing upstream is not seen until negative_ttl passes), a
 * write through the cache forgets it at once, and the table keeps at most
 * 4096 keys, forgetting the oldest first. */
static void test_negative_entries(void **state)
{
    struct tg_backend *b = NULL;
    struct tg_stream *w = NULL;
    struct tg_open_args a;
    char err[256], key[32];
    struct rd r;
    int done = 0;

    (void)state;
    assert_int_equal(make_cache("1M", "300", &b, err), 0);
    read_key(b, "late.cfg", &r);
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.code, 1);
    put_file(udir, "late.cfg", "x\n");
    read_key(b, "late.cfg", &r);             /* remembered: upstream not asked */
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.code, 1);
    assert_int_equal(r.opened, 0);
    /* a write through the cache drops the entry */
    memset(&a, 0, sizeof(a));
    a.key = a.filename = "late.cfg";
    a.client_ip = "127.0.0.1";
    a.size_hint = 2;
    a.overwrite = true;
    a.blksize = 512;
    assert_int_equal(b->ops->open_write(b, &a, on_wev, &done, &w), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(tg_stream_push(w, (const uint8_t *)"y\n", 2), 0);
    assert_int_equal(tg_stream_commit(w), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    tg_stream_close(w);
    read_key(b, "late.cfg", &r);
    assert_int_equal(r.failed, 0);
    assert_string_equal(r.data, "y\n");
    /* 4097 more misses: the first of them is forgotten, the last is not */
    for (int i = 0; i <= 4096; i++) {
        snprintf(key, sizeof(key), "m%d", i);
        read_key(b, key, &r);
        assert_int_equal(r.code, 1);
    }
    put_file(udir, "m0", "zero\n");
    put_file(udir, "m4096", "last\n");
    read_key(b, "m0", &r);
    assert_int_equal(r.failed, 0);
    assert_string_equal(r.data, "zero\n");
    read_key(b, "m4096", &r);
    assert_int_equal(r.failed, 1);
    assert_int_equal(r.code, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_backend_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_then_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_mismatch_not_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_named_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_relayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_free_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_entries, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

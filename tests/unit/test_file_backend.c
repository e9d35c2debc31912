/* tests/unit/test_file_backend.c - the file backend on a real libuv loop
 * over a mkdtemp() tree: reads of every size, confinement (invariant 5),
 * atomic uploads (invariant 3), aborts, closes with requests in flight.
 * Every test ends with the loop drained, uv_loop_close() == 0, no tg_*
 * allocation left, no callback inside an API call and none after close. */
#define _FILE_OFFSET_BITS 64

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tftpgw/backend.h"
#include "tftpgw/localfs.h"

/* After the system headers: with UNIT_TESTING, cmocka wraps malloc/free
 * and checks each test's own blocks too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Test hooks in gateway/localfs.c (TG_STATIC). */
extern bool tg_lfs_force_no_openat2;
extern bool tg_lfs_force_no_tmpfile;

#define MIB (1024 * 1024)
#define NEV 5

struct ctx {
    uv_loop_t loop;
    char base[PATH_MAX];    /* mkdtemp */
    char root[PATH_MAX];    /* base/root: the backend's root */
    char outside[PATH_MAX]; /* base/outside: escape targets */
    struct tg_backend *b;
    long live0;
    bool finished;
};

/* One stream under test and what it heard. */
struct sx {
    struct tg_stream *s;
    int ev[NEV];
    int nev;
    enum tg_stream_ev last;
    bool closed;
    bool close_in_cb;
};

static bool in_call; /* inside an API call: a callback now is synchronous */
static int sync_cbs;
static int late_cbs;

static void stream_cb(struct tg_stream *s, enum tg_stream_ev ev, void *arg)
{
    struct sx *x = arg;

    if (in_call)
        sync_cbs++;
    if (x->closed)
        late_cbs++;
    x->ev[ev]++;
    x->nev++;
    x->last = ev;
    if (x->close_in_cb) {
        x->closed = true;
        tg_stream_close(s);
    }
}

/* ---- helpers ---- */

static uint64_t rng_state;

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        p[i] = (uint8_t)(rng_state >> 24);
    }
}

static void path_in(char *out, const char *dir, const char *rel)
{
    assert_true((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, rel) < PATH_MAX);
}

static void put_file(const char *dir, const char *rel, const void *data, size_t n, mode_t mode)
{
    char p[PATH_MAX];
    int fd;

    path_in(p, dir, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static uint8_t *get_file(const char *dir, const char *rel, size_t *n)
{
    char p[PATH_MAX];
    struct stat sb;
    uint8_t *buf;
    int fd;

    path_in(p, dir, rel);
    fd = open(p, O_RDONLY);
    if (fd < 0)
        return NULL;
    assert_int_equal(fstat(fd, &sb), 0);
    buf = malloc((size_t)sb.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
    close(fd);
    *n = (size_t)sb.st_size;
    return buf;
}

static void sub_mkdir(const char *dir, const char *rel)
{
    char p[PATH_MAX];

    path_in(p, dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void sub_symlink(const char *dir, const char *rel, const char *target)
{
    char p[PATH_MAX];

    path_in(p, dir, rel);
    assert_int_equal(symlink(target, p), 0);
}

/* Every path under dir, sorted, one per line: to prove nothing appeared. */
static char listing_buf[8192];
static size_t listing_root_len;
static char listing_names[256][256];
static size_t listing_n;

static int listing_add(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    if (f->level == 0)
        return 0;
    assert_true(listing_n < TG_ARRAY_LEN(listing_names));
    assert_true(strlen(p + listing_root_len + 1) < sizeof(listing_names[0]));
    strcpy(listing_names[listing_n++], p + listing_root_len + 1);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static const char *listing(const char *dir)
{
    listing_n = 0;
    listing_root_len = strlen(dir);
    listing_buf[0] = '\0';
    assert_int_equal(nftw(dir, listing_add, 16, FTW_PHYS), 0);
    qsort(listing_names, listing_n, sizeof(listing_names[0]), cmp_str);
    for (size_t i = 0; i < listing_n; i++) {
        strcat(listing_buf, listing_names[i]);
        strcat(listing_buf, "\n");
    }
    return listing_buf;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

static void run_once(struct ctx *c, const int *count, int want)
{
    while (*count < want) {
        int more = uv_run(&c->loop, UV_RUN_ONCE);

        if (*count < want && !more)
            fail_msg("loop ran dry while waiting for an event");
    }
}

/* Wait for the next event of x. */
static enum tg_stream_ev wait_ev(struct ctx *c, struct sx *x)
{
    run_once(c, &x->nev, x->nev + 1);
    return x->last;
}

/* NULL-terminated key, value pairs after root = c->root; lines 2, 3, ... */
static int make_backend_v(struct ctx *c, struct tg_backend **out, char *err,
                          size_t errlen, const char *first, va_list ap)
{
    struct tg_kv kv[16];
    struct tg_backend_cfg cfg = { .name = "t", .type = "file", .line = 1, .kv = kv };
    const char *k = first;

    kv[0].key = "root";
    kv[0].value = c->root;
    kv[0].line = 2;
    cfg.nkv = 1;
    while (k) {
        assert_true(cfg.nkv < TG_ARRAY_LEN(kv));
        kv[cfg.nkv].key = (char *)k;
        kv[cfg.nkv].value = va_arg(ap, char *);
        kv[cfg.nkv].line = (int)cfg.nkv + 2;
        cfg.nkv++;
        k = va_arg(ap, const char *);
    }
    return tg_backend_create(&c->loop, &cfg, out, err, errlen);
}

static void make_backend(struct ctx *c, const char *first, ...)
{
    char err[256] = "";
    va_list ap;
    int rc;

    va_start(ap, first);
    rc = make_backend_v(c, &c->b, err, sizeof(err), first, ap);
    va_end(ap);
    if (rc != 0)
        fail_msg("backend: %s", err);
}

static bool open_nocase; /* open_read asks for case = insensitive */

static void open_read(struct ctx *c, struct sx *x, const char *key, size_t blksize)
{
    struct tg_open_args a = {
        .key = key, .client_ip = "192.0.2.1", .filename = key,
        .size_hint = -1, .blksize = blksize, .nocase = open_nocase,
    };
    int rc;

    memset(x, 0, sizeof(*x));
    in_call = true;
    rc = c->b->ops->open_read(c->b, &a, stream_cb, x, &x->s);
    in_call = false;
    assert_int_equal(rc, 0);
}

static void open_write(struct ctx *c, struct sx *x, const char *key, bool overwrite,
                       int64_t size_hint)
{
    struct tg_open_args a = {
        .key = key, .client_ip = "192.0.2.1", .filename = key,
        .size_hint = size_hint, .overwrite = overwrite, .blksize = 1468,
    };
    int rc;

    memset(x, 0, sizeof(*x));
    in_call = true;
    rc = c->b->ops->open_write(c->b, &a, stream_cb, x, &x->s);
    in_call = false;
    assert_int_equal(rc, 0);
}

static ssize_t sread(struct sx *x, uint8_t *dst, size_t len)
{
    ssize_t n;

    in_call = true;
    n = tg_stream_read1(x->s, dst, len);
    in_call = false;
    return n;
}

static int push(struct sx *x, const uint8_t *src, size_t len)
{
    int rc;

    in_call = true;
    rc = tg_stream_push(x->s, src, len);
    in_call = false;
    return rc;
}

static int commit(struct sx *x)
{
    int rc;

    in_call = true;
    rc = tg_stream_commit(x->s);
    in_call = false;
    return rc;
}

static void sclose(struct sx *x)
{
    in_call = true;
    x->closed = true;
    tg_stream_close(x->s);
    in_call = false;
}

/* Pull everything, in chunks of `chunk`; returns 0 or the failure with
 * *err filled. Checks that a read returns all it was asked for unless the
 * file ends (the backend promises this when chunk fits its staging). */
static int read_rest(struct ctx *c, struct sx *x, size_t chunk, bool exact,
                     uint8_t *out, size_t cap, size_t *got, struct tg_error *err)
{
    bool short_seen = false;

    for (;;) {
        ssize_t n;

        n = sread(x, out + *got, chunk);
        if (n == TG_EAGAIN) {
            enum tg_stream_ev ev = wait_ev(c, x);

            if (ev == TG_STREAM_FAILED) {
                *err = x->s->err;
                assert_true(sread(x, out, chunk) < 0); /* and stays failed */
                return -1;
            }
            assert_int_equal(ev, TG_STREAM_READABLE);
            continue;
        }
        if (n < 0) {
            *err = x->s->err;
            return (int)n;
        }
        if (n == 0)
            return 0;
        if (exact) {
            /* Only the last block may be short (RFC 1350 section 6). */
            assert_false(short_seen);
            if ((size_t)n < chunk)
                short_seen = true;
        }
        assert_true((size_t)n <= chunk);
        *got += (size_t)n;
        assert_true(*got <= cap);
    }
}

/* Open, read all, close. Returns 0 or the TFTP error via *err (-1). */
static int read_all(struct ctx *c, const char *key, size_t blksize, size_t chunk,
                    uint8_t **data, size_t *len, int64_t *size, struct tg_error *err)
{
    struct sx x;
    size_t cap = 8 * MIB;
    int rc;

    *data = malloc(cap + chunk);
    assert_non_null(*data);
    *len = 0;
    open_read(c, &x, key, blksize);
    if (wait_ev(c, &x) == TG_STREAM_FAILED) {
        *err = x.s->err;
        sclose(&x);
        return -1;
    }
    assert_int_equal(x.last, TG_STREAM_OPENED);
    *size = x.s->size;
    rc = read_rest(c, &x, chunk, chunk <= (blksize > 65536 ? blksize : 65536),
                   *data, cap, len, err);
    if (rc == 0)
        assert_int_equal(sread(&x, *data, chunk), 0); /* EOF stays EOF */
    assert_int_equal(x.ev[TG_STREAM_OPENED], 1);
    sclose(&x);
    return rc;
}

/* Upload data in blocks of blk; returns 0 or -1 with *err. */
static int eagains;

static int write_all(struct ctx *c, const char *key, bool overwrite, const uint8_t *data,
                     size_t n, size_t blk, struct tg_error *err)
{
    struct sx x;
    size_t off = 0;
    int rc = 0, eag = 0;

    open_write(c, &x, key, overwrite, (int64_t)n);
    if (wait_ev(c, &x) == TG_STREAM_FAILED) {
        *err = x.s->err;
        sclose(&x);
        return -1;
    }
    assert_int_equal(x.last, TG_STREAM_OPENED);
    while (off < n) {
        size_t k = n - off < blk ? n - off : blk;

        rc = push(&x, data + off, k);
        if (rc == TG_EAGAIN) {
            eagains++;
            eag++;
            if (wait_ev(c, &x) == TG_STREAM_FAILED)
                goto failed;
            assert_int_equal(x.last, TG_STREAM_WRITABLE);
            continue;
        }
        assert_int_equal(rc, 0);
        off += k;
    }
    assert_int_equal(commit(&x), 0);
    if (wait_ev(c, &x) != TG_STREAM_COMMITTED)
        goto failed;
    assert_int_equal(x.ev[TG_STREAM_WRITABLE], eag);
    sclose(&x);
    return 0;
failed:
    assert_int_equal(x.last, TG_STREAM_FAILED);
    *err = x.s->err;
    sclose(&x);
    return -1;
}

static void expect_err(const struct tg_error *e, uint16_t code, const char *msg)
{
    assert_int_equal(e->code, code);
    assert_string_equal(e->msg, msg);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    strcpy(c->base, "/tmp/tg-file-test-XXXXXX");
    assert_non_null(mkdtemp(c->base));
    path_in(c->root, c->base, "root");
    path_in(c->outside, c->base, "outside");
    assert_int_equal(mkdir(c->root, 0755), 0);
    assert_int_equal(mkdir(c->outside, 0755), 0);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    c->live0 = tg_alloc_live();
    sync_cbs = late_cbs = eagains = 0;
    tg_lfs_force_no_openat2 = false;
    tg_lfs_force_no_tmpfile = false;
    *state = c;
    return 0;
}

/* The end of every test: backend gone, loop drained and closable, no
 * allocation left, no callback out of place. */
static void finish(struct ctx *c)
{
    if (c->b)
        tg_backend_destroy(c->b);
    c->b = NULL;
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    c->finished = true;
    assert_int_equal(tg_alloc_live(), c->live0);
    assert_int_equal(sync_cbs, 0);
    assert_int_equal(late_cbs, 0);
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    if (!c->finished) {
        /* A failed test: tidy what can be tidied. */
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
    }
    nftw(c->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tg_lfs_force_no_openat2 = false;
    tg_lfs_force_no_tmpfile = false;
    tg_alloc_fail_after(0);
    free(c);
    return 0;
}

/* ---- configuration ---- */

static void test_config(void **state)
{
    struct ctx *c = *state;
    char file[PATH_MAX], nope[PATH_MAX], want[512], err[256];
    static const struct {
        const char *kv[10]; /* "@root", "@file", "@nope" are replaced */
        int rc;
        const char *msg; /* "%s" is the path named by the value */
    } cases[] = {
        { { "root", "@root", NULL }, 0, "" },
        { { "root", "@root", "public_only", "yes", "create_dirs", "off", "fsync", "0", NULL },
          0, "" },
        { { "root", "@root", "colour", "blue", NULL }, TG_EINVAL,
          "line 3: colour: unknown key for a file backend" },
        { { "public_only", "yes", NULL }, TG_EINVAL,
          "line 1: root: missing (a file backend needs a directory)" },
        { { "root", "", NULL }, TG_EINVAL,
          "line 2: root: missing (a file backend needs a directory)" },
        { { "root", "@nope", NULL }, -ENOENT, "line 2: root: %s: No such file or directory" },
        { { "root", "@file", NULL }, -ENOTDIR, "line 2: root: %s: Not a directory" },
        { { "root", "@root", "fsync", "maybe", NULL }, TG_EINVAL,
          "line 3: fsync: expected yes or no, got 'maybe'" },
        { { "create_dirs", "1", "public_only", "", "root", "@root", NULL }, TG_EINVAL,
          "line 3: public_only: expected yes or no, got ''" },
    };

    path_in(file, c->root, "plain");
    path_in(nope, c->root, "nope");
    put_file(c->root, "plain", "x", 1, 0644);
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        struct tg_kv kv[8];
        struct tg_backend_cfg cfg = { .name = "t", .type = "file", .line = 1, .kv = kv };
        struct tg_backend *b = NULL;
        const char *arg = "";
        int rc;

        for (size_t k = 0; cases[i].kv[k]; k += 2) {
            const char *v = cases[i].kv[k + 1];

            if (strcmp(v, "@root") == 0)
                v = c->root;
            else if (strcmp(v, "@file") == 0)
                v = arg = file;
            else if (strcmp(v, "@nope") == 0)
                v = arg = nope;
            kv[cfg.nkv].key = (char *)cases[i].kv[k];
            kv[cfg.nkv].value = (char *)v;
            kv[cfg.nkv].line = (int)cfg.nkv + 2;
            cfg.nkv++;
        }
        err[0] = '\0';
        rc = tg_backend_create(&c->loop, &cfg, &b, err, sizeof(err));
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_ptr_equal(b->ops, &tg_file_backend_ops);
            assert_ptr_equal(b->loop, &c->loop);
            assert_string_equal(b->name, "t");
            tg_backend_destroy(b);
            continue;
        }
        {
            const char *pct = strstr(cases[i].msg, "%s");

            if (pct)
                assert_true(snprintf(want, sizeof(want), "%.*s%s%s",
                                     (int)(pct - cases[i].msg), cases[i].msg, arg,
                                     pct + 2) < (int)sizeof(want));
            else
                snprintf(want, sizeof(want), "%s", cases[i].msg);
        }
        assert_string_equal(err, want);
    }
    {
        struct tg_backend_cfg cfg = { .name = "x", .type = "ftp", .line = 7 };
        struct tg_backend *b = NULL;

        assert_int_equal(tg_backend_create(&c->loop, &cfg, &b, err, sizeof(err)), TG_EINVAL);
        assert_string_equal(err, "line 7: type: unknown backend type 'ftp'");
        assert_null(b);
    }
    tg_backend_destroy(NULL);
    finish(c);
}

/* ---- reading ---- */

static void test_read_small_and_empty(void **state)
{
    struct ctx *c = *state;
    struct tg_error err;
    uint8_t *data;
    size_t n;
    int64_t size;

    make_backend(c, NULL);
    put_file(c->root, "hello.txt", "Hello from tftpgw.\n", 19, 0644);
    put_file(c->root, "empty", "", 0, 0644);
    assert_int_equal(read_all(c, "hello.txt", 512, 512, &data, &n, &size, &err), 0);
    assert_int_equal(size, 19);
    assert_int_equal(n, 19);
    assert_memory_equal(data, "Hello from tftpgw.\n", 19);
    free(data);
    assert_int_equal(read_all(c, "empty", 512, 512, &data, &n, &size, &err), 0);
    assert_int_equal(size, 0);
    assert_int_equal(n, 0);
    free(data);
    finish(c);
}

static void test_read_sizes(void **state)
{
    struct ctx *c = *state;
    static const struct {
        size_t size, blksize, chunk;
    } cases[] = {
        { 511, 512, 512 },
        { 512, 512, 512 },
        { 65536, 512, 512 },           /* exactly four stagings */
        { 65537, 512, 512 },           /* one byte into the second */
        { 131072, 65464, 65464 },
        { 300001, 8, 7 },              /* odd chunks across every seam */
        { 5 * MIB + 17, 1468, 1468 },
        { 5 * MIB, 65464, 65464 },
        { 5 * MIB, 512, 1000 },
        { 1 * MIB + 3, 100000, 100000 }, /* blksize beyond 64 KiB grows the staging */
        { 1 * MIB + 3, 512, 200000 },    /* more than staging holds: short reads allowed */
    };
    uint8_t *src = malloc(5 * MIB + 17);

    assert_non_null(src);
    make_backend(c, NULL);
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        struct tg_error err;
        uint8_t *data;
        size_t n;
        int64_t size;

        fill_random(src, cases[i].size, i + 1);
        put_file(c->root, "blob.bin", src, cases[i].size, 0644);
        assert_int_equal(read_all(c, "blob.bin", cases[i].blksize, cases[i].chunk,
                                  &data, &n, &size, &err), 0);
        assert_int_equal(size, (int64_t)cases[i].size);
        assert_int_equal(n, cases[i].size);
        assert_memory_equal(data, src, n);
        free(data);
    }
    free(src);
    finish(c);
}

/* Refusals and symlinks, with openat2 and with the realpath fallback. */
static void test_read_confinement(void **state)
{
    struct ctx *c = *state;
    char target[PATH_MAX], fifo[PATH_MAX];
    static const struct {
        const char *key;
        uint16_t code; /* 0xffff: must succeed with "inside\n" */
        const char *msg;
    } cases[] = {
        { "top.txt", 0xffff, NULL },
        { "sub/link", 0xffff, NULL },         /* -> ../top.txt: inside */
        { "abs_in", 0xffff, NULL },           /* absolute path into root */
        { "abs_root/sub/link", 0xffff, NULL },/* absolute, to the root itself */
        { "dirlink/top.txt", 0xffff, NULL },  /* directory symlink inside */
        { "missing", 1, "file not found" },
        { "sub/missing", 1, "file not found" },
        { "top.txt/x", 1, "file not found" }, /* ENOTDIR */
        { "dangling", 1, "file not found" },
        { "", 1, "file not found" },
        { "sub", 2, "access violation" },     /* a directory */
        { ".", 2, "access violation" },       /* the root itself */
        { "fifo", 2, "access violation" },    /* must not hang */
        { "out_abs", 2, "access violation" },
        { "out_rel", 2, "access violation" },
        { "outdir/secret", 2, "access violation" },
        { "sub/out_deep", 2, "access violation" },
        { "selfloop", 2, "access violation" },
        { "proc_root", 2, "access violation" },
    };

    put_file(c->root, "top.txt", "inside\n", 7, 0644);
    put_file(c->outside, "secret", "outside\n", 8, 0644);
    sub_mkdir(c->root, "sub");
    sub_symlink(c->root, "sub/link", "../top.txt");
    path_in(target, c->root, "top.txt");
    sub_symlink(c->root, "abs_in", target);
    sub_symlink(c->root, "abs_root", c->root);
    sub_symlink(c->root, "dirlink", ".");
    sub_symlink(c->root, "dangling", "nowhere");
    path_in(fifo, c->root, "fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    path_in(target, c->outside, "secret");
    sub_symlink(c->root, "out_abs", target);
    sub_symlink(c->root, "out_rel", "../outside/secret");
    sub_symlink(c->root, "outdir", c->outside);
    sub_symlink(c->root, "sub/out_deep", "../../outside/secret");
    sub_symlink(c->root, "selfloop", "selfloop");
    assert_true(snprintf(target, sizeof(target), "/proc/self/root%s/secret", c->outside) <
                (int)sizeof(target));
    sub_symlink(c->root, "proc_root", target);
    make_backend(c, NULL);
    for (int fallback = 0; fallback < 2; fallback++) {
        tg_lfs_force_no_openat2 = fallback;
        for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
            struct tg_error err = { 0, "" };
            uint8_t *data;
            size_t n;
            int64_t size;
            int rc = read_all(c, cases[i].key, 512, 512, &data, &n, &size, &err);

            if (cases[i].code == 0xffff) {
                if (rc != 0)
                    fail_msg("%s (fallback %d): %u %s", cases[i].key, fallback,
                             err.code, err.msg);
                assert_int_equal(n, 7);
                assert_memory_equal(data, "inside\n", 7);
            } else {
                if (rc == 0)
                    fail_msg("%s (fallback %d): served", cases[i].key, fallback);
                if (err.code != cases[i].code)
                    fail_msg("%s (fallback %d): code %u %s", cases[i].key, fallback,
                             err.code, err.msg);
                assert_string_equal(err.msg, cases[i].msg);
            }
            free(data);
        }
    }
    finish(c);
}

/* case = insensitive: any case of each component finds the file; an
 * exact name wins, else the byte-wise smallest variant; nothing found
 * through a case-variant leads out of the root (invariant 5). */
static void test_read_nocase(void **state)
{
    struct ctx *c = *state;
    char target[PATH_MAX], out[64];
    struct tg_lfs_root root;
    static const struct {
        const char *key;
        uint16_t code; /* 0: served with data */
        const char *data;
    } cases[] = {
        { "Boot/BCD", 0, "bcd\n" },
        { "boot/bcd", 0, "bcd\n" },
        { "BOOT/x64/WDSNBP.COM", 0, "nbp\n" },
        { "Dup.txt", 0, "mixed\n" },
        { "DUP.TXT", 0, "upper\n" },
        { "dup.txt", 0, "upper\n" },  /* "DUP.TXT" < "Dup.txt" */
        { "boot/nothing", 1, NULL },
        { "boot/bcd/deeper", 1, NULL }, /* a file taken for a directory */
        { "boot/evil", 2, NULL },       /* only case-matches a symlink out */
        { "out/secret", 2, NULL },      /* a directory symlink out */
        { "OUT/SECRET", 2, NULL },
        { "boot", 2, NULL },            /* a directory */
    };

    sub_mkdir(c->root, "Boot");
    sub_mkdir(c->root, "Boot/x64");
    put_file(c->root, "Boot/BCD", "bcd\n", 4, 0644);
    put_file(c->root, "Boot/x64/WdsNbp.com", "nbp\n", 4, 0644);
    put_file(c->root, "Dup.txt", "mixed\n", 6, 0644);
    put_file(c->root, "DUP.TXT", "upper\n", 6, 0644);
    put_file(c->outside, "secret", "outside\n", 8, 0644);
    path_in(target, c->outside, "secret");
    sub_symlink(c->root, "Boot/Evil", target);
    sub_symlink(c->root, "Out", c->outside);

    /* the resolver alone */
    assert_int_equal(tg_lfs_root_open(&root, c->root), 0);
    assert_int_equal(tg_lfs_resolve_nocase(&root, "boot/X64/wdsnbp.com", out, sizeof(out)), 0);
    assert_string_equal(out, "Boot/x64/WdsNbp.com");
    assert_int_equal(tg_lfs_resolve_nocase(&root, "dup.TXT", out, sizeof(out)), 0);
    assert_string_equal(out, "DUP.TXT");
    assert_int_equal(tg_lfs_resolve_nocase(&root, "boot/none", out, sizeof(out)), -ENOENT);
    assert_int_equal(tg_lfs_resolve_nocase(&root, "boot/x64/wdsnbp.com", out, 8), -ENAMETOOLONG);
    assert_int_equal(tg_lfs_resolve_nocase(&root, "out/secret", out, sizeof(out)), -EXDEV);
    tg_lfs_root_close(&root);

    make_backend(c, NULL);
    open_nocase = true;
    for (int fallback = 0; fallback < 2; fallback++) {
        tg_lfs_force_no_openat2 = fallback;
        for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
            struct tg_error err = { 0, "" };
            uint8_t *data;
            size_t n;
            int64_t size;
            int rc = read_all(c, cases[i].key, 512, 512, &data, &n, &size, &err);

            if (cases[i].code == 0) {
                if (rc != 0)
                    fail_msg("%s (fallback %d): %u %s", cases[i].key, fallback, err.code,
                             err.msg);
                assert_int_equal(n, strlen(cases[i].data));
                assert_memory_equal(data, cases[i].data, n);
            } else if (rc == 0 || err.code != cases[i].code) {
                fail_msg("%s (fallback %d): rc %d code %u %s", cases[i].key, fallback, rc,
                         err.code, err.msg);
            }
            free(data);
        }
    }
    open_nocase = false;
    /* without the flag, case matters */
    {
        struct tg_error err = { 0, "" };
        uint8_t *data;
        size_t n;
        int64_t size;

        assert_int_equal(read_all(c, "boot/bcd", 512, 512, &data, &n, &size, &err), -1);
        assert_int_equal(err.code, 1);
        free(data);
    }
    finish(c);
}

static void test_read_public_only(void **state)
{
    struct ctx *c = *state;
    static const struct {
        const char *public_only;
        mode_t mode;
        uint16_t code; /* 0xffff: served */
    } cases[] = {
        { "yes", 0644, 0xffff },
        { "yes", 0604, 0xffff },
        { "yes", 0640, 2 },
        { "yes", 0600, 2 },
        { "no", 0640, 0xffff },
    };

    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        struct tg_error err = { 0, "" };
        uint8_t *data;
        size_t n;
        int64_t size;
        int rc;

        make_backend(c, "public_only", cases[i].public_only, NULL);
        put_file(c->root, "f", "data", 4, cases[i].mode);
        rc = read_all(c, "f", 512, 512, &data, &n, &size, &err);
        if (cases[i].code == 0xffff) {
            assert_int_equal(rc, 0);
            assert_int_equal(n, 4);
        } else {
            assert_int_not_equal(rc, 0);
            expect_err(&err, cases[i].code, "access violation");
        }
        free(data);
        tg_backend_destroy(c->b);
        c->b = NULL;
    }
    finish(c);
}

static void test_read_permission_denied(void **state)
{
    struct ctx *c = *state;
    struct tg_error err;
    uint8_t *data;
    size_t n;
    int64_t size;

    if (geteuid() == 0) {
        finish(c);
        skip(); /* root reads anything: EACCES cannot be provoked */
    }
    make_backend(c, NULL);
    put_file(c->root, "locked", "x", 1, 0000);
    assert_int_not_equal(read_all(c, "locked", 512, 512, &data, &n, &size, &err), 0);
    expect_err(&err, 2, "access violation");
    free(data);
    finish(c);
}

/* Size is promised at OPENED (tsize): a file cut short later is an error,
 * not a silently shorter transfer. */
static void test_read_shrinks(void **state)
{
    struct ctx *c = *state;
    uint8_t *src = malloc(MIB), *dst = malloc(2 * MIB);
    char p[PATH_MAX];
    struct tg_error err;
    struct sx x;
    size_t got = 0;

    make_backend(c, NULL);
    fill_random(src, MIB, 99);
    put_file(c->root, "big", src, MIB, 0644);
    open_read(c, &x, "big", 512);
    assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
    assert_int_equal(x.s->size, MIB);
    path_in(p, c->root, "big");
    assert_int_equal(truncate(p, 1000), 0);
    for (;;) {
        ssize_t n = sread(&x, dst + got, 512);

        if (n == TG_EAGAIN) {
            if (wait_ev(c, &x) == TG_STREAM_FAILED)
                break;
            continue;
        }
        if (n < 0)
            break;
        assert_true(n > 0 && n <= 512);
        got += (size_t)n;
        assert_true(got <= 1000);
    }
    err = x.s->err;
    expect_err(&err, 0, "file shrank while being read");
    assert_int_equal(sread(&x, dst, 512), TG_EIO);
    /* What the file still had may have come, never a byte more, and the
     * end is an error, not a short transfer. */
    assert_memory_equal(dst, src, got);
    sclose(&x);
    free(src);
    free(dst);
    finish(c);
}

/* ---- writing ---- */

struct wmode {
    const char *name;
    bool no_tmpfile;
    bool no_openat2;
};

static const struct wmode wmodes[] = {
    { "O_TMPFILE", false, false },
    { "named temp", true, false },
    { "O_TMPFILE, no openat2", false, true },
    { "named temp, no openat2", true, true },
};

static void set_mode(const struct wmode *m)
{
    tg_lfs_force_no_tmpfile = m->no_tmpfile;
    tg_lfs_force_no_openat2 = m->no_openat2;
}

static void test_write_new(void **state)
{
    struct ctx *c = *state;
    mode_t um = umask(0);

    umask(um);
    for (size_t i = 0; i < TG_ARRAY_LEN(wmodes); i++) {
        static const char text[] = "uploaded\n";
        struct tg_error err;
        struct stat sb;
        char p[PATH_MAX];
        uint8_t *got;
        size_t n;

        set_mode(&wmodes[i]);
        make_backend(c, i & 1 ? "fsync" : NULL, "no", NULL);
        assert_string_equal(listing(c->root), "");
        assert_int_equal(write_all(c, "new.txt", false, (const uint8_t *)text, 9, 1468, &err), 0);
        assert_string_equal(listing(c->root), "new.txt\n");
        got = get_file(c->root, "new.txt", &n);
        assert_int_equal(n, 9);
        assert_memory_equal(got, text, 9);
        free(got);
        path_in(p, c->root, "new.txt");
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_mode & 07777, 0644 & ~um);
        assert_int_equal(unlink(p), 0);
        /* An empty upload is a file too (docs/protocol.md, The final empty
         * block). */
        assert_int_equal(write_all(c, "empty", false, NULL, 0, 512, &err), 0);
        assert_string_equal(listing(c->root), "empty\n");
        assert_non_null(got = get_file(c->root, "empty", &n));
        assert_int_equal(n, 0);
        free(got);
        path_in(p, c->root, "empty");
        assert_int_equal(unlink(p), 0);
        tg_backend_destroy(c->b);
        c->b = NULL;
    }
    finish(c);
}

/* 5 MiB in 1468-byte blocks: the stages fill faster than the disk can
 * take them while the loop is not running, so TG_EAGAIN must occur and
 * each is answered by exactly one WRITABLE. */
static void test_write_big(void **state)
{
    struct ctx *c = *state;
    size_t len = 5 * MIB + 1;
    uint8_t *src = malloc(len);

    assert_non_null(src);
    fill_random(src, len, 7);
    for (size_t i = 0; i < 2; i++) {
        struct tg_error err;
        uint8_t *got;
        size_t n;

        set_mode(&wmodes[i]);
        make_backend(c, NULL);
        eagains = 0;
        assert_int_equal(write_all(c, "d/big.bin", false, src, len, 1468, &err), 0);
        assert_true(eagains > 0);
        got = get_file(c->root, "d/big.bin", &n);
        assert_int_equal(n, len);
        assert_memory_equal(got, src, len);
        free(got);
        assert_string_equal(listing(c->root), "d\nd/big.bin\n");
        nftw(c->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        assert_int_equal(mkdir(c->root, 0755), 0);
        tg_backend_destroy(c->b);
        c->b = NULL;
    }
    free(src);
    finish(c);
}

static void test_write_refused(void **state)
{
    struct ctx *c = *state;
    static const struct {
        const char *key;
        bool overwrite;
        int64_t size_hint;
        uint16_t code;
        const char *msg;
    } cases[] = {
        { "exists.txt", false, 5, 6, "file already exists" },
        { "adir", true, -1, 2, "access violation" },       /* target is a directory */
        { "alink", true, -1, 2, "access violation" },      /* target is a symlink */
        { "outdir/f", true, -1, 2, "access violation" },   /* parent leads out */
        { "outdir/new/f", true, -1, 2, "access violation" },
        { "exists.txt/f", true, -1, 1, "file not found" }, /* ENOTDIR */
        /* tsize cannot fit: ERROR 3 (RFC 2349, Transfer Size Option
         * Specification) */
        { "huge.iso", false, INT64_MAX / 4, 3, "disk full" },
        { "", false, -1, 2, "access violation" },
    };
    const char *before;
    char snap[8192];

    put_file(c->root, "exists.txt", "old\n", 4, 0644);
    sub_mkdir(c->root, "adir");
    sub_symlink(c->root, "alink", "exists.txt");
    sub_symlink(c->root, "outdir", c->outside);
    before = listing(c->root);
    strcpy(snap, before);
    for (size_t m = 0; m < TG_ARRAY_LEN(wmodes); m++) {
        set_mode(&wmodes[m]);
        make_backend(c, NULL);
        for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
            struct tg_error err = { 0, "" };
            struct sx x;

            open_write(c, &x, cases[i].key, cases[i].overwrite, cases[i].size_hint);
            if (wait_ev(c, &x) != TG_STREAM_FAILED)
                fail_msg("%s (%s): opened", cases[i].key, wmodes[m].name);
            err = x.s->err;
            if (err.code != cases[i].code)
                fail_msg("%s (%s): code %u %s", cases[i].key, wmodes[m].name, err.code,
                         err.msg);
            assert_string_equal(err.msg, cases[i].msg);
            assert_true(push(&x, (const uint8_t *)"x", 1) < 0);
            sclose(&x);
        }
        tg_backend_destroy(c->b);
        c->b = NULL;
        uv_run(&c->loop, UV_RUN_DEFAULT);
        assert_string_equal(listing(c->root), snap);
        assert_string_equal(listing(c->outside), "");
    }
    finish(c);
}

/* Create mode checks at open, but another writer may get there first:
 * commit must still refuse (ERROR 6), keep their file and leave no temp. */
static void test_write_create_race(void **state)
{
    struct ctx *c = *state;

    for (size_t m = 0; m < TG_ARRAY_LEN(wmodes); m++) {
        struct tg_error err;
        struct sx x;
        uint8_t *got;
        size_t n;
        char p[PATH_MAX];

        set_mode(&wmodes[m]);
        make_backend(c, NULL);
        open_write(c, &x, "race.txt", false, -1);
        assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
        put_file(c->root, "race.txt", "theirs\n", 7, 0644);
        assert_int_equal(push(&x, (const uint8_t *)"mine\n", 5), 0);
        assert_int_equal(commit(&x), 0);
        assert_int_equal(wait_ev(c, &x), TG_STREAM_FAILED);
        err = x.s->err;
        expect_err(&err, 6, "file already exists");
        assert_int_equal(commit(&x), -EEXIST);
        sclose(&x);
        tg_backend_destroy(c->b);
        c->b = NULL;
        uv_run(&c->loop, UV_RUN_DEFAULT);
        assert_string_equal(listing(c->root), "race.txt\n");
        got = get_file(c->root, "race.txt", &n);
        assert_int_equal(n, 7);
        assert_memory_equal(got, "theirs\n", 7);
        free(got);
        path_in(p, c->root, "race.txt");
        unlink(p);
    }
    finish(c);
}

/* Overwrite replaces atomically: a reader that opened the old file keeps
 * reading the old contents to the end; a new reader gets the new ones. */
static void test_write_overwrite(void **state)
{
    struct ctx *c = *state;
    size_t len_a = 300000, len_b = 123457;
    uint8_t *a = malloc(len_a), *bb = malloc(len_b), *dst = malloc(len_a + 512);

    fill_random(a, len_a, 1);
    fill_random(bb, len_b, 2);
    for (size_t m = 0; m < TG_ARRAY_LEN(wmodes); m++) {
        struct tg_error err;
        struct sx r;
        size_t got = 0;
        uint8_t *data;
        size_t n;
        int64_t size;

        set_mode(&wmodes[m]);
        make_backend(c, NULL);
        put_file(c->root, "img.bin", a, len_a, 0644);
        open_read(c, &r, "img.bin", 512);
        assert_int_equal(wait_ev(c, &r), TG_STREAM_OPENED);
        assert_int_equal(sread(&r, dst, 512), 512);
        got = 512;
        assert_int_equal(write_all(c, "img.bin", true, bb, len_b, 512, &err), 0);
        assert_string_equal(listing(c->root), "img.bin\n");
        assert_int_equal(read_rest(c, &r, 512, true, dst, len_a, &got, &err), 0);
        assert_int_equal(got, len_a);
        assert_memory_equal(dst, a, len_a);
        sclose(&r);
        assert_int_equal(read_all(c, "img.bin", 512, 512, &data, &n, &size, &err), 0);
        assert_int_equal(n, len_b);
        assert_memory_equal(data, bb, len_b);
        free(data);
        tg_backend_destroy(c->b);
        c->b = NULL;
    }
    free(a);
    free(bb);
    free(dst);
    finish(c);
}

/* Close before commit is an abort: nothing appears, no temp, no new
 * directory, whether writes are still in flight or not. */
static void test_write_abort(void **state)
{
    struct ctx *c = *state;
    static const struct {
        const char *key;
        size_t bytes;
        bool run_between; /* let the writes finish before the close */
    } cases[] = {
        { "abort.bin", 0, false },
        { "abort.bin", 200000, false },
        { "abort.bin", 200000, true },
        { "new1/new2/abort.bin", 150000, true },
        { "keep/new/abort.bin", 70000, false },
        { "keep.txt", 100, true }, /* overwrite mode: the old file stays */
    };
    uint8_t blk[1468];
    char snap[8192];

    memset(blk, 0x5a, sizeof(blk));
    put_file(c->root, "keep.txt", "keep\n", 5, 0644);
    sub_mkdir(c->root, "keep");
    strcpy(snap, listing(c->root));
    for (size_t m = 0; m < TG_ARRAY_LEN(wmodes); m++) {
        set_mode(&wmodes[m]);
        make_backend(c, NULL);
        for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
            struct sx x;
            size_t off = 0;
            uint8_t *got;
            size_t n;

            open_write(c, &x, cases[i].key, true, (int64_t)cases[i].bytes);
            assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
            while (off < cases[i].bytes) {
                int rc = push(&x, blk, sizeof(blk));

                if (rc == TG_EAGAIN) {
                    assert_int_equal(wait_ev(c, &x), TG_STREAM_WRITABLE);
                    continue;
                }
                assert_int_equal(rc, 0);
                off += sizeof(blk);
            }
            if (cases[i].run_between)
                uv_run(&c->loop, UV_RUN_NOWAIT);
            sclose(&x);
            uv_run(&c->loop, UV_RUN_DEFAULT);
            assert_string_equal(listing(c->root), snap);
            got = get_file(c->root, "keep.txt", &n);
            assert_int_equal(n, 5);
            free(got);
        }
        tg_backend_destroy(c->b);
        c->b = NULL;
    }
    finish(c);
}

static void test_write_create_dirs(void **state)
{
    struct ctx *c = *state;
    struct tg_error err;
    uint8_t *got;
    size_t n;

    for (size_t m = 0; m < TG_ARRAY_LEN(wmodes); m++) {
        set_mode(&wmodes[m]);
        make_backend(c, NULL); /* create_dirs defaults to yes */
        assert_int_equal(write_all(c, "x/y/z.bin", false, (const uint8_t *)"zzz", 3, 512,
                                   &err), 0);
        assert_int_equal(write_all(c, "x/w.bin", false, (const uint8_t *)"w", 1, 512, &err),
                         0);
        assert_string_equal(listing(c->root), "x\nx/w.bin\nx/y\nx/y/z.bin\n");
        got = get_file(c->root, "x/y/z.bin", &n);
        assert_int_equal(n, 3);
        assert_memory_equal(got, "zzz", 3);
        free(got);
        tg_backend_destroy(c->b);
        c->b = NULL;

        make_backend(c, "create_dirs", "no", NULL);
        assert_int_equal(write_all(c, "q/r.bin", false, (const uint8_t *)"r", 1, 512, &err),
                         -1);
        expect_err(&err, 1, "file not found");
        assert_int_equal(write_all(c, "x/y/z2.bin", false, (const uint8_t *)"2", 1, 512, &err),
                         0);
        assert_string_equal(listing(c->root), "x\nx/w.bin\nx/y\nx/y/z.bin\nx/y/z2.bin\n");
        tg_backend_destroy(c->b);
        c->b = NULL;
        nftw(c->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        assert_int_equal(mkdir(c->root, 0755), 0);
    }
    finish(c);
}

/* ---- lifetime ---- */

/* Close with the open job, read-ahead, writes or commit still in flight,
 * and from inside the stream's own callback: nothing fires afterwards,
 * nothing leaks, and a write leaves either nothing or the whole file. */
static void test_close_in_flight(void **state)
{
    struct ctx *c = *state;
    uint8_t *src = malloc(MIB), buf[512];
    struct sx x;

    fill_random(src, MIB, 5);
    put_file(c->root, "r.bin", src, MIB, 0644);
    make_backend(c, NULL);

    /* Open job in flight. */
    {
        struct sx xs[4];

        open_read(c, &xs[0], "r.bin", 512);
        sclose(&xs[0]);
        open_write(c, &xs[1], "w.bin", false, -1);
        sclose(&xs[1]);
        open_write(c, &xs[2], "nd1/nd2/w.bin", false, -1);
        sclose(&xs[2]);
        open_read(c, &xs[3], "missing", 512);
        sclose(&xs[3]);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        for (int i = 0; i < 4; i++)
            assert_int_equal(xs[i].nev, 0);
        assert_string_equal(listing(c->root), "r.bin\n");
    }

    /* Closed from inside OPENED and FAILED. */
    open_read(c, &x, "r.bin", 512);
    x.close_in_cb = true;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(x.nev, 1);
    assert_int_equal(x.last, TG_STREAM_OPENED);
    open_read(c, &x, "missing", 512);
    x.close_in_cb = true;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(x.nev, 1);
    assert_int_equal(x.last, TG_STREAM_FAILED);

    /* Read-ahead in flight. */
    open_read(c, &x, "r.bin", 512);
    assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
    assert_int_equal(sread(&x, buf, 512), 512);
    sclose(&x);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(x.nev, 1);

    /* Waiting for READABLE, closed inside it (page-cache reads on the loop
     * would answer at once). */
    tg_file_nowait_for_tests(false);
    open_read(c, &x, "r.bin", 65464);
    assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
    assert_int_equal(sread(&x, buf, 1), TG_EAGAIN); /* the staging is being read */
    x.close_in_cb = true;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    tg_file_nowait_for_tests(true);
    assert_int_equal(x.nev, 2);
    assert_int_equal(x.last, TG_STREAM_READABLE);

    /* Writes in flight, then commit in flight. */
    for (int with_commit = 0; with_commit < 2; with_commit++) {
        size_t off = 0;
        uint8_t *got;
        size_t n;

        open_write(c, &x, "w.bin", true, -1);
        assert_int_equal(wait_ev(c, &x), TG_STREAM_OPENED);
        while (off < 3 * 65536) {
            int rc = push(&x, src + off, 512);

            if (rc == TG_EAGAIN)
                break;
            assert_int_equal(rc, 0);
            off += 512;
        }
        if (with_commit)
            assert_int_equal(commit(&x), 0);
        sclose(&x);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        assert_int_equal(x.nev, 1);
        got = get_file(c->root, "w.bin", &n);
        if (got) {
            /* A commit that won the race with close is all there. */
            assert_true(with_commit);
            assert_int_equal(n, off);
            assert_memory_equal(got, src, n);
            free(got);
        }
        assert_string_equal(listing(c->root), got ? "r.bin\nw.bin\n" : "r.bin\n");
        if (got) {
            char p[PATH_MAX];

            path_in(p, c->root, "w.bin");
            unlink(p);
        }
    }

    /* Destroyed while a closed stream still drains: freed when it ends. */
    open_read(c, &x, "r.bin", 512);
    sclose(&x);
    tg_backend_destroy(c->b);
    c->b = NULL;
    free(src);
    finish(c);
}

static void test_misuse(void **state)
{
    struct ctx *c = *state;
    uint8_t buf[70000];
    struct sx r, w;

    memset(buf, 1, sizeof(buf));
    put_file(c->root, "f", "abc", 3, 0644);
    make_backend(c, NULL);
    open_read(c, &r, "f", 512);
    open_write(c, &w, "g", false, -1);
    /* Before OPENED. */
    assert_int_equal(sread(&r, buf, 512), TG_EINVAL);
    assert_int_equal(push(&w, buf, 512), TG_EINVAL);
    assert_int_equal(commit(&w), TG_EINVAL);
    run_once(c, &r.nev, 1);
    run_once(c, &w.nev, 1);
    assert_int_equal(r.last, TG_STREAM_OPENED);
    assert_int_equal(w.last, TG_STREAM_OPENED);
    /* Wrong direction. */
    assert_int_equal(push(&r, buf, 1), TG_EINVAL);
    assert_int_equal(commit(&r), TG_EINVAL);
    assert_int_equal(sread(&w, buf, 1), TG_EINVAL);
    assert_int_equal(sread(&r, buf, 512), 3);
    assert_int_equal(sread(&r, buf, 512), 0);
    /* A block larger than the staging fails the stream. */
    assert_int_equal(push(&w, buf, sizeof(buf)), TG_EINVAL);
    expect_err(&w.s->err, 0, "block larger than staging");
    assert_int_equal(push(&w, buf, 1), TG_EINVAL);
    assert_int_equal(commit(&w), TG_EINVAL);
    sclose(&r);
    sclose(&w);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_string_equal(listing(c->root), "f\n");

    /* After COMMITTED nothing more goes in. */
    open_write(c, &w, "g", false, -1);
    assert_int_equal(wait_ev(c, &w), TG_STREAM_OPENED);
    assert_int_equal(push(&w, buf, 0), 0);
    assert_int_equal(commit(&w), 0);
    assert_int_equal(commit(&w), TG_EINVAL);
    assert_int_equal(push(&w, buf, 1), TG_EINVAL);
    assert_int_equal(wait_ev(c, &w), TG_STREAM_COMMITTED);
    assert_int_equal(push(&w, buf, 1), TG_EINVAL);
    sclose(&w);
    finish(c);
    assert_string_equal(listing(c->root), "f\ng\n");
}

/* Every allocation an open makes can fail: the open says TG_ENOMEM at
 * once, with no callback and nothing leaked. */
static void test_alloc_failure(void **state)
{
    struct ctx *c = *state;
    struct tg_open_args a = { .key = "f", .size_hint = -1, .blksize = 512 };

    put_file(c->root, "f", "abc", 3, 0644);
    make_backend(c, NULL);
    for (int write = 0; write < 2; write++) {
        long n;

        /* Fail the 1st, 2nd, ... allocation until the open makes no more. */
        for (n = 1; n <= 8; n++) {
            struct tg_stream *s = NULL;
            struct sx x;
            int rc;

            memset(&x, 0, sizeof(x));
            tg_alloc_fail_after(n);
            in_call = true;
            rc = write ? c->b->ops->open_write(c->b, &a, stream_cb, &x, &s)
                       : c->b->ops->open_read(c->b, &a, stream_cb, &x, &s);
            in_call = false;
            tg_alloc_fail_after(0);
            if (rc == 0) {
                x.s = s;
                sclose(&x);
                break;
            }
            assert_int_equal(rc, TG_ENOMEM);
            assert_null(s);
        }
        assert_true(n > 2 && n <= 8); /* the stream and its key at least */
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    finish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_small_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_confinement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_nocase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_public_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_permission_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_shrinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_create_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_create_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

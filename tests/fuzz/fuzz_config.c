/* tests/fuzz/fuzz_config.c - the INI parser on arbitrary text.
 *
 * Input: h[0] low 4 bits: error buffer size (0: 256, else 1..15 bytes),
 * bit 4: no error buffer at all (NULL, 0);
 * h[1]: when not 0, the h[1]-th tg_ allocation fails; then the text (cut at
 * its first NUL, as a C string is). Whatever the text, the parser must
 * return 0 with a config or an error with NULL and a NUL-terminated message,
 * and every tg_ allocation must be given back (LeakSanitizer checks the same
 * for malloc), out-of-memory paths included. An allocation failure is never
 * swallowed into a successful parse. An accepted config must keep its
 * promises: routes name existing backends, values are in range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tftpgw/config.h"
#include "tftpgw/options.h"
#include "tftpgw/window.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const struct tg_config *cfg)
{
    const struct tg_server_cfg *s = &cfg->server;

    CHECK(cfg->nroutes >= 1);
    for (size_t i = 0; i < cfg->nbackends; i++) {
        CHECK(cfg->backends[i].name && cfg->backends[i].type);
        for (size_t k = 0; k < cfg->backends[i].nkv; k++)
            CHECK(cfg->backends[i].kv[k].key && cfg->backends[i].kv[k].value);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct tg_route *r = &cfg->routes[i];
        bool found = false;

        CHECK(r->name && r->match && r->backend && r->key);
        for (size_t b = 0; b < cfg->nbackends; b++)
            if (strcmp(cfg->backends[b].name, r->backend) == 0)
                found = true;
        CHECK(found);
        CHECK(r->write <= TG_WRITE_OVERWRITE);
        CHECK(r->max_size >= -1);
        CHECK((r->refuse & ~0xfu) == 0);
        CHECK(r->nallow == 0 || r->allow);
        for (size_t a = 0; a < r->nallow; a++)
            CHECK(r->allow[a].bits <= (r->allow[a].family == AF_INET ? 32u : 128u));
        /* A prefix route keeps a clean path (or "" for everything). */
        if (!r->is_glob && r->match[0]) {
            char norm[TG_PATH_MAX];

            CHECK(tg_path_normalize(r->match, norm, sizeof(norm)) == 0);
            CHECK(strcmp(norm, r->match) == 0);
        }
    }
    CHECK(s->nlisten == 0 || s->listen);
    for (size_t i = 0; i < s->nlisten; i++)
        CHECK(s->listen[i] != NULL);
    CHECK(s->max_blksize >= TG_BLKSIZE_MIN && s->max_blksize <= TG_BLKSIZE_MAX);
    CHECK(s->max_windowsize >= 1 && s->max_windowsize <= TG_WINDOW_MAX);
    CHECK(s->port_lo <= s->port_hi && s->port_hi <= 65535);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_config *cfg = (struct tg_config *)&cfg; /* must be overwritten */
    long live = tg_alloc_live();
    size_t errlen;
    char *text, *err;
    bool failed = false;
    int rc;

    if (size < 2 || size > 65536)
        return 0;
    /* Tiny and full-size error buffers: messages are cut, never overrun. */
    errlen = (data[0] & 0xf) ? (data[0] & 0xfu) : 256;
    text = malloc(size - 1);
    err = malloc(errlen);
    CHECK(text && err);
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    memset(err, 'X', errlen);

    tg_alloc_fail_after(data[1]);
    if (data[0] & 0x10)
        rc = tg_config_parse_string(text, "fuzz.ini", &cfg, NULL, 0);
    else
        rc = tg_config_parse_string(text, "fuzz.ini", &cfg, err, errlen);
    if (data[1]) {
        /* Did the planned failure happen inside the parse? If not, one of
         * the next allocations (at most 255 away) still fails. */
        failed = true;
        for (int i = 0; i < 256 && failed; i++) {
            void *p = tg_malloc(1);

            if (!p)
                failed = false;
            tg_free(p);
        }
        tg_alloc_fail_after(0);
    }
    if (failed)
        CHECK(rc == TG_ENOMEM || rc == TG_EINVAL);
    if (rc == 0) {
        CHECK(cfg != NULL);
        check_config(cfg);
        tg_config_free(cfg);
    } else {
        CHECK(rc == TG_EINVAL || rc == TG_ENOMEM);
        CHECK(cfg == NULL);
        CHECK((data[0] & 0x10) || memchr(err, '\0', errlen) != NULL);
        if (!(data[0] & 0x10) && errlen >= 64)
            CHECK(err[0] != '\0'); /* an error always says what */
    }
    CHECK(tg_alloc_live() == live);
    free(text);
    free(err);
    return 0;
}

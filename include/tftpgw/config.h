/* include/tftpgw/config.h - the INI configuration (inih), validated once. */
#ifndef TFTPGW_CONFIG_H
#define TFTPGW_CONFIG_H

#include "tftpgw/keys.h"
#include "tftpgw/route.h"

enum tg_log_format { TG_LOG_TEXT = 0, TG_LOG_JSON = 1 };
enum tg_log_target { TG_LOG_STDERR = 0, TG_LOG_SYSLOG = 1 };

struct tg_server_cfg {
    char **listen;             /* "127.0.0.1:6969", "[::]:69"; default 0.0.0.0:69 and [::]:69 */
    size_t nlisten;
    unsigned port_lo, port_hi; /* session ports; 0, 0: kernel's ephemeral ports */
    unsigned max_sessions;     /* default 1000 */
    unsigned max_sessions_per_client; /* default 0: no limit */
    unsigned timeout_ms;       /* first retransmission interval without a timeout option; default 1000 */
    unsigned retries;          /* retransmissions before giving up; default 5 */
    unsigned max_blksize;      /* default 65464 */
    unsigned max_windowsize;   /* default 64, at most TG_WINDOW_MAX */
    size_t max_window_bytes;   /* default 4 MiB */
    unsigned rollover;         /* 0 (default) or 1 */
    char *user;                /* drop privileges to this user after bind; NULL: stay */
    int log_level;             /* enum tg_log_level; default info */
    enum tg_log_format log_format;
    enum tg_log_target log_target; /* stderr (journald) or syslog(3) */
    bool single_port;          /* serve every transfer from the listening socket */
    size_t single_port_window; /* single-port: windowsize x blksize cap; default 64 KiB */
    bool single_port_writes;   /* single-port: WRQs on the shared port too; default no */
    size_t client_rate;        /* bytes per second sent to one client address; 0: off */
    char *metrics_listen;      /* "127.0.0.1:9169": Prometheus endpoint; NULL: off */
    unsigned drain_timeout_s;  /* SIGTERM: seconds running transfers may take; default 30 */
    unsigned rate_limit;       /* requests per second per client address; 0: off */
    unsigned rate_burst;       /* bucket size; 0: twice rate_limit */
    char *chroot;              /* chroot here after bind (file backends only); NULL: none */
    unsigned workers;          /* event loops, one thread each; 0: auto; default 1 */
};

#define TG_WORKERS_MAX 64

struct tg_config {
    char *file;                /* NULL for the embedded default */
    struct tg_server_cfg server;
    struct tg_backend_cfg *backends;
    size_t nbackends;
    struct tg_route *routes;   /* in file order: first match wins */
    size_t nroutes;
};

/* Parse INI text. On error returns TG_EINVAL and writes
 * "FILE:LINE: [section] key: what is wrong" into err. Unknown sections or
 * [server]/[route] keys, bad values, duplicate names, a route naming a
 * missing backend, and a config without routes are all errors.
 * TG_ENOMEM when out of memory; tg_config_load also returns the negated
 * errno when the file cannot be opened or read. *out is NULL on error. */
int tg_config_parse_string(const char *text, const char *filename,
                           struct tg_config **out, char *err, size_t errlen);
int tg_config_load(const char *path, struct tg_config **out, char *err,
                   size_t errlen);

/* The embedded default for `tftpgw --root DIR`: one file backend "root" at
 * DIR and one route "default" matching everything, read-only unless write
 * is TG_WRITE_CREATE or TG_WRITE_OVERWRITE. */
struct tg_config *tg_config_embedded(const char *root, enum tg_write_mode write);

void tg_config_free(struct tg_config *cfg);

/* `--remap FILE` with --root: read FILE's rules into every route (the
 * embedded configuration has one). 0, or < 0 with "FILE:LINE: ..." in err. */
int tg_config_set_remap(struct tg_config *cfg, const char *file, char *err, size_t errlen);

/* Replace the listen list (--listen, and a reload under it); -1 when out
 * of memory. */
int tg_config_set_listen(struct tg_config *cfg, char *const *list, size_t n);



#endif

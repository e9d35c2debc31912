/* gateway/main.c - command line, configuration, privilege drop, the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "tftpgw/log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tftpgw --config FILE [options]\n"
            "       tftpgw --root DIR [options]\n"
            "\n"
            "  -c, --config FILE      INI configuration (see etc/tftpgw.ini)\n"
            "  -r, --root DIR         serve DIR with no config file (read-only unless --write)\n"
            "  -w, --write MODE       with --root: allow uploads, MODE create|overwrite\n"
            "  -l, --listen ADDR:PORT listen here instead of the configured addresses\n"
            "                         (repeatable; IPv6 as [addr]:port)\n"
            "  -p, --port-range LO:HI session ports (default: kernel ephemeral ports)\n"
            "      --check-config FILE validate FILE (backends included), print the\n"
            "                         effective settings and routes, exit 0 or 1\n"
            "      --allow-root       run as root although [server] user is not set\n"
            "  -v, --verbose          log every session transition (debug level)\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n");
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);

    if (!pw) {
        fprintf(stderr, "tftpgw: user '%s' not found\n", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        perror("tftpgw: dropping privileges");
        return -1;
    }
    tg_log(TG_LOG_INFO, "running as user %s", user);
    return 0;
}

/* Each session holds a socket, and a file or HTTP stream another
 * descriptor or two: the usual soft limit of 1024 would cap a storm. */
static void raise_fd_limit(unsigned max_sessions)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_sessions * 3 + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        tg_log(TG_LOG_WARN, "descriptor limit %llu is low for max_sessions = %u",
               (unsigned long long)rl.rlim_cur, max_sessions);
}

static const char *const write_names[] = { "off", "create", "overwrite" };

static void print_route(const struct tg_config *cfg, const struct tg_route *r)
{
    const char *type = "?";
    char cidr[INET6_ADDRSTRLEN + 8];

    for (size_t i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].name, r->backend) == 0)
            type = cfg->backends[i].type;
    printf("route %-12s match %s%s%s -> backend %s (%s), key \"%s\", read %s, write %s",
           r->name, r->match[0] ? "\"" : "", r->match[0] ? r->match : "(everything)",
           r->match[0] ? (r->is_glob ? "\" (glob)" : "\" (prefix)") : "", r->backend, type,
           r->key, r->read ? "yes" : "no", write_names[r->write]);
    if (r->max_size >= 0)
        printf(", max_size %lld", (long long)r->max_size);
    printf(", clients ");
    if (r->nallow == 0)
        printf("any");
    for (size_t i = 0; i < r->nallow; i++) {
        inet_ntop(r->allow[i].family, r->allow[i].addr, cidr, sizeof(cidr));
        printf("%s%s/%u", i ? " " : "", cidr, r->allow[i].bits);
    }
    printf("\n");
}

/* --check-config: parse, then build every backend on a private loop (their
 * own keys are checked there), and show what the gateway would run. */
static int check_config(const char *path)
{
    struct tg_config *cfg = NULL;
    const struct tg_server_cfg *sc;
    struct tg_server srv;
    uv_loop_t loop;
    char err[512];
    int rc;

    if (tg_config_load(path, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tftpgw: %s\n", err);
        return 1;
    }
    tg_log_init(TG_LOG_WARN, TG_LOG_TEXT, TG_LOG_STDERR);
    tg_backend_check_only = true;
    /* libuv's pool defaults to 4 threads, read by its first use: disk reads
     * that miss the page cache during a storm of 100s of sessions queue
     * behind each other there. An operator's own setting wins. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    uv_loop_init(&loop);
    rc = tg_server_init(&srv, &loop, cfg, err, sizeof(err));
    tg_server_close(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_server_free(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc != 0) {
        fprintf(stderr, "tftpgw: %s\n", err);
        tg_config_free(cfg);
        return 1;
    }
    sc = &cfg->server;
    printf("%s: OK\n", path);
    printf("listen");
    for (size_t i = 0; i < sc->nlisten; i++)
        printf(" %s", sc->listen[i]);
    printf("%s\n", sc->single_port ? " (single-port mode)" : "");
    if (sc->port_lo)
        printf("port_range %u:%u\n", sc->port_lo, sc->port_hi);
    printf("limits max_sessions %u, per client %u, rate_limit %u/s, blksize <= %u, "
           "windowsize <= %u, window <= %zu bytes, timeout %u ms, retries %u, drain %u s\n",
           sc->max_sessions, sc->max_sessions_per_client, sc->rate_limit, sc->max_blksize,
           sc->max_windowsize, sc->max_window_bytes, sc->timeout_ms, sc->retries,
           sc->drain_timeout_s);
    for (size_t i = 0; i < cfg->nbackends; i++)
        printf("backend %-10s type %s\n", cfg->backends[i].name, cfg->backends[i].type);
    for (size_t i = 0; i < cfg->nroutes; i++)
        print_route(cfg, &cfg->routes[i]);
    tg_config_free(cfg);
    return 0;
}

/* chroot is for file-only configurations: HTTP and S3 need the resolver,
 * CA certificates and more that a chroot would hide. */
static int enter_chroot(const struct tg_config *cfg)
{
    const char *dir = cfg->server.chroot;

    for (size_t i = 0; i < cfg->nbackends; i++) {
        if (strcmp(cfg->backends[i].type, "file") != 0) {
            fprintf(stderr, "tftpgw: chroot needs file backends only; [backend %s] is %s\n",
                    cfg->backends[i].name, cfg->backends[i].type);
            return -1;
        }
    }
    if (chroot(dir) != 0 || chdir("/") != 0) {
        fprintf(stderr, "tftpgw: chroot %s: %s\n", dir, strerror(errno));
        return -1;
    }
    tg_log(TG_LOG_INFO, "chroot %s (a reload reads the config file inside it)", dir);
    return 0;
}

static int set_listen(struct tg_config *cfg, char **list, size_t n)
{
    size_t i;

    for (i = 0; i < cfg->server.nlisten; i++)
        tg_free(cfg->server.listen[i]);
    tg_free(cfg->server.listen);
    cfg->server.listen = tg_calloc(n, sizeof(char *));
    if (!cfg->server.listen)
        return -1;
    cfg->server.nlisten = n;
    for (i = 0; i < n; i++)
        if (!(cfg->server.listen[i] = tg_strdup(list[i])))
            return -1;
    return 0;
}

/* What the command line asked for. */
struct cli {
    const char *config, *root, *range;
    enum tg_write_mode write;
    char *listen[16];
    size_t nlisten;
    int verbose, allow_root;
};

/* One option into o. -1: go on; otherwise the exit status. */
static int take_option(int c, struct cli *o)
{
    switch (c) {
    case 'c':
        o->config = optarg;
        return -1;
    case 'r':
        o->root = optarg;
        return -1;
    case 'w':
        if (!strcmp(optarg, "create"))
            o->write = TG_WRITE_CREATE;
        else if (!strcmp(optarg, "overwrite"))
            o->write = TG_WRITE_OVERWRITE;
        else {
            fprintf(stderr, "tftpgw: --write takes create or overwrite\n");
            return 2;
        }
        return -1;
    case 'l':
        if (o->nlisten == TG_ARRAY_LEN(o->listen)) {
            fprintf(stderr, "tftpgw: too many --listen\n");
            return 2;
        }
        o->listen[o->nlisten++] = optarg;
        return -1;
    case 'p':
        o->range = optarg;
        return -1;
    case 'v':
        o->verbose++;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    case 'V':
        printf("tftpgw %s\n", TG_VERSION);
        return 0;
    case 'C':
        return check_config(optarg);
    case 'R':
        o->allow_root = 1;
        return -1;
    default:
        usage(stderr);
        return 2;
    }
}

/* The command line into o. -1: go on; otherwise the exit status. */
static int parse_args(int argc, char **argv, struct cli *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"root", required_argument, NULL, 'r'},
        {"write", required_argument, NULL, 'w'},
        {"listen", required_argument, NULL, 'l'},
        {"port-range", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"check-config", required_argument, NULL, 'C'},
        {"allow-root", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0}};
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:r:w:l:p:vhV", longopts, NULL)) != -1)
        if ((rc = take_option(c, o)) >= 0)
            return rc;
    if (optind != argc || (!o->config == !o->root)) {
        fprintf(stderr, "tftpgw: give exactly one of --config FILE or --root DIR\n");
        usage(stderr);
        return 2;
    }
    if (o->write != TG_WRITE_OFF && !o->root) {
        fprintf(stderr, "tftpgw: --write goes with --root; a config file sets write per route\n");
        return 2;
    }
    return -1;
}

/* The configuration the command line names, with its overrides. NULL
 * with *status set when there is none to run. */
static struct tg_config *load_config(const struct cli *o, int *status)
{
    struct tg_config *cfg = NULL;
    char err[512];

    *status = 1;
    if (o->config) {
        if (tg_config_load(o->config, &cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "tftpgw: %s\n", err);
            return NULL;
        }
    } else if (!(cfg = tg_config_embedded(o->root, o->write))) {
        fprintf(stderr, "tftpgw: out of memory\n");
        return NULL;
    }
    if (o->nlisten && set_listen(cfg, (char **)o->listen, o->nlisten) != 0) {
        fprintf(stderr, "tftpgw: out of memory\n");
        return NULL;
    }
    if (o->range) {
        unsigned lo, hi;
        char extra;

        if (sscanf(o->range, "%u:%u%c", &lo, &hi, &extra) != 2 || lo == 0 || lo > hi ||
            hi > 65535) {
            fprintf(stderr, "tftpgw: --port-range takes LO:HI within 1..65535\n");
            *status = 2;
            return NULL;
        }
        cfg->server.port_lo = lo;
        cfg->server.port_hi = hi;
    }
    if (geteuid() == 0 && !cfg->server.user && !o->allow_root) {
        fprintf(stderr, "tftpgw: refusing to run as root: set [server] user = NAME to drop "
                        "privileges after binding, or pass --allow-root\n");
        tg_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* Bind, open the backends, drop privileges, run the loop until drained. */
static int run(struct tg_config *cfg, const struct cli *o)
{
    struct tg_server srv;
    char err[512];
    uv_loop_t loop;
    int rc;

    uv_loop_init(&loop);
    rc = tg_server_init(&srv, &loop, cfg, err, sizeof(err));
    srv.verbose = o->verbose > 0;
    if (o->range) {
        srv.cli_port_lo = cfg->server.port_lo;
        srv.cli_port_hi = cfg->server.port_hi;
    }
    if (rc == 0)
        rc = tg_server_start(&srv, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tftpgw: %s\n", err);
        tg_server_close(&srv);
        uv_run(&loop, UV_RUN_DEFAULT);
        tg_server_free(&srv);
        uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks of what the backends held */
        uv_loop_close(&loop);
        tg_config_free(cfg);
        return 1;
    }
    /* After binding port 69 and opening every backend's root. */
    if ((cfg->server.chroot && enter_chroot(cfg) != 0) ||
        (cfg->server.user && drop_privileges(cfg->server.user) != 0))
        return 1;
    tg_log(TG_LOG_INFO, "tftpgw %s ready (%s)", TG_VERSION,
           cfg->file ? cfg->file : "built-in configuration");
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_server_free(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc != 0)
        tg_log(TG_LOG_WARN, "loop did not close cleanly: %s", uv_strerror(rc));
    tg_log(TG_LOG_INFO, "stopped: %llu ok, %llu failed, %llu refused",
           (unsigned long long)srv.stats.transfers_ok,
           (unsigned long long)srv.stats.transfers_failed,
           (unsigned long long)srv.stats.requests_refused);
    tg_config_free(srv.cfg); /* the one running at the end: reloads freed the rest */
    return 0;
}

int main(int argc, char **argv)
{
    struct cli o = {.write = TG_WRITE_OFF};
    struct tg_config *cfg;
    int rc;

    /* Windows and large staging come from mmap and go back to the system
     * when a transfer ends. glibc would otherwise raise this threshold
     * after the first such free and carve later windows from the heap,
     * which a flood of big-window requests fragments for good. */
    (void)mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (!(cfg = load_config(&o, &rc)))
        return rc;
    tg_log_init(o.verbose ? TG_LOG_DEBUG : cfg->server.log_level, cfg->server.log_format,
                cfg->server.log_target);
    raise_fd_limit(cfg->server.max_sessions);
    /* A client that vanishes must not kill us through a failed send. */
    signal(SIGPIPE, SIG_IGN);
    /* libuv's pool defaults to 4 threads, read by its first use: disk reads
     * that miss the page cache during a storm of 100s of sessions queue
     * behind each other there. An operator's own setting wins. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    return run(cfg, &o);
}

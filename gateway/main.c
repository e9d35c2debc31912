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
#include "liveview.h"
#include "workers.h"
#include "tftpgw/metrics.h"
#include "tftpgw/log.h"
#include "tftpgw/remap.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tftpgw --config FILE [options]\n"
            "       tftpgw --root DIR [options]\n"
            "\n"
            "  -c, --config FILE      INI configuration (see etc/tftpgw.ini)\n"
            "  -r, --root DIR         serve DIR with no config file (read-only unless --write)\n"
            "  -w, --write MODE       with --root: allow uploads, MODE create|overwrite\n"
            "  -m, --remap FILE       with --root: tftpd-hpa filename remapping rules\n"
            "                         (re-read on SIGHUP)\n"
            "  -l, --listen ADDR:PORT listen here instead of the configured addresses\n"
            "                         (repeatable; IPv6 as [addr]:port)\n"
            "  -p, --port-range LO:HI session ports (default: kernel ephemeral ports)\n"
            "      --check-config FILE validate FILE (backends included), print the\n"
            "                         effective settings and routes, exit 0 or 1\n"
            "  -u, --user NAME        drop to NAME after binding (overrides [server] user)\n"
            "      --allow-root       keep running as root when no user is set (started as\n"
            "                         root, tftpgw otherwise drops to tftpgw or nobody)\n"
            "  -v, --verbose          log every session transition (debug level)\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n");
}

/* Who to run as once bound: --user, else [server] user; started as root
 * with neither, the system user tftpgw when there is one, else nobody
 * (tftpd-hpa's habit), unless --allow-root keeps root. NULL: stay. */
static const char *run_as(const struct tg_config *cfg, const char *cli_user, bool allow_root)
{
    if (cli_user)
        return cli_user;
    if (cfg->server.user)
        return cfg->server.user;
    if (geteuid() != 0 || allow_root)
        return NULL;
    return getpwnam("tftpgw") ? "tftpgw" : "nobody";
}

static int drop_privileges(const char *user, bool by_default)
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
    if (by_default)
        tg_log(TG_LOG_INFO, "running as user %s: started as root with no user set "
               "(-u NAME or [server] user chooses, --allow-root keeps root)", user);
    else
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

static const char *const case_names[] = { "exact", "lower", "insensitive" };

static const char *backend_type(const struct tg_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].name, name) == 0)
            return cfg->backends[i].type;
    return "?";
}

static void print_route(const struct tg_config *cfg, const struct tg_route *r)
{
    char cidr[INET6_ADDRSTRLEN + 8];

    printf("route %-12s match %s%s%s -> backend ", r->name, r->match[0] ? "\"" : "",
           r->match[0] ? r->match : "(everything)",
           r->match[0] ? (r->is_glob ? "\" (glob)" : "\" (prefix)") : "");
    /* Layers in the order reads try them; writes go to the first. */
    for (size_t i = 0; i < tg_route_nbackends(r); i++)
        printf("%s%s (%s)", i ? ", then " : "", tg_route_backend_at(r, i),
               backend_type(cfg, tg_route_backend_at(r, i)));
    printf(", key \"%s\", case %s, read %s, write %s", r->key, case_names[r->name_case],
           r->read ? "yes" : "no", write_names[r->write]);
    if (r->max_size >= 0)
        printf(", max_size %lld", (long long)r->max_size);
    printf(", clients ");
    if (r->nallow == 0)
        printf("any");
    for (size_t i = 0; i < r->nallow; i++) {
        inet_ntop(r->allow[i].family, r->allow[i].addr, cidr, sizeof(cidr));
        printf("%s%s/%u", i ? " " : "", cidr, r->allow[i].bits);
    }
    if (r->remap_file)
        printf(", remap %s (%zu rules)", r->remap_file, tg_remap_count(r->remap));
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
    char err[512], t1[24], t2[24];
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
    rc = tg_server_init(&srv, &loop, cfg, NULL, err, sizeof(err));
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
    if (sc->workers)
        printf("workers %u\n", sc->workers);
    else
        printf("workers auto\n");
    if (sc->port_lo)
        printf("port_range %u:%u\n", sc->port_lo, sc->port_hi);
    printf("limits max_sessions %u, per client %u, rate_limit %u/s, blksize <= %u, "
           "windowsize <= %u, window <= %zu bytes, timeout %s, retries %u, drain %s\n",
           sc->max_sessions, sc->max_sessions_per_client, sc->rate_limit, sc->max_blksize,
           sc->max_windowsize, sc->max_window_bytes,
           tg_duration_fmt(sc->timeout_ms, t1, sizeof(t1)), sc->retries,
           tg_duration_fmt((uint64_t)sc->drain_timeout_s * 1000, t2, sizeof(t2)));
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

struct args {
    const char *config, *root, *range, *user, *remap;
    enum tg_write_mode write;
    char *listen[16];
    size_t nlisten;
    int verbose, allow_root;
};

/* The command line into a; -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
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
        {"user", required_argument, NULL, 'u'},
        {"remap", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0}};
    int c;

    while ((c = getopt_long(argc, argv, "c:r:w:l:p:u:m:vhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'r':
            a->root = optarg;
            break;
        case 'w':
            if (!strcmp(optarg, "create"))
                a->write = TG_WRITE_CREATE;
            else if (!strcmp(optarg, "overwrite"))
                a->write = TG_WRITE_OVERWRITE;
            else {
                fprintf(stderr, "tftpgw: --write takes create or overwrite\n");
                return 2;
            }
            break;
        case 'l':
            if (a->nlisten == TG_ARRAY_LEN(a->listen)) {
                fprintf(stderr, "tftpgw: too many --listen\n");
                return 2;
            }
            a->listen[a->nlisten++] = optarg;
            break;
        case 'p':
            a->range = optarg;
            break;
        case 'v':
            a->verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("tftpgw %s\n", TG_VERSION);
            return 0;
        case 'C':
            return check_config(optarg);
        case 'R':
            a->allow_root = 1;
            break;
        case 'u':
            a->user = optarg;
            break;
        case 'm':
            a->remap = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (!a->config == !a->root)) {
        fprintf(stderr, "tftpgw: give exactly one of --config FILE or --root DIR\n");
        usage(stderr);
        return 2;
    }
    if (a->write != TG_WRITE_OFF && !a->root) {
        fprintf(stderr, "tftpgw: --write goes with --root; a config file sets write per route\n");
        return 2;
    }
    if (a->remap && !a->root) {
        fprintf(stderr, "tftpgw: --remap goes with --root; a config file sets remap per route\n");
        return 2;
    }
    return -1;
}

/* The configuration the command line asks for; 0 or the exit status. */
static int load_config(const struct args *a, struct tg_config **out)
{
    struct tg_config *cfg = NULL;
    char err[512];

    if (a->config) {
        if (tg_config_load(a->config, &cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "tftpgw: %s\n", err);
            return 1;
        }
    } else if (!(cfg = tg_config_embedded(a->root, a->write))) {
        fprintf(stderr, "tftpgw: out of memory\n");
        return 1;
    } else if (a->remap && tg_config_set_remap(cfg, a->remap, err, sizeof(err)) != 0) {
        fprintf(stderr, "tftpgw: --remap %s\n", err);
        tg_config_free(cfg);
        return 1;
    }
    *out = cfg;
    if (a->nlisten && tg_config_set_listen(cfg, a->listen, a->nlisten) != 0) {
        fprintf(stderr, "tftpgw: out of memory\n");
        return 1;
    }
    if (a->range) {
        unsigned lo, hi;
        char extra;

        if (sscanf(a->range, "%u:%u%c", &lo, &hi, &extra) != 2 || lo == 0 || lo > hi ||
            hi > 65535) {
            fprintf(stderr, "tftpgw: --port-range takes LO:HI within 1..65535\n");
            return 2;
        }
        cfg->server.port_lo = lo;
        cfg->server.port_hi = hi;
    }
    return 0;
}

/* After a failed start: whatever started stops, the loops run dry. */
static int serve_failed(struct tg_workers *ws, uv_loop_t *loop, const char *err)
{
    struct tg_server *srv = &ws->w[0].srv;

    fprintf(stderr, "tftpgw: %s\n", err);
    tg_workers_post_close(ws);
    tg_server_close(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    tg_workers_join(ws);
    tg_server_free(srv);
    uv_run(loop, UV_RUN_DEFAULT); /* close callbacks of what the backends held */
    uv_loop_close(loop);
    tg_config_free(srv->rt.cfg);
    tg_workers_free(ws);
    return 1;
}

/* Bind, drop privileges, run the loops until every worker has shut down. */
static int serve(struct tg_config *cfg, const struct args *a)
{
    struct tg_workers *ws;
    struct tg_server *srv;
    struct tg_stats st = {0};
    const char *user;
    char err[512];
    uv_loop_t loop;
    int rc, passed = tg_server_passed_sockets();
    unsigned n = tg_workers_count(cfg, passed);

    tg_backend_workers = n;
    if (!(ws = tg_workers_new(cfg, n, passed))) {
        fprintf(stderr, "tftpgw: out of memory\n");
        tg_config_free(cfg);
        return 1;
    }
    srv = &ws->w[0].srv;
    tg_metrics_set_worker(0);
    uv_loop_init(&loop);
    rc = tg_server_init(srv, &loop, cfg, &ws->w[0], err, sizeof(err));
    if (rc == 0 && (rc = tg_workers_attach_main(ws, &loop)) != 0)
        snprintf(err, sizeof(err), "cannot start worker 0");
    srv->verbose = a->verbose > 0;
    srv->cli_listen = a->nlisten > 0;
    if (a->range) {
        srv->cli_port_lo = cfg->server.port_lo;
        srv->cli_port_hi = cfg->server.port_hi;
    }
    if (rc == 0)
        rc = tg_server_start(srv, err, sizeof(err));
    /* Worker i's sockets join each SO_REUSEPORT group after worker i-1's. */
    if (rc == 0)
        rc = tg_workers_spawn(ws, err, sizeof(err));
    if (rc != 0)
        return serve_failed(ws, &loop, err);
    /* After binding port 69 and opening every backend's root. */
    user = run_as(cfg, a->user, a->allow_root);
    if ((cfg->server.chroot && enter_chroot(cfg) != 0) ||
        (user && drop_privileges(user, !a->user && !cfg->server.user) != 0))
        return 1;
    tg_log(TG_LOG_INFO, "%u worker%s", ws->n, ws->n == 1 ? "" : "s");
    tg_log(TG_LOG_INFO, "tftpgw %s ready (%s)", TG_VERSION,
           cfg->file ? cfg->file : "built-in configuration");
    uv_run(&loop, UV_RUN_DEFAULT);
    tg_workers_join(ws);
    tg_server_free(srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    if (rc != 0)
        tg_log(TG_LOG_WARN, "loop did not close cleanly: %s", uv_strerror(rc));
    for (unsigned i = 0; i < ws->n; i++) {
        st.transfers_ok += ws->w[i].srv.rt.stats.transfers_ok;
        st.transfers_failed += ws->w[i].srv.rt.stats.transfers_failed;
        st.transfers_declined += ws->w[i].srv.rt.stats.transfers_declined;
        st.requests_refused += ws->w[i].srv.rt.stats.requests_refused;
    }
    tg_log(TG_LOG_INFO, "stopped: %llu ok, %llu failed, %llu declined, %llu refused",
           (unsigned long long)st.transfers_ok, (unsigned long long)st.transfers_failed,
           (unsigned long long)st.transfers_declined, (unsigned long long)st.requests_refused);
    tg_config_free(srv->rt.cfg); /* the one running at the end: reloads freed the rest */
    tg_workers_free(ws);
    tg_liveview_free();
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {.write = TG_WRITE_OFF};
    struct tg_config *cfg = NULL;
    int rc;

    /* Windows and large staging come from mmap and go back to the system
     * when a transfer ends. glibc would otherwise raise this threshold
     * after the first such free and carve later windows from the heap,
     * which a flood of big-window requests fragments for good. */
    (void)mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    if ((rc = parse_args(argc, argv, &a)) >= 0)
        return rc;
    if ((rc = load_config(&a, &cfg)) != 0)
        return rc;
    tg_log_init(a.verbose ? TG_LOG_DEBUG : cfg->server.log_level, cfg->server.log_format,
                cfg->server.log_target);
    raise_fd_limit(cfg->server.max_sessions);
    /* A client that vanishes must not kill us through a failed send. */
    signal(SIGPIPE, SIG_IGN);
    /* libuv's pool defaults to 4 threads, read by its first use: disk reads
     * that miss the page cache during a storm of 100s of sessions queue
     * behind each other there. An operator's own setting wins. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    return serve(cfg, &a);
}

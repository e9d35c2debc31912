/* tests/unit/test_metrics.c - the metrics registry, its exact text
 * exposition, and the HTTP endpoint driven by real sockets on loopback. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/common.h"
#include "tftpgw/metrics.h"

static long live_at_start;

static int setup(void **state)
{
    (void)state;
    tg_metrics_reset();
    live_at_start = tg_alloc_live();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tg_metrics_reset();
    /* Every series, interned value and rendered page was given back. */
    assert_int_equal(tg_alloc_live(), live_at_start);
    return 0;
}

static char *render(void)
{
    size_t len = 0;
    char *p = tg_metrics_render(&len);

    assert_non_null(p);
    assert_int_equal(len, strlen(p));
    return p;
}

/* Lines of the page that start with prefix, concatenated. */
static void lines_with(const char *page, const char *prefix, char *out, size_t cap)
{
    const char *p = page;
    size_t n = 0;

    out[0] = '\0';
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p + 1) : strlen(p);

        if (!strncmp(p, prefix, strlen(prefix))) {
            assert_true(n + ll < cap);
            memcpy(out + n, p, ll);
            n += ll;
            out[n] = '\0';
        }
        p += ll;
    }
}

#define H_BUILD "# HELP tftpgw_build_info The running tftpgw's version; the value is always 1.\n" \
                "# TYPE tftpgw_build_info gauge\n"
#define H_STARTED "# HELP tftpgw_transfers_started_total Transfers whose session was created " \
                  "(request accepted and routed).\n" \
                  "# TYPE tftpgw_transfers_started_total counter\n"
#define H_FINISHED "# HELP tftpgw_transfers_finished_total Transfers that ended, by result " \
                   "(docs/metrics.md lists the results).\n" \
                   "# TYPE tftpgw_transfers_finished_total counter\n"
#define H_ACTIVE "# HELP tftpgw_active_sessions Transfers in progress (including uploads " \
                 "dallying for a lost final ACK).\n# TYPE tftpgw_active_sessions gauge\n"
#define H_SENT "# HELP tftpgw_bytes_sent_total DATA payload bytes sent to clients, " \
               "retransmissions included.\n# TYPE tftpgw_bytes_sent_total counter\n"
#define H_RECV "# HELP tftpgw_bytes_received_total DATA payload bytes accepted from clients " \
               "(duplicates not counted).\n# TYPE tftpgw_bytes_received_total counter\n"
#define H_RETR "# HELP tftpgw_retransmissions_total Timeouts after which a session resent " \
               "its window, OACK or ACK.\n# TYPE tftpgw_retransmissions_total counter\n"
#define H_WORKER "# HELP tftpgw_worker_transfers_total Transfers that ended, by the worker " \
                 "loop that ran them ([server] workers).\n" \
                 "# TYPE tftpgw_worker_transfers_total counter\n"
#define H_WACTIVE "# HELP tftpgw_worker_active_sessions Transfers in progress, by worker " \
                  "loop.\n# TYPE tftpgw_worker_active_sessions gauge\n"
#define H_REFUSED "# HELP tftpgw_requests_refused_total Requests answered with an ERROR " \
                  "before any session existed, by reason.\n" \
                  "# TYPE tftpgw_requests_refused_total counter\n"
#define H_LAT "# HELP tftpgw_backend_request_duration_seconds Time from asking a backend to " \
              "open or commit a stream to its answer.\n" \
              "# TYPE tftpgw_backend_request_duration_seconds histogram\n"
#define H_CACHE "# HELP tftpgw_cache_events_total Cache backend events: hit, miss, " \
                "revalidation, stale, eviction.\n# TYPE tftpgw_cache_events_total counter\n"

static void test_empty(void **state)
{
    static const char want[] =
        H_BUILD "tftpgw_build_info{version=\"" TG_VERSION "\"} 1\n"
        H_STARTED H_FINISHED
        H_ACTIVE "tftpgw_active_sessions 0\n"
        H_SENT "tftpgw_bytes_sent_total 0\n"
        H_RECV "tftpgw_bytes_received_total 0\n"
        H_RETR "tftpgw_retransmissions_total 0\n"
        H_WORKER "tftpgw_worker_transfers_total{worker=\"0\"} 0\n"
        H_WACTIVE "tftpgw_worker_active_sessions{worker=\"0\"} 0\n"
        H_REFUSED H_LAT H_CACHE;
    char *p;

    (void)state;
    p = render();
    assert_string_equal(p, want);
    tg_free(p);
}

static void test_exact(void **state)
{
    /* Series come out sorted by label values, whatever the update order. */
    static const char want[] =
        H_BUILD "tftpgw_build_info{version=\"" TG_VERSION "\"} 1\n"
        H_STARTED
        "tftpgw_transfers_started_total{op=\"rrq\",route=\"all\"} 2\n"
        "tftpgw_transfers_started_total{op=\"wrq\",route=\"rw\"} 1\n"
        H_FINISHED
        "tftpgw_transfers_finished_total{op=\"rrq\",route=\"all\",result=\"not_found\"} 1\n"
        "tftpgw_transfers_finished_total{op=\"rrq\",route=\"all\",result=\"ok\"} 1\n"
        H_ACTIVE "tftpgw_active_sessions 1\n"
        H_SENT "tftpgw_bytes_sent_total 1024\n"
        H_RECV "tftpgw_bytes_received_total 513\n"
        H_RETR "tftpgw_retransmissions_total 2\n"
        H_WORKER "tftpgw_worker_transfers_total{worker=\"0\"} 2\n"
        H_WACTIVE "tftpgw_worker_active_sessions{worker=\"0\"} 1\n"
        H_REFUSED
        "tftpgw_requests_refused_total{reason=\"busy\"} 2\n"
        "tftpgw_requests_refused_total{reason=\"denied\"} 1\n"
        H_LAT
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.001\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.0025\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.005\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.01\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.025\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.05\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.1\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.25\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"0.5\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"1\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"2.5\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"5\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"10\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"30\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"files\",le=\"+Inf\"} 2\n"
        "tftpgw_backend_request_duration_seconds_sum{backend=\"files\"} 0.2509765625\n"
        "tftpgw_backend_request_duration_seconds_count{backend=\"files\"} 2\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.001\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.0025\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.005\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.01\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.025\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.05\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.1\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.25\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"0.5\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"1\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"2.5\"} 0\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"5\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"10\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"30\"} 1\n"
        "tftpgw_backend_request_duration_seconds_bucket{backend=\"web\",le=\"+Inf\"} 1\n"
        "tftpgw_backend_request_duration_seconds_sum{backend=\"web\"} 3\n"
        "tftpgw_backend_request_duration_seconds_count{backend=\"web\"} 1\n"
        H_CACHE
        "tftpgw_cache_events_total{cache=\"edge\",event=\"hit\"} 2\n"
        "tftpgw_cache_events_total{cache=\"edge\",event=\"miss\"} 1\n";
    char *p;

    (void)state;
    tg_metrics_transfer_started("wrq", "rw");
    tg_metrics_transfer_started("rrq", "all");
    tg_metrics_transfer_started("rrq", "all");
    tg_metrics_transfer_finished("rrq", "all", "ok");
    tg_metrics_transfer_finished("rrq", "all", "not_found");
    tg_metrics_bytes_sent(1000);
    tg_metrics_bytes_sent(24);
    tg_metrics_bytes_received(513);
    tg_metrics_retransmits(1);
    tg_metrics_retransmits(1);
    tg_metrics_request_refused("denied");
    tg_metrics_request_refused("busy");
    tg_metrics_request_refused("busy");
    tg_metrics_backend_latency("web", 3);
    tg_metrics_backend_latency("files", 0.0009765625); /* 2^-10: sums exactly */
    tg_metrics_backend_latency("files", 0.25);         /* on a bound: le is inclusive */
    tg_metrics_cache_event("edge", "miss");
    tg_metrics_cache_event("edge", "hit");
    tg_metrics_cache_event("edge", "hit");
    p = render();
    assert_string_equal(p, want);
    tg_free(p);
}

static void test_escaping(void **state)
{
    char *p, got[512];

    (void)state;
    tg_metrics_cache_event("back\\slash \"quoted\"\nnext line", "hit");
    p = render();
    lines_with(p, "tftpgw_cache_events_total{", got, sizeof(got));
    assert_string_equal(got, "tftpgw_cache_events_total{cache=\"back\\\\slash \\\"quoted\\\""
                             "\\nnext line\",event=\"hit\"} 1\n");
    tg_free(p);
}

static void test_buckets(void **state)
{
    static const struct {
        double v;
        const char *first_le; /* the lowest bucket that counts it */
    } cases[] = {
        {0, "0.001"},      {0.001, "0.001"}, {0.0010001, "0.0025"}, {0.02, "0.025"},
        {0.9999, "1"},     {1, "1"},         {29.5, "30"},          {30, "30"},
        {30.001, "+Inf"},  {1e9, "+Inf"},    {-1, "0.001"}, /* clock going back: 0 */
    };
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
        char *p, want[160], below[240];
        const char *les[] = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                             "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"};
        size_t k;
        bool reached = false;

        tg_metrics_reset();
        tg_metrics_backend_latency("b", cases[i].v);
        p = render();
        for (k = 0; k < TG_ARRAY_LEN(les); k++) {
            if (!strcmp(les[k], cases[i].first_le))
                reached = true;
            snprintf(want, sizeof(want),
                     "tftpgw_backend_request_duration_seconds_bucket{backend=\"b\",le=\"%s\"} %d\n",
                     les[k], reached ? 1 : 0);
            snprintf(below, sizeof(below), "case %zu (%g): %s", i, cases[i].v, want);
            if (!strstr(p, want))
                fail_msg("missing %s", below);
        }
        assert_true(reached);
        assert_non_null(strstr(p, "tftpgw_backend_request_duration_seconds_count{backend=\"b\"} 1\n"));
        tg_free(p);
    }
}

static void test_overflow(void **state)
{
    char name[32], line[128], *p;
    int i;

    (void)state;
    for (i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "r%03d", i);
        tg_metrics_transfer_started("rrq", name);
    }
    /* A real value spelt "other" shares the overflow series. */
    tg_metrics_transfer_started("rrq", "other");
    /* Once full, a value seen before still has its own series. */
    tg_metrics_transfer_started("rrq", "r007");
    p = render();
    for (i = 0; i < 300; i++) {
        snprintf(line, sizeof(line), "tftpgw_transfers_started_total{op=\"rrq\",route=\"r%03d\"} %d\n",
                 i, i == 7 ? 2 : 1);
        if (i < TG_METRICS_MAX_VALUES)
            assert_non_null(strstr(p, line));
        else
            assert_null(strstr(p, line));
    }
    assert_non_null(strstr(p, "tftpgw_transfers_started_total{op=\"rrq\",route=\"other\"} 45\n"));
    /* ...and appears once only. */
    assert_null(strstr(strstr(p, "route=\"other\"") + 1, "route=\"other\""));
    assert_non_null(strstr(p, "tftpgw_active_sessions 302\n"));
    tg_free(p);
}

static void test_out_of_memory(void **state)
{
    char *p;
    size_t len = 7;

    (void)state;
    tg_metrics_cache_event("c", "hit");
    /* A new value that cannot be interned is counted as "other"... */
    tg_alloc_fail_after(1);
    tg_metrics_cache_event("c2", "hit");
    tg_alloc_fail_after(0);
    p = render();
    assert_non_null(strstr(p, "tftpgw_cache_events_total{cache=\"other\",event=\"hit\"} 1\n"));
    tg_free(p);
    /* ...and a page that cannot be built is NULL, not a crash. */
    tg_alloc_fail_after(1);
    assert_null(tg_metrics_render(&len));
    tg_alloc_fail_after(0);
    assert_int_equal(len, 7);
}

static void test_result_mapping(void **state)
{
    static const struct {
        const char *outcome;
        unsigned code;
        bool shutdown;
        const char *want;
    } cases[] = {
        {"ok", 0, false, "ok"},
        {"ok", 0, true, "ok"},
        {"unconfirmed", 0, false, "unconfirmed"},
        {"timeout", 0, false, "timeout"},
        {"declined", 8, false, "declined"},
        {"aborted", 0, false, "cancelled"},
        {"superseded", 0, false, "superseded"},
        {"error", 0, false, "backend_error"},
        {"error", 0, true, "shutdown"},
        {"error", 1, true, "not_found"},
        {"error", 1, false, "not_found"},
        {"error", 2, false, "access_denied"},
        {"error", 3, false, "disk_full"},
        {"error", 4, false, "illegal"},
        {"error", 5, false, "unknown_tid"},
        {"error", 6, false, "exists"},
        {"error", 7, false, "no_user"},
        {"error", 8, false, "options_refused"},
        {"error", 9, false, "other"},
        {"something new", 0, false, "other"},
        {NULL, 0, false, "other"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(cases); i++)
        assert_string_equal(tg_metrics_result(cases[i].outcome, cases[i].code, cases[i].shutdown),
                            cases[i].want);
    assert_string_equal(tg_metrics_refusal(0), "error");
    assert_string_equal(tg_metrics_refusal(1), "not_found");
    assert_string_equal(tg_metrics_refusal(2), "denied");
    assert_string_equal(tg_metrics_refusal(3), "too_large");
    assert_string_equal(tg_metrics_refusal(4), "bad_request");
    assert_string_equal(tg_metrics_refusal(8), "options_refused");
    assert_string_equal(tg_metrics_refusal(6), "error");
}

/* ------------------------------------------------------------ HTTP */

struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_timer_t delay;     /* start after this many ms (0: at once) */
    uint64_t delay_ms;
    const char *bind_ip;  /* source address (NULL: the kernel's choice) */
    const char *send;
    size_t send_len;
    char resp[1 << 16];
    size_t len;
    bool closed;
    int read_status;      /* UV_EOF for an orderly close */
    uint64_t closed_at;
};

static uv_loop_t loop;
static uint64_t loop_start; /* uv_now when run_clients started */
static struct client *clients;
static size_t nclients;
static uv_timer_t watchdog;
static bool watchdog_fired;
static int port;

static void all_done_check(void)
{
    size_t i;

    for (i = 0; i < nclients; i++)
        if (!clients[i].closed)
            return;
    tg_metrics_close();
    uv_close((uv_handle_t *)&watchdog, NULL);
}

static void client_closed(uv_handle_t *h)
{
    struct client *c = h->data;

    c->closed = true;
    c->closed_at = uv_now(&loop);
    all_done_check();
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->resp + c->len, (unsigned)(sizeof(c->resp) - 1 - c->len));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;

    (void)buf;
    if (nread < 0) {
        c->read_status = (int)nread;
        uv_close((uv_handle_t *)&c->tcp, client_closed);
        return;
    }
    c->len += (size_t)nread;
    c->resp[c->len] = '\0';
}

static void client_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void client_connected(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    assert_int_equal(status, 0);
    if (c->send_len) {
        uv_buf_t b = uv_buf_init((char *)c->send, (unsigned)c->send_len);

        assert_int_equal(uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, client_written), 0);
    }
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read), 0);
}

static void client_start(uv_timer_t *t)
{
    struct client *c = t->data;
    struct sockaddr_in sa;

    uv_close((uv_handle_t *)&c->delay, NULL);
    if (c->bind_ip) {
        uv_ip4_addr(c->bind_ip, 0, &sa);
        assert_int_equal(uv_tcp_bind(&c->tcp, (struct sockaddr *)&sa, 0), 0);
    }
    uv_ip4_addr("127.0.0.1", port, &sa);
    c->conn.data = c;
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&sa, client_connected), 0);
}

static void on_watchdog(uv_timer_t *t)
{
    size_t i;

    (void)t;
    watchdog_fired = true;
    for (i = 0; i < nclients; i++)
        if (!uv_is_closing((uv_handle_t *)&clients[i].tcp))
            uv_close((uv_handle_t *)&clients[i].tcp, client_closed);
}

/* Serve on a free port, run every client to its close, then close the
 * endpoint; the loop must then close cleanly. */
static void run_clients(struct client *cs, size_t n)
{
    char err[256];
    size_t i;

    clients = cs;
    nclients = n;
    watchdog_fired = false;
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_start = uv_now(&loop);
    assert_int_equal(tg_metrics_serve(&loop, "127.0.0.1:0", err, sizeof(err)), 0);
    port = tg_metrics_port();
    assert_true(port > 0);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 5000, 0);
    for (i = 0; i < n; i++) {
        cs[i].tcp.data = &cs[i];
        cs[i].delay.data = &cs[i];
        uv_tcp_init(&loop, &cs[i].tcp);
        uv_timer_init(&loop, &cs[i].delay);
        uv_timer_start(&cs[i].delay, client_start, cs[i].delay_ms, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(watchdog_fired);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(tg_metrics_port(), -1);
}

static struct client *new_clients(size_t n)
{
    struct client *cs = calloc(n, sizeof(*cs));

    assert_non_null(cs);
    return cs;
}

static void set_req(struct client *c, const char *req)
{
    c->send = req;
    c->send_len = strlen(req);
}

static const char *body_of(const struct client *c)
{
    const char *b = strstr(c->resp, "\r\n\r\n");

    assert_non_null(b);
    return b + 4;
}

static void test_http_answers(void **state)
{
    struct client *cs = new_clients(7);
    char *page, want[128];

    (void)state;
    tg_metrics_transfer_started("rrq", "all");
    set_req(&cs[0], "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    set_req(&cs[1], "GET /other HTTP/1.1\r\n\r\n");
    set_req(&cs[2], "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    set_req(&cs[3], "HELLO\r\n\r\n");
    set_req(&cs[4], "GET /metrics?x=1 HTTP/1.0\n\n"); /* bare LF, a query */
    set_req(&cs[5], "HEAD /metrics HTTP/1.1\r\n\r\n");
    set_req(&cs[6], "GET /metricsx HTTP/1.1\r\n\r\n");
    /* Seven clients from seven addresses: from one they would meet the
     * per-client cap (test_http_per_client_cap) whenever the server is
     * slow to close (under valgrind), which is not what this test checks. */
    static const char *const ips[] = {"127.0.0.31", "127.0.0.32", "127.0.0.33", "127.0.0.34",
                                      "127.0.0.35", "127.0.0.36", "127.0.0.37"};
    for (size_t i = 0; i < 7; i++) {
        cs[i].bind_ip = ips[i];
        cs[i].delay_ms = 15 * i;
    }
    run_clients(cs, 7);

    page = render();
    assert_non_null(strstr(cs[0].resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(page));
    assert_non_null(strstr(cs[0].resp, want));
    assert_string_equal(body_of(&cs[0]), page);
    assert_int_equal(cs[0].read_status, UV_EOF);
    assert_true(!strncmp(cs[1].resp, "HTTP/1.1 404 Not Found\r\n", 24));
    assert_true(!strncmp(cs[2].resp, "HTTP/1.1 405 Method Not Allowed\r\n", 33));
    assert_non_null(strstr(cs[2].resp, "\r\nAllow: GET, HEAD\r\n"));
    assert_true(!strncmp(cs[3].resp, "HTTP/1.1 400 Bad Request\r\n", 26));
    assert_true(!strncmp(cs[4].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(&cs[4]), page);
    assert_true(!strncmp(cs[5].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(&cs[5]), ""); /* HEAD: the length, no body */
    assert_non_null(strstr(cs[5].resp, want));
    assert_true(!strncmp(cs[6].resp, "HTTP/1.1 404 Not Found\r\n", 24));
    tg_free(page);
    free(cs);
}

static void test_http_head_too_large(void **state)
{
    struct client *cs = new_clients(1);
    static char big[8192];

    (void)state;
    memcpy(big, "GET /metrics HTTP/1.1\r\nX-Pad: ", 30);
    memset(big + 30, 'a', sizeof(big) - 30); /* never a blank line */
    cs[0].send = big;
    cs[0].send_len = sizeof(big);
    run_clients(cs, 1);
    assert_true(!strncmp(cs[0].resp, "HTTP/1.1 431 ", 13));
    free(cs);
}

static void test_http_timeout_and_cap(void **state)
{
    struct client *cs = new_clients(3);
    uint64_t t0, saved_timeout = tg_metrics_conn_timeout_ms;
    unsigned saved_max = tg_metrics_max_conns;

    (void)state;
    tg_metrics_conn_timeout_ms = 300;
    tg_metrics_max_conns = 1;
    /* 0: says half a request and stalls in the only slot. 1: a good
     * request; with the endpoint full it takes 0's slot (0 never finished
     * its head) and is answered. */
    set_req(&cs[0], "GET /metrics HTTP/1.1\r\n");
    cs[1].delay_ms = 50;
    set_req(&cs[1], "GET /metrics HTTP/1.1\r\n\r\n");
    /* 2: connects and never writes. */
    cs[2].delay_ms = 60;
    t0 = uv_hrtime();
    run_clients(cs, 3);
    tg_metrics_conn_timeout_ms = saved_timeout;
    tg_metrics_max_conns = saved_max;

    assert_int_equal(cs[0].len, 0);
    assert_int_equal(cs[0].read_status, UV_EOF);
    assert_true(!strncmp(cs[1].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_true(cs[1].closed_at >= cs[0].closed_at);
    assert_int_equal(cs[2].len, 0);
    assert_int_equal(cs[2].read_status, UV_EOF);
    /* 0 is closed at ~50 ms for 1; 2 waits while 1 is answered, then
     * times out itself ~300 ms after it was accepted. */
    assert_true(cs[2].closed_at >= cs[0].closed_at + 250);
    assert_true((uv_hrtime() - t0) / 1000000 < 3000);
    free(cs);
}

/* ms after run_clients started that client c was closed */
static uint64_t closed_after(const struct client *c)
{
    return c->closed_at - loop_start;
}

/* Six silent connections from one address: four are kept (until the head
 * timeout), two closed at once; a scrape from another address is served
 * in the meantime. */
static void test_http_per_client_cap(void **state)
{
    struct client *cs = new_clients(7);
    uint64_t saved_head = tg_metrics_head_timeout_ms;
    unsigned i, early = 0, late = 0;

    (void)state;
    tg_metrics_head_timeout_ms = 600;
    for (i = 0; i < 6; i++)
        cs[i].delay_ms = i;
    cs[6].bind_ip = "127.0.0.2";
    cs[6].delay_ms = 150;
    set_req(&cs[6], "GET /metrics HTTP/1.1\r\n\r\n");
    run_clients(cs, 7);
    tg_metrics_head_timeout_ms = saved_head;

    for (i = 0; i < 6; i++) {
        assert_int_equal(cs[i].len, 0);
        assert_int_equal(cs[i].read_status, UV_EOF);
        if (closed_after(&cs[i]) < 150)
            early++;
        else if (closed_after(&cs[i]) >= 550)
            late++;
    }
    assert_int_equal(early, 2);
    assert_int_equal(late, 4);
    assert_true(!strncmp(cs[6].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_true(closed_after(&cs[6]) < 550);
    free(cs);
}

/* The endpoint full of silent connections from as many addresses: a
 * scrape takes the slot of the oldest one; the others run to their head
 * timeout. */
static void test_http_full_evicts_oldest_waiting(void **state)
{
    /* silent 11-14 at 0-30 ms, scrape at 150, silent 15 at 175 (full
     * again), scrape at 200 */
    static const char *const ips[] = {"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14",
                                      "127.0.0.20", "127.0.0.15", "127.0.0.21"};
    static const uint64_t at[] = {0, 10, 20, 30, 150, 175, 200};
    struct client *cs = new_clients(7);
    uint64_t saved_head = tg_metrics_head_timeout_ms;
    unsigned saved_max = tg_metrics_max_conns, i;

    (void)state;
    tg_metrics_head_timeout_ms = 600;
    tg_metrics_max_conns = 4;
    for (i = 0; i < 7; i++) {
        cs[i].bind_ip = ips[i];
        cs[i].delay_ms = at[i];
    }
    set_req(&cs[4], "GET /metrics HTTP/1.1\r\n\r\n");
    set_req(&cs[6], "GET /metrics HTTP/1.1\r\n\r\n");
    run_clients(cs, 7);
    tg_metrics_head_timeout_ms = saved_head;
    tg_metrics_max_conns = saved_max;

    assert_true(!strncmp(cs[4].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_true(!strncmp(cs[6].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_true(closed_after(&cs[4]) < 550 && closed_after(&cs[6]) < 550);
    /* 11 made room for the first scrape, 12 for the second. */
    assert_in_range(closed_after(&cs[0]), 150, 549);
    assert_in_range(closed_after(&cs[1]), 200, 549);
    assert_true(closed_after(&cs[2]) >= 600);
    assert_true(closed_after(&cs[3]) >= 600);
    assert_true(closed_after(&cs[5]) >= 770);
    for (i = 0; i < 7; i++) {
        if (i == 4 || i == 6)
            continue;
        assert_int_equal(cs[i].len, 0);
        assert_int_equal(cs[i].read_status, UV_EOF);
    }
    free(cs);
}

static uv_tcp_t slow_cl;
static uv_connect_t slow_cr;
static uv_write_t slow_wr;
static uv_timer_t slow_t1, slow_t2;
static unsigned open_at_t1 = 99, open_at_t2 = 99;

static void slow_connected(uv_connect_t *req, int status)
{
    static char get[] = "GET /metrics HTTP/1.1\r\n\r\n";
    uv_buf_t b = uv_buf_init(get, sizeof(get) - 1);

    (void)req;
    assert_int_equal(status, 0);
    assert_int_equal(uv_write(&slow_wr, (uv_stream_t *)&slow_cl, &b, 1, client_written), 0);
    /* and never reads */
}

static void slow_first_look(uv_timer_t *t)
{
    (void)t;
    open_at_t1 = tg_metrics_open_conns();
}

static void slow_second_look(uv_timer_t *t)
{
    (void)t;
    open_at_t2 = tg_metrics_open_conns();
    tg_metrics_close();
    uv_close((uv_handle_t *)&slow_cl, NULL);
    uv_close((uv_handle_t *)&slow_t1, NULL);
    uv_close((uv_handle_t *)&slow_t2, NULL);
}

/* A client that asks for a page far larger than the socket buffers and
 * never reads it holds its connection only until the whole-exchange
 * deadline. */
static void test_http_slow_reader(void **state)
{
    uint64_t saved = tg_metrics_conn_timeout_ms;
    static char big[65536];
    char err[256];
    struct sockaddr_in sa;
    int small = 4096;

    (void)state;
    /* 256 routes with 64 KiB names: a 16 MiB page. */
    memset(big, 'r', sizeof(big) - 1);
    for (int i = 0; i < 256; i++) {
        snprintf(big, 8, "%03d", i);
        big[3] = 'r';
        tg_metrics_transfer_started("rrq", big);
    }
    tg_metrics_conn_timeout_ms = 500;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(tg_metrics_serve(&loop, "127.0.0.1:0", err, sizeof(err)), 0);
    assert_int_equal(uv_tcp_init_ex(&loop, &slow_cl, AF_INET), 0);
    assert_int_equal(uv_recv_buffer_size((uv_handle_t *)&slow_cl, &small), 0);
    uv_ip4_addr("127.0.0.1", tg_metrics_port(), &sa);
    assert_int_equal(uv_tcp_connect(&slow_cr, &slow_cl, (struct sockaddr *)&sa, slow_connected), 0);
    uv_timer_init(&loop, &slow_t1);
    uv_timer_init(&loop, &slow_t2);
    uv_timer_start(&slow_t1, slow_first_look, 250, 0);
    uv_timer_start(&slow_t2, slow_second_look, 900, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    tg_metrics_conn_timeout_ms = saved;
    assert_int_equal(open_at_t1, 1); /* still writing at 250 ms */
    assert_int_equal(open_at_t2, 0); /* closed by the 500 ms deadline */
}

static void connect_ignored(uv_connect_t *req, int status)
{
    (void)req;
    (void)status;
}

static void test_http_close_with_connections(void **state)
{
    char err[256];
    uv_tcp_t cl;
    uv_connect_t cr;
    struct sockaddr_in sa;

    (void)state;
    /* Closing while a client is connected and silent still lets the loop
     * end at once (what a shutdown or reload does). */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(tg_metrics_serve(&loop, "127.0.0.1:0", err, sizeof(err)), 0);
    uv_ip4_addr("127.0.0.1", tg_metrics_port(), &sa);
    uv_tcp_init(&loop, &cl);
    assert_int_equal(uv_tcp_connect(&cr, &cl, (struct sockaddr *)&sa, connect_ignored), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    /* Same address again: kept as it is. */
    assert_int_equal(tg_metrics_serve(&loop, "127.0.0.1:0", err, sizeof(err)), 0);
    tg_metrics_close();
    tg_metrics_close(); /* twice is harmless */
    uv_close((uv_handle_t *)&cl, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static char *fake_transfers(void *arg, uint64_t id, size_t *len, bool *pending)
{
    char *p = tg_strdup(arg);

    (void)id;
    *pending = false;
    *len = strlen(arg);
    return p;
}

/* The live view: GET / is the page with its headers; GET /transfers is
 * 503 until the server sets its callback, then what the callback built. */
static void test_http_live(void **state)
{
    struct client *cs = new_clients(3);
    static const char *const ips[] = {"127.0.0.41", "127.0.0.42", "127.0.0.43"};

    (void)state;
    set_req(&cs[0], "GET / HTTP/1.1\r\n\r\n");
    set_req(&cs[1], "GET /transfers HTTP/1.1\r\n\r\n");
    set_req(&cs[2], "GET /transfers/x HTTP/1.1\r\n\r\n");
    for (size_t i = 0; i < 3; i++)
        cs[i].bind_ip = ips[i];
    run_clients(cs, 3);
    assert_true(!strncmp(cs[0].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Security-Policy: default-src 'none';"));
    assert_string_equal(body_of(&cs[0]), tg_live_page);
    assert_true(strlen(tg_live_page) < 8192);
    assert_true(!strncmp(cs[1].resp, "HTTP/1.1 503 Service Unavailable\r\n", 34));
    assert_true(!strncmp(cs[2].resp, "HTTP/1.1 404 Not Found\r\n", 24));
    free(cs);

    cs = new_clients(2);
    tg_metrics_set_transfers(fake_transfers, "{\"active\":[]}");
    set_req(&cs[0], "GET /transfers?x HTTP/1.1\r\n\r\n");
    set_req(&cs[1], "HEAD /transfers HTTP/1.1\r\n\r\n");
    for (size_t i = 0; i < 2; i++)
        cs[i].bind_ip = ips[i];
    run_clients(cs, 2);
    tg_metrics_set_transfers(NULL, NULL);
    assert_true(!strncmp(cs[0].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Length: 13\r\n"));
    assert_string_equal(body_of(&cs[0]), "{\"active\":[]}");
    assert_true(!strncmp(cs[1].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(&cs[1]), "");
    free(cs);
}

/* An asynchronous provider (several workers): it answers later through
 * tg_metrics_transfers_reply, by request id. */
static uint64_t async_ids[4];
static unsigned async_n;
static uv_timer_t async_t;

static void async_answer(uv_timer_t *t)
{
    tg_metrics_transfers_reply(async_ids[0], tg_strdup("{\"a\":0}"), 7);
    tg_metrics_transfers_reply(async_ids[1], tg_strdup("{\"a\":1}"), 7);
    /* No connection waits for this one: dropped (and freed). */
    tg_metrics_transfers_reply(async_ids[0] + 1000, tg_strdup("{}"), 2);
    uv_close((uv_handle_t *)t, NULL);
}

static char *async_transfers(void *arg, uint64_t id, size_t *len, bool *pending)
{
    (void)arg;
    (void)len;
    if (async_n < TG_ARRAY_LEN(async_ids))
        async_ids[async_n] = id;
    if (async_n++ == 0) {
        uv_timer_init(&loop, &async_t);
        uv_timer_start(&async_t, async_answer, 150, 0);
    }
    *pending = true;
    return NULL;
}

/* 0 and 1 are answered 150 ms later, each with its own answer; 3 asks
 * /metrics meanwhile and is answered at once; 2 is never answered and the
 * whole-exchange deadline closes it. */
static void test_http_live_async(void **state)
{
    struct client *cs = new_clients(4);
    static const char *const ips[] = {"127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"};
    uint64_t saved_timeout = tg_metrics_conn_timeout_ms;

    (void)state;
    async_n = 0;
    tg_metrics_conn_timeout_ms = 400;
    tg_metrics_set_transfers(async_transfers, NULL);
    set_req(&cs[0], "GET /transfers HTTP/1.1\r\n\r\n");
    set_req(&cs[1], "HEAD /transfers HTTP/1.1\r\n\r\n");
    cs[1].delay_ms = 10;
    set_req(&cs[2], "GET /transfers HTTP/1.1\r\n\r\n");
    cs[2].delay_ms = 20;
    set_req(&cs[3], "GET /metrics HTTP/1.1\r\n\r\n");
    cs[3].delay_ms = 30;
    for (size_t i = 0; i < 4; i++)
        cs[i].bind_ip = ips[i];
    run_clients(cs, 4);
    tg_metrics_set_transfers(NULL, NULL);
    tg_metrics_conn_timeout_ms = saved_timeout;
    assert_int_equal(async_n, 3);
    assert_true(async_ids[0] != async_ids[1] && async_ids[1] != async_ids[2]);
    assert_true(!strncmp(cs[0].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(cs[0].resp, "\r\nContent-Type: application/json\r\n"));
    assert_string_equal(body_of(&cs[0]), "{\"a\":0}");
    assert_true(closed_after(&cs[0]) >= 140);
    assert_true(!strncmp(cs[1].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(cs[1].resp, "\r\nContent-Length: 7\r\n"));
    assert_string_equal(body_of(&cs[1]), "");
    assert_int_equal(cs[2].len, 0);
    assert_int_equal(cs[2].read_status, UV_EOF);
    assert_true(closed_after(&cs[2]) >= 380);
    assert_true(!strncmp(cs[3].resp, "HTTP/1.1 200 OK\r\n", 17));
    assert_true(closed_after(&cs[3]) < closed_after(&cs[0]));
    free(cs);
}

static void test_serve_errors(void **state)
{
    static const char *const bad[] = {"", "127.0.0.1", "localhost:9169", "127.0.0.1:65536",
                                      "127.0.0.1:x", "[::1:9169", "::1:9169", "1.2.3.4:-1",
                                      "127.0.0.1:9169 "};
    char err[256], spec[64];
    size_t i;
    uv_tcp_t other;
    struct sockaddr_in sa;
    int namelen = sizeof(sa);

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (i = 0; i < TG_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        assert_int_equal(tg_metrics_serve(&loop, bad[i], err, sizeof(err)), TG_EINVAL);
        assert_non_null(strstr(err, "not ADDR:PORT"));
    }
    /* A port someone else holds: a clear error, and nothing left open. */
    uv_tcp_init(&loop, &other);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&other, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&other, 1, NULL), 0);
    uv_tcp_getsockname(&other, (struct sockaddr *)&sa, &namelen);
    snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(tg_metrics_serve(&loop, spec, err, sizeof(err)), UV_EADDRINUSE);
    assert_non_null(strstr(err, "address already in use"));
    assert_non_null(strstr(err, spec));
    assert_int_equal(tg_metrics_port(), -1);
    uv_close((uv_handle_t *)&other, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_serve_ipv6(void **state)
{
    char err[256];
    uv_tcp_t probe;
    struct sockaddr_in6 sa;
    int rc;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_tcp_init(&loop, &probe);
    uv_ip6_addr("::1", 0, &sa);
    rc = uv_tcp_bind(&probe, (struct sockaddr *)&sa, 0);
    uv_close((uv_handle_t *)&probe, NULL);
    if (rc == 0) {
        assert_int_equal(tg_metrics_serve(&loop, "[::1]:0", err, sizeof(err)), 0);
        assert_true(tg_metrics_port() > 0);
        tg_metrics_close();
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    if (rc != 0)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_head_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_timeout_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_per_client_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_full_evicts_oldest_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_close_with_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_live_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_ipv6, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

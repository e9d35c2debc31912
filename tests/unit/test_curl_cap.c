/* tests/unit/test_curl_cap.c - gateway/curl_uv.c's connection cap: no more
 * than max transfers of a cap run at once (here 1), the rest start in FIFO order as
 * running ones end, and a waiting transfer that is removed leaves the queue
 * without a done callback. The transfers are real: GETs to a loopback port
 * nobody listens on (refused at once), on a real loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "tftpgw/curl_uv.h"

#define N 6

struct t {
    struct tg_curl_xfer x;
    int id;
};

static int order[N], ndone, max_running;
static struct tg_curl_cap *the_cap;

static void on_done(struct tg_curl_xfer *x, CURLcode rc)
{
    struct t *t = tg_container_of(x, struct t, x);

    (void)rc;
    order[ndone++] = t->id;
    /* What the cap lets run, seen from each completion. */
    if (the_cap->running + 1 > (unsigned)max_running)
        max_running = (int)the_cap->running + 1;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* A TCP port on loopback that refuses connections: bound, never listening. */
static int closed_port(int *fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);

    *fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &l), 0);
    return ntohs(a.sin_port);
}

static void test_fifo_under_cap(void **state)
{
    uv_loop_t loop;
    uv_timer_t tick;
    struct tg_curl *cu;
    struct t ts[N];
    char url[64];
    int fd, port, i;

    (void)state;
    port = closed_port(&fd);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
    uv_loop_init(&loop);
    cu = tg_curl_acquire(&loop);
    assert_non_null(cu);
    the_cap = tg_curl_cap_new(1);
    assert_non_null(the_cap);
    ndone = max_running = 0;
    for (i = 0; i < N; i++) {
        memset(&ts[i], 0, sizeof(ts[i]));
        ts[i].id = i;
        ts[i].x.easy = curl_easy_init();
        ts[i].x.done = on_done;
        ts[i].x.cap = the_cap;
        curl_easy_setopt(ts[i].x.easy, CURLOPT_URL, url);
        assert_int_equal(tg_curl_add(cu, &ts[i].x), 0);
    }
    assert_int_equal(the_cap->running, 1);
    assert_int_equal(the_cap->waiting, N - 1);
    assert_true(ts[0].x.counted && !ts[0].x.queued);
    assert_true(ts[1].x.queued && ts[5].x.queued);
    /* A waiting transfer whose owner goes away: out of the queue, no
     * callback, never started. */
    tg_curl_remove(&ts[3].x);
    assert_false(ts[3].x.queued);
    assert_false(ts[3].x.added);
    assert_int_equal(the_cap->waiting, N - 2);
    /* The running one removed: its slot goes to the oldest waiting one. */
    tg_curl_remove(&ts[0].x);
    assert_int_equal(the_cap->running, 1);
    assert_true(ts[1].x.counted && !ts[1].x.queued);
    assert_int_equal(the_cap->waiting, N - 3);
    /* curl's handles are unref'd (curl_uv.c): a timer keeps the loop
     * turning while the refusals arrive. */
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    for (i = 0; i < 1000 && ndone < N - 2; i++)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    /* One at a time, in arrival order, the removed ones never. */
    assert_int_equal(ndone, N - 2);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 4);
    assert_int_equal(order[3], 5);
    assert_int_equal(max_running, 1);
    assert_int_equal(the_cap->running, 0);
    assert_int_equal(the_cap->waiting, 0);
    for (i = 0; i < N; i++)
        curl_easy_cleanup(ts[i].x.easy);
    tg_curl_cap_free(the_cap);
    tg_curl_release(cu);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_under_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

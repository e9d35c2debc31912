/* gateway/sockaddr.c - socket addresses: the one parser of "ADDR:PORT" for
 * sockets we bind, their text for log lines, and comparison for telling
 * transfers apart (RFC 1350 4: a transfer is its two address:port pairs). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tftpgw/sockaddr.h"

bool tg_sockaddr_v4mapped(const struct sockaddr_in6 *sin6)
{
    static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    return memcmp(sin6->sin6_addr.s6_addr, pfx, sizeof(pfx)) == 0;
}

socklen_t tg_sockaddr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
}

void tg_sockaddr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        snprintf(out, cap, "?");
    }
}

bool tg_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

int tg_sockaddr_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    char buf[INET6_ADDRSTRLEN];
    const char *r = NULL;
    size_t n;

    if (!sa || !out)
        return TG_EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        r = inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

        if (tg_sockaddr_v4mapped(sin6))
            r = inet_ntop(AF_INET, sin6->sin6_addr.s6_addr + 12, buf, sizeof(buf));
        else
            r = inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
    }
    if (!r)
        return TG_EINVAL;
    n = strlen(buf);
    if (n >= cap)
        return TG_ENOSPC;
    memcpy(out, buf, n + 1);
    return 0;
}

/* The one parser of "1.2.3.4:69" and "[2001:db8::1]:69" for sockets we
 * bind (listeners, the metrics endpoint). Numeric only: no DNS at start. */
int tg_sockaddr_parse(const char *spec, bool port0_ok, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon, *h, *d;
    size_t hl;
    unsigned long port = 0;

    memset(out, 0, sizeof(*out));
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');

        if (!close || close[1] != ':')
            return TG_EINVAL;
        h = spec + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon)
            return TG_EINVAL;
        h = spec;
        hl = (size_t)(colon - spec);
    }
    if (hl == 0 || hl >= sizeof(host) || colon[1] == '\0' || strlen(colon + 1) > 5)
        return TG_EINVAL;
    for (d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return TG_EINVAL;
        port = port * 10 + (unsigned long)(*d - '0');
    }
    if (port > 65535 || (port == 0 && !port0_ok))
        return TG_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (spec[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return TG_EINVAL;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;

        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return TG_EINVAL;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    }
    return 0;
}

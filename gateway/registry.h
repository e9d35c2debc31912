/* gateway/registry.h - the sessions a server runs: a list (newest first) and
 * a table by client address:port. It answers the front door's questions
 * (is this request a retransmission, which session owns this address:port,
 * how many transfers does this client have) and ends sessions for it
 * (eviction at max_sessions, drain, shutdown). Owner: gateway/registry.c.
 *
 * The registry knows a session only through its entry and the entry's ops:
 * it never includes the session's code, and a session tells the registry
 * what it is by filling the entry when it joins. */
#ifndef TFTPGW_REGISTRY_H
#define TFTPGW_REGISTRY_H

#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>

#include "tftpgw/packet.h"

struct tg_session; /* gateway/session.c */

/* Why the registry ends a session. */
enum tg_reg_end {
    TG_END_EVICT,    /* server full: an unproven session makes room */
    TG_END_SHUTDOWN, /* the server drains: a session that is not a running transfer ends */
    TG_END_ABORT     /* end now, whatever it is doing (ERROR 0 with the message) */
};

/* What the registry asks of a session. */
struct tg_reg_ops {
    bool (*heard)(const struct tg_session *s);     /* a packet came from its client */
    bool (*proven)(const struct tg_session *s);    /* its client showed it hears us */
    bool (*lingering)(const struct tg_session *s); /* an upload done, waiting for a lost final ACK's echo */
    void (*end)(struct tg_session *s, enum tg_reg_end how, const char *msg);
};

struct tg_reg_entry {
    struct tg_reg_entry *prev, *next; /* every session, newest first */
    struct tg_reg_entry *hnext;       /* chain of the by-peer table */
    struct tg_session *s;
    const struct tg_reg_ops *ops;
    struct sockaddr_storage peer;     /* the client's address:port (its TID) */
    char ip[INET6_ADDRSTRLEN];        /* the client's address, for per-client counts */
    enum tg_opcode op;
    const char *reqname;              /* the filename as the client sent it */
    bool shared;                      /* single-port: its datagrams reach it through a listener */
};

struct tg_registry {
    struct tg_reg_entry *head;
    unsigned count;
    struct tg_reg_entry **tab; /* by client address:port */
    unsigned mask;             /* tab has mask + 1 chains */
    /* Every worker's counts (gateway/shared.h); NULL in unit tests. An
     * entry joins on the count its request reserved (reserved is then
     * true and add clears it) and gives it back when it leaves. */
    struct tg_shared *shared;
    bool reserved;
    /* Sessions whose client has not proven itself yet: +1 as each joins,
     * -1 when it proves itself (tg_registry_proven) or leaves unproven;
     * recounted by every eviction walk. Other workers read it to know
     * whom to ask for room. */
    _Atomic unsigned unproven;
    /* Called after a session left (the server's drain waits for none). */
    void (*ended)(void *arg);
    void *arg;
};

/* A table sized for max_sessions (a reload that raises it only makes the
 * chains longer). TG_ENOMEM. */
int tg_registry_init(struct tg_registry *r, unsigned max_sessions);
void tg_registry_free(struct tg_registry *r);
/* e is filled by its session (peer, ip, op, reqname, ops, s) before it joins. */
void tg_registry_add(struct tg_registry *r, struct tg_reg_entry *e);
void tg_registry_remove(struct tg_registry *r, struct tg_reg_entry *e);

/* Single-port mode: the session of this client address:port, if any. */
struct tg_reg_entry *tg_registry_find_peer(const struct tg_registry *r,
                                           const struct sockaddr *peer);
/* A request equal to one whose session has not heard from its client yet
 * (same address and port, op and filename): a retransmission (RFC 1350 4:
 * the client did not hear our first answer). */
struct tg_reg_entry *tg_registry_find_dup(const struct tg_registry *r,
                                          const struct sockaddr *peer,
                                          enum tg_opcode op, const char *filename);
/* The same request as e's, from e's client, while e serves it and has
 * heard from that client: a late duplicate, not a new transfer. */
bool tg_registry_same_request(const struct tg_reg_entry *e, enum tg_opcode op,
                              const char *filename);
/* A session's client has just proven that it hears us (once per session). */
void tg_registry_proven(struct tg_registry *r);
/* Uploads of this client address that only linger for a lost final ACK. */
unsigned tg_registry_count_lingering(const struct tg_registry *r, const char *ip);
/* Transfers of this client address (any port), lingering ones not counted. */
unsigned tg_registry_count_client(const struct tg_registry *r, const struct sockaddr *peer);
/* At max_sessions: end the oldest session whose client never proved it
 * hears us (spoofed requests cannot lock real clients out). False if none. */
bool tg_registry_evict_unproven(struct tg_registry *r);
/* Shutdown: every session ends with ERROR 0 and msg. */
void tg_registry_abort_all(struct tg_registry *r, const char *msg);
/* The drain begins: each session decides whether it is a transfer worth
 * finishing (TG_END_SHUTDOWN). */
void tg_registry_drain(struct tg_registry *r);

#endif

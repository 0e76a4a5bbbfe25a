#include "poll_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pd_op {
    strata_op *op;
    poll_done_fn done;
    void *ud;
    struct pd_op *next;         /* in a connection's FIFO, or the WAIT / ready lists */
    int64_t wake_ms;
    int64_t deadline_ms;
} pd_op;

typedef struct pd_conn {
    char host[256];
    int port;
    int fd;                     /* -1: not connected */
    int connecting;
    char *out;                  /* bytes not yet written */
    size_t outlen, outcap;
    pd_op *head, *tail;         /* sent, awaiting replies, in order */
} pd_conn;

typedef struct pd_timer {
    int64_t at;
    void (*fn)(void *);
    void *ud;
} pd_timer;

struct poll_driver {
    unsigned int per_server;
    pd_conn *conns;
    size_t nconns, capconns;
    size_t rr;                  /* round robin over a server's connections */
    pd_op *ready;               /* to call strata_op_next on */
    pd_op *waiting;             /* WAIT: wake at wake_ms */
    pd_timer *timers;
    size_t ntimers, captimers;
    int inflight;
};

poll_driver *poll_driver_new(unsigned int conns)
{
    poll_driver *d = calloc(1, sizeof *d);
    d->per_server = conns ? conns : 1;
    return d;
}

static void conn_close(pd_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->connecting = 0;
    c->outlen = 0;
}

void poll_driver_free(poll_driver *d)
{
    size_t i;
    for (i = 0; i < d->nconns; i++) {
        conn_close(&d->conns[i]);
        free(d->conns[i].out);
    }
    free(d->conns);
    free(d->timers);
    free(d);
}

void poll_driver_add(poll_driver *d, strata_op *op, poll_done_fn done, void *ud)
{
    pd_op *p = calloc(1, sizeof *p);
    p->op = op;
    p->done = done;
    p->ud = ud;
    p->next = d->ready;
    d->ready = p;
    d->inflight++;
}

void poll_driver_at(poll_driver *d, int64_t at_ms, void (*fn)(void *), void *ud)
{
    if (d->ntimers == d->captimers) {
        d->captimers = d->captimers ? d->captimers * 2 : 16;
        d->timers = realloc(d->timers, d->captimers * sizeof *d->timers);
    }
    d->timers[d->ntimers].at = at_ms;
    d->timers[d->ntimers].fn = fn;
    d->timers[d->ntimers++].ud = ud;
}

static int conn_open(pd_conn *c)
{
    struct sockaddr_in sa;
    int one = 1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)c->port);
    if (inet_pton(AF_INET, strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host, &sa.sin_addr) != 1)
        return -1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno != EINPROGRESS) {
            conn_close(c);
            return -1;
        }
        c->connecting = 1;
    }
    return 0;
}

/* A connection for host:port (round robin over per_server of them). */
static pd_conn *conn_for(poll_driver *d, const char *host, int port)
{
    size_t i, first = (size_t)-1, n = 0;
    for (i = 0; i < d->nconns; i++)
        if (d->conns[i].port == port && strcmp(d->conns[i].host, host) == 0) {
            if (first == (size_t)-1)
                first = i;
            n++;
        }
    if (n < d->per_server) {
        pd_conn *c;
        if (d->nconns == d->capconns) {
            d->capconns = d->capconns ? d->capconns * 2 : 8;
            d->conns = realloc(d->conns, d->capconns * sizeof *d->conns);
        }
        c = &d->conns[d->nconns++];
        memset(c, 0, sizeof *c);
        snprintf(c->host, sizeof c->host, "%s", host);
        c->port = port;
        c->fd = -1;
        return c;
    }
    for (i = first;; i++) { /* the (rr % n)-th of them */
        if (d->conns[i].port == port && strcmp(d->conns[i].host, host) == 0 && (d->rr++ % n) == 0)
            return &d->conns[i];
        if (i + 1 == d->nconns)
            i = first - 1;
    }
}

static void finish(poll_driver *d, pd_op *p)
{
    d->inflight--;
    p->done(p->ud, p->op);
    free(p);
}

/* Fails every op on the connection (their replies are lost with it). */
static void conn_fail(poll_driver *d, pd_conn *c, int code, const char *why)
{
    pd_op *p = c->head, *next;
    conn_close(c);
    c->head = c->tail = NULL;
    for (; p; p = next) {
        next = p->next;
        strata_op_io_failed(p->op, code, why);
        p->next = d->ready;
        d->ready = p;
    }
}

/* Calls next until the op sends, waits or is done. */
static void step(poll_driver *d, pd_op *p)
{
    strata_io io = STRATA_IO_INIT;
    pd_conn *c;
    for (;;) {
        strata_op_next(p->op, &io);
        if (io.kind == STRATA_IO_DONE) {
            finish(d, p);
            return;
        }
        if (io.kind == STRATA_IO_WAIT) {
            p->wake_ms = strata_clock_ms() + io.wait_ms;
            p->next = d->waiting;
            d->waiting = p;
            return;
        }
        break;
    }
    c = conn_for(d, io.host, io.port);
    if (c->fd < 0 && conn_open(c) != 0) {
        strata_op_io_failed(p->op, STRATA_EBACKEND, "connect failed");
        p->next = d->ready;
        d->ready = p;
        return;
    }
    if (io.kind == STRATA_IO_SEND) {
        if (c->outlen + io.len > c->outcap) {
            c->outcap = (c->outlen + io.len) * 2;
            c->out = realloc(c->out, c->outcap);
        }
        memcpy(c->out + c->outlen, io.data, io.len);
        c->outlen += io.len;
    }
    p->deadline_ms = io.deadline_ms;
    p->next = NULL;
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
}

static void conn_read(poll_driver *d, pd_conn *c)
{
    char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    size_t off = 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_fail(d, c, STRATA_EBACKEND, n == 0 ? "connection closed by the server" : strerror(errno));
        return;
    }
    if (n < 0)
        return;
    while (off < (size_t)n && c->head) {
        size_t used = 0;
        pd_op *p = c->head;
        int rc = strata_op_feed(p->op, buf + off, (size_t)n - off, &used);
        off += used;
        if (rc == 1)
            break; /* needs more: the rest of this read was all its */
        c->head = p->next;
        if (c->head == NULL)
            c->tail = NULL;
        p->next = d->ready;
        d->ready = p;
        if (rc < 0) { /* not a valid reply: the stream is lost */
            conn_fail(d, c, STRATA_EBACKEND, "protocol error on the connection");
            return;
        }
    }
}

static void conn_write(poll_driver *d, pd_conn *c)
{
    ssize_t n;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_fail(d, c, STRATA_EBACKEND, strerror(err));
            return;
        }
        c->connecting = 0;
    }
    n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_fail(d, c, STRATA_EBACKEND, strerror(errno));
        return;
    }
    if (n > 0) {
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
}

int poll_driver_run(poll_driver *d, int64_t until_ms)
{
    struct pollfd *pfds = NULL;
    size_t cap = 0;
    for (;;) {
        int64_t now = strata_clock_ms(), next_wake = until_ms;
        size_t i, n = 0;
        pd_op **pp;
        while (d->ready) { /* everything runnable, before blocking */
            pd_op *p = d->ready;
            d->ready = p->next;
            step(d, p);
        }
        for (i = 0; i < d->ntimers;) {
            if (d->timers[i].at <= now) {
                pd_timer t = d->timers[i];
                d->timers[i] = d->timers[--d->ntimers];
                t.fn(t.ud);
                continue;
            }
            if (d->timers[i].at < next_wake)
                next_wake = d->timers[i].at;
            i++;
        }
        for (pp = &d->waiting; *pp;) {
            pd_op *p = *pp;
            if (p->wake_ms <= now) {
                *pp = p->next;
                p->next = d->ready;
                d->ready = p;
                continue;
            }
            if (p->wake_ms < next_wake)
                next_wake = p->wake_ms;
            pp = &p->next;
        }
        for (i = 0; i < d->nconns; i++) { /* deadlines: a late reply costs the connection */
            pd_conn *c = &d->conns[i];
            pd_op *p;
            for (p = c->head; p; p = p->next) {
                if (p->deadline_ms <= now) {
                    conn_fail(d, c, STRATA_ETIMEOUT, "no reply within the deadline");
                    break;
                }
                if (p->deadline_ms < next_wake)
                    next_wake = p->deadline_ms;
            }
        }
        if (d->ready)
            continue;
        if (d->inflight == 0 && d->ntimers == 0)
            break;
        if (now >= until_ms)
            break;
        if (cap < d->nconns) {
            cap = d->nconns;
            pfds = realloc(pfds, cap * sizeof *pfds);
        }
        for (i = 0; i < d->nconns; i++) {
            pd_conn *c = &d->conns[i];
            pfds[n].fd = c->fd;
            pfds[n].events = c->fd < 0 ? 0 : (short)(POLLIN | (c->outlen || c->connecting ? POLLOUT : 0));
            pfds[n++].revents = 0;
        }
        poll(pfds, n, (int)(next_wake - now > 0 ? next_wake - now : 0));
        for (i = 0; i < n; i++) {
            pd_conn *c = &d->conns[i];
            if (c->fd < 0)
                continue;
            if (pfds[i].revents & (POLLOUT | POLLERR | POLLHUP))
                conn_write(d, c);
            if (c->fd >= 0 && (pfds[i].revents & (POLLIN | POLLERR | POLLHUP)))
                conn_read(d, c);
        }
    }
    free(pfds);
    return d->inflight;
}

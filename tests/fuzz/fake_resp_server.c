/* The fake Redis of the reply harness (see fake_resp_server.h). */
#define _DEFAULT_SOURCE
#include "fake_resp_server.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd = -1, port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const char *const *script;
static const size_t *script_lens;
static size_t script_n, script_next;
static unsigned long barriers_seen;

/* End of the RESP command starting at off ("*<n>\r\n" then n bulk strings),
 * or 0 when it is not complete yet. Clients only send well-formed commands. */
static size_t command_end(const char *buf, size_t len, size_t off)
{
    long n, i;
    char *end;
    const char *nl;
    if (off >= len || buf[off] != '*' || (nl = memchr(buf + off, '\n', len - off)) == NULL)
        return 0;
    n = strtol(buf + off + 1, &end, 10);
    off = (size_t)(nl - buf) + 1;
    for (i = 0; i < n; i++) {
        long blen;
        if (off >= len || (nl = memchr(buf + off, '\n', len - off)) == NULL)
            return 0;
        blen = strtol(buf + off + 1, &end, 10);
        off = (size_t)(nl - buf) + 1 + (size_t)blen + 2;
        if (off > len)
            return 0;
    }
    return off;
}

/* Closing with a reset leaves no TIME_WAIT behind: thousands of connections a
 * second would otherwise use up the loopback's ephemeral ports in a minute. */
static void close_now(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The next scripted chunk, sent; after the last one the server's side is
 * shut down. Returns 0 when the script had already run out. */
static int send_next(int fd, int *shut)
{
    const char *chunk;
    size_t clen;
    pthread_mutex_lock(&mu);
    if (script_next >= script_n) {
        pthread_mutex_unlock(&mu);
        shutdown(fd, SHUT_WR);
        *shut = 1;
        return 0;
    }
    chunk = script[script_next];
    clen = script_lens[script_next];
    script_next++;
    pthread_mutex_unlock(&mu);
    send_all(fd, chunk, clen);
    pthread_mutex_lock(&mu);
    if (script_next >= script_n) {
        shutdown(fd, SHUT_WR);
        *shut = 1;
    }
    pthread_mutex_unlock(&mu);
    return 1;
}

static void serve(int fd)
{
    static char buf[1 << 20];
    size_t len = 0, off;
    int shut = 0, answered = 0;
    for (;;) {
        ssize_t r;
        if (answered && !shut) {
            /* A chunk may hold fewer replies than the batch wanted: a client
             * that sends nothing new for a moment is waiting for the rest. */
            struct pollfd p = {fd, POLLIN, 0};
            int ready = poll(&p, 1, 3);
            if (ready == 0) {
                send_next(fd, &shut);
                continue;
            }
        }
        r = recv(fd, buf + len, sizeof buf - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == 2 && memcmp(buf, "!\n", 2) == 0) {
            pthread_mutex_lock(&mu);
            barriers_seen++;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
            break;
        }
        if (shut) {
            len = 0; /* draining until the client closes */
            continue;
        }
        for (off = 0; off < len;) {
            size_t e = command_end(buf, len, off);
            if (e == 0)
                break;
            off = e;
        }
        if (off < len && len < sizeof buf) {
            answered = 0;
            continue; /* a command is still arriving */
        }
        len = 0;
        answered = send_next(fd, &shut);
    }
    close_now(fd); /* the client has closed: nothing left to deliver */
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        serve(fd);
    }
}

int fake_resp_start(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    pthread_t t;
    if (listen_fd >= 0)
        return port;
    signal(SIGPIPE, SIG_IGN);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_CHECK(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
               listen(listen_fd, 64) == 0 && getsockname(listen_fd, (struct sockaddr *)&a, &alen) == 0,
               "fake server: %s", strerror(errno));
    port = ntohs(a.sin_port);
    FUZZ_CHECK(pthread_create(&t, NULL, server_main, NULL) == 0, "fake server thread");
    pthread_detach(t);
    return port;
}

void fake_resp_script(const char *const *chunks, const size_t *lens, size_t n)
{
    pthread_mutex_lock(&mu);
    script = chunks;
    script_lens = lens;
    script_n = n;
    script_next = 0;
    pthread_mutex_unlock(&mu);
}

void fake_resp_wait_idle(void)
{
    struct sockaddr_in a;
    unsigned long want;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    FUZZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "barrier: %s", strerror(errno));
    pthread_mutex_lock(&mu);
    want = barriers_seen + 1;
    pthread_mutex_unlock(&mu);
    send_all(fd, "!\n", 2);
    pthread_mutex_lock(&mu);
    while (barriers_seen < want)
        pthread_cond_wait(&cv, &mu);
    script_n = script_next = 0;
    pthread_mutex_unlock(&mu);
    close_now(fd);
}

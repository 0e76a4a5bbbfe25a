/* A private redis-server or memcached for tests that kill or pause it. */
#ifndef STRATA_TEST_SERVER_H
#define STRATA_TEST_SERVER_H

#include <sys/types.h>

typedef struct test_server {
    char kind[16];   /* "redis" or "memcached" */
    int port;
    pid_t pid;
    char url[128];
} test_server;

/* Starts a server on a free loopback port and waits until it accepts. 0 or -1. */
int  test_server_start(test_server *s, const char *kind);
/* Restart on the same port (after stop). */
int  test_server_restart(test_server *s);
void test_server_stop(test_server *s);     /* SIGKILL and reap */
void test_server_pause(test_server *s);    /* SIGSTOP */
void test_server_resume(test_server *s);   /* SIGCONT */

#endif

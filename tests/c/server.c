#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int port = -1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int accepts(int port)
{
    struct sockaddr_in a;
    int ok, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int spawn(test_server *s)
{
    char port[16];
    pid_t pid;
    int i;
    snprintf(port, sizeof port, "%d", s->port);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (strcmp(s->kind, "redis") == 0)
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--loglevel", "warning",
                   "--logfile", "/dev/null", (char *)NULL);
        else
            execlp("memcached", "memcached", "-l", "127.0.0.1", "-p", port, "-U", "0",
                   "-m", "64", "-u", "root", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (i = 0; i < 200; i++) {
        struct timespec ts = {0, 20 * 1000000L};
        if (accepts(s->port))
            return 0;
        nanosleep(&ts, NULL);
    }
    test_server_stop(s);
    return -1;
}

int test_server_start(test_server *s, const char *kind)
{
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    s->port = free_port();
    if (s->port < 0)
        return -1;
    snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%d", kind, s->port);
    return spawn(s);
}

int test_server_restart(test_server *s)
{
    return spawn(s);
}

void test_server_stop(test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* The state letter of a /proc/.../stat file ('T' once stopped), or 0. */
static char proc_state(const char *path)
{
    char buf[512], *p;
    FILE *f;
    size_t n;
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    return p && p[1] == ' ' ? p[2] : 0;
}

/* 1 when every thread of pid is stopped. */
static int all_stopped(pid_t pid)
{
    char dir[64], path[384];
    struct dirent *d;
    DIR *tasks;
    int stopped = 1;
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    if ((tasks = opendir(dir)) == NULL)
        return 0;
    while (stopped && (d = readdir(tasks)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/stat", dir, d->d_name);
        stopped = proc_state(path) == 'T';
    }
    closedir(tasks);
    return stopped;
}

void test_server_pause(test_server *s)
{
    int i;
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGSTOP);
    /* kill() returns before the server has stopped: on a busy machine it can
     * still answer a request or two. Return once every thread has stopped. */
    for (i = 0; i < 2000 && !all_stopped(s->pid); i++)
        usleep(1000);
}

void test_server_resume(test_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGCONT);
}

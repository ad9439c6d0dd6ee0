/*
 * echo_server: the C limit of the echo benchmarks — one thread, one epoll loop,
 * TCP and UDP echo on the same port of 127.0.0.1.
 *
 *   gcc -O2 -o build/bench/echo_server bench/c/echo_server.c
 *   build/bench/echo_server PORT [--dns] [--http]
 *   try it: nc 127.0.0.1 PORT   (TCP)   nc -u 127.0.0.1 PORT   (UDP)
 *
 * --dns  answers each UDP datagram as a DNS response (QR bit set, REFUSED): the
 *        ceiling dnsperf reaches on this machine, so the report can show dnsperf
 *        is not what limits the dns service.
 * --http answers each TCP request (up to an empty line) with a fixed 200: the
 *        ceiling wrk reaches here.
 * It prints "ready PORT" on stdout once listening and runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define MAX_EVENTS 256

/* A connection's unsent reply: while it is non-empty we stop reading (back-pressure). */
struct conn {
    int fd;
    char *pending;
    size_t pending_len;
    size_t pending_off;
    int http_state; /* bytes of "\r\n\r\n" matched so far */
};

static volatile sig_atomic_t stop_flag = 0;
static int dns_mode = 0;
static int http_mode = 0;
static const char HTTP_REPLY[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    "{\"status\":\"ok\"}";

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static int bind_socket(int type, int port) {
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    if (type == SOCK_STREAM && listen(fd, 1024) < 0) {
        close(fd);
        return -1;
    }
    set_nonblocking(fd);
    return fd;
}

static void close_conn(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

/* Send what we can; keep the rest and wait for EPOLLOUT. Returns -1 on a dead peer. */
static int send_or_keep(int ep, struct conn *c, const char *data, size_t len) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        n = 0;
    }
    if ((size_t)n == len) return 0;
    c->pending = malloc(len - (size_t)n);
    if (!c->pending) return -1;
    memcpy(c->pending, data + n, len - (size_t)n);
    c->pending_len = len - (size_t)n;
    c->pending_off = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

static int flush_pending(int ep, struct conn *c) {
    while (c->pending_off < c->pending_len) {
        ssize_t n = send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off,
                         MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->pending_off += (size_t)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
}

/* How many complete HTTP requests (ended by an empty line) this chunk finishes. */
static int count_requests(struct conn *c, const char *buf, ssize_t n) {
    static const char END[] = "\r\n\r\n";
    int done = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == END[c->http_state]) {
            if (++c->http_state == 4) {
                done++;
                c->http_state = 0;
            }
        } else {
            c->http_state = buf[i] == '\r' ? 1 : 0;
        }
    }
    return done;
}

static int on_readable(int ep, struct conn *c, char *buf) {
    for (;;) {
        ssize_t n = recv(c->fd, buf, BUF_SIZE, 0);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (http_mode) {
            int requests = count_requests(c, buf, n);
            size_t len = 0;
            static char out[BUF_SIZE];
            for (int i = 0; i < requests && len + sizeof HTTP_REPLY < sizeof out; i++) {
                memcpy(out + len, HTTP_REPLY, sizeof HTTP_REPLY - 1);
                len += sizeof HTTP_REPLY - 1;
            }
            if (len && send_or_keep(ep, c, out, len) < 0) return -1;
        } else if (send_or_keep(ep, c, buf, (size_t)n) < 0) {
            return -1;
        }
        /* a short read drained the socket: level-triggered epoll says when more comes,
           so skip the recv that would only return EAGAIN (one syscall per message) */
        if (c->pending || (size_t)n < BUF_SIZE) return 0;
    }
}

static void on_datagrams(int fd, char *buf) {
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, buf, BUF_SIZE, 0, (struct sockaddr *)&peer, &plen);
        if (n < 0) return;
        if (dns_mode) {
            if (n < 12) continue;
            buf[2] |= (char)0x80;                      /* QR: this is a response */
            buf[3] = (char)((buf[3] & 0xF0) | 0x05);  /* RCODE REFUSED */
        }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [--dns] [--http]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dns") == 0) dns_mode = 1;
        else if (strcmp(argv[i], "--http") == 0) http_mode = 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = bind_socket(SOCK_STREAM, port);
    int ufd = bind_socket(SOCK_DGRAM, port);
    if (lfd < 0 || ufd < 0) {
        perror("bind");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &ufd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
    printf("ready %d\n", port);
    fflush(stdout);

    static char buf[BUF_SIZE];
    struct epoll_event events[MAX_EVENTS];
    while (!stop_flag) {
        int n = epoll_wait(ep, events, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    if (!c) {
                        close(cfd);
                        continue;
                    }
                    c->fd = cfd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
            } else if (ptr == &ufd) {
                on_datagrams(ufd, buf);
            } else {
                struct conn *c = ptr;
                int rc = 0;
                if (events[i].events & (EPOLLERR | EPOLLHUP)) rc = -1;
                else if (events[i].events & EPOLLOUT) rc = flush_pending(ep, c);
                else if (events[i].events & EPOLLIN) rc = on_readable(ep, c, buf);
                if (rc < 0) close_conn(ep, c);
            }
        }
    }
    close(lfd);
    close(ufd);
    close(ep);
    return 0;
}

/*
 * echo_client: a load generator that outruns any Python echo server — one thread,
 * one epoll loop, N connections, each keeping PIPELINE messages of SIZE bytes in
 * flight; it counts completed round trips for a fixed duration after a warm-up.
 *
 *   gcc -O2 -o build/bench/echo_client bench/c/echo_client.c
 *   build/bench/echo_client --port 8000 [--udp] [--conns 10] [--size 1024]
 *                           [--duration 3] [--warmup 0.5] [--pipeline 1]
 *
 * Prints one JSON object on stdout:
 *   {"mode": "tcp", "conns": 10, "size": 1024, "roundtrips": N, "seconds": S,
 *    "rps": N/S, "errors": E, "lost": L}
 * TCP: a round trip is SIZE bytes echoed back (bytes are checked, not just counted).
 * UDP: each socket keeps one datagram in flight, tagged with a sequence number; a reply
 * that does not carry the awaited number is stale and ignored, and a datagram not
 * answered within 200 ms is counted as lost and sent again. Only 127.0.0.1 is targeted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define UDP_RETRY_NS 200000000LL

struct conn {
    int fd;
    size_t to_send;     /* bytes of queued messages not yet written */
    size_t send_off;    /* offset in the message pattern of the next byte to send */
    size_t received;    /* bytes of the current message received */
    uint64_t seq;       /* UDP: the sequence number awaited */
    long long sent_at;  /* UDP: when the awaited datagram left */
    int dead;
};

static int opt_udp = 0, opt_conns = 1, opt_port = 0, opt_pipeline = 1;
static size_t opt_size = 1024;
static double opt_duration = 3.0, opt_warmup = 0.5;
static char *message;
static long long counted = 0, errors = 0, lost = 0;
static int counting = 0;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --port PORT [--udp] [--conns N] [--size BYTES] [--duration S]"
            " [--warmup S] [--pipeline P]\n",
            prog);
    exit(2);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--udp") == 0) { opt_udp = 1; continue; }
        if (!v) usage(argv[0]);
        if (strcmp(a, "--port") == 0) opt_port = atoi(v);
        else if (strcmp(a, "--conns") == 0) opt_conns = atoi(v);
        else if (strcmp(a, "--size") == 0) opt_size = (size_t)atol(v);
        else if (strcmp(a, "--duration") == 0) opt_duration = atof(v);
        else if (strcmp(a, "--warmup") == 0) opt_warmup = atof(v);
        else if (strcmp(a, "--pipeline") == 0) opt_pipeline = atoi(v);
        else usage(argv[0]);
        i++;
    }
    if (opt_port <= 0 || opt_conns <= 0 || opt_size < 16 || opt_size > 65000 || opt_pipeline <= 0)
        usage(argv[0]);
}

static int open_socket(void) {
    int fd = socket(AF_INET, opt_udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)opt_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    if (!opt_udp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    return fd;
}

static void kill_conn(int ep, struct conn *c) {
    if (c->dead) return;
    c->dead = 1;
    errors++;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* TCP: write queued bytes; wait for EPOLLOUT only while something is left. */
static void tcp_flush(int ep, struct conn *c) {
    while (c->to_send > 0) {
        size_t chunk = opt_size - c->send_off;
        if (chunk > c->to_send) chunk = c->to_send;
        ssize_t n = send(c->fd, message + c->send_off, chunk, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) { kill_conn(ep, c); return; }
            break;
        }
        c->to_send -= (size_t)n;
        c->send_off = (c->send_off + (size_t)n) % opt_size;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->to_send ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void tcp_read(int ep, struct conn *c, char *buf, size_t cap) {
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n == 0) { kill_conn(ep, c); return; }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) kill_conn(ep, c);
            break;
        }
        size_t done = 0;
        for (ssize_t i = 0; i < n;) {
            size_t want = opt_size - c->received;
            size_t take = (size_t)(n - i) < want ? (size_t)(n - i) : want;
            if (memcmp(buf + i, message + c->received, take) != 0) { kill_conn(ep, c); return; }
            c->received += take;
            i += (ssize_t)take;
            if (c->received == opt_size) { c->received = 0; done++; }
        }
        if (counting) counted += (long long)done;
        if (done) {
            c->to_send += done * opt_size;
            tcp_flush(ep, c);
            if (c->dead) return;
        }
        if ((size_t)n < cap) break;
    }
}

static void udp_send(int ep, struct conn *c) {
    c->seq++;
    memcpy(message, &c->seq, sizeof c->seq);
    c->sent_at = now_ns();
    if (send(c->fd, message, opt_size, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
        kill_conn(ep, c);
}

static void udp_read(int ep, struct conn *c, char *buf, size_t cap) {
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n < 0) break; /* EAGAIN, or ECONNREFUSED from a dead server: the retry resends */
        uint64_t seq;
        if ((size_t)n != opt_size) continue;
        memcpy(&seq, buf, sizeof seq);
        if (seq != c->seq) continue; /* a late reply to a datagram already given up */
        if (counting) counted++;
        udp_send(ep, c);
        return; /* one datagram in flight per socket: the next recv could only say EAGAIN */
    }
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    message = malloc(opt_size);
    for (size_t i = 0; i < opt_size; i++) message[i] = (char)('a' + i % 26);
    size_t cap = opt_size * (size_t)opt_pipeline + 65536;
    char *buf = malloc(cap);
    struct conn *conns = calloc((size_t)opt_conns, sizeof *conns);
    int ep = epoll_create1(0);
    if (!message || !buf || !conns || ep < 0) return 1;

    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        c->fd = open_socket();
        if (c->fd < 0) {
            fprintf(stderr, "connect to 127.0.0.1:%d: %s\n", opt_port, strerror(errno));
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (int i = 0; i < opt_conns; i++) {
        struct conn *c = &conns[i];
        if (opt_udp) {
            udp_send(ep, c);
        } else {
            c->to_send = opt_size * (size_t)opt_pipeline;
            tcp_flush(ep, c);
        }
    }

    long long start = now_ns();
    long long count_from = start + (long long)(opt_warmup * 1e9);
    long long end = count_from + (long long)(opt_duration * 1e9);
    long long counted_at = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        long long t = now_ns();
        if (!counting && t >= count_from) { counting = 1; counted_at = t; }
        if (t >= end) break;
        int n = epoll_wait(ep, events, MAX_EVENTS, 20);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->dead) continue;
            if (opt_udp) {
                udp_read(ep, c, buf, cap);
            } else {
                if (events[i].events & (EPOLLERR | EPOLLHUP)) { kill_conn(ep, c); continue; }
                if (events[i].events & EPOLLIN) tcp_read(ep, c, buf, cap);
                if (!c->dead && (events[i].events & EPOLLOUT)) tcp_flush(ep, c);
            }
        }
        if (opt_udp) {
            long long t2 = now_ns();
            for (int i = 0; i < opt_conns; i++) {
                struct conn *c = &conns[i];
                if (!c->dead && t2 - c->sent_at > UDP_RETRY_NS) {
                    if (counting) lost++;
                    udp_send(ep, c);
                }
            }
        }
    }
    double seconds = (double)(now_ns() - counted_at) / 1e9;
    if (!counting) seconds = 0;
    printf("{\"mode\": \"%s\", \"conns\": %d, \"size\": %zu, \"pipeline\": %d, "
           "\"roundtrips\": %lld, \"seconds\": %.4f, \"rps\": %.1f, \"errors\": %lld, "
           "\"lost\": %lld}\n",
           opt_udp ? "udp" : "tcp", opt_conns, opt_size, opt_pipeline, counted, seconds,
           seconds > 0 ? (double)counted / seconds : 0.0, errors, lost);
    for (int i = 0; i < opt_conns; i++)
        if (!conns[i].dead) close(conns[i].fd);
    return errors == opt_conns ? 1 : 0;
}

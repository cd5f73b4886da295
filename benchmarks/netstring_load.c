/* A socketmap load generator that does not compete with the server for CPU
 * as much as a Python one: N persistent connections to 127.0.0.1:PORT, each
 * sending one netstring request at a time (as Postfix does) for SECONDS.
 *
 *   cc -O2 -o netstring_load netstring_load.c
 *   ./netstring_load PORT CONNECTIONS SECONDS KEYS_FILE
 *
 * KEYS_FILE holds one request payload per line ("postfix example.com").
 * Prints one JSON object: requests, req_per_s, p50_ms, p99_ms, non_ok_replies
 * (not "OK ...") and notfound_replies (those that are "NOTFOUND...").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LAT (32u * 1024u * 1024u)

struct conn { int fd; double sent; size_t have; char buf[8192]; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS KEYS_FILE\n", argv[0]); return 2; }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    double seconds = atof(argv[3]);
    FILE *f = fopen(argv[4], "r");
    if (!f) { perror("keys"); return 2; }
    char **reqs = NULL; size_t *lens = NULL, nreq = 0, cap = 0; char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t l = strcspn(line, "\n"); line[l] = 0;
        if (nreq == cap) { cap = cap ? cap * 2 : 1024; reqs = realloc(reqs, cap * sizeof *reqs); lens = realloc(lens, cap * sizeof *lens); }
        reqs[nreq] = malloc(l + 16);
        lens[nreq] = (size_t)sprintf(reqs[nreq], "%zu:%s,", l, line);
        nreq++;
    }
    fclose(f);
    if (!nreq) return 2;
    float *lat = malloc(MAX_LAT * sizeof *lat);
    size_t nlat = 0, k = 0, non_ok = 0, notfound = 0;
    int ep = epoll_create1(0);
    struct conn *c = calloc((size_t)n, sizeof *c);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < n; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c[i].fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    double start = now(), end = start + seconds;
    for (int i = 0; i < n; i++) { c[i].sent = now(); if (write(c[i].fd, reqs[k % nreq], lens[k % nreq]) < 0) return 1; k++; }
    struct epoll_event evs[256];
    while (now() < end) {
        int m = epoll_wait(ep, evs, 256, 1000);
        for (int j = 0; j < m; j++) {
            struct conn *x = &c[evs[j].data.u32];
            ssize_t r = read(x->fd, x->buf + x->have, sizeof x->buf - x->have);
            if (r <= 0) { fprintf(stderr, "server closed a connection\n"); return 1; }
            x->have += (size_t)r;
            char *colon = memchr(x->buf, ':', x->have);
            if (!colon) continue;
            size_t len = strtoul(x->buf, NULL, 10), total = (size_t)(colon - x->buf) + 1 + len + 1;
            if (x->have < total) continue;
            if (len < 3 || memcmp(colon + 1, "OK ", 3) != 0) non_ok++;
            if (len >= 8 && memcmp(colon + 1, "NOTFOUND", 8) == 0) notfound++;
            double t = now();
            if (nlat < MAX_LAT) lat[nlat++] = (float)(t - x->sent);
            x->have = 0;
            x->sent = t;
            if (write(x->fd, reqs[k % nreq], lens[k % nreq]) < 0) return 1;
            k++;
        }
    }
    double elapsed = now() - start;
    qsort(lat, nlat, sizeof *lat, cmp);
    printf("{\"connections\": %d, \"requests\": %zu, \"req_per_s\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"non_ok_replies\": %zu, \"notfound_replies\": %zu}\n",
           n, nlat, nlat / elapsed, nlat ? lat[nlat / 2] * 1e3 : 0.0, nlat ? lat[(size_t)(nlat * 0.99)] * 1e3 : 0.0, non_ok, notfound);
    return 0;
}

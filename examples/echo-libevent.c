/* An echo server written directly on libevent: an evconnlistener and one
 * bufferevent per connection.  examples/echo-server.c is the same server as
 * an asyncio protocol; read them side by side.
 *
 *   echo-libevent [--count N] PORT   PORT 0: any free port (printed);
 *                                    exit after N connections have closed
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct server {
    struct event_base *base;
    long left; /* connections still to serve; -1: forever */
};

static void connection_done(struct bufferevent *bev, struct server *srv)
{
    bufferevent_free(bev);
    if (srv->left > 0 && --srv->left == 0)
        event_base_loopexit(srv->base, NULL);
}

/* Readable: move everything read to the output, unchanged. */
static void on_read(struct bufferevent *bev, void *arg)
{
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

/* After the peer's EOF: close once the echo has gone out. */
static void on_drained(struct bufferevent *bev, void *arg) { connection_done(bev, arg); }

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        bufferevent_setcb(bev, NULL, on_drained, NULL, arg);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        connection_done(bev, arg);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct server *srv = arg;
    struct bufferevent *bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, srv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    struct server srv = {NULL, -1};
    int argi = 1;
    if (argc > 2 && strcmp(argv[1], "--count") == 0) {
        srv.left = atol(argv[2]);
        argi = 3;
    }
    if (argi != argc - 1) {
        fprintf(stderr, "usage: echo-libevent [--count N] PORT\n");
        return 2;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[argi]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    srv.base = event_base_new();
    struct evconnlistener *lev =
        evconnlistener_new_bind(srv.base, on_accept, &srv,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                100, (struct sockaddr *)&sin, sizeof(sin));
    if (lev == NULL) {
        perror("echo-libevent: listen");
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof(bound);
    getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&bound, &len);
    printf("listening on port %d\n", ntohs(bound.sin_port));
    fflush(stdout);

    event_base_dispatch(srv.base);
    evconnlistener_free(lev);
    event_base_free(srv.base);
    return 0;
}

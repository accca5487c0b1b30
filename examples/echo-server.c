/* An echo server as an asyncio protocol: create_server with a protocol
 * factory; each connection gets its own protocol object.  The same server
 * written on plain libevent is examples/echo-libevent.c.
 *
 *   echo-server [--count N] PORT   PORT 0: any free port (printed);
 *                                  exit after N connections have closed
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct server {
    asyncio_loop *loop;
    long left; /* connections still to serve; -1: forever */
};

/* One per connection: the protocol, then what it needs. */
struct echo {
    asyncio_protocol base;
    asyncio_transport *transport; /* borrowed: valid until connection_lost */
    struct server *srv;
};

static void connection_made(asyncio_protocol *p, asyncio_transport *t)
{
    ((struct echo *)p)->transport = t;
}

static void data_received(asyncio_protocol *p, const void *data, size_t len)
{
    asyncio_transport_write(((struct echo *)p)->transport, data, len);
}

/* eof_received is left NULL: at the peer's EOF the transport sends what is
 * queued and closes. */

static void connection_lost(asyncio_protocol *p, int error)
{
    struct echo *e = (struct echo *)p;
    if (e->srv->left > 0 && --e->srv->left == 0)
        asyncio_loop_stop(e->srv->loop);
    free(e); /* the protocol is ours: connection_lost is its last call */
}

static const asyncio_protocol_ops echo_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static asyncio_protocol *echo_factory(void *arg)
{
    struct echo *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL; /* refuses the connection */
    e->base.ops = &echo_ops;
    e->srv = arg;
    return &e->base;
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
        fprintf(stderr, "usage: echo-server [--count N] PORT\n");
        return 2;
    }
    int err = asyncio_new_event_loop(&srv.loop);
    if (err < 0) {
        fprintf(stderr, "echo-server: %s\n", asyncio_strerror(err));
        return 1;
    }

    asyncio_future *started;
    err = asyncio_loop_create_server(srv.loop, echo_factory, &srv, "127.0.0.1", atoi(argv[argi]),
                                     NULL, &started);
    if (err == 0)
        err = asyncio_loop_run_until_complete(srv.loop, started);
    if (err < 0) {
        fprintf(stderr, "echo-server: %s\n", asyncio_strerror(err));
        return 1;
    }
    asyncio_server *server;
    asyncio_future_result(started, (void **)&server); /* borrowed from the future */
    int fd;
    asyncio_server_get_sockets(server, &fd, 1);
    struct sockaddr_in bound;
    socklen_t len = sizeof(bound);
    getsockname(fd, (struct sockaddr *)&bound, &len);
    printf("listening on port %d\n", ntohs(bound.sin_port));
    fflush(stdout);

    asyncio_loop_run_forever(srv.loop);
    asyncio_server_close(server);
    asyncio_future_unref(started);
    asyncio_loop_close(srv.loop);
    asyncio_loop_unref(srv.loop);
    return 0;
}

/* An echo client as an asyncio protocol: connect, send a message and the
 * EOF, print what comes back until the server closes.
 *
 *   echo-client PORT MESSAGE        (to 127.0.0.1)
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client {
    asyncio_protocol base;
    asyncio_loop *loop;
    const char *message;
    int error;
};

static void connection_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct client *c = (struct client *)p;
    asyncio_transport_write(t, c->message, strlen(c->message));
    asyncio_transport_write_eof(t);
}

static void data_received(asyncio_protocol *p, const void *data, size_t len)
{
    fwrite(data, 1, len, stdout);
}

static void connection_lost(asyncio_protocol *p, int error)
{
    struct client *c = (struct client *)p;
    c->error = error;
    asyncio_loop_stop(c->loop);
}

static const asyncio_protocol_ops client_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

/* One connection, one protocol: the factory hands out the one we have. */
static asyncio_protocol *client_factory(void *arg) { return arg; }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: echo-client PORT MESSAGE\n");
        return 2;
    }
    struct client c = {{&client_ops}, NULL, argv[2], 0};
    int err = asyncio_new_event_loop(&c.loop);
    asyncio_future *connected = NULL;
    if (err == 0)
        err = asyncio_loop_create_connection(c.loop, client_factory, &c, "127.0.0.1", atoi(argv[1]),
                                             NULL, &connected);
    if (err == 0)
        err = asyncio_loop_run_until_complete(c.loop, connected);
    if (err == 0) {
        asyncio_loop_run_forever(c.loop); /* until connection_lost */
        err = c.error;
    }
    asyncio_future_unref(connected);
    printf("\n");
    if (err < 0)
        fprintf(stderr, "echo-client: %s\n", asyncio_strerror(err));
    if (c.loop != NULL) {
        asyncio_loop_close(c.loop);
        asyncio_loop_unref(c.loop);
    }
    return err < 0 ? 1 : 0;
}

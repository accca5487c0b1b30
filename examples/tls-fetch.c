/* Fetch "/" over TLS and print the response: an HTTP/1.0 GET through a
 * verified TLS connection (create_connection with an SSL_CTX).
 *
 *   tls-fetch HOST PORT [CAFILE]
 *
 * CAFILE: the certificates to trust; without it, the system's store
 * (use_default_ssl).  The server's certificate must name HOST.  Try it
 * against a local `openssl s_server -www -cert C -key K -accept PORT`. */
#include <asyncio.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fetch {
    asyncio_protocol base;
    asyncio_loop *loop;
    const char *host;
    int error;
};

static void connection_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct fetch *f = (struct fetch *)p;
    char req[512];
    int n = snprintf(req, sizeof(req), "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", f->host);
    asyncio_transport_write(t, req, (size_t)n);
}

static void data_received(asyncio_protocol *p, const void *data, size_t len)
{
    fwrite(data, 1, len, stdout);
}

static void connection_lost(asyncio_protocol *p, int error)
{
    struct fetch *f = (struct fetch *)p;
    f->error = error;
    asyncio_loop_stop(f->loop);
}

static const asyncio_protocol_ops fetch_ops = {
    .connection_made = connection_made,
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static asyncio_protocol *fetch_factory(void *arg) { return arg; }

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: tls-fetch HOST PORT [CAFILE]\n");
        return 2;
    }
    struct fetch f = {{&fetch_ops}, NULL, argv[1], 0};
    asyncio_connection_options opts = ASYNCIO_CONNECTION_OPTIONS_INIT;
    SSL_CTX *ctx = NULL;
    if (argc == 4) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1) {
            fprintf(stderr, "tls-fetch: cannot load %s\n", argv[3]);
            return 1;
        }
        opts.ssl = ctx;
    } else {
        opts.use_default_ssl = 1;
    }
    int err = asyncio_new_event_loop(&f.loop);
    asyncio_future *connected = NULL;
    if (err == 0)
        err = asyncio_loop_create_connection(f.loop, fetch_factory, &f, argv[1], atoi(argv[2]),
                                             &opts, &connected);
    if (err == 0)
        err = asyncio_loop_run_until_complete(f.loop, connected);
    if (err == 0) {
        asyncio_loop_run_forever(f.loop); /* until the server closes */
        err = f.error;
    } else if (connected != NULL && asyncio_future_ssl_error(connected) != NULL) {
        fprintf(stderr, "tls-fetch: %s\n", asyncio_future_ssl_error(connected));
    }
    if (err < 0)
        fprintf(stderr, "tls-fetch: %s\n", asyncio_strerror(err));
    asyncio_future_unref(connected);
    if (f.loop != NULL) {
        asyncio_loop_close(f.loop);
        asyncio_loop_unref(f.loop);
    }
    SSL_CTX_free(ctx);
    return err < 0 ? 1 : 0;
}

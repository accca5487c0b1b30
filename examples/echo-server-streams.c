/* The echo server again, written sequentially with streams in tasks: the
 * counterpart of Python's
 *
 *     async def handle(reader, writer):
 *         while data := await reader.read(4096):
 *             writer.write(data)
 *             await writer.drain()
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     server = await asyncio.start_server(handle, "127.0.0.1", port)
 *
 *   echo-server-streams [--count N] PORT   PORT 0: any free port (printed);
 *                                          exit after N connections
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long left = -1; /* connections still to serve; -1: forever */
static asyncio_future *all_served;

static int handle(asyncio_stream_reader *reader, asyncio_stream_writer *writer, void *arg)
{
    char data[4096];
    ssize_t n;
    while ((n = asyncio_stream_read(reader, data, sizeof(data))) > 0) {
        asyncio_stream_write(writer, data, (size_t)n);
        asyncio_stream_drain(writer);
    }
    int err = asyncio_stream_close(writer);
    if (left > 0 && --left == 0)
        asyncio_future_set_result(all_served, NULL, NULL);
    return err;
}

static int serve(void *arg, void **result)
{
    asyncio_server *server;
    int err = asyncio_start_server(handle, NULL, "127.0.0.1", atoi(arg), NULL, &server);
    if (err < 0)
        return err;
    int fd;
    struct sockaddr_in bound;
    socklen_t len = sizeof(bound);
    asyncio_server_get_sockets(server, &fd, 1);
    getsockname(fd, (struct sockaddr *)&bound, &len);
    printf("listening on port %d\n", ntohs(bound.sin_port));
    fflush(stdout);
    err = asyncio_await(all_served, NULL); /* forever without --count */
    asyncio_server_close(server);
    asyncio_server_unref(server);
    return err;
}

int main(int argc, char **argv)
{
    int argi = 1;
    if (argc > 2 && strcmp(argv[1], "--count") == 0) {
        left = atol(argv[2]);
        argi = 3;
    }
    if (argi != argc - 1) {
        fprintf(stderr, "usage: echo-server-streams [--count N] PORT\n");
        return 2;
    }
    asyncio_loop *loop;
    asyncio_future *main_task = NULL;
    int err = asyncio_new_event_loop(&loop);
    if (err == 0)
        err = asyncio_loop_create_future(loop, &all_served);
    if (err == 0)
        err = asyncio_loop_create_task(loop, serve, argv[argi], &main_task);
    if (err == 0)
        err = asyncio_loop_run_until_complete(loop, main_task); /* asyncio.run(main()) */
    if (err < 0)
        fprintf(stderr, "echo-server-streams: %s\n", asyncio_strerror(err));
    asyncio_future_unref(main_task);
    asyncio_future_unref(all_served);
    asyncio_loop_close(loop);
    asyncio_loop_unref(loop);
    return err < 0 ? 1 : 0;
}

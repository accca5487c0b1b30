/* The echo client again, written sequentially with streams in a task: the
 * counterpart of Python's
 *
 *     reader, writer = await asyncio.open_connection("127.0.0.1", port)
 *     writer.write(message.encode())
 *     writer.write_eof()
 *     print((await reader.read()).decode())
 *     writer.close()
 *     await writer.wait_closed()
 *
 *   echo-client-streams PORT MESSAGE        (to 127.0.0.1)
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int client(void *arg, void **result)
{
    char **argv = arg;
    asyncio_stream_reader *reader;
    asyncio_stream_writer *writer;
    int err = asyncio_open_connection("127.0.0.1", atoi(argv[1]), NULL, &reader, &writer);
    if (err < 0)
        return err;
    asyncio_stream_write(writer, argv[2], strlen(argv[2]));
    asyncio_stream_write_eof(writer);
    char data[4096];
    ssize_t n;
    while ((n = asyncio_stream_read(reader, data, sizeof(data))) > 0)
        fwrite(data, 1, (size_t)n, stdout);
    printf("\n");
    int closed = asyncio_stream_close(writer);
    return n < 0 ? (int)n : closed;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: echo-client-streams PORT MESSAGE\n");
        return 2;
    }
    asyncio_loop *loop;
    asyncio_future *task = NULL;
    int err = asyncio_new_event_loop(&loop);
    if (err == 0)
        err = asyncio_loop_create_task(loop, client, argv, &task);
    if (err == 0)
        err = asyncio_loop_run_until_complete(loop, task); /* asyncio.run(client()) */
    if (err < 0)
        fprintf(stderr, "echo-client-streams: %s\n", asyncio_strerror(err));
    asyncio_future_unref(task);
    asyncio_loop_close(loop);
    asyncio_loop_unref(loop);
    return err < 0 ? 1 : 0;
}

/* Hello World with call_later: the first example of the asyncio event loop
 * documentation.  Prints "Hello World" every two seconds.
 *
 *   hello [COUNT [INTERVAL]]   stop after COUNT greetings (default: never)
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>

struct greeter {
    asyncio_loop *loop;
    long left; /* greetings still to print; -1: forever */
    double interval;
};

static void print_and_repeat(void *arg)
{
    struct greeter *g = arg;
    printf("Hello World\n");
    fflush(stdout);
    if (g->left > 0 && --g->left == 0) {
        asyncio_loop_stop(g->loop);
        return;
    }
    asyncio_loop_call_later(g->loop, g->interval, print_and_repeat, g, NULL);
}

int main(int argc, char **argv)
{
    struct greeter g = {NULL, argc > 1 ? atol(argv[1]) : -1, argc > 2 ? atof(argv[2]) : 2.0};
    int err = asyncio_get_event_loop(&g.loop);
    if (err < 0) {
        fprintf(stderr, "hello: %s\n", asyncio_strerror(err));
        return 1;
    }
    asyncio_loop_call_soon(g.loop, print_and_repeat, &g, NULL);
    asyncio_loop_run_forever(g.loop);
    asyncio_loop_close(g.loop);
    return 0;
}

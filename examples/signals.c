/* Set signal handlers for SIGINT and SIGTERM: the second example of the
 * asyncio event loop documentation. */
#include <asyncio.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

struct exit_request {
    asyncio_loop *loop;
    const char *signame;
};

static void ask_exit(void *arg)
{
    struct exit_request *r = arg;
    printf("got signal %s: exit\n", r->signame);
    asyncio_loop_stop(r->loop);
}

int main(void)
{
    asyncio_loop *loop;
    int err = asyncio_get_event_loop(&loop);
    if (err < 0) {
        fprintf(stderr, "signals: %s\n", asyncio_strerror(err));
        return 1;
    }
    struct exit_request on_int = {loop, "SIGINT"}, on_term = {loop, "SIGTERM"};
    asyncio_loop_add_signal_handler(loop, SIGINT, ask_exit, &on_int);
    asyncio_loop_add_signal_handler(loop, SIGTERM, ask_exit, &on_term);

    printf("Event loop running forever, press CTRL+c to interrupt.\n");
    printf("pid %ld: send SIGINT or SIGTERM to exit.\n", (long)getpid());
    fflush(stdout);
    asyncio_loop_run_forever(loop);
    asyncio_loop_close(loop);
    return 0;
}

/* TLS over real loopback sockets, with certificates made at suite start by
 * the openssl CLI (a CA; a server certificate for localhost + 127.0.0.1;
 * one for other.example only; an untrusted self-signed one) and real
 * peers: our own server and client, `openssl s_server` and `s_client` as
 * child processes, and forked children speaking TLS through OpenSSL
 * directly where the test needs a peer that misbehaves on purpose
 * (closes without close_notify, resets, never answers). */
#define _GNU_SOURCE /* strcasestr */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static char ca_pem[128], srv_pem[128], srv_key[128], other_pem[128], other_key[128], self_pem[128],
    self_key[128];

/* ---- Certificates (once, in main) ------------------------------------------------ */

/* Run `step` in directory `d` with sh. */
static int sh(const char *step, const char *d)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cd %s && %s", d, step);
    return system(cmd);
}

static int make_certs(void)
{
    snprintf(dir, sizeof(dir), "/tmp/asyncio-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
#define KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
    const char *steps[] = {
        "openssl req -x509 " KEY " -keyout ca.key -out ca.pem"
        " -subj /CN=libasyncio-test-ca >/dev/null 2>&1",
        "openssl req " KEY " -keyout server.key -out server.csr -subj /CN=localhost"
        " >/dev/null 2>&1 && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.cnf"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -days 2 -extfile san.cnf -out server.pem >/dev/null 2>&1",
        "openssl req " KEY " -keyout other.key -out other.csr -subj /CN=other.example"
        " >/dev/null 2>&1 && printf 'subjectAltName=DNS:other.example\\n' > other.cnf"
        " && openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -days 2 -extfile other.cnf -out other.pem >/dev/null 2>&1",
        "openssl req -x509 " KEY " -keyout self.key -out self.pem -subj /CN=localhost"
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1",
    };
#undef KEY
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (sh(steps[i], dir) != 0)
            return -1;
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
    snprintf(srv_pem, sizeof(srv_pem), "%s/server.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
    snprintf(other_pem, sizeof(other_pem), "%s/other.pem", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    snprintf(self_pem, sizeof(self_pem), "%s/self.pem", dir);
    snprintf(self_key, sizeof(self_key), "%s/self.key", dir);
    return 0;
}

static SSL_CTX *server_ctx(const char *pem, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx, pem), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    return ctx;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, ca_pem, NULL), 1);
    return ctx;
}

/* ---- Ports, children ---------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A listening socket on 127.0.0.1 and its port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Poll connect() until something listens on `port` (deadline 5 s). */
static void wait_listening(int port)
{
    double deadline = tu_now() + 5;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return;
        ck_assert_msg(tu_now() < deadline, "nothing listens on port %d", port);
        usleep(20000); /* a child process's start-up: no loop event to wait on */
    }
}

/* Run argv with stdin and stdout on pipes (NULL: /dev/null). */
static pid_t spawn(char *const argv[], int *in_fd, int *out_fd)
{
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (in_fd != NULL)
        *in_fd = in[1];
    else
        close(in[1]);
    if (out_fd != NULL)
        *out_fd = out[0];
    else
        close(out[0]);
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- Protocols ------------------------------------------------------------------------ */

struct srv_stats {
    int made, lost, eofs, lost_err;
};

struct echo {
    asyncio_protocol base;
    asyncio_transport *t;
    struct srv_stats *st;
};

static void echo_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct echo *e = (struct echo *)p;
    e->t = t;
    e->st->made++;
}

static void echo_data(asyncio_protocol *p, const void *data, size_t len)
{
    ck_assert_int_eq(asyncio_transport_write(((struct echo *)p)->t, data, len), 0);
}

static int echo_eof(asyncio_protocol *p)
{
    ((struct echo *)p)->st->eofs++;
    return 0;
}

static void echo_lost(asyncio_protocol *p, int err)
{
    struct echo *e = (struct echo *)p;
    e->st->lost++;
    e->st->lost_err = err;
    free(e);
}

static const asyncio_protocol_ops echo_ops = {.connection_made = echo_made,
                                              .data_received = echo_data,
                                              .eof_received = echo_eof,
                                              .connection_lost = echo_lost};

static asyncio_protocol *echo_factory(void *arg)
{
    struct echo *e = calloc(1, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    e->base.ops = &echo_ops;
    e->st = arg;
    return &e->base;
}

/* A client that records everything, and stops the loop when it has
 * `expect` bytes (closing if asked) and when the connection is lost. */
struct client {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    char *buf;
    size_t len, cap, expect;
    int close_at_expect;
    int made, eofs, lost, lost_err;
    int order_ok; /* eof_received came after all the data, lost last */
};

static void cl_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct client *c = (struct client *)p;
    c->t = t;
    c->made++;
}

static void cl_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct client *c = (struct client *)p;
    ck_assert_int_eq(c->eofs + c->lost, 0);
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->buf = realloc(c->buf, c->cap);
        ck_assert_ptr_nonnull(c->buf);
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    if (c->expect > 0 && c->len >= c->expect && c->len - len < c->expect) {
        if (c->close_at_expect)
            asyncio_transport_close(c->t);
        else
            asyncio_loop_stop(c->loop);
    }
}

static int cl_eof(asyncio_protocol *p)
{
    struct client *c = (struct client *)p;
    ck_assert_int_eq(c->lost, 0);
    c->eofs++;
    return 0;
}

static void cl_lost(asyncio_protocol *p, int err)
{
    struct client *c = (struct client *)p;
    c->lost++;
    c->lost_err = err;
    asyncio_loop_stop(c->loop);
}

static const asyncio_protocol_ops client_ops = {.connection_made = cl_made,
                                                .data_received = cl_data,
                                                .eof_received = cl_eof,
                                                .connection_lost = cl_lost};

static void client_init(struct client *c, asyncio_loop *loop)
{
    memset(c, 0, sizeof(*c));
    c->base.ops = &client_ops;
    c->loop = loop;
}

static asyncio_protocol *client_factory(void *arg) { return &((struct client *)arg)->base; }

static asyncio_protocol *refusing_factory(void *arg)
{
    (*(int *)arg)++;
    return NULL;
}

/* Our TLS echo server on 127.0.0.1; returns its port. */
static int start_server(asyncio_loop *loop, SSL_CTX *ctx, asyncio_protocol_factory f, void *arg,
                        asyncio_server **out)
{
    asyncio_server_options so = ASYNCIO_SERVER_OPTIONS_INIT;
    so.ssl = ctx;
    asyncio_future *fut;
    ck_assert_int_eq(asyncio_loop_create_server(loop, f, arg, "127.0.0.1", 0, &so, &fut), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, fut), 0);
    void *res;
    ck_assert_int_eq(asyncio_future_result(fut, &res), 0);
    asyncio_server *srv = res;
    asyncio_server_ref(srv);
    asyncio_future_unref(fut);
    int fd;
    ck_assert_int_eq(asyncio_server_get_sockets(srv, &fd, 1), 1);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *out = srv;
    return ntohs(a.sin_port);
}

/* create_connection with TLS; returns what run_until_complete returned. */
static int tls_connect(asyncio_loop *loop, struct client *c, const char *host, int port,
                       SSL_CTX *ctx, const char *server_hostname, asyncio_future **fut)
{
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = ctx;
    o.use_default_ssl = ctx == NULL;
    o.server_hostname = server_hostname;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, client_factory, c, host, port, &o, fut),
                     0);
    return asyncio_loop_run_until_complete(loop, *fut);
}

/* Abort and run until connection_lost (it stops the loop). */
static void abort_and_wait(asyncio_loop *loop, struct client *c)
{
    ck_assert_int_eq(asyncio_transport_abort(c->t), 0);
    tu_run(loop);
    ck_assert_int_eq(c->lost, 1);
}

/* ---- Forked raw TLS peers --------------------------------------------------------------- */

enum misbehave { DIRTY_CLOSE, RESET, CLEAN_CLOSE, NEVER_ANSWER };

/* A child that accepts one TLS connection on `lfd`, writes `msg`, then
 * ends the way `how` says. */
static pid_t raw_peer(int lfd, const char *msg, enum misbehave how)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid != 0)
        return pid;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx, srv_pem);
    SSL_CTX_use_PrivateKey_file(ctx, srv_key, SSL_FILETYPE_PEM);
    int fd = accept(lfd, NULL, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        _exit(2);
    SSL_write(ssl, msg, (int)strlen(msg));
    switch (how) {
    case DIRTY_CLOSE:
        close(fd);
        break;
    case RESET: {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
        break;
    }
    case CLEAN_CLOSE:
        SSL_shutdown(ssl);
        close(fd);
        break;
    case NEVER_ANSWER:
        pause(); /* killed by the test */
        break;
    }
    _exit(0);
}

/* ---- Tests -------------------------------------------------------------------------------- */

START_TEST(verified_echo)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key), *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *srv;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "localhost", &f), 0);
    ck_assert_int_eq(c.made, 1);
    ck_assert_ptr_nonnull(asyncio_transport_get_extra_info(c.t, "ssl_object"));
    ck_assert_ptr_nonnull(asyncio_transport_get_extra_info(c.t, "peercert"));
    ck_assert_ptr_nonnull(asyncio_transport_get_extra_info(c.t, "peername"));
    ck_assert_int_eq(asyncio_transport_can_write_eof(c.t), 0);
    c.expect = 11;
    c.close_at_expect = 1;
    ck_assert_int_eq(asyncio_transport_write(c.t, "hello world", 11), 0);
    tu_run(loop); /* echo, our close, the server's close_notify back */
    ck_assert_int_eq(c.len, 11);
    ck_assert_mem_eq(c.buf, "hello world", 11);
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(c.lost_err, 0);
    ck_assert_ptr_null(asyncio_transport_ssl_error(c.t));
    asyncio_future_unref(f);
    asyncio_server_close(srv);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    ck_assert_int_eq(st.made, 1);
    ck_assert_int_eq(st.eofs, 1); /* our close_notify reached it as EOF */
    free(c.buf);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(ip_address_is_verified_without_server_hostname)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key), *octx = server_ctx(other_pem, other_key),
            *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *srv, *other;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    int oport = start_server(loop, octx, echo_factory, &st, &other);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    /* server.pem names IP:127.0.0.1: verified against the literal. */
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, NULL, &f), 0);
    abort_and_wait(loop, &c);
    asyncio_future_unref(f);
    /* other.pem names other.example only. */
    struct client d;
    client_init(&d, loop);
    ck_assert_int_eq(tls_connect(loop, &d, "127.0.0.1", oport, cctx, NULL, &f), ASYNCIO_ECERT);
    ck_assert_ptr_nonnull(strcasestr(asyncio_future_ssl_error(f), "IP address mismatch"));
    ck_assert_int_eq(d.made, 0);
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    asyncio_server_unref(other);
    tu_free_loop(loop);
    SSL_CTX_free(sctx);
    SSL_CTX_free(octx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(wrong_host_name_fails_with_ecert)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key), *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *srv;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "wrong.example", &f),
                     ASYNCIO_ECERT);
    const char *why = asyncio_future_ssl_error(f);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strcasestr(why, "hostname mismatch") != NULL, "reason: %s", why);
    ck_assert_int_eq(c.made + c.lost, 0); /* no protocol was ever involved */
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    ck_assert_int_eq(st.made, 0); /* the server's side failed too: no protocol */
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(untrusted_certificate_fails_with_ecert)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(self_pem, self_key), *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *srv;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "localhost", &f),
                     ASYNCIO_ECERT);
    const char *why = asyncio_future_ssl_error(f);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, "self") != NULL && strstr(why, "signed") != NULL, "reason: %s", why);
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(empty_server_hostname_skips_the_host_check_only)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *octx = server_ctx(other_pem, other_key), *selfctx = server_ctx(self_pem, self_key),
            *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *other, *self;
    int oport = start_server(loop, octx, echo_factory, &st, &other);
    int sport = start_server(loop, selfctx, echo_factory, &st, &self);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", oport, cctx, "", &f), 0);
    abort_and_wait(loop, &c);
    asyncio_future_unref(f);
    struct client d; /* the chain is still checked */
    client_init(&d, loop);
    ck_assert_int_eq(tls_connect(loop, &d, "127.0.0.1", sport, cctx, "", &f), ASYNCIO_ECERT);
    asyncio_future_unref(f);
    asyncio_server_unref(other);
    asyncio_server_unref(self);
    tu_free_loop(loop);
    SSL_CTX_free(octx);
    SSL_CTX_free(selfctx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(default_context_verifies_against_the_system_store)
{
    /* SSL_CERT_FILE stands in for the system store: set before the
     * default context is first made (this child's first use). */
    setenv("SSL_CERT_FILE", ca_pem, 1);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key), *selfctx = server_ctx(self_pem, self_key);
    struct srv_stats st = {0};
    asyncio_server *srv, *self;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    int sport = start_server(loop, selfctx, echo_factory, &st, &self);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, NULL, "localhost", &f), 0);
    SSL *ssl = asyncio_transport_get_extra_info(c.t, "ssl_object");
    ck_assert_int_ge(SSL_version(ssl), TLS1_2_VERSION);
    abort_and_wait(loop, &c);
    asyncio_future_unref(f);
    struct client d;
    client_init(&d, loop);
    ck_assert_int_eq(tls_connect(loop, &d, "127.0.0.1", sport, NULL, "localhost", &f),
                     ASYNCIO_ECERT);
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    asyncio_server_unref(self);
    tu_free_loop(loop);
    SSL_CTX_free(sctx);
    SSL_CTX_free(selfctx);
}
END_TEST

START_TEST(one_mebibyte_is_byte_exact)
{
    asyncio_loop *loop = tu_new_loop();
    tu_guard(loop, 20);
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key), *cctx = client_ctx();
    struct srv_stats st = {0};
    asyncio_server *srv;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "localhost", &f), 0);
    size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    c.expect = n;
    c.close_at_expect = 1;
    ck_assert_int_eq(asyncio_transport_write(c.t, data, n), 0);
    tu_run(loop);
    ck_assert_int_eq(c.len, n);
    ck_assert(memcmp(c.buf, data, n) == 0);
    ck_assert_int_eq(c.lost_err, 0);
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    free(data);
    free(c.buf);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(interop_with_openssl_s_server)
{
    int port = free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    char *argv[] = {"openssl", "s_server", "-accept", portbuf,  "-cert", srv_pem,
                    "-key",    srv_key,    "-www",    "-quiet", NULL};
    pid_t pid = spawn(argv, NULL, NULL);
    wait_listening(port);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "localhost", &f), 0);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(asyncio_transport_write(c.t, req, strlen(req)), 0);
    tu_run(loop); /* until s_server closes the connection */
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_ge(c.len, 12);
    ck_assert_msg(memcmp(c.buf, "HTTP/1.0 200", 12) == 0, "got %.*s", (int)c.len, c.buf);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    free(c.buf);
    SSL_CTX_free(cctx);
    reap(pid);
}
END_TEST

/* add_reader callback: collect the child's stdout; stop at `want`. */
struct collect {
    asyncio_loop *loop;
    int fd;
    char buf[4096];
    size_t len;
    const char *want;
};

static void collect_cb(void *arg)
{
    struct collect *co = arg;
    ssize_t n = read(co->fd, co->buf + co->len, sizeof(co->buf) - 1 - co->len);
    if (n > 0)
        co->len += (size_t)n;
    co->buf[co->len] = '\0';
    if (n <= 0 || strstr(co->buf, co->want) != NULL) {
        asyncio_loop_remove_reader(co->loop, co->fd);
        asyncio_loop_stop(co->loop);
    }
}

START_TEST(interop_from_openssl_s_client)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key);
    struct srv_stats st = {0};
    asyncio_server *srv;
    int port = start_server(loop, sctx, echo_factory, &st, &srv);
    char target[32];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    char *argv[] = {"openssl",
                    "s_client",
                    "-connect",
                    target,
                    "-CAfile",
                    ca_pem,
                    "-verify_return_error",
                    "-verify_hostname",
                    "localhost",
                    "-quiet",
                    NULL};
    int in, out;
    pid_t pid = spawn(argv, &in, &out);
    ck_assert_int_eq(write(in, "ping from s_client\n", 19), 19);
    struct collect co = {.loop = loop, .fd = out, .want = "ping from s_client"};
    ck_assert_int_eq(asyncio_loop_add_reader(loop, out, collect_cb, &co), 0);
    tu_run(loop);
    ck_assert_msg(strstr(co.buf, "ping from s_client") != NULL, "s_client printed '%s'", co.buf);
    close(in); /* s_client -quiet ignores stdin EOF; killed below */
    reap(pid);
    close(out);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    ck_assert_int_eq(st.made, 1);
    SSL_CTX_free(sctx);
}
END_TEST

static void misbehaving_peer(enum misbehave how, int *lost_err, int *eofs, char *got, char *why,
                             size_t whylen)
{
    int port;
    int lfd = listener(&port);
    pid_t pid = raw_peer(lfd, "last words", how);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(tls_connect(loop, &c, "127.0.0.1", port, cctx, "localhost", &f), 0);
    tu_run(loop); /* until connection_lost */
    ck_assert_int_eq(c.lost, 1);
    *lost_err = c.lost_err;
    *eofs = c.eofs;
    snprintf(got, 32, "%.*s", (int)c.len, c.len ? c.buf : "");
    const char *w = asyncio_transport_ssl_error(c.t);
    snprintf(why, whylen, "%s", w != NULL ? w : "");
    asyncio_future_unref(f);
    tu_free_loop(loop);
    free(c.buf);
    SSL_CTX_free(cctx);
    reap(pid);
    close(lfd);
}

START_TEST(peer_closing_without_close_notify_is_an_ssl_error)
{
    int err, eofs;
    char got[32], why[256];
    misbehaving_peer(DIRTY_CLOSE, &err, &eofs, got, why, sizeof(why));
    ck_assert_str_eq(got, "last words"); /* nothing read before it is lost */
    ck_assert_int_eq(eofs, 0);           /* not a clean EOF: maybe cut short */
    ck_assert_int_eq(err, ASYNCIO_ESSL);
    ck_assert_msg(strstr(why, "unexpected eof") != NULL, "reason: %s", why);
}
END_TEST

START_TEST(peer_reset_is_econnreset)
{
    int err, eofs;
    char got[32], why[256];
    misbehaving_peer(RESET, &err, &eofs, got, why, sizeof(why));
    ck_assert_int_eq(eofs, 0);
    ck_assert_int_eq(err, -ECONNRESET);
}
END_TEST

START_TEST(peer_close_notify_is_eof)
{
    int err, eofs;
    char got[32], why[256];
    misbehaving_peer(CLEAN_CLOSE, &err, &eofs, got, why, sizeof(why));
    ck_assert_str_eq(got, "last words");
    ck_assert_int_eq(eofs, 1);
    ck_assert_int_eq(err, 0);
}
END_TEST

START_TEST(close_waits_at_most_the_shutdown_timeout)
{
    int port;
    int lfd = listener(&port);
    pid_t pid = raw_peer(lfd, "x", NEVER_ANSWER);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    c.expect = 1;
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = cctx;
    o.server_hostname = "localhost";
    o.ssl_shutdown_timeout = 0.3;
    asyncio_future *f;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, &o, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    if (c.len == 0)
        tu_run(loop); /* until the peer's byte */
    double t0 = tu_now();
    ck_assert_int_eq(asyncio_transport_close(c.t), 0);
    ck_assert_int_eq(asyncio_transport_is_closing(c.t), 1);
    tu_run(loop);
    double took = tu_now() - t0;
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(c.lost_err, -ETIMEDOUT);
    ck_assert_msg(took >= 0.25 && took < 2.0, "took %.3f s", took);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    free(c.buf);
    SSL_CTX_free(cctx);
    reap(pid);
    close(lfd);
}
END_TEST

START_TEST(silent_peer_hits_the_handshake_timeout)
{
    int port;
    int lfd = listener(&port); /* the kernel completes the connect; nobody speaks */
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = cctx;
    o.ssl_handshake_timeout = 0.3;
    asyncio_future *f;
    double t0 = tu_now();
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, &o, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), -ETIMEDOUT);
    double took = tu_now() - t0;
    ck_assert_msg(took >= 0.25 && took < 2.0, "took %.3f s", took);
    ck_assert_ptr_nonnull(strstr(asyncio_future_ssl_error(f), "timed out"));
    ck_assert_int_eq(c.made + c.lost, 0);
    asyncio_future_unref(f);
    tu_free_loop(loop); /* libevent closes a freed bufferevent's fd in its next pass */
    int peer = accept(lfd, NULL, NULL); /* our side was closed: EOF after the ClientHello */
    struct timeval tv = {2, 0};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    ssize_t n;
    while ((n = recv(peer, buf, sizeof(buf), 0)) > 0) {
    }
    ck_assert_int_eq(n, 0);
    close(peer);
    SSL_CTX_free(cctx);
    close(lfd);
}
END_TEST

static void record_exception(asyncio_loop *loop, const asyncio_error_context *ctx, void *arg)
{
    struct client *c = arg; /* reused as a record: error in lost_err, message in buf */
    c->lost_err = ctx->error;
    free(c->buf);
    c->buf = strdup(ctx->message);
    asyncio_loop_stop(loop);
}

START_TEST(failed_server_handshake_reaches_the_exception_handler_not_a_protocol)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *sctx = server_ctx(srv_pem, srv_key);
    int refused = 0;
    asyncio_server *srv;
    int port = start_server(loop, sctx, refusing_factory, &refused, &srv);
    struct client rec;
    client_init(&rec, loop);
    ck_assert_int_eq(asyncio_loop_set_exception_handler(loop, record_exception, &rec), 0);
    /* A plaintext client: the server's handshake fails. */
    struct client c;
    client_init(&c, loop);
    asyncio_future *f;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, NULL, &f), 0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    ck_assert_int_eq(asyncio_transport_write(c.t, "GET / HTTP/1.0\r\n\r\n", 18), 0);
    tu_run(loop); /* until the exception handler stops it */
    ck_assert_int_eq(rec.lost_err, ASYNCIO_ESSL);
    ck_assert_msg(strstr(rec.buf, "TLS handshake failed: ") != NULL, "message: %s", rec.buf);
    ck_assert_int_eq(refused, 0); /* no protocol was ever asked for */
    asyncio_future_unref(f);
    asyncio_server_unref(srv);
    tu_free_loop(loop);
    free(rec.buf);
    free(c.buf);
    SSL_CTX_free(sctx);
}
END_TEST

/* STARTTLS: the server greets in plaintext, the client asks for TLS, the
 * server says GO and both upgrade; then an echo over TLS. */
struct starttls_srv {
    asyncio_protocol base;
    asyncio_loop *loop;
    asyncio_transport *t;
    SSL_CTX *ctx;
    int made, upgraded, lost;
    char secret[64];
    size_t slen;
};

static void tls_result_cb(asyncio_future *f, void *arg);

static void ss_made(asyncio_protocol *p, asyncio_transport *t)
{
    struct starttls_srv *s = (struct starttls_srv *)p;
    s->t = t;
    s->made++;
    ck_assert_int_eq(asyncio_transport_write(t, "220 hello\r\n", 11), 0);
}

static void ss_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct starttls_srv *s = (struct starttls_srv *)p;
    if (!s->upgraded) {
        ck_assert_int_eq(len, 10);
        ck_assert_mem_eq(data, "STARTTLS\r\n", 10);
        ck_assert_int_eq(asyncio_transport_write(s->t, "GO\r\n", 4), 0);
        asyncio_future *f;
        ck_assert_int_eq(asyncio_loop_start_tls(s->loop, s->t, s->ctx, 1, NULL, &f), 0);
        s->upgraded = 1;
        ck_assert_int_eq(asyncio_future_add_done_callback(f, tls_result_cb, &s->t), 0);
        asyncio_future_unref(f);
        return;
    }
    ck_assert_ptr_nonnull(asyncio_transport_get_extra_info(s->t, "ssl_object"));
    memcpy(s->secret + s->slen, data, len);
    s->slen += len;
    ck_assert_int_eq(asyncio_transport_write(s->t, data, len), 0);
}

static void ss_lost(asyncio_protocol *p, int err) { ((struct starttls_srv *)p)->lost++; }

static const asyncio_protocol_ops ss_ops = {
    .connection_made = ss_made, .data_received = ss_data, .connection_lost = ss_lost};

static asyncio_protocol *ss_factory(void *arg) { return &((struct starttls_srv *)arg)->base; }

/* The new transport replaces the protocol's plain one. */
static void tls_result_cb(asyncio_future *f, void *arg)
{
    asyncio_transport **slot = arg;
    void *res;
    if (asyncio_future_result(f, &res) == 0) /* a failure reaches the protocol too */
        *slot = res;
}

static void client_upgraded_cb(asyncio_future *f, void *arg);

struct starttls_cl {
    struct client c; /* first */
    SSL_CTX *ctx;
    int upgraded;
    int tls_err; /* the start_tls future's error */
    char greeting[64];
    size_t glen;
};

static void sc_data(asyncio_protocol *p, const void *data, size_t len)
{
    struct starttls_cl *s = (struct starttls_cl *)p;
    if (s->upgraded) {
        cl_data(p, data, len);
        return;
    }
    memcpy(s->greeting + s->glen, data, len);
    s->glen += len;
    if (s->glen == 11) {
        ck_assert_mem_eq(s->greeting, "220 hello\r\n", 11);
        ck_assert_int_eq(asyncio_transport_write(s->c.t, "STARTTLS\r\n", 10), 0);
    } else if (s->glen == 15) {
        ck_assert_mem_eq(s->greeting + 11, "GO\r\n", 4);
        asyncio_future *f;
        ck_assert_int_eq(asyncio_loop_start_tls(s->c.loop, s->c.t, s->ctx, 0, "localhost", &f), 0);
        s->upgraded = 1;
        ck_assert_int_eq(asyncio_transport_is_closing(s->c.t), 1);
        ck_assert_int_eq(asyncio_transport_write(s->c.t, "x", 1), -EPIPE);
        ck_assert_int_eq(asyncio_future_add_done_callback(f, client_upgraded_cb, s), 0);
        asyncio_future_unref(f);
    }
}

static void client_upgraded_cb(asyncio_future *f, void *arg)
{
    struct starttls_cl *s = arg;
    s->tls_err = asyncio_future_exception(f);
    if (s->tls_err == 0)
        tls_result_cb(f, &s->c.t);
    asyncio_loop_stop(s->c.loop);
}

static const asyncio_protocol_ops sc_ops = {.connection_made = cl_made,
                                            .data_received = sc_data,
                                            .eof_received = cl_eof,
                                            .connection_lost = cl_lost};

START_TEST(start_tls_after_a_plaintext_greeting)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct starttls_srv ss = {.base.ops = &ss_ops, .loop = loop};
    ss.ctx = server_ctx(srv_pem, srv_key);
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_server(loop, ss_factory, &ss, "127.0.0.1", 0, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    void *res;
    asyncio_future_result(f, &res);
    int lfd;
    ck_assert_int_eq(asyncio_server_get_sockets(res, &lfd, 1), 1);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    struct starttls_cl sc;
    client_init(&sc.c, loop);
    sc.c.base.ops = &sc_ops;
    sc.ctx = client_ctx();
    sc.upgraded = 0;
    sc.tls_err = 0;
    sc.glen = 0;
    asyncio_future *cf;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, client_factory, &sc.c, "127.0.0.1",
                                                    ntohs(a.sin_port), NULL, &cf),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, cf), 0);
    asyncio_transport *plain = sc.c.t;
    asyncio_transport_ref(plain);
    tu_run(loop); /* greeting, STARTTLS, GO, both handshakes */
    ck_assert_ptr_ne(sc.c.t, plain);
    ck_assert_int_eq(asyncio_transport_is_closing(plain), 1);
    asyncio_transport_unref(plain);
    /* The client's done callback swapped in the TLS transport. */
    ck_assert_ptr_nonnull(asyncio_transport_get_extra_info(sc.c.t, "ssl_object"));
    ck_assert_ptr_eq(asyncio_transport_get_protocol(sc.c.t), &sc.c.base);
    sc.c.expect = 6;
    ck_assert_int_eq(asyncio_transport_write(sc.c.t, "secret", 6), 0);
    tu_run(loop);
    ck_assert_int_eq(sc.c.len, 6);
    ck_assert_mem_eq(sc.c.buf, "secret", 6);
    ck_assert_int_eq(ss.slen, 6);
    ck_assert_int_eq(ss.made, 1); /* no second connection_made */
    ck_assert_int_eq(sc.c.made, 1);
    ck_assert_int_eq(ss.lost + sc.c.lost, 0);
    asyncio_future_unref(f);
    asyncio_future_unref(cf);
    tu_free_loop(loop);
    ck_assert_int_eq(ss.lost, 1); /* loop close: each protocol hears it once */
    ck_assert_int_eq(sc.c.lost, 1);
    free(sc.c.buf);
    SSL_CTX_free(ss.ctx);
    SSL_CTX_free(sc.ctx);
}
END_TEST

START_TEST(cancelling_during_the_handshake_closes_the_socket)
{
    int port;
    int lfd = listener(&port); /* nobody answers the ClientHello */
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = cctx;
    o.server_hostname = "localhost";
    asyncio_future *f;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, &o, &f), 0);
    asyncio_loop_call_later(loop, 0.1, tu_stop_cb, loop, NULL);
    tu_run(loop); /* connect, then the ClientHello */
    int peer = accept(lfd, NULL, NULL);
    struct timeval tv = {2, 0};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    ck_assert_int_gt(recv(peer, buf, sizeof(buf), 0), 0); /* the ClientHello: handshaking */
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    asyncio_loop_call_later(loop, 0.05, tu_stop_cb, loop, NULL);
    tu_run(loop); /* the cancellation reaches the handshake, libevent's next pass closes */
    ssize_t n;
    while ((n = recv(peer, buf, sizeof(buf), 0)) > 0) {
    }
    ck_assert_int_eq(n, 0); /* our side closed long before the 60 s handshake timeout */
    ck_assert_int_eq(c.made + c.lost, 0);
    close(peer);
    asyncio_future_unref(f);
    tu_free_loop(loop);
    SSL_CTX_free(cctx);
    close(lfd);
}
END_TEST

START_TEST(loop_close_during_the_handshake_fails_the_future)
{
    int port;
    int lfd = listener(&port);
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = cctx;
    o.server_hostname = "localhost";
    asyncio_future *f;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", port, &o, &f), 0);
    asyncio_loop_call_later(loop, 0.1, tu_stop_cb, loop, NULL);
    tu_run(loop); /* the handshake is under way */
    int peer = accept(lfd, NULL, NULL);
    char buf[4096];
    struct timeval tv = {2, 0};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(asyncio_future_done(f), 0);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_future_done(f), 1);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_ECLOSED);
    ck_assert_int_eq(c.made + c.lost, 0);
    ssize_t n;
    while ((n = recv(peer, buf, sizeof(buf), 0)) > 0) {
    }
    ck_assert_int_eq(n, 0);
    close(peer);
    asyncio_future_unref(f);
    asyncio_loop_unref(loop);
    SSL_CTX_free(cctx);
    close(lfd);
}
END_TEST

START_TEST(tls_without_a_host_to_name_needs_server_hostname)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    struct client c;
    client_init(&c, loop);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    asyncio_connection_options o = ASYNCIO_CONNECTION_OPTIONS_INIT;
    o.ssl = cctx;
    o.sock = sv[0]; /* taken over on failure too */
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, client_factory, &c, NULL, 0, &o, &f),
                     -EINVAL);
    o.sock = -1;
    ck_assert_int_eq(
        asyncio_loop_create_unix_connection(loop, client_factory, &c, "/nonexistent", &o, &f),
        -EINVAL);
    o.ssl_handshake_timeout = NAN;
    ck_assert_int_eq(
        asyncio_loop_create_connection(loop, client_factory, &c, "127.0.0.1", 1, &o, &f), -EINVAL);
    close(sv[1]);
    tu_free_loop(loop);
    SSL_CTX_free(cctx);
}
END_TEST

START_TEST(start_tls_handshake_failure_reaches_the_protocol)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct starttls_srv ss = {.base.ops = &ss_ops, .loop = loop};
    ss.ctx = server_ctx(self_pem, self_key); /* a certificate the client does not trust */
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_create_server(loop, ss_factory, &ss, "127.0.0.1", 0, NULL, &f),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), 0);
    void *res;
    asyncio_future_result(f, &res);
    int lfd;
    ck_assert_int_eq(asyncio_server_get_sockets(res, &lfd, 1), 1);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    struct starttls_cl sc;
    client_init(&sc.c, loop);
    sc.c.base.ops = &sc_ops;
    sc.ctx = client_ctx();
    sc.upgraded = 0;
    sc.tls_err = 0;
    sc.glen = 0;
    asyncio_future *cf;
    ck_assert_int_eq(asyncio_loop_create_connection(loop, client_factory, &sc.c, "127.0.0.1",
                                                    ntohs(a.sin_port), NULL, &cf),
                     0);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, cf), 0);
    while (sc.tls_err == 0 || sc.c.lost == 0)
        tu_run(loop); /* greeting, STARTTLS, GO, the failed handshake (the guard bounds it) */
    ck_assert_int_eq(sc.tls_err, ASYNCIO_ECERT);
    ck_assert_int_eq(sc.c.lost, 1); /* the protocol moved, then heard the failure once */
    ck_assert_int_eq(sc.c.lost_err, ASYNCIO_ECERT);
    asyncio_loop_call_later(loop, 0.1, tu_stop_cb, loop, NULL);
    tu_run(loop); /* the server's side fails too (the client's alert) */
    ck_assert_int_eq(ss.lost, 1);
    asyncio_future_unref(f);
    asyncio_future_unref(cf);
    tu_free_loop(loop);
    ck_assert_int_eq(sc.c.lost, 1);
    ck_assert_int_eq(ss.lost, 1);
    free(sc.c.buf);
    SSL_CTX_free(ss.ctx);
    SSL_CTX_free(sc.ctx);
}
END_TEST

START_TEST(start_tls_rejects_what_it_cannot_upgrade)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    SSL_CTX *cctx = client_ctx();
    asyncio_future *f;
    ck_assert_int_eq(asyncio_loop_start_tls(NULL, NULL, cctx, 0, NULL, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_start_tls(loop, NULL, cctx, 0, NULL, &f), -EINVAL);
    ck_assert_ptr_null(asyncio_future_ssl_error(NULL));
    ck_assert_ptr_null(asyncio_transport_ssl_error(NULL));
    tu_free_loop(loop);
    SSL_CTX_free(cctx);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (make_certs() != 0) {
        fprintf(stderr, "test-tls: cannot make certificates with the openssl CLI\n");
        return 1;
    }
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, verified_echo);
    tcase_add_test(tc, ip_address_is_verified_without_server_hostname);
    tcase_add_test(tc, wrong_host_name_fails_with_ecert);
    tcase_add_test(tc, untrusted_certificate_fails_with_ecert);
    tcase_add_test(tc, empty_server_hostname_skips_the_host_check_only);
    tcase_add_test(tc, default_context_verifies_against_the_system_store);
    tcase_add_test(tc, one_mebibyte_is_byte_exact);
    tcase_add_test(tc, interop_with_openssl_s_server);
    tcase_add_test(tc, interop_from_openssl_s_client);
    tcase_add_test(tc, peer_closing_without_close_notify_is_an_ssl_error);
    tcase_add_test(tc, peer_reset_is_econnreset);
    tcase_add_test(tc, peer_close_notify_is_eof);
    tcase_add_test(tc, close_waits_at_most_the_shutdown_timeout);
    tcase_add_test(tc, silent_peer_hits_the_handshake_timeout);
    tcase_add_test(tc, failed_server_handshake_reaches_the_exception_handler_not_a_protocol);
    tcase_add_test(tc, start_tls_after_a_plaintext_greeting);
    tcase_add_test(tc, start_tls_rejects_what_it_cannot_upgrade);
    tcase_add_test(tc, start_tls_handshake_failure_reaches_the_protocol);
    tcase_add_test(tc, cancelling_during_the_handshake_closes_the_socket);
    tcase_add_test(tc, loop_close_during_the_handshake_fails_the_future);
    tcase_add_test(tc, tls_without_a_host_to_name_needs_server_hostname);
    suite_add_tcase(s, tc);
    int rc = tu_run_suite(s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}

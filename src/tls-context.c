/* TLS contexts, per-connection SSL setup, and what OpenSSL's errors mean.
 *
 * Owns: the process's default client context (made once, never freed:
 * SSL_CTX is reference counted and safe to share between threads); per
 * loop, a small ring of the reasons its recent handshakes failed
 * (loop->tls_failures), each holding a reference to its future so the
 * pointer cannot be reused while it is remembered, all dropped by a
 * closable when the loop closes.  Loop thread only, but for the default
 * context (pthread_once).
 *
 * Verification: libevent does none, so each client SSL gets
 * SSL_VERIFY_PEER, and the host check from OpenSSL itself: SSL_set1_host
 * for a name, X509_VERIFY_PARAM_set1_ip_asc for an IP literal (a name
 * check would compare the literal against DNS entries and fail on
 * IP-only certificates).  SNI is sent for names only (RFC 6066 forbids
 * literals).
 *
 * Errors.  libevent's OpenSSL bufferevent queues up to three codes per
 * failure: the SSL_get_error() value (small numbers) and the ERR_* codes.
 * Under OpenSSL 3 a peer that closes TCP without close_notify gives
 * SSL_ERROR_SSL + SSL_R_UNEXPECTED_EOF_WHILE_READING (libevent 2.1 calls
 * that an error even with dirty shutdown allowed); a reset gives
 * SSL_ERROR_SYSCALL with an empty ERR queue and errno set, which is only
 * meaningful while libevent reports it -- the reason tls.c's bufferevents
 * do not defer their callbacks. */
#include "tls.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- A socket BIO that never raises SIGPIPE ------------------------------------ */

/* OpenSSL's socket BIO writes with write(), which raises SIGPIPE on a
 * connection the peer reset (every later write, or the first one once the
 * peer's FIN came first); a library must not kill its process for that,
 * nor change its signal dispositions.  So TLS sockets get a copy of the
 * socket method whose writes are send(MSG_NOSIGNAL); the rest (read,
 * ctrl, create, destroy) is OpenSSL's own.  Made once, never freed. */
static BIO_METHOD *nosigpipe_method;
static pthread_once_t nosigpipe_once = PTHREAD_ONCE_INIT;

static int nosigpipe_write(BIO *b, const char *in, int inl)
{
    int fd = (int)BIO_get_fd(b, NULL);
    errno = 0;
    ssize_t n = send(fd, in, (size_t)(inl > 0 ? inl : 0), MSG_NOSIGNAL);
    BIO_clear_retry_flags(b);
    if (n <= 0 && BIO_sock_should_retry((int)n))
        BIO_set_retry_write(b);
    return (int)n;
}

static int nosigpipe_puts(BIO *b, const char *str)
{
    return nosigpipe_write(b, str, (int)strlen(str));
}

static void make_nosigpipe(void)
{
    const BIO_METHOD *sock = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket, MSG_NOSIGNAL");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, nosigpipe_write) || !BIO_meth_set_puts(m, nosigpipe_puts) ||
        !BIO_meth_set_read(m, BIO_meth_get_read(sock)) ||
        !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) ||
        !BIO_meth_set_create(m, BIO_meth_get_create(sock)) ||
        !BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock))) {
        BIO_meth_free(m);
        return;
    }
    nosigpipe_method = m;
}

BIO *asyncio__tls_socket_bio(int fd)
{
    pthread_once(&nosigpipe_once, make_nosigpipe);
    BIO *b = nosigpipe_method != NULL ? BIO_new(nosigpipe_method) : NULL;
    if (b != NULL)
        BIO_set_fd(b, fd, BIO_NOCLOSE);
    return b;
}

/* ---- The default context --------------------------------------------------- */

static SSL_CTX *default_ctx;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        return;
    }
    /* A missing store is not an error here: every verification fails,
     * which is the safe outcome. */
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    default_ctx = ctx;
}

SSL_CTX *asyncio_default_ssl_context(void)
{
    pthread_once(&default_once, make_default);
    return default_ctx;
}

/* ---- One connection's SSL ---------------------------------------------------- */

static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *asyncio__tls_new_ssl(SSL_CTX *ctx, int server_side, const char *hostname, int *err)
{
    *err = -ENOMEM;
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (server_side) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL); /* keeps the context's callback */
    if (hostname != NULL && hostname[0] != '\0') {
        int ok;
        if (is_ip_literal(hostname)) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), hostname) == 1;
        } else {
            /* No partial wildcards ("f*o.example"), as browsers and
             * CPython do. */
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set_tlsext_host_name(ssl, hostname) == 1 && SSL_set1_host(ssl, hostname) == 1;
        }
        if (!ok) {
            ERR_clear_error();
            SSL_free(ssl);
            *err = -EINVAL;
            return NULL;
        }
    }
    *err = 0;
    return ssl;
}

/* ---- Errors -------------------------------------------------------------------- */

int asyncio__tls_map_error(struct bufferevent *bev, int sys_errno, int handshake, char *detail,
                           int *dirty_eof)
{
    int saw_syscall = 0, saw_ssl = 0;
    unsigned long reason = 0;
    unsigned long e;
    *dirty_eof = 0;
    detail[0] = '\0';
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        if (e == SSL_ERROR_SYSCALL) {
            saw_syscall = 1;
        } else if (e < 256) {
            saw_ssl = 1; /* SSL_ERROR_SSL and the like: the ERR codes follow */
        } else {
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING /* OpenSSL 3 (and 1.1.1e+) */
            if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                *dirty_eof = 1;
#endif
            if (reason == 0)
                reason = e;
        }
    }
    ERR_clear_error();

    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (handshake && vr != X509_V_OK) {
        snprintf(detail, ASYNCIO__TLS_DETAIL, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        return ASYNCIO_ECERT;
    }
    if (*dirty_eof) {
        snprintf(detail, ASYNCIO__TLS_DETAIL,
                 "unexpected eof while reading (the peer closed without close_notify)");
        return ASYNCIO_ESSL;
    }
    if (reason == 0 && (saw_syscall || !saw_ssl)) {
        if (sys_errno > 0)
            return -sys_errno; /* the socket's own error: ECONNRESET */
        /* OpenSSL 1.1's way of telling a dirty EOF. */
        *dirty_eof = 1;
        snprintf(detail, ASYNCIO__TLS_DETAIL,
                 "unexpected eof while reading (the peer closed without close_notify)");
        return ASYNCIO_ESSL;
    }
    const char *r = reason != 0 ? ERR_reason_error_string(reason) : NULL;
    snprintf(detail, ASYNCIO__TLS_DETAIL, "%s", r != NULL ? r : "TLS protocol error");
    return ASYNCIO_ESSL;
}

/* ---- Remembered reasons ------------------------------------------------------------ */

#define REMEMBERED 16

struct failure {
    asyncio_future *future; /* a reference, or NULL */
    char detail[ASYNCIO__TLS_DETAIL];
};

struct asyncio__tls_failures {
    asyncio__closable closable;
    asyncio_loop *loop;
    unsigned next; /* ring position of the next entry */
    struct failure v[REMEMBERED];
};

static void failures_close(asyncio__closable *c)
{
    struct asyncio__tls_failures *fs =
        asyncio__container_of(c, struct asyncio__tls_failures, closable);
    fs->loop->tls_failures = NULL;
    for (unsigned i = 0; i < REMEMBERED; i++)
        if (fs->v[i].future != NULL)
            asyncio_future_unref(fs->v[i].future);
    free(fs);
}

void asyncio__tls_remember(asyncio_loop *loop, asyncio_future *f, const char *detail)
{
    if (loop->closed || f == NULL || detail == NULL || detail[0] == '\0')
        return;
    struct asyncio__tls_failures *fs = loop->tls_failures;
    if (fs == NULL) {
        fs = calloc(1, sizeof(*fs));
        if (fs == NULL)
            return; /* the reason is a courtesy: the error code stands */
        fs->closable.close = failures_close;
        fs->loop = loop;
        asyncio__loop_add_closable(loop, &fs->closable);
        loop->tls_failures = fs;
    }
    struct failure *slot = &fs->v[fs->next];
    fs->next = (fs->next + 1) % REMEMBERED;
    if (slot->future != NULL)
        asyncio_future_unref(slot->future);
    asyncio_future_ref(f);
    slot->future = f;
    snprintf(slot->detail, sizeof(slot->detail), "%s", detail);
}

const char *asyncio_future_ssl_error(asyncio_future *f)
{
    if (f == NULL)
        return NULL;
    asyncio_loop *loop = asyncio_future_get_loop(f);
    struct asyncio__tls_failures *fs = loop != NULL ? loop->tls_failures : NULL;
    if (fs == NULL)
        return NULL;
    for (unsigned i = 0; i < REMEMBERED; i++)
        if (fs->v[i].future == f)
            return fs->v[i].detail;
    return NULL;
}

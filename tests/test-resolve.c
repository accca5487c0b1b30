/* getaddrinfo / getnameinfo on the loop's evdns base.
 *
 * No test asks the machine's nameserver or leaves loopback: each starts a
 * DNS server of its own with libevent's evdns server API, on 127.0.0.1, an
 * ephemeral UDP port and the same event_base as the loop under test, and
 * points the loop's resolver at it.  The server knows made-up names under
 * .test and the documentation address ranges, and answers NXDOMAIN for
 * anything else; a "silent" server is a bound UDP socket nobody reads. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- The test's DNS server ------------------------------------------------------ */

#define WWW_V4 "192.0.2.10"
#define WWW_V6 "2001:db8::10"
#define WWW_PTR_V4 "10.2.0.192.in-addr.arpa"
#define WWW_PTR_V6 "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"

struct dns_server {
    struct evdns_server_port *port;
    int fd; /* silent servers: the socket nobody reads */
    int portnum;
    int queries;
};

static void serve(struct evdns_server_request *req, void *arg)
{
    struct dns_server *srv = arg;
    int known = 0;
    for (int i = 0; i < req->nquestions; i++) {
        const struct evdns_server_question *q = req->questions[i];
        srv->queries++;
        /* evdns randomizes the case of the names it asks (0x20). */
        if (strcasecmp(q->name, "www.example.test") == 0) {
            known = 1;
            if (q->type == EVDNS_TYPE_A) {
                struct in_addr a;
                inet_pton(AF_INET, WWW_V4, &a);
                evdns_server_request_add_a_reply(req, q->name, 1, &a, 60);
            } else if (q->type == EVDNS_TYPE_AAAA) {
                struct in6_addr a6;
                inet_pton(AF_INET6, WWW_V6, &a6);
                evdns_server_request_add_aaaa_reply(req, q->name, 1, &a6, 60);
            }
        } else if (strcasecmp(q->name, "v4only.example.test") == 0) {
            known = 1; /* AAAA: an empty answer */
            if (q->type == EVDNS_TYPE_A) {
                struct in_addr a;
                inet_pton(AF_INET, "192.0.2.20", &a);
                evdns_server_request_add_a_reply(req, q->name, 1, &a, 60);
            }
        } else if (q->type == EVDNS_TYPE_PTR && strcasecmp(q->name, WWW_PTR_V4) == 0) {
            known = 1;
            evdns_server_request_add_ptr_reply(req, NULL, q->name, "www.example.test", 60);
        } else if (q->type == EVDNS_TYPE_PTR && strcasecmp(q->name, WWW_PTR_V6) == 0) {
            known = 1;
            evdns_server_request_add_ptr_reply(req, NULL, q->name, "www6.example.test", 60);
        }
    }
    evdns_server_request_respond(req, known ? DNS_ERR_NONE : DNS_ERR_NOTEXIST);
}

static int bound_udp_socket(int *portnum)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *portnum = ntohs(sin.sin_port);
    return fd;
}

/* Point the loop's resolver at 127.0.0.1:port only, with no search list. */
static void use_nameserver(asyncio_loop *loop, int portnum)
{
    struct evdns_base *dns = asyncio_loop_get_evdns_base(loop);
    ck_assert_ptr_nonnull(dns);
    ck_assert_int_eq(evdns_base_clear_nameservers_and_suspend(dns), 0);
    evdns_base_search_clear(dns);
    char ns[32];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", portnum);
    ck_assert_int_eq(evdns_base_nameserver_ip_add(dns, ns), 0);
    ck_assert_int_eq(evdns_base_resume(dns), 0);
}

static void start_server(asyncio_loop *loop, struct dns_server *srv)
{
    memset(srv, 0, sizeof(*srv));
    int fd = bound_udp_socket(&srv->portnum);
    srv->fd = -1;
    srv->port =
        evdns_add_server_port_with_base(asyncio_loop_get_event_base(loop), fd, 0, serve, srv);
    ck_assert_ptr_nonnull(srv->port);
    use_nameserver(loop, srv->portnum);
}

/* A nameserver that never answers, and a resolver that gives up fast. */
static void start_silent_server(asyncio_loop *loop, struct dns_server *srv, const char *timeout)
{
    memset(srv, 0, sizeof(*srv));
    srv->fd = bound_udp_socket(&srv->portnum);
    use_nameserver(loop, srv->portnum);
    struct evdns_base *dns = asyncio_loop_get_evdns_base(loop);
    ck_assert_int_eq(evdns_base_set_option(dns, "timeout:", timeout), 0);
    ck_assert_int_eq(evdns_base_set_option(dns, "attempts:", "1"), 0);
}

static void stop_server(struct dns_server *srv)
{
    if (srv->port != NULL)
        evdns_close_server_port(srv->port); /* closes its socket */
    if (srv->fd >= 0)
        close(srv->fd);
}

/* ---- Helpers ------------------------------------------------------------------------- */

static struct addrinfo stream_hints(int family)
{
    struct addrinfo h;
    memset(&h, 0, sizeof(h));
    h.ai_family = family;
    h.ai_socktype = SOCK_STREAM;
    return h;
}

static asyncio_future *gai(asyncio_loop *loop, const char *host, const char *port,
                           const struct addrinfo *hints)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_getaddrinfo(loop, host, port, hints, &f);
    ck_assert_msg(rc == 0, "getaddrinfo: %d (%s)", rc, asyncio_strerror(rc));
    ck_assert_ptr_nonnull(f);
    /* Never completed inside the call, whatever the host. */
    ck_assert_int_eq(asyncio_future_done(f), 0);
    return f;
}

static struct addrinfo *gai_result(asyncio_loop *loop, asyncio_future *f)
{
    int rc = asyncio_loop_run_until_complete(loop, f);
    ck_assert_msg(rc == 0, "lookup failed: %d (%s)", rc, asyncio_strerror(rc));
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* The addresses of a result as "a.b.c.d:port" strings, one per entry. */
static size_t addrs_of(const struct addrinfo *ai, char out[][64], size_t max)
{
    size_t n = 0;
    for (; ai != NULL && n < max; ai = ai->ai_next, n++) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = -1;
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *s = (const struct sockaddr_in *)ai->ai_addr;
            ck_assert_int_eq(ai->ai_addrlen, sizeof(*s));
            inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
            port = ntohs(s->sin_port);
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ai->ai_addr;
            ck_assert_int_eq(ai->ai_addrlen, sizeof(*s));
            inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
            port = ntohs(s->sin6_port);
        }
        ck_assert_int_eq(ai->ai_socktype, SOCK_STREAM);
        snprintf(out[n], 64, "%s:%d", ip, port);
    }
    return n;
}

static void run_for(asyncio_loop *loop, double seconds)
{
    ck_assert_int_eq(asyncio_loop_call_later(loop, seconds, tu_stop_cb, loop, NULL), 0);
    tu_run(loop);
}

/* ---- getaddrinfo ---------------------------------------------------------------------- */

START_TEST(numeric_ipv4_host_is_answered_from_the_loop_without_dns)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *f = gai(loop, "127.0.0.1", "8080", &h);
    struct addrinfo *ai = gai_result(loop, f);
    char a[4][64];
    ck_assert_uint_eq(addrs_of(ai, a, 4), 1);
    ck_assert_str_eq(a[0], "127.0.0.1:8080");
    ck_assert_int_eq(srv.queries, 0);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(numeric_ipv6_host_is_answered_from_the_loop)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_UNSPEC);
    h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    asyncio_future *f = gai(loop, "2001:db8::1", "443", &h);
    struct addrinfo *ai = gai_result(loop, f);
    char a[4][64];
    ck_assert_uint_eq(addrs_of(ai, a, 4), 1);
    ck_assert_str_eq(a[0], "2001:db8::1:443");
    ck_assert_int_eq(srv.queries, 0);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(name_gets_a_and_aaaa_from_the_nameserver)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *f = gai(loop, "www.example.test", "80", &h);
    struct addrinfo *ai = gai_result(loop, f);
    char a[4][64];
    ck_assert_uint_eq(addrs_of(ai, a, 4), 2);
    ck_assert_str_eq(a[0], WWW_V4 ":80"); /* libevent: A before AAAA */
    ck_assert_str_eq(a[1], WWW_V6 ":80");
    ck_assert_int_eq(srv.queries, 2);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(family_in_hints_limits_the_query)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_INET6);
    asyncio_future *f = gai(loop, "www.example.test", "443", &h);
    struct addrinfo *ai = gai_result(loop, f);
    char a[4][64];
    ck_assert_uint_eq(addrs_of(ai, a, 4), 1);
    ck_assert_str_eq(a[0], WWW_V6 ":443");
    ck_assert_int_eq(srv.queries, 1);
    asyncio_future_unref(f);

    /* A name with no AAAA record asked for both families: the A alone. */
    h = stream_hints(AF_UNSPEC);
    f = gai(loop, "v4only.example.test", "1", &h);
    ai = gai_result(loop, f);
    ck_assert_uint_eq(addrs_of(ai, a, 4), 1);
    ck_assert_str_eq(a[0], "192.0.2.20:1");
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(nxdomain_fails_with_eai_noname)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *f = gai(loop, "nowhere.example.test", "80", &h);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    ck_assert_int_eq(asyncio_future_exception(f), ASYNCIO_EAI_NONAME);
    ck_assert_int_gt(srv.queries, 0);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(errors_found_without_dns_come_through_the_future)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    /* AI_NUMERICHOST with a name. */
    struct addrinfo h = stream_hints(AF_UNSPEC);
    h.ai_flags = AI_NUMERICHOST;
    asyncio_future *f = gai(loop, "www.example.test", "80", &h);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);
    /* An unknown service name. */
    h = stream_hints(AF_UNSPEC);
    f = gai(loop, "127.0.0.1", "no-such-service-here", &h);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_SERVICE);
    asyncio_future_unref(f);
    /* No host and no port. */
    f = gai(loop, NULL, NULL, NULL);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);
    ck_assert_int_eq(srv.queries, 0);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

/* libevent reports a lookup that timed out as EVUTIL_EAI_FAIL (evdns.c:
 * evdns_err_to_getaddrinfo_err maps every DNS error but NXDOMAIN to it). */
START_TEST(nameserver_that_never_answers_times_out)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_silent_server(loop, &srv, "0.2");
    struct addrinfo h = stream_hints(AF_INET);
    double t0 = tu_now();
    asyncio_future *f = gai(loop, "www.example.test", "80", &h);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_FAIL);
    double took = tu_now() - t0;
    ck_assert_msg(took >= 0.15 && took < 3.0, "timed out after %.3f s", took);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancel_while_the_query_is_pending)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_silent_server(loop, &srv, "5");
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *f = gai(loop, "www.example.test", "80", &h);
    run_for(loop, 0.02); /* the queries are out */
    ck_assert_int_eq(asyncio_future_done(f), 0);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.05); /* the cancel reaches evdns, which calls back */
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    /* The resolver still works afterwards. */
    stop_server(&srv);
    struct dns_server live;
    start_server(loop, &live);
    f = gai(loop, "www.example.test", "80", &h);
    struct addrinfo *ai = gai_result(loop, f);
    char a[4][64];
    ck_assert_uint_eq(addrs_of(ai, a, 4), 2);
    asyncio_future_unref(f);
    stop_server(&live);
    tu_free_loop(loop);
}
END_TEST

START_TEST(cancel_before_an_immediate_answer_is_delivered)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct addrinfo h = stream_hints(AF_INET);
    asyncio_future *f = gai(loop, "127.0.0.1", "80", &h);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.01);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(released_future_still_completes_and_frees)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *f = gai(loop, "www.example.test", "80", &h);
    asyncio_future_unref(f); /* nobody waits: the answer is freed with it */
    asyncio_future *g = gai(loop, "127.0.0.1", "80", &h);
    asyncio_future_unref(g);
    run_for(loop, 0.2);
    ck_assert_int_eq(srv.queries, 2);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

/* Closing the loop fails what evdns still has; no future gets an answer,
 * and nothing leaks (ASan) or is touched after it was freed. */
START_TEST(close_with_lookups_pending)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_silent_server(loop, &srv, "5");
    struct addrinfo h = stream_hints(AF_UNSPEC);
    asyncio_future *kept = gai(loop, "www.example.test", "80", &h);
    asyncio_future *released = gai(loop, "other.example.test", "80", &h);
    asyncio_future *numeric = gai(loop, "127.0.0.1", "80", &h);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "192.0.2.77", &sin.sin_addr);
    asyncio_future *name = NULL;
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, (struct sockaddr *)&sin, sizeof(sin), 0, &name),
                     0);
    run_for(loop, 0.02);
    asyncio_future_unref(released);
    ck_assert_int_eq(asyncio_future_done(kept), 0);
    ck_assert_int_eq(asyncio_future_done(name), 0);
    asyncio_future *soon = gai(loop, "127.0.0.1", "81", &h); /* answer still queued */
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    /* Cancelled, or -- where the core freezes a closed loop's futures --
     * still pending: never given an answer after close. */
    ck_assert(!asyncio_future_done(kept) || asyncio_future_cancelled(kept));
    ck_assert(!asyncio_future_done(name) || asyncio_future_cancelled(name));
    ck_assert(!asyncio_future_done(soon) || asyncio_future_cancelled(soon));
    ck_assert_int_eq(asyncio_future_done(numeric), 1);
    ck_assert_ptr_null(asyncio_loop_get_evdns_base(loop));
    asyncio_future_unref(kept);
    asyncio_future_unref(name);
    asyncio_future_unref(soon);
    asyncio_future_unref(numeric);
    stop_server(&srv);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(getaddrinfo_bad_arguments)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    ck_assert_int_eq(asyncio_loop_getaddrinfo(NULL, "127.0.0.1", "80", NULL, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getaddrinfo(loop, "127.0.0.1", "80", NULL, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_getaddrinfo(loop, "127.0.0.1", "80", NULL, &f), ASYNCIO_ECLOSED);
    ck_assert_ptr_null(f);
    asyncio_loop_unref(loop);
}
END_TEST

START_TEST(evdns_base_is_the_loops_own)
{
    asyncio_loop *loop = tu_new_loop();
    struct evdns_base *dns = asyncio_loop_get_evdns_base(loop);
    ck_assert_ptr_nonnull(dns);
    ck_assert_ptr_eq(asyncio_loop_get_evdns_base(loop), dns);
    asyncio_loop *other = tu_new_loop();
    ck_assert_ptr_ne(asyncio_loop_get_evdns_base(other), dns);
    tu_free_loop(other);
    ck_assert_ptr_null(asyncio_loop_get_evdns_base(NULL));
    tu_free_loop(loop);
}
END_TEST

/* ---- getnameinfo ------------------------------------------------------------------------ */

static asyncio_nameinfo *ni_result(asyncio_loop *loop, asyncio_future *f)
{
    int rc = asyncio_loop_run_until_complete(loop, f);
    ck_assert_msg(rc == 0, "getnameinfo failed: %d (%s)", rc, asyncio_strerror(rc));
    void *r = NULL;
    ck_assert_int_eq(asyncio_future_result(f, &r), 0);
    ck_assert_ptr_nonnull(r);
    return r;
}

static asyncio_future *gni(asyncio_loop *loop, const struct sockaddr *sa, socklen_t len, int flags)
{
    asyncio_future *f = NULL;
    int rc = asyncio_loop_getnameinfo(loop, sa, len, flags, &f);
    ck_assert_msg(rc == 0, "getnameinfo: %d (%s)", rc, asyncio_strerror(rc));
    ck_assert_int_eq(asyncio_future_done(f), 0);
    return f;
}

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

START_TEST(getnameinfo_numeric_is_answered_without_dns)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct sockaddr_in sin = v4(WWW_V4, 8080);
    asyncio_future *f =
        gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NUMERICHOST | NI_NUMERICSERV);
    asyncio_nameinfo *ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, WWW_V4);
    ck_assert_str_eq(ni->serv, "8080");
    asyncio_future_unref(f);

    struct sockaddr_in6 sin6 = v6(WWW_V6, 53);
    f = gni(loop, (struct sockaddr *)&sin6, sizeof(sin6),
            NI_NUMERICHOST | NI_NUMERICSERV | NI_DGRAM);
    ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, WWW_V6);
    ck_assert_str_eq(ni->serv, "53");
    asyncio_future_unref(f);
    ck_assert_int_eq(srv.queries, 0);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_service_names_come_from_services)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct sockaddr_in sin = v4("192.0.2.1", 80);
    asyncio_future *f = gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NUMERICHOST);
    asyncio_nameinfo *ni = ni_result(loop, f);
    /* What this machine's /etc/services says, or the number. */
    struct servent *se = getservbyport(htons(80), "tcp");
    ck_assert_str_eq(ni->serv, se != NULL ? se->s_name : "80");
    asyncio_future_unref(f);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_reverse_lookup_uses_ptr_records)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct sockaddr_in sin = v4(WWW_V4, 443);
    asyncio_future *f =
        gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NUMERICSERV | NI_NAMEREQD);
    asyncio_nameinfo *ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, "www.example.test");
    ck_assert_str_eq(ni->serv, "443");
    asyncio_future_unref(f);
    ck_assert_int_eq(srv.queries, 1);

    struct sockaddr_in6 sin6 = v6(WWW_V6, 443);
    f = gni(loop, (struct sockaddr *)&sin6, sizeof(sin6), NI_NUMERICSERV);
    ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, "www6.example.test");
    asyncio_future_unref(f);

    /* An IPv4-mapped IPv6 address is asked as IPv4. */
    sin6 = v6("::ffff:" WWW_V4, 443);
    f = gni(loop, (struct sockaddr *)&sin6, sizeof(sin6), NI_NUMERICSERV);
    ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, "www.example.test");
    asyncio_future_unref(f);
    ck_assert_int_eq(srv.queries, 3);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_without_a_name)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_server(loop, &srv);
    struct sockaddr_in sin = v4("192.0.2.99", 80);
    /* NI_NAMEREQD: an error. */
    asyncio_future *f =
        gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NAMEREQD | NI_NUMERICSERV);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);
    /* Otherwise the number. */
    f = gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NUMERICSERV);
    asyncio_nameinfo *ni = ni_result(loop, f);
    ck_assert_str_eq(ni->host, "192.0.2.99");
    ck_assert_str_eq(ni->serv, "80");
    asyncio_future_unref(f);
    /* A name required but none may be looked up. */
    f = gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NAMEREQD | NI_NUMERICHOST);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_NONAME);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_timeout_with_namereqd_is_eai_again)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_silent_server(loop, &srv, "0.2");
    struct sockaddr_in sin = v4(WWW_V4, 80);
    asyncio_future *f = gni(loop, (struct sockaddr *)&sin, sizeof(sin), NI_NAMEREQD);
    ck_assert_int_eq(asyncio_loop_run_until_complete(loop, f), ASYNCIO_EAI_AGAIN);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_cancel_while_pending)
{
    asyncio_loop *loop = tu_new_guarded_loop();
    struct dns_server srv;
    start_silent_server(loop, &srv, "5");
    struct sockaddr_in sin = v4(WWW_V4, 80);
    asyncio_future *f = gni(loop, (struct sockaddr *)&sin, sizeof(sin), 0);
    run_for(loop, 0.02);
    ck_assert_int_eq(asyncio_future_cancel(f), 1);
    run_for(loop, 0.05);
    ck_assert_int_eq(asyncio_future_cancelled(f), 1);
    asyncio_future_unref(f);
    stop_server(&srv);
    tu_free_loop(loop);
}
END_TEST

START_TEST(getnameinfo_bad_arguments)
{
    asyncio_loop *loop = tu_new_loop();
    asyncio_future *f = NULL;
    struct sockaddr_in sin = v4("192.0.2.1", 80);
    struct sockaddr_in6 sin6 = v6("2001:db8::1", 80);
    const struct sockaddr *sa = (struct sockaddr *)&sin;
    ck_assert_int_eq(asyncio_loop_getnameinfo(NULL, sa, sizeof(sin), 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, NULL, sizeof(sin), 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, sa, sizeof(sin), 0, NULL), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, sa, sizeof(sin), 0x40000000, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, sa, sizeof(sin) - 1, 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, sa, 1, 0, &f), -EINVAL);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, (struct sockaddr *)&sin6, sizeof(sin), 0, &f),
                     -EINVAL);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, (struct sockaddr *)&ss, sizeof(ss), 0, &f),
                     ASYNCIO_EAI_FAMILY);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(asyncio_loop_close(loop), 0);
    ck_assert_int_eq(asyncio_loop_getnameinfo(loop, sa, sizeof(sin), 0, &f), ASYNCIO_ECLOSED);
    asyncio_loop_unref(loop);
}
END_TEST

static Suite *resolve_suite(void)
{
    Suite *s = suite_create("resolve");
    TCase *tc = tcase_create("getaddrinfo");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, numeric_ipv4_host_is_answered_from_the_loop_without_dns);
    tcase_add_test(tc, numeric_ipv6_host_is_answered_from_the_loop);
    tcase_add_test(tc, name_gets_a_and_aaaa_from_the_nameserver);
    tcase_add_test(tc, family_in_hints_limits_the_query);
    tcase_add_test(tc, nxdomain_fails_with_eai_noname);
    tcase_add_test(tc, errors_found_without_dns_come_through_the_future);
    tcase_add_test(tc, nameserver_that_never_answers_times_out);
    tcase_add_test(tc, cancel_while_the_query_is_pending);
    tcase_add_test(tc, cancel_before_an_immediate_answer_is_delivered);
    tcase_add_test(tc, released_future_still_completes_and_frees);
    tcase_add_test(tc, close_with_lookups_pending);
    tcase_add_test(tc, getaddrinfo_bad_arguments);
    tcase_add_test(tc, evdns_base_is_the_loops_own);
    suite_add_tcase(s, tc);

    tc = tcase_create("getnameinfo");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, getnameinfo_numeric_is_answered_without_dns);
    tcase_add_test(tc, getnameinfo_service_names_come_from_services);
    tcase_add_test(tc, getnameinfo_reverse_lookup_uses_ptr_records);
    tcase_add_test(tc, getnameinfo_without_a_name);
    tcase_add_test(tc, getnameinfo_timeout_with_namereqd_is_eai_again);
    tcase_add_test(tc, getnameinfo_cancel_while_pending);
    tcase_add_test(tc, getnameinfo_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(resolve_suite()); }

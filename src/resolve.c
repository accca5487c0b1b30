/* Name resolution: getaddrinfo and getnameinfo as futures on the loop's
 * evdns base.
 *
 * Owns: the loop's evdns base (loop->dns) and one `struct lookup` per
 * lookup in flight, through the loop's resolver (loop->resolver), which is
 * the closable that frees them.  Everything here runs on the loop's thread.
 *
 * A lookup is freed when none of its pending parts is left:
 *   P_DNS    evdns still owes us its one callback (after a successful
 *            evdns_getaddrinfo / evdns_base_resolve_reverse it always calls
 *            back exactly once: with the answer, EVUTIL_EAI_CANCEL /
 *            DNS_ERR_CANCEL after a cancel, or DNS_ERR_SHUTDOWN when the
 *            base is freed);
 *   P_SOON   complete_soon sits in the ready queue: evdns answered inside
 *            the call (numeric hosts, /etc/hosts, errors), and the future
 *            must never complete inside asyncio_loop_getaddrinfo;
 *   P_DONECB on_future_done is registered on the future, to cancel the
 *            request when somebody else completes (cancels) the future.  It
 *            is removed before we complete the future ourselves, so it only
 *            runs on a cancel.
 * A cancel therefore reaches evdns one loop pass later (the done callback
 * runs from the ready queue); an answer that arrives in between is dropped.
 *
 * Loop close (two phases, as the closable is called twice):
 *   1. every pending future is cancelled (as far as the core still lets a
 *      closed loop's future change: if it does not, it stays pending; it
 *      never gets an answer after close), then evdns_base_free(dns, 1): evdns
 *      answers each request with DNS_ERR_SHUTDOWN -- but through deferred
 *      callbacks on the event_base, which event_base_free would discard
 *      (leaking evdns's request memory and ours).  The resolver re-registers
 *      itself so that phase 2 runs after every other closable has freed its
 *      events;
 *   2. the base is polled without blocking until those callbacks have run.
 *      If it cannot be (close called from inside the caller's own
 *      event_base_dispatch on a base of theirs), the lookups stay alive,
 *      holding their futures and so the loop's memory, and free themselves
 *      when the base runs the callbacks later. */
#include "internal.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { P_DNS = 1, P_SOON = 2, P_DONECB = 4 };

struct asyncio__resolver {
    asyncio__closable closable;
    asyncio_loop *loop;
    struct evdns_base *dns; /* NULL after phase 1 of close */
    asyncio__link lookups;
    size_t dns_pending; /* lookups with P_DNS */
    int closing;        /* phase 1 done */
    int detached;       /* the loop no longer points here */
};

enum lookup_kind { GETADDRINFO, GETNAMEINFO };

struct lookup {
    asyncio__link link; /* resolver->lookups */
    struct asyncio__resolver *res;
    asyncio_future *future; /* one reference */
    enum lookup_kind kind;
    unsigned pending;
    int in_call;                           /* evdns may answer right now: keep it */
    struct evdns_getaddrinfo_request *gai; /* while P_DNS (getaddrinfo) */
    struct evdns_request *ptr;             /* while P_DNS (reverse lookup) */
    /* The answer, held until complete_soon or on_ptr hands it over. */
    int err;
    struct evutil_addrinfo *ai;
    asyncio_nameinfo *ni;
    int flags;                  /* getnameinfo */
    struct sockaddr_storage sa; /* getnameinfo: the address asked about */
};

static const int ni_known_flags =
    NI_NUMERICHOST | NI_NUMERICSERV | NI_NOFQDN | NI_NAMEREQD | NI_DGRAM;

/* ---- Error codes --------------------------------------------------------------- */

int asyncio__eai_error(int eai)
{
    switch (eai) {
    case 0:
        return 0;
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return ASYNCIO_EAI_ADDRFAMILY;
#endif
    case EAI_AGAIN:
        return ASYNCIO_EAI_AGAIN;
    case EAI_BADFLAGS:
        return ASYNCIO_EAI_BADFLAGS;
    case EAI_FAIL:
        return ASYNCIO_EAI_FAIL;
    case EAI_FAMILY:
        return ASYNCIO_EAI_FAMILY;
    case EAI_MEMORY:
        return ASYNCIO_EAI_MEMORY;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return ASYNCIO_EAI_NODATA;
#endif
    case EAI_NONAME:
        return ASYNCIO_EAI_NONAME;
    case EAI_SERVICE:
        return ASYNCIO_EAI_SERVICE;
    case EAI_SOCKTYPE:
        return ASYNCIO_EAI_SOCKTYPE;
    case EAI_SYSTEM:
        return ASYNCIO_EAI_SYSTEM;
    case EAI_OVERFLOW:
        return ASYNCIO_EAI_OVERFLOW;
#ifdef EAI_CANCELED
    case EAI_CANCELED:
        return -ECANCELED;
#endif
#ifdef EAI_INTR
    case EAI_INTR:
        return -EINTR;
#endif
    case EVUTIL_EAI_CANCEL:
        return -ECANCELED;
    default:
        break;
    }
    /* Without a native getaddrinfo libevent uses codes of its own. */
#if EVUTIL_EAI_NONAME != EAI_NONAME
    switch (eai) {
    case EVUTIL_EAI_ADDRFAMILY:
        return ASYNCIO_EAI_ADDRFAMILY;
    case EVUTIL_EAI_AGAIN:
        return ASYNCIO_EAI_AGAIN;
    case EVUTIL_EAI_BADFLAGS:
        return ASYNCIO_EAI_BADFLAGS;
    case EVUTIL_EAI_FAIL:
        return ASYNCIO_EAI_FAIL;
    case EVUTIL_EAI_FAMILY:
        return ASYNCIO_EAI_FAMILY;
    case EVUTIL_EAI_MEMORY:
        return ASYNCIO_EAI_MEMORY;
    case EVUTIL_EAI_NODATA:
        return ASYNCIO_EAI_NODATA;
    case EVUTIL_EAI_NONAME:
        return ASYNCIO_EAI_NONAME;
    case EVUTIL_EAI_SERVICE:
        return ASYNCIO_EAI_SERVICE;
    case EVUTIL_EAI_SOCKTYPE:
        return ASYNCIO_EAI_SOCKTYPE;
    case EVUTIL_EAI_SYSTEM:
        return ASYNCIO_EAI_SYSTEM;
    default:
        break;
    }
#endif
    return ASYNCIO_EAI_FAIL;
}

/* ---- The resolver (one per loop) -------------------------------------------------- */

static void resolver_close(asyncio__closable *c);

static void resolver_maybe_free(struct asyncio__resolver *res)
{
    if (res->detached && asyncio__list_empty(&res->lookups))
        free(res);
}

/* The system's configuration, as glibc reads it.  EVDNS_BASE_INITIALIZE_NAMESERVERS
 * makes evdns_base_new fail when /etc/resolv.conf is missing or names no
 * nameserver; glibc then asks 127.0.0.1, and numeric hosts and /etc/hosts
 * must keep working, so parse it ourselves and accept the defaults evdns
 * sets in those cases. */
static struct evdns_base *new_evdns_base(struct event_base *base)
{
    struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (dns != NULL)
        return dns;
    dns = evdns_base_new(base, 0);
    if (dns != NULL)
        (void)evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
    return dns;
}

static int resolver_get(asyncio_loop *loop, struct asyncio__resolver **out)
{
    if (loop->resolver != NULL) {
        *out = loop->resolver;
        return 0;
    }
    struct asyncio__resolver *res = calloc(1, sizeof(*res));
    if (res == NULL)
        return -ENOMEM;
    res->dns = new_evdns_base(loop->base);
    if (res->dns == NULL) {
        free(res);
        return -ENOMEM;
    }
    res->loop = loop;
    asyncio__list_init(&res->lookups);
    res->closable.close = resolver_close;
    asyncio__loop_add_closable(loop, &res->closable);
    loop->resolver = res;
    loop->dns = res->dns;
    *out = res;
    return 0;
}

struct evdns_base *asyncio__loop_dns(asyncio_loop *loop)
{
    struct asyncio__resolver *res;
    if (loop == NULL || loop->closed || resolver_get(loop, &res) < 0)
        return NULL;
    return res->dns;
}

struct evdns_base *asyncio_loop_get_evdns_base(asyncio_loop *loop)
{
    return asyncio__loop_dns(loop);
}

/* ---- Lookups ------------------------------------------------------------------------ */

static void on_future_done(asyncio_future *f, void *arg);

static void free_addrinfo(void *ai)
{
    if (ai != NULL)
        evutil_freeaddrinfo(ai);
}

static void lookup_release(struct lookup *l, unsigned part)
{
    l->pending &= ~part;
    if (l->pending != 0)
        return;
    struct asyncio__resolver *res = l->res;
    asyncio_future *f = l->future;
    asyncio__list_remove(&l->link);
    free_addrinfo(l->ai);
    free(l->ni);
    free(l);
    resolver_maybe_free(res);
    /* Last: it may drop the last reference to the loop, whose close then
     * runs resolver_close. */
    asyncio_future_unref(f);
}

static int lookup_new(asyncio_loop *loop, enum lookup_kind kind, struct lookup **out)
{
    struct asyncio__resolver *res;
    int err = resolver_get(loop, &res);
    if (err < 0)
        return err;
    struct lookup *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    err = asyncio_loop_create_future(loop, &l->future);
    if (err < 0) {
        free(l);
        return err;
    }
    err = asyncio_future_add_done_callback(l->future, on_future_done, l);
    if (err < 0) {
        asyncio_future_unref(l->future);
        free(l);
        return err;
    }
    l->res = res;
    l->kind = kind;
    l->pending = P_DONECB;
    asyncio__list_push_back(&res->lookups, &l->link);
    *out = l;
    return 0;
}

/* Hand the answer to the future, unless it is done already (cancelled):
 * then the answer is dropped.  Takes `result` over. */
static void complete(struct lookup *l, int err, void *result, void (*destroy)(void *))
{
    asyncio_future *f = l->future;
    if (!asyncio_future_done(f)) {
        if ((l->pending & P_DONECB) &&
            asyncio_future_remove_done_callback(f, on_future_done, l) > 0)
            l->pending &= ~P_DONECB;
        if (asyncio_loop_is_closed(asyncio_future_get_loop(f)) == 1)
            asyncio_future_cancel(f); /* no answer after close */
        else if (err != 0)
            asyncio_future_set_exception(f, err);
        else if (asyncio_future_set_result(f, result, destroy) == 0)
            result = NULL; /* taken; on an error it is not */
    }
    if (result != NULL)
        destroy(result);
}

static void complete_gai(struct lookup *l, int eai, struct evutil_addrinfo *ai)
{
    int err = asyncio__eai_error(eai);
    if (err == 0 && ai == NULL)
        err = ASYNCIO_EAI_NODATA; /* /etc/hosts knows the name, not in this family */
    complete(l, err, ai, free_addrinfo);
}

static void complete_soon(void *arg)
{
    struct lookup *l = arg;
    if (l->kind == GETADDRINFO) {
        struct evutil_addrinfo *ai = l->ai;
        l->ai = NULL;
        complete_gai(l, l->err, ai);
    } else {
        asyncio_nameinfo *ni = l->ni;
        l->ni = NULL;
        complete(l, l->err, ni, free);
    }
    lookup_release(l, P_SOON);
}

static int schedule_soon(asyncio_loop *loop, struct lookup *l)
{
    int err = asyncio_loop_call_soon(loop, complete_soon, l, NULL);
    if (err == 0)
        l->pending |= P_SOON;
    return err;
}

/* Somebody else completed the future (a cancel): stop evdns.  It still
 * calls back once, later, with the cancel. */
static void on_future_done(asyncio_future *f, void *arg)
{
    struct lookup *l = arg;
    if (l->gai != NULL)
        evdns_getaddrinfo_cancel(l->gai);
    else if (l->ptr != NULL && l->res->dns != NULL)
        evdns_cancel_request(l->res->dns, l->ptr);
    lookup_release(l, P_DONECB);
}

/* A lookup that failed inside the call, before the caller saw the future. */
static void lookup_abort(struct lookup *l)
{
    if (l->pending & P_DONECB) {
        asyncio_future_remove_done_callback(l->future, on_future_done, l);
        l->pending &= ~P_DONECB;
    }
    asyncio_future_cancel(l->future);
    l->pending |= P_SOON; /* released just below */
    lookup_release(l, P_SOON);
}

/* ---- getaddrinfo ------------------------------------------------------------------- */

static void on_gai(int eai, struct evutil_addrinfo *ai, void *arg)
{
    struct lookup *l = arg;
    l->gai = NULL;
    l->res->dns_pending--;
    if (l->in_call) {
        l->err = eai;
        l->ai = ai;
        l->pending &= ~P_DNS;
        return;
    }
    complete_gai(l, eai, ai);
    lookup_release(l, P_DNS);
}

/* A service name /etc/services does not know.  libevent reports it as
 * EAI_NONAME; glibc (and so asyncio) as EAI_SERVICE.  A port number
 * outside 0..65535 is unknown too: libevent and glibc would quietly wrap
 * it ("65536" becomes port 0). */
static int unknown_service(const char *port, const struct addrinfo *hints)
{
    if (port == NULL || *port == '\0')
        return 0;
    char *end;
    errno = 0;
    long n = strtol(port, &end, 10);
    if (*end == '\0')
        return errno != 0 || n < 0 || n > 65535;
    if (hints != NULL && (hints->ai_flags & AI_NUMERICSERV))
        return 0;
    const char *proto = NULL;
    if (hints != NULL && (hints->ai_socktype == SOCK_STREAM || hints->ai_protocol == IPPROTO_TCP))
        proto = "tcp";
    else if (hints != NULL &&
             (hints->ai_socktype == SOCK_DGRAM || hints->ai_protocol == IPPROTO_UDP))
        proto = "udp";
    struct servent se, *found = NULL;
    char buf[1024];
    return getservbyname_r(port, proto, &se, buf, sizeof(buf), &found) != 0 || found == NULL;
}

int asyncio_loop_getaddrinfo(asyncio_loop *loop, const char *host, const char *port,
                             const struct addrinfo *hints, asyncio_future **out)
{
    if (out == NULL)
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    struct lookup *l;
    int err = lookup_new(loop, GETADDRINFO, &l);
    if (err < 0)
        return err;

    if (unknown_service(port, hints)) {
        l->err = EAI_SERVICE;
    } else {
        l->pending |= P_DNS;
        l->res->dns_pending++;
        l->in_call = 1;
        l->gai = evdns_getaddrinfo(l->res->dns, host, port, hints, on_gai, l);
        l->in_call = 0;
    }
    if (!(l->pending & P_DNS) && (err = schedule_soon(loop, l)) < 0) {
        lookup_abort(l);
        return err;
    }
    asyncio_future_ref(l->future);
    *out = l->future;
    return 0;
}

/* ---- getnameinfo ------------------------------------------------------------------- */

static int format_numeric_host(const struct sockaddr *sa, char *host, size_t len)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)len) ? 0 : ASYNCIO_EAI_OVERFLOW;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)len) == NULL)
        return ASYNCIO_EAI_OVERFLOW;
    if (sin6->sin6_scope_id != 0) {
        /* As glibc: an interface name for link-local scopes, else the number. */
        char scope[IF_NAMESIZE + 1];
        if (!(IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr) ||
              IN6_IS_ADDR_MC_LINKLOCAL(&sin6->sin6_addr)) ||
            if_indextoname(sin6->sin6_scope_id, scope) == NULL)
            snprintf(scope, sizeof(scope), "%u", (unsigned)sin6->sin6_scope_id);
        size_t used = strlen(host);
        if ((size_t)snprintf(host + used, len - used, "%%%s", scope) >= len - used)
            return ASYNCIO_EAI_OVERFLOW;
    }
    return 0;
}

static void format_service(const struct sockaddr *sa, int flags, char *serv, size_t len)
{
    in_port_t port = sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port
                                              : ((const struct sockaddr_in6 *)sa)->sin6_port;
    if (!(flags & NI_NUMERICSERV)) {
        /* /etc/services: a local file, no lookup on the network. */
        struct servent se, *found = NULL;
        char buf[1024];
        if (getservbyport_r(port, (flags & NI_DGRAM) ? "udp" : "tcp", &se, buf, sizeof(buf),
                            &found) == 0 &&
            found != NULL && strlen(found->s_name) < len) {
            strcpy(serv, found->s_name);
            return;
        }
    }
    snprintf(serv, len, "%u", (unsigned)ntohs(port));
}

/* The address to ask about: an IPv4-mapped IPv6 address is asked as IPv4,
 * as glibc does.  Returns the family. */
static int query_address(const struct sockaddr *sa, void *addr)
{
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, sizeof(struct in_addr));
        return AF_INET;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(addr, &a6->s6_addr[12], sizeof(struct in_addr));
        return AF_INET;
    }
    memcpy(addr, a6, sizeof(struct in6_addr));
    return AF_INET6;
}

/* /etc/hosts first, as glibc's "hosts: files dns": 1 if it names `addr`. */
static int hosts_lookup(int family, const void *addr, char *host, size_t len)
{
    FILE *fp = fopen("/etc/hosts", "re");
    if (fp == NULL)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL) {
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *save = NULL;
        char *ip = strtok_r(line, " \t\r\n", &save);
        char *name = strtok_r(NULL, " \t\r\n", &save);
        unsigned char buf[sizeof(struct in6_addr)];
        if (ip == NULL || name == NULL || inet_pton(family, ip, buf) != 1)
            continue;
        if (memcmp(buf, addr, family == AF_INET ? 4 : 16) == 0 && strlen(name) < len) {
            strcpy(host, name);
            found = 1;
        }
    }
    fclose(fp);
    return found;
}

/* NI_NOFQDN: only the first label of names in the local domain. */
static void strip_local_domain(char *host)
{
    char self[256];
    if (gethostname(self, sizeof(self)) != 0)
        return;
    self[sizeof(self) - 1] = '\0';
    const char *domain = strchr(self, '.');
    char *dot = strchr(host, '.');
    if (domain != NULL && dot != NULL && strcasecmp(dot, domain) == 0)
        *dot = '\0';
}

/* The name is known (or definitely not): fill in host, or the error. */
static int finish_host(struct lookup *l, const char *name, int dns_err)
{
    asyncio_nameinfo *ni = l->ni;
    if (name != NULL) {
        if (strlen(name) >= sizeof(ni->host))
            return ASYNCIO_EAI_OVERFLOW;
        strcpy(ni->host, name);
        if (l->flags & NI_NOFQDN)
            strip_local_domain(ni->host);
        return 0;
    }
    if (l->flags & NI_NAMEREQD)
        return dns_err == DNS_ERR_TIMEOUT || dns_err == DNS_ERR_SERVERFAILED ? ASYNCIO_EAI_AGAIN
                                                                             : ASYNCIO_EAI_NONAME;
    return format_numeric_host((const struct sockaddr *)&l->sa, ni->host, sizeof(ni->host));
}

static void on_ptr(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct lookup *l = arg;
    l->ptr = NULL;
    l->res->dns_pending--;
    const char *name = NULL;
    if (result == DNS_ERR_NONE && type == DNS_PTR && count > 0 && addresses != NULL)
        name = *(char **)addresses;
    int err = finish_host(l, name, result);
    asyncio_nameinfo *ni = l->ni;
    l->ni = NULL;
    complete(l, err, ni, free);
    lookup_release(l, P_DNS);
}

int asyncio_loop_getnameinfo(asyncio_loop *loop, const struct sockaddr *sa, socklen_t salen,
                             int flags, asyncio_future **out)
{
    if (out == NULL || sa == NULL || (flags & ~ni_known_flags) != 0 ||
        salen < (socklen_t)sizeof(sa_family_t))
        return -EINVAL;
    ASYNCIO__CHECK_OPEN(loop);
    if (sa->sa_family == AF_INET) {
        if (salen < (socklen_t)sizeof(struct sockaddr_in))
            return -EINVAL;
    } else if (sa->sa_family == AF_INET6) {
        if (salen < (socklen_t)sizeof(struct sockaddr_in6))
            return -EINVAL;
    } else {
        return ASYNCIO_EAI_FAMILY;
    }

    struct lookup *l;
    int err = lookup_new(loop, GETNAMEINFO, &l);
    if (err < 0)
        return err;
    l->flags = flags;
    memcpy(&l->sa, sa,
           sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if ((l->ni = calloc(1, sizeof(*l->ni))) == NULL) {
        lookup_abort(l);
        return -ENOMEM;
    }
    format_service(sa, flags, l->ni->serv, sizeof(l->ni->serv));

    unsigned char addr[sizeof(struct in6_addr)];
    int family = query_address(sa, addr);
    char host[NI_MAXHOST];
    if (flags & NI_NUMERICHOST) {
        /* glibc: a name is required but none may be looked up. */
        l->err = (flags & NI_NAMEREQD) ? ASYNCIO_EAI_NONAME : finish_host(l, NULL, 0);
    } else if (hosts_lookup(family, addr, host, sizeof(host))) {
        l->err = finish_host(l, host, 0);
    } else {
        struct evdns_request *req =
            family == AF_INET
                ? evdns_base_resolve_reverse(l->res->dns, (const struct in_addr *)addr, 0, on_ptr,
                                             l)
                : evdns_base_resolve_reverse_ipv6(l->res->dns, (const struct in6_addr *)addr, 0,
                                                  on_ptr, l);
        if (req == NULL) {
            lookup_abort(l);
            return -ENOMEM;
        }
        l->ptr = req;
        l->pending |= P_DNS;
        l->res->dns_pending++;
    }
    if (!(l->pending & P_DNS) && (err = schedule_soon(loop, l)) < 0) {
        lookup_abort(l);
        return err;
    }
    asyncio_future_ref(l->future);
    *out = l->future;
    return 0;
}

/* ---- Loop close ------------------------------------------------------------------------ */

static void resolver_close(asyncio__closable *c)
{
    struct asyncio__resolver *res = asyncio__container_of(c, struct asyncio__resolver, closable);
    asyncio_loop *loop = res->loop;

    if (!res->closing) {
        res->closing = 1;
        /* A closed loop runs nothing more: complete_soon and on_future_done,
         * if queued, are dropped unrun, so their parts end here.  Hold each
         * lookup with a temporary part meanwhile, so that none is freed
         * under the iteration. */
        asyncio__link *it = res->lookups.next;
        while (it != &res->lookups) {
            struct lookup *l = asyncio__container_of(it, struct lookup, link);
            l->pending |= P_SOON;
            if (!asyncio_future_done(l->future)) {
                asyncio_future_remove_done_callback(l->future, on_future_done, l);
                asyncio_future_cancel(l->future);
            }
            l->pending &= ~P_DONECB;
            it = it->next;
            lookup_release(l, P_SOON);
        }
        /* Every request still in evdns is failed with DNS_ERR_SHUTDOWN,
         * through callbacks deferred on the base. */
        evdns_base_free(res->dns, 1);
        res->dns = NULL;
        loop->dns = NULL;
        if (res->dns_pending > 0) {
            asyncio__loop_add_closable(loop, &res->closable); /* phase 2, last */
            return;
        }
    } else {
        /* Phase 2: run those deferred callbacks.  Every other closable has
         * freed its events by now, so little else can fire. */
        for (int round = 0; round < 16 && res->dns_pending > 0; round++)
            if (event_base_loop(loop->base, EVLOOP_NONBLOCK) < 0)
                break;
    }
    loop->resolver = NULL;
    res->detached = 1;
    resolver_maybe_free(res);
}

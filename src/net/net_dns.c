/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous DNS for delivery: the route to a mail domain (RFC 5321
 * §5.1, RFC 7505), resolved with c-ares on the libevent loop.
 *
 * c-ares tells us which sockets it wants watched through its socket state
 * callback; each gets one persistent libevent event, and one timer follows
 * ares_timeout(). Nothing here blocks: no getaddrinfo(), no /etc/hosts
 * (mail routing is DNS only, as in most MTAs).
 *
 * A route is built in two rounds: the MX query, then an AAAA and an A
 * query for each chosen host, all in parallel. c-ares callbacks only
 * record answers; the caller's callback always runs from a zero-timeout
 * event of its own, so it never runs inside net_dns_route() nor inside
 * c-ares, and it may free anything it likes, the net_dns included.
 * c-ares cannot cancel one query, so a cancelled query stays allocated
 * (silent) until its lookups come back; ares_destroy() finishes them all
 * with ARES_EDESTRUCTION.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"

/* addresses taken from one A or AAAA answer at most */
#define DNS_ADDRS_PER_ANSWER 64

struct dns_sock {
	struct dns_sock *next;
	struct net_dns *d;
	ares_socket_t fd;
	struct event *ev;
};

struct net_dns {
	struct event_base *base;
	ares_channel ch;
	struct event *timer;
	struct dns_sock *socks;
	struct net_dns_query *queries;  /* every live query, cancelled too */
	uint64_t rnd;                   /* splitmix64 state */
};

/* one host's two address lookups */
struct dns_host {
	struct sockaddr_storage *v6, *v4;
	size_t n6, n4;
	int st6, st4;           /* ARES_* status of each family's lookup */
};

struct net_dns_query {
	struct net_dns_query *prev, *next;
	struct net_dns *d;
	char *domain;
	unsigned max_hosts, max_addrs;
	net_route_cb *cb;
	void *arg;
	struct event *done_ev;  /* delivers the route from the loop */
	struct net_route *route;
	char *error;            /* becomes route->error */
	struct dns_host *hs;    /* parallel to route->hosts */
	unsigned pending;       /* c-ares lookups not yet called back */
	bool cancelled;         /* the callback must not run */
	bool via_mx;            /* the hosts came from MX records */
};

/* one c-ares lookup: which query, host and family it fills */
struct dns_lookup {
	struct net_dns_query *q;
	size_t host;
	int family;
};

/* a route and its error text in one allocation */
struct route_box {
	struct net_route r;
	char *error;
};

static void dns_timer_update(struct net_dns *d);

/* ------------------------------------------------------------------ */
/* Randomness for the shuffle of equal preferences */

static uint64_t
dns_rnd(void *arg)
{
	struct net_dns *d = arg;
	uint64_t z = (d->rnd += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void
dns_rnd_seed(struct net_dns *d)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
		/* no entropy yet at boot: the shuffle only spreads load, so
		 * a weak seed is acceptable */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		       (uint64_t)getpid();
	}
	d->rnd = seed;
}

void
net_route_order(struct net_route_host *hosts, size_t n,
		uint64_t (*rnd)(void *arg), void *rnd_arg)
{
	/* a stable insertion sort: MX lists are short */
	for (size_t i = 1; i < n; i++) {
		struct net_route_host h = hosts[i];
		size_t j = i;
		while (j > 0 && hosts[j - 1].pref > h.pref) {
			hosts[j] = hosts[j - 1];
			j--;
		}
		hosts[j] = h;
	}
	/* RFC 5321 §5.1: hosts of equal preference are tried in random
	 * order, to spread the load; Fisher-Yates over each run */
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;
		while (end < n && hosts[end].pref == hosts[start].pref)
			end++;
		for (size_t i = end - start - 1; i > 0; i--) {
			size_t j = (size_t)(rnd(rnd_arg) % (uint64_t)(i + 1));
			struct net_route_host t = hosts[start + i];
			hosts[start + i] = hosts[start + j];
			hosts[start + j] = t;
		}
		start = end;
	}
}

/* ------------------------------------------------------------------ */
/* c-ares on the event loop */

static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct net_dns *d = s->d;

	/* s may be freed by the socket state callback during this call */
	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(d);
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net_dns *d = arg;
	(void)fd;
	(void)what;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(d);
}

static void
dns_timer_update(struct net_dns *d)
{
	struct timeval tv, *t;

	if (d->ch == NULL)
		return;
	t = ares_timeout(d->ch, NULL, &tv);
	if (t == NULL)
		(void)event_del(d->timer);
	else
		(void)event_add(d->timer, t);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct net_dns *d = data;
	struct dns_sock **sp, *s;
	short what = EV_PERSIST;

	for (sp = &d->socks; *sp != NULL; sp = &(*sp)->next)
		if ((*sp)->fd == fd)
			break;
	s = *sp;
	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			*sp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->d = d;
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	if (readable)
		what |= EV_READ;
	if (writable)
		what |= EV_WRITE;
	s->ev = event_new(d->base, fd, what, dns_sock_cb, s);
	if (s->ev == NULL || event_add(s->ev, NULL) < 0)
		log_fatal("net dns event=event_add failed fd=%d", (int)fd);
}

int
net_dns_new(struct event_base *base, const char *servers,
	    unsigned timeout_ms, unsigned tries, struct net_dns **d_r,
	    const char **error_r)
{
	struct ares_options opt;
	struct net_dns *d;
	int r;

	if (servers != NULL && servers[0] == '\0') {
		/* c-ares would take it as "no server" and fail every query */
		*error_r = "empty DNS server list";
		return -1;
	}
	r = ares_library_init(ARES_LIB_INIT_ALL);
	if (r != ARES_SUCCESS) {
		*error_r = ares_strerror(r);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	dns_rnd_seed(d);
	memset(&opt, 0, sizeof(opt));
	opt.timeout = (int)(timeout_ms > 0 ? timeout_ms : 1);
	opt.tries = (int)(tries > 0 ? tries : 1);
	opt.sock_state_cb = dns_sock_state;
	opt.sock_state_cb_data = d;
	r = ares_init_options(&d->ch, &opt, ARES_OPT_TIMEOUTMS |
			      ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
	if (r != ARES_SUCCESS) {
		*error_r = ares_strerror(r);
		free(d);
		ares_library_cleanup();
		return -1;
	}
	if (servers != NULL) {
		r = ares_set_servers_ports_csv(d->ch, servers);
		if (r != ARES_SUCCESS) {
			*error_r = r == ARES_EBADSTR || r == ARES_ENODATA ?
				"bad DNS server list" : ares_strerror(r);
			ares_destroy(d->ch);
			free(d);
			ares_library_cleanup();
			return -1;
		}
	}
	d->timer = event_new(base, -1, 0, dns_timer_cb, d);
	if (d->timer == NULL)
		log_fatal("net dns event=event_new failed");
	*d_r = d;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Queries */

static void
route_free_hosts(struct net_route *r)
{
	for (size_t i = 0; i < r->nhosts; i++) {
		free(r->hosts[i].name);
		free(r->hosts[i].addrs);
	}
	free(r->hosts);
	r->hosts = NULL;
	r->nhosts = 0;
}

void
net_route_free(struct net_route **rp)
{
	struct net_route *r = *rp;
	struct route_box *b;

	if (r == NULL)
		return;
	*rp = NULL;
	b = (struct route_box *)(void *)r;
	route_free_hosts(r);
	free(b->error);
	free(b);
}

static void
query_free_hosts(struct net_dns_query *q)
{
	if (q->hs != NULL) {
		for (size_t i = 0; i < q->route->nhosts; i++) {
			free(q->hs[i].v6);
			free(q->hs[i].v4);
		}
		free(q->hs);
		q->hs = NULL;
	}
}

/* unlinks and frees q; its lookups must all have come back */
static void
query_free(struct net_dns_query *q)
{
	struct net_dns *d = q->d;

	TN_ASSERT(q->pending == 0);
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	if (q->done_ev != NULL)
		event_free(q->done_ev);
	query_free_hosts(q);
	net_route_free(&q->route);
	free(q->error);
	free(q->domain);
	free(q);
}

static void
query_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net_dns_query *q = arg;
	struct route_box *b = (struct route_box *)(void *)q->route;
	net_route_cb *cb = q->cb;
	void *cbarg = q->arg;
	struct net_route *r = q->route;
	(void)fd;
	(void)what;

	b->error = q->error != NULL ? q->error : xstrdup("");
	r->error = b->error;
	q->error = NULL;
	q->route = NULL;
	log_debug("net dns event=route domain=%s status=%d hosts=%zu "
		  "implicit=%d", q->domain, (int)r->status, r->nhosts,
		  (int)r->implicit);
	query_free(q);
	cb(cbarg, r);
}

static void
query_set_error(struct net_dns_query *q, enum net_route_status st,
		char *error)
{
	q->route->status = st;
	free(q->error);
	q->error = error;
}

/* all lookups are back (or none was needed): deliver from the loop */
static void
query_finish(struct net_dns_query *q)
{
	struct timeval zero = { 0, 0 };

	if (q->cancelled) {
		query_free(q);
		return;
	}
	q->done_ev = event_new(q->d->base, -1, 0, query_done_cb, q);
	if (q->done_ev == NULL || event_add(q->done_ev, &zero) < 0)
		log_fatal("net dns event=event_add failed");
}

/* the lookup failed in a way worth a retry later */
static bool
status_is_temp(int st)
{
	return st != ARES_SUCCESS && st != ARES_ENODATA &&
	       st != ARES_ENOTFOUND;
}

static const char *
status_text(int st)
{
	/* ares_strerror's "Domain name not found" reads oddly in a bounce */
	if (st == ARES_ENOTFOUND)
		return "Host not found";
	if (st == ARES_ENODATA)
		return "No address associated with name";
	return ares_strerror(st);
}

/* every host's addresses are in: assemble the route */
static void
query_hosts_done(struct net_dns_query *q)
{
	struct net_route *r = q->route;
	bool any_addr = false, any_temp = false;
	int first_st = ARES_ENOTFOUND, temp_st = ARES_SUCCESS;
	const char *first_type = "A", *temp_type = "A", *temp_name = "";

	for (size_t i = 0; i < r->nhosts; i++) {
		struct net_route_host *h = &r->hosts[i];
		struct dns_host *hs = &q->hs[i];
		size_t n = 0, cap = q->max_addrs;

		if (h->addrs != NULL) { /* a literal */
			any_addr = true;
			continue;
		}
		if (cap > hs->n6 + hs->n4)
			cap = hs->n6 + hs->n4;
		if (cap > 0)
			h->addrs = xcalloc(cap, sizeof(*h->addrs));
		/* IPv6 first, then IPv4, as the contract promises */
		for (size_t k = 0; k < hs->n6 && n < cap; k++)
			h->addrs[n++] = hs->v6[k];
		for (size_t k = 0; k < hs->n4 && n < cap; k++)
			h->addrs[n++] = hs->v4[k];
		h->naddrs = n;
		h->tempfail = status_is_temp(hs->st6) ||
			      status_is_temp(hs->st4);
		if (n > 0)
			any_addr = true;
		if (h->tempfail && !any_temp) {
			any_temp = true;
			temp_name = h->name;
			temp_st = status_is_temp(hs->st6) ? hs->st6 : hs->st4;
			temp_type = status_is_temp(hs->st6) ? "AAAA" : "A";
		}
		if (i == 0 && status_is_temp(hs->st6)) {
			first_st = hs->st6;
			first_type = "AAAA";
		} else if (i == 0) {
			first_st = hs->st4;
		}
	}
	query_free_hosts(q);
	if (any_addr) {
		r->status = NET_ROUTE_OK;
	} else if (!q->via_mx) {
		/* one name: the domain itself or a smarthost */
		struct net_route_host *h = &r->hosts[0];
		query_set_error(q, h->tempfail ? NET_ROUTE_TEMPFAIL :
				NET_ROUTE_NO_DOMAIN,
			xasprintf("Host or domain name not found. Name service "
				  "error for name=%s type=%s: %s%s", h->name,
				  first_type, status_text(first_st),
				  h->tempfail ? ", try again" : ""));
	} else if (any_temp) {
		query_set_error(q, NET_ROUTE_TEMPFAIL,
			xasprintf("No address for the MX hosts of %s yet. Name "
				  "service error for name=%s type=%s: %s, try "
				  "again", q->domain, temp_name, temp_type,
				  status_text(temp_st)));
	} else {
		query_set_error(q, NET_ROUTE_NO_DOMAIN,
			xasprintf("MX hosts of %s have no address (%s: %s)",
				  q->domain, r->hosts[0].name,
				  status_text(first_st)));
	}
	query_finish(q);
}

/* takes the addresses out of one A or AAAA answer */
static int
parse_addrs(int family, const unsigned char *abuf, int alen,
	    struct sockaddr_storage **out_r, size_t *n_r)
{
	int n = DNS_ADDRS_PER_ANSWER, st;

	*out_r = NULL;
	*n_r = 0;
	if (family == AF_INET6) {
		struct ares_addr6ttl a[DNS_ADDRS_PER_ANSWER];
		st = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
		if (st != ARES_SUCCESS)
			return st;
		if (n <= 0)
			return ARES_ENODATA;
		*out_r = xcalloc((size_t)n, sizeof(**out_r));
		for (int i = 0; i < n; i++) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)
				(void *)&(*out_r)[i];
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, &a[i].ip6addr,
			       sizeof(s6->sin6_addr));
		}
	} else {
		struct ares_addrttl a[DNS_ADDRS_PER_ANSWER];
		st = ares_parse_a_reply(abuf, alen, NULL, a, &n);
		if (st != ARES_SUCCESS)
			return st;
		if (n <= 0)
			return ARES_ENODATA;
		*out_r = xcalloc((size_t)n, sizeof(**out_r));
		for (int i = 0; i < n; i++) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)
				(void *)&(*out_r)[i];
			s4->sin_family = AF_INET;
			s4->sin_addr = a[i].ipaddr;
		}
	}
	*n_r = (size_t)n;
	return ARES_SUCCESS;
}

static void
addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *lk = arg;
	struct net_dns_query *q = lk->q;
	(void)timeouts;

	q->pending--;
	if (status != ARES_EDESTRUCTION && !q->cancelled) {
		struct dns_host *hs = &q->hs[lk->host];
		if (lk->family == AF_INET6) {
			if (status == ARES_SUCCESS)
				status = parse_addrs(AF_INET6, abuf, alen,
						     &hs->v6, &hs->n6);
			hs->st6 = status;
		} else {
			if (status == ARES_SUCCESS)
				status = parse_addrs(AF_INET, abuf, alen,
						     &hs->v4, &hs->n4);
			hs->st4 = status;
		}
	}
	free(lk);
	if (q->pending > 0)
		return;
	if (q->cancelled)
		query_free(q);
	else
		query_hosts_done(q);
}

static void
lookup_start(struct net_dns_query *q, size_t host, int family)
{
	struct dns_lookup *lk = xcalloc(1, sizeof(*lk));

	lk->q = q;
	lk->host = host;
	lk->family = family;
	q->pending++;
	ares_query(q->d->ch, q->route->hosts[host].name, C_IN,
		   family == AF_INET6 ? T_AAAA : T_A, addr_cb, lk);
}

/*
 * Parses an IP address, bare or as an RFC 5321 §4.1.3 address literal
 * ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Returns false for anything else.
 */
static bool
parse_ip(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);

	memset(ss, 0, sizeof(*ss));
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		if (len - 2 >= sizeof(buf))
			return false;
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		if (ascii_strncasecmp(buf, "IPv6:", 5) == 0) {
			s6->sin6_family = AF_INET6;
			return inet_pton(AF_INET6, buf + 5,
					 &s6->sin6_addr) == 1;
		}
		s4->sin_family = AF_INET;
		return inet_pton(AF_INET, buf, &s4->sin_addr) == 1;
	}
	s4->sin_family = AF_INET;
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1)
		return true;
	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	return inet_pton(AF_INET6, s, &s6->sin6_addr) == 1;
}

/* the hosts are in route->hosts: resolve those that are names */
static void
hosts_start(struct net_dns_query *q)
{
	struct net_route *r = q->route;

	q->hs = xcalloc(r->nhosts > 0 ? r->nhosts : 1, sizeof(*q->hs));
	/* q->pending counts this function too, so that an answer c-ares
	 * gives at once cannot finish the query half-built */
	q->pending++;
	for (size_t i = 0; i < r->nhosts; i++) {
		struct sockaddr_storage ss;
		struct net_route_host *h = &r->hosts[i];

		q->hs[i].st6 = q->hs[i].st4 = ARES_ENODATA;
		if (parse_ip(h->name, &ss)) {
			h->addrs = xcalloc(1, sizeof(*h->addrs));
			h->addrs[0] = ss;
			h->naddrs = 1;
			continue;
		}
		lookup_start(q, i, AF_INET6);
		lookup_start(q, i, AF_INET);
	}
	q->pending--;
	if (q->pending == 0)
		query_hosts_done(q);
	dns_timer_update(q->d);
}

static void
route_add_host(struct net_route *r, const char *name, unsigned pref)
{
	r->hosts = xreallocarray(r->hosts, r->nhosts + 1, sizeof(*r->hosts));
	memset(&r->hosts[r->nhosts], 0, sizeof(r->hosts[0]));
	r->hosts[r->nhosts].name = xstrdup(name);
	r->hosts[r->nhosts].pref = pref;
	r->nhosts++;
}

/* the MX answer is in: choose the hosts (RFC 5321 §5.1, RFC 7505) */
static void
mx_answer(struct net_dns_query *q, const unsigned char *abuf, int alen)
{
	struct net_route *r = q->route;
	struct ares_mx_reply *mx = NULL, *m;
	size_t n = 0, keep;
	int st;

	st = ares_parse_mx_reply(abuf, alen, &mx);
	if (st == ARES_ENODATA || (st == ARES_SUCCESS && mx == NULL)) {
		/* the answer held only a CNAME chain: RFC 5321 §5.1 treats
		 * the canonical name like the first, and it has no MX */
		goto implicit;
	}
	if (st != ARES_SUCCESS) {
		query_set_error(q, NET_ROUTE_TEMPFAIL,
			xasprintf("Name service error for name=%s type=MX: %s",
				  q->domain, ares_strerror(st)));
		query_finish(q);
		return;
	}
	for (m = mx; m != NULL; m = m->next)
		n++;
	/* RFC 7505 §3: a lone MX whose exchange is the root (c-ares gives
	 * "") says the domain accepts no mail. The RFC asks for preference
	 * 0; a lone "." with another preference names no host either, so
	 * it means the same. Among other MX records "." is ignored. */
	if (n == 1 && (mx->host[0] == '\0' || strcmp(mx->host, ".") == 0)) {
		ares_free_data(mx);
		query_set_error(q, NET_ROUTE_NULL_MX,
			xasprintf("Domain %s does not accept mail (null MX)",
				  q->domain));
		query_finish(q);
		return;
	}
	for (m = mx; m != NULL; m = m->next) {
		bool dup = false;
		if (m->host[0] == '\0' || strcmp(m->host, ".") == 0)
			continue;
		for (size_t i = 0; i < r->nhosts && !dup; i++) {
			if (ascii_strcasecmp(r->hosts[i].name, m->host) == 0) {
				dup = true;
				if (m->priority < r->hosts[i].pref)
					r->hosts[i].pref = m->priority;
			}
		}
		if (!dup)
			route_add_host(r, m->host, m->priority);
	}
	ares_free_data(mx);
	if (r->nhosts == 0) {
		query_set_error(q, NET_ROUTE_NO_DOMAIN,
			xasprintf("Domain %s has only unusable MX records",
				  q->domain));
		query_finish(q);
		return;
	}
	q->via_mx = true;
	net_route_order(r->hosts, r->nhosts, dns_rnd, q->d);
	keep = q->max_hosts < r->nhosts ? q->max_hosts : r->nhosts;
	for (size_t i = keep; i < r->nhosts; i++)
		free(r->hosts[i].name);
	r->nhosts = keep;
	hosts_start(q);
	return;
implicit:
	/* RFC 5321 §5.1: no MX records, the domain is its own host */
	r->implicit = true;
	route_add_host(r, q->domain, 0);
	hosts_start(q);
}

static void
mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct net_dns_query *q = arg;
	(void)timeouts;

	q->pending--;
	if (status == ARES_EDESTRUCTION || q->cancelled) {
		if (q->pending == 0)
			query_free(q);
		return;
	}
	switch (status) {
	case ARES_SUCCESS:
		mx_answer(q, abuf, alen);
		return;
	case ARES_ENODATA:
		/* NOERROR without MX records */
		q->route->implicit = true;
		route_add_host(q->route, q->domain, 0);
		hosts_start(q);
		return;
	case ARES_ENOTFOUND:
		query_set_error(q, NET_ROUTE_NO_DOMAIN,
			xasprintf("Host or domain name not found. Name service "
				  "error for name=%s type=MX: Host not found",
				  q->domain));
		break;
	default:
		/* SERVFAIL, REFUSED, timeouts, no server reachable */
		query_set_error(q, NET_ROUTE_TEMPFAIL,
			xasprintf("Host or domain name not found. Name service "
				  "error for name=%s type=MX: %s, try again",
				  q->domain, ares_strerror(status)));
		break;
	}
	query_finish(q);
}

struct net_dns_query *
net_dns_route(struct net_dns *d, const char *domain, bool mx,
	      unsigned max_hosts, unsigned max_addrs, net_route_cb *cb,
	      void *arg)
{
	struct net_dns_query *q = xcalloc(1, sizeof(*q));
	struct route_box *b = xcalloc(1, sizeof(*b));
	size_t len = strlen(domain);

	q->d = d;
	q->domain = xstrdup(domain);
	q->max_hosts = max_hosts > 0 ? max_hosts : 1;
	q->max_addrs = max_addrs > 0 ? max_addrs : 1;
	q->cb = cb;
	q->arg = arg;
	q->route = &b->r;
	q->next = d->queries;
	if (d->queries != NULL)
		d->queries->prev = q;
	d->queries = q;

	/* a domain written as an address literal has no MX (RFC 5321
	 * §5.1: the literal is the address to use) */
	if (len > 0 && domain[0] == '[')
		mx = false;
	if (!mx) {
		/* "[relay.example]" names the host itself */
		struct sockaddr_storage ss;
		if (len >= 2 && domain[0] == '[' && domain[len - 1] == ']' &&
		    !parse_ip(domain, &ss)) {
			char *host = xstrndup(domain + 1, len - 2);
			route_add_host(q->route, host, 0);
			free(host);
		} else {
			route_add_host(q->route, domain, 0);
		}
		hosts_start(q);
		return q;
	}
	q->pending++;
	ares_query(d->ch, domain, C_IN, T_MX, mx_cb, q);
	dns_timer_update(d);
	return q;
}

void
net_dns_cancel(struct net_dns_query **qp)
{
	struct net_dns_query *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	q->cancelled = true;
	if (q->pending == 0)
		query_free(q); /* only the done event was left */
}

void
net_dns_free(struct net_dns **dp)
{
	struct net_dns *d = *dp;

	if (d == NULL)
		return;
	*dp = NULL;
	for (struct net_dns_query *q = d->queries; q != NULL; q = q->next)
		q->cancelled = true;
	/* runs every outstanding lookup's callback with ARES_EDESTRUCTION,
	 * which frees the cancelled queries, and closes the sockets */
	ares_destroy(d->ch);
	d->ch = NULL;
	while (d->queries != NULL)
		query_free(d->queries);
	while (d->socks != NULL) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	free(d);
	ares_library_cleanup();
}

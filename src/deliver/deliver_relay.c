/* SPDX-License-Identifier: MIT */
/*
 * deliver_relay: the relay agent. It hands recipients of queued messages
 * to other mail servers, on the loop thread: net_dns finds the route, net
 * connects, the smtpc engine speaks SMTP, and the body is read from the
 * spool on the worker pool, chunk by chunk, as the socket takes it.
 *
 * Shapes:
 *   relay_sub   one relay_submit() call: its results and its callback
 *   relay_item  the recipients of one submission that go to one
 *               destination with one envelope sender (a forwarded
 *               recipient gets an SRS sender): one SMTP transaction
 *   relay_dest  a destination: a domain, or the host of a route or the
 *               smarthost. Items wait in its queue; its connections take
 *               them one after the other. Its route is looked up once per
 *               burst and dropped when the destination falls idle.
 *   relay_conn  one connection: it tries the route's addresses in order
 *               (RFC 5321 §5.1) until one greets it, then carries items
 *               until the queue is empty or relay_msgs_per_conn is
 *               reached.
 *
 * TLS and AUTH: each destination has a TLS policy (relay_tls, a route's
 * tls=, smarthost_tls). none never sends STARTTLS; may sends it when
 * offered and accepts any certificate, and a server whose handshake
 * fails is tried again at once in the clear, and for the next
 * RELAY_NOTLS_TTL seconds straight in the clear (RFC 7435: opportunistic
 * TLS must not make delivery worse than no TLS); encrypt and verify
 * require TLS, and verify checks the certificate against the trusted
 * CAs and the host's name. One client TLS context per (verify mode, CA
 * file) is made at start. The smarthost gets AUTH with smarthost_user and
 * the password read at start, only over TLS. A destination that cannot
 * get the TLS or the login it needs defers its mail (4.7.x, or 4.3.5 when
 * the local setup is broken).
 *
 * Outcomes: 2xx delivered, 5xx bounced, 4xx deferred, per recipient. A
 * connection that fails after an item's transaction began defers the
 * recipients that had no reply yet (the server may or may not have the
 * message; RFC 5321 §4.1.1.4 and §6.1 make a repeat the safe side). A
 * destination whose every address failed defers every item waiting for
 * it.
 *
 * Connections are never freed inside their own callbacks: they are
 * detached and reaped from an event after the loop turn.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver_int.h"
#include "net/net.h"
#include "smtp/smtp.h"
#include "smtpc/smtpc.h"

/* one read of the body from the spool */
#define RELAY_CHUNK        (256u << 10)
/* a destination opens another connection while more than this many
 * items wait per connection (see dest_kick) */
#define RELAY_WAITING_PER_CONN 4
/* stop reading while this much output waits for the socket */
#define RELAY_OUTPUT_HIGH  (512u << 10)
/* a server whose TLS handshake failed under `may` is tried in the clear
 * for this long; at most this many such servers are remembered */
#define RELAY_NOTLS_TTL    3600.0
#define RELAY_NOTLS_MAX    256
/* the longest password smarthost_password_file may hold */
#define RELAY_PASSWORD_MAX 1024

struct relay_conn;

struct relay_sub {
	struct relay_sub *next, *prev;
	struct relay *r;
	void *cookie;
	const struct spool_envelope *env;
	struct relay_result *res;
	size_t n;
	unsigned items_left;
	double t_submit;
};

struct relay_item {
	struct relay_item *next;
	struct relay_sub *sub;
	size_t *slot;              /* indices into sub->res */
	struct smtpc_rcpt *rcpts;
	size_t n;
	char *mail_from;
	bool forwarded;            /* mail_from is the SRS form */
	bool *answered;            /* per recipient: has its result */
};

struct relay_target {
	char *host;                /* the MX host's name */
	struct sockaddr_storage sa;
	bool dead;                 /* failed in this burst */
};

struct relay_dest {
	struct relay_dest *next;
	struct relay *r;
	char *key;                 /* the domain, or "host:port" of a route */
	char *lookup;              /* the name to look up */
	bool mx;                   /* look up MX records */
	unsigned port;
	enum conf_tls_policy tls;  /* never CONF_TLS_DEFAULT */
	bool smarthost;            /* the smarthost (not a route, not MX) */
	bool auth;                 /* log in with smarthost_user */
	struct relay_item *head, **tail;
	unsigned nwait;
	unsigned nconns;
	struct net_dns_query *q;
	bool resolved;
	struct relay_target *targets;
	size_t ntargets;
};

/* a body read on the worker pool */
struct relay_read {
	struct relay_conn *rc;     /* NULL once the connection let go */
	struct spool *spool;
	char id[SPOOL_ID_LEN + 1];
	int fd;
	uint64_t off, len, pos;
	uint8_t *buf;
	size_t n;
	int err;
	bool busy;
};

/*
 * What a socket's callbacks (and its TLS handshake's) reach: its
 * connection, or NULL once the socket was parked for the reap. A timer
 * or read already due when the socket was parked then does nothing,
 * rather than act on the connection's next socket.
 */
struct relay_link {
	struct relay_conn *rc;
};

struct relay_conn {
	struct relay_conn *next, *prev;
	struct relay *r;
	struct relay_dest *d;
	size_t target;             /* index of the target being tried */
	struct net_connecting *nc;
	struct conn *conn;
	struct relay_link *link;   /* conn's callback argument */
	struct smtpc *c;
	char peer[320];            /* "mx.example.org[192.0.2.1]:25" */
	char *last_error;          /* why the last target failed */
	const char *last_status;   /* its RFC 3463 code, NULL: 4.4.1 */
	size_t plain_target;       /* this target goes in the clear: its
				    * handshake failed under `may` */
	bool tls_pending;          /* the handshake on conn is running */
	bool ready;                /* greeted and EHLO done */
	bool in_tx;
	bool detached;
	unsigned msgs;
	struct relay_item *item;
	struct smtpc_tx tx;
	struct relay_read *rd;
	struct event *deadline;    /* for a whole reply (see conn_flush) */
	struct event *idle_ev;     /* relay_conn_idle while nothing waits */
	bool idle;                 /* READY, waiting for an item */
	const char *deadline_for;  /* the stage it was armed for */
	bool body_wanted;          /* the server said 354 */
	bool body_ended;
	double t_start, t_ready, t_tx;
};

struct relay {
	struct event_base *base;
	struct net_dns *dns;
	struct spool *spool;
	struct workq *wq;
	const struct tern_conf *conf;
	relay_done_cb *cb;
	void *cb_arg;
	struct relay_dest *dests;
	struct relay_conn *conns;
	struct relay_conn *reap;
	struct event *reap_ev;     /* reaps connections, then kicks */
	struct relay_sub *subs;    /* not yet called back */
	unsigned nconns;
	unsigned nsubs;
	bool closing;
	/* TLS client contexts, made at start for the policies in use; an
	 * error (heap) defers the destinations that need the context */
	struct net_tls_ctx *tls_any;     /* may, encrypt: no verification */
	struct net_tls_ctx *tls_verify;  /* verify: relay_tls_ca_file */
	char *tls_any_error, *tls_verify_error;
	/* the smarthost's password (heap, wiped at free), or why there is
	 * none though smarthost_user is set */
	char *password;
	char *auth_error;
	/* servers whose TLS handshake failed under `may` */
	struct relay_notls {
		struct sockaddr_storage sa;
		double until;
	} *notls;
	size_t nnotls;
};

static void conn_start(struct relay_dest *d);
static void idle_cb(evutil_socket_t fd, short what, void *arg);
static void conn_next_target(struct relay_conn *rc);
static void conn_take_item(struct relay_conn *rc);
static void dest_kick(struct relay_dest *d);

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- servers whose TLS failed ------------------------------------------ */

static bool
sa_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
	const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static bool
notls_has(const struct relay *r, const struct sockaddr_storage *sa)
{
	double now = now_s();

	for (size_t i = 0; i < r->nnotls; i++)
		if (r->notls[i].until > now && sa_same(&r->notls[i].sa, sa))
			return true;
	return false;
}

/* remembers sa for RELAY_NOTLS_TTL; a full table loses its oldest */
static void
notls_add(struct relay *r, const struct sockaddr_storage *sa)
{
	size_t slot = SIZE_MAX, oldest = 0;

	for (size_t i = 0; i < r->nnotls && slot == SIZE_MAX; i++)
		if (sa_same(&r->notls[i].sa, sa))
			slot = i;
	for (size_t i = 0; i < r->nnotls && slot == SIZE_MAX; i++)
		if (r->notls[i].until < r->notls[oldest].until)
			oldest = i;
	if (slot == SIZE_MAX && r->nnotls < RELAY_NOTLS_MAX) {
		r->notls = xreallocarray(r->notls, r->nnotls + 1,
					 sizeof(*r->notls));
		slot = r->nnotls++;
	}
	if (slot == SIZE_MAX)
		slot = oldest;
	r->notls[slot].sa = *sa;
	r->notls[slot].until = now_s() + RELAY_NOTLS_TTL;
}

/* ---- results ------------------------------------------------------------ */

static void
sub_unlink(struct relay_sub *sub)
{
	struct relay *r = sub->r;

	if (sub->prev != NULL)
		sub->prev->next = sub->next;
	else
		r->subs = sub->next;
	if (sub->next != NULL)
		sub->next->prev = sub->prev;
	r->nsubs--;
}

static void
sub_free(struct relay_sub *sub)
{
	for (size_t i = 0; i < sub->n; i++) {
		free(sub->res[i].diag);
		free(sub->res[i].remote_mta);
	}
	free(sub->res);
	free(sub);
}

static void
sub_finish(struct relay_sub *sub)
{
	struct relay *r = sub->r;

	sub_unlink(sub);
	r->cb(r->cb_arg, sub->cookie, sub->res, sub->n);
	sub_free(sub);
}

static void
item_free(struct relay_item *it)
{
	if (it == NULL)
		return;
	free(it->slot);
	free(it->rcpts);
	free(it->mail_from);
	free(it->answered);
	free(it);
}

/* the item is done: every recipient has its result */
static void
item_done(struct relay_item *it)
{
	struct relay_sub *sub = it->sub;

	item_free(it);
	if (--sub->items_left == 0)
		sub_finish(sub);
}

static void
set_result(struct relay_item *it, size_t k, enum deliver_status st,
	   const char *status, const char *diag, const char *remote,
	   bool peer_dsn, const double t[3])
{
	struct relay_result *res = &it->sub->res[it->slot[k]];

	if (it->answered[k])
		return;
	it->answered[k] = true;
	res->st = st;
	snprintf(res->status, sizeof(res->status), "%s", status);
	free(res->diag);
	res->diag = diag != NULL ? xstrdup(diag) : NULL;
	free(res->remote_mta);
	res->remote_mta = remote != NULL && remote[0] != '\0' ?
			  xstrdup(remote) : NULL;
	res->peer_dsn = peer_dsn;
	res->delay_queue = t[0];
	res->delay_conn = t[1];
	res->delay_xfer = t[2];
}

/* every recipient of the item without a result gets this one */
static void
item_settle_all(struct relay_item *it, enum deliver_status st,
		const char *status, const char *diag, const char *remote,
		const double t[3])
{
	for (size_t k = 0; k < it->n; k++)
		set_result(it, k, st, status, diag, remote, false, t);
	item_done(it);
}

static const char *
default_status(enum deliver_status st)
{
	return st == DELIVER_OK ? "2.0.0" :
	       st == DELIVER_PERMFAIL ? "5.0.0" : "4.0.0";
}

static enum deliver_status
status_of_code(unsigned code)
{
	if (code >= 200 && code < 300)
		return DELIVER_OK;
	if (code >= 500 && code < 600)
		return DELIVER_PERMFAIL;
	return DELIVER_TEMPFAIL;
}

/* "550 5.1.1 text" as one line */
static char *
reply_text(const struct smtpc_reply *rep)
{
	if (rep->enhanced != NULL && rep->enhanced[0] != '\0')
		return xasprintf("%03u %s %s", rep->code, rep->enhanced,
				 rep->text != NULL ? rep->text : "");
	return xasprintf("%03u %s", rep->code,
			 rep->text != NULL ? rep->text : "");
}

/* ---- destinations -------------------------------------------------------- */

static void
dest_free_route(struct relay_dest *d)
{
	for (size_t i = 0; i < d->ntargets; i++)
		free(d->targets[i].host);
	free(d->targets);
	d->targets = NULL;
	d->ntargets = 0;
	d->resolved = false;
}

static void
dest_free(struct relay_dest *d)
{
	struct relay *r = d->r;

	for (struct relay_dest **p = &r->dests; *p != NULL; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	net_dns_cancel(&d->q);
	dest_free_route(d);
	free(d->key);
	free(d->lookup);
	free(d);
}

/* a destination with nothing waiting and no connection is dropped, with
 * its route: the next burst looks it up again */
static void
dest_maybe_free(struct relay_dest *d)
{
	if (d->head == NULL && d->nconns == 0 && d->q == NULL)
		dest_free(d);
}

static struct relay_item *
dest_pop(struct relay_dest *d)
{
	struct relay_item *it = d->head;

	if (it == NULL)
		return NULL;
	d->head = it->next;
	if (d->head == NULL)
		d->tail = &d->head;
	d->nwait--;
	it->next = NULL;
	return it;
}

/* every waiting item fails the same way */
static void
dest_fail_waiting(struct relay_dest *d, enum deliver_status st,
		  const char *status, const char *diag)
{
	struct relay_item *it;

	while ((it = dest_pop(d)) != NULL) {
		double t[3] = { now_s() - it->sub->t_submit, 0, 0 };
		item_settle_all(it, st, status, diag, NULL, t);
	}
}

static struct relay_dest *
dest_get(struct relay *r, const char *domain)
{
	const struct conf_relay_host *via = conf_route_for(r->conf, domain);
	char *key;
	struct relay_dest *d;

	if (via != NULL)
		key = xasprintf("%s%s%s:%u", via->mx ? "" : "[", via->host,
				via->mx ? "" : "]",
				via->port != 0 ? via->port : r->conf->relay_port);
	else
		key = xstrdup(domain);
	enum conf_tls_policy tls = conf_relay_tls(r->conf, via);
	bool smarthost = conf_via_smarthost(r->conf, via);
	bool auth = smarthost && r->conf->smarthost_user != NULL &&
		    r->conf->smarthost_user[0] != '\0';
	/* a route and the smarthost to one host stay apart: their policy
	 * and login may differ */
	for (d = r->dests; d != NULL; d = d->next) {
		if (strcmp(d->key, key) == 0 && d->tls == tls &&
		    d->smarthost == smarthost && d->auth == auth) {
			free(key);
			return d;
		}
	}
	d = xcalloc(1, sizeof(*d));
	d->r = r;
	d->key = key;
	d->tls = tls;
	d->smarthost = smarthost;
	d->auth = auth;
	d->tail = &d->head;
	if (via != NULL) {
		d->lookup = xstrdup(via->host);
		d->mx = via->mx;
		d->port = via->port != 0 ? via->port : r->conf->relay_port;
	} else if (domain[0] == '[') {
		/* RFC 5321 §4.1.3: an address literal is the host itself */
		d->lookup = xstrdup(domain);
		d->mx = false;
		d->port = r->conf->relay_port;
	} else {
		d->lookup = xstrdup(domain);
		d->mx = true;
		d->port = r->conf->relay_port;
	}
	d->next = r->dests;
	r->dests = d;
	return d;
}

static void
route_done(void *arg, struct net_route *route)
{
	struct relay_dest *d = arg;
	struct relay *r = d->r;
	unsigned max = r->conf->relay_addrs_max;

	d->q = NULL;
	switch (route->status) {
	case NET_ROUTE_NULL_MX:
		/* RFC 7505 §4.1: no mail for this domain, bounce at once */
		dest_fail_waiting(d, DELIVER_PERMFAIL, "5.1.10",
				  route->error != NULL ? route->error :
				  "the domain accepts no mail (null MX)");
		break;
	case NET_ROUTE_NO_DOMAIN:
		dest_fail_waiting(d, DELIVER_PERMFAIL, "5.1.2",
				  route->error != NULL ? route->error :
				  "host or domain name not found");
		break;
	case NET_ROUTE_TEMPFAIL:
		dest_fail_waiting(d, DELIVER_TEMPFAIL, "4.4.3",
				  route->error != NULL ? route->error :
				  "DNS lookup failed temporarily");
		break;
	case NET_ROUTE_OK:
		d->resolved = true;
		for (size_t h = 0; h < route->nhosts; h++) {
			const struct net_route_host *rh = &route->hosts[h];
			for (size_t a = 0; a < rh->naddrs; a++) {
				if (d->ntargets >= max)
					break;
				d->targets = xreallocarray(d->targets,
					d->ntargets + 1, sizeof(*d->targets));
				struct relay_target *t =
					&d->targets[d->ntargets++];
				memset(t, 0, sizeof(*t));
				t->host = xstrdup(rh->name);
				t->sa = rh->addrs[a];
				if (t->sa.ss_family == AF_INET)
					((struct sockaddr_in *)&t->sa)->sin_port =
						htons((uint16_t)d->port);
				else
					((struct sockaddr_in6 *)&t->sa)->sin6_port =
						htons((uint16_t)d->port);
			}
		}
		if (d->ntargets == 0) {
			dest_fail_waiting(d, DELIVER_TEMPFAIL, "4.4.4",
					  "no address to deliver to");
			d->resolved = false;
		}
		break;
	}
	net_route_free(&route);
	if (d->resolved)
		dest_kick(d);
	else
		dest_maybe_free(d);
}

/* what the local setup lacks for this destination, or NULL */
static const char *
dest_setup_error(const struct relay_dest *d)
{
	const struct relay *r = d->r;

	if (d->auth && r->password == NULL)
		return r->auth_error != NULL ? r->auth_error :
		       "no password for smarthost_user";
	switch (d->tls) {
	case CONF_TLS_MAY:
	case CONF_TLS_ENCRYPT:
		if (r->tls_any == NULL)
			return r->tls_any_error != NULL ? r->tls_any_error :
			       "no TLS client context";
		break;
	case CONF_TLS_VERIFY:
		if (r->tls_verify == NULL)
			return r->tls_verify_error != NULL ?
			       r->tls_verify_error : "no TLS client context";
		break;
	case CONF_TLS_DEFAULT:
	case CONF_TLS_NONE:
		break;
	}
	return NULL;
}

/* starts connections for waiting items, within the limits */
static void
dest_kick(struct relay_dest *d)
{
	struct relay *r = d->r;

	if (r->closing)
		return;
	if (d->head != NULL && d->nconns == 0) {
		const char *err = dest_setup_error(d);
		if (err != NULL) {
			/* no connection could do what the policy asks: wait
			 * for the setup to be fixed (a restart) */
			dest_fail_waiting(d, DELIVER_TEMPFAIL, "4.3.5", err);
			dest_maybe_free(d);
			return;
		}
	}
	if (!d->resolved) {
		if (d->q == NULL && d->head != NULL)
			d->q = net_dns_route(r->dns, d->lookup, d->mx,
					     r->conf->relay_mx_max,
					     r->conf->relay_addrs_max,
					     route_done, d);
		return;
	}
	/* an idle connection to this destination takes the next item */
	for (struct relay_conn *rc = r->conns; rc != NULL && d->head != NULL;
	     rc = rc->next) {
		if (rc->d != d || !rc->idle || rc->detached)
			continue;
		rc->idle = false;
		evtimer_del(rc->idle_ev);
		conn_take_item(rc);
	}
	/*
	 * Another connection only while more than RELAY_WAITING_PER_CONN
	 * items wait for each one it has: a few messages go out one after
	 * the other over one connection (RFC 5321 §4.5.4.1 asks clients to
	 * reuse connections), a burst spreads over up to relay_dest_max.
	 */
	while (d->head != NULL &&
	       (d->nconns == 0 ||
		d->nwait > d->nconns * RELAY_WAITING_PER_CONN) &&
	       d->nconns < r->conf->relay_dest_max &&
	       r->nconns < r->conf->relay_sessions_max)
		conn_start(d);
	dest_maybe_free(d);
}

/* a connection ended: others of its destination may start */
static void
kick_all(struct relay *r)
{
	struct relay_dest *d = r->dests, *next;

	for (; d != NULL; d = next) {
		next = d->next;
		dest_kick(d);
	}
}

/* ---- connections ------------------------------------------------------- */

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	struct relay_conn *rc;

	(void)fd;
	(void)what;
	while ((rc = r->reap) != NULL) {
		r->reap = rc->next;
		conn_free(&rc->conn);
		free(rc->link);
		smtpc_free(&rc->c);
		if (rc->deadline != NULL)
			event_free(rc->deadline);
		if (rc->idle_ev != NULL)
			event_free(rc->idle_ev);
		free(rc->last_error);
		free(rc);
	}
	kick_all(r);
}

static void
read_release(struct relay_conn *rc)
{
	struct relay_read *rd = rc->rd;

	if (rd == NULL)
		return;
	rc->rd = NULL;
	if (rd->busy) {
		rd->rc = NULL;    /* the job's done callback frees it */
		return;
	}
	if (rd->fd >= 0)
		(void)close(rd->fd);
	free(rd->buf);
	free(rd);
}

/*
 * Detaches the connection from its destination and queues it for
 * freeing after this loop turn. Its item must be settled already.
 */
static void
conn_detach(struct relay_conn *rc)
{
	struct relay *r = rc->r;
	struct relay_dest *d = rc->d;

	if (rc->detached)
		return;
	rc->detached = true;
	TN_ASSERT(rc->item == NULL);
	evtimer_del(rc->deadline);
	evtimer_del(rc->idle_ev);
	rc->idle = false;
	net_connect_cancel(&rc->nc);
	read_release(rc);
	if (rc->prev != NULL)
		rc->prev->next = rc->next;
	else
		r->conns = rc->next;
	if (rc->next != NULL)
		rc->next->prev = rc->prev;
	rc->next = r->reap;
	rc->prev = NULL;
	r->reap = rc;
	r->nconns--;
	d->nconns--;
	event_active(r->reap_ev, 0, 0);
}

static double
timing(struct relay_conn *rc, double t[3])
{
	double now = now_s();
	double start = rc->t_tx > 0 ? rc->t_tx : now;

	t[0] = rc->item != NULL ? start - rc->item->sub->t_submit : 0;
	/* the first message of a connection pays for setting it up */
	t[1] = rc->msgs == 0 && rc->t_ready > 0 ? rc->t_ready - rc->t_start :
	       0;
	t[2] = now - start;
	if (t[0] < 0)
		t[0] = 0;
	return now;
}

/*
 * Parks the socket and engine of a connection that never became ready
 * for the next reap: their callbacks reach nobody meanwhile (relay_link).
 */
static void
conn_park(struct relay_conn *rc)
{
	rc->tls_pending = false;
	if (rc->conn != NULL) {
		/* the old socket goes with the next reap */
		struct relay_conn *old = xcalloc(1, sizeof(*old));
		conn_read_enable(rc->conn, false);
		conn_set_timeout(rc->conn, 0);
		old->conn = rc->conn;
		old->c = rc->c;
		old->link = rc->link;
		if (old->link != NULL)
			old->link->rc = NULL;
		rc->conn = NULL;
		rc->c = NULL;
		rc->link = NULL;
		old->next = rc->r->reap;
		rc->r->reap = old;
		event_active(rc->r->reap_ev, 0, 0);
	}
	evtimer_del(rc->deadline);
	rc->deadline_for = NULL;
}

static void conn_fail_st(struct relay_conn *rc, const char *status,
			 const char *why);

/*
 * The connection is lost or the server gave up: the recipients of the
 * open transaction that had no reply are deferred.
 */
static void
conn_fail(struct relay_conn *rc, const char *why)
{
	conn_fail_st(rc, NULL, why);
}

/* the same; status: the RFC 3463 code when the failure was not the
 * server's or the network's (TLS, AUTH), for a deferral before any
 * transaction */
static void
conn_fail_st(struct relay_conn *rc, const char *status, const char *why)
{
	struct relay_dest *d = rc->d;

	if (rc->item != NULL) {
		double t[3];
		char *diag = xasprintf("%s (while waiting for the reply to %s)",
				       why, smtpc_stage(rc->c));
		timing(rc, t);
		item_settle_all(rc->item, DELIVER_TEMPFAIL, "4.4.2", diag,
				rc->peer, t);
		free(diag);
		rc->item = NULL;
	}
	if (!rc->ready) {
		/* not greeted yet: this target failed, try the next */
		free(rc->last_error);
		rc->last_error = xasprintf("%s: %s", rc->peer, why);
		rc->last_status = status;
		conn_park(rc);
		if (rc->target < d->ntargets)
			d->targets[rc->target].dead = true;
		rc->target++;
		conn_next_target(rc);
		return;
	}
	conn_detach(rc);
}

/*
 * Writes what the engine produced and arms its timeouts: the
 * connection's own for silence in either direction, and a deadline for
 * the whole reply awaited, set when the engine starts to wait for
 * something new. The deadline is what stops a server that trickles one
 * byte at a time, each byte restarting the silence timer. While the
 * body goes out only the silence timer runs (RFC 5321 §4.5.3.2.5: a
 * timeout per data block), since a large body may take long.
 */
static void
conn_flush(struct relay_conn *rc)
{
	struct buf *out = smtpc_out(rc->c);
	const char *stage;
	unsigned t;

	if (out->len > 0 && rc->conn != NULL)
		(void)conn_write(rc->conn, out->p, out->len);
	buf_reset(out);
	if (rc->conn == NULL)
		return;
	t = smtpc_timeout(rc->c);
	conn_set_timeout(rc->conn, t);
	stage = smtpc_stage(rc->c);
	if (stage == rc->deadline_for)
		return;
	rc->deadline_for = stage;
	evtimer_del(rc->deadline);
	if (t > 0 && strcmp(stage, "message body") != 0) {
		struct timeval tv = { .tv_sec = t, .tv_usec = 0 };
		evtimer_add(rc->deadline, &tv);
	}
}

/* ---- the body ------------------------------------------------------------ */

static void
read_work(void *arg)
{
	struct relay_read *rd = arg;
	uint64_t left;
	size_t want;

	if (rd->fd < 0) {
		if (spool_body_open(rd->spool, rd->id, &rd->fd, &rd->off,
				    &rd->len) < 0) {
			rd->err = errno != 0 ? errno : EIO;
			rd->fd = -1;
			return;
		}
	}
	left = rd->len - rd->pos;
	want = left < RELAY_CHUNK ? (size_t)left : RELAY_CHUNK;
	if (rd->buf == NULL)
		rd->buf = xmalloc(RELAY_CHUNK);
	rd->n = 0;
	if (want == 0)
		return;
	if (io_pread_all(rd->fd, rd->buf, want, (off_t)(rd->off + rd->pos)) <
	    0) {
		rd->err = errno != 0 ? errno : EIO;
		return;
	}
	rd->n = want;
}

static void body_pump(struct relay_conn *rc);

static void
read_done(void *arg)
{
	struct relay_read *rd = arg;
	struct relay_conn *rc = rd->rc;

	rd->busy = false;
	if (rc == NULL) {
		if (rd->fd >= 0)
			(void)close(rd->fd);
		free(rd->buf);
		free(rd);
		return;
	}
	if (rd->err != 0) {
		char *why = xasprintf("cannot read the message from the "
				      "spool: %s", strerror(rd->err));
		/* after 354 nothing but a dropped connection stops the
		 * server from taking a partial message (RFC 5321 §4.1.1.4) */
		log_error("relay id=%s event=read error=\"%s\"", rd->id,
			  strerror(rd->err));
		rc->ready = true;
		conn_fail(rc, why);
		free(why);
		return;
	}
	if (rc->body_wanted)
		body_pump(rc);
}

static void
read_start(struct relay_conn *rc)
{
	struct relay_read *rd = rc->rd;

	if (rd->busy)
		return;
	rd->busy = true;
	workq_submit(rc->r->wq, read_work, read_done, rd);
}

/* sends what was read and asks for more while the socket keeps up */
static void
body_pump(struct relay_conn *rc)
{
	struct relay_read *rd = rc->rd;

	if (rc->conn == NULL || rd == NULL || rd->busy || rc->body_ended)
		return;
	if (rd->fd < 0) {
		read_start(rc);
		return;
	}
	if (rd->n > 0) {
		smtpc_body(rc->c, rd->buf, rd->n);
		rd->pos += rd->n;
		rd->n = 0;
	}
	if (rd->pos >= rd->len) {
		smtpc_body_end(rc->c);
		rc->body_ended = true;
		conn_flush(rc);
		conn_notify_drained(rc->conn, false);
		return;
	}
	conn_flush(rc);
	if (conn_output_len(rc->conn) < RELAY_OUTPUT_HIGH)
		read_start(rc);
	else
		conn_notify_drained(rc->conn, true);
}

/* ---- SMTP ------------------------------------------------------------- */

static void
on_result(struct relay_conn *rc, const struct smtpc_event *ev)
{
	struct relay_item *it = rc->item;
	double t[3];
	enum deliver_status st = status_of_code(ev->reply.code);
	const char *status = ev->reply.enhanced != NULL &&
			     ev->reply.enhanced[0] != '\0' ?
			     ev->reply.enhanced : default_status(st);
	char *text = reply_text(&ev->reply);

	if (it == NULL || ev->rcpt >= it->n) {
		free(text);
		return;
	}
	timing(rc, t);
	set_result(it, ev->rcpt, st, status, text, rc->peer,
		   (smtpc_extensions(rc->c) & SMTPC_EXT_DSN) != 0, t);
	free(text);
}

static void
on_tx_done(struct relay_conn *rc)
{
	struct relay_item *it = rc->item;

	rc->item = NULL;
	rc->in_tx = false;
	rc->body_wanted = false;
	rc->body_ended = false;
	read_release(rc);
	if (it != NULL) {
		/* a recipient the engine said nothing of (cannot happen with
		 * a sound engine) is deferred rather than lost */
		double t[3];
		timing(rc, t);
		item_settle_all(it, DELIVER_TEMPFAIL, "4.4.2",
				"no reply for this recipient", rc->peer, t);
	}
	rc->msgs++;
	rc->t_tx = 0;
	conn_take_item(rc);
}

/* begins the next waiting item, or says goodbye */
static void
conn_take_item(struct relay_conn *rc)
{
	struct relay_dest *d = rc->d;
	struct relay *r = rc->r;

	while (rc->item == NULL) {
		struct relay_item *it;
		const char *err = NULL;

		if (r->closing || rc->msgs >= r->conf->relay_msgs_per_conn) {
			smtpc_quit(rc->c);
			conn_flush(rc);
			return;
		}
		if ((it = dest_pop(d)) == NULL) {
			/* nothing now: wait a little for more (dest_kick hands
			 * it over), then say goodbye (idle_cb) */
			struct timeval tv = {
				.tv_sec = r->conf->relay_conn_idle, .tv_usec = 0 };
			if (r->conf->relay_conn_idle == 0) {
				smtpc_quit(rc->c);
				conn_flush(rc);
				return;
			}
			rc->idle = true;
			evtimer_add(rc->idle_ev, &tv);
			return;
		}
		const struct spool_envelope *env = it->sub->env;
		rc->item = it;
		rc->t_tx = now_s();
		rc->tx = (struct smtpc_tx){
			.mail_from = it->mail_from,
			.size = env->size,
			.body = env->body,
			.smtputf8 = env->smtputf8,
			.ret = env->ret,
			.envid = env->envid,
			.rcpts = it->rcpts,
			.nrcpts = it->n,
		};
		if (smtpc_begin(rc->c, &rc->tx, &err) < 0) {
			/* RFC 6152 §3 / RFC 6531 §3.4 / RFC 1870: the server
			 * cannot take this message as it is */
			const char *status =
				env->smtputf8 &&
				(smtpc_extensions(rc->c) & SMTPC_EXT_SMTPUTF8) == 0 ?
					"5.6.7" :
				env->body == SMTP_BODY_8BITMIME &&
				(smtpc_extensions(rc->c) & SMTPC_EXT_8BITMIME) == 0 ?
					"5.6.3" : "5.3.4";
			double t[3];
			char *diag = xasprintf("%s: %s", rc->peer, err);
			timing(rc, t);
			rc->item = NULL;
			item_settle_all(it, DELIVER_PERMFAIL, status, diag,
					rc->peer, t);
			free(diag);
			rc->msgs++;
			continue;
		}
		rc->in_tx = true;
		rc->rd = xcalloc(1, sizeof(*rc->rd));
		rc->rd->rc = rc;
		rc->rd->spool = r->spool;
		rc->rd->fd = -1;
		memcpy(rc->rd->id, env->id, sizeof(rc->rd->id));
		/* open and read the first chunk while MAIL and RCPT go on */
		read_start(rc);
		conn_flush(rc);
	}
}

/* ---- TLS and AUTH ----------------------------------------------------- */

/*
 * The name the certificate must show and SNI carries: the MX host (or
 * the route's or smarthost's host), without the brackets and "IPv6:" of
 * an address literal or a final dot.
 */
static void
tls_name(const char *host, char *out, size_t outsz)
{
	size_t n = strlen(host);

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
		if (n >= 5 && ascii_strncasecmp(host, "IPv6:", 5) == 0) {
			host += 5;
			n -= 5;
		}
	}
	if (n > 0 && host[n - 1] == '.')
		n--;
	snprintf(out, outsz, "%.*s", (int)n, host);
}

/* the handshake failed or timed out: the next server, or under `may`
 * this one again in the clear */
static void
tls_failed(struct relay_conn *rc, const char *error)
{
	struct relay_dest *d = rc->d;
	char e[300];

	rc->tls_pending = false;
	log_escape(e, sizeof(e), error, strlen(error));
	if (d->tls == CONF_TLS_MAY && rc->target < d->ntargets) {
		/* RFC 7435 §3: opportunistic TLS falls back to the clear:
		 * this server again at once, without STARTTLS, and straight
		 * in the clear for RELAY_NOTLS_TTL */
		log_warn("relay dest=%s event=tls_failed peer=%s tls=may "
			 "error=\"%s\" next=plain", d->key, rc->peer, e);
		notls_add(rc->r, &d->targets[rc->target].sa);
		rc->plain_target = rc->target;
		conn_park(rc);
		conn_next_target(rc);
		return;
	}
	log_warn("relay dest=%s event=tls_failed peer=%s tls=%s error=\"%s\"",
		 d->key, rc->peer, conf_tls_policy_name(d->tls), e);
	conn_fail_st(rc, "4.7.5", error);
}

/* the handshake is over (net calls this on the loop) */
static void
tls_done(void *arg, bool ok, const char *error)
{
	struct relay_link *link = arg;
	struct relay_conn *rc = link->rc;

	if (rc == NULL || rc->detached || rc->conn == NULL ||
	    !rc->tls_pending)
		return;
	rc->tls_pending = false;
	if (ok) {
		smtpc_tls_started(rc->c);
		conn_flush(rc);
		return;
	}
	/* the connection is dead already; conn_park() leaves it to the
	 * reap */
	tls_failed(rc, error != NULL ? error : "TLS handshake failed");
}

/* the server said 220 to STARTTLS */
static void
conn_tls_begin(struct relay_conn *rc)
{
	struct relay *r = rc->r;
	struct relay_dest *d = rc->d;
	struct net_tls_ctx *ctx = d->tls == CONF_TLS_VERIFY ? r->tls_verify :
				  r->tls_any;
	char name[256], *err = NULL;

	/* dest_setup_error() kept destinations without a context away */
	TN_ASSERT(ctx != NULL && rc->target < d->ntargets);
	tls_name(d->targets[rc->target].host, name, sizeof(name));
	rc->tls_pending = true;
	if (conn_start_tls(rc->conn, ctx, false, name, tls_done, rc->link,
			   &err) < 0) {
		char *why = xasprintf("cannot start TLS: %s", err);
		rc->tls_pending = false;
		free(err);
		conn_fail_st(rc, "4.7.5", why);
		free(why);
		return;
	}
	if (rc->conn != NULL && rc->tls_pending)
		conn_flush(rc);
}

/* one line per connection once it is ready: its TLS and login */
static void
log_ready(struct relay_conn *rc)
{
	const char *version = NULL, *cipher = NULL, *auth;
	bool verified = false;
	char tls[160];

	if (rc->conn != NULL &&
	    conn_tls_info(rc->conn, &version, &cipher, &verified))
		snprintf(tls, sizeof(tls), "tls=%s cipher=%s verified=%s",
			 version, cipher, verified ? "yes" : "no");
	else
		snprintf(tls, sizeof(tls), "tls=none");
	auth = smtpc_auth_used(rc->c);
	log_info("relay dest=%s event=ready peer=%s %s auth=%s ext=%#x",
		 rc->d->key, rc->peer, tls, auth != NULL ? auth : "none",
		 smtpc_extensions(rc->c));
}

/* the status of a refused login: the server's 4.7.x/5.7.x detail as a
 * deferral (RFC 4954 §6: 535 5.7.8 is the usual one) */
static const char *
auth_status(const struct smtpc_reply *rep, char buf[16])
{
	const char *e = rep->enhanced;

	if (e != NULL && (e[0] == '4' || e[0] == '5') &&
	    strncmp(e + 1, ".7.", 3) == 0) {
		snprintf(buf, 16, "4%s", e + 1);
		return buf;
	}
	return rep->code == 535 ? "4.7.8" : "4.7.0";
}

/* the engine stopped the session before READY for TLS or AUTH */
static void
on_policy_failure(struct relay_conn *rc, const struct smtpc_event *ev)
{
	struct relay_dest *d = rc->d;
	char *t = ev->reply.code != 0 ? reply_text(&ev->reply) : NULL;
	char *why = NULL, e[400], u[200], st[16];
	const char *user = rc->r->conf->smarthost_user;
	const char *status = "4.7.0";

	switch (ev->fail) {
	case SMTPC_FAIL_TLS:
		/* RFC 3207 §4.1 and Postfix's wording; 4.7.4: security
		 * features not supported (RFC 3463) */
		status = "4.7.4";
		why = t != NULL ?
		      xasprintf("TLS is required (tls=%s) and STARTTLS was "
				"refused: %s", conf_tls_policy_name(d->tls),
				t) :
		      xasprintf("TLS is required (tls=%s) and the server "
				"does not offer STARTTLS",
				conf_tls_policy_name(d->tls));
		break;
	case SMTPC_FAIL_AUTH_CLEAR:
		/* RFC 5248: X.7.10 encryption needed */
		status = "4.7.10";
		why = xasprintf("authentication to smarthost not attempted: "
				"credentials are never sent without TLS "
				"(smarthost_tls=%s, no TLS on this session)",
				conf_tls_policy_name(d->tls));
		break;
	case SMTPC_FAIL_AUTH_MECH:
		status = "4.7.4";
		why = xasprintf("authentication to smarthost failed: %s",
				ev->error);
		break;
	case SMTPC_FAIL_AUTH:
		status = t != NULL ? auth_status(&ev->reply, st) : "4.7.0";
		why = xasprintf("authentication to smarthost failed: %s",
				t != NULL ? t : ev->error);
		break;
	case SMTPC_FAIL_SESSION:
		break;
	}
	TN_ASSERT(why != NULL);
	/* the user name is ours, the reply the server's; the password is
	 * in neither */
	log_escape(e, sizeof(e), why, strlen(why));
	log_escape(u, sizeof(u), d->auth ? user : "",
		   d->auth ? strlen(user) : 0);
	log_warn("relay dest=%s event=%s peer=%s%s%s%s status=%s error=\"%s\"",
		 d->key, ev->fail == SMTPC_FAIL_TLS ? "tls_required" : "auth",
		 rc->peer, d->auth ? " user=\"" : "", u, d->auth ? "\"" : "",
		 status, e);
	conn_fail_st(rc, status, why);
	free(why);
	free(t);
}

static void
handle_event(struct relay_conn *rc, const struct smtpc_event *ev)
{
	switch (ev->kind) {
	case SMTPC_EV_READY:
		rc->ready = true;
		rc->t_ready = now_s();
		log_ready(rc);
		conn_take_item(rc);
		break;
	case SMTPC_EV_STARTTLS:
		conn_tls_begin(rc);
		break;
	case SMTPC_EV_RESULT:
		on_result(rc, ev);
		break;
	case SMTPC_EV_BODY:
		rc->body_wanted = true;
		body_pump(rc);
		break;
	case SMTPC_EV_TX_DONE:
		on_tx_done(rc);
		break;
	case SMTPC_EV_FAILED: {
		char *why;
		if (ev->fail != SMTPC_FAIL_SESSION) {
			on_policy_failure(rc, ev);
			break;
		}
		if (ev->reply.code != 0) {
			char *t = reply_text(&ev->reply);
			why = xasprintf("%s said: %s", rc->peer, t);
			free(t);
		} else {
			why = xasprintf("%s: %s", rc->peer,
					ev->error != NULL ? ev->error :
					"protocol error");
		}
		conn_fail(rc, why);
		free(why);
		break;
	}
	case SMTPC_EV_NONE:
		break;
	}
}

static void
conn_pump(struct relay_conn *rc)
{
	for (unsigned rounds = 0; rounds < 10000 && !rc->detached &&
	     rc->conn != NULL; rounds++) {
		const uint8_t *p;
		size_t len = 0, used = 0;
		struct smtpc_event ev;
		bool any = false;
		int r;

		p = conn_input_peek(rc->conn, &len);
		if (len == 0)
			break;
		r = smtpc_feed(rc->c, p, len, &used);
		conn_input_drain(rc->conn, used);
		struct conn *before = rc->conn;
		while (rc->conn == before && !rc->detached &&
		       smtpc_next(rc->c, &ev)) {
			any = true;
			handle_event(rc, &ev);
		}
		if (rc->detached || rc->conn != before)
			return;
		if (r < 0) {
			/* QUIT answered or the session failed */
			if (rc->item == NULL) {
				conn_detach(rc);
				return;
			}
			conn_fail(rc, "the session ended");
			return;
		}
		if (used == 0 && !any)
			break;
	}
	if (!rc->detached && rc->conn != NULL)
		conn_flush(rc);
}

static void
cb_read(void *arg)
{
	struct relay_link *link = arg;

	if (link->rc != NULL)
		conn_pump(link->rc);
}

static void cb_timeout(void *arg);

/* relay_conn_idle passed with nothing to send: QUIT */
static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->detached || rc->conn == NULL || !rc->idle)
		return;
	rc->idle = false;
	smtpc_quit(rc->c);
	conn_flush(rc);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->detached || rc->conn == NULL)
		return;
	cb_timeout(rc);
}

static void
link_timeout(void *arg)
{
	struct relay_link *link = arg;

	if (link->rc != NULL && !link->rc->detached)
		cb_timeout(link->rc);
}

static void
cb_timeout(void *arg)
{
	struct relay_conn *rc = arg;

	if (rc->tls_pending) {
		/* a server that hangs in the handshake is a broken TLS
		 * stack as much as one that fails it */
		tls_failed(rc, "TLS handshake timed out");
		return;
	}
	char *why = xasprintf("%s: timed out", rc->peer);

	conn_fail(rc, why);
	free(why);
}

static void
cb_close(void *arg)
{
	struct relay_link *link = arg;
	struct relay_conn *rc = link->rc;
	char *why;

	if (rc == NULL)
		return;
	/* the replies that came before the close count */
	conn_pump(rc);
	if (rc->detached || rc->conn == NULL)
		return;
	if (!rc->in_tx && rc->item == NULL && rc->ready) {
		conn_detach(rc);
		return;
	}
	why = xasprintf("%s: lost connection", rc->peer);
	conn_fail(rc, why);
	free(why);
}

static void
cb_drained(void *arg)
{
	struct relay_link *link = arg;
	struct relay_conn *rc = link->rc;

	if (rc != NULL && rc->body_wanted && !rc->body_ended)
		body_pump(rc);
}

static const struct conn_handler relay_conn_handler = {
	.on_read = cb_read,
	.on_timeout = link_timeout,
	.on_close = cb_close,
	.on_drained = cb_drained,
};

static void
connected(void *arg, int fd, const char *error)
{
	struct relay_conn *rc = arg;
	struct relay *r = rc->r;
	const struct tern_conf *conf = r->conf;

	rc->nc = NULL;
	if (fd < 0) {
		conn_fail(rc, error != NULL ? error : "connect failed");
		return;
	}
	struct smtpc_params params = {
		.helo_name = conf->hostname != NULL && conf->hostname[0] != '\0' ?
			     conf->hostname : "localhost",
		.timeout_greeting = conf->relay_timeout_greeting,
		.timeout_mail = conf->relay_timeout_command,
		.timeout_rcpt = conf->relay_timeout_command,
		.timeout_data = conf->relay_timeout_data,
		.timeout_block = conf->relay_timeout_block,
		.timeout_dot = conf->relay_timeout_dot,
	};
	struct relay_dest *d = rc->d;
	switch (d->tls) {
	case CONF_TLS_MAY:
		/* RFC 7435: a server whose handshake failed gets its mail
		 * in the clear rather than none */
		params.tls = rc->plain_target == rc->target ||
			     (rc->target < d->ntargets &&
			      notls_has(r, &d->targets[rc->target].sa)) ?
			     SMTPC_TLS_NONE : SMTPC_TLS_MAY;
		break;
	case CONF_TLS_ENCRYPT:
	case CONF_TLS_VERIFY:
		params.tls = SMTPC_TLS_REQUIRE;
		break;
	case CONF_TLS_DEFAULT:
	case CONF_TLS_NONE:
		params.tls = SMTPC_TLS_NONE;
		break;
	}
	if (d->auth) {
		params.auth_user = conf->smarthost_user;
		params.auth_password = r->password;
	}
	rc->c = smtpc_new(&params);
	rc->link = xcalloc(1, sizeof(*rc->link));
	rc->link->rc = rc;
	rc->conn = conn_new(r->base, fd, &relay_conn_handler, rc->link);
	rc->deadline_for = NULL;
	conn_flush(rc);
}

/* connects to the next live target, or gives up on the destination */
static void
conn_next_target(struct relay_conn *rc)
{
	struct relay_dest *d = rc->d;
	struct relay *r = rc->r;
	const char *err = NULL;

	while (rc->target < d->ntargets && d->targets[rc->target].dead)
		rc->target++;
	if (rc->target >= d->ntargets || r->closing) {
		/* every address failed: what waits for this destination is
		 * deferred, unless another connection still carries it (a
		 * 5xx greeting too: RFC 5321 §3.1 lets a client try later,
		 * and queue_lifetime bounds it) */
		if (d->nconns <= 1) {
			const char *why = rc->last_error != NULL ?
				rc->last_error : "no address could be reached";
			dest_fail_waiting(d, DELIVER_TEMPFAIL,
					  rc->last_error != NULL &&
					  rc->last_status != NULL ?
					  rc->last_status : "4.4.1", why);
			/* the route is stale once every target failed */
			dest_free_route(d);
		}
		conn_detach(rc);
		return;
	}
	struct relay_target *t = &d->targets[rc->target];
	char addr[NET_ADDR_TEXT_MAX];
	net_addr_text((struct sockaddr *)&t->sa, addr, sizeof(addr));
	/* "host[addr]:port" as mail servers log it */
	char ip[NET_ADDR_TEXT_MAX];
	net_addr_ip((struct sockaddr *)&t->sa, ip, sizeof(ip));
	snprintf(rc->peer, sizeof(rc->peer), "%s[%s]:%u", t->host, ip,
		 d->port);
	rc->ready = false;
	socklen_t len = t->sa.ss_family == AF_INET ?
		sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (net_connect(r->base, (struct sockaddr *)&t->sa, len,
			r->conf->relay_timeout_connect, connected, rc, &rc->nc,
			&err) < 0) {
		free(rc->last_error);
		rc->last_error = xasprintf("%s: %s", rc->peer,
					   err != NULL ? err : "connect failed");
		rc->last_status = NULL;
		t->dead = true;
		rc->target++;
		conn_next_target(rc);
	}
}

static void
conn_start(struct relay_dest *d)
{
	struct relay *r = d->r;
	struct relay_conn *rc = xcalloc(1, sizeof(*rc));

	rc->r = r;
	rc->d = d;
	rc->plain_target = SIZE_MAX;
	rc->t_start = now_s();
	rc->deadline = evtimer_new(r->base, deadline_cb, rc);
	rc->idle_ev = evtimer_new(r->base, idle_cb, rc);
	rc->next = r->conns;
	if (r->conns != NULL)
		r->conns->prev = rc;
	r->conns = rc;
	r->nconns++;
	d->nconns++;
	conn_next_target(rc);
}

/* ---- setup ------------------------------------------------------------- */

/* the TLS contexts the configured policies need */
static void
setup_tls(struct relay *r)
{
	const struct tern_conf *conf = r->conf;
	bool any = false, verify = false;
	enum conf_tls_policy p;
	char *err = NULL;

	for (size_t i = 0; i <= conf->nroutes + 1; i++) {
		if (i < conf->nroutes)
			p = conf_relay_tls(conf, &conf->routes[i].via);
		else if (i == conf->nroutes)
			p = conf_relay_tls(conf, NULL);
		else if (conf->smarthost_via.host != NULL)
			p = conf_relay_tls(conf, &conf->smarthost_via);
		else
			continue;
		any |= p == CONF_TLS_MAY || p == CONF_TLS_ENCRYPT;
		verify |= p == CONF_TLS_VERIFY;
	}
	if (any && net_tls_ctx_client_new(NET_TLS_VERIFY_NONE, NULL,
					  &r->tls_any, &err) < 0) {
		r->tls_any_error = xasprintf("cannot make the TLS client "
					     "context: %s", err);
		log_error("relay event=setup error=\"%s\"", r->tls_any_error);
		free(err);
		err = NULL;
	}
	if (verify) {
		const char *ca = conf->relay_tls_ca_file;
		bool file = ca != NULL && ca[0] != '\0';

		if (net_tls_ctx_client_new(file ? NET_TLS_VERIFY_CAFILE :
					   NET_TLS_VERIFY_SYSTEM,
					   file ? ca : NULL, &r->tls_verify,
					   &err) < 0) {
			r->tls_verify_error = xasprintf("cannot load the CAs "
							"for tls=verify: %s",
							err);
			log_error("relay event=setup error=\"%s\"",
				  r->tls_verify_error);
			free(err);
		}
	}
}

/* reads the smarthost's password: the first line of its file */
static void
setup_auth(struct relay *r)
{
	const struct tern_conf *conf = r->conf;
	const char *path = conf->smarthost_password_file;
	char buf[RELAY_PASSWORD_MAX + 2];
	size_t n = 0;
	struct stat st;
	int fd;

	if (conf->smarthost_user == NULL || conf->smarthost_user[0] == '\0')
		return;
	if (conf->smarthost_via.host == NULL)
		log_warn("relay event=setup warning=\"smarthost_user is set "
			 "but there is no smarthost: it is not used\"");
	if (path == NULL || path[0] == '\0') {
		r->auth_error = xstrdup("smarthost_user is set but "
					"smarthost_password_file is not");
		goto fail;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r->auth_error = xasprintf("cannot open smarthost_password_file "
					  "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
		log_warn("relay event=setup file=%s warning=\"the password "
			 "file is readable by group or others\"", path);
	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r->auth_error = xasprintf("cannot read "
						  "smarthost_password_file %s: "
						  "%s", path, strerror(errno));
			(void)close(fd);
			goto fail;
		}
		n += (size_t)k;
		if (k == 0 || memchr(buf, '\n', n) != NULL ||
		    n == sizeof(buf) - 1)
			break;
	}
	(void)close(fd);
	/* the first line, without its CRLF or LF */
	const char *nl = memchr(buf, '\n', n);
	if (nl != NULL)
		n = (size_t)(nl - buf); /* UNSAFE: nl points into buf[0..n) */
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n > RELAY_PASSWORD_MAX || memchr(buf, '\0', n) != NULL) {
		r->auth_error = xasprintf("smarthost_password_file %s: the "
					  "first line is not a password of at "
					  "most %d octets", path,
					  RELAY_PASSWORD_MAX);
		goto fail;
	}
	r->password = xstrndup(buf, n);
	explicit_bzero(buf, sizeof(buf));
	return;
fail:
	explicit_bzero(buf, sizeof(buf));
	log_error("relay event=setup error=\"%s\" (mail to the smarthost "
		  "waits)", r->auth_error);
}

/* ---- public ------------------------------------------------------------ */

struct relay *
relay_new(struct event_base *base, struct net_dns *dns, struct spool *spool,
	  struct workq *wq, const struct tern_conf *conf, relay_done_cb *cb,
	  void *arg)
{
	struct relay *r = xcalloc(1, sizeof(*r));

	r->base = base;
	r->dns = dns;
	r->spool = spool;
	r->wq = wq;
	r->conf = conf;
	r->cb = cb;
	r->cb_arg = arg;
	r->reap_ev = event_new(base, -1, 0, reap_cb, r);
	setup_tls(r);
	setup_auth(r);
	return r;
}

void
relay_free(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	r->closing = true;
	while (r->conns != NULL) {
		struct relay_conn *rc = r->conns;
		if (rc->item != NULL) {
			/* no callback: the spool keeps these as they were */
			item_free(rc->item);
			rc->item = NULL;
		}
		conn_detach(rc);
	}
	while (r->dests != NULL) {
		struct relay_dest *d = r->dests;
		struct relay_item *it;
		while ((it = dest_pop(d)) != NULL)
			item_free(it);
		dest_free(d);
	}
	reap_cb(-1, 0, r);
	event_free(r->reap_ev);
	net_tls_ctx_free(&r->tls_any);
	net_tls_ctx_free(&r->tls_verify);
	free(r->tls_any_error);
	free(r->tls_verify_error);
	if (r->password != NULL) {
		explicit_bzero(r->password, strlen(r->password));
		free(r->password);
	}
	free(r->auth_error);
	free(r->notls);
	/* submissions left without a callback: their recipients stay in
	 * the spool as they were, for the next start */
	while (r->subs != NULL) {
		struct relay_sub *sub = r->subs;
		sub_unlink(sub);
		sub_free(sub);
	}
	free(r);
}

unsigned
relay_pending(const struct relay *r)
{
	return r->nsubs;
}

unsigned
relay_busy(const struct relay *r)
{
	return r != NULL ? r->nconns : 0;
}

void
relay_stop(struct relay *r)
{
	struct relay_conn *rc, *next;

	if (r == NULL || r->closing)
		return;
	r->closing = true;
	for (struct relay_dest *d = r->dests; d != NULL; d = d->next) {
		struct relay_item *it;
		net_dns_cancel(&d->q);
		while ((it = dest_pop(d)) != NULL) {
			for (size_t k = 0; k < it->n; k++) {
				it->sub->res[it->slot[k]].skipped = true;
				it->answered[k] = true;
			}
			item_done(it);
		}
	}
	for (rc = r->conns; rc != NULL; rc = next) {
		next = rc->next;
		if (rc->item != NULL)
			continue;    /* its transaction finishes */
		if (rc->idle) {
			rc->idle = false;
			evtimer_del(rc->idle_ev);
			smtpc_quit(rc->c);
			conn_flush(rc);
		} else if (!rc->ready) {
			conn_detach(rc);
		}
		/* else its QUIT is on the way */
	}
}

/* the domain of an address, lower-cased, without a trailing dot */
static char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *d = xstrdup(at != NULL ? at + 1 : "");
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		d[n - 1] = '\0';
	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

void
relay_submit(struct relay *r, const struct spool_envelope *env,
	     const size_t *idx, size_t n, void *cookie)
{
	struct relay_sub *sub = xcalloc(1, sizeof(*sub));
	struct relay_item **items = xcalloc(n > 0 ? n : 1, sizeof(*items));
	struct relay_dest **dests = xcalloc(n > 0 ? n : 1, sizeof(*dests));
	size_t nitems = 0;
	int64_t now = (int64_t)now_s();

	TN_ASSERT(n > 0);
	sub->r = r;
	sub->cookie = cookie;
	sub->env = env;
	sub->n = n;
	sub->res = xcalloc(n > 0 ? n : 1, sizeof(*sub->res));
	sub->t_submit = now_s();
	sub->next = r->subs;
	if (r->subs != NULL)
		r->subs->prev = sub;
	r->subs = sub;
	r->nsubs++;
	for (size_t k = 0; k < n; k++) {
		const struct spool_rcpt *rcpt = &env->rcpts[idx[k]];
		bool fwd = (rcpt->flags & SPOOL_RCPT_F_FORWARDED) != 0;
		char *domain = addr_domain(rcpt->dest);
		struct relay_dest *d = dest_get(r, domain);
		struct relay_item *it = NULL;

		free(domain);
		sub->res[k].idx = idx[k];
		/* one item per destination and sender form */
		for (size_t i = 0; i < nitems && it == NULL; i++) {
			if (dests[i] == d && items[i]->forwarded == fwd)
				it = items[i];
		}
		if (it == NULL) {
			it = xcalloc(1, sizeof(*it));
			it->sub = sub;
			it->slot = xcalloc(n, sizeof(*it->slot));
			it->rcpts = xcalloc(n, sizeof(*it->rcpts));
			it->answered = xcalloc(n, sizeof(*it->answered));
			it->forwarded = fwd;
			it->mail_from = NULL;
			if (fwd && env->mail_from[0] != '\0')
				it->mail_from = deliver_srs_sender(r->conf,
							env->mail_from, now);
			if (it->mail_from == NULL)
				it->mail_from = xstrdup(env->mail_from);
			items[nitems] = it;
			dests[nitems++] = d;
		}
		it->slot[it->n] = k;
		it->rcpts[it->n] = (struct smtpc_rcpt){
			.address = rcpt->dest,
			.notify = rcpt->notify,
			.orcpt = rcpt->orcpt,
		};
		it->n++;
	}
	sub->items_left = (unsigned)nitems;
	for (size_t i = 0; i < nitems; i++) {
		struct relay_dest *d = dests[i];
		*d->tail = items[i];
		d->tail = &items[i]->next;
		d->nwait++;
	}
	free(items);
	free(dests);
	/* connections start after this turn: no callback inside submit */
	event_active(r->reap_ev, 0, 0);
}

char *
deliver_srs_sender(const struct tern_conf *conf, const char *sender,
		   int64_t now)
{
	const char *domain = conf->srs_domain != NULL &&
			     conf->srs_domain[0] != '\0' ? conf->srs_domain :
			     conf->ndomains > 0 ? conf->domains[0] : NULL;
	const char *err = NULL;
	char *out = NULL;

	if (domain == NULL || conf->srs_secret == NULL ||
	    deliver_srs_forward(conf->srs_secret, domain, sender, now, &out,
				&err) < 0) {
		char e[300];
		log_warn("relay event=srs sender=<%s> error=\"%s\"",
			 log_escape(e, sizeof(e), sender, strlen(sender)),
			 err != NULL ? err : "no SRS domain or secret");
		return NULL;
	}
	return out;
}

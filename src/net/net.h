/* SPDX-License-Identifier: MIT */
/*
 * net: the event loop's sockets. Listeners accept connections; a struct
 * conn is one non-blocking connection with an input and an output queue,
 * a timeout and backpressure. TLS will live here too, so that the
 * layers above only ever see plain bytes. net never interprets them.
 */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"

struct event_base;

/* "127.0.0.1:25" or "[::1]:25" */
#define NET_ADDR_TEXT_MAX 64
void net_addr_text(const struct sockaddr *sa, char *out, size_t outsz);
/* the address alone, without port: "127.0.0.1", "::1" */
void net_addr_ip(const struct sockaddr *sa, char *out, size_t outsz);

struct net_listener;
/* a connection was accepted: fd is non-blocking and owned by the callee */
typedef void net_accept_cb(void *arg, int fd, const struct sockaddr *peer,
			   const struct sockaddr *local);

/*
 * Listens on address ("127.0.0.1", "::1", "*", "localhost") and port.
 * Returns 0, or -1 with *error_r (heap, caller frees).
 */
int net_listen(struct event_base *base, const char *address,
	       const char *port, net_accept_cb *cb, void *arg,
	       struct net_listener **l_r, char **error_r);
/*
 * Listens on a local (AF_UNIX) stream socket at path, made with the
 * given mode (0600: the server's user only); a stale socket file there
 * is replaced, and the file is removed again at free. peer and local in
 * the callback are AF_UNIX addresses.
 */
int net_listen_unix(struct event_base *base, const char *path,
		    unsigned mode, net_accept_cb *cb, void *arg,
		    struct net_listener **l_r, char **error_r);
void net_listener_free(struct net_listener **lp);
/* the bound address as text */
const char *net_listener_name(const struct net_listener *l);

struct conn;

struct conn_handler {
	/* input arrived (conn_input_peek shows it) */
	void (*on_read)(void *arg);
	/* no input for the timeout while reading, or no socket space for
	 * it while output waits */
	void (*on_timeout)(void *arg);
	/* the peer closed its side (conn_is_dead false: queued input can
	 * still be read and replies written) or the connection failed
	 * (conn_is_dead true: only conn_free is left) */
	void (*on_close)(void *arg);
	/* all queued output was written (only called when asked for with
	 * conn_notify_drained) */
	void (*on_drained)(void *arg);
};

/* takes ownership of fd */
struct conn *conn_new(struct event_base *base, int fd,
		      const struct conn_handler *h, void *arg);
void conn_free(struct conn **cp);

/*
 * The first contiguous run of buffered input (NULL and 0 when empty); it
 * is valid until conn_input_drain or a return to the loop.
 */
const uint8_t *conn_input_peek(struct conn *c, size_t *len_r);
void conn_input_drain(struct conn *c, size_t n);
size_t conn_input_len(struct conn *c);

/* queues output; -1 when the connection is dead */
int conn_write(struct conn *c, const void *p, size_t n);
size_t conn_output_len(struct conn *c);
/* calls on_drained once the output queue is empty */
void conn_notify_drained(struct conn *c, bool on);

bool conn_is_dead(const struct conn *c);

/* sends FIN after the queued output; reading goes on */
void conn_shutdown_write(struct conn *c);

/*
 * Pauses or resumes on_read. While paused the socket is still read into
 * the input queue (so its EOF or failure is seen) until the queue holds
 * its high-water mark; then reading stops and TCP slows the peer.
 */
void conn_read_enable(struct conn *c, bool on);
/* the timeout in seconds, 0 for none */
void conn_set_timeout(struct conn *c, unsigned seconds);

/* ------------------------------------------------------------------ */
/*
 * Asynchronous DNS for delivery (c-ares on the event loop): the route to
 * a mail domain. RFC 5321 §5.1: the MX records ordered by preference,
 * hosts of equal preference in random order; a domain without MX records
 * is its own implicit MX (its A/AAAA addresses); a null MX (RFC 7505: one
 * MX record of preference 0 and exchange ".") means the domain takes no
 * mail. Each host comes with its IPv6 and IPv4 addresses.
 */
struct net_dns;

/*
 * servers: NULL for the system's resolvers (/etc/resolv.conf), or a
 * comma-separated list "127.0.0.1:5353,[::1]:53" (c-ares' csv form).
 * timeout_ms and tries bound each query. Returns 0, or -1 with *error_r
 * (static text).
 */
int net_dns_new(struct event_base *base, const char *servers,
		unsigned timeout_ms, unsigned tries, struct net_dns **d_r,
		const char **error_r);
/* cancels every query in flight (their callbacks do not run) */
void net_dns_free(struct net_dns **dp);

enum net_route_status {
	NET_ROUTE_OK = 0,
	NET_ROUTE_NULL_MX,      /* RFC 7505: bounce at once, 5.1.10 */
	NET_ROUTE_NO_DOMAIN,    /* NXDOMAIN, or no MX and no address: 5.1.2 */
	NET_ROUTE_TEMPFAIL,     /* timeout, SERVFAIL, no server: retry */
};

struct net_route_host {
	char *name;             /* the MX host name (or the domain itself) */
	unsigned pref;          /* MX preference (0 for an implicit MX) */
	struct sockaddr_storage *addrs; /* IPv6 first, then IPv4; port 0 */
	size_t naddrs;
	bool tempfail;          /* its address lookup failed temporarily */
};

struct net_route {
	enum net_route_status status;
	const char *error;      /* text for the log and a deferral/bounce */
	bool implicit;          /* no MX records: the domain's own address */
	struct net_route_host *hosts; /* in the order to try them */
	size_t nhosts;
};

/*
 * The route the callback gets is the callee's to keep or free with
 * net_route_free(). It is called on the loop thread, never from inside
 * net_dns_route() itself.
 */
typedef void net_route_cb(void *arg, struct net_route *route);

struct net_dns_query;
/*
 * Looks up the route to `domain`: at most max_hosts MX hosts (the most
 * preferred), each with at most max_addrs addresses. With mx == false the
 * MX lookup is skipped and `domain` is taken as a host name or an address
 * literal (a smarthost written as [host]). Returns a handle for
 * net_dns_cancel() (valid until the callback runs).
 */
struct net_dns_query *net_dns_route(struct net_dns *d, const char *domain,
				    bool mx, unsigned max_hosts,
				    unsigned max_addrs, net_route_cb *cb,
				    void *arg);
/* the callback of q will not run; *qp becomes NULL */
void net_dns_cancel(struct net_dns_query **qp);
void net_route_free(struct net_route **rp);

/*
 * Orders MX hosts as RFC 5321 §5.1 asks: by preference, random among
 * equal preferences (rnd() is called for each shuffle step and returns
 * any 64-bit value). Exposed for its unit test.
 */
void net_route_order(struct net_route_host *hosts, size_t n,
		     uint64_t (*rnd)(void *arg), void *rnd_arg);

/* ------------------------------------------------------------------ */
/*
 * A non-blocking outgoing connection: net_connect() starts it and calls
 * cb on the loop thread with the connected fd (owned by the callee) or
 * -1 and errno text once it succeeds, fails, or timeout_s passes.
 */
struct net_connecting;
typedef void net_connect_cb(void *arg, int fd, const char *error);
int net_connect(struct event_base *base, const struct sockaddr *to,
		socklen_t tolen, unsigned timeout_s, net_connect_cb *cb,
		void *arg, struct net_connecting **nc_r,
		const char **error_r);
/* stops a connection attempt; its callback does not run */
void net_connect_cancel(struct net_connecting **ncp);

#endif

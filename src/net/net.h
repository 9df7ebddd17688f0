/* SPDX-License-Identifier: MIT */
/*
 * net: the event loop's sockets. Listeners accept connections; a struct
 * conn is one non-blocking connection with an input and an output queue,
 * a timeout and backpressure. TLS lives here too (a transport under
 * struct conn), so that the layers above only ever see plain bytes. net
 * never interprets them.
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
 * Listens on address and port, with one socket per address family:
 * "127.0.0.1" and other IPv4 addresses: IPv4 only; "::1", "::" and other
 * IPv6 addresses: IPv6 only (IPV6_V6ONLY, whatever the system default);
 * "*": 0.0.0.0 and [::], two sockets; "localhost": each loopback address
 * it resolves to (IPv4 first). With "*" or "localhost" on a machine
 * without IPv6 (no IPv6 socket, or no address to bind) the IPv6 socket is
 * left out with a warning in the log. Port "0" picks a free port, the
 * same for both sockets. Connections from every socket go to cb.
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
/*
 * The bound addresses as text, comma separated, IPv4 first:
 * "127.0.0.1:25", "[::1]:25", "0.0.0.0:25,[::]:25" for "*" (or
 * "0.0.0.0:25" without IPv6), "unix:/path". Valid until the free.
 */
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
 * TLS under struct conn (net_tls.c, OpenSSL 3): TLS 1.2 and 1.3 only,
 * forward-secret AEAD suites only, no renegotiation, no compression.
 * Errors come back in *error_r (heap, caller frees).
 */
struct net_tls_ctx;

/*
 * A server context from a PEM certificate chain (leaf first) and its key:
 * the default certificate.
 */
int net_tls_ctx_server_new(const char *cert_file, const char *key_file,
			   struct net_tls_ctx **ctx_r, char **error_r);
/*
 * Another certificate, presented to clients whose SNI (RFC 6066 §3)
 * names `name` ("mail.example.org", or "*.example.org" for one more
 * label; exact names win). Other names get the default certificate.
 */
int net_tls_ctx_server_add_sni(struct net_tls_ctx *ctx, const char *name,
			       const char *cert_file, const char *key_file,
			       char **error_r);
/*
 * Makes a self-signed certificate for hostname (EC P-256, valid ten
 * years, hostname as its subject alternative name) in cert_file and
 * key_file (0600), each written to a temporary file and renamed.
 */
int net_tls_selfsigned_make(const char *cert_file, const char *key_file,
			    const char *hostname, char **error_r);

enum net_tls_verify {
	NET_TLS_VERIFY_SYSTEM = 0, /* the system CA store */
	NET_TLS_VERIFY_CAFILE,     /* the PEM CAs in ca_file */
	NET_TLS_VERIFY_NONE,       /* accept any certificate (opportunistic
				    * TLS, RFC 7435); conn_tls_info tells */
};
/*
 * A client context. When it verifies, the handshake fails unless the
 * server's chain ends at a trusted CA and, given an SNI name, the
 * certificate names that host (RFC 6125).
 */
int net_tls_ctx_client_new(enum net_tls_verify verify, const char *ca_file,
			   struct net_tls_ctx **ctx_r, char **error_r);
/* NULL-safe; connections already started keep working (they hold a
 * reference, dropped when the connection is freed) */
void net_tls_ctx_free(struct net_tls_ctx **ctxp);

/*
 * The handshake's outcome, called once on the loop thread. ok false:
 * error says why ("TLS handshake failed: certificate verify failed: ...")
 * and the connection is dead already (conn_is_dead; on_close is not
 * called for it, only conn_free is left). The text is valid during the
 * call. Do not free the connection inside the callback.
 */
typedef void conn_tls_done_cb(void *arg, bool ok, const char *error);

/*
 * From now on the connection's bytes go through TLS: the handshake runs
 * on the loop (the conn's timeout bounds it), then conn_input_peek,
 * conn_write, conn_shutdown_write (which sends close_notify first) and
 * the rest work as before, on plaintext. on_read is not called before
 * the handshake is done; conn_write may be called at once (the data
 * waits for the handshake).
 *
 * Input already buffered in the conn is DISCARDED: it came before the
 * handshake, in the clear, where anyone in the path could have added to
 * it (RFC 3207 §4.2; STARTTLS command injection, CVE-2011-0411). Output
 * still queued (the "220 Ready to start TLS" reply) is sent first, in
 * the clear.
 *
 * server says which side we are and must match ctx; sni_or_null is the
 * name a client sends and verifies (ignored on a server).
 *
 * After the handshake, failures come as before through on_close with
 * conn_is_dead true: a bad record, an alert, or a peer that closes the
 * socket without close_notify (a possible truncation). A close_notify is
 * an orderly close: on_close with conn_is_dead false.
 *
 * Returns 0, or -1 with *error_r when TLS cannot start (already started,
 * connection closed, context for the other side); done is not called
 * then.
 */
int conn_start_tls(struct conn *c, struct net_tls_ctx *ctx, bool server,
		   const char *sni_or_null, conn_tls_done_cb *done,
		   void *arg, char **error_r);

/*
 * For Received: headers and logs once the handshake is done: the
 * protocol ("TLSv1.3"), the cipher ("TLS_AES_256_GCM_SHA384"), and
 * whether the peer's certificate was verified (a client that verified;
 * false on a server, which asks for no client certificate). The strings
 * are static. Returns false (outputs untouched) on a plain connection or
 * before the handshake is done.
 */
bool conn_tls_info(const struct conn *c, const char **version_r,
		   const char **cipher_r, bool *verified_r);

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

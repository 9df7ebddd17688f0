/* SPDX-License-Identifier: MIT */
/*
 * serve: binds the protocol engines to the network. struct tern_server
 * is the one root of mutable state: main() builds it and passes it down.
 * serve owns sockets, timeouts and the write queue, and turns engine
 * events into spool and delivery work; it never parses protocol bytes.
 */
#ifndef TERN_SERVE_H
#define TERN_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "conf/conf.h"
#include "deliver/deliver.h"
#include "net/net.h"
#include "spool/spool.h"

struct event_base;
struct event;
struct smtpd_session;
struct serve_control;
struct serve_clients;
struct account_table;
struct account;

/* what tells that a file changed under us */
struct serve_file_stamp {
	bool exists;
	uint64_t ino, size;
	int64_t mtime_ns;
};

/* what a listener's accept callback gets */
struct serve_listener {
	struct tern_server *srv;
	enum conf_role role;
	unsigned sessions_max;         /* listen ... sessions=N; 0: none */
	unsigned sessions;             /* open now */
};

struct tern_server {
	struct tern_conf *conf;
	const char *hostname;          /* conf->hostname or the system's */
	struct event_base *base;
	struct workq *spool_wq;        /* group commits */
	struct workq *deliver_wq;      /* delivery agents */
	struct event *spool_wq_ev, *deliver_wq_ev, *tick_ev;
	struct spool *spool;
	struct deliverq *deliverq;
	struct net_dns *dns;           /* routes for the relay agent */
	struct relay *relay;           /* outbound SMTP */

	struct net_listener **listeners;
	struct serve_listener *listener_roles; /* beside listeners */
	size_t nlisteners;
	struct net_listener *sendmail_listener; /* SERVE_SENDMAIL_SOCKET */

	struct smtpd_session *sessions; /* every live session */
	unsigned nsessions;
	unsigned nlocal_sessions;      /* of nsessions: on sendmail_listener */
	uint32_t next_session_id;

	bool stopping;
	struct event *stop_ev;          /* deadline for a graceful stop */

	struct serve_control *control;  /* `tern queue` (serve_control.c) */

	struct serve_clients *clients;  /* per-address limits */
	/* STARTTLS and submissions: the server certificates, replaced as
	 * a whole on SIGHUP (sessions keep the one they started with) */
	struct net_tls_ctx *tls;

	/* accounts (serve_auth.c) */
	bool demo;                      /* embedded defaults: demo account */
	struct account_table *accounts;
	char *accounts_path;            /* accounts_file, or the default */
	struct serve_file_stamp accounts_stamp;
	bool accounts_reloading;
	struct workq *auth_wq;          /* password checks, reloads */
	char *auth_dummy_hash;          /* for unknown accounts' checks */
	struct event *auth_wq_ev;
};

/*
 * Opens the spool, recovers it, starts listeners and timers on
 * srv->base. Returns 0 or -1 with *error_r (heap, caller frees).
 */
int serve_start(struct tern_server *srv, char **error_r);

/* graceful stop: listeners close, every session gets 421 and the loop
 * exits once commits and deliveries in flight are done */
void serve_stop(struct tern_server *srv);

/* while stopping: exits the loop once nothing is left in flight */
void serve_maybe_exit(struct tern_server *srv);

/* releases everything serve_start made (after the loop has exited) */
void serve_free(struct tern_server *srv);

/* smtpd: a new SMTP connection on a listener of that role */
void smtpd_accept(struct serve_listener *sl, int fd,
		  const struct sockaddr *peer, const struct sockaddr *local);

/*
 * The server's TLS certificates (tls_cert, tls_key, tls_sni) into
 * srv->tls; without tls_cert a self-signed certificate for the host name
 * is made once under <state_dir>/tls/. At start a failure stops the
 * server; on SIGHUP it is logged and the old certificates stay.
 */
int serve_tls_load(struct tern_server *srv, char **error_r);
/* SIGHUP: reloads what can change under a running server */
void serve_reload(struct tern_server *srv);

/*
 * auth (serve_auth.c): the accounts file and password checks. start
 * loads the file (and makes the demo account with the embedded
 * defaults); tick reloads it on the auth worker when it changed; find
 * looks an account up (valid until the next loop turn); check verifies a
 * password off the loop and calls done(arg, ok) on the loop thread.
 */
int serve_accounts_start(struct tern_server *srv, char **error_r);
void serve_accounts_tick(struct tern_server *srv);
void serve_accounts_free(struct tern_server *srv);
const struct account *serve_account_find(const struct tern_server *srv,
					 const char *address);
typedef void serve_auth_done_fn(void *arg, bool ok);
void serve_auth_check(struct tern_server *srv, const char *address,
		      const char *password, serve_auth_done_fn *done,
		      void *arg);

/*
 * clients (serve_clients.c): per-address counts (IPv6 per /64). admit
 * counts a connection: 0, or -1 with *why_r (the key that refused it)
 * when client_sessions_max or client_rate_max (0: none) refuse it;
 * leave undoes an admitted session; auth_failed counts an AUTH failure
 * and returns the failures in the last 15 minutes; gc forgets idle
 * addresses. Addresses that are not IP (local sockets) always pass.
 */
struct serve_clients *serve_clients_new(void);
void serve_clients_free(struct serve_clients **scp);
int serve_clients_admit(struct serve_clients *sc, const struct sockaddr *peer,
			int64_t now, unsigned sessions_max, unsigned rate_max,
			const char **why_r);
void serve_clients_leave(struct serve_clients *sc,
			 const struct sockaddr *peer);
unsigned serve_clients_auth_failed(struct serve_clients *sc,
				   const struct sockaddr *peer, int64_t now);
void serve_clients_gc(struct serve_clients *sc, int64_t now);
/*
 * Local submission (`tern sendmail`): the socket under state_dir that
 * any local user may connect to. Its sessions are trusted (they may
 * relay), show the peer as "local uid=N" (SO_PEERCRED), and are not
 * counted against sessions_max but against their own reserve, so that
 * local mail still goes in while every TCP session is taken.
 */
#define SERVE_SENDMAIL_SOCKET "public/sendmail.sock"
#define SERVE_LOCAL_SESSIONS_MAX 32
/* starts srv->sendmail_listener; a failure (a state_dir path too long
 * for a socket, say) is logged and leaves the server without it, since
 * SMTP over TCP matters more: `tern sendmail` then says it cannot reach
 * the server */
int smtpd_listen_local(struct tern_server *srv, char **error_r);
/* drops a session at once, connection and transaction (final stop) */
void smtpd_session_abandon(struct smtpd_session *s);
/* 421 to every session; they close as soon as nothing waits on them */
void smtpd_shutdown_all(struct tern_server *srv);

/*
 * control: the local socket for `tern queue` at <state_dir>/control.sock
 * (serve_control.c documents the protocol). start: 0, or -1 with
 * *error_r (heap, caller frees). stop closes the socket (a graceful
 * stop); busy counts the clients whose answer is not yet written (the
 * graceful stop waits for them); free comes after the runner is freed
 * and before the spool is.
 */
int serve_control_start(struct tern_server *srv, char **error_r);
void serve_control_stop(struct tern_server *srv);
unsigned serve_control_busy(const struct tern_server *srv);
void serve_control_free(struct tern_server *srv);

/*
 * notify (serve_notify.c): tells systemd (Type=notify) through
 * sd_notify(3), when $NOTIFY_SOCKET is set: ready sends READY=1 with a
 * STATUS= line (once the listeners are up), stopping sends STOPPING=1
 * (a graceful stop begins). A failure is logged, never fatal.
 */
void serve_notify_ready(const struct tern_server *srv);
void serve_notify_stopping(void);

#endif

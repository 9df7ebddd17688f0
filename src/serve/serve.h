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
	size_t nlisteners;
	struct net_listener *sendmail_listener; /* SERVE_SENDMAIL_SOCKET */

	struct smtpd_session *sessions; /* every live session */
	unsigned nsessions;
	unsigned nlocal_sessions;      /* of nsessions: on sendmail_listener */
	uint32_t next_session_id;

	bool stopping;
	struct event *stop_ev;          /* deadline for a graceful stop */

	struct serve_control *control;  /* `tern queue` (serve_control.c) */
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

/* smtpd: a new SMTP connection on a listener */
void smtpd_accept(struct tern_server *srv, int fd,
		  const struct sockaddr *peer, const struct sockaddr *local);
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

#endif

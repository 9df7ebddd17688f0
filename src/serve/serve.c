/* SPDX-License-Identifier: MIT */
/*
 * The server's life cycle on the event loop: open and recover the spool,
 * start the queue runner, the worker pools and the listeners; stop
 * gracefully (421 to every session, finish every commit in flight).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"

/* a graceful stop gives sessions this long to take their 421 */
#define SERVE_STOP_GRACE_SECONDS 10
/* tries of one DNS query, each dns_timeout long */
#define SERVE_DNS_TRIES 2

static void
workq_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	workq_complete(arg);
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct tern_server *srv = arg;
	(void)fd;
	(void)what;
	deliverq_tick(srv->deliverq, (int64_t)time(NULL));
	serve_clients_gc(srv->clients, (int64_t)time(NULL));
	serve_accounts_tick(srv);
	if (srv->stopping)
		serve_maybe_exit(srv);
}

static void
recovered(void *arg, struct spool_envelope *env)
{
	struct tern_server *srv = arg;
	log_info("queue id=%s event=recovered nrcpt=%zu", env->id, env->nrcpts);
	deliverq_add(srv->deliverq, env, (int64_t)time(NULL));
}

static void
listener_accept(void *arg, int fd, const struct sockaddr *peer,
		const struct sockaddr *local)
{
	smtpd_accept(arg, fd, peer, local);
}

static const char *const role_names[] = {
	[CONF_ROLE_MX] = "mx",
	[CONF_ROLE_SUBMISSION] = "submission",
	[CONF_ROLE_SUBMISSIONS] = "submissions",
};

/* <state_dir>/tls/{cert,key}.pem, made once when tls_cert is empty */
#define SERVE_TLS_DIR "tls"

int
serve_tls_load(struct tern_server *srv, char **error_r)
{
	const struct tern_conf *conf = srv->conf;
	char *cert = NULL, *key = NULL;
	struct net_tls_ctx *ctx = NULL;
	int r = -1;

	if (conf->tls_cert[0] != '\0') {
		cert = xstrdup(conf->tls_cert);
		key = xstrdup(conf->tls_key[0] != '\0' ? conf->tls_key :
			      conf->tls_cert);
	} else {
		char *dir = xasprintf("%s/%s", conf->state_dir, SERVE_TLS_DIR);
		cert = xasprintf("%s/cert.pem", dir);
		key = xasprintf("%s/key.pem", dir);
		if (access(cert, F_OK) != 0 || access(key, F_OK) != 0) {
			if (io_mkdir_p(dir, 0700) < 0) {
				*error_r = xasprintf("cannot create %s: %s",
						     dir, strerror(errno));
				free(dir);
				goto out;
			}
			if (net_tls_selfsigned_make(cert, key, srv->hostname,
						    error_r) < 0) {
				free(dir);
				goto out;
			}
			log_info("tern event=tls_selfsigned cert=%s key=%s "
				 "name=%s note=\"clients will not trust it; "
				 "set tls_cert and tls_key\"", cert, key,
				 srv->hostname);
		}
		free(dir);
	}
	if (net_tls_ctx_server_new(cert, key, &ctx, error_r) < 0)
		goto out;
	for (size_t i = 0; i < conf->ntls_sni; i++) {
		const struct conf_tls_sni *sn = &conf->tls_sni[i];
		if (net_tls_ctx_server_add_sni(ctx, sn->name, sn->cert,
					       sn->key, error_r) < 0)
			goto out;
	}
	net_tls_ctx_free(&srv->tls);
	srv->tls = ctx;
	ctx = NULL;
	log_info("tern event=tls_loaded cert=%s sni=%zu", cert,
		 conf->ntls_sni);
	r = 0;
out:
	net_tls_ctx_free(&ctx);
	free(cert);
	free(key);
	return r;
}

void
serve_reload(struct tern_server *srv)
{
	char *error = NULL;

	if (serve_tls_load(srv, &error) < 0) {
		log_error("tern event=reload what=tls error=\"%s\" "
			  "note=\"the old certificates stay\"", error);
		free(error);
	}
}

/* the SRS key file under state_dir: 64 hex digits */
#define SERVE_SRS_KEY_FILE "srs.key"
#define SERVE_SRS_KEY_HEX  64

/*
 * srs_secret left empty: the secret is the one kept in
 * <state_dir>/srs.key, made at the first start (32 random octets from
 * getrandom(), written 0600 and fsynced with its directory), so that SRS
 * addresses handed out before a restart stay valid after it.
 */
static int
srs_secret_load(struct tern_conf *conf, char **error_r)
{
	char *path;
	char key[SERVE_SRS_KEY_HEX + 1];
	int fd;
	ssize_t n;

	if (conf->srs_secret[0] != '\0')
		return 0;
	path = xasprintf("%s/%s", conf->state_dir, SERVE_SRS_KEY_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, key, SERVE_SRS_KEY_HEX);
		(void)close(fd);
		if (n != SERVE_SRS_KEY_HEX) {
			*error_r = xasprintf("%s: not a key of %d hex digits "
					     "(remove it to make a new one)",
					     path, SERVE_SRS_KEY_HEX);
			free(path);
			return -1;
		}
	} else {
		uint8_t raw[SERVE_SRS_KEY_HEX / 2];
		if (errno != ENOENT ||
		    getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
			*error_r = xasprintf("cannot read or make %s: %s", path,
					     strerror(errno));
			free(path);
			return -1;
		}
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(key + 2 * i, 3, "%02x", raw[i]);
		explicit_bzero(raw, sizeof(raw));
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || io_write_all(fd, key, SERVE_SRS_KEY_HEX) < 0 ||
		    io_fsync(fd) < 0) {
			*error_r = xasprintf("cannot write %s: %s", path,
					     strerror(errno));
			if (fd >= 0)
				(void)close(fd);
			free(path);
			return -1;
		}
		(void)close(fd);
		fd = open(conf->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)io_fsync(fd);
			(void)close(fd);
		}
		log_info("tern event=srs_key path=%s status=created", path);
	}
	key[SERVE_SRS_KEY_HEX] = '\0';
	free(conf->srs_secret);
	conf->srs_secret = xstrdup(key);
	explicit_bzero(key, sizeof(key));
	free(path);
	return 0;
}

int
serve_start(struct tern_server *srv, char **error_r)
{
	const struct tern_conf *conf = srv->conf;
	const char *error = NULL;
	char *spool_dir;
	int n;

	if (srs_secret_load(srv->conf, error_r) < 0)
		return -1;
	if (serve_tls_load(srv, error_r) < 0)
		return -1;
	srv->clients = serve_clients_new();
	if (serve_accounts_start(srv, error_r) < 0)
		return -1;
	srv->spool_wq = workq_new(1);
	srv->deliver_wq = workq_new(conf->delivery_workers);
	spool_dir = xasprintf("%s/spool", conf->state_dir);
	if (spool_open(spool_dir, srv->spool_wq, &srv->spool, &error) < 0) {
		*error_r = xasprintf("cannot open spool %s: %s", spool_dir, error);
		free(spool_dir);
		return -1;
	}
	free(spool_dir);
	srv->deliverq = deliverq_new(srv->spool, srv->deliver_wq, conf);
	if (net_dns_new(srv->base, conf->dns_servers[0] != '\0' ?
			conf->dns_servers : NULL, conf->dns_timeout * 1000,
			SERVE_DNS_TRIES, &srv->dns, &error) < 0) {
		*error_r = xasprintf("cannot start the DNS resolver: %s",
				     error);
		return -1;
	}
	srv->relay = relay_new(srv->base, srv->dns, srv->spool,
			       srv->deliver_wq, conf, deliverq_relay_done,
			       srv->deliverq);
	deliverq_set_relay(srv->deliverq, srv->relay);
	n = spool_recover(srv->spool, recovered, srv);
	if (n < 0) {
		*error_r = xasprintf("spool recovery failed");
		return -1;
	}
	log_info("tern event=recovered messages=%d", n);

	srv->spool_wq_ev = event_new(srv->base, workq_fd(srv->spool_wq),
				     EV_READ | EV_PERSIST, workq_ready,
				     srv->spool_wq);
	srv->deliver_wq_ev = event_new(srv->base, workq_fd(srv->deliver_wq),
				       EV_READ | EV_PERSIST, workq_ready,
				       srv->deliver_wq);
	srv->tick_ev = event_new(srv->base, -1, EV_PERSIST, tick, srv);
	event_add(srv->spool_wq_ev, NULL);
	event_add(srv->deliver_wq_ev, NULL);
	{
		struct timeval one = { 1, 0 };
		event_add(srv->tick_ev, &one);
	}
	deliverq_tick(srv->deliverq, (int64_t)time(NULL));

	srv->listeners = xcalloc(conf->nlisteners, sizeof(*srv->listeners));
	srv->listener_roles = xcalloc(conf->nlisteners,
				      sizeof(*srv->listener_roles));
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct conf_listener *cl = &conf->listeners[i];
		srv->listener_roles[i].srv = srv;
		srv->listener_roles[i].role = cl->role;
		srv->listener_roles[i].sessions_max = cl->sessions_max;
		if (net_listen(srv->base, cl->address, cl->port,
			       listener_accept, &srv->listener_roles[i],
			       &srv->listeners[i], error_r) < 0)
			return -1;
		srv->nlisteners++;
		log_info("tern event=listen address=%s role=%s",
			 net_listener_name(srv->listeners[i]),
			 role_names[cl->role]);
	}
	/* local submission (tern sendmail) and queue control: without
	 * them the server would fail its users quietly, so it does not
	 * start */
	if (smtpd_listen_local(srv, error_r) < 0)
		return -1;
	return serve_control_start(srv, error_r);
}

static void
stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct tern_server *srv = arg;
	(void)fd;
	(void)what;
	log_warn("tern event=stop_deadline sessions=%u", srv->nsessions);
	event_base_loopexit(srv->base, NULL);
}

void
serve_maybe_exit(struct tern_server *srv)
{
	if (!srv->stopping)
		return;
	if (srv->nsessions == 0 && spool_commits_pending(srv->spool) == 0 &&
	    deliverq_direct_pending(srv->deliverq) == 0 &&
	    relay_busy(srv->relay) == 0 && serve_control_busy(srv) == 0)
		event_base_loopexit(srv->base, NULL);
}

void
serve_stop(struct tern_server *srv)
{
	struct timeval grace = { SERVE_STOP_GRACE_SECONDS, 0 };

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info("tern event=stopping sessions=%u", srv->nsessions);
	for (size_t i = 0; i < srv->nlisteners; i++)
		net_listener_free(&srv->listeners[i]);
	net_listener_free(&srv->sendmail_listener);
	serve_control_stop(srv);
	srv->stop_ev = event_new(srv->base, -1, 0, stop_deadline, srv);
	event_add(srv->stop_ev, &grace);
	/* transactions in flight finish; nothing new starts */
	relay_stop(srv->relay);
	smtpd_shutdown_all(srv);
	serve_maybe_exit(srv);
}

void
serve_free(struct tern_server *srv)
{
	/* commits and direct deliveries in flight finish first: their
	 * sessions are still there (a direct one may go on to commit) */
	while (srv->spool != NULL && srv->deliverq != NULL &&
	       (spool_commits_pending(srv->spool) > 0 ||
		deliverq_direct_pending(srv->deliverq) > 0)) {
		struct pollfd pfd[2] = {
			{ .fd = workq_fd(srv->spool_wq), .events = POLLIN },
			{ .fd = workq_fd(srv->deliver_wq), .events = POLLIN },
		};
		(void)poll(pfd, 2, 100);
		workq_complete(srv->spool_wq);
		workq_complete(srv->deliver_wq);
	}
	/* password checks in flight answer their sessions first */
	serve_accounts_free(srv);
	/* sessions cut off by the deadline: drop them (nothing they hold
	 * was answered 250 yet) */
	while (srv->sessions != NULL)
		smtpd_session_abandon(srv->sessions);
	for (size_t i = 0; i < srv->nlisteners; i++)
		net_listener_free(&srv->listeners[i]);
	free(srv->listeners);
	srv->listeners = NULL;
	free(srv->listener_roles);
	srv->listener_roles = NULL;
	serve_clients_free(&srv->clients);
	net_tls_ctx_free(&srv->tls);
	net_listener_free(&srv->sendmail_listener);
	/* outbound connections go first: what they had not finished gets
	 * no outcome and stays queued as it was */
	relay_free(&srv->relay);
	net_dns_free(&srv->dns);
	/* finish deliveries in flight; what is not started stays queued */
	deliverq_free(&srv->deliverq);
	/* after the runner (its callbacks answer control clients), before
	 * the spool (header reads use it) */
	serve_control_free(srv);
	spool_free(&srv->spool);
	workq_free(&srv->deliver_wq);
	workq_free(&srv->spool_wq);
	if (srv->spool_wq_ev != NULL)
		event_free(srv->spool_wq_ev);
	if (srv->deliver_wq_ev != NULL)
		event_free(srv->deliver_wq_ev);
	if (srv->tick_ev != NULL)
		event_free(srv->tick_ev);
	if (srv->stop_ev != NULL)
		event_free(srv->stop_ev);
}

/* SPDX-License-Identifier: MIT */
/*
 * smtpd: one SMTP session, binding the pure engine (smtp/) to a
 * connection (net/), the configuration (recipients), the spool (durable
 * commit before 250) and the queue runner (delivery after commit, or
 * delivery before the 250 for a small all-local message: on_data_end).
 *
 * A session never frees itself inside a callback chain that may still
 * touch it: it is marked closing and freed from the connection's drained
 * or close callback, or, while a commit is in flight, from the commit's
 * callback.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "account/account.h"
#include "sasl/sasl.h"
#include "serve/serve.h"
#include "smtp/smtp.h"

struct smtpd_session {
	struct smtpd_session *next, *prev;
	struct tern_server *srv;
	struct conn *conn;
	struct smtp_engine *engine;
	uint32_t id;
	char peer[NET_ADDR_TEXT_MAX];
	char peer_ip[NET_ADDR_TEXT_MAX];
	char local[NET_ADDR_TEXT_MAX];
	bool ipv6;
	bool trusted;             /* in relay_from: may send anywhere */
	bool is_local;            /* on the sendmail socket: peer is
				   * "local uid=N" */
	char uid[16];             /* local: the peer's uid (SO_PEERCRED) */

	/* the transaction: envelope and the message being received */
	struct spool_envelope *env;
	struct spool_msg *msg;
	char *first_rcpt;         /* for Received: "for" with one RCPT */
	unsigned nrcpt_cmds;      /* RCPT commands accepted */
	struct buf log_to;        /* for the accepted line: each accepted
				   * RCPT as given, "<a>,<b>" (escaped) */
	struct buf log_orcpt;     /* ... "<b>:rfc822;c" for an ORCPT= that
				   * names another address */
	bool esmtp;

	bool closing;             /* close once the output is written */
	bool lingering;           /* FIN sent; discarding input until EOF */
	bool throttled;           /* output above SMTPD_OUTPUT_HIGH */
	bool committing;          /* a commit or direct delivery holds it */
	bool direct_tried;        /* ... a direct delivery was tried */
	bool dead;                /* the connection is gone */
	bool peer_eof;            /* the peer sent FIN: answer what is left */
	bool shutdown_pending;    /* 421 as soon as the commit is answered */
	unsigned messages;

	enum conf_role role;      /* of the listener it came in on */
	struct serve_listener *listener; /* NULL: the sendmail socket */
	struct sockaddr_storage peer_sa;
	bool counted;             /* holds a place in srv->clients */
	bool tls;                 /* TLS is up (conn_tls_info tells more) */
	bool tls_starting;        /* the handshake runs */
	struct event *later;      /* frees the session after this turn */

	/* deadlines (monotonic seconds): a whole command line must come
	 * within timeout_command of the moment we were ready for it, a
	 * whole DATA/BDAT transfer within timeout_data plus its size at
	 * data_rate_min; single bytes never re-arm them */
	uint64_t seen_cmds;
	double cmd_start;
	bool in_data;
	double data_start;
	uint64_t data_bytes;
	bool waited;              /* a verdict or commit held the session */

	/* AUTH (RFC 4954) */
	struct sasl_server *sasl; /* the exchange under way */
	enum sasl_mech sasl_mech;
	char *auth_user;          /* the login name given, for the log */
	char *account;            /* after AUTH: the account, normalised */
	bool auth_busy;           /* a password check holds the session */
	struct event *auth_delay; /* the failure reply waits for it */
	unsigned auth_delay_code;
	const char *auth_delay_enhanced, *auth_delay_text;
	unsigned auth_refused;    /* AUTH refused with PERMFAIL, counted as
				   * the engine counts toward
				   * auth_failures_max */

	/* for the log */
	const char *tls_version;  /* "TLSv1.3" once TLS is up (static) */
	const char *end_reason;   /* why the session ends: the first cause
				   * seen (session_end), static text */
};

static void session_pump(struct smtpd_session *s);

/*
 * Notes why the session ends, for its disconnect line: quit, timeout,
 * limit, shutdown, tls_failed or error. The first cause wins (a session
 * cut at a limit then lingers until the peer's FIN). When none was noted,
 * session_free says peer_closed, or aborted_in_data for a peer gone in
 * the middle of a message.
 */
static void
session_end(struct smtpd_session *s, const char *reason)
{
	if (s->end_reason == NULL)
		s->end_reason = reason;
}

static double
mono_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* replies queued for a peer that does not read: above this we stop
 * reading its commands until the queue has drained */
#define SMTPD_OUTPUT_HIGH (128 * 1024)

/* ------------------------------------------------------------------ */

static void
tx_clear(struct smtpd_session *s)
{
	spool_msg_abort(&s->msg);
	spool_envelope_free(&s->env);
	free(s->first_rcpt);
	s->first_rcpt = NULL;
	s->nrcpt_cmds = 0;
	buf_clear(&s->log_to);
	buf_clear(&s->log_orcpt);
}

/* the disconnect line's reason= */
static const char *
end_reason(const struct smtpd_session *s)
{
	if (s->end_reason != NULL)
		return s->end_reason;
	if (!s->peer_eof && !s->dead)
		return "error";
	/* inside DATA or a BDAT chunk, or between the chunks of one
	 * message (its spool file is open) */
	if (smtp_engine_phase(s->engine) == SMTP_PHASE_DATA ||
	    (s->msg != NULL && !s->committing))
		return "aborted_in_data";
	return "peer_closed";
}

static void
session_free(struct smtpd_session *s)
{
	struct tern_server *srv = s->srv;

	log_info("smtp sess=%08x event=disconnect client=%s messages=%u "
		 "reason=%s", s->id, s->peer, s->messages, end_reason(s));
	tx_clear(s);
	smtp_engine_free(&s->engine);
	conn_free(&s->conn);
	if (s->later != NULL)
		event_free(s->later);
	if (s->auth_delay != NULL)
		event_free(s->auth_delay);
	sasl_server_free(&s->sasl);
	free(s->auth_user);
	free(s->account);
	if (s->counted)
		serve_clients_leave(srv->clients,
				    (const struct sockaddr *)&s->peer_sa);
	if (s->listener != NULL)
		s->listener->sessions--;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->is_local)
		srv->nlocal_sessions--;
	free(s);
	if (srv->stopping)
		serve_maybe_exit(srv);
}

/* writes what the engine produced */
static void
session_flush(struct smtpd_session *s)
{
	struct buf *out = smtp_engine_out(s->engine);
	if (out->len > 0 && s->conn != NULL)
		(void)conn_write(s->conn, out->p, out->len);
	buf_reset(out);
}

/* true when domain is where our SRS addresses live */
static bool
server_srs_domain(const struct tern_conf *conf, const char *domain)
{
	if (conf->srs_domain != NULL && conf->srs_domain[0] != '\0')
		return ascii_strcasecmp(conf->srs_domain, domain) == 0;
	return conf->ndomains > 0 &&
	       ascii_strcasecmp(conf->domains[0], domain) == 0;
}

/*
 * Peer text for a log value (RFC-valid addresses may still hold quotes
 * and spaces): log_escape(), and a space as \x20 too, so that an
 * unquoted value stays one word and no peer can add a key=value of its
 * own to the line.
 */
static const char *
esc(char *out, size_t outsz, const char *text)
{
	char tmp[512];
	size_t o = 0;

	TN_ASSERT(outsz >= 4);
	(void)log_escape(tmp, sizeof(tmp), text, strlen(text));
	for (size_t i = 0; tmp[i] != '\0'; i++) {
		bool space = tmp[i] == ' ';
		if (o + (space ? 4 : 1) + 1 > outsz) {
			/* no room: end in "..." as log_escape does */
			while (o > 0 && o + 4 > outsz)
				o--;
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (space) {
			memcpy(out + o, "\\x20", 4);
			o += 4;
		} else {
			out[o++] = tmp[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void
decide(struct smtpd_session *s, enum smtp_verdict_kind kind, unsigned code,
       const char *enhanced, const char *text)
{
	struct smtp_verdict v = {
		.kind = kind, .code = code, .enhanced = enhanced, .text = text,
	};
	smtp_engine_decide(s->engine, &v);
}

/* a reply as a log value: "550 5.1.1 text", escaped */
static const char *
reply_text(char *out, size_t outsz, unsigned code, const char *enhanced,
	   const char *text)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%u%s%s%s%s", code,
			 enhanced != NULL ? " " : "",
			 enhanced != NULL ? enhanced : "",
			 text != NULL && text[0] != '\0' ? " " : "",
			 text != NULL ? text : "");

	if (n < 0)
		line[0] = '\0';
	return log_escape(out, outsz, line, strlen(line));
}

/*
 * Refuses the event that waits with this reply, and logs it: "smtp
 * sess=ID <what> result="<reply>"", where what is the event's own
 * key=value text ("event=rcpt rcpt=<...>").
 */
static void
refuse(struct smtpd_session *s, enum smtp_verdict_kind kind, unsigned code,
       const char *enhanced, const char *text, const char *what)
{
	char r[600];

	log_info("smtp sess=%08x %s result=\"%s\"", s->id, what,
		 reply_text(r, sizeof(r), code, enhanced, text));
	decide(s, kind, code, enhanced, text);
}

/*
 * A reply at one of the limits a client may reach (junk_max, errors_max,
 * auth_failures_max: 421 4.7.0; rcpt_max: 452 4.5.3; size_max: 552
 * 5.3.4): logged as a warning.
 */
static bool
reply_is_limit(const char *reply)
{
	return strncmp(reply, "421 4.7.0 ", 10) == 0 ||
	       strncmp(reply, "452 4.5.3 ", 10) == 0 ||
	       strncmp(reply, "552 5.3.4 ", 10) == 0;
}

/* "from=<sender>" of the transaction under way, for a refusal's line */
static const char *
tx_what(const struct smtpd_session *s, char *out, size_t outsz)
{
	char e[300];

	if (s->env == NULL)
		snprintf(out, outsz, "event=data");
	else
		snprintf(out, outsz, "event=data from=<%s>",
			 esc(e, sizeof(e), s->env->mail_from));
	return out;
}

/* ------------------------------------------------------------------ */
/* RFC 5321 §4.4 trace header */

/* a HELO argument for a header: printable ASCII that cannot break out */
static void
sanitize_helo(const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; in[i] != '\0' && o + 1 < outsz; i++) {
		unsigned char c = (unsigned char)in[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			  c == '_' || c == ':' || c == '[' || c == ']';
		out[o++] = ok ? (char)c : '?';
	}
	out[o] = '\0';
}

static int
write_received(struct smtpd_session *s, const char *helo, bool utf8,
	       time_t now)
{
	char helo_clean[256], date[64];
	struct tm tm;
	struct buf b;
	const char *proto;
	int r;

	sanitize_helo(helo, helo_clean, sizeof(helo_clean));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 3848 and RFC 6531 §3.7.3 protocol types: S for TLS, A for
	 * AUTH (only ESMTP has either) */
	{
		bool auth = smtp_engine_authenticated(s->engine);
		if (!s->esmtp)
			proto = "SMTP";
		else if (utf8)
			proto = s->tls ? (auth ? "UTF8SMTPSA" : "UTF8SMTPS") :
					 (auth ? "UTF8SMTPA" : "UTF8SMTP");
		else
			proto = s->tls ? (auth ? "ESMTPSA" : "ESMTPS") :
					 (auth ? "ESMTPA" : "ESMTP");
	}
	buf_init(&b, 0);
	/* a local program has no host to name: its uid says who sent it */
	if (s->is_local)
		buf_printf(&b, "Received: from local (uid %s)", s->uid);
	else
		buf_printf(&b, "Received: from %s ([%s%s])", helo_clean,
			   s->ipv6 ? "IPv6:" : "", s->peer_ip);
	buf_printf(&b, "\r\n\tby %s (tern) with %s id %s",
		   s->srv->hostname, proto, spool_msg_id(s->msg));
	{
		const char *version, *cipher;
		bool verified;
		if (s->tls && conn_tls_info(s->conn, &version, &cipher,
					    &verified))
			buf_printf(&b, "\r\n\t(using %s with cipher %s)",
				   version, cipher);
	}
	if (s->nrcpt_cmds == 1 && s->first_rcpt != NULL)
		buf_printf(&b, "\r\n\tfor <%s>", s->first_rcpt);
	buf_printf(&b, "; %s\r\n", date);
	r = spool_msg_write(s->msg, b.p, b.len);
	buf_clear(&b);
	return r;
}

/* ------------------------------------------------------------------ */
/* events */

/*
 * The address without its extension: alice+tag@example.org ->
 * alice@example.org, when recipient_delimiter holds '+' (the local part
 * is cut at the first delimiter that is not its first character). NULL
 * when there is none to cut. Heap.
 */
static char *
strip_extension(const struct tern_conf *conf, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);

	if (conf->recipient_delimiter[0] == '\0' || n == 0 || addr[0] == '"')
		return NULL;
	for (size_t i = 1; i < n; i++)
		if (strchr(conf->recipient_delimiter, addr[i]) != NULL)
			return xasprintf("%.*s%s", (int)i, addr,
					 at != NULL ? at : "");
	return NULL;
}

/* an alias of a local domain that reaches the account */
static bool
alias_reaches(const struct tern_conf *conf, const char *addr,
	      const char *account)
{
	struct conf_targets t;
	bool yes = false;

	if (conf_resolve_targets(conf, addr, &t) != 1)
		return false;
	for (size_t i = 0; i < t.nlocals && !yes; i++)
		yes = ascii_strcasecmp(t.locals[i], account) == 0;
	conf_targets_clear(&t);
	return yes;
}

/*
 * May the authenticated account send as `sender`? Its own address with
 * any extension, the null sender (bounces and notifications), aliases
 * that reach it, and what send_as grants.
 */
static bool
sender_owned(const struct tern_conf *conf, const char *account,
	     const char *sender)
{
	char *base;
	bool yes;

	if (sender[0] == '\0')
		return true;
	base = strip_extension(conf, sender);
	yes = ascii_strcasecmp(sender, account) == 0 ||
	      (base != NULL && ascii_strcasecmp(base, account) == 0) ||
	      alias_reaches(conf, sender, account) ||
	      (base != NULL && alias_reaches(conf, base, account)) ||
	      conf_send_as_allowed(conf, account, sender) ||
	      (base != NULL && conf_send_as_allowed(conf, account, base));
	free(base);
	return yes;
}

static void
on_mail(struct smtpd_session *s, const struct smtp_event *ev)
{
	struct spool_envelope *env;

	tx_clear(s);
	if (s->account != NULL &&
	    !sender_owned(s->srv->conf, s->account, ev->address)) {
		char e[300], what[400];
		snprintf(what, sizeof(what), "event=mail from=<%s> account=%s",
			 esc(e, sizeof(e), ev->address), s->account);
		refuse(s, SMTP_VERDICT_PERMFAIL, 553, "5.7.1",
		       "Sender address not owned by the authenticated "
		       "account", what);
		return;
	}
	env = xcalloc(1, sizeof(*env));
	env->mail_from = xstrdup(ev->address);
	env->helo = xstrdup(ev->helo_name != NULL ? ev->helo_name : "");
	env->client_addr = xstrdup(s->peer_ip);
	env->envid = ev->mail.envid != NULL ? xstrdup(ev->mail.envid) : NULL;
	env->ret = ev->mail.ret;
	env->body = ev->mail.body;
	env->smtputf8 = ev->mail.smtputf8;
	s->env = env;
	decide(s, SMTP_VERDICT_OK, 0, NULL, NULL);
	char e[300];
	log_debug("smtp sess=%08x event=mail from=<%s> size=%llu", s->id,
		 esc(e, sizeof(e), ev->address), (unsigned long long)ev->mail.size);
}

/* one recipient for one delivery: a local user once per message, an
 * address elsewhere once per message */
static bool
env_has(const struct spool_envelope *env, enum spool_agent agent,
	const char *dest)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].agent == agent &&
		    (agent == SPOOL_AGENT_LOCAL ?
		     strcmp(env->rcpts[i].dest, dest) == 0 :
		     ascii_strcasecmp(env->rcpts[i].dest, dest) == 0))
			return true;
	}
	return false;
}

static void
env_add_rcpt(struct spool_envelope *env, const struct smtp_event *ev,
	     enum spool_agent agent, const char *dest, unsigned flags)
{
	struct spool_rcpt *rc;

	if (env_has(env, agent, dest))
		return;
	env->rcpts = xreallocarray(env->rcpts, env->nrcpts + 1,
				   sizeof(*env->rcpts));
	rc = &env->rcpts[env->nrcpts++];
	memset(rc, 0, sizeof(*rc));
	rc->address = xstrdup(ev->address);
	rc->orcpt = ev->rcpt.orcpt != NULL ? xstrdup(ev->rcpt.orcpt) : NULL;
	rc->notify = ev->rcpt.notify;
	rc->agent = agent;
	rc->dest = xstrdup(dest);
	rc->state = SPOOL_RCPT_PENDING;
	rc->flags = flags;
}

/*
 * The address with the domain lower-cased and one trailing dot dropped
 * (RFC 5321 §2.3.5: "example.org." names the same domain); heap.
 */
static char *
normal_address(const char *addr)
{
	char *a = xstrdup(addr);
	char *at = strrchr(a, '@');
	size_t n = strlen(a);

	if (at == NULL)
		return a;
	if (n > 0 && a[n - 1] == '.' && a + n - 1 > at + 1)
		a[n - 1] = '\0';
	for (char *p = at + 1; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return a;
}

/*
 * A local part that asks us to route further: the percent hack
 * (user%other@here), a bang path (other!user@here) or a quoted local
 * part holding an address ("user@other"@here). We never route by local
 * part (RFC 5321 §3.6.2 leaves it to the receiver; relaying through it
 * is how open relays are abused), so these are refused as relaying.
 */
static bool
routes_by_local_part(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);

	for (size_t i = 0; i < n; i++)
		if (addr[i] == '%' || addr[i] == '!' || addr[i] == '@')
			return true;
	return false;
}

/* reason: a word for the log, where one reply has several causes */
static void
rcpt_refuse(struct smtpd_session *s, const struct smtp_event *ev,
	    enum smtp_verdict_kind kind, unsigned code, const char *enhanced,
	    const char *text, const char *reason)
{
	char e[300], what[400];

	snprintf(what, sizeof(what), "event=rcpt rcpt=<%s> reason=%s",
		 esc(e, sizeof(e), ev->address), reason);
	refuse(s, kind, code, enhanced, text, what);
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* RFC 3461 §4.2 xtext: "+" and two upper-case hex digits for one octet */
static int
xtext_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * true when an ORCPT= ("rfc822;" and the address in xtext) names another
 * address than the RCPT it came with
 */
static bool
orcpt_differs(const char *orcpt, const char *address)
{
	static const char type[] = "rfc822;";
	const char *p = orcpt, *a = address;

	if (ascii_strncasecmp(p, type, sizeof(type) - 1) != 0)
		return true;
	p += sizeof(type) - 1;
	while (*p != '\0' && *a != '\0') {
		int c = (unsigned char)*p++;
		if (c == '+') {
			int hi = xtext_hex(p[0]), lo = hi < 0 ? -1 :
				 xtext_hex(p[1]);
			if (lo < 0)
				return true;
			c = hi * 16 + lo;
			p += 2;
		}
		if (lower((char)c) != lower(*a++))
			return true;
	}
	return *p != '\0' || *a != '\0';
}

/*
 * Adds an item to a comma-separated list for a log line (b->max bounds
 * it); a list too long ends in ",..." and takes no more.
 */
static void
log_list_add(struct buf *b, const char *item)
{
	static const char more[] = ",...";
	size_t n = strlen(item) + (b->len > 0 ? 1 : 0);

	if (b->len >= sizeof(more) - 1 &&
	    memcmp(b->p + b->len - (sizeof(more) - 1), more,
		   sizeof(more) - 1) == 0)
		return;
	/* keep room for the mark */
	if (b->len + n + sizeof(more) - 1 > b->max) {
		(void)buf_append(b, more, sizeof(more) - 1);
		return;
	}
	if (b->len > 0)
		(void)buf_append(b, ",", 1);
	(void)buf_append(b, item, strlen(item));
}

static void
rcpt_accept(struct smtpd_session *s, const struct smtp_event *ev,
	    const char *how)
{
	char e[300], o[300], item[620];

	if (s->nrcpt_cmds++ == 0)
		s->first_rcpt = xstrdup(ev->address);
	snprintf(item, sizeof(item), "<%s>", esc(e, sizeof(e), ev->address));
	log_list_add(&s->log_to, item);
	if (ev->rcpt.orcpt != NULL &&
	    orcpt_differs(ev->rcpt.orcpt, ev->address)) {
		snprintf(item, sizeof(item), "<%s>:%s", e,
			 esc(o, sizeof(o), ev->rcpt.orcpt));
		log_list_add(&s->log_orcpt, item);
	}
	decide(s, SMTP_VERDICT_OK, 0, NULL, NULL);
	log_debug("smtp sess=%08x event=rcpt rcpt=<%s> result=accepted "
		  "route=%s", s->id, esc(e, sizeof(e), ev->address), how);
}

/*
 * The local agent's destination for an account: its address (the
 * default Maildir, <state_dir>/mail/<domain>/<local part>/Maildir) or the
 * absolute Maildir that `tern user add --maildir` gave it. The spool
 * keeps it, so the delivery threads never look at the accounts table.
 */
static const char *
account_dest(const struct account *a)
{
	return a->maildir != NULL ? a->maildir : a->address;
}

/*
 * Adds the local deliveries of addr, a local-domain address: users and
 * aliases of the configuration (which apply to every local domain), then
 * accounts (one domain each); each tried with the address as given, then
 * without its extension (alice+tag@). false when addr names nobody.
 */
static bool
rcpt_local(struct smtpd_session *s, const struct smtp_event *ev,
	   const char *addr)
{
	const struct tern_conf *conf = s->srv->conf;
	char *base = strip_extension(conf, addr);
	const char *tries[2] = { addr, base };
	bool found = false;

	for (int k = 0; k < 2 && !found; k++) {
		struct conf_targets t;
		const struct account *a;

		if (tries[k] == NULL)
			continue;
		if (conf_resolve_targets(conf, tries[k], &t) == 1) {
			for (size_t i = 0; i < t.nusers; i++) {
				env_add_rcpt(s->env, ev, SPOOL_AGENT_LOCAL,
					     t.users[i]->name, 0);
				found = true;
			}
			/* aliases forward to addresses elsewhere, with SRS */
			for (size_t i = 0; i < t.nremotes; i++) {
				env_add_rcpt(s->env, ev, SPOOL_AGENT_RELAY,
					     t.remotes[i],
					     SPOOL_RCPT_F_FORWARDED);
				found = true;
			}
			/* and to accounts here */
			for (size_t i = 0; i < t.nlocals; i++) {
				a = serve_account_find(s->srv, t.locals[i]);
				if (a == NULL) {
					log_warn("smtp sess=%08x event=alias "
						 "target=%s error=\"no such "
						 "account\"", s->id,
						 t.locals[i]);
					continue;
				}
				env_add_rcpt(s->env, ev, SPOOL_AGENT_LOCAL,
					     account_dest(a), 0);
				found = true;
			}
			conf_targets_clear(&t);
			if (found)
				break;
		}
		a = serve_account_find(s->srv, tries[k]);
		if (a != NULL) {
			env_add_rcpt(s->env, ev, SPOOL_AGENT_LOCAL,
				     account_dest(a), 0);
			found = true;
		}
	}
	free(base);
	return found;
}

/*
 * Who gets a recipient: local users and alias members of the local
 * domains (from anyone), a bounce to one of our SRS addresses (from
 * anyone: it goes back to the sender we rewrote), and any other domain
 * only for trusted clients (relay_from). Everything else is refused, and
 * nothing refused is ever queued.
 */
static void
on_rcpt(struct smtpd_session *s, const struct smtp_event *ev)
{
	const struct tern_conf *conf = s->srv->conf;
	char *addr = normal_address(ev->address);
	const char *at = strrchr(addr, '@');
	char *orig = NULL;
	const char *err = NULL;

	if (s->env == NULL) {
		rcpt_refuse(s, ev, SMTP_VERDICT_TEMPFAIL, 451, "4.3.0",
			    "No transaction", "no_transaction");
		goto out;
	}
	if (rcpt_local(s, ev, addr)) {
		rcpt_accept(s, ev, "local");
		goto out;
	}
	/* a bounce to an address we rewrote with SRS goes back */
	int srs = deliver_srs_reverse(conf->srs_secret, addr,
				      (int64_t)time(NULL), conf->srs_max_age,
				      &orig, &err);
	if (srs == 1 && at != NULL && server_srs_domain(conf, at + 1)) {
		char *o = normal_address(orig);
		const char *oat = strrchr(o, '@');
		if (oat != NULL && conf_is_local_domain(conf, oat + 1) &&
		    rcpt_local(s, ev, o)) {
			/* added there */
		} else {
			env_add_rcpt(s->env, ev, SPOOL_AGENT_RELAY, o, 0);
		}
		free(o);
		rcpt_accept(s, ev, "srs");
		goto out;
	}
	if (srs < 0 && at != NULL && server_srs_domain(conf, at + 1)) {
		char e[300];
		log_info("smtp sess=%08x event=srs rcpt=<%s> error=\"%s\"",
			 s->id, esc(e, sizeof(e), ev->address),
			 err != NULL ? err : "invalid");
		rcpt_refuse(s, ev, SMTP_VERDICT_PERMFAIL, 550, "5.1.1",
			    "Invalid SRS address", "srs_invalid");
		goto out;
	}
	if (at == NULL || conf_is_local_domain(conf, at + 1)) {
		if (routes_by_local_part(addr))
			rcpt_refuse(s, ev, SMTP_VERDICT_PERMFAIL, 550,
				    "5.7.1", "Relay access denied",
				    "local_part_route");
		else
			rcpt_refuse(s, ev, SMTP_VERDICT_PERMFAIL, 550,
				    "5.1.1", "Recipient address rejected: no "
				    "such user here", "no_such_user");
		goto out;
	}
	/* another domain: only trusted and authenticated clients may relay
	 * (RFC 5321 §3.6.2, RFC 3463 5.7.1) */
	if (!s->trusted && s->account == NULL) {
		rcpt_refuse(s, ev, SMTP_VERDICT_PERMFAIL, 550, "5.7.1",
			    "Relay access denied", "relay_denied");
		goto out;
	}
	env_add_rcpt(s->env, ev, SPOOL_AGENT_RELAY, addr, 0);
	rcpt_accept(s, ev, "relay");
out:
	free(orig);
	free(addr);
}

static void
on_data_start(struct smtpd_session *s, const struct smtp_event *ev)
{
	const char *error = NULL;
	time_t now = time(NULL);
	char what[400];

	if (s->env == NULL || spool_msg_new(s->srv->spool, &s->msg, &error) < 0) {
		log_error("smtp sess=%08x event=spool_new error=\"%s\"", s->id,
			  error != NULL ? error : "no transaction");
		refuse(s, SMTP_VERDICT_TEMPFAIL, 451, "4.3.0",
		       "Temporary spool failure, try again later",
		       tx_what(s, what, sizeof(what)));
		return;
	}
	{
		struct timespec ts;
		(void)clock_gettime(CLOCK_REALTIME, &ts);
		now = ts.tv_sec;
		s->env->received_at = now;
		s->env->received_us = (int64_t)ts.tv_sec * 1000000 +
				      ts.tv_nsec / 1000;
	}
	if (write_received(s, ev->helo_name != NULL ? ev->helo_name : "",
			   s->env->smtputf8, now) < 0) {
		spool_msg_abort(&s->msg);
		log_error("smtp sess=%08x event=spool_write error=\"cannot "
			  "write the Received: header\"", s->id);
		refuse(s, SMTP_VERDICT_TEMPFAIL, 451, "4.3.0",
		       "Temporary spool failure, try again later",
		       tx_what(s, what, sizeof(what)));
		return;
	}
	decide(s, SMTP_VERDICT_OK, 0, NULL, NULL);
}

/*
 * One line per accepted message: the client and its HELO name, the
 * sender, the size, each accepted RCPT as given (to=<a>,<b>; nrcpt
 * counts them) with the original recipient of the ones whose ORCPT=
 * names another address (orcpt=<b>:rfc822;c@example.org), the TLS
 * version (tls=none in the clear) and the authenticated account if any.
 */
static void
log_accepted(struct smtpd_session *s, const struct spool_envelope *env)
{
	char e[320], from[300], helo[300], account[340] = "";

	if (s->account != NULL)
		snprintf(account, sizeof(account), " account=%s",
			 esc(e, sizeof(e), s->account));
	log_info("queue id=%s event=accepted sess=%08x client=%s helo=%s "
		 "from=<%s> size=%llu nrcpt=%u to=%s%s%s tls=%s%s",
		 env->id, s->id, s->peer,
		 esc(helo, sizeof(helo), env->helo != NULL ? env->helo : ""),
		 esc(from, sizeof(from), env->mail_from),
		 (unsigned long long)env->size, s->nrcpt_cmds,
		 buf_cstr(&s->log_to), s->log_orcpt.len > 0 ? " orcpt=" : "",
		 buf_cstr(&s->log_orcpt),
		 s->tls_version != NULL ? s->tls_version : "none", account);
}

/*
 * The verdict on the message of queue id `id`: 250 once it is durable
 * (delivered, or committed to the spool), else 451. Frees a session
 * that died meanwhile.
 */
static void
answer_message(struct smtpd_session *s, const char *id, bool durable)
{
	char text[64];

	s->committing = false;
	s->direct_tried = false;
	if (s->dead) {
		session_free(s);
		return;
	}
	if (durable) {
		snprintf(text, sizeof(text), "Ok: queued as %s", id);
		decide(s, SMTP_VERDICT_OK, 0, NULL, text);
	} else {
		char what[64];
		snprintf(what, sizeof(what), "event=data id=%s", id);
		refuse(s, SMTP_VERDICT_TEMPFAIL, 451, "4.3.0",
		       "Temporary spool failure, try again later", what);
	}
	if (s->shutdown_pending) {
		session_end(s, "shutdown");
		smtp_engine_shutdown(s->engine);
	}
	session_pump(s);
}

static void
commit_done(void *arg, int result)
{
	struct smtpd_session *s = arg;
	struct spool_envelope *env = s->env;
	char id[SPOOL_ID_LEN + 1];

	s->env = NULL;
	memcpy(id, env->id, sizeof(id));
	if (result == 0) {
		s->messages++;
		log_accepted(s, env);
		/* after a direct attempt, the runner must look for the
		 * copies it may have left */
		if (s->direct_tried)
			deliverq_add(s->srv->deliverq, env, (int64_t)time(NULL));
		else
			deliverq_add_new(s->srv->deliverq, env,
					 (int64_t)time(NULL));
		env = NULL;
	} else {
		log_error("queue id=%s event=commit_failed sess=%08x",
			  env->id, s->id);
	}
	spool_envelope_free(&env);
	answer_message(s, id, result == 0);
}

/*
 * After a direct delivery: done when every recipient has its copy (the
 * spool file is never written); otherwise the message is committed with
 * the recipients that have one marked delivered, and queued.
 */
static void
direct_done(void *arg, bool delivered)
{
	struct smtpd_session *s = arg;
	struct spool_envelope *env = s->env;
	char id[SPOOL_ID_LEN + 1];

	if (!delivered) {
		spool_msg_commit(&s->msg, env, commit_done, s);
		return;
	}
	s->env = NULL;
	memcpy(id, env->id, sizeof(id));
	s->messages++;
	log_accepted(s, env);
	spool_envelope_free(&env);
	spool_msg_abort(&s->msg);
	answer_message(s, id, true);
}

/* every recipient has a Maildir here (relay recipients will not) */
static bool
all_local(const struct spool_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].agent != SPOOL_AGENT_LOCAL)
			return false;
	}
	return env->nrcpts > 0;
}

static void
on_data_end(struct smtpd_session *s, const struct smtp_event *ev)
{
	const void *body;
	size_t len;

	if (s->msg == NULL || s->env == NULL) {
		char what[400];
		refuse(s, SMTP_VERDICT_TEMPFAIL, 451, "4.3.0",
		       "Temporary spool failure, try again later",
		       tx_what(s, what, sizeof(what)));
		return;
	}
	(void)ev;
	snprintf(s->env->id, sizeof(s->env->id), "%s", spool_msg_id(s->msg));
	s->env->size = spool_msg_size(s->msg);
	s->committing = true;
	conn_read_enable(s->conn, false);
	/*
	 * A message held in memory for local recipients only is delivered
	 * before the 250: its durable Maildir copies take the place of the
	 * spool commit, which saves a file, its writeback and three renames
	 * per message. The verdict comes in direct_done or commit_done, once
	 * the message is durable.
	 */
	if (all_local(s->env) && spool_msg_body(s->msg, &body, &len)) {
		s->direct_tried = true;
		deliverq_direct(s->srv->deliverq, s->env, body, len,
				direct_done, s);
		return;
	}
	spool_msg_commit(&s->msg, s->env, commit_done, s);
}

/* VRFY/EXPN name a user or list: a bare name means one of our domains */
static int
resolve_name(struct smtpd_session *s, const char *arg,
	     const struct conf_user ***users_r, size_t *n_r)
{
	char *addr;
	int r;

	if (strchr(arg, '@') != NULL)
		return conf_resolve(s->srv->conf, arg, users_r, n_r);
	addr = xasprintf("%s@%s", arg, s->srv->conf->domains[0]);
	r = conf_resolve(s->srv->conf, addr, users_r, n_r);
	free(addr);
	return r;
}

static void
on_vrfy(struct smtpd_session *s, const struct smtp_event *ev)
{
	const struct conf_user **users = NULL;
	size_t n = 0;
	char line[512], e[300], what[400];

	snprintf(what, sizeof(what), "event=vrfy arg=%s",
		 esc(e, sizeof(e), ev->address));
	if (resolve_name(s, ev->address, &users, &n) == 1 && n == 1) {
		snprintf(line, sizeof(line), "<%s@%s>", users[0]->name,
			 s->srv->conf->domains[0]);
		decide(s, SMTP_VERDICT_OK, 250, "2.1.5", line);
	} else if (n > 1) {
		refuse(s, SMTP_VERDICT_PERMFAIL, 553, "5.1.4",
		       "Ambiguous: that is a list, use EXPN", what);
	} else {
		refuse(s, SMTP_VERDICT_PERMFAIL, 550, "5.1.1",
		       "No such user here", what);
	}
	free(users);
}

static void
on_expn(struct smtpd_session *s, const struct smtp_event *ev)
{
	const struct conf_user **users = NULL;
	size_t n = 0;
	const char *domain = s->srv->conf->domains[0];

	if (resolve_name(s, ev->address, &users, &n) != 1 || n == 0) {
		char e[300], what[400];
		snprintf(what, sizeof(what), "event=expn arg=%s",
			 esc(e, sizeof(e), ev->address));
		refuse(s, SMTP_VERDICT_PERMFAIL, 550, "5.1.1",
		       "No such list here", what);
		free(users);
		return;
	}
	char **lines = xcalloc(n, sizeof(*lines));
	for (size_t i = 0; i < n; i++)
		lines[i] = xasprintf("<%s@%s>", users[i]->name, domain);
	struct smtp_verdict v = {
		.kind = SMTP_VERDICT_OK, .code = 250, .enhanced = "2.1.5",
		.lines = (const char *const *)lines, .nlines = n,
	};
	smtp_engine_decide(s->engine, &v);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(users);
}

/* ------------------------------------------------------------------ */
/* TLS */

static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_free(arg);
}

/* frees the session after this loop turn (inside a callback of its
 * connection it may not be freed) */
static void
session_free_later(struct smtpd_session *s)
{
	static const struct timeval now = { 0, 0 };

	s->dead = true;
	if (s->later == NULL)
		s->later = evtimer_new(s->srv->base, session_free_cb, s);
	event_add(s->later, &now);
}

static void
tls_done(void *arg, bool ok, const char *error)
{
	struct smtpd_session *s = arg;
	const char *version = "?", *cipher = "?";
	bool verified;

	s->tls_starting = false;
	if (!ok) {
		char e[300];
		session_end(s, "tls_failed");
		log_info("smtp sess=%08x event=tls_failed client=%s "
			 "error=\"%s\"", s->id, s->peer,
			 log_escape(e, sizeof(e), error, strlen(error)));
		session_free_later(s);
		return;
	}
	s->tls = true;
	(void)conn_tls_info(s->conn, &version, &cipher, &verified);
	s->tls_version = version;
	log_info("smtp sess=%08x event=tls client=%s version=%s cipher=%s",
		 s->id, s->peer, version, cipher);
	if (s->role == CONF_ROLE_SUBMISSIONS && s->seen_cmds == 0 &&
	    !s->waited) {
		/* RFC 8314 §3.3: the greeting comes over TLS */
		smtp_engine_greet(s->engine);
		session_flush(s);
	} else {
		smtp_engine_tls_started(s->engine);
	}
	s->waited = true;   /* the command deadline starts now */
	session_pump(s);
}

/* starts the handshake; false when the session was dropped */
static bool
tls_begin(struct smtpd_session *s)
{
	char *error = NULL;

	conn_set_timeout(s->conn, s->srv->conf->timeout_command);
	if (conn_start_tls(s->conn, s->srv->tls, true, NULL, tls_done, s,
			   &error) < 0) {
		log_info("smtp sess=%08x event=tls_failed client=%s "
			 "error=\"%s\"", s->id, s->peer, error);
		free(error);
		session_end(s, "tls_failed");
		s->closing = true;
		return false;
	}
	s->tls_starting = true;
	return true;
}

/*
 * RFC 3207: 220, then the handshake. Whatever the client pipelined
 * after STARTTLS is in the connection's buffer now and conn_start_tls
 * drops it (§4.2, CVE-2011-0411); the engine has not read it either.
 */
static void
on_starttls(struct smtpd_session *s)
{
	if (s->srv->tls == NULL) {
		refuse(s, SMTP_VERDICT_TEMPFAIL, 454, "4.7.0",
		       "TLS not available", "event=starttls");
		return;
	}
	decide(s, SMTP_VERDICT_OK, 0, NULL, NULL);
	session_flush(s);
	(void)tls_begin(s);
}

/* ------------------------------------------------------------------ */
/* AUTH (RFC 4954): the engine runs the 334 exchange, sasl/ the
 * mechanism, the accounts (serve_auth.c) say who is who */

static int
sasl_lookup(void *arg, const char *authcid, struct sasl_secrets *sec_r)
{
	struct smtpd_session *s = arg;
	const struct account *a = serve_account_find(s->srv, authcid);
	const char *secret = s->srv->conf->srs_secret;
	unsigned len = 0;
	uint8_t mac[EVP_MAX_MD_SIZE];

	if (a != NULL) {
		*sec_r = a->secrets;
		return 1;
	}
	/* SCRAM answers an unknown name with a salt as stable as a real
	 * one, keyed by a server secret, so the salt gives nothing away */
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret),
		 (const unsigned char *)authcid, strlen(authcid), mac,
		 &len) != NULL && len >= 16) {
		memcpy(sec_r->scram_salt, mac, 16);
		sec_r->scram_salt_len = 16;
		sec_r->scram_iter = SASL_SCRAM_ITER_DEFAULT;
	}
	return 0;
}

static void
auth_delay_fire(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd;
	(void)what;
	decide(s, SMTP_VERDICT_PERMFAIL, s->auth_delay_code,
	       s->auth_delay_enhanced, s->auth_delay_text);
	session_pump(s);
}

/*
 * Counts an AUTH refused with PERMFAIL, as the engine does: the one that
 * reaches auth_failures_max is answered 421 4.7.0 and a close rather
 * than with the verdict's reply, and logged from the engine's refusal
 * event. True for that one.
 */
static bool
auth_refusal_closes(struct smtpd_session *s)
{
	unsigned max = s->srv->conf->auth_failures_max;

	if (max == 0)
		max = SMTP_AUTH_FAILURES_MAX_DEFAULT;
	return ++s->auth_refused >= max;
}

/*
 * A failed attempt: logged with the client address in a line fail2ban
 * can match (event=auth_failed client=ADDR), never with the password,
 * and with the reply (none when it is the 421 of auth_failures_max:
 * the refused line after it says so); the reply waits 2^(n-2) seconds
 * for the n-th failure from the address in 15 minutes, up to
 * auth_delay_max.
 */
static void
auth_failure(struct smtpd_session *s, const char *reason, unsigned code,
	     const char *enhanced, const char *text)
{
	const struct tern_conf *conf = s->srv->conf;
	/* a local session's peer_sa is empty: always its first failure */
	unsigned n = serve_clients_auth_failed(s->srv->clients,
		(const struct sockaddr *)&s->peer_sa, (int64_t)time(NULL));
	unsigned delay = 0;
	char e[300], r[600], result[620] = "";

	if (!auth_refusal_closes(s))
		snprintf(result, sizeof(result), " result=\"%s\"",
			 reply_text(r, sizeof(r), code, enhanced, text));
	log_warn("smtp sess=%08x event=auth_failed client=%s mech=%s "
		 "user=\"%s\" reason=\"%s\" failures=%u%s", s->id,
		 s->peer_ip, sasl_mech_name(s->sasl_mech),
		 s->auth_user != NULL ?
		 log_escape(e, sizeof(e), s->auth_user,
			    strlen(s->auth_user)) : "",
		 reason != NULL ? reason : "failed", n, result);
	sasl_server_free(&s->sasl);
	free(s->auth_user);
	s->auth_user = NULL;
	if (n >= 2 && conf->auth_delay_max > 0) {
		delay = n - 2 >= 16 ? conf->auth_delay_max : 1u << (n - 2);
		if (delay > conf->auth_delay_max)
			delay = conf->auth_delay_max;
	}
	if (delay == 0) {
		decide(s, SMTP_VERDICT_PERMFAIL, code, enhanced, text);
		return;
	}
	struct timeval tv = { (time_t)delay, 0 };
	s->auth_delay_code = code;
	s->auth_delay_enhanced = enhanced;
	s->auth_delay_text = text;
	if (s->auth_delay == NULL)
		s->auth_delay = evtimer_new(s->srv->base, auth_delay_fire, s);
	event_add(s->auth_delay, &tv);
}

static void
auth_success(struct smtpd_session *s, const char *authcid)
{
	free(s->account);
	s->account = account_address_normalize(authcid);
	log_info("smtp sess=%08x event=auth client=%s mech=%s account=%s",
		 s->id, s->peer_ip, sasl_mech_name(s->sasl_mech), s->account);
	sasl_server_free(&s->sasl);
	free(s->auth_user);
	s->auth_user = NULL;
	decide(s, SMTP_VERDICT_OK, 0, NULL, NULL);
}

/* the outcome of sasl_server_step() or _checked() */
static void
auth_status(struct smtpd_session *s, enum sasl_status st,
	    const struct buf *challenge, const char *error);

static void
auth_checked(void *arg, bool ok)
{
	struct smtpd_session *s = arg;

	s->auth_busy = false;
	if (s->dead) {
		session_free(s);
		return;
	}
	auth_status(s, sasl_server_checked(s->sasl, ok), NULL,
		    ok ? NULL : "wrong password or no such account");
	session_pump(s);
}

static void
auth_status(struct smtpd_session *s, enum sasl_status st,
	    const struct buf *challenge, const char *error)
{
	struct smtp_verdict v = { .kind = SMTP_VERDICT_OK };
	const char *authzid, *authcid, *password;

	switch (st) {
	case SASL_CONTINUE:
		v.auth_continue = true;
		v.challenge = challenge->p;
		v.challenge_len = challenge->len;
		smtp_engine_decide(s->engine, &v);
		return;
	case SASL_CHECK_PASSWORD:
		sasl_server_credentials(s->sasl, &authzid, &authcid,
					&password);
		free(s->auth_user);
		s->auth_user = xstrdup(authcid);
		/* nobody may act as somebody else (RFC 4616 §2 authzid) */
		if (authzid[0] != '\0' &&
		    ascii_strcasecmp(authzid, authcid) != 0) {
			auth_failure(s, "authorization identity refused", 535,
				     "5.7.8", "Authentication credentials "
				     "invalid");
			return;
		}
		s->auth_busy = true;
		serve_auth_check(s->srv, authcid, password, auth_checked, s);
		return;
	case SASL_OK:
		auth_success(s, sasl_server_authcid(s->sasl));
		return;
	case SASL_FAIL:
		auth_failure(s, error, 535, "5.7.8",
			     "Authentication credentials invalid");
		return;
	case SASL_BAD:
		auth_failure(s, error, 501, "5.5.2",
			     "Invalid authentication exchange");
		return;
	}
}

static void
on_auth(struct smtpd_session *s, const struct smtp_event *ev)
{
	const char *error = NULL;
	enum sasl_status st;
	struct buf ch;
	char e[300], what[400];

	if (ev->auth_step == 0) {
		uint8_t rnd[SASL_RANDOM_LEN];
		enum sasl_mech m;

		sasl_server_free(&s->sasl);
		snprintf(what, sizeof(what), "event=auth mech=%s",
			 esc(e, sizeof(e), ev->auth_mech != NULL ?
			     ev->auth_mech : ""));
		if (!sasl_mech_parse(ev->auth_mech, &m)) {
			if (auth_refusal_closes(s))
				decide(s, SMTP_VERDICT_PERMFAIL, 504, "5.5.4",
				       "Unrecognized authentication type");
			else
				refuse(s, SMTP_VERDICT_PERMFAIL, 504, "5.5.4",
				       "Unrecognized authentication type",
				       what);
			return;
		}
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			refuse(s, SMTP_VERDICT_TEMPFAIL, 454, "4.7.0",
			       "Temporary authentication failure", what);
			return;
		}
		s->sasl_mech = m;
		s->sasl = sasl_server_new(m, s->srv->hostname, rnd,
					  sasl_lookup, s);
	}
	if (s->sasl == NULL) {
		snprintf(what, sizeof(what), "event=auth mech=%s",
			 esc(e, sizeof(e), ev->auth_mech != NULL ?
			     ev->auth_mech : ""));
		refuse(s, SMTP_VERDICT_TEMPFAIL, 454, "4.7.0",
		       "Temporary authentication failure", what);
		return;
	}
	buf_init(&ch, 0);
	st = sasl_server_step(s->sasl, ev->data, ev->data_len,
			      ev->auth_step > 0 || ev->auth_has_data, &ch,
			      &error);
	auth_status(s, st, &ch, error);
	buf_clear(&ch);
}

/*
 * A refusal the engine made by itself (a command out of order or with bad
 * syntax, a limit) or a message it refused in DATA: the reply it sent.
 * A 421 ends the session: at a limit (4.7.0), or on an error.
 */
static void
log_refused(struct smtpd_session *s, const char *what, const char *reply)
{
	char r[600];

	if (strncmp(reply, "421 ", 4) == 0)
		session_end(s, strncmp(reply, "421 4.7.0 ", 10) == 0 ?
			    "limit" : "error");
	(void)log_escape(r, sizeof(r), reply, strlen(reply));
	if (reply_is_limit(reply))
		log_warn("smtp sess=%08x %s result=\"%s\"", s->id, what, r);
	else
		log_info("smtp sess=%08x %s result=\"%s\"", s->id, what, r);
}

static void
handle_event(struct smtpd_session *s, const struct smtp_event *ev)
{
	char e[256], what[400];

	switch (ev->kind) {
	case SMTP_EV_HELO:
		s->esmtp = ev->esmtp;
		log_debug("smtp sess=%08x event=helo name=\"%s\" esmtp=%s", s->id,
			 log_escape(e, sizeof(e), ev->helo_name,
				    strlen(ev->helo_name)),
			 ev->esmtp ? "yes" : "no");
		break;
	case SMTP_EV_RSET:
		tx_clear(s);
		break;
	case SMTP_EV_MAIL:
		on_mail(s, ev);
		break;
	case SMTP_EV_RCPT:
		on_rcpt(s, ev);
		break;
	case SMTP_EV_DATA_START:
		on_data_start(s, ev);
		break;
	case SMTP_EV_DATA_CHUNK:
		if (s->msg != NULL)
			(void)spool_msg_write(s->msg, ev->data, ev->data_len);
		break;
	case SMTP_EV_DATA_ABORT:
		log_refused(s, tx_what(s, what, sizeof(what)), ev->reply);
		tx_clear(s);
		break;
	case SMTP_EV_DATA_END:
		on_data_end(s, ev);
		break;
	case SMTP_EV_VRFY:
		on_vrfy(s, ev);
		break;
	case SMTP_EV_EXPN:
		on_expn(s, ev);
		break;
	case SMTP_EV_QUIT:
		session_end(s, "quit");
		break;
	case SMTP_EV_PROTOCOL_ERROR:
		log_refused(s, "event=refused", ev->reply);
		break;
	case SMTP_EV_STARTTLS:
		on_starttls(s);
		break;
	case SMTP_EV_AUTH:
		on_auth(s, ev);
		break;
	case SMTP_EV_AUTH_ABORT:
		sasl_server_free(&s->sasl);
		break;
	case SMTP_EV_NONE:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* the connection */

/*
 * Seconds left before the current deadline, 0 when it has passed: the
 * connection's timeout, re-armed by the loop after every read but always
 * to what is left, so a client trickling bytes gains nothing.
 */
static unsigned
session_deadline(struct smtpd_session *s)
{
	const struct tern_conf *conf = s->srv->conf;
	double now = mono_now(), left;
	uint64_t cmds = smtp_engine_commands(s->engine);

	if (smtp_engine_phase(s->engine) == SMTP_PHASE_DATA) {
		if (!s->in_data) {
			s->in_data = true;
			s->data_start = now;
			s->data_bytes = 0;
		}
		left = s->data_start + conf->timeout_data - now;
		if (conf->data_rate_min > 0)
			left += (double)s->data_bytes / conf->data_rate_min;
	} else {
		if (s->in_data || s->waited || cmds != s->seen_cmds) {
			s->cmd_start = now;
			s->seen_cmds = cmds;
		}
		s->in_data = false;
		left = s->cmd_start + conf->timeout_command - now;
	}
	s->waited = false;
	if (left <= 0)
		return 0;
	if (left < 1)
		return 1;
	if (left > 86400.0)
		return 86400;
	return (unsigned)left + 1;
}

static void session_timeout(struct smtpd_session *s);

static void
session_pump(struct smtpd_session *s)
{
	struct smtp_event ev;
	bool closed = false;

	for (unsigned rounds = 0; rounds < 100000; rounds++) {
		const uint8_t *p;
		size_t len = 0, used = 0;
		int r;
		bool any = false;

		if (s->closing || s->committing || s->dead ||
		    s->tls_starting || smtp_engine_waiting(s->engine))
			break;
		/* events a verdict given outside this loop queued (a
		 * password check's or a delayed AUTH failure's: the 421 at
		 * auth_failures_max, AUTH_ABORT): the engine hands them out
		 * now, not only after the next feed */
		while (!s->committing && smtp_engine_next(s->engine, &ev)) {
			any = true;
			handle_event(s, &ev);
			if (s->dead)
				return;
		}
		session_flush(s);
		if (conn_output_len(s->conn) > SMTPD_OUTPUT_HIGH) {
			/* RFC 2920 §3.1 lets us stop reading; resume once the
			 * peer has taken its replies */
			s->throttled = true;
			break;
		}
		p = conn_input_peek(s->conn, &len);
		if (len == 0)
			break;
		bool data_phase =
			smtp_engine_phase(s->engine) == SMTP_PHASE_DATA;
		r = smtp_engine_feed(s->engine, p, len, &used);
		conn_input_drain(s->conn, used);
		if (data_phase)
			s->data_bytes += used;
		while (!s->committing && smtp_engine_next(s->engine, &ev)) {
			any = true;
			handle_event(s, &ev);
			if (s->dead)
				return;
		}
		if (r < 0) {
			closed = true;
			session_end(s, "error");  /* unless noted before */
		}
		if (closed)
			s->closing = true;
		if (used == 0 && !any)
			break;
	}
	session_flush(s);
	if (s->dead)
		return;
	if (smtp_engine_phase(s->engine) == SMTP_PHASE_CLOSED) {
		session_end(s, "error");  /* unless noted before */
		s->closing = true;
	}
	if (s->peer_eof && !s->committing && !s->throttled &&
	    (conn_input_len(s->conn) == 0 || smtp_engine_waiting(s->engine)))
		s->closing = true;
	if (s->closing) {
		conn_read_enable(s->conn, false);
		conn_notify_drained(s->conn, true);
		return;
	}
	if (s->committing || s->tls_starting || smtp_engine_waiting(s->engine)) {
		s->waited = true;
		return;
	}
	if (s->throttled) {
		conn_read_enable(s->conn, false);
		conn_notify_drained(s->conn, true);
		return;
	}
	unsigned left = session_deadline(s);
	if (left == 0) {
		/* reads came often enough to keep the timer from firing */
		session_timeout(s);
		return;
	}
	conn_set_timeout(s->conn, left);
	conn_read_enable(s->conn, true);
}

/* how long a closing session waits for the peer's FIN, so that unread
 * input does not turn our close into a reset that eats the last reply */
#define SMTPD_LINGER_SECONDS 2

static void
conn_on_read(void *arg)
{
	struct smtpd_session *s = arg;

	if (s->lingering) {
		conn_input_drain(s->conn, conn_input_len(s->conn));
		return;
	}
	session_pump(s);
}

static void
conn_on_timeout(void *arg)
{
	struct smtpd_session *s = arg;

	if (s->lingering) {
		session_free(s);
		return;
	}
	if (s->committing)
		return;
	if (s->tls_starting) {
		/* a handshake that stalls; conn_free drops the TLS state */
		log_info("smtp sess=%08x event=timeout client=%s "
			 "state=tls_handshake", s->id, s->peer);
		session_end(s, "timeout");
		session_free_later(s);
		return;
	}
	if (s->closing) {
		/* the peer has not taken its last replies for a whole timeout */
		log_info("smtp sess=%08x event=timeout client=%s state=closing",
			 s->id, s->peer);
		session_end(s, "timeout");
		session_free(s);
		return;
	}
	if (smtp_engine_waiting(s->engine)) {
		/* the wait is ours (a verdict not given yet), not the
		 * client's */
		conn_set_timeout(s->conn, s->srv->conf->timeout_command);
		return;
	}
	session_timeout(s);
}

/* the client missed a deadline: 421 4.4.2 and close */
static void
session_timeout(struct smtpd_session *s)
{
	log_info("smtp sess=%08x event=timeout client=%s phase=%s", s->id,
		 s->peer, smtp_engine_phase(s->engine) == SMTP_PHASE_DATA ?
		 "data" : "command");
	session_end(s, "timeout");
	smtp_engine_timeout(s->engine);
	s->closing = true;
	session_pump(s);
}

static void
conn_on_close(void *arg)
{
	struct smtpd_session *s = arg;

	if (!conn_is_dead(s->conn) && !s->lingering) {
		/* half-close: answer the commands already received, then
		 * close once the replies are written */
		s->peer_eof = true;
		if (!s->committing)
			session_pump(s);
		return;
	}
	s->dead = true;
	if (s->committing || s->auth_busy)
		return; /* commit_done or auth_checked frees it */
	session_free(s);
}

static void
conn_on_drained(void *arg)
{
	struct smtpd_session *s = arg;

	if (s->throttled && !s->closing) {
		s->throttled = false;
		conn_notify_drained(s->conn, false);
		session_pump(s);
		return;
	}
	if (s->closing && !s->committing && s->peer_eof) {
		session_free(s);  /* both sides are done */
		return;
	}
	if (s->closing && !s->committing && !s->lingering) {
		/* half-close, then release at the peer's FIN or the timeout */
		s->lingering = true;
		conn_notify_drained(s->conn, false);
		conn_shutdown_write(s->conn);
		conn_input_drain(s->conn, conn_input_len(s->conn));
		conn_set_timeout(s->conn, SMTPD_LINGER_SECONDS);
		conn_read_enable(s->conn, true);
	}
}

static const struct conn_handler smtpd_conn_handler = {
	.on_read = conn_on_read,
	.on_timeout = conn_on_timeout,
	.on_close = conn_on_close,
	.on_drained = conn_on_drained,
};

/* local: on the sendmail socket (peer and local are AF_UNIX) */
/* refuses a connection before any session exists */
static void
refuse_connection(struct tern_server *srv, int fd, const char *peer_text,
		  const char *why, const char *text)
{
	char line[300], r[600];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s %s\r\n",
			 srv->hostname, text);

	if (n > 0 && (size_t)n < sizeof(line))
		(void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	/* the reply without its CRLF */
	if (n >= 2 && (size_t)n < sizeof(line))
		line[n - 2] = '\0';
	log_warn("smtp event=refused client=%s reason=%s result=\"%s\"",
		 peer_text, why, log_escape(r, sizeof(r), line, strlen(line)));
}

/* local: on the sendmail socket (peer and local are AF_UNIX) */
static void
session_start(struct tern_server *srv, struct serve_listener *sl, int fd,
	      const struct sockaddr *peer, const struct sockaddr *local,
	      bool is_local)
{
	enum conf_role role = sl != NULL ? sl->role : CONF_ROLE_MX;
	const struct tern_conf *conf = srv->conf;
	struct smtpd_session *s;
	struct smtp_params params = {
		.hostname = srv->hostname,
		.size_max = conf->size_max,
		.rcpt_max = conf->rcpt_max,
		.errors_max = conf->errors_max,
		.vrfy_enabled = conf->vrfy,
		.expn_enabled = conf->expn,
		.junk_max = conf->junk_max,
		.auth_failures_max = conf->auth_failures_max,
	};
	char peer_text[NET_ADDR_TEXT_MAX], uid[16] = "unknown";
	bool full, trusted = false, counted = false;

	if (is_local) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			snprintf(uid, sizeof(uid), "%u", (unsigned)cred.uid);
		snprintf(peer_text, sizeof(peer_text), "local uid=%s", uid);
		full = srv->nlocal_sessions >= SERVE_LOCAL_SESSIONS_MAX;
	} else {
		net_addr_text(peer, peer_text, sizeof(peer_text));
		full = srv->nsessions - srv->nlocal_sessions >=
		       conf->sessions_max;
	}
	if (!full && sl != NULL && sl->sessions_max > 0 &&
	    sl->sessions >= sl->sessions_max) {
		refuse_connection(srv, fd, peer_text, "listener_sessions",
				  "Too many connections, try again later");
		return;
	}
	if (srv->stopping || full) {
		refuse_connection(srv, fd, peer_text,
				  srv->stopping ? "stopping" : is_local ?
				  "local_sessions_max" : "sessions_max",
				  "Too many connections, try again later");
		return;
	}
	if (!is_local && peer->sa_family == AF_INET)
		trusted = conf_relay_allowed(conf, 4, (const uint8_t *)
			&((const struct sockaddr_in *)peer)->sin_addr);
	else if (!is_local && peer->sa_family == AF_INET6)
		trusted = conf_relay_allowed(conf, 6, (const uint8_t *)
			&((const struct sockaddr_in6 *)peer)->sin6_addr);
	/* one address may not take the whole server; relay_from clients
	 * (our own applications) are not limited */
	if (!is_local && !trusted) {
		const char *why = NULL;
		if (serve_clients_admit(srv->clients, peer, (int64_t)time(NULL),
					conf->client_sessions_max,
					conf->client_rate_max, &why) < 0) {
			refuse_connection(srv, fd, peer_text, why,
					  "Too many connections from your "
					  "address, try again later");
			return;
		}
		counted = true;
	}
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	buf_init(&s->log_to, 1024);
	buf_init(&s->log_orcpt, 1024);
	s->id = srv->next_session_id++;
	s->role = is_local ? CONF_ROLE_MX : role;
	s->counted = counted;
	s->listener = sl;
	if (sl != NULL)
		sl->sessions++;
	if (!is_local) {
		size_t salen = peer->sa_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		memcpy(&s->peer_sa, peer, salen);
	}
	memcpy(s->peer, peer_text, sizeof(s->peer));
	net_addr_ip(peer, s->peer_ip, sizeof(s->peer_ip));
	s->ipv6 = peer->sa_family == AF_INET6;
	if (is_local) {
		/* any local user may send anywhere, as with any sendmail */
		s->is_local = true;
		s->trusted = true;
		memcpy(s->uid, uid, sizeof(s->uid));
		snprintf(s->peer_ip, sizeof(s->peer_ip), "local");
		srv->nlocal_sessions++;
	} else {
		s->trusted = trusted;
	}
	if (is_local)
		snprintf(s->local, sizeof(s->local), "%s", SERVE_SENDMAIL_SOCKET);
	else if (local->sa_family != AF_UNSPEC)
		net_addr_text(local, s->local, sizeof(s->local));
	/* the role: what the listener offers (RFC 3207, RFC 4954, RFC 8314) */
	if (!is_local) {
		params.starttls = srv->tls != NULL &&
				  role != CONF_ROLE_SUBMISSIONS;
		params.tls = role == CONF_ROLE_SUBMISSIONS;
		if (role != CONF_ROLE_MX) {
			params.auth_mechs = conf->auth_mechanisms;
			params.auth_required = true;
		}
	}
	s->engine = smtp_engine_new(&params);
	s->conn = conn_new(srv->base, fd, &smtpd_conn_handler, s);
	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	log_info("smtp sess=%08x event=connect client=%s listener=%s", s->id,
		 s->peer, s->local);
	s->cmd_start = mono_now();
	if (s->role == CONF_ROLE_SUBMISSIONS) {
		/* RFC 8314 §3.3: TLS from the first byte; the greeting
		 * follows the handshake (tls_done) */
		if (srv->tls == NULL || !tls_begin(s)) {
			session_end(s, "tls_failed");
			s->dead = true;
			session_free(s);
		}
		return;
	}
	smtp_engine_greet(s->engine);
	session_flush(s);
	conn_set_timeout(s->conn, conf->timeout_command);
}

void
smtpd_accept(struct serve_listener *sl, int fd, const struct sockaddr *peer,
	     const struct sockaddr *local)
{
	session_start(sl->srv, sl, fd, peer, local, false);
}

static void
local_accept(void *arg, int fd, const struct sockaddr *peer,
	     const struct sockaddr *local)
{
	session_start(arg, NULL, fd, peer, local, true);
}

int
smtpd_listen_local(struct tern_server *srv, char **error_r)
{
	const char *state_dir = srv->conf->state_dir;
	char *dir = xasprintf("%s/public", state_dir);
	char *path = xasprintf("%s/%s", state_dir, SERVE_SENDMAIL_SOCKET);
	struct stat st;
	char *error = NULL;

	/* every local user must reach the socket: the state directory
	 * gets search permission (x, not r: its names are not listed; the
	 * spool and the Maildirs under it stay 0700 on their own) */
	if (stat(state_dir, &st) == 0 && (st.st_mode & 0111) != 0111 &&
	    chmod(state_dir, (st.st_mode & 07777) | 0111) < 0) {
		error = xasprintf("cannot chmod %s: %s", state_dir,
				  strerror(errno));
		goto out;
	}
	if (io_mkdir_p(dir, 0755) < 0 || chmod(dir, 0755) < 0) {
		error = xasprintf("cannot create %s: %s", dir,
				  strerror(errno));
		goto out;
	}
	if (net_listen_unix(srv->base, path, 0666, local_accept, srv,
			    &srv->sendmail_listener, &error) < 0)
		goto out;
	log_info("tern event=listen address=%s role=sendmail",
		 net_listener_name(srv->sendmail_listener));
out:
	free(dir);
	free(path);
	if (error != NULL) {
		*error_r = error;
		return -1;
	}
	return 0;
}

void
smtpd_shutdown_all(struct tern_server *srv)
{
	struct smtpd_session *s, *next;

	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->dead || s->closing)
			continue;
		if (s->committing) {
			s->shutdown_pending = true;
			continue;
		}
		session_end(s, "shutdown");
		smtp_engine_shutdown(s->engine);
		s->closing = true;
		session_pump(s);  /* may free s */
	}
}

void
smtpd_session_abandon(struct smtpd_session *s)
{
	s->committing = false;
	s->dead = true;
	session_end(s, "shutdown");
	session_free(s);
}

/* SPDX-License-Identifier: MIT */
/*
 * deliver_dsn: the delivery status notifications the queue runner owes
 * (RFC 3461, RFC 3464), made on the worker pool right after a job has
 * recorded its outcomes:
 *
 *   failed     a recipient bounced (or expired), unless NOTIFY=NEVER or a
 *              NOTIFY list without FAILURE
 *   delayed    a recipient is still deferred delay_warning after receipt,
 *              once, when NOTIFY asks for DELAY or says nothing
 *   delivered  NOTIFY=SUCCESS, delivered into a Maildir here
 *   relayed    NOTIFY=SUCCESS, handed to a server without DSN (one with
 *              DSN got the NOTIFY and owes the report from then on)
 *
 * Every recipient of a message that is due goes into one report. The
 * report goes from <> (RFC 5321 §4.5.5) to the envelope sender and is
 * written into the spool with spool_inject() before the recipients are
 * marked (SPOOL_RCPT_F_DSN_DONE, SPOOL_RCPT_F_DELAY_SENT): a crash in
 * between sends a report twice, never not at all. A message is not
 * removed while a report for it is owed.
 *
 * No report ever goes to <>: a message from <> (itself a report) whose
 * delivery fails is reported once to postmaster (SPOOL_DSN_DOUBLE), and
 * a failed report to postmaster is only logged. That ends every loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver_int.h"
#include "msg/msg.h"
#include "smtp/smtp.h"

/* how much of a message's start is read to find its header block */
#define DSN_HEADER_READ (256u << 10)

static bool
notify_allows(unsigned notify, unsigned bit)
{
	/* RFC 3461 §4.1: without NOTIFY, FAILURE and (at our discretion)
	 * DELAY are reported */
	if (notify == 0)
		return bit == SMTP_NOTIFY_FAILURE || bit == SMTP_NOTIFY_DELAY;
	return (notify & bit) != 0;
}

/* the report this recipient is owed now, or -1 */
static int
rcpt_report(const struct deliverq *q, const struct spool_envelope *env,
	    const struct spool_rcpt *r, int64_t now)
{
	switch (r->state) {
	case SPOOL_RCPT_BOUNCED:
		if ((r->flags & SPOOL_RCPT_F_DSN_DONE) == 0 &&
		    notify_allows(r->notify, SMTP_NOTIFY_FAILURE))
			return MSG_DSN_FAILED;
		break;
	case SPOOL_RCPT_DELIVERED:
		if ((r->flags & SPOOL_RCPT_F_DSN_DONE) == 0 &&
		    (r->notify & SMTP_NOTIFY_SUCCESS) != 0)
			return r->agent == SPOOL_AGENT_RELAY ?
			       MSG_DSN_RELAYED : MSG_DSN_DELIVERED;
		break;
	case SPOOL_RCPT_DEFERRED:
		if ((r->flags & (SPOOL_RCPT_F_DELAY_SENT |
				 SPOOL_RCPT_F_DSN_DONE)) == 0 &&
		    notify_allows(r->notify, SMTP_NOTIFY_DELAY) &&
		    sched_delay_notice_due(&q->policy, env->received_at, now))
			return MSG_DSN_DELAYED;
		break;
	case SPOOL_RCPT_PENDING:
		break;
	}
	return -1;
}

bool
deliver_dsn_owed(const struct deliverq *q, const struct spool_envelope *env)
{
	if (env->dsn_kind == SPOOL_DSN_DOUBLE)
		return false;
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		if (r->state != SPOOL_RCPT_BOUNCED &&
		    r->state != SPOOL_RCPT_DELIVERED)
			continue;
		int kind = rcpt_report(q, env, r, 0);
		/* a report to <> is never owed, except the one to
		 * postmaster about a failure */
		if (kind < 0 || (env->mail_from[0] == '\0' &&
				 kind != MSG_DSN_FAILED))
			continue;
		return true;
	}
	return false;
}

/* "mx.example.org[192.0.2.1]:25" -> "mx.example.org" (heap) */
static char *
mta_name(const char *remote)
{
	const char *b = strchr(remote, '[');

	return b != NULL ? xstrndup(remote, (size_t)(b - remote)) :
	       xstrdup(remote);
}

/* the original message, or as much of it as the report returns */
static int
read_original(struct deliverq *q, const struct spool_envelope *env,
	      const void *mem, size_t memlen, bool whole, uint8_t **p_r,
	      size_t *n_r)
{
	int fd;
	uint64_t off, len;
	size_t want;

	if (mem != NULL) {
		*p_r = xmalloc(memlen > 0 ? memlen : 1);
		memcpy(*p_r, mem, memlen);
		*n_r = memlen;
		return 0;
	}
	if (spool_body_open(q->spool, env->id, &fd, &off, &len) < 0)
		return -1;
	want = whole ? (size_t)len :
	       (len < DSN_HEADER_READ ? (size_t)len : DSN_HEADER_READ);
	*p_r = xmalloc(want > 0 ? want : 1);
	if (want > 0 && io_pread_all(fd, *p_r, want, (off_t)off) < 0) {
		int e = errno;
		(void)close(fd);
		free(*p_r);
		*p_r = NULL;
		errno = e;
		return -1;
	}
	(void)close(fd);
	if (!whole)
		want = msg_header_len(*p_r, want);
	*n_r = want;
	return 0;
}

/*
 * A local sender that names no user or alias of the configuration may be
 * an account: its address (without extension, ASCII lower-cased) when
 * the account's Maildir exists. The accounts table belongs to the
 * server; its Maildirs are what this thread can see.
 */
static char *
account_of(const struct tern_conf *conf, const char *to)
{
	const char *at = strrchr(to, '@');
	size_t n = at != NULL ? (size_t)(at - to) : 0;
	char *addr, *path;
	struct stat st;

	if (at == NULL || n == 0)
		return NULL;
	for (size_t i = 1; i < n; i++)
		if (strchr(conf->recipient_delimiter, to[i]) != NULL) {
			n = i;
			break;
		}
	addr = xasprintf("%.*s%s", (int)n, to, at);
	for (char *p = addr; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	path = deliver_account_maildir(conf, addr);
	if (path == NULL || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(addr);
		addr = NULL;
	}
	free(path);
	return addr;
}

static bool
names_someone(const struct tern_conf *conf, const char *to)
{
	struct conf_targets t;
	int r = conf_resolve_targets(conf, to, &t);

	conf_targets_clear(&t);
	return r == 1;
}

/* whom a report goes to: the sender, through aliases for a local one */
static void
report_rcpts(const struct tern_conf *conf, const char *to,
	     struct spool_envelope *rep)
{
	struct conf_targets t;
	const char *at = strrchr(to, '@');
	char *account = NULL;

	if (at != NULL && conf_is_local_domain(conf, at + 1) &&
	    !names_someone(conf, to) &&
	    (account = account_of(conf, to)) != NULL) {
		rep->rcpts = xcalloc(1, sizeof(*rep->rcpts));
		rep->rcpts[0].address = xstrdup(to);
		rep->rcpts[0].agent = SPOOL_AGENT_LOCAL;
		rep->rcpts[0].dest = account;
		rep->rcpts[0].notify = SMTP_NOTIFY_NEVER;
		rep->nrcpts = 1;
		return;
	}
	if (at == NULL || conf_is_local_domain(conf, at + 1) ||
	    ascii_strcasecmp(to, "postmaster") == 0) {
		if (conf_resolve_targets(conf, to, &t) == 1 ||
		    conf_resolve_targets(conf, "postmaster", &t) == 1) {
			rep->rcpts = xcalloc(t.nusers + t.nremotes +
					     t.nlocals + 1,
					     sizeof(*rep->rcpts));
			for (size_t i = 0; i < t.nlocals; i++) {
				char *acct = account_of(conf, t.locals[i]);
				struct spool_rcpt *r;
				if (acct == NULL)
					continue;
				r = &rep->rcpts[rep->nrcpts++];
				r->address = xstrdup(to);
				r->agent = SPOOL_AGENT_LOCAL;
				r->dest = acct;
				r->notify = SMTP_NOTIFY_NEVER;
			}
			for (size_t i = 0; i < t.nusers; i++) {
				struct spool_rcpt *r =
					&rep->rcpts[rep->nrcpts++];
				r->address = xstrdup(to);
				r->agent = SPOOL_AGENT_LOCAL;
				r->dest = xstrdup(t.users[i]->name);
				/* RFC 3461 §5.2.1: reports ask for none */
				r->notify = SMTP_NOTIFY_NEVER;
			}
			for (size_t i = 0; i < t.nremotes; i++) {
				struct spool_rcpt *r =
					&rep->rcpts[rep->nrcpts++];
				r->address = xstrdup(to);
				r->agent = SPOOL_AGENT_RELAY;
				r->dest = xstrdup(t.remotes[i]);
				r->notify = SMTP_NOTIFY_NEVER;
				r->flags = SPOOL_RCPT_F_FORWARDED;
			}
			conf_targets_clear(&t);
			return;
		}
	}
	rep->rcpts = xcalloc(1, sizeof(*rep->rcpts));
	rep->rcpts[0].address = xstrdup(to);
	rep->rcpts[0].agent = SPOOL_AGENT_RELAY;
	rep->rcpts[0].dest = xstrdup(to);
	rep->rcpts[0].notify = SMTP_NOTIFY_NEVER;
	rep->nrcpts = 1;
}

static bool
has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

int
deliver_dsn_send(struct deliverq *q, struct spool_envelope *env,
		 const void *mem, size_t memlen, int64_t now,
		 struct spool_envelope **report_r, size_t **changed_r,
		 size_t *nchanged_r)
{
	const struct tern_conf *conf = q->conf;
	const char *host = conf->hostname != NULL && conf->hostname[0] != '\0' ?
			   conf->hostname : "localhost";
	struct msg_dsn_rcpt *dr = NULL;
	size_t *idx = NULL, n = 0;
	bool any_failed = false;
	uint8_t *orig = NULL;
	size_t origlen = 0;
	char **keep = NULL;         /* strings the report borrows */
	size_t nkeep = 0;
	struct buf out;
	const char *err = NULL;
	int ret = -1;

	*report_r = NULL;
	*changed_r = NULL;
	*nchanged_r = 0;
	if (env->dsn_kind == SPOOL_DSN_DOUBLE) {
		/* the last word: a failed report to postmaster is logged */
		for (size_t i = 0; i < env->nrcpts; i++) {
			struct spool_rcpt *r = &env->rcpts[i];
			if (r->state == SPOOL_RCPT_BOUNCED &&
			    (r->flags & SPOOL_RCPT_F_DSN_DONE) == 0) {
				log_warn("deliver id=%s event=dsn status=dropped "
					 "reason=\"a report to postmaster "
					 "failed; no report about a report\"",
					 env->id);
				break;
			}
		}
		return 0;
	}
	/* the common case, on every delivery: nothing owed, nothing made */
	{
		bool any = false;
		for (size_t i = 0; i < env->nrcpts && !any; i++)
			any = rcpt_report(q, env, &env->rcpts[i], now) >= 0;
		if (!any)
			return 0;
	}
	dr = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1, sizeof(*dr));
	idx = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1, sizeof(*idx));
	keep = xcalloc(env->nrcpts > 0 ? 2 * env->nrcpts : 1, sizeof(*keep));
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		int kind = rcpt_report(q, env, r, now);
		if (kind < 0)
			continue;
		if (env->mail_from[0] == '\0' && kind != MSG_DSN_FAILED)
			continue;
		struct msg_dsn_rcpt *d = &dr[n];
		d->address = r->agent == SPOOL_AGENT_RELAY ? r->dest :
			     r->address;
		d->orcpt = r->orcpt;
		if (d->orcpt == NULL && strcmp(r->address, d->address) != 0) {
			keep[nkeep] = xasprintf("rfc822;%s", r->address);
			d->orcpt = keep[nkeep++];
		}
		d->action = (enum msg_dsn_action)kind;
		d->status = r->status;
		if (r->remote_mta != NULL) {
			keep[nkeep] = mta_name(r->remote_mta);
			d->remote_mta = keep[nkeep++];
		}
		d->diag = r->diag;
		d->diag_is_smtp = r->agent == SPOOL_AGENT_RELAY &&
				  r->remote_mta != NULL && r->diag != NULL;
		d->last_attempt = r->last_try;
		if (kind == MSG_DSN_DELAYED)
			d->retry_until = sched_expiry(&q->policy,
						      env->received_at);
		if (kind == MSG_DSN_FAILED)
			any_failed = true;
		idx[n++] = i;
	}
	if (n == 0) {
		ret = 0;
		goto out;
	}

	/* RFC 3461 §4.3: RET asks for the whole message or its headers in
	 * a failure report; delays and successes return the headers */
	bool whole = any_failed && env->ret != SMTP_RET_HDRS &&
		     env->size <= conf->dsn_return_max;
	if (read_original(q, env, mem, memlen, whole, &orig, &origlen) < 0) {
		log_error("deliver id=%s event=dsn status=failed error=\"cannot "
			  "read the message: %s\"", env->id, strerror(errno));
		goto out;
	}

	char from[300], msgid[200], boundary[80], recvfrom[300];
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", host);
	snprintf(msgid, sizeof(msgid), "%s.%" PRId64 ".dsn@%s", env->id, now,
		 host);
	snprintf(boundary, sizeof(boundary), "%s.%" PRId64 "/%s", env->id,
		 now, "report");
	snprintf(recvfrom, sizeof(recvfrom), "dns; %s [%s]",
		 env->helo != NULL && env->helo[0] != '\0' ? env->helo :
		 "unknown", env->client_addr != NULL ? env->client_addr : "");
	bool double_bounce = env->mail_from[0] == '\0';
	const char *to = double_bounce ? "postmaster" : env->mail_from;
	struct msg_dsn d = {
		.reporting_mta = host,
		.from = from,
		.to = to,
		.message_id = msgid,
		.boundary = boundary,
		.envid = env->envid,
		.received_from = recvfrom,
		.arrival = env->received_at,
		.now = now,
		.ret = whole ? env->ret : MSG_DSN_RET_HDRS,
		.smtputf8 = env->smtputf8,
		.orig = orig,
		.orig_len = origlen,
		.full_max = whole ? (size_t)conf->dsn_return_max : 0,
		.rcpts = dr,
		.nrcpts = n,
	};
	buf_init(&out, 0);
	{
		/* RFC 5321 §4.4: a trace line from the MTA that made it */
		char date[MSG_DATE_MAX];
		buf_printf(&out, "Received: by %s (tern) id %s\r\n\tfor <%s>; "
			   "%s\r\n", host, env->id, to, msg_date(now, date));
	}
	if (msg_dsn_build(&d, &out, &err) < 0) {
		log_error("deliver id=%s event=dsn status=failed error=\"%s\"",
			  env->id, err != NULL ? err : "cannot build");
		buf_clear(&out);
		goto out;
	}

	struct spool_envelope *rep = xcalloc(1, sizeof(*rep));
	rep->mail_from = xstrdup("");
	rep->helo = xstrdup(host);
	rep->client_addr = xstrdup("127.0.0.1");
	rep->received_at = now;
	rep->received_us = now * 1000000;
	rep->smtputf8 = env->smtputf8;
	rep->body = has_8bit(out.p, out.len) ? SMTP_BODY_8BITMIME :
		    SMTP_BODY_UNSPEC;
	rep->dsn_kind = double_bounce ? SPOOL_DSN_DOUBLE : SPOOL_DSN_REPORT;
	report_rcpts(conf, to, rep);
	if (spool_inject(q->spool, rep, out.p, out.len, rep->id) < 0) {
		log_error("deliver id=%s event=dsn status=failed error=\"cannot "
			  "queue the report: %s\"", env->id, strerror(errno));
		buf_clear(&out);
		spool_envelope_free(&rep);
		goto out;
	}
	rep->size = out.len;
	buf_clear(&out);
	{
		char e[300];
		const char *kind = any_failed ? "failed" :
			dr[0].action == MSG_DSN_DELAYED ? "delayed" : "success";
		log_info("queue id=%s event=dsn kind=%s orig=%s to=<%s> nrcpt=%zu",
			 rep->id, double_bounce ? "double-bounce" : kind,
			 env->id, log_escape(e, sizeof(e), to, strlen(to)), n);
	}
	/* mark what was reported (the caller records it) */
	for (size_t k = 0; k < n; k++) {
		struct spool_rcpt *r = &env->rcpts[idx[k]];
		if (r->state == SPOOL_RCPT_DEFERRED)
			r->flags |= SPOOL_RCPT_F_DELAY_SENT;
		else
			r->flags |= SPOOL_RCPT_F_DSN_DONE;
	}
	*report_r = rep;
	*changed_r = idx;
	*nchanged_r = n;
	idx = NULL;
	ret = 1;
out:
	for (size_t i = 0; i < nkeep; i++)
		free(keep[i]);
	free(keep);
	free(orig);
	free(dr);
	free(idx);
	return ret;
}

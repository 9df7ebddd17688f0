/* SPDX-License-Identifier: MIT */
/*
 * smtp_auth: STARTTLS (RFC 3207) and AUTH (RFC 4954) in the SMTP server
 * engine. STARTTLS asks the caller, sends 220 and stops reading until the
 * caller has started TLS. AUTH checks the command, decodes the client's
 * base64 and hands each step to the caller as SMTP_EV_AUTH; the caller's
 * SASL mechanism answers with a challenge (334) or an outcome (235, 535,
 * 454). The mechanisms themselves, the accounts and TLS live elsewhere:
 * no I/O, no crypto here. AUTH data is wiped once it has been handed out.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_int.h"

/* ------------------------------------------------------------------ */
/* base64 (RFC 4648 §4, base/) */

/*
 * Decodes s (n characters) in place, strictly (base.h b64_decode):
 * false when s is not such base64.
 */
static bool
b64_decode_inplace(char *s, size_t n, size_t *len_r)
{
	long r = b64_decode(s, n, (uint8_t *)s, n);

	if (r < 0)
		return false;
	*len_r = (size_t)r;
	return true;
}

/* "334 " base64(p) CRLF (RFC 4954 §4: the text part is the base64
 * challenge and nothing else); an empty challenge is "334 " CRLF */
static void
reply_334(struct smtp_engine *e, const uint8_t *p, size_t n)
{
	struct buf line;

	/* UNSAFE: n <= SMTP_AUTH_CHALLENGE_MAX, checked by the caller */
	buf_init(&line, 4 + (n + 2) / 3 * 4);
	(void)buf_append(&line, "334 ", 4);
	b64_append(&line, p, n);
	smtp_reply_raw(e, (const char *)line.p, line.len);
	buf_clear(&line);
}

/* ------------------------------------------------------------------ */
/* STARTTLS */

const char *
smtp_starttls_keyword(const struct smtp_engine *e)
{
	/* RFC 3207 §4.2: not offered again once TLS is on */
	return e->starttls && !e->tls ? "STARTTLS" : NULL;
}

/* "STARTTLS" CRLF: the table has refused arguments already (501 5.5.4) */
void
smtp_cmd_starttls(struct smtp_engine *e, char *args)
{
	(void)args;
	if (e->tls) {
		/* RFC 3207: no second TLS session inside the first, and
		 * STARTTLS is not offered after the handshake (§4.2) */
		smtp_refusef(e, 503, "5.5.1", true,
			     "Error: TLS already active");
		return;
	}
	if (!e->starttls) {
		smtp_refusef(e, 502, "5.5.1", true,
			     "Error: command not implemented");
		return;
	}
	/* RFC 3207 §4: an extension, so after EHLO (not HELO) */
	if (e->state == SMTP_ST_INIT || !e->esmtp) {
		smtp_refusef(e, 503, "5.5.1", true, "Error: send EHLO first");
		return;
	}
	/* RFC 3207 §4.2 throws the transaction away; Postfix refuses
	 * instead, which keeps the client's state and ours in step */
	if (e->state == SMTP_ST_MAIL) {
		smtp_refusef(e, 503, "5.5.1", true,
			     "Error: MAIL transaction in progress");
		return;
	}
	(void)smtp_ev_wait(e, SMTP_EV_STARTTLS);
}

/* RFC 3207 §4: 220 to go ahead, 454 when TLS is not available */
static const struct smtp_defaults def_starttls = {
	.ok_code = 220, .ok_enh = "2.0.0", .ok_text = "Ready to start TLS",
	.temp_code = 454, .temp_enh = "4.7.0",
	.temp_text = "TLS not available due to temporary reason",
	.perm_code = 454, .perm_enh = "4.7.0",
	.perm_text = "TLS not available due to temporary reason",
};

void
smtp_starttls_verdict(struct smtp_engine *e, const struct smtp_verdict *v)
{
	struct smtp_verdict w = *v;

	w.nlines = 0;
	if (v->kind != SMTP_VERDICT_OK) {
		smtp_verdict_reply(e, &w, &def_starttls, NULL);
		return;
	}
	/* the client waits for exactly 220; only the text may change */
	w.code = 0;
	smtp_verdict_reply(e, &w, &def_starttls, NULL);
	/* RFC 3207 §4.2: the next octets are the TLS handshake; whatever
	 * the client pipelined after STARTTLS stays unread, and the
	 * caller drops it */
	e->tls_wait = true;
}

/* ------------------------------------------------------------------ */
/* AUTH */

const char *
smtp_auth_keyword(const struct smtp_engine *e)
{
	/* passwords travel only inside TLS unless the configuration
	 * allows them in clear (RFC 4954 §6: 538 otherwise) */
	if (e->mechs == NULL || (!e->tls && !e->auth_clear))
		return NULL;
	return e->auth_kw;
}

bool
smtp_auth_usable(const struct smtp_engine *e)
{
	return smtp_auth_keyword(e) != NULL && e->state == SMTP_ST_READY &&
	       e->esmtp && !e->authed;
}

/* the mechanism as configured, or NULL */
static const char *
mech_find(const struct smtp_engine *e, const char *name)
{
	const char *m = e->mechs;

	for (unsigned i = 0; i < e->nmechs; i++) {
		/* RFC 4954 §4: mechanism names are case-insensitive */
		if (ascii_strcasecmp(m, name) == 0)
			return m;
		m += strlen(m) + 1;
	}
	return NULL;
}

/* queues SMTP_EV_AUTH with the decoded data (NULL: none) and waits */
static void
auth_event(struct smtp_engine *e, const char *data, size_t len)
{
	struct smtp_qev *q = smtp_ev_wait(e, SMTP_EV_AUTH);

	q->ev.auth_mech = e->auth_mech;
	q->ev.auth_step = e->auth_step;
	q->ev.auth_has_data = data != NULL;
	if (data != NULL) {
		q->data = smtp_ev_str(e, data, len);
		q->ev.data_len = len;
		e->secret = true;
	}
}

void
smtp_auth_abort(struct smtp_engine *e)
{
	struct smtp_qev *q = smtp_ev_push(e, SMTP_EV_AUTH_ABORT);

	q->ev.auth_mech = e->auth_mech;
	q->ev.auth_step = e->auth_step;
	e->auth_open = false;
}

/* "AUTH" SP sasl-mech [SP initial-response] (RFC 4954 §4) */
void
smtp_cmd_auth(struct smtp_engine *e, char *args)
{
	const char *mech;
	char *resp = NULL, *sp;
	size_t len = 0;

	if (e->mechs == NULL) {
		smtp_refusef(e, 502, "5.5.1", true,
			     "Error: command not implemented");
		return;
	}
	if (e->state == SMTP_ST_INIT || !e->esmtp) {
		smtp_refusef(e, 503, "5.5.1", true, "Error: send EHLO first");
		return;
	}
	/* RFC 4954 §4: "After a successful AUTH command completes, a
	 * server MUST reject any further AUTH commands with a 503 reply" */
	if (e->authed) {
		smtp_refusef(e, 503, "5.5.1", true,
			     "Error: already authenticated");
		return;
	}
	/* RFC 4954 §4: "An AUTH command issued during a mail transaction
	 * MUST be rejected with a 503 reply" */
	if (e->state == SMTP_ST_MAIL) {
		smtp_refusef(e, 503, "5.5.1", true,
			     "Error: MAIL transaction in progress");
		return;
	}
	/* RFC 4954 §6: 538 5.7.11 */
	if (!e->tls && !e->auth_clear) {
		smtp_refusef(e, 538, "5.7.11", true, "Encryption required for "
			     "requested authentication mechanism");
		return;
	}
	sp = strchr(args, ' ');
	if (sp != NULL) {
		*sp = '\0';
		resp = sp + 1;
	}
	if (args[0] == '\0' || (resp != NULL && strchr(resp, ' ') != NULL)) {
		smtp_refusef(e, 501, "5.5.4", true,
			     "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	mech = mech_find(e, args);
	if (mech == NULL) {
		/* RFC 4954 §4: 504 for a mechanism that is not supported */
		smtp_refusef(e, 504, "5.5.4", true,
			     "Unrecognized authentication type");
		return;
	}
	/* RFC 4954 §4: "=" is an initial response of zero length */
	if (resp != NULL && strcmp(resp, "=") == 0) {
		resp[0] = '\0';
	} else if (resp != NULL && !b64_decode_inplace(resp, strlen(resp), &len)) {
		/* RFC 4954 §4: 501 when the base64 cannot be decoded */
		smtp_refusef(e, 501, "5.5.2", true, "Invalid base64 data");
		return;
	}
	e->auth_mech = mech;
	e->auth_step = 0;
	auth_event(e, resp, len);
}

void
smtp_auth_response(struct smtp_engine *e, char *line, size_t len)
{
	size_t n;

	e->auth_open = false;
	/* RFC 4954 §4: "*" cancels the exchange, answered by 501 */
	if (len == 1 && line[0] == '*') {
		smtp_auth_abort(e);
		smtp_refusef(e, 501, "5.0.0", true, "Authentication canceled");
		return;
	}
	if (!b64_decode_inplace(line, len, &n)) {
		smtp_auth_abort(e);
		smtp_refusef(e, 501, "5.5.2", true, "Invalid base64 data");
		return;
	}
	e->auth_step++;
	auth_event(e, line, n);
}

/* RFC 4954 §6: 235 2.7.0, 454 4.7.0, 535 5.7.8 */
static const struct smtp_defaults def_auth = {
	.ok_code = 235, .ok_enh = "2.7.0",
	.ok_text = "Authentication successful",
	.temp_code = 454, .temp_enh = "4.7.0",
	.temp_text = "Temporary authentication failure",
	.perm_code = 535, .perm_enh = "5.7.8",
	.perm_text = "Authentication credentials invalid",
};

void
smtp_auth_verdict(struct smtp_engine *e, const struct smtp_verdict *v)
{
	struct smtp_verdict w = *v;

	w.nlines = 0;
	if (v->auth_continue) {
		if (v->challenge_len > SMTP_AUTH_CHALLENGE_MAX) {
			/* no line may carry it: the exchange cannot go on */
			smtp_auth_abort(e);
			smtp_reply(e, 454, "4.7.0",
				   "Temporary authentication failure");
			return;
		}
		TN_ASSERT(v->challenge != NULL || v->challenge_len == 0);
		reply_334(e, v->challenge, v->challenge_len);
		e->auth_open = true;
		return;
	}
	switch (v->kind) {
	case SMTP_VERDICT_OK:
		smtp_verdict_reply(e, &w, &def_auth, NULL);
		e->authed = true;
		break;
	case SMTP_VERDICT_TEMPFAIL:
		smtp_verdict_reply(e, &w, &def_auth, NULL);
		break;
	case SMTP_VERDICT_PERMFAIL:
		/* a password guesser gets auth_failures_max tries per
		 * session; the last one is answered by the close */
		if (++e->auth_failures >= e->auth_failures_max) {
			smtp_refuse_421(e, "4.7.0",
					"Too many authentication failures, "
					"closing");
			break;
		}
		smtp_verdict_reply(e, &w, &def_auth, NULL);
		break;
	}
	e->auth_mech = NULL;
	e->auth_step = 0;
}

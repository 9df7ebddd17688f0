/* SPDX-License-Identifier: MIT */
/*
 * smtp_mail: the MAIL and RCPT commands. Both check syntax and limits,
 * then hand the address and its parameters to the caller as an event and
 * wait for its verdict. No I/O.
 */
#include <string.h>

#include "smtp/smtp_int.h"

/*
 * Splits "FROM:<path> params" or "TO:<path> params": checks the keyword,
 * parses the path and returns the parameter text, or NULL after a
 * refusal. RFC 5321 §4.1.1.2 has no space after the colon, but "MAIL FROM:
 * <a@b>" is common enough that refusing it only hurts (Postfix takes it
 * unless strict_rfc821_envelopes is set).
 */
static char *
split(struct smtp_engine *e, char *args, const char *kw, unsigned flags,
      const struct smtp_rej *syntax, const struct smtp_rej *bad,
      struct smtp_path *path)
{
	size_t n = strlen(kw);
	char *p;

	if (ascii_strncasecmp(args, kw, n) != 0) {
		smtp_refuse(e, syntax);
		return NULL;
	}
	p = args + n;
	while (*p == ' ')
		p++;
	switch (smtp_parse_path(p, flags, path)) {
	case SMTP_PATH_OK:
		break;
	case SMTP_PATH_SYNTAX:
		smtp_refuse(e, syntax);
		return NULL;
	case SMTP_PATH_MAILBOX:
		smtp_refuse(e, bad);
		return NULL;
	}
	p += path->end - p;
	if (*p != '\0' && *p != ' ') {
		smtp_refuse(e, syntax);
		return NULL;
	}
	return p;
}

/* RFC 6531 §3.5: a non-ASCII address without SMTPUTF8 */
static const struct smtp_rej rej_utf8 = {
	553, "5.6.7", "Non-ASCII address requires SMTPUTF8", true };

void
smtp_cmd_mail(struct smtp_engine *e, char *args)
{
	static const struct smtp_rej syntax = {
		501, "5.5.4", "Syntax: MAIL FROM:<address>", true };
	/* RFC 3463 X.1.7: bad sender's mailbox address syntax */
	static const struct smtp_rej bad = {
		553, "5.1.7", "Bad sender address syntax", true };
	/* RFC 1870 §6.1: 552 when SIZE is over the fixed maximum; the
	 * client did nothing wrong, so it does not count */
	static const struct smtp_rej too_big = {
		552, "5.3.4", "Message size exceeds fixed maximum message size",
		false };
	struct smtp_esmtp prm;
	struct smtp_path path;
	const struct smtp_rej *rej;
	/* RFC 4954 §6: "530 5.7.0 Authentication required" */
	static const struct smtp_rej need_auth = {
		530, "5.7.0", "Authentication required", true };
	struct smtp_qev *q;
	char *rest;

	if (e->auth_required && !e->authed) {
		smtp_refuse(e, &need_auth);
		return;
	}
	rest = split(e, args, "FROM:", SMTP_PATH_NULL_OK, &syntax, &bad,
		     &path);
	if (rest == NULL)
		return;
	memset(&prm, 0, sizeof(prm));
	/* RFC 4954 §5: AUTH= only where AUTH was offered */
	prm.auth_ok = smtp_auth_keyword(e) != NULL;
	rej = smtp_parse_mail_params(rest, &prm);
	if (rej != NULL) {
		smtp_refuse(e, rej);
		return;
	}
	if (path.non_ascii && !prm.mail.smtputf8) {
		smtp_refuse(e, &rej_utf8);
		return;
	}
	if (prm.mail.size > e->size_max) {
		smtp_refuse(e, &too_big);
		return;
	}
	q = smtp_ev_wait(e, SMTP_EV_MAIL);
	q->address = smtp_ev_str(e, path.addr, path.len);
	q->ev.mail = prm.mail;
	q->ev.mail.envid = NULL;
	if (prm.mail.envid != NULL)
		q->envid = smtp_ev_str(e, prm.mail.envid,
				       strlen(prm.mail.envid));
	e->wait_utf8 = prm.mail.smtputf8;
}

void
smtp_cmd_rcpt(struct smtp_engine *e, char *args)
{
	static const struct smtp_rej syntax = {
		501, "5.5.4", "Syntax: RCPT TO:<address>", true };
	/* RFC 3463 X.1.3: bad destination mailbox address syntax */
	static const struct smtp_rej bad = {
		553, "5.1.3", "Bad recipient address syntax", true };
	/* RFC 5321 §4.5.3.1.10: 452 when the recipient limit is reached;
	 * the client should send the rest in another transaction */
	static const struct smtp_rej too_many = {
		452, "4.5.3", "Too many recipients", false };
	/* RFC 3030 §2 leaves the envelope closed once BDAT has begun */
	static const struct smtp_rej after_bdat = {
		503, "5.5.1", "Error: RCPT after BDAT", true };
	struct smtp_esmtp prm;
	struct smtp_path path;
	const struct smtp_rej *rej;
	struct smtp_qev *q;
	char *rest;

	e->rcpt_cmds++;
	if (e->bdat_open) {
		smtp_refuse(e, &after_bdat);
		return;
	}
	rest = split(e, args, "TO:", SMTP_PATH_POSTMASTER |
		     SMTP_PATH_TRAILING_DOT, &syntax, &bad,
		     &path);
	if (rest == NULL)
		return;
	memset(&prm, 0, sizeof(prm));
	prm.utf8_values = e->tx_utf8;
	rej = smtp_parse_rcpt_params(rest, &prm);
	if (rej != NULL) {
		smtp_refuse(e, rej);
		return;
	}
	if (path.non_ascii && !e->tx_utf8) {
		smtp_refuse(e, &rej_utf8);
		return;
	}
	if (e->rcpt_ok >= e->rcpt_max) {
		smtp_refuse(e, &too_many);
		return;
	}
	q = smtp_ev_wait(e, SMTP_EV_RCPT);
	q->address = smtp_ev_str(e, path.addr, path.len);
	q->ev.rcpt = prm.rcpt;
	q->ev.rcpt.orcpt = NULL;
	if (prm.rcpt.orcpt != NULL)
		q->orcpt = smtp_ev_str(e, prm.rcpt.orcpt,
				       strlen(prm.rcpt.orcpt));
}

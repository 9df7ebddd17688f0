/* SPDX-License-Identifier: MIT */
/*
 * smtp_cmd: the command table, the small commands (HELO, EHLO, RSET, NOOP,
 * QUIT, HELP, VRFY, EXPN and the refused ones), the junk command limit and
 * the replies to the caller's verdicts. MAIL and RCPT live in smtp_mail.c,
 * DATA and BDAT in smtp_data.c, STARTTLS and AUTH in smtp_auth.c. No I/O:
 * replies go to the engine's output buffer.
 */
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_int.h"

/* what a command takes after its name */
enum smtp_args {
	SMTP_ARGS_NONE = 0,   /* nothing: 501 otherwise */
	SMTP_ARGS_ANY,        /* optional or checked by the handler */
};

/* flags of a command */
#define SMTP_CMD_HELP 0x01u   /* listed by HELP (when offered) */
#define SMTP_CMD_JUNK 0x02u   /* moves no mail: counted toward junk_max */

struct smtp_cmd {
	const char *name;
	unsigned states;          /* SMTP_ST_* where it is allowed */
	enum smtp_args args;
	unsigned flags;           /* SMTP_CMD_* */
	void (*run)(struct smtp_engine *e, char *args);
	/* an extension: its EHLO keyword, or NULL while not offered (and
	 * then HELP does not list it either) */
	const char *(*keyword)(const struct smtp_engine *e);
};

#define HELP SMTP_CMD_HELP
#define JUNK SMTP_CMD_JUNK

static void cmd_helo(struct smtp_engine *e, char *args);
static void cmd_ehlo(struct smtp_engine *e, char *args);
static void cmd_rset(struct smtp_engine *e, char *args);
static void cmd_noop(struct smtp_engine *e, char *args);
static void cmd_quit(struct smtp_engine *e, char *args);
static void cmd_help(struct smtp_engine *e, char *args);
static void cmd_vrfy(struct smtp_engine *e, char *args);
static void cmd_expn(struct smtp_engine *e, char *args);
static void cmd_not_implemented(struct smtp_engine *e, char *args);

/*
 * The commands. Junk follows Postfix's smtpd_junk_command_limit: the
 * commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP) are counted,
 * and the count starts again with each accepted message.
 */
static const struct smtp_cmd smtp_cmds[] = {
	/* RFC 5321 §4.1.1.1: HELO/EHLO may come at any time; a repeated
	 * one resets the transaction (§4.1.4) */
	{ "EHLO", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP, cmd_ehlo, NULL },
	{ "HELO", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP, cmd_helo, NULL },
	/* RFC 5321 §4.1.4: MAIL needs a greeting and no open transaction;
	 * RFC 4954 §6: 530 before AUTH where AUTH is required */
	{ "MAIL", SMTP_ST_READY, SMTP_ARGS_ANY, HELP, smtp_cmd_mail, NULL },
	/* RFC 5321 §4.1.1.3: RCPT only after MAIL */
	{ "RCPT", SMTP_ST_MAIL, SMTP_ARGS_ANY, HELP, smtp_cmd_rcpt, NULL },
	/* RFC 5321 §4.1.1.4: "DATA" CRLF, after at least one good RCPT
	 * (checked by the handler: 503 or 554, §3.3) */
	{ "DATA", SMTP_ST_MAIL, SMTP_ARGS_NONE, HELP, smtp_cmd_data, NULL },
	/* RFC 3030 §2: BDAT octets are read even when the command fails,
	 * so BDAT checks everything itself */
	{ "BDAT", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP, smtp_cmd_bdat, NULL },
	/* RFC 5321 §4.1.1.5: "RSET" CRLF, allowed at any time */
	{ "RSET", SMTP_ST_ANY, SMTP_ARGS_NONE, HELP | JUNK, cmd_rset, NULL },
	/* RFC 5321 §4.1.1.9: "NOOP" [ SP String ] CRLF */
	{ "NOOP", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP | JUNK, cmd_noop, NULL },
	/* RFC 5321 §4.1.1.10: "QUIT" CRLF */
	{ "QUIT", SMTP_ST_ANY, SMTP_ARGS_NONE, HELP, cmd_quit, NULL },
	/* RFC 5321 §4.1.1.8: "HELP" [ SP String ] CRLF */
	{ "HELP", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP | JUNK, cmd_help, NULL },
	/* RFC 5321 §3.5.3, §7.3: VRFY may answer 252 without looking */
	{ "VRFY", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP | JUNK, cmd_vrfy, NULL },
	/* RFC 5321 §7.3: EXPN may be disabled (502) */
	{ "EXPN", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP | JUNK, cmd_expn, NULL },
	/* RFC 3207 §4: "STARTTLS" CRLF, offered until TLS is on; the
	 * handler checks the sequence (EHLO first, §4.2 resets) */
	{ "STARTTLS", SMTP_ST_ANY, SMTP_ARGS_NONE, HELP, smtp_cmd_starttls,
	  smtp_starttls_keyword },
	/* RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]; the
	 * handler checks the sequence in §4's order (not during a
	 * transaction, once per session) */
	{ "AUTH", SMTP_ST_ANY, SMTP_ARGS_ANY, HELP, smtp_cmd_auth,
	  smtp_auth_keyword },
	/* RFC 5321 Appendix F.1: TURN is obsolete */
	{ "TURN", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	/* RFC 5321 Appendix F.6: SEND, SOML, SAML are obsolete */
	{ "SEND", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	{ "SOML", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	{ "SAML", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	/* RFC 1985 ETRN, RFC 2645 ATRN: known, not offered in EHLO, not
	 * implemented */
	{ "ETRN", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	{ "ATRN", SMTP_ST_ANY, SMTP_ARGS_ANY, 0, cmd_not_implemented, NULL },
	{ NULL, 0, SMTP_ARGS_NONE, 0, NULL, NULL },
};

#undef HELP
#undef JUNK

void
smtp_cmd_run(struct smtp_engine *e, char *line, size_t len)
{
	const struct smtp_cmd *cmd;
	char *args;
	size_t vlen;

	/* "a failed BDAT ... discard additional BDAT chunks already in
	 * the pipeline" (RFC 3030 §2): any other command ends that run */
	vlen = strcspn(line, " ");
	if (vlen != 4 || ascii_strncasecmp(line, "BDAT", 4) != 0)
		e->bdat_failed = false;

	/* RFC 5321 §2.4: verbs are case-insensitive */
	for (cmd = smtp_cmds; cmd->name != NULL; cmd++) {
		if (strlen(cmd->name) == vlen &&
		    ascii_strncasecmp(line, cmd->name, vlen) == 0)
			break;
	}
	if (cmd->name == NULL) {
		smtp_refusef(e, 500, "5.5.2", true,
			     "Error: command not recognized");
		return;
	}
	/* junk_max commands that move no mail are fine, one more ends the
	 * session (RFC 5321 §3.8 allows the 421) */
	if ((cmd->flags & SMTP_CMD_JUNK) != 0 && ++e->junk > e->junk_max) {
		smtp_refuse_421(e, "4.7.0", "Too many junk commands, closing");
		return;
	}
	args = line + vlen;
	while (*args == ' ')
		args++;
	/* trailing spaces are common and harmless */
	while (len > 0 && line[len - 1] == ' ')
		line[--len] = '\0';
	if (args > line + len)
		args = line + len;
	if ((cmd->states & e->state) == 0) {
		/* RFC 5321 §4.1.4: 503 for a command out of sequence; only
		 * MAIL is refused inside a transaction */
		smtp_refusef(e, 503, "5.5.1", true,
			     e->state == SMTP_ST_INIT ?
			     "Error: send HELO/EHLO first" :
			     e->state == SMTP_ST_MAIL ?
			     "Error: nested MAIL command" :
			     "Error: need MAIL command");
		return;
	}
	if (cmd->args == SMTP_ARGS_NONE && *args != '\0') {
		char text[64];
		(void)snprintf(text, sizeof(text), "Syntax: %s", cmd->name);
		smtp_refusef(e, 501, "5.5.4", true, text);
		return;
	}
	cmd->run(e, args);
}

/* ------------------------------------------------------------------ */
/* HELO and EHLO */

/* RFC 5321 §4.1.1.1: a domain or an address literal. Clients send all
 * kinds of names here, so only emptiness and control octets are refused;
 * the caller's policy may judge the rest. */
static bool
helo_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 32 || c == 127)
			return false;
	}
	return true;
}

static void
greet(struct smtp_engine *e, char *args, bool esmtp)
{
	if (!helo_ok(args)) {
		/* RFC 2034 §4: no enhanced code on replies to HELO/EHLO */
		smtp_refusef(e, 501, NULL, true, esmtp ?
			     "Syntax: EHLO hostname" : "Syntax: HELO hostname");
		return;
	}
	if (e->state == SMTP_ST_MAIL) {
		/* RFC 5321 §4.1.4: a later EHLO must "reset the state
		 * exactly as if a RSET command had been issued" */
		smtp_ev_push(e, SMTP_EV_RSET);
		smtp_tx_reset(e);
	}
	e->bdat_failed = false;
	free(e->helo_old);
	e->helo_old = e->helo;
	e->helo = xstrdup(args);
	e->esmtp = esmtp;
	e->state = SMTP_ST_READY;

	char first[SMTP_REPLY_LINE_MAX];
	(void)snprintf(first, sizeof(first), "%s Hello %s", e->hostname, args);
	if (!esmtp) {
		smtp_reply(e, 250, NULL, first);
	} else {
		char size[32];
		(void)snprintf(size, sizeof(size), "SIZE %llu",
			       (unsigned long long)e->size_max);
		/* RFC 5321 §4.1.1.1: one keyword per line; RFC 2034 §4: no
		 * enhanced codes in the EHLO reply */
		const char *kw[16] = {
			first,
			size,                  /* RFC 1870 */
			"PIPELINING",          /* RFC 2920 */
			"8BITMIME",            /* RFC 6152 */
			"ENHANCEDSTATUSCODES", /* RFC 2034 */
			"SMTPUTF8",            /* RFC 6531 */
			"CHUNKING",            /* RFC 3030 */
			"DSN",                 /* RFC 3461 */
		};
		size_t n = 0;
		while (kw[n] != NULL)
			n++;
		/* the command table's extensions: STARTTLS, AUTH */
		for (const struct smtp_cmd *cmd = smtp_cmds; cmd->name != NULL;
		     cmd++) {
			const char *k = cmd->keyword != NULL ?
					cmd->keyword(e) : NULL;
			if (k == NULL)
				continue;
			TN_ASSERT(n < sizeof(kw) / sizeof(kw[0]));
			kw[n++] = k;
		}
		for (size_t i = 0; i < n; i++)
			smtp_reply_part(e, 250, i + 1 < n, NULL, kw[i]);
	}
	smtp_ev_push(e, SMTP_EV_HELO);
}

static void
cmd_helo(struct smtp_engine *e, char *args)
{
	greet(e, args, false);
}

static void
cmd_ehlo(struct smtp_engine *e, char *args)
{
	greet(e, args, true);
}

/* ------------------------------------------------------------------ */
/* the rest */

static void
cmd_rset(struct smtp_engine *e, char *args)
{
	(void)args;
	smtp_tx_reset(e);
	e->bdat_failed = false;
	smtp_reply(e, 250, "2.0.0", "Ok");
	smtp_ev_push(e, SMTP_EV_RSET);
}

static void
cmd_noop(struct smtp_engine *e, char *args)
{
	(void)args;
	smtp_reply(e, 250, "2.0.0", "Ok");
}

static void
cmd_quit(struct smtp_engine *e, char *args)
{
	(void)args;
	smtp_reply(e, 221, "2.0.0", "Bye");
	smtp_ev_push(e, SMTP_EV_QUIT);
	smtp_close(e);
}

/* RFC 5321 §4.1.1.8: 214; the list comes from the command table */
static void
cmd_help(struct smtp_engine *e, char *args)
{
	char list[SMTP_REPLY_LINE_MAX];
	size_t n = 0;

	(void)args;
	list[0] = '\0';
	for (const struct smtp_cmd *cmd = smtp_cmds; cmd->name != NULL; cmd++) {
		if ((cmd->flags & SMTP_CMD_HELP) == 0 ||
		    (cmd->run == cmd_expn && !e->expn_enabled) ||
		    (cmd->keyword != NULL && cmd->keyword(e) == NULL))
			continue;
		int r = snprintf(list + n, sizeof(list) - n, "%s%s",
				 n > 0 ? " " : "", cmd->name);
		TN_ASSERT(r > 0 && (size_t)r < sizeof(list) - n);
		n += (size_t)r;
	}
	smtp_reply_part(e, 214, true, "2.0.0", "Commands supported:");
	smtp_reply(e, 214, "2.0.0", list);
}

static void
cmd_vrfy(struct smtp_engine *e, char *args)
{
	struct smtp_qev *q;

	/* RFC 5321 §4.1.1.6: "VRFY" SP String */
	if (*args == '\0') {
		smtp_refusef(e, 501, "5.5.4", true, "Syntax: VRFY address");
		return;
	}
	if (!e->vrfy_enabled) {
		/* RFC 5321 §3.5.3: 252 when the server will not say */
		smtp_reply(e, 252, "2.5.0", "Cannot VRFY user, but will "
			   "accept message and attempt delivery");
		return;
	}
	q = smtp_ev_wait(e, SMTP_EV_VRFY);
	q->address = smtp_ev_str(e, args, strlen(args));
	e->wait_arg = q->address;
}

static void
cmd_expn(struct smtp_engine *e, char *args)
{
	struct smtp_qev *q;

	if (!e->expn_enabled) {
		smtp_refusef(e, 502, "5.5.1", true, "EXPN command is disabled");
		return;
	}
	/* RFC 5321 §4.1.1.7: "EXPN" SP String */
	if (*args == '\0') {
		smtp_refusef(e, 501, "5.5.4", true, "Syntax: EXPN list");
		return;
	}
	q = smtp_ev_wait(e, SMTP_EV_EXPN);
	q->address = smtp_ev_str(e, args, strlen(args));
	e->wait_arg = q->address;
}

static void
cmd_not_implemented(struct smtp_engine *e, char *args)
{
	(void)args;
	smtp_refusef(e, 502, "5.5.1", true, "Error: command not implemented");
}

/* ------------------------------------------------------------------ */
/* verdicts */

static const struct smtp_defaults def_mail = {
	.ok_code = 250, .ok_enh = "2.1.0", .ok_text = "Ok",
	.perm_code = 550, .perm_enh = "5.1.0",
	.perm_text = "Sender address rejected" };
static const struct smtp_defaults def_rcpt = {
	.ok_code = 250, .ok_enh = "2.1.5", .ok_text = "Ok",
	.perm_code = 550, .perm_enh = "5.1.1",
	.perm_text = "Recipient address rejected: unknown user" };
static const struct smtp_defaults def_data_start = {
	.ok_code = 354, .ok_text = "End data with <CR><LF>.<CR><LF>",
	.perm_code = 554, .perm_enh = "5.3.0",
	.perm_text = "Transaction failed" };
static const struct smtp_defaults def_data_end = {
	.ok_code = 250, .ok_enh = "2.0.0", .ok_text = "Ok",
	.perm_code = 554, .perm_enh = "5.3.0",
	.perm_text = "Transaction failed" };
static const struct smtp_defaults def_vrfy = {
	.ok_code = 250, .ok_enh = "2.1.5",
	.perm_code = 550, .perm_enh = "5.1.1", .perm_text = "User unknown" };
static const struct smtp_defaults def_expn = {
	.ok_code = 250, .ok_enh = "2.1.5",
	.perm_code = 550, .perm_enh = "5.1.1",
	.perm_text = "Mailing list unknown" };

#define SMTP_TEMP_CODE 451
#define SMTP_TEMP_ENH "4.3.0"
#define SMTP_TEMP_TEXT "Temporary failure, try again later"

void
smtp_verdict_reply(struct smtp_engine *e, const struct smtp_verdict *v,
		   const struct smtp_defaults *d, const char *arg)
{
	unsigned code;
	const char *enh, *text;
	char enh_buf[8];

	switch (v->kind) {
	case SMTP_VERDICT_OK:
		code = d->ok_code;
		enh = d->ok_enh;
		text = d->ok_text != NULL ? d->ok_text : arg;
		break;
	case SMTP_VERDICT_TEMPFAIL:
		code = d->temp_code != 0 ? d->temp_code : SMTP_TEMP_CODE;
		enh = d->temp_code != 0 ? d->temp_enh : SMTP_TEMP_ENH;
		text = d->temp_code != 0 ? d->temp_text : SMTP_TEMP_TEXT;
		break;
	default:
		code = d->perm_code;
		enh = d->perm_enh;
		text = d->perm_text;
		break;
	}
	if (v->code != 0) {
		/* RFC 2034 §4: the enhanced code agrees with the reply's
		 * class; so does the verdict, or the caller is broken */
		unsigned want = v->kind == SMTP_VERDICT_OK ? 2 :
				v->kind == SMTP_VERDICT_TEMPFAIL ? 4 : 5;
		TN_ASSERT(v->code / 100 == want && v->code <= 599);
		code = v->code;
		enh = v->enhanced;
		if (enh == NULL) {
			(void)snprintf(enh_buf, sizeof(enh_buf), "%u.0.0",
				       want);
			enh = enh_buf;
		}
	}
	if (v->text != NULL)
		text = v->text;
	if (text == NULL)
		text = "Ok";
	if (v->nlines > 0) {
		TN_ASSERT(v->lines != NULL);
		for (size_t i = 0; i < v->nlines; i++)
			smtp_reply_part(e, code, i + 1 < v->nlines, enh,
					v->lines[i]);
		return;
	}
	smtp_reply(e, code, enh, text);
}

void
smtp_cmd_verdict(struct smtp_engine *e, enum smtp_event_kind kind,
		 const struct smtp_verdict *v)
{
	bool ok = v->kind == SMTP_VERDICT_OK;

	switch (kind) {
	case SMTP_EV_MAIL:
		smtp_verdict_reply(e, v, &def_mail, NULL);
		if (ok) {
			e->state = SMTP_ST_MAIL;
			e->tx_utf8 = e->wait_utf8;
		}
		break;
	case SMTP_EV_RCPT:
		smtp_verdict_reply(e, v, &def_rcpt, NULL);
		/* a refused recipient is not counted toward rcpt_max (RFC
		 * 5321 §3.3), but toward errors_max: a client that guesses
		 * addresses (directory harvesting) is cut off */
		if (ok)
			e->rcpt_ok++;
		else
			smtp_error(e);
		break;
	case SMTP_EV_DATA_START: {
		/* smtp_cmd_bdat() set the input to the chunk's octets */
		bool chunked = e->in == SMTP_IN_BDAT;
		if (ok) {
			/* RFC 3030 §2: BDAT has no intermediate reply; the
			 * 354 is fixed, only its text may change */
			if (!chunked) {
				struct smtp_verdict v354 = *v;
				v354.code = 0;
				v354.nlines = 0;
				smtp_verdict_reply(e, &v354, &def_data_start,
						   NULL);
			}
			smtp_data_begin(e, chunked);
			break;
		}
		smtp_verdict_reply(e, v, &def_data_start, NULL);
		/* the refused message ends the transaction; a BDAT chunk's
		 * octets are still read and dropped, and so are the chunks
		 * pipelined after it (RFC 3030 §2) */
		smtp_tx_reset(e);
		if (chunked) {
			e->in = SMTP_IN_BDAT;
			e->bdat_skip = true;
			e->bdat_failed = !e->bdat_last;
		}
		break;
	}
	case SMTP_EV_DATA_END:
		smtp_verdict_reply(e, v, &def_data_end, NULL);
		smtp_tx_reset(e);
		/* the junk count is per message */
		if (ok)
			e->junk = 0;
		break;
	case SMTP_EV_VRFY:
		smtp_verdict_reply(e, v, &def_vrfy,
				   (const char *)e->evstr.p + e->wait_arg);
		break;
	case SMTP_EV_EXPN:
		smtp_verdict_reply(e, v, &def_expn,
				   (const char *)e->evstr.p + e->wait_arg);
		break;
	case SMTP_EV_STARTTLS:
		smtp_starttls_verdict(e, v);
		break;
	case SMTP_EV_AUTH:
		smtp_auth_verdict(e, v);
		break;
	default:
		TN_ASSERT(kind == SMTP_EV_NONE);
	}
}

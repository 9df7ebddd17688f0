/* SPDX-License-Identifier: MIT */
/*
 * smtp_cmd: the command table, the small commands (HELO, EHLO, RSET, NOOP,
 * QUIT, HELP, VRFY, EXPN and the refused ones) and the replies to the
 * caller's verdicts. MAIL and RCPT live in smtp_mail.c, DATA and BDAT in
 * smtp_data.c. No I/O: replies go to the engine's output buffer.
 */
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_int.h"

/* what a command takes after its name */
enum smtp_args {
	SMTP_ARGS_NONE = 0,   /* nothing: 501 otherwise */
	SMTP_ARGS_ANY,        /* optional or checked by the handler */
};

struct smtp_cmd {
	const char *name;
	unsigned states;          /* SMTP_ST_* where it is allowed */
	enum smtp_args args;
	bool help;                /* listed by HELP */
	void (*run)(struct smtp_engine *e, char *args);
};

static void cmd_helo(struct smtp_engine *e, char *args);
static void cmd_ehlo(struct smtp_engine *e, char *args);
static void cmd_rset(struct smtp_engine *e, char *args);
static void cmd_noop(struct smtp_engine *e, char *args);
static void cmd_quit(struct smtp_engine *e, char *args);
static void cmd_help(struct smtp_engine *e, char *args);
static void cmd_vrfy(struct smtp_engine *e, char *args);
static void cmd_expn(struct smtp_engine *e, char *args);
static void cmd_not_implemented(struct smtp_engine *e, char *args);

static const struct smtp_cmd smtp_cmds[] = {
	/* RFC 5321 §4.1.1.1: HELO/EHLO may come at any time; a repeated
	 * one resets the transaction (§4.1.4) */
	{ "EHLO", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_ehlo },
	{ "HELO", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_helo },
	/* RFC 5321 §4.1.4: MAIL needs a greeting and no open transaction */
	{ "MAIL", SMTP_ST_READY, SMTP_ARGS_ANY, true, smtp_cmd_mail },
	/* RFC 5321 §4.1.1.3: RCPT only after MAIL */
	{ "RCPT", SMTP_ST_MAIL, SMTP_ARGS_ANY, true, smtp_cmd_rcpt },
	/* RFC 5321 §4.1.1.4: "DATA" CRLF, after at least one good RCPT
	 * (checked by the handler: 503 or 554, §3.3) */
	{ "DATA", SMTP_ST_MAIL, SMTP_ARGS_NONE, true, smtp_cmd_data },
	/* RFC 3030 §2: BDAT octets are read even when the command fails,
	 * so BDAT checks everything itself */
	{ "BDAT", SMTP_ST_ANY, SMTP_ARGS_ANY, true, smtp_cmd_bdat },
	/* RFC 5321 §4.1.1.5: "RSET" CRLF, allowed at any time */
	{ "RSET", SMTP_ST_ANY, SMTP_ARGS_NONE, true, cmd_rset },
	/* RFC 5321 §4.1.1.9: "NOOP" [ SP String ] CRLF */
	{ "NOOP", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_noop },
	/* RFC 5321 §4.1.1.10: "QUIT" CRLF */
	{ "QUIT", SMTP_ST_ANY, SMTP_ARGS_NONE, true, cmd_quit },
	/* RFC 5321 §4.1.1.8: "HELP" [ SP String ] CRLF */
	{ "HELP", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_help },
	/* RFC 5321 §3.5.3, §7.3: VRFY may answer 252 without looking */
	{ "VRFY", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_vrfy },
	/* RFC 5321 §7.3: EXPN may be disabled (502) */
	{ "EXPN", SMTP_ST_ANY, SMTP_ARGS_ANY, true, cmd_expn },
	/* RFC 5321 Appendix F.1: TURN is obsolete */
	{ "TURN", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	/* RFC 5321 Appendix F.6: SEND, SOML, SAML are obsolete */
	{ "SEND", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ "SOML", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ "SAML", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	/* RFC 1985 ETRN, RFC 2645 ATRN, RFC 3207 STARTTLS, RFC 4954 AUTH:
	 * known, not offered in EHLO, not implemented */
	{ "ETRN", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ "ATRN", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ "STARTTLS", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ "AUTH", SMTP_ST_ANY, SMTP_ARGS_ANY, false, cmd_not_implemented },
	{ NULL, 0, SMTP_ARGS_NONE, false, NULL },
};

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
		const char *const kw[] = {
			first,
			size,                  /* RFC 1870 */
			"PIPELINING",          /* RFC 2920 */
			"8BITMIME",            /* RFC 6152 */
			"ENHANCEDSTATUSCODES", /* RFC 2034 */
			"SMTPUTF8",            /* RFC 6531 */
			"CHUNKING",            /* RFC 3030 */
			"DSN",                 /* RFC 3461 */
		};
		size_t n = sizeof(kw) / sizeof(kw[0]);
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
		if (!cmd->help || (cmd->run == cmd_expn && !e->expn_enabled))
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

/* the standard replies for one kind of event */
struct smtp_defaults {
	unsigned ok_code;
	const char *ok_enh, *ok_text;
	const char *temp_text;
	unsigned perm_code;
	const char *perm_enh, *perm_text;
};

static const struct smtp_defaults def_mail = {
	250, "2.1.0", "Ok", NULL, 550, "5.1.0", "Sender address rejected" };
static const struct smtp_defaults def_rcpt = {
	250, "2.1.5", "Ok", NULL,
	550, "5.1.1", "Recipient address rejected: unknown user" };
static const struct smtp_defaults def_data_start = {
	354, NULL, "End data with <CR><LF>.<CR><LF>", NULL,
	554, "5.3.0", "Transaction failed" };
static const struct smtp_defaults def_data_end = {
	250, "2.0.0", "Ok", NULL, 554, "5.3.0", "Transaction failed" };
static const struct smtp_defaults def_vrfy = {
	250, "2.1.5", NULL, NULL, 550, "5.1.1", "User unknown" };
static const struct smtp_defaults def_expn = {
	250, "2.1.5", NULL, NULL, 550, "5.1.1", "Mailing list unknown" };

#define SMTP_TEMP_CODE 451
#define SMTP_TEMP_ENH "4.3.0"
#define SMTP_TEMP_TEXT "Temporary failure, try again later"

/*
 * Sends the reply for a verdict: with code 0 the standard reply for the
 * kind (v->text, when given, replaces only its text); with a code, code,
 * enhanced and text as given. `arg` is the default OK text (VRFY/EXPN).
 */
static void
verdict_reply(struct smtp_engine *e, const struct smtp_verdict *v,
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
		code = SMTP_TEMP_CODE;
		enh = SMTP_TEMP_ENH;
		text = SMTP_TEMP_TEXT;
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
		verdict_reply(e, v, &def_mail, NULL);
		if (ok) {
			e->state = SMTP_ST_MAIL;
			e->tx_utf8 = e->wait_utf8;
		}
		break;
	case SMTP_EV_RCPT:
		verdict_reply(e, v, &def_rcpt, NULL);
		/* a refused recipient is not counted (RFC 5321 §3.3) */
		if (ok)
			e->rcpt_ok++;
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
				verdict_reply(e, &v354, &def_data_start, NULL);
			}
			smtp_data_begin(e, chunked);
			break;
		}
		verdict_reply(e, v, &def_data_start, NULL);
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
		verdict_reply(e, v, &def_data_end, NULL);
		smtp_tx_reset(e);
		break;
	case SMTP_EV_VRFY:
		verdict_reply(e, v, &def_vrfy,
			      (const char *)e->evstr.p + e->wait_arg);
		break;
	case SMTP_EV_EXPN:
		verdict_reply(e, v, &def_expn,
			      (const char *)e->evstr.p + e->wait_arg);
		break;
	default:
		TN_ASSERT(kind == SMTP_EV_NONE);
	}
}

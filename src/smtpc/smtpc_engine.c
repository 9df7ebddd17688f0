/* SPDX-License-Identifier: MIT */
/*
 * smtpc_engine: the SMTP client engine's life cycle, input loop, event
 * queue, the greeting and EHLO/HELO exchange, STARTTLS, QUIT, and the
 * timeout and stage of what is awaited. Replies come in through smtpc_feed();
 * commands go to an output buffer and outcomes go out as events. It never
 * does I/O or reads a clock.
 */
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

static unsigned
or_default(unsigned v, unsigned def)
{
	return v != 0 ? v : def;
}

struct smtpc *
smtpc_new(const struct smtpc_params *params)
{
	struct smtpc *c = xcalloc(1, sizeof(*c));
	const char *name = params->helo_name;

	TN_ASSERT(name != NULL && name[0] != '\0');
	/* RFC 1035 §2.3.4: a name is at most 255 octets; a byte that could
	 * end or split the command line never goes out */
	c->helo_name = xstrdup_printable(name, 255);
	c->reply_max = params->reply_max != 0 ? params->reply_max :
		       SMTPC_REPLY_MAX_DEFAULT;
	c->reply_lines_max = or_default(params->reply_lines_max,
					SMTPC_REPLY_LINES_DEFAULT);
	c->t_greeting = or_default(params->timeout_greeting,
				   SMTPC_TIMEOUT_GREETING_DEFAULT);
	c->t_mail = or_default(params->timeout_mail, SMTPC_TIMEOUT_MAIL_DEFAULT);
	c->t_rcpt = or_default(params->timeout_rcpt, SMTPC_TIMEOUT_RCPT_DEFAULT);
	c->t_data = or_default(params->timeout_data, SMTPC_TIMEOUT_DATA_DEFAULT);
	c->t_block = or_default(params->timeout_block,
				SMTPC_TIMEOUT_BLOCK_DEFAULT);
	c->t_dot = or_default(params->timeout_dot, SMTPC_TIMEOUT_DOT_DEFAULT);
	c->tls = params->tls;
	if (params->auth_user != NULL) {
		c->auth_user = xstrdup(params->auth_user);
		c->auth_password = xstrdup(params->auth_password != NULL ?
					   params->auth_password : "");
	}
	c->state = SMTPC_ST_GREETING;
	/* a line and the text are parts of one reply: reply_max bounds both */
	buf_init(&c->line, c->reply_max);
	buf_init(&c->text, c->reply_max);
	/* commands are our own bytes, as many as the caller's transaction
	 * and body chunks; the caller drains the buffer every turn */
	buf_init(&c->out, 0);
	return c;
}

void
smtpc_free(struct smtpc **cp)
{
	struct smtpc *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	smtpc_tx_clear(c);
	smtpc_auth_forget(c);
	if (c->out_secret && c->out.p != NULL)
		explicit_bzero(c->out.p, c->out.cap);
	buf_clear(&c->line);
	buf_clear(&c->text);
	buf_clear(&c->out);
	free(c->q);
	free(c->helo_name);
	free(c);
}

struct buf *
smtpc_out(struct smtpc *c)
{
	return &c->out;
}

unsigned
smtpc_extensions(const struct smtpc *c)
{
	return c->ext;
}

uint64_t
smtpc_size_max(const struct smtpc *c)
{
	return c->size_max;
}

bool
smtpc_tls_active(const struct smtpc *c)
{
	return c->tls_on;
}

const char *
smtpc_auth_used(const struct smtpc *c)
{
	return c->auth_used;
}

unsigned
smtpc_auth_offered(const struct smtpc *c)
{
	return c->auth_mechs;
}

void
smtpc_out_str(struct smtpc *c, const char *s)
{
	/* out has no max: the append cannot fail */
	(void)buf_append_str(&c->out, s);
}

/* ------------------------------------------------------------------ */
/* events */

void
smtpc_ev_push(struct smtpc *c, enum smtpc_event_kind kind, size_t rcpt,
	      bool with_reply)
{
	struct smtpc_qev *q;

	if (c->qhead + c->qlen == c->qcap) {
		/* one RESULT per recipient may wait at once: the queue grows
		 * with the caller's transaction, not with peer input */
		size_t cap = c->qcap < 8 ? 8 : c->qcap;

		if (c->qhead > 0) {
			memmove(c->q, c->q + c->qhead, c->qlen * sizeof(*c->q));
			c->qhead = 0;
		}
		if (c->qlen == c->qcap) {
			TN_ASSERT(!__builtin_mul_overflow(cap, 2, &cap));
			c->q = xreallocarray(c->q, cap, sizeof(*c->q));
			c->qcap = cap;
		}
	}
	q = &c->q[c->qhead + c->qlen++];
	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->rcpt = rcpt;
	q->with_reply = with_reply;
}

bool
smtpc_next(struct smtpc *c, struct smtpc_event *ev_r)
{
	const struct smtpc_qev *q;

	memset(ev_r, 0, sizeof(*ev_r));
	ev_r->reply.enhanced = "";
	ev_r->reply.text = "";
	if (c->qlen == 0)
		return false;
	q = &c->q[c->qhead];
	ev_r->kind = q->kind;
	ev_r->rcpt = q->rcpt;
	ev_r->error = q->error;
	ev_r->fail = q->fail;
	if (q->with_reply) {
		/* every event of a turn carries the one reply that ended it */
		TN_ASSERT(c->rp_done);
		ev_r->reply.code = c->code;
		ev_r->reply.enhanced = c->enhanced;
		ev_r->reply.text = (const char *)c->text.p;
	}
	c->qhead++;
	if (--c->qlen == 0)
		c->qhead = 0;
	return true;
}

/* ------------------------------------------------------------------ */
/* stage and timeout */

static const char *
stage_of(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_ST_GREETING:
		return "greeting";
	case SMTPC_ST_EHLO:
		return "EHLO";
	case SMTPC_ST_HELO:
		return "HELO";
	case SMTPC_ST_STARTTLS:
		return "STARTTLS";
	case SMTPC_ST_TLS:
		return "TLS handshake";
	case SMTPC_ST_AUTH:
		return "AUTH";
	case SMTPC_ST_READY:
		return "idle";
	case SMTPC_ST_TX:
		switch (c->step) {
		case SMTPC_STEP_RSET:
			return "RSET";
		case SMTPC_STEP_MAIL:
			return "MAIL FROM";
		case SMTPC_STEP_RCPT:
			return "RCPT TO";
		case SMTPC_STEP_DATA:
			return "DATA";
		}
		break;
	case SMTPC_ST_BODY:
		return "message body";
	case SMTPC_ST_DOT:
		return "end of data";
	case SMTPC_ST_QUIT:
		return "QUIT";
	case SMTPC_ST_FAILED:
	case SMTPC_ST_CLOSED:
		return c->end_stage;
	}
	return "idle";
}

const char *
smtpc_stage(const struct smtpc *c)
{
	return stage_of(c);
}

unsigned
smtpc_timeout(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_ST_GREETING:
		return c->t_greeting;
	case SMTPC_ST_EHLO:
	case SMTPC_ST_HELO:
	case SMTPC_ST_STARTTLS:
	case SMTPC_ST_TLS:
	case SMTPC_ST_AUTH:
	case SMTPC_ST_QUIT:
		/* RFC 5321 §4.5.3.2 names no timeout for these; the MAIL
		 * one is the closest (§4.5.3.2.2). The caller's handshake
		 * is bounded by it too. */
		return c->t_mail;
	case SMTPC_ST_TX:
		switch (c->step) {
		case SMTPC_STEP_RSET:
		case SMTPC_STEP_MAIL:
			return c->t_mail;
		case SMTPC_STEP_RCPT:
			return c->t_rcpt;
		case SMTPC_STEP_DATA:
			return c->t_data;
		}
		break;
	case SMTPC_ST_BODY:
		/* §4.5.3.2.5: each write of a data block */
		return c->t_block;
	case SMTPC_ST_DOT:
		return c->t_dot;
	case SMTPC_ST_READY:
	case SMTPC_ST_FAILED:
	case SMTPC_ST_CLOSED:
		break;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* session */

void
smtpc_fail_as(struct smtpc *c, bool with_reply, enum smtpc_fail fail,
	      const char *error)
{
	c->end_stage = stage_of(c);
	smtpc_ev_push(c, SMTPC_EV_FAILED, 0, with_reply);
	c->q[c->qhead + c->qlen - 1].error = error;
	c->q[c->qhead + c->qlen - 1].fail = fail;
	c->state = SMTPC_ST_FAILED;
	/* the recipients without a RESULT have none: the caller defers */
	smtpc_tx_clear(c);
	smtpc_auth_forget(c);
}

void
smtpc_fail(struct smtpc *c, bool with_reply, const char *error)
{
	smtpc_fail_as(c, with_reply, SMTPC_FAIL_SESSION, error);
}

void
smtpc_ready(struct smtpc *c, bool with_reply)
{
	c->state = SMTPC_ST_READY;
	smtpc_ev_push(c, SMTPC_EV_READY, 0, with_reply);
}

static void
session_close(struct smtpc *c)
{
	c->end_stage = stage_of(c);
	c->state = SMTPC_ST_CLOSED;
	smtpc_tx_clear(c);
}

static void
send_ehlo(struct smtpc *c, const char *verb)
{
	smtpc_out_str(c, verb);
	smtpc_out_str(c, " ");
	smtpc_out_str(c, c->helo_name);
	smtpc_out_str(c, "\r\n");
}

void
smtpc_ehlo_keyword(struct smtpc *c, const char *t, size_t n)
{
	static const struct {
		const char *name;
		unsigned ext;
	} words[] = {
		{ "PIPELINING", SMTPC_EXT_PIPELINING },
		{ "SIZE", SMTPC_EXT_SIZE },
		{ "8BITMIME", SMTPC_EXT_8BITMIME },
		{ "SMTPUTF8", SMTPC_EXT_SMTPUTF8 },
		{ "DSN", SMTPC_EXT_DSN },
		{ "ENHANCEDSTATUSCODES", SMTPC_EXT_ENHANCED },
		{ "STARTTLS", SMTPC_EXT_STARTTLS },
		{ "CHUNKING", SMTPC_EXT_CHUNKING },
		{ "AUTH", SMTPC_EXT_AUTH },
	};
	size_t k = 0;

	/* RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ) */
	while (k < n && t[k] != ' ' && t[k] != '=')
		k++;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		const char *w = words[i].name;

		if (strlen(w) != k || ascii_strncasecmp(t, w, k) != 0)
			continue;
		/* "AUTH=LOGIN" is the pre-standard form of AUTH */
		if (k < n && t[k] == '=' && words[i].ext != SMTPC_EXT_AUTH)
			return;
		c->ext_new |= words[i].ext;
		/* RFC 4954 §3: "AUTH" SP mechanism *(SP mechanism) */
		if (words[i].ext == SMTPC_EXT_AUTH && k < n)
			c->auth_new |= smtpc_auth_parse(t + k + 1, n - k - 1);
		if (words[i].ext == SMTPC_EXT_SIZE) {
			char num[24];
			size_t d = n - k;
			uint64_t v = 0;

			/* RFC 1870 §4: "SIZE" [SP 1*20DIGIT]; none or 0 means
			 * no fixed limit, and so does a value we cannot read */
			if (d > 1 && d - 1 < sizeof(num)) {
				memcpy(num, t + k + 1, d - 1);
				num[d - 1] = '\0';
				if (parse_u64(num, &v) < 0)
					v = 0;
			}
			c->size_new = v;
		}
		return;
	}
}

/*
 * EHLO or HELO was answered, or STARTTLS was refused (with_reply false):
 * STARTTLS, AUTH or READY, as the parameters ask.
 */
static void
opening_next(struct smtpc *c, bool with_reply)
{
	if (!c->tls_on && !c->tls_tried && c->tls != SMTPC_TLS_NONE) {
		/* RFC 3207 §4: only to a server that offers it (after HELO
		 * nothing is offered) */
		if (c->ext & SMTPC_EXT_STARTTLS) {
			c->tls_tried = true;
			smtpc_out_str(c, "STARTTLS\r\n");
			c->state = SMTPC_ST_STARTTLS;
			return;
		}
		if (c->tls == SMTPC_TLS_REQUIRE) {
			smtpc_fail_as(c, false, SMTPC_FAIL_TLS,
				      "TLS is required and the server does "
				      "not offer STARTTLS");
			return;
		}
	}
	if (c->auth_user != NULL) {
		smtpc_auth_start(c);
		return;
	}
	smtpc_ready(c, with_reply);
}

static void
starttls_reply(struct smtpc *c)
{
	/* RFC 3207 §4: "220 Ready to start TLS"; 454 (or a 5xx) refuses */
	if (c->code == 220) {
		c->state = SMTPC_ST_TLS;
		smtpc_ev_push(c, SMTPC_EV_STARTTLS, 0, true);
		return;
	}
	if (c->tls == SMTPC_TLS_REQUIRE) {
		smtpc_fail_as(c, true, SMTPC_FAIL_TLS, "STARTTLS refused");
		return;
	}
	/* opportunistic TLS (RFC 7435): on in the clear. The session is as
	 * it was before STARTTLS (RFC 3207 §4), the first EHLO stands. */
	opening_next(c, false);
}

void
smtpc_tls_started(struct smtpc *c)
{
	if (c->state == SMTPC_ST_FAILED || c->state == SMTPC_ST_CLOSED)
		return;
	TN_ASSERT(c->state == SMTPC_ST_TLS);
	c->tls_on = true;
	/* RFC 3207 §4.2: the client MUST discard any knowledge obtained from
	 * the server before TLS, and should send EHLO first */
	c->ext = 0;
	c->size_max = 0;
	c->auth_mechs = 0;
	c->state = SMTPC_ST_EHLO;
	c->ext_new = 0;
	c->size_new = 0;
	c->auth_new = 0;
	send_ehlo(c, "EHLO");
}

static void
hello_reply(struct smtpc *c)
{
	unsigned cls = c->code / 100;

	if (cls == 2) {
		if (c->state == SMTPC_ST_EHLO) {
			c->ext = c->ext_new;
			c->size_max = c->size_new;
			c->auth_mechs = c->auth_new;
		}
		opening_next(c, true);
		return;
	}
	if (c->state == SMTPC_ST_EHLO && cls == 5) {
		/* RFC 5321 §4.1.4, §3.2: a server that does not know EHLO
		 * (500, 502, 504, 550...) gets HELO */
		c->state = SMTPC_ST_HELO;
		send_ehlo(c, "HELO");
		return;
	}
	smtpc_fail(c, true, c->state == SMTPC_ST_EHLO ? "EHLO refused" :
						     "HELO refused");
}

/* a whole reply was read */
static void
on_reply(struct smtpc *c)
{
	if (c->state == SMTPC_ST_QUIT) {
		/* RFC 5321 §4.1.1.10: 221, but whatever comes, we are done */
		session_close(c);
		return;
	}
	/* RFC 5321 §3.8: 421 at any point means the server is closing */
	if (c->code == 421) {
		smtpc_fail(c, true, "server is closing the session");
		return;
	}
	switch (c->state) {
	case SMTPC_ST_GREETING:
		/* RFC 5321 §3.1: 554 (or anything but 2xx) refuses us */
		if (c->code / 100 != 2) {
			smtpc_fail(c, true, "greeting refused");
			return;
		}
		c->state = SMTPC_ST_EHLO;
		c->ext_new = 0;
		c->size_new = 0;
		c->auth_new = 0;
		send_ehlo(c, "EHLO");
		return;
	case SMTPC_ST_EHLO:
	case SMTPC_ST_HELO:
		hello_reply(c);
		return;
	case SMTPC_ST_STARTTLS:
		starttls_reply(c);
		return;
	case SMTPC_ST_TLS:
		/* the caller feeds nothing between the 220 and the end of
		 * the handshake; whatever came was sent in the clear and
		 * could be an attacker's (RFC 3207 §4.2) */
		smtpc_fail(c, true, "reply before TLS was started");
		return;
	case SMTPC_ST_AUTH:
		smtpc_auth_reply(c);
		return;
	case SMTPC_ST_TX:
		smtpc_tx_reply(c);
		return;
	case SMTPC_ST_DOT:
		smtpc_dot_reply(c);
		return;
	case SMTPC_ST_READY:
	case SMTPC_ST_BODY:
		/* nothing was asked: the server is not following the
		 * conversation */
		smtpc_fail(c, true, "unexpected reply");
		return;
	case SMTPC_ST_QUIT:
	case SMTPC_ST_FAILED:
	case SMTPC_ST_CLOSED:
		break;
	}
}

/*
 * Starts a turn: the caller is done with the events of the last one, so
 * the memory behind their pointers can be reused or released. Idle
 * sessions keep only small buffers.
 */
static void
turn_begin(struct smtpc *c)
{
	bool mid_reply = !c->rp_done && (c->rp_lines > 0 || c->line.len > 0);

	c->qhead = 0;
	/* the credentials the last turn sent are written by now */
	if (c->out_secret && c->out.len == 0) {
		if (c->out.p != NULL)
			explicit_bzero(c->out.p, c->out.cap);
		c->out_secret = false;
	}
	if (!mid_reply) {
		smtpc_reply_reset(c);
		if (c->line.cap > SMTPC_IDLE_KEEP)
			buf_release(&c->line);
		if (c->text.cap > SMTPC_IDLE_KEEP)
			buf_release(&c->text);
	}
	if (c->out.len == 0 && c->out.cap > SMTPC_IDLE_KEEP)
		buf_release(&c->out);
}

static bool
over(const struct smtpc *c)
{
	return c->state == SMTPC_ST_FAILED || c->state == SMTPC_ST_CLOSED;
}

int
smtpc_feed(struct smtpc *c, const uint8_t *p, size_t n, size_t *used_r)
{
	size_t i = 0;

	*used_r = 0;
	if (over(c))
		return -1;
	if (c->qlen > 0)
		return 1;
	turn_begin(c);
	/* one reply at most gives events: the turn stops there, so every
	 * event of the turn refers to that reply */
	while (i < n && c->qlen == 0 && !over(c)) {
		enum smtpc_rp rp;
		const char *error = NULL;

		/* the lines after the first of the EHLO reply list the
		 * extensions; the state cannot change within a reply */
		c->rp_keywords = c->state == SMTPC_ST_EHLO;
		i += smtpc_reply_feed(c, p + i, n - i, &rp, &error);
		if (rp == SMTPC_RP_DONE) {
			on_reply(c);
		} else if (rp == SMTPC_RP_ERROR) {
			if (c->state == SMTPC_ST_QUIT)
				session_close(c);
			else
				smtpc_fail(c, false, error);
		}
	}
	*used_r = i;
	if (over(c))
		return -1;
	return c->qlen > 0 ? 1 : 0;
}

void
smtpc_quit(struct smtpc *c)
{
	if (over(c))
		return;
	TN_ASSERT(c->state == SMTPC_ST_READY);
	smtpc_out_str(c, "QUIT\r\n");
	c->state = SMTPC_ST_QUIT;
}

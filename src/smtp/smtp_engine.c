/* SPDX-License-Identifier: MIT */
/*
 * smtp_engine: the ESMTP server engine's life cycle, input loop, command
 * line reader and event queue. Bytes come in through smtp_engine_feed();
 * replies go to an output buffer and decisions go out as events. It never
 * does I/O, reads a clock or looks at the environment.
 *
 * Input discipline (the defence against SMTP smuggling): a command line
 * ends only at CRLF. A bare CR or LF or a NUL makes the whole line, up to
 * its CRLF, one refused command, and a line longer than 512 octets gets one
 * refusal and is skipped to its CRLF: no part of it is ever run. Only an
 * AUTH command that would be taken, and a response inside an AUTH
 * exchange, may be longer (RFC 4954 §4: 12,288 octets); such a line goes
 * on in a heap buffer that lives only while it is read.
 *
 * After STARTTLS is accepted nothing more is consumed, so the octets a
 * client pipelined after it (RFC 3207 §4.2) can never run as commands.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_int.h"

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* "PLAIN LOGIN": each mechanism NUL-terminated in e->mechs, and the
 * EHLO keyword "AUTH PLAIN LOGIN" (RFC 4954 §3) */
static void
mechs_init(struct smtp_engine *e, const char *list)
{
	struct buf kw;
	size_t n, len = 0;

	if (list == NULL)
		return;
	n = strlen(list);
	e->mechs = xmalloc(n + 1);
	buf_init(&kw, 0);
	(void)buf_append_str(&kw, "AUTH");
	for (size_t i = 0; i < n;) {
		size_t start;
		if (is_space(list[i])) {
			i++;
			continue;
		}
		start = len;
		for (; i < n && !is_space(list[i]); i++) {
			unsigned char c = (unsigned char)list[i];
			/* the names go into reply lines */
			e->mechs[len++] = c > 32 && c < 127 ? (char)c : '?';
		}
		e->mechs[len++] = '\0';
		(void)buf_append_str(&kw, " ");
		(void)buf_append_str(&kw, e->mechs + start);
		e->nmechs++;
	}
	if (e->nmechs == 0) {
		free(e->mechs);
		e->mechs = NULL;
		buf_clear(&kw);
		return;
	}
	e->auth_kw = xstrdup(buf_cstr(&kw));
	buf_clear(&kw);
}

struct smtp_engine *
smtp_engine_new(const struct smtp_params *params)
{
	struct smtp_engine *e = xcalloc(1, sizeof(*e));
	const char *host = params->hostname;

	TN_ASSERT(host != NULL && host[0] != '\0');
	/* RFC 1035 §2.3.4: a name is at most 255 octets; the rest of the
	 * replies assume it (a 421 line must fit 512 octets) */
	e->hostname = xstrdup_printable(host, 255);
	/* zero means "the default" for each limit */
	e->size_max = params->size_max != 0 ? params->size_max :
		      SMTP_SIZE_MAX_DEFAULT;
	e->rcpt_max = params->rcpt_max != 0 ? params->rcpt_max :
		      SMTP_RCPT_MAX_DEFAULT;
	e->errors_max = params->errors_max != 0 ? params->errors_max :
			SMTP_ERRORS_MAX_DEFAULT;
	e->vrfy_enabled = params->vrfy_enabled;
	e->expn_enabled = params->expn_enabled;
	e->junk_max = params->junk_max != 0 ? params->junk_max :
		      SMTP_JUNK_MAX_DEFAULT;
	e->starttls = params->starttls;
	e->tls = params->tls;
	mechs_init(e, params->auth_mechs);
	e->auth_clear = params->auth_clear;
	e->auth_required = params->auth_required;
	e->auth_failures_max = params->auth_failures_max != 0 ?
			       params->auth_failures_max :
			       SMTP_AUTH_FAILURES_MAX_DEFAULT;
	e->state = SMTP_ST_INIT;
	e->in = SMTP_IN_LINE;
	e->wait = SMTP_EV_NONE;
	buf_init(&e->out, SMTP_OUT_MAX);
	buf_init(&e->evstr, 0);
	buf_init(&e->chunk, 0);
	buf_init(&e->big, SMTP_AUTH_TEXT_MAX);
	return e;
}

/* AUTH data may sit in these: wipe it before the memory goes */
static void
wipe_secrets(struct smtp_engine *e)
{
	if (e->secret && e->evstr.p != NULL)
		explicit_bzero(e->evstr.p, e->evstr.len);
	e->secret = false;
}

/* the heap buffer of a long AUTH line: wiped and released */
static void
big_release(struct smtp_engine *e)
{
	if (e->big.p != NULL)
		explicit_bzero(e->big.p, e->big.cap);
	buf_release(&e->big);
	e->line_big = false;
}

void
smtp_engine_free(struct smtp_engine **ep)
{
	struct smtp_engine *e = *ep;

	if (e == NULL)
		return;
	*ep = NULL;
	wipe_secrets(e);
	explicit_bzero(e->line, sizeof(e->line));
	big_release(e);
	buf_clear(&e->big);
	buf_clear(&e->out);
	buf_clear(&e->evstr);
	buf_clear(&e->chunk);
	free(e->mechs);
	free(e->auth_kw);
	free(e->helo);
	free(e->helo_old);
	free(e->hostname);
	free(e);
}

void
smtp_engine_greet(struct smtp_engine *e)
{
	/* RFC 2034 §4: no enhanced status code in the greeting */
	smtp_replyf(e, 220, NULL, "%s ESMTP tern", e->hostname);
}

struct buf *
smtp_engine_out(struct smtp_engine *e)
{
	return &e->out;
}

bool
smtp_engine_waiting(const struct smtp_engine *e)
{
	return e->wait != SMTP_EV_NONE;
}

enum smtp_phase
smtp_engine_phase(const struct smtp_engine *e)
{
	if (e->closed)
		return SMTP_PHASE_CLOSED;
	if (e->in != SMTP_IN_LINE)
		return SMTP_PHASE_DATA;
	return SMTP_PHASE_COMMAND;
}

void
smtp_close(struct smtp_engine *e)
{
	bool exchange = e->auth_open || e->wait == SMTP_EV_AUTH;

	e->closed = true;
	e->wait = SMTP_EV_NONE;
	e->tls_wait = false;
	/* the caller holds state for an open AUTH exchange: tell it to
	 * drop that. No path queues more than three events before this
	 * one (AUTH_ABORT, ERROR, 421 ERROR end the exchange first), so
	 * the test is a guard only. */
	if (exchange && e->qhead + e->qlen < SMTP_EVQ_MAX)
		smtp_auth_abort(e);
	e->auth_open = false;
}

void
smtp_engine_timeout(struct smtp_engine *e)
{
	smtp_close_421(e, "4.4.2", "Timeout, closing");
}

void
smtp_engine_shutdown(struct smtp_engine *e)
{
	smtp_close_421(e, "4.3.2", "Service shutting down");
}

void
smtp_engine_tls_started(struct smtp_engine *e)
{
	if (e->closed)
		return;
	TN_ASSERT(e->tls_wait);
	e->tls_wait = false;
	e->tls = true;
	/* RFC 3207 §4.2: "the server MUST discard any knowledge obtained
	 * from the client, such as the argument to the EHLO command". No
	 * transaction is open (STARTTLS is refused inside one) and no AUTH
	 * exchange either. */
	smtp_tx_reset(e);
	e->state = SMTP_ST_INIT;
	free(e->helo_old);
	e->helo_old = e->helo;    /* freed at the next turn */
	e->helo = NULL;
	e->esmtp = false;
	e->authed = false;
	e->auth_open = false;
	e->auth_mech = NULL;
	e->auth_step = 0;
	e->bdat_failed = false;
	e->line_len = 0;
	e->line_cr = false;
	e->line_bare = false;
	e->line_nul = false;
	e->line_long = false;
	big_release(e);
}

bool
smtp_engine_authenticated(const struct smtp_engine *e)
{
	return e->authed;
}

uint64_t
smtp_engine_commands(const struct smtp_engine *e)
{
	return e->commands;
}

void
smtp_tx_reset(struct smtp_engine *e)
{
	if (e->state == SMTP_ST_MAIL)
		e->state = SMTP_ST_READY;
	e->tx_utf8 = false;
	e->rcpt_cmds = 0;
	e->rcpt_ok = 0;
	e->bdat_open = false;
	e->in = SMTP_IN_LINE;
	e->bad = SMTP_BAD_NONE;
	e->body_cr = false;
	e->body_size = 0;
	/* the chunk buffer may still back a queued event: it is released
	 * at the start of the next turn */
}

/* ------------------------------------------------------------------ */
/* events */

struct smtp_qev *
smtp_ev_push(struct smtp_engine *e, enum smtp_event_kind kind)
{
	struct smtp_qev *q;

	TN_ASSERT(e->qhead + e->qlen < SMTP_EVQ_MAX);
	q = &e->q[e->qhead + e->qlen++];
	memset(q, 0, sizeof(*q));
	q->ev.kind = kind;
	q->ev.helo_name = e->helo;
	q->ev.esmtp = e->esmtp;
	q->address = SMTP_NOSTR;
	q->envid = SMTP_NOSTR;
	q->orcpt = SMTP_NOSTR;
	q->reply = SMTP_NOSTR;
	q->data = SMTP_NOSTR;
	return q;
}

struct smtp_qev *
smtp_ev_wait(struct smtp_engine *e, enum smtp_event_kind kind)
{
	TN_ASSERT(e->wait == SMTP_EV_NONE);
	e->wait = kind;
	return smtp_ev_push(e, kind);
}

size_t
smtp_ev_str(struct smtp_engine *e, const char *s, size_t n)
{
	size_t off = e->evstr.len;

	/* evstr has no max: it holds a few copies of one command line */
	(void)buf_append(&e->evstr, s, n);
	(void)buf_append(&e->evstr, "", 1);
	return off;
}

static const char *
ev_str(const struct smtp_engine *e, size_t off)
{
	return off == SMTP_NOSTR ? NULL : (const char *)e->evstr.p + off;
}

bool
smtp_engine_next(struct smtp_engine *e, struct smtp_event *ev_r)
{
	const struct smtp_qev *q;

	if (e->qlen == 0) {
		memset(ev_r, 0, sizeof(*ev_r));
		return false;
	}
	q = &e->q[e->qhead];
	*ev_r = q->ev;
	ev_r->address = ev_str(e, q->address);
	ev_r->mail.envid = ev_str(e, q->envid);
	ev_r->rcpt.orcpt = ev_str(e, q->orcpt);
	ev_r->reply = ev_str(e, q->reply);
	if (q->data != SMTP_NOSTR)
		ev_r->data = e->evstr.p + q->data;
	e->qhead++;
	if (--e->qlen == 0)
		e->qhead = 0;
	return true;
}

/*
 * Starts a turn: the caller is done with the events of the last one, so
 * the memory behind their pointers can be reused or released. Idle
 * sessions keep only small buffers.
 */
static void
turn_begin(struct smtp_engine *e)
{
	wipe_secrets(e);
	buf_reset(&e->evstr);
	if (e->evstr.cap > SMTP_IDLE_KEEP)
		buf_release(&e->evstr);
	buf_reset(&e->chunk);
	if (e->in == SMTP_IN_LINE && e->chunk.cap > 0)
		buf_release(&e->chunk);
	if (e->out.len == 0 && e->out.cap > SMTP_IDLE_KEEP)
		buf_release(&e->out);
	free(e->helo_old);
	e->helo_old = NULL;
}

/* ------------------------------------------------------------------ */
/* command lines */

/* the line may hold AUTH data */
static bool
line_secret(const struct smtp_engine *e, bool in_auth)
{
	return in_auth || e->line_big ||
	       (e->line_len >= 4 && ascii_strncasecmp(e->line, "AUTH", 4) == 0);
}

static void
line_end(struct smtp_engine *e)
{
	bool is_long = e->line_long, bare = e->line_bare, nul = e->line_nul;
	bool in_auth = e->auth_open, secret = line_secret(e, in_auth);
	size_t n = e->line_len;
	char *text = e->line;

	e->commands++;
	e->line_len = 0;
	e->line_long = false;
	e->line_bare = false;
	e->line_nul = false;
	if (is_long) {
		/* refused when it passed the limit */
	} else if (bare || nul) {
		/* a response that cannot be one ends the exchange */
		if (in_auth)
			smtp_auth_abort(e);
		smtp_refusef(e, 500, "5.5.2", true, bare ?
			     "Bare CR or LF not allowed in command" :
			     "NUL not allowed in command");
	} else {
		if (e->line_big) {
			(void)buf_cstr(&e->big);
			text = (char *)e->big.p;
			n = e->big.len;
		} else {
			text[n] = '\0';
		}
		if (in_auth)
			smtp_auth_response(e, text, n);
		else
			smtp_cmd_run(e, text, n);
	}
	if (secret)
		explicit_bzero(e->line, sizeof(e->line));
	big_release(e);
}

/* the line passed 512 octets: an AUTH line may go on (RFC 4954 §4) */
static bool
line_may_grow(const struct smtp_engine *e)
{
	if (e->auth_open)
		return true;
	return ascii_strncasecmp(e->line, "AUTH ", 5) == 0 &&
	       smtp_auth_usable(e);
}

static void
line_too_long(struct smtp_engine *e)
{
	e->line_long = true;
	if (e->line_big) {
		/* RFC 4954 §4: "the server fails the AUTH command with the
		 * 500 reply", enhanced code 5.5.6 */
		big_release(e);
		explicit_bzero(e->line, sizeof(e->line));
		if (e->auth_open)
			smtp_auth_abort(e);
		smtp_refusef(e, 500, "5.5.6", true,
			     "Authentication Exchange line is too long");
		return;
	}
	/* RFC 5321 §4.5.3.1.4: 512 octets with CRLF; one refusal, then the
	 * rest of the line is skipped */
	smtp_refusef(e, 500, "5.5.2", true, "Line too long");
}

/* one octet of a command line other than its closing CRLF */
static void
line_put(struct smtp_engine *e, uint8_t c)
{
	if (e->line_long)
		return;
	if (e->line_big) {
		if (buf_append(&e->big, &c, 1) < 0)
			line_too_long(e);
		return;
	}
	if (e->line_len == SMTP_CMD_TEXT_MAX) {
		if (!line_may_grow(e)) {
			line_too_long(e);
			return;
		}
		/* 511 octets fit the big buffer's max of 12,286 */
		int r = buf_append(&e->big, e->line, e->line_len);
		r |= buf_append(&e->big, &c, 1);
		TN_ASSERT(r == 0);
		e->line_big = true;
		return;
	}
	e->line[e->line_len++] = (char)c;
}

/* reads command line octets; returns the octets used */
static size_t
line_feed(struct smtp_engine *e, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i++];

		if (e->line_cr) {
			e->line_cr = false;
			if (c == '\n') {
				line_end(e);
				return i;
			}
			/* RFC 5321 §2.3.8: CR only before LF */
			e->line_bare = true;
			line_put(e, '\r');
		}
		if (c == '\r') {
			e->line_cr = true;
			continue;
		}
		if (c == '\n')
			e->line_bare = true;
		else if (c == '\0')
			e->line_nul = true;
		line_put(e, c);
		/* a refusal for a long line is an event: stop there */
		if (e->qlen > 0)
			return i;
	}
	return i;
}

/* ------------------------------------------------------------------ */
/* the input loop */

static size_t
run(struct smtp_engine *e, const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (;;) {
		if (e->closed || e->wait != SMTP_EV_NONE || e->qlen > 0 ||
		    e->tls_wait)
			break;
		/* a chunk read in full needs no more input (BDAT 0) */
		if (e->in == SMTP_IN_BDAT && e->bdat_left == 0) {
			smtp_bdat_done(e);
			continue;
		}
		if (i == n)
			break;
		switch (e->in) {
		case SMTP_IN_LINE:
			i += line_feed(e, p + i, n - i);
			break;
		case SMTP_IN_DATA:
			i += smtp_data_feed(e, p + i, n - i);
			break;
		case SMTP_IN_BDAT:
			i += smtp_bdat_feed(e, p + i, n - i);
			break;
		}
	}
	/* body octets read so far go out now, not after the next read */
	if (!e->closed && e->qlen == 0)
		smtp_chunk_flush(e);
	return i;
}

int
smtp_engine_feed(struct smtp_engine *e, const uint8_t *p, size_t n,
		 size_t *used_r)
{
	*used_r = 0;
	if (e->closed)
		return -1;
	if (e->qlen > 0)
		return 1;
	/* a verdict is awaited, or the TLS handshake: the STARTTLS line
	 * was the last one read */
	if (e->wait != SMTP_EV_NONE || e->tls_wait)
		return 0;
	turn_begin(e);
	*used_r = run(e, p, n);
	if (e->closed)
		return -1;
	return e->qlen > 0 ? 1 : 0;
}

void
smtp_engine_decide(struct smtp_engine *e, const struct smtp_verdict *v)
{
	enum smtp_event_kind kind = e->wait;

	if (kind == SMTP_EV_NONE) {
		/* a timeout or shutdown closed the session meanwhile */
		TN_ASSERT(e->closed);
		return;
	}
	/* the awaited event is the last one queued: it has been taken */
	TN_ASSERT(e->qlen == 0);
	e->wait = SMTP_EV_NONE;
	smtp_cmd_verdict(e, kind, v);
	if (v->close)
		smtp_close(e);
	/* events the verdict queued (a 421 at errors_max or
	 * auth_failures_max, AUTH_ABORT) keep their strings until the
	 * caller has taken them: the next feed() starts the turn */
	if (e->qlen > 0)
		return;
	turn_begin(e);
	/* a BDAT chunk of 0 octets completes without input */
	(void)run(e, NULL, 0);
}

/* SPDX-License-Identifier: MIT */
/*
 * smtp_data: the message body, through DATA (RFC 5321 §4.1.1.4, §4.5.2)
 * or BDAT chunks (RFC 3030). The body is streamed to the caller in
 * SMTP_EV_DATA_CHUNK events of at most SMTP_CHUNK_MAX octets and never
 * held whole. No I/O.
 *
 * A DATA body ends only at CRLF "." CRLF. A bare CR, a bare LF or a NUL
 * anywhere in the body does not end anything: it marks the message bad,
 * the rest is read up to the real end, and the message is refused there.
 * "\n.\r\n" or "\r.\n" inside a body is therefore never an end of data,
 * which is what keeps SMTP smuggling out. The same octets are refused in
 * BDAT chunks, as BINARYMIME is not offered and the message must be text.
 */
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_int.h"

void
smtp_chunk_flush(struct smtp_engine *e)
{
	struct smtp_qev *q;

	if (e->chunk.len == 0)
		return;
	q = smtp_ev_push(e, SMTP_EV_DATA_CHUNK);
	q->ev.data = e->chunk.p;
	q->ev.data_len = e->chunk.len;
}

/* the message will be refused at its end; nothing more goes out */
static void
body_bad(struct smtp_engine *e, enum smtp_bad why)
{
	if (e->bad != SMTP_BAD_NONE)
		return;
	e->bad = why;
	buf_reset(&e->chunk);
}

/* n octets of unstuffed body */
static void
body_put(struct smtp_engine *e, const void *p, size_t n)
{
	if (e->bad != SMTP_BAD_NONE || n == 0)
		return;
	/* RFC 1870 §6.3: a message over the maximum may be refused after
	 * its transfer; counting stops there, so it cannot wrap */
	if (n > e->size_max - e->body_size) {
		body_bad(e, SMTP_BAD_SIZE);
		return;
	}
	e->body_size += n;
	/* the chunk buffer has no max: it is flushed at SMTP_CHUNK_MAX */
	(void)buf_append(&e->chunk, p, n);
}

/* the whole body has been read: refuse it or ask the caller */
static void
body_end(struct smtp_engine *e, bool chunking)
{
	struct smtp_qev *q;

	smtp_chunk_flush(e);
	e->in = SMTP_IN_LINE;
	switch (e->bad) {
	case SMTP_BAD_NONE:
		q = smtp_ev_wait(e, SMTP_EV_DATA_END);
		q->ev.size = e->body_size;
		q->ev.chunking = chunking;
		return;
	case SMTP_BAD_SIZE:
		/* RFC 1870 §6.3, RFC 3463 X.3.4 */
		smtp_reply_event(e, SMTP_EV_DATA_ABORT, 552, "5.3.4",
				 "Message size exceeds fixed maximum "
				 "message size");
		break;
	case SMTP_BAD_CRLF:
		/* RFC 5321 §2.3.8: CR and LF only as CRLF; RFC 3463 X.6.2
		 * is "conversion required and prohibited" */
		smtp_reply_event(e, SMTP_EV_DATA_ABORT, 550, "5.6.2",
				 "Bare CR or LF not allowed in message");
		break;
	case SMTP_BAD_NUL:
		smtp_reply_event(e, SMTP_EV_DATA_ABORT, 550, "5.6.2",
				 "NUL not allowed in message");
		break;
	}
	/* the transaction is over, whatever the outcome */
	smtp_tx_reset(e);
}

void
smtp_data_begin(struct smtp_engine *e, bool chunking)
{
	e->bad = SMTP_BAD_NONE;
	e->body_size = 0;
	e->body_cr = false;
	e->dot = SMTP_DOT_BOL;
	if (chunking) {
		e->bdat_open = true;
		e->bdat_skip = false;
		e->in = SMTP_IN_BDAT;
	} else {
		e->in = SMTP_IN_DATA;
	}
}

/* ------------------------------------------------------------------ */
/* DATA */

void
smtp_cmd_data(struct smtp_engine *e, char *args)
{
	struct smtp_qev *q;

	(void)args;
	/* RFC 3030 §2: DATA and BDAT do not mix in one transaction */
	if (e->bdat_open) {
		smtp_refusef(e, 503, "5.5.1", true, "Error: DATA after BDAT");
		return;
	}
	/* RFC 5321 §3.3: no RCPT at all is a sequence error; RCPTs that
	 * were all refused get 554. The latter is normal in a pipelined
	 * group (RFC 2920 §3.1), so it is not counted as an error. */
	if (e->rcpt_cmds == 0) {
		smtp_refusef(e, 503, "5.5.1", true, "Error: need RCPT command");
		return;
	}
	if (e->rcpt_ok == 0) {
		smtp_refusef(e, 554, "5.5.1", false, "No valid recipients");
		return;
	}
	q = smtp_ev_wait(e, SMTP_EV_DATA_START);
	q->ev.chunking = false;
}

size_t
smtp_data_feed(struct smtp_engine *e, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];

		if (e->chunk.len >= SMTP_CHUNK_MAX) {
			smtp_chunk_flush(e);
			return i;
		}
		switch (e->dot) {
		case SMTP_DOT_BOL:
			if (c == '.') {
				e->dot = SMTP_DOT_DOT;
				i++;
			} else {
				e->dot = SMTP_DOT_MID;
			}
			break;
		case SMTP_DOT_DOT:
			/* RFC 5321 §4.5.2: a line of one "." ends the data;
			 * from any other line the leading "." is dropped */
			if (c == '\r') {
				e->dot = SMTP_DOT_DOTCR;
				i++;
			} else {
				e->dot = SMTP_DOT_MID;
			}
			break;
		case SMTP_DOT_DOTCR:
			if (c == '\n') {
				body_end(e, false);
				return i + 1;
			}
			body_bad(e, SMTP_BAD_CRLF);
			e->dot = SMTP_DOT_MID;
			break;
		case SMTP_DOT_MID: {
			size_t lim = n - i, k = 0;
			if (e->bad == SMTP_BAD_NONE &&
			    lim > SMTP_CHUNK_MAX - e->chunk.len)
				lim = SMTP_CHUNK_MAX - e->chunk.len;
			/* the run up to the first CR, LF or NUL: memchr for
			 * the CR that normally ends the line, then for an LF
			 * or NUL before it (vectorised, rather than a test of
			 * every octet) */
			const uint8_t *q = memchr(p + i, '\r', lim);
			/* UNSAFE: q points into p[i..i+lim) */
			k = q != NULL ? (size_t)(q - (p + i)) : lim;
			q = memchr(p + i, '\n', k);
			if (q != NULL)
				k = (size_t)(q - (p + i));
			q = memchr(p + i, '\0', k);
			if (q != NULL)
				k = (size_t)(q - (p + i));
			if (k > 0) {
				body_put(e, p + i, k);
				i += k;
			} else if (c == '\r') {
				e->dot = SMTP_DOT_CR;
				i++;
			} else {
				/* a bare LF does not end the line: only CRLF
				 * does, so what follows is still inside it */
				body_bad(e, c == '\n' ? SMTP_BAD_CRLF :
					 SMTP_BAD_NUL);
				i++;
			}
			break;
		}
		case SMTP_DOT_CR:
			if (c == '\n') {
				body_put(e, "\r\n", 2);
				e->dot = SMTP_DOT_BOL;
				i++;
			} else {
				body_bad(e, SMTP_BAD_CRLF);
				e->dot = SMTP_DOT_MID;
			}
			break;
		}
	}
	return i;
}

/* ------------------------------------------------------------------ */
/* BDAT */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF (RFC 3030 §3) */
static bool
bdat_args(const char *s, uint64_t *size_r, bool *last_r)
{
	uint64_t size = 0;

	if (!is_digit(*s))
		return false;
	for (; is_digit(*s); s++) {
		if (__builtin_mul_overflow(size, 10, &size) ||
		    __builtin_add_overflow(size, (uint64_t)(*s - '0'), &size))
			return false;
	}
	*last_r = false;
	if (*s == ' ') {
		while (*s == ' ')
			s++;
		if (ascii_strcasecmp(s, "LAST") != 0)
			return false;
		*last_r = true;
	} else if (*s != '\0') {
		return false;
	}
	*size_r = size;
	return true;
}

void
smtp_cmd_bdat(struct smtp_engine *e, char *args)
{
	uint64_t size;
	bool last;
	struct smtp_qev *q;

	if (!bdat_args(args, &size, &last)) {
		char text[SMTP_REPLY_LINE_MAX];
		/* The chunk's length is unknown, so its octets cannot be
		 * told from the commands after it; reading them as commands
		 * would run whatever the message holds. RFC 3030 gives no
		 * way on, so the session ends (RFC 5321 §3.8 allows 421). */
		smtp_refusef(e, 501, "5.5.4", true,
			     "Syntax: BDAT count [LAST]");
		if (e->closed)
			return;
		(void)snprintf(text, sizeof(text),
			       "%s BDAT chunk length unknown, closing",
			       e->hostname);
		smtp_refusef(e, 421, "4.5.0", false, text);
		smtp_close(e);
		return;
	}
	/* RFC 3030 §2: the octets are read whatever the reply */
	e->in = SMTP_IN_BDAT;
	e->bdat_size = size;
	e->bdat_left = size;
	e->bdat_last = last;
	e->bdat_skip = true;

	if (e->bdat_failed) {
		/* RFC 3030 §2: "the receiver SMTP MUST be prepared to accept
		 * and discard additional BDAT chunks already in the pipeline
		 * after the failed BDAT" */
		if (last)
			e->bdat_failed = false;
		smtp_refusef(e, 503, "5.5.1", false,
			     "Error: chunk discarded after failed BDAT");
		return;
	}
	if (e->state != SMTP_ST_MAIL) {
		smtp_refusef(e, 503, "5.5.1", true,
			     e->state == SMTP_ST_INIT ?
			     "Error: send HELO/EHLO first" :
			     "Error: need MAIL command");
		return;
	}
	if (e->rcpt_cmds == 0) {
		smtp_refusef(e, 503, "5.5.1", true, "Error: need RCPT command");
		return;
	}
	if (e->rcpt_ok == 0) {
		/* as for DATA (RFC 5321 §3.3); the chunks after it are
		 * dropped too */
		e->bdat_failed = !last;
		smtp_refusef(e, 554, "5.5.1", false, "No valid recipients");
		return;
	}
	e->bdat_skip = false;
	if (e->bdat_open)
		return;     /* a later chunk: read on */
	/* the first chunk: the caller prepares for the message */
	q = smtp_ev_wait(e, SMTP_EV_DATA_START);
	q->ev.chunking = true;
}

size_t
smtp_bdat_feed(struct smtp_engine *e, const uint8_t *p, size_t n)
{
	size_t take = n;

	if ((uint64_t)take > e->bdat_left)
		take = (size_t)e->bdat_left;
	if (!e->bdat_skip && e->bad == SMTP_BAD_NONE) {
		if (e->chunk.len >= SMTP_CHUNK_MAX) {
			smtp_chunk_flush(e);
			return 0;
		}
		if (take > SMTP_CHUNK_MAX - e->chunk.len)
			take = SMTP_CHUNK_MAX - e->chunk.len;
		for (size_t k = 0; k < take; k++) {
			uint8_t c = p[k];
			/* CR exactly before LF, across chunk borders too */
			if (e->body_cr != (c == '\n')) {
				body_bad(e, SMTP_BAD_CRLF);
				break;
			}
			if (c == '\0') {
				body_bad(e, SMTP_BAD_NUL);
				break;
			}
			e->body_cr = c == '\r';
		}
		body_put(e, p, take);
	}
	e->bdat_left -= take;
	return take;
}

void
smtp_bdat_done(struct smtp_engine *e)
{
	e->in = SMTP_IN_LINE;
	if (e->bdat_skip) {
		e->bdat_skip = false;
		return;
	}
	if (!e->bdat_last) {
		/* the octets go out before the next command can drop them */
		smtp_chunk_flush(e);
		smtp_replyf(e, 250, "2.0.0", "%llu octets received",
			    (unsigned long long)e->bdat_size);
		return;
	}
	/* a message may not end in a bare CR */
	if (e->body_cr)
		body_bad(e, SMTP_BAD_CRLF);
	body_end(e, true);
}

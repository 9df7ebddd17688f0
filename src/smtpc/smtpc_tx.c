/* SPDX-License-Identifier: MIT */
/*
 * smtpc_tx: one mail transaction from the client's side: the MAIL and
 * RCPT commands with their ESMTP parameters, pipelined or one at a time,
 * the matching of replies to recipients, and the body with its line ends
 * and dots made safe for DATA (RFC 5321 §4.5.2). No I/O: commands and
 * body go to the output buffer, outcomes to the event queue.
 */
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

void
smtpc_tx_clear(struct smtpc *c)
{
	free(c->accepted);
	c->accepted = NULL;
	c->naccepted = 0;
	c->tx = NULL;
	c->mail_refused = false;
	c->body_cr = false;
	c->body_bol = true;
}

/* the transaction is over; `early`: it ended before the end of data, so
 * the server may hold part of it and the next one starts with RSET */
static void
tx_done(struct smtpc *c, bool early)
{
	smtpc_tx_clear(c);
	c->need_rset = early;
	c->state = SMTPC_ST_READY;
	smtpc_ev_push(c, SMTPC_EV_TX_DONE, 0, false);
}

/* every accepted recipient gets the reply just read as its RESULT */
static void
result_accepted(struct smtpc *c)
{
	for (size_t i = 0; i < c->tx->nrcpts; i++) {
		if (c->accepted[i])
			smtpc_ev_push(c, SMTPC_EV_RESULT, i, true);
	}
}

/* ------------------------------------------------------------------ */
/* commands */

static void
send_mail(struct smtpc *c)
{
	const struct smtpc_tx *tx = c->tx;
	struct buf *out = &c->out;

	(void)buf_printf(out, "MAIL FROM:<%s>", tx->mail_from);
	/* RFC 1870 §6: the size estimate, when the server takes SIZE */
	if (c->ext & SMTPC_EXT_SIZE)
		(void)buf_printf(out, " SIZE=%llu",
				 (unsigned long long)tx->size);
	/* RFC 6152 §3: BODY= only to a server that offers 8BITMIME */
	if (c->ext & SMTPC_EXT_8BITMIME) {
		if (tx->body == SMTPC_BODY_8BITMIME)
			smtpc_out_str(c, " BODY=8BITMIME");
		else if (tx->body == SMTPC_BODY_7BIT)
			smtpc_out_str(c, " BODY=7BIT");
	}
	/* begin() made sure the server offers SMTPUTF8 (RFC 6531 §3.4) */
	if (tx->smtputf8)
		smtpc_out_str(c, " SMTPUTF8");
	/* RFC 3461 §4: DSN parameters only to a server that offers DSN */
	if (c->ext & SMTPC_EXT_DSN) {
		if (tx->ret == SMTPC_RET_FULL)
			smtpc_out_str(c, " RET=FULL");
		else if (tx->ret == SMTPC_RET_HDRS)
			smtpc_out_str(c, " RET=HDRS");
		if (tx->envid != NULL)
			(void)buf_printf(out, " ENVID=%s", tx->envid);
	}
	smtpc_out_str(c, "\r\n");
}

static void
send_rcpt(struct smtpc *c, size_t i)
{
	const struct smtpc_rcpt *r = &c->tx->rcpts[i];
	struct buf *out = &c->out;

	(void)buf_printf(out, "RCPT TO:<%s>", r->address);
	if (c->ext & SMTPC_EXT_DSN) {
		/* RFC 3461 §4.1: NEVER alone, or a list of the others */
		if (r->notify & SMTPC_NOTIFY_NEVER) {
			smtpc_out_str(c, " NOTIFY=NEVER");
		} else if (r->notify != 0) {
			static const struct {
				unsigned bit;
				const char *name;
			} kw[] = {
				{ SMTPC_NOTIFY_SUCCESS, "SUCCESS" },
				{ SMTPC_NOTIFY_FAILURE, "FAILURE" },
				{ SMTPC_NOTIFY_DELAY, "DELAY" },
			};
			const char *sep = " NOTIFY=";

			for (size_t k = 0; k < sizeof(kw) / sizeof(kw[0]); k++) {
				if (!(r->notify & kw[k].bit))
					continue;
				smtpc_out_str(c, sep);
				smtpc_out_str(c, kw[k].name);
				sep = ",";
			}
		}
		if (r->orcpt != NULL)
			(void)buf_printf(out, " ORCPT=%s", r->orcpt);
	}
	smtpc_out_str(c, "\r\n");
}

/* bytes that would end or split a command line never go out: an address
 * may hold spaces (a quoted local part) or UTF-8, a parameter value may
 * hold UTF-8 (RFC 6533) but no space */
static bool
clean(const char *s, bool param)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 32 || ch == 127 || (param && ch == ' '))
			return false;
	}
	return true;
}

static bool
tx_clean(const struct smtpc_tx *tx)
{
	if (!clean(tx->mail_from, false))
		return false;
	if (tx->envid != NULL && !clean(tx->envid, true))
		return false;
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct smtpc_rcpt *r = &tx->rcpts[i];

		if (!clean(r->address, false))
			return false;
		if (r->orcpt != NULL && !clean(r->orcpt, true))
			return false;
	}
	return true;
}

int
smtpc_begin(struct smtpc *c, const struct smtpc_tx *tx, const char **error_r)
{
	if (c->state == SMTPC_ST_FAILED || c->state == SMTPC_ST_CLOSED) {
		*error_r = "the session is over";
		return -1;
	}
	TN_ASSERT(c->state == SMTPC_ST_READY);
	TN_ASSERT(tx->mail_from != NULL && tx->rcpts != NULL);
	TN_ASSERT(tx->nrcpts >= 1);
	/* RFC 6152 §3: no 8-bit content to a server without 8BITMIME; we
	 * do not downgrade, the caller bounces (5.6.3) */
	if (tx->body == SMTPC_BODY_8BITMIME && !(c->ext & SMTPC_EXT_8BITMIME)) {
		*error_r = "message has 8-bit content and the server does "
			   "not offer 8BITMIME";
		return -1;
	}
	/* RFC 6531 §3.4: nor an internationalised message without SMTPUTF8 */
	if (tx->smtputf8 && !(c->ext & SMTPC_EXT_SMTPUTF8)) {
		*error_r = "message needs SMTPUTF8 and the server does not "
			   "offer it";
		return -1;
	}
	/* RFC 1870 §6: no message the server said it will not take */
	if ((c->ext & SMTPC_EXT_SIZE) && c->size_max != 0 &&
	    tx->size > c->size_max) {
		*error_r = "message is larger than the server's SIZE limit";
		return -1;
	}
	if (!tx_clean(tx)) {
		*error_r = "address or parameter has a control character";
		return -1;
	}
	c->tx = tx;
	c->accepted = xcalloc(tx->nrcpts, sizeof(*c->accepted));
	c->naccepted = 0;
	c->mail_refused = false;
	c->pipe = (c->ext & SMTPC_EXT_PIPELINING) != 0;
	c->state = SMTPC_ST_TX;
	c->rcpt = 0;
	/* RFC 5321 §4.1.1.5: RSET clears what the last transaction left */
	c->step = c->need_rset ? SMTPC_STEP_RSET : SMTPC_STEP_MAIL;
	c->need_rset = false;
	if (c->step == SMTPC_STEP_RSET)
		smtpc_out_str(c, "RSET\r\n");
	if (!c->pipe) {
		if (c->step == SMTPC_STEP_MAIL)
			send_mail(c);
		return 0;
	}
	/* RFC 2920 §3.1: RSET, MAIL and RCPT may go anywhere in a group,
	 * DATA ends it; the whole group is one write */
	send_mail(c);
	for (size_t i = 0; i < tx->nrcpts; i++)
		send_rcpt(c, i);
	smtpc_out_str(c, "DATA\r\n");
	return 0;
}

/* ------------------------------------------------------------------ */
/* replies */

/* the reply to the last RCPT was read: DATA, or the end when nobody was
 * accepted (RFC 5321 §3.3: no DATA without a valid recipient) */
static void
rcpts_done(struct smtpc *c)
{
	c->step = SMTPC_STEP_DATA;
	if (c->pipe)
		return;
	if (c->naccepted == 0) {
		tx_done(c, true);
		return;
	}
	smtpc_out_str(c, "DATA\r\n");
}

static void
mail_reply(struct smtpc *c, unsigned cls)
{
	if (cls == 4 || cls == 5) {
		/* every recipient shares the sender's fate */
		c->mail_refused = true;
		for (size_t i = 0; i < c->tx->nrcpts; i++)
			smtpc_ev_push(c, SMTPC_EV_RESULT, i, true);
		if (!c->pipe) {
			tx_done(c, true);
			return;
		}
	} else if (cls != 2) {
		smtpc_fail(c, true, "unexpected reply to MAIL FROM");
		return;
	}
	c->step = SMTPC_STEP_RCPT;
	c->rcpt = 0;
	if (!c->pipe)
		send_rcpt(c, 0);
}

static void
rcpt_reply(struct smtpc *c, unsigned cls)
{
	/* after a refused MAIL the pipelined RCPTs get 503s: skipped */
	if (!c->mail_refused) {
		if (cls == 2) {
			c->accepted[c->rcpt] = true;
			c->naccepted++;
		} else if (cls == 4 || cls == 5) {
			smtpc_ev_push(c, SMTPC_EV_RESULT, c->rcpt, true);
		} else {
			smtpc_fail(c, true, "unexpected reply to RCPT TO");
			return;
		}
	}
	if (++c->rcpt < c->tx->nrcpts) {
		if (!c->pipe)
			send_rcpt(c, c->rcpt);
		return;
	}
	rcpts_done(c);
}

static void
data_reply(struct smtpc *c, unsigned cls)
{
	if (c->naccepted == 0) {
		/* only when pipelined: RFC 2920 §3.1 has the server refuse
		 * DATA (503, 554) when no RCPT succeeded. One that says 354
		 * would take an empty message: end the session instead,
		 * since every recipient has its RESULT already */
		if (cls == 3) {
			smtpc_fail(c, true, "DATA accepted without recipients");
			return;
		}
		tx_done(c, true);
		return;
	}
	if (cls == 3) {
		c->state = SMTPC_ST_BODY;
		c->body_bol = true;
		c->body_cr = false;
		smtpc_ev_push(c, SMTPC_EV_BODY, 0, true);
		return;
	}
	if (cls == 4 || cls == 5) {
		result_accepted(c);
		tx_done(c, true);
		return;
	}
	/* a 2xx here would read as delivered: it is not SMTP */
	smtpc_fail(c, true, "unexpected reply to DATA");
}

void
smtpc_tx_reply(struct smtpc *c)
{
	unsigned cls = c->code / 100;

	switch (c->step) {
	case SMTPC_STEP_RSET:
		if (cls != 2) {
			smtpc_fail(c, true, "RSET refused");
			return;
		}
		c->step = SMTPC_STEP_MAIL;
		if (!c->pipe)
			send_mail(c);
		return;
	case SMTPC_STEP_MAIL:
		mail_reply(c, cls);
		return;
	case SMTPC_STEP_RCPT:
		rcpt_reply(c, cls);
		return;
	case SMTPC_STEP_DATA:
		data_reply(c, cls);
		return;
	}
}

void
smtpc_dot_reply(struct smtpc *c)
{
	unsigned cls = c->code / 100;

	if (cls == 3) {
		smtpc_fail(c, true, "unexpected reply to end of data");
		return;
	}
	/* RFC 5321 §4.1.1.4: whatever the outcome, the transaction is over */
	result_accepted(c);
	tx_done(c, false);
}

/* ------------------------------------------------------------------ */
/* body */

void
smtpc_body(struct smtpc *c, const uint8_t *p, size_t n)
{
	size_t run = 0;

	if (c->state == SMTPC_ST_FAILED || c->state == SMTPC_ST_CLOSED)
		return;
	TN_ASSERT(c->state == SMTPC_ST_BODY);
	for (size_t i = 0; i < n;) {
		uint8_t ch = p[i];

		if (c->body_cr) {
			/* the CR ended the last run: run == i here */
			c->body_cr = false;
			smtpc_out_str(c, "\r\n");
			c->body_bol = true;
			if (ch == '\n') {
				run = ++i;
				continue;
			}
		}
		if (ch == '\r' || ch == '\n') {
			/* RFC 5321 §2.3.8: lines end in CRLF; a bare CR or LF
			 * becomes one rather than reach the server bare */
			(void)buf_append(&c->out, p + run, i - run);
			if (ch == '\r') {
				c->body_cr = true;
			} else {
				smtpc_out_str(c, "\r\n");
				c->body_bol = true;
			}
			run = ++i;
			continue;
		}
		if (c->body_bol && ch == '.') {
			/* RFC 5321 §4.5.2: a line that starts with "." gets
			 * one more */
			(void)buf_append(&c->out, p + run, i - run);
			smtpc_out_str(c, ".");
			run = i;
		}
		c->body_bol = false;
		/* the rest of the line, up to its CR or LF, goes as it is:
		 * found with memchr rather than byte by byte (the CR is looked
		 * for only before the LF, so a body without CRs stays linear) */
		const uint8_t *lf = memchr(p + i, '\n', n - i);
		/* UNSAFE: lf points into p[i..n) */
		size_t end = lf != NULL ? (size_t)(lf - p) : n;
		const uint8_t *cr = memchr(p + i, '\r', end - i);
		/* UNSAFE: cr points into p[i..end) */
		i = cr != NULL ? (size_t)(cr - p) : end;
	}
	(void)buf_append(&c->out, p + run, n - run);
}

void
smtpc_body_end(struct smtpc *c)
{
	if (c->state == SMTPC_ST_FAILED || c->state == SMTPC_ST_CLOSED)
		return;
	TN_ASSERT(c->state == SMTPC_ST_BODY);
	if (c->body_cr) {
		c->body_cr = false;
		smtpc_out_str(c, "\r\n");
		c->body_bol = true;
	}
	/* RFC 5321 §4.1.1.4: the end is CRLF "." CRLF, so a body that does
	 * not end its last line gets a CRLF first */
	if (!c->body_bol)
		smtpc_out_str(c, "\r\n");
	smtpc_out_str(c, ".\r\n");
	c->state = SMTPC_ST_DOT;
}

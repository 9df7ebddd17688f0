/* SPDX-License-Identifier: MIT */
/*
 * smtpc_reply: reading the server's replies (RFC 5321 §4.2). A reply is
 * lines "ddd-text" ending in one "ddd text" or a bare "ddd"; each line
 * ends in CRLF, and a bare LF is taken as a line end too (servers that
 * send one exist, and a client gains nothing by refusing them). The
 * reader holds at most reply_max octets and reply_lines_max lines of one
 * reply, whatever the server sends. Peer bytes in the text are kept as
 * they are; the caller escapes them for logs. No I/O.
 */
#include <string.h>

#include "smtpc/smtpc_int.h"

static bool
is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

size_t
smtpc_enhanced_len(const char *t, size_t n, unsigned cls)
{
	size_t i = 1;

	/* RFC 3463 §2: the class is 2, 4 or 5 and matches the reply's
	 * first digit (RFC 2034 §4) */
	if (cls != 2 && cls != 4 && cls != 5)
		return 0;
	if (n < 5 || t[0] != (char)('0' + cls))
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		if (i >= n || t[i] != '.')
			return 0;
		i++;
		while (i < n && is_digit((uint8_t)t[i]) && d < 4) {
			i++;
			d++;
		}
		/* subject and detail are 1*3digit */
		if (d == 0 || d > 3)
			return 0;
	}
	/* the code is a word of its own */
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

void
smtpc_reply_reset(struct smtpc *c)
{
	buf_reset(&c->line);
	buf_reset(&c->text);
	c->rp_total = 0;
	c->rp_lines = 0;
	c->code = 0;
	c->enhanced[0] = '\0';
	c->rp_done = false;
}

/* a complete line, its LF dropped: check it and add its text */
static enum smtpc_rp
line_end(struct smtpc *c, const char **error_r)
{
	const char *l = (const char *)c->line.p;
	size_t len = c->line.len, elen;
	const char *t;
	size_t tlen;
	unsigned code;
	bool more;

	if (len > 0 && l[len - 1] == '\r')
		len--;
	/* RFC 5321 §4.2: Reply-code [ SP / "-" textstring ] CRLF; the first
	 * digit is 2 to 5 (§4.2.1) */
	if (len < 3 || !is_digit((uint8_t)l[0]) || !is_digit((uint8_t)l[1]) ||
	    !is_digit((uint8_t)l[2]) || l[0] < '2' || l[0] > '5' ||
	    (len > 3 && l[3] != ' ' && l[3] != '-')) {
		*error_r = "malformed reply";
		return SMTPC_RP_ERROR;
	}
	code = (unsigned)(l[0] - '0') * 100 + (unsigned)(l[1] - '0') * 10 +
	       (unsigned)(l[2] - '0');
	/* RFC 5321 §4.2.1: every line of a multi-line reply has the code */
	if (c->rp_lines > 0 && code != c->code) {
		*error_r = "reply lines with different codes";
		return SMTPC_RP_ERROR;
	}
	more = len > 3 && l[3] == '-';
	t = len > 4 ? l + 4 : "";
	tlen = len > 4 ? len - 4 : 0;

	if (c->rp_lines == 0) {
		c->code = code;
		elen = smtpc_enhanced_len(t, tlen, code / 100);
		if (elen > 0) {
			/* UNSAFE: elen <= 9 < SMTPC_ENHANCED_MAX */
			memcpy(c->enhanced, t, elen);
			c->enhanced[elen] = '\0';
		}
	} else {
		/* RFC 2034 §4: each line repeats the code; one that starts
		 * a later line is dropped like the first line's */
		elen = c->enhanced[0] != '\0' ?
		       smtpc_enhanced_len(t, tlen, code / 100) : 0;
	}
	if (elen > 0) {
		t += elen;
		tlen -= elen;
		if (tlen > 0) {
			t++;
			tlen--;
		}
	}
	if (c->rp_keywords && c->rp_lines > 0)
		smtpc_ehlo_keyword(c, t, tlen);
	/* text <= reply octets, and text has the same max: never refused */
	if (tlen > 0) {
		if (c->text.len > 0)
			(void)buf_append(&c->text, " ", 1);
		(void)buf_append(&c->text, t, tlen);
	}
	c->rp_lines++;
	buf_reset(&c->line);
	if (!more) {
		c->rp_done = true;
		(void)buf_cstr(&c->text);
		return SMTPC_RP_DONE;
	}
	/* another line must follow, and it would be one too many */
	if (c->rp_lines >= c->reply_lines_max) {
		*error_r = "too many reply lines";
		return SMTPC_RP_ERROR;
	}
	return SMTPC_RP_MORE;
}

size_t
smtpc_reply_feed(struct smtpc *c, const uint8_t *p, size_t n,
		 enum smtpc_rp *rp_r, const char **error_r)
{
	const uint8_t *lf;
	size_t take;

	*rp_r = SMTPC_RP_MORE;
	if (n == 0)
		return 0;
	if (c->rp_done)
		smtpc_reply_reset(c);
	lf = memchr(p, '\n', n);
	/* UNSAFE: lf points into p[0..n) */
	take = lf != NULL ? (size_t)(lf - p) + 1 : n;
	/* rp_total <= reply_max always holds */
	if (take > c->reply_max - c->rp_total) {
		*rp_r = SMTPC_RP_ERROR;
		*error_r = "reply too long";
		return take;
	}
	c->rp_total += take;
	/* the line holds at most rp_total octets: within its max */
	(void)buf_append(&c->line, p, lf != NULL ? take - 1 : take);
	if (lf != NULL)
		*rp_r = line_end(c, error_r);
	return take;
}

/* SPDX-License-Identifier: MIT */
/*
 * smtp_reply: building reply lines. Every line is printable ASCII, ends in
 * CRLF and fits 512 octets (RFC 5321 §4.5.3.1.5), whatever text a verdict
 * or a peer's HELO name brings (only a 334 AUTH challenge may be longer,
 * up to RFC 4954's 12,288 octets). Refusals, and recipients the caller
 * refused, are counted here toward the errors_max limit. Appends to the
 * engine's output; no I/O.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smtp/smtp_int.h"

size_t
smtp_reply_fmt(char *dst, unsigned code, char sep, const char *enhanced,
	       const char *text)
{
	/* room for the text: 512 less CRLF and the NUL of dst */
	const size_t room = SMTP_REPLY_LINE_MAX - 2;
	size_t n = 0;
	int r;

	TN_ASSERT(code >= 200 && code <= 599);
	r = snprintf(dst, SMTP_REPLY_LINE_MAX, "%03u%c", code, sep);
	TN_ASSERT(r == 4);
	n = 4;
	if (enhanced != NULL) {
		for (size_t i = 0; enhanced[i] != '\0' && n < room; i++) {
			unsigned char c = (unsigned char)enhanced[i];
			dst[n++] = c > 32 && c < 127 ? (char)c : '?';
		}
		if (n < room)
			dst[n++] = ' ';
	}
	for (size_t i = 0; text != NULL && text[i] != '\0' && n < room; i++) {
		unsigned char c = (unsigned char)text[i];
		dst[n++] = c >= 32 && c < 127 ? (char)c : '?';
	}
	/* a line ends in text, never in a space the text did not have */
	if (n > 4 && dst[n - 1] == ' ' && (text == NULL || text[0] == '\0'))
		n--;
	dst[n] = '\0';
	return n;
}

static void
out_line(struct smtp_engine *e, const char *line, size_t n)
{
	if (e->closed)
		return;
	/* only a caller that never drains the output gets here: give up
	 * on the session rather than grow without bound */
	if (buf_append(&e->out, line, n) < 0 ||
	    buf_append(&e->out, "\r\n", 2) < 0) {
		smtp_close(e);
		return;
	}
}

void
smtp_reply_raw(struct smtp_engine *e, const char *line, size_t n)
{
	out_line(e, line, n);
}

void
smtp_reply_part(struct smtp_engine *e, unsigned code, bool more,
		const char *enhanced, const char *text)
{
	char line[SMTP_REPLY_LINE_MAX];
	size_t n = smtp_reply_fmt(line, code, more ? '-' : ' ', enhanced, text);

	out_line(e, line, n);
}

void
smtp_reply(struct smtp_engine *e, unsigned code, const char *enhanced,
	   const char *text)
{
	smtp_reply_part(e, code, false, enhanced, text);
}

void
smtp_replyf(struct smtp_engine *e, unsigned code, const char *enhanced,
	    const char *fmt, ...)
{
	char text[SMTP_REPLY_LINE_MAX];
	va_list ap;

	va_start(ap, fmt);
	/* a cut text is fine: the line is cut to 512 octets anyway */
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_reply(e, code, enhanced, text);
}

void
smtp_reply_event(struct smtp_engine *e, enum smtp_event_kind kind,
		 unsigned code, const char *enhanced, const char *text)
{
	char line[SMTP_REPLY_LINE_MAX];
	size_t n = smtp_reply_fmt(line, code, ' ', enhanced, text);
	struct smtp_qev *q;

	if (e->closed)
		return;
	out_line(e, line, n);
	q = smtp_ev_push(e, kind);
	q->reply = smtp_ev_str(e, line, n);
}

static void
refuse_line(struct smtp_engine *e, unsigned code, const char *enhanced,
	    const char *text)
{
	smtp_reply_event(e, SMTP_EV_PROTOCOL_ERROR, code, enhanced, text);
}

void
smtp_close_421(struct smtp_engine *e, const char *enhanced, const char *why)
{
	char text[SMTP_REPLY_LINE_MAX];

	if (e->closed)
		return;
	(void)snprintf(text, sizeof(text), "%s %s", e->hostname, why);
	smtp_reply(e, 421, enhanced, text);
	smtp_close(e);
}

void
smtp_refuse_421(struct smtp_engine *e, const char *enhanced, const char *why)
{
	char text[SMTP_REPLY_LINE_MAX];

	if (e->closed)
		return;
	(void)snprintf(text, sizeof(text), "%s %s", e->hostname, why);
	refuse_line(e, 421, enhanced, text);
	smtp_close(e);
}

void
smtp_error(struct smtp_engine *e)
{
	if (e->closed)
		return;
	e->errors++;
	/* Postfix's smtpd_hard_error_limit: a peer that keeps sending
	 * garbage, or probes for addresses, is cut off; RFC 5321 §3.8
	 * allows the 421 close */
	if (e->errors >= e->errors_max)
		smtp_refuse_421(e, "4.7.0", "Too many errors, closing");
}

void
smtp_refusef(struct smtp_engine *e, unsigned code, const char *enhanced,
	     bool counts, const char *text)
{
	if (e->closed)
		return;
	refuse_line(e, code, enhanced, text);
	if (counts)
		smtp_error(e);
}

void
smtp_refuse(struct smtp_engine *e, const struct smtp_rej *rej)
{
	smtp_refusef(e, rej->code, rej->enhanced, rej->counts, rej->text);
}

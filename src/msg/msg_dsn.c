/* SPDX-License-Identifier: MIT */
/*
 * msg_dsn: builds delivery status notifications: RFC 6522
 * multipart/report with report-type=delivery-status, the RFC 3464
 * fields with the RFC 3461 §6 semantics of ENVID, ORCPT and RET, RFC 3834
 * Auto-Submitted, and RFC 6533 for messages that needed SMTPUTF8. Pure
 * code: no I/O, no clock (every time is passed in).
 *
 * Nothing the peer said may break the structure: server replies and
 * HELO names are reduced to one line of printable text (\xHH escapes;
 * UTF-8 kept only in the RFC 6533 forms), folded under 998 octets, and
 * every line we write starts with a field name or white space, so only
 * the returned original could hold a boundary line; it is checked.
 */
#include <stdio.h>
#include <string.h>

#include "msg/msg.h"

/* RFC 5322 §2.1.1: at most 998 octets before CRLF; we fold near 78 */
#define LINE_MAX_OCTETS 998
#define FOLD_AT 78
/* where an over-long word is cut in a folded field */
#define HARD_CUT 900
/* human text is wrapped at this column */
#define WRAP_AT 72
/* RFC 2046 §5.1.1: a boundary is 1 to 70 characters */
#define BOUNDARY_IN_MAX 60
#define BOUNDARY_TRIES 100

enum kind {
	KIND_FAILED = 0,
	KIND_DELAYED,
	KIND_SUCCESS,
	KIND_COUNT,
};

/* ------------------------------------------------------------------ */
/* dates */

static const char wdays[7][4] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};
static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* 9999-12-31T23:59:59Z: keeps the year at four digits */
#define DATE_T_MAX INT64_C(253402300799)

char *
msg_date(int64_t t, char *dst)
{
	int64_t days, secs, z, era, doe, yoe, doy, mp, y, m, d;

	if (t < 0)
		t = 0;
	if (t > DATE_T_MAX)
		t = DATE_T_MAX;
	days = t / 86400;
	secs = t % 86400;
	/* proleptic Gregorian calendar from a day count (the usual
	 * era/day-of-era decomposition; 719468 days from 0000-03-01 to
	 * 1970-01-01). t >= 0, so every division here is exact floor. */
	z = days + 719468;
	era = z / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	if (m <= 2)
		y++;
	/* 1970-01-01 was a Thursday */
	(void)snprintf(dst, MSG_DATE_MAX,
		       "%s, %02u %s %04u %02u:%02u:%02u +0000",
		       wdays[(days + 4) % 7], (unsigned)(d % 100),
		       months[m - 1], (unsigned)(y % 10000),
		       (unsigned)(secs / 3600 % 100),
		       (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
	return dst;
}

/* ------------------------------------------------------------------ */
/* text helpers */

/* the length of a well-formed UTF-8 sequence of 2 to 4 octets at p, or 0
 * (RFC 3629 §4: no overlong forms, no surrogates, nothing past 10FFFF) */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
	size_t len;
	uint8_t lo = 0x80, hi = 0xbf;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * Appends s as one line of safe text: a CR, LF or HTAB (the line ends of
 * a multi-line reply) becomes one space, printable ASCII other than '\'
 * passes, UTF-8 passes when utf8 is set, every other octet is \xHH.
 * Leading and trailing spaces go. Sets *nonascii when UTF-8 went out.
 */
static void
put_safe(struct buf *b, const char *s, bool utf8, bool *nonascii)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), start = b->len;
	bool space = false;

	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t ul;

		if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
			space = true;
			i++;
			continue;
		}
		if (space && b->len > start)
			(void)buf_append(b, " ", 1);
		space = false;
		if (c > 0x20 && c < 0x7f && c != '\\') {
			(void)buf_append(b, &c, 1);
			i++;
		} else if (c >= 0x80 && utf8 && (ul = utf8_len(p + i, n - i))) {
			(void)buf_append(b, p + i, ul);
			*nonascii = true;
			i += ul;
		} else {
			(void)buf_printf(b, "\\x%02X", c);
			i++;
		}
	}
}

/*
 * Appends "Name: value" CRLF, folded (RFC 5322 §2.2.3) before a space
 * once a line passes FOLD_AT, and cut with CRLF SP inside a word that
 * would pass HARD_CUT, so no line exceeds 998 octets. value holds no
 * CR or LF (put_safe made it, or it was checked).
 */
static void
put_field(struct buf *b, const char *name, const uint8_t *v, size_t n)
{
	size_t col = strlen(name) + 2;

	(void)buf_printf(b, "%s: ", name);
	for (size_t i = 0; i < n;) {
		size_t w = i;

		/* the word at i: a space, if any, then the octets up to the
		 * next space */
		if (v[w] == ' ')
			w++;
		while (w < n && v[w] != ' ')
			w++;
		if (v[i] == ' ' && col + (w - i) > FOLD_AT && col > 1) {
			(void)buf_append(b, "\r\n", 2);
			col = 0;
		}
		while (i < w) {
			size_t take = w - i;

			if (col + take > HARD_CUT) {
				take = HARD_CUT > col ? HARD_CUT - col : 0;
				/* keep a UTF-8 sequence whole */
				while (take > 0 && i + take < n &&
				       (v[i + take] & 0xc0) == 0x80)
					take--;
			}
			if (take == 0) {
				(void)buf_append(b, "\r\n ", 3);
				col = 1;
				continue;
			}
			(void)buf_append(b, v + i, take);
			col += take;
			i += take;
		}
	}
	(void)buf_append(b, "\r\n", 2);
}

static void
put_field_str(struct buf *b, const char *name, const char *v)
{
	put_field(b, name, (const uint8_t *)v, strlen(v));
}

/*
 * Appends text wrapped at WRAP_AT columns, every line starting with
 * indent spaces (more for continuation lines), cutting words too long
 * for a line. The text is one line (put_safe output).
 */
static void
put_wrapped(struct buf *b, unsigned indent, const uint8_t *v, size_t n)
{
	size_t col = 0;
	bool first = true;

	for (size_t i = 0; i < n;) {
		size_t w = i, take;

		while (w < n && v[w] == ' ')
			w++;
		i = w;
		while (w < n && v[w] != ' ')
			w++;
		if (i == w)
			break;
		if (col > 0 && col + 1 + (w - i) > WRAP_AT) {
			(void)buf_append(b, "\r\n", 2);
			col = 0;
		}
		if (col == 0) {
			unsigned ind = first ? indent : indent + 2;

			(void)buf_printf(b, "%*s", (int)ind, "");
			col = ind;
			first = false;
		} else {
			(void)buf_append(b, " ", 1);
			col++;
		}
		take = w - i;
		if (col + take > WRAP_AT + 8) {
			/* a word longer than a line: cut it, keeping a UTF-8
			 * sequence whole */
			take = WRAP_AT + 8 - col;
			while (take > 1 && (v[i + take] & 0xc0) == 0x80)
				take--;
			(void)buf_append(b, v + i, take);
			(void)buf_append(b, "\r\n", 2);
			col = 0;
			i += take;
			continue;
		}
		(void)buf_append(b, v + i, take);
		col += take;
		i = w;
	}
	if (col > 0)
		(void)buf_append(b, "\r\n", 2);
}

/*
 * RFC 2045 §6.7 quoted-printable of CRLF text: lines stay lines, '=',
 * controls and 8-bit octets are =XX, a space or tab before a line end is
 * encoded, and soft breaks keep every line within 76 octets.
 */
static void
put_qp(struct buf *b, const uint8_t *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		bool eol_next = i + 1 >= n ||
			(p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n');
		char enc[4];
		size_t len;

		if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			(void)buf_append(b, "\r\n", 2);
			col = 0;
			i++;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && !eol_next)) {
			enc[0] = (char)c;
			len = 1;
		} else {
			(void)snprintf(enc, sizeof(enc), "=%02X", c);
			len = 3;
		}
		if (col + len > 75) {
			(void)buf_append(b, "=\r\n", 3);
			col = 0;
		}
		(void)buf_append(b, enc, len);
		col += len;
	}
}

/* ------------------------------------------------------------------ */
/* checks of the caller's fields */

/* printable, no space; 8-bit only when it is UTF-8 and utf8 is set */
static bool
token_ok(const char *s, bool utf8, bool allow_space)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s);

	if (n == 0 || n > MSG_DSN_FIELD_MAX)
		return false;
	for (size_t i = 0; i < n;) {
		size_t ul;

		if (p[i] > 0x20 && p[i] < 0x7f) {
			i++;
		} else if (p[i] == ' ' && allow_space) {
			i++;
		} else if (p[i] >= 0x80 && utf8 &&
			   (ul = utf8_len(p + i, n - i)) > 0) {
			i += ul;
		} else {
			return false;
		}
	}
	return true;
}

static bool
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* RFC 2046 §5.1.1 bcharsnospace */
static bool
boundary_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BOUNDARY_IN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') || strchr("'()+_,-./:=?", c)))
			return false;
	}
	return true;
}

/* RFC 3463 §2: class "." subject "." detail, 2/4/5, 1-3 digits each */
static bool
status_ok(const char *s)
{
	size_t i = 0;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t d = 0;

		while (s[i] >= '0' && s[i] <= '9' && d < 4) {
			i++;
			d++;
		}
		if (d == 0 || d > 3)
			return false;
		if (part == 0 && s[i++] != '.')
			return false;
	}
	return s[i] == '\0';
}

static enum kind
kind_of(enum msg_dsn_action a)
{
	switch (a) {
	case MSG_DSN_FAILED:
		return KIND_FAILED;
	case MSG_DSN_DELAYED:
		return KIND_DELAYED;
	default:
		return KIND_SUCCESS;
	}
}

static const char *
action_name(enum msg_dsn_action a)
{
	switch (a) {
	case MSG_DSN_FAILED:
		return "failed";
	case MSG_DSN_DELAYED:
		return "delayed";
	case MSG_DSN_DELIVERED:
		return "delivered";
	case MSG_DSN_RELAYED:
		return "relayed";
	case MSG_DSN_EXPANDED:
		return "expanded";
	}
	return "failed";
}

static const char *
default_status(enum msg_dsn_action a)
{
	switch (kind_of(a)) {
	case KIND_FAILED:
		return "5.0.0";
	case KIND_DELAYED:
		return "4.0.0";
	default:
		return "2.0.0";
	}
}

static int
check(const struct msg_dsn *d, const char **error_r)
{
	bool u = d->smtputf8;

	if (d->reporting_mta == NULL || !token_ok(d->reporting_mta, u, false)) {
		*error_r = "bad or missing reporting MTA";
		return -1;
	}
	if (d->from == NULL || !token_ok(d->from, u, false) ||
	    strpbrk(d->from, "<>") != NULL) {
		*error_r = "bad or missing From address";
		return -1;
	}
	/* RFC 3461 §6.1: a DSN goes to the envelope sender, never to <> */
	if (d->to == NULL || !token_ok(d->to, u, true)) {
		*error_r = "bad or missing To address";
		return -1;
	}
	if (d->message_id == NULL || !token_ok(d->message_id, false, false) ||
	    strpbrk(d->message_id, "<>") != NULL) {
		*error_r = "bad or missing Message-ID";
		return -1;
	}
	if (d->boundary == NULL || !boundary_ok(d->boundary)) {
		*error_r = "bad or missing boundary";
		return -1;
	}
	/* ENVID is xtext (RFC 3461 §4.4): ASCII; returned as received */
	if (d->envid != NULL && !token_ok(d->envid, false, false)) {
		*error_r = "bad ENVID";
		return -1;
	}
	if (d->received_from != NULL &&
	    strlen(d->received_from) > MSG_DSN_FIELD_MAX) {
		*error_r = "Received-From-MTA too long";
		return -1;
	}
	if (d->orig == NULL && d->orig_len > 0) {
		*error_r = "no original message";
		return -1;
	}
	if (d->rcpts == NULL || d->nrcpts == 0) {
		*error_r = "no recipients";
		return -1;
	}
	for (size_t i = 0; i < d->nrcpts; i++) {
		const struct msg_dsn_rcpt *r = &d->rcpts[i];

		if (r->address == NULL || !token_ok(r->address, u, true)) {
			*error_r = "bad or missing recipient address";
			return -1;
		}
		if (r->orcpt != NULL && !token_ok(r->orcpt, u, false)) {
			*error_r = "bad ORCPT";
			return -1;
		}
		if (r->remote_mta != NULL &&
		    strlen(r->remote_mta) > MSG_DSN_FIELD_MAX) {
			*error_r = "Remote-MTA too long";
			return -1;
		}
		if ((unsigned)r->action > MSG_DSN_EXPANDED) {
			*error_r = "bad action";
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* part 1: the human-readable explanation */

static const char *const kind_intro[KIND_COUNT] = {
	"Your message could not be delivered to the recipients below. The\r\n"
	"error is permanent: the message will not be tried again. The\r\n"
	"reason each recipient failed is given beside it.\r\n",
	"Your message has not yet been delivered to the recipients below.\r\n"
	"The mail system will keep trying; you need not send it again. You\r\n"
	"will be told if it finally fails.\r\n",
	"Your message was delivered as requested to the recipients below.\r\n",
};

static const char *
rcpt_phrase(enum msg_dsn_action a)
{
	switch (a) {
	case MSG_DSN_FAILED:
		return "delivery failed";
	case MSG_DSN_DELAYED:
		return "delivery delayed, still being retried";
	case MSG_DSN_DELIVERED:
		return "delivered";
	case MSG_DSN_RELAYED:
		return "relayed to a system that sends no further reports";
	case MSG_DSN_EXPANDED:
		return "delivered to a list or alias, which passed it on";
	}
	return "";
}

static void
text_rcpt(struct buf *b, const struct msg_dsn *d,
	  const struct msg_dsn_rcpt *r, bool *nonascii)
{
	struct buf t;
	char date[MSG_DATE_MAX];

	/* every line starts with '<' or spaces, never with "--" */
	buf_init(&t, 0);
	(void)buf_append(&t, "<", 1);
	put_safe(&t, r->address, d->smtputf8, nonascii);
	(void)buf_printf(&t, ">: %s", rcpt_phrase(r->action));
	put_wrapped(b, 0, t.p, t.len);
	buf_clear(&t);
	if (r->remote_mta != NULL) {
		buf_init(&t, 0);
		(void)buf_append_str(&t, "Remote server: ");
		put_safe(&t, r->remote_mta, d->smtputf8, nonascii);
		put_wrapped(b, 4, t.p, t.len);
		buf_clear(&t);
	}
	if (r->diag != NULL && r->diag[0] != '\0') {
		buf_init(&t, 0);
		(void)buf_append_str(&t, r->diag_is_smtp ? "The server replied: "
					: "Reason: ");
		put_safe(&t, r->diag, d->smtputf8, nonascii);
		put_wrapped(b, 4, t.p, t.len);
		buf_clear(&t);
	}
	if (r->action == MSG_DSN_DELAYED && r->retry_until != 0)
		(void)buf_printf(b, "    Retried until: %s\r\n",
				 msg_date(r->retry_until, date));
	(void)buf_append(b, "\r\n", 2);
}

/* why the original comes back without its body, or NULL */
static void
text_part(struct buf *b, const struct msg_dsn *d, const char *no_body,
	  bool *nonascii)
{
	char date[MSG_DATE_MAX];

	(void)buf_printf(b, "This is the mail delivery system at ");
	put_safe(b, d->reporting_mta, d->smtputf8, nonascii);
	(void)buf_printf(b, ".\r\n\r\n");
	for (int k = 0; k < KIND_COUNT; k++) {
		bool any = false;

		for (size_t i = 0; i < d->nrcpts; i++)
			if (kind_of(d->rcpts[i].action) == (enum kind)k)
				any = true;
		if (!any)
			continue;
		(void)buf_append_str(b, kind_intro[k]);
		(void)buf_append(b, "\r\n", 2);
		for (size_t i = 0; i < d->nrcpts; i++)
			if (kind_of(d->rcpts[i].action) == (enum kind)k)
				text_rcpt(b, d, &d->rcpts[i], nonascii);
	}
	(void)buf_printf(b, "The message was received on %s.\r\n",
			 msg_date(d->arrival, date));
	if (no_body != NULL)
		(void)buf_printf(b, "Only its header is returned below: %s.\r\n",
				 no_body);
	else
		(void)buf_printf(b, "It is returned below.\r\n");
}

/* ------------------------------------------------------------------ */
/* part 2: message/delivery-status (RFC 3464 §2.2, §2.3) */

/*
 * RFC 6533 §3: a non-ASCII address is of type utf-8, written as
 * utf-8-addr-unitext: UTF-8 stays, and the octets that QUCHAR excludes
 * ('+', '=', '\', space and controls) become \x{HH}.
 */
static void
put_utf8_addr(struct buf *b, const char *s)
{
	for (const uint8_t *p = (const uint8_t *)s; *p != '\0'; p++) {
		if (*p <= 0x20 || *p == 0x7f || *p == '+' || *p == '=' ||
		    *p == '\\')
			(void)buf_printf(b, "\\x{%02X}", *p);
		else
			(void)buf_append(b, p, 1);
	}
}

/* "type;value" of ORCPT: the type trimmed, the value kept as xtext
 * (RFC 3461 §4.2, §6.3 (b)) */
static void
put_orcpt(struct buf *b, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	struct buf v;

	if (semi == NULL || semi == orcpt || semi[1] == '\0')
		return;
	buf_init(&v, 0);
	(void)buf_append(&v, orcpt, (size_t)(semi - orcpt));
	(void)buf_append(&v, ";", 1);
	(void)buf_append_str(&v, semi + 1);
	put_field(b, "Original-Recipient", v.p, v.len);
	buf_clear(&v);
}

static void
status_part(struct buf *b, const struct msg_dsn *d, bool *nonascii)
{
	char date[MSG_DATE_MAX];
	struct buf v;

	buf_init(&v, 0);
	(void)buf_append_str(&v, "dns; ");
	put_safe(&v, d->reporting_mta, d->smtputf8, nonascii);
	put_field(b, "Reporting-MTA", v.p, v.len);
	/* RFC 3464 §2.2.1: the envelope id exactly as given, xtext */
	if (d->envid != NULL)
		put_field_str(b, "Original-Envelope-Id", d->envid);
	if (d->received_from != NULL) {
		buf_reset(&v);
		put_safe(&v, d->received_from, d->smtputf8, nonascii);
		put_field(b, "Received-From-MTA", v.p, v.len);
	}
	if (d->arrival != 0)
		put_field_str(b, "Arrival-Date", msg_date(d->arrival, date));

	for (size_t i = 0; i < d->nrcpts; i++) {
		const struct msg_dsn_rcpt *r = &d->rcpts[i];

		/* RFC 3464 §2.1: a blank line before each per-recipient
		 * block */
		(void)buf_append(b, "\r\n", 2);
		if (r->orcpt != NULL) {
			if (!is_ascii(r->orcpt))
				*nonascii = true;
			put_orcpt(b, r->orcpt);
		}
		buf_reset(&v);
		if (is_ascii(r->address)) {
			(void)buf_printf(&v, "rfc822; %s", r->address);
		} else {
			(void)buf_append_str(&v, "utf-8; ");
			put_utf8_addr(&v, r->address);
			*nonascii = true;
		}
		put_field(b, "Final-Recipient", v.p, v.len);
		put_field_str(b, "Action", action_name(r->action));
		put_field_str(b, "Status", status_ok(r->status) ? r->status :
			      default_status(r->action));
		if (r->remote_mta != NULL) {
			buf_reset(&v);
			(void)buf_append_str(&v, "dns; ");
			put_safe(&v, r->remote_mta, d->smtputf8, nonascii);
			put_field(b, "Remote-MTA", v.p, v.len);
		}
		if (r->diag != NULL) {
			buf_reset(&v);
			/* RFC 3464 §2.3.6: "smtp" for an SMTP reply; a
			 * local reason has an X- type of our own */
			(void)buf_append_str(&v, r->diag_is_smtp ? "smtp; " :
					     "X-tern; ");
			put_safe(&v, r->diag, d->smtputf8, nonascii);
			put_field(b, "Diagnostic-Code", v.p, v.len);
		}
		if (r->last_attempt != 0)
			put_field_str(b, "Last-Attempt-Date",
				      msg_date(r->last_attempt, date));
		/* RFC 3464 §2.3.9: only for delayed */
		if (r->action == MSG_DSN_DELAYED && r->retry_until != 0)
			put_field_str(b, "Will-Retry-Until",
				      msg_date(r->retry_until, date));
	}
	buf_clear(&v);
}

/* ------------------------------------------------------------------ */
/* part 3: the original */

struct orig_scan {
	bool nul, eightbit, long_line;
};

/* copies p[0..n) with every lone CR or LF made CRLF */
static void
copy_crlf(struct buf *b, const uint8_t *p, size_t n, struct orig_scan *s)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c == '\r' || c == '\n') {
			(void)buf_append(b, "\r\n", 2);
			if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			line = 0;
			continue;
		}
		if (c == 0)
			s->nul = true;
		if (c >= 0x80)
			s->eightbit = true;
		if (++line > LINE_MAX_OCTETS)
			s->long_line = true;
		(void)buf_append(b, &c, 1);
	}
}

/* a line of p[0..n) starts with "--" boundary */
static bool
has_boundary(const uint8_t *p, size_t n, const char *bnd, size_t blen)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && p[i - 1] != '\n')
			continue;
		if (n - i >= blen + 2 && p[i] == '-' && p[i + 1] == '-' &&
		    memcmp(p + i + 2, bnd, blen) == 0)
			return true;
	}
	return false;
}

struct part {
	struct buf body;
	char type[48];
	const char *cte;           /* "7bit", "8bit", "quoted-printable" */
	const char *description;
};

static void
orig_part(struct part *pt, const struct msg_dsn *d, const char **no_body_r)
{
	struct orig_scan s = { 0 };
	const uint8_t *orig = d->orig != NULL ? d->orig : (const uint8_t *)"";
	size_t hlen;
	struct buf h;

	*no_body_r = NULL;
	if (d->ret == MSG_DSN_RET_HDRS)
		*no_body_r = "the sender asked for headers only (RET=HDRS)";
	else if (d->orig_len > d->full_max)
		*no_body_r = "the message is too large to return whole";
	if (*no_body_r == NULL) {
		copy_crlf(&pt->body, orig, d->orig_len, &s);
		/* RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit
		 * or binary, so a NUL or an over-long line cannot go */
		if (!s.nul && !s.long_line) {
			(void)snprintf(pt->type, sizeof(pt->type), "%s",
				       d->smtputf8 ? "message/global" :
				       "message/rfc822");
			pt->cte = s.eightbit ? "8bit" : "7bit";
			pt->description = "Undelivered Message";
			if (d->rcpts[0].action != MSG_DSN_FAILED)
				pt->description = "Message";
			return;
		}
		*no_body_r = "the message has lines that cannot be returned "
			     "in a MIME part";
		buf_reset(&pt->body);
		s = (struct orig_scan){ 0 };
	}
	/* the header fields without the empty line that ends them */
	hlen = msg_header_len(orig, d->orig_len);
	buf_init(&h, 0);
	copy_crlf(&h, orig, hlen, &s);
	while (h.len >= 4 && memcmp(h.p + h.len - 4, "\r\n\r\n", 4) == 0)
		h.len -= 2;
	if (h.len == 2)
		h.len = 0;
	/* RFC 6533 §6.3 message/global-headers for UTF-8 header fields */
	(void)snprintf(pt->type, sizeof(pt->type), "%s",
		       d->smtputf8 ? "message/global-headers" :
		       "text/rfc822-headers");
	pt->description = "Message Headers";
	if (s.nul || s.long_line || (s.eightbit && !d->smtputf8)) {
		put_qp(&pt->body, h.p, h.len);
		pt->cte = "quoted-printable";
	} else {
		(void)buf_append(&pt->body, h.p, h.len);
		pt->cte = s.eightbit ? "8bit" : "7bit";
	}
	buf_clear(&h);
}

/* ------------------------------------------------------------------ */
/* the whole notification */

static const char *
subject_of(const struct msg_dsn *d)
{
	enum kind worst = KIND_SUCCESS;

	for (size_t i = 0; i < d->nrcpts; i++) {
		enum kind k = kind_of(d->rcpts[i].action);

		if (k < worst)
			worst = k;
	}
	switch (worst) {
	case KIND_FAILED:
		return "Undelivered Mail Returned to Sender";
	case KIND_DELAYED:
		return "Delayed Mail (still being retried)";
	default:
		return "Successful Mail Delivery Report";
	}
}

/* the caller's boundary, or it with "=_N" when a returned line starts
 * with it (RFC 2046 §5.1.1: it must not occur in any part) */
static bool
pick_boundary(const struct msg_dsn *d, const struct part *parts, size_t n,
	      char *bnd, size_t bndsz)
{
	for (unsigned t = 0; t < BOUNDARY_TRIES; t++) {
		bool clash = false;

		if (t == 0)
			(void)snprintf(bnd, bndsz, "%s", d->boundary);
		else
			(void)snprintf(bnd, bndsz, "%s=_%u", d->boundary, t);
		for (size_t i = 0; i < n && !clash; i++)
			clash = has_boundary(parts[i].body.p, parts[i].body.len,
					     bnd, strlen(bnd));
		if (!clash)
			return true;
	}
	return false;
}

int
msg_dsn_build(const struct msg_dsn *d, struct buf *out, const char **error_r)
{
	struct part parts[3];
	bool text_nonascii = false, status_nonascii = false, eight;
	const char *no_body;
	char bnd[BOUNDARY_IN_MAX + 16], date[MSG_DATE_MAX];
	struct buf t, hdr;
	size_t start = out->len;
	int ret = -1;

	if (check(d, error_r) < 0)
		return -1;
	memset(parts, 0, sizeof(parts));
	for (size_t i = 0; i < 3; i++)
		buf_init(&parts[i].body, 0);
	buf_init(&t, 0);
	buf_init(&hdr, 0);

	orig_part(&parts[2], d, &no_body);

	text_part(&t, d, no_body, &text_nonascii);
	/* the explanation stays 7-bit: quoted-printable once it holds
	 * UTF-8 (only with smtputf8) */
	if (text_nonascii) {
		put_qp(&parts[0].body, t.p, t.len);
		(void)snprintf(parts[0].type, sizeof(parts[0].type),
			       "text/plain; charset=utf-8");
		parts[0].cte = "quoted-printable";
	} else {
		(void)buf_append(&parts[0].body, t.p, t.len);
		(void)snprintf(parts[0].type, sizeof(parts[0].type),
			       "text/plain; charset=us-ascii");
		parts[0].cte = "7bit";
	}
	parts[0].description = "Notification";

	status_part(&parts[1].body, d, &status_nonascii);
	(void)snprintf(parts[1].type, sizeof(parts[1].type), "%s",
		       d->smtputf8 ? "message/global-delivery-status" :
		       "message/delivery-status");
	/* RFC 6533 §6.2: UTF-8 fields travel as 8bit */
	parts[1].cte = status_nonascii ? "8bit" : "7bit";
	parts[1].description = "Delivery report";

	if (!pick_boundary(d, parts, 3, bnd, sizeof(bnd))) {
		*error_r = "no boundary absent from the returned message";
		goto fail;
	}
	eight = false;
	for (size_t i = 0; i < 3; i++)
		if (strcmp(parts[i].cte, "8bit") == 0)
			eight = true;

	(void)buf_append_str(&hdr, "From: Mail Delivery System <");
	(void)buf_append_str(&hdr, d->from);
	(void)buf_append_str(&hdr, ">\r\n");
	(void)buf_append_str(&hdr, "To: <");
	(void)buf_append_str(&hdr, d->to);
	(void)buf_append_str(&hdr, ">\r\n");
	(void)buf_printf(&hdr, "Subject: %s\r\n", subject_of(d));
	(void)buf_printf(&hdr, "Date: %s\r\n", msg_date(d->now, date));
	(void)buf_printf(&hdr, "Message-ID: <%s>\r\n", d->message_id);
	(void)buf_append_str(&hdr, "MIME-Version: 1.0\r\n");
	/* RFC 6522 §3 */
	(void)buf_printf(&hdr, "Content-Type: multipart/report; "
			 "report-type=delivery-status;\r\n"
			 "\tboundary=\"%s\"\r\n", bnd);
	/* RFC 2045 §6.4: a multipart holding an 8bit part is 8bit */
	if (eight)
		(void)buf_append_str(&hdr, "Content-Transfer-Encoding: 8bit\r\n");
	/* RFC 3834 §5: keeps responders from answering the notification */
	(void)buf_append_str(&hdr, "Auto-Submitted: auto-replied\r\n");
	(void)buf_append_str(&hdr, "\r\n");
	(void)buf_append_str(&hdr, "This is a MIME-encapsulated message.\r\n");

	if (buf_append(out, hdr.p, hdr.len) < 0)
		goto full;
	for (size_t i = 0; i < 3; i++) {
		struct part *pt = &parts[i];

		buf_reset(&hdr);
		(void)buf_printf(&hdr, "\r\n--%s\r\n"
				 "Content-Description: %s\r\n"
				 "Content-Type: %s\r\n"
				 "Content-Transfer-Encoding: %s\r\n\r\n",
				 bnd, pt->description, pt->type, pt->cte);
		if (buf_append(out, hdr.p, hdr.len) < 0 ||
		    buf_append(out, pt->body.p, pt->body.len) < 0)
			goto full;
	}
	buf_reset(&hdr);
	(void)buf_printf(&hdr, "\r\n--%s--\r\n", bnd);
	if (buf_append(out, hdr.p, hdr.len) < 0)
		goto full;
	ret = 0;
	goto fail;
full:
	*error_r = "notification larger than the output buffer allows";
	out->len = start;
fail:
	for (size_t i = 0; i < 3; i++)
		buf_clear(&parts[i].body);
	buf_clear(&t);
	buf_clear(&hdr);
	return ret;
}

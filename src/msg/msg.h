/* SPDX-License-Identifier: MIT */
/*
 * msg: message text. Pure code (no I/O, no clock: times are passed in):
 * finding the header block of an RFC 5322 message, and building the
 * delivery status notifications (RFC 3464 multipart/report, RFC 3461
 * semantics) that the queue runner sends for bounces, delays and
 * successes.
 */
#ifndef TERN_MSG_H
#define TERN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/*
 * The length of the header block of msg[0..n): the octets up to and
 * including the empty line that ends it (CRLF CRLF, or LF LF), or n when
 * the message has no body.
 */
size_t msg_header_len(const uint8_t *msg, size_t n);

/* "Thu, 03 Dec 2026 13:48:08 +0000" and its NUL */
#define MSG_DATE_MAX 32

/*
 * Writes t (seconds since the epoch) as an RFC 5322 §3.3 date-time in
 * UTC into dst[MSG_DATE_MAX]. Plain arithmetic on t: no clock, no time
 * zone database. Returns dst.
 */
char *msg_date(int64_t t, char *dst);

/* RFC 3464 §2.3.3 Action values */
enum msg_dsn_action {
	MSG_DSN_FAILED = 0,
	MSG_DSN_DELAYED,
	MSG_DSN_DELIVERED,
	MSG_DSN_RELAYED,
	MSG_DSN_EXPANDED,
};

struct msg_dsn_rcpt {
	const char *address;        /* Final-Recipient (rfc822) */
	const char *orcpt;          /* Original-Recipient as from ORCPT=
				     * ("rfc822;a@b", xtext), or NULL */
	enum msg_dsn_action action;
	const char *status;         /* RFC 3463 "5.1.1"; NULL or not of
				     * that form: derived from action
				     * (5.0.0 / 4.0.0 / 2.0.0) */
	const char *remote_mta;     /* host name for Remote-MTA, or NULL */
	const char *diag;           /* the server's reply ("550 5.1.1 ...")
				     * for Diagnostic-Code: smtp;, or a local
				     * reason (X-tern;), or NULL; any octets
				     * (line ends of a multi-line reply
				     * become spaces, the rest is escaped
				     * as \\xHH unless it is UTF-8 and
				     * smtputf8 is set) */
	bool diag_is_smtp;          /* diag is an SMTP reply */
	int64_t last_attempt;       /* 0: none */
	int64_t retry_until;        /* DELAYED: Will-Retry-Until, 0: none */
};

/* SMTP_RET_HDRS of smtp.h (msg/ may not include smtp/) */
#define MSG_DSN_RET_HDRS 2u

struct msg_dsn {
	const char *reporting_mta;  /* our host name */
	const char *from;           /* "MAILER-DAEMON@host" for From: */
	const char *to;             /* the envelope sender, for To: */
	const char *message_id;     /* "<id@host>" without the brackets */
	const char *boundary;       /* unique per message: caller makes it;
				     * 1..60 RFC 2046 bcharsnospace. Should
				     * a returned line start with it, a
				     * suffix "=_N" is added */
	const char *envid;          /* ENVID= of the original, or NULL */
	const char *received_from;  /* "dns; helo [addr]" for
				     * Received-From-MTA, or NULL (escaped
				     * as diag is) */
	int64_t arrival;            /* when the original was received */
	int64_t now;                /* Date: */
	unsigned ret;               /* smtp.h enum smtp_dsn_ret:
				     * MSG_DSN_RET_HDRS returns only the
				     * headers */
	bool smtputf8;              /* the original needs SMTPUTF8: RFC 6533
				     * message/global-* parts */
	const uint8_t *orig;        /* the original message as spooled */
	size_t orig_len;
	size_t full_max;            /* above this, only the headers return */
	const struct msg_dsn_rcpt *rcpts;
	size_t nrcpts;              /* >= 1; kinds may mix: the Subject
				     * is that of the gravest (failed, then
				     * delayed, then success) */
};

/* MSG_DSN_FIELD_MAX: the longest address, ORCPT, ENVID or host name
 * accepted, so that every field fits a line (RFC 5322 §2.1.1) */
#define MSG_DSN_FIELD_MAX 900

/*
 * Appends the whole notification (header block and body, CRLF line
 * endings, lines within 998 octets) to out: a multipart/report;
 * report-type=delivery-status with a human-readable part that says what
 * happened to each recipient and why, the message/delivery-status part,
 * and the returned message (message/rfc822, or text/rfc822-headers for
 * RET=HDRS, a message above full_max, or one holding a NUL or a line
 * over 998 octets, which message/rfc822 cannot carry). With smtputf8 the
 * parts are message/global-delivery-status and message/global or
 * message/global-headers (RFC 6533). Lone LF or CR in the original
 * become CRLF.
 *
 * The result is 7-bit unless the returned original has 8-bit octets or,
 * with smtputf8, UTF-8 text appears: then the top level says
 * Content-Transfer-Encoding: 8bit and it must be sent with
 * BODY=8BITMIME (and SMTPUTF8 with smtputf8). The human-readable part is
 * always 7-bit (quoted-printable when it holds UTF-8).
 *
 * Returns 0, or -1 with *error_r (static text) and out unchanged when d
 * is not usable (a required field missing, a control character or,
 * without smtputf8, an 8-bit octet in an address, a field above
 * MSG_DSN_FIELD_MAX, a bad boundary) or out's max is reached.
 */
int msg_dsn_build(const struct msg_dsn *d, struct buf *out,
		  const char **error_r);

/* ------------------------------------------------------------------ */
/*
 * RFC 5322 §3.4 address lists (msg_addr.c), for `sendmail -t`.
 */
struct msg_addr_list {
	char **addrs;               /* heap; each a heap string */
	size_t n;
};

/*
 * Appends to l the addresses of the address-list in p[0..n) (a field
 * body such as that of To:, folded or not): the addr-spec of each
 * mailbox, of each group member, display names and comments dropped, §4.4
 * obsolete forms accepted. Each address is in its RFC 5321 §4.1.2 form
 * (a local part that is no Dot-string comes quoted). A mailbox written
 * as a local part alone ("root") comes out as that: the caller qualifies
 * it. Returns 0, or -1 with *error_r (static text) and l as it was.
 */
int msg_addr_list_parse(const uint8_t *p, size_t n, struct msg_addr_list *l,
			const char **error_r);
/* frees every address; l is empty again */
void msg_addr_list_clear(struct msg_addr_list *l);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * smtpc: the SMTP client engine that delivery uses to hand mail to
 * another server (RFC 5321, with PIPELINING 2920, SIZE 1870, 8BITMIME
 * 6152, SMTPUTF8 6531, DSN 3461, ENHANCEDSTATUSCODES 2034).
 *
 * Pure code, the mirror of smtp/: reply bytes in, command bytes and
 * events out. It never touches a socket, a clock or a file; the caller
 * connects, writes smtpc_out(), feeds what the server sends, reads the
 * body from the spool and arms the timeout smtpc_timeout() names.
 *
 * Usage by the relay agent (deliver/):
 *
 *	c = smtpc_new(&params);
 *	loop:
 *	  r = smtpc_feed(c, p, n, &used);        // server bytes
 *	  while (smtpc_next(c, &ev)) ...         // READY, RESULT, BODY, ...
 *	  write smtpc_out(c), then buf_reset() it
 *	  r == -1: the session is over (close after writing the output)
 *	on READY:   smtpc_begin(c, &tx) or smtpc_quit(c)
 *	on BODY:    smtpc_body(c, p, n) ... smtpc_body_end(c)
 *	on TX_DONE: every recipient of the transaction had its RESULT;
 *	            the engine is READY again for the next transaction
 *
 * One connection carries several transactions: after TX_DONE the
 * engine accepts smtpc_begin() again (it sends RSET first when the last
 * transaction ended early, RFC 5321 §4.1.1.5).
 */
#ifndef TERN_SMTPC_H
#define TERN_SMTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* RFC 5321 §4.5.3.2 client timeouts, seconds */
#define SMTPC_TIMEOUT_GREETING_DEFAULT 300  /* §4.5.3.2.1 initial 220 */
#define SMTPC_TIMEOUT_MAIL_DEFAULT     300  /* §4.5.3.2.2 MAIL, also EHLO */
#define SMTPC_TIMEOUT_RCPT_DEFAULT     300  /* §4.5.3.2.3 RCPT */
#define SMTPC_TIMEOUT_DATA_DEFAULT     120  /* §4.5.3.2.4 DATA initiation */
#define SMTPC_TIMEOUT_BLOCK_DEFAULT    180  /* §4.5.3.2.5 data block */
#define SMTPC_TIMEOUT_DOT_DEFAULT      600  /* §4.5.3.2.6 DATA termination */
/* bounds on one reply from the server: octets of all its lines together
 * and number of lines (a hostile server may send endless ones) */
#define SMTPC_REPLY_MAX_DEFAULT        (64u << 10)
#define SMTPC_REPLY_LINES_DEFAULT      256u

/* a limit left at 0 takes its SMTPC_*_DEFAULT */
struct smtpc_params {
	const char *helo_name;      /* our name in EHLO/HELO; copied */
	size_t reply_max;
	unsigned reply_lines_max;
	unsigned timeout_greeting, timeout_mail, timeout_rcpt;
	unsigned timeout_data, timeout_block, timeout_dot;
};

/* service extensions the server offered in its EHLO reply */
#define SMTPC_EXT_PIPELINING  0x001u
#define SMTPC_EXT_SIZE        0x002u
#define SMTPC_EXT_8BITMIME    0x004u
#define SMTPC_EXT_SMTPUTF8    0x008u
#define SMTPC_EXT_DSN         0x010u
#define SMTPC_EXT_ENHANCED    0x020u  /* ENHANCEDSTATUSCODES */
#define SMTPC_EXT_STARTTLS    0x040u
#define SMTPC_EXT_CHUNKING    0x080u
#define SMTPC_EXT_AUTH        0x100u

/*
 * One server reply. code is the three-digit code; enhanced is the RFC 3463
 * code of its first line ("5.1.1"), or "" when it has none; text is every
 * line's text (after "ddd-"/"ddd " and the enhanced code) joined with
 * single spaces (a line with no text adds nothing), peer bytes as
 * received (the caller escapes them for logs). Pointers are the engine's,
 * valid until the next smtpc_feed() or smtpc_free().
 */
struct smtpc_reply {
	unsigned code;
	const char *enhanced;
	const char *text;
};

enum smtpc_event_kind {
	SMTPC_EV_NONE = 0,
	/* greeting and EHLO (or HELO) done; the engine waits for
	 * smtpc_begin() or smtpc_quit() */
	SMTPC_EV_READY,
	/* the final outcome of recipient `rcpt` of the transaction: its
	 * RCPT reply when refused (or the MAIL/DATA reply that ended the
	 * transaction), else the reply to the end of data */
	SMTPC_EV_RESULT,
	/* the server said 354: send the body with smtpc_body() and end it
	 * with smtpc_body_end() */
	SMTPC_EV_BODY,
	/* the transaction is over: every recipient had its RESULT */
	SMTPC_EV_TX_DONE,
	/* the session cannot go on: a 421, a refused greeting or EHLO and
	 * HELO, a reply that is not SMTP or breaks a bound. `reply` holds the
	 * server's reply when there was one (code 0 otherwise) and `error`
	 * says what happened. Recipients of the open transaction that had no
	 * RESULT yet have none: the caller defers them. smtpc_feed()
	 * returns -1 from now on. */
	SMTPC_EV_FAILED,
};

struct smtpc_event {
	enum smtpc_event_kind kind;
	size_t rcpt;                /* RESULT: index into smtpc_tx.rcpts */
	struct smtpc_reply reply;   /* RESULT, FAILED; READY: the EHLO/HELO
				     * reply; BODY: the 354 */
	const char *error;          /* FAILED: static text */
};

/* DSN and body parameters use the values of smtp.h (enum smtp_body_type,
 * enum smtp_dsn_ret, SMTP_NOTIFY_*) as plain unsigned numbers */
struct smtpc_rcpt {
	const char *address;        /* without <> */
	unsigned notify;            /* SMTP_NOTIFY_* mask, 0: none */
	const char *orcpt;          /* "rfc822;a@b" (xtext as received), or NULL */
};

struct smtpc_tx {
	const char *mail_from;      /* "" for the null reverse-path */
	uint64_t size;              /* octets of the body, for SIZE= */
	unsigned body;              /* 0 unspecified, 1 7BIT, 2 8BITMIME */
	bool smtputf8;
	unsigned ret;               /* 0 unspecified, 1 FULL, 2 HDRS */
	const char *envid;          /* xtext as received, or NULL */
	const struct smtpc_rcpt *rcpts;
	size_t nrcpts;              /* >= 1 */
};

struct smtpc;

struct smtpc *smtpc_new(const struct smtpc_params *params);
void smtpc_free(struct smtpc **cp);

/*
 * Consumes server bytes (replies end in CRLF; a bare LF is taken as a
 * line end too). Stops early when events are ready; *used_r is how many
 * bytes were consumed. Returns 1 when events are ready, 0 when more input
 * is needed, -1 once the session is over (FAILED, or QUIT answered).
 */
int smtpc_feed(struct smtpc *c, const uint8_t *p, size_t n, size_t *used_r);

/* takes the next event; false when there is none */
bool smtpc_next(struct smtpc *c, struct smtpc_event *ev_r);

/*
 * Starts a transaction (only after READY or TX_DONE). Returns 0, or -1
 * with *error_r (static text) and nothing sent when the server cannot
 * take it: a message that needs 8BITMIME or SMTPUTF8 the server does not
 * offer, or larger than the SIZE it announced. The caller bounces such a
 * message (5.6.x / 5.3.4). It also refuses an address or ENVID/ORCPT with
 * a control character (or a parameter with a space), which would break
 * the command line, and any transaction once the session is over (FAILED
 * came meanwhile). The tx and its strings must stay valid until
 * TX_DONE. With PIPELINING, MAIL, every RCPT and DATA go out as one
 * group (RFC 2920 §3.1); otherwise one command per reply.
 * ENVID/RET/NOTIFY/ORCPT are sent only when the server offers DSN.
 */
int smtpc_begin(struct smtpc *c, const struct smtpc_tx *tx,
		const char **error_r);

/*
 * Body bytes (after BODY): lines get CRLF endings (a bare CR or LF
 * becomes CRLF) and a leading '.' is doubled (RFC 5321 §4.5.2).
 * smtpc_body_end() ends the last line if needed and sends ".". Both do
 * nothing once the session is over (a 421 may come while the body is
 * sent).
 */
void smtpc_body(struct smtpc *c, const uint8_t *p, size_t n);
void smtpc_body_end(struct smtpc *c);

/* queues QUIT (after READY or TX_DONE); the session ends at its reply.
 * Does nothing once the session is over. */
void smtpc_quit(struct smtpc *c);

/* the bytes to write; the caller empties it with buf_reset() */
struct buf *smtpc_out(struct smtpc *c);

/* extensions the server offered (SMTPC_EXT_*), 0 before READY */
unsigned smtpc_extensions(const struct smtpc *c);
/* the SIZE the server announced, 0 when none or unlimited */
uint64_t smtpc_size_max(const struct smtpc *c);

/*
 * Seconds the caller should wait for the server now (RFC 5321 §4.5.3.2:
 * the timeout of the reply awaited, or of the data block while the body
 * is sent); 0 when the engine waits for the caller (READY, TX_DONE).
 */
unsigned smtpc_timeout(const struct smtpc *c);

/*
 * What the engine waits for, for a deferral text: "greeting", "EHLO",
 * "HELO", "RSET", "MAIL FROM", "RCPT TO", "DATA", "message body" (the
 * caller sends it), "end of data", "QUIT", or "idle". With PIPELINING it
 * names the first reply still awaited. Once the session is over, what
 * was awaited when it ended.
 */
const char *smtpc_stage(const struct smtpc *c);

#endif

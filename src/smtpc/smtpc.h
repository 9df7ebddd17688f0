/* SPDX-License-Identifier: MIT */
/*
 * smtpc: the SMTP client engine that delivery uses to hand mail to
 * another server (RFC 5321, with PIPELINING 2920, SIZE 1870, 8BITMIME
 * 6152, SMTPUTF8 6531, DSN 3461, ENHANCEDSTATUSCODES 2034, STARTTLS 3207,
 * AUTH 4954 with PLAIN 4616 and LOGIN).
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
 *	on STARTTLS: start TLS on the connection, then smtpc_tls_started(c)
 *	on READY:   smtpc_begin(c, &tx) or smtpc_quit(c)
 *	on BODY:    smtpc_body(c, p, n) ... smtpc_body_end(c)
 *	on TX_DONE: every recipient of the transaction had its RESULT;
 *	            the engine is READY again for the next transaction
 *
 * One connection carries several transactions: after TX_DONE the
 * engine accepts smtpc_begin() again (it sends RSET first when the last
 * transaction ended early, RFC 5321 §4.1.1.5).
 *
 * The opening: greeting, EHLO (HELO when EHLO is refused), then as the
 * parameters ask STARTTLS and EHLO again (RFC 3207), then AUTH (RFC
 * 4954), then READY. TLS itself is the caller's: the engine only says
 * when to start it and is told when it is up. Credentials never go out
 * on a session the caller has not said is encrypted.
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

/* when the engine asks for TLS (RFC 3207) */
enum smtpc_tls {
	SMTPC_TLS_NONE = 0,   /* never: no STARTTLS, whatever is offered */
	SMTPC_TLS_MAY,        /* STARTTLS when the server offers it; in the
			       * clear when it does not or refuses it */
	SMTPC_TLS_REQUIRE,    /* STARTTLS or FAILED (SMTPC_FAIL_TLS): no
			       * command after EHLO goes in the clear */
};

/* a limit left at 0 takes its SMTPC_*_DEFAULT */
struct smtpc_params {
	const char *helo_name;      /* our name in EHLO/HELO; copied */
	size_t reply_max;
	unsigned reply_lines_max;
	unsigned timeout_greeting, timeout_mail, timeout_rcpt;
	unsigned timeout_data, timeout_block, timeout_dot;
	enum smtpc_tls tls;
	/* AUTH before READY (RFC 4954), only on an encrypted session: PLAIN
	 * when the server offers it, else LOGIN. NULL: no AUTH. Both are
	 * copied; the engine wipes its copies once AUTH is over and at
	 * smtpc_free(), and never puts them in an event. */
	const char *auth_user;
	const char *auth_password;
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

/* SASL mechanisms the engine speaks, as offered in the AUTH keyword */
#define SMTPC_AUTH_PLAIN      0x1u  /* RFC 4616 */
#define SMTPC_AUTH_LOGIN      0x2u  /* draft-murchison-sasl-login */

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
	/* the server said 220 to STARTTLS: the caller starts TLS on the
	 * connection now, dropping any byte it read after the 220 (RFC 3207
	 * §4.2), and calls smtpc_tls_started() once the handshake is done,
	 * or ends the session when it fails. The engine sends nothing and
	 * takes no reply until then. */
	SMTPC_EV_STARTTLS,
};

/* FAILED: who ended the session, for the caller's status code */
enum smtpc_fail {
	SMTPC_FAIL_SESSION = 0, /* the server or the connection */
	SMTPC_FAIL_TLS,         /* TLS required: STARTTLS not offered (no
				 * reply), or refused (its reply) */
	SMTPC_FAIL_AUTH_CLEAR,  /* AUTH wanted on a session without TLS:
				 * nothing was sent */
	SMTPC_FAIL_AUTH_MECH,   /* the server offers no AUTH mechanism the
				 * engine speaks (or no AUTH at all) */
	SMTPC_FAIL_AUTH,        /* the server refused the credentials or the
				 * exchange (its reply: 535 ...) */
};

struct smtpc_event {
	enum smtpc_event_kind kind;
	size_t rcpt;                /* RESULT: index into smtpc_tx.rcpts */
	struct smtpc_reply reply;   /* RESULT, FAILED; READY: the EHLO/HELO
				     * reply (code 0 when STARTTLS or AUTH
				     * came after it); BODY: the 354;
				     * STARTTLS: the 220 */
	const char *error;          /* FAILED: static text */
	enum smtpc_fail fail;       /* FAILED: why */
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

/*
 * TLS is up on the connection (after STARTTLS): the engine forgets what
 * the server said before (RFC 3207 §4.2) and sends EHLO again. Does
 * nothing once the session is over.
 */
void smtpc_tls_started(struct smtpc *c);
/* true once smtpc_tls_started() was called */
bool smtpc_tls_active(const struct smtpc *c);

/* the mechanism AUTH succeeded with ("PLAIN", "LOGIN"), or NULL */
const char *smtpc_auth_used(const struct smtpc *c);
/* mechanisms the server offered (SMTPC_AUTH_*), 0 before READY */
unsigned smtpc_auth_offered(const struct smtpc *c);

/* extensions the server offered (SMTPC_EXT_*), 0 before READY (after
 * STARTTLS: those of the EHLO over TLS) */
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
 * "HELO", "STARTTLS", "TLS handshake" (the caller's), "AUTH", "RSET",
 * "MAIL FROM", "RCPT TO", "DATA", "message body" (the caller sends it),
 * "end of data", "QUIT", or "idle". With PIPELINING it
 * names the first reply still awaited. Once the session is over, what
 * was awaited when it ended.
 */
const char *smtpc_stage(const struct smtpc *c);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * smtp: the ESMTP server protocol engine (RFC 5321 with SIZE, PIPELINING,
 * 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN).
 *
 * With STARTTLS (RFC 3207) and AUTH (RFC 4954): the engine runs the
 * commands and the 334 exchange (base64 included); TLS itself and the
 * SASL mechanisms are the caller's.
 *
 * Pure code: bytes in, reply bytes and events out. It never touches a
 * socket, a clock, a file or the environment. Every decision that needs
 * knowledge of the outside (is this a local recipient? is the message on
 * disk?) is handed to the caller as an event, and the engine waits for
 * the caller's verdict before it reads further input.
 *
 * Usage by the I/O layer (serve/):
 *
 *	e = smtp_engine_new(&params);
 *	smtp_engine_greet(e);                    // 220 goes to out
 *	loop:
 *	  r = smtp_engine_feed(e, p, n, &used);  // consumes up to n bytes
 *	  while (smtp_engine_next(e, &ev))       // handle each event
 *	      ... if ev needs a verdict: smtp_engine_decide() now or later
 *	  write smtp_engine_out(e) to the peer, then buf_reset() it
 *	  r == -1: close after the output is written
 *	  smtp_engine_waiting(e): stop feeding until decide() is called
 */
#ifndef TERN_SMTP_H
#define TERN_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF */
#define SMTP_LINE_MAX_DEFAULT 512
/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with CRLF */
#define SMTP_TEXT_LINE_MAX 1000
/* RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted */
#define SMTP_RCPT_MAX_DEFAULT 1000
#define SMTP_SIZE_MAX_DEFAULT (50ULL * 1024 * 1024)
#define SMTP_ERRORS_MAX_DEFAULT 20
/* junk commands (NOOP RSET VRFY EXPN HELP) per message, as Postfix's
 * smtpd_junk_command_limit */
#define SMTP_JUNK_MAX_DEFAULT 100
#define SMTP_AUTH_FAILURES_MAX_DEFAULT 3
/* RFC 4954 §4: an AUTH command line with its initial response, and each
 * response line, may be 12,288 octets with CRLF */
#define SMTP_AUTH_LINE_MAX 12288
/* the longest challenge whose "334 " base64 CRLF line fits that too */
#define SMTP_AUTH_CHALLENGE_MAX ((SMTP_AUTH_LINE_MAX - 6) / 4 * 3)

/* a limit left at 0 takes its SMTP_*_DEFAULT */
struct smtp_params {
	const char *hostname;     /* greeting and EHLO; copied */
	uint64_t size_max;        /* message size limit in octets (SIZE) */
	unsigned rcpt_max;        /* recipients per transaction */
	unsigned errors_max;      /* 421 and close after this many errors
				   * (refused commands and recipients) */
	bool vrfy_enabled;        /* false: VRFY answers 252 itself */
	bool expn_enabled;        /* false: EXPN answers 502 itself */
	unsigned junk_max;        /* junk commands per message (counted
				   * again from each accepted one); one
				   * more gets 421 4.7.0 */

	/* STARTTLS (RFC 3207) and AUTH (RFC 4954) */
	bool starttls;            /* offer STARTTLS while not in TLS */
	bool tls;                 /* the session is in TLS from the start
				   * (implicit TLS, RFC 8314) */
	const char *auth_mechs;   /* "PLAIN LOGIN ...": AUTH is offered
				   * with these; NULL or "" for no AUTH;
				   * copied */
	bool auth_clear;          /* AUTH allowed without TLS; false: 538
				   * 5.7.11 in clear, and not advertised */
	bool auth_required;       /* MAIL needs AUTH first: 530 5.7.0 */
	unsigned auth_failures_max; /* the failed AUTH that reaches it gets
				     * 421 4.7.0 rather than 535 */
};

enum smtp_event_kind {
	SMTP_EV_NONE = 0,
	/* informational: already answered by the engine */
	SMTP_EV_HELO,        /* HELO or EHLO accepted; helo_name, esmtp */
	SMTP_EV_RSET,        /* transaction dropped (RSET, HELO/EHLO again) */
	SMTP_EV_DATA_CHUNK,  /* body bytes of the current message */
	SMTP_EV_DATA_ABORT,  /* message refused; engine sent the reason */
	SMTP_EV_QUIT,        /* 221 sent; close after output */
	SMTP_EV_PROTOCOL_ERROR, /* a command was refused; reply in `reply` */
	SMTP_EV_AUTH_ABORT,  /* the AUTH exchange ended without a verdict
				(client sent "*", bad base64, a line too
				long, a challenge too long, or the session
				closed by timeout, shutdown, the errors
				limit or a verdict's close): drop its
				state. smtp_engine_free() sends none: the
				caller drops its state there too */
	/* need smtp_engine_decide() before any further input is read */
	SMTP_EV_MAIL,        /* MAIL FROM */
	SMTP_EV_RCPT,        /* RCPT TO */
	SMTP_EV_DATA_START,  /* DATA or first BDAT with >= 1 accepted rcpt */
	SMTP_EV_DATA_END,    /* whole body delivered as chunks */
	SMTP_EV_VRFY,        /* only with vrfy_enabled */
	SMTP_EV_EXPN,        /* only with expn_enabled */
	SMTP_EV_STARTTLS,    /* OK: the engine sends 220 and reads nothing
				more until smtp_engine_tls_started(); the
				octets after the STARTTLS line are never
				consumed, and the caller drops them when
				TLS starts (RFC 3207 §4.2); TEMPFAIL or
				PERMFAIL: 454 4.7.0 */
	SMTP_EV_AUTH,        /* a step of AUTH: auth_mech, and data/
				data_len the decoded response (see
				auth_step, auth_has_data) */
};

/* BODY= (RFC 6152) */
enum smtp_body_type {
	SMTP_BODY_UNSPEC = 0,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

/* RET= (RFC 3461 §4.3) */
enum smtp_dsn_ret {
	SMTP_RET_UNSPEC = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

/* NOTIFY= flags (RFC 3461 §4.1) */
#define SMTP_NOTIFY_NEVER   0x01u
#define SMTP_NOTIFY_SUCCESS 0x02u
#define SMTP_NOTIFY_FAILURE 0x04u
#define SMTP_NOTIFY_DELAY   0x08u

struct smtp_mail_params {
	uint64_t size;              /* SIZE=, 0 when absent */
	enum smtp_body_type body;
	bool smtputf8;
	enum smtp_dsn_ret ret;
	const char *envid;          /* ENVID= as sent (xtext), or NULL */
};

struct smtp_rcpt_params {
	unsigned notify;            /* SMTP_NOTIFY_* mask, 0 when absent */
	const char *orcpt;          /* ORCPT= as sent ("rfc822;..."), or NULL */
};

/*
 * An event. Every pointer in it is owned by the engine and valid until the
 * next call to smtp_engine_feed(), smtp_engine_decide() or
 * smtp_engine_free(). Addresses are the text between < and >, without
 * them; the null reverse-path is "".
 */
struct smtp_event {
	enum smtp_event_kind kind;
	const char *helo_name;      /* HELO, and with every later event */
	bool esmtp;                 /* EHLO rather than HELO */
	const char *address;        /* MAIL, RCPT, VRFY/EXPN argument */
	struct smtp_mail_params mail;   /* MAIL */
	struct smtp_rcpt_params rcpt;   /* RCPT */
	const uint8_t *data;        /* DATA_CHUNK: unstuffed body bytes */
	size_t data_len;
	uint64_t size;              /* DATA_END: total body octets */
	bool chunking;              /* DATA_START/END: BDAT rather than DATA */
	const char *reply;          /* PROTOCOL_ERROR, DATA_ABORT: the reply
				       line sent, without CRLF */
	/* AUTH: the mechanism as listed in auth_mechs ("PLAIN"); data and
	 * data_len hold the decoded client response (not NUL-terminated,
	 * may hold NULs; NULL without data). auth_step 0 is the AUTH
	 * command itself, with auth_has_data true when it had an initial
	 * response ("=" is an empty one); steps 1, 2, ... are the
	 * responses to 334 challenges (auth_has_data always true). The
	 * data is wiped when the engine reuses its memory. AUTH_ABORT
	 * carries auth_mech too. */
	const char *auth_mech;
	unsigned auth_step;
	bool auth_has_data;
};

enum smtp_verdict_kind {
	SMTP_VERDICT_OK = 0,
	SMTP_VERDICT_TEMPFAIL,
	SMTP_VERDICT_PERMFAIL,
};

/*
 * The caller's answer to the event that waits. With code == 0 the engine
 * uses its standard reply for the kind (for example 250 2.1.5 for RCPT,
 * 451 4.3.0 for TEMPFAIL, 550 5.1.1 for a refused RCPT). With a code,
 * `enhanced` ("2.1.5") and `text` form the reply. For VRFY/EXPN `lines`
 * (count `nlines`) may give several reply lines (a multi-line 250).
 * The engine copies everything it keeps.
 */
struct smtp_verdict {
	enum smtp_verdict_kind kind;
	unsigned code;
	const char *enhanced;
	const char *text;
	const char *const *lines;
	size_t nlines;
	/* MAIL/DATA_START/DATA_END: close the session after this reply */
	bool close;
	/*
	 * AUTH: auth_continue true sends "334 " + base64(challenge) (kind
	 * and code are not looked at) and reads the next line as the
	 * response; the line may pass 512 octets, up to
	 * SMTP_AUTH_LINE_MAX. A challenge longer than
	 * SMTP_AUTH_CHALLENGE_MAX ends the exchange instead: 454 4.7.0 and
	 * SMTP_EV_AUTH_ABORT. Otherwise OK is 235 2.7.0 (the session is
	 * authenticated), PERMFAIL 535 5.7.8 (counted toward
	 * auth_failures_max: the failure that reaches it gets 421 4.7.0
	 * and a close instead, whatever code says), TEMPFAIL 454 4.7.0,
	 * unless code says otherwise.
	 * STARTTLS: OK is always 220 2.0.0 (text may change); TEMPFAIL
	 * and PERMFAIL are 454 4.7.0 unless code says otherwise.
	 */
	bool auth_continue;
	const uint8_t *challenge;
	size_t challenge_len;
};

/* engine phase, for the caller's choice of timeout (RFC 5321 §4.5.3.2) */
enum smtp_phase {
	SMTP_PHASE_COMMAND = 0, /* waiting for a command line */
	SMTP_PHASE_DATA,        /* inside DATA or a BDAT chunk */
	SMTP_PHASE_CLOSED,      /* engine asked to close */
};

struct smtp_engine;

/* copies what it keeps of params */
struct smtp_engine *smtp_engine_new(const struct smtp_params *params);
void smtp_engine_free(struct smtp_engine **ep);

/* appends the 220 greeting to the output */
void smtp_engine_greet(struct smtp_engine *e);

/*
 * Consumes bytes. Stops early when an event is ready or a verdict is
 * awaited; *used_r says how many bytes were consumed (the caller keeps the
 * rest and feeds it again later). Returns 1 when events are ready, 0 when
 * all input was consumed (or a verdict is awaited and no event is ready,
 * or STARTTLS was accepted and smtp_engine_tls_started() was not called
 * yet: then nothing is consumed), -1 when the session must close after
 * the output is written.
 */
int smtp_engine_feed(struct smtp_engine *e, const uint8_t *p, size_t n,
		     size_t *used_r);

/* takes the next event; false when there is none */
bool smtp_engine_next(struct smtp_engine *e, struct smtp_event *ev_r);

/* answers the event that waits (see smtp_engine_waiting) */
/* call it once that event has been taken with smtp_engine_next(); it may
 * queue events of its own (a BDAT chunk of 0 octets completes at once; a
 * refused RCPT or AUTH reaches its limit: PROTOCOL_ERROR with the 421;
 * SMTP_EV_AUTH_ABORT), which smtp_engine_next() hands out as after a
 * feed */
void smtp_engine_decide(struct smtp_engine *e,
			const struct smtp_verdict *v);

/* true while an event waits for smtp_engine_decide() (not while the TLS
 * handshake after STARTTLS is due) */
bool smtp_engine_waiting(const struct smtp_engine *e);

/* the bytes the caller must write; the caller empties it with buf_reset */
struct buf *smtp_engine_out(struct smtp_engine *e);

/* the caller's timeout fired: appends 421 4.4.2 and closes */
void smtp_engine_timeout(struct smtp_engine *e);
/* the server stops: appends 421 4.3.2 and closes */
void smtp_engine_shutdown(struct smtp_engine *e);

enum smtp_phase smtp_engine_phase(const struct smtp_engine *e);

/*
 * The TLS handshake after STARTTLS succeeded: the engine forgets
 * everything the client said before (RFC 3207 §4.2: HELO, AUTH, the
 * transaction), stops offering STARTTLS (a second one gets 503 5.5.1),
 * may offer AUTH now, and reads input again, waiting for EHLO. The
 * error, junk and AUTH failure counts are kept. Call it only after an
 * OK verdict on SMTP_EV_STARTTLS (it does nothing once the session is
 * closed).
 */
void smtp_engine_tls_started(struct smtp_engine *e);

/* true once an AUTH succeeded in this session */
bool smtp_engine_authenticated(const struct smtp_engine *e);

/*
 * Command lines (and AUTH responses) read so far, refused ones included
 * (a BDAT chunk's octets and a DATA body are not lines): the caller
 * re-arms its whole-command deadline when this changes, never on single
 * bytes.
 */
uint64_t smtp_engine_commands(const struct smtp_engine *e);

#endif

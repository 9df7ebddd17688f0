/* SPDX-License-Identifier: MIT */
/*
 * smtp_int.h: private parts of the SMTP server engine, shared by the files
 * of src/smtp/ and by its unit tests. Nothing else includes it. Like the
 * rest of the engine it knows no sockets, clocks or files.
 */
#ifndef TERN_SMTP_INT_H
#define TERN_SMTP_INT_H

#include "smtp/smtp.h"

/* RFC 5321 §4.5.3.1.4: the text of a command line, CRLF not counted */
#define SMTP_CMD_TEXT_MAX (SMTP_LINE_MAX_DEFAULT - 2)
/* RFC 4954 §4: the text of an AUTH command or response line */
#define SMTP_AUTH_TEXT_MAX (SMTP_AUTH_LINE_MAX - 2)
/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with CRLF */
#define SMTP_REPLY_LINE_MAX 512
/* body octets handed out per SMTP_EV_DATA_CHUNK event */
#define SMTP_CHUNK_MAX 8192
/* events one command can produce; feed() stops after each command that
 * produced any, so four is plenty (RSET + HELO, ERROR + 421 ERROR,
 * CHUNK + DATA_END, AUTH_ABORT + ERROR + 421 ERROR) */
#define SMTP_EVQ_MAX 4
/* the output buffer faces the peer: serve/ drains it after every feed(),
 * so only a caller that never drains can reach this */
#define SMTP_OUT_MAX (256u * 1024)
/* idle buffers larger than this are released at the start of a turn */
#define SMTP_IDLE_KEEP 512
/* RFC 3461 §4.4: an ENVID value is at most 100 characters */
#define SMTP_ENVID_MAX 100
/* RFC 3461 §4.2: an ORCPT value is at most 500 characters */
#define SMTP_ORCPT_MAX 500
/* RFC 1870 §4: size-value = 1*20DIGIT */
#define SMTP_SIZE_DIGITS_MAX 20

/* where the session is; a command's table entry lists where it is allowed */
enum smtp_state {
	SMTP_ST_INIT = 1u << 0,   /* no HELO/EHLO yet */
	SMTP_ST_READY = 1u << 1,  /* greeted, no transaction */
	SMTP_ST_MAIL = 1u << 2,   /* MAIL accepted: a transaction is open */
};
#define SMTP_ST_ANY (SMTP_ST_INIT | SMTP_ST_READY | SMTP_ST_MAIL)

/* what the next input octets are */
enum smtp_input {
	SMTP_IN_LINE = 0,  /* command lines */
	SMTP_IN_DATA,      /* a DATA body, up to CRLF.CRLF */
	SMTP_IN_BDAT,      /* the octets of one BDAT chunk */
};

/* position inside a DATA body line (RFC 5321 §4.5.2) */
enum smtp_dot {
	SMTP_DOT_BOL = 0,  /* at the start of a line */
	SMTP_DOT_DOT,      /* a line began with "."; it was dropped */
	SMTP_DOT_DOTCR,    /* "." then CR at the start of a line */
	SMTP_DOT_MID,      /* inside a line */
	SMTP_DOT_CR,       /* inside a line, after CR */
};

/* why the message being received will be refused at its end */
enum smtp_bad {
	SMTP_BAD_NONE = 0,
	SMTP_BAD_CRLF,     /* bare CR or bare LF */
	SMTP_BAD_NUL,
	SMTP_BAD_SIZE,     /* more than size_max octets */
};

/* a refusal: the reply and whether it counts toward errors_max */
struct smtp_rej {
	unsigned code;
	const char *enhanced;   /* NULL: none (replies to HELO/EHLO) */
	const char *text;
	bool counts;
};

/* "no string" marker for the offsets below */
#define SMTP_NOSTR ((size_t)-1)

/* a queued event; its strings live in e->evstr, kept as offsets because
 * evstr may move while it grows */
struct smtp_qev {
	struct smtp_event ev;
	size_t address, envid, orcpt, reply;
	size_t data;               /* AUTH: the decoded response */
};

struct smtp_engine {
	/* configuration */
	char *hostname;
	uint64_t size_max;
	unsigned rcpt_max;
	unsigned errors_max;
	bool vrfy_enabled;
	bool expn_enabled;
	unsigned junk_max;
	bool starttls;             /* STARTTLS offered while not in TLS */
	char *mechs;               /* AUTH mechanisms, each NUL-terminated,
				      nmechs of them; NULL: no AUTH */
	unsigned nmechs;
	char *auth_kw;             /* the EHLO keyword: "AUTH PLAIN ..." */
	bool auth_clear;
	bool auth_required;
	unsigned auth_failures_max;

	unsigned state;            /* one SMTP_ST_* */
	enum smtp_input in;
	bool closed;
	unsigned errors;
	unsigned junk;             /* junk commands since the last message */
	uint64_t commands;         /* command and AUTH response lines read */

	/* STARTTLS and AUTH */
	bool tls;                  /* the session is in TLS */
	bool tls_wait;             /* 220 sent: read nothing until
				      smtp_engine_tls_started() */
	bool authed;
	unsigned auth_failures;
	const char *auth_mech;     /* the exchange's mechanism, in mechs */
	unsigned auth_step;        /* its last step */
	bool auth_open;            /* 334 sent: the next line is a response */
	bool secret;               /* evstr holds AUTH data: wipe it */

	/* the command line being read */
	char line[SMTP_CMD_TEXT_MAX + 1];
	size_t line_len;
	bool line_cr;              /* the last octet was CR */
	bool line_bare;            /* a bare CR or LF was seen */
	bool line_nul;
	bool line_long;            /* refused as too long; skip to CRLF */
	/* an AUTH line past 510 octets (RFC 4954 §4) goes on in this heap
	 * buffer, which exists only while such a line is read */
	struct buf big;
	bool line_big;

	/* HELO/EHLO */
	char *helo;
	char *helo_old;            /* freed at the next turn: events use it */
	bool esmtp;

	/* the transaction */
	bool tx_utf8;              /* MAIL had SMTPUTF8 */
	unsigned rcpt_cmds;        /* RCPT commands in this transaction */
	unsigned rcpt_ok;          /* accepted recipients */
	bool bdat_open;            /* BDAT chunks are being received */
	bool bdat_failed;          /* discard BDATs until LAST (RFC 3030 §2) */

	/* the verdict awaited, SMTP_EV_NONE when none */
	enum smtp_event_kind wait;
	bool wait_utf8;            /* MAIL: SMTPUTF8 given */
	size_t wait_arg;           /* VRFY/EXPN: the argument in evstr */

	/* the message body */
	enum smtp_dot dot;
	enum smtp_bad bad;
	bool body_cr;              /* BDAT: the last body octet was CR */
	uint64_t body_size;
	struct buf chunk;          /* body octets not yet handed out */

	/* the current BDAT chunk */
	uint64_t bdat_size;
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_skip;            /* refused: read and drop its octets */

	/* events, handed out in order by smtp_engine_next() */
	struct smtp_qev q[SMTP_EVQ_MAX];
	unsigned qhead, qlen;
	struct buf evstr;

	struct buf out;
};

/* ---- smtp_engine.c ------------------------------------------------ */

/* queues an event of `kind` and returns it for filling in */
struct smtp_qev *smtp_ev_push(struct smtp_engine *e,
			      enum smtp_event_kind kind);
/* copies n octets of text into the event strings; returns its offset */
size_t smtp_ev_str(struct smtp_engine *e, const char *s, size_t n);
/* queues an event that waits for smtp_engine_decide() */
struct smtp_qev *smtp_ev_wait(struct smtp_engine *e,
			      enum smtp_event_kind kind);
/* drops the transaction (not the HELO) */
void smtp_tx_reset(struct smtp_engine *e);
/* closes the session: no more input is read; an open AUTH exchange
 * ends with SMTP_EV_AUTH_ABORT */
void smtp_close(struct smtp_engine *e);

/* ---- smtp_reply.c ------------------------------------------------- */

/*
 * Formats one reply line without CRLF into dst (SMTP_REPLY_LINE_MAX
 * octets): "code" sep "enhanced SP text". Octets of text that are not
 * printable ASCII become '?', and the text is cut so that the line with
 * CRLF fits 512 octets. Returns the length.
 */
size_t smtp_reply_fmt(char *dst, unsigned code, char sep,
		      const char *enhanced, const char *text);
/* appends one reply line (see smtp_reply_fmt) to the output */
void smtp_reply(struct smtp_engine *e, unsigned code, const char *enhanced,
		const char *text);
/* the same, one line of a multi-line reply: more = another line follows */
void smtp_reply_part(struct smtp_engine *e, unsigned code, bool more,
		     const char *enhanced, const char *text);
/* appends a reply line and queues an event of `kind` whose reply it is */
void smtp_reply_event(struct smtp_engine *e, enum smtp_event_kind kind,
		      unsigned code, const char *enhanced, const char *text);
/* printf-style text */
void smtp_replyf(struct smtp_engine *e, unsigned code, const char *enhanced,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * Refuses a command: appends the reply, queues SMTP_EV_PROTOCOL_ERROR and,
 * when the refusal counts, counts it; at errors_max it appends 421 and
 * closes (RFC 5321 §3.8 lets a server close with 421).
 */
void smtp_refuse(struct smtp_engine *e, const struct smtp_rej *rej);
void smtp_refusef(struct smtp_engine *e, unsigned code, const char *enhanced,
		  bool counts, const char *text);
/* appends a 421 reply with the host name and closes */
void smtp_close_421(struct smtp_engine *e, const char *enhanced,
		    const char *why);
/* the same, as a refusal: the 421 line goes out as SMTP_EV_PROTOCOL_ERROR
 * too, so that the caller logs why the session ended */
void smtp_refuse_421(struct smtp_engine *e, const char *enhanced,
		     const char *why);
/* counts one error toward errors_max; at the limit appends 421 (with its
 * SMTP_EV_PROTOCOL_ERROR) and closes */
void smtp_error(struct smtp_engine *e);
/* appends an unformatted line (the caller made it safe: printable ASCII,
 * no CR or LF) and CRLF: for 334 lines, which may pass 512 octets */
void smtp_reply_raw(struct smtp_engine *e, const char *line, size_t n);

/* ---- smtp_cmd.c --------------------------------------------------- */

/* runs one complete command line (NUL-terminated, no CRLF) */
void smtp_cmd_run(struct smtp_engine *e, char *line, size_t len);
/* answers the awaited event of kind `kind` with v */
void smtp_cmd_verdict(struct smtp_engine *e, enum smtp_event_kind kind,
		      const struct smtp_verdict *v);

/* the standard replies to a verdict on one kind of event */
struct smtp_defaults {
	unsigned ok_code;
	const char *ok_enh, *ok_text;     /* ok_text NULL: the argument */
	unsigned temp_code;               /* 0: 451 4.3.0 */
	const char *temp_enh, *temp_text;
	unsigned perm_code;
	const char *perm_enh, *perm_text;
};

/*
 * Sends the reply for a verdict: with code 0 the standard reply for the
 * kind (v->text, when given, replaces only its text); with a code, code,
 * enhanced and text as given. `arg` is the default OK text (VRFY/EXPN).
 */
void smtp_verdict_reply(struct smtp_engine *e, const struct smtp_verdict *v,
			const struct smtp_defaults *d, const char *arg);

/* ---- smtp_auth.c -------------------------------------------------- */

void smtp_cmd_starttls(struct smtp_engine *e, char *args);
void smtp_cmd_auth(struct smtp_engine *e, char *args);
/* the EHLO keywords, NULL when not offered now */
const char *smtp_starttls_keyword(const struct smtp_engine *e);
const char *smtp_auth_keyword(const struct smtp_engine *e);
/* true when an AUTH command would be taken now: its line may be long */
bool smtp_auth_usable(const struct smtp_engine *e);
/* a line read while an exchange is open: the client's response */
void smtp_auth_response(struct smtp_engine *e, char *line, size_t len);
/* the exchange ends without a verdict: SMTP_EV_AUTH_ABORT */
void smtp_auth_abort(struct smtp_engine *e);
void smtp_auth_verdict(struct smtp_engine *e, const struct smtp_verdict *v);
void smtp_starttls_verdict(struct smtp_engine *e,
			   const struct smtp_verdict *v);

/* ---- smtp_mail.c -------------------------------------------------- */

void smtp_cmd_mail(struct smtp_engine *e, char *args);
void smtp_cmd_rcpt(struct smtp_engine *e, char *args);

/* ---- smtp_data.c -------------------------------------------------- */

void smtp_cmd_data(struct smtp_engine *e, char *args);
void smtp_cmd_bdat(struct smtp_engine *e, char *args);
/* the verdict on DATA_START was OK */
void smtp_data_begin(struct smtp_engine *e, bool chunking);
/* consumes body input; returns the octets used */
size_t smtp_data_feed(struct smtp_engine *e, const uint8_t *p, size_t n);
size_t smtp_bdat_feed(struct smtp_engine *e, const uint8_t *p, size_t n);
/* the current BDAT chunk has been read in full */
void smtp_bdat_done(struct smtp_engine *e);
/* queues the pending body octets as a DATA_CHUNK event, if any */
void smtp_chunk_flush(struct smtp_engine *e);

/* ---- smtp_parse.c ------------------------------------------------- */

/* flags for smtp_parse_path() */
#define SMTP_PATH_NULL_OK    0x01u  /* "<>" allowed: MAIL */
#define SMTP_PATH_POSTMASTER 0x02u  /* "<Postmaster>" allowed: RCPT */
#define SMTP_PATH_TRAILING_DOT 0x04u /* "<a@b.example.>" taken: RCPT */

enum smtp_path_result {
	SMTP_PATH_OK = 0,
	SMTP_PATH_SYNTAX,    /* no "<...>" at all: 501 */
	SMTP_PATH_MAILBOX,   /* "<...>" with a bad mailbox inside: 553 */
};

struct smtp_path {
	const char *addr;    /* the mailbox, source route dropped */
	size_t len;
	const char *end;     /* just past the closing '>' */
	bool non_ascii;      /* UTF-8 in the mailbox (RFC 6531) */
	bool postmaster;     /* "<Postmaster>": addr is "Postmaster" */
};

/*
 * Parses a Reverse-path or Forward-path (RFC 5321 §4.1.2) at the start of
 * s. UTF-8 is accepted where RFC 6531 §3.3 allows it and reported in
 * non_ascii; the caller decides whether SMTPUTF8 allows it.
 */
enum smtp_path_result smtp_parse_path(const char *s, unsigned flags,
				      struct smtp_path *path_r);

/* parsed ESMTP parameters of MAIL and RCPT */
struct smtp_esmtp {
	struct smtp_mail_params mail;
	struct smtp_rcpt_params rcpt;
	bool utf8_values;    /* RFC 6533: UTF-8 allowed in ORCPT values */
	bool auth_ok;        /* RFC 4954 §5: AUTH= taken (AUTH offered) */
};

/*
 * Parses the parameters after a MAIL or RCPT path (s may be empty; SP
 * separated; modified in place: values are NUL-terminated where they
 * stand). Returns NULL when all are good, else the refusal.
 */
const struct smtp_rej *smtp_parse_mail_params(char *s,
					      struct smtp_esmtp *out);
const struct smtp_rej *smtp_parse_rcpt_params(char *s,
					      struct smtp_esmtp *out);

/* RFC 3461 §4: xtext (with hexchar "+" 2HEXDIG), at most max octets */
bool smtp_xtext_ok(const char *s, size_t max, bool utf8);
/* length of the valid UTF-8 non-ASCII sequence at s (RFC 3629), 0 if none */
size_t smtp_utf8_len(const unsigned char *s);

#endif

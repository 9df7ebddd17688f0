/* SPDX-License-Identifier: MIT */
/*
 * smtpc_int.h: private parts of the SMTP client engine, shared by the
 * files of src/smtpc/ and by its unit tests. Nothing else includes it.
 * Like the rest of the engine it knows no sockets, clocks or files.
 */
#ifndef TERN_SMTPC_INT_H
#define TERN_SMTPC_INT_H

#include "smtpc/smtpc.h"

/* NOTIFY= flags (RFC 3461 §4.1), the values of SMTP_NOTIFY_* in smtp.h */
#define SMTPC_NOTIFY_NEVER   0x01u
#define SMTPC_NOTIFY_SUCCESS 0x02u
#define SMTPC_NOTIFY_FAILURE 0x04u
#define SMTPC_NOTIFY_DELAY   0x08u
/* BODY= (RFC 6152) and RET= (RFC 3461 §4.3), as in smtp.h */
#define SMTPC_BODY_7BIT      1u
#define SMTPC_BODY_8BITMIME  2u
#define SMTPC_RET_FULL       1u
#define SMTPC_RET_HDRS       2u

/* RFC 3463 §2: class "." 1*3digit "." 1*3digit, "5.123.123" and a NUL */
#define SMTPC_ENHANCED_MAX 10
/* idle buffers larger than this are released at the start of a turn */
#define SMTPC_IDLE_KEEP 4096

enum smtpc_state {
	SMTPC_ST_GREETING = 0, /* the 220 is awaited */
	SMTPC_ST_EHLO,         /* the EHLO reply is awaited */
	SMTPC_ST_HELO,         /* EHLO was refused; the HELO reply */
	SMTPC_ST_STARTTLS,     /* the reply to STARTTLS is awaited */
	SMTPC_ST_TLS,          /* the caller's handshake is awaited */
	SMTPC_ST_AUTH,         /* a reply in the AUTH exchange is awaited */
	SMTPC_ST_READY,        /* the caller's turn: begin() or quit() */
	SMTPC_ST_TX,           /* RSET/MAIL/RCPT/DATA replies awaited */
	SMTPC_ST_BODY,         /* 354 came: the caller sends the body */
	SMTPC_ST_DOT,          /* the reply to the final "." is awaited */
	SMTPC_ST_QUIT,         /* the reply to QUIT is awaited */
	SMTPC_ST_FAILED,       /* FAILED was queued; input is ignored */
	SMTPC_ST_CLOSED,       /* QUIT was answered */
};

/* inside SMTPC_ST_TX: whose reply comes next */
enum smtpc_step {
	SMTPC_STEP_RSET = 0,
	SMTPC_STEP_MAIL,
	SMTPC_STEP_RCPT,       /* of tx->rcpts[rcpt] */
	SMTPC_STEP_DATA,
};

/* inside SMTPC_ST_AUTH: what the reply answers */
enum smtpc_auth_step {
	SMTPC_AUTH_STEP_PLAIN = 0, /* AUTH PLAIN with its initial response */
	SMTPC_AUTH_STEP_LOGIN,     /* AUTH LOGIN: the 334 for the user name */
	SMTPC_AUTH_STEP_USER,      /* the user name: the 334 for the password */
	SMTPC_AUTH_STEP_PASSWORD,  /* the password: 235 or a refusal */
};

/* what reading a reply gave */
enum smtpc_rp {
	SMTPC_RP_MORE = 0,     /* the reply is not complete yet */
	SMTPC_RP_DONE,         /* c->code, c->enhanced, c->text are set */
	SMTPC_RP_ERROR,        /* not SMTP, or past a bound */
};

/* a queued event; with_reply: it carries the last reply read */
struct smtpc_qev {
	enum smtpc_event_kind kind;
	size_t rcpt;
	bool with_reply;
	const char *error;
	enum smtpc_fail fail;
};

struct smtpc {
	char *helo_name;
	size_t reply_max;
	unsigned reply_lines_max;
	unsigned t_greeting, t_mail, t_rcpt, t_data, t_block, t_dot;

	enum smtpc_state state;
	/* FAILED/CLOSED: what was awaited when the session ended */
	const char *end_stage;

	unsigned ext;              /* SMTPC_EXT_* of the EHLO reply */
	uint64_t size_max;
	unsigned auth_mechs;       /* SMTPC_AUTH_* of its AUTH keyword */
	unsigned ext_new;          /* from the EHLO reply being read */
	uint64_t size_new;
	unsigned auth_new;

	/* STARTTLS and AUTH */
	enum smtpc_tls tls;        /* the caller's policy */
	bool tls_tried;            /* STARTTLS was sent (or refused) */
	bool tls_on;               /* smtpc_tls_started() came */
	char *auth_user;           /* NULL: no AUTH; wiped once used */
	char *auth_password;
	enum smtpc_auth_step auth_step;
	const char *auth_used;     /* the mechanism that succeeded */
	bool out_secret;           /* out held credentials: wipe it */

	/* the reply being read (or the last one, once rp_done) */
	struct buf line;           /* the current line, without its LF */
	struct buf text;           /* every line's text, space-joined */
	size_t rp_total;           /* octets of the reply so far */
	unsigned rp_lines;         /* complete lines so far */
	unsigned code;             /* of the first line; 0 before */
	char enhanced[SMTPC_ENHANCED_MAX];
	bool rp_done;
	bool rp_keywords;          /* lines after the first are EHLO keywords */

	/* the open transaction */
	const struct smtpc_tx *tx;
	enum smtpc_step step;
	size_t rcpt;
	bool *accepted;            /* per recipient: RCPT got 2xx */
	size_t naccepted;
	bool mail_refused;
	bool pipe;                 /* the commands went out as one group */
	bool need_rset;            /* the last transaction ended early */

	/* body normalisation state, kept across smtpc_body() calls */
	bool body_bol;             /* at the start of a line */
	bool body_cr;              /* a CR came; is it followed by LF? */

	struct buf out;

	struct smtpc_qev *q;
	size_t qcap, qhead, qlen;
};

/* smtpc_reply.c */
/* reads reply octets; returns the octets used, the outcome in *rp_r and,
 * for SMTPC_RP_ERROR, a static text in *error_r */
size_t smtpc_reply_feed(struct smtpc *c, const uint8_t *p, size_t n,
			enum smtpc_rp *rp_r, const char **error_r);
/* forgets the last reply (the caller is done with its pointers) */
void smtpc_reply_reset(struct smtpc *c);
/* length of an RFC 3463 code of class `cls` at the start of t, else 0 */
size_t smtpc_enhanced_len(const char *t, size_t n, unsigned cls);

/* smtpc_engine.c */
void smtpc_ev_push(struct smtpc *c, enum smtpc_event_kind kind, size_t rcpt,
		   bool with_reply);
void smtpc_fail(struct smtpc *c, bool with_reply, const char *error);
/* the same, with a reason other than SMTPC_FAIL_SESSION */
void smtpc_fail_as(struct smtpc *c, bool with_reply, enum smtpc_fail fail,
		   const char *error);
/* the opening is over: READY (with_reply: it carries the reply read) */
void smtpc_ready(struct smtpc *c, bool with_reply);
void smtpc_out_str(struct smtpc *c, const char *s);
/* one line of the EHLO reply after the first: a keyword and its params */
void smtpc_ehlo_keyword(struct smtpc *c, const char *t, size_t n);

/* smtpc_auth.c */
/* the opening is done up to AUTH: starts it, or fails the session */
void smtpc_auth_start(struct smtpc *c);
void smtpc_auth_reply(struct smtpc *c);
/* wipes and frees the credentials */
void smtpc_auth_forget(struct smtpc *c);
/* the mechanisms in an AUTH keyword's parameters ("PLAIN LOGIN X") */
unsigned smtpc_auth_parse(const char *t, size_t n);
/* RFC 4648 §4 base64 of p[0..n) appended to out */
void smtpc_base64(struct buf *out, const uint8_t *p, size_t n);

/* smtpc_tx.c */
void smtpc_tx_reply(struct smtpc *c);
void smtpc_dot_reply(struct smtpc *c);
void smtpc_tx_clear(struct smtpc *c);

#endif

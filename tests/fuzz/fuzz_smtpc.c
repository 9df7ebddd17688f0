/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the SMTP client engine. The first input octet picks
 * the limits, the transactions' shape and how the rest is cut into reads;
 * the rest is what the server sends, and its last octet also picks the
 * STARTTLS policy, whether to log in (AUTH) and whether the caller's TLS
 * handshake fails. The caller begins a transaction at each READY/TX_DONE
 * (two, then QUIT), sends a body with dots and bare line ends in pieces,
 * says TLS is up at each STARTTLS (or gives up), and checks with
 * TN_ASSERT: every command line ends in CRLF with no CR or LF inside,
 * RESULTs come in recipient order, once each, and all before TX_DONE,
 * nothing follows FAILED, feed() returns -1 from then on, the body on the
 * wire is dot-stuffed CRLF text, a reply's text fits reply_max, nothing
 * goes out between STARTTLS's 220 and the end of the handshake, no AUTH
 * and no credential before TLS, no mail command in the clear when TLS is
 * required, and READY comes only after the TLS and login asked for.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtpc/smtpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NRCPTS_MAX 4

static const struct smtpc_rcpt rcpts[NRCPTS_MAX] = {
	{ .address = "a@y.test", .notify = 0x06,
	  .orcpt = "rfc822;a@y.test" },
	{ .address = "b@y.test", .notify = 0x01 },
	{ .address = "\"c d\"@y.test" },
	{ .address = "d@y.test", .notify = 0x08 },
};

static const char body[] = "Subject: x\n\n.line\r\n..\rbare cr\r\n.\r\n"
			   "\xc3\xa9 8bit\nend";

/* base64 of the user name and password (LOGIN), and of the PLAIN
 * message: none may go out before TLS */
#define FZ_USER "fz-user"
#define FZ_PASS "fz-pass"
static const char *const secrets[] = {
	"ZnotdXNlcg==", "ZnotcGFzcw==", /* "fz-user", "fz-pass" */
	"AGZ6LXVzZXIAZnotcGFzcw==", /* "\0fz-user\0fz-pass" */
};

struct fz {
	struct smtpc *c;
	const struct smtpc_params *params;
	bool tls_on;           /* the caller said TLS is up */
	bool tls_waiting;      /* STARTTLS came, the handshake runs */
	bool gave_up;          /* the handshake "failed": the caller closed */
	bool hold_tls;         /* ... which it does at STARTTLS */
	struct smtpc_tx tx[2];
	unsigned ntx;          /* transactions begun */
	bool open;             /* a transaction is open */
	bool failed;
	bool quit;
	size_t next_rcpt;      /* RESULTs come in order */
	unsigned char seen[NRCPTS_MAX];
	size_t nrcpts;
	bool in_body;          /* the body is going out */
	size_t body_start;     /* where it starts in the output log */
	struct buf wire;       /* every byte written since the body began */
	uint8_t cut;
};

/* each command line (outside the body) ends in CRLF, no bare CR/LF */
static void
check_commands(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n')
			TN_ASSERT(i > 0 && p[i - 1] == '\r');
		if (p[i] == '\r')
			TN_ASSERT(i + 1 < n && p[i + 1] == '\n');
	}
	TN_ASSERT(n == 0 || p[n - 1] == '\n');
}

/* the body as sent: CRLF lines, no line ".", ends with CRLF.CRLF */
static void
check_body(const struct buf *w)
{
	const uint8_t *p = w->p;
	size_t n = w->len, bol = 0;

	TN_ASSERT(n >= 3);
	TN_ASSERT(memcmp(p + n - 3, ".\r\n", 3) == 0);
	TN_ASSERT(n == 3 || memcmp(p + n - 5, "\r\n.\r\n", 5) == 0);
	for (size_t i = 0; i + 3 < n; i++) {
		if (p[i] == '\r')
			TN_ASSERT(p[i + 1] == '\n');
		if (p[i] == '\n')
			TN_ASSERT(i > 0 && p[i - 1] == '\r');
		if (i == bol && p[i] == '.')
			TN_ASSERT(i + 1 < n && p[i + 1] == '.');
		if (p[i] == '\n')
			bol = i + 1;
	}
}

static bool
has(const uint8_t *p, size_t n, const char *s)
{
	size_t k = strlen(s);

	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(p + i, s, k) == 0)
			return true;
	return false;
}

static void
take_output(struct fz *f)
{
	struct buf *out = smtpc_out(f->c);

	if (f->in_body)
		TN_ASSERT(buf_append(&f->wire, out->p, out->len) == 0);
	else
		check_commands(out->p, out->len);
	/* RFC 3207 §4.2: nothing between the 220 and the handshake */
	TN_ASSERT(!f->tls_waiting || out->len == 0);
	if (!f->tls_on) {
		/* credentials never in the clear (RFC 4954 §4) */
		TN_ASSERT(!has(out->p, out->len, "AUTH"));
		for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]);
		     i++)
			TN_ASSERT(!has(out->p, out->len, secrets[i]));
		/* TLS required: no mail command in the clear */
		if (f->params->tls == SMTPC_TLS_REQUIRE)
			TN_ASSERT(!has(out->p, out->len, "MAIL FROM") &&
				  !has(out->p, out->len, "QUIT"));
	}
	buf_reset(out);
}

static void
next_act(struct fz *f)
{
	const char *error = NULL;

	while (f->ntx < 2) {
		const struct smtpc_tx *tx = &f->tx[f->ntx++];

		if (smtpc_begin(f->c, tx, &error) == 0) {
			f->open = true;
			f->next_rcpt = 0;
			f->nrcpts = tx->nrcpts;
			memset(f->seen, 0, sizeof(f->seen));
			return;
		}
		TN_ASSERT(error != NULL);
		TN_ASSERT(smtpc_out(f->c)->len == 0);
	}
	smtpc_quit(f->c);
	f->quit = true;
}

static void
send_body(struct fz *f)
{
	size_t n = sizeof(body) - 1, step = 1 + f->cut % 7, i = 0;

	take_output(f);
	f->in_body = true;
	buf_reset(&f->wire);
	while (i < n) {
		size_t k = step < n - i ? step : n - i;

		smtpc_body(f->c, (const uint8_t *)body + i, k);
		i += k;
	}
	smtpc_body_end(f->c);
	take_output(f);
	check_body(&f->wire);
	f->in_body = false;
}

static void
check_reply(const struct fz *f, const struct smtpc_reply *r)
{
	TN_ASSERT(r->enhanced != NULL && r->text != NULL);
	TN_ASSERT(strlen(r->enhanced) < 10);
	TN_ASSERT(strlen(r->text) <= f->params->reply_max);
	if (r->code != 0) {
		TN_ASSERT(r->code >= 200 && r->code <= 599);
		if (r->enhanced[0] != '\0')
			TN_ASSERT(r->enhanced[0] == (char)('0' + r->code / 100));
	}
}

static void
drain(struct fz *f)
{
	struct smtpc_event ev;

	take_output(f);
	while (smtpc_next(f->c, &ev)) {
		TN_ASSERT(!f->failed);
		switch (ev.kind) {
		case SMTPC_EV_READY:
			TN_ASSERT(!f->open && f->ntx == 0);
			check_reply(f, &ev.reply);
			/* code 0 after a refused STARTTLS or after AUTH */
			TN_ASSERT(ev.reply.code / 100 == 2 ||
				  ev.reply.code == 0);
			TN_ASSERT(smtpc_tls_active(f->c) == f->tls_on);
			if (f->params->tls == SMTPC_TLS_REQUIRE)
				TN_ASSERT(f->tls_on);
			if (f->params->auth_user != NULL)
				TN_ASSERT(f->tls_on &&
					  smtpc_auth_used(f->c) != NULL);
			else
				TN_ASSERT(smtpc_auth_used(f->c) == NULL);
			next_act(f);
			break;
		case SMTPC_EV_STARTTLS:
			TN_ASSERT(f->params->tls != SMTPC_TLS_NONE);
			TN_ASSERT(!f->tls_on && !f->tls_waiting);
			TN_ASSERT(ev.reply.code == 220);
			TN_ASSERT(strcmp(smtpc_stage(f->c),
					 "TLS handshake") == 0);
			TN_ASSERT(smtpc_timeout(f->c) > 0);
			if (f->hold_tls) {
				/* the handshake failed: the caller closes */
				f->gave_up = true;
				f->tls_waiting = true;
				break;
			}
			smtpc_tls_started(f->c);
			f->tls_on = true;
			TN_ASSERT(smtpc_extensions(f->c) == 0);
			TN_ASSERT(strcmp(smtpc_stage(f->c), "EHLO") == 0);
			break;
		case SMTPC_EV_RESULT:
			TN_ASSERT(f->open);
			TN_ASSERT(ev.rcpt < f->nrcpts);
			TN_ASSERT(!f->seen[ev.rcpt]);
			f->seen[ev.rcpt] = 1;
			check_reply(f, &ev.reply);
			TN_ASSERT(ev.reply.code >= 200);
			/* 2xx only as the reply to the end of data */
			break;
		case SMTPC_EV_BODY:
			TN_ASSERT(f->open);
			TN_ASSERT(ev.reply.code / 100 == 3);
			TN_ASSERT(strcmp(smtpc_stage(f->c), "message body") == 0);
			send_body(f);
			TN_ASSERT(strcmp(smtpc_stage(f->c), "end of data") == 0);
			break;
		case SMTPC_EV_TX_DONE:
			TN_ASSERT(f->open);
			for (size_t i = 0; i < f->nrcpts; i++)
				TN_ASSERT(f->seen[i]);
			f->open = false;
			TN_ASSERT(smtpc_timeout(f->c) == 0);
			next_act(f);
			break;
		case SMTPC_EV_FAILED:
			TN_ASSERT(ev.error != NULL && ev.error[0] != '\0');
			check_reply(f, &ev.reply);
			TN_ASSERT(ev.fail <= SMTPC_FAIL_AUTH);
			if (ev.fail == SMTPC_FAIL_TLS)
				TN_ASSERT(f->params->tls == SMTPC_TLS_REQUIRE &&
					  !f->tls_on);
			if (ev.fail == SMTPC_FAIL_AUTH_CLEAR)
				TN_ASSERT(!f->tls_on);
			if (ev.fail >= SMTPC_FAIL_AUTH_CLEAR)
				TN_ASSERT(f->params->auth_user != NULL);
			f->failed = true;
			break;
		default:
			TN_ASSERT(!"unknown event");
		}
	}
	take_output(f);
}

/* feeds one read; returns false once the session is over */
static bool
feed(struct fz *f, const uint8_t *p, size_t n)
{
	unsigned idle = 0;

	for (;;) {
		size_t used = (size_t)-1;
		int r = smtpc_feed(f->c, p, n, &used);

		TN_ASSERT(used <= n);
		TN_ASSERT(r >= -1 && r <= 1);
		if (r == 0)
			TN_ASSERT(used == n);
		p += used;
		n -= used;
		drain(f);
		if (f->gave_up)
			return false;
		if (r < 0) {
			TN_ASSERT(f->failed || f->quit);
			TN_ASSERT(smtpc_feed(f->c, p, n, &used) == -1);
			TN_ASSERT(used == 0);
			TN_ASSERT(smtpc_timeout(f->c) == 0);
			TN_ASSERT(!smtpc_next(f->c, &(struct smtpc_event){ 0 }));
			return false;
		}
		TN_ASSERT(!f->failed);
		TN_ASSERT(smtpc_stage(f->c) != NULL);
		if (n == 0)
			return true;
		TN_ASSERT(used > 0 || r == 1 || ++idle < 3);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpc_params params = { .helo_name = "fuzz.test" };
	struct fz f;
	uint8_t cfg;

	if (size < 1)
		return 0;
	cfg = data[0];
	data++;
	size--;
	params.reply_max = (cfg & 0x01) ? 64 : 4096;
	params.reply_lines_max = (cfg & 0x02) ? 3 : 50;
	/* the last octet (still fed as data): TLS policy, AUTH, handshake */
	uint8_t cfg2 = size > 0 ? data[size - 1] : 0;
	params.tls = (enum smtpc_tls)(cfg2 % 3);
	if (cfg2 & 0x04) {
		params.auth_user = FZ_USER;
		params.auth_password = FZ_PASS;
	}

	memset(&f, 0, sizeof(f));
	f.params = &params;
	f.hold_tls = (cfg2 & 0x10) != 0;
	f.cut = cfg;
	buf_init(&f.wire, 0);
	for (unsigned i = 0; i < 2; i++) {
		struct smtpc_tx *tx = &f.tx[i];

		tx->mail_from = (cfg & 0x04) && i == 0 ? "" : "s@x.test";
		tx->size = (cfg & 0x08) ? 100000 : 60;
		tx->body = (unsigned)((cfg >> 4) + i) % 3;
		tx->smtputf8 = (cfg & 0x40) != 0 && i == 1;
		tx->ret = (unsigned)(cfg + i) % 3;
		tx->envid = (cfg & 0x80) ? "ENV+2B1" : NULL;
		tx->rcpts = rcpts + i;
		tx->nrcpts = 1 + ((size_t)cfg + i * 3) % (NRCPTS_MAX - i);
	}
	f.c = smtpc_new(&params);
	TN_ASSERT(strcmp(smtpc_stage(f.c), "greeting") == 0);

	bool open = true;
	if ((cfg & 0x30) == 0x30) {
		/* reads of 1..16 octets, lengths taken from the data */
		size_t i = 0;
		while (open && i < size) {
			size_t len = 1 + data[(i * 7) % size] % 16;
			if (len > size - i)
				len = size - i;
			open = feed(&f, data + i, len);
			i += len;
		}
	} else if ((cfg & 0x30) == 0x20) {
		size_t c1 = 0;
		if (size > 0)
			c1 = (data[size / 2] * (size_t)131) % (size + 1);
		open = feed(&f, data, c1);
		if (open)
			open = feed(&f, data + c1, size - c1);
	} else {
		open = feed(&f, data, size);
	}
	/* the caller's calls after the end do nothing */
	if (!open && !f.gave_up) {
		smtpc_body(f.c, (const uint8_t *)"x", 1);
		smtpc_body_end(f.c);
		smtpc_quit(f.c);
		TN_ASSERT(smtpc_out(f.c)->len == 0);
	}
	smtpc_free(&f.c);
	TN_ASSERT(f.c == NULL);
	buf_clear(&f.wire);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Transcript tests of the SMTP client engine: each case is what a server
 * sends, what the caller does at each READY/TX_DONE/BODY, and the
 * commands and events that must come out. Every server transcript is fed
 * whole, byte by byte, and split at every point, and each way must give
 * the same commands and events. Bodies are checked the same way on the
 * caller's side: split at every point, the wire bytes must not change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpc/smtpc.h"
#include "smtpc/smtpc_int.h"

/* ------------------------------------------------------------------ */
/* transactions the cases use */

static const struct smtpc_rcpt r_a[] = { { .address = "a@y.test" } };
static const struct smtpc_rcpt r_abc[] = {
	{ .address = "a@y.test" },
	{ .address = "b@y.test" },
	{ .address = "c@y.test" },
};
static const struct smtpc_rcpt r_dsn[] = {
	{ .address = "a@y.test", .notify = SMTPC_NOTIFY_SUCCESS |
	  SMTPC_NOTIFY_FAILURE, .orcpt = "rfc822;a@y.test" },
	{ .address = "b@y.test", .notify = SMTPC_NOTIFY_NEVER },
	{ .address = "c@y.test", .notify = SMTPC_NOTIFY_DELAY |
	  SMTPC_NOTIFY_FAILURE | SMTPC_NOTIFY_SUCCESS },
	/* NEVER excludes the others (RFC 3461 §4.1) */
	{ .address = "d@y.test", .notify = SMTPC_NOTIFY_NEVER |
	  SMTPC_NOTIFY_DELAY },
};
static const struct smtpc_rcpt r_ctl[] = { { .address = "a@y.test\r\nX" } };
static const struct smtpc_rcpt r_ctl_orcpt[] = {
	{ .address = "a@y.test", .orcpt = "rfc822;a@y.test X=1" },
};
static const struct smtpc_rcpt r_quoted[] = {
	{ .address = "\"a b\"@y.test" },
};

static const struct smtpc_tx tx1 = {
	.mail_from = "s@x.test", .size = 100, .rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx3 = {
	.mail_from = "s@x.test", .size = 100, .rcpts = r_abc, .nrcpts = 3,
};
static const struct smtpc_tx tx_null = {
	.mail_from = "", .size = 5, .rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_dsn = {
	.mail_from = "s@x.test", .size = 100, .body = SMTPC_BODY_8BITMIME,
	.smtputf8 = true, .ret = SMTPC_RET_FULL, .envid = "ENV+2B1",
	.rcpts = r_dsn, .nrcpts = 4,
};
static const struct smtpc_tx tx_hdrs7 = {
	.mail_from = "s@x.test", .size = 7, .body = SMTPC_BODY_7BIT,
	.ret = SMTPC_RET_HDRS, .rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_8bit = {
	.mail_from = "s@x.test", .size = 100, .body = SMTPC_BODY_8BITMIME,
	.rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_utf8 = {
	.mail_from = "s@x.test", .size = 100, .smtputf8 = true,
	.rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_10000 = {
	.mail_from = "s@x.test", .size = 10000, .rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_10001 = {
	.mail_from = "s@x.test", .size = 10001, .rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_ctl = {
	.mail_from = "s@x.test", .size = 1, .rcpts = r_ctl, .nrcpts = 1,
};
static const struct smtpc_tx tx_ctl_from = {
	.mail_from = "s@x.test>\r\nRCPT TO:<z@z.test", .size = 1,
	.rcpts = r_a, .nrcpts = 1,
};
static const struct smtpc_tx tx_ctl_envid = {
	.mail_from = "s@x.test", .size = 1, .envid = "E\x01", .rcpts = r_a,
	.nrcpts = 1,
};
static const struct smtpc_tx tx_ctl_orcpt = {
	.mail_from = "s@x.test", .size = 1, .rcpts = r_ctl_orcpt, .nrcpts = 1,
};
static const struct smtpc_tx tx_quoted = {
	.mail_from = "s@x.test", .size = 1, .rcpts = r_quoted, .nrcpts = 1,
};

/* ------------------------------------------------------------------ */
/* harness */

enum act_kind { ACT_NONE = 0, ACT_BEGIN, ACT_QUIT };

/* what the caller does at its next turn (READY or TX_DONE) */
struct act {
	enum act_kind kind;
	const struct smtpc_tx *tx;
	const char *body;     /* sent at BODY; NULL: "hello\n" */
	bool hold_body;       /* BODY: send nothing yet */
};

#define ACTS_MAX 5

struct tcase {
	const char *name;
	const char *in;                  /* what the server sends */
	size_t in_len;                   /* 0: strlen(in) */
	struct act acts[ACTS_MAX];
	const char *out;                 /* what the client must send */
	const char *events;
};

/* the parameters of the engines run_case() makes; NULL: the defaults */
static const struct smtpc_params *case_params;
/* STARTTLS: the caller does not say TLS is up (the handshake hangs) */
static bool hold_tls;

struct harness {
	const struct tcase *tc;
	struct smtpc *c;
	struct buf out;
	struct buf log;
	size_t act;                      /* next act */
	const struct act *cur;           /* the act of the open transaction */
	bool ended;
	/* RESULT checks: in recipient order, one per recipient */
	size_t nrcpts;
	size_t next_rcpt_min;
	unsigned char seen[8];
};

static void
esc_append(struct buf *b, const void *p, size_t n)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r')
			buf_append_str(b, "\\r");
		else if (s[i] == '\n')
			buf_append_str(b, "\\n");
		else if (s[i] == '\\')
			buf_append_str(b, "\\\\");
		else if (s[i] >= 32 && s[i] < 127)
			buf_append(b, &s[i], 1);
		else
			buf_printf(b, "\\x%02x", s[i]);
	}
}

static void
log_reply(struct buf *l, const struct smtpc_reply *r)
{
	assert_non_null(r->enhanced);
	assert_non_null(r->text);
	buf_printf(l, "%u", r->code);
	if (r->enhanced[0] != '\0')
		buf_printf(l, " [%s]", r->enhanced);
	if (r->text[0] != '\0') {
		buf_append_str(l, " ");
		esc_append(l, r->text, strlen(r->text));
	}
}

static void next_act(struct harness *h);

static void
send_body(struct harness *h)
{
	const char *body = h->cur != NULL && h->cur->body != NULL ?
			   h->cur->body : "hello\n";

	smtpc_body(h->c, (const uint8_t *)body, strlen(body));
	smtpc_body_end(h->c);
}

static void
next_act(struct harness *h)
{
	while (h->act < ACTS_MAX) {
		const struct act *a = &h->tc->acts[h->act++];
		const char *error = NULL;

		switch (a->kind) {
		case ACT_NONE:
			h->act = ACTS_MAX;
			return;
		case ACT_QUIT:
			smtpc_quit(h->c);
			return;
		case ACT_BEGIN:
			if (smtpc_begin(h->c, a->tx, &error) < 0) {
				assert_non_null(error);
				buf_printf(&h->log, "REFUSED %s\n", error);
				/* nothing was queued */
				assert_int_equal(smtpc_out(h->c)->len, 0);
				continue;
			}
			h->cur = a;
			h->nrcpts = a->tx->nrcpts;
			h->next_rcpt_min = 0;
			memset(h->seen, 0, sizeof(h->seen));
			return;
		}
	}
}

static void
take_output(struct harness *h)
{
	struct buf *out = smtpc_out(h->c);

	buf_append(&h->out, out->p, out->len);
	buf_reset(out);
}

static void
drain(struct harness *h)
{
	struct smtpc_event ev;
	struct buf *l = &h->log;

	/* the commands of this turn are written before the caller acts */
	take_output(h);
	while (smtpc_next(h->c, &ev)) {
		switch (ev.kind) {
		case SMTPC_EV_READY:
			buf_append_str(l, "READY ");
			log_reply(l, &ev.reply);
			buf_printf(l, " ext=%#x size=%llu",
				   smtpc_extensions(h->c),
				   (unsigned long long)smtpc_size_max(h->c));
			if (smtpc_tls_active(h->c))
				buf_append_str(l, " tls");
			if (smtpc_auth_used(h->c) != NULL)
				buf_printf(l, " auth=%s",
					   smtpc_auth_used(h->c));
			buf_append_str(l, "\n");
			next_act(h);
			break;
		case SMTPC_EV_STARTTLS:
			buf_append_str(l, "STARTTLS ");
			log_reply(l, &ev.reply);
			buf_append_str(l, "\n");
			/* nothing is sent until the handshake is done */
			assert_int_equal(smtpc_out(h->c)->len, 0);
			assert_string_equal(smtpc_stage(h->c), "TLS handshake");
			if (!hold_tls)
				smtpc_tls_started(h->c);
			break;
		case SMTPC_EV_RESULT:
			assert_true(ev.rcpt < h->nrcpts);
			assert_true(ev.rcpt < sizeof(h->seen));
			if (h->seen[ev.rcpt])
				fail_msg("recipient %zu: second RESULT", ev.rcpt);
			h->seen[ev.rcpt] = 1;
			buf_printf(l, "RESULT %zu ", ev.rcpt);
			log_reply(l, &ev.reply);
			buf_append_str(l, "\n");
			break;
		case SMTPC_EV_BODY:
			buf_append_str(l, "BODY ");
			log_reply(l, &ev.reply);
			buf_append_str(l, "\n");
			if (h->cur == NULL || !h->cur->hold_body)
				send_body(h);
			break;
		case SMTPC_EV_TX_DONE:
			for (size_t i = 0; i < h->nrcpts; i++) {
				if (!h->seen[i])
					fail_msg("TX_DONE: recipient %zu without "
						 "RESULT", i);
			}
			buf_append_str(l, "TX_DONE\n");
			h->cur = NULL;
			next_act(h);
			break;
		case SMTPC_EV_FAILED: {
			static const char *const kinds[] = {
				[SMTPC_FAIL_SESSION] = "",
				[SMTPC_FAIL_TLS] = "tls: ",
				[SMTPC_FAIL_AUTH_CLEAR] = "auth-clear: ",
				[SMTPC_FAIL_AUTH_MECH] = "auth-mech: ",
				[SMTPC_FAIL_AUTH] = "auth: ",
			};
			assert_non_null(ev.error);
			assert_true((size_t)ev.fail <
				    sizeof(kinds) / sizeof(kinds[0]));
			buf_printf(l, "FAILED %s%s | ", kinds[ev.fail],
				   ev.error);
			log_reply(l, &ev.reply);
			buf_append_str(l, "\n");
			break;
		}
		default:
			fail_msg("unexpected event %d", ev.kind);
		}
	}
	assert_int_equal(ev.kind, SMTPC_EV_NONE);
	take_output(h);
}

static void
h_feed(struct harness *h, const uint8_t *p, size_t n)
{
	unsigned idle = 0;

	while (!h->ended) {
		size_t used = 99;
		int r = smtpc_feed(h->c, p, n, &used);

		assert_true(used <= n);
		if (r == 0)
			assert_int_equal(used, n);
		p += used;
		n -= used;
		drain(h);
		if (r < 0) {
			h->ended = true;
			buf_append_str(&h->log, "END\n");
			/* and from now on */
			used = 99;
			assert_int_equal(smtpc_feed(h->c, p, n, &used), -1);
			assert_int_equal(used, 0);
			assert_int_equal(smtpc_timeout(h->c), 0);
			return;
		}
		if (n == 0)
			return;
		if (used == 0 && ++idle > 2)
			fail_msg("engine stuck with %zu octets left", n);
	}
}

static const struct smtpc_params default_params = {
	.helo_name = "client.test",
};

static void
h_init(struct harness *h, const struct tcase *tc)
{
	memset(h, 0, sizeof(*h));
	h->tc = tc;
	h->c = smtpc_new(case_params != NULL ? case_params : &default_params);
	buf_init(&h->out, 0);
	buf_init(&h->log, 0);
}

static void
h_done(struct harness *h)
{
	buf_printf(&h->log, "STAGE %s %u\n", smtpc_stage(h->c),
		   smtpc_timeout(h->c));
	smtpc_free(&h->c);
	assert_null(h->c);
}

static void
h_clear(struct harness *h)
{
	buf_clear(&h->out);
	buf_clear(&h->log);
}

static char *
escaped(const void *p, size_t n)
{
	struct buf b;

	buf_init(&b, 0);
	esc_append(&b, p, n);
	(void)buf_cstr(&b);
	return (char *)b.p;
}

static void
check(const struct tcase *tc, const char *how, struct harness *h)
{
	size_t want_out = strlen(tc->out), want_ev = strlen(tc->events);

	if (h->out.len != want_out ||
	    (want_out > 0 && memcmp(h->out.p, tc->out, want_out) != 0)) {
		char *got = escaped(h->out.p, h->out.len);
		char *want = escaped(tc->out, want_out);
		print_error("%s (%s): commands\n got  %s\n want %s\n", tc->name,
			    how, got, want);
		free(got);
		free(want);
		fail();
	}
	if (h->log.len != want_ev ||
	    (want_ev > 0 && memcmp(h->log.p, tc->events, want_ev) != 0)) {
		print_error("%s (%s): events\n got:\n%s want:\n%s", tc->name,
			    how, buf_cstr(&h->log), tc->events);
		fail();
	}
}

/* splits every way for inputs up to this size, at a stride above it */
#define SPLIT_ALL_MAX 3000

static void
run_case(const struct tcase *tc)
{
	const uint8_t *in = (const uint8_t *)tc->in;
	size_t n = tc->in_len != 0 ? tc->in_len : strlen(tc->in);
	struct harness h;
	char how[64];

	h_init(&h, tc);
	h_feed(&h, in, n);
	h_done(&h);
	check(tc, "whole", &h);
	h_clear(&h);

	h_init(&h, tc);
	for (size_t i = 0; i < n; i++)
		h_feed(&h, in + i, 1);
	h_done(&h);
	check(tc, "byte by byte", &h);
	h_clear(&h);

	size_t step = n <= SPLIT_ALL_MAX ? 1 : n / 97 + 1;
	for (size_t cut = 0; cut <= n; cut += step) {
		h_init(&h, tc);
		h_feed(&h, in, cut);
		h_feed(&h, in + cut, n - cut);
		h_done(&h);
		snprintf(how, sizeof(how), "split at %zu", cut);
		check(tc, how, &h);
		h_clear(&h);
	}
}

static void
run_cases(const struct tcase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_case(&cases[i]);
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

/* ------------------------------------------------------------------ */
/* common pieces */

#define GREET "220 mx.test ESMTP\r\n"
#define EHLO "EHLO client.test\r\n"
#define HELO "HELO client.test\r\n"
#define QUIT "QUIT\r\n"
#define BYE "221 2.0.0 Bye\r\n"
/* every extension the engine knows */
#define EHLO_ALL "250-mx.test Hello\r\n250-PIPELINING\r\n250-SIZE 10000\r\n" \
	"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-CHUNKING\r\n" \
	"250 AUTH PLAIN LOGIN\r\n"
#define EXT_ALL "0x1ff"
#define READY_ALL "READY 250 mx.test Hello PIPELINING SIZE 10000 8BITMIME " \
	"SMTPUTF8 DSN ENHANCEDSTATUSCODES STARTTLS CHUNKING AUTH PLAIN " \
	"LOGIN ext=" EXT_ALL " size=10000\n"
/* every extension but STARTTLS */
#define EHLO_ALL_NO_TLS "250-mx.test Hello\r\n250-PIPELINING\r\n" \
	"250-SIZE 10000\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n"
/* no extension: one command per reply */
#define EHLO_NONE "250 mx.test\r\n"
#define READY_NONE "READY 250 mx.test ext=0 size=0\n"
#define EHLO_PIPE "250-mx.test\r\n250 PIPELINING\r\n"
#define READY_PIPE "READY 250 mx.test PIPELINING ext=0x1 size=0\n"
#define MAIL1 "MAIL FROM:<s@x.test>\r\n"
#define RCPT_A "RCPT TO:<a@y.test>\r\n"
#define RCPT_B "RCPT TO:<b@y.test>\r\n"
#define RCPT_C "RCPT TO:<c@y.test>\r\n"
#define DATA "DATA\r\n"
#define HELLO "hello\r\n.\r\n"
#define OK "250 2.1.0 Ok\r\n"
#define GO "354 End data with <CR><LF>.<CR><LF>\r\n"
#define GO_E "BODY 354 End data with <CR><LF>.<CR><LF>\n"
#define QUEUED "250 2.0.0 Ok: queued as Q1\r\n"
#define QUEUED_E "250 [2.0.0] Ok: queued as Q1"

#define BEGIN(t) { .kind = ACT_BEGIN, .tx = &(t) }
#define DO_QUIT { .kind = ACT_QUIT }

/* ------------------------------------------------------------------ */
/* greeting, EHLO, HELO */

static void
test_greeting(void **state)
{
	static const struct tcase cases[] = {
		{ "ehlo then quit", GREET EHLO_ALL BYE, 0, { DO_QUIT },
		  EHLO QUIT, READY_ALL "END\nSTAGE QUIT 0\n" },
		{ "multi-line greeting", "220-mx.test ESMTP\r\n220-more\r\n"
		  "220 and more\r\n" EHLO_NONE BYE, 0, { DO_QUIT },
		  EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "bare greeting code", "220\r\n" EHLO_NONE, 0, { { 0 } },
		  EHLO, READY_NONE "STAGE idle 0\n" },
		{ "other 2xx greeting", "250 hi\r\n" EHLO_NONE, 0, { { 0 } },
		  EHLO, READY_NONE "STAGE idle 0\n" },
		{ "554 greeting", "554 5.7.1 No SMTP service here\r\n", 0,
		  { { 0 } }, "",
		  "FAILED greeting refused | 554 [5.7.1] No SMTP service "
		  "here\nEND\nSTAGE greeting 0\n" },
		{ "421 greeting", "421 4.3.2 busy\r\n", 0, { { 0 } }, "",
		  "FAILED server is closing the session | 421 [4.3.2] busy\n"
		  "END\nSTAGE greeting 0\n" },
		{ "451 greeting", "451 later\r\n", 0, { { 0 } }, "",
		  "FAILED greeting refused | 451 later\nEND\n"
		  "STAGE greeting 0\n" },
		{ "partial greeting", "220 mx.te", 0, { { 0 } }, "",
		  "STAGE greeting 300\n" },
		{ "no EHLO reply yet", GREET "250-mx.test\r\n", 0, { { 0 } },
		  EHLO, "STAGE EHLO 300\n" },
		{ "EHLO 502: HELO", GREET "502 5.5.1 Command not "
		  "implemented\r\n250 mx.test\r\n" BYE, 0, { DO_QUIT },
		  EHLO HELO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "EHLO 500: HELO", GREET "500 what\r\n250 mx.test\r\n", 0,
		  { { 0 } }, EHLO HELO, READY_NONE "STAGE idle 0\n" },
		{ "EHLO 504: HELO", GREET "504 no\r\n250 mx.test\r\n", 0,
		  { { 0 } }, EHLO HELO, READY_NONE "STAGE idle 0\n" },
		{ "EHLO 550: HELO", GREET "550 no\r\n250 mx.test\r\n", 0,
		  { { 0 } }, EHLO HELO, READY_NONE "STAGE idle 0\n" },
		{ "HELO pending", GREET "502 no\r\n", 0, { { 0 } }, EHLO HELO,
		  "STAGE HELO 300\n" },
		/* after HELO there is no extension, even if EHLO said some */
		{ "HELO: no pipelining", GREET "550-mx.test\r\n"
		  "550 PIPELINING\r\n250 mx.test\r\n250 a\r\n250 b\r\n"
		  GO QUEUED, 0, { BEGIN(tx1) }, EHLO HELO MAIL1 RCPT_A DATA
		  HELLO, READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "HELO refused", GREET "502 no\r\n501 no either\r\n", 0,
		  { { 0 } }, EHLO HELO,
		  "FAILED HELO refused | 501 no either\nEND\nSTAGE HELO 0\n" },
		{ "HELO 421", GREET "502 no\r\n421 bye\r\n", 0, { { 0 } },
		  EHLO HELO, "FAILED server is closing the session | 421 bye\n"
		  "END\nSTAGE HELO 0\n" },
		{ "EHLO 451", GREET "451 4.3.0 later\r\n", 0, { { 0 } }, EHLO,
		  "FAILED EHLO refused | 451 [4.3.0] later\nEND\n"
		  "STAGE EHLO 0\n" },
		{ "EHLO 421", GREET "421 4.7.0 bye\r\n", 0, { { 0 } }, EHLO,
		  "FAILED server is closing the session | 421 [4.7.0] bye\n"
		  "END\nSTAGE EHLO 0\n" },
		{ "EHLO 354", GREET "354 what\r\n", 0, { { 0 } }, EHLO,
		  "FAILED EHLO refused | 354 what\nEND\nSTAGE EHLO 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* each keyword, its forms, and SIZE's value */
static void
test_ehlo_keywords(void **state)
{
	static const struct {
		const char *lines;    /* after "250-mx.test\r\n" */
		unsigned ext;
		unsigned long long size;
	} cases[] = {
		{ "250 PIPELINING\r\n", SMTPC_EXT_PIPELINING, 0 },
		{ "250 pipelining\r\n", SMTPC_EXT_PIPELINING, 0 },
		{ "250 SIZE\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZE 0\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZE 1\r\n", SMTPC_EXT_SIZE, 1 },
		{ "250 size 52428800\r\n", SMTPC_EXT_SIZE, 52428800 },
		{ "250 SIZE 18446744073709551615\r\n", SMTPC_EXT_SIZE,
		  18446744073709551615ull },
		{ "250 SIZE 18446744073709551616\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZE abc\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZE -1\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZE 10 20\r\n", SMTPC_EXT_SIZE, 0 },
		{ "250 SIZES 10\r\n", 0, 0 },
		{ "250 SIZ\r\n", 0, 0 },
		{ "250 8BITMIME\r\n", SMTPC_EXT_8BITMIME, 0 },
		{ "250 SMTPUTF8\r\n", SMTPC_EXT_SMTPUTF8, 0 },
		{ "250 DSN\r\n", SMTPC_EXT_DSN, 0 },
		{ "250 ENHANCEDSTATUSCODES\r\n", SMTPC_EXT_ENHANCED, 0 },
		{ "250 STARTTLS\r\n", SMTPC_EXT_STARTTLS, 0 },
		{ "250 CHUNKING\r\n", SMTPC_EXT_CHUNKING, 0 },
		{ "250 AUTH PLAIN\r\n", SMTPC_EXT_AUTH, 0 },
		{ "250 AUTH=LOGIN\r\n", SMTPC_EXT_AUTH, 0 },
		{ "250 PIPELINING=yes\r\n", 0, 0 },
		{ "250 XFOO\r\n", 0, 0 },
		{ "250 \r\n", 0, 0 },
		{ "250\r\n", 0, 0 },
		{ "250-DSN\n250 SIZE 5\n", SMTPC_EXT_DSN | SMTPC_EXT_SIZE, 5 },
		{ "250-2.0.0 DSN\r\n250 2.0.0 8BITMIME\r\n", 0, 0 },
	};
	static const char *const first[] = {
		"250 PIPELINING\r\n", "250-SIZE 5\r\n250 mx\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtpc *c = smtpc_new(&default_params);
		struct smtpc_event ev;
		char in[256];
		size_t used;
		int n = snprintf(in, sizeof(in), GREET "250-mx.test\r\n%s",
				 cases[i].lines);

		assert_true(n > 0 && (size_t)n < sizeof(in));
		assert_int_equal(smtpc_extensions(c), 0);
		assert_int_equal(smtpc_feed(c, (const uint8_t *)in, (size_t)n,
					    &used), 1);
		assert_int_equal(used, (size_t)n);
		assert_true(smtpc_next(c, &ev));
		assert_int_equal(ev.kind, SMTPC_EV_READY);
		if (smtpc_extensions(c) != cases[i].ext ||
		    smtpc_size_max(c) != cases[i].size)
			fail_msg("%s: got ext %#x size %llu, want %#x %llu",
				 cases[i].lines, smtpc_extensions(c),
				 (unsigned long long)smtpc_size_max(c),
				 cases[i].ext, cases[i].size);
		smtpc_free(&c);
	}
	/* the first line names the server: no keyword there */
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
		struct smtpc *c = smtpc_new(&default_params);
		char in[128];
		size_t used;
		int n = snprintf(in, sizeof(in), GREET "%s", first[i]);

		assert_int_equal(smtpc_feed(c, (const uint8_t *)in, (size_t)n,
					    &used), 1);
		assert_int_equal(smtpc_extensions(c), 0);
		smtpc_free(&c);
	}
	/* the "2.0.0" case above keeps its codes, since the first line had
	 * none; with one there, each line's code is dropped */
	{
		struct smtpc *c = smtpc_new(&default_params);
		const char *in = GREET "250-2.0.0 mx.test\r\n250-2.0.0 DSN\r\n"
				 "250 2.0.0 SIZE 7\r\n";
		size_t used;

		assert_int_equal(smtpc_feed(c, (const uint8_t *)in,
					    strlen(in), &used), 1);
		assert_int_equal(smtpc_extensions(c),
				 SMTPC_EXT_DSN | SMTPC_EXT_SIZE);
		assert_int_equal(smtpc_size_max(c), 7);
		smtpc_free(&c);
	}
}

/* ------------------------------------------------------------------ */
/* transactions */

static void
test_transaction(void **state)
{
	static const struct tcase cases[] = {
		{ "pipelined", GREET EHLO_PIPE OK "250 2.1.5 Ok\r\n" GO QUEUED
		  BYE, 0, { BEGIN(tx1), DO_QUIT },
		  EHLO MAIL1 RCPT_A DATA HELLO QUIT,
		  READY_PIPE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\nEND\n"
		  "STAGE QUIT 0\n" },
		{ "one by one", GREET EHLO_NONE OK "250 2.1.5 Ok\r\n" GO QUEUED
		  BYE, 0, { BEGIN(tx1), DO_QUIT },
		  EHLO MAIL1 RCPT_A DATA HELLO QUIT,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\nEND\n"
		  "STAGE QUIT 0\n" },
		{ "null reverse-path", GREET EHLO_NONE OK OK GO QUEUED, 0,
		  { BEGIN(tx_null) },
		  EHLO "MAIL FROM:<>\r\n" RCPT_A DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "quoted local part", GREET EHLO_NONE OK OK GO QUEUED, 0,
		  { BEGIN(tx_quoted) },
		  EHLO MAIL1 "RCPT TO:<\"a b\"@y.test>\r\n" DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		/* replies not yet there: the stage names the first one */
		{ "pipelined, waiting for MAIL", GREET EHLO_PIPE, 0,
		  { BEGIN(tx3) }, EHLO MAIL1 RCPT_A RCPT_B RCPT_C DATA,
		  READY_PIPE "STAGE MAIL FROM 300\n" },
		{ "pipelined, waiting for RCPT", GREET EHLO_PIPE OK OK, 0,
		  { BEGIN(tx3) }, EHLO MAIL1 RCPT_A RCPT_B RCPT_C DATA,
		  READY_PIPE "STAGE RCPT TO 300\n" },
		{ "pipelined, waiting for DATA", GREET EHLO_PIPE OK OK OK OK, 0,
		  { BEGIN(tx3) }, EHLO MAIL1 RCPT_A RCPT_B RCPT_C DATA,
		  READY_PIPE "STAGE DATA 120\n" },
		{ "one by one, waiting for RCPT", GREET EHLO_NONE OK OK, 0,
		  { BEGIN(tx3) }, EHLO MAIL1 RCPT_A RCPT_B,
		  READY_NONE "STAGE RCPT TO 300\n" },
		{ "waiting for the end of data", GREET EHLO_NONE OK OK GO, 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "STAGE end of data 600\n" },
		{ "body not sent yet", GREET EHLO_NONE OK OK GO, 0,
		  { { .kind = ACT_BEGIN, .tx = &tx1, .hold_body = true } },
		  EHLO MAIL1 RCPT_A DATA,
		  READY_NONE GO_E "STAGE message body 180\n" },
		{ "reply while the body is sent", GREET EHLO_NONE OK OK GO
		  "250 2.0.0 early\r\n", 0,
		  { { .kind = ACT_BEGIN, .tx = &tx1, .hold_body = true } },
		  EHLO MAIL1 RCPT_A DATA,
		  READY_NONE GO_E "FAILED unexpected reply | 250 [2.0.0] "
		  "early\nEND\nSTAGE message body 0\n" },
		{ "QUIT", GREET EHLO_NONE "221 2.0.0 Bye\r\n", 0, { DO_QUIT },
		  EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "QUIT pending", GREET EHLO_NONE "221 2.0.", 0, { DO_QUIT },
		  EHLO QUIT, READY_NONE "STAGE QUIT 300\n" },
		{ "QUIT answered 500", GREET EHLO_NONE "500 what\r\n", 0,
		  { DO_QUIT }, EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "QUIT answered 421", GREET EHLO_NONE "421 bye\r\n", 0,
		  { DO_QUIT }, EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "QUIT answered garbage", GREET EHLO_NONE "hello\r\n", 0,
		  { DO_QUIT }, EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
		{ "QUIT then more", GREET EHLO_NONE BYE "250 more\r\n", 0,
		  { DO_QUIT }, EHLO QUIT, READY_NONE "END\nSTAGE QUIT 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* per-recipient outcomes, all refused, MAIL refused, DATA refused */
static void
test_outcomes(void **state)
{
#define R550 "550 5.1.1 <b@y.test>: User unknown\r\n"
#define R550_E "550 [5.1.1] <b@y.test>: User unknown"
#define R451 "451 4.2.0 try later\r\n"
#define R451_E "451 [4.2.0] try later"
#define M553 "553 5.7.1 Sender rejected\r\n"
#define M553_E "553 [5.7.1] Sender rejected"
#define E503 "503 5.5.1 Error: need MAIL command\r\n"
#define D554 "554 5.5.1 Error: no valid recipients\r\n"
#define ALL3 MAIL1 RCPT_A RCPT_B RCPT_C
	static const struct tcase cases[] = {
		{ "mixed, pipelined", GREET EHLO_PIPE OK OK R550 R451 GO QUEUED,
		  0, { BEGIN(tx3) }, EHLO ALL3 DATA HELLO,
		  READY_PIPE "RESULT 1 " R550_E "\nRESULT 2 " R451_E "\n"
		  GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "mixed, one by one", GREET EHLO_NONE OK R451 OK R550 GO QUEUED,
		  0, { BEGIN(tx3) }, EHLO ALL3 DATA HELLO,
		  READY_NONE "RESULT 0 " R451_E "\nRESULT 2 " R550_E "\n"
		  GO_E "RESULT 1 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "end of data refused", GREET EHLO_NONE OK OK OK R550 GO
		  "552 5.3.4 too big\r\n", 0, { BEGIN(tx3) },
		  EHLO ALL3 DATA HELLO, READY_NONE "RESULT 2 " R550_E "\n" GO_E
		  "RESULT 0 552 [5.3.4] too big\nRESULT 1 552 [5.3.4] too big\n"
		  "TX_DONE\nSTAGE idle 0\n" },
		/* no RSET after the end of data, refused or not */
		{ "refused end of data, then another", GREET EHLO_NONE OK OK GO
		  R451 OK OK GO QUEUED, 0, { BEGIN(tx1), BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A DATA HELLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " R451_E "\nTX_DONE\n" GO_E
		  "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "all refused, pipelined", GREET EHLO_PIPE OK R550 R550 R451
		  D554, 0, { BEGIN(tx3) }, EHLO ALL3 DATA,
		  READY_PIPE "RESULT 0 " R550_E "\nRESULT 1 " R550_E "\n"
		  "RESULT 2 " R451_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "all refused, pipelined, DATA 503", GREET EHLO_PIPE OK R550
		  E503, 0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE "RESULT 0 " R550_E "\nTX_DONE\nSTAGE idle 0\n" },
		/* RFC 5321 §3.3: no DATA without a recipient */
		{ "all refused, one by one", GREET EHLO_NONE OK R550 R550 R451,
		  0, { BEGIN(tx3) }, EHLO ALL3,
		  READY_NONE "RESULT 0 " R550_E "\nRESULT 1 " R550_E "\n"
		  "RESULT 2 " R451_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "all refused, then DATA 354", GREET EHLO_PIPE OK R550 GO, 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE "RESULT 0 " R550_E "\nFAILED DATA accepted "
		  "without recipients | 354 End data with <CR><LF>.<CR><LF>\n"
		  "END\nSTAGE DATA 0\n" },
		{ "MAIL refused, pipelined", GREET EHLO_PIPE M553 E503 E503 E503
		  E503, 0, { BEGIN(tx3) }, EHLO ALL3 DATA,
		  READY_PIPE "RESULT 0 " M553_E "\nRESULT 1 " M553_E "\n"
		  "RESULT 2 " M553_E "\nTX_DONE\nSTAGE idle 0\n" },
		/* the RCPT replies after a refused MAIL count for nothing */
		{ "MAIL refused, RCPT 250 anyway", GREET EHLO_PIPE M553 OK E503,
		  0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE "RESULT 0 " M553_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "MAIL refused, one by one", GREET EHLO_NONE M553, 0,
		  { BEGIN(tx3) }, EHLO MAIL1,
		  READY_NONE "RESULT 0 " M553_E "\nRESULT 1 " M553_E "\n"
		  "RESULT 2 " M553_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "MAIL 452", GREET EHLO_NONE "452 4.3.1 full\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1,
		  READY_NONE "RESULT 0 452 [4.3.1] full\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "DATA refused", GREET EHLO_NONE OK OK OK R550
		  "451 4.3.0 no\r\n",
		  0, { BEGIN(tx3) }, EHLO ALL3 DATA,
		  READY_NONE "RESULT 2 " R550_E "\nRESULT 0 451 [4.3.0] no\n"
		  "RESULT 1 451 [4.3.0] no\nTX_DONE\nSTAGE idle 0\n" },
		{ "DATA refused, pipelined", GREET EHLO_PIPE OK OK
		  "554 5.7.0 no\r\n", 0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE "RESULT 0 554 [5.7.0] no\nTX_DONE\n"
		  "STAGE idle 0\n" },
		/* a 2xx would read as delivered */
		{ "DATA 250", GREET EHLO_NONE OK OK "250 ok\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_NONE "FAILED unexpected reply to DATA | 250 ok\nEND\n"
		  "STAGE DATA 0\n" },
		{ "MAIL 354", GREET EHLO_NONE GO, 0, { BEGIN(tx1) }, EHLO MAIL1,
		  READY_NONE "FAILED unexpected reply to MAIL FROM | 354 End "
		  "data with <CR><LF>.<CR><LF>\nEND\nSTAGE MAIL FROM 0\n" },
		{ "RCPT 354", GREET EHLO_NONE OK GO, 0, { BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A,
		  READY_NONE "FAILED unexpected reply to RCPT TO | 354 End "
		  "data with <CR><LF>.<CR><LF>\nEND\nSTAGE RCPT TO 0\n" },
		{ "end of data 354", GREET EHLO_NONE OK OK GO GO, 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "FAILED unexpected reply to end of data | "
		  "354 End data with <CR><LF>.<CR><LF>\nEND\n"
		  "STAGE end of data 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* 421 at each point, and replies nobody asked for */
static void
test_421(void **state)
{
#define C421 "421 4.4.2 mx.test closing\r\n"
#define C421_E "FAILED server is closing the session | 421 [4.4.2] " \
	"mx.test closing\nEND\n"
	static const struct tcase cases[] = {
		{ "421 for MAIL", GREET EHLO_PIPE C421, 0, { BEGIN(tx3) },
		  EHLO ALL3 DATA, READY_PIPE C421_E "STAGE MAIL FROM 0\n" },
		{ "421 mid RCPT", GREET EHLO_PIPE OK OK R550 C421, 0,
		  { BEGIN(tx3) }, EHLO ALL3 DATA,
		  READY_PIPE "RESULT 1 " R550_E "\n" C421_E
		  "STAGE RCPT TO 0\n" },
		{ "421 for DATA", GREET EHLO_NONE OK OK C421, 0, { BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A DATA, READY_NONE C421_E "STAGE DATA 0\n" },
		{ "421 after the body", GREET EHLO_NONE OK OK GO C421, 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E C421_E "STAGE end of data 0\n" },
		{ "421 during the body", GREET EHLO_NONE OK OK GO C421, 0,
		  { { .kind = ACT_BEGIN, .tx = &tx1, .hold_body = true } },
		  EHLO MAIL1 RCPT_A DATA,
		  READY_NONE GO_E C421_E "STAGE message body 0\n" },
		{ "421 while idle", GREET EHLO_NONE C421, 0, { { 0 } }, EHLO,
		  READY_NONE C421_E "STAGE idle 0\n" },
		{ "421 for RSET", GREET EHLO_NONE OK R550 C421, 0,
		  { BEGIN(tx1), BEGIN(tx1) }, EHLO MAIL1 RCPT_A "RSET\r\n",
		  READY_NONE "RESULT 0 " R550_E "\nTX_DONE\n" C421_E
		  "STAGE RSET 0\n" },
		{ "multi-line 421", GREET EHLO_NONE "421-4.3.2 shutting\r\n"
		  "421 4.3.2 down\r\n", 0, { { 0 } }, EHLO, READY_NONE
		  "FAILED server is closing the session | 421 [4.3.2] shutting "
		  "down\nEND\nSTAGE idle 0\n" },
		{ "reply while idle", GREET EHLO_NONE "250 ok\r\n", 0,
		  { { 0 } }, EHLO,
		  READY_NONE "FAILED unexpected reply | 250 ok\nEND\n"
		  "STAGE idle 0\n" },
		/* input after FAILED is not read */
		{ "input after FAILED", GREET EHLO_NONE "250 ok\r\n"
		  "250 more\r\n", 0, { { 0 } }, EHLO,
		  READY_NONE "FAILED unexpected reply | 250 ok\nEND\n"
		  "STAGE idle 0\n" },
		{ "after TX_DONE", GREET EHLO_NONE OK OK GO QUEUED C421, 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n" C421_E
		  "STAGE idle 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* two transactions on one session; RSET after an early end */
static void
test_sequence(void **state)
{
	static const struct tcase cases[] = {
		{ "two, no RSET", GREET EHLO_PIPE OK OK GO QUEUED OK OK OK OK GO
		  QUEUED BYE, 0, { BEGIN(tx1), BEGIN(tx3), DO_QUIT },
		  EHLO MAIL1 RCPT_A DATA HELLO ALL3 DATA HELLO QUIT,
		  READY_PIPE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n" GO_E
		  "RESULT 0 " QUEUED_E "\nRESULT 1 " QUEUED_E "\nRESULT 2 "
		  QUEUED_E "\nTX_DONE\nEND\nSTAGE QUIT 0\n" },
		{ "RSET after MAIL refused, pipelined", GREET EHLO_PIPE M553
		  E503 E503 "250 2.0.0 Ok\r\n" OK OK GO QUEUED, 0,
		  { BEGIN(tx1), BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A DATA "RSET\r\n" MAIL1 RCPT_A DATA HELLO,
		  READY_PIPE "RESULT 0 " M553_E "\nTX_DONE\n" GO_E "RESULT 0 "
		  QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "RSET after all refused, one by one", GREET EHLO_NONE OK R550
		  "250 2.0.0 Ok\r\n" OK OK GO QUEUED, 0,
		  { BEGIN(tx1), BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A "RSET\r\n" MAIL1 RCPT_A DATA HELLO,
		  READY_NONE "RESULT 0 " R550_E "\nTX_DONE\n" GO_E "RESULT 0 "
		  QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "RSET after DATA refused", GREET EHLO_NONE OK OK R451
		  "250 2.0.0 Ok\r\n" OK, 0, { BEGIN(tx1), BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A DATA "RSET\r\n" MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 " R451_E "\nTX_DONE\nSTAGE RCPT TO 300\n" },
		{ "RSET pending", GREET EHLO_NONE M553, 0,
		  { BEGIN(tx1), BEGIN(tx1) }, EHLO MAIL1 "RSET\r\n",
		  READY_NONE "RESULT 0 " M553_E "\nTX_DONE\nSTAGE RSET 300\n" },
		{ "RSET refused", GREET EHLO_NONE M553 "500 no RSET\r\n", 0,
		  { BEGIN(tx1), BEGIN(tx1) }, EHLO MAIL1 "RSET\r\n",
		  READY_NONE "RESULT 0 " M553_E "\nTX_DONE\nFAILED RSET refused "
		  "| 500 no RSET\nEND\nSTAGE RSET 0\n" },
		/* no RSET before QUIT */
		{ "QUIT after an early end", GREET EHLO_NONE M553 BYE, 0,
		  { BEGIN(tx1), DO_QUIT }, EHLO MAIL1 QUIT,
		  READY_NONE "RESULT 0 " M553_E "\nTX_DONE\nEND\n"
		  "STAGE QUIT 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* extensions decide the parameters; begin() refuses what cannot go */
static void
test_parameters(void **state)
{
#define EHLO_8 "250-mx.test\r\n250 8BITMIME\r\n"
#define EHLO_SIZE "250-mx.test\r\n250 SIZE 10000\r\n"
#define EHLO_SIZE0 "250-mx.test\r\n250 SIZE\r\n"
#define EHLO_DSN "250-mx.test\r\n250 DSN\r\n"
#define REF_8 "REFUSED message has 8-bit content and the server does not " \
	"offer 8BITMIME\n"
#define REF_UTF8 "REFUSED message needs SMTPUTF8 and the server does not " \
	"offer it\n"
#define REF_SIZE "REFUSED message is larger than the server's SIZE limit\n"
#define REF_CTL "REFUSED address or parameter has a control character\n"
	static const struct tcase cases[] = {
		{ "all parameters", GREET EHLO_ALL OK OK OK OK OK GO QUEUED, 0,
		  { BEGIN(tx_dsn) }, EHLO "MAIL FROM:<s@x.test> SIZE=100 "
		  "BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=ENV+2B1\r\n"
		  "RCPT TO:<a@y.test> NOTIFY=SUCCESS,FAILURE "
		  "ORCPT=rfc822;a@y.test\r\n"
		  "RCPT TO:<b@y.test> NOTIFY=NEVER\r\n"
		  "RCPT TO:<c@y.test> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
		  "RCPT TO:<d@y.test> NOTIFY=NEVER\r\n" DATA HELLO,
		  READY_ALL GO_E "RESULT 0 " QUEUED_E "\nRESULT 1 " QUEUED_E
		  "\nRESULT 2 " QUEUED_E "\nRESULT 3 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "BODY=7BIT RET=HDRS", GREET EHLO_ALL OK OK GO QUEUED, 0,
		  { BEGIN(tx_hdrs7) }, EHLO "MAIL FROM:<s@x.test> SIZE=7 "
		  "BODY=7BIT RET=HDRS\r\n" RCPT_A DATA HELLO,
		  READY_ALL GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "no DSN, no BODY, no SIZE", GREET EHLO_NONE OK OK GO QUEUED,
		  0, { BEGIN(tx_hdrs7) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "DSN only", GREET EHLO_DSN OK OK GO QUEUED, 0,
		  { BEGIN(tx_hdrs7) }, EHLO "MAIL FROM:<s@x.test> RET=HDRS\r\n"
		  RCPT_A DATA HELLO,
		  "READY 250 mx.test DSN ext=0x10 size=0\n" GO_E "RESULT 0 "
		  QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "8BITMIME only", GREET EHLO_8 OK OK GO QUEUED, 0,
		  { BEGIN(tx_8bit) }, EHLO "MAIL FROM:<s@x.test> "
		  "BODY=8BITMIME\r\n" RCPT_A DATA HELLO,
		  "READY 250 mx.test 8BITMIME ext=0x4 size=0\n" GO_E "RESULT 0 "
		  QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "8-bit without 8BITMIME", GREET EHLO_NONE BYE, 0,
		  { BEGIN(tx_8bit), DO_QUIT }, EHLO QUIT,
		  READY_NONE REF_8 "END\nSTAGE QUIT 0\n" },
		{ "SMTPUTF8 without SMTPUTF8", GREET EHLO_8 BYE, 0,
		  { BEGIN(tx_utf8), DO_QUIT }, EHLO QUIT,
		  "READY 250 mx.test 8BITMIME ext=0x4 size=0\n" REF_UTF8
		  "END\nSTAGE QUIT 0\n" },
		{ "SIZE limit", GREET EHLO_SIZE OK OK GO QUEUED, 0,
		  { BEGIN(tx_10001), BEGIN(tx_10000) },
		  EHLO "MAIL FROM:<s@x.test> SIZE=10000\r\n" RCPT_A DATA HELLO,
		  "READY 250 mx.test SIZE 10000 ext=0x2 size=10000\n" REF_SIZE
		  GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "SIZE without a limit", GREET EHLO_SIZE0 OK OK GO QUEUED, 0,
		  { BEGIN(tx_10001) },
		  EHLO "MAIL FROM:<s@x.test> SIZE=10001\r\n" RCPT_A DATA HELLO,
		  "READY 250 mx.test SIZE ext=0x2 size=0\n"
		  GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		/* no SIZE offered: the size is not the engine's to judge */
		{ "no SIZE", GREET EHLO_NONE OK OK GO QUEUED, 0,
		  { BEGIN(tx_10001) }, EHLO MAIL1 RCPT_A DATA HELLO,
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "control characters", GREET EHLO_ALL BYE, 0,
		  { BEGIN(tx_ctl), BEGIN(tx_ctl_from), BEGIN(tx_ctl_envid),
		    BEGIN(tx_ctl_orcpt), DO_QUIT }, EHLO QUIT,
		  READY_ALL REF_CTL REF_CTL REF_CTL REF_CTL "END\n"
		  "STAGE QUIT 0\n" },
		/* the refusal queues no RSET either */
		{ "refusal after an early end", GREET EHLO_NONE M553
		  "250 ok\r\n" OK OK GO QUEUED, 0,
		  { BEGIN(tx1), BEGIN(tx_8bit), BEGIN(tx1) },
		  EHLO MAIL1 "RSET\r\n" MAIL1 RCPT_A DATA HELLO,
		  READY_NONE "RESULT 0 " M553_E "\nTX_DONE\n" REF_8 GO_E
		  "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* ------------------------------------------------------------------ */
/* the reply reader */

static void
test_replies(void **state)
{
#define MAL "FAILED malformed reply | 0\nEND\n"
	static const struct tcase cases[] = {
		{ "multi-line with codes", GREET EHLO_NONE OK
		  "550-5.1.1 The email account\r\n550-5.1.1 does not exist\r\n"
		  "550 5.1.1 Try again\r\n", 0, { BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A, READY_NONE "RESULT 0 550 [5.1.1] The email "
		  "account does not exist Try again\nTX_DONE\nSTAGE idle 0\n" },
		{ "code only on the first line", GREET EHLO_NONE OK
		  "550-5.1.1 first\r\n550-second\r\n550 third\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A, READY_NONE "RESULT 0 550 "
		  "[5.1.1] first second third\nTX_DONE\nSTAGE idle 0\n" },
		{ "empty lines", GREET EHLO_NONE OK "550-\r\n550-a\r\n550-\r\n"
		  "550 b\r\n", 0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 a b\nTX_DONE\nSTAGE idle 0\n" },
		{ "bare codes", GREET EHLO_NONE OK "550\r\n", 0, { BEGIN(tx1) },
		  EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550\nTX_DONE\nSTAGE idle 0\n" },
		{ "enhanced code alone", GREET EHLO_NONE OK "550 5.1.1\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 [5.1.1]\nTX_DONE\nSTAGE idle 0\n" },
		{ "enhanced code, long parts", GREET EHLO_NONE OK
		  "550 5.123.456 x\r\n", 0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 [5.123.456] x\nTX_DONE\n"
		  "STAGE idle 0\n" },
		/* not enhanced codes: kept in the text */
		{ "class differs", GREET EHLO_NONE OK "550 4.1.1 x\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 4.1.1 x\nTX_DONE\nSTAGE idle 0\n" },
		{ "four digits", GREET EHLO_NONE OK "550 5.1.1234 x\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 5.1.1234 x\nTX_DONE\nSTAGE idle 0\n" },
		{ "two parts", GREET EHLO_NONE OK "550 5.1 x\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 5.1 x\nTX_DONE\nSTAGE idle 0\n" },
		{ "glued to text", GREET EHLO_NONE OK "550 5.1.1x\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 5.1.1x\nTX_DONE\nSTAGE idle 0\n" },
		{ "empty part", GREET EHLO_NONE OK "550 5..1 x\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 5..1 x\nTX_DONE\nSTAGE idle 0\n" },
		{ "bare LF", GREET "250-mx.test\n250 PIPELINING\n" "250 a\n"
		  "550-5.1.1 no\n550 5.1.1 such user\n" "554 no rcpt\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE "RESULT 0 550 [5.1.1] no such user\nTX_DONE\n"
		  "STAGE idle 0\n" },
		/* bytes as they come: a CR inside a line, 8-bit, control */
		{ "raw bytes", GREET EHLO_NONE OK "550 a\rb\x01\xc3\xa9\t\r\r\n",
		  0, { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 a\\rb\\x01\\xc3\\xa9\\x09\\r\n"
		  "TX_DONE\nSTAGE idle 0\n" },
		{ "codes differ", GREET "250-mx.test\r\n251 x\r\n", 0,
		  { { 0 } }, EHLO,
		  "FAILED reply lines with different codes | 0\nEND\n"
		  "STAGE EHLO 0\n" },
		{ "garbage", GREET EHLO_NONE "hello\r\n", 0, { { 0 } }, EHLO,
		  READY_NONE MAL "STAGE idle 0\n" },
		{ "garbage greeting", "SSH-2.0-OpenSSH_9.2\r\n", 0, { { 0 } },
		  "", MAL "STAGE greeting 0\n" },
		{ "empty line", "\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "two digits", "22\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "four digits", "2200 x\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "no separator", "220x\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "tab separator", "220\tx\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "code 1xx", "120 x\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "code 6xx", "620 x\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "code 0xx", "020 x\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "NUL in code", "2\x00" "0 x\r\n", 7, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "garbage continuation", "220-a\r\nb\r\n", 0, { { 0 } }, "",
		  MAL "STAGE greeting 0\n" },
		{ "garbage mid-transaction", GREET EHLO_PIPE OK "25O ok\r\n", 0,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A DATA,
		  READY_PIPE MAL "STAGE RCPT TO 0\n" },
		/* a NUL ends the C text; the bytes before it are kept */
		{ "NUL in text", GREET EHLO_NONE OK "550 ab\x00" "cd\r\n",
		  sizeof(GREET EHLO_NONE OK "550 ab\x00" "cd\r\n") - 1,
		  { BEGIN(tx1) }, EHLO MAIL1 RCPT_A,
		  READY_NONE "RESULT 0 550 ab\nTX_DONE\nSTAGE idle 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* reply_max and reply_lines_max at limit-1, limit and limit+1 */
static void
test_reply_limits(void **state)
{
	static const struct smtpc_params p64 = {
		.helo_name = "client.test", .reply_max = 64,
		.reply_lines_max = 3,
	};
	char in[3][256], ev[3][256];
	struct tcase tc;

	(void)state;
	/* "220 " + k + "\r\n": 6 + k octets */
	for (int d = -1; d <= 1; d++) {
		size_t k = (size_t)(64 - 6 + d);
		char text[128];

		memset(text, 'x', k);
		text[k] = '\0';
		snprintf(in[d + 1], sizeof(in[0]), "220 %s\r\n", text);
		if (d <= 0)
			snprintf(ev[d + 1], sizeof(ev[0]), "STAGE EHLO 300\n");
		else
			snprintf(ev[d + 1], sizeof(ev[0]), "FAILED reply too "
				 "long | 0\nEND\nSTAGE greeting 0\n");
		memset(&tc, 0, sizeof(tc));
		tc.name = "reply_max";
		tc.in = in[d + 1];
		tc.out = d <= 0 ? EHLO : "";
		tc.events = ev[d + 1];
		case_params = &p64;
		run_case(&tc);
	}
	/* a reply of many short lines counts every line's octets */
	memset(&tc, 0, sizeof(tc));
	tc.name = "reply_max over lines";
	tc.in = "220-0123456789\r\n220-0123456789\r\n220-0123456789\r\n"
		"220 0123456789a\r\n";
	tc.out = "";
	case_params = &(struct smtpc_params){ .helo_name = "client.test",
					      .reply_max = 64 };
	tc.events = "FAILED reply too long | 0\nEND\nSTAGE greeting 0\n";
	run_case(&tc);
	tc.in = "220-0123456789\r\n220-0123456789\r\n220-0123456789\r\n"
		"220 0123456789\r\n";
	tc.out = EHLO;
	tc.events = "STAGE EHLO 300\n";
	run_case(&tc);

	/* lines: 2, 3 fine; a 4th fails */
	memset(&tc, 0, sizeof(tc));
	tc.name = "reply_lines_max";
	case_params = &p64;
	tc.in = "220-a\r\n220 b\r\n";
	tc.out = EHLO;
	tc.events = "STAGE EHLO 300\n";
	run_case(&tc);
	tc.in = "220-a\r\n220-b\r\n220 c\r\n";
	run_case(&tc);
	tc.in = "220-a\r\n220-b\r\n220-c\r\n220 d\r\n";
	tc.out = "";
	tc.events = "FAILED too many reply lines | 0\nEND\n"
		    "STAGE greeting 0\n";
	run_case(&tc);
	/* no line end at all: the bound still holds */
	tc.in = "220 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
	tc.events = "FAILED reply too long | 0\nEND\nSTAGE greeting 0\n";
	run_case(&tc);
	case_params = NULL;
}

/* the defaults apply, and a long hostile reply stays within them */
static void
test_reply_defaults(void **state)
{
	struct smtpc *c = smtpc_new(&default_params);
	struct smtpc_event ev;
	struct buf in;
	size_t used, off = 0;
	int r = 0;

	(void)state;
	buf_init(&in, 0);
	for (unsigned i = 0; i < SMTPC_REPLY_LINES_DEFAULT; i++)
		buf_append_str(&in, "220-x\r\n");
	buf_append_str(&in, "220 y\r\n");
	while (off < in.len && r == 0) {
		r = smtpc_feed(c, in.p + off, in.len - off, &used);
		off += used;
	}
	assert_int_equal(r, -1);
	assert_true(smtpc_next(c, &ev));
	assert_int_equal(ev.kind, SMTPC_EV_FAILED);
	assert_string_equal(ev.error, "too many reply lines");
	smtpc_free(&c);

	c = smtpc_new(&default_params);
	buf_reset(&in);
	buf_append_str(&in, "220 ");
	while (in.len < SMTPC_REPLY_MAX_DEFAULT + 10)
		buf_append_str(&in, "zzzzzzzzzzzzzzzz");
	off = 0;
	r = 0;
	while (off < in.len && r == 0) {
		r = smtpc_feed(c, in.p + off, 1000, &used);
		off += used;
	}
	assert_int_equal(r, -1);
	assert_true(off > SMTPC_REPLY_MAX_DEFAULT);
	assert_true(off <= SMTPC_REPLY_MAX_DEFAULT + 1000);
	assert_true(smtpc_next(c, &ev));
	assert_string_equal(ev.error, "reply too long");
	smtpc_free(&c);
	buf_clear(&in);
}

/* ------------------------------------------------------------------ */
/* the body */

struct body_case {
	const char *in;
	size_t in_len;        /* 0: strlen */
	const char *want;
	size_t want_len;      /* 0: strlen */
};

static const struct body_case body_cases[] = {
	{ "", 0, ".\r\n", 0 },
	{ "a", 0, "a\r\n.\r\n", 0 },
	{ "a\n", 0, "a\r\n.\r\n", 0 },
	{ "a\r\n", 0, "a\r\n.\r\n", 0 },
	{ "a\r", 0, "a\r\n.\r\n", 0 },
	{ "a\rb", 0, "a\r\nb\r\n.\r\n", 0 },
	{ "a\n\nb", 0, "a\r\n\r\nb\r\n.\r\n", 0 },
	{ "\r\r\n\n", 0, "\r\n\r\n\r\n.\r\n", 0 },
	{ "\n\r", 0, "\r\n\r\n.\r\n", 0 },
	{ ".", 0, "..\r\n.\r\n", 0 },
	{ ".\r\n", 0, "..\r\n.\r\n", 0 },
	{ "..", 0, "...\r\n.\r\n", 0 },
	{ "a.b\n.c\r\n..d\r.e\n", 0,
	  "a.b\r\n..c\r\n...d\r\n..e\r\n.\r\n", 0 },
	{ "x\r\n.\r\ny", 0, "x\r\n..\r\ny\r\n.\r\n", 0 },
	{ " .\r\n", 0, " .\r\n.\r\n", 0 },
	{ "\xc3\xa9\x00\x80\n", 5, "\xc3\xa9\x00\x80\r\n.\r\n", 9 },
	{ "Subject: t\r\n\r\nline 1\r\n.\r\n..\r\nend", 0,
	  "Subject: t\r\n\r\nline 1\r\n..\r\n...\r\nend\r\n.\r\n", 0 },
};

/* an engine that just took BODY */
static struct smtpc *
body_engine(void)
{
	static const char in[] = GREET EHLO_NONE OK OK GO;
	struct smtpc *c = smtpc_new(&default_params);
	struct smtpc_event ev;
	const char *error;
	size_t off = 0, used;

	while (off < sizeof(in) - 1) {
		(void)smtpc_feed(c, (const uint8_t *)in + off,
				 sizeof(in) - 1 - off, &used);
		off += used;
		while (smtpc_next(c, &ev)) {
			if (ev.kind == SMTPC_EV_READY)
				assert_int_equal(smtpc_begin(c, &tx1, &error), 0);
		}
	}
	assert_int_equal(ev.kind, SMTPC_EV_NONE);
	assert_string_equal(smtpc_stage(c), "message body");
	buf_reset(smtpc_out(c));
	return c;
}

static void
body_check(const struct body_case *bc, const char *how, struct smtpc *c)
{
	struct buf *out = smtpc_out(c);
	size_t want = bc->want_len != 0 ? bc->want_len : strlen(bc->want);

	if (out->len != want || memcmp(out->p, bc->want, want) != 0) {
		char *g = escaped(out->p, out->len);
		char *w = escaped(bc->want, want);
		print_error("body %s: got %s, want %s\n", how, g, w);
		free(g);
		free(w);
		fail();
	}
	assert_string_equal(smtpc_stage(c), "end of data");
	smtpc_free(&c);
}

static void
test_body(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]);
	     i++) {
		const struct body_case *bc = &body_cases[i];
		const uint8_t *in = (const uint8_t *)bc->in;
		size_t n = bc->in_len != 0 ? bc->in_len : strlen(bc->in);
		struct smtpc *c;
		char how[96];

		c = body_engine();
		smtpc_body(c, in, n);
		smtpc_body_end(c);
		snprintf(how, sizeof(how), "%zu whole", i);
		body_check(bc, how, c);

		c = body_engine();
		for (size_t k = 0; k < n; k++) {
			smtpc_body(c, in + k, 1);
			smtpc_body(c, in + k, 0);
		}
		smtpc_body_end(c);
		snprintf(how, sizeof(how), "%zu byte by byte", i);
		body_check(bc, how, c);

		/* in three parts, cut at every pair of points */
		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				c = body_engine();
				smtpc_body(c, in, a);
				smtpc_body(c, in + a, b - a);
				smtpc_body(c, in + b, n - b);
				smtpc_body_end(c);
				snprintf(how, sizeof(how), "%zu cut at %zu, %zu",
					 i, a, b);
				body_check(bc, how, c);
			}
		}
	}
}

/* a body through a whole transaction, with a chunk per turn */
static void
test_body_transcript(void **state)
{
	static const struct tcase cases[] = {
		{ "dots and line ends", GREET EHLO_NONE OK OK GO QUEUED, 0,
		  { { .kind = ACT_BEGIN, .tx = &tx1,
		      .body = ".a\n..b\r.\r\nc" } },
		  EHLO MAIL1 RCPT_A DATA "..a\r\n...b\r\n..\r\nc\r\n.\r\n",
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
		{ "empty body", GREET EHLO_NONE OK OK GO QUEUED, 0,
		  { { .kind = ACT_BEGIN, .tx = &tx1, .body = "" } },
		  EHLO MAIL1 RCPT_A DATA ".\r\n",
		  READY_NONE GO_E "RESULT 0 " QUEUED_E "\nTX_DONE\n"
		  "STAGE idle 0\n" },
	};

	(void)state;
	RUN(cases);
}

/* ------------------------------------------------------------------ */
/* timeouts and stages, step by step */

static void
expect(struct smtpc *c, const char *in, int want_r, enum smtpc_event_kind k,
       const char *stage, unsigned timeout)
{
	struct smtpc_event ev;
	size_t used;
	int r = smtpc_feed(c, (const uint8_t *)in, strlen(in), &used);

	if (r != want_r)
		fail_msg("%s: got feed %d, want %d", in, r, want_r);
	assert_int_equal(used, strlen(in));
	if (k != SMTPC_EV_NONE) {
		assert_true(smtpc_next(c, &ev));
		if (ev.kind != k)
			fail_msg("%s: got event %d, want %d", in, ev.kind, k);
	}
	while (smtpc_next(c, &ev))
		;
	if (strcmp(smtpc_stage(c), stage) != 0 || smtpc_timeout(c) != timeout)
		fail_msg("after %s: got %s %u, want %s %u", in,
			 smtpc_stage(c), smtpc_timeout(c), stage, timeout);
}

static void
test_timeouts(void **state)
{
	static const struct smtpc_params p = {
		.helo_name = "client.test", .timeout_greeting = 11,
		.timeout_mail = 12, .timeout_rcpt = 13, .timeout_data = 14,
		.timeout_block = 15, .timeout_dot = 16,
	};
	struct smtpc *c;
	const char *error;

	(void)state;
	c = smtpc_new(&p);
	assert_string_equal(smtpc_stage(c), "greeting");
	assert_int_equal(smtpc_timeout(c), 11);
	expect(c, "220 hi\r\n", 0, SMTPC_EV_NONE, "EHLO", 12);
	expect(c, "502 no\r\n", 0, SMTPC_EV_NONE, "HELO", 12);
	expect(c, "250 ok\r\n", 1, SMTPC_EV_READY, "idle", 0);
	/* one by one: each reply names the next */
	assert_int_equal(smtpc_begin(c, &tx3, &error), 0);
	assert_string_equal(smtpc_stage(c), "MAIL FROM");
	assert_int_equal(smtpc_timeout(c), 12);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "RCPT TO", 13);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "RCPT TO", 13);
	expect(c, "550 no\r\n", 1, SMTPC_EV_RESULT, "RCPT TO", 13);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "DATA", 14);
	expect(c, "354 go\r\n", 1, SMTPC_EV_BODY, "message body", 15);
	smtpc_body(c, (const uint8_t *)"x", 1);
	assert_string_equal(smtpc_stage(c), "message body");
	assert_int_equal(smtpc_timeout(c), 15);
	smtpc_body_end(c);
	assert_string_equal(smtpc_stage(c), "end of data");
	assert_int_equal(smtpc_timeout(c), 16);
	expect(c, "451 later\r\n", 1, SMTPC_EV_RESULT, "idle", 0);
	/* no RSET after the end of data, refused or not; one after a
	 * refused MAIL */
	assert_int_equal(smtpc_begin(c, &tx1, &error), 0);
	expect(c, "550 no\r\n", 1, SMTPC_EV_RESULT, "idle", 0);
	assert_int_equal(smtpc_begin(c, &tx1, &error), 0);
	assert_string_equal(smtpc_stage(c), "RSET");
	assert_int_equal(smtpc_timeout(c), 12);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "MAIL FROM", 12);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "RCPT TO", 13);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "DATA", 14);
	expect(c, "421 bye\r\n", -1, SMTPC_EV_FAILED, "DATA", 0);
	/* after FAILED the caller's calls do nothing */
	smtpc_body(c, (const uint8_t *)"x", 1);
	smtpc_body_end(c);
	smtpc_quit(c);
	buf_reset(smtpc_out(c));
	assert_int_equal(smtpc_begin(c, &tx1, &error), -1);
	assert_string_equal(error, "the session is over");
	assert_int_equal(smtpc_out(c)->len, 0);
	smtpc_free(&c);
	smtpc_free(&c);

	/* pipelined: the first reply still awaited */
	c = smtpc_new(&p);
	expect(c, "220 hi\r\n", 0, SMTPC_EV_NONE, "EHLO", 12);
	expect(c, "250-hi\r\n250 PIPELINING\r\n", 1, SMTPC_EV_READY, "idle", 0);
	assert_int_equal(smtpc_begin(c, &tx3, &error), 0);
	assert_string_equal(smtpc_stage(c), "MAIL FROM");
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "RCPT TO", 13);
	expect(c, "250 ok\r\n250 ok\r\n250 ok\r\n", 0, SMTPC_EV_NONE,
	       "DATA", 14);
	expect(c, "354 go\r\n", 1, SMTPC_EV_BODY, "message body", 15);
	smtpc_body_end(c);
	expect(c, "250 ok\r\n", 1, SMTPC_EV_RESULT, "idle", 0);
	smtpc_quit(c);
	assert_string_equal(smtpc_stage(c), "QUIT");
	assert_int_equal(smtpc_timeout(c), 12);
	expect(c, "221 bye\r\n", -1, SMTPC_EV_NONE, "QUIT", 0);
	smtpc_free(&c);

	/* the defaults */
	c = smtpc_new(&default_params);
	assert_int_equal(smtpc_timeout(c), SMTPC_TIMEOUT_GREETING_DEFAULT);
	expect(c, "220 hi\r\n", 0, SMTPC_EV_NONE, "EHLO",
	       SMTPC_TIMEOUT_MAIL_DEFAULT);
	expect(c, "250 hi\r\n", 1, SMTPC_EV_READY, "idle", 0);
	assert_int_equal(smtpc_begin(c, &tx1, &error), 0);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "RCPT TO",
	       SMTPC_TIMEOUT_RCPT_DEFAULT);
	expect(c, "250 ok\r\n", 0, SMTPC_EV_NONE, "DATA",
	       SMTPC_TIMEOUT_DATA_DEFAULT);
	expect(c, "354 go\r\n", 1, SMTPC_EV_BODY, "message body",
	       SMTPC_TIMEOUT_BLOCK_DEFAULT);
	smtpc_body_end(c);
	assert_int_equal(smtpc_timeout(c), SMTPC_TIMEOUT_DOT_DEFAULT);
	smtpc_free(&c);
}

/* ------------------------------------------------------------------ */
/* feed() and next() details */

static void
test_feed_api(void **state)
{
	struct smtpc *c = smtpc_new(&default_params);
	struct smtpc_event ev;
	const char *in = GREET EHLO_NONE "250 extra\r\n";
	size_t used = 99;
	int r;

	(void)state;
	/* nothing yet */
	assert_false(smtpc_next(c, &ev));
	assert_int_equal(ev.kind, SMTPC_EV_NONE);
	assert_int_equal(smtpc_feed(c, NULL, 0, &used), 0);
	assert_int_equal(used, 0);
	/* the feed stops at READY: the extra reply is not read */
	r = smtpc_feed(c, (const uint8_t *)in, strlen(in), &used);
	assert_int_equal(r, 1);
	assert_int_equal(used, strlen(GREET EHLO_NONE));
	/* with an event pending nothing is read */
	r = smtpc_feed(c, (const uint8_t *)in + used, strlen(in) - used,
		       &used);
	assert_int_equal(r, 1);
	assert_int_equal(used, 0);
	assert_true(smtpc_next(c, &ev));
	assert_int_equal(ev.kind, SMTPC_EV_READY);
	assert_int_equal(ev.reply.code, 250);
	assert_string_equal(ev.reply.text, "mx.test");
	assert_string_equal(ev.reply.enhanced, "");
	assert_memory_equal(smtpc_out(c)->p, EHLO, strlen(EHLO));
	smtpc_free(&c);

	/* the HELO name never breaks the command line */
	struct smtpc_params p = { .helo_name = "a b\r\nQUIT" };
	c = smtpc_new(&p);
	r = smtpc_feed(c, (const uint8_t *)GREET, strlen(GREET), &used);
	assert_int_equal(r, 0);
	assert_int_equal(smtpc_out(c)->len, strlen("EHLO a?b??QUIT\r\n"));
	assert_memory_equal(smtpc_out(c)->p, "EHLO a?b??QUIT\r\n",
			    smtpc_out(c)->len);
	smtpc_free(&c);
}

/* many recipients: the event queue grows, and pointers stay right */
static void
test_many_rcpts(void **state)
{
	enum { N = 300 };
	static struct smtpc_rcpt rcpts[N];
	static char names[N][16];
	struct smtpc_tx tx = { .mail_from = "s@x.test", .rcpts = rcpts,
			       .nrcpts = N };
	struct smtpc *c = smtpc_new(&default_params);
	struct smtpc_event ev;
	const char *error;
	struct buf in;
	size_t used, off = 0, results = 0;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "r%zu@y.test", i);
		rcpts[i].address = names[i];
	}
	buf_init(&in, 0);
	buf_append_str(&in, GREET EHLO_PIPE "553 5.7.1 no sender\r\n");
	for (size_t i = 0; i < N + 1; i++)
		buf_append_str(&in, "503 5.5.1 no\r\n");
	buf_append_str(&in, "250 ok\r\n" OK OK OK GO);
	for (int round = 0; round < 2; round++) {
		bool done = false;

		while (!done) {
			int r = smtpc_feed(c, in.p + off, in.len - off, &used);

			assert_true(r >= 0);
			off += used;
			while (smtpc_next(c, &ev)) {
				if (ev.kind == SMTPC_EV_READY) {
					assert_int_equal(smtpc_begin(c, &tx,
								     &error), 0);
				} else if (ev.kind == SMTPC_EV_RESULT) {
					assert_int_equal(ev.rcpt, results % N);
					assert_int_equal(ev.reply.code, 553);
					assert_string_equal(ev.reply.text,
							    "no sender");
					results++;
				} else if (ev.kind == SMTPC_EV_TX_DONE) {
					done = true;
				}
			}
			if (off == in.len && !done)
				break;
		}
		if (round == 0) {
			assert_int_equal(results, N);
			tx.rcpts = rcpts;
			tx.nrcpts = 2;
			assert_int_equal(smtpc_begin(c, &tx, &error), 0);
		}
	}
	assert_string_equal(smtpc_stage(c), "message body");
	smtpc_free(&c);
	buf_clear(&in);
}

/* ------------------------------------------------------------------ */
/* STARTTLS (RFC 3207) and AUTH (RFC 4954) */

static const struct smtpc_params p_may = {
	.helo_name = "client.test", .tls = SMTPC_TLS_MAY,
};
static const struct smtpc_params p_require = {
	.helo_name = "client.test", .tls = SMTPC_TLS_REQUIRE,
};
static const struct smtpc_params p_auth = {
	.helo_name = "client.test", .tls = SMTPC_TLS_REQUIRE,
	.auth_user = "user", .auth_password = "pass",
};
static const struct smtpc_params p_auth_may = {
	.helo_name = "client.test", .tls = SMTPC_TLS_MAY,
	.auth_user = "user", .auth_password = "pass",
};
static const struct smtpc_params p_auth_none = {
	.helo_name = "client.test", .tls = SMTPC_TLS_NONE,
	.auth_user = "user", .auth_password = "pass",
};

/* before TLS: STARTTLS among others, which must be forgotten after it */
#define EHLO_TLS "250-mx.test\r\n250-SIZE 10000\r\n250-8BITMIME\r\n" \
	"250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
#define READY_TLS_CLEAR "READY 250 mx.test SIZE 10000 8BITMIME AUTH " \
	"PLAIN LOGIN STARTTLS ext=0x146 size=10000\n"
#define STARTTLS "STARTTLS\r\n"
#define GO_TLS "220 2.0.0 Ready to start TLS\r\n"
#define GO_TLS_E "STARTTLS 220 [2.0.0] Ready to start TLS\n"
/* over TLS: STARTTLS offered again (never sent twice) */
#define EHLO_IN_TLS "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
#define READY_IN_TLS "READY 250 mx.test PIPELINING STARTTLS ext=0x41 " \
	"size=0 tls\n"
#define EHLO_AUTH(mechs) "250-mx.test\r\n250 AUTH " mechs "\r\n"
/* base64 of "\0user\0pass" (RFC 4616), "user" and "pass" */
#define AUTH_PLAIN "AUTH PLAIN AHVzZXIAcGFzcw==\r\n"
#define AUTH_LOGIN "AUTH LOGIN\r\n"
#define B64_USER "dXNlcg==\r\n"
#define B64_PASS "cGFzcw==\r\n"
#define ASK_USER "334 VXNlcm5hbWU6\r\n"
#define ASK_PASS "334 UGFzc3dvcmQ6\r\n"
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define AUTH_BAD "535 5.7.8 Authentication credentials invalid\r\n"
#define AUTH_BAD_E "535 [5.7.8] Authentication credentials invalid"

static void
test_starttls(void **state)
{
	static const struct tcase may[] = {
		{ "may: offered", GREET EHLO_TLS GO_TLS EHLO_IN_TLS BYE, 0,
		  { DO_QUIT }, EHLO STARTTLS EHLO QUIT,
		  GO_TLS_E READY_IN_TLS "END\nSTAGE QUIT 0\n" },
		{ "may: a transaction over TLS", GREET EHLO_TLS GO_TLS
		  EHLO_IN_TLS OK "250 2.1.5 Ok\r\n" GO QUEUED BYE, 0,
		  { BEGIN(tx1), DO_QUIT },
		  EHLO STARTTLS EHLO MAIL1 RCPT_A DATA HELLO QUIT,
		  GO_TLS_E READY_IN_TLS GO_E "RESULT 0 " QUEUED_E
		  "\nTX_DONE\nEND\nSTAGE QUIT 0\n" },
		{ "may: not offered", GREET EHLO_PIPE BYE, 0, { DO_QUIT },
		  EHLO QUIT, READY_PIPE "END\nSTAGE QUIT 0\n" },
		/* RFC 3207 §4: 454, and the session goes on as before */
		{ "may: 454", GREET EHLO_TLS "454 4.7.0 TLS not available\r\n"
		  OK "250 2.1.5 Ok\r\n" GO QUEUED, 0, { BEGIN(tx1) },
		  EHLO STARTTLS "MAIL FROM:<s@x.test> SIZE=100\r\n" RCPT_A
		  DATA HELLO, "READY 0 ext=0x146 size=10000\n" GO_E
		  "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "may: 502", GREET EHLO_TLS "502 5.5.1 no\r\n", 0, { { 0 } },
		  EHLO STARTTLS, "READY 0 ext=0x146 size=10000\n"
		  "STAGE idle 0\n" },
		{ "may: 421 to STARTTLS", GREET EHLO_TLS "421 4.3.2 bye\r\n", 0,
		  { { 0 } }, EHLO STARTTLS,
		  "FAILED server is closing the session | 421 [4.3.2] bye\n"
		  "END\nSTAGE STARTTLS 0\n" },
		{ "may: STARTTLS pending", GREET EHLO_TLS, 0, { { 0 } },
		  EHLO STARTTLS, "STAGE STARTTLS 300\n" },
		{ "may: EHLO over TLS pending", GREET EHLO_TLS GO_TLS, 0,
		  { { 0 } }, EHLO STARTTLS EHLO,
		  GO_TLS_E "STAGE EHLO 300\n" },
		/* STARTTLS only follows EHLO (HELO offers nothing) */
		{ "may: HELO", GREET "502 no\r\n250 mx.test\r\n", 0, { { 0 } },
		  EHLO HELO, READY_NONE "STAGE idle 0\n" },
		/* RFC 3207 §4.2: EHLO over TLS refused, HELO over TLS */
		{ "may: EHLO over TLS refused", GREET EHLO_TLS GO_TLS
		  "502 no\r\n250 mx.test\r\n", 0, { { 0 } },
		  EHLO STARTTLS EHLO HELO, GO_TLS_E "READY 250 mx.test ext=0 "
		  "size=0 tls\nSTAGE idle 0\n" },
	};
	static const struct tcase none[] = {
		{ "none: offered", GREET EHLO_TLS BYE, 0, { DO_QUIT },
		  EHLO QUIT, READY_TLS_CLEAR "END\nSTAGE QUIT 0\n" },
	};
	static const struct tcase require[] = {
		{ "require: offered", GREET EHLO_TLS GO_TLS EHLO_IN_TLS, 0,
		  { { 0 } }, EHLO STARTTLS EHLO,
		  GO_TLS_E READY_IN_TLS "STAGE idle 0\n" },
		/* nothing after EHLO goes in the clear */
		{ "require: not offered", GREET EHLO_ALL_NO_TLS, 0, { { 0 } },
		  EHLO, "FAILED tls: TLS is required and the server does not "
		  "offer STARTTLS | 0\nEND\nSTAGE EHLO 0\n" },
		{ "require: HELO", GREET "502 no\r\n250 mx.test\r\n", 0,
		  { { 0 } }, EHLO HELO, "FAILED tls: TLS is required and the "
		  "server does not offer STARTTLS | 0\nEND\nSTAGE HELO 0\n" },
		{ "require: 454", GREET EHLO_TLS
		  "454 4.7.0 TLS not available\r\n", 0, { { 0 } },
		  EHLO STARTTLS, "FAILED tls: STARTTLS refused | 454 [4.7.0] "
		  "TLS not available\nEND\nSTAGE STARTTLS 0\n" },
		{ "require: 554", GREET EHLO_TLS "554 5.7.0 no\r\n", 0,
		  { { 0 } }, EHLO STARTTLS, "FAILED tls: STARTTLS refused | "
		  "554 [5.7.0] no\nEND\nSTAGE STARTTLS 0\n" },
		/* 220 only: another 2xx is not the go-ahead */
		{ "require: 250", GREET EHLO_TLS "250 ok\r\n", 0, { { 0 } },
		  EHLO STARTTLS,
		  "FAILED tls: STARTTLS refused | 250 ok\nEND\n"
		  "STAGE STARTTLS 0\n" },
	};
	static const struct tcase held[] = {
		{ "handshake running", GREET EHLO_TLS GO_TLS, 0, { { 0 } },
		  EHLO STARTTLS, GO_TLS_E "STAGE TLS handshake 300\n" },
		/* a reply before the handshake was sent in the clear after
		 * the 220 (RFC 3207 §4.2, CVE-2011-0411): never a command's
		 * answer */
		{ "reply before TLS", GREET EHLO_TLS GO_TLS
		  "250 2.1.0 injected\r\n", 0, { { 0 } }, EHLO STARTTLS,
		  GO_TLS_E "FAILED reply before TLS was started | "
		  "250 [2.1.0] injected\nEND\nSTAGE TLS handshake 0\n" },
	};

	(void)state;
	case_params = &p_may;
	RUN(may);
	case_params = &default_params;
	RUN(none);
	case_params = &p_require;
	RUN(require);
	hold_tls = true;
	RUN(held);
	hold_tls = false;
	case_params = NULL;
}

static void
test_auth(void **state)
{
	static const struct tcase cases[] = {
		/* PLAIN when offered, whatever the order (RFC 4954 §4:
		 * with its initial response) */
		{ "PLAIN", GREET EHLO_TLS GO_TLS EHLO_AUTH("LOGIN PLAIN")
		  AUTH_OK BYE, 0, { DO_QUIT },
		  EHLO STARTTLS EHLO AUTH_PLAIN QUIT,
		  GO_TLS_E "READY 0 ext=0x100 size=0 tls auth=PLAIN\nEND\n"
		  "STAGE QUIT 0\n" },
		{ "PLAIN, then mail", GREET EHLO_TLS GO_TLS
		  "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n" AUTH_OK
		  OK "250 2.1.5 Ok\r\n" GO QUEUED, 0, { BEGIN(tx1) },
		  EHLO STARTTLS EHLO AUTH_PLAIN MAIL1 RCPT_A DATA HELLO,
		  GO_TLS_E "READY 0 ext=0x101 size=0 tls auth=PLAIN\n" GO_E
		  "RESULT 0 " QUEUED_E "\nTX_DONE\nSTAGE idle 0\n" },
		{ "PLAIN lower case", GREET EHLO_TLS GO_TLS
		  EHLO_AUTH("cram-md5 plain") AUTH_OK, 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "READY 0 ext=0x100 size=0 tls auth=PLAIN\n"
		  "STAGE idle 0\n" },
		{ "LOGIN", GREET EHLO_TLS GO_TLS EHLO_AUTH("CRAM-MD5 LOGIN")
		  ASK_USER ASK_PASS AUTH_OK, 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_LOGIN B64_USER B64_PASS,
		  GO_TLS_E "READY 0 ext=0x100 size=0 tls auth=LOGIN\n"
		  "STAGE idle 0\n" },
		{ "AUTH=LOGIN", GREET EHLO_TLS GO_TLS
		  "250-mx.test\r\n250 AUTH=LOGIN\r\n" ASK_USER ASK_PASS
		  AUTH_OK, 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_LOGIN B64_USER B64_PASS,
		  GO_TLS_E "READY 0 ext=0x100 size=0 tls auth=LOGIN\n"
		  "STAGE idle 0\n" },
		/* the AUTH offered before TLS counts for nothing */
		{ "no AUTH over TLS", GREET EHLO_TLS GO_TLS EHLO_IN_TLS, 0,
		  { { 0 } }, EHLO STARTTLS EHLO,
		  GO_TLS_E "FAILED auth-mech: the server does not offer AUTH "
		  "| 0\nEND\nSTAGE EHLO 0\n" },
		{ "no mechanism in common", GREET EHLO_TLS GO_TLS
		  EHLO_AUTH("CRAM-MD5 SCRAM-SHA-256"), 0, { { 0 } },
		  EHLO STARTTLS EHLO,
		  GO_TLS_E "FAILED auth-mech: the server offers no AUTH "
		  "mechanism tern speaks (PLAIN, LOGIN) | 0\nEND\n"
		  "STAGE EHLO 0\n" },
		{ "PLAIN 535", GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN LOGIN")
		  AUTH_BAD, 0, { { 0 } }, EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "FAILED auth: authentication failed | " AUTH_BAD_E
		  "\nEND\nSTAGE AUTH 0\n" },
		{ "LOGIN 535", GREET EHLO_TLS GO_TLS EHLO_AUTH("LOGIN")
		  ASK_USER ASK_PASS AUTH_BAD, 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_LOGIN B64_USER B64_PASS,
		  GO_TLS_E "FAILED auth: authentication failed | " AUTH_BAD_E
		  "\nEND\nSTAGE AUTH 0\n" },
		{ "LOGIN refused at once", GREET EHLO_TLS GO_TLS
		  EHLO_AUTH("LOGIN") "504 5.5.4 no\r\n", 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_LOGIN,
		  GO_TLS_E "FAILED auth: authentication failed | 504 [5.5.4] "
		  "no\nEND\nSTAGE AUTH 0\n" },
		{ "PLAIN: a challenge", GREET EHLO_TLS GO_TLS
		  EHLO_AUTH("PLAIN") "334 \r\n", 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "FAILED auth: unexpected challenge in AUTH | 334\n"
		  "END\nSTAGE AUTH 0\n" },
		{ "LOGIN: a third challenge", GREET EHLO_TLS GO_TLS
		  EHLO_AUTH("LOGIN") ASK_USER ASK_PASS "334 eD8=\r\n", 0,
		  { { 0 } }, EHLO STARTTLS EHLO AUTH_LOGIN B64_USER B64_PASS,
		  GO_TLS_E "FAILED auth: unexpected challenge in AUTH | 334 "
		  "eD8=\nEND\nSTAGE AUTH 0\n" },
		{ "421 to AUTH", GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN")
		  "421 4.7.0 bye\r\n", 0, { { 0 } },
		  EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "FAILED server is closing the session | 421 "
		  "[4.7.0] bye\nEND\nSTAGE AUTH 0\n" },
		{ "AUTH pending", GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN"), 0,
		  { { 0 } }, EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "STAGE AUTH 300\n" },
	};
	/* credentials never go out in the clear, whatever the policy */
	static const struct tcase may[] = {
		{ "may: no STARTTLS", GREET EHLO_AUTH("PLAIN LOGIN"), 0,
		  { { 0 } }, EHLO, "FAILED auth-clear: credentials are not "
		  "sent without TLS | 0\nEND\nSTAGE EHLO 0\n" },
		{ "may: 454", GREET EHLO_TLS "454 4.7.0 later\r\n", 0,
		  { { 0 } }, EHLO STARTTLS, "FAILED auth-clear: credentials "
		  "are not sent without TLS | 0\nEND\nSTAGE STARTTLS 0\n" },
		{ "may: offered", GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN")
		  AUTH_OK, 0, { { 0 } }, EHLO STARTTLS EHLO AUTH_PLAIN,
		  GO_TLS_E "READY 0 ext=0x100 size=0 tls auth=PLAIN\n"
		  "STAGE idle 0\n" },
	};
	static const struct tcase none[] = {
		{ "none: offered", GREET EHLO_TLS, 0, { { 0 } }, EHLO,
		  "FAILED auth-clear: credentials are not sent without TLS "
		  "| 0\nEND\nSTAGE EHLO 0\n" },
	};

	(void)state;
	case_params = &p_auth;
	RUN(cases);
	case_params = &p_auth_may;
	RUN(may);
	case_params = &p_auth_none;
	RUN(none);
	case_params = NULL;
}

/* the engine keeps no credentials once AUTH is over, nor in its output
 * after the turn that wrote them */
static void
test_auth_wipe(void **state)
{
	static const char *const ins[] = {
		GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN") AUTH_OK,
		GREET EHLO_TLS GO_TLS EHLO_AUTH("PLAIN") AUTH_BAD,
		GREET EHLO_TLS GO_TLS EHLO_AUTH("LOGIN") ASK_USER ASK_PASS
		AUTH_OK,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		struct smtpc *c = smtpc_new(&p_auth);
		const char *in = ins[i];
		size_t n = strlen(in), used;
		struct smtpc_event ev;
		int r = 0;

		assert_non_null(c->auth_password);
		while (n > 0 && r >= 0) {
			r = smtpc_feed(c, (const uint8_t *)in, n, &used);
			in += used;
			n -= used;
			while (smtpc_next(c, &ev)) {
				if (ev.kind == SMTPC_EV_STARTTLS)
					smtpc_tls_started(c);
				/* no event text holds them */
				assert_null(strstr(ev.reply.text, "pass"));
				assert_null(strstr(ev.reply.text, "cGFzcw"));
			}
			buf_reset(smtpc_out(c));
		}
		assert_null(c->auth_user);
		assert_null(c->auth_password);
		/* the next turn wipes what the last one wrote */
		if (r >= 0) {
			(void)smtpc_feed(c, (const uint8_t *)"", 0, &used);
			assert_false(c->out_secret);
			for (size_t k = 0; k < c->out.cap; k++)
				assert_int_equal(c->out.p[k], 0);
		}
		smtpc_free(&c);
	}
}

/* RFC 4648 §10 vectors, and the AUTH keyword's mechanisms */
static void
test_auth_pieces(void **state)
{
	static const struct {
		const char *in, *want;
	} b64[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" }, { "\xff\xfe\xfd", "//79" },
	};
	static const struct {
		const char *params;
		unsigned want;
	} mechs[] = {
		{ "PLAIN", SMTPC_AUTH_PLAIN },
		{ "LOGIN PLAIN", SMTPC_AUTH_PLAIN | SMTPC_AUTH_LOGIN },
		{ " login  ", SMTPC_AUTH_LOGIN },
		{ "CRAM-MD5 SCRAM-SHA-256", 0 },
		{ "PLAINX LOGI XPLAIN", 0 },
		{ "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		struct buf b;

		buf_init(&b, 0);
		smtpc_base64(&b, (const uint8_t *)b64[i].in,
			     strlen(b64[i].in));
		if (b.len != strlen(b64[i].want) ||
		    (b.len > 0 && memcmp(b.p, b64[i].want, b.len) != 0))
			fail_msg("base64 of %s: got %.*s, want %s", b64[i].in,
				 (int)b.len, b.p != NULL ? (char *)b.p : "",
				 b64[i].want);
		buf_clear(&b);
	}
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		unsigned got = smtpc_auth_parse(mechs[i].params,
						strlen(mechs[i].params));
		if (got != mechs[i].want)
			fail_msg("AUTH %s: got %#x, want %#x", mechs[i].params,
				 got, mechs[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_ehlo_keywords),
		cmocka_unit_test(test_transaction),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_421),
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_parameters),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_reply_limits),
		cmocka_unit_test(test_reply_defaults),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_transcript),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_feed_api),
		cmocka_unit_test(test_many_rcpts),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_auth_wipe),
		cmocka_unit_test(test_auth_pieces),
	};
	return cmocka_run_group_tests_name("smtpc", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Transcript tests of the SMTP server engine: each case is an input and
 * the replies and events it must give. Every input is fed whole, byte by
 * byte, and split at every point (a stride for long inputs), and each way
 * must give the same replies and events. A small harness answers verdicts
 * by the address (see policy()) and records what the engine did.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"
#include "smtp/smtp_int.h"

#define HOST "mx.test"

/* ------------------------------------------------------------------ */
/* harness */

struct harness {
	struct smtp_engine *e;
	struct buf out;       /* every reply the engine wrote */
	struct buf log;       /* one line per event */
	struct buf body;      /* DATA_CHUNK octets not yet logged */
	char mail_from[64];   /* for the DATA verdicts */
	char helo[600];
	bool have_helo;
	bool closed;
	bool check_lines;     /* check each output line's framing */
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
log_body(struct harness *h)
{
	if (h->body.len == 0)
		return;
	buf_append_str(&h->log, "BODY ");
	esc_append(&h->log, h->body.p, h->body.len);
	buf_append_str(&h->log, "\n");
	buf_reset(&h->body);
}

static bool
starts(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* the verdicts the harness gives, by address */
static void
policy(struct harness *h, const struct smtp_event *ev)
{
	static const char *const list[] = { "<a@x.test>", "<b@x.test>" };
	struct smtp_verdict v = { .kind = SMTP_VERDICT_OK };

	switch (ev->kind) {
	case SMTP_EV_MAIL:
		snprintf(h->mail_from, sizeof(h->mail_from), "%s", ev->address);
		if (starts(ev->address, "reject")) {
			v.kind = SMTP_VERDICT_PERMFAIL;
		} else if (starts(ev->address, "tempfail")) {
			v.kind = SMTP_VERDICT_TEMPFAIL;
		} else if (starts(ev->address, "closeme")) {
			v.kind = SMTP_VERDICT_TEMPFAIL;
			v.code = 421;
			v.enhanced = "4.7.0";
			v.text = "Go away";
			v.close = true;
		} else if (starts(ev->address, "custom")) {
			v.code = 250;
			v.text = "Sender ok";
		}
		break;
	case SMTP_EV_RCPT:
		if (starts(ev->address, "unknown")) {
			v.kind = SMTP_VERDICT_PERMFAIL;
		} else if (starts(ev->address, "temp")) {
			v.kind = SMTP_VERDICT_TEMPFAIL;
		} else if (starts(ev->address, "relay")) {
			v.kind = SMTP_VERDICT_PERMFAIL;
			v.code = 550;
			v.enhanced = "5.7.1";
			v.text = "Relay access denied";
		}
		break;
	case SMTP_EV_DATA_START:
		if (starts(h->mail_from, "nodata"))
			v.kind = SMTP_VERDICT_TEMPFAIL;
		else if (starts(h->mail_from, "permdata"))
			v.kind = SMTP_VERDICT_PERMFAIL;
		break;
	case SMTP_EV_DATA_END:
		if (starts(h->mail_from, "dropend"))
			v.kind = SMTP_VERDICT_PERMFAIL;
		else if (starts(h->mail_from, "byeend"))
			v.close = true;
		else
			v.text = "Ok: queued as Q1";
		break;
	case SMTP_EV_VRFY:
		if (strcmp(ev->address, "known") == 0) {
			/* the default text: the argument */
		} else if (strcmp(ev->address, "custom") == 0) {
			v.code = 250;
			v.enhanced = "2.1.5";
			v.text = "Custom <c@x.test>";
		} else {
			v.kind = SMTP_VERDICT_PERMFAIL;
		}
		break;
	case SMTP_EV_EXPN:
		if (strcmp(ev->address, "list") == 0) {
			v.code = 250;
			v.enhanced = "2.1.5";
			v.lines = list;
			v.nlines = 2;
		} else {
			v.kind = SMTP_VERDICT_PERMFAIL;
		}
		break;
	default:
		fail_msg("no verdict for event %d", ev->kind);
	}
	smtp_engine_decide(h->e, &v);
}

static void
log_event(struct harness *h, const struct smtp_event *ev)
{
	struct buf *l = &h->log;

	if (ev->kind == SMTP_EV_DATA_CHUNK) {
		assert_non_null(ev->data);
		assert_true(ev->data_len > 0);
		assert_true(ev->data_len <= SMTP_CHUNK_MAX + 2);
		buf_append(&h->body, ev->data, ev->data_len);
		return;
	}
	if (ev->kind == SMTP_EV_DATA_ABORT) {
		/* the caller drops what it received */
		buf_reset(&h->body);
	}
	log_body(h);
	/* every event after HELO carries the HELO name */
	if (h->have_helo && ev->kind != SMTP_EV_HELO) {
		if (ev->helo_name == NULL || strcmp(ev->helo_name, h->helo) != 0)
			fail_msg("event %d: got helo_name %s, want %s", ev->kind,
				 ev->helo_name != NULL ? ev->helo_name : "NULL",
				 h->helo);
	}
	switch (ev->kind) {
	case SMTP_EV_HELO:
		assert_non_null(ev->helo_name);
		snprintf(h->helo, sizeof(h->helo), "%s", ev->helo_name);
		h->have_helo = true;
		buf_append_str(l, "HELO ");
		esc_append(l, ev->helo_name, strlen(ev->helo_name));
		buf_append_str(l, ev->esmtp ? " esmtp\n" : " smtp\n");
		break;
	case SMTP_EV_RSET:
		buf_append_str(l, "RSET\n");
		break;
	case SMTP_EV_QUIT:
		buf_append_str(l, "QUIT\n");
		break;
	case SMTP_EV_DATA_ABORT:
		buf_printf(l, "ABORT %s\n", ev->reply);
		break;
	case SMTP_EV_PROTOCOL_ERROR:
		buf_printf(l, "ERROR %s\n", ev->reply);
		break;
	case SMTP_EV_MAIL:
		buf_append_str(l, "MAIL <");
		esc_append(l, ev->address, strlen(ev->address));
		buf_append_str(l, ">");
		if (ev->mail.size != 0)
			buf_printf(l, " SIZE=%llu",
				   (unsigned long long)ev->mail.size);
		if (ev->mail.body == SMTP_BODY_7BIT)
			buf_append_str(l, " BODY=7BIT");
		if (ev->mail.body == SMTP_BODY_8BITMIME)
			buf_append_str(l, " BODY=8BITMIME");
		if (ev->mail.smtputf8)
			buf_append_str(l, " SMTPUTF8");
		if (ev->mail.ret == SMTP_RET_FULL)
			buf_append_str(l, " RET=FULL");
		if (ev->mail.ret == SMTP_RET_HDRS)
			buf_append_str(l, " RET=HDRS");
		if (ev->mail.envid != NULL)
			buf_printf(l, " ENVID=%s", ev->mail.envid);
		buf_append_str(l, "\n");
		break;
	case SMTP_EV_RCPT:
		buf_append_str(l, "RCPT <");
		esc_append(l, ev->address, strlen(ev->address));
		buf_append_str(l, ">");
		if (ev->rcpt.notify != 0)
			buf_printf(l, " NOTIFY=%x", ev->rcpt.notify);
		if (ev->rcpt.orcpt != NULL) {
			buf_append_str(l, " ORCPT=");
			esc_append(l, ev->rcpt.orcpt, strlen(ev->rcpt.orcpt));
		}
		buf_append_str(l, "\n");
		break;
	case SMTP_EV_DATA_START:
		buf_append_str(l, ev->chunking ? "BDAT_START\n" : "DATA_START\n");
		break;
	case SMTP_EV_DATA_END:
		buf_printf(l, "%s %llu\n", ev->chunking ? "BDAT_END" : "DATA_END",
			   (unsigned long long)ev->size);
		break;
	case SMTP_EV_VRFY:
		buf_printf(l, "VRFY %s\n", ev->address);
		break;
	case SMTP_EV_EXPN:
		buf_printf(l, "EXPN %s\n", ev->address);
		break;
	default:
		fail_msg("unexpected event %d", ev->kind);
	}
}

static bool
needs_verdict(enum smtp_event_kind k)
{
	return k == SMTP_EV_MAIL || k == SMTP_EV_RCPT ||
	       k == SMTP_EV_DATA_START || k == SMTP_EV_DATA_END ||
	       k == SMTP_EV_VRFY || k == SMTP_EV_EXPN;
}

/* takes the engine's output and checks its framing */
static void
take_output(struct harness *h)
{
	struct buf *out = smtp_engine_out(h->e);
	size_t start = 0;

	if (h->check_lines) {
		for (size_t i = 0; i < out->len; i++) {
			if (out->p[i] != '\n')
				continue;
			if (i == 0 || out->p[i - 1] != '\r')
				fail_msg("reply line without CRLF");
			if (i + 1 - start > SMTP_REPLY_LINE_MAX)
				fail_msg("reply line of %zu octets", i + 1 - start);
			start = i + 1;
		}
		if (start != out->len)
			fail_msg("reply does not end in CRLF");
	}
	buf_append(&h->out, out->p, out->len);
	buf_reset(out);
}

static void
drain(struct harness *h)
{
	struct smtp_event ev;

	while (smtp_engine_next(h->e, &ev)) {
		log_event(h, &ev);
		if (needs_verdict(ev.kind)) {
			assert_true(smtp_engine_waiting(h->e));
			policy(h, &ev);
		}
	}
	assert_false(smtp_engine_waiting(h->e));
	take_output(h);
}

static void
h_feed(struct harness *h, const uint8_t *p, size_t n)
{
	unsigned idle = 0;

	while (!h->closed) {
		size_t used = 99;
		int r = smtp_engine_feed(h->e, p, n, &used);

		assert_true(used <= n);
		if (r == 0)
			assert_int_equal(used, n);
		p += used;
		n -= used;
		drain(h);
		if (r < 0) {
			h->closed = true;
			assert_int_equal(smtp_engine_phase(h->e),
					 SMTP_PHASE_CLOSED);
			return;
		}
		if (n == 0)
			return;
		/* progress: input used or events produced */
		if (used == 0 && r == 0 && ++idle > 2)
			fail_msg("engine stuck with %zu octets left", n);
	}
}

static const struct smtp_params default_params = {
	.hostname = HOST,
	.size_max = 10000,
	.rcpt_max = 5,
	.errors_max = 10,
};

static void
h_init(struct harness *h, const struct smtp_params *params)
{
	memset(h, 0, sizeof(*h));
	h->e = smtp_engine_new(params != NULL ? params : &default_params);
	buf_init(&h->out, 0);
	buf_init(&h->log, 0);
	buf_init(&h->body, 0);
	h->check_lines = true;
	smtp_engine_greet(h->e);
	/* the greeting is checked once, by test_greeting */
	buf_reset(smtp_engine_out(h->e));
}

static void
h_done(struct harness *h)
{
	log_body(h);
	smtp_engine_free(&h->e);
	assert_null(h->e);
}

static void
h_clear(struct harness *h)
{
	buf_clear(&h->out);
	buf_clear(&h->log);
	buf_clear(&h->body);
}

/* ------------------------------------------------------------------ */
/* running cases */

struct tcase {
	const char *name;
	const char *in;
	size_t in_len;                   /* 0: strlen(in) */
	const char *out;
	const char *events;
	const struct smtp_params *params;
};

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
		print_error("%s (%s): replies\n got  %s\n want %s\n", tc->name,
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

	/* whole */
	h_init(&h, tc->params);
	h_feed(&h, in, n);
	h_done(&h);
	check(tc, "whole", &h);
	h_clear(&h);

	/* byte by byte */
	h_init(&h, tc->params);
	for (size_t i = 0; i < n; i++)
		h_feed(&h, in + i, 1);
	h_done(&h);
	check(tc, "byte by byte", &h);
	h_clear(&h);

	/* split in two at every point */
	size_t step = n <= SPLIT_ALL_MAX ? 1 : n / 97 + 1;
	for (size_t cut = 0; cut <= n; cut += step) {
		h_init(&h, tc->params);
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

#define EHLO "EHLO client.test\r\n"
#define EHLO_R "250-" HOST " Hello client.test\r\n" \
	"250-SIZE 10000\r\n250-PIPELINING\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n" \
	"250 DSN\r\n"
#define EHLO_E "HELO client.test esmtp\n"
#define MAIL "MAIL FROM:<s@x.test>\r\n"
#define MAIL_R "250 2.1.0 Ok\r\n"
#define MAIL_E "MAIL <s@x.test>\n"
#define RCPT "RCPT TO:<r@y.test>\r\n"
#define RCPT_R "250 2.1.5 Ok\r\n"
#define RCPT_E "RCPT <r@y.test>\n"
#define ENV EHLO MAIL RCPT
#define ENV_R EHLO_R MAIL_R RCPT_R
#define ENV_E EHLO_E MAIL_E RCPT_E
#define D354 "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED "250 2.0.0 Ok: queued as Q1\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define E500 "500 5.5.2 Error: command not recognized"
#define E502 "502 5.5.1 Error: command not implemented"
#define NEED_HELO "503 5.5.1 Error: send HELO/EHLO first"
#define NEED_MAIL "503 5.5.1 Error: need MAIL command"
#define NEED_RCPT "503 5.5.1 Error: need RCPT command"
#define NO_RCPT "554 5.5.1 No valid recipients"
#define BARE_MSG "550 5.6.2 Bare CR or LF not allowed in message"
#define BARE_CMD "500 5.5.2 Bare CR or LF not allowed in command"
#define TOO_BIG "552 5.3.4 Message size exceeds fixed maximum message size"
#define TEMP "451 4.3.0 Temporary failure, try again later"

/* ------------------------------------------------------------------ */
/* greeting, HELO, EHLO */

static void
test_greeting(void **state)
{
	struct smtp_params p = default_params;
	struct smtp_engine *e;
	struct buf *out;

	(void)state;
	e = smtp_engine_new(&p);
	smtp_engine_greet(e);
	out = smtp_engine_out(e);
	assert_int_equal(out->len, strlen("220 " HOST " ESMTP tern\r\n"));
	assert_memory_equal(out->p, "220 " HOST " ESMTP tern\r\n", out->len);
	assert_int_equal(smtp_engine_phase(e), SMTP_PHASE_COMMAND);
	assert_false(smtp_engine_waiting(e));
	smtp_engine_free(&e);
	smtp_engine_free(&e);   /* NULL-safe */
}

static const struct tcase helo_cases[] = {
	{ "ehlo", EHLO, 0, EHLO_R, EHLO_E, NULL },
	{ "helo", "HELO client.test\r\n", 0,
	  "250 " HOST " Hello client.test\r\n", "HELO client.test smtp\n", NULL },
	{ "lower case verb", "ehlo client.test\r\n", 0, EHLO_R, EHLO_E, NULL },
	{ "ehlo without name", "EHLO\r\n", 0,
	  "501 Syntax: EHLO hostname\r\n",
	  "ERROR 501 Syntax: EHLO hostname\n", NULL },
	{ "ehlo with spaces only", "EHLO   \r\n", 0,
	  "501 Syntax: EHLO hostname\r\n",
	  "ERROR 501 Syntax: EHLO hostname\n", NULL },
	{ "helo without name", "HELO\r\n", 0,
	  "501 Syntax: HELO hostname\r\n",
	  "ERROR 501 Syntax: HELO hostname\n", NULL },
	{ "helo with a control octet", "HELO a\tb\r\n", 0,
	  "501 Syntax: HELO hostname\r\n",
	  "ERROR 501 Syntax: HELO hostname\n", NULL },
	{ "address literal", "HELO [192.0.2.1]\r\n", 0,
	  "250 " HOST " Hello [192.0.2.1]\r\n", "HELO [192.0.2.1] smtp\n",
	  NULL },
	{ "non-ASCII name is not echoed raw", "HELO h\xc3\xa9\r\n", 0,
	  "250 " HOST " Hello h??\r\n", "HELO h\\xc3\\xa9 smtp\n", NULL },
	{ "second EHLO drops the transaction",
	  ENV "EHLO other.test\r\n" RCPT, 0,
	  ENV_R "250-" HOST " Hello other.test\r\n"
	  "250-SIZE 10000\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
	  "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
	  "250 DSN\r\n" NEED_MAIL "\r\n",
	  ENV_E "RSET\nHELO other.test esmtp\nERROR " NEED_MAIL "\n", NULL },
	{ "HELO after EHLO without a transaction: no RSET",
	  EHLO "HELO b.test\r\n", 0,
	  EHLO_R "250 " HOST " Hello b.test\r\n",
	  EHLO_E "HELO b.test smtp\n", NULL },
};

static void
test_helo(void **state)
{
	(void)state;
	RUN(helo_cases);
}

/* a long HELO name: the reply line is cut to 512 octets */
static void
test_helo_long(void **state)
{
	char in[600], name[506], out[1200], ev[700];
	char line[1024];

	(void)state;
	memset(name, 'h', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(in, sizeof(in), "HELO %s\r\n", name);
	assert_int_equal(strlen(in), 512);
	snprintf(line, sizeof(line), "250 " HOST " Hello %s", name);
	/* 510 octets of text and CRLF make 512 */
	line[SMTP_REPLY_LINE_MAX - 2] = '\0';
	snprintf(out, sizeof(out), "%s\r\n", line);
	snprintf(ev, sizeof(ev), "HELO %s smtp\n", name);
	const struct tcase c[] = { { "long helo", in, 0, out, ev, NULL } };
	RUN(c);
}

/* ------------------------------------------------------------------ */
/* simple commands */

static const struct smtp_params vrfy_params = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.vrfy_enabled = true, .expn_enabled = true,
};

static const struct tcase simple_cases[] = {
	{ "noop", "NOOP\r\n", 0, OK, "", NULL },
	{ "noop with argument", "NOOP hello there\r\n", 0, OK, "", NULL },
	{ "noop trailing spaces", "NOOP   \r\n", 0, OK, "", NULL },
	{ "rset before helo", "RSET\r\n", 0, OK, "RSET\n", NULL },
	{ "rset drops the transaction", ENV "RSET\r\n" RCPT "DATA\r\n", 0,
	  ENV_R OK NEED_MAIL "\r\n" NEED_MAIL "\r\n",
	  ENV_E "RSET\nERROR " NEED_MAIL "\nERROR " NEED_MAIL "\n", NULL },
	{ "rset with argument", "RSET x\r\n", 0,
	  "501 5.5.4 Syntax: RSET\r\n", "ERROR 501 5.5.4 Syntax: RSET\n",
	  NULL },
	{ "quit", "QUIT\r\nNOOP\r\n", 0, "221 2.0.0 Bye\r\n", "QUIT\n", NULL },
	{ "quit in a transaction", ENV "QUIT\r\n", 0,
	  ENV_R "221 2.0.0 Bye\r\n", ENV_E "QUIT\n", NULL },
	{ "quit with argument", "QUIT now\r\nQUIT\r\n", 0,
	  "501 5.5.4 Syntax: QUIT\r\n221 2.0.0 Bye\r\n",
	  "ERROR 501 5.5.4 Syntax: QUIT\nQUIT\n", NULL },
	{ "help", "HELP\r\n", 0,
	  "214-2.0.0 Commands supported:\r\n"
	  "214 2.0.0 EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP "
	  "VRFY\r\n", "", NULL },
	{ "help with argument", "help mail\r\n", 0,
	  "214-2.0.0 Commands supported:\r\n"
	  "214 2.0.0 EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP "
	  "VRFY\r\n", "", NULL },
	{ "help lists EXPN when enabled", "HELP\r\n", 0,
	  "214-2.0.0 Commands supported:\r\n"
	  "214 2.0.0 EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP "
	  "VRFY EXPN\r\n", "", &vrfy_params },
	{ "vrfy off", "VRFY bob\r\n", 0,
	  "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
	  "delivery\r\n", "", NULL },
	{ "vrfy without argument", "VRFY\r\n", 0,
	  "501 5.5.4 Syntax: VRFY address\r\n",
	  "ERROR 501 5.5.4 Syntax: VRFY address\n", NULL },
	{ "vrfy on", "VRFY known\r\nVRFY custom\r\nVRFY bob\r\n", 0,
	  "250 2.1.5 known\r\n250 2.1.5 Custom <c@x.test>\r\n"
	  "550 5.1.1 User unknown\r\n",
	  "VRFY known\nVRFY custom\nVRFY bob\n", &vrfy_params },
	{ "expn off", "EXPN list\r\n", 0,
	  "502 5.5.1 EXPN command is disabled\r\n",
	  "ERROR 502 5.5.1 EXPN command is disabled\n", NULL },
	{ "expn on", EHLO "EXPN list\r\nEXPN nolist\r\nEXPN\r\n", 0,
	  EHLO_R "250-2.1.5 <a@x.test>\r\n250 2.1.5 <b@x.test>\r\n"
	  "550 5.1.1 Mailing list unknown\r\n"
	  "501 5.5.4 Syntax: EXPN list\r\n",
	  EHLO_E "EXPN list\nEXPN nolist\n"
	  "ERROR 501 5.5.4 Syntax: EXPN list\n", &vrfy_params },
	{ "turn is obsolete", "TURN\r\n", 0, E502 "\r\n", "ERROR " E502 "\n",
	  NULL },
	{ "not implemented", "ETRN x.test\r\nATRN\r\nSTARTTLS\r\nAUTH PLAIN\r\n"
	  "SEND FROM:<a@b>\r\n", 0,
	  E502 "\r\n" E502 "\r\n" E502 "\r\n" E502 "\r\n" E502 "\r\n",
	  "ERROR " E502 "\nERROR " E502 "\nERROR " E502 "\nERROR " E502
	  "\nERROR " E502 "\n", NULL },
	{ "unknown command", "FOO\r\nMAILX\r\n", 0, E500 "\r\n" E500 "\r\n",
	  "ERROR " E500 "\nERROR " E500 "\n", NULL },
	{ "empty line", "\r\n", 0, E500 "\r\n", "ERROR " E500 "\n", NULL },
	{ "verb with leading space", " NOOP\r\n", 0, E500 "\r\n",
	  "ERROR " E500 "\n", NULL },
};

static void
test_simple(void **state)
{
	(void)state;
	RUN(simple_cases);
}

/* ------------------------------------------------------------------ */
/* sequence */

static const struct tcase sequence_cases[] = {
	{ "mail before helo", MAIL, 0, NEED_HELO "\r\n",
	  "ERROR " NEED_HELO "\n", NULL },
	{ "rcpt before helo", RCPT, 0, NEED_HELO "\r\n",
	  "ERROR " NEED_HELO "\n", NULL },
	{ "data before helo", "DATA\r\n", 0, NEED_HELO "\r\n",
	  "ERROR " NEED_HELO "\n", NULL },
	{ "rcpt before mail", EHLO RCPT, 0, EHLO_R NEED_MAIL "\r\n",
	  EHLO_E "ERROR " NEED_MAIL "\n", NULL },
	{ "data before mail", EHLO "DATA\r\n", 0, EHLO_R NEED_MAIL "\r\n",
	  EHLO_E "ERROR " NEED_MAIL "\n", NULL },
	{ "nested mail", EHLO MAIL MAIL, 0,
	  EHLO_R MAIL_R "503 5.5.1 Error: nested MAIL command\r\n",
	  EHLO_E MAIL_E "ERROR 503 5.5.1 Error: nested MAIL command\n", NULL },
	{ "data before rcpt", EHLO MAIL "DATA\r\n", 0,
	  EHLO_R MAIL_R NEED_RCPT "\r\n", EHLO_E MAIL_E "ERROR " NEED_RCPT "\n",
	  NULL },
	{ "data after refused rcpts", EHLO MAIL "RCPT TO:<unknown@y.test>\r\n"
	  "DATA\r\n", 0,
	  EHLO_R MAIL_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  NO_RCPT "\r\n",
	  EHLO_E MAIL_E "RCPT <unknown@y.test>\nERROR " NO_RCPT "\n", NULL },
	{ "data with argument", ENV "DATA now\r\n", 0,
	  ENV_R "501 5.5.4 Syntax: DATA\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: DATA\n", NULL },
	{ "rcpt after a finished message", ENV "DATA\r\nx\r\n.\r\n" RCPT, 0,
	  ENV_R D354 QUEUED NEED_MAIL "\r\n",
	  ENV_E "DATA_START\nBODY x\\r\\n\nDATA_END 3\nERROR " NEED_MAIL "\n",
	  NULL },
	{ "second message without RSET",
	  ENV "DATA\r\nx\r\n.\r\n" MAIL RCPT "DATA\r\ny\r\n.\r\n", 0,
	  ENV_R D354 QUEUED MAIL_R RCPT_R D354 QUEUED,
	  ENV_E "DATA_START\nBODY x\\r\\n\nDATA_END 3\n" MAIL_E RCPT_E
	  "DATA_START\nBODY y\\r\\n\nDATA_END 3\n", NULL },
	{ "554 keeps the transaction", EHLO MAIL "RCPT TO:<unknown@y.test>\r\n"
	  "DATA\r\n" RCPT "DATA\r\nz\r\n.\r\n", 0,
	  EHLO_R MAIL_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  NO_RCPT "\r\n" RCPT_R D354 QUEUED,
	  EHLO_E MAIL_E "RCPT <unknown@y.test>\nERROR " NO_RCPT "\n" RCPT_E
	  "DATA_START\nBODY z\\r\\n\nDATA_END 3\n", NULL },
	{ "pipelined group", EHLO MAIL RCPT "RCPT TO:<unknown@y.test>\r\n"
	  "RCPT TO:<temp@y.test>\r\nRCPT TO:<r2@y.test>\r\nDATA\r\n"
	  "body\r\n.\r\nQUIT\r\n", 0,
	  EHLO_R MAIL_R RCPT_R
	  "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  TEMP "\r\n" RCPT_R D354 QUEUED "221 2.0.0 Bye\r\n",
	  EHLO_E MAIL_E RCPT_E "RCPT <unknown@y.test>\nRCPT <temp@y.test>\n"
	  "RCPT <r2@y.test>\nDATA_START\nBODY body\\r\\n\nDATA_END 6\nQUIT\n",
	  NULL },
};

static void
test_sequence(void **state)
{
	(void)state;
	RUN(sequence_cases);
}

/* ------------------------------------------------------------------ */
/* MAIL */

#define BAD_FROM "553 5.1.7 Bad sender address syntax"
#define SYN_FROM "501 5.5.4 Syntax: MAIL FROM:<address>"
#define NOT_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define UNSUP "555 5.5.4 Unsupported parameter"
#define MAIL_OK(in, ev) \
	{ in, EHLO "MAIL FROM:" in "\r\n", 0, EHLO_R MAIL_R, \
	  EHLO_E "MAIL " ev "\n", NULL }
#define MAIL_BAD(in, reply) \
	{ in, EHLO "MAIL FROM:" in "\r\n", 0, EHLO_R reply "\r\n", \
	  EHLO_E "ERROR " reply "\n", NULL }

static const struct smtp_params size100 = {
	.hostname = HOST, .size_max = 100, .rcpt_max = 5, .errors_max = 10,
};

static const struct tcase mail_cases[] = {
	MAIL_OK("<s@x.test>", "<s@x.test>"),
	MAIL_OK("<>", "<>"),
	MAIL_OK(" <s@x.test>", "<s@x.test>"),
	MAIL_OK("<S.Mith+tag@Sub-1.X.test>", "<S.Mith+tag@Sub-1.X.test>"),
	MAIL_OK("<@a.test,@b.test:s@x.test>", "<s@x.test>"),
	MAIL_OK("<@a.test:s@x.test>", "<s@x.test>"),
	MAIL_OK("<\"john doe\"@x.test>", "<\"john doe\"@x.test>"),
	MAIL_OK("<\"a\\\"b\"@x.test>", "<\"a\\\\\"b\"@x.test>"),
	MAIL_OK("<\"\"@x.test>", "<\"\"@x.test>"),
	MAIL_OK("<s@[192.0.2.1]>", "<s@[192.0.2.1]>"),
	MAIL_OK("<s@[IPv6:2001:db8::1]>", "<s@[IPv6:2001:db8::1]>"),
	MAIL_OK("<s@[IPv6:1:2:3:4:5:6:7:8]>", "<s@[IPv6:1:2:3:4:5:6:7:8]>"),
	MAIL_OK("<s@[IPv6:::ffff:192.0.2.1]>", "<s@[IPv6:::ffff:192.0.2.1]>"),
	MAIL_OK("<s@[x-tag:abc]>", "<s@[x-tag:abc]>"),
	MAIL_OK("<s@x.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=a+2Bb",
		"<s@x.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=a+2Bb"),
	MAIL_OK("<s@x.test> size=10 body=7bit ret=full",
		"<s@x.test> SIZE=10 BODY=7BIT RET=FULL"),
	MAIL_OK("<s@x.test>  SIZE=5   SMTPUTF8  ", "<s@x.test> SIZE=5 SMTPUTF8"),
	MAIL_OK("<j\xc3\xb6rg@x.test> SMTPUTF8",
		"<j\\xc3\\xb6rg@x.test> SMTPUTF8"),
	MAIL_OK("<s@\xe4\xbe\x8b\xe5\xad\x90.test> SMTPUTF8",
		"<s@\\xe4\\xbe\\x8b\\xe5\\xad\\x90.test> SMTPUTF8"),
	MAIL_BAD("s@x.test", SYN_FROM),
	MAIL_BAD("<s@x.test", SYN_FROM),
	MAIL_BAD("<s@x.test>SIZE=1", SYN_FROM),
	MAIL_BAD("", SYN_FROM),
	MAIL_BAD("<s>", BAD_FROM),
	MAIL_BAD("<Postmaster>", BAD_FROM),
	MAIL_BAD("<s@>", BAD_FROM),
	MAIL_BAD("<@x.test>", BAD_FROM),
	MAIL_BAD("<s.@x.test>", BAD_FROM),
	MAIL_BAD("<.s@x.test>", BAD_FROM),
	MAIL_BAD("<s..t@x.test>", BAD_FROM),
	MAIL_BAD("<s t@x.test>", BAD_FROM),
	MAIL_BAD("<s@x..test>", BAD_FROM),
	MAIL_BAD("<s@x.test.>", BAD_FROM),
	MAIL_BAD("<s@-x.test>", BAD_FROM),
	MAIL_BAD("<s@x-.test>", BAD_FROM),
	MAIL_BAD("<s@x_y.test>", BAD_FROM),
	MAIL_BAD("<s@[192.0.2.256]>", BAD_FROM),
	MAIL_BAD("<s@[192.0.2]>", BAD_FROM),
	MAIL_BAD("<s@[IPv6:1:2:3:4:5:6:7]>", BAD_FROM),
	MAIL_BAD("<s@[IPv6:1::2::3]>", BAD_FROM),
	MAIL_BAD("<s@[IPv6:1:2:3:4:5:6:7::8]>", BAD_FROM),
	MAIL_BAD("<s@[IPv6:12345::1]>", BAD_FROM),
	MAIL_BAD("<s@[x-:abc]>", BAD_FROM),
	MAIL_BAD("<s@[1.2.3.4>", BAD_FROM),
	MAIL_BAD("<\"unterminated@x.test>", BAD_FROM),
	MAIL_BAD("<@a.test;s@x.test>", BAD_FROM),
	MAIL_BAD("<@a.test,b.test:s@x.test>", BAD_FROM),
	MAIL_BAD("<s@x.test\xff>", BAD_FROM),
	MAIL_BAD("<\xc3\x28@x.test> SMTPUTF8", BAD_FROM),
	MAIL_BAD("<\xed\xa0\x80@x.test> SMTPUTF8", BAD_FROM),
	MAIL_BAD("<\xc0\xaf@x.test> SMTPUTF8", BAD_FROM),
	MAIL_BAD("<j\xc3\xb6rg@x.test>", NOT_UTF8),
	MAIL_BAD("<s@x.test> FOO=bar", UNSUP),
	MAIL_BAD("<s@x.test> AUTH=<>", UNSUP),
	MAIL_BAD("<s@x.test> SIZE=1 SIZE=2",
		 "501 5.5.4 Duplicate parameter"),
	MAIL_BAD("<s@x.test> SIZE=", "501 5.5.4 Bad parameter syntax"),
	MAIL_BAD("<s@x.test> =1", "501 5.5.4 Bad parameter syntax"),
	MAIL_BAD("<s@x.test> -X=1", "501 5.5.4 Bad parameter syntax"),
	MAIL_BAD("<s@x.test> SIZE", "501 5.5.4 Bad SIZE parameter syntax"),
	MAIL_BAD("<s@x.test> SIZE=1k", "501 5.5.4 Bad SIZE parameter syntax"),
	MAIL_BAD("<s@x.test> SIZE=-1", "501 5.5.4 Bad SIZE parameter syntax"),
	MAIL_BAD("<s@x.test> SIZE=123456789012345678901",
		 "501 5.5.4 Bad SIZE parameter syntax"),
	MAIL_BAD("<s@x.test> SIZE=99999999999999999999", TOO_BIG),
	MAIL_BAD("<s@x.test> SIZE=10001", TOO_BIG),
	MAIL_BAD("<s@x.test> BODY=BINARYMIME",
		 "501 5.5.4 Bad BODY parameter: 7BIT or 8BITMIME expected"),
	MAIL_BAD("<s@x.test> BODY",
		 "501 5.5.4 Bad BODY parameter: 7BIT or 8BITMIME expected"),
	MAIL_BAD("<s@x.test> SMTPUTF8=yes",
		 "501 5.5.4 SMTPUTF8 takes no value"),
	MAIL_BAD("<s@x.test> RET=NONE",
		 "501 5.5.4 Bad RET parameter: FULL or HDRS expected"),
	MAIL_BAD("<s@x.test> ENVID=a=b", "501 5.5.4 Bad parameter syntax"),
	MAIL_BAD("<s@x.test> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax"),
	MAIL_BAD("<s@x.test> ENVID=a+ZZ",
		 "501 5.5.4 Bad ENVID parameter syntax"),
	MAIL_BAD("<s@x.test> ENVID=\xc3\xa9", "501 5.5.4 Bad parameter syntax"),
	MAIL_BAD("<s@x.test> NOTIFY=NEVER", UNSUP),
	{ "MAIL without FROM", EHLO "MAIL\r\n", 0, EHLO_R SYN_FROM "\r\n",
	  EHLO_E "ERROR " SYN_FROM "\n", NULL },
	{ "MAIL TO", EHLO "MAIL TO:<s@x.test>\r\n", 0, EHLO_R SYN_FROM "\r\n",
	  EHLO_E "ERROR " SYN_FROM "\n", NULL },
	{ "MAIL FROM with space before colon", EHLO "MAIL FROM :<s@x.test>\r\n",
	  0, EHLO_R SYN_FROM "\r\n", EHLO_E "ERROR " SYN_FROM "\n", NULL },
	{ "lower case from", EHLO "mail from:<s@x.test>\r\n", 0, EHLO_R MAIL_R,
	  EHLO_E MAIL_E, NULL },
	{ "refused sender", EHLO "MAIL FROM:<reject@x.test>\r\n" RCPT, 0,
	  EHLO_R "550 5.1.0 Sender address rejected\r\n" NEED_MAIL "\r\n",
	  EHLO_E "MAIL <reject@x.test>\nERROR " NEED_MAIL "\n", NULL },
	{ "sender tempfail", EHLO "MAIL FROM:<tempfail@x.test>\r\n" MAIL, 0,
	  EHLO_R TEMP "\r\n" MAIL_R,
	  EHLO_E "MAIL <tempfail@x.test>\n" MAIL_E, NULL },
	{ "verdict with code", EHLO "MAIL FROM:<custom@x.test>\r\n", 0,
	  EHLO_R "250 2.0.0 Sender ok\r\n", EHLO_E "MAIL <custom@x.test>\n",
	  NULL },
	{ "verdict closes", EHLO "MAIL FROM:<closeme@x.test>\r\nNOOP\r\n", 0,
	  EHLO_R "421 4.7.0 Go away\r\n", EHLO_E "MAIL <closeme@x.test>\n",
	  NULL },
	{ "SIZE at limit-1", EHLO "MAIL FROM:<s@x.test> SIZE=99\r\n", 0,
	  EHLO_R MAIL_R, EHLO_E "MAIL <s@x.test> SIZE=99\n", &size100 },
	{ "SIZE at limit", EHLO "MAIL FROM:<s@x.test> SIZE=100\r\n", 0,
	  EHLO_R MAIL_R, EHLO_E "MAIL <s@x.test> SIZE=100\n", &size100 },
	{ "SIZE at limit+1", EHLO "MAIL FROM:<s@x.test> SIZE=101\r\n", 0,
	  EHLO_R TOO_BIG "\r\n", EHLO_E "ERROR " TOO_BIG "\n", &size100 },
};

static void
test_mail(void **state)
{
	(void)state;
	/* the EHLO reply shows SIZE 100 with size100: patch expectations */
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		struct tcase c = mail_cases[i];
		char out[2048];
		if (c.params == &size100) {
			const char *rest = c.out + strlen(EHLO_R);
			snprintf(out, sizeof(out), "%s%s",
				 "250-" HOST " Hello client.test\r\n"
				 "250-SIZE 100\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
				 "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
				 "250-CHUNKING\r\n250 DSN\r\n", rest);
			c.out = out;
		}
		run_case(&c);
	}
}

/* ENVID at its limit of 100 characters, and one past it */
static void
test_mail_envid_limit(void **state)
{
	char v100[101], v101[102], in[400], out[600], ev[400];

	(void)state;
	memset(v100, 'e', 100);
	v100[100] = '\0';
	memset(v101, 'e', 101);
	v101[101] = '\0';
	snprintf(in, sizeof(in), EHLO "MAIL FROM:<s@x.test> ENVID=%s\r\n", v100);
	snprintf(ev, sizeof(ev), EHLO_E "MAIL <s@x.test> ENVID=%s\n", v100);
	const struct tcase ok = { "envid 100", in, 0, EHLO_R MAIL_R, ev, NULL };
	run_case(&ok);
	snprintf(in, sizeof(in), EHLO "MAIL FROM:<s@x.test> ENVID=%s\r\n", v101);
	snprintf(out, sizeof(out), EHLO_R "501 5.5.4 Bad ENVID parameter syntax\r\n");
	const struct tcase bad = { "envid 101", in, 0, out,
		EHLO_E "ERROR 501 5.5.4 Bad ENVID parameter syntax\n", NULL };
	run_case(&bad);
}

/* ------------------------------------------------------------------ */
/* RCPT */

#define BAD_TO "553 5.1.3 Bad recipient address syntax"
#define SYN_TO "501 5.5.4 Syntax: RCPT TO:<address>"
#define RCPT_OK(in, ev) \
	{ in, EHLO MAIL "RCPT TO:" in "\r\n", 0, EHLO_R MAIL_R RCPT_R, \
	  EHLO_E MAIL_E "RCPT " ev "\n", NULL }
#define RCPT_BAD(in, reply) \
	{ in, EHLO MAIL "RCPT TO:" in "\r\n", 0, EHLO_R MAIL_R reply "\r\n", \
	  EHLO_E MAIL_E "ERROR " reply "\n", NULL }
#define UTF8_MAIL "MAIL FROM:<s@x.test> SMTPUTF8\r\n"

static const struct smtp_params rcpt3 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 3, .errors_max = 10,
};

static const struct tcase rcpt_cases[] = {
	RCPT_OK("<r@y.test>", "<r@y.test>"),
	RCPT_OK("<Postmaster>", "<Postmaster>"),
	RCPT_OK("<POSTMASTER>", "<Postmaster>"),
	RCPT_OK("<postmaster@y.test>", "<postmaster@y.test>"),
	RCPT_OK(" <r@y.test>", "<r@y.test>"),
	RCPT_OK("<@a.test:r@y.test>", "<r@y.test>"),
	RCPT_OK("<r@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r+40y.test",
		"<r@y.test> NOTIFY=6 ORCPT=rfc822;r+40y.test"),
	RCPT_OK("<r@y.test> notify=never", "<r@y.test> NOTIFY=1"),
	RCPT_OK("<r@y.test> NOTIFY=delay", "<r@y.test> NOTIFY=8"),
	RCPT_OK("<r@y.test> NOTIFY=DELAY,FAILURE,SUCCESS",
		"<r@y.test> NOTIFY=e"),
	RCPT_BAD("<>", BAD_TO),
	RCPT_BAD("<r>", BAD_TO),
	RCPT_BAD("<Postmaster", SYN_TO),
	RCPT_BAD("<Postmaster@>", BAD_TO),
	RCPT_BAD("r@y.test", SYN_TO),
	RCPT_BAD("<r@y.test>x", SYN_TO),
	RCPT_BAD("<r\xc3\xa9@y.test>", NOT_UTF8),
	RCPT_BAD("<r@y.test> NOTIFY=NEVER,SUCCESS",
		 "501 5.5.4 Bad NOTIFY parameter syntax"),
	RCPT_BAD("<r@y.test> NOTIFY=SUCCESS,SUCCESS",
		 "501 5.5.4 Bad NOTIFY parameter syntax"),
	RCPT_BAD("<r@y.test> NOTIFY=SUCCESS,", 
		 "501 5.5.4 Bad NOTIFY parameter syntax"),
	RCPT_BAD("<r@y.test> NOTIFY=ALWAYS",
		 "501 5.5.4 Bad NOTIFY parameter syntax"),
	RCPT_BAD("<r@y.test> NOTIFY", "501 5.5.4 Bad NOTIFY parameter syntax"),
	RCPT_BAD("<r@y.test> ORCPT=rfc822",
		 "501 5.5.4 Bad ORCPT parameter syntax"),
	RCPT_BAD("<r@y.test> ORCPT=;r@y.test",
		 "501 5.5.4 Bad ORCPT parameter syntax"),
	RCPT_BAD("<r@y.test> ORCPT=rfc822;",
		 "501 5.5.4 Bad ORCPT parameter syntax"),
	RCPT_BAD("<r@y.test> ORCPT=rfc(822;x",
		 "501 5.5.4 Bad ORCPT parameter syntax"),
	RCPT_BAD("<r@y.test> ORCPT=rfc822;a ORCPT=rfc822;b",
		 "501 5.5.4 Duplicate parameter"),
	RCPT_BAD("<r@y.test> SIZE=10", UNSUP),
	{ "TO missing", EHLO MAIL "RCPT <r@y.test>\r\n", 0,
	  EHLO_R MAIL_R SYN_TO "\r\n", EHLO_E MAIL_E "ERROR " SYN_TO "\n",
	  NULL },
	{ "utf8 recipient in an SMTPUTF8 transaction",
	  EHLO UTF8_MAIL "RCPT TO:<\xe7\x94\xa8@\xe4\xbe\x8b.test> "
	  "ORCPT=utf-8;\xe7\x94\xa8\r\n", 0, EHLO_R MAIL_R RCPT_R,
	  EHLO_E "MAIL <s@x.test> SMTPUTF8\nRCPT <\\xe7\\x94\\xa8@\\xe4\\xbe"
	  "\\x8b.test> ORCPT=utf-8;\\xe7\\x94\\xa8\n", NULL },
	{ "utf8 ORCPT needs SMTPUTF8",
	  EHLO MAIL "RCPT TO:<r@y.test> ORCPT=utf-8;\xe7\x94\xa8\r\n", 0,
	  EHLO_R MAIL_R "501 5.5.4 Bad parameter syntax\r\n",
	  EHLO_E MAIL_E "ERROR 501 5.5.4 Bad parameter syntax\n", NULL },
	{ "refused recipients", EHLO MAIL "RCPT TO:<unknown@y.test>\r\n"
	  "RCPT TO:<temp@y.test>\r\nRCPT TO:<relay@z.test>\r\n", 0,
	  EHLO_R MAIL_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  TEMP "\r\n550 5.7.1 Relay access denied\r\n",
	  EHLO_E MAIL_E "RCPT <unknown@y.test>\nRCPT <temp@y.test>\n"
	  "RCPT <relay@z.test>\n", NULL },
	{ "rcpt_max-1", EHLO MAIL "RCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\n",
	  0, EHLO_R MAIL_R RCPT_R RCPT_R,
	  EHLO_E MAIL_E "RCPT <r1@y.test>\nRCPT <r2@y.test>\n", &rcpt3 },
	{ "rcpt_max", EHLO MAIL "RCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\n"
	  "RCPT TO:<r3@y.test>\r\n", 0, EHLO_R MAIL_R RCPT_R RCPT_R RCPT_R,
	  EHLO_E MAIL_E "RCPT <r1@y.test>\nRCPT <r2@y.test>\nRCPT <r3@y.test>\n",
	  &rcpt3 },
	{ "rcpt_max+1", EHLO MAIL "RCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\n"
	  "RCPT TO:<r3@y.test>\r\nRCPT TO:<r4@y.test>\r\nDATA\r\nx\r\n.\r\n", 0,
	  EHLO_R MAIL_R RCPT_R RCPT_R RCPT_R "452 4.5.3 Too many recipients\r\n"
	  D354 QUEUED,
	  EHLO_E MAIL_E "RCPT <r1@y.test>\nRCPT <r2@y.test>\nRCPT <r3@y.test>\n"
	  "ERROR 452 4.5.3 Too many recipients\nDATA_START\nBODY x\\r\\n\n"
	  "DATA_END 3\n", &rcpt3 },
	{ "refused recipients do not count toward rcpt_max",
	  EHLO MAIL "RCPT TO:<unknown1@y.test>\r\nRCPT TO:<unknown2@y.test>\r\n"
	  "RCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\nRCPT TO:<r3@y.test>\r\n",
	  0, EHLO_R MAIL_R
	  "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  RCPT_R RCPT_R RCPT_R,
	  EHLO_E MAIL_E "RCPT <unknown1@y.test>\nRCPT <unknown2@y.test>\n"
	  "RCPT <r1@y.test>\nRCPT <r2@y.test>\nRCPT <r3@y.test>\n", &rcpt3 },
};

static void
test_rcpt(void **state)
{
	(void)state;
	RUN(rcpt_cases);
}

/* ------------------------------------------------------------------ */
/* input discipline: line length, bare CR/LF, NUL, errors_max */

/* "NOOP " padded with 'x' to a line of `total` octets with CRLF */
static char *
noop_line(size_t total)
{
	char *s = xmalloc(total + 1);

	memcpy(s, "NOOP ", 5);
	memset(s + 5, 'x', total - 7);
	memcpy(s + total - 2, "\r\n", 3);
	return s;
}

static void
test_line_length(void **state)
{
	char in[2048];
	char *l511 = noop_line(511), *l512 = noop_line(512);
	char *l513 = noop_line(513), *l2000 = noop_line(2000);

	(void)state;
	snprintf(in, sizeof(in), "%sNOOP\r\n", l511);
	const struct tcase a = { "line 511", in, 0, OK OK, "", NULL };
	run_case(&a);
	snprintf(in, sizeof(in), "%sNOOP\r\n", l512);
	const struct tcase b = { "line 512", in, 0, OK OK, "", NULL };
	run_case(&b);
	snprintf(in, sizeof(in), "%sNOOP\r\n", l513);
	const struct tcase c = { "line 513", in, 0,
		"500 5.5.2 Line too long\r\n" OK,
		"ERROR 500 5.5.2 Line too long\n", NULL };
	run_case(&c);
	/* one refusal however long; commands inside are never run */
	memcpy(l2000 + 1000, "\nQUIT\rQUIT", 10);
	snprintf(in, sizeof(in), "%sNOOP\r\n", l2000);
	const struct tcase d = { "line 2000", in, 0,
		"500 5.5.2 Line too long\r\n" OK,
		"ERROR 500 5.5.2 Line too long\n", NULL };
	run_case(&d);
	/* the CR of the CRLF at octets 511 and 512 */
	char *l = noop_line(512);
	l[510] = 'y';   /* "...y\n": no CR, bare LF after 511 octets */
	l[511] = '\n';
	snprintf(in, sizeof(in), "%s\r\nNOOP\r\n", l);
	const struct tcase e = { "line 512 ending in bare LF", in, 0,
		"500 5.5.2 Line too long\r\n" OK,
		"ERROR 500 5.5.2 Line too long\n", NULL };
	run_case(&e);
	free(l);
	free(l511);
	free(l512);
	free(l513);
	free(l2000);
}

static const struct smtp_params errors3 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 3,
};

#define CLOSE_ERR "421 4.7.0 " HOST " Too many errors, closing"

static const struct tcase input_cases[] = {
	{ "bare LF in command", "NOOP\nQUIT\r\nNOOP\r\n", 0,
	  BARE_CMD "\r\n" OK, "ERROR " BARE_CMD "\n", NULL },
	{ "bare CR in command", "NOOP\rQUIT\r\nNOOP\r\n", 0,
	  BARE_CMD "\r\n" OK, "ERROR " BARE_CMD "\n", NULL },
	{ "CR CR LF", "NOOP\r\r\nNOOP\r\n", 0, BARE_CMD "\r\n" OK,
	  "ERROR " BARE_CMD "\n", NULL },
	{ "LF only lines never end", "NOOP\nNOOP\nNOOP\n", 0, "", "", NULL },
	{ "NUL in command", "NO\0OP\r\nNOOP\r\n", sizeof("NO\0OP\r\nNOOP\r\n") - 1,
	  "500 5.5.2 NUL not allowed in command\r\n" OK,
	  "ERROR 500 5.5.2 NUL not allowed in command\n", NULL },
	{ "smuggled MAIL after bare LF", EHLO "NOOP\nMAIL FROM:<e@x.test>\r\n"
	  RCPT, 0, EHLO_R BARE_CMD "\r\n" NEED_MAIL "\r\n",
	  EHLO_E "ERROR " BARE_CMD "\nERROR " NEED_MAIL "\n", NULL },
	{ "errors_max-1", "FOO\r\nBAR\r\nNOOP\r\n", 0,
	  E500 "\r\n" E500 "\r\n" OK, "ERROR " E500 "\nERROR " E500 "\n",
	  &errors3 },
	{ "errors_max", "FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n", 0,
	  E500 "\r\n" E500 "\r\n" E500 "\r\n" CLOSE_ERR "\r\n",
	  "ERROR " E500 "\nERROR " E500 "\nERROR " E500 "\nERROR " CLOSE_ERR
	  "\n", &errors3 },
	{ "errors of all kinds count", "MAIL FROM:<a@b.test>\r\nEHLO\r\n"
	  "NOOP\nx\r\nNOOP\r\n", 0,
	  NEED_HELO "\r\n501 Syntax: EHLO hostname\r\n" BARE_CMD "\r\n"
	  CLOSE_ERR "\r\n",
	  "ERROR " NEED_HELO "\nERROR 501 Syntax: EHLO hostname\nERROR "
	  BARE_CMD "\nERROR " CLOSE_ERR "\n", &errors3 },
	{ "refusals that are not errors", EHLO MAIL
	  "RCPT TO:<unknown@y.test>\r\nDATA\r\nDATA\r\nDATA\r\nRSET\r\n"
	  "MAIL FROM:<a@b.test> SIZE=20000\r\n"
	  "MAIL FROM:<a@b.test> SIZE=20000\r\n"
	  "MAIL FROM:<a@b.test> SIZE=20000\r\n" MAIL RCPT RCPT RCPT RCPT RCPT
	  RCPT RCPT "NOOP\r\n", 0,
	  EHLO_R MAIL_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  NO_RCPT "\r\n" NO_RCPT "\r\n" NO_RCPT "\r\n" OK
	  TOO_BIG "\r\n" TOO_BIG "\r\n" TOO_BIG "\r\n" MAIL_R
	  RCPT_R RCPT_R RCPT_R RCPT_R RCPT_R
	  "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n"
	  OK,
	  EHLO_E MAIL_E "RCPT <unknown@y.test>\nERROR " NO_RCPT "\nERROR "
	  NO_RCPT "\nERROR " NO_RCPT "\nRSET\nERROR " TOO_BIG "\nERROR "
	  TOO_BIG "\nERROR " TOO_BIG "\n" MAIL_E RCPT_E RCPT_E RCPT_E RCPT_E
	  RCPT_E "ERROR 452 4.5.3 Too many recipients\n"
	  "ERROR 452 4.5.3 Too many recipients\n", &errors3 },
	{ "long lines count", "FOO\r\nBAR\r\n"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "\r\nNOOP\r\n", 0,
	  E500 "\r\n" E500 "\r\n500 5.5.2 Line too long\r\n" CLOSE_ERR "\r\n",
	  "ERROR " E500 "\nERROR " E500 "\nERROR 500 5.5.2 Line too long\n"
	  "ERROR " CLOSE_ERR "\n", &errors3 },
};

static void
test_input(void **state)
{
	(void)state;
	RUN(input_cases);
}

/* ------------------------------------------------------------------ */
/* DATA */

#define DATA_OK(name, body, ev, size) \
	{ name, ENV "DATA\r\n" body, 0, ENV_R D354 QUEUED, \
	  ENV_E "DATA_START\n" ev "DATA_END " size "\n", NULL }
#define DATA_BAD(name, body, reply) \
	{ name, ENV "DATA\r\n" body "NOOP\r\n", 0, \
	  ENV_R D354 reply "\r\n" OK, \
	  ENV_E "DATA_START\nABORT " reply "\n", NULL }

#define NUL_BODY ENV "DATA\r\na\0b\r\n.\r\nNOOP\r\n"

static const struct tcase data_cases[] = {
	DATA_OK("simple", "Subject: hi\r\n\r\nHello\r\n.\r\n",
		"BODY Subject: hi\\r\\n\\r\\nHello\\r\\n\n", "22"),
	DATA_OK("empty body", ".\r\n", "", "0"),
	DATA_OK("one empty line", "\r\n.\r\n", "BODY \\r\\n\n", "2"),
	DATA_OK("dot-stuffing", "..leading\r\n...two\r\n.x\r\n..\r\n.\r\n",
		"BODY .leading\\r\\n..two\\r\\nx\\r\\n.\\r\\n\n", "23"),
	DATA_OK("dot inside a line", "a.b\r\n a .\r\n.\r\n",
		"BODY a.b\\r\\n a .\\r\\n\n", "11"),
	DATA_OK("8bit", "caf\xc3\xa9\r\n.\r\n",
		"BODY caf\\xc3\\xa9\\r\\n\n", "7"),
	DATA_OK("commands in the body are text",
		"QUIT\r\nMAIL FROM:<e@x.test>\r\n.\r\n",
		"BODY QUIT\\r\\nMAIL FROM:<e@x.test>\\r\\n\n", "28"),
	DATA_BAD("smuggling: LF . CRLF",
		 "a\n.\r\nMAIL FROM:<e@x.test>\r\n.\r\n", BARE_MSG),
	DATA_BAD("smuggling: CR . LF", "a\r.\nQUIT\r\n.\r\n", BARE_MSG),
	DATA_BAD("smuggling: CRLF . LF", "a\r\n.\nQUIT\r\n.\r\n", BARE_MSG),
	DATA_BAD("smuggling: LF . LF", "a\n.\nQUIT\r\n.\r\n", BARE_MSG),
	DATA_BAD("smuggling: CR . CR", "a\r.\rQUIT\r\n.\r\n", BARE_MSG),
	DATA_BAD("CRLF . CR x", "a\r\n.\rx\r\n.\r\n", BARE_MSG),
	DATA_BAD("bare LF", "a\nb\r\n.\r\n", BARE_MSG),
	DATA_BAD("bare CR", "a\rb\r\n.\r\n", BARE_MSG),
	DATA_BAD("CR CR LF", "a\r\r\n.\r\n", BARE_MSG),
	DATA_BAD("bare LF at the start", "\n.\r\n.\r\n", BARE_MSG),
	{ "NUL", NUL_BODY, sizeof(NUL_BODY) - 1,
	  ENV_R D354 "550 5.6.2 NUL not allowed in message\r\n" OK,
	  ENV_E "DATA_START\nABORT 550 5.6.2 NUL not allowed in message\n",
	  NULL },
	{ "refused DATA start", EHLO "MAIL FROM:<nodata@x.test>\r\n" RCPT
	  "DATA\r\n" RCPT, 0,
	  EHLO_R MAIL_R RCPT_R TEMP "\r\n" NEED_MAIL "\r\n",
	  EHLO_E "MAIL <nodata@x.test>\n" RCPT_E "DATA_START\nERROR "
	  NEED_MAIL "\n", NULL },
	{ "refused DATA start, permanent", EHLO "MAIL FROM:<permdata@x.test>\r\n"
	  RCPT "DATA\r\n", 0,
	  EHLO_R MAIL_R RCPT_R "554 5.3.0 Transaction failed\r\n",
	  EHLO_E "MAIL <permdata@x.test>\n" RCPT_E "DATA_START\n", NULL },
	{ "refused message", EHLO "MAIL FROM:<dropend@x.test>\r\n" RCPT
	  "DATA\r\nx\r\n.\r\n" RCPT, 0,
	  EHLO_R MAIL_R RCPT_R D354 "554 5.3.0 Transaction failed\r\n"
	  NEED_MAIL "\r\n",
	  EHLO_E "MAIL <dropend@x.test>\n" RCPT_E "DATA_START\nBODY x\\r\\n\n"
	  "DATA_END 3\nERROR " NEED_MAIL "\n", NULL },
	{ "verdict closes after the message", EHLO "MAIL FROM:<byeend@x.test>\r\n"
	  RCPT "DATA\r\nx\r\n.\r\nNOOP\r\n", 0,
	  EHLO_R MAIL_R RCPT_R D354 "250 2.0.0 Ok\r\n",
	  EHLO_E "MAIL <byeend@x.test>\n" RCPT_E "DATA_START\nBODY x\\r\\n\n"
	  "DATA_END 3\n", NULL },
	{ "unfinished body", ENV "DATA\r\nabc\r\n.", 0, ENV_R D354,
	  ENV_E "DATA_START\nBODY abc\\r\\n\n", NULL },
};

static void
test_data(void **state)
{
	(void)state;
	RUN(data_cases);
}

/* builds ENV DATA <body of n octets> . and checks the outcome */
static void
data_size_case(const char *name, size_t n, const struct smtp_params *p,
	       bool fits)
{
	struct buf in, ev, out;
	char size[32];

	buf_init(&in, 0);
	buf_init(&ev, 0);
	buf_init(&out, 0);
	buf_append_str(&in, ENV "DATA\r\n");
	TN_ASSERT(n >= 2);
	/* lines of 80 octets with CRLF, the last one shorter; one line
	 * starts with a dot that unstuffing removes */
	struct buf body;
	buf_init(&body, 0);
	size_t left = n;
	bool first = true;
	while (left > 0) {
		size_t len = left > 80 ? 80 : left;
		if (left - len == 1)
			len--;           /* never leave a 1-octet line */
		if (first) {
			buf_append_str(&in, ".");
			first = false;
		}
		for (size_t i = 0; i + 2 < len; i++) {
			char c = (char)('a' + (i % 26));
			buf_append(&in, &c, 1);
			buf_append(&body, &c, 1);
		}
		if (len >= 2) {
			buf_append_str(&in, "\r\n");
			buf_append_str(&body, "\r\n");
		}
		left -= len;
	}
	buf_append_str(&in, ".\r\nNOOP\r\n");
	buf_append_str(&out, ENV_R D354);
	buf_append_str(&ev, ENV_E "DATA_START\n");
	if (fits) {
		buf_append_str(&out, QUEUED OK);
		buf_append_str(&ev, "BODY ");
		esc_append(&ev, body.p, body.len);
		snprintf(size, sizeof(size), "%zu", n);
		buf_printf(&ev, "\nDATA_END %s\n", size);
	} else {
		buf_append_str(&out, TOO_BIG "\r\n" OK);
		buf_append_str(&ev, "ABORT " TOO_BIG "\n");
	}
	assert_int_equal(body.len, n);
	const struct tcase c = { name, buf_cstr(&in), in.len, buf_cstr(&out),
				 buf_cstr(&ev), p };
	run_case(&c);
	buf_clear(&in);
	buf_clear(&ev);
	buf_clear(&out);
	buf_clear(&body);
}

static void
test_data_size(void **state)
{
	(void)state;
	/* the EHLO reply advertises SIZE 10000 */
	data_size_case("body size_max-1", 9999, &default_params, true);
	data_size_case("body size_max", 10000, &default_params, true);
	data_size_case("body size_max+1", 10001, &default_params, false);
	data_size_case("body far over size_max", 30000, &default_params, false);
}

/* a body much larger than one chunk comes out whole, in pieces */
static void
test_data_big(void **state)
{
	static const struct smtp_params big = {
		.hostname = HOST, .size_max = 10000, .rcpt_max = 5,
		.errors_max = 10,
	};
	struct harness h;
	struct buf in;
	size_t nchunks = 0;
	struct smtp_event ev;

	(void)state;
	buf_init(&in, 0);
	buf_append_str(&in, ENV "DATA\r\n");
	/* one text line of 9000 octets: longer than 998, kept intact */
	for (size_t i = 0; i < 9000; i++)
		buf_append(&in, "x", 1);
	buf_append_str(&in, "\r\n.\r\n");
	h_init(&h, &big);
	/* feed by hand to count the chunk events */
	const uint8_t *p = in.p;
	size_t n = in.len;
	while (n > 0) {
		size_t used;
		int r = smtp_engine_feed(h.e, p, n, &used);
		assert_true(r >= 0);
		p += used;
		n -= used;
		while (smtp_engine_next(h.e, &ev)) {
			if (ev.kind == SMTP_EV_DATA_CHUNK) {
				nchunks++;
				assert_true(ev.data_len <= SMTP_CHUNK_MAX + 2);
			}
			log_event(&h, &ev);
			if (needs_verdict(ev.kind))
				policy(&h, &ev);
		}
		take_output(&h);
	}
	h_done(&h);
	assert_true(nchunks >= 2);
	assert_true(strstr((const char *)buf_cstr(&h.log), "DATA_END 9002\n") !=
		    NULL);
	h_clear(&h);
	buf_clear(&in);
}

/* ------------------------------------------------------------------ */
/* BDAT */

#define BDAT_OK(name, in, out, ev) \
	{ name, ENV in, 0, ENV_R out, ENV_E ev, NULL }

static const struct smtp_params size10 = {
	.hostname = HOST, .size_max = 10, .rcpt_max = 5, .errors_max = 10,
};

#define BDAT_NUL ENV "BDAT 3 LAST\r\na\0bNOOP\r\n"

static const struct tcase bdat_cases[] = {
	BDAT_OK("two chunks", "BDAT 5\r\nhelloBDAT 8 LAST\r\n world\r\n",
		"250 2.0.0 5 octets received\r\n" QUEUED,
		"BDAT_START\nBODY hello world\\r\\n\nBDAT_END 13\n"),
	BDAT_OK("one chunk", "BDAT 7 LAST\r\nhello\r\nNOOP\r\n", QUEUED OK,
		"BDAT_START\nBODY hello\\r\\n\nBDAT_END 7\n"),
	BDAT_OK("lower case", "bdat 3 last\r\nab\n", "550 5.6.2 Bare CR or LF "
		"not allowed in message\r\n",
		"BDAT_START\nABORT " BARE_MSG "\n"),
	BDAT_OK("empty LAST chunk", "BDAT 0 LAST\r\n", QUEUED,
		"BDAT_START\nBDAT_END 0\n"),
	BDAT_OK("empty chunks", "BDAT 0\r\nBDAT 4\r\nab\r\nBDAT 0 LAST\r\n",
		"250 2.0.0 0 octets received\r\n250 2.0.0 4 octets received\r\n"
		QUEUED, "BDAT_START\nBODY ab\\r\\n\nBDAT_END 4\n"),
	BDAT_OK("no dot-stuffing, commands are data",
		"BDAT 19 LAST\r\n.\r\nQUIT\r\n..x\r\n.\r\n\r\nNOOP\r\n", QUEUED OK,
		"BDAT_START\nBODY .\\r\\nQUIT\\r\\n..x\\r\\n.\\r\\n\\r\\n\n"
		"BDAT_END 19\n"),
	BDAT_OK("CRLF across chunks", "BDAT 3\r\nab\rBDAT 1 LAST\r\n\n",
		"250 2.0.0 3 octets received\r\n" QUEUED,
		"BDAT_START\nBODY ab\\r\\n\nBDAT_END 4\n"),
	BDAT_OK("bare CR at the end", "BDAT 3 LAST\r\nab\rNOOP\r\n",
		BARE_MSG "\r\n" OK, "BDAT_START\nABORT " BARE_MSG "\n"),
	BDAT_OK("bare LF in a chunk", "BDAT 4\r\na\nb\rBDAT 1 LAST\r\n\n",
		"250 2.0.0 4 octets received\r\n" BARE_MSG "\r\n",
		"BDAT_START\nABORT " BARE_MSG "\n"),
	{ "NUL", BDAT_NUL, sizeof(BDAT_NUL) - 1, ENV_R
	  "550 5.6.2 NUL not allowed in message\r\n" OK,
	  ENV_E "BDAT_START\nABORT 550 5.6.2 NUL not allowed in message\n",
	  NULL },
	BDAT_OK("DATA after BDAT", "BDAT 3\r\nabcDATA\r\nBDAT 0 LAST\r\n",
		"250 2.0.0 3 octets received\r\n"
		"503 5.5.1 Error: DATA after BDAT\r\n" QUEUED,
		"BDAT_START\nBODY abc\nERROR 503 5.5.1 Error: DATA after BDAT\n"
		"BDAT_END 3\n"),
	BDAT_OK("RCPT after BDAT", "BDAT 3\r\nabc" RCPT "BDAT 0 LAST\r\n",
		"250 2.0.0 3 octets received\r\n"
		"503 5.5.1 Error: RCPT after BDAT\r\n" QUEUED,
		"BDAT_START\nBODY abc\nERROR 503 5.5.1 Error: RCPT after BDAT\n"
		"BDAT_END 3\n"),
	BDAT_OK("RSET between chunks", "BDAT 3\r\nabcRSET\r\nBDAT 2 LAST\r\nxy",
		"250 2.0.0 3 octets received\r\n" OK NEED_MAIL "\r\n",
		"BDAT_START\nBODY abc\nRSET\nERROR " NEED_MAIL "\n"),
	BDAT_OK("second message by BDAT", "BDAT 2 LAST\r\nab" MAIL RCPT
		"BDAT 2 LAST\r\ncd",
		QUEUED MAIL_R RCPT_R QUEUED,
		"BDAT_START\nBODY ab\nBDAT_END 2\n" MAIL_E RCPT_E
		"BDAT_START\nBODY cd\nBDAT_END 2\n"),
	{ "EHLO between chunks", ENV "BDAT 3\r\nabc" EHLO "BDAT 1 LAST\r\nx", 0,
	  ENV_R "250 2.0.0 3 octets received\r\n" EHLO_R NEED_MAIL "\r\n",
	  ENV_E "BDAT_START\nBODY abc\nRSET\n" EHLO_E "ERROR " NEED_MAIL "\n",
	  NULL },
	{ "BDAT before MAIL", EHLO "BDAT 6\r\nQUIT\r\nNOOP\r\n", 0,
	  EHLO_R NEED_MAIL "\r\n" OK, EHLO_E "ERROR " NEED_MAIL "\n", NULL },
	{ "BDAT before HELO", "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", 0,
	  NEED_HELO "\r\n" OK, "ERROR " NEED_HELO "\n", NULL },
	{ "BDAT before RCPT", EHLO MAIL "BDAT 6\r\nQUIT\r\nNOOP\r\n", 0,
	  EHLO_R MAIL_R NEED_RCPT "\r\n" OK,
	  EHLO_E MAIL_E "ERROR " NEED_RCPT "\n", NULL },
	{ "BDAT without valid recipients", EHLO MAIL
	  "RCPT TO:<unknown@y.test>\r\nBDAT 4\r\nQUITBDAT 4 LAST\r\nQUITNOOP\r\n",
	  0, EHLO_R MAIL_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
	  NO_RCPT "\r\n503 5.5.1 Error: chunk discarded after failed BDAT\r\n" OK,
	  EHLO_E MAIL_E "RCPT <unknown@y.test>\nERROR " NO_RCPT "\n"
	  "ERROR 503 5.5.1 Error: chunk discarded after failed BDAT\n", NULL },
	{ "BDAT refused at DATA_START", EHLO "MAIL FROM:<nodata@x.test>\r\n"
	  RCPT "BDAT 4\r\nQUITBDAT 4\r\nQUITBDAT 4 LAST\r\nQUITBDAT 1\r\nx", 0,
	  EHLO_R MAIL_R RCPT_R TEMP "\r\n"
	  "503 5.5.1 Error: chunk discarded after failed BDAT\r\n"
	  "503 5.5.1 Error: chunk discarded after failed BDAT\r\n"
	  NEED_MAIL "\r\n",
	  EHLO_E "MAIL <nodata@x.test>\n" RCPT_E "BDAT_START\n"
	  "ERROR 503 5.5.1 Error: chunk discarded after failed BDAT\n"
	  "ERROR 503 5.5.1 Error: chunk discarded after failed BDAT\n"
	  "ERROR " NEED_MAIL "\n", NULL },
	{ "refused BDAT LAST message", EHLO "MAIL FROM:<dropend@x.test>\r\n"
	  RCPT "BDAT 2 LAST\r\nabNOOP\r\n", 0,
	  EHLO_R MAIL_R RCPT_R "554 5.3.0 Transaction failed\r\n" OK,
	  EHLO_E "MAIL <dropend@x.test>\n" RCPT_E
	  "BDAT_START\nBODY ab\nBDAT_END 2\n", NULL },
	{ "BDAT syntax: no size", ENV "BDAT\r\nNOOP\r\n", 0,
	  ENV_R "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
	  "421 4.5.0 " HOST " BDAT chunk length unknown, closing\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: BDAT count [LAST]\n"
	  "ERROR 421 4.5.0 " HOST " BDAT chunk length unknown, closing\n", NULL },
	{ "BDAT syntax: not a number", ENV "BDAT x\r\nNOOP\r\n", 0,
	  ENV_R "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
	  "421 4.5.0 " HOST " BDAT chunk length unknown, closing\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: BDAT count [LAST]\n"
	  "ERROR 421 4.5.0 " HOST " BDAT chunk length unknown, closing\n", NULL },
	{ "BDAT syntax: bad end marker", ENV "BDAT 3 FIRST\r\nabc", 0,
	  ENV_R "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
	  "421 4.5.0 " HOST " BDAT chunk length unknown, closing\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: BDAT count [LAST]\n"
	  "ERROR 421 4.5.0 " HOST " BDAT chunk length unknown, closing\n", NULL },
	{ "BDAT syntax: size overflows", ENV "BDAT 99999999999999999999999\r\n",
	  0, ENV_R "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
	  "421 4.5.0 " HOST " BDAT chunk length unknown, closing\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: BDAT count [LAST]\n"
	  "ERROR 421 4.5.0 " HOST " BDAT chunk length unknown, closing\n", NULL },
	{ "BDAT syntax: negative", ENV "BDAT -1\r\n", 0,
	  ENV_R "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
	  "421 4.5.0 " HOST " BDAT chunk length unknown, closing\r\n",
	  ENV_E "ERROR 501 5.5.4 Syntax: BDAT count [LAST]\n"
	  "ERROR 421 4.5.0 " HOST " BDAT chunk length unknown, closing\n", NULL },
};

static void
test_bdat(void **state)
{
	(void)state;
	RUN(bdat_cases);
}

#define EHLO10_R "250-" HOST " Hello client.test\r\n" \
	"250-SIZE 10\r\n250-PIPELINING\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n" \
	"250 DSN\r\n"

static const struct tcase bdat_size_cases[] = {
	{ "BDAT size_max-1", ENV "BDAT 9 LAST\r\n1234567\r\n", 0,
	  EHLO10_R MAIL_R RCPT_R QUEUED,
	  ENV_E "BDAT_START\nBODY 1234567\\r\\n\nBDAT_END 9\n", &size10 },
	{ "BDAT size_max", ENV "BDAT 4\r\n12\r\nBDAT 6 LAST\r\n5678\r\n", 0,
	  EHLO10_R MAIL_R RCPT_R "250 2.0.0 4 octets received\r\n" QUEUED,
	  ENV_E "BDAT_START\nBODY 12\\r\\n5678\\r\\n\nBDAT_END 10\n", &size10 },
	{ "BDAT size_max+1", ENV "BDAT 6\r\n1234\r\nBDAT 5 LAST\r\n567\r\nNOOP\r\n",
	  0, EHLO10_R MAIL_R RCPT_R "250 2.0.0 6 octets received\r\n"
	  TOO_BIG "\r\n" OK, ENV_E "BDAT_START\nABORT " TOO_BIG "\n", &size10 },
	{ "BDAT chunk alone over size_max", ENV "BDAT 30 LAST\r\n"
	  "0123456789012345678901234567\r\nNOOP\r\n", 0,
	  EHLO10_R MAIL_R RCPT_R TOO_BIG "\r\n" OK,
	  ENV_E "BDAT_START\nABORT " TOO_BIG "\n", &size10 },
};

static void
test_bdat_size(void **state)
{
	(void)state;
	RUN(bdat_size_cases);
}

/* ------------------------------------------------------------------ */
/* the API around the transcripts */

static void
test_timeout_shutdown(void **state)
{
	struct harness h;
	size_t used;

	(void)state;
	h_init(&h, NULL);
	h_feed(&h, (const uint8_t *)EHLO, strlen(EHLO));
	buf_reset(&h.out);
	smtp_engine_timeout(h.e);
	assert_int_equal(smtp_engine_phase(h.e), SMTP_PHASE_CLOSED);
	take_output(&h);
	assert_int_equal(smtp_engine_feed(h.e, (const uint8_t *)"NOOP\r\n", 6,
					  &used), -1);
	assert_int_equal(used, 0);
	/* a second close adds nothing */
	smtp_engine_shutdown(h.e);
	take_output(&h);
	assert_string_equal(buf_cstr(&h.out),
			    "421 4.4.2 " HOST " Timeout, closing\r\n");
	h_done(&h);
	h_clear(&h);

	h_init(&h, NULL);
	smtp_engine_shutdown(h.e);
	take_output(&h);
	assert_string_equal(buf_cstr(&h.out),
			    "421 4.3.2 " HOST " Service shutting down\r\n");
	assert_int_equal(smtp_engine_phase(h.e), SMTP_PHASE_CLOSED);
	h_done(&h);
	h_clear(&h);
}

/* a timeout while a verdict is awaited: the late verdict is ignored */
static void
test_timeout_while_waiting(void **state)
{
	struct smtp_engine *e;
	struct smtp_event ev;
	struct smtp_verdict v = { .kind = SMTP_VERDICT_OK };
	const char *in = EHLO MAIL "NOOP\r\n";
	size_t used, n = strlen(in), off = 0;
	int r;

	(void)state;
	e = smtp_engine_new(&default_params);
	r = smtp_engine_feed(e, (const uint8_t *)in, n, &used);
	assert_int_equal(r, 1);
	off += used;
	while (smtp_engine_next(e, &ev))
		;
	r = smtp_engine_feed(e, (const uint8_t *)in + off, n - off, &used);
	assert_int_equal(r, 1);
	off += used;
	assert_true(smtp_engine_next(e, &ev));
	assert_int_equal(ev.kind, SMTP_EV_MAIL);
	assert_true(smtp_engine_waiting(e));
	/* while waiting nothing is consumed */
	r = smtp_engine_feed(e, (const uint8_t *)in + off, n - off, &used);
	assert_int_equal(r, 0);
	assert_int_equal(used, 0);
	smtp_engine_timeout(e);
	assert_false(smtp_engine_waiting(e));
	smtp_engine_decide(e, &v);
	assert_int_equal(smtp_engine_phase(e), SMTP_PHASE_CLOSED);
	assert_non_null(strstr(buf_cstr(smtp_engine_out(e)),
			       "421 4.4.2 " HOST " Timeout, closing\r\n"));
	assert_null(strstr(buf_cstr(smtp_engine_out(e)), "2.1.0"));
	smtp_engine_free(&e);
}

/* events not taken are still there at the next feed */
static void
test_feed_with_pending_events(void **state)
{
	struct smtp_engine *e;
	struct smtp_event ev;
	size_t used;

	(void)state;
	e = smtp_engine_new(&default_params);
	assert_int_equal(smtp_engine_feed(e, (const uint8_t *)"FOO\r\nBAR\r\n",
					  10, &used), 1);
	assert_int_equal(used, 5);
	assert_int_equal(smtp_engine_feed(e, (const uint8_t *)"BAR\r\n", 5,
					  &used), 1);
	assert_int_equal(used, 0);
	assert_true(smtp_engine_next(e, &ev));
	assert_int_equal(ev.kind, SMTP_EV_PROTOCOL_ERROR);
	assert_string_equal(ev.reply, E500);
	assert_null(ev.helo_name);
	assert_false(smtp_engine_next(e, &ev));
	assert_int_equal(ev.kind, SMTP_EV_NONE);
	smtp_engine_free(&e);
}

static void
test_phase(void **state)
{
	struct harness h;
	const char *steps[] = { ENV, "DATA\r\n", "abc\r\n", ".\r\n", "BDAT 5\r\n",
				"ab", "cde", MAIL RCPT "BDAT 5\r\n", "12345",
				"QUIT\r\n" };
	const enum smtp_phase want[] = {
		SMTP_PHASE_COMMAND, SMTP_PHASE_DATA, SMTP_PHASE_DATA,
		SMTP_PHASE_COMMAND,
		/* a refused BDAT's octets are still read: data phase */
		SMTP_PHASE_DATA, SMTP_PHASE_DATA, SMTP_PHASE_COMMAND,
		SMTP_PHASE_DATA, SMTP_PHASE_COMMAND, SMTP_PHASE_CLOSED,
	};

	(void)state;
	h_init(&h, NULL);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		h_feed(&h, (const uint8_t *)steps[i], strlen(steps[i]));
		if (smtp_engine_phase(h.e) != want[i])
			fail_msg("step %zu: got phase %d, want %d", i,
				 smtp_engine_phase(h.e), want[i]);
	}
	h_done(&h);
	h_clear(&h);
}

/* an idle engine stays small: serve holds thousands of them */
static void
test_idle_memory(void **state)
{
	struct harness h;
	struct buf in;
	size_t mem;

	(void)state;
	buf_init(&in, 0);
	buf_append_str(&in, ENV "DATA\r\n");
	for (size_t i = 0; i < 200; i++)
		buf_append_str(&in, "a line of text that makes a body of some "
			       "size, bigger than one chunk of body...\r\n");
	buf_append_str(&in, ".\r\nHELP\r\nVRFY x\r\n");
	h_init(&h, NULL);
	h_feed(&h, in.p, in.len);
	/* one more turn releases what the last one used */
	h_feed(&h, (const uint8_t *)"NOOP\r\n", 6);
	mem = sizeof(struct smtp_engine) + h.e->out.cap + h.e->evstr.cap +
	      h.e->chunk.cap + strlen(h.e->hostname) + 1 +
	      (h.e->helo != NULL ? strlen(h.e->helo) + 1 : 0);
	if (mem >= 4096)
		fail_msg("idle engine uses %zu octets, want < 4096", mem);
	assert_int_equal(h.e->chunk.cap, 0);
	h_done(&h);
	h_clear(&h);
	buf_clear(&in);
}

/* params of zero take the defaults */
static void
test_defaults(void **state)
{
	struct smtp_params p = { .hostname = HOST };
	struct harness h;
	char want[64];

	(void)state;
	h_init(&h, &p);
	h_feed(&h, (const uint8_t *)EHLO, strlen(EHLO));
	snprintf(want, sizeof(want), "250-SIZE %llu\r\n",
		 (unsigned long long)SMTP_SIZE_MAX_DEFAULT);
	assert_non_null(strstr(buf_cstr(&h.out), want));
	assert_int_equal(h.e->rcpt_max, SMTP_RCPT_MAX_DEFAULT);
	assert_int_equal(h.e->errors_max, SMTP_ERRORS_MAX_DEFAULT);
	h_done(&h);
	h_clear(&h);
}

/* verdict texts with CR, LF or long text cannot break the framing */
static void
test_verdict_text(void **state)
{
	struct smtp_engine *e;
	struct smtp_event ev;
	size_t used;
	char longtext[2000];
	struct smtp_verdict v = { .kind = SMTP_VERDICT_PERMFAIL, .code = 550,
				  .enhanced = "5.7.1", .text = "a\r\nQUIT\rb" };
	const char *in = "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n"
			 "MAIL FROM:<a@b.test>\r\n";
	size_t off = 0, n = strlen(in);

	(void)state;
	memset(longtext, 'z', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	e = smtp_engine_new(&default_params);
	for (int round = 0; round < 2; round++) {
		do {
			(void)smtp_engine_feed(e, (const uint8_t *)in + off,
					       n - off, &used);
			off += used;
			while (smtp_engine_next(e, &ev))
				;
		} while (!smtp_engine_waiting(e));
		buf_reset(smtp_engine_out(e));
		smtp_engine_decide(e, &v);
		v.text = longtext;
		v.enhanced = NULL;
	}
	/* the first verdict was decided and its reply dropped above; this
	 * is the second one */
	struct buf *out = smtp_engine_out(e);
	assert_int_equal(out->len, SMTP_REPLY_LINE_MAX);
	assert_memory_equal(out->p, "550 5.0.0 zzz", 13);
	assert_memory_equal(out->p + out->len - 2, "\r\n", 2);
	smtp_engine_free(&e);

	/* CR and LF in the text */
	char line[SMTP_REPLY_LINE_MAX];
	size_t len = smtp_reply_fmt(line, 550, ' ', "5.7.1", "a\r\nQUIT\rb");
	assert_int_equal(len, strlen("550 5.7.1 a??QUIT?b"));
	assert_string_equal(line, "550 5.7.1 a??QUIT?b");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_helo_long),
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_sequence),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_envid_limit),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_input),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_data_size),
		cmocka_unit_test(test_data_big),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_size),
		cmocka_unit_test(test_timeout_shutdown),
		cmocka_unit_test(test_timeout_while_waiting),
		cmocka_unit_test(test_feed_with_pending_events),
		cmocka_unit_test(test_phase),
		cmocka_unit_test(test_idle_memory),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_verdict_text),
	};
	return cmocka_run_group_tests_name("smtp_engine", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Transcript tests of the SMTP server engine's STARTTLS (RFC 3207), AUTH
 * (RFC 4954) and abuse limits (junk_max, errors_max through refused
 * recipients, auth_failures_max). Each case is the input before a TLS
 * handshake, the input after it, and the replies and events they must
 * give. The first input is fed whole, byte by byte and split at every
 * point (a stride for long inputs); every way must give the same result.
 * Once the engine accepted STARTTLS, the harness drops what is left of
 * the first input, as serve/ drops its buffer when TLS starts, and logs
 * how many octets that was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"
#include "smtp/smtp_int.h"

#define HOST "mx.test"
#define MECHS "PLAIN LOGIN CRAM-MD5 X-MULTI X-BIG X-MAXCH X-CLOSE"

/* ------------------------------------------------------------------ */
/* harness */

struct harness {
	struct smtp_engine *e;
	struct buf out;       /* every reply the engine wrote */
	struct buf log;       /* one line per event */
	char helo[64];
	bool closed;
	bool tls_pending;     /* STARTTLS accepted, handshake not done */
	size_t dropped;       /* octets dropped at the handshake */
	uint8_t big[SMTP_AUTH_CHALLENGE_MAX + 1];
};

static void
esc_append(struct buf *b, const void *p, size_t n)
{
	const uint8_t *s = p;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			buf_append_str(b, "\\\\");
		else if (s[i] >= 32 && s[i] < 127)
			buf_append(b, &s[i], 1);
		else
			buf_printf(b, "\\x%02x", s[i]);
	}
}

static bool
starts(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool
data_is(const struct smtp_event *ev, const char *want, size_t n)
{
	return ev->auth_has_data && ev->data_len == n &&
	       memcmp(ev->data, want, n) == 0;
}

#define DATA_IS(ev, lit) data_is(ev, lit, sizeof(lit) - 1)

static void
challenge(struct smtp_verdict *v, const char *text)
{
	v->auth_continue = true;
	v->challenge = (const uint8_t *)text;
	v->challenge_len = strlen(text);
}

/* the SASL side, by mechanism */
static void
policy_auth(struct harness *h, const struct smtp_event *ev,
	    struct smtp_verdict *v)
{
	const char *m = ev->auth_mech;
	unsigned step = ev->auth_step;

	if (strcmp(m, "PLAIN") == 0) {
		if (step == 0 && !ev->auth_has_data)
			challenge(v, "");
		else if (DATA_IS(ev, "\0u\0good"))
			v->kind = SMTP_VERDICT_OK;
		else if (DATA_IS(ev, "\0u\0temp"))
			v->kind = SMTP_VERDICT_TEMPFAIL;
		else if (DATA_IS(ev, "\0u\0custom")) {
			v->kind = SMTP_VERDICT_PERMFAIL;
			v->code = 535;
			v->enhanced = "5.7.8";
			v->text = "No such luck";
		} else
			v->kind = SMTP_VERDICT_PERMFAIL;
	} else if (strcmp(m, "LOGIN") == 0) {
		if (step == 0)
			challenge(v, "Username:");
		else if (step == 1)
			challenge(v, "Password:");
		else if (DATA_IS(ev, "good"))
			v->kind = SMTP_VERDICT_OK;
		else
			v->kind = SMTP_VERDICT_PERMFAIL;
	} else if (strcmp(m, "CRAM-MD5") == 0) {
		if (!ev->auth_has_data)
			challenge(v, "<1.2@mx.test>");
		else
			v->kind = SMTP_VERDICT_OK;
	} else if (strcmp(m, "X-MULTI") == 0) {
		static const char *const rounds[] = {
			"round 0", "round 1", "round 2" };
		if (step < 3)
			challenge(v, rounds[step]);
		else
			v->kind = SMTP_VERDICT_OK;
	} else if (strcmp(m, "X-BIG") == 0) {
		v->auth_continue = true;
		v->challenge = h->big;
		v->challenge_len = SMTP_AUTH_CHALLENGE_MAX + 1;
	} else if (strcmp(m, "X-MAXCH") == 0) {
		if (step == 0) {
			v->auth_continue = true;
			v->challenge = h->big;
			v->challenge_len = SMTP_AUTH_CHALLENGE_MAX;
		} else {
			v->kind = SMTP_VERDICT_OK;
		}
	} else if (strcmp(m, "X-CLOSE") == 0) {
		challenge(v, "bye");
		v->close = true;
	} else {
		fail_msg("AUTH with mechanism %s", m);
	}
}

static void
policy(struct harness *h, const struct smtp_event *ev)
{
	struct smtp_verdict v = { .kind = SMTP_VERDICT_OK };

	switch (ev->kind) {
	case SMTP_EV_MAIL:
	case SMTP_EV_DATA_START:
		break;
	case SMTP_EV_RCPT:
		if (starts(ev->address, "unknown"))
			v.kind = SMTP_VERDICT_PERMFAIL;
		else if (starts(ev->address, "temp"))
			v.kind = SMTP_VERDICT_TEMPFAIL;
		break;
	case SMTP_EV_DATA_END:
		/* a message that ends in "drop" is refused */
		if (h->helo[0] == 'd')
			v.kind = SMTP_VERDICT_PERMFAIL;
		break;
	case SMTP_EV_STARTTLS:
		if (starts(h->helo, "notls")) {
			v.kind = SMTP_VERDICT_TEMPFAIL;
		} else if (starts(h->helo, "customtls")) {
			v.kind = SMTP_VERDICT_TEMPFAIL;
			v.code = 454;
			v.enhanced = "4.7.0";
			v.text = "No TLS today";
		}
		break;
	case SMTP_EV_AUTH:
		policy_auth(h, ev, &v);
		break;
	default:
		fail_msg("no verdict for event %d", ev->kind);
	}
	smtp_engine_decide(h->e, &v);
	if (ev->kind == SMTP_EV_STARTTLS && v.kind == SMTP_VERDICT_OK)
		h->tls_pending = true;
}

static void
log_event(struct harness *h, const struct smtp_event *ev)
{
	struct buf *l = &h->log;

	switch (ev->kind) {
	case SMTP_EV_HELO:
		snprintf(h->helo, sizeof(h->helo), "%s", ev->helo_name);
		buf_printf(l, "HELO %s\n", ev->helo_name);
		break;
	case SMTP_EV_RSET:
		buf_append_str(l, "RSET\n");
		break;
	case SMTP_EV_QUIT:
		buf_append_str(l, "QUIT\n");
		break;
	case SMTP_EV_PROTOCOL_ERROR:
		buf_printf(l, "ERROR %s\n", ev->reply);
		break;
	case SMTP_EV_DATA_ABORT:
		buf_printf(l, "ABORT %s\n", ev->reply);
		break;
	case SMTP_EV_DATA_CHUNK:
		break;
	case SMTP_EV_MAIL:
		buf_printf(l, "MAIL <%s>\n", ev->address);
		break;
	case SMTP_EV_RCPT:
		buf_printf(l, "RCPT <%s>\n", ev->address);
		break;
	case SMTP_EV_DATA_START:
		buf_append_str(l, "DATA_START\n");
		break;
	case SMTP_EV_DATA_END:
		buf_printf(l, "DATA_END %llu\n", (unsigned long long)ev->size);
		break;
	case SMTP_EV_STARTTLS:
		buf_append_str(l, "STARTTLS\n");
		break;
	case SMTP_EV_AUTH:
		assert_non_null(ev->auth_mech);
		buf_printf(l, "AUTH %s %u", ev->auth_mech, ev->auth_step);
		if (!ev->auth_has_data) {
			assert_null(ev->data);
			assert_int_equal(ev->data_len, 0);
			buf_append_str(l, " -\n");
			break;
		}
		assert_non_null(ev->data);
		if (ev->data_len > 64) {
			buf_printf(l, " len=%zu\n", ev->data_len);
			break;
		}
		buf_append_str(l, " \"");
		esc_append(l, ev->data, ev->data_len);
		buf_append_str(l, "\"\n");
		break;
	case SMTP_EV_AUTH_ABORT:
		assert_non_null(ev->auth_mech);
		buf_printf(l, "AUTH_ABORT %s\n", ev->auth_mech);
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
	       k == SMTP_EV_VRFY || k == SMTP_EV_EXPN ||
	       k == SMTP_EV_STARTTLS || k == SMTP_EV_AUTH;
}

/* takes the output and checks its framing: 512 octets a line, but a
 * 334 challenge may be as long as an AUTH line (RFC 4954 §4) */
static void
take_output(struct harness *h)
{
	struct buf *out = smtp_engine_out(h->e);
	size_t start = 0;

	for (size_t i = 0; i < out->len; i++) {
		size_t len = i + 1 - start;
		if (out->p[i] != '\n')
			continue;
		if (i == 0 || out->p[i - 1] != '\r')
			fail_msg("reply line without CRLF");
		if (len > (memcmp(out->p + start, "334 ", 4) == 0 ?
			   SMTP_AUTH_LINE_MAX : SMTP_REPLY_LINE_MAX))
			fail_msg("reply line of %zu octets", len);
		start = i + 1;
	}
	if (start != out->len)
		fail_msg("reply does not end in CRLF");
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
		int r;

		if (h->tls_pending) {
			/* nothing is read before the handshake */
			r = smtp_engine_feed(h->e, p, n, &used);
			assert_int_equal(r, 0);
			assert_int_equal(used, 0);
			assert_false(smtp_engine_waiting(h->e));
			h->dropped += n;
			return;
		}
		r = smtp_engine_feed(h->e, p, n, &used);
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
		if (n == 0 && !h->tls_pending)
			return;
		if (used == 0 && r == 0 && !h->tls_pending && ++idle > 2)
			fail_msg("engine stuck with %zu octets left", n);
	}
}

/* the handshake, if STARTTLS was accepted */
static void
h_handshake(struct harness *h)
{
	if (!h->tls_pending)
		return;
	smtp_engine_tls_started(h->e);
	h->tls_pending = false;
	h->helo[0] = '\0';
	buf_printf(&h->log, "TLS dropped=%zu\n", h->dropped);
	h->dropped = 0;
}

static const struct smtp_params p_plain = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
};

static void
h_init(struct harness *h, const struct smtp_params *params)
{
	memset(h, 0, sizeof(*h));
	h->e = smtp_engine_new(params != NULL ? params : &p_plain);
	buf_init(&h->out, 0);
	buf_init(&h->log, 0);
	memset(h->big, 'c', sizeof(h->big));
	smtp_engine_greet(h->e);
	buf_reset(smtp_engine_out(h->e));
}

static void
h_done(struct harness *h)
{
	smtp_engine_free(&h->e);
	assert_null(h->e);
}

static void
h_clear(struct harness *h)
{
	buf_clear(&h->out);
	buf_clear(&h->log);
}

/* ------------------------------------------------------------------ */
/* cases */

struct tcase {
	const char *name;
	const char *in;           /* before the TLS handshake */
	const char *in_tls;       /* after it; NULL: none */
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
		char *got = escaped(h->out.p, h->out.len > 4000 ? 4000 :
				    h->out.len);
		char *want = escaped(tc->out, want_out > 4000 ? 4000 :
				     want_out);
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

static void
finish(struct harness *h, const struct tcase *tc, bool bytewise)
{
	h_handshake(h);
	if (tc->in_tls != NULL) {
		const uint8_t *p = (const uint8_t *)tc->in_tls;
		size_t n = strlen(tc->in_tls);
		if (bytewise) {
			for (size_t i = 0; i < n; i++)
				h_feed(h, p + i, 1);
		} else {
			h_feed(h, p, n);
		}
		h_handshake(h);
	}
	h_done(h);
}

#define SPLIT_ALL_MAX 3000

static void
run_case(const struct tcase *tc)
{
	const uint8_t *in = (const uint8_t *)tc->in;
	size_t n = strlen(tc->in);
	struct harness h;
	char how[64];

	h_init(&h, tc->params);
	h_feed(&h, in, n);
	finish(&h, tc, false);
	check(tc, "whole", &h);
	h_clear(&h);

	h_init(&h, tc->params);
	for (size_t i = 0; i < n; i++)
		h_feed(&h, in + i, 1);
	finish(&h, tc, true);
	check(tc, "byte by byte", &h);
	h_clear(&h);

	size_t step = n <= SPLIT_ALL_MAX ? 1 : n / 97 + 1;
	for (size_t cut = 0; cut <= n; cut += step) {
		h_init(&h, tc->params);
		h_feed(&h, in, cut);
		h_feed(&h, in + cut, n - cut);
		finish(&h, tc, false);
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
#define EHLO_E "HELO client.test\n"
#define EHLO_BASE "250-" HOST " Hello client.test\r\n" \
	"250-SIZE 10000\r\n250-PIPELINING\r\n250-8BITMIME\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
#define EHLO_R EHLO_BASE "250 DSN\r\n"
#define EHLO_R_TLS EHLO_BASE "250-DSN\r\n250 STARTTLS\r\n"
#define EHLO_R_AUTH EHLO_BASE "250-DSN\r\n250 AUTH " MECHS "\r\n"
#define EHLO_R_BOTH EHLO_BASE "250-DSN\r\n250-STARTTLS\r\n250 AUTH " MECHS \
	"\r\n"
#define MAIL "MAIL FROM:<s@x.test>\r\n"
#define MAIL_R "250 2.1.0 Ok\r\n"
#define MAIL_E "MAIL <s@x.test>\n"
#define RCPT "RCPT TO:<r@y.test>\r\n"
#define RCPT_R "250 2.1.5 Ok\r\n"
#define RCPT_E "RCPT <r@y.test>\n"
#define OK "250 2.0.0 Ok\r\n"
#define E502 "502 5.5.1 Error: command not implemented"
#define NEED_EHLO "503 5.5.1 Error: send EHLO first"
#define NEED_HELO "503 5.5.1 Error: send HELO/EHLO first"
#define IN_TX "503 5.5.1 Error: MAIL transaction in progress"
#define READY "220 2.0.0 Ready to start TLS\r\n"
#define NO_TLS "454 4.7.0 TLS not available due to temporary reason"
#define IN_TLS "503 5.5.1 Error: TLS already active"
#define AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define AUTH_BAD "535 5.7.8 Authentication credentials invalid\r\n"
#define AUTH_TEMP "454 4.7.0 Temporary authentication failure\r\n"
#define ENCRYPT "538 5.7.11 Encryption required for requested " \
	"authentication mechanism"
#define UNKNOWN_MECH "504 5.5.4 Unrecognized authentication type"
#define BAD64 "501 5.5.2 Invalid base64 data"
#define CANCELED "501 5.0.0 Authentication canceled"
#define TOO_LONG "500 5.5.6 Authentication Exchange line is too long"
#define AUTH_SYNTAX "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
#define AGAIN "503 5.5.1 Error: already authenticated"
#define NEED_AUTH "530 5.7.0 Authentication required"
#define CLOSE_ERR "421 4.7.0 " HOST " Too many errors, closing"
#define CLOSE_JUNK "421 4.7.0 " HOST " Too many junk commands, closing"
#define CLOSE_AUTH "421 4.7.0 " HOST " Too many authentication failures, " \
	"closing"
#define UNKNOWN_R "550 5.1.1 Recipient address rejected: unknown user\r\n"
#define TEMP_R "451 4.3.0 Temporary failure, try again later\r\n"

/* PLAIN: "\0u\0good" and friends */
#define P_GOOD "AHUAZ29vZA=="
#define P_GOOD_E "AUTH PLAIN 0 \"\\x00u\\x00good\"\n"
#define P_BAD "AHUAYmFk"
#define P_BAD_E "AUTH PLAIN 0 \"\\x00u\\x00bad\"\n"
#define AUTH_GOOD "AUTH PLAIN " P_GOOD "\r\n"
#define AUTH_BADPW "AUTH PLAIN " P_BAD "\r\n"
#define LOGIN_OK "AUTH LOGIN\r\ndQ==\r\nZ29vZA==\r\n"
#define LOGIN_OK_R "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_OK
#define LOGIN_OK_E "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"u\"\nAUTH LOGIN 2 \"good\"\n"

/* STARTTLS offered, AUTH only inside TLS (a submission port) */
static const struct smtp_params p_tls = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.starttls = true, .auth_mechs = MECHS,
};
/* AUTH in clear too */
static const struct smtp_params p_clear = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.auth_mechs = MECHS, .auth_clear = true,
};
static const struct smtp_params p_both = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.starttls = true, .auth_mechs = MECHS, .auth_clear = true,
};
/* implicit TLS (RFC 8314) */
static const struct smtp_params p_implicit = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.starttls = true, .tls = true, .auth_mechs = MECHS,
};
static const struct smtp_params p_required = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 3,
	.tls = true, .auth_mechs = MECHS, .auth_required = true,
};
static const struct smtp_params p_starttls_only = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.starttls = true,
};

/* ------------------------------------------------------------------ */
/* EHLO and HELP */

static const struct smtp_params p_spaces = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.auth_mechs = "  plain\tLOGIN  ", .auth_clear = true,
};
static const struct smtp_params p_blank = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.auth_mechs = " \t ", .auth_clear = true, .starttls = false,
};

#define HELP_BASE "214-2.0.0 Commands supported:\r\n" \
	"214 2.0.0 EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY"

static const struct tcase ehlo_cases[] = {
	{ "no extensions", EHLO, NULL, EHLO_R, EHLO_E, NULL },
	{ "STARTTLS offered, AUTH not in clear", EHLO, NULL, EHLO_R_TLS,
	  EHLO_E, &p_tls },
	{ "AUTH in clear", EHLO, NULL, EHLO_R_AUTH, EHLO_E, &p_clear },
	{ "both", EHLO, NULL, EHLO_R_BOTH, EHLO_E, &p_both },
	{ "implicit TLS: AUTH, no STARTTLS", EHLO, NULL, EHLO_R_AUTH, EHLO_E,
	  &p_implicit },
	{ "mechanism list is normalised", EHLO, NULL,
	  EHLO_BASE "250-DSN\r\n250 AUTH plain LOGIN\r\n", EHLO_E,
	  &p_spaces },
	{ "a blank mechanism list is no AUTH", EHLO "AUTH PLAIN\r\n", NULL,
	  EHLO_R E502 "\r\n", EHLO_E "ERROR " E502 "\n", &p_blank },
	{ "HELO lists no extensions", "HELO client.test\r\n", NULL,
	  "250 " HOST " Hello client.test\r\n", EHLO_E, &p_both },
	{ "HELP without extensions", "HELP\r\n", NULL, HELP_BASE "\r\n", "",
	  NULL },
	{ "HELP lists what is offered", "HELP\r\n", NULL,
	  HELP_BASE " STARTTLS AUTH\r\n", "", &p_both },
	{ "HELP: STARTTLS only", "HELP\r\n", NULL,
	  HELP_BASE " STARTTLS\r\n", "", &p_tls },
	{ "HELP: AUTH only in TLS", "HELP\r\n", NULL, HELP_BASE " AUTH\r\n",
	  "", &p_implicit },
};

static void
test_ehlo(void **state)
{
	(void)state;
	RUN(ehlo_cases);
}

/* ------------------------------------------------------------------ */
/* STARTTLS */

#define PIPELINED "MAIL FROM:<evil@x.test>\r\nRCPT TO:<r@y.test>\r\n"

static const struct tcase starttls_cases[] = {
	{ "argument", EHLO "STARTTLS now\r\n", NULL,
	  EHLO_R_TLS "501 5.5.4 Syntax: STARTTLS\r\n",
	  EHLO_E "ERROR 501 5.5.4 Syntax: STARTTLS\n", &p_tls },
	{ "already in TLS", EHLO "STARTTLS\r\n", NULL,
	  EHLO_R_AUTH IN_TLS "\r\n", EHLO_E "ERROR " IN_TLS "\n",
	  &p_implicit },
	{ "not offered", EHLO "STARTTLS\r\n", NULL, EHLO_R E502 "\r\n",
	  EHLO_E "ERROR " E502 "\n", NULL },
	{ "before EHLO", "STARTTLS\r\n", NULL, NEED_EHLO "\r\n",
	  "ERROR " NEED_EHLO "\n", &p_tls },
	{ "after HELO", "HELO client.test\r\nSTARTTLS\r\n", NULL,
	  "250 " HOST " Hello client.test\r\n" NEED_EHLO "\r\n",
	  EHLO_E "ERROR " NEED_EHLO "\n", &p_tls },
	{ "in a transaction", EHLO MAIL "STARTTLS\r\n", NULL,
	  EHLO_R_TLS MAIL_R IN_TX "\r\n", EHLO_E MAIL_E "ERROR " IN_TX "\n",
	  &p_tls },
	{ "TEMPFAIL", "EHLO notls.test\r\nSTARTTLS\r\nNOOP\r\n", NULL,
	  "250-" HOST " Hello notls.test\r\n250-SIZE 10000\r\n"
	  "250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	  "250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n"
	  NO_TLS "\r\n" OK,
	  "HELO notls.test\nSTARTTLS\n", &p_tls },
	{ "TEMPFAIL with its own reply",
	  "EHLO customtls.test\r\nSTARTTLS\r\nNOOP\r\n", NULL,
	  "250-" HOST " Hello customtls.test\r\n250-SIZE 10000\r\n"
	  "250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	  "250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n"
	  "454 4.7.0 No TLS today\r\n" OK,
	  "HELO customtls.test\nSTARTTLS\n", &p_tls },
	/* the injection of CVE-2011-0411 and its kin: what follows
	 * STARTTLS in the same packet must never run */
	{ "pipelined commands after STARTTLS are dropped",
	  EHLO "STARTTLS\r\n" PIPELINED,
	  MAIL EHLO MAIL RCPT,
	  EHLO_R_TLS READY NEED_HELO "\r\n" EHLO_R_AUTH MAIL_R RCPT_R,
	  EHLO_E "STARTTLS\nTLS dropped=45\nERROR " NEED_HELO "\n" EHLO_E
	  MAIL_E RCPT_E, &p_tls },
	{ "STARTTLS as the last line", EHLO "STARTTLS\r\n", EHLO,
	  EHLO_R_TLS READY EHLO_R_AUTH,
	  EHLO_E "STARTTLS\nTLS dropped=0\n" EHLO_E, &p_tls },
	/* "QUI" is dropped with the rest: "T" after the handshake is a
	 * line of its own */
	{ "half a line after STARTTLS", EHLO "STARTTLS\r\nQUI",
	  "T\r\nNOOP\r\n",
	  EHLO_R_TLS READY "500 5.5.2 Error: command not recognized\r\n" OK,
	  EHLO_E "STARTTLS\nTLS dropped=3\n"
	  "ERROR 500 5.5.2 Error: command not recognized\n", &p_tls },
	{ "a second STARTTLS in TLS", EHLO "STARTTLS\r\n", EHLO "STARTTLS\r\n",
	  EHLO_R_TLS READY EHLO_R_AUTH IN_TLS "\r\n",
	  EHLO_E "STARTTLS\nTLS dropped=0\n" EHLO_E "ERROR " IN_TLS "\n",
	  &p_tls },
	{ "AUTH before TLS is 538, inside TLS it works",
	  EHLO "AUTH PLAIN " P_GOOD "\r\nSTARTTLS\r\n",
	  EHLO "AUTH PLAIN " P_GOOD "\r\n",
	  EHLO_R_TLS ENCRYPT "\r\n" READY EHLO_R_AUTH AUTH_OK,
	  EHLO_E "ERROR " ENCRYPT "\nSTARTTLS\nTLS dropped=0\n" EHLO_E
	  P_GOOD_E, &p_tls },
	{ "STARTTLS without AUTH", EHLO "STARTTLS\r\n", EHLO AUTH_GOOD,
	  EHLO_R_TLS READY EHLO_R E502 "\r\n",
	  EHLO_E "STARTTLS\nTLS dropped=0\n" EHLO_E "ERROR " E502 "\n",
	  &p_starttls_only },
	/* RFC 3207 §4.2: AUTH from before the handshake is forgotten */
	{ "the handshake forgets AUTH", EHLO "AUTH PLAIN " P_GOOD "\r\n"
	  "STARTTLS\r\n", EHLO "AUTH PLAIN " P_GOOD "\r\n",
	  EHLO_R_BOTH AUTH_OK READY EHLO_R_AUTH AUTH_OK,
	  EHLO_E P_GOOD_E "STARTTLS\nTLS dropped=0\n" EHLO_E P_GOOD_E,
	  &p_both },
};

static void
test_starttls(void **state)
{
	(void)state;
	RUN(starttls_cases);
}

/* ------------------------------------------------------------------ */
/* AUTH */


static const struct tcase auth_cases[] = {
	{ "not offered", EHLO AUTH_GOOD, NULL, EHLO_R E502 "\r\n",
	  EHLO_E "ERROR " E502 "\n", NULL },
	{ "before EHLO", AUTH_GOOD, NULL, NEED_EHLO "\r\n",
	  "ERROR " NEED_EHLO "\n", &p_implicit },
	{ "after HELO", "HELO client.test\r\n" AUTH_GOOD, NULL,
	  "250 " HOST " Hello client.test\r\n" NEED_EHLO "\r\n",
	  EHLO_E "ERROR " NEED_EHLO "\n", &p_implicit },
	{ "second AUTH after success", EHLO AUTH_GOOD AUTH_GOOD, NULL,
	  EHLO_R_AUTH AUTH_OK AGAIN "\r\n",
	  EHLO_E P_GOOD_E "ERROR " AGAIN "\n", &p_implicit },
	{ "in a transaction", EHLO MAIL AUTH_GOOD, NULL,
	  EHLO_R_AUTH MAIL_R IN_TX "\r\n", EHLO_E MAIL_E "ERROR " IN_TX "\n",
	  &p_implicit },
	{ "in clear without auth_clear", EHLO AUTH_GOOD, NULL,
	  EHLO_R_TLS ENCRYPT "\r\n", EHLO_E "ERROR " ENCRYPT "\n", &p_tls },
	{ "in clear with auth_clear", EHLO AUTH_GOOD, NULL,
	  EHLO_R_AUTH AUTH_OK, EHLO_E P_GOOD_E, &p_clear },
	{ "unknown mechanism", EHLO "AUTH GSSAPI\r\nAUTH PLAINX\r\n", NULL,
	  EHLO_R_AUTH UNKNOWN_MECH "\r\n" UNKNOWN_MECH "\r\n",
	  EHLO_E "ERROR " UNKNOWN_MECH "\nERROR " UNKNOWN_MECH "\n",
	  &p_implicit },
	{ "mechanism names are case-insensitive",
	  EHLO "auth plain " P_GOOD "\r\n", NULL, EHLO_R_AUTH AUTH_OK,
	  EHLO_E P_GOOD_E, &p_implicit },
	{ "no mechanism", EHLO "AUTH\r\nAUTH   \r\n", NULL,
	  EHLO_R_AUTH AUTH_SYNTAX "\r\n" AUTH_SYNTAX "\r\n",
	  EHLO_E "ERROR " AUTH_SYNTAX "\nERROR " AUTH_SYNTAX "\n",
	  &p_implicit },
	{ "two arguments", EHLO "AUTH PLAIN YQ== YQ==\r\n"
	  "AUTH PLAIN  YQ==\r\n", NULL,
	  EHLO_R_AUTH AUTH_SYNTAX "\r\n" AUTH_SYNTAX "\r\n",
	  EHLO_E "ERROR " AUTH_SYNTAX "\nERROR " AUTH_SYNTAX "\n",
	  &p_implicit },
	{ "bad base64 initial response", EHLO "AUTH PLAIN AHUAZ29vZA=\r\n"
	  "AUTH PLAIN AHUA*29vZA==\r\nAUTH PLAIN A===\r\n"
	  "AUTH PLAIN AH=A\r\nAUTH PLAIN ==\r\n", NULL,
	  EHLO_R_AUTH BAD64 "\r\n" BAD64 "\r\n" BAD64 "\r\n" BAD64 "\r\n"
	  BAD64 "\r\n",
	  EHLO_E "ERROR " BAD64 "\nERROR " BAD64 "\nERROR " BAD64 "\nERROR "
	  BAD64 "\nERROR " BAD64 "\n", &p_implicit },
	{ "\"=\" is an empty initial response", EHLO "AUTH PLAIN =\r\n", NULL,
	  EHLO_R_AUTH AUTH_BAD, EHLO_E "AUTH PLAIN 0 \"\"\n", &p_implicit },
	{ "PLAIN after an empty challenge", EHLO "AUTH PLAIN\r\n" P_GOOD "\r\n",
	  NULL, EHLO_R_AUTH "334 \r\n" AUTH_OK,
	  EHLO_E "AUTH PLAIN 0 -\nAUTH PLAIN 1 \"\\x00u\\x00good\"\n",
	  &p_implicit },
	{ "LOGIN", EHLO LOGIN_OK, NULL, EHLO_R_AUTH LOGIN_OK_R,
	  EHLO_E LOGIN_OK_E, &p_implicit },
	{ "four steps", EHLO "AUTH X-MULTI\r\nYQ==\r\nYWI=\r\n\r\n" MAIL, NULL,
	  EHLO_R_AUTH "334 cm91bmQgMA==\r\n334 cm91bmQgMQ==\r\n"
	  "334 cm91bmQgMg==\r\n" AUTH_OK MAIL_R,
	  EHLO_E "AUTH X-MULTI 0 -\nAUTH X-MULTI 1 \"a\"\n"
	  "AUTH X-MULTI 2 \"ab\"\nAUTH X-MULTI 3 \"\"\n" MAIL_E, &p_implicit },
	{ "cancel", EHLO "AUTH LOGIN\r\n*\r\nNOOP\r\n", NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n" CANCELED "\r\n" OK,
	  EHLO_E "AUTH LOGIN 0 -\nAUTH_ABORT LOGIN\nERROR " CANCELED "\n",
	  &p_implicit },
	{ "cancel at the second step", EHLO "AUTH LOGIN\r\ndQ==\r\n*\r\n"
	  LOGIN_OK, NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" CANCELED
	  "\r\n" LOGIN_OK_R,
	  EHLO_E "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"u\"\nAUTH_ABORT LOGIN\n"
	  "ERROR " CANCELED "\n" LOGIN_OK_E, &p_implicit },
	{ "bad base64 response", EHLO "AUTH LOGIN\r\ndQ=\r\nNOOP\r\n", NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n" BAD64 "\r\n" OK,
	  EHLO_E "AUTH LOGIN 0 -\nAUTH_ABORT LOGIN\nERROR " BAD64 "\n",
	  &p_implicit },
	{ "a response is never a command", EHLO "AUTH LOGIN\r\nQUIT\r\n"
	  "RSET\r\n", NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_BAD,
	  EHLO_E "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"AB\\x13\"\n"
	  "AUTH LOGIN 2 \"E!\\x13\"\n", &p_implicit },
	{ "bare LF in a response", EHLO "AUTH LOGIN\r\ndQ==\nx\r\nNOOP\r\n",
	  NULL, EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n"
	  "500 5.5.2 Bare CR or LF not allowed in command\r\n" OK,
	  EHLO_E "AUTH LOGIN 0 -\nAUTH_ABORT LOGIN\n"
	  "ERROR 500 5.5.2 Bare CR or LF not allowed in command\n",
	  &p_implicit },
	{ "TEMPFAIL", EHLO "AUTH PLAIN AHUAdGVtcA==\r\n" AUTH_GOOD, NULL,
	  EHLO_R_AUTH AUTH_TEMP AUTH_OK,
	  EHLO_E "AUTH PLAIN 0 \"\\x00u\\x00temp\"\n" P_GOOD_E, &p_implicit },
	{ "a verdict with its own reply", EHLO "AUTH PLAIN AHUAY3VzdG9t\r\n",
	  NULL, EHLO_R_AUTH "535 5.7.8 No such luck\r\n",
	  EHLO_E "AUTH PLAIN 0 \"\\x00u\\x00custom\"\n", &p_implicit },
	{ "a challenge too long for a line", EHLO "AUTH X-BIG\r\nNOOP\r\n",
	  NULL, EHLO_R_AUTH AUTH_TEMP OK,
	  EHLO_E "AUTH X-BIG 0 -\nAUTH_ABORT X-BIG\n", &p_implicit },
	{ "a verdict closes in the exchange", EHLO "AUTH X-CLOSE\r\nNOOP\r\n",
	  NULL, EHLO_R_AUTH "334 Ynll\r\n",
	  EHLO_E "AUTH X-CLOSE 0 -\nAUTH_ABORT X-CLOSE\n", &p_implicit },
	{ "authenticated mail", EHLO AUTH_GOOD MAIL RCPT "DATA\r\nx\r\n.\r\n",
	  NULL, EHLO_R_AUTH AUTH_OK MAIL_R RCPT_R
	  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n",
	  EHLO_E P_GOOD_E MAIL_E RCPT_E "DATA_START\nDATA_END 3\n",
	  &p_required },
	/* RFC 4954 §6 */
	{ "530 without AUTH", EHLO MAIL AUTH_GOOD MAIL, NULL,
	  EHLO_R_AUTH NEED_AUTH "\r\n" AUTH_OK MAIL_R,
	  EHLO_E "ERROR " NEED_AUTH "\n" P_GOOD_E MAIL_E, &p_required },
	{ "530 after a failed AUTH", EHLO AUTH_BADPW MAIL, NULL,
	  EHLO_R_AUTH AUTH_BAD NEED_AUTH "\r\n",
	  EHLO_E P_BAD_E "ERROR " NEED_AUTH "\n", &p_required },
	{ "530 errors_max-1", EHLO MAIL MAIL "NOOP\r\n", NULL,
	  EHLO_R_AUTH NEED_AUTH "\r\n" NEED_AUTH "\r\n" OK,
	  EHLO_E "ERROR " NEED_AUTH "\nERROR " NEED_AUTH "\n", &p_required },
	{ "530 errors_max", EHLO MAIL MAIL MAIL "NOOP\r\n", NULL,
	  EHLO_R_AUTH NEED_AUTH "\r\n" NEED_AUTH "\r\n" NEED_AUTH "\r\n"
	  CLOSE_ERR "\r\n",
	  EHLO_E "ERROR " NEED_AUTH "\nERROR " NEED_AUTH "\nERROR " NEED_AUTH
	  "\nERROR " CLOSE_ERR "\n", &p_required },
	/* RFC 4954 §5 */
	{ "AUTH=<> on MAIL", EHLO "MAIL FROM:<s@x.test> AUTH=<>\r\n", NULL,
	  EHLO_R_AUTH MAIL_R, EHLO_E MAIL_E, &p_implicit },
	{ "AUTH=xtext on MAIL", EHLO "MAIL FROM:<s@x.test> SIZE=10 "
	  "AUTH=e+2Bf@x.test\r\n", NULL, EHLO_R_AUTH MAIL_R, EHLO_E MAIL_E,
	  &p_implicit },
	{ "AUTH= twice, the same", EHLO "MAIL FROM:<s@x.test> AUTH=<> "
	  "auth=<>\r\n", NULL, EHLO_R_AUTH MAIL_R, EHLO_E MAIL_E,
	  &p_implicit },
	{ "AUTH without a value", EHLO "MAIL FROM:<s@x.test> AUTH\r\n", NULL,
	  EHLO_R_AUTH "501 5.5.4 Bad AUTH parameter syntax\r\n",
	  EHLO_E "ERROR 501 5.5.4 Bad AUTH parameter syntax\n", &p_implicit },
	{ "AUTH= with bad xtext", EHLO "MAIL FROM:<s@x.test> AUTH=a+zz\r\n",
	  NULL, EHLO_R_AUTH "501 5.5.4 Bad AUTH parameter syntax\r\n",
	  EHLO_E "ERROR 501 5.5.4 Bad AUTH parameter syntax\n", &p_implicit },
	{ "AUTH= where AUTH is not offered",
	  EHLO "MAIL FROM:<s@x.test> AUTH=<>\r\n", NULL,
	  EHLO_R_TLS "555 5.5.4 Unsupported parameter\r\n",
	  EHLO_E "ERROR 555 5.5.4 Unsupported parameter\n", &p_tls },
};

static void
test_auth(void **state)
{
	(void)state;
	RUN(auth_cases);
}

/* ------------------------------------------------------------------ */
/* auth_failures_max */

static const struct smtp_params p_fail3 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.tls = true, .auth_mechs = MECHS, .auth_failures_max = 3,
};

static const struct tcase auth_failure_cases[] = {
	{ "auth_failures_max-1", EHLO AUTH_BADPW AUTH_BADPW "NOOP\r\n", NULL,
	  EHLO_R_AUTH AUTH_BAD AUTH_BAD OK, EHLO_E P_BAD_E P_BAD_E, &p_fail3 },
	{ "auth_failures_max", EHLO AUTH_BADPW AUTH_BADPW AUTH_BADPW
	  "NOOP\r\n", NULL, EHLO_R_AUTH AUTH_BAD AUTH_BAD CLOSE_AUTH "\r\n",
	  EHLO_E P_BAD_E P_BAD_E P_BAD_E "ERROR " CLOSE_AUTH "\n", &p_fail3 },
	{ "auth_failures_max+1", EHLO AUTH_BADPW AUTH_BADPW AUTH_BADPW
	  AUTH_BADPW "NOOP\r\n", NULL,
	  EHLO_R_AUTH AUTH_BAD AUTH_BAD CLOSE_AUTH "\r\n",
	  EHLO_E P_BAD_E P_BAD_E P_BAD_E "ERROR " CLOSE_AUTH "\n", &p_fail3 },
	{ "the default is 3", EHLO AUTH_BADPW AUTH_BADPW AUTH_BADPW, NULL,
	  EHLO_R_AUTH AUTH_BAD AUTH_BAD CLOSE_AUTH "\r\n",
	  EHLO_E P_BAD_E P_BAD_E P_BAD_E "ERROR " CLOSE_AUTH "\n",
	  &p_implicit },
	{ "TEMPFAIL and cancel do not count", EHLO AUTH_BADPW
	  "AUTH PLAIN AHUAdGVtcA==\r\nAUTH PLAIN\r\n*\r\n" AUTH_BADPW
	  AUTH_GOOD, NULL,
	  EHLO_R_AUTH AUTH_BAD AUTH_TEMP "334 \r\n" CANCELED "\r\n" AUTH_BAD
	  AUTH_OK,
	  EHLO_E P_BAD_E "AUTH PLAIN 0 \"\\x00u\\x00temp\"\nAUTH PLAIN 0 -\n"
	  "AUTH_ABORT PLAIN\nERROR " CANCELED "\n" P_BAD_E P_GOOD_E,
	  &p_fail3 },
	{ "failures in a multi-step exchange", EHLO
	  "AUTH LOGIN\r\ndQ==\r\nYmFk\r\nAUTH LOGIN\r\ndQ==\r\nYmFk\r\n"
	  "AUTH LOGIN\r\ndQ==\r\nYmFk\r\nNOOP\r\n", NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_BAD
	  "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" AUTH_BAD
	  "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n" CLOSE_AUTH "\r\n",
	  EHLO_E "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"u\"\nAUTH LOGIN 2 \"bad\"\n"
	  "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"u\"\nAUTH LOGIN 2 \"bad\"\n"
	  "AUTH LOGIN 0 -\nAUTH LOGIN 1 \"u\"\nAUTH LOGIN 2 \"bad\"\n"
	  "ERROR " CLOSE_AUTH "\n", &p_fail3 },
};

static void
test_auth_failures(void **state)
{
	(void)state;
	RUN(auth_failure_cases);
}

/* ------------------------------------------------------------------ */
/* junk_max */

static const struct smtp_params p_junk3 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 10,
	.junk_max = 3,
};

#define HELP_R HELP_BASE "\r\n"
#define MSG MAIL RCPT "DATA\r\nx\r\n.\r\n"
#define MSG_R MAIL_R RCPT_R "354 End data with <CR><LF>.<CR><LF>\r\n"
#define MSG_E MAIL_E RCPT_E "DATA_START\nDATA_END 3\n"

static const struct tcase junk_cases[] = {
	{ "junk_max-1", "NOOP\r\nRSET\r\nQUIT\r\n", NULL,
	  OK OK "221 2.0.0 Bye\r\n", "RSET\nQUIT\n", &p_junk3 },
	{ "junk_max", "NOOP\r\nRSET\r\nHELP\r\nQUIT\r\n", NULL,
	  OK OK HELP_R "221 2.0.0 Bye\r\n", "RSET\nQUIT\n", &p_junk3 },
	{ "junk_max+1", "NOOP\r\nRSET\r\nHELP\r\nVRFY x\r\nQUIT\r\n", NULL,
	  OK OK HELP_R CLOSE_JUNK "\r\n", "RSET\nERROR " CLOSE_JUNK "\n",
	  &p_junk3 },
	{ "refused junk counts", "RSET x\r\nEXPN x\r\nNOOP\r\nNOOP\r\n", NULL,
	  "501 5.5.4 Syntax: RSET\r\n502 5.5.1 EXPN command is disabled\r\n"
	  OK CLOSE_JUNK "\r\n",
	  "ERROR 501 5.5.4 Syntax: RSET\n"
	  "ERROR 502 5.5.1 EXPN command is disabled\nERROR " CLOSE_JUNK "\n",
	  &p_junk3 },
	{ "other commands are not junk", EHLO EHLO "FOO\r\nNOOP\r\nNOOP\r\n"
	  "NOOP\r\n", NULL,
	  EHLO_R EHLO_R "500 5.5.2 Error: command not recognized\r\n" OK OK OK,
	  EHLO_E EHLO_E "ERROR 500 5.5.2 Error: command not recognized\n",
	  &p_junk3 },
	{ "an accepted message starts the count again",
	  EHLO "NOOP\r\nNOOP\r\nNOOP\r\n" MSG "NOOP\r\nNOOP\r\nNOOP\r\n"
	  "QUIT\r\n", NULL,
	  EHLO_R OK OK OK MSG_R "250 2.0.0 Ok\r\n" OK OK OK "221 2.0.0 Bye\r\n",
	  EHLO_E MSG_E "QUIT\n", &p_junk3 },
	{ "a refused message does not",
	  "EHLO drop.test\r\nNOOP\r\nNOOP\r\nNOOP\r\n" MSG "NOOP\r\n", NULL,
	  "250-" HOST " Hello drop.test\r\n250-SIZE 10000\r\n"
	  "250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	  "250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n" OK OK OK MSG_R
	  "554 5.3.0 Transaction failed\r\n" CLOSE_JUNK "\r\n",
	  "HELO drop.test\n" MSG_E "ERROR " CLOSE_JUNK "\n", &p_junk3 },
};

static void
test_junk(void **state)
{
	(void)state;
	RUN(junk_cases);
}

/* the default junk_max: 100 NOOPs are fine, the 101st is not */
static void
test_junk_default(void **state)
{
	struct buf in, want;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		buf_init(&in, 0);
		buf_init(&want, 0);
		for (int i = 0; i < SMTP_JUNK_MAX_DEFAULT + extra; i++) {
			buf_append_str(&in, "NOOP\r\n");
			if (i < SMTP_JUNK_MAX_DEFAULT)
				buf_append_str(&want, OK);
		}
		if (extra)
			buf_append_str(&want, CLOSE_JUNK "\r\n");
		const struct tcase c = { extra ? "junk 101" : "junk 100",
			buf_cstr(&in), NULL, buf_cstr(&want),
			extra ? "ERROR " CLOSE_JUNK "\n" : "", NULL };
		run_case(&c);
		buf_clear(&in);
		buf_clear(&want);
	}
}

/* ------------------------------------------------------------------ */
/* refused recipients count toward errors_max */

static const struct smtp_params p_err3 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 3,
};

#define R_UNKNOWN(n) "RCPT TO:<unknown" #n "@y.test>\r\n"
#define R_UNKNOWN_E(n) "RCPT <unknown" #n "@y.test>\n"

static const struct tcase harvest_cases[] = {
	{ "errors_max-1", EHLO MAIL R_UNKNOWN(1) "RCPT TO:<temp@y.test>\r\n"
	  RCPT "NOOP\r\n", NULL,
	  EHLO_R MAIL_R UNKNOWN_R TEMP_R RCPT_R OK,
	  EHLO_E MAIL_E R_UNKNOWN_E(1) "RCPT <temp@y.test>\n" RCPT_E,
	  &p_err3 },
	{ "errors_max", EHLO MAIL R_UNKNOWN(1) "RCPT TO:<temp@y.test>\r\n"
	  R_UNKNOWN(3) RCPT, NULL,
	  EHLO_R MAIL_R UNKNOWN_R TEMP_R UNKNOWN_R CLOSE_ERR "\r\n",
	  EHLO_E MAIL_E R_UNKNOWN_E(1) "RCPT <temp@y.test>\n" R_UNKNOWN_E(3)
	  "ERROR " CLOSE_ERR "\n", &p_err3 },
	{ "errors_max+1", EHLO MAIL R_UNKNOWN(1) R_UNKNOWN(2) R_UNKNOWN(3)
	  R_UNKNOWN(4), NULL,
	  EHLO_R MAIL_R UNKNOWN_R UNKNOWN_R UNKNOWN_R CLOSE_ERR "\r\n",
	  EHLO_E MAIL_E R_UNKNOWN_E(1) R_UNKNOWN_E(2) R_UNKNOWN_E(3)
	  "ERROR " CLOSE_ERR "\n", &p_err3 },
	{ "with other errors", "FOO\r\n" EHLO MAIL R_UNKNOWN(1) "BAR\r\n"
	  RCPT, NULL,
	  "500 5.5.2 Error: command not recognized\r\n" EHLO_R MAIL_R
	  UNKNOWN_R "500 5.5.2 Error: command not recognized\r\n"
	  CLOSE_ERR "\r\n",
	  "ERROR 500 5.5.2 Error: command not recognized\n" EHLO_E MAIL_E
	  R_UNKNOWN_E(1) "ERROR 500 5.5.2 Error: command not recognized\n"
	  "ERROR " CLOSE_ERR "\n", &p_err3 },
	{ "across transactions", EHLO MAIL R_UNKNOWN(1) "RSET\r\n" MAIL
	  R_UNKNOWN(2) "RSET\r\n" MAIL R_UNKNOWN(3) "RSET\r\n", NULL,
	  EHLO_R MAIL_R UNKNOWN_R OK MAIL_R UNKNOWN_R OK MAIL_R UNKNOWN_R
	  CLOSE_ERR "\r\n",
	  EHLO_E MAIL_E R_UNKNOWN_E(1) "RSET\n" MAIL_E R_UNKNOWN_E(2) "RSET\n"
	  MAIL_E R_UNKNOWN_E(3) "ERROR " CLOSE_ERR "\n", &p_err3 },
};

static void
test_harvest(void **state)
{
	(void)state;
	RUN(harvest_cases);
}

/* ------------------------------------------------------------------ */
/* RFC 4954 §4: AUTH lines of up to 12,288 octets */

/* prefix, `n` copies of c, then suffix */
static char *
line_of(const char *prefix, size_t n, char c, const char *suffix)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_str(&b, prefix);
	for (size_t i = 0; i < n; i++)
		buf_append(&b, &c, 1);
	buf_append_str(&b, suffix);
	(void)buf_cstr(&b);
	return (char *)b.p;
}

static void
test_long_lines(void **state)
{
	/* "AUTH CRAM-MD5 " is 14 octets: 12,272 of base64 and CRLF make
	 * 12,288 */
	const size_t at = SMTP_AUTH_LINE_MAX - 14 - 2;
	char *in;

	(void)state;
	assert_int_equal(at % 4, 0);
	in = line_of(EHLO "AUTH CRAM-MD5 ", at, 'A', "\r\nNOOP\r\n");
	const struct tcase limit = { "AUTH line of 12288", in, NULL,
		EHLO_R_AUTH AUTH_OK OK, EHLO_E "AUTH CRAM-MD5 0 len=9204\n",
		&p_implicit };
	run_case(&limit);
	free(in);

	in = line_of(EHLO "AUTH CRAM-MD5 ", at - 1, 'A', "\r\nNOOP\r\n");
	const struct tcase below = { "AUTH line of 12287", in, NULL,
		EHLO_R_AUTH BAD64 "\r\n" OK, EHLO_E "ERROR " BAD64 "\n",
		&p_implicit };
	run_case(&below);
	free(in);

	/* one refusal; the rest of the line is skipped, never run */
	in = line_of(EHLO "AUTH CRAM-MD5 ", at + 1, 'A', "\r\nNOOP\r\n");
	const struct tcase above = { "AUTH line of 12289", in, NULL,
		EHLO_R_AUTH TOO_LONG "\r\n" OK, EHLO_E "ERROR " TOO_LONG "\n",
		&p_implicit };
	run_case(&above);
	free(in);

	in = line_of(EHLO "AUTH CRAM-MD5 ", 3 * at, 'A',
		     "\r\nQUIT\r\nNOOP\r\n");
	const struct tcase far = { "AUTH line of 36832", in, NULL,
		EHLO_R_AUTH TOO_LONG "\r\n221 2.0.0 Bye\r\n",
		EHLO_E "ERROR " TOO_LONG "\nQUIT\n", &p_implicit };
	run_case(&far);
	free(in);

	/* responses: 12,286 octets of text are read (and refused as bad
	 * base64: a multiple of 4 cannot be that long), 12,284 are taken */
	in = line_of(EHLO "AUTH PLAIN\r\n", at + 12, 'A', "\r\nNOOP\r\n");
	const struct tcase r_ok = { "response of 12286", in, NULL,
		EHLO_R_AUTH "334 \r\n" AUTH_BAD OK,
		EHLO_E "AUTH PLAIN 0 -\nAUTH PLAIN 1 len=9213\n", &p_implicit };
	run_case(&r_ok);
	free(in);

	in = line_of(EHLO "AUTH PLAIN\r\n", at + 14, 'A', "\r\nNOOP\r\n");
	const struct tcase r_limit = { "response of 12288", in, NULL,
		EHLO_R_AUTH "334 \r\n" BAD64 "\r\n" OK,
		EHLO_E "AUTH PLAIN 0 -\nAUTH_ABORT PLAIN\nERROR " BAD64 "\n",
		&p_implicit };
	run_case(&r_limit);
	free(in);

	in = line_of(EHLO "AUTH PLAIN\r\n", at + 15, 'A', "\r\nNOOP\r\n");
	const struct tcase r_above = { "response of 12289", in, NULL,
		EHLO_R_AUTH "334 \r\n" TOO_LONG "\r\n" OK,
		EHLO_E "AUTH PLAIN 0 -\nAUTH_ABORT PLAIN\nERROR " TOO_LONG
		"\n", &p_implicit };
	run_case(&r_above);
	free(in);

	/* where AUTH would be refused, its line is an ordinary one */
	in = line_of("AUTH CRAM-MD5 ", 600, 'A', "\r\nNOOP\r\n");
	const struct tcase early = { "long AUTH before EHLO", in, NULL,
		"500 5.5.2 Line too long\r\n" OK,
		"ERROR 500 5.5.2 Line too long\n", &p_implicit };
	run_case(&early);
	free(in);

	in = line_of(EHLO "AUTH CRAM-MD5 ", 600, 'A', "\r\nNOOP\r\n");
	const struct tcase clear = { "long AUTH in clear", in, NULL,
		EHLO_R_TLS "500 5.5.2 Line too long\r\n" OK,
		EHLO_E "ERROR 500 5.5.2 Line too long\n", &p_tls };
	run_case(&clear);
	free(in);

	in = line_of(EHLO MAIL "AUTH CRAM-MD5 ", 600, 'A', "\r\nNOOP\r\n");
	const struct tcase tx = { "long AUTH in a transaction", in, NULL,
		EHLO_R_AUTH MAIL_R "500 5.5.2 Line too long\r\n" OK,
		EHLO_E MAIL_E "ERROR 500 5.5.2 Line too long\n", &p_implicit };
	run_case(&tx);
	free(in);

	/* other commands keep 512 */
	in = line_of(EHLO "NOOP ", 600, 'A', "\r\nNOOP\r\n");
	const struct tcase noop = { "long NOOP", in, NULL,
		EHLO_R_AUTH "500 5.5.2 Line too long\r\n" OK,
		EHLO_E "ERROR 500 5.5.2 Line too long\n", &p_implicit };
	run_case(&noop);
	free(in);
}

/* the longest challenge makes a 334 line of 12,286 octets */
static void
test_long_challenge(void **state)
{
	char *want = line_of(EHLO_R_AUTH "334 ", 0, 'x', "");
	struct buf w;

	(void)state;
	buf_init(&w, 0);
	buf_append_str(&w, want);
	for (size_t i = 0; i < SMTP_AUTH_CHALLENGE_MAX / 3; i++)
		buf_append_str(&w, "Y2Nj");   /* "ccc" */
	buf_append_str(&w, "\r\n" AUTH_OK);
	const struct tcase c = { "longest challenge", EHLO "AUTH X-MAXCH\r\n"
		"\r\n", NULL, buf_cstr(&w),
		EHLO_E "AUTH X-MAXCH 0 -\nAUTH X-MAXCH 1 \"\"\n", &p_implicit };
	run_case(&c);
	assert_int_equal(4 + SMTP_AUTH_CHALLENGE_MAX / 3 * 4 + 2,
			 SMTP_AUTH_LINE_MAX - 2);
	buf_clear(&w);
	free(want);
}

/* a long AUTH line leaves no buffer behind, and AUTH data is wiped */
static void
test_auth_memory(void **state)
{
	struct harness h;
	char *in = line_of(EHLO "AUTH CRAM-MD5 ", 12000, 'A', "\r\n");

	(void)state;
	h_init(&h, &p_implicit);
	h_feed(&h, (const uint8_t *)in, strlen(in));
	assert_int_equal(h.e->big.cap, 0);
	assert_false(h.e->line_big);
	assert_true(smtp_engine_authenticated(h.e));
	/* the short line buffer held its start: wiped */
	for (size_t i = 0; i < sizeof(h.e->line); i++)
		assert_int_equal(h.e->line[i], 0);
	h_feed(&h, (const uint8_t *)"NOOP\r\n", 6);
	assert_false(h.e->secret);
	assert_int_equal(h.e->evstr.len, 0);
	/* an idle session stays small (serve keeps thousands) */
	if (sizeof(struct smtp_engine) + h.e->out.cap + h.e->evstr.cap >=
	    4096)
		fail_msg("idle engine of %zu octets",
			 sizeof(struct smtp_engine) + h.e->out.cap +
			 h.e->evstr.cap);
	h_done(&h);
	h_clear(&h);
	free(in);

	/* a PLAIN line short enough for the line buffer */
	h_init(&h, &p_implicit);
	h_feed(&h, (const uint8_t *)EHLO AUTH_GOOD, strlen(EHLO AUTH_GOOD));
	for (size_t i = 0; i < sizeof(h.e->line); i++)
		assert_int_equal(h.e->line[i], 0);
	h_done(&h);
	h_clear(&h);
}

/* ------------------------------------------------------------------ */
/* the API around the transcripts */

static void
test_commands(void **state)
{
	struct harness h;
	const char *steps[] = {
		EHLO "NOOP\r\nFOO\r\n",
		MAIL RCPT "DATA\r\nline 1\r\nline 2\r\n.\r\n",
		"AUTH LOGIN\r\ndQ==\r\n*\r\n",
		"NOO",
		"P\r\n" MAIL RCPT "BDAT 5 LAST\r\nab\r\nc",
	};
	const uint64_t want[] = { 3, 6, 9, 9, 13 };

	(void)state;
	h_init(&h, &p_implicit);
	assert_int_equal(smtp_engine_commands(h.e), 0);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		h_feed(&h, (const uint8_t *)steps[i], strlen(steps[i]));
		if (smtp_engine_commands(h.e) != want[i])
			fail_msg("step %zu: got %llu commands, want %llu", i,
				 (unsigned long long)smtp_engine_commands(h.e),
				 (unsigned long long)want[i]);
	}
	h_done(&h);
	h_clear(&h);
}

static void
test_authenticated(void **state)
{
	struct harness h;

	(void)state;
	h_init(&h, &p_both);
	assert_false(smtp_engine_authenticated(h.e));
	h_feed(&h, (const uint8_t *)EHLO AUTH_BADPW, strlen(EHLO AUTH_BADPW));
	assert_false(smtp_engine_authenticated(h.e));
	h_feed(&h, (const uint8_t *)AUTH_GOOD, strlen(AUTH_GOOD));
	assert_true(smtp_engine_authenticated(h.e));
	h_feed(&h, (const uint8_t *)"STARTTLS\r\nNOOP\r\n", 16);
	assert_true(h.tls_pending);
	/* waiting for the handshake: no verdict awaited, nothing read */
	assert_false(smtp_engine_waiting(h.e));
	assert_int_equal(smtp_engine_phase(h.e), SMTP_PHASE_COMMAND);
	assert_int_equal(h.dropped, 6);
	h_handshake(&h);
	assert_false(smtp_engine_authenticated(h.e));
	assert_int_equal(h.e->state, SMTP_ST_INIT);
	assert_null(h.e->helo);
	assert_true(h.e->tls);
	h_done(&h);
	h_clear(&h);
}

/* feeds until a verdict is awaited and takes the events; the last one
 * taken is returned */
static struct smtp_event
until_waiting(struct smtp_engine *e, const char *in)
{
	struct smtp_event ev, last = { .kind = SMTP_EV_NONE };
	size_t used, off = 0, n = strlen(in);

	while (!smtp_engine_waiting(e) && off < n) {
		(void)smtp_engine_feed(e, (const uint8_t *)in + off, n - off,
				       &used);
		off += used;
		while (smtp_engine_next(e, &ev))
			last = ev;
	}
	return last;
}

/* the session ends in an exchange: the caller hears SMTP_EV_AUTH_ABORT */
static void
test_close_in_exchange(void **state)
{
	struct smtp_verdict cont = { .kind = SMTP_VERDICT_OK,
		.auth_continue = true,
		.challenge = (const uint8_t *)"Username:", .challenge_len = 9 };
	struct smtp_verdict ok = { .kind = SMTP_VERDICT_OK };
	struct smtp_engine *e;
	struct smtp_event ev;

	(void)state;
	/* after the 334, by timeout */
	e = smtp_engine_new(&p_implicit);
	ev = until_waiting(e, EHLO "AUTH LOGIN\r\n");
	assert_int_equal(ev.kind, SMTP_EV_AUTH);
	smtp_engine_decide(e, &cont);
	assert_false(smtp_engine_next(e, &ev));
	smtp_engine_timeout(e);
	assert_true(smtp_engine_next(e, &ev));
	assert_int_equal(ev.kind, SMTP_EV_AUTH_ABORT);
	assert_string_equal(ev.auth_mech, "LOGIN");
	assert_false(smtp_engine_next(e, &ev));
	assert_non_null(strstr(buf_cstr(smtp_engine_out(e)),
			       "334 VXNlcm5hbWU6\r\n421 4.4.2 " HOST
			       " Timeout, closing\r\n"));
	smtp_engine_free(&e);

	/* while the verdict is awaited, by shutdown: the late verdict is
	 * dropped */
	e = smtp_engine_new(&p_implicit);
	ev = until_waiting(e, EHLO "AUTH PLAIN " P_GOOD "\r\n");
	assert_int_equal(ev.kind, SMTP_EV_AUTH);
	assert_true(smtp_engine_waiting(e));
	smtp_engine_shutdown(e);
	assert_false(smtp_engine_waiting(e));
	assert_true(smtp_engine_next(e, &ev));
	assert_int_equal(ev.kind, SMTP_EV_AUTH_ABORT);
	assert_string_equal(ev.auth_mech, "PLAIN");
	smtp_engine_decide(e, &ok);
	assert_null(strstr(buf_cstr(smtp_engine_out(e)), "235"));
	assert_false(smtp_engine_authenticated(e));
	smtp_engine_free(&e);

	/* no exchange open: no AUTH_ABORT */
	e = smtp_engine_new(&p_implicit);
	ev = until_waiting(e, EHLO "AUTH PLAIN " P_GOOD "\r\n");
	smtp_engine_decide(e, &ok);
	smtp_engine_timeout(e);
	assert_false(smtp_engine_next(e, &ev));
	smtp_engine_free(&e);

	/* freed in the exchange: the caller drops its state itself */
	e = smtp_engine_new(&p_implicit);
	(void)until_waiting(e, EHLO "AUTH LOGIN\r\n");
	smtp_engine_decide(e, &cont);
	smtp_engine_free(&e);
	assert_null(e);
}

static const struct smtp_params p_err1 = {
	.hostname = HOST, .size_max = 10000, .rcpt_max = 5, .errors_max = 1,
	.tls = true, .auth_mechs = MECHS,
};

/* errors_max reached by a response: one AUTH_ABORT, before the 421 */
static const struct tcase exchange_close_cases[] = {
	{ "cancel at errors_max", EHLO "AUTH LOGIN\r\n*\r\n", NULL,
	  EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n" CANCELED "\r\n" CLOSE_ERR "\r\n",
	  EHLO_E "AUTH LOGIN 0 -\nAUTH_ABORT LOGIN\nERROR " CANCELED
	  "\nERROR " CLOSE_ERR "\n", &p_err1 },
	{ "long response at errors_max", NULL, NULL, NULL, NULL, &p_err1 },
};

static void
test_exchange_close(void **state)
{
	(void)state;
	run_case(&exchange_close_cases[0]);
	char *in = line_of(EHLO "AUTH LOGIN\r\n", SMTP_AUTH_LINE_MAX, 'A',
			   "\r\nNOOP\r\n");
	struct tcase c = exchange_close_cases[1];
	c.in = in;
	c.out = EHLO_R_AUTH "334 VXNlcm5hbWU6\r\n" TOO_LONG "\r\n" CLOSE_ERR
		"\r\n";
	c.events = EHLO_E "AUTH LOGIN 0 -\nAUTH_ABORT LOGIN\nERROR " TOO_LONG
		"\nERROR " CLOSE_ERR "\n";
	run_case(&c);
	free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_auth_failures),
		cmocka_unit_test(test_junk),
		cmocka_unit_test(test_junk_default),
		cmocka_unit_test(test_harvest),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_long_challenge),
		cmocka_unit_test(test_auth_memory),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_authenticated),
		cmocka_unit_test(test_close_in_exchange),
		cmocka_unit_test(test_exchange_close),
	};
	return cmocka_run_group_tests_name("smtp_auth", tests, NULL, NULL);
}

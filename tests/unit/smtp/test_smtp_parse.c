/* SPDX-License-Identifier: MIT */
/*
 * Tests of the SMTP argument syntax: paths (RFC 5321 §4.1.2 with RFC 6531
 * UTF-8), ESMTP parameters (RFC 1870, 3461, 6152, 6531), xtext and UTF-8.
 * Tables of {input, want}; failures say "got X, want Y".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_int.h"

/* ------------------------------------------------------------------ */
/* paths */

struct path_case {
	const char *in;
	unsigned flags;
	enum smtp_path_result want;
	const char *addr;      /* when OK */
	const char *rest;      /* what follows the path, when OK */
	bool non_ascii;
};

#define N SMTP_PATH_NULL_OK
#define P SMTP_PATH_POSTMASTER
#define OKP SMTP_PATH_OK
#define SYN SMTP_PATH_SYNTAX
#define BAD SMTP_PATH_MAILBOX

static const struct path_case path_cases[] = {
	{ "<a@b.test>", 0, OKP, "a@b.test", "", false },
	{ "<a@b.test> SIZE=1", 0, OKP, "a@b.test", " SIZE=1", false },
	{ "<>", N, OKP, "", "", false },
	{ "<>", 0, BAD, NULL, NULL, false },
	{ "<> x", N, OKP, "", " x", false },
	{ "<Postmaster>", P, OKP, "Postmaster", "", false },
	{ "<pOsTmAsTeR>", P, OKP, "Postmaster", "", false },
	{ "<Postmaster>", 0, BAD, NULL, NULL, false },
	{ "<Postmaster >", P, BAD, NULL, NULL, false },
	{ "<postmaster@b.test>", P, OKP, "postmaster@b.test", "", false },
	{ "<@r1.test,@r2.test:a@b.test>", 0, OKP, "a@b.test", "", false },
	{ "<@r1.test:a@b.test>", 0, OKP, "a@b.test", "", false },
	{ "<@r1.test,r2.test:a@b.test>", 0, BAD, NULL, NULL, false },
	{ "<@:a@b.test>", 0, BAD, NULL, NULL, false },
	{ "<@r1.test:>", 0, BAD, NULL, NULL, false },
	{ "<@r1.test,@r2.test>", 0, BAD, NULL, NULL, false },
	{ "<a.b.c@d.e.f>", 0, OKP, "a.b.c@d.e.f", "", false },
	{ "<!#$%&'*+-/=?^_`{|}~@b.test>", 0, OKP,
	  "!#$%&'*+-/=?^_`{|}~@b.test", "", false },
	{ "<\"a b\"@c.test>", 0, OKP, "\"a b\"@c.test", "", false },
	{ "<\"a>b\"@c.test>", 0, OKP, "\"a>b\"@c.test", "", false },
	{ "<\"a\\\\b\"@c.test>", 0, OKP, "\"a\\\\b\"@c.test", "", false },
	{ "<\"a\\\"@c.test>", 0, BAD, NULL, NULL, false },
	{ "<\"a\"b@c.test>", 0, BAD, NULL, NULL, false },
	{ "<a@1.2.3.4>", 0, OKP, "a@1.2.3.4", "", false },
	{ "<a@[1.2.3.4]>", 0, OKP, "a@[1.2.3.4]", "", false },
	{ "<a@[255.255.255.255]>", 0, OKP, "a@[255.255.255.255]", "", false },
	{ "<a@[256.1.1.1]>", 0, BAD, NULL, NULL, false },
	{ "<a@[1.2.3.4.5]>", 0, BAD, NULL, NULL, false },
	{ "<a@[1.2.3.]>", 0, BAD, NULL, NULL, false },
	{ "<a@[0001.2.3.4]>", 0, BAD, NULL, NULL, false },
	{ "<a@[]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:::]>", 0, OKP, "a@[IPv6:::]", "", false },
	{ "<a@[IPv6:::1]>", 0, OKP, "a@[IPv6:::1]", "", false },
	{ "<a@[ipv6:fe80::1]>", 0, OKP, "a@[ipv6:fe80::1]", "", false },
	{ "<a@[IPv6:1::]>", 0, OKP, "a@[IPv6:1::]", "", false },
	{ "<a@[IPv6:1:2:3:4:5:6:7:8]>", 0, OKP, "a@[IPv6:1:2:3:4:5:6:7:8]", "",
	  false },
	{ "<a@[IPv6:1:2:3::6:7:8]>", 0, OKP, "a@[IPv6:1:2:3::6:7:8]", "",
	  false },
	{ "<a@[IPv6:1:2:3:4::6:7:8]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:1:2:3:4:5:6:1.2.3.4]>", 0, OKP,
	  "a@[IPv6:1:2:3:4:5:6:1.2.3.4]", "", false },
	{ "<a@[IPv6:1:2:3:4:5:1.2.3.4]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:1:2::3:4:1.2.3.4]>", 0, OKP, "a@[IPv6:1:2::3:4:1.2.3.4]",
	  "", false },
	{ "<a@[IPv6:1:2:3::4:5:1.2.3.4]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:1.2.3.4]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:::1.2.3.4]>", 0, OKP, "a@[IPv6:::1.2.3.4]", "", false },
	{ "<a@[IPv6::1]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:1:]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:1:::2]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:g::1]>", 0, BAD, NULL, NULL, false },
	{ "<a@[IPv6:]>", 0, BAD, NULL, NULL, false },
	{ "<a@[tag:x!y]>", 0, OKP, "a@[tag:x!y]", "", false },
	{ "<a@[tag:]>", 0, BAD, NULL, NULL, false },
	{ "<a@[:x]>", 0, BAD, NULL, NULL, false },
	{ "<a@[t_g:x]>", 0, BAD, NULL, NULL, false },
	{ "<a@[tag:x\\y]>", 0, BAD, NULL, NULL, false },
	{ "<a@b.test", 0, SYN, NULL, NULL, false },
	{ "a@b.test>", 0, SYN, NULL, NULL, false },
	{ "", 0, SYN, NULL, NULL, false },
	{ "<", 0, SYN, NULL, NULL, false },
	{ "<a>", 0, BAD, NULL, NULL, false },
	{ "<a@>", 0, BAD, NULL, NULL, false },
	{ "<@b.test>", 0, BAD, NULL, NULL, false },
	{ "<a@b.test@c.test>", 0, BAD, NULL, NULL, false },
	{ "<a@b-.test>", 0, BAD, NULL, NULL, false },
	{ "<a@-b.test>", 0, BAD, NULL, NULL, false },
	{ "<a@b--c.test>", 0, OKP, "a@b--c.test", "", false },
	{ "<a@b.test.>", 0, BAD, NULL, NULL, false },
	{ "<a@b.test.>", SMTP_PATH_TRAILING_DOT, OKP, "a@b.test.", "", false },
	{ "<a@b.test..>", SMTP_PATH_TRAILING_DOT, BAD, NULL, NULL, false },
	{ "<a@[127.0.0.1].>", SMTP_PATH_TRAILING_DOT, BAD, NULL, NULL, false },
	{ "<a@.>", SMTP_PATH_TRAILING_DOT, BAD, NULL, NULL, false },
	{ "<a@.b.test>", 0, BAD, NULL, NULL, false },
	{ "<a(b)@c.test>", 0, BAD, NULL, NULL, false },
	{ "<a@b.test >", 0, BAD, NULL, NULL, false },
	{ "< a@b.test>", 0, BAD, NULL, NULL, false },
	/* RFC 6531 */
	{ "<\xc3\xa9@b.test>", 0, OKP, "\xc3\xa9@b.test", "", true },
	{ "<a@\xc3\xa9.test>", 0, OKP, "a@\xc3\xa9.test", "", true },
	{ "<\"\xc3\xa9 x\"@b.test>", 0, OKP, "\"\xc3\xa9 x\"@b.test", "", true },
	{ "<\xf0\x9f\x98\x80@b.test>", 0, OKP, "\xf0\x9f\x98\x80@b.test", "",
	  true },
	{ "<\xc3@b.test>", 0, BAD, NULL, NULL, false },
	{ "<\xe0\x80\x80@b.test>", 0, BAD, NULL, NULL, false },
	{ "<\xf4\x90\x80\x80@b.test>", 0, BAD, NULL, NULL, false },
	{ "<\xf5\x80\x80\x80@b.test>", 0, BAD, NULL, NULL, false },
	{ "<a@[\xc3\xa9]>", 0, BAD, NULL, NULL, false },
	{ "<@\xc3\xa9.test:a@b.test>", 0, OKP, "a@b.test", "", false },
};

static void
test_paths(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct smtp_path p;
		enum smtp_path_result r = smtp_parse_path(c->in, c->flags, &p);

		if (r != c->want)
			fail_msg("%s: got result %d, want %d", c->in, r, c->want);
		if (r != SMTP_PATH_OK)
			continue;
		if (p.len != strlen(c->addr) ||
		    memcmp(p.addr, c->addr, p.len) != 0)
			fail_msg("%s: got address %.*s, want %s", c->in,
				 (int)p.len, p.addr, c->addr);
		if (strcmp(p.end, c->rest) != 0)
			fail_msg("%s: got rest \"%s\", want \"%s\"", c->in, p.end,
				 c->rest);
		if (p.non_ascii != c->non_ascii)
			fail_msg("%s: got non_ascii %d, want %d", c->in,
				 p.non_ascii, c->non_ascii);
	}
}

/* ------------------------------------------------------------------ */
/* parameters */

struct param_case {
	const char *in;
	bool rcpt;
	bool utf8;
	unsigned code;          /* 0: accepted */
	const char *text;       /* refusal text */
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	enum smtp_dsn_ret ret;
	const char *envid;
	unsigned notify;
	const char *orcpt;
};

static const struct param_case param_cases[] = {
	{ "", false, false, 0, NULL, 0, 0, false, 0, NULL, 0, NULL },
	{ "   ", false, false, 0, NULL, 0, 0, false, 0, NULL, 0, NULL },
	{ "SIZE=0", false, false, 0, NULL, 0, 0, false, 0, NULL, 0, NULL },
	{ "SIZE=12345", false, false, 0, NULL, 12345, 0, false, 0, NULL, 0,
	  NULL },
	{ "SIZE=18446744073709551615", false, false, 0, NULL, UINT64_MAX, 0,
	  false, 0, NULL, 0, NULL },
	{ "SIZE=18446744073709551616", false, false, 0, NULL, UINT64_MAX, 0,
	  false, 0, NULL, 0, NULL },
	{ "SIZE=00000000000000000001", false, false, 0, NULL, 1, 0, false, 0,
	  NULL, 0, NULL },
	{ "SIZE=000000000000000000001", false, false, 501,
	  "Bad SIZE parameter syntax", 0, 0, false, 0, NULL, 0, NULL },
	/* the same value twice is accepted (smtplib sends "size=N SIZE=N") */
	{ "SIZE=1 SIZE=1", false, false, 0, NULL, 1, 0, false, 0, NULL, 0,
	  NULL },
	{ "Size=1 size=1", false, false, 0, NULL, 1, 0, false, 0, NULL, 0,
	  NULL },
	{ "BODY=8bitmime BODY=8BITMIME SMTPUTF8 SMTPUTF8", false, false, 0,
	  NULL, 0, SMTP_BODY_8BITMIME, true, 0, NULL, 0, NULL },
	{ "SIZE=1 SIZE=2", false, false, 501, "Duplicate parameter", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "BODY=7BIT BODY=8BITMIME", false, false, 501, "Duplicate parameter",
	  0, 0, false, 0, NULL, 0, NULL },
	{ "NOTIFY=NEVER NOTIFY=never", true, false, 0, NULL, 0, 0, false, 0,
	  NULL, SMTP_NOTIFY_NEVER, NULL },
	{ "NOTIFY=NEVER NOTIFY=SUCCESS", true, false, 501,
	  "Duplicate parameter", 0, 0, false, 0, NULL, 0, NULL },
	{ "BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+3D", false, false, 0, NULL,
	  0, SMTP_BODY_8BITMIME, true, SMTP_RET_HDRS, "QQ+3D", 0, NULL },
	{ "ENVID=a+2b", false, false, 0, NULL, 0, 0, false, 0, "a+2b", 0, NULL },
	{ "ENVID=a+", false, false, 501, "Bad ENVID parameter syntax", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "ENVID", false, false, 501, "Bad ENVID parameter syntax", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "RET=", false, false, 501, "Bad parameter syntax", 0, 0, false, 0,
	  NULL, 0, NULL },
	{ "X-FOO", false, false, 555, "Unsupported parameter", 0, 0, false, 0,
	  NULL, 0, NULL },
	{ "NOTIFY=NEVER", false, false, 555, "Unsupported parameter", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "SIZE=1\tBODY=7BIT", false, false, 501, "Bad parameter syntax", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "NOTIFY=FAILURE", true, false, 0, NULL, 0, 0, false, 0, NULL,
	  SMTP_NOTIFY_FAILURE, NULL },
	{ "NOTIFY=Never", true, false, 0, NULL, 0, 0, false, 0, NULL,
	  SMTP_NOTIFY_NEVER, NULL },
	{ "NOTIFY=SUCCESS,NEVER", true, false, 501,
	  "Bad NOTIFY parameter syntax", 0, 0, false, 0, NULL, 0, NULL },
	{ "NOTIFY=,SUCCESS", true, false, 501, "Bad NOTIFY parameter syntax", 0,
	  0, false, 0, NULL, 0, NULL },
	{ "ORCPT=rfc822;a+40b.test NOTIFY=DELAY", true, false, 0, NULL, 0, 0,
	  false, 0, NULL, SMTP_NOTIFY_DELAY, "rfc822;a+40b.test" },
	{ "ORCPT=utf-8;\xc3\xa9", true, true, 0, NULL, 0, 0, false, 0, NULL, 0,
	  "utf-8;\xc3\xa9" },
	{ "ORCPT=utf-8;\xc3\xa9", true, false, 501, "Bad parameter syntax", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "ORCPT=utf-8;\xc3", true, true, 501, "Bad parameter syntax", 0, 0,
	  false, 0, NULL, 0, NULL },
	{ "SIZE=1", true, false, 555, "Unsupported parameter", 0, 0, false, 0,
	  NULL, 0, NULL },
};

static void
test_params(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]);
	     i++) {
		const struct param_case *c = &param_cases[i];
		struct smtp_esmtp out;
		const struct smtp_rej *rej;
		char *s = xstrdup(c->in);

		memset(&out, 0, sizeof(out));
		out.utf8_values = c->utf8;
		rej = c->rcpt ? smtp_parse_rcpt_params(s, &out) :
				smtp_parse_mail_params(s, &out);
		if (c->code == 0 && rej != NULL)
			fail_msg("%s: got %u %s, want accepted", c->in, rej->code,
				 rej->text);
		if (c->code != 0) {
			if (rej == NULL)
				fail_msg("%s: got accepted, want %u", c->in,
					 c->code);
			if (rej->code != c->code || strcmp(rej->text, c->text) != 0)
				fail_msg("%s: got %u %s, want %u %s", c->in,
					 rej->code, rej->text, c->code, c->text);
			assert_string_equal(rej->enhanced, "5.5.4");
			assert_true(rej->counts);
			free(s);
			continue;
		}
		if (out.mail.size != c->size)
			fail_msg("%s: got size %llu, want %llu", c->in,
				 (unsigned long long)out.mail.size,
				 (unsigned long long)c->size);
		assert_int_equal(out.mail.body, c->body);
		assert_int_equal(out.mail.smtputf8, c->smtputf8);
		assert_int_equal(out.mail.ret, c->ret);
		if (c->envid == NULL)
			assert_null(out.mail.envid);
		else
			assert_string_equal(out.mail.envid, c->envid);
		assert_int_equal(out.rcpt.notify, c->notify);
		if (c->orcpt == NULL)
			assert_null(out.rcpt.orcpt);
		else
			assert_string_equal(out.rcpt.orcpt, c->orcpt);
		free(s);
	}
}

/* ------------------------------------------------------------------ */
/* xtext and UTF-8 */

static void
test_xtext(void **state)
{
	static const struct {
		const char *in;
		size_t max;
		bool utf8, want;
	} cases[] = {
		{ "abc", 10, false, true },
		{ "", 10, false, false },
		{ "a+2B", 10, false, true },
		{ "a+2b", 10, false, true },
		{ "a+2", 10, false, false },
		{ "a+", 10, false, false },
		{ "a+G0", 10, false, false },
		{ "a=b", 10, false, false },
		{ "a b", 10, false, false },
		{ "a\x7f", 10, false, false },
		{ "abc", 3, false, true },
		{ "abcd", 3, false, false },
		{ "\xc3\xa9", 10, false, false },
		{ "\xc3\xa9", 10, true, true },
		{ "!~", 10, false, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = smtp_xtext_ok(cases[i].in, cases[i].max,
					 cases[i].utf8);
		if (got != cases[i].want)
			fail_msg("xtext \"%s\" max %zu: got %d, want %d",
				 cases[i].in, cases[i].max, got, cases[i].want);
	}
}

static void
test_utf8(void **state)
{
	static const struct {
		const char *in;
		size_t want;
	} cases[] = {
		{ "a", 0 },
		{ "", 0 },
		{ "\xc2\x80", 2 },
		{ "\xdf\xbf", 2 },
		{ "\xc1\xbf", 0 },          /* overlong */
		{ "\xc2", 0 },              /* cut short */
		{ "\xc2\xc0", 0 },
		{ "\xe0\xa0\x80", 3 },
		{ "\xe0\x9f\xbf", 0 },      /* overlong */
		{ "\xed\x9f\xbf", 3 },
		{ "\xed\xa0\x80", 0 },      /* surrogate */
		{ "\xef\xbf\xbf", 3 },
		{ "\xf0\x90\x80\x80", 4 },
		{ "\xf0\x8f\xbf\xbf", 0 },  /* overlong */
		{ "\xf4\x8f\xbf\xbf", 4 },
		{ "\xf4\x90\x80\x80", 0 },  /* past U+10FFFF */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\x80", 0 },
		{ "\xff", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = smtp_utf8_len((const unsigned char *)cases[i].in);
		if (got != cases[i].want)
			fail_msg("utf8 case %zu: got %zu, want %zu", i, got,
				 cases[i].want);
	}
}

/* ------------------------------------------------------------------ */
/* reply lines */

static void
test_reply_fmt(void **state)
{
	static const struct {
		unsigned code;
		char sep;
		const char *enh, *text, *want;
	} cases[] = {
		{ 250, ' ', "2.0.0", "Ok", "250 2.0.0 Ok" },
		{ 250, '-', NULL, "PIPELINING", "250-PIPELINING" },
		{ 550, ' ', "5.1.1", "a\r\nb\x01\xc3\xa9", "550 5.1.1 a??b???" },
		{ 250, ' ', "2.0.0", "", "250 2.0.0" },
		{ 250, ' ', "2.0.0", NULL, "250 2.0.0" },
		{ 421, ' ', "4 7", "x", "421 4?7 x" },
	};
	char line[SMTP_REPLY_LINE_MAX];
	char big[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = smtp_reply_fmt(line, cases[i].code, cases[i].sep,
					  cases[i].enh, cases[i].text);
		if (strcmp(line, cases[i].want) != 0 || n != strlen(line))
			fail_msg("reply %zu: got \"%s\", want \"%s\"", i, line,
				 cases[i].want);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(smtp_reply_fmt(line, 250, ' ', "2.0.0", big),
			 SMTP_REPLY_LINE_MAX - 2);
	assert_int_equal(smtp_reply_fmt(line, 250, ' ', big, big),
			 SMTP_REPLY_LINE_MAX - 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_reply_fmt),
	};
	return cmocka_run_group_tests_name("smtp_parse", tests, NULL, NULL);
}

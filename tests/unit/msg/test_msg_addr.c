/* SPDX-License-Identifier: MIT */
/*
 * Tests of msg_addr_list_parse(): the RFC 5322 §3.4 and A.1 examples
 * (display names, groups, comments, quoted strings, folding), the §4.4
 * obsolete forms, the SMTP form of each address, and the errors (which
 * leave the list as it was).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg/msg.h"

struct ok_case {
	const char *in;
	const char *want;          /* the addresses joined by " | " */
};

static const struct ok_case ok_cases[] = {
	{ "", "" },
	{ "  (only a comment) ", "" },
	{ "alice@example.test", "alice@example.test" },
	{ "Alice <alice@example.test>", "alice@example.test" },
	{ "\"Joe Q. Public\" <john.q.public@example.com>",
	  "john.q.public@example.com" },
	{ "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
	  "mary@x.test | jdoe@example.org | one@y.test" },
	{ "<boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
	  "boss@nil.test | sysservices@example.net" },
	/* RFC 5322 A.1.3 group and A.5 comments */
	{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	  "c@a.test | joe@where.test | jdoe@one.test" },
	{ "Undisclosed recipients:;", "" },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	  "pete@silly.test" },
	{ "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	  "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)",
	  "c@public.example | joe@example.org | jdoe@one.test" },
	/* quoted local parts: SMTP form */
	{ "\"john doe\"@example.test", "\"john doe\"@example.test" },
	{ "\"alice\"@example.test", "alice@example.test" },
	{ "\"a\\\"b\"@x.test", "\"a\\\"b\"@x.test" },
	{ "\"fold\r\n ed\"@x.test", "\"fold ed\"@x.test" },
	/* §4.4 obsolete forms */
	{ "a . b @ example . test", "a.b@example.test" },
	{ "<@r1.test,@r2.test:c@d.test>", "c@d.test" },
	{ "a@x.test,, ,b@y.test,", "a@x.test | b@y.test" },
	{ "John Q. Public <jqp@x.test>", "jqp@x.test" },
	/* literals, bare names, UTF-8 (RFC 6532) */
	{ "x@[127.0.0.1], y@[IPv6:::1]", "x@[127.0.0.1] | y@[IPv6:::1]" },
	{ "root, postmaster (admin)", "root | postmaster" },
	{ "<root>", "root" },
	{ "J\xc3\xbcrgen <j\xc3\xbc@m\xc3\xbcller.test>",
	  "j\xc3\xbc@m\xc3\xbcller.test" },
	/* leniency: the address repeated as the display name, a group
	 * left open at the end */
	{ "a@b.test <a@b.test>", "a@b.test" },
	{ "team: a@x.test, b@y.test", "a@x.test | b@y.test" },
};

struct bad_case {
	const char *in;
	const char *error;         /* a part of the error text */
};

static const struct bad_case bad_cases[] = {
	{ "\"unterminated@x.test", "unterminated quoted string" },
	{ "a@x.test (open comment", "unterminated comment" },
	{ "<a@x.test", "'>' expected" },
	{ "a@x.test>", "'>' without '<'" },
	{ "<>", "empty angle address" },
	{ "a@", "domain expected" },
	{ "@x.test", "local part expected" },
	{ "a..b@x.test", "bad local part" },
	{ "two words@x.test", "bad local part" },
	{ "a@x.test b@y.test", "',' expected" },
	{ "a@x.test;", "';' outside a group" },
	{ "g: h: a@x.test;;", "group inside a group" },
	{ "x@[1.2.3.4", "unterminated domain literal" },
	{ "x@[1[2]", "bad domain literal" },
	{ "a@x..test", "domain expected" },
	{ ". , a@x.test", "stray '.'" },
	{ "a\x01@x.test", "',' expected" },
};

static void
joined(const struct msg_addr_list *l, size_t from, char *out, size_t outsz)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = from; i < l->n; i++) {
		int n = snprintf(out + o, outsz - o, "%s%s",
				 i > from ? " | " : "", l->addrs[i]);
		assert_true(n >= 0 && (size_t)n < outsz - o);
		o += (size_t)n;
	}
}

static void
test_ok(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(ok_cases) / sizeof(ok_cases[0]); k++) {
		const struct ok_case *c = &ok_cases[k];
		struct msg_addr_list l = { 0 };
		const char *err = NULL;
		char got[1024];
		int r;

		/* appended after what the list holds already */
		l.addrs = calloc(1, sizeof(*l.addrs));
		l.addrs[0] = strdup("first@x.test");
		l.n = 1;
		r = msg_addr_list_parse((const uint8_t *)c->in, strlen(c->in),
					&l, &err);
		if (r != 0)
			fail_msg("%s: got -1 (%s), want 0", c->in, err);
		assert_string_equal(l.addrs[0], "first@x.test");
		joined(&l, 1, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->in, got,
				 c->want);
		msg_addr_list_clear(&l);
		assert_null(l.addrs);
		assert_int_equal(l.n, 0);
	}
}

static void
test_bad(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(bad_cases) / sizeof(bad_cases[0]); k++) {
		const struct bad_case *c = &bad_cases[k];
		struct msg_addr_list l = { 0 };
		const char *err = NULL;
		int r;

		l.addrs = calloc(1, sizeof(*l.addrs));
		l.addrs[0] = strdup("first@x.test");
		l.n = 1;
		r = msg_addr_list_parse((const uint8_t *)c->in, strlen(c->in),
					&l, &err);
		if (r != -1)
			fail_msg("%s: got %d, want -1", c->in, r);
		if (err == NULL || strstr(err, c->error) == NULL)
			fail_msg("%s: got error \"%s\", want \"%s\"", c->in,
				 err != NULL ? err : "(none)", c->error);
		assert_int_equal(l.n, 1);
		assert_string_equal(l.addrs[0], "first@x.test");
		msg_addr_list_clear(&l);
	}
}

/* an empty list that fails stays empty and owns nothing */
static void
test_bad_on_empty_list(void **state)
{
	struct msg_addr_list l = { 0 };
	const char *err = NULL;
	static const char in[] = "a@x.test, \"open";

	(void)state;
	assert_int_equal(msg_addr_list_parse((const uint8_t *)in,
					     sizeof(in) - 1, &l, &err), -1);
	assert_int_equal(l.n, 0);
	assert_null(l.addrs);
}

/* bytes, not text: a NUL ends nothing and is refused */
static void
test_nul(void **state)
{
	struct msg_addr_list l = { 0 };
	const char *err = NULL;
	static const uint8_t in[] = { 'a', '@', 'x', 0, 'y' };
	static const uint8_t q[] = { '"', 'a', 0, '"', '@', 'x' };

	(void)state;
	assert_int_equal(msg_addr_list_parse(in, sizeof(in), &l, &err), -1);
	assert_int_equal(msg_addr_list_parse(q, sizeof(q), &l, &err), -1);
	assert_string_equal(err, "NUL in a quoted string");
	assert_int_equal(l.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_bad_on_empty_list),
		cmocka_unit_test(test_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

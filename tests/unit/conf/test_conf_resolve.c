/* SPDX-License-Identifier: MIT */
/*
 * conf_resolve() and conf_is_local_domain(): local parts and domains
 * without regard to case, postmaster, aliases expanded recursively with
 * duplicates removed and loops cut, remote-only expansions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"

#include "unit_check.h"

static struct tern_conf *
load(const char *text)
{
	struct tern_conf *conf;
	char *err;

	if (conf_parse("t.conf", text, strlen(text), &conf, &err) < 0)
		fail_msg("parse: %s", err);
	return conf;
}

/* "r:user,user" */
static char *
resolve(const struct tern_conf *conf, const char *address)
{
	const struct conf_user **users = NULL;
	size_t n = 99;
	struct buf b;
	char *s;
	int r = conf_resolve(conf, address, &users, &n);

	buf_init(&b, 0);
	buf_printf(&b, "%d:", r);
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i > 0 ? "," : "", users[i]->name);
	if (r != 1 && (users != NULL || n != 0))
		buf_printf(&b, " (users not cleared)");
	free(users);
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

struct resolve_case {
	const char *address;
	const char *want;
};

static const char config[] =
	"domain = example.org\n"
	"domain = Example.NET\n"
	"user = alice\n"
	"user = bob\n"
	"user = carol\n"
	"user = d.e+f\n"
	"alias = team: alice, bob, Alice, bob@example.net\n"
	"alias = all: team, carol, alice@EXAMPLE.org, team\n"
	"alias = ext: someone@elsewhere.org\n"
	"alias = ext2: ext, other@elsewhere.org\n"
	"alias = mixed: ext, bob\n"
	"alias = loop1: loop2, carol\n"
	"alias = loop2: loop1\n"
	"alias = self: self, bob\n"
	"alias = pm: postmaster\n"
	"alias = diamond: l, r\n"
	"alias = l: bottom\n"
	"alias = r: bottom\n"
	"alias = bottom: carol, alice\n";

static const struct resolve_case cases[] = {
	{ "alice@example.org", "1:alice" },
	{ "ALICE@EXAMPLE.ORG", "1:alice" },
	{ "Alice@example.net", "1:alice" },
	{ "<alice@example.org>", "1:alice" },
	{ "d.e+f@example.org", "1:d.e+f" },
	{ "D.E+F@example.org", "1:d.e+f" },
	/* no subaddressing */
	{ "alice+tag@example.org", "0:" },
	{ "alice@other.org", "0:" },
	{ "alice@localhost", "0:" },
	{ "alice@example.org.", "0:" },
	{ "alice@sub.example.org", "0:" },
	{ "alice@[192.0.2.1]", "0:" },
	{ "nobody@example.org", "0:" },
	{ "alice", "0:" },
	{ "", "0:" },
	{ "<>", "0:" },
	{ "@example.org", "0:" },
	{ "alice@", "0:" },
	{ "alice@@example.org", "0:" },
	/* a quoted local part never matches, even when it spells a user */
	{ "\"alice\"@example.org", "0:" },
	{ "\"a@b\"@example.org", "0:" },
	{ "\"alice bob\"@example.org", "0:" },
	/* aliases: recursive, deduplicated, in first-reached order */
	{ "team@example.org", "1:alice,bob" },
	{ "TEAM@example.net", "1:alice,bob" },
	{ "all@example.org", "1:alice,bob,carol" },
	{ "diamond@example.org", "1:carol,alice" },
	{ "mixed@example.org", "1:bob" },
	{ "ext@example.org", "-1:" },
	{ "ext2@example.org", "-1:" },
	/* loops are cut */
	{ "loop1@example.org", "1:carol" },
	{ "loop2@example.org", "1:carol" },
	{ "self@example.org", "1:bob" },
	/* RFC 5321 §4.5.1: postmaster, here the first user */
	{ "postmaster@example.org", "1:alice" },
	{ "PostMaster@Example.Net", "1:alice" },
	{ "postmaster", "1:alice" },
	{ "POSTMASTER", "1:alice" },
	{ "<Postmaster>", "1:alice" },
	{ "postmaster@other.org", "0:" },
	{ "pm@example.org", "1:alice" },
	{ "postmasters", "0:" },
};

static void
test_resolve(void **state)
{
	struct tern_conf *conf = load(config);

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = resolve(conf, cases[i].address);
		CHECK(strcmp(got, cases[i].want) == 0, "%s: got %s, want %s",
		      cases[i].address, got, cases[i].want);
		free(got);
	}
	conf_free(&conf);
	assert_int_equal(failures, 0);
}

/* postmaster as a user or an alias wins over the first user */
static void
test_postmaster(void **state)
{
	static const struct {
		const char *text, *address, *want;
	} pm[] = {
		{ "user = a\nuser = b\nalias = postmaster: b", "postmaster",
		  "1:b" },
		{ "user = a\nuser = b\nalias = postmaster: b",
		  "postmaster@localhost", "1:b" },
		{ "user = a\nuser = postmaster", "Postmaster", "1:postmaster" },
		{ "user = a\nalias = postmaster: x@remote.org", "postmaster",
		  "-1:" },
		{ "user = a\nalias = postmaster: a, x@remote.org",
		  "postmaster@LOCALHOST", "1:a" },
		{ "user = z\nuser = a", "postmaster", "1:z" },
		{ "user = z\nuser = a\ndomain = x.org", "postmaster@localhost",
		  "0:" },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(pm) / sizeof(pm[0]); i++) {
		struct tern_conf *conf = load(pm[i].text);
		char *got = resolve(conf, pm[i].address);
		CHECK(strcmp(got, pm[i].want) == 0, "case %zu %s: got %s, "
		      "want %s", i, pm[i].address, got, pm[i].want);
		free(got);
		conf_free(&conf);
	}
	assert_int_equal(failures, 0);
}

/* the embedded default configuration: demo@localhost and postmaster */
static void
test_resolve_defaults(void **state)
{
	struct tern_conf *conf = load(conf_default_text());
	char *got;

	(void)state;
	got = resolve(conf, "demo@localhost");
	assert_string_equal(got, "1:demo");
	free(got);
	got = resolve(conf, "postmaster@localhost");
	assert_string_equal(got, "1:demo");
	free(got);
	got = resolve(conf, "demo@example.org");
	assert_string_equal(got, "0:");
	free(got);
	conf_free(&conf);
}

static void
test_local_domain(void **state)
{
	static const struct {
		const char *domain;
		bool want;
	} cases_d[] = {
		{ "example.org", true },
		{ "EXAMPLE.ORG", true },
		{ "example.net", true },
		{ "Example.Net", true },
		{ "example.com", false },
		{ "localhost", false },
		{ "example.org.", false },
		{ "xexample.org", false },
		{ "example.or", false },
		{ "", false },
	};
	struct tern_conf *conf = load(config);

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases_d) / sizeof(cases_d[0]); i++) {
		bool got = conf_is_local_domain(conf, cases_d[i].domain);
		CHECK(got == cases_d[i].want, "%s: got %d, want %d",
		      cases_d[i].domain, got, cases_d[i].want);
	}
	conf_free(&conf);
	assert_int_equal(failures, 0);
}

/* a wide alias tree: every user once, whatever the fan-out */
static void
test_wide(void **state)
{
	struct buf b;
	struct tern_conf *conf;
	const struct conf_user **users;
	size_t n;

	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < 50; i++)
		buf_printf(&b, "user = u%d\n", i);
	for (int i = 0; i < 10; i++) {
		buf_printf(&b, "alias = g%d:", i);
		for (int j = 0; j < 50; j++)
			buf_printf(&b, " u%d", j);
		for (int j = 0; j < 10; j++)
			buf_printf(&b, " g%d", j);
		buf_printf(&b, "\n");
	}
	conf = load(buf_cstr(&b));
	assert_int_equal(conf_resolve(conf, "g3@localhost", &users, &n), 1);
	assert_int_equal(n, 50);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(users[i], &conf->users[i]);
	free(users);
	conf_free(&conf);
	buf_clear(&b);
}

/* a configuration built by hand has no index: lookups still work */
static void
test_by_hand(void **state)
{
	struct conf_user users[2] = {
		{ .name = (char *)"alice", .maildir = (char *)"/m/a" },
		{ .name = (char *)"bob", .maildir = (char *)"/m/b" },
	};
	char *targets[] = { (char *)"bob", (char *)"x@remote.org" };
	struct conf_alias aliases[1] = {
		{ .name = (char *)"team", .targets = targets, .ntargets = 2 },
	};
	char *domains[] = { (char *)"example.org" };
	struct tern_conf conf = {
		.users = users, .nusers = 2,
		.aliases = aliases, .naliases = 1,
		.domains = domains, .ndomains = 1,
	};
	char *got;

	(void)state;
	got = resolve(&conf, "Bob@example.org");
	assert_string_equal(got, "1:bob");
	free(got);
	got = resolve(&conf, "team@example.org");
	assert_string_equal(got, "1:bob");
	free(got);
	got = resolve(&conf, "postmaster");
	assert_string_equal(got, "1:alice");
	free(got);
	got = resolve(&conf, "carol@example.org");
	assert_string_equal(got, "0:");
	free(got);
}

/* a user added to a parsed configuration is found too */
static void
test_added_later(void **state)
{
	struct tern_conf *conf = load("user = alice\n");
	char *got;

	(void)state;
	conf->users = xreallocarray(conf->users, 2, sizeof(*conf->users));
	conf->users[1] = (struct conf_user){ .name = xstrdup("bob"),
					     .maildir = xstrdup("/m/b") };
	conf->nusers = 2;
	got = resolve(conf, "bob@localhost");
	assert_string_equal(got, "1:bob");
	free(got);
	got = resolve(conf, "alice@localhost");
	assert_string_equal(got, "1:alice");
	free(got);
	conf_free(&conf);
}

/* many users: every one resolves to itself, none to another */
static void
test_many(void **state)
{
	enum { N = 5000 };
	struct buf b;
	struct tern_conf *conf;

	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < N; i++)
		buf_printf(&b, "user = User%d\n", i);
	/* rings of ten aliases */
	for (int i = 0; i < N; i++)
		buf_printf(&b, "alias = g%d: user%d, g%d\n", i, i,
			   i % 10 == 9 ? i - 9 : i + 1);
	conf = load(buf_cstr(&b));
	for (int i = 0; i < N; i++) {
		char addr[32], want[32], *got;
		snprintf(addr, sizeof(addr), "USER%d@localhost", i);
		snprintf(want, sizeof(want), "1:user%d", i);
		got = resolve(conf, addr);
		assert_string_equal(got, want);
		free(got);
	}
	for (int i = 0; i < N; i += 997) {
		char addr[32], want[96], *got;
		int r = i - i % 10;
		snprintf(addr, sizeof(addr), "g%d@localhost", i);
		snprintf(want, sizeof(want), "1:");
		for (int j = 0; j < 10; j++)
			snprintf(want + strlen(want), sizeof(want) - strlen(want),
				 "%suser%d", j > 0 ? "," : "", r + (i + j) % 10);
		got = resolve(conf, addr);
		assert_string_equal(got, want);
		free(got);
	}
	{
		char *got = resolve(conf, "user5000@localhost");
		assert_string_equal(got, "0:");
		free(got);
	}
	conf_free(&conf);
	buf_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_postmaster),
		cmocka_unit_test(test_resolve_defaults),
		cmocka_unit_test(test_local_domain),
		cmocka_unit_test(test_wide),
		cmocka_unit_test(test_by_hand),
		cmocka_unit_test(test_added_later),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests_name("conf_resolve", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * The relay keys: relay_from networks and their matching (IPv4, IPv6,
 * IPv4-mapped), relay host syntax for smarthost and route, the route
 * chosen for a domain, the TLS policy of each way out (relay_tls,
 * smarthost_tls, a route's tls=), alias targets elsewhere
 * (conf_resolve_targets), and the refusals of bad values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
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

struct allow_case {
	const char *relay_from;   /* NULL: the default */
	const char *addr;
	bool want;
};

static const struct allow_case allow_cases[] = {
	{ NULL, "127.0.0.1", true },
	{ NULL, "127.255.255.254", true },
	{ NULL, "128.0.0.1", false },
	{ NULL, "::1", true },
	{ NULL, "::2", false },
	{ NULL, "::ffff:127.0.0.1", true },   /* IPv4-mapped */
	{ NULL, "::ffff:10.0.0.1", false },
	{ NULL, "10.0.0.1", false },
	{ "10.0.0.0/8", "10.255.0.1", true },
	{ "10.0.0.0/8", "11.0.0.1", false },
	{ "10.0.0.0/8", "127.0.0.1", false },  /* the default is replaced */
	{ "192.0.2.128/25", "192.0.2.128", true },
	{ "192.0.2.128/25", "192.0.2.127", false },
	{ "192.0.2.7", "192.0.2.7", true },
	{ "192.0.2.7", "192.0.2.6", false },
	{ "192.0.2.7/32", "192.0.2.8", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "10.0.0.0/9, 2001:db8::1", "2001:db8::1", true },
	{ "10.0.0.0/9, 2001:db8::1", "10.128.0.1", false },
	{ "10.0.0.0/9, 2001:db8::1", "10.127.0.1", true },
};

static void
test_relay_allowed(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(allow_cases) / sizeof(allow_cases[0]);
	     i++) {
		const struct allow_case *c = &allow_cases[i];
		char text[256];
		uint8_t a[16];
		unsigned fam = 4;

		snprintf(text, sizeof(text), "user = a\n%s%s\n",
			 c->relay_from != NULL ? "relay_from = " : "",
			 c->relay_from != NULL ? c->relay_from : "");
		struct tern_conf *conf = load(text);
		if (inet_pton(AF_INET, c->addr, a) != 1) {
			assert_int_equal(inet_pton(AF_INET6, c->addr, a), 1);
			fam = 6;
		}
		bool got = conf_relay_allowed(conf, fam, a);
		CHECK(got == c->want, "relay_from %s, %s: got %d, want %d",
		      c->relay_from != NULL ? c->relay_from : "(default)",
		      c->addr, got, c->want);
		conf_free(&conf);
	}
	assert_int_equal(failures, 0);
}

struct host_case {
	const char *in;
	const char *host;         /* NULL: refused */
	unsigned port;
	bool mx;
};

static const struct host_case host_cases[] = {
	{ "relay.example.net", "relay.example.net", 0, true },
	{ "Relay.Example.NET:587", "relay.example.net", 587, true },
	{ "[relay.example.net]", "relay.example.net", 0, false },
	{ "[relay.example.net]:2525", "relay.example.net", 2525, false },
	{ "[192.0.2.1]:25", "192.0.2.1", 25, false },
	{ "[IPv6:2001:db8::1]:25", "2001:db8::1", 25, false },
	{ "[::1]", "::1", 0, false },
	{ "192.0.2.1", NULL, 0, false },       /* a literal needs brackets */
	{ "::1", NULL, 0, false },
	{ "relay.example.net:0", NULL, 0, false },
	{ "relay.example.net:65536", NULL, 0, false },
	{ "relay.example.net:", NULL, 0, false },
	{ "[relay.example.net", NULL, 0, false },
	{ "[relay.example.net]x", NULL, 0, false },
	{ "relay..example", NULL, 0, false },
	{ "", NULL, 0, false },
};

static void
test_relay_host(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]);
	     i++) {
		const struct host_case *c = &host_cases[i];
		struct conf_relay_host h;
		char *msg = NULL;
		int r = conf_relay_host_parse(c->in, &h, &msg);

		if (c->host == NULL) {
			CHECK(r < 0, "%s: accepted, want refused", c->in);
			if (r == 0)
				conf_relay_host_clear(&h);
			free(msg);
			continue;
		}
		CHECK(r == 0, "%s: refused (%s)", c->in, msg ? msg : "");
		if (r < 0) {
			free(msg);
			continue;
		}
		CHECK(strcmp(h.host, c->host) == 0, "%s: host %s, want %s",
		      c->in, h.host, c->host);
		CHECK(h.port == c->port, "%s: port %u, want %u", c->in, h.port,
		      c->port);
		CHECK(h.mx == c->mx, "%s: mx %d, want %d", c->in, h.mx, c->mx);
		conf_relay_host_clear(&h);
	}
	assert_int_equal(failures, 0);
}

static void
test_route_for(void **state)
{
	struct tern_conf *conf = load(
		"user = a\n"
		"route = example.com [10.0.0.1]:2525\n"
		"route = Example.ORG mx.example.net\n");
	const struct conf_relay_host *h;

	(void)state;
	h = conf_route_for(conf, "example.com");
	assert_non_null(h);
	assert_string_equal(h->host, "10.0.0.1");
	assert_int_equal(h->port, 2525);
	assert_false(h->mx);
	h = conf_route_for(conf, "EXAMPLE.org");
	assert_non_null(h);
	assert_string_equal(h->host, "mx.example.net");
	assert_true(h->mx);
	assert_null(conf_route_for(conf, "example.net"));
	conf_free(&conf);

	conf = load("user = a\nsmarthost = [smtp.isp.example]:587\n"
		    "route = example.com [10.0.0.1]\n");
	h = conf_route_for(conf, "example.net");
	assert_non_null(h);
	assert_string_equal(h->host, "smtp.isp.example");
	assert_int_equal(h->port, 587);
	h = conf_route_for(conf, "example.com");
	assert_string_equal(h->host, "10.0.0.1");
	conf_free(&conf);
}

static void
test_tls_policy(void **state)
{
	struct tern_conf *conf = load("user = a\n");
	const struct conf_relay_host *h;
	enum conf_tls_policy p;

	(void)state;
	/* the defaults: opportunistic everywhere, no login */
	assert_string_equal(conf->relay_tls, "may");
	assert_string_equal(conf->smarthost_tls, "may");
	assert_string_equal(conf->relay_tls_ca_file, "");
	assert_string_equal(conf->smarthost_user, "");
	assert_string_equal(conf->smarthost_password_file, "");
	assert_int_equal(conf_relay_tls(conf, NULL), CONF_TLS_MAY);
	conf_free(&conf);

	conf = load("user = a\n"
		    "relay_tls = Encrypt\n"
		    "smarthost_tls = VERIFY\n"
		    "relay_tls_ca_file = /etc/tern/ca.pem\n"
		    "smarthost = [smtp.isp.example]:587\n"
		    "smarthost_user = me@isp.example\n"
		    "smarthost_password_file = /etc/tern/pw\n"
		    "route = a.example [10.0.0.1]:2525 tls=none\n"
		    "route = b.example mx.b.example  TLS=Verify\n"
		    "route = c.example [10.0.0.3]\n");
	assert_string_equal(conf->relay_tls, "encrypt");
	assert_string_equal(conf->smarthost_tls, "verify");
	assert_string_equal(conf->relay_tls_ca_file, "/etc/tern/ca.pem");
	assert_string_equal(conf->smarthost_user, "me@isp.example");
	assert_string_equal(conf->smarthost_password_file, "/etc/tern/pw");
	/* MX hosts: relay_tls */
	assert_int_equal(conf_relay_tls(conf, NULL), CONF_TLS_ENCRYPT);
	h = conf_route_for(conf, "a.example");
	assert_string_equal(h->host, "10.0.0.1");
	assert_int_equal(h->port, 2525);
	assert_int_equal(h->tls, CONF_TLS_NONE);
	assert_false(conf_via_smarthost(conf, h));
	assert_int_equal(conf_relay_tls(conf, h), CONF_TLS_NONE);
	h = conf_route_for(conf, "b.example");
	assert_string_equal(h->host, "mx.b.example");
	assert_true(h->mx);
	assert_int_equal(conf_relay_tls(conf, h), CONF_TLS_VERIFY);
	/* a route without tls= follows relay_tls, not smarthost_tls */
	h = conf_route_for(conf, "c.example");
	assert_int_equal(h->tls, CONF_TLS_DEFAULT);
	assert_int_equal(conf_relay_tls(conf, h), CONF_TLS_ENCRYPT);
	h = conf_route_for(conf, "elsewhere.example");
	assert_true(conf_via_smarthost(conf, h));
	assert_int_equal(conf_relay_tls(conf, h), CONF_TLS_VERIFY);
	conf_free(&conf);

	for (int i = CONF_TLS_NONE; i <= CONF_TLS_VERIFY; i++) {
		assert_int_equal(conf_tls_policy_parse(
			conf_tls_policy_name((enum conf_tls_policy)i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_int_equal(conf_tls_policy_parse("default", &p), -1);
	assert_int_equal(conf_tls_policy_parse("", &p), -1);
}

static void
test_targets(void **state)
{
	struct tern_conf *conf = load(
		"domain = example.org\n"
		"user = alice\nuser = bob\n"
		"alias = team: alice, carol@elsewhere.test, Dave@Far.test\n"
		"alias = fwd: x@remote.test\n"
		"alias = both: team, fwd, x@remote.test\n");
	struct conf_targets t;

	(void)state;
	assert_int_equal(conf_resolve_targets(conf, "team@example.org", &t),
			 1);
	assert_int_equal(t.nusers, 1);
	assert_string_equal(t.users[0]->name, "alice");
	assert_int_equal(t.nremotes, 2);
	assert_string_equal(t.remotes[0], "carol@elsewhere.test");
	assert_string_equal(t.remotes[1], "Dave@far.test");
	conf_targets_clear(&t);

	assert_int_equal(conf_resolve_targets(conf, "fwd@example.org", &t), 1);
	assert_int_equal(t.nusers, 0);
	assert_int_equal(t.nremotes, 1);
	conf_targets_clear(&t);

	/* duplicates through two paths count once */
	assert_int_equal(conf_resolve_targets(conf, "BOTH@example.org", &t),
			 1);
	assert_int_equal(t.nusers, 1);
	assert_int_equal(t.nremotes, 3);
	conf_targets_clear(&t);

	assert_int_equal(conf_resolve_targets(conf, "bob@example.org", &t), 1);
	assert_int_equal(t.nusers, 1);
	assert_int_equal(t.nremotes, 0);
	conf_targets_clear(&t);

	assert_int_equal(conf_resolve_targets(conf, "nobody@example.org", &t),
			 0);
	assert_null(t.users);
	assert_int_equal(conf_resolve_targets(conf, "alice@remote.test", &t),
			 0);
	assert_int_equal(conf_resolve_targets(conf, "\"alice\"@example.org",
					      &t), 0);
	/* the old interface still says "only remote" with -1 */
	const struct conf_user **u = NULL;
	size_t n = 0;
	assert_int_equal(conf_resolve(conf, "fwd@example.org", &u, &n), -1);
	conf_free(&conf);
}

struct bad_case {
	const char *text;
	const char *want;         /* substring of the error */
};

static const struct bad_case bad_cases[] = {
	{ "relay_from = 10.0.0.0/33", "is not an address or a network" },
	{ "relay_from = 10.0.0/8", "is not an address or a network" },
	{ "relay_from = ::1/129", "is not an address or a network" },
	{ "relay_from = 10.0.0.0/", "is not an address or a network" },
	{ "relay_from = example.org", "is not an address or a network" },
	{ "smarthost = 10.0.0.1", "is not host, host:port" },
	{ "route = example.com", "expected: domain host[:port]" },
	{ "route = bad..domain x.example", "is not a domain name" },
	{ "route = a.example x.example\nroute = A.example y.example",
	  "given twice" },
	{ "retry_min = 10m\nretry_max = 5m", "retry_max is below retry_min" },
	{ "queue_lifetime = 61d", "above the maximum" },
	{ "srs_domain = not a domain", "is not a domain name" },
	{ "relay_port = 0", "below the minimum" },
	{ "relay_tls = maybe", "is not none, may, encrypt or verify" },
	{ "relay_tls =", "missing value" },
	{ "smarthost_tls = dane", "is not none, may, encrypt or verify" },
	{ "relay_tls_ca_file = ca.pem", "is not an absolute path" },
	{ "smarthost_password_file = pw", "is not an absolute path" },
	{ "route = a.example x.example tls=bogus",
	  "is not none, may, encrypt or verify" },
	{ "route = a.example x.example tls=", "is not none, may" },
	{ "route = a.example x.example port=25", "unknown route option" },
	{ "route = a.example x.example tls=may tls=none", "tls= given twice" },
	{ "route = a.example [x.example:25", "is not host, host:port" },
};

static void
test_bad(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char text[256];
		struct tern_conf *conf = NULL;
		char *err = NULL;

		snprintf(text, sizeof(text), "user = a\n%s\n", c->text);
		int r = conf_parse("t.conf", text, strlen(text), &conf, &err);
		CHECK(r < 0, "%s: accepted", c->text);
		if (r == 0) {
			conf_free(&conf);
			continue;
		}
		CHECK(strstr(err, c->want) != NULL, "%s: got \"%s\", want "
		      "\"%s\"", c->text, err, c->want);
		free(err);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_allowed),
		cmocka_unit_test(test_relay_host),
		cmocka_unit_test(test_route_for),
		cmocka_unit_test(test_tls_policy),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * conf_dump() round trips through conf_parse(); the embedded default
 * text parses; etc/tern.conf is what conf_example() generates from the
 * key table, parses, and names every key.
 *
 * Run from the repository root (the Makefile does). With the argument
 * --print-example the binary prints the example configuration instead:
 *   build/debug/unit/conf/test_conf_dump --print-example > etc/tern.conf
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/conf_int.h"

#define EXAMPLE_PATH "etc/tern.conf"

#include "unit_check.h"

static struct tern_conf *
load(const char *name, const char *text, size_t len)
{
	struct tern_conf *conf;
	char *err;

	if (conf_parse(name, text, len, &conf, &err) < 0)
		fail_msg("parse: %s\n--- text ---\n%.*s", err, (int)len, text);
	return conf;
}

static char *
dump(const struct tern_conf *conf)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	conf_dump(conf, &b);
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

/* field by field, so that a dump that loses a value is caught even when
 * both dumps agree */
static void
assert_same(const struct tern_conf *a, const struct tern_conf *b)
{
	assert_string_equal(a->hostname, b->hostname);
	assert_string_equal(a->state_dir, b->state_dir);
	assert_string_equal(a->log, b->log);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->nlisteners, b->nlisteners);
	for (size_t i = 0; i < a->nlisteners; i++) {
		assert_string_equal(a->listeners[i].address,
				    b->listeners[i].address);
		assert_string_equal(a->listeners[i].port, b->listeners[i].port);
		assert_int_equal(a->listeners[i].role, b->listeners[i].role);
	}
	assert_int_equal(a->ndomains, b->ndomains);
	for (size_t i = 0; i < a->ndomains; i++)
		assert_string_equal(a->domains[i], b->domains[i]);
	assert_int_equal(a->nusers, b->nusers);
	for (size_t i = 0; i < a->nusers; i++) {
		assert_string_equal(a->users[i].name, b->users[i].name);
		assert_string_equal(a->users[i].maildir, b->users[i].maildir);
	}
	assert_int_equal(a->naliases, b->naliases);
	for (size_t i = 0; i < a->naliases; i++) {
		assert_string_equal(a->aliases[i].name, b->aliases[i].name);
		assert_int_equal(a->aliases[i].ntargets,
				 b->aliases[i].ntargets);
		for (size_t j = 0; j < a->aliases[i].ntargets; j++)
			assert_string_equal(a->aliases[i].targets[j],
					    b->aliases[i].targets[j]);
	}
	assert_int_equal(a->size_max, b->size_max);
	assert_int_equal(a->rcpt_max, b->rcpt_max);
	assert_int_equal(a->errors_max, b->errors_max);
	assert_int_equal(a->sessions_max, b->sessions_max);
	assert_int_equal(a->vrfy, b->vrfy);
	assert_int_equal(a->expn, b->expn);
	assert_int_equal(a->timeout_command, b->timeout_command);
	assert_int_equal(a->timeout_data, b->timeout_data);
	assert_int_equal(a->delivery_workers, b->delivery_workers);
	assert_int_equal(a->nrelay_from, b->nrelay_from);
	for (size_t i = 0; i < a->nrelay_from; i++)
		assert_memory_equal(&a->relay_from[i], &b->relay_from[i],
				    sizeof(a->relay_from[i]));
	assert_int_equal(a->relay_port, b->relay_port);
	assert_string_equal(a->dns_servers, b->dns_servers);
	assert_int_equal(a->dns_timeout, b->dns_timeout);
	assert_string_equal(a->smarthost, b->smarthost);
	assert_int_equal(a->nroutes, b->nroutes);
	for (size_t i = 0; i < a->nroutes; i++) {
		assert_string_equal(a->routes[i].domain, b->routes[i].domain);
		assert_string_equal(a->routes[i].via.host,
				    b->routes[i].via.host);
		assert_int_equal(a->routes[i].via.port, b->routes[i].via.port);
		assert_int_equal(a->routes[i].via.mx, b->routes[i].via.mx);
		assert_int_equal(a->routes[i].via.tls, b->routes[i].via.tls);
	}
	assert_int_equal(a->retry_min, b->retry_min);
	assert_int_equal(a->retry_max, b->retry_max);
	assert_int_equal(a->queue_lifetime, b->queue_lifetime);
	assert_int_equal(a->delay_warning, b->delay_warning);
	assert_int_equal(a->relay_mx_max, b->relay_mx_max);
	assert_int_equal(a->relay_addrs_max, b->relay_addrs_max);
	assert_int_equal(a->relay_dest_max, b->relay_dest_max);
	assert_int_equal(a->relay_sessions_max, b->relay_sessions_max);
	assert_int_equal(a->relay_msgs_per_conn, b->relay_msgs_per_conn);
	assert_int_equal(a->relay_conn_idle, b->relay_conn_idle);
	assert_int_equal(a->relay_timeout_connect, b->relay_timeout_connect);
	assert_int_equal(a->relay_timeout_greeting,
			 b->relay_timeout_greeting);
	assert_int_equal(a->relay_timeout_command, b->relay_timeout_command);
	assert_int_equal(a->relay_timeout_data, b->relay_timeout_data);
	assert_int_equal(a->relay_timeout_block, b->relay_timeout_block);
	assert_int_equal(a->relay_timeout_dot, b->relay_timeout_dot);
	assert_string_equal(a->relay_tls, b->relay_tls);
	assert_string_equal(a->relay_tls_ca_file, b->relay_tls_ca_file);
	assert_string_equal(a->smarthost_tls, b->smarthost_tls);
	assert_string_equal(a->smarthost_user, b->smarthost_user);
	assert_string_equal(a->smarthost_password_file,
			    b->smarthost_password_file);
	assert_string_equal(a->srs_secret, b->srs_secret);
	assert_string_equal(a->srs_domain, b->srs_domain);
	assert_int_equal(a->srs_max_age, b->srs_max_age);
	assert_int_equal(a->dsn_return_max, b->dsn_return_max);
}

/* every key is named at the start of a line: "key =" or "#key =" */
static bool
names_key(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (*p == '#' && strncmp(p + 1, key, n) == 0 &&
		    strncmp(p + 1 + n, " =", 2) == 0)
			return true;
		if (strncmp(p, key, n) == 0 && strncmp(p + n, " =", 2) == 0)
			return true;
	}
	return false;
}

static void
round_trip(const char *text)
{
	struct tern_conf *a = load("in.conf", text, strlen(text)), *b;
	char *d1 = dump(a), *d2;

	b = load("dump.conf", d1, strlen(d1));
	d2 = dump(b);
	assert_string_equal(d1, d2);
	assert_same(a, b);
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		if (k->type != CONF_T_LIST)
			CHECK(names_key(d1, k->key), "dump lacks %s", k->key);
	}
	free(d1);
	free(d2);
	conf_free(&a);
	conf_free(&b);
}

static const char *const round_trips[] = {
	"user = a",
	"hostname =\nuser = a",
	"hostname = MX.example.org\n"
	"state_dir = /srv/tern/\n"
	"log = /var/log/tern.log\n"
	"log_level = error\n"
	"listen = [::1]:25 mx\n"
	"listen = *:2525\n"
	"listen = localhost:26\n"
	"listen = [::ffff:192.0.2.1]:27\n"
	"domain = Example.ORG\n"
	"domain = example.net\n"
	"user = alice\n"
	"user = Bob /home/bob/Maildir\n"
	"user = carol /srv/tern/mail/carol/Maildir\n"
	"user = dave /srv/mail box/dave\n"
	"alias = team: alice bob Carol@Elsewhere.org\n"
	"alias = all: team, dave@example.net\n"
	"alias = ext: x@y.org\n"
	"size_max = 1025\n"
	"rcpt_max = 100\n"
	"errors_max = 1000\n"
	"sessions_max = 1\n"
	"vrfy = on\n"
	"expn = 1\n"
	"timeout_command = 3599\n"
	"timeout_data = 61\n"
	"delivery_workers = 64\n"
	"relay_from = 10.1.2.3/8, 2001:DB8::1/32\n"
	"relay_from = 192.0.2.7\n"
	"relay_port = 2526\n"
	"dns_servers = 127.0.0.1:5353,[::1]:53\n"
	"dns_timeout = 2\n"
	"smarthost = [IPv6:::1]:587\n"
	"route = Example.COM [mail.internal.example]:2525\n"
	"route = example.info relay.example\n"
	"route = example.biz [192.0.2.9]\n"
	"route = example.net [192.0.2.10]:2525 tls=verify\n"
	"route = example.edu mx.example.edu tls=NONE\n"
	"retry_min = 1s\n"
	"retry_max = 1d\n"
	"queue_lifetime = 7d\n"
	"delay_warning = 0\n"
	"relay_mx_max = 1\n"
	"relay_addrs_max = 100\n"
	"relay_dest_max = 1000\n"
	"relay_sessions_max = 3\n"
	"relay_msgs_per_conn = 1\n"
	"relay_conn_idle = 0\n"
	"relay_timeout_connect = 2s\n"
	"relay_timeout_greeting = 3s\n"
	"relay_timeout_command = 4s\n"
	"relay_timeout_data = 5s\n"
	"relay_timeout_block = 6s\n"
	"relay_timeout_dot = 7s\n"
	"relay_tls = verify\n"
	"relay_tls_ca_file = /etc/tern/ca.pem\n"
	"smarthost_tls = Encrypt\n"
	"smarthost_user = relay user\n"
	"smarthost_password_file = /etc/tern/smarthost.pw\n"
	"srs_secret = s3cret\n"
	"srs_domain = SRS.Example.org\n"
	"srs_max_age = 30\n"
	"dsn_return_max = 0\n",
	"smarthost = relay.example.net\nuser = x",
	/* relative state_dir: default maildirs stay implicit */
	"state_dir = rel\nuser = a\nuser = b /abs/b",
	"size_max = 2047M\ntimeout_data = 120\nuser = x",
};

static void
test_round_trip(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(round_trips) / sizeof(round_trips[0]);
	     i++)
		round_trip(round_trips[i]);
	round_trip(conf_default_text());
	assert_int_equal(failures, 0);
}

/* a dump shows every key with its doc as comments */
static void
test_dump_shape(void **state)
{
	const char *t = conf_default_text();
	struct tern_conf *conf = load("d", t, strlen(t));
	char *d = dump(conf);

	(void)state;
	assert_non_null(strstr(d, "\nhostname =\n"));
	assert_non_null(strstr(d, "\nsize_max = 50M\n"));
	assert_non_null(strstr(d, "\ntimeout_command = 5m\n"));
	assert_non_null(strstr(d, "\nlisten = 127.0.0.1:2525 mx\n"));
	assert_non_null(strstr(d, "\nuser = demo\n"));
	assert_non_null(strstr(d, "\nalias = postmaster: demo\n"));
	assert_non_null(strstr(d, "\n# Largest message accepted"));
	free(d);
	conf_free(&conf);

	conf = load("d", "user = a", 8);
	d = dump(conf);
	assert_non_null(strstr(d, "\n# (no alias)\n"));
	free(d);
	conf_free(&conf);
}

/* the embedded defaults: listen, domain, user demo, postmaster alias */
static void
test_default_text(void **state)
{
	const char *t = conf_default_text();
	struct tern_conf *conf = load("(defaults)", t, strlen(t));

	(void)state;
	assert_int_equal(conf->nlisteners, 3);
	assert_string_equal(conf->listeners[0].address, "127.0.0.1");
	assert_string_equal(conf->listeners[0].port, "2525");
	assert_int_equal(conf->listeners[0].role, CONF_ROLE_MX);
	assert_string_equal(conf->listeners[1].port, "2587");
	assert_int_equal(conf->listeners[1].role, CONF_ROLE_SUBMISSION);
	assert_string_equal(conf->listeners[2].port, "2465");
	assert_int_equal(conf->listeners[2].role, CONF_ROLE_SUBMISSIONS);
	assert_int_equal(conf->ndomains, 1);
	assert_string_equal(conf->domains[0], "localhost");
	assert_int_equal(conf->nusers, 1);
	assert_string_equal(conf->users[0].name, "demo");
	assert_string_equal(conf->users[0].maildir,
			    "tern-state/mail/demo/Maildir");
	assert_int_equal(conf->naliases, 1);
	assert_string_equal(conf->aliases[0].name, "postmaster");
	assert_int_equal(conf->aliases[0].ntargets, 1);
	assert_string_equal(conf->aliases[0].targets[0], "demo");
	assert_string_equal(conf->hostname, "");
	assert_string_equal(conf->state_dir, CONF_STATE_DIR_DEFAULT);
	assert_int_equal(conf->size_max, CONF_SIZE_MAX_DEFAULT);
	assert_int_equal(conf->rcpt_max, CONF_RCPT_MAX_DEFAULT);
	assert_int_equal(conf->timeout_command, CONF_TIMEOUT_COMMAND_DEFAULT);
	assert_int_equal(conf->timeout_data, CONF_TIMEOUT_DATA_DEFAULT);
	conf_free(&conf);
}

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (f == NULL)
		fail_msg("cannot open %s (run from the repository root)", path);
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	*len_r = b.len;
	buf_cstr(&b);
	return (char *)b.p;
}

static char *
example(void)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	conf_example(&b);
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

/* etc/tern.conf is generated from the table and must stay in step */
static void
test_example_file(void **state)
{
	size_t len, line = 1;
	char *file = read_file(EXAMPLE_PATH, &len), *want = example();
	struct tern_conf *conf;

	(void)state;
	if (strcmp(file, want) != 0) {
		size_t i;
		for (i = 0; file[i] == want[i]; i++)
			if (file[i] == '\n')
				line++;
		fail_msg(EXAMPLE_PATH ":%zu differs from conf_example(); "
			 "regenerate it with: build/debug/unit/conf/"
			 "test_conf_dump --print-example > " EXAMPLE_PATH,
			 line);
	}
	conf = load(EXAMPLE_PATH, file, len);
	failures = 0;
	for (size_t i = 0; i < conf_nkeys; i++)
		CHECK(names_key(file, conf_keys[i].key), EXAMPLE_PATH
		      " does not name the key %s", conf_keys[i].key);
	assert_int_equal(failures, 0);
	/* the example is a working configuration */
	assert_string_equal(conf->hostname, "mx.example.org");
	assert_true(conf->nusers >= 1);
	assert_true(conf->naliases >= 1);
	conf_free(&conf);
	free(file);
	free(want);
}

/*
 * Every "#key = value" line of the example, uncommented, parses, and
 * shows the key's default.
 */
static void
test_example_defaults(void **state)
{
	size_t len;
	char *file = read_file(EXAMPLE_PATH, &len);
	const char *t = conf_default_text();
	struct tern_conf *un, *def = load("d", t, strlen(t));
	struct buf b;
	bool commented[64] = { false };

	(void)state;
	assert_true(conf_nkeys <= 64);
	buf_init(&b, 0);
	for (const char *p = file; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		bool uncomment = false;

		for (size_t i = 0; i < conf_nkeys && p[0] == '#'; i++) {
			size_t kn = strlen(conf_keys[i].key);
			if (n > kn + 3 &&
			    strncmp(p + 1, conf_keys[i].key, kn) == 0 &&
			    strncmp(p + 1 + kn, " = ", 3) == 0) {
				uncomment = true;
				commented[i] = true;
			}
		}
		buf_append(&b, p + uncomment, n - uncomment);
		buf_append(&b, "\n", 1);
		p += n + (nl != NULL);
	}
	un = load("uncommented", buf_cstr(&b), b.len);
	failures = 0;
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		struct buf got, want;

		if (!commented[i] || k->type == CONF_T_LIST)
			continue;
		buf_init(&got, 0);
		buf_init(&want, 0);
		conf_key_format(k, un, &got);
		conf_key_format(k, def, &want);
		CHECK(strcmp(buf_cstr(&got), buf_cstr(&want)) == 0,
		      "%s: example shows %s, default is %s", k->key,
		      buf_cstr(&got), buf_cstr(&want));
		buf_clear(&got);
		buf_clear(&want);
	}
	assert_int_equal(failures, 0);
	conf_free(&un);
	conf_free(&def);
	buf_clear(&b);
	free(file);
}

/* the doc comments are wrapped to fit 80 columns */
static void
test_example_width(void **state)
{
	char *ex = example();
	size_t line = 1;

	(void)state;
	for (const char *p = ex; *p != '\0'; line++) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n > 78)
			fail_msg("example line %zu is %zu long", line, n);
		p += n + (nl != NULL);
	}
	free(ex);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_dump_shape),
		cmocka_unit_test(test_default_text),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_example_defaults),
		cmocka_unit_test(test_example_width),
	};

	if (argc == 2 && strcmp(argv[1], "--print-example") == 0) {
		char *ex = example();
		fputs(ex, stdout);
		free(ex);
		return 0;
	}
	return cmocka_run_group_tests_name("conf_dump", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net_tls.c: two struct conns on a socketpair, one the
 * server and one the client, both through conn_start_tls(), driven by one
 * event loop. A test CA, a second unrelated CA and a server certificate
 * for mx.test are made with the openssl command in a temporary directory.
 * Covered: the handshake and conn_tls_info, 1 MiB echoed intact,
 * verification against the right CA, a wrong CA and a wrong host name,
 * plaintext input buffered before conn_start_tls dropped (STARTTLS
 * command injection), garbage instead of a handshake on either side, a
 * bad record, close_notify and an abrupt close; and a client we did not
 * write, `openssl s_client`, against a server conn on 127.0.0.1. ASan
 * checks for leaks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "unit_check.h"
#include "net/net.h"

static char dir[64];
static char ca_pem[128], other_pem[128], srv_pem[128], srv_key[128];

enum mode {
	MODE_COLLECT = 0,   /* keep what arrives */
	MODE_ECHO,          /* keep it and write it back */
	MODE_STARTTLS_SRV,  /* on "STARTTLS\r\n": reply, start TLS */
	MODE_STARTTLS_CLI,  /* on "220 ": start TLS, send NOOP */
};

struct side {
	struct conn *c;
	struct net_tls_ctx *ctx;
	bool server;
	const char *sni;
	enum mode mode;
	uint8_t *got;
	size_t len, cap;
	unsigned done_calls;
	bool ok;
	char error[256];
	unsigned closes;
	bool dead_at_close;
	unsigned timeouts;
};

static void
keep(struct side *s, const uint8_t *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->got = realloc(s->got, s->cap);
		assert_non_null(s->got);
	}
	memcpy(s->got + s->len, p, n);
	s->len += n;
}

static void
on_done(void *arg, bool ok, const char *error)
{
	struct side *s = arg;

	s->done_calls++;
	s->ok = ok;
	snprintf(s->error, sizeof(s->error), "%s", error != NULL ? error : "");
}

static void
start(struct side *s)
{
	char *error = NULL;

	if (conn_start_tls(s->c, s->ctx, s->server, s->sni, on_done, s,
			   &error) != 0)
		fail_msg("conn_start_tls: %s", error);
}

static void
on_read(void *arg)
{
	struct side *s = arg;
	const uint8_t *p;
	size_t n;

	if (s->mode == MODE_STARTTLS_SRV) {
		p = conn_input_peek(s->c, &n);
		if (n >= 10 && memcmp(p, "STARTTLS\r\n", 10) == 0) {
			/* what follows the command stays buffered */
			conn_input_drain(s->c, 10);
			keep(s, (const uint8_t *)"STARTTLS\r\n", 10);
			conn_write(s->c, "220 go\r\n", 8);
			s->mode = MODE_COLLECT;
			start(s);
		}
		return;
	}
	while ((p = conn_input_peek(s->c, &n)) != NULL) {
		keep(s, p, n);
		if (s->mode == MODE_ECHO)
			assert_int_equal(conn_write(s->c, p, n), 0);
		conn_input_drain(s->c, n);
	}
	if (s->mode == MODE_STARTTLS_CLI && s->len >= 8 &&
	    memcmp(s->got, "220 go\r\n", 8) == 0) {
		s->mode = MODE_COLLECT;
		start(s);
		conn_write(s->c, "NOOP\r\n", 6);
	}
}

static void
on_timeout(void *arg)
{
	struct side *s = arg;

	s->timeouts++;
}

static void
on_close(void *arg)
{
	struct side *s = arg;

	s->closes++;
	s->dead_at_close = conn_is_dead(s->c);
}

static void
on_drained(void *arg)
{
	(void)arg;
}

static const struct conn_handler handler = {
	on_read, on_timeout, on_close, on_drained,
};

struct pair {
	struct event_base *base;
	int fd[2];           /* [0] server, [1] client */
	struct side srv, cli;
};

static void
pair_open(struct pair *p, struct net_tls_ctx *sctx, struct net_tls_ctx *cctx)
{
	memset(p, 0, sizeof(*p));
	p->base = event_base_new();
	assert_non_null(p->base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    p->fd), 0);
	p->srv.ctx = sctx;
	p->srv.server = true;
	p->cli.ctx = cctx;
	p->cli.sni = "mx.test";
	p->srv.c = conn_new(p->base, p->fd[0], &handler, &p->srv);
	p->cli.c = conn_new(p->base, p->fd[1], &handler, &p->cli);
	/* bounds every wait below */
	conn_set_timeout(p->srv.c, 10);
	conn_set_timeout(p->cli.c, 10);
}

static void
pair_close(struct pair *p)
{
	conn_free(&p->srv.c);
	conn_free(&p->cli.c);
	free(p->srv.got);
	free(p->cli.got);
	event_base_free(p->base);
}

/* runs the loop until done(p) or a timeout fires (bounded) */
static void
run(struct pair *p, bool (*done)(const struct pair *p))
{
	time_t end = time(NULL) + 20;

	while (!done(p) && p->srv.timeouts == 0 && p->cli.timeouts == 0 &&
	       time(NULL) < end)
		assert_true(event_base_loop(p->base, EVLOOP_ONCE) >= 0);
	assert_true(done(p));
}

static bool
both_done(const struct pair *p)
{
	return p->srv.done_calls > 0 && p->cli.done_calls > 0;
}

static bool
srv_done(const struct pair *p)
{
	return p->srv.done_calls > 0;
}

static bool
cli_done(const struct pair *p)
{
	return p->cli.done_calls > 0;
}

static bool
srv_closed(const struct pair *p)
{
	return p->srv.closes > 0;
}

static bool
cli_closed(const struct pair *p)
{
	return p->cli.closes > 0;
}

static struct net_tls_ctx *
server_ctx(void)
{
	struct net_tls_ctx *ctx = NULL;
	char *error = NULL;

	if (net_tls_ctx_server_new(srv_pem, srv_key, &ctx, &error) != 0)
		fail_msg("server ctx: %s", error);
	return ctx;
}

static struct net_tls_ctx *
client_ctx(enum net_tls_verify v, const char *ca)
{
	struct net_tls_ctx *ctx = NULL;
	char *error = NULL;

	if (net_tls_ctx_client_new(v, ca, &ctx, &error) != 0)
		fail_msg("client ctx: %s", error);
	return ctx;
}

static void
handshake(struct pair *p)
{
	start(&p->srv);
	start(&p->cli);
	run(p, both_done);
	assert_true(p->srv.ok);
	assert_true(p->cli.ok);
}

/* ------------------------------------------------------------------ */

static void
test_verify_table(void **state)
{
	static const struct {
		const char *name;
		enum net_tls_verify verify;
		bool right_ca;
		const char *sni;
		bool want_ok;
		bool want_verified;
		const char *want_error;
	} cases[] = {
		{ "right CA", NET_TLS_VERIFY_CAFILE, true, "mx.test",
		  true, true, NULL },
		{ "wrong CA", NET_TLS_VERIFY_CAFILE, false, "mx.test",
		  false, false,
		  "certificate verify failed: unable to get local issuer" },
		{ "wrong host", NET_TLS_VERIFY_CAFILE, true, "other.test",
		  false, false, "certificate verify failed: hostname mismatch" },
		{ "no verification", NET_TLS_VERIFY_NONE, false, "other.test",
		  true, false, NULL },
		{ "system store", NET_TLS_VERIFY_SYSTEM, false, "mx.test",
		  false, false, "certificate verify failed" },
	};
	struct net_tls_ctx *sctx = server_ctx();
	(void)state;

	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct net_tls_ctx *cctx = client_ctx(cases[i].verify,
			cases[i].right_ca ? ca_pem : other_pem);
		struct pair p;
		const char *version = NULL, *cipher = NULL;
		bool verified = false;

		pair_open(&p, sctx, cctx);
		p.cli.sni = cases[i].sni;
		CHECK(!conn_tls_info(p.cli.c, &version, &cipher, &verified),
		      "%s: tls info on a plain conn", cases[i].name);
		start(&p.srv);
		start(&p.cli);
		run(&p, both_done);
		CHECK(p.cli.ok == cases[i].want_ok,
		      "%s: client ok got %d, want %d (error %s)",
		      cases[i].name, p.cli.ok, cases[i].want_ok, p.cli.error);
		CHECK(p.srv.ok == cases[i].want_ok,
		      "%s: server ok got %d, want %d (error %s)",
		      cases[i].name, p.srv.ok, cases[i].want_ok, p.srv.error);
		if (cases[i].want_ok) {
			CHECK(conn_tls_info(p.cli.c, &version, &cipher,
					    &verified),
			      "%s: no tls info", cases[i].name);
			CHECK(version != NULL &&
			      strcmp(version, "TLSv1.3") == 0,
			      "%s: version got %s, want TLSv1.3",
			      cases[i].name, version);
			CHECK(cipher != NULL &&
			      strncmp(cipher, "TLS_", 4) == 0,
			      "%s: cipher got %s, want TLS_*", cases[i].name,
			      cipher);
			CHECK(verified == cases[i].want_verified,
			      "%s: verified got %d, want %d", cases[i].name,
			      verified, cases[i].want_verified);
			CHECK(conn_tls_info(p.srv.c, &version, &cipher,
					    &verified) && !verified,
			      "%s: server info", cases[i].name);
			CHECK(!conn_is_dead(p.cli.c) && !conn_is_dead(p.srv.c),
			      "%s: dead after a good handshake",
			      cases[i].name);
		} else {
			CHECK(strstr(p.cli.error, cases[i].want_error) != NULL,
			      "%s: error got \"%s\", want \"%s\"",
			      cases[i].name, p.cli.error,
			      cases[i].want_error);
			CHECK(conn_is_dead(p.cli.c) && conn_is_dead(p.srv.c),
			      "%s: a failed handshake leaves live conns",
			      cases[i].name);
			CHECK(conn_write(p.cli.c, "x", 1) == -1,
			      "%s: write after failure", cases[i].name);
			CHECK(p.cli.closes == 0 && p.srv.closes == 0,
			      "%s: on_close during the handshake",
			      cases[i].name);
		}
		pair_close(&p);
		net_tls_ctx_free(&cctx);
	}
	net_tls_ctx_free(&sctx);
	assert_int_equal(failures, 0);
}

static bool
echo_done(const struct pair *p)
{
	return p->cli.len >= 1024 * 1024 || p->cli.closes > 0 ||
	       p->srv.closes > 0;
}

static void
test_echo_1mib(void **state)
{
	struct net_tls_ctx *sctx = server_ctx();
	struct net_tls_ctx *cctx = client_ctx(NET_TLS_VERIFY_CAFILE, ca_pem);
	size_t n = 1024 * 1024;
	uint8_t *data = malloc(n);
	struct pair p;
	(void)state;

	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	pair_open(&p, sctx, cctx);
	p.srv.mode = MODE_ECHO;
	start(&p.srv);
	start(&p.cli);
	/* queued before the handshake is done: it waits for it */
	assert_int_equal(conn_write(p.cli.c, data, n), 0);
	run(&p, echo_done);
	assert_int_equal(p.srv.len, n);
	assert_int_equal(p.cli.len, n);
	assert_memory_equal(p.srv.got, data, n);
	assert_memory_equal(p.cli.got, data, n);
	assert_int_equal(conn_output_len(p.cli.c), 0);
	pair_close(&p);
	free(data);
	net_tls_ctx_free(&cctx);
	net_tls_ctx_free(&sctx);
}

static bool
noop_seen(const struct pair *p)
{
	return p->srv.len >= 16 || p->srv.closes > 0 ||
	       (p->cli.done_calls > 0 && !p->cli.ok);
}

/*
 * "STARTTLS\r\nRSET\r\n" arrives in one read: RSET was sent in the clear
 * before the handshake and must never be seen as a command inside TLS
 * (CVE-2011-0411). Fed to the TLS layer it would also break the
 * handshake, so a good handshake shows it was dropped, not passed on.
 */
static void
test_starttls_drops_buffered_input(void **state)
{
	struct net_tls_ctx *sctx = server_ctx();
	struct net_tls_ctx *cctx = client_ctx(NET_TLS_VERIFY_CAFILE, ca_pem);
	struct pair p;
	(void)state;

	pair_open(&p, sctx, cctx);
	p.srv.mode = MODE_STARTTLS_SRV;
	p.cli.mode = MODE_STARTTLS_CLI;
	assert_int_equal(conn_write(p.cli.c, "STARTTLS\r\nRSET\r\n", 16), 0);
	run(&p, noop_seen);
	assert_true(p.cli.ok);
	assert_true(p.srv.ok);
	/* the reply queued before conn_start_tls went out in the clear */
	assert_int_equal(p.cli.len, 8);
	assert_memory_equal(p.cli.got, "220 go\r\n", 8);
	/* the server saw STARTTLS, then only what came through TLS */
	if (p.srv.len != 16 || memcmp(p.srv.got, "STARTTLS\r\nNOOP\r\n", 16))
		fail_msg("server got \"%.*s\", want \"STARTTLS\\r\\nNOOP\\r\\n\"",
			 (int)p.srv.len, (const char *)p.srv.got);
	pair_close(&p);
	net_tls_ctx_free(&cctx);
	net_tls_ctx_free(&sctx);
}

/* a peer that speaks something else than TLS: the handshake fails */
static void
test_garbage_handshake(void **state)
{
	static const struct {
		const char *name;
		bool server;          /* which side runs TLS */
		const char *garbage;  /* what the other side sends */
		size_t len;
	} cases[] = {
		{ "server gets SMTP", true, "EHLO client.test\r\n", 18 },
		{ "server gets HTTP", true, "GET / HTTP/1.0\r\n\r\n", 18 },
		/* a handshake record holding an empty ClientHello */
		{ "server gets a bad record", true,
		  "\x16\x03\x01\x00\x04\x01\x00\x00\x00", 9 },
		{ "client gets SMTP", false, "220 mx.test ESMTP\r\n", 19 },
		/* an empty ServerHello */
		{ "client gets a bad record", false,
		  "\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9 },
	};
	struct net_tls_ctx *sctx = server_ctx();
	struct net_tls_ctx *cctx = client_ctx(NET_TLS_VERIFY_CAFILE, ca_pem);
	(void)state;

	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pair p;
		struct side *tls, *plain;

		pair_open(&p, sctx, cctx);
		tls = cases[i].server ? &p.srv : &p.cli;
		plain = cases[i].server ? &p.cli : &p.srv;
		start(tls);
		conn_write(plain->c, cases[i].garbage, cases[i].len);
		run(&p, cases[i].server ? srv_done : cli_done);
		CHECK(!tls->ok, "%s: handshake ok", cases[i].name);
		CHECK(strstr(tls->error, "TLS handshake failed") != NULL,
		      "%s: error got \"%s\", want \"TLS handshake failed...\"",
		      cases[i].name, tls->error);
		CHECK(conn_is_dead(tls->c), "%s: not dead", cases[i].name);
		pair_close(&p);
	}
	net_tls_ctx_free(&cctx);
	net_tls_ctx_free(&sctx);
	assert_int_equal(failures, 0);
}

/* close_notify both ways, with a reply written after the first one */
static void
test_close_notify(void **state)
{
	struct net_tls_ctx *sctx = server_ctx();
	struct net_tls_ctx *cctx = client_ctx(NET_TLS_VERIFY_CAFILE, ca_pem);
	struct pair p;
	(void)state;

	pair_open(&p, sctx, cctx);
	handshake(&p);
	assert_int_equal(conn_write(p.cli.c, "QUIT\r\n", 6), 0);
	conn_shutdown_write(p.cli.c);
	run(&p, srv_closed);
	assert_false(p.srv.dead_at_close);
	assert_false(conn_is_dead(p.srv.c));
	assert_int_equal(p.srv.len, 6);
	assert_memory_equal(p.srv.got, "QUIT\r\n", 6);
	/* the server may still answer after the client's close_notify */
	assert_int_equal(conn_write(p.srv.c, "221 bye\r\n", 9), 0);
	conn_shutdown_write(p.srv.c);
	run(&p, cli_closed);
	assert_false(p.cli.dead_at_close);
	assert_int_equal(p.cli.len, 9);
	assert_memory_equal(p.cli.got, "221 bye\r\n", 9);
	pair_close(&p);
	net_tls_ctx_free(&cctx);
	net_tls_ctx_free(&sctx);
}

/* after the handshake: a FIN without close_notify, or a bad record */
static void
test_abrupt_close_and_bad_record(void **state)
{
	static const struct {
		const char *name;
		const char *bytes;  /* written raw on the client's socket */
		size_t len;
	} cases[] = {
		{ "FIN without close_notify", NULL, 0 },
		{ "bad application record",
		  "\x17\x03\x03\x00\x05hello", 10 },
		{ "plaintext inside TLS", "QUIT\r\n", 6 },
	};
	struct net_tls_ctx *sctx = server_ctx();
	struct net_tls_ctx *cctx = client_ctx(NET_TLS_VERIFY_CAFILE, ca_pem);
	(void)state;

	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pair p;

		pair_open(&p, sctx, cctx);
		handshake(&p);
		if (cases[i].bytes == NULL)
			assert_int_equal(shutdown(p.fd[1], SHUT_WR), 0);
		else
			assert_int_equal(write(p.fd[1], cases[i].bytes,
					       cases[i].len),
					 (ssize_t)cases[i].len);
		run(&p, srv_closed);
		CHECK(p.srv.dead_at_close, "%s: on_close with a live conn",
		      cases[i].name);
		CHECK(conn_write(p.srv.c, "x", 1) == -1,
		      "%s: write after failure", cases[i].name);
		CHECK(p.srv.len == 0, "%s: got %zu bytes of input",
		      cases[i].name, p.srv.len);
		pair_close(&p);
	}
	net_tls_ctx_free(&cctx);
	net_tls_ctx_free(&sctx);
	assert_int_equal(failures, 0);
}

static void
test_ctx_errors(void **state)
{
	struct net_tls_ctx *ctx = NULL;
	char *error = NULL;
	(void)state;

	assert_int_equal(net_tls_ctx_server_new("/nonexistent.pem", srv_key,
						&ctx, &error), -1);
	assert_non_null(strstr(error, "certificate /nonexistent.pem"));
	free(error);
	error = NULL;
	/* the other CA's key does not match the server certificate */
	{
		char key[160];
		snprintf(key, sizeof(key), "%s/other.key", dir);
		assert_int_equal(net_tls_ctx_server_new(srv_pem, key, &ctx,
							&error), -1);
		assert_non_null(strstr(error, "other.key"));
		free(error);
		error = NULL;
	}
	assert_int_equal(net_tls_ctx_client_new(NET_TLS_VERIFY_CAFILE,
						"/nonexistent.pem", &ctx,
						&error), -1);
	assert_non_null(strstr(error, "CA file /nonexistent.pem"));
	free(error);
	assert_null(ctx);
	net_tls_ctx_free(&ctx);
}

static bool
srv_got_line(const struct pair *p)
{
	return p->srv.closes > 0 ||
	       (p->srv.len > 0 && p->srv.got[p->srv.len - 1] == '\n');
}

/* waits (bounded) for the child; kills it when it does not exit */
static int
reap(pid_t pid)
{
	int status = -1;

	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	return -1;
}

/*
 * Interop: `openssl s_client` verifies our server (test CA, host name
 * mx.test) over TCP on 127.0.0.1, sends a line, reads the echo, and
 * closes with close_notify when its stdin ends.
 */
static void
test_interop_s_client(void **state)
{
	static const char line[] = "hello from s_client\n";
	struct net_tls_ctx *sctx = server_ctx();
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	struct timeval tv = { .tv_sec = 10 };
	int lfd, fd, in[2], out[2];
	char port[16], got[256];
	const char *version = NULL, *cipher = NULL;
	bool verified = true;
	ssize_t n;
	size_t have = 0;
	pid_t pid;
	struct pair p;
	(void)state;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	/* accept() gives up after 10 s */
	assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)), 0);
	snprintf(port, sizeof(port), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(in[1]);
		close(out[0]);
		close(lfd);
		execlp("openssl", "openssl", "s_client", "-connect", port,
		       "-servername", "mx.test", "-verify_hostname", "mx.test",
		       "-CAfile", ca_pem, "-verify_return_error", "-quiet",
		       "-no_ign_eof", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);

	memset(&p, 0, sizeof(p));
	p.base = event_base_new();
	assert_non_null(p.base);
	p.srv.ctx = sctx;
	p.srv.server = true;
	p.srv.mode = MODE_ECHO;
	p.srv.c = conn_new(p.base, fd, &handler, &p.srv);
	conn_set_timeout(p.srv.c, 10);
	start(&p.srv);
	assert_int_equal(write(in[1], line, sizeof(line) - 1),
			 (ssize_t)(sizeof(line) - 1));
	run(&p, srv_got_line);
	assert_true(p.srv.ok);
	assert_int_equal(p.srv.len, sizeof(line) - 1);
	assert_memory_equal(p.srv.got, line, sizeof(line) - 1);
	assert_true(conn_tls_info(p.srv.c, &version, &cipher, &verified));
	assert_string_equal(version, "TLSv1.3");
	assert_false(verified);
	/* the echo reaches s_client, which prints it (bounded wait) */
	got[0] = '\0';
	for (int i = 0; i < 1000 && strstr(got, line) == NULL; i++) {
		struct pollfd pfd = { .fd = out[0], .events = POLLIN };
		assert_true(event_base_loop(p.base, EVLOOP_NONBLOCK) >= 0);
		if (poll(&pfd, 1, 10) == 1 && have < sizeof(got) - 1) {
			n = read(out[0], got + have, sizeof(got) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			got[have] = '\0';
		}
	}
	if (strstr(got, line) == NULL)
		fail_msg("s_client printed \"%s\", want the echo \"%s\"", got,
			 line);
	/* stdin ends: s_client sends close_notify and exits */
	close(in[1]);
	run(&p, srv_closed);
	assert_false(p.srv.dead_at_close);
	conn_free(&p.srv.c);
	event_base_free(p.base);
	assert_int_equal(reap(pid), 0);
	close(out[0]);
	free(p.srv.got);
	net_tls_ctx_free(&sctx);
}

/* ------------------------------------------------------------------ */

static int
make_certs(void **state)
{
	char cmd[2048];
	(void)state;

	snprintf(dir, sizeof(dir), "/tmp/tern-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
	snprintf(other_pem, sizeof(other_pem), "%s/other.pem", dir);
	snprintf(srv_pem, sizeof(srv_pem), "%s/srv.pem", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/srv.key", dir);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && exec >log 2>&1 && "
		 "K='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes' && "
		 "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 "
		 "-subj /CN=tern-test-CA && "
		 "openssl req -x509 $K -keyout other.key -out other.pem "
		 "-days 2 -subj /CN=tern-other-CA && "
		 "openssl req $K -keyout srv.key -out srv.csr "
		 "-subj /CN=mx.test && "
		 "printf 'subjectAltName=DNS:mx.test\\n' >ext && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
		 "-CAcreateserial -days 2 -extfile ext -out srv.pem", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "making test certificates failed, see %s/log\n",
			dir);
		return -1;
	}
	return 0;
}

static int
remove_certs(void **state)
{
	char cmd[128];
	(void)state;

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_table),
		cmocka_unit_test(test_echo_1mib),
		cmocka_unit_test(test_starttls_drops_buffered_input),
		cmocka_unit_test(test_garbage_handshake),
		cmocka_unit_test(test_close_notify),
		cmocka_unit_test(test_abrupt_close_and_bad_record),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_interop_s_client),
	};

	return cmocka_run_group_tests(tests, make_certs, remove_certs);
}

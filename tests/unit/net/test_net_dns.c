/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net_dns.c's life cycle on a real event loop, without a
 * DNS server that answers: address literals (answered from the loop,
 * never from inside net_dns_route), cancellation before the callback,
 * net_dns_free with queries in flight, a silent server (timeout ->
 * TEMPFAIL) and bad server lists. The sanitizers check for leaks.
 * Only 127.0.0.1 is used.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "unit_check.h"
#include "net/net.h"

struct got {
	unsigned calls;
	struct net_route *route;
	struct net_dns **free_dns;  /* freed from inside the callback */
};

static bool in_route_call;

static void
on_route(void *arg, struct net_route *r)
{
	struct got *g = arg;

	CHECK(!in_route_call, "callback ran inside net_dns_route()");
	g->calls++;
	net_route_free(&g->route);
	g->route = r;
	if (g->free_dns != NULL)
		net_dns_free(g->free_dns);
}

static struct net_dns_query *
start(struct net_dns *d, const char *name, bool mx, struct got *g)
{
	struct net_dns_query *q;

	in_route_call = true;
	q = net_dns_route(d, name, mx, 5, 5, on_route, g);
	in_route_call = false;
	return q;
}

/* a UDP socket on 127.0.0.1 that never answers; its "ip:port" */
static int
silent_server(char *text, size_t textsz)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(text, textsz, "127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

static struct net_dns *
dns_new(struct event_base *base, const char *servers, unsigned ms)
{
	struct net_dns *d = NULL;
	const char *error = NULL;

	assert_int_equal(net_dns_new(base, servers, ms, 1, &d, &error), 0);
	return d;
}

static void
test_literals(void **state)
{
	static const struct {
		const char *name;
		bool mx;
		const char *want;
	} cases[] = {
		{ "[127.0.0.1]", true, "127.0.0.1" },
		{ "[127.0.0.1]", false, "127.0.0.1" },
		{ "[IPv6:::1]", true, "::1" },
		{ "[ipv6:2001:db8::1]", false, "2001:db8::1" },
		{ "192.0.2.7", false, "192.0.2.7" },
		{ "::1", false, "::1" },
	};
	struct event_base *base = event_base_new();
	char fake[64];
	int sfd = silent_server(fake, sizeof(fake));
	struct net_dns *d = dns_new(base, fake, 200);
	(void)state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct got g = { 0 };
		char ip[NET_ADDR_TEXT_MAX] = "";

		start(d, cases[c].name, cases[c].mx, &g);
		CHECK(g.calls == 0, "%s: got %u calls before the loop, want 0",
		      cases[c].name, g.calls);
		event_base_loop(base, EVLOOP_ONCE);
		CHECK(g.calls == 1, "%s: got %u calls, want 1", cases[c].name,
		      g.calls);
		if (g.route != NULL && g.route->nhosts == 1 &&
		    g.route->hosts[0].naddrs == 1) {
			const struct sockaddr_storage *a =
				&g.route->hosts[0].addrs[0];
			net_addr_ip((const struct sockaddr *)a, ip, sizeof(ip));
		}
		CHECK(g.route != NULL && g.route->status == NET_ROUTE_OK &&
		      strcmp(ip, cases[c].want) == 0,
		      "%s: got status %d address %s, want OK %s", cases[c].name,
		      g.route != NULL ? (int)g.route->status : -1, ip,
		      cases[c].want);
		net_route_free(&g.route);
	}
	net_dns_free(&d);
	assert_null(d);
	net_dns_free(&d); /* NULL-safe */
	close(sfd);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

/* a literal's answer waits in the loop: cancelling it frees it */
static void
test_cancel_deferred(void **state)
{
	struct event_base *base = event_base_new();
	struct net_dns *d = dns_new(base, "127.0.0.1:9", 200);
	struct got g = { 0 };
	struct net_dns_query *q;
	(void)state;

	q = start(d, "[127.0.0.1]", false, &g);
	net_dns_cancel(&q);
	assert_null(q);
	net_dns_cancel(&q); /* NULL-safe */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 0);
	net_dns_free(&d);
	event_base_free(base);
}

/* queries in flight: cancelled ones stay silent until c-ares gives up,
 * the others report TEMPFAIL after the timeout */
static void
test_silent_server(void **state)
{
	struct event_base *base = event_base_new();
	char srv[64];
	int sfd = silent_server(srv, sizeof(srv));
	struct net_dns *d = dns_new(base, srv, 100);
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
	struct net_dns_query *q1, *q3;
	struct timeval bound = { 5, 0 };
	(void)state;

	q1 = start(d, "example.test", true, &g1);
	start(d, "host.example.test", false, &g2);
	q3 = start(d, "other.test", true, &g3);
	net_dns_cancel(&q1);
	event_base_loopexit(base, &bound);
	while (g2.calls == 0 || g3.calls == 0)
		if (event_base_loop(base, EVLOOP_ONCE) != 0 ||
		    event_base_got_exit(base))
			break;
	(void)q3;
	assert_int_equal(g1.calls, 0);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g3.calls, 1);
	assert_int_equal(g2.route->status, NET_ROUTE_TEMPFAIL);
	assert_int_equal(g3.route->status, NET_ROUTE_TEMPFAIL);
	assert_non_null(strstr(g3.route->error, "name=other.test type=MX"));
	assert_non_null(strstr(g2.route->error, "host.example.test"));
	net_route_free(&g2.route);
	net_route_free(&g3.route);
	net_dns_free(&d);
	close(sfd);
	event_base_free(base);
}

/* net_dns_free with queries in flight and answers waiting: no callback
 * runs, nothing leaks */
static void
test_free_in_flight(void **state)
{
	struct event_base *base = event_base_new();
	char srv[64];
	int sfd = silent_server(srv, sizeof(srv));
	struct net_dns *d = dns_new(base, srv, 5000);
	struct got g[4] = { { 0 } };
	struct net_dns_query *q;
	(void)state;

	start(d, "a.test", true, &g[0]);
	start(d, "b.test", false, &g[1]);
	start(d, "[127.0.0.1]", true, &g[2]);
	q = start(d, "c.test", true, &g[3]);
	net_dns_cancel(&q);
	net_dns_free(&d);
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (size_t i = 0; i < 4; i++)
		CHECK(g[i].calls == 0, "query %zu: got %u calls, want 0", i,
		      g[i].calls);
	close(sfd);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

/* the callback may free the net_dns, other queries and all */
static void
test_free_from_callback(void **state)
{
	struct event_base *base = event_base_new();
	char srv[64];
	int sfd = silent_server(srv, sizeof(srv));
	struct net_dns *d = dns_new(base, srv, 5000);
	struct got g = { 0 }, other = { 0 };
	(void)state;

	g.free_dns = &d;
	start(d, "pending.test", true, &other);
	start(d, "[127.0.0.1]", false, &g);
	event_base_loop(base, EVLOOP_ONCE);
	assert_int_equal(g.calls, 1);
	assert_null(d);
	assert_int_equal(other.calls, 0);
	net_route_free(&g.route);
	close(sfd);
	event_base_free(base);
}

static void
test_bad_servers(void **state)
{
	static const char *const bad[] = {
		"not an address", "", "127.0.0.1:53,bogus",
	};
	struct event_base *base = event_base_new();
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct net_dns *d = NULL;
		const char *error = NULL;
		int r = net_dns_new(base, bad[i], 100, 1, &d, &error);
		CHECK(r == -1 && d == NULL && error != NULL,
		      "servers \"%s\": got %d, want -1 with an error", bad[i],
		      r);
		net_dns_free(&d);
	}
	event_base_free(base);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_cancel_deferred),
		cmocka_unit_test(test_silent_server),
		cmocka_unit_test(test_free_in_flight),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_bad_servers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net_connect.c on 127.0.0.1: a connection that succeeds,
 * one refused, one that times out (a listener whose accept queue is
 * full drops the SYN), and cancellation. The callback never runs inside
 * net_connect(), and no descriptor leaks.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "unit_check.h"
#include "net/net.h"

struct got {
	unsigned calls;
	int fd;
	char error[128];
};

static bool in_connect;

static void
on_connect(void *arg, int fd, const char *error)
{
	struct got *g = arg;

	CHECK(!in_connect, "callback ran inside net_connect()");
	g->calls++;
	g->fd = fd;
	snprintf(g->error, sizeof(g->error), "%s", error != NULL ? error : "");
}

static unsigned
open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(dir);
	while (readdir(dir) != NULL)
		n++;
	closedir(dir);
	return n;
}

/* a TCP socket bound to 127.0.0.1 and a free port */
static int
bound(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

static void
run_until(struct event_base *base, const struct got *g, unsigned seconds)
{
	struct timeval bound_tv = { seconds, 0 };

	event_base_loopexit(base, &bound_tv);
	while (g->calls == 0 && !event_base_got_exit(base))
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			break;
}

static struct net_connecting *
start(struct event_base *base, const struct sockaddr_in *to, unsigned t,
      struct got *g)
{
	struct net_connecting *nc = NULL;
	const char *error = NULL;
	int r;

	in_connect = true;
	r = net_connect(base, (const struct sockaddr *)to, sizeof(*to), t,
			on_connect, g, &nc, &error);
	in_connect = false;
	assert_int_equal(r, 0);
	assert_non_null(nc);
	assert_int_equal(g->calls, 0);
	return nc;
}

static void
test_connected(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin, peer;
	socklen_t len = sizeof(peer);
	int lfd = bound(&sin);
	struct got g = { 0 };
	unsigned before = open_fds();
	(void)state;

	assert_int_equal(listen(lfd, 8), 0);
	start(base, &sin, 5, &g);
	run_until(base, &g, 10);
	assert_int_equal(g.calls, 1);
	assert_true(g.fd >= 0);
	assert_string_equal(g.error, "");
	assert_int_equal(getpeername(g.fd, (struct sockaddr *)&peer, &len), 0);
	assert_int_equal(peer.sin_port, sin.sin_port);
	close(g.fd);
	assert_int_equal(open_fds(), before);
	close(lfd);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

static void
test_refused(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin;
	int fd = bound(&sin);
	struct got g = { 0 };
	unsigned before;
	(void)state;

	close(fd); /* nobody listens on the port now */
	before = open_fds();
	start(base, &sin, 5, &g);
	run_until(base, &g, 10);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.fd, -1);
	assert_string_equal(g.error, strerror(ECONNREFUSED));
	assert_int_equal(open_fds(), before);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

static void
test_timeout(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin;
	int lfd = bound(&sin), fill[4];
	struct got g = { 0 };
	(void)state;

	/* backlog 0: the accept queue holds one connection; with it full,
	 * Linux drops further SYNs and the handshake never ends */
	assert_int_equal(listen(lfd, 0), 0);
	for (size_t i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
				 SOCK_CLOEXEC, 0);
		(void)connect(fill[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100 * 1000);
	start(base, &sin, 1, &g);
	run_until(base, &g, 10);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.fd, -1);
	assert_string_equal(g.error, strerror(ETIMEDOUT));
	for (size_t i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

static void
test_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin;
	int lfd = bound(&sin), fd;
	struct got g = { 0 };
	unsigned before = open_fds();
	struct net_connecting *nc;
	(void)state;

	assert_int_equal(listen(lfd, 8), 0);
	nc = start(base, &sin, 5, &g);
	net_connect_cancel(&nc);
	assert_null(nc);
	net_connect_cancel(&nc); /* NULL-safe */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 0);
	assert_int_equal(open_fds(), before);

	/* cancelled after a refusal was seen but before it was reported */
	fd = bound(&sin);
	close(fd);
	nc = start(base, &sin, 5, &g);
	usleep(50 * 1000);
	net_connect_cancel(&nc);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(g.calls, 0);
	assert_int_equal(open_fds(), before);
	close(lfd);
	event_base_free(base);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connected),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

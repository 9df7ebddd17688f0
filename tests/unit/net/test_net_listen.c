/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net_listen.c on loopback: "*" is 0.0.0.0 and [::] under
 * one listener and one name, on the same port; "::" and "::1" take no
 * IPv4, "127.0.0.1" no IPv6; a machine without IPv6 (socket(AF_INET6)
 * fails, simulated here) still gets "*" on IPv4, but not an explicit IPv6
 * address; a port in use fails whole, without leaking a descriptor.
 * Needs ::1 on the test machine (skipped without it).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "unit_check.h"
#include "net/net.h"

/*
 * socket(2) as libtern sees it: with no_ipv6 set, AF_INET6 fails as on
 * a kernel without IPv6. This definition in the test program takes the
 * place of the C library's for the whole program.
 */
static bool no_ipv6;

int socket(int domain, int type, int protocol);
int
socket(int domain, int type, int protocol)
{
	if (no_ipv6 && domain == AF_INET6) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return (int)syscall(SYS_socket, domain, type, protocol);
}

struct got {
	unsigned calls;
	int family;          /* the peer's */
	int local_family;
};

static void
on_accept(void *arg, int fd, const struct sockaddr *peer,
	  const struct sockaddr *local)
{
	struct got *g = arg;

	g->calls++;
	g->family = peer->sa_family;
	g->local_family = local->sa_family;
	(void)close(fd);
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

static bool
have_ipv6_loopback(void)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
				     .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	(void)close(fd);
	return ok;
}

/* the port of "...:P" (the last one of the name) */
static unsigned
name_port(const char *name)
{
	const char *c = strrchr(name, ':');
	assert_non_null(c);
	return (unsigned)strtoul(c + 1, NULL, 10);
}

/* connects a blocking client to ip (v4 or v6 text) and port: 0 or errno */
static int
try_connect(const char *ip, unsigned port, int *fd_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err = 0;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
		len = sizeof(*s4);
	}
	fd = (int)syscall(SYS_socket, ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
			  0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		err = errno;
		(void)close(fd);
		fd = -1;
	}
	*fd_r = fd;
	return err;
}

/* connects to ip:port and runs the loop until the listener accepts */
static void
expect_accept(struct event_base *base, struct got *g, const char *ip,
	      unsigned port, int family)
{
	unsigned before = g->calls;
	int fd, err = try_connect(ip, port, &fd);

	CHECK(err == 0, "connect %s port %u: got %s, want success", ip, port,
	      strerror(err));
	if (err != 0)
		return;
	/* at most 5 s */
	for (unsigned ms = 0; g->calls == before && ms < 5000; ms++) {
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
		if (g->calls == before)
			(void)usleep(1000);
	}
	CHECK(g->calls == before + 1, "connect %s: got %u accepts, want 1", ip,
	      g->calls - before);
	CHECK(g->family == family && g->local_family == family,
	      "connect %s: peer family %d local %d, want %d", ip, g->family,
	      g->local_family, family);
	(void)close(fd);
}

static void
expect_refused(const char *ip, unsigned port)
{
	int fd, err = try_connect(ip, port, &fd);

	CHECK(err == ECONNREFUSED, "connect %s port %u: got %s, want "
	      "refused", ip, port, err == 0 ? "success" : strerror(err));
	if (fd >= 0)
		(void)close(fd);
}

static int
setup(void **state)
{
	if (!have_ipv6_loopback()) {
		print_message("no ::1 on this machine: IPv6 cases skipped\n");
		*state = NULL;
		return 0;
	}
	*state = event_base_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	if (*state != NULL)
		event_base_free(*state);
	no_ipv6 = false;
	return 0;
}

static void
test_any_is_both(void **state)
{
	struct event_base *base = *state;
	struct net_listener *l = NULL;
	struct got g = { 0 };
	char *error = NULL, want[64];
	unsigned fds, port;

	if (base == NULL)
		skip();
	fds = open_fds();
	assert_int_equal(net_listen(base, "*", "0", on_accept, &g, &l,
				    &error), 0);
	port = name_port(net_listener_name(l));
	snprintf(want, sizeof(want), "0.0.0.0:%u,[::]:%u", port, port);
	CHECK(strcmp(net_listener_name(l), want) == 0, "name: got %s, want %s",
	      net_listener_name(l), want);
	expect_accept(base, &g, "127.0.0.1", port, AF_INET);
	expect_accept(base, &g, "::1", port, AF_INET6);
	expect_accept(base, &g, "127.0.0.1", port, AF_INET);
	net_listener_free(&l);
	assert_null(l);
	expect_refused("127.0.0.1", port);
	expect_refused("::1", port);
	CHECK(open_fds() == fds, "descriptors: got %u, want %u", open_fds(),
	      fds);
	assert_int_equal(failures, 0);
}

static const struct {
	const char *address;
	const char *name_prefix;
	const char *accepts;
	int family;
	const char *refuses;
} one_family[] = {
	{ "::", "[::]:", "::1", AF_INET6, "127.0.0.1" },
	{ "::1", "[::1]:", "::1", AF_INET6, "127.0.0.1" },
	{ "127.0.0.1", "127.0.0.1:", "127.0.0.1", AF_INET, "::1" },
	{ "0.0.0.0", "0.0.0.0:", "127.0.0.1", AF_INET, "::1" },
};

static void
test_one_family(void **state)
{
	struct event_base *base = *state;

	if (base == NULL)
		skip();
	for (size_t i = 0; i < sizeof(one_family) / sizeof(one_family[0]);
	     i++) {
		struct net_listener *l = NULL;
		struct got g = { 0 };
		char *error = NULL;
		const char *name;
		unsigned port;

		if (net_listen(base, one_family[i].address, "0", on_accept, &g,
			       &l, &error) < 0) {
			CHECK(false, "%s: got error %s, want success",
			      one_family[i].address, error);
			free(error);
			continue;
		}
		name = net_listener_name(l);
		port = name_port(name);
		CHECK(strncmp(name, one_family[i].name_prefix,
			      strlen(one_family[i].name_prefix)) == 0 &&
		      strchr(name, ',') == NULL,
		      "%s: name got %s, want %s<port>", one_family[i].address,
		      name, one_family[i].name_prefix);
		expect_accept(base, &g, one_family[i].accepts, port,
			      one_family[i].family);
		expect_refused(one_family[i].refuses, port);
		net_listener_free(&l);
	}
	assert_int_equal(failures, 0);
}

static void
test_no_ipv6(void **state)
{
	struct event_base *base = *state;
	struct net_listener *l = NULL;
	struct got g = { 0 };
	char *error = NULL, want[64];
	unsigned fds, port;

	if (base == NULL)
		skip();
	fds = open_fds();
	no_ipv6 = true;
	/* "*": IPv4 alone, with a warning */
	assert_int_equal(net_listen(base, "*", "0", on_accept, &g, &l,
				    &error), 0);
	port = name_port(net_listener_name(l));
	snprintf(want, sizeof(want), "0.0.0.0:%u", port);
	CHECK(strcmp(net_listener_name(l), want) == 0, "name: got %s, want %s",
	      net_listener_name(l), want);
	expect_accept(base, &g, "127.0.0.1", port, AF_INET);
	net_listener_free(&l);
	/* an IPv6 address asked for by name: an error */
	assert_int_equal(net_listen(base, "::1", "0", on_accept, &g, &l,
				    &error), -1);
	assert_null(l);
	CHECK(strstr(error, "cannot listen on [::1]:0: ") == error,
	      "error: got %s", error);
	free(error);
	no_ipv6 = false;
	CHECK(open_fds() == fds, "descriptors: got %u, want %u", open_fds(),
	      fds);
	assert_int_equal(failures, 0);
}

static void
test_port_in_use(void **state)
{
	struct event_base *base = *state;
	struct net_listener *l = NULL, *l2 = NULL;
	struct got g = { 0 };
	char *error = NULL, port[16], want[64];
	unsigned fds;

	if (base == NULL)
		skip();
	/* [::] of the same port taken: "*" fails whole (no IPv4 only
	 * server when IPv6 is there but taken) */
	assert_int_equal(net_listen(base, "::", "0", on_accept, &g, &l,
				    &error), 0);
	snprintf(port, sizeof(port), "%u", name_port(net_listener_name(l)));
	fds = open_fds();
	assert_int_equal(net_listen(base, "*", port, on_accept, &g, &l2,
				    &error), -1);
	assert_null(l2);
	snprintf(want, sizeof(want), "cannot listen on [::]:%s: ", port);
	CHECK(strstr(error, want) == error, "error: got %s, want %s...", error,
	      want);
	free(error);
	CHECK(open_fds() == fds, "descriptors: got %u, want %u", open_fds(),
	      fds);
	net_listener_free(&l);
	net_listener_free(&l);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_any_is_both, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_one_family, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_ipv6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_in_use, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("net_listen", tests, NULL, NULL);
}

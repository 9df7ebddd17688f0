/* SPDX-License-Identifier: MIT */
/*
 * Listening sockets on the event loop, and address formatting. "*" is
 * two sockets, 0.0.0.0 and [::] (IPV6_V6ONLY), under one listener; a
 * machine without IPv6 gets IPv4 alone and a warning.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"

/*
 * One listener may hold a socket per address family: "*" is 0.0.0.0 and
 * [::], "localhost" its IPv4 and IPv6 loopback addresses. They share the
 * accept callback, the name and the pause after accept errors.
 */
#define LISTENER_SOCKS_MAX 2

struct net_listener {
	struct evconnlistener *evl[LISTENER_SOCKS_MAX];
	size_t nevl;
	struct event *resume_ev;   /* re-arms accept after EMFILE and co */
	net_accept_cb *cb;
	void *arg;
	/* "127.0.0.1:25", "0.0.0.0:25,[::]:25" or "unix:/path" */
	char name[LISTENER_SOCKS_MAX * NET_ADDR_TEXT_MAX];
	char *unix_path;           /* a local socket, unlinked at free */
};

void
net_addr_ip(const struct sockaddr *sa, char *out, size_t outsz)
{
	const void *a = NULL;
	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)outsz) == NULL)
		snprintf(out, outsz, "unknown");
}

void
net_addr_text(const struct sockaddr *sa, char *out, size_t outsz)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port = 0;

	net_addr_ip(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	if (sa->sa_family == AF_INET6)
		snprintf(out, outsz, "[%s]:%u", ip, port);
	else
		snprintf(out, outsz, "%s:%u", ip, port);
}

static void
listener_accept(struct evconnlistener *evl, evutil_socket_t fd,
		struct sockaddr *peer, int peerlen, void *arg)
{
	struct net_listener *l = arg;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	(void)evl;
	(void)peerlen;

	memset(&local, 0, sizeof(local));
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
		local.ss_family = AF_UNSPEC;
	l->cb(l->arg, fd, peer, (struct sockaddr *)&local);
}

static void
listener_resume(evutil_socket_t fd, short what, void *arg)
{
	struct net_listener *l = arg;
	(void)fd;
	(void)what;
	for (size_t i = 0; i < l->nevl; i++)
		evconnlistener_enable(l->evl[i]);
}

static void
listener_error(struct evconnlistener *evl, void *arg)
{
	struct net_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, 200 * 1000 };
	(void)evl;

	/* EMFILE and friends leave the connection in the backlog: accepting
	 * again at once would spin, so pause this listener (all its
	 * sockets: they share the descriptor table) briefly */
	log_error("net listener=%s event=accept_error error=\"%s\"", l->name,
		  evutil_socket_error_to_string(err));
	for (size_t i = 0; i < l->nevl; i++)
		evconnlistener_disable(l->evl[i]);
	event_add(l->resume_ev, &pause);
}

/* a listening TCP socket (non-blocking, close-on-exec) on sa; -1 and errno */
static int
listen_socket(const struct sockaddr *sa, socklen_t salen)
{
	int one = 1;
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/* IPV6_V6ONLY: an IPv6 socket takes IPv6 only, whatever the
	 * system default (Linux net.ipv6.bindv6only is 0, OpenBSD cannot
	 * do anything else); IPv4 has a socket of its own */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			sizeof(one)) < 0) ||
	    bind(fd, sa, salen) < 0 || listen(fd, 1024) < 0) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* the machine has no IPv6 (a kernel without it, no address to bind) */
static bool
no_ipv6_errno(int err)
{
	return err == EAFNOSUPPORT || err == EADDRNOTAVAIL ||
	       err == EPROTONOSUPPORT;
}

static void
set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons(
			(uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(
			(uint16_t)port);
}

static unsigned
get_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)
				     ->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)ss)
				     ->sin6_port);
	return 0;
}

/*
 * The addresses to bind, IPv4 first, at most one per family. "*" is
 * 0.0.0.0 and [::]: two sockets, as one [::] socket with IPV6_V6ONLY off
 * is not available everywhere, and where it is a system default of on
 * would silently leave IPv4 out. A name is what it resolves to
 * ("localhost": 127.0.0.1 and ::1, as /etc/hosts says).
 */
static int
listen_addrs(const char *address, const char *port,
	     struct sockaddr_storage *addrs, socklen_t *lens, size_t *n_r,
	     char **error_r)
{
	struct addrinfo hints, *res = NULL;
	bool any = strcmp(address, "*") == 0;
	size_t n = 0;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV |
			 (any ? AI_NUMERICHOST : 0);
	r = getaddrinfo(any ? "0.0.0.0" : address, port, &hints, &res);
	if (r != 0) {
		*error_r = xasprintf("cannot resolve %s:%s: %s", address, port,
				     gai_strerror(r));
		return -1;
	}
	for (int family = AF_INET; ; family = AF_INET6) {
		for (const struct addrinfo *ai = res; ai != NULL;
		     ai = ai->ai_next) {
			if (ai->ai_family != family ||
			    ai->ai_addrlen > sizeof(addrs[0]))
				continue;
			memset(&addrs[n], 0, sizeof(addrs[n]));
			memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
			lens[n++] = ai->ai_addrlen;
			break;
		}
		if (family == AF_INET6)
			break;
	}
	freeaddrinfo(res);
	if (any && n == 1) {
		struct sockaddr_in6 *sin6 =
			(struct sockaddr_in6 *)(void *)&addrs[1];

		memset(&addrs[1], 0, sizeof(addrs[1]));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)get_port(&addrs[0]));
		lens[n++] = sizeof(*sin6);
	}
	if (n == 0) {
		*error_r = xasprintf("cannot resolve %s:%s: no IPv4 or IPv6 "
				     "address", address, port);
		return -1;
	}
	*n_r = n;
	return 0;
}

int
net_listen(struct event_base *base, const char *address, const char *port,
	   net_accept_cb *cb, void *arg, struct net_listener **l_r,
	   char **error_r)
{
	struct sockaddr_storage addrs[LISTENER_SOCKS_MAX];
	socklen_t lens[LISTENER_SOCKS_MAX];
	struct net_listener *l;
	unsigned bound_port = 0;
	size_t naddrs = 0;

	if (listen_addrs(address, port, addrs, lens, &naddrs, error_r) < 0)
		return -1;
	l = xcalloc(1, sizeof(*l));
	l->cb = cb;
	l->arg = arg;
	l->resume_ev = event_new(base, -1, 0, listener_resume, l);
	for (size_t i = 0; i < naddrs; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char text[NET_ADDR_TEXT_MAX];
		int fd;

		/* port 0 (any free port): the same one for both families */
		if (get_port(&addrs[i]) == 0 && bound_port != 0)
			set_port(&addrs[i], bound_port);
		net_addr_text((struct sockaddr *)&addrs[i], text, sizeof(text));
		fd = listen_socket((struct sockaddr *)&addrs[i], lens[i]);
		if (fd < 0 && addrs[i].ss_family == AF_INET6 && naddrs > 1 &&
		    no_ipv6_errno(errno)) {
			/* "*" or "localhost" on a machine without IPv6:
			 * IPv4 alone is still a working server */
			log_warn("net listener=%s event=listen_skipped "
				 "error=\"%s\" reason=\"no IPv6: IPv4 only\"",
				 text, strerror(errno));
			continue;
		}
		if (fd < 0) {
			*error_r = xasprintf("cannot listen on %s: %s", text,
					     strerror(errno));
			goto fail;
		}
		l->evl[l->nevl] = evconnlistener_new(base, listener_accept, l,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (l->evl[l->nevl] == NULL) {
			*error_r = xasprintf("cannot listen on %s", text);
			(void)close(fd);
			goto fail;
		}
		evconnlistener_set_error_cb(l->evl[l->nevl], listener_error);
		l->nevl++;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
			net_addr_text((struct sockaddr *)&ss, text,
				      sizeof(text));
			bound_port = get_port(&ss);
		}
		/* room for LISTENER_SOCKS_MAX texts and the commas */
		snprintf(l->name + strlen(l->name),
			 sizeof(l->name) - strlen(l->name), "%s%s",
			 l->nevl > 1 ? "," : "", text);
	}
	*l_r = l;
	return 0;
fail:
	net_listener_free(&l);
	return -1;
}

int
net_listen_unix(struct event_base *base, const char *path, unsigned mode,
		net_accept_cb *cb, void *arg, struct net_listener **l_r,
		char **error_r)
{
	struct sockaddr_un sa_un;
	struct net_listener *l;
	int fd;

	memset(&sa_un, 0, sizeof(sa_un));
	sa_un.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa_un.sun_path)) {
		*error_r = xasprintf("socket path %s is longer than %zu "
				     "octets", path, sizeof(sa_un.sun_path) - 1);
		return -1;
	}
	memcpy(sa_un.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	/* a socket left by an earlier run that died: nobody listens on it
	 * (the spool lock says no other server runs on this state_dir) */
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa_un, sizeof(sa_un)) < 0 ||
	    chmod(path, (mode_t)mode) < 0 || listen(fd, 128) < 0) {
		*error_r = xasprintf("cannot listen on %s: %s", path,
				     strerror(errno));
		(void)close(fd);
		return -1;
	}
	l = xcalloc(1, sizeof(*l));
	l->cb = cb;
	l->arg = arg;
	l->evl[0] = evconnlistener_new(base, listener_accept, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->evl[0] == NULL) {
		*error_r = xasprintf("cannot listen on %s", path);
		(void)close(fd);
		(void)unlink(path);
		free(l);
		return -1;
	}
	snprintf(l->name, sizeof(l->name), "unix:%s", path);
	l->unix_path = xstrdup(path);
	l->nevl = 1;
	evconnlistener_set_error_cb(l->evl[0], listener_error);
	l->resume_ev = event_new(base, -1, 0, listener_resume, l);
	*l_r = l;
	return 0;
}

const char *
net_listener_name(const struct net_listener *l)
{
	return l->name;
}

void
net_listener_free(struct net_listener **lp)
{
	struct net_listener *l = *lp;
	if (l == NULL)
		return;
	*lp = NULL;
	for (size_t i = 0; i < l->nevl; i++)
		evconnlistener_free(l->evl[i]);
	if (l->resume_ev != NULL)
		event_free(l->resume_ev);
	if (l->unix_path != NULL) {
		(void)unlink(l->unix_path);
		free(l->unix_path);
	}
	free(l);
}

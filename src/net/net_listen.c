/* SPDX-License-Identifier: MIT */
/* Listening sockets on the event loop, and address formatting. */
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

struct net_listener {
	struct evconnlistener *evl;
	struct event *resume_ev;   /* re-arms accept after EMFILE and co */
	net_accept_cb *cb;
	void *arg;
	char name[NET_ADDR_TEXT_MAX];
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
	evconnlistener_enable(l->evl);
}

static void
listener_error(struct evconnlistener *evl, void *arg)
{
	struct net_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { 0, 200 * 1000 };

	/* EMFILE and friends leave the connection in the backlog: accepting
	 * again at once would spin, so pause this listener briefly */
	log_error("net listener=%s event=accept_error error=\"%s\"", l->name,
		  evutil_socket_error_to_string(err));
	evconnlistener_disable(evl);
	event_add(l->resume_ev, &pause);
}

int
net_listen(struct event_base *base, const char *address, const char *port,
	   net_accept_cb *cb, void *arg, struct net_listener **l_r,
	   char **error_r)
{
	struct addrinfo hints, *res = NULL;
	struct net_listener *l;
	const char *node = address;
	int r;

	if (strcmp(address, "*") == 0)
		node = "0.0.0.0";
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(node, port, &hints, &res);
	if (r != 0) {
		*error_r = xasprintf("cannot resolve %s:%s: %s", address, port,
				     gai_strerror(r));
		return -1;
	}
	l = xcalloc(1, sizeof(*l));
	l->cb = cb;
	l->arg = arg;
	l->evl = evconnlistener_new_bind(base, listener_accept, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
		1024, res->ai_addr, (int)res->ai_addrlen);
	if (l->evl == NULL) {
		*error_r = xasprintf("cannot listen on %s:%s: %s", address,
				     port, strerror(errno));
		freeaddrinfo(res);
		free(l);
		return -1;
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getsockname(evconnlistener_get_fd(l->evl),
				(struct sockaddr *)&ss, &len) == 0)
			net_addr_text((struct sockaddr *)&ss, l->name,
				      sizeof(l->name));
		else
			snprintf(l->name, sizeof(l->name), "%s:%s", address, port);
	}
	evconnlistener_set_error_cb(l->evl, listener_error);
	l->resume_ev = event_new(base, -1, 0, listener_resume, l);
	freeaddrinfo(res);
	*l_r = l;
	return 0;
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
	l->evl = evconnlistener_new(base, listener_accept, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->evl == NULL) {
		*error_r = xasprintf("cannot listen on %s", path);
		(void)close(fd);
		(void)unlink(path);
		free(l);
		return -1;
	}
	snprintf(l->name, sizeof(l->name), "unix:%s", path);
	l->unix_path = xstrdup(path);
	evconnlistener_set_error_cb(l->evl, listener_error);
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
	evconnlistener_free(l->evl);
	event_free(l->resume_ev);
	if (l->unix_path != NULL) {
		(void)unlink(l->unix_path);
		free(l->unix_path);
	}
	free(l);
}

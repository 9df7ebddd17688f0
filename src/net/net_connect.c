/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking outgoing connections: socket, connect, then one libevent
 * write event with the timeout; SO_ERROR says how the handshake ended.
 * The callback always runs from the loop, never inside net_connect(),
 * and it also reports a failure that connect() gives at once (loopback
 * refusals, no route), so the caller has one path for them all;
 * net_connect() itself fails only when no socket can be made.
 */
#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"

struct net_connecting {
	int fd;
	struct event *ev;
	int err;                /* connect() failed at once with this */
	net_connect_cb *cb;
	void *arg;
};

static void
connecting_free(struct net_connecting *nc)
{
	if (nc->ev != NULL)
		event_free(nc->ev);
	if (nc->fd >= 0)
		close(nc->fd);
	free(nc);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net_connecting *nc = arg;
	net_connect_cb *cb = nc->cb;
	void *cbarg = nc->arg;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)fd;
	if (nc->err != 0) {
		err = nc->err;
	} else if (what & EV_TIMEOUT) {
		err = ETIMEDOUT;
	} else if (getsockopt(nc->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
		err = errno;
	}
	if (err != 0) {
		connecting_free(nc);
		cb(cbarg, -1, strerror(err));
		return;
	}
	/* the descriptor is the callee's now */
	fd = nc->fd;
	nc->fd = -1;
	connecting_free(nc);
	cb(cbarg, (int)fd, NULL);
}

int
net_connect(struct event_base *base, const struct sockaddr *to,
	    socklen_t tolen, unsigned timeout_s, net_connect_cb *cb,
	    void *arg, struct net_connecting **nc_r, const char **error_r)
{
	struct timeval tv = { .tv_sec = timeout_s, .tv_usec = 0 };
	struct net_connecting *nc;
	int fd, err = 0;

	fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	/* a non-blocking connect on loopback may finish at once; the write
	 * event then fires on the next loop turn all the same. EINTR leaves
	 * the handshake going on (POSIX), just like EINPROGRESS. */
	if (connect(fd, to, tolen) < 0 && errno != EINPROGRESS &&
	    errno != EINTR)
		err = errno;
	nc = xcalloc(1, sizeof(*nc));
	nc->fd = fd;
	nc->err = err;
	nc->cb = cb;
	nc->arg = arg;
	if (err != 0) {
		/* reported from the loop, like every other outcome */
		tv.tv_sec = 0;
		nc->ev = event_new(base, -1, 0, connect_cb, nc);
	} else {
		nc->ev = event_new(base, fd, EV_WRITE, connect_cb, nc);
	}
	if (nc->ev == NULL ||
	    event_add(nc->ev, timeout_s > 0 || err != 0 ? &tv : NULL) < 0) {
		*error_r = "cannot add a connect event";
		connecting_free(nc);
		return -1;
	}
	*nc_r = nc;
	return 0;
}

void
net_connect_cancel(struct net_connecting **ncp)
{
	struct net_connecting *nc = *ncp;

	if (nc == NULL)
		return;
	*ncp = NULL;
	connecting_free(nc);
}

/* SPDX-License-Identifier: MIT */
/*
 * struct conn: one non-blocking socket with an input and an output
 * evbuffer, driven by two plain libevent events.
 *
 * The shape is chosen to spend as few system calls per SMTP exchange as
 * possible, since a mail server answers many small commands:
 *   - the read event stays registered for the life of the connection;
 *     pausing (conn_read_enable false) only stops on_read callbacks while
 *     the socket is still read into the input queue, so a session that
 *     waits for its commit never touches epoll. Reading really stops
 *     (and TCP slows the peer) only when the input queue holds
 *     CONN_INPUT_HIGH bytes, or after the peer's FIN.
 *   - output is flushed once per loop iteration, after every callback
 *     that queued replies has run (a manually activated write event), so
 *     pipelined replies leave in one send; the write event is registered
 *     with epoll only when the socket's buffer is full.
 *   - reads go straight into reserved evbuffer space (no FIONREAD probe).
 * The timeout bounds both directions: no input while reading, and no
 * socket space while output waits (a peer that stops taking replies).
 * TLS (net_tls.c) is a transport under the same queues: c->in and c->out
 * hold plaintext either way, and the plain path only tests c->tls.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/net.h"
#include "net/net_int.h"

static void
conn_rd_add(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->timeout, .tv_usec = 0 };

	if (c->dead || c->eof)
		return;
	if (event_add(c->rd, c->timeout > 0 ? &tv : NULL) == 0)
		c->rd_added = true;
}

/* waits for socket space; the timeout also bounds a peer that takes no
 * output at all */
static void
conn_wr_add(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->timeout, .tv_usec = 0 };

	if (c->dead)
		return;
	if (event_add(c->wr, c->timeout > 0 ? &tv : NULL) == 0)
		c->wr_added = true;
}

void
net_conn_rd_del(struct conn *c)
{
	if (c->rd_added) {
		(void)event_del(c->rd);
		c->rd_added = false;
	}
}

void
net_conn_fail(struct conn *c)
{
	c->dead = true;
	net_conn_rd_del(c);
	if (c->wr_added) {
		(void)event_del(c->wr);
		c->wr_added = false;
	}
	c->h->on_close(c->arg);
}

/* reads once; returns false when the connection went away */
static bool
conn_fill(struct conn *c)
{
	struct evbuffer_iovec v[2];
	size_t have = evbuffer_get_length(c->in);
	size_t want = CONN_INPUT_HIGH - have;
	struct iovec iov[2];
	int nv;
	ssize_t n;

	if (c->tls != NULL)
		return net_conn_tls_fill(c);
	if (want > CONN_READ_CHUNK)
		want = CONN_READ_CHUNK;
	nv = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
	if (nv <= 0)
		log_fatal("net event=evbuffer_reserve failed");
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	if (nv == 2 && v[0].iov_len >= want)
		nv = 1;
	n = readv(c->fd, iov, nv);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return true;
		net_conn_fail(c);
		return false;
	}
	if (n == 0) {
		/* a half-close: the peer may still read our replies */
		c->eof = true;
		net_conn_rd_del(c);
		c->h->on_close(c->arg);
		return false;
	}
	for (int i = 0; i < nv; i++) {
		size_t take = (size_t)n < v[i].iov_len ? (size_t)n : v[i].iov_len;
		v[i].iov_len = take;
		n -= (ssize_t)take;
	}
	if (evbuffer_commit_space(c->in, v, nv) < 0)
		log_fatal("net event=evbuffer_commit failed");
	if (evbuffer_get_length(c->in) >= CONN_INPUT_HIGH)
		net_conn_rd_del(c); /* TCP slows the peer until we drain */
	return true;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;

	if (c->dead)
		return;
	if (what & EV_TIMEOUT) {
		c->h->on_timeout(c->arg);
		return;
	}
	/* after EOF or at the high-water mark the socket is left alone; a
	 * manual activation then only reports what is queued */
	if (c->rd_added && !conn_fill(c))
		return;
	if (c->paused) {
		c->unseen = true;
		return;
	}
	c->unseen = false;
	if (evbuffer_get_length(c->in) > 0)
		c->h->on_read(c->arg);
}

/* writes what is queued; returns false when the connection failed */
static bool
conn_flush(struct conn *c)
{
	if (c->tls != NULL)
		return net_conn_tls_flush(c);
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			net_conn_fail(c);
			return false;
		}
		if (n == 0)
			break;
	}
	return true;
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;

	if ((what & EV_TIMEOUT) && !(what & EV_WRITE)) {
		/* no socket space for a whole timeout */
		if (!c->dead)
			c->h->on_timeout(c->arg);
		return;
	}
	c->wr_active = false;
	if (c->dead || !conn_flush(c))
		return;
	if ((c->tls != NULL ? net_conn_tls_unsent(c) :
	     evbuffer_get_length(c->out)) > 0) {
		if (!c->wr_added)
			conn_wr_add(c);
		return;
	}
	if (c->wr_added) {
		(void)event_del(c->wr);
		c->wr_added = false;
	}
	if (c->tls != NULL && conn_output_len(c) > 0)
		return; /* plaintext waits for the TLS handshake */
	if (c->shut_wr) {
		c->shut_wr = false;
		(void)shutdown(c->fd, SHUT_WR);
	}
	if (c->notify_drained)
		c->h->on_drained(c->arg); /* may free c */
}

/* flush at the end of this loop iteration */
void
net_conn_schedule_flush(struct conn *c)
{
	if (c->wr_active || c->wr_added || c->dead)
		return;
	c->wr_active = true;
	event_active(c->wr, EV_WRITE, 1);
}

struct conn *
conn_new(struct event_base *base, int fd, const struct conn_handler *h,
	 void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->fd = fd;
	c->h = h;
	c->arg = arg;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rd = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	if (c->in == NULL || c->out == NULL || c->rd == NULL || c->wr == NULL)
		log_fatal("net event=conn_new failed");
	conn_rd_add(c);
	return c;
}

void
conn_free(struct conn **cp)
{
	struct conn *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	net_conn_tls_free(&c->tls);
	event_free(c->rd);
	event_free(c->wr);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	close(c->fd);
	free(c);
}

const uint8_t *
conn_input_peek(struct conn *c, size_t *len_r)
{
	struct evbuffer_iovec v;

	if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1) {
		*len_r = 0;
		return NULL;
	}
	*len_r = v.iov_len;
	return v.iov_base;
}

void
conn_input_drain(struct conn *c, size_t n)
{
	evbuffer_drain(c->in, n);
	if (!c->rd_added && evbuffer_get_length(c->in) < CONN_INPUT_HIGH)
		conn_rd_add(c);
}

size_t
conn_input_len(struct conn *c)
{
	return evbuffer_get_length(c->in);
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->dead)
		return -1;
	if (n == 0)
		return 0;
	if (evbuffer_add(c->out, p, n) < 0)
		return -1;
	net_conn_schedule_flush(c);
	return 0;
}

size_t
conn_output_len(struct conn *c)
{
	size_t n = evbuffer_get_length(c->out);

	if (c->tls != NULL)
		n += net_conn_tls_pending(c);
	return n;
}

void
conn_notify_drained(struct conn *c, bool on)
{
	c->notify_drained = on;
	if (on && !c->dead && conn_output_len(c) == 0)
		c->h->on_drained(c->arg);
}

void
conn_shutdown_write(struct conn *c)
{
	if (c->dead)
		return;
	if (c->tls != NULL) {
		/* the flush sends close_notify first (RFC 8446 §6.1) */
		c->shut_wr = true;
		net_conn_schedule_flush(c);
	} else if (evbuffer_get_length(c->out) == 0) {
		(void)shutdown(c->fd, SHUT_WR);
	} else {
		c->shut_wr = true;
	}
}

bool
conn_is_dead(const struct conn *c)
{
	return c->dead;
}

void
conn_read_enable(struct conn *c, bool on)
{
	if (!on) {
		c->paused = true;
		return;
	}
	if (!c->paused)
		return;
	c->paused = false;
	/* input that came while paused gets its on_read now (the read
	 * callback finds the socket empty and reports what is queued) */
	if (c->unseen && !c->dead) {
		c->unseen = false;
		event_active(c->rd, EV_READ, 1);
	}
}

void
conn_set_timeout(struct conn *c, unsigned seconds)
{
	if (seconds == c->timeout)
		return;
	c->timeout = seconds;
	/* re-adding only moves the timers */
	if (c->rd_added)
		conn_rd_add(c);
	if (c->wr_added)
		conn_wr_add(c);
}

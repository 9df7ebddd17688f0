/* SPDX-License-Identifier: MIT */
/*
 * struct conn on a libevent bufferevent: non-blocking reads into an input
 * queue bounded by a high-water mark (so a peer that pipelines faster than
 * we answer is slowed by TCP, never by our memory), queued writes, and a
 * read timeout. TLS will be a filter here later; callers see plain bytes.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "net/net.h"

/* at most this much unread input is buffered per connection */
#define CONN_INPUT_HIGH (64 * 1024)

struct conn {
	struct bufferevent *bev;
	const struct conn_handler *h;
	void *arg;
	bool dead;    /* failed: nothing more can be written */
	bool eof;     /* the peer closed its side; we may still write */
	bool notify_drained;
};

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	c->h->on_read(c->arg);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (c->notify_drained && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		c->h->on_drained(c->arg);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		c->h->on_timeout(c->arg);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		c->dead = true;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		c->h->on_close(c->arg);
	} else if (what & BEV_EVENT_EOF) {
		/* a half-close: the peer may still read our replies */
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		c->h->on_close(c->arg);
	}
}

struct conn *
conn_new(struct event_base *base, int fd, const struct conn_handler *h,
	 void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		log_fatal("net event=bufferevent_new failed");
	c->h = h;
	c->arg = arg;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_INPUT_HIGH);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

void
conn_free(struct conn **cp)
{
	struct conn *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	bufferevent_free(c->bev);
	free(c);
}

const uint8_t *
conn_input_peek(struct conn *c, size_t *len_r)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
		*len_r = 0;
		return NULL;
	}
	*len_r = v.iov_len;
	return v.iov_base;
}

void
conn_input_drain(struct conn *c, size_t n)
{
	evbuffer_drain(bufferevent_get_input(c->bev), n);
}

size_t
conn_input_len(struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_input(c->bev));
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->dead)
		return -1;
	if (n == 0)
		return 0;
	return bufferevent_write(c->bev, p, n) == 0 ? 0 : -1;
}

size_t
conn_output_len(struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
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
	if (!c->dead)
		(void)shutdown(bufferevent_getfd(c->bev), SHUT_WR);
}

bool
conn_is_dead(const struct conn *c)
{
	return c->dead;
}

void
conn_read_enable(struct conn *c, bool on)
{
	if (c->dead || c->eof)
		return;
	if (on)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

void
conn_set_timeout(struct conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };
	bufferevent_set_timeouts(c->bev, seconds ? &tv : NULL, NULL);
}

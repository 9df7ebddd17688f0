/* SPDX-License-Identifier: MIT */
/*
 * net: the event loop's sockets. Listeners accept connections; a struct
 * conn is one non-blocking connection with an input and an output queue,
 * a timeout and backpressure. TLS will live here too, so that the
 * layers above only ever see plain bytes. net never interprets them.
 */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/base.h"

struct event_base;

/* "127.0.0.1:25" or "[::1]:25" */
#define NET_ADDR_TEXT_MAX 64
void net_addr_text(const struct sockaddr *sa, char *out, size_t outsz);
/* the address alone, without port: "127.0.0.1", "::1" */
void net_addr_ip(const struct sockaddr *sa, char *out, size_t outsz);

struct net_listener;
/* a connection was accepted: fd is non-blocking and owned by the callee */
typedef void net_accept_cb(void *arg, int fd, const struct sockaddr *peer,
			   const struct sockaddr *local);

/*
 * Listens on address ("127.0.0.1", "::1", "*", "localhost") and port.
 * Returns 0, or -1 with *error_r (heap, caller frees).
 */
int net_listen(struct event_base *base, const char *address,
	       const char *port, net_accept_cb *cb, void *arg,
	       struct net_listener **l_r, char **error_r);
void net_listener_free(struct net_listener **lp);
/* the bound address as text */
const char *net_listener_name(const struct net_listener *l);

struct conn;

struct conn_handler {
	/* input arrived (conn_input_peek shows it) */
	void (*on_read)(void *arg);
	/* no input for the timeout while reading, or no socket space for
	 * it while output waits */
	void (*on_timeout)(void *arg);
	/* the peer closed its side (conn_is_dead false: queued input can
	 * still be read and replies written) or the connection failed
	 * (conn_is_dead true: only conn_free is left) */
	void (*on_close)(void *arg);
	/* all queued output was written (only called when asked for with
	 * conn_notify_drained) */
	void (*on_drained)(void *arg);
};

/* takes ownership of fd */
struct conn *conn_new(struct event_base *base, int fd,
		      const struct conn_handler *h, void *arg);
void conn_free(struct conn **cp);

/*
 * The first contiguous run of buffered input (NULL and 0 when empty); it
 * is valid until conn_input_drain or a return to the loop.
 */
const uint8_t *conn_input_peek(struct conn *c, size_t *len_r);
void conn_input_drain(struct conn *c, size_t n);
size_t conn_input_len(struct conn *c);

/* queues output; -1 when the connection is dead */
int conn_write(struct conn *c, const void *p, size_t n);
size_t conn_output_len(struct conn *c);
/* calls on_drained once the output queue is empty */
void conn_notify_drained(struct conn *c, bool on);

bool conn_is_dead(const struct conn *c);

/* sends FIN after the queued output; reading goes on */
void conn_shutdown_write(struct conn *c);

/*
 * Pauses or resumes on_read. While paused the socket is still read into
 * the input queue (so its EOF or failure is seen) until the queue holds
 * its high-water mark; then reading stops and TCP slows the peer.
 */
void conn_read_enable(struct conn *c, bool on);
/* the timeout in seconds, 0 for none */
void conn_set_timeout(struct conn *c, unsigned seconds);

#endif

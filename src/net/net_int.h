/* SPDX-License-Identifier: MIT */
/*
 * net's private parts: struct conn, shared by net_conn.c (the socket and
 * its queues) and net_tls.c (the TLS transport under it). Nothing outside
 * src/net/ includes this header.
 */
#ifndef TERN_NET_INT_H
#define TERN_NET_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

struct event;
struct evbuffer;
struct conn_tls;

/* at most this much unread input is buffered per connection */
#define CONN_INPUT_HIGH (64 * 1024)
/* one read takes at most this much */
#define CONN_READ_CHUNK (16 * 1024)

struct conn {
	int fd;
	struct event *rd;
	struct event *wr;
	struct evbuffer *in;  /* plaintext input */
	struct evbuffer *out; /* plaintext output */
	const struct conn_handler *h;
	void *arg;
	/* NULL on a plain connection: the only thing the plain path looks
	 * at; set by conn_start_tls() */
	struct conn_tls *tls;
	unsigned timeout;     /* read timeout in seconds, 0 for none */
	bool dead;            /* failed: nothing more can be written */
	bool eof;             /* the peer closed its side; we may still write */
	bool paused;          /* on_read is not called */
	bool unseen;          /* input arrived while paused */
	bool rd_added;        /* the read event is registered */
	bool wr_added;        /* the write event waits for socket space */
	bool wr_active;       /* a flush is scheduled for this iteration */
	bool shut_wr;         /* FIN once the output queue is empty */
	bool notify_drained;
};

/* net_conn.c */
void net_conn_fail(struct conn *c);
void net_conn_rd_del(struct conn *c);
void net_conn_schedule_flush(struct conn *c);

/* net_tls.c: the transport used when c->tls != NULL */
/* reads once from the socket; false when the connection went away */
bool net_conn_tls_fill(struct conn *c);
/* encrypts and writes what is queued; false when the connection failed */
bool net_conn_tls_flush(struct conn *c);
/* ciphertext (and pre-TLS plaintext) not yet written to the socket */
size_t net_conn_tls_pending(const struct conn *c);
/* what the socket can take now: the pending bytes, plus the queued
 * plaintext once the handshake is done */
size_t net_conn_tls_unsent(const struct conn *c);
void net_conn_tls_free(struct conn_tls **tp);

#endif

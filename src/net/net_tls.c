/* SPDX-License-Identifier: MIT */
/*
 * TLS as a transport under struct conn (OpenSSL 3). The layers above
 * keep using conn_input_peek/conn_write and see plaintext; they never see
 * a handshake, a record or an alert.
 *
 * The SSL object talks to two memory BIOs, never to the socket: net_conn
 * keeps doing all socket I/O (one read per readable event into a
 * buffer, one flush per loop iteration with evbuffer_write). This is
 * chosen over SSL on the fd because
 *   - OpenSSL never hits the socket with its own small reads and writes,
 *     so the system-call shape of net_conn.c stays as it is;
 *   - there is no SSL_ERROR_WANT_WRITE inside a read (or WANT_READ inside
 *     a write) to juggle with epoll: everything OpenSSL wants to send
 *     (handshake flights, alerts, TLS 1.3 tickets and key updates) lands
 *     in the write BIO and leaves with the next flush, and a read only
 *     ever waits for more socket bytes;
 *   - the socket's own EOF is seen directly, so a peer that closes
 *     without close_notify (a truncation, RFC 8446 §6.1) is told apart
 *     from one that sent it.
 * The cost is one copy of the ciphertext each way, small next to the
 * cipher itself.
 *
 * Plaintext queued before conn_start_tls() (say "220 Ready to start
 * TLS") still leaves in the clear, ahead of the handshake; plaintext
 * input buffered before it is dropped (see net.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/net_int.h"

/*
 * TLS 1.2 suites: forward secrecy and AEAD only (the "intermediate"
 * profile most mail servers use). TLS 1.3 keeps OpenSSL's default suites,
 * which are all AEAD.
 */
#define NET_TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* encrypt ahead at most this much ciphertext the socket has not taken */
#define CONN_TLS_OUT_HIGH (64 * 1024)
/* one SSL_write takes at most one record's worth */
#define CONN_TLS_WRITE_CHUNK (16 * 1024)

/* a certificate chosen by the name the client asks for (RFC 6066 §3) */
struct net_tls_sni {
	char *name;              /* lower-case; "*.example.net" matches
				  * one more label */
	SSL_CTX *ssl_ctx;
};

struct net_tls_ctx {
	SSL_CTX *ssl_ctx;        /* the default certificate */
	bool server;
	bool verify;
	/* connections hold a reference: the servername callback of a
	 * handshake under way uses sni after the owner dropped it (a
	 * certificate reload) */
	unsigned refs;
	struct net_tls_sni *sni;
	size_t nsni;
};

struct conn_tls {
	struct net_tls_ctx *ctx; /* a reference */
	SSL *ssl;
	BIO *rbio;               /* ciphertext from the socket */
	BIO *wbio;               /* ciphertext for the socket */
	struct evbuffer *raw;    /* bytes for the socket, in order */
	void (*done)(void *arg, bool ok, const char *error);
	void *done_arg;
	bool handshaken;
	bool sent_close_notify;
	bool eof_pending;        /* close_notify read, on_close not yet */
	char error[256];         /* the first failure, for done() */
};

/* the OpenSSL error queue as one line (and the queue emptied) */
static void
tls_error_text(char *out, size_t outsz, const char *what)
{
	unsigned long e = ERR_get_error();
	char detail[200];

	if (e == 0) {
		snprintf(out, outsz, "%s", what);
		return;
	}
	ERR_error_string_n(e, detail, sizeof(detail));
	snprintf(out, outsz, "%s: %s", what, detail);
	ERR_clear_error();
}

static char *
tls_error_dup(const char *what)
{
	char buf[300];

	tls_error_text(buf, sizeof(buf), what);
	return xstrdup(buf);
}

static SSL_CTX *
tls_ctx_common(const SSL_METHOD *method, char **error_r)
{
	SSL_CTX *sc = SSL_CTX_new(method);

	if (sc == NULL) {
		*error_r = tls_error_dup("SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(sc, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(sc, NET_TLS12_CIPHERS) != 1) {
		*error_r = tls_error_dup("TLS context setup");
		SSL_CTX_free(sc);
		return NULL;
	}
	/* renegotiation only ever served attacks on a mail server */
	SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION |
				SSL_OP_NO_COMPRESSION);
	/* idle sessions give their record buffers back */
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
	return sc;
}

/* a server SSL_CTX with one certificate chain and its key */
static int
tls_server_load(SSL_CTX **sc_r, const char *cert_file, const char *key_file,
		char **error_r)
{
	SSL_CTX *sc = tls_ctx_common(TLS_server_method(), error_r);
	char what[300];

	if (sc == NULL)
		return -1;
	if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1) {
		snprintf(what, sizeof(what), "certificate %s", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(sc, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "key %s", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(sc) != 1) {
		snprintf(what, sizeof(what), "key %s does not match %s",
			 key_file, cert_file);
		goto fail;
	}
	*sc_r = sc;
	return 0;
fail:
	*error_r = tls_error_dup(what);
	SSL_CTX_free(sc);
	return -1;
}

/* "*.example.net" matches "mx.example.net", not "a.mx.example.net" */
static bool
sni_match(const char *pattern, const char *name)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(name, '.');
		return dot != NULL && dot != name &&
		       ascii_strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return ascii_strcasecmp(pattern, name) == 0;
}

/*
 * The ClientHello named a host: switch to its certificate. Exact names
 * win over wildcards; an unknown name keeps the default certificate
 * (RFC 6066 §3 lets the server go on without a matching one).
 */
static int
tls_servername(SSL *ssl, int *alert, void *arg)
{
	const struct net_tls_ctx *ctx = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct net_tls_sni *wild = NULL;

	(void)alert;
	if (name == NULL || ctx->nsni == 0)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < ctx->nsni; i++) {
		if (ctx->sni[i].name[0] != '*' &&
		    ascii_strcasecmp(ctx->sni[i].name, name) == 0) {
			(void)SSL_set_SSL_CTX(ssl, ctx->sni[i].ssl_ctx);
			return SSL_TLSEXT_ERR_OK;
		}
		if (wild == NULL && sni_match(ctx->sni[i].name, name))
			wild = &ctx->sni[i];
	}
	if (wild != NULL) {
		(void)SSL_set_SSL_CTX(ssl, wild->ssl_ctx);
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

int
net_tls_ctx_server_new(const char *cert_file, const char *key_file,
		       struct net_tls_ctx **ctx_r, char **error_r)
{
	struct net_tls_ctx *ctx;
	SSL_CTX *sc;

	if (tls_server_load(&sc, cert_file, key_file, error_r) < 0)
		return -1;
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = sc;
	ctx->server = true;
	ctx->refs = 1;
	SSL_CTX_set_tlsext_servername_callback(sc, tls_servername);
	SSL_CTX_set_tlsext_servername_arg(sc, ctx);
	*ctx_r = ctx;
	return 0;
}

int
net_tls_ctx_server_add_sni(struct net_tls_ctx *ctx, const char *name,
			   const char *cert_file, const char *key_file,
			   char **error_r)
{
	SSL_CTX *sc;
	struct net_tls_sni *e;

	if (!ctx->server) {
		*error_r = xstrdup("SNI certificates are for servers");
		return -1;
	}
	if (tls_server_load(&sc, cert_file, key_file, error_r) < 0)
		return -1;
	ctx->sni = xreallocarray(ctx->sni, ctx->nsni + 1, sizeof(*ctx->sni));
	e = &ctx->sni[ctx->nsni++];
	e->name = xstrdup(name);
	for (char *p = e->name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	e->ssl_ctx = sc;
	return 0;
}

int
net_tls_ctx_client_new(enum net_tls_verify verify, const char *ca_file,
		       struct net_tls_ctx **ctx_r, char **error_r)
{
	SSL_CTX *sc = tls_ctx_common(TLS_client_method(), error_r);
	struct net_tls_ctx *ctx;
	char what[300];

	if (sc == NULL)
		return -1;
	switch (verify) {
	case NET_TLS_VERIFY_SYSTEM:
		if (SSL_CTX_set_default_verify_paths(sc) != 1) {
			snprintf(what, sizeof(what), "system CA store");
			goto fail;
		}
		break;
	case NET_TLS_VERIFY_CAFILE:
		if (ca_file == NULL ||
		    SSL_CTX_load_verify_locations(sc, ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "CA file %s",
				 ca_file != NULL ? ca_file : "(none)");
			goto fail;
		}
		break;
	case NET_TLS_VERIFY_NONE:
		break;
	}
	SSL_CTX_set_verify(sc, verify == NET_TLS_VERIFY_NONE ?
			   SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->ssl_ctx = sc;
	ctx->verify = verify != NET_TLS_VERIFY_NONE;
	ctx->refs = 1;
	*ctx_r = ctx;
	return 0;
fail:
	*error_r = tls_error_dup(what);
	SSL_CTX_free(sc);
	return -1;
}

void
net_tls_ctx_free(struct net_tls_ctx **ctxp)
{
	struct net_tls_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	if (--ctx->refs > 0)
		return;
	for (size_t i = 0; i < ctx->nsni; i++) {
		free(ctx->sni[i].name);
		SSL_CTX_free(ctx->sni[i].ssl_ctx);
	}
	free(ctx->sni);
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

void
net_conn_tls_free(struct conn_tls **tp)
{
	struct conn_tls *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	SSL_free(t->ssl); /* frees both BIOs */
	evbuffer_free(t->raw);
	net_tls_ctx_free(&t->ctx);
	free(t);
}

size_t
net_conn_tls_pending(const struct conn *c)
{
	return evbuffer_get_length(c->tls->raw);
}

size_t
net_conn_tls_unsent(const struct conn *c)
{
	size_t n = evbuffer_get_length(c->tls->raw);

	if (c->tls->handshaken)
		n += evbuffer_get_length(c->out);
	return n;
}

/* moves what OpenSSL wrote into the write BIO to the socket queue */
static void
tls_collect(struct conn *c)
{
	struct conn_tls *t = c->tls;
	char *p;
	long n = BIO_get_mem_data(t->wbio, &p);

	if (n <= 0)
		return;
	if (evbuffer_add(t->raw, p, (size_t)n) < 0)
		log_fatal("net event=evbuffer_add failed");
	(void)BIO_reset(t->wbio);
	net_conn_schedule_flush(c);
}

/* the failure text of a handshake or record error */
static void
tls_note_error(struct conn_tls *t, const char *what)
{
	long vr;

	if (t->error[0] != '\0')
		return;
	vr = SSL_get_verify_result(t->ssl);
	if (!t->handshaken && vr != X509_V_OK &&
	    (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) != 0) {
		snprintf(t->error, sizeof(t->error),
			 "%s: certificate verify failed: %s", what,
			 X509_verify_cert_error_string(vr));
		ERR_clear_error();
		return;
	}
	tls_error_text(t->error, sizeof(t->error), what);
}

/*
 * The connection failed: during the handshake done() reports it (with
 * the connection already dead), afterwards on_close does.
 */
static void
tls_fail(struct conn *c, const char *what)
{
	struct conn_tls *t = c->tls;

	tls_note_error(t, what);
	/* an alert OpenSSL queued goes out on a best-effort write */
	tls_collect(c);
	if (evbuffer_get_length(t->raw) > 0)
		(void)evbuffer_write(t->raw, c->fd);
	if (!t->handshaken && t->done != NULL) {
		void (*done)(void *, bool, const char *) = t->done;
		t->done = NULL;
		c->dead = true;
		net_conn_rd_del(c);
		if (c->wr_added) {
			(void)event_del(c->wr);
			c->wr_added = false;
		}
		done(t->done_arg, false, t->error);
		return;
	}
	net_conn_fail(c);
}

/* runs the handshake; false when the connection failed */
static bool
tls_handshake(struct conn *c)
{
	struct conn_tls *t = c->tls;
	int r = SSL_do_handshake(t->ssl);

	if (r == 1) {
		void (*done)(void *, bool, const char *) = t->done;

		t->handshaken = true;
		t->done = NULL;
		tls_collect(c);
		/* plaintext queued during the handshake can go now */
		if (evbuffer_get_length(c->out) > 0)
			net_conn_schedule_flush(c);
		if (done != NULL)
			done(t->done_arg, true, NULL);
		return !c->dead;
	}
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: /* memory BIOs never block a write */
		tls_collect(c);
		return true;
	default:
		tls_fail(c, "TLS handshake failed");
		return false;
	}
}

/* the peer's close_notify was read */
static bool
tls_eof(struct conn *c)
{
	c->tls->eof_pending = false;
	c->eof = true;
	net_conn_rd_del(c);
	c->h->on_close(c->arg);
	return false;
}

/* decrypts what the read BIO holds into c->in */
static bool
tls_decrypt(struct conn *c)
{
	struct conn_tls *t = c->tls;

	for (;;) {
		struct evbuffer_iovec v;
		size_t got = 0;
		int r, err;

		if (evbuffer_reserve_space(c->in, CONN_READ_CHUNK, &v, 1) < 1)
			log_fatal("net event=evbuffer_reserve failed");
		r = SSL_read_ex(t->ssl, v.iov_base, v.iov_len, &got);
		if (r == 1) {
			v.iov_len = got;
			if (evbuffer_commit_space(c->in, &v, 1) < 0)
				log_fatal("net event=evbuffer_commit failed");
			continue;
		}
		(void)evbuffer_commit_space(c->in, &v, 0);
		/* tickets, key updates and alerts queue ciphertext */
		tls_collect(c);
		err = SSL_get_error(t->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return true;
		if (err == SSL_ERROR_ZERO_RETURN) {
			/* close_notify: an orderly half-close; replies may
			 * still be written (RFC 8446 §6.1). Input that came
			 * in the same read gets its on_read first, as on a
			 * plain socket, and on_close follows on the next
			 * loop turn. */
			if (evbuffer_get_length(c->in) == 0)
				return tls_eof(c);
			t->eof_pending = true;
			event_active(c->rd, EV_READ, 1);
			return true;
		}
		tls_fail(c, "TLS read failed");
		return false;
	}
}

bool
net_conn_tls_fill(struct conn *c)
{
	struct conn_tls *t = c->tls;
	uint8_t buf[CONN_READ_CHUNK];
	ssize_t n;

	if (t->eof_pending)
		return tls_eof(c);
	n = read(c->fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return true;
		snprintf(t->error, sizeof(t->error), "read: %s",
			 strerror(errno));
		tls_fail(c, "read");
		return false;
	}
	if (n == 0) {
		/* no close_notify before the FIN: the stream may have been
		 * cut short, so it is a failure, not an EOF */
		if (t->error[0] == '\0')
			snprintf(t->error, sizeof(t->error), "%s",
				 t->handshaken ?
				 "peer closed without TLS close_notify" :
				 "peer closed during the TLS handshake");
		tls_fail(c, "closed");
		return false;
	}
	if (BIO_write(t->rbio, buf, (int)n) != (int)n)
		log_fatal("net event=BIO_write failed");
	if (!t->handshaken && !tls_handshake(c))
		return false;
	if (!t->handshaken)
		return true;
	if (!tls_decrypt(c))
		return false;
	/* TCP slows the peer until we drain; a close_notify already read
	 * keeps the event, which reports it on the next turn */
	if (evbuffer_get_length(c->in) >= CONN_INPUT_HIGH && !t->eof_pending)
		net_conn_rd_del(c);
	return true;
}

/* encrypts queued plaintext while the socket queue is short */
static bool
tls_encrypt(struct conn *c)
{
	struct conn_tls *t = c->tls;

	while (evbuffer_get_length(c->out) > 0 &&
	       evbuffer_get_length(t->raw) < CONN_TLS_OUT_HIGH) {
		struct evbuffer_iovec v;
		size_t n, wrote = 0;

		if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < CONN_TLS_WRITE_CHUNK ?
		    v.iov_len : CONN_TLS_WRITE_CHUNK;
		if (SSL_write_ex(t->ssl, v.iov_base, n, &wrote) != 1) {
			tls_fail(c, "TLS write failed");
			return false;
		}
		evbuffer_drain(c->out, wrote);
		tls_collect(c);
	}
	if (c->shut_wr && evbuffer_get_length(c->out) == 0 &&
	    !t->sent_close_notify) {
		t->sent_close_notify = true;
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
		tls_collect(c);
	}
	return true;
}

bool
net_conn_tls_flush(struct conn *c)
{
	struct conn_tls *t = c->tls;

	for (;;) {
		if (t->handshaken && !tls_encrypt(c))
			return false;
		while (evbuffer_get_length(t->raw) > 0) {
			int n = evbuffer_write(t->raw, c->fd);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return true;
				if (errno == EINTR)
					continue;
				snprintf(t->error, sizeof(t->error),
					 "write: %s", strerror(errno));
				tls_fail(c, "write");
				return false;
			}
			if (n == 0)
				return true;
		}
		/* the socket took everything: encrypt more, if any */
		if (!t->handshaken || evbuffer_get_length(c->out) == 0)
			return true;
	}
}

int
conn_start_tls(struct conn *c, struct net_tls_ctx *ctx, bool server,
	       const char *sni_or_null, conn_tls_done_cb *done, void *arg,
	       char **error_r)
{
	struct conn_tls *t;

	if (c->tls != NULL) {
		*error_r = xstrdup("TLS already started");
		return -1;
	}
	if (c->dead || c->eof) {
		*error_r = xstrdup("connection closed");
		return -1;
	}
	if (server != ctx->server) {
		*error_r = xstrdup("TLS context made for the other side");
		return -1;
	}
	t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	ctx->refs++;
	t->ssl = SSL_new(ctx->ssl_ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	t->raw = evbuffer_new();
	/* out of memory, as xmalloc treats it */
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL ||
	    t->raw == NULL)
		log_fatal("net event=conn_start_tls failed");
	/* an empty read BIO means "wait for the socket", not EOF */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns them now */
	if (server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		/* a writable copy: the OpenSSL macro casts away const;
		 * RFC 6066 §3: a host name is at most 255 octets */
		char host[256];
		if (sni_or_null != NULL &&
		    (snprintf(host, sizeof(host), "%s", sni_or_null) >=
		     (int)sizeof(host) ||
		     SSL_set_tlsext_host_name(t->ssl, host) != 1)) {
			*error_r = tls_error_dup("SNI");
			goto fail;
		}
		/* RFC 6125: the certificate must name the host we meant */
		if (ctx->verify && sni_or_null != NULL) {
			SSL_set_hostflags(t->ssl,
				X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(t->ssl, sni_or_null) != 1) {
				*error_r = tls_error_dup("host name check");
				goto fail;
			}
		}
	}
	t->done = done;
	t->done_arg = arg;
	/*
	 * Plaintext input that arrived before this call is dropped: it was
	 * sent before the handshake, so an attacker in the path could have
	 * put it there (RFC 3207 §4.2, the STARTTLS command injection of
	 * CVE-2011-0411). Plaintext output still queued leaves first, in the
	 * clear.
	 */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	c->unseen = false;
	if (evbuffer_add_buffer(t->raw, c->out) < 0)
		log_fatal("net event=evbuffer_add_buffer failed");
	c->tls = t;
	if (!c->rd_added) {
		/* below the high-water mark again (the queue is empty) */
		struct timeval tv = { .tv_sec = c->timeout, .tv_usec = 0 };
		if (event_add(c->rd, c->timeout > 0 ? &tv : NULL) == 0)
			c->rd_added = true;
	}
	if (!server) {
		/* the ClientHello goes out with the next flush */
		(void)tls_handshake(c);
	}
	if (evbuffer_get_length(t->raw) > 0)
		net_conn_schedule_flush(c);
	return 0;
fail:
	net_conn_tls_free(&t);
	return -1;
}

bool
conn_tls_info(const struct conn *c, const char **version_r,
	      const char **cipher_r, bool *verified_r)
{
	const struct conn_tls *t = c->tls;
	X509 *peer;

	if (t == NULL || !t->handshaken)
		return false;
	*version_r = SSL_get_version(t->ssl);
	*cipher_r = SSL_get_cipher_name(t->ssl);
	peer = SSL_get1_peer_certificate(t->ssl);
	*verified_r = peer != NULL &&
		      SSL_get_verify_result(t->ssl) == X509_V_OK;
	X509_free(peer);
	return true;
}

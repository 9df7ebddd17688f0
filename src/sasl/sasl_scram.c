/* SPDX-License-Identifier: MIT */
/*
 * sasl SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, without channel
 * binding (no -PLUS variant is offered). client-first -> server-first
 * (nonce, salt, iterations) -> client-final with the proof -> server-final
 * ("v=", sent as a challenge) -> the client's empty reply. An account that
 * does not exist gets a normal-looking server-first with a stable fake
 * salt and fails at the proof. No I/O; the server nonce comes from the
 * caller's random octets.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "sasl/sasl_int.h"

#define SCRAM_FAKE_SALT_LEN 16
/* client-first-bare, server-first and client-final-without-proof */
#define SCRAM_AUTH_MSG_MAX ((size_t)3 * SASL_MSG_MAX)

struct sasl_scram {
	struct buf gs2;		 /* the gs2 header as the client sent it */
	struct buf nonce;	 /* client nonce + server nonce */
	struct buf auth_msg;	 /* RFC 5802 §3 AuthMessage, built up */
	bool usable;		 /* real secrets: the proof can succeed */
	const char *fail_reason; /* why it cannot, for the log */
	uint8_t stored_key[SASL_SCRAM_KEY_LEN];
	uint8_t server_key[SASL_SCRAM_KEY_LEN];
};

void
sasl_scram_free(struct sasl_scram **scp)
{
	struct sasl_scram *sc = *scp;

	if (sc == NULL)
		return;
	*scp = NULL;
	buf_clear(&sc->gs2);
	buf_clear(&sc->nonce);
	buf_clear(&sc->auth_msg);
	OPENSSL_cleanse(sc, sizeof(*sc));
	free(sc);
}

/* ---- syntax (RFC 5802 §7) ------------------------------------------ */

static const uint8_t *
find_comma(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q = memchr(p, ',', (size_t)(end - p));

	return q != NULL ? q : end;
}

/* p starts "<name>=" */
static bool
attr_is(const uint8_t *p, const uint8_t *end, char name)
{
	return end - p >= 2 && p[0] == (uint8_t)name && p[1] == '=';
}

/* attr-val = ALPHA "=" value, value = 1*value-char (no ','; the caller
 * has ruled out NUL and bad UTF-8) */
static bool
ext_ok(const uint8_t *p, const uint8_t *q)
{
	return q - p >= 3 &&
	       ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')) &&
	       p[1] == '=';
}

/* printable = %x21-2B / %x2D-7E */
static bool
nonce_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > SASL_SCRAM_NONCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/*
 * saslname = 1*(value-safe-char / "=2C" / "=3D") into dst (at most
 * SASL_FIELD_MAX octets and a NUL); dst is left alone on error. ABNF
 * strings are case-insensitive (RFC 5234 §2.3), so "=2c" counts too.
 */
static bool
saslname_decode(const uint8_t *p, size_t n, char *dst)
{
	char tmp[SASL_FIELD_MAX + 1];
	size_t o = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];

		if (c == '=') {
			if (n - i < 3)
				return false;
			if (p[i + 1] == '2' && (p[i + 2] | 0x20) == 'c')
				c = ',';
			else if (p[i + 1] == '3' && (p[i + 2] | 0x20) == 'd')
				c = '=';
			else
				return false;
			i += 3;
		} else {
			i++;
		}
		if (o >= SASL_FIELD_MAX)
			return false;
		tmp[o++] = (char)c;
	}
	tmp[o] = '\0';
	memcpy(dst, tmp, o + 1);
	return true;
}

/* ---- server-first -------------------------------------------------- */

/* not a secret, but stable per server and name, so that asking twice
 * about an unknown user gets the same salt as for a real one */
static void
fake_salt(const struct sasl_server *s, uint8_t out[SCRAM_FAKE_SALT_LEN])
{
	uint8_t md[SHA256_DIGEST_LENGTH];
	struct buf b;

	buf_init(&b, 0);
	(void)buf_append(&b, "tern-scram-fake", sizeof("tern-scram-fake"));
	(void)buf_append(&b, s->hostname, strlen(s->hostname) + 1);
	(void)buf_append_str(&b, s->authcid);
	(void)SHA256(b.p, b.len, md);
	memcpy(out, md, SCRAM_FAKE_SALT_LEN);
	buf_clear(&b);
}

static bool
secrets_usable(const struct sasl_secrets *sec)
{
	return sec->has_scram && sec->scram_salt_len > 0 &&
	       sec->scram_salt_len <= SASL_SCRAM_SALT_MAX &&
	       sec->scram_iter >= SASL_SCRAM_ITER_MIN &&
	       sec->scram_iter <= SASL_SCRAM_ITER_MAX;
}

/* looks the user up and sends "r=<nonce>,s=<salt>,i=<iter>" */
static enum sasl_status
server_first(struct sasl_server *s, struct sasl_scram *sc, const uint8_t *bare,
	     size_t bare_len, struct buf *challenge, const char **error_r)
{
	struct sasl_secrets sec;
	uint8_t fake[SCRAM_FAKE_SALT_LEN];
	const uint8_t *salt;
	size_t salt_len;
	unsigned iter;
	int found = 0, r;

	memset(&sec, 0, sizeof(sec));
	if (s->lookup != NULL)
		found = s->lookup(s->lookup_arg, s->authcid, &sec);
	if (found == 1 && secrets_usable(&sec)) {
		sc->usable = true;
		memcpy(sc->stored_key, sec.scram_stored_key,
		       SASL_SCRAM_KEY_LEN);
		memcpy(sc->server_key, sec.scram_server_key,
		       SASL_SCRAM_KEY_LEN);
		salt = sec.scram_salt;
		salt_len = sec.scram_salt_len;
		iter = sec.scram_iter;
	} else {
		/* do not tell: the same shape of answer, failing later */
		sc->fail_reason =
		    found == 1 ? "SCRAM: no usable SCRAM secret for the user"
			       : "SCRAM: unknown user";
		if (sec.scram_salt_len > 0 &&
		    sec.scram_salt_len <= SASL_SCRAM_SALT_MAX) {
			/* the lookup's own stable salt (sasl.h) */
			salt = sec.scram_salt;
			salt_len = sec.scram_salt_len;
		} else {
			fake_salt(s, fake);
			salt = fake;
			salt_len = sizeof(fake);
		}
		iter = SASL_SCRAM_ITER_DEFAULT;
		if (sec.scram_iter >= SASL_SCRAM_ITER_MIN &&
		    sec.scram_iter <= SASL_SCRAM_ITER_MAX)
			iter = sec.scram_iter;
	}
	r = buf_append_str(challenge, "r=") |
	    buf_append(challenge, sc->nonce.p, sc->nonce.len) |
	    buf_append_str(challenge, ",s=") |
	    sasl_b64_append(challenge, salt, salt_len) |
	    buf_printf(challenge, ",i=%u", iter);
	OPENSSL_cleanse(&sec, sizeof(sec));
	if (r != 0) {
		*error_r = "challenge does not fit";
		return SASL_BAD;
	}
	if ((buf_append(&sc->auth_msg, bare, bare_len) |
	     buf_append_str(&sc->auth_msg, ",") |
	     buf_append(&sc->auth_msg, challenge->p, challenge->len) |
	     buf_append_str(&sc->auth_msg, ",")) != 0) {
		*error_r = "SCRAM: message too long";
		return SASL_BAD;
	}
	s->state = SASL_ST_WAIT2;
	return SASL_CONTINUE;
}

/*
 * client-first-message = gs2-header client-first-bare
 * gs2-header = gs2-cbind-flag "," [ authzid ] ","
 * client-first-bare = [reserved-mext ","] username "," nonce
 *                     ["," extensions]
 */
static enum sasl_status
client_first(struct sasl_server *s, const uint8_t *in, size_t n,
	     struct buf *challenge, const char **error_r)
{
	const uint8_t *p = in, *end = in + n, *q, *bare, *cnonce;
	struct sasl_scram *sc;
	size_t cnlen;

	if (n == 0 || !sasl_utf8_valid(in, n)) {
		*error_r = "SCRAM: client-first is empty or not UTF-8";
		return SASL_BAD;
	}
	/* "p=" asks for channel binding, which only -PLUS has */
	if (p[0] == 'p') {
		*error_r = "SCRAM: channel binding not offered";
		return SASL_BAD;
	}
	if ((p[0] != 'n' && p[0] != 'y') || n < 2 || p[1] != ',') {
		*error_r = "SCRAM: bad gs2 header";
		return SASL_BAD;
	}
	p += 2;
	if (p < end && *p != ',') {
		if (!attr_is(p, end, 'a')) {
			*error_r = "SCRAM: bad gs2 header";
			return SASL_BAD;
		}
		q = find_comma(p + 2, end);
		if (q == end ||
		    !saslname_decode(p + 2, (size_t)(q - p - 2), s->authzid)) {
			*error_r = "SCRAM: bad authzid";
			return SASL_BAD;
		}
		p = q;
	}
	if (p == end || *p != ',') {
		*error_r = "SCRAM: bad gs2 header";
		return SASL_BAD;
	}
	bare = ++p;
	/* RFC 5802 §5.1: an unknown mandatory extension fails */
	if (attr_is(p, end, 'm')) {
		*error_r = "SCRAM: mandatory extension not supported";
		return SASL_BAD;
	}
	if (!attr_is(p, end, 'n')) {
		*error_r = "SCRAM: missing user name";
		return SASL_BAD;
	}
	q = find_comma(p + 2, end);
	if (!saslname_decode(p + 2, (size_t)(q - p - 2), s->authcid)) {
		*error_r = "SCRAM: bad user name";
		return SASL_BAD;
	}
	if (q == end || !attr_is(q + 1, end, 'r')) {
		*error_r = "SCRAM: missing nonce";
		return SASL_BAD;
	}
	cnonce = q + 3;
	q = find_comma(cnonce, end);
	cnlen = (size_t)(q - cnonce);
	if (!nonce_ok(cnonce, cnlen)) {
		*error_r = "SCRAM: bad nonce";
		return SASL_BAD;
	}
	while (q < end) {
		p = q + 1;
		q = find_comma(p, end);
		if (!ext_ok(p, q)) {
			*error_r = "SCRAM: bad extension";
			return SASL_BAD;
		}
	}

	sc = xcalloc(1, sizeof(*sc));
	s->scram = sc;
	buf_init(&sc->gs2, SASL_MSG_MAX);
	buf_init(&sc->nonce, SASL_MSG_MAX);
	buf_init(&sc->auth_msg, SCRAM_AUTH_MSG_MAX);
	(void)buf_append(&sc->gs2, in, (size_t)(bare - in));
	(void)buf_append(&sc->nonce, cnonce, cnlen);
	if (s->force_snonce != NULL)
		(void)buf_append_str(&sc->nonce, s->force_snonce);
	else
		(void)sasl_b64_append(&sc->nonce, s->random,
				      SASL_SCRAM_SNONCE_RAW);
	return server_first(s, sc, bare, (size_t)(end - bare), challenge,
			    error_r);
}

/* ---- client-final -------------------------------------------------- */

/* "c=" must be the base64 of the gs2 header, as sent (no channel
 * binding data: RFC 5802 §7, cbind-input for "n" and "y") */
static bool
cbind_ok(const struct sasl_scram *sc, const uint8_t *p, size_t n)
{
	struct buf b;
	bool ok;

	buf_init(&b, 0);
	ok = sasl_b64_append(&b, sc->gs2.p, sc->gs2.len) == 0 && b.len == n &&
	     memcmp(b.p, p, n) == 0;
	buf_clear(&b);
	return ok;
}

/* RFC 5802 §3: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and
 * H(ClientKey) must be StoredKey */
static bool
proof_ok(const struct sasl_scram *sc, const uint8_t proof[SASL_SCRAM_KEY_LEN])
{
	uint8_t sig[EVP_MAX_MD_SIZE], key[SASL_SCRAM_KEY_LEN];
	uint8_t h[SHA256_DIGEST_LENGTH];
	unsigned len = 0;
	bool ok;

	ok = HMAC(EVP_sha256(), sc->stored_key, SASL_SCRAM_KEY_LEN,
		  sc->auth_msg.p, sc->auth_msg.len, sig, &len) != NULL &&
	     len == SASL_SCRAM_KEY_LEN;
	if (ok) {
		for (size_t i = 0; i < SASL_SCRAM_KEY_LEN; i++)
			key[i] = proof[i] ^ sig[i];
		ok = SHA256(key, sizeof(key), h) != NULL &&
		     CRYPTO_memcmp(h, sc->stored_key, sizeof(h)) == 0;
	}
	OPENSSL_cleanse(sig, sizeof(sig));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(h, sizeof(h));
	return ok;
}

/*
 * client-final-message = channel-binding "," nonce ["," extensions]
 *                        "," proof
 */
static enum sasl_status
client_final(struct sasl_server *s, const uint8_t *in, size_t n,
	     struct buf *challenge, const char **error_r)
{
	struct sasl_scram *sc = s->scram;
	const uint8_t *end = in + n, *wend = NULL, *p, *q;
	uint8_t proof[SASL_SCRAM_KEY_LEN], sig[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	bool ok;
	int r;

	if (!sasl_utf8_valid(in, n)) {
		*error_r = "SCRAM: client-final is not UTF-8";
		return SASL_BAD;
	}
	/* the proof comes last, and base64 has no ',' */
	for (size_t i = n; i > 0; i--)
		if (in[i - 1] == ',') {
			wend = in + i - 1;
			break;
		}
	if (wend == NULL || !attr_is(wend + 1, end, 'p') ||
	    sasl_b64_decode(wend + 3, (size_t)(end - wend - 3), proof,
			    sizeof(proof)) != (int)sizeof(proof)) {
		*error_r = "SCRAM: missing or bad proof";
		return SASL_BAD;
	}
	p = in;
	q = find_comma(p, wend);
	if (!attr_is(p, wend, 'c') ||
	    !cbind_ok(sc, p + 2, (size_t)(q - p - 2))) {
		*error_r = "SCRAM: channel binding mismatch";
		return SASL_BAD;
	}
	p = q + 1;
	if (q == wend || !attr_is(p, wend, 'r')) {
		*error_r = "SCRAM: missing nonce";
		return SASL_BAD;
	}
	q = find_comma(p + 2, wend);
	if ((size_t)(q - p - 2) != sc->nonce.len ||
	    memcmp(p + 2, sc->nonce.p, sc->nonce.len) != 0) {
		*error_r = "SCRAM: nonce mismatch";
		return SASL_BAD;
	}
	while (q < wend) {
		p = q + 1;
		q = find_comma(p, wend);
		if (!ext_ok(p, q)) {
			*error_r = "SCRAM: bad extension";
			return SASL_BAD;
		}
	}
	if (buf_append(&sc->auth_msg, in, (size_t)(wend - in)) < 0) {
		*error_r = "SCRAM: message too long";
		return SASL_BAD;
	}

	/* the same work whether or not the account is real */
	ok = proof_ok(sc, proof);
	OPENSSL_cleanse(proof, sizeof(proof));
	if (!sc->usable) {
		*error_r = sc->fail_reason;
		return SASL_FAIL;
	}
	if (!ok) {
		*error_r = "SCRAM: wrong proof";
		return SASL_FAIL;
	}
	/* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
	if (HMAC(EVP_sha256(), sc->server_key, SASL_SCRAM_KEY_LEN,
		 sc->auth_msg.p, sc->auth_msg.len, sig, &len) == NULL ||
	    len != SASL_SCRAM_KEY_LEN) {
		*error_r = "SCRAM: HMAC failed";
		return SASL_FAIL;
	}
	r = buf_append_str(challenge, "v=") |
	    sasl_b64_append(challenge, sig, len);
	OPENSSL_cleanse(sig, sizeof(sig));
	if (r != 0) {
		*error_r = "challenge does not fit";
		return SASL_BAD;
	}
	s->state = SASL_ST_WAIT3;
	return SASL_CONTINUE;
}

enum sasl_status
sasl_scram_step(struct sasl_server *s, const uint8_t *in, size_t inlen,
		bool have_input, struct buf *challenge, const char **error_r)
{
	switch (s->state) {
	case SASL_ST_START:
		/* the client speaks first; without an initial response
		 * the server sends an empty challenge */
		if (!have_input) {
			s->state = SASL_ST_WAIT1;
			return SASL_CONTINUE;
		}
		return client_first(s, in, inlen, challenge, error_r);
	case SASL_ST_WAIT1:
		return client_first(s, in, inlen, challenge, error_r);
	case SASL_ST_WAIT2:
		return client_final(s, in, inlen, challenge, error_r);
	case SASL_ST_WAIT3:
		/* RFC 4954 §4: the client answers the server-final
		 * challenge with an empty response */
		if (inlen != 0) {
			*error_r = "SCRAM: data after server-final";
			return SASL_BAD;
		}
		return SASL_OK;
	default:
		*error_r = "SCRAM: unexpected step";
		return SASL_BAD;
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * sasl server: one authentication exchange, its common checks (message
 * bound, steps after the end), PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00), and the UTF-8 and base64 helpers the
 * other mechanisms share. CRAM-MD5 is in sasl_cram.c, SCRAM-SHA-256 in
 * sasl_scram.c. No I/O, no clock, no randomness of its own.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sasl/sasl_int.h"

/* ---- helpers ------------------------------------------------------- */

bool
sasl_utf8_valid(const uint8_t *p, size_t n)
{
	return memchr(p, 0, n) == NULL && utf8_valid(p, n);
}



int
sasl_b64_decode(const uint8_t *p, size_t n, uint8_t *out, size_t outmax)
{
	long r;

	if (n > SASL_MSG_MAX)
		return -1;
	/* UNSAFE: base64 text is octets; the cast only renames them */
	r = b64_decode((const char *)p, n, out, outmax);
	return r < 0 ? -1 : (int)r;
}

int
sasl_b64_append(struct buf *b, const uint8_t *p, size_t n)
{
	size_t before = b->len;

	if (n > SASL_MSG_MAX)
		return -1;
	b64_append(b, p, n);
	return b->len - before == (n + 2) / 3 * 4 ? 0 : -1;
}

/* copies a checked field into a NUL-terminated array of
 * SASL_FIELD_MAX + 1 */
static void
set_field(char *dst, const uint8_t *p, size_t n)
{
	TN_ASSERT(n <= SASL_FIELD_MAX);
	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

/* a name or password: 1..SASL_FIELD_MAX octets of UTF-8, no NUL */
static bool
field_ok(const uint8_t *p, size_t n)
{
	return n > 0 && n <= SASL_FIELD_MAX && sasl_utf8_valid(p, n);
}

/* ---- PLAIN, RFC 4616 ----------------------------------------------- */

/* RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
static enum sasl_status
plain_parse(struct sasl_server *s, const uint8_t *in, size_t n,
	    const char **error_r)
{
	const uint8_t *nul1, *nul2, *end = in + n;
	size_t zlen, clen, plen;

	nul1 = n > 0 ? memchr(in, 0, n) : NULL;
	if (nul1 == NULL) {
		*error_r = "PLAIN: missing NUL";
		return SASL_BAD;
	}
	nul2 = memchr(nul1 + 1, 0, (size_t)(end - nul1 - 1));
	if (nul2 == NULL) {
		*error_r = "PLAIN: missing NUL";
		return SASL_BAD;
	}
	zlen = (size_t)(nul1 - in);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = (size_t)(end - nul2 - 1);
	if (zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX ||
	    plen > SASL_FIELD_MAX) {
		*error_r = "PLAIN: field too long";
		return SASL_BAD;
	}
	if (clen == 0 || plen == 0) {
		*error_r = "PLAIN: empty user name or password";
		return SASL_BAD;
	}
	/* sasl_utf8_valid refuses a third NUL inside the password */
	if (!sasl_utf8_valid(in, zlen) || !sasl_utf8_valid(nul1 + 1, clen) ||
	    !sasl_utf8_valid(nul2 + 1, plen)) {
		*error_r = "PLAIN: invalid UTF-8 or NUL in a field";
		return SASL_BAD;
	}
	set_field(s->authzid, in, zlen);
	set_field(s->authcid, nul1 + 1, clen);
	set_field(s->password, nul2 + 1, plen);
	s->state = SASL_ST_CHECK;
	return SASL_CHECK_PASSWORD;
}

static enum sasl_status
plain_step(struct sasl_server *s, const uint8_t *in, size_t inlen,
	   bool have_input, const char **error_r)
{
	switch (s->state) {
	case SASL_ST_START:
		/* RFC 4616 §2: the client sends first; without an initial
		 * response the server sends an empty challenge */
		if (!have_input) {
			s->state = SASL_ST_WAIT1;
			return SASL_CONTINUE;
		}
		return plain_parse(s, in, inlen, error_r);
	case SASL_ST_WAIT1:
		return plain_parse(s, in, inlen, error_r);
	default:
		*error_r = "PLAIN: unexpected step";
		return SASL_BAD;
	}
}

/* ---- LOGIN, draft-murchison-sasl-login-00 -------------------------- */

static enum sasl_status
login_user(struct sasl_server *s, const uint8_t *in, size_t inlen,
	   struct buf *challenge, const char **error_r)
{
	if (!field_ok(in, inlen)) {
		*error_r = "LOGIN: bad user name";
		return SASL_BAD;
	}
	set_field(s->authcid, in, inlen);
	if (buf_append_str(challenge, "Password:") < 0) {
		*error_r = "challenge does not fit";
		return SASL_BAD;
	}
	s->state = SASL_ST_WAIT2;
	return SASL_CONTINUE;
}

static enum sasl_status
login_step(struct sasl_server *s, const uint8_t *in, size_t inlen,
	   bool have_input, struct buf *challenge, const char **error_r)
{
	switch (s->state) {
	case SASL_ST_START:
		/* §2.1: an initial response is the user name */
		if (have_input)
			return login_user(s, in, inlen, challenge, error_r);
		if (buf_append_str(challenge, "Username:") < 0) {
			*error_r = "challenge does not fit";
			return SASL_BAD;
		}
		s->state = SASL_ST_WAIT1;
		return SASL_CONTINUE;
	case SASL_ST_WAIT1:
		return login_user(s, in, inlen, challenge, error_r);
	case SASL_ST_WAIT2:
		if (!field_ok(in, inlen)) {
			*error_r = "LOGIN: bad password";
			return SASL_BAD;
		}
		set_field(s->password, in, inlen);
		s->state = SASL_ST_CHECK;
		return SASL_CHECK_PASSWORD;
	default:
		*error_r = "LOGIN: unexpected step";
		return SASL_BAD;
	}
}

/* ---- the exchange -------------------------------------------------- */

struct sasl_server *
sasl_server_new(enum sasl_mech mech, const char *hostname,
		const uint8_t random[SASL_RANDOM_LEN], sasl_lookup_fn *lookup,
		void *arg)
{
	struct sasl_server *s;
	size_t hlen = strnlen(hostname, SASL_HOSTNAME_MAX);

	TN_ASSERT((unsigned)mech < SASL_MECH_COUNT);
	s = xcalloc(1, sizeof(*s));
	s->mech = mech;
	s->state = SASL_ST_START;
	memcpy(s->hostname, hostname, hlen);
	s->hostname[hlen] = '\0';
	memcpy(s->random, random, SASL_RANDOM_LEN);
	s->lookup = lookup;
	s->lookup_arg = arg;
	return s;
}

void
sasl_server_free(struct sasl_server **sp)
{
	struct sasl_server *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	sasl_scram_free(&s->scram);
	free(s->cram_challenge);
	free(s->force_snonce);
	/* the password, and the random octets the nonces came from */
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void
sasl_server_force_snonce(struct sasl_server *s, const char *snonce)
{
	free(s->force_snonce);
	s->force_snonce = xstrdup(snonce);
}

void
sasl_server_force_challenge(struct sasl_server *s, const char *challenge)
{
	free(s->cram_challenge);
	s->cram_challenge = xstrdup(challenge);
}

enum sasl_status
sasl_server_step(struct sasl_server *s, const uint8_t *in, size_t inlen,
		 bool have_input, struct buf *challenge, const char **error_r)
{
	const char *err = NULL;
	enum sasl_status st;

	buf_reset(challenge);
	/* the password was valid until this step */
	OPENSSL_cleanse(s->password, sizeof(s->password));
	if (!have_input) {
		in = NULL;
		inlen = 0;
	}
	switch (s->state) {
	case SASL_ST_OK:
	case SASL_ST_OVER:
		/* the verdict stands */
		if (error_r != NULL)
			*error_r = "step after the exchange ended";
		return SASL_BAD;
	case SASL_ST_CHECK:
		st = SASL_BAD;
		err = "step while the password is checked";
		goto out;
	case SASL_ST_START:
		break;
	default:
		/* a response to a challenge is always there, maybe empty */
		have_input = true;
		break;
	}
	if (inlen > SASL_MSG_MAX) {
		st = SASL_BAD;
		err = "message too long";
		goto out;
	}
	if (in == NULL)
		in = (const uint8_t *)"";
	switch (s->mech) {
	case SASL_MECH_PLAIN:
		st = plain_step(s, in, inlen, have_input, &err);
		break;
	case SASL_MECH_LOGIN:
		st = login_step(s, in, inlen, have_input, challenge, &err);
		break;
	case SASL_MECH_CRAM_MD5:
		st = sasl_cram_step(s, in, inlen, have_input, challenge, &err);
		break;
	case SASL_MECH_SCRAM_SHA_256:
		st = sasl_scram_step(s, in, inlen, have_input, challenge, &err);
		break;
	default:
		st = SASL_BAD;
		err = "unknown mechanism";
		break;
	}
out:
	switch (st) {
	case SASL_OK:
		s->state = SASL_ST_OK;
		break;
	case SASL_FAIL:
	case SASL_BAD:
		s->state = SASL_ST_OVER;
		OPENSSL_cleanse(s->password, sizeof(s->password));
		buf_reset(challenge);
		if (err == NULL)
			err = "authentication failed";
		if (error_r != NULL)
			*error_r = err;
		break;
	case SASL_CONTINUE:
	case SASL_CHECK_PASSWORD:
		break;
	}
	return st;
}

void
sasl_server_credentials(const struct sasl_server *s, const char **authzid_r,
			const char **authcid_r, const char **password_r)
{
	if (authzid_r != NULL)
		*authzid_r = s->authzid;
	if (authcid_r != NULL)
		*authcid_r = s->authcid;
	if (password_r != NULL)
		*password_r = s->password;
}

enum sasl_status
sasl_server_checked(struct sasl_server *s, bool ok)
{
	/* only a password handed out with SASL_CHECK_PASSWORD is judged:
	 * a verdict at any other point changes nothing */
	if (s->state != SASL_ST_CHECK)
		return SASL_BAD;
	OPENSSL_cleanse(s->password, sizeof(s->password));
	s->state = ok ? SASL_ST_OK : SASL_ST_OVER;
	return ok ? SASL_OK : SASL_FAIL;
}

const char *
sasl_server_authcid(const struct sasl_server *s)
{
	return s->authcid;
}

const char *
sasl_server_authzid(const struct sasl_server *s)
{
	return s->authzid;
}

/* SPDX-License-Identifier: MIT */
/*
 * sasl CRAM-MD5 (RFC 2195): the server sends a unique challenge, the
 * client answers "name SP hex(HMAC-MD5(password, challenge))". The stored
 * secret is the pair of MD5 chaining states after HMAC's first inner and
 * outer block (sasl.h), so the check resumes both hashes instead of
 * knowing the password. No I/O; the challenge's uniqueness comes from the
 * caller's random octets.
 */
/* resuming an MD5 state needs the low-level MD5_CTX, which OpenSSL 3
 * keeps, deprecated (as in sasl_secrets.c) */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/md5.h>

#include "sasl/sasl_int.h"

#define CRAM_DIGEST_HEX 32

static MD5_LONG
get_le32(const uint8_t *p)
{
	return (MD5_LONG)p[0] | (MD5_LONG)p[1] << 8 | (MD5_LONG)p[2] << 16 |
	       (MD5_LONG)p[3] << 24;
}

/* an MD5 context as it stands after one 64-octet block */
static void
md5_resume(MD5_CTX *c, const uint8_t state[16])
{
	memset(c, 0, sizeof(*c));
	c->A = get_le32(state);
	c->B = get_le32(state + 4);
	c->C = get_le32(state + 8);
	c->D = get_le32(state + 12);
	c->Nl = 512; /* bits hashed so far */
	c->Nh = 0;
	c->num = 0;
}


static bool
hex_decode(const uint8_t *p, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* RFC 2195 §2: a msg-id style challenge, "<random@hostname>" */
static void
make_challenge(struct sasl_server *s)
{
	static const char hex[] = "0123456789abcdef";
	struct buf b;

	buf_init(&b, 0);
	(void)buf_append_str(&b, "<");
	for (size_t i = 0; i < SASL_CRAM_RAND_LEN; i++) {
		char h[2] = {hex[s->random[i] >> 4], hex[s->random[i] & 0xf]};

		(void)buf_append(&b, h, sizeof(h));
	}
	(void)buf_printf(&b, "@%s>", s->hostname);
	s->cram_challenge = xstrdup(buf_cstr(&b));
	buf_clear(&b);
}

/* HMAC-MD5 of the challenge from the stored states (RFC 2104 §2) */
static void
cram_mac(const uint8_t ctx[SASL_CRAM_CTX_LEN], const char *challenge,
	 uint8_t mac[MD5_DIGEST_LENGTH])
{
	uint8_t inner[MD5_DIGEST_LENGTH];
	MD5_CTX c;

	md5_resume(&c, ctx);
	(void)MD5_Update(&c, challenge, strlen(challenge));
	(void)MD5_Final(inner, &c);
	md5_resume(&c, ctx + 16);
	(void)MD5_Update(&c, inner, sizeof(inner));
	(void)MD5_Final(mac, &c);
	OPENSSL_cleanse(inner, sizeof(inner));
	OPENSSL_cleanse(&c, sizeof(c));
}

static enum sasl_status
cram_verify(struct sasl_server *s, const uint8_t *in, size_t inlen,
	    const char **error_r)
{
	uint8_t digest[MD5_DIGEST_LENGTH], mac[MD5_DIGEST_LENGTH];
	struct sasl_secrets sec;
	size_t nlen;
	int found = 0;
	bool match, has_cram;

	/* "name SP digest": the digest is the last 32 octets, so the name
	 * may hold spaces */
	if (inlen < CRAM_DIGEST_HEX + 2 ||
	    in[inlen - CRAM_DIGEST_HEX - 1] != ' ') {
		*error_r = "CRAM-MD5: malformed response";
		return SASL_BAD;
	}
	nlen = inlen - CRAM_DIGEST_HEX - 1;
	if (nlen > SASL_FIELD_MAX || !sasl_utf8_valid(in, nlen)) {
		*error_r = "CRAM-MD5: bad user name";
		return SASL_BAD;
	}
	if (!hex_decode(in + nlen + 1, CRAM_DIGEST_HEX, digest)) {
		*error_r = "CRAM-MD5: digest is not hex";
		return SASL_BAD;
	}
	memcpy(s->authcid, in, nlen);
	s->authcid[nlen] = '\0';

	memset(&sec, 0, sizeof(sec));
	if (s->lookup != NULL)
		found = s->lookup(s->lookup_arg, s->authcid, &sec);
	has_cram = found == 1 && sec.has_cram;
	if (!has_cram)
		/* the same work for a missing account or secret */
		memset(sec.cram_ctx, 0, sizeof(sec.cram_ctx));
	cram_mac(sec.cram_ctx, s->cram_challenge, mac);
	match = CRYPTO_memcmp(mac, digest, sizeof(mac)) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(&sec, sizeof(sec));
	if (found != 1) {
		*error_r = "CRAM-MD5: unknown user";
		return SASL_FAIL;
	}
	if (!has_cram) {
		*error_r = "CRAM-MD5: no CRAM-MD5 secret for the user";
		return SASL_FAIL;
	}
	if (!match) {
		*error_r = "CRAM-MD5: wrong digest";
		return SASL_FAIL;
	}
	return SASL_OK;
}

enum sasl_status
sasl_cram_step(struct sasl_server *s, const uint8_t *in, size_t inlen,
	       bool have_input, struct buf *challenge, const char **error_r)
{
	switch (s->state) {
	case SASL_ST_START:
		/* RFC 4954 §4: the server speaks first in CRAM-MD5, so an
		 * initial response (even an empty one) is an error */
		if (have_input) {
			*error_r = "CRAM-MD5: initial response not allowed";
			return SASL_BAD;
		}
		if (s->cram_challenge == NULL)
			make_challenge(s);
		if (buf_append_str(challenge, s->cram_challenge) < 0) {
			*error_r = "challenge does not fit";
			return SASL_BAD;
		}
		s->state = SASL_ST_WAIT1;
		return SASL_CONTINUE;
	case SASL_ST_WAIT1:
		return cram_verify(s, in, inlen, error_r);
	default:
		*error_r = "CRAM-MD5: unexpected step";
		return SASL_BAD;
	}
}

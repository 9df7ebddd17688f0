/* SPDX-License-Identifier: MIT */
/*
 * sasl secrets: what the server stores of a password for SCRAM-SHA-256
 * and CRAM-MD5 (sasl.h says what each octet is).
 */
/* CRAM-MD5 needs MD5's chaining values after one block, which only the
 * low-level MD5 interface exposes; OpenSSL 3 keeps it, deprecated */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/sha.h>

#include "sasl/sasl.h"

static const char *const mech_names[SASL_MECH_COUNT] = {
	[SASL_MECH_PLAIN] = "PLAIN",
	[SASL_MECH_LOGIN] = "LOGIN",
	[SASL_MECH_CRAM_MD5] = "CRAM-MD5",
	[SASL_MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
};

const char *
sasl_mech_name(enum sasl_mech m)
{
	return (unsigned)m < SASL_MECH_COUNT ? mech_names[m] : "?";
}

bool
sasl_mech_parse(const char *name, enum sasl_mech *m_r)
{
	for (unsigned i = 0; i < SASL_MECH_COUNT; i++)
		if (ascii_strcasecmp(name, mech_names[i]) == 0) {
			*m_r = (enum sasl_mech)i;
			return true;
		}
	return false;
}

static void
put_le32(uint8_t *p, MD5_LONG v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* RFC 2104 §2: K is the password, or its MD5 when longer than a block */
static void
cram_derive(const char *password, uint8_t out[SASL_CRAM_CTX_LEN])
{
	uint8_t key[MD5_CBLOCK] = { 0 }, block[MD5_CBLOCK];
	size_t len = strlen(password);
	MD5_CTX ctx;

	if (len > MD5_CBLOCK)
		(void)MD5((const unsigned char *)password, len, key);
	else
		memcpy(key, password, len);
	for (int pass = 0; pass < 2; pass++) {
		uint8_t pad = pass == 0 ? 0x36 : 0x5c;
		for (size_t i = 0; i < MD5_CBLOCK; i++)
			block[i] = key[i] ^ pad;
		(void)MD5_Init(&ctx);
		(void)MD5_Update(&ctx, block, sizeof(block));
		put_le32(out + pass * 16 + 0, ctx.A);
		put_le32(out + pass * 16 + 4, ctx.B);
		put_le32(out + pass * 16 + 8, ctx.C);
		put_le32(out + pass * 16 + 12, ctx.D);
	}
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(block, sizeof(block));
	OPENSSL_cleanse(&ctx, sizeof(ctx));
}

int
sasl_secrets_derive(const char *password, const uint8_t *salt,
		    size_t salt_len, unsigned iter,
		    struct sasl_secrets *sec_r, const char **error_r)
{
	uint8_t salted[SASL_SCRAM_KEY_LEN], client_key[SASL_SCRAM_KEY_LEN];
	unsigned len = 0;
	int ok;

	memset(sec_r, 0, sizeof(*sec_r));
	if (salt_len == 0 || salt_len > SASL_SCRAM_SALT_MAX) {
		*error_r = "bad SCRAM salt length";
		return -1;
	}
	if (iter < SASL_SCRAM_ITER_MIN || iter > SASL_SCRAM_ITER_MAX) {
		*error_r = "SCRAM iteration count out of range";
		return -1;
	}
	/* RFC 5802 §3 */
	ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
			       (int)salt_len, (int)iter, EVP_sha256(),
			       (int)sizeof(salted), salted) == 1 &&
	     HMAC(EVP_sha256(), salted, sizeof(salted),
		  (const unsigned char *)"Client Key", 10, client_key,
		  &len) != NULL &&
	     SHA256(client_key, sizeof(client_key),
		    sec_r->scram_stored_key) != NULL &&
	     HMAC(EVP_sha256(), salted, sizeof(salted),
		  (const unsigned char *)"Server Key", 10,
		  sec_r->scram_server_key, &len) != NULL;
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (!ok) {
		memset(sec_r, 0, sizeof(*sec_r));
		*error_r = "SCRAM key derivation failed";
		return -1;
	}
	sec_r->has_scram = true;
	sec_r->scram_iter = iter;
	memcpy(sec_r->scram_salt, salt, salt_len);
	sec_r->scram_salt_len = salt_len;
	cram_derive(password, sec_r->cram_ctx);
	sec_r->has_cram = true;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * account crypt: password hashes with libxcrypt (yescrypt by default),
 * their verification, and random octets and passwords from OpenSSL.
 * Every buffer that held a password or crypt(3)'s working state is wiped
 * before it is freed. Thread-safe: no static state.
 */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "account/account_int.h"

/* no 0 O o 1 l I: easy to read aloud and to copy by hand */
static const char pw_chars[] =
	"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

int
account_random(uint8_t *p, size_t n)
{
	if (n > (size_t)INT32_MAX)
		return -1;
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

int
account_hash_password(const char *password, const char *prefix,
		      char **hash_r, const char **error_r)
{
	void *data = NULL;
	int size = 0;
	char *setting, *out;

	if (prefix == NULL)
		prefix = ACCOUNT_HASH_PREFIX_DEFAULT;
	if (strcmp(prefix, "$y$") != 0 && strcmp(prefix, "$2b$") != 0 &&
	    strcmp(prefix, "$2y$") != 0 && strcmp(prefix, "$6$") != 0) {
		*error_r = "unsupported hash scheme";
		return -1;
	}
	if (strnlen(password, ACCOUNT_PASSWORD_MAX + 1) >
	    ACCOUNT_PASSWORD_MAX) {
		*error_r = "the password is too long";
		return -1;
	}
	/* count 0: the scheme's default cost; NULL: the system's entropy */
	setting = crypt_gensalt_ra(prefix, 0, NULL, 0);
	if (setting == NULL) {
		*error_r = "crypt_gensalt failed (no randomness, or the scheme "
			   "is disabled)";
		return -1;
	}
	out = crypt_ra(password, setting, &data, &size);
	if (out == NULL || out[0] == '*' || strlen(out) > ACCOUNT_HASH_MAX) {
		*error_r = "crypt failed";
		out = NULL;
	} else {
		*hash_r = xstrdup(out);
	}
	if (data != NULL) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	free(setting);
	return out != NULL ? 0 : -1;
}

bool
account_verify_password(const struct account *a, const char *password)
{
	struct crypt_data *cd;
	const char *out;
	size_t hlen;
	bool ok;

	if (a == NULL || a->hash == NULL || !account_hash_scheme_ok(a->hash))
		return false;
	if (strnlen(password, ACCOUNT_PASSWORD_MAX + 1) > ACCOUNT_PASSWORD_MAX)
		return false;
	hlen = strlen(a->hash);
	/* about 32 KiB: on the heap, not on a worker thread's stack;
	 * zeroed as crypt_rn wants it the first time */
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_rn(password, a->hash, cd, (int)sizeof(*cd));
	ok = out != NULL && out[0] != '*' && strlen(out) == hlen &&
	     CRYPTO_memcmp(out, a->hash, hlen) == 0;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

void
account_generate_password(char *out, size_t outsz)
{
	/* 4 * 56 = 224: octets from 224 up are drawn again, so that every
	 * character is equally likely */
	const size_t nchars = sizeof(pw_chars) - 1;
	const unsigned limit = (unsigned)(256 / nchars * nchars);
	uint8_t rnd[64];
	size_t i = 0, k = sizeof(rnd);

	TN_ASSERT(outsz > 0);
	while (i + 1 < outsz) {
		if (k == sizeof(rnd)) {
			int r = account_random(rnd, sizeof(rnd));

			TN_ASSERT(r == 0);
			k = 0;
		}
		if (rnd[k] < limit)
			out[i++] = pw_chars[rnd[k] % nchars];
		k++;
	}
	out[i] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
}

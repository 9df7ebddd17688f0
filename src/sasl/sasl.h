/* SPDX-License-Identifier: MIT */
/*
 * sasl: the server side of the SASL mechanisms tern offers for SMTP AUTH
 * (RFC 4954): PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and
 * SCRAM-SHA-256 (RFC 5802, RFC 7677), on OpenSSL's primitives.
 *
 * Pure code: decoded client messages in, challenges and a verdict out. It
 * reads no clock, file or socket; randomness (nonces) is passed in. The
 * SMTP engine does the base64 and the 334 exchange; serve/ owns a
 * struct sasl_server per AUTH attempt and looks accounts up.
 *
 * Mechanisms that check a password in the clear (PLAIN, LOGIN) end in
 * SASL_CHECK_PASSWORD: the caller verifies it against the stored hash,
 * which is slow on purpose (yescrypt), off the loop thread. The
 * challenge-response mechanisms verify here, from stored secrets that the
 * lookup callback supplies.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

enum sasl_mech {
	SASL_MECH_PLAIN = 0,
	SASL_MECH_LOGIN,
	SASL_MECH_CRAM_MD5,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_COUNT,
};

/* "PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256" */
const char *sasl_mech_name(enum sasl_mech m);
/* case-insensitive; false for a mechanism tern does not implement */
bool sasl_mech_parse(const char *name, enum sasl_mech *m_r);

/* RFC 7677: SHA-256 output; RFC 2195: two MD5 chaining states */
#define SASL_SCRAM_KEY_LEN 32
#define SASL_SCRAM_SALT_MAX 64
#define SASL_SCRAM_ITER_DEFAULT 10000
#define SASL_SCRAM_ITER_MIN 4096     /* RFC 7677 §4 */
#define SASL_SCRAM_ITER_MAX 1000000
#define SASL_CRAM_CTX_LEN 32

/*
 * What the server stores of a password for the challenge-response
 * mechanisms; never the password itself.
 *  SCRAM (RFC 5802 §3): SaltedPassword = PBKDF2-HMAC-SHA-256(password,
 *  salt, iter); StoredKey = H(HMAC(SaltedPassword, "Client Key"));
 *  ServerKey = HMAC(SaltedPassword, "Server Key").
 *  CRAM-MD5 (RFC 2195 §2, as Dovecot keeps it): the MD5 chaining values
 *  after the first block of HMAC-MD5's inner (key ^ ipad) and outer
 *  (key ^ opad) hashes, little-endian A B C D each. They let a client be
 *  checked, and are as good as the password for CRAM-MD5 only.
 */
struct sasl_secrets {
	bool has_scram;
	unsigned scram_iter;
	uint8_t scram_salt[SASL_SCRAM_SALT_MAX];
	size_t scram_salt_len;
	uint8_t scram_stored_key[SASL_SCRAM_KEY_LEN];
	uint8_t scram_server_key[SASL_SCRAM_KEY_LEN];
	bool has_cram;
	uint8_t cram_ctx[SASL_CRAM_CTX_LEN];  /* inner then outer state */
};

/*
 * Derives both secrets from a password: salt (salt_len <=
 * SASL_SCRAM_SALT_MAX, random, from the caller) and iter for SCRAM.
 * Slow (PBKDF2): not on the loop thread. Returns 0, or -1 with *error_r
 * (static text).
 */
int sasl_secrets_derive(const char *password, const uint8_t *salt,
			size_t salt_len, unsigned iter,
			struct sasl_secrets *sec_r, const char **error_r);

/*
 * The lookup the challenge-response mechanisms make, synchronously,
 * inside sasl_server_step(): authcid is the login name as the client
 * gave it (SCRAM: with "=2C" and "=3D" already decoded). Returns 1 and
 * fills *sec_r when the account exists, 0 when it does not. *sec_r is
 * zeroed before the call. SCRAM answers an account without usable SCRAM
 * secrets (0, or has_scram false) with a normal-looking server-first and
 * fails at the proof: it then uses scram_salt/scram_salt_len (and
 * scram_iter) if the lookup filled them anyway, for example with a salt
 * derived from a server secret and the name; else a salt made from the
 * hostname and the name, stable but computable by anyone.
 */
typedef int sasl_lookup_fn(void *arg, const char *authcid,
			   struct sasl_secrets *sec_r);

enum sasl_status {
	SASL_CONTINUE = 0,     /* send the challenge, feed the response */
	SASL_CHECK_PASSWORD,   /* PLAIN/LOGIN: verify the credentials */
	SASL_OK,               /* authenticated as sasl_server_authcid() */
	SASL_FAIL,             /* wrong credentials or unknown account */
	SASL_BAD,              /* malformed client message */
};

/* random octets the caller hands to sasl_server_new (nonces) */
#define SASL_RANDOM_LEN 32

struct sasl_server;

/*
 * One authentication exchange. hostname goes into the CRAM-MD5
 * challenge; random is SASL_RANDOM_LEN fresh random octets; lookup (with
 * arg) is called for CRAM-MD5 and SCRAM. Copies what it keeps.
 */
struct sasl_server *sasl_server_new(enum sasl_mech mech,
				    const char *hostname,
				    const uint8_t random[SASL_RANDOM_LEN],
				    sasl_lookup_fn *lookup, void *arg);
void sasl_server_free(struct sasl_server **sp);

/*
 * One step. The first call carries the initial response when the client
 * sent one (have_input true, inlen may be 0 for RFC 4954's "="), else
 * have_input false; later calls carry each decoded client response.
 * On SASL_CONTINUE, challenge holds the next server message (raw octets;
 * the engine base64-encodes it). SASL_FAIL and SASL_BAD set *error_r to
 * a short reason for the log (never a secret, never the client's data).
 * After SASL_OK, SASL_FAIL or SASL_BAD the exchange is over: further
 * steps return SASL_BAD and change nothing. A message longer than 12,288
 * octets (RFC 4954 §4's line bound) is SASL_BAD. challenge is reset
 * first; no challenge is longer than 2,048 octets (a smaller max makes
 * the step SASL_BAD).
 *
 * SCRAM ends with the server-final message sent as a challenge
 * (SASL_CONTINUE with "v=..."), and SASL_OK on the client's empty reply
 * (RFC 4954 §4: SMTP has no additional data with success).
 */
enum sasl_status sasl_server_step(struct sasl_server *s, const uint8_t *in,
				  size_t inlen, bool have_input,
				  struct buf *challenge,
				  const char **error_r);

/*
 * After SASL_CHECK_PASSWORD: the identities and the password (valid
 * until the next step, sasl_server_checked() or free, which wipe the
 * password). authzid is "" when the client asked for none.
 */
void sasl_server_credentials(const struct sasl_server *s,
			     const char **authzid_r, const char **authcid_r,
			     const char **password_r);
/*
 * The caller's verdict on the credentials: ok true -> SASL_OK (the
 * exchange is over and authenticated), false -> SASL_FAIL. Anywhere but
 * right after SASL_CHECK_PASSWORD it changes nothing and returns
 * SASL_BAD.
 */
enum sasl_status sasl_server_checked(struct sasl_server *s, bool ok);

/* after SASL_OK: who logged in, and as whom they asked to act ("");
 * before that, or after SASL_FAIL, the names as far as the client gave
 * them ("" when not yet known), for the log. Valid until free. */
const char *sasl_server_authcid(const struct sasl_server *s);
const char *sasl_server_authzid(const struct sasl_server *s);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * sasl internals: the state of one exchange, shared by the mechanism
 * files (sasl_server.c: PLAIN, LOGIN and the common steps; sasl_cram.c;
 * sasl_scram.c), and the hooks the unit tests use to replay RFC vectors.
 * Still pure: no clock, file, socket or randomness of its own.
 */
#ifndef TERN_SASL_INT_H
#define TERN_SASL_INT_H

#include "sasl/sasl.h"

/* RFC 4954 §4: 12,288 octets per AUTH line; a decoded message is shorter,
 * so anything longer is not from a conforming client */
#define SASL_MSG_MAX 12288
/* RFC 4616 §2: authzid, authcid and passwd are at most 255 octets each;
 * the same bound holds for every name and password here */
#define SASL_FIELD_MAX 255
/* SCRAM: the longest client nonce taken; real clients send 24 to 64
 * printable octets, and the server-first message echoes it */
#define SASL_SCRAM_NONCE_MAX 1024
/* SCRAM: random octets in the server's nonce part (base64: 32 chars) */
#define SASL_SCRAM_SNONCE_RAW 24
/* CRAM-MD5: random octets in the challenge (hex: 32 chars) */
#define SASL_CRAM_RAND_LEN 16
/* the longest hostname put into a CRAM-MD5 challenge (RFC 1035 §2.3.4) */
#define SASL_HOSTNAME_MAX 255

enum sasl_state {
	SASL_ST_START = 0, /* nothing received yet */
	SASL_ST_WAIT1,	   /* a first challenge went out */
	SASL_ST_WAIT2,	   /* a second challenge went out */
	SASL_ST_WAIT3,	   /* SCRAM: the server-final went out */
	SASL_ST_CHECK,	   /* PLAIN/LOGIN: waiting for sasl_server_checked */
	SASL_ST_OK,	   /* over, authenticated */
	SASL_ST_OVER,	   /* over, not authenticated */
};

struct sasl_scram;

struct sasl_server {
	enum sasl_mech mech;
	enum sasl_state state;
	char hostname[SASL_HOSTNAME_MAX + 1];
	uint8_t random[SASL_RANDOM_LEN];
	sasl_lookup_fn *lookup;
	void *lookup_arg;

	/* NUL-terminated, "" until known; password wiped by free and by
	 * sasl_server_checked */
	char authzid[SASL_FIELD_MAX + 1];
	char authcid[SASL_FIELD_MAX + 1];
	char password[SASL_FIELD_MAX + 1];

	/* CRAM-MD5: the challenge sent (or forced by a test) */
	char *cram_challenge;
	/* SCRAM-SHA-256 state, from the client-first message on */
	struct sasl_scram *scram;
	/* tests: replaces the SCRAM server nonce part */
	char *force_snonce;
};

/* ---- tests only ------------------------------------------------------ */
/*
 * Before the first step: the SCRAM server nonce part to send instead of
 * the base64 of the random octets (printable, no ','; RFC 7677 §3's is
 * "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"), or the whole CRAM-MD5 challenge
 * (RFC 2195 §2's is "<1896.697170952@postoffice.reston.mci.net>").
 */
void sasl_server_force_snonce(struct sasl_server *s, const char *snonce);
void sasl_server_force_challenge(struct sasl_server *s, const char *challenge);

/* ---- shared by the mechanism files ---------------------------------- */

/* RFC 3629 UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL */
bool sasl_utf8_valid(const uint8_t *p, size_t n);
/* strict base64 (RFC 4648 §4, padded, no white space) into out (at most
 * outmax octets); returns the length or -1 */
int sasl_b64_decode(const uint8_t *p, size_t n, uint8_t *out, size_t outmax);
/* appends the base64 of n octets to b; 0 or -1 past b->max */
int sasl_b64_append(struct buf *b, const uint8_t *p, size_t n);

/* the mechanism steps; the caller has bounded inlen, reset challenge, and
 * checked that the exchange is not over. On SASL_OK/FAIL/BAD the callee
 * has set s->state. */
enum sasl_status sasl_cram_step(struct sasl_server *s, const uint8_t *in,
				size_t inlen, bool have_input,
				struct buf *challenge, const char **error_r);
enum sasl_status sasl_scram_step(struct sasl_server *s, const uint8_t *in,
				 size_t inlen, bool have_input,
				 struct buf *challenge, const char **error_r);
void sasl_scram_free(struct sasl_scram **scp);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the SASL server mechanisms. The first input octet
 * picks the mechanism (bits 0-1), whether the first client message is an
 * initial response (bit 2) and the caller's verdict on a PLAIN/LOGIN
 * password (bit 3); the rest is cut into client messages at each 0xff
 * octet (which no UTF-8 text holds). One account is known: "user" with
 * the password "pencil", its secrets derived once (4096 iterations). The
 * random octets and hostname are fixed, so the seeds hold complete valid
 * exchanges. Invariants checked with TN_ASSERT: a known status; a
 * challenge only with SASL_CONTINUE, never over 2,048 octets; an error
 * text exactly with SASL_FAIL/SASL_BAD; SASL_OK for CRAM-MD5 and SCRAM
 * only as "user", for PLAIN/LOGIN only with a true verdict; credentials
 * of at most 255 octets; after the end every step is SASL_BAD and
 * changes nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sasl/sasl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOSTNAME "fuzz.test"
#define USER "user"
#define PASSWORD "pencil"
#define SALT "fuzz-salt-16octs"
#define DELIM 0xff
#define STEPS_MAX 16

static struct sasl_secrets secrets;

static const uint8_t fuzz_random[SASL_RANDOM_LEN] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
	0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
	0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01,
};

static int
lookup(void *arg, const char *authcid, struct sasl_secrets *sec_r)
{
	(void)arg;
	TN_ASSERT(strlen(authcid) <= 255);
	if (strcmp(authcid, USER) != 0)
		return 0;
	*sec_r = secrets;
	return 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *err = NULL;

	(void)argc;
	(void)argv;
	if (sasl_secrets_derive(PASSWORD, (const uint8_t *)SALT,
				strlen(SALT), 4096, &secrets, &err) != 0)
		log_fatal("fuzz_sasl: %s", err);
	return 0;
}

/* the exchange is over: nothing moves it any more */
static void
check_over(struct sasl_server *s, struct buf *chal)
{
	const char *err = NULL;

	TN_ASSERT(sasl_server_step(s, (const uint8_t *)"x", 1, true, chal,
				   &err) == SASL_BAD);
	TN_ASSERT(err != NULL && chal->len == 0);
	TN_ASSERT(sasl_server_checked(s, true) == SASL_BAD);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_server *s;
	struct buf chal;
	enum sasl_mech mech;
	const uint8_t *p, *end;
	bool initial, verdict, over = false;
	unsigned steps = 0;

	if (size < 1 || size > (size_t)3 * 12288)
		return 0;
	mech = (enum sasl_mech)(data[0] & 3);
	initial = (data[0] & 4) != 0;
	verdict = (data[0] & 8) != 0;
	p = data + 1;
	end = data + size;

	buf_init(&chal, 12288);
	s = sasl_server_new(mech, HOSTNAME, fuzz_random, lookup, NULL);
	if (!initial) {
		const char *err = NULL;
		enum sasl_status st;

		st = sasl_server_step(s, NULL, 0, false, &chal, &err);
		/* PLAIN and SCRAM send an empty challenge, the others text */
		TN_ASSERT(st == SASL_CONTINUE);
		TN_ASSERT((chal.len == 0) == (mech == SASL_MECH_PLAIN ||
					      mech == SASL_MECH_SCRAM_SHA_256));
	}
	while (!over && steps++ < STEPS_MAX) {
		const uint8_t *q = memchr(p, DELIM, (size_t)(end - p));
		const char *err = NULL;
		size_t n;
		enum sasl_status st;

		if (q == NULL)
			q = end;
		n = (size_t)(q - p);
		st = sasl_server_step(s, p, n, true, &chal, &err);
		TN_ASSERT(st >= SASL_CONTINUE && st <= SASL_BAD);
		/* PLAIN and LOGIN succeed only by the caller's verdict */
		TN_ASSERT(st != SASL_OK || (mech != SASL_MECH_PLAIN &&
					    mech != SASL_MECH_LOGIN));
		TN_ASSERT(st == SASL_CONTINUE || chal.len == 0);
		TN_ASSERT(chal.len <= 2048);
		TN_ASSERT((st == SASL_FAIL || st == SASL_BAD) == (err != NULL));
		if (st == SASL_CHECK_PASSWORD) {
			const char *z, *c, *pw;
			enum sasl_status v;

			TN_ASSERT(mech == SASL_MECH_PLAIN ||
				  mech == SASL_MECH_LOGIN);
			sasl_server_credentials(s, &z, &c, &pw);
			TN_ASSERT(strlen(z) <= 255 && strlen(pw) <= 255);
			TN_ASSERT(strlen(c) > 0 && strlen(c) <= 255);
			TN_ASSERT(*pw != '\0');
			v = sasl_server_checked(s, verdict);
			TN_ASSERT(v == (verdict ? SASL_OK : SASL_FAIL));
			st = v;
		}
		if (st == SASL_OK && (mech == SASL_MECH_CRAM_MD5 ||
				      mech == SASL_MECH_SCRAM_SHA_256))
			TN_ASSERT(strcmp(sasl_server_authcid(s), USER) == 0);
		if (st == SASL_OK || st == SASL_FAIL || st == SASL_BAD) {
			check_over(s, &chal);
			over = true;
		}
		if (q == end)
			break;
		p = q + 1;
	}
	sasl_server_free(&s);
	buf_clear(&chal);
	return 0;
}

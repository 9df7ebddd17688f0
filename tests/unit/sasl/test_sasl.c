/* SPDX-License-Identifier: MIT */
/*
 * Tests of the SASL server mechanisms: PLAIN (RFC 4616), LOGIN, CRAM-MD5
 * (RFC 2195, with its §2 example) and SCRAM-SHA-256 (RFC 5802, with the
 * RFC 7677 §3 vector), success and failure paths, malformed messages,
 * bounds, unknown users and steps after the end. Exchanges are tables of
 * steps; failures say "got X, want Y". The client side of CRAM-MD5 and
 * SCRAM is computed here with OpenSSL's HMAC and PBKDF2, independently of
 * the code under test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "sasl/sasl_int.h"
#include "unit_check.h"

/* ------------------------------------------------------------------ */
/* accounts */

/* RFC 7677 §3 */
#define RFC7677_SALT_B64 "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC7677_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC7677_FIRST "n,,n=user,r=" RFC7677_CNONCE
#define RFC7677_SFIRST \
	"r=" RFC7677_CNONCE RFC7677_SNONCE ",s=" RFC7677_SALT_B64 ",i=4096"
#define RFC7677_FINAL_WO "c=biws,r=" RFC7677_CNONCE RFC7677_SNONCE
#define RFC7677_PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC7677_FINAL RFC7677_FINAL_WO ",p=" RFC7677_PROOF
#define RFC7677_V "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* RFC 2195 §2 */
#define RFC2195_CHALLENGE "<1896.697170952@postoffice.reston.mci.net>"
#define RFC2195_RESPONSE "tim b913a602c7eda7a495b4e6e7334d3890"

#define LONG_PW                                                           \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" \
	"0123456789abcdef"

struct account {
	const char *name;
	const char *password;
	const char *salt;
	bool scram, cram;
	struct sasl_secrets sec;
};

static struct account accounts[] = {
	{ "user", "pencil", NULL, true, true, { 0 } },
	{ "tim", "tanstaaftanstaaf", "salt-of-tim", true, true, { 0 } },
	{ "a,b=c", "pw", "salt-of-abc", true, true, { 0 } },
	{ "nosecret", "pw", "salt-nosecret", false, false, { 0 } },
	{ "long", LONG_PW, "salt-of-long", true, true, { 0 } },
	{ "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", "salt-utf8", true, true,
	  { 0 } },
};
#define NACCOUNTS (sizeof(accounts) / sizeof(accounts[0]))

static unsigned lookups;
static char last_lookup[SASL_FIELD_MAX + 1];

/* "ghost" does not exist, but the lookup gives it a stable salt */
static int
lookup(void *arg, const char *authcid, struct sasl_secrets *sec_r)
{
	(void)arg;
	lookups++;
	snprintf(last_lookup, sizeof(last_lookup), "%s", authcid);
	for (size_t i = 0; i < NACCOUNTS; i++)
		if (strcmp(accounts[i].name, authcid) == 0) {
			*sec_r = accounts[i].sec;
			return 1;
		}
	if (strcmp(authcid, "ghost") == 0) {
		memcpy(sec_r->scram_salt, "ghost-salt", 10);
		sec_r->scram_salt_len = 10;
		sec_r->scram_iter = 5000;
	}
	return 0;
}

static size_t
t_b64_decode(const char *in, uint8_t *out)
{
	size_t n = strlen(in);
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);

	assert_true(len >= 0);
	while (n > 0 && in[n - 1] == '=') {
		n--;
		len--;
	}
	return (size_t)len;
}

static void
t_b64_encode(const uint8_t *p, size_t n, char *out)
{
	(void)EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

static int
setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < NACCOUNTS; i++) {
		struct account *a = &accounts[i];
		uint8_t salt[SASL_SCRAM_SALT_MAX];
		size_t salt_len;
		const char *err = NULL;

		if (a->salt == NULL) {
			salt_len = t_b64_decode(RFC7677_SALT_B64, salt);
		} else {
			salt_len = strlen(a->salt);
			memcpy(salt, a->salt, salt_len);
		}
		assert_int_equal(sasl_secrets_derive(a->password, salt,
						     salt_len, 4096, &a->sec,
						     &err),
				 0);
		a->sec.has_scram = a->scram;
		a->sec.has_cram = a->cram;
	}
	return 0;
}

static const uint8_t rnd[SASL_RANDOM_LEN] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa,
	0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
	0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01,
};

static const char *
status_name(enum sasl_status st)
{
	switch (st) {
	case SASL_CONTINUE: return "CONTINUE";
	case SASL_CHECK_PASSWORD: return "CHECK_PASSWORD";
	case SASL_OK: return "OK";
	case SASL_FAIL: return "FAIL";
	case SASL_BAD: return "BAD";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* exchanges as tables */

enum step_kind {
	K_END = 0,
	K_IN,      /* a client message */
	K_NOIN,    /* no initial response */
	K_VERDICT, /* sasl_server_checked(s, verdict) */
};

struct step {
	enum step_kind kind;
	const char *in;
	size_t len;
	bool verdict;
	enum sasl_status want;
	const char *chal;  /* wanted challenge (NULL: not checked) */
	const char *err;   /* wanted error text (NULL: not checked) */
};

#define IN(str, w) { K_IN, str, sizeof(str) - 1, false, w, NULL, NULL }
#define INC(str, w, c) { K_IN, str, sizeof(str) - 1, false, w, c, NULL }
#define INE(str, w, e) { K_IN, str, sizeof(str) - 1, false, w, NULL, e }
#define NOIN(w, c) { K_NOIN, NULL, 0, false, w, c, NULL }
#define VERDICT(v, w) { K_VERDICT, NULL, 0, v, w, NULL, NULL }
#define AFTER { K_IN, "", 0, false, SASL_BAD, NULL, \
		"step after the exchange ended" }

struct xcase {
	const char *name;
	enum sasl_mech mech;
	const char *force;     /* SCRAM nonce part or CRAM challenge */
	/* at the end, when not NULL */
	const char *authcid, *authzid;
	/* at SASL_CHECK_PASSWORD, when not NULL */
	const char *password;
	struct step steps[8];
};

/* name, mechanism, forced nonce/challenge, wanted authcid, authzid and
 * password, then the steps */
#define CASE(name, mech, force, authcid, authzid, password, ...) \
	{ name, mech, force, authcid, authzid, password, { __VA_ARGS__ } }
#define M_PLAIN SASL_MECH_PLAIN
#define M_LOGIN SASL_MECH_LOGIN
#define M_CRAM SASL_MECH_CRAM_MD5
#define M_SCRAM SASL_MECH_SCRAM_SHA_256

static void
run_case(const struct xcase *c)
{
	struct sasl_server *s;
	struct buf chal;

	buf_init(&chal, SASL_MSG_MAX);
	s = sasl_server_new(c->mech, "mx.test", rnd, lookup, NULL);
	if (c->force != NULL && c->mech == SASL_MECH_CRAM_MD5)
		sasl_server_force_challenge(s, c->force);
	else if (c->force != NULL)
		sasl_server_force_snonce(s, c->force);
	for (unsigned i = 0; i < 8 && c->steps[i].kind != K_END; i++) {
		const struct step *st = &c->steps[i];
		const char *err = NULL;
		enum sasl_status got;

		if (st->kind == K_VERDICT)
			got = sasl_server_checked(s, st->verdict);
		else
			got = sasl_server_step(s, (const uint8_t *)st->in,
					       st->len, st->kind == K_IN, &chal,
					       &err);
		CHECK(got == st->want, "%s step %u: got %s, want %s (%s)",
		      c->name, i, status_name(got), status_name(st->want),
		      err != NULL ? err : "");
		if (st->kind != K_VERDICT &&
		    (got == SASL_FAIL || got == SASL_BAD))
			CHECK(err != NULL, "%s step %u: no error text", c->name,
			      i);
		if (st->err != NULL)
			CHECK(err != NULL && strcmp(err, st->err) == 0,
			      "%s step %u: got error \"%s\", want \"%s\"",
			      c->name, i, err != NULL ? err : "(none)",
			      st->err);
		if (st->chal != NULL)
			CHECK(chal.len == strlen(st->chal) &&
				      (chal.len == 0 ||
				       memcmp(chal.p, st->chal, chal.len) == 0),
			      "%s step %u: got challenge \"%.*s\", want \"%s\"",
			      c->name, i, (int)chal.len,
			      chal.len ? (const char *)chal.p : "", st->chal);
		if (got != SASL_CONTINUE && st->kind != K_VERDICT)
			CHECK(chal.len == 0, "%s step %u: challenge with %s",
			      c->name, i, status_name(got));
		if (got == SASL_CHECK_PASSWORD && c->password != NULL) {
			const char *z, *n, *p;

			sasl_server_credentials(s, &z, &n, &p);
			CHECK(strcmp(p, c->password) == 0,
			      "%s: got password \"%s\", want \"%s\"", c->name,
			      p, c->password);
		}
	}
	if (c->authcid != NULL)
		CHECK(strcmp(sasl_server_authcid(s), c->authcid) == 0,
		      "%s: got authcid \"%s\", want \"%s\"", c->name,
		      sasl_server_authcid(s), c->authcid);
	if (c->authzid != NULL)
		CHECK(strcmp(sasl_server_authzid(s), c->authzid) == 0,
		      "%s: got authzid \"%s\", want \"%s\"", c->name,
		      sasl_server_authzid(s), c->authzid);
	sasl_server_free(&s);
	assert_null(s);
	buf_clear(&chal);
}

static void
run_cases(const struct xcase *cases, size_t n)
{
	failures = 0;
	for (size_t i = 0; i < n; i++)
		run_case(&cases[i]);
	assert_int_equal(failures, 0);
}

#define OK_ SASL_OK
#define CONT SASL_CONTINUE
#define CHK SASL_CHECK_PASSWORD
#define FAIL SASL_FAIL
#define BAD SASL_BAD

/* 255 and 256 octets */
#define X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X63 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define X255 X64 X64 X64 X63
#define X256 X255 "x"

/* ------------------------------------------------------------------ */
/* PLAIN */

static const struct xcase plain_cases[] = {
	CASE("plain ir", M_PLAIN, NULL, "tim", "", "tanstaaf",
	     IN("\0tim\0tanstaaf", CHK),
	     VERDICT(true, OK_),
	     AFTER,
	     VERDICT(true, BAD)),
	CASE("plain authzid", M_PLAIN, NULL, "tim", "admin", "pw",
	     IN("admin\0tim\0pw", CHK),
	     VERDICT(true, OK_)),
	CASE("plain no ir", M_PLAIN, NULL, "tim", "", "pw",
	     NOIN(CONT, ""),
	     IN("\0tim\0pw", CHK),
	     VERDICT(true, OK_)),
	CASE("plain refused", M_PLAIN, NULL, "tim", "", NULL,
	     IN("\0tim\0wrong", CHK),
	     VERDICT(false, FAIL),
	     AFTER,
	     VERDICT(true, BAD)),
	CASE("plain utf8", M_PLAIN, NULL, "\xf0\x9f\x98\x80", "\xc3\xa9",
	     "\xe2\x82\xac",
	     IN("\xc3\xa9\0\xf0\x9f\x98\x80\0\xe2\x82\xac", CHK)),
	CASE("plain 255", M_PLAIN, NULL, X255, X255, X255,
	     IN(X255 "\0" X255 "\0" X255, CHK)),
	CASE("plain authzid 256", M_PLAIN, NULL, NULL, NULL, NULL,
	     INE(X256 "\0tim\0pw", BAD, "PLAIN: field too long")),
	CASE("plain authcid 256", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0" X256 "\0pw", BAD)),
	CASE("plain passwd 256", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0" X256, BAD),
	     AFTER),
	CASE("plain no nul", M_PLAIN, NULL, NULL, NULL, NULL,
	     INE("timpw", BAD, "PLAIN: missing NUL")),
	CASE("plain one nul", M_PLAIN, NULL, NULL, NULL, NULL,
	     INE("tim\0pw", BAD, "PLAIN: missing NUL")),
	CASE("plain three nuls", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0p\0w", BAD)),
	CASE("plain empty authcid", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0\0pw", BAD)),
	CASE("plain empty passwd", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0", BAD)),
	CASE("plain empty ir", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("", BAD)),
	CASE("plain empty response", M_PLAIN, NULL, NULL, NULL, NULL,
	     NOIN(CONT, ""),
	     IN("", BAD),
	     AFTER),
	CASE("plain truncated utf8", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\xc3\0pw", BAD)),
	CASE("plain overlong utf8", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0p\xc0\xafw", BAD)),
	CASE("plain surrogate", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\xed\xa0\x80\0tim\0pw", BAD)),
	CASE("plain past U+10FFFF", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0\xf4\x90\x80\x80", BAD)),
	CASE("plain lone continuation", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0\x80\0pw", BAD)),
	CASE("plain 0xff", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0\xff", BAD)),
	CASE("plain step while checking", M_PLAIN, NULL, NULL, NULL, NULL,
	     IN("\0tim\0pw", CHK),
	     INE("\0tim\0pw", BAD, "step while the password is checked"),
	     VERDICT(true, BAD),
	     AFTER),
	CASE("plain verdict before", M_PLAIN, NULL, NULL, NULL, NULL,
	     VERDICT(true, BAD),
	     IN("\0tim\0pw", CHK),
	     VERDICT(true, OK_)),
};

static void
test_plain(void **state)
{
	(void)state;
	run_cases(plain_cases, sizeof(plain_cases) / sizeof(plain_cases[0]));
}

/* ------------------------------------------------------------------ */
/* LOGIN */

static const struct xcase login_cases[] = {
	CASE("login", M_LOGIN, NULL, "tim", "", "pw",
	     NOIN(CONT, "Username:"),
	     INC("tim", CONT, "Password:"),
	     IN("pw", CHK),
	     VERDICT(true, OK_),
	     AFTER),
	CASE("login ir", M_LOGIN, NULL, "tim", "", "pw",
	     INC("tim", CONT, "Password:"),
	     IN("pw", CHK),
	     VERDICT(false, FAIL),
	     AFTER),
	CASE("login 255", M_LOGIN, NULL, X255, "", X255,
	     INC(X255, CONT, "Password:"),
	     IN(X255, CHK)),
	CASE("login user 256", M_LOGIN, NULL, NULL, NULL, NULL,
	     NOIN(CONT, "Username:"),
	     INE(X256, BAD, "LOGIN: bad user name")),
	CASE("login password 256", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("tim", CONT),
	     INE(X256, BAD, "LOGIN: bad password")),
	CASE("login empty ir", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("", BAD)),
	CASE("login empty password", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("tim", CONT),
	     IN("", BAD),
	     AFTER),
	CASE("login nul in user", M_LOGIN, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("ti\0m", BAD)),
	CASE("login nul in password", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("tim", CONT),
	     IN("p\0w", BAD)),
	CASE("login bad utf8", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("tim", CONT),
	     IN("p\xe9w", BAD)),
	CASE("login step while checking", M_LOGIN, NULL, NULL, NULL, NULL,
	     IN("tim", CONT),
	     IN("pw", CHK),
	     IN("again", BAD),
	     VERDICT(true, BAD)),
};

static void
test_login(void **state)
{
	(void)state;
	run_cases(login_cases, sizeof(login_cases) / sizeof(login_cases[0]));
}

/* ------------------------------------------------------------------ */
/* CRAM-MD5 */

#define D32 "b913a602c7eda7a495b4e6e7334d3890"

static const struct xcase cram_cases[] = {
	CASE("cram rfc2195", M_CRAM, RFC2195_CHALLENGE, "tim", "", NULL,
	     NOIN(CONT, RFC2195_CHALLENGE),
	     IN(RFC2195_RESPONSE, OK_),
	     AFTER),
	CASE("cram upper hex", M_CRAM, RFC2195_CHALLENGE, "tim", NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("tim B913A602C7EDA7A495B4E6E7334D3890", OK_)),
	CASE("cram wrong digest", M_CRAM, RFC2195_CHALLENGE, "tim", NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("tim b913a602c7eda7a495b4e6e7334d3891", FAIL,
	         "CRAM-MD5: wrong digest"),
	     AFTER),
	CASE("cram other challenge", M_CRAM,
	     "<1897.697170952@postoffice.reston.mci.net>", NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN(RFC2195_RESPONSE, FAIL)),
	CASE("cram unknown user", M_CRAM, RFC2195_CHALLENGE, "bob", NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("bob " D32, FAIL, "CRAM-MD5: unknown user")),
	CASE("cram no secret", M_CRAM, RFC2195_CHALLENGE, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("nosecret " D32, FAIL,
	         "CRAM-MD5: no CRAM-MD5 secret for the user")),
	CASE("cram ir", M_CRAM, NULL, NULL, NULL, NULL,
	     INE(RFC2195_RESPONSE, BAD,
	         "CRAM-MD5: initial response not allowed"),
	     AFTER),
	CASE("cram empty ir", M_CRAM, NULL, NULL, NULL, NULL,
	     IN("", BAD)),
	CASE("cram empty", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("", BAD)),
	CASE("cram name only", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("tim", BAD)),
	CASE("cram no name", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN(" " D32, BAD)),
	CASE("cram no space", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("tim" D32, BAD)),
	CASE("cram 31 hex", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("tim b913a602c7eda7a495b4e6e7334d389", BAD,
	         "CRAM-MD5: malformed response")),
	CASE("cram 33 hex", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("tim " D32 "0", BAD)),
	CASE("cram not hex", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("tim b913a602c7eda7a495b4e6e7334d389g", BAD,
	         "CRAM-MD5: digest is not hex")),
	CASE("cram trailing space", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("tim " D32 " ", BAD)),
	CASE("cram name 255", M_CRAM, NULL, X255, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN(X255 " " D32, FAIL)),
	CASE("cram name 256", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     INE(X256 " " D32, BAD, "CRAM-MD5: bad user name")),
	CASE("cram name nul", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("t\0m " D32, BAD)),
	CASE("cram name bad utf8", M_CRAM, NULL, NULL, NULL, NULL,
	     NOIN(CONT, NULL),
	     IN("t\xffm " D32, BAD)),
	CASE("cram name with space", M_CRAM, NULL, "t m", NULL, NULL,
	     NOIN(CONT, NULL),
	     INE("t m " D32, FAIL, "CRAM-MD5: unknown user")),
};

static void
test_cram(void **state)
{
	(void)state;
	run_cases(cram_cases, sizeof(cram_cases) / sizeof(cram_cases[0]));
}

/* the generated challenge, answered by a client computing HMAC-MD5 with
 * OpenSSL from the password (also past one MD5 block, RFC 2104 §2) */
static void
test_cram_client(void **state)
{
	static const char *const users[] = { "tim", "long",
					     "\xc3\xa9t\xc3\xa9" };

	(void)state;
	failures = 0;
	for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		const struct account *a = NULL;
		struct sasl_server *s;
		struct buf chal, resp;
		uint8_t mac[EVP_MAX_MD_SIZE];
		unsigned maclen = 0;
		const char *err = NULL;
		char want[128];
		enum sasl_status st;

		for (size_t i = 0; i < NACCOUNTS; i++)
			if (strcmp(accounts[i].name, users[u]) == 0)
				a = &accounts[i];
		assert_non_null(a);
		buf_init(&chal, SASL_MSG_MAX);
		buf_init(&resp, 0);
		s = sasl_server_new(SASL_MECH_CRAM_MD5, "mx.test", rnd, lookup,
				    NULL);
		assert_int_equal(sasl_server_step(s, NULL, 0, false, &chal,
						  &err),
				 SASL_CONTINUE);
		snprintf(want, sizeof(want), "<%s@mx.test>",
			 "00112233445566778899aabbccddeeff");
		CHECK(strcmp(buf_cstr(&chal), want) == 0,
		      "got challenge %s, want %s", buf_cstr(&chal), want);
		assert_non_null(HMAC(EVP_md5(), a->password,
				     (int)strlen(a->password), chal.p,
				     chal.len, mac, &maclen));
		assert_int_equal(maclen, 16);
		buf_printf(&resp, "%s ", a->name);
		for (unsigned i = 0; i < maclen; i++)
			buf_printf(&resp, "%02x", mac[i]);
		lookups = 0;
		st = sasl_server_step(s, resp.p, resp.len, true, &chal, &err);
		CHECK(st == SASL_OK, "%s: got %s (%s), want OK", a->name,
		      status_name(st), st == SASL_OK ? "" : err);
		CHECK(lookups == 1 && strcmp(last_lookup, a->name) == 0,
		      "%s: lookup of \"%s\" x%u", a->name, last_lookup,
		      lookups);
		CHECK(strcmp(sasl_server_authcid(s), a->name) == 0,
		      "got authcid %s", sasl_server_authcid(s));
		sasl_server_free(&s);
		buf_clear(&chal);
		buf_clear(&resp);
	}
	assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------ */
/* SCRAM-SHA-256 */

/* RFC 5802 §3 from the client's side */
static void
scram_client(const char *password, const uint8_t *salt, size_t salt_len,
	     unsigned iter, const char *auth_msg, uint8_t proof[32],
	     uint8_t server_sig[32])
{
	uint8_t salted[32], ckey[32], stored[32], sig[32], skey[32];
	unsigned len;

	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password),
					   salt, (int)salt_len, (int)iter,
					   EVP_sha256(), 32, salted),
			 1);
	assert_non_null(HMAC(EVP_sha256(), salted, 32,
			     (const uint8_t *)"Client Key", 10, ckey, &len));
	assert_non_null(SHA256(ckey, 32, stored));
	assert_non_null(HMAC(EVP_sha256(), stored, 32,
			     (const uint8_t *)auth_msg, strlen(auth_msg), sig,
			     &len));
	for (int i = 0; i < 32; i++)
		proof[i] = ckey[i] ^ sig[i];
	assert_non_null(HMAC(EVP_sha256(), salted, 32,
			     (const uint8_t *)"Server Key", 10, skey, &len));
	assert_non_null(HMAC(EVP_sha256(), skey, 32,
			     (const uint8_t *)auth_msg, strlen(auth_msg),
			     server_sig, &len));
}

/* sasl_secrets_derive against RFC 7677 §3, without the server code: the
 * vector's proof gives back StoredKey, and ServerKey gives its v= */
static void
test_scram_secrets_rfc7677(void **state)
{
	const char *am = "n=user,r=" RFC7677_CNONCE "," RFC7677_SFIRST
			 "," RFC7677_FINAL_WO;
	const struct sasl_secrets *sec = &accounts[0].sec;
	uint8_t proof[64], sig[32], ckey[32], h[32], vsig[64];
	char v[64];
	unsigned len;

	(void)state;
	assert_string_equal(accounts[0].name, "user");
	assert_int_equal(t_b64_decode(RFC7677_PROOF, proof), 32);
	assert_non_null(HMAC(EVP_sha256(), sec->scram_stored_key, 32,
			     (const uint8_t *)am, strlen(am), sig, &len));
	for (int i = 0; i < 32; i++)
		ckey[i] = proof[i] ^ sig[i];
	assert_non_null(SHA256(ckey, 32, h));
	assert_memory_equal(h, sec->scram_stored_key, 32);
	assert_non_null(HMAC(EVP_sha256(), sec->scram_server_key, 32,
			     (const uint8_t *)am, strlen(am), vsig, &len));
	t_b64_encode(vsig, 32, v);
	assert_string_equal(v, &RFC7677_V[2]);
	assert_int_equal(sec->scram_iter, 4096);
	assert_int_equal(sec->scram_salt_len, 16);
}

#define SF RFC7677_SNONCE
/* the RFC 7677 proof without its last three characters */
#define PROOF43 ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And"

static const struct xcase scram_cases[] = {
	CASE("scram rfc7677", M_SCRAM, SF, "user", "", NULL,
	     INC(RFC7677_FIRST, CONT, RFC7677_SFIRST),
	     INC(RFC7677_FINAL, CONT, RFC7677_V),
	     INC("", OK_, ""),
	     AFTER),
	CASE("scram rfc7677 no ir", M_SCRAM, SF, "user", "", NULL,
	     NOIN(CONT, ""),
	     INC(RFC7677_FIRST, CONT, RFC7677_SFIRST),
	     INC(RFC7677_FINAL, CONT, RFC7677_V),
	     IN("", OK_),
	     AFTER),
	CASE("scram wrong proof", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE(RFC7677_FINAL_WO PROOF43 "VA=",
	         FAIL, "SCRAM: wrong proof"),
	     AFTER),
	CASE("scram data after v", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL, CONT),
	     INE("x", BAD, "SCRAM: data after server-final"),
	     AFTER),
	CASE("scram replayed first", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FIRST, BAD),
	     AFTER),
	CASE("scram replayed final", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL, CONT),
	     IN(RFC7677_FINAL, BAD),
	     AFTER),
	CASE("scram final first", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FINAL, BAD)),
	/* client-final attributes */
	CASE("scram c mismatch", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE("c=eSws,r=" RFC7677_CNONCE SF ",p=" RFC7677_PROOF, BAD,
	         "SCRAM: channel binding mismatch")),
	CASE("scram c cbind data", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("c=biwsAAAA,r=" RFC7677_CNONCE SF ",p=" RFC7677_PROOF, BAD)),
	CASE("scram c missing", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("r=" RFC7677_CNONCE SF ",p=" RFC7677_PROOF, BAD)),
	CASE("scram r missing", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE("c=biws,p=" RFC7677_PROOF, BAD, "SCRAM: missing nonce")),
	CASE("scram r after ext", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("c=biws,e=1,r=" RFC7677_CNONCE SF ",p=" RFC7677_PROOF, BAD)),
	CASE("scram client nonce only", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE("c=biws,r=" RFC7677_CNONCE ",p=" RFC7677_PROOF, BAD,
	         "SCRAM: nonce mismatch")),
	CASE("scram nonce longer", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("c=biws,r=" RFC7677_CNONCE SF "x,p=" RFC7677_PROOF, BAD)),
	CASE("scram nonce changed", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("c=biws,r=rOprNGfwEbeRWgbNEkqP" SF ",p=" RFC7677_PROOF, BAD)),
	CASE("scram proof missing", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE(RFC7677_FINAL_WO, BAD, "SCRAM: missing or bad proof")),
	CASE("scram proof empty", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO ",p=", BAD)),
	CASE("scram proof short", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO PROOF43 "Q==",
	        BAD)),
	CASE("scram proof long", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO ",p=" RFC7677_PROOF "AAAA", BAD)),
	CASE("scram proof unpadded", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO PROOF43 "VQ",
	        BAD)),
	CASE("scram proof bad bits", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO PROOF43 "VR=",
	        BAD)),
	CASE("scram proof not b64", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO PROOF43 "*Q=",
	        BAD)),
	CASE("scram proof not last", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL ",e=1", BAD)),
	CASE("scram bad ext", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     INE(RFC7677_FINAL_WO ",1=x,p=" RFC7677_PROOF, BAD,
	         "SCRAM: bad extension")),
	CASE("scram empty ext", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO ",,p=" RFC7677_PROOF, BAD)),
	CASE("scram final bad utf8", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN(RFC7677_FINAL_WO ",e=\xff,p=" RFC7677_PROOF, BAD)),
	CASE("scram final empty", M_SCRAM, SF, NULL, NULL, NULL,
	     IN(RFC7677_FIRST, CONT),
	     IN("", BAD)),
	/* client-first */
	CASE("scram y flag", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("y,,n=user,r=" RFC7677_CNONCE, CONT),
	     INE(RFC7677_FINAL, BAD, "SCRAM: channel binding mismatch")),
	CASE("scram p flag", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("p=tls-unique,,n=user,r=abc", BAD,
	         "SCRAM: channel binding not offered")),
	CASE("scram p flag 2", M_SCRAM, SF, NULL, NULL, NULL,
	     NOIN(CONT, ""),
	     IN("p=tls-server-end-point,,n=user,r=abc", BAD),
	     AFTER),
	CASE("scram bad flag", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("x,,n=user,r=abc", BAD, "SCRAM: bad gs2 header")),
	CASE("scram flag only", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n", BAD)),
	CASE("scram one comma", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,n=user,r=abc", BAD)),
	CASE("scram no bare", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,", BAD)),
	CASE("scram authzid", M_SCRAM, SF, "user", "ad,min=", NULL,
	     IN("n,a=ad=2Cmin=3D,n=user,r=abc", CONT)),
	CASE("scram authzid empty", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,a=,n=user,r=abc", BAD, "SCRAM: bad authzid")),
	CASE("scram authzid unterminated", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,a=admin", BAD)),
	CASE("scram authzid bad escape", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,a=ad=3Emin,n=user,r=abc", BAD)),
	CASE("scram gs2 other attr", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,b=admin,n=user,r=abc", BAD)),
	CASE("scram mext", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,m=ext,n=user,r=abc", BAD,
	         "SCRAM: mandatory extension not supported")),
	CASE("scram no user", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,r=abc", BAD, "SCRAM: missing user name")),
	CASE("scram empty user", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,n=,r=abc", BAD, "SCRAM: bad user name")),
	CASE("scram user escapes", M_SCRAM, SF, "a,b=c", "", NULL,
	     IN("n,,n=a=2Cb=3Dc,r=abc", CONT)),
	CASE("scram user lower escapes", M_SCRAM, SF, "a,b=c", "", NULL,
	     IN("n,,n=a=2cb=3dc,r=abc", CONT)),
	CASE("scram user bad escape", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=a=3Eb,r=abc", BAD)),
	CASE("scram user short escape", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=ab=2,r=abc", BAD)),
	CASE("scram user bare =", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=ab=,r=abc", BAD)),
	CASE("scram user 255", M_SCRAM, SF, X255, NULL, NULL,
	     IN("n,,n=" X255 ",r=abc", CONT)),
	CASE("scram user 256", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=" X256 ",r=abc", BAD)),
	CASE("scram user nul", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=us\0er,r=abc", BAD)),
	CASE("scram user bad utf8", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=us\xc3(r,r=abc", BAD)),
	CASE("scram user utf8", M_SCRAM, SF, "\xc3\xa9t\xc3\xa9", NULL, NULL,
	     IN("n,,n=\xc3\xa9t\xc3\xa9,r=abc", CONT)),
	CASE("scram no nonce", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,n=user", BAD, "SCRAM: missing nonce")),
	CASE("scram nonce not r", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,x=abc", BAD)),
	CASE("scram empty nonce", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,n=user,r=", BAD, "SCRAM: bad nonce")),
	CASE("scram nonce space", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,r=ab c", BAD)),
	CASE("scram nonce del", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,r=ab\x7f", BAD)),
	CASE("scram nonce utf8", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,r=ab\xc3\xa9", BAD)),
	CASE("scram first ext", M_SCRAM, SF, "user", NULL, NULL,
	     IN("n,,n=user,r=abc,e=x=y", CONT)),
	CASE("scram first bad ext", M_SCRAM, SF, NULL, NULL, NULL,
	     INE("n,,n=user,r=abc,e=", BAD, "SCRAM: bad extension")),
	CASE("scram first trailing comma", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,r=abc,", BAD)),
	CASE("scram first digit ext", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=user,r=abc,1=x", BAD)),
	CASE("scram empty ir", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("", BAD)),
	CASE("scram empty first", M_SCRAM, SF, NULL, NULL, NULL,
	     NOIN(CONT, ""),
	     IN("", BAD),
	     AFTER),
	/* an unknown user gets a normal-looking server-first */
	CASE("scram unknown", M_SCRAM, SF, "nobody", NULL, NULL,
	     IN("n,,n=nobody,r=abc", CONT),
	     INE("c=biws,r=abc" SF ",p=" RFC7677_PROOF, FAIL,
	         "SCRAM: unknown user"),
	     AFTER),
	CASE("scram no secret", M_SCRAM, SF, NULL, NULL, NULL,
	     IN("n,,n=nosecret,r=abc", CONT),
	     INE("c=biws,r=abc" SF ",p=" RFC7677_PROOF, FAIL,
	         "SCRAM: no usable SCRAM secret for the user")),
	CASE("scram ghost salt", M_SCRAM, SF, NULL, NULL, NULL,
	     INC("n,,n=ghost,r=abc", CONT,
	         "r=abc" SF ",s=Z2hvc3Qtc2FsdA==,i=5000"),
	     IN("c=biws,r=abc" SF ",p=" RFC7677_PROOF, FAIL)),
};

static void
test_scram(void **state)
{
	(void)state;
	run_cases(scram_cases, sizeof(scram_cases) / sizeof(scram_cases[0]));
}

/* the salt and iteration count a server-first gives */
static void
parse_server_first(const char *sf, char *nonce, char *salt, unsigned *iter)
{
	const char *s = strstr(sf, ",s="), *i = strstr(sf, ",i=");

	assert_true(strncmp(sf, "r=", 2) == 0 && s != NULL && i != NULL);
	memcpy(nonce, sf + 2, (size_t)(s - sf - 2));
	nonce[s - sf - 2] = '\0';
	memcpy(salt, s + 3, (size_t)(i - s - 3));
	salt[i - s - 3] = '\0';
	*iter = (unsigned)strtoul(i + 3, NULL, 10);
}

/*
 * A whole exchange with the server's own nonce and a client that computes
 * its proof here: gs2 header, user, password, extensions of client-final.
 * Returns the status of the client-final step; checks v= on success.
 */
static enum sasl_status
scram_exchange(const char *gs2, const char *user, const char *password,
	       const char *final_ext, char *server_first_r)
{
	struct sasl_server *s;
	struct buf chal;
	char first[512], bare[512], sf[512], nonce[256], salt_b64[128];
	char final[1024], am[2048], proof_b64[64], v[64], cb[128];
	uint8_t salt[64], proof[32], ssig[32];
	unsigned iter;
	const char *err = NULL;
	enum sasl_status st;

	buf_init(&chal, SASL_MSG_MAX);
	s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, "mx.test", rnd, lookup,
			    NULL);
	snprintf(bare, sizeof(bare), "n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
	snprintf(first, sizeof(first), "%s%s", gs2, bare);
	st = sasl_server_step(s, (const uint8_t *)first, strlen(first), true,
			      &chal, &err);
	assert_int_equal(st, SASL_CONTINUE);
	snprintf(sf, sizeof(sf), "%s", buf_cstr(&chal));
	if (server_first_r != NULL)
		snprintf(server_first_r, 512, "%s", sf);
	parse_server_first(sf, nonce, salt_b64, &iter);
	t_b64_encode((const uint8_t *)gs2, strlen(gs2), cb);
	snprintf(final, sizeof(final), "c=%s,r=%s%s", cb, nonce, final_ext);
	snprintf(am, sizeof(am), "%s,%s,%s", bare, sf, final);
	scram_client(password, salt, t_b64_decode(salt_b64, salt), iter, am,
		     proof, ssig);
	t_b64_encode(proof, 32, proof_b64);
	snprintf(final + strlen(final), sizeof(final) - strlen(final),
		 ",p=%s", proof_b64);
	st = sasl_server_step(s, (const uint8_t *)final, strlen(final), true,
			      &chal, &err);
	if (st == SASL_CONTINUE) {
		t_b64_encode(ssig, 32, v);
		CHECK(chal.len == strlen(v) + 2 &&
			      memcmp(chal.p, "v=", 2) == 0 &&
			      memcmp(chal.p + 2, v, strlen(v)) == 0,
		      "%s: got %s, want v=%s", user, buf_cstr(&chal), v);
		CHECK(sasl_server_step(s, NULL, 0, true, &chal, &err) ==
			      SASL_OK,
		      "%s: empty reply not OK", user);
	}
	sasl_server_free(&s);
	buf_clear(&chal);
	return st;
}

static void
test_scram_client(void **state)
{
	char sf[512], sf2[512], nonce[256], salt[128];
	unsigned iter;

	(void)state;
	failures = 0;
	CHECK(scram_exchange("n,,", "user", "pencil", "", sf) ==
		      SASL_CONTINUE,
	      "user: not accepted");
	/* the server nonce: the client's, then base64 of 24 random
	 * octets */
	parse_server_first(sf, nonce, salt, &iter);
	CHECK(strcmp(nonce, "fyko+d2lbbFgONRv9qkxdawL"
			    "ABEiM0RVZneImaq7zN3u/xAgMEBQYHCA") == 0,
	      "got nonce %s", nonce);
	CHECK(strcmp(salt, RFC7677_SALT_B64) == 0 && iter == 4096,
	      "got salt %s i=%u", salt, iter);
	CHECK(scram_exchange("y,,", "user", "pencil", "", NULL) ==
		      SASL_CONTINUE,
	      "y flag: not accepted");
	CHECK(scram_exchange("n,a=admin,", "user", "pencil", "", NULL) ==
		      SASL_CONTINUE,
	      "authzid: not accepted");
	CHECK(scram_exchange("n,,", "user", "pencil", ",e=1,f=x=y", NULL) ==
		      SASL_CONTINUE,
	      "extensions: not accepted");
	CHECK(scram_exchange("n,,", "a=2Cb=3Dc", "pw", "", NULL) ==
		      SASL_CONTINUE,
	      "escaped user: not accepted");
	CHECK(scram_exchange("n,,", "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9",
			     "", NULL) == SASL_CONTINUE,
	      "utf8 user: not accepted");
	CHECK(scram_exchange("n,,", "tim", "tanstaaftanstaaf", "", NULL) ==
		      SASL_CONTINUE,
	      "tim: not accepted");
	CHECK(scram_exchange("n,,", "tim", "tanstaaftanstaaF", "", NULL) ==
		      SASL_FAIL,
	      "tim wrong password: accepted");
	CHECK(scram_exchange("n,,", "user", "tanstaaftanstaaf", "", NULL) ==
		      SASL_FAIL,
	      "user with tim's password: accepted");

	/* unknown: a fake salt, stable per name, the default count, and
	 * the password is never right */
	CHECK(scram_exchange("n,,", "nobody", "pencil", "", sf) == SASL_FAIL,
	      "nobody: accepted");
	CHECK(scram_exchange("n,,", "nobody", "x", "", sf2) == SASL_FAIL,
	      "nobody: accepted");
	CHECK(strcmp(sf, sf2) == 0, "fake salt not stable: %s / %s", sf, sf2);
	parse_server_first(sf, nonce, salt, &iter);
	CHECK(strlen(salt) == 24 && iter == SASL_SCRAM_ITER_DEFAULT,
	      "unknown user: s=%s i=%u", salt, iter);
	CHECK(scram_exchange("n,,", "nobody2", "x", "", sf2) == SASL_FAIL,
	      "nobody2: accepted");
	CHECK(strcmp(sf, sf2) != 0, "same fake salt for two names");
	CHECK(scram_exchange("n,,", "nosecret", "pw", "", sf) == SASL_FAIL,
	      "nosecret: accepted");
	assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------ */
/* bounds and misuse */

static void
test_bounds(void **state)
{
	static uint8_t big[SASL_MSG_MAX + 1];
	struct buf chal, small;

	(void)state;
	failures = 0;
	memset(big, 'x', sizeof(big));
	buf_init(&chal, SASL_MSG_MAX);
	for (unsigned m = 0; m < SASL_MECH_COUNT; m++) {
		for (size_t n = SASL_MSG_MAX - 1; n <= SASL_MSG_MAX + 1; n++) {
			struct sasl_server *s;
			const char *err = NULL;
			enum sasl_status st;
			bool first = m == SASL_MECH_PLAIN ||
				     m == SASL_MECH_LOGIN;

			s = sasl_server_new(m, "mx.test", rnd, lookup, NULL);
			if (!first)
				(void)sasl_server_step(s, NULL, 0, false, &chal,
						       &err);
			st = sasl_server_step(s, big, n, true, &chal, &err);
			CHECK(st == SASL_BAD, "%s %zu: got %s",
			      sasl_mech_name(m),
			      n, status_name(st));
			CHECK((n > SASL_MSG_MAX) ==
				      (strcmp(err, "message too long") == 0),
			      "%s %zu: got %s", sasl_mech_name(m), n, err);
			sasl_server_free(&s);
		}
	}
	buf_clear(&chal);

	/* a challenge buffer too small for the challenge */
	buf_init(&small, 8);
	for (unsigned m = SASL_MECH_LOGIN; m < SASL_MECH_COUNT; m++) {
		struct sasl_server *s;
		const char *err = NULL;
		enum sasl_status st;

		s = sasl_server_new(m, "mx.test", rnd, lookup, NULL);
		if (m == SASL_MECH_SCRAM_SHA_256)
			st = sasl_server_step(s, (const uint8_t *)RFC7677_FIRST,
					      strlen(RFC7677_FIRST), true,
					      &small, &err);
		else
			st = sasl_server_step(s, NULL, 0, false, &small, &err);
		CHECK(st == SASL_BAD &&
			      strcmp(err, "challenge does not fit") == 0 &&
			      small.len == 0,
		      "%s: got %s", sasl_mech_name(m), status_name(st));
		sasl_server_free(&s);
	}
	buf_clear(&small);
	assert_int_equal(failures, 0);
}

/* SCRAM's client nonce: SASL_SCRAM_NONCE_MAX octets, not one more */
static void
test_scram_nonce_max(void **state)
{
	struct buf msg, chal;

	(void)state;
	buf_init(&msg, 0);
	buf_init(&chal, SASL_MSG_MAX);
	for (size_t n = SASL_SCRAM_NONCE_MAX - 1; n <= SASL_SCRAM_NONCE_MAX + 1;
	     n++) {
		struct sasl_server *s;
		const char *err = NULL;
		enum sasl_status st;

		buf_reset(&msg);
		buf_append_str(&msg, "n,,n=user,r=");
		for (size_t i = 0; i < n; i++)
			buf_append_str(&msg, "~");
		s = sasl_server_new(SASL_MECH_SCRAM_SHA_256, "mx.test", rnd,
				    lookup, NULL);
		st = sasl_server_step(s, msg.p, msg.len, true, &chal, &err);
		assert_int_equal(st, n <= SASL_SCRAM_NONCE_MAX ? SASL_CONTINUE :
								 SASL_BAD);
		if (st == SASL_CONTINUE)
			/* RFC 4954 §4: fits a 12,288-octet line as base64 */
			assert_true(chal.len <= 2048);
		sasl_server_free(&s);
	}
	buf_clear(&msg);
	buf_clear(&chal);
}

static void
test_misc(void **state)
{
	struct sasl_server *s = NULL;
	struct buf chal;
	const char *z, *n, *p, *err = NULL;
	enum sasl_mech m;

	(void)state;
	sasl_server_free(&s);
	assert_true(sasl_mech_parse("scram-sha-256", &m));
	assert_int_equal(m, SASL_MECH_SCRAM_SHA_256);
	assert_false(sasl_mech_parse("SCRAM-SHA-1", &m));
	assert_string_equal(sasl_mech_name(SASL_MECH_CRAM_MD5), "CRAM-MD5");

	/* the password is wiped once judged; the names stay */
	buf_init(&chal, SASL_MSG_MAX);
	s = sasl_server_new(SASL_MECH_PLAIN, "mx.test", rnd, NULL, NULL);
	assert_int_equal(sasl_server_step(s, (const uint8_t *)"z\0n\0p", 5,
					  true, &chal, &err),
			 SASL_CHECK_PASSWORD);
	sasl_server_credentials(s, &z, &n, &p);
	assert_string_equal(z, "z");
	assert_string_equal(n, "n");
	assert_string_equal(p, "p");
	assert_int_equal(sasl_server_checked(s, true), SASL_OK);
	sasl_server_credentials(s, &z, &n, &p);
	assert_string_equal(p, "");
	assert_string_equal(sasl_server_authcid(s), "n");
	assert_string_equal(sasl_server_authzid(s), "z");
	/* a step after the end changes no verdict */
	assert_int_equal(sasl_server_step(s, NULL, 0, true, &chal, &err),
			 SASL_BAD);
	assert_string_equal(sasl_server_authcid(s), "n");
	sasl_server_free(&s);

	/* no lookup callback: every challenge-response user is unknown */
	s = sasl_server_new(SASL_MECH_CRAM_MD5, "mx.test", rnd, NULL, NULL);
	sasl_server_force_challenge(s, RFC2195_CHALLENGE);
	assert_int_equal(sasl_server_step(s, NULL, 0, false, &chal, &err),
			 SASL_CONTINUE);
	assert_int_equal(sasl_server_step(s, (const uint8_t *)RFC2195_RESPONSE,
					  strlen(RFC2195_RESPONSE), true,
					  &chal, &err),
			 SASL_FAIL);
	sasl_server_free(&s);

	/* a very long hostname is cut to 255 octets in the challenge */
	{
		char host[400];

		memset(host, 'h', sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		s = sasl_server_new(SASL_MECH_CRAM_MD5, host, rnd, NULL, NULL);
		assert_int_equal(sasl_server_step(s, NULL, 0, false, &chal,
						  &err),
				 SASL_CONTINUE);
		assert_int_equal(chal.len, 1 + 32 + 1 + SASL_HOSTNAME_MAX + 1);
		sasl_server_free(&s);
	}
	buf_clear(&chal);
}

/* the internal base64 decoder is strict (RFC 4648 §3.5) */
static void
test_b64(void **state)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{ "", 0 },       { "AA==", 1 },  { "AAA=", 2 },
		{ "AAAA", 3 },   { "AB==", -1 }, { "AAB=", -1 },
		{ "A===", -1 },  { "====", -1 }, { "AA=A", -1 },
		{ "AA", -1 },    { "AAAAA", -1 }, { "AA==AAAA", -1 },
		{ "A A=", -1 },  { "AA\n=", -1 }, { "+/+/", 3 },
		{ "-_-_", -1 },  { "AAAAAAAAAAAA", -1 },
	};
	uint8_t out[8];

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = sasl_b64_decode((const uint8_t *)cases[i].in,
					  strlen(cases[i].in), out, 8);

		CHECK(got == cases[i].want, "\"%s\": got %d, want %d",
		      cases[i].in, got, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_cram),
		cmocka_unit_test(test_cram_client),
		cmocka_unit_test(test_scram_secrets_rfc7677),
		cmocka_unit_test(test_scram),
		cmocka_unit_test(test_scram_client),
		cmocka_unit_test(test_scram_nonce_max),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_misc),
		cmocka_unit_test(test_b64),
	};
	return cmocka_run_group_tests_name("sasl", tests, setup, NULL);
}

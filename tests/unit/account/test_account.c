/* SPDX-License-Identifier: MIT */
/*
 * Tests of the accounts store: the file format (round trips, every parse
 * error with its line, limits at limit - 1, limit and limit + 1), lookups
 * that ignore ASCII case, adding, replacing and removing, password
 * verification against hashes of every accepted scheme made here with
 * crypt_gensalt_ra(), locked and foreign hashes, and save/load in a
 * scratch directory (mode 0600, no temporary file left behind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>
#include <errno.h>

#include "account/account.h"
#include "unit_check.h"
#include "unit_fs.h"

/* a valid line's fields, for building cases */
#define HASH "$y$j9T$A8rstfSrJhYTEj5WSRMoW0$TxVy0dnV8yxFrYQF1YOnpdXP23Ih00i/cGAIOVJ3AV4"
#define SALT "jmVlzKoreUpz+j5kZWeCzg=="
#define KEY1 "jpO5iQrSKkIlK3I5snmtDD6qt8+YJnvdBqLpikFHHDY="
#define KEY2 "Tr9E/iWwoixsMfhy+1OFAqr839idtmh5xLtO1Y+nEfo="
#define SCRAM "SCRAM-SHA-256:10000:" SALT ":" KEY1 ":" KEY2
#define CRAM "CRAM-MD5:fa69d793810545332aa71e91b9ed7e06f5ed572d28e21dc835df33e856b52ed7"
#define LINE(addr) addr " " HASH " " SCRAM " " CRAM "\n"

static char *
repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* parse result: 0/-1 and the error (heap or NULL) */
static int
parse(const char *text, struct account_table **t_r, char **error_r)
{
	*error_r = NULL;
	*t_r = NULL;
	return account_table_parse(text, strlen(text), "f", t_r, error_r);
}

/* field by field: the struct has padding */
static bool
secrets_equal(const struct sasl_secrets *a, const struct sasl_secrets *b)
{
	return a->has_scram == b->has_scram && a->scram_iter == b->scram_iter &&
	       a->scram_salt_len == b->scram_salt_len &&
	       memcmp(a->scram_salt, b->scram_salt, a->scram_salt_len) == 0 &&
	       memcmp(a->scram_stored_key, b->scram_stored_key,
		      SASL_SCRAM_KEY_LEN) == 0 &&
	       memcmp(a->scram_server_key, b->scram_server_key,
		      SASL_SCRAM_KEY_LEN) == 0 &&
	       a->has_cram == b->has_cram &&
	       memcmp(a->cram_ctx, b->cram_ctx, SASL_CRAM_CTX_LEN) == 0;
}

/* entries of dir, dot files too */
static size_t
count_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_parse_ok(void **state)
{
	static const char text[] =
		"# comment\n"
		"\n"
		"   \t \n"
		"  # indented comment\n"
		"Bob@Example.ORG\t" HASH "\t" SCRAM "\t" CRAM "\t/var/mail/bob\n"
		"alice@example.org !" HASH " - -\r\n"
		"carol@example.org * - " CRAM "\n"
		"dave@example.org ! " SCRAM " -";   /* no final newline */
	struct account_table *t;
	const struct account *a;
	char *err;

	(void)state;
	assert_int_equal(parse(text, &t, &err), 0);
	assert_null(err);
	assert_int_equal(account_table_count(t), 4);
	/* sorted */
	assert_string_equal(account_table_at(t, 0)->address,
			    "alice@example.org");
	assert_string_equal(account_table_at(t, 1)->address, "bob@example.org");
	assert_string_equal(account_table_at(t, 2)->address,
			    "carol@example.org");
	assert_string_equal(account_table_at(t, 3)->address,
			    "dave@example.org");
	a = account_find(t, "bob@example.org");
	assert_non_null(a);
	assert_int_equal(a->line, 5);
	assert_string_equal(a->hash, HASH);
	assert_string_equal(a->maildir, "/var/mail/bob");
	assert_true(a->secrets.has_scram);
	assert_int_equal(a->secrets.scram_iter, 10000);
	assert_int_equal(a->secrets.scram_salt_len, 16);
	assert_int_equal(a->secrets.scram_salt[0], 0x8e);
	assert_int_equal(a->secrets.scram_stored_key[0], 0x8e);
	assert_int_equal(a->secrets.scram_server_key[31], 0xfa);
	assert_true(a->secrets.has_cram);
	assert_int_equal(a->secrets.cram_ctx[0], 0xfa);
	assert_int_equal(a->secrets.cram_ctx[31], 0xd7);
	a = account_find(t, "alice@example.org");
	assert_int_equal(a->line, 6);
	assert_string_equal(a->hash, "!" HASH);
	assert_false(a->secrets.has_scram);
	assert_false(a->secrets.has_cram);
	assert_null(a->maildir);
	a = account_find(t, "carol@example.org");
	assert_string_equal(a->hash, "*");
	assert_false(a->secrets.has_scram);
	assert_true(a->secrets.has_cram);
	a = account_find(t, "dave@example.org");
	assert_true(a->secrets.has_scram);
	assert_false(a->secrets.has_cram);
	account_table_free(&t);
	assert_null(t);
	account_table_free(&t);

	/* empty text: an empty table */
	assert_int_equal(parse("", &t, &err), 0);
	assert_int_equal(account_table_count(t), 0);
	assert_null(account_find(t, "a@b.test"));
	account_table_free(&t);
}

static void
test_parse_errors(void **state)
{
	char *local65 = repeat('a', 65), *hash384 = repeat('a', 384 - 3);
	/* 88 characters without padding: 66 octets */
	char *salt66 = repeat('A', 88), *cases_text[4];
	struct {
		const char *text, *want;
	} cases[] = {
		{ "x@y.test $y$a - -\nbad\n", "f:2: want 4 or 5 fields" },
		{ "x@y.test $y$a -\n", "f:1: want 4 or 5 fields" },
		{ "x@y.test $y$a - - /m extra\n", "f:1: want 4 or 5 fields" },
		{ "x@y.test $y$a - - /m a b c d\n", "f:1: want 4 or 5 fields" },
		{ "x@y.test  $y$a - -\n", "f:1: empty field" },
		{ "x@y.test $y$a - - \n", "f:1: empty field" },
		{ " x@y.test $y$a - -\n", "f:1: empty field" },
		{ "x@y.test \t$y$a - -\n", "f:1: empty field" },
		{ "#\n\nnodomain $y$a - -\n", "f:3: bad address" },
		{ "a@b@y.test $y$a - -\n", "f:1: bad address" },
		{ ".a@y.test $y$a - -\n", "f:1: bad address" },
		{ "a.@y.test $y$a - -\n", "f:1: bad address" },
		{ "a..b@y.test $y$a - -\n", "f:1: bad address" },
		{ "a@y..test $y$a - -\n", "f:1: bad address" },
		{ "a@-y.test $y$a - -\n", "f:1: bad address" },
		{ "a@y-.test $y$a - -\n", "f:1: bad address" },
		{ "a@123.45 $y$a - -\n", "f:1: bad address" },
		{ "a@y_z.test $y$a - -\n", "f:1: bad address" },
		{ "@y.test $y$a - -\n", "f:1: bad address" },
		{ "a@ $y$a - -\n", "f:1: bad address" },
		{ "a\"b@y.test $y$a - -\n", "f:1: bad address" },
		{ "a\xff@y.test $y$a - -\n", "f:1: bad address" },
		{ "a\xc3@y.test $y$a - -\n", "f:1: bad address" },
		{ "a\xc0\xa0@y.test $y$a - -\n", "f:1: bad address" },
		{ "a\xed\xa0\x80@y.test $y$a - -\n", "f:1: bad address" },
		{ "x@y.test $1$abc$def - -\n", "f:1: unsupported password hash" },
		{ "x@y.test plain - -\n", "f:1: unsupported password hash" },
		{ "x@y.test $y - -\n", "f:1: unsupported password hash" },
		{ "x@y.test $y$a:b - -\n", "f:1: bad character in the password hash" },
		{ "x@y.test !a:b - -\n", "f:1: bad character in the password hash" },
		{ "x@y.test $y$a SCRAM-SHA-1:4096:" SALT ":" KEY1 ":" KEY2 " -\n",
		  "f:1: the third field is not SCRAM-SHA-256" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" KEY1 " -\n",
		  "f:1: SCRAM-SHA-256 wants iterations" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" KEY1 ":" KEY2
		  ":x -\n", "f:1: SCRAM-SHA-256 wants iterations" },
		{ "x@y.test $y$a SCRAM-SHA-256:4095:" SALT ":" KEY1 ":" KEY2 " -\n",
		  "f:1: SCRAM iteration count out of range" },
		{ "x@y.test $y$a SCRAM-SHA-256:1000001:" SALT ":" KEY1 ":" KEY2
		  " -\n", "f:1: SCRAM iteration count out of range" },
		{ "x@y.test $y$a SCRAM-SHA-256:04096:" SALT ":" KEY1 ":" KEY2
		  " -\n", "f:1: bad SCRAM iteration count" },
		{ "x@y.test $y$a SCRAM-SHA-256:x:" SALT ":" KEY1 ":" KEY2 " -\n",
		  "f:1: bad SCRAM iteration count" },
		{ "x@y.test $y$a SCRAM-SHA-256::" SALT ":" KEY1 ":" KEY2 " -\n",
		  "f:1: bad SCRAM iteration count" },
		{ "x@y.test $y$a SCRAM-SHA-256:99999999999999999999:" SALT ":"
		  KEY1 ":" KEY2 " -\n", "f:1: bad SCRAM iteration count" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:abc:" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096::" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:====:" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		/* non-canonical: "QR==" carries bits that "QQ==" does not */
		{ "x@y.test $y$a SCRAM-SHA-256:4096:QR==:" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:QQ=A:" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:Q===:" KEY1 ":" KEY2 " -\n",
		  "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:QQ==QQ==:" KEY1 ":" KEY2
		  " -\n", "f:1: bad base64 in the SCRAM salt" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" SALT ":" KEY2
		  " -\n", "f:1: bad SCRAM StoredKey" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" KEY1 "QQ==:" KEY2
		  " -\n", "f:1: bad SCRAM StoredKey" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" KEY1 ":" KEY1 "x"
		  " -\n", "f:1: bad SCRAM ServerKey" },
		{ "x@y.test $y$a SCRAM-SHA-256:4096:" SALT ":" KEY1 ": -\n",
		  "f:1: bad SCRAM ServerKey" },
		{ "x@y.test $y$a - CRAM-SHA1:00\n",
		  "f:1: the fourth field is not CRAM-MD5" },
		{ "x@y.test $y$a - " CRAM "0\n", "f:1: bad CRAM-MD5 secret" },
		{ "x@y.test $y$a - CRAM-MD5:\n", "f:1: bad CRAM-MD5 secret" },
		{ "x@y.test $y$a - CRAM-MD5:g"
		  "00000000000000000000000000000000000000000000000000000000000000"
		  "0\n", "f:1: bad CRAM-MD5 secret" },
		{ "x@y.test $y$a - - relative/Maildir\n",
		  "f:1: the maildir must be an absolute path" },
		{ "x@y.test $y$a - - /a\x01\n",
		  "f:1: the maildir must be an absolute path" },
		{ "x@y.test $y$a - -\nx@y.test\0 $y$a - -\n", "f:2: NUL octet" },
		{ "#\n" LINE("A@b.test") "#\n" LINE("c@b.test") LINE("a@B.TEST")
		  LINE("c@b.test"),
		  "f:5: a@b.test given twice (also on line 2)" },
		{ NULL, "f:1: bad address" },   /* local part 65 */
		{ NULL, "f:1: password hash too long" },
		{ NULL, "f:1: SCRAM salt too long" },
		{ NULL, "f:2: line longer than 8192 octets" },
	};
	size_t ncases = sizeof(cases) / sizeof(cases[0]);

	(void)state;
	cases_text[0] = xasprintf("%s@y.test $y$a - -\n", local65);
	cases_text[1] = xasprintf("x@y.test $6$%s - -\n", hash384);
	cases_text[2] = xasprintf("x@y.test $y$a SCRAM-SHA-256:4096:%s:" KEY1
				  ":" KEY2 " -\n", salt66);
	{
		char *pad = repeat('x', ACCOUNT_LINE_MAX);

		cases_text[3] = xasprintf("#\n#%s\n", pad);
		free(pad);
	}
	for (size_t i = 0; i < 4; i++)
		cases[ncases - 4 + i].text = cases_text[i];

	failures = 0;
	for (size_t i = 0; i < ncases; i++) {
		const char *text = cases[i].text;
		size_t len = strlen(text);
		struct account_table *t = NULL;
		char *err = NULL;
		int r;

		/* the NUL case: its text goes on past the NUL */
		if (strstr(cases[i].want, "NUL") != NULL)
			len = strlen(text) + 1 + strlen(text + strlen(text) + 1);
		r = account_table_parse(text, len, "f", &t, &err);
		CHECK(r == -1, "case %zu: got %d, want -1", i, r);
		CHECK(t == NULL, "case %zu: a table on error", i);
		CHECK(err != NULL && strncmp(err, cases[i].want,
					     strlen(cases[i].want)) == 0,
		      "case %zu: got \"%s\", want \"%s...\"", i,
		      err != NULL ? err : "(null)", cases[i].want);
		free(err);
		account_table_free(&t);
	}
	assert_int_equal(failures, 0);
	for (size_t i = 0; i < 4; i++)
		free(cases_text[i]);
	free(salt66);
	free(local65);
	free(hash384);
}

/* each limit at limit - 1 and limit parses */
static void
test_parse_limits(void **state)
{
	char *local = repeat('a', ACCOUNT_LOCAL_MAX);
	char *l63 = repeat('d', 63), *l61 = repeat('e', 61);
	char *hash = repeat('a', ACCOUNT_HASH_MAX - 3);
	char *mdir = repeat('m', ACCOUNT_MAILDIR_MAX - 1);
	char *salt = repeat('A', 88);
	char *text, *err;
	struct account_table *t;

	(void)state;
	/* address of 254 octets: 64 + "@" + 63.63.61 */
	text = xasprintf("%s@%s.%s.%s $6$%s - - /%s\n", local, l63, l63, l61,
			 hash, mdir);
	assert_int_equal(strlen(text) - 1, 254 + 1 + 383 + 4 + 1 + 4095);
	assert_int_equal(parse(text, &t, &err), 0);
	assert_int_equal(strlen(account_table_at(t, 0)->address), 254);
	account_table_free(&t);
	free(text);
	/* 255 octets */
	text = xasprintf("%s@%s.%s.%sx $y$a - -\n", local, l63, l63, l61);
	assert_int_equal(parse(text, &t, &err), -1);
	assert_string_equal(err, "f:1: bad address (want local-part@domain)");
	free(err);
	free(text);
	/* maildir of 4096 */
	text = xasprintf("a@b.test $y$a - - /%sm\n", mdir);
	assert_int_equal(parse(text, &t, &err), -1);
	assert_string_equal(err, "f:1: maildir too long");
	free(err);
	free(text);
	/* salt of 64 octets (88 characters, two of them padding) parses */
	memcpy(salt + 86, "==", 2);
	text = xasprintf("a@b.test $y$a SCRAM-SHA-256:1000000:%s:" KEY1 ":"
			 KEY2 " -\n", salt);
	assert_int_equal(parse(text, &t, &err), 0);
	assert_int_equal(account_table_at(t, 0)->secrets.scram_salt_len, 64);
	assert_int_equal(account_table_at(t, 0)->secrets.scram_iter, 1000000);
	account_table_free(&t);
	free(text);
	/* 4096 iterations is the floor */
	assert_int_equal(parse("a@b.test $y$a SCRAM-SHA-256:4096:QQ==:" KEY1
			       ":" KEY2 " -\n", &t, &err), 0);
	assert_int_equal(account_table_at(t, 0)->secrets.scram_salt_len, 1);
	account_table_free(&t);
	/* lines of 8191 and 8192 octets (one with a CR LF) */
	for (size_t n = ACCOUNT_LINE_MAX - 1; n <= ACCOUNT_LINE_MAX; n++) {
		char *pad = repeat('#', n);

		text = xasprintf("%s\n%s\r\n" LINE("a@b.test"), pad, pad);
		assert_int_equal(parse(text, &t, &err), 0);
		assert_int_equal(account_table_at(t, 0)->line, 3);
		account_table_free(&t);
		free(text);
		free(pad);
	}
	free(local);
	free(l63);
	free(l61);
	free(hash);
	free(mdir);
	free(salt);
}

static void
test_address(void **state)
{
	static const struct {
		const char *in;
		bool want;
	} cases[] = {
		{ "alice@example.org", true },
		{ "Alice.B+tag@Example.ORG", true },
		{ "!#$%&'*+-/=?^_`{|}~@x.test", true },
		{ "j\xc3\xb6rg@example.org", true },        /* UTF-8 */
		{ "\xe2\x82\xac@example.org", true },
		{ "\xf0\x9f\x98\x80@example.org", true },
		{ "a@1.example", true },
		{ "a@example", true },
		{ "a@x1.example", true },
		{ "a@example.123", false },
		{ "a@1-2.3x", true },
		{ "", false },
		{ "a", false },
		{ "a@", false },
		{ "@a.test", false },
		{ "a b@x.test", false },
		{ "a@x.test.", false },
		{ "a@[127.0.0.1]", false },
		{ "\"a\"@x.test", false },
		{ "a@x@y.test", false },
		{ "a@b.c_d", false },
		{ "a\x7f@x.test", false },
		{ "\xf5\x80\x80\x80@x.test", false },
		{ "\xe0\x80\x80@x.test", false },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = account_address_valid(cases[i].in);

		CHECK(got == cases[i].want, "\"%s\": got %d, want %d",
		      cases[i].in, got, cases[i].want);
	}
	assert_int_equal(failures, 0);
	{
		char *n = account_address_normalize("J\xc3\x96RG@Ex.ORG");

		/* only ASCII letters change */
		assert_string_equal(n, "j\xc3\x96rg@ex.org");
		free(n);
	}
	assert_string_equal(account_address_domain("a@b.test"), "b.test");
	assert_string_equal(account_address_domain("nodomain"), "");
}

static void
test_lookup_case(void **state)
{
	struct account_table *t;
	char *err, *big;

	(void)state;
	assert_int_equal(parse(LINE("Alice@Example.ORG") LINE("alice@b.example")
			       LINE("J\xc3\x96RG@example.org"),
			       &t, &err), 0);
	assert_int_equal(account_table_count(t), 3);
	assert_non_null(account_find(t, "alice@example.org"));
	assert_non_null(account_find(t, "ALICE@EXAMPLE.ORG"));
	assert_non_null(account_find(t, "aLiCe@eXaMpLe.OrG"));
	assert_string_equal(account_find(t, "ALICE@EXAMPLE.ORG")->address,
			    "alice@example.org");
	/* each domain its own accounts */
	assert_true(account_find(t, "alice@b.example") !=
		    account_find(t, "alice@example.org"));
	assert_null(account_find(t, "alice@c.example"));
	assert_null(account_find(t, "alice@example.orgx"));
	assert_null(account_find(t, "alice"));
	assert_null(account_find(t, ""));
	/* the UTF-8 octets stay as they are */
	assert_non_null(account_find(t, "j\xc3\x96rg@example.org"));
	assert_non_null(account_find(t, "J\xc3\x96RG@EXAMPLE.ORG"));
	assert_null(account_find(t, "j\xc3\xb6rg@example.org"));
	big = repeat('a', 300);
	assert_null(account_find(t, big));
	assert_int_equal(account_remove(t, big), 0);
	free(big);
	account_table_free(&t);
}

static void
test_set_remove(void **state)
{
	struct account_table *t = account_table_new();
	const struct account *a;
	const char *err = NULL;
	struct sasl_secrets old;
	char *long_pw = repeat('p', ACCOUNT_PASSWORD_MAX + 1);
	char *hash;

	(void)state;
	assert_int_equal(account_set_password(t, "Zed@B.test", "pw-zed", &err),
			 0);
	assert_int_equal(account_set_password(t, "amy@b.test", "pw-amy", &err),
			 0);
	assert_int_equal(account_table_count(t), 2);
	assert_string_equal(account_table_at(t, 0)->address, "amy@b.test");
	assert_string_equal(account_table_at(t, 1)->address, "zed@b.test");
	a = account_find(t, "ZED@b.test");
	assert_non_null(a);
	assert_int_equal(strncmp(a->hash, "$y$", 3), 0);
	assert_true(a->secrets.has_scram);
	assert_true(a->secrets.has_cram);
	assert_int_equal(a->secrets.scram_iter, SASL_SCRAM_ITER_DEFAULT);
	assert_int_equal(a->secrets.scram_salt_len, ACCOUNT_SCRAM_SALT_LEN);
	assert_true(account_verify_password(a, "pw-zed"));
	assert_false(account_verify_password(a, "pw-amy"));
	/* the stored secrets are those sasl derives from the password */
	{
		struct sasl_secrets want;

		assert_int_equal(sasl_secrets_derive("pw-zed",
						     a->secrets.scram_salt,
						     a->secrets.scram_salt_len,
						     a->secrets.scram_iter,
						     &want, &err), 0);
		assert_true(secrets_equal(&want, &a->secrets));
	}
	/* maildir, then a new password keeps it */
	assert_int_equal(account_set_maildir(t, "zed@b.test", "/m/zed", &err),
			 0);
	old = a->secrets;
	hash = xstrdup(a->hash);
	assert_int_equal(account_set_password(t, "zed@b.test", "new-pw", &err),
			 0);
	assert_int_equal(account_table_count(t), 2);
	a = account_find(t, "zed@b.test");
	assert_string_equal(a->maildir, "/m/zed");
	assert_string_not_equal(a->hash, hash);
	assert_memory_not_equal(old.scram_salt, a->secrets.scram_salt,
				ACCOUNT_SCRAM_SALT_LEN);
	assert_true(account_verify_password(a, "new-pw"));
	assert_false(account_verify_password(a, "pw-zed"));
	free(hash);
	assert_int_equal(account_set_maildir(t, "zed@b.test", NULL, &err), 0);
	assert_null(account_find(t, "zed@b.test")->maildir);
	/* refusals */
	err = NULL;
	assert_int_equal(account_set_maildir(t, "nobody@b.test", "/m", &err),
			 -1);
	assert_string_equal(err, "no such account");
	assert_int_equal(account_set_maildir(t, "zed@b.test", "rel", &err), -1);
	assert_int_equal(account_set_maildir(t, "zed@b.test", "/a b", &err),
			 -1);
	assert_int_equal(account_set_password(t, "bad", "pw", &err), -1);
	assert_string_equal(err, "not a valid address (local-part@domain)");
	assert_int_equal(account_set_password(t, "x@b.test", "", &err), -1);
	assert_string_equal(err, "the password is empty");
	assert_int_equal(account_set_password(t, "x@b.test", long_pw, &err),
			 -1);
	assert_string_equal(err, "the password is too long");
	long_pw[ACCOUNT_PASSWORD_MAX] = '\0';
	assert_int_equal(account_set_password(t, "x@b.test", long_pw, &err), 0);
	assert_true(account_verify_password(account_find(t, "x@b.test"),
					    long_pw));
	assert_int_equal(account_table_count(t), 3);
	/* remove */
	assert_int_equal(account_remove(t, "AMY@B.TEST"), 1);
	assert_int_equal(account_remove(t, "amy@b.test"), 0);
	assert_null(account_find(t, "amy@b.test"));
	assert_int_equal(account_table_count(t), 2);
	assert_string_equal(account_table_at(t, 0)->address, "x@b.test");
	assert_int_equal(account_remove(t, "x@b.test"), 1);
	assert_int_equal(account_remove(t, "zed@b.test"), 1);
	assert_int_equal(account_table_count(t), 0);
	free(long_pw);
	account_table_free(&t);
}

/* a hash of pw made here, with libxcrypt directly */
static char *
make_hash(const char *prefix, const char *pw)
{
	struct crypt_data cd;
	char *setting = crypt_gensalt_ra(prefix, 0, NULL, 0);
	char *out;

	assert_non_null(setting);
	memset(&cd, 0, sizeof(cd));
	out = crypt_rn(pw, setting, &cd, sizeof(cd));
	assert_non_null(out);
	free(setting);
	return xstrdup(out);
}

static void
test_verify_schemes(void **state)
{
	static const char *const accepted[] = { "$y$", "$2b$", "$2y$", "$6$" };
	struct account a = { 0 };
	const char *err = NULL;

	(void)state;
	failures = 0;
	for (size_t i = 0; i < 4; i++) {
		char *h = make_hash(accepted[i], "Secret 1");
		char *locked = xasprintf("!%s", h), *ours = NULL;

		a.hash = h;
		CHECK(account_verify_password(&a, "Secret 1"),
		      "%s: the password does not verify", accepted[i]);
		CHECK(!account_verify_password(&a, "secret 1"),
		      "%s: a wrong password verifies", accepted[i]);
		CHECK(!account_verify_password(&a, ""),
		      "%s: the empty password verifies", accepted[i]);
		a.hash = locked;
		CHECK(!account_verify_password(&a, "Secret 1"),
		      "%s: a locked hash verifies", accepted[i]);
		/* ours, the same scheme */
		CHECK(account_hash_password("Secret 1", accepted[i], &ours,
					    &err) == 0, "%s: %s", accepted[i],
		      err);
		if (ours != NULL) {
			CHECK(strncmp(ours, accepted[i], strlen(accepted[i]))
			      == 0, "%s: got %s", accepted[i], ours);
			a.hash = ours;
			CHECK(account_verify_password(&a, "Secret 1"),
			      "%s: our hash does not verify", accepted[i]);
			CHECK(!account_verify_password(&a, "Secret 2"),
			      "%s: our hash verifies a wrong password",
			      accepted[i]);
		}
		free(ours);
		free(locked);
		free(h);
	}
	assert_int_equal(failures, 0);
	/* schemes tern does not accept never verify, even when right */
	{
		char *md5 = make_hash("$1$", "pw");

		a.hash = md5;
		assert_false(account_verify_password(&a, "pw"));
		free(md5);
	}
	a.hash = (char *)"!";
	assert_false(account_verify_password(&a, ""));
	assert_false(account_verify_password(&a, "!"));
	a.hash = (char *)"*";
	assert_false(account_verify_password(&a, "*"));
	a.hash = (char *)"";
	assert_false(account_verify_password(&a, ""));
	a.hash = (char *)"$y$";
	assert_false(account_verify_password(&a, ""));
	a.hash = NULL;
	assert_false(account_verify_password(&a, "x"));
	assert_false(account_verify_password(NULL, "x"));
	{
		char *h = NULL;

		assert_int_equal(account_hash_password("pw", "$1$", &h, &err),
				 -1);
		assert_string_equal(err, "unsupported hash scheme");
		assert_int_equal(account_hash_password("pw", NULL, &h, &err), 0);
		assert_int_equal(strncmp(h, "$y$", 3), 0);
		a.hash = h;
		assert_true(account_verify_password(&a, "pw"));
		free(h);
	}
}

static void
test_round_trip(void **state)
{
	struct account_table *t = account_table_new(), *t2;
	struct buf out, out2;
	const char *err = NULL;
	char *perr;

	(void)state;
	assert_int_equal(account_set_password(t, "b@x.test", "one", &err), 0);
	assert_int_equal(account_set_password(t, "a@y.test", "two", &err), 0);
	assert_int_equal(account_set_maildir(t, "a@y.test", "/srv/mail/a",
					     &err), 0);
	buf_init(&out, 0);
	account_table_format(t, &out);
	assert_int_equal(account_table_parse((const char *)out.p, out.len, "f",
					     &t2, &perr), 0);
	assert_int_equal(account_table_count(t2), 2);
	for (size_t i = 0; i < 2; i++) {
		const struct account *a = account_table_at(t, i);
		const struct account *b = account_table_at(t2, i);

		assert_string_equal(a->address, b->address);
		assert_string_equal(a->hash, b->hash);
		assert_true(secrets_equal(&a->secrets, &b->secrets));
		assert_int_equal(b->line, 4 + i);
	}
	assert_string_equal(account_table_at(t2, 0)->maildir, "/srv/mail/a");
	assert_null(account_table_at(t2, 1)->maildir);
	assert_true(account_verify_password(account_find(t2, "b@x.test"),
					    "one"));
	/* the first line says what the file is; no password in it */
	assert_int_equal(strncmp((const char *)buf_cstr(&out), "# tern accounts",
				 15), 0);
	assert_null(strstr(buf_cstr(&out), " one"));
	assert_null(strstr(buf_cstr(&out), " two"));
	/* format(parse(format)) == format */
	buf_init(&out2, 0);
	account_table_format(t2, &out2);
	assert_int_equal(out.len, out2.len);
	assert_memory_equal(out.p, out2.p, out.len);
	buf_clear(&out);
	buf_clear(&out2);
	account_table_free(&t2);

	/* the fixed text of a locked account without secrets */
	assert_int_equal(parse("z@x.test !" HASH " - - /m\n", &t2, &perr), 0);
	buf_init(&out, 0);
	account_table_format(t2, &out);
	assert_non_null(strstr(buf_cstr(&out), "\nz@x.test !" HASH
					       " - - /m\n"));
	buf_clear(&out);
	account_table_free(&t2);
	assert_int_equal(parse(LINE("q@x.test"), &t2, &perr), 0);
	buf_init(&out, 0);
	account_table_format(t2, &out);
	assert_non_null(strstr(buf_cstr(&out), "\n" LINE("q@x.test")));
	buf_clear(&out);
	account_table_free(&t2);
	account_table_free(&t);
}

static void
test_save_load(void **state)
{
	char dir[] = "/tmp/tern-account-XXXXXX", path[64], bad[128];
	struct account_table *t = account_table_new(), *t2 = NULL;
	const char *err = NULL;
	char *perr = NULL;
	struct stat st;
	int fd = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/accounts", dir);
	/* missing: empty */
	assert_int_equal(account_table_load(path, &t2, &perr), 0);
	assert_int_equal(account_table_count(t2), 0);
	account_table_free(&t2);
	assert_int_equal(account_file_lock(path, &fd, &perr), 0);
	assert_true(fd >= 0);
	assert_int_equal(account_set_password(t, "u@x.test", "pw", &err), 0);
	assert_int_equal(account_table_save(path, t, &perr), 0);
	account_file_unlock(fd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(bad, sizeof(bad), "%s.lock", path);
	assert_int_equal(stat(bad, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* the file and its lock, no temporary file */
	assert_int_equal(count_all(dir), 2);
	assert_int_equal(account_table_load(path, &t2, &perr), 0);
	assert_int_equal(account_table_count(t2), 1);
	assert_true(account_verify_password(account_find(t2, "U@X.TEST"), "pw"));
	account_table_free(&t2);
	/* a second save replaces the file */
	assert_int_equal(account_file_lock(path, &fd, &perr), 0);
	assert_int_equal(account_remove(t, "u@x.test"), 1);
	assert_int_equal(account_set_password(t, "v@x.test", "pw2", &err), 0);
	assert_int_equal(account_table_save(path, t, &perr), 0);
	account_file_unlock(fd);
	assert_int_equal(account_table_load(path, &t2, &perr), 0);
	assert_int_equal(account_table_count(t2), 1);
	assert_null(account_find(t2, "u@x.test"));
	assert_non_null(account_find(t2, "v@x.test"));
	account_table_free(&t2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_all(dir), 2);
	/* a broken file: file:line and EBADMSG */
	{
		FILE *f;

		snprintf(bad, sizeof(bad), "%s/broken", dir);
		f = fopen(bad, "w");
		assert_non_null(f);
		fputs("# x\nnot an account\n", f);
		fclose(f);
		errno = 0;
		assert_int_equal(account_table_load(bad, &t2, &perr), -1);
		assert_int_equal(errno, EBADMSG);
		assert_non_null(strstr(perr, "/broken:2: want 4 or 5 fields"));
		free(perr);
		perr = NULL;
	}
	/* not a file, and a directory that does not exist */
	assert_int_equal(account_table_load(dir, &t2, &perr), -1);
	assert_int_not_equal(errno, EBADMSG);
	free(perr);
	perr = NULL;
	snprintf(bad, sizeof(bad), "%s/none/accounts", dir);
	assert_int_equal(account_table_save(bad, t, &perr), -1);
	assert_non_null(strstr(perr, "cannot create a file in"));
	free(perr);
	account_table_free(&t);
	ut_rm_rf(dir);
}

static void
test_generate(void **state)
{
	char a[21], b[21], one[1], two[2];

	(void)state;
	account_generate_password(a, sizeof(a));
	account_generate_password(b, sizeof(b));
	assert_int_equal(strlen(a), 20);
	assert_string_not_equal(a, b);
	for (size_t i = 0; i < 20; i++) {
		assert_non_null(strchr("ABCDEFGHJKLMNPQRSTUVWXYZ"
				       "abcdefghijkmnpqrstuvwxyz23456789", a[i]));
		assert_null(strchr("0Oo1lI", a[i]));
	}
	account_generate_password(one, sizeof(one));
	assert_int_equal(one[0], '\0');
	account_generate_password(two, sizeof(two));
	assert_int_equal(strlen(two), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_lookup_case),
		cmocka_unit_test(test_set_remove),
		cmocka_unit_test(test_verify_schemes),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_generate),
	};
	return cmocka_run_group_tests_name("account", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* base_text: base64 (RFC 4648 §10 vectors, strictness, in place), hex */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"

/* RFC 4648 §10 */
static const char *const vectors[][2] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *plain = vectors[i][0], *enc = vectors[i][1];
		struct buf b;
		uint8_t out[16];
		char inplace[16];
		long n;

		buf_init(&b, 0);
		b64_append(&b, plain, strlen(plain));
		assert_int_equal(b.len, strlen(enc));
		assert_memory_equal(b.p, enc, b.len);
		buf_clear(&b);

		n = b64_decode(enc, strlen(enc), out, sizeof(out));
		assert_int_equal(n, (long)strlen(plain));
		assert_memory_equal(out, plain, (size_t)n);

		/* decoding in place */
		memcpy(inplace, enc, strlen(enc));
		n = b64_decode(inplace, strlen(enc), (uint8_t *)inplace,
			       strlen(enc));
		assert_int_equal(n, (long)strlen(plain));
		assert_memory_equal(inplace, plain, (size_t)n);
	}
}

static void
test_strict(void **state)
{
	static const char *const bad[] = {
		"Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v\n",
		"Zh==",      /* bits past the data (§3.5) */
		"Zm9=",      /* ditto, one pad */
		"Zm-v", "Zm v",
	};
	uint8_t out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(b64_decode(bad[i], strlen(bad[i]), out,
					    sizeof(out)), -1);
	/* too long for out */
	assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 5), -2);
	assert_int_equal(b64_decode("Zm9vYmFy", 8, out, 6), 6);
}

static void
test_hex(void **state)
{
	(void)state;
	assert_int_equal(hex_value('0'), 0);
	assert_int_equal(hex_value('9'), 9);
	assert_int_equal(hex_value('a'), 10);
	assert_int_equal(hex_value('F'), 15);
	assert_int_equal(hex_value('g'), -1);
	assert_int_equal(hex_value('/'), -1);
	assert_int_equal(hex_value(0), -1);
}

static void
test_utf8(void **state)
{
	static const struct { const char *s; size_t n; bool ok; } cases[] = {
		{ "plain", 5, true }, { "caf\xc3\xa9", 5, true },
		{ "\xe2\x82\xac", 3, true }, { "\xf0\x9f\x98\x80", 4, true },
		{ "\xc0\x80", 2, false },        /* overlong */
		{ "\xed\xa0\x80", 3, false },    /* surrogate */
		{ "\xf4\x90\x80\x80", 4, false }, /* past U+10FFFF */
		{ "\xe2\x82", 2, false },        /* cut */
		{ "\xff", 1, false },
	};
	uint32_t cp;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(utf8_valid((const uint8_t *)cases[i].s,
					    cases[i].n), cases[i].ok);
	assert_int_equal(utf8_char((const uint8_t *)"\xe2\x82\xac", 3, &cp),
			 3);
	assert_int_equal(cp, 0x20ac);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

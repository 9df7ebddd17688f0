/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spool_format.c: header, envelope and state record
 * encoding, checksums, and torn-record detection at every cut point.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spool/spool_int.h"

static struct spool_envelope *
sample_env(void)
{
	struct spool_envelope *e = xcalloc(1, sizeof(*e));

	memcpy(e->id, "0123456789ABCDEFabcd", SPOOL_ID_LEN + 1);
	e->mail_from = xstrdup("sender@example.org");
	e->helo = xstrdup("client.example.org");
	e->client_addr = xstrdup("192.0.2.7");
	e->envid = NULL;
	e->ret = 2;
	e->body = 1;
	e->smtputf8 = true;
	e->received_at = 1700000000;
	e->size = 12345;
	e->nrcpts = 3;
	e->rcpts = xcalloc(3, sizeof(*e->rcpts));
	e->rcpts[0].address = xstrdup("alice@example.org");
	e->rcpts[0].dest = xstrdup("alice");
	e->rcpts[0].notify = 6;
	e->rcpts[1].address = xstrdup("bob@example.org");
	e->rcpts[1].orcpt = xstrdup("rfc822;bob@example.org");
	e->rcpts[1].dest = xstrdup("bob");
	e->rcpts[1].state = SPOOL_RCPT_DEFERRED;
	e->rcpts[1].next_try = -5;
	e->rcpts[1].attempts = 4;
	e->rcpts[1].diag = xstrdup("452 mailbox full");
	e->rcpts[2].address = xstrdup("");
	e->rcpts[2].agent = SPOOL_AGENT_RELAY;
	return e;
}

static void
assert_str_eq_opt(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_env_equal(const struct spool_envelope *a, const struct spool_envelope *b)
{
	assert_string_equal(a->id, b->id);
	assert_str_eq_opt(a->mail_from, b->mail_from);
	assert_str_eq_opt(a->helo, b->helo);
	assert_str_eq_opt(a->client_addr, b->client_addr);
	assert_str_eq_opt(a->envid, b->envid);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->received_at, b->received_at);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct spool_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		assert_str_eq_opt(x->address, y->address);
		assert_str_eq_opt(x->orcpt, y->orcpt);
		assert_str_eq_opt(x->dest, y->dest);
		assert_str_eq_opt(x->diag, y->diag);
		assert_int_equal(x->notify, y->notify);
		assert_int_equal(x->agent, y->agent);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->next_try, y->next_try);
		assert_int_equal(x->attempts, y->attempts);
	}
}

static void
test_crc32c_known(void **state)
{
	(void)state;
	/* RFC 3720 B.4 check value of "123456789" */
	assert_int_equal(spool_crc32c(0, "123456789", 9), 0xe3069283u);
	/* incremental equals one-shot */
	uint32_t c = spool_crc32c(0, "1234", 4);
	assert_int_equal(spool_crc32c(c, "56789", 5), 0xe3069283u);
}

static void
test_hdr_roundtrip_and_damage(void **state)
{
	struct spool_hdr h = { .body_len = 1000, .env_off = 1064,
			       .env_len = 77, .env_crc = 0xdeadbeef }, g;
	uint8_t raw[SPOOL_HDR_SIZE];
	const char *why;

	(void)state;
	spool_hdr_encode(&h, raw);
	assert_int_equal(spool_hdr_decode(raw, &g, &why), 0);
	assert_int_equal(g.body_len, 1000);
	assert_int_equal(g.env_off, 1064);
	assert_int_equal(g.env_len, 77);
	assert_int_equal(g.env_crc, 0xdeadbeef);
	/* every single flipped bit is caught */
	for (size_t i = 0; i < SPOOL_HDR_SIZE * 8; i++) {
		raw[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (spool_hdr_decode(raw, &g, &why) == 0)
			fail_msg("bit %zu flipped: got valid, want invalid", i);
		raw[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* all zeros (a message still being received) is invalid */
	memset(raw, 0, sizeof(raw));
	assert_int_equal(spool_hdr_decode(raw, &g, &why), -1);
	/* inconsistent offset */
	h.env_off = 99;
	spool_hdr_encode(&h, raw);
	assert_int_equal(spool_hdr_decode(raw, &g, &why), -1);
}

static void
test_env_roundtrip(void **state)
{
	struct spool_envelope *e = sample_env(), d;
	struct buf b;
	const char *why;

	(void)state;
	buf_init(&b, 0);
	spool_env_encode(e, &b);
	assert_int_equal(spool_env_decode(b.p, b.len, &d, &why), 0);
	assert_env_equal(e, &d);
	spool_envelope_clear(&d);
	/* every strict prefix and one extra octet are rejected */
	for (size_t cut = 0; cut < b.len; cut++) {
		if (spool_env_decode(b.p, cut, &d, &why) == 0)
			fail_msg("prefix %zu of %zu: got valid", cut, b.len);
	}
	(void)buf_append(&b, "x", 1);
	assert_int_equal(spool_env_decode(b.p, b.len, &d, &why), -1);
	buf_clear(&b);
	spool_envelope_free(&e);
}

static void
test_env_dup(void **state)
{
	struct spool_envelope *e = sample_env();
	struct spool_envelope *d = spool_envelope_dup(e);

	(void)state;
	assert_env_equal(e, d);
	assert_ptr_not_equal(e->rcpts[0].address, d->rcpts[0].address);
	spool_envelope_free(&e);
	assert_null(e);
	spool_envelope_free(&d);
	spool_envelope_free(&d);  /* NULL-safe */
}

static void
test_records_every_cut(void **state)
{
	struct spool_envelope *e = sample_env();
	struct spool_rcpt r0 = { .state = SPOOL_RCPT_DELIVERED, .attempts = 1 };
	struct spool_rcpt r1 = { .state = SPOOL_RCPT_BOUNCED, .attempts = 5,
				 .diag = "550 5.1.1 no such user" };
	struct buf b;
	size_t ends[2];

	(void)state;
	buf_init(&b, 0);
	spool_rec_encode(0, &r0, &b);
	ends[0] = b.len;
	spool_rec_encode(1, &r1, &b);
	ends[1] = b.len;
	for (size_t cut = 0; cut <= b.len; cut++) {
		struct spool_envelope *x = spool_envelope_dup(e);
		size_t want = cut >= ends[1] ? ends[1] : cut >= ends[0] ?
			      ends[0] : 0;
		size_t got = spool_recs_apply(b.p, cut, x);
		if (got != want)
			fail_msg("cut %zu: got %zu, want %zu", cut, got, want);
		assert_int_equal(x->rcpts[0].state, cut >= ends[0] ?
				 SPOOL_RCPT_DELIVERED : SPOOL_RCPT_PENDING);
		assert_int_equal(x->rcpts[1].state, cut >= ends[1] ?
				 SPOOL_RCPT_BOUNCED : SPOOL_RCPT_DEFERRED);
		if (cut >= ends[1])
			assert_string_equal(x->rcpts[1].diag,
					    "550 5.1.1 no such user");
		spool_envelope_free(&x);
	}
	/* a flipped bit in the second record stops there */
	b.p[ends[0] + 12] ^= 1;
	struct spool_envelope *x = spool_envelope_dup(e);
	assert_int_equal(spool_recs_apply(b.p, b.len, x), ends[0]);
	spool_envelope_free(&x);
	buf_clear(&b);
	spool_envelope_free(&e);
}

static void
test_records_skip_unknown_index(void **state)
{
	struct spool_envelope *e = sample_env();
	struct spool_rcpt r = { .state = SPOOL_RCPT_DELIVERED, .attempts = 1 };
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	spool_rec_encode(7, &r, &b);    /* no recipient 7: skipped */
	spool_rec_encode(2, &r, &b);
	assert_int_equal(spool_recs_apply(b.p, b.len, e), b.len);
	assert_int_equal(e->rcpts[2].state, SPOOL_RCPT_DELIVERED);
	buf_clear(&b);
	spool_envelope_free(&e);
}

static void
test_diag_is_capped(void **state)
{
	struct spool_envelope *e = sample_env();
	char *big = xmalloc(SPOOL_DIAG_MAX + 100);
	struct buf b;

	(void)state;
	memset(big, 'd', SPOOL_DIAG_MAX + 99);
	big[SPOOL_DIAG_MAX + 99] = '\0';
	struct spool_rcpt r = { .state = SPOOL_RCPT_BOUNCED, .diag = big };
	buf_init(&b, 0);
	spool_rec_encode(0, &r, &b);
	assert_int_equal(b.len, SPOOL_REC_FIXED + SPOOL_DIAG_MAX);
	assert_int_equal(spool_recs_apply(b.p, b.len, e), b.len);
	assert_int_equal(strlen(e->rcpts[0].diag), SPOOL_DIAG_MAX);
	buf_clear(&b);
	free(big);
	spool_envelope_free(&e);
}

static void
test_id_valid(void **state)
{
	static const struct {
		const char *in;
		bool want;
	} cases[] = {
		{ "0123456789ABCDEFabcd", true },
		{ "0123456789ABCDEFabc", false },
		{ "0123456789ABCDEFabcde", false },
		{ "0123456789ABCDEFab/d", false },
		{ "0123456789ABCDEFab.d", false },
		{ "", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = spool_id_valid(cases[i].in);
		if (got != cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].in, got,
				 cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known),
		cmocka_unit_test(test_hdr_roundtrip_and_damage),
		cmocka_unit_test(test_env_roundtrip),
		cmocka_unit_test(test_env_dup),
		cmocka_unit_test(test_records_every_cut),
		cmocka_unit_test(test_records_skip_unknown_index),
		cmocka_unit_test(test_diag_is_capped),
		cmocka_unit_test(test_id_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

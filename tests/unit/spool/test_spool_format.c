/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spool_format.c: header, format 2 envelope and record
 * encoding (every field, unknown tags skipped, bounds), checksums, and
 * torn-record detection at every cut point. Format 1 and files mixing
 * both formats are tested in test_spool_compat.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spool/spool_int.h"
#include "unit_check.h"

static struct spool_envelope *
sample_env(void)
{
	struct spool_envelope *e = xcalloc(1, sizeof(*e));

	memcpy(e->id, "0123456789ABCDEFabcd", SPOOL_ID_LEN + 1);
	e->mail_from = xstrdup("sender@example.org");
	e->helo = xstrdup("client.example.org");
	e->client_addr = xstrdup("192.0.2.7");
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
	e->rcpts[1].flags = SPOOL_RCPT_F_DELAY_SENT | 0x100u;
	e->rcpts[1].status = xstrdup("4.2.2");
	e->rcpts[1].remote_mta = xstrdup("mx.example.org[192.0.2.1]:25");
	e->rcpts[1].last_try = -1700000000;
	e->rcpts[2].address = xstrdup("");
	e->rcpts[2].agent = SPOOL_AGENT_RELAY;
	e->rcpts[2].flags = SPOOL_RCPT_F_FORWARDED | SPOOL_RCPT_F_DSN_DONE;
	e->rcpts[2].state = SPOOL_RCPT_BOUNCED;
	e->rcpts[2].status = xstrdup("");
	e->held = true;
	e->received_us = 1700000000123456;
	e->dsn_kind = SPOOL_DSN_DOUBLE;
	e->envid = xstrdup("QQ314159");
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
	assert_int_equal(a->held, b->held);
	assert_int_equal(a->received_us, b->received_us);
	assert_int_equal(a->dsn_kind, b->dsn_kind);
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
		assert_int_equal(x->flags, y->flags);
		assert_str_eq_opt(x->status, y->status);
		assert_str_eq_opt(x->remote_mta, y->remote_mta);
		assert_int_equal(x->last_try, y->last_try);
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
	assert_int_equal(spool_env_decode(b.p, b.len, 2, &d, &why), 0);
	assert_env_equal(e, &d);
	spool_envelope_clear(&d);
	/* every strict prefix and one extra octet are rejected */
	for (size_t cut = 0; cut < b.len; cut++) {
		if (spool_env_decode(b.p, cut, 2, &d, &why) == 0)
			fail_msg("prefix %zu of %zu: got valid", cut, b.len);
	}
	(void)buf_append(&b, "x", 1);
	assert_int_equal(spool_env_decode(b.p, b.len, 2, &d, &why), -1);
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
	/* the strings of format 2 are copies too (freed twice otherwise) */
	assert_ptr_not_equal(e->rcpts[1].status, d->rcpts[1].status);
	assert_ptr_not_equal(e->rcpts[1].remote_mta, d->rcpts[1].remote_mta);
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
		size_t got = spool_recs_apply(b.p, cut, 2, x);
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
	assert_int_equal(spool_recs_apply(b.p, b.len, 2, x), ends[0]);
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
	assert_int_equal(spool_recs_apply(b.p, b.len, 2, e), b.len);
	assert_int_equal(e->rcpts[2].state, SPOOL_RCPT_DELIVERED);
	buf_clear(&b);
	spool_envelope_free(&e);
}

/* ---- hand-made format 2 bytes, after the layout in spool_format.c ---- */

static void
le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* a field's head claiming n octets of value */
static void
t_head(struct buf *b, unsigned tag, size_t n)
{
	uint8_t h[6] = { (uint8_t)tag, (uint8_t)(tag >> 8) };

	le32(h + 2, (uint32_t)n);
	(void)buf_append(b, h, sizeof(h));
}

static void
t_field(struct buf *b, unsigned tag, const void *v, size_t n)
{
	t_head(b, tag, n);
	(void)buf_append(b, v, n);
}

static void
t_str(struct buf *b, unsigned tag, const char *s)
{
	t_field(b, tag, s, strlen(s));
}

static void
t_u32(struct buf *b, unsigned tag, uint32_t v)
{
	uint8_t x[4];

	le32(x, v);
	t_field(b, tag, x, 4);
}

static void
t_u64(struct buf *b, unsigned tag, uint64_t v)
{
	uint8_t x[8];

	le32(x, (uint32_t)v);
	le32(x + 4, (uint32_t)(v >> 32));
	t_field(b, tag, x, 8);
}

/* a record: len | mark, CRC-32C of 8..len, kind, idx, fields */
static void
t_rec(struct buf *out, uint32_t kind, uint32_t idx, const struct buf *fields)
{
	uint8_t h[16];

	le32(h, 0x80000000u | (uint32_t)(16 + fields->len));
	le32(h + 8, kind);
	le32(h + 12, idx);
	uint32_t crc = spool_crc32c(0, h + 8, 8);
	le32(h + 4, spool_crc32c(crc, fields->p, fields->len));
	(void)buf_append(out, h, sizeof(h));
	(void)buf_append(out, fields->p, fields->len);
}

static void
test_env_minimal_layout(void **state)
{
	struct spool_rcpt rc = { .address = (char *)(uintptr_t)"x" };
	struct spool_envelope e = { .mail_from = (char *)(uintptr_t)"",
				    .rcpts = &rc, .nrcpts = 1 }, d;
	struct buf b, want, g;
	const char *why;

	(void)state;
	memcpy(e.id, "0123456789ABCDEFabcd", SPOOL_ID_LEN + 1);
	buf_init(&b, 0);
	spool_env_encode(&e, &b);
	/* defaults are left out; "" is not NULL */
	buf_init(&want, 0);
	buf_init(&g, 0);
	t_str(&want, 1, "0123456789ABCDEFabcd");
	t_str(&want, 2, "");
	t_str(&g, 1, "x");
	t_field(&want, 12, g.p, g.len);
	t_head(&want, 0, 0);
	if (b.len != want.len)
		fail_msg("encoded length: got %zu, want %zu", b.len, want.len);
	assert_memory_equal(b.p, want.p, want.len);
	assert_int_equal(spool_env_decode(b.p, b.len, 2, &d, &why), 0);
	assert_string_equal(d.mail_from, "");
	assert_null(d.helo);
	assert_null(d.client_addr);
	assert_null(d.envid);
	assert_int_equal(d.ret, 0);
	assert_int_equal(d.size, 0);
	assert_false(d.held);
	assert_false(d.smtputf8);
	assert_int_equal(d.nrcpts, 1);
	assert_string_equal(d.rcpts[0].address, "x");
	assert_null(d.rcpts[0].orcpt);
	assert_null(d.rcpts[0].dest);
	assert_null(d.rcpts[0].diag);
	assert_null(d.rcpts[0].status);
	assert_null(d.rcpts[0].remote_mta);
	assert_int_equal(d.rcpts[0].state, SPOOL_RCPT_PENDING);
	assert_int_equal(d.rcpts[0].flags, 0);
	assert_int_equal(d.rcpts[0].last_try, 0);
	spool_envelope_clear(&d);
	/* no recipients at all is an envelope too */
	e.nrcpts = 0;
	buf_reset(&b);
	spool_env_encode(&e, &b);
	assert_int_equal(spool_env_decode(b.p, b.len, 2, &d, &why), 0);
	assert_int_equal(d.nrcpts, 0);
	spool_envelope_clear(&d);
	buf_clear(&g);
	buf_clear(&want);
	buf_clear(&b);
}

/* ---- envelope cases: ID, MAIL_FROM, extras, one recipient, END ------- */

enum { X_NONE, X_TOP, X_RCPT };
enum { XK_FILL, XK_U32, XK_U64, XK_HEAD };
#define SK_ID   0x1u
#define SK_FROM 0x2u
#define SK_END  0x4u
#define SK_ADDR 0x8u

struct xf {
	int at;
	unsigned tag;
	int kind;       /* FILL: len octets of fill; HEAD: a head only */
	size_t len;
	uint64_t num;
	char fill;
};

struct env_case {
	const char *name;
	unsigned skip;
	struct xf x[2];
	const char *tail;       /* octets after the end */
	int want;
};

static void
put_xf(struct buf *b, const struct xf *x)
{
	char *v;

	switch (x->kind) {
	case XK_FILL:
		v = xmalloc(x->len + 1);
		memset(v, x->fill, x->len);
		t_field(b, x->tag, v, x->len);
		free(v);
		break;
	case XK_U32:
		t_u32(b, x->tag, (uint32_t)x->num);
		break;
	case XK_U64:
		t_u64(b, x->tag, x->num);
		break;
	case XK_HEAD:
		t_head(b, x->tag, x->len);
		break;
	}
}

static void
mk_env(struct buf *b, const struct env_case *c)
{
	struct buf g;

	buf_init(&g, 0);
	if (!(c->skip & SK_ID))
		t_str(b, SPOOL_T_ID, "0123456789ABCDEFabcd");
	if (!(c->skip & SK_FROM))
		t_str(b, SPOOL_T_MAIL_FROM, "a@example.org");
	for (int i = 0; i < 2; i++) {
		if (c->x[i].at == X_TOP)
			put_xf(b, &c->x[i]);
	}
	if (!(c->skip & SK_ADDR))
		t_str(&g, SPOOL_RT_ADDRESS, "r@example.org");
	t_u32(&g, SPOOL_RT_STATE, SPOOL_RCPT_DEFERRED);
	for (int i = 0; i < 2; i++) {
		if (c->x[i].at == X_RCPT)
			put_xf(&g, &c->x[i]);
	}
	t_field(b, SPOOL_T_RCPT, g.p, g.len);
	if (!(c->skip & SK_END))
		t_head(b, SPOOL_T_END, 0);
	if (c->tail != NULL)
		(void)buf_append_str(b, c->tail);
	buf_clear(&g);
}

#define TOP(...)  { .at = X_TOP, __VA_ARGS__ }
#define RCPT(...) { .at = X_RCPT, __VA_ARGS__ }

static const struct env_case env_cases[] = {
	{ "minimal", 0, { { 0 } }, NULL, 0 },
	{ "no end", SK_END, { { 0 } }, NULL, -1 },
	{ "octets after the end", 0, { { 0 } }, "x", -1 },
	{ "end with a value", 0,
	  { TOP(.tag = SPOOL_T_END, .len = 1, .fill = 'x') }, NULL, -1 },
	{ "no id", SK_ID, { { 0 } }, NULL, -1 },
	{ "id of 19 octets", SK_ID,
	  { TOP(.tag = SPOOL_T_ID, .len = 19, .fill = 'A') }, NULL, -1 },
	{ "id of 21 octets", SK_ID,
	  { TOP(.tag = SPOOL_T_ID, .len = 21, .fill = 'A') }, NULL, -1 },
	{ "id not base 62", SK_ID,
	  { TOP(.tag = SPOOL_T_ID, .len = 20, .fill = '/') }, NULL, -1 },
	{ "id twice", 0,
	  { TOP(.tag = SPOOL_T_ID, .len = 20, .fill = 'A') }, NULL, -1 },
	{ "no reverse-path", SK_FROM, { { 0 } }, NULL, -1 },
	{ "reverse-path twice", 0,
	  { TOP(.tag = SPOOL_T_MAIL_FROM, .len = 0) }, NULL, -1 },
	{ "ret of 8 octets", 0,
	  { TOP(.tag = SPOOL_T_RET, .kind = XK_U64, .num = 1) }, NULL, -1 },
	{ "size of 4 octets", 0,
	  { TOP(.tag = SPOOL_T_SIZE, .kind = XK_U32, .num = 1) }, NULL, -1 },
	{ "smtputf8 empty", 0, { TOP(.tag = SPOOL_T_SMTPUTF8, .len = 0) },
	  NULL, -1 },
	{ "held of 2 octets", 0,
	  { TOP(.tag = SPOOL_T_HELD, .len = 2, .fill = 1) }, NULL, -1 },
	{ "held twice", 0,
	  { TOP(.tag = SPOOL_T_HELD, .len = 1, .fill = 1),
	    TOP(.tag = SPOOL_T_HELD, .len = 1, .fill = 0) }, NULL, -1 },
	{ "NUL in helo", 0, { TOP(.tag = SPOOL_T_HELO, .len = 3) }, NULL, -1 },
	{ "field past the end", 0,
	  { TOP(.tag = SPOOL_T_HELO, .kind = XK_HEAD, .len = 1000) }, NULL,
	  -1 },
	{ "unknown tags", 0,
	  { TOP(.tag = 0x0777, .len = 3, .fill = 'u'),
	    RCPT(.tag = 0xffff, .kind = XK_U64, .num = 7) }, NULL, 0 },
	{ "unknown tag, empty", 0, { TOP(.tag = SPOOL_T_LAST + 1, .len = 0) },
	  NULL, 0 },
	{ "received_us of 4 octets", 0,
	  { TOP(.tag = SPOOL_T_RECEIVED_US, .kind = XK_U32, .num = 1) }, NULL,
	  -1 },
	{ "dsn_kind of 8 octets", 0,
	  { TOP(.tag = SPOOL_T_DSN_KIND, .kind = XK_U64, .num = 1) }, NULL,
	  -1 },
	{ "rcpt without address", SK_ADDR, { { 0 } }, NULL, -1 },
	{ "rcpt address twice", 0,
	  { RCPT(.tag = SPOOL_RT_ADDRESS, .len = 1, .fill = 'y') }, NULL, -1 },
	{ "rcpt state twice", 0,
	  { RCPT(.tag = SPOOL_RT_STATE, .kind = XK_U32, .num = 1) }, NULL,
	  -1 },
	{ "rcpt agent relay", 0,
	  { RCPT(.tag = SPOOL_RT_AGENT, .kind = XK_U32, .num = 1) }, NULL, 0 },
	{ "rcpt agent out of range", 0,
	  { RCPT(.tag = SPOOL_RT_AGENT, .kind = XK_U32, .num = 2) }, NULL,
	  -1 },
	{ "rcpt last_try of 4 octets", 0,
	  { RCPT(.tag = SPOOL_RT_LAST_TRY, .kind = XK_U32, .num = 2) }, NULL,
	  -1 },
	{ "rcpt field past its group", 0,
	  { RCPT(.tag = SPOOL_RT_DEST, .kind = XK_HEAD, .len = 7) }, NULL,
	  -1 },
	{ "status limit-1", 0, { RCPT(.tag = SPOOL_RT_STATUS,
	  .len = SPOOL_STATUS_MAX - 1, .fill = '5') }, NULL, 0 },
	{ "status at limit", 0, { RCPT(.tag = SPOOL_RT_STATUS,
	  .len = SPOOL_STATUS_MAX, .fill = '5') }, NULL, 0 },
	{ "status limit+1", 0, { RCPT(.tag = SPOOL_RT_STATUS,
	  .len = SPOOL_STATUS_MAX + 1, .fill = '5') }, NULL, -1 },
	{ "remote_mta at limit", 0, { RCPT(.tag = SPOOL_RT_REMOTE_MTA,
	  .len = SPOOL_MTA_MAX, .fill = 'm') }, NULL, 0 },
	{ "remote_mta limit+1", 0, { RCPT(.tag = SPOOL_RT_REMOTE_MTA,
	  .len = SPOOL_MTA_MAX + 1, .fill = 'm') }, NULL, -1 },
	{ "diag at limit", 0, { RCPT(.tag = SPOOL_RT_DIAG,
	  .len = SPOOL_DIAG_MAX, .fill = 'd') }, NULL, 0 },
	{ "diag limit+1", 0, { RCPT(.tag = SPOOL_RT_DIAG,
	  .len = SPOOL_DIAG_MAX + 1, .fill = 'd') }, NULL, -1 },
	{ "NUL in remote_mta", 0, { RCPT(.tag = SPOOL_RT_REMOTE_MTA,
	  .len = 2) }, NULL, -1 },
};

static void
test_env_cases(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(env_cases) / sizeof(env_cases[0]); i++) {
		const struct env_case *c = &env_cases[i];
		struct spool_envelope d;
		const char *why = "";
		struct buf b;

		buf_init(&b, 0);
		mk_env(&b, c);
		int got = spool_env_decode(b.p, b.len, 2, &d, &why);
		CHECK(got == c->want, "%s: got %d (%s), want %d", c->name, got,
		      got < 0 ? why : "ok", c->want);
		if (got == 0) {
			CHECK(d.nrcpts == 1 &&
			      d.rcpts[0].state == SPOOL_RCPT_DEFERRED &&
			      strcmp(d.mail_from, "a@example.org") == 0,
			      "%s: fields not decoded", c->name);
			spool_envelope_clear(&d);
		}
		buf_clear(&b);
	}
	assert_int_equal(failures, 0);
}

/* tags this version does not know are skipped, and fields may come in
 * any order before the end */
static void
test_env_unknown_tags_skipped(void **state)
{
	struct buf b, g;
	struct spool_envelope d;
	const char *why;

	(void)state;
	buf_init(&b, 0);
	buf_init(&g, 0);
	t_u32(&b, 0x4242, 99);
	t_str(&b, SPOOL_T_HELO, "h.example");
	t_str(&g, SPOOL_RT_DIAG, "later");
	t_u64(&g, 0x0100, 5);
	t_str(&g, SPOOL_RT_ADDRESS, "a@example.org");
	t_head(&g, 0x0101, 0);
	t_field(&b, SPOOL_T_RCPT, g.p, g.len);
	t_str(&b, SPOOL_T_MAIL_FROM, "");
	/* a later revision's group, shaped like a recipient: not one */
	t_field(&b, 0x0200, g.p, g.len);
	t_str(&b, SPOOL_T_ID, "0123456789ABCDEFabcd");
	buf_reset(&g);
	t_str(&g, SPOOL_RT_ADDRESS, "b@example.org");
	t_field(&b, SPOOL_T_RCPT, g.p, g.len);
	t_head(&b, SPOOL_T_END, 0);
	assert_int_equal(spool_env_decode(b.p, b.len, 2, &d, &why), 0);
	assert_string_equal(d.id, "0123456789ABCDEFabcd");
	assert_string_equal(d.helo, "h.example");
	assert_string_equal(d.mail_from, "");
	assert_int_equal(d.nrcpts, 2);
	assert_string_equal(d.rcpts[0].address, "a@example.org");
	assert_string_equal(d.rcpts[0].diag, "later");
	assert_string_equal(d.rcpts[1].address, "b@example.org");
	spool_envelope_clear(&d);
	buf_clear(&g);
	buf_clear(&b);
}

/* ---- records ------------------------------------------------------------ */

/* one record carries every mutable field, in the documented layout,
 * and restores all of it: absent fields take their defaults */
static void
test_rec_every_field(void **state)
{
	struct spool_envelope *e = sample_env();
	struct spool_rcpt r = {
		.state = SPOOL_RCPT_DEFERRED, .next_try = 1700000600,
		.attempts = 3, .diag = "451 4.7.1 greylisted",
		.flags = SPOOL_RCPT_F_DELAY_SENT, .status = "4.7.1",
		.remote_mta = "mx2.example.org[2001:db8::25]:25",
		.last_try = 1700000300,
		/* fixed at the commit: never in a record */
		.address = "other@example.org", .dest = "other", .notify = 1,
	};
	struct buf b, want, f;

	(void)state;
	buf_init(&b, 0);
	spool_rec_encode(0, &r, &b);
	buf_init(&want, 0);
	buf_init(&f, 0);
	t_u32(&f, SPOOL_RT_STATE, SPOOL_RCPT_DEFERRED);
	t_u64(&f, SPOOL_RT_NEXT_TRY, 1700000600);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 3);
	t_str(&f, SPOOL_RT_DIAG, "451 4.7.1 greylisted");
	t_u32(&f, SPOOL_RT_FLAGS, SPOOL_RCPT_F_DELAY_SENT);
	t_str(&f, SPOOL_RT_STATUS, "4.7.1");
	t_str(&f, SPOOL_RT_REMOTE_MTA, "mx2.example.org[2001:db8::25]:25");
	t_u64(&f, SPOOL_RT_LAST_TRY, 1700000300);
	t_rec(&want, SPOOL_REC_RCPT, 0, &f);
	if (b.len != want.len)
		fail_msg("record length: got %zu, want %zu", b.len, want.len);
	assert_memory_equal(b.p, want.p, want.len);

	assert_int_equal(spool_recs_apply(b.p, b.len, 2, e), b.len);
	const struct spool_rcpt *g = &e->rcpts[0];
	assert_int_equal(g->state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(g->next_try, 1700000600);
	assert_int_equal(g->attempts, 3);
	assert_string_equal(g->diag, "451 4.7.1 greylisted");
	assert_int_equal(g->flags, SPOOL_RCPT_F_DELAY_SENT);
	assert_string_equal(g->status, "4.7.1");
	assert_string_equal(g->remote_mta, "mx2.example.org[2001:db8::25]:25");
	assert_int_equal(g->last_try, 1700000300);
	assert_string_equal(g->address, "alice@example.org");
	assert_string_equal(g->dest, "alice");
	assert_int_equal(g->notify, 6);

	/* a record of defaults for recipient 1 clears what it had */
	struct spool_rcpt z = { 0 };
	buf_reset(&b);
	spool_rec_encode(1, &z, &b);
	assert_int_equal(b.len, SPOOL_REC2_HEAD);
	assert_int_equal(spool_recs_apply(b.p, b.len, 2, e), b.len);
	g = &e->rcpts[1];
	assert_int_equal(g->state, SPOOL_RCPT_PENDING);
	assert_int_equal(g->next_try, 0);
	assert_int_equal(g->attempts, 0);
	assert_null(g->diag);
	assert_int_equal(g->flags, 0);
	assert_null(g->status);
	assert_null(g->remote_mta);
	assert_int_equal(g->last_try, 0);
	assert_string_equal(g->orcpt, "rfc822;bob@example.org");
	buf_clear(&f);
	buf_clear(&want);
	buf_clear(&b);
	spool_envelope_free(&e);
}

/*
 * Whole records that mean nothing to this reader are skipped, not cut:
 * the records after them still apply. A record applies whole or not at
 * all.
 */
static void
test_rec_unknown_and_meaningless(void **state)
{
	struct spool_envelope *e = sample_env();
	struct buf b, f;

	(void)state;
	buf_init(&b, 0);
	buf_init(&f, 0);
	/* unknown tag and a field fixed at the commit: both skipped */
	t_u32(&f, SPOOL_RT_STATE, SPOOL_RCPT_DELIVERED);
	t_str(&f, 300, "zz");
	t_str(&f, SPOOL_RT_ADDRESS, "evil@example.org");
	t_rec(&b, SPOOL_REC_RCPT, 0, &f);
	/* unknown kind */
	buf_reset(&f);
	t_u32(&f, SPOOL_RT_STATE, SPOOL_RCPT_BOUNCED);
	t_rec(&b, 77, 0, &f);
	/* state out of range: the attempts beside it do not apply either */
	buf_reset(&f);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 50);
	t_u32(&f, SPOOL_RT_STATE, 9);
	t_rec(&b, SPOOL_REC_RCPT, 0, &f);
	/* a field twice */
	buf_reset(&f);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 9);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 9);
	t_rec(&b, SPOOL_REC_RCPT, 1, &f);
	/* no such recipient */
	buf_reset(&f);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 9);
	t_rec(&b, SPOOL_REC_RCPT, 99, &f);
	/* diag over its bound */
	buf_reset(&f);
	char big[SPOOL_DIAG_MAX + 1];
	memset(big, 'd', sizeof(big));
	t_field(&f, SPOOL_RT_DIAG, big, sizeof(big));
	t_rec(&b, SPOOL_REC_RCPT, 2, &f);
	/* a field past the record's end */
	buf_reset(&f);
	t_head(&f, SPOOL_RT_DIAG, 50);
	t_rec(&b, SPOOL_REC_RCPT, 1, &f);
	/* held of 2 octets; then a message record of unknown fields only */
	buf_reset(&f);
	t_field(&f, SPOOL_T_HELD, "\1\1", 2);
	t_rec(&b, SPOOL_REC_MSG, 0, &f);
	buf_reset(&f);
	t_str(&f, 0x0999, "later");
	t_str(&f, SPOOL_T_MAIL_FROM, "evil@example.org");
	t_rec(&b, SPOOL_REC_MSG, 0, &f);
	/* and one that applies after all of them */
	buf_reset(&f);
	t_u32(&f, SPOOL_RT_STATE, SPOOL_RCPT_DEFERRED);
	t_u32(&f, SPOOL_RT_ATTEMPTS, 3);
	t_rec(&b, SPOOL_REC_RCPT, 2, &f);

	assert_int_equal(spool_recs_apply(b.p, b.len, 2, e), b.len);
	assert_int_equal(e->rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(e->rcpts[0].attempts, 0);
	assert_string_equal(e->rcpts[0].address, "alice@example.org");
	assert_int_equal(e->rcpts[1].attempts, 4);
	assert_string_equal(e->rcpts[1].diag, "452 mailbox full");
	assert_int_equal(e->rcpts[2].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(e->rcpts[2].attempts, 3);
	assert_null(e->rcpts[2].diag);
	assert_true(e->held);
	assert_string_equal(e->mail_from, "sender@example.org");
	buf_clear(&f);
	buf_clear(&b);
	spool_envelope_free(&e);
}

/* framing that is no record ends the valid ones: the tail is cut */
static void
test_rec_framing(void **state)
{
	struct spool_rcpt r = { .state = SPOOL_RCPT_DELIVERED, .attempts = 1,
				.status = "2.0.0" };
	struct buf good, b;

	(void)state;
	buf_init(&good, 0);
	spool_rec_encode(0, &r, &good);
	/* every single flipped bit of a record is caught */
	for (size_t i = 0; i < good.len * 8; i++) {
		struct spool_envelope *e = sample_env();
		good.p[i / 8] ^= (uint8_t)(1u << (i % 8));
		size_t got = spool_recs_apply(good.p, good.len, 2, e);
		good.p[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (got != 0 || e->rcpts[0].state != SPOOL_RCPT_PENDING)
			fail_msg("bit %zu flipped: got %zu applied, want 0", i,
				 got);
		spool_envelope_free(&e);
	}
	static const struct {
		const char *name;
		uint32_t word;
	} cases[] = {
		{ "zeros", 0 },
		{ "length under the head", 0x80000000u | 15 },
		{ "length 0", 0x80000000u },
		{ "length over the bound", 0x80000000u | (SPOOL_REC2_MAX + 1) },
		{ "format 1 in a version 2 file", SPOOL_REC1_FIXED },
	};
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spool_envelope *e = sample_env();
		buf_init(&b, 0);
		(void)buf_append(&b, good.p, good.len);
		size_t at = b.len;
		uint8_t w[4];
		le32(w, cases[i].word);
		(void)buf_append(&b, w, 4);
		/* plenty of octets after it: only its framing is wrong */
		char pad[SPOOL_REC2_MAX + 64];
		memset(pad, 0, sizeof(pad));
		(void)buf_append(&b, pad, sizeof(pad));
		size_t got = spool_recs_apply(b.p, b.len, 2, e);
		CHECK(got == at, "%s: got %zu, want %zu", cases[i].name, got,
		      at);
		buf_clear(&b);
		spool_envelope_free(&e);
	}
	assert_int_equal(failures, 0);
	buf_clear(&good);
}

/* hold and release: message records are patches, the last one wins */
static void
test_hold_release(void **state)
{
	struct spool_envelope *e = sample_env();
	struct spool_msg_rec hold = { .set = SPOOL_MSGF_HELD, .held = true };
	struct spool_msg_rec release = { .set = SPOOL_MSGF_HELD };
	struct spool_msg_rec none = { 0 };
	struct buf b, want, f;
	size_t ends[4];

	(void)state;
	buf_init(&b, 0);
	spool_msg_rec_encode(&hold, &b);
	/* the documented layout: kind 2, index 0, field 11 of one octet */
	buf_init(&want, 0);
	buf_init(&f, 0);
	t_field(&f, SPOOL_T_HELD, "\1", 1);
	t_rec(&want, SPOOL_REC_MSG, 0, &f);
	assert_int_equal(b.len, want.len);
	assert_memory_equal(b.p, want.p, want.len);
	ends[0] = b.len;
	spool_msg_rec_encode(&release, &b);
	ends[1] = b.len;
	spool_msg_rec_encode(&hold, &b);
	ends[2] = b.len;
	spool_msg_rec_encode(&none, &b);   /* sets nothing */
	ends[3] = b.len;
	static const bool want_held[] = { true, false, true, true };
	e->held = false;
	for (size_t cut = 0; cut <= b.len; cut++) {
		struct spool_envelope *x = spool_envelope_dup(e);
		size_t k = 0, good = 0;
		while (k < 4 && ends[k] <= cut)
			good = ends[k++];
		bool w = k > 0 ? want_held[k - 1] : false;
		size_t got = spool_recs_apply(b.p, cut, 2, x);
		if (got != good || x->held != w)
			fail_msg("cut %zu: got %zu held %d, want %zu held %d",
				 cut, got, x->held, good, w);
		spool_envelope_free(&x);
	}
	/* an empty patch keeps a hold */
	e->held = true;
	assert_int_equal(spool_recs_apply(b.p + ends[2], b.len - ends[2], 2,
					  e), b.len - ends[2]);
	assert_true(e->held);
	buf_clear(&f);
	buf_clear(&want);
	buf_clear(&b);
	spool_envelope_free(&e);
}

/* strings are cut to their bounds by the writer, at limit-1, limit,
 * limit+1 and far past it, in records and in the envelope */
static void
test_large_values(void **state)
{
	static const size_t deltas[] = { 0, 1, 2, 100000 };

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		size_t dl = SPOOL_DIAG_MAX - 1 + deltas[i];
		size_t sl = SPOOL_STATUS_MAX - 1 + deltas[i];
		size_t ml = SPOOL_MTA_MAX - 1 + deltas[i];
		char *diag = xcalloc(1, dl + 1), *st = xcalloc(1, sl + 1);
		char *mta = xcalloc(1, ml + 1);
		memset(diag, 'd', dl);
		memset(st, 's', sl);
		memset(mta, 'm', ml);
		struct spool_rcpt r = { .state = SPOOL_RCPT_BOUNCED,
					.diag = diag, .status = st,
					.remote_mta = mta };
		struct spool_envelope *e = sample_env();
		struct buf b;
		buf_init(&b, 0);
		spool_rec_encode(0, &r, &b);
		CHECK(b.len <= SPOOL_REC2_MAX, "record of %zu octets", b.len);
		CHECK(spool_recs_apply(b.p, b.len, 2, e) == b.len,
		      "delta %zu: record not applied", deltas[i]);
		size_t wd = dl < SPOOL_DIAG_MAX ? dl : SPOOL_DIAG_MAX;
		size_t ws = sl < SPOOL_STATUS_MAX ? sl : SPOOL_STATUS_MAX;
		size_t wm = ml < SPOOL_MTA_MAX ? ml : SPOOL_MTA_MAX;
		const struct spool_rcpt *g = &e->rcpts[0];
		CHECK(g->diag != NULL && strlen(g->diag) == wd,
		      "diag of %zu: got %zu, want %zu", dl,
		      g->diag != NULL ? strlen(g->diag) : 0, wd);
		CHECK(g->status != NULL && strlen(g->status) == ws,
		      "status of %zu: want %zu", sl, ws);
		CHECK(g->remote_mta != NULL && strlen(g->remote_mta) == wm,
		      "remote_mta of %zu: want %zu", ml, wm);
		/* the envelope cuts the same way, and reads back */
		struct spool_envelope d;
		const char *why;
		free(e->rcpts[1].diag);
		e->rcpts[1].diag = xstrdup(diag);
		buf_reset(&b);
		spool_env_encode(e, &b);
		CHECK(spool_env_decode(b.p, b.len, 2, &d, &why) == 0,
		      "delta %zu: envelope: %s", deltas[i], why);
		if (d.nrcpts == 3) {
			CHECK(strlen(d.rcpts[0].remote_mta) == wm &&
			      strlen(d.rcpts[1].diag) == wd,
			      "delta %zu: envelope strings not cut",
			      deltas[i]);
			spool_envelope_clear(&d);
		}
		buf_clear(&b);
		spool_envelope_free(&e);
		free(diag);
		free(st);
		free(mta);
	}
	assert_int_equal(failures, 0);
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
		cmocka_unit_test(test_env_minimal_layout),
		cmocka_unit_test(test_env_cases),
		cmocka_unit_test(test_env_unknown_tags_skipped),
		cmocka_unit_test(test_rec_every_field),
		cmocka_unit_test(test_rec_unknown_and_meaningless),
		cmocka_unit_test(test_rec_framing),
		cmocka_unit_test(test_hold_release),
		cmocka_unit_test(test_large_values),
		cmocka_unit_test(test_id_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

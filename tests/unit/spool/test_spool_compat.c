/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for reading spool format 1 after the move to format 2: a
 * queue file written by the format 1 code (its bytes are kept here), the
 * format 1 encoder those bytes came from (kept here to build variants,
 * and checked against them), decoding and recovery of such a file, and
 * the same file after format 2 records were appended to it, torn at
 * every cut point. Also writes the seed corpus of fuzz_spool_record
 * when TERN_SPOOL_FUZZ_SEEDS names a directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool/spool_int.h"
#include "unit_check.h"
#include "unit_spool_v1.h"
#include "unit_fs.h"

/*
 * A queue file as the format 1 code wrote it (spool_format.c before
 * format 2): header version 1, a 26-octet body, the envelope of message
 * 0000000001FORMAT1old from <sender@example.org> to alice (local, NOTIFY
 * 6) and bob (relay, ORCPT), ENVID ENV1, RET 1, BODY 2, SMTPUTF8,
 * received 1700000000; then two records: bob deferred until 1700000600
 * after one attempt ("451 4.3.0 try later"), alice delivered.
 */
static const uint8_t v1_file[] = {
	0x54, 0x52, 0x4e, 0x51, 0x01, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x5a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x0c, 0x01, 0x00, 0x00, 0x6a, 0x2b, 0xbf, 0x5a, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x2a, 0x23, 0x10, 0x7d, 0x53, 0x75, 0x62, 0x6a, 0x65, 0x63, 0x74, 0x3a,
	0x20, 0x6f, 0x6c, 0x64, 0x0d, 0x0a, 0x0d, 0x0a, 0x66, 0x6f, 0x72, 0x6d,
	0x61, 0x74, 0x20, 0x31, 0x0d, 0x0a, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
	0x30, 0x30, 0x30, 0x31, 0x46, 0x4f, 0x52, 0x4d, 0x41, 0x54, 0x31, 0x6f,
	0x6c, 0x64, 0x12, 0x00, 0x00, 0x00, 0x73, 0x65, 0x6e, 0x64, 0x65, 0x72,
	0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67,
	0x12, 0x00, 0x00, 0x00, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x2e, 0x65,
	0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x09, 0x00,
	0x00, 0x00, 0x31, 0x39, 0x32, 0x2e, 0x30, 0x2e, 0x32, 0x2e, 0x37, 0x04,
	0x00, 0x00, 0x00, 0x45, 0x4e, 0x56, 0x31, 0x01, 0x00, 0x00, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x01, 0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
	0x1a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x11, 0x00, 0x00, 0x00, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x40, 0x65, 0x78,
	0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0xff, 0xff, 0xff,
	0xff, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
	0x00, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
	0xff, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x62, 0x6f, 0x62, 0x40, 0x65, 0x78,
	0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6e, 0x65, 0x74, 0x16, 0x00, 0x00,
	0x00, 0x72, 0x66, 0x63, 0x38, 0x32, 0x32, 0x3b, 0x62, 0x6f, 0x62, 0x40,
	0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6e, 0x65, 0x74, 0x00,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x62,
	0x6f, 0x62, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6e,
	0x65, 0x74, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x33, 0x00,
	0x00, 0x00, 0x74, 0x7d, 0x3b, 0x2d, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00,
	0x00, 0x00, 0x58, 0xf3, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
	0x00, 0x00, 0x13, 0x00, 0x00, 0x00, 0x34, 0x35, 0x31, 0x20, 0x34, 0x2e,
	0x33, 0x2e, 0x30, 0x20, 0x74, 0x72, 0x79, 0x20, 0x6c, 0x61, 0x74, 0x65,
	0x72, 0x20, 0x00, 0x00, 0x00, 0x4c, 0xd2, 0x1c, 0x4d, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
};
#define V1_ID       "0000000001FORMAT1old"
#define V1_BODY     "Subject: old\r\n\r\nformat 1\r\n"
#define V1_ENV_OFF  90u
#define V1_ENV_LEN  268u
#define V1_RECS_OFF (V1_ENV_OFF + V1_ENV_LEN)

/* ---- the format 1 encoder, as it was -------------------------------- */

static struct spool_rcpt v1_rcpts[2] = {
	{ .address = (char *)(uintptr_t)"alice@example.org",
	  .dest = (char *)(uintptr_t)"alice", .notify = 6 },
	{ .address = (char *)(uintptr_t)"bob@example.net",
	  .orcpt = (char *)(uintptr_t)"rfc822;bob@example.net",
	  .agent = SPOOL_AGENT_RELAY,
	  .dest = (char *)(uintptr_t)"bob@example.net" },
};
static const struct spool_envelope v1_envelope = {
	.id = V1_ID,
	.mail_from = (char *)(uintptr_t)"sender@example.org",
	.helo = (char *)(uintptr_t)"client.example.org",
	.client_addr = (char *)(uintptr_t)"192.0.2.7",
	.envid = (char *)(uintptr_t)"ENV1", .ret = 1, .body = 2,
	.smtputf8 = true, .received_at = 1700000000,
	.size = sizeof(V1_BODY) - 1, .rcpts = v1_rcpts, .nrcpts = 2,
};
static const struct spool_rcpt v1_deferred = {
	.state = SPOOL_RCPT_DEFERRED, .next_try = 1700000600, .attempts = 1,
	.diag = (char *)(uintptr_t)"451 4.3.0 try later" };
static const struct spool_rcpt v1_delivered = {
	.state = SPOOL_RCPT_DELIVERED, .attempts = 1 };

/* the encoder above makes exactly the bytes the format 1 code made */
static void
test_v1_encoder_is_byte_exact(void **state)
{
	struct buf env, file;
	uint8_t hdr[SPOOL_HDR_SIZE];

	(void)state;
	buf_init(&env, 0);
	buf_init(&file, 0);
	v1_env(&v1_envelope, &env);
	assert_int_equal(env.len, V1_ENV_LEN);
	v1_hdr(v1_envelope.size, &env, hdr);
	(void)buf_append(&file, hdr, sizeof(hdr));
	(void)buf_append_str(&file, V1_BODY);
	(void)buf_append(&file, env.p, env.len);
	v1_rec(1, &v1_deferred, &file);
	v1_rec(0, &v1_delivered, &file);
	assert_int_equal(file.len, sizeof(v1_file));
	for (size_t i = 0; i < file.len; i++) {
		if (file.p[i] != v1_file[i])
			fail_msg("octet %zu: got 0x%02x, want 0x%02x", i,
				 file.p[i], v1_file[i]);
	}
	buf_clear(&env);
	buf_clear(&file);
}

static void
test_hdr_versions(void **state)
{
	static const struct {
		uint32_t version;
		int want;
	} cases[] = { { 0, -1 }, { 1, 0 }, { 2, 0 }, { 3, -1 },
		      { 0x80000001u, -1 } };
	uint8_t raw[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	const char *why;

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(raw, v1_file, sizeof(raw));
		le32(raw + 4, cases[i].version);
		le32(raw + 60, spool_crc32c(0, raw, 60));
		int got = spool_hdr_decode(raw, &h, &why);
		CHECK(got == cases[i].want, "version %u: got %d, want %d",
		      cases[i].version, got, cases[i].want);
		CHECK(got < 0 || h.version == cases[i].version,
		      "version %u: decoded %u", cases[i].version, h.version);
	}
	assert_int_equal(failures, 0);
	/* new files are version 2 */
	struct spool_hdr n = { .body_len = 1, .env_off = 65, .env_len = 1 };
	spool_hdr_encode(&n, raw);
	assert_int_equal(spool_hdr_decode(raw, &h, &why), 0);
	assert_int_equal(h.version, 2);
}

/* the envelope of v1_file, decoded as version 1 (and rejected as 2) */
static void
decode_v1(struct spool_envelope *e)
{
	struct spool_hdr h;
	const char *why;

	assert_int_equal(spool_hdr_decode(v1_file, &h, &why), 0);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.env_off, V1_ENV_OFF);
	assert_int_equal(h.env_len, V1_ENV_LEN);
	assert_int_equal(spool_crc32c(0, v1_file + V1_ENV_OFF, V1_ENV_LEN),
			 h.env_crc);
	if (spool_env_decode(v1_file + V1_ENV_OFF, V1_ENV_LEN, 1, e, &why) < 0)
		fail_msg("format 1 envelope: %s", why);
}

static void
check_v1_env(const struct spool_envelope *e)
{
	assert_string_equal(e->id, V1_ID);
	assert_string_equal(e->mail_from, "sender@example.org");
	assert_string_equal(e->helo, "client.example.org");
	assert_string_equal(e->client_addr, "192.0.2.7");
	assert_string_equal(e->envid, "ENV1");
	assert_int_equal(e->ret, 1);
	assert_int_equal(e->body, 2);
	assert_true(e->smtputf8);
	assert_int_equal(e->received_at, 1700000000);
	assert_int_equal(e->size, sizeof(V1_BODY) - 1);
	assert_int_equal(e->nrcpts, 2);
	assert_string_equal(e->rcpts[0].address, "alice@example.org");
	assert_string_equal(e->rcpts[0].dest, "alice");
	assert_null(e->rcpts[0].orcpt);
	assert_int_equal(e->rcpts[0].notify, 6);
	assert_int_equal(e->rcpts[0].agent, SPOOL_AGENT_LOCAL);
	assert_string_equal(e->rcpts[1].address, "bob@example.net");
	assert_string_equal(e->rcpts[1].orcpt, "rfc822;bob@example.net");
	assert_int_equal(e->rcpts[1].agent, SPOOL_AGENT_RELAY);
}

static void
test_v1_decode(void **state)
{
	struct spool_envelope e;
	const char *why;

	(void)state;
	decode_v1(&e);
	check_v1_env(&e);
	/* what format 1 did not have takes its default */
	assert_false(e.held);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(e.rcpts[i].state, SPOOL_RCPT_PENDING);
		assert_int_equal(e.rcpts[i].flags, 0);
		assert_null(e.rcpts[i].status);
		assert_null(e.rcpts[i].remote_mta);
		assert_int_equal(e.rcpts[i].last_try, 0);
	}
	size_t n = sizeof(v1_file) - V1_RECS_OFF;
	assert_int_equal(spool_recs_apply(v1_file + V1_RECS_OFF, n, 1, &e), n);
	assert_int_equal(e.rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(e.rcpts[0].attempts, 1);
	assert_int_equal(e.rcpts[1].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(e.rcpts[1].next_try, 1700000600);
	assert_string_equal(e.rcpts[1].diag, "451 4.3.0 try later");
	/* a version 2 file holds no format 1 record: the first ends them */
	assert_int_equal(spool_recs_apply(v1_file + V1_RECS_OFF, n, 2, &e), 0);
	spool_envelope_clear(&e);
	/* every strict prefix of the positional envelope is refused, and
	 * a format 1 envelope is no format 2 one */
	for (size_t cut = 0; cut < V1_ENV_LEN; cut++) {
		if (spool_env_decode(v1_file + V1_ENV_OFF, cut, 1, &e,
				     &why) == 0)
			fail_msg("prefix %zu: got valid", cut);
	}
	assert_int_equal(spool_env_decode(v1_file + V1_ENV_OFF, V1_ENV_LEN, 2,
					  &e, &why), -1);
}

/* format 2 records after the upgrade, behind the format 1 ones */
static const struct spool_rcpt v2_bounced = {
	.state = SPOOL_RCPT_BOUNCED, .attempts = 2,
	.diag = (char *)(uintptr_t)"550 5.1.1 no such user",
	.flags = SPOOL_RCPT_F_DSN_DONE, .status = (char *)(uintptr_t)"5.1.1",
	.remote_mta = (char *)(uintptr_t)"mx.example.net[198.51.100.25]:25",
	.last_try = 1700000700 };

/* the records of v1_file followed by: hold, bob bounced (format 2),
 * release, a format 1 record of a reader gone back (alice deferred) */
static void
mixed_recs(struct buf *b, size_t *ends, size_t *nends)
{
	struct spool_msg_rec hold = { .set = SPOOL_MSGF_HELD, .held = true };
	struct spool_msg_rec release = { .set = SPOOL_MSGF_HELD };
	size_t k = 0;

	buf_init(b, 0);
	v1_rec(1, &v1_deferred, b);
	ends[k++] = b->len;
	v1_rec(0, &v1_delivered, b);
	ends[k++] = b->len;
	assert_memory_equal(b->p, v1_file + V1_RECS_OFF, b->len);
	spool_msg_rec_encode(&hold, b);
	ends[k++] = b->len;
	spool_rec_encode(1, &v2_bounced, b);
	ends[k++] = b->len;
	spool_msg_rec_encode(&release, b);
	ends[k++] = b->len;
	v1_rec(0, &v1_deferred, b);
	ends[k++] = b->len;
	*nends = k;
}

static void
test_v1_mixed_every_cut(void **state)
{
	struct spool_envelope e;
	struct buf b;
	size_t ends[8], nends;

	(void)state;
	decode_v1(&e);
	mixed_recs(&b, ends, &nends);
	for (size_t cut = 0; cut <= b.len; cut++) {
		struct spool_envelope *x = spool_envelope_dup(&e);
		size_t k = 0, want = 0;
		while (k < nends && ends[k] <= cut)
			want = ends[k++];
		size_t got = spool_recs_apply(b.p, cut, 1, x);
		if (got != want)
			fail_msg("cut %zu: got %zu, want %zu", cut, got, want);
		/* k records applied */
		const struct spool_rcpt *a = &x->rcpts[0], *r = &x->rcpts[1];
		enum spool_rcpt_state wa = k >= 6 ? SPOOL_RCPT_DEFERRED :
					   k >= 2 ? SPOOL_RCPT_DELIVERED :
					   SPOOL_RCPT_PENDING;
		enum spool_rcpt_state wb = k >= 4 ? SPOOL_RCPT_BOUNCED :
					   k >= 1 ? SPOOL_RCPT_DEFERRED :
					   SPOOL_RCPT_PENDING;
		bool wh = k == 3 || k == 4;
		if (a->state != wa || r->state != wb || x->held != wh)
			fail_msg("cut %zu: got alice %d bob %d held %d, "
				 "want %d %d %d", cut, a->state, r->state,
				 x->held, wa, wb, wh);
		if (k >= 4) {
			assert_string_equal(r->diag, "550 5.1.1 no such user");
			assert_string_equal(r->status, "5.1.1");
			assert_string_equal(r->remote_mta,
					    "mx.example.net[198.51.100.25]:25");
			assert_int_equal(r->flags, SPOOL_RCPT_F_DSN_DONE);
			assert_int_equal(r->last_try, 1700000700);
			assert_int_equal(r->attempts, 2);
			assert_int_equal(r->next_try, 0);
		} else if (k >= 1) {
			assert_string_equal(r->diag, "451 4.3.0 try later");
			assert_null(r->status);
		}
		if (k >= 6) {
			/* a format 1 record leaves the format 2 fields */
			assert_string_equal(a->diag, "451 4.3.0 try later");
			assert_int_equal(a->next_try, 1700000600);
		}
		spool_envelope_free(&x);
	}
	buf_clear(&b);
	spool_envelope_clear(&e);
}

/* ---- recovery of a format 1 file, before and after format 2 records -- */

struct fix {
	char dir[64];
	char spool[96];
	struct workq *wq;
	struct spool *s;
	struct spool_envelope *got[4];
	size_t ngot;
};

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-compat-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	f->wq = workq_new(1);
	assert_int_equal(spool_open(f->spool, f->wq, &f->s, &err), 0);
	*state = f;
	return 0;
}

static void
drop_got(struct fix *f)
{
	for (size_t i = 0; i < f->ngot; i++)
		spool_envelope_free(&f->got[i]);
	f->ngot = 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	drop_got(f);
	spool_free(&f->s);
	workq_free(&f->wq);
	ut_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
recover_cb(void *arg, struct spool_envelope *env)
{
	struct fix *f = arg;

	assert_true(f->ngot < 4);
	f->got[f->ngot++] = env;
}

static void
put_file(const struct fix *f, const char *name, const void *p, size_t n)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/queue/%s", f->spool, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static uint8_t *
get_file(const struct fix *f, const char *name, size_t *n_r)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/queue/%s", f->spool, name);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*n_r = (size_t)st.st_size;
	return p;
}

static struct spool_envelope *
recover_one(struct fix *f)
{
	drop_got(f);
	assert_int_equal(spool_recover(f->s, recover_cb, f), 1);
	return f->got[0];
}

static void
test_v1_file_recovered_and_updated(void **state)
{
	struct fix *f = *state;
	struct spool_envelope *e;

	/* as the old release left it */
	put_file(f, V1_ID, v1_file, sizeof(v1_file));
	e = recover_one(f);
	check_v1_env(e);
	assert_int_equal(e->rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(e->rcpts[1].state, SPOOL_RCPT_DEFERRED);
	assert_string_equal(e->rcpts[1].diag, "451 4.3.0 try later");
	assert_false(e->held);
	int fd;
	uint64_t off, len;
	char body[64];
	assert_int_equal(spool_body_open(f->s, V1_ID, &fd, &off, &len), 0);
	assert_int_equal(len, sizeof(V1_BODY) - 1);
	assert_int_equal(pread(fd, body, len, (off_t)off), (ssize_t)len);
	assert_memory_equal(body, V1_BODY, len);
	close(fd);

	/* the new release records on it: format 2 records, appended */
	assert_int_equal(spool_msg_hold(f->s, V1_ID, true), 0);
	struct spool_rcpt up = v2_bounced;
	up.state = SPOOL_RCPT_DEFERRED;
	up.next_try = 1700000900;
	assert_int_equal(spool_rcpt_update(f->s, V1_ID, 1, &up), 0);
	size_t n;
	uint8_t *p = get_file(f, V1_ID, &n);
	assert_true(n > sizeof(v1_file));
	/* nothing written before is touched: still version 1 */
	assert_memory_equal(p, v1_file, sizeof(v1_file));
	assert_int_equal(p[sizeof(v1_file) + 3] & 0x80, 0x80);
	free(p);
	e = recover_one(f);
	check_v1_env(e);
	assert_true(e->held);
	const struct spool_rcpt *r = &e->rcpts[1];
	assert_int_equal(r->state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(r->next_try, 1700000900);
	assert_int_equal(r->attempts, 2);
	assert_string_equal(r->diag, "550 5.1.1 no such user");
	assert_string_equal(r->status, "5.1.1");
	assert_string_equal(r->remote_mta, "mx.example.net[198.51.100.25]:25");
	assert_int_equal(r->flags, SPOOL_RCPT_F_DSN_DONE);
	assert_int_equal(r->last_try, 1700000700);
	assert_int_equal(e->rcpts[0].state, SPOOL_RCPT_DELIVERED);

	/* a crash tore the next record: recovery cuts it, then a release
	 * and the final state read back */
	struct buf torn;
	buf_init(&torn, 0);
	spool_rec_encode(1, &v2_bounced, &torn);
	p = get_file(f, V1_ID, &n);
	size_t whole = n;
	p = xrealloc(p, n + torn.len);
	memcpy(p + n, torn.p, torn.len - 1);
	put_file(f, V1_ID, p, n + torn.len - 1);
	free(p);
	buf_clear(&torn);
	e = recover_one(f);
	assert_int_equal(e->rcpts[1].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(ut_file_size(f->spool, "queue", V1_ID), whole);
	assert_int_equal(spool_msg_hold(f->s, V1_ID, false), 0);
	e = recover_one(f);
	assert_false(e->held);
	assert_int_equal(e->rcpts[1].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(spool_rcpt_update(f->s, V1_ID, 1, &v2_bounced), 0);
	drop_got(f);
	assert_int_equal(spool_recover(f->s, recover_cb, f), 0);
	assert_int_equal(ut_file_size(f->spool, "queue", V1_ID), UINT64_MAX);
	/* on a file that is gone, or a name that is no id */
	assert_int_equal(spool_msg_hold(f->s, V1_ID, true), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_msg_hold(f->s, "../x", true), -1);
	assert_int_equal(errno, EINVAL);
}

/* a format 1 file torn at every point of its record area recovers to
 * the records before the cut, and is cut there on disk */
static void
test_v1_file_torn_every_cut(void **state)
{
	struct fix *f = *state;
	struct buf recs, file;
	size_t ends[8], nends;

	mixed_recs(&recs, ends, &nends);
	for (size_t cut = 0; cut <= recs.len; cut++) {
		size_t want = 0, k = 0;
		while (k < nends && ends[k] <= cut)
			want = ends[k++];
		/* after bob's bounce both are final until alice's
		 * deferral: then the message is removed instead */
		bool final = k == 4 || k == 5;
		buf_init(&file, 0);
		(void)buf_append(&file, v1_file, V1_RECS_OFF);
		(void)buf_append(&file, recs.p, cut);
		put_file(f, V1_ID, file.p, file.len);
		buf_clear(&file);
		drop_got(f);
		int got = spool_recover(f->s, recover_cb, f);
		uint64_t size = ut_file_size(f->spool, "queue", V1_ID);
		uint64_t want_size = final ? UINT64_MAX : V1_RECS_OFF + want;
		if (got != (final ? 0 : 1) || size != want_size)
			fail_msg("cut %zu: got %d messages, size %llu; want "
				 "%d, %llu", cut, got, (unsigned long long)size,
				 final ? 0 : 1, (unsigned long long)want_size);
	}
	buf_clear(&recs);
}

/* ---- the seed corpus of tests/fuzz/fuzz_spool_record.c ------------- */

static void
seed(const char *dir, const char *name, uint8_t op, const void *a,
     size_t an, const void *b, size_t bn)
{
	struct buf s;
	char path[512];

	buf_init(&s, 0);
	(void)buf_append(&s, &op, 1);
	(void)buf_append(&s, a, an);
	if (bn > 0)
		(void)buf_append(&s, b, bn);
	if (dir != NULL) {
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, s.p, s.len), (ssize_t)s.len);
		close(fd);
	}
	buf_clear(&s);
}

/*
 * Input of the fuzz target: octet 0 selects op = bits 0-1, the header
 * version 1 + bit 2, and bit 3 has the target set the records' checksums
 * right; op 0 header, 1 envelope, 2 records on the target's own
 * envelope, 3 a u32 envelope length, the envelope and records.
 */
static void
test_fuzz_seeds(void **state)
{
	const char *dir = getenv("TERN_SPOOL_FUZZ_SEEDS");
	struct spool_envelope e;
	struct buf env2, recs1, recs2, len;
	uint8_t hdr[SPOOL_HDR_SIZE];
	size_t ends[8], nends;

	(void)state;
	decode_v1(&e);
	e.held = true;
	e.rcpts[1].status = xstrdup("4.4.1");
	e.rcpts[1].remote_mta = xstrdup("mx.example.net[198.51.100.25]:25");
	e.rcpts[1].flags = SPOOL_RCPT_F_FORWARDED;
	e.rcpts[1].last_try = 1700000100;
	buf_init(&env2, 0);
	spool_env_encode(&e, &env2);
	struct spool_hdr h = { .body_len = 26, .env_off = 90,
			       .env_len = (uint32_t)env2.len };
	spool_hdr_encode(&h, hdr);
	mixed_recs(&recs1, ends, &nends);
	buf_init(&recs2, 0);
	(void)buf_append(&recs2, recs1.p + ends[1], ends[4] - ends[1]);
	spool_rec_encode(0, &e.rcpts[1], &recs2);
	buf_init(&len, 0);
	uint8_t w[4];

	seed(dir, "hdr_v1", 0, v1_file, SPOOL_HDR_SIZE, NULL, 0);
	seed(dir, "hdr_v2", 4, hdr, sizeof(hdr), NULL, 0);
	seed(dir, "env_v1", 1, v1_file + V1_ENV_OFF, V1_ENV_LEN, NULL, 0);
	seed(dir, "env_v2", 5, env2.p, env2.len, NULL, 0);
	seed(dir, "recs_v1_mixed", 2, recs1.p, recs1.len, NULL, 0);
	seed(dir, "recs_v2", 6, recs2.p, recs2.len, NULL, 0);
	seed(dir, "recs_v1_mixed_fixcrc", 2 | 8, recs1.p, recs1.len, NULL, 0);
	seed(dir, "recs_v2_fixcrc", 6 | 8, recs2.p, recs2.len, NULL, 0);
	le32(w, V1_ENV_LEN);
	(void)buf_append(&len, w, 4);
	(void)buf_append(&len, v1_file + V1_ENV_OFF, V1_ENV_LEN);
	seed(dir, "file_v1", 3, len.p, len.len, recs1.p, recs1.len);
	buf_reset(&len);
	le32(w, (uint32_t)env2.len);
	(void)buf_append(&len, w, 4);
	(void)buf_append(&len, env2.p, env2.len);
	seed(dir, "file_v2", 7, len.p, len.len, recs2.p, recs2.len);
	seed(dir, "file_v2_fixcrc", 7 | 8, len.p, len.len, recs2.p, recs2.len);
	buf_clear(&len);
	buf_clear(&recs2);
	buf_clear(&recs1);
	buf_clear(&env2);
	spool_envelope_clear(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_encoder_is_byte_exact),
		cmocka_unit_test(test_hdr_versions),
		cmocka_unit_test(test_v1_decode),
		cmocka_unit_test(test_v1_mixed_every_cut),
		cmocka_unit_test_setup_teardown(
			test_v1_file_recovered_and_updated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_file_torn_every_cut,
						setup, teardown),
		cmocka_unit_test(test_fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

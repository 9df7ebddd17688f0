/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spool_history.c against a real spool in a temporary
 * directory: the records of a message read back in order (recipient and
 * message records, meaningless ones skipped), a version 1 file with
 * format 1 records followed by format 2 ones, a torn tail cut at every
 * point and a damaged record in the middle (both as recovery sees them),
 * records of the largest size across the read window, and the cap at
 * limit-1, limit and limit+1.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool/spool_int.h"
#include "unit_check.h"
#include "unit_spool_v1.h"
#include "unit_fs.h"

struct fix {
	char dir[64];
	char spool[96];
	struct workq *wq;
	struct spool *s;
};

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-hist-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
	f->wq = workq_new(1);
	assert_int_equal(spool_open(f->spool, f->wq, &f->s, &err), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	spool_free(&f->s);
	workq_free(&f->wq);
	ut_rm_rf(f->dir);
	free(f);
	return 0;
}

#define BODY "Subject: history\r\n\r\nhello\r\n"

static struct spool_rcpt env_rcpts[2] = {
	{ .address = (char *)(uintptr_t)"alice@example.org",
	  .dest = (char *)(uintptr_t)"alice" },
	{ .address = (char *)(uintptr_t)"bob@remote.test",
	  .agent = SPOOL_AGENT_RELAY,
	  .dest = (char *)(uintptr_t)"bob@remote.test" },
};

static const struct spool_envelope sample_env = {
	.mail_from = (char *)(uintptr_t)"sender@example.org",
	.helo = (char *)(uintptr_t)"client.example.org",
	.received_at = 1700000000,
	.rcpts = env_rcpts, .nrcpts = 2,
};

/* a queued message with two recipients and no record yet */
static void
new_msg(struct fix *f, char *id)
{
	assert_int_equal(spool_inject(f->s, &sample_env, BODY,
				      sizeof(BODY) - 1, id), 0);
}

static char *
qpath(const struct fix *f, const char *id, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/queue/%s", f->spool, id);
	return out;
}

static void
put_file(const struct fix *f, const char *id, const void *p, size_t n)
{
	char path[256];
	int fd = open(qpath(f, id, path, sizeof(path)),
		      O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static uint8_t *
get_file(const struct fix *f, const char *id, size_t *n_r)
{
	char path[256];
	struct stat st;
	int fd = open(qpath(f, id, path, sizeof(path)), O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*n_r = (size_t)st.st_size;
	return p;
}

/* appends raw octets to queue/<id> */
static void
append_raw(const struct fix *f, const char *id, const void *p, size_t n)
{
	char path[256];
	int fd = open(qpath(f, id, path, sizeof(path)), O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* where the records of a version 2 file begin */
static size_t
recs_off(const uint8_t *file)
{
	struct spool_hdr h;
	const char *why;

	assert_int_equal(spool_hdr_decode(file, &h, &why), 0);
	return (size_t)(h.env_off + h.env_len);
}

/* ---- what a history should hold ------------------------------------ */

struct want {
	enum spool_hist_kind kind;
	unsigned format;
	size_t idx;                   /* SPOOL_HIST_RCPT: */
	const struct spool_rcpt *r;   /* ... the state it holds */
	bool held;                    /* SPOOL_HIST_MSG: sets held */
};

static bool
str_eq(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static const char *
s_or_null(const char *s)
{
	return s != NULL ? s : "(null)";
}

static void
check_history(const char *what, const struct spool_history *h,
	      const struct want *w, size_t nw)
{
	CHECK(h->n == nw, "%s: got %zu entries, want %zu", what, h->n, nw);
	for (size_t i = 0; i < h->n && i < nw; i++) {
		const struct spool_hist *e = &h->v[i];
		CHECK(e->kind == w[i].kind && e->format == w[i].format,
		      "%s [%zu]: got kind %d format %u, want %d %u", what, i,
		      e->kind, e->format, w[i].kind, w[i].format);
		if (w[i].kind == SPOOL_HIST_MSG) {
			CHECK(e->set == SPOOL_HIST_SET_HELD &&
			      e->held == w[i].held,
			      "%s [%zu]: got set %u held %d, want held %d",
			      what, i, e->set, e->held, w[i].held);
			continue;
		}
		const struct spool_rcpt *r = w[i].r;
		CHECK(e->idx == w[i].idx && e->state == r->state &&
		      e->attempts == r->attempts &&
		      e->last_try == r->last_try &&
		      e->next_try == r->next_try && e->flags == r->flags,
		      "%s [%zu]: got idx %zu state %d attempts %u last %lld "
		      "next %lld flags %u, want %zu %d %u %lld %lld %u", what,
		      i, e->idx, e->state, e->attempts,
		      (long long)e->last_try, (long long)e->next_try, e->flags,
		      w[i].idx, r->state, r->attempts,
		      (long long)r->last_try, (long long)r->next_try,
		      r->flags);
		CHECK(str_eq(e->status, r->status) &&
		      str_eq(e->remote_mta, r->remote_mta) &&
		      str_eq(e->diag, r->diag),
		      "%s [%zu]: got status %s mta %s diag %s, want %s %s %s",
		      what, i, s_or_null(e->status), s_or_null(e->remote_mta),
		      s_or_null(e->diag), s_or_null(r->status),
		      s_or_null(r->remote_mta), s_or_null(r->diag));
	}
}

/* ---- records of a message, in order ----------------------------------- */

static const struct spool_rcpt greylisted = {
	.state = SPOOL_RCPT_DEFERRED, .attempts = 1,
	.last_try = 1700000100, .next_try = 1700000160,
	.status = (char *)(uintptr_t)"4.2.0",
	.remote_mta = (char *)(uintptr_t)"mx1.remote.test[127.0.0.2]:25",
	.diag = (char *)(uintptr_t)"451 4.2.0 greylisted",
};
static const struct spool_rcpt refused = {
	.state = SPOOL_RCPT_DEFERRED, .attempts = 2,
	.last_try = 1700000160, .next_try = 1700000280,
	.status = (char *)(uintptr_t)"4.4.1",
	.diag = (char *)(uintptr_t)"connection refused",
};
static const struct spool_rcpt reported = {
	.state = SPOOL_RCPT_DEFERRED, .attempts = 2,
	.last_try = 1700000160, .next_try = 1700000280,
	.flags = SPOOL_RCPT_F_DELAY_SENT,
	.status = (char *)(uintptr_t)"4.4.1",
	.diag = (char *)(uintptr_t)"connection refused",
};
static const struct spool_rcpt delivered = {
	.state = SPOOL_RCPT_DELIVERED, .attempts = 1,
	.last_try = 1700000280, .status = (char *)(uintptr_t)"2.0.0",
};
static const struct spool_rcpt bounced = {
	.state = SPOOL_RCPT_BOUNCED, .attempts = 3, .last_try = 1700000280,
	.flags = SPOOL_RCPT_F_DELAY_SENT | SPOOL_RCPT_F_DSN_DONE,
	.status = (char *)(uintptr_t)"5.1.1",
	.remote_mta = (char *)(uintptr_t)"mx2.remote.test[127.0.0.3]:25",
	.diag = (char *)(uintptr_t)"550 5.1.1 no such user",
};

#define W_RCPT(i, rc) { .kind = SPOOL_HIST_RCPT, .format = 2, \
	.idx = (i), .r = &(rc) }
#define W_V1(i, rc) { .kind = SPOOL_HIST_RCPT, .format = 1, \
	.idx = (i), .r = &(rc) }
#define W_HOLD(h) { .kind = SPOOL_HIST_MSG, .format = 2, .held = (h) }

static const struct want sample_want[] = {
	W_RCPT(1, greylisted), W_HOLD(true), W_HOLD(false),
	W_RCPT(1, refused), W_RCPT(1, reported), W_RCPT(0, delivered),
	W_RCPT(1, bounced),
};

/* the records of sample_want, written as the runner and commands do */
static void
write_sample(struct fix *f, const char *id)
{
	size_t idx[2] = { 0, 1 };
	struct spool_rcpt two[2] = { delivered, bounced };

	assert_int_equal(spool_rcpt_update(f->s, id, 1, &greylisted), 0);
	assert_int_equal(spool_msg_hold(f->s, id, true), 0);
	assert_int_equal(spool_msg_hold(f->s, id, false), 0);
	assert_int_equal(spool_rcpt_update(f->s, id, 1, &refused), 0);
	assert_int_equal(spool_rcpt_update(f->s, id, 1, &reported), 0);
	/* one job's two outcomes in one write */
	assert_int_equal(spool_rcpt_update_n(f->s, id, idx, two, 2), 0);
}

static void
test_history_in_order(void **state)
{
	struct fix *f = *state;
	struct spool_history h;
	char id[SPOOL_ID_LEN + 1];

	new_msg(f, id);
	/* before any attempt: no history */
	assert_int_equal(spool_history_read(f->s, id, 10, &h), 0);
	CHECK(h.n == 0 && h.omitted == 0 && h.torn == 0,
	      "fresh: got %zu entries, %zu omitted, %llu torn, want none",
	      h.n, h.omitted, (unsigned long long)h.torn);
	spool_history_clear(&h);

	write_sample(f, id);
	assert_int_equal(spool_history_read(f->s, id, 10, &h), 0);
	check_history("in order", &h, sample_want,
		      sizeof(sample_want) / sizeof(sample_want[0]));
	CHECK(h.omitted == 0 && h.torn == 0, "got %zu omitted, %llu torn",
	      h.omitted, (unsigned long long)h.torn);
	spool_history_clear(&h);

	/* whole, checksummed records that mean nothing here are skipped,
	 * not torn: an index past the recipients, an unknown kind, a
	 * message record that sets nothing known; later records count */
	struct buf b;
	buf_init(&b, 0);
	spool_rec_encode(2, &refused, &b);
	struct spool_msg_rec mr = { 0 };
	spool_msg_rec_encode(&mr, &b);
	size_t at = b.len;
	spool_msg_rec_encode(&mr, &b);
	b.p[at + 8] = 7;  /* kind 7, checksum made again */
	uint32_t crc = spool_crc32c(0, b.p + at + 8, b.len - at - 8);
	for (int i = 0; i < 4; i++)
		b.p[at + 4 + i] = (uint8_t)(crc >> (8 * i));
	append_raw(f, id, b.p, b.len);
	buf_clear(&b);
	assert_int_equal(spool_msg_hold(f->s, id, true), 0);
	assert_int_equal(spool_history_read(f->s, id, 10, &h), 0);
	struct want w[9];
	memcpy(w, sample_want, sizeof(sample_want));
	w[7] = (struct want)W_HOLD(true);
	check_history("skipped", &h, w, 8);
	CHECK(h.torn == 0, "skipped: got %llu torn, want 0",
	      (unsigned long long)h.torn);
	spool_history_clear(&h);

	/* what recovery makes of the same file: the last record wins */
	size_t n;
	uint8_t *file = get_file(f, id, &n);
	struct spool_envelope env;
	const char *why;
	struct spool_hdr hd;
	assert_int_equal(spool_hdr_decode(file, &hd, &why), 0);
	assert_int_equal(spool_env_decode(file + hd.env_off, hd.env_len, 2,
					  &env, &why), 0);
	size_t ro = recs_off(file);
	assert_int_equal(spool_recs_apply(file + ro, n - ro, 2, &env), n - ro);
	assert_true(env.held);
	assert_int_equal(env.rcpts[1].state, SPOOL_RCPT_BOUNCED);
	spool_envelope_clear(&env);
	free(file);

	/* errors: no such message, a name that is no id, no room */
	char gone[] = "AAAAAAAAAAAAAAAAAAAA";
	assert_int_equal(spool_history_read(f->s, gone, 10, &h), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(h.v);
	assert_int_equal(spool_history_read(f->s, "../queue/x", 10, &h), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_history_read(f->s, id, 0, &h), -1);
	assert_int_equal(errno, EINVAL);
	/* a damaged envelope: not a queue file */
	file = get_file(f, id, &n);
	file[hd.env_off + 3] ^= 0x01;
	put_file(f, id, file, n);
	free(file);
	assert_int_equal(spool_history_read(f->s, id, 10, &h), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(failures, 0);
}

/* ---- format 1 and format 2 records in one file ------------------------ */

/* a version 1 queue file of sample_env under id, with records recs */
static void
v1_file(const char *id, const struct buf *recs, struct buf *out)
{
	struct spool_envelope e = sample_env;
	struct buf env;
	uint8_t h[SPOOL_HDR_SIZE];

	memcpy(e.id, id, SPOOL_ID_LEN + 1);
	e.size = sizeof(BODY) - 1;
	buf_init(&env, 0);
	v1_env(&e, &env);
	v1_hdr(e.size, &env, h);
	(void)buf_append(out, h, sizeof(h));
	(void)buf_append(out, BODY, e.size);
	(void)buf_append(out, env.p, env.len);
	(void)buf_append(out, recs->p, recs->len);
	buf_clear(&env);
}

static const struct spool_rcpt v1_deferred = {
	.state = SPOOL_RCPT_DEFERRED, .next_try = 1600000600, .attempts = 1,
	.diag = (char *)(uintptr_t)"451 4.3.0 try later" };
static const struct spool_rcpt v1_delivered = {
	.state = SPOOL_RCPT_DELIVERED, .attempts = 1 };

static void
test_history_format1_and_2(void **state)
{
	struct fix *f = *state;
	const char *id = "0000000001FORMAT1old";
	struct spool_history h;
	struct buf recs, file;

	/* as the format 1 code left it, then the upgrade's records */
	buf_init(&recs, 0);
	v1_rec(1, &v1_deferred, &recs);
	v1_rec(0, &v1_delivered, &recs);
	v1_rec(5, &v1_deferred, &recs);  /* past the recipients: skipped */
	buf_init(&file, 0);
	v1_file(id, &recs, &file);
	put_file(f, id, file.p, file.len);
	assert_int_equal(spool_msg_hold(f->s, id, true), 0);
	assert_int_equal(spool_rcpt_update(f->s, id, 1, &refused), 0);
	/* a format 1 record after format 2 ones still reads in a version 1
	 * file (recovery takes it too) */
	buf_reset(&recs);
	v1_rec(1, &v1_deferred, &recs);
	append_raw(f, id, recs.p, recs.len);
	assert_int_equal(spool_msg_hold(f->s, id, false), 0);

	/* a format 1 record holds no status, remote_mta, flags or
	 * last_try: none is shown for it */
	const struct want w[] = {
		W_V1(1, v1_deferred), W_V1(0, v1_delivered), W_HOLD(true),
		W_RCPT(1, refused), W_V1(1, v1_deferred), W_HOLD(false),
	};
	assert_int_equal(spool_history_read(f->s, id, 100, &h), 0);
	check_history("format 1 + 2", &h, w, sizeof(w) / sizeof(w[0]));
	CHECK(h.torn == 0, "got %llu torn, want 0",
	      (unsigned long long)h.torn);
	spool_history_clear(&h);

	/* in a version 2 file a record without the format 2 bit is not a
	 * record: it ends the history as a torn tail does */
	char id2[SPOOL_ID_LEN + 1];
	new_msg(f, id2);
	assert_int_equal(spool_rcpt_update(f->s, id2, 1, &greylisted), 0);
	buf_reset(&recs);
	v1_rec(1, &v1_deferred, &recs);
	append_raw(f, id2, recs.p, recs.len);
	append_raw(f, id2, recs.p, recs.len);
	const struct want w2[] = { W_RCPT(1, greylisted) };
	assert_int_equal(spool_history_read(f->s, id2, 100, &h), 0);
	check_history("v1 record in a v2 file", &h, w2, 1);
	CHECK(h.torn == 2 * recs.len, "got %llu torn, want %zu",
	      (unsigned long long)h.torn, 2 * recs.len);
	spool_history_clear(&h);
	buf_clear(&recs);
	buf_clear(&file);
	assert_int_equal(failures, 0);
}

/* ---- torn tails, damaged records ------------------------------------ */

static void
test_history_torn_every_cut(void **state)
{
	struct fix *f = *state;
	char id[SPOOL_ID_LEN + 1];
	struct spool_history h;
	size_t n, nw = sizeof(sample_want) / sizeof(sample_want[0]);

	new_msg(f, id);
	write_sample(f, id);
	uint8_t *file = get_file(f, id, &n);
	size_t ro = recs_off(file);
	/* the record boundaries, as written */
	size_t ends[16], nends = 0, off = ro;
	while (off < n) {
		uint32_t len = (uint32_t)(file[off] | file[off + 1] << 8 |
					  file[off + 2] << 16) & 0xffffffu;
		off += len;
		ends[nends++] = off - ro;
	}
	assert_int_equal(off, n);
	assert_int_equal(nends, nw);

	for (size_t cut = 0; cut <= n - ro; cut++) {
		size_t whole = 0;
		while (whole < nends && ends[whole] <= cut)
			whole++;
		size_t good = whole > 0 ? ends[whole - 1] : 0;
		put_file(f, id, file, ro + cut);
		char what[32];
		snprintf(what, sizeof(what), "cut %zu", cut);
		assert_int_equal(spool_history_read(f->s, id, 100, &h), 0);
		check_history(what, &h, sample_want, whole);
		CHECK(h.torn == cut - good, "%s: got %llu torn, want %zu",
		      what, (unsigned long long)h.torn, cut - good);
		spool_history_clear(&h);
		/* recovery cuts the file at the same place */
		struct spool_envelope env;
		const char *why;
		struct spool_hdr hd;
		assert_int_equal(spool_hdr_decode(file, &hd, &why), 0);
		assert_int_equal(spool_env_decode(file + hd.env_off,
						  hd.env_len, 2, &env, &why),
				 0);
		CHECK(spool_recs_apply(file + ro, cut, 2, &env) == good,
		      "%s: recovery keeps another length", what);
		spool_envelope_clear(&env);
	}

	/* a flipped bit in the fourth record: it and all after it are no
	 * history (recovery would cut there) */
	file[ro + ends[2] + SPOOL_REC2_HEAD + 2] ^= 0x10;
	put_file(f, id, file, n);
	assert_int_equal(spool_history_read(f->s, id, 100, &h), 0);
	check_history("damaged", &h, sample_want, 3);
	CHECK(h.torn == n - ro - ends[2], "damaged: got %llu torn, want %zu",
	      (unsigned long long)h.torn, n - ro - ends[2]);
	spool_history_clear(&h);
	free(file);
	assert_int_equal(failures, 0);
}

/* ---- records of the largest size, past the read window ------------- */

static void
tlv(struct buf *b, unsigned tag, const void *v, uint32_t len)
{
	uint8_t t[6] = { (uint8_t)tag, (uint8_t)(tag >> 8) };

	le32(t + 2, len);
	(void)buf_append(b, t, sizeof(t));
	(void)buf_append(b, v, len);
}

/* a format 2 recipient record of exactly `len` octets: the state and
 * attempts, padded with a field of a later revision (skipped) */
static void
big_rec(struct buf *out, uint32_t idx, uint32_t attempts, uint32_t len)
{
	struct buf fl;
	uint8_t u[4], h[SPOOL_REC2_HEAD];

	assert_true(len >= SPOOL_REC2_HEAD + 3 * 6 + 8);
	buf_init(&fl, 0);
	le32(u, SPOOL_RCPT_DEFERRED);
	tlv(&fl, SPOOL_RT_STATE, u, 4);
	le32(u, attempts);
	tlv(&fl, SPOOL_RT_ATTEMPTS, u, 4);
	uint32_t pad = len - SPOOL_REC2_HEAD - (uint32_t)fl.len - 6;
	uint8_t *z = xcalloc(1, pad + 1);
	tlv(&fl, 999, z, pad);
	free(z);
	le32(h, SPOOL_REC2_MARK | len);
	le32(h + 8, SPOOL_REC_RCPT);
	le32(h + 12, idx);
	uint32_t crc = spool_crc32c(0, h + 8, 8);
	le32(h + 4, spool_crc32c(crc, fl.p, fl.len));
	(void)buf_append(out, h, sizeof(h));
	(void)buf_append(out, fl.p, fl.len);
	buf_clear(&fl);
}

static void
test_history_big_records(void **state)
{
	struct fix *f = *state;
	char id[SPOOL_ID_LEN + 1];
	struct spool_history h;
	struct buf b;
	/* sizes that put record starts at many offsets of the window */
	static const uint32_t sizes[] = {
		SPOOL_REC2_MAX, SPOOL_REC2_MAX - 1, 64, SPOOL_REC2_MAX,
		SPOOL_REC2_MAX, 48, SPOOL_REC2_MAX - 7, SPOOL_REC2_MAX,
		SPOOL_REC2_MAX, 1000, SPOOL_REC2_MAX,
	};
	size_t nr = sizeof(sizes) / sizeof(sizes[0]);
	size_t ends[16];

	new_msg(f, id);
	buf_init(&b, 0);
	for (size_t i = 0; i < nr; i++) {
		big_rec(&b, (uint32_t)(i % 2), (uint32_t)i + 1, sizes[i]);
		ends[i] = b.len;
	}
	assert_true(b.len > 2 * 4 * SPOOL_REC2_MAX);
	append_raw(f, id, b.p, b.len);
	assert_int_equal(spool_history_read(f->s, id, 100, &h), 0);
	CHECK(h.n == nr && h.torn == 0, "big: got %zu entries %llu torn, "
	      "want %zu 0", h.n, (unsigned long long)h.torn, nr);
	for (size_t i = 0; i < h.n && i < nr; i++)
		CHECK(h.v[i].idx == i % 2 && h.v[i].attempts == i + 1,
		      "big [%zu]: got idx %zu attempts %u, want %zu %zu", i,
		      h.v[i].idx, h.v[i].attempts, i % 2, i + 1);
	spool_history_clear(&h);

	/* a damaged record far from the end, with more than a window of
	 * records after it: the history ends before it */
	size_t n;
	uint8_t *file = get_file(f, id, &n);
	size_t ro = recs_off(file);
	file[ro + ends[3] + 100] ^= 0x01;   /* the fifth record's padding */
	put_file(f, id, file, n);
	free(file);
	assert_int_equal(spool_history_read(f->s, id, 100, &h), 0);
	CHECK(h.n == 4 && h.torn == b.len - ends[3],
	      "damaged big: got %zu entries %llu torn, want 4 %zu", h.n,
	      (unsigned long long)h.torn, b.len - ends[3]);
	spool_history_clear(&h);
	buf_clear(&b);
	assert_int_equal(failures, 0);
}

/* ---- the cap ---------------------------------------------------------- */

static void
test_history_cap(void **state)
{
	struct fix *f = *state;
	char id[SPOOL_ID_LEN + 1];
	struct spool_history h;
	enum { NREC = 300 };

	new_msg(f, id);
	/* written in one go: NREC fdatasyncs would make the test slow */
	struct buf b;
	buf_init(&b, 0);
	for (unsigned i = 0; i < NREC; i++) {
		struct spool_rcpt r = refused;
		r.attempts = i + 1;
		r.last_try = 1700000000 + i;
		spool_rec_encode(i % 2, &r, &b);
	}
	append_raw(f, id, b.p, b.len);
	buf_clear(&b);

	static const size_t caps[] = { 1, 2, 7, 16, 17, NREC - 1, NREC,
				       NREC + 1, SIZE_MAX };
	for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		size_t max = caps[k];
		size_t want = max < NREC ? max : NREC;
		assert_int_equal(spool_history_read(f->s, id, max, &h), 0);
		CHECK(h.n == want && h.omitted == NREC - want,
		      "cap %zu: got %zu entries %zu omitted, want %zu %zu",
		      max, h.n, h.omitted, want, NREC - want);
		/* the latest ones, oldest first */
		for (size_t i = 0; i < h.n; i++) {
			unsigned a = (unsigned)(NREC - want + i + 1);
			CHECK(h.v[i].attempts == a &&
			      h.v[i].last_try == 1700000000 + a - 1 &&
			      h.v[i].idx == (a - 1) % 2 &&
			      str_eq(h.v[i].diag, "connection refused"),
			      "cap %zu [%zu]: got attempts %u, want %u", max,
			      i, h.v[i].attempts, a);
		}
		spool_history_clear(&h);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_history_in_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_history_format1_and_2,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_torn_every_cut,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_big_records,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_history_cap, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

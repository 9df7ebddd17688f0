/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spool_recover.c (STYLE §2.8) against spool trees built
 * by hand: partial tmp files, torn state records, finished messages,
 * truncated and damaged queue files, stray names; and a commit, stop,
 * recover round trip through the real commit path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool/spool_int.h"
#include "unit_fs.h"

struct fix {
	char dir[64];
	char spool[96];
	struct workq *wq;
	struct spool *s;
	struct spool_envelope *got[16];
	size_t ngot;
};

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-spool-XXXXXX");
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

	for (size_t i = 0; i < f->ngot; i++)
		spool_envelope_free(&f->got[i]);
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

	assert_true(f->ngot < 16);
	f->got[f->ngot++] = env;
}

static bool
exists(const struct fix *f, const char *sub, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/%s", f->spool, sub, name);
	return lstat(p, &st) == 0;
}

static off_t
file_size(const struct fix *f, const char *sub, const char *name)
{
	uint64_t n = ut_file_size(f->spool, sub, name);

	assert_true(n != UINT64_MAX);
	return (off_t)n;
}

static void
put_file(const struct fix *f, const char *sub, const char *name,
	 const void *p, size_t n)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s/%s", f->spool, sub, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* builds the bytes of a committed queue file: header, body, envelope,
 * then the given records */
static void
craft(struct buf *out, const char *id, const char *body, size_t nrcpts,
      const struct buf *recs)
{
	struct spool_envelope e = { 0 };
	struct spool_rcpt rc[4] = { 0 };
	struct buf eb;
	uint8_t hdr[SPOOL_HDR_SIZE];

	memcpy(e.id, id, SPOOL_ID_LEN + 1);
	e.mail_from = (char *)(uintptr_t)"from@example.org";
	e.helo = (char *)(uintptr_t)"helo.example";
	e.client_addr = (char *)(uintptr_t)"198.51.100.4";
	e.received_at = 1700000000;
	e.size = strlen(body);
	e.rcpts = rc;
	e.nrcpts = nrcpts;
	for (size_t i = 0; i < nrcpts; i++) {
		rc[i].address = (char *)(uintptr_t)"rcpt@example.org";
		rc[i].dest = (char *)(uintptr_t)"rcpt";
	}
	buf_init(&eb, 0);
	spool_env_encode(&e, &eb);
	struct spool_hdr h = {
		.body_len = e.size,
		.env_off = SPOOL_HDR_SIZE + e.size,
		.env_len = (uint32_t)eb.len,
		.env_crc = spool_crc32c(0, eb.p, eb.len),
	};
	spool_hdr_encode(&h, hdr);
	buf_init(out, 0);
	(void)buf_append(out, hdr, sizeof(hdr));
	(void)buf_append_str(out, body);
	(void)buf_append(out, eb.p, eb.len);
	if (recs != NULL)
		(void)buf_append(out, recs->p, recs->len);
	buf_clear(&eb);
}

static struct spool_envelope *
find(struct fix *f, const char *id)
{
	for (size_t i = 0; i < f->ngot; i++) {
		if (strcmp(f->got[i]->id, id) == 0)
			return f->got[i];
	}
	return NULL;
}

#define ID_OK       "0000000001AAAAAAAAAA"
#define ID_TORN     "0000000002AAAAAAAAAA"
#define ID_DONE     "0000000003AAAAAAAAAA"
#define ID_TRUNC    "0000000004AAAAAAAAAA"
#define ID_MAGIC    "0000000005AAAAAAAAAA"
#define ID_FLIP     "0000000006AAAAAAAAAA"
#define ID_OTHER    "0000000007AAAAAAAAAA"
#define ID_ZERO     "0000000008AAAAAAAAAA"
#define ID_PART     "0000000009AAAAAAAAAA"
#define ID_EMPTY    "000000000AAAAAAAAAAA"

static void
test_recover_crafted_tree(void **state)
{
	struct fix *f = *state;
	struct buf b, recs;
	struct spool_rcpt delivered = { .state = SPOOL_RCPT_DELIVERED,
					.attempts = 1 };
	struct spool_rcpt deferred = { .state = SPOOL_RCPT_DEFERRED,
				       .attempts = 2, .next_try = 1700000300,
				       .diag = "452 4.2.2 mailbox full" };
	struct spool_rcpt bounced = { .state = SPOOL_RCPT_BOUNCED,
				      .attempts = 1, .diag = "user unknown" };

	/* tmp/: a message being received when the crash came, one already
	 * complete but not yet renamed (both kept as empty places), one too
	 * large to keep and a name that is no queue id (both unlinked) */
	put_file(f, "tmp", ID_PART, "\0\0\0\0partial body", 16);
	craft(&b, ID_OTHER, "complete but not renamed\r\n", 1, NULL);
	put_file(f, "tmp", ID_OTHER, b.p, b.len);
	buf_clear(&b);
	char *huge = xcalloc(1, SPOOL_RECYCLE_SIZE + 1);
	put_file(f, "tmp", ID_TRUNC, huge, SPOOL_RECYCLE_SIZE + 1);
	free(huge);
	put_file(f, "tmp", "junk.name", "x", 1);

	/* a plain committed message */
	craft(&b, ID_OK, "Subject: ok\r\n\r\nbody\r\n", 2, NULL);
	put_file(f, "queue", ID_OK, b.p, b.len);
	size_t ok_len = b.len;
	buf_clear(&b);

	/* rcpt 0 delivered, rcpt 1 deferred, then half a record */
	buf_init(&recs, 0);
	spool_rec_encode(0, &delivered, &recs);
	spool_rec_encode(1, &deferred, &recs);
	size_t whole = recs.len;
	spool_rec_encode(1, &bounced, &recs);
	recs.len = whole + 13;  /* the crash cut the third record */
	craft(&b, ID_TORN, "torn\r\n", 2, &recs);
	put_file(f, "queue", ID_TORN, b.p, b.len);
	size_t torn_good = b.len - 13;
	buf_clear(&b);
	buf_clear(&recs);

	/* every recipient final: delivered and bounced */
	buf_init(&recs, 0);
	spool_rec_encode(0, &delivered, &recs);
	spool_rec_encode(1, &bounced, &recs);
	craft(&b, ID_DONE, "done\r\n", 2, &recs);
	put_file(f, "queue", ID_DONE, b.p, b.len);
	buf_clear(&b);
	buf_clear(&recs);

	/* truncated inside the envelope */
	craft(&b, ID_TRUNC, "truncated\r\n", 1, NULL);
	put_file(f, "queue", ID_TRUNC, b.p, b.len - 5);
	buf_clear(&b);

	/* bad magic */
	craft(&b, ID_MAGIC, "magic\r\n", 1, NULL);
	b.p[0] = 'X';
	put_file(f, "queue", ID_MAGIC, b.p, b.len);
	buf_clear(&b);

	/* one flipped bit in the envelope */
	craft(&b, ID_FLIP, "flip\r\n", 1, NULL);
	b.p[b.len - 3] ^= 0x10;
	put_file(f, "queue", ID_FLIP, b.p, b.len);
	buf_clear(&b);

	/* a header of zeros: the file was renamed before its header was
	 * written, which only a lying disk produces */
	craft(&b, ID_ZERO, "zero\r\n", 1, NULL);
	memset(b.p, 0, SPOOL_HDR_SIZE);
	put_file(f, "queue", ID_ZERO, b.p, b.len);
	buf_clear(&b);

	/* empty file */
	put_file(f, "queue", ID_EMPTY, "", 0);

	/* a valid file under another message's name */
	craft(&b, ID_OK, "Subject: ok\r\n\r\nbody\r\n", 2, NULL);
	put_file(f, "queue", ID_OTHER, b.p, b.len);
	buf_clear(&b);

	/* names that are no queue id; dot files are ignored */
	put_file(f, "queue", "notes.txt", "hello", 5);
	put_file(f, "queue", ".hidden", "x", 1);

	int n = spool_recover(f->s, recover_cb, f);
	assert_int_equal(n, 2);
	assert_int_equal(f->ngot, 2);
	/* handed over in id order */
	assert_string_equal(f->got[0]->id, ID_OK);
	assert_string_equal(f->got[1]->id, ID_TORN);

	/* nothing in tmp/ was read as mail: two files kept for reuse, the
	 * others gone */
	assert_int_equal(f->s->nrecycled, 2);
	assert_true(exists(f, "tmp", ID_PART));
	assert_true(exists(f, "tmp", ID_OTHER));
	assert_false(exists(f, "tmp", ID_TRUNC));
	assert_false(exists(f, "tmp", "junk.name"));

	/* the plain message, unchanged */
	struct spool_envelope *e = find(f, ID_OK);
	assert_non_null(e);
	assert_string_equal(e->mail_from, "from@example.org");
	assert_int_equal(e->nrcpts, 2);
	assert_int_equal(e->rcpts[0].state, SPOOL_RCPT_PENDING);
	assert_int_equal(e->size, strlen("Subject: ok\r\n\r\nbody\r\n"));
	assert_int_equal(file_size(f, "queue", ID_OK), (off_t)ok_len);

	/* the torn record is cut; the whole ones apply */
	e = find(f, ID_TORN);
	assert_non_null(e);
	assert_int_equal(e->rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(e->rcpts[1].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(e->rcpts[1].next_try, 1700000300);
	assert_int_equal(e->rcpts[1].attempts, 2);
	assert_string_equal(e->rcpts[1].diag, "452 4.2.2 mailbox full");
	assert_int_equal(file_size(f, "queue", ID_TORN), (off_t)torn_good);

	/* finished message removed */
	assert_false(exists(f, "queue", ID_DONE));

	/* corrupt files moved aside, never deleted */
	static const char *const bad[] = { ID_TRUNC, ID_MAGIC, ID_FLIP,
					   ID_ZERO, ID_EMPTY, ID_OTHER,
					   "notes.txt" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (exists(f, "queue", bad[i]) ||
		    !exists(f, "corrupt", bad[i]))
			fail_msg("%s: got still queued, want in corrupt/",
				 bad[i]);
	}
	assert_true(exists(f, "queue", ".hidden"));

	/* a record after the cut reads back on the next recovery */
	assert_int_equal(spool_rcpt_update(f->s, ID_TORN, 1, &bounced), 0);
	for (size_t i = 0; i < f->ngot; i++)
		spool_envelope_free(&f->got[i]);
	f->ngot = 0;
	assert_int_equal(spool_recover(f->s, recover_cb, f), 1);
	assert_string_equal(f->got[0]->id, ID_OK);
	assert_false(exists(f, "queue", ID_TORN));
}

static void
test_recover_empty(void **state)
{
	struct fix *f = *state;

	assert_int_equal(spool_recover(f->s, recover_cb, f), 0);
	assert_int_equal(f->ngot, 0);
}

/* commit through the real path, stop, reopen, recover */
static void
test_commit_stop_recover(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m, *half;
	const char *err;
	struct spool_rcpt rc[2] = {
		{ .address = (char *)(uintptr_t)"a@example.org",
		  .dest = (char *)(uintptr_t)"a", .notify = 0x06 },
		{ .address = (char *)(uintptr_t)"b@example.org",
		  .orcpt = (char *)(uintptr_t)"rfc822;b@example.org",
		  .dest = (char *)(uintptr_t)"b",
		  .flags = SPOOL_RCPT_F_FORWARDED,
		  .status = (char *)(uintptr_t)"4.4.1",
		  .remote_mta = (char *)(uintptr_t)"mx.example[192.0.2.9]:25",
		  .last_try = 1700000100 },
	};
	struct spool_envelope env = {
		.mail_from = (char *)(uintptr_t)"",
		.helo = (char *)(uintptr_t)"h.example",
		.client_addr = (char *)(uintptr_t)"::1",
		.envid = (char *)(uintptr_t)"QQ314159",
		.ret = 1, .body = 2, .smtputf8 = true,
		.received_at = 1700000123,
		.size = 999,  /* ignored: the spool counts */
		.rcpts = rc, .nrcpts = 2, .held = true,
	};
	struct ut_commits r = { 0 };
	static const char body[] = "Received: from h.example\r\n"
				   "Subject: hi\r\n\r\nline\r\n.dot\r\n";

	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	char id[SPOOL_ID_LEN + 1];
	memcpy(id, spool_msg_id(m), sizeof(id));
	assert_int_equal(spool_msg_write(m, body, sizeof(body) - 1), 0);
	spool_msg_commit(&m, &env, ut_commit_cb, &r);
	/* a second message is still being received at the "crash" */
	assert_int_equal(spool_msg_new(f->s, &half, &err), 0);
	assert_int_equal(spool_msg_write(half, "Subj", 4), 0);
	/* its file in tmp/ (named apart from its id: files are reused) */
	char half_id[SPOOL_ID_LEN + 1];
	memcpy(half_id, half->tmpname, sizeof(half_id));
	for (int i = 0; i < 300 && r.calls == 0; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(r.ok, 1);
	/* drop the half message's memory but leave its tmp file */
	close(half->fd);
	half->fd = -1;
	buf_clear(&half->env);
	free(half->wbuf);
	free(half);
	spool_free(&f->s);
	assert_true(exists(f, "tmp", half_id));

	assert_int_equal(spool_open(f->spool, f->wq, &f->s, &err), 0);
	assert_int_equal(spool_recover(f->s, recover_cb, f), 1);
	/* the half message is no message: its file is only a place to
	 * reuse (reopened with a zero header, cut at the next commit) */
	bool kept = false;
	for (unsigned i = 0; i < f->s->nrecycled; i++)
		kept = kept || strcmp(f->s->recycled[i], half_id) == 0;
	assert_true(kept);
	struct spool_envelope *e = f->got[0];
	assert_string_equal(e->id, id);
	assert_string_equal(e->mail_from, "");
	assert_string_equal(e->helo, "h.example");
	assert_string_equal(e->client_addr, "::1");
	assert_string_equal(e->envid, "QQ314159");
	assert_int_equal(e->ret, 1);
	assert_int_equal(e->body, 2);
	assert_true(e->smtputf8);
	assert_int_equal(e->received_at, 1700000123);
	assert_int_equal(e->size, sizeof(body) - 1);
	assert_int_equal(e->nrcpts, 2);
	assert_string_equal(e->rcpts[0].address, "a@example.org");
	assert_null(e->rcpts[0].orcpt);
	assert_int_equal(e->rcpts[0].notify, 0x06);
	assert_string_equal(e->rcpts[1].orcpt, "rfc822;b@example.org");
	assert_string_equal(e->rcpts[1].dest, "b");
	assert_true(e->held);
	assert_int_equal(e->rcpts[1].flags, SPOOL_RCPT_F_FORWARDED);
	assert_string_equal(e->rcpts[1].status, "4.4.1");
	assert_string_equal(e->rcpts[1].remote_mta, "mx.example[192.0.2.9]:25");
	assert_int_equal(e->rcpts[1].last_try, 1700000100);
	assert_null(e->rcpts[0].status);
	assert_int_equal(e->rcpts[0].flags, 0);

	int fd;
	uint64_t off, len;
	char got[sizeof(body)];
	assert_int_equal(spool_body_open(f->s, id, &fd, &off, &len), 0);
	assert_int_equal(len, sizeof(body) - 1);
	assert_int_equal(pread(fd, got, len, (off_t)off), (ssize_t)len);
	assert_memory_equal(got, body, len);
	close(fd);
	/* written as version 2 */
	uint8_t raw[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	const char *why;
	assert_int_equal(spool_body_open(f->s, id, &fd, &off, &len), 0);
	assert_int_equal(pread(fd, raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
	close(fd);
	assert_int_equal(spool_hdr_decode(raw, &h, &why), 0);
	assert_int_equal(h.version, 2);

	/* release, and a record with every mutable field; recover again */
	struct spool_rcpt up = {
		.state = SPOOL_RCPT_DEFERRED, .next_try = 1700000500,
		.attempts = 2, .diag = (char *)(uintptr_t)"421 busy",
		.flags = SPOOL_RCPT_F_DELAY_SENT,
		.status = (char *)(uintptr_t)"4.3.2",
		.remote_mta = (char *)(uintptr_t)"mx2.example[192.0.2.10]:25",
		.last_try = 1700000400 };
	assert_int_equal(spool_msg_hold(f->s, id, false), 0);
	assert_int_equal(spool_rcpt_update(f->s, id, 1, &up), 0);
	spool_free(&f->s);
	assert_int_equal(spool_open(f->spool, f->wq, &f->s, &err), 0);
	assert_int_equal(spool_recover(f->s, recover_cb, f), 1);
	e = f->got[1];
	assert_false(e->held);
	const struct spool_rcpt *b = &e->rcpts[1];
	assert_int_equal(b->state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(b->next_try, 1700000500);
	assert_int_equal(b->attempts, 2);
	assert_string_equal(b->diag, "421 busy");
	assert_int_equal(b->flags, SPOOL_RCPT_F_DELAY_SENT);
	assert_string_equal(b->status, "4.3.2");
	assert_string_equal(b->remote_mta, "mx2.example[192.0.2.10]:25");
	assert_int_equal(b->last_try, 1700000400);
	assert_string_equal(b->orcpt, "rfc822;b@example.org");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_recover_crafted_tree,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_stop_recover,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

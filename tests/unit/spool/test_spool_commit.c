/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spool_commit.c and spool_sync.c against a real spool in
 * a temporary directory: commit and read back, group commit of many
 * messages, sticky write errors, abort, ids, recipient updates, removal
 * and the reuse of removed messages' files, fsync of many files, and the
 * lock.
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
	struct workq *wq;
	struct spool *s;
};

/* tmp/ files of messages, not counting the ones made ready ahead or
 * kept for reuse */
static size_t
count_tmp(struct fix *f)
{
	spool_drain(f->s);
	return ut_count_dir(f->dir, "spool/tmp") - f->s->nreserve -
	       f->s->nrecycled;
}

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *err = NULL;

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-spool-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->wq = workq_new(2);
	char sd[128];
	snprintf(sd, sizeof(sd), "%s/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &f->s, &err), 0);
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

/* runs done callbacks until *flag reaches want */
static void
drive(struct workq *wq, const int *flag, int want)
{
	for (int i = 0; i < 300 && *flag < want; i++) {
		struct pollfd pfd = { .fd = workq_fd(wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(wq);
	}
	assert_int_equal(*flag, want);
}

static void
fill_env(struct spool_envelope *e, struct spool_rcpt *rc, size_t n)
{
	memset(e, 0, sizeof(*e));
	memset(rc, 0, n * sizeof(*rc));
	e->mail_from = (char *)(uintptr_t)"from@example.org";
	e->helo = (char *)(uintptr_t)"client.example";
	e->client_addr = (char *)(uintptr_t)"192.0.2.1";
	e->received_at = 1700000000;
	e->rcpts = rc;
	e->nrcpts = n;
	for (size_t i = 0; i < n; i++) {
		rc[i].address = (char *)(uintptr_t)"user@example.org";
		rc[i].dest = (char *)(uintptr_t)"user";
	}
}

static uint8_t *
pattern(size_t n)
{
	uint8_t *p = xmalloc(n > 0 ? n : 1);

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131u + (i >> 7));
	return p;
}

static void
read_body(struct spool *s, const char *id, uint8_t **p_r, size_t *n_r)
{
	int fd;
	uint64_t off, len;

	assert_int_equal(spool_body_open(s, id, &fd, &off, &len), 0);
	uint8_t *p = xmalloc(len > 0 ? len : 1);
	assert_int_equal(pread(fd, p, len, (off_t)off), (ssize_t)len);
	close(fd);
	*p_r = p;
	*n_r = len;
}

struct keep {
	struct spool_envelope **v;
	size_t *n;
};

static void
recover_keep(void *arg, struct spool_envelope *env)
{
	struct keep *k = arg;

	if (*k->n < 2)
		k->v[(*k->n)++] = env;
	else
		spool_envelope_free(&env);
}

/* commit a body written in odd pieces, including ones past the buffer */
static void
test_commit_and_read(void **state)
{
	struct fix *f = *state;
	/* in memory: first buffer, grown; past SPOOL_MEM_MSG_MAX: in the
	 * file, header written last */
	static const size_t sizes[] = { 0, 1, SPOOL_WBUF_SIZE - 64,
					SPOOL_WBUF_SIZE, 200000,
					SPOOL_MEM_MSG_MAX,
					SPOOL_MEM_MSG_MAX + 1,
					SPOOL_MEM_MSG_MAX + 70000 };

	for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
		size_t n = sizes[t];
		uint8_t *body = pattern(n);
		struct spool_msg *m;
		const char *err;
		struct spool_envelope env;
		struct spool_rcpt rc[2];
		struct ut_commits r = { 0 };

		assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
		char id[SPOOL_ID_LEN + 1];
		memcpy(id, spool_msg_id(m), sizeof(id));
		assert_true(spool_id_valid(id));
		size_t off = 0, step = 1;
		while (off < n) {
			size_t k = n - off < step ? n - off : step;
			assert_int_equal(spool_msg_write(m, body + off, k), 0);
			off += k;
			step = step * 3 + 7;  /* 1, 10, 37, ... 70000+ */
		}
		assert_int_equal(spool_msg_size(m), n);
		fill_env(&env, rc, 2);
		spool_msg_commit(&m, &env, ut_commit_cb, &r);
		assert_null(m);
		assert_int_equal(spool_commits_pending(f->s), 1);
		drive(f->wq, &r.calls, 1);
		assert_int_equal(r.ok, 1);
		assert_int_equal(spool_commits_pending(f->s), 0);
		assert_int_equal(count_tmp(f), 0);

		uint8_t *got;
		size_t gn;
		read_body(f->s, id, &got, &gn);
		assert_int_equal(gn, n);
		assert_memory_equal(got, body, n);
		free(got);
		free(body);
		assert_int_equal(spool_remove(f->s, id), 0);
	}
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 0);
}

struct many {
	int calls, ok;
	int pending_seen_max;
	struct spool *s;
};

static void
many_cb(void *arg, int result)
{
	struct many *mm = arg;

	mm->calls++;
	if (result == 0)
		mm->ok++;
}

static void
test_group_commit_many(void **state)
{
	struct fix *f = *state;
	enum { N = 300 };
	struct many mm = { .s = f->s };
	struct spool_envelope env;
	struct spool_rcpt rc[1];
	char ids[N][SPOOL_ID_LEN + 1];

	fill_env(&env, rc, 1);
	for (int i = 0; i < N; i++) {
		struct spool_msg *m;
		const char *err;
		char body[64];
		int len = snprintf(body, sizeof(body), "Subject: %d\r\n\r\n"
				   "body %d\r\n", i, i);
		assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
		memcpy(ids[i], spool_msg_id(m), SPOOL_ID_LEN + 1);
		assert_int_equal(spool_msg_write(m, body, (size_t)len), 0);
		spool_msg_commit(&m, &env, many_cb, &mm);
	}
	/* one batch in flight, the rest queued for the next one */
	assert_int_equal(spool_commits_pending(f->s), N);
	drive(f->wq, &mm.calls, N);
	assert_int_equal(mm.ok, N);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), N);
	assert_int_equal(count_tmp(f), 0);
	for (int i = 0; i < N; i++) {
		uint8_t *got;
		size_t gn;
		char want[64];
		int len = snprintf(want, sizeof(want), "Subject: %d\r\n\r\n"
				   "body %d\r\n", i, i);
		read_body(f->s, ids[i], &got, &gn);
		assert_int_equal(gn, (size_t)len);
		assert_memory_equal(got, want, gn);
		free(got);
	}
}

/* a commit that arrives from inside a callback joins the next batch */
struct chain {
	struct spool *s;
	struct spool_envelope *env;
	int calls, ok, left;
};

static void
chain_cb(void *arg, int result)
{
	struct chain *c = arg;
	struct spool_msg *m;
	const char *err;

	c->calls++;
	if (result == 0)
		c->ok++;
	if (c->left-- > 0) {
		assert_int_equal(spool_msg_new(c->s, &m, &err), 0);
		assert_int_equal(spool_msg_write(m, "x\r\n", 3), 0);
		spool_msg_commit(&m, c->env, chain_cb, c);
	}
}

static void
test_commit_from_callback(void **state)
{
	struct fix *f = *state;
	struct spool_envelope env;
	struct spool_rcpt rc[1];
	struct chain c = { .s = f->s, .env = &env, .left = 5 };

	fill_env(&env, rc, 1);
	chain_cb(&c, 0);
	c.calls = c.ok = 0;
	/* the first commit plus four made from callbacks */
	drive(f->wq, &c.calls, 5);
	assert_int_equal(c.ok, 5);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 5);
}

static void
test_write_error_is_sticky(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m, *good;
	const char *err;
	struct spool_envelope env;
	struct spool_rcpt rc[1];
	struct ut_commits r = { 0 }, rg = { 0 };

	fill_env(&env, rc, 1);
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	assert_int_equal(spool_msg_new(f->s, &good, &err), 0);
	/* make the tmp fd unwritable behind the spool's back */
	int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(ro >= 0);
	assert_int_equal(dup2(ro, m->fd), m->fd);
	close(ro);
	/* larger than a body kept in memory: it goes to the file */
	size_t nbig = SPOOL_MEM_MSG_MAX + 1000;
	uint8_t *big = pattern(nbig);
	assert_int_equal(spool_msg_write(m, big, nbig), -1);
	assert_int_equal(spool_msg_write(m, "x", 1), -1);  /* sticky */
	free(big);
	assert_int_equal(spool_msg_write(good, "ok\r\n", 4), 0);
	spool_msg_commit(&m, &env, ut_commit_cb, &r);
	spool_msg_commit(&good, &env, ut_commit_cb, &rg);
	drive(f->wq, &r.calls, 1);
	drive(f->wq, &rg.calls, 1);
	assert_int_equal(r.failed, 1);
	assert_int_equal(rg.ok, 1);  /* the other message is unaffected */
	assert_int_equal(count_tmp(f), 0);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 1);
}

static void
test_abort(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m;
	const char *err;

	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	assert_int_equal(spool_msg_write(m, "partial", 7), 0);
	assert_int_equal(count_tmp(f), 1);
	spool_msg_abort(&m);
	assert_null(m);
	spool_msg_abort(&m);  /* NULL-safe */
	assert_int_equal(count_tmp(f), 0);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_ids_unique(void **state)
{
	struct fix *f = *state;
	enum { N = 2000 };
	char (*ids)[SPOOL_ID_LEN + 1] = xcalloc(N, sizeof(*ids));

	for (int i = 0; i < N; i++) {
		struct spool_msg *m;
		const char *err;
		assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
		memcpy(ids[i], spool_msg_id(m), SPOOL_ID_LEN + 1);
		assert_true(spool_id_valid(ids[i]));
		spool_msg_abort(&m);
		if (i % 7 == 0)  /* let the reserve refill now and then */
			(void)workq_complete(f->wq);
	}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

/* files made ready by a worker are used first, in order; ids are fresh
 * and increasing whatever the file */
static void
test_reserve(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m[3];
	const char *err;
	char prev[SPOOL_ID_LEN + 1] = "";

	assert_int_equal(spool_msg_new(f->s, &m[0], &err), 0);
	assert_true(f->s->refilling);
	/* refills chain until the reserve is full */
	for (int i = 0; i < 300 && f->s->nreserve < SPOOL_RESERVE; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(f->s->nreserve, SPOOL_RESERVE);
	assert_false(f->s->refilling);
	assert_int_equal(ut_count_dir(f->dir, "spool/tmp"), SPOOL_RESERVE + 1);
	memcpy(prev, spool_msg_id(m[0]), sizeof(prev));
	for (int i = 1; i < 3; i++) {
		char want[SPOOL_ID_LEN + 1];
		int want_fd = f->s->reserve[0].fd;
		memcpy(want, f->s->reserve[0].name, sizeof(want));
		assert_int_equal(spool_msg_new(f->s, &m[i], &err), 0);
		assert_string_equal(m[i]->tmpname, want);
		assert_int_equal(m[i]->fd, want_fd);
		assert_true(strcmp(prev, spool_msg_id(m[i])) < 0);
		memcpy(prev, spool_msg_id(m[i]), sizeof(prev));
	}
	for (int i = 0; i < 3; i++)
		spool_msg_abort(&m[i]);
	/* a stop leaves the files in tmp/; the next start keeps them for
	 * reuse and queues none of them */
	size_t files = ut_count_dir(f->dir, "spool/tmp");
	assert_int_equal(files, SPOOL_RESERVE + 1);
	spool_free(&f->s);
	assert_int_equal(ut_count_dir(f->dir, "spool/tmp"), files);
	char sd[128];
	snprintf(sd, sizeof(sd), "%s/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &f->s, &err), 0);
	struct spool_envelope *none[2];
	size_t nnone = 0;
	assert_int_equal(spool_recover(f->s, recover_keep, &(struct keep){
				       none, &nnone }), 0);
	assert_int_equal(f->s->nrecycled, files);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 0);
}

static void
test_rcpt_update_and_remove(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m;
	const char *err;
	struct spool_envelope env;
	struct spool_rcpt rc[3];
	struct ut_commits r = { 0 };

	fill_env(&env, rc, 3);
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	char id[SPOOL_ID_LEN + 1];
	memcpy(id, spool_msg_id(m), sizeof(id));
	spool_msg_commit(&m, &env, ut_commit_cb, &r);
	drive(f->wq, &r.calls, 1);

	struct spool_rcpt up = { .state = SPOOL_RCPT_DEFERRED, .attempts = 1,
				 .next_try = 1700000060, .diag = "452 full" };
	assert_int_equal(spool_rcpt_update(f->s, id, 1, &up), 0);
	size_t idx[2] = { 0, 2 };
	struct spool_rcpt ups[2] = {
		{ .state = SPOOL_RCPT_DELIVERED, .attempts = 1 },
		{ .state = SPOOL_RCPT_BOUNCED, .attempts = 1, .diag = "no" },
	};
	assert_int_equal(spool_rcpt_update_n(f->s, id, idx, ups, 2), 0);
	assert_int_equal(spool_rcpt_update(f->s, "bad/id", 0, &up), -1);
	assert_int_equal(spool_rcpt_update(f->s, "00000000000000000000", 0,
					   &up), -1);
	assert_int_equal(errno, ENOENT);
	/* the records sit after the envelope and keep the body intact */
	uint8_t *got;
	size_t gn;
	read_body(f->s, id, &got, &gn);
	assert_int_equal(gn, 0);
	free(got);
	assert_int_equal(spool_remove(f->s, id), 0);
	assert_int_equal(spool_remove(f->s, id), -1);
	int fd;
	uint64_t o, l;
	assert_int_equal(spool_body_open(f->s, id, &fd, &o, &l), -1);
	assert_int_equal(spool_body_open(f->s, "../../etc/passwd", &fd, &o,
					 &l), -1);
}

/*
 * Aborting a message whose bytes are all still in memory hands its file
 * back to the reserve, untouched: the next message takes it with no
 * system call. Fails when the abort closes or recycles it instead.
 */
static void
test_abort_unwritten_returns_to_reserve(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m;
	const char *err;
	const void *p;
	size_t n;

	spool_drain(f->s);
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	spool_drain(f->s);  /* no refill in flight from here on */
	unsigned before = f->s->nreserve;
	char name[SPOOL_ID_LEN + 1];
	memcpy(name, m->tmpname, sizeof(name));
	int fd = m->fd;
	assert_int_equal(spool_msg_write(m, "partial", 7), 0);
	assert_true(spool_msg_body(m, &p, &n));
	assert_int_equal(n, 7);
	assert_memory_equal(p, "partial", 7);
	spool_msg_abort(&m);
	assert_int_equal(f->s->nreserve, before + 1);
	assert_string_equal(f->s->reserve[0].name, name);
	assert_int_equal(f->s->reserve[0].fd, fd);
	assert_int_equal(f->s->nrecycled, 0);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 0);
	/* the next message takes it, and it was never written */
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	assert_string_equal(m->tmpname, name);
	assert_int_equal(ut_file_size(f->dir, "spool/tmp", name), 0);
	spool_msg_abort(&m);
}

/*
 * A message that outgrew its buffer has written its file: it is no
 * message's file any more, and goes to the recycled names, not the
 * reserve. Its body is no longer in memory.
 */
static void
test_abort_written_recycles(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m;
	const char *err;
	const void *p;
	size_t n;

	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	char name[SPOOL_ID_LEN + 1];
	memcpy(name, m->tmpname, sizeof(name));
	size_t big = SPOOL_MEM_MSG_MAX + 100;
	char *body = xmalloc(big);
	memset(body, 'x', big);
	assert_int_equal(spool_msg_write(m, body, big), 0);
	free(body);
	assert_false(spool_msg_body(m, &p, &n));
	spool_drain(f->s);  /* the reserve is full: no refill takes it */
	spool_msg_abort(&m);
	assert_int_equal(f->s->nrecycled, 1);
	assert_string_equal(f->s->recycled[0], name);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 0);
}

/*
 * A body stays whole in memory up to SPOOL_MEM_MSG_MAX, and buffers grow
 * past their first SPOOL_WBUF_SIZE only while all of them together stay
 * under SPOOL_MEM_BUDGET: past either bound a body goes to its file
 * (spool_msg_body says no). Fails when a buffer grows past a
 * bound or stops growing short of it.
 */
static void
test_body_in_memory_bounds(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m[80];
	const char *err;
	const void *p;
	size_t n, chunk = 64u << 10, in_mem = 0, on_disk = 0;
	char *data = xmalloc(chunk);

	memset(data, 'y', chunk);
	/* the largest body kept in memory, and one octet more */
	assert_int_equal(spool_msg_new(f->s, &m[0], &err), 0);
	for (size_t i = 0; i < SPOOL_MEM_MSG_MAX / chunk; i++)
		assert_int_equal(spool_msg_write(m[0], data, chunk), 0);
	assert_true(spool_msg_body(m[0], &p, &n));
	assert_int_equal(n, SPOOL_MEM_MSG_MAX);
	assert_int_equal(spool_msg_write(m[0], "z", 1), 0);
	assert_false(spool_msg_body(m[0], &p, &n));
	spool_msg_abort(&m[0]);
	assert_int_equal(f->s->mem_held, 0);

	/* bodies of 1 MiB each until the budget is spent */
	for (size_t k = 0; k < 80; k++) {
		assert_int_equal(spool_msg_new(f->s, &m[k], &err), 0);
		for (size_t i = 0; i < SPOOL_MEM_MSG_MAX / chunk; i++)
			assert_int_equal(spool_msg_write(m[k], data, chunk), 0);
		/* only first buffers are made past the budget */
		assert_true(f->s->mem_held <= SPOOL_MEM_BUDGET +
					      (k + 1) * SPOOL_WBUF_SIZE);
		if (spool_msg_body(m[k], &p, &n))
			in_mem++;
		else
			on_disk++;
	}
	assert_true(in_mem >= SPOOL_MEM_BUDGET / (SPOOL_MEM_MSG_MAX +
						   SPOOL_HDR_SIZE) - 2);
	assert_true(on_disk >= 80 - SPOOL_MEM_BUDGET / SPOOL_MEM_MSG_MAX);
	for (size_t k = 0; k < 80; k++)
		spool_msg_abort(&m[k]);
	assert_int_equal(f->s->mem_held, 0);
	free(data);
}

static void
commit_one(struct fix *f, struct spool_msg **mp, const void *body, size_t n,
	   struct spool_envelope *env)
{
	struct ut_commits r = { 0 };

	assert_int_equal(spool_msg_write(*mp, body, n), 0);
	spool_msg_commit(mp, env, ut_commit_cb, &r);
	drive(f->wq, &r.calls, 1);
	assert_int_equal(r.ok, 1);
}

/*
 * The file of a removed message is reused: its header is zero until the
 * new commit, and the new message is cut to its own length, so no state
 * record of the old one survives into it (recovery would apply it).
 */
static void
test_recycle_reuse(void **state)
{
	struct fix *f = *state;
	struct spool_envelope env;
	struct spool_rcpt rc[2];
	struct spool_msg *m, *held[SPOOL_RESERVE * 2];
	size_t nheld = 0;
	const char *err;

	fill_env(&env, rc, 2);
	/* a long message with a state record */
	uint8_t *big = pattern(20000);
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	char old[SPOOL_ID_LEN + 1];
	memcpy(old, spool_msg_id(m), sizeof(old));
	commit_one(f, &m, big, 20000, &env);
	free(big);
	struct spool_rcpt up = { .state = SPOOL_RCPT_BOUNCED, .attempts = 1,
				 .diag = "550 no" };
	assert_int_equal(spool_rcpt_update(f->s, old, 1, &up), 0);
	uint64_t old_size = ut_file_size(f->dir, "spool/queue", old);
	assert_true(old_size > 20000);

	/* removal moves it to tmp/ under its old id, kept for reuse (no
	 * refill is running to take it at once) */
	spool_drain(f->s);
	const char *ids[3] = { old, "00000000000000000000", "bad/id" };
	int errs[3];
	assert_int_equal(spool_remove_n(f->s, ids, 3, errs), -1);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], ENOENT);
	assert_int_equal(errs[2], EINVAL);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 0);
	assert_int_equal(ut_file_size(f->dir, "spool/tmp", old), old_size);
	assert_int_equal(f->s->nrecycled, 1);

	/* take ready files until the recycled one comes up */
	m = NULL;
	while (nheld < sizeof(held) / sizeof(held[0])) {
		struct spool_msg *t;
		assert_int_equal(spool_msg_new(f->s, &t, &err), 0);
		assert_string_not_equal(spool_msg_id(t), old);
		if (strcmp(t->tmpname, old) == 0) {
			m = t;
			break;
		}
		held[nheld++] = t;
		spool_drain(f->s);
	}
	assert_non_null(m);
	assert_int_equal(m->old_size, old_size);
	/* reopened with a zero header */
	char p[256];
	uint8_t hdr[SPOOL_HDR_SIZE], zero[SPOOL_HDR_SIZE] = { 0 };
	snprintf(p, sizeof(p), "%s/spool/tmp/%s", f->dir, old);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	close(fd);
	assert_memory_equal(hdr, zero, sizeof(hdr));

	char id[SPOOL_ID_LEN + 1];
	memcpy(id, spool_msg_id(m), sizeof(id));
	commit_one(f, &m, "short\r\n", 7, &env);
	assert_int_equal(ut_file_size(f->dir, "spool/tmp", old), UINT64_MAX);
	uint64_t got_size = ut_file_size(f->dir, "spool/queue", id);
	assert_true(got_size < 1000);
	uint8_t *got;
	size_t gn;
	read_body(f->s, id, &got, &gn);
	assert_int_equal(gn, 7);
	assert_memory_equal(got, "short\r\n", 7);
	free(got);
	for (size_t i = 0; i < nheld; i++)
		spool_msg_abort(&held[i]);

	/* what a restart sees: the new message, no state of the old one */
	spool_free(&f->s);
	char sd[128];
	snprintf(sd, sizeof(sd), "%s/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &f->s, &err), 0);
	struct spool_envelope *rec[2] = { NULL, NULL };
	size_t nrec = 0;
	assert_int_equal(spool_recover(f->s, recover_keep, &(struct keep){
				       rec, &nrec }), 1);
	assert_string_equal(rec[0]->id, id);
	assert_int_equal(rec[0]->rcpts[1].state, SPOOL_RCPT_PENDING);
	assert_int_equal(rec[0]->rcpts[1].attempts, 0);
	assert_int_equal(rec[0]->size, 7);
	spool_envelope_free(&rec[0]);
	assert_int_equal(ut_count_dir(f->dir, "spool/corrupt"), 0);
}

/* n files under the fixture's directory, each holding its own path */
static void
open_written(const struct fix *f, const char *prefix, int *fds, int n)
{
	char p[256];

	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s%d", f->dir, prefix, i);
		fds[i] = open(p, O_RDWR | O_CREAT, 0600);
		assert_true(fds[i] >= 0);
		assert_int_equal(write(fds[i], p, strlen(p)),
				 (ssize_t)strlen(p));
	}
}

static void
test_fsync_n(void **state)
{
	struct fix *f = *state;
	enum { N = 150 };  /* more than one AIO chunk */
	int fds[N], errs[N];

	open_written(f, "f", fds, N);
	for (int datasync = 0; datasync < 2; datasync++) {
		memset(errs, 0xff, sizeof(errs));
		assert_int_equal(spool_fsync_n(fds, N, datasync, errs), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(errs[i], 0);
		assert_int_equal(spool_fsync_n(fds, 1, datasync, errs), 0);
		assert_int_equal(spool_fsync_n(fds, 0, datasync, errs), 0);
	}
	/* a bad descriptor fails alone */
	int bad = fds[7];
	close(bad);
	fds[7] = -1;
	assert_int_equal(spool_fsync_n(fds, N, true, errs), -1);
	for (int i = 0; i < N; i++)
		assert_int_equal(errs[i], i == 7 ? EBADF : 0);
	for (int i = 0; i < N; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

/* a batch synced by file system: every file reported, and a file that
 * cannot be looked at sends the batch down the fsync path, where it
 * fails alone */
static void
test_sync_batch(void **state)
{
	struct fix *f = *state;
	enum { N = 40 };
	int fds[N], errs[N];

	open_written(f, "b", fds, N);
	for (int by_fs = 0; by_fs < 2; by_fs++) {
		memset(errs, 0xff, sizeof(errs));
		assert_int_equal(spool_sync_batch(fds, N, true, by_fs, errs),
				 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(errs[i], 0);
		memset(errs, 0xff, sizeof(errs));
		assert_int_equal(spool_sync_batch(fds, 1, false, by_fs, errs),
				 0);
		assert_int_equal(errs[0], 0);
		assert_int_equal(spool_sync_batch(fds, 0, false, by_fs, errs),
				 0);
	}
	int bad = fds[3];
	close(bad);
	fds[3] = -1;
	assert_int_equal(spool_sync_batch(fds, N, false, true, errs), -1);
	for (int i = 0; i < N; i++)
		assert_int_equal(errs[i], i == 3 ? EBADF : 0);
	for (int i = 0; i < N; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	/* one file is never worth a syncfs */
	assert_false(spool_sync_by_fs(0));
	assert_false(spool_sync_by_fs(1));
}

static void
test_meminfo_unwritten(void **state)
{
	(void)state;
	static const char ok[] =
		"MemTotal:       24554496 kB\n"
		"Dirty:              1234 kB\n"
		"Writeback:            16 kB\n"
		"WritebackTmp:     999999 kB\n";
	assert_int_equal(spool_meminfo_unwritten(ok, strlen(ok)), 1250);
	/* WritebackTmp: is not Writeback: */
	static const char tmp_only[] =
		"Dirty: 5 kB\nWritebackTmp: 7 kB\n";
	assert_int_equal(spool_meminfo_unwritten(tmp_only,
						 strlen(tmp_only)), -1);
	static const char no_dirty[] = "Writeback: 3 kB\n";
	assert_int_equal(spool_meminfo_unwritten(no_dirty,
						 strlen(no_dirty)), -1);
	static const char junk[] = "Dirty: x kB\nWriteback: 3 kB\n";
	assert_int_equal(spool_meminfo_unwritten(junk, strlen(junk)), -1);
	static const char huge[] =
		"Dirty: 99999999999999999999999 kB\nWriteback: 0 kB\n";
	assert_int_equal(spool_meminfo_unwritten(huge, strlen(huge)), -1);
	/* the text may end without a newline, and be cut anywhere */
	static const char cut[] = "Writeback: 2 kB\nDirty: 40";
	assert_int_equal(spool_meminfo_unwritten(cut, strlen(cut)), 42);
	assert_int_equal(spool_meminfo_unwritten(cut, 8), -1);
	assert_int_equal(spool_meminfo_unwritten("", 0), -1);
}

static void
test_second_open_refused(void **state)
{
	struct fix *f = *state;
	struct spool *s2 = NULL;
	const char *err = NULL;
	char sd[128];

	snprintf(sd, sizeof(sd), "%s/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &s2, &err), -1);
	assert_null(s2);
	assert_non_null(err);
}

static void
test_open_creates_parents(void **state)
{
	struct fix *f = *state;
	struct spool *s2 = NULL;
	const char *err = NULL;
	char sd[160];
	struct stat st;

	snprintf(sd, sizeof(sd), "%s/a/b/c/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &s2, &err), 0);
	snprintf(sd, sizeof(sd), "%s/a/b/c/spool/queue", f->dir);
	assert_int_equal(stat(sd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	spool_free(&s2);
	assert_null(s2);
	/* a path under a regular file cannot be a spool */
	snprintf(sd, sizeof(sd), "%s/file", f->dir);
	int fd = open(sd, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(sd, sizeof(sd), "%s/file/spool", f->dir);
	assert_int_equal(spool_open(sd, f->wq, &s2, &err), -1);
}

/* spool_free waits for a batch still in flight */
static void
test_free_waits(void **state)
{
	struct fix *f = *state;
	struct spool_msg *m;
	const char *err;
	struct spool_envelope env;
	struct spool_rcpt rc[1];
	struct ut_commits r = { 0 };

	fill_env(&env, rc, 1);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
		spool_msg_commit(&m, &env, ut_commit_cb, &r);
	}
	spool_free(&f->s);
	assert_int_equal(r.ok, 20);
	assert_int_equal(ut_count_dir(f->dir, "spool/queue"), 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_and_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_commit_many, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commit_from_callback,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_error_is_sticky,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_unique, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_update_and_remove,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_abort_unwritten_returns_to_reserve, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_abort_written_recycles,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_in_memory_bounds,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recycle_reuse, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fsync_n, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_batch, setup,
						teardown),
		cmocka_unit_test(test_meminfo_unwritten),
		cmocka_unit_test_setup_teardown(test_second_open_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_creates_parents,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_waits, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

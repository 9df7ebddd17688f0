/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for deliver_queue.c end to end: a real spool and worker pool
 * in a temporary directory, a config built by hand, messages committed
 * through the spool and delivered into real Maildirs, in batches; which
 * outcomes are recorded, and restarts at the moments that matter.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/deliver_int.h"
#include "smtp/smtp.h"
#include "unit_fs.h"

#define HOST "mx.test"

struct fix {
	char dir[64];
	char spooldir[128];
	char md[4][128];
	struct conf_user users[4];
	struct tern_conf conf;
	struct workq *wq;
	struct spool *s;
	struct deliverq *q;
};

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));
	const char *err;
	static const char *const names[] = { "alice", "bob", "ally", "dave" };

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-deliver-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->spooldir, sizeof(f->spooldir), "%s/spool", f->dir);
	snprintf(f->md[0], sizeof(f->md[0]), "%s/mail/alice/Maildir", f->dir);
	snprintf(f->md[1], sizeof(f->md[1]), "%s/mail/bob/Maildir", f->dir);
	/* ally shares alice's Maildir */
	snprintf(f->md[2], sizeof(f->md[2]), "%s/mail/alice/Maildir", f->dir);
	snprintf(f->md[3], sizeof(f->md[3]), "%s/mail/dave", f->dir);
	for (size_t i = 0; i < 4; i++) {
		f->users[i].name = (char *)(uintptr_t)names[i];
		f->users[i].maildir = f->md[i];
	}
	f->conf.hostname = (char *)(uintptr_t)HOST;
	f->conf.users = f->users;
	f->conf.nusers = 4;
	f->conf.delivery_workers = 2;
	f->wq = workq_new(2);
	assert_int_equal(spool_open(f->spooldir, f->wq, &f->s, &err), 0);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	deliverq_free(&f->q);
	spool_free(&f->s);
	workq_free(&f->wq);
	ut_rm_rf(f->dir);
	free(f);
	return 0;
}

static void
drive_until_count(struct fix *f, unsigned want)
{
	for (int i = 0; i < 300 && (deliverq_count(f->q) != want ||
				    f->q->running > 0); i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(f->q->running, 0);
	assert_int_equal(deliverq_count(f->q), want);
}

/*
 * Commits a message to the given users (dests; "@relay" makes a relay
 * recipient) and returns an owned copy of its envelope as the server
 * would hand it to the runner.
 */
static struct spool_envelope *
commit(struct fix *f, const char *body, const char *const *dests, size_t n,
       int64_t received_at)
{
	struct spool_rcpt rc[8];
	char addrs[8][64];
	struct spool_envelope env = {
		.mail_from = (char *)(uintptr_t)"sender@example.org",
		.helo = (char *)(uintptr_t)"client.example",
		.client_addr = (char *)(uintptr_t)"192.0.2.9",
		.received_at = received_at,
		.rcpts = rc, .nrcpts = n,
	};
	struct spool_msg *m;
	const char *err;
	struct ut_commits r = { 0 };

	assert_true(n <= 8);
	memset(rc, 0, sizeof(rc));
	for (size_t i = 0; i < n; i++) {
		bool relay = strcmp(dests[i], "@relay") == 0;
		snprintf(addrs[i], sizeof(addrs[i]), "%s@example.org",
			 relay ? "far" : dests[i]);
		rc[i].address = addrs[i];
		rc[i].dest = (char *)(uintptr_t)(relay ? "far@example.net" :
						 dests[i]);
		rc[i].agent = relay ? SPOOL_AGENT_RELAY : SPOOL_AGENT_LOCAL;
	}
	assert_int_equal(spool_msg_new(f->s, &m, &err), 0);
	struct spool_envelope *out = spool_envelope_dup(&env);
	memcpy(out->id, spool_msg_id(m), sizeof(out->id));
	assert_int_equal(spool_msg_write(m, body, strlen(body)), 0);
	out->size = strlen(body);
	spool_msg_commit(&m, &env, ut_commit_cb, &r);
	for (int i = 0; i < 300 && r.calls == 0; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(r.ok, 1);
	return out;
}

static const char body[] = "Received: from client.example\r\n"
			   "Subject: t\r\n\r\nhello\r\n";

static void
check_one_message(const char *md, const char *want_name)
{
	char p[512], name[256];
	size_t n = ut_count_dir(md, "new");

	if (n != 1)
		fail_msg("%s/new: got %zu messages, want 1", md, n);
	snprintf(name, sizeof(name), "%s", want_name);
	snprintf(p, sizeof(p), "%s/new/%s", md, name);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		fail_msg("got no %s", p);
	char got[512];
	ssize_t r = read(fd, got, sizeof(got));
	close(fd);
	static const char rp[] = "Return-Path: <sender@example.org>\r\n";
	assert_int_equal(r, (ssize_t)(sizeof(rp) - 1 + sizeof(body) - 1));
	assert_memory_equal(got, rp, sizeof(rp) - 1);
	assert_memory_equal(got + sizeof(rp) - 1, body, sizeof(body) - 1);
}

static char *
md_name(const struct spool_envelope *env, size_t idx)
{
	char *u = deliver_unique(env, idx);
	char *n = xasprintf("%s.%s", u, HOST);
	free(u);
	return n;
}


/* ---- delivery status notifications ----------------------------------- */

struct find_report {
	const struct spool_envelope *env;
	unsigned n;
};

static void
find_report_fn(void *arg, const struct spool_envelope *env, bool busy,
	       int64_t due)
{
	struct find_report *fr = arg;

	(void)busy;
	(void)due;
	if (env->dsn_kind != SPOOL_DSN_NONE) {
		fr->env = env;
		fr->n++;
	}
}

/*
 * The one report the runner queued: from <> to the sender (a relay
 * recipient here: example.org is no local domain of the fixture),
 * saying that rcpt failed with status; its text is in the spool.
 */
static void
expect_report(struct fix *f, const char *rcpt, const char *status)
{
	struct find_report fr = { 0 };
	int fd;
	uint64_t off, len;
	char want[256];

	deliverq_each(f->q, find_report_fn, &fr);
	assert_int_equal(fr.n, 1);
	const struct spool_envelope *rep = fr.env;
	assert_int_equal(rep->dsn_kind, SPOOL_DSN_REPORT);
	assert_string_equal(rep->mail_from, "");
	assert_int_equal(rep->nrcpts, 1);
	assert_string_equal(rep->rcpts[0].dest, "sender@example.org");
	assert_int_equal(rep->rcpts[0].agent, SPOOL_AGENT_RELAY);
	assert_int_equal(rep->rcpts[0].notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(spool_body_open(f->s, rep->id, &fd, &off, &len), 0);
	char *text = xcalloc(1, (size_t)len + 1);
	assert_int_equal(io_pread_all(fd, text, (size_t)len, (off_t)off), 0);
	close(fd);
	snprintf(want, sizeof(want), "Final-Recipient: rfc822; %s\r\n", rcpt);
	if (strstr(text, want) == NULL)
		fail_msg("report lacks \"%s\":\n%s", want, text);
	snprintf(want, sizeof(want), "Status: %s\r\n", status);
	if (strstr(text, want) == NULL)
		fail_msg("report lacks \"%s\":\n%s", want, text);
	assert_non_null(strstr(text, "Action: failed\r\n"));
	assert_non_null(strstr(text, "To: <sender@example.org>\r\n"));
	free(text);
}

static void
test_end_to_end(void **state)
{
	struct fix *f = *state;
	/* ally and Alice share alice's Maildir; carol is not a user */
	static const char *const dests[] = { "alice", "bob", "ally", "carol",
					     "Alice" };
	int64_t t = now_s();
	struct spool_envelope *env = commit(f, body, dests, 5, t);
	char *a = md_name(env, 0), *b = md_name(env, 1);

	deliverq_add(f->q, env, t);
	/* what stays is the report about carol */
	drive_until_count(f, 1);
	check_one_message(f->md[0], a);
	check_one_message(f->md[1], b);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);
	expect_report(f, "carol@example.org", "5.1.1");
	free(a);
	free(b);
}

/* dave's Maildir path is a regular file until the admin fixes it */
static void
block_dave(struct fix *f)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/mail", f->dir);
	assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
	int fd = open(f->md[3], O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static struct spool_envelope *
held_env(struct fix *f)
{
	assert_int_equal(f->q->nheap, 1);
	return f->q->heap[0]->env;
}

static void
test_tempfail_then_retry(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "dave", "bob" };
	int64_t t = now_s();

	block_dave(f);
	struct spool_envelope *env = commit(f, body, dests, 2, t);
	char id[SPOOL_ID_LEN + 1];
	memcpy(id, env->id, sizeof(id));
	deliverq_add(f->q, env, t);
	drive_until_count(f, 1);
	env = held_env(f);
	assert_int_equal(env->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(env->rcpts[0].next_try, t + CONF_RETRY_MIN_DEFAULT);
	assert_int_equal(env->rcpts[0].attempts, 1);
	assert_non_null(env->rcpts[0].diag);
	assert_int_equal(env->rcpts[1].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 1);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);

	/* not due yet: nothing runs */
	deliverq_tick(f->q, t + 299);
	assert_int_equal(f->q->running, 0);
	deliverq_tick(f->q, t + 300);
	drive_until_count(f, 1);
	env = held_env(f);
	assert_int_equal(env->rcpts[0].attempts, 2);
	/* the wait doubles (sched_backoff) */
	assert_int_equal(env->rcpts[0].next_try, t + 300 + 600);

	assert_int_equal(unlink(f->md[3]), 0);
	deliverq_tick(f->q, t + 900);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[3], "new"), 1);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 1);  /* not again */
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
}

struct cb {
	struct spool_envelope **v;
	size_t *n;
};

static void
cb_fn(void *arg, struct spool_envelope *e)
{
	struct cb *c = arg;

	c->v[(*c->n)++] = e;
}

static void
test_durable_states(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "dave", "bob", "carol" };
	int64_t t = now_s();
	block_dave(f);
	struct spool_envelope *env = commit(f, body, dests, 3, t);

	deliverq_add(f->q, env, t);
	/* dave's message waits, and so does the report about carol */
	drive_until_count(f, 2);
	expect_report(f, "carol@example.org", "5.1.1");
	/* what a restart would see */
	deliverq_free(&f->q);
	spool_free(&f->s);
	const char *err;
	assert_int_equal(spool_open(f->spooldir, f->wq, &f->s, &err), 0);
	struct spool_envelope *got[2];
	size_t ngot = 0;
	struct cb c = { got, &ngot };
	assert_int_equal(spool_recover(f->s, cb_fn, &c), 2);
	if (got[0]->dsn_kind != SPOOL_DSN_NONE) {
		struct spool_envelope *x = got[0];
		got[0] = got[1];
		got[1] = x;
	}
	assert_int_equal(got[1]->dsn_kind, SPOOL_DSN_REPORT);
	spool_envelope_free(&got[1]);
	env = got[0];
	/* the report about carol is recorded: a restart sends no second */
	assert_true((env->rcpts[2].flags & SPOOL_RCPT_F_DSN_DONE) != 0);
	assert_int_equal(env->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(env->rcpts[0].next_try, t + CONF_RETRY_MIN_DEFAULT);
	assert_int_equal(env->rcpts[1].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(env->rcpts[2].state, SPOOL_RCPT_BOUNCED);
	assert_string_equal(env->rcpts[2].diag, "user unknown");
	/* the runner picks it up after the restart and finishes it */
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	assert_int_equal(unlink(f->md[3]), 0);
	deliverq_add(f->q, env, t + CONF_RETRY_MIN_DEFAULT);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 1);
	assert_int_equal(ut_count_dir(f->md[3], "new"), 1);
	/* only the report is left (it was not handed to this runner) */
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);
}

static void
test_expiry_bounces(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "dave" };
	int64_t t = now_s();
	block_dave(f);
	struct spool_envelope *env = commit(f, body, dests, 1,
					    t - CONF_QUEUE_LIFETIME_DEFAULT - 10);

	deliverq_add(f->q, env, t);
	drive_until_count(f, 1);
	/* the message went; its report came */
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);
	expect_report(f, "dave@example.org", "5.4.7");
	struct stat st;
	assert_int_equal(stat(f->md[3], &st), 0);
	assert_true(S_ISREG(st.st_mode));  /* nothing was delivered */
}

/* a crash after the Maildir rename, before the spool recorded it */
static void
test_crash_after_delivery_is_not_doubled(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "alice", "ally", "bob" };
	int64_t t = now_s();
	struct spool_envelope *env = commit(f, body, dests, 3, t);
	int fd;
	uint64_t off, len;
	char *err = NULL;

	/* the first run delivered to alice's Maildir (as recipient 0) and
	 * recorded recipient 0 only, then died */
	assert_int_equal(spool_body_open(f->s, env->id, &fd, &off, &len), 0);
	char *u = deliver_unique(env, 0);
	assert_int_equal(maildir_deliver(f->md[0], u, HOST, env->mail_from,
					 fd, off, len, &err), DELIVER_OK);
	free(u);
	char *u2 = deliver_unique(env, 2);
	assert_int_equal(maildir_deliver(f->md[1], u2, HOST, env->mail_from,
					 fd, off, len, &err), DELIVER_OK);
	free(u2);
	close(fd);
	struct spool_rcpt done = { .state = SPOOL_RCPT_DELIVERED,
				   .attempts = 1 };
	assert_int_equal(spool_rcpt_update(f->s, env->id, 0, &done), 0);
	env->rcpts[0].state = SPOOL_RCPT_DELIVERED;
	env->rcpts[0].attempts = 1;

	/* bob's copy also moved to cur/ by his reader meanwhile */
	char *bn = md_name(env, 2);
	char from[512], to[512];
	snprintf(from, sizeof(from), "%s/new/%s", f->md[1], bn);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", f->md[1], bn);
	assert_int_equal(rename(from, to), 0);
	free(bn);

	deliverq_add(f->q, env, t);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[0], "new") +
			 ut_count_dir(f->md[0], "cur"), 1);
	assert_int_equal(ut_count_dir(f->md[1], "new") +
			 ut_count_dir(f->md[1], "cur"), 1);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
}

static void
test_recover_then_deliver(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "alice", "bob" };
	int64_t t = now_s();
	struct spool_envelope *got[8];
	size_t ngot = 0;
	struct cb c = { got, &ngot };
	const char *err;

	for (int i = 0; i < 3; i++) {
		struct spool_envelope *e = commit(f, body, dests, 2, t);
		spool_envelope_free(&e);
	}
	deliverq_free(&f->q);
	spool_free(&f->s);
	assert_int_equal(spool_open(f->spooldir, f->wq, &f->s, &err), 0);
	assert_int_equal(spool_recover(f->s, cb_fn, &c), 3);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	for (size_t i = 0; i < ngot; i++)
		deliverq_add(f->q, got[i], t);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[0], "new"), 3);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 3);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
}

static void
test_in_flight_limit_and_free(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "bob" };
	int64_t t = now_s();

	f->conf.delivery_workers = 1;
	deliverq_free(&f->q);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	for (int i = 0; i < 10; i++) {
		deliverq_add(f->q, commit(f, body, dests, 1, t), t);
		assert_true(f->q->running <= 1);
	}
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 10);
	/* free with jobs in flight: their done callbacks still run */
	for (int i = 0; i < 5; i++)
		deliverq_add(f->q, commit(f, body, dests, 1, t), t);
	deliverq_free(&f->q);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
}

static void
test_relay_left_pending(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "@relay", "bob" };
	int64_t t = now_s();

	deliverq_add(f->q, commit(f, body, dests, 2, t), t);
	drive_until_count(f, 1);
	struct spool_envelope *env = held_env(f);
	assert_int_equal(env->rcpts[0].state, SPOOL_RCPT_PENDING);
	assert_int_equal(env->rcpts[1].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);
	deliverq_tick(f->q, t + 86400);
	assert_int_equal(f->q->running, 0);
}

static void
test_vanished_message(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "bob" };
	int64_t t = now_s();
	struct spool_envelope *env = commit(f, body, dests, 1, t);
	char p[256];

	snprintf(p, sizeof(p), "%s/queue/%s", f->spooldir, env->id);
	assert_int_equal(unlink(p), 0);
	deliverq_add(f->q, env, t);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 0);
}

/*
 * Many messages at once go out in batches; a message whose recipients
 * all got their copy needs no state record: its file leaves queue/ for
 * reuse exactly as it was committed.
 */
static void
test_batches_without_records(void **state)
{
	struct fix *f = *state;
	enum { N = 70 };  /* more than two batches */
	static const char *const dests[] = { "alice", "bob" };
	int64_t t = now_s();
	struct spool_envelope *envs[N];
	char ids[N][SPOOL_ID_LEN + 1];
	uint64_t sizes[N];

	for (int i = 0; i < N; i++) {
		envs[i] = commit(f, body, dests, 2, t);
		memcpy(ids[i], envs[i]->id, sizeof(ids[i]));
		sizes[i] = ut_file_size(f->spooldir, "queue", ids[i]);
		assert_true(sizes[i] != UINT64_MAX);
	}
	for (int i = 0; i < N; i++)
		deliverq_add(f->q, envs[i], t);
	/* the first message went out alone; a second job started only once
	 * a full batch was waiting, and the rest wait for a free one */
	assert_int_equal(f->q->running, 2);
	assert_int_equal(f->q->running_msgs, 1 + DELIVER_BATCH_MAX);
	assert_int_equal(f->q->nheap, N - 1 - DELIVER_BATCH_MAX);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[0], "new"), N);
	assert_int_equal(ut_count_dir(f->md[1], "new"), N);
	assert_int_equal(ut_count_dir(f->md[0], "tmp"), 0);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
	for (int i = 0; i < N; i++) {
		uint64_t got = ut_file_size(f->spooldir, "tmp", ids[i]);
		if (got != sizes[i])
			fail_msg("%s: got %llu octets in tmp/, want %llu (no "
				 "record)", ids[i], (unsigned long long)got,
				 (unsigned long long)sizes[i]);
	}
}

/*
 * A crash after every copy was made but before the message left queue/:
 * no record says so, recovery hands it over as pending, and the repeat
 * finds every copy (one of them already read into cur/) and writes none.
 */
static void
test_crash_before_removal_is_not_doubled(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "alice", "ally", "bob" };
	int64_t t = now_s();
	struct spool_envelope *env = commit(f, body, dests, 3, t);
	int fd;
	uint64_t off, len;
	char *err = NULL;
	struct stat a0, a1;
	char p[512], to[512];

	assert_int_equal(spool_body_open(f->s, env->id, &fd, &off, &len), 0);
	char *u0 = deliver_unique(env, 0), *u2 = deliver_unique(env, 2);
	assert_int_equal(maildir_deliver(f->md[0], u0, HOST, env->mail_from,
					 fd, off, len, &err), DELIVER_OK);
	assert_int_equal(maildir_deliver(f->md[1], u2, HOST, env->mail_from,
					 fd, off, len, &err), DELIVER_OK);
	free(u0);
	free(u2);
	close(fd);
	char *an = md_name(env, 0), *bn = md_name(env, 2);
	snprintf(p, sizeof(p), "%s/new/%s", f->md[0], an);
	assert_int_equal(stat(p, &a0), 0);
	snprintf(p, sizeof(p), "%s/new/%s", f->md[1], bn);
	snprintf(to, sizeof(to), "%s/cur/%s:2,S", f->md[1], bn);
	assert_int_equal(rename(p, to), 0);
	spool_envelope_free(&env);

	/* the restart */
	deliverq_free(&f->q);
	spool_free(&f->s);
	const char *e;
	assert_int_equal(spool_open(f->spooldir, f->wq, &f->s, &e), 0);
	struct spool_envelope *got[2];
	size_t ngot = 0;
	struct cb c = { got, &ngot };
	assert_int_equal(spool_recover(f->s, cb_fn, &c), 1);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(got[0]->rcpts[i].state, SPOOL_RCPT_PENDING);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	deliverq_add(f->q, got[0], t);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[0], "new") +
			 ut_count_dir(f->md[0], "cur"), 1);
	assert_int_equal(ut_count_dir(f->md[1], "new") +
			 ut_count_dir(f->md[1], "cur"), 1);
	snprintf(p, sizeof(p), "%s/new/%s", f->md[0], an);
	assert_int_equal(stat(p, &a1), 0);
	assert_int_equal(a0.st_ino, a1.st_ino);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
	free(an);
	free(bn);
}

/* a deferral keeps the message: every outcome of the job is recorded,
 * the delivered ones too, so a restart does not depend on the copies */
static void
test_partial_outcomes_are_recorded(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "bob", "dave" };
	int64_t t = now_s();

	block_dave(f);
	struct spool_envelope *env = commit(f, body, dests, 2, t);
	char id[SPOOL_ID_LEN + 1];
	memcpy(id, env->id, sizeof(id));
	uint64_t committed = ut_file_size(f->spooldir, "queue", id);
	deliverq_add(f->q, env, t);
	drive_until_count(f, 1);
	assert_true(ut_file_size(f->spooldir, "queue", id) > committed);
	deliverq_free(&f->q);
	spool_free(&f->s);
	const char *e;
	assert_int_equal(spool_open(f->spooldir, f->wq, &f->s, &e), 0);
	struct spool_envelope *got[2];
	size_t ngot = 0;
	struct cb c = { got, &ngot };
	assert_int_equal(spool_recover(f->s, cb_fn, &c), 1);
	assert_int_equal(got[0]->rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(got[0]->rcpts[1].state, SPOOL_RCPT_DEFERRED);
	spool_envelope_free(&got[0]);
	f->q = deliverq_new(f->s, f->wq, &f->conf);
}

/* the runner takes its retry policy from the configuration, with the
 * defaults for keys a hand-made config left at 0 */
static void
test_policy(void **state)
{
	struct fix *f = *state;

	(void)state;
	assert_int_equal(f->q->policy.retry_min, CONF_RETRY_MIN_DEFAULT);
	assert_int_equal(f->q->policy.retry_max, CONF_RETRY_MAX_DEFAULT);
	assert_int_equal(f->q->policy.lifetime, CONF_QUEUE_LIFETIME_DEFAULT);
	deliverq_free(&f->q);
	f->conf.retry_min = 7;
	f->conf.retry_max = 70;
	f->conf.queue_lifetime = 700;
	f->q = deliverq_new(f->s, f->wq, &f->conf);
	assert_int_equal(f->q->policy.retry_min, 7);
	assert_int_equal(f->q->policy.retry_max, 70);
	assert_int_equal(f->q->policy.lifetime, 700);
}

/* ---- delivery before the 250 (deliverq_direct) ----------------------- */

struct direct_res {
	int calls;
	bool delivered;
};

static void
direct_cb(void *arg, bool delivered)
{
	struct direct_res *r = arg;

	r->calls++;
	r->delivered = delivered;
}

/*
 * Starts a message in the spool as a session does (its id is the
 * spool's), with dests as local recipients, and hands its in-memory body
 * to deliverq_direct(); returns the envelope once the callback ran.
 */
static struct spool_envelope *
direct_submit(struct fix *f, const char *const *dests, size_t n, int64_t t,
	      struct spool_msg **m_r, struct direct_res *r)
{
	struct spool_envelope *env = xcalloc(1, sizeof(*env));
	const char *err;
	const void *p;
	size_t len;

	env->mail_from = xstrdup("sender@example.org");
	env->helo = xstrdup("client.example");
	env->client_addr = xstrdup("192.0.2.9");
	env->received_at = t;
	env->rcpts = xcalloc(n, sizeof(*env->rcpts));
	env->nrcpts = n;
	for (size_t i = 0; i < n; i++) {
		env->rcpts[i].address = xasprintf("%s@example.org", dests[i]);
		env->rcpts[i].dest = xstrdup(dests[i]);
		env->rcpts[i].agent = SPOOL_AGENT_LOCAL;
	}
	assert_int_equal(spool_msg_new(f->s, m_r, &err), 0);
	memcpy(env->id, spool_msg_id(*m_r), sizeof(env->id));
	assert_int_equal(spool_msg_write(*m_r, body, strlen(body)), 0);
	env->size = strlen(body);
	assert_true(spool_msg_body(*m_r, &p, &len));
	deliverq_direct(f->q, env, p, len, direct_cb, r);
	return env;
}

static struct spool_envelope *
direct(struct fix *f, const char *const *dests, size_t n, int64_t t,
       struct spool_msg **m_r, struct direct_res *r)
{
	struct spool_envelope *env = direct_submit(f, dests, n, t, m_r, r);

	assert_int_equal(deliverq_direct_pending(f->q), 1);
	for (int i = 0; i < 300 && r->calls == 0; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(r->calls, 1);
	assert_int_equal(deliverq_direct_pending(f->q), 0);
	return env;
}

/*
 * Every recipient gets its copy before the callback, under the name a
 * queued delivery would use (one per Maildir: ally shares alice's), and
 * nothing reaches the queue.
 */
static void
test_direct_delivers_before_the_callback(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "alice", "bob", "ally" };
	struct direct_res r = { 0 };
	struct spool_msg *m;
	int64_t t = now_s();

	struct spool_envelope *env = direct(f, dests, 3, t, &m, &r);
	assert_true(r.delivered);
	char *a = md_name(env, 0), *b = md_name(env, 1);
	check_one_message(f->md[0], a);
	check_one_message(f->md[1], b);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(env->rcpts[i].state, SPOOL_RCPT_DELIVERED);
		assert_int_equal(env->rcpts[i].attempts, 1);
	}
	assert_int_equal(deliverq_count(f->q), 0);
	spool_msg_abort(&m);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
	spool_envelope_free(&env);
	free(a);
	free(b);
}

/*
 * A recipient whose Maildir fails comes back deferred as after a queued
 * first attempt, the other delivered; committed and queued, the message
 * then reaches dave at the first retry and bob never again.
 */
static void
test_direct_partial_then_queue(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "dave", "bob" };
	struct direct_res r = { 0 };
	struct ut_commits c = { 0 };
	struct spool_msg *m;
	int64_t t = now_s();

	block_dave(f);
	struct spool_envelope *env = direct(f, dests, 2, t, &m, &r);
	assert_false(r.delivered);
	assert_int_equal(env->rcpts[0].state, SPOOL_RCPT_DEFERRED);
	assert_int_equal(env->rcpts[0].next_try, t + CONF_RETRY_MIN_DEFAULT);
	assert_int_equal(env->rcpts[0].attempts, 1);
	assert_non_null(env->rcpts[0].diag);
	assert_int_equal(env->rcpts[1].state, SPOOL_RCPT_DELIVERED);
	assert_null(env->rcpts[1].diag);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 1);

	spool_msg_commit(&m, env, ut_commit_cb, &c);
	for (int i = 0; i < 300 && c.calls == 0; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(c.ok, 1);
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 1);
	deliverq_add(f->q, env, t);
	/* not due before t + retry_min */
	assert_int_equal(f->q->running, 0);
	assert_int_equal(unlink(f->md[3]), 0);
	deliverq_tick(f->q, t + CONF_RETRY_MIN_DEFAULT);
	drive_until_count(f, 0);
	assert_int_equal(ut_count_dir(f->md[3], "new"), 1);
	assert_int_equal(ut_count_dir(f->md[1], "new"), 1);  /* not again */
	assert_int_equal(ut_count_dir(f->spooldir, "queue"), 0);
}

/*
 * Group commit of direct batches: what arrives while one runs waits for
 * it, and a second starts beside it only once a full batch waits; every
 * message is then delivered once.
 */
static void
test_direct_one_batch_at_a_time(void **state)
{
	struct fix *f = *state;
	static const char *const dests[] = { "bob" };
	enum { N = 1 + DELIVER_DIRECT_BATCH_MAX + 3 };
	struct direct_res *r = xcalloc(N, sizeof(*r));
	struct spool_msg **m = xcalloc(N, sizeof(*m));
	struct spool_envelope **env = xcalloc(N, sizeof(*env));
	int64_t t = now_s();

	env[0] = direct_submit(f, dests, 1, t, &m[0], &r[0]);
	assert_int_equal(f->q->direct_running, 1);
	for (size_t i = 1; i < DELIVER_DIRECT_BATCH_MAX; i++) {
		env[i] = direct_submit(f, dests, 1, t, &m[i], &r[i]);
		assert_int_equal(f->q->direct_running, 1);
		assert_int_equal(f->q->direct_waiting, i);
	}
	/* the waiting batch is full: it goes beside the running one */
	env[DELIVER_DIRECT_BATCH_MAX] =
		direct_submit(f, dests, 1, t, &m[DELIVER_DIRECT_BATCH_MAX],
			      &r[DELIVER_DIRECT_BATCH_MAX]);
	assert_int_equal(f->q->direct_running, 2);
	assert_int_equal(f->q->direct_waiting, 0);
	for (size_t i = DELIVER_DIRECT_BATCH_MAX + 1; i < N; i++)
		env[i] = direct_submit(f, dests, 1, t, &m[i], &r[i]);
	assert_int_equal(f->q->direct_running, 2);  /* the workers' limit */
	assert_int_equal(f->q->direct_waiting, N - DELIVER_DIRECT_BATCH_MAX - 1);
	for (int i = 0; i < 600 && deliverq_direct_pending(f->q) > 0; i++) {
		struct pollfd pfd = { .fd = workq_fd(f->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(f->wq);
	}
	assert_int_equal(deliverq_direct_pending(f->q), 0);
	for (size_t i = 0; i < N; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_true(r[i].delivered);
		spool_msg_abort(&m[i]);
		spool_envelope_free(&env[i]);
	}
	assert_int_equal(ut_count_dir(f->md[1], "new"), N);
	free(r);
	free(m);
	free(env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_end_to_end, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tempfail_then_retry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_durable_states, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expiry_bounces, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_after_delivery_is_not_doubled, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_recover_then_deliver,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_flight_limit_and_free,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_left_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vanished_message, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batches_without_records,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_before_removal_is_not_doubled, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_partial_outcomes_are_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_direct_delivers_before_the_callback, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_direct_one_batch_at_a_time,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct_partial_then_queue,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

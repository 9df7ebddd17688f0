/* SPDX-License-Identifier: MIT */
/*
 * deliver_queue: the queue runner. It holds every committed message with
 * recipients that are not final, runs one job per due message on the
 * worker pool (the job delivers all its due local recipients, records
 * their outcomes in the spool with one fdatasync, and removes the message
 * once every recipient is final), and retries temporary failures with
 * backoff until they expire into a bounce.
 *
 * Order of durable steps in a job: deliver (the agent makes the mail
 * durable), then record the outcome (spool_rcpt_update_n), then remove
 * the message. A crash between any two steps repeats the earlier ones on
 * the next start, which is harmless: the Maildir agent recognises its own
 * earlier delivery by name (deliver_maildir.c), and a record is only
 * written after the delivery it describes.
 *
 * Recipients that resolve to the same Maildir get one copy: they all use
 * the name of the first recipient (lowest index) that resolves to that
 * Maildir, whatever its state, so a retry after a partial record also
 * finds that copy.
 *
 * Threading: the struct deliverq and the waiting messages belong to the
 * loop thread; a running message's envelope belongs to its job until the
 * job's done callback runs. The config is read-only.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver_int.h"

struct dq_res {
	size_t idx;                /* recipient index */
	const char *maildir;       /* resolved, or NULL (unknown user) */
	enum deliver_status st;
	char *diag;                /* heap, or NULL */
	struct spool_rcpt rec;     /* new state (shallow: diag borrowed) */
	bool recorded;
};

struct dq_job {
	struct deliverq *q;
	struct dq_msg *m;
	int64_t now;
	struct dq_res *res;
	size_t n;
	int rec_err;               /* errno of a failed record, or 0 */
	bool finished;             /* every recipient final and durable */
	bool vanished;             /* the queue file disappeared */
};

/* ---- policy ---------------------------------------------------------- */

int64_t
deliver_backoff(unsigned attempts)
{
	static const int64_t steps[] = { 60, 300, 900, 1800, 3600, 7200,
					 14400 };
	size_t n = sizeof(steps) / sizeof(steps[0]);

	if (attempts == 0)
		attempts = 1;
	return steps[attempts - 1 < n ? attempts - 1 : n - 1];
}

char *
deliver_unique(const struct spool_envelope *env, size_t idx)
{
	return xasprintf("%" PRId64 ".%s_%zu", env->received_at, env->id,
			 idx);
}

const struct conf_user *
deliver_find_user(const struct tern_conf *conf, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < conf->nusers; i++) {
		if (ascii_strcasecmp(conf->users[i].name, name) == 0)
			return &conf->users[i];
	}
	return NULL;
}

static bool
rcpt_final(const struct spool_rcpt *r)
{
	return r->state == SPOOL_RCPT_DELIVERED ||
	       r->state == SPOOL_RCPT_BOUNCED;
}

static bool
env_final(const struct spool_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (!rcpt_final(&env->rcpts[i]))
			return false;
	}
	return true;
}

static bool
rcpt_due(const struct spool_rcpt *r, int64_t now)
{
	if (r->agent != SPOOL_AGENT_LOCAL)
		return false;
	return r->state == SPOOL_RCPT_PENDING ||
	       (r->state == SPOOL_RCPT_DEFERRED && r->next_try <= now);
}

/* when the message next needs a job */
static int64_t
msg_due(const struct spool_envelope *env)
{
	int64_t due = INT64_MAX;

	if (env_final(env))
		return INT64_MIN;  /* only the removal is left */
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		if (rcpt_final(r) || r->agent != SPOOL_AGENT_LOCAL)
			continue;
		int64_t t = r->state == SPOOL_RCPT_DEFERRED ? r->next_try :
			    INT64_MIN;
		if (t < due)
			due = t;
	}
	return due;
}

/* ---- heap of waiting messages ---------------------------------------- */

static bool
before(const struct dq_msg *a, const struct dq_msg *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void
heap_push(struct deliverq *q, struct dq_msg *m)
{
	if (q->nheap == q->capheap) {
		q->capheap = q->capheap > 0 ? q->capheap * 2 : 64;
		q->heap = xreallocarray(q->heap, q->capheap, sizeof(*q->heap));
	}
	size_t i = q->nheap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(m, q->heap[parent]))
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = m;
}

static struct dq_msg *
heap_pop(struct deliverq *q)
{
	struct dq_msg *top = q->heap[0];
	struct dq_msg *last = q->heap[--q->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!before(q->heap[c], last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->nheap > 0)
		q->heap[i] = last;
	return top;
}

/* ---- the job (worker thread) ----------------------------------------- */

static void
attempt(struct dq_job *j)
{
	struct deliverq *q = j->q;
	const struct tern_conf *conf = q->conf;
	struct spool_envelope *env = j->m->env;
	const char *host = conf->hostname != NULL ? conf->hostname :
			   "localhost";
	int fd = -1, open_err = 0;
	uint64_t off = 0, len = 0;

	if (j->n == 0)
		return;
	if (spool_body_open(q->spool, env->id, &fd, &off, &len) < 0)
		open_err = errno;

	/* the Maildir of every recipient, to find each one's first user */
	const char **md = xcalloc(env->nrcpts, sizeof(*md));
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		const struct conf_user *u = r->agent == SPOOL_AGENT_LOCAL ?
			deliver_find_user(conf, r->dest) : NULL;
		md[i] = u != NULL ? u->maildir : NULL;
	}

	for (size_t k = 0; k < j->n; k++) {
		struct dq_res *res = &j->res[k];
		res->maildir = md[res->idx];
		if (res->maildir == NULL) {
			res->st = DELIVER_PERMFAIL;
			res->diag = xstrdup("user unknown");
			continue;
		}
		/* one copy per Maildir in this job */
		bool dup = false;
		for (size_t kk = 0; kk < k && !dup; kk++) {
			const struct dq_res *o = &j->res[kk];
			if (o->maildir != NULL &&
			    strcmp(o->maildir, res->maildir) == 0) {
				res->st = o->st;
				res->diag = o->diag != NULL ?
					    xstrdup(o->diag) : NULL;
				dup = true;
			}
		}
		if (dup)
			continue;
		if (open_err != 0) {
			res->st = DELIVER_TEMPFAIL;
			res->diag = xasprintf("spool: cannot open body: %s",
					      strerror(open_err));
			continue;
		}
		size_t first = res->idx;
		for (size_t i = 0; i < res->idx; i++) {
			if (md[i] != NULL && strcmp(md[i], res->maildir) == 0) {
				first = i;
				break;
			}
		}
		char *unique = deliver_unique(env, first);
		res->st = maildir_deliver(res->maildir, unique, host,
					  env->mail_from, fd, off, len,
					  &res->diag);
		free(unique);
	}
	free(md);
	if (fd >= 0)
		(void)close(fd);
}

/* a temporary failure defers, or bounces once the message is too old */
static void
defer_or_expire(const struct dq_job *j, struct dq_res *res,
		struct spool_rcpt *r)
{
	int64_t age = j->now - j->m->env->received_at;

	if (age >= DELIVER_EXPIRE_DEFAULT) {
		char *d = xasprintf("expired: %s", res->diag != NULL ?
				    res->diag : "temporary failure");
		free(res->diag);
		res->diag = d;
		r->state = SPOOL_RCPT_BOUNCED;
	} else {
		r->state = SPOOL_RCPT_DEFERRED;
		r->next_try = j->now + deliver_backoff(r->attempts);
	}
	r->diag = res->diag;
}

static void
job_work(void *arg)
{
	struct dq_job *j = arg;
	struct deliverq *q = j->q;
	struct spool_envelope *env = j->m->env;

	attempt(j);

	/* the new state of each attempted recipient */
	size_t *idx = xcalloc(j->n > 0 ? j->n : 1, sizeof(*idx));
	struct spool_rcpt *recs = xcalloc(j->n > 0 ? j->n : 1,
					  sizeof(*recs));
	for (size_t k = 0; k < j->n; k++) {
		struct dq_res *res = &j->res[k];
		struct spool_rcpt *r = &res->rec;
		*r = env->rcpts[res->idx];
		r->attempts++;
		r->next_try = 0;
		switch (res->st) {
		case DELIVER_OK:
			r->state = SPOOL_RCPT_DELIVERED;
			r->diag = NULL;
			break;
		case DELIVER_PERMFAIL:
			r->state = SPOOL_RCPT_BOUNCED;
			r->diag = res->diag;
			break;
		case DELIVER_TEMPFAIL:
			defer_or_expire(j, res, r);
			break;
		}
		idx[k] = res->idx;
		recs[k] = *r;
	}
	if (spool_rcpt_update_n(q->spool, env->id, idx, recs, j->n) < 0)
		j->rec_err = errno != 0 ? errno : EIO;
	free(idx);
	free(recs);
	if (j->rec_err == ENOENT) {
		/* the queue file is gone (removed by hand): nothing left to
		 * record or retry */
		j->vanished = true;
		j->finished = true;
		return;
	}

	for (size_t k = 0; k < j->n; k++) {
		struct dq_res *res = &j->res[k];
		struct spool_rcpt *r = &env->rcpts[res->idx];
		r->attempts = res->rec.attempts;
		if (j->rec_err != 0) {
			/* nothing is known on disk: try again soon; a repeat
			 * delivery finds its own copy */
			r->state = SPOOL_RCPT_DEFERRED;
			r->next_try = j->now + DELIVER_RECORD_RETRY;
			continue;
		}
		r->state = res->rec.state;
		r->next_try = res->rec.next_try;
		free(r->diag);
		r->diag = res->rec.diag != NULL ? xstrdup(res->rec.diag) : NULL;
		res->recorded = true;
	}
	if (j->rec_err == 0 && env_final(env)) {
		j->finished = true;
		if (spool_remove(q->spool, env->id) < 0 && errno != ENOENT)
			/* the records are durable: recovery removes it */
			log_errno(LOG_LEVEL_WARN, "deliver id=%s event=remove",
				  env->id);
	}
}

/* ---- the job (loop thread) ------------------------------------------- */

static const char *
status_name(const struct spool_rcpt *r)
{
	switch (r->state) {
	case SPOOL_RCPT_DELIVERED:
		return "delivered";
	case SPOOL_RCPT_BOUNCED:
		return "bounced";
	case SPOOL_RCPT_DEFERRED:
	case SPOOL_RCPT_PENDING:
		break;
	}
	return "deferred";
}

static double
wall_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
log_outcomes(const struct dq_job *j)
{
	const struct spool_envelope *env = j->m->env;
	double delay = wall_now() - (double)env->received_at;

	if (delay < 0)
		delay = 0;
	if (j->vanished) {
		log_error("deliver id=%s event=record status=failed "
			  "reason=\"message no longer in the spool\"", env->id);
		return;
	}
	if (j->rec_err != 0)
		log_error("deliver id=%s event=record status=failed "
			  "error=\"%s\" retry=%d", env->id,
			  strerror(j->rec_err), DELIVER_RECORD_RETRY);
	for (size_t k = 0; k < j->n; k++) {
		const struct dq_res *res = &j->res[k];
		const struct spool_rcpt *r = &env->rcpts[res->idx];
		char addr[256], dest[128], reason[512];
		const char *diag = res->diag;

		log_escape(addr, sizeof(addr), r->address,
			   strlen(r->address));
		if (r->dest != NULL)
			log_escape(dest, sizeof(dest), r->dest,
				   strlen(r->dest));
		else
			(void)snprintf(dest, sizeof(dest), "-");
		if (j->rec_err != 0 && res->st == DELIVER_OK)
			diag = "delivered, but not recorded in the spool";
		else if (j->rec_err != 0 && diag == NULL)
			diag = "not recorded in the spool";
		if (diag != NULL)
			log_escape(reason, sizeof(reason), diag, strlen(diag));
		log_info("deliver id=%s rcpt=<%s> dest=%s status=%s "
			 "delay=%.3f attempts=%u%s%s%s", env->id, addr, dest,
			 status_name(r), delay, r->attempts,
			 diag != NULL ? " reason=\"" : "",
			 diag != NULL ? reason : "",
			 diag != NULL ? "\"" : "");
	}
}

static void run_due(struct deliverq *q);

static void
job_done(void *arg)
{
	struct dq_job *j = arg;
	struct deliverq *q = j->q;
	struct dq_msg *m = j->m;

	log_outcomes(j);
	for (size_t k = 0; k < j->n; k++)
		free(j->res[k].diag);
	free(j->res);
	q->running--;
	m->running = false;
	if (j->finished) {
		spool_envelope_free(&m->env);
		free(m);
	} else {
		m->due = msg_due(m->env);
		heap_push(q, m);
	}
	free(j);
	run_due(q);
}

static void
start_job(struct deliverq *q, struct dq_msg *m)
{
	struct dq_job *j = xcalloc(1, sizeof(*j));
	const struct spool_envelope *env = m->env;

	j->q = q;
	j->m = m;
	j->now = q->now;
	j->res = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1, sizeof(*j->res));
	for (size_t i = 0; i < env->nrcpts; i++) {
		if (rcpt_due(&env->rcpts[i], q->now))
			j->res[j->n++].idx = i;
	}
	m->running = true;
	q->running++;
	workq_submit(q->wq, job_work, job_done, j);
}

/* starts due messages, oldest due first, up to the in-flight limit */
static void
run_due(struct deliverq *q)
{
	while (!q->closing && q->running < q->max_running && q->nheap > 0 &&
	       q->heap[0]->due <= q->now)
		start_job(q, heap_pop(q));
}

/* ---- public ---------------------------------------------------------- */

struct deliverq *
deliverq_new(struct spool *spool, struct workq *wq,
	     const struct tern_conf *conf)
{
	struct deliverq *q = xcalloc(1, sizeof(*q));

	q->spool = spool;
	q->wq = wq;
	q->conf = conf;
	q->max_running = conf->delivery_workers > 0 ? conf->delivery_workers :
			 1;
	return q;
}

void
deliverq_free(struct deliverq **qp)
{
	struct deliverq *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	/* the done callbacks of running jobs must run before we go */
	q->closing = true;
	while (q->running > 0) {
		struct pollfd pfd = { .fd = workq_fd(q->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(q->wq);
	}
	for (size_t i = 0; i < q->nheap; i++) {
		spool_envelope_free(&q->heap[i]->env);
		free(q->heap[i]);
	}
	free(q->heap);
	free(q);
}

void
deliverq_add(struct deliverq *q, struct spool_envelope *env, int64_t now)
{
	struct dq_msg *m = xcalloc(1, sizeof(*m));

	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		if (r->agent == SPOOL_AGENT_LOCAL || rcpt_final(r))
			continue;
		char addr[256];
		log_escape(addr, sizeof(addr), r->address, strlen(r->address));
		log_warn("deliver id=%s rcpt=<%s> status=pending "
			 "reason=\"relay delivery is not available\"", env->id,
			 addr);
	}
	if (now > q->now)
		q->now = now;
	m->env = env;
	m->due = msg_due(env);
	m->seq = q->seq++;
	heap_push(q, m);
	run_due(q);
}

void
deliverq_tick(struct deliverq *q, int64_t now)
{
	q->now = now;
	run_due(q);
}

unsigned
deliverq_count(const struct deliverq *q)
{
	return (unsigned)q->nheap + q->running;
}

/* SPDX-License-Identifier: MIT */
/*
 * deliver_queue: the queue runner. It holds every committed message with
 * recipients that are not final and runs jobs on the worker pool. A job
 * takes up to DELIVER_BATCH_MAX due messages, delivers all their due
 * local recipients in one batch of the Maildir agent (so the batch shares
 * its fsync waits and each new/ directory is fsynced once), records the
 * outcomes that need it in the spool, and removes the messages whose
 * recipients are all final, together. Temporary failures are retried with
 * backoff until they expire into a bounce.
 *
 * Order of durable steps in a job: deliver (the agent makes the mail
 * durable: file and new/ fsynced), then record the outcome
 * (spool_rcpt_update_n), then remove the message. A crash between any two
 * steps repeats the earlier ones on the next start, which is harmless: the
 * Maildir agent recognises its own earlier delivery by name
 * (deliver_maildir.c), and a record is only written after the delivery it
 * describes.
 *
 * Which outcomes are recorded: when a job leaves every recipient of a
 * message delivered (this job's and those recorded before), it writes no
 * record and removes the message at once: the Maildir copies, durable
 * under their names, are the record. If a crash undoes the removal,
 * recovery hands the message over with those recipients still pending,
 * and the repeat finds every copy and writes nothing. In every other case
 * (a deferral, a bounce, a message that stays queued) every outcome of
 * the job is recorded, delivered ones included, so that a message that
 * waits for days for one recipient never depends on the others' Maildir
 * copies staying where they were put: the window in which a reader that
 * deletes a copy could get it twice stays as short as before (from the
 * rename into new/ to the removal or the record, well under a second).
 *
 * Recipients that resolve to the same Maildir get one copy: they all use
 * the name of the first recipient (lowest index) that resolves to that
 * Maildir, whatever its state, so a retry after a partial record also
 * finds that copy.
 *
 * Direct batches (deliverq_direct): messages not yet answered, with
 * their bodies in memory, go through the same plan / Maildir agent /
 * collect steps as a job, as first attempts (no look for earlier
 * copies: their ids are new), but their outcomes go back to the caller
 * in the envelope instead of into the spool, which holds no file for
 * them. Direct jobs run beside the queue's own, one at a time unless a
 * full batch waits (run_direct), up to max_running.
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
	char *maildir_owned;       /* an account's: heap, maildir points here */
	enum deliver_status st;
	char *diag;                /* heap, or NULL */
	struct spool_rcpt rec;     /* new state (shallow: diag borrowed) */
	size_t item;               /* its maildir_item in the batch ... */
	bool has_item;             /* ... if it has one */
	size_t same;               /* else the res it shares a copy with */
	bool shares;
	bool recorded;
	/* relay outcomes */
	char status[16];           /* RFC 3463 code, "" for the default */
	char *remote_mta;          /* heap, or NULL */
	bool relayed;              /* by the relay agent */
	bool expired;              /* bounced at the end of its life */
	bool peer_dsn;             /* the server took NOTIFY on from us */
	double delays[3];          /* queue, connection, transfer */
};

/* one message of a job */
struct dq_one {
	struct dq_msg *m;
	struct dq_res *res;
	size_t n;
	int body_fd;
	uint64_t off, len;
	int open_err;              /* errno of spool_body_open, or 0 */
	int rec_err;               /* errno of a failed record, or 0 */
	struct spool_envelope *report; /* a DSN it queued, for the runner */
	bool dsn_err;              /* a DSN owed could not be queued */
	bool finished;             /* every recipient final and durable */
	bool vanished;             /* the queue file disappeared */
};

struct dq_job {
	struct deliverq *q;
	bool direct;               /* a batch of deliverq_direct() */
	bool record;               /* outcomes of the relay agent: only
				    * settle, record and remove */
	int64_t now;
	struct dq_one *one;
	size_t n;
};

/* ---- policy ---------------------------------------------------------- */

char *
deliver_unique(const struct spool_envelope *env, size_t idx)
{
	return xasprintf("%" PRId64 ".%s_%zu", env->received_at, env->id,
			 idx);
}

/* a label of a path: no '/', not "." or "..", not empty, no NUL */
static bool
path_label_ok(const char *p, size_t n)
{
	if (n == 0 || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '/' || p[i] == '\0')
			return false;
	return true;
}

char *
deliver_account_maildir(const struct tern_conf *conf, const char *address)
{
	const char *at = address != NULL ? strrchr(address, '@') : NULL;

	if (at == NULL || !path_label_ok(address, (size_t)(at - address)) ||
	    !path_label_ok(at + 1, strlen(at + 1)))
		return NULL;
	return xasprintf("%s/mail/%s/%.*s/Maildir", conf->state_dir, at + 1,
			 (int)(at - address), address);
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
rcpt_waits(const struct spool_rcpt *r, int64_t now)
{
	return r->state == SPOOL_RCPT_PENDING ||
	       (r->state == SPOOL_RCPT_DEFERRED && r->next_try <= now);
}

/* due for the Maildir agent */
static bool
rcpt_due(const struct spool_rcpt *r, int64_t now)
{
	return r->agent == SPOOL_AGENT_LOCAL && rcpt_waits(r, now);
}

/* due for the relay agent (when there is one) */
static bool
rcpt_due_relay(const struct deliverq *q, const struct spool_rcpt *r,
	       int64_t now)
{
	return q->relay != NULL && r->agent == SPOOL_AGENT_RELAY &&
	       rcpt_waits(r, now);
}

static bool
msg_due_local(const struct spool_envelope *env, int64_t now)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (rcpt_due(&env->rcpts[i], now))
			return true;
	return false;
}

static bool
msg_due_relay(const struct deliverq *q, const struct spool_envelope *env,
	      int64_t now)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		if (rcpt_due_relay(q, &env->rcpts[i], now))
			return true;
	return false;
}

/* when the message next needs an agent */
static int64_t
msg_due(const struct deliverq *q, const struct spool_envelope *env)
{
	int64_t due = INT64_MAX;

	if (env_final(env))
		return INT64_MIN;  /* only the removal is left */
	if (env->held)
		return INT64_MAX;  /* until `tern queue release` */
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		if (rcpt_final(r) || (r->agent != SPOOL_AGENT_LOCAL &&
				      q->relay == NULL))
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

/* puts m at slot i or below it, where it belongs */
static void
heap_sift_down(struct deliverq *q, size_t i, struct dq_msg *m)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->nheap)
			break;
		if (c + 1 < q->nheap && before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!before(q->heap[c], m))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	q->heap[i] = m;
}

static struct dq_msg *
heap_pop(struct deliverq *q)
{
	struct dq_msg *top = q->heap[0];
	struct dq_msg *last = q->heap[--q->nheap];

	if (q->nheap > 0)
		heap_sift_down(q, 0, last);
	return top;
}

/* after due times changed or an element went: heap order again, O(n) */
static void
heap_rebuild(struct deliverq *q)
{
	for (size_t i = q->nheap / 2; i-- > 0;)
		heap_sift_down(q, i, q->heap[i]);
}

/* every message the runner holds, for queue control */
static void
all_add(struct deliverq *q, struct dq_msg *m)
{
	m->all_prev = NULL;
	m->all_next = q->all;
	if (q->all != NULL)
		q->all->all_prev = m;
	q->all = m;
}

static void
msg_release(struct deliverq *q, struct dq_msg *m)
{
	if (m->all_prev != NULL)
		m->all_prev->all_next = m->all_next;
	else if (q->all == m)
		q->all = m->all_next;
	if (m->all_next != NULL)
		m->all_next->all_prev = m->all_prev;
	spool_envelope_free(&m->env);
	free(m);
}

/* ---- the job (worker thread) ----------------------------------------- */

/*
 * Resolves the due recipients of one message and adds the copies it
 * needs to the batch v (grown as needed; unique names are heap strings).
 */
static void
plan(struct dq_job *j, struct dq_one *o, struct maildir_item **v,
     size_t *nv, size_t *capv)
{
	struct deliverq *q = j->q;
	const struct tern_conf *conf = q->conf;
	struct spool_envelope *env = o->m->env;

	o->body_fd = -1;
	if (o->n == 0)
		return;
	if (o->m->mem != NULL)
		o->len = o->m->memlen;
	else if (spool_body_open(q->spool, env->id, &o->body_fd, &o->off,
				 &o->len) < 0)
		o->open_err = errno != 0 ? errno : EIO;

	/* the Maildir of every recipient, to find each one's first user;
	 * a local recipient with '@' is an account, one that starts with '/'
	 * an account's Maildir given in full */
	const char **md = xcalloc(env->nrcpts, sizeof(*md));
	char **own = xcalloc(env->nrcpts, sizeof(*own));
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		if (r->agent != SPOOL_AGENT_LOCAL)
			continue;
		/* an account's own Maildir, as an absolute path */
		if (r->dest != NULL && r->dest[0] == '/') {
			md[i] = r->dest;
			continue;
		}
		if (r->dest != NULL && strchr(r->dest, '@') != NULL) {
			own[i] = deliver_account_maildir(conf, r->dest);
			md[i] = own[i];
			continue;
		}
		const struct conf_user *u = deliver_find_user(conf, r->dest);
		md[i] = u != NULL ? u->maildir : NULL;
	}

	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		res->maildir = md[res->idx];
		if (res->maildir == NULL) {
			res->st = DELIVER_PERMFAIL;
			res->diag = xstrdup("user unknown");
			continue;
		}
		/* one copy per Maildir in this job */
		for (size_t kk = 0; kk < k && !res->shares; kk++) {
			const struct dq_res *p = &o->res[kk];
			if (p->maildir != NULL &&
			    strcmp(p->maildir, res->maildir) == 0) {
				res->same = p->shares ? p->same : kk;
				res->shares = true;
			}
		}
		if (res->shares)
			continue;
		if (o->open_err != 0) {
			res->st = DELIVER_TEMPFAIL;
			res->diag = xasprintf("spool: cannot open body: %s",
					      strerror(o->open_err));
			continue;
		}
		size_t first = res->idx;
		for (size_t i = 0; i < res->idx; i++) {
			if (md[i] != NULL && strcmp(md[i], res->maildir) == 0) {
				first = i;
				break;
			}
		}
		if (*nv == *capv) {
			*capv = *capv > 0 ? *capv * 2 : 16;
			*v = xreallocarray(*v, *capv, sizeof(**v));
		}
		struct maildir_item *it = &(*v)[*nv];
		memset(it, 0, sizeof(*it));
		it->maildir = res->maildir;
		it->unique = deliver_unique(env, first);
		it->return_path = env->mail_from;
		it->body_fd = o->body_fd;
		it->off = o->off;
		it->len = o->len;
		it->body_mem = o->m->mem;
		it->first_attempt = o->m->fresh;
		res->item = (*nv)++;
		res->has_item = true;
	}
	/* each account path goes with the first result that uses it */
	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		if (own[res->idx] != NULL && res->maildir == own[res->idx]) {
			res->maildir_owned = own[res->idx];
			own[res->idx] = NULL;
		}
	}
	for (size_t i = 0; i < env->nrcpts; i++)
		free(own[i]);
	free(own);
	free(md);
	o->m->fresh = false; /* a retry must look for this attempt's copies */
}

/* takes each recipient's outcome from the batch */
static void
collect(struct dq_one *o, struct maildir_item *v)
{
	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		if (!res->has_item)
			continue;
		res->st = v[res->item].st;
		res->diag = v[res->item].error;
		v[res->item].error = NULL;
	}
	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		if (!res->shares)
			continue;
		const struct dq_res *p = &o->res[res->same];
		res->st = p->st;
		res->diag = p->diag != NULL ? xstrdup(p->diag) : NULL;
	}
	if (o->body_fd >= 0)
		(void)close(o->body_fd);
	o->body_fd = -1;
}

/* the RFC 3463 code of an outcome: the server's, or one that says what
 * happened here */
static void
res_status(struct dq_res *res)
{
	const char *st = NULL;

	if (res->expired)
		st = "5.4.7";	/* RFC 3463: delivery time expired */
	else if (res->status[0] != '\0')
		return;
	else if (res->st == DELIVER_OK)
		st = "2.0.0";
	else if (res->st == DELIVER_PERMFAIL)
		st = res->maildir == NULL && !res->relayed ? "5.1.1" : "5.0.0";
	else
		st = res->relayed ? "4.0.0" : "4.2.0";
	snprintf(res->status, sizeof(res->status), "%s", st);
}

/* a temporary failure defers, or bounces once the message is too old */
static void
defer_or_expire(const struct dq_job *j, const struct dq_one *o,
		struct dq_res *res, struct spool_rcpt *r)
{
	int64_t next;

	if (sched_after_tempfail(&j->q->policy, o->m->env->received_at,
				 r->attempts, j->now, &next) == SCHED_EXPIRE) {
		char *d = xasprintf("expired: %s", res->diag != NULL ?
				    res->diag : "temporary failure");
		free(res->diag);
		res->diag = d;
		r->state = SPOOL_RCPT_BOUNCED;
		res->expired = true;
	} else {
		r->state = SPOOL_RCPT_DEFERRED;
		r->next_try = next;
	}
	r->diag = res->diag;
}

/*
 * true when this job delivered every recipient it attempted and every
 * other one was delivered before: then no record is needed (top of file)
 */
static bool
all_delivered(const struct dq_one *o)
{
	const struct spool_envelope *env = o->m->env;
	size_t k = 0;

	for (size_t i = 0; i < env->nrcpts; i++) {
		if (k < o->n && o->res[k].idx == i) {
			if (o->res[k].st != DELIVER_OK)
				return false;
			k++;
		} else if (env->rcpts[i].state != SPOOL_RCPT_DELIVERED) {
			return false;
		}
	}
	return true;
}

/* computes, records (when needed) and applies the new states of one
 * message; true when the message is final and may be removed */
static bool
settle(struct dq_job *j, struct dq_one *o)
{
	struct deliverq *q = j->q;
	struct spool_envelope *env = o->m->env;

	if (o->n == 0)
		return false;
	/* the new state of each attempted recipient */
	size_t *idx = xcalloc(o->n, sizeof(*idx));
	struct spool_rcpt *recs = xcalloc(o->n, sizeof(*recs));
	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		struct spool_rcpt *r = &res->rec;
		*r = env->rcpts[res->idx];
		r->attempts++;
		r->next_try = 0;
		r->last_try = j->now;
		switch (res->st) {
		case DELIVER_OK:
			r->state = SPOOL_RCPT_DELIVERED;
			/* a relayed recipient keeps the server's reply */
			r->diag = res->relayed ? res->diag : NULL;
			/* RFC 3461 §4.1: a server with DSN got our NOTIFY
			 * and owes the success report from here on */
			if (res->relayed && res->peer_dsn)
				r->flags |= SPOOL_RCPT_F_DSN_DONE;
			break;
		case DELIVER_PERMFAIL:
			r->state = SPOOL_RCPT_BOUNCED;
			r->diag = res->diag;
			break;
		case DELIVER_TEMPFAIL:
			defer_or_expire(j, o, res, r);
			break;
		}
		res_status(res);
		r->status = res->status;
		r->remote_mta = res->remote_mta;
		idx[k] = res->idx;
		recs[k] = *r;
	}
	if (!all_delivered(o) &&
	    spool_rcpt_update_n(q->spool, env->id, idx, recs, o->n) < 0)
		o->rec_err = errno != 0 ? errno : EIO;
	free(idx);
	free(recs);
	if (o->rec_err == ENOENT) {
		/* the queue file is gone (removed by hand): nothing left to
		 * record or retry */
		o->vanished = true;
		o->finished = true;
		return false;
	}

	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		struct spool_rcpt *r = &env->rcpts[res->idx];
		r->attempts = res->rec.attempts;
		if (o->rec_err != 0) {
			/* nothing is known on disk: try again soon; a repeat
			 * delivery finds its own copy */
			r->state = SPOOL_RCPT_DEFERRED;
			r->next_try = j->now + DELIVER_RECORD_RETRY;
			continue;
		}
		r->state = res->rec.state;
		r->next_try = res->rec.next_try;
		r->last_try = res->rec.last_try;
		r->flags = res->rec.flags;
		free(r->diag);
		r->diag = res->rec.diag != NULL ? xstrdup(res->rec.diag) : NULL;
		free(r->status);
		r->status = xstrdup(res->status);
		free(r->remote_mta);
		r->remote_mta = res->remote_mta != NULL ?
				xstrdup(res->remote_mta) : NULL;
		res->recorded = true;
	}
	return false;
}

/*
 * The report the message owes, if any (deliver_dsn.c): sent, then the
 * recipients it covers are recorded as reported unless the message is
 * about to go.
 */
static void
dsn_step(struct dq_job *j, struct dq_one *o)
{
	struct deliverq *q = j->q;
	struct spool_envelope *env = o->m->env;
	size_t *changed = NULL, nchanged = 0;
	int r;

	if (o->vanished || o->rec_err != 0)
		return;
	r = deliver_dsn_send(q, env, o->m->mem, o->m->memlen, j->now,
			     &o->report, &changed, &nchanged);
	if (r < 0)
		o->dsn_err = true;
	if (r != 1)
		return;
	if (!j->direct && !(env_final(env) && !deliver_dsn_owed(q, env))) {
		struct spool_rcpt *recs = xcalloc(nchanged, sizeof(*recs));
		for (size_t k = 0; k < nchanged; k++)
			recs[k] = env->rcpts[changed[k]];
		if (spool_rcpt_update_n(q->spool, env->id, changed, recs,
					nchanged) < 0)
			log_warn("deliver id=%s event=dsn_record error=\"%s\"",
				 env->id, strerror(errno));
		free(recs);
	}
	free(changed);
}

static const char *
status_name(const struct spool_rcpt *r, const struct dq_res *res)
{
	switch (r->state) {
	case SPOOL_RCPT_DELIVERED:
		return res->relayed ? "sent" : "delivered";
	case SPOOL_RCPT_BOUNCED:
		return res->expired ? "expired" : "bounced";
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

/* seconds since the message was received, to the microsecond when the
 * envelope knows it */
static double
since_receipt(const struct spool_envelope *env, double now)
{
	double t = env->received_us > 0 ? (double)env->received_us / 1e6 :
		   (double)env->received_at;

	return now > t ? now - t : 0;
}

/* one line per recipient and attempt */
static void
log_outcomes(const struct dq_one *o, double now)
{
	const struct spool_envelope *env = o->m->env;
	double delay = since_receipt(env, now);

	if (o->vanished) {
		log_error("deliver id=%s event=record status=failed "
			  "reason=\"message no longer in the spool\"", env->id);
		return;
	}
	if (o->rec_err != 0)
		log_error("deliver id=%s event=record status=failed "
			  "error=\"%s\" retry=%d", env->id,
			  strerror(o->rec_err), DELIVER_RECORD_RETRY);
	for (size_t k = 0; k < o->n; k++) {
		const struct dq_res *res = &o->res[k];
		const struct spool_rcpt *r = &env->rcpts[res->idx];
		char addr[256], dest[256], reason[512], relay[320];
		const char *diag = res->diag;

		log_escape(addr, sizeof(addr), r->address,
			   strlen(r->address));
		if (r->dest != NULL)
			log_escape(dest, sizeof(dest), r->dest,
				   strlen(r->dest));
		else
			(void)snprintf(dest, sizeof(dest), "-");
		if (o->rec_err != 0 && res->st == DELIVER_OK)
			diag = "delivered, but not recorded in the spool";
		else if (o->rec_err != 0 && diag == NULL)
			diag = "not recorded in the spool";
		if (diag != NULL)
			log_escape(reason, sizeof(reason), diag, strlen(diag));
		if (!res->relayed) {
			log_info("deliver id=%s rcpt=<%s> dest=%s status=%s "
				 "delay=%.3f attempts=%u dsn=%s%s%s%s", env->id,
				 addr, dest, status_name(r, res), delay,
				 r->attempts, res->status,
				 diag != NULL ? " reason=\"" : "",
				 diag != NULL ? reason : "",
				 diag != NULL ? "\"" : "");
			continue;
		}
		if (res->remote_mta != NULL)
			log_escape(relay, sizeof(relay), res->remote_mta,
				   strlen(res->remote_mta));
		else
			(void)snprintf(relay, sizeof(relay), "none");
		/* Postfix's shape: relay=host[addr]:port delays=a/b/c */
		log_info("deliver id=%s rcpt=<%s> orcpt=<%s> relay=%s "
			 "delay=%.3f delays=%.3f/%.3f/%.3f dsn=%s status=%s "
			 "attempts=%u%s%s%s", env->id, dest, addr, relay, delay,
			 res->delays[0], res->delays[1], res->delays[2],
			 res->status, status_name(r, res), r->attempts,
			 diag != NULL ? " reply=\"" : "",
			 diag != NULL ? reason : "",
			 diag != NULL ? "\"" : "");
	}
}

/*
 * A direct message's outcomes go into its envelope, not the spool (it
 * has no spool file yet): when some recipient got no copy, the caller
 * commits the message with them, and the queue runner goes on from
 * there exactly as after a first attempt of its own (a deferred
 * recipient is retried after the first backoff step).
 */
static void
settle_direct(struct dq_job *j, struct dq_one *o)
{
	struct spool_envelope *env = o->m->env;

	o->finished = true;
	for (size_t k = 0; k < o->n; k++) {
		struct dq_res *res = &o->res[k];
		struct spool_rcpt *r = &env->rcpts[res->idx];
		char *old = r->diag;
		r->attempts++;
		r->next_try = 0;
		switch (res->st) {
		case DELIVER_OK:
			r->state = SPOOL_RCPT_DELIVERED;
			break;
		case DELIVER_PERMFAIL:
			r->state = SPOOL_RCPT_BOUNCED;
			break;
		case DELIVER_TEMPFAIL:
			defer_or_expire(j, o, res, r);
			break;
		}
		/* defer_or_expire() may replace res->diag: copy it last */
		r->diag = res->st != DELIVER_OK && res->diag != NULL ?
			  xstrdup(res->diag) : NULL;
		free(old);
		res_status(res);
		free(r->status);
		r->status = xstrdup(res->status);
		r->last_try = j->now;
		if (res->st != DELIVER_OK)
			o->finished = false;
	}
}

static void
job_work(void *arg)
{
	struct dq_job *j = arg;
	struct deliverq *q = j->q;
	const char *host = q->conf->hostname != NULL ? q->conf->hostname :
			   "localhost";
	struct maildir_item *v = NULL;
	size_t nv = 0, capv = 0;

	if (!j->record) {
		for (size_t i = 0; i < j->n; i++)
			plan(j, &j->one[i], &v, &nv, &capv);
		maildir_deliver_n(v, nv, host);
		for (size_t i = 0; i < j->n; i++)
			collect(&j->one[i], v);
	}
	for (size_t k = 0; k < nv; k++)
		free((char *)(uintptr_t)v[k].unique);
	free(v);
	if (j->direct) {
		double now = wall_now();
		for (size_t i = 0; i < j->n; i++) {
			struct dq_one *o = &j->one[i];
			settle_direct(j, o);
			dsn_step(j, o);
			/* a report that could not be queued is owed by the
			 * spooled message instead */
			if (o->dsn_err)
				o->finished = false;
			log_outcomes(o, now);
		}
		return;
	}

	/* records first, then the reports owed, then one removal for every
	 * final message */
	const char **ids = xcalloc(j->n > 0 ? j->n : 1, sizeof(*ids));
	int *errs = xcalloc(j->n > 0 ? j->n : 1, sizeof(*errs));
	size_t nids = 0;
	for (size_t i = 0; i < j->n; i++)
		(void)settle(j, &j->one[i]);
	for (size_t i = 0; i < j->n; i++) {
		struct dq_one *o = &j->one[i];
		struct spool_envelope *env = o->m->env;
		dsn_step(j, o);
		if (o->vanished || o->rec_err != 0 || !env_final(env) ||
		    deliver_dsn_owed(q, env))
			continue;
		o->finished = true;
		ids[nids++] = env->id;
	}
	if (nids > 0 && spool_remove_n(q->spool, ids, nids, errs) < 0) {
		for (size_t k = 0; k < nids; k++) {
			/* the outcomes are durable: recovery removes it */
			if (errs[k] != 0 && errs[k] != ENOENT)
				log_warn("deliver id=%s event=remove "
					 "error=\"%s\"", ids[k],
					 strerror(errs[k]));
		}
	}
	free(ids);
	free(errs);
	/* here rather than in job_done: the loop thread has enough to do */
	double now = wall_now();
	for (size_t i = 0; i < j->n; i++)
		log_outcomes(&j->one[i], now);
}

/* ---- the job (loop thread) ------------------------------------------- */

static void run_due(struct deliverq *q);
static void run_direct(struct deliverq *q);
static void relay_dispatch(struct deliverq *q, struct dq_msg *m);
static void run_records(struct deliverq *q);
static void msg_delete(struct deliverq *q, struct dq_msg *m);
static void job_done(void *arg);

/* frees what a job held for one message, not the message */
static void
one_release(struct dq_one *o)
{
	for (size_t k = 0; k < o->n; k++) {
		free(o->res[k].diag);
		free(o->res[k].remote_mta);
		free(o->res[k].maildir_owned);
	}
	free(o->res);
	o->res = NULL;
}

/* ---- the relay agent ------------------------------------------------ */

/* hands the due relay recipients of m to the relay agent */
static void
relay_dispatch(struct deliverq *q, struct dq_msg *m)
{
	const struct spool_envelope *env = m->env;
	size_t *idx = xcalloc(env->nrcpts, sizeof(*idx));
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpts; i++)
		if (rcpt_due_relay(q, &env->rcpts[i], q->now))
			idx[n++] = i;
	TN_ASSERT(n > 0);
	m->running = true;
	m->relaying = true;
	m->relay_prev = NULL;
	m->relay_next = q->relaying;
	if (q->relaying != NULL)
		q->relaying->relay_prev = m;
	q->relaying = m;
	q->nrelaying++;
	relay_submit(q->relay, env, idx, n, m);
	free(idx);
}

/*
 * The relay agent's outcomes for one message: a record job settles them
 * exactly as a Maildir job settles its own (state records, removal when
 * final, the log lines), on the worker pool.
 */
void
deliverq_relay_done(void *arg, void *cookie, struct relay_result *res,
		    size_t n)
{
	struct deliverq *q = arg;
	struct dq_msg *m = cookie;
	struct dq_one *o;

	if (m->relay_prev != NULL)
		m->relay_prev->relay_next = m->relay_next;
	else
		q->relaying = m->relay_next;
	if (m->relay_next != NULL)
		m->relay_next->relay_prev = m->relay_prev;
	m->relaying = false;
	q->nrelaying--;
	if (m->deleted) {
		m->running = false;
		msg_delete(q, m);
		return;
	}

	if (q->nrec_wait == q->caprec_wait) {
		q->caprec_wait = q->caprec_wait > 0 ? q->caprec_wait * 2 : 16;
		q->rec_wait = xreallocarray(q->rec_wait, q->caprec_wait,
					    sizeof(*q->rec_wait));
	}
	o = &q->rec_wait[q->nrec_wait];
	memset(o, 0, sizeof(*o));
	o->m = m;
	o->body_fd = -1;
	o->res = xcalloc(n > 0 ? n : 1, sizeof(*o->res));
	/* in recipient order, as settle() and all_delivered() expect */
	for (size_t k = 0; k < n; k++) {
		if (res[k].skipped)
			continue;   /* not attempted: nothing to record */
		size_t at = o->n;
		while (at > 0 && o->res[at - 1].idx > res[k].idx) {
			o->res[at] = o->res[at - 1];
			at--;
		}
		struct dq_res *r = &o->res[at];
		memset(r, 0, sizeof(*r));
		r->idx = res[k].idx;
		r->st = res[k].st;
		r->diag = res[k].diag;
		res[k].diag = NULL;
		r->remote_mta = res[k].remote_mta;
		res[k].remote_mta = NULL;
		memcpy(r->status, res[k].status, sizeof(r->status));
		r->relayed = true;
		r->peer_dsn = res[k].peer_dsn;
		r->delays[0] = res[k].delay_queue;
		r->delays[1] = res[k].delay_conn;
		r->delays[2] = res[k].delay_xfer;
		o->n++;
	}
	if (o->n == 0) {
		/* nothing was attempted: the message waits as it was */
		free(o->res);
		m->running = false;
		m->due = msg_due(q, m->env);
		heap_push(q, m);
		return;
	}
	q->nrec_wait++;
	q->records++;
	run_records(q);
}

/*
 * Starts a record job for the relay outcomes that wait: at once when none
 * runs, else only beside a full batch, so that outcomes arriving while
 * one job writes share the next job's removal and its one directory
 * fsync (as Maildir jobs do, run_due).
 */
static void
run_records(struct deliverq *q)
{
	while (q->nrec_wait > 0 && q->rec_jobs < q->max_running &&
	       (q->rec_jobs == 0 || q->nrec_wait >= DELIVER_BATCH_MAX)) {
		struct dq_job *j = xcalloc(1, sizeof(*j));
		size_t n = q->nrec_wait < DELIVER_BATCH_MAX ? q->nrec_wait :
			   DELIVER_BATCH_MAX;
		j->q = q;
		j->record = true;
		j->now = q->now;
		j->one = xcalloc(n, sizeof(*j->one));
		j->n = n;
		memcpy(j->one, q->rec_wait, n * sizeof(*j->one));
		memmove(q->rec_wait, q->rec_wait + n,
			(q->nrec_wait - n) * sizeof(*q->rec_wait));
		q->nrec_wait -= n;
		q->rec_jobs++;
		workq_submit(q->wq, job_work, job_done, j);
	}
}

void
deliverq_set_relay(struct deliverq *q, struct relay *relay)
{
	q->relay = relay;
}

/* the reports a job queued go to the runner like any new message */
static void
take_reports(struct deliverq *q, struct dq_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct spool_envelope *rep = j->one[i].report;
		if (rep == NULL)
			continue;
		j->one[i].report = NULL;
		deliverq_add_new(q, rep, q->now);
	}
}

static void
job_done_direct(struct dq_job *j)
{
	struct deliverq *q = j->q;

	take_reports(q, j);

	for (size_t i = 0; i < j->n; i++) {
		struct dq_one *o = &j->one[i];
		struct dq_msg *m = o->m;

		one_release(o);
		/* the callback may free the session, and with it env */
		m->direct_cb(m->direct_arg, o->finished);
		free(m);
	}
	q->direct_running--;
	q->direct_msgs -= (unsigned)j->n;
	free(j->one);
	free(j);
	run_direct(q);
}

static void
job_done(void *arg)
{
	struct dq_job *j = arg;
	struct deliverq *q = j->q;

	if (j->direct) {
		job_done_direct(j);
		return;
	}
	take_reports(q, j);

	for (size_t i = 0; i < j->n; i++) {
		struct dq_one *o = &j->one[i];
		struct dq_msg *m = o->m;

		one_release(o);
		m->running = false;
		if (o->finished) {
			msg_release(q, m);
		} else if (m->deleted) {
			msg_delete(q, m);
		} else if (!j->record && !q->closing &&
			   msg_due_relay(q, m->env, q->now)) {
			relay_dispatch(q, m);
		} else {
			m->due = msg_due(q, m->env);
			heap_push(q, m);
		}
	}
	if (j->record) {
		q->records -= (unsigned)j->n;
		q->rec_jobs--;
		run_records(q);
	} else {
		q->running--;
		q->running_msgs -= (unsigned)j->n;
	}
	free(j->one);
	free(j);
	run_due(q);
}

/* starts one job with up to DELIVER_BATCH_MAX due messages */
static void
start_job(struct deliverq *q)
{
	struct dq_job *j = xcalloc(1, sizeof(*j));

	j->q = q;
	j->now = q->now;
	j->one = xcalloc(DELIVER_BATCH_MAX, sizeof(*j->one));
	while (j->n < DELIVER_BATCH_MAX && q->nheap > 0 &&
	       q->heap[0]->due <= q->now) {
		struct dq_msg *m = heap_pop(q);
		const struct spool_envelope *env = m->env;
		if (!env_final(env) && !msg_due_local(env, q->now) &&
		    msg_due_relay(q, env, q->now)) {
			relay_dispatch(q, m);
			continue;
		}
		struct dq_one *o = &j->one[j->n++];
		o->m = m;
		o->body_fd = -1;
		o->res = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1,
				 sizeof(*o->res));
		for (size_t i = 0; i < env->nrcpts; i++) {
			if (rcpt_due(&env->rcpts[i], q->now))
				o->res[o->n++].idx = i;
		}
		m->running = true;
	}
	q->running++;
	q->running_msgs += (unsigned)j->n;
	workq_submit(q->wq, job_work, job_done, j);
}

/*
 * Starts due messages, oldest due first, up to the in-flight limit. A
 * second job starts only beside a full one: messages that arrive while a
 * job runs wait for it and then go out as one batch, which shares its
 * fsyncs; parallel jobs pay off only once one batch cannot take them all.
 */
static void
run_due(struct deliverq *q)
{
	/* messages that only the relay agent has work for do not wait for
	 * a job */
	while (!q->closing && q->nheap > 0 && q->heap[0]->due <= q->now &&
	       !env_final(q->heap[0]->env) &&
	       !msg_due_local(q->heap[0]->env, q->now) &&
	       msg_due_relay(q, q->heap[0]->env, q->now))
		relay_dispatch(q, heap_pop(q));
	while (!q->closing && q->running < q->max_running && q->nheap > 0 &&
	       q->heap[0]->due <= q->now &&
	       (q->running == 0 || q->nheap >= DELIVER_BATCH_MAX))
		start_job(q);
}

/*
 * Starts a batch of the waiting direct messages. Their sessions wait for
 * it, so it starts at once when no direct batch runs; what arrives
 * meanwhile forms the next one and shares its syncs (as the spool's group
 * commit does). A second batch starts beside a running one only when a
 * full batch waits: two batches in flight each pay for a syncfs that
 * writes the other's files too (spool_sync.c), and measured at 10 and 50
 * sessions, one at a time took a quarter less CPU per message.
 */
static void
run_direct(struct deliverq *q)
{
	while (q->direct_running < q->max_running && q->direct_head != NULL &&
	       (q->direct_running == 0 ||
		q->direct_waiting >= DELIVER_DIRECT_BATCH_MAX)) {
		struct dq_job *j = xcalloc(1, sizeof(*j));
		j->q = q;
		j->direct = true;
		j->now = q->now;
		j->one = xcalloc(DELIVER_DIRECT_BATCH_MAX, sizeof(*j->one));
		while (j->n < DELIVER_DIRECT_BATCH_MAX && q->direct_head != NULL) {
			struct dq_msg *m = q->direct_head;
			const struct spool_envelope *env = m->env;
			struct dq_one *o = &j->one[j->n++];
			q->direct_head = m->direct_next;
			o->m = m;
			o->body_fd = -1;
			o->res = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1,
					 sizeof(*o->res));
			for (size_t i = 0; i < env->nrcpts; i++) {
				if (!rcpt_final(&env->rcpts[i]))
					o->res[o->n++].idx = i;
			}
		}
		if (q->direct_head == NULL)
			q->direct_tail = &q->direct_head;
		q->direct_waiting -= (unsigned)j->n;
		q->direct_running++;
		workq_submit(q->wq, job_work, job_done, j);
	}
}

void
deliverq_direct(struct deliverq *q, struct spool_envelope *env,
		const void *body, size_t len, deliverq_direct_cb *cb,
		void *arg)
{
	struct dq_msg *m = xcalloc(1, sizeof(*m));

	m->env = env;
	m->fresh = true; /* its id is new: no attempt can have been made */
	m->mem = body;
	m->memlen = len;
	m->direct_cb = cb;
	m->direct_arg = arg;
	if (env->received_at > q->now)
		q->now = env->received_at;
	*q->direct_tail = m;
	q->direct_tail = &m->direct_next;
	q->direct_msgs++;
	q->direct_waiting++;
	run_direct(q);
}

unsigned
deliverq_direct_pending(const struct deliverq *q)
{
	return q->direct_msgs;
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
	q->direct_tail = &q->direct_head;
	/* a limit left at 0 (a hand-made config) takes its default */
	q->policy = (struct sched_policy){
		.retry_min = conf->retry_min > 0 ? conf->retry_min :
			     CONF_RETRY_MIN_DEFAULT,
		.retry_max = conf->retry_max > 0 ? conf->retry_max :
			     CONF_RETRY_MAX_DEFAULT,
		.lifetime = conf->queue_lifetime > 0 ? conf->queue_lifetime :
			    CONF_QUEUE_LIFETIME_DEFAULT,
		.delay_warning = conf->delay_warning,
	};
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
	while (q->running > 0 || q->direct_msgs > 0 || q->records > 0 ||
	       q->ctls > 0) {
		run_direct(q);
		run_records(q);
		struct pollfd pfd = { .fd = workq_fd(q->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(q->wq);
	}
	for (size_t i = 0; i < q->nheap; i++)
		msg_release(q, q->heap[i]);
	/* the relay agent was freed first: these get no outcome now and
	 * stay in the spool as they are */
	while (q->relaying != NULL) {
		struct dq_msg *m = q->relaying;
		q->relaying = m->relay_next;
		msg_release(q, m);
	}
	TN_ASSERT(q->nrec_wait == 0);
	free(q->rec_wait);
	free(q->heap);
	free(q);
}

static void
dq_add(struct deliverq *q, struct spool_envelope *env, int64_t now,
       bool fresh)
{
	struct dq_msg *m = xcalloc(1, sizeof(*m));

	m->fresh = fresh;
	if (now > q->now)
		q->now = now;
	m->env = env;
	m->due = msg_due(q, env);
	m->seq = q->seq++;
	all_add(q, m);
	heap_push(q, m);
	run_due(q);
}

void
deliverq_add(struct deliverq *q, struct spool_envelope *env, int64_t now)
{
	dq_add(q, env, now, false);
}

void
deliverq_add_new(struct deliverq *q, struct spool_envelope *env, int64_t now)
{
	dq_add(q, env, now, true);
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
	return (unsigned)q->nheap + q->running_msgs + q->nrelaying +
	       q->records;
}

/* ---- queue control ----------------------------------------------------- */

struct dq_ctl {
	struct deliverq *q;
	struct dq_msg *m;          /* delete: freed in done */
	char id[SPOOL_ID_LEN + 1];
	bool held;
	int err;
	deliverq_ctl_cb *cb;
	void *arg;
};

static struct dq_msg *
find(const struct deliverq *q, const char *id)
{
	for (struct dq_msg *m = q->all; m != NULL; m = m->all_next)
		if (strcmp(m->env->id, id) == 0)
			return m;
	return NULL;
}

void
deliverq_each(const struct deliverq *q, deliverq_each_fn *fn, void *arg)
{
	for (const struct dq_msg *m = q->all; m != NULL; m = m->all_next)
		fn(arg, m->env, m->running && !m->relaying, m->due);
}

const struct spool_envelope *
deliverq_find(const struct deliverq *q, const char *id, bool *busy_r)
{
	const struct dq_msg *m = find(q, id);

	if (m == NULL)
		return NULL;
	if (busy_r != NULL)
		*busy_r = m->running && !m->relaying;
	return m->env;
}

unsigned
deliverq_flush(struct deliverq *q, const char *id, int64_t now)
{
	unsigned n = 0;

	if (now > q->now)
		q->now = now;
	for (size_t i = 0; i < q->nheap; i++) {
		struct dq_msg *m = q->heap[i];
		struct spool_envelope *env = m->env;
		if (id != NULL && strcmp(env->id, id) != 0)
			continue;
		/* in memory only: the records keep the old next try, and a
		 * restart simply waits for it */
		for (size_t k = 0; k < env->nrcpts; k++)
			if (env->rcpts[k].state == SPOOL_RCPT_DEFERRED)
				env->rcpts[k].next_try = q->now;
		m->due = msg_due(q, env);
		n++;
	}
	heap_rebuild(q);
	run_due(q);
	return n;
}

static void
hold_work(void *arg)
{
	struct dq_ctl *c = arg;

	if (spool_msg_hold(c->q->spool, c->id, c->held) < 0)
		c->err = errno != 0 ? errno : EIO;
}

static void
ctl_done(void *arg)
{
	struct dq_ctl *c = arg;
	struct deliverq *q = c->q;

	q->ctls--;
	if (c->m != NULL)
		msg_release(q, c->m);
	if (c->cb != NULL)
		c->cb(c->arg, c->err);
	free(c);
	run_due(q);
}

int
deliverq_hold(struct deliverq *q, const char *id, bool held,
	      deliverq_ctl_cb *cb, void *arg)
{
	struct dq_msg *m = find(q, id);
	struct dq_ctl *c;

	if (m == NULL || m->deleted)
		return -1;
	/* held is read on this thread only (msg_due); a job never writes it */
	m->env->held = held;
	if (!m->running) {
		if (!held)
			for (size_t k = 0; k < m->env->nrcpts; k++)
				if (m->env->rcpts[k].state ==
				    SPOOL_RCPT_DEFERRED)
					m->env->rcpts[k].next_try = q->now;
		m->due = msg_due(q, m->env);
		heap_rebuild(q);
	}
	c = xcalloc(1, sizeof(*c));
	c->q = q;
	memcpy(c->id, id, sizeof(c->id));
	c->held = held;
	c->cb = cb;
	c->arg = arg;
	q->ctls++;
	workq_submit(q->wq, hold_work, ctl_done, c);
	return 0;
}

static void
delete_work(void *arg)
{
	struct dq_ctl *c = arg;

	if (spool_remove(c->q->spool, c->id) < 0 && errno != ENOENT)
		c->err = errno != 0 ? errno : EIO;
}

/* takes m out of the heap (when it is there) and removes it from the
 * spool; m is freed once that is done */
static void
msg_delete(struct deliverq *q, struct dq_msg *m)
{
	struct dq_ctl *c = xcalloc(1, sizeof(*c));

	for (size_t i = 0; i < q->nheap; i++) {
		if (q->heap[i] == m) {
			q->heap[i] = q->heap[--q->nheap];
			heap_rebuild(q);
			break;
		}
	}
	c->q = q;
	c->m = m;
	memcpy(c->id, m->env->id, sizeof(c->id));
	c->cb = m->delete_cb;
	c->arg = m->delete_arg;
	log_info("queue id=%s event=deleted nrcpt=%zu", m->env->id,
		 m->env->nrcpts);
	q->ctls++;
	workq_submit(q->wq, delete_work, ctl_done, c);
}

int
deliverq_delete(struct deliverq *q, const char *id, deliverq_ctl_cb *cb,
		void *arg)
{
	struct dq_msg *m = find(q, id);

	if (m == NULL || m->deleted)
		return -1;
	m->deleted = true;
	m->delete_cb = cb;
	m->delete_arg = arg;
	/* a running attempt ends first: job_done or the relay's outcome
	 * sees the mark */
	if (!m->running)
		msg_delete(q, m);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * deliver_int.h: private structures of the queue runner and the retry
 * policy, shared with the unit tests. Nothing outside src/deliver/ and
 * tests/unit/deliver/ includes this.
 */
#ifndef TERN_DELIVER_INT_H
#define TERN_DELIVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deliver/deliver.h"
#include "sched/sched.h"

/* retry delay after a failed spool update (the delivery repeats, deduped) */
#define DELIVER_RECORD_RETRY     60
/* messages one delivery job takes (they share fsync waits) */
#define DELIVER_BATCH_MAX        32
/* messages one direct batch takes: their sessions wait for one syncfs */
#define DELIVER_DIRECT_BATCH_MAX 128

/*
 * Delivery status notifications (deliver_dsn.c; worker thread). Sends
 * the report env owes at `now` (mem: its body when it is in memory):
 * returns 1 with the report's queued envelope in *report_r (heap, for
 * the runner to take up) and the recipients it marked (flags) in
 * *changed_r (heap) / *nchanged_r, 0 when none is owed, -1 when it could
 * not be sent (logged; tried again after the next attempt).
 */
int deliver_dsn_send(struct deliverq *q, struct spool_envelope *env,
		     const void *mem, size_t memlen, int64_t now,
		     struct spool_envelope **report_r, size_t **changed_r,
		     size_t *nchanged_r);
/* true while a final recipient of env is owed a report */
bool deliver_dsn_owed(const struct deliverq *q,
		      const struct spool_envelope *env);

/* the SRS sender for mail forwarded from `sender` (heap), or NULL when
 * it cannot be made (deliver_srs.c) */
char *deliver_srs_sender(const struct tern_conf *conf, const char *sender,
			 int64_t now);

/* the Maildir name part for recipient idx of env: "<received_at>.<id>_<idx>" */
char *deliver_unique(const struct spool_envelope *env, size_t idx);

/* the configured user called name (case-insensitive), or NULL */
const struct conf_user *deliver_find_user(const struct tern_conf *conf,
					  const char *name);

struct dq_msg {
	struct spool_envelope *env;
	int64_t due;            /* INT64_MIN: now; INT64_MAX: nothing to do */
	uint64_t seq;           /* ties in due keep arrival order */
	bool running;           /* in a job, or with the relay agent */
	bool relaying;          /* ... with the relay agent */
	bool fresh;             /* committed by this process, never tried */
	/* a direct delivery (deliverq_direct): env is the caller's, the
	 * body is in memory, and the message is never queued here */
	const void *mem;
	size_t memlen;
	deliverq_direct_cb *direct_cb;
	void *direct_arg;
	struct dq_msg *direct_next;
	struct dq_msg *relay_next, *relay_prev; /* while relaying */
	struct dq_msg *all_next, *all_prev;     /* every queued message */
	bool deleted;           /* `tern queue delete`: gone after its
				 * attempt */
	deliverq_ctl_cb *delete_cb;
	void *delete_arg;
};

struct deliverq {
	struct spool *spool;
	struct workq *wq;
	const struct tern_conf *conf;
	struct sched_policy policy;
	struct relay *relay;    /* NULL: relay recipients wait */
	struct dq_msg *relaying; /* messages with the relay agent */
	struct dq_msg *all;     /* every message held, for queue control */
	unsigned nrelaying;
	unsigned records;       /* relay outcomes waiting for or in a
				 * record job (messages) */
	struct dq_one *rec_wait; /* ... waiting, oldest first */
	size_t nrec_wait, caprec_wait;
	unsigned rec_jobs;      /* record jobs running */
	unsigned ctls;          /* hold and delete jobs running */
	int64_t now;            /* from the last add or tick */
	uint64_t seq;
	unsigned running, max_running; /* jobs */
	unsigned running_msgs;  /* messages in the running jobs */
	bool closing;
	struct dq_msg *direct_head, **direct_tail; /* waiting direct ones */
	unsigned direct_running;  /* direct jobs */
	unsigned direct_msgs;     /* direct messages waiting or running */
	unsigned direct_waiting;  /* ... waiting */
	struct dq_msg **heap;   /* waiting messages, min-heap on (due, seq) */
	size_t nheap, capheap;
};

#endif

/* SPDX-License-Identifier: MIT */
/*
 * spool: the durable queue. It owns every fsync and rename of mail.
 *
 * A message is written to spool/tmp/ while it is received, and committed
 * with its envelope by a group commit: the commits of many sessions are
 * made durable together on a worker thread (file fsync, rename into
 * spool/queue/, directory fsync), and each session's callback runs on the
 * event loop only once its message is durable. Nothing that yields a 250
 * is answered before that. Each recipient of a committed message has a
 * durable state (pending, delivered, deferred with its next try, bounced)
 * that delivery agents update; a message whose recipients are all final
 * is removed, and its file reused for a later message. spool_recover()
 * rebuilds the queue after a crash.
 *
 * Threading: every function here is called on the event-loop thread,
 * except where it says "any thread".
 */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#define SPOOL_ID_LEN 20   /* characters in a queue id, [0-9A-Za-z] */

enum spool_rcpt_state {
	SPOOL_RCPT_PENDING = 0,
	SPOOL_RCPT_DELIVERED,
	SPOOL_RCPT_DEFERRED,  /* not before next_try */
	SPOOL_RCPT_BOUNCED,   /* failed for good */
};

enum spool_agent {
	SPOOL_AGENT_LOCAL = 0, /* Maildir of a local user */
	SPOOL_AGENT_RELAY,     /* outbound SMTP to dest's domain */
};

/* spool_rcpt.flags */
#define SPOOL_RCPT_F_FORWARDED  0x01u /* reached through an alias: relayed
				       * with an SRS sender */
#define SPOOL_RCPT_F_DELAY_SENT 0x02u /* a delay DSN went out for it */
#define SPOOL_RCPT_F_DSN_DONE   0x04u /* its final DSN (bounce, success)
				       * is durable, or none is due */

struct spool_rcpt {
	char *address;        /* as given in RCPT TO, without <> */
	char *orcpt;          /* DSN ORCPT=, or NULL */
	unsigned notify;      /* DSN NOTIFY= mask (smtp.h values) */
	enum spool_agent agent;
	char *dest;           /* LOCAL: user name; RELAY: address */
	enum spool_rcpt_state state;
	int64_t next_try;     /* DEFERRED: unix time */
	unsigned attempts;
	char *diag;           /* last delivery diagnostic, or NULL: the
			       * remote reply ("550 5.1.1 no such user")
			       * or a local reason */
	/* since spool format 2 (absent in older files: 0 / NULL) */
	unsigned flags;       /* SPOOL_RCPT_F_* */
	char *status;         /* RFC 3463 code of the last outcome, or NULL */
	char *remote_mta;     /* who answered: "mx.example.org[192.0.2.1]:25" */
	int64_t last_try;     /* unix time of the last attempt, 0: none */
};

struct spool_envelope {
	char id[SPOOL_ID_LEN + 1];
	char *mail_from;      /* "" for the null reverse-path */
	char *helo;
	char *client_addr;    /* peer address text */
	char *envid;          /* DSN ENVID=, or NULL */
	unsigned ret;         /* smtp.h enum smtp_dsn_ret */
	unsigned body;        /* smtp.h enum smtp_body_type */
	bool smtputf8;
	int64_t received_at;  /* unix time */
	uint64_t size;        /* body octets (the spooled message) */
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	/* since spool format 2 */
	bool held;            /* `tern queue hold`: no delivery until release */
	int64_t received_us;  /* receipt in microseconds, 0: not known */
	unsigned dsn_kind;    /* SPOOL_DSN_*: what kind of report this is */
};

/* spool_envelope.dsn_kind: a notification is never answered by another
 * one to its null sender, and a report to postmaster about a failed
 * report is the last word (no loops) */
#define SPOOL_DSN_NONE    0u  /* an ordinary message */
#define SPOOL_DSN_REPORT  1u  /* a DSN to the envelope sender */
#define SPOOL_DSN_DOUBLE  2u  /* a failed DSN, reported to postmaster */

/* deep copy / release of envelopes */
struct spool_envelope *spool_envelope_dup(const struct spool_envelope *env);
void spool_envelope_free(struct spool_envelope **envp);
/* frees the strings of a recipient and zeroes it */
void spool_rcpt_clear(struct spool_rcpt *r);
/* frees the members of an embedded envelope and zeroes it */
void spool_envelope_clear(struct spool_envelope *env);

struct spool;
struct spool_msg;

/*
 * Opens (creating as needed) the spool under dir: dir/tmp, dir/queue.
 * wq runs the blocking work (fsync). Returns 0, or -1 with *error_r (a
 * static or errno text, not to be freed). The spool holds an exclusive
 * flock on dir/lock while open: a second spool_open() of the same
 * directory (from any process) fails. Files that recovery finds damaged
 * are moved to dir/corrupt/.
 */
int spool_open(const char *dir, struct workq *wq, struct spool **spool_r,
	       const char **error_r);
/* waits for commits in flight, then frees */
void spool_free(struct spool **spoolp);

/* starts a new message in spool/tmp/ and gives it a fresh unique id */
int spool_msg_new(struct spool *s, struct spool_msg **msg_r,
		  const char **error_r);
const char *spool_msg_id(const struct spool_msg *m);
/* appends body bytes (buffered); an error is sticky and fails the commit */
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
/* body octets written so far */
uint64_t spool_msg_size(const struct spool_msg *m);
/*
 * The whole body, when all of it is still in memory (none of it was
 * written to the file yet, and no write failed): true with the body in
 * *p_r and *len_r, valid until the message is committed or aborted.
 */
bool spool_msg_body(const struct spool_msg *m, const void **p_r,
		    size_t *len_r);
/* drops the message and its tmp file (a file never written to is kept
 * ready for the next message) */
void spool_msg_abort(struct spool_msg **mp);

/*
 * result 0: the message and its envelope are durable in spool/queue/;
 * -1: nothing was committed (error logged). Runs on the loop thread.
 */
typedef void spool_commit_cb(void *arg, int result);

/*
 * Writes the envelope (copied; its id is ignored and the message's id is
 * used, env->size is set from the bytes written) and queues the message
 * for the next group commit. Takes ownership of m: *mp becomes NULL.
 */
void spool_msg_commit(struct spool_msg **mp,
		      const struct spool_envelope *env,
		      spool_commit_cb *cb, void *arg);

/*
 * Records the state of recipient `idx` of message `id` durably (blocking:
 * call it on a worker thread; any thread). Returns 0 or -1.
 */
int spool_rcpt_update(struct spool *s, const char *id, size_t idx,
		      const struct spool_rcpt *rcpt);
/*
 * The same for n recipients in one write and one fdatasync: rcpts[k] is
 * the new state of recipient idx[k] (each idx < the message's nrcpts).
 * Updates of one message may come from any thread; they are serialised.
 * Returns 0, or -1 with errno (nothing of this call is then on disk).
 */
int spool_rcpt_update_n(struct spool *s, const char *id, const size_t *idx,
			const struct spool_rcpt *rcpts, size_t n);
/*
 * Writes a whole message made here (a delivery status notification)
 * durably into queue/ under a new id (blocking; any thread): the file is
 * written and fdatasynced under tmp/, renamed into queue/, and queue/ is
 * fsynced. env is copied (its id and size are replaced); id_r gets the
 * id (SPOOL_ID_LEN + 1 octets). 0, or -1 with errno and nothing queued.
 */
int spool_inject(struct spool *s, const struct spool_envelope *env,
		 const void *body, size_t len, char *id_r);

/*
 * Records the hold flag of message `id` durably (blocking; any thread),
 * as a message record after the recipient records. 0 or -1 with errno.
 */
int spool_msg_hold(struct spool *s, const char *id, bool held);
/*
 * Removes messages whose recipients are all final, with every outcome
 * durable (blocking; any thread): a Maildir copy fsynced with its new/
 * directory, or a state record. A crash may undo a removal; recovery
 * then hands the message over again, intact. The files are kept in
 * tmp/ for reuse by later messages once their removal from queue/ is
 * durable (one fsync of queue/ for the whole call). errs[k] is 0, or the
 * errno of ids[k] (ENOENT: it was not queued). Returns 0, or -1 when any
 * failed.
 */
int spool_remove_n(struct spool *s, const char *const *ids, size_t n,
		   int *errs);
/* the same for one message; 0 or -1 with errno */
int spool_remove(struct spool *s, const char *id);

/*
 * Opens the body of a committed message for reading (any thread): *fd_r
 * is a new fd the caller closes; the body is `len` octets from `off`.
 */
int spool_body_open(struct spool *s, const char *id, int *fd_r,
		    uint64_t *off_r, uint64_t *len_r);

/*
 * The delivery history of a queued message: its records (spool_format.c)
 * in the order they were written. Recovery keeps only the last record of
 * each recipient; together they say what each attempt found.
 */
enum spool_hist_kind {
	SPOOL_HIST_RCPT = 0,  /* a recipient's state after an attempt (or
			       * after a report about it went out) */
	SPOOL_HIST_MSG,       /* message fields set by a command */
};

/* spool_hist.set: the message fields a message record sets */
#define SPOOL_HIST_SET_HELD 0x01u

struct spool_hist {
	enum spool_hist_kind kind;
	unsigned format;      /* of the record: 1 or 2 */
	/* SPOOL_HIST_RCPT: recipient idx's whole state as the record left
	 * it. A format 1 record holds no flags, status, remote_mta or
	 * last_try: 0 and NULL here. */
	size_t idx;
	enum spool_rcpt_state state;
	unsigned attempts;
	int64_t last_try;     /* unix time, 0: not recorded */
	int64_t next_try;
	unsigned flags;       /* SPOOL_RCPT_F_* */
	char *status;
	char *remote_mta;
	char *diag;
	/* SPOOL_HIST_MSG: what the record sets (SPOOL_HIST_SET_*), and to
	 * what */
	unsigned set;
	bool held;
};

struct spool_history {
	struct spool_hist *v; /* the last n records, oldest first */
	size_t n;
	size_t omitted;       /* earlier records left out: past the cap */
	uint64_t torn;        /* octets after the last whole record: a
			       * record cut by a crash, not history */
};

/* records a `tern queue show` lists: the latest ones */
#define SPOOL_HISTORY_MAX_DEFAULT 200

/*
 * Reads the history of message `id` (blocking; any thread): h_r gets the
 * last `max` (>= 1) of its records in order, and how many earlier ones
 * it left out. Records are told from a torn tail exactly as recovery
 * does; a record being appended meanwhile is waited for (the writer's
 * lock), never read half. Format 1 and format 2 records are both read.
 * Returns 0 (clear h_r with spool_history_clear), or -1 with errno
 * (ENOENT: not queued; EBADMSG: the file is not a valid queue file) and
 * h_r empty.
 */
int spool_history_read(struct spool *s, const char *id, size_t max,
		       struct spool_history *h_r);
/* frees the entries of h and zeroes it */
void spool_history_clear(struct spool_history *h);

/*
 * After a crash or a stop: sweeps spool/tmp/ (its files are unlinked or
 * kept for reuse, never delivered), then calls cb once per
 * committed message with its envelope and recipient states (the callee
 * takes ownership of env). Messages whose recipients are all final are
 * removed instead. Blocking; call it before the loop starts.
 * Returns the number of messages handed to cb, or -1.
 */
typedef void spool_recover_cb(void *arg, struct spool_envelope *env);
int spool_recover(struct spool *s, spool_recover_cb *cb, void *arg);

/*
 * fsync (datasync: fdatasync) of n open files at once, their waits
 * overlapping (blocking; any thread). errs[k] is 0 or the errno of
 * fds[k]. Returns 0 when every file is durable, else -1. For batches of
 * the delivery agents too: one place knows how to make files durable.
 */
int spool_fsync_n(const int *fds, size_t n, bool datasync, int *errs);

/*
 * A batch of new files, made durable together (spool_sync.c says how).
 * spool_sync_by_fs(n), asked before the files are written, says whether
 * a batch of n will be synced by file system: then starting each file's
 * writeback early (sync_file_range) only splits the batch's requests.
 * spool_sync_batch() then makes fds[0..n) durable as spool_fsync_n()
 * does (same errs and return), by syncfs(2) and one cache flush per file
 * system when by_fs. As with fsync, the files' names are the caller's:
 * it still fsyncs the directory it renames them into.
 */
bool spool_sync_by_fs(size_t n);
int spool_sync_batch(const int *fds, size_t n, bool datasync, bool by_fs,
		     int *errs);

/* Dirty: + Writeback: of /proc/meminfo's text in KiB, -1 if either is
 * missing or malformed (exposed for its unit test) */
long spool_meminfo_unwritten(const char *text, size_t len);

/* how many commits are queued or in flight */
unsigned spool_commits_pending(const struct spool *s);

#endif

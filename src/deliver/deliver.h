/* SPDX-License-Identifier: MIT */
/*
 * deliver: delivery agents and the queue runner that drives them.
 *
 * The Maildir agent writes one message into one Maildir exactly once: it
 * writes tmp/<name>, fsyncs it, renames it into new/<name> and fsyncs
 * new/. The name is derived from the queue id and the recipient index, so
 * a second attempt after a crash finds the first one (in tmp/, new/ or
 * cur/) and neither loses nor doubles the message.
 *
 * The queue runner (struct deliverq) holds every committed message whose
 * recipients are not yet final, runs the agents on the worker pool,
 * records each recipient's outcome in the spool, retries temporary
 * failures with backoff, and removes a message once all its recipients
 * are final. Later agents (relay) plug in beside the Maildir agent.
 */
#ifndef TERN_DELIVER_H
#define TERN_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "conf/conf.h"
#include "spool/spool.h"

enum deliver_status {
	DELIVER_OK = 0,
	DELIVER_TEMPFAIL,
	DELIVER_PERMFAIL,
};

/*
 * The Maildir agent (blocking; any thread). Creates maildir/{tmp,new,cur}
 * as needed. `unique` is the per-(message, recipient) name part; the body
 * is len octets of body_fd from off, written after a "Return-Path: <from>"
 * line. Returns the status; on failure *error_r is a heap string the
 * caller frees.
 */
enum deliver_status maildir_deliver(const char *maildir, const char *unique,
				    const char *hostname,
				    const char *return_path, int body_fd,
				    uint64_t off, uint64_t len,
				    char **error_r);

/* one delivery of a batch for maildir_deliver_n() */
struct maildir_item {
	const char *maildir;
	const char *unique;
	const char *return_path;
	int body_fd;
	uint64_t off, len;
	/* or, when not NULL, the body is the len octets here (body_fd and
	 * off are then unused) */
	const void *body_mem;
	/* no earlier attempt exists (the name is the queue id's, and this is
	 * the first try since commit): skip the look in new/ and cur/ */
	bool first_attempt;
	enum deliver_status st;   /* out */
	char *error;              /* out: heap text the caller frees, or NULL */
};

/*
 * Delivers n messages with the guarantees of maildir_deliver() for each
 * (blocking; any thread), sharing the waits: every file is written and
 * its writeback started before the first is fsynced, and each Maildir's
 * new/ is fsynced once, after all the renames. Items must not repeat a
 * (maildir, unique) pair. Sets st and error of every item.
 */
void maildir_deliver_n(struct maildir_item *v, size_t n, const char *hostname);

/* ------------------------------------------------------------------ */
/*
 * The relay agent: delivers recipients of queued messages to other mail
 * servers over SMTP (the smtpc engine on net connections), on the loop
 * thread. It looks up each destination's route (MX hosts, or a route or
 * smarthost from the configuration), keeps at most relay_dest_max
 * connections per destination and relay_sessions_max in all, and sends
 * several messages over one connection. Bodies are read from the spool
 * on the worker pool. Each submission ends with one callback that holds
 * the outcome of every recipient it was given.
 */
struct relay;
struct net_dns;
struct event_base;

/* the outcome of one recipient of a relay submission */
struct relay_result {
	size_t idx;               /* recipient index in the envelope */
	enum deliver_status st;
	char *diag;               /* heap: the remote reply ("550 5.1.1 No
				   * such user") or what went wrong */
	char status[16];          /* RFC 3463 code: "2.0.0", "5.1.1" */
	char *remote_mta;         /* heap: "mx.example.org[192.0.2.1]:25",
				   * or NULL when no server answered */
	bool peer_dsn;            /* the server offered DSN (so it owns
				   * NOTIFY=SUCCESS from here) */
	bool skipped;             /* not attempted (relay_stop): its state
				   * stays as it was */
	double delay_queue;       /* seconds: submission to connection */
	double delay_conn;        /* DNS, connect, greeting, EHLO */
	double delay_xfer;        /* the transaction */
};

/*
 * res[0..n) are the recipients' outcomes, in the order they were given;
 * the callee may take the heap strings (set them NULL) and the agent
 * frees the rest after the callback returns.
 */
typedef void relay_done_cb(void *arg, void *cookie, struct relay_result *res,
			   size_t n);

/*
 * conf, spool, wq and dns must outlive the agent. It makes the TLS client
 * contexts the configured policies need and reads smarthost_password_file
 * now; a failure is logged and defers the mail of the destinations that
 * need what is missing (4.3.5), so that the server still starts.
 */
struct relay *relay_new(struct event_base *base, struct net_dns *dns,
			struct spool *spool, struct workq *wq,
			const struct tern_conf *conf, relay_done_cb *cb,
			void *arg);
/* drops every connection at once; submissions not finished get no
 * callback (their recipients stay as the spool has them) */
void relay_free(struct relay **rp);

/*
 * Delivers recipients idx[0..n) of env (their `dest` addresses). env is
 * borrowed and must stay unchanged until the callback for this cookie.
 * The callback never runs inside relay_submit().
 */
void relay_submit(struct relay *r, const struct spool_envelope *env,
		  const size_t *idx, size_t n, void *cookie);

/* submissions not yet called back */
unsigned relay_pending(const struct relay *r);

/*
 * A graceful stop: no connection or transaction starts any more; items
 * still waiting come back at once as `skipped` (no attempt was made),
 * transactions in flight finish. relay_busy() counts the connections
 * left.
 */
void relay_stop(struct relay *r);
unsigned relay_busy(const struct relay *r);

/* ------------------------------------------------------------------ */

struct deliverq;

/* conf must outlive the runner */
struct deliverq *deliverq_new(struct spool *spool, struct workq *wq,
			      const struct tern_conf *conf);
/* waits for deliveries in flight, then frees */
void deliverq_free(struct deliverq **qp);

/* hands a committed message to the runner (takes ownership of env);
 * `now` is unix time */
void deliverq_add(struct deliverq *q, struct spool_envelope *env,
		  int64_t now);
/*
 * The same for a message this process has just committed: no attempt can
 * have delivered it yet, so its first attempt does not look for an
 * earlier copy in the Maildirs (maildir_item.first_attempt).
 */
void deliverq_add_new(struct deliverq *q, struct spool_envelope *env,
		      int64_t now);

/*
 * Delivery before the 250. A session whose message is complete and held
 * in memory (spool_msg_body) hands it here instead of committing it to
 * the spool: the next direct batch writes every local recipient's
 * Maildir copy durably (file and new/ fsynced, as a queued delivery
 * does), under the name a queued delivery would give it, and then calls
 * cb on the loop thread. delivered == true: every recipient has its
 * durable copy, the message is done and nothing needs queueing (the
 * copies are at least as durable as a spool commit). false: some
 * recipient has no copy; env holds every recipient's outcome, as a
 * queued first attempt would have recorded it (delivered, deferred
 * with its next try, or bounced), and the caller commits the message
 * to the spool as usual and queues it with deliverq_add() (a retry
 * looks for an earlier copy). env and body are the caller's and must stay
 * untouched until cb runs; env->id, received_at and size must be set.
 */
typedef void deliverq_direct_cb(void *arg, bool delivered);
void deliverq_direct(struct deliverq *q, struct spool_envelope *env,
		     const void *body, size_t len, deliverq_direct_cb *cb,
		     void *arg);
/* direct deliveries queued or running (their callbacks not yet run) */
unsigned deliverq_direct_pending(const struct deliverq *q);

/* the relay agent for relay recipients (set once, before messages are
 * added); without one they stay pending. Its callback must be
 * deliverq_relay_done with the runner as its argument. */
void deliverq_set_relay(struct deliverq *q, struct relay *relay);
relay_done_cb deliverq_relay_done;

/* starts deliveries that are due; call it about once a second */
void deliverq_tick(struct deliverq *q, int64_t now);

/* messages held (not yet final) */
unsigned deliverq_count(const struct deliverq *q);

/*
 * Queue control (tern queue). Loop thread only. While a Maildir job or
 * a record job has a message (`busy`), only its fixed fields may be read
 * (id, senders, size, times, recipient addresses): the job writes the
 * recipient states.
 */
typedef void deliverq_each_fn(void *arg, const struct spool_envelope *env,
			      bool busy, int64_t due);
/* calls fn for every message held */
void deliverq_each(const struct deliverq *q, deliverq_each_fn *fn,
		   void *arg);
/* the message called id, or NULL */
const struct spool_envelope *deliverq_find(const struct deliverq *q,
					   const char *id, bool *busy_r);
/* deferred recipients of id (NULL: of every message) are due at once;
 * returns the number of messages it touched */
unsigned deliverq_flush(struct deliverq *q, const char *id, int64_t now);
/* result: 0, or an errno value */
typedef void deliverq_ctl_cb(void *arg, int result);
/*
 * Holds (no delivery until released) or releases message id, recorded
 * durably; a release also makes it due at once. cb runs on the loop
 * thread once the record is durable. -1 when no such message is queued.
 */
int deliverq_hold(struct deliverq *q, const char *id, bool held,
		  deliverq_ctl_cb *cb, void *arg);
/*
 * Deletes message id from the queue and the spool, silently (no bounce),
 * once an attempt in flight has ended. -1 when no such message.
 */
int deliverq_delete(struct deliverq *q, const char *id, deliverq_ctl_cb *cb,
		    void *arg);


/* ------------------------------------------------------------------ */
/*
 * SRS: Sender Rewriting Scheme for forwarded mail (deliver_srs.c).
 * Addresses in Shevek's form, compatible with libsrs2 and postsrsd:
 *   SRS0=HHHH=TT=domain=local@srs_domain
 *   SRS1=HHHH=fwdhost==HHHH=TT=domain=local@srs_domain
 * TT: (now / 86400) mod 1024 in two base32 digits. HHHH: the first four
 * base64 characters of HMAC-SHA1(secret, TT domain local) for SRS0 and
 * of HMAC-SHA1(secret, fwdhost srsuser) for SRS1, over the ASCII
 * lower-cased text; deliver_srs.c documents the exact input. No I/O,
 * no clock.
 */

/*
 * Rewrites the envelope sender of a message we forward. "local@domain"
 * becomes an SRS0 address at srs_domain; an SRS0 or SRS1 address of
 * another forwarder becomes SRS1; the null sender "" and any address
 * already at srs_domain (any case) stay as they are. Returns 0 and
 * *out_r (heap; the caller frees it), or -1 with *error_r (static text):
 * no secret or domain, a sender that is not local@domain, a quoted local
 * part, a malformed SRS1 sender.
 */
int deliver_srs_forward(const char *secret, const char *srs_domain,
			const char *sender, int64_t now, char **out_r,
			const char **error_r);

/*
 * Undoes deliver_srs_forward() for a bounce sent to address. Returns 1
 * and *orig_r (heap; the caller frees it) for a valid address: for SRS0
 * the original "local@domain", for SRS1 the SRS0 address at the first
 * forwarder. Returns 0 when address is not SRS at all (no
 * "SRS0"/"SRS1" tag and separator, in any case). Returns -1 with
 * *error_r (static text) when it is SRS but invalid: malformed, a hash
 * that does not match (compared case-insensitively, in constant time),
 * or an SRS0 timestamp older than max_age_days (0..1023; the day count
 * wraps every 1024 days).
 */
int deliver_srs_reverse(const char *secret, const char *address,
			int64_t now, int64_t max_age_days, char **orig_r,
			const char **error_r);
/* ---------------------------------------------------- end of SRS --- */

/*
 * The Maildir of an account (a local recipient given as an address):
 * <state_dir>/mail/<domain>/<local part>/Maildir; heap, or NULL when the
 * address would not make a safe path (a '/' or a "." or ".." label).
 */
char *deliver_account_maildir(const struct tern_conf *conf,
			      const char *address);

#endif

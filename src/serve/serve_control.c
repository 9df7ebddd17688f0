/* SPDX-License-Identifier: MIT */
/*
 * control: the administrator's queue commands (`tern queue`, `mailq`)
 * over a local socket, <state_dir>/control.sock, mode 0600: only the
 * server's user (and root) may connect. It reads the queue runner's
 * state on the loop thread, changes it only through deliver's queue
 * control API, and does no disk work on the loop thread (the header
 * block and the delivery history for `show` are read on the worker
 * pool).
 *
 * Protocol: the client sends one request line, ended by LF (a CR before
 * it is dropped; a line cut by the client's EOF counts too), of at most
 * CONTROL_LINE_MAX octets of printable ASCII:
 *
 *   list [json]          every queued message
 *   show ID [json]       one message, with its envelope, delivery history
 *                        and header block
 *   flush [ID]           deferred recipients (of ID, or of all) are due now
 *   hold ID              no delivery until release (recorded durably)
 *   release ID           ends a hold; the message is due at once
 *   delete ID            drops the message silently (no bounce)
 *
 * The server answers with a first line "ok" or "error: TEXT", then the
 * body (text, or one JSON document for `json`), and closes. One request
 * per connection; what follows it is read and discarded. hold, release
 * and delete answer only once the change is durable (a delete of a
 * message in delivery waits for that attempt to end). A client that
 * sends nothing for CONTROL_TIMEOUT_SECONDS, a line that is too long or
 * bytes that are not text get an error line and the close; the
 * connection never holds more than CONTROL_LINE_MAX octets of request.
 *
 * A connection is never freed inside its own callbacks: it is marked and
 * reaped by an event after the loop turn (reap_ev). An operation waiting
 * for the runner or the worker pool outlives its connection: it then
 * finds cc == NULL and only frees itself.
 */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"

#define CONTROL_SOCKET_NAME "control.sock"
#define CONTROL_SOCKET_MODE 0600
/* a request line, without its LF: "show <20 characters> json" is 30 */
#define CONTROL_LINE_MAX 256
/* no request for this long: error and close; no progress on the answer
 * for two of these: close */
#define CONTROL_TIMEOUT_SECONDS 10
/* control connections at once; more get an error line */
#define CONTROL_CONNS_MAX 16
/* at most this much of a message is read for its header block */
#define CONTROL_HEADERS_MAX (64 * 1024)
/* the latest records `show` lists of a message's history; earlier ones
 * are counted, not shown (a message retried for days has hundreds) */
#define CONTROL_HISTORY_MAX SPOOL_HISTORY_MAX_DEFAULT

struct ctl_op;

enum ctl_phase {
	CTL_READING = 0,   /* the request line is arriving */
	CTL_WAITING,       /* an operation runs for it */
	CTL_ANSWERED,      /* the answer is queued; FIN after it */
};

struct ctl_conn {
	struct ctl_conn *next, *prev;
	struct serve_control *ctl;
	struct conn *conn;
	struct buf line;           /* the request so far */
	struct ctl_op *op;         /* in CTL_WAITING */
	enum ctl_phase phase;
	bool peer_eof;             /* the client closed its side */
	bool reap;                 /* freed after this loop turn */
	size_t out_last;           /* output queued at the last timeout */
};

enum ctl_op_kind {
	CTL_OP_HOLD = 0,
	CTL_OP_RELEASE,
	CTL_OP_DELETE,
	CTL_OP_SHOW,
};

struct ctl_op {
	struct ctl_op *next, *prev;
	struct serve_control *ctl;
	struct ctl_conn *cc;       /* NULL once the connection is gone */
	enum ctl_op_kind kind;
	char id[SPOOL_ID_LEN + 1];
	bool json;
	struct buf out;            /* show: the answer so far */
	/* show: the header read, on a worker thread */
	struct spool *spool;
	uint8_t *hdr;
	size_t hdrlen;
	bool truncated;            /* no blank line within the bytes read */
	int err;                   /* errno of the read, or 0 */
	/* show: the delivery history, read on the worker thread, and the
	 * recipients' addresses it names by index (copied on the loop
	 * thread: the runner owns the envelope) */
	struct spool_history hist;
	int hist_err;              /* errno of its read, or 0 */
	char **addrs;
	size_t naddrs;
};

struct serve_control {
	struct tern_server *srv;
	struct net_listener *listener;
	char *path;
	struct ctl_conn *conns;
	unsigned nconns;
	struct ctl_op *ops;        /* waiting for the runner or a read */
	unsigned reading;          /* header reads on the worker pool */
	struct event *reap_ev;
};

static const char *const ctl_op_name[] = {
	[CTL_OP_HOLD] = "hold",
	[CTL_OP_RELEASE] = "release",
	[CTL_OP_DELETE] = "delete",
	[CTL_OP_SHOW] = "show",
};

/* ---- text and JSON output ------------------------------------------------ */


/*
 * A JSON string (RFC 8259 §7): quote, backslash and control characters
 * escaped; a byte that is not part of well-formed UTF-8 becomes U+FFFD,
 * so that the document is always valid UTF-8.
 */
static void
json_bytes(struct buf *b, const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t i = 0;

	buf_append(b, "\"", 1);
	while (i < n) {
		uint8_t c = p[i];
		uint32_t cp;
		size_t len;

		if (c == '"' || c == '\\') {
			buf_printf(b, "\\%c", c);
			i++;
		} else if (c == '\n') {
			buf_append_str(b, "\\n");
			i++;
		} else if (c == '\r') {
			buf_append_str(b, "\\r");
			i++;
		} else if (c == '\t') {
			buf_append_str(b, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
			i++;
		} else if ((len = utf8_char(p + i, n - i, &cp)) == 0) {
			buf_append_str(b, "\\ufffd");
			i++;
		} else {
			buf_append(b, p + i, len);
			i += len;
		}
	}
	buf_append(b, "\"", 1);
}

static void
json_str(struct buf *b, const char *s)
{
	if (s == NULL)
		buf_append_str(b, "null");
	else
		json_bytes(b, s, strlen(s));
}

/*
 * Peer text for a terminal: well-formed UTF-8 except control characters
 * (C0, DEL, C1) passes; everything else becomes \xHH, so that no header
 * or reply can move the cursor or retitle the administrator's terminal.
 * multiline keeps LF and TAB and drops the CR of a CRLF.
 */
static void
text_bytes(struct buf *b, const void *data, size_t n, bool multiline)
{
	const uint8_t *p = data;
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		uint32_t cp;
		size_t len;

		if (multiline && (c == '\n' || c == '\t')) {
			buf_append(b, &c, 1);
			i++;
			continue;
		}
		if (multiline && c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			i++;
			continue;
		}
		len = utf8_char(p + i, n - i, &cp);
		if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			buf_printf(b, "\\x%02x", c);
			i++;
			continue;
		}
		buf_append(b, p + i, len);
		i += len;
	}
}

static void
text_str(struct buf *b, const char *s)
{
	text_bytes(b, s, strlen(s), false);
}

/* "45s", "12m", "3h05m", "2d04h" */
static void
fmt_dur(char *out, size_t outsz, int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, outsz, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(out, outsz, "%" PRId64 "m", s / 60);
	else if (s < 86400)
		snprintf(out, outsz, "%" PRId64 "h%02" PRId64 "m", s / 3600,
			 s % 3600 / 60);
	else
		snprintf(out, outsz, "%" PRId64 "d%02" PRId64 "h", s / 86400,
			 s % 86400 / 3600);
}

/* "2024-05-01 12:00:00Z" */
static void
fmt_time(char *out, size_t outsz, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, outsz, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(out, outsz, "%" PRId64, t);
}

static const char *
state_name(enum spool_rcpt_state st)
{
	switch (st) {
	case SPOOL_RCPT_PENDING:
		return "pending";
	case SPOOL_RCPT_DELIVERED:
		return "delivered";
	case SPOOL_RCPT_DEFERRED:
		return "deferred";
	case SPOOL_RCPT_BOUNCED:
		return "bounced";
	}
	return "unknown";
}

/* how a busy message's recipients show: a job owns their states */
#define CTL_BUSY_STATE "in delivery"

/* one recipient line of the human formats */
static void
text_rcpt(struct buf *b, const struct spool_rcpt *r, bool busy, int64_t now,
	  bool full)
{
	char d[32], t[32];

	buf_append_str(b, "    <");
	text_str(b, r->address);
	buf_append_str(b, ">");
	if (strcmp(r->address, r->dest) != 0) {
		buf_append_str(b, " (");
		text_str(b, r->dest);
		buf_append_str(b, ")");
	}
	if (busy) {
		buf_append_str(b, "  " CTL_BUSY_STATE "\n");
		return;
	}
	buf_printf(b, "  %s  attempts=%u", state_name(r->state), r->attempts);
	if (r->state == SPOOL_RCPT_DEFERRED) {
		if (r->next_try > now) {
			fmt_dur(d, sizeof(d), r->next_try - now);
			buf_printf(b, "  next_try=in %s", d);
		} else {
			buf_append_str(b, "  next_try=now");
		}
	}
	if (full && r->last_try > 0) {
		fmt_time(t, sizeof(t), r->last_try);
		buf_printf(b, "  last_try=\"%s\"", t);
	}
	if (full && r->status != NULL) {
		buf_append_str(b, "  status=");
		text_str(b, r->status);
	}
	if (full && r->remote_mta != NULL) {
		buf_append_str(b, "  remote_mta=");
		text_str(b, r->remote_mta);
	}
	if (r->diag != NULL) {
		buf_append_str(b, "  last_reply=\"");
		text_str(b, r->diag);
		buf_append_str(b, "\"");
	}
	buf_append_str(b, "\n");
}

/* the mailq-like table entry of one message */
static void
text_msg(struct buf *b, const struct spool_envelope *env, bool busy,
	 int64_t now)
{
	char age[32];

	fmt_dur(age, sizeof(age), now - env->received_at);
	buf_printf(b, "%-20s %7s %9" PRIu64 "  <", env->id, age, env->size);
	text_str(b, env->mail_from);
	buf_append_str(b, ">");
	if (env->held)
		buf_append_str(b, "  (held)");
	buf_append_str(b, "\n");
	for (size_t i = 0; i < env->nrcpts; i++)
		text_rcpt(b, &env->rcpts[i], busy, now, false);
}

/* the message as a JSON object, without its closing brace */

/* a recipient state's JSON fields, after the address (list, show and
 * history share them) */
static void
json_rcpt_state(struct buf *b, enum spool_rcpt_state state,
		unsigned attempts, int64_t next_try, int64_t last_try,
		const char *status, const char *remote_mta, const char *diag)
{
	buf_printf(b, ",\"state\":\"%s\",\"attempts\":%u",
		   state_name(state), attempts);
	if (state == SPOOL_RCPT_DEFERRED)
		buf_printf(b, ",\"next_try\":%" PRId64, next_try);
	else
		buf_append_str(b, ",\"next_try\":null");
	if (last_try > 0)
		buf_printf(b, ",\"last_try\":%" PRId64, last_try);
	else
		buf_append_str(b, ",\"last_try\":null");
	buf_append_str(b, ",\"status\":");
	json_str(b, status);
	buf_append_str(b, ",\"remote_mta\":");
	json_str(b, remote_mta);
	buf_append_str(b, ",\"reply\":");
	json_str(b, diag);
}

static void
json_msg_open(struct buf *b, const struct spool_envelope *env, bool busy,
	      int64_t now, bool show)
{
	buf_append_str(b, "{\"id\":");
	json_str(b, env->id);
	buf_printf(b, ",\"received_at\":%" PRId64 ",\"age\":%" PRId64
		   ",\"size\":%" PRIu64 ",\"sender\":", env->received_at,
		   now - env->received_at, env->size);
	json_str(b, env->mail_from);
	buf_printf(b, ",\"held\":%s,\"busy\":%s", env->held ? "true" : "false",
		   busy ? "true" : "false");
	if (show) {
		buf_append_str(b, ",\"envid\":");
		json_str(b, env->envid);
		buf_append_str(b, ",\"helo\":");
		json_str(b, env->helo);
		buf_append_str(b, ",\"client_address\":");
		json_str(b, env->client_addr);
	}
	buf_append_str(b, ",\"recipients\":[");
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];

		buf_append_str(b, i > 0 ? ",{\"address\":" : "{\"address\":");
		json_str(b, r->address);
		buf_append_str(b, ",\"dest\":");
		json_str(b, r->dest);
		if (busy) {
			buf_append_str(b, ",\"state\":\"" CTL_BUSY_STATE "\"}");
			continue;
		}
		json_rcpt_state(b, r->state, r->attempts, r->next_try,
				r->last_try, r->status, r->remote_mta, r->diag);
		buf_append_str(b, "}");
	}
	buf_append_str(b, "]");
}

/* ---- connections --------------------------------------------------------- */

static void
ctl_log(const char *event, const char *id, const char *error)
{
	char e[300];

	if (error == NULL)
		log_info("control event=%s%s%s result=ok", event,
			 id != NULL ? " id=" : "", id != NULL ? id : "");
	else
		log_info("control event=%s%s%s result=error error=\"%s\"",
			 event, id != NULL ? " id=" : "", id != NULL ? id : "",
			 log_escape(e, sizeof(e), error, strlen(error)));
}

static void
reap_later(struct ctl_conn *cc)
{
	cc->reap = true;
	event_active(cc->ctl->reap_ev, EV_TIMEOUT, 1);
}

static void
ctl_conn_free(struct serve_control *ctl, struct ctl_conn *cc)
{
	if (cc->op != NULL)
		cc->op->cc = NULL;
	conn_free(&cc->conn);
	buf_clear(&cc->line);
	if (cc->prev != NULL)
		cc->prev->next = cc->next;
	else
		ctl->conns = cc->next;
	if (cc->next != NULL)
		cc->next->prev = cc->prev;
	ctl->nconns--;
	free(cc);
}

static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct serve_control *ctl = arg;
	struct ctl_conn *cc, *next;
	(void)fd;
	(void)what;

	for (cc = ctl->conns; cc != NULL; cc = next) {
		next = cc->next;
		if (cc->reap)
			ctl_conn_free(ctl, cc);
	}
	serve_maybe_exit(ctl->srv);
}

/* queues the answer; the connection closes once the client has it */
static void
answer(struct ctl_conn *cc, const char *error, const struct buf *body)
{
	struct conn *c = cc->conn;

	TN_ASSERT(cc->phase != CTL_ANSWERED);
	cc->phase = CTL_ANSWERED;
	cc->op = NULL;
	cc->out_last = SIZE_MAX;
	if (error != NULL) {
		(void)conn_write(c, "error: ", 7);
		(void)conn_write(c, error, strlen(error));
		(void)conn_write(c, "\n", 1);
	} else {
		(void)conn_write(c, "ok\n", 3);
		if (body != NULL)
			(void)conn_write(c, body->p, body->len);
	}
	/* FIN after the answer; what the client still sends is read and
	 * dropped until its EOF, so that a close never resets the answer
	 * away (RFC 1122 §4.2.2.13: unread data makes close send RST) */
	conn_shutdown_write(c);
	conn_notify_drained(c, true);
}

static void
answer_error(struct ctl_conn *cc, const char *event, const char *id,
	     const char *error)
{
	ctl_log(event, id, error);
	answer(cc, error, NULL);
}

static void
op_free(struct ctl_op *op)
{
	struct serve_control *ctl = op->ctl;

	if (op->prev != NULL)
		op->prev->next = op->next;
	else
		ctl->ops = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	if (op->cc != NULL)
		op->cc->op = NULL;
	buf_clear(&op->out);
	free(op->hdr);
	spool_history_clear(&op->hist);
	for (size_t i = 0; i < op->naddrs; i++)
		free(op->addrs[i]);
	free(op->addrs);
	free(op);
}

static struct ctl_op *
op_new(struct ctl_conn *cc, enum ctl_op_kind kind, const char *id, bool json)
{
	struct serve_control *ctl = cc->ctl;
	struct ctl_op *op = xcalloc(1, sizeof(*op));

	op->ctl = ctl;
	op->cc = cc;
	op->kind = kind;
	snprintf(op->id, sizeof(op->id), "%s", id);
	op->json = json;
	buf_init(&op->out, 0);
	op->next = ctl->ops;
	if (ctl->ops != NULL)
		ctl->ops->prev = op;
	ctl->ops = op;
	cc->op = op;
	cc->phase = CTL_WAITING;
	return op;
}

/* ---- commands ------------------------------------------------------------ */

struct list_item {
	const struct spool_envelope *env;
	bool busy;
};

struct list_acc {
	struct list_item *v;
	size_t n, cap;
};

static void
list_one(void *arg, const struct spool_envelope *env, bool busy, int64_t due)
{
	struct list_acc *a = arg;
	(void)due;

	if (a->n == a->cap) {
		a->cap = a->cap > 0 ? a->cap * 2 : 64;
		a->v = xreallocarray(a->v, a->cap, sizeof(*a->v));
	}
	a->v[a->n].env = env;
	a->v[a->n].busy = busy;
	a->n++;
}

/* oldest first, as mailq shows them */
static int
list_cmp(const void *pa, const void *pb)
{
	const struct spool_envelope *a = ((const struct list_item *)pa)->env;
	const struct spool_envelope *b = ((const struct list_item *)pb)->env;

	if (a->received_at != b->received_at)
		return a->received_at < b->received_at ? -1 : 1;
	if (a->received_us != b->received_us)
		return a->received_us < b->received_us ? -1 : 1;
	return strcmp(a->id, b->id);
}

static void
cmd_list(struct ctl_conn *cc, const char *id, bool json)
{
	struct deliverq *q = cc->ctl->srv->deliverq;
	int64_t now = (int64_t)time(NULL);
	struct list_acc a = { 0 };
	uint64_t octets = 0;
	struct buf b;
	(void)id;

	/* the envelopes are read here, on the loop thread, before any
	 * callback can change them */
	deliverq_each(q, list_one, &a);
	if (a.n > 1)
		qsort(a.v, a.n, sizeof(*a.v), list_cmp);
	buf_init(&b, 0);
	if (json)
		buf_append_str(&b, "[");
	else if (a.n > 0)
		buf_printf(&b, "%-20s %7s %9s  %s\n", "Queue ID", "Age", "Size",
			   "Sender / Recipients");
	for (size_t i = 0; i < a.n; i++) {
		octets += a.v[i].env->size;
		if (json) {
			if (i > 0)
				buf_append_str(&b, ",\n");
			json_msg_open(&b, a.v[i].env, a.v[i].busy, now, false);
			buf_append_str(&b, "}");
		} else {
			text_msg(&b, a.v[i].env, a.v[i].busy, now);
		}
	}
	if (json)
		buf_append_str(&b, "]\n");
	else if (a.n == 0)
		buf_append_str(&b, "Mail queue is empty\n");
	else
		buf_printf(&b, "-- %zu message%s, %" PRIu64 " octets\n", a.n,
			   a.n == 1 ? "" : "s", octets);
	log_info("control event=list messages=%zu result=ok", a.n);
	answer(cc, NULL, &b);
	buf_clear(&b);
	free(a.v);
}

/*
 * The flags a recipient record may set without an attempt: a report
 * about the recipient went out (deliver_queue.c dsn_step). Such a record
 * repeats the attempt count of the one before it.
 */
#define CTL_REPORT_FLAGS (SPOOL_RCPT_F_DELAY_SENT | SPOOL_RCPT_F_DSN_DONE)

/* the address of recipient idx of op's message, as text */
static const char *
hist_addr(const struct ctl_op *op, size_t idx)
{
	return idx < op->naddrs ? op->addrs[idx] : "?";
}

/*
 * The history section of the human format: one line per record, oldest
 * first. An attempt reads "TIME ADDRESS STATE STATUS REMOTE_MTA REPLY"
 * ("-" for what was not recorded; the reply, free text, comes last); a
 * record that only notes a report reads "TIME ADDRESS noted: ..."; a
 * message record, which carries no time, "- message held".
 */
static void
text_history(struct buf *b, const struct ctl_op *op)
{
	const struct spool_history *h = &op->hist;
	char t[32];

	if (op->hist_err != 0) {
		buf_printf(b, "history: not readable: %s\n",
			   strerror(op->hist_err));
		return;
	}
	if (h->n == 0 && h->omitted == 0) {
		buf_append_str(b, "history: none\n");
		return;
	}
	buf_append_str(b, "history:\n");
	if (h->omitted > 0)
		buf_printf(b, "  (%zu earlier record%s not shown)\n",
			   h->omitted, h->omitted == 1 ? "" : "s");
	/* the attempt count and flags each recipient's last record left,
	 * to tell a report's record from an attempt's */
	unsigned *prev_att = xcalloc(op->naddrs + 1, sizeof(*prev_att));
	unsigned *prev_flags = xcalloc(op->naddrs + 1, sizeof(*prev_flags));
	bool *seen = xcalloc(op->naddrs + 1, sizeof(*seen));
	for (size_t i = 0; i < h->n; i++) {
		const struct spool_hist *e = &h->v[i];
		if (e->kind == SPOOL_HIST_MSG) {
			if (e->set & SPOOL_HIST_SET_HELD)
				buf_printf(b, "  - message %s\n",
					   e->held ? "held" : "released");
			continue;
		}
		size_t k = e->idx < op->naddrs ? e->idx : op->naddrs;
		unsigned fresh = e->flags & ~prev_flags[k] & CTL_REPORT_FLAGS;
		bool note = seen[k] && e->attempts == prev_att[k] &&
			    fresh != 0;
		seen[k] = true;
		prev_att[k] = e->attempts;
		prev_flags[k] = e->flags;
		if (e->last_try > 0)
			fmt_time(t, sizeof(t), e->last_try);
		else
			snprintf(t, sizeof(t), "-");
		buf_printf(b, "  %s ", t);
		text_str(b, hist_addr(op, e->idx));
		if (note) {
			buf_printf(b, " noted: %s\n",
				   fresh & SPOOL_RCPT_F_DSN_DONE ?
				   "final report sent" : "delay report sent");
			continue;
		}
		buf_printf(b, " %s ", state_name(e->state));
		text_str(b, e->status != NULL && e->status[0] != '\0' ?
			 e->status : "-");
		buf_append_str(b, " ");
		text_str(b, e->remote_mta != NULL ? e->remote_mta : "-");
		if (e->diag != NULL) {
			buf_append_str(b, " ");
			text_str(b, e->diag);
		}
		buf_append_str(b, "\n");
	}
	free(prev_att);
	free(prev_flags);
	free(seen);
}

/* ,"history":[...],"history_omitted":N of the JSON format */
static void
json_history(struct buf *b, const struct ctl_op *op)
{
	const struct spool_history *h = &op->hist;

	if (op->hist_err != 0) {
		buf_append_str(b, ",\"history\":null,\"history_error\":");
		json_str(b, strerror(op->hist_err));
		return;
	}
	buf_append_str(b, ",\"history\":[");
	for (size_t i = 0; i < h->n; i++) {
		const struct spool_hist *e = &h->v[i];
		if (i > 0)
			buf_append_str(b, ",");
		if (e->kind == SPOOL_HIST_MSG) {
			buf_append_str(b, "{\"type\":\"message\"");
			if (e->set & SPOOL_HIST_SET_HELD)
				buf_printf(b, ",\"held\":%s",
					   e->held ? "true" : "false");
			buf_append_str(b, "}");
			continue;
		}
		buf_printf(b, "{\"type\":\"recipient\",\"recipient\":%zu"
			   ",\"address\":", e->idx);
		json_str(b, e->idx < op->naddrs ? op->addrs[e->idx] : NULL);
		json_rcpt_state(b, e->state, e->attempts, e->next_try,
				e->last_try, e->status, e->remote_mta, e->diag);
		buf_printf(b, ",\"delay_report_sent\":%s,\"final_report_sent\""
			   ":%s}", e->flags & SPOOL_RCPT_F_DELAY_SENT ?
			   "true" : "false", e->flags & SPOOL_RCPT_F_DSN_DONE ?
			   "true" : "false");
	}
	buf_printf(b, "],\"history_omitted\":%zu", h->omitted);
}

/* worker thread: the delivery history, and the header block of the
 * message up to the blank line */
static void
show_work(void *arg)
{
	struct ctl_op *op = arg;
	uint64_t off, len;
	size_t n, end;
	int fd;

	if (spool_history_read(op->spool, op->id, CONTROL_HISTORY_MAX,
			       &op->hist) < 0)
		op->hist_err = errno != 0 ? errno : EIO;
	if (spool_body_open(op->spool, op->id, &fd, &off, &len) < 0) {
		op->err = errno != 0 ? errno : EIO;
		return;
	}
	n = len < CONTROL_HEADERS_MAX ? (size_t)len : CONTROL_HEADERS_MAX;
	op->hdr = xmalloc(n > 0 ? n : 1);
	if (n > 0 && io_pread_all(fd, op->hdr, n, (off_t)off) < 0) {
		op->err = errno != 0 ? errno : EIO;
		(void)close(fd);
		return;
	}
	(void)close(fd);
	/* RFC 5322 §2.1: the header section ends at the first empty line;
	 * a header block cut by the limit ends at its last whole line */
	op->truncated = true;
	end = 0;
	for (size_t i = 0; i < n; i++) {
		if (op->hdr[i] != '\n')
			continue;
		if (i + 1 < n && op->hdr[i + 1] == '\n') {
			end = i + 1;
			op->truncated = false;
			break;
		}
		if (i + 2 < n && op->hdr[i + 1] == '\r' &&
		    op->hdr[i + 2] == '\n') {
			end = i + 1;
			op->truncated = false;
			break;
		}
		end = i + 1;
	}
	if ((uint64_t)n == len && op->truncated) {
		/* the whole message is headers */
		end = n;
		op->truncated = false;
	}
	if (n > 0 && (op->hdr[0] == '\n' ||
		      (n > 1 && op->hdr[0] == '\r' && op->hdr[1] == '\n'))) {
		end = 0;  /* no header at all */
		op->truncated = false;
	}
	op->hdrlen = end;
}

static void
show_done(void *arg)
{
	struct ctl_op *op = arg;
	struct ctl_conn *cc = op->cc;
	struct buf *b = &op->out;

	op->ctl->reading--;
	if (cc == NULL) {
		op_free(op);
		return;
	}
	if (op->err == ENOENT || op->hist_err == ENOENT) {
		/* deleted or delivered while we read */
		answer_error(cc, "show", op->id, "no such message");
		op_free(op);
		return;
	}
	if (op->json)
		json_history(b, op);
	else
		text_history(b, op);
	if (op->json) {
		buf_append_str(b, ",\"headers\":");
		if (op->err != 0)
			buf_append_str(b, "null");
		else
			json_bytes(b, op->hdr, op->hdrlen);
		buf_printf(b, ",\"headers_truncated\":%s",
			   op->truncated ? "true" : "false");
		if (op->err != 0) {
			buf_append_str(b, ",\"headers_error\":");
			json_str(b, strerror(op->err));
		}
		buf_append_str(b, "}\n");
	} else if (op->err != 0) {
		buf_printf(b, "headers: not readable: %s\n",
			   strerror(op->err));
	} else {
		buf_append_str(b, "headers:\n");
		text_bytes(b, op->hdr, op->hdrlen, true);
		if (op->hdrlen > 0 && op->hdr[op->hdrlen - 1] != '\n')
			buf_append_str(b, "\n");
		if (op->truncated)
			buf_printf(b, "(header block cut at %u octets)\n",
				   CONTROL_HEADERS_MAX);
	}
	ctl_log("show", op->id, NULL);
	answer(cc, NULL, b);
	op_free(op);
}

static void
show_text(struct buf *b, const struct spool_envelope *env, bool busy,
	  int64_t now)
{
	char t[32], age[32];

	fmt_time(t, sizeof(t), env->received_at);
	fmt_dur(age, sizeof(age), now - env->received_at);
	buf_printf(b, "id: %s\nreceived: %s (%s ago)\nsize: %" PRIu64
		   "\nsender: <", env->id, t, age, env->size);
	text_str(b, env->mail_from);
	buf_append_str(b, ">\n");
	if (env->envid != NULL) {
		buf_append_str(b, "envid: ");
		text_str(b, env->envid);
		buf_append_str(b, "\n");
	}
	buf_append_str(b, "helo: ");
	text_str(b, env->helo != NULL ? env->helo : "");
	buf_append_str(b, "\nclient: ");
	text_str(b, env->client_addr != NULL ? env->client_addr : "");
	buf_printf(b, "\nheld: %s\n", env->held ? "yes" : "no");
	if (busy)
		buf_append_str(b, "state: " CTL_BUSY_STATE "\n");
	buf_append_str(b, "recipients:\n");
	for (size_t i = 0; i < env->nrcpts; i++)
		text_rcpt(b, &env->rcpts[i], busy, now, true);
}

static void
cmd_show(struct ctl_conn *cc, const char *id, bool json)
{
	struct serve_control *ctl = cc->ctl;
	int64_t now = (int64_t)time(NULL);
	const struct spool_envelope *env;
	struct ctl_op *op;
	bool busy = false;

	env = deliverq_find(ctl->srv->deliverq, id, &busy);
	if (env == NULL) {
		answer_error(cc, "show", id, "no such message");
		return;
	}
	op = op_new(cc, CTL_OP_SHOW, id, json);
	op->addrs = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1,
			    sizeof(*op->addrs));
	op->naddrs = env->nrcpts;
	for (size_t i = 0; i < env->nrcpts; i++)
		op->addrs[i] = xstrdup(env->rcpts[i].address);
	/* the envelope now; the header block from the disk, off the loop */
	if (json)
		json_msg_open(&op->out, env, busy, now, true);
	else
		show_text(&op->out, env, busy, now);
	op->spool = ctl->srv->spool;
	ctl->reading++;
	workq_submit(ctl->srv->deliver_wq, show_work, show_done, op);
}

static void
cmd_flush(struct ctl_conn *cc, const char *id, bool json)
{
	struct deliverq *q = cc->ctl->srv->deliverq;
	const struct spool_envelope *env = NULL;
	struct buf b;
	unsigned n;
	(void)json;

	if (id != NULL && (env = deliverq_find(q, id, NULL)) == NULL) {
		answer_error(cc, "flush", id, "no such message");
		return;
	}
	n = deliverq_flush(q, id, (int64_t)time(NULL));
	buf_init(&b, 0);
	if (id == NULL)
		buf_printf(&b, "%u message%s due now\n", n, n == 1 ? "" : "s");
	else if (env->held)
		buf_printf(&b, "%s is held: it is delivered once released\n",
			   id);
	else if (n == 0)
		buf_printf(&b, "%s is in delivery now\n", id);
	else
		buf_printf(&b, "%s is due now\n", id);
	log_info("control event=flush%s%s messages=%u result=ok",
		 id != NULL ? " id=" : "", id != NULL ? id : "", n);
	answer(cc, NULL, &b);
	buf_clear(&b);
}

/* the runner's word that a hold, release or delete is durable */
static void
ctl_done(void *arg, int result)
{
	struct ctl_op *op = arg;
	struct ctl_conn *cc = op->cc;
	const char *event = ctl_op_name[op->kind];

	if (result != 0) {
		char err[128];
		snprintf(err, sizeof(err), "cannot %s %s: %s", event, op->id,
			 strerror(result));
		if (cc != NULL)
			answer_error(cc, event, op->id, err);
		else
			ctl_log(event, op->id, err);
	} else {
		struct buf b;
		buf_init(&b, 0);
		buf_printf(&b, "%s %s\n", op->id,
			   op->kind == CTL_OP_HOLD ? "held" :
			   op->kind == CTL_OP_RELEASE ? "released" :
			   "deleted");
		ctl_log(event, op->id, NULL);
		if (cc != NULL)
			answer(cc, NULL, &b);
		buf_clear(&b);
	}
	op_free(op);
}

static void
cmd_change(struct ctl_conn *cc, enum ctl_op_kind kind, const char *id)
{
	struct deliverq *q = cc->ctl->srv->deliverq;
	struct ctl_op *op = op_new(cc, kind, id, false);
	int r;

	if (kind == CTL_OP_DELETE)
		r = deliverq_delete(q, id, ctl_done, op);
	else
		r = deliverq_hold(q, id, kind == CTL_OP_HOLD, ctl_done, op);
	if (r < 0) {
		/* the callback will not run */
		op_free(op);
		cc->phase = CTL_READING;
		answer_error(cc, ctl_op_name[kind], id, "no such message");
	}
}

static void
cmd_hold(struct ctl_conn *cc, const char *id, bool json)
{
	(void)json;
	cmd_change(cc, CTL_OP_HOLD, id);
}

static void
cmd_release(struct ctl_conn *cc, const char *id, bool json)
{
	(void)json;
	cmd_change(cc, CTL_OP_RELEASE, id);
}

static void
cmd_delete(struct ctl_conn *cc, const char *id, bool json)
{
	(void)json;
	cmd_change(cc, CTL_OP_DELETE, id);
}

/* the request table: name, arguments (an ID or none), `json` allowed */
static const struct ctl_cmd {
	const char *name;
	unsigned min_args, max_args;
	bool json;
	void (*fn)(struct ctl_conn *cc, const char *id, bool json);
	const char *usage;
} ctl_cmds[] = {
	{ "list", 0, 0, true, cmd_list, "list [json]" },
	{ "show", 1, 1, true, cmd_show, "show ID [json]" },
	{ "flush", 0, 1, false, cmd_flush, "flush [ID]" },
	{ "hold", 1, 1, false, cmd_hold, "hold ID" },
	{ "release", 1, 1, false, cmd_release, "release ID" },
	{ "delete", 1, 1, false, cmd_delete, "delete ID" },
};

/* a queue id as the spool makes them: SPOOL_ID_LEN of [0-9A-Za-z] */
static bool
id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n] != '\0'; n++) {
		char c = id[n];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z')))
			return false;
	}
	return n == SPOOL_ID_LEN;
}

#define CTL_WORDS_MAX 4

static void
request(struct ctl_conn *cc)
{
	char *w[CTL_WORDS_MAX];
	const struct ctl_cmd *cmd = NULL;
	size_t nw = 0, len = cc->line.len;
	bool json = false;
	char *line, *p;

	(void)buf_cstr(&cc->line);
	line = (char *)cc->line.p;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c >= 0x7f) {
			answer_error(cc, "error", NULL,
				     "bad request: not printable ASCII");
			return;
		}
	}
	for (p = line; *p != '\0';) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (nw == CTL_WORDS_MAX) {
			answer_error(cc, "error", NULL,
				     "bad request: too many words");
			return;
		}
		w[nw++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	if (nw == 0) {
		answer_error(cc, "error", NULL, "empty request");
		return;
	}
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (strcmp(ctl_cmds[i].name, w[0]) == 0)
			cmd = &ctl_cmds[i];
	if (cmd == NULL) {
		char e[64], text[128];
		snprintf(text, sizeof(text), "unknown command: %s",
			 log_escape(e, sizeof(e), w[0], strlen(w[0])));
		answer_error(cc, "error", NULL, text);
		return;
	}
	if (cmd->json && nw > 1 && strcmp(w[nw - 1], "json") == 0) {
		json = true;
		nw--;
	}
	if (nw - 1 < cmd->min_args || nw - 1 > cmd->max_args) {
		char text[128];
		snprintf(text, sizeof(text), "usage: %s", cmd->usage);
		answer_error(cc, cmd->name, NULL, text);
		return;
	}
	if (nw > 1 && !id_valid(w[1])) {
		answer_error(cc, cmd->name, NULL, "bad id");
		return;
	}
	cmd->fn(cc, nw > 1 ? w[1] : NULL, json);
}

/* ---- connection callbacks ------------------------------------------------ */

static void
on_read(void *arg)
{
	struct ctl_conn *cc = arg;
	const uint8_t *p;
	size_t n;

	while ((p = conn_input_peek(cc->conn, &n)) != NULL && n > 0) {
		const uint8_t *nl;
		size_t take;

		if (cc->phase != CTL_READING || cc->reap) {
			/* one request per connection: the rest is dropped */
			conn_input_drain(cc->conn, n);
			continue;
		}
		nl = memchr(p, '\n', n);
		take = nl != NULL ? (size_t)(nl - p) : n;
		if (buf_append(&cc->line, p, take) < 0) {
			conn_input_drain(cc->conn, n);
			answer_error(cc, "error", NULL,
				     "request line too long");
			continue;
		}
		conn_input_drain(cc->conn, nl != NULL ? take + 1 : take);
		if (nl != NULL)
			request(cc);
	}
}

static void
on_timeout(void *arg)
{
	struct ctl_conn *cc = arg;
	size_t out;

	switch (cc->phase) {
	case CTL_READING:
		answer_error(cc, "error", NULL, "timeout: no request");
		break;
	case CTL_WAITING:
		/* the runner's callback ends this; the client waits */
		break;
	case CTL_ANSWERED:
		/* a client that takes its answer slowly may go on */
		out = conn_output_len(cc->conn);
		if (out == 0 || out >= cc->out_last)
			reap_later(cc);
		else
			cc->out_last = out;
		break;
	}
}

static void
on_close(void *arg)
{
	struct ctl_conn *cc = arg;

	if (conn_is_dead(cc->conn)) {
		reap_later(cc);
		return;
	}
	cc->peer_eof = true;
	switch (cc->phase) {
	case CTL_READING:
		/* a last line without its LF still counts */
		if (cc->line.len > 0)
			request(cc);
		else
			reap_later(cc);
		break;
	case CTL_WAITING:
		break;
	case CTL_ANSWERED:
		if (conn_output_len(cc->conn) == 0)
			reap_later(cc);
		break;
	}
}

static void
on_drained(void *arg)
{
	struct ctl_conn *cc = arg;

	/* everything is written; the client's EOF (or the timeout) ends it */
	if (cc->peer_eof)
		reap_later(cc);
	/* a graceful stop waited for this answer */
	serve_maybe_exit(cc->ctl->srv);
}

static const struct conn_handler ctl_handler = {
	.on_read = on_read,
	.on_timeout = on_timeout,
	.on_close = on_close,
	.on_drained = on_drained,
};

static void
ctl_accept(void *arg, int fd, const struct sockaddr *peer,
	   const struct sockaddr *local)
{
	struct serve_control *ctl = arg;
	struct ctl_conn *cc = xcalloc(1, sizeof(*cc));
	(void)peer;
	(void)local;

	cc->ctl = ctl;
	buf_init(&cc->line, CONTROL_LINE_MAX);
	cc->conn = conn_new(ctl->srv->base, fd, &ctl_handler, cc);
	conn_set_timeout(cc->conn, CONTROL_TIMEOUT_SECONDS);
	cc->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prev = cc;
	ctl->conns = cc;
	ctl->nconns++;
	if (ctl->nconns > CONTROL_CONNS_MAX)
		answer_error(cc, "error", NULL,
			     "too many control connections");
}

/* ---- life cycle ---------------------------------------------------------- */

int
serve_control_start(struct tern_server *srv, char **error_r)
{
	struct serve_control *ctl = xcalloc(1, sizeof(*ctl));

	ctl->srv = srv;
	ctl->path = xasprintf("%s/%s", srv->conf->state_dir,
			      CONTROL_SOCKET_NAME);
	ctl->reap_ev = event_new(srv->base, -1, 0, reap, ctl);
	srv->control = ctl;
	if (net_listen_unix(srv->base, ctl->path, CONTROL_SOCKET_MODE,
			    ctl_accept, ctl, &ctl->listener, error_r) < 0)
		return -1;
	log_info("tern event=listen address=%s role=control",
		 net_listener_name(ctl->listener));
	return 0;
}

void
serve_control_stop(struct tern_server *srv)
{
	struct serve_control *ctl = srv->control;

	if (ctl == NULL)
		return;
	/* removes the socket: clients see that no server runs */
	net_listener_free(&ctl->listener);
	for (struct ctl_conn *cc = ctl->conns; cc != NULL; cc = cc->next)
		if (cc->phase == CTL_READING && !cc->reap)
			answer_error(cc, "error", NULL,
				     "the server is stopping");
}

unsigned
serve_control_busy(const struct tern_server *srv)
{
	const struct serve_control *ctl = srv->control;
	unsigned n = 0;

	if (ctl == NULL)
		return 0;
	for (const struct ctl_conn *cc = ctl->conns; cc != NULL; cc = cc->next)
		if (!cc->reap && (cc->phase == CTL_WAITING ||
				  (cc->phase == CTL_ANSWERED &&
				   conn_output_len(cc->conn) > 0)))
			n++;
	return n;
}

void
serve_control_free(struct tern_server *srv)
{
	struct serve_control *ctl = srv->control;

	if (ctl == NULL)
		return;
	srv->control = NULL;
	/* header reads in flight use the spool: they end first */
	while (ctl->reading > 0 && srv->deliver_wq != NULL) {
		struct pollfd pfd = { .fd = workq_fd(srv->deliver_wq),
				      .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(srv->deliver_wq);
	}
	net_listener_free(&ctl->listener);
	while (ctl->conns != NULL)
		ctl_conn_free(ctl, ctl->conns);
	/* operations whose callback will not come any more (the runner is
	 * gone; a delete waited for a relay attempt that was cut off) */
	while (ctl->ops != NULL)
		op_free(ctl->ops);
	if (ctl->reap_ev != NULL)
		event_free(ctl->reap_ev);
	free(ctl->path);
	free(ctl);
}

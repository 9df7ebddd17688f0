/* SPDX-License-Identifier: MIT */
/*
 * spool_history: reads the records of a queued message back as its
 * delivery history, for `tern queue show`. Recovery applies the records
 * and keeps the last state of each recipient; here every record is an
 * entry: what each attempt found, and what hold and release set. It
 * only reads: it never cuts a torn tail (recovery and the writer do),
 * and it never reads the whole record area at once (a message retried
 * for days may have many records; SPOOL_RECS_MAX is a gigabyte).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/spool_int.h"

/*
 * Records are read through a window of this many octets: at least one
 * record of the largest size (SPOOL_REC2_MAX; a format 1 record is
 * smaller) always fits after the part of a record carried over, so a
 * record that does not decode in a window that holds SPOOL_REC2_MAX
 * octets from its start is torn, not cut by the window.
 */
#define HIST_WINDOW (4u * SPOOL_REC2_MAX)

_Static_assert(SPOOL_REC1_FIXED + SPOOL_DIAG_MAX <= SPOOL_REC2_MAX,
	       "the window bound covers format 1 records");
_Static_assert(SPOOL_HIST_SET_HELD == SPOOL_MSGF_HELD,
	       "the public and the on-disk field masks agree");

/* the last max entries, in a ring once full */
struct hist_acc {
	struct spool_hist *v;
	size_t n, cap, max, start;
	size_t omitted;
};

static void
hist_entry_clear(struct spool_hist *e)
{
	free(e->status);
	free(e->remote_mta);
	free(e->diag);
	memset(e, 0, sizeof(*e));
}

static void
hist_add(void *arg, struct spool_rec *rec)
{
	struct hist_acc *a = arg;
	struct spool_hist *e;

	if (a->n < a->max) {
		if (a->n == a->cap) {
			a->cap = a->cap == 0 ? 16 : a->cap * 2;
			if (a->cap > a->max)
				a->cap = a->max;
			a->v = xreallocarray(a->v, a->cap, sizeof(*a->v));
		}
		e = &a->v[a->n++];
	} else {
		/* full: the oldest makes room */
		e = &a->v[a->start];
		hist_entry_clear(e);
		a->start = (a->start + 1) % a->max;
		a->omitted++;
	}
	memset(e, 0, sizeof(*e));
	e->format = rec->format;
	if (rec->kind == SPOOL_REC_MSG) {
		e->kind = SPOOL_HIST_MSG;
		e->set = rec->msg.set;
		e->held = rec->msg.held;
		return;
	}
	e->kind = SPOOL_HIST_RCPT;
	e->idx = rec->idx;
	e->state = rec->st.state;
	e->attempts = rec->st.attempts;
	e->last_try = rec->st.last_try;
	e->next_try = rec->st.next_try;
	e->flags = rec->st.flags;
	/* taken from the walker */
	e->status = rec->st.status;
	e->remote_mta = rec->st.remote_mta;
	e->diag = rec->st.diag;
	rec->st.status = rec->st.remote_mta = rec->st.diag = NULL;
}

/* the entries oldest first, into h */
static void
hist_finish(struct hist_acc *a, struct spool_history *h)
{
	h->n = a->n;
	h->omitted = a->omitted;
	if (a->start == 0) {
		h->v = a->v;
	} else {
		h->v = xcalloc(a->n, sizeof(*h->v));
		for (size_t i = 0; i < a->n; i++)
			h->v[i] = a->v[(a->start + i) % a->n];
		free(a->v);
	}
	memset(a, 0, sizeof(*a));
}

static void
hist_acc_clear(struct hist_acc *a)
{
	for (size_t i = 0; i < a->n; i++)
		hist_entry_clear(&a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/*
 * The records of the file from env_end on, through the window. 0 with
 * *torn_r, or -1 with errno.
 */
static int
read_recs(int fd, uint64_t env_end, uint64_t nrec, uint32_t version,
	  size_t nrcpts, struct hist_acc *a, uint64_t *torn_r)
{
	uint8_t *win = xmalloc(HIST_WINDOW);
	uint64_t pos = env_end;   /* file offset of win[0] */
	uint64_t left = nrec;     /* octets not yet in the window */
	size_t have = 0;
	int ret = -1;

	*torn_r = 0;
	for (;;) {
		size_t want = HIST_WINDOW - have;
		if (want > left)
			want = (size_t)left;
		if (want > 0) {
			if (io_pread_all(fd, win + have, want,
					 (off_t)(pos + have)) < 0)
				goto out;
			have += want;
			left -= want;
		}
		size_t good = spool_recs_walk(win, have, version, nrcpts,
					      hist_add, a);
		pos += good;
		if (good < have &&
		    (left == 0 || have - good >= SPOOL_REC2_MAX)) {
			/* the record at pos cannot be whole: as recovery,
			 * it and all after it are not records */
			*torn_r = (uint64_t)(have - good) + left;
			break;
		}
		if (good == have && left == 0)
			break;
		/* the start of a record the window cut: carried over */
		memmove(win, win + good, have - good);
		have -= good;
	}
	ret = 0;
out:
	free(win);
	return ret;
}

/*
 * Whether fd is still the file queue/<id>: a message removed while we
 * read has its file moved to tmp/, where a new message may overwrite it.
 */
static bool
still_queued(const struct spool *s, const char *id, int fd)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 &&
	       fstatat(s->queuefd, id, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int
spool_history_read(struct spool *s, const char *id, size_t max,
		   struct spool_history *h_r)
{
	uint8_t raw[SPOOL_HDR_SIZE];
	struct spool_envelope env = { 0 };
	struct hist_acc a = { .max = max };
	struct spool_hdr h;
	struct stat st;
	uint8_t *p = NULL;
	const char *why;
	int err = EBADMSG, ret = -1;

	memset(h_r, 0, sizeof(*h_r));
	if (!spool_id_valid(id) || max == 0) {
		errno = EINVAL;
		return -1;
	}
	int fd = openat(s->queuefd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	/* the writer appends and fdatasyncs under LOCK_EX (append_recs):
	 * while we hold LOCK_SH every record we see is durable, and none is
	 * half written */
	if (io_flock(fd, LOCK_SH) < 0) {
		err = errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	/* the checks of recovery's load(), so that what is shown is what
	 * a restart would take up */
	uint64_t size = (uint64_t)st.st_size;
	if (!S_ISREG(st.st_mode) || size < SPOOL_HDR_SIZE)
		goto out;
	if (io_pread_all(fd, raw, sizeof(raw), 0) < 0) {
		err = errno;
		goto out;
	}
	if (spool_hdr_decode(raw, &h, &why) < 0 || h.env_off > size ||
	    size - h.env_off < h.env_len)
		goto out;
	p = xmalloc(h.env_len);
	if (io_pread_all(fd, p, h.env_len, (off_t)h.env_off) < 0) {
		err = errno;
		goto out;
	}
	if (spool_crc32c(0, p, h.env_len) != h.env_crc ||
	    spool_env_decode(p, h.env_len, h.version, &env, &why) < 0)
		goto out;
	if (strcmp(env.id, id) != 0 || env.size != h.body_len)
		goto out;
	uint64_t env_end = h.env_off + h.env_len;
	if (size - env_end > SPOOL_RECS_MAX)
		goto out;
	if (read_recs(fd, env_end, size - env_end, h.version, env.nrcpts, &a,
		      &h_r->torn) < 0) {
		err = errno;
		goto out;
	}
	ret = 0;
out:
	/* a file that is no longer queue/<id> at the end was not all the
	 * time: what we read may be another message's */
	if (!still_queued(s, id, fd)) {
		ret = -1;
		err = ENOENT;
	}
	if (ret == 0)
		hist_finish(&a, h_r);
	hist_acc_clear(&a);
	spool_envelope_clear(&env);
	free(p);
	(void)close(fd);
	if (ret < 0) {
		spool_history_clear(h_r);
		errno = err;
	}
	return ret;
}

void
spool_history_clear(struct spool_history *h)
{
	for (size_t i = 0; i < h->n; i++)
		hist_entry_clear(&h->v[i]);
	free(h->v);
	memset(h, 0, sizeof(*h));
}

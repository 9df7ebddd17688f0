/* SPDX-License-Identifier: MIT */
/*
 * spool_commit: the spool directory, queue ids, receiving a message into
 * spool/tmp/, the group commit into spool/queue/, recipient state records
 * and removal. This file and spool_recover.c are the only places in tern
 * that fsync or rename spooled mail; the file format is described at the
 * top of spool_format.c.
 *
 * Why nothing accepted is lost: the callback of spool_msg_commit() (which
 * releases the 250) runs only after (1) the body, the envelope and the
 * header were written and fdatasync()ed, (2) its tmp/ file was renamed
 * to queue/<id> and (3) queue/ itself was fsync()ed, so the name
 * survives a crash. A crash before (3) leaves the message in tmp/ or in
 * queue/ with no 250 sent: the client retries; recovery never reads
 * tmp/ as mail (it unlinks the files there or keeps them as empty places
 * for new messages) and delivers what reached queue/ (possibly a second
 * copy of a message the client will send again, the one duplicate SMTP
 * itself allows: RFC 5321 §6.1).
 *
 * Why nothing is delivered twice: a recipient's outcome is either
 * appended to the queue file as a checksummed record and fdatasync()ed
 * before the runner acts on it, or, for a message whose recipients all
 * got their copy, left to the copies themselves: the agent names a copy
 * after the queue id (deliver/deliver_maildir.c), so a repeat finds it
 * and writes nothing. A message leaves the queue only when every
 * recipient's outcome is durable in one of these ways, so a removal that
 * a crash undoes is harmless: the message comes back intact and its
 * repeat writes nothing new (deliver/deliver_queue.c says which outcomes
 * are recorded).
 *
 * Group commit: commits arriving while a batch is in flight form the next
 * batch; a batch is made durable together (spool_sync_batch: one syncfs
 * of the file system, or, for one message or when the machine holds much
 * other unwritten data, writeback started for all with sync_file_range
 * and their fdatasyncs run concurrently) plus one fsync of queue/.
 *
 * Recycling: the file of a final message is not unlinked but moved back
 * into tmp/ and reused for a later message, so that in steady state no
 * inode is created or freed per message (on ext4 both are costly: a new
 * inode skips every recently freed one, and a freed one's blocks are
 * discarded). A message's tmp/ name is therefore not its queue id; the
 * id is made when the message starts and the file takes it at the
 * rename into queue/ (RENAME_NOREPLACE: an id is never given twice).
 * Why reuse loses nothing and doubles nothing:
 *  - spool_remove_n() runs only once every recipient is final and its
 *    outcome durable (the Maildir file and its new/ directory fsynced,
 *    or a state record). It renames queue/<id> to tmp/<id> and fsyncs
 *    queue/, and only after that fsync is the file offered for reuse.
 *    A crash before it may bring queue/<id> back, intact (nothing has
 *    written to it): recovery hands it to the runner again, which finds
 *    its Maildir copies by name and writes nothing twice.
 *  - A reused file is written only while it is in tmp/, and recovery
 *    never takes anything in tmp/ for mail, so whatever a crash leaves
 *    of it there is dropped or overwritten (no 250 was sent for it). Its
 *    header is zeroed when it is reopened and stays zero until the
 *    commit writes the new one, so nothing but a commit can make it look
 *    committed. A file with a second link is never reused.
 *  - A reused file may be longer than its new message. The commit cuts
 *    it to the new length before the fdatasync, so no octet of the old
 *    message (in particular no old state record) follows the new
 *    envelope: recovery would apply it as a state of the new message.
 * Files of aborted messages (never in queue/) are reused as they are.
 * At most SPOOL_RECYCLE_MAX files are kept, none over SPOOL_RECYCLE_SIZE
 * octets; the rest are unlinked as before. Across a stop or a crash the
 * files stay in tmp/, and recovery takes them up again instead of
 * unlinking them (spool_recover.c): it is all the same to the argument
 * above, which trusts nothing in tmp/.
 *
 * Threading: the loop thread owns struct spool's mutable fields, except
 * the recycled names (recycle_lock); batch workers touch only the
 * messages of their batch and the directory fds, which never change
 * while the spool is open.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "spool/spool_int.h"

static const char b62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- small I/O helpers ----------------------------------------------- */

int
spool_mkdirat(int dirfd, const char *name, int *fd_r)
{
	if (mkdirat(dirfd, name, 0700) == 0) {
		/* the new entry must survive a crash like the files in it */
		if (io_fsync(dirfd) < 0)
			return -1;
	} else if (errno != EEXIST) {
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	*fd_r = fd;
	return 0;
}


/* ---- open / free ----------------------------------------------------- */

int
spool_open(const char *dir, struct workq *wq, struct spool **spool_r,
	   const char **error_r)
{
	struct spool *s = xcalloc(1, sizeof(*s));

	s->dirfd = s->tmpfd = s->queuefd = s->lockfd = -1;
	s->dir = xstrdup(dir);
	s->wq = wq;
	s->next_tail = &s->next_head;
	pthread_mutex_init(&s->recycle_lock, NULL);
	pthread_mutex_init(&s->id_lock, NULL);
	s->recycled = xcalloc(SPOOL_RECYCLE_MAX, sizeof(*s->recycled));
	if (io_mkdir_p(dir, 0700) < 0)
		goto fail_errno;
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		goto fail_errno;
	s->lockfd = openat(s->dirfd, SPOOL_LOCK_FILE,
			   O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0)
		goto fail_errno;
	/* two processes on one spool would purge each other's tmp/ */
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			*error_r = "spool directory in use by another process";
			goto fail;
		}
		goto fail_errno;
	}
	if (spool_mkdirat(s->dirfd, SPOOL_DIR_TMP, &s->tmpfd) < 0 ||
	    spool_mkdirat(s->dirfd, SPOOL_DIR_QUEUE, &s->queuefd) < 0)
		goto fail_errno;
	*spool_r = s;
	return 0;
fail_errno:
	*error_r = strerror(errno);
fail:
	spool_free(&s);
	return -1;
}

void
spool_drain(struct spool *s)
{
	s->draining = true;
	/* batch_done() starts the next batch, so this drains both */
	while (s->inflight != NULL || s->refilling) {
		struct pollfd pfd = { .fd = workq_fd(s->wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		(void)workq_complete(s->wq);
	}
	s->draining = false;
}

void
spool_free(struct spool **spoolp)
{
	struct spool *s = *spoolp;

	if (s == NULL)
		return;
	*spoolp = NULL;
	spool_drain(s);
	TN_ASSERT(s->next_head == NULL);
	spool_reserve_drop(s);
	if (s->tmpfd >= 0)
		(void)close(s->tmpfd);
	if (s->queuefd >= 0)
		(void)close(s->queuefd);
	if (s->lockfd >= 0)
		(void)close(s->lockfd);
	if (s->dirfd >= 0)
		(void)close(s->dirfd);
	pthread_mutex_destroy(&s->recycle_lock);
	pthread_mutex_destroy(&s->id_lock);
	free(s->recycled);
	free(s->dir);
	free(s);
}

/* ---- queue ids ------------------------------------------------------- */

static void
b62_put(char *out, size_t n, uint64_t v)
{
	for (size_t i = n; i-- > 0;) {
		out[i] = b62[v % 62];
		v /= 62;
	}
}

/*
 * 9 characters of microseconds since 1970 (good until the 24th century;
 * ids sort by creation time), 4 of a per-process counter and 7 random
 * ones. Time is forced to move forward within a process; across restarts
 * the random part (about 41 bits) keeps a stepped-back clock from
 * repeating an id, and the commit's RENAME_NOREPLACE refuses any id
 * still in queue/. An id is never reused because the Maildir names
 * derived from it must stay unique forever.
 *
 * The random part comes from a generator seeded once per process from
 * getrandom(): within a process time and counter already make ids
 * unique, so what matters is only that two processes draw independent
 * sequences, and one system call per id is saved.
 */
static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void
make_id(struct spool *s, char *id)
{
	struct timespec ts;
	uint64_t rnd;

	/* the loop thread makes ids for received mail, workers for the
	 * notifications they write (spool_inject) */
	pthread_mutex_lock(&s->id_lock);
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t us = (uint64_t)ts.tv_sec * 1000000u +
		      (uint64_t)ts.tv_nsec / 1000u;
	if (us <= s->last_us)
		us = s->last_us + 1;
	s->last_us = us;
	s->counter++;
	if (!s->rnd_seeded &&
	    getrandom(&s->rnd_state, sizeof(s->rnd_state), GRND_NONBLOCK) ==
	    sizeof(s->rnd_state))
		s->rnd_seeded = true;
	if (s->rnd_seeded) {
		rnd = splitmix64(&s->rnd_state);
	} else {
		/* no entropy yet (early boot): time and pid still differ;
		 * getrandom() is tried again for the next id */
		rnd = (us * 0x9e3779b97f4a7c15u) ^
		      ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
	}
	b62_put(id, 9, us);
	b62_put(id + 9, 4, s->counter);
	b62_put(id + 13, 7, rnd);
	id[SPOOL_ID_LEN] = '\0';
	pthread_mutex_unlock(&s->id_lock);
}

/* ---- receiving ------------------------------------------------------- */

static void
msg_destroy(struct spool_msg *m)
{
	if (m->fd >= 0)
		(void)close(m->fd);
	buf_clear(&m->env);
	m->s->mem_held -= m->wcap;
	free(m->wbuf);
	free(m);
}

/* creates tmp/<name> exclusively (any thread) */
static int
create_tmp(const struct spool *s, const char *name)
{
	return openat(s->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		      0600);
}

/*
 * Offers tmp/<name> for reuse (any thread). The caller guarantees that
 * the file is no longer in queue/, durably. Unlinks it when the pool is
 * full.
 */
void
spool_recycle_put(struct spool *s, const char *name)
{
	bool kept = false;

	pthread_mutex_lock(&s->recycle_lock);
	if (s->nrecycled < SPOOL_RECYCLE_MAX) {
		memcpy(s->recycled[s->nrecycled++], name, SPOOL_ID_LEN + 1);
		kept = true;
	}
	pthread_mutex_unlock(&s->recycle_lock);
	if (!kept)
		(void)unlinkat(s->tmpfd, name, 0);
}

/* true with the name of a reusable tmp/ file in name (any thread) */
static bool
recycle_take(struct spool *s, char *name)
{
	bool got = false;

	pthread_mutex_lock(&s->recycle_lock);
	if (s->nrecycled > 0) {
		memcpy(name, s->recycled[--s->nrecycled], SPOOL_ID_LEN + 1);
		got = true;
	}
	pthread_mutex_unlock(&s->recycle_lock);
	return got;
}

static unsigned
recycle_count(struct spool *s)
{
	pthread_mutex_lock(&s->recycle_lock);
	unsigned n = s->nrecycled;
	pthread_mutex_unlock(&s->recycle_lock);
	return n;
}

/*
 * Reopens a recycled tmp/ file for a new message and zeroes its header
 * (see the top of this file); -1 when it is gone, odd or too large to be
 * worth keeping (then it is unlinked).
 */
static int
reopen_recycled(struct spool *s, struct spool_slot *slot)
{
	static const uint8_t zero[SPOOL_HDR_SIZE];
	struct stat st;
	int fd = openat(s->tmpfd, slot->name,
			O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	/* a second link (only a crash on a file system without a journal
	 * could leave one, in queue/) would make it someone's message */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (uint64_t)st.st_size > SPOOL_RECYCLE_SIZE ||
	    (st.st_size > 0 &&
	     io_pwrite_all(fd, zero, sizeof(zero), 0) < 0)) {
		(void)close(fd);
		(void)unlinkat(s->tmpfd, slot->name, 0);
		return -1;
	}
	slot->fd = fd;
	slot->size = st.st_size > (off_t)SPOOL_HDR_SIZE ?
		     (uint64_t)st.st_size : SPOOL_HDR_SIZE;
	return 0;
}

/*
 * Creating a file costs a journal transaction; measured on a busy disk it
 * took 0.2-0.9 ms, too long for the event loop. Worker jobs keep a
 * reserve of ready tmp/ files, recycled ones first, created ones when
 * none are left (their names are made on the loop thread, which owns the
 * id state), and spool_msg_new() takes one; it creates its own only when
 * the reserve is empty. A job prepares only a few files, so it delays a
 * commit batch queued behind it on a one-thread pool little.
 */
static void
refill_work(void *arg)
{
	struct spool_refill *r = arg;
	struct spool *s = r->s;
	unsigned fresh = 0;

	for (unsigned i = 0; i < r->n; i++) {
		struct spool_slot *slot = &r->slot[i];
		slot->fd = -1;
		while (slot->fd < 0 && recycle_take(s, slot->name))
			(void)reopen_recycled(s, slot);
		if (slot->fd >= 0 || fresh == r->nfresh)
			continue;
		memcpy(slot->name, r->fresh[fresh++], sizeof(slot->name));
		slot->fd = create_tmp(s, slot->name);
		slot->size = 0;
	}
}

static void maybe_refill(struct spool *s);

static void
refill_done(void *arg)
{
	struct spool_refill *r = arg;
	struct spool *s = r->s;

	s->refilling = false;
	for (unsigned i = 0; i < r->n; i++) {
		if (r->slot[i].fd < 0)
			continue;
		TN_ASSERT(s->nreserve < SPOOL_RESERVE);
		s->reserve[s->nreserve++] = r->slot[i];
	}
	free(r);
	maybe_refill(s);
}

static void
maybe_refill(struct spool *s)
{
	if (s->refilling || s->draining ||
	    s->nreserve + SPOOL_REFILL > SPOOL_RESERVE)
		return;
	struct spool_refill *r = xcalloc(1, sizeof(*r));
	r->s = s;
	r->n = SPOOL_REFILL;
	/* names for the files to create when too few can be reused (the
	 * count may change meanwhile: then fewer slots are filled) */
	unsigned have = recycle_count(s);
	r->nfresh = have < r->n ? r->n - have : 0;
	for (unsigned i = 0; i < r->nfresh; i++)
		make_id(s, r->fresh[i]);
	for (unsigned i = 0; i < r->n; i++)
		r->slot[i].fd = -1;
	s->refilling = true;
	workq_submit(s->wq, refill_work, refill_done, r);
}

void
spool_reserve_drop(struct spool *s)
{
	TN_ASSERT(!s->refilling);
	for (unsigned i = 0; i < s->nreserve; i++)
		(void)close(s->reserve[i].fd);
	s->nreserve = 0;
	pthread_mutex_lock(&s->recycle_lock);
	s->nrecycled = 0;
	pthread_mutex_unlock(&s->recycle_lock);
}

int
spool_msg_new(struct spool *s, struct spool_msg **msg_r, const char **error_r)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));

	m->s = s;
	m->fd = -1;
	buf_init(&m->env, 0);
	if (s->nreserve > 0) {
		memcpy(m->tmpname, s->reserve[0].name, sizeof(m->tmpname));
		m->fd = s->reserve[0].fd;
		m->old_size = s->reserve[0].size;
		s->nreserve--;
		memmove(&s->reserve[0], &s->reserve[1],
			s->nreserve * sizeof(s->reserve[0]));
	}
	for (int tries = 0; tries < 16 && m->fd < 0; tries++) {
		make_id(s, m->tmpname);
		m->fd = create_tmp(s, m->tmpname);
		if (m->fd < 0 && errno != EEXIST) {
			*error_r = strerror(errno);
			msg_destroy(m);
			return -1;
		}
	}
	if (m->fd < 0) {
		*error_r = "no unique queue id";
		msg_destroy(m);
		return -1;
	}
	make_id(s, m->id);
	maybe_refill(s);
	/* the body starts after the header, which stays zero until the
	 * commit writes it */
	m->wbuf = xmalloc(SPOOL_WBUF_SIZE);
	m->wcap = SPOOL_WBUF_SIZE;
	s->mem_held += m->wcap;
	memset(m->wbuf, 0, SPOOL_HDR_SIZE);
	m->wlen = SPOOL_HDR_SIZE;
	*msg_r = m;
	return 0;
}

const char *
spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

uint64_t
spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

static int
msg_fail(struct spool_msg *m, int err, const char *what)
{
	if (m->err == 0) {
		m->err = err != 0 ? err : EIO;
		m->err_what = what;
	}
	return -1;
}

/*
 * A body is kept whole in memory while it is small enough, so that it
 * can be delivered before the 250 without touching its file
 * (spool_msg_body): the buffer doubles, up to SPOOL_MEM_MSG_MAX, while
 * the buffers of all messages stay under SPOOL_MEM_BUDGET. Past either
 * bound it is written to the file and stays the size it has.
 */
static void
grow(struct spool_msg *m, size_t n)
{
	struct spool *s = m->s;
	size_t want = m->wlen + n, cap = m->wcap;

	if (want > SPOOL_HDR_SIZE + SPOOL_MEM_MSG_MAX)
		return;
	while (cap < want)
		cap *= 2;
	if (cap > SPOOL_HDR_SIZE + SPOOL_MEM_MSG_MAX)
		cap = SPOOL_HDR_SIZE + SPOOL_MEM_MSG_MAX;
	if (s->mem_held - m->wcap + cap > SPOOL_MEM_BUDGET)
		return;
	m->wbuf = xrealloc(m->wbuf, cap);
	s->mem_held += cap - m->wcap;
	m->wcap = cap;
}

int
spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	uint64_t size;

	if (m->err != 0)
		return -1;
	if (n == 0)
		return 0;
	if (__builtin_add_overflow(m->size, (uint64_t)n, &size))
		return msg_fail(m, EFBIG, "write");
	if (n > m->wcap - m->wlen && !m->flushed)
		grow(m, n);
	if (n <= m->wcap - m->wlen) {
		memcpy(m->wbuf + m->wlen, p, n);
		m->wlen += n;
		m->size = size;
		return 0;
	}
	if (io_write_all(m->fd, m->wbuf, m->wlen) < 0)
		return msg_fail(m, errno, "write");
	m->wlen = 0;
	m->flushed = true;
	if (n >= m->wcap) {
		if (io_write_all(m->fd, p, n) < 0)
			return msg_fail(m, errno, "write");
	} else {
		memcpy(m->wbuf, p, n);
		m->wlen = n;
	}
	m->size = size;
	return 0;
}

bool
spool_msg_body(const struct spool_msg *m, const void **p_r, size_t *len_r)
{
	if (m->err != 0 || m->flushed)
		return false;
	*p_r = m->wbuf + SPOOL_HDR_SIZE;
	*len_r = m->wlen - SPOOL_HDR_SIZE;
	return true;
}

void
spool_msg_abort(struct spool_msg **mp)
{
	struct spool_msg *m = *mp;
	struct spool *s;

	if (m == NULL)
		return;
	*mp = NULL;
	s = m->s;
	/* room is kept for the files of a refill in flight */
	unsigned room = SPOOL_RESERVE - (s->refilling ? SPOOL_REFILL : 0);
	if (m->err == 0 && m->fd >= 0 && !m->flushed &&
	    s->nreserve < room && !s->draining) {
		/* nothing was written to it: it is as ready as when it was
		 * taken from the reserve (its header is still zero) */
		memmove(&s->reserve[1], &s->reserve[0],
			s->nreserve * sizeof(s->reserve[0]));
		memcpy(s->reserve[0].name, m->tmpname, sizeof(m->tmpname));
		s->reserve[0].fd = m->fd;
		s->reserve[0].size = m->old_size;
		s->nreserve++;
		m->fd = -1;
	} else if (m->err == 0 && m->fd >= 0) {
		/* never in queue/: reusable at once (the reopen zeroes the
		 * header and drops it when it grew too large) */
		(void)close(m->fd);
		m->fd = -1;
		spool_recycle_put(m->s, m->tmpname);
	} else {
		(void)unlinkat(m->s->tmpfd, m->tmpname, 0);
	}
	msg_destroy(m);
}

/* ---- group commit ---------------------------------------------------- */

static void batch_work(void *arg);
static void batch_done(void *arg);

static void
start_next(struct spool *s)
{
	if (s->inflight != NULL || s->next_head == NULL)
		return;
	struct spool_batch *b = xcalloc(1, sizeof(*b));
	b->s = s;
	b->head = s->next_head;
	b->n = s->next_n;
	s->next_head = NULL;
	s->next_tail = &s->next_head;
	s->next_n = 0;
	s->inflight = b;
	s->inflight_n = b->n;
	workq_submit(s->wq, batch_work, batch_done, b);
}

void
spool_msg_commit(struct spool_msg **mp, const struct spool_envelope *env,
		 spool_commit_cb *cb, void *arg)
{
	struct spool_msg *m = *mp;
	struct spool *s = m->s;

	*mp = NULL;
	m->cb = cb;
	m->cb_arg = arg;
	if (m->err == 0) {
		/* shallow copy: only id and size differ from the caller's */
		struct spool_envelope e = *env;
		memcpy(e.id, m->id, sizeof(e.id));
		e.size = m->size;
		spool_env_encode(&e, &m->env);
		if (m->env.len > SPOOL_ENV_MAX) {
			(void)msg_fail(m, EFBIG, "envelope too large");
		} else {
			struct spool_hdr h = {
				.body_len = m->size,
				.env_off = SPOOL_HDR_SIZE + m->size,
				.env_len = (uint32_t)m->env.len,
				.env_crc = spool_crc32c(0, m->env.p,
							m->env.len),
			};
			spool_hdr_encode(&h, m->hdr);
		}
	}
	*s->next_tail = m;
	s->next_tail = &m->next;
	s->next_n++;
	start_next(s);
}

/*
 * tmp/<tmpname> becomes queue/<id>; EEXIST when queue/<id> exists (a
 * clock stepped back onto an id still queued), so no message is ever
 * replaced. Falls back to a look-then-rename where the file system has no
 * RENAME_NOREPLACE (only one thread makes ids, so the look is enough).
 */
static int
rename_noreplace(const struct spool *s, const struct spool_msg *m)
{
	struct stat st;

	if (renameat2(s->tmpfd, m->tmpname, s->queuefd, m->id,
		      RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (fstatat(s->queuefd, m->id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(s->tmpfd, m->tmpname, s->queuefd, m->id);
}

/* worker thread: makes every message of the batch durable in queue/ */
static void
batch_work(void *arg)
{
	struct spool_batch *b = arg;
	struct spool *s = b->s;
	struct spool_msg *m;
	unsigned renamed = 0;
	bool by_fs = spool_sync_by_fs(b->n);

	/* 1: write the rest of the body, the envelope and the header, and
	 * (unless syncfs takes them all at once) start writeback of all
	 * files so their I/O overlaps */
	for (m = b->head; m != NULL; m = m->next) {
		if (m->err != 0)
			continue;
		/* a message that fit the buffer is written in one go, its
		 * header included; a larger one gets its header last */
		if (!m->flushed)
			memcpy(m->wbuf, m->hdr, SPOOL_HDR_SIZE);
		struct iovec iov[2] = {
			{ .iov_base = m->wbuf, .iov_len = m->wlen },
			{ .iov_base = m->env.p, .iov_len = m->env.len },
		};
		if (io_writev_all(m->fd, iov, 2) < 0) {
			(void)msg_fail(m, errno, "write");
			continue;
		}
		if (m->flushed &&
		    io_pwrite_all(m->fd, m->hdr, SPOOL_HDR_SIZE, 0) < 0) {
			(void)msg_fail(m, errno, "write header");
			continue;
		}
		/* a reused file: nothing of its old message may follow the
		 * envelope (see the top of this file) */
		/* UNSAFE: header + body + envelope is the file just written */
		uint64_t total = SPOOL_HDR_SIZE + m->size + m->env.len;
		if (m->old_size > total && ftruncate(m->fd, (off_t)total) < 0) {
			(void)msg_fail(m, errno, "truncate");
			continue;
		}
		if (!by_fs)
			(void)sync_file_range(m->fd, 0, 0,
					      SYNC_FILE_RANGE_WRITE);
	}
	/* 2: make every file durable (all at once), and only then give
	 * them their queue/ names, so the renames do not interleave with
	 * the journal commits the fdatasyncs force */
	int *fds = xcalloc(b->n, sizeof(*fds));
	int *errs = xcalloc(b->n, sizeof(*errs));
	unsigned nfds = 0;
	for (m = b->head; m != NULL; m = m->next) {
		if (m->err == 0)
			fds[nfds++] = m->fd;
	}
	(void)spool_sync_batch(fds, nfds, true, by_fs, errs);
	nfds = 0;
	for (m = b->head; m != NULL; m = m->next) {
		if (m->err == 0 && errs[nfds++] != 0)
			(void)msg_fail(m, errs[nfds - 1], "fdatasync");
		(void)close(m->fd);
		m->fd = -1;
	}
	free(fds);
	free(errs);
	for (m = b->head; m != NULL; m = m->next) {
		if (m->err == 0 && rename_noreplace(s, m) < 0)
			(void)msg_fail(m, errno, "rename");
		if (m->err != 0) {
			(void)unlinkat(s->tmpfd, m->tmpname, 0);
			continue;
		}
		m->renamed = true;
		renamed++;
	}
	/* 3: one fsync makes every new name in queue/ durable */
	if (renamed > 0 && io_fsync(s->queuefd) < 0) {
		int e = errno;
		for (m = b->head; m != NULL; m = m->next) {
			if (!m->renamed)
				continue;
			/* not known to be durable: no 250, and take it back */
			(void)unlinkat(s->queuefd, m->id, 0);
			m->renamed = false;
			(void)msg_fail(m, e, "fsync queue");
		}
	}
}

/* loop thread: releases each session's reply */
static void
batch_done(void *arg)
{
	struct spool_batch *b = arg;
	struct spool *s = b->s;
	struct spool_msg *m = b->head;

	s->inflight = NULL;
	s->inflight_n = 0;
	/* keep the disk busy while the callbacks run */
	start_next(s);
	while (m != NULL) {
		struct spool_msg *next = m->next;
		if (m->err != 0)
			log_error("spool id=%s event=commit status=failed "
				  "step=\"%s\" error=\"%s\"", m->id,
				  m->err_what, strerror(m->err));
		m->cb(m->cb_arg, m->err != 0 ? -1 : 0);
		msg_destroy(m);
		m = next;
	}
	free(b);
}

unsigned
spool_commits_pending(const struct spool *s)
{
	return s->next_n + s->inflight_n;
}

/* ---- recipient state, removal, reading ------------------------------- */

int
spool_rcpt_update(struct spool *s, const char *id, size_t idx,
		  const struct spool_rcpt *rcpt)
{
	return spool_rcpt_update_n(s, id, &idx, rcpt, 1);
}

/*
 * Appends the encoded records recs to queue/<id> and makes them durable
 * (blocking; any thread). 0, or -1 with errno: then nothing of recs is
 * in the file.
 */
static int
append_recs(struct spool *s, const char *id, const struct buf *recs)
{
	struct stat st;
	int ret = -1, err = 0;

	int fd = openat(s->queuefd, id, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	/* one writer at a time per file, so a cut after a failed write
	 * never removes another thread's record */
	if (io_flock(fd, LOCK_EX) < 0) {
		err = errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	if (io_write_all(fd, recs->p, recs->len) < 0 ||
	    io_fdatasync(fd) < 0) {
		err = errno;
		/* cut the torn record so later records stay readable */
		if (ftruncate(fd, st.st_size) == 0)
			(void)io_fdatasync(fd);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	if (ret < 0)
		errno = err;
	return ret;
}

int
spool_rcpt_update_n(struct spool *s, const char *id, const size_t *idx,
		    const struct spool_rcpt *rcpts, size_t n)
{
	struct buf recs;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0)
		return 0;
	buf_init(&recs, 0);
	for (size_t i = 0; i < n; i++)
		spool_rec_encode(idx[i], &rcpts[i], &recs);
	int ret = append_recs(s, id, &recs);
	int err = errno;
	buf_clear(&recs);
	errno = err;
	return ret;
}

int
spool_msg_hold(struct spool *s, const char *id, bool held)
{
	struct spool_msg_rec mr = { .set = SPOOL_MSGF_HELD, .held = held };
	struct buf rec;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	buf_init(&rec, 0);
	spool_msg_rec_encode(&mr, &rec);
	int ret = append_recs(s, id, &rec);
	int err = errno;
	buf_clear(&rec);
	errno = err;
	return ret;
}

int
spool_remove(struct spool *s, const char *id)
{
	int err = 0;

	if (spool_remove_n(s, &id, 1, &err) < 0) {
		errno = err;
		return -1;
	}
	return 0;
}

int
spool_remove_n(struct spool *s, const char *const *ids, size_t n, int *errs)
{
	bool *moved = xcalloc(n > 0 ? n : 1, sizeof(*moved));
	size_t nmoved = 0;
	int ret = 0;

	/*
	 * A crash that undoes a move or an unlink below brings the message
	 * back intact: recovery hands it to the runner, and its outcomes
	 * are durable (records, or Maildir copies found by name).
	 */
	bool room = recycle_count(s) < SPOOL_RECYCLE_MAX;
	for (size_t k = 0; k < n; k++) {
		int r;
		errs[k] = 0;
		if (!spool_id_valid(ids[k])) {
			errs[k] = EINVAL;
			ret = -1;
			continue;
		}
		if (room) {
			/* never over a tmp/ file: names are unique, but a
			 * reserved file must not be lost if they were not */
			r = renameat2(s->queuefd, ids[k], s->tmpfd, ids[k],
				      RENAME_NOREPLACE);
			if (r < 0 && (errno == EINVAL || errno == ENOSYS))
				r = renameat(s->queuefd, ids[k], s->tmpfd,
					     ids[k]);
			if (r == 0) {
				moved[k] = true;
				nmoved++;
				continue;
			}
			if (errno == ENOENT) {
				errs[k] = ENOENT;
				ret = -1;
				continue;
			}
		}
		if (unlinkat(s->queuefd, ids[k], 0) < 0) {
			errs[k] = errno;
			ret = -1;
		}
	}
	/* reuse only what is durably out of queue/ (top of this file) */
	bool durable = nmoved > 0 && io_fsync(s->queuefd) == 0;
	for (size_t k = 0; k < n && nmoved > 0; k++) {
		if (!moved[k])
			continue;
		if (durable)
			spool_recycle_put(s, ids[k]);
		else
			(void)unlinkat(s->tmpfd, ids[k], 0);
	}
	free(moved);
	return ret;
}

int
spool_body_open(struct spool *s, const char *id, int *fd_r, uint64_t *off_r,
		uint64_t *len_r)
{
	uint8_t raw[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	const char *why;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	int fd = openat(s->queuefd, id, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = pread(fd, raw, sizeof(raw), 0);
	if (r != (ssize_t)sizeof(raw) || spool_hdr_decode(raw, &h, &why) < 0) {
		int e = r < 0 ? errno : EBADMSG;
		(void)close(fd);
		errno = e;
		return -1;
	}
	*fd_r = fd;
	*off_r = SPOOL_HDR_SIZE;
	*len_r = h.body_len;
	return 0;
}

/* ---- messages made here -------------------------------------------- */

int
spool_inject(struct spool *s, const struct spool_envelope *env,
	     const void *body, size_t len, char *id_r)
{
	struct spool_envelope e = *env;
	struct buf eb;
	uint8_t hdr[SPOOL_HDR_SIZE];
	char id[SPOOL_ID_LEN + 1];
	int fd, err = 0;

	make_id(s, id);
	memcpy(e.id, id, sizeof(e.id));
	e.size = len;
	buf_init(&eb, 0);
	spool_env_encode(&e, &eb);
	struct spool_hdr h = {
		.body_len = len,
		.env_off = SPOOL_HDR_SIZE + len,
		.env_len = (uint32_t)eb.len,
		.env_crc = spool_crc32c(0, eb.p, eb.len),
	};
	spool_hdr_encode(&h, hdr);
	/* tmp/<id>: recovery drops it if we die before the rename */
	fd = openat(s->tmpfd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	struct iovec iov[3] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)body, .iov_len = len },
		{ .iov_base = eb.p, .iov_len = eb.len },
	};
	if (io_writev_all(fd, iov, 3) < 0 || io_fdatasync(fd) < 0) {
		err = errno;
		(void)close(fd);
		(void)unlinkat(s->tmpfd, id, 0);
		goto out;
	}
	(void)close(fd);
	if (renameat2(s->tmpfd, id, s->queuefd, id, RENAME_NOREPLACE) < 0 &&
	    ((errno != EINVAL && errno != ENOSYS) ||
	     renameat(s->tmpfd, id, s->queuefd, id) < 0)) {
		err = errno;
		(void)unlinkat(s->tmpfd, id, 0);
		goto out;
	}
	if (io_fsync(s->queuefd) < 0) {
		err = errno;
		(void)unlinkat(s->queuefd, id, 0);
		goto out;
	}
	memcpy(id_r, id, sizeof(id));
out:
	buf_clear(&eb);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

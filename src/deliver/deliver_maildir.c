/* SPDX-License-Identifier: MIT */
/*
 * deliver_maildir: the Maildir delivery agent (cr.yp.to/proto/maildir.html).
 * Blocking file I/O; it runs on a worker thread and never touches the
 * spool's files except to read the body through the fd it is given.
 *
 * Exactly once: the message's name in the Maildir is derived from the
 * queue id and the recipient index ("<received_at>.<id>_<idx>.<host>"),
 * not from a clock or a counter, so every attempt for one (message,
 * recipient) uses the same name. Queue ids are never reused, so the name
 * is still unique in the Maildir sense. Before writing, the agent looks
 * for new/<name> and cur/<name>[:info]: if the message is there, an
 * earlier attempt delivered it (and then crashed, or failed to record
 * the outcome in the spool) and nothing is written again. A tmp/<name>
 * left by a crash mid-write was never visible to a reader: it is removed
 * and the message rewritten.
 *
 * The remaining window: if the earlier attempt delivered, the spool did
 * not yet record it, and the user deleted (or moved to another folder)
 * the message before the retry looks, the retry finds nothing and
 * delivers a second copy. The window is the time between the rename into
 * new/ and the spool's fdatasync of the outcome (well under a second)
 * plus the time until the retry after a crash, and it needs a crash or a
 * spool write error inside it.
 *
 * Order of the checks: new/ first, then cur/. A reader moves a message
 * from new/ to cur/ with one rename, so looking in that order cannot
 * miss it; the other order could.
 *
 * Batches (maildir_deliver_n): the steps are the same for every message,
 * done step by step across the batch: look in new/ for all, read each
 * cur/ once for the rest, write every tmp/ file, make them all durable
 * at once (spool_sync_batch: one syncfs, or overlapping fsyncs), rename each
 * into new/, then fsync each new/ once. A message is reported delivered
 * only after its new/ fsync, so the caller may drop its spool copy then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "deliver/deliver_int.h"

#define MAILDIR_COPY_BUF (64u << 10)



/*
 * Only conditions that no admin action or retry can fix are permanent;
 * a full disk, a quota, a missing permission or a path that is not a
 * directory are all fixable, so they defer.
 */
static enum deliver_status
classify(int err)
{
	switch (err) {
	case EFBIG:          /* larger than this file system allows */
		return DELIVER_PERMFAIL;
	default:
		return DELIVER_TEMPFAIL;
	}
}

static enum deliver_status
fail(char **error_r, int err, const char *maildir, const char *what)
{
	*error_r = xasprintf("maildir %s: %s: %s", maildir, what,
			     strerror(err));
	return classify(err);
}

/*
 * Opens maildir/sub, creating it (0700) when missing; the parent of a
 * new directory is fsynced so that it survives a crash with the mail in
 * it. The open comes first: the directories exist on every delivery but
 * the first.
 */
static int
open_sub(int mdfd, const char *sub)
{
	int fd = openat(mdfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (mkdirat(mdfd, sub, 0700) == 0) {
		if (io_fsync(mdfd) < 0)
			return -1;
	} else if (errno != EEXIST) {
		return -1;
	}
	return openat(mdfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* "uniq" must not contain '/' or ':' nor start with '.' (the spec) */
static bool
unique_valid(const char *u)
{
	return u[0] != '\0' && u[0] != '.' && strchr(u, '/') == NULL &&
	       strchr(u, ':') == NULL;
}

/* the spec's repair of odd host names: '/' -> \057, ':' -> \072 */
static void
append_host(struct buf *b, const char *host)
{
	for (const char *h = host; *h != '\0'; h++) {
		if (*h == '/')
			(void)buf_append_str(b, "\\057");
		else if (*h == ':')
			(void)buf_append_str(b, "\\072");
		else
			(void)buf_append(b, h, 1);
	}
}

/* RFC 5321 §4.4: the reverse-path in angle brackets; CR and LF cannot
 * be part of a header line */
static void
return_path_line(struct buf *b, const char *return_path)
{
	(void)buf_append_str(b, "Return-Path: <");
	for (const char *r = return_path; *r != '\0'; r++) {
		if (*r != '\r' && *r != '\n')
			(void)buf_append(b, r, 1);
	}
	(void)buf_append_str(b, ">\r\n");
}

/* the Return-Path line and a body held in memory, in one write */
static int
write_body_mem(int fd, const char *return_path, const void *body,
	       uint64_t len, const char **what_r)
{
	struct buf b;
	int err = 0;

	buf_init(&b, 0);
	return_path_line(&b, return_path);
	struct iovec iov[2] = {
		{ .iov_base = b.p, .iov_len = b.len },
		/* UNSAFE: len octets at body, the caller's (maildir_item) */
		{ .iov_base = (void *)(uintptr_t)body, .iov_len = (size_t)len },
	};
	if (io_writev_all(fd, iov, 2) < 0) {
		err = errno;
		*what_r = "write";
	}
	buf_clear(&b);
	return err;
}

/*
 * Writes the Return-Path line and len body octets from body_fd at off.
 * Returns 0, or an errno value with *what_r naming the step.
 */
static int
copy_body(int fd, const char *return_path, int body_fd, uint64_t off,
	  uint64_t len, const char **what_r)
{
	struct buf b;
	uint8_t *chunk = NULL;
	int err = 0;

	buf_init(&b, 0);
	return_path_line(&b, return_path);
	chunk = xmalloc(MAILDIR_COPY_BUF);
	/* the line goes out with the first body octets: one write for a
	 * message that fits the buffer */
	size_t fill = 0;
	if (b.len <= MAILDIR_COPY_BUF / 2) {
		memcpy(chunk, b.p, b.len);
		fill = b.len;
	} else if (io_write_all(fd, b.p, b.len) < 0) {
		err = errno;
		*what_r = "write";
		goto out;
	}
	while (len > 0 || fill > 0) {
		while (len > 0 && fill < MAILDIR_COPY_BUF) {
			size_t room = MAILDIR_COPY_BUF - fill;
			size_t want = len < room ? (size_t)len : room;
			ssize_t r = pread(body_fd, chunk + fill, want,
					  (off_t)off);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				/* r == 0: the body is shorter than its
				 * header says */
				err = r < 0 ? errno : EIO;
				*what_r = "read spool body";
				goto out;
			}
			fill += (size_t)r;
			off += (uint64_t)r;
			len -= (uint64_t)r;
		}
		if (io_write_all(fd, chunk, fill) < 0) {
			err = errno;
			*what_r = "write";
			goto out;
		}
		fill = 0;
	}
out:
	free(chunk);
	buf_clear(&b);
	return err;
}

/* ---- batches ------------------------------------------------------- */

/* one Maildir of a batch, opened once */
struct md_dir {
	const char *path;
	int mdfd, tmpfd, newfd, curfd;
	int err;                /* errno of the failed open, or 0 */
	const char *what;       /* ... and the step that failed */
	bool sync_new, sync_cur;
	int sync_new_err, sync_cur_err;
};

enum md_step {
	MD_FAILED = 0,          /* st and error are set */
	MD_LOOK,                /* look in new/, then cur/ */
	MD_LOOK_CUR,
	MD_FRESH,               /* first attempt: nothing to look for */
	MD_FOUND_NEW,           /* an earlier attempt delivered it */
	MD_FOUND_CUR,
	MD_WRITTEN,             /* tmp/<name> written, fd open */
	MD_SYNCED,              /* tmp/<name> durable */
	MD_RENAMED,             /* new/<name> */
};

struct md_work {
	struct md_dir *d;
	char *name;
	size_t nlen;
	int fd;
	enum md_step step;
};

static void
dir_close(struct md_dir *d)
{
	int *fds[] = { &d->curfd, &d->newfd, &d->tmpfd, &d->mdfd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			(void)close(*fds[i]);
		*fds[i] = -1;
	}
}

static void
dir_open(struct md_dir *d)
{
	d->mdfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->mdfd < 0 && errno == ENOENT) {
		if (io_mkdir_p(d->path, 0700) < 0) {
			d->err = errno;
			d->what = "mkdir";
			return;
		}
		d->mdfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (d->mdfd < 0) {
		d->err = errno;
		d->what = "open";
		return;
	}
	if ((d->tmpfd = open_sub(d->mdfd, "tmp")) < 0 ||
	    (d->newfd = open_sub(d->mdfd, "new")) < 0 ||
	    (d->curfd = open_sub(d->mdfd, "cur")) < 0) {
		d->err = errno != 0 ? errno : EIO;
		d->what = "open tmp/new/cur";
		dir_close(d);
	}
}

static struct md_dir *
dir_get(struct md_dir *dirs, size_t *ndirs, const char *path)
{
	for (size_t i = 0; i < *ndirs; i++) {
		if (strcmp(dirs[i].path, path) == 0)
			return &dirs[i];
	}
	struct md_dir *d = &dirs[(*ndirs)++];
	d->path = path;
	d->mdfd = d->tmpfd = d->newfd = d->curfd = -1;
	dir_open(d);
	return d;
}

static void
item_fail(struct maildir_item *it, struct md_work *w, int err,
	  const char *what)
{
	it->st = fail(&it->error, err, it->maildir, what);
	w->step = MD_FAILED;
}

/* true when entry is name, or name followed by ':' (info, e.g. ":2,S")
 * or ',' (attributes some readers add) */
static bool
cur_match(const char *entry, const char *name, size_t nlen)
{
	return strncmp(entry, name, nlen) == 0 &&
	       (entry[nlen] == '\0' || entry[nlen] == ':' ||
		entry[nlen] == ',');
}

/*
 * Looks in d's cur/ for every MD_LOOK_CUR item of d with one read of the
 * directory: found ones become MD_FOUND_CUR, the others stay MD_LOOK_CUR
 * (the caller writes them), or fail when the directory cannot be read.
 */
static void
look_in_cur(struct md_dir *d, struct maildir_item *v, struct md_work *w,
	    size_t n)
{
	int fd = openat(d->mdfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	size_t left = 0;

	if (dir == NULL) {
		int e = errno;
		if (fd >= 0)
			(void)close(fd);
		for (size_t k = 0; k < n; k++) {
			if (w[k].d == d && w[k].step == MD_LOOK_CUR)
				item_fail(&v[k], &w[k], e, "read cur/");
		}
		return;
	}
	for (size_t k = 0; k < n; k++) {
		if (w[k].d == d && w[k].step == MD_LOOK_CUR)
			left++;
	}
	struct dirent *de;
	errno = 0;
	while (left > 0 && (de = readdir(dir)) != NULL) {
		for (size_t k = 0; k < n; k++) {
			if (w[k].d != d || w[k].step != MD_LOOK_CUR ||
			    !cur_match(de->d_name, w[k].name, w[k].nlen))
				continue;
			w[k].step = MD_FOUND_CUR;
			left--;
		}
		errno = 0;
	}
	int e = errno;
	(void)closedir(dir);
	for (size_t k = 0; k < n; k++) {
		if (w[k].d != d || w[k].step != MD_LOOK_CUR)
			continue;
		if (left > 0 && e != 0)
			item_fail(&v[k], &w[k], e, "read cur/");
	}
}

/* writes tmp/<name> of one item and, unless the batch is synced by file
 * system, starts its writeback */
static void
write_tmp(struct maildir_item *it, struct md_work *w, bool by_fs)
{
	struct md_dir *d = w->d;
	const char *what = NULL;

	/* a tmp/ file of a crashed attempt was never delivered: redo */
	w->fd = openat(d->tmpfd, w->name,
		       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0 && errno == EEXIST) {
		if (unlinkat(d->tmpfd, w->name, 0) < 0 && errno != ENOENT) {
			item_fail(it, w, errno, "unlink tmp/");
			return;
		}
		w->fd = openat(d->tmpfd, w->name,
			       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (w->fd < 0) {
		item_fail(it, w, errno, "create tmp/");
		return;
	}
	const char *rp = it->return_path != NULL ? it->return_path : "";
	int err = it->body_mem != NULL ?
		  write_body_mem(w->fd, rp, it->body_mem, it->len, &what) :
		  copy_body(w->fd, rp, it->body_fd, it->off, it->len, &what);
	if (err != 0) {
		item_fail(it, w, err, what);
		(void)close(w->fd);
		w->fd = -1;
		(void)unlinkat(d->tmpfd, w->name, 0);
		return;
	}
	/* let the writeback of the whole batch overlap */
	if (!by_fs)
		(void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	w->step = MD_WRITTEN;
}

void
maildir_deliver_n(struct maildir_item *v, size_t n, const char *hostname)
{
	struct md_work *w = xcalloc(n > 0 ? n : 1, sizeof(*w));
	struct md_dir *dirs = xcalloc(n > 0 ? n : 1, sizeof(*dirs));
	size_t ndirs = 0;
	const char *host = hostname != NULL && hostname[0] != '\0' ?
			   hostname : "localhost";

	/* 0: names and directories */
	for (size_t k = 0; k < n; k++) {
		struct maildir_item *it = &v[k];
		it->error = NULL;
		it->st = DELIVER_TEMPFAIL;
		w[k].fd = -1;
		w[k].step = MD_FAILED;
		if (it->maildir == NULL || it->maildir[0] == '\0') {
			it->error = xstrdup("maildir: empty path");
			it->st = DELIVER_PERMFAIL;
			continue;
		}
		if (!unique_valid(it->unique)) {
			it->error = xasprintf("maildir %s: invalid unique "
					      "name", it->maildir);
			it->st = DELIVER_PERMFAIL;
			continue;
		}
		struct buf name;
		buf_init(&name, 0);
		(void)buf_append_str(&name, it->unique);
		(void)buf_append_str(&name, ".");
		append_host(&name, host);
		w[k].name = xstrdup(buf_cstr(&name));
		w[k].nlen = name.len;
		buf_clear(&name);
		w[k].d = dir_get(dirs, &ndirs, it->maildir);
		if (w[k].d->err != 0) {
			item_fail(it, &w[k], w[k].d->err, w[k].d->what);
			continue;
		}
		w[k].step = it->first_attempt ? MD_FRESH : MD_LOOK;
	}

	/* 1: delivered by an earlier attempt? new/ before cur/ (see top) */
	for (size_t k = 0; k < n; k++) {
		struct stat sb;
		if (w[k].step != MD_LOOK)
			continue;
		if (fstatat(w[k].d->newfd, w[k].name, &sb,
			    AT_SYMLINK_NOFOLLOW) == 0)
			w[k].step = MD_FOUND_NEW;
		else if (errno == ENOENT)
			w[k].step = MD_LOOK_CUR;
		else
			item_fail(&v[k], &w[k], errno, "stat new/");
	}
	for (size_t i = 0; i < ndirs; i++) {
		for (size_t k = 0; k < n; k++) {
			if (w[k].d == &dirs[i] && w[k].step == MD_LOOK_CUR) {
				look_in_cur(&dirs[i], v, w, n);
				break;
			}
		}
	}

	/* 2: write every new copy in tmp/ */
	size_t nwrite = 0;
	for (size_t k = 0; k < n; k++) {
		if (w[k].step == MD_LOOK_CUR || w[k].step == MD_FRESH)
			nwrite++;
	}
	bool by_fs = spool_sync_by_fs(nwrite);
	for (size_t k = 0; k < n; k++) {
		struct md_dir *d = w[k].d;
		switch (w[k].step) {
		case MD_FOUND_NEW:
		case MD_FOUND_CUR:
			/* the earlier attempt may have died before its
			 * directory fsync: done below; drop a stale tmp/
			 * copy, if any */
			if (w[k].step == MD_FOUND_NEW)
				d->sync_new = true;
			else
				d->sync_cur = true;
			(void)unlinkat(d->tmpfd, w[k].name, 0);
			break;
		case MD_LOOK_CUR:
		case MD_FRESH:
			write_tmp(&v[k], &w[k], by_fs);
			break;
		default:
			break;
		}
	}

	/* 3: make them all durable (together: spool_sync_batch), then
	 * publish each. Nobody else uses a name, so a rename cannot
	 * replace another message, and it leaves no tmp/ link behind */
	int *fds = xcalloc(n > 0 ? n : 1, sizeof(*fds));
	int *errs = xcalloc(n > 0 ? n : 1, sizeof(*errs));
	size_t nfds = 0;
	for (size_t k = 0; k < n; k++) {
		if (w[k].step == MD_WRITTEN)
			fds[nfds++] = w[k].fd;
	}
	(void)spool_sync_batch(fds, nfds, false, by_fs, errs);
	nfds = 0;
	for (size_t k = 0; k < n; k++) {
		if (w[k].step != MD_WRITTEN)
			continue;
		int err = errs[nfds++];
		if (close(w[k].fd) < 0 && err == 0)
			err = errno;
		w[k].fd = -1;
		if (err != 0) {
			item_fail(&v[k], &w[k], err, "fsync");
			(void)unlinkat(w[k].d->tmpfd, w[k].name, 0);
			continue;
		}
		w[k].step = MD_SYNCED;
	}
	free(fds);
	free(errs);
	for (size_t k = 0; k < n; k++) {
		struct md_dir *d = w[k].d;
		if (w[k].step != MD_SYNCED)
			continue;
		if (renameat(d->tmpfd, w[k].name, d->newfd, w[k].name) < 0) {
			item_fail(&v[k], &w[k], errno, "rename into new/");
			(void)unlinkat(d->tmpfd, w[k].name, 0);
			continue;
		}
		w[k].step = MD_RENAMED;
		d->sync_new = true;
	}

	/* 4: one fsync of each directory makes its new names durable; on
	 * failure the retry finds new/<name> and fsyncs new/ again */
	for (size_t i = 0; i < ndirs; i++) {
		struct md_dir *d = &dirs[i];
		if (d->sync_new && io_fsync(d->newfd) < 0)
			d->sync_new_err = errno;
		if (d->sync_cur && io_fsync(d->curfd) < 0)
			d->sync_cur_err = errno;
	}
	for (size_t k = 0; k < n; k++) {
		struct md_dir *d = w[k].d;
		switch (w[k].step) {
		case MD_FOUND_NEW:
		case MD_RENAMED:
			if (d->sync_new_err != 0)
				item_fail(&v[k], &w[k], d->sync_new_err,
					  "fsync new/");
			else
				v[k].st = DELIVER_OK;
			break;
		case MD_FOUND_CUR:
			if (d->sync_cur_err != 0)
				item_fail(&v[k], &w[k], d->sync_cur_err,
					  "fsync");
			else
				v[k].st = DELIVER_OK;
			break;
		default:
			break;
		}
		free(w[k].name);
	}
	for (size_t i = 0; i < ndirs; i++)
		dir_close(&dirs[i]);
	free(dirs);
	free(w);
}

enum deliver_status
maildir_deliver(const char *maildir, const char *unique, const char *hostname,
		const char *return_path, int body_fd, uint64_t off,
		uint64_t len, char **error_r)
{
	struct maildir_item it = {
		.maildir = maildir, .unique = unique,
		.return_path = return_path, .body_fd = body_fd,
		.off = off, .len = len,
	};

	maildir_deliver_n(&it, 1, hostname);
	*error_r = it.error;
	return it.st;
}

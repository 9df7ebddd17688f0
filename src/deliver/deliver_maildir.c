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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
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

/* mkdir -p, mode 0700; each new directory's parent is fsynced so the
 * directory survives a crash with the mail in it */

/* opens maildir/sub, creating it (0700) when missing */
static int
open_sub(int mdfd, const char *sub)
{
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

/*
 * 1: cur/ holds name or name followed by ':' (info, e.g. ":2,S") or ','
 * (attributes some readers add); 0: not there; -1: error.
 */
static int
find_in_cur(int mdfd, const char *name)
{
	size_t nlen = strlen(name);
	int fd = openat(mdfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		(void)close(fd);
		return -1;
	}
	int found = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, name, nlen) == 0 &&
		    (de->d_name[nlen] == '\0' || de->d_name[nlen] == ':' ||
		     de->d_name[nlen] == ',')) {
			found = 1;
			break;
		}
		errno = 0;
	}
	int e = errno;
	(void)closedir(d);
	if (found == 0 && e != 0) {
		errno = e;
		return -1;
	}
	return found;
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
	/* RFC 5321 §4.4: the reverse-path in angle brackets; CR and LF
	 * cannot be part of a header line */
	(void)buf_append_str(&b, "Return-Path: <");
	for (const char *r = return_path; *r != '\0'; r++) {
		if (*r != '\r' && *r != '\n')
			(void)buf_append(&b, r, 1);
	}
	(void)buf_append_str(&b, ">\r\n");
	if (io_write_all(fd, b.p, b.len) < 0) {
		err = errno;
		*what_r = "write";
		goto out;
	}
	chunk = xmalloc(MAILDIR_COPY_BUF);
	while (len > 0) {
		size_t want = len < MAILDIR_COPY_BUF ? (size_t)len :
			      MAILDIR_COPY_BUF;
		ssize_t r = pread(body_fd, chunk, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			/* r == 0: the body is shorter than its header says */
			err = r < 0 ? errno : EIO;
			*what_r = "read spool body";
			goto out;
		}
		if (io_write_all(fd, chunk, (size_t)r) < 0) {
			err = errno;
			*what_r = "write";
			goto out;
		}
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
out:
	free(chunk);
	buf_clear(&b);
	return err;
}

enum deliver_status
maildir_deliver(const char *maildir, const char *unique, const char *hostname,
		const char *return_path, int body_fd, uint64_t off,
		uint64_t len, char **error_r)
{
	enum deliver_status st;
	struct buf name;
	struct stat sb;
	int mdfd = -1, tmpfd = -1, newfd = -1, curfd = -1, fd = -1;
	const char *what = NULL;

	*error_r = NULL;
	if (maildir == NULL || maildir[0] == '\0') {
		*error_r = xstrdup("maildir: empty path");
		return DELIVER_PERMFAIL;
	}
	if (!unique_valid(unique)) {
		*error_r = xasprintf("maildir %s: invalid unique name",
				     maildir);
		return DELIVER_PERMFAIL;
	}
	buf_init(&name, 0);
	(void)buf_append_str(&name, unique);
	(void)buf_append_str(&name, ".");
	append_host(&name, hostname != NULL && hostname[0] != '\0' ?
			   hostname : "localhost");
	const char *nm = buf_cstr(&name);

	if (io_mkdir_p(maildir, 0700) < 0) {
		st = fail(error_r, errno, maildir, "mkdir");
		goto out;
	}
	mdfd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mdfd < 0) {
		st = fail(error_r, errno, maildir, "open");
		goto out;
	}
	if ((tmpfd = open_sub(mdfd, "tmp")) < 0 ||
	    (newfd = open_sub(mdfd, "new")) < 0 ||
	    (curfd = open_sub(mdfd, "cur")) < 0) {
		st = fail(error_r, errno, maildir, "open tmp/new/cur");
		goto out;
	}

	/* 1: delivered by an earlier attempt? (new/ before cur/, see top) */
	int dirfd_found = -1;
	if (fstatat(newfd, nm, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		dirfd_found = newfd;
	} else if (errno != ENOENT) {
		st = fail(error_r, errno, maildir, "stat new/");
		goto out;
	} else {
		int r = find_in_cur(mdfd, nm);
		if (r < 0) {
			st = fail(error_r, errno, maildir, "read cur/");
			goto out;
		}
		if (r > 0)
			dirfd_found = curfd;
	}
	if (dirfd_found >= 0) {
		/* the earlier attempt may have died before its directory
		 * fsync: make the entry durable before saying so */
		if (io_fsync(dirfd_found) < 0) {
			st = fail(error_r, errno, maildir, "fsync");
			goto out;
		}
		/* drop a stale tmp/ copy, if any */
		(void)unlinkat(tmpfd, nm, 0);
		st = DELIVER_OK;
		goto out;
	}

	/* 2: a tmp/ file of a crashed attempt was never delivered: redo */
	if (unlinkat(tmpfd, nm, 0) < 0 && errno != ENOENT) {
		st = fail(error_r, errno, maildir, "unlink tmp/");
		goto out;
	}
	fd = openat(tmpfd, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		st = fail(error_r, errno, maildir, "create tmp/");
		goto out;
	}
	int err = copy_body(fd, return_path != NULL ? return_path : "",
			    body_fd, off, len, &what);
	if (err == 0 && io_fsync(fd) < 0) {
		err = errno;
		what = "fsync";
	}
	if (err != 0) {
		st = fail(error_r, err, maildir, what);
		(void)unlinkat(tmpfd, nm, 0);
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		st = fail(error_r, errno, maildir, "close");
		(void)unlinkat(tmpfd, nm, 0);
		goto out;
	}
	fd = -1;

	/* 3: publish. Nobody else uses this name, so rename cannot replace
	 * another message; it also leaves no tmp/ link behind */
	if (renameat(tmpfd, nm, newfd, nm) < 0) {
		st = fail(error_r, errno, maildir, "rename into new/");
		(void)unlinkat(tmpfd, nm, 0);
		goto out;
	}
	if (io_fsync(newfd) < 0) {
		/* the retry finds new/<name> and fsyncs new/ again */
		st = fail(error_r, errno, maildir, "fsync new/");
		goto out;
	}
	st = DELIVER_OK;
out:
	if (fd >= 0)
		(void)close(fd);
	if (curfd >= 0)
		(void)close(curfd);
	if (newfd >= 0)
		(void)close(newfd);
	if (tmpfd >= 0)
		(void)close(tmpfd);
	if (mdfd >= 0)
		(void)close(mdfd);
	buf_clear(&name);
	return st;
}

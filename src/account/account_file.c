/* SPDX-License-Identifier: MIT */
/*
 * account file: reading the accounts file whole, replacing it durably
 * (temporary file, fsync, rename, fsync of the directory) and the writers'
 * lock beside it. Readers take no lock: a rename replaces the file at
 * once, so a reader sees the old or the new one, never a mix.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account/account_int.h"

#define LOCK_SUFFIX ".lock"

int
account_table_load(const char *path, struct account_table **t_r,
		   char **error_r)
{
	struct buf b;
	struct stat st;
	char chunk[65536];
	ssize_t n;
	int fd, r, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		if (e == ENOENT) {
			*t_r = account_table_new();
			return 0;
		}
		*error_r = xasprintf("%s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		e = errno;
		goto fail_close;
	}
	if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		*error_r = xasprintf("%s: not a regular file", path);
		(void)close(fd);
		errno = e;
		return -1;
	}
	buf_init(&b, ACCOUNT_FILE_MAX);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			buf_clear(&b);
			goto fail_close;
		}
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			e = EFBIG;
			buf_clear(&b);
			goto fail_close;
		}
	}
	(void)close(fd);
	r = account_table_parse((const char *)b.p, b.len, path, t_r, error_r);
	buf_clear(&b);
	if (r < 0)
		errno = EBADMSG;
	return r;
fail_close:
	(void)close(fd);
	*error_r = xasprintf("%s: %s", path, strerror(e));
	errno = e;
	return -1;
}

/* the directory part of path ("." when there is none); heap */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	/* UNSAFE: slash points into path */
	return xstrndup(path, (size_t)(slash - path));
}

int
account_table_save(const char *path, const struct account_table *t,
		   char **error_r)
{
	const char *base = strrchr(path, '/');
	char *dir = dir_of(path), *tmp;
	struct stat st;
	struct buf out;
	int fd, dfd = -1;

	base = base != NULL ? base + 1 : path;
	tmp = xasprintf("%s/.%s.XXXXXX", dir, base);
	buf_init(&out, 0);
	account_table_format(t, &out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		*error_r = xasprintf("cannot create a file in %s: %s", dir,
				     strerror(errno));
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	if (fchmod(fd, 0600) < 0) {
		*error_r = xasprintf("%s: chmod: %s", tmp, strerror(errno));
		goto fail;
	}
	/* keep the owner of the file we replace (root editing the accounts
	 * of a server that runs as its own user); only root may do that,
	 * so a refusal is not an error */
	if (stat(path, &st) == 0 &&
	    (st.st_uid != geteuid() || st.st_gid != getegid()))
		(void)!fchown(fd, st.st_uid, st.st_gid);
	if (io_write_all(fd, out.p, out.len) < 0 || io_fsync(fd) < 0) {
		*error_r = xasprintf("%s: write: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = xasprintf("%s: close: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		*error_r = xasprintf("cannot rename %s to %s: %s", tmp, path,
				     strerror(errno));
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || io_fsync(dfd) < 0) {
		*error_r = xasprintf("%s: fsync of the directory: %s", dir,
				     strerror(errno));
		goto fail;
	}
	(void)close(dfd);
	buf_clear(&out);
	free(dir);
	return 0;
fail:
	if (fd >= 0)
		(void)close(fd);
	if (dfd >= 0)
		(void)close(dfd);
	if (tmp != NULL) {
		(void)unlink(tmp);
		free(tmp);
	}
	buf_clear(&out);
	free(dir);
	return -1;
}

int
account_file_lock(const char *path, int *fd_r, char **error_r)
{
	char *lock = xasprintf("%s" LOCK_SUFFIX, path);
	int fd;

	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", lock, strerror(errno));
		free(lock);
		return -1;
	}
	if (io_flock(fd, LOCK_EX) < 0) {
		*error_r = xasprintf("%s: flock: %s", lock, strerror(errno));
		(void)close(fd);
		free(lock);
		return -1;
	}
	free(lock);
	*fd_r = fd;
	return 0;
}

void
account_file_unlock(int fd)
{
	if (fd >= 0)
		(void)close(fd);
}

/* SPDX-License-Identifier: MIT */
/*
 * File I/O that finishes what it starts: whole writes and reads across
 * short transfers and EINTR, fsync with retry, and a mkdir -p whose new
 * directories survive a crash.
 */
#include <errno.h>
#include <sys/file.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"

int
io_write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int
io_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int
io_writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

int
io_pread_all(int fd, void *p, size_t n, off_t off)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t r = pread(fd, b, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO; /* the file shrank under us */
			return -1;
		}
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

static int
sync_retrying(int fd, int (*sync_fn)(int))
{
	while (sync_fn(fd) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int
io_fsync(int fd)
{
	return sync_retrying(fd, fsync);
}

int
io_fdatasync(int fd)
{
	return sync_retrying(fd, fdatasync);
}

int
io_syncfs(int fd)
{
	return sync_retrying(fd, syncfs);
}

int
io_mkdir_p(const char *path, unsigned mode)
{
	size_t len = strlen(path);
	char *p = xstrdup(path);
	int ret = 0;

	for (size_t i = 1; i <= len && ret == 0; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char save = p[i];
		p[i] = '\0';
		if (mkdir(p, (mode_t)mode) == 0) {
			/* fsync the parent so the new entry is durable */
			char *slash = strrchr(p, '/');
			char *parent = slash == NULL ? xstrdup(".") :
				       slash == p ? xstrdup("/") :
				       xstrndup(p, (size_t)(slash - p));
			int dfd = open(parent, O_RDONLY | O_DIRECTORY |
					       O_CLOEXEC);
			if (dfd < 0 || io_fsync(dfd) < 0)
				ret = -1;
			if (dfd >= 0)
				(void)close(dfd);
			free(parent);
		} else if (errno != EEXIST) {
			ret = -1;
		}
		p[i] = save;
	}
	free(p);
	return ret;
}

int
io_flock(int fd, int op)
{
	while (flock(fd, op) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Logging. One event is one line of key=value pairs, written whole with a
 * single write(2) so that lines from worker threads never interleave.
 * The sink is process-wide, set once at start-up before threads start;
 * log_reopen() later changes the file under the same descriptor number
 * only, so threads that log need no lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

enum log_sink_kind { LOG_SINK_FD = 0, LOG_SINK_SYSLOG };

/* the process-wide log sink: written by log_open() and log_close() only
 * (log_reopen() changes what fd refers to, never fd) */
static struct {
	enum log_sink_kind kind;
	int fd;
	enum log_level min;
	char *path;     /* a file sink's path, for log_reopen(); else NULL */
} log_sink = { LOG_SINK_FD, 2, LOG_LEVEL_INFO, NULL };

static int
log_file_open(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
		    0640);
}

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int
log_open(const char *dest, enum log_level min, const char **error_r)
{
	log_sink.min = min;
	if (strcmp(dest, "stderr") == 0) {
		log_sink.kind = LOG_SINK_FD;
		log_sink.fd = 2;
		return 0;
	}
	if (strcmp(dest, "syslog") == 0) {
		openlog("tern", LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_sink.kind = LOG_SINK_SYSLOG;
		return 0;
	}
	int fd = log_file_open(dest);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	log_sink.kind = LOG_SINK_FD;
	log_sink.fd = fd;
	free(log_sink.path);
	log_sink.path = xstrdup(dest);
	return 0;
}

int
log_reopen(const char **error_r)
{
	int fd;

	if (log_sink.path == NULL)
		return 0;
	fd = log_file_open(log_sink.path);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	/* dup3 puts the new file under the old descriptor number in one
	 * step: a worker's write(2) lands whole in the old file or whole in
	 * the new one. Closing the old number and using the new one instead
	 * would leave a moment in which a worker that had read the old
	 * number writes its line into whatever file reused it. */
	if (fd != log_sink.fd && dup3(fd, log_sink.fd, O_CLOEXEC) < 0) {
		int saved = errno;
		(void)close(fd);
		*error_r = strerror(saved);
		return -1;
	}
	if (fd != log_sink.fd)
		(void)close(fd);
	return 0;
}

void
log_close(void)
{
	if (log_sink.kind == LOG_SINK_SYSLOG)
		closelog();
	else if (log_sink.fd > 2)
		close(log_sink.fd);
	log_sink.kind = LOG_SINK_FD;
	log_sink.fd = 2;
	free(log_sink.path);
	log_sink.path = NULL;
}

static void __attribute__((format(printf, 3, 0)))
log_vwrite(enum log_level lvl, const char *suffix, const char *fmt,
	   va_list ap)
{
	char line[4096];
	size_t len = 0;
	int n;

	if (lvl < log_sink.min)
		return;
	if (log_sink.kind == LOG_SINK_FD) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line + len, sizeof(line) - len, ".%03ldZ %s ",
			     ts.tv_nsec / 1000000L, level_names[lvl]);
		if (n > 0)
			len += (size_t)n;
	}
	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n < 0)
		n = 0;
	len = len + (size_t)n >= sizeof(line) - 1 ? sizeof(line) - 2 : len + (size_t)n;
	if (suffix != NULL) {
		n = snprintf(line + len, sizeof(line) - len, "%s", suffix);
		if (n > 0)
			len = len + (size_t)n >= sizeof(line) - 1 ?
				sizeof(line) - 2 : len + (size_t)n;
	}
	if (log_sink.kind == LOG_SINK_SYSLOG) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING,
					    LOG_ERR };
		line[len] = '\0';
		syslog(prio[lvl], "%s", line);
		return;
	}
	line[len++] = '\n';
	(void)!write(log_sink.fd, line, len);
}

#define LOG_FN(name, lvl)                                  \
	void name(const char *fmt, ...)                    \
	{                                                  \
		va_list ap;                                \
		va_start(ap, fmt);                         \
		log_vwrite(lvl, NULL, fmt, ap);            \
		va_end(ap);                                \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_errno(enum log_level lvl, const char *fmt, ...)
{
	char suffix[256];
	va_list ap;
	int saved = errno;

	snprintf(suffix, sizeof(suffix), " error=\"%s\"", strerror(saved));
	va_start(ap, fmt);
	log_vwrite(lvl, suffix, fmt, ap);
	va_end(ap);
	errno = saved;
}

char *
log_escape(char *dst, size_t dstsz, const void *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = p;
	size_t o = 0;

	TN_ASSERT(dstsz > 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;
		if (o + need + 1 > dstsz) {
			/* no room: end in "..." when there is space for it */
			while (o > 0 && o + 4 > dstsz)
				o--;
			if (o + 4 <= dstsz) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}

/* SPDX-License-Identifier: MIT */
/*
 * Logging. One event is one line of key=value pairs, written whole with a
 * single write(2) so that lines from worker threads never interleave.
 * The sink is process-wide, set once at start-up before threads start;
 * log_reopen() later changes the file under the same descriptor number
 * only, so threads that log need no lock. In the JSON format the same
 * line becomes one JSON object (log_json).
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

/* the process-wide log sink: written by log_open(), log_set_format()
 * and log_close() only (log_reopen() changes what fd refers to, never
 * fd) */
static struct {
	enum log_sink_kind kind;
	int fd;
	enum log_level min;
	char *path;     /* a file sink's path, for log_reopen(); else NULL */
	enum log_format format;
} log_sink = { LOG_SINK_FD, 2, LOG_LEVEL_INFO, NULL, LOG_FORMAT_TEXT };

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
log_set_format(enum log_format format)
{
	log_sink.format = format;
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

/* ------------------------------------------------------------------ */
/* JSON lines */

/* a bounded writer: a piece that does not fit sets `full` and leaves
 * what was written before it */
struct json_out {
	char *p;
	size_t len, cap;
	bool full;
};

static void
json_raw(struct json_out *w, const char *s, size_t n)
{
	if (w->full || n > w->cap - w->len) {
		w->full = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

/* a JSON string: '"' and '\\' escaped, control octets as \u00XX, and
 * octets past ASCII as the text "\xHH" (log_escape's form: the line may
 * hold bytes that are not UTF-8) */
static void
json_str(struct json_out *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	json_raw(w, "\"", 1);
	for (size_t i = 0; i < n && !w->full; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];
		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			json_raw(w, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			json_raw(w, e, 6);
		} else if (c >= 0x80) {
			memcpy(e, "\\\\x", 3);
			e[3] = hex[c >> 4];
			e[4] = hex[c & 15];
			json_raw(w, e, 5);
		} else {
			json_raw(w, (const char *)&s[i], 1);
		}
	}
	json_raw(w, "\"", 1);
}

/* one "key":"value" member; false (and nothing written) when it does
 * not fit */
static bool
json_member(struct json_out *w, const char *k, size_t klen, const char *v,
	    size_t vlen)
{
	size_t mark = w->len;

	if (w->full)
		return false;
	if (mark > 1)
		json_raw(w, ",", 1);
	json_str(w, k, klen);
	json_raw(w, ":", 1);
	json_str(w, v, vlen);
	if (w->full) {
		w->len = mark;
		return false;
	}
	return true;
}

static bool
is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* q points at a quote: is it the end of the quoted value? */
static bool
quote_ends(const char *q)
{
	const char *k;

	q++;
	if (*q == '\0')
		return true;
	if (*q != ' ')
		return false;
	while (*q == ' ')
		q++;
	if (*q == '\0')
		return true;
	for (k = q; is_key_char(*k); k++)
		;
	return k > q && *k == '=';
}

size_t
log_json(char *dst, size_t dstsz, const char *ts, const char *level,
	 const char *text)
{
	static const char cut[] = ",\"truncated\":\"yes\"}";
	struct json_out w = { dst, 0, 0, false };
	const char *p = text;
	const char *sub = NULL, *sub_end = NULL;
	char msg[1024];
	size_t msglen = 0;
	bool any_pair = false, dropped = false;

	TN_ASSERT(dstsz > sizeof(cut) + 2);
	/* the members stop short of the room the end of the object takes,
	 * cut mark and NUL included, whatever was dropped */
	w.cap = dstsz - sizeof(cut);
	json_raw(&w, "{", 1);
	if (ts != NULL)
		(void)json_member(&w, "ts", 2, ts, strlen(ts));
	(void)json_member(&w, "level", 5, level, strlen(level));
	while (!dropped) {
		const char *t, *k_end, *v, *v_end;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		t = p;
		k_end = t;
		while (is_key_char(*k_end))
			k_end++;
		if (k_end == t || *k_end != '=') {
			/* a word of its own: the leading ones name what the
			 * line is about ("smtp", "net dns"), later ones go
			 * to "msg" */
			while (*p != '\0' && *p != ' ')
				p++;
			if (!any_pair) {
				if (sub == NULL)
					sub = t;
				sub_end = p;
				continue;
			}
			size_t n = (size_t)(p - t);
			if (msglen + n + 1 < sizeof(msg)) {
				if (msglen > 0)
					msg[msglen++] = ' ';
				memcpy(msg + msglen, t, n);
				msglen += n;
			}
			continue;
		}
		if (!any_pair && sub != NULL &&
		    !json_member(&w, "subsystem", 9, sub,
				 (size_t)(sub_end - sub)))
			dropped = true;
		any_pair = true;
		v = k_end + 1;
		if (*v == '"') {
			/* a quoted value ends at a quote before the end or
			 * before the next key=value (log_escape leaves no
			 * quote inside, other text may) */
			v++;
			v_end = v;
			while (*v_end != '\0' &&
			       !(*v_end == '"' && quote_ends(v_end)))
				v_end++;
			p = *v_end == '"' ? v_end + 1 : v_end;
		} else {
			v_end = v;
			while (*v_end != '\0' && *v_end != ' ')
				v_end++;
			p = v_end;
		}
		if (!dropped &&
		    !json_member(&w, t, (size_t)(k_end - t), v,
				 (size_t)(v_end - v)))
			dropped = true;
	}
	if (!dropped && !any_pair && sub != NULL &&
	    !json_member(&w, "subsystem", 9, sub, (size_t)(sub_end - sub)))
		dropped = true;
	if (!dropped && msglen > 0 && !json_member(&w, "msg", 3, msg, msglen))
		dropped = true;
	/* the end always fits: cap kept room for it */
	w.cap = dstsz - 1;
	w.full = false;
	if (dropped)
		json_raw(&w, w.len > 1 ? cut : cut + 1,
			 w.len > 1 ? sizeof(cut) - 1 : sizeof(cut) - 2);
	else
		json_raw(&w, "}", 1);
	dst[w.len] = '\0';
	return w.len;
}

/* ------------------------------------------------------------------ */

static void __attribute__((format(printf, 3, 0)))
log_vwrite(enum log_level lvl, const char *suffix, const char *fmt,
	   va_list ap)
{
	char line[4096], ts[64] = "";
	size_t len = 0;
	int n;
	bool json = log_sink.format == LOG_FORMAT_JSON;

	if (lvl < log_sink.min)
		return;
	if (log_sink.kind == LOG_SINK_FD) {
		struct timespec ts_now;
		struct tm tm;
		size_t tl;
		clock_gettime(CLOCK_REALTIME, &ts_now);
		gmtime_r(&ts_now.tv_sec, &tm);
		tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		(void)snprintf(ts + tl, sizeof(ts) - tl, ".%03ldZ",
			       ts_now.tv_nsec / 1000000L);
		if (!json) {
			n = snprintf(line, sizeof(line), "%s %s ", ts,
				     level_names[lvl]);
			if (n > 0)
				len = (size_t)n;
		}
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
	line[len] = '\0';
	if (json) {
		/* every octet of line may take 6 in JSON: the object is cut
		 * at a member that does not fit ("truncated":"yes") */
		char obj[8192];
		size_t olen = log_json(obj, sizeof(obj) - 1,
				       log_sink.kind == LOG_SINK_FD ? ts : NULL,
				       level_names[lvl], line);
		if (log_sink.kind == LOG_SINK_SYSLOG) {
			static const int prio[] = { LOG_DEBUG, LOG_INFO,
						    LOG_WARNING, LOG_ERR };
			syslog(prio[lvl], "%s", obj);
			return;
		}
		obj[olen++] = '\n';
		(void)!write(log_sink.fd, obj, olen);
		return;
	}
	if (log_sink.kind == LOG_SINK_SYSLOG) {
		static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING,
					    LOG_ERR };
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

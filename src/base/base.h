/* SPDX-License-Identifier: MIT */
/*
 * base: allocation, byte buffers, logging, assertions and a small worker
 * pool. No mail knowledge lives here; every other module may include it.
 */
#ifndef TERN_BASE_H
#define TERN_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/banned.h"

/* ------------------------------------------------------------------ */
/* Allocation: these never return NULL; they abort when memory is out. */

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* reallocarray that aborts on overflow or exhaustion */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------ */
/* Assertions guard invariants, never peer input. */

void tn_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn));
#define TN_ASSERT(e) \
	((e) ? (void)0 : tn_assert_fail(#e, __FILE__, __LINE__))

/* ------------------------------------------------------------------ */
/*
 * Byte buffers. `max` bounds growth: buf_append() returns -1 and leaves
 * the buffer unchanged when the result would exceed it (0 = unbounded,
 * only for buffers that never face a peer).
 */
struct buf {
	uint8_t *p;
	size_t len, cap, max;
};

void buf_init(struct buf *b, size_t max);
/* releases the memory; the buffer may be reused after buf_init() */
void buf_clear(struct buf *b);
/* len = 0, memory kept */
void buf_reset(struct buf *b);
/* len = 0, memory released; the buffer stays usable with the same max */
void buf_release(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* drops n bytes from the front */
void buf_consume(struct buf *b, size_t n);
/* makes p[len] == 0 (not counted in len) and returns p as text; the
 * pointer is valid until the next change to the buffer */
const char *buf_cstr(struct buf *b);

/* ------------------------------------------------------------------ */
/*
 * Logging: one event is one line of key=value pairs. The log sink is the
 * one process-wide setting outside struct tern_server: it is set once at
 * start-up, before any thread starts, and only read after that (a file
 * sink may be reopened, see log_reopen).
 */
enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

enum log_format {
	LOG_FORMAT_TEXT = 0,  /* "<ts> <level> <key=value line>" */
	LOG_FORMAT_JSON,      /* one JSON object a line (log_json) */
};

/* dest: "stderr", "syslog" or a file path (appended). Returns 0 or -1. */
int log_open(const char *dest, enum log_level min, const char **error_r);
/* text (the default) or JSON; set at start-up, as log_open */
void log_set_format(enum log_format format);
void log_close(void);
/*
 * For log rotation (SIGUSR1): a file sink opens its path again (appending,
 * created 0640 when missing), so that after a rename the lines go to a new
 * file at the old path. The new file takes the old one's descriptor
 * number in one step: threads may log meanwhile, each line lands whole in
 * one file or the other. stderr and syslog: nothing to do. Call it from
 * one thread at a time (the loop). Returns 0, or -1 with *error_r (static
 * text) when the file cannot be opened; the old file stays the sink then.
 */
int log_reopen(const char **error_r);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* logs at error level and exits(1) */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
	__attribute__((noreturn));
/* logs at the given level with ": <strerror(errno)>" appended */
void log_errno(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Escapes peer bytes for a log line: printable ASCII except '"' and '\\'
 * pass through, everything else becomes \xHH; at most dstsz-1 bytes are
 * written and the output is always NUL-terminated (dstsz > 0). Returns
 * dst. Output longer than the room ends in "...".
 */
char *log_escape(char *dst, size_t dstsz, const void *p, size_t n);

/*
 * A log line as one JSON object: {"ts":ts,"level":level,...} (no "ts"
 * when ts is NULL), then the line's leading words as "subsystem"
 * ("smtp"), each key=value as a string member (a "quoted" value without
 * its quotes, else the word up to the next space), and any other words
 * as "msg". Strings are JSON-escaped; octets past ASCII become the text
 * \xHH. A member that does not fit in dstsz ends the object with
 * "truncated":"yes". Writes a NUL-terminated object (dstsz > 24) and
 * returns its length.
 */
size_t log_json(char *dst, size_t dstsz, const char *ts, const char *level,
		const char *text);

/* ------------------------------------------------------------------ */
/*
 * Worker pool for blocking work (fsync, file writes). Jobs run `work` on
 * a worker thread; then `done` runs on the thread that calls
 * workq_complete(), normally the event loop, after workq_fd() became
 * readable. Jobs run in any order across threads.
 */
struct workq;
typedef void workq_fn(void *arg);

struct workq *workq_new(unsigned nthreads);
/* waits for every submitted job (work and done) to finish, then frees */
void workq_free(struct workq **wqp);
void workq_submit(struct workq *wq, workq_fn *work, workq_fn *done,
		  void *arg);
/* an fd that becomes readable when done callbacks are waiting */
int workq_fd(const struct workq *wq);
/* runs the waiting done callbacks; returns how many ran */
unsigned workq_complete(struct workq *wq);
/* jobs submitted whose done callback has not yet run */
unsigned workq_pending(const struct workq *wq);

/* ------------------------------------------------------------------ */
/* File I/O: whole transfers (retrying EINTR and short counts); 0 or -1
 * with errno */
struct iovec;
int io_write_all(int fd, const void *p, size_t n);
int io_pwrite_all(int fd, const void *p, size_t n, off_t off);
/* modifies iov while it advances */
int io_writev_all(int fd, struct iovec *iov, int n);
/* EIO when the file ends early */
int io_pread_all(int fd, void *p, size_t n, off_t off);
int io_fsync(int fd);
int io_fdatasync(int fd);
/* syncfs(2) of the file system holding fd */
int io_syncfs(int fd);
/* flock(2), retrying EINTR (op: LOCK_SH, LOCK_EX, ...) */
int io_flock(int fd, int op);
/* mkdir -p; each directory it creates has its parent fsynced */
int io_mkdir_p(const char *path, unsigned mode);

/* ------------------------------------------------------------------ */
/* Small helpers */

/* parses a decimal unsigned number with full-string and overflow checks */
int parse_u64(const char *s, uint64_t *v_r);
/* a heap copy of at most max octets of s in which every octet that is
 * not printable ASCII, and the space, becomes '?': for names that go into
 * protocol lines (a host name in a greeting, an EHLO argument) */
char *xstrdup_printable(const char *s, size_t max);
/* case-insensitive ASCII compare of NUL-terminated strings */
int ascii_strcasecmp(const char *a, const char *b);
int ascii_strncasecmp(const char *a, const char *b, size_t n);

/* ------------------------------------------------------------------ */
/* text codings (base_text.c) */

/* appends the base64 of n octets (RFC 4648 §4, with padding) */
void b64_append(struct buf *b, const void *p, size_t n);
/*
 * Decodes strict base64: whole groups of four, "=" only as the last one
 * or two characters, zero bits past the data, nothing outside the
 * alphabet (RFC 4648 §3). out may be s itself (decoding in place).
 * Returns the number of octets, -1 when s is not such base64, -2 when
 * they would be more than outmax.
 */
long b64_decode(const char *s, size_t n, uint8_t *out, size_t outmax);
/* the value of a hexadecimal digit (either case), or -1 */
int hex_value(int c);
/*
 * The length of the well-formed UTF-8 sequence at p (1 to 4, n > 0) and
 * its code point, or 0 for an ill-formed or cut one: RFC 3629 §4, no
 * overlong forms, no surrogates, nothing above U+10FFFF.
 */
size_t utf8_char(const uint8_t *p, size_t n, uint32_t *cp_r);
/* n octets of well-formed UTF-8 */
bool utf8_valid(const uint8_t *p, size_t n);

#endif

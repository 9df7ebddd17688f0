/* SPDX-License-Identifier: MIT */
/*
 * Growable byte buffers with an upper bound. Every buffer that holds peer
 * input has a max, so no peer can make us allocate without limit.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"

void
buf_init(struct buf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_clear(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
}

/* makes room for `need` bytes past len plus a NUL; -1 past max */
static int
buf_reserve(struct buf *b, size_t need)
{
	size_t want, cap;

	if (__builtin_add_overflow(b->len, need, &want))
		return -1;
	if (b->max != 0 && want > b->max)
		return -1;
	if (want < b->cap)
		return 0;
	cap = b->cap < 64 ? 64 : b->cap;
	while (cap <= want) {
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -1;
	}
	/* room for a NUL at p[max] so buf_cstr never fails */
	if (b->max != 0 && cap > b->max + 1)
		cap = b->max + 1;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	/* UNSAFE: buf_reserve left room for n bytes plus the NUL */
	(void)vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;
	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

const char *
buf_cstr(struct buf *b)
{
	if (b->len == b->cap) {
		/* grow by one for the NUL, even at max: max bounds content */
		b->p = xrealloc(b->p, b->cap + 1);
		b->cap++;
	}
	b->p[b->len] = '\0';
	return (const char *)b->p;
}

void
buf_release(struct buf *b)
{
	size_t max = b->max;

	buf_clear(b);
	buf_init(b, max);
}

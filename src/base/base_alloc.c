/* SPDX-License-Identifier: MIT */
/*
 * Allocation that never returns NULL: running out of memory aborts, and
 * the spool's durability makes that safe (nothing accepted is lost).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static void __attribute__((noreturn))
out_of_memory(size_t n)
{
	char msg[96];
	int len = snprintf(msg, sizeof(msg),
			   "tern: out of memory allocating %zu bytes\n", n);
	if (len > 0 && (size_t)len < sizeof(msg))
		(void)!write(2, msg, (size_t)len);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n == 0 ? 1 : n);
	if (p == NULL)
		out_of_memory(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		out_of_memory(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n == 0 ? 1 : n);
	if (q == NULL)
		out_of_memory(n);
	return q;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(nmemb, size, &n))
		out_of_memory(SIZE_MAX);
	return xrealloc(p, n);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		out_of_memory(0);
	va_end(ap);
	return p;
}

void
tn_assert_fail(const char *expr, const char *file, int line)
{
	log_error("assert failed: %s at %s:%d", expr, file, line);
	abort();
}

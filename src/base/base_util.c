/* SPDX-License-Identifier: MIT */
/* Small text helpers with explicit error checks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int
parse_u64(const char *s, uint64_t *v_r)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v_r = v;
	return 0;
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int
ascii_strncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ca = lower((unsigned char)a[i]);
		int cb = lower((unsigned char)b[i]);
		if (ca != cb)
			return ca - cb;
		if (ca == 0)
			return 0;
	}
	return 0;
}

int
ascii_strcasecmp(const char *a, const char *b)
{
	return ascii_strncasecmp(a, b, (size_t)-1);
}

char *
xstrdup_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *d = xstrndup(s, n);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c <= 32 || c >= 127)
			d[i] = '?';
	}
	return d;
}

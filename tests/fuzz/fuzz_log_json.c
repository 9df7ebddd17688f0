/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for log_json(), which turns a log line into one JSON
 * object. The first input octet picks the output size; the rest is the
 * line. Whatever the line, the output must be one well-formed object of
 * string members ({"k":"v",...}): strings hold no raw control octet and
 * only the escapes \" \\ \uXXXX, and the object fits its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a JSON string at *p; advances past it */
static int
string_ok(const char **p)
{
	const char *s = *p;

	if (*s++ != '"')
		return 0;
	for (;;) {
		unsigned char c = (unsigned char)*s++;
		if (c == '"')
			break;
		if (c < 0x20 || c >= 0x80)
			return 0;
		if (c == '\\') {
			c = (unsigned char)*s++;
			if (c == 'u') {
				for (int i = 0; i < 4; i++) {
					char h = *s++;
					if (!((h >= '0' && h <= '9') ||
					      (h >= 'a' && h <= 'f')))
						return 0;
				}
			} else if (c != '"' && c != '\\') {
				return 0;
			}
		}
	}
	*p = s;
	return 1;
}

static int
object_ok(const char *p)
{
	if (*p++ != '{')
		return 0;
	if (*p == '}')
		return p[1] == '\0';
	for (;;) {
		if (!string_ok(&p) || *p++ != ':' || !string_ok(&p))
			return 0;
		if (*p == '}')
			return p[1] == '\0';
		if (*p++ != ',')
			return 0;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t dstsz;
	char *text, *out;

	if (size < 1)
		return 0;
	dstsz = 25 + (size_t)data[0] * 8;
	text = malloc(size);
	out = malloc(dstsz);
	if (text == NULL || out == NULL)
		abort();
	/* a line is text: it ends at its first NUL */
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	size_t n = log_json(out, dstsz, size % 2 ? "2024-01-01T00:00:00.000Z" :
			    NULL, "info", text);
	if (n >= dstsz || out[n] != '\0' || strlen(out) != n ||
	    !object_ok(out))
		abort();
	free(out);
	free(text);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Text codings shared by the protocol engines, the accounts file and
 * the control socket: base64 (RFC 4648 §4, with padding), hexadecimal
 * digits and UTF-8 (RFC 3629).
 */
#include <string.h>

#include "base/base.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
b64_append(struct buf *b, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			w |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			w |= p[i + 2];
		q[0] = b64_alphabet[w >> 18 & 63];
		q[1] = b64_alphabet[w >> 12 & 63];
		q[2] = i + 1 < n ? b64_alphabet[w >> 6 & 63] : '=';
		q[3] = i + 2 < n ? b64_alphabet[w & 63] : '=';
		(void)buf_append(b, q, 4);
	}
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
b64_decode(const char *s, size_t n, uint8_t *out, size_t outmax)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		size_t pad = 0;

		/* all four characters are read before anything is written:
		 * out may be s (o <= i) */
		for (size_t k = 0; k < 4; k++) {
			if (s[i + k] == '=') {
				/* RFC 4648 §3.2: one or two, at the very end */
				if (i + 4 != n || k < 2)
					return -1;
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0)
				return -1;
			/* §3.3: nothing outside the alphabet */
			v[k] = b64_value(s[i + k]);
			if (v[k] < 0)
				return -1;
		}
		/* §3.5: the bits past the data are zero */
		if ((pad == 1 && (v[2] & 0x3) != 0) ||
		    (pad == 2 && (v[1] & 0xf) != 0))
			return -1;
		if (outmax - o < 3 - pad)
			return -2;
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (uint8_t)((v[1] & 0xf) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (uint8_t)((v[2] & 0x3) << 6 | v[3]);
	}
	return (long)o;
}

int
hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The length of the well-formed UTF-8 sequence at p (1 to 4) and its code
 * point, or 0 for an ill-formed one: RFC 3629 §4, no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
size_t
utf8_char(const uint8_t *p, size_t n, uint32_t *cp_r)
{
	uint8_t c = p[0];
	uint32_t cp, min;
	size_t len;

	if (c < 0x80) {
		*cp_r = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1fu;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		cp = c & 0x0fu;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07u;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

bool
utf8_valid(const uint8_t *p, size_t n)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_char(p + i, n - i, &cp);
		if (len == 0)
			return false;
		i += len;
	}
	return true;
}

/* SPDX-License-Identifier: MIT */
/*
 * account addresses: what an account name may be (a dot-atom or UTF-8
 * local part, "@", a domain name) and its stored, lower-cased form.
 * Pure.
 */
#include <string.h>

#include "account/account_int.h"

/* RFC 5322 §3.2.3 atext, ASCII part */
static bool
is_atext(unsigned char c)
{
	return account_ascii_alpha(c) || account_ascii_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* length of the well-formed UTF-8 sequence (2..4 octets, no overlong
 * forms, no surrogates) at p[0..n), or 0 */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned long cp;

	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* RFC 5321 §4.1.2 Dot-string, with RFC 6531 §3.3 UTF-8 */
static bool
local_valid(const unsigned char *p, size_t n)
{
	if (n == 0 || n > ACCOUNT_LOCAL_MAX || p[0] == '.' || p[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n;) {
		if (p[i] >= 0x80) {
			size_t l = utf8_seq(p + i, n - i);
			if (l == 0)
				return false;
			i += l;
			continue;
		}
		if (p[i] == '.' ? i + 1 < n && p[i + 1] == '.' :
				  !is_atext(p[i]))
			return false;
		i++;
	}
	return true;
}

/* RFC 1035 §2.3.1 letters, digits, hyphens; the last label not all
 * digits (as conf accepts a domain) */
static bool
domain_valid(const unsigned char *p, size_t n)
{
	size_t label = 0;
	bool alpha = false;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = i < n ? p[i] : '.';

		if (c == '.') {
			if (label == 0 || label > 63 || p[i - 1] == '-')
				return false;
			if (i == n)
				break;
			label = 0;
			alpha = false;
			continue;
		}
		if (!account_ascii_alpha(c) && !account_ascii_digit(c) &&
		    c != '-')
			return false;
		if (label == 0 && c == '-')
			return false;
		if (!account_ascii_digit(c))
			alpha = true;
		label++;
	}
	return alpha;
}

bool
account_address_valid_n(const char *a, size_t n)
{
	const char *at;

	if (n == 0 || n > ACCOUNT_ADDRESS_MAX)
		return false;
	at = memchr(a, '@', n);
	if (at == NULL || memchr(at + 1, '@', n - (size_t)(at + 1 - a)) != NULL)
		return false;
	/* UNSAFE: at lies in a[0..n) */
	return local_valid((const unsigned char *)a, (size_t)(at - a)) &&
	       domain_valid((const unsigned char *)at + 1,
			    n - (size_t)(at - a) - 1);
}

bool
account_address_valid(const char *address)
{
	size_t n = strnlen(address, ACCOUNT_ADDRESS_MAX + 1);

	return account_address_valid_n(address, n);
}

void
account_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)account_ascii_lower((unsigned char)*s);
}

char *
account_address_normalize(const char *address)
{
	char *s = xstrdup(address);

	account_lower(s);
	return s;
}

const char *
account_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

bool
account_normalize_into(const char *address, char *out)
{
	size_t i;

	for (i = 0; address[i] != '\0'; i++) {
		if (i == ACCOUNT_ADDRESS_MAX)
			return false;
		out[i] = (char)account_ascii_lower((unsigned char)address[i]);
	}
	out[i] = '\0';
	return true;
}

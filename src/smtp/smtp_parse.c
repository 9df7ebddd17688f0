/* SPDX-License-Identifier: MIT */
/*
 * smtp_parse: the syntax of MAIL and RCPT arguments. Paths per RFC 5321
 * §4.1.2 with the RFC 6531 §3.3 UTF-8 additions, and the ESMTP parameters
 * of SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531) and DSN
 * (RFC 3461). Pure functions over NUL-terminated text; no engine state.
 */
#include <string.h>

#include "smtp/smtp_int.h"

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 §3.2.3 atext */
static bool
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

size_t
smtp_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];

	/* RFC 3629 §4: no overlong forms, no surrogates, nothing past
	 * U+10FFFF. A NUL never passes as a continuation octet, so this
	 * never reads past the end of the string. */
	if (c >= 0xc2 && c <= 0xdf)
		return s[1] >= 0x80 && s[1] <= 0xbf ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = 0x80, hi = 0xbf;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		if (s[1] < lo || s[1] > hi)
			return 0;
		return s[2] >= 0x80 && s[2] <= 0xbf ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = 0x80, hi = 0xbf;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (s[1] < lo || s[1] > hi)
			return 0;
		if (s[2] < 0x80 || s[2] > 0xbf)
			return 0;
		return s[3] >= 0x80 && s[3] <= 0xbf ? 4 : 0;
	}
	return 0;
}

/*
 * RFC 5321 §4.1.2 Domain = sub-domain *("." sub-domain), sub-domain =
 * Let-dig [Ldh-str]; RFC 6531 §3.3 adds U-labels, so UTF-8 sequences
 * count as letters. Returns the octets used, 0 when there is no domain.
 */
static size_t
parse_domain(const char *s, bool *non_ascii)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	for (;;) {
		bool last_hyphen = false;
		size_t start = i;
		for (;;) {
			size_t u;
			if (is_alpha(p[i]) || is_digit(p[i])) {
				i++;
				last_hyphen = false;
			} else if (p[i] == '-' && i > start) {
				i++;
				last_hyphen = true;
			} else if ((u = smtp_utf8_len(p + i)) > 0) {
				i += u;
				last_hyphen = false;
				*non_ascii = true;
			} else {
				break;
			}
		}
		if (i == start || last_hyphen)
			return 0;
		if (p[i] != '.')
			return i;
		i++;
	}
}

/* Snum 3("." Snum), Snum = 1*3DIGIT up to 255; all of s[0..n) */
static bool
ipv4_ok(const char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t digits = 0;
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		while (i < n && is_digit((unsigned char)s[i]) && digits < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || v > 255)
			return false;
	}
	return i == n;
}

/*
 * RFC 5321 §4.1.3 IPv6-addr: IPv6-full (8 groups), IPv6-comp ("::" and at
 * most 6 groups), IPv6v4-full (6 groups and IPv4), IPv6v4-comp ("::", at
 * most 4 groups and IPv4). All of s[0..n).
 */
static bool
ipv6_ok(const char *s, size_t n)
{
	size_t i = 0;
	unsigned groups = 0;
	bool dbl = false, v4 = false;

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		dbl = true;
		i = 2;
	} else if (n > 0 && s[0] == ':') {
		return false;
	}
	while (i < n) {
		size_t j = i;
		while (j < n && is_hex((unsigned char)s[j]) && j - i < 4)
			j++;
		if (j < n && s[j] == '.') {
			if (!ipv4_ok(s + i, n - i))
				return false;
			v4 = true;
			break;
		}
		if (j == i)
			return false;
		groups++;
		i = j;
		if (i == n)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < n && s[i] == ':') {
			if (dbl)
				return false;
			dbl = true;
			i++;
		} else if (i == n) {
			return false;
		}
	}
	if (v4)
		return dbl ? groups <= 4 : groups == 6;
	return dbl ? groups <= 6 : groups == 8;
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]" (RFC 5321 §4.1.3). s points at "[";
 * returns the octets used including "]", 0 when bad.
 */
static size_t
parse_addr_literal(const char *s)
{
	const char *close = strchr(s, ']');
	const char *body = s + 1, *colon;
	size_t n;

	if (close == NULL)
		return 0;
	n = (size_t)(close - body);
	colon = memchr(body, ':', n);
	if (colon == NULL) {
		if (!ipv4_ok(body, n))
			return 0;
	} else {
		size_t tag = (size_t)(colon - body);
		if (tag == 4 && ascii_strncasecmp(body, "IPv6", 4) == 0) {
			if (!ipv6_ok(colon + 1, n - tag - 1))
				return 0;
		} else {
			/* Standardized-tag ":" 1*dcontent; tag is an Ldh-str */
			if (tag == 0 || body[tag - 1] == '-')
				return 0;
			for (size_t i = 0; i < tag; i++) {
				unsigned char c = (unsigned char)body[i];
				if (!is_alpha(c) && !is_digit(c) && c != '-')
					return 0;
			}
			if (tag + 1 == n)
				return 0;
			for (size_t i = tag + 1; i < n; i++) {
				unsigned char c = (unsigned char)body[i];
				/* dcontent = %d33-90 / %d94-126 */
				if (c < 33 || c > 126 || (c >= 91 && c <= 93))
					return 0;
			}
		}
	}
	return n + 2;
}

/* Local-part = Dot-string / Quoted-string, with RFC 6531 UTF-8 */
static size_t
parse_local_part(const char *s, bool *non_ascii)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, u;

	if (p[0] == '"') {
		i = 1;
		for (;;) {
			unsigned char c = p[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (p[i + 1] < 32 || p[i + 1] > 126)
					return 0;
				i += 2;
			} else if (c >= 32 && c <= 126) {
				/* qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
				i++;
			} else if ((u = smtp_utf8_len(p + i)) > 0) {
				i += u;
				*non_ascii = true;
			} else {
				return 0;
			}
		}
	}
	/* Dot-string = Atom *("." Atom) */
	for (;;) {
		size_t start = i;
		for (;;) {
			if (is_atext(p[i])) {
				i++;
			} else if ((u = smtp_utf8_len(p + i)) > 0) {
				i += u;
				*non_ascii = true;
			} else {
				break;
			}
		}
		if (i == start)
			return 0;
		if (p[i] != '.')
			return i;
		i++;
	}
}

enum smtp_path_result
smtp_parse_path(const char *s, unsigned flags, struct smtp_path *path_r)
{
	const char *p = s + 1, *mbox;
	size_t n;

	memset(path_r, 0, sizeof(*path_r));
	if (s[0] != '<' || strchr(p, '>') == NULL)
		return SMTP_PATH_SYNTAX;
	if (*p == '>') {
		if ((flags & SMTP_PATH_NULL_OK) == 0)
			return SMTP_PATH_MAILBOX;
		path_r->addr = p;
		path_r->end = p + 1;
		return SMTP_PATH_OK;
	}
	/* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, any case */
	if ((flags & SMTP_PATH_POSTMASTER) != 0 &&
	    ascii_strncasecmp(p, "postmaster>", 11) == 0) {
		path_r->addr = "Postmaster";
		path_r->len = 10;
		path_r->end = p + 11;
		path_r->postmaster = true;
		return SMTP_PATH_OK;
	}
	/* RFC 5321 §4.1.2 A-d-l = At-domain *( "," At-domain ) ":"; §3.6.1
	 * and Appendix C: a source route is accepted and ignored */
	if (*p == '@') {
		for (;;) {
			bool dummy = false;
			p++;
			n = parse_domain(p, &dummy);
			if (n == 0)
				return SMTP_PATH_MAILBOX;
			p += n;
			if (*p == ':')
				break;
			if (p[0] != ',' || p[1] != '@')
				return SMTP_PATH_MAILBOX;
			p++;
		}
		p++;
	}
	mbox = p;
	n = parse_local_part(p, &path_r->non_ascii);
	if (n == 0 || p[n] != '@')
		return SMTP_PATH_MAILBOX;
	p += n + 1;
	if (*p == '[')
		n = parse_addr_literal(p);
	else
		n = parse_domain(p, &path_r->non_ascii);
	/* a fully qualified "b.example." names the same domain: not RFC
	 * 5321 syntax, but taken in RCPT so that the relay decision, not a
	 * syntax error, answers it (the caller drops the dot) */
	if (n == 0 && *p != '[' && (flags & SMTP_PATH_TRAILING_DOT) != 0) {
		const char *gt = strchr(p, '>');
		char dom[256];
		/* UNSAFE: gt points into p, after it */
		size_t len = gt != NULL ? (size_t)(gt - p) : 0;
		if (len >= 2 && len < sizeof(dom) && p[len - 1] == '.') {
			memcpy(dom, p, len - 1);
			dom[len - 1] = '\0';
			if (parse_domain(dom, &path_r->non_ascii) == len - 1)
				n = len;
		}
	}
	if (n == 0 || p[n] != '>')
		return SMTP_PATH_MAILBOX;
	p += n;
	path_r->addr = mbox;
	path_r->len = (size_t)(p - mbox);
	path_r->end = p + 1;
	return SMTP_PATH_OK;
}

/* ------------------------------------------------------------------ */
/* ESMTP parameters */

bool
smtp_xtext_ok(const char *s, size_t max, bool utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, u;

	while (p[i] != '\0') {
		if (p[i] == '+') {
			/* hexchar = "+" 2(%x30-39 / %x41-46); lower case is
			 * taken too, as receivers should be liberal */
			if (!is_hex(p[i + 1]) || !is_hex(p[i + 2]))
				return false;
			i += 3;
		} else if (p[i] >= 33 && p[i] <= 126 && p[i] != '=') {
			i++;
		} else if (utf8 && (u = smtp_utf8_len(p + i)) > 0) {
			i += u;
		} else {
			return false;
		}
	}
	return i > 0 && i <= max;
}

static const struct smtp_rej rej_param_syntax = {
	501, "5.5.4", "Bad parameter syntax", true };
static const struct smtp_rej rej_param_dup = {
	501, "5.5.4", "Duplicate parameter", true };
static const struct smtp_rej rej_param_unknown = {
	555, "5.5.4", "Unsupported parameter", true };
static const struct smtp_rej rej_size = {
	501, "5.5.4", "Bad SIZE parameter syntax", true };
static const struct smtp_rej rej_body = {
	501, "5.5.4", "Bad BODY parameter: 7BIT or 8BITMIME expected", true };
static const struct smtp_rej rej_smtputf8 = {
	501, "5.5.4", "SMTPUTF8 takes no value", true };
static const struct smtp_rej rej_ret = {
	501, "5.5.4", "Bad RET parameter: FULL or HDRS expected", true };
static const struct smtp_rej rej_envid = {
	501, "5.5.4", "Bad ENVID parameter syntax", true };
static const struct smtp_rej rej_notify = {
	501, "5.5.4", "Bad NOTIFY parameter syntax", true };
static const struct smtp_rej rej_orcpt = {
	501, "5.5.4", "Bad ORCPT parameter syntax", true };
static const struct smtp_rej rej_auth = {
	501, "5.5.4", "Bad AUTH parameter syntax", true };

typedef const struct smtp_rej *param_fn(const char *value,
					struct smtp_esmtp *out);

struct smtp_param {
	const char *name;
	param_fn *parse;    /* value is NULL when the keyword had none */
};

/* RFC 1870 §4: SIZE=size-value, 1*20DIGIT; §5: the size counts CRLFs
 * but not the final dot or the stuffing dots */
static const struct smtp_rej *
param_size(const char *v, struct smtp_esmtp *out)
{
	size_t n = v != NULL ? strlen(v) : 0;
	uint64_t size = 0;

	if (n == 0 || n > SMTP_SIZE_DIGITS_MAX)
		return &rej_size;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)v[i]))
			return &rej_size;
		/* 20 digits may pass 2^64: such a size is over any limit */
		if (__builtin_mul_overflow(size, 10, &size) ||
		    __builtin_add_overflow(size, (uint64_t)(v[i] - '0'), &size))
			size = UINT64_MAX;
	}
	out->mail.size = size;
	return NULL;
}

/* RFC 6152 §2: BODY=7BIT / BODY=8BITMIME (BINARYMIME is not offered) */
static const struct smtp_rej *
param_body(const char *v, struct smtp_esmtp *out)
{
	if (v != NULL && ascii_strcasecmp(v, "7BIT") == 0)
		out->mail.body = SMTP_BODY_7BIT;
	else if (v != NULL && ascii_strcasecmp(v, "8BITMIME") == 0)
		out->mail.body = SMTP_BODY_8BITMIME;
	else
		return &rej_body;
	return NULL;
}

/* RFC 6531 §3.4: SMTPUTF8 has no value */
static const struct smtp_rej *
param_smtputf8(const char *v, struct smtp_esmtp *out)
{
	if (v != NULL)
		return &rej_smtputf8;
	out->mail.smtputf8 = true;
	return NULL;
}

/* RFC 3461 §4.3: RET=FULL / RET=HDRS */
static const struct smtp_rej *
param_ret(const char *v, struct smtp_esmtp *out)
{
	if (v != NULL && ascii_strcasecmp(v, "FULL") == 0)
		out->mail.ret = SMTP_RET_FULL;
	else if (v != NULL && ascii_strcasecmp(v, "HDRS") == 0)
		out->mail.ret = SMTP_RET_HDRS;
	else
		return &rej_ret;
	return NULL;
}

/* RFC 3461 §4.4: ENVID=xtext, at most 100 characters */
static const struct smtp_rej *
param_envid(const char *v, struct smtp_esmtp *out)
{
	if (v == NULL || !smtp_xtext_ok(v, SMTP_ENVID_MAX, false))
		return &rej_envid;
	out->mail.envid = v;
	return NULL;
}

/* RFC 3461 §4.1: NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY */
static const struct smtp_rej *
param_notify(const char *v, struct smtp_esmtp *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER },
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE },
		{ "DELAY", SMTP_NOTIFY_DELAY },
	};
	unsigned mask = 0;

	if (v == NULL)
		return &rej_notify;
	for (;;) {
		const char *comma = strchr(v, ',');
		size_t n = comma != NULL ? (size_t)(comma - v) : strlen(v);
		unsigned bit = 0;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (strlen(words[i].name) == n &&
			    ascii_strncasecmp(v, words[i].name, n) == 0)
				bit = words[i].bit;
		}
		if (bit == 0 || (mask & bit) != 0)
			return &rej_notify;
		mask |= bit;
		if (comma == NULL)
			break;
		v = comma + 1;
	}
	/* "NEVER" must stand alone */
	if ((mask & SMTP_NOTIFY_NEVER) != 0 && mask != SMTP_NOTIFY_NEVER)
		return &rej_notify;
	out->rcpt.notify = mask;
	return NULL;
}

/* RFC 3461 §4.2: ORCPT=addr-type ";" xtext, at most 500 characters;
 * RFC 6533 §3 allows UTF-8 in it when the transaction is SMTPUTF8 */
static const struct smtp_rej *
param_orcpt(const char *v, struct smtp_esmtp *out)
{
	const char *semi;

	if (v == NULL || strlen(v) > SMTP_ORCPT_MAX)
		return &rej_orcpt;
	semi = strchr(v, ';');
	if (semi == NULL || semi == v)
		return &rej_orcpt;
	/* addr-type = atom */
	for (const char *t = v; t < semi; t++) {
		if (!is_atext((unsigned char)*t))
			return &rej_orcpt;
	}
	if (!smtp_xtext_ok(semi + 1, SMTP_ORCPT_MAX, out->utf8_values))
		return &rej_orcpt;
	out->rcpt.orcpt = v;
	return NULL;
}

/* RFC 4954 §5: AUTH=xtext, the submitter's mailbox or "<>". tern does
 * not pass it on, as §5 asks of a server that does not trust the client
 * to assert it ("MUST behave as if the AUTH=<> parameter was supplied"):
 * the value is checked as xtext and dropped. Where AUTH is not offered
 * the parameter is unknown. */
static const struct smtp_rej *
param_auth(const char *v, struct smtp_esmtp *out)
{
	if (!out->auth_ok)
		return &rej_param_unknown;
	if (v == NULL || !smtp_xtext_ok(v, SMTP_ORCPT_MAX, false))
		return &rej_auth;
	return NULL;
}

/* RFC 5321 §4.1.2: the MAIL parameters offered in the EHLO reply */
static const struct smtp_param mail_params[] = {
	{ "SIZE", param_size },           /* RFC 1870 */
	{ "BODY", param_body },           /* RFC 6152 */
	{ "SMTPUTF8", param_smtputf8 },   /* RFC 6531 */
	{ "RET", param_ret },             /* RFC 3461 */
	{ "ENVID", param_envid },         /* RFC 3461 */
	{ "AUTH", param_auth },           /* RFC 4954 */
	{ NULL, NULL },
};

static const struct smtp_param rcpt_params[] = {
	{ "NOTIFY", param_notify },       /* RFC 3461 */
	{ "ORCPT", param_orcpt },         /* RFC 3461 */
	{ NULL, NULL },
};

/*
 * esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2);
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
 * esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 too under RFC 6531 §3.3.
 */
static const struct smtp_rej *
parse_params(char *s, const struct smtp_param *table, struct smtp_esmtp *out)
{
	unsigned seen = 0;
	const char *seen_value[8];

	for (;;) {
		char *kw, *eq, *v = NULL;
		unsigned i;

		while (*s == ' ')
			s++;
		if (*s == '\0')
			return NULL;
		kw = s;
		while (*s != ' ' && *s != '\0')
			s++;
		if (*s == ' ')
			*s++ = '\0';
		eq = strchr(kw, '=');
		if (eq != NULL) {
			*eq = '\0';
			v = eq + 1;
			if (*v == '\0')
				return &rej_param_syntax;
			for (const unsigned char *c = (const unsigned char *)v;
			     *c != '\0';) {
				size_t u;
				if (*c >= 33 && *c <= 126 && *c != '=') {
					c++;
				} else if (out->utf8_values &&
					   (u = smtp_utf8_len(c)) > 0) {
					c += u;
				} else {
					return &rej_param_syntax;
				}
			}
		}
		if (!is_alpha((unsigned char)kw[0]) &&
		    !is_digit((unsigned char)kw[0]))
			return &rej_param_syntax;
		for (const char *c = kw; *c != '\0'; c++) {
			if (!is_alpha((unsigned char)*c) &&
			    !is_digit((unsigned char)*c) && *c != '-')
				return &rej_param_syntax;
		}
		for (i = 0; table[i].name != NULL; i++) {
			if (ascii_strcasecmp(kw, table[i].name) == 0)
				break;
		}
		if (table[i].name == NULL)
			return &rej_param_unknown;
		TN_ASSERT(i < sizeof(seen_value) / sizeof(seen_value[0]));
		if ((seen & (1u << i)) != 0) {
			/* the same keyword twice with the same value says
			 * nothing new: Python's smtplib sends "size=N SIZE=N"
			 * when its caller passes SIZE, and other servers take
			 * it; a different value is a contradiction */
			const char *o = seen_value[i];
			if ((o == NULL) != (v == NULL) ||
			    (v != NULL && ascii_strcasecmp(o, v) != 0))
				return &rej_param_dup;
			continue;
		}
		seen |= 1u << i;
		seen_value[i] = v;
		const struct smtp_rej *rej = table[i].parse(v, out);
		if (rej != NULL)
			return rej;
	}
}

const struct smtp_rej *
smtp_parse_mail_params(char *s, struct smtp_esmtp *out)
{
	return parse_params(s, mail_params, out);
}

const struct smtp_rej *
smtp_parse_rcpt_params(char *s, struct smtp_esmtp *out)
{
	return parse_params(s, rcpt_params, out);
}

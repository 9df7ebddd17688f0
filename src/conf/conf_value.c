/* SPDX-License-Identifier: MIT */
/*
 * conf values: numbers with size and duration suffixes, booleans, log
 * levels, and the syntax checks for domains, local names and IP
 * addresses. Pure: text in, values or messages out; no I/O.
 */
#include <string.h>

#include "conf/conf_int.h"

static const char *const log_level_names[] = {
	[CONF_LOG_DEBUG] = "debug",
	[CONF_LOG_INFO] = "info",
	[CONF_LOG_WARN] = "warn",
	[CONF_LOG_ERROR] = "error",
};

struct conf_quoted
conf_q(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	struct conf_quoted q;
	size_t o = 0, room = sizeof(q.s) - 6;	/* '"', "...", '"', NUL */

	q.s[o++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		size_t need = (c >= 0x20 && c < 0x7f && c != '"' &&
			       c != '\\') ? 1 : 4;
		if (o + need > room) {
			memcpy(q.s + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 1) {
			q.s[o++] = (char)c;
		} else {
			q.s[o++] = '\\';
			q.s[o++] = 'x';
			q.s[o++] = hex[c >> 4];
			q.s[o++] = hex[c & 15];
		}
	}
	q.s[o++] = '"';
	q.s[o] = '\0';
	return q;
}

void
conf_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * RFC 1035 §2.3.1 preferred name syntax (with RFC 1123 §2.1 leading
 * digits): labels of 1-63 letters, digits and hyphens, not starting or
 * ending with a hyphen, at most 253 octets in all. RFC 3696 §2: the top
 * label is not all-numeric, so a dotted quad is never a domain.
 */
bool
conf_is_domain(const char *s)
{
	size_t len = strlen(s), label = 0;
	bool alpha = false;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			if (c == '\0')
				break;
			label = 0;
			alpha = false;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return false;
		if (label == 0 && c == '-')
			return false;
		if (!is_digit(c))
			alpha = true;
		label++;
	}
	return alpha;
}

/*
 * A local name is a dot-atom (RFC 5321 §4.1.2) restricted to letters,
 * digits and ". _ + -", so that it is also a safe path component; at
 * most 64 octets (RFC 5321 §4.5.3.1.1).
 */
bool
conf_is_local_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.' && s[i + 1] == '.')
			return false;
		if (!is_alnum(c) && strchr("._+-", c) == NULL)
			return false;
	}
	return true;
}

/* dotted quad, no leading zeros (they would read as octal elsewhere) */
static bool
ipv4_n(const char *s, size_t n)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		size_t start = i;
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			start = ++i;
		}
		while (i < n && is_digit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
			return false;
	}
	return i == n;
}

bool
conf_is_ipv4(const char *s)
{
	return ipv4_n(s, strlen(s));
}

/* groups of 1-4 hex digits separated by ':'; the last may be a dotted
 * quad (RFC 4291 §2.2 form 3), counting as two groups */
static bool
ipv6_groups(const char *s, size_t n, bool v4_last, int *count_r)
{
	size_t i = 0;
	int count = 0;

	if (n == 0) {
		*count_r = 0;
		return true;
	}
	for (;;) {
		size_t start = i;
		while (i < n && s[i] != ':')
			i++;
		size_t g = i - start;
		if (v4_last && i == n && memchr(s + start, '.', g) != NULL) {
			if (!ipv4_n(s + start, g))
				return false;
			count += 2;
		} else {
			if (g == 0 || g > 4)
				return false;
			for (size_t j = start; j < i; j++)
				if (hex_value(s[j]) < 0)
					return false;
			count++;
		}
		if (i == n)
			break;
		i++;		/* the ':' */
		if (i == n)
			return false;
	}
	*count_r = count;
	return true;
}

bool
conf_is_ipv6(const char *s)
{
	size_t n = strlen(s);
	const char *dc = strstr(s, "::");
	int head, tail;

	if (n == 0 || n > 45)
		return false;
	if (dc == NULL)
		return ipv6_groups(s, n, true, &head) && head == 8;
	if (strstr(dc + 2, "::") != NULL || dc[2] == ':')
		return false;
	/* UNSAFE: dc points into s, so dc - s <= n - 2 */
	size_t hn = (size_t)(dc - s), tn = n - hn - 2;
	if (!ipv6_groups(s, hn, false, &head) ||
	    !ipv6_groups(dc + 2, tn, true, &tail))
		return false;
	return head + tail <= 7;
}

/* digits, then an optional one-character suffix; the number in *v_r and
 * the suffix (or '\0') in *suffix_r */
static int
split_number(const char *s, uint64_t *v_r, char *suffix_r)
{
	uint64_t v = 0;
	size_t i = 0;

	if (!is_digit(s[0]))
		return -1;
	for (; is_digit(s[i]); i++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*suffix_r = s[i];
	if (s[i] != '\0' && s[i + 1] != '\0')
		return -1;
	*v_r = v;
	return 0;
}

static int
parse_size(const char *s, uint64_t *v_r)
{
	uint64_t v;
	char suffix;
	unsigned shift;

	if (split_number(s, &v, &suffix) < 0)
		return -1;
	switch (suffix) {
	case '\0': shift = 0; break;
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	default: return -1;
	}
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return -1;
	*v_r = v << shift;
	return 0;
}

static int
parse_duration(const char *s, uint64_t *v_r)
{
	uint64_t v, mul;
	char suffix;

	if (split_number(s, &v, &suffix) < 0)
		return -1;
	switch (suffix) {
	case '\0': case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	default: return -1;
	}
	if (__builtin_mul_overflow(v, mul, v_r))
		return -1;
	return 0;
}

void
conf_format_size(uint64_t v, struct buf *out)
{
	static const char suffix[] = "KMG";
	int i = -1;

	while (i < 2 && v != 0 && (v & 1023) == 0) {
		v >>= 10;
		i++;
	}
	if (i < 0)
		buf_printf(out, "%llu", (unsigned long long)v);
	else
		buf_printf(out, "%llu%c", (unsigned long long)v, suffix[i]);
}

void
conf_format_duration(uint64_t v, struct buf *out)
{
	if (v != 0 && v % 86400 == 0)
		buf_printf(out, "%llud", (unsigned long long)(v / 86400));
	else if (v != 0 && v % 3600 == 0)
		buf_printf(out, "%lluh", (unsigned long long)(v / 3600));
	else if (v != 0 && v % 60 == 0)
		buf_printf(out, "%llum", (unsigned long long)(v / 60));
	else
		buf_printf(out, "%llus", (unsigned long long)v);
}

static void
format_number(const struct conf_key *k, uint64_t v, struct buf *out)
{
	if (k->type == CONF_T_SIZE)
		conf_format_size(v, out);
	else if (k->type == CONF_T_DURATION)
		conf_format_duration(v, out);
	else
		buf_printf(out, "%llu", (unsigned long long)v);
}

/* "is below the minimum 1K" with the limit in the key's own units */
static char *
range_message(const struct conf_key *k, const char *value, bool below)
{
	struct buf b;
	char *msg;

	buf_init(&b, 0);
	format_number(k, below ? k->min : k->max, &b);
	msg = xasprintf("%s is %s the %s %s", conf_q(value).s,
			below ? "below" : "above",
			below ? "minimum" : "maximum", buf_cstr(&b));
	buf_clear(&b);
	return msg;
}

static int
parse_bool(const char *s, bool *v_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (ascii_strcasecmp(s, yes[i]) == 0) {
			*v_r = true;
			return 0;
		}
		if (ascii_strcasecmp(s, no[i]) == 0) {
			*v_r = false;
			return 0;
		}
	}
	return -1;
}

static void *
field(const struct conf_key *k, struct tern_conf *conf)
{
	return (char *)conf + k->offset;
}

static const void *
cfield(const struct conf_key *k, const struct tern_conf *conf)
{
	return (const char *)conf + k->offset;
}

static void
store_number(const struct conf_key *k, struct tern_conf *conf, uint64_t v)
{
	switch (k->type) {
	case CONF_T_SIZE:
		*(uint64_t *)field(k, conf) = v;
		break;
	case CONF_T_UINT:
	case CONF_T_DURATION:
		/* UNSAFE: the table's max for these fits in unsigned */
		*(unsigned *)field(k, conf) = (unsigned)v;
		break;
	case CONF_T_BOOL:
		*(bool *)field(k, conf) = v != 0;
		break;
	case CONF_T_LOG_LEVEL:
		*(enum conf_log_level *)field(k, conf) =
			(enum conf_log_level)v;
		break;
	case CONF_T_STRING:
	case CONF_T_LIST:
		TN_ASSERT(!"not a number");
	}
}

int
conf_key_set(const struct conf_key *k, struct tern_conf *conf, char *value,
	     char **msg_r)
{
	uint64_t v = 0;
	int r = -1;

	switch (k->type) {
	case CONF_T_STRING:
		if (k->check != NULL && k->check(value, msg_r) < 0)
			return -1;
		free(*(char **)field(k, conf));
		*(char **)field(k, conf) = xstrdup(value);
		return 0;
	case CONF_T_LOG_LEVEL:
		for (size_t i = 0; i < sizeof(log_level_names) /
			     sizeof(log_level_names[0]); i++) {
			if (ascii_strcasecmp(value, log_level_names[i]) == 0) {
				v = i;
				r = 0;
			}
		}
		if (r < 0) {
			*msg_r = xasprintf("%s is not a level (use debug, "
					   "info, warn or error)",
					   conf_q(value).s);
			return -1;
		}
		break;
	case CONF_T_BOOL: {
		bool b;
		if (parse_bool(value, &b) < 0) {
			*msg_r = xasprintf("%s is not yes or no",
					   conf_q(value).s);
			return -1;
		}
		v = b;
		break;
	}
	case CONF_T_UINT:
	case CONF_T_SIZE:
	case CONF_T_DURATION:
		if (k->type == CONF_T_SIZE)
			r = parse_size(value, &v);
		else if (k->type == CONF_T_DURATION)
			r = parse_duration(value, &v);
		else
			r = parse_u64(value, &v);
		if (r < 0) {
			*msg_r = xasprintf("%s is not %s", conf_q(value).s,
				k->type == CONF_T_SIZE ?
				"a size (a number with an optional K, M or G "
				"suffix)" :
				k->type == CONF_T_DURATION ?
				"a duration (seconds, or a number with an s, m, "
				"h or d suffix)" :
				"a number");
			return -1;
		}
		if (v < k->min || v > k->max) {
			*msg_r = range_message(k, value, v < k->min);
			return -1;
		}
		break;
	case CONF_T_LIST:
		TN_ASSERT(!"lists are added, not set");
	}
	store_number(k, conf, v);
	return 0;
}

void
conf_key_set_default(const struct conf_key *k, struct tern_conf *conf)
{
	if (k->type == CONF_T_STRING) {
		free(*(char **)field(k, conf));
		*(char **)field(k, conf) = xstrdup(k->def);
	} else {
		store_number(k, conf, k->defnum);
	}
}

void
conf_key_format(const struct conf_key *k, const struct tern_conf *conf,
		struct buf *out)
{
	const void *p = cfield(k, conf);

	switch (k->type) {
	case CONF_T_STRING:
		buf_append_str(out, *(char *const *)p);
		break;
	case CONF_T_LOG_LEVEL: {
		unsigned lvl = (unsigned)*(const enum conf_log_level *)p;
		TN_ASSERT(lvl < sizeof(log_level_names) /
			  sizeof(log_level_names[0]));
		buf_append_str(out, log_level_names[lvl]);
		break;
	}
	case CONF_T_BOOL:
		buf_append_str(out, *(const bool *)p ? "yes" : "no");
		break;
	case CONF_T_UINT:
	case CONF_T_DURATION:
		format_number(k, *(const unsigned *)p, out);
		break;
	case CONF_T_SIZE:
		format_number(k, *(const uint64_t *)p, out);
		break;
	case CONF_T_LIST:
		TN_ASSERT(!"lists are dumped by key->dump");
	}
}

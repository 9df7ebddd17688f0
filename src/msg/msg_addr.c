/* SPDX-License-Identifier: MIT */
/*
 * msg_addr: the addresses of an RFC 5322 §3.4 address-list, the body of
 * a To:, Cc: or Bcc: field, as `sendmail -t` needs them: display names,
 * groups, comments, quoted strings, folded lines and the obsolete forms
 * of §4.4 (routes, empty list elements, CFWS around dots). Pure code: no
 * I/O.
 *
 * Each address comes out in the form an SMTP path takes (RFC 5321
 * §4.1.2): the local part as a dot-string when it is one, otherwise as a
 * quoted-string; the domain as written, without comments or spaces.
 */
#include <stdlib.h>
#include <string.h>

#include "msg/msg.h"

/* comments nest (RFC 5322 §3.2.2); deeper than this is not a header a
 * person wrote */
#define MSG_ADDR_COMMENT_DEPTH_MAX 64

struct parser {
	const uint8_t *p;
	size_t n, i;
	const char *error;
};

/* RFC 5322 §3.2.3 atext, plus any octet >= 128 (RFC 6532 §3.2 UTF-8) */
static bool
is_atext(uint8_t c)
{
	if (c >= 128)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool
is_wsp(uint8_t c)
{
	/* CR and LF: the line breaks of folding (§3.2.2 FWS) */
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
fail(struct parser *ps, const char *error)
{
	if (ps->error == NULL)
		ps->error = error;
	return -1;
}

/* skips CFWS; -1 on an unterminated comment */
static int
cfws(struct parser *ps)
{
	unsigned depth = 0;

	while (ps->i < ps->n) {
		uint8_t c = ps->p[ps->i];

		if (depth == 0 && is_wsp(c)) {
			ps->i++;
		} else if (c == '(') {
			if (++depth > MSG_ADDR_COMMENT_DEPTH_MAX)
				return fail(ps, "comments nested too deep");
			ps->i++;
		} else if (depth == 0) {
			return 0;
		} else if (c == ')') {
			depth--;
			ps->i++;
		} else if (c == '\\') {
			/* §3.2.1 quoted-pair */
			ps->i += ps->i + 1 < ps->n ? 2 : 1;
		} else {
			ps->i++;
		}
	}
	return depth == 0 ? 0 : fail(ps, "unterminated comment");
}

/* the next octet after CFWS, or -1 at the end (or on an error) */
static int
peek(struct parser *ps)
{
	if (cfws(ps) < 0 || ps->i >= ps->n)
		return -1;
	return ps->p[ps->i];
}

/*
 * A word (§3.2.5: atom or quoted-string) at the cursor, its content
 * unescaped into out. 1 read, 0 none here, -1 error.
 */
static int
word(struct parser *ps, struct buf *out)
{
	size_t start = ps->i;

	if (ps->i >= ps->n)
		return 0;
	if (ps->p[ps->i] == '"') {
		for (ps->i++; ps->i < ps->n; ps->i++) {
			uint8_t c = ps->p[ps->i];

			if (c == '"') {
				ps->i++;
				return 1;
			}
			if (c == '\\') {
				if (++ps->i >= ps->n)
					break;
				c = ps->p[ps->i];
			}
			/* §3.2.2: unfolding drops the CRLF (and §4.1 obs-qp
			 * may quote one: no line break ever reaches a path) */
			if (c == '\r' || c == '\n')
				continue;
			if (c == '\0')
				return fail(ps, "NUL in a quoted string");
			(void)buf_append(out, &c, 1);
		}
		return fail(ps, "unterminated quoted string");
	}
	while (ps->i < ps->n && is_atext(ps->p[ps->i]))
		ps->i++;
	(void)buf_append(out, ps->p + start, ps->i - start);
	return ps->i > start ? 1 : 0;
}

/*
 * Words and dots up to the next other special (§3.4 local-part, or an
 * obs-phrase display name). The content goes to out, words joined by
 * their dots; *dot_string_r says whether it has the shape
 * word *("." word).
 */
static int
words(struct parser *ps, struct buf *out, bool *dot_string_r,
      size_t *nwords_r)
{
	bool want_word = true, shape = true;
	size_t nwords = 0;

	buf_reset(out);
	for (;;) {
		int c = peek(ps), r;

		if (ps->error != NULL)
			return -1;
		if (c == '.') {
			if (want_word)
				shape = false;
			want_word = true;
			(void)buf_append(out, ".", 1);
			ps->i++;
			continue;
		}
		r = word(ps, out);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (!want_word)
			shape = false; /* two words with no dot: a phrase */
		want_word = false;
		nwords++;
	}
	*dot_string_r = shape && nwords > 0 && !want_word;
	*nwords_r = nwords;
	return 0;
}

/* true when s is an RFC 5321 §4.1.2 Dot-string: atoms joined by dots */
static bool
dot_string(const uint8_t *s, size_t n)
{
	bool want_atext = true;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (want_atext)
				return false;
			want_atext = true;
		} else if (is_atext(s[i])) {
			want_atext = false;
		} else {
			return false;
		}
	}
	return !want_atext;
}

/* §3.4.1 domain: dot-atom or domain-literal (or §4.4 obs-domain), with
 * its CFWS dropped, appended to out */
static int
domain(struct parser *ps, struct buf *out)
{
	int c = peek(ps);
	size_t start;

	if (c == '[') {
		(void)buf_append(out, "[", 1);
		for (ps->i++; ps->i < ps->n; ps->i++) {
			uint8_t d = ps->p[ps->i];

			/* dtext, with FWS dropped (§3.4.1) */
			if (is_wsp(d))
				continue;
			if (d == '[' || d == '\\' || d == '\0')
				return fail(ps, "bad domain literal");
			(void)buf_append(out, &d, 1);
			if (d == ']') {
				ps->i++;
				return 0;
			}
		}
		return fail(ps, "unterminated domain literal");
	}
	for (;;) {
		start = ps->i;
		while (ps->i < ps->n && is_atext(ps->p[ps->i]))
			ps->i++;
		if (ps->i == start)
			return fail(ps, "domain expected");
		(void)buf_append(out, ps->p + start, ps->i - start);
		if (peek(ps) != '.')
			return ps->error != NULL ? -1 : 0;
		ps->i++;
		(void)buf_append(out, ".", 1);
		if (peek(ps) < 0)
			return fail(ps, "domain expected");
	}
}

/* the local part in the SMTP form: as is when a Dot-string, else quoted
 * (RFC 5321 §4.1.2 Quoted-string, with "\" and DQUOTE escaped) */
static void
local_part(struct buf *addr, const struct buf *lp)
{
	if (dot_string(lp->p, lp->len)) {
		(void)buf_append(addr, lp->p, lp->len);
		return;
	}
	(void)buf_append(addr, "\"", 1);
	for (size_t i = 0; i < lp->len; i++) {
		if (lp->p[i] == '"' || lp->p[i] == '\\')
			(void)buf_append(addr, "\\", 1);
		(void)buf_append(addr, lp->p + i, 1);
	}
	(void)buf_append(addr, "\"", 1);
}

static void
push(struct msg_addr_list *l, const struct buf *addr)
{
	l->addrs = xreallocarray(l->addrs, l->n + 1, sizeof(*l->addrs));
	l->addrs[l->n++] = xstrndup((const char *)addr->p, addr->len);
}

/*
 * The rest of an addr-spec after its local part (in lp, shape checked
 * by the caller): "@" domain, or nothing for a bare local part.
 */
static int
addr_spec_rest(struct parser *ps, const struct buf *lp, bool shape,
	       struct msg_addr_list *l)
{
	struct buf addr;

	if (!shape)
		return fail(ps, "bad local part");
	buf_init(&addr, 0);
	local_part(&addr, lp);
	if (peek(ps) == '@') {
		ps->i++;
		(void)buf_append(&addr, "@", 1);
		if (domain(ps, &addr) < 0) {
			buf_clear(&addr);
			return -1;
		}
	}
	if (ps->error == NULL)
		push(l, &addr);
	buf_clear(&addr);
	return ps->error != NULL ? -1 : 0;
}

/* §3.4 angle-addr after its "<", with a §4.4 obs-route skipped */
static int
angle_addr(struct parser *ps, struct buf *lp, struct msg_addr_list *l)
{
	bool shape;
	size_t nwords;
	struct buf skip;

	if (peek(ps) == '@') {
		/* obs-route: "@a,@b:" names relays we do not use */
		buf_init(&skip, 0);
		for (;;) {
			int c = peek(ps);
			if (c == '@') {
				ps->i++;
				buf_reset(&skip);
				if (domain(ps, &skip) < 0)
					break;
			} else if (c == ',') {
				ps->i++;
			} else {
				break;
			}
		}
		buf_clear(&skip);
		if (ps->error != NULL)
			return -1;
		if (peek(ps) != ':')
			return fail(ps, "bad route in an angle address");
		ps->i++;
	}
	if (words(ps, lp, &shape, &nwords) < 0)
		return -1;
	if (nwords == 0)
		return fail(ps, peek(ps) == '>' ? "empty angle address" :
			    "address expected after '<'");
	if (addr_spec_rest(ps, lp, shape, l) < 0)
		return -1;
	if (peek(ps) != '>')
		return fail(ps, "'>' expected");
	ps->i++;
	return 0;
}

/*
 * One mailbox (§3.4: name-addr or addr-spec), or a group when in_group
 * is false. 0 parsed (or an empty element), -1 error. The cursor stops
 * before the "," or ";" that follows.
 */
static int
address(struct parser *ps, struct buf *lp, bool in_group,
	struct msg_addr_list *l)
{
	bool shape;
	size_t nwords;
	int c;

	if (words(ps, lp, &shape, &nwords) < 0)
		return -1;
	c = peek(ps);
	if (ps->error != NULL)
		return -1;
	if (c == '<') {
		/* the words were a display name (any phrase, §4.1 obs-phrase) */
		ps->i++;
		return angle_addr(ps, lp, l);
	}
	if (c == ':') {
		if (in_group)
			return fail(ps, "group inside a group");
		if (nwords == 0)
			return fail(ps, "group without a name");
		ps->i++;
		for (;;) {
			if (address(ps, lp, true, l) < 0)
				return -1;
			c = peek(ps);
			if (c == ',') {
				ps->i++;
				continue;
			}
			if (c == ';') {
				ps->i++;
				return 0;
			}
			/* a group left open at the end of the field: taken as
			 * closed, as a lenient reader does */
			if (c < 0 && ps->error == NULL)
				return 0;
			return fail(ps, "',' or ';' expected in a group");
		}
	}
	if (nwords == 0 && lp->len > 0)
		return fail(ps, "stray '.'");
	if (nwords == 0) {
		/* §4.4 obs-addr-list: empty elements between commas */
		if (c == '@')
			return fail(ps, "local part expected before '@'");
		return 0;
	}
	if (addr_spec_rest(ps, lp, shape, l) < 0)
		return -1;
	/* "a@b <a@b>": the address repeated as a display name, which some
	 * scripts write; the angle address is the one that counts */
	if (peek(ps) == '<') {
		free(l->addrs[--l->n]);
		ps->i++;
		return angle_addr(ps, lp, l);
	}
	return ps->error != NULL ? -1 : 0;
}

int
msg_addr_list_parse(const uint8_t *p, size_t n, struct msg_addr_list *l,
		    const char **error_r)
{
	struct parser ps = { .p = p, .n = n };
	size_t had = l->n;
	struct buf lp;
	int r = 0;

	buf_init(&lp, 0);
	for (;;) {
		int c;

		if (address(&ps, &lp, false, l) < 0) {
			r = -1;
			break;
		}
		c = peek(&ps);
		if (c == ',') {
			ps.i++;
			continue;
		}
		if (c < 0 && ps.error == NULL)
			break;
		(void)fail(&ps, c == ';' ? "';' outside a group" :
			   c == '>' ? "'>' without '<'" :
			   "',' expected between addresses");
		r = -1;
		break;
	}
	buf_clear(&lp);
	if (r < 0) {
		while (l->n > had)
			free(l->addrs[--l->n]);
		if (l->n == 0) {
			free(l->addrs);
			l->addrs = NULL;
		}
		*error_r = ps.error;
	}
	return r;
}

void
msg_addr_list_clear(struct msg_addr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->addrs[i]);
	free(l->addrs);
	l->addrs = NULL;
	l->n = 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * account format: the parser and the formatter of the accounts file
 * (account.h has the format). Pure: text in, a table out, and back; a
 * parse error names the file and line and never echoes a secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account_int.h"

#define SCRAM_TAG "SCRAM-SHA-256:"
#define CRAM_TAG "CRAM-MD5:"

static const char hex_chars[] = "0123456789abcdef";

/* ---- base64 and hex --------------------------------------------------- */


/* RFC 4648 §4 with padding, canonical (zero pad bits). 0, -1 for bad
 * base64, -2 for more than max octets */
static int
b64_field(const char *s, size_t n, uint8_t *out, size_t max, size_t *len_r)
{
	long r;

	if (n == 0)
		return -1;
	r = b64_decode(s, n, out, max);
	if (r < 0)
		return (int)r;
	*len_r = (size_t)r;
	return 0;
}



/* ---- parser ----------------------------------------------------------- */

struct field {
	const char *p;
	size_t n;
};

static bool
field_is(const struct field *f, const char *s)
{
	return f->n == strlen(s) && memcmp(f->p, s, f->n) == 0;
}

/* crypt(3) output characters: ./0-9A-Za-z, '$' between parts, and '='
 * ',' in parameters such as sha512-crypt's "rounds=N" */
static bool
hash_chars_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!account_ascii_alpha(c) && !account_ascii_digit(c) &&
		    (c == '\0' || strchr("./$=,", c) == NULL))
			return false;
	}
	return true;
}

bool
account_hash_scheme_ok(const char *hash)
{
	return strncmp(hash, "$y$", 3) == 0 || strncmp(hash, "$2b$", 4) == 0 ||
	       strncmp(hash, "$2y$", 4) == 0 || strncmp(hash, "$6$", 3) == 0;
}

static const char *
parse_hash(const struct field *f, struct account *a)
{
	const char *p = f->p;
	size_t n = f->n;

	if (n > ACCOUNT_HASH_MAX)
		return "password hash too long";
	if (p[0] == '!' || p[0] == '*') {
		/* locked: whatever follows is kept, and never verifies */
		p++;
		n--;
	} else {
		char head[5] = { 0 };

		memcpy(head, p, n < 4 ? n : 4);
		if (!account_hash_scheme_ok(head))
			return "unsupported password hash (want $y$, $2b$, "
			       "$2y$ or $6$, or a leading ! to lock)";
	}
	if (!hash_chars_ok(p, n))
		return "bad character in the password hash";
	a->hash = xstrndup(f->p, f->n);
	return NULL;
}

/* splits f at ':' into at most max parts; returns the count */
static size_t
split_colon(const struct field *f, struct field *parts, size_t max)
{
	size_t k = 0;
	const char *p = f->p, *end = f->p + f->n;

	while (k < max) {
		const char *c = memchr(p, ':', (size_t)(end - p));

		parts[k].p = p;
		parts[k].n = (size_t)((c != NULL ? c : end) - p);
		k++;
		if (c == NULL)
			return k;
		p = c + 1;
	}
	return max + 1;
}

static const char *
parse_scram(const struct field *f, struct sasl_secrets *sec)
{
	static const size_t tag = sizeof(SCRAM_TAG) - 1;
	struct field rest, part[4];
	char num[16];
	uint64_t iter;
	size_t len = 0;
	int r;

	if (field_is(f, "-"))
		return NULL;
	if (f->n < tag || memcmp(f->p, SCRAM_TAG, tag) != 0)
		return "the third field is not SCRAM-SHA-256:... or -";
	rest.p = f->p + tag;
	rest.n = f->n - tag;
	if (split_colon(&rest, part, 4) != 4)
		return "SCRAM-SHA-256 wants "
		       "iterations:salt:StoredKey:ServerKey";
	if (part[0].n == 0 || part[0].n >= sizeof(num))
		return "bad SCRAM iteration count";
	memcpy(num, part[0].p, part[0].n);
	num[part[0].n] = '\0';
	if (num[0] == '0' || parse_u64(num, &iter) < 0)
		return "bad SCRAM iteration count";
	if (iter < SASL_SCRAM_ITER_MIN || iter > SASL_SCRAM_ITER_MAX)
		return "SCRAM iteration count out of range";
	sec->scram_iter = (unsigned)iter;
	r = b64_field(part[1].p, part[1].n, sec->scram_salt,
		       sizeof(sec->scram_salt), &len);
	if (r == -2)
		return "SCRAM salt too long (more than 64 octets)";
	if (r < 0)
		return "bad base64 in the SCRAM salt";
	sec->scram_salt_len = len;
	if (b64_field(part[2].p, part[2].n, sec->scram_stored_key,
		       SASL_SCRAM_KEY_LEN, &len) < 0 ||
	    len != SASL_SCRAM_KEY_LEN)
		return "bad SCRAM StoredKey (want base64 of 32 octets)";
	if (b64_field(part[3].p, part[3].n, sec->scram_server_key,
		       SASL_SCRAM_KEY_LEN, &len) < 0 ||
	    len != SASL_SCRAM_KEY_LEN)
		return "bad SCRAM ServerKey (want base64 of 32 octets)";
	sec->has_scram = true;
	return NULL;
}

static const char *
parse_cram(const struct field *f, struct sasl_secrets *sec)
{
	static const size_t tag = sizeof(CRAM_TAG) - 1;

	if (field_is(f, "-"))
		return NULL;
	if (f->n < tag || memcmp(f->p, CRAM_TAG, tag) != 0)
		return "the fourth field is not CRAM-MD5:... or -";
	if (f->n - tag != 2 * SASL_CRAM_CTX_LEN)
		return "bad CRAM-MD5 secret (want 64 hex digits)";
	for (size_t i = 0; i < SASL_CRAM_CTX_LEN; i++) {
		int hi = hex_value(f->p[tag + 2 * i]);
		int lo = hex_value(f->p[tag + 2 * i + 1]);

		if (hi < 0 || lo < 0)
			return "bad CRAM-MD5 secret (want 64 hex digits)";
		sec->cram_ctx[i] = (uint8_t)(hi << 4 | lo);
	}
	sec->has_cram = true;
	return NULL;
}

/* one account line, split into fields; NULL or the error */
static const char *
parse_account(const struct field *fld, size_t nf, struct account **a_r)
{
	struct account *a;
	const char *err;

	if (nf != 4 && nf != 5)
		return "want 4 or 5 fields: address hash scram cram [maildir]";
	if (!account_address_valid_n(fld[0].p, fld[0].n))
		return "bad address (want local-part@domain)";
	a = xcalloc(1, sizeof(*a));
	a->address = xstrndup(fld[0].p, fld[0].n);
	account_lower(a->address);
	if ((err = parse_hash(&fld[1], a)) != NULL ||
	    (err = parse_scram(&fld[2], &a->secrets)) != NULL ||
	    (err = parse_cram(&fld[3], &a->secrets)) != NULL)
		goto fail;
	if (nf == 5) {
		if (!account_maildir_valid(fld[4].p, fld[4].n)) {
			err = fld[4].n > ACCOUNT_MAILDIR_MAX ?
				      "maildir too long" :
				      "the maildir must be an absolute path";
			goto fail;
		}
		a->maildir = xstrndup(fld[4].p, fld[4].n);
	}
	*a_r = a;
	return NULL;
fail:
	account_free(a);
	return err;
}

/* splits the line at single spaces or tabs; NULL or the error */
static const char *
split_fields(const char *p, size_t n, struct field *fld, size_t max,
	     size_t *nf_r)
{
	size_t nf = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != ' ' && p[i] != '\t')
			continue;
		if (i == start)
			return "empty field (fields are separated by one "
			       "space or tab)";
		if (nf == max)
			return "want 4 or 5 fields: address hash scram cram "
			       "[maildir]";
		fld[nf].p = p + start;
		fld[nf].n = i - start;
		nf++;
		start = i + 1;
	}
	*nf_r = nf;
	return NULL;
}

static int
cmp_account(const void *x, const void *y)
{
	const struct account *a = *(struct account *const *)x;
	const struct account *b = *(struct account *const *)y;
	int c = strcmp(a->address, b->address);

	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

int
account_table_parse(const char *text, size_t len, const char *filename,
		    struct account_table **t_r, char **error_r)
{
	struct account_table *t = account_table_new();
	const struct account *dup = NULL, *first = NULL;
	unsigned line = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - p) : len - pos;
		struct field fld[6];
		struct account *a = NULL;
		const char *err;
		size_t nf, i;

		pos += n + (nl != NULL);
		line++;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > ACCOUNT_LINE_MAX) {
			*error_r = xasprintf("%s:%u: line longer than %u "
					     "octets", filename, line,
					     ACCOUNT_LINE_MAX);
			goto fail;
		}
		if (memchr(p, '\0', n) != NULL) {
			*error_r = xasprintf("%s:%u: NUL octet", filename,
					     line);
			goto fail;
		}
		for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		if (i == n || p[i] == '#')
			continue;
		err = split_fields(p, n, fld, sizeof(fld) / sizeof(fld[0]),
				   &nf);
		if (err == NULL)
			err = parse_account(fld, nf, &a);
		if (err != NULL) {
			*error_r = xasprintf("%s:%u: %s", filename, line, err);
			goto fail;
		}
		a->line = line;
		account_table_insert(t, t->n, a);
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), cmp_account);
	/* report the duplicate that comes first in the file */
	for (size_t i = 1; i < t->n; i++) {
		if (strcmp(t->v[i - 1]->address, t->v[i]->address) == 0 &&
		    (dup == NULL || t->v[i]->line < dup->line)) {
			dup = t->v[i];
			first = t->v[i - 1];
		}
	}
	if (dup != NULL) {
		*error_r = xasprintf("%s:%u: %s given twice (also on line %u)",
				     filename, dup->line, dup->address,
				     first->line);
		goto fail;
	}
	*t_r = t;
	return 0;
fail:
	account_table_free(&t);
	return -1;
}

/* ---- formatter -------------------------------------------------------- */

void
account_table_format(const struct account_table *t, struct buf *out)
{
	(void)buf_append_str(out,
		"# tern accounts, managed by `tern user` (add, passwd, del, "
		"list).\n"
		"# One line per account: address hash scram cram [maildir]; "
		"password hashes,\n"
		"# never passwords. Keep this file mode 0600.\n");
	for (size_t i = 0; i < t->n; i++) {
		const struct account *a = t->v[i];
		const struct sasl_secrets *s = &a->secrets;

		(void)buf_printf(out, "%s %s ", a->address, a->hash);
		if (s->has_scram) {
			(void)buf_printf(out, SCRAM_TAG "%u:", s->scram_iter);
			b64_append(out, s->scram_salt, s->scram_salt_len);
			(void)buf_append(out, ":", 1);
			b64_append(out, s->scram_stored_key,
				   SASL_SCRAM_KEY_LEN);
			(void)buf_append(out, ":", 1);
			b64_append(out, s->scram_server_key,
				   SASL_SCRAM_KEY_LEN);
		} else {
			(void)buf_append(out, "-", 1);
		}
		if (s->has_cram) {
			char hex[2 * SASL_CRAM_CTX_LEN];

			for (size_t k = 0; k < SASL_CRAM_CTX_LEN; k++) {
				hex[2 * k] = hex_chars[s->cram_ctx[k] >> 4];
				hex[2 * k + 1] = hex_chars[s->cram_ctx[k] & 15];
			}
			(void)buf_append_str(out, " " CRAM_TAG);
			(void)buf_append(out, hex, sizeof(hex));
		} else {
			(void)buf_append(out, " -", 2);
		}
		if (a->maildir != NULL)
			(void)buf_printf(out, " %s", a->maildir);
		(void)buf_append(out, "\n", 1);
	}
}

/* SPDX-License-Identifier: MIT */
/*
 * account table: the accounts in an array sorted by address, for binary
 * search, and the changes `tern user` makes. No file or socket here:
 * account_file.c reads and writes, account_crypt.c hashes and draws the
 * random octets.
 */
#include <stdlib.h>
#include <string.h>

#include "account/account_int.h"

struct account_table *
account_table_new(void)
{
	return xcalloc(1, sizeof(struct account_table));
}

void
account_free(struct account *a)
{
	if (a == NULL)
		return;
	free(a->address);
	free(a->hash);
	free(a->maildir);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

void
account_table_free(struct account_table **tp)
{
	struct account_table *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < t->n; i++)
		account_free(t->v[i]);
	free(t->v);
	free(t);
}

size_t
account_table_count(const struct account_table *t)
{
	return t->n;
}

const struct account *
account_table_at(const struct account_table *t, size_t i)
{
	TN_ASSERT(i < t->n);
	return t->v[i];
}

/* the index of key (normalised) or where it would go; *found_r */
static size_t
search(const struct account_table *t, const char *key, bool *found_r)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->v[mid]->address, key);

		if (c == 0) {
			*found_r = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found_r = false;
	return lo;
}

const struct account *
account_find(const struct account_table *t, const char *address)
{
	char key[ACCOUNT_ADDRESS_MAX + 1];
	bool found;
	size_t i;

	if (!account_normalize_into(address, key))
		return NULL;
	i = search(t, key, &found);
	return found ? t->v[i] : NULL;
}

void
account_table_insert(struct account_table *t, size_t i, struct account *a)
{
	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof(*t->v));
	t->v[i] = a;
	t->n++;
}

int
account_remove(struct account_table *t, const char *address)
{
	char key[ACCOUNT_ADDRESS_MAX + 1];
	bool found;
	size_t i;

	if (!account_normalize_into(address, key))
		return 0;
	i = search(t, key, &found);
	if (!found)
		return 0;
	account_free(t->v[i]);
	memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof(*t->v));
	t->n--;
	return 1;
}

bool
account_maildir_valid(const char *p, size_t n)
{
	if (n == 0 || n > ACCOUNT_MAILDIR_MAX || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int
account_set_maildir(struct account_table *t, const char *address,
		    const char *maildir, const char **error_r)
{
	char key[ACCOUNT_ADDRESS_MAX + 1];
	struct account *a;
	bool found;
	size_t i;

	if (!account_normalize_into(address, key) ||
	    (i = search(t, key, &found), !found)) {
		*error_r = "no such account";
		return -1;
	}
	if (maildir != NULL &&
	    !account_maildir_valid(maildir, strlen(maildir))) {
		*error_r = "the maildir must be an absolute path without "
			   "white space or control characters";
		return -1;
	}
	a = t->v[i];
	free(a->maildir);
	a->maildir = maildir != NULL ? xstrdup(maildir) : NULL;
	a->line = 0;
	return 0;
}

/* takes the hash (heap) and the secrets; the account is added or its
 * password replaced */
static void
put_password(struct account_table *t, const char *key, char *hash,
	     const struct sasl_secrets *sec)
{
	struct account *a;
	bool found;
	size_t i = search(t, key, &found);

	if (found) {
		a = t->v[i];
		free(a->hash);
	} else {
		a = xcalloc(1, sizeof(*a));
		a->address = xstrdup(key);
		account_table_insert(t, i, a);
	}
	a->hash = hash;
	a->secrets = *sec;
	a->line = 0;
}

int
account_set_password(struct account_table *t, const char *address,
		     const char *password, const char **error_r)
{
	char key[ACCOUNT_ADDRESS_MAX + 1];
	uint8_t salt[ACCOUNT_SCRAM_SALT_LEN];
	struct sasl_secrets sec;
	size_t plen = strnlen(password, ACCOUNT_PASSWORD_MAX + 1);
	char *hash = NULL;

	if (!account_address_valid(address)) {
		*error_r = "not a valid address (local-part@domain)";
		return -1;
	}
	if (plen == 0) {
		*error_r = "the password is empty";
		return -1;
	}
	if (plen > ACCOUNT_PASSWORD_MAX) {
		*error_r = "the password is too long";
		return -1;
	}
	(void)account_normalize_into(address, key);
	if (account_random(salt, sizeof(salt)) < 0) {
		*error_r = "no random octets for the SCRAM salt";
		return -1;
	}
	if (sasl_secrets_derive(password, salt, sizeof(salt),
				SASL_SCRAM_ITER_DEFAULT, &sec, error_r) < 0)
		return -1;
	if (account_hash_password(password, NULL, &hash, error_r) < 0) {
		explicit_bzero(&sec, sizeof(sec));
		return -1;
	}
	put_password(t, key, hash, &sec);
	explicit_bzero(&sec, sizeof(sec));
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for account_table_parse(). Any input either fails
 * with a "fuzz.accounts:LINE: message" error or parses; a parsed table is
 * sorted with no address twice, every address is valid, stored
 * lower-cased and found again in upper case; it formats to text that
 * parses again and formats the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.accounts"

static char *
format(const struct account_table *t, size_t *len_r)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	account_table_format(t, &b);
	*len_r = b.len;
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

static void
check_table(const struct account_table *t)
{
	size_t n = account_table_count(t);

	for (size_t i = 0; i < n; i++) {
		const struct account *a = account_table_at(t, i);
		char *upper = xstrdup(a->address);

		TN_ASSERT(account_address_valid(a->address));
		TN_ASSERT(a->hash != NULL && a->hash[0] != '\0');
		TN_ASSERT(a->line > 0);
		TN_ASSERT(a->maildir == NULL || a->maildir[0] == '/');
		TN_ASSERT(!a->secrets.has_scram ||
			  (a->secrets.scram_salt_len > 0 &&
			   a->secrets.scram_salt_len <= SASL_SCRAM_SALT_MAX &&
			   a->secrets.scram_iter >= SASL_SCRAM_ITER_MIN &&
			   a->secrets.scram_iter <= SASL_SCRAM_ITER_MAX));
		if (i > 0)
			TN_ASSERT(strcmp(account_table_at(t, i - 1)->address,
					 a->address) < 0);
		for (char *p = upper; *p != '\0'; p++) {
			TN_ASSERT(!(*p >= 'A' && *p <= 'Z'));
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		}
		TN_ASSERT(account_find(t, upper) == a);
		free(upper);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct account_table *t = NULL, *again = NULL;
	char *err = NULL, *f1, *f2;
	size_t n1, n2;

	if (size > 256 * 1024)
		return 0;
	if (account_table_parse((const char *)data, size, NAME, &t,
				&err) < 0) {
		const char *p = err + sizeof(NAME);

		TN_ASSERT(t == NULL);
		TN_ASSERT(strncmp(err, NAME ":", sizeof(NAME)) == 0);
		TN_ASSERT(*p >= '1' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		TN_ASSERT(p[0] == ':' && p[1] == ' ' && p[2] != '\0');
		free(err);
		return 0;
	}
	check_table(t);
	f1 = format(t, &n1);
	if (account_table_parse(f1, n1, NAME, &again, &err) < 0)
		abort();
	TN_ASSERT(account_table_count(again) == account_table_count(t));
	check_table(again);
	f2 = format(again, &n2);
	TN_ASSERT(n1 == n2 && memcmp(f1, f2, n1) == 0);
	free(f1);
	free(f2);
	account_table_free(&again);
	account_table_free(&t);
	return 0;
}

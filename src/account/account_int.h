/* SPDX-License-Identifier: MIT */
/* account: private parts shared by the account_*.c files. */
#ifndef TERN_ACCOUNT_INT_H
#define TERN_ACCOUNT_INT_H

#include "account/account.h"

struct account_table {
	struct account **v;   /* sorted by address (strcmp) */
	size_t n, cap;
};

static inline bool
account_ascii_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool
account_ascii_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline unsigned char
account_ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* account_address_valid() of n octets */
bool account_address_valid_n(const char *a, size_t n);
/* lower-cases the ASCII letters of s in place */
void account_lower(char *s);
/* the stored form of address into out (ACCOUNT_ADDRESS_MAX + 1 octets);
 * false when it is too long to be an account */
bool account_normalize_into(const char *address, char *out);
/* absolute, at most ACCOUNT_MAILDIR_MAX octets, no blank or control */
bool account_maildir_valid(const char *p, size_t n);
/* frees an account that is in no table, wiping its secrets */
void account_free(struct account *a);
/* puts a at index i (the caller keeps the order) */
void account_table_insert(struct account_table *t, size_t i,
			  struct account *a);

/* the hash schemes tern accepts: $y$, $2b$, $2y$, $6$ */
bool account_hash_scheme_ok(const char *hash);
/* n octets from OpenSSL's CSPRNG: 0, or -1 */
int account_random(uint8_t *p, size_t n);

#endif

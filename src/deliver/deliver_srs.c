/* SPDX-License-Identifier: MIT */
/*
 * deliver_srs: the Sender Rewriting Scheme for forwarded mail, in the
 * form of Shevek's paper as libsrs2 and postsrsd implement it, so that
 * addresses made by either can be reversed here and the other way round.
 * No I/O and no clock: the time is passed in.
 *
 *   SRS0=HHHH=TT=domain=local@srs_domain
 *   SRS1=HHHH=fwdhost==HHHH=TT=domain=local@srs_domain
 *
 * TT is the day number (now / 86400) modulo 1024 in two base32 digits
 * (RFC 4648 §6 alphabet, high five bits first). HHHH is the first four
 * characters of the standard base64 (RFC 4648 §4) of
 *
 *   SRS0: HMAC-SHA1(secret, lower(TT) || lower(domain) || lower(local))
 *   SRS1: HMAC-SHA1(secret, lower(fwdhost) || lower(srsuser))
 *
 * where srsuser is the part of the SRS0 local part after "SRS0", its
 * separator included ("=HHHH=TT=domain=local"), and lower() is ASCII
 * lower case: a relay that changes the case of an address must not break
 * its hash. For the same reason the hash is compared case-insensitively
 * (which leaves about 20 of its 24 bits), and in constant time.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "deliver/deliver.h"

#define SRS_HASH_LEN 4
#define SRS_DAY 86400
#define SRS_TIME_SLOTS 1024
static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* libsrs2 accepts any of these right after the SRS0/SRS1 tag */
static bool
is_sep(char c)
{
	return c == '=' || c == '+' || c == '-';
}

/* HHHH of the concatenated, lower-cased parts; hash[SRS_HASH_LEN + 1] */
static int
srs_hash(const char *secret, const char *const *parts, const size_t *lens,
	 size_t nparts, char *hash)
{
	struct buf data;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	int ret = -1;

	buf_init(&data, 0);
	for (size_t i = 0; i < nparts; i++)
		for (size_t k = 0; k < lens[i]; k++) {
			char c = lower(parts[i][k]);

			(void)buf_append(&data, &c, 1);
		}
	if (HMAC(EVP_sha1(), secret, (int)strlen(secret),
		 data.len > 0 ? data.p : (const uint8_t *)"", data.len, md,
		 &mdlen) != NULL &&
	    mdlen > 0 && EVP_EncodeBlock(b64, md, (int)mdlen) > SRS_HASH_LEN) {
		memcpy(hash, b64, SRS_HASH_LEN);
		hash[SRS_HASH_LEN] = '\0';
		ret = 0;
	}
	OPENSSL_cleanse(md, sizeof(md));
	buf_clear(&data);
	return ret;
}

/* case-insensitive and in constant time for the SRS_HASH_LEN chars */
static bool
hash_equal(const char *got, size_t got_len, const char *want)
{
	char a[SRS_HASH_LEN], b[SRS_HASH_LEN];

	if (got_len != SRS_HASH_LEN)
		return false;
	for (size_t i = 0; i < SRS_HASH_LEN; i++) {
		a[i] = lower(got[i]);
		b[i] = lower(want[i]);
	}
	return CRYPTO_memcmp(a, b, SRS_HASH_LEN) == 0;
}

static int
b32_value(char c)
{
	c = lower(c);
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/* the day slot of now; now before the epoch counts as day 0 */
static unsigned
day_slot(int64_t now)
{
	return now < 0 ? 0 : (unsigned)((now / SRS_DAY) % SRS_TIME_SLOTS);
}

/* splits at the last '@' (a quoted local part may hold one) */
static void
split_addr(const char *addr, size_t *local_len, const char **domain)
{
	const char *at = strrchr(addr, '@');

	*local_len = at != NULL ? (size_t)(at - addr) : strlen(addr);
	*domain = at != NULL ? at + 1 : NULL;
}

/* "SRS0" or "SRS1" (any case) and a separator */
static int
srs_tag(const char *local, size_t len)
{
	if (len < 5 || ascii_strncasecmp(local, "SRS", 3) != 0 ||
	    !is_sep(local[4]))
		return -1;
	if (local[3] == '0')
		return 0;
	if (local[3] == '1')
		return 1;
	return -1;
}

/* the next '='-separated field of p[0..end) from *pos; false at the end */
static bool
next_field(const char *p, size_t end, size_t *pos, size_t *start_r,
	   size_t *len_r)
{
	const char *eq;

	if (*pos > end)
		return false;
	eq = memchr(p + *pos, '=', end - *pos);
	if (eq == NULL)
		return false;
	*start_r = *pos;
	*len_r = (size_t)(eq - (p + *pos));
	*pos = (size_t)(eq - p) + 1;
	return true;
}

int
deliver_srs_forward(const char *secret, const char *srs_domain,
		    const char *sender, int64_t now, char **out_r,
		    const char **error_r)
{
	size_t llen;
	const char *domain;
	char hash[SRS_HASH_LEN + 1];
	int tag;

	*out_r = NULL;
	if (secret == NULL || secret[0] == '\0' || srs_domain == NULL ||
	    srs_domain[0] == '\0') {
		*error_r = "SRS needs a secret and a domain";
		return -1;
	}
	/* RFC 5321 §4.5.5: the null sender is never rewritten, so bounces
	 * of bounces cannot loop */
	if (sender[0] == '\0') {
		*out_r = xstrdup("");
		return 0;
	}
	split_addr(sender, &llen, &domain);
	if (domain == NULL || domain[0] == '\0' || llen == 0) {
		*error_r = "sender is not local@domain";
		return -1;
	}
	if (ascii_strcasecmp(domain, srs_domain) == 0) {
		*out_r = xstrdup(sender);
		return 0;
	}
	if (sender[0] == '"') {
		/* "a b"@d would become SRS0=..=d="a b"@srs, not an address */
		*error_r = "a quoted local part cannot be rewritten";
		return -1;
	}
	tag = srs_tag(sender, llen);
	if (tag == 0) {
		/* SRS0 of another forwarder: SRS1 pointing at it, so that
		 * the way back needs only that forwarder (Shevek §4.2) */
		const char *user = sender + 4;
		size_t ulen = llen - 4, dlen = strlen(domain);
		const char *parts[2] = { domain, user };
		size_t lens[2] = { dlen, ulen };

		if (srs_hash(secret, parts, lens, 2, hash) < 0)
			goto crypto;
		*out_r = xasprintf("SRS1=%s=%s=%.*s@%s", hash, domain,
				   (int)ulen, user, srs_domain);
		return 0;
	}
	if (tag == 1) {
		/* SRS1 of another forwarder: keep its first host and the
		 * SRS0 part, hash them again for our domain */
		size_t pos = 5, hs, hl, fs, fl;
		const char *parts[2];
		size_t lens[2];

		if (!next_field(sender, llen, &pos, &hs, &hl) ||
		    !next_field(sender, llen, &pos, &fs, &fl) || fl == 0) {
			*error_r = "malformed SRS1 sender";
			return -1;
		}
		parts[0] = sender + fs;
		lens[0] = fl;
		parts[1] = sender + pos;
		lens[1] = llen - pos;
		if (srs_hash(secret, parts, lens, 2, hash) < 0)
			goto crypto;
		*out_r = xasprintf("SRS1=%s=%.*s=%.*s@%s", hash, (int)fl,
				   sender + fs, (int)(llen - pos), sender + pos,
				   srs_domain);
		return 0;
	}
	{
		unsigned slot = day_slot(now);
		char tt[3] = { b32[(slot >> 5) & 31], b32[slot & 31], '\0' };
		const char *parts[3] = { tt, domain, sender };
		size_t lens[3] = { 2, strlen(domain), llen };

		if (srs_hash(secret, parts, lens, 3, hash) < 0)
			goto crypto;
		*out_r = xasprintf("SRS0=%s=%s=%s=%.*s@%s", hash, tt, domain,
				   (int)llen, sender, srs_domain);
		return 0;
	}
crypto:
	*error_r = "HMAC failed";
	return -1;
}

int
deliver_srs_reverse(const char *secret, const char *address, int64_t now,
		    int64_t max_age_days, char **orig_r, const char **error_r)
{
	size_t llen, pos = 5, hs, hl, s1, l1, s2, l2;
	const char *domain;
	char hash[SRS_HASH_LEN + 1];
	int tag;

	*orig_r = NULL;
	split_addr(address, &llen, &domain);
	tag = srs_tag(address, llen);
	if (tag < 0)
		return 0;
	if (secret == NULL || secret[0] == '\0') {
		*error_r = "SRS needs a secret";
		return -1;
	}
	/* hash, then the timestamp (SRS0) or first host (SRS1) */
	if (!next_field(address, llen, &pos, &hs, &hl) ||
	    !next_field(address, llen, &pos, &s1, &l1)) {
		*error_r = "malformed SRS address";
		return -1;
	}
	if (tag == 1) {
		const char *parts[2] = { address + s1, address + pos };
		size_t lens[2] = { l1, llen - pos };

		/* the rest is the SRS0 user part with its separator */
		if (l1 == 0 || llen - pos < 2 || !is_sep(address[pos])) {
			*error_r = "malformed SRS1 address";
			return -1;
		}
		if (srs_hash(secret, parts, lens, 2, hash) < 0) {
			*error_r = "HMAC failed";
			return -1;
		}
		if (!hash_equal(address + hs, hl, hash)) {
			*error_r = "SRS1 hash does not match";
			return -1;
		}
		*orig_r = xasprintf("SRS0%.*s@%.*s", (int)(llen - pos),
				    address + pos, (int)l1, address + s1);
		return 1;
	}
	/* SRS0: TT, domain, then the local part (which may hold '=') */
	if (!next_field(address, llen, &pos, &s2, &l2) || l1 != 2 ||
	    l2 == 0 || pos >= llen) {
		*error_r = "malformed SRS0 address";
		return -1;
	}
	{
		const char *parts[3] = { address + s1, address + s2,
					 address + pos };
		size_t lens[3] = { 2, l2, llen - pos };
		int hi = b32_value(address[s1]), lo = b32_value(address[s1 + 1]);
		unsigned then, today, age;

		if (hi < 0 || lo < 0) {
			*error_r = "malformed SRS0 timestamp";
			return -1;
		}
		if (srs_hash(secret, parts, lens, 3, hash) < 0) {
			*error_r = "HMAC failed";
			return -1;
		}
		if (!hash_equal(address + hs, hl, hash)) {
			*error_r = "SRS0 hash does not match";
			return -1;
		}
		if (max_age_days < 0 || max_age_days >= SRS_TIME_SLOTS) {
			*error_r = "SRS max age out of range";
			return -1;
		}
		/* the day number wraps every 1024 days: the age is taken
		 * modulo 1024, so a timestamp "in the future" is very old */
		then = (unsigned)(hi << 5 | lo);
		today = day_slot(now);
		age = (today + SRS_TIME_SLOTS - then) % SRS_TIME_SLOTS;
		if (age > (unsigned)max_age_days) {
			*error_r = "SRS0 address has expired";
			return -1;
		}
		*orig_r = xasprintf("%.*s@%.*s", (int)(llen - pos),
				    address + pos, (int)l2, address + s2);
		return 1;
	}
}

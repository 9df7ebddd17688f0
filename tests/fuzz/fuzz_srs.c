/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for SRS reversal. The input is an address (up to the
 * first NUL; the octets after it, if any, pick the day). Invariants
 * checked with TN_ASSERT: the result is -1, 0 or 1; an output exists
 * exactly when it is 1; 0 only for addresses without an SRS0/SRS1 tag;
 * and a valid SRS0 address reverses to text that, forwarded again on
 * the same day as a fresh SRS0, reverses to the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-secret"
#define NOW INT64_C(1764770100)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *addr, *orig = NULL, *again = NULL, *back = NULL;
	const char *err = NULL;
	size_t alen = strnlen((const char *)data, size);
	int64_t now = NOW;
	int r;

	if (size > 4096)
		return 0;
	if (alen + 1 < size)
		now += (int64_t)data[alen + 1] * 86400;
	addr = xstrndup((const char *)data, alen);
	r = deliver_srs_reverse(SECRET, addr, now, 21, &orig, &err);
	TN_ASSERT(r >= -1 && r <= 1);
	TN_ASSERT((r == 1) == (orig != NULL));
	TN_ASSERT(r >= 0 || err != NULL);
	if (r == 0)
		TN_ASSERT(alen < 5 || (ascii_strncasecmp(addr, "SRS0", 4) != 0 &&
				       ascii_strncasecmp(addr, "SRS1", 4) != 0) ||
			  strchr("=+-", addr[4]) == NULL || addr[4] == '\0');
	if (r == 1 && ascii_strncasecmp(addr, "SRS0", 4) == 0 &&
	    strchr(orig, '"') == NULL &&
	    deliver_srs_forward(SECRET, "srs.test", orig, now, &again,
				&err) == 0) {
		int r2 = deliver_srs_reverse(SECRET, again, now, 21, &back,
					     &err);

		/* a fresh SRS0 of ours always comes back whole */
		if (strncmp(again, "SRS0=", 5) == 0)
			TN_ASSERT(r2 == 1 && strcmp(back, orig) == 0);
	}
	free(back);
	free(again);
	free(orig);
	free(addr);
	return 0;
}

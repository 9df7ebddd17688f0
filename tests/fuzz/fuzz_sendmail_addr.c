/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the RFC 5322 address-list parser that
 * `sendmail -t` uses (msg_addr_list_parse). The input is a field body.
 * Invariants checked with TN_ASSERT: the result is 0 or -1, -1 comes with
 * an error text and leaves the list as it was (it starts with one
 * address of its own); every address is non-empty text without CR, LF
 * or NUL; and each address, parsed again as "<address>", gives back
 * exactly itself (the SMTP form is stable).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_addr_list l = { 0 };
	const char *err = NULL;
	int r;

	if (size > 8192)
		return 0;
	l.addrs = xcalloc(1, sizeof(*l.addrs));
	l.addrs[0] = xstrdup("sentinel@fuzz.test");
	l.n = 1;
	r = msg_addr_list_parse(data, size, &l, &err);
	TN_ASSERT(r == 0 || r == -1);
	TN_ASSERT(l.n >= 1 && strcmp(l.addrs[0], "sentinel@fuzz.test") == 0);
	if (r < 0) {
		TN_ASSERT(err != NULL && l.n == 1);
	}
	for (size_t i = 1; i < l.n; i++) {
		const char *a = l.addrs[i];
		struct msg_addr_list again = { 0 };
		char *angle;
		int r2;

		TN_ASSERT(a[0] != '\0');
		TN_ASSERT(strpbrk(a, "\r\n") == NULL);
		angle = xasprintf("<%s>", a);
		r2 = msg_addr_list_parse((const uint8_t *)angle, strlen(angle),
					 &again, &err);
		TN_ASSERT(r2 == 0 && again.n == 1 &&
			  strcmp(again.addrs[0], a) == 0);
		msg_addr_list_clear(&again);
		free(angle);
	}
	msg_addr_list_clear(&l);
	return 0;
}

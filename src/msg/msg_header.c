/* SPDX-License-Identifier: MIT */
/*
 * msg_header: where the header block of an RFC 5322 message ends. Pure
 * code: no I/O.
 */
#include <string.h>

#include "msg/msg.h"

/*
 * RFC 5322 §2.1: the header fields, then an empty line, then the body.
 * A message as spooled has CRLF line ends; one handed in from a local
 * program may have LF only, so both count as a line end here.
 */
size_t
msg_header_len(const uint8_t *msg, size_t n)
{
	size_t i = 0;

	/* an empty first line: no header fields at all */
	if (n >= 1 && msg[0] == '\n')
		return 1;
	if (n >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	while (i < n) {
		const uint8_t *lf = memchr(msg + i, '\n', n - i);
		size_t next;

		if (lf == NULL)
			break;
		next = (size_t)(lf - msg) + 1;
		if (next < n && msg[next] == '\n')
			return next + 1;
		if (next + 1 < n && msg[next] == '\r' && msg[next + 1] == '\n')
			return next + 2;
		i = next;
	}
	return n;
}

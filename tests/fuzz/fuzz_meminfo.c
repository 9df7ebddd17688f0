/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for spool_meminfo_unwritten(), the reader of
 * /proc/meminfo's Dirty: and Writeback: lines. The input is copied into a
 * buffer of its exact size, so a read past its end is caught; the result
 * is a sum of KiB (>= 0) or -1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size > 0 ? size : 1);

	if (text == NULL)
		return 0;
	if (size > 0)
		memcpy(text, data, size);
	long v = spool_meminfo_unwritten(text, size);
	if (v < -1)
		abort();
	free(text);
	return 0;
}

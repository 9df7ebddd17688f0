/* SPDX-License-Identifier: MIT */
/*
 * Table-driven unit tests: CHECK reports a failed case and goes on to the
 * next, so one run shows every case that fails; the test then asserts
 * that `failures` is still 0. Include after <cmocka.h>.
 */
#ifndef TERN_UNIT_CHECK_H
#define TERN_UNIT_CHECK_H

static unsigned failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error(__VA_ARGS__); \
		print_error("\n"); \
		failures++; \
	} \
} while (0)

#endif

/* SPDX-License-Identifier: MIT */
/* Unit tests for base/: bounded buffers, log escaping, the worker pool. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"

static void
test_buf_max(void **state)
{
	struct buf b;
	(void)state;
	/* limit-1, limit, limit+1 */
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "1234567", 7), 0);
	assert_int_equal(buf_append(&b, "8", 1), 0);
	assert_int_equal(b.len, 8);
	assert_int_equal(buf_append(&b, "9", 1), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(buf_cstr(&b), "12345678");
	buf_consume(&b, 3);
	assert_string_equal(buf_cstr(&b), "45678");
	assert_int_equal(buf_printf(&b, "%d", 123), 0);
	assert_string_equal(buf_cstr(&b), "45678123");
	assert_int_equal(buf_printf(&b, "x"), -1);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	buf_clear(&b);
	assert_null(b.p);
}

static void
test_buf_unbounded(void **state)
{
	struct buf b;
	(void)state;
	buf_init(&b, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_append_str(&b, "abc"), 0);
	assert_int_equal(b.len, 30000);
	buf_consume(&b, 40000);
	assert_int_equal(b.len, 0);
	buf_clear(&b);
}

static void
test_log_escape(void **state)
{
	static const struct {
		const char *in;
		size_t n, room;
		const char *want;
	} cases[] = {
		{ "plain", 5, 64, "plain" },
		{ "a\r\nb", 4, 64, "a\\x0d\\x0ab" },
		{ "q\"\\", 3, 64, "q\\x22\\x5c" },
		{ "\x00\xff", 2, 64, "\\x00\\xff" },
		{ "abcdefghij", 10, 8, "abcd..." },
		{ "abcdefg", 7, 8, "abcdefg" },
		{ "\x01\x01\x01", 3, 8, "\\x01..." },
	};
	char out[64];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_escape(out, cases[i].room, cases[i].in, cases[i].n);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out,
				 cases[i].want);
	}
}

static void
test_parse_u64(void **state)
{
	uint64_t v;
	(void)state;
	assert_int_equal(parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &v), -1);
	assert_int_equal(parse_u64("-1", &v), -1);
	assert_int_equal(parse_u64("12x", &v), -1);
	assert_int_equal(parse_u64("", &v), -1);
	assert_int_equal(parse_u64(" 1", &v), -1);
	assert_int_equal(ascii_strcasecmp("MAIL", "mail"), 0);
	assert_true(ascii_strcasecmp("MAIL", "mails") != 0);
	assert_int_equal(ascii_strncasecmp("RCPT TO", "rcpt", 4), 0);
}

struct job {
	int value;
	int worked;
	int done;
};

static void
job_work(void *arg)
{
	struct job *j = arg;
	j->worked = j->value * 2;
}

static void
job_done(void *arg)
{
	struct job *j = arg;
	j->done = 1;
}

static void
test_workq(void **state)
{
	struct workq *wq = workq_new(3);
	struct job jobs[200];
	unsigned ran = 0;
	(void)state;
	for (int i = 0; i < 200; i++) {
		jobs[i] = (struct job){ .value = i };
		workq_submit(wq, job_work, job_done, &jobs[i]);
	}
	for (int tries = 0; ran < 200 && tries < 1000; tries++) {
		struct pollfd pfd = { .fd = workq_fd(wq), .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		ran += workq_complete(wq);
	}
	assert_int_equal(ran, 200);
	assert_int_equal(workq_pending(wq), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(jobs[i].worked, i * 2);
		assert_int_equal(jobs[i].done, 1);
	}
	/* workq_free runs done callbacks still waiting */
	struct job last = { .value = 7 };
	workq_submit(wq, job_work, job_done, &last);
	workq_free(&wq);
	assert_null(wq);
	assert_int_equal(last.done, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_max),
		cmocka_unit_test(test_buf_unbounded),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_workq),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}

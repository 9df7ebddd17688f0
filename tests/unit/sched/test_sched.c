/* SPDX-License-Identifier: MIT */
/*
 * The retry policy: doubling backoff with its cap, expiry at the end of
 * the queue lifetime with one last attempt moved to it, delay notices.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>

#include "sched/sched.h"

#include "unit_check.h"

static const struct sched_policy def = {
	.retry_min = 300, .retry_max = 3600, .lifetime = 5 * 86400,
	.delay_warning = 4 * 3600,
};

static void
test_backoff(void **state)
{
	static const struct {
		unsigned min, max, attempts;
		int64_t want;
	} cases[] = {
		{ 300, 3600, 0, 300 },
		{ 300, 3600, 1, 300 },
		{ 300, 3600, 2, 600 },
		{ 300, 3600, 3, 1200 },
		{ 300, 3600, 4, 2400 },
		{ 300, 3600, 5, 3600 },   /* 4800 capped */
		{ 300, 3600, 6, 3600 },
		{ 300, 3600, 4000000000u, 3600 },
		{ 1, 4, 1, 1 },
		{ 1, 4, 2, 2 },
		{ 1, 4, 3, 4 },
		{ 1, 4, 4, 4 },
		{ 7, 7, 9, 7 },
		{ 10, 5, 3, 10 },         /* max below min: min wins */
		{ 0, 0, 1, 1 },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sched_policy p = { .retry_min = cases[i].min,
					  .retry_max = cases[i].max,
					  .lifetime = 86400 };
		int64_t got = sched_backoff(&p, cases[i].attempts);
		CHECK(got == cases[i].want, "min %u max %u attempts %u: got "
		      "%" PRId64 ", want %" PRId64, cases[i].min, cases[i].max,
		      cases[i].attempts, got, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

static void
test_after_tempfail(void **state)
{
	const int64_t t0 = 1700000000;
	const int64_t life = 5 * 86400;
	static const struct {
		int64_t age;
		unsigned attempts;
		enum sched_verdict want;
		int64_t next_age;         /* want next - t0 */
	} cases[] = {
		{ 0, 1, SCHED_RETRY, 300 },
		{ 10, 2, SCHED_RETRY, 610 },
		{ 5 * 86400 - 1000, 9, SCHED_RETRY, 5 * 86400 },   /* moved */
		{ 5 * 86400 - 3600, 9, SCHED_RETRY, 5 * 86400 },   /* exactly */
		{ 5 * 86400 - 3601, 9, SCHED_RETRY, 5 * 86400 - 1 },
		{ 5 * 86400 - 1, 9, SCHED_RETRY, 5 * 86400 },
		{ 5 * 86400, 9, SCHED_EXPIRE, 0 },
		{ 6 * 86400, 1, SCHED_EXPIRE, 0 },
	};

	(void)state;
	(void)life;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t next = -1;
		enum sched_verdict v = sched_after_tempfail(&def, t0,
			cases[i].attempts, t0 + cases[i].age, &next);
		CHECK(v == cases[i].want, "age %" PRId64 ": got verdict %d, "
		      "want %d", cases[i].age, v, cases[i].want);
		if (v == SCHED_RETRY)
			CHECK(next - t0 == cases[i].next_age, "age %" PRId64
			      ": got next %" PRId64 ", want %" PRId64,
			      cases[i].age, next - t0, cases[i].next_age);
		else
			CHECK(next == 0, "expired with a next try");
	}
	assert_int_equal(sched_expiry(&def, t0), t0 + life);
	assert_int_equal(failures, 0);
}

static void
test_delay_notice(void **state)
{
	const int64_t t0 = 1700000000;
	struct sched_policy off = def;

	(void)state;
	assert_false(sched_delay_notice_due(&def, t0, t0));
	assert_false(sched_delay_notice_due(&def, t0, t0 + 4 * 3600 - 1));
	assert_true(sched_delay_notice_due(&def, t0, t0 + 4 * 3600));
	assert_true(sched_delay_notice_due(&def, t0, t0 + 4 * 3600 + 1));
	off.delay_warning = 0;
	assert_false(sched_delay_notice_due(&off, t0, t0 + 86400));
	/* a warning after the expiry would never be sent before it */
	off.delay_warning = off.lifetime;
	assert_false(sched_delay_notice_due(&off, t0, t0 + off.lifetime));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_after_tempfail),
		cmocka_unit_test(test_delay_notice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

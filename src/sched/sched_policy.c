/* SPDX-License-Identifier: MIT */
/*
 * sched policy: backoff, expiry and delay notices as arithmetic on the
 * times handed in. No clock, no I/O.
 */
#include "sched/sched.h"

int64_t
sched_backoff(const struct sched_policy *p, unsigned attempts)
{
	int64_t wait = p->retry_min > 0 ? p->retry_min : 1;
	int64_t max = p->retry_max > (unsigned)wait ? p->retry_max : wait;

	if (attempts == 0)
		attempts = 1;
	/* doubling 63 times overflows long before; stop at the cap */
	for (unsigned i = 1; i < attempts && wait < max; i++)
		wait *= 2;
	return wait < max ? wait : max;
}

int64_t
sched_expiry(const struct sched_policy *p, int64_t received_at)
{
	return received_at + (int64_t)p->lifetime;
}

enum sched_verdict
sched_after_tempfail(const struct sched_policy *p, int64_t received_at,
		     unsigned attempts, int64_t now, int64_t *next_r)
{
	int64_t expiry = sched_expiry(p, received_at);
	int64_t next;

	*next_r = 0;
	if (now >= expiry)
		return SCHED_EXPIRE;
	next = now + sched_backoff(p, attempts);
	/* one last attempt at the end of the message's life */
	*next_r = next < expiry ? next : expiry;
	return SCHED_RETRY;
}

bool
sched_delay_notice_due(const struct sched_policy *p, int64_t received_at,
		       int64_t now)
{
	if (p->delay_warning == 0 || p->delay_warning >= p->lifetime)
		return false;
	return now - received_at >= (int64_t)p->delay_warning;
}

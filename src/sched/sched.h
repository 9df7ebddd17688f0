/* SPDX-License-Identifier: MIT */
/*
 * sched: the retry and expiry policy of the queue runner. Pure code: the
 * time is passed in, nothing here reads a clock or touches the spool.
 *
 * A delivery that fails temporarily is retried after retry_min, then
 * after twice as long each time, up to retry_max between two attempts
 * (RFC 5321 §4.5.4.1 asks for at least 30 minutes in general; the
 * default of 5 minutes first is what most servers do for a greylisting
 * peer). A recipient still not delivered `lifetime` seconds after the
 * message was received expires: it bounces. The last retry is moved
 * forward to the moment of expiry, so that a message gets one attempt
 * at the end of its life rather than expiring while it waits.
 */
#ifndef TERN_SCHED_H
#define TERN_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"

struct sched_policy {
	unsigned retry_min;       /* seconds, >= 1 */
	unsigned retry_max;       /* seconds, >= retry_min */
	unsigned lifetime;        /* seconds from receipt to expiry */
	unsigned delay_warning;   /* seconds from receipt; 0: never */
};

/* the wait after the attempts-th failed attempt (attempts >= 1; 0 is
 * taken as 1): retry_min * 2^(attempts-1), at most retry_max */
int64_t sched_backoff(const struct sched_policy *p, unsigned attempts);

enum sched_verdict {
	SCHED_RETRY = 0,          /* try again at *next_r */
	SCHED_EXPIRE,             /* give up: bounce */
};

/*
 * After the attempts-th attempt (counting this one) failed temporarily
 * at `now`, for a message received at received_at.
 */
enum sched_verdict sched_after_tempfail(const struct sched_policy *p,
					int64_t received_at,
					unsigned attempts, int64_t now,
					int64_t *next_r);

/* true when a delay notice is due at `now` (and none was sent) */
bool sched_delay_notice_due(const struct sched_policy *p,
			    int64_t received_at, int64_t now);

/* when the message expires: received_at + lifetime */
int64_t sched_expiry(const struct sched_policy *p, int64_t received_at);

#endif

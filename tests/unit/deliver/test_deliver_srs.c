/* SPDX-License-Identifier: MIT */
/*
 * Tests of the Sender Rewriting Scheme: a known SRS0 vector (computed
 * independently from the documented HMAC input), round trips, SRS1,
 * case changes, tampering, expiry at max_age - 1, max_age and
 * max_age + 1 days, the 1024-day wrap, and malformed addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/deliver.h"
#include "unit_check.h"

#define SECRET "tern-secret"
#define DOM "fwd.tern.test"
/* day 20425 (2025-12-03), slot 969 = "6J" */
#define NOW INT64_C(1764770100)
#define DAY INT64_C(86400)

static char *
fwd(const char *sender, int64_t now)
{
	char *out = NULL;
	const char *err = NULL;

	if (deliver_srs_forward(SECRET, DOM, sender, now, &out, &err) != 0)
		fail_msg("forward \"%s\": %s", sender, err);
	return out;
}

/* reverse result and text (NULL when not 1) */
static int
rev(const char *addr, int64_t now, int64_t max_age, char **orig_r)
{
	const char *err = NULL;
	int r = deliver_srs_reverse(SECRET, addr, now, max_age, orig_r, &err);

	if (r < 0 && err == NULL)
		fail_msg("reverse \"%s\": -1 without a reason", addr);
	return r;
}

static void
test_forward_table(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		/* base64(HMAC-SHA1("tern-secret", "6jexample.orgalice"))[:4] */
		{ "alice@example.org", "SRS0=Nbjm=6J=example.org=alice@" DOM },
		/* the hash input is lower-cased, the address is kept */
		{ "Alice@Example.ORG", "SRS0=Nbjm=6J=Example.ORG=Alice@" DOM },
		{ "", "" },
		{ "bob@" DOM, "bob@" DOM },
		{ "bob@FWD.tern.TEST", "bob@FWD.tern.TEST" },
		/* HMAC-SHA1("tern-secret", "fwd1.test=abcd=6j=example.org=alice") */
		{ "SRS0=ABCD=6J=example.org=alice@fwd1.test",
		  "SRS1=rdYZ=fwd1.test==ABCD=6J=example.org=alice@" DOM },
		{ "SRS1=WXYZ=fwd1.test==ABCD=6J=example.org=alice@fwd2.test",
		  "SRS1=rdYZ=fwd1.test==ABCD=6J=example.org=alice@" DOM },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = fwd(cases[i].in, NOW);

		CHECK(strcmp(got, cases[i].want) == 0,
		      "forward \"%s\": got \"%s\", want \"%s\"", cases[i].in,
		      got, cases[i].want);
		free(got);
	}
	assert_int_equal(failures, 0);
}

static void
test_forward_errors(void **state)
{
	static const char *const bad[] = {
		"nodomain", "local@", "@example.org", "\"a b\"@example.org",
		"SRS1=HHHH@fwd2.test", "SRS1=HHHH=@fwd2.test",
	};
	char *out;
	const char *err;

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (char *)1;
		err = NULL;
		CHECK(deliver_srs_forward(SECRET, DOM, bad[i], NOW, &out,
					  &err) == -1,
		      "forward \"%s\": got 0, want -1", bad[i]);
		CHECK(out == NULL && err != NULL, "forward \"%s\": outputs",
		      bad[i]);
	}
	CHECK(deliver_srs_forward("", DOM, "a@b.test", NOW, &out, &err) == -1,
	      "empty secret accepted");
	CHECK(deliver_srs_forward(SECRET, "", "a@b.test", NOW, &out, &err) ==
	      -1, "empty domain accepted");
	assert_int_equal(failures, 0);
}

static void
test_round_trips(void **state)
{
	static const char *const senders[] = {
		"alice@example.org", "a.b+tag@sub.example.org",
		"x=y@example.org", "weird==local=@example.org",
		"UPPER@EXAMPLE.ORG", "o'neil@example.org",
		"a@[192.0.2.1]",
	};
	static const int64_t times[] = {
		0, NOW, NOW + 1023 * DAY, 1023 * DAY + 86399,
	};

	(void)state;
	failures = 0;
	for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++)
		for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]);
		     i++) {
			char *s = fwd(senders[i], times[t]), *back = NULL;
			int r = rev(s, times[t], 21, &back);

			CHECK(r == 1 && strcmp(back, senders[i]) == 0,
			      "round trip \"%s\" at %lld: got %d \"%s\"",
			      senders[i], (long long)times[t], r,
			      back != NULL ? back : "");
			free(back);
			free(s);
		}
	assert_int_equal(failures, 0);
}

static void
test_srs1(void **state)
{
	char *s0, *s1, *back = NULL, *back2 = NULL, *s1b;
	int r;

	(void)state;
	failures = 0;
	/* first forwarder makes SRS0; a second (same secret here) SRS1 */
	s0 = fwd("alice@example.org", NOW);
	{
		/* move the SRS0 to the first forwarder's own domain */
		char *at = strrchr(s0, '@');
		char tmp[256];

		(void)snprintf(tmp, sizeof(tmp), "%.*s@fwd1.test",
			       (int)(at - s0), s0);
		free(s0);
		s0 = strdup(tmp);
	}
	s1 = fwd(s0, NOW);
	CHECK(strncmp(s1, "SRS1=", 5) == 0 && strstr(s1, "=fwd1.test==") != NULL,
	      "SRS1 form: got \"%s\"", s1);
	r = rev(s1, NOW + 400 * DAY, 21, &back);   /* SRS1 has no time */
	CHECK(r == 1 && strcmp(back, s0) == 0, "SRS1 reverse: got %d \"%s\", "
	      "want \"%s\"", r, back != NULL ? back : "", s0);
	/* and the first forwarder reverses that to the original */
	r = rev(back, NOW, 21, &back2);
	CHECK(r == 1 && strcmp(back2, "alice@example.org") == 0,
	      "SRS0 behind SRS1: got %d", r);
	free(back2);
	back2 = NULL;
	/* a third forwarder rewrites the SRS1 again, keeping the host */
	{
		char *at = strrchr(s1, '@');
		char tmp[256];

		(void)snprintf(tmp, sizeof(tmp), "%.*s@fwd2.test",
			       (int)(at - s1), s1);
		s1b = fwd(tmp, NOW);
		CHECK(strcmp(s1b, s1) == 0, "SRS1 again: got \"%s\", want \"%s\"",
		      s1b, s1);
		free(s1b);
	}
	/* other separators after the SRS0 tag (libsrs2 accepts + and -) */
	s1b = fwd("SRS0+ABCD=6J=example.org=alice@fwd1.test", NOW);
	r = rev(s1b, NOW, 21, &back2);
	CHECK(r == 1 && strcmp(back2, "SRS0+ABCD=6J=example.org=alice@fwd1.test")
	      == 0, "SRS1 of SRS0+: got %d \"%s\"", r, back2 ? back2 : "");
	free(back2);
	free(s1b);
	free(back);
	free(s1);
	free(s0);
	assert_int_equal(failures, 0);
}

static void
test_case_changes(void **state)
{
	char *s = fwd("Alice@Example.org", NOW), *back = NULL;
	char *lc = strdup(s), *uc = strdup(s);
	int r;

	(void)state;
	failures = 0;
	for (char *p = lc; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (char *p = uc; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	r = rev(lc, NOW, 21, &back);
	CHECK(r == 1 && strcmp(back, "alice@example.org") == 0,
	      "lower case: got %d \"%s\"", r, back ? back : "");
	free(back);
	back = NULL;
	r = rev(uc, NOW, 21, &back);
	CHECK(r == 1 && strcmp(back, "ALICE@EXAMPLE.ORG") == 0,
	      "upper case: got %d \"%s\"", r, back ? back : "");
	free(back);
	free(lc);
	free(uc);
	free(s);
	assert_int_equal(failures, 0);
}

static void
test_tampering(void **state)
{
	/* SRS0=Nbjm=6J=example.org=alice@DOM, one part changed at a time */
	static const char *const bad[] = {
		"SRS0=Nbjn=6J=example.org=alice@" DOM,     /* hash */
		"SRS0=Nbj=6J=example.org=alice@" DOM,      /* short hash */
		"SRS0=Nbjmm=6J=example.org=alice@" DOM,    /* long hash */
		"SRS0=Nbjm=6K=example.org=alice@" DOM,     /* time */
		"SRS0=Nbjm=6J=example.com=alice@" DOM,     /* domain */
		"SRS0=Nbjm=6J=example.org=alicf@" DOM,     /* local */
		"SRS0=Nbjm=6J=example.org=alice=@" DOM,
		"SRS1=rdYZ=fwd1.test==ABCD=6J=example.org=alicf@" DOM,
		"SRS1=rdYZ=fwd2.test==ABCD=6J=example.org=alice@" DOM,
		"SRS1=rdYY=fwd1.test==ABCD=6J=example.org=alice@" DOM,
	};
	char *back;

	(void)state;
	failures = 0;
	back = NULL;
	CHECK(rev("SRS0=Nbjm=6J=example.org=alice@" DOM, NOW, 21, &back) == 1,
	      "untampered vector not accepted");
	free(back);
	back = NULL;
	CHECK(rev("SRS1=rdYZ=fwd1.test==ABCD=6J=example.org=alice@" DOM, NOW,
		  21, &back) == 1 &&
	      strcmp(back, "SRS0=ABCD=6J=example.org=alice@fwd1.test") == 0,
	      "untampered SRS1 vector not accepted");
	free(back);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		back = NULL;
		r = rev(bad[i], NOW, 21, &back);
		CHECK(r == -1 && back == NULL, "tampered \"%s\": got %d, want -1",
		      bad[i], r);
		free(back);
	}
	/* another secret */
	{
		const char *err = NULL;

		back = NULL;
		CHECK(deliver_srs_reverse("other", "SRS0=Nbjm=6J=example.org="
					  "alice@" DOM, NOW, 21, &back,
					  &err) == -1, "other secret accepted");
		free(back);
	}
	assert_int_equal(failures, 0);
}

static void
test_expiry(void **state)
{
	static const struct {
		int64_t age_days;
		int want;
	} cases[] = {
		{ 0, 1 }, { 20, 1 }, { 21, 1 }, { 22, -1 }, { 500, -1 },
		{ 1023, -1 },   /* "tomorrow" modulo 1024: too old */
		{ 1024, 1 },    /* a whole wrap later looks like today */
	};
	char *s = fwd("alice@example.org", NOW);

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *back = NULL;
		/* the last second of the day counts as that day */
		int r = rev(s, NOW + cases[i].age_days * DAY, 21, &back);

		CHECK(r == cases[i].want, "age %lld days: got %d, want %d",
		      (long long)cases[i].age_days, r, cases[i].want);
		free(back);
	}
	/* max_age 0 and out of range */
	{
		char *back = NULL;

		CHECK(rev(s, NOW, 0, &back) == 1, "max age 0, same day");
		free(back);
		back = NULL;
		CHECK(rev(s, NOW + DAY, 0, &back) == -1, "max age 0, next day");
		CHECK(rev(s, NOW, 1024, &back) == -1, "max age 1024 accepted");
		CHECK(rev(s, NOW, -1, &back) == -1, "max age -1 accepted");
	}
	free(s);
	assert_int_equal(failures, 0);
}

static void
test_wrap(void **state)
{
	/* made on day slot 1020, checked on slots 1023, 0 and 3 */
	int64_t made = (INT64_C(20480) + 1020) * DAY + 5;
	char *s = fwd("alice@example.org", made);
	static const struct {
		int64_t days;
		int want;
	} cases[] = {
		{ 3, 1 }, { 4, 1 }, { 7, 1 }, { 8, -1 }, { 30, -1 },
	};

	(void)state;
	failures = 0;
	CHECK(strstr(s, "=74=") != NULL, "slot 1020: got \"%s\", want =74=", s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *back = NULL;
		int r = rev(s, made + cases[i].days * DAY, 7, &back);

		CHECK(r == cases[i].want, "wrap +%lld days: got %d, want %d",
		      (long long)cases[i].days, r, cases[i].want);
		free(back);
	}
	free(s);
	assert_int_equal(failures, 0);
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{ "alice@example.org", 0 },
		{ "", 0 },
		{ "SRS0", 0 },
		{ "SRS0@" DOM, 0 },
		{ "SRS0x=a=b=c=d@" DOM, 0 },
		{ "SRS2=Nbjm=6J=example.org=alice@" DOM, 0 },
		{ "SRS=Nbjm@" DOM, 0 },
		{ "SRS0=@" DOM, -1 },
		{ "SRS0=Nbjm@" DOM, -1 },
		{ "SRS0=Nbjm=6J@" DOM, -1 },
		{ "SRS0=Nbjm=6J=example.org@" DOM, -1 },
		{ "SRS0=Nbjm=6J=example.org=@" DOM, -1 },
		{ "SRS0=Nbjm=6J==alice@" DOM, -1 },
		{ "SRS0=Nbjm=6=example.org=alice@" DOM, -1 },
		{ "SRS0=Nbjm=6J1=example.org=alice@" DOM, -1 },
		{ "SRS0=Nbjm=61=example.org=alice@" DOM, -1 },   /* not base32 */
		{ "SRS0=Nbjm=6!=example.org=alice@" DOM, -1 },
		{ "SRS1=@" DOM, -1 },
		{ "SRS1=rdYZ=fwd1.test@" DOM, -1 },
		{ "SRS1=rdYZ==x@" DOM, -1 },
		{ "SRS1=rdYZ=fwd1.test=@" DOM, -1 },
		{ "SRS1=rdYZ=fwd1.test=x@" DOM, -1 },
		{ "SRS0=Nbjm=6J=example.org=alice", 1 },          /* no @ */
		{ "srs0=nbjm=6j=example.org=alice@" DOM, 1 },
		{ "SRS0-Nbjm=6J=example.org=alice@" DOM, 1 },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *back = NULL;
		int r = rev(cases[i].in, NOW, 21, &back);

		CHECK(r == cases[i].want, "\"%s\": got %d, want %d",
		      cases[i].in, r, cases[i].want);
		CHECK((r == 1) == (back != NULL), "\"%s\": output on %d",
		      cases[i].in, r);
		free(back);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forward_table),
		cmocka_unit_test(test_forward_errors),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_srs1),
		cmocka_unit_test(test_case_changes),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests_name("deliver_srs", tests, NULL, NULL);
}

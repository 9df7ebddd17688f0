/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net_route_order(): MX hosts sorted by preference, equal
 * preferences shuffled (RFC 5321 §5.1) with the randomness passed in, so
 * that every permutation is reachable and distinct preferences never move.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "unit_check.h"
#include "net/net.h"

#define HOSTS_MAX 8

/* a deterministic source: splitmix64 from a seed, counting its calls */
struct det_rnd {
	uint64_t state;
	unsigned calls;
};

static uint64_t
det_next(void *arg)
{
	struct det_rnd *r = arg;
	uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);

	r->calls++;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* builds hosts named "a", "b", ... from a list of preferences */
static size_t
make_hosts(struct net_route_host *h, const unsigned *prefs, size_t n,
	   char names[][2])
{
	memset(h, 0, n * sizeof(*h));
	for (size_t i = 0; i < n; i++) {
		names[i][0] = (char)('a' + i);
		names[i][1] = '\0';
		h[i].name = names[i];
		h[i].pref = prefs[i];
	}
	return n;
}

static void
order_text(const struct net_route_host *h, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = h[i].name[0];
	out[n] = '\0';
}

/* distinct preferences: one order whatever rnd says, and rnd unused */
static void
test_sorted_distinct(void **state)
{
	static const struct {
		unsigned prefs[HOSTS_MAX];
		size_t n;
		const char *want;
	} cases[] = {
		{ { 0 }, 0, "" },
		{ { 10 }, 1, "a" },
		{ { 10, 20 }, 2, "ab" },
		{ { 20, 10 }, 2, "ba" },
		{ { 30, 10, 20 }, 3, "bca" },
		{ { 5, 0, 65535, 100, 1 }, 5, "bea dc" },
		{ { 7, 6, 5, 4, 3, 2, 1, 0 }, 8, "hgfedcba" },
	};
	(void)state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (uint64_t seed = 0; seed < 20; seed++) {
			struct net_route_host h[HOSTS_MAX];
			char names[HOSTS_MAX][2], got[HOSTS_MAX + 1];
			struct det_rnd r = { .state = seed };
			char want[HOSTS_MAX + 1];
			size_t k = 0;

			/* the table's spaces only separate groups visually */
			for (const char *p = cases[c].want; *p != '\0'; p++)
				if (*p != ' ')
					want[k++] = *p;
			want[k] = '\0';
			make_hosts(h, cases[c].prefs, cases[c].n, names);
			net_route_order(h, cases[c].n, det_next, &r);
			order_text(h, cases[c].n, got);
			CHECK(strcmp(got, want) == 0,
			      "case %zu seed %llu: got %s, want %s", c,
			      (unsigned long long)seed, got, want);
			CHECK(r.calls == 0, "case %zu: rnd called %u times, "
			      "want 0", c, r.calls);
		}
	}
	assert_int_equal(failures, 0);
}

/* a preference keeps its hosts, its place and its value */
static void
test_sorted_prefs(void **state)
{
	static const unsigned prefs[] = { 20, 10, 10, 30, 10, 20, 0 };
	const size_t n = sizeof(prefs) / sizeof(prefs[0]);
	(void)state;

	for (uint64_t seed = 0; seed < 200; seed++) {
		struct net_route_host h[HOSTS_MAX];
		char names[HOSTS_MAX][2], got[HOSTS_MAX + 1];
		struct det_rnd r = { .state = seed };

		make_hosts(h, prefs, n, names);
		net_route_order(h, n, det_next, &r);
		order_text(h, n, got);
		for (size_t i = 1; i < n; i++)
			CHECK(h[i - 1].pref <= h[i].pref,
			      "seed %llu: got %s, prefs out of order at %zu",
			      (unsigned long long)seed, got, i);
		/* each host kept its own preference */
		for (size_t i = 0; i < n; i++)
			CHECK(h[i].pref == prefs[h[i].name[0] - 'a'],
			      "seed %llu: host %s got pref %u, want %u",
			      (unsigned long long)seed, h[i].name, h[i].pref,
			      prefs[h[i].name[0] - 'a']);
		/* the lone preferences 0 and 30 never move */
		CHECK(got[0] == 'g' && got[6] == 'd',
		      "seed %llu: got %s, want g first and d last",
		      (unsigned long long)seed, got);
		/* a run of k equal preferences draws k-1 numbers: 2 + 1 */
		CHECK(r.calls == 3, "seed %llu: rnd called %u times, want 3",
		      (unsigned long long)seed, r.calls);
	}
	assert_int_equal(failures, 0);
}

static int
perm_index(const char *s, const char *const *perms, size_t nperms)
{
	for (size_t i = 0; i < nperms; i++)
		if (strcmp(s, perms[i]) == 0)
			return (int)i;
	return -1;
}

/* every order of equal preferences is reachable, and only those */
static void
test_equal_permutations(void **state)
{
	static const char *const perms3[] = {
		"abc", "acb", "bac", "bca", "cab", "cba",
	};
	static const struct {
		unsigned prefs[HOSTS_MAX];
		size_t n;
		const char *prefix, *suffix;  /* fixed hosts around the run */
		size_t run;                   /* where the b/c/d run starts */
	} cases[] = {
		/* three hosts, all equal */
		{ { 10, 10, 10 }, 3, "", "", 0 },
		/* equal run between distinct preferences */
		{ { 5, 10, 10, 10, 20 }, 5, "a", "e", 1 },
		/* equal run at the end, input unsorted */
		{ { 10, 10, 1, 10 }, 4, "c", "", 1 },
	};
	(void)state;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		unsigned seen[6] = { 0 };
		unsigned distinct = 0;

		/* bounded: 6 orders, 600 draws; a fair shuffle misses one
		 * with probability about 6 * (5/6)^600 */
		for (uint64_t seed = 0; seed < 600; seed++) {
			struct net_route_host h[HOSTS_MAX];
			char names[HOSTS_MAX][2], got[HOSTS_MAX + 1];
			char run[4], norm[4];
			struct det_rnd r = { .state = seed * 7919 };
			size_t lp = strlen(cases[c].prefix);
			int idx;

			make_hosts(h, cases[c].prefs, cases[c].n, names);
			net_route_order(h, cases[c].n, det_next, &r);
			order_text(h, cases[c].n, got);
			CHECK(strncmp(got, cases[c].prefix, lp) == 0 &&
			      strcmp(got + cases[c].n - strlen(cases[c].suffix),
				     cases[c].suffix) == 0,
			      "case %zu: got %s, want %s...%s", c, got,
			      cases[c].prefix, cases[c].suffix);
			memcpy(run, got + cases[c].run, 3);
			run[3] = '\0';
			/* name the run's hosts a, b, c by input position */
			{
				char ids[3];
				size_t m = 0;
				for (size_t i = 0; i < cases[c].n; i++)
					if (cases[c].prefs[i] == 10)
						ids[m++] = (char)('a' + i);
				for (size_t i = 0; i < 3; i++)
					norm[i] = (char)('a' +
						(strchr(ids, run[i]) - ids));
				norm[3] = '\0';
			}
			idx = perm_index(norm, perms3, 6);
			CHECK(idx >= 0, "case %zu: got run %s, not a "
			      "permutation of the equal hosts", c, run);
			if (idx >= 0 && seen[idx]++ == 0)
				distinct++;
		}
		CHECK(distinct == 6, "case %zu: got %u distinct orders, "
		      "want 6", c, distinct);
		/* no order is starved: each has a fair share */
		for (size_t i = 0; i < 6; i++)
			CHECK(seen[i] >= 50, "case %zu: order %s seen %u "
			      "times in 600, want >= 50", c, perms3[i],
			      seen[i]);
	}
	assert_int_equal(failures, 0);
}

/* rnd() may return any value, the extremes included */
static uint64_t
rnd_max(void *arg)
{
	(void)arg;
	return UINT64_MAX;
}

static uint64_t
rnd_zero(void *arg)
{
	(void)arg;
	return 0;
}

static void
test_extreme_rnd(void **state)
{
	static const unsigned prefs[] = { 10, 10, 10, 10 };
	uint64_t (*const fns[])(void *) = { rnd_zero, rnd_max };
	(void)state;

	for (size_t f = 0; f < 2; f++) {
		struct net_route_host h[HOSTS_MAX];
		char names[HOSTS_MAX][2], got[HOSTS_MAX + 1], sorted[5];

		make_hosts(h, prefs, 4, names);
		net_route_order(h, 4, fns[f], NULL);
		order_text(h, 4, got);
		memcpy(sorted, got, 5);
		/* still a permutation of abcd */
		for (size_t i = 0; i < 4; i++)
			for (size_t j = i + 1; j < 4; j++)
				if (sorted[j] < sorted[i]) {
					char t = sorted[i];
					sorted[i] = sorted[j];
					sorted[j] = t;
				}
		CHECK(strcmp(sorted, "abcd") == 0, "rnd %zu: got %s, want a "
		      "permutation of abcd", f, got);
	}
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sorted_distinct),
		cmocka_unit_test(test_sorted_prefs),
		cmocka_unit_test(test_equal_permutations),
		cmocka_unit_test(test_extreme_rnd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * `tern route DOMAIN`: resolves the delivery route to DOMAIN the way the
 * relay agent does (net_dns_route) and prints it, one line per host:
 * preference, name, addresses ("-" for none, then "tempfail" when its
 * lookup failed temporarily). An implicit MX is announced by a line
 * starting with '#'. A failed route prints "STATUS: error". It exists to
 * debug delivery and to test the resolver end to end.
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "main/tern_route.h"
#include "net/net.h"

#define ROUTE_MAX_HOSTS_DEFAULT 10
#define ROUTE_MAX_ADDRS_DEFAULT 10
#define ROUTE_TIMEOUT_MS_DEFAULT 2000
#define ROUTE_TRIES_DEFAULT 2
#define ROUTE_EX_TEMPFAIL 75 /* sysexits.h EX_TEMPFAIL */

struct route_run {
	struct event_base *base;
	struct net_route *route;
};

static void
route_usage(void)
{
	fprintf(stderr,
		"usage: tern route DOMAIN [--config FILE]\n"
		"                  [--dns HOST:PORT[,HOST:PORT...]] [--no-mx]\n"
		"                  [--max-hosts N] [--max-addrs N]\n"
		"                  [--timeout MS]\n");
}

static void
route_done(void *arg, struct net_route *route)
{
	struct route_run *run = arg;

	run->route = route;
	event_base_loopbreak(run->base);
}

static const char *
status_name(enum net_route_status st)
{
	switch (st) {
	case NET_ROUTE_OK:
		return "OK";
	case NET_ROUTE_NULL_MX:
		return "NULL_MX";
	case NET_ROUTE_NO_DOMAIN:
		return "NO_DOMAIN";
	case NET_ROUTE_TEMPFAIL:
		return "TEMPFAIL";
	}
	return "UNKNOWN";
}

static int
route_print(const char *domain, const struct net_route *r)
{
	if (r->status != NET_ROUTE_OK) {
		printf("%s: %s\n", status_name(r->status), r->error);
		return r->status == NET_ROUTE_TEMPFAIL ? ROUTE_EX_TEMPFAIL : 1;
	}
	if (r->implicit)
		printf("# implicit MX: %s has no MX records\n", domain);
	for (size_t i = 0; i < r->nhosts; i++) {
		const struct net_route_host *h = &r->hosts[i];
		printf("%u %s", h->pref, h->name);
		for (size_t k = 0; k < h->naddrs; k++) {
			char ip[NET_ADDR_TEXT_MAX];
			net_addr_ip((const struct sockaddr *)&h->addrs[k], ip,
				    sizeof(ip));
			printf(" %s", ip);
		}
		if (h->naddrs == 0)
			printf(" -");
		if (h->tempfail)
			printf(" tempfail");
		printf("\n");
	}
	return 0;
}

/* "N" within [1, max] */
static int
parse_count(const char *s, uint64_t max, unsigned *v_r)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v == 0 || v > max)
		return -1;
	*v_r = (unsigned)v;
	return 0;
}

int
tern_route_main(int argc, char **argv, tern_conf_loader *load)
{
	const char *domain = NULL, *config = NULL, *servers = NULL;
	unsigned max_hosts = ROUTE_MAX_HOSTS_DEFAULT;
	unsigned max_addrs = ROUTE_MAX_ADDRS_DEFAULT;
	unsigned timeout_ms = ROUTE_TIMEOUT_MS_DEFAULT;
	struct route_run run = { 0 };
	struct net_dns *dns = NULL;
	struct net_dns_query *q;
	const char *error = NULL;
	bool mx = true;
	int rc;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		bool has_val = i + 1 < argc;

		if (strcmp(a, "--config") == 0 && has_val) {
			config = argv[++i];
		} else if (strcmp(a, "--dns") == 0 && has_val) {
			servers = argv[++i];
		} else if (strcmp(a, "--no-mx") == 0) {
			mx = false;
		} else if (strcmp(a, "--max-hosts") == 0 && has_val) {
			if (parse_count(argv[++i], 1000, &max_hosts) < 0)
				goto usage;
		} else if (strcmp(a, "--max-addrs") == 0 && has_val) {
			if (parse_count(argv[++i], 1000, &max_addrs) < 0)
				goto usage;
		} else if (strcmp(a, "--timeout") == 0 && has_val) {
			if (parse_count(argv[++i], 600000, &timeout_ms) < 0)
				goto usage;
		} else if (a[0] != '-' && domain == NULL) {
			domain = a;
		} else {
			goto usage;
		}
	}
	if (domain == NULL || domain[0] == '\0')
		goto usage;
	if (config != NULL) {
		/* checked now; the resolver settings will come from it once
		 * the configuration has them */
		struct tern_conf *conf = load(config);
		if (conf == NULL)
			return 1;
		conf_free(&conf);
	}
	run.base = event_base_new();
	if (run.base == NULL) {
		fprintf(stderr, "tern: event_base_new failed\n");
		return 1;
	}
	if (net_dns_new(run.base, servers, timeout_ms, ROUTE_TRIES_DEFAULT,
			&dns, &error) < 0) {
		fprintf(stderr, "tern: DNS: %s\n", error);
		event_base_free(run.base);
		/* a bad --dns is a usage error; anything else may pass */
		return servers != NULL ? 2 : ROUTE_EX_TEMPFAIL;
	}
	q = net_dns_route(dns, domain, mx, max_hosts, max_addrs, route_done,
			  &run);
	(void)q;
	event_base_dispatch(run.base);
	TN_ASSERT(run.route != NULL);
	rc = route_print(domain, run.route);
	net_route_free(&run.route);
	net_dns_free(&dns);
	event_base_free(run.base);
	return rc;
usage:
	route_usage();
	return 2;
}

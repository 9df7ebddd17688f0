/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for conf_parse(). Any input either fails with a
 * "fuzz.conf:line: message" error or parses; a parsed configuration must
 * dump to text that parses again and dumps the same, and every user must
 * resolve at the first local domain.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

static char *
dump(const struct tern_conf *conf)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	conf_dump(conf, &b);
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

static void
check_resolve(const struct tern_conf *conf)
{
	for (size_t i = 0; i < conf->nusers; i++) {
		const struct conf_user **users;
		size_t n;
		char *a = xasprintf("%s@%s", conf->users[i].name,
				    conf->domains[0]);
		if (conf_resolve(conf, a, &users, &n) != 1 || n != 1 ||
		    users[0] != &conf->users[i])
			abort();
		free(users);
		free(a);
	}
	for (size_t i = 0; i < conf->naliases; i++) {
		const struct conf_user **users;
		size_t n;
		char *a = xasprintf("%s@%s", conf->aliases[i].name,
				    conf->domains[0]);
		int r = conf_resolve(conf, a, &users, &n);
		/* the parser refused aliases that reach nothing */
		if (r == 0 || (r == 1) != (n > 0))
			abort();
		free(users);
		free(a);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tern_conf *conf, *again;
	char *err, *d1, *d2;

	if (conf_parse("fuzz.conf", (const char *)data, size, &conf,
		       &err) < 0) {
		if (err == NULL || strncmp(err, "fuzz.conf:", 10) != 0)
			abort();
		free(err);
		return 0;
	}
	if (conf->nusers == 0 || conf->ndomains == 0 || conf->nlisteners == 0)
		abort();
	check_resolve(conf);
	d1 = dump(conf);
	if (conf_parse("dump.conf", d1, strlen(d1), &again, &err) < 0)
		abort();
	d2 = dump(again);
	if (strcmp(d1, d2) != 0)
		abort();
	free(d1);
	free(d2);
	conf_free(&again);
	conf_free(&conf);
	return 0;
}

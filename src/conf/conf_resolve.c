/* SPDX-License-Identifier: MIT */
/*
 * conf resolve: a recipient address -> the local users it reaches,
 * through aliases, for RCPT, VRFY and EXPN. Pure lookups in a parsed
 * configuration; no I/O.
 */
#include <string.h>

#include "conf/conf_int.h"

static bool
name_eq(const char *name, const char *s, size_t len)
{
	return strlen(name) == len && ascii_strncasecmp(name, s, len) == 0;
}

bool
conf_is_local_domain_n(const struct tern_conf *conf, const char *d,
		       size_t len)
{
	for (size_t i = 0; i < conf->ndomains; i++)
		if (name_eq(conf->domains[i], d, len))
			return true;
	return false;
}

bool
conf_is_local_domain(const struct tern_conf *conf, const char *domain)
{
	return conf_is_local_domain_n(conf, domain, strlen(domain));
}

void
conf_expansion_init(struct conf_expansion *x, const struct tern_conf *conf)
{
	*x = (struct conf_expansion){ 0 };
	if (conf->naliases > 0)
		x->visited = xcalloc(conf->naliases, sizeof(*x->visited));
}

void
conf_expansion_clear(struct conf_expansion *x)
{
	free(x->users);
	free(x->remotes);
	free(x->locals);
	free(x->visited);
	*x = (struct conf_expansion){ 0 };
}

static void
add_user(struct conf_expansion *x, const struct conf_user *u)
{
	for (size_t i = 0; i < x->nusers; i++)
		if (x->users[i] == u)
			return;
	if (x->nusers == x->cap) {
		x->cap = x->cap == 0 ? 4 : x->cap * 2;
		x->users = xreallocarray(x->users, x->cap, sizeof(*x->users));
	}
	x->users[x->nusers++] = u;
}

static void
add_remote(struct conf_expansion *x, const char *addr)
{
	for (size_t i = 0; i < x->nremotes; i++)
		if (ascii_strcasecmp(x->remotes[i], addr) == 0)
			return;
	if (x->nremotes == x->capremotes) {
		x->capremotes = x->capremotes == 0 ? 4 : x->capremotes * 2;
		x->remotes = xreallocarray(x->remotes, x->capremotes,
					   sizeof(*x->remotes));
	}
	x->remotes[x->nremotes++] = addr;
}

/* an address of a local domain that names no user or alias here: an
 * account, perhaps (the server knows its accounts, conf does not) */
static void
add_local(struct conf_expansion *x, const char *addr)
{
	for (size_t i = 0; i < x->nlocals; i++)
		if (ascii_strcasecmp(x->locals[i], addr) == 0)
			return;
	if (x->nlocals == x->caplocals) {
		x->caplocals = x->caplocals == 0 ? 4 : x->caplocals * 2;
		x->locals = xreallocarray(x->locals, x->caplocals,
					  sizeof(*x->locals));
	}
	x->locals[x->nlocals++] = addr;
}

static bool
is_postmaster(const char *name, size_t len)
{
	return name_eq("postmaster", name, len);
}

static bool
expand(const struct tern_conf *conf, const char *name, size_t len,
       unsigned depth, struct conf_expansion *x)
{
	const struct conf_user *u = conf_find_user(conf, name, len);
	const struct conf_alias *a;
	size_t idx;

	if (u != NULL) {
		add_user(x, u);
		return true;
	}
	a = conf_find_alias(conf, name, len);
	if (a == NULL) {
		/* RFC 5321 §4.5.1: postmaster must exist; without a user or
		 * alias of that name it is the first user */
		if (!is_postmaster(name, len) || conf->nusers == 0)
			return false;
		add_user(x, &conf->users[0]);
		return true;
	}
	if (depth >= CONF_ALIAS_DEPTH_MAX) {
		x->too_deep = true;
		return true;
	}
	/* UNSAFE: a points into conf->aliases */
	idx = (size_t)(a - conf->aliases);
	TN_ASSERT(x->visited != NULL && idx < conf->naliases);
	if (x->visited[idx])
		return true;	/* a loop or a second path: done already */
	x->visited[idx] = true;
	for (size_t i = 0; i < a->ntargets; i++) {
		const char *t = a->targets[i], *at = strrchr(t, '@');
		if (at == NULL) {
			expand(conf, t, strlen(t), depth + 1, x);
		} else if (conf_is_local_domain(conf, at + 1)) {
			/* UNSAFE: at points into t */
			if (!expand(conf, t, (size_t)(at - t), depth + 1, x))
				add_local(x, t);
		} else {
			x->remote = true;
			add_remote(x, t);
		}
	}
	return true;
}

bool
conf_expand(const struct tern_conf *conf, const char *name, size_t len,
	    struct conf_expansion *x)
{
	return expand(conf, name, len, 0, x);
}

/* expands address into x when it is in a local domain; 1, or 0 when the
 * address is not local or names nobody */
static int
resolve(const struct tern_conf *conf, const char *address,
	struct conf_expansion *x)
{
	const char *local = address, *at;
	size_t len = strlen(address), llen;

	if (len >= 2 && address[0] == '<' && address[len - 1] == '>') {
		local++;
		len -= 2;
	}
	at = memchr(local, '@', len);
	if (at != NULL) {
		/* the last '@': a quoted local part may hold one */
		for (const char *p = at; p < local + len; p++)
			if (*p == '@')
				at = p;
		/* UNSAFE: at points into local[0..len) */
		llen = (size_t)(at - local);
		if (!conf_is_local_domain_n(conf, at + 1,
					    len - llen - 1))
			return 0;
	} else {
		/* RFC 5321 §4.5.1: bare "postmaster", in any case */
		llen = len;
		if (!is_postmaster(local, llen))
			return 0;
	}
	/* a quoted local part ("a b"@x) is never a local name */
	if (llen == 0 || local[0] == '"')
		return 0;
	return conf_expand(conf, local, llen, x) ? 1 : 0;
}

int
conf_resolve(const struct tern_conf *conf, const char *address,
	     const struct conf_user ***users_r, size_t *nusers_r)
{
	struct conf_expansion x;
	int r;

	*users_r = NULL;
	*nusers_r = 0;
	conf_expansion_init(&x, conf);
	if (resolve(conf, address, &x) == 0)
		r = 0;
	else if (x.nusers > 0)
		r = 1;
	else
		r = x.remote || x.nlocals > 0 ? -1 : 0;
	if (r == 1) {
		*users_r = x.users;
		*nusers_r = x.nusers;
		x.users = NULL;
	}
	conf_expansion_clear(&x);
	return r;
}

int
conf_resolve_targets(const struct tern_conf *conf, const char *address,
		     struct conf_targets *t_r)
{
	struct conf_expansion x;
	int r = 0;

	memset(t_r, 0, sizeof(*t_r));
	conf_expansion_init(&x, conf);
	if (resolve(conf, address, &x) == 1 &&
	    (x.nusers > 0 || x.nremotes > 0 || x.nlocals > 0)) {
		t_r->users = x.users;
		t_r->nusers = x.nusers;
		t_r->remotes = x.remotes;
		t_r->nremotes = x.nremotes;
		t_r->locals = x.locals;
		t_r->nlocals = x.nlocals;
		x.users = NULL;
		x.remotes = NULL;
		x.locals = NULL;
		r = 1;
	}
	conf_expansion_clear(&x);
	return r;
}

void
conf_targets_clear(struct conf_targets *t)
{
	free(t->users);
	free(t->remotes);
	free(t->locals);
	memset(t, 0, sizeof(*t));
}

/* SPDX-License-Identifier: MIT */
/*
 * conf index: hash tables of user and alias names, so that the parser's
 * checks and conf_resolve() stay fast with many thousands of users.
 * Names compare without regard to ASCII case. Pure: no I/O.
 */
#include <string.h>

#include "conf/conf_int.h"

/* one open-addressing table: slot holds an array index + 1, 0 = empty */
struct conf_names {
	uint32_t *slot;
	size_t cap;		/* a power of two, or 0 */
	size_t n;
};

struct conf_index {
	struct conf_names users, aliases;
};

static uint64_t
hash_name(const char *s, size_t len)
{
	/* FNV-1a over the lower-cased bytes */
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 0x100000001b3ULL;
	}
	return h;
}

static const char *
name_at(const struct tern_conf *conf, bool alias, size_t i)
{
	return alias ? conf->aliases[i].name : conf->users[i].name;
}

static bool
name_eq(const char *name, const char *s, size_t len)
{
	return strlen(name) == len && ascii_strncasecmp(name, s, len) == 0;
}

static void
insert(struct conf_names *t, const struct tern_conf *conf, bool alias,
       size_t idx)
{
	const char *name = name_at(conf, alias, idx);
	size_t mask = t->cap - 1;
	size_t i = (size_t)hash_name(name, strlen(name)) & mask;

	while (t->slot[i] != 0)
		i = (i + 1) & mask;
	/* UNSAFE: add() asserted idx < UINT32_MAX - 1 */
	t->slot[i] = (uint32_t)(idx + 1);
}

static void
add(struct conf_names *t, const struct tern_conf *conf, bool alias,
    size_t idx)
{
	TN_ASSERT(idx < UINT32_MAX - 1);
	/* keep the load at most one half */
	if ((t->n + 1) * 2 > t->cap) {
		uint32_t *old = t->slot;
		size_t oldcap = t->cap;

		t->cap = oldcap == 0 ? 64 : oldcap * 2;
		t->slot = xcalloc(t->cap, sizeof(*t->slot));
		for (size_t i = 0; i < oldcap; i++)
			if (old[i] != 0)
				insert(t, conf, alias, old[i] - 1);
		free(old);
	}
	insert(t, conf, alias, idx);
	t->n++;
}

static bool
find(const struct conf_names *t, const struct tern_conf *conf, bool alias,
     const char *s, size_t len, size_t *idx_r)
{
	size_t mask = t->cap - 1, i;

	if (t->cap == 0)
		return false;
	for (i = (size_t)hash_name(s, len) & mask; t->slot[i] != 0;
	     i = (i + 1) & mask) {
		size_t idx = t->slot[i] - 1;
		if (name_eq(name_at(conf, alias, idx), s, len)) {
			*idx_r = idx;
			return true;
		}
	}
	return false;
}

void
conf_index_add(struct tern_conf *conf, bool alias, size_t idx)
{
	if (conf->index == NULL)
		conf->index = xcalloc(1, sizeof(*conf->index));
	add(alias ? &conf->index->aliases : &conf->index->users, conf, alias,
	    idx);
}

void
conf_index_free(struct conf_index **indexp)
{
	struct conf_index *index = *indexp;

	if (index == NULL)
		return;
	*indexp = NULL;
	free(index->users.slot);
	free(index->aliases.slot);
	free(index);
}

const struct conf_user *
conf_find_user(const struct tern_conf *conf, const char *name, size_t len)
{
	size_t idx;

	if (conf->index != NULL && conf->index->users.n == conf->nusers)
		return find(&conf->index->users, conf, false, name, len, &idx) ?
		       &conf->users[idx] : NULL;
	for (size_t i = 0; i < conf->nusers; i++)
		if (name_eq(conf->users[i].name, name, len))
			return &conf->users[i];
	return NULL;
}

const struct conf_alias *
conf_find_alias(const struct tern_conf *conf, const char *name, size_t len)
{
	size_t idx;

	if (conf->index != NULL && conf->index->aliases.n == conf->naliases)
		return find(&conf->index->aliases, conf, true, name, len,
			    &idx) ? &conf->aliases[idx] : NULL;
	for (size_t i = 0; i < conf->naliases; i++)
		if (name_eq(conf->aliases[i].name, name, len))
			return &conf->aliases[i];
	return NULL;
}

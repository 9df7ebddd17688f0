/* SPDX-License-Identifier: MIT */
/*
 * conf parser: "key = value" lines -> struct tern_conf, then the checks
 * that need the whole file (defaults of repeatable keys, maildirs,
 * alias targets). Pure: the caller reads the file and hands us the text;
 * errors come back as "filename:line: message".
 */
#include <limits.h>
#include <string.h>

#include "conf/conf_int.h"

static const char default_text[] =
	"# tern built-in configuration, used when no file is given:\n"
	"# SMTP on loopback ports above 1024 (2525 receives like port 25,\n"
	"# 2587 and 2465 take authenticated mail like 587 and 465), mail\n"
	"# for localhost kept in the Maildir of the user demo under the\n"
	"# state directory; the account demo@localhost logs in to it.\n"
	"listen = " CONF_LISTEN_DEFAULT "\n"
	"listen = 127.0.0.1:2587 submission\n"
	"listen = 127.0.0.1:2465 submissions\n"
	"domain = " CONF_DOMAIN_DEFAULT "\n"
	"user = demo\n"
	"alias = postmaster: demo\n";

const char *
conf_default_text(void)
{
	return default_text;
}

struct parser {
	struct tern_conf *conf;
	unsigned *seen;		/* per key: line where a scalar was set */
	char *msg;		/* heap message of the first error */
	unsigned line;		/* its line */
};

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int
fail_at(struct parser *ps, unsigned line, char *msg)
{
	ps->line = line;
	ps->msg = msg;
	return -1;
}

static int
parse_line(struct parser *ps, const char *p, size_t n, unsigned line)
{
	const char *hash = memchr(p, '#', n), *eq;
	const struct conf_key *k;
	size_t klen, idx;
	char *value, *msg = NULL;
	int r;

	if (hash != NULL) {
		/* UNSAFE: hash points into p[0..n) */
		n = (size_t)(hash - p);
	}
	while (n > 0 && is_blank(p[0])) {
		p++;
		n--;
	}
	while (n > 0 && is_blank(p[n - 1]))
		n--;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail_at(ps, line, xasprintf("control character "
					"\\x%02x in line", c));
	}
	eq = memchr(p, '=', n);
	if (eq == NULL)
		return fail_at(ps, line, xasprintf("expected key = value"));
	/* UNSAFE: eq points into p[0..n) */
	klen = (size_t)(eq - p);
	while (klen > 0 && is_blank(p[klen - 1]))
		klen--;
	if (klen == 0)
		return fail_at(ps, line, xasprintf("missing key before '='"));
	k = conf_key_find(p, klen);
	if (k == NULL) {
		char *key = xstrndup(p, klen);
		msg = xasprintf("unknown key %s", conf_q(key).s);
		free(key);
		return fail_at(ps, line, msg);
	}
	eq++;
	/* UNSAFE: eq <= p + n, and the value is what follows it */
	n -= (size_t)(eq - p);
	while (n > 0 && is_blank(eq[0])) {
		eq++;
		n--;
	}
	if (n == 0 && !k->empty_ok)
		return fail_at(ps, line, xasprintf("%s: missing value",
						   k->key));
	value = xstrndup(eq, n);
	idx = (size_t)(k - conf_keys);
	if (k->type == CONF_T_LIST) {
		r = k->add(ps->conf, value, line, &msg);
	} else if (ps->seen[idx] != 0) {
		msg = xasprintf("key given twice (first at line %u)",
				ps->seen[idx]);
		r = -1;
	} else {
		r = conf_key_set(k, ps->conf, value, &msg);
		ps->seen[idx] = line;
	}
	free(value);
	if (r < 0) {
		char *full = xasprintf("%s: %s", k->key, msg);
		free(msg);
		return fail_at(ps, line, full);
	}
	return 0;
}

/* an alias target that names a local user or alias: the whole target,
 * or the local part of an address in a local domain */
static bool
local_target(const struct tern_conf *conf, const char *t, size_t *len_r)
{
	const char *at = strrchr(t, '@');

	if (at == NULL) {
		*len_r = strlen(t);
		return true;
	}
	if (!conf_is_local_domain(conf, at + 1))
		return false;
	/* UNSAFE: at points into t */
	*len_r = (size_t)(at - t);
	return true;
}

static int
check_alias(struct parser *ps, const struct conf_alias *a)
{
	struct tern_conf *conf = ps->conf;
	const struct conf_user *u;
	struct conf_expansion x;
	size_t len;
	int r = 0;

	u = conf_find_user(conf, a->name, strlen(a->name));
	if (u != NULL)
		return fail_at(ps, a->line, xasprintf("alias: %s is also a "
				"user (line %u)", a->name, u->line));
	for (size_t i = 0; i < a->ntargets; i++) {
		const char *t = a->targets[i];
		/* an address of a local domain may be an account, which
		 * the server knows and this file does not */
		if (strchr(t, '@') != NULL ||
		    !local_target(conf, t, &len) ||
		    conf_find_user(conf, t, len) != NULL ||
		    conf_find_alias(conf, t, len) != NULL ||
		    (len == 10 && ascii_strncasecmp(t, "postmaster", 10) == 0))
			continue;
		return fail_at(ps, a->line, xasprintf("alias: %s: %s is no "
				"local user or alias", a->name, t));
	}
	conf_expansion_init(&x, conf);
	(void)conf_expand(conf, a->name, strlen(a->name), &x);
	if (x.too_deep)
		r = fail_at(ps, a->line, xasprintf("alias: %s nests deeper "
				"than %d levels", a->name,
				CONF_ALIAS_DEPTH_MAX));
	else if (x.nusers == 0 && !x.remote && x.nlocals == 0)
		r = fail_at(ps, a->line, xasprintf("alias: %s reaches no user "
				"and no address (a loop?)", a->name));
	conf_expansion_clear(&x);
	return r;
}

/* checks that need every line: lastline is the last line of the text */
static int
finish(struct parser *ps, unsigned lastline)
{
	struct tern_conf *conf = ps->conf;

	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		char *value, *msg = NULL;
		int r;

		if (k->type != CONF_T_LIST || k->def == NULL ||
		    k->count(conf) > 0)
			continue;
		value = xstrdup(k->def);
		r = k->add(conf, value, 0, &msg);
		TN_ASSERT(r == 0);
		free(value);
	}
	if (conf->nusers == 0)
		return fail_at(ps, lastline > 0 ? lastline : 1,
			       xasprintf("no user defined"));
	for (size_t i = 0; i < conf->nusers; i++) {
		struct conf_user *u = &conf->users[i];
		if (u->maildir == NULL)
			u->maildir = conf_default_maildir(conf->state_dir,
							  u->name);
	}
	for (size_t i = 0; i < conf->naliases; i++)
		if (check_alias(ps, &conf->aliases[i]) < 0)
			return -1;
	if (conf->smarthost[0] != '\0') {
		char *msg = NULL;
		/* checked when its line was read (conf_check_relay_host) */
		int r = conf_relay_host_parse(conf->smarthost,
					      &conf->smarthost_via, &msg);
		TN_ASSERT(r == 0);
	}
	if (conf->retry_max < conf->retry_min)
		return fail_at(ps, lastline > 0 ? lastline : 1,
			       xasprintf("retry_max is below retry_min"));
	return 0;
}

int
conf_parse(const char *filename, const char *text, size_t len,
	   struct tern_conf **conf_r, char **error_r)
{
	struct parser ps = { 0 };
	unsigned line = 0;
	size_t pos = 0;

	*conf_r = NULL;
	*error_r = NULL;
	if (filename == NULL)
		filename = "(config)";
	ps.conf = xcalloc(1, sizeof(*ps.conf));
	ps.seen = xcalloc(conf_nkeys, sizeof(*ps.seen));
	for (size_t i = 0; i < conf_nkeys; i++)
		if (conf_keys[i].type != CONF_T_LIST)
			conf_key_set_default(&conf_keys[i], ps.conf);
	while (pos < len) {
		const char *p = text + pos, *nl = memchr(p, '\n', len - pos);
		/* UNSAFE: nl points into text[pos..len) */
		size_t n = nl != NULL ? (size_t)(nl - p) : len - pos;

		pos += n + (nl != NULL);
		if (line < UINT_MAX)
			line++;
		if (parse_line(&ps, p, n, line) < 0)
			goto fail;
	}
	if (finish(&ps, line) < 0)
		goto fail;
	free(ps.seen);
	*conf_r = ps.conf;
	return 0;
fail:
	*error_r = xasprintf("%s:%u: %s", filename, ps.line, ps.msg);
	free(ps.msg);
	free(ps.seen);
	conf_free(&ps.conf);
	return -1;
}

void
conf_free(struct tern_conf **confp)
{
	struct tern_conf *conf = *confp;

	if (conf == NULL)
		return;
	*confp = NULL;
	free(conf->hostname);
	free(conf->state_dir);
	free(conf->log);
	free(conf->log_format);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		free(conf->listeners[i].address);
		free(conf->listeners[i].port);
	}
	free(conf->listeners);
	for (size_t i = 0; i < conf->ndomains; i++)
		free(conf->domains[i]);
	free(conf->domains);
	for (size_t i = 0; i < conf->nusers; i++) {
		free(conf->users[i].name);
		free(conf->users[i].maildir);
	}
	free(conf->users);
	for (size_t i = 0; i < conf->naliases; i++)
		conf_alias_clear(&conf->aliases[i]);
	free(conf->aliases);
	free(conf->relay_from);
	free(conf->dns_servers);
	free(conf->smarthost);
	conf_relay_host_clear(&conf->smarthost_via);
	for (size_t i = 0; i < conf->nroutes; i++) {
		free(conf->routes[i].domain);
		conf_relay_host_clear(&conf->routes[i].via);
	}
	free(conf->routes);
	free(conf->relay_tls);
	free(conf->relay_tls_ca_file);
	free(conf->smarthost_tls);
	free(conf->smarthost_user);
	free(conf->smarthost_password_file);
	free(conf->srs_secret);
	free(conf->srs_domain);
	free(conf->tls_cert);
	free(conf->tls_key);
	free(conf->accounts_file);
	free(conf->recipient_delimiter);
	free(conf->auth_mechanisms);
	conf_submit_clear(conf);
	conf_index_free(&conf->index);
	free(conf);
}

/* SPDX-License-Identifier: MIT */
/*
 * conf relay: the keys that say who may relay (relay_from networks),
 * where relayed mail goes (smarthost, per-domain routes) and how it is
 * protected on the way (TLS policies, the smarthost's login). Pure:
 * parsing and matching of text and octets, no I/O (the password file is
 * read by the relay agent).
 */
#include <arpa/inet.h>
#include <string.h>

#include "conf/conf_int.h"

/* ---- relay_from: networks in CIDR notation ----------------------------- */

static void
cidr_mask(struct conf_cidr *c)
{
	unsigned bytes = c->family == 4 ? 4 : 16;

	for (unsigned i = 0; i < bytes; i++) {
		unsigned bits = c->prefix > i * 8 ? c->prefix - i * 8 : 0;
		if (bits >= 8)
			continue;
		c->addr[i] &= (uint8_t)(0xffu << (8 - bits));
	}
}

static int
cidr_parse(const char *text, struct conf_cidr *c, char **msg_r)
{
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t n = slash != NULL ? (size_t)(slash - text) : strlen(text);
	uint64_t prefix;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(addr))
		goto bad;
	memcpy(addr, text, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1)
		c->family = 4;
	else if (inet_pton(AF_INET6, addr, c->addr) == 1)
		c->family = 6;
	else
		goto bad;
	c->prefix = c->family == 4 ? 32 : 128;
	if (slash != NULL) {
		if (parse_u64(slash + 1, &prefix) < 0 || prefix > c->prefix)
			goto bad;
		c->prefix = (unsigned)prefix;
	}
	cidr_mask(c);
	return 0;
bad:
	*msg_r = xasprintf("%s is not an address or a network such as "
			   "192.0.2.0/24 or 2001:db8::/32", conf_q(text).s);
	return -1;
}

int
conf_relay_from_add(struct tern_conf *conf, char *value, unsigned line,
		    char **msg_r)
{
	(void)line;
	for (char *p = value; *p != '\0';) {
		struct conf_cidr c;
		char *f;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		f = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		if (*p != '\0')
			*p++ = '\0';
		if (cidr_parse(f, &c, msg_r) < 0)
			return -1;
		conf->relay_from = xreallocarray(conf->relay_from,
						 conf->nrelay_from + 1,
						 sizeof(*conf->relay_from));
		conf->relay_from[conf->nrelay_from++] = c;
	}
	return 0;
}

void
conf_relay_from_dump(const struct tern_conf *conf, struct buf *out)
{
	if (conf->nrelay_from == 0)
		return;
	buf_append_str(out, "relay_from =");
	for (size_t i = 0; i < conf->nrelay_from; i++) {
		const struct conf_cidr *c = &conf->relay_from[i];
		char text[INET6_ADDRSTRLEN];
		(void)inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr,
				text, sizeof(text));
		buf_printf(out, " %s/%u", text, c->prefix);
	}
	buf_append_str(out, "\n");
}

size_t
conf_relay_from_count(const struct tern_conf *conf)
{
	return conf->nrelay_from;
}

static bool
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xffu << (8 - rest));
	return (a[whole] & m) == (b[whole] & m);
}

bool
conf_relay_allowed(const struct tern_conf *conf, unsigned family,
		   const uint8_t *addr)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
					    0xff, 0xff };

	/* RFC 4291 §2.5.5.2: ::ffff:a.b.c.d is the IPv4 address a.b.c.d */
	if (family == 6 && memcmp(addr, mapped, sizeof(mapped)) == 0) {
		family = 4;
		addr += 12;
	}
	for (size_t i = 0; i < conf->nrelay_from; i++) {
		const struct conf_cidr *c = &conf->relay_from[i];
		if (c->family == family && prefix_eq(addr, c->addr, c->prefix))
			return true;
	}
	return false;
}

/* ---- relay hosts: smarthost and route ---------------------------------- */

void
conf_relay_host_clear(struct conf_relay_host *h)
{
	free(h->host);
	memset(h, 0, sizeof(*h));
}

int
conf_relay_host_parse(const char *text, struct conf_relay_host *h_r,
		      char **msg_r)
{
	const char *p = text, *end, *colon = NULL;
	char *host;
	uint64_t port = 0;
	bool bracket = false;

	memset(h_r, 0, sizeof(*h_r));
	if (*p == '[') {
		bracket = true;
		end = strchr(p, ']');
		if (end == NULL)
			goto bad;
		host = xstrndup(p + 1, (size_t)(end - p - 1));
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0') {
			free(host);
			goto bad;
		}
	} else {
		colon = strchr(p, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			goto bad;	/* IPv6 must be in brackets */
		host = colon != NULL ? xstrndup(p, (size_t)(colon - p)) :
		       xstrdup(p);
	}
	if (colon != NULL && (parse_u64(colon + 1, &port) < 0 || port < 1 ||
			      port > 65535)) {
		free(host);
		goto bad;
	}
	{
		/* RFC 5321 §4.1.3 address literals: [1.2.3.4], [IPv6:...] */
		const char *h = host;
		if (bracket && ascii_strncasecmp(h, "IPv6:", 5) == 0)
			h += 5;
		bool ok = conf_is_domain(h) ||
			  (bracket && (conf_is_ipv4(h) || conf_is_ipv6(h)));
		if (!ok) {
			free(host);
			goto bad;
		}
		if (h != host) {
			char *v6 = xstrdup(h);
			free(host);
			host = v6;
		}
	}
	conf_lower(host);
	h_r->host = host;
	h_r->port = (unsigned)port;
	h_r->mx = !bracket;
	return 0;
bad:
	*msg_r = xasprintf("%s is not host, host:port, [host] or [host]:port",
			   conf_q(text).s);
	return -1;
}

int
conf_check_relay_host(char *value, char **msg_r)
{
	struct conf_relay_host h;

	if (value[0] == '\0')
		return 0;
	if (conf_relay_host_parse(value, &h, msg_r) < 0)
		return -1;
	conf_relay_host_clear(&h);
	return 0;
}

int
conf_check_domain_or_empty(char *value, char **msg_r)
{
	if (value[0] != '\0' && !conf_is_domain(value)) {
		*msg_r = xasprintf("%s is not a domain name", conf_q(value).s);
		return -1;
	}
	conf_lower(value);
	return 0;
}

/* ---- TLS policies ------------------------------------------------------- */

static const char *const tls_names[] = {
	[CONF_TLS_DEFAULT] = "default",
	[CONF_TLS_NONE] = "none",
	[CONF_TLS_MAY] = "may",
	[CONF_TLS_ENCRYPT] = "encrypt",
	[CONF_TLS_VERIFY] = "verify",
};

const char *
conf_tls_policy_name(enum conf_tls_policy p)
{
	if ((size_t)p >= sizeof(tls_names) / sizeof(tls_names[0]))
		return "?";
	return tls_names[p];
}

int
conf_tls_policy_parse(const char *name, enum conf_tls_policy *p_r)
{
	for (size_t i = CONF_TLS_NONE;
	     i < sizeof(tls_names) / sizeof(tls_names[0]); i++) {
		if (ascii_strcasecmp(name, tls_names[i]) == 0) {
			*p_r = (enum conf_tls_policy)i;
			return 0;
		}
	}
	return -1;
}

int
conf_check_tls_policy(char *value, char **msg_r)
{
	enum conf_tls_policy p;

	if (conf_tls_policy_parse(value, &p) < 0) {
		*msg_r = xasprintf("%s is not none, may, encrypt or verify",
				   conf_q(value).s);
		return -1;
	}
	conf_lower(value);
	return 0;
}

int
conf_check_abs_path_or_empty(char *value, char **msg_r)
{
	if (value[0] != '\0' && value[0] != '/') {
		*msg_r = xasprintf("%s is not an absolute path",
				   conf_q(value).s);
		return -1;
	}
	return 0;
}

bool
conf_via_smarthost(const struct tern_conf *conf,
		   const struct conf_relay_host *via)
{
	return via != NULL && via == &conf->smarthost_via;
}

/* the policy of a checked key: its value, or the default if unset */
static enum conf_tls_policy
key_policy(const char *value, const char *def)
{
	enum conf_tls_policy p;

	if (value != NULL && conf_tls_policy_parse(value, &p) == 0)
		return p;
	if (conf_tls_policy_parse(def, &p) == 0)
		return p;
	return CONF_TLS_MAY;
}

enum conf_tls_policy
conf_relay_tls(const struct tern_conf *conf, const struct conf_relay_host *via)
{
	if (via != NULL && via->tls != CONF_TLS_DEFAULT)
		return via->tls;
	if (conf_via_smarthost(conf, via))
		return key_policy(conf->smarthost_tls,
				  CONF_SMARTHOST_TLS_DEFAULT);
	return key_policy(conf->relay_tls, CONF_RELAY_TLS_DEFAULT);
}

/* ---- routes ------------------------------------------------------------- */

/* the options after a route's host: "tls=verify" */
static int
route_options(char *p, struct conf_relay_host *via, char **msg_r)
{
	while (*p != '\0') {
		char *opt;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		opt = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
		if (ascii_strncasecmp(opt, "tls=", 4) == 0) {
			if (via->tls != CONF_TLS_DEFAULT) {
				*msg_r = xasprintf("tls= given twice");
				return -1;
			}
			if (conf_tls_policy_parse(opt + 4, &via->tls) < 0) {
				*msg_r = xasprintf("%s is not none, may, "
						   "encrypt or verify",
						   conf_q(opt + 4).s);
				return -1;
			}
			continue;
		}
		*msg_r = xasprintf("unknown route option %s (expected: "
				   "tls=none|may|encrypt|verify)",
				   conf_q(opt).s);
		return -1;
	}
	return 0;
}

int
conf_route_add(struct tern_conf *conf, char *value, unsigned line,
	       char **msg_r)
{
	struct conf_route r = { .line = line };
	char *sp = value, *opts;

	while (*sp != '\0' && *sp != ' ' && *sp != '\t')
		sp++;
	if (*sp == '\0') {
		*msg_r = xasprintf("expected: domain host[:port] "
				   "[tls=policy]");
		return -1;
	}
	*sp++ = '\0';
	while (*sp == ' ' || *sp == '\t')
		sp++;
	/* the host ends at a blank; options may follow */
	opts = sp;
	while (*opts != '\0' && *opts != ' ' && *opts != '\t')
		opts++;
	if (*opts != '\0')
		*opts++ = '\0';
	if (!conf_is_domain(value)) {
		*msg_r = xasprintf("%s is not a domain name", conf_q(value).s);
		return -1;
	}
	conf_lower(value);
	for (size_t i = 0; i < conf->nroutes; i++) {
		if (strcmp(conf->routes[i].domain, value) == 0) {
			*msg_r = xasprintf("%s given twice (first at line %u)",
					   value, conf->routes[i].line);
			return -1;
		}
	}
	if (conf_relay_host_parse(sp, &r.via, msg_r) < 0)
		return -1;
	if (route_options(opts, &r.via, msg_r) < 0) {
		conf_relay_host_clear(&r.via);
		return -1;
	}
	r.domain = xstrdup(value);
	conf->routes = xreallocarray(conf->routes, conf->nroutes + 1,
				     sizeof(*conf->routes));
	conf->routes[conf->nroutes++] = r;
	return 0;
}

static void
relay_host_dump(const struct conf_relay_host *h, struct buf *out)
{
	bool v6 = strchr(h->host, ':') != NULL;

	if (h->mx)
		buf_append_str(out, h->host);
	else
		buf_printf(out, "[%s%s]", v6 ? "IPv6:" : "", h->host);
	if (h->port != 0)
		buf_printf(out, ":%u", h->port);
}

void
conf_route_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->nroutes; i++) {
		const struct conf_relay_host *via = &conf->routes[i].via;

		buf_printf(out, "route = %s ", conf->routes[i].domain);
		relay_host_dump(via, out);
		if (via->tls != CONF_TLS_DEFAULT)
			buf_printf(out, " tls=%s",
				   conf_tls_policy_name(via->tls));
		buf_append_str(out, "\n");
	}
}

size_t
conf_route_count(const struct tern_conf *conf)
{
	return conf->nroutes;
}

const struct conf_relay_host *
conf_route_for(const struct tern_conf *conf, const char *domain)
{
	for (size_t i = 0; i < conf->nroutes; i++) {
		if (ascii_strcasecmp(conf->routes[i].domain, domain) == 0)
			return &conf->routes[i].via;
	}
	if (conf->smarthost_via.host != NULL)
		return &conf->smarthost_via;
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * conf relay: the keys that say who may relay (relay_from networks) and
 * where relayed mail goes (smarthost, per-domain routes). Pure: parsing
 * and matching of text and octets, no I/O.
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

int
conf_route_add(struct tern_conf *conf, char *value, unsigned line,
	       char **msg_r)
{
	struct conf_route r = { .line = line };
	char *sp = value;

	while (*sp != '\0' && *sp != ' ' && *sp != '\t')
		sp++;
	if (*sp == '\0') {
		*msg_r = xasprintf("expected: domain host[:port]");
		return -1;
	}
	*sp++ = '\0';
	while (*sp == ' ' || *sp == '\t')
		sp++;
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
		buf_printf(out, "route = %s ", conf->routes[i].domain);
		relay_host_dump(&conf->routes[i].via, out);
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

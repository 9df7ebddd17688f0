/* SPDX-License-Identifier: MIT */
/*
 * conf submission: the repeatable keys of TLS and authenticated sending,
 * tls_sni (a certificate per server name) and send_as (more sender
 * addresses for an account). Pure: the files named are not opened here.
 */
#include <string.h>

#include "conf/conf_int.h"

/* splits value into at most max blank-separated fields, in place */
static size_t
fields(char *value, char **f, size_t max)
{
	size_t n = 0;
	char *p = value;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (n == max)
			return max + 1;
		f[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* a host name, or "*." and a host name */
static bool
sni_name_ok(const char *name)
{
	const char *p = name;

	if (p[0] == '*' && p[1] == '.')
		p += 2;
	if (*p == '\0' || strlen(p) > 253)
		return false;
	for (; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.'))
			return false;
	return true;
}

int
conf_tls_sni_add(struct tern_conf *conf, char *value, unsigned line,
		 char **msg_r)
{
	char *f[4];
	struct conf_tls_sni *s;

	if (fields(value, f, 3) != 3) {
		*msg_r = xasprintf("expected name certificate-file key-file");
		return -1;
	}
	lower(f[0]);
	if (!sni_name_ok(f[0])) {
		*msg_r = xasprintf("%s is not a host name or *.domain",
				   conf_q(f[0]).s);
		return -1;
	}
	conf->tls_sni = xreallocarray(conf->tls_sni, conf->ntls_sni + 1,
				      sizeof(*conf->tls_sni));
	s = &conf->tls_sni[conf->ntls_sni++];
	s->name = xstrdup(f[0]);
	s->cert = xstrdup(f[1]);
	s->key = xstrdup(f[2]);
	s->line = line;
	return 0;
}

void
conf_tls_sni_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->ntls_sni; i++)
		buf_printf(out, "tls_sni = %s %s %s\n", conf->tls_sni[i].name,
			   conf->tls_sni[i].cert, conf->tls_sni[i].key);
}

size_t
conf_tls_sni_count(const struct tern_conf *conf)
{
	return conf->ntls_sni;
}

int
conf_send_as_add(struct tern_conf *conf, char *value, unsigned line,
		 char **msg_r)
{
	char *f[3];
	struct conf_send_as *s;
	const char *at;

	if (fields(value, f, 2) != 2) {
		*msg_r = xasprintf("expected account address-or-@domain");
		return -1;
	}
	at = strrchr(f[0], '@');
	if (at == NULL || at == f[0] || at[1] == '\0') {
		*msg_r = xasprintf("%s is not an account address",
				   conf_q(f[0]).s);
		return -1;
	}
	at = strrchr(f[1], '@');
	if (at == NULL || at[1] == '\0') {
		*msg_r = xasprintf("%s is neither an address nor @domain",
				   conf_q(f[1]).s);
		return -1;
	}
	lower(strrchr(f[0], '@'));
	lower(strrchr(f[1], '@'));
	conf->send_as = xreallocarray(conf->send_as, conf->nsend_as + 1,
				      sizeof(*conf->send_as));
	s = &conf->send_as[conf->nsend_as++];
	s->account = xstrdup(f[0]);
	s->address = xstrdup(f[1]);
	s->line = line;
	return 0;
}

void
conf_send_as_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->nsend_as; i++)
		buf_printf(out, "send_as = %s %s\n", conf->send_as[i].account,
			   conf->send_as[i].address);
}

size_t
conf_send_as_count(const struct tern_conf *conf)
{
	return conf->nsend_as;
}

void
conf_submit_clear(struct tern_conf *conf)
{
	for (size_t i = 0; i < conf->ntls_sni; i++) {
		free(conf->tls_sni[i].name);
		free(conf->tls_sni[i].cert);
		free(conf->tls_sni[i].key);
	}
	free(conf->tls_sni);
	for (size_t i = 0; i < conf->nsend_as; i++) {
		free(conf->send_as[i].account);
		free(conf->send_as[i].address);
	}
	free(conf->send_as);
}

/*
 * send_as: may the account use this envelope sender? Addresses compare
 * with the domain case-insensitively; "@domain" grants the whole domain.
 */
bool
conf_send_as_allowed(const struct tern_conf *conf, const char *account,
		     const char *sender)
{
	const char *sat = strrchr(sender, '@');

	for (size_t i = 0; i < conf->nsend_as; i++) {
		const struct conf_send_as *s = &conf->send_as[i];
		if (ascii_strcasecmp(s->account, account) != 0)
			continue;
		if (s->address[0] == '@') {
			if (sat != NULL &&
			    ascii_strcasecmp(s->address + 1, sat + 1) == 0)
				return true;
		} else if (ascii_strcasecmp(s->address, sender) == 0) {
			return true;
		}
	}
	return false;
}

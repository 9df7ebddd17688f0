/* SPDX-License-Identifier: MIT */
/*
 * conf table: every configuration key with its type, default, limits,
 * field and documentation, and the item parsers of the keys that repeat
 * (listen, domain, user, alias). The parser, the defaults, conf_dump()
 * and the example configuration (etc/tern.conf) all come from this one
 * table. Pure: no I/O.
 */
#include <stddef.h>
#include <string.h>

#include "conf/conf_int.h"

static const char *const role_names[] = {
	[CONF_ROLE_MX] = "mx",
	[CONF_ROLE_SUBMISSION] = "submission",
	[CONF_ROLE_SUBMISSIONS] = "submissions",
};

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* splits s in place at runs of blanks; stores at most max fields and
 * returns how many there are */
static size_t
split_fields(char *s, char **f, size_t max)
{
	size_t n = 0;

	while (*s != '\0') {
		while (is_space(*s))
			*s++ = '\0';
		if (*s == '\0')
			break;
		if (n < max)
			f[n] = s;
		n++;
		while (*s != '\0' && !is_space(*s))
			s++;
	}
	return n;
}

/* ---- scalar checks ---------------------------------------------------- */

static int
check_hostname(char *value, char **msg_r)
{
	if (value[0] != '\0' && !conf_is_domain(value)) {
		*msg_r = xasprintf("%s is not a domain name", conf_q(value).s);
		return -1;
	}
	return 0;
}

static int
check_log(char *value, char **msg_r)
{
	if (ascii_strcasecmp(value, "stderr") == 0 ||
	    ascii_strcasecmp(value, "syslog") == 0) {
		conf_lower(value);
		return 0;
	}
	if (value[0] != '/') {
		*msg_r = xasprintf("%s is not stderr, syslog or an absolute "
				   "path", conf_q(value).s);
		return -1;
	}
	return 0;
}

static int
check_log_format(char *value, char **msg_r)
{
	if (ascii_strcasecmp(value, "text") != 0 &&
	    ascii_strcasecmp(value, "json") != 0) {
		*msg_r = xasprintf("%s is not text or json", conf_q(value).s);
		return -1;
	}
	conf_lower(value);
	return 0;
}

/* ---- listen ------------------------------------------------------------ */

static int
parse_port(const char *s, char **port_r)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v < 1 || v > 65535)
		return -1;
	*port_r = xasprintf("%u", (unsigned)v);
	return 0;
}

static int
listen_add(struct tern_conf *conf, char *value, unsigned line, char **msg_r)
{
	char *f[3], *addr, *port_text, *sep;
	struct conf_listener l = { .role = CONF_ROLE_MX, .line = line };
	size_t n = split_fields(value, f, 3);

	if (n < 1 || n > 3) {
		*msg_r = xasprintf("expected address:port [role] "
				   "[sessions=N]");
		return -1;
	}
	/* sessions=N: this listener's own limit, below sessions_max */
	if (n >= 2 && strncmp(f[n - 1], "sessions=", 9) == 0) {
		uint64_t v;
		if (parse_u64(f[n - 1] + 9, &v) < 0 || v < 1 ||
		    v > CONF_SESSIONS_MAX_MAX) {
			*msg_r = xasprintf("%s is not sessions=N with N from 1 "
					   "to %u", conf_q(f[n - 1]).s,
					   CONF_SESSIONS_MAX_MAX);
			return -1;
		}
		l.sessions_max = (unsigned)v;
		n--;
	}
	if (n == 3) {
		*msg_r = xasprintf("expected address:port [role] "
				   "[sessions=N]");
		return -1;
	}
	addr = f[0];
	if (addr[0] == '[') {
		sep = strchr(addr, ']');
		if (sep == NULL || sep[1] != ':') {
			*msg_r = xasprintf("%s is not [IPv6]:port",
					   conf_q(f[0]).s);
			return -1;
		}
		*sep = '\0';
		addr++;
		port_text = sep + 2;
		if (!conf_is_ipv6(addr)) {
			*msg_r = xasprintf("%s is not an IPv6 address",
					   conf_q(addr).s);
			return -1;
		}
	} else {
		sep = strrchr(addr, ':');
		if (sep == NULL) {
			*msg_r = xasprintf("%s has no port (use address:port)",
					   conf_q(addr).s);
			return -1;
		}
		*sep = '\0';
		port_text = sep + 1;
		if (strchr(addr, ':') != NULL) {
			*msg_r = xasprintf("IPv6 addresses go in brackets, as "
					   "in [::1]:2525");
			return -1;
		}
		if (strcmp(addr, "*") != 0 &&
		    ascii_strcasecmp(addr, "localhost") != 0 &&
		    !conf_is_ipv4(addr)) {
			*msg_r = xasprintf("address %s is not an IPv4 address, "
					   "[IPv6], * or localhost",
					   conf_q(addr).s);
			return -1;
		}
	}
	if (parse_port(port_text, &l.port) < 0) {
		*msg_r = xasprintf("port %s is not a number from 1 to 65535",
				   conf_q(port_text).s);
		return -1;
	}
	if (n == 2) {
		size_t r;
		for (r = 0; r < sizeof(role_names) / sizeof(role_names[0]); r++)
			if (ascii_strcasecmp(f[1], role_names[r]) == 0)
				break;
		if (r == sizeof(role_names) / sizeof(role_names[0])) {
			*msg_r = xasprintf("role %s is not mx, submission or "
					   "submissions", conf_q(f[1]).s);
			free(l.port);
			return -1;
		}
		l.role = (enum conf_role)r;
	}
	l.address = xstrdup(addr);
	conf_lower(l.address);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct conf_listener *o = &conf->listeners[i];
		if (strcmp(o->address, l.address) == 0 &&
		    strcmp(o->port, l.port) == 0) {
			*msg_r = xasprintf("%s%s%s:%s given twice (first at "
					   "line %u)",
					   strchr(o->address, ':') ? "[" : "",
					   o->address,
					   strchr(o->address, ':') ? "]" : "",
					   o->port, o->line);
			free(l.address);
			free(l.port);
			return -1;
		}
	}
	conf->listeners = xreallocarray(conf->listeners, conf->nlisteners + 1,
					sizeof(*conf->listeners));
	conf->listeners[conf->nlisteners++] = l;
	return 0;
}

static void
listen_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct conf_listener *l = &conf->listeners[i];
		bool v6 = strchr(l->address, ':') != NULL;
		buf_printf(out, "listen = %s%s%s:%s %s", v6 ? "[" : "",
			   l->address, v6 ? "]" : "", l->port,
			   role_names[l->role]);
		if (l->sessions_max > 0)
			buf_printf(out, " sessions=%u", l->sessions_max);
		buf_append_str(out, "\n");
	}
}

static size_t
listen_count(const struct tern_conf *conf)
{
	return conf->nlisteners;
}

/* ---- domain ------------------------------------------------------------ */

static int
domain_add(struct tern_conf *conf, char *value, unsigned line, char **msg_r)
{
	(void)line;
	if (!conf_is_domain(value)) {
		*msg_r = xasprintf("%s is not a domain name", conf_q(value).s);
		return -1;
	}
	conf_lower(value);
	if (conf_is_local_domain(conf, value)) {
		*msg_r = xasprintf("%s given twice", conf_q(value).s);
		return -1;
	}
	conf->domains = xreallocarray(conf->domains, conf->ndomains + 1,
				      sizeof(*conf->domains));
	conf->domains[conf->ndomains++] = xstrdup(value);
	return 0;
}

static void
domain_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->ndomains; i++)
		buf_printf(out, "domain = %s\n", conf->domains[i]);
}

static size_t
domain_count(const struct tern_conf *conf)
{
	return conf->ndomains;
}

/* ---- user -------------------------------------------------------------- */

char *
conf_default_maildir(const char *state_dir, const char *name)
{
	size_t n = strlen(state_dir);
	bool slash = n > 0 && state_dir[n - 1] == '/';

	return xasprintf("%s%smail/%s/Maildir", state_dir, slash ? "" : "/",
			 name);
}

static int
user_add(struct tern_conf *conf, char *value, unsigned line, char **msg_r)
{
	char *name = value, *path = value;
	const struct conf_user *o;

	while (*path != '\0' && !is_space(*path))
		path++;
	if (*path != '\0') {
		*path++ = '\0';
		while (is_space(*path))
			path++;
	}
	conf_lower(name);
	if (!conf_is_local_name(name)) {
		*msg_r = xasprintf("%s is not a user name (letters, digits and "
				   ". _ + -, at most 64)", conf_q(name).s);
		return -1;
	}
	if (*path != '\0' && *path != '/') {
		*msg_r = xasprintf("maildir %s is not an absolute path",
				   conf_q(path).s);
		return -1;
	}
	o = conf_find_user(conf, name, strlen(name));
	if (o != NULL) {
		*msg_r = xasprintf("%s given twice (first at line %u)", name,
				   o->line);
		return -1;
	}
	conf->users = xreallocarray(conf->users, conf->nusers + 1,
				    sizeof(*conf->users));
	conf->users[conf->nusers++] = (struct conf_user){
		.name = xstrdup(name),
		/* NULL until conf_parse() knows state_dir */
		.maildir = *path != '\0' ? xstrdup(path) : NULL,
		.line = line,
	};
	conf_index_add(conf, false, conf->nusers - 1);
	return 0;
}

static void
user_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->nusers; i++) {
		const struct conf_user *u = &conf->users[i];
		char *def = conf_default_maildir(conf->state_dir, u->name);
		/* the default stays implicit: with a relative state_dir it
		 * is relative, which a maildir given here may not be */
		if (strcmp(def, u->maildir) == 0)
			buf_printf(out, "user = %s\n", u->name);
		else
			buf_printf(out, "user = %s %s\n", u->name, u->maildir);
		free(def);
	}
}

static size_t
user_count(const struct tern_conf *conf)
{
	return conf->nusers;
}

/* ---- alias ------------------------------------------------------------- */

static bool
is_atext(char c)
{
	/* RFC 5322 §3.2.3 atext ('#' cannot occur: it starts a comment) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c);
}

/* an address elsewhere: a dot-atom local part, '@', a domain */
static bool
is_address(char *s)
{
	char *at = strrchr(s, '@');
	size_t n;

	if (at == NULL || !conf_is_domain(at + 1))
		return false;
	/* UNSAFE: at points into s */
	n = (size_t)(at - s);
	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' ? s[i + 1] == '.' : !is_atext(s[i]))
			return false;
	}
	conf_lower(at + 1);
	return true;
}

static void
alias_free_targets(struct conf_alias *a)
{
	for (size_t i = 0; i < a->ntargets; i++)
		free(a->targets[i]);
	free(a->targets);
}

static int
alias_add(struct tern_conf *conf, char *value, unsigned line, char **msg_r)
{
	struct conf_alias a = { .line = line };
	const struct conf_alias *o;
	char *p = value, *f;
	size_t n;

	while (*p != '\0' && !is_space(*p) && *p != ':' && *p != ',')
		p++;
	/* UNSAFE: p points into value */
	n = (size_t)(p - value);
	while (is_space(*p))
		p++;
	if (*p == ':')
		p++;
	a.name = xstrndup(value, n);
	conf_lower(a.name);
	if (!conf_is_local_name(a.name)) {
		*msg_r = xasprintf("%s is not an alias name (letters, digits "
				   "and . _ + -, at most 64)",
				   conf_q(a.name).s);
		goto fail;
	}
	for (;;) {
		while (is_space(*p) || *p == ',')
			p++;
		if (*p == '\0')
			break;
		f = p;
		while (*p != '\0' && !is_space(*p) && *p != ',')
			p++;
		a.targets = xreallocarray(a.targets, a.ntargets + 1,
					  sizeof(*a.targets));
		/* UNSAFE: p points into value, after f */
		a.targets[a.ntargets++] = xstrndup(f, (size_t)(p - f));
		f = a.targets[a.ntargets - 1];
		if (strchr(f, '@') == NULL) {
			conf_lower(f);
			if (!conf_is_local_name(f)) {
				*msg_r = xasprintf("target %s is not a local "
						   "name or an address",
						   conf_q(f).s);
				goto fail;
			}
		} else if (!is_address(f)) {
			*msg_r = xasprintf("target %s is not an address",
					   conf_q(f).s);
			goto fail;
		}
	}
	if (a.ntargets == 0) {
		*msg_r = xasprintf("%s has no targets (use name: target, ...)",
				   a.name);
		goto fail;
	}
	o = conf_find_alias(conf, a.name, strlen(a.name));
	if (o != NULL) {
		*msg_r = xasprintf("%s given twice (first at line %u)", a.name,
				   o->line);
		goto fail;
	}
	conf->aliases = xreallocarray(conf->aliases, conf->naliases + 1,
				      sizeof(*conf->aliases));
	conf->aliases[conf->naliases++] = a;
	conf_index_add(conf, true, conf->naliases - 1);
	return 0;
fail:
	free(a.name);
	alias_free_targets(&a);
	return -1;
}

static void
alias_dump(const struct tern_conf *conf, struct buf *out)
{
	for (size_t i = 0; i < conf->naliases; i++) {
		const struct conf_alias *a = &conf->aliases[i];
		buf_printf(out, "alias = %s:", a->name);
		for (size_t j = 0; j < a->ntargets; j++)
			buf_printf(out, "%s %s", j > 0 ? "," : "",
				   a->targets[j]);
		buf_append_str(out, "\n");
	}
}

static size_t
alias_count(const struct tern_conf *conf)
{
	return conf->naliases;
}

void
conf_alias_clear(struct conf_alias *a)
{
	free(a->name);
	alias_free_targets(a);
}

/* recipient_delimiter: characters that may start an address extension */
static int
check_delimiter(char *value, char **msg_r)
{
	for (const char *p = value; *p != '\0'; p++)
		if (strchr("+-_=.", *p) == NULL) {
			*msg_r = xasprintf("%s is not one of + - _ = .",
					   conf_q((char[]){ *p, '\0' }).s);
			return -1;
		}
	return 0;
}

/* auth_mechanisms: the names the SASL module knows (sasl.h) */
static int
check_auth_mechanisms(char *value, char **msg_r)
{
	static const char *const known[] = {
		"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256",
	};
	char *copy = xstrdup(value), *save = NULL;
	int r = 0;

	for (char *w = strtok_r(copy, " \t", &save); w != NULL;
	     w = strtok_r(NULL, " \t", &save)) {
		size_t i;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (ascii_strcasecmp(w, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			*msg_r = xasprintf("unknown mechanism %s (PLAIN, LOGIN, "
					   "CRAM-MD5 or SCRAM-SHA-256)",
					   conf_q(w).s);
			r = -1;
			break;
		}
	}
	free(copy);
	return r;
}

/* ---- the table --------------------------------------------------------- */

#define OFF(f) offsetof(struct tern_conf, f)

const struct conf_key conf_keys[] = {
	{ .key = "hostname", .type = CONF_T_STRING, .empty_ok = true,
	  .def = CONF_HOSTNAME_DEFAULT, .offset = OFF(hostname),
	  .check = check_hostname, .example = "mx.example.org",
	  .doc = "Name this server gives in its greeting, its EHLO reply and "
		 "Received: header fields (RFC 5321 §4.1.1.1, §4.4). "
		 "Empty, the default: the system's host name." },
	{ .key = "state_dir", .type = CONF_T_STRING,
	  .def = CONF_STATE_DIR_DEFAULT, .offset = OFF(state_dir),
	  .example = "/var/lib/tern",
	  .doc = "Directory for the mail queue and the default Maildirs. "
		 "A relative path is taken from the directory tern starts "
		 "in. Default: " CONF_STATE_DIR_DEFAULT "." },
	{ .key = "log", .type = CONF_T_STRING, .def = CONF_LOG_DEFAULT,
	  .offset = OFF(log), .check = check_log,
	  .doc = "Where log lines go: stderr, syslog or the absolute path "
		 "of a file to append to (SIGUSR1 reopens it, for log "
		 "rotation)." },
	{ .key = "log_level", .type = CONF_T_LOG_LEVEL,
	  .defnum = CONF_LOG_LEVEL_DEFAULT, .offset = OFF(log_level),
	  .doc = "The least severe events logged: debug, info, warn or "
		 "error." },
	{ .key = "listen", .type = CONF_T_LIST, .def = CONF_LISTEN_DEFAULT,
	  .add = listen_add, .dump = listen_dump, .count = listen_count,
	  .example = "*:25 mx\n*:587 submission\n*:465 submissions",
	  .doc = "Where to accept SMTP connections: address:port [role]. "
		 "One line per listener. The address is an IPv4 address, "
		 "an IPv6 address in brackets ([::1]:25), * for every IPv4 "
		 "and IPv6 address (IPv4 only, with a warning, on a machine "
		 "without IPv6), or localhost (its loopback addresses). The "
		 "role says what the listener is "
		 "for: mx (the default; port 25) receives mail for the local "
		 "domains from anyone, and offers STARTTLS but no AUTH; "
		 "submission (port 587, or 2525 where 587 is blocked) is for "
		 "mail clients: STARTTLS, then AUTH, which is required before "
		 "MAIL; submissions (port 465) is the same over implicit TLS "
		 "(RFC 8314). A last field sessions=N limits the sessions "
		 "of that listener (sessions_max still counts them all). "
		 "Without a listen line: " CONF_LISTEN_DEFAULT "." },
	{ .key = "domain", .type = CONF_T_LIST, .def = CONF_DOMAIN_DEFAULT,
	  .add = domain_add, .dump = domain_dump, .count = domain_count,
	  .example = "example.org\nexample.net",
	  .doc = "A domain this server receives mail for; one line per "
		 "domain. Without a domain line: " CONF_DOMAIN_DEFAULT "." },
	{ .key = "user", .type = CONF_T_LIST,
	  .add = user_add, .dump = user_dump, .count = user_count,
	  .example = "alice\nbob /home/bob/Maildir",
	  .doc = "A local user: name [maildir]. One line per user; at least "
		 "one is needed. The name is the local part of the user's "
		 "addresses, compared without regard to case: letters, "
		 "digits, dots, hyphens, underscores and plus signs. The "
		 "Maildir must be an absolute path; it defaults to "
		 "<state_dir>/mail/<name>/Maildir." },
	{ .key = "alias", .type = CONF_T_LIST,
	  .add = alias_add, .dump = alias_dump, .count = alias_count,
	  .example = "postmaster: alice\nabuse: postmaster\n"
		     "team: alice, bob, carol@example.com",
	  .doc = "An alias: name: target, target ... Mail to the name goes to "
		 "every target: a user, another alias, or an address "
		 "elsewhere. One line per alias. "
		 "An alias may not have the name of a user. Mail for "
		 "postmaster (RFC 5321 §4.5.1) goes to the first user unless "
		 "a user or an alias has that name." },
	{ .key = "size_max", .type = CONF_T_SIZE,
	  .defnum = CONF_SIZE_MAX_DEFAULT, .min = CONF_SIZE_MAX_MIN,
	  .max = CONF_SIZE_MAX_MAX, .offset = OFF(size_max),
	  .doc = "Largest message accepted, in octets, announced with the "
		 "EHLO keyword SIZE (RFC 1870). K, M and G multiply by "
		 "1024, 1024^2 and 1024^3. From 1K to 2G." },
	{ .key = "rcpt_max", .type = CONF_T_UINT,
	  .defnum = CONF_RCPT_MAX_DEFAULT, .min = CONF_RCPT_MAX_MIN,
	  .max = CONF_RCPT_MAX_MAX, .offset = OFF(rcpt_max),
	  .doc = "Most recipients of one message. RFC 5321 §4.5.3.1.8 "
		 "requires at least 100. From 100 to 100000." },
	{ .key = "errors_max", .type = CONF_T_UINT,
	  .defnum = CONF_ERRORS_MAX_DEFAULT, .min = CONF_ERRORS_MAX_MIN,
	  .max = CONF_ERRORS_MAX_MAX, .offset = OFF(errors_max),
	  .doc = "Protocol errors a client may make in one session before "
		 "tern replies 421 and closes it. From 1 to 1000." },
	{ .key = "sessions_max", .type = CONF_T_UINT,
	  .defnum = CONF_SESSIONS_MAX_DEFAULT, .min = CONF_SESSIONS_MAX_MIN,
	  .max = CONF_SESSIONS_MAX_MAX, .offset = OFF(sessions_max),
	  .doc = "Most SMTP sessions at once; clients beyond it get 421. "
		 "From 1 to 1000000." },
	{ .key = "vrfy", .type = CONF_T_BOOL, .defnum = CONF_VRFY_DEFAULT,
	  .offset = OFF(vrfy),
	  .doc = "Answer VRFY for local users: yes or no. Off by default, "
		 "since it helps harvest addresses (RFC 5321 §7.3)." },
	{ .key = "expn", .type = CONF_T_BOOL, .defnum = CONF_EXPN_DEFAULT,
	  .offset = OFF(expn),
	  .doc = "Answer EXPN with the members of aliases: yes or no. Off "
		 "by default (RFC 5321 §7.3)." },
	{ .key = "timeout_command", .type = CONF_T_DURATION,
	  .defnum = CONF_TIMEOUT_COMMAND_DEFAULT, .min = CONF_TIMEOUT_MIN,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(timeout_command),
	  .doc = "How long to wait for a client's next command, and for a "
		 "client to take the replies it is sent. RFC 5321 "
		 "§4.5.3.2.7 asks for at least 5 minutes. Seconds, or a "
		 "number with s, m, h or d. From 1s to 1h." },
	{ .key = "timeout_data", .type = CONF_T_DURATION,
	  .defnum = CONF_TIMEOUT_DATA_DEFAULT, .min = CONF_TIMEOUT_MIN,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(timeout_data),
	  .doc = "How long to wait for each block of message data after "
		 "DATA (RFC 5321 §4.5.3.2.5: 3 minutes). Seconds, or a "
		 "number with s, m, h or d. From 1s to 1h." },
	{ .key = "delivery_workers", .type = CONF_T_UINT,
	  .defnum = CONF_DELIVERY_WORKERS_DEFAULT,
	  .min = CONF_DELIVERY_WORKERS_MIN, .max = CONF_DELIVERY_WORKERS_MAX,
	  .offset = OFF(delivery_workers),
	  .doc = "Threads that deliver queued mail into Maildirs. From 1 "
		 "to 64." },
	{ .key = "relay_from", .type = CONF_T_LIST,
	  .def = CONF_RELAY_FROM_DEFAULT, .add = conf_relay_from_add,
	  .dump = conf_relay_from_dump, .count = conf_relay_from_count,
	  .example = "127.0.0.0/8 ::1/128 192.0.2.0/24",
	  .doc = "Clients that may send mail to any domain (relay): "
		 "addresses or networks in CIDR notation, separated by "
		 "blanks or commas; the line may repeat. Every other client "
		 "may only send to the local domains, and gets 550 5.7.1 for "
		 "any other recipient. Default: " CONF_RELAY_FROM_DEFAULT
		 " (this machine only)." },
	{ .key = "relay_port", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_PORT_DEFAULT, .min = 1, .max = 65535,
	  .offset = OFF(relay_port),
	  .doc = "Port of the MX hosts that relayed mail is delivered to "
		 "(RFC 5321: 25). Another value only makes sense for tests." },
	{ .key = "dns_servers", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(dns_servers),
	  .example = "127.0.0.1:53",
	  .doc = "DNS resolvers for MX and address lookups, as "
		 "address[:port] separated by commas ([::1]:53 for IPv6). "
		 "Empty, the default: the system's (/etc/resolv.conf)." },
	{ .key = "dns_timeout", .type = CONF_T_DURATION,
	  .defnum = CONF_DNS_TIMEOUT_DEFAULT, .min = 1, .max = 60,
	  .offset = OFF(dns_timeout),
	  .doc = "How long one DNS query may take before it is retried. "
		 "From 1s to 60s." },
	{ .key = "smarthost", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(smarthost),
	  .check = conf_check_relay_host, .example = "[smtp.example.net]:587",
	  .doc = "Send all mail for other domains through this host instead "
		 "of their MX hosts: host[:port] looks up host's MX records, "
		 "[host][:port] connects to host itself. Empty, the default: "
		 "deliver to each domain's MX hosts." },
	{ .key = "route", .type = CONF_T_LIST,
	  .add = conf_route_add, .dump = conf_route_dump,
	  .count = conf_route_count,
	  .example = "example.com [mail.internal.example]:2525\n"
		     "example.org [mx.partner.example] tls=verify",
	  .doc = "A route for one domain: domain host[:port] [tls=policy] "
		 "(host in the same forms as smarthost; policy as for "
		 "relay_tls, which applies without tls=). Mail for that "
		 "domain goes there, before any smarthost. One line per "
		 "domain." },
	{ .key = "retry_min", .type = CONF_T_DURATION,
	  .defnum = CONF_RETRY_MIN_DEFAULT, .min = 1, .max = 86400,
	  .offset = OFF(retry_min),
	  .doc = "How long a delivery that failed temporarily waits before "
		 "its first retry; each further retry waits twice as long as "
		 "the one before, up to retry_max. From 1s to 1d." },
	{ .key = "retry_max", .type = CONF_T_DURATION,
	  .defnum = CONF_RETRY_MAX_DEFAULT, .min = 1, .max = 86400,
	  .offset = OFF(retry_max),
	  .doc = "The longest wait between two retries. From 1s to 1d." },
	{ .key = "queue_lifetime", .type = CONF_T_DURATION,
	  .defnum = CONF_QUEUE_LIFETIME_DEFAULT, .min = 1,
	  .max = CONF_QUEUE_LIFETIME_MAX, .offset = OFF(queue_lifetime),
	  .doc = "How long a message is retried, from the time it was "
		 "received; then every recipient not yet delivered is "
		 "bounced to the sender. RFC 5321 §4.5.4.1 suggests 4 to 5 "
		 "days. From 1s to 60d." },
	{ .key = "delay_warning", .type = CONF_T_DURATION,
	  .defnum = CONF_DELAY_WARNING_DEFAULT, .min = 0,
	  .max = CONF_QUEUE_LIFETIME_MAX, .offset = OFF(delay_warning),
	  .doc = "After this long in the queue the sender gets one delay "
		 "notice (a DSN with Action: delayed) for recipients that "
		 "asked for it or did not say (RFC 3461 §4.1). 0 sends none." },
	{ .key = "relay_mx_max", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_MX_MAX_DEFAULT, .min = 1, .max = 100,
	  .offset = OFF(relay_mx_max),
	  .doc = "MX hosts tried, most preferred first, in one delivery "
		 "attempt. From 1 to 100." },
	{ .key = "relay_addrs_max", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_ADDRS_MAX_DEFAULT, .min = 1, .max = 100,
	  .offset = OFF(relay_addrs_max),
	  .doc = "Addresses (IPv6 and IPv4, of all MX hosts) tried in one "
		 "delivery attempt. From 1 to 100." },
	{ .key = "relay_dest_max", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_DEST_MAX_DEFAULT, .min = 1, .max = 1000,
	  .offset = OFF(relay_dest_max),
	  .doc = "Connections open at once to one destination (a domain, "
		 "or a route or smarthost). From 1 to 1000." },
	{ .key = "relay_sessions_max", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_SESSIONS_MAX_DEFAULT, .min = 1, .max = 100000,
	  .offset = OFF(relay_sessions_max),
	  .doc = "Outgoing SMTP connections open at once in all. From 1 to "
		 "100000." },
	{ .key = "relay_msgs_per_conn", .type = CONF_T_UINT,
	  .defnum = CONF_RELAY_MSGS_PER_CONN_DEFAULT, .min = 1, .max = 100000,
	  .offset = OFF(relay_msgs_per_conn),
	  .doc = "Messages sent over one outgoing connection before it is "
		 "closed. From 1 to 100000." },
	{ .key = "relay_conn_idle", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_CONN_IDLE_DEFAULT, .min = 0, .max = 300,
	  .offset = OFF(relay_conn_idle),
	  .doc = "How long a connection whose queue is empty stays open for "
		 "more mail to the same destination before it says QUIT. 0 "
		 "closes at once. From 0s to 5m." },
	{ .key = "relay_timeout_connect", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_CONNECT_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_connect),
	  .doc = "How long a TCP connection to a remote server may take. "
		 "From 1s to 1h." },
	{ .key = "relay_timeout_greeting", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_GREETING_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_greeting),
	  .doc = "Wait for a remote server's greeting (RFC 5321 §4.5.3.2.1: "
		 "5 minutes). From 1s to 1h." },
	{ .key = "relay_timeout_command", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_COMMAND_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_command),
	  .doc = "Wait for the reply to EHLO, MAIL or RCPT (RFC 5321 "
		 "§4.5.3.2.2-3: 5 minutes). From 1s to 1h." },
	{ .key = "relay_timeout_data", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_DATA_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_data),
	  .doc = "Wait for the reply to DATA (RFC 5321 §4.5.3.2.4: 2 "
		 "minutes). From 1s to 1h." },
	{ .key = "relay_timeout_block", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_BLOCK_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_block),
	  .doc = "Wait for the remote server to take each block of message "
		 "data (RFC 5321 §4.5.3.2.5: 3 minutes). From 1s to 1h." },
	{ .key = "relay_timeout_dot", .type = CONF_T_DURATION,
	  .defnum = CONF_RELAY_TIMEOUT_DOT_DEFAULT, .min = 1,
	  .max = CONF_TIMEOUT_MAX, .offset = OFF(relay_timeout_dot),
	  .doc = "Wait for the reply to the end of message data (RFC 5321 "
		 "§4.5.3.2.6: 10 minutes). From 1s to 1h." },
	{ .key = "relay_tls", .type = CONF_T_STRING,
	  .def = CONF_RELAY_TLS_DEFAULT, .offset = OFF(relay_tls),
	  .check = conf_check_tls_policy,
	  .doc = "TLS (STARTTLS, RFC 3207) for mail to MX hosts and to routes "
		 "without tls=. none: never. may, the default: whenever the "
		 "server offers it, any certificate accepted (opportunistic, "
		 "RFC 7435); a server whose TLS handshake fails is retried "
		 "in the clear at once and for the next hour. encrypt: TLS "
		 "required, any certificate; a server without it gets "
		 "nothing and the mail is deferred (4.7.4). verify: TLS "
		 "required, and the certificate must chain to a trusted CA "
		 "(relay_tls_ca_file) and name the MX host (or the route's "
		 "host); otherwise the mail is deferred (4.7.5)." },
	{ .key = "relay_tls_ca_file", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(relay_tls_ca_file),
	  .check = conf_check_abs_path_or_empty,
	  .doc = "The CA certificates (PEM) that the verify policy trusts. "
		 "Empty, the default: the system's CA store." },
	{ .key = "smarthost_tls", .type = CONF_T_STRING,
	  .def = CONF_SMARTHOST_TLS_DEFAULT, .offset = OFF(smarthost_tls),
	  .check = conf_check_tls_policy,
	  .doc = "TLS for mail to the smarthost: none, may (the default), "
		 "encrypt or verify, as for relay_tls; verify checks the "
		 "smarthost's own name. With smarthost_user, mail waits "
		 "unless TLS is up, whatever the policy." },
	{ .key = "smarthost_user", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(smarthost_user),
	  .example = "relay-user@example.net",
	  .doc = "Log in to the smarthost with this user name (SMTP AUTH, "
		 "RFC 4954: PLAIN when offered, else LOGIN), only over TLS: "
		 "credentials are never sent in the clear. A refused login "
		 "defers the mail (4.7.8). Empty, the default: no login." },
	{ .key = "smarthost_password_file", .type = CONF_T_STRING,
	  .empty_ok = true, .def = "", .offset = OFF(smarthost_password_file),
	  .check = conf_check_abs_path_or_empty,
	  .example = "/etc/tern/smarthost.password",
	  .doc = "A file whose first line is smarthost_user's password, read "
		 "when tern starts (keep it readable by tern only). The "
		 "password is never logged nor shown by dump-config." },
	{ .key = "srs_secret", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(srs_secret),
	  .doc = "Secret of the Sender Rewriting Scheme: mail that an alias "
		 "forwards to another domain is sent with an SRS sender "
		 "address, so that SPF at the destination passes and bounces "
		 "come back here. Empty, the default: a random secret made "
		 "at the first start and kept in <state_dir>/srs.key." },
	{ .key = "srs_domain", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(srs_domain),
	  .check = conf_check_domain_or_empty,
	  .doc = "Domain of SRS sender addresses; its mail must reach this "
		 "server. Empty, the default: the first local domain." },
	{ .key = "srs_max_age", .type = CONF_T_UINT,
	  .defnum = CONF_SRS_MAX_AGE_DEFAULT, .min = 1, .max = 1000,
	  .offset = OFF(srs_max_age),
	  .doc = "Days during which a bounce to an SRS address is accepted. "
		 "From 1 to 1000." },
	{ .key = "dsn_return_max", .type = CONF_T_SIZE,
	  .defnum = CONF_DSN_RETURN_MAX_DEFAULT, .min = 0,
	  .max = CONF_SIZE_MAX_MAX, .offset = OFF(dsn_return_max),
	  .doc = "A bounce returns the whole original message up to this "
		 "size, and only its header above it (RFC 3464 §2: it may be "
		 "truncated)." },
	/* ---- submission: TLS, accounts, AUTH, limits on clients ---- */
	{ .key = "tls_cert", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(tls_cert),
	  .example = "/etc/tern/tls/fullchain.pem",
	  .doc = "The server's TLS certificate chain (PEM, the server's "
		 "certificate first) for STARTTLS and the submissions "
		 "listener. Empty, the default: a self-signed certificate "
		 "for hostname, made at the first start in "
		 "<state_dir>/tls/ (fine for tests; clients will not trust "
		 "it). Reloaded on SIGHUP." },
	{ .key = "tls_key", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(tls_key),
	  .example = "/etc/tern/tls/privkey.pem",
	  .doc = "The private key of tls_cert (PEM). Empty: the same file "
		 "as tls_cert." },
	{ .key = "tls_sni", .type = CONF_T_LIST,
	  .add = conf_tls_sni_add, .dump = conf_tls_sni_dump,
	  .count = conf_tls_sni_count,
	  .example = "mail.example.net /etc/tern/tls/net.pem "
		     "/etc/tern/tls/net.key",
	  .doc = "Another certificate, for clients that ask for this server "
		 "name (SNI, RFC 6066): name certificate-file key-file. The "
		 "name may be *.domain for one more label. Clients that ask "
		 "for another name, or none, get tls_cert. One line per "
		 "name; reloaded on SIGHUP." },
	{ .key = "accounts_file", .type = CONF_T_STRING, .empty_ok = true,
	  .def = "", .offset = OFF(accounts_file),
	  .doc = "The accounts that may log in, managed with `tern user`: "
		 "one line per address with its password hashes, never the "
		 "password. Empty, the default: <state_dir>/accounts." },
	{ .key = "recipient_delimiter", .type = CONF_T_STRING,
	  .empty_ok = true, .def = CONF_RECIPIENT_DELIMITER_DEFAULT,
	  .offset = OFF(recipient_delimiter), .check = check_delimiter,
	  .doc = "Mail to alice+anything@domain goes to alice@domain: the "
		 "characters that may start such an extension (one or "
		 "more of + - _ = .). Empty: no extensions. Default: "
		 CONF_RECIPIENT_DELIMITER_DEFAULT "." },
	{ .key = "auth_mechanisms", .type = CONF_T_STRING,
	  .def = CONF_AUTH_MECHANISMS_DEFAULT, .offset = OFF(auth_mechanisms),
	  .check = check_auth_mechanisms,
	  .doc = "SASL mechanisms offered to clients after STARTTLS or on "
		 "the submissions listener, space separated: PLAIN, LOGIN, "
		 "CRAM-MD5, SCRAM-SHA-256. Default: "
		 CONF_AUTH_MECHANISMS_DEFAULT "." },
	{ .key = "send_as", .type = CONF_T_LIST,
	  .add = conf_send_as_add, .dump = conf_send_as_dump,
	  .count = conf_send_as_count,
	  .example = "alice@example.org @example.org",
	  .doc = "An authenticated account may send with its own address "
		 "(and its +extensions), the aliases that reach it and the "
		 "null sender; this grants it one more: account address, or "
		 "account @domain for every address of a domain. One line "
		 "per grant." },
	{ .key = "junk_max", .type = CONF_T_UINT,
	  .defnum = CONF_JUNK_MAX_DEFAULT, .min = 1, .max = 1000000000,
	  .offset = OFF(junk_max),
	  .doc = "Commands that move no mail (NOOP, RSET, VRFY, EXPN, HELP) "
		 "a client may send per message; one more gets 421 4.7.0 "
		 "and the session ends. From 1 to 1000000000." },
	{ .key = "auth_failures_max", .type = CONF_T_UINT,
	  .defnum = CONF_AUTH_FAILURES_MAX_DEFAULT, .min = 1, .max = 100,
	  .offset = OFF(auth_failures_max),
	  .doc = "Failed AUTH attempts in one session; the last one gets "
		 "421 4.7.0 and the session ends. From 1 to 100." },
	{ .key = "auth_delay_max", .type = CONF_T_DURATION,
	  .defnum = CONF_AUTH_DELAY_MAX_DEFAULT, .min = 0, .max = 300,
	  .offset = OFF(auth_delay_max),
	  .doc = "Each failed AUTH from an address in the last 15 minutes "
		 "doubles the wait before the next failure reply, from 1s up "
		 "to this. 0: no delay. From 0s to 5m." },
	{ .key = "data_rate_min", .type = CONF_T_UINT,
	  .defnum = CONF_DATA_RATE_MIN_DEFAULT, .min = 0, .max = 1000000000,
	  .offset = OFF(data_rate_min),
	  .doc = "Octets per second a client must keep up while it sends a "
		 "message: a transfer may last timeout_data plus its size "
		 "divided by this, then 421 4.4.2. 0: timeout_data bounds "
		 "the whole transfer." },
	{ .key = "client_sessions_max", .type = CONF_T_UINT,
	  .defnum = CONF_CLIENT_SESSIONS_MAX_DEFAULT, .min = 0,
	  .max = CONF_SESSIONS_MAX_MAX, .offset = OFF(client_sessions_max),
	  .doc = "Sessions open at once from one client address (one /64 "
		 "for IPv6); more get 421 4.7.0. Clients in relay_from are "
		 "not limited. 0: no limit." },
	{ .key = "client_rate_max", .type = CONF_T_UINT,
	  .defnum = CONF_CLIENT_RATE_MAX_DEFAULT, .min = 0, .max = 1000000,
	  .offset = OFF(client_rate_max),
	  .doc = "Connections per minute from one client address (one /64 "
		 "for IPv6); more get 421 4.7.0. Clients in relay_from are "
		 "not limited. 0, the default: no limit." },
	{ .key = "log_format", .type = CONF_T_STRING,
	  .def = CONF_LOG_FORMAT_DEFAULT, .offset = OFF(log_format),
	  .check = check_log_format,
	  .doc = "How log lines are written: text, the default (time, "
		 "level, then key=value pairs), or json (one JSON object a "
		 "line: ts, level, subsystem and each key=value as a string "
		 "member)." },
};

const size_t conf_nkeys = sizeof(conf_keys) / sizeof(conf_keys[0]);

const struct conf_key *
conf_key_find(const char *key, size_t len)
{
	for (size_t i = 0; i < conf_nkeys; i++)
		if (strlen(conf_keys[i].key) == len &&
		    memcmp(conf_keys[i].key, key, len) == 0)
			return &conf_keys[i];
	return NULL;
}

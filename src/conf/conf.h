/* SPDX-License-Identifier: MIT */
/*
 * conf: configuration text -> struct tern_conf, with validation.
 *
 * Pure code: it parses text handed to it and never opens files, reads the
 * environment or the clock (the caller reads the file). One table of keys
 * drives the parser, the defaults, validation, `tern dump-config` and the
 * documented example config (etc/tern.conf).
 *
 * Syntax: one "key = value" per line; '#' starts a comment; blank lines are
 * ignored. Keys that may repeat (listen, domain, user, alias) add one item
 * per line. Durations take s/m/h/d suffixes, sizes K/M/G (powers of 1024).
 */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

enum conf_role {
	CONF_ROLE_MX = 0,         /* port 25: receive for local domains */
	CONF_ROLE_SUBMISSION,     /* reserved: 587 with STARTTLS */
	CONF_ROLE_SUBMISSIONS,    /* reserved: 465 implicit TLS */
};

struct conf_listener {
	char *address;            /* "127.0.0.1", "::1", "0.0.0.0", "::" */
				  /* also "*" (every address), "localhost" */
	char *port;               /* "2525" */
	enum conf_role role;
	unsigned sessions_max;    /* sessions=N; 0: only sessions_max */
	unsigned line;            /* where it was defined */
};

struct conf_user {
	char *name;               /* local part, lower-cased */
	char *maildir;            /* absolute path of the user's Maildir */
	unsigned line;
};

/*
 * An alias maps a local part to one or more targets. A target without '@'
 * is a local user (or another alias); one with '@' is an address (a local
 * domain's address resolves like a local part; others are kept for relay).
 */
struct conf_alias {
	char *name;               /* local part, lower-cased */
	char **targets;
	size_t ntargets;
	unsigned line;
};

enum conf_log_level {
	CONF_LOG_DEBUG = 0,
	CONF_LOG_INFO,
	CONF_LOG_WARN,
	CONF_LOG_ERROR,
};

/*
 * Named defaults and limits, beside their keys. The key table in
 * conf_table.c uses them; engines may use them for their own defaults.
 */
#define CONF_HOSTNAME_DEFAULT		""	/* hostname: the system's */
#define CONF_STATE_DIR_DEFAULT		"tern-state"
#define CONF_LOG_DEFAULT		"stderr"
#define CONF_LOG_LEVEL_DEFAULT		CONF_LOG_INFO
#define CONF_LOG_FORMAT_DEFAULT		"text"
#define CONF_LISTEN_DEFAULT		"127.0.0.1:2525 mx"
#define CONF_DOMAIN_DEFAULT		"localhost"
#define CONF_SIZE_MAX_DEFAULT		(50ULL << 20)	/* 50M */
#define CONF_SIZE_MAX_MIN		(1ULL << 10)	/* 1K */
#define CONF_SIZE_MAX_MAX		(2ULL << 30)	/* 2G */
#define CONF_RCPT_MAX_DEFAULT		1000
#define CONF_RCPT_MAX_MIN		100	/* RFC 5321 §4.5.3.1.8 */
#define CONF_RCPT_MAX_MAX		100000
#define CONF_ERRORS_MAX_DEFAULT		20
#define CONF_ERRORS_MAX_MIN		1
#define CONF_ERRORS_MAX_MAX		1000
#define CONF_SESSIONS_MAX_DEFAULT	10000
#define CONF_SESSIONS_MAX_MIN		1
#define CONF_SESSIONS_MAX_MAX		1000000
#define CONF_VRFY_DEFAULT		false
#define CONF_EXPN_DEFAULT		false
#define CONF_TIMEOUT_COMMAND_DEFAULT	300	/* RFC 5321 §4.5.3.2.7 */
#define CONF_TIMEOUT_DATA_DEFAULT	180	/* RFC 5321 §4.5.3.2.5 */
#define CONF_TIMEOUT_MIN		1	/* short ones for tests */
#define CONF_TIMEOUT_MAX		3600
#define CONF_DELIVERY_WORKERS_DEFAULT	2
#define CONF_DELIVERY_WORKERS_MIN	1
#define CONF_DELIVERY_WORKERS_MAX	64
#define CONF_RELAY_FROM_DEFAULT		"127.0.0.0/8 ::1/128"
#define CONF_RELAY_PORT_DEFAULT		25	/* RFC 5321 §4.5.4: port 25 */
#define CONF_DNS_TIMEOUT_DEFAULT	5
#define CONF_RETRY_MIN_DEFAULT		300	/* 5m, doubling ... */
#define CONF_RETRY_MAX_DEFAULT		3600	/* ... up to 1h */
#define CONF_QUEUE_LIFETIME_DEFAULT	(5 * 86400) /* RFC 5321 §4.5.4.1 */
#define CONF_QUEUE_LIFETIME_MAX		(60 * 86400)
#define CONF_DELAY_WARNING_DEFAULT	(4 * 3600)
#define CONF_RELAY_MX_MAX_DEFAULT	5
#define CONF_RELAY_ADDRS_MAX_DEFAULT	10
#define CONF_RELAY_DEST_MAX_DEFAULT	10
#define CONF_RELAY_SESSIONS_MAX_DEFAULT	100
#define CONF_RELAY_MSGS_PER_CONN_DEFAULT 100
#define CONF_RELAY_CONN_IDLE_DEFAULT	2	/* seconds */
#define CONF_RELAY_TIMEOUT_CONNECT_DEFAULT 30
/* RFC 5321 §4.5.3.2 client timeouts */
#define CONF_RELAY_TIMEOUT_GREETING_DEFAULT 300	/* §4.5.3.2.1 */
#define CONF_RELAY_TIMEOUT_COMMAND_DEFAULT  300	/* §4.5.3.2.2-3 */
#define CONF_RELAY_TIMEOUT_DATA_DEFAULT     120	/* §4.5.3.2.4 */
#define CONF_RELAY_TIMEOUT_BLOCK_DEFAULT    180	/* §4.5.3.2.5 */
#define CONF_RELAY_TIMEOUT_DOT_DEFAULT      600	/* §4.5.3.2.6 */
/* outbound TLS: opportunistic by default (RFC 7435) */
#define CONF_RELAY_TLS_DEFAULT		"may"
#define CONF_SMARTHOST_TLS_DEFAULT	"may"
#define CONF_SRS_MAX_AGE_DEFAULT	21	/* days */
#define CONF_DSN_RETURN_MAX_DEFAULT	(1ULL << 20)
/* submission: TLS, accounts, AUTH and the limits on clients */
#define CONF_RECIPIENT_DELIMITER_DEFAULT "+"
#define CONF_AUTH_MECHANISMS_DEFAULT	"PLAIN LOGIN SCRAM-SHA-256"
#define CONF_JUNK_MAX_DEFAULT		100	/* Postfix: 100 */
#define CONF_AUTH_FAILURES_MAX_DEFAULT	3
#define CONF_AUTH_DELAY_MAX_DEFAULT	16	/* seconds */
#define CONF_DATA_RATE_MIN_DEFAULT	500	/* octets/s, Postfix's */
#define CONF_CLIENT_SESSIONS_MAX_DEFAULT 50
#define CONF_CLIENT_RATE_MAX_DEFAULT	0	/* per minute, 0: none */
/* alias nesting deeper than this is refused by conf_parse() */
#define CONF_ALIAS_DEPTH_MAX		16

/* a network in CIDR notation: 127.0.0.0/8, ::1/128 */
struct conf_cidr {
	unsigned family;          /* 4 or 6 */
	uint8_t addr[16];         /* network byte order, masked */
	unsigned prefix;
};

/*
 * TLS policy of outgoing SMTP (relay_tls, smarthost_tls, a route's
 * tls=): none never sends STARTTLS; may uses it when offered and does
 * not check the certificate (RFC 7435); encrypt requires TLS with any
 * certificate; verify requires TLS and a certificate that chains to a
 * trusted CA and names the host.
 */
enum conf_tls_policy {
	CONF_TLS_DEFAULT = 0,     /* a route without tls=: relay_tls */
	CONF_TLS_NONE,
	CONF_TLS_MAY,
	CONF_TLS_ENCRYPT,
	CONF_TLS_VERIFY,
};

/* where mail for a domain goes instead of its MX hosts */
struct conf_relay_host {
	char *host;               /* host name or address literal */
	unsigned port;            /* 0: relay_port */
	bool mx;                  /* false: [host], no MX lookup */
	enum conf_tls_policy tls; /* route's tls=, else CONF_TLS_DEFAULT */
};

struct conf_route {
	char *domain;             /* lower-cased */
	struct conf_relay_host via;
	unsigned line;
};

/* tls_sni: a certificate for one server name */
struct conf_tls_sni {
	char *name;               /* lower-cased; "*.example.org" allowed */
	char *cert, *key;
	unsigned line;
};

/* send_as: one more envelope sender an account may use */
struct conf_send_as {
	char *account;            /* alice@example.org */
	char *address;            /* an address, or "@domain" */
	unsigned line;
};

struct tern_conf {
	char *hostname;           /* hostname */
	char *state_dir;          /* state_dir: spool, default Maildirs */
	char *log;                /* log: "stderr", "syslog" or a path */
	enum conf_log_level log_level; /* log_level */

	struct conf_listener *listeners;  /* listen (repeatable) */
	size_t nlisteners;
	char **domains;           /* domain (repeatable), lower-cased */
	size_t ndomains;
	struct conf_user *users;  /* user (repeatable) */
	size_t nusers;
	struct conf_alias *aliases; /* alias (repeatable) */
	size_t naliases;

	uint64_t size_max;        /* size_max: message size limit, octets */
	unsigned rcpt_max;        /* rcpt_max: recipients per message */
	unsigned errors_max;      /* errors_max: 421 after this many errors */
	unsigned sessions_max;    /* sessions_max: concurrent sessions */
	bool vrfy;                /* vrfy: answer VRFY for local users */
	bool expn;                /* expn: answer EXPN for aliases */

	/* RFC 5321 §4.5.3.2 server timeouts, seconds */
	unsigned timeout_command; /* timeout_command: waiting for a command */
	unsigned timeout_data;    /* timeout_data: between DATA blocks */

	unsigned delivery_workers; /* delivery_workers: delivery threads */

	/* relay */
	struct conf_cidr *relay_from; /* relay_from: trusted clients */
	size_t nrelay_from;
	unsigned relay_port;      /* relay_port: port of MX hosts */
	char *dns_servers;        /* dns_servers: "" for the system's */
	unsigned dns_timeout;     /* dns_timeout: seconds per query */
	char *smarthost;          /* smarthost: "" for none */
	struct conf_relay_host smarthost_via; /* parsed smarthost */
	struct conf_route *routes; /* route (repeatable) */
	size_t nroutes;
	unsigned retry_min;       /* retry_min: first retry delay */
	unsigned retry_max;       /* retry_max: longest retry delay */
	unsigned queue_lifetime;  /* queue_lifetime: then bounce */
	unsigned delay_warning;   /* delay_warning: delay DSN, 0 never */
	unsigned relay_mx_max;    /* relay_mx_max: MX hosts per attempt */
	unsigned relay_addrs_max; /* relay_addrs_max: addresses per attempt */
	unsigned relay_dest_max;  /* relay_dest_max: connections per
				   * destination */
	unsigned relay_sessions_max; /* relay_sessions_max: in all */
	unsigned relay_msgs_per_conn; /* relay_msgs_per_conn */
	unsigned relay_conn_idle; /* relay_conn_idle: seconds an idle
				   * connection waits for more mail */
	unsigned relay_timeout_connect;
	unsigned relay_timeout_greeting;
	unsigned relay_timeout_command;
	unsigned relay_timeout_data;
	unsigned relay_timeout_block;
	unsigned relay_timeout_dot;
	char *relay_tls;          /* relay_tls: policy for MX hosts */
	char *relay_tls_ca_file;  /* relay_tls_ca_file: "" the system's */
	char *smarthost_tls;      /* smarthost_tls: policy for smarthost */
	char *smarthost_user;     /* smarthost_user: "" no AUTH */
	char *smarthost_password_file; /* smarthost_password_file: its
				   * first line is the password; read by
				   * the relay agent, never kept here */
	char *srs_secret;         /* srs_secret: "" for a generated one */
	char *srs_domain;         /* srs_domain: "" for hostname */
	unsigned srs_max_age;     /* srs_max_age: days */
	uint64_t dsn_return_max;  /* dsn_return_max: larger originals come
				   * back as headers only */

	/* submission */
	char *tls_cert;           /* tls_cert: PEM chain, "" self-signed */
	char *tls_key;            /* tls_key: its private key */
	char *accounts_file;      /* accounts_file: "" <state_dir>/accounts */
	char *recipient_delimiter; /* recipient_delimiter: "" none */
	char *auth_mechanisms;    /* auth_mechanisms: offered, in order */
	unsigned junk_max;        /* junk_max: junk commands per message */
	unsigned auth_failures_max; /* auth_failures_max: per session */
	unsigned auth_delay_max;  /* auth_delay_max: longest failure delay */
	unsigned data_rate_min;   /* data_rate_min: octets/s in DATA */
	unsigned client_sessions_max; /* client_sessions_max: per address */
	unsigned client_rate_max; /* client_rate_max: connections/minute */
	struct conf_tls_sni *tls_sni; /* tls_sni (repeatable) */
	size_t ntls_sni;
	struct conf_send_as *send_as; /* send_as (repeatable) */
	size_t nsend_as;
	char *log_format;         /* log_format: "text" or "json" */

	/* private to conf: hashed user and alias names for conf_resolve();
	 * NULL or out of date (users or aliases added by hand) falls back
	 * to a linear search */
	struct conf_index *index;
};

/*
 * Parses text (not NUL-terminated: len bytes) named `filename` for error
 * messages. On success returns 0 and a new config in *conf_r, with every
 * default filled in and every cross-check done: a user's maildir
 * defaults to <state_dir>/mail/<user>/Maildir; relative paths are refused
 * except state_dir, which is kept as given (the caller resolves it). On
 * failure returns -1 and *error_r points at a heap string
 * "filename:line: message" that the caller frees.
 */
int conf_parse(const char *filename, const char *text, size_t len,
	       struct tern_conf **conf_r, char **error_r);

/* the embedded default configuration text (what `tern serve` runs with) */
const char *conf_default_text(void);

void conf_free(struct tern_conf **confp);

/* the effective configuration as config text, every key, with its doc
 * comment; appends to out. conf_parse() accepts the result and yields
 * the same configuration. */
void conf_dump(const struct tern_conf *conf, struct buf *out);

/* the documented example configuration (the text of etc/tern.conf,
 * generated from the key table); appends to out */
void conf_example(struct buf *out);

/*
 * Address resolution against the config, shared by RCPT, VRFY and EXPN.
 * `address` is the RCPT address as the client sent it. Returns 1 and the
 * local user names it reaches (aliases expanded recursively, duplicates
 * removed, loops cut) in *users_r (a heap array of pointers into conf;
 * free the array only), or 0 when the address is not in a local domain or
 * has no such user ("postmaster" without a user or alias of that name
 * resolves to the first user), or -1 when the domain is local but expansion
 * reaches only addresses: non-local ones, or local-domain ones that name
 * no user here (accounts, which the server knows).
 * Local parts compare case-insensitively, domains too.
 */
int conf_resolve(const struct tern_conf *conf, const char *address,
		 const struct conf_user ***users_r, size_t *nusers_r);

/*
 * The full resolution of a recipient in a local domain: the local users
 * it reaches and the addresses elsewhere that aliases forward it to.
 * Returns 1 when the address is in a local domain (or is postmaster) and
 * reaches at least one user or address, else 0. Arrays are heap (free
 * the arrays only); their elements point into conf.
 */
struct conf_targets {
	const struct conf_user **users;
	size_t nusers;
	const char **remotes;     /* addresses in other domains */
	size_t nremotes;
	/* alias targets in local domains that name no user or alias:
	 * accounts, when the server has them */
	const char **locals;
	size_t nlocals;
};
int conf_resolve_targets(const struct tern_conf *conf, const char *address,
			 struct conf_targets *t_r);
void conf_targets_clear(struct conf_targets *t);

/*
 * true when the address (family 4: 4 octets, 6: 16 octets, network
 * order) is in one of relay_from's networks; an IPv4-mapped IPv6 address
 * is taken as its IPv4 address
 */
bool conf_relay_allowed(const struct tern_conf *conf, unsigned family,
			const uint8_t *addr);

/*
 * Parses a relay host: "host", "host:port", "[host]", "[host]:port",
 * "[1.2.3.4]", "[IPv6:::1]:25". 0, or -1 with a heap message.
 */
int conf_relay_host_parse(const char *text, struct conf_relay_host *h_r,
			  char **msg_r);
void conf_relay_host_clear(struct conf_relay_host *h);
/* the route or smarthost for a domain (lower-case), or NULL: MX */
const struct conf_relay_host *conf_route_for(const struct tern_conf *conf,
					     const char *domain);
/* true when via (from conf_route_for) is the smarthost, not a route */
bool conf_via_smarthost(const struct tern_conf *conf,
			const struct conf_relay_host *via);
/*
 * The TLS policy of mail that goes via (from conf_route_for; NULL: the
 * MX hosts): a route's tls=, else smarthost_tls for the smarthost, else
 * relay_tls. Never CONF_TLS_DEFAULT.
 */
enum conf_tls_policy conf_relay_tls(const struct tern_conf *conf,
				    const struct conf_relay_host *via);
/* "none", "may", "encrypt", "verify" (CONF_TLS_DEFAULT: "default") */
const char *conf_tls_policy_name(enum conf_tls_policy p);
/* the policy a name gives (case-insensitive); 0, or -1 for no policy */
int conf_tls_policy_parse(const char *name, enum conf_tls_policy *p_r);

/* true when the domain part (no '@') is one of the local domains */
bool conf_is_local_domain(const struct tern_conf *conf, const char *domain);

/* send_as grants account the envelope sender `sender` */
bool conf_send_as_allowed(const struct tern_conf *conf, const char *account,
			  const char *sender);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * conf private: the key table and the helpers shared by the parser, the
 * dumper, the example generator and the resolver. Pure like the rest of
 * conf: no I/O.
 */
#ifndef TERN_CONF_INT_H
#define TERN_CONF_INT_H

#include "conf/conf.h"

enum conf_type {
	CONF_T_STRING,		/* char *, validated by key->check */
	CONF_T_LOG_LEVEL,	/* enum conf_log_level */
	CONF_T_UINT,		/* unsigned, a plain decimal number */
	CONF_T_SIZE,		/* uint64_t octets, K/M/G suffix */
	CONF_T_DURATION,	/* unsigned seconds, s/m/h/d suffix */
	CONF_T_BOOL,		/* bool, yes/no */
	CONF_T_LIST,		/* repeatable: key->add appends one item */
};

struct conf_key {
	const char *key;
	enum conf_type type;
	bool empty_ok;		/* "key =" with nothing after is valid */
	/* default as config text: CONF_T_STRING, and CONF_T_LIST when no
	 * line gives the key (NULL: none) */
	const char *def;
	/* default of the other scalar types, and their limits */
	uint64_t defnum, min, max;
	size_t offset;		/* offsetof(struct tern_conf, field) */
	const char *doc;	/* one paragraph, wrapped when written */
	/* example values for etc/tern.conf, '\n'-separated; NULL shows the
	 * default commented out */
	const char *example;
	/* CONF_T_STRING: checks the value, may rewrite it in place; returns
	 * 0, or -1 with a heap message */
	int (*check)(char *value, char **msg_r);
	/* CONF_T_LIST: adds one item; 0, or -1 with a heap message */
	int (*add)(struct tern_conf *conf, char *value, unsigned line,
		   char **msg_r);
	/* CONF_T_LIST: writes one "key = item" line per item */
	void (*dump)(const struct tern_conf *conf, struct buf *out);
	/* CONF_T_LIST: number of items, to know whether the default applies */
	size_t (*count)(const struct tern_conf *conf);
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

/* <state_dir>/mail/<name>/Maildir, relative when state_dir is */
char *conf_default_maildir(const char *state_dir, const char *name);
void conf_alias_clear(struct conf_alias *a);

/* relay keys (conf_relay.c) */
int conf_relay_from_add(struct tern_conf *conf, char *value, unsigned line,
			char **msg_r);
void conf_relay_from_dump(const struct tern_conf *conf, struct buf *out);
size_t conf_relay_from_count(const struct tern_conf *conf);
int conf_route_add(struct tern_conf *conf, char *value, unsigned line,
		   char **msg_r);
void conf_route_dump(const struct tern_conf *conf, struct buf *out);
size_t conf_route_count(const struct tern_conf *conf);
int conf_check_relay_host(char *value, char **msg_r);
/* relay_tls, smarthost_tls: none, may, encrypt or verify (lower-cased) */
int conf_check_tls_policy(char *value, char **msg_r);
/* relay_tls_ca_file, smarthost_password_file: empty or an absolute path */
int conf_check_abs_path_or_empty(char *value, char **msg_r);
int conf_check_domain_or_empty(char *value, char **msg_r);

/* submission keys (conf_submit.c) */
int conf_tls_sni_add(struct tern_conf *conf, char *value, unsigned line,
		     char **msg_r);
void conf_tls_sni_dump(const struct tern_conf *conf, struct buf *out);
size_t conf_tls_sni_count(const struct tern_conf *conf);
int conf_send_as_add(struct tern_conf *conf, char *value, unsigned line,
		     char **msg_r);
void conf_send_as_dump(const struct tern_conf *conf, struct buf *out);
size_t conf_send_as_count(const struct tern_conf *conf);
void conf_submit_clear(struct tern_conf *conf);

/* the table entry for key (len bytes), or NULL */
const struct conf_key *conf_key_find(const char *key, size_t len);

/* parses value (NUL-terminated, trimmed) into the scalar field of conf;
 * 0, or -1 with a heap message (without the "key: " prefix) */
int conf_key_set(const struct conf_key *k, struct tern_conf *conf,
		 char *value, char **msg_r);
/* stores the key's default; scalar keys only */
void conf_key_set_default(const struct conf_key *k, struct tern_conf *conf);
/* appends the value of a scalar key as config text */
void conf_key_format(const struct conf_key *k, const struct tern_conf *conf,
		     struct buf *out);
/* the text of a number with the largest exact suffix: 52428800 -> 50M */
void conf_format_size(uint64_t v, struct buf *out);
void conf_format_duration(uint64_t v, struct buf *out);

/*
 * Quotes a value for an error message: printable ASCII passes, the rest
 * becomes \xHH; long values end in "...". Returned by value so that it
 * can be used inside one printf call: conf_q(v).s
 */
struct conf_quoted {
	char s[80];
};
struct conf_quoted conf_q(const char *s);

/* syntax checks */
bool conf_is_domain(const char *s);
/* a local name: a-z 0-9 . _ + - (either case), dot-atom, at most 64 */
bool conf_is_local_name(const char *s);
bool conf_is_ipv4(const char *s);
bool conf_is_ipv6(const char *s);
void conf_lower(char *s);

/* adds users[idx] (or aliases[idx]) to conf->index, creating it */
void conf_index_add(struct tern_conf *conf, bool alias, size_t idx);
void conf_index_free(struct conf_index **indexp);

/* lookups by local part (len bytes, compared case-insensitively) */
const struct conf_user *conf_find_user(const struct tern_conf *conf,
				       const char *name, size_t len);
const struct conf_alias *conf_find_alias(const struct tern_conf *conf,
					 const char *name, size_t len);
bool conf_is_local_domain_n(const struct tern_conf *conf, const char *d,
			    size_t len);

/* alias expansion, shared by conf_resolve() and the parser's checks */
struct conf_expansion {
	const struct conf_user **users;
	size_t nusers, cap;
	bool *visited;		/* per alias, indexed like conf->aliases */
	bool remote;		/* reached an address outside local domains */
	const char **remotes;	/* ... which ones (pointers into conf) */
	size_t nremotes, capremotes;
	const char **locals;	/* local-domain addresses naming no user
				 * or alias (pointers into conf) */
	size_t nlocals, caplocals;
	bool too_deep;		/* nesting passed CONF_ALIAS_DEPTH_MAX */
};

void conf_expansion_init(struct conf_expansion *x,
			 const struct tern_conf *conf);
void conf_expansion_clear(struct conf_expansion *x);
/* expands the local part name (len bytes) into x; false when the name
 * is neither a user, an alias nor postmaster */
bool conf_expand(const struct tern_conf *conf, const char *name, size_t len,
		 struct conf_expansion *x);

#endif

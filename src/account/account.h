/* SPDX-License-Identifier: MIT */
/*
 * account: the accounts that may log in (SMTP AUTH now, POP3 and IMAP
 * later), kept in one text file that `tern user` manages (accounts_file,
 * default <state_dir>/accounts).
 *
 * An account is a full address, which is also its login name:
 * alice@a.example and alice@b.example are two accounts. Addresses are
 * stored with every ASCII letter lower-cased (the domain entirely, and
 * the ASCII letters of the local part), so lookups ignore ASCII case.
 * The file holds a crypt(3) hash of each password and the secrets the
 * challenge-response mechanisms need (sasl.h), never a password; nothing
 * here logs or prints a password or a secret.
 *
 * File format, one account per line, fields separated by one space or
 * one tab:
 *
 *   address hash scram cram [maildir]
 *
 *   hash     crypt(3): $y$ (yescrypt), $2b$/$2y$ (bcrypt), $6$
 *            (sha512-crypt); a hash that starts with "!" or "*" is
 *            locked and never verifies
 *   scram    SCRAM-SHA-256:<iter>:<b64 salt>:<b64 StoredKey>:<b64 ServerKey>
 *            or "-" (RFC 4648 base64 with padding)
 *   cram     CRAM-MD5:<64 hex digits: the two MD5 states> or "-"
 *   maildir  absolute path without white space; absent: the default
 *
 * Lines starting with "#" and blank lines are ignored; a save writes a
 * header comment and drops other comments. Parsing is pure (no I/O);
 * load, save and the lock helpers do the file work.
 *
 * Thread safety: a table that nobody changes may be read (account_find,
 * account_table_at, account_verify_password) from any number of threads
 * at once.
 */
#ifndef TERN_ACCOUNT_H
#define TERN_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "sasl/sasl.h"

/* RFC 5321 §4.5.3.1: local part 64 octets, path 256 with the brackets */
#define ACCOUNT_LOCAL_MAX 64
#define ACCOUNT_ADDRESS_MAX 254
/* longest line of the file, without its newline; longer is an error */
#define ACCOUNT_LINE_MAX 8192
#define ACCOUNT_MAILDIR_MAX 4095
/* crypt(3) output is shorter than CRYPT_OUTPUT_SIZE (384) */
#define ACCOUNT_HASH_MAX 383
/* longest password accepted for storage and verification, octets:
 * libxcrypt refuses a phrase of CRYPT_MAX_PASSPHRASE_SIZE (512) with
 * its NUL */
#define ACCOUNT_PASSWORD_MAX 511
/* random salt of the SCRAM secrets, octets */
#define ACCOUNT_SCRAM_SALT_LEN 16
/* the file may not be larger than this (it is read whole) */
#define ACCOUNT_FILE_MAX (512u * 1024 * 1024)
/* the hash scheme of new passwords */
#define ACCOUNT_HASH_PREFIX_DEFAULT "$y$"

struct account {
	char *address;    /* normalised (see above); the login name */
	char *hash;       /* crypt(3) string; "!..." or "*...": locked */
	struct sasl_secrets secrets;  /* has_scram/has_cram false: "-" */
	char *maildir;    /* absolute; NULL: the server's default Maildir */
	unsigned line;    /* line in the file it was parsed from; 0 when
			   * added or changed since */
};

/* addresses in byte order of their normalised form */
struct account_table;

/* an empty table */
struct account_table *account_table_new(void);
/* NULL-safe; sets *tp = NULL; wipes the secrets */
void account_table_free(struct account_table **tp);

/*
 * Parses the file text (len octets, need not be NUL-terminated; NUL
 * octets are errors). Pure. Returns 0 and a new table in *t_r, or -1 and
 * *error_r, a heap "filename:line: message" the caller frees. Errors:
 * wrong field count, a bad address, an unsupported hash, bad base64,
 * wrong lengths, an iteration count out of range, a relative maildir, a
 * line longer than ACCOUNT_LINE_MAX, an address given twice. Messages
 * name the field, never its value (except the address).
 */
int account_table_parse(const char *text, size_t len, const char *filename,
			struct account_table **t_r, char **error_r);

/* appends the file text of the table (header comment, then one line per
 * account, sorted) to out; account_table_parse() gives it back */
void account_table_format(const struct account_table *t, struct buf *out);

/*
 * Reads and parses the file at path. A missing file is an empty table.
 * Returns 0 and *t_r, or -1 and a heap *error_r ("path: strerror" or a
 * parse error) with errno EBADMSG for a parse error, else the errno of
 * the failed read.
 */
int account_table_load(const char *path, struct account_table **t_r,
		       char **error_r);

/*
 * Writes the table to path durably: a temporary file in the same
 * directory (mode 0600, owner and group of the file it replaces when the
 * process may set them), fsync, rename over path, fsync of the directory.
 * Returns 0, or -1 with a heap *error_r: the old file is then in place,
 * unless only the directory's fsync failed (the new file is in place,
 * perhaps not yet durable).
 * Writers hold account_file_lock() around load, change and save.
 */
int account_table_save(const char *path, const struct account_table *t,
		       char **error_r);

/*
 * Takes an exclusive flock(2) on "<path>.lock" (created 0600), waiting
 * for another writer to finish. Returns 0 and the lock's fd in *fd_r, or
 * -1 with a heap *error_r. account_file_unlock() releases it (closes).
 */
int account_file_lock(const char *path, int *fd_r, char **error_r);
void account_file_unlock(int fd);

/* the account, or NULL; address compares ignoring ASCII case. The
 * pointer is valid until the table changes or is freed. */
const struct account *account_find(const struct account_table *t,
				   const char *address);
size_t account_table_count(const struct account_table *t);
/* i < count; sorted by address */
const struct account *account_table_at(const struct account_table *t,
				       size_t i);

/*
 * true when address is a valid account name: a dot-atom local part
 * (RFC 5321 §4.1.2, UTF-8 allowed as in RFC 6531) of at most
 * ACCOUNT_LOCAL_MAX octets, "@", a domain name; at most
 * ACCOUNT_ADDRESS_MAX octets in all. Case does not matter.
 */
bool account_address_valid(const char *address);
/* a heap copy of address in its stored form (ASCII letters lower-cased) */
char *account_address_normalize(const char *address);
/* the domain part of an address (after its last '@'), or "" */
const char *account_address_domain(const char *address);

/*
 * Adds the account, or gives an existing one a new password (its
 * maildir is kept): a new ACCOUNT_HASH_PREFIX_DEFAULT (yescrypt) hash and
 * SCRAM-SHA-256/CRAM-MD5 secrets (a random ACCOUNT_SCRAM_SALT_LEN-octet
 * salt, SASL_SCRAM_ITER_DEFAULT iterations). Slow on purpose (tens of
 * milliseconds). The password must be 1..ACCOUNT_PASSWORD_MAX octets
 * without NUL; the caller wipes its copy. Returns 0, or -1 with *error_r
 * (static text; a bad address, a bad password, no randomness).
 */
int account_set_password(struct account_table *t, const char *address,
			 const char *password, const char **error_r);
/* sets the maildir of an existing account (NULL: the default); maildir
 * absolute, no white space. 0, or -1 with static *error_r */
int account_set_maildir(struct account_table *t, const char *address,
			const char *maildir, const char **error_r);
/* 1 removed, 0 no such account */
int account_remove(struct account_table *t, const char *address);

/*
 * Checks a password against the account's hash with crypt_rn() on a
 * heap struct crypt_data (thread-safe) and a constant-time compare.
 * Accepts $y$, $2b$, $2y$ and $6$ hashes; a locked ("!", "*") or other
 * hash, or a password longer than ACCOUNT_PASSWORD_MAX, never verifies.
 * Slow on purpose: call it off the event loop.
 */
bool account_verify_password(const struct account *a, const char *password);

/*
 * Hashes a password with crypt_gensalt_ra() (default cost, the system's
 * randomness) and crypt_ra(). prefix: "$y$" (also for NULL), "$2b$",
 * "$2y$" or "$6$". Returns 0 and a heap *hash_r, or -1 with static
 * *error_r.
 */
int account_hash_password(const char *password, const char *prefix,
			  char **hash_r, const char **error_r);

/*
 * Writes outsz - 1 random characters from an alphabet without look-alikes
 * (no 0 O o 1 l I) and a NUL into out (outsz > 0): a password to hand to
 * someone, e.g. for the demo account. Aborts when there is no randomness.
 */
void account_generate_password(char *out, size_t outsz);

#endif

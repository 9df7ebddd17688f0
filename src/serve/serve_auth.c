/* SPDX-License-Identifier: MIT */
/*
 * serve auth: the accounts a running server knows, and password checks.
 *
 * The accounts file (accounts_file, default <state_dir>/accounts) is read
 * at start; afterwards the tick looks at its inode, size and mtime each
 * second and, when they change (`tern user` renames a new file in), the
 * file is read again on the auth worker and swapped in on the loop
 * thread. A file that fails to parse is logged and the old table stays.
 *
 * Password checks (PLAIN, LOGIN) run on the auth worker too: yescrypt is
 * slow on purpose, and the loop serves every other session meanwhile.
 * The job carries a copy of the hash, so a reload may swap the table
 * under it.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "account/account.h"
#include "serve/serve.h"

/* threads that check passwords: yescrypt is CPU-bound */
#define SERVE_AUTH_THREADS 2

static void
auth_wq_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	workq_complete(arg);
}

static char *
accounts_path(const struct tern_conf *conf)
{
	if (conf->accounts_file[0] != '\0')
		return xstrdup(conf->accounts_file);
	return xasprintf("%s/accounts", conf->state_dir);
}

/* what tells that the file changed */
static void
file_stamp(const char *path, struct serve_file_stamp *st_r)
{
	struct stat st;

	memset(st_r, 0, sizeof(*st_r));
	if (stat(path, &st) < 0)
		return;
	st_r->exists = true;
	st_r->ino = (uint64_t)st.st_ino;
	st_r->size = (uint64_t)st.st_size;
	st_r->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
			 st.st_mtim.tv_nsec;
}

static bool
stamp_eq(const struct serve_file_stamp *a, const struct serve_file_stamp *b)
{
	return a->exists == b->exists && a->ino == b->ino &&
	       a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/*
 * The embedded defaults: the demo account, made once with a password
 * shown on the terminal (not in the log) once.
 */
static int
make_demo_account(struct tern_server *srv, const char *path,
		  struct account_table *t, char **error_r)
{
	const struct tern_conf *conf = srv->conf;
	char password[17], *address;
	const char *error = NULL;
	int r = -1;

	if (conf->ndomains == 0)
		return 0;
	address = xasprintf("demo@%s", conf->domains[0]);
	if (account_find(t, address) != NULL) {
		free(address);
		return 0;
	}
	account_generate_password(password, sizeof(password));
	if (account_set_password(t, address, password, &error) < 0) {
		*error_r = xasprintf("demo account: %s", error);
		goto out;
	}
	if (account_table_save(path, t, error_r) < 0)
		goto out;
	fprintf(stderr,
		"tern: made the demo account %s with the password %s\n"
		"tern: (shown once; change it with: tern user passwd %s)\n",
		address, password, address);
	log_info("tern event=account_created address=%s file=%s", address,
		 path);
	r = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	free(address);
	return r;
}

int
serve_accounts_start(struct tern_server *srv, char **error_r)
{
	char *path = accounts_path(srv->conf);
	struct account_table *t = NULL;

	/* the tick looks at this path every second: made once */
	srv->accounts_path = xstrdup(path);
	srv->auth_wq = workq_new(SERVE_AUTH_THREADS);
	srv->auth_wq_ev = event_new(srv->base, workq_fd(srv->auth_wq),
				    EV_READ | EV_PERSIST, auth_wq_ready,
				    srv->auth_wq);
	event_add(srv->auth_wq_ev, NULL);
	file_stamp(path, &srv->accounts_stamp);
	if (account_table_load(path, &t, error_r) < 0) {
		free(path);
		return -1;
	}
	if (srv->demo && !srv->accounts_stamp.exists &&
	    make_demo_account(srv, path, t, error_r) < 0) {
		account_table_free(&t);
		free(path);
		return -1;
	}
	file_stamp(path, &srv->accounts_stamp);
	srv->accounts = t;
	{
		/* unknown accounts are checked against this, so that they
		 * take as long as a wrong password */
		char pw[17];
		const char *error = NULL;
		account_generate_password(pw, sizeof(pw));
		if (account_hash_password(pw, NULL, &srv->auth_dummy_hash,
					  &error) < 0) {
			*error_r = xasprintf("password hashing: %s", error);
			free(path);
			return -1;
		}
		OPENSSL_cleanse(pw, sizeof(pw));
	}
	log_info("tern event=accounts file=%s count=%zu", path,
		 account_table_count(t));
	free(path);
	return 0;
}

struct reload_job {
	struct tern_server *srv;
	char *path;
	struct serve_file_stamp stamp;
	struct account_table *t;
	char *error;
};

static void
reload_work(void *arg)
{
	struct reload_job *j = arg;

	file_stamp(j->path, &j->stamp);
	if (account_table_load(j->path, &j->t, &j->error) < 0)
		j->t = NULL;
}

static void
reload_done(void *arg)
{
	struct reload_job *j = arg;
	struct tern_server *srv = j->srv;

	srv->accounts_reloading = false;
	srv->accounts_stamp = j->stamp;
	if (j->t == NULL) {
		log_error("tern event=accounts_reload file=%s error=\"%s\" "
			  "note=\"the accounts loaded before stay\"", j->path,
			  j->error);
	} else {
		account_table_free(&srv->accounts);
		srv->accounts = j->t;
		log_info("tern event=accounts_reload file=%s count=%zu",
			 j->path, account_table_count(j->t));
	}
	free(j->error);
	free(j->path);
	free(j);
}

void
serve_accounts_tick(struct tern_server *srv)
{
	struct serve_file_stamp now;

	if (srv->auth_wq == NULL || srv->accounts_reloading)
		return;
	file_stamp(srv->accounts_path, &now);
	if (stamp_eq(&now, &srv->accounts_stamp))
		return;
	struct reload_job *j = xcalloc(1, sizeof(*j));
	j->srv = srv;
	j->path = xstrdup(srv->accounts_path);
	srv->accounts_reloading = true;
	workq_submit(srv->auth_wq, reload_work, reload_done, j);
}

void
serve_accounts_free(struct tern_server *srv)
{
	if (srv->auth_wq != NULL) {
		/* a reload or a check in flight finishes first */
		workq_free(&srv->auth_wq);
	}
	if (srv->auth_wq_ev != NULL) {
		event_free(srv->auth_wq_ev);
		srv->auth_wq_ev = NULL;
	}
	account_table_free(&srv->accounts);
	free(srv->auth_dummy_hash);
	srv->auth_dummy_hash = NULL;
	free(srv->accounts_path);
	srv->accounts_path = NULL;
}

const struct account *
serve_account_find(const struct tern_server *srv, const char *address)
{
	return srv->accounts != NULL ? account_find(srv->accounts, address) :
				       NULL;
}

struct check_job {
	struct account a;          /* only hash is set */
	char *password;
	bool ok;
	bool unknown;              /* checked against the dummy hash */
	serve_auth_done_fn *done;
	void *arg;
};

static void
check_work(void *arg)
{
	struct check_job *j = arg;

	j->ok = account_verify_password(&j->a, j->password) && !j->unknown;
}

static void
check_done(void *arg)
{
	struct check_job *j = arg;

	OPENSSL_cleanse(j->password, strlen(j->password));
	free(j->password);
	free(j->a.hash);
	j->done(j->arg, j->ok);
	free(j);
}

void
serve_auth_check(struct tern_server *srv, const char *address,
		 const char *password, serve_auth_done_fn *done, void *arg)
{
	const struct account *a = serve_account_find(srv, address);
	struct check_job *j = xcalloc(1, sizeof(*j));

	/* an unknown account costs the same time as a wrong password: the
	 * check runs against a hash that cannot match */
	j->a.hash = xstrdup(a != NULL ? a->hash : srv->auth_dummy_hash);
	j->password = xstrdup(password);
	j->done = done;
	j->arg = arg;
	j->unknown = a == NULL;
	workq_submit(srv->auth_wq, check_work, check_done, j);
}

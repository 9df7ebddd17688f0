/* SPDX-License-Identifier: MIT */
/*
 * `tern user add|passwd|del|list`: edits the accounts file (account.h)
 * directly; the running server is not asked. Writers take the file's
 * lock around read, change and write, so two runs at once never lose an
 * update. A password comes from one line of stdin (--password-stdin) or
 * is asked twice on the terminal without echo; it is never printed or
 * logged, and its buffers are wiped once it is hashed.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "account/account.h"
#include "main/tern_user.h"

/* sysexits.h */
#define USER_EX_USAGE 64
#define USER_EX_DATAERR 65
#define USER_EX_CANTCREAT 73
#define USER_EX_IOERR 74
#define USER_EX_CONFIG 78

#define USER_ACCOUNTS_NAME "accounts"
/* the password buffer: the longest password and a NUL */
#define USER_PW_BUF (ACCOUNT_PASSWORD_MAX + 1)

enum user_cmd {
	USER_ADD,
	USER_PASSWD,
	USER_DEL,
	USER_LIST,
};

static const struct {
	const char *name;
	enum user_cmd cmd;
	bool address;         /* takes ADDRESS */
	bool password;        /* takes --password-stdin */
	bool maildir;         /* takes --maildir */
} user_cmds[] = {
	{ "add", USER_ADD, true, true, true },
	{ "passwd", USER_PASSWD, true, true, false },
	{ "del", USER_DEL, true, false, false },
	{ "list", USER_LIST, false, false, false },
};

struct user_args {
	int cmd;              /* index into user_cmds, -1 none */
	const char *address;
	const char *maildir;
	const char *config;
	bool password_stdin;
};

static void
user_usage(FILE *f)
{
	fprintf(f,
		"usage: tern user add ADDRESS [--password-stdin] "
		"[--maildir DIR]\n"
		"                                   add an account (login "
		"name: the address)\n"
		"       tern user passwd ADDRESS [--password-stdin]\n"
		"                                   set a new password\n"
		"       tern user del ADDRESS       remove an account\n"
		"       tern user list              the accounts, one per "
		"line\n"
		"Each takes --config FILE (for accounts_file or state_dir); "
		"without it, the\nembedded defaults (./tern-state/accounts). "
		"The password is asked twice on the\nterminal, or read from "
		"one line of stdin with --password-stdin.\n"
		"Exit status: 0 ok, 64 bad usage, 65 bad data (no such "
		"account, account\nexists, domain not local), 73/74 file "
		"errors, 78 bad configuration.\n");
}

static int
parse_args(int argc, char **argv, struct user_args *a)
{
	memset(a, 0, sizeof(*a));
	a->cmd = -1;
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			user_usage(stdout);
			return 1;
		} else if ((strcmp(s, "--config") == 0 ||
			    strcmp(s, "-c") == 0) && i + 1 < argc) {
			a->config = argv[++i];
		} else if (strcmp(s, "--maildir") == 0 && i + 1 < argc) {
			a->maildir = argv[++i];
		} else if (strcmp(s, "--password-stdin") == 0) {
			a->password_stdin = true;
		} else if (s[0] == '-') {
			fprintf(stderr, "tern user: unknown option %s\n", s);
			return -1;
		} else if (a->cmd < 0) {
			for (size_t k = 0;
			     k < sizeof(user_cmds) / sizeof(user_cmds[0]); k++)
				if (strcmp(user_cmds[k].name, s) == 0)
					a->cmd = (int)k;
			if (a->cmd < 0) {
				fprintf(stderr, "tern user: unknown command "
					"%s\n", s);
				return -1;
			}
		} else if (a->address == NULL && user_cmds[a->cmd].address) {
			a->address = s;
		} else {
			fprintf(stderr, "tern user: too many arguments\n");
			return -1;
		}
	}
	if (a->cmd < 0)
		return -1;
	if (user_cmds[a->cmd].address && a->address == NULL) {
		fprintf(stderr, "tern user: %s needs an ADDRESS\n",
			user_cmds[a->cmd].name);
		return -1;
	}
	if (a->password_stdin && !user_cmds[a->cmd].password) {
		fprintf(stderr, "tern user: %s takes no --password-stdin\n",
			user_cmds[a->cmd].name);
		return -1;
	}
	if (a->maildir != NULL && !user_cmds[a->cmd].maildir) {
		fprintf(stderr, "tern user: %s takes no --maildir\n",
			user_cmds[a->cmd].name);
		return -1;
	}
	if (a->maildir != NULL && a->maildir[0] != '/') {
		fprintf(stderr, "tern user: --maildir wants an absolute "
			"path\n");
		return -1;
	}
	return 0;
}

/* path made absolute against the working directory; heap or NULL */
static char *
absolute(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return xstrdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "tern user: getcwd: %s\n", strerror(errno));
		return NULL;
	}
	if (path[0] == '.' && path[1] == '/')
		path += 2;
	return xasprintf("%s/%s", cwd, path);
}

/* the accounts file of conf; for writers, state_dir is created (0700)
 * when the file lives there. Heap, or NULL after a message. */
static char *
accounts_path(const struct tern_conf *conf, bool write, int *rc_r)
{
	char *dir, *path;

	*rc_r = USER_EX_CANTCREAT;
	if (conf->accounts_file != NULL && conf->accounts_file[0] != '\0')
		return absolute(conf->accounts_file);
	dir = absolute(conf->state_dir);
	if (dir == NULL)
		return NULL;
	if (write && io_mkdir_p(dir, 0700) < 0) {
		fprintf(stderr, "tern user: cannot create %s: %s\n", dir,
			strerror(errno));
		free(dir);
		return NULL;
	}
	path = xasprintf("%s/%s", dir, USER_ACCOUNTS_NAME);
	free(dir);
	return path;
}

static int
load(const char *path, struct account_table **t_r)
{
	char *error = NULL;

	if (account_table_load(path, t_r, &error) == 0)
		return 0;
	fprintf(stderr, "tern user: %s\n", error);
	free(error);
	return errno == EBADMSG ? USER_EX_DATAERR : USER_EX_IOERR;
}

/* ---- password input ------------------------------------------------------ */

/* the terminal's settings while echo is off, for the signal handler */
static struct termios saved_tty;
static volatile sig_atomic_t tty_saved;

static void
restore_tty_and_die(int sig)
{
	if (tty_saved)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	(void)signal(sig, SIG_DFL);
	(void)raise(sig);
}

/* one line from fd into buf (without its newline): 0, -1 read error,
 * -2 too long, -3 a NUL octet, -4 nothing at all (EOF at once) */
static int
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool any = false;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (c == '\0')
			return -3;
		if (n + 1 >= size)
			return -2;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return any ? 0 : -4;
}

static int
read_report(int r)
{
	switch (r) {
	case 0:
		return 0;
	case -1:
		fprintf(stderr, "tern user: reading the password: %s\n",
			strerror(errno));
		return USER_EX_IOERR;
	case -2:
		fprintf(stderr, "tern user: the password is longer than %u "
			"octets\n", ACCOUNT_PASSWORD_MAX);
		return USER_EX_DATAERR;
	case -3:
		fprintf(stderr, "tern user: the password contains a NUL "
			"octet\n");
		return USER_EX_DATAERR;
	default:
		fprintf(stderr, "tern user: no password on stdin\n");
		return USER_EX_DATAERR;
	}
}

/* asks on the terminal (stdin) with echo off */
static int
prompt(const char *text, char *buf, size_t size)
{
	struct sigaction sa, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct termios t;
	int r;

	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
		fprintf(stderr, "tern user: the terminal: %s\n",
			strerror(errno));
		return USER_EX_IOERR;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_tty_and_die;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 4; i++)
		(void)sigaction(sigs[i], &sa, &old[i]);
	tty_saved = 1;
	t = saved_tty;
	t.c_lflag &= ~(tcflag_t)ECHO;
	t.c_lflag |= ECHONL;
	fputs(text, stderr);
	fflush(stderr);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0) {
		r = -1;
	} else {
		r = read_line(STDIN_FILENO, buf, size);
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	}
	tty_saved = 0;
	for (int i = 0; i < 4; i++)
		(void)sigaction(sigs[i], &old[i], NULL);
	explicit_bzero(&t, sizeof(t));
	return read_report(r);
}

/* the new password into pw (USER_PW_BUF octets) */
static int
get_password(const struct user_args *a, const char *address, char *pw)
{
	char again[USER_PW_BUF], text[ACCOUNT_ADDRESS_MAX + 64];
	int rc;

	if (a->password_stdin) {
		rc = read_report(read_line(STDIN_FILENO, pw, USER_PW_BUF));
	} else if (isatty(STDIN_FILENO)) {
		snprintf(text, sizeof(text), "New password for %s: ", address);
		rc = prompt(text, pw, USER_PW_BUF);
		if (rc == 0)
			rc = prompt("Retype the password: ", again,
				    sizeof(again));
		if (rc == 0 && strcmp(pw, again) != 0) {
			fprintf(stderr, "tern user: the passwords differ\n");
			rc = USER_EX_DATAERR;
		}
		explicit_bzero(again, sizeof(again));
	} else {
		fprintf(stderr, "tern user: stdin is not a terminal: give "
			"the password with --password-stdin\n");
		return USER_EX_USAGE;
	}
	if (rc == 0 && pw[0] == '\0') {
		fprintf(stderr, "tern user: an empty password is refused\n");
		rc = USER_EX_DATAERR;
	}
	return rc;
}

/* ---- commands ------------------------------------------------------------ */

static int
cmd_list(const char *path)
{
	struct account_table *t;
	int rc = load(path, &t);

	if (rc != 0)
		return rc;
	for (size_t i = 0; i < account_table_count(t); i++)
		printf("%s\n", account_table_at(t, i)->address);
	account_table_free(&t);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tern user: writing the list: %s\n",
			strerror(errno));
		return USER_EX_IOERR;
	}
	return 0;
}

/* whether the command can be done on t: 0, or the exit status */
static int
check_exists(const struct user_args *a, const struct account_table *t,
	     const char *address)
{
	bool exists = account_find(t, address) != NULL;

	if (exists && user_cmds[a->cmd].cmd == USER_ADD) {
		fprintf(stderr, "tern user: %s exists (to change its password: "
			"tern user passwd %s)\n", address, address);
		return USER_EX_DATAERR;
	}
	if (!exists && user_cmds[a->cmd].cmd != USER_ADD) {
		fprintf(stderr, "tern user: %s: no such account\n", address);
		return USER_EX_DATAERR;
	}
	return 0;
}

/* the same before the password is asked for (checked again under the
 * lock) */
static int
precheck(const struct user_args *a, const char *path, const char *address)
{
	struct account_table *t;
	int rc = load(path, &t);

	if (rc != 0)
		return rc;
	rc = check_exists(a, t, address);
	account_table_free(&t);
	return rc;
}

/* add, passwd, del: under the lock, pw NULL for del */
static int
change(const struct user_args *a, const char *path, const char *address,
       const char *pw)
{
	enum user_cmd cmd = user_cmds[a->cmd].cmd;
	struct account_table *t = NULL;
	const char *err = NULL;
	char *error = NULL;
	int fd, rc;

	if (account_file_lock(path, &fd, &error) < 0) {
		fprintf(stderr, "tern user: cannot lock the accounts: %s\n",
			error);
		free(error);
		return USER_EX_CANTCREAT;
	}
	rc = load(path, &t);
	if (rc == 0)
		rc = check_exists(a, t, address);
	if (rc != 0)
		goto out;
	if (cmd == USER_DEL) {
		(void)account_remove(t, address);
	} else if (account_set_password(t, address, pw, &err) < 0 ||
		   (a->maildir != NULL &&
		    account_set_maildir(t, address, a->maildir, &err) < 0)) {
		fprintf(stderr, "tern user: %s: %s\n", address, err);
		rc = USER_EX_DATAERR;
		goto out;
	}
	if (account_table_save(path, t, &error) < 0) {
		fprintf(stderr, "tern user: %s\n", error);
		free(error);
		rc = USER_EX_CANTCREAT;
		goto out;
	}
	printf("%s %s\n", cmd == USER_ADD ? "added" :
	       cmd == USER_DEL ? "removed" : "new password for", address);
out:
	account_table_free(&t);
	account_file_unlock(fd);
	return rc;
}

static int
run(const struct user_args *a, const struct tern_conf *conf)
{
	enum user_cmd cmd = user_cmds[a->cmd].cmd;
	char pw[USER_PW_BUF];
	char *path, *address = NULL;
	int rc;

	path = accounts_path(conf, cmd != USER_LIST, &rc);
	if (path == NULL)
		return rc;
	if (cmd == USER_LIST) {
		rc = cmd_list(path);
		free(path);
		return rc;
	}
	address = account_address_normalize(a->address);
	if (cmd == USER_ADD) {
		const char *domain = account_address_domain(address);

		if (!account_address_valid(address)) {
			fprintf(stderr, "tern user: %s is not a valid address "
				"(local-part@domain)\n", a->address);
			rc = USER_EX_DATAERR;
			goto out;
		}
		if (!conf_is_local_domain(conf, domain)) {
			if (a->config != NULL)
				fprintf(stderr, "tern user: %s is not a local "
					"domain: add the line `domain = %s` "
					"to %s first\n", domain, domain,
					a->config);
			else
				fprintf(stderr, "tern user: %s is not a local "
					"domain of the embedded defaults: "
					"write a configuration with the line "
					"`domain = %s` and give it with "
					"--config FILE\n", domain, domain);
			rc = USER_EX_DATAERR;
			goto out;
		}
	}
	/* before asking for a password: is the command possible? */
	rc = precheck(a, path, address);
	if (rc != 0)
		goto out;
	if (cmd == USER_DEL) {
		rc = change(a, path, address, NULL);
		goto out;
	}
	rc = get_password(a, address, pw);
	if (rc == 0)
		rc = change(a, path, address, pw);
	explicit_bzero(pw, sizeof(pw));
out:
	free(address);
	free(path);
	return rc;
}

int
tern_user_main(int argc, char **argv, tern_conf_loader *loader)
{
	struct user_args a;
	struct tern_conf *conf;
	int rc = parse_args(argc, argv, &a);

	if (rc > 0)
		return 0;
	if (rc < 0) {
		user_usage(stderr);
		return USER_EX_USAGE;
	}
	conf = loader(a.config);
	if (conf == NULL)
		return USER_EX_CONFIG;
	rc = run(&a, conf);
	conf_free(&conf);
	return rc;
}

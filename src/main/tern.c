/* SPDX-License-Identifier: MIT */
/*
 * tern: the command line. `tern serve` runs the mail server, with a
 * configuration file or the embedded defaults; `tern check-config` and
 * `tern dump-config` check and show a configuration.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "main/tern_queue.h"
#include "main/tern_route.h"
#include "main/tern_sendmail.h"
#include "main/tern_user.h"
#include "serve/serve.h"

#define TERN_VERSION "0.1.0"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: tern serve [--config FILE]   run the mail server\n"
		"       tern check-config FILE       check a configuration and exit\n"
		"       tern dump-config [--config FILE]  print the effective configuration\n"
		"       tern route DOMAIN [--dns HOST:PORT] [--no-mx]  show the delivery route\n"
		"       tern sendmail [-t] [-i] [-f FROM] [RCPT...]  send a message (stdin)\n"
		"       tern queue list|show|flush|hold|release|delete ...  the mail queue\n"
		"       tern user add|passwd|del|list ...  the accounts that may log in\n"
		"       tern version\n"
		"Without --config, tern runs its embedded defaults: it listens on\n"
		"127.0.0.1:2525 and accepts mail for demo@localhost.\n");
}

/* reads a whole file; returns NULL and sets errno on failure */
static char *
read_file(const char *path, size_t *len_r)
{
	struct buf b;
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	buf_init(&b, 16 * 1024 * 1024);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			errno = EFBIG;
			goto fail;
		}
	}
	close(fd);
	buf_cstr(&b);
	*len_r = b.len;
	return (char *)b.p;
fail:
	{
		int saved = errno;
		close(fd);
		buf_clear(&b);
		errno = saved;
	}
	return NULL;
}

/* loads FILE, or the embedded defaults when path is NULL; prints errors */
static struct tern_conf *
load_conf(const char *path)
{
	struct tern_conf *conf = NULL;
	char *error = NULL;
	size_t len;
	char *text;
	int r;

	if (path == NULL) {
		const char *def = conf_default_text();
		r = conf_parse("(embedded defaults)", def, strlen(def), &conf,
			       &error);
	} else {
		text = read_file(path, &len);
		if (text == NULL) {
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
			return NULL;
		}
		r = conf_parse(path, text, len, &conf, &error);
		free(text);
	}
	if (r < 0) {
		fprintf(stderr, "%s\n", error);
		free(error);
		return NULL;
	}
	return conf;
}

/* makes a relative path absolute against the working directory */
static void
absolutize(char **pathp, const char *cwd)
{
	char *p = *pathp;
	const char *rel = p;

	if (p == NULL || p[0] == '/')
		return;
	if (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	*pathp = xasprintf("%s/%s", cwd, rel);
	free(p);
}


/*
 * Signals, each logged as it is handled: TERM and INT stop gracefully,
 * HUP reloads the certificates, USR1 reopens a log file (after logrotate
 * renamed it); PIPE is ignored (a peer that went away is seen on write).
 */
static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	log_info("tern event=signal signal=HUP action=reload");
	serve_reload(arg);
}

static void
on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct tern_server *srv = arg;
	const char *error = NULL;
	(void)sig;
	(void)what;

	/* the last line in the old file, when log is a file */
	log_info("tern event=signal signal=USR1 action=reopen_log log=%s",
		 srv->conf->log);
	if (log_reopen(&error) < 0)
		log_error("tern event=reopen_log log=%s error=\"%s\"",
			  srv->conf->log, error);
	else if (srv->conf->log[0] == '/')
		log_info("tern event=reopen_log log=%s", srv->conf->log);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct tern_server *srv = arg;
	(void)what;
	log_info("tern event=signal signal=%s action=stop",
		 sig == SIGTERM ? "TERM" : "INT");
	serve_notify_stopping();
	serve_stop(srv);
}

static int
cmd_serve(const char *config_path)
{
	struct tern_server srv;
	struct tern_conf *conf;
	struct event *ev_term, *ev_int, *ev_hup, *ev_usr1;
	char cwd[PATH_MAX], host[256];
	const char *error = NULL;
	char *err = NULL;
	int rc = 0;

	conf = load_conf(config_path);
	if (conf == NULL)
		return 1;
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "tern: getcwd: %s\n", strerror(errno));
		conf_free(&conf);
		return 1;
	}
	absolutize(&conf->state_dir, cwd);
	/* SIGHUP re-reads these: a relative path must not follow a chdir */
	if (conf->tls_cert[0] != '\0')
		absolutize(&conf->tls_cert, cwd);
	if (conf->tls_key[0] != '\0')
		absolutize(&conf->tls_key, cwd);
	if (conf->accounts_file[0] != '\0')
		absolutize(&conf->accounts_file, cwd);
	for (size_t i = 0; i < conf->ntls_sni; i++) {
		absolutize(&conf->tls_sni[i].cert, cwd);
		absolutize(&conf->tls_sni[i].key, cwd);
	}
	for (size_t i = 0; i < conf->nusers; i++)
		absolutize(&conf->users[i].maildir, cwd);
	log_set_format(strcmp(conf->log_format, "json") == 0 ?
		       LOG_FORMAT_JSON : LOG_FORMAT_TEXT);
	if (log_open(conf->log, (enum log_level)conf->log_level, &error) < 0) {
		fprintf(stderr, "tern: cannot open log %s: %s\n", conf->log, error);
		conf_free(&conf);
		return 1;
	}
	memset(&srv, 0, sizeof(srv));
	srv.conf = conf;
	if (conf->hostname != NULL && conf->hostname[0] != '\0') {
		srv.hostname = conf->hostname;
	} else {
		if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		free(conf->hostname);
		conf->hostname = xstrdup(host);
		srv.hostname = conf->hostname;
	}
	if (io_mkdir_p(conf->state_dir, 0700) < 0) {
		log_error("tern event=start error=\"cannot create %s: %s\"",
			  conf->state_dir, strerror(errno));
		conf_free(&conf);
		return 1;
	}
	log_info("tern event=start version=%s config=%s hostname=%s state_dir=%s",
		 TERN_VERSION, config_path != NULL ? config_path : "embedded",
		 srv.hostname, conf->state_dir);
	for (size_t i = 0; i < conf->nusers; i++)
		log_info("tern event=user name=%s maildir=%s", conf->users[i].name,
			 conf->users[i].maildir);
	{
		uint32_t seed = (uint32_t)getpid() * 2654435761u;
		srv.next_session_id = seed ^ (uint32_t)time(NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	/* until the loop handles them: during start-up the certificates and
	 * the log were just opened, and the default action would kill us */
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	{
		/* every session is a descriptor: allow as many as we may */
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	srv.base = event_base_new();
	if (srv.base == NULL)
		log_fatal("tern event=start error=\"event_base_new failed\"");
	/* the embedded defaults make a demo account to log in with */
	srv.demo = config_path == NULL;
	if (serve_start(&srv, &err) < 0) {
		log_error("tern event=start error=\"%s\"", err);
		free(err);
		rc = 1;
		goto out;
	}
	ev_term = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
	ev_int = evsignal_new(srv.base, SIGINT, on_signal, &srv);
	ev_hup = evsignal_new(srv.base, SIGHUP, on_hup, &srv);
	ev_usr1 = evsignal_new(srv.base, SIGUSR1, on_usr1, &srv);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	event_add(ev_usr1, NULL);
	log_info("tern event=ready domains=%zu users=%zu listeners=%zu",
		 conf->ndomains, conf->nusers, conf->nlisteners);
	serve_notify_ready(&srv);
	event_base_dispatch(srv.base);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_usr1);
out:
	serve_free(&srv);
	event_base_free(srv.base);
	log_info("tern event=stopped");
	conf_free(&conf);
	log_close();
	return rc;
}

static int
cmd_check(const char *path)
{
	struct tern_conf *conf = load_conf(path);
	if (conf == NULL)
		return 1;
	printf("%s: configuration OK\n", path);
	conf_free(&conf);
	return 0;
}

static int
cmd_dump(const char *path)
{
	struct tern_conf *conf = load_conf(path);
	struct buf out;

	if (conf == NULL)
		return 1;
	buf_init(&out, 0);
	conf_dump(conf, &out);
	fwrite(out.p, 1, out.len, stdout);
	buf_clear(&out);
	conf_free(&conf);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config = NULL;
	const char *base = strrchr(argv[0], '/');

	/* invoked as sendmail (a /usr/sbin/sendmail link): its options;
	 * as mailq: `tern queue list`, as with sendmail(8) */
	if (strcmp(base != NULL ? base + 1 : argv[0], "sendmail") == 0)
		return tern_sendmail_main(argc, argv, load_conf);
	if (strcmp(base != NULL ? base + 1 : argv[0], "mailq") == 0)
		return tern_queue_mailq(argc, argv, load_conf);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "check-config") == 0) {
		if (argc != 3) {
			usage(stderr);
			return 2;
		}
		return cmd_check(argv[2]);
	}
	if (strcmp(argv[1], "sendmail") == 0)
		return tern_sendmail_main(argc - 1, argv + 1, load_conf);
	if (strcmp(argv[1], "route") == 0)
		return tern_route_main(argc, argv, load_conf);
	if (strcmp(argv[1], "queue") == 0)
		return tern_queue_main(argc, argv, load_conf);
	if (strcmp(argv[1], "user") == 0)
		return tern_user_main(argc, argv, load_conf);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (int i = 2; i < argc; i++) {
		if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) &&
		    i + 1 < argc) {
			config = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(config);
	if (strcmp(argv[1], "dump-config") == 0)
		return cmd_dump(config);
	usage(stderr);
	return 2;
}

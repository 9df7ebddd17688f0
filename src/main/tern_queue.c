/* SPDX-License-Identifier: MIT */
/*
 * `tern queue ...` and `mailq`: the client of the server's control
 * socket, <state_dir>/control.sock (serve_control.c has the protocol).
 * It finds state_dir in the configuration, sends one request line,
 * prints the answer's body to stdout (or its error line to stderr) and
 * exits with a sysexits code. It never reads the spool itself: the
 * running server owns it.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "main/tern_queue.h"

/* sysexits.h */
#define QUEUE_EX_USAGE 64
#define QUEUE_EX_UNAVAILABLE 69
#define QUEUE_EX_TEMPFAIL 75
#define QUEUE_EX_PROTOCOL 76
#define QUEUE_EX_CONFIG 78

#define QUEUE_SOCKET_NAME "control.sock"
/* the server answers at once, except a delete of a message in delivery,
 * which waits for that attempt (bounded by the relay timeouts) */
#define QUEUE_ANSWER_TIMEOUT_MS (300 * 1000)
/* "ok" or "error: TEXT" */
#define QUEUE_FIRST_LINE_MAX 1024
/* longest ID we pass on (the server checks it) */
#define QUEUE_ID_MAX 64

enum queue_arg {
	QUEUE_ARG_NONE = 0,
	QUEUE_ARG_ID,         /* required */
	QUEUE_ARG_OPT_ID,     /* optional */
};

static const struct queue_cmd {
	const char *name;
	enum queue_arg arg;
	bool json;            /* takes --json */
} queue_cmds[] = {
	{ "list", QUEUE_ARG_NONE, true },
	{ "show", QUEUE_ARG_ID, true },
	{ "flush", QUEUE_ARG_OPT_ID, false },
	{ "hold", QUEUE_ARG_ID, false },
	{ "release", QUEUE_ARG_ID, false },
	{ "delete", QUEUE_ARG_ID, false },
};

static void
queue_usage(FILE *f)
{
	fprintf(f,
		"usage: tern queue list [--json]      the queued messages "
		"(also: mailq)\n"
		"       tern queue show ID [--json]   one message, with its "
		"delivery history\n"
		"                                     and header block\n"
		"       tern queue flush [ID]         retry deferred "
		"recipients now\n"
		"       tern queue hold ID            no delivery until "
		"released\n"
		"       tern queue release ID         end a hold; deliver "
		"now\n"
		"       tern queue delete ID          drop a message, "
		"without a bounce\n"
		"Each takes --config FILE, the server's configuration (for "
		"its state_dir);\nwithout it, the embedded defaults "
		"(./tern-state).\n"
		"Exit status: 0 ok, 1 the server refused, 64 bad usage, 69 "
		"no server running.\n");
}

static const struct queue_cmd *
find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(queue_cmds) / sizeof(queue_cmds[0]); i++)
		if (strcmp(queue_cmds[i].name, name) == 0)
			return &queue_cmds[i];
	return NULL;
}

/* an ID that cannot change the request: printable, no blank */
static bool
id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > QUEUE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

/* <state_dir>/control.sock, state_dir made absolute as `tern serve`
 * makes it; heap, or NULL after a message */
static char *
socket_path(const char *config, tern_conf_loader *load)
{
	struct tern_conf *conf = load(config);
	char cwd[PATH_MAX];
	const char *dir;
	char *path;

	if (conf == NULL)
		return NULL;
	dir = conf->state_dir;
	if (dir[0] == '/') {
		path = xasprintf("%s/%s", dir, QUEUE_SOCKET_NAME);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "tern queue: getcwd: %s\n", strerror(errno));
		path = NULL;
	} else {
		if (dir[0] == '.' && dir[1] == '/')
			dir += 2;
		path = xasprintf("%s/%s/%s", cwd, dir, QUEUE_SOCKET_NAME);
	}
	conf_free(&conf);
	return path;
}

static int
connect_to(const char *path, int *fd_r)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tern queue: the control socket path is too "
			"long: %s\n", path);
		return QUEUE_EX_UNAVAILABLE;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "tern queue: socket: %s\n", strerror(errno));
		return QUEUE_EX_UNAVAILABLE;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		(void)close(fd);
		if (e == ENOENT)
			fprintf(stderr, "tern queue: the server is not running "
				"(no control socket at %s)\n", path);
		else if (e == ECONNREFUSED)
			fprintf(stderr, "tern queue: the server is not running "
				"(nothing listens on %s)\n", path);
		else
			fprintf(stderr, "tern queue: cannot connect to %s: "
				"%s\n", path, strerror(e));
		return QUEUE_EX_UNAVAILABLE;
	}
	*fd_r = fd;
	return 0;
}

/* reads what is there, waiting at most the answer timeout: >0 octets,
 * 0 EOF, -1 error, -2 timeout (a message is printed for both) */
static ssize_t
read_some(int fd, void *p, size_t n)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, QUEUE_ANSWER_TIMEOUT_MS);
		ssize_t got;

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, "tern queue: no answer from the "
				"server within %d s\n",
				QUEUE_ANSWER_TIMEOUT_MS / 1000);
			return -2;
		}
		got = read(fd, p, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			fprintf(stderr, "tern queue: read: %s\n",
				strerror(errno));
		return got;
	}
}

/* sends the request and relays the answer */
static int
exchange(int fd, const char *req)
{
	char first[QUEUE_FIRST_LINE_MAX + 1];
	size_t nfirst = 0, reqlen = strlen(req);
	char chunk[16384];
	char *nl = NULL;
	ssize_t n;

	for (size_t off = 0; off < reqlen;) {
		n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "tern queue: send: %s\n",
				strerror(errno));
			return QUEUE_EX_UNAVAILABLE;
		}
		off += (size_t)n;
	}
	/* the first line: "ok" or "error: TEXT" */
	while (nl == NULL) {
		if (nfirst == QUEUE_FIRST_LINE_MAX) {
			fprintf(stderr, "tern queue: the server's answer "
				"makes no sense (a first line too long)\n");
			return QUEUE_EX_PROTOCOL;
		}
		n = read_some(fd, first + nfirst,
			      QUEUE_FIRST_LINE_MAX - nfirst);
		if (n < 0)
			return n == -2 ? QUEUE_EX_TEMPFAIL :
					 QUEUE_EX_UNAVAILABLE;
		if (n == 0) {
			fprintf(stderr, "tern queue: the server closed the "
				"connection without an answer\n");
			return QUEUE_EX_UNAVAILABLE;
		}
		nl = memchr(first + nfirst, '\n', (size_t)n);
		nfirst += (size_t)n;
	}
	first[nfirst] = '\0';
	*nl = '\0';
	if (strncmp(first, "error: ", 7) == 0) {
		fprintf(stderr, "tern queue: %s\n", first + 7);
		return 1;
	}
	if (strcmp(first, "ok") != 0) {
		fprintf(stderr, "tern queue: the server's answer makes no "
			"sense\n");
		return QUEUE_EX_PROTOCOL;
	}
	/* the body: what came after the first line, then the rest */
	fwrite(nl + 1, 1, nfirst - (size_t)(nl + 1 - first), stdout);
	while ((n = read_some(fd, chunk, sizeof(chunk))) > 0)
		fwrite(chunk, 1, (size_t)n, stdout);
	if (n < 0)
		return n == -2 ? QUEUE_EX_TEMPFAIL : QUEUE_EX_UNAVAILABLE;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "tern queue: writing the answer: %s\n",
			strerror(errno));
		return 1;
	}
	return 0;
}

/* args[0..n): the words after `tern queue` (or the preset command) */
static int
run(const char *preset, char **args, int n, tern_conf_loader *load)
{
	const struct queue_cmd *cmd = NULL;
	const char *config = NULL, *id = NULL;
	bool json = false;
	char *path, *req;
	int fd = -1, rc;

	if (preset != NULL)
		cmd = find_cmd(preset);
	for (int i = 0; i < n; i++) {
		const char *a = args[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			queue_usage(stdout);
			return 0;
		} else if ((strcmp(a, "--config") == 0 ||
			    strcmp(a, "-c") == 0) && i + 1 < n) {
			config = args[++i];
		} else if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (a[0] == '-') {
			fprintf(stderr, "tern queue: unknown option %s\n", a);
			goto usage;
		} else if (cmd == NULL) {
			cmd = find_cmd(a);
			if (cmd == NULL) {
				fprintf(stderr, "tern queue: unknown command "
					"%s\n", a);
				goto usage;
			}
		} else if (id == NULL && cmd->arg != QUEUE_ARG_NONE) {
			id = a;
		} else {
			fprintf(stderr, "tern queue: too many arguments\n");
			goto usage;
		}
	}
	if (cmd == NULL)
		goto usage;
	if (cmd->arg == QUEUE_ARG_ID && id == NULL) {
		fprintf(stderr, "tern queue: %s needs a queue ID\n",
			cmd->name);
		goto usage;
	}
	if (id != NULL && !id_ok(id)) {
		fprintf(stderr, "tern queue: bad id\n");
		return QUEUE_EX_USAGE;
	}
	if (json && !cmd->json) {
		fprintf(stderr, "tern queue: %s takes no --json\n", cmd->name);
		goto usage;
	}
	path = socket_path(config, load);
	if (path == NULL)
		return QUEUE_EX_CONFIG;
	rc = connect_to(path, &fd);
	free(path);
	if (rc != 0)
		return rc;
	req = xasprintf("%s%s%s%s\n", cmd->name, id != NULL ? " " : "",
			id != NULL ? id : "", json ? " json" : "");
	rc = exchange(fd, req);
	free(req);
	(void)close(fd);
	return rc;
usage:
	queue_usage(stderr);
	return QUEUE_EX_USAGE;
}

int
tern_queue_main(int argc, char **argv, tern_conf_loader *load)
{
	return run(NULL, argv + 2, argc - 2, load);
}

int
tern_queue_mailq(int argc, char **argv, tern_conf_loader *load)
{
	return run("list", argv + 1, argc - 1, load);
}

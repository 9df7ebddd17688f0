/* SPDX-License-Identifier: MIT */
/*
 * `tern sendmail`: the sendmail(1) command line that cron, PHP's mail()
 * and scripts use. It reads a message on stdin, completes its header
 * (Date:, Message-ID:, From: when missing; Bcc: removed), and hands it
 * to the running server over the local submission socket
 * <state_dir>/public/sendmail.sock, speaking SMTP through the client
 * engine smtpc/ over a blocking socket. It never queues by itself: when
 * the server cannot take the message now, it says so and exits non-zero
 * (sysexits.h), so that the caller can keep it and try again.
 *
 * Options as Postfix's sendmail takes them: -t -i -oi -f -r -F -bm -C,
 * and -o... (-odi, -odb, -oem and the like) accepted and ignored.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "main/tern_sendmail.h"
#include "msg/msg.h"
#include "serve/serve.h"
#include "smtp/smtp.h"
#include "smtpc/smtpc.h"

#define SM_PREFIX "tern sendmail: "
/* how long one write to the server may block (RFC 5321 §4.5.3.2.5
 * data block) */
#define SM_WRITE_TIMEOUT_SECONDS SMTPC_TIMEOUT_BLOCK_DEFAULT

struct sm_opts {
	bool extract;             /* -t */
	bool ignore_dots;         /* -i, -oi */
	const char *sender;       /* -f, -r */
	const char *full_name;    /* -F */
	const char *config;       /* -C, --config */
	char **rcpts;             /* arguments after the options */
	int nrcpts;
};

static void
sm_usage(void)
{
	fprintf(stderr,
		"usage: sendmail [-t] [-i] [-f sender] [-F full-name] "
		"[-C config] [-bm]\n"
		"                [-o option] [--] [recipient ...]\n"
		"  the message comes on stdin; without -i a line with only "
		"\".\" ends it\n");
}

/* -fADDR or -f ADDR: the value, advancing *i; NULL when it is missing */
static const char *
opt_value(int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (a[2] != '\0')
		return a + 2;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* 0, or EX_USAGE after a message */
static int
parse_args(int argc, char **argv, struct sm_opts *o)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--config") == 0) {
			if (i + 1 >= argc)
				goto missing;
			o->config = argv[++i];
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0) {
			o->config = a + 9;
			continue;
		}
		if (strspn(a + 1, "ti") == strlen(a + 1)) {
			/* -t, -i, and both together (-ti, -it) */
			if (strchr(a, 't') != NULL)
				o->extract = true;
			if (strchr(a, 'i') != NULL)
				o->ignore_dots = true;
			continue;
		}
		switch (a[1]) {
		case 'f':
		case 'r':
			if ((o->sender = opt_value(argc, argv, &i)) == NULL)
				goto missing;
			continue;
		case 'F':
			if ((o->full_name = opt_value(argc, argv, &i)) == NULL)
				goto missing;
			continue;
		case 'C':
			if ((o->config = opt_value(argc, argv, &i)) == NULL)
				goto missing;
			continue;
		case 'b':
			/* -bm: deliver mail, the only mode there is here */
			if (strcmp(a, "-bm") == 0)
				continue;
			fprintf(stderr, SM_PREFIX "mode %s is not supported "
				"(only -bm)\n", a);
			sm_usage();
			return EX_USAGE;
		case 'o':
			/* -oi is -i; the rest (-odi, -odb, -oem, -om, ...)
			 * are accepted and ignored, as Postfix does: the
			 * server decides how to deliver and report */
			if (a[2] == '\0')
				goto missing;
			if (strcmp(a, "-oi") == 0)
				o->ignore_dots = true;
			continue;
		default:
			fprintf(stderr, SM_PREFIX "unknown option %s\n", a);
			sm_usage();
			return EX_USAGE;
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = argc - i;
	return 0;
missing:
	fprintf(stderr, SM_PREFIX "option %s needs a value\n", argv[i]);
	sm_usage();
	return EX_USAGE;
}

/* ------------------------------------------------------------------ */
/* the message */

/*
 * Reads the message from fd into msg with CRLF line ends: until the end
 * of input, or without ignore_dots until a line holding only "." (the
 * old sendmail convention). Returns 0, or EX_DATAERR when it is larger
 * than max, EX_IOERR when stdin fails (after a message).
 */
static int
read_message(int fd, bool ignore_dots, uint64_t max, struct buf *msg)
{
	struct buf line;
	uint8_t chunk[16384];
	bool eof = false, done = false;
	int rc = 0;

	buf_init(&line, 0);
	while (!done && !eof) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		size_t start = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, SM_PREFIX "cannot read the message: "
				"%s\n", strerror(errno));
			rc = EX_IOERR;
			goto out;
		}
		eof = n == 0;
		for (size_t k = 0; k <= (size_t)n && !done; k++) {
			size_t len;

			if (k < (size_t)n && chunk[k] != '\n')
				continue;
			(void)buf_append(&line, chunk + start, k - start);
			start = k + 1;
			if (k == (size_t)n && (!eof || line.len == 0))
				break; /* a partial line waits for more */
			len = line.len;
			/* LF or CRLF ends a line; either becomes CRLF */
			if (len > 0 && line.p[len - 1] == '\r')
				len--;
			if (!ignore_dots && len == 1 && line.p[0] == '.') {
				done = true;
				break;
			}
			if (buf_append(msg, line.p, len) < 0 ||
			    buf_append(msg, "\r\n", 2) < 0) {
				fprintf(stderr, SM_PREFIX "the message is larger "
					"than the server's size_max (%llu "
					"octets)\n", (unsigned long long)max);
				rc = EX_DATAERR;
				goto out;
			}
			buf_reset(&line);
		}
	}
out:
	buf_clear(&line);
	return rc;
}

/* one header field: the octets of its lines, CRLFs included */
struct field {
	size_t off, len;
	size_t name_len;
	size_t value_off;         /* after the colon */
};

/*
 * RFC 5322 §2.2 field name: printable ASCII but ':', then the colon
 * (§4.5.3 obs-optional allows blanks before it). Returns the name's
 * length, 0 when the line is not a field.
 */
static size_t
field_name(const uint8_t *p, size_t n, size_t *colon_r)
{
	size_t i = 0, name;

	while (i < n && p[i] > 32 && p[i] < 127 && p[i] != ':')
		i++;
	name = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (name == 0 || i >= n || p[i] != ':')
		return 0;
	*colon_r = i;
	return name;
}

/*
 * Splits msg (CRLF lines) into its header fields and the offset of the
 * body. A message whose first line is no field has no header at all
 * (`echo hi | sendmail bob`): every line is body; the empty line that
 * ends the header is consumed (the caller writes it again).
 */
static struct field *
split_header(const struct buf *msg, size_t *nfields_r, size_t *body_r)
{
	struct field *f = NULL;
	size_t nf = 0, pos = 0;

	while (pos < msg->len) {
		const uint8_t *p = msg->p + pos;
		const uint8_t *e = memchr(p, '\n', msg->len - pos);
		size_t len = (size_t)(e - p) + 1, colon = 0, nl;

		if (len == 2) {
			/* the empty line */
			pos += len;
			break;
		}
		if ((p[0] == ' ' || p[0] == '\t') && nf > 0) {
			/* §2.2.3: a folded continuation */
			f[nf - 1].len += len;
			pos += len;
			continue;
		}
		nl = field_name(p, len - 2, &colon);
		if (nl == 0)
			break;
		f = xreallocarray(f, nf + 1, sizeof(*f));
		f[nf].off = pos;
		f[nf].len = len;
		f[nf].name_len = nl;
		f[nf].value_off = pos + colon + 1;
		nf++;
		pos += len;
	}
	*nfields_r = nf;
	*body_r = pos;
	return f;
}

static bool
field_is(const struct buf *msg, const struct field *f, const char *name)
{
	return f->name_len == strlen(name) &&
	       ascii_strncasecmp((const char *)msg->p + f->off, name,
				 f->name_len) == 0;
}

/* ------------------------------------------------------------------ */
/* addresses */

struct sm_rcpts {
	char **addrs;
	size_t n;
};

/* a bare local part gets the domain; heap */
static char *
qualify(const char *addr, const char *domain)
{
	if (strchr(addr, '@') != NULL || addr[0] == '\0')
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, domain);
}

static void
rcpt_add(struct sm_rcpts *r, const char *addr, const char *domain)
{
	char *a = qualify(addr, domain);

	/* one RCPT per address, however often it is named */
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->addrs[i], a) == 0) {
			free(a);
			return;
		}
	}
	r->addrs = xreallocarray(r->addrs, r->n + 1, sizeof(*r->addrs));
	r->addrs[r->n++] = a;
}

/* parses an address list (a header's body or an argument) into r;
 * EX_DATAERR (header) or EX_USAGE (argument) after a message */
static int
add_list(struct sm_rcpts *r, const uint8_t *p, size_t n, const char *what,
	 const char *domain, int ex)
{
	struct msg_addr_list l = { 0 };
	const char *error = NULL;

	if (msg_addr_list_parse(p, n, &l, &error) < 0) {
		char esc[200];
		fprintf(stderr, SM_PREFIX "cannot parse %s \"%s\": %s\n",
			what, log_escape(esc, sizeof(esc), p, n), error);
		return ex;
	}
	for (size_t i = 0; i < l.n; i++)
		rcpt_add(r, l.addrs[i], domain);
	msg_addr_list_clear(&l);
	return 0;
}

/* true when s has a byte that may not appear in an SMTP path */
static bool
bad_path(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 32 || c == 127 || c == '<' || c == '>')
			return true;
	}
	return false;
}

static bool
has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 128)
			return true;
	return false;
}

/* a display name as RFC 5322 §3.2.5 phrase: atoms and spaces as they
 * are, anything else as one quoted-string */
static void
append_phrase(struct buf *out, const char *name)
{
	bool plain = true;

	for (const char *p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == ' ' || c >= 128 ||
		      strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
			plain = false;
	}
	if (plain) {
		(void)buf_append_str(out, name);
		return;
	}
	(void)buf_append(out, "\"", 1);
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '"' || *p == '\\')
			(void)buf_append(out, "\\", 1);
		(void)buf_append(out, p, 1);
	}
	(void)buf_append(out, "\"", 1);
}

/* ------------------------------------------------------------------ */
/* the SMTP session over the local socket */

struct sm_result {
	bool have;
	unsigned code;
	char *text;               /* "550 5.1.1 text" */
	const char *stage;        /* what the reply answered */
};

struct sm_session {
	const char *path;
	int fd;
	struct smtpc *c;
	const struct smtpc_tx *tx;
	const struct buf *msg;
	struct sm_result *res;    /* one per recipient */
	bool begun, quit;
	int begin_ex;             /* smtpc_begin refused the message */
	const char *begin_error;
	bool failed;              /* FAILED */
	unsigned fail_code;       /* its reply's code, 0 for none */
	char *fail_text;
};

static char *
reply_text(const struct smtpc_reply *r)
{
	if (r->code == 0)
		return xstrdup("");
	return xasprintf("%u%s%s%s%s", r->code,
			 r->enhanced[0] != '\0' ? " " : "", r->enhanced,
			 r->text[0] != '\0' ? " " : "", r->text);
}

static void
on_event(struct sm_session *s, const struct smtpc_event *ev,
	 const char *stage)
{
	switch (ev->kind) {
	case SMTPC_EV_READY:
		if (s->begun) {
			smtpc_quit(s->c);
			break;
		}
		s->begun = true;
		if (smtpc_begin(s->c, s->tx, &s->begin_error) < 0) {
			s->begin_ex = EX_DATAERR;
			smtpc_quit(s->c);
		}
		break;
	case SMTPC_EV_BODY:
		smtpc_body(s->c, s->msg->p, s->msg->len);
		smtpc_body_end(s->c);
		break;
	case SMTPC_EV_RESULT: {
		struct sm_result *r = &s->res[ev->rcpt];
		free(r->text);
		r->have = true;
		r->code = ev->reply.code;
		r->text = reply_text(&ev->reply);
		r->stage = stage;
		break;
	}
	case SMTPC_EV_TX_DONE:
		smtpc_quit(s->c);
		s->quit = true;
		break;
	case SMTPC_EV_FAILED: {
		char *t = reply_text(&ev->reply);
		s->failed = true;
		s->fail_code = ev->reply.code;
		free(s->fail_text);
		s->fail_text = t[0] != '\0' ?
			xasprintf("%s during %s (%s)", ev->error, stage, t) :
			xasprintf("%s during %s", ev->error, stage);
		free(t);
		break;
	}
	case SMTPC_EV_STARTTLS: /* never asked for: smtpc_params.tls is 0 */
	case SMTPC_EV_NONE:
		break;
	}
}

/* writes what the engine has; -1 with errno */
static int
flush_out(struct sm_session *s)
{
	struct buf *out = smtpc_out(s->c);
	size_t off = 0;

	while (off < out->len) {
		ssize_t n = send(s->fd, out->p + off, out->len - off,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	buf_reset(out);
	return 0;
}

/*
 * Feeds server bytes one line at a time, so that the events of a reply
 * can be told apart by the stage that awaited it (a RESULT from RCPT TO
 * is a refused recipient; from the end of data, a refused message).
 * Returns -1 once the session is over.
 */
static int
feed(struct sm_session *s, const uint8_t *p, size_t n)
{
	while (n > 0) {
		const uint8_t *lf = memchr(p, '\n', n);
		size_t len = lf != NULL ? (size_t)(lf - p) + 1 : n;
		const char *stage = smtpc_stage(s->c);
		struct smtpc_event ev;
		size_t used = 0;
		int r;

		r = smtpc_feed(s->c, p, len, &used);
		while (smtpc_next(s->c, &ev))
			on_event(s, &ev, stage);
		if (r < 0)
			return -1;
		if (used == 0)
			used = len; /* buffered as a partial reply */
		p += used;
		n -= used;
	}
	return 0;
}

/* 0 when the session ran to its end (QUIT answered or the session
 * failed), else EX_TEMPFAIL after a message */
static int
converse(struct sm_session *s)
{
	uint8_t in[4096];

	for (;;) {
		struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
		unsigned timeout;
		ssize_t n;
		int r;

		if (flush_out(s) < 0) {
			fprintf(stderr, SM_PREFIX "lost the connection to the "
				"server at %s during %s: %s\n", s->path,
				smtpc_stage(s->c), strerror(errno));
			return EX_TEMPFAIL;
		}
		timeout = smtpc_timeout(s->c);
		r = poll(&pfd, 1, timeout > 0 ? (int)timeout * 1000 : -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, SM_PREFIX "no reply from the server at "
				"%s within %u s (waiting for %s)\n", s->path,
				timeout, smtpc_stage(s->c));
			return EX_TEMPFAIL;
		}
		n = r < 0 ? -1 : recv(s->fd, in, sizeof(in), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, SM_PREFIX "the server at %s closed the "
				"connection during %s%s%s\n", s->path,
				smtpc_stage(s->c), n < 0 ? ": " : "",
				n < 0 ? strerror(errno) : "");
			return EX_TEMPFAIL;
		}
		if (feed(s, in, (size_t)n) < 0) {
			(void)flush_out(s);
			return 0;
		}
	}
}

/* the socket, connected; -1 after a message */
static int
connect_server(const char *path)
{
	struct sockaddr_un sa;
	struct timeval tv = { SM_WRITE_TIMEOUT_SECONDS, 0 };
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, SM_PREFIX "cannot reach the server at %s: the "
			"path is longer than %zu octets\n", path,
			sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		fprintf(stderr, SM_PREFIX "cannot reach the server at %s: %s "
			"(is tern running?)\n", path, strerror(e));
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * The exit status of the session, with a line on stderr for every
 * recipient that did not get the message. A refused recipient (5xx to
 * RCPT) is EX_NOUSER, a refused message or sender EX_DATAERR, a
 * temporary refusal EX_TEMPFAIL, a broken session EX_SOFTWARE; the
 * gravest wins, in that order reversed.
 */
static int
outcome(struct sm_session *s, int conv_ex)
{
	const struct smtpc_tx *tx = s->tx;
	size_t ok = 0;
	int ex = 0;
	bool nouser = false, data = false, temp = false, soft = false;

	if (s->begin_error != NULL) {
		fprintf(stderr, SM_PREFIX "the server cannot take the message: "
			"%s\n", s->begin_error);
		return s->begin_ex;
	}
	for (size_t i = 0; i < tx->nrcpts; i++) {
		const struct sm_result *r = &s->res[i];
		const char *a = tx->rcpts[i].address;
		unsigned cls = r->have ? r->code / 100 : 0;

		if (cls == 2) {
			ok++;
			continue;
		}
		if (cls == 5 && strcmp(r->stage, "RCPT TO") == 0) {
			fprintf(stderr, SM_PREFIX "<%s>: recipient refused: "
				"%s\n", a, r->text);
			nouser = true;
		} else if (cls == 5) {
			fprintf(stderr, SM_PREFIX "<%s>: message refused at %s: "
				"%s\n", a, r->stage, r->text);
			data = true;
		} else if (cls == 4) {
			fprintf(stderr, SM_PREFIX "<%s>: temporary failure at "
				"%s, not sent, try again later: %s\n", a,
				r->stage, r->text);
			temp = true;
		} else {
			fprintf(stderr, SM_PREFIX "<%s>: not sent: %s\n", a,
				s->fail_text != NULL ? s->fail_text :
				"the session ended early");
			/* a 421, a lost connection or a timeout: the
			 * server may take it later */
			if (conv_ex != 0 || s->fail_code / 100 == 4)
				temp = true;
			else
				soft = true;
		}
	}
	if (ok > 0 && ok < tx->nrcpts)
		fprintf(stderr, SM_PREFIX "the message was sent to the other "
			"%zu recipient%s\n", ok, ok == 1 ? "" : "s");
	if (temp)
		ex = EX_TEMPFAIL;
	if (nouser)
		ex = EX_NOUSER;
	if (data)
		ex = EX_DATAERR;
	if (soft)
		ex = EX_SOFTWARE;
	return ex;
}

static int
submit(const char *path, const char *helo, const struct smtpc_tx *tx,
       const struct buf *msg)
{
	struct smtpc_params params = { .helo_name = helo };
	struct sm_session s = {
		.path = path, .tx = tx, .msg = msg,
	};
	int ex;

	s.fd = connect_server(path);
	if (s.fd < 0)
		return EX_UNAVAILABLE;
	s.c = smtpc_new(&params);
	s.res = xcalloc(tx->nrcpts, sizeof(*s.res));
	ex = converse(&s);
	ex = outcome(&s, ex);
	for (size_t i = 0; i < tx->nrcpts; i++)
		free(s.res[i].text);
	free(s.res);
	free(s.fail_text);
	smtpc_free(&s.c);
	(void)close(s.fd);
	return ex;
}

/* ------------------------------------------------------------------ */

/* the login name of the caller, as a mail admin sees it in logs */
static char *
login_name(void)
{
	struct passwd *pw = getpwuid(getuid());
	const char *env;

	if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0')
		return xstrdup(pw->pw_name);
	env = getenv("LOGNAME");
	if (env == NULL || env[0] == '\0')
		env = getenv("USER");
	if (env != NULL && env[0] != '\0')
		return xstrdup(env);
	return xasprintf("uid%u", (unsigned)getuid());
}

/* completes the header: From:, Date:, Message-ID: when missing, Bcc:
 * dropped (RFC 5322 §3.6.3: Bcc is for the sender's copy only); with -t
 * its recipients go to rcpts first */
static int
build_message(const struct buf *in, const struct sm_opts *o,
	      const char *sender, const char *host, const char *domain,
	      struct sm_rcpts *rcpts, struct buf *out)
{
	size_t nf, body;
	bool have_from = false, have_date = false, have_id = false;
	struct field *f = split_header(in, &nf, &body);
	int ex = 0;

	for (size_t i = 0; i < nf; i++) {
		const struct field *fi = &f[i];
		bool rcpt_field = field_is(in, fi, "To") ||
				  field_is(in, fi, "Cc") ||
				  field_is(in, fi, "Bcc");

		have_from |= field_is(in, fi, "From");
		have_date |= field_is(in, fi, "Date");
		have_id |= field_is(in, fi, "Message-ID");
		if (o->extract && rcpt_field) {
			char what[16];
			snprintf(what, sizeof(what), "%.*s:",
				 (int)fi->name_len,
				 (const char *)in->p + fi->off);
			ex = add_list(rcpts, in->p + fi->value_off,
				      fi->off + fi->len - fi->value_off, what,
				      domain, EX_DATAERR);
			if (ex != 0)
				goto out;
		}
		if (field_is(in, fi, "Bcc"))
			continue;
		(void)buf_append(out, in->p + fi->off, fi->len);
	}
	if (!have_from) {
		const char *from = sender[0] != '\0' ? sender : NULL;
		char *fallback = NULL;

		if (from == NULL) {
			char *login = login_name();
			fallback = qualify(login, domain);
			free(login);
			from = fallback;
		}
		(void)buf_append_str(out, "From: ");
		if (o->full_name != NULL && o->full_name[0] != '\0') {
			append_phrase(out, o->full_name);
			(void)buf_printf(out, " <%s>\r\n", from);
		} else {
			(void)buf_printf(out, "%s\r\n", from);
		}
		free(fallback);
	}
	if (!have_date) {
		/* RFC 5322 §3.6.1: the time it was handed to the system */
		char date[64];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		(void)buf_printf(out, "Date: %s\r\n", date);
	}
	if (!have_id) {
		/* RFC 5322 §3.6.4: unique: time, process and 64 random bits */
		uint64_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd ^= (uint64_t)time(NULL) * 2654435761u;
		(void)buf_printf(out, "Message-ID: <%lld.%ld.%016llx@%s>\r\n",
				 (long long)time(NULL), (long)getpid(),
				 (unsigned long long)rnd, host);
	}
	(void)buf_append(out, "\r\n", 2);
	(void)buf_append(out, in->p + body, in->len - body);
out:
	free(f);
	return ex;
}

int
tern_sendmail_main(int argc, char **argv, tern_conf_loader *load)
{
	struct sm_opts o = { 0 };
	struct tern_conf *conf = NULL;
	struct sm_rcpts rcpts = { 0 };
	struct smtpc_rcpt *tx_rcpts = NULL;
	struct smtpc_tx tx = { 0 };
	struct buf in, msg;
	char host[256], cwd[PATH_MAX];
	char *sender = NULL, *path = NULL, *login = NULL;
	const char *domain;
	int ex;

	buf_init(&in, 0);
	buf_init(&msg, 0);
	ex = parse_args(argc, argv, &o);
	if (ex != 0)
		goto out;
	if (o.config == NULL)
		o.config = getenv("TERN_CONFIG");
	if (o.config != NULL && o.config[0] == '\0')
		o.config = NULL;
	conf = load(o.config);
	if (conf == NULL) {
		fprintf(stderr, SM_PREFIX "cannot load the configuration %s\n",
			o.config != NULL ? o.config : "(embedded defaults)");
		ex = EX_CONFIG;
		goto out;
	}
	if (conf->hostname != NULL && conf->hostname[0] != '\0') {
		snprintf(host, sizeof(host), "%s", conf->hostname);
	} else if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0') {
		snprintf(host, sizeof(host), "localhost");
	}
	host[sizeof(host) - 1] = '\0';
	/*
	 * Bare names (the default sender, "-f root", "To: root") are
	 * qualified with the first local domain: there the server delivers
	 * them, so a bounce to the sender of a cron job comes back to a
	 * mailbox on this system, as with Postfix's myorigin (whose
	 * default, myhostname, is one of its local domains). The host name
	 * is used only when no domain is configured.
	 */
	domain = conf->ndomains > 0 ? conf->domains[0] : host;

	/* the envelope sender: -f/-r, else login@domain; "<>" is the null
	 * sender (RFC 5321 §4.5.5) */
	if (o.sender != NULL) {
		const char *s = o.sender;
		size_t n = strlen(s);
		char *bare;

		if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
			s++;
			n -= 2;
		}
		bare = xstrndup(s, n);
		if (bad_path(bare) || strchr(bare, ' ') != NULL) {
			fprintf(stderr, SM_PREFIX "bad sender address \"%s\"\n",
				o.sender);
			free(bare);
			ex = EX_USAGE;
			goto out;
		}
		sender = qualify(bare, domain);
		free(bare);
	} else {
		login = login_name();
		sender = qualify(login, domain);
	}

	for (int i = 0; i < o.nrcpts; i++) {
		const char *a = o.rcpts[i];
		ex = add_list(&rcpts, (const uint8_t *)a, strlen(a),
			      "the recipient", domain, EX_USAGE);
		if (ex != 0)
			goto out;
	}
	/* without -t and without recipients there is nobody to send to;
	 * fail before reading a message that would be lost */
	if (!o.extract && rcpts.n == 0) {
		fprintf(stderr, SM_PREFIX "no recipients given\n");
		sm_usage();
		ex = EX_USAGE;
		goto out;
	}
	/* the message as read, then as sent (headers added), both within
	 * the server's size_max */
	in.max = conf->size_max;
	ex = read_message(STDIN_FILENO, o.ignore_dots, conf->size_max, &in);
	if (ex != 0)
		goto out;
	ex = build_message(&in, &o, sender, host, domain, &rcpts, &msg);
	if (ex != 0)
		goto out;
	if (msg.len > conf->size_max) {
		fprintf(stderr, SM_PREFIX "the message is larger than the "
			"server's size_max (%llu octets)\n",
			(unsigned long long)conf->size_max);
		ex = EX_DATAERR;
		goto out;
	}
	if (rcpts.n == 0) {
		fprintf(stderr, SM_PREFIX "no recipients (none given and none "
			"in To:, Cc: or Bcc:)\n");
		ex = EX_USAGE;
		goto out;
	}
	for (size_t i = 0; i < rcpts.n; i++) {
		if (bad_path(rcpts.addrs[i])) {
			fprintf(stderr, SM_PREFIX "bad recipient address "
				"\"%s\"\n", rcpts.addrs[i]);
			ex = EX_DATAERR;
			goto out;
		}
	}

	tx_rcpts = xcalloc(rcpts.n, sizeof(*tx_rcpts));
	for (size_t i = 0; i < rcpts.n; i++)
		tx_rcpts[i].address = rcpts.addrs[i];
	tx.mail_from = sender;
	tx.size = msg.len;
	tx.rcpts = tx_rcpts;
	tx.nrcpts = rcpts.n;
	/* RFC 6152: 8-bit octets go as 8BITMIME; RFC 6531: UTF-8 in an
	 * address needs SMTPUTF8 */
	if (has_8bit(msg.p, msg.len))
		tx.body = SMTP_BODY_8BITMIME;
	tx.smtputf8 = has_8bit((const uint8_t *)sender, strlen(sender));
	for (size_t i = 0; i < rcpts.n; i++)
		tx.smtputf8 |= has_8bit((const uint8_t *)rcpts.addrs[i],
					strlen(rcpts.addrs[i]));

	/* state_dir as the server resolves it: a relative one against the
	 * working directory (the embedded default is ./tern-state) */
	if (conf->state_dir[0] == '/') {
		path = xasprintf("%s/%s", conf->state_dir,
				 SERVE_SENDMAIL_SOCKET);
	} else if (getcwd(cwd, sizeof(cwd)) != NULL) {
		const char *rel = conf->state_dir;
		if (rel[0] == '.' && rel[1] == '/')
			rel += 2;
		path = xasprintf("%s/%s/%s", cwd, rel, SERVE_SENDMAIL_SOCKET);
	} else {
		path = xasprintf("%s/%s", conf->state_dir,
				 SERVE_SENDMAIL_SOCKET);
	}
	ex = submit(path, host, &tx, &msg);
out:
	for (size_t i = 0; i < rcpts.n; i++)
		free(rcpts.addrs[i]);
	free(rcpts.addrs);
	free(tx_rcpts);
	free(sender);
	free(login);
	free(path);
	buf_clear(&in);
	buf_clear(&msg);
	conf_free(&conf);
	return ex;
}

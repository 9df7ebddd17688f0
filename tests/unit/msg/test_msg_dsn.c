/* SPDX-License-Identifier: MIT */
/*
 * Tests of msg_header_len(), msg_date() and msg_dsn_build(): every
 * action, several recipients, RET=HDRS, the full_max limit, ENVID and
 * ORCPT, hostile server replies, SMTPUTF8, boundary clashes and bad
 * input. Every notification is checked for CRLF lines within 998
 * octets, the boundary layout and, unless UTF-8 is expected, 7-bit text.
 *
 * With TERN_DSN_SAMPLES=dir set, one notification of each kind is
 * written there as <name>.eml for tests/unit/msg/check_dsn_samples.py,
 * which parses them with Python's email package.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "msg/msg.h"
#include "smtp/smtp.h"
#include "unit_check.h"

#define BND "tern-b0undary-1"

static const char orig_msg[] =
	"From: Alice <alice@origin.test>\r\n"
	"To: bob@remote.test\r\n"
	"Subject: hello\r\n"
	"Message-ID: <orig-1@origin.test>\r\n"
	"\r\n"
	"Body line one.\r\n"
	"BODY-MARKER line two.\r\n";

static struct msg_dsn_rcpt rc[4];
static struct msg_dsn dd;

static void
fixture(enum msg_dsn_action a)
{
	memset(rc, 0, sizeof(rc));
	memset(&dd, 0, sizeof(dd));
	rc[0].address = "bob@remote.test";
	rc[0].action = a;
	rc[0].remote_mta = "mx.remote.test";
	rc[0].diag = a == MSG_DSN_FAILED ?
		"550 5.1.1 <bob@remote.test>: Recipient address rejected" :
		a == MSG_DSN_DELAYED ? "451 4.7.1 Try again later" :
		"250 2.0.0 Ok: queued as 1234";
	rc[0].diag_is_smtp = true;
	rc[0].last_attempt = 1764770000;
	rc[0].retry_until = a == MSG_DSN_DELAYED ? 1765170000 : 0;
	dd.reporting_mta = "mx.tern.test";
	dd.from = "MAILER-DAEMON@mx.tern.test";
	dd.to = "alice@origin.test";
	dd.message_id = "dsn.1234@mx.tern.test";
	dd.boundary = BND;
	dd.arrival = 1764760000;
	dd.now = 1764770100;
	dd.orig = (const uint8_t *)orig_msg;
	dd.orig_len = sizeof(orig_msg) - 1;
	dd.full_max = 1 << 20;
	dd.rcpts = rc;
	dd.nrcpts = 1;
}

/* ------------------------------------------------------------------ */
/* helpers */

static void
save_sample(const char *name, const struct buf *b)
{
	const char *dir = getenv("TERN_DSN_SAMPLES");
	char path[4096];
	FILE *f;

	if (dir == NULL || dir[0] == '\0')
		return;
	if (snprintf(path, sizeof(path), "%s/%s.eml", dir, name) >=
	    (int)sizeof(path))
		fail_msg("sample path too long");
	f = fopen(path, "wb");
	if (f == NULL)
		fail_msg("cannot write %s", path);
	assert_int_equal(fwrite(b->p, 1, b->len, f), b->len);
	assert_int_equal(fclose(f), 0);
}

/* builds dd into a fresh buffer (NUL-terminated for strstr) */
static void
build(struct buf *b)
{
	const char *err = NULL;
	int r;

	buf_init(b, 0);
	r = msg_dsn_build(&dd, b, &err);
	if (r != 0)
		fail_msg("msg_dsn_build: got %d (%s), want 0", r,
			 err != NULL ? err : "");
	(void)buf_cstr(b);
}

/* every line ends CRLF and fits 998 octets; 7-bit unless allowed */
static void
check_lines(const struct buf *b, bool eight_ok)
{
	size_t line = 0;

	for (size_t i = 0; i < b->len; i++) {
		uint8_t c = b->p[i];

		if (c == '\n') {
			CHECK(i > 0 && b->p[i - 1] == '\r',
			      "bare LF at %zu", i);
			line = 0;
			continue;
		}
		if (c == '\r') {
			CHECK(i + 1 < b->len && b->p[i + 1] == '\n',
			      "bare CR at %zu", i);
			continue;
		}
		CHECK(c != 0, "NUL at %zu", i);
		CHECK(eight_ok || c < 0x80, "8-bit octet 0x%02x at %zu", c, i);
		line++;
		CHECK(line <= 998, "line over 998 octets at %zu", i);
	}
	CHECK(b->len >= 2 && b->p[b->len - 2] == '\r' &&
	      b->p[b->len - 1] == '\n', "does not end in CRLF");
}

/* how many lines are exactly s (s without CRLF) */
static unsigned
count_lines(const struct buf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned k = 0;

	for (size_t i = 0; i + n + 2 <= b->len; i++) {
		if (i > 0 && b->p[i - 1] != '\n')
			continue;
		if (memcmp(b->p + i, s, n) == 0 &&
		    memcmp(b->p + i + n, "\r\n", 2) == 0)
			k++;
	}
	return k;
}

/* how many lines start with s */
static unsigned
count_prefix(const struct buf *b, const char *s)
{
	size_t n = strlen(s);
	unsigned k = 0;

	for (size_t i = 0; i + n <= b->len; i++) {
		if (i > 0 && b->p[i - 1] != '\n')
			continue;
		if (memcmp(b->p + i, s, n) == 0)
			k++;
	}
	return k;
}

/* exactly 3 parts delimited by bnd, and nothing else looks like it */
static void
check_structure(const struct buf *b, const char *bnd)
{
	char open[128], close[128], prefix[128];

	(void)snprintf(open, sizeof(open), "--%s", bnd);
	(void)snprintf(close, sizeof(close), "--%s--", bnd);
	(void)snprintf(prefix, sizeof(prefix), "--%s", bnd);
	CHECK(count_lines(b, open) == 3, "got %u delimiters, want 3",
	      count_lines(b, open));
	CHECK(count_lines(b, close) == 1, "got %u close delimiters, want 1",
	      count_lines(b, close));
	CHECK(count_prefix(b, prefix) == 4,
	      "got %u lines starting with the boundary, want 4",
	      count_prefix(b, prefix));
}

static bool
has(const struct buf *b, const char *s)
{
	return strstr((const char *)b->p, s) != NULL;
}

#define HAS(b, s) CHECK(has(b, s), "missing \"%s\"", s)
#define HASNT(b, s) CHECK(!has(b, s), "unexpected \"%s\"", s)

/* ------------------------------------------------------------------ */

static void
test_header_len(void **state)
{
	static const struct {
		const char *in;
		size_t want;
	} cases[] = {
		{ "A: 1\r\nB: 2\r\n\r\nbody\r\n", 14 },
		{ "A: 1\nB: 2\n\nbody\n", 11 },
		{ "A: 1\r\nB: 2\r\n", 12 },           /* no body */
		{ "A: 1\r\nB: 2", 10 },               /* no final CRLF */
		{ "A: 1\r\n\r\n", 8 },
		{ "A: 1\n\n", 6 },
		{ "\r\nbody\r\n", 2 },                /* no header fields */
		{ "\nbody\n", 1 },
		{ "", 0 },
		{ "A: 1\r\n \r\nB: 2\r\n\r\nx", 17 },  /* WSP line is not empty */
		{ "A: 1\r\nB: 2\n\nx", 12 },           /* mixed ends */
		{ "A: 1\r\r\nx", 8 },                 /* CR CR LF: no empty line */
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = msg_header_len((const uint8_t *)cases[i].in,
					    strlen(cases[i].in));
		CHECK(got == cases[i].want, "header_len %zu: got %zu, want %zu",
		      i, got, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

static void
test_date(void **state)
{
	static const int64_t fixed[] = {
		0, 1, 86399, 86400, 951782400 /* 2000-02-29 */,
		951868800, 4107542400 /* 2100-03-01 */, 1764770100,
		253402300799, 68169600 /* 1972-02-29 */,
	};
	char got[MSG_DATE_MAX], want[64];
	uint64_t x = 88172645463325252ULL;

	(void)state;
	failures = 0;
	for (size_t i = 0; i < 2000; i++) {
		time_t t;
		struct tm tm;

		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			t = (time_t)fixed[i];
		} else {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			t = (time_t)(x % 253402300800ULL);
		}
		assert_non_null(gmtime_r(&t, &tm));
		strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S +0000",
			 &tm);
		msg_date((int64_t)t, got);
		CHECK(strcmp(got, want) == 0, "date %lld: got \"%s\", want \"%s\"",
		      (long long)t, got, want);
	}
	/* clamped, never wider than the buffer */
	CHECK(strcmp(msg_date(-5, got), "Thu, 01 Jan 1970 00:00:00 +0000") == 0,
	      "negative: got \"%s\"", got);
	CHECK(strcmp(msg_date(INT64_MAX, got),
		     "Fri, 31 Dec 9999 23:59:59 +0000") == 0,
	      "huge: got \"%s\"", got);
	assert_int_equal(failures, 0);
}

static void
test_kinds(void **state)
{
	static const struct {
		enum msg_dsn_action a;
		const char *name, *subject, *action, *status;
		bool retry;
	} cases[] = {
		{ MSG_DSN_FAILED, "failed", "Undelivered Mail Returned to Sender",
		  "Action: failed", "Status: 5.0.0", false },
		{ MSG_DSN_DELAYED, "delayed", "Delayed Mail (still being retried)",
		  "Action: delayed", "Status: 4.0.0", true },
		{ MSG_DSN_DELIVERED, "delivered", "Successful Mail Delivery Report",
		  "Action: delivered", "Status: 2.0.0", false },
		{ MSG_DSN_RELAYED, "relayed", "Successful Mail Delivery Report",
		  "Action: relayed", "Status: 2.0.0", false },
		{ MSG_DSN_EXPANDED, "expanded", "Successful Mail Delivery Report",
		  "Action: expanded", "Status: 2.0.0", false },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;
		char subj[128];

		fixture(cases[i].a);
		build(&b);
		check_lines(&b, false);
		check_structure(&b, BND);
		(void)snprintf(subj, sizeof(subj), "Subject: %s\r\n",
			       cases[i].subject);
		HAS(&b, subj);
		HAS(&b, cases[i].action);
		HAS(&b, cases[i].status);
		HAS(&b, "From: Mail Delivery System <MAILER-DAEMON@mx.tern.test>\r\n");
		HAS(&b, "To: <alice@origin.test>\r\n");
		HAS(&b, "Date: Wed, 03 Dec 2025 13:55:00 +0000\r\n");
		HAS(&b, "Message-ID: <dsn.1234@mx.tern.test>\r\n");
		HAS(&b, "MIME-Version: 1.0\r\n");
		HAS(&b, "Content-Type: multipart/report; "
			"report-type=delivery-status;\r\n\tboundary=\"" BND "\"\r\n");
		HAS(&b, "Auto-Submitted: auto-replied\r\n");
		HAS(&b, "Content-Type: text/plain; charset=us-ascii\r\n");
		HAS(&b, "Content-Type: message/delivery-status\r\n");
		HAS(&b, "Content-Type: message/rfc822\r\n");
		HAS(&b, "Reporting-MTA: dns; mx.tern.test\r\n");
		HAS(&b, "Arrival-Date: Wed, 03 Dec 2025 11:06:40 +0000\r\n");
		HAS(&b, "Final-Recipient: rfc822; bob@remote.test\r\n");
		HAS(&b, "Remote-MTA: dns; mx.remote.test\r\n");
		HAS(&b, "Diagnostic-Code: smtp; ");
		HAS(&b, "Last-Attempt-Date: Wed, 03 Dec 2025 13:53:20 +0000\r\n");
		HAS(&b, "BODY-MARKER");
		HASNT(&b, "Original-Envelope-Id:");
		HASNT(&b, "Original-Recipient:");
		HASNT(&b, "Received-From-MTA:");
		HASNT(&b, "Content-Transfer-Encoding: 8bit\r\n");
		CHECK(has(&b, "Will-Retry-Until: Mon, 08 Dec 2025 05:00:00 +0000\r\n") ==
		      cases[i].retry, "%s: Will-Retry-Until: got %d, want %d",
		      cases[i].name, !cases[i].retry, cases[i].retry);
		save_sample(cases[i].name, &b);
		buf_clear(&b);
	}
	assert_int_equal(failures, 0);
}

static void
test_several(void **state)
{
	struct buf b;

	(void)state;
	failures = 0;
	fixture(MSG_DSN_FAILED);
	rc[1] = rc[0];
	rc[1].address = "carol@remote.test";
	rc[1].status = "5.2.2";
	rc[1].diag = "552 5.2.2 Mailbox full";
	rc[2] = rc[0];
	rc[2].address = "dave@local.test";
	rc[2].remote_mta = NULL;
	rc[2].diag = "mailbox /var/mail/dave: quota exceeded";
	rc[2].diag_is_smtp = false;
	rc[2].status = "not.a.status";
	rc[3] = rc[0];
	rc[3].address = "erin@remote.test";
	rc[3].action = MSG_DSN_DELAYED;
	rc[3].status = "4.4.1";
	rc[3].retry_until = 1765170000;
	dd.nrcpts = 4;
	dd.received_from = "dns; client.origin.test ([192.0.2.7])";
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND);
	CHECK(count_prefix(&b, "Final-Recipient: ") == 4,
	      "got %u Final-Recipient, want 4",
	      count_prefix(&b, "Final-Recipient: "));
	CHECK(count_prefix(&b, "Action: failed") == 3, "got %u failed, want 3",
	      count_prefix(&b, "Action: failed"));
	/* each block is preceded by an empty line (RFC 3464 §2.1) */
	HAS(&b, "+0000\r\n\r\nFinal-Recipient: rfc822; carol@remote.test\r\n");
	/* mixed kinds: the gravest names the report */
	HAS(&b, "Subject: Undelivered Mail Returned to Sender\r\n");
	HAS(&b, "Status: 5.2.2\r\n");
	HAS(&b, "Status: 4.4.1\r\n");
	HAS(&b, "Diagnostic-Code: X-tern; mailbox /var/mail/dave: quota exceeded\r\n");
	HAS(&b, "Received-From-MTA: dns; client.origin.test ([192.0.2.7])\r\n");
	HAS(&b, "<bob@remote.test>: delivery failed\r\n");
	HAS(&b, "<carol@remote.test>: delivery failed\r\n");
	HAS(&b, "<dave@local.test>: delivery failed\r\n");
	HAS(&b, "<erin@remote.test>: delivery delayed");
	HAS(&b, "    Reason: mailbox /var/mail/dave: quota exceeded\r\n");
	HAS(&b, "    The server replied: 552 5.2.2 Mailbox full\r\n");
	/* Will-Retry-Until only in the delayed block */
	CHECK(count_prefix(&b, "Will-Retry-Until:") == 1,
	      "got %u Will-Retry-Until, want 1",
	      count_prefix(&b, "Will-Retry-Until:"));
	/* no status and an invalid one fall back to the default */
	CHECK(count_prefix(&b, "Status: 5.0.0") == 2, "got %u Status 5.0.0, want 2",
	      count_prefix(&b, "Status: 5.0.0"));
	save_sample("several", &b);
	buf_clear(&b);
	assert_int_equal(failures, 0);
}

static void
test_ret_and_size(void **state)
{
	static const struct {
		const char *name;
		unsigned ret;
		long delta;           /* full_max = orig_len + delta */
		bool full;
	} cases[] = {
		{ NULL, SMTP_RET_UNSPEC, 0, true },
		{ NULL, SMTP_RET_FULL, 1, true },
		{ "toolarge", SMTP_RET_FULL, -1, false },
		{ NULL, SMTP_RET_UNSPEC, -1, false },
		{ "hdrs", SMTP_RET_HDRS, 100, false },
	};

	(void)state;
	failures = 0;
	assert_int_equal(MSG_DSN_RET_HDRS, SMTP_RET_HDRS);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		fixture(MSG_DSN_FAILED);
		dd.ret = cases[i].ret;
		dd.full_max = (size_t)((long)dd.orig_len + cases[i].delta);
		build(&b);
		check_lines(&b, false);
		check_structure(&b, BND);
		CHECK(has(&b, "BODY-MARKER") == cases[i].full,
		      "case %zu: body returned: got %d, want %d", i,
		      !cases[i].full, cases[i].full);
		CHECK(has(&b, "Content-Type: message/rfc822\r\n") == cases[i].full,
		      "case %zu: message/rfc822", i);
		CHECK(has(&b, "Content-Type: text/rfc822-headers\r\n") ==
		      !cases[i].full, "case %zu: text/rfc822-headers", i);
		HAS(&b, "Subject: hello\r\n");
		HAS(&b, "Message-ID: <orig-1@origin.test>\r\n");
		if (!cases[i].full) {
			/* headers without their empty line, then the
			 * delimiter */
			HAS(&b, "<orig-1@origin.test>\r\n\r\n--" BND "--\r\n");
			HAS(&b, "Only its header is returned below");
		}
		if (cases[i].name != NULL)
			save_sample(cases[i].name, &b);
		buf_clear(&b);
	}
	assert_int_equal(failures, 0);
}

static void
test_envid_orcpt(void **state)
{
	struct buf b;

	(void)state;
	failures = 0;
	fixture(MSG_DSN_FAILED);
	dd.envid = "QQ314159+2Bx";
	rc[0].orcpt = "rfc822;Bob+2BTag@Remote.test";
	rc[1] = rc[0];
	rc[1].address = "carol@remote.test";
	rc[1].orcpt = NULL;
	rc[2] = rc[0];
	rc[2].address = "dave@remote.test";
	rc[2].orcpt = "no-semicolon";           /* malformed: left out */
	dd.nrcpts = 3;
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND);
	HAS(&b, "Original-Envelope-Id: QQ314159+2Bx\r\n");
	HAS(&b, "\r\n\r\nOriginal-Recipient: rfc822;Bob+2BTag@Remote.test\r\n"
		"Final-Recipient: rfc822; bob@remote.test\r\n");
	CHECK(count_prefix(&b, "Original-Recipient:") == 1,
	      "got %u Original-Recipient, want 1",
	      count_prefix(&b, "Original-Recipient:"));
	save_sample("envid", &b);
	buf_clear(&b);
	assert_int_equal(failures, 0);
}

static void
test_hostile_diag(void **state)
{
	static char big[5001], bnd_long[5001];
	struct {
		const char *name, *diag, *want;
	} cases[] = {
		{ "cr", "550 a\rX-Injected: 1", "smtp; 550 a X-Injected: 1\r\n" },
		{ "lf", "550-a\n550 b\r\n", "smtp; 550-a 550 b\r\n" },
		{ "crlf-hdr", "550 x\r\n\r\n--" BND "--\r\nFrom: evil",
		  "smtp; 550 x --" BND "-- From: evil\r\n" },
		{ "8bit", "550 caf\xc3\xa9 \xff\x01\x7f \\",
		  "smtp; 550 caf\\xC3\\xA9 \\xFF\\x01\\x7F \\x5C\r\n" },
		{ "boundary", "--" BND, "smtp; --" BND "\r\n" },
		{ "big", big, NULL },
		{ "bigwords", bnd_long, NULL },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < 5000; i++)
		big[i] = (i % 50 == 49) ? ' ' : (char)('a' + i % 26);
	for (size_t i = 0; i < 5000; i++)
		bnd_long[i] = "\r\n--" BND "\xff"[i % (5 + sizeof(BND) - 1)];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		fixture(MSG_DSN_FAILED);
		rc[0].diag = cases[i].diag;
		/* HELO names and host names are short but may be odd */
		if (strlen(cases[i].diag) < 100) {
			dd.received_from = cases[i].diag;
			rc[0].remote_mta = cases[i].diag;
		}
		build(&b);
		check_lines(&b, false);
		check_structure(&b, BND);
		if (cases[i].want != NULL)
			CHECK(has(&b, cases[i].want),
			      "%s: missing \"%s\"", cases[i].name, cases[i].want);
		HASNT(&b, "\r\nX-Injected");
		HASNT(&b, "\r\nFrom: evil");
		if (i == 5)
			save_sample("hostile", &b);
		buf_clear(&b);
	}
	assert_int_equal(failures, 0);
}

static void
test_smtputf8(void **state)
{
	static const char uorig[] =
		"From: J\xc3\xb6rg <j\xc3\xb6rg@origin.test>\r\n"
		"Subject: gr\xc3\xbc\xc3\x9f\x65\r\n\r\nbody \xc3\xa9\r\n";
	struct buf b;

	(void)state;
	failures = 0;
	fixture(MSG_DSN_FAILED);
	dd.smtputf8 = true;
	dd.to = "j\xc3\xb6rg@origin.test";
	dd.orig = (const uint8_t *)uorig;
	dd.orig_len = sizeof(uorig) - 1;
	rc[0].address = "b\xc3\xb8" "b+x=y@remote.test";
	rc[0].orcpt = "utf-8;b\xc3\xb8" "b\\x{2B}x\\x{3D}y@remote.test";
	rc[0].diag = "550 5.1.1 b\xc3\xb8" "b unknown \xff";
	build(&b);
	check_lines(&b, true);
	check_structure(&b, BND);
	HAS(&b, "Content-Type: message/global-delivery-status\r\n");
	HAS(&b, "Content-Type: message/global\r\n");
	HAS(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n");
	HAS(&b, "Content-Transfer-Encoding: 8bit\r\n");
	HAS(&b, "Final-Recipient: utf-8; b\xc3\xb8" "b\\x{2B}x\\x{3D}y@remote.test\r\n");
	HAS(&b, "Diagnostic-Code: smtp; 550 5.1.1 b\xc3\xb8" "b unknown \\xFF\r\n");
	HAS(&b, "To: <j\xc3\xb6rg@origin.test>\r\n");
	save_sample("utf8", &b);
	buf_clear(&b);

	/* the same with RET=HDRS: message/global-headers */
	dd.ret = SMTP_RET_HDRS;
	build(&b);
	check_lines(&b, true);
	HAS(&b, "Content-Type: message/global-headers\r\n");
	HASNT(&b, "body \xc3\xa9");
	buf_clear(&b);

	/* the text part is QP: 7-bit apart from the other parts */
	assert_int_equal(failures, 0);
}

static void
test_original_forms(void **state)
{
	static char longline[3000];
	static const char lf[] = "A: 1\nB: 2\n\nbody\nBODY-MARKER\n";
	static const char nul[] = "A: 1\r\n\r\nBODY-MARKER\0x\r\n";
	static const char clash[] = "A: 1\r\n\r\nx\r\n--" BND "\r\ny\r\n--"
		BND "=_1--\r\n";
	static const char hdr8[] = "A: caf\xc3\xa9\r\n\r\nBODY-MARKER\r\n";
	struct buf b;

	(void)state;
	failures = 0;
	/* LF-only: returned whole with CRLF */
	fixture(MSG_DSN_FAILED);
	dd.orig = (const uint8_t *)lf;
	dd.orig_len = sizeof(lf) - 1;
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND);
	HAS(&b, "\r\n\r\nA: 1\r\nB: 2\r\n\r\nbody\r\nBODY-MARKER\r\n");
	buf_clear(&b);

	/* a 1500-octet line cannot go in message/rfc822: headers only */
	memcpy(longline, "A: 1\r\n\r\n", 8);
	memset(longline + 8, 'z', 1500);
	memcpy(longline + 1508, "\r\n", 3);
	dd.orig = (const uint8_t *)longline;
	dd.orig_len = strlen(longline);
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND);
	HAS(&b, "Content-Type: text/rfc822-headers\r\n");
	HAS(&b, "lines that cannot be returned");
	buf_clear(&b);
	/* 998 octets is still fine */
	longline[8 + 998] = '\r';
	longline[8 + 999] = '\n';
	longline[8 + 1000] = '\0';
	dd.orig_len = strlen(longline);
	build(&b);
	check_lines(&b, false);
	HAS(&b, "Content-Type: message/rfc822\r\n");
	buf_clear(&b);
	/* 999 is not */
	longline[8 + 998] = 'z';
	longline[8 + 999] = 'z';
	longline[8 + 1000] = '\r';
	longline[8 + 1001] = '\n';
	longline[8 + 1002] = '\0';
	dd.orig_len = strlen(longline);
	build(&b);
	check_lines(&b, false);
	HAS(&b, "Content-Type: text/rfc822-headers\r\n");
	buf_clear(&b);

	/* a NUL: headers only */
	dd.orig = (const uint8_t *)nul;
	dd.orig_len = sizeof(nul) - 1;
	build(&b);
	check_lines(&b, false);
	HAS(&b, "Content-Type: text/rfc822-headers\r\n");
	HASNT(&b, "BODY-MARKER");
	buf_clear(&b);

	/* 8-bit header, headers only, no SMTPUTF8: quoted-printable */
	dd.orig = (const uint8_t *)hdr8;
	dd.orig_len = sizeof(hdr8) - 1;
	dd.ret = SMTP_RET_HDRS;
	build(&b);
	check_lines(&b, false);
	HAS(&b, "Content-Transfer-Encoding: quoted-printable\r\n\r\nA: caf=C3=A9\r\n");
	buf_clear(&b);
	/* whole: 8bit */
	dd.ret = SMTP_RET_FULL;
	build(&b);
	check_lines(&b, true);
	HAS(&b, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n");
	HAS(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/report; "
		"report-type=delivery-status;\r\n\tboundary=\"" BND "\"\r\n"
		"Content-Transfer-Encoding: 8bit\r\n");
	buf_clear(&b);

	/* the original holds the boundary and its first variant */
	dd.orig = (const uint8_t *)clash;
	dd.orig_len = sizeof(clash) - 1;
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND "=_2");
	HAS(&b, "boundary=\"" BND "=_2\"\r\n");
	save_sample("clash", &b);
	buf_clear(&b);

	/* no original at all */
	dd.orig = NULL;
	dd.orig_len = 0;
	build(&b);
	check_lines(&b, false);
	check_structure(&b, BND);
	buf_clear(&b);
	assert_int_equal(failures, 0);
}

static void
test_bad_input(void **state)
{
	static const char *const bad_addr[] = {
		"", "a\r\n@b", "a\x01@b", "caf\xc3\xa9@b", "\xff@b",
	};
	static const char *const bad_bnd[] = {
		"", "a b", "a\"b",
		"0123456789012345678901234567890123456789012345678901234567890",
	};
	struct buf b;
	const char *err;
	char huge[MSG_DSN_FIELD_MAX + 2];

	(void)state;
	failures = 0;
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	buf_init(&b, 0);
	(void)buf_append_str(&b, "keep");
	for (int k = 0; k < 20; k++) {
		fixture(MSG_DSN_FAILED);
		if (k < 5)
			rc[0].address = bad_addr[k];
		else if (k < 10)
			dd.to = bad_addr[k - 5];
		else if (k < 14)
			dd.boundary = bad_bnd[k - 10];
		else if (k == 14)
			dd.nrcpts = 0;
		else if (k == 15)
			dd.reporting_mta = NULL;
		else if (k == 16)
			dd.message_id = "a<b";
		else if (k == 17)
			rc[0].action = (enum msg_dsn_action)9;
		else if (k == 18)
			rc[0].remote_mta = huge;
		else
			dd.envid = "a b";
		err = NULL;
		CHECK(msg_dsn_build(&dd, &b, &err) == -1,
		      "bad case %d: got 0, want -1", k);
		CHECK(err != NULL, "bad case %d: no error text", k);
		CHECK(b.len == 4, "bad case %d: out changed", k);
	}
	/* a bounded output that is too small is left as it was */
	buf_clear(&b);
	buf_init(&b, 600);
	(void)buf_append_str(&b, "keep");
	fixture(MSG_DSN_FAILED);
	CHECK(msg_dsn_build(&dd, &b, &err) == -1, "small out: got 0, want -1");
	CHECK(b.len == 4, "small out: out changed to %zu octets", b.len);
	buf_clear(&b);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_several),
		cmocka_unit_test(test_ret_and_size),
		cmocka_unit_test(test_envid_orcpt),
		cmocka_unit_test(test_hostile_diag),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_original_forms),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests_name("msg_dsn", tests, NULL, NULL);
}

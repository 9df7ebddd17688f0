/* SPDX-License-Identifier: MIT */
/* Unit tests for base/ logging: log lines as JSON objects (log_json). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/base.h"
#include "unit_check.h"

static void
test_log_json(void **state)
{
	static const struct {
		const char *ts, *level, *in, *want;
	} cases[] = {
		{ "2024-01-02T03:04:05.678Z", "info",
		  "smtp sess=0000002a event=rcpt rcpt=<a@example.org> "
		  "reason=no_such_user result=\"550 5.1.1 No such user\"",
		  "{\"ts\":\"2024-01-02T03:04:05.678Z\",\"level\":\"info\","
		  "\"subsystem\":\"smtp\",\"sess\":\"0000002a\","
		  "\"event\":\"rcpt\",\"rcpt\":\"<a@example.org>\","
		  "\"reason\":\"no_such_user\","
		  "\"result\":\"550 5.1.1 No such user\"}" },
		/* no ts (syslog stamps its own) */
		{ NULL, "warn", "queue id=X event=accepted",
		  "{\"level\":\"warn\",\"subsystem\":\"queue\",\"id\":\"X\","
		  "\"event\":\"accepted\"}" },
		/* leading words name the subsystem, later ones are msg */
		{ NULL, "debug", "net dns event=route failed twice",
		  "{\"level\":\"debug\",\"subsystem\":\"net dns\","
		  "\"event\":\"route\",\"msg\":\"failed twice\"}" },
		{ NULL, "info", "just words",
		  "{\"level\":\"info\",\"subsystem\":\"just words\"}" },
		{ NULL, "info", "", "{\"level\":\"info\"}" },
		/* log_escape's \xHH keeps its backslash; quotes, control
		 * octets and octets past ASCII are escaped */
		{ NULL, "info", "smtp from=<\\x22a\\x20b\\x22@x>",
		  "{\"level\":\"info\",\"subsystem\":\"smtp\","
		  "\"from\":\"<\\\\x22a\\\\x20b\\\\x22@x>\"}" },
		{ NULL, "info", "smtp a=q\"x b=\x01\x7f\xc3\xa9",
		  "{\"level\":\"info\",\"subsystem\":\"smtp\","
		  "\"a\":\"q\\\"x\",\"b\":\"\\u0001\\u007f\\\\xc3\\\\xa9\"}" },
		/* a quoted value ends at a quote before the next key=value
		 * or the end */
		{ NULL, "info", "x error=\"a \"b\" c\" d=1",
		  "{\"level\":\"info\",\"subsystem\":\"x\","
		  "\"error\":\"a \\\"b\\\" c\",\"d\":\"1\"}" },
		{ NULL, "info", "x e=\"unclosed value",
		  "{\"level\":\"info\",\"subsystem\":\"x\","
		  "\"e\":\"unclosed value\"}" },
		{ NULL, "info", "x e=\"\" f=",
		  "{\"level\":\"info\",\"subsystem\":\"x\",\"e\":\"\","
		  "\"f\":\"\"}" },
		/* a word with "=" but no key is a word */
		{ NULL, "info", "x k=v =w <a=b>",
		  "{\"level\":\"info\",\"subsystem\":\"x\",\"k\":\"v\","
		  "\"msg\":\"=w <a=b>\"}" },
		/* a value with "=" in it */
		{ NULL, "info", "x orcpt=<a>:rfc822;b=c",
		  "{\"level\":\"info\",\"subsystem\":\"x\","
		  "\"orcpt\":\"<a>:rfc822;b=c\"}" },
	};
	char out[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = log_json(out, sizeof(out), cases[i].ts,
				    cases[i].level, cases[i].in);
		CHECK(strcmp(out, cases[i].want) == 0 && n == strlen(out),
		      "case %zu: got %s, want %s", i, out, cases[i].want);
	}
	assert_int_equal(failures, 0);
}

/* at every size the object is whole: it ends in "}" and a member that
 * does not fit is replaced by "truncated":"yes" */
static void
test_log_json_cut(void **state)
{
	static const char in[] =
		"smtp sess=0000002a event=rcpt rcpt=<a@example.org> "
		"result=\"550 5.1.1 No such user\"";
	static const char full[] =
		"{\"level\":\"info\",\"subsystem\":\"smtp\","
		"\"sess\":\"0000002a\",\"event\":\"rcpt\","
		"\"rcpt\":\"<a@example.org>\","
		"\"result\":\"550 5.1.1 No such user\"}";
	char out[256];

	(void)state;
	for (size_t sz = 32; sz <= sizeof(out); sz++) {
		memset(out, 'Z', sizeof(out));
		size_t n = log_json(out, sz, NULL, "info", in);
		CHECK(n < sz && out[n] == '\0', "size %zu: length %zu", sz,
		      n);
		CHECK(n > 0 && out[0] == '{' && out[n - 1] == '}',
		      "size %zu: got %s", sz, out);
		if (n == strlen(full)) {
			CHECK(strcmp(out, full) == 0, "size %zu: got %s", sz,
			      out);
		} else {
			static const char cut[] = "\"truncated\":\"yes\"}";
			size_t keep = n - strlen(cut);
			CHECK(n >= strlen(cut) &&
			      strcmp(out + keep, cut) == 0,
			      "size %zu: got %s", sz, out);
			/* what is before it is a prefix of the whole object,
			 * cut after a member */
			CHECK(keep == 1 ? out[0] == '{' :
			      strncmp(out, full, keep) == 0 &&
			      full[keep - 1] == ',',
			      "size %zu: got %s", sz, out);
		}
	}
	/* room for the whole object and the cut mark: whole */
	(void)log_json(out, sizeof(full) + 20, NULL, "info", in);
	CHECK(strcmp(out, full) == 0, "got %s", out);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_json),
		cmocka_unit_test(test_log_json_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * conf_parse(): every key with valid and invalid values, every numeric
 * limit at limit-1, limit and limit+1, suffixes, syntax errors and their
 * line numbers, duplicates, defaults and the whole-file checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "conf/conf_int.h"

#include "unit_check.h"

static const char *
nz(const char *s)
{
	return s != NULL ? s : "(null)";
}

/* the effective value of key as config text: the value of a scalar,
 * the "key = item" lines of a list */
static char *
effective(const struct tern_conf *conf, const char *key)
{
	const struct conf_key *k = conf_key_find(key, strlen(key));
	struct buf b;
	char *s;

	assert_non_null(k);
	buf_init(&b, 0);
	if (k->type == CONF_T_LIST)
		k->dump(conf, &b);
	else
		conf_key_format(k, conf, &b);
	s = xstrdup(buf_cstr(&b));
	buf_clear(&b);
	return s;
}

/* parses text; returns the error (heap) or NULL and the config */
static char *
parse(const char *text, struct tern_conf **conf_r)
{
	char *err = NULL;
	struct tern_conf *conf = NULL;
	int r = conf_parse("t.conf", text, strlen(text), &conf, &err);

	if (r == 0) {
		assert_non_null(conf);
		assert_null(err);
	} else {
		assert_int_equal(r, -1);
		assert_null(conf);
		assert_non_null(err);
	}
	if (conf_r != NULL)
		*conf_r = conf;
	else
		conf_free(&conf);
	return err;
}

/*
 * One line for one key, parsed as the first line of a config that also
 * defines the users zz and yy (unless the key is user). want is the
 * effective value of the key, or "!" and the error after "t.conf:1: ".
 */
struct value_case {
	const char *line;
	const char *key;
	const char *want;
};

static const struct value_case value_cases[] = {
	/* hostname: a domain name, or empty for the system's */
	{ "hostname = mx.example.org", "hostname", "mx.example.org" },
	{ "hostname =", "hostname", "" },
	{ "hostname =   # none", "hostname", "" },
	{ "hostname = localhost", "hostname", "localhost" },
	{ "hostname = MX.Example.ORG", "hostname", "MX.Example.ORG" },
	{ "hostname = mx-1.example.org", "hostname", "mx-1.example.org" },
	{ "hostname = 1mx.example.org", "hostname", "1mx.example.org" },
	{ "hostname = -mx.example.org", "hostname",
	  "!hostname: \"-mx.example.org\" is not a domain name" },
	{ "hostname = mx-.example.org", "hostname",
	  "!hostname: \"mx-.example.org\" is not a domain name" },
	{ "hostname = mx..example.org", "hostname",
	  "!hostname: \"mx..example.org\" is not a domain name" },
	{ "hostname = mx.example.org.", "hostname",
	  "!hostname: \"mx.example.org.\" is not a domain name" },
	{ "hostname = mx_1.example.org", "hostname",
	  "!hostname: \"mx_1.example.org\" is not a domain name" },
	{ "hostname = 192.0.2.1", "hostname",
	  "!hostname: \"192.0.2.1\" is not a domain name" },
	{ "hostname = mx example.org", "hostname",
	  "!hostname: \"mx example.org\" is not a domain name" },
	{ "hostname = m\xc3\xa4il.example", "hostname",
	  "!hostname: \"m\\xc3\\xa4il.example\" is not a domain name" },

	/* state_dir: any non-empty path, relative kept as given */
	{ "state_dir = /var/lib/tern", "state_dir", "/var/lib/tern" },
	{ "state_dir = tern-state", "state_dir", "tern-state" },
	{ "state_dir = ./a dir/b", "state_dir", "./a dir/b" },
	{ "state_dir =", "state_dir", "!state_dir: missing value" },

	/* log */
	{ "log = stderr", "log", "stderr" },
	{ "log = syslog", "log", "syslog" },
	{ "log = SysLog", "log", "syslog" },
	{ "log = /var/log/tern.log", "log", "/var/log/tern.log" },
	{ "log = tern.log", "log",
	  "!log: \"tern.log\" is not stderr, syslog or an absolute path" },
	{ "log = stdout", "log",
	  "!log: \"stdout\" is not stderr, syslog or an absolute path" },
	{ "log =", "log", "!log: missing value" },

	/* log_level */
	{ "log_level = debug", "log_level", "debug" },
	{ "log_level = info", "log_level", "info" },
	{ "log_level = warn", "log_level", "warn" },
	{ "log_level = error", "log_level", "error" },
	{ "log_level = WARN", "log_level", "warn" },
	{ "log_level = warning", "log_level",
	  "!log_level: \"warning\" is not a level (use debug, info, warn or "
	  "error)" },
	{ "log_level = 1", "log_level",
	  "!log_level: \"1\" is not a level (use debug, info, warn or "
	  "error)" },

	/* size_max: 1K .. 2G, suffixes are powers of 1024 */
	{ "size_max = 1023", "size_max",
	  "!size_max: \"1023\" is below the minimum 1K" },
	{ "size_max = 1024", "size_max", "1K" },
	{ "size_max = 1025", "size_max", "1025" },
	{ "size_max = 1K", "size_max", "1K" },
	{ "size_max = 1k", "size_max", "1K" },
	{ "size_max = 50M", "size_max", "50M" },
	{ "size_max = 50m", "size_max", "50M" },
	{ "size_max = 52428800", "size_max", "50M" },
	{ "size_max = 1536K", "size_max", "1536K" },
	{ "size_max = 2147483647", "size_max", "2147483647" },
	{ "size_max = 2147483648", "size_max", "2G" },
	{ "size_max = 2147483649", "size_max",
	  "!size_max: \"2147483649\" is above the maximum 2G" },
	{ "size_max = 2G", "size_max", "2G" },
	{ "size_max = 2g", "size_max", "2G" },
	{ "size_max = 2048M", "size_max", "2G" },
	{ "size_max = 2049M", "size_max",
	  "!size_max: \"2049M\" is above the maximum 2G" },
	{ "size_max = 3G", "size_max",
	  "!size_max: \"3G\" is above the maximum 2G" },
	{ "size_max = 0", "size_max",
	  "!size_max: \"0\" is below the minimum 1K" },
	{ "size_max = 0K", "size_max",
	  "!size_max: \"0K\" is below the minimum 1K" },
	{ "size_max = 18446744073709551615", "size_max",
	  "!size_max: \"18446744073709551615\" is above the maximum 2G" },
	{ "size_max = 18446744073709551616", "size_max",
	  "!size_max: \"18446744073709551616\" is not a size (a number with "
	  "an optional K, M or G suffix)" },
	{ "size_max = 17179869184G", "size_max",
	  "!size_max: \"17179869184G\" is not a size (a number with an "
	  "optional K, M or G suffix)" },
	{ "size_max = 1T", "size_max",
	  "!size_max: \"1T\" is not a size (a number with an optional K, M or "
	  "G suffix)" },
	{ "size_max = 10 M", "size_max",
	  "!size_max: \"10 M\" is not a size (a number with an optional K, M "
	  "or G suffix)" },
	{ "size_max = 10MB", "size_max",
	  "!size_max: \"10MB\" is not a size (a number with an optional K, M "
	  "or G suffix)" },
	{ "size_max = M", "size_max",
	  "!size_max: \"M\" is not a size (a number with an optional K, M or "
	  "G suffix)" },
	{ "size_max = -1", "size_max",
	  "!size_max: \"-1\" is not a size (a number with an optional K, M or "
	  "G suffix)" },
	{ "size_max = 1.5M", "size_max",
	  "!size_max: \"1.5M\" is not a size (a number with an optional K, M "
	  "or G suffix)" },
	{ "size_max =", "size_max", "!size_max: missing value" },

	/* rcpt_max: 100 (RFC 5321 §4.5.3.1.8) .. 100000 */
	{ "rcpt_max = 99", "rcpt_max",
	  "!rcpt_max: \"99\" is below the minimum 100" },
	{ "rcpt_max = 100", "rcpt_max", "100" },
	{ "rcpt_max = 101", "rcpt_max", "101" },
	{ "rcpt_max = 0100", "rcpt_max", "100" },
	{ "rcpt_max = 99999", "rcpt_max", "99999" },
	{ "rcpt_max = 100000", "rcpt_max", "100000" },
	{ "rcpt_max = 100001", "rcpt_max",
	  "!rcpt_max: \"100001\" is above the maximum 100000" },
	{ "rcpt_max = 1K", "rcpt_max", "!rcpt_max: \"1K\" is not a number" },
	{ "rcpt_max = +100", "rcpt_max",
	  "!rcpt_max: \"+100\" is not a number" },
	{ "rcpt_max = 1e3", "rcpt_max", "!rcpt_max: \"1e3\" is not a number" },
	{ "rcpt_max = 99999999999999999999", "rcpt_max",
	  "!rcpt_max: \"99999999999999999999\" is not a number" },
	{ "rcpt_max = ten", "rcpt_max", "!rcpt_max: \"ten\" is not a number" },

	/* errors_max: 1 .. 1000 */
	{ "errors_max = 0", "errors_max",
	  "!errors_max: \"0\" is below the minimum 1" },
	{ "errors_max = 1", "errors_max", "1" },
	{ "errors_max = 2", "errors_max", "2" },
	{ "errors_max = 999", "errors_max", "999" },
	{ "errors_max = 1000", "errors_max", "1000" },
	{ "errors_max = 1001", "errors_max",
	  "!errors_max: \"1001\" is above the maximum 1000" },

	/* sessions_max: 1 .. 1000000 */
	{ "sessions_max = 0", "sessions_max",
	  "!sessions_max: \"0\" is below the minimum 1" },
	{ "sessions_max = 1", "sessions_max", "1" },
	{ "sessions_max = 2", "sessions_max", "2" },
	{ "sessions_max = 999999", "sessions_max", "999999" },
	{ "sessions_max = 1000000", "sessions_max", "1000000" },
	{ "sessions_max = 1000001", "sessions_max",
	  "!sessions_max: \"1000001\" is above the maximum 1000000" },

	/* delivery_workers: 1 .. 64 */
	{ "delivery_workers = 0", "delivery_workers",
	  "!delivery_workers: \"0\" is below the minimum 1" },
	{ "delivery_workers = 1", "delivery_workers", "1" },
	{ "delivery_workers = 2", "delivery_workers", "2" },
	{ "delivery_workers = 63", "delivery_workers", "63" },
	{ "delivery_workers = 64", "delivery_workers", "64" },
	{ "delivery_workers = 65", "delivery_workers",
	  "!delivery_workers: \"65\" is above the maximum 64" },

	/* booleans */
	{ "vrfy = yes", "vrfy", "yes" },
	{ "vrfy = no", "vrfy", "no" },
	{ "vrfy = true", "vrfy", "yes" },
	{ "vrfy = false", "vrfy", "no" },
	{ "vrfy = on", "vrfy", "yes" },
	{ "vrfy = off", "vrfy", "no" },
	{ "vrfy = 1", "vrfy", "yes" },
	{ "vrfy = 0", "vrfy", "no" },
	{ "vrfy = YES", "vrfy", "yes" },
	{ "vrfy = maybe", "vrfy", "!vrfy: \"maybe\" is not yes or no" },
	{ "vrfy = 2", "vrfy", "!vrfy: \"2\" is not yes or no" },
	{ "vrfy =", "vrfy", "!vrfy: missing value" },
	{ "expn = yes", "expn", "yes" },
	{ "expn = Off", "expn", "no" },
	{ "expn = y", "expn", "!expn: \"y\" is not yes or no" },

	/* timeout_command: 1s .. 1h */
	{ "timeout_command = 0", "timeout_command",
	  "!timeout_command: \"0\" is below the minimum 1s" },
	{ "timeout_command = 0s", "timeout_command",
	  "!timeout_command: \"0s\" is below the minimum 1s" },
	{ "timeout_command = 1", "timeout_command", "1s" },
	{ "timeout_command = 1s", "timeout_command", "1s" },
	{ "timeout_command = 2", "timeout_command", "2s" },
	{ "timeout_command = 90", "timeout_command", "90s" },
	{ "timeout_command = 300", "timeout_command", "5m" },
	{ "timeout_command = 5m", "timeout_command", "5m" },
	{ "timeout_command = 3599", "timeout_command", "3599s" },
	{ "timeout_command = 3600", "timeout_command", "1h" },
	{ "timeout_command = 60m", "timeout_command", "1h" },
	{ "timeout_command = 1h", "timeout_command", "1h" },
	{ "timeout_command = 3601", "timeout_command",
	  "!timeout_command: \"3601\" is above the maximum 1h" },
	{ "timeout_command = 61m", "timeout_command",
	  "!timeout_command: \"61m\" is above the maximum 1h" },
	{ "timeout_command = 2h", "timeout_command",
	  "!timeout_command: \"2h\" is above the maximum 1h" },
	{ "timeout_command = 5M", "timeout_command",
	  "!timeout_command: \"5M\" is not a duration (seconds, or a number "
	  "with an s, m, h or d suffix)" },
	{ "timeout_command = 1d", "timeout_command",
	  "!timeout_command: \"1d\" is above the maximum 1h" },
	{ "queue_lifetime = 2d", "queue_lifetime", "2d" },
	{ "queue_lifetime = 36h", "queue_lifetime", "36h" },
	{ "timeout_command = 1w", "timeout_command",
	  "!timeout_command: \"1w\" is not a duration (seconds, or a number "
	  "with an s, m, h or d suffix)" },
	{ "timeout_command = 5 m", "timeout_command",
	  "!timeout_command: \"5 m\" is not a duration (seconds, or a number "
	  "with an s, m, h or d suffix)" },
	{ "timeout_command = m", "timeout_command",
	  "!timeout_command: \"m\" is not a duration (seconds, or a number "
	  "with an s, m, h or d suffix)" },
	{ "timeout_command = 5mm", "timeout_command",
	  "!timeout_command: \"5mm\" is not a duration (seconds, or a number "
	  "with an s, m, h or d suffix)" },
	{ "timeout_command = 5124095576030432h", "timeout_command",
	  "!timeout_command: \"5124095576030432h\" is not a duration "
	  "(seconds, or a number with an s, m, h or d suffix)" },
	{ "timeout_data = 0", "timeout_data",
	  "!timeout_data: \"0\" is below the minimum 1s" },
	{ "timeout_data = 1", "timeout_data", "1s" },
	{ "timeout_data = 2s", "timeout_data", "2s" },
	{ "timeout_data = 3m", "timeout_data", "3m" },
	{ "timeout_data = 3599s", "timeout_data", "3599s" },
	{ "timeout_data = 1h", "timeout_data", "1h" },
	{ "timeout_data = 3601s", "timeout_data",
	  "!timeout_data: \"3601s\" is above the maximum 1h" },

	/* listen = address:port [role] */
	{ "listen = 127.0.0.1:2525", "listen", "listen = 127.0.0.1:2525 mx\n" },
	{ "listen = 127.0.0.1:2525 mx", "listen",
	  "listen = 127.0.0.1:2525 mx\n" },
	{ "listen = 127.0.0.1:2525 MX", "listen",
	  "listen = 127.0.0.1:2525 mx\n" },
	{ "listen = 0.0.0.0:25\tmx", "listen", "listen = 0.0.0.0:25 mx\n" },
	{ "listen = 255.255.255.255:25", "listen",
	  "listen = 255.255.255.255:25 mx\n" },
	{ "listen = *:25", "listen", "listen = *:25 mx\n" },
	{ "listen = localhost:2525", "listen",
	  "listen = localhost:2525 mx\n" },
	{ "listen = LocalHost:2525", "listen",
	  "listen = localhost:2525 mx\n" },
	{ "listen = [::1]:2525", "listen", "listen = [::1]:2525 mx\n" },
	{ "listen = [::]:25", "listen", "listen = [::]:25 mx\n" },
	{ "listen = [2001:DB8::1]:25", "listen",
	  "listen = [2001:db8::1]:25 mx\n" },
	{ "listen = [1:2:3:4:5:6:7:8]:25", "listen",
	  "listen = [1:2:3:4:5:6:7:8]:25 mx\n" },
	{ "listen = [1::]:25", "listen", "listen = [1::]:25 mx\n" },
	{ "listen = [::ffff:192.0.2.1]:25", "listen",
	  "listen = [::ffff:192.0.2.1]:25 mx\n" },
	{ "listen = [1:2:3:4:5:6:192.0.2.1]:25", "listen",
	  "listen = [1:2:3:4:5:6:192.0.2.1]:25 mx\n" },
	{ "listen = 127.0.0.1:0", "listen",
	  "!listen: port \"0\" is not a number from 1 to 65535" },
	{ "listen = 127.0.0.1:1", "listen", "listen = 127.0.0.1:1 mx\n" },
	{ "listen = 127.0.0.1:2", "listen", "listen = 127.0.0.1:2 mx\n" },
	{ "listen = 127.0.0.1:025", "listen", "listen = 127.0.0.1:25 mx\n" },
	{ "listen = 127.0.0.1:65534", "listen",
	  "listen = 127.0.0.1:65534 mx\n" },
	{ "listen = 127.0.0.1:65535", "listen",
	  "listen = 127.0.0.1:65535 mx\n" },
	{ "listen = 127.0.0.1:65536", "listen",
	  "!listen: port \"65536\" is not a number from 1 to 65535" },
	{ "listen = 127.0.0.1:", "listen",
	  "!listen: port \"\" is not a number from 1 to 65535" },
	{ "listen = 127.0.0.1:smtp", "listen",
	  "!listen: port \"smtp\" is not a number from 1 to 65535" },
	{ "listen = 127.0.0.1", "listen",
	  "!listen: \"127.0.0.1\" has no port (use address:port)" },
	{ "listen = ::1:25", "listen",
	  "!listen: IPv6 addresses go in brackets, as in [::1]:2525" },
	{ "listen = [::1]25", "listen",
	  "!listen: \"[::1]25\" is not [IPv6]:port" },
	{ "listen = [::1:25", "listen",
	  "!listen: \"[::1:25\" is not [IPv6]:port" },
	{ "listen = [192.0.2.1]:25", "listen",
	  "!listen: \"192.0.2.1\" is not an IPv6 address" },
	{ "listen = [::1::2]:25", "listen",
	  "!listen: \"::1::2\" is not an IPv6 address" },
	{ "listen = [:::1]:25", "listen",
	  "!listen: \":::1\" is not an IPv6 address" },
	{ "listen = [:1]:25", "listen",
	  "!listen: \":1\" is not an IPv6 address" },
	{ "listen = [1:]:25", "listen",
	  "!listen: \"1:\" is not an IPv6 address" },
	{ "listen = [1:2:3:4:5:6:7]:25", "listen",
	  "!listen: \"1:2:3:4:5:6:7\" is not an IPv6 address" },
	{ "listen = [1:2:3:4:5:6:7:8:9]:25", "listen",
	  "!listen: \"1:2:3:4:5:6:7:8:9\" is not an IPv6 address" },
	{ "listen = [1:2:3:4:5:6:7::8]:25", "listen",
	  "!listen: \"1:2:3:4:5:6:7::8\" is not an IPv6 address" },
	{ "listen = [12345::]:25", "listen",
	  "!listen: \"12345::\" is not an IPv6 address" },
	{ "listen = [::g]:25", "listen",
	  "!listen: \"::g\" is not an IPv6 address" },
	{ "listen = [192.0.2.1::]:25", "listen",
	  "!listen: \"192.0.2.1::\" is not an IPv6 address" },
	{ "listen = [::1%eth0]:25", "listen",
	  "!listen: \"::1%eth0\" is not an IPv6 address" },
	{ "listen = 256.0.0.1:25", "listen",
	  "!listen: address \"256.0.0.1\" is not an IPv4 address, [IPv6], * "
	  "or localhost" },
	{ "listen = 1.2.3:25", "listen",
	  "!listen: address \"1.2.3\" is not an IPv4 address, [IPv6], * or "
	  "localhost" },
	{ "listen = 1.2.3.4.5:25", "listen",
	  "!listen: address \"1.2.3.4.5\" is not an IPv4 address, [IPv6], * or "
	  "localhost" },
	{ "listen = 01.2.3.4:25", "listen",
	  "!listen: address \"01.2.3.4\" is not an IPv4 address, [IPv6], * or "
	  "localhost" },
	{ "listen = mx.example.org:25", "listen",
	  "!listen: address \"mx.example.org\" is not an IPv4 address, [IPv6], "
	  "* or localhost" },
	{ "listen = :25", "listen",
	  "!listen: address \"\" is not an IPv4 address, [IPv6], * or "
	  "localhost" },
	{ "listen = 127.0.0.1:25 relay", "listen",
	  "!listen: role \"relay\" is not mx, submission or submissions" },
	{ "listen = 127.0.0.1:25 mx extra", "listen",
	  "!listen: expected address:port [role] [sessions=N]" },
	{ "listen = 127.0.0.1:587 submission sessions=20", "listen",
	  "listen = 127.0.0.1:587 submission sessions=20\n" },
	{ "listen = 127.0.0.1:25 sessions=5", "listen",
	  "listen = 127.0.0.1:25 mx sessions=5\n" },
	{ "listen = 127.0.0.1:25 mx sessions=0", "listen",
	  "!listen: \"sessions=0\" is not sessions=N with N from 1 to 1000000" },
	{ "listen = 127.0.0.1:25 mx sessions=2 x", "listen",
	  "!listen: expected address:port [role] [sessions=N]" },
	{ "listen = 127.0.0.1:587 submission", "listen",
	  "listen = 127.0.0.1:587 submission\n" },
	{ "listen = 127.0.0.1:465 submissions", "listen",
	  "listen = 127.0.0.1:465 submissions\n" },
	{ "tls_sni = Mail.Example.org /a.pem /a.key", "tls_sni",
	  "tls_sni = mail.example.org /a.pem /a.key\n" },
	{ "tls_sni = *.example.org /a.pem /a.key", "tls_sni",
	  "tls_sni = *.example.org /a.pem /a.key\n" },
	{ "tls_sni = mail.example.org /a.pem", "tls_sni",
	  "!tls_sni: expected name certificate-file key-file" },
	{ "tls_sni = a_b.org /a.pem /a.key", "tls_sni",
	  "!tls_sni: \"a_b.org\" is not a host name or *.domain" },
	{ "send_as = alice@Example.ORG @Example.org", "send_as",
	  "send_as = alice@example.org @example.org\n" },
	{ "send_as = alice@example.org", "send_as",
	  "!send_as: expected account address-or-@domain" },
	{ "send_as = alice bob@example.org", "send_as",
	  "!send_as: \"alice\" is not an account address" },
	{ "auth_mechanisms = PLAIN DIGEST-MD5", "auth_mechanisms",
	  "!auth_mechanisms: unknown mechanism \"DIGEST-MD5\" (PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256)" },
	{ "recipient_delimiter = +-", "recipient_delimiter",
	  "+-" },
	{ "recipient_delimiter = +/", "recipient_delimiter",
	  "!recipient_delimiter: \"/\" is not one of + - _ = ." },
	{ "listen =", "listen", "!listen: missing value" },

	/* domain, lower-cased */
	{ "domain = example.org", "domain", "domain = example.org\n" },
	{ "domain = Example.ORG", "domain", "domain = example.org\n" },
	{ "domain = localhost", "domain", "domain = localhost\n" },
	{ "domain = -x.org", "domain",
	  "!domain: \"-x.org\" is not a domain name" },
	{ "domain = example.org.", "domain",
	  "!domain: \"example.org.\" is not a domain name" },
	{ "domain = [192.0.2.1]", "domain",
	  "!domain: \"[192.0.2.1]\" is not a domain name" },
	{ "domain = 192.0.2.1", "domain",
	  "!domain: \"192.0.2.1\" is not a domain name" },
	{ "domain = a.org b.org", "domain",
	  "!domain: \"a.org b.org\" is not a domain name" },
	{ "domain =", "domain", "!domain: missing value" },

	/* user = name [maildir] */
	{ "user = alice", "user", "user = alice\n" },
	{ "user = Alice", "user", "user = alice\n" },
	{ "user = a+b_c-d.e", "user", "user = a+b_c-d.e\n" },
	{ "user = alice /srv/mail/alice", "user",
	  "user = alice /srv/mail/alice\n" },
	{ "user = alice \t /srv/mail box/", "user",
	  "user = alice /srv/mail box/\n" },
	{ "user = alice srv/mail", "user",
	  "!user: maildir \"srv/mail\" is not an absolute path" },
	{ "user = .alice", "user",
	  "!user: \".alice\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user = alice.", "user",
	  "!user: \"alice.\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user = a..b", "user",
	  "!user: \"a..b\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user = a@b", "user",
	  "!user: \"a@b\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user = a/b", "user",
	  "!user: \"a/b\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user = ..", "user",
	  "!user: \"..\" is not a user name (letters, digits and . _ + -, "
	  "at most 64)" },
	{ "user =", "user", "!user: missing value" },

	/* alias = name[:] target, target ... (users zz and yy exist) */
	{ "alias = team: zz, yy", "alias", "alias = team: zz, yy\n" },
	{ "alias = team:zz,yy", "alias", "alias = team: zz, yy\n" },
	{ "alias = team zz yy", "alias", "alias = team: zz, yy\n" },
	{ "alias = team : zz ,, yy ,", "alias", "alias = team: zz, yy\n" },
	{ "alias = Team: ZZ", "alias", "alias = team: zz\n" },
	{ "alias = team: zz, Carol@Example.NET", "alias",
	  "alias = team: zz, Carol@example.net\n" },
	{ "alias = team: zz@localhost", "alias",
	  "alias = team: zz@localhost\n" },
	{ "alias = team: ZZ@LOCALHOST", "alias",
	  "alias = team: ZZ@localhost\n" },
	{ "alias = team: x@example.org", "alias",
	  "alias = team: x@example.org\n" },
	{ "alias = postmaster: zz", "alias", "alias = postmaster: zz\n" },
	{ "alias = team: postmaster", "alias", "alias = team: postmaster\n" },
	{ "alias = team: team, zz", "alias", "alias = team: team, zz\n" },
	{ "alias = team: nobody", "alias",
	  "!alias: team: nobody is no local user or alias" },
	/* an address of a local domain may be an account */
	{ "alias = team: zz, nobody@localhost", "alias",
	  "alias = team: zz, nobody@localhost\n" },
	{ "alias = team:", "alias",
	  "!alias: team has no targets (use name: target, ...)" },
	{ "alias = team", "alias",
	  "!alias: team has no targets (use name: target, ...)" },
	{ "alias = : zz", "alias",
	  "!alias: \"\" is not an alias name (letters, digits and . _ + -, at "
	  "most 64)" },
	{ "alias = te/am: zz", "alias",
	  "!alias: \"te/am\" is not an alias name (letters, digits and "
	  ". _ + -, at most 64)" },
	{ "alias = zz: yy", "alias", "!alias: zz is also a user (line 2)" },
	{ "alias = team: zz;", "alias",
	  "!alias: target \"zz;\" is not a local name or an address" },
	{ "alias = team: b@", "alias",
	  "!alias: target \"b@\" is not an address" },
	{ "alias = team: @example.org", "alias",
	  "!alias: target \"@example.org\" is not an address" },
	{ "alias = team: a..b@example.org", "alias",
	  "!alias: target \"a..b@example.org\" is not an address" },
	{ "alias = team: \"a\"@example.org", "alias",
	  "!alias: target \"\\x22a\\x22@example.org\" is not an address" },
	{ "alias = team: team", "alias",
	  "!alias: team reaches no user and no address (a loop?)" },
	{ "alias =", "alias", "!alias: missing value" },
};

static void
test_values(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]);
	     i++) {
		const struct value_case *c = &value_cases[i];
		struct tern_conf *conf;
		char *text, *err, *got;

		text = xasprintf("%s\n%s", c->line,
				 strcmp(c->key, "user") == 0 ? "" :
				 "user = zz\nuser = yy\n");
		err = parse(text, &conf);
		if (c->want[0] == '!') {
			char *want = xasprintf("t.conf:1: %s", c->want + 1);
			CHECK(err != NULL && strcmp(err, want) == 0,
			      "%s: got error %s, want %s", c->line, nz(err),
			      want);
			free(want);
		} else if (err != NULL) {
			CHECK(false, "%s: got error %s, want value %s",
			      c->line, err, c->want);
		} else {
			got = effective(conf, c->key);
			CHECK(strcmp(got, c->want) == 0,
			      "%s: got %s, want %s", c->line, got, c->want);
			free(got);
		}
		free(err);
		free(text);
		conf_free(&conf);
	}
	assert_int_equal(failures, 0);
}

/* whole texts: want is NULL for success or the whole error */
struct text_case {
	const char *text;
	const char *want;
};

static const struct text_case text_cases[] = {
	{ "user = alice", NULL },
	{ "user = alice\n", NULL },
	{ "user = alice\r\nrcpt_max = 200\r\n", NULL },
	{ "\n\n  # comment\n\tuser\t=\talice\t# the admin\n", NULL },
	{ "user=alice", NULL },
	{ "user = alice#comment", NULL },
	{ "#user = nobody\nuser = alice", NULL },
	{ "user = alice\nhostname =\n", NULL },

	/* syntax */
	{ "foo = 1\nuser = a", "t.conf:1: unknown key \"foo\"" },
	{ "user = a\n\n# c\nHostname = x.org", "t.conf:4: unknown key "
	  "\"Hostname\"" },
	{ "user = a\nsize max = 1M", "t.conf:2: unknown key \"size max\"" },
	{ "user alice", "t.conf:1: expected key = value" },
	{ "user = a\n= 5", "t.conf:2: missing key before '='" },
	{ "user = a\n  =", "t.conf:2: missing key before '='" },
	{ "user = al\x01ice", "t.conf:1: control character \\x01 in line" },
	{ "user = a\nuser = b\x7f", "t.conf:2: control character \\x7f in "
	  "line" },
	{ "user = a\rb", "t.conf:1: control character \\x0d in line" },
	{ "user = a\n# \x01 in a comment is fine\n", NULL },
	{ "user = a = b",
	  "t.conf:1: user: maildir \"= b\" is not an absolute path" },

	/* duplicates */
	{ "user = a\nrcpt_max = 100\n\nrcpt_max = 200",
	  "t.conf:4: rcpt_max: key given twice (first at line 2)" },
	{ "hostname =\nuser = a\nhostname = x.org",
	  "t.conf:3: hostname: key given twice (first at line 1)" },
	{ "vrfy = no\nvrfy = no\nuser = a",
	  "t.conf:2: vrfy: key given twice (first at line 1)" },
	{ "user = a\nuser = A",
	  "t.conf:2: user: a given twice (first at line 1)" },
	{ "user = a\nuser = b /x\nuser = b /y",
	  "t.conf:3: user: b given twice (first at line 2)" },
	{ "domain = x.org\ndomain = X.ORG\nuser = a",
	  "t.conf:2: domain: \"x.org\" given twice" },
	{ "listen = *:25\nlisten = *:025 mx\nuser = a",
	  "t.conf:2: listen: *:25 given twice (first at line 1)" },
	{ "listen = [::1]:25\nlisten = [::1]:25 mx\nuser = a",
	  "t.conf:2: listen: [::1]:25 given twice (first at line 1)" },
	{ "listen = [::1]:25\nlisten = 127.0.0.1:25\nlisten = *:25\n"
	  "listen = [::1]:26\nuser = a", NULL },
	{ "user = a\nalias = x: a\nalias = X: a",
	  "t.conf:3: alias: x given twice (first at line 2)" },

	/* whole-file checks */
	{ "", "t.conf:1: no user defined" },
	{ "# only a comment\n\n", "t.conf:2: no user defined" },
	{ "hostname = x.org\ndomain = x.org\n",
	  "t.conf:2: no user defined" },
	{ "alias = a: b\nuser = a\nuser = b",
	  "t.conf:1: alias: a is also a user (line 2)" },
	{ "user = a\nalias = x: y\nalias = y: x",
	  "t.conf:2: alias: x reaches no user and no address (a loop?)" },
	{ "user = a\nalias = x: y\nalias = y: x, a", NULL },
	{ "user = a\nalias = x: y\nalias = y: z\nalias = z: x, y, q@remote.org",
	  NULL },
	{ "user = a\nalias = x: a@example.org", NULL },	/* not local */
	{ "user = a\nalias = x: b@example.org\ndomain = example.org", NULL },
	{ "user = a\nalias = x: a@example.org\ndomain = example.org", NULL },
	{ "user = a\nalias = x: b\nalias = b: a", NULL },
	{ "user = a\nalias = x: postmaster\nalias = postmaster: x",
	  "t.conf:2: alias: x reaches no user and no address (a loop?)" },
};

static void
test_texts(void **state)
{
	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]);
	     i++) {
		const struct text_case *c = &text_cases[i];
		char *err = parse(c->text, NULL);

		if (c->want == NULL)
			CHECK(err == NULL, "case %zu: got error %s, want "
			      "success", i, err);
		else
			CHECK(err != NULL && strcmp(err, c->want) == 0,
			      "case %zu: got %s, want %s", i, nz(err), c->want);
		free(err);
	}
	assert_int_equal(failures, 0);
}

/* a config without any optional line gets every default */
static void
test_defaults(void **state)
{
	struct tern_conf *conf;
	char *err;

	(void)state;
	err = parse("user = alice\n", &conf);
	assert_null(err);
	assert_string_equal(conf->hostname, CONF_HOSTNAME_DEFAULT);
	assert_string_equal(conf->state_dir, "tern-state");
	assert_string_equal(conf->log, "stderr");
	assert_int_equal(conf->log_level, CONF_LOG_INFO);
	assert_int_equal(conf->nlisteners, 1);
	assert_string_equal(conf->listeners[0].address, "127.0.0.1");
	assert_string_equal(conf->listeners[0].port, "2525");
	assert_int_equal(conf->listeners[0].role, CONF_ROLE_MX);
	assert_int_equal(conf->ndomains, 1);
	assert_string_equal(conf->domains[0], "localhost");
	assert_int_equal(conf->nusers, 1);
	assert_string_equal(conf->users[0].name, "alice");
	assert_string_equal(conf->users[0].maildir,
			    "tern-state/mail/alice/Maildir");
	assert_int_equal(conf->users[0].line, 1);
	assert_int_equal(conf->naliases, 0);
	assert_int_equal(conf->size_max, 50 * 1024 * 1024);
	assert_int_equal(conf->rcpt_max, 1000);
	assert_int_equal(conf->errors_max, 20);
	assert_int_equal(conf->sessions_max, 10000);
	assert_false(conf->vrfy);
	assert_false(conf->expn);
	assert_int_equal(conf->timeout_command, 300);
	assert_int_equal(conf->timeout_data, 180);
	assert_int_equal(conf->delivery_workers, 2);
	conf_free(&conf);
	assert_null(conf);
	conf_free(&conf);	/* NULL-safe */
}

/* every field lands where the table says */
static void
test_fields(void **state)
{
	static const char text[] =
		"hostname = mx.example.org\n"
		"state_dir = /srv/tern/\n"
		"log = syslog\n"
		"log_level = debug\n"
		"listen = [::1]:25 mx\n"
		"listen = *:2525\n"
		"domain = Example.ORG\n"
		"domain = example.net\n"
		"user = alice\n"
		"user = Bob /home/bob/Maildir\n"
		"alias = team: alice bob carol@elsewhere.org\n"
		"size_max = 10M\n"
		"rcpt_max = 200\n"
		"errors_max = 5\n"
		"sessions_max = 50\n"
		"vrfy = yes\n"
		"expn = on\n"
		"timeout_command = 10m\n"
		"timeout_data = 2\n"
		"delivery_workers = 8\n";
	struct tern_conf *conf;
	char *err;

	(void)state;
	err = parse(text, &conf);
	assert_null(err);
	assert_string_equal(conf->hostname, "mx.example.org");
	assert_string_equal(conf->state_dir, "/srv/tern/");
	assert_string_equal(conf->log, "syslog");
	assert_int_equal(conf->log_level, CONF_LOG_DEBUG);
	assert_int_equal(conf->nlisteners, 2);
	assert_string_equal(conf->listeners[0].address, "::1");
	assert_string_equal(conf->listeners[0].port, "25");
	assert_int_equal(conf->listeners[0].line, 5);
	assert_string_equal(conf->listeners[1].address, "*");
	assert_string_equal(conf->listeners[1].port, "2525");
	assert_int_equal(conf->listeners[1].role, CONF_ROLE_MX);
	assert_int_equal(conf->ndomains, 2);
	assert_string_equal(conf->domains[0], "example.org");
	assert_string_equal(conf->domains[1], "example.net");
	assert_int_equal(conf->nusers, 2);
	/* no double slash after a state_dir that ends in one */
	assert_string_equal(conf->users[0].maildir,
			    "/srv/tern/mail/alice/Maildir");
	assert_string_equal(conf->users[1].name, "bob");
	assert_string_equal(conf->users[1].maildir, "/home/bob/Maildir");
	assert_int_equal(conf->users[1].line, 10);
	assert_int_equal(conf->naliases, 1);
	assert_string_equal(conf->aliases[0].name, "team");
	assert_int_equal(conf->aliases[0].ntargets, 3);
	assert_string_equal(conf->aliases[0].targets[2],
			    "carol@elsewhere.org");
	assert_int_equal(conf->aliases[0].line, 11);
	assert_int_equal(conf->size_max, 10 * 1024 * 1024);
	assert_int_equal(conf->rcpt_max, 200);
	assert_int_equal(conf->errors_max, 5);
	assert_int_equal(conf->sessions_max, 50);
	assert_true(conf->vrfy);
	assert_true(conf->expn);
	assert_int_equal(conf->timeout_command, 600);
	assert_int_equal(conf->timeout_data, 2);
	assert_int_equal(conf->delivery_workers, 8);
	conf_free(&conf);
}

/* the user's maildir follows state_dir wherever state_dir is given */
static void
test_maildir_default(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "user = a", "tern-state/mail/a/Maildir" },
		{ "user = a\nstate_dir = /var/lib/tern",
		  "/var/lib/tern/mail/a/Maildir" },
		{ "state_dir = rel\nuser = a", "rel/mail/a/Maildir" },
		{ "state_dir = /\nuser = a", "/mail/a/Maildir" },
		{ "user = A /m/a\nstate_dir = /x", "/m/a" },
	};

	(void)state;
	failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tern_conf *conf;
		char *err = parse(cases[i].text, &conf);

		assert_null(err);
		CHECK(strcmp(conf->users[0].maildir, cases[i].want) == 0,
		      "case %zu: got %s, want %s", i, conf->users[0].maildir,
		      cases[i].want);
		conf_free(&conf);
	}
	assert_int_equal(failures, 0);
}

/* texts are len bytes, not NUL-terminated; a NUL is refused */
static void
test_bytes(void **state)
{
	static const char text[] = "user = alice\nrcpt_max = 200";
	struct tern_conf *conf = NULL;
	char *err = NULL;

	(void)state;
	/* cut inside "rcpt_max = 200": "rcpt_max = 2" is below 100 */
	assert_int_equal(conf_parse("t.conf", text, strlen(text) - 2, &conf,
				    &err), -1);
	assert_string_equal(err, "t.conf:2: rcpt_max: \"2\" is below the "
			    "minimum 100");
	free(err);
	assert_int_equal(conf_parse("t.conf", "user = a\0b", 10, &conf, &err),
			 -1);
	assert_string_equal(err, "t.conf:1: control character \\x00 in line");
	free(err);
	assert_int_equal(conf_parse("t.conf", "user = a\n#\0\n", 12, &conf,
				    &err), 0);
	conf_free(&conf);
	assert_int_equal(conf_parse("t.conf", NULL, 0, &conf, &err), -1);
	assert_string_equal(err, "t.conf:1: no user defined");
	free(err);
	assert_int_equal(conf_parse(NULL, "x", 1, &conf, &err), -1);
	assert_string_equal(err, "(config):1: expected key = value");
	free(err);
}

/* long names: labels of 63 and 64, local names of 64 and 65, 253 */
static void
test_lengths(void **state)
{
	char label[70], name[70], *text, *err;
	struct tern_conf *conf;
	struct buf dom;

	(void)state;
	memset(label, 'a', sizeof(label));
	memset(name, 'u', sizeof(name));

	text = xasprintf("user = a\nhostname = %.63s.org", label);
	err = parse(text, NULL);
	assert_null(err);
	free(text);
	text = xasprintf("user = a\nhostname = %.64s.org", label);
	err = parse(text, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err, "is not a domain name"));
	free(err);
	free(text);

	text = xasprintf("user = %.64s", name);
	err = parse(text, &conf);
	assert_null(err);
	assert_int_equal(strlen(conf->users[0].name), 64);
	conf_free(&conf);
	free(text);
	text = xasprintf("user = %.65s", name);
	err = parse(text, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err, "is not a user name"));
	free(err);
	free(text);

	/* 253 octets in all is the most (RFC 1035 §2.3.4 less the root) */
	buf_init(&dom, 0);
	for (int i = 0; i < 3; i++)
		buf_printf(&dom, "%.63s.", label);
	buf_printf(&dom, "%.61s", label);
	assert_int_equal(dom.len, 253);
	text = xasprintf("user = a\ndomain = %s", buf_cstr(&dom));
	err = parse(text, NULL);
	assert_null(err);
	free(text);
	buf_printf(&dom, "a");
	text = xasprintf("user = a\ndomain = %s", buf_cstr(&dom));
	err = parse(text, NULL);
	assert_non_null(err);
	free(err);
	free(text);
	buf_clear(&dom);
}

/* alias nesting: 16 levels pass, 17 are refused */
static void
test_alias_depth(void **state)
{
	(void)state;
	for (int n = CONF_ALIAS_DEPTH_MAX - 1; n <= CONF_ALIAS_DEPTH_MAX + 1;
	     n++) {
		struct buf b;
		char *err;

		buf_init(&b, 0);
		buf_printf(&b, "user = u\n");
		for (int i = 0; i < n; i++) {
			if (i + 1 < n)
				buf_printf(&b, "alias = a%d: a%d\n", i, i + 1);
			else
				buf_printf(&b, "alias = a%d: u\n", i);
		}
		err = parse(buf_cstr(&b), NULL);
		if (n <= CONF_ALIAS_DEPTH_MAX) {
			if (err != NULL)
				fail_msg("%d aliases: got %s, want success", n,
					 err);
		} else {
			assert_non_null(err);
			assert_string_equal(err, "t.conf:2: alias: a0 nests "
					    "deeper than 16 levels");
			free(err);
		}
		buf_clear(&b);
	}
}

/* the default texts of the table pass their own checks and limits */
static void
test_table(void **state)
{
	(void)state;
	assert_true(conf_nkeys >= 17);
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];
		char *msg = NULL, *v;

		assert_non_null(k->doc);
		assert_ptr_equal(conf_key_find(k->key, strlen(k->key)), k);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(conf_keys[j].key, k->key);
		switch (k->type) {
		case CONF_T_LIST:
			assert_non_null(k->add);
			assert_non_null(k->dump);
			assert_non_null(k->count);
			break;
		case CONF_T_STRING:
			v = xstrdup(k->def);
			if (k->check != NULL && k->check(v, &msg) < 0)
				fail_msg("%s: default: %s", k->key, msg);
			free(v);
			break;
		case CONF_T_UINT:
		case CONF_T_SIZE:
		case CONF_T_DURATION:
			if (k->defnum < k->min || k->defnum > k->max)
				fail_msg("%s: default %llu outside %llu..%llu",
					 k->key,
					 (unsigned long long)k->defnum,
					 (unsigned long long)k->min,
					 (unsigned long long)k->max);
			/* unsigned fields must hold the maximum */
			if (k->type != CONF_T_SIZE)
				assert_true(k->max <= UINT32_MAX);
			break;
		case CONF_T_LOG_LEVEL:
		case CONF_T_BOOL:
			break;
		}
	}
	assert_null(conf_key_find("nosuchkey", 9));
	assert_null(conf_key_find("user", 3));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_texts),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_maildir_default),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_alias_depth),
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests_name("conf_parse", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for deliver_maildir.c in real temporary directories: exact
 * bytes with the Return-Path line, idempotence (new/ and cur/ with
 * flags), a tmp/ leftover, directory creation, host name repair, the
 * TEMPFAIL/PERMFAIL split and batches.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/deliver_int.h"
#include "unit_fs.h"

struct fix {
	char dir[64];
	char md[128];
	int body_fd;
	uint8_t *body;
	size_t body_len;
};

#define PREFIX_LEN 7  /* spool-like junk before the body in the fd */

static void
set_body(struct fix *f, const void *p, size_t n)
{
	char path[128];

	if (f->body_fd >= 0)
		close(f->body_fd);
	free(f->body);
	f->body = xmalloc(n > 0 ? n : 1);
	memcpy(f->body, p, n);
	f->body_len = n;
	snprintf(path, sizeof(path), "%s/body", f->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "JUNK...", PREFIX_LEN), PREFIX_LEN);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	assert_int_equal(write(fd, "TRAILER", 7), 7);
	f->body_fd = fd;
}

static const char body_text[] =
	"Received: from client.example (192.0.2.1)\r\n"
	"\tby mx.example with ESMTP id X; Tue, 1 Jan 2030 00:00:00 +0000\r\n"
	"Subject: bytes\r\n"
	"\r\n"
	"crlf line\r\n"
	"bare lf\n"
	"bare cr\r"
	"nul \0 byte\r\n"
	"\xff\xfe high\r\n"
	".leading dot\r\n";

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));

	f->body_fd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-ut-deliver-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->md, sizeof(f->md), "%s/home/u/Maildir", f->dir);
	set_body(f, body_text, sizeof(body_text) - 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f->body_fd >= 0)
		close(f->body_fd);
	free(f->body);
	(void)chmod(f->dir, 0700);
	ut_rm_rf(f->dir);
	free(f);
	return 0;
}

/* the only entry of md/sub (NULL when empty); fails on more than one */
static char *
only_entry(const char *md, const char *sub)
{
	char p[256];
	char *name = NULL;

	snprintf(p, sizeof(p), "%s/%s", md, sub);
	DIR *d = opendir(p);
	if (d == NULL)
		return NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (name != NULL)
			fail_msg("%s: got a second entry %s", sub, de->d_name);
		name = xstrdup(de->d_name);
	}
	closedir(d);
	return name;
}

static uint8_t *
slurp(const char *md, const char *sub, const char *name, size_t *n_r)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/%s", md, sub, name);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*n_r = (size_t)st.st_size;
	return b;
}

static enum deliver_status
deliver(struct fix *f, const char *md, const char *unique, const char *host,
	const char *from, char **err_r)
{
	return maildir_deliver(md, unique, host, from, f->body_fd, PREFIX_LEN,
			       f->body_len, err_r);
}

static void
check_content(struct fix *f, const char *sub, const char *name,
	      const char *from)
{
	size_t n;
	uint8_t *got = slurp(f->md, sub, name, &n);
	char *rp = xasprintf("Return-Path: <%s>\r\n", from);
	size_t rl = strlen(rp);

	assert_int_equal(n, rl + f->body_len);
	assert_memory_equal(got, rp, rl);
	assert_memory_equal(got + rl, f->body, f->body_len);
	free(rp);
	free(got);
}

static void
test_exact_bytes(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	struct stat st;

	assert_int_equal(deliver(f, f->md, "1700000000.ID_0", "mx.example",
				 "sender@example.org", &err), DELIVER_OK);
	assert_null(err);
	char *name = only_entry(f->md, "new");
	assert_string_equal(name, "1700000000.ID_0.mx.example");
	check_content(f, "new", name, "sender@example.org");
	assert_null(only_entry(f->md, "tmp"));
	assert_null(only_entry(f->md, "cur"));
	/* created with mode 0700, parents too */
	static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
	for (size_t i = 0; i < 4; i++) {
		char p[256];
		snprintf(p, sizeof(p), "%s%s", f->md, subs[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	free(name);
}

static void
test_null_return_path_and_big_body(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	size_t n = 300000;
	uint8_t *big = xmalloc(n);

	for (size_t i = 0; i < n; i++)
		big[i] = (uint8_t)((i % 80) == 78 ? '\r' :
				   (i % 80) == 79 ? '\n' : 'a' + i % 26);
	set_body(f, big, n);
	free(big);
	assert_int_equal(deliver(f, f->md, "u1", "h", "", &err), DELIVER_OK);
	char *name = only_entry(f->md, "new");
	check_content(f, "new", name, "");
	free(name);
}

static void
test_second_call_writes_nothing(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	struct stat a, b;
	char p[512];

	assert_int_equal(deliver(f, f->md, "u", "h", "s@x", &err), DELIVER_OK);
	char *name = only_entry(f->md, "new");
	snprintf(p, sizeof(p), "%s/new/%s", f->md, name);
	assert_int_equal(stat(p, &a), 0);
	/* a different body proves nothing is rewritten */
	set_body(f, "other\r\n", 7);
	assert_int_equal(deliver(f, f->md, "u", "h", "s@x", &err), DELIVER_OK);
	assert_null(err);
	char *again = only_entry(f->md, "new");
	assert_string_equal(again, name);
	assert_int_equal(stat(p, &b), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_size, b.st_size);
	assert_null(only_entry(f->md, "tmp"));
	free(name);
	free(again);
}

/*
 * first_attempt tells the agent that no earlier copy can exist, so it
 * does not look: a copy planted under the same name is replaced, where a
 * retry (first_attempt false) would have kept it and written nothing.
 */
static void
test_first_attempt_does_not_look(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	struct stat a, b;
	char p[512];

	assert_int_equal(deliver(f, f->md, "u", "h", "s@x", &err), DELIVER_OK);
	snprintf(p, sizeof(p), "%s/new/u.h", f->md);
	assert_int_equal(stat(p, &a), 0);
	set_body(f, "other\r\n", 7);
	struct maildir_item it = {
		.maildir = f->md, .unique = "u", .return_path = "s@x",
		.body_fd = f->body_fd, .off = PREFIX_LEN, .len = f->body_len,
		.first_attempt = true,
	};
	maildir_deliver_n(&it, 1, "h");
	assert_int_equal(it.st, DELIVER_OK);
	assert_null(it.error);
	assert_int_equal(stat(p, &b), 0);
	assert_true(a.st_ino != b.st_ino);
	check_content(f, "new", "u.h", "s@x");
	assert_null(only_entry(f->md, "tmp"));
}

static void
test_found_in_cur_with_flags(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	static const char *const infos[] = { "", ":2,", ":2,S", ":2,FRS",
					     ",S=1234:2,S" };

	for (size_t i = 0; i < sizeof(infos) / sizeof(infos[0]); i++) {
		char unique[32], from[512], to[512];
		snprintf(unique, sizeof(unique), "u%zu", i);
		assert_int_equal(deliver(f, f->md, unique, "h", "s@x", &err),
				 DELIVER_OK);
		char *name = only_entry(f->md, "new");
		snprintf(from, sizeof(from), "%s/new/%s", f->md, name);
		snprintf(to, sizeof(to), "%s/cur/%s%s", f->md, name, infos[i]);
		assert_int_equal(rename(from, to), 0);  /* the reader */
		assert_int_equal(deliver(f, f->md, unique, "h", "s@x", &err),
				 DELIVER_OK);
		char *left = only_entry(f->md, "new");
		if (left != NULL)
			fail_msg("info \"%s\": got new/%s, want nothing",
				 infos[i], left);
		free(name);
	}
	/* a name that merely starts the same is another message */
	char from[512], to[512];
	assert_int_equal(deliver(f, f->md, "v", "h", "s@x", &err), DELIVER_OK);
	char *name = only_entry(f->md, "new");
	snprintf(from, sizeof(from), "%s/new/%s", f->md, name);
	snprintf(to, sizeof(to), "%s/cur/%sX:2,S", f->md, name);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(deliver(f, f->md, "v", "h", "s@x", &err), DELIVER_OK);
	char *redo = only_entry(f->md, "new");
	assert_non_null(redo);
	free(redo);
	free(name);
}

static void
test_tmp_leftover_rewritten(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	char p[512];

	/* a crash mid-write left a partial copy in tmp/ */
	assert_int_equal(deliver(f, f->md, "warmup", "h", "", &err),
			 DELIVER_OK);
	snprintf(p, sizeof(p), "%s/tmp/u.h", f->md);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "Return-Path: <s@x>\r\nRecei", 25), 25);
	close(fd);
	assert_int_equal(deliver(f, f->md, "u", "h", "s@x", &err), DELIVER_OK);
	assert_null(only_entry(f->md, "tmp"));
	check_content(f, "new", "u.h", "s@x");
}

static void
test_hostname_repair(void **state)
{
	struct fix *f = *state;
	char *err = NULL;

	assert_int_equal(deliver(f, f->md, "u", "a/b:c.example", "", &err),
			 DELIVER_OK);
	char *name = only_entry(f->md, "new");
	assert_string_equal(name, "u.a\\057b\\072c.example");
	free(name);
	/* no host name at all */
	assert_int_equal(deliver(f, f->md, "w", NULL, "", &err), DELIVER_OK);
	char p[256];
	snprintf(p, sizeof(p), "%s/new/w.localhost", f->md);
	assert_int_equal(access(p, F_OK), 0);
}

static void
test_return_path_cannot_inject(void **state)
{
	struct fix *f = *state;
	char *err = NULL;

	assert_int_equal(deliver(f, f->md, "u", "h", "a@b\r\nX-Evil: 1", &err),
			 DELIVER_OK);
	check_content(f, "new", "u.h", "a@bX-Evil: 1");
}

static void
test_failures(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	char p[256];

	/* the maildir path is a regular file: the admin can fix it */
	snprintf(p, sizeof(p), "%s/file", f->dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	assert_int_equal(deliver(f, p, "u", "h", "", &err), DELIVER_TEMPFAIL);
	assert_non_null(err);
	free(err);
	err = NULL;
	/* below a regular file */
	snprintf(p, sizeof(p), "%s/file/Maildir", f->dir);
	assert_int_equal(deliver(f, p, "u", "h", "", &err), DELIVER_TEMPFAIL);
	free(err);
	err = NULL;
	/* new/ is a file */
	snprintf(p, sizeof(p), "%s/odd", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/odd/new", f->dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/odd", f->dir);
	assert_int_equal(deliver(f, p, "u", "h", "", &err), DELIVER_TEMPFAIL);
	free(err);
	err = NULL;
	/* the spool body is shorter than it claims: nothing delivered */
	assert_int_equal(maildir_deliver(f->md, "short", "h", "", f->body_fd,
					 PREFIX_LEN, f->body_len + 1000, &err),
			 DELIVER_TEMPFAIL);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_null(only_entry(f->md, "new"));
	assert_null(only_entry(f->md, "tmp"));
	/* unusable names are a caller bug, permanent */
	static const char *const bad[] = { "", ".dot", "a/b", "a:b" };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(deliver(f, f->md, bad[i], "h", "", &err),
				 DELIVER_PERMFAIL);
		free(err);
		err = NULL;
	}
	assert_int_equal(deliver(f, "", "u", "h", "", &err), DELIVER_PERMFAIL);
	free(err);
	err = NULL;
	/* permission denied defers (root bypasses permissions: skip) */
	if (geteuid() != 0) {
		snprintf(p, sizeof(p), "%s/locked", f->dir);
		assert_int_equal(mkdir(p, 0500), 0);
		snprintf(p, sizeof(p), "%s/locked/Maildir", f->dir);
		assert_int_equal(deliver(f, p, "u", "h", "", &err),
				 DELIVER_TEMPFAIL);
		free(err);
	}
}

/* a batch: two Maildirs, first attempts, earlier copies in new/ and cur/,
 * bad items */
static void
test_batch(void **state)
{
	struct fix *f = *state;
	char *err = NULL;
	char md2[160], from[512], to[512];
	struct stat before, after;

	snprintf(md2, sizeof(md2), "%s/home/v/Maildir", f->dir);
	/* earlier attempts: b3 still in new/, b4 read and moved to cur/ */
	assert_int_equal(deliver(f, f->md, "b3", "h", "s@x", &err),
			 DELIVER_OK);
	assert_int_equal(deliver(f, md2, "b4", "h", "s@x", &err), DELIVER_OK);
	snprintf(from, sizeof(from), "%s/new/b4.h", md2);
	snprintf(to, sizeof(to), "%s/cur/b4.h:2,S", md2);
	assert_int_equal(rename(from, to), 0);
	snprintf(from, sizeof(from), "%s/new/b3.h", f->md);
	assert_int_equal(stat(from, &before), 0);

	struct maildir_item v[] = {
		/* first attempts: written without looking */
		{ .maildir = f->md, .unique = "b1", .first_attempt = true },
		{ .maildir = md2, .unique = "b2", .first_attempt = true },
		{ .maildir = f->md, .unique = "b3" },
		{ .maildir = md2, .unique = "b4" },
		{ .maildir = f->md, .unique = "a/b" },
		{ .maildir = "", .unique = "b6" },
	};
	static const enum deliver_status want[] = {
		DELIVER_OK, DELIVER_OK, DELIVER_OK, DELIVER_OK,
		DELIVER_PERMFAIL, DELIVER_PERMFAIL,
	};
	size_t n = sizeof(v) / sizeof(v[0]);
	for (size_t k = 0; k < n; k++) {
		v[k].return_path = "s@x";
		v[k].body_fd = f->body_fd;
		v[k].off = PREFIX_LEN;
		v[k].len = f->body_len;
		v[k].st = DELIVER_TEMPFAIL;
	}
	maildir_deliver_n(v, n, "h");
	for (size_t k = 0; k < n; k++) {
		if (v[k].st != want[k])
			fail_msg("item %zu: got status %d, want %d (%s)", k,
				 (int)v[k].st, (int)want[k],
				 v[k].error != NULL ? v[k].error : "-");
		if ((v[k].error != NULL) != (want[k] != DELIVER_OK))
			fail_msg("item %zu: error text mismatch", k);
		free(v[k].error);
	}
	check_content(f, "new", "b1.h", "s@x");
	assert_int_equal(stat(from, &after), 0);  /* b3 not rewritten */
	assert_int_equal(before.st_ino, after.st_ino);
	snprintf(from, sizeof(from), "%s/new/b2.h", md2);
	assert_int_equal(access(from, F_OK), 0);
	snprintf(from, sizeof(from), "%s/new/b4.h", md2);
	assert_int_equal(access(from, F_OK), -1);  /* b4 not doubled */
	assert_null(only_entry(f->md, "tmp"));
	assert_null(only_entry(md2, "tmp"));
	maildir_deliver_n(v, 0, "h");  /* an empty batch is fine */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exact_bytes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_null_return_path_and_big_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_call_writes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_attempt_does_not_look,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_found_in_cur_with_flags,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_leftover_rewritten,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostname_repair, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_return_path_cannot_inject,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

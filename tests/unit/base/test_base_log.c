/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for log_reopen(): after a rename the lines go to a new file
 * at the old path and the old file keeps the earlier ones; threads that
 * log during many rotations lose no line and split none; a path that
 * cannot be opened leaves the old file as the sink; stderr has nothing
 * to reopen.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_check.h"
#include "base/base.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/tern-test-log-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	(void)state;
	log_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *p;
	long n;

	if (f == NULL)
		return xstrdup("");
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	p = xmalloc((size_t)n + 1);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	return p;
}

static unsigned
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void
test_reopen_after_rename(void **state)
{
	char path[128], old[128], *text;
	const char *error = NULL;
	unsigned fds;
	(void)state;

	snprintf(path, sizeof(path), "%s/tern.log", dir);
	snprintf(old, sizeof(old), "%s/tern.log.1", dir);
	fds = open_fds();
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, &error), 0);
	log_info("test event=before");
	assert_int_equal(rename(path, old), 0);
	log_info("test event=renamed");   /* still the old file */
	assert_int_equal(log_reopen(&error), 0);
	log_info("test event=after");

	text = slurp(old);
	CHECK(strstr(text, "test event=before\n") != NULL &&
	      strstr(text, "test event=renamed\n") != NULL &&
	      strstr(text, "event=after") == NULL,
	      "old file: got %s", text);
	free(text);
	text = slurp(path);
	CHECK(strstr(text, "test event=after\n") != NULL &&
	      strstr(text, "event=before") == NULL,
	      "new file: got %s", text);
	free(text);
	{
		struct stat st;
		mode_t mask = umask(0);
		(void)umask(mask);
		assert_int_equal(stat(path, &st), 0);
		CHECK((st.st_mode & 0777) == (0640 & ~mask),
		      "mode: got %o", st.st_mode & 0777);
	}
	/* reopening without a rename appends to the same file */
	assert_int_equal(log_reopen(&error), 0);
	log_info("test event=again");
	text = slurp(path);
	CHECK(strstr(text, "test event=after\n") != NULL &&
	      strstr(text, "test event=again\n") != NULL,
	      "same file: got %s", text);
	free(text);
	log_close();
	CHECK(open_fds() == fds, "descriptors: got %u, want %u", open_fds(),
	      fds);
	assert_int_equal(failures, 0);
}

static void
test_reopen_fails(void **state)
{
	char sub[96], path[128], moved[96], *text;
	const char *error = NULL;
	(void)state;

	/* the directory goes away and a file takes its name: ENOTDIR */
	snprintf(sub, sizeof(sub), "%s/logs", dir);
	snprintf(path, sizeof(path), "%s/tern.log", sub);
	snprintf(moved, sizeof(moved), "%s/moved", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, &error), 0);
	assert_int_equal(rename(sub, moved), 0);
	{
		FILE *f = fopen(sub, "w");
		assert_non_null(f);
		fclose(f);
	}
	error = NULL;
	assert_int_equal(log_reopen(&error), -1);
	CHECK(error != NULL && strcmp(error, strerror(ENOTDIR)) == 0,
	      "error: got %s", error != NULL ? error : "(null)");
	log_info("test event=still_old");
	snprintf(path, sizeof(path), "%s/tern.log", moved);
	text = slurp(path);
	CHECK(strstr(text, "test event=still_old\n") != NULL,
	      "old file: got %s", text);
	free(text);
	log_close();
	assert_int_equal(failures, 0);
}

static void
test_reopen_stderr(void **state)
{
	const char *error = NULL;
	(void)state;

	assert_int_equal(log_open("stderr", LOG_LEVEL_INFO, &error), 0);
	assert_int_equal(log_reopen(&error), 0);
	CHECK(fcntl(2, F_GETFD) >= 0, "stderr closed");
	log_close();
	assert_int_equal(failures, 0);
}

#define WRITERS 4
#define LINES 3000
#define ROTATIONS_MAX 2000

static _Atomic unsigned writers_done;

static void *
writer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < LINES; i++)
		log_info("test writer=%u line=%u pad=%s", id, i,
			 "................................................");
	writers_done++;
	return NULL;
}

static void
test_reopen_while_threads_log(void **state)
{
	pthread_t t[WRITERS];
	char path[128], rotated[128], *text;
	const char *error = NULL;
	unsigned rotations = 0, lines = 0, files_used = 0;
	unsigned seen[WRITERS] = { 0 };
	(void)state;

	snprintf(path, sizeof(path), "%s/busy.log", dir);
	assert_int_equal(log_open(path, LOG_LEVEL_INFO, &error), 0);
	for (uintptr_t i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer,
						(void *)i), 0);
	/* rotate as long as the writers write */
	for (; rotations < ROTATIONS_MAX &&
	       (writers_done < WRITERS || rotations < 3); rotations++) {
		snprintf(rotated, sizeof(rotated), "%s/busy.log.%u", dir,
			 rotations);
		assert_int_equal(rename(path, rotated), 0);
		assert_int_equal(log_reopen(&error), 0);
		(void)usleep(500);
	}
	for (size_t i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	log_close();

	/* every line whole, each once, across all the files */
	for (unsigned r = 0; r <= rotations; r++) {
		if (r < rotations)
			snprintf(rotated, sizeof(rotated), "%s/busy.log.%u",
				 dir, r);
		else
			snprintf(rotated, sizeof(rotated), "%s", path);
		text = slurp(rotated);
		if (strstr(text, "test writer=") != NULL)
			files_used++;
		for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL;
		     line = nl + 1) {
			unsigned id, n;
			*nl = '\0';
			const char *m = strstr(line, "test writer=");
			if (m == NULL)
				continue;
			CHECK(sscanf(m, "test writer=%u line=%u", &id, &n) == 2 &&
			      id < WRITERS && n == seen[id] &&
			      strstr(m, "pad=................................."
					"...............") != NULL,
			      "%s: bad line %s", rotated, line);
			if (id < WRITERS)
				seen[id] = n + 1;
			lines++;
		}
		free(text);
	}
	CHECK(lines == WRITERS * LINES, "lines: got %u, want %u", lines,
	      WRITERS * LINES);
	/* else the rotations missed the writers and proved nothing */
	CHECK(files_used >= 2, "writers' lines in %u files of %u, want 2 or "
	      "more", files_used, rotations + 1);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reopen_after_rename,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reopen_stderr, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reopen_while_threads_log,
						setup, teardown),
	};
	return cmocka_run_group_tests_name("base_log", tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Helpers for unit tests that work in a scratch directory under /tmp and
 * wait for spool commits: one copy for every test binary.
 */
#ifndef TERN_UNIT_FS_H
#define TERN_UNIT_FS_H

#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int
ut_rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

/* rm -rf dir */
static inline void
ut_rm_rf(const char *dir)
{
	(void)nftw(dir, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* entries of dir/sub that do not start with a dot; 0 when it is missing */
static inline size_t
ut_count_dir(const char *dir, const char *sub)
{
	char path[256];
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

/* the size of dir/sub/name, UINT64_MAX when it is missing */
static inline uint64_t
ut_file_size(const char *dir, const char *sub, const char *name)
{
	char p[256];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s/%s", dir, sub, name);
	if (stat(p, &st) < 0)
		return UINT64_MAX;
	return (uint64_t)st.st_size;
}

/* counts the results of spool_msg_commit() callbacks */
struct ut_commits {
	int calls, ok, failed;
};

static inline void
ut_commit_cb(void *arg, int result)
{
	struct ut_commits *r = arg;

	r->calls++;
	if (result == 0)
		r->ok++;
	else
		r->failed++;
}

#endif

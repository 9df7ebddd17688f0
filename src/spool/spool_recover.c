/* SPDX-License-Identifier: MIT */
/*
 * spool_recover: rebuilds the queue after a crash or a stop (STYLE §2.8).
 * It sweeps spool/tmp/ (nothing there was ever acknowledged: each file is
 * unlinked, or kept as an empty place for a new message), validates
 * every file in spool/queue/, cuts torn state records, removes messages
 * whose recipients are all final and hands the rest to the caller. A
 * queue file that fails validation cannot be a message we committed (we
 * fsync before the rename), unless the disk lied: it is moved aside to
 * spool/corrupt/ for the admin, never deleted and never delivered.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/spool_int.h"

enum load_result {
	LOAD_OK = 0,
	LOAD_CORRUPT,      /* *why_r says why */
	LOAD_IOERR,        /* errno */
	LOAD_GONE,
};


static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* names of the entries of dir name (no dot files), sorted; NULL on error */
static char **
list_dir(int dirfd, const char *name, size_t *n_r)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		(void)close(fd);
		return NULL;
	}
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0, cap = 1;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n + 1 >= cap) {
			cap *= 2;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
		errno = 0;
	}
	int e = errno;
	(void)closedir(d);
	if (e != 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		errno = e;
		return NULL;
	}
	v[n] = NULL;
	qsort(v, n, sizeof(*v), cmp_names);
	*n_r = n;
	return v;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Nothing in tmp/ was ever acknowledged, and nothing there is ever read
 * as a message: files that may be reused (a plain file with one link,
 * small enough; see spool_commit.c) are kept for new messages, which
 * overwrite them from a zeroed header on, and the rest are unlinked.
 * Keeping them spares the file system a burst of inode frees and the
 * creation of as many new files after every restart.
 */
static int
sweep_tmp(struct spool *s)
{
	size_t n;
	unsigned kept = 0, purged = 0;
	char **v = list_dir(s->dirfd, SPOOL_DIR_TMP, &n);

	if (v == NULL) {
		log_errno(LOG_LEVEL_ERROR, "spool event=recover dir=%s/%s",
			  s->dir, SPOOL_DIR_TMP);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (kept < SPOOL_RECYCLE_MAX && spool_id_valid(v[i]) &&
		    fstatat(s->tmpfd, v[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		    (uint64_t)st.st_size <= SPOOL_RECYCLE_SIZE) {
			spool_recycle_put(s, v[i]);
			kept++;
			continue;
		}
		if (unlinkat(s->tmpfd, v[i], 0) < 0 && errno != ENOENT) {
			char esc[128];
			log_errno(LOG_LEVEL_WARN, "spool event=recover "
				  "unlink=\"%s/%s\"", SPOOL_DIR_TMP,
				  log_escape(esc, sizeof(esc), v[i],
					     strlen(v[i])));
		}
		purged++;
	}
	if (n > 0)
		log_info("spool event=recover kept_tmp=%u purged_tmp=%u", kept,
			 purged);
	free_list(v, n);
	return 0;
}

static enum load_result
load(struct spool *s, const char *name, struct spool_envelope *env,
     const char **why_r)
{
	uint8_t raw[SPOOL_HDR_SIZE];
	struct spool_hdr h;
	struct stat st;
	uint8_t *p = NULL;
	enum load_result res = LOAD_IOERR;

	memset(env, 0, sizeof(*env));
	int fd = openat(s->queuefd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return LOAD_GONE;
		if (errno == ELOOP) {
			*why_r = "symbolic link";
			return LOAD_CORRUPT;
		}
		return LOAD_IOERR;
	}
	if (fstat(fd, &st) < 0)
		goto out;
	res = LOAD_CORRUPT;
	if (!S_ISREG(st.st_mode)) {
		*why_r = "not a regular file";
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < SPOOL_HDR_SIZE) {
		*why_r = "truncated header";
		goto out;
	}
	if (io_pread_all(fd, raw, sizeof(raw), 0) < 0) {
		res = LOAD_IOERR;
		goto out;
	}
	if (spool_hdr_decode(raw, &h, why_r) < 0)
		goto out;
	if (h.env_off > size || size - h.env_off < h.env_len) {
		*why_r = "truncated envelope";
		goto out;
	}
	p = xmalloc(h.env_len);
	if (io_pread_all(fd, p, h.env_len, (off_t)h.env_off) < 0) {
		res = LOAD_IOERR;
		goto out;
	}
	if (spool_crc32c(0, p, h.env_len) != h.env_crc) {
		*why_r = "envelope checksum mismatch";
		goto out;
	}
	if (spool_env_decode(p, h.env_len, h.version, env, why_r) < 0)
		goto out;
	if (strcmp(env->id, name) != 0) {
		*why_r = "envelope id differs from file name";
		goto out_clear;
	}
	if (env->size != h.body_len) {
		*why_r = "envelope size differs from body length";
		goto out_clear;
	}
	uint64_t env_end = h.env_off + h.env_len;
	uint64_t nrec = size - env_end;
	if (nrec > SPOOL_RECS_MAX) {
		*why_r = "state records too large";
		goto out_clear;
	}
	free(p);
	p = xmalloc(nrec > 0 ? (size_t)nrec : 1);
	if (io_pread_all(fd, p, (size_t)nrec, (off_t)env_end) < 0) {
		res = LOAD_IOERR;
		goto out_clear;
	}
	size_t good = spool_recs_apply(p, (size_t)nrec, h.version, env);
	if (good < nrec) {
		/* a record the crash cut short was never acknowledged */
		log_warn("spool id=%s event=recover torn_state_octets=%zu",
			 name, (size_t)nrec - good);
		if (ftruncate(fd, (off_t)(env_end + good)) < 0 ||
		    io_fdatasync(fd) < 0) {
			res = LOAD_IOERR;
			goto out_clear;
		}
	}
	res = LOAD_OK;
	goto out;
out_clear:
	spool_envelope_clear(env);
out:
	free(p);
	(void)close(fd);
	return res;
}

static bool
all_final(const struct spool_envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		enum spool_rcpt_state st = env->rcpts[i].state;
		if (st != SPOOL_RCPT_DELIVERED && st != SPOOL_RCPT_BOUNCED)
			return false;
	}
	return true;
}

static int
move_corrupt(struct spool *s, int *cfd, const char *name, const char *why)
{
	char esc[128];

	log_escape(esc, sizeof(esc), name, strlen(name));
	if (*cfd < 0 && spool_mkdirat(s->dirfd, SPOOL_DIR_CORRUPT, cfd) < 0) {
		log_errno(LOG_LEVEL_ERROR, "spool id=%s event=recover "
			  "status=corrupt reason=\"%s\" mkdir=%s", esc, why,
			  SPOOL_DIR_CORRUPT);
		return -1;
	}
	if (renameat(s->queuefd, name, *cfd, name) < 0) {
		log_errno(LOG_LEVEL_ERROR, "spool id=%s event=recover "
			  "status=corrupt reason=\"%s\" rename", esc, why);
		return -1;
	}
	log_error("spool id=%s event=recover status=corrupt reason=\"%s\" "
		  "moved=%s/%s", esc, why, SPOOL_DIR_CORRUPT, esc);
	return 0;
}

int
spool_recover(struct spool *s, spool_recover_cb *cb, void *arg)
{
	size_t n;
	int cfd = -1, count = 0;
	unsigned moved = 0, removed = 0, failed = 0;

	spool_drain(s);
	/* files made ready ahead are in tmp/ too: swept with the rest */
	spool_reserve_drop(s);
	if (sweep_tmp(s) < 0)
		return -1;
	char **v = list_dir(s->dirfd, SPOOL_DIR_QUEUE, &n);
	if (v == NULL) {
		log_errno(LOG_LEVEL_ERROR, "spool event=recover dir=%s/%s",
			  s->dir, SPOOL_DIR_QUEUE);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct spool_envelope env;
		const char *why = NULL;
		enum load_result r;

		if (!spool_id_valid(v[i])) {
			r = LOAD_CORRUPT;
			why = "file name is not a queue id";
		} else {
			r = load(s, v[i], &env, &why);
		}
		switch (r) {
		case LOAD_GONE:
			break;
		case LOAD_IOERR:
			/* left in place: it may be fine on the next start */
			log_errno(LOG_LEVEL_ERROR, "spool id=%s event=recover "
				  "status=skipped", v[i]);
			failed++;
			break;
		case LOAD_CORRUPT:
			if (move_corrupt(s, &cfd, v[i], why) == 0)
				moved++;
			break;
		case LOAD_OK:
			if (all_final(&env)) {
				if (unlinkat(s->queuefd, v[i], 0) < 0)
					log_errno(LOG_LEVEL_WARN, "spool id=%s "
						  "event=recover unlink", v[i]);
				else
					removed++;
				spool_envelope_clear(&env);
				break;
			}
			struct spool_envelope *e = xmalloc(sizeof(*e));
			*e = env;
			cb(arg, e);
			count++;
			break;
		}
	}
	if (moved > 0) {
		if (io_fsync(cfd) < 0 || io_fsync(s->queuefd) < 0)
			log_errno(LOG_LEVEL_WARN, "spool event=recover "
				  "fsync=%s", SPOOL_DIR_CORRUPT);
	}
	if (cfd >= 0)
		(void)close(cfd);
	free_list(v, n);
	log_info("spool event=recover queued=%d removed=%u corrupt=%u "
		 "skipped=%u", count, removed, moved, failed);
	return count;
}

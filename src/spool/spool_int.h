/* SPDX-License-Identifier: MIT */
/*
 * spool_int.h: private structures of the spool and the on-disk format
 * helpers shared by its source files. The format itself is described at
 * the top of spool_format.c. Nothing outside src/spool/ includes this.
 */
#ifndef TERN_SPOOL_INT_H
#define TERN_SPOOL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "spool/spool.h"

/* ---- on-disk format (see spool_format.c) ---------------------------- */

#define SPOOL_HDR_SIZE     64u        /* fixed header at offset 0 */
#define SPOOL_VERSION      2u         /* header version of new files */
#define SPOOL_VERSION_MIN  1u         /* oldest header version still read */
#define SPOOL_ENV_MAX      (16u << 20) /* sanity bound on an envelope */
#define SPOOL_RCPTS_MAX    1000000u   /* sanity bound on recipients */
#define SPOOL_DIAG_MAX     2048u      /* diag bytes kept */
#define SPOOL_STATUS_MAX   32u        /* status bytes kept (RFC 3463 codes
					 * are at most 9) */
#define SPOOL_MTA_MAX      512u       /* remote_mta bytes kept */
#define SPOOL_REC1_FIXED   32u        /* format 1 record without its diag */
#define SPOOL_REC2_MARK    0x80000000u /* format 2 record: length word bit */
#define SPOOL_REC2_HEAD    16u        /* format 2 record before its fields */
#define SPOOL_REC2_MAX     (64u << 10) /* bound on a format 2 record */
#define SPOOL_TLV_HEAD     6u         /* u16 tag + u32 length */
#define SPOOL_RECS_MAX     ((uint64_t)1 << 30) /* records beyond: corrupt */
#define SPOOL_WBUF_SIZE    (16u << 10) /* first body buffer */
#define SPOOL_MEM_MSG_MAX  (1u << 20)  /* body kept in memory up to this */
#define SPOOL_MEM_BUDGET   (64u << 20) /* growth of all body buffers */
#define SPOOL_RESERVE      128u       /* tmp files made ready ahead */
#define SPOOL_REFILL       32u        /* ... by one worker job */
#define SPOOL_RECYCLE_MAX  1024u      /* files of final messages kept */
#define SPOOL_RECYCLE_SIZE (256u << 10) /* larger files are not reused */

/* subdirectory names under the spool directory */
#define SPOOL_DIR_TMP      "tmp"
#define SPOOL_DIR_QUEUE    "queue"
#define SPOOL_DIR_CORRUPT  "corrupt"
#define SPOOL_LOCK_FILE    "lock"

/*
 * Format 2 field tags (on disk: never renumber, never reuse). Message
 * level, in the envelope and in message records:
 */
enum spool_tag {
	SPOOL_T_END = 0,         /* length 0, last field, required */
	SPOOL_T_ID = 1,          /* 20 octets */
	SPOOL_T_MAIL_FROM = 2,   /* string */
	SPOOL_T_HELO = 3,        /* string */
	SPOOL_T_CLIENT_ADDR = 4, /* string */
	SPOOL_T_ENVID = 5,       /* string */
	SPOOL_T_RET = 6,         /* u32 */
	SPOOL_T_BODY = 7,        /* u32 */
	SPOOL_T_SMTPUTF8 = 8,    /* u8 */
	SPOOL_T_RECEIVED_AT = 9, /* i64 */
	SPOOL_T_SIZE = 10,       /* u64 */
	SPOOL_T_HELD = 11,       /* u8; mutable: message records */
	SPOOL_T_RCPT = 12,       /* group of enum spool_rtag fields */
	SPOOL_T_RECEIVED_US = 13, /* i64 */
	SPOOL_T_DSN_KIND = 14,   /* u32, SPOOL_DSN_* */
};
/* the highest envelope tag this revision knows; later ones are skipped */
#define SPOOL_T_LAST SPOOL_T_DSN_KIND

/* recipient level, in SPOOL_T_RCPT groups and in recipient records */
enum spool_rtag {
	SPOOL_RT_ADDRESS = 1,    /* string */
	SPOOL_RT_ORCPT = 2,      /* string */
	SPOOL_RT_NOTIFY = 3,     /* u32 */
	SPOOL_RT_AGENT = 4,      /* u32 */
	SPOOL_RT_DEST = 5,       /* string */
	/* mutable: recipient records carry these */
	SPOOL_RT_STATE = 6,      /* u32 */
	SPOOL_RT_NEXT_TRY = 7,   /* i64 */
	SPOOL_RT_ATTEMPTS = 8,   /* u32 */
	SPOOL_RT_DIAG = 9,       /* string, <= SPOOL_DIAG_MAX */
	SPOOL_RT_FLAGS = 10,     /* u32 */
	SPOOL_RT_STATUS = 11,    /* string, <= SPOOL_STATUS_MAX */
	SPOOL_RT_REMOTE_MTA = 12, /* string, <= SPOOL_MTA_MAX */
	SPOOL_RT_LAST_TRY = 13,  /* i64 */
};

/* format 2 record kinds */
enum spool_rec_kind {
	SPOOL_REC_RCPT = 1,      /* the mutable state of one recipient */
	SPOOL_REC_MSG = 2,       /* message-level fields */
};

struct spool_hdr {
	uint32_t version;        /* from decode (encode: SPOOL_VERSION) */
	uint64_t body_len;
	uint64_t env_off;
	uint32_t env_len;
	uint32_t env_crc;
};

/* the message-level fields a message record sets: those in `set` */
#define SPOOL_MSGF_HELD 0x01u
struct spool_msg_rec {
	unsigned set;            /* SPOOL_MSGF_* */
	bool held;
};

uint32_t spool_crc32c(uint32_t crc, const void *p, size_t n);

/* fills out[SPOOL_HDR_SIZE] (version SPOOL_VERSION) */
void spool_hdr_encode(const struct spool_hdr *h, uint8_t *out);
/* 0 when the header is valid (any version from SPOOL_VERSION_MIN up to
 * SPOOL_VERSION), -1 with *why_r otherwise */
int spool_hdr_decode(const uint8_t *in, struct spool_hdr *h_r,
		     const char **why_r);

/* appends the envelope, encoded as format 2, to out */
void spool_env_encode(const struct spool_envelope *env, struct buf *out);
/* decodes an envelope of header version `version`: 0 with *env_r filled
 * (clear it with spool_envelope_clear), or -1 with *why_r */
int spool_env_decode(const uint8_t *p, size_t n, uint32_t version,
		     struct spool_envelope *env_r, const char **why_r);

/* appends one format 2 recipient record for recipient idx to out: every
 * mutable field of rcpt (strings cut to their bounds) */
void spool_rec_encode(size_t idx, const struct spool_rcpt *rcpt,
		      struct buf *out);
/* appends one format 2 message record to out */
void spool_msg_rec_encode(const struct spool_msg_rec *mr, struct buf *out);
/*
 * One whole, checksummed record that means something to this reader
 * (spool_recs_walk), decoded. The strings of st belong to the walker
 * until the callback returns; the callback may take them (and set them
 * to NULL).
 */
struct spool_rec {
	enum spool_rec_kind kind;
	uint32_t format;         /* 1 or 2 */
	size_t idx;              /* SPOOL_REC_RCPT: recipient, < nrcpts */
	struct spool_rcpt st;    /* SPOOL_REC_RCPT: the mutable fields it
				  * holds; format 1 holds only state,
				  * next_try, attempts and diag */
	struct spool_msg_rec msg; /* SPOOL_REC_MSG: set != 0 */
};
typedef void spool_rec_cb(void *arg, struct spool_rec *rec);
/*
 * Walks the records in p[0..n) of a file of header version `version`
 * (see spool_recs_apply) whose envelope has nrcpts recipients, and calls
 * cb with each record in order, except those that are whole but mean
 * nothing here (an index past the recipients, a bad value, an unknown
 * kind, a message record that sets no field we know). Returns the number
 * of bytes that form whole valid records, as spool_recs_apply does: the
 * one place that says where the valid records end.
 */
size_t spool_recs_walk(const uint8_t *p, size_t n, uint32_t version,
		       size_t nrcpts, spool_rec_cb *cb, void *arg);
/*
 * Applies the records in p[0..n) to env, an envelope decoded from a file
 * of header version `version` (1: format 1 and format 2 records; 2:
 * format 2 records only). Returns the number of bytes that form whole
 * valid records; a shorter result than n means the tail is torn (or not
 * a record) and must be cut off.
 */
size_t spool_recs_apply(const uint8_t *p, size_t n, uint32_t version,
			struct spool_envelope *env);

/* true when s is SPOOL_ID_LEN characters of [0-9A-Za-z] */
bool spool_id_valid(const char *s);

/* ---- runtime structures ---------------------------------------------- */

struct spool_msg {
	struct spool *s;
	char id[SPOOL_ID_LEN + 1];
	char tmpname[SPOOL_ID_LEN + 1]; /* its name in tmp/ until commit */
	int fd;                 /* tmp/<tmpname>, -1 once closed */
	uint64_t old_size;      /* octets in the file before it was reused */
	int err;                /* sticky errno of a failed write, or 0 */
	const char *err_what;   /* which step failed */
	uint64_t size;          /* body octets accepted */
	uint8_t *wbuf;          /* pending bytes not yet written */
	size_t wlen, wcap;
	bool flushed;           /* wbuf was written once: it no longer
				 * starts with the header's place */
	struct buf env;         /* encoded envelope, at commit */
	uint8_t hdr[SPOOL_HDR_SIZE];
	spool_commit_cb *cb;
	void *cb_arg;
	bool renamed;           /* now queue/<id> */
	struct spool_msg *next; /* in a batch */
};

/*
 * A tmp/ file made ready by a worker (created, or a recycled file
 * reopened), waiting for spool_msg_new(). `size` is its current length:
 * a recycled file still holds its old message until it is overwritten.
 */
struct spool_slot {
	char name[SPOOL_ID_LEN + 1];
	int fd;
	uint64_t size;
};

struct spool_refill {
	struct spool *s;
	struct spool_slot slot[SPOOL_REFILL];
	char fresh[SPOOL_REFILL][SPOOL_ID_LEN + 1]; /* names to create */
	unsigned n, nfresh;
};

struct spool_batch {
	struct spool *s;
	struct spool_msg *head;
	unsigned n;
};

struct spool {
	char *dir;
	int dirfd, tmpfd, queuefd, lockfd;
	struct workq *wq;

	/* id generation (loop thread) */
	uint64_t last_us;
	uint32_t counter;
	uint64_t rnd_state;     /* random part of ids, see make_id() */
	bool rnd_seeded;

	/* group commit (loop thread) */
	struct spool_msg *next_head, **next_tail;
	unsigned next_n;
	struct spool_batch *inflight;
	unsigned inflight_n;

	/* octets of body buffers of live messages (loop thread): a buffer
	 * grows only while this stays under SPOOL_MEM_BUDGET */
	size_t mem_held;

	/* tmp/ files made ready on a worker, oldest first (loop thread) */
	struct spool_slot reserve[SPOOL_RESERVE];
	unsigned nreserve;
	bool refilling;
	bool draining;          /* spool_drain(): no new refills */

	/*
	 * Names in tmp/ of files that may be reused for new messages: files
	 * of final messages whose move out of queue/ is durable, and files
	 * of aborted messages. Any thread, under recycle_lock.
	 */
	pthread_mutex_t recycle_lock;
	pthread_mutex_t id_lock;   /* make_id(): loop thread and workers */
	char (*recycled)[SPOOL_ID_LEN + 1];
	unsigned nrecycled;
};

/* waits (running done callbacks) until no batch or refill is in flight */
void spool_drain(struct spool *s);
/*
 * Closes the reserved tmp/ files and forgets them and the recycled names
 * (the files stay in tmp/, for recovery to take up again)
 */
void spool_reserve_drop(struct spool *s);
/* offers tmp/<name>, durably out of queue/, for reuse (any thread) */
void spool_recycle_put(struct spool *s, const char *name);

/* opens dir/name as a directory fd relative to dirfd, creating it */
int spool_mkdirat(int dirfd, const char *name, int *fd_r);

#endif

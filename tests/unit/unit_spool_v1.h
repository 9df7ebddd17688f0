/* SPDX-License-Identifier: MIT */
/*
 * The spool's format 1 encoder as it was before format 2, kept for the
 * tests that check that today's spool still reads format 1 files (the
 * bytes it makes are pinned in test_spool_compat.c). Include after
 * "spool/spool_int.h".
 */
#ifndef TERN_UNIT_SPOOL_V1_H
#define TERN_UNIT_SPOOL_V1_H

#include <string.h>

static inline void
le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
le64(uint8_t *p, uint64_t v)
{
	le32(p, (uint32_t)v);
	le32(p + 4, (uint32_t)(v >> 32));
}

static inline void
v1_u32(struct buf *b, uint32_t v)
{
	uint8_t t[4];

	le32(t, v);
	(void)buf_append(b, t, 4);
}

static inline void
v1_u64(struct buf *b, uint64_t v)
{
	uint8_t t[8];

	le64(t, v);
	(void)buf_append(b, t, 8);
}

static inline void
v1_opt(struct buf *b, const char *s)
{
	if (s == NULL) {
		v1_u32(b, 0xffffffffu);
		return;
	}
	v1_u32(b, (uint32_t)strlen(s));
	(void)buf_append(b, s, strlen(s));
}

static inline void
v1_hdr(uint64_t body_len, const struct buf *env, uint8_t *out)
{
	memset(out, 0, SPOOL_HDR_SIZE);
	memcpy(out, "TRNQ", 4);
	le32(out + 4, 1);
	le64(out + 8, body_len);
	le64(out + 16, SPOOL_HDR_SIZE + body_len);
	le32(out + 24, (uint32_t)env->len);
	le32(out + 28, spool_crc32c(0, env->p, env->len));
	le32(out + 60, spool_crc32c(0, out, 60));
}

static inline void
v1_env(const struct spool_envelope *e, struct buf *b)
{
	(void)buf_append(b, e->id, SPOOL_ID_LEN);
	v1_opt(b, e->mail_from);
	v1_opt(b, e->helo);
	v1_opt(b, e->client_addr);
	v1_opt(b, e->envid);
	v1_u32(b, e->ret);
	v1_u32(b, e->body);
	uint8_t u8 = e->smtputf8 ? 1 : 0;
	(void)buf_append(b, &u8, 1);
	v1_u64(b, (uint64_t)e->received_at);
	v1_u64(b, e->size);
	v1_u32(b, (uint32_t)e->nrcpts);
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct spool_rcpt *r = &e->rcpts[i];
		v1_opt(b, r->address);
		v1_opt(b, r->orcpt);
		v1_u32(b, r->notify);
		v1_u32(b, (uint32_t)r->agent);
		v1_opt(b, r->dest);
		v1_u32(b, (uint32_t)r->state);
		v1_u64(b, (uint64_t)r->next_try);
		v1_u32(b, r->attempts);
		v1_opt(b, r->diag);
	}
}

static inline void
v1_rec(uint32_t idx, const struct spool_rcpt *r, struct buf *b)
{
	uint8_t f[32];
	size_t dlen = r->diag != NULL ? strlen(r->diag) : 0;

	le32(f, (uint32_t)(32 + dlen));
	le32(f + 8, idx);
	le32(f + 12, (uint32_t)r->state);
	le64(f + 16, (uint64_t)r->next_try);
	le32(f + 24, r->attempts);
	le32(f + 28, r->diag != NULL ? (uint32_t)dlen : 0xffffffffu);
	uint32_t crc = spool_crc32c(0, f + 8, 24);
	le32(f + 4, spool_crc32c(crc, r->diag, dlen));
	(void)buf_append(b, f, sizeof(f));
	(void)buf_append(b, r->diag, dlen);
}

#endif

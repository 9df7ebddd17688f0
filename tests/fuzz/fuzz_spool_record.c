/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the queue file decoders of spool_format.c: the
 * header, the envelope of both formats, and spool_recs_apply() on
 * arbitrary bytes after a valid envelope. Octet 0 of the input selects
 * the decoder (bits 0-1), the header version (1 + bit 2) and whether the
 * checksums of the records are set right before they are applied (bit
 * 3: without it almost every mutation of a record only fails its
 * checksum, and the field decoders behind it are never reached); the
 * rest is its input, copied to a buffer of its exact size so a read
 * past the end is caught:
 *
 *   0  spool_hdr_decode
 *   1  spool_env_decode
 *   2  spool_recs_apply to an envelope of three recipients
 *   3  u32 envelope length, the envelope, then records applied to it
 *
 * Besides the sanitizers it checks what the format promises: a decoded
 * envelope keeps its bounds and encodes to a format 2 envelope that
 * decodes to the same; records apply up to a record boundary (applying
 * that prefix again gives the same state), and never break the bounds.
 * The seeds in corpus/fuzz_spool_record/ come from test_spool_compat.c
 * (TERN_SPOOL_FUZZ_SEEDS=dir).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
str_ok(const char *s, size_t max)
{
	return s == NULL || strlen(s) <= max;
}

static void
check(bool cond)
{
	if (!cond)
		abort();
}

/* every field of a and b agrees */
static bool
env_same(const struct spool_envelope *a, const struct spool_envelope *b)
{
	if (strcmp(a->id, b->id) != 0 || !str_eq(a->mail_from, b->mail_from) ||
	    !str_eq(a->helo, b->helo) ||
	    !str_eq(a->client_addr, b->client_addr) ||
	    !str_eq(a->envid, b->envid) || a->ret != b->ret ||
	    a->body != b->body || a->smtputf8 != b->smtputf8 ||
	    a->received_at != b->received_at || a->size != b->size ||
	    a->held != b->held || a->nrcpts != b->nrcpts)
		return false;
	for (size_t i = 0; i < a->nrcpts; i++) {
		const struct spool_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];
		if (!str_eq(x->address, y->address) ||
		    !str_eq(x->orcpt, y->orcpt) || !str_eq(x->dest, y->dest) ||
		    !str_eq(x->diag, y->diag) ||
		    !str_eq(x->status, y->status) ||
		    !str_eq(x->remote_mta, y->remote_mta) ||
		    x->notify != y->notify || x->agent != y->agent ||
		    x->state != y->state || x->next_try != y->next_try ||
		    x->attempts != y->attempts || x->flags != y->flags ||
		    x->last_try != y->last_try)
			return false;
	}
	return true;
}

/* bounds hold, and a format 2 encoding reads back the same */
static void
check_env(const struct spool_envelope *e)
{
	struct spool_envelope d;
	struct buf b;
	const char *why;

	check(spool_id_valid(e->id) && e->mail_from != NULL);
	check(e->nrcpts <= SPOOL_RCPTS_MAX);
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct spool_rcpt *r = &e->rcpts[i];
		check(r->address != NULL && r->state <= SPOOL_RCPT_BOUNCED &&
		      r->agent <= SPOOL_AGENT_RELAY);
		/* format 1 envelopes may hold longer diags; records cut */
		check(str_ok(r->status, SPOOL_STATUS_MAX) &&
		      str_ok(r->remote_mta, SPOOL_MTA_MAX));
	}
	buf_init(&b, 0);
	spool_env_encode(e, &b);
	check(spool_env_decode(b.p, b.len, 2, &d, &why) == 0);
	bool cut = false;
	for (size_t i = 0; i < e->nrcpts; i++)
		cut = cut || !str_ok(e->rcpts[i].diag, SPOOL_DIAG_MAX);
	check(cut || env_same(e, &d));
	spool_envelope_clear(&d);
	buf_clear(&b);
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* writes the right CRC-32C into each record framed as the decoder
 * frames them (top of spool_format.c) */
static void
fix_crcs(uint8_t *p, size_t n, uint32_t version)
{
	size_t off = 0;

	while (n - off >= 4) {
		uint8_t *r = p + off;
		uint32_t word = le32(r);
		uint32_t len = word & ~SPOOL_REC2_MARK;
		uint32_t min = SPOOL_REC2_HEAD, max = SPOOL_REC2_MAX;
		if (!(word & SPOOL_REC2_MARK)) {
			if (version != 1)
				return;
			min = SPOOL_REC1_FIXED;
			max = SPOOL_REC1_FIXED + SPOOL_DIAG_MAX;
		}
		if (len < min || len > max || len > n - off)
			return;
		uint32_t crc = spool_crc32c(0, r + 8, len - 8);
		for (int i = 0; i < 4; i++)
			r[4 + i] = (uint8_t)(crc >> (8 * i));
		off += len;
	}
}

static void
fuzz_recs(uint8_t *p, size_t n, uint32_t version, bool fix,
	  const struct spool_envelope *env)
{
	if (fix)
		fix_crcs(p, n, version);
	struct spool_envelope *a = spool_envelope_dup(env);
	size_t good = spool_recs_apply(p, n, version, a);

	check(good <= n);
	/* the valid prefix alone gives the same state: a cut is clean */
	struct spool_envelope *b = spool_envelope_dup(env);
	check(spool_recs_apply(p, good, version, b) == good);
	check(env_same(a, b));
	for (size_t i = 0; i < a->nrcpts; i++)
		check(str_ok(a->rcpts[i].diag, SPOOL_DIAG_MAX) ||
		      str_eq(a->rcpts[i].diag, env->rcpts[i].diag));
	check_env(a);
	spool_envelope_free(&a);
	spool_envelope_free(&b);
}

static const struct spool_envelope *
base_env(void)
{
	static struct spool_rcpt rc[3] = {
		{ .address = (char *)(uintptr_t)"a@example.org",
		  .dest = (char *)(uintptr_t)"a" },
		{ .address = (char *)(uintptr_t)"b@example.net",
		  .agent = SPOOL_AGENT_RELAY,
		  .status = (char *)(uintptr_t)"4.4.1" },
		{ .address = (char *)(uintptr_t)"" },
	};
	static const struct spool_envelope e = {
		.id = "0000000001FUZZfuzz00",
		.mail_from = (char *)(uintptr_t)"",
		.rcpts = rc, .nrcpts = 3,
	};
	return &e;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_envelope e;
	struct spool_hdr h;
	const char *why;

	if (size < 1)
		return 0;
	unsigned op = data[0] & 3u;
	uint32_t version = 1 + ((data[0] >> 2) & 1u);
	bool fix = (data[0] & 8u) != 0;
	size_t n = size - 1;
	uint8_t *p = malloc(n > 0 ? n : 1);
	if (p == NULL)
		return 0;
	if (n > 0)
		memcpy(p, data + 1, n);

	switch (op) {
	case 0:
		if (n >= SPOOL_HDR_SIZE && spool_hdr_decode(p, &h, &why) == 0)
			check(h.version >= SPOOL_VERSION_MIN &&
			      h.version <= SPOOL_VERSION &&
			      h.env_off == SPOOL_HDR_SIZE + h.body_len &&
			      h.env_len > 0 && h.env_len <= SPOOL_ENV_MAX);
		break;
	case 1:
		if (spool_env_decode(p, n, version, &e, &why) == 0) {
			check_env(&e);
			spool_envelope_clear(&e);
		}
		break;
	case 2:
		fuzz_recs(p, n, version, fix, base_env());
		break;
	case 3: {
		if (n < 4)
			break;
		size_t elen = le32(p);
		if (elen > n - 4)
			break;
		/* its own buffer, so the envelope decoder cannot read the
		 * records */
		uint8_t *ep = malloc(elen > 0 ? elen : 1);
		if (ep == NULL)
			break;
		memcpy(ep, p + 4, elen);
		if (spool_env_decode(ep, elen, version, &e, &why) == 0) {
			fuzz_recs(p + 4 + elen, n - 4 - elen, version, fix,
				  &e);
			spool_envelope_clear(&e);
		}
		free(ep);
		break;
	}
	}
	free(p);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * spool_format: encoding and decoding of a queue file. Pure byte code: it
 * makes no syscalls; spool_commit.c and spool_recover.c do the I/O.
 *
 * One file per message, spool/queue/<id>, written as spool/tmp/<id>:
 *
 *   offset 0          header, SPOOL_HDR_SIZE (64) octets
 *   64                body: the message exactly as received, env.size octets
 *   env_off           envelope, env_len octets
 *   env_off+env_len   recipient state records, appended after the commit
 *
 * All integers are little-endian. The header:
 *
 *    0  "TRNQ"           magic
 *    4  u32 version      1
 *    8  u64 body_len     octets of body
 *   16  u64 env_off      64 + body_len
 *   24  u32 env_len
 *   28  u32 env_crc      CRC-32C of the envelope octets
 *   32  28 zero octets   reserved
 *   60  u32 hdr_crc      CRC-32C of octets 0..59
 *
 * While the body is received the header is all zeros; spool_msg_commit()
 * writes the envelope after the body and then the header, and only then
 * fsyncs the file and renames it into queue/. A file in queue/ whose
 * header, size or envelope checksum is wrong was therefore never
 * committed by us (a lying disk, an admin's copy): recovery moves it to
 * spool/corrupt/. The body has no checksum of its own: its durability
 * rests on the fsync before the rename, and reading every body at
 * start-up would make recovery of a large queue slow.
 *
 * The envelope: "opt" is a u32 length and the octets, with 0xffffffff
 * for NULL; strings must not contain NUL.
 *
 *   20 octets id, opt mail_from, opt helo, opt client_addr, opt envid,
 *   u32 ret, u32 body, u8 smtputf8, i64 received_at, u64 size,
 *   u32 nrcpts, then per recipient: opt address, opt orcpt, u32 notify,
 *   u32 agent, opt dest, u32 state, i64 next_try, u32 attempts, opt diag
 *
 * A state record (spool_rcpt_update) is appended and fdatasync()ed:
 *
 *    0  u32 len          total octets, 32 + diag octets
 *    4  u32 crc          CRC-32C of octets 8..len
 *    8  u32 idx          recipient index
 *   12  u32 state        enum spool_rcpt_state
 *   16  i64 next_try
 *   24  u32 attempts
 *   28  u32 diag_len     0xffffffff: no diag
 *   32  diag octets
 *
 * Why the records live in the message's own file rather than a second
 * per-message state file: removing a message stays one unlink (no order
 * to keep between two files, no orphan state files for recovery to
 * sort out), and a recipient update needs no directory fsync because no
 * file is created. The body and envelope before the records are never
 * written again after the commit.
 *
 * Records apply in order, the last one for a recipient wins. A record
 * cut short by a crash (or a failed write) fails its length or checksum
 * test; it was never acknowledged, so it and anything after it is cut
 * off (the writer truncates after a failed write, recovery after a
 * crash), and later records always follow a valid one.
 */
#include <string.h>

#include "spool/spool_int.h"

static const uint32_t crc32c_table[256] = {
	0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u,
	0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u, 0xd4ca64ebu,
	0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
	0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u,
	0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu,
	0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
	0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
	0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu,
	0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
	0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u,
	0xaa64d611u, 0x580f5512u, 0x4b5fa6e6u, 0xb93425e5u,
	0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
	0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u,
	0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
	0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
	0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u,
	0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u,
	0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
	0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u,
	0x0c38d26cu, 0xfe53516fu, 0xed03a29bu, 0x1f682198u,
	0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
	0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u,
	0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu, 0xc8ac71e8u,
	0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
	0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u,
	0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u,
	0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
	0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
	0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u,
	0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
	0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u,
	0x3cdb9bddu, 0xceb018deu, 0xdde0eb2au, 0x2f8b6829u,
	0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
	0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u,
	0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
	0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
	0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u,
	0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu,
	0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
	0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u,
	0xa24bb5a6u, 0x502036a5u, 0x4370c551u, 0xb11b4652u,
	0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
	0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du,
	0xef087a76u, 0x1d63f975u, 0x0e330a81u, 0xfc588982u,
	0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
	0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u,
	0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u,
	0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
	0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
	0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu,
	0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
	0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u,
	0xd3d3e1abu, 0x21b862a8u, 0x32e8915cu, 0xc083125fu,
	0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
	0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u,
	0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
	0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
	0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u,
	0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u,
	0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
	0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u,
	0x34f4f86au, 0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu,
	0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
	0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

#define OPT_NULL 0xffffffffu

uint32_t
spool_crc32c(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	crc = ~crc;
	while (n-- > 0)
		crc = crc32c_table[(crc ^ *b++) & 0xffu] ^ (crc >> 8);
	return ~crc;
}

/* ---- little-endian helpers -------------------------------------------- */

static void
put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
buf_u32(struct buf *b, uint32_t v)
{
	uint8_t t[4];

	put_u32(t, v);
	(void)buf_append(b, t, sizeof(t));
}

static void
buf_u64(struct buf *b, uint64_t v)
{
	uint8_t t[8];

	put_u64(t, v);
	(void)buf_append(b, t, sizeof(t));
}

static void
buf_opt(struct buf *b, const char *s)
{
	if (s == NULL) {
		buf_u32(b, OPT_NULL);
		return;
	}
	size_t n = strlen(s);
	TN_ASSERT(n < OPT_NULL);
	buf_u32(b, (uint32_t)n);
	(void)buf_append(b, s, n);
}

/* ---- header ------------------------------------------------------------ */

void
spool_hdr_encode(const struct spool_hdr *h, uint8_t *out)
{
	memset(out, 0, SPOOL_HDR_SIZE);
	memcpy(out, "TRNQ", 4);
	put_u32(out + 4, SPOOL_VERSION);
	put_u64(out + 8, h->body_len);
	put_u64(out + 16, h->env_off);
	put_u32(out + 24, h->env_len);
	put_u32(out + 28, h->env_crc);
	put_u32(out + 60, spool_crc32c(0, out, 60));
}

int
spool_hdr_decode(const uint8_t *in, struct spool_hdr *h_r, const char **why_r)
{
	if (memcmp(in, "TRNQ", 4) != 0) {
		*why_r = "bad magic";
		return -1;
	}
	if (get_u32(in + 60) != spool_crc32c(0, in, 60)) {
		*why_r = "header checksum mismatch";
		return -1;
	}
	if (get_u32(in + 4) != SPOOL_VERSION) {
		*why_r = "unknown version";
		return -1;
	}
	h_r->body_len = get_u64(in + 8);
	h_r->env_off = get_u64(in + 16);
	h_r->env_len = get_u32(in + 24);
	h_r->env_crc = get_u32(in + 28);
	uint64_t want;
	if (__builtin_add_overflow(h_r->body_len, (uint64_t)SPOOL_HDR_SIZE,
				   &want) || want != h_r->env_off) {
		*why_r = "envelope offset mismatch";
		return -1;
	}
	if (h_r->env_len == 0 || h_r->env_len > SPOOL_ENV_MAX) {
		*why_r = "bad envelope length";
		return -1;
	}
	return 0;
}

/* ---- envelope ---------------------------------------------------------- */

void
spool_env_encode(const struct spool_envelope *env, struct buf *out)
{
	TN_ASSERT(strlen(env->id) == SPOOL_ID_LEN);
	TN_ASSERT(env->nrcpts <= SPOOL_RCPTS_MAX);
	(void)buf_append(out, env->id, SPOOL_ID_LEN);
	buf_opt(out, env->mail_from);
	buf_opt(out, env->helo);
	buf_opt(out, env->client_addr);
	buf_opt(out, env->envid);
	buf_u32(out, env->ret);
	buf_u32(out, env->body);
	uint8_t u8 = env->smtputf8 ? 1 : 0;
	(void)buf_append(out, &u8, 1);
	buf_u64(out, (uint64_t)env->received_at);
	buf_u64(out, env->size);
	buf_u32(out, (uint32_t)env->nrcpts);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		buf_opt(out, r->address);
		buf_opt(out, r->orcpt);
		buf_u32(out, r->notify);
		buf_u32(out, (uint32_t)r->agent);
		buf_opt(out, r->dest);
		buf_u32(out, (uint32_t)r->state);
		buf_u64(out, (uint64_t)r->next_try);
		buf_u32(out, r->attempts);
		buf_opt(out, r->diag);
	}
}

struct cursor {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static const uint8_t *
cur_take(struct cursor *c, size_t n)
{
	if (c->bad || c->n - c->off < n) {
		c->bad = true;
		return NULL;
	}
	const uint8_t *p = c->p + c->off;
	c->off += n;
	return p;
}

static uint32_t
cur_u32(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 4);
	return p != NULL ? get_u32(p) : 0;
}

static uint64_t
cur_u64(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 8);
	return p != NULL ? get_u64(p) : 0;
}

static char *
cur_opt(struct cursor *c)
{
	uint32_t n = cur_u32(c);

	if (c->bad || n == OPT_NULL)
		return NULL;
	const uint8_t *p = cur_take(c, n);
	if (p == NULL)
		return NULL;
	if (memchr(p, 0, n) != NULL) {
		c->bad = true;
		return NULL;
	}
	return xstrndup((const char *)p, n);
}

static bool
state_valid(uint32_t v)
{
	return v <= SPOOL_RCPT_BOUNCED;
}

int
spool_env_decode(const uint8_t *p, size_t n, struct spool_envelope *env_r,
		 const char **why_r)
{
	struct cursor c = { .p = p, .n = n };
	struct spool_envelope *e = env_r;

	memset(e, 0, sizeof(*e));
	const uint8_t *id = cur_take(&c, SPOOL_ID_LEN);
	if (id != NULL) {
		memcpy(e->id, id, SPOOL_ID_LEN);
		e->id[SPOOL_ID_LEN] = '\0';
	}
	e->mail_from = cur_opt(&c);
	e->helo = cur_opt(&c);
	e->client_addr = cur_opt(&c);
	e->envid = cur_opt(&c);
	e->ret = cur_u32(&c);
	e->body = cur_u32(&c);
	const uint8_t *u8 = cur_take(&c, 1);
	e->smtputf8 = u8 != NULL && *u8 != 0;
	e->received_at = (int64_t)cur_u64(&c);
	e->size = cur_u64(&c);
	uint32_t nr = cur_u32(&c);
	if (c.bad || nr > SPOOL_RCPTS_MAX) {
		*why_r = "envelope truncated";
		goto fail;
	}
	/* every recipient takes at least 40 octets: bounds the allocation */
	if (nr > (c.n - c.off) / 40) {
		*why_r = "envelope recipient count too large";
		goto fail;
	}
	if (!spool_id_valid(e->id)) {
		*why_r = "envelope id invalid";
		goto fail;
	}
	e->rcpts = xcalloc(nr > 0 ? nr : 1, sizeof(*e->rcpts));
	e->nrcpts = nr;
	for (size_t i = 0; i < nr; i++) {
		struct spool_rcpt *r = &e->rcpts[i];
		r->address = cur_opt(&c);
		r->orcpt = cur_opt(&c);
		r->notify = cur_u32(&c);
		uint32_t agent = cur_u32(&c);
		r->dest = cur_opt(&c);
		uint32_t state = cur_u32(&c);
		r->next_try = (int64_t)cur_u64(&c);
		r->attempts = cur_u32(&c);
		r->diag = cur_opt(&c);
		if (c.bad || agent > SPOOL_AGENT_RELAY || !state_valid(state) ||
		    r->address == NULL) {
			*why_r = "bad recipient";
			goto fail;
		}
		r->agent = (enum spool_agent)agent;
		r->state = (enum spool_rcpt_state)state;
	}
	if (c.bad || c.off != c.n) {
		*why_r = "envelope length mismatch";
		goto fail;
	}
	if (e->mail_from == NULL) {
		*why_r = "envelope without reverse-path";
		goto fail;
	}
	return 0;
fail:
	spool_envelope_clear(e);
	return -1;
}

/* ---- state records ----------------------------------------------------- */

void
spool_rec_encode(size_t idx, const struct spool_rcpt *rcpt, struct buf *out)
{
	uint8_t fixed[SPOOL_REC_FIXED];
	size_t dlen = 0;

	TN_ASSERT(idx <= SPOOL_RCPTS_MAX);
	if (rcpt->diag != NULL) {
		dlen = strlen(rcpt->diag);
		if (dlen > SPOOL_DIAG_MAX)
			dlen = SPOOL_DIAG_MAX;
	}
	/* UNSAFE: dlen <= SPOOL_DIAG_MAX, far below UINT32_MAX */
	put_u32(fixed, (uint32_t)(SPOOL_REC_FIXED + dlen));
	put_u32(fixed + 8, (uint32_t)idx);
	put_u32(fixed + 12, (uint32_t)rcpt->state);
	put_u64(fixed + 16, (uint64_t)rcpt->next_try);
	put_u32(fixed + 24, rcpt->attempts);
	put_u32(fixed + 28, rcpt->diag != NULL ? (uint32_t)dlen : OPT_NULL);
	uint32_t crc = spool_crc32c(0, fixed + 8, SPOOL_REC_FIXED - 8);
	if (dlen > 0)
		crc = spool_crc32c(crc, rcpt->diag, dlen);
	put_u32(fixed + 4, crc);
	(void)buf_append(out, fixed, sizeof(fixed));
	if (dlen > 0)
		(void)buf_append(out, rcpt->diag, dlen);
}

size_t
spool_recs_apply(const uint8_t *p, size_t n, struct spool_envelope *env)
{
	size_t off = 0;

	while (n - off >= SPOOL_REC_FIXED) {
		const uint8_t *r = p + off;
		uint32_t len = get_u32(r);
		if (len < SPOOL_REC_FIXED ||
		    len > SPOOL_REC_FIXED + SPOOL_DIAG_MAX || len > n - off)
			break;
		if (get_u32(r + 4) != spool_crc32c(0, r + 8, len - 8))
			break;
		uint32_t idx = get_u32(r + 8);
		uint32_t state = get_u32(r + 12);
		uint32_t dlen = get_u32(r + 28);
		size_t want = SPOOL_REC_FIXED +
			      (dlen == OPT_NULL ? 0 : (size_t)dlen);
		if (want != len)
			break;
		off += len;
		/* whole and checksummed but meaningless: skip, not torn */
		if (idx >= env->nrcpts || !state_valid(state) ||
		    (dlen != OPT_NULL &&
		     memchr(r + SPOOL_REC_FIXED, 0, dlen) != NULL))
			continue;
		struct spool_rcpt *rc = &env->rcpts[idx];
		rc->state = (enum spool_rcpt_state)state;
		rc->next_try = (int64_t)get_u64(r + 16);
		rc->attempts = get_u32(r + 24);
		free(rc->diag);
		rc->diag = dlen == OPT_NULL ? NULL :
			   xstrndup((const char *)r + SPOOL_REC_FIXED, dlen);
	}
	return off;
}

bool
spool_id_valid(const char *s)
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN; i++) {
		char ch = s[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= 'a' && ch <= 'z')))
			return false;
	}
	return s[i] == '\0';
}

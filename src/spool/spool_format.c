/* SPDX-License-Identifier: MIT */
/*
 * spool_format: encoding and decoding of a queue file. Pure byte code: it
 * makes no syscalls; spool_commit.c and spool_recover.c do the I/O.
 *
 * One file per message, spool/queue/<id>, written as spool/tmp/<name>:
 *
 *   offset 0          header, SPOOL_HDR_SIZE (64) octets
 *   64                body: the message exactly as received, env.size octets
 *   env_off           envelope, env_len octets
 *   env_off+env_len   records (recipient states, message fields), appended
 *                     after the commit
 *
 * All integers are little-endian. The header:
 *
 *    0  "TRNQ"           magic
 *    4  u32 version      2 in files written now; 1 is still read
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
 * The header version is the major format: 1 has a positional envelope
 * and fixed records, 2 is tagged. Within format 2 a field is added
 * without a new version, by a new tag: readers skip tags they do not
 * know and give absent fields their default, so files of a later minor
 * revision stay readable and files of an earlier one simply lack the
 * field. Only a change that an older reader must not skip needs version
 * 3 (such a reader moves the file to corrupt/ rather than misread it).
 *
 * ---- format 2 --------------------------------------------------------
 *
 * A field is a u16 tag, a u32 length and that many octets of value. A u8,
 * u32 or i64/u64 value has exactly 1, 4 or 8 octets; a string is its
 * octets without terminator and must not contain NUL; a group is a
 * sequence of fields. An absent number is 0, an absent string NULL (a
 * present one of length 0 is ""). Writers leave out fields at their
 * default, except the required ones. Tags are listed in spool_int.h
 * (enum spool_tag, enum spool_rtag) and are never renumbered or reused.
 *
 * The envelope is a sequence of fields:
 *
 *    1 id (20 octets, required)   2 mail_from (required, "" for <>)
 *    3 helo   4 client_addr   5 envid   6 u32 ret   7 u32 body
 *    8 u8 smtputf8   9 i64 received_at   10 u64 size   11 u8 held
 *   12 rcpt: a group per recipient, in index order, of
 *        1 address (required)   2 orcpt   3 u32 notify   4 u32 agent
 *        5 dest   6 u32 state   7 i64 next_try   8 u32 attempts
 *        9 diag   10 u32 flags   11 status   12 remote_mta
 *       13 i64 last_try
 *   13 i64 received_us (receipt to the microsecond)
 *   14 u32 dsn_kind (SPOOL_DSN_*: an ordinary message, a DSN, or a
 *      report of a failed DSN to postmaster)
 *    0 end: length 0, the last field (required)
 *
 * Fields may come in any order before the end (recipient groups keep
 * theirs). The end field makes the envelope self-delimiting as format
 * 1's was: no strict prefix of an envelope decodes (the header's length
 * and checksum catch a cut first; this is a second line). Unknown tags
 * are skipped at both levels. A known tag given twice, a number of
 * the wrong size, a value out of range, a string with a NUL or over its
 * bound (diag SPOOL_DIAG_MAX, status SPOOL_STATUS_MAX, remote_mta
 * SPOOL_MTA_MAX; writers cut longer ones) makes the envelope invalid:
 * we never write one, so the file is corrupt.
 *
 * A format 2 record, appended and fdatasync()ed:
 *
 *    0  u32 len | 0x80000000   len: total octets, 16..SPOOL_REC2_MAX
 *    4  u32 crc          CRC-32C of octets 8..len
 *    8  u32 kind         1 recipient, 2 message
 *   12  u32 idx          recipient index (kind 1), 0 otherwise
 *   16  fields           up to len
 *
 * A recipient record (spool_rcpt_update_n) holds every mutable field of
 * recipient idx (tags 6-13) and replaces them all: an absent one becomes
 * its default, so the last record of a recipient restores its whole
 * state. A message record (spool_msg_hold) is a patch: each field in it
 * (today 11 held) replaces that field and absent ones keep their value,
 * because message fields are set by independent commands (hold and
 * release now, others later) and each writer knows only its own. In a
 * record, tags that are not mutable at its level are skipped like
 * unknown ones, and a record of unknown kind is skipped whole.
 *
 * ---- format 1: read, never written ------------------------------------
 *
 * The envelope: "opt" is a u32 length and the octets, with 0xffffffff
 * for NULL; strings must not contain NUL.
 *
 *   20 octets id, opt mail_from, opt helo, opt client_addr, opt envid,
 *   u32 ret, u32 body, u8 smtputf8, i64 received_at, u64 size,
 *   u32 nrcpts, then per recipient: opt address, opt orcpt, u32 notify,
 *   u32 agent, opt dest, u32 state, i64 next_try, u32 attempts, opt diag
 *
 * The fields format 2 added take their defaults (flags 0, status and
 * remote_mta NULL, last_try 0, held false). A format 1 record:
 *
 *    0  u32 len          total octets, 32 + diag octets (32..2080)
 *    4  u32 crc          CRC-32C of octets 8..len
 *    8  u32 idx          recipient index
 *   12  u32 state        enum spool_rcpt_state
 *   16  i64 next_try
 *   24  u32 attempts
 *   28  u32 diag_len     0xffffffff: no diag
 *   32  diag octets
 *
 * It sets those four fields and leaves the others as they are.
 *
 * A file keeps the version it was committed with for its whole life:
 * its header and envelope are never rewritten (a rewrite would need a
 * new file and a rename per message on upgrade). Records appended to a
 * version 1 file after the upgrade are format 2, so such a file holds
 * format 1 records followed by format 2 ones. They are told apart by
 * the top bit of the first word: a format 1 length is at most 2080, so
 * the bit is clear in every format 1 record and set in every format 2
 * one. In a version 2 file a record without the bit is not a record (it
 * ends the valid ones, like a torn tail). Going back to a release that
 * reads only format 1 is not supported: it moves version 2 files to
 * corrupt/ and cuts the format 2 records off version 1 files.
 *
 * ---- both formats ------------------------------------------------------
 *
 * Why the records live in the message's own file rather than a second
 * per-message state file: removing a message stays one unlink (no order
 * to keep between two files, no orphan state files for recovery to
 * sort out), and a recipient update needs no directory fsync because no
 * file is created. The body and envelope before the records are never
 * written again after the commit.
 *
 * Records apply in order, the last one for a recipient (or a message
 * field) wins. A record cut short by a crash (or a failed write) fails
 * its length or checksum test; it was never acknowledged, so it and
 * anything after it is cut off (the writer truncates after a failed
 * write, recovery after a crash), and later records always follow a
 * valid one. A record that is whole and checksummed but means nothing
 * to this reader (an index past the recipients, a bad value, an unknown
 * kind) is skipped, not cut: records after it still apply.
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
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
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
	h_r->version = get_u32(in + 4);
	if (h_r->version < SPOOL_VERSION_MIN || h_r->version > SPOOL_VERSION) {
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

/* ---- format 2 fields: encoding ----------------------------------------- */

static void
tlv_head(struct buf *b, unsigned tag, size_t len)
{
	uint8_t t[SPOOL_TLV_HEAD];

	TN_ASSERT(tag <= 0xffffu && len <= UINT32_MAX);
	put_u16(t, (uint16_t)tag);
	put_u32(t + 2, (uint32_t)len);
	(void)buf_append(b, t, sizeof(t));
}

/* a string, cut to max octets; nothing for NULL */
static void
tlv_str(struct buf *b, unsigned tag, const char *s, size_t max)
{
	if (s == NULL)
		return;
	size_t n = strlen(s);
	if (n > max)
		n = max;
	tlv_head(b, tag, n);
	(void)buf_append(b, s, n);
}

/* numbers: nothing at their default, 0 */
static void
tlv_u8(struct buf *b, unsigned tag, bool v)
{
	uint8_t u8 = 1;

	if (!v)
		return;
	tlv_head(b, tag, 1);
	(void)buf_append(b, &u8, 1);
}

static void
tlv_u32(struct buf *b, unsigned tag, uint32_t v)
{
	if (v == 0)
		return;
	tlv_head(b, tag, 4);
	buf_u32(b, v);
}

static void
tlv_u64(struct buf *b, unsigned tag, uint64_t v)
{
	if (v == 0)
		return;
	tlv_head(b, tag, 8);
	buf_u64(b, v);
}

/* the mutable fields of a recipient, as in its envelope group and in its
 * records */
static void
rcpt_state_encode(const struct spool_rcpt *r, struct buf *b)
{
	tlv_u32(b, SPOOL_RT_STATE, (uint32_t)r->state);
	tlv_u64(b, SPOOL_RT_NEXT_TRY, (uint64_t)r->next_try);
	tlv_u32(b, SPOOL_RT_ATTEMPTS, r->attempts);
	tlv_str(b, SPOOL_RT_DIAG, r->diag, SPOOL_DIAG_MAX);
	tlv_u32(b, SPOOL_RT_FLAGS, r->flags);
	tlv_str(b, SPOOL_RT_STATUS, r->status, SPOOL_STATUS_MAX);
	tlv_str(b, SPOOL_RT_REMOTE_MTA, r->remote_mta, SPOOL_MTA_MAX);
	tlv_u64(b, SPOOL_RT_LAST_TRY, (uint64_t)r->last_try);
}

void
spool_env_encode(const struct spool_envelope *env, struct buf *out)
{
	struct buf g;

	TN_ASSERT(strlen(env->id) == SPOOL_ID_LEN);
	TN_ASSERT(env->nrcpts <= SPOOL_RCPTS_MAX);
	tlv_head(out, SPOOL_T_ID, SPOOL_ID_LEN);
	(void)buf_append(out, env->id, SPOOL_ID_LEN);
	tlv_str(out, SPOOL_T_MAIL_FROM, env->mail_from, SIZE_MAX);
	tlv_str(out, SPOOL_T_HELO, env->helo, SIZE_MAX);
	tlv_str(out, SPOOL_T_CLIENT_ADDR, env->client_addr, SIZE_MAX);
	tlv_str(out, SPOOL_T_ENVID, env->envid, SIZE_MAX);
	tlv_u32(out, SPOOL_T_RET, env->ret);
	tlv_u32(out, SPOOL_T_BODY, env->body);
	tlv_u8(out, SPOOL_T_SMTPUTF8, env->smtputf8);
	tlv_u64(out, SPOOL_T_RECEIVED_AT, (uint64_t)env->received_at);
	tlv_u64(out, SPOOL_T_SIZE, env->size);
	tlv_u8(out, SPOOL_T_HELD, env->held);
	tlv_u64(out, SPOOL_T_RECEIVED_US, (uint64_t)env->received_us);
	tlv_u32(out, SPOOL_T_DSN_KIND, env->dsn_kind);
	/* each group is built apart: its length leads it */
	buf_init(&g, 0);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		buf_reset(&g);
		tlv_str(&g, SPOOL_RT_ADDRESS, r->address, SIZE_MAX);
		tlv_str(&g, SPOOL_RT_ORCPT, r->orcpt, SIZE_MAX);
		tlv_u32(&g, SPOOL_RT_NOTIFY, r->notify);
		tlv_u32(&g, SPOOL_RT_AGENT, (uint32_t)r->agent);
		tlv_str(&g, SPOOL_RT_DEST, r->dest, SIZE_MAX);
		rcpt_state_encode(r, &g);
		tlv_head(out, SPOOL_T_RCPT, g.len);
		(void)buf_append(out, g.p, g.len);
	}
	buf_clear(&g);
	tlv_head(out, SPOOL_T_END, 0);
}

/* ---- decoding ---------------------------------------------------------- */

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

static bool
state_valid(uint32_t v)
{
	return v <= SPOOL_RCPT_BOUNCED;
}

/* format 2: one field */
struct tlv {
	unsigned tag;
	const uint8_t *v;
	uint32_t len;
};

/* 1 with the next field in *f, 0 at the end, -1 when it overruns */
static int
tlv_next(struct cursor *c, struct tlv *f)
{
	if (c->off == c->n)
		return 0;
	const uint8_t *h = cur_take(c, SPOOL_TLV_HEAD);
	if (h == NULL)
		return -1;
	f->tag = get_u16(h);
	f->len = get_u32(h + 2);
	f->v = cur_take(c, f->len);
	return f->v != NULL ? 1 : -1;
}

static bool
val_u8(const struct tlv *f, bool *v_r)
{
	if (f->len != 1)
		return false;
	*v_r = f->v[0] != 0;
	return true;
}

static bool
val_u32(const struct tlv *f, uint32_t *v_r)
{
	if (f->len != 4)
		return false;
	*v_r = get_u32(f->v);
	return true;
}

static bool
val_i64(const struct tlv *f, int64_t *v_r)
{
	if (f->len != 8)
		return false;
	*v_r = (int64_t)get_u64(f->v);
	return true;
}

static bool
val_str(const struct tlv *f, size_t max, char **s_r)
{
	if (f->len > max || memchr(f->v, 0, f->len) != NULL)
		return false;
	free(*s_r);
	*s_r = xstrndup((const char *)f->v, f->len);
	return true;
}

/* false when tag (< 32) was seen before; marks it seen */
static bool
first_time(uint32_t *seen, unsigned tag)
{
	uint32_t bit = 1u << tag;

	if (*seen & bit)
		return false;
	*seen |= bit;
	return true;
}

/*
 * One recipient field into r. `mutable_only` (records): the fields fixed
 * at the commit are skipped. 1 taken, 0 skipped, -1 invalid.
 */
static int
rcpt_field(struct spool_rcpt *r, const struct tlv *f, bool mutable_only,
	   uint32_t *seen)
{
	uint32_t u = 0;
	bool ok;

	if (f->tag < SPOOL_RT_ADDRESS || f->tag > SPOOL_RT_LAST_TRY ||
	    (mutable_only && f->tag < SPOOL_RT_STATE))
		return 0;
	if (!first_time(seen, f->tag))
		return -1;
	switch ((enum spool_rtag)f->tag) {
	case SPOOL_RT_ADDRESS:
		ok = val_str(f, SIZE_MAX, &r->address);
		break;
	case SPOOL_RT_ORCPT:
		ok = val_str(f, SIZE_MAX, &r->orcpt);
		break;
	case SPOOL_RT_NOTIFY:
		ok = val_u32(f, &r->notify);
		break;
	case SPOOL_RT_AGENT:
		ok = val_u32(f, &u) && u <= SPOOL_AGENT_RELAY;
		r->agent = ok ? (enum spool_agent)u : SPOOL_AGENT_LOCAL;
		break;
	case SPOOL_RT_DEST:
		ok = val_str(f, SIZE_MAX, &r->dest);
		break;
	case SPOOL_RT_STATE:
		ok = val_u32(f, &u) && state_valid(u);
		r->state = ok ? (enum spool_rcpt_state)u : SPOOL_RCPT_PENDING;
		break;
	case SPOOL_RT_NEXT_TRY:
		ok = val_i64(f, &r->next_try);
		break;
	case SPOOL_RT_ATTEMPTS:
		ok = val_u32(f, &u);
		r->attempts = u;
		break;
	case SPOOL_RT_DIAG:
		ok = val_str(f, SPOOL_DIAG_MAX, &r->diag);
		break;
	case SPOOL_RT_FLAGS:
		/* unknown bits are kept: a later revision's flags */
		ok = val_u32(f, &u);
		r->flags = u;
		break;
	case SPOOL_RT_STATUS:
		ok = val_str(f, SPOOL_STATUS_MAX, &r->status);
		break;
	case SPOOL_RT_REMOTE_MTA:
		ok = val_str(f, SPOOL_MTA_MAX, &r->remote_mta);
		break;
	case SPOOL_RT_LAST_TRY:
		ok = val_i64(f, &r->last_try);
		break;
	default:
		return 0;
	}
	return ok ? 1 : -1;
}

/* the fields of a group (or a record's body) into r: 0, or -1 */
static int
rcpt_fields(const uint8_t *p, size_t n, struct spool_rcpt *r,
	    bool mutable_only)
{
	struct cursor c = { .p = p, .n = n };
	struct tlv f;
	uint32_t seen = 0;
	int got;

	while ((got = tlv_next(&c, &f)) > 0) {
		if (rcpt_field(r, &f, mutable_only, &seen) < 0)
			return -1;
	}
	return got;
}

static int
env_decode2(const uint8_t *p, size_t n, struct spool_envelope *e,
	    const char **why_r)
{
	struct cursor c = { .p = p, .n = n };
	struct tlv f = { 0 };
	uint32_t seen = 0, u = 0;
	size_t nr = 0;
	int got = 0;

	/* first the framing and the number of recipients, which bounds
	 * the allocation by the input (a group takes >= 6 octets) */
	bool end = false;
	while (!end && (got = tlv_next(&c, &f)) > 0) {
		if (f.tag == SPOOL_T_RCPT)
			nr++;
		end = f.tag == SPOOL_T_END;
	}
	if (!end) {
		*why_r = got < 0 ? "envelope field overruns" :
			 "envelope truncated";
		return -1;
	}
	if (f.len != 0 || c.off != c.n) {
		*why_r = "envelope length mismatch";
		return -1;
	}
	if (nr > SPOOL_RCPTS_MAX) {
		*why_r = "envelope recipient count too large";
		return -1;
	}
	e->rcpts = xcalloc(nr > 0 ? nr : 1, sizeof(*e->rcpts));
	e->nrcpts = nr;
	c.off = 0;
	nr = 0;
	while (tlv_next(&c, &f) > 0) {
		bool ok = true;
		if (f.tag == SPOOL_T_RCPT) {
			struct spool_rcpt *r = &e->rcpts[nr++];
			if (rcpt_fields(f.v, f.len, r, false) < 0 ||
			    r->address == NULL) {
				*why_r = "bad recipient";
				return -1;
			}
			continue;
		}
		if (f.tag == SPOOL_T_END)
			break;
		if (f.tag > SPOOL_T_LAST)
			continue;  /* a later revision's field */
		if (!first_time(&seen, f.tag)) {
			*why_r = "envelope field repeated";
			return -1;
		}
		switch ((enum spool_tag)f.tag) {
		case SPOOL_T_ID:
			ok = f.len == SPOOL_ID_LEN;
			if (ok) {
				memcpy(e->id, f.v, SPOOL_ID_LEN);
				e->id[SPOOL_ID_LEN] = '\0';
			}
			break;
		case SPOOL_T_MAIL_FROM:
			ok = val_str(&f, SIZE_MAX, &e->mail_from);
			break;
		case SPOOL_T_HELO:
			ok = val_str(&f, SIZE_MAX, &e->helo);
			break;
		case SPOOL_T_CLIENT_ADDR:
			ok = val_str(&f, SIZE_MAX, &e->client_addr);
			break;
		case SPOOL_T_ENVID:
			ok = val_str(&f, SIZE_MAX, &e->envid);
			break;
		case SPOOL_T_RET:
			ok = val_u32(&f, &u);
			e->ret = u;
			break;
		case SPOOL_T_BODY:
			ok = val_u32(&f, &u);
			e->body = u;
			break;
		case SPOOL_T_SMTPUTF8:
			ok = val_u8(&f, &e->smtputf8);
			break;
		case SPOOL_T_RECEIVED_AT:
			ok = val_i64(&f, &e->received_at);
			break;
		case SPOOL_T_SIZE:
			ok = f.len == 8;
			e->size = ok ? get_u64(f.v) : 0;
			break;
		case SPOOL_T_HELD:
			ok = val_u8(&f, &e->held);
			break;
		case SPOOL_T_RECEIVED_US:
			ok = val_i64(&f, &e->received_us);
			break;
		case SPOOL_T_DSN_KIND:
			ok = val_u32(&f, &u);
			e->dsn_kind = u;
			break;
		case SPOOL_T_END:
		case SPOOL_T_RCPT:
			break;
		}
		if (!ok) {
			*why_r = "bad envelope field";
			return -1;
		}
	}
	return 0;
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

/* format 1: positional (top of file) */
static int
env_decode1(const uint8_t *p, size_t n, struct spool_envelope *e,
	    const char **why_r)
{
	struct cursor c = { .p = p, .n = n };

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
		return -1;
	}
	/* every recipient takes at least 40 octets: bounds the allocation */
	if (nr > (c.n - c.off) / 40) {
		*why_r = "envelope recipient count too large";
		return -1;
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
			return -1;
		}
		r->agent = (enum spool_agent)agent;
		r->state = (enum spool_rcpt_state)state;
	}
	if (c.bad || c.off != c.n) {
		*why_r = "envelope length mismatch";
		return -1;
	}
	return 0;
}

int
spool_env_decode(const uint8_t *p, size_t n, uint32_t version,
		 struct spool_envelope *env_r, const char **why_r)
{
	struct spool_envelope *e = env_r;
	int r;

	memset(e, 0, sizeof(*e));
	if (version == 1) {
		r = env_decode1(p, n, e, why_r);
	} else if (version == 2) {
		r = env_decode2(p, n, e, why_r);
	} else {
		*why_r = "unknown version";
		r = -1;
	}
	if (r < 0)
		goto fail;
	if (!spool_id_valid(e->id)) {
		*why_r = "envelope id invalid";
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

/* ---- records ----------------------------------------------------------- */

/* appends head + fields as one format 2 record */
static void
rec_finish(struct buf *out, uint32_t kind, uint32_t idx,
	   const struct buf *fields)
{
	uint8_t h[SPOOL_REC2_HEAD];
	size_t len = SPOOL_REC2_HEAD + fields->len;

	/* UNSAFE: fields are a few bounded strings and numbers, so len is
	 * far below SPOOL_REC2_MAX < SPOOL_REC2_MARK */
	TN_ASSERT(len <= SPOOL_REC2_MAX);
	put_u32(h, SPOOL_REC2_MARK | (uint32_t)len);
	put_u32(h + 8, kind);
	put_u32(h + 12, idx);
	uint32_t crc = spool_crc32c(0, h + 8, SPOOL_REC2_HEAD - 8);
	crc = spool_crc32c(crc, fields->p, fields->len);
	put_u32(h + 4, crc);
	(void)buf_append(out, h, sizeof(h));
	(void)buf_append(out, fields->p, fields->len);
}

void
spool_rec_encode(size_t idx, const struct spool_rcpt *rcpt, struct buf *out)
{
	struct buf f;

	TN_ASSERT(idx <= SPOOL_RCPTS_MAX);
	buf_init(&f, 0);
	rcpt_state_encode(rcpt, &f);
	rec_finish(out, SPOOL_REC_RCPT, (uint32_t)idx, &f);
	buf_clear(&f);
}

void
spool_msg_rec_encode(const struct spool_msg_rec *mr, struct buf *out)
{
	struct buf f;
	uint8_t v = mr->held ? 1 : 0;

	buf_init(&f, 0);
	/* written even when false: a patch says what it sets */
	if (mr->set & SPOOL_MSGF_HELD) {
		tlv_head(&f, SPOOL_T_HELD, 1);
		(void)buf_append(&f, &v, 1);
	}
	rec_finish(out, SPOOL_REC_MSG, 0, &f);
	buf_clear(&f);
}

/*
 * A whole, checksummed format 1 record r[0..len) into *rec: false when
 * it means nothing to us (skipped, not torn)
 */
static bool
decode1(const uint8_t *r, size_t nrcpts, struct spool_rec *rec)
{
	uint32_t idx = get_u32(r + 8);
	uint32_t state = get_u32(r + 12);
	uint32_t dlen = get_u32(r + 28);

	if (idx >= nrcpts || !state_valid(state) ||
	    (dlen != OPT_NULL && memchr(r + SPOOL_REC1_FIXED, 0, dlen) != NULL))
		return false;
	rec->kind = SPOOL_REC_RCPT;
	rec->format = 1;
	rec->idx = idx;
	rec->st.state = (enum spool_rcpt_state)state;
	rec->st.next_try = (int64_t)get_u64(r + 16);
	rec->st.attempts = get_u32(r + 24);
	rec->st.diag = dlen == OPT_NULL ? NULL :
		       xstrndup((const char *)r + SPOOL_REC1_FIXED, dlen);
	return true;
}

/* the same for a format 2 record: taken all or not at all */
static bool
decode2(const uint8_t *r, uint32_t len, size_t nrcpts, struct spool_rec *rec)
{
	uint32_t kind = get_u32(r + 8);
	uint32_t idx = get_u32(r + 12);
	const uint8_t *p = r + SPOOL_REC2_HEAD;
	size_t n = len - SPOOL_REC2_HEAD;

	rec->format = 2;
	if (kind == SPOOL_REC_RCPT) {
		rec->kind = SPOOL_REC_RCPT;
		rec->idx = idx;
		return idx < nrcpts && rcpt_fields(p, n, &rec->st, true) == 0;
	}
	if (kind == SPOOL_REC_MSG) {
		struct cursor c = { .p = p, .n = n };
		struct tlv f;
		uint32_t seen = 0;
		int got;
		rec->kind = SPOOL_REC_MSG;
		while ((got = tlv_next(&c, &f)) > 0) {
			if (f.tag != SPOOL_T_HELD)
				continue;
			if (!first_time(&seen, f.tag) ||
			    !val_u8(&f, &rec->msg.held))
				return false;
			rec->msg.set |= SPOOL_MSGF_HELD;
		}
		/* a record that sets nothing we know changes nothing */
		return got == 0 && rec->msg.set != 0;
	}
	/* another kind: a later revision's, skipped */
	return false;
}

size_t
spool_recs_walk(const uint8_t *p, size_t n, uint32_t version, size_t nrcpts,
		spool_rec_cb *cb, void *arg)
{
	size_t off = 0;

	while (n - off >= 4) {
		const uint8_t *r = p + off;
		uint32_t word = get_u32(r);
		uint32_t len = word & ~SPOOL_REC2_MARK;
		struct spool_rec rec = { 0 };
		bool ok;
		if (word & SPOOL_REC2_MARK) {
			if (len < SPOOL_REC2_HEAD || len > SPOOL_REC2_MAX ||
			    len > n - off)
				break;
			if (get_u32(r + 4) != spool_crc32c(0, r + 8, len - 8))
				break;
			off += len;
			ok = decode2(r, len, nrcpts, &rec);
		} else {
			/* format 1: only before the upgrade, in version 1
			 * files */
			if (version != 1 || len < SPOOL_REC1_FIXED ||
			    len > SPOOL_REC1_FIXED + SPOOL_DIAG_MAX ||
			    len > n - off)
				break;
			if (get_u32(r + 4) != spool_crc32c(0, r + 8, len - 8))
				break;
			uint32_t dlen = get_u32(r + 28);
			size_t want = SPOOL_REC1_FIXED +
				      (dlen == OPT_NULL ? 0 : (size_t)dlen);
			if (want != len)
				break;
			off += len;
			ok = decode1(r, nrcpts, &rec);
		}
		if (ok)
			cb(arg, &rec);
		spool_rcpt_clear(&rec.st);
	}
	return off;
}

/* one record into the envelope: the last one wins */
static void
apply_rec(void *arg, struct spool_rec *rec)
{
	struct spool_envelope *env = arg;
	struct spool_rcpt *st = &rec->st;

	if (rec->kind == SPOOL_REC_MSG) {
		/* a patch: only what it sets */
		if (rec->msg.set & SPOOL_MSGF_HELD)
			env->held = rec->msg.held;
		return;
	}
	struct spool_rcpt *rc = &env->rcpts[rec->idx];
	rc->state = st->state;
	rc->next_try = st->next_try;
	rc->attempts = st->attempts;
	free(rc->diag);
	rc->diag = st->diag;
	st->diag = NULL;
	if (rec->format == 1)
		return;  /* it sets those four and leaves the rest */
	/* a format 2 record holds the whole mutable state */
	free(rc->status);
	free(rc->remote_mta);
	rc->flags = st->flags;
	rc->status = st->status;
	rc->remote_mta = st->remote_mta;
	rc->last_try = st->last_try;
	st->status = st->remote_mta = NULL;
}

size_t
spool_recs_apply(const uint8_t *p, size_t n, uint32_t version,
		 struct spool_envelope *env)
{
	return spool_recs_walk(p, n, version, env->nrcpts, apply_rec, env);
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

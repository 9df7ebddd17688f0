/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the SMTP server engine. The first input octet picks
 * the limits and options and how the rest is cut into reads, the second
 * the STARTTLS, AUTH and abuse limit options; the rest is what a peer
 * sends. Verdicts go round OK, TEMPFAIL, PERMFAIL, now and then with a
 * code, lines or a close; AUTH verdicts now and then continue with a
 * challenge taken from the input (or one too long for a line). After an
 * OK STARTTLS verdict the harness starts TLS as serve/ does: it drops the
 * rest of the current read and calls smtp_engine_tls_started().
 *
 * Invariants checked with TN_ASSERT: nothing is consumed while a verdict
 * is awaited or the TLS handshake is due, every reply line ends in CRLF
 * and fits 512 octets (a 334 line: 12,288, base64 only), multi-line
 * replies keep their code, the phase agrees with feed()'s result, an
 * accepted message has exactly the size reported, no bare CR, LF or NUL,
 * and no more than size_max; no MAIL, RCPT, AUTH or STARTTLS event comes
 * before HELO (and after the handshake, before a new one); STARTTLS and
 * AUTH events come only where offered, AUTH steps count up from 0, an
 * exchange that ends without a verdict gives one AUTH_ABORT (also when
 * the session closes); with auth_required no MAIL event comes before AUTH
 * succeeded; the command count never goes down.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNK_EVENT_MAX (8192 + 2)
#define MECHS "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"

struct fz {
	struct smtp_engine *e;
	const struct smtp_params *params;
	const uint8_t *data;    /* the input, for challenges */
	size_t size;
	unsigned verdicts;
	bool have_helo;
	bool in_message;
	struct buf body;
	int open_code;          /* code of an unfinished multi-line reply */
	bool tls;               /* the session is in TLS */
	bool tls_pending;       /* STARTTLS accepted: handshake due */
	bool authed;
	bool exchange;          /* an AUTH exchange is open */
	unsigned auth_step;     /* the step the next AUTH event must have */
	uint64_t commands;
};

static uint8_t big_challenge[SMTP_AUTH_CHALLENGE_MAX + 1];

static bool
is_base64(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

static bool
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* every line: 3 digits, SP or '-', text, CRLF, at most 512 octets */
static void
check_output(struct fz *f)
{
	struct buf *out = smtp_engine_out(f->e);
	size_t start = 0;

	for (size_t i = 0; i < out->len; i++) {
		const uint8_t *l = out->p + start;
		size_t len;
		int code;

		if (out->p[i] != '\n')
			continue;
		len = i + 1 - start;
		TN_ASSERT(out->p[i - 1] == '\r');
		if (len >= 6 && memcmp(l, "334 ", 4) == 0) {
			/* RFC 4954 §4: base64 and nothing else */
			TN_ASSERT(len <= SMTP_AUTH_LINE_MAX);
			TN_ASSERT((len - 6) % 4 == 0);
			for (size_t k = start + 4; k < i - 1; k++)
				TN_ASSERT(is_base64(out->p[k]));
			TN_ASSERT(f->open_code == 0);
			start = i + 1;
			continue;
		}
		TN_ASSERT(len >= 6 && len <= 512);
		for (size_t k = start; k < i - 1; k++)
			TN_ASSERT(out->p[k] >= 32 && out->p[k] < 127);
		TN_ASSERT(is_digit(l[0]) && is_digit(l[1]) && is_digit(l[2]));
		code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		TN_ASSERT(code >= 200 && code <= 599);
		TN_ASSERT(l[3] == ' ' || l[3] == '-');
		if (f->open_code != 0)
			TN_ASSERT(code == f->open_code);
		f->open_code = l[3] == '-' ? code : 0;
		start = i + 1;
	}
	TN_ASSERT(start == out->len);
	/* a reply is written whole within one turn */
	TN_ASSERT(f->open_code == 0);
	buf_reset(out);
}

/* a message that was accepted must be clean CRLF text */
static void
check_body(const struct fz *f, uint64_t size)
{
	const uint8_t *p = f->body.p;

	TN_ASSERT(size == f->body.len);
	TN_ASSERT(size <= f->params->size_max);
	for (size_t i = 0; i < f->body.len; i++) {
		TN_ASSERT(p[i] != '\0');
		if (p[i] == '\r')
			TN_ASSERT(i + 1 < f->body.len && p[i + 1] == '\n');
		if (p[i] == '\n')
			TN_ASSERT(i > 0 && p[i - 1] == '\r');
	}
}

/* an AUTH verdict: go on with a challenge, or an outcome */
static void
decide_auth(struct fz *f, unsigned n, struct smtp_verdict *v)
{
	size_t off, len;

	switch (n % 7) {
	case 0:
	case 3:
	case 5:
		v->auth_continue = true;
		/* now and then a kind or code that must be ignored */
		if (n % 5 == 0)
			v->code = 999;
		if (f->size == 0)
			break;
		off = (n * 131u) % f->size;
		len = f->data[off] % 48;
		if (len > f->size - off)
			len = f->size - off;
		v->challenge = f->data + off;
		v->challenge_len = len;
		break;
	case 1:
		v->auth_continue = true;
		v->challenge = big_challenge;
		v->challenge_len = n % 2 == 0 ? SMTP_AUTH_CHALLENGE_MAX :
				   SMTP_AUTH_CHALLENGE_MAX + 1;
		break;
	case 6:
		if (v->kind == SMTP_VERDICT_PERMFAIL) {
			v->code = 535;
			v->enhanced = "5.7.8";
			v->text = "custom\r\nfailure";
		} else if (v->kind == SMTP_VERDICT_OK) {
			v->code = 235;
			v->text = "Welcome";
		}
		break;
	default:
		break;
	}
}

static enum smtp_verdict_kind
decide(struct fz *f, const struct smtp_event *ev)
{
	static const char *const lines[] = { "one", "two\r\nthree", "" };
	struct smtp_verdict v = { .kind = SMTP_VERDICT_OK };
	unsigned n = f->verdicts++;

	v.kind = (enum smtp_verdict_kind)(n % 3);
	switch (n % 11) {
	case 4:
		v.code = v.kind == SMTP_VERDICT_OK ? 250 :
			 v.kind == SMTP_VERDICT_TEMPFAIL ? 452 : 553;
		v.text = "custom\r\ntext";
		break;
	case 7:
		v.text = "Ok: queued as FUZZ";
		break;
	case 9:
		if (ev->kind == SMTP_EV_EXPN || ev->kind == SMTP_EV_VRFY) {
			v.code = v.kind == SMTP_VERDICT_OK ? 250 :
				 v.kind == SMTP_VERDICT_TEMPFAIL ? 450 : 550;
			v.lines = lines;
			v.nlines = 3;
		}
		break;
	case 10:
		if (n % 4 == 0)
			v.close = true;
		break;
	default:
		break;
	}
	if (ev->kind == SMTP_EV_AUTH) {
		v.code = 0;
		v.text = NULL;
		v.nlines = 0;
		decide_auth(f, n, &v);
	}
	if (ev->kind == SMTP_EV_STARTTLS && v.code != 0)
		v.code = v.kind == SMTP_VERDICT_OK ? 220 :
			 v.kind == SMTP_VERDICT_TEMPFAIL ? 454 : 554;
	smtp_engine_decide(f->e, &v);
	if (ev->kind == SMTP_EV_AUTH) {
		if (v.close && v.auth_continue) {
			/* the close ends the exchange: AUTH_ABORT follows */
		} else if (v.auth_continue &&
			   v.challenge_len <= SMTP_AUTH_CHALLENGE_MAX) {
			f->auth_step++;
		} else if (v.auth_continue) {
			/* too long: AUTH_ABORT follows */
		} else {
			f->exchange = false;
			if (v.kind == SMTP_VERDICT_OK)
				f->authed = true;
		}
		TN_ASSERT(smtp_engine_authenticated(f->e) == f->authed);
	}
	if (ev->kind == SMTP_EV_STARTTLS && v.kind == SMTP_VERDICT_OK &&
	    !v.close)
		f->tls_pending = true;
	return v.kind;
}

/* the mechanism is one of those configured, as spelled there */
static bool
mech_known(const char *m)
{
	static const char *const names[] = {
		"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (m != NULL && strcmp(m, names[i]) == 0)
			return true;
	}
	return false;
}

static bool
needs_verdict(enum smtp_event_kind k)
{
	return k == SMTP_EV_MAIL || k == SMTP_EV_RCPT ||
	       k == SMTP_EV_DATA_START || k == SMTP_EV_DATA_END ||
	       k == SMTP_EV_VRFY || k == SMTP_EV_EXPN ||
	       k == SMTP_EV_STARTTLS || k == SMTP_EV_AUTH;
}

static void
drain(struct fz *f)
{
	struct smtp_event ev;

	while (smtp_engine_next(f->e, &ev)) {
		TN_ASSERT(ev.kind != SMTP_EV_NONE);
		if (f->have_helo)
			TN_ASSERT(ev.helo_name != NULL);
		switch (ev.kind) {
		case SMTP_EV_HELO:
			TN_ASSERT(ev.helo_name != NULL);
			TN_ASSERT(ev.helo_name[0] != '\0');
			f->have_helo = true;
			break;
		case SMTP_EV_DATA_START:
			buf_reset(&f->body);
			f->in_message = true;
			break;
		case SMTP_EV_DATA_CHUNK:
			TN_ASSERT(f->in_message);
			TN_ASSERT(ev.data != NULL && ev.data_len > 0);
			TN_ASSERT(ev.data_len <= CHUNK_EVENT_MAX);
			TN_ASSERT(buf_append(&f->body, ev.data,
					     ev.data_len) == 0);
			break;
		case SMTP_EV_DATA_END:
			TN_ASSERT(f->in_message);
			check_body(f, ev.size);
			f->in_message = false;
			break;
		case SMTP_EV_DATA_ABORT:
			TN_ASSERT(ev.reply != NULL);
			TN_ASSERT(ev.reply[0] == '5');
			f->in_message = false;
			break;
		case SMTP_EV_RSET:
			f->in_message = false;
			break;
		case SMTP_EV_PROTOCOL_ERROR:
			TN_ASSERT(ev.reply != NULL);
			TN_ASSERT(ev.reply[0] == '4' || ev.reply[0] == '5');
			break;
		case SMTP_EV_MAIL:
			TN_ASSERT(f->have_helo);
			TN_ASSERT(!f->params->auth_required || f->authed);
			TN_ASSERT(ev.address != NULL);
			break;
		case SMTP_EV_RCPT:
			TN_ASSERT(f->have_helo);
			TN_ASSERT(ev.address != NULL);
			break;
		case SMTP_EV_VRFY:
		case SMTP_EV_EXPN:
			TN_ASSERT(ev.address != NULL);
			break;
		case SMTP_EV_STARTTLS:
			TN_ASSERT(f->have_helo && ev.esmtp);
			TN_ASSERT(f->params->starttls && !f->tls);
			TN_ASSERT(!f->exchange);
			break;
		case SMTP_EV_AUTH:
			TN_ASSERT(f->have_helo && ev.esmtp);
			TN_ASSERT(f->tls || f->params->auth_clear);
			TN_ASSERT(!f->authed);
			TN_ASSERT(mech_known(ev.auth_mech));
			if (ev.auth_step == 0) {
				TN_ASSERT(!f->exchange);
				f->exchange = true;
				f->auth_step = 0;
			}
			TN_ASSERT(f->exchange);
			TN_ASSERT(ev.auth_step == f->auth_step);
			if (ev.auth_has_data) {
				TN_ASSERT(ev.data != NULL);
				TN_ASSERT(ev.data_len <=
					  (SMTP_AUTH_LINE_MAX - 2) / 4 * 3);
			} else {
				TN_ASSERT(ev.auth_step == 0);
				TN_ASSERT(ev.data == NULL && ev.data_len == 0);
			}
			break;
		case SMTP_EV_AUTH_ABORT:
			TN_ASSERT(f->exchange);
			TN_ASSERT(mech_known(ev.auth_mech));
			f->exchange = false;
			break;
		default:
			break;
		}
		if (needs_verdict(ev.kind)) {
			size_t used = 1;
			int r;
			/* the verdict's event is the last one queued */
			TN_ASSERT(smtp_engine_waiting(f->e));
			/* while it waits, the engine reads nothing */
			r = smtp_engine_feed(f->e, (const uint8_t *)"NOOP\r\n",
					     6, &used);
			TN_ASSERT(used == 0 && r == 0);
			if (decide(f, &ev) != SMTP_VERDICT_OK &&
			    ev.kind == SMTP_EV_DATA_START)
				f->in_message = false;
		}
	}
	TN_ASSERT(!smtp_engine_waiting(f->e));
	TN_ASSERT(smtp_engine_commands(f->e) >= f->commands);
	f->commands = smtp_engine_commands(f->e);
	check_output(f);
}

/* STARTTLS was accepted: nothing more is read; TLS starts, and the rest
 * of this read is dropped as serve/ drops its buffer */
static void
handshake(struct fz *f, const uint8_t *p, size_t n)
{
	size_t used = 1;
	int r = smtp_engine_feed(f->e, p, n, &used);

	TN_ASSERT(r == 0 && used == 0);
	TN_ASSERT(!smtp_engine_waiting(f->e));
	TN_ASSERT(smtp_engine_phase(f->e) == SMTP_PHASE_COMMAND);
	TN_ASSERT(smtp_engine_out(f->e)->len == 0);
	smtp_engine_tls_started(f->e);
	f->tls_pending = false;
	f->tls = true;
	f->have_helo = false;
	f->authed = false;
	TN_ASSERT(!smtp_engine_authenticated(f->e));
}

/* feeds one read; returns false once the session is closed */
static bool
feed(struct fz *f, const uint8_t *p, size_t n)
{
	unsigned idle = 0;

	for (;;) {
		size_t used = (size_t)-1;
		int r = smtp_engine_feed(f->e, p, n, &used);

		TN_ASSERT(used <= n);
		TN_ASSERT(r >= -1 && r <= 1);
		TN_ASSERT((r == -1) ==
			  (smtp_engine_phase(f->e) == SMTP_PHASE_CLOSED));
		if (r == 0)
			TN_ASSERT(used == n);
		p += used;
		n -= used;
		drain(f);
		if (r < 0) {
			TN_ASSERT(smtp_engine_feed(f->e, p, n, &used) == -1);
			TN_ASSERT(used == 0);
			return false;
		}
		if (f->tls_pending) {
			handshake(f, p, n);
			return true;
		}
		if (n == 0)
			return true;
		TN_ASSERT(used > 0 || r == 1 || ++idle < 3);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_params params = { .hostname = "fuzz.test" };
	struct fz f;
	uint8_t cfg, cfg2;

	if (size < 2)
		return 0;
	cfg = data[0];
	cfg2 = data[1];
	data += 2;
	size -= 2;
	params.size_max = (cfg & 0x01) ? 64 : 100000;
	params.rcpt_max = (cfg & 0x02) ? 2 : 100;
	params.errors_max = (cfg & 0x04) ? 3 : 50;
	params.vrfy_enabled = (cfg & 0x08) != 0;
	params.expn_enabled = (cfg & 0x10) != 0;
	params.starttls = (cfg2 & 0x01) != 0;
	params.tls = (cfg2 & 0x02) != 0;
	params.auth_mechs = (cfg2 & 0x04) != 0 ? MECHS : NULL;
	params.auth_clear = (cfg2 & 0x08) != 0;
	params.auth_required = (cfg2 & 0x10) != 0;
	params.junk_max = (cfg2 & 0x20) != 0 ? 3 : 0;
	params.auth_failures_max = (cfg2 & 0x40) != 0 ? 2 : 0;
	if (big_challenge[0] == 0)
		memset(big_challenge, 0xa5, sizeof(big_challenge));

	memset(&f, 0, sizeof(f));
	f.params = &params;
	f.data = data;
	f.size = size;
	f.tls = params.tls;
	buf_init(&f.body, 0);
	f.e = smtp_engine_new(&params);
	smtp_engine_greet(f.e);
	check_output(&f);

	bool open = true;
	if ((cfg & 0x60) == 0) {
		open = feed(&f, data, size);
	} else if ((cfg & 0x60) == 0x20) {
		/* reads of 1..16 octets, lengths taken from the data */
		size_t i = 0;
		while (open && i < size) {
			size_t len = 1 + data[(i * 7) % size] % 16;
			if (len > size - i)
				len = size - i;
			open = feed(&f, data + i, len);
			i += len;
		}
	} else {
		/* two cuts derived from the data */
		size_t c1 = 0, c2 = 0;
		if (size > 0) {
			c1 = (data[size / 2] * (size_t)131) % (size + 1);
			c2 = (data[size - 1] * (size_t)257) % (size + 1);
		}
		if (c1 > c2) {
			size_t t = c1;
			c1 = c2;
			c2 = t;
		}
		open = feed(&f, data, c1);
		if (open)
			open = feed(&f, data + c1, c2 - c1);
		if (open)
			open = feed(&f, data + c2, size - c2);
	}
	if (open) {
		if (cfg & 0x80)
			smtp_engine_shutdown(f.e);
		else
			smtp_engine_timeout(f.e);
		TN_ASSERT(smtp_engine_phase(f.e) == SMTP_PHASE_CLOSED);
		drain(&f);
	}
	/* every exchange ended: with a verdict or an AUTH_ABORT */
	TN_ASSERT(!f.exchange);
	smtp_engine_free(&f.e);
	buf_clear(&f.body);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * smtpc_auth: the client's side of SMTP AUTH (RFC 4954) with the PLAIN
 * (RFC 4616) and LOGIN mechanisms, for a smarthost that wants a login.
 * PLAIN is chosen when offered (one round trip, its initial response on
 * the AUTH line), else LOGIN (334 "Username:" and "Password:" prompts).
 * Credentials go out only on a session the caller said is encrypted, and
 * never into an event; they are wiped once AUTH is over. No I/O.
 */
#include <stdlib.h>
#include <string.h>

#include "smtpc/smtpc_int.h"

void
smtpc_base64(struct buf *out, const uint8_t *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];

	/* RFC 4648 §4, with padding; out has no max: appends cannot fail */
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		q[0] = tab[(v >> 18) & 63];
		q[1] = tab[(v >> 12) & 63];
		q[2] = left > 1 ? tab[(v >> 6) & 63] : '=';
		q[3] = left > 2 ? tab[v & 63] : '=';
		(void)buf_append(out, q, sizeof(q));
	}
}

unsigned
smtpc_auth_parse(const char *t, size_t n)
{
	static const struct {
		const char *name;
		unsigned bit;
	} mechs[] = {
		{ "PLAIN", SMTPC_AUTH_PLAIN },
		{ "LOGIN", SMTPC_AUTH_LOGIN },
	};
	unsigned got = 0;
	size_t i = 0;

	/* mechanism names are upper case (RFC 4422 §3.1), but servers that
	 * write them otherwise exist; other names are skipped */
	while (i < n) {
		size_t start, len;

		while (i < n && t[i] == ' ')
			i++;
		start = i;
		while (i < n && t[i] != ' ')
			i++;
		len = i - start;
		for (size_t k = 0; k < sizeof(mechs) / sizeof(mechs[0]); k++) {
			if (strlen(mechs[k].name) == len &&
			    ascii_strncasecmp(t + start, mechs[k].name,
					      len) == 0)
				got |= mechs[k].bit;
		}
	}
	return got;
}

void
smtpc_auth_forget(struct smtpc *c)
{
	if (c->auth_user != NULL) {
		explicit_bzero(c->auth_user, strlen(c->auth_user));
		free(c->auth_user);
		c->auth_user = NULL;
	}
	if (c->auth_password != NULL) {
		explicit_bzero(c->auth_password, strlen(c->auth_password));
		free(c->auth_password);
		c->auth_password = NULL;
	}
}

/* one base64 line of the exchange (RFC 4954 §4) */
static void
send_b64_line(struct smtpc *c, const char *prefix, const char *s)
{
	smtpc_out_str(c, prefix);
	smtpc_base64(&c->out, (const uint8_t *)s, strlen(s));
	smtpc_out_str(c, "\r\n");
	c->out_secret = true;
}

void
smtpc_auth_start(struct smtpc *c)
{
	/* RFC 4954 §4 and §14: a password in the clear is readable by
	 * anyone on the path; whatever the TLS policy, it is withheld */
	if (!c->tls_on) {
		smtpc_fail_as(c, false, SMTPC_FAIL_AUTH_CLEAR,
			      "credentials are not sent without TLS");
		return;
	}
	if (c->auth_mechs & SMTPC_AUTH_PLAIN) {
		/* RFC 4616 §2: message = [authzid] NUL authcid NUL passwd;
		 * RFC 4954 §4: sent as the initial response */
		size_t ul = strlen(c->auth_user), pl = strlen(c->auth_password);
		size_t n;
		uint8_t *msg;

		TN_ASSERT(!__builtin_add_overflow(ul, pl, &n) &&
			  !__builtin_add_overflow(n, 2, &n));
		msg = xmalloc(n);
		msg[0] = '\0';
		memcpy(msg + 1, c->auth_user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, c->auth_password, pl);
		smtpc_out_str(c, "AUTH PLAIN ");
		smtpc_base64(&c->out, msg, n);
		smtpc_out_str(c, "\r\n");
		c->out_secret = true;
		explicit_bzero(msg, n);
		free(msg);
		c->auth_step = SMTPC_AUTH_STEP_PLAIN;
	} else if (c->auth_mechs & SMTPC_AUTH_LOGIN) {
		smtpc_out_str(c, "AUTH LOGIN\r\n");
		c->auth_step = SMTPC_AUTH_STEP_LOGIN;
	} else {
		smtpc_fail_as(c, false, SMTPC_FAIL_AUTH_MECH,
			      (c->ext & SMTPC_EXT_AUTH) ?
			      "the server offers no AUTH mechanism tern "
			      "speaks (PLAIN, LOGIN)" :
			      "the server does not offer AUTH");
		return;
	}
	c->state = SMTPC_ST_AUTH;
}

void
smtpc_auth_reply(struct smtpc *c)
{
	/* RFC 4954 §4: 235 ends it well; 334 asks for the next line */
	if (c->code / 100 == 2) {
		c->auth_used = c->auth_step == SMTPC_AUTH_STEP_PLAIN ?
			       "PLAIN" : "LOGIN";
		smtpc_auth_forget(c);
		smtpc_ready(c, false);
		return;
	}
	if (c->code == 334) {
		/* LOGIN's prompts ("Username:", "Password:") come in this
		 * order; their text is not checked, servers word them
		 * differently */
		switch (c->auth_step) {
		case SMTPC_AUTH_STEP_LOGIN:
			send_b64_line(c, "", c->auth_user);
			c->auth_step = SMTPC_AUTH_STEP_USER;
			return;
		case SMTPC_AUTH_STEP_USER:
			send_b64_line(c, "", c->auth_password);
			c->auth_step = SMTPC_AUTH_STEP_PASSWORD;
			return;
		case SMTPC_AUTH_STEP_PLAIN:
		case SMTPC_AUTH_STEP_PASSWORD:
			break;
		}
		/* nothing more to answer: the server is not following */
		smtpc_fail_as(c, true, SMTPC_FAIL_AUTH,
			      "unexpected challenge in AUTH");
		return;
	}
	/* 535 5.7.8 (RFC 4954 §6), 454, 534, 538 ...: the session cannot
	 * go on without the login the caller asked for */
	smtpc_fail_as(c, true, SMTPC_FAIL_AUTH, "authentication failed");
}

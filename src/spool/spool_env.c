/* SPDX-License-Identifier: MIT */
/*
 * spool_env: deep copy and release of envelopes. Memory only, no I/O.
 */
#include <string.h>

#include "spool/spool_int.h"

static char *
dup_opt(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct spool_envelope *
spool_envelope_dup(const struct spool_envelope *env)
{
	struct spool_envelope *d = xcalloc(1, sizeof(*d));

	memcpy(d->id, env->id, sizeof(d->id));
	d->id[SPOOL_ID_LEN] = '\0';
	d->mail_from = dup_opt(env->mail_from);
	d->helo = dup_opt(env->helo);
	d->client_addr = dup_opt(env->client_addr);
	d->envid = dup_opt(env->envid);
	d->ret = env->ret;
	d->body = env->body;
	d->smtputf8 = env->smtputf8;
	d->received_at = env->received_at;
	d->size = env->size;
	d->held = env->held;
	d->received_us = env->received_us;
	d->dsn_kind = env->dsn_kind;
	d->nrcpts = env->nrcpts;
	d->rcpts = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1,
			   sizeof(*d->rcpts));
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *s = &env->rcpts[i];
		struct spool_rcpt *r = &d->rcpts[i];
		*r = *s;
		r->address = dup_opt(s->address);
		r->orcpt = dup_opt(s->orcpt);
		r->dest = dup_opt(s->dest);
		r->diag = dup_opt(s->diag);
		r->status = dup_opt(s->status);
		r->remote_mta = dup_opt(s->remote_mta);
	}
	return d;
}

void
spool_rcpt_clear(struct spool_rcpt *r)
{
	free(r->address);
	free(r->orcpt);
	free(r->dest);
	free(r->diag);
	free(r->status);
	free(r->remote_mta);
	memset(r, 0, sizeof(*r));
}

void
spool_envelope_clear(struct spool_envelope *env)
{
	free(env->mail_from);
	free(env->helo);
	free(env->client_addr);
	free(env->envid);
	if (env->rcpts != NULL) {
		for (size_t i = 0; i < env->nrcpts; i++)
			spool_rcpt_clear(&env->rcpts[i]);
		free(env->rcpts);
	}
	memset(env, 0, sizeof(*env));
}

void
spool_envelope_free(struct spool_envelope **envp)
{
	struct spool_envelope *env = *envp;

	if (env == NULL)
		return;
	*envp = NULL;
	spool_envelope_clear(env);
	free(env);
}

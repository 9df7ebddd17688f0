/* SPDX-License-Identifier: MIT */
/*
 * notify: the service manager's view of the server (systemd's
 * Type=notify, sd_notify(3)). READY=1 once every listener is up, so that
 * units ordered after tern start when it takes mail; STOPPING=1 when a
 * graceful stop begins. Without $NOTIFY_SOCKET (not run by systemd)
 * nothing is sent.
 */
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "serve/serve.h"

static void
notify(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		log_warn("tern event=notify error=\"%s\"", strerror(-r));
}

void
serve_notify_ready(const struct tern_server *srv)
{
	const struct tern_conf *conf = srv->conf;
	char state[256];

	/* a shorter status is still worth sending: no truncation check */
	snprintf(state, sizeof(state),
		 "READY=1\nSTATUS=accepting mail: %zu listeners, %zu domains, %zu users",
		 conf->nlisteners, conf->ndomains, conf->nusers);
	notify(state);
}

void
serve_notify_stopping(void)
{
	notify("STOPPING=1\nSTATUS=stopping: finishing sessions and deliveries");
}

/* SPDX-License-Identifier: MIT */
/* `tern route`: the delivery route to a domain, as tern resolves it. */
#ifndef TERN_MAIN_ROUTE_H
#define TERN_MAIN_ROUTE_H

#include "conf/conf.h"

/* loads a configuration file and prints its errors; NULL on failure */
typedef struct tern_conf *tern_conf_loader(const char *path);

/*
 * Runs `tern route DOMAIN [options]` (argv[1] is "route"). Returns the
 * exit status: 0 for a route, 1 for a permanent failure (no such domain,
 * null MX), 75 (EX_TEMPFAIL) for a temporary one, 2 for bad usage.
 */
int tern_route_main(int argc, char **argv, tern_conf_loader *load);

#endif

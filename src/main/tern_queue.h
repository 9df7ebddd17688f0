/* SPDX-License-Identifier: MIT */
/* `tern queue` and `mailq`: the administrator's queue commands. */
#ifndef TERN_MAIN_QUEUE_H
#define TERN_MAIN_QUEUE_H

#include "main/tern_route.h"

/*
 * Runs `tern queue COMMAND [ID] [--json] [--config FILE]` (argv[1] is
 * "queue") against the running server's control socket. Returns the exit
 * status: 0 ok, 1 the server answered an error, 64 (EX_USAGE) bad usage,
 * 69 (EX_UNAVAILABLE) no server to ask, 75 (EX_TEMPFAIL) no answer in
 * time, 76 (EX_PROTOCOL) an answer that makes no sense, 78 (EX_CONFIG)
 * a configuration that does not load.
 */
int tern_queue_main(int argc, char **argv, tern_conf_loader *load);

/* the binary called as `mailq`: `tern queue list` with argv[1..] */
int tern_queue_mailq(int argc, char **argv, tern_conf_loader *load);

#endif

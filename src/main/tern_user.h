/* SPDX-License-Identifier: MIT */
/* `tern user`: the administrator's account commands. */
#ifndef TERN_MAIN_USER_H
#define TERN_MAIN_USER_H

#include "main/tern_route.h"

/*
 * Runs `tern user add|passwd|del|list ...` (argv[1] is "user") on the
 * accounts file of the configuration (accounts_file, else
 * <state_dir>/accounts). Returns the exit status: 0 ok, 64 (EX_USAGE)
 * bad usage, 65 (EX_DATAERR) a bad address or password, an account that
 * exists (add) or does not (passwd, del), a domain that is not local, a
 * broken accounts file; 73 (EX_CANTCREAT) the file cannot be written,
 * 74 (EX_IOERR) it cannot be read, 78 (EX_CONFIG) a configuration that
 * does not load.
 */
int tern_user_main(int argc, char **argv, tern_conf_loader *load);

#endif

/* SPDX-License-Identifier: MIT */
/* `tern sendmail`: the sendmail(1) interface for local programs. */
#ifndef TERN_MAIN_SENDMAIL_H
#define TERN_MAIN_SENDMAIL_H

#include "main/tern_route.h"

/*
 * Runs `tern sendmail [options] [recipient...]`; argv[0] is "sendmail"
 * (or the name it was invoked as) and the options start at argv[1].
 * Returns a sysexits.h status: 0 when the server took the message for
 * every recipient.
 */
int tern_sendmail_main(int argc, char **argv, tern_conf_loader *load);

#endif

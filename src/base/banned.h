/* SPDX-License-Identifier: MIT */
/*
 * banned.h: calls that invite overflows or silent errors. Poisoned after
 * the headers that declare them, so any later use fails to compile. Use
 * buf_*, snprintf with a truncation check, or strtoull with an end check.
 */
#ifndef TERN_BANNED_H
#define TERN_BANNED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC poison strcpy strcat sprintf vsprintf strncpy strtok gets atoi

#endif

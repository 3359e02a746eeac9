/* SPDX-License-Identifier: MIT */
/* The build's version string (see shoal/buildinfo.h). */
#include "shoal/buildinfo.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "unknown"
#endif

const char shoal_version[] = SHOAL_VERSION;

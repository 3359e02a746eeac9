/* SPDX-License-Identifier: MIT */
/*
 * What this build is. The version string lives in one object that the
 * Makefile rebuilds whenever `git describe` changes, so the CLI, the log
 * and the Hello a peer sees always name the same version (it used to be
 * compiled into each object that used it, and an incremental build mixed
 * old and new strings in one binary).
 */
#ifndef SHOAL_BUILDINFO_H
#define SHOAL_BUILDINFO_H

extern const char shoal_version[];

#endif /* SHOAL_BUILDINFO_H */

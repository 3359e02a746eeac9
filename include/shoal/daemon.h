/* SPDX-License-Identifier: MIT */
/*
 * `shoal serve`: the daemon. Owns the libuv loop, the index, the folders,
 * the control API and config reloading; runs until SIGINT or SIGTERM.
 */
#ifndef SHOAL_DAEMON_H
#define SHOAL_DAEMON_H

#include "shoal/err.h"

#define DAEMON_LOCK_FILE	"lock"

/* Run the daemon for `home` in the foreground. Returns 0 after a clean
 * shutdown, or a negative code if it could not start. */
int	daemon_run(const char *home) SH_MUST_CHECK;

/*
 * Take the home's exclusive lock (flock on HOME/lock). Returns an fd to keep
 * open while the lock is needed, -EWOULDBLOCK if another process holds it,
 * or -errno.
 */
int	daemon_lock_home(const char *home);

#endif /* SHOAL_DAEMON_H */

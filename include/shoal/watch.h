/* SPDX-License-Identifier: MIT */
/*
 * Watcher: inotify through libuv (uv_fs_event), one watch per directory,
 * new directories picked up, events debounced (`delay_ms` of quiet, a tenth
 * of it for a batch of name events only, longer for a batch that follows
 * the previous one closely, at most 10 s after its first event) and
 * delivered as batches of folder-relative paths. Running
 * out of inotify watches is reported and the folder falls back to periodic
 * scans.
 */
#ifndef SHOAL_WATCH_H
#define SHOAL_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/err.h"
#include "shoal/ignore.h"

struct watch;

/* A debounced batch of changed folder-relative paths (borrowed). */
typedef void (*watch_cb)(struct watch *w, const char *const *paths,
	    size_t count, void *arg);

/*
 * Watch `root` recursively (skipping ignored directories and internal
 * names). `ignore` is borrowed and may be replaced with watch_set_ignore().
 * Returns 0, or -errno when the root cannot be watched at all; running out
 * of watches later is not an error (see watch_degraded).
 */
int	watch_open(uv_loop_t *loop, const char *root, const struct ignore *ig,
	    uint32_t delay_ms, watch_cb cb, void *arg, struct watch **out)
	    SH_MUST_CHECK;
/* Stop watching; memory is released once libuv has closed every handle. */
void	watch_close(struct watch *w);
void	watch_set_ignore(struct watch *w, const struct ignore *ig);
/* True once a watch could not be added (e.g. ENOSPC from inotify). */
bool	watch_degraded(const struct watch *w);
/*
 * Name the folder (`label`, copied) and its fallback rescan interval for the
 * one WARN line logged when watches run out. Call right after watch_open.
 */
void	watch_set_context(struct watch *w, const char *label,
	    uint32_t fallback_s);
size_t	watch_count(const struct watch *w);

#endif /* SHOAL_WATCH_H */

/* SPDX-License-Identifier: MIT */
/*
 * The scanner: walks a folder (or some paths in it), compares what it finds
 * with the local records in the index, hashes changed regular files on the
 * thread pool, and records new versions (vector bumped with this device's
 * short ID), tombstones for what disappeared, symlinks (never followed),
 * permissions and nanosecond mtimes. Unchanged entries (type, size, mtime,
 * inode, mode) are skipped without reading. Index writes are batched in
 * transactions (group commit) on the loop thread.
 */
#ifndef SHOAL_SCAN_H
#define SHOAL_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/err.h"
#include "shoal/ignore.h"
#include "shoal/record.h"

struct db;
struct scan;

struct scan_progress {
	uint64_t	entries_seen;	/* directory entries examined */
	uint64_t	files_hashed;	/* files whose hashing completed */
	uint64_t	bytes_hashed;	/* bytes hashed so far */
	uint64_t	bytes_to_hash;	/* bytes queued for hashing so far */
	uint64_t	changes;	/* records written (new, changed, deleted) */
};

/* Called once per recorded change, after it is committed. */
typedef void (*scan_change_cb)(const struct record *r, void *arg);
/* Called exactly once when the scan ends: 0, -ECANCELED, or an error. */
typedef void (*scan_done_cb)(struct scan *s, int status, void *arg);

struct scan_params {
	uv_loop_t		*loop;
	struct db		*db;		/* borrowed; loop thread only */
	int64_t			 folder_idx;
	const char		*folder_id;	/* borrowed; for logs */
	const char		*root;		/* borrowed; absolute */
	uint64_t		 short_id;	/* this device */
	bool			 receive_only;	/* flag local changes (receiveonly) */
	const struct ignore	*ignore;	/* borrowed; may be NULL */
	scan_change_cb		 change_cb;	/* may be NULL */
	scan_done_cb		 done_cb;
	void			*arg;
};

/*
 * Start scanning `paths` (folder-relative; NULL or count 0 = whole folder;
 * "" in the list also means the whole folder). Borrowed params must outlive
 * the scan. Returns 0 (done_cb will run), SH_EFOLDER when the root or its
 * .stfolder marker is missing (nothing recorded, done_cb will not run), or
 * -errno. Loop thread only.
 */
int	scan_start(const struct scan_params *p, const char *const *paths,
	    size_t path_count, struct scan **out) SH_MUST_CHECK;
/* Ask the scan to stop; done_cb runs later with -ECANCELED. */
void	scan_cancel(struct scan *s);
void	scan_get_progress(const struct scan *s, struct scan_progress *out);
/* Freed by the scanner after done_cb returns; do not touch it after. */

/*
 * Check that `root` is a directory holding the .stfolder marker. Returns 0,
 * or SH_EFOLDER with a one-line reason naming the folder in `msg` (e.g.
 * `folder "x": path "/p" is missing`). Blocking (one or two stat calls).
 */
int	scan_root_check(const char *folder_id, const char *root, char *msg,
	    size_t msg_size) SH_MUST_CHECK;

/*
 * Blocking one-shot full scan for the CLI (`shoal scan --once`) and the
 * benchmark: creates its own uv loop, runs a full scan of `root` to
 * completion and returns its status (0, SH_EFOLDER, SH_EDB, -errno). `out`,
 * if not NULL, receives the final progress counters. `ig` may be NULL.
 * `receive_only` as in scan_params: a receiveonly folder's local changes
 * are flagged as such, whoever scans them.
 */
int	scan_run_once(struct db *db, int64_t folder_idx, const char *folder_id,
	    const char *root, uint64_t short_id, const struct ignore *ig,
	    bool receive_only, struct scan_progress *out) SH_MUST_CHECK;

#endif /* SHOAL_SCAN_H */

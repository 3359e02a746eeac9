/* SPDX-License-Identifier: MIT */
/*
 * The puller (design.md §1): brings every name this device needs to the
 * global version. One pull is one pass over the need list of one folder:
 * directories first, then files and symlinks, then deletions. File
 * content is built in a temporary file from blocks found locally (the
 * index's hash -> (name, offset) lookup, and a partial temporary file left
 * by an earlier pass) and blocks requested from connected peers that hold
 * the exact global version; every block is checked against its SHA-256
 * before it is written. The result is given its mode and mtime, made
 * durable and renamed into place, and the rename made durable, in groups
 * of files that share the syncs. A file the user changed since the last
 * scan is never replaced. See docs/internals/pull.md for the invariants.
 */
#ifndef SHOAL_PULL_H
#define SHOAL_PULL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/config.h"
#include "shoal/err.h"
#include "shoal/record.h"

/* Names taken from the need list per batch. */
#define PULL_BATCH		1000
/* Files (and symlinks) worked on at the same time, those waiting to be
 * renamed included. Each holds two descriptors (its directory and its
 * temporary file), so one pull keeps at most 2 * PULL_MAX_FILES open. */
#define PULL_MAX_FILES		64
/* Bytes of block data in flight (requested, being copied or written) over
 * all files of one pull; each connection also caps its own requests. */
#define PULL_MAX_INFLIGHT	(6 * 1024 * 1024)
/* Devices considered as sources for one file. */
#define PULL_MAX_PEERS		16
/* Names one pass may look at; the pass ends early past this (the caller
 * starts another), which keeps the per-pass memory bounded. */
#define PULL_MAX_PASS_NAMES	65536
/* Temporary names (bep-brief §10.12). */
#define PULL_TEMP_PREFIX	".syncthing."
#define PULL_TEMP_SUFFIX	".tmp"
#define PULL_TEMP_MAX_BASE	145

struct conn;
struct db;
struct ignore;
struct pull;

/* Counters of one pass. Plain data. */
struct pull_progress {
	uint64_t	need_files;	/* names needed when the pass started */
	uint64_t	need_bytes;	/* their bytes */
	uint64_t	files_done;	/* names brought to the global version */
	uint64_t	bytes_done;	/* bytes of the files done */
	uint64_t	files_failed;	/* names skipped for now (retry later) */
	uint64_t	rescans;	/* names skipped because the disk changed */
	uint64_t	conflicts;	/* conflict copies made */
	uint64_t	versions_kept;	/* files moved to .stversions */
	uint64_t	bytes_network;	/* block bytes received from peers */
	uint64_t	bytes_local;	/* block bytes copied from local files */
	uint64_t	bytes_reused;	/* block bytes found in temporary files
					 * (of files put in place) */
	uint64_t	bytes_direct;	/* block bytes written with O_DIRECT */
	uint64_t	blocks_network;
	uint64_t	blocks_local;
	uint64_t	blocks_reused;
	/* Needed names left alone because an ignore pattern matches them,
	 * and the bytes of those that are not deletions: the index counts
	 * them as needed. */
	uint64_t	ignored_need;
	uint64_t	ignored_need_bytes;
	uint64_t	files_no_source; /* of files_failed: no connected device
					  * had the blocks */
	/* Files skipped because writing them would leave less free space
	 * than min_disk_free (counted in files_failed too), and for the
	 * largest of them: bytes still to write, bytes free, of those the
	 * bytes files under way may still write, bytes kept. */
	uint64_t	files_no_space;
	uint64_t	space_need;
	uint64_t	space_avail;
	uint64_t	space_promised;
	uint64_t	space_keep;
	bool		incomplete;	/* ended early (PULL_MAX_PASS_NAMES) */
};

typedef struct conn *(*pull_peer_cb)(int64_t device_idx, void *arg);
typedef void (*pull_change_cb)(const struct record *r, void *arg);
typedef void (*pull_rescan_cb)(const char *name, void *arg);
typedef void (*pull_done_cb)(struct pull *p, int status, void *arg);

struct pull_params {
	uv_loop_t		*loop;
	struct db		*db;		/* borrowed; loop thread only */
	int64_t			 folder_idx;
	const char		*folder_id;	/* copied; for requests and logs */
	const char		*root;		/* copied; absolute folder path */
	bool			 receive_only;	/* folder type receiveonly */
	bool			 ignore_perms;	/* never apply permission bits */
	enum config_versioning	 versioning;	/* keep replaced and deleted
						 * files (version.h) */
	int			 max_conflicts;	/* conflict copies kept per file:
						 * -1 all, 0 none (the loser is
						 * replaced), N the newest N */
	struct config_space	 min_disk_free;	/* free space a file may not
						 * eat into (SH_ESPACE) */
	uint64_t		 short_id;	/* this device */
	const struct ignore	*ignore;	/* borrowed; may be NULL; ignored
						 * names are never pulled */
	/* A connected, active connection for a db device index that shares
	 * the folder, or NULL. Called on the loop each time a request is
	 * about to be made; the result is not kept. May be NULL (local
	 * copies only). */
	pull_peer_cb		 peer_for;
	/* After each local record the pull committed (index kick). May be
	 * NULL. */
	pull_change_cb		 on_local_change;
	/* The disk differs from the index under `name` (or a conflict copy
	 * appeared there): the folder should rescan that path. May be NULL. */
	pull_rescan_cb		 on_rescan;
	/* Exactly once when the pass ends; see pull_start. */
	pull_done_cb		 on_done;
	void			*arg;
};

/* Lifecycle */
/*
 * Start one pass over the folder's need list (loop thread). Strings in
 * `params` are copied; db and ignore are borrowed and must outlive the
 * pull. Returns 0 (on_done will run exactly once, never from inside this
 * call) or -EINVAL for missing parameters (nothing runs).
 *
 * on_done status: 0 when the pass went through the need list (some names
 * may have been skipped: progress.files_failed and .rescans say how many,
 * and the caller should retry them later; progress.files_no_space says
 * how many of them wait for disk space; progress.incomplete asks for
 * another pass at once); -ECANCELED after pull_cancel; SH_EFOLDER when the
 * root or its .stfolder marker is missing (nothing was changed after
 * that); -ENOSPC, -EIO, -EDQUOT or -EROFS when the disk refused writes
 * (temporary files are kept, nothing was replaced); SH_EDB when the index
 * failed. The pull is freed after on_done returns.
 */
int	pull_start(const struct pull_params *params, struct pull **out)
	    SH_MUST_CHECK;
/* Stop starting work; on_done follows with -ECANCELED once the blocks in
 * flight are back. Files half written stay as temporary files. Loop
 * thread; not after on_done. */
void	pull_cancel(struct pull *p);

/* Queries */
void	pull_get_progress(const struct pull *p, struct pull_progress *out);
/*
 * The temporary name for the base name `base` (bep-brief §10.12):
 * ".syncthing.BASE.tmp", or ".syncthing.HEX(SHA-256(BASE)).tmp" when BASE
 * is longer than 145 bytes. Caller frees.
 */
char	*pull_temp_name(const char *base);

#endif /* SHOAL_PULL_H */

/* SPDX-License-Identifier: MIT */
/*
 * A folder at run time: its state machine (idle / scanning / syncing /
 * error), the marker check (.stfolder), the scanner, the watcher and the
 * periodic rescan timer. The daemon owns one per configured folder.
 */
#ifndef SHOAL_FOLDER_H
#define SHOAL_FOLDER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/config.h"
#include "shoal/err.h"
#include "shoal/pull.h"
#include "shoal/scan.h"

#define FOLDER_MARKER	".stfolder"

enum folder_state {
	FOLDER_STATE_IDLE = 0,
	FOLDER_STATE_SCANNING,
	FOLDER_STATE_SYNCING,
	FOLDER_STATE_ERROR
};

struct db;
struct folder;

/* Plain snapshot for status output. */
struct folder_status {
	enum folder_state	 state;
	const char		*error;		/* borrowed; NULL if none */
	uint64_t		 local_files;
	uint64_t		 local_bytes;
	uint64_t		 local_directories;
	struct scan_progress	 scan;		/* valid while scanning */
	bool			 scan_running;
	uint64_t		 scans_completed;
	bool			 watching;
	bool			 watch_degraded;
	int64_t			 local_sequence;
	uint64_t		 receive_only_changed; /* local changes kept local */
	bool			 pull_running;
	struct pull_progress	 pull;		/* totals since start, running pass
						 * included (need_* of that pass) */
	uint64_t		 pulls_completed;
};

/*
 * Called on every local change committed by a scan or a pull, and with
 * r == NULL when a scan or a pull pass that changed something has ended:
 * the batch is complete, so peers can be told now instead of after the
 * coalescing delay.
 */
typedef void (*folder_change_cb)(struct folder *f, const struct record *r,
	    void *arg);

/* Lifecycle */
/*
 * Start a folder: check root and marker, load .stignore, start the watcher,
 * schedule the initial scan. A missing root/marker is not a failure of
 * folder_open: the folder enters FOLDER_STATE_ERROR and retries on its
 * rescan timer. 0 or -errno/SH_EDB.
 */
int	folder_open(uv_loop_t *loop, struct db *db, const struct config_folder *cfg,
	    uint64_t short_id, folder_change_cb cb, void *arg,
	    struct folder **out) SH_MUST_CHECK;
/*
 * Stop everything; memory is released asynchronously. A running scan is
 * cancelled and commits what it has already hashed, so the db must stay
 * open until the loop has run the close to the end (no handles left).
 */
void	folder_close(struct folder *f);
/* Apply a changed config for the same folder ID (path, rescan, watch...). */
void	folder_reconfigure(struct folder *f, const struct config_folder *cfg);

/* A connected, active connection for a db device index, or NULL. */
typedef struct conn *(*folder_peer_cb)(int64_t device_idx, void *arg);

/* Operations */
/* Queue a full rescan (or of `path` when not NULL). */
void	folder_request_scan(struct folder *f, const char *path);
/* How the puller finds a connection to a device (set once after open). */
void	folder_set_peer_lookup(struct folder *f, folder_peer_cb cb, void *arg);
/* A peer's index of this folder changed, or a peer came: run a pull pass
 * when nothing else runs (never in send-only folders). */
void	folder_remote_changed(struct folder *f);

/*
 * Send-only folders: make our version of every item we do not hold at the
 * global version win (merge + bump), so peers take ours. *count = items.
 * 0, -EINVAL for another folder type, or SH_EDB.
 */
int	folder_override(struct folder *f, size_t *count) SH_MUST_CHECK;
/*
 * Receive-only folders: drop local changes so the global versions are
 * pulled back; items that exist only here are kept (*kept). 0, -EINVAL
 * for another folder type, or SH_EDB.
 */
int	folder_revert(struct folder *f, size_t *count, size_t *kept)
	    SH_MUST_CHECK;

/* Queries */
const char *folder_id(const struct folder *f);
int64_t	folder_idx(const struct folder *f);
const struct config_folder *folder_config(const struct folder *f);
/*
 * Needed names that this folder leaves alone because they are ignored
 * here: the index counts them as needed, but they never will be pulled.
 * True (with their count and the bytes of those that are not deletions)
 * while the last complete pull pass's count still describes the index;
 * false when it may not (then the need counts are the index's own).
 */
bool	folder_ignored_need(struct folder *f, uint64_t *items,
	    uint64_t *bytes);
void	folder_get_status(struct folder *f, struct folder_status *out);
const char *folder_state_name(enum folder_state s);

#endif /* SHOAL_FOLDER_H */

/* SPDX-License-Identifier: MIT */
/*
 * The global view of each folder (bep-brief §10.7): for every name, the
 * version that no other device's version dominates (concurrent versions
 * resolved by the conflict rule), which devices hold it, and whether this
 * device needs it. The index keeps this derived state up to date on every
 * record it stores (db_local_put, db_remote_put, db_files_drop), per name,
 * never by recomputing the whole folder; this module reads it and holds
 * the pure rules (global choice, need, conflict winner).
 */
#ifndef SHOAL_MODEL_H
#define SHOAL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"
#include "shoal/record.h"

struct db;

struct model_counts {
	uint64_t	global_files;	/* present files + symlinks in the global view */
	uint64_t	global_dirs;
	uint64_t	global_bytes;
	uint64_t	need_files;	/* names we need (any type, incl. deletions) */
	uint64_t	need_bytes;	/* bytes of needed files */
	uint64_t	need_deletes;	/* needed deletions */
};

/* One needed name, for iteration. Strings borrowed for the callback. */
struct model_need {
	const char	*name;
	enum record_type type;		/* of the global version */
	bool		 deleted;	/* the global version is a deletion */
	int64_t		 size;
	int64_t		 global_device;	/* db device index holding it */
};

typedef int (*model_need_cb)(const struct model_need *n, void *arg);

/* Pure rules */
/* True if `a` beats `b` for the global slot: valid beats invalid; then
 * Greater beats Lesser; for concurrent vectors WinsConflict (1.x): the
 * non-deleted one, then the later mtime, then ConcurrentGreater. */
bool	model_better(const struct record *a, const struct record *b);
/* True if `a` wins a conflict against the concurrent `b` (bep-brief §10.7). */
bool	model_wins_conflict(const struct record *a, const struct record *b);
/* Whether a device whose record is `have` (NULL if none) needs `global`. */
bool	model_needs(const struct record *have, const struct record *global);

/* Queries (loop thread) */
/* The global record of `name` (full, with blocks) and the device holding it
 * (DB_LOCAL_DEVICE when we hold it). 0, SH_ENOTFOUND or SH_EDB. */
int	model_global(struct db *db, int64_t folder, const char *name,
	    struct record **out, int64_t *device) SH_MUST_CHECK;
/* Remote devices (db indexes) whose valid record of `name` has exactly
 * version `v`; at most `max`. 0 or SH_EDB. */
int	model_availability(struct db *db, int64_t folder, const char *name,
	    const struct record_vector *v, int64_t *devices, size_t max,
	    size_t *count) SH_MUST_CHECK;
/* Needed names: directories shallow first, then files and symlinks, then
 * deletions deepest first. The callback may not write to the db. */
int	model_need_foreach(struct db *db, int64_t folder, model_need_cb cb,
	    void *arg) SH_MUST_CHECK;
int	model_counts(struct db *db, int64_t folder, struct model_counts *out)
	    SH_MUST_CHECK;

#endif /* SHOAL_MODEL_H */

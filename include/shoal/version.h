/* SPDX-License-Identifier: MIT */
/*
 * File versioning (design.md §3, §5): before the puller replaces or
 * deletes a local regular file because of a remote change, a folder with
 * versioning keeps the old file under FOLDER/.stversions, at the same
 * relative path:
 *
 *   trashcan   .stversions/DIR/NAME            (the last one kept wins)
 *   simple     .stversions/DIR/STEM~YYYYMMDD-HHMMSS.EXT, newest
 *              VERSION_SIMPLE_KEEP of each file kept
 *   staggered  the same names, thinned with age (version_expire)
 *
 * The tag is Syncthing's (local time, Go's filepath.Ext rule for EXT), so
 * either program lists the other's versions. `shoal versions` lists them
 * and `shoal restore` puts one back. See docs/internals/pull.md.
 */
#ifndef SHOAL_VERSION_H
#define SHOAL_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "shoal/config.h"
#include "shoal/err.h"

#define VERSION_DIR		".stversions"
/* simple: versions kept per file (Syncthing's default "keep"). */
#define VERSION_SIMPLE_KEEP	5
/* staggered: versions older than this are removed (Syncthing's default). */
#define VERSION_MAX_AGE_S	(365 * 86400)
/* Same-second collisions: "-1" ... "-N" after the tag. */
#define VERSION_MAX_SUFFIX	99

/* Names (pure; any thread) */
/* The tagged name of `name` (folder-relative) kept at `when`, with
 * "-suffix" after the tag when suffix > 0. Caller frees. */
char	*version_tagged_name(const char *name, time_t when,
	    unsigned int suffix);
/* If the base name `base` carries a version tag, its original base name
 * (caller frees) and the tag's time; false otherwise. */
bool	version_parse(const char *base, char **orig, time_t *when);
/*
 * staggered: of `n` versions of one file at `times` (newest first), mark
 * in `remove` those to drop at `now`: one per 30 s in the first hour, one
 * per hour in the first day, one per day for 30 days, one per week up to
 * VERSION_MAX_AGE_S, none older. The newest is kept unless that old.
 */
void	version_expire(const time_t *times, size_t n, time_t now,
	    bool *remove);

/* Operations (blocking; thread pool or CLI) */
/*
 * Keep the regular file `name` (folder-relative; its last component lives
 * in the directory open as `dirfd`) under root/.stversions as `type`
 * says (older versions are thinned later: version_clean). Directories on
 * the way in
 * .stversions are made as needed, never following a symlink. 0 with
 * *stored set (path under .stversions; caller frees), or -errno / SH_EEXIST
 * with the file left where it was.
 */
int	version_keep_at(const char *root, int dirfd, const char *name,
	    enum config_versioning type, time_t now, char **stored)
	    SH_MUST_CHECK;
/*
 * Thin the versions of every file under root/.stversions as `type` says
 * (simple: the newest VERSION_SIMPLE_KEEP of each; staggered: by age,
 * version_expire; others: nothing) and remove directories left empty
 * there. Run after a pull pass that kept versions and after full scans.
 * Returns how many versions were removed, or -errno when the store cannot
 * be read (-ENOENT: there is none).
 */
int	version_clean(const char *root, enum config_versioning type,
	    time_t now);
/* Undo version_keep_at: move root/.stversions/`stored` back to `name`
 * (whose last component lives in `dirfd`), never replacing anything. */
int	version_undo_at(const char *root, int dirfd, const char *name,
	    const char *stored) SH_MUST_CHECK;

/* One kept version, for listing. Strings borrowed for the callback. */
struct version_entry {
	const char	*name;		/* folder-relative original name */
	const char	*stored;	/* path under .stversions */
	time_t		 when;		/* tag, else when it was kept (ctime) */
	int64_t		 size;
};
typedef int (*version_cb)(const struct version_entry *e, void *arg);
/*
 * Call `cb` for every version under root/.stversions whose original name
 * is `name` or lies below it ("" or NULL: all), in no particular order.
 * A non-zero return from cb stops the walk and is returned. 0, or -errno
 * when .stversions cannot be read (-ENOENT: none kept yet).
 */
int	version_list(const char *root, const char *name, version_cb cb,
	    void *arg);
/*
 * Put root/.stversions/`stored` back as `name`: the regular file now at
 * `name`, if any, is kept first as a tagged version (never replacing the
 * one being restored, even in a trash can), with *kept set to where (or
 * NULL; caller frees). Missing directories are made. -EISDIR when a
 * directory or symlink holds `name`.
 */
int	version_restore(const char *root, const char *name,
	    const char *stored, time_t now, char **kept) SH_MUST_CHECK;

#endif /* SHOAL_VERSION_H */

/* SPDX-License-Identifier: MIT */
/*
 * Conflict copies (bep-brief §10.7, design.md §6): when the puller must put
 * a new version in place of a local regular file whose version is
 * concurrent with it, the local file is first renamed to
 * NAME.sync-conflict-YYYYMMDD-HHMMSS-SHORTID.EXT. The copy is an ordinary
 * new file afterwards: the scanner picks it up and it syncs everywhere.
 * See docs/internals/pull.md.
 */
#ifndef SHOAL_CONFLICT_H
#define SHOAL_CONFLICT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "shoal/err.h"

/* The marker every conflict copy's base name contains. */
#define CONFLICT_MARKER		".sync-conflict-"
/* How many "-N" suffixes conflict_move tries when the name is taken. */
#define CONFLICT_MAX_SUFFIX	99

/* Names (pure; any thread) */
/*
 * The conflict-copy name for the folder-relative `name` (bep-brief §10.7):
 * the directory part is kept, the extension is Go's filepath.Ext of the
 * base name (from its last '.', so ".bashrc" is all extension and
 * "a.tar.gz" has ".gz"), the time is `now` in the local time zone
 * (localtime_r), and SHORTID is the 7-character text form of
 * `winner_modified_by`, the modified_by of the incoming (winning) version,
 * empty when it is 0. Never NULL; caller frees with free().
 */
char	*conflict_name(const char *name, time_t now,
	    uint64_t winner_modified_by);
/* Same with "-<suffix>" after SHORTID when suffix > 0 (name collisions). */
char	*conflict_name_suffix(const char *name, time_t now,
	    uint64_t winner_modified_by, unsigned int suffix);
/* True if the base name of `name` contains ".sync-conflict-": such a file
 * is never copied again, it is simply replaced when it loses. */
bool	conflict_is_copy(const char *name);

/* Operations (blocking; thread pool) */
/*
 * Rename the entry `name` (folder-relative; its last component lives in
 * the directory open as `dirfd`) to its conflict name, never replacing an
 * existing entry: when the name is taken, "-1", "-2" ... up to
 * CONFLICT_MAX_SUFFIX are tried after SHORTID. Then fsync the directory.
 * On success *out_name is the new folder-relative name (caller frees).
 * Returns 0, SH_EEXIST when every candidate is taken, or -errno (the entry
 * keeps its name then). Symlinks in the name are never followed: only the
 * last component is touched, relative to dirfd.
 */
int	conflict_move_at(int dirfd, const char *name, time_t now,
	    uint64_t winner_modified_by, char **out_name) SH_MUST_CHECK;
/*
 * The same for `name` under the folder `root`: the directories between
 * root and the last component are opened one by one with O_NOFOLLOW, so a
 * symlinked directory on the way fails with -ELOOP or -ENOTDIR.
 */
int	conflict_move(const char *root, const char *name, time_t now,
	    uint64_t winner_modified_by, char **out_name) SH_MUST_CHECK;
/*
 * maxConflicts (bep-brief §10.7): the conflict copies of `name` in the
 * directory open as `dirfd` -- regular files whose base name is the stem
 * of name's base, CONFLICT_MARKER, 8 characters, '-', 6 characters,
 * anything, and name's extension -- beyond the newest `keep` are removed.
 * `newest` (folder-relative, or NULL) is the copy just made, newest of
 * all; the others are ordered by their stamp, then their "-N" suffix.
 * keep < 0 keeps all. The folder-relative names removed are appended to *removed
 * (*nremoved of them; caller frees each and the array) so that they can
 * be rescanned. A copy that cannot be removed is logged and kept.
 * Returns 0 or -errno when the directory cannot be read.
 */
int	conflict_prune_at(int dirfd, const char *name, const char *newest,
	    int keep, char ***removed, size_t *nremoved) SH_MUST_CHECK;

#endif /* SHOAL_CONFLICT_H */

/* SPDX-License-Identifier: MIT */
/*
 * Conflict copies (bep-brief §10.7, design.md §6). The puller calls
 * conflict_move_at() on the thread pool just before it renames a new
 * version over a local regular file whose version is concurrent with the
 * incoming one; what the user had is then kept under the conflict name and
 * the next scan indexes it as a new file, which syncs like any other.
 *
 * NOTES ON THE DESIGN OF CONFLICT COPIES
 *
 *   (1) A conflict copy never replaces anything: the rename is done with
 *       renameat2(RENAME_NOREPLACE), and a name that is taken (two
 *       conflicts of one file in the same second with the same winner)
 *       gets a "-N" suffix after the short ID instead. Syncthing overwrites
 *       in that case; we would rather have one more copy than lose one.
 *   (2) The name is Syncthing's, byte for byte, so two nodes that resolve
 *       the same conflict produce trees that compare equal (bep-brief
 *       §17.22): Go's filepath.Ext rule for the extension, the local time
 *       zone, and the short ID of the winning version's modified_by.
 *   (3) Nothing escapes the folder: only the last component is renamed,
 *       relative to a directory descriptor that was opened without
 *       following symlinks.
 *   (4) The directory is fsynced after the rename, so after a crash the
 *       user's data is under one of the two names, never under none.
 *
 * maxConflicts (deleting old copies beyond the newest N) is not done yet:
 * TODO(#4).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shoal/conflict.h"
#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/util.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE	(1 << 0)
#endif

/* Names */

char *
conflict_name_suffix(const char *name, time_t now,
    uint64_t winner_modified_by, unsigned int suffix)
{
	const char	*base, *ext;
	char		 id[IDENTITY_SHORT_STR_SIZE];
	char		 stamp[32], num[16];
	struct tm	 tm;
	size_t		 stem_len;

	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	/* Go's filepath.Ext: from the last '.' of the last element, even
	 * when that '.' is its first byte (".bashrc" is all extension). */
	ext = strrchr(base, '.');
	if (ext == NULL)
		ext = base + strlen(base);
	stem_len = (size_t)(ext - name);

	if (localtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "00000000-000000");
	identity_short_format(winner_modified_by, id);
	num[0] = '\0';
	if (suffix > 0)
		snprintf(num, sizeof(num), "-%u", suffix);
	return xasprintf("%.*s%s%s-%s%s%s", (int)stem_len, name,
	    CONFLICT_MARKER, stamp, id, num, ext);
}

char *
conflict_name(const char *name, time_t now, uint64_t winner_modified_by)
{
	return conflict_name_suffix(name, now, winner_modified_by, 0);
}

bool
conflict_is_copy(const char *name)
{
	const char	*base;

	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	return strstr(base, CONFLICT_MARKER) != NULL;
}

/* Operations */

/* Rename without replacing (util_renameat handles file systems that
 * lack RENAME_NOREPLACE, and lets tests inject faults). */
static int
rename_noreplace(int dirfd, const char *from, const char *to)
{
	return util_renameat(dirfd, from, to, true);
}

int
conflict_move_at(int dirfd, const char *name, time_t now,
    uint64_t winner_modified_by, char **out_name)
{
	const char	*base, *nbase;
	char		*cname = NULL;
	unsigned int	 suffix;
	int		 rc;

	*out_name = NULL;
	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	rc = -EEXIST;
	for (suffix = 0; suffix <= CONFLICT_MAX_SUFFIX; suffix++) {
		free(cname);
		cname = conflict_name_suffix(name, now, winner_modified_by,
		    suffix);
		nbase = strrchr(cname, '/');
		nbase = nbase != NULL ? nbase + 1 : cname;
		if (strlen(nbase) > NAME_MAX) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		rc = rename_noreplace(dirfd, base, nbase);
		if (rc != -EEXIST)
			break;
	}
	if (rc == -EEXIST) {
		rc = SH_EEXIST;
		goto out;
	}
	if (rc != 0)
		goto out;
	/* (4): the new name must survive a crash as surely as the file. */
	rc = util_fsync(dirfd);
	if (rc != 0) {
		LOG_WARN("conflict", "fsync of directory after conflict "
		    "copy failed: %s", sh_strerror(rc));
		rc = 0;
	}
	*out_name = cname;
	cname = NULL;
	rc = 0;
out:
	free(cname);
	return rc;
}


int
conflict_move(const char *root, const char *name, time_t now,
    uint64_t winner_modified_by, char **out_name)
{
	int	dirfd = -1, rc;

	*out_name = NULL;
	rc = util_open_parent(root, name);
	if (rc < 0)
		goto out;
	dirfd = rc;
	rc = conflict_move_at(dirfd, name, now, winner_modified_by, out_name);
out:
	if (dirfd >= 0)
		close(dirfd);
	return rc;
}

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
 *   (5) maxConflicts: after a copy is made, older copies of the same
 *       file beyond the newest N are removed (conflict_prune_at), as
 *       Syncthing does, so that a file in a long tug of war does not fill
 *       the folder. Only regular files matching the copy pattern of that
 *       very name are touched; the removals are rescanned, so they sync
 *       as deletions.
 */
#include <sys/stat.h>

#include <dirent.h>
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
	return util_wd_renameat(dirfd, from, to, true);
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

/* Is `base` a conflict copy of a file whose base name is stem + ext? */
static bool
copy_of(const char *base, const char *stem, size_t stem_len,
    const char *ext)
{
	size_t	mlen = strlen(CONFLICT_MARKER), elen = strlen(ext);
	size_t	blen = strlen(base);
	size_t	i;

	/* stem .sync-conflict- ????????-?????? * ext */
	if (blen < stem_len + mlen + 15 + elen ||
	    strncmp(base, stem, stem_len) != 0 ||
	    strncmp(base + stem_len, CONFLICT_MARKER, mlen) != 0 ||
	    strcmp(base + blen - elen, ext) != 0)
		return false;
	i = stem_len + mlen;
	return base[i + 8] == '-';
}

/*
 * Sort key of a copy: its stamp, then its "-N" suffix (a copy made in the
 * same second as an existing one is newer, though "-1.txt" sorts before
 * ".txt"), then the name; the copy just made (`newest`) above all, since
 * a suffix freed by an earlier removal can be taken again. KEY_PREFIX
 * bytes, then the base name. Caller frees.
 */
#define KEY_PREFIX	20

static char *
copy_key(const char *base, size_t stamp_off, size_t elen, bool newest)
{
	const char	*tail = base + stamp_off + 15;
	const char	*end = base + strlen(base) - elen, *dash;
	unsigned long	 suffix = 0;

	/* tail is "-SHORTID" or "-SHORTID-N" (SHORTID may be empty). */
	dash = end > tail ? memrchr(tail + 1, '-', (size_t)(end - tail - 1)) :
	    NULL;
	if (dash != NULL && dash + 1 < end &&
	    strspn(dash + 1, "0123456789") == (size_t)(end - dash - 1) &&
	    end - dash - 1 <= 4)
		suffix = strtoul(dash + 1, NULL, 10);
	if (newest)
		return xasprintf("%.*s%s", KEY_PREFIX, "~~~~~~~~~~~~~~~~~~~~",
		    base);
	return xasprintf("%.15s%05lu%s", base + stamp_off, suffix, base);
}

static int
cmp_keys_desc(const void *a, const void *b)
{
	return -strcmp(*(char *const *)a, *(char *const *)b);
}

int
conflict_prune_at(int dirfd, const char *name, const char *newest,
    int keep, char ***removed, size_t *nremoved)
{
	const char	*base, *ext, *nbase = NULL;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		**names = NULL, *stem = NULL, *rel, e[256];
	size_t		 stamp_off, elen;
	size_t		 n = 0, i, stem_len, dir_len;
	int		 fd, rc;

	if (keep < 0)
		return 0;
	base = strrchr(name, '/');
	dir_len = base != NULL ? (size_t)(base - name) + 1 : 0;
	base = base != NULL ? base + 1 : name;
	ext = strrchr(base, '.');
	if (ext == NULL)
		ext = base + strlen(base);
	stem_len = (size_t)(ext - base);
	stem = xstrndup(base, stem_len);
	elen = strlen(ext);
	stamp_off = stem_len + strlen(CONFLICT_MARKER);
	if (newest != NULL) {
		nbase = strrchr(newest, '/');
		nbase = nbase != NULL ? nbase + 1 : newest;
	}
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	d = util_fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (!copy_of(de->d_name, stem, stem_len, ext))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = copy_key(de->d_name, stamp_off, elen,
		    nbase != NULL && strcmp(de->d_name, nbase) == 0);
	}
	closedir(d);
	if (n > 1)	/* names is NULL when there are none */
		qsort(names, n, sizeof(*names), cmp_keys_desc);
	for (i = (size_t)keep; i < n; i++) {
		rel = xasprintf("%.*s%s", (int)dir_len, name,
		    names[i] + KEY_PREFIX);
		rc = util_wd_unlinkat(dirfd, names[i] + KEY_PREFIX, 0);
		if (rc != 0) {
			LOG_WARN("conflict", "cannot remove old conflict copy "
			    "\"%s\": %s", log_escape(rel, e, sizeof(e)),
			    sh_strerror(rc));
			free(rel);
			continue;
		}
		LOG_INFO("conflict", "removed old conflict copy \"%s\" (more "
		    "than %d of that file)", log_escape(rel, e, sizeof(e)),
		    keep);
		*removed = xreallocarray(*removed, *nremoved + 1,
		    sizeof(**removed));
		(*removed)[(*nremoved)++] = rel;
	}
	rc = 0;
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(stem);
	return rc;
}

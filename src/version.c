/* SPDX-License-Identifier: MIT */
/*
 * File versioning (see version.h and docs/internals/pull.md).
 *
 * NOTES ON THE DESIGN OF VERSIONING
 *
 *   (1) A version is the user's file itself, moved (rename(2), same file
 *       system: .stversions is inside the folder), never a copy: keeping
 *       costs no I/O, and after a crash the file is under its name or in
 *       .stversions, never under neither (a rename is one journalled
 *       operation). It is made durable with the puller's group sync
 *       (a directory fsync or syncfs commits the file system's journal up
 *       to it), not one fsync per file: 10,000 replaced files would pay a
 *       device flush each.
 *   (2) Nothing escapes the folder: every directory on the way, in the
 *       folder and in .stversions, is opened one component at a time with
 *       O_NOFOLLOW, and only last components are renamed.
 *   (3) A tagged version never replaces another: a name taken in the same
 *       second gets "-1", "-2" ... after the tag. Trash-can versions keep
 *       one per name, as Syncthing's do.
 *   (4) Thinning only ever removes tagged versions, each group of one
 *       name in one store directory judged on its own. It runs after a
 *       pull pass that kept versions and after full scans (version_clean),
 *       not per kept file: a store directory of 10,000 names read once per
 *       kept version made bulk replacements quadratic (10,000 files in one
 *       directory: 12 s of readdir).
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoal/log.h"
#include "shoal/util.h"
#include "shoal/version.h"

#define TAG_LEN		16	/* "~YYYYMMDD-HHMMSS" */
#define LIST_DEPTH	64

/* Names */

/* Go's filepath.Ext of the last element: from its last '.', even when
 * that '.' is its first byte (".bashrc" is all extension). */
static const char *
ext_of(const char *base)
{
	const char	*e = strrchr(base, '.');

	return e != NULL ? e : base + strlen(base);
}

char *
version_tagged_name(const char *name, time_t when, unsigned int suffix)
{
	const char	*base, *ext;
	char		 stamp[32], num[16];
	struct tm	 tm;

	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	ext = ext_of(base);
	if (localtime_r(&when, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "00000000-000000");
	num[0] = '\0';
	if (suffix > 0)
		snprintf(num, sizeof(num), "-%u", suffix);
	return xasprintf("%.*s~%s%s%s", (int)(ext - name), name, stamp, num,
	    ext);
}

static bool
digits(const char *s, size_t n)
{
	return strspn(s, "0123456789") >= n;
}

bool
version_parse(const char *base, char **orig, time_t *when)
{
	const char	*t, *after, *p;
	struct tm	 tm;

	for (t = strrchr(base, '~'); t != NULL;
	    t = t > base ? memrchr(base, '~', (size_t)(t - base)) : NULL) {
		if (strlen(t) < TAG_LEN || !digits(t + 1, 8) || t[9] != '-' ||
		    !digits(t + 10, 6))
			continue;
		after = t + TAG_LEN;
		p = after;
		if (*p == '-' && p[1] >= '0' && p[1] <= '9') {
			p++;
			while (*p >= '0' && *p <= '9')
				p++;
		}
		/* What follows the tag (and suffix) is the extension. */
		if (*p != '\0' && *p != '.')
			continue;
		if (*p == '.' && strchr(p + 1, '.') != NULL)
			continue;
		if (t == base && *p == '\0')
			continue;
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = (t[1] - '0') * 1000 + (t[2] - '0') * 100 +
		    (t[3] - '0') * 10 + (t[4] - '0') - 1900;
		tm.tm_mon = (t[5] - '0') * 10 + (t[6] - '0') - 1;
		tm.tm_mday = (t[7] - '0') * 10 + (t[8] - '0');
		tm.tm_hour = (t[10] - '0') * 10 + (t[11] - '0');
		tm.tm_min = (t[12] - '0') * 10 + (t[13] - '0');
		tm.tm_sec = (t[14] - '0') * 10 + (t[15] - '0');
		tm.tm_isdst = -1;
		if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
		    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
			continue;
		*when = mktime(&tm);
		*orig = xasprintf("%.*s%s", (int)(t - base), base, p);
		return true;
	}
	return false;
}

void
version_expire(const time_t *times, size_t n, time_t now, bool *remove)
{
	static const struct { time_t step, end; } iv[] = {
		{ 30, 3600 },
		{ 3600, 86400 },
		{ 86400, 30 * 86400 },
		{ 7 * 86400, VERSION_MAX_AGE_S },
	};
	time_t	age, prev = 0;
	size_t	i, k;

	for (i = 0; i < n; i++) {
		remove[i] = false;
		age = now - times[i];
		if (age > VERSION_MAX_AGE_S) {
			remove[i] = true;
			continue;
		}
		if (i == 0) {
			prev = age;
			continue;
		}
		for (k = 0; k < sizeof(iv) / sizeof(iv[0]); k++) {
			if (age > iv[k].end)
				continue;
			if (age - prev < iv[k].step)
				remove[i] = true;
			else
				prev = age;
			break;
		}
	}
}

/* Directories */

/* The directories of `rel` below `start`, made when `create` (2). */
static int
open_below(int start, const char *rel, bool create)
{
	return util_open_dirs_at(start, rel, strlen(rel), create);
}

/* The store directory for the directory part `dir` of a name. */
static int
store_open(const char *root, const char *dir, bool create)
{
	char	*rel;
	int	 rfd, fd;

	rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return -errno;
	rel = *dir != '\0' ? xasprintf("%s/%s", VERSION_DIR, dir) :
	    xstrdup(VERSION_DIR);
	fd = open_below(rfd, rel, create);
	free(rel);
	close(rfd);
	return fd;
}

/* Split `name` into its directory part (caller frees) and base name. */
static char *
split(const char *name, const char **base)
{
	const char	*slash = strrchr(name, '/');

	*base = slash != NULL ? slash + 1 : name;
	return slash != NULL ? xstrndup(name, (size_t)(slash - name)) :
	    xstrdup("");
}

/* Thinning (4) */

struct tagged {
	char	*orig;
	char	*name;
	time_t	 when;
};

/* By original name, then newest first ("-2" after a tag is newer than
 * "-1", which is newer than none). */
static int
tagged_cmp(const void *a, const void *b)
{
	const struct tagged	*x = a, *y = b;
	int			 c = strcmp(x->orig, y->orig);

	if (c != 0)
		return c;
	if (x->when != y->when)
		return x->when > y->when ? -1 : 1;
	if (strlen(x->name) != strlen(y->name))
		return strlen(x->name) > strlen(y->name) ? -1 : 1;
	return -strcmp(x->name, y->name);
}

static void
tagged_free(struct tagged *t, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(t[i].orig);
		free(t[i].name);
	}
	free(t);
}

/*
 * The tagged versions in the store directory `dfd`, sorted by tagged_cmp,
 * and the names of its subdirectories. Caller frees both.
 */
static size_t
collect(int dfd, struct tagged **out, char ***subs, size_t *nsubs)
{
	struct tagged	*t = NULL;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		*orig;
	time_t		 when;
	size_t		 n = 0;
	int		 fd;

	*out = NULL;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? util_fdopendir(fd) : NULL;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* d_type spares a stat per name where the file system has it. */
		if (de->d_type == DT_REG)
			st.st_mode = S_IFREG;
		else if (de->d_type == DT_DIR)
			st.st_mode = S_IFDIR;
		else if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			*subs = xreallocarray(*subs, *nsubs + 1, sizeof(**subs));
			(*subs)[(*nsubs)++] = xstrdup(de->d_name);
		} else if (S_ISREG(st.st_mode) &&
		    version_parse(de->d_name, &orig, &when)) {
			t = xreallocarray(t, n + 1, sizeof(*t));
			t[n].orig = orig;
			t[n].name = xstrdup(de->d_name);
			t[n].when = when;
			n++;
		}
	}
	if (d != NULL)
		closedir(d);
	if (n > 1)
		qsort(t, n, sizeof(*t), tagged_cmp);
	*out = t;
	return n;
}

/* Remove, of each name's versions t[0..n), those `type` does not keep at
 * `now`. Returns how many went. */
static int
thin_groups(int dfd, const struct tagged *t, size_t n,
    enum config_versioning type, time_t now)
{
	time_t	*times = xcalloc(n + 1, sizeof(*times));
	bool	*rm = xcalloc(n + 1, sizeof(*rm));
	size_t	 i, j, k;
	int	 removed = 0;

	for (i = 0; i < n; i = j) {
		for (j = i; j < n && strcmp(t[j].orig, t[i].orig) == 0; j++)
			times[j - i] = t[j].when;
		if (type == CONFIG_VERSIONING_STAGGERED)
			version_expire(times, j - i, now, rm + i);
		else
			for (k = i + VERSION_SIMPLE_KEEP; k < j; k++)
				rm[k] = true;
		for (k = i; k < j; k++) {
			if (!rm[k])
				continue;
			if (unlinkat(dfd, t[k].name, 0) == 0)
				removed++;
			else
				LOG_WARN("version", "cannot remove old version "
				    "\"%s\": %s", t[k].name, strerror(errno));
		}
	}
	free(times);
	free(rm);
	return removed;
}

/* Cleaning */

static int
clean_dir(int dfd, enum config_versioning type, time_t now, int depth)
{
	struct tagged	*t;
	char		**subs = NULL;
	size_t		 n, ns = 0, i;
	int		 sfd, removed;

	if (depth > LIST_DEPTH)
		return 0;
	n = collect(dfd, &t, &subs, &ns);
	removed = thin_groups(dfd, t, n, type, now);
	tagged_free(t, n);
	for (i = 0; i < ns; i++) {
		sfd = openat(dfd, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (sfd >= 0) {
			removed += clean_dir(sfd, type, now, depth + 1);
			close(sfd);
			/* Empty now (or before): it goes; else ENOTEMPTY. */
			(void)unlinkat(dfd, subs[i], AT_REMOVEDIR);
		}
		free(subs[i]);
	}
	free(subs);
	return removed;
}

int
version_clean(const char *root, enum config_versioning type, time_t now)
{
	int	vfd, removed;

	if (type != CONFIG_VERSIONING_SIMPLE &&
	    type != CONFIG_VERSIONING_STAGGERED)
		return 0;
	vfd = store_open(root, "", false);
	if (vfd < 0)
		return vfd;
	removed = clean_dir(vfd, type, now, 0);
	close(vfd);
	return removed;
}

/* Keeping */

/* Move `base` from `fromfd` into the store directory `vfd` under a tagged
 * name, never replacing anything (3). *vname is the caller's to free. */
static int
move_tagged(int fromfd, const char *base, int vfd, time_t now, char **vname)
{
	unsigned int	suffix;
	int		rc = -EEXIST;

	for (suffix = 0; suffix <= VERSION_MAX_SUFFIX; suffix++) {
		free(*vname);
		*vname = version_tagged_name(base, now, suffix);
		if (strlen(*vname) > NAME_MAX)
			return -ENAMETOOLONG;
		rc = util_wd_moveat(fromfd, base, vfd, *vname, true);
		if (rc != -EEXIST)
			return rc;
	}
	return SH_EEXIST;
}

/*
 * A trash-can version is kept under the plain name, so a file and a
 * directory of one path at different times can meet in the store: a kept
 * file "a" where "a/" must now hold "a/b". Such a file is renamed to a
 * tagged name (still a version of "a", of the time it was kept: its
 * ctime, as version_list reports it), so the directory can be made.
 * Returns 0 when something was moved.
 */
static int
unblock_store(const char *root, const char *dir)
{
	const char	*p = dir, *slash;
	struct stat	 st;
	char		*comp, *vname = NULL;
	int		 fd, nfd, rc = -ENOENT;

	fd = store_open(root, "", true);
	while (fd >= 0 && *p != '\0') {
		slash = strchr(p, '/');
		comp = slash != NULL ? xstrndup(p, (size_t)(slash - p)) :
		    xstrdup(p);
		if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) &&
		    move_tagged(fd, comp, fd, st.st_ctim.tv_sec, &vname) == 0)
			rc = 0;
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		free(comp);
		close(fd);
		fd = nfd;
		p = slash != NULL ? slash + 1 : p + strlen(p);
	}
	if (fd >= 0)
		close(fd);
	free(vname);
	return rc;
}

static int
keep_at(const char *root, int dirfd, const char *name, bool tagged,
    time_t now, char **stored)
{
	const char	*base;
	char		*dir, *vname = NULL;
	int		 vfd, rc;

	*stored = NULL;
	dir = split(name, &base);
	vfd = store_open(root, dir, true);
	if ((vfd == -ENOTDIR || vfd == -EEXIST) &&
	    unblock_store(root, dir) == 0)
		vfd = store_open(root, dir, true);
	if (vfd < 0) {
		rc = vfd;
		goto out;
	}
	if (!tagged) {
		vname = xstrdup(base);
		rc = util_wd_moveat(dirfd, base, vfd, vname, false);
		/* A directory of that name in the store: a tagged name. */
		if (rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST)
			rc = move_tagged(dirfd, base, vfd, now, &vname);
	} else
		rc = move_tagged(dirfd, base, vfd, now, &vname);
	if (rc != 0)
		goto out;
	*stored = *dir != '\0' ? xasprintf("%s/%s", dir, vname) :
	    xstrdup(vname);
	rc = 0;
out:
	if (vfd >= 0)
		close(vfd);
	free(vname);
	free(dir);
	return rc;
}

int
version_keep_at(const char *root, int dirfd, const char *name,
    enum config_versioning type, time_t now, char **stored)
{
	if (type == CONFIG_VERSIONING_NONE) {
		*stored = NULL;
		return -EINVAL;
	}
	return keep_at(root, dirfd, name, type != CONFIG_VERSIONING_TRASHCAN,
	    now, stored);
}

int
version_undo_at(const char *root, int dirfd, const char *name,
    const char *stored)
{
	const char	*base, *sbase;
	char		*dir, *sdir;
	int		 vfd, rc;

	dir = split(name, &base);
	free(dir);
	sdir = split(stored, &sbase);
	vfd = store_open(root, sdir, false);
	free(sdir);
	if (vfd < 0)
		return vfd;
	rc = util_wd_moveat(vfd, sbase, dirfd, base, true);
	close(vfd);
	return rc;
}

/* Listing */

struct walk {
	const char	*only;		/* NULL or "": all */
	version_cb	 cb;
	void		*arg;
};

static bool
wanted(const char *only, const char *name)
{
	size_t	n;

	if (only == NULL || *only == '\0')
		return true;
	n = strlen(only);
	return strncmp(name, only, n) == 0 &&
	    (name[n] == '\0' || name[n] == '/');
}

static int
walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
	struct version_entry	 e;
	struct dirent		*de;
	struct stat		 st;
	DIR			*d;
	char			*path, *orig, *name;
	time_t			 when;
	int			 fd, rc = 0;

	if (depth > LIST_DEPTH)
		return 0;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = util_fdopendir(fd);
	if (d == NULL)
		return -errno;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		path = *rel != '\0' ? xasprintf("%s/%s", rel, de->d_name) :
		    xstrdup(de->d_name);
		if (S_ISDIR(st.st_mode)) {
			fd = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0) {
				rc = walk_dir(w, fd, path, depth + 1);
				close(fd);
			}
		} else if (S_ISREG(st.st_mode)) {
			if (!version_parse(de->d_name, &orig, &when)) {
				orig = xstrdup(de->d_name);
				when = st.st_ctim.tv_sec;
			}
			name = *rel != '\0' ? xasprintf("%s/%s", rel, orig) :
			    xstrdup(orig);
			if (wanted(w->only, name)) {
				e.name = name;
				e.stored = path;
				e.when = when;
				e.size = (int64_t)st.st_size;
				rc = w->cb(&e, w->arg);
			}
			free(name);
			free(orig);
		}
		free(path);
	}
	closedir(d);
	return rc;
}

int
version_list(const char *root, const char *name, version_cb cb, void *arg)
{
	struct walk	w = { .only = name, .cb = cb, .arg = arg };
	int		vfd, rc;

	vfd = store_open(root, "", false);
	if (vfd < 0)
		return vfd;
	rc = walk_dir(&w, vfd, "", 0);
	close(vfd);
	return rc;
}

/* Restoring */

int
version_restore(const char *root, const char *name, const char *stored,
    time_t now, char **kept)
{
	const char	*base, *sbase;
	char		*dir = NULL, *sdir = NULL, *tmp = NULL;
	struct stat	 st;
	int		 rfd = -1, tfd = -1, sfd = -1, rc;
	bool		 moved = false;

	*kept = NULL;
	dir = split(name, &base);
	sdir = split(stored, &sbase);
	tmp = xasprintf(".syncthing.%s~restore.tmp", base);
	if (strlen(tmp) > NAME_MAX) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	sfd = store_open(root, sdir, false);
	if (sfd < 0) {
		rc = sfd;
		goto out;
	}
	rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0) {
		rc = -errno;
		goto out;
	}
	tfd = open_below(rfd, dir, true);
	if (tfd < 0) {
		rc = tfd;
		goto out;
	}
	/* Out of the store first, under a name the scanner ignores: a
	 * trash-can version has the very name the current file would be
	 * kept under. */
	rc = util_wd_moveat(sfd, sbase, tfd, tmp, true);
	if (rc != 0)
		goto out;
	moved = true;
	if (fstatat(tfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(st.st_mode)) {
			rc = -EISDIR;
			goto out;
		}
		rc = keep_at(root, tfd, name, true, now, kept);
		if (rc != 0)
			goto out;
	} else if (errno != ENOENT) {
		rc = -errno;
		goto out;
	}
	rc = util_wd_renameat(tfd, tmp, base, true);
	if (rc != 0) {
		if (*kept != NULL && version_undo_at(root, tfd, name,
		    *kept) == 0) {
			free(*kept);
			*kept = NULL;
		}
		goto out;
	}
	moved = false;
	rc = util_fsync(tfd);
	if (rc != 0)
		LOG_WARN("version", "fsync after restoring \"%s\" failed: %s",
		    base, sh_strerror(rc));
	rc = 0;
out:
	if (moved && util_wd_moveat(tfd, tmp, sfd, sbase, true) != 0)
		LOG_WARN("version", "the version being restored stays as "
		    "\"%s\" next to \"%s\"", tmp, base);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	if (rfd >= 0)
		close(rfd);
	free(tmp);
	free(sdir);
	free(dir);
	return rc;
}

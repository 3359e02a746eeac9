/* SPDX-License-Identifier: MIT */
/*
 * The scanner (design.md §1, §2): walks a folder or some paths in it,
 * compares each entry with this device's record in the index, hashes the
 * regular files whose metadata changed, and records new versions and
 * tombstones. See docs/internals/scan.md for the whole picture.
 *
 * Threads. Directory reads, lstat and hashing run on the libuv thread pool
 * (walk_work, hash_work); everything that touches the index runs on the
 * loop thread (the *_done callbacks, flush). A pool job owns its inputs and
 * outputs and reads only the scan's root path and its cancel flag.
 *
 * Flow. One walker job is in flight at a time: it lists a directory (sorted
 * names) or lstat()s a chunk of at most SCAN_BATCH names, or lstat()s a list
 * of single paths (partial scans). Back on the loop, each entry is compared
 * with its record: unchanged entries are dropped; directories, symlinks and
 * permission-only changes become pending records at once; other regular
 * files go to the hash queue, which at most SCAN_HASH_JOBS pool jobs drain.
 * A big file is cut into parts of SCAN_PART_BYTES, one pool job each, so
 * that one large file is hashed on every core; each part checks the file's
 * metadata before and after reading its blocks (rule 2 per part).
 * Pending records are committed in one transaction per SCAN_COMMIT_COUNT
 * records or SCAN_COMMIT_MS, whichever comes first (group commit), and the
 * transaction is never held across loop iterations, so other modules may
 * use the db between our commits.
 *
 * Deletions. When a directory has been listed, its db entries are merged
 * against the sorted names: an entry whose first component below the
 * directory is not on disk any more becomes a tombstone (bep-brief §10.4).
 * Memory stays bounded by the largest directory, not the tree.
 *
 * Safety rules:
 *   (1) A scan whose root or .stfolder marker is missing records nothing
 *       (scan_start fails with SH_EFOLDER); the marker is checked again
 *       before every commit that holds a tombstone.
 *   (2) A file that changes while it is hashed is never recorded with the
 *       hashes of a mix; it is retried (SCAN_RETRIES times) and otherwise
 *       left for the next scan.
 *   (3) Symlinks are never followed, neither in the walk nor for the
 *       ancestors of a partial path.
 *   (4) A directory that cannot be read (EACCES, EIO) produces no
 *       tombstones for what lies below it.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/hash.h"
#include "shoal/log.h"
#include "shoal/scan.h"
#include "shoal/util.h"

#define SCAN_BATCH		256	/* entries per walker job */
#define SCAN_HASH_JOBS		3	/* hash jobs in flight (2 cores + I/O) */
#define SCAN_HASH_JOB_FILES	128	/* small files batched per hash job */
#define SCAN_HASH_JOB_BYTES	(8 << 20)
#define SCAN_PART_BYTES		(16 << 20)	/* of a big file, per job */
#define SCAN_HASH_BACKLOG	1024	/* walker pauses above this */
#define SCAN_COMMIT_COUNT	512
#define SCAN_COMMIT_MS		200
#define SCAN_RETRIES		3
#define SCAN_MAX_DIR_ENTRIES	(1 << 22)
#define SCAN_TEMP_MAX_AGE_S	(24 * 3600)	/* abandoned pull temp files */

enum pend_kind {
	PEND_PUT = 0,		/* record what was observed */
	PEND_DELETE,		/* tombstone */
	PEND_IGNORE		/* now ignored: invalid, no content */
};

/* An observed entry on its way to the index (hash queue or pending list). */
struct pend {
	struct pend		*next;
	enum pend_kind		 kind;
	char			*name;		/* owned */
	enum record_type	 type;
	uint32_t		 mode;
	int64_t			 size;
	int64_t			 mtime_s;
	int32_t			 mtime_ns;
	uint64_t		 ino;
	uint64_t		 dev;
	char			*target;	/* owned; symlinks */
	int32_t			 block_size;
	struct record_block	*blocks;	/* owned */
	size_t			 block_count;
	int			 err;		/* hash result */
	int			 retries;
	/* Big files: blocks handed out to part jobs, and jobs running. */
	size_t			 part_next;
	int			 part_jobs;
};

struct pend_list {
	struct pend	*head;
	struct pend	*tail;
	size_t		 count;
};

/* A path to lstat on its own (partial scans and retries). */
struct single {
	char	*name;
	bool	 recurse;
	int	 retries;
};

struct walk_ent {
	char		*name;		/* owned; folder-relative */
	int		 err;		/* 0 or -errno from lstat */
	uint32_t	 mode;
	int64_t		 size;
	int64_t		 mtime_s;
	int32_t		 mtime_ns;
	uint64_t	 ino;
	uint64_t	 dev;
	char		*target;	/* owned */
	bool		 recurse;
	int		 retries;
};

struct walk_job {
	uv_work_t	 req;
	struct scan	*s;
	bool		 list;		/* list `dir` first */
	char		*dir;		/* owned; NULL for singles */
	char		**names;	/* list: owned output; else borrowed */
	size_t		 name_count;
	size_t		 start;
	size_t		 end;
	int		 list_err;
	struct single	*singles;	/* owned */
	size_t		 single_count;
	struct walk_ent	*ents;		/* owned output */
	size_t		 ent_count;
};

struct hash_job {
	uv_work_t	 req;
	struct scan	*s;
	bool		 big;		/* part of a file above SCAN_HASH_JOB_BYTES */
	struct pend	*items[SCAN_HASH_JOB_FILES];	/* owned */
	size_t		 count;
	/* big: blocks [first, first + blocks) of `part`, which stays owned
	 * by the queue until its last part is handed out, then by the jobs
	 * (the one finishing last completes it). */
	struct pend	*part;
	size_t		 first;
	size_t		 blocks;
	int		 err;
};

struct scan {
	struct scan_params	 p;
	char			*folder_id;	/* owned copy for logs */
	char			*root;		/* owned copy, read by the pool */
	uv_timer_t		 timer;
	bool			 timer_armed;
	volatile int		 cancel;
	int			 status;
	bool			 finished;
	struct scan_progress	 prog;
	uint64_t		 start_ms;
	uint64_t		 files_added;
	/* Walk. */
	bool			 walking;
	char			**dirs;		/* stack of directories to list */
	size_t			 dir_count;
	size_t			 dir_cap;
	char			*cur_dir;
	char			**cur_names;
	size_t			 cur_count;
	size_t			 cur_next;
	struct single		*singles;
	size_t			 single_count;
	size_t			 single_cap;
	/* Hashing. */
	struct pend_list	 hq;		/* files up to SCAN_HASH_JOB_BYTES */
	struct pend_list	 hq_big;	/* larger files, one per job */
	int			 hash_inflight;
	int			 big_inflight;
	/* Waiting for commit. */
	struct pend_list	 pending;
};

static void	pump(struct scan *);
static bool	walk_left(const struct scan *);
static size_t	hash_queued(const struct scan *);
static int	start_walk_job(struct scan *);

/*
 * Small helpers.
 */

static void
pend_free(struct pend *p)
{
	if (p == NULL)
		return;
	free(p->name);
	free(p->target);
	free(p->blocks);
	free(p);
}

static void
pend_list_push(struct pend_list *l, struct pend *p)
{
	p->next = NULL;
	if (l->tail != NULL)
		l->tail->next = p;
	else
		l->head = p;
	l->tail = p;
	l->count++;
}

static struct pend *
pend_list_pop(struct pend_list *l)
{
	struct pend	*p = l->head;

	if (p == NULL)
		return NULL;
	l->head = p->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->count--;
	p->next = NULL;
	return p;
}

static void
pend_list_clear(struct pend_list *l)
{
	struct pend	*p;

	while ((p = pend_list_pop(l)) != NULL)
		pend_free(p);
}

static char *
join_rel(const char *dir, const char *name)
{
	if (dir == NULL || *dir == '\0')
		return xstrdup(name);
	return xasprintf("%s/%s", dir, name);
}

static void
free_names(char **names, size_t count)
{
	size_t	i;

	if (names == NULL)
		return;
	for (i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True if the first `len` bytes of `key` form one of the sorted names. */
static bool
names_contain(char **names, size_t count, const char *key, size_t len)
{
	size_t	lo = 0, hi = count, mid;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(names[mid], key, len);
		if (c == 0 && names[mid][len] != '\0')
			c = 1;
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static enum record_type
mode_type(uint32_t mode, bool *ok)
{
	*ok = true;
	if (S_ISREG(mode))
		return RECORD_TYPE_FILE;
	if (S_ISDIR(mode))
		return RECORD_TYPE_DIRECTORY;
	if (S_ISLNK(mode))
		return RECORD_TYPE_SYMLINK;
	*ok = false;
	return RECORD_TYPE_FILE;
}

static void
set_error(struct scan *s, int rc)
{
	if (s->status == 0)
		s->status = rc;
	__atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED);
}

static bool
stopping(const struct scan *s)
{
	return s->status != 0;
}

int
scan_root_check(const char *folder_id, const char *root, char *msg,
    size_t msg_size)
{
	struct stat	 st;
	char		*marker = NULL;
	int		 rc;

	if (root == NULL || lstat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
		/* A symlinked root is fine: the user chose it. */
		if (root == NULL || stat(root, &st) != 0 ||
		    !S_ISDIR(st.st_mode)) {
			snprintf(msg, msg_size, "folder \"%s\": path \"%s\" "
			    "is missing", folder_id, root != NULL ? root : "");
			rc = SH_EFOLDER;
			goto out;
		}
	}
	marker = util_path_join(root, FOLDER_MARKER);
	if (lstat(marker, &st) != 0) {
		snprintf(msg, msg_size, "folder \"%s\": marker %s missing in "
		    "\"%s\"", folder_id, FOLDER_MARKER, root);
		rc = SH_EFOLDER;
		goto out;
	}
	rc = 0;
out:
	free(marker);
	return rc;
}

/*
 * The walker (thread pool).
 */

static void
fill_ent(struct walk_ent *e, int dfd, const char *base, const struct stat *st)
{
	char	 buf[PATH_MAX + 1];
	ssize_t	 n;

	e->mode = st->st_mode;
	e->size = st->st_size;
	e->mtime_s = st->st_mtim.tv_sec;
	e->mtime_ns = (int32_t)st->st_mtim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(dfd, base, buf, sizeof(buf));
		if (n < 0)
			e->err = -errno;
		else if ((size_t)n >= sizeof(buf))
			e->err = -ENAMETOOLONG;
		else
			e->target = xstrndup(buf, (size_t)n);
	}
}

static int
open_dir(const char *root, const char *dir)
{
	char	*path;
	int	 fd, flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

	/* The root itself may be a symlink the user chose; nothing below. */
	if (*dir != '\0')
		flags |= O_NOFOLLOW;
	path = *dir == '\0' ? xstrdup(root) : util_path_join(root, dir);
	fd = open(path, flags);
	if (fd < 0)
		fd = -errno;
	free(path);
	return fd;
}

static int
list_dir(const char *root, const char *dir, char ***out, size_t *count)
{
	DIR		*d = NULL;
	struct dirent	*de;
	char		**names = NULL;
	size_t		 n = 0, cap = 0;
	int		 fd, rc;

	*out = NULL;
	*count = 0;
	fd = open_dir(root, dir);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	d = util_fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				rc = -errno;
				goto out;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n >= SCAN_MAX_DIR_ENTRIES) {
			rc = -E2BIG;
			goto out;
		}
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	/* Sorted like the index (memcmp order) for the deletion merge. */
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*count = n;
	names = NULL;
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	free_names(names, n);
	return rc;
}

/*
 * Temporary files of pulls (ours and Syncthing's, bep-brief §10.12) are
 * kept for resuming; once SCAN_TEMP_MAX_AGE_S old they are abandoned and
 * removed (design.md §6).
 */
static bool
is_temp_name(const char *base)
{
	size_t	len = strlen(base);

	if (strncmp(base, "~syncthing~", 11) == 0)
		return len > 15 && strcmp(base + len - 4, ".tmp") == 0;
	if (strncmp(base, ".syncthing.", 11) != 0 &&
	    strncmp(base, ".shoal.", 7) != 0)
		return false;
	return len > 4 && strcmp(base + len - 4, ".tmp") == 0;
}

static void
stat_names(struct walk_job *j)
{
	struct stat	 st;
	struct walk_ent	*e;
	size_t		 i;
	int		 dfd;

	if (j->end <= j->start)
		return;
	j->ents = xcalloc(j->end - j->start, sizeof(*j->ents));
	dfd = open_dir(j->s->root, j->dir);
	for (i = j->start; i < j->end; i++) {
		e = &j->ents[j->ent_count++];
		e->name = join_rel(j->dir, j->names[i]);
		e->recurse = true;
		if (dfd < 0) {
			e->err = dfd;
			continue;
		}
		if (fstatat(dfd, j->names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
			e->err = -errno;
			continue;
		}
		if (S_ISREG(st.st_mode) && is_temp_name(j->names[i]) &&
		    st.st_mtime < time(NULL) - SCAN_TEMP_MAX_AGE_S) {
			if (unlinkat(dfd, j->names[i], 0) == 0)
				LOG_INFO("scan", "folder \"%s\": removed stale "
				    "temporary file \"%s\"", j->s->folder_id,
				    e->name);
			e->err = -ENOENT;
			continue;
		}
		fill_ent(e, dfd, j->names[i], &st);
	}
	if (dfd >= 0)
		close(dfd);
}

/* lstat a folder-relative path without following any symlink on the way. */
static void
stat_single(const char *root, struct walk_ent *e)
{
	struct stat	 st;
	char		*path, *slash;
	const char	*base;
	int		 dfd;

	path = util_path_join(root, e->name);
	/* Check every ancestor below the root: a symlink there means the
	 * name is no longer inside the folder (rule 3). */
	for (slash = path + strlen(root) + 1; (slash = strchr(slash, '/'))
	    != NULL; slash++) {
		*slash = '\0';
		if (lstat(path, &st) != 0) {
			e->err = -errno;
			*slash = '/';
			goto out;
		}
		*slash = '/';
		if (!S_ISDIR(st.st_mode)) {
			e->err = -ENOTDIR;
			goto out;
		}
	}
	if (lstat(path, &st) != 0) {
		e->err = -errno;
		goto out;
	}
	/* fill_ent needs the parent's fd for readlinkat. */
	slash = strrchr(path, '/');
	base = slash + 1;
	*slash = '\0';
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*slash = '/';
	if (dfd < 0) {
		e->err = -errno;
		goto out;
	}
	fill_ent(e, dfd, base, &st);
	close(dfd);
out:
	free(path);
}

static void
walk_work(uv_work_t *req)
{
	struct walk_job	*j = req->data;
	size_t		 i;

	if (j->singles != NULL) {
		j->ents = xcalloc(j->single_count, sizeof(*j->ents));
		for (i = 0; i < j->single_count; i++) {
			struct walk_ent	*e = &j->ents[j->ent_count++];

			e->name = j->singles[i].name;
			j->singles[i].name = NULL;
			e->recurse = j->singles[i].recurse;
			e->retries = j->singles[i].retries;
			stat_single(j->s->root, e);
		}
		return;
	}
	if (j->list) {
		j->list_err = list_dir(j->s->root, j->dir, &j->names,
		    &j->name_count);
		if (j->list_err != 0)
			return;
		j->start = 0;
		j->end = j->name_count < SCAN_BATCH ? j->name_count :
		    SCAN_BATCH;
	}
	stat_names(j);
}

/*
 * Hashing (thread pool).
 */

static bool
same_stat(const struct pend *p, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_size == p->size &&
	    st->st_mtim.tv_sec == p->mtime_s &&
	    st->st_mtim.tv_nsec == p->mtime_ns &&
	    (uint64_t)st->st_ino == p->ino;
}

/*
 * Hash blocks [first, first + count) of p's file into bl, between two
 * checks that the file is the one that was stat'ed (rule 2: a write while
 * we read changes the mtime, so the hashes of a mix are never kept).
 * 0 or negative (SH_ECONFLICT: changed, retry).
 */
static int
hash_checked(struct scan *s, const struct pend *p, struct record_block *bl,
    size_t first, size_t count)
{
	struct stat	 st;
	char		*path;
	int		 fd, rc;

	path = util_path_join(s->root, p->name);
	/* O_NONBLOCK: if a FIFO was swapped in, open must not hang. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!same_stat(p, &st)) {
		rc = SH_ECONFLICT;
		goto out;
	}
	rc = hash_blocks_work(fd, p->size, p->block_size, first, count, bl,
	    &s->cancel, &s->prog.bytes_hashed);
	if (rc != 0)
		goto out;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if (!same_stat(p, &st))
		rc = SH_ECONFLICT;
out:
	close(fd);
	return rc;
}

static void
hash_one(struct scan *s, struct pend *p)
{
	struct record_block	*bl;
	size_t			 n;

	n = hash_block_count(p->size, p->block_size);
	if (n == 0) {
		p->err = -EFBIG;
		return;
	}
	bl = xcalloc(n, sizeof(*bl));
	p->err = hash_checked(s, p, bl, 0, n);
	if (p->err != 0) {
		free(bl);
		return;
	}
	p->blocks = bl;
	p->block_count = n;
}

static void
hash_work(uv_work_t *req)
{
	struct hash_job	*j = req->data;
	size_t		 i;

	if (j->part != NULL) {
		/* Parts of one file write disjoint entries of its array. */
		if (__atomic_load_n(&j->s->cancel, __ATOMIC_RELAXED))
			j->err = -ECANCELED;
		else
			j->err = hash_checked(j->s, j->part, j->part->blocks,
			    j->first, j->blocks);
		return;
	}
	for (i = 0; i < j->count; i++) {
		if (__atomic_load_n(&j->s->cancel, __ATOMIC_RELAXED)) {
			j->items[i]->err = -ECANCELED;
			continue;
		}
		hash_one(j->s, j->items[i]);
	}
}

/*
 * Loop side: comparing, queueing, committing.
 */

static void
push_dir(struct scan *s, const char *name)
{
	if (s->dir_count == s->dir_cap) {
		s->dir_cap = s->dir_cap == 0 ? 16 : s->dir_cap * 2;
		s->dirs = xreallocarray(s->dirs, s->dir_cap, sizeof(*s->dirs));
	}
	s->dirs[s->dir_count++] = xstrdup(name);
}

static void
push_single(struct scan *s, const char *name, bool recurse, int retries)
{
	if (s->single_count == s->single_cap) {
		s->single_cap = s->single_cap == 0 ? 16 : s->single_cap * 2;
		s->singles = xreallocarray(s->singles, s->single_cap,
		    sizeof(*s->singles));
	}
	s->singles[s->single_count].name = xstrdup(name);
	s->singles[s->single_count].recurse = recurse;
	s->singles[s->single_count].retries = retries;
	s->single_count++;
}

static struct pend *
pend_new(enum pend_kind kind, const char *name, enum record_type type)
{
	struct pend	*p = xcalloc(1, sizeof(*p));

	p->kind = kind;
	p->name = xstrdup(name);
	p->type = type;
	return p;
}

/* Collects tombstones or ignore-marks for db entries below a path. */
struct subtree_ctx {
	struct scan	*s;
	const char	*prefix;
	size_t		 prefix_len;
	bool		 include_self;
	enum pend_kind	 kind;
	char		**names;	/* reconcile: sorted children on disk */
	size_t		 name_count;
};

static int
subtree_cb(const struct db_entry *e, void *arg)
{
	struct subtree_ctx	*c = arg;
	const char		*rel, *slash;
	size_t			 len;

	if (e->deleted)
		return 0;
	if (c->prefix_len == 0) {
		rel = e->name;
	} else {
		if (strncmp(e->name, c->prefix, c->prefix_len) != 0)
			return 0;
		if (e->name[c->prefix_len] == '\0') {
			if (c->include_self && !e->invalid)
				pend_list_push(&c->s->pending, pend_new(
				    c->kind, e->name, e->type));
			return 0;
		}
		if (e->name[c->prefix_len] != '/')
			return 0;
		rel = e->name + c->prefix_len + 1;
	}
	/* Ignored records stay as they are; they were not announced. */
	if (e->invalid)
		return 0;
	if (c->names != NULL) {
		slash = strchr(rel, '/');
		len = slash != NULL ? (size_t)(slash - rel) : strlen(rel);
		if (names_contain(c->names, c->name_count, rel, len))
			return 0;
	}
	pend_list_push(&c->s->pending, pend_new(c->kind, e->name, e->type));
	return 0;
}

static int
subtree_mark(struct scan *s, const char *name, bool include_self,
    enum pend_kind kind, char **names, size_t name_count)
{
	struct subtree_ctx	 c;
	int			 rc;

	c.s = s;
	c.prefix = name;
	c.prefix_len = strlen(name);
	c.include_self = include_self;
	c.kind = kind;
	c.names = names;
	c.name_count = name_count;
	rc = db_entries_under(s->p.db, s->p.folder_idx, DB_LOCAL_DEVICE, name,
	    subtree_cb, &c);
	if (rc != 0)
		set_error(s, rc);
	return rc;
}

static bool
ignored(const struct scan *s, const char *name)
{
	return s->p.ignore != NULL &&
	    ignore_match(s->p.ignore, name) != IGNORE_NO;
}

static void
process_ent(struct scan *s, struct walk_ent *e)
{
	struct record		*old = NULL;
	struct pend		*p;
	enum record_type	 type;
	bool			 ok, same;
	char			 esc[512];
	int			 rc;

	s->prog.entries_seen++;
	if (record_name_internal(e->name))
		goto out;
	if (record_name_validate(e->name, strlen(e->name)) != 0) {
		LOG_WARN("scan", "folder \"%s\": skipping \"%s\": not a valid "
		    "UTF-8 canonical name", s->folder_id,
		    log_escape(e->name, esc, sizeof(esc)));
		goto out;
	}
	if (e->err == -ENOENT || e->err == -ENOTDIR) {
		/* Gone (or an ancestor is no longer a directory). */
		(void)subtree_mark(s, e->name, true, PEND_DELETE, NULL, 0);
		goto out;
	}
	if (e->err != 0) {
		LOG_WARN("scan", "folder \"%s\": \"%s\": %s", s->folder_id,
		    log_escape(e->name, esc, sizeof(esc)),
		    sh_strerror(e->err));
		goto out;
	}
	type = mode_type(e->mode, &ok);
	if (!ok) {
		LOG_DEBUG("scan", "folder \"%s\": skipping special file \"%s\"",
		    s->folder_id, log_escape(e->name, esc, sizeof(esc)));
		goto out;
	}
	rc = db_file_get(s->p.db, s->p.folder_idx, DB_LOCAL_DEVICE, e->name,
	    &old);
	if (rc == SH_ENOTFOUND) {
		old = NULL;
	} else if (rc != 0) {
		set_error(s, rc);
		goto out;
	}

	if (ignored(s, e->name)) {
		if (old != NULL && !old->deleted &&
		    !(old->local_flags & RECORD_LOCAL_IGNORED))
			pend_list_push(&s->pending, pend_new(PEND_IGNORE,
			    e->name, old->type));
		if (type == RECORD_TYPE_DIRECTORY) {
			if (ignore_must_descend(s->p.ignore, e->name))
				push_dir(s, e->name);
			else
				(void)subtree_mark(s, e->name, false,
				    PEND_IGNORE, NULL, 0);
		}
		goto out;
	}

	/* A directory replaced by a file or symlink leaves its children. */
	if (type != RECORD_TYPE_DIRECTORY && old != NULL && !old->deleted &&
	    old->type == RECORD_TYPE_DIRECTORY)
		(void)subtree_mark(s, e->name, false, PEND_DELETE, NULL, 0);
	if (type == RECORD_TYPE_DIRECTORY && e->recurse)
		push_dir(s, e->name);

	same = old != NULL && !old->deleted && !old->invalid &&
	    old->type == type;
	/* A record that carries no permissions (pulled with no_permissions,
	 * or from a peer that ignores them) is not "changed" by mode bits. */
	if (same && type != RECORD_TYPE_SYMLINK && !old->no_permissions)
		same = old->permissions == (e->mode & 0777);
	if (same && type == RECORD_TYPE_SYMLINK)
		same = old->symlink_target != NULL && e->target != NULL &&
		    strcmp(old->symlink_target, e->target) == 0;
	if (same && type == RECORD_TYPE_FILE)
		same = old->size == e->size && old->modified_s == e->mtime_s &&
		    old->modified_ns == e->mtime_ns && old->inode == e->ino;
	if (same)
		goto out;

	p = pend_new(PEND_PUT, e->name, type);
	p->mode = e->mode;
	p->size = type == RECORD_TYPE_FILE ? e->size : 0;
	p->mtime_s = e->mtime_s;
	p->mtime_ns = e->mtime_ns;
	p->ino = e->ino;
	p->dev = e->dev;
	p->target = e->target;
	e->target = NULL;
	p->retries = e->retries;
	if (type != RECORD_TYPE_FILE) {
		pend_list_push(&s->pending, p);
		goto out;
	}
	p->block_size = record_block_size(e->size,
	    old != NULL ? old->block_size : 0);
	if (old != NULL && !old->deleted && !old->invalid &&
	    old->type == RECORD_TYPE_FILE && old->size == e->size &&
	    old->modified_s == e->mtime_s && old->modified_ns == e->mtime_ns &&
	    old->inode == e->ino && old->block_count > 0) {
		/* Only the permissions changed: the content is known. */
		p->block_size = old->block_size;
		p->block_count = old->block_count;
		p->blocks = xreallocarray(NULL, old->block_count,
		    sizeof(*p->blocks));
		memcpy(p->blocks, old->blocks,
		    old->block_count * sizeof(*p->blocks));
		pend_list_push(&s->pending, p);
		goto out;
	}
	s->prog.bytes_to_hash += (uint64_t)e->size;
	pend_list_push(p->size > SCAN_HASH_JOB_BYTES ? &s->hq_big : &s->hq,
	    p);
out:
	record_free(old);
}

static bool
same_content(const struct record *old, const struct record *r)
{
	if (old == NULL || old->deleted || old->invalid ||
	    old->type != r->type || old->permissions != r->permissions ||
	    old->modified_s != r->modified_s ||
	    old->modified_ns != r->modified_ns)
		return false;
	switch (r->type) {
	case RECORD_TYPE_FILE:
		return old->size == r->size && old->has_blocks_hash &&
		    memcmp(old->blocks_hash, r->blocks_hash,
		    RECORD_HASH_LEN) == 0;
	case RECORD_TYPE_SYMLINK:
		return old->symlink_target != NULL &&
		    strcmp(old->symlink_target, r->symlink_target) == 0;
	default:
		return true;
	}
}

static void
bump(struct scan *s, struct record *r, const struct record *old, int64_t now)
{
	record_vector_free(&r->version);
	if (old != NULL)
		record_vector_copy(&r->version, &old->version);
	/* Coming back from "ignored" may have hidden remote updates: keep
	 * only our counter so the result is concurrent (bep-brief §10.6). */
	if (old != NULL && old->invalid &&
	    (old->local_flags & RECORD_LOCAL_IGNORED)) {
		size_t	i, n = 0;

		for (i = 0; i < r->version.count; i++)
			if (r->version.counters[i].id == s->p.short_id)
				r->version.counters[n++] =
				    r->version.counters[i];
		r->version.count = n;
		if (n == 0) {
			free(r->version.counters);
			r->version.counters = NULL;
		}
	}
	record_vector_update(&r->version, s->p.short_id, now);
	r->modified_by = s->p.short_id;
	/* Receive-only: the change stays local; it is announced as invalid
	 * and never becomes the global version (bep-brief §11). */
	if (s->p.receive_only)
		r->local_flags |= RECORD_LOCAL_RECEIVEONLY;
}

static void
clear_content(struct record *r)
{
	free(r->blocks);
	r->blocks = NULL;
	r->block_count = 0;
	r->has_blocks_hash = false;
	memset(r->blocks_hash, 0, sizeof(r->blocks_hash));
	r->size = 0;
}

/*
 * Build the record a pending entry stands for, from the current stored
 * record. Returns 0 with *out NULL when nothing needs writing.
 */
static int
build_record(struct scan *s, struct pend *p, int64_t now, struct record **out,
    const char **verb)
{
	struct record	*old = NULL, *r = NULL;
	int		 rc;

	*out = NULL;
	rc = db_file_get(s->p.db, s->p.folder_idx, DB_LOCAL_DEVICE, p->name,
	    &old);
	if (rc == SH_ENOTFOUND)
		old = NULL;
	else if (rc != 0)
		goto out;

	switch (p->kind) {
	case PEND_DELETE:
		if (old == NULL || old->deleted || old->invalid)
			break;
		r = record_dup(old);
		clear_content(r);
		free(r->symlink_target);
		r->symlink_target = NULL;
		r->deleted = true;
		r->modified_s = now;
		bump(s, r, old, now);
		*verb = "deleted";
		break;
	case PEND_IGNORE:
		if (old == NULL || old->deleted ||
		    (old->local_flags & RECORD_LOCAL_IGNORED))
			break;
		r = record_dup(old);
		clear_content(r);
		r->invalid = true;
		r->local_flags |= RECORD_LOCAL_IGNORED;
		bump(s, r, old, now);
		*verb = "now ignored";
		break;
	case PEND_PUT:
		r = record_new();
		r->name = xstrdup(p->name);
		r->type = p->type;
		r->size = p->size;
		r->inode = p->ino;
		r->dev = p->dev;
		if (p->type == RECORD_TYPE_SYMLINK) {
			/* bep-brief §10.3: no permissions, no mtime. */
			r->no_permissions = true;
			r->symlink_target = p->target;
			p->target = NULL;
		} else {
			r->permissions = p->mode & 0777;
			r->modified_s = p->mtime_s;
			r->modified_ns = p->mtime_ns;
		}
		if (p->type == RECORD_TYPE_FILE) {
			r->block_size = p->block_size;
			r->blocks = p->blocks;
			r->block_count = p->block_count;
			p->blocks = NULL;
			p->block_count = 0;
			record_blocks_hash(r->blocks, r->block_count,
			    r->blocks_hash);
			r->has_blocks_hash = true;
		}
		if (same_content(old, r)) {
			if (old->inode == r->inode && old->dev == r->dev) {
				record_free(r);
				r = NULL;
				break;
			}
			/* Same content under a new inode: remember the
			 * inode so the next scan does not rehash, but this
			 * is no new version. */
			record_vector_copy(&r->version, &old->version);
			r->modified_by = old->modified_by;
			*verb = NULL;
			break;
		}
		bump(s, r, old, now);
		if (old == NULL || old->deleted || old->invalid)
			*verb = "added";
		else
			*verb = "modified";
		break;
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	record_free(old);
	record_free(r);
	return rc;
}

static void
log_change(struct scan *s, const struct record *r, const char *verb)
{
	char	esc[512];

	log_escape(r->name, esc, sizeof(esc));
	if (r->type == RECORD_TYPE_DIRECTORY && !r->deleted)
		LOG_INFO("scan", "folder \"%s\": directory %s \"%s\"",
		    s->folder_id, verb, esc);
	else if (r->type == RECORD_TYPE_SYMLINK && !r->deleted)
		LOG_INFO("scan", "folder \"%s\": symlink %s \"%s\"",
		    s->folder_id, verb, esc);
	else if (r->type == RECORD_TYPE_FILE && !r->deleted && !r->invalid)
		LOG_INFO("scan", "folder \"%s\": %s \"%s\" (%lld bytes)",
		    s->folder_id, verb, esc, (long long)r->size);
	else
		LOG_INFO("scan", "folder \"%s\": %s \"%s\"", s->folder_id,
		    verb, esc);
}

/* Commit up to SCAN_COMMIT_COUNT pending entries in one transaction. */
static int
flush_some(struct scan *s)
{
	struct record	*done[SCAN_COMMIT_COUNT];
	struct pend	*p, *batch[SCAN_COMMIT_COUNT];
	const char	*verb;
	char		 msg[512];
	size_t		 i, n = 0, nd = 0;
	bool		 deletes = false, began = false;
	int64_t		 now = util_now_unix();
	uint64_t	 t0 = util_now_ms();
	int		 rc;

	while (n < SCAN_COMMIT_COUNT &&
	    (p = pend_list_pop(&s->pending)) != NULL) {
		if (p->kind != PEND_PUT)
			deletes = true;
		batch[n++] = p;
	}
	if (n == 0)
		return 0;
	/* Rule 1: an unmounted disk must not look like mass deletion. */
	if (deletes && scan_root_check(s->folder_id, s->root, msg,
	    sizeof(msg)) != 0) {
		LOG_ERROR("scan", "%s; not recording deletions", msg);
		rc = SH_EFOLDER;
		goto out;
	}
	rc = db_begin(s->p.db);
	if (rc != 0)
		goto out;
	began = true;
	for (i = 0; i < n; i++) {
		struct record	*r = NULL;

		verb = NULL;
		rc = build_record(s, batch[i], now, &r, &verb);
		if (rc != 0)
			goto out;
		if (r == NULL)
			continue;
		rc = db_local_put(s->p.db, s->p.folder_idx, r);
		if (rc != 0) {
			record_free(r);
			goto out;
		}
		if (verb != NULL)
			log_change(s, r, verb);
		done[nd++] = r;
	}
	rc = db_commit(s->p.db);
	if (rc != 0)
		goto out;
	began = false;
	LOG_DEBUG("scan", "folder \"%s\": committed %zu records in %llu ms",
	    s->folder_id, nd, (unsigned long long)(util_now_ms() - t0));
	s->prog.changes += nd;
	for (i = 0; i < nd; i++)
		if (s->p.change_cb != NULL)
			s->p.change_cb(done[i], s->p.arg);
	rc = 0;
out:
	if (began)
		db_rollback(s->p.db);
	for (i = 0; i < nd; i++)
		record_free(done[i]);
	for (i = 0; i < n; i++)
		pend_free(batch[i]);
	if (rc != 0)
		set_error(s, rc);
	return rc;
}

static void
flush_all(struct scan *s)
{
	while (s->pending.count > 0 && flush_some(s) == 0)
		;
}

static void
timer_cb(uv_timer_t *t)
{
	struct scan	*s = t->data;

	s->timer_armed = false;
	if (!stopping(s))
		(void)flush_some(s);
	pump(s);
}

static void
walk_done(uv_work_t *req, int status)
{
	struct walk_job	*j = req->data;
	struct scan	*s = j->s;
	size_t		 i;

	s->walking = false;
	if (status != 0 && !stopping(s))
		set_error(s, status);
	if (j->list) {
		if (j->list_err == -ENOENT || j->list_err == -ENOTDIR) {
			/* Vanished between its lstat and its listing. */
			if (!stopping(s))
				(void)subtree_mark(s, j->dir, true,
				    PEND_DELETE, NULL, 0);
		} else if (j->list_err != 0) {
			char	esc[512];

			/* Rule 4: unreadable is not empty. */
			LOG_WARN("scan", "folder \"%s\": cannot read \"%s\": "
			    "%s", s->folder_id, log_escape(*j->dir != '\0' ?
			    j->dir : ".", esc, sizeof(esc)),
			    sh_strerror(j->list_err));
		} else {
			if (!stopping(s))
				(void)subtree_mark(s, j->dir, false,
				    PEND_DELETE, j->names, j->name_count);
			s->cur_dir = j->dir;
			s->cur_names = j->names;
			s->cur_count = j->name_count;
			s->cur_next = j->end;
			j->dir = NULL;
			j->names = NULL;
		}
	} else if (j->dir != NULL) {
		s->cur_next = j->end;
	}
	/* Keep the walker busy while this batch is compared with the index:
	 * the loop and the pool then overlap instead of taking turns. */
	if (!stopping(s) && hash_queued(s) < SCAN_HASH_BACKLOG && walk_left(s)) {
		int	rc = start_walk_job(s);

		if (rc != 0)
			set_error(s, rc);
	}
	for (i = 0; i < j->ent_count; i++) {
		if (!stopping(s))
			process_ent(s, &j->ents[i]);
		free(j->ents[i].name);
		free(j->ents[i].target);
	}
	free(j->ents);
	for (i = 0; i < j->single_count; i++)
		free(j->singles[i].name);
	free(j->singles);
	if (j->list)
		free_names(j->names, j->name_count);
	free(j->dir);
	free(j);
	pump(s);
}

/* A file's hashing ended (all its parts, for a big one): keep or retry. */
static void
hashed(struct scan *s, struct pend *p)
{
	char	 esc[512];

	if (p->err == 0) {
		s->prog.files_hashed++;
		pend_list_push(&s->pending, p);
		return;
	}
	if (!stopping(s) && (p->err == SH_ECONFLICT ||
	    p->err == -ENOENT || p->err == -ELOOP)) {
		/* Rule 2: look again later; a vanished file turns
		 * into a tombstone through the same path. */
		if (p->retries < SCAN_RETRIES)
			push_single(s, p->name, false, p->retries + 1);
		else
			LOG_WARN("scan", "folder \"%s\": \"%s\" keeps "
			    "changing; leaving it for the next scan",
			    s->folder_id,
			    log_escape(p->name, esc, sizeof(esc)));
	} else if (p->err != -ECANCELED && !stopping(s)) {
		LOG_WARN("scan", "folder \"%s\": cannot hash \"%s\": "
		    "%s", s->folder_id,
		    log_escape(p->name, esc, sizeof(esc)),
		    sh_strerror(p->err));
	}
	pend_free(p);
}

static void
part_done(struct scan *s, struct hash_job *j, int status)
{
	struct pend	*p = j->part;
	size_t		 n = p->block_count;

	p->part_jobs--;
	if (status != 0 && j->err == 0)
		j->err = status;
	if (j->err != 0 && p->err == 0)
		p->err = j->err;
	if (p->err != 0 && p->part_next < n) {
		/* No point hashing the rest: take it off the queue, whose
		 * head it is while parts remain. */
		if (pend_list_pop(&s->hq_big) != p)
			abort();
		p->part_next = n;
	}
	if (p->part_next < n || p->part_jobs > 0)
		return;
	if (p->err != 0) {
		free(p->blocks);
		p->blocks = NULL;
		p->block_count = 0;
	}
	hashed(s, p);
}

static void
hash_done(uv_work_t *req, int status)
{
	struct hash_job	*j = req->data;
	struct scan	*s = j->s;
	struct pend	*p;
	size_t		 i;

	s->hash_inflight--;
	if (j->big)
		s->big_inflight--;
	if (j->part != NULL)
		part_done(s, j, status);
	for (i = 0; i < j->count; i++) {
		p = j->items[i];
		j->items[i] = NULL;
		if (status != 0 && p->err == 0)
			p->err = status;
		hashed(s, p);
	}
	free(j);
	pump(s);
}

/* Hand out the next part of the big file at the head of the queue. */
static void
take_part(struct scan *s, struct hash_job *j)
{
	struct pend	*p = s->hq_big.head;
	size_t		 per;

	if (p->part_next == 0) {
		free(p->blocks);
		p->block_count = hash_block_count(p->size, p->block_size);
		/* Too many blocks: one empty part reports -EFBIG. */
		p->blocks = xcalloc(p->block_count > 0 ? p->block_count : 1,
		    sizeof(*p->blocks));
	}
	per = (size_t)(SCAN_PART_BYTES / p->block_size);
	if (per == 0)
		per = 1;
	j->part = p;
	j->first = p->part_next;
	j->blocks = p->block_count - p->part_next < per ?
	    p->block_count - p->part_next : per;
	p->part_next += j->blocks;
	p->part_jobs++;
	if (p->part_next >= p->block_count)
		(void)pend_list_pop(&s->hq_big);
}

static int
start_hash_job(struct scan *s, bool big)
{
	struct hash_job	*j;
	uint64_t	 bytes = 0;
	int		 rc;

	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->req.data = j;
	j->big = big;
	if (big)
		take_part(s, j);
	/* Batch small files so the pool round trip is not per file. */
	while (!big && j->count < SCAN_HASH_JOB_FILES && s->hq.head != NULL &&
	    bytes + (uint64_t)s->hq.head->size <= SCAN_HASH_JOB_BYTES) {
		bytes += (uint64_t)s->hq.head->size;
		j->items[j->count++] = pend_list_pop(&s->hq);
	}
	rc = uv_queue_work(s->p.loop, &j->req, hash_work, hash_done);
	if (rc != 0) {
		while (j->count > 0)
			pend_free(j->items[--j->count]);
		if (j->part != NULL) {
			j->err = rc;
			part_done(s, j, 0);
		}
		free(j);
		return rc;
	}
	s->hash_inflight++;
	if (big)
		s->big_inflight++;
	return 0;
}

static int
start_walk_job(struct scan *s)
{
	struct walk_job	*j;
	size_t		 n;
	int		 rc;

	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->req.data = j;
	if (s->single_count > 0) {
		n = s->single_count < SCAN_BATCH ? s->single_count :
		    SCAN_BATCH;
		j->singles = xreallocarray(NULL, n, sizeof(*j->singles));
		memcpy(j->singles, s->singles + s->single_count - n,
		    n * sizeof(*j->singles));
		j->single_count = n;
		s->single_count -= n;
	} else if (s->cur_dir != NULL && s->cur_next < s->cur_count) {
		j->dir = xstrdup(s->cur_dir);
		j->names = s->cur_names;
		j->name_count = s->cur_count;
		j->start = s->cur_next;
		j->end = s->cur_count - s->cur_next > SCAN_BATCH ?
		    s->cur_next + SCAN_BATCH : s->cur_count;
	} else if (s->dir_count > 0) {
		free(s->cur_dir);
		free_names(s->cur_names, s->cur_count);
		s->cur_dir = NULL;
		s->cur_names = NULL;
		s->cur_count = s->cur_next = 0;
		j->list = true;
		j->dir = s->dirs[--s->dir_count];
	} else {
		free(j);
		return 0;
	}
	rc = uv_queue_work(s->p.loop, &j->req, walk_work, walk_done);
	if (rc != 0) {
		/* Nothing was handed over except what the job holds. */
		size_t	i;

		for (i = 0; i < j->single_count; i++)
			free(j->singles[i].name);
		free(j->singles);
		free(j->dir);
		free(j);
		return rc;
	}
	s->walking = true;
	return 0;
}

static size_t
hash_queued(const struct scan *s)
{
	return s->hq.count + s->hq_big.count;
}

static bool
walk_left(const struct scan *s)
{
	return s->single_count > 0 || s->dir_count > 0 ||
	    (s->cur_dir != NULL && s->cur_next < s->cur_count);
}

static void
scan_free(struct scan *s)
{
	size_t	i;

	pend_list_clear(&s->hq);
	pend_list_clear(&s->hq_big);
	pend_list_clear(&s->pending);
	for (i = 0; i < s->dir_count; i++)
		free(s->dirs[i]);
	free(s->dirs);
	for (i = 0; i < s->single_count; i++)
		free(s->singles[i].name);
	free(s->singles);
	free(s->cur_dir);
	free_names(s->cur_names, s->cur_count);
	free(s->folder_id);
	free(s->root);
	free(s);
}

static void
close_cb(uv_handle_t *h)
{
	scan_free(h->data);
}

static void
finish(struct scan *s)
{
	double	 secs;
	uint64_t bytes;

	s->finished = true;
	if (s->status == 0 || s->status == -ECANCELED)
		flush_all(s);
	uv_timer_stop(&s->timer);
	secs = (double)(util_now_ms() - s->start_ms) / 1000.0;
	bytes = __atomic_load_n(&s->prog.bytes_hashed, __ATOMIC_RELAXED);
	if (s->status == 0)
		LOG_INFO("scan", "folder \"%s\": scan done: %llu entries, "
		    "%llu files hashed (%llu bytes, %.1f MB/s), %llu changes "
		    "in %.2f s", s->folder_id,
		    (unsigned long long)s->prog.entries_seen,
		    (unsigned long long)s->prog.files_hashed,
		    (unsigned long long)bytes,
		    secs > 0 ? (double)bytes / 1e6 / secs : 0.0,
		    (unsigned long long)s->prog.changes, secs);
	else
		LOG_INFO("scan", "folder \"%s\": scan stopped after %.2f s: %s",
		    s->folder_id, secs, sh_strerror(s->status));
	s->p.done_cb(s, s->status, s->p.arg);
	uv_close((uv_handle_t *)&s->timer, close_cb);
}

/* Advance the state machine: start what can start, finish when idle. */
static void
pump(struct scan *s)
{
	int	rc;

	if (s->finished)
		return;
	/* Hand the pool its work before committing, so that it hashes and
	 * walks while the loop is busy in SQLite. */
	/*
	 * Big files may take all but one slot while small files wait: small
	 * files are where the loop's work (their records) comes from, so
	 * hashing them early lets the loop commit while the big ones hash.
	 * Without this the two ran one after the other (traced on the
	 * benchmark tree: every big file was hashed before the first small
	 * file's record was committed).
	 */
	while (!stopping(s) && s->hash_inflight < SCAN_HASH_JOBS) {
		if (s->hq_big.count > 0 &&
		    s->big_inflight < SCAN_HASH_JOBS - 1)
			rc = start_hash_job(s, true);
		else if (s->hq.count > 0)
			rc = start_hash_job(s, false);
		else if (s->hq_big.count > 0)
			rc = start_hash_job(s, true);
		else
			break;
		if (rc != 0)
			set_error(s, rc);
	}
	if (!stopping(s) && !s->walking && hash_queued(s) < SCAN_HASH_BACKLOG &&
	    walk_left(s)) {
		rc = start_walk_job(s);
		if (rc != 0)
			set_error(s, rc);
	}
	if (s->pending.count >= SCAN_COMMIT_COUNT && !stopping(s))
		(void)flush_some(s);
	if (s->walking || s->hash_inflight > 0 ||
	    (!stopping(s) && (walk_left(s) || hash_queued(s) > 0))) {
		if (s->pending.count > 0 && !s->timer_armed &&
		    !stopping(s)) {
			rc = uv_timer_start(&s->timer, timer_cb,
			    SCAN_COMMIT_MS, 0);
			if (rc == 0)
				s->timer_armed = true;
		}
		return;
	}
	/* Many tombstones at the end (a big subtree deleted): commit them one
	 * batch per loop turn rather than stalling the loop for all. */
	if (s->pending.count > SCAN_COMMIT_COUNT &&
	    (s->status == 0 || s->status == -ECANCELED)) {
		if (flush_some(s) == 0 && !s->timer_armed) {
			rc = uv_timer_start(&s->timer, timer_cb, 0, 0);
			if (rc == 0) {
				s->timer_armed = true;
				return;
			}
		}
	}
	finish(s);
}

/* Normalise a requested path: strip "./", leading and trailing '/'. */
static char *
clean_path(const char *in)
{
	char	*p, *q;
	size_t	 len;

	while (in[0] == '/' || (in[0] == '.' && in[1] == '/'))
		in += in[0] == '/' ? 1 : 2;
	p = xstrdup(in);
	len = strlen(p);
	while (len > 0 && p[len - 1] == '/')
		p[--len] = '\0';
	if (strcmp(p, ".") == 0)
		p[0] = '\0';
	/* Collapse "//" so the name compares with stored names. */
	for (q = p; (q = strstr(q, "//")) != NULL;)
		memmove(q, q + 1, strlen(q + 1) + 1);
	return p;
}

/* A partial path in a directory the index does not know yet: record the
 * missing ancestors too, without descending into them. */
static int
queue_ancestors(struct scan *s, const char *name)
{
	struct record	*r = NULL;
	char		*dup, *slash;
	int		 rc = 0;

	dup = xstrdup(name);
	for (slash = strchr(dup, '/'); slash != NULL;
	    slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		rc = db_file_get(s->p.db, s->p.folder_idx, DB_LOCAL_DEVICE,
		    dup, &r);
		if (rc == SH_ENOTFOUND || (rc == 0 && (r->deleted ||
		    r->type != RECORD_TYPE_DIRECTORY)))
			push_single(s, dup, false, 0);
		else if (rc != 0)
			break;
		rc = 0;
		record_free(r);
		r = NULL;
		*slash = '/';
	}
	record_free(r);
	free(dup);
	return rc;
}

int
scan_start(const struct scan_params *p, const char *const *paths,
    size_t path_count, struct scan **out)
{
	struct scan	*s = NULL;
	char		 msg[512];
	char		*c;
	bool		 full = paths == NULL || path_count == 0;
	size_t		 i;
	int		 rc;

	*out = NULL;
	if (p->loop == NULL || p->db == NULL || p->root == NULL ||
	    p->done_cb == NULL) {
		rc = -EINVAL;
		goto out;
	}
	rc = scan_root_check(p->folder_id != NULL ? p->folder_id : "",
	    p->root, msg, sizeof(msg));
	if (rc != 0) {
		LOG_DEBUG("scan", "%s", msg);
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->p = *p;
	s->folder_id = xstrdup(p->folder_id != NULL ? p->folder_id : "");
	s->root = xstrdup(p->root);
	s->start_ms = util_now_ms();
	for (i = 0; !full && i < path_count; i++) {
		c = clean_path(paths[i]);
		if (*c == '\0') {
			full = true;
		} else if (record_name_validate(c, strlen(c)) != 0) {
			char	esc[512];

			LOG_WARN("scan", "folder \"%s\": ignoring scan request "
			    "for invalid name \"%s\"", s->folder_id,
			    log_escape(c, esc, sizeof(esc)));
		} else {
			rc = queue_ancestors(s, c);
			if (rc == 0)
				push_single(s, c, true, 0);
		}
		free(c);
		if (rc != 0)
			goto out;
	}
	if (full) {
		for (i = 0; i < s->single_count; i++)
			free(s->singles[i].name);
		s->single_count = 0;
		push_dir(s, "");
	}
	rc = uv_timer_init(p->loop, &s->timer);
	if (rc != 0)
		goto out;
	s->timer.data = s;
	LOG_DEBUG("scan", "folder \"%s\": %s scan started", s->folder_id,
	    full ? "full" : "partial");
	/* Start on the next loop turn, so that done_cb never runs before
	 * scan_start has returned (even when there is nothing to do). */
	rc = uv_timer_start(&s->timer, timer_cb, 0, 0);
	if (rc != 0) {
		uv_close((uv_handle_t *)&s->timer, close_cb);
		s = NULL;
		goto out;
	}
	s->timer_armed = true;
	*out = s;
	s = NULL;
	rc = 0;
out:
	if (s != NULL)
		scan_free(s);
	return rc;
}

void
scan_cancel(struct scan *s)
{
	if (s == NULL || s->finished)
		return;
	if (s->status == 0)
		s->status = -ECANCELED;
	__atomic_store_n(&s->cancel, 1, __ATOMIC_RELAXED);
}

void
scan_get_progress(const struct scan *s, struct scan_progress *out)
{
	*out = s->prog;
	out->bytes_hashed = __atomic_load_n(&s->prog.bytes_hashed,
	    __ATOMIC_RELAXED);
}

struct once_ctx {
	int			 status;
	bool			 done;
	struct scan_progress	 prog;
};

static void
once_done(struct scan *s, int status, void *arg)
{
	struct once_ctx	*c = arg;

	c->status = status;
	c->done = true;
	scan_get_progress(s, &c->prog);
}

int
scan_run_once(struct db *db, int64_t folder_idx, const char *folder_id,
    const char *root, uint64_t short_id, const struct ignore *ig,
    bool receive_only, struct scan_progress *out)
{
	uv_loop_t		 loop;
	struct scan_params	 p;
	struct scan		*s;
	struct once_ctx		 c;
	char			 msg[512];
	bool			 inited = false;
	int			 rc;

	memset(&c, 0, sizeof(c));
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (scan_root_check(folder_id, root, msg, sizeof(msg)) != 0) {
		LOG_ERROR("scan", "%s", msg);
		rc = SH_EFOLDER;
		goto out;
	}
	rc = uv_loop_init(&loop);
	if (rc != 0)
		goto out;
	inited = true;
	memset(&p, 0, sizeof(p));
	p.loop = &loop;
	p.db = db;
	p.folder_idx = folder_idx;
	p.folder_id = folder_id;
	p.root = root;
	p.short_id = short_id;
	p.ignore = ig;
	p.receive_only = receive_only;
	p.done_cb = once_done;
	p.arg = &c;
	rc = scan_start(&p, NULL, 0, &s);
	if (rc != 0)
		goto out;
	rc = uv_run(&loop, UV_RUN_DEFAULT);
	if (rc != 0 || !c.done) {
		rc = -EIO;
		goto out;
	}
	if (out != NULL)
		*out = c.prog;
	rc = c.status;
out:
	if (inited && uv_loop_close(&loop) != 0)
		LOG_WARN("scan", "scan_run_once: loop still has handles");
	return rc;
}

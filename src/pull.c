/* SPDX-License-Identifier: MIT */
/*
 * The puller (design.md §1, §2, §6; bep-brief §10, §11). One pull is one
 * pass over a folder's need list: names are taken in batches of
 * PULL_BATCH in the index's order (directories shallow first, files and
 * symlinks, deletions deepest first) and each is brought to the global
 * version by a job. See docs/internals/pull.md for the whole picture.
 *
 * NOTES ON THE DESIGN OF THE PULLER
 *
 *   (1) A file the user changed is never replaced. Before anything on
 *       disk is replaced or removed, what is there is compared with our
 *       local record (type, size, mtime s+ns, inode, permissions, symlink
 *       target); if they differ the name is skipped and the folder is
 *       asked to rescan it (on_rescan). The comparison is made again on
 *       the thread pool right before the rename or unlink. A name that
 *       was absent is filled with renameat2(RENAME_NOREPLACE), so a file
 *       created meanwhile is not replaced either.
 *   (2) A regular file whose version is concurrent with the incoming one
 *       (or older than a counter of ours in it: a lost index, bep-brief
 *       §10.7) is renamed to its conflict name before the new version
 *       takes its place; a global deletion concurrent with a valid local
 *       item deletes nothing (the vectors are merged into our record, not
 *       bumped). Only regular files get conflict copies (§10.3).
 *   (3) Every block is verified by SHA-256 before it is written: blocks
 *       of one-block files from peers by conn_request, blocks of bigger
 *       files from peers, blocks copied from local files and blocks
 *       found in a temporary file here, on the pool (blk_work), so the
 *       loop thread is free to decrypt the next ones.
 *   (4) New content goes to a temporary file in the target's directory
 *       (bep-brief §10.12), which is truncated to size and given its mode
 *       and mtime; it is durable before it is renamed over the target,
 *       and the rename is durable before the record is queued. Files
 *       whose blocks are all written are finished in groups (group
 *       durability): one pool job per group makes all their temporary
 *       files durable at once (an fsync of each when the group has at
 *       most PULL_SYNC_EACH files, so a lone big file does not flush the
 *       whole file system; else one syncfs(2) per file system, then each
 *       file's own write-back error through sync_file_range), then checks
 *       and renames each file, then makes the renames durable at once (an
 *       fsync of each directory when there are few, else syncfs). A
 *       failed first sync (or a write the disk refuses, invariant 7)
 *       fails the whole group: nothing of it is renamed or recorded and
 *       the temporary files stay for resume. The local
 *       record is a copy of the global record (same vector, modified_by,
 *       mtime, permissions, block size: §10.6), so a crash leaves either
 *       the old file with the old record or the new file, which the next
 *       pass recognises as the global version.
 *   (5) Nothing escapes the folder through a symlink: directories below
 *       the root are opened one component at a time with O_NOFOLLOW, all
 *       work is relative to those descriptors, and temporary files are
 *       opened with O_NOFOLLOW. A name whose parent is a symlink is refused.
 *   (6) A missing root or .stfolder marker stops the puller (SH_EFOLDER):
 *       checked on the pool when the pass starts and again before every
 *       rename or unlink.
 *   (7) A disk that refuses writes (ENOSPC, EIO, EDQUOT, EROFS) stops the
 *       pass with that error; temporary files are kept for resume and
 *       nothing is replaced.
 *   (8) Disk I/O (open, read, write, fsync, rename, unlink, mkdir) runs on
 *       the libuv thread pool; the index, the connections and every
 *       counter are touched only on the loop. A pool job reads its own job
 *       (a finish group: its jobs, which the loop leaves alone while the
 *       group runs) and the pull's root path, which never changes.
 *   (9) Records of pulled items are stored in groups (group commit): up
 *       to PULL_COMMIT_BATCH per transaction, always before the next need
 *       list is read and before the pass ends, so thousands of small files
 *       do not pay a transaction (and an index message) each. An item is
 *       on disk, durable (its finish group's second sync done), before its
 *       record is queued; a crash in between leaves a file that already
 *       matches the global record, which the next pass recognises and
 *       records without writing. A failed second sync (the renames are
 *       done) still records the group's files, as a failed directory
 *       fsync always did, and an I/O error then stops the pass.
 *  (10) Big files bypass the page cache: full, aligned blocks of a file of
 *       at least PULL_DIRECT_MIN bytes are written through a second
 *       descriptor of the temporary file opened with O_DIRECT. Filling
 *       fresh page-cache pages (allocating and copying into them, then
 *       writing them back) cost more than the network and hashing
 *       together for a 1 GiB file, and the cache then holds a copy nobody
 *       asked for. The last, short block goes through the page cache; a
 *       file system that refuses O_DIRECT (open or write: EINVAL) gets
 *       buffered writes. Durability is unchanged: the group's fsync or
 *       syncfs covers the inode whichever descriptor wrote it. Likewise
 *       an aligned block copied from a local file that is not in the
 *       page cache (the old version of a big file we wrote this way) is
 *       read past it (util_pread_uncached).
 *
 * Job state machine (struct job, j->state):
 *
 *   job_start --> [PREP] --(file)--> [FETCH] --> [SYNC] --> [FINISH]
 *                   |  \                |          |            |
 *                   |   +--(dir, symlink, delete:  | failure,   |
 *                   |      one pool job)------+    v stop       v
 *                   +--(rescan, invalid, failed)--> job_end <-- [COMMIT]
 *
 *   from     to       when                                      function
 *   (new)    PREP     the item passed the checks on the loop    job_start
 *   PREP     FETCH    file: temp file open, blocks planned      prep_done
 *   PREP     COMMIT   dir/symlink/delete applied, or the disk
 *                     already holds the global version          prep_done
 *   FETCH    SYNC     every block written (at once when the
 *                     temp file held them all)                  job_check
 *   SYNC     FINISH   taken into a new finish group             start_group
 *   FINISH   COMMIT   synced, renamed, synced again             group_done
 *   SYNC     (end)    the pass stopped before a group took it   start_group
 *   any      (end)    failure, rescan, cancel                   job_end
 *
 * One finish group runs at a time; a file that reaches SYNC while none
 * runs starts one at once (no timer), and the files that reach SYNC
 * meanwhile form the next, up to PULL_GROUP_MAX. Up to PULL_MAX_FILES
 * jobs run at once (files waiting in SYNC and FINISH included, so at most
 * 2 * PULL_MAX_FILES descriptors are open); a directory or deletion never
 * starts while a job on a name above or below it runs, and a batch never
 * mixes the phases, so a directory exists before anything is put in it
 * and is removed after what was in it.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "shoal/conflict.h"
#include "shoal/conn.h"
#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/hash.h"
#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/model.h"
#include "shoal/pull.h"
#include "shoal/scan.h"
#include "shoal/util.h"
#include "shoal/version.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE	(1 << 0)
#endif

#define PULL_RETRY_MS		100	/* every peer busy: look again */
#define PULL_DIRECT_MIN		(4 * 1024 * 1024) /* invariant 10 */
#define PULL_DIRECT_ALIGN	UTIL_BIGBUF_ALIGN /* offsets, sizes, buffers */
#define PULL_NAME_LOG		128	/* escaped name length in logs */

enum phase {
	PHASE_DIRS = 0,
	PHASE_FILES,
	PHASE_DELETES
};

enum job_op {
	OP_FILE = 0,
	OP_DIR,
	OP_SYMLINK,
	OP_DELETE
};

enum job_state {
	JOB_PREP = 0,
	JOB_FETCH,
	JOB_SYNC,		/* blocks written; waits for a group */
	JOB_FINISH,		/* in the running group */
	JOB_COMMIT
};

/* Per-block state in a file job. */
#define BLK_DONE	0x1u	/* in the temp file, verified */
#define BLK_BUSY	0x2u	/* a copy, request or write is under way */
#define BLK_LOCAL_TRIED	0x4u	/* the block index was asked */

struct item {
	char		*name;		/* owned */
	enum phase	 phase;
};

struct pull;

struct job {
	struct pull	*p;
	struct job	*next;		/* p->jobs */
	uv_work_t	 work;		/* stage work; one at a time */
	enum job_state	 state;
	enum job_op	 op;
	char		*name;		/* owned */
	const char	*base;		/* into name */
	struct record	*global;	/* owned */
	struct record	*local;		/* owned; NULL if none */
	bool		 conflict;	/* move the local regular file aside */
	bool		 ignore_perms;
	time_t		 now;

	/* Stage results, written by the pool job, read on the loop. */
	int		 rc;
	int		 dirfd;
	int		 tmpfd;
	int		 dfd;		/* the temp file opened O_DIRECT, or -1
					 * (invariant 10) */
	bool		 direct_off;	/* dfd refused a write: do not use */
	char		*tmpname;	/* owned; base name of the temp file */
	bool		 was_absent;	/* nothing at the target at PREP */
	bool		 disk_global;	/* the target already is the global */
	bool		 rescan;	/* the disk differs from our record */
	bool		 bad_name;	/* a symlink or file on the way */
	uint64_t	 ino, dev;	/* of the new entry */
	uint64_t	 dir_ino, dir_dev; /* of its directory (groups) */
	uint8_t		*wbuf;		/* owned; the lone block of a one-block
					 * file, from a peer, for the group to
					 * write; counted in p->inflight */
	int32_t		 wsize;
	bool		 placed;	/* renamed into place (groups) */
	int		 late_rc;	/* failure after the change was made */
	char		*copy_name;	/* owned; conflict copy made */
	char		*version_name;	/* owned; kept under .stversions */
	char		**pruned;	/* owned; old copies removed (max_conflicts) */
	size_t		 npruned;
	uint64_t	 reused_bytes;
	uint64_t	 reused_blocks;
	uint64_t	 space_need;	/* SH_ESPACE: bytes still to write, */
	uint64_t	 space_avail;	/* bytes free, */
	uint64_t	 space_others;	/* of them promised to other files, */
	uint64_t	 space_keep;	/* and bytes min_disk_free keeps */
	uint64_t	 space_promise;	/* its part of p->space_promised */

	/* Blocks (file jobs, loop thread). */
	uint8_t		*bstate;	/* owned; BLK_* per block */
	uint32_t	*btried;	/* owned; per block, peers that failed
					 * it or were asked (bit = peers[k]) */
	size_t		 cursor;	/* next block never looked at */
	size_t		*retry;		/* owned; blocks to look at again */
	size_t		 retry_count;
	size_t		 done_count;
	int64_t		 peers[PULL_MAX_PEERS];
	size_t		 peer_count;
	int		 ops;		/* block operations under way */
	int		 fail_rc;	/* first block failure, or 0 */
};

/* One block copied from a local file or received from a peer. */
struct blk_op {
	uv_work_t	 work;
	struct job	*j;
	size_t		 idx;
	int32_t		 size;
	uint8_t		 hash[RECORD_HASH_LEN];
	int64_t		 dst_off;
	char		*src_name;	/* owned; local copy source, or NULL */
	int64_t		 src_off;
	uint8_t		*buf;		/* owned */
	bool		 verify;	/* network data not hashed by conn */
	const char	*root;		/* the pull's root (immutable) */
	int		 tmpfd;
	int		 dfd;		/* O_DIRECT descriptor, or -1 */
	int		 rc;
	bool		 network;
	bool		 direct_refused; /* dfd said EINVAL: buffered now */
	bool		 wrote_direct;	/* through dfd */
};

/*
 * A finish group: files whose blocks are all written, finished by one
 * pool job so that they share the syncs (invariant 4). At most one runs
 * per pull; its jobs stay in p->jobs (state JOB_FINISH).
 */
struct group {
	uv_work_t	 work;
	struct pull	*p;
	struct job	**jobs;		/* owned array of p's jobs */
	size_t		 count;
	int		 rc;		/* the temp files could not be written
					 * or synced: nothing was renamed */
};

struct pull {
	struct pull_params	 p;		/* strings replaced by copies */
	char			*folder_id;	/* owned */
	char			*root;		/* owned */
	char			*marker;	/* owned; root/.stfolder */
	uv_timer_t		 timer;
	uv_work_t		 work;		/* root check */
	int			 root_rc;
	struct pull_progress	 prog;

	struct item		*batch;		/* owned */
	size_t			 batch_count;
	size_t			 bi;		/* next item to start */
	enum phase		 cur_phase;
	struct util_strset	 seen;		/* names of this pass */

	struct job		*jobs;
	int			 njobs;
	struct group		*group;		/* owned; running, or NULL */
	int			 ops;		/* pool works, requests, timer */
	uint64_t		 inflight;	/* block bytes */
	/* Bytes that files past check_space may still write (pool threads
	 * add, the loop takes off as blocks land and jobs end). */
	_Atomic uint64_t	 space_promised;
	bool			 started;	/* root checked */
	bool			 cancelled;
	bool			 timer_armed;
	bool			 finishing;
	int			 fatal;		/* stops the pass */
	bool			 in_advance;
	bool			 in_pump;
	bool			 pump_again;

	/* Group commit (invariant 9): records of finished files, stored in
	 * one transaction per PULL_COMMIT_BATCH or at batch and pass ends. */
	struct record		**cq;		/* owned records */
	size_t			 cq_count;
};


#define PULL_COMMIT_BATCH	256
/* Files finished by one group (in practice at most PULL_MAX_FILES). */
#define PULL_GROUP_MAX		256
/* Up to this many files (or directories) a group fsyncs one by one;
 * past it, one syncfs per file system costs fewer device flushes. */
#define PULL_SYNC_EACH		2

static void	advance(struct pull *p);
static void	flush_commits(struct pull *p);
static void	pump(struct pull *p);
static void	job_check(struct job *j);
static void	maybe_finish(struct pull *p);
static void	start_group(struct pull *p);
static void	arm_timer(struct pull *p, uint64_t ms);

/* Small helpers */

static const char *
esc(const char *name, char *buf, size_t size)
{
	return log_escape(name, buf, size);
}

static bool
is_fatal_io(int rc)
{
	return rc == -ENOSPC || rc == -EIO || rc == -EDQUOT || rc == -EROFS;
}

static uint64_t
counter_of(const struct record_vector *v, uint64_t id)
{
	size_t	i;

	for (i = 0; i < v->count; i++)
		if (v->counters[i].id == id)
			return v->counters[i].value;
	return 0;
}


char *
pull_temp_name(const char *base)
{
	uint8_t	h[RECORD_HASH_LEN];
	char	hex[2 * RECORD_HASH_LEN + 1];

	if (strlen(base) <= PULL_TEMP_MAX_BASE)
		return xasprintf("%s%s%s", PULL_TEMP_PREFIX, base,
		    PULL_TEMP_SUFFIX);
	if (hash_sha256(base, strlen(base), h) != 0)
		memset(h, 0, sizeof(h));
	util_hex(h, sizeof(h), hex);
	return xasprintf("%s%s%s", PULL_TEMP_PREFIX, hex, PULL_TEMP_SUFFIX);
}

/* Pool helpers: they touch only their arguments. */


/* lstat `base` in dirfd; for a symlink also read its target (caller
 * frees *target). *absent when there is nothing. 0 or -errno. */
static int
disk_look(int dirfd, const char *base, struct stat *st, bool *absent,
    char **target)
{
	char	buf[PATH_MAX];
	ssize_t	n;

	*absent = false;
	*target = NULL;
	if (fstatat(dirfd, base, st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT) {
			*absent = true;
			return 0;
		}
		return -errno;
	}
	if (S_ISLNK(st->st_mode)) {
		n = readlinkat(dirfd, base, buf, sizeof(buf) - 1);
		if (n < 0)
			return -errno;
		buf[n] = '\0';
		*target = xstrdup(buf);
	}
	return 0;
}

/*
 * Open the job's parent directory (no symlink followed: invariant 5) into
 * j->dirfd and look at the entry. A parent that is not a directory inside
 * the folder marks the name as one we cannot write (bad_name).
 */
static int
job_look(struct job *j, struct stat *st, bool *absent, char **target)
{
	int	rc;

	rc = util_open_parent(j->p->root, j->name);
	if (rc < 0) {
		if (rc == -ELOOP || rc == -ENOTDIR)
			j->bad_name = true;
		return rc;
	}
	j->dirfd = rc;
	return disk_look(j->dirfd, j->base, st, absent, target);
}

/* Does our local record `l` still describe what is on disk (invariant 1)?
 * A record that is missing, deleted or invalid (other than a flagged
 * receive-only change) describes an absent entry. */
static bool
disk_matches(const struct record *l, const struct stat *st, bool absent,
    const char *target, bool ignore_perms)
{
	if (l == NULL || l->deleted ||
	    (l->invalid && !(l->local_flags & RECORD_LOCAL_RECEIVEONLY)))
		return absent;
	if (absent)
		return false;
	switch (l->type) {
	case RECORD_TYPE_FILE:
		if (!S_ISREG(st->st_mode) || st->st_size != l->size ||
		    st->st_mtim.tv_sec != l->modified_s ||
		    st->st_mtim.tv_nsec != l->modified_ns)
			return false;
		if (l->inode != 0 && (uint64_t)st->st_ino != l->inode)
			return false;
		if (!ignore_perms && !l->no_permissions &&
		    (st->st_mode & 0777) != (l->permissions & 0777))
			return false;
		return true;
	case RECORD_TYPE_DIRECTORY:
		return S_ISDIR(st->st_mode);
	case RECORD_TYPE_SYMLINK:
		return S_ISLNK(st->st_mode) && target != NULL &&
		    l->symlink_target != NULL &&
		    strcmp(target, l->symlink_target) == 0;
	}
	return false;
}

/* Read `size` bytes at `off` of fd (past the page cache through dfd, or
 * -1, when it is not there: util_pread_uncached) into buf and check them
 * against hash. 0, SH_ECONFLICT on mismatch or short read, or -errno. */
static int
read_verified(int fd, int dfd, uint8_t *buf, int32_t size, int64_t off,
    const uint8_t hash[RECORD_HASH_LEN])
{
	uint8_t	h[RECORD_HASH_LEN];
	ssize_t	n;
	int	rc;

	n = util_pread_uncached(fd, dfd, buf, (size_t)size, (off_t)off);
	if (n < 0)
		return (int)n;
	if (n != size)
		return SH_ECONFLICT;
	rc = hash_sha256(buf, (size_t)size, h);
	if (rc != 0)
		return rc;
	return memcmp(h, hash, RECORD_HASH_LEN) == 0 ? 0 : SH_ECONFLICT;
}

/* Does the regular file open as fd hold exactly the blocks of g? */
static bool
content_is(int fd, const struct record *g)
{
	uint8_t	*buf = NULL;
	size_t	 i;
	bool	 ok = true;

	for (i = 0; i < g->block_count && ok; i++) {
		if (g->blocks[i].size == 0)
			continue;
		buf = xrealloc(buf, (size_t)g->blocks[i].size);
		ok = read_verified(fd, -1, buf, g->blocks[i].size,
		    g->blocks[i].offset, g->blocks[i].hash) == 0;
	}
	free(buf);
	return ok;
}

/*
 * Rename within dirfd (no symlink on the way is followed: invariant 5). A
 * rename into an absent name uses RENAME_NOREPLACE (invariant 1): -EEXIST
 * means something appeared meanwhile. util_renameat lets tests inject
 * faults.
 */
static int
rename_in(int dirfd, const char *from, const char *to, bool noreplace)
{
	return util_wd_renameat(dirfd, from, to, noreplace);
}


static int
marker_check(const char *marker)
{
	struct stat	st;

	if (stat(marker, &st) != 0 || !S_ISDIR(st.st_mode))
		return SH_EFOLDER;
	return 0;
}

/* Move a local regular file out of the way: to its conflict name, unless
 * it already is a conflict copy (bep-brief §10.7: then it is replaced). */
static int
move_aside(struct job *j)
{
	int	rc;

	if (conflict_is_copy(j->name))
		return 0;
	if (j->p->p.max_conflicts == 0) {
		/* The folder keeps no copies (bep-brief §10.7): the losing
		 * version is replaced like any older one. */
		LOG_INFO("pull", "folder \"%s\": max_conflicts is 0: the "
		    "local version of a file in conflict is not kept",
		    j->p->folder_id);
		return 0;
	}
	rc = conflict_move_at(j->dirfd, j->name, j->now,
	    j->global->modified_by, &j->copy_name);
	return rc;
}

/* Pool: the new version is in place next to its new conflict copy; older
 * copies of the name beyond max_conflicts go (conflict.c (5)). Only now,
 * so that a failed placement, which puts the user's file back, removes
 * nothing. A failure here is logged and changes nothing else. */
static void
prune_copies(struct job *j)
{
	int	rc;

	if (j->copy_name == NULL || j->p->p.max_conflicts < 0)
		return;
	rc = conflict_prune_at(j->dirfd, j->name, j->copy_name,
	    j->p->p.max_conflicts, &j->pruned, &j->npruned);
	if (rc != 0)
		LOG_WARN("pull", "folder \"%s\": cannot look for old conflict "
		    "copies: %s", j->p->folder_id, sh_strerror(rc));
}

/* Pool: a local regular file about to be replaced or deleted goes to
 * .stversions first when the folder keeps versions (version.c); *absent
 * is then true. A failure leaves the file in place and fails the job. */
static int
keep_version(struct job *j, const struct stat *st, bool *absent)
{
	int	rc;

	if (j->p->p.versioning == CONFIG_VERSIONING_NONE ||
	    !S_ISREG(st->st_mode))
		return 0;
	rc = version_keep_at(j->p->root, j->dirfd, j->name,
	    j->p->p.versioning, j->now, &j->version_name);
	if (rc != 0) {
		LOG_WARN("pull", "folder \"%s\": cannot keep a version of a "
		    "file before replacing it: %s; not replaced",
		    j->p->folder_id, sh_strerror(rc));
		return rc;
	}
	*absent = true;
	return 0;
}

/* Pool: the new entry could not be put in place: the kept version goes
 * back under its name (invariant 1). */
static void
unkeep_version(struct job *j)
{
	if (j->version_name != NULL && version_undo_at(j->p->root, j->dirfd,
	    j->name, j->version_name) == 0) {
		free(j->version_name);
		j->version_name = NULL;
	}
}

/*
 * Pool: a second descriptor of the temporary file for O_DIRECT writes
 * (invariant 10), when the file is big enough and its blocks aligned; a
 * file system without O_DIRECT leaves j->dfd at -1.
 */
static void
open_direct(struct job *j)
{
	const struct record *g = j->global;

	if (g->size < PULL_DIRECT_MIN || g->block_count < 2 ||
	    g->blocks[0].size % PULL_DIRECT_ALIGN != 0)
		return;
	j->dfd = util_open_direct_twin(j->dirfd, j->tmpname, j->tmpfd,
	    O_WRONLY);
}

/*
 * Pool: would writing the rest of the file (what the temporary file does
 * not hold yet) leave less free space than min_disk_free keeps? Then
 * SH_ESPACE: the file waits for space while smaller ones may still fit,
 * and a temporary file left empty goes again. Files prepared at the same
 * time all see the same free space, so what the ones that passed may
 * still write is promised (p->space_promised) and not free for the next.
 * Space that cannot be measured (or a file system that reports a size of
 * 0) does not stop the pull (a full disk still fails the writes).
 */
static int
check_space(struct job *j, const struct stat *tst)
{
	struct pull	*p = j->p;
	const struct config_space *min = &p->p.min_disk_free;
	uint64_t	avail, total, size = (uint64_t)j->global->size;
	uint64_t	promised, left;
	int		rc;

	if (min->ppm == 0 && min->bytes == 0)
		return 0;
	/* Some FUSE and virtual file systems report no size at all. */
	rc = util_disk_space(j->tmpfd, &avail, &total);
	if (rc != 0 || total == 0)
		return 0;
	j->space_need = size > j->reused_bytes ? size - j->reused_bytes : 0;
	j->space_keep = config_space_bytes(min, total);
	j->space_avail = avail;
	promised = atomic_load(&p->space_promised);
	do {
		left = avail > promised ? avail - promised : 0;
		j->space_others = promised;
		if (left < j->space_keep ||
		    left - j->space_keep < j->space_need)
			break;
		if (atomic_compare_exchange_weak(&p->space_promised,
		    &promised, promised + j->space_need)) {
			j->space_promise = j->space_need;
			return 0;
		}
	} while (1);
	if (tst->st_size == 0)
		(void)util_wd_unlinkat(j->dirfd, j->tmpname, 0);
	return SH_ESPACE;
}

/* Pool work: file, prepare. */

static void
file_prep_work(uv_work_t *req)
{
	struct job	*j = req->data;
	const struct record *g = j->global;
	struct stat	 st, tst;
	char		*target = NULL;
	uint8_t		*buf = NULL;
	bool		 absent;
	size_t		 i;
	int		 fd = -1, rc;

	rc = job_look(j, &st, &absent, &target);
	if (rc != 0)
		goto out;
	if (!disk_matches(j->local, &st, absent, target, j->ignore_perms)) {
		/* Maybe an earlier pass renamed the file into place and
		 * stopped before storing the record (invariant 4). */
		if (S_ISREG(st.st_mode) && !absent && st.st_size == g->size &&
		    st.st_mtim.tv_sec == g->modified_s &&
		    st.st_mtim.tv_nsec == g->modified_ns &&
		    (j->ignore_perms || g->no_permissions ||
		    (st.st_mode & 0777) == (g->permissions & 0777))) {
			fd = openat(j->dirfd, j->base, O_RDONLY | O_NOFOLLOW |
			    O_CLOEXEC | O_NONBLOCK);
			if (fd >= 0 && fstat(fd, &tst) == 0 &&
			    S_ISREG(tst.st_mode) && content_is(fd, g)) {
				j->disk_global = true;
				j->ino = (uint64_t)tst.st_ino;
				j->dev = (uint64_t)tst.st_dev;
				rc = 0;
				goto out;
			}
		}
		j->rescan = true;
		rc = 0;
		goto out;
	}
	j->was_absent = absent;

	j->tmpfd = util_wd_openat(j->dirfd, j->tmpname, O_RDWR | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
	if (j->tmpfd < 0) {
		rc = j->tmpfd;
		j->tmpfd = -1;
		if (rc == -ELOOP)
			j->bad_name = true;
		goto out;
	}
	if (fstat(j->tmpfd, &tst) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(tst.st_mode)) {
		j->bad_name = true;
		rc = -EINVAL;
		goto out;
	}
	/* Resume: keep every block the temp file already holds intact
	 * (design.md §6), each verified (invariant 3). */
	for (i = 0; i < g->block_count; i++) {
		const struct record_block *b = &g->blocks[i];

		if (b->size == 0) {
			j->bstate[i] = BLK_DONE;
			continue;
		}
		if (b->offset + b->size > tst.st_size)
			continue;
		buf = xrealloc(buf, (size_t)b->size);
		if (read_verified(j->tmpfd, -1, buf, b->size, b->offset,
		    b->hash) == 0) {
			j->bstate[i] = BLK_DONE;
			j->reused_bytes += (uint64_t)b->size;
			j->reused_blocks++;
		}
	}
	rc = check_space(j, &tst);
	if (rc != 0)
		goto out;
	open_direct(j);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(target);
	free(buf);
	j->rc = rc;
}

/*
 * Pool: write the block a one-block file kept in memory, and give the
 * complete temporary file its size, mode and mtime. This comes before the
 * group's sync, so one sync makes data and metadata durable before the
 * rename publishes them. The inode and device are those of the new entry
 * (a rename keeps them).
 */
static int
finish_prepare(struct job *j)
{
	const struct record *g = j->global;
	struct timespec	 ts[2];
	struct stat	 st;
	int		 rc;

	if (j->wbuf != NULL) {
		rc = util_pwrite_all(j->tmpfd, j->wbuf, (size_t)j->wsize,
		    (off_t)g->blocks[0].offset);
		if (rc != 0)
			goto out;
	}
	if (ftruncate(j->tmpfd, (off_t)g->size) != 0) {
		rc = -errno;
		goto out;
	}
	if (fchmod(j->tmpfd, j->ignore_perms || g->no_permissions ? 0644 :
	    (mode_t)(g->permissions & 0777)) != 0) {
		rc = -errno;
		goto out;
	}
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)g->modified_s;
	ts[1].tv_nsec = g->modified_ns;
	if (futimens(j->tmpfd, ts) != 0) {
		rc = -errno;
		goto out;
	}
	if (fstat(j->tmpfd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	j->ino = (uint64_t)st.st_ino;
	j->dev = (uint64_t)st.st_dev;
	rc = 0;
out:
	return rc;
}

/*
 * Pool: put one durable temporary file in place (invariants 1, 2, 6).
 * Sets j->placed once the rename is done and j->rescan when the user got
 * there first. 0 or -errno.
 */
static int
finish_place(struct job *j)
{
	struct stat	 st;
	char		*target = NULL;
	bool		 absent;
	int		 rc;

	rc = marker_check(j->p->marker);
	if (rc != 0)
		goto out;
	/* Invariant 1, again: the user may have written since PREP. */
	rc = disk_look(j->dirfd, j->base, &st, &absent, &target);
	if (rc != 0)
		goto out;
	if (j->was_absent ? !absent :
	    !disk_matches(j->local, &st, absent, target, j->ignore_perms)) {
		j->rescan = true;
		rc = 0;
		goto out;
	}
	if (!absent && S_ISREG(st.st_mode) && j->conflict) {
		rc = move_aside(j);
		if (rc != 0)
			goto out;
		absent = j->copy_name != NULL;
	} else if (!absent && S_ISDIR(st.st_mode)) {
		/* A directory in the way goes only when empty (§10.3). */
		rc = util_wd_unlinkat(j->dirfd, j->base, AT_REMOVEDIR);
		if (rc != 0)
			goto out;
		absent = true;
	}
	if (!absent) {
		rc = keep_version(j, &st, &absent);
		if (rc != 0)
			goto out;
	}
	rc = rename_in(j->dirfd, j->tmpname, j->base, absent);
	if (rc != 0)
		unkeep_version(j);
	if (rc != 0 && j->copy_name != NULL) {
		/* Put the user's file back under its name (invariant 1). */
		const char	*cb = strrchr(j->copy_name, '/');

		cb = cb != NULL ? cb + 1 : j->copy_name;
		if (util_wd_renameat(j->dirfd, cb, j->base, true) == 0) {
			free(j->copy_name);
			j->copy_name = NULL;
		}
	}
	if (rc == -EEXIST) {
		j->rescan = true;
		rc = 0;
		goto out;
	}
	if (rc != 0)
		goto out;
	j->placed = true;
	prune_copies(j);
	/* For sync_renames: which directory the entry went to. */
	if (fstat(j->dirfd, &st) == 0) {
		j->dir_dev = (uint64_t)st.st_dev;
		j->dir_ino = (uint64_t)st.st_ino;
	} else {
		/* Unknown: count it as a directory of its own. */
		j->dir_dev = 0;
		j->dir_ino = 0;
	}
	rc = 0;
out:
	free(target);
	return rc;
}

/* The index of the first live job of the group on file system `dev`,
 * or g->count when there is none. Live: prepared without error (and,
 * with `placed`, renamed into place). */
static size_t
group_first_on(const struct group *g, uint64_t dev, bool placed)
{
	size_t	i;

	for (i = 0; i < g->count; i++)
		if (g->jobs[i]->rc == 0 && (!placed || g->jobs[i]->placed) &&
		    g->jobs[i]->dev == dev)
			break;
	return i;
}

/*
 * Pool: make the temporary files of the group's live jobs durable
 * (invariant 4). A few files are fsynced one by one, so a lone big file
 * does not flush everything else the file system holds; more share one
 * syncfs per file system. syncfs reports only the write-back errors that
 * happened since the descriptor it is given was opened, so each file is
 * then asked for its own (sync_file_range with WAIT_AFTER returns the
 * file's write-back error, and costs nothing once the data is clean).
 * Any failure fails the whole group: nothing of it is renamed.
 */
static int
sync_temps(struct group *g, size_t live)
{
	struct job	*j;
	size_t		 i;
	int		 rc = 0;

	for (i = 0; rc == 0 && i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc != 0)
			continue;
		if (live <= PULL_SYNC_EACH)
			rc = util_fsync(j->tmpfd);
		else if (group_first_on(g, j->dev, false) == i)
			rc = util_syncfs(j->tmpfd);
	}
	for (i = 0; rc == 0 && live > PULL_SYNC_EACH && i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc == 0 && sync_file_range(j->tmpfd, 0, 0,
		    SYNC_FILE_RANGE_WAIT_AFTER) != 0)
			rc = -errno;
	}
	return rc;
}

/* Is the group's job i the first renamed one into its directory? */
static bool
group_dir_first(const struct group *g, size_t i)
{
	const struct job	*j = g->jobs[i], *k;
	size_t			 m;

	if (j->dir_ino == 0)
		return true;
	for (m = 0; m < i; m++) {
		k = g->jobs[m];
		if (k->rc == 0 && k->placed && k->dir_ino == j->dir_ino &&
		    k->dir_dev == j->dir_dev)
			return false;
	}
	return true;
}

/*
 * Pool: make the group's renames durable (invariant 4), before any of
 * their records is queued (invariant 9): each directory is fsynced when
 * they are few, else one syncfs per file system.
 */
static int
sync_renames(struct group *g)
{
	struct job	*j;
	size_t		 i, ndirs = 0;
	int		 rc = 0;

	for (i = 0; i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc == 0 && j->placed && group_dir_first(g, i))
			ndirs++;
	}
	for (i = 0; rc == 0 && i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc != 0 || !j->placed)
			continue;
		if (ndirs <= PULL_SYNC_EACH) {
			if (group_dir_first(g, i))
				rc = util_fsync(j->dirfd);
		} else if (group_first_on(g, j->dev, true) == i)
			rc = util_syncfs(j->dirfd);
	}
	return rc;
}

/*
 * Pool work: finish a group of files whose blocks are all written
 * (invariants 1, 4, 6): size, mode and mtime of each; one sync for all
 * the temporary files; the checks and rename of each; one sync for all
 * the renames. Results go to each job (rc, rescan, placed, late_rc) and
 * to g->rc when nothing may be renamed.
 */
static void
group_work(uv_work_t *req)
{
	struct group	*g = req->data;
	struct job	*j;
	size_t		 i, live = 0;
	int		 rc;

	for (i = 0; i < g->count; i++) {
		j = g->jobs[i];
		j->rc = finish_prepare(j);
		if (j->rc == 0)
			live++;
		else if (is_fatal_io(j->rc) && g->rc == 0)
			/* The disk refuses writes: rename nothing
			 * (invariant 7). */
			g->rc = j->rc;
	}
	if (live == 0 || g->rc != 0)
		goto out;
	rc = sync_temps(g, live);
	if (rc != 0) {
		g->rc = rc;
		goto out;
	}
	for (i = 0; i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc == 0)
			j->rc = finish_place(j);
	}
	/* The renames are done: the records must follow even if they
	 * cannot be synced, and the error then stops the pass. */
	rc = sync_renames(g);
	for (i = 0; rc != 0 && i < g->count; i++) {
		j = g->jobs[i];
		if (j->rc == 0 && j->placed)
			j->late_rc = rc;
	}
out:
	return;
}

/* Pool work: directory (bep-brief §10.3: permissions, no mtime). */
static void
dir_work(uv_work_t *req)
{
	struct job	*j = req->data;
	const struct record *g = j->global;
	struct stat	 st;
	char		*target = NULL;
	bool		 absent;
	int		 rc;

	rc = job_look(j, &st, &absent, &target);
	if (rc != 0)
		goto out;
	if (!absent && !S_ISDIR(st.st_mode)) {
		if (!disk_matches(j->local, &st, absent, target,
		    j->ignore_perms)) {
			j->rescan = true;
			goto out;
		}
		rc = marker_check(j->p->marker);
		if (rc != 0)
			goto out;
		if (S_ISREG(st.st_mode) && j->conflict) {
			rc = move_aside(j);
			if (rc != 0)
				goto out;
		}
		if (j->copy_name == NULL) {
			rc = keep_version(j, &st, &absent);
			if (rc == 0 && !absent)
				rc = util_wd_unlinkat(j->dirfd, j->base, 0);
			if (rc != 0)
				goto out;
		}
		absent = true;
	}
	if (absent) {
		rc = marker_check(j->p->marker);
		if (rc != 0)
			goto out;
		/* Private until its mode is set, unless no mode is set. */
		rc = util_wd_mkdirat(j->dirfd, j->base, j->ignore_perms ||
		    g->no_permissions ? 0777 : 0700);
		if (rc != 0)
			goto out;
	}
	if (!j->ignore_perms && !g->no_permissions &&
	    fchmodat(j->dirfd, j->base, (mode_t)(g->permissions & 0777), 0) !=
	    0) {
		rc = -errno;
		goto out;
	}
	if (fstatat(j->dirfd, j->base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		rc = -errno;
		goto out;
	}
	j->ino = (uint64_t)st.st_ino;
	j->dev = (uint64_t)st.st_dev;
	if (absent)
		j->late_rc = util_fsync(j->dirfd);
	prune_copies(j);
	rc = 0;
out:
	free(target);
	j->rc = rc;
}

/* Pool work: symlink, made at the temp name and renamed (never
 * followed). */
static void
symlink_work(uv_work_t *req)
{
	struct job	*j = req->data;
	const struct record *g = j->global;
	struct stat	 st;
	char		*target = NULL;
	bool		 absent;
	int		 rc;

	rc = job_look(j, &st, &absent, &target);
	if (rc != 0)
		goto out;
	if (!absent && S_ISLNK(st.st_mode) &&
	    strcmp(target, g->symlink_target) == 0) {
		j->disk_global = true;
		goto stat;
	}
	if (!disk_matches(j->local, &st, absent, target, j->ignore_perms)) {
		j->rescan = true;
		goto out;
	}
	rc = marker_check(j->p->marker);
	if (rc != 0)
		goto out;
	rc = util_wd_unlinkat(j->dirfd, j->tmpname, 0);
	if (rc != 0 && rc != -ENOENT)
		goto out;
	rc = util_wd_symlinkat(g->symlink_target, j->dirfd, j->tmpname);
	if (rc != 0)
		goto out;
	if (!absent && S_ISREG(st.st_mode) && j->conflict) {
		rc = move_aside(j);
		if (rc != 0)
			goto out_tmp;
		absent = j->copy_name != NULL;
	} else if (!absent && S_ISDIR(st.st_mode)) {
		rc = util_wd_unlinkat(j->dirfd, j->base, AT_REMOVEDIR);
		if (rc != 0)
			goto out_tmp;
		absent = true;
	}
	if (!absent) {
		rc = keep_version(j, &st, &absent);
		if (rc != 0)
			goto out_tmp;
	}
	rc = rename_in(j->dirfd, j->tmpname, j->base, absent);
	if (rc != 0)
		unkeep_version(j);
	if (rc == -EEXIST) {
		j->rescan = true;
		rc = 0;
		goto out_tmp;
	}
	if (rc != 0)
		goto out_tmp;
	j->late_rc = util_fsync(j->dirfd);
	prune_copies(j);
stat:
	if (fstatat(j->dirfd, j->base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		rc = -errno;
		goto out;
	}
	j->ino = (uint64_t)st.st_ino;
	j->dev = (uint64_t)st.st_dev;
	rc = 0;
	goto out;
out_tmp:
	(void)util_wd_unlinkat(j->dirfd, j->tmpname, 0);
out:
	free(target);
	j->rc = rc;
}

/* Pool work: deletion. A directory goes only when empty (design.md §6). */

/* Levels of deletable directories removed below a deleted one: each holds
 * a descriptor while the next is read. */
#define PULL_DELETE_DEPTH	32
/* Entries of one directory a deletion looks at. */
#define PULL_DELETE_NAMES	4096

struct del_ent {
	char	*name;
	bool	 dir;
};

static void
del_ents_free(struct del_ent *e, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

/*
 * Open the directory `name` under `parent` (never through a symlink) and
 * read all its entries before anything is removed from it: removing while
 * readdir walks leaves what it returns next unspecified. 0, -ENOTEMPTY
 * past PULL_DELETE_NAMES entries, or -errno. On success *d_out stays open
 * for the removals (closedir) and *out is the caller's to free.
 */
static int
del_read(int parent, const char *name, DIR **d_out, struct del_ent **out,
    size_t *count)
{
	struct del_ent	*e = NULL;
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	size_t		 n = 0;
	int		 fd, rc = 0;

	*out = NULL;
	*count = 0;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = util_fdopendir(fd);
	if (d == NULL)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			rc = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n >= PULL_DELETE_NAMES) {
			rc = -ENOTEMPTY;
			break;
		}
		e = xreallocarray(e, n + 1, sizeof(*e));
		e[n].name = xstrdup(de->d_name);
		e[n].dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN)
			e[n].dir = fstatat(fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		n++;
	}
	if (rc != 0) {
		del_ents_free(e, n);
		closedir(d);
		return rc;
	}
	*d_out = d;
	*out = e;
	*count = n;
	return 0;
}

/*
 * Remove the directory `name` under `parent` and everything in it: it is
 * ignored and deletable, and so is what it holds (bep-brief §13). Symlinks
 * are removed, never followed. 0 or -errno; -ENOTEMPTY deeper than
 * PULL_DELETE_DEPTH.
 */
static int
remove_tree(int parent, const char *name, int depth)
{
	struct del_ent	*e;
	DIR		*d;
	size_t		 n, i;
	int		 rc;

	if (depth > PULL_DELETE_DEPTH)
		return -ENOTEMPTY;
	rc = del_read(parent, name, &d, &e, &n);
	if (rc != 0)
		return rc;
	for (i = 0; rc == 0 && i < n; i++) {
		if (e[i].dir)
			rc = remove_tree(dirfd(d), e[i].name, depth + 1);
		else
			rc = util_wd_unlinkat(dirfd(d), e[i].name, 0);
	}
	del_ents_free(e, n);
	closedir(d);
	if (rc == 0)
		rc = util_wd_unlinkat(parent, name, AT_REMOVEDIR);
	return rc;
}

/*
 * A directory to delete holds entries: remove them if every one is a file,
 * symlink or directory that .stignore marks deletable ((?d), bep-brief
 * §13), so ignored clutter (.DS_Store, __pycache__/) does not keep it
 * alive; a deletable directory goes with all it holds. Anything else (an
 * ignored entry without (?d), a file or directory we do not know) keeps
 * the directory and everything in it: nothing is removed unless all of
 * it may be. 0 when emptied. Pool thread; the ignore patterns are not
 * swapped while a pull runs.
 */
static int
remove_deletable(struct job *j)
{
	const struct ignore	*ig = j->p->p.ignore;
	struct del_ent		*e;
	DIR			*d;
	char			*rel;
	size_t			 n, i;
	int			 rc;

	if (ig == NULL)
		return -ENOTEMPTY;
	rc = del_read(j->dirfd, j->base, &d, &e, &n);
	if (rc != 0)
		return rc;
	for (i = 0; rc == 0 && i < n; i++) {
		rel = xasprintf("%s/%s", j->name, e[i].name);
		if (ignore_match(ig, rel) != IGNORE_YES_DELETABLE)
			rc = -ENOTEMPTY;
		free(rel);
	}
	for (i = 0; rc == 0 && i < n; i++) {
		if (e[i].dir)
			rc = remove_tree(dirfd(d), e[i].name, 1);
		else
			rc = util_wd_unlinkat(dirfd(d), e[i].name, 0);
	}
	del_ents_free(e, n);
	closedir(d);
	return rc;
}

static void
delete_work(uv_work_t *req)
{
	struct job	*j = req->data;
	struct stat	 st;
	char		*target = NULL;
	bool		 absent;
	int		 rc;

	rc = util_open_parent(j->p->root, j->name);
	if (rc == -ENOENT || rc == -ENOTDIR || rc == -ELOOP) {
		/* No such parent directory inside the folder: the name
		 * cannot exist here, so there is nothing to remove. */
		j->was_absent = true;
		rc = 0;
		goto out;
	}
	if (rc < 0)
		goto out;
	j->dirfd = rc;
	if (j->global->type == RECORD_TYPE_FILE) {
		/* A temporary file a pass left (the deletion came while the
		 * file was under way) can never be finished now. */
		char	*tmp = pull_temp_name(j->base);

		(void)util_wd_unlinkat(j->dirfd, tmp, 0);
		free(tmp);
	}
	rc = disk_look(j->dirfd, j->base, &st, &absent, &target);
	if (rc != 0)
		goto out;
	if (absent) {
		j->was_absent = true;
		goto out;
	}
	if (!disk_matches(j->local, &st, absent, target, j->ignore_perms)) {
		j->rescan = true;
		goto out;
	}
	rc = marker_check(j->p->marker);
	if (rc != 0)
		goto out;
	if (S_ISREG(st.st_mode) && j->conflict) {
		rc = move_aside(j);
		if (rc != 0)
			goto out;
		prune_copies(j);
	}
	if (j->copy_name == NULL) {
		absent = false;
		rc = keep_version(j, &st, &absent);
		if (rc == 0 && !absent)
			rc = util_wd_unlinkat(j->dirfd, j->base,
			    S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
	}
	if (rc != 0) {
		/* Ignored files marked (?d) do not keep a directory alive. */
		if (rc == -ENOTEMPTY && remove_deletable(j) == 0)
			rc = util_wd_unlinkat(j->dirfd, j->base, AT_REMOVEDIR);
		if (rc != 0)
			goto out;
	}
	j->late_rc = util_fsync(j->dirfd);
	rc = 0;
out:
	free(target);
	j->rc = rc;
}

/* Pool: write a verified block, directly when it can (invariant 10). */
static int
blk_write(struct blk_op *b)
{
	int	rc;

	if (b->dfd >= 0 && util_direct_aligned(b->buf, (size_t)b->size,
	    (off_t)b->dst_off)) {
		rc = util_pwrite_all(b->dfd, b->buf, (size_t)b->size,
		    (off_t)b->dst_off);
		b->wrote_direct = rc == 0;
		if (rc != -EINVAL)
			return rc;
		b->direct_refused = true;
	}
	return util_pwrite_all(b->tmpfd, b->buf, (size_t)b->size,
	    (off_t)b->dst_off);
}

/* Pool work: one block, copied from a local file or written from a
 * network buffer. */
static void
blk_work(uv_work_t *req)
{
	struct blk_op	*b = req->data;
	int		 fd = -1, sfd = -1, rc;

	if (!b->network) {
		const char	*base;
		int		 dfd;

		dfd = util_open_parent(b->root, b->src_name);
		if (dfd < 0) {
			rc = dfd;
			goto out;
		}
		base = strrchr(b->src_name, '/');
		base = base != NULL ? base + 1 : b->src_name;
		fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		    O_NONBLOCK);
		rc = fd < 0 ? -errno : 0;
		/* A big aligned block not in the page cache (the old
		 * version of a file we wrote with O_DIRECT) is read past
		 * it (invariant 10). */
		if (rc == 0 && b->size >= UTIL_BIGBUF_MIN &&
		    b->size % PULL_DIRECT_ALIGN == 0 &&
		    b->src_off % PULL_DIRECT_ALIGN == 0)
			sfd = util_open_direct_twin(dfd, base, fd, O_RDONLY);
		close(dfd);
		if (rc != 0)
			goto out;
		b->buf = util_bigbuf_alloc((size_t)b->size);
		rc = read_verified(fd, sfd, b->buf, b->size, b->src_off,
		    b->hash);
		if (rc != 0)
			goto out;
	} else if (b->verify) {
		uint8_t	got[RECORD_HASH_LEN];

		/* Invariant 3 for blocks of multi-block files: hashed here
		 * rather than on the loop, which decrypts the next ones. */
		if (hash_sha256(b->buf, (size_t)b->size, got) != 0 ||
		    sodium_memcmp(got, b->hash, RECORD_HASH_LEN) != 0) {
			rc = SH_EPROTO;
			goto out;
		}
	}
	rc = blk_write(b);
out:
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	b->rc = rc;
}

/* Loop side */

/* `bytes` of the job's file were written (or it ended: UINT64_MAX): they
 * are no longer promised, the disk's free space shows them now. */
static void
space_settle(struct job *j, uint64_t bytes)
{
	uint64_t	d = bytes < j->space_promise ? bytes : j->space_promise;

	if (d == 0)
		return;
	j->space_promise -= d;
	(void)atomic_fetch_sub(&j->p->space_promised, d);
}

static void
job_free(struct job *j)
{
	size_t	i;

	if (j == NULL)
		return;
	if (j->tmpfd >= 0)
		close(j->tmpfd);
	if (j->dfd >= 0)
		close(j->dfd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->name);
	free(j->tmpname);
	free(j->copy_name);
	free(j->version_name);
	for (i = 0; i < j->npruned; i++)
		free(j->pruned[i]);
	free(j->pruned);
	free(j->bstate);
	free(j->btried);
	free(j->retry);
	util_bigbuf_free(j->wbuf);
	record_free(j->global);
	record_free(j->local);
	free(j);
}

static void
set_fatal(struct pull *p, int rc, const char *what, const char *name)
{
	char	e[PULL_NAME_LOG];

	if (p->fatal != 0)
		return;
	p->fatal = rc;
	LOG_ERROR("pull", "folder \"%s\": %s \"%s\": %s; pull stopped",
	    p->folder_id, what, name != NULL ? esc(name, e, sizeof(e)) : "",
	    sh_strerror(rc));
}

/* A job is over: count it, free it, let the pass go on. */
static void
job_end(struct job *j, int rc, bool kick)
{
	struct pull	*p = j->p;
	struct job	**pp;
	char		 e[PULL_NAME_LOG];
	size_t		 i;

	for (pp = &p->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	p->njobs--;
	space_settle(j, UINT64_MAX);
	if (j->wbuf != NULL)
		p->inflight -= (uint64_t)j->wsize;
	if (j->version_name != NULL)
		p->prog.versions_kept++;
	if (j->copy_name != NULL) {
		/* Whatever happened next, the copy is a new file to scan. */
		p->prog.conflicts++;
		if (p->p.on_rescan != NULL)
			p->p.on_rescan(j->copy_name, p->p.arg);
	}
	/* Old copies removed: deletions to record and announce. */
	for (i = 0; i < j->npruned && p->p.on_rescan != NULL; i++)
		p->p.on_rescan(j->pruned[i], p->p.arg);
	if (j->rescan) {
		p->prog.rescans++;
		LOG_INFO("pull", "folder \"%s\": \"%s\" changed on disk since "
		    "the last scan; not replaced, rescanning", p->folder_id,
		    esc(j->name, e, sizeof(e)));
		if (p->p.on_rescan != NULL)
			p->p.on_rescan(j->name, p->p.arg);
	} else if (rc != 0) {
		p->prog.files_failed++;
		if (is_fatal_io(rc) || rc == SH_EFOLDER || rc == SH_EDB)
			set_fatal(p, rc, "cannot pull", j->name);
		else if (rc == SH_ESPACE) {
			/* The folder reports it once per pass, not per file. */
			p->prog.files_no_space++;
			if (j->space_need >= p->prog.space_need) {
				p->prog.space_need = j->space_need;
				p->prog.space_avail = j->space_avail;
				p->prog.space_promised = j->space_others;
				p->prog.space_keep = j->space_keep;
			}
			LOG_DEBUG("pull", "folder \"%s\": \"%s\" needs %llu "
			    "bytes, %llu free (%llu promised to files under "
			    "way), min_disk_free keeps %llu; waiting for "
			    "space", p->folder_id, esc(j->name, e, sizeof(e)),
			    (unsigned long long)j->space_need,
			    (unsigned long long)j->space_avail,
			    (unsigned long long)j->space_others,
			    (unsigned long long)j->space_keep);
		}
		else if (j->bad_name || rc == -ENAMETOOLONG || rc == -EILSEQ)
			LOG_WARN("pull", "folder \"%s\": \"%s\" cannot be "
			    "written here (%s); skipped", p->folder_id,
			    esc(j->name, e, sizeof(e)), sh_strerror(rc));
		else if (rc == SH_ENOTFOUND) {
			/* Said once per pass (every file of a peer that went
			 * away ends here). */
			p->prog.files_no_source++;
			LOG_DEBUG("pull", "folder \"%s\": \"%s\": no "
			    "connected device has its blocks; will retry",
			    p->folder_id, esc(j->name, e, sizeof(e)));
		}
		else if (rc != -ECANCELED)
			LOG_WARN("pull", "folder \"%s\": \"%s\": %s; will "
			    "retry", p->folder_id, esc(j->name, e, sizeof(e)),
			    sh_strerror(rc));
	}
	job_free(j);
	if (kick)
		advance(p);
}

static void
commit(struct job *j, bool kick)
{
	struct pull	*p = j->p;
	struct record	*r = NULL;
	char		 e[PULL_NAME_LOG];

	r = record_dup(j->global);
	r->inode = j->ino;
	r->dev = j->dev;
	r->local_flags = 0;
	if (j->late_rc != 0 && is_fatal_io(j->late_rc))
		set_fatal(p, j->late_rc, "cannot sync the directory of",
		    j->name);
	else if (j->late_rc != 0)
		LOG_WARN("pull", "folder \"%s\": fsync of the directory of "
		    "\"%s\" failed: %s", p->folder_id,
		    esc(j->name, e, sizeof(e)), sh_strerror(j->late_rc));
	p->prog.files_done++;
	if (!r->deleted && r->type == RECORD_TYPE_FILE)
		p->prog.bytes_done += (uint64_t)r->size;
	/* Counted once the file is in place: a file retried over several
	 * passes finds the same blocks in its temporary file each time. */
	p->prog.bytes_reused += j->reused_bytes;
	p->prog.blocks_reused += j->reused_blocks;
	/* The file is in place (fsynced, renamed); its record joins the
	 * next group commit. A crash before that is recovered by the next
	 * pass, which finds the file already matching the global record. */
	p->cq = xreallocarray(p->cq, p->cq_count + 1, sizeof(*p->cq));
	p->cq[p->cq_count++] = r;
	if (p->cq_count >= PULL_COMMIT_BATCH)
		flush_commits(p);
	job_end(j, 0, kick);
}

/*
 * Store the queued records in one transaction, then announce them. A
 * failure stops the pass (the files are in place; the next pass stores
 * their records).
 */
static void
flush_commits(struct pull *p)
{
	size_t	i, n = p->cq_count;
	int	rc;

	if (n == 0)
		return;
	rc = db_begin(p->p.db);
	for (i = 0; rc == 0 && i < n; i++)
		rc = db_local_put(p->p.db, p->p.folder_idx, p->cq[i]);
	if (rc == 0)
		rc = db_commit(p->p.db);
	else
		db_rollback(p->p.db);
	if (rc != 0)
		set_fatal(p, rc, "cannot store pulled records, first",
		    p->cq[0]->name);
	p->cq_count = 0;
	for (i = 0; i < n; i++) {
		if (rc == 0 && p->p.on_local_change != NULL)
			p->p.on_local_change(p->cq[i], p->p.arg);
		record_free(p->cq[i]);
	}
	LOG_DEBUG("pull", "folder \"%s\": stored %zu pulled records", p->folder_id,
	    n);
}

static int
queue(struct pull *p, uv_work_t *w, void *data, uv_work_cb work,
    uv_after_work_cb done)
{
	int	rc;

	w->data = data;
	rc = uv_queue_work(p->p.loop, w, work, done);
	if (rc == 0)
		p->ops++;
	return rc;
}

/* Every block is written, or the job failed: go on. */
static void
job_check(struct job *j)
{
	struct pull	*p = j->p;

	if (j->state != JOB_FETCH || j->ops > 0)
		return;
	if (j->fail_rc != 0 || p->fatal != 0 || p->cancelled) {
		job_end(j, j->fail_rc != 0 ? j->fail_rc : -ECANCELED, true);
		return;
	}
	if (j->done_count < j->global->block_count)
		return;
	/* With no stop (checked above) start_group ends no job, so this
	 * is safe inside pump_once's walk of p->jobs. */
	j->state = JOB_SYNC;
	start_group(p);
}

static void
group_done(uv_work_t *req, int status)
{
	struct group	*g = req->data;
	struct pull	*p = g->p;
	struct job	*j;
	size_t		 i;
	int		 rc;

	p->ops--;
	p->group = NULL;
	for (i = 0; i < g->count; i++) {
		j = g->jobs[i];
		rc = j->rc != 0 ? j->rc : g->rc != 0 ? g->rc : status;
		if (rc != 0 || j->rescan)
			job_end(j, rc, false);
		else {
			j->state = JOB_COMMIT;
			commit(j, false);
		}
	}
	LOG_DEBUG("pull", "folder \"%s\": finished a group of %zu files",
	    p->folder_id, g->count);
	free(g->jobs);
	free(g);
	start_group(p);
	advance(p);
	pump(p);
	maybe_finish(p);
}

/*
 * Hand the files waiting in JOB_SYNC to a new group, unless one is
 * running: then they go when it is done, so a lone file never waits for
 * a timer and files that finish during a sync share the next one. After
 * a stop nothing more is renamed (invariant 7): the waiting files end
 * and keep their temporary files for resume. Not called from inside
 * pump_once when jobs can end (see job_check).
 */
static void
start_group(struct pull *p)
{
	struct group	*g;
	struct job	*j, *next;
	size_t		 n = 0;
	int		 rc;

	if (p->group != NULL)
		return;
	for (j = p->jobs; j != NULL; j = j->next)
		if (j->state == JOB_SYNC)
			n++;
	if (n == 0)
		return;
	if (p->fatal != 0 || p->cancelled) {
		for (j = p->jobs; j != NULL; j = next) {
			next = j->next;
			if (j->state == JOB_SYNC)
				job_end(j, -ECANCELED, false);
		}
		return;
	}
	if (n > PULL_GROUP_MAX)
		n = PULL_GROUP_MAX;
	g = xcalloc(1, sizeof(*g));
	g->p = p;
	g->jobs = xcalloc(n, sizeof(*g->jobs));
	for (j = p->jobs; j != NULL && g->count < n; j = j->next)
		if (j->state == JOB_SYNC) {
			j->state = JOB_FINISH;
			g->jobs[g->count++] = j;
		}
	rc = queue(p, &g->work, g, group_work, group_done);
	if (rc != 0) {
		/* Ending the jobs here could free one pump_once is about
		 * to visit: stop the pass and let the timer end them. */
		for (n = 0; n < g->count; n++)
			g->jobs[n]->state = JOB_SYNC;
		free(g->jobs);
		free(g);
		set_fatal(p, rc, "cannot queue the finish of", NULL);
		arm_timer(p, 0);
		return;
	}
	p->group = g;
}

static void
blk_fail(struct job *j, int rc)
{
	if (j->fail_rc == 0)
		j->fail_rc = rc;
}

static void
blk_done(uv_work_t *req, int status)
{
	struct blk_op	*b = req->data;
	struct job	*j = b->j;
	struct pull	*p = j->p;
	int		 rc = status != 0 ? status : b->rc;

	p->ops--;
	j->ops--;
	p->inflight -= (uint64_t)b->size;
	j->bstate[b->idx] &= (uint8_t)~BLK_BUSY;
	if (b->direct_refused && j->dfd >= 0) {
		/* Not closed here: blocks under way may still use it. */
		LOG_DEBUG("pull", "folder \"%s\": O_DIRECT refused; writing "
		    "through the page cache", p->folder_id);
		j->direct_off = true;
	}
	if (rc == 0) {
		j->bstate[b->idx] |= BLK_DONE;
		j->done_count++;
		space_settle(j, (uint64_t)b->size);
		if (b->wrote_direct)
			p->prog.bytes_direct += (uint64_t)b->size;
		if (b->network) {
			p->prog.bytes_network += (uint64_t)b->size;
			p->prog.blocks_network++;
		} else {
			p->prog.bytes_local += (uint64_t)b->size;
			p->prog.blocks_local++;
		}
	} else if (!b->network && !is_fatal_io(rc)) {
		/* The source changed or went away: ask the peers instead. */
		j->retry[j->retry_count++] = b->idx;
	} else if (b->network && rc == SH_EPROTO) {
		/* A peer's block failed its SHA-256: the next peer, as when
		 * conn refuses one (the asked peer is marked in btried). */
		LOG_WARN("pull", "folder \"%s\": a block of a file from a "
		    "peer does not match its hash; discarded", p->folder_id);
		j->retry[j->retry_count++] = b->idx;
	} else {
		if (is_fatal_io(rc))
			set_fatal(p, rc, "cannot write", j->name);
		blk_fail(j, rc);
	}
	free(b->src_name);
	util_bigbuf_free(b->buf);
	free(b);
	job_check(j);
	pump(p);
	maybe_finish(p);
}

/* The block is ours (CONN_REQ_GIVE_DATA): kept, not copied. */
static void
response_cb(int status, uint8_t *data, size_t len, void *arg)
{
	struct blk_op	*b = arg;
	struct job	*j = b->j;
	struct pull	*p = j->p;
	bool		 ok = status == 0 && len == (size_t)b->size;
	bool		 going = j->fail_rc == 0 && p->fatal == 0 &&
			    !p->cancelled;
	int		 rc;

	p->ops--;
	if (ok && going && j->global->block_count == 1) {
		/* A one-block file: its finish group writes the block, which
		 * saves a pool round trip per small file. The bytes stay in
		 * p->inflight until the job ends. */
		j->wbuf = data;
		j->wsize = b->size;
		j->bstate[b->idx] &= (uint8_t)~BLK_BUSY;
		j->bstate[b->idx] |= BLK_DONE;
		j->done_count++;
		j->ops--;
		p->prog.bytes_network += (uint64_t)b->size;
		p->prog.blocks_network++;
		free(b);
		job_check(j);
		pump(p);
		maybe_finish(p);
		return;
	}
	if (ok && going) {
		b->buf = data;
		rc = queue(p, &b->work, b, blk_work, blk_done);
		if (rc == 0)
			return;
		util_bigbuf_free(b->buf);
		blk_fail(j, rc);
	} else if (ok)
		util_bigbuf_free(data);
	else if (going) {
		/* conn checked length and SHA-256 (invariant 3); a failed
		 * or bad answer sends the block to the next peer. */
		j->retry[j->retry_count++] = b->idx;
	}
	j->ops--;
	p->inflight -= (uint64_t)b->size;
	j->bstate[b->idx] &= (uint8_t)~BLK_BUSY;
	free(b);
	job_check(j);
	pump(p);
	maybe_finish(p);
}

static void
timer_cb(uv_timer_t *t)
{
	struct pull	*p = t->data;

	p->timer_armed = false;
	p->ops--;
	start_group(p);
	pump(p);
	advance(p);
	maybe_finish(p);
}

static void
arm_timer(struct pull *p, uint64_t ms)
{
	if (p->timer_armed)
		return;
	if (uv_timer_start(&p->timer, timer_cb, ms, 0) != 0)
		return;
	p->timer_armed = true;
	p->ops++;
}

static struct blk_op *
blk_new(struct job *j, size_t idx)
{
	struct blk_op	*b;
	const struct record_block *rb = &j->global->blocks[idx];

	b = xcalloc(1, sizeof(*b));
	b->j = j;
	b->idx = idx;
	b->size = rb->size;
	memcpy(b->hash, rb->hash, RECORD_HASH_LEN);
	b->dst_off = rb->offset;
	b->root = j->p->root;
	b->tmpfd = j->tmpfd;
	b->dfd = j->direct_off ? -1 : j->dfd;
	return b;
}

/*
 * Start work on block idx: a local copy when the index knows the hash,
 * else a request to the next peer holding the version that has not failed
 * this block yet. Returns 1 when work was started, 0 when nothing can be
 * done now (every remaining peer busy), or a negative code when the block
 * cannot be had this pass.
 */
static int
start_block(struct job *j, size_t idx)
{
	struct pull	*p = j->p;
	const struct record_block *rb = &j->global->blocks[idx];
	struct blk_op	*b;
	struct conn	*c;
	char		*src = NULL;
	int64_t		 off;
	uint32_t	 all, bit;
	size_t		 o, k, n = j->peer_count;
	int		 rc;

	if (!(j->bstate[idx] & BLK_LOCAL_TRIED)) {
		j->bstate[idx] |= BLK_LOCAL_TRIED;
		rc = db_block_find(p->p.db, p->p.folder_idx, rb->hash, &src,
		    &off);
		if (rc == 0) {
			b = blk_new(j, idx);
			b->src_name = src;
			b->src_off = off;
			rc = queue(p, &b->work, b, blk_work, blk_done);
			if (rc != 0) {
				free(b->src_name);
				free(b);
				return rc;
			}
			j->bstate[idx] |= BLK_BUSY;
			j->ops++;
			return 1;
		}
		if (rc != SH_ENOTFOUND)
			return rc;
	}
	/* Spread blocks over the peers: block i asks peer i mod n first. */
	all = n >= 32 ? UINT32_MAX : ((uint32_t)1 << n) - 1;
	for (o = 0; o < n; o++) {
		k = (idx + o) % n;
		bit = (uint32_t)1 << k;
		if (j->btried[idx] & bit)
			continue;
		c = p->p.peer_for != NULL ? p->p.peer_for(j->peers[k],
		    p->p.arg) : NULL;
		if (c == NULL) {
			j->btried[idx] |= bit;
			continue;
		}
		b = blk_new(j, idx);
		b->network = true;
		/* Counted before the call in case the callback runs early. */
		j->bstate[idx] |= BLK_BUSY;
		j->ops++;
		p->ops++;
		/* One-block files keep their block on the loop for the
		 * finish group, so conn hashes it; bigger ones are hashed on
		 * the pool by blk_work. */
		b->verify = j->global->block_count > 1;
		rc = conn_request_flags(c, p->folder_id, j->name, rb->offset,
		    rb->size, rb->hash, CONN_REQ_GIVE_DATA |
		    (b->verify ? CONN_REQ_CALLER_VERIFIES : 0), response_cb, b);
		if (rc == 0) {
			j->btried[idx] |= bit;
			return 1;
		}
		j->bstate[idx] &= (uint8_t)~BLK_BUSY;
		j->ops--;
		p->ops--;
		free(b);
		/* A busy peer (-EAGAIN) may take it later; others not. */
		if (rc != -EAGAIN)
			j->btried[idx] |= bit;
	}
	if ((j->btried[idx] & all) == all)
		return SH_ENOTFOUND;
	return 0;
}

/* Hand out block work while the byte cap allows (design.md §2). */
static void
pump_once(struct pull *p)
{
	struct job	*j, *next;
	size_t		 idx;
	bool		 from_retry;
	int		 rc;

	for (j = p->jobs; j != NULL; j = next) {
		next = j->next;
		if (j->state != JOB_FETCH)
			continue;
		while (j->fail_rc == 0 && p->fatal == 0 && !p->cancelled) {
			if (j->retry_count > 0) {
				idx = j->retry[j->retry_count - 1];
				from_retry = true;
			} else {
				while (j->cursor < j->global->block_count &&
				    (j->bstate[j->cursor] & BLK_DONE))
					j->cursor++;
				if (j->cursor >= j->global->block_count)
					break;
				idx = j->cursor;
				from_retry = false;
			}
			if (p->inflight > 0 && p->inflight +
			    (uint64_t)j->global->blocks[idx].size >
			    PULL_MAX_INFLIGHT)
				return;
			p->inflight += (uint64_t)j->global->blocks[idx].size;
			rc = start_block(j, idx);
			if (rc <= 0)
				p->inflight -=
				    (uint64_t)j->global->blocks[idx].size;
			if (rc == 0) {
				/* Every peer busy: a response or the timer
				 * brings us back. */
				if (!from_retry) {
					j->retry[j->retry_count++] = idx;
					j->cursor++;
				}
				arm_timer(p, PULL_RETRY_MS);
				break;
			}
			if (from_retry)
				j->retry_count--;
			else
				j->cursor++;
			if (rc < 0) {
				blk_fail(j, rc);
				break;
			}
		}
		job_check(j);
	}
}

static void
pump(struct pull *p)
{
	if (p->finishing)
		return;
	if (p->in_pump) {
		p->pump_again = true;
		return;
	}
	p->in_pump = true;
	do {
		p->pump_again = false;
		pump_once(p);
	} while (p->pump_again && !p->finishing);
	p->in_pump = false;
}

static void
prep_done(uv_work_t *req, int status)
{
	struct job	*j = req->data;
	struct pull	*p = j->p;
	size_t		 i;

	p->ops--;
	if (status != 0)
		j->rc = status;
	if (j->rc != 0 || j->rescan) {
		job_end(j, j->rc, true);
		return;
	}
	if (j->op != OP_FILE) {
		j->state = JOB_COMMIT;
		commit(j, true);
		return;
	}
	if (j->disk_global) {
		j->state = JOB_COMMIT;
		commit(j, true);
		return;
	}
	for (i = 0; i < j->global->block_count; i++)
		if (j->bstate[i] & BLK_DONE)
			j->done_count++;
	j->state = JOB_FETCH;
	if (p->fatal != 0 || p->cancelled) {
		job_end(j, -ECANCELED, true);
		return;
	}
	job_check(j);
	pump(p);
}

/*
 * Would the global file hold the bytes the local one holds? Judged by the
 * global's block hashes, which every block written is checked against,
 * not by its blocks_hash, which a peer may get wrong. The local record
 * stands for the disk: PREP checks that before anything is replaced.
 */
static bool
same_bytes(const struct record *l, const struct record *g)
{
	size_t	i;

	if (g->deleted || g->type != RECORD_TYPE_FILE || g->size != l->size ||
	    g->block_count != l->block_count)
		return false;
	for (i = 0; i < g->block_count; i++)
		if (g->blocks[i].offset != l->blocks[i].offset ||
		    g->blocks[i].size != l->blocks[i].size ||
		    memcmp(g->blocks[i].hash, l->blocks[i].hash,
		    RECORD_HASH_LEN) != 0)
			return false;
	return true;
}

/* Should the local regular file become a conflict copy (invariant 2)? */
static bool
want_conflict(const struct pull *p, const struct record *l,
    const struct record *g)
{
	if (l == NULL || l->deleted || l->type != RECORD_TYPE_FILE)
		return false;
	if (l->invalid)
		/* A receive-only local change loses to the cluster but is
		 * kept as a (local) conflict copy (bep-brief §11). */
		return (l->local_flags & RECORD_LOCAL_RECEIVEONLY) != 0;
	/* Concurrent versions of the same bytes (a file un-ignored on two
	 * nodes, the same edit made on both): a copy would only repeat the
	 * file. */
	if (same_bytes(l, g))
		return false;
	if (record_vector_concurrent(&l->version, &g->version))
		return true;
	return counter_of(&g->version, p->p.short_id) >
	    counter_of(&l->version, p->p.short_id);
}

/*
 * The safety net of bep-brief §10.7: a global deletion concurrent with
 * our valid item deletes nothing; our record takes both vectors (not
 * bumped), so the item wins everywhere.
 */
static int
merge_keep(struct pull *p, const struct record *l, const struct record *g)
{
	struct record	*r;
	char		 e[PULL_NAME_LOG];
	int		 rc;

	r = record_dup(l);
	record_vector_merge(&r->version, &g->version);
	rc = db_local_put(p->p.db, p->p.folder_idx, r);
	if (rc == 0) {
		LOG_INFO("pull", "folder \"%s\": \"%s\" was deleted elsewhere "
		    "but changed here; kept", p->folder_id,
		    esc(l->name, e, sizeof(e)));
		p->prog.files_done++;
		if (p->p.on_local_change != NULL)
			p->p.on_local_change(r, p->p.arg);
	}
	record_free(r);
	return rc;
}

/*
 * Set up and start the job for one needed name. Returns true when the job
 * went asynchronous, false when it already ended (skipped or done).
 */
static bool
job_start(struct pull *p, const char *name)
{
	struct job	*j;
	struct record	*g = NULL;
	uv_work_cb	 work;
	char		 e[PULL_NAME_LOG];
	const char	*slash;
	int64_t		 dev;
	int		 rc;

	j = xcalloc(1, sizeof(*j));
	j->p = p;
	j->dirfd = -1;
	j->tmpfd = -1;
	j->dfd = -1;
	j->name = xstrdup(name);
	slash = strrchr(j->name, '/');
	j->base = slash != NULL ? slash + 1 : j->name;
	j->ignore_perms = p->p.ignore_perms;
	j->now = time(NULL);
	j->next = p->jobs;
	p->jobs = j;
	p->njobs++;

	rc = model_global(p->p.db, p->p.folder_idx, name, &g, &dev);
	if (rc == SH_ENOTFOUND) {
		/* Gone from the global view since the batch was taken. */
		job_end(j, 0, false);
		return false;
	}
	if (rc != 0)
		goto fail;
	j->global = g;
	rc = db_file_get(p->p.db, p->p.folder_idx, DB_LOCAL_DEVICE, name,
	    &j->local);
	if (rc == SH_ENOTFOUND)
		j->local = NULL;
	else if (rc != 0)
		goto fail;
	if (!model_needs(j->local, g)) {
		job_end(j, 0, false);
		return false;
	}
	if (record_name_validate(name, strlen(name)) != 0 ||
	    record_name_internal(name) || record_validate(g) != 0 ||
	    (g->type == RECORD_TYPE_SYMLINK && !g->deleted &&
	    (g->symlink_target == NULL || g->symlink_target[0] == '\0'))) {
		LOG_WARN("pull", "folder \"%s\": invalid record \"%s\"; "
		    "skipped", p->folder_id, esc(name, e, sizeof(e)));
		rc = SH_EPROTO;
		goto fail;
	}
	if (strlen(j->base) > NAME_MAX) {
		j->bad_name = true;
		rc = -ENAMETOOLONG;
		goto fail;
	}
	/* Ignored names are never pulled. The patterns decide, not a local
	 * record the scanner flagged as ignored: once a pattern goes, a
	 * flagged record whose file was deleted meanwhile stays (no scan
	 * finds a file to replace it), and it must not keep the name from
	 * coming back. A file that is there is not replaced (disk_matches:
	 * a rescan instead). */
	if (ignore_match(p->p.ignore, name) != IGNORE_NO) {
		p->prog.ignored_need++;
		if (!g->deleted)
			p->prog.ignored_need_bytes += (uint64_t)g->size;
		job_end(j, 0, false);
		return false;
	}

	if (g->deleted) {
		j->op = OP_DELETE;
		if (j->local != NULL && !j->local->deleted &&
		    !j->local->invalid &&
		    record_vector_concurrent(&j->local->version,
		    &g->version)) {
			rc = merge_keep(p, j->local, g);
			job_end(j, rc, false);
			return false;
		}
		work = delete_work;
	} else if (g->type == RECORD_TYPE_DIRECTORY) {
		j->op = OP_DIR;
		work = dir_work;
	} else if (g->type == RECORD_TYPE_SYMLINK) {
		j->op = OP_SYMLINK;
		j->tmpname = pull_temp_name(j->base);
		work = symlink_work;
	} else {
		j->op = OP_FILE;
		j->tmpname = pull_temp_name(j->base);
		j->bstate = xcalloc(g->block_count > 0 ? g->block_count : 1, 1);
		j->btried = xcalloc(g->block_count > 0 ? g->block_count : 1,
		    sizeof(*j->btried));
		j->retry = xcalloc(g->block_count > 0 ? g->block_count : 1,
		    sizeof(*j->retry));
		rc = model_availability(p->p.db, p->p.folder_idx, name,
		    &g->version, j->peers, PULL_MAX_PEERS, &j->peer_count);
		if (rc != 0)
			goto fail;
		work = file_prep_work;
	}
	j->conflict = want_conflict(p, j->local, g);
	j->state = JOB_PREP;
	rc = queue(p, &j->work, j, work, prep_done);
	if (rc != 0)
		goto fail;
	return true;
fail:
	job_end(j, rc, false);
	return false;
}

static enum phase
phase_of(const struct model_need *n)
{
	if (n->deleted)
		return PHASE_DELETES;
	if (n->type == RECORD_TYPE_DIRECTORY)
		return PHASE_DIRS;
	return PHASE_FILES;
}

static int
collect_cb(const struct model_need *n, void *arg)
{
	struct pull	*p = arg;
	struct item	*it;

	if (util_strset_has(&p->seen, n->name))
		return 0;
	it = &p->batch[p->batch_count++];
	it->name = xstrdup(n->name);
	it->phase = phase_of(n);
	return p->batch_count >= PULL_BATCH ? 1 : 0;
}

static void
batch_free(struct pull *p)
{
	size_t	i;

	for (i = 0; i < p->batch_count; i++)
		free(p->batch[i].name);
	p->batch_count = 0;
	p->bi = 0;
}

/* Take the next batch of needed names not yet seen in this pass. */
static int
collect(struct pull *p)
{
	size_t	i;
	int	rc;

	batch_free(p);
	if (p->seen.count >= PULL_MAX_PASS_NAMES) {
		p->prog.incomplete = true;
		return 0;
	}
	rc = model_need_foreach(p->p.db, p->p.folder_idx, collect_cb, p);
	if (rc > 0)
		rc = 0;
	/* Every name is tried once per pass: whatever happens to it, the
	 * next batch does not take it again. */
	for (i = 0; i < p->batch_count; i++)
		(void)util_strset_add(&p->seen, p->batch[i].name);
	return rc;
}

/* Is `a` inside directory `b` (a path below it)? */
static bool
is_below(const char *a, const char *b)
{
	size_t	n = strlen(b);

	return strncmp(a, b, n) == 0 && a[n] == '/';
}

/* Does a job under way work on a name above or below `name`? A directory
 * must wait for its parent's creation, and a deletion for those of the
 * entries inside it. */
static bool
nests(const struct pull *p, const char *name)
{
	const struct job	*j;

	for (j = p->jobs; j != NULL; j = j->next)
		if (is_below(name, j->name) || is_below(j->name, name))
			return true;
	return false;
}

/*
 * Start jobs in need order, one phase at a time, up to PULL_MAX_FILES at
 * once. Directories and deletions run side by side too, except that one
 * never starts while a job above or below it runs; the need list's order
 * (directories shallow first, deletions deepest first) is kept, since
 * the first name that cannot start stops the walk.
 */
static void
advance(struct pull *p)
{
	struct item	*it;
	int		 rc;

	if (p->in_advance || !p->started || p->finishing)
		return;
	p->in_advance = true;
	while (p->fatal == 0 && !p->cancelled) {
		if (p->bi >= p->batch_count) {
			if (p->njobs > 0)
				break;
			/* The next need list must see what this batch did. */
			flush_commits(p);
			if (p->fatal != 0)
				break;
			rc = collect(p);
			if (rc != 0) {
				set_fatal(p, rc, "need list", NULL);
				break;
			}
			if (p->batch_count == 0)
				break;
			continue;
		}
		it = &p->batch[p->bi];
		if (p->njobs > 0 && (it->phase != p->cur_phase ||
		    p->njobs >= PULL_MAX_FILES ||
		    (it->phase != PHASE_FILES && nests(p, it->name))))
			break;
		p->bi++;
		p->cur_phase = it->phase;
		(void)job_start(p, it->name);
	}
	p->in_advance = false;
	maybe_finish(p);
}

static void
timer_close_cb(uv_handle_t *h)
{
	struct pull	*p = h->data;

	batch_free(p);
	free(p->batch);
	free(p->cq);
	util_strset_free(&p->seen);
	free(p->folder_id);
	free(p->root);
	free(p->marker);
	free(p);
}

/* End the pass once nothing is under way. */
static void
maybe_finish(struct pull *p)
{
	int	status;

	if (p->finishing || p->in_advance || p->ops > 0 || p->njobs > 0)
		return;
	/* Cancelled or stopped: store what is already in place. */
	if (p->fatal != 0 || p->cancelled)
		flush_commits(p);
	/* Without a stop, the pass ends only when a fresh batch is empty. */
	if (p->fatal == 0 && !p->cancelled &&
	    (!p->started || p->batch_count > 0))
		return;
	if (p->fatal != 0)
		status = p->fatal;
	else if (p->cancelled)
		status = -ECANCELED;
	else
		status = 0;
	p->finishing = true;
	if (p->prog.files_no_source > 0)
		LOG_INFO("pull", "folder \"%s\": %llu file%s: no connected "
		    "device has %s blocks; will retry", p->folder_id,
		    (unsigned long long)p->prog.files_no_source,
		    p->prog.files_no_source == 1 ? "" : "s",
		    p->prog.files_no_source == 1 ? "its" : "their");
	LOG_DEBUG("pull", "folder \"%s\": pass ended: %s; %llu done, "
	    "%llu failed, %llu rescans, %llu conflicts", p->folder_id,
	    sh_strerror(status), (unsigned long long)p->prog.files_done,
	    (unsigned long long)p->prog.files_failed,
	    (unsigned long long)p->prog.rescans,
	    (unsigned long long)p->prog.conflicts);
	p->p.on_done(p, status, p->p.arg);
	uv_close((uv_handle_t *)&p->timer, timer_close_cb);
}

static void
root_work(uv_work_t *req)
{
	struct pull	*p = req->data;
	char		 msg[256];

	p->root_rc = scan_root_check(p->folder_id, p->root, msg, sizeof(msg));
	if (p->root_rc != 0)
		LOG_ERROR("pull", "%s; nothing pulled", msg);
}

static void
root_done(uv_work_t *req, int status)
{
	struct pull		*p = req->data;
	struct model_counts	 mc;
	int			 rc;

	p->ops--;
	rc = status != 0 ? status : p->root_rc;
	if (rc != 0) {
		if (p->fatal == 0)
			p->fatal = rc;
		maybe_finish(p);
		return;
	}
	/* The first batch before the counts: most passes (one after each
	 * index update from a peer) find nothing to do, and then need no
	 * count of the whole global list. */
	rc = collect(p);
	if (rc != 0)
		set_fatal(p, rc, "need list", NULL);
	else if (p->batch_count > 0 &&
	    model_counts(p->p.db, p->p.folder_idx, &mc) == 0) {
		p->prog.need_files = mc.need_files;
		p->prog.need_bytes = mc.need_bytes;
	}
	p->started = true;
	advance(p);
}

/* Lifecycle */

int
pull_start(const struct pull_params *params, struct pull **out)
{
	struct pull	*p = NULL;
	int		 rc;

	*out = NULL;
	if (params == NULL || params->loop == NULL || params->db == NULL ||
	    params->folder_id == NULL || params->root == NULL ||
	    params->on_done == NULL) {
		rc = -EINVAL;
		goto out;
	}
	p = xcalloc(1, sizeof(*p));
	p->p = *params;
	p->folder_id = xstrdup(params->folder_id);
	p->root = xstrdup(params->root);
	p->marker = util_path_join(params->root, FOLDER_MARKER);
	p->p.folder_id = p->folder_id;
	p->p.root = p->root;
	p->batch = xcalloc(PULL_BATCH, sizeof(*p->batch));
	rc = uv_timer_init(params->loop, &p->timer);
	if (rc != 0)
		goto out;
	p->timer.data = p;
	rc = queue(p, &p->work, p, root_work, root_done);
	if (rc != 0) {
		uv_close((uv_handle_t *)&p->timer, timer_close_cb);
		p = NULL;
		goto out;
	}
	*out = p;
	p = NULL;
	rc = 0;
out:
	if (p != NULL) {
		free(p->batch);
		free(p->folder_id);
		free(p->root);
		free(p->marker);
		free(p);
	}
	return rc;
}

void
pull_cancel(struct pull *p)
{
	if (p == NULL || p->finishing || p->cancelled)
		return;
	p->cancelled = true;
	/* Come back from the loop, never from inside this call. */
	if (p->timer_armed) {
		(void)uv_timer_stop(&p->timer);
		p->timer_armed = false;
		p->ops--;
	}
	arm_timer(p, 0);
}

void
pull_get_progress(const struct pull *p, struct pull_progress *out)
{
	*out = p->prog;
}

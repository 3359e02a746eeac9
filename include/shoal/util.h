/* SPDX-License-Identifier: MIT */
/*
 * Small helpers that no library gives us: allocation wrappers that abort on
 * out-of-memory (data survives through temp file + fsync + rename, not
 * through the process surviving OOM), a capped growable buffer, atomic file
 * writes, and file-system wrappers with fault injection for tests.
 */
#ifndef SHOAL_UTIL_H
#define SHOAL_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shoal/err.h"

/* Allocation: these never return NULL; on OOM they log and abort. */
void	*xmalloc(size_t size);
void	*xcalloc(size_t count, size_t size);
/* align is a power of two and a multiple of sizeof(void *); free(). */
void	*xmalloc_aligned(size_t align, size_t size);

/*
 * Block-sized buffers (a block, a frame, a run of TLS records) that come
 * and go at network speed. Freed ones are kept (up to UTIL_BIGBUF_CACHE
 * bytes, any thread) and handed out again, because a fresh allocation of
 * this size is a fresh mapping whose every page faults and is cleared:
 * that was 40 % of the receiving loop's time for a 1 GiB file. Buffers
 * of at least UTIL_BIGBUF_MIN bytes are UTIL_BIGBUF_ALIGN-aligned (fit for
 * O_DIRECT). util_bigbuf_free() takes them back; plain free() also works
 * (the buffer is then not reused). util_bigbuf_trim() gives the cache
 * back to the system if nothing was taken from or given to it since the
 * previous call (a daemon calls it once a second). Address-sanitizer
 * builds keep nothing, so a use after free is still caught.
 */
#define UTIL_BIGBUF_MIN		(64 * 1024)
#define UTIL_BIGBUF_ALIGN	4096
#define UTIL_BIGBUF_CACHE	(12 * 1024 * 1024)
void	*util_bigbuf_alloc(size_t size);
/* May buf, len and off go through an O_DIRECT descriptor? */
static inline bool
util_direct_aligned(const void *buf, size_t len, off_t off)
{
	return (uintptr_t)buf % UTIL_BIGBUF_ALIGN == 0 &&
	    len % UTIL_BIGBUF_ALIGN == 0 && off % UTIL_BIGBUF_ALIGN == 0;
}
void	 util_bigbuf_free(void *p);
void	 util_bigbuf_trim(void);
/* Bytes kept for reuse now (always 0 in address-sanitizer builds). */
size_t	 util_bigbuf_cached(void);
void	*xrealloc(void *ptr, size_t size);
void	*xreallocarray(void *ptr, size_t count, size_t size);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t len);
/* Caller frees with free(). */
char	*xasprintf(const char *fmt, ...) SH_PRINTF(1, 2);
char	*xvasprintf(const char *fmt, va_list ap) SH_PRINTF(1, 0);

/*
 * Growable byte buffer with a hard cap (curl dynbuf). Always NUL-terminated
 * after a successful append so text can be used directly. Owner frees with
 * util_buf_free().
 */
struct util_buf {
	char	*data;		/* owned; NULL until first append */
	size_t	 len;		/* bytes used, excluding the trailing NUL */
	size_t	 cap;		/* bytes allocated */
	size_t	 max_len;	/* appends beyond this fail with -E2BIG */
};

void	util_buf_init(struct util_buf *b, size_t max_len);
void	util_buf_free(struct util_buf *b);
void	util_buf_reset(struct util_buf *b);
/* 0, or -E2BIG when the cap would be exceeded (buffer unchanged). */
int	util_buf_append(struct util_buf *b, const void *data, size_t len)
	    SH_MUST_CHECK;
int	util_buf_printf(struct util_buf *b, const char *fmt, ...)
	    SH_PRINTF(2, 3) SH_MUST_CHECK;

/*
 * Write `len` bytes to `path` atomically: a temp file in the same directory,
 * write, fsync, rename over `path`, fsync the directory. The file gets
 * `mode`. Returns 0 or -errno; on failure `path` is untouched and the temp
 * file is removed.
 */
int	util_write_file_atomic(const char *path, const void *data, size_t len,
	    mode_t mode) SH_MUST_CHECK;
/*
 * Read a whole file of at most `max_len` bytes. On success *out is a
 * NUL-terminated heap buffer (caller frees) and *out_len its length.
 * Returns 0, -errno, or -EFBIG when the file exceeds max_len.
 */
int	util_read_file(const char *path, size_t max_len, char **out,
	    size_t *out_len) SH_MUST_CHECK;
/* mkdir -p with `mode` for created directories. 0 or -errno. */
int	util_mkdir_p(const char *path, mode_t mode) SH_MUST_CHECK;
/*
 * Open the directory that holds folder-relative `name` below `root`,
 * opening each component with O_NOFOLLOW, so no symlink below the root is
 * ever followed. Returns the directory fd (caller closes) or -errno
 * (-ELOOP or -ENOTDIR when a component is a symlink).
 */
int	util_open_parent(const char *root, const char *name);
/*
 * Open the directory reached from the directory open as `start` through
 * the first `len` bytes of `rel` ('/'-separated; 0 reopens `start`), one
 * component at a time with O_NOFOLLOW; with `create`, missing ones are
 * made (0755). Returns the fd (caller closes) or -errno.
 */
int	util_open_dirs_at(int start, const char *rel, size_t len, bool create);
/* Join two path parts with one '/'. Caller frees. */
char	*util_path_join(const char *a, const char *b);

/* Monotonic milliseconds and wall-clock nanoseconds since the epoch. */
uint64_t	util_now_ms(void);
/* Big-endian integers in byte buffers (wire formats, stored blobs). */
static inline void
util_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
util_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline void
util_put_be64(uint8_t *p, uint64_t v)
{
	util_put_be32(p, (uint32_t)(v >> 32));
	util_put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t
util_get_be64(const uint8_t *p)
{
	return (uint64_t)util_get_be32(p) << 32 | util_get_be32(p + 4);
}

/* FNV-1a of a string, for the in-memory hash tables (not stored). */
uint64_t	util_str_hash(const char *s);

/*
 * A set of strings (open addressing on util_str_hash, owned copies) for
 * deduplicating path lists: the watcher's batch, a folder's pending scan
 * paths, the names a pull pass has seen. Zero-initialised is empty.
 */
struct util_strset {
	char		**slots;	/* owned strings; NULL = free */
	size_t		  cap;		/* 0 or a power of two */
	size_t		  count;
};
bool	util_strset_has(const struct util_strset *s, const char *str);
/* Adds a copy of str unless it is there; true when it was added. */
bool	util_strset_add(struct util_strset *s, const char *str);
/* The members, in no particular order, as a new array of s->count
 * borrowed pointers (caller frees the array only; NULL when empty). */
const char **util_strset_list(const struct util_strset *s);
/* Empty the set, keeping its table. */
void	util_strset_clear(struct util_strset *s);
void	util_strset_free(struct util_strset *s);
int64_t		util_now_unix(void);
/* A size for people: "512 B", "1.5 KiB", "12.3 MiB", "2.0 GiB"; buf. */
#define UTIL_BYTES_STR_SIZE	24
const char	*util_fmt_bytes(uint64_t n, char buf[UTIL_BYTES_STR_SIZE]);

/*
 * File-system wrappers. In test builds (SHOAL_FAULT_INJECTION defined),
 * util_fault_set() makes the Nth call of a kind fail with `err`, as sqlite's
 * simulated I/O errors do; in normal builds they are thin wrappers.
 */
enum util_fault_kind {
	UTIL_FAULT_WRITE,
	UTIL_FAULT_FSYNC,
	UTIL_FAULT_RENAME,
	UTIL_FAULT_KIND_COUNT
};
void	util_fault_set(enum util_fault_kind kind, int nth, int err);
/* From now on util_disk_space() reports these figures for every file
 * system, the free space shrinking by what util_write_all() and
 * util_pwrite_all() write (tests); util_fault_clear() ends it. */
void	util_fault_space(uint64_t avail, uint64_t total);
void	util_fault_clear(void);
/* Bytes an unprivileged writer may still use (f_bavail) and the size of
 * the file system that holds `fd`. 0 or -errno. */
int	util_disk_space(int fd, uint64_t *avail, uint64_t *total)
	    SH_MUST_CHECK;
/*
 * Every thread of this process to SCHED_BATCH (on) or back to SCHED_OTHER
 * (off); threads made later inherit it from the thread that makes them
 * (libuv's pool threads: from the loop). Only threads under the policy
 * being left change: one started under SCHED_IDLE or a real-time policy
 * (chrt, systemd's CPUSchedulingPolicy=) keeps it. 0 or the first -errno.
 */
int	util_sched_batch(bool on) SH_MUST_CHECK;
/* Write all of buf (retrying short writes and EINTR). 0 or -errno. */
int	util_write_all(int fd, const void *buf, size_t len) SH_MUST_CHECK;
int	util_pwrite_all(int fd, const void *buf, size_t len, off_t off)
	    SH_MUST_CHECK;
/* Read up to len bytes at off, retrying short reads; returns bytes or -errno. */
ssize_t	util_pread_full(int fd, void *buf, size_t len, off_t off);
/*
 * An O_DIRECT descriptor (`access`: O_RDONLY or O_WRONLY) of the regular
 * file open as `fd`, found as `base` in the directory open as `dirfd`
 * (never following a symlink), or -1 when the name no longer leads to
 * that inode or the file system refuses O_DIRECT.
 */
int	util_open_direct_twin(int dirfd, const char *base, int fd,
	    int access);
/*
 * Open (creating, 0600) the file `dir`/`name` and take an exclusive
 * flock(2) on it, waiting for it unless `nowait`. Returns the descriptor,
 * which holds the lock until closed, or -errno (-EWOULDBLOCK: held
 * elsewhere).
 */
int	util_lock_file(const char *dir, const char *name, bool nowait);
/* fdopendir() that owns `fd` either way: closed on failure (errno kept). */
DIR	*util_fdopendir(int fd);
/*
 * util_pread_full, but a range that is not all in the page cache (asked
 * with mincore) is read past it through `direct_fd` (from
 * util_open_direct_twin, or -1) when buf, len and off are multiples of
 * UTIL_BIGBUF_ALIGN: filling fresh cache pages cost more than the disk
 * here (the puller's local copy of a 1 GiB file: 3.8 s of CPU copying out
 * of new cache pages), and a cold file read once need not push warm data
 * out. Cached data, clean or dirty, is read from the cache.
 */
ssize_t	util_pread_uncached(int fd, int direct_fd, void *buf, size_t len,
	    off_t off);
int	util_fsync(int fd) SH_MUST_CHECK;
/*
 * Make every dirty file and the metadata of the file system holding fd
 * durable (syncfs(2)): one device flush for many files. Subject to
 * UTIL_FAULT_FSYNC like util_fsync. 0 or -errno.
 */
int	util_syncfs(int fd) SH_MUST_CHECK;
int	util_fsync_dir(const char *dir) SH_MUST_CHECK;
int	util_rename(const char *from, const char *to) SH_MUST_CHECK;
/*
 * Rename `from` to `to`, both names in directory `dirfd` (so no symlink on
 * the way is followed). With `noreplace`, fails with -EEXIST rather than
 * replace an existing `to`. Subject to UTIL_FAULT_RENAME. 0 or -errno.
 */
int	util_renameat(int dirfd, const char *from, const char *to,
	    bool noreplace) SH_MUST_CHECK;

/*
 * Creates, renames and removals inside the directory open as `dirfd`
 * (names relative to it, never following a symlink at the end). A
 * directory whose owner write bit is off (received 0555 from a peer)
 * refuses them with EACCES; then, if we own it, the bit is set for the
 * one call and the mode put back, as Syncthing does, so a read-only
 * directory still takes its files. util_wd_openat returns a descriptor or
 * -errno, the others 0 or -errno. util_wd_renameat is util_renameat (and
 * its fault injection) inside one directory.
 */
int	util_wd_openat(int dirfd, const char *name, int flags, mode_t mode);
int	util_wd_renameat(int dirfd, const char *from, const char *to,
	    bool noreplace) SH_MUST_CHECK;
/* Rename `from` in the directory open as `fromfd` to `to` in `tofd`
 * (same file system), with the write bit dance on `fromfd`. */
int	util_wd_moveat(int fromfd, const char *from, int tofd, const char *to,
	    bool noreplace) SH_MUST_CHECK;
int	util_wd_unlinkat(int dirfd, const char *name, int flags);
int	util_wd_mkdirat(int dirfd, const char *name, mode_t mode)
	    SH_MUST_CHECK;
int	util_wd_symlinkat(const char *target, int dirfd, const char *name)
	    SH_MUST_CHECK;

/*
 * Quote a value for a one-line error message: control characters as \xNN,
 * quotes and backslashes escaped, cut with "..." to fit `size` (at least
 * 12) bytes. Returns buf.
 */
const char *util_quote(const char *s, char *buf, size_t size);
/* Hex encode `len` bytes into `out` (2*len+1 bytes). */
void	util_hex(const uint8_t *in, size_t len, char *out);
/* Parse an unsigned decimal in [min, max]. 0 or SH_EPARSE. */
int	util_parse_u64(const char *s, uint64_t min, uint64_t max,
	    uint64_t *out) SH_MUST_CHECK;

#endif /* SHOAL_UTIL_H */

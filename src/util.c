/* SPDX-License-Identifier: MIT */
/*
 * Helpers no library gives us. Allocation failures abort (tmux xmalloc.c):
 * the data on disk survives because every write goes through a temp file,
 * fsync and rename, not because the process survives OOM. The fs wrappers
 * carry a fault-injection hook so tests can make the Nth write, fsync or
 * rename fail (sqlite's simulated I/O errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <limits.h>
#include <dirent.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "shoal/log.h"
#include "shoal/util.h"

SH_NORETURN static void
oom(size_t size)
{
	log_write(LOG_LEVEL_ERROR, "util", "out of memory allocating %zu bytes",
	    size);
	abort();
}

void *
xmalloc(size_t size)
{
	void	*p;

	p = malloc(size == 0 ? 1 : size);
	if (p == NULL)
		oom(size);
	return p;
}

void *
xmalloc_aligned(size_t align, size_t size)
{
	void	*p = NULL;

	if (posix_memalign(&p, align, size == 0 ? 1 : size) != 0)
		oom(size);
	return p;
}

/* Big buffers: a few freed ones kept for reuse (see util.h). */

#if defined(__SANITIZE_ADDRESS__)
#define BIGBUF_KEEP	0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BIGBUF_KEEP	0
#endif
#endif
#if !defined(BIGBUF_KEEP) && defined(__GLIBC__)
#define BIGBUF_KEEP	1
#endif
#ifndef BIGBUF_KEEP
#define BIGBUF_KEEP	0
#endif
#define BIGBUF_SLOTS	32

#if BIGBUF_KEEP
static struct {
	pthread_mutex_t	 mu;
	void		*p[BIGBUF_SLOTS];
	size_t		 cap[BIGBUF_SLOTS];
	size_t		 n;
	size_t		 bytes;
	uint64_t	 uses;		/* takes and gives */
	uint64_t	 uses_seen;	/* at the last trim */
} bigbuf = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A default mutex fails only when misused (EINVAL, EDEADLK, EPERM): a
 * bug, so stop there, as libuv's uv_mutex_lock does. */
static void
bigbuf_lock(void)
{
	if (pthread_mutex_lock(&bigbuf.mu) != 0)
		abort();
}

static void
bigbuf_unlock(void)
{
	if (pthread_mutex_unlock(&bigbuf.mu) != 0)
		abort();
}
#endif

void *
util_bigbuf_alloc(size_t size)
{
#if BIGBUF_KEEP
	void	*p = NULL;
	size_t	 i, best = BIGBUF_SLOTS;

	if (size < UTIL_BIGBUF_MIN)
		return xmalloc(size);
	bigbuf_lock();
	/* The smallest kept buffer that fits: its pages are resident
	 * already, so even a bigger one costs no memory. */
	for (i = 0; i < bigbuf.n; i++)
		if (bigbuf.cap[i] >= size && (best == BIGBUF_SLOTS ||
		    bigbuf.cap[i] < bigbuf.cap[best]))
			best = i;
	if (best < BIGBUF_SLOTS) {
		p = bigbuf.p[best];
		bigbuf.bytes -= bigbuf.cap[best];
		bigbuf.n--;
		bigbuf.p[best] = bigbuf.p[bigbuf.n];
		bigbuf.cap[best] = bigbuf.cap[bigbuf.n];
		bigbuf.uses++;
	}
	bigbuf_unlock();
	if (p != NULL)
		return p;
#else
	if (size < UTIL_BIGBUF_MIN)
		return xmalloc(size);
#endif
	return xmalloc_aligned(UTIL_BIGBUF_ALIGN, size);
}

void
util_bigbuf_free(void *p)
{
#if BIGBUF_KEEP
	size_t	cap;

	if (p == NULL)
		return;
	cap = malloc_usable_size(p);
	if (cap >= UTIL_BIGBUF_MIN && cap <= UTIL_BIGBUF_CACHE &&
	    (uintptr_t)p % UTIL_BIGBUF_ALIGN == 0) {
		bigbuf_lock();
		if (bigbuf.n < BIGBUF_SLOTS &&
		    bigbuf.bytes + cap <= UTIL_BIGBUF_CACHE) {
			bigbuf.p[bigbuf.n] = p;
			bigbuf.cap[bigbuf.n] = cap;
			bigbuf.n++;
			bigbuf.bytes += cap;
			bigbuf.uses++;
			p = NULL;
		}
		bigbuf_unlock();
	}
#endif
	free(p);
}

void
util_bigbuf_trim(void)
{
#if BIGBUF_KEEP
	void	*drop[BIGBUF_SLOTS];
	size_t	 i, n = 0;

	bigbuf_lock();
	if (bigbuf.uses == bigbuf.uses_seen) {
		for (i = 0; i < bigbuf.n; i++)
			drop[n++] = bigbuf.p[i];
		bigbuf.n = 0;
		bigbuf.bytes = 0;
	}
	bigbuf.uses_seen = bigbuf.uses;
	bigbuf_unlock();
	for (i = 0; i < n; i++)
		free(drop[i]);
#endif
}

size_t
util_bigbuf_cached(void)
{
#if BIGBUF_KEEP
	size_t	n;

	bigbuf_lock();
	n = bigbuf.bytes;
	bigbuf_unlock();
	return n;
#else
	return 0;
#endif
}

void *
xcalloc(size_t count, size_t size)
{
	void	*p;

	p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
	if (p == NULL)
		oom(count * size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void	*p;

	p = realloc(ptr, size == 0 ? 1 : size);
	if (p == NULL)
		oom(size);
	return p;
}

void *
xreallocarray(void *ptr, size_t count, size_t size)
{
	if (size != 0 && count > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xrealloc(ptr, count * size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t len)
{
	char	*p;

	p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char	*p = NULL;

	if (vasprintf(&p, fmt, ap) < 0)
		oom(0);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list	 ap;
	char	*p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void
util_buf_init(struct util_buf *b, size_t max_len)
{
	memset(b, 0, sizeof(*b));
	b->max_len = max_len;
}

void
util_buf_free(struct util_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
util_buf_reset(struct util_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
util_buf_append(struct util_buf *b, const void *data, size_t len)
{
	size_t	need;

	if (len > b->max_len || b->len > b->max_len - len)
		return -E2BIG;
	need = b->len + len + 1;
	if (need > b->cap) {
		size_t cap = b->cap < 64 ? 64 : b->cap;

		while (cap < need)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
util_buf_printf(struct util_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 rc;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	rc = util_buf_append(b, s, strlen(s));
	free(s);
	return rc;
}

const char *
util_fmt_bytes(uint64_t n, char buf[UTIL_BYTES_STR_SIZE])
{
	static const char *const	units[] = { "KiB", "MiB", "GiB", "TiB",
					    "PiB", "EiB" };
	double				v = (double)n;
	size_t				i = 0;

	if (n < 1024) {
		snprintf(buf, UTIL_BYTES_STR_SIZE, "%llu B",
		    (unsigned long long)n);
		return buf;
	}
	v /= 1024;
	while (v >= 1023.95 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		i++;
	}
	snprintf(buf, UTIL_BYTES_STR_SIZE, "%.1f %s", v, units[i]);
	return buf;
}

/* Fault injection: counters per kind, decremented on each call. */
static _Atomic int fault_nth[UTIL_FAULT_KIND_COUNT];
static _Atomic int fault_err[UTIL_FAULT_KIND_COUNT];
static _Atomic uint64_t fault_avail, fault_total;
static _Atomic bool fault_space;

void
util_fault_set(enum util_fault_kind kind, int nth, int err)
{
	fault_err[kind] = err;
	fault_nth[kind] = nth;
}

void
util_fault_space(uint64_t avail, uint64_t total)
{
	fault_avail = avail;
	fault_total = total;
	fault_space = true;
}

void
util_fault_clear(void)
{
	int	i;

	for (i = 0; i < UTIL_FAULT_KIND_COUNT; i++) {
		fault_nth[i] = 0;
		fault_err[i] = 0;
	}
	fault_space = false;
}

/* Faked free space shrinks by what is written, as a disk's would. */
static void
fault_space_used(size_t len)
{
	uint64_t	cur = fault_avail;

	while (!atomic_compare_exchange_weak(&fault_avail, &cur,
	    cur > len ? cur - len : 0))
		;
}

int
util_disk_space(int fd, uint64_t *avail, uint64_t *total)
{
	struct statvfs	sv;

	if (fault_space) {
		*avail = fault_avail;
		*total = fault_total;
		return 0;
	}
	if (fstatvfs(fd, &sv) != 0)
		return -errno;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}

#if defined(SCHED_BATCH) && defined(SCHED_RESET_ON_FORK)
/* One thread from policy `from` to `to`; any other policy is left. */
static int
sched_move(pid_t tid, int from, int to)
{
	const struct sched_param sp = { .sched_priority = 0 };
	int	cur;

	cur = sched_getscheduler(tid);
	if (cur < 0)
		return -errno;
	if ((cur & ~SCHED_RESET_ON_FORK) != from)
		return 0;
	if (sched_setscheduler(tid, to | (cur & SCHED_RESET_ON_FORK),
	    &sp) != 0)
		return -errno;
	return 0;
}

int
util_sched_batch(bool on)
{
	struct dirent	*e;
	DIR		*dir;
	uint64_t	 tid;
	int		 from = on ? SCHED_OTHER : SCHED_BATCH;
	int		 to = on ? SCHED_BATCH : SCHED_OTHER, rc, r;

	/* This thread first: threads it makes while the rest are listed
	 * inherit the new policy. */
	rc = sched_move(0, from, to);
	dir = opendir("/proc/self/task");
	if (dir == NULL)
		return rc;	/* no /proc: later threads still inherit */
	while ((e = readdir(dir)) != NULL) {
		if (util_parse_u64(e->d_name, 1, INT_MAX, &tid) != 0)
			continue;	/* "." and ".." */
		r = sched_move((pid_t)tid, from, to);
		/* A thread that ended meanwhile is no error. */
		if (r != 0 && r != -ESRCH && rc == 0)
			rc = r;
	}
	if (closedir(dir) != 0 && rc == 0)
		rc = -errno;
	return rc;
}
#else
int
util_sched_batch(bool on)
{
	return on ? -ENOTSUP : 0;	/* not Linux: nothing to switch */
}
#endif

/* Returns the injected -errno for this call, or 0. */
static int
fault_hit(enum util_fault_kind kind)
{
	int	n;

	if (fault_nth[kind] <= 0)
		return 0;
	n = atomic_fetch_sub(&fault_nth[kind], 1);
	if (n == 1)
		return -fault_err[kind];
	return 0;
}

int
util_write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;
	int		 rc;

	rc = fault_hit(UTIL_FAULT_WRITE);
	if (rc != 0)
		return rc;
	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		if (fault_space)
			fault_space_used((size_t)n);
	}
	return 0;
}

int
util_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char	*p = buf;
	ssize_t		 n;
	int		 rc;

	rc = fault_hit(UTIL_FAULT_WRITE);
	if (rc != 0)
		return rc;
	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += n;
		len -= (size_t)n;
		if (fault_space)
			fault_space_used((size_t)n);
	}
	return 0;
}

ssize_t
util_pread_full(int fd, void *buf, size_t len, off_t off)
{
	char	*p = buf;
	size_t	 got = 0;
	ssize_t	 n;

	while (got < len) {
		n = pread(fd, p + got, len - got, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
util_lock_file(const char *dir, const char *name, bool nowait)
{
	char	*path = util_path_join(dir, name);
	int	 fd, e;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | (nowait ? LOCK_NB : 0)) != 0) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

DIR *
util_fdopendir(int fd)
{
	DIR	*d;
	int	 saved;

	d = fdopendir(fd);
	if (d == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

int
util_open_direct_twin(int dirfd, const char *base, int fd, int access)
{
	struct stat	a, b;
	int		dfd;

	if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode))
		return -1;
	dfd = openat(dirfd, base, access | O_DIRECT | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (dfd < 0)
		return -1;
	if (fstat(dfd, &b) != 0 || b.st_ino != a.st_ino ||
	    b.st_dev != a.st_dev) {
		close(dfd);
		return -1;
	}
	return dfd;
}

/*
 * Is all of [off, off + len) of fd in the page cache? Asked with mincore
 * on a mapping that is never touched, because a read with RWF_NOWAIT
 * starts readahead on a miss, which fills the very cache pages this is
 * meant to avoid. Unknown (mapping refused) counts as cached.
 */
static bool
range_cached(int fd, size_t len, off_t off)
{
	long		 psz = sysconf(_SC_PAGESIZE);
	off_t		 start;
	size_t		 span, pages, i;
	unsigned char	 vec[512];
	void		*m;
	bool		 all = true;

	if (psz <= 0)
		return true;
	start = off - off % psz;
	span = len + (size_t)(off - start);
	pages = (span + (size_t)psz - 1) / (size_t)psz;
	if (pages > sizeof(vec))
		return true;
	m = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, start);
	if (m == MAP_FAILED)
		return true;
	if (mincore(m, span, vec) != 0)
		all = true;
	else
		for (i = 0; i < pages && all; i++)
			all = (vec[i] & 1) != 0;
	(void)munmap(m, span);
	return all;
}

ssize_t
util_pread_uncached(int fd, int direct_fd, void *buf, size_t len, off_t off)
{
	ssize_t	n;

	if (direct_fd >= 0 && util_direct_aligned(buf, len, off) &&
	    !range_cached(fd, len, off)) {
		n = util_pread_full(direct_fd, buf, len, off);
		if (n != -EINVAL)
			return n;
	}
	return util_pread_full(fd, buf, len, off);
}

int
util_fsync(int fd)
{
	int	rc;

	rc = fault_hit(UTIL_FAULT_FSYNC);
	if (rc != 0)
		return rc;
	if (fsync(fd) != 0)
		return -errno;
	return 0;
}

int
util_syncfs(int fd)
{
	int	rc;

	rc = fault_hit(UTIL_FAULT_FSYNC);
	if (rc != 0)
		return rc;
	if (syncfs(fd) != 0)
		return -errno;
	return 0;
}

int
util_fsync_dir(const char *dir)
{
	int	fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = util_fsync(fd);
	close(fd);
	return rc;
}

int
util_rename(const char *from, const char *to)
{
	int	rc;

	rc = fault_hit(UTIL_FAULT_RENAME);
	if (rc != 0)
		return rc;
	if (rename(from, to) != 0)
		return -errno;
	return 0;
}

int
util_renameat(int dirfd, const char *from, const char *to, bool noreplace)
{
	int	rc;

	rc = fault_hit(UTIL_FAULT_RENAME);
	if (rc != 0)
		return rc;
	if (noreplace) {
		if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EINVAL && errno != ENOSYS)
			return -errno;
		/* The file system lacks RENAME_NOREPLACE: check, then rename
		 * (the window is between two syscalls of this thread). */
		if (faccessat(dirfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return -EEXIST;
	}
	if (renameat(dirfd, from, dirfd, to) != 0)
		return -errno;
	return 0;
}

/* One directory operation of the util_wd_ family. */
enum wd_kind { WD_OPEN, WD_RENAME, WD_MOVE, WD_UNLINK, WD_MKDIR,
	WD_SYMLINK };

struct wd_op {
	enum wd_kind	 kind;
	const char	*name;
	const char	*other;		/* rename target, symlink target */
	int		 tofd;		/* WD_MOVE: target directory */
	int		 flags;
	mode_t		 mode;
	bool		 noreplace;
};

static int
wd_run(int dirfd, const struct wd_op *o)
{
	int	rc = 0;

	switch (o->kind) {
	case WD_OPEN:
		rc = openat(dirfd, o->name, o->flags, o->mode);
		return rc >= 0 ? rc : -errno;
	case WD_RENAME:
		return util_renameat(dirfd, o->name, o->other, o->noreplace);
	case WD_MOVE:
		if (o->noreplace) {
			rc = renameat2(dirfd, o->name, o->tofd, o->other,
			    RENAME_NOREPLACE);
			if (rc == 0 || (errno != EINVAL && errno != ENOSYS))
				break;
			/* No RENAME_NOREPLACE here: as util_renameat. */
			if (faccessat(o->tofd, o->other, F_OK,
			    AT_SYMLINK_NOFOLLOW) == 0)
				return -EEXIST;
		}
		rc = renameat(dirfd, o->name, o->tofd, o->other);
		break;
	case WD_UNLINK:
		rc = unlinkat(dirfd, o->name, o->flags);
		break;
	case WD_MKDIR:
		rc = mkdirat(dirfd, o->name, o->mode);
		break;
	case WD_SYMLINK:
		rc = symlinkat(o->other, dirfd, o->name);
		break;
	}
	return rc == 0 ? 0 : -errno;
}

static int
wd(int dirfd, const struct wd_op *o)
{
	struct stat	st;
	int		rc;

	rc = wd_run(dirfd, o);
	if (rc != -EACCES || fstat(dirfd, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & S_IWUSR) != 0 ||
	    fchmod(dirfd, (st.st_mode & 07777) | S_IWUSR) != 0)
		return rc;
	rc = wd_run(dirfd, o);
	/* The bit stays set only if this fails; the scanner then reports
	 * the mode as a local change, which loses nothing. */
	if (fchmod(dirfd, st.st_mode & 07777) != 0)
		log_write(LOG_LEVEL_WARN, "util", "cannot restore the mode "
		    "%04o of a directory: %s", (unsigned)(st.st_mode & 07777),
		    strerror(errno));
	return rc;
}

int
util_wd_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	const struct wd_op o = { .kind = WD_OPEN, .name = name,
	    .flags = flags, .mode = mode };

	return wd(dirfd, &o);
}

int
util_wd_renameat(int dirfd, const char *from, const char *to,
    bool noreplace)
{
	const struct wd_op o = { .kind = WD_RENAME, .name = from,
	    .other = to, .noreplace = noreplace };

	return wd(dirfd, &o);
}

int
util_wd_moveat(int fromfd, const char *from, int tofd, const char *to,
    bool noreplace)
{
	const struct wd_op o = { .kind = WD_MOVE, .name = from, .other = to,
	    .tofd = tofd, .noreplace = noreplace };

	return wd(fromfd, &o);
}

int
util_wd_unlinkat(int dirfd, const char *name, int flags)
{
	const struct wd_op o = { .kind = WD_UNLINK, .name = name,
	    .flags = flags };

	return wd(dirfd, &o);
}

int
util_wd_mkdirat(int dirfd, const char *name, mode_t mode)
{
	const struct wd_op o = { .kind = WD_MKDIR, .name = name,
	    .mode = mode };

	return wd(dirfd, &o);
}

int
util_wd_symlinkat(const char *target, int dirfd, const char *name)
{
	const struct wd_op o = { .kind = WD_SYMLINK, .name = name,
	    .other = target };

	return wd(dirfd, &o);
}

int
util_open_dirs_at(int start, const char *rel, size_t len, bool create)
{
	const char	*p = rel, *end = rel + len, *slash;
	char		*comp;
	int		 fd, nfd;

	fd = openat(start, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (p < end) {
		slash = memchr(p, '/', (size_t)(end - p));
		if (slash == NULL)
			slash = end;
		comp = xstrndup(p, (size_t)(slash - p));
		nfd = create ? util_wd_mkdirat(fd, comp, 0755) : 0;
		if (nfd == 0 || nfd == -EEXIST) {
			/* A symlink in the way fails here (ELOOP, ENOTDIR). */
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			nfd = nfd < 0 ? -errno : nfd;
		}
		free(comp);
		close(fd);
		if (nfd < 0)
			return nfd;
		fd = nfd;
		p = slash + 1;
	}
	return fd;
}

int
util_open_parent(const char *root, const char *name)
{
	const char	*slash = strrchr(name, '/');
	int		 fd, rc;

	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = util_open_dirs_at(fd, name,
	    slash != NULL ? (size_t)(slash - name) : 0, false);
	close(fd);
	return rc;
}

int
util_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode)
{
	char	*tmp = NULL, *dir = NULL, *slash;
	int	 fd = -1, rc;

	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* The umask may have narrowed the mode; say exactly what we mean. */
	if (fchmod(fd, mode) != 0) {
		rc = -errno;
		goto out;
	}
	rc = util_write_all(fd, data, len);
	if (rc != 0)
		goto out;
	/* fsync before rename: otherwise a crash can leave an empty file. */
	rc = util_fsync(fd);
	if (rc != 0)
		goto out;
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	rc = util_rename(tmp, path);
	if (rc != 0)
		goto out;
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else {
		free(dir);
		dir = xstrdup(".");
	}
	rc = util_fsync_dir(dir);
	if (rc != 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	free(dir);
	return rc;
}

int
util_read_file(const char *path, size_t max_len, char **out, size_t *out_len)
{
	struct util_buf	 b;
	char		 chunk[8192];
	ssize_t		 n;
	int		 fd = -1, rc;

	util_buf_init(&b, max_len);
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (util_buf_append(&b, chunk, (size_t)n) != 0) {
			rc = -EFBIG;
			goto out;
		}
	}
	if (b.data == NULL && util_buf_append(&b, "", 0) != 0) {
		rc = -EFBIG;
		goto out;
	}
	*out = b.data;
	*out_len = b.len;
	b.data = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	util_buf_free(&b);
	return rc;
}

int
util_mkdir_p(const char *path, mode_t mode)
{
	char	*p = NULL, *s;
	int	 rc;

	p = xstrdup(path);
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = -errno;
			goto out;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	struct stat st;

	if (stat(path, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = 0;
out:
	free(p);
	return rc;
}

char *
util_path_join(const char *a, const char *b)
{
	size_t	la = strlen(a);

	if (la > 0 && a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	if (*b == '\0')
		return xstrdup(a);
	return xasprintf("%s/%s", a, b);
}

uint64_t
util_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
util_now_unix(void)
{
	return (int64_t)time(NULL);
}

const char *
util_quote(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	size_t	o = 0;

	/* Leave room for the longest escape, "..." and the NUL. */
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (o + 8 >= size) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 0xf];
		} else if (*p == '"' || *p == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

void
util_hex(const uint8_t *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t	i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long	 v;
	char			*end;

	if (s == NULL || *s < '0' || *s > '9')
		return SH_EPARSE;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return SH_EPARSE;
	*out = v;
	return 0;
}

uint64_t
util_str_hash(const char *s)
{
	uint64_t	h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

#define STRSET_MIN_CAP	64

static void
strset_put(char **slots, size_t cap, char *owned)
{
	size_t	i = util_str_hash(owned) & (cap - 1);

	while (slots[i] != NULL)
		i = (i + 1) & (cap - 1);
	slots[i] = owned;
}

bool
util_strset_has(const struct util_strset *s, const char *str)
{
	size_t	i;

	if (s->cap == 0)
		return false;
	for (i = util_str_hash(str) & (s->cap - 1); s->slots[i] != NULL;
	    i = (i + 1) & (s->cap - 1))
		if (strcmp(s->slots[i], str) == 0)
			return true;
	return false;
}

bool
util_strset_add(struct util_strset *s, const char *str)
{
	char	**old = s->slots;
	size_t	  i, oldcap = s->cap;

	if (util_strset_has(s, str))
		return false;
	/* At most half full, so probes stay short. */
	if ((s->count + 1) * 2 > s->cap) {
		s->cap = oldcap == 0 ? STRSET_MIN_CAP : oldcap * 2;
		s->slots = xcalloc(s->cap, sizeof(*s->slots));
		for (i = 0; i < oldcap; i++)
			if (old[i] != NULL)
				strset_put(s->slots, s->cap, old[i]);
		free(old);
	}
	strset_put(s->slots, s->cap, xstrdup(str));
	s->count++;
	return true;
}

const char **
util_strset_list(const struct util_strset *s)
{
	const char	**list;
	size_t		  i, n = 0;

	if (s->count == 0)
		return NULL;
	list = xcalloc(s->count, sizeof(*list));
	for (i = 0; i < s->cap; i++)
		if (s->slots[i] != NULL)
			list[n++] = s->slots[i];
	return list;
}

void
util_strset_clear(struct util_strset *s)
{
	size_t	i;

	for (i = 0; i < s->cap; i++) {
		free(s->slots[i]);
		s->slots[i] = NULL;
	}
	s->count = 0;
}

void
util_strset_free(struct util_strset *s)
{
	util_strset_clear(s);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/* SPDX-License-Identifier: MIT */
/* Unit tests for util.c: capped buffers, atomic writes under injected
 * faults, file reading caps, mkdir -p, number parsing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "shoal/err.h"
#include "shoal/util.h"

static char *
make_tmpdir(void)
{
	char	*d = xstrdup("/tmp/shoal-test-util.XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void
rm_rf(const char *d)
{
	char	*cmd = xasprintf("rm -rf '%s'", d);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* Pages of [0, len) of fd in the page cache. */
static size_t
resident(int fd, size_t len)
{
	unsigned char	 vec[512];
	size_t		 i, n = 0, pages = len / 4096;
	void		*m;

	assert_true(pages <= sizeof(vec));
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mincore(m, len, vec), 0);
	for (i = 0; i < pages; i++)
		n += vec[i] & 1;
	munmap(m, len);
	return n;
}

/*
 * util_pread_uncached: a range that is not cached is read past the cache
 * (it stays uncached), a cached one from it, dirty data included; every
 * read returns the file's current bytes.
 */
static void
test_util_pread_uncached(void **state)
{
	const size_t	 len = 1024 * 1024;
	char		 dir[] = "/tmp/shoal-test-util.XXXXXX";
	char		*path;
	uint8_t		*want, *got;
	bool		 cold;
	int		 fd, wfd, dfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = util_path_join(dir, "f");
	want = util_bigbuf_alloc(len);
	got = util_bigbuf_alloc(len);
	memset(want, 0x5A, len);
	/* Written past the cache where the file system allows it. */
	wfd = open(path, O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
	if (wfd < 0)
		wfd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(wfd >= 0);
	assert_int_equal(util_pwrite_all(wfd, want, len, 0), 0);
	close(wfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	dfd = util_open_direct_twin(AT_FDCWD, path, fd, O_RDONLY);
	(void)posix_fadvise(fd, 0, (off_t)len, POSIX_FADV_DONTNEED);
	cold = dfd >= 0 && resident(fd, len) == 0;

	assert_int_equal(util_pread_uncached(fd, dfd, got, len, 0),
	    (ssize_t)len);
	assert_memory_equal(got, want, len);
	/* With O_DIRECT (not on tmpfs before Linux 6.6), still not cached:
	 * it came past the cache. */
	if (cold)
		assert_int_equal(resident(fd, len), 0);
	/* Unaligned: the plain path, which caches. */
	assert_int_equal(util_pread_uncached(fd, dfd, got + 1, len - 1, 1),
	    (ssize_t)(len - 1));
	assert_memory_equal(got + 1, want + 1, len - 1);

	/* Dirty data in the cache is what a read returns. */
	memset(want, 0xA5, len);
	wfd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(wfd >= 0);
	assert_int_equal(util_pwrite_all(wfd, want, len, 0), 0);
	assert_int_equal(util_pread_uncached(fd, dfd, got, len, 0),
	    (ssize_t)len);
	assert_memory_equal(got, want, len);
	close(wfd);
	/* Past the end: short, as pread. */
	assert_int_equal(util_pread_uncached(fd, dfd, got, len, (off_t)len),
	    0);
	close(fd);
	if (dfd >= 0)
		close(dfd);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	util_bigbuf_free(want);
	util_bigbuf_free(got);
	free(path);
}

/* A string set keeps one copy of each member, grows past its first
 * table, lists every member once, and empties. */
static void
test_util_strset(void **state)
{
	struct util_strset	  s;
	const char		**list;
	char			  name[32];
	size_t			  i, j, seen;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_false(util_strset_has(&s, "a"));
	assert_null(util_strset_list(&s));
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "dir/%zu", i);
		assert_true(util_strset_add(&s, name));
		assert_false(util_strset_add(&s, name));
	}
	assert_int_equal(s.count, 1000);
	assert_true(util_strset_has(&s, "dir/999"));
	assert_false(util_strset_has(&s, "dir/1000"));
	list = util_strset_list(&s);
	for (i = 0, seen = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "dir/%zu", i);
		for (j = 0; j < s.count; j++)
			if (strcmp(list[j], name) == 0)
				seen++;
	}
	assert_int_equal(seen, 1000);
	free(list);
	util_strset_clear(&s);
	assert_int_equal(s.count, 0);
	assert_false(util_strset_has(&s, "dir/1"));
	assert_true(util_strset_add(&s, "dir/1"));
	util_strset_free(&s);
	assert_int_equal(s.cap, 0);
}

/* Big buffers are aligned, kept when freed and handed out again, and
 * given back by a trim after a quiet period. */
static void
test_util_bigbuf_reuse(void **state)
{
	uint8_t	*a, *b, *c, *small;
	size_t	 kept;

	(void)state;
	util_bigbuf_trim();
	util_bigbuf_trim();
	assert_int_equal(util_bigbuf_cached(), 0);
	a = util_bigbuf_alloc(1024 * 1024);
	assert_int_equal((uintptr_t)a % UTIL_BIGBUF_ALIGN, 0);
	memset(a, 0xA5, 1024 * 1024);
	small = util_bigbuf_alloc(100);
	small[99] = 1;
	util_bigbuf_free(small);
	util_bigbuf_free(a);
	kept = util_bigbuf_cached();
	/* Address-sanitizer builds keep nothing (use after free is caught);
	 * others keep the big one only. */
	assert_true(kept == 0 || kept >= 1024 * 1024);
	b = util_bigbuf_alloc(512 * 1024);
	assert_int_equal((uintptr_t)b % UTIL_BIGBUF_ALIGN, 0);
	if (kept > 0) {
		assert_ptr_equal(b, a);
		assert_int_equal(util_bigbuf_cached(), 0);
	}
	/* Nothing bigger is kept: a fresh one. */
	c = util_bigbuf_alloc(2 * 1024 * 1024);
	memset(c, 0, 2 * 1024 * 1024);
	util_bigbuf_free(b);
	util_bigbuf_free(c);
	assert_true(util_bigbuf_cached() <= UTIL_BIGBUF_CACHE);
	/* Used since the last trim: kept; then quiet: released. */
	util_bigbuf_trim();
	if (kept > 0)
		assert_true(util_bigbuf_cached() >= 3 * 1024 * 1024);
	else
		assert_int_equal(util_bigbuf_cached(), 0);
	util_bigbuf_trim();
	assert_int_equal(util_bigbuf_cached(), 0);
	/* Plain free() is fine too. */
	free(util_bigbuf_alloc(UTIL_BIGBUF_MIN));
}

static void
test_util_buf_cap(void **state)
{
	struct util_buf	b;

	(void)state;
	util_buf_init(&b, 10);
	assert_int_equal(util_buf_append(&b, "hello", 5), 0);
	assert_int_equal(util_buf_printf(&b, "%d", 12345), 0);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "hello12345");
	/* One byte over the cap fails and leaves the buffer unchanged. */
	assert_int_equal(util_buf_append(&b, "x", 1), -E2BIG);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "hello12345");
	util_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	util_buf_free(&b);
	assert_null(b.data);
}

static void
test_util_atomic_write_roundtrip(void **state)
{
	char		*d = make_tmpdir(), *p = util_path_join(d, "f");
	char		*data = NULL;
	size_t		 len;
	struct stat	 st;

	(void)state;
	assert_int_equal(util_write_file_atomic(p, "one", 3, 0600), 0);
	assert_int_equal(util_write_file_atomic(p, "second", 6, 0640), 0);
	assert_int_equal(util_read_file(p, 100, &data, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(data, "second");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	free(data);
	free(p);
	rm_rf(d);
	free(d);
}

/* Each injected failure leaves the old content intact and no temp file. */
static void
test_util_atomic_write_faults(void **state)
{
	static const enum util_fault_kind kinds[] = {
		UTIL_FAULT_WRITE, UTIL_FAULT_FSYNC, UTIL_FAULT_RENAME
	};
	char	*d = make_tmpdir(), *p = util_path_join(d, "f");
	char	*data = NULL, *cmd;
	size_t	 len, i;

	(void)state;
	assert_int_equal(util_write_file_atomic(p, "keep", 4, 0600), 0);
	for (i = 0; i < 3; i++) {
		util_fault_set(kinds[i], 1, ENOSPC);
		assert_int_equal(util_write_file_atomic(p, "lost", 4, 0600),
		    -ENOSPC);
		util_fault_clear();
		assert_int_equal(util_read_file(p, 100, &data, &len), 0);
		assert_string_equal(data, "keep");
		free(data);
	}
	/* Only the target remains in the directory. */
	cmd = xasprintf("test $(ls -A '%s' | wc -l) -eq 1", d);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	/* The Nth call, not the first, fails when asked. */
	util_fault_set(UTIL_FAULT_FSYNC, 2, EIO);
	assert_int_equal(util_write_file_atomic(p, "ok", 2, 0600), -EIO);
	util_fault_clear();
	free(p);
	rm_rf(d);
	free(d);
}

static void
test_util_read_file_cap(void **state)
{
	char	*d = make_tmpdir(), *p = util_path_join(d, "f");
	char	*data = NULL;
	size_t	 len;

	(void)state;
	assert_int_equal(util_write_file_atomic(p, "0123456789", 10, 0600), 0);
	assert_int_equal(util_read_file(p, 9, &data, &len), -EFBIG);
	assert_null(data);
	assert_int_equal(util_read_file(p, 10, &data, &len), 0);
	assert_int_equal(len, 10);
	free(data);
	free(p);
	p = util_path_join(d, "missing");
	assert_int_equal(util_read_file(p, 10, &data, &len), -ENOENT);
	free(p);
	rm_rf(d);
	free(d);
}

static void
test_util_mkdir_p(void **state)
{
	char		*d = make_tmpdir(), *p = util_path_join(d, "a/b/c");
	char		*f = util_path_join(d, "file");
	struct stat	 st;

	(void)state;
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(util_mkdir_p(p, 0755), 0);	/* idempotent */
	assert_int_equal(util_write_file_atomic(f, "x", 1, 0600), 0);
	assert_int_equal(util_mkdir_p(f, 0755), -ENOTDIR);
	free(p);
	free(f);
	rm_rf(d);
	free(d);
}

static void
test_util_renameat(void **state)
{
	char	*d = make_tmpdir(), *a = util_path_join(d, "a");
	char	*b = util_path_join(d, "b"), *data = NULL;
	size_t	 len;
	int	 dfd;

	(void)state;
	assert_int_equal(util_write_file_atomic(a, "A", 1, 0600), 0);
	assert_int_equal(util_write_file_atomic(b, "B", 1, 0600), 0);
	dfd = open(d, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	/* No-replace refuses an existing target and changes nothing. */
	assert_int_equal(util_renameat(dfd, "a", "b", true), -EEXIST);
	assert_int_equal(util_read_file(b, 10, &data, &len), 0);
	assert_string_equal(data, "B");
	free(data);
	/* An injected fault leaves both names as they were. */
	util_fault_set(UTIL_FAULT_RENAME, 1, EIO);
	assert_int_equal(util_renameat(dfd, "a", "b", false), -EIO);
	util_fault_clear();
	assert_int_equal(util_read_file(a, 10, &data, &len), 0);
	assert_string_equal(data, "A");
	free(data);
	assert_int_equal(util_renameat(dfd, "a", "b", false), 0);
	assert_int_equal(util_read_file(b, 10, &data, &len), 0);
	assert_string_equal(data, "A");
	free(data);
	close(dfd);
	free(a);
	free(b);
	rm_rf(d);
	free(d);
}

static void
test_util_path_join(void **state)
{
	char	*p;

	(void)state;
	p = util_path_join("/a", "b");
	assert_string_equal(p, "/a/b");
	free(p);
	p = util_path_join("/a/", "b");
	assert_string_equal(p, "/a/b");
	free(p);
	p = util_path_join("/a", "");
	assert_string_equal(p, "/a");
	free(p);
}

static void
test_util_parse_u64(void **state)
{
	uint64_t	v = 0;

	(void)state;
	assert_int_equal(util_parse_u64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(util_parse_u64("101", 0, 100, &v), SH_EPARSE);
	assert_int_equal(util_parse_u64("-1", 0, 100, &v), SH_EPARSE);
	assert_int_equal(util_parse_u64("4x", 0, 100, &v), SH_EPARSE);
	assert_int_equal(util_parse_u64("", 0, 100, &v), SH_EPARSE);
	assert_int_equal(util_parse_u64("99999999999999999999999", 0,
	    UINT64_MAX, &v), SH_EPARSE);
}

static void
test_util_hex(void **state)
{
	const uint8_t	in[] = { 0x00, 0xab, 0xff };
	char		out[7];

	(void)state;
	util_hex(in, sizeof(in), out);
	assert_string_equal(out, "00abff");
}

static void
test_util_quote(void **state)
{
	char	buf[16];

	(void)state;
	assert_string_equal(util_quote("a\"b\\c", buf, sizeof(buf)),
	    "a\\\"b\\\\c");
	assert_string_equal(util_quote("x\ny", buf, sizeof(buf)), "x\\x0ay");
	/* Long values are cut with "..." and stay terminated. */
	util_quote("0123456789abcdefghij", buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	assert_non_null(strstr(buf, "..."));
}

/* A thread that reports its id and waits until told to end. */
struct sched_peer {
	pthread_mutex_t	mu;
	pthread_cond_t	cv;
	pid_t		tid;
	bool		done;
};

static void *
sched_peer_main(void *arg)
{
	struct sched_peer *sp = arg;

	pthread_mutex_lock(&sp->mu);
	sp->tid = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&sp->cv);
	while (!sp->done)
		pthread_cond_wait(&sp->cv, &sp->mu);
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

static void
sched_peer_start(struct sched_peer *sp, pthread_t *t)
{
	memset(sp, 0, sizeof(*sp));
	assert_int_equal(pthread_mutex_init(&sp->mu, NULL), 0);
	assert_int_equal(pthread_cond_init(&sp->cv, NULL), 0);
	assert_int_equal(pthread_create(t, NULL, sched_peer_main, sp), 0);
	pthread_mutex_lock(&sp->mu);
	while (sp->tid == 0)
		pthread_cond_wait(&sp->cv, &sp->mu);
	pthread_mutex_unlock(&sp->mu);
}

static void
sched_peer_stop(struct sched_peer *sp, pthread_t t)
{
	pthread_mutex_lock(&sp->mu);
	sp->done = true;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->mu);
}

/* low_priority: threads already running switch too, threads made later
 * inherit, and a thread the user put under SCHED_IDLE keeps it. */
static void
test_util_sched_batch(void **state)
{
	const struct sched_param zero = { .sched_priority = 0 };
	struct sched_peer	 old, idle, young;
	pthread_t		 to, ti, ty;

	(void)state;
	if (sched_getscheduler(0) != SCHED_OTHER)
		skip();	/* run under chrt: nothing to switch from */
	sched_peer_start(&old, &to);
	sched_peer_start(&idle, &ti);
	assert_int_equal(sched_setscheduler(idle.tid, SCHED_IDLE, &zero), 0);

	assert_int_equal(util_sched_batch(true), 0);
	assert_int_equal(sched_getscheduler(0), SCHED_BATCH);
	assert_int_equal(sched_getscheduler(old.tid), SCHED_BATCH);
	assert_int_equal(sched_getscheduler(idle.tid), SCHED_IDLE);
	sched_peer_start(&young, &ty);
	assert_int_equal(sched_getscheduler(young.tid), SCHED_BATCH);
	/* Twice is harmless. */
	assert_int_equal(util_sched_batch(true), 0);
	assert_int_equal(sched_getscheduler(old.tid), SCHED_BATCH);

	assert_int_equal(util_sched_batch(false), 0);
	assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
	assert_int_equal(sched_getscheduler(old.tid), SCHED_OTHER);
	assert_int_equal(sched_getscheduler(young.tid), SCHED_OTHER);
	assert_int_equal(sched_getscheduler(idle.tid), SCHED_IDLE);

	sched_peer_stop(&old, to);
	sched_peer_stop(&idle, ti);
	sched_peer_stop(&young, ty);
}

static void
test_util_err_names(void **state)
{
	(void)state;
	assert_string_equal(sh_strerror(SH_EPROTO), "protocol violation");
	assert_string_equal(sh_strerror(-ENOENT),
	    "no such file or directory");
	assert_string_equal(sh_strerror(-99999), "unknown error");
}

/* FNV-1a 64 reference values: the hash tables of folder, watch, ignore
 * and pull all rely on this one function. */
static void
test_util_str_hash(void **state)
{
	(void)state;
	assert_true(util_str_hash("") == 0xcbf29ce484222325ULL);
	assert_true(util_str_hash("a") == 0xaf63dc4c8601ec8cULL);
	assert_true(util_str_hash("foobar") == 0x85944171f73967e8ULL);
}

/* util_fdopendir owns the descriptor: a failure closes it, errno kept. */
static void
test_util_fdopendir(void **state)
{
	DIR	*d;
	int	 fd;

	(void)state;
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	d = util_fdopendir(fd);
	assert_non_null(d);
	assert_int_equal(closedir(d), 0);

	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	errno = 0;
	assert_null(util_fdopendir(fd));
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

#define NOBODY	65534

/* Child side of test_util_wd_readonly_dir: each failed step exits with its
 * own code. Runs as a user that owns `dir` (0555) and is not root. */
static int
wd_steps(const char *dir)
{
	struct stat	st;
	int		dfd, fd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 10;
	/* The plain call is refused: what the wrappers are for. */
	fd = openat(dfd, "plain", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 || errno != EACCES)
		return 11;
	fd = util_wd_openat(dfd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return 12;
	close(fd);
	if (util_wd_mkdirat(dfd, "d", 0700) != 0)
		return 13;
	if (util_wd_symlinkat("f", dfd, "l") != 0)
		return 14;
	if (util_wd_renameat(dfd, "f", "g", true) != 0)
		return 15;
	if (util_wd_unlinkat(dfd, "l", 0) != 0 ||
	    util_wd_unlinkat(dfd, "d", AT_REMOVEDIR) != 0)
		return 16;
	/* Other errors pass through; the mode is back as it was. */
	if (util_wd_renameat(dfd, "g", "g2", false) != 0 ||
	    util_wd_unlinkat(dfd, "nosuch", 0) != -ENOENT)
		return 17;
	if (fstat(dfd, &st) != 0 || (st.st_mode & 07777) != 0555)
		return 18;
	if (faccessat(dfd, "g2", F_OK, AT_SYMLINK_NOFOLLOW) != 0)
		return 19;
	close(dfd);
	return 0;
}

/* A directory without its owner write bit (0555 from a peer) takes the
 * puller's creates, renames and removals, and keeps its mode. Root is
 * never refused, so as root the steps run in a child as nobody. */
static void
test_util_wd_readonly_dir(void **state)
{
	char	 base[] = "/tmp/shoal-test-wd-XXXXXX";
	char	*dir, *cmd;
	pid_t	 pid;
	int	 status;

	(void)state;
	assert_non_null(mkdtemp(base));
	assert_int_equal(chmod(base, 0755), 0);
	dir = util_path_join(base, "ro");
	assert_int_equal(mkdir(dir, 0700), 0);
	if (geteuid() == 0)
		assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
	assert_int_equal(chmod(dir, 0555), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) != 0 ||
		    setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
			_exit(2);
		_exit(wd_steps(dir));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	cmd = xasprintf("rm -rf '%s'", base);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

static void
test_util_fmt_bytes(void **state)
{
	char	b[UTIL_BYTES_STR_SIZE];

	(void)state;
	assert_string_equal(util_fmt_bytes(0, b), "0 B");
	assert_string_equal(util_fmt_bytes(1023, b), "1023 B");
	assert_string_equal(util_fmt_bytes(1024, b), "1.0 KiB");
	assert_string_equal(util_fmt_bytes(300000, b), "293.0 KiB");
	/* Just under 1 MiB rounds to it, not to "1024.0 KiB". */
	assert_string_equal(util_fmt_bytes((1 << 20) - 1, b), "1.0 MiB");
	assert_string_equal(util_fmt_bytes(3ull << 29, b), "1.5 GiB");
	assert_string_equal(util_fmt_bytes(UINT64_MAX, b), "16.0 EiB");
}

/* One holder at a time; a second nowait taker is told so. */
static void
test_util_lock_file(void **state)
{
	char	base[] = "/tmp/shoal-test-lock-XXXXXX";
	char	*p;
	int	a, b;

	(void)state;
	assert_non_null(mkdtemp(base));
	a = util_lock_file(base, "x.lock", true);
	assert_true(a >= 0);
	assert_int_equal(util_lock_file(base, "x.lock", true), -EWOULDBLOCK);
	close(a);
	b = util_lock_file(base, "x.lock", false);
	assert_true(b >= 0);
	close(b);
	assert_int_equal(util_lock_file("/nonexistent-dir", "x.lock", true),
	    -ENOENT);
	p = util_path_join(base, "x.lock");
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(rmdir(base), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_util_str_hash),
		cmocka_unit_test(test_util_fmt_bytes),
		cmocka_unit_test(test_util_buf_cap),
		cmocka_unit_test(test_util_bigbuf_reuse),
		cmocka_unit_test(test_util_strset),
		cmocka_unit_test(test_util_fdopendir),
		cmocka_unit_test(test_util_pread_uncached),
		cmocka_unit_test(test_util_atomic_write_roundtrip),
		cmocka_unit_test(test_util_atomic_write_faults),
		cmocka_unit_test(test_util_read_file_cap),
		cmocka_unit_test(test_util_mkdir_p),
		cmocka_unit_test(test_util_renameat),
		cmocka_unit_test(test_util_path_join),
		cmocka_unit_test(test_util_parse_u64),
		cmocka_unit_test(test_util_wd_readonly_dir),
		cmocka_unit_test(test_util_lock_file),
		cmocka_unit_test(test_util_hex),
		cmocka_unit_test(test_util_quote),
		cmocka_unit_test(test_util_err_names),
		cmocka_unit_test(test_util_sched_batch),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}

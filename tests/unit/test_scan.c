/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for scan.c against a real index in a temp directory: new,
 * modified, unchanged, deleted entries, symlinks, ignores, internal and
 * invalid names, the root/marker rule, partial scans and cancel.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "shoal/db.h"
#include "shoal/hash.h"
#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/scan.h"
#include "shoal/util.h"

#define SHORT_ID	0x1234567890abcdefULL

struct fx {
	char		 base[64];	/* temp dir holding root/ and index.db */
	char		*root;
	struct db	*db;
	int64_t		 idx;
};

static void
write_file(struct fx *f, const char *rel, const void *data, size_t len)
{
	char	*p = util_path_join(f->root, rel);
	int	 fd;

	/* No fsync: thousands of files must be quick to make. */
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
	free(p);
}

static void
make_dir(struct fx *f, const char *rel)
{
	char	*p = util_path_join(f->root, rel);

	assert_int_equal(util_mkdir_p(p, 0755), 0);
	free(p);
}

static int
setup(void **state)
{
	struct fx	*f = xcalloc(1, sizeof(*f));
	char		*dbp;

	snprintf(f->base, sizeof(f->base), "/tmp/shoal-test-scan-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	f->root = util_path_join(f->base, "root");
	make_dir(f, ".stfolder");
	dbp = util_path_join(f->base, "index.db");
	assert_int_equal(db_open(dbp, &f->db), 0);
	free(dbp);
	assert_int_equal(db_folder_idx(f->db, "default", &f->idx), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		*cmd;

	db_close(f->db);
	cmd = xasprintf("rm -rf '%s'", f->base);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", f->base);
	free(cmd);
	free(f->root);
	free(f);
	return 0;
}

static int
scan_all(struct fx *f, const struct ignore *ig, struct scan_progress *pr)
{
	return scan_run_once(f->db, f->idx, "default", f->root, SHORT_ID, ig,
	    false, pr);
}

static struct record *
get(struct fx *f, const char *name)
{
	struct record	*r = NULL;
	int		 rc;

	rc = db_file_get(f->db, f->idx, DB_LOCAL_DEVICE, name, &r);
	if (rc == SH_ENOTFOUND)
		return NULL;
	assert_int_equal(rc, 0);
	return r;
}

static uint64_t
counter(const struct record *r)
{
	size_t	i;

	for (i = 0; i < r->version.count; i++)
		if (r->version.counters[i].id == SHORT_ID)
			return r->version.counters[i].value;
	return 0;
}

static void
test_scan_records_new_entries(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	uint8_t			 h[32];
	char			*big, *p;
	size_t			 len = 300 * 1024;

	write_file(f, "a.txt", "hello", 5);
	write_file(f, "empty", "", 0);
	make_dir(f, "sub/deeper");
	big = xmalloc(len);
	memset(big, 'x', len);
	write_file(f, "sub/deeper/big.bin", big, len);
	p = util_path_join(f->root, "link");
	assert_int_equal(symlink("sub/deeper", p), 0);
	free(p);
	p = util_path_join(f->root, "sub/deeper/big.bin");
	assert_int_equal(chmod(p, 0600), 0);
	free(p);

	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 6);	/* a, empty, sub, deeper, big, link */
	assert_int_equal(pr.files_hashed, 3);
	assert_int_equal(pr.bytes_hashed, 5 + len);

	r = get(f, "a.txt");
	assert_non_null(r);
	assert_int_equal(r->type, RECORD_TYPE_FILE);
	assert_int_equal(r->size, 5);
	assert_int_equal(r->block_count, 1);
	assert_int_equal(hash_sha256("hello", 5, h), 0);
	assert_memory_equal(r->blocks[0].hash, h, 32);
	assert_int_equal(r->blocks[0].weak_hash, 0x062c0215);
	assert_true(r->has_blocks_hash);
	assert_int_equal(r->modified_by, SHORT_ID);
	assert_true(counter(r) >= (uint64_t)util_now_unix() - 5);
	assert_int_equal(r->permissions, 0644);
	assert_true(r->sequence > 0);
	record_free(r);

	r = get(f, "empty");
	assert_int_equal(r->block_count, 1);
	assert_int_equal(r->blocks[0].size, 0);
	record_free(r);

	r = get(f, "sub/deeper/big.bin");
	assert_int_equal(r->size, (int64_t)len);
	assert_int_equal(r->block_count, 3);
	assert_int_equal(r->block_size, 128 * 1024);
	assert_int_equal(r->blocks[2].offset, 256 * 1024);
	assert_int_equal(r->blocks[2].size, 44 * 1024);
	assert_int_equal(r->permissions, 0600);
	record_free(r);

	r = get(f, "sub/deeper");
	assert_int_equal(r->type, RECORD_TYPE_DIRECTORY);
	assert_int_equal(r->block_count, 0);
	record_free(r);

	r = get(f, "link");
	assert_int_equal(r->type, RECORD_TYPE_SYMLINK);
	assert_string_equal(r->symlink_target, "sub/deeper");
	assert_int_equal(r->modified_s, 0);
	assert_true(r->no_permissions);
	record_free(r);
	/* Never followed: nothing below the link. */
	assert_null(get(f, "link/big.bin"));
	assert_null(get(f, ".stfolder"));
	free(big);
}

static void
test_scan_unchanged_is_skipped(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	int64_t			 seq;

	write_file(f, "a.txt", "hello", 5);
	make_dir(f, "d");
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	r = get(f, "a.txt");
	seq = r->sequence;
	record_free(r);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 0);
	assert_int_equal(pr.files_hashed, 0);
	r = get(f, "a.txt");
	assert_int_equal(r->sequence, seq);
	record_free(r);
}

/* Pull temp files older than a day are removed; fresh ones are kept for
 * resuming; neither is indexed. */
static void
test_scan_stale_temp_files_removed(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct timespec		 old[2];
	char			*p;

	write_file(f, ".syncthing.old.bin.tmp", "x", 1);
	write_file(f, ".syncthing.new.bin.tmp", "y", 1);
	write_file(f, ".syncthing.notatemp", "z", 1);
	p = util_path_join(f->root, ".syncthing.old.bin.tmp");
	old[0].tv_sec = old[1].tv_sec = time(NULL) - 2 * 86400;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	p = util_path_join(f->root, ".syncthing.new.bin.tmp");
	assert_int_equal(access(p, F_OK), 0);
	free(p);
	assert_null(get(f, ".syncthing.new.bin.tmp"));
	assert_null(get(f, ".syncthing.old.bin.tmp"));
}

static void
test_scan_modified_bumps_version(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	uint64_t		 v1;
	uint8_t			 h[32];
	int64_t			 seq;

	write_file(f, "a.txt", "hello", 5);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	r = get(f, "a.txt");
	v1 = counter(r);
	seq = r->sequence;
	record_free(r);
	write_file(f, "a.txt", "hello world", 11);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 1);
	r = get(f, "a.txt");
	assert_int_equal(r->size, 11);
	assert_true(counter(r) > v1);
	assert_true(r->sequence > seq);
	assert_int_equal(hash_sha256("hello world", 11, h), 0);
	assert_memory_equal(r->blocks[0].hash, h, 32);
	record_free(r);
}

/* scan --once of a receiveonly folder flags local changes as the
 * daemon's scans do (bep-brief §11): they never go out as valid. */
static void
test_scan_once_receive_only_flags_changes(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;

	write_file(f, "plain.txt", "x", 1);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	r = get(f, "plain.txt");
	assert_false(r->local_flags & RECORD_LOCAL_RECEIVEONLY);
	record_free(r);
	write_file(f, "mine.txt", "local edit", 10);
	assert_int_equal(scan_run_once(f->db, f->idx, "default", f->root,
	    SHORT_ID, NULL, true, &pr), 0);
	assert_int_equal(pr.changes, 1);
	r = get(f, "mine.txt");
	assert_non_null(r);
	assert_true(r->local_flags & RECORD_LOCAL_RECEIVEONLY);
	record_free(r);
}

static void
test_scan_deleted_become_tombstones(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	uint64_t		 v1;
	char			*cmd;

	write_file(f, "keep.txt", "k", 1);
	make_dir(f, "gone/inner");
	write_file(f, "gone/inner/x.txt", "hello", 5);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	r = get(f, "gone/inner/x.txt");
	v1 = counter(r);
	record_free(r);
	cmd = xasprintf("rm -rf '%s/gone'", f->root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 3);
	r = get(f, "gone/inner/x.txt");
	assert_true(r->deleted);
	assert_int_equal(r->type, RECORD_TYPE_FILE);
	assert_int_equal(r->size, 0);
	assert_int_equal(r->block_count, 0);
	assert_int_equal(r->permissions, 0644);
	assert_true(counter(r) > v1);
	record_free(r);
	r = get(f, "gone");
	assert_true(r->deleted);
	assert_int_equal(r->type, RECORD_TYPE_DIRECTORY);
	record_free(r);
	r = get(f, "keep.txt");
	assert_false(r->deleted);
	record_free(r);
	/* A tombstone is not deleted again. */
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 0);
}

static void
test_scan_missing_marker_records_nothing(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	char			*p;

	write_file(f, "a.txt", "hello", 5);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	p = util_path_join(f->root, "a.txt");
	assert_int_equal(unlink(p), 0);
	free(p);
	p = util_path_join(f->root, ".stfolder");
	assert_int_equal(rmdir(p), 0);
	free(p);
	assert_int_equal(scan_all(f, NULL, &pr), SH_EFOLDER);
	r = get(f, "a.txt");
	assert_false(r->deleted);
	record_free(r);

	/* A missing root fails the same way. */
	p = xasprintf("%s/nope", f->base);
	assert_int_equal(scan_run_once(f->db, f->idx, "default", p, SHORT_ID,
	    NULL, false, &pr), SH_EFOLDER);
	free(p);
}

static void
test_scan_ignored_and_internal_names(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct ignore		*ig = NULL;
	struct record		*r;
	char			 err[256];
	const char		*pat = "*.log\nbuild\n";

	write_file(f, "a.log", "x", 1);
	write_file(f, "b.txt", "x", 1);
	write_file(f, ".syncthing.b.txt.tmp", "x", 1);
	write_file(f, "\xff\xfe.txt", "x", 1);
	make_dir(f, "build/obj");
	write_file(f, "build/obj/o.o", "x", 1);
	/* First without patterns: a.log gets indexed. */
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	r = get(f, "a.log");
	assert_non_null(r);
	record_free(r);
	assert_null(get(f, ".syncthing.b.txt.tmp"));
	assert_null(get(f, "\xff\xfe.txt"));

	assert_int_equal(ignore_parse(pat, strlen(pat), "test", NULL, &ig, err,
	    sizeof(err)), 0);
	assert_int_equal(scan_all(f, ig, &pr), 0);
	/* Previously indexed, now ignored: re-announced as invalid. */
	r = get(f, "a.log");
	assert_true(r->invalid);
	assert_true(r->local_flags & RECORD_LOCAL_IGNORED);
	assert_int_equal(r->block_count, 0);
	record_free(r);
	r = get(f, "build/obj/o.o");
	assert_true(r->invalid);
	record_free(r);
	r = get(f, "b.txt");
	assert_false(r->invalid);
	record_free(r);
	/* Stable: nothing changes on the next scan. */
	assert_int_equal(scan_all(f, ig, &pr), 0);
	assert_int_equal(pr.changes, 0);
	ignore_free(ig);
}

struct run_ctx {
	int	status;
	bool	done;
	int	changes;
};

static void
run_done(struct scan *s, int status, void *arg)
{
	struct run_ctx	*c = arg;

	(void)s;
	c->status = status;
	c->done = true;
}

static void
run_change(const struct record *r, void *arg)
{
	struct run_ctx	*c = arg;

	(void)r;
	c->changes++;
}

static int
run_scan(struct fx *f, const char *const *paths, size_t n, bool cancel,
    struct run_ctx *c)
{
	uv_loop_t		 loop;
	struct scan_params	 p;
	struct scan		*s;
	int			 rc;

	memset(c, 0, sizeof(*c));
	assert_int_equal(uv_loop_init(&loop), 0);
	memset(&p, 0, sizeof(p));
	p.loop = &loop;
	p.db = f->db;
	p.folder_idx = f->idx;
	p.folder_id = "default";
	p.root = f->root;
	p.short_id = SHORT_ID;
	p.change_cb = run_change;
	p.done_cb = run_done;
	p.arg = c;
	rc = scan_start(&p, paths, n, &s);
	if (rc == 0) {
		if (cancel)
			scan_cancel(s);
		assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
		assert_true(c->done);
		rc = c->status;
	}
	assert_int_equal(uv_loop_close(&loop), 0);
	return rc;
}

static void
test_scan_partial_paths(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct run_ctx		 c;
	struct record		*r;
	const char		*paths[] = { "new/dir/f.txt", "old.txt" };
	char			*p;

	write_file(f, "old.txt", "o", 1);
	write_file(f, "untouched.txt", "u", 1);
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	p = util_path_join(f->root, "old.txt");
	assert_int_equal(unlink(p), 0);
	free(p);
	make_dir(f, "new/dir");
	write_file(f, "new/dir/f.txt", "hello", 5);
	write_file(f, "new/other.txt", "not asked for", 13);
	assert_int_equal(run_scan(f, paths, 2, false, &c), 0);
	/* f.txt, its two new ancestors, the tombstone for old.txt. */
	assert_int_equal(c.changes, 4);
	r = get(f, "new/dir/f.txt");
	assert_int_equal(r->size, 5);
	record_free(r);
	r = get(f, "new");
	assert_int_equal(r->type, RECORD_TYPE_DIRECTORY);
	record_free(r);
	r = get(f, "old.txt");
	assert_true(r->deleted);
	record_free(r);
	assert_null(get(f, "new/other.txt"));
}

static void
test_scan_cancel_reports_ecanceled(void **state)
{
	struct fx	*f = *state;
	struct run_ctx	 c;
	char		 name[32];
	int		 i;

	for (i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		write_file(f, name, name, strlen(name));
	}
	assert_int_equal(run_scan(f, NULL, 0, true, &c), -ECANCELED);
}

static void
test_scan_many_files_group_commit(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct db_counts	 cnt;
	char			 name[64];
	int			 i;

	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "d%02d/f%04d.txt", i % 20, i);
		if (i < 20) {
			snprintf(name, sizeof(name), "d%02d", i);
			make_dir(f, name);
			snprintf(name, sizeof(name), "d%02d/f%04d.txt", i % 20,
			    i);
		}
		write_file(f, name, name, strlen(name));
	}
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 2020);
	assert_int_equal(db_counts(f->db, f->idx, DB_LOCAL_DEVICE, &cnt), 0);
	assert_int_equal(cnt.files, 2000);
	assert_int_equal(cnt.directories, 20);

	/* Everything deleted: 2020 tombstones, committed in batches. */
	for (i = 0; i < 20; i++) {
		char	*cmd = xasprintf("rm -rf '%s/d%02d'", f->root, i);

		assert_int_equal(system(cmd), 0);
		free(cmd);
	}
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.changes, 2020);
	assert_int_equal(db_counts(f->db, f->idx, DB_LOCAL_DEVICE, &cnt), 0);
	assert_int_equal(cnt.files, 0);
	assert_int_equal(cnt.directories, 0);
	assert_int_equal(cnt.deleted, 2020);
}

/* Bytes that differ per block, so that a block hashed at the wrong offset
 * or into the wrong slot shows. */
static uint8_t *
pattern(size_t len, uint32_t seed)
{
	uint8_t		*b = xmalloc(len);
	uint32_t	 x = seed;
	size_t		 i;

	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 16);
	}
	return b;
}

/* Big files are hashed in parts on several pool threads; the records must
 * hold exactly what one thread hashing the whole file computes. */
static void
test_scan_big_file_parts_match_single_thread(void **state)
{
	struct fx		*f = *state;
	struct scan_progress	 pr;
	struct record		*r;
	struct record_block	*bl;
	const char		*names[] = { "big1.bin", "big2.bin", "small" };
	const size_t		 sizes[] = { (40 << 20) + 12345, 20 << 20,
				    3000 };
	uint8_t			*data;
	uint64_t		 total = 0;
	size_t			 i, k, n;
	char			*p;
	int			 fd;

	for (i = 0; i < 3; i++) {
		data = pattern(sizes[i], (uint32_t)i + 1);
		write_file(f, names[i], data, sizes[i]);
		free(data);
		total += sizes[i];
	}
	assert_int_equal(scan_all(f, NULL, &pr), 0);
	assert_int_equal(pr.files_hashed, 3);
	assert_int_equal(pr.bytes_hashed, total);
	for (i = 0; i < 3; i++) {
		r = get(f, names[i]);
		assert_non_null(r);
		assert_int_equal(r->size, (int64_t)sizes[i]);
		p = util_path_join(f->root, names[i]);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		free(p);
		assert_true(fd >= 0);
		assert_int_equal(hash_file_work(fd, r->size, r->block_size, &bl,
		    &n, NULL, NULL), 0);
		close(fd);
		/* More than one part of SCAN_PART_BYTES for big1. */
		if (i == 0)
			assert_true((uint64_t)r->block_size * n > (32u << 20));
		assert_int_equal(r->block_count, n);
		for (k = 0; k < n; k++) {
			assert_int_equal(r->blocks[k].offset, bl[k].offset);
			assert_int_equal(r->blocks[k].size, bl[k].size);
			assert_int_equal(r->blocks[k].weak_hash,
			    bl[k].weak_hash);
			assert_memory_equal(r->blocks[k].hash, bl[k].hash,
			    RECORD_HASH_LEN);
		}
		free(bl);
		record_free(r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_scan_records_new_entries,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_stale_temp_files_removed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_unchanged_is_skipped,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_modified_bumps_version, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_deleted_become_tombstones, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_once_receive_only_flags_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_missing_marker_records_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_ignored_and_internal_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_partial_paths,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_big_file_parts_match_single_thread, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_cancel_reports_ecanceled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scan_many_files_group_commit, setup, teardown),
	};

	if (getenv("SHOAL_TEST_VERBOSE") == NULL)
		if (log_set_level("warn") != 0)
			return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* Unit tests for conflict.c: conflict-copy names (bep-brief §10.7, with
 * the observed example), the "already a copy" test, and moving a file
 * aside without ever replacing another one. */
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

#include "shoal/conflict.h"
#include "shoal/err.h"
#include "shoal/util.h"

/* 2026-11-28 00:53:46 UTC, the moment of the observed conflict. */
#define T_OBSERVED	((time_t)1795827226)

/* The short ID whose text form is `text` (7 base32 characters = the top
 * 35 bits). */
static uint64_t
short_from_text(const char *text)
{
	const char	*alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint64_t	 v = 0;
	size_t		 i;

	for (i = 0; i < 7; i++)
		v = (v << 5) | (uint64_t)(strchr(alpha, text[i]) - alpha);
	return (v << 29) | 0x12345;
}

static int
setup_utc(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

static void
test_conflict_name_observed(void **state)
{
	char	*n;

	(void)state;
	n = conflict_name("hello.txt", T_OBSERVED, short_from_text("YE5BNEC"));
	assert_string_equal(n, "hello.sync-conflict-20261128-005346-YE5BNEC.txt");
	free(n);
}

static void
test_conflict_name_go_ext(void **state)
{
	uint64_t	 id = short_from_text("YE5BNEC");
	char		*n;

	(void)state;
	/* filepath.Ext(".bashrc") is ".bashrc": the stem is empty. */
	n = conflict_name(".bashrc", T_OBSERVED, id);
	assert_string_equal(n, ".sync-conflict-20261128-005346-YE5BNEC.bashrc");
	free(n);
	n = conflict_name("a.tar.gz", T_OBSERVED, id);
	assert_string_equal(n, "a.tar.sync-conflict-20261128-005346-YE5BNEC.gz");
	free(n);
	n = conflict_name("Makefile", T_OBSERVED, id);
	assert_string_equal(n, "Makefile.sync-conflict-20261128-005346-YE5BNEC");
	free(n);
	/* The directory part is kept and a '.' in it is not an extension. */
	n = conflict_name("dir.d/sub/notes", T_OBSERVED, id);
	assert_string_equal(n,
	    "dir.d/sub/notes.sync-conflict-20261128-005346-YE5BNEC");
	free(n);
	n = conflict_name("dir/x.txt", T_OBSERVED, id);
	assert_string_equal(n, "dir/x.sync-conflict-20261128-005346-YE5BNEC.txt");
	free(n);
	n = conflict_name("trail.", T_OBSERVED, id);
	assert_string_equal(n, "trail.sync-conflict-20261128-005346-YE5BNEC.");
	free(n);
}

static void
test_conflict_name_zero_id_and_suffix(void **state)
{
	char	*n;

	(void)state;
	n = conflict_name("hello.txt", T_OBSERVED, 0);
	assert_string_equal(n, "hello.sync-conflict-20261128-005346-.txt");
	free(n);
	n = conflict_name_suffix("hello.txt", T_OBSERVED,
	    short_from_text("YE5BNEC"), 2);
	assert_string_equal(n,
	    "hello.sync-conflict-20261128-005346-YE5BNEC-2.txt");
	free(n);
}

static void
test_conflict_name_local_time(void **state)
{
	char	*n;

	(void)state;
	/* The copy is named in the local time zone of the device. */
	setenv("TZ", "UTC-2", 1);
	tzset();
	n = conflict_name("hello.txt", T_OBSERVED, short_from_text("YE5BNEC"));
	assert_string_equal(n, "hello.sync-conflict-20261128-025346-YE5BNEC.txt");
	free(n);
	setenv("TZ", "UTC", 1);
	tzset();
}

static void
test_conflict_is_copy(void **state)
{
	(void)state;
	assert_true(conflict_is_copy(
	    "hello.sync-conflict-20261128-005346-YE5BNEC.txt"));
	assert_true(conflict_is_copy(
	    "d/hello.sync-conflict-20261128-005346-YE5BNEC.txt"));
	assert_false(conflict_is_copy("hello.txt"));
	/* Only the base name counts. */
	assert_false(conflict_is_copy("x.sync-conflict-1/hello.txt"));
}

static char *
make_tmpdir(void)
{
	char	*d = xstrdup("/tmp/shoal-test-conflict.XXXXXX");

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

static void
put(const char *dir, const char *name, const char *text)
{
	char	*p = util_path_join(dir, name);

	assert_int_equal(util_write_file_atomic(p, text, strlen(text), 0644),
	    0);
	free(p);
}

static void
expect_content(const char *dir, const char *name, const char *text)
{
	char	*p = util_path_join(dir, name), *data = NULL;
	size_t	 len = 0;

	assert_int_equal(util_read_file(p, 1 << 20, &data, &len), 0);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(data, text, len);
	free(data);
	free(p);
}

static void
test_conflict_move_no_overwrite(void **state)
{
	uint64_t	 id = short_from_text("YE5BNEC");
	char		*d = make_tmpdir(), *sub, *out = NULL, *out2 = NULL;

	(void)state;
	sub = util_path_join(d, "sub");
	assert_int_equal(mkdir(sub, 0755), 0);
	put(d, "sub/hello.txt", "mine");
	assert_int_equal(conflict_move(d, "sub/hello.txt", T_OBSERVED, id,
	    &out), 0);
	assert_string_equal(out,
	    "sub/hello.sync-conflict-20261128-005346-YE5BNEC.txt");
	expect_content(d, out, "mine");
	assert_int_equal(access(sub, F_OK), 0);

	/* Same file, same second, same winner: the first copy is kept and
	 * the second gets a counter. */
	put(d, "sub/hello.txt", "mine again");
	assert_int_equal(conflict_move(d, "sub/hello.txt", T_OBSERVED, id,
	    &out2), 0);
	assert_string_equal(out2,
	    "sub/hello.sync-conflict-20261128-005346-YE5BNEC-1.txt");
	expect_content(d, out, "mine");
	expect_content(d, out2, "mine again");
	free(out);
	free(out2);
	free(sub);
	rm_rf(d);
	free(d);
}

static int
open_dir(const char *root, const char *sub)
{
	char	*p = util_path_join(root, sub);
	int	 fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(fd >= 0);
	free(p);
	return fd;
}

static bool
present(const char *dir, const char *name)
{
	char	*p = util_path_join(dir, name);
	bool	 ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

/*
 * maxConflicts: the newest copies of that very file are kept, older ones
 * removed and reported (with the directory part) for a rescan; copies of
 * other names, other extensions, malformed names and directories are
 * left alone; -1 removes nothing, 0 every copy.
 */
static void
test_conflict_prune_keeps_newest(void **state)
{
	static const char *const copies[] = {
		"sub/a.sync-conflict-20260101-000000-AAAAAAA.txt",
		"sub/a.sync-conflict-20260102-000000-AAAAAAA.txt",
		"sub/a.sync-conflict-20260103-000000-AAAAAAA.txt",
		"sub/a.sync-conflict-20260103-000000-AAAAAAA-1.txt",
		"sub/a.sync-conflict-20260104-000000-BBBBBBB.txt",
	};
	static const char *const others[] = {
		"sub/a.txt",
		"sub/a.sync-conflict-short.txt",
		"sub/ab.sync-conflict-20260101-000000-AAAAAAA.txt",
		"sub/a.sync-conflict-20260101-000000-AAAAAAA.md",
		"sub/b.sync-conflict-20260101-000000-AAAAAAA.txt",
	};
	char	*d = make_tmpdir(), *sub, *dir, **removed = NULL;
	size_t	 i, n = 0;
	int	 fd;

	(void)state;
	sub = util_path_join(d, "sub");
	assert_int_equal(mkdir(sub, 0755), 0);
	for (i = 0; i < sizeof(copies) / sizeof(copies[0]); i++)
		put(d, copies[i], "old");
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		put(d, others[i], "other");
	dir = util_path_join(d,
	    "sub/a.sync-conflict-20250101-000000-AAAAAAA.txt");
	assert_int_equal(mkdir(dir, 0755), 0);
	fd = open_dir(d, "sub");

	assert_int_equal(conflict_prune_at(fd, "sub/a.txt", NULL, -1,
	    &removed, &n), 0);
	assert_int_equal(n, 0);
	/* The copy just made counts as the newest whatever its name. */
	assert_int_equal(conflict_prune_at(fd, "sub/a.txt", copies[0], 3,
	    &removed, &n), 0);
	assert_int_equal(n, 2);
	assert_true(present(d, copies[0]));
	assert_false(present(d, copies[1]));
	assert_false(present(d, copies[2]));
	/* Then by stamp, and "-1" after the copy without a suffix. */
	assert_string_equal(removed[0], copies[2]);
	assert_string_equal(removed[1], copies[1]);
	assert_int_equal(conflict_prune_at(fd, "sub/a.txt", NULL, 2, &removed,
	    &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(removed[2], copies[0]);
	assert_true(present(d, copies[3]));
	assert_true(present(d, copies[4]));
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_true(present(d, others[i]));
	assert_true(present(d, "sub/a.sync-conflict-20250101-000000-AAAAAAA.txt"));

	assert_int_equal(conflict_prune_at(fd, "sub/a.txt", NULL, 0, &removed,
	    &n), 0);
	assert_int_equal(n, 5);
	assert_false(present(d, copies[3]));
	assert_false(present(d, copies[4]));
	assert_true(present(d, "sub/a.txt"));
	for (i = 0; i < n; i++)
		free(removed[i]);
	free(removed);
	close(fd);
	free(dir);
	free(sub);
	rm_rf(d);
	free(d);
}

static void
test_conflict_move_refuses_symlinked_dir(void **state)
{
	char	*d = make_tmpdir(), *outside = make_tmpdir(), *link, *out = NULL;

	(void)state;
	put(outside, "f.txt", "outside");
	link = util_path_join(d, "ln");
	assert_int_equal(symlink(outside, link), 0);
	/* A symlinked directory on the way is never followed. */
	assert_int_not_equal(conflict_move(d, "ln/f.txt", T_OBSERVED, 0,
	    &out), 0);
	assert_null(out);
	expect_content(outside, "f.txt", "outside");
	/* A missing file is an error, not a silent success. */
	assert_int_equal(conflict_move(d, "nope.txt", T_OBSERVED, 0, &out),
	    -ENOENT);
	free(link);
	rm_rf(d);
	rm_rf(outside);
	free(d);
	free(outside);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conflict_name_observed),
		cmocka_unit_test(test_conflict_name_go_ext),
		cmocka_unit_test(test_conflict_name_zero_id_and_suffix),
		cmocka_unit_test(test_conflict_name_local_time),
		cmocka_unit_test(test_conflict_is_copy),
		cmocka_unit_test(test_conflict_move_no_overwrite),
		cmocka_unit_test(test_conflict_move_refuses_symlinked_dir),
		cmocka_unit_test(test_conflict_prune_keeps_newest),
	};

	return cmocka_run_group_tests(tests, setup_utc, NULL);
}

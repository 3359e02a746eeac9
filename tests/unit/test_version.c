/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for version.c: tagged names and their parsing, the staggered
 * schedule, keeping (simple, trash can, staggered thinning), undo,
 * listing and restoring, and refusal to follow a symlinked store.
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

#include "shoal/util.h"
#include "shoal/version.h"

#define T0	((time_t)1700000000)	/* 2023-11-14 22:13:20 UTC */

struct fx {
	char	 base[64];
	char	*root;
};

static int
setup(void **state)
{
	struct fx	*x = xcalloc(1, sizeof(*x));

	snprintf(x->base, sizeof(x->base), "/tmp/shoal-test-version-XXXXXX");
	assert_non_null(mkdtemp(x->base));
	x->root = util_path_join(x->base, "root");
	assert_int_equal(mkdir(x->root, 0755), 0);
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*x = *state;
	char		*cmd = xasprintf("rm -rf '%s'", x->base);

	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(x->root);
	free(x);
	return 0;
}

static void
put(struct fx *x, const char *rel, const char *text)
{
	char	*p = util_path_join(x->root, rel);

	assert_int_equal(util_write_file_atomic(p, text, strlen(text), 0644),
	    0);
	free(p);
}

/* The text of root/rel, or NULL when it does not exist. Caller frees. */
static char *
get(struct fx *x, const char *rel)
{
	char	*p = util_path_join(x->root, rel), *buf = NULL;
	size_t	 len = 0;

	if (util_read_file(p, 4096, &buf, &len) != 0)
		buf = NULL;
	free(p);
	return buf;
}

/* Keep root/name (one directory level at most) as `type` at `now`. */
static int
keep(struct fx *x, const char *name, enum config_versioning type,
    time_t now, char **stored)
{
	const char	*slash = strrchr(name, '/');
	char		*dir;
	int		 dfd, rc;

	dir = slash != NULL ? xasprintf("%s/%.*s", x->root,
	    (int)(slash - name), name) : xstrdup(x->root);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	rc = version_keep_at(x->root, dfd, name, type, now, stored);
	close(dfd);
	free(dir);
	return rc;
}

static void
test_version_names(void **state)
{
	char	*n, *orig;
	time_t	 when;

	(void)state;
	n = version_tagged_name("a/b.txt", T0, 0);
	assert_string_equal(n, "a/b~20231114-221320.txt");
	free(n);
	n = version_tagged_name("a.tar.gz", T0, 2);
	assert_string_equal(n, "a.tar~20231114-221320-2.gz");
	free(n);
	n = version_tagged_name(".bashrc", T0, 0);
	assert_string_equal(n, "~20231114-221320.bashrc");
	free(n);
	n = version_tagged_name("noext", T0, 0);
	assert_string_equal(n, "noext~20231114-221320");
	free(n);

	assert_true(version_parse("b~20231114-221320.txt", &orig, &when));
	assert_string_equal(orig, "b.txt");
	assert_true(when == T0);
	free(orig);
	assert_true(version_parse("a.tar~20231114-221320-2.gz", &orig,
	    &when));
	assert_string_equal(orig, "a.tar.gz");
	free(orig);
	assert_true(version_parse("~20231114-221320.bashrc", &orig, &when));
	assert_string_equal(orig, ".bashrc");
	free(orig);
	assert_true(version_parse("x~1~20231114-221320", &orig, &when));
	assert_string_equal(orig, "x~1");
	free(orig);
	/* Not tags: short, bad month, text after the tag, nothing else. */
	assert_false(version_parse("b~2023.txt", &orig, &when));
	assert_false(version_parse("b~20231314-221320.txt", &orig, &when));
	assert_false(version_parse("b~20231114-221320x.txt", &orig, &when));
	assert_false(version_parse("b~20231114-221320.tar.gz", &orig, &when));
	assert_false(version_parse("~20231114-221320", &orig, &when));
	assert_false(version_parse("plain.txt", &orig, &when));
}

static void
test_version_expire(void **state)
{
	/* Ages (newest first): 0, 10 s, 40 s, 50 s, 2 h, 2 h 10 min,
	 * 3 days, 3 days + 1 h, 60 days, 62 days, 400 days. */
	static const time_t age[] = { 0, 10, 40, 50, 7200, 7800,
	    3 * 86400, 3 * 86400 + 3600, 60 * 86400, 62 * 86400,
	    400 * 86400 };
	/* Kept: the newest; then one per 30 s step (40 s), per hour (2 h),
	 * per day (3 days), per week (60 days); nothing past a year. */
	static const bool want[] = { false, true, false, true, false, true,
	    false, true, false, true, true };
	time_t	times[11];
	bool	rm[11];
	size_t	i;

	(void)state;
	for (i = 0; i < 11; i++)
		times[i] = T0 - age[i];
	version_expire(times, 11, T0, rm);
	for (i = 0; i < 11; i++)
		assert_int_equal(rm[i], want[i]);
}

static void
test_version_keep_simple(void **state)
{
	struct fx	*x = *state;
	struct stat	 st;
	char		*stored, *t, *p, text[16];
	int		 i, n = 0;
	DIR		*d;
	struct dirent	*de;

	p = util_path_join(x->root, "d");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	for (i = 0; i < 7; i++) {
		snprintf(text, sizeof(text), "v%d", i);
		put(x, "d/f.txt", text);
		assert_int_equal(keep(x, "d/f.txt", CONFIG_VERSIONING_SIMPLE,
		    T0 + i * 60, &stored), 0);
		t = get(x, "d/f.txt");
		assert_null(t);		/* moved, not copied */
		free(stored);
	}
	/* All 7 are kept until a clean; then the newest VERSION_SIMPLE_KEEP
	 * stay: v2 .. v6. */
	assert_int_equal(version_clean(x->root, CONFIG_VERSIONING_SIMPLE,
	    T0 + 7 * 60), 7 - VERSION_SIMPLE_KEEP);
	p = util_path_join(x->root, VERSION_DIR "/d");
	d = opendir(p);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	free(p);
	assert_int_equal(n, VERSION_SIMPLE_KEEP);
	/* Trash cans and none are never thinned. */
	assert_int_equal(version_clean(x->root, CONFIG_VERSIONING_TRASHCAN,
	    T0), 0);
	t = get(x, VERSION_DIR "/d/f~20231114-221320.txt");
	assert_null(t);
	t = get(x, VERSION_DIR "/d/f~20231114-221920.txt");	/* i = 6 */
	assert_non_null(t);
	assert_string_equal(t, "v6");
	free(t);
	/* Same second: a suffix, nothing replaced. */
	put(x, "d/f.txt", "again");
	assert_int_equal(keep(x, "d/f.txt", CONFIG_VERSIONING_SIMPLE,
	    T0 + 6 * 60, &stored), 0);
	assert_string_equal(stored, "d/f~20231114-221920-1.txt");
	free(stored);
	p = util_path_join(x->root, VERSION_DIR "/d/f~20231114-221920.txt");
	assert_int_equal(stat(p, &st), 0);
	free(p);
	/* versioning none keeps nothing. */
	put(x, "d/f.txt", "x");
	assert_int_equal(keep(x, "d/f.txt", CONFIG_VERSIONING_NONE, T0,
	    &stored), -EINVAL);
	assert_null(stored);
}

static void
test_version_keep_trashcan_and_undo(void **state)
{
	struct fx	*x = *state;
	char		*stored, *t, *p;
	int		 dfd;

	put(x, "g.txt", "one");
	assert_int_equal(keep(x, "g.txt", CONFIG_VERSIONING_TRASHCAN, T0,
	    &stored), 0);
	assert_string_equal(stored, "g.txt");
	free(stored);
	put(x, "g.txt", "two");
	assert_int_equal(keep(x, "g.txt", CONFIG_VERSIONING_TRASHCAN, T0 + 5,
	    &stored), 0);
	t = get(x, VERSION_DIR "/g.txt");
	assert_string_equal(t, "two");
	free(t);
	/* Undo puts it back, and never over something new. */
	dfd = open(x->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	put(x, "g.txt", "new");
	assert_int_equal(version_undo_at(x->root, dfd, "g.txt", stored),
	    -EEXIST);
	t = get(x, "g.txt");
	assert_string_equal(t, "new");
	free(t);
	p = util_path_join(x->root, "g.txt");
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(version_undo_at(x->root, dfd, "g.txt", stored), 0);
	close(dfd);
	t = get(x, "g.txt");
	assert_string_equal(t, "two");
	free(t);
	free(stored);
}

static void
test_version_store_symlink_refused(void **state)
{
	struct fx	*x = *state;
	char		*p, *outside, *stored, *t;

	outside = util_path_join(x->base, "outside");
	assert_int_equal(mkdir(outside, 0755), 0);
	p = util_path_join(x->root, VERSION_DIR);
	assert_int_equal(symlink(outside, p), 0);
	free(p);
	put(x, "h.txt", "stay");
	assert_true(keep(x, "h.txt", CONFIG_VERSIONING_SIMPLE, T0,
	    &stored) < 0);
	assert_null(stored);
	t = get(x, "h.txt");
	assert_string_equal(t, "stay");
	free(t);
	p = util_path_join(outside, "h~20231114-221320.txt");
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	free(outside);
}

struct seen {
	int	 n;
	char	 names[8][64];
	char	 stored[8][96];
	time_t	 when[8];
};

static int
collect(const struct version_entry *e, void *arg)
{
	struct seen	*s = arg;

	if (s->n < 8) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", e->name);
		snprintf(s->stored[s->n], sizeof(s->stored[0]), "%s",
		    e->stored);
		s->when[s->n] = e->when;
	}
	s->n++;
	return 0;
}

static void
test_version_list_and_restore(void **state)
{
	struct fx	*x = *state;
	struct seen	 s;
	char		*stored, *kept = NULL, *t, *p;

	memset(&s, 0, sizeof(s));
	assert_int_equal(version_list(x->root, NULL, collect, &s), -ENOENT);
	p = util_path_join(x->root, "sub");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	put(x, "sub/r.txt", "old");
	assert_int_equal(keep(x, "sub/r.txt", CONFIG_VERSIONING_SIMPLE, T0,
	    &stored), 0);
	free(stored);
	put(x, "other.txt", "o");
	assert_int_equal(keep(x, "other.txt", CONFIG_VERSIONING_SIMPLE, T0,
	    &stored), 0);
	free(stored);

	assert_int_equal(version_list(x->root, NULL, collect, &s), 0);
	assert_int_equal(s.n, 2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(version_list(x->root, "sub", collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], "sub/r.txt");
	assert_string_equal(s.stored[0], "sub/r~20231114-221320.txt");
	assert_true(s.when[0] == T0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(version_list(x->root, "su", collect, &s), 0);
	assert_int_equal(s.n, 0);

	/* The current file is kept before the old one comes back. */
	put(x, "sub/r.txt", "current");
	assert_int_equal(version_restore(x->root, "sub/r.txt",
	    "sub/r~20231114-221320.txt", T0 + 60, &kept), 0);
	t = get(x, "sub/r.txt");
	assert_string_equal(t, "old");
	free(t);
	assert_non_null(kept);
	assert_string_equal(kept, "sub/r~20231114-221420.txt");
	p = xasprintf("%s/%s", VERSION_DIR, kept);
	t = get(x, p);
	assert_string_equal(t, "current");
	free(t);
	free(p);
	free(kept);
	/* A deleted directory is made again for a restore. */
	p = util_path_join(x->root, "gone");
	assert_int_equal(mkdir(p, 0755), 0);
	put(x, "gone/z.txt", "zz");
	assert_int_equal(keep(x, "gone/z.txt", CONFIG_VERSIONING_TRASHCAN, T0,
	    &stored), 0);
	assert_int_equal(rmdir(p), 0);
	free(p);
	assert_int_equal(version_restore(x->root, "gone/z.txt", stored, T0,
	    &kept), 0);
	assert_null(kept);
	t = get(x, "gone/z.txt");
	assert_string_equal(t, "zz");
	free(t);
	/* Not over a directory. */
	p = util_path_join(x->root, "gone/z.txt");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	put(x, "gone/z2.txt", "q");
	free(stored);
	assert_int_equal(keep(x, "gone/z2.txt", CONFIG_VERSIONING_SIMPLE, T0,
	    &stored), 0);
	assert_int_equal(version_restore(x->root, "gone/z.txt", stored, T0,
	    &kept), -EISDIR);
	/* ...and the version is still in the store. */
	p = xasprintf("%s/%s", VERSION_DIR, stored);
	t = get(x, p);
	assert_string_equal(t, "q");
	free(t);
	free(p);
	free(stored);
}

/* A periodic clean thins every file's versions by age, keeps what is not
 * a tagged version, and removes directories left empty. */
static void
test_version_clean(void **state)
{
	struct fx	*x = *state;
	static const struct { const char *dir; const char *name; time_t age;
	    bool kept; } v[] = {
		{ "sub", "a.txt", 0, true },
		{ "sub", "a.txt", 10, false },		/* within 30 s */
		{ "sub", "a.txt", 400 * 86400, false },	/* past a year */
		{ "sub/deep", "b.txt", 2 * 86400, true },
		{ "old", "c.txt", 500 * 86400, false },	/* dir left empty */
	};
	char	*p, *q, *n;
	size_t	 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		p = xasprintf("%s/%s/%s", x->root, VERSION_DIR, v[i].dir);
		assert_int_equal(util_mkdir_p(p, 0755), 0);
		n = version_tagged_name(v[i].name, T0 - v[i].age, 0);
		q = xasprintf("%s/%s", p, n);
		assert_int_equal(util_write_file_atomic(q, "v", 1, 0644), 0);
		free(q);
		free(n);
		free(p);
	}
	put(x, VERSION_DIR "/sub/plain.txt", "not a tagged version");
	p = xasprintf("%s/%s/empty", x->root, VERSION_DIR);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	free(p);

	assert_int_equal(version_clean(x->root, CONFIG_VERSIONING_STAGGERED,
	    T0), 3);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = version_tagged_name(v[i].name, T0 - v[i].age, 0);
		p = xasprintf("%s/%s/%s/%s", x->root, VERSION_DIR, v[i].dir, n);
		assert_int_equal(access(p, F_OK) == 0, v[i].kept);
		free(p);
		free(n);
	}
	p = xasprintf("%s/%s/sub/plain.txt", x->root, VERSION_DIR);
	assert_int_equal(access(p, F_OK), 0);
	free(p);
	p = xasprintf("%s/%s/old", x->root, VERSION_DIR);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	p = xasprintf("%s/%s/empty", x->root, VERSION_DIR);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	/* Nothing left to do; no store at all is -ENOENT. */
	assert_int_equal(version_clean(x->root, CONFIG_VERSIONING_STAGGERED,
	    T0), 0);
	p = util_path_join(x->base, "nostore");
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(version_clean(p, CONFIG_VERSIONING_STAGGERED, T0),
	    -ENOENT);
	free(p);
}

/* Trash-can versions of a path that was a file and later a directory (or
 * the other way round) meet in the store: the one in the way becomes a
 * tagged version instead of failing the keep. */
static void
test_version_trashcan_file_and_dir(void **state)
{
	struct fx	*x = *state;
	struct seen	 s;
	char		*stored, *p;
	int		 i, files = 0, dirs = 0;

	put(x, "a", "file a");
	assert_int_equal(keep(x, "a", CONFIG_VERSIONING_TRASHCAN, T0, &stored),
	    0);
	assert_string_equal(stored, "a");
	free(stored);
	p = util_path_join(x->root, "a");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	put(x, "a/b", "file b");
	assert_int_equal(keep(x, "a/b", CONFIG_VERSIONING_TRASHCAN, T0 + 1,
	    &stored), 0);
	assert_string_equal(stored, "a/b");
	free(stored);
	/* And back: a file "a" again, where the store has a directory. */
	p = util_path_join(x->root, "a");
	assert_int_equal(rmdir(p), 0);
	free(p);
	put(x, "a", "file a again");
	assert_int_equal(keep(x, "a", CONFIG_VERSIONING_TRASHCAN, T0 + 2,
	    &stored), 0);
	assert_non_null(strstr(stored, "a~"));
	free(stored);
	memset(&s, 0, sizeof(s));
	assert_int_equal(version_list(x->root, "a", collect, &s), 0);
	assert_int_equal(s.n, 3);
	for (i = 0; i < s.n; i++) {
		if (strcmp(s.names[i], "a") == 0)
			files++;
		else if (strcmp(s.names[i], "a/b") == 0)
			dirs++;
	}
	assert_int_equal(files, 2);
	assert_int_equal(dirs, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_names),
		cmocka_unit_test(test_version_expire),
		cmocka_unit_test_setup_teardown(test_version_keep_simple,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_version_keep_trashcan_and_undo, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_version_store_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_list_and_restore,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_clean, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_version_trashcan_file_and_dir, setup, teardown),
	};

	/* Tags are local time: pin the zone. */
	if (setenv("TZ", "UTC", 1) != 0)
		return 1;
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}

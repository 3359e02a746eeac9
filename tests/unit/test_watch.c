/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for watch.c: real inotify events in a temp directory, with the
 * uv loop run until the debounced callback fires (polled, no fixed sleeps).
 */
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/util.h"
#include "shoal/watch.h"

#define DELAY_MS	100
#define TIMEOUT_MS	(5000 * timeout_mult())

/* SHOAL_TEST_TIMEOUT_MULT scales every wait (slow sanitizer builds). */
static uint64_t
timeout_mult(void)
{
	const char	*m = getenv("SHOAL_TEST_TIMEOUT_MULT");
	uint64_t	 v;

	if (m == NULL || util_parse_u64(m, 1, 100, &v) != 0)
		return 1;
	return v;
}

struct fx {
	char		 root[64];
	uv_loop_t	 loop;
	uv_timer_t	 tick;
	struct watch	*w;
	int		 batches;
	char		**paths;	/* union of delivered paths */
	size_t		 path_count;
	uint32_t	 delay_ms;	/* 0: DELAY_MS */
};

static void
on_batch(struct watch *w, const char *const *paths, size_t count, void *arg)
{
	struct fx	*f = arg;
	size_t		 i;

	(void)w;
	f->batches++;
	for (i = 0; i < count; i++) {
		f->paths = xreallocarray(f->paths, f->path_count + 1,
		    sizeof(*f->paths));
		f->paths[f->path_count++] = xstrdup(paths[i]);
	}
}

static bool
got(const struct fx *f, const char *path)
{
	size_t	i;

	for (i = 0; i < f->path_count; i++)
		if (strcmp(f->paths[i], path) == 0)
			return true;
	return false;
}

static void
reset(struct fx *f)
{
	while (f->path_count > 0)
		free(f->paths[--f->path_count]);
	f->batches = 0;
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop until `batches` deliveries or the timeout. */
static void
run_until_batches(struct fx *f, int batches)
{
	uint64_t	end = util_now_ms() + TIMEOUT_MS;

	while (f->batches < batches && util_now_ms() < end)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
	assert_true(f->batches >= batches);
}

static void
run_until_count(struct fx *f, size_t count)
{
	uint64_t	end = util_now_ms() + TIMEOUT_MS;

	while (watch_count(f->w) != count && util_now_ms() < end)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(watch_count(f->w), count);
}

static char *
path_of(struct fx *f, const char *rel)
{
	return util_path_join(f->root, rel);
}

static void
put(struct fx *f, const char *rel, const char *text)
{
	char	*p = path_of(f, rel);

	assert_int_equal(util_write_file_atomic(p, text, strlen(text), 0644),
	    0);
	free(p);
}

static void
mk(struct fx *f, const char *rel)
{
	char	*p = path_of(f, rel);

	assert_int_equal(util_mkdir_p(p, 0755), 0);
	free(p);
}

static int
open_fx(struct fx *f, const struct ignore *ig)
{
	assert_int_equal(watch_open(&f->loop, f->root, ig,
	    f->delay_ms != 0 ? f->delay_ms : DELAY_MS, on_batch, f, &f->w), 0);
	return 0;
}

static int
setup(void **state)
{
	struct fx	*f = xcalloc(1, sizeof(*f));

	snprintf(f->root, sizeof(f->root), "/tmp/shoal-test-watch-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	mk(f, ".stfolder");
	mk(f, "a/b");
	assert_int_equal(uv_loop_init(&f->loop), 0);
	/* A ticking timer so that UV_RUN_ONCE returns while we poll. */
	assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
	assert_int_equal(uv_timer_start(&f->tick, tick_cb, 10, 10), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		*cmd;

	watch_close(f->w);
	uv_close((uv_handle_t *)&f->tick, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	reset(f);
	free(f->paths);
	cmd = xasprintf("rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	free(cmd);
	free(f);
	return 0;
}

static void
test_watch_create_modify_delete(void **state)
{
	struct fx	*f = *state;
	char		*p;

	open_fx(f, NULL);
	run_until_count(f, 3);	/* root, a, a/b */
	put(f, "new.txt", "x");
	run_until_batches(f, 1);
	assert_true(got(f, "new.txt"));
	reset(f);

	put(f, "a/b/deep.txt", "y");
	run_until_batches(f, 1);
	assert_true(got(f, "a/b/deep.txt"));
	reset(f);

	p = path_of(f, "new.txt");
	assert_int_equal(unlink(p), 0);
	free(p);
	run_until_batches(f, 1);
	assert_true(got(f, "new.txt"));
	assert_false(got(f, ".stfolder"));
}

static void
test_watch_rename_reports_both_names(void **state)
{
	struct fx	*f = *state;
	char		*from, *to;

	put(f, "old.txt", "x");
	open_fx(f, NULL);
	run_until_count(f, 3);
	from = path_of(f, "old.txt");
	to = path_of(f, "a/new.txt");
	assert_int_equal(rename(from, to), 0);
	free(from);
	free(to);
	run_until_batches(f, 1);
	assert_true(got(f, "old.txt"));
	assert_true(got(f, "a/new.txt"));
}

static void
test_watch_new_directory_is_watched(void **state)
{
	struct fx	*f = *state;
	char		*cmd;

	open_fx(f, NULL);
	run_until_count(f, 3);
	mk(f, "n/m");
	put(f, "n/m/f.txt", "z");
	run_until_batches(f, 1);
	/* The directory itself is reported; the scanner recurses. */
	assert_true(got(f, "n"));
	run_until_count(f, 5);
	reset(f);
	/* Now events below it arrive on their own. */
	put(f, "n/m/g.txt", "z");
	run_until_batches(f, 1);
	assert_true(got(f, "n/m/g.txt"));
	reset(f);
	/* Removing the tree drops its watches. */
	cmd = xasprintf("rm -rf '%s/n'", f->root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	run_until_batches(f, 1);
	assert_true(got(f, "n"));
	run_until_count(f, 3);
}

static void
test_watch_debounce_merges_writes(void **state)
{
	struct fx	*f = *state;
	uint64_t	 end;
	size_t		 n;
	int		 i;

	open_fx(f, NULL);
	run_until_count(f, 3);
	for (i = 0; i < 5; i++)
		put(f, "busy.txt", "again");
	put(f, "other.txt", "o");
	run_until_batches(f, 1);
	assert_int_equal(f->batches, 1);
	assert_true(got(f, "busy.txt"));
	assert_true(got(f, "other.txt"));
	/* Each path once, even though it changed five times. */
	for (i = 0, n = 0; (size_t)i < f->path_count; i++)
		n += strcmp(f->paths[i], "busy.txt") == 0;
	assert_int_equal(n, 1);
	/* Nothing more arrives afterwards. */
	end = util_now_ms() + 3 * DELAY_MS;
	while (util_now_ms() < end)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->batches, 1);
}

static void
test_watch_skips_ignored_and_internal(void **state)
{
	struct fx	*f = *state;
	struct ignore	*ig = NULL;
	char		 err[256];
	const char	*pat = "a\n*.log\n";

	assert_int_equal(ignore_parse(pat, strlen(pat), "t", NULL, &ig, err,
	    sizeof(err)), 0);
	open_fx(f, ig);
	run_until_count(f, 1);	/* "a" is ignored: not watched */
	put(f, "x.log", "l");
	put(f, ".stfolder/junk", "j");
	put(f, ".stignore", "a\n");
	put(f, "real.txt", "r");
	run_until_batches(f, 1);
	assert_true(got(f, "real.txt"));
	assert_true(got(f, ".stignore"));	/* the folder reloads it */
	assert_false(got(f, "x.log"));
	assert_false(got(f, ".stfolder/junk"));
	assert_false(got(f, ".stfolder"));
	assert_false(watch_degraded(f->w));
	watch_close(f->w);
	f->w = NULL;
	assert_int_equal(uv_run(&f->loop, UV_RUN_NOWAIT) >= 0, 1);
	ignore_free(ig);
}

/* Run the loop for `ms` milliseconds. */
static void
run_for(struct fx *f, uint64_t ms)
{
	uint64_t	end = util_now_ms() + ms;

	while (util_now_ms() < end)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
}

/*
 * One change is delivered after the quiet period, not before it; a path
 * written again and again closer together than the quiet period is held
 * back until the writes stop.
 */
static void
test_watch_quiet_period(void **state)
{
	struct fx	*f = *state;
	uint64_t	 t0, t1;
	int		 i;

	open_fx(f, NULL);
	run_until_count(f, 3);
	t0 = util_now_ms();
	put(f, "one.txt", "1");
	run_until_batches(f, 1);
	t1 = util_now_ms();
	assert_true(got(f, "one.txt"));
	assert_true(t1 - t0 >= DELAY_MS);
	/* Let the backoff window after that delivery pass. */
	run_for(f, 5 * DELAY_MS);
	reset(f);
	for (i = 0; i < 10; i++) {
		put(f, "growing.txt", "more");
		run_for(f, DELAY_MS / 4);
		assert_int_equal(f->batches, 0);
	}
	run_until_batches(f, 1);
	assert_true(got(f, "growing.txt"));
}

/*
 * A batch that opens right after a delivery waits for the longer quiet
 * period (WATCH_BACKOFF = 4 quiet periods), so a file written in bursts is
 * not rescanned after each of them.
 */
static void
test_watch_backoff_after_delivery(void **state)
{
	struct fx	*f = *state;
	uint64_t	 t0;

	open_fx(f, NULL);
	run_until_count(f, 3);
	put(f, "burst.txt", "1");
	run_until_batches(f, 1);
	reset(f);
	t0 = util_now_ms();
	put(f, "burst.txt", "2");
	run_until_batches(f, 1);
	assert_true(got(f, "burst.txt"));
	assert_true(util_now_ms() - t0 >= 4 * DELAY_MS);
	/* Once things have been quiet for a while the short period is back. */
	run_for(f, 5 * DELAY_MS);
	reset(f);
	put(f, "burst.txt", "3");
	run_for(f, 2 * DELAY_MS + DELAY_MS / 2);
	assert_int_equal(f->batches, 1);
	assert_true(got(f, "burst.txt"));
}

/*
 * Name-only batches (a file moved in, a delete) settle after a tenth of the
 * quiet period; a write in the batch brings the full period back.
 */
static void
test_watch_name_events_settle_fast(void **state)
{
	struct fx	*f = *state;
	char		 outside[] = "/tmp/shoal-test-watch-out-XXXXXX";
	char		*src, *dst;
	uint64_t	 t0, dt;

	f->delay_ms = 1000;
	assert_non_null(mkdtemp(outside));
	src = util_path_join(outside, "moved.bin");
	assert_int_equal(util_write_file_atomic(src, "m", 1, 0644), 0);
	dst = path_of(f, "a/moved.bin");
	open_fx(f, NULL);
	run_until_count(f, 3);

	t0 = util_now_ms();
	assert_int_equal(rename(src, dst), 0);
	run_until_batches(f, 1);
	dt = util_now_ms() - t0;
	assert_true(got(f, "a/moved.bin"));
	assert_true(dt >= 100);
	assert_true(dt < 1000);
	run_for(f, 4 * 100 + 100);	/* past the backoff window */
	reset(f);

	t0 = util_now_ms();
	assert_int_equal(unlink(dst), 0);
	run_until_batches(f, 1);
	assert_true(util_now_ms() - t0 < 1000);
	assert_true(got(f, "a/moved.bin"));
	run_for(f, 4 * 100 + 100);
	reset(f);

	/* A rename followed by a write: the write's quiet period counts. */
	assert_int_equal(util_write_file_atomic(src, "m", 1, 0644), 0);
	t0 = util_now_ms();
	assert_int_equal(rename(src, dst), 0);
	put(f, "written.txt", "w");
	run_until_batches(f, 1);
	assert_true(util_now_ms() - t0 >= 1000);
	assert_true(got(f, "a/moved.bin"));
	assert_true(got(f, "written.txt"));

	free(src);
	free(dst);
	assert_int_equal(rmdir(outside), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_watch_create_modify_delete,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_rename_reports_both_names, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_new_directory_is_watched, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_debounce_merges_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_skips_ignored_and_internal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_quiet_period,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_name_events_settle_fast, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_watch_backoff_after_delivery, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

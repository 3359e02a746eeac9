/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for folder.c: the state machine (error on a missing root or
 * marker, recovery, idle after the initial scan), counts in the status,
 * watcher-driven rescans, reconfiguration and asynchronous close.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/record.h"
#include "shoal/util.h"
#include "shoal/version.h"

#define SHORT_ID	0x42ULL
#define TIMEOUT_MS	(8000 * timeout_mult())

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
	char			 base[64];
	char			*root;
	uv_loop_t		 loop;
	uv_timer_t		 tick;
	struct db		*db;
	struct folder		*f;
	struct config_folder	 cfg;
	int			 changes;
	int			 batch_ends;	/* calls with r == NULL */
};

static void
on_change(struct folder *f, const struct record *r, void *arg)
{
	struct fx	*x = arg;

	(void)f;
	if (r == NULL)
		x->batch_ends++;
	else
		x->changes++;
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void
put(struct fx *x, const char *rel, const char *text)
{
	char	*p = util_path_join(x->root, rel);

	assert_int_equal(util_write_file_atomic(p, text, strlen(text), 0644),
	    0);
	free(p);
}

static void
mk(const char *root, const char *rel)
{
	char	*p = util_path_join(root, rel);

	assert_int_equal(util_mkdir_p(p, 0755), 0);
	free(p);
}

static int
setup(void **state)
{
	struct fx	*x = xcalloc(1, sizeof(*x));
	char		*dbp;

	snprintf(x->base, sizeof(x->base), "/tmp/shoal-test-folder-XXXXXX");
	assert_non_null(mkdtemp(x->base));
	x->root = util_path_join(x->base, "root");
	dbp = util_path_join(x->base, "index.db");
	assert_int_equal(db_open(dbp, &x->db), 0);
	free(dbp);
	assert_int_equal(uv_loop_init(&x->loop), 0);
	assert_int_equal(uv_timer_init(&x->loop, &x->tick), 0);
	assert_int_equal(uv_timer_start(&x->tick, tick_cb, 10, 10), 0);
	x->cfg.id = "default";
	x->cfg.label = "";
	x->cfg.path = x->root;
	x->cfg.rescan_s = 3600;
	x->cfg.watch = true;
	*state = x;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*x = *state;
	char		*cmd;

	folder_close(x->f);
	uv_close((uv_handle_t *)&x->tick, NULL);
	assert_int_equal(uv_run(&x->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	db_close(x->db);
	cmd = xasprintf("rm -rf '%s'", x->base);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	free(cmd);
	free(x->root);
	free(x);
	return 0;
}

static void
status(struct fx *x, struct folder_status *st)
{
	folder_get_status(x->f, st);
}

/* Poll the loop until the folder has completed `n` scans and is idle. */
static void
run_until_scans(struct fx *x, uint64_t n)
{
	struct folder_status	st;
	uint64_t		end = util_now_ms() + TIMEOUT_MS;

	for (;;) {
		status(x, &st);
		if ((st.scans_completed >= n && st.state == FOLDER_STATE_IDLE) ||
		    util_now_ms() > end)
			break;
		(void)uv_run(&x->loop, UV_RUN_ONCE);
	}
	assert_true(st.scans_completed >= n);
	assert_int_equal(st.state, FOLDER_STATE_IDLE);
}

static void
open_folder(struct fx *x)
{
	assert_int_equal(folder_open(&x->loop, x->db, &x->cfg, SHORT_ID,
	    on_change, x, &x->f), 0);
}

static void
test_folder_missing_root_is_error_then_recovers(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;

	open_folder(x);
	status(x, &st);
	assert_int_equal(st.state, FOLDER_STATE_ERROR);
	assert_non_null(st.error);
	assert_non_null(strstr(st.error, "is missing"));
	assert_string_equal(folder_state_name(st.state), "error");

	mk(x->root, ".stfolder");
	put(x, "a.txt", "hello");
	folder_request_scan(x->f, NULL);
	run_until_scans(x, 1);
	status(x, &st);
	assert_null(st.error);
	assert_int_equal(st.local_files, 1);
	assert_int_equal(st.local_bytes, 5);
}

static void
test_folder_missing_marker_is_error(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;

	mk(x->root, "sub");
	open_folder(x);
	status(x, &st);
	assert_int_equal(st.state, FOLDER_STATE_ERROR);
	assert_non_null(strstr(st.error, "marker .stfolder missing"));
	assert_int_equal(st.scans_completed, 0);
}

static void
test_folder_initial_scan_and_counts(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;

	mk(x->root, ".stfolder");
	mk(x->root, "d");
	put(x, "a.txt", "hello");
	put(x, "d/b.txt", "abc");
	open_folder(x);
	run_until_scans(x, 1);
	status(x, &st);
	assert_int_equal(st.local_files, 2);
	assert_int_equal(st.local_bytes, 8);
	assert_int_equal(st.local_directories, 1);
	assert_true(st.watching);
	assert_false(st.watch_degraded);
	assert_true(st.local_sequence >= 3);
	assert_int_equal(x->changes, 3);
	/* The scan's end is signalled once, so peers hear of it at once. */
	assert_int_equal(x->batch_ends, 1);
	assert_string_equal(folder_id(x->f), "default");
	assert_string_equal(folder_config(x->f)->path, x->root);
	/* A scan that changes nothing signals nothing. */
	folder_request_scan(x->f, NULL);
	run_until_scans(x, 2);
	assert_int_equal(x->changes, 3);
	assert_int_equal(x->batch_ends, 1);
}

static void
test_folder_watcher_triggers_scan(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	uint64_t		 end;

	mk(x->root, ".stfolder");
	open_folder(x);
	run_until_scans(x, 1);
	put(x, "later.txt", "1234");
	end = util_now_ms() + TIMEOUT_MS;
	do {
		(void)uv_run(&x->loop, UV_RUN_ONCE);
		status(x, &st);
	} while (st.local_files < 1 && util_now_ms() < end);
	assert_int_equal(st.local_files, 1);
	assert_int_equal(st.local_bytes, 4);
}

static void
test_folder_stignore_change_reloads(void **state)
{
	struct fx	*x = *state;
	struct record	*r = NULL;
	uint64_t	 end;
	bool		 invalid = false;

	mk(x->root, ".stfolder");
	put(x, "a.txt", "hello");
	put(x, "b.txt", "world");
	open_folder(x);
	run_until_scans(x, 1);
	/* The watcher reports .stignore; the folder reloads and rescans. */
	put(x, ".stignore", "a.txt\n");
	end = util_now_ms() + TIMEOUT_MS;
	while (!invalid && util_now_ms() < end) {
		(void)uv_run(&x->loop, UV_RUN_ONCE);
		assert_int_equal(db_file_get(x->db, folder_idx(x->f),
		    DB_LOCAL_DEVICE, "a.txt", &r), 0);
		invalid = r->invalid;
		record_free(r);
		r = NULL;
	}
	assert_true(invalid);
	assert_int_equal(db_file_get(x->db, folder_idx(x->f), DB_LOCAL_DEVICE,
	    "b.txt", &r), 0);
	assert_false(r->invalid);
	record_free(r);
}

static void
test_folder_marker_removed_stops_without_deleting(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	struct record		*r = NULL;
	char			*p;
	uint64_t		 end;

	x->cfg.watch = false;
	mk(x->root, ".stfolder");
	put(x, "a.txt", "hello");
	open_folder(x);
	run_until_scans(x, 1);
	p = util_path_join(x->root, "a.txt");
	assert_int_equal(unlink(p), 0);
	free(p);
	p = util_path_join(x->root, ".stfolder");
	assert_int_equal(rmdir(p), 0);
	free(p);
	folder_request_scan(x->f, NULL);
	end = util_now_ms() + TIMEOUT_MS;
	do {
		(void)uv_run(&x->loop, UV_RUN_ONCE);
		status(x, &st);
	} while (st.state != FOLDER_STATE_ERROR && util_now_ms() < end);
	assert_int_equal(st.state, FOLDER_STATE_ERROR);
	assert_int_equal(db_file_get(x->db, folder_idx(x->f), DB_LOCAL_DEVICE,
	    "a.txt", &r), 0);
	assert_false(r->deleted);
	record_free(r);
	assert_int_equal(st.local_files, 1);
}

static void
test_folder_requests_merge_and_reconfigure(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	struct config_folder	 c2;
	char			*root2;
	int			 i;

	x->cfg.watch = false;
	mk(x->root, ".stfolder");
	put(x, "a.txt", "hello");
	open_folder(x);
	/* Many requests while the initial scan runs: one more scan. */
	for (i = 0; i < 20; i++)
		folder_request_scan(x->f, "a.txt");
	folder_request_scan(x->f, NULL);
	run_until_scans(x, 2);
	status(x, &st);
	assert_true(st.scans_completed <= 3);

	root2 = util_path_join(x->base, "root2");
	mk(root2, ".stfolder");
	mk(root2, "x");
	c2 = x->cfg;
	c2.path = root2;
	folder_reconfigure(x->f, &c2);
	run_until_scans(x, st.scans_completed + 1);
	status(x, &st);
	assert_int_equal(st.local_directories, 1);	/* x/ */
	assert_string_equal(folder_config(x->f)->path, root2);
	free(root2);
}

static void
test_folder_close_while_scanning(void **state)
{
	struct fx	*x = *state;
	char		 name[32];
	int		 i;

	mk(x->root, ".stfolder");
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		put(x, name, name);
	}
	open_folder(x);
	folder_close(x->f);
	x->f = NULL;
	/* teardown runs the loop to completion; ASan checks the frees. */
}

/*
 * Scan requests arriving while a scan runs are merged: every distinct path
 * once, however often and in whatever order it was asked for.
 */
static void
test_folder_requests_merge_distinct_paths(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	char			 name[32];
	int			 i, round;

	x->cfg.watch = false;
	mk(x->root, ".stfolder");
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		put(x, name, "x");
	}
	open_folder(x);
	run_until_scans(x, 1);
	status(x, &st);
	assert_int_equal(st.local_files, 3000);
	/* The first request starts a scan; the rest wait and merge. */
	folder_request_scan(x->f, "f0000");
	for (round = 0; round < 2; round++)
		for (i = 0; i < 3000; i++) {
			snprintf(name, sizeof(name), "f%04d",
			    round == 0 ? i : 2999 - i);
			folder_request_scan(x->f, name);
		}
	run_until_scans(x, 3);
	status(x, &st);
	assert_int_equal(st.scans_completed, 3);
	assert_int_equal(st.scan.entries_seen, 3000);
	assert_int_equal(st.local_files, 3000);
}

/* A watcher batch of many paths is one scan, not one for its first path
 * and another for the rest. */
static void
test_folder_watcher_batch_is_one_scan(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	char			 name[32];
	uint64_t		 end;
	int			 i;

	mk(x->root, ".stfolder");
	open_folder(x);
	run_until_scans(x, 1);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "b%02d", i);
		put(x, name, "x");
	}
	end = util_now_ms() + TIMEOUT_MS;
	do {
		(void)uv_run(&x->loop, UV_RUN_ONCE);
		status(x, &st);
	} while ((st.local_files < 20 || st.state != FOLDER_STATE_IDLE) &&
	    util_now_ms() < end);
	assert_int_equal(st.local_files, 20);
	assert_int_equal(st.scans_completed, 2);
}

/* Poll the loop until the folder has completed `n` pull passes. */
static void
run_until_pulls(struct fx *x, uint64_t n)
{
	struct folder_status	st;
	uint64_t		end = util_now_ms() + TIMEOUT_MS;

	do {
		(void)uv_run(&x->loop, UV_RUN_ONCE);
		status(x, &st);
	} while ((st.pulls_completed < n || st.state != FOLDER_STATE_IDLE) &&
	    util_now_ms() < end);
	assert_true(st.pulls_completed >= n);
	assert_int_equal(st.state, FOLDER_STATE_IDLE);
}

/* A pull pass that stored records signals its end once, like a scan, so
 * peers hear of the last batch at once; a pass that stored nothing does
 * not. */
static void
test_folder_pull_end_signals(void **state)
{
	struct fx		*x = *state;
	struct folder_status	 st;
	struct device_id	 them;
	struct record		*r;
	int64_t			 rdev;
	struct stat		 sb;
	char			*p;
	uint64_t		 pulls;

	mk(x->root, ".stfolder");
	open_folder(x);
	run_until_scans(x, 1);
	assert_int_equal(x->batch_ends, 0);
	status(x, &st);
	pulls = st.pulls_completed;

	memset(&them, 0xC7, sizeof(them));
	assert_int_equal(db_device_idx(x->db, &them, &rdev), 0);
	r = record_new();
	r->name = xstrdup("d");
	r->type = RECORD_TYPE_DIRECTORY;
	r->permissions = 0755;
	r->modified_s = 1700000000;
	r->modified_by = identity_short_id(&them);
	record_vector_update(&r->version, r->modified_by, 1);
	r->sequence = 1;
	assert_int_equal(record_validate(r), 0);
	assert_int_equal(db_remote_put(x->db, folder_idx(x->f), rdev, r), 0);
	record_free(r);
	folder_remote_changed(x->f);
	run_until_pulls(x, pulls + 1);
	p = util_path_join(x->root, "d");
	assert_int_equal(stat(p, &sb), 0);
	free(p);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(x->changes, 1);
	assert_int_equal(x->batch_ends, 1);

	/* Nothing needed: the next pass stores nothing and signals nothing. */
	folder_remote_changed(x->f);
	run_until_pulls(x, pulls + 2);
	assert_int_equal(x->changes, 1);
	assert_int_equal(x->batch_ends, 1);
}

/* A full scan is followed by a clean of .stversions: with staggered
 * versioning a version past the maximum age goes and a recent one stays;
 * simple versioning keeps the newest five whatever their age. */
static void
test_folder_full_scan_cleans_staggered_versions(void **state)
{
	struct fx	*x = *state;
	char		*old, *recent, *p, *n;
	uint64_t	 end;
	int		 round;

	for (round = 0; round < 2; round++) {
		mk(x->root, ".stfolder");
		mk(x->root, VERSION_DIR);
		n = version_tagged_name("a.txt", time(NULL) - 400 * 86400, 0);
		p = xasprintf("%s/%s", VERSION_DIR, n);
		put(x, p, "old");
		old = util_path_join(x->root, p);
		free(p);
		free(n);
		n = version_tagged_name("a.txt", time(NULL) - 60, 0);
		p = xasprintf("%s/%s", VERSION_DIR, n);
		put(x, p, "recent");
		recent = util_path_join(x->root, p);
		free(p);
		free(n);
		x->cfg.versioning = round == 0 ? CONFIG_VERSIONING_SIMPLE :
		    CONFIG_VERSIONING_STAGGERED;
		open_folder(x);
		run_until_scans(x, 1);
		/* The clean runs on the pool after the scan: poll for it. */
		end = util_now_ms() + (round == 0 ? 300 : TIMEOUT_MS);
		while (access(old, F_OK) == 0 && util_now_ms() < end)
			(void)uv_run(&x->loop, UV_RUN_ONCE);
		assert_int_equal(access(old, F_OK) == 0, round == 0);
		assert_int_equal(access(recent, F_OK), 0);
		folder_close(x->f);
		x->f = NULL;
		free(old);
		free(recent);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_folder_full_scan_cleans_staggered_versions, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_pull_end_signals, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_watcher_batch_is_one_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_requests_merge_distinct_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_missing_root_is_error_then_recovers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_missing_marker_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_initial_scan_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_watcher_triggers_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_stignore_change_reloads, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_marker_removed_stops_without_deleting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_requests_merge_and_reconfigure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_folder_close_while_scanning, setup, teardown),
	};

	if (getenv("SHOAL_TEST_VERBOSE") == NULL &&
	    log_set_level("error") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

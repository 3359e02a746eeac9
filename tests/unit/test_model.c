/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for model.c and the global view the index keeps (db.c
 * invariant 7): the conflict and need rules of bep-brief §10.7, and the
 * incremental global/need state after local and remote puts and drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "shoal/db.h"
#include "shoal/model.h"
#include "shoal/util.h"

#define A_ID	0x1000000000000000ull	/* our short ID in these tests */
#define R_ID	0xF000000000000000ull	/* the remote's */

struct fixture {
	char		*dir;
	char		*path;
	struct db	*db;
	int64_t		 folder;
	int64_t		 remote;
};

static int
setup(void **state)
{
	struct fixture		*f = xcalloc(1, sizeof(*f));
	struct device_id	 rid;

	f->dir = xstrdup("/tmp/shoal-test-model.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = util_path_join(f->dir, "index.db");
	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(db_folder_idx(f->db, "f", &f->folder), 0);
	memset(&rid, 0x77, sizeof(rid));
	assert_int_equal(db_device_idx(f->db, &rid, &f->remote), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		*cmd;

	db_close(f->db);
	cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

/* A record with a one- or two-counter vector (0 values are left out). */
static struct record *
mk(const char *name, uint64_t a, uint64_t r, int64_t mtime, bool deleted)
{
	struct record	*rec = record_new();

	rec->name = xstrdup(name);
	rec->type = RECORD_TYPE_FILE;
	rec->modified_s = mtime;
	rec->deleted = deleted;
	rec->version.counters = xcalloc(2, sizeof(struct record_counter));
	if (a != 0) {
		rec->version.counters[rec->version.count].id = A_ID;
		rec->version.counters[rec->version.count++].value = a;
	}
	if (r != 0) {
		rec->version.counters[rec->version.count].id = R_ID;
		rec->version.counters[rec->version.count++].value = r;
	}
	if (!deleted) {
		rec->size = 5;
		rec->block_size = RECORD_MIN_BLOCK_SIZE;
		rec->blocks = xcalloc(1, sizeof(*rec->blocks));
		rec->blocks[0].size = 5;
		rec->blocks[0].hash[0] = (uint8_t)(a + 3 * r);
		rec->block_count = 1;
	}
	return rec;
}

static void
put_local(struct fixture *f, struct record *r)
{
	assert_int_equal(db_local_put(f->db, f->folder, r), 0);
	record_free(r);
}

static void
put_remote(struct fixture *f, struct record *r, int64_t seq)
{
	r->sequence = seq;
	assert_int_equal(db_remote_put(f->db, f->folder, f->remote, r), 0);
	record_free(r);
}

static struct model_counts
counts(struct fixture *f)
{
	struct model_counts	c;

	assert_int_equal(model_counts(f->db, f->folder, &c), 0);
	return c;
}

static int64_t
holder(struct fixture *f, const char *name)
{
	struct record	*g = NULL;
	int64_t		 dev = -1;

	assert_int_equal(model_global(f->db, f->folder, name, &g, &dev), 0);
	record_free(g);
	return dev;
}

/* Close the index, turn it into an older one with `sql`, open it again:
 * the migrations take it to the latest schema. */
static void
reopen_from_old(struct fixture *f, const char *sql)
{
	sqlite3	*h = NULL;

	db_close(f->db);
	f->db = NULL;
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);
	assert_int_equal(db_open(f->path, &f->db), 0);
	assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
}

static void
test_model_rules(void **state)
{
	struct record	*a, *b, *mk_tmp;

	(void)state;
	/* Dominating vector wins regardless of mtime. */
	a = mk("x", 2, 0, 10, false);
	b = mk("x", 1, 0, 99, false);
	assert_true(model_better(a, b));
	assert_false(model_better(b, a));
	record_free(a);
	record_free(b);
	/* Concurrent: later mtime wins. */
	a = mk("x", 1, 0, 200, false);
	b = mk("x", 0, 1, 100, false);
	assert_true(model_wins_conflict(a, b));
	assert_false(model_wins_conflict(b, a));
	/* Concurrent, a deletion loses to a modification even if newer. */
	record_free(a);
	a = mk("x", 1, 0, 999, true);
	assert_false(model_wins_conflict(a, b));
	assert_true(model_better(b, a));
	record_free(a);
	/* Equal mtimes: ConcurrentGreater (larger at the lowest id) wins. */
	a = mk("x", 1, 0, 100, false);
	assert_true(model_wins_conflict(a, b));
	assert_false(model_wins_conflict(b, a));
	/* Invalid never beats valid. */
	a->invalid = true;
	assert_false(model_better(a, b));
	record_free(a);
	record_free(b);
	/* Need. */
	a = mk("x", 1, 0, 1, false);
	b = mk("x", 1, 1, 1, false);
	assert_true(model_needs(a, b));
	assert_false(model_needs(b, a));
	assert_false(model_needs(b, b));
	assert_true(model_needs(NULL, b));
	record_free(a);
	a = mk("x", 0, 2, 1, true);
	assert_false(model_needs(NULL, a));	/* deletion of what we never had */
	/* A record flagged ignored holds nothing, whatever its vector. */
	b->invalid = true;
	b->local_flags = RECORD_LOCAL_IGNORED;
	record_vector_update(&b->version, A_ID, 1000);
	assert_true(model_needs(b, mk_tmp = mk("x", 1, 1, 1, false)));
	record_free(mk_tmp);
	assert_false(model_needs(b, a));
	record_free(a);
	record_free(b);
}

/* Names flagged ignored here whose vector dominates (the flag bumped it)
 * are needed once a peer has them; an index from schema 2 gets this on
 * upgrade. */
static void
test_model_ignored_flag_needs(void **state)
{
	struct fixture	*f = *state;
	struct record	*l;

	put_remote(f, mk("i.log", 1, 1, 1, false), 1);
	l = mk("i.log", 2, 1, 1, false);
	l->invalid = true;
	l->local_flags = RECORD_LOCAL_IGNORED;
	put_local(f, l);
	assert_int_equal(counts(f).need_files, 1);

	/* Schema 2 stored need 0 for it. */
	reopen_from_old(f, "UPDATE globals SET need = 0; "
	    "PRAGMA user_version = 2");
	assert_int_equal(counts(f).need_files, 1);
}

static void
test_model_remote_newer_then_pulled(void **state)
{
	struct fixture		*f = *state;
	struct model_counts	 c;
	struct record		*g = NULL;
	int64_t			 devs[4];
	size_t			 n = 0;

	put_local(f, mk("a.txt", 1, 0, 100, false));
	c = counts(f);
	assert_int_equal(c.global_files, 1);
	assert_int_equal(c.need_files, 0);
	assert_int_equal(holder(f, "a.txt"), DB_LOCAL_DEVICE);

	put_remote(f, mk("a.txt", 1, 2, 200, false), 1);
	c = counts(f);
	assert_int_equal(c.need_files, 1);
	assert_int_equal(c.need_bytes, 5);
	assert_int_equal(holder(f, "a.txt"), f->remote);
	assert_int_equal(model_global(f->db, f->folder, "a.txt", &g, NULL), 0);
	assert_int_equal(model_availability(f->db, f->folder, "a.txt",
	    &g->version, devs, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(devs[0], f->remote);
	/* The puller stores the global record as ours, vector unchanged. */
	assert_int_equal(db_local_put(f->db, f->folder, g), 0);
	record_free(g);
	c = counts(f);
	assert_int_equal(c.need_files, 0);
	assert_int_equal(holder(f, "a.txt"), DB_LOCAL_DEVICE);
}

static void
test_model_concurrent_and_drop(void **state)
{
	struct fixture		*f = *state;
	struct model_counts	 c;

	put_local(f, mk("c.txt", 5, 0, 100, false));
	put_remote(f, mk("c.txt", 0, 5, 200, false), 1);
	assert_int_equal(holder(f, "c.txt"), f->remote);
	assert_int_equal(counts(f).need_files, 1);
	/* The peer's index goes away: we are the global again. */
	assert_int_equal(db_files_drop(f->db, f->folder, f->remote), 0);
	c = counts(f);
	assert_int_equal(c.need_files, 0);
	assert_int_equal(holder(f, "c.txt"), DB_LOCAL_DEVICE);
	/* A name only the peer had disappears from the view with it. */
	put_remote(f, mk("only-remote", 0, 1, 1, false), 2);
	assert_int_equal(counts(f).global_files, 2);
	assert_int_equal(db_files_drop(f->db, f->folder, f->remote), 0);
	assert_int_equal(counts(f).global_files, 1);
}

static void
test_model_deletions(void **state)
{
	struct fixture		*f = *state;
	struct model_counts	 c;

	/* A remote deletion of a name we never had: no need. */
	put_remote(f, mk("gone", 0, 3, 1, true), 1);
	c = counts(f);
	assert_int_equal(c.need_files, 0);
	assert_int_equal(c.global_files, 0);
	/* A remote deletion dominating our file: we need the deletion. */
	put_local(f, mk("d.txt", 1, 0, 1, false));
	put_remote(f, mk("d.txt", 1, 1, 2, true), 2);
	c = counts(f);
	assert_int_equal(c.need_files, 1);
	assert_int_equal(c.need_deletes, 1);
	assert_int_equal(c.need_bytes, 0);
	/* A concurrent deletion loses to our modification. */
	put_local(f, mk("e.txt", 2, 0, 1, false));
	put_remote(f, mk("e.txt", 1, 1, 9, true), 3);
	assert_int_equal(holder(f, "e.txt"), DB_LOCAL_DEVICE);
	assert_int_equal(counts(f).need_deletes, 1);
}

struct order {
	char	names[8][16];
	bool	deleted[8];
	size_t	n;
};

static int
collect(const struct model_need *n, void *arg)
{
	struct order *o = arg;

	assert_true(o->n < 8);
	snprintf(o->names[o->n], sizeof(o->names[0]), "%s", n->name);
	o->deleted[o->n++] = n->deleted;
	return 0;
}

static void
test_model_need_order(void **state)
{
	struct fixture	*f = *state;
	struct record	*d;
	struct order	 o;

	memset(&o, 0, sizeof(o));
	put_local(f, mk("z", 1, 0, 1, false));
	put_local(f, mk("z/y", 1, 0, 1, false));
	put_remote(f, mk("z/y", 1, 1, 2, true), 1);
	put_remote(f, mk("z", 1, 1, 2, true), 2);
	put_remote(f, mk("b.txt", 0, 1, 1, false), 3);
	d = mk("a", 0, 1, 1, false);
	d->type = RECORD_TYPE_DIRECTORY;
	d->size = 0;
	free(d->blocks);
	d->blocks = NULL;
	d->block_count = 0;
	put_remote(f, d, 4);
	d = mk("a/sub", 0, 1, 1, false);
	d->type = RECORD_TYPE_DIRECTORY;
	d->size = 0;
	free(d->blocks);
	d->blocks = NULL;
	d->block_count = 0;
	put_remote(f, d, 5);
	assert_int_equal(model_need_foreach(f->db, f->folder, collect, &o), 0);
	assert_int_equal(o.n, 5);
	/* Directories shallow first, then files, then deletions deepest first. */
	assert_string_equal(o.names[0], "a");
	assert_string_equal(o.names[1], "a/sub");
	assert_string_equal(o.names[2], "b.txt");
	assert_string_equal(o.names[3], "z/y");
	assert_string_equal(o.names[4], "z");
	assert_true(o.deleted[3] && o.deleted[4]);
}

/* A schema-1 index with remote records gets a correct view on upgrade. */
static void
test_model_migration_from_v1(void **state)
{
	struct fixture	*f = *state;

	put_local(f, mk("m.txt", 1, 0, 1, false));
	put_remote(f, mk("m.txt", 1, 4, 2, false), 1);
	reopen_from_old(f, "DROP TABLE globals; DROP INDEX files_name; "
	    "PRAGMA user_version = 1");
	assert_int_equal(holder(f, "m.txt"), f->remote);
	assert_int_equal(counts(f).need_files, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_rules),
		cmocka_unit_test_setup_teardown(test_model_remote_newer_then_pulled,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_concurrent_and_drop,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_deletions, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_model_need_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_model_ignored_flag_needs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_migration_from_v1,
		    setup, teardown),
	};

	return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}

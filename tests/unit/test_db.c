/* SPDX-License-Identifier: MIT */
/* Unit tests for db.c: schema and migrations, record round trips, local
 * sequences, prefix iteration, block lists and the block index, index IDs,
 * transactions, and the speed of a scanner-sized batch. Invariant numbers
 * refer to the design notes at the top of src/db.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "shoal/db.h"
#include "shoal/err.h"
#include "shoal/record.h"
#include "shoal/util.h"

struct fixture {
	char		*dir;
	char		*path;
	struct db	*db;
	int64_t		 folder;
};

static int
setup(void **state)
{
	struct fixture	*f = xcalloc(1, sizeof(*f));

	f->dir = xstrdup("/tmp/shoal-test-db.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->path = util_path_join(f->dir, DB_FILE);
	if (db_open(f->path, &f->db) != 0)
		return -1;
	if (db_folder_idx(f->db, "default", &f->folder) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		*cmd;
	int		 rc;

	db_close(f->db);
	cmd = xasprintf("rm -rf '%s'", f->dir);
	rc = system(cmd);
	free(cmd);
	free(f->path);
	free(f->dir);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void
reopen(struct fixture *f)
{
	db_close(f->db);
	f->db = NULL;
	assert_int_equal(db_open(f->path, &f->db), 0);
}

/* One integer from a side connection (sees committed data only). */
static int64_t
sql_int(const struct fixture *f, const char *sql)
{
	sqlite3		*h = NULL;
	sqlite3_stmt	*s = NULL;
	int64_t		 v;

	assert_int_equal(sqlite3_open_v2(f->path, &h, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);
	return v;
}

/* A file of `nblocks` 128 KiB blocks whose hashes derive from `seed`. */
static struct record *
mkfile(const char *name, size_t nblocks, uint8_t seed)
{
	struct record	*r = record_new();
	size_t		 i;

	r->name = xstrdup(name);
	r->type = RECORD_TYPE_FILE;
	r->permissions = 0644;
	r->modified_s = 1700000000;
	r->modified_ns = 123456789;
	r->modified_by = UINT64_C(0xfedcba9876543210);
	r->block_size = 131072;
	r->block_count = nblocks;
	r->blocks = xcalloc(nblocks, sizeof(*r->blocks));
	for (i = 0; i < nblocks; i++) {
		r->blocks[i].offset = (int64_t)i * 131072;
		r->blocks[i].size = 131072;
		memset(r->blocks[i].hash, seed + (int)i, RECORD_HASH_LEN);
		r->blocks[i].hash[0] = (uint8_t)i;
		r->blocks[i].weak_hash = 0x01000000u * seed + (uint32_t)i;
	}
	r->size = (int64_t)nblocks * 131072;
	record_blocks_hash(r->blocks, r->block_count, r->blocks_hash);
	r->has_blocks_hash = nblocks > 0;
	record_vector_update(&r->version, 77, 1700000000);
	r->inode = UINT64_C(0x8000000000000001);
	r->dev = 2049;
	return r;
}

static struct record *
mkplain(const char *name, enum record_type type)
{
	struct record	*r = record_new();

	r->name = xstrdup(name);
	r->type = type;
	record_vector_update(&r->version, 5, 10);
	return r;
}

static void
put_local(struct fixture *f, struct record *r)
{
	assert_int_equal(db_local_put(f->db, f->folder, r), 0);
}

static void
assert_same_record(const struct record *a, const struct record *b)
{
	size_t	i;

	assert_string_equal(a->name, b->name);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->permissions, b->permissions);
	assert_int_equal(a->modified_s, b->modified_s);
	assert_int_equal(a->modified_ns, b->modified_ns);
	assert_true(a->modified_by == b->modified_by);
	assert_int_equal(a->deleted, b->deleted);
	assert_int_equal(a->invalid, b->invalid);
	assert_int_equal(a->no_permissions, b->no_permissions);
	assert_int_equal(record_vector_compare(&a->version, &b->version),
	    RECORD_EQUAL);
	assert_int_equal(a->version.count, b->version.count);
	assert_int_equal(a->sequence, b->sequence);
	assert_int_equal(a->block_size, b->block_size);
	assert_int_equal(a->block_count, b->block_count);
	for (i = 0; i < a->block_count; i++) {
		assert_int_equal(a->blocks[i].offset, b->blocks[i].offset);
		assert_int_equal(a->blocks[i].size, b->blocks[i].size);
		assert_memory_equal(a->blocks[i].hash, b->blocks[i].hash,
		    RECORD_HASH_LEN);
		assert_int_equal(a->blocks[i].weak_hash,
		    b->blocks[i].weak_hash);
	}
	assert_int_equal(a->has_blocks_hash, b->has_blocks_hash);
	if (a->has_blocks_hash)
		assert_memory_equal(a->blocks_hash, b->blocks_hash,
		    RECORD_HASH_LEN);
	if (a->symlink_target == NULL)
		assert_null(b->symlink_target);
	else
		assert_string_equal(a->symlink_target, b->symlink_target);
	assert_int_equal(a->local_flags, b->local_flags);
	assert_true(a->inode == b->inode);
	assert_true(a->dev == b->dev);
}

static void
test_db_open_create_reopen(void **state)
{
	struct fixture	*f = *state;
	int64_t		 idx, idx2;

	assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
	assert_int_equal(db_folder_idx(f->db, "photos", &idx), 0);
	assert_int_not_equal(idx, f->folder);
	assert_int_equal(db_folder_idx(f->db, "photos", &idx2), 0);
	assert_int_equal(idx, idx2);
	reopen(f);
	assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
	assert_int_equal(db_folder_idx(f->db, "photos", &idx2), 0);
	assert_int_equal(idx, idx2);
	assert_int_equal(sql_int(f, "PRAGMA user_version"), DB_SCHEMA_VERSION);
	/* WAL is a property of the file: a fresh connection sees it. */
	assert_int_equal(sql_int(f, "SELECT journal_mode = 'wal' FROM "
	    "pragma_journal_mode"), 1);
	/* Device 0 is reserved for this device. */
	assert_int_equal(sql_int(f, "SELECT count(*) FROM devices WHERE "
	    "idx = 0 AND device_id IS NULL"), 1);
}

static void
test_db_newer_version_refused(void **state)
{
	struct fixture	*f = *state;
	struct db	*db2 = (struct db *)f;
	sqlite3		*h = NULL;
	char		*sql;

	db_close(f->db);
	f->db = NULL;
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 99", NULL,
	    NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);
	assert_int_equal(db_open(f->path, &db2), SH_ECORRUPT);
	assert_null(db2);
	/* Refusing changed nothing. */
	assert_int_equal(sql_int(f, "PRAGMA user_version"), 99);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM folders"), 1);
	/* Restore so teardown (and later opens) work. */
	assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
	sql = xasprintf("PRAGMA user_version = %d", DB_SCHEMA_VERSION);
	assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);
	assert_int_equal(db_open(f->path, &f->db), 0);
}

static void
test_db_open_bad_path(void **state)
{
	struct db	*db = (struct db *)state;

	assert_int_equal(db_open("/nonexistent-dir/x/index.db", &db), SH_EDB);
	assert_null(db);
}

static void
test_db_roundtrip_fields(void **state)
{
	struct fixture	*f = *state;
	struct record	*in[4], *out = NULL;
	size_t		 i;

	in[0] = mkfile("dir/file.bin", 3, 9);
	in[0]->blocks[2].size = 100;
	in[0]->size = 2 * 131072 + 100;
	record_blocks_hash(in[0]->blocks, 3, in[0]->blocks_hash);
	in[0]->local_flags = RECORD_LOCAL_RECEIVEONLY;
	record_vector_update(&in[0]->version, UINT64_C(0xffffffffffffff00),
	    1800000000);
	in[1] = mkplain("dir", RECORD_TYPE_DIRECTORY);
	in[1]->permissions = 0755;
	in[1]->modified_s = -5;
	in[2] = mkplain("dir/link", RECORD_TYPE_SYMLINK);
	in[2]->symlink_target = xstrdup("../target with space");
	in[2]->no_permissions = true;
	in[3] = mkplain("gone", RECORD_TYPE_FILE);
	in[3]->deleted = true;
	in[3]->invalid = true;
	in[3]->local_flags = RECORD_LOCAL_IGNORED;
	record_vector_free(&in[3]->version);
	for (i = 0; i < 4; i++) {
		put_local(f, in[i]);
		assert_int_equal(in[i]->sequence, (int64_t)i + 1);
	}
	reopen(f);
	for (i = 0; i < 4; i++) {
		assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
		    in[i]->name, &out), 0);
		assert_same_record(in[i], out);
		record_free(out);
		out = NULL;
		record_free(in[i]);
	}
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    "nope", &out), SH_ENOTFOUND);
	assert_null(out);
	/* Another folder does not see them. */
	assert_int_equal(db_file_get(f->db, f->folder + 1, DB_LOCAL_DEVICE,
	    "dir", &out), SH_ENOTFOUND);
}

static void
test_db_sequence_never_reused(void **state)
{
	struct fixture	*f = *state;
	struct record	*a, *b, *c;
	int64_t		 max;

	a = mkfile("a", 1, 1);
	b = mkfile("b", 1, 2);
	put_local(f, a);
	put_local(f, b);
	assert_int_equal(b->sequence, 2);
	/* Replacing the newest record must not hand out 2 again (1). */
	b->size = 5;
	b->blocks[0].size = 5;
	put_local(f, b);
	assert_int_equal(b->sequence, 3);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 3);
	/* The old sequence of b is gone with it (2). */
	assert_int_equal(sql_int(f, "SELECT count(*) FROM files WHERE "
	    "sequence = 2"), 0);
	reopen(f);
	c = mkfile("c", 1, 3);
	put_local(f, c);
	assert_int_equal(c->sequence, 4);
	/* Other folders count on their own. */
	{
		int64_t	other;

		assert_int_equal(db_folder_idx(f->db, "other", &other), 0);
		assert_int_equal(db_local_put(f->db, other, a), 0);
		assert_int_equal(a->sequence, 1);
		assert_int_equal(db_max_sequence(f->db, other,
		    DB_LOCAL_DEVICE, &max), 0);
		assert_int_equal(max, 1);
	}
	record_free(a);
	record_free(b);
	record_free(c);
}

struct collect {
	char	names[16][32];
	int64_t	seqs[16];
	size_t	n;
	size_t	stop_after;
};

static int
collect_entry(const struct db_entry *e, void *arg)
{
	struct collect	*c = arg;

	assert_true(c->n < 16);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", e->name);
	c->seqs[c->n] = e->sequence;
	c->n++;
	return c->stop_after != 0 && c->n == c->stop_after ? 42 : 0;
}

static int
collect_record(const struct record *r, void *arg)
{
	struct collect	*c = arg;

	assert_true(c->n < 16);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", r->name);
	c->seqs[c->n] = r->sequence;
	c->n++;
	return 0;
}

static void
test_db_entries_under_prefix(void **state)
{
	static const char *const names[] = {
		"b", "a/c/d", "ab", "a", "a.txt", "a0", "a/b", "a-", "a/c",
	};
	struct fixture	*f = *state;
	struct collect	 c;
	struct record	*r;
	size_t		 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		r = mkplain(names[i], RECORD_TYPE_DIRECTORY);
		put_local(f, r);
		record_free(r);
	}
	memset(&c, 0, sizeof(c));
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "a", collect_entry, &c), 0);
	/* "ab", "a.txt", "a-", "a0" share the bytes but are not below. */
	assert_int_equal(c.n, 4);
	assert_string_equal(c.names[0], "a");
	assert_string_equal(c.names[1], "a/b");
	assert_string_equal(c.names[2], "a/c");
	assert_string_equal(c.names[3], "a/c/d");

	memset(&c, 0, sizeof(c));
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "a/c", collect_entry, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.names[1], "a/c/d");

	memset(&c, 0, sizeof(c));
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "", collect_entry, &c), 0);
	assert_int_equal(c.n, sizeof(names) / sizeof(names[0]));
	for (i = 1; i < c.n; i++)
		assert_true(strcmp(c.names[i - 1], c.names[i]) < 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "zzz", collect_entry, &c), 0);
	assert_int_equal(c.n, 0);

	/* A non-zero callback result stops the walk and is returned. */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "", collect_entry, &c), 42);
	assert_int_equal(c.n, 2);
}

struct nested {
	struct db	*db;
	int64_t		 folder;
	size_t		 outer, inner;
};

static int
count_inner(const struct db_entry *e, void *arg)
{
	struct nested	*n = arg;

	(void)e;
	n->inner++;
	return 0;
}

static int
nest_outer(const struct db_entry *e, void *arg)
{
	struct nested	*n = arg;

	n->outer++;
	/* Re-entering the same query from its callback must work. */
	return db_entries_under(n->db, n->folder, DB_LOCAL_DEVICE, e->name,
	    count_inner, n);
}

static void
test_db_entries_under_reentrant(void **state)
{
	struct fixture	*f = *state;
	struct nested	 n;
	struct record	*r;

	r = mkplain("x", RECORD_TYPE_DIRECTORY);
	put_local(f, r);
	record_free(r);
	r = mkplain("x/y", RECORD_TYPE_DIRECTORY);
	put_local(f, r);
	record_free(r);
	memset(&n, 0, sizeof(n));
	n.db = f->db;
	n.folder = f->folder;
	assert_int_equal(db_entries_under(f->db, f->folder, DB_LOCAL_DEVICE,
	    "x", nest_outer, &n), 0);
	assert_int_equal(n.outer, 2);
	assert_int_equal(n.inner, 3);	/* x, x/y; then x/y */
}

static void
test_db_records_since_limit(void **state)
{
	struct fixture	*f = *state;
	struct collect	 c;
	struct record	*r[4];
	size_t		 i;
	char		 name[8];

	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		r[i] = mkfile(name, 2, (uint8_t)i);
		put_local(f, r[i]);
	}
	/* f1 again: now at sequence 5, its 2 is gone. */
	put_local(f, r[1]);
	memset(&c, 0, sizeof(c));
	assert_int_equal(db_records_since(f->db, f->folder, DB_LOCAL_DEVICE,
	    0, 0, collect_record, &c), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.seqs[0], 1);
	assert_int_equal(c.seqs[1], 3);
	assert_int_equal(c.seqs[2], 4);
	assert_int_equal(c.seqs[3], 5);
	assert_string_equal(c.names[3], "f1");

	memset(&c, 0, sizeof(c));
	assert_int_equal(db_records_since(f->db, f->folder, DB_LOCAL_DEVICE,
	    1, 2, collect_record, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seqs[0], 3);
	assert_int_equal(c.seqs[1], 4);

	memset(&c, 0, sizeof(c));
	assert_int_equal(db_records_since(f->db, f->folder, DB_LOCAL_DEVICE,
	    5, 0, collect_record, &c), 0);
	assert_int_equal(c.n, 0);
	for (i = 0; i < 4; i++)
		record_free(r[i]);
}

static int
check_full_record(const struct record *r, void *arg)
{
	const struct record	*want = arg;

	/* Full records, blocks included. */
	assert_same_record(want, r);
	return 0;
}

static void
test_db_records_since_full(void **state)
{
	struct fixture	*f = *state;
	struct record	*r;

	r = mkfile("big", 5, 4);
	put_local(f, r);
	assert_int_equal(db_records_since(f->db, f->folder, DB_LOCAL_DEVICE,
	    0, 0, check_full_record, r), 0);
	record_free(r);
}

static void
test_db_counts(void **state)
{
	struct fixture		*f = *state;
	struct db_counts	 c;
	struct record		*r;

	r = mkfile("f1", 2, 1);
	put_local(f, r);
	record_free(r);
	r = mkfile("f2", 1, 2);
	r->size = 10;
	r->blocks[0].size = 10;
	put_local(f, r);
	record_free(r);
	r = mkplain("d", RECORD_TYPE_DIRECTORY);
	put_local(f, r);
	record_free(r);
	r = mkplain("l", RECORD_TYPE_SYMLINK);
	r->symlink_target = xstrdup("f1");
	put_local(f, r);
	record_free(r);
	r = mkplain("gone", RECORD_TYPE_FILE);
	r->deleted = true;
	put_local(f, r);
	record_free(r);
	r = mkplain("gonedir", RECORD_TYPE_DIRECTORY);
	r->deleted = true;
	put_local(f, r);
	record_free(r);
	r = mkplain("ignored", RECORD_TYPE_FILE);
	r->invalid = true;
	r->local_flags = RECORD_LOCAL_IGNORED;
	put_local(f, r);
	record_free(r);
	assert_int_equal(db_counts(f->db, f->folder, DB_LOCAL_DEVICE, &c), 0);
	assert_int_equal(c.files, 3);
	assert_int_equal(c.directories, 1);
	assert_int_equal(c.bytes, 2 * 131072 + 10);
	assert_int_equal(c.deleted, 2);
	/* Empty for another device. */
	assert_int_equal(db_counts(f->db, f->folder, 7, &c), 0);
	assert_int_equal(c.files + c.directories + c.bytes + c.deleted, 0);
}

static void
test_db_block_find(void **state)
{
	struct fixture	*f = *state;
	struct record	*r;
	uint8_t		 h1[RECORD_HASH_LEN];
	char		*name = NULL;
	int64_t		 off = -1;

	r = mkfile("dir/x", 3, 50);
	memcpy(h1, r->blocks[1].hash, RECORD_HASH_LEN);
	put_local(f, r);
	assert_int_equal(db_block_find(f->db, f->folder, h1, &name, &off), 0);
	assert_string_equal(name, "dir/x");
	assert_int_equal(off, 131072);
	free(name);
	name = NULL;
	/* New content under the same name replaces its entries (5). */
	record_free(r);
	r = mkfile("dir/x", 1, 90);
	put_local(f, r);
	assert_int_equal(db_block_find(f->db, f->folder, h1, &name, &off),
	    SH_ENOTFOUND);
	assert_null(name);
	assert_int_equal(db_block_find(f->db, f->folder, r->blocks[0].hash,
	    &name, &off), 0);
	assert_int_equal(off, 0);
	free(name);
	name = NULL;
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 1);
	/* Deleted: no blocks, no entries. */
	free(r->blocks);
	r->blocks = NULL;
	r->block_count = 0;
	r->has_blocks_hash = false;
	r->deleted = true;
	put_local(f, r);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 0);
	/* Remote records never enter the block index. */
	record_free(r);
	r = mkfile("remote", 1, 60);
	r->sequence = 1;
	assert_int_equal(db_remote_put(f->db, f->folder, 3, r), SH_EDB);
	{
		struct device_id	id;
		int64_t			dev;

		memset(&id, 0xab, sizeof(id));
		assert_int_equal(db_device_idx(f->db, &id, &dev), 0);
		assert_int_equal(db_remote_put(f->db, f->folder, dev, r), 0);
	}
	assert_int_equal(db_block_find(f->db, f->folder, r->blocks[0].hash,
	    &name, &off), SH_ENOTFOUND);
	record_free(r);
}

static void
test_db_block_dedup(void **state)
{
	struct fixture	*f = *state;
	struct record	*a, *b;

	a = mkfile("a", 4, 7);
	b = mkfile("sub/b", 4, 7);
	put_local(f, a);
	put_local(f, b);
	/* Same content: one shared list (3). */
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 1);
	/* Same hashes but other sizes are not the same list (3). */
	b->blocks[3].size = 1;
	b->size -= 131071;
	put_local(f, b);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 2);
	b->blocks[3].size = 131072;
	b->size += 131071;
	put_local(f, b);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 1);
	/* Moving one off keeps the list for the other (4). */
	free(a->blocks);
	a->blocks = NULL;
	a->block_count = 0;
	a->deleted = true;
	put_local(f, a);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 1);
	{
		struct record	*got = NULL;

		assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
		    "sub/b", &got), 0);
		assert_int_equal(got->block_count, 4);
		assert_false(got->deleted);
		record_free(got);
		assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
		    "a", &got), 0);
		assert_int_equal(got->block_count, 0);
		assert_false(got->has_blocks_hash);
		record_free(got);
	}
	/* The last reference gone: the list goes too. */
	free(b->blocks);
	b->blocks = NULL;
	b->block_count = 0;
	b->deleted = true;
	put_local(f, b);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 0);
	record_free(a);
	record_free(b);
}

static void
test_db_index_ids(void **state)
{
	struct fixture		*f = *state;
	struct device_id	 id;
	int64_t			 dev, dev2;
	uint64_t		 v, local, local2;

	memset(&id, 0x11, sizeof(id));
	assert_int_equal(db_device_idx(f->db, &id, &dev), 0);
	assert_true(dev != DB_LOCAL_DEVICE);
	assert_int_equal(db_device_idx(f->db, &id, &dev2), 0);
	assert_int_equal(dev, dev2);
	memset(&id, 0, sizeof(id));
	assert_int_equal(db_device_idx(f->db, &id, &dev2), -EINVAL);

	assert_int_equal(db_index_id_get(f->db, f->folder, dev, &v), 0);
	assert_true(v == 0);
	assert_int_equal(db_index_id_set(f->db, f->folder, dev,
	    UINT64_C(0xdeadbeefcafef00d)), 0);
	assert_int_equal(db_index_id_get(f->db, f->folder, dev, &v), 0);
	assert_true(v == UINT64_C(0xdeadbeefcafef00d));

	assert_int_equal(db_index_id_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    &local), 0);
	assert_true(local != 0);
	reopen(f);
	assert_int_equal(db_index_id_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    &local2), 0);
	assert_true(local == local2);
	assert_int_equal(db_index_id_get(f->db, f->folder, dev, &v), 0);
	assert_true(v == UINT64_C(0xdeadbeefcafef00d));
	/* Setting an index ID leaves the local sequence alone. */
	{
		struct record	*r = mkfile("s", 1, 1);
		int64_t		 max;

		put_local(f, r);
		put_local(f, r);
		assert_int_equal(db_index_id_set(f->db, f->folder,
		    DB_LOCAL_DEVICE, 5), 0);
		assert_int_equal(db_max_sequence(f->db, f->folder,
		    DB_LOCAL_DEVICE, &max), 0);
		assert_int_equal(max, 2);
		record_free(r);
	}
}

static void
test_db_remote_put_get(void **state)
{
	struct fixture		*f = *state;
	struct device_id	 id;
	struct record		*r, *got = NULL, *other;
	int64_t			 dev, max;

	memset(&id, 0x22, sizeof(id));
	assert_int_equal(db_device_idx(f->db, &id, &dev), 0);
	r = mkfile("shared.txt", 2, 33);
	r->sequence = 1234;
	r->local_flags = 0;
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r), 0);
	/* Kept as is: the peer's sequence, not a local one. */
	assert_int_equal(r->sequence, 1234);
	assert_int_equal(db_file_get(f->db, f->folder, dev, "shared.txt",
	    &got), 0);
	assert_same_record(r, got);
	record_free(got);
	got = NULL;
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    "shared.txt", &got), SH_ENOTFOUND);
	assert_int_equal(db_max_sequence(f->db, f->folder, dev, &max), 0);
	assert_int_equal(max, 1234);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 0);
	/* The peer updates it. */
	r->sequence = 1300;
	r->size = 131072;
	r->block_count = 1;
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r), 0);
	assert_int_equal(db_max_sequence(f->db, f->folder, dev, &max), 0);
	assert_int_equal(max, 1300);
	/* Another name under a sequence already used: refused, harmless. */
	other = mkplain("other", RECORD_TYPE_DIRECTORY);
	other->sequence = 1300;
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_remote_put(f->db, f->folder, dev, other),
	    SH_EPROTO);
	other->sequence = 1301;
	assert_int_equal(db_remote_put(f->db, f->folder, dev, other), 0);
	assert_int_equal(db_commit(f->db), 0);
	assert_int_equal(db_local_put(f->db, f->folder, other), 0);
	assert_int_equal(db_remote_put(f->db, f->folder, DB_LOCAL_DEVICE, r),
	    -EINVAL);
	/* A full Index from the peer replaces its records. */
	assert_int_equal(db_files_drop(f->db, f->folder, dev), 0);
	assert_int_equal(db_file_get(f->db, f->folder, dev, "shared.txt",
	    &got), SH_ENOTFOUND);
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    "other", &got), 0);
	record_free(got);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 0);
	record_free(r);
	record_free(other);
}

static void
test_db_transaction_rollback(void **state)
{
	struct fixture	*f = *state;
	struct record	*r, *got = NULL;
	int64_t		 max;

	r = mkfile("t", 1, 1);
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_begin(f->db), SH_EDB);	/* not nested */
	put_local(f, r);
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, "t",
	    &got), 0);
	record_free(got);
	got = NULL;
	db_rollback(f->db);
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, "t",
	    &got), SH_ENOTFOUND);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 0);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 0);
	/* Committed work stays, and is visible to another connection. */
	assert_int_equal(db_begin(f->db), 0);
	put_local(f, r);
	assert_int_equal(r->sequence, 1);
	assert_int_equal(db_commit(f->db), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM files WHERE "
	    "name = 't'"), 1);
	assert_int_equal(db_commit(f->db), SH_EDB);	/* none open */
	record_free(r);
}

static void
test_db_sequence_in_transaction(void **state)
{
	struct fixture	*f = *state;
	struct record	*r;
	int64_t		 max;

	r = mkfile("s", 1, 1);
	assert_int_equal(db_begin(f->db), 0);
	put_local(f, r);
	put_local(f, r);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 2);
	assert_int_equal(db_commit(f->db), 0);
	/* The counter reached the file with the commit (1). */
	assert_int_equal(sql_int(f, "SELECT max_sequence FROM index_ids "
	    "WHERE device = 0"), 2);
	assert_int_equal(db_begin(f->db), 0);
	put_local(f, r);
	assert_int_equal(r->sequence, 3);
	db_rollback(f->db);
	reopen(f);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 2);
	put_local(f, r);
	assert_int_equal(r->sequence, 3);
	record_free(r);
}

static void
test_db_failed_transaction_sticks(void **state)
{
	struct fixture	*f = *state;
	struct record	*r, *got = NULL;

	r = mkfile("a", 1, 1);
	assert_int_equal(db_begin(f->db), 0);
	put_local(f, r);
	/* Folder 999 does not exist: the foreign key refuses the put. */
	assert_int_equal(db_local_put(f->db, 999, r), SH_EDB);
	/* (6): the transaction refuses further work and its commit. */
	assert_int_equal(db_local_put(f->db, f->folder, r), SH_EDB);
	assert_int_equal(db_commit(f->db), SH_EDB);
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, "a",
	    &got), SH_ENOTFOUND);
	/* Usable again after the (implied) rollback. */
	assert_int_equal(db_begin(f->db), 0);
	put_local(f, r);
	assert_int_equal(r->sequence, 1);
	assert_int_equal(db_commit(f->db), 0);
	record_free(r);
}

static void
test_db_folder_drop(void **state)
{
	struct fixture	*f = *state;
	struct record	*r, *got = NULL;
	int64_t		 other, max;
	uint64_t	 id1, id2;

	assert_int_equal(db_folder_idx(f->db, "keep", &other), 0);
	r = mkfile("x", 2, 5);
	put_local(f, r);
	put_local(f, r);
	assert_int_equal(db_local_put(f->db, other, r), 0);
	assert_int_equal(db_index_id_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    &id1), 0);
	assert_int_equal(db_folder_drop(f->db, f->folder), 0);
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, "x",
	    &got), SH_ENOTFOUND);
	assert_int_equal(db_max_sequence(f->db, f->folder, DB_LOCAL_DEVICE,
	    &max), 0);
	assert_int_equal(max, 0);
	/* The other folder keeps its record, its list and its index. */
	assert_int_equal(db_file_get(f->db, other, DB_LOCAL_DEVICE, "x",
	    &got), 0);
	record_free(got);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 1);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 2);
	/* A new index: new ID, sequences from 1. */
	assert_int_equal(db_index_id_get(f->db, f->folder, DB_LOCAL_DEVICE,
	    &id2), 0);
	assert_true(id2 != 0 && id2 != id1);
	put_local(f, r);
	assert_int_equal(r->sequence, 1);
	assert_int_equal(db_folder_drop(f->db, other), 0);
	assert_int_equal(db_folder_drop(f->db, f->folder), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 0);
	record_free(r);
}

static double
elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void
test_db_put_speed(void **state)
{
	struct fixture	*f = *state;
	struct record	*r, *old = NULL;
	struct timespec	 t0, t1, t2, c0, c1, c2;
	char		 name[64];
	int		 i, rc;
	double		 put_ms, scan_ms, put_cpu, scan_cpu;

	/* The scanner's first pass: 20,000 small new files in one
	 * transaction, each looked up first. */
	r = mkfile("x", 1, 0);
	r->size = 1000;
	r->blocks[0].size = 1000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	assert_int_equal(db_begin(f->db), 0);
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "dir%02d/file-%05d.txt",
		    i % 50, i);
		free(r->name);
		r->name = xstrdup(name);
		memcpy(r->blocks[0].hash, &i, sizeof(i));
		rc = db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, name, &old);
		assert_int_equal(rc, SH_ENOTFOUND);
		put_local(f, r);
	}
	assert_int_equal(db_commit(f->db), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	/* A rescan that finds every file changed. */
	assert_int_equal(db_begin(f->db), 0);
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "dir%02d/file-%05d.txt",
		    i % 50, i);
		rc = db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, name, &old);
		assert_int_equal(rc, 0);
		old->blocks[0].hash[31] ^= 1;
		old->modified_s++;
		put_local(f, old);
		record_free(old);
		old = NULL;
	}
	assert_int_equal(db_commit(f->db), 0);
	clock_gettime(CLOCK_MONOTONIC, &t2);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);
	put_ms = elapsed_ms(&t0, &t1);
	scan_ms = elapsed_ms(&t1, &t2);
	put_cpu = elapsed_ms(&c0, &c1);
	scan_cpu = elapsed_ms(&c1, &c2);
	printf("db speed: 20000 get+put, new files: %.0f ms (%.0f ms CPU); "
	    "changed files: %.0f ms (%.0f ms CPU)\n", put_ms, put_cpu,
	    scan_ms, scan_cpu);
	assert_int_equal(r->sequence, 20000);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocklists"), 20000);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM blocks"), 20000);
	/* Generous bound so sanitizer builds pass; the figure is printed. */
	assert_true(put_ms < 5000.0);
	record_free(r);
}

/*
 * The statements run once per name (per pulled file, per request served)
 * must find their row through an index on (folder, name); a plan keyed by
 * the folder alone walks every record of it, which made pulling 10,000
 * files quadratic. The need list must come from the partial index.
 */
/*
 * The status cache: equal to the uncached figures when nothing changed; a
 * stale value may stand only while it says something is needed (or, for
 * completion, below 100), never once the folder needs nothing.
 */
static void
test_db_status_cache(void **state)
{
	struct fixture		*f = *state;
	struct db_global_counts	 g, u;
	struct device_id	 id;
	struct record		*r[4];
	uint64_t		 t0;
	int64_t			 dev;
	double			 pct, upct;
	int			 i;

	memset(&id, 0x33, sizeof(id));
	assert_int_equal(db_device_idx(f->db, &id, &dev), 0);
	for (i = 0; i < 4; i++) {
		char	name[16];

		snprintf(name, sizeof(name), "n%d", i);
		r[i] = mkfile(name, 1, (uint8_t)(10 + i));
		r[i]->sequence = 100 + i;
	}
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r[0]), 0);
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r[1]), 0);
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_int_equal(db_global_counts(f->db, f->folder, &u), 0);
	assert_memory_equal(&g, &u, sizeof(g));
	assert_int_equal(g.need_items, 2);

	/* Changed, still needing: the old figures may stand a while. */
	t0 = util_now_ms();
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r[2]), 0);
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_true(g.need_items == 2 || util_now_ms() - t0 >= 250);
	assert_int_equal(db_global_counts(f->db, f->folder, &u), 0);
	assert_int_equal(u.need_items, 3);

	/* Everything arrives: the very next call says so, exactly. */
	for (i = 0; i < 3; i++) {
		r[i]->sequence = 0;
		put_local(f, r[i]);
	}
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_int_equal(db_global_counts(f->db, f->folder, &u), 0);
	assert_memory_equal(&g, &u, sizeof(g));
	assert_int_equal(g.need_items, 0);
	assert_int_equal(g.files, 3);

	/* Completion: 100 is never reported once our index grew. */
	assert_int_equal(db_completion_cached(f->db, f->folder, dev, &pct), 0);
	assert_true(pct >= 100.0);
	put_local(f, r[3]);
	assert_int_equal(db_completion_cached(f->db, f->folder, dev, &pct), 0);
	assert_int_equal(db_completion(f->db, f->folder, dev, &upct), 0);
	assert_true(upct < 100.0);
	assert_true(pct == upct);

	/* Values seen inside a transaction that is rolled back are not kept. */
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_int_equal(db_begin(f->db), 0);
	r[3]->sequence = 200;
	r[3]->version.counters[0].value++;
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r[3]), 0);
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_int_equal(g.need_items, 1);
	db_rollback(f->db);
	assert_int_equal(db_global_counts_cached(f->db, f->folder, &g), 0);
	assert_int_equal(g.need_items, 0);
	for (i = 0; i < 4; i++)
		record_free(r[i]);
}

/* The folder generation moves with every change to the folder's records
 * (conn.c keeps a served record while it holds) and only then. */
static void
test_db_folder_gen(void **state)
{
	struct fixture		*f = *state;
	struct device_id	 id;
	struct record		*r, *got = NULL;
	int64_t			 dev, other;
	uint64_t		 g0, g1, g2, g3, g4;

	memset(&id, 0x44, sizeof(id));
	assert_int_equal(db_device_idx(f->db, &id, &dev), 0);
	assert_int_equal(db_folder_idx(f->db, "other", &other), 0);
	g0 = db_folder_gen(f->db, f->folder);
	assert_true(db_folder_gen(f->db, f->folder) == g0);
	r = mkfile("g", 2, 3);
	put_local(f, r);
	g1 = db_folder_gen(f->db, f->folder);
	assert_true(g1 != g0);
	/* Reads and another folder's changes leave it alone. */
	assert_int_equal(db_file_get(f->db, f->folder, DB_LOCAL_DEVICE, "g",
	    &got), 0);
	record_free(got);
	r->sequence = 0;
	assert_int_equal(db_local_put(f->db, other, r), 0);
	assert_true(db_folder_gen(f->db, f->folder) == g1);
	/* A remote record, a drop and a rollback each move it. */
	r->sequence = 9;
	assert_int_equal(db_remote_put(f->db, f->folder, dev, r), 0);
	g2 = db_folder_gen(f->db, f->folder);
	assert_true(g2 != g1);
	assert_int_equal(db_files_drop(f->db, f->folder, dev), 0);
	g3 = db_folder_gen(f->db, f->folder);
	assert_true(g3 != g2);
	assert_int_equal(db_begin(f->db), 0);
	db_rollback(f->db);
	g4 = db_folder_gen(f->db, f->folder);
	assert_true(g4 != g3);
	record_free(r);
}

static void
test_db_query_plans(void **state)
{
	struct fixture	*f = *state;
	char		*plans = NULL, *line, *save = NULL, *tab;
	int		 per_name = 0, need = 0;

	assert_int_equal(db_query_plans(f->db, &plans), 0);
	for (line = strtok_r(plans, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		tab = strchr(line, '\t');
		assert_non_null(tab);
		*tab++ = '\0';
		if (strncmp(line, "SELECT", 6) != 0)
			continue;
		if (strstr(line, "name = ?") != NULL) {
			per_name++;
			if (strstr(tab, "name=?") == NULL &&
			    strstr(tab, "name>?") == NULL)
				fail_msg("per-name statement not keyed by "
				    "name: %s -> %s", line, tab);
		}
		if (strstr(line, "need != 0") != NULL &&
		    strstr(line, "ORDER BY name") != NULL) {
			need++;
			if (strstr(tab, "globals_need") == NULL)
				fail_msg("need list without its index: %s -> %s",
				    line, tab);
		}
	}
	assert_true(per_name >= 4);
	assert_int_equal(need, 3);
	free(plans);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_db_open_create_reopen,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_newer_version_refused,
		    setup, teardown),
		cmocka_unit_test(test_db_open_bad_path),
		cmocka_unit_test_setup_teardown(test_db_roundtrip_fields,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_sequence_never_reused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_entries_under_prefix,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_entries_under_reentrant,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_records_since_limit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_records_since_full,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_counts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_block_find,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_block_dedup,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_index_ids,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_remote_put_get,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_transaction_rollback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_sequence_in_transaction,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_db_failed_transaction_sticks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_folder_drop,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_folder_gen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_db_status_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_db_query_plans,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_db_put_speed,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

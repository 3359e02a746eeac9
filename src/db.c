/* SPDX-License-Identifier: MIT */
/*
 * The index: one SQLite database holding, per folder, this device's file
 * records and the latest records received from each peer, with the
 * sequence numbers that let peers exchange only what changed (bep-brief
 * §9). One connection, one thread at a time (the loop thread). Schema,
 * migrations and the reasoning behind them: docs/internals/db.md.
 *
 * NOTES ON THE DESIGN OF THE INDEX
 *
 * (1) Local sequences are per folder, start at 1, strictly increase and are
 *     never reused, even when the record holding the highest one is
 *     replaced: they come from a counter row in index_ids (device 0), not
 *     from MAX(sequence) + 1. A peer that saw sequence n must never be
 *     offered a different change under n.
 * (2) Each (folder, device, name) has exactly one record; db_local_put
 *     replaces it, so a name's previous sequence disappears with it and a
 *     walk by sequence yields every changed name once (§9.1).
 * (3) Block lists live in blocklists, keyed by SHA-256 of the packed list
 *     (offsets, sizes, hashes, weak hashes), and are shared by every record
 *     with that exact list. The key is deliberately not the BEP blocks_hash:
 *     that covers only hashes, so a peer lying about sizes or offsets could
 *     otherwise plant its list under the key of one of ours. A record's
 *     blocks_hash is recomputed from its blocks when it is read, as
 *     Syncthing does on receipt (§10.9). Records without blocks have no
 *     list and no blocks_hash.
 * (4) A blocklists row exists only while some file references it: every
 *     put that moves a record off a list deletes that list if it was the
 *     last reference; bulk drops collect all orphans.
 * (5) The blocks table (hash -> name, offset) describes exactly the local
 *     device's current records that have blocks: rows for a name exist iff
 *     its local record has a block list, and match that list.
 * (6) A write that fails inside a caller's transaction leaves the
 *     transaction in a failed state: further puts and the commit are
 *     refused (the commit rolls back) until db_rollback, as sqlite's pager
 *     ERROR state refuses work. Outside a transaction each put runs in its
 *     own and is all-or-nothing.
 * (7) globals holds, for every name any device has in a folder, the global
 *     version's holder, its kind and size, and whether we need it (the
 *     rules are model.c's). Every put and drop recomputes the rows of the
 *     names it touched, in the same transaction, from those names' records
 *     only: the view is never rebuilt by scanning a whole folder.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sqlite3.h>

#include "shoal/db.h"
#include "shoal/hash.h"
#include "shoal/log.h"
#include "shoal/model.h"
#include "shoal/util.h"

#define VECTOR_HDR_LEN		4
#define VECTOR_COUNTER_LEN	16
#define BLOCK_PACKED_LEN	48	/* offset 8, size 4, hash 32, weak 4 */
#define BUSY_TIMEOUT_MS		5000
/* Status cache: a changing folder's aggregates at most this often. */
#define CACHE_MIN_MS		250

/*
 * Forward migrations: migrations[v] takes a database from version v - 1 to
 * v. Never edit a step that has shipped; append a new one.
 */
static const char *const migrations[] = {
	NULL,
	/* 1: initial schema. */
	"CREATE TABLE folders ("
	"  idx INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE);"
	/* idx 0 is this device; its row has no ID so no lookup finds it. */
	"CREATE TABLE devices ("
	"  idx INTEGER PRIMARY KEY,"
	"  device_id BLOB UNIQUE);"
	"INSERT INTO devices (idx, device_id) VALUES (0, NULL);"
	"CREATE TABLE blocklists ("
	"  key BLOB PRIMARY KEY,"
	"  blocks BLOB NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE files ("
	"  folder INTEGER NOT NULL REFERENCES folders (idx),"
	"  device INTEGER NOT NULL REFERENCES devices (idx),"
	"  name TEXT NOT NULL,"
	"  type INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  permissions INTEGER NOT NULL,"
	"  modified_s INTEGER NOT NULL,"
	"  modified_ns INTEGER NOT NULL,"
	"  modified_by INTEGER NOT NULL,"
	"  deleted INTEGER NOT NULL,"
	"  invalid INTEGER NOT NULL,"
	"  no_permissions INTEGER NOT NULL,"
	"  version BLOB NOT NULL,"
	"  sequence INTEGER NOT NULL,"
	"  block_size INTEGER NOT NULL,"
	"  blocklist BLOB,"
	"  symlink_target TEXT,"
	"  local_flags INTEGER NOT NULL,"
	"  inode INTEGER NOT NULL,"
	"  dev INTEGER NOT NULL,"
	"  PRIMARY KEY (folder, device, name)"
	") WITHOUT ROWID;"
	"CREATE UNIQUE INDEX files_sequence ON files"
	"  (folder, device, sequence);"
	"CREATE INDEX files_blocklist ON files (blocklist)"
	"  WHERE blocklist IS NOT NULL;"
	"CREATE TABLE blocks ("
	"  folder INTEGER NOT NULL REFERENCES folders (idx),"
	"  hash BLOB NOT NULL,"
	"  name TEXT NOT NULL,"
	"  offset INTEGER NOT NULL,"
	"  PRIMARY KEY (folder, hash, name, offset)"
	") WITHOUT ROWID;"
	"CREATE TABLE index_ids ("
	"  folder INTEGER NOT NULL REFERENCES folders (idx),"
	"  device INTEGER NOT NULL REFERENCES devices (idx),"
	"  index_id INTEGER NOT NULL,"
	"  max_sequence INTEGER NOT NULL,"
	"  PRIMARY KEY (folder, device)"
	") WITHOUT ROWID;",
	/*
	 * 2: the derived global view (bep-brief §10.7), one row per name of
	 * a folder, kept up to date by every put and drop (invariant 7).
	 * Names that only we hold start as their own global; names with
	 * remote records are recomputed in C after this step.
	 */
	"CREATE INDEX files_name ON files (folder, name);"
	"CREATE TABLE globals ("
	"  folder INTEGER NOT NULL REFERENCES folders (idx),"
	"  name TEXT NOT NULL,"
	"  device INTEGER NOT NULL,"
	"  type INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  deleted INTEGER NOT NULL,"
	"  invalid INTEGER NOT NULL,"
	"  need INTEGER NOT NULL,"
	"  PRIMARY KEY (folder, name)"
	") WITHOUT ROWID;"
	"CREATE INDEX globals_need ON globals (folder, name) WHERE need != 0;"
	"INSERT INTO globals SELECT folder, name, 0, type, size, deleted, "
	"  (invalid != 0 OR local_flags != 0), 0 FROM files WHERE device = 0;",
	/*
	 * 3: a local record flagged as ignored no longer satisfies the need
	 * (model_needs); the need of those names is recomputed in C after
	 * this step. No table changes.
	 */
	"SELECT 1;",
};

#define SCHEMA_LATEST	((int)(sizeof(migrations) / sizeof(migrations[0])) - 1)
_Static_assert(SCHEMA_LATEST == DB_SCHEMA_VERSION,
    "DB_SCHEMA_VERSION must name the last migration");

/* Columns of a full record, in the order read_record() expects. */
#define RECORD_COLS							\
	"f.name, f.type, f.size, f.permissions, f.modified_s, "		\
	"f.modified_ns, f.modified_by, f.deleted, f.invalid, "		\
	"f.no_permissions, f.version, f.sequence, f.block_size, "	\
	"f.symlink_target, f.local_flags, f.inode, f.dev, f.blocklist, "\
	"b.blocks "							\
	"FROM files f LEFT JOIN blocklists b ON b.key = f.blocklist "

enum db_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_FOLDER_GET,
	ST_FOLDER_ADD,
	ST_DEVICE_GET,
	ST_DEVICE_ADD,
	ST_FILE_GET,
	ST_FILE_OLD,
	ST_SEQ_SET,
	ST_FILE_PUT,
	ST_BLOCKLIST_ADD,
	ST_BLOCKLIST_GC,
	ST_BLOCKLIST_GC_ALL,
	ST_BLOCKS_DEL,
	ST_BLOCKLIST_GET,
	ST_BLOCKS_ADD,
	ST_BLOCK_FIND,
	ST_MAX_SEQ_LOCAL,
	ST_MAX_SEQ_REMOTE,
	ST_ENTRIES_ALL,
	ST_ENTRIES_UNDER,
	ST_SINCE,
	ST_COUNTS,
	ST_COMPLETION,
	ST_INDEX_ID_GET,
	ST_INDEX_ID_SET,
	ST_FILES_DROP,
	ST_FOLDER_FILES_DROP,
	ST_FOLDER_BLOCKS_DROP,
	ST_FOLDER_IDS_DROP,
	ST_DEVICE_ID_GET,
	ST_LOCAL_FLAGGED,
	ST_GLOBAL_CANDIDATES,
	ST_GLOBAL_PUT,
	ST_GLOBAL_DEL,
	ST_GLOBAL_GET,
	ST_GLOBAL_COUNTS,
	ST_AVAILABILITY,
	ST_NEED_DIRS,
	ST_NEED_FILES,
	ST_NEED_DELETES,
	ST_FOLDER_GLOBALS_DROP,
	ST_DROP_NAMES_FILL,
	ST_DROP_NAMES_GET,
	ST_DROP_NAMES_CLEAR,
	ST_NEED_ANY,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	/* IMMEDIATE takes the write lock up front, so a CLI process reading
	 * the same file cannot make our commit fail with SQLITE_BUSY half
	 * way through a scan batch. */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_FOLDER_GET] = "SELECT idx FROM folders WHERE id = ?1",
	[ST_FOLDER_ADD] = "INSERT INTO folders (id) VALUES (?1)",
	[ST_DEVICE_GET] = "SELECT idx FROM devices WHERE device_id = ?1",
	[ST_DEVICE_ADD] = "INSERT INTO devices (device_id) VALUES (?1)",
	[ST_FILE_GET] = "SELECT " RECORD_COLS
	    "WHERE f.folder = ?1 AND f.device = ?2 AND f.name = ?3",
	[ST_FILE_OLD] = "SELECT blocklist FROM files "
	    "WHERE folder = ?1 AND device = ?2 AND name = ?3",
	[ST_SEQ_SET] = "INSERT INTO index_ids "
	    "(folder, device, index_id, max_sequence) VALUES (?1, 0, 0, ?2) "
	    "ON CONFLICT (folder, device) DO UPDATE "
	    "SET max_sequence = excluded.max_sequence",
	[ST_FILE_PUT] = "INSERT INTO files (folder, device, name, type, size, "
	    "permissions, modified_s, modified_ns, modified_by, deleted, "
	    "invalid, no_permissions, version, sequence, block_size, "
	    "blocklist, symlink_target, local_flags, inode, dev) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
	    "?15, ?16, ?17, ?18, ?19, ?20) "
	    "ON CONFLICT (folder, device, name) DO UPDATE SET "
	    "type = excluded.type, size = excluded.size, "
	    "permissions = excluded.permissions, "
	    "modified_s = excluded.modified_s, "
	    "modified_ns = excluded.modified_ns, "
	    "modified_by = excluded.modified_by, deleted = excluded.deleted, "
	    "invalid = excluded.invalid, "
	    "no_permissions = excluded.no_permissions, "
	    "version = excluded.version, sequence = excluded.sequence, "
	    "block_size = excluded.block_size, "
	    "blocklist = excluded.blocklist, "
	    "symlink_target = excluded.symlink_target, "
	    "local_flags = excluded.local_flags, inode = excluded.inode, "
	    "dev = excluded.dev",
	[ST_BLOCKLIST_ADD] = "INSERT OR IGNORE INTO blocklists (key, blocks) "
	    "VALUES (?1, ?2)",
	[ST_BLOCKLIST_GC] = "DELETE FROM blocklists WHERE key = ?1 AND "
	    "NOT EXISTS (SELECT 1 FROM files WHERE blocklist = ?1)",
	[ST_BLOCKLIST_GC_ALL] = "DELETE FROM blocklists WHERE NOT EXISTS "
	    "(SELECT 1 FROM files WHERE files.blocklist = blocklists.key)",
	[ST_BLOCKS_DEL] = "DELETE FROM blocks WHERE folder = ?1 AND "
	    "hash = ?2 AND name = ?3 AND offset = ?4",
	[ST_BLOCKLIST_GET] = "SELECT blocks FROM blocklists WHERE key = ?1",
	[ST_BLOCKS_ADD] = "INSERT OR IGNORE INTO blocks "
	    "(folder, hash, name, offset) VALUES (?1, ?2, ?3, ?4)",
	[ST_BLOCK_FIND] = "SELECT name, offset FROM blocks "
	    "WHERE folder = ?1 AND hash = ?2 LIMIT 1",
	[ST_MAX_SEQ_LOCAL] = "SELECT max_sequence FROM index_ids "
	    "WHERE folder = ?1 AND device = 0",
	[ST_MAX_SEQ_REMOTE] = "SELECT sequence FROM files "
	    "WHERE folder = ?1 AND device = ?2 ORDER BY sequence DESC LIMIT 1",
	[ST_ENTRIES_ALL] = "SELECT name, type, size, deleted, invalid, "
	    "sequence FROM files WHERE folder = ?1 AND device = ?2 "
	    "ORDER BY name",
	/*
	 * '0' is the byte after '/', so (p/, p0) is exactly "below p" in
	 * BINARY collation. SQLite does not turn "name = p OR name in
	 * (p/, p0)" into index ranges (it scanned the whole folder), so the
	 * range [p, p0) bounds the primary-key search and the OR only drops
	 * the siblings inside it ("p.txt", "p-x": bytes below '/').
	 */
	[ST_ENTRIES_UNDER] = "SELECT name, type, size, deleted, invalid, "
	    "sequence FROM files WHERE folder = ?1 AND device = ?2 AND "
	    "name >= ?3 AND name < ?5 AND (name = ?3 OR name > ?4) "
	    "ORDER BY name",
	[ST_SINCE] = "SELECT " RECORD_COLS "WHERE f.folder = ?1 AND "
	    "f.device = ?2 AND f.sequence > ?3 ORDER BY f.sequence LIMIT ?4",
	[ST_COUNTS] = "SELECT "
	    "coalesce(sum(deleted = 0 AND invalid = 0 AND type IN (0, 4)), 0), "
	    "coalesce(sum(deleted = 0 AND invalid = 0 AND type = 1), 0), "
	    "coalesce(sum(CASE WHEN deleted = 0 AND invalid = 0 AND "
	    "type IN (0, 4) THEN size ELSE 0 END), 0), "
	    "coalesce(sum(deleted != 0), 0), "
	    "coalesce(sum((local_flags & 2) != 0), 0) "
	    "FROM files WHERE folder = ?1 AND device = ?2",
	/* Our present items, and how many of them the device has at the
	 * same version (equal vectors encode to equal blobs). */
	[ST_COMPLETION] = "SELECT count(*), coalesce(sum(l.size), 0), "
	    "coalesce(sum(r.version = l.version), 0), "
	    "coalesce(sum(CASE WHEN r.version = l.version THEN l.size "
	    "ELSE 0 END), 0) "
	    "FROM files l LEFT JOIN files r ON r.folder = l.folder AND "
	    "r.device = ?2 AND r.name = l.name "
	    "WHERE l.folder = ?1 AND l.device = 0 AND l.deleted = 0 AND "
	    "l.invalid = 0",
	[ST_INDEX_ID_GET] = "SELECT index_id FROM index_ids "
	    "WHERE folder = ?1 AND device = ?2",
	[ST_INDEX_ID_SET] = "INSERT INTO index_ids "
	    "(folder, device, index_id, max_sequence) VALUES (?1, ?2, ?3, 0) "
	    "ON CONFLICT (folder, device) DO UPDATE "
	    "SET index_id = excluded.index_id",
	[ST_FILES_DROP] = "DELETE FROM files WHERE folder = ?1 AND device = ?2",
	[ST_FOLDER_FILES_DROP] = "DELETE FROM files WHERE folder = ?1",
	[ST_FOLDER_BLOCKS_DROP] = "DELETE FROM blocks WHERE folder = ?1",
	[ST_FOLDER_IDS_DROP] = "DELETE FROM index_ids WHERE folder = ?1",
	[ST_LOCAL_FLAGGED] = "SELECT name, type, size, deleted, invalid, "
	    "sequence FROM files WHERE folder = ?1 AND device = 0 AND "
	    "(local_flags & ?2) != 0 ORDER BY name",
	[ST_DEVICE_ID_GET] = "SELECT device_id FROM devices WHERE idx = ?1",
	[ST_GLOBAL_CANDIDATES] = "SELECT device, version, deleted, "
	    "invalid != 0 OR local_flags != 0, modified_s, modified_ns, type, "
	    "size, local_flags FROM files INDEXED BY files_name "
	    "WHERE folder = ?1 AND name = ?2",
	[ST_GLOBAL_PUT] = "INSERT INTO globals (folder, name, device, type, "
	    "size, deleted, invalid, need) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
	    "?8) ON CONFLICT (folder, name) DO UPDATE SET "
	    "device = excluded.device, type = excluded.type, "
	    "size = excluded.size, deleted = excluded.deleted, "
	    "invalid = excluded.invalid, need = excluded.need",
	[ST_GLOBAL_DEL] = "DELETE FROM globals WHERE folder = ?1 AND name = ?2",
	[ST_GLOBAL_GET] = "SELECT device FROM globals "
	    "WHERE folder = ?1 AND name = ?2",
	[ST_GLOBAL_COUNTS] = "SELECT "
	    "coalesce(sum(deleted = 0 AND invalid = 0 AND type IN (0, 4)), 0), "
	    "coalesce(sum(deleted = 0 AND invalid = 0 AND type = 1), 0), "
	    "coalesce(sum(CASE WHEN deleted = 0 AND invalid = 0 AND "
	    "type IN (0, 4) THEN size ELSE 0 END), 0), "
	    "coalesce(sum(need != 0), 0), "
	    "coalesce(sum(CASE WHEN need != 0 AND deleted = 0 THEN size "
	    "ELSE 0 END), 0), "
	    "coalesce(sum(need != 0 AND deleted != 0), 0) "
	    "FROM globals WHERE folder = ?1",
	/* Per-name lookups must reach the row through an index on (folder,
	 * name): "device != 0" or a missing INDEXED BY lets the planner
	 * walk the whole folder instead (test_db_query_plans). */
	[ST_AVAILABILITY] = "SELECT device FROM files WHERE folder = ?1 AND "
	    "name = ?2 AND device > 0 AND invalid = 0 AND local_flags = 0 "
	    "AND version = ?3 ORDER BY device",
	/* Parents sort before their children by name; deletions go the
	 * other way so a directory is emptied before it is removed. */
	[ST_NEED_DIRS] = "SELECT name, type, deleted, size, device FROM "
	    "globals INDEXED BY globals_need WHERE folder = ?1 AND need != 0 AND deleted = 0 AND "
	    "type = 1 ORDER BY name",
	[ST_NEED_FILES] = "SELECT name, type, deleted, size, device FROM "
	    "globals INDEXED BY globals_need WHERE folder = ?1 AND need != 0 AND deleted = 0 AND "
	    "type != 1 ORDER BY name",
	[ST_NEED_DELETES] = "SELECT name, type, deleted, size, device FROM "
	    "globals INDEXED BY globals_need WHERE folder = ?1 AND need != 0 AND deleted != 0 "
	    "ORDER BY name DESC",
	[ST_FOLDER_GLOBALS_DROP] = "DELETE FROM globals WHERE folder = ?1",
	[ST_DROP_NAMES_FILL] = "INSERT INTO temp.drop_names SELECT name FROM "
	    "files WHERE folder = ?1 AND device = ?2",
	[ST_DROP_NAMES_GET] = "SELECT name FROM temp.drop_names",
	[ST_DROP_NAMES_CLEAR] = "DELETE FROM temp.drop_names",
	[ST_NEED_ANY] = "SELECT 1 FROM globals INDEXED BY globals_need "
	    "WHERE folder = ?1 AND need != 0 LIMIT 1",
};

/* Cached status aggregates of one folder (db_*_cached). */
struct cache_compl {
	int64_t		 device;
	uint64_t	 gen;
	uint64_t	 ms;
	double		 pct;
};

struct cache_folder {
	int64_t			 folder;
	uint64_t		 gen;		/* bumped by every change */
	bool			 g_valid;
	uint64_t		 g_gen;		/* gen the counts were taken at */
	uint64_t		 g_ms;
	struct db_global_counts	 g;
	struct cache_compl	*compl;		/* owned */
	size_t			 compl_count;
};

struct db {
	sqlite3		*h;
	char		*path;			/* owned, for log lines */
	sqlite3_stmt	*st[ST_COUNT];		/* prepared on first use */
	int		 version;		/* schema version after open */
	bool		 in_tx;			/* inside db_begin/commit */
	bool		 tx_failed;		/* invariant (6) */
	bool		 full;			/* db_disk_full() */
	/*
	 * The local sequence counter of one folder, held in memory during a
	 * transaction and written back just before it commits: an upsert
	 * per put cost a quarter of a scan batch. Dropped on rollback.
	 */
	bool		 seq_valid;
	bool		 seq_dirty;		/* differs from index_ids */
	int64_t		 seq_folder;
	int64_t		 seq_value;		/* last sequence handed out */
	struct cache_folder *cache;		/* owned */
	size_t		 cache_count;
};

/* Helpers */

static int
dberr(struct db *db, const char *what)
{
	LOG_ERROR("db", "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
	if (sqlite3_errcode(db->h) == SQLITE_FULL)
		db->full = true;
	return SH_EDB;
}

bool
db_disk_full(const struct db *db)
{
	return db->full;
}

/*
 * Status cache. Every change to a folder's files or globals bumps its
 * generation; a rollback bumps them all, since values may have been taken
 * inside the transaction that was undone.
 */
static struct cache_folder *
cache_find(struct db *db, int64_t folder, bool create)
{
	struct cache_folder	*c;
	size_t			 i;

	for (i = 0; i < db->cache_count; i++)
		if (db->cache[i].folder == folder)
			return &db->cache[i];
	if (!create)
		return NULL;
	db->cache = xreallocarray(db->cache, db->cache_count + 1,
	    sizeof(*db->cache));
	c = &db->cache[db->cache_count++];
	memset(c, 0, sizeof(*c));
	c->folder = folder;
	return c;
}

static void
cache_bump(struct db *db, int64_t folder)
{
	struct cache_folder	*c = cache_find(db, folder, false);

	if (c != NULL)
		c->gen++;
}

uint64_t
db_folder_gen(struct db *db, int64_t folder)
{
	return cache_find(db, folder, true)->gen;
}

static void
cache_bump_all(struct db *db)
{
	size_t	i;

	for (i = 0; i < db->cache_count; i++)
		db->cache[i].gen++;
}

/*
 * The cached statement for `id`, prepared on first use. Callers reset it
 * with stmt_done() after use.
 */
static int
stmt_get(struct db *db, enum db_stmt id, sqlite3_stmt **out)
{
	if (db->st[id] == NULL &&
	    sqlite3_prepare_v3(db->h, stmt_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &db->st[id], NULL) != SQLITE_OK) {
		db->st[id] = NULL;
		return dberr(db, "prepare");
	}
	*out = db->st[id];
	return 0;
}

/*
 * For iterations that run a callback: if the cached statement is already
 * stepping (a callback re-entered the same query), prepare a private one;
 * *own tells the caller to finalize it.
 */
static int
stmt_get_iter(struct db *db, enum db_stmt id, sqlite3_stmt **out, bool *own)
{
	*own = false;
	if (db->st[id] == NULL || !sqlite3_stmt_busy(db->st[id]))
		return stmt_get(db, id, out);
	if (sqlite3_prepare_v2(db->h, stmt_sql[id], -1, out, NULL) !=
	    SQLITE_OK) {
		*out = NULL;
		return dberr(db, "prepare");
	}
	*own = true;
	return 0;
}

static void
stmt_done(sqlite3_stmt *s, bool own)
{
	if (s == NULL)
		return;
	if (own) {
		sqlite3_finalize(s);
		return;
	}
	/* The step's own result was checked already; reset repeats it. */
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

/* Step a statement that returns no rows (or whose rows we ignore). */
static int
stmt_run(struct db *db, sqlite3_stmt *s, const char *what)
{
	int	r;

	r = sqlite3_step(s);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		return dberr(db, what);
	return 0;
}

static int
exec_simple(struct db *db, enum db_stmt id, const char *what)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	rc = stmt_get(db, id, &s);
	if (rc != 0)
		goto out;
	rc = stmt_run(db, s, what);
out:
	stmt_done(s, false);
	return rc;
}

static bool
is_zero(const uint8_t *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* Encoding: vector = count u32 BE, then (id u64 BE, value u64 BE) pairs. */
static uint8_t *
vector_encode(const struct record_vector *v, size_t *len)
{
	uint8_t	*b, *p;
	size_t	 i;

	*len = VECTOR_HDR_LEN + v->count * VECTOR_COUNTER_LEN;
	b = xmalloc(*len);
	util_put_be32(b, (uint32_t)v->count);
	p = b + VECTOR_HDR_LEN;
	for (i = 0; i < v->count; i++, p += VECTOR_COUNTER_LEN) {
		util_put_be64(p, v->counters[i].id);
		util_put_be64(p + 8, v->counters[i].value);
	}
	return b;
}

static int
vector_decode(const uint8_t *b, size_t len, struct record_vector *v)
{
	const uint8_t	*p;
	uint32_t	 n;
	size_t		 i;

	if (len < VECTOR_HDR_LEN)
		return SH_ECORRUPT;
	n = util_get_be32(b);
	if (n > RECORD_MAX_COUNTERS ||
	    len != VECTOR_HDR_LEN + (size_t)n * VECTOR_COUNTER_LEN)
		return SH_ECORRUPT;
	v->count = n;
	v->counters = n > 0 ? xreallocarray(NULL, n, sizeof(*v->counters)) :
	    NULL;
	p = b + VECTOR_HDR_LEN;
	for (i = 0; i < n; i++, p += VECTOR_COUNTER_LEN) {
		v->counters[i].id = util_get_be64(p);
		v->counters[i].value = util_get_be64(p + 8);
	}
	return 0;
}

/* Encoding: per block offset i64 BE, size i32 BE, hash[32], weak u32 BE. */
static uint8_t *
blocks_encode(const struct record_block *blocks, size_t count, size_t *len)
{
	uint8_t	*b, *p;
	size_t	 i;

	*len = count * BLOCK_PACKED_LEN;
	b = xmalloc(*len);
	for (i = 0, p = b; i < count; i++, p += BLOCK_PACKED_LEN) {
		util_put_be64(p, (uint64_t)blocks[i].offset);
		util_put_be32(p + 8, (uint32_t)blocks[i].size);
		memcpy(p + 12, blocks[i].hash, RECORD_HASH_LEN);
		util_put_be32(p + 44, blocks[i].weak_hash);
	}
	return b;
}

static int
blocks_decode(const uint8_t *b, size_t len, struct record *r)
{
	const uint8_t	*p;
	size_t		 i, n;

	if (len == 0 || len % BLOCK_PACKED_LEN != 0 ||
	    len / BLOCK_PACKED_LEN > RECORD_MAX_BLOCKS)
		return SH_ECORRUPT;
	n = len / BLOCK_PACKED_LEN;
	r->blocks = xreallocarray(NULL, n, sizeof(*r->blocks));
	r->block_count = n;
	for (i = 0, p = b; i < n; i++, p += BLOCK_PACKED_LEN) {
		r->blocks[i].offset = (int64_t)util_get_be64(p);
		r->blocks[i].size = (int32_t)util_get_be32(p + 8);
		memcpy(r->blocks[i].hash, p + 12, RECORD_HASH_LEN);
		r->blocks[i].weak_hash = util_get_be32(p + 44);
	}
	return 0;
}

/* Build a record from the RECORD_COLS columns of the current row. */
static int
read_record(struct db *db, sqlite3_stmt *s, struct record **out)
{
	struct record	*r = NULL;
	const void	*blob;
	const char	*text;
	int		 rc = SH_ECORRUPT, t;

	r = record_new();
	text = (const char *)sqlite3_column_text(s, 0);
	if (text == NULL)
		goto corrupt;
	r->name = xstrndup(text, (size_t)sqlite3_column_bytes(s, 0));
	t = sqlite3_column_int(s, 1);
	if (t != RECORD_TYPE_FILE && t != RECORD_TYPE_DIRECTORY &&
	    t != RECORD_TYPE_SYMLINK)
		goto corrupt;
	r->type = (enum record_type)t;
	r->size = sqlite3_column_int64(s, 2);
	r->permissions = (uint32_t)sqlite3_column_int64(s, 3);
	r->modified_s = sqlite3_column_int64(s, 4);
	r->modified_ns = sqlite3_column_int(s, 5);
	r->modified_by = (uint64_t)sqlite3_column_int64(s, 6);
	r->deleted = sqlite3_column_int(s, 7) != 0;
	r->invalid = sqlite3_column_int(s, 8) != 0;
	r->no_permissions = sqlite3_column_int(s, 9) != 0;
	blob = sqlite3_column_blob(s, 10);
	if (blob == NULL || vector_decode(blob,
	    (size_t)sqlite3_column_bytes(s, 10), &r->version) != 0)
		goto corrupt;
	r->sequence = sqlite3_column_int64(s, 11);
	r->block_size = sqlite3_column_int(s, 12);
	text = (const char *)sqlite3_column_text(s, 13);
	if (text != NULL)
		r->symlink_target = xstrndup(text,
		    (size_t)sqlite3_column_bytes(s, 13));
	r->local_flags = (uint32_t)sqlite3_column_int64(s, 14);
	r->inode = (uint64_t)sqlite3_column_int64(s, 15);
	r->dev = (uint64_t)sqlite3_column_int64(s, 16);
	if (sqlite3_column_type(s, 17) != SQLITE_NULL) {
		/* A key without its list breaks invariant (4). */
		blob = sqlite3_column_blob(s, 18);
		if (blob == NULL || blocks_decode(blob,
		    (size_t)sqlite3_column_bytes(s, 18), r) != 0)
			goto corrupt;
		record_blocks_hash(r->blocks, r->block_count, r->blocks_hash);
		r->has_blocks_hash = true;
	}
	*out = r;
	r = NULL;
	rc = 0;
	goto out;
corrupt:
	LOG_ERROR("db", "%s: stored record \"%s\" is malformed", db->path,
	    r->name != NULL ? r->name : "?");
out:
	record_free(r);
	return rc;
}

static void
seq_forget(struct db *db)
{
	db->seq_valid = false;
	db->seq_dirty = false;
}

/* Write the cached counter back; inside the transaction that used it. */
static int
seq_flush(struct db *db)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	if (!db->seq_dirty)
		return 0;
	rc = stmt_get(db, ST_SEQ_SET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, db->seq_folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, db->seq_value) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "sequence store");
	if (rc == 0)
		db->seq_dirty = false;
out:
	stmt_done(s, false);
	return rc;
}

/*
 * Transaction bracket for a single write operation: when the caller has no
 * transaction open, each operation gets its own so it is all-or-nothing.
 */
static int
op_begin(struct db *db, bool *own)
{
	*own = false;
	if (db->in_tx) {
		if (db->tx_failed) {
			LOG_ERROR("db", "%s: transaction already failed; "
			    "roll back first", db->path);
			return SH_EDB;
		}
		return 0;
	}
	if (exec_simple(db, ST_BEGIN, "begin") != 0)
		return SH_EDB;
	/* Another process may have written since our last transaction. */
	seq_forget(db);
	*own = true;
	return 0;
}

static int
op_end(struct db *db, bool own, int rc)
{
	if (own) {
		if (rc == 0)
			rc = seq_flush(db);
		if (rc == 0)
			rc = exec_simple(db, ST_COMMIT, "commit");
		if (rc != 0) {
			if (!sqlite3_get_autocommit(db->h))
				(void)exec_simple(db, ST_ROLLBACK, "rollback");
			seq_forget(db);
		}
	} else if (rc != 0 && rc != SH_EPROTO) {
		db->tx_failed = true;
	}
	return rc;
}

/* Migrations */

static int	global_update(struct db *db, int64_t folder, const char *name);
static int	globals_recompute_listed(struct db *db, int64_t folder);
static int	exec_sql(struct db *db, const char *sql);

/* Recompute the global rows of the (folder, name) pairs `select` lists:
 * every name some peer has after the migration to schema 2, which seeded
 * them from local rows; every name flagged ignored here after schema 3. */
static int
globals_rebuild(struct db *db, const char *select)
{
	sqlite3_stmt	*s = NULL;
	char		*name;
	int64_t		 folder;
	int		 rc = 0, e = SQLITE_DONE;

	if (exec_sql(db, "CREATE TEMP TABLE IF NOT EXISTS drop_names "
	    "(name TEXT NOT NULL)") != 0 || exec_sql(db, "BEGIN IMMEDIATE") != 0)
		return SH_EDB;
	if (sqlite3_prepare_v2(db->h, select, -1, &s, NULL) != SQLITE_OK) {
		rc = dberr(db, "prepare");
		goto out;
	}
	while (rc == 0 && (e = sqlite3_step(s)) == SQLITE_ROW) {
		folder = sqlite3_column_int64(s, 0);
		name = xstrdup((const char *)sqlite3_column_text(s, 1));
		rc = global_update(db, folder, name);
		free(name);
	}
	if (rc == 0 && e != SQLITE_DONE)
		rc = dberr(db, "rebuild globals");
out:
	sqlite3_finalize(s);
	if (rc == 0)
		rc = exec_sql(db, "COMMIT");
	else
		(void)exec_sql(db, "ROLLBACK");
	return rc;
}

static int
pragma_int(struct db *db, const char *sql, int *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc = SH_EDB;

	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
		rc = dberr(db, sql);
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = dberr(db, sql);
		goto out;
	}
	*out = sqlite3_column_int(s, 0);
	rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

static int
exec_sql(struct db *db, const char *sql)
{
	char	*err = NULL;
	int	 rc = 0;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &err) != SQLITE_OK) {
		LOG_ERROR("db", "%s: %.60s: %s", db->path, sql,
		    err != NULL ? err : sqlite3_errmsg(db->h));
		rc = SH_EDB;
	}
	sqlite3_free(err);
	return rc;
}

static int
migrate(struct db *db)
{
	char	*sql = NULL;
	int	 rc, v = 0, from;

	rc = pragma_int(db, "PRAGMA user_version", &v);
	if (rc != 0)
		goto out;
	if (v < 0 || v > SCHEMA_LATEST) {
		/* A newer build wrote this; guessing at its schema could
		 * destroy what it stored. */
		LOG_ERROR("db", "%s: schema version %d is newer than this "
		    "build supports (%d); refusing to open it (upgrade "
		    "shoal or restore a backup)", db->path, v, SCHEMA_LATEST);
		rc = SH_ECORRUPT;
		goto out;
	}
	from = v;
	while (v < SCHEMA_LATEST) {
		v++;
		sql = xasprintf("BEGIN IMMEDIATE; %s; "
		    "PRAGMA user_version = %d; COMMIT;", migrations[v], v);
		rc = exec_sql(db, sql);
		free(sql);
		sql = NULL;
		if (rc != 0) {
			if (!sqlite3_get_autocommit(db->h))
				(void)exec_sql(db, "ROLLBACK");
			LOG_ERROR("db", "%s: migration to schema version %d "
			    "failed", db->path, v);
			goto out;
		}
		/* Creating a new index is routine; upgrading one is news. */
		if (from == 0)
			LOG_DEBUG("db", "%s: created schema version %d",
			    db->path, v);
		else
			LOG_INFO("db", "%s: schema migrated to version %d",
			    db->path, v);
	}
	db->version = v;
	/* Schema 2 seeded globals from local rows only; names that peers
	 * had need the full rule. */
	if (from >= 1 && from < 2) {
		rc = globals_rebuild(db, "SELECT DISTINCT folder, name FROM "
		    "files WHERE device != 0");
		if (rc != 0)
			goto out;
	}
	if (from >= 1 && from < 3) {
		_Static_assert(RECORD_LOCAL_IGNORED == 1, "the SQL below");
		rc = globals_rebuild(db, "SELECT folder, name FROM files "
		    "WHERE device = 0 AND (local_flags & 1) != 0");
		if (rc != 0)
			goto out;
	}
	rc = 0;
out:
	return rc;
}

/* Lifecycle */

int
db_open(const char *path, struct db **out)
{
	struct db	*db;
	sqlite3_stmt	*s = NULL;
	const char	*mode;
	int		 rc = SH_EDB;

	*out = NULL;
	db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(path);
	/* One connection used from one thread at a time: no mutexes. */
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		if (db->h != NULL)
			rc = dberr(db, "open");
		else
			LOG_ERROR("db", "%s: open: out of memory", path);
		goto out;
	}
	if (sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS) != SQLITE_OK) {
		rc = dberr(db, "busy_timeout");
		goto out;
	}
	/*
	 * WAL: readers (a CLI process) never block the daemon's writer, and
	 * a commit is one sequential append. synchronous=NORMAL syncs the
	 * WAL only at checkpoints, not at every commit. In WAL mode that is
	 * still safe: a power loss can lose the last few committed
	 * transactions but never corrupts the database, and what was lost
	 * is index state the scanner re-derives from the disk on its next
	 * pass (pulled files are fsynced on their own before they are
	 * recorded). FULL would cost an fsync per scan batch for nothing we
	 * cannot rebuild.
	 */
	if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		rc = dberr(db, "journal_mode");
		goto out;
	}
	mode = (const char *)sqlite3_column_text(s, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		LOG_ERROR("db", "%s: cannot switch to WAL (journal mode %s)",
		    path, mode != NULL ? mode : "?");
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	/* cache_size -1000 = 1 MiB of page cache: the RSS target is
	 * < 20 MiB, and the OS page cache holds the rest (2 MiB bought no
	 * speed, docs/internals/db.md). journal_size_limit
	 * truncates the WAL after a checkpoint so it does not keep the size
	 * of the largest scan batch forever. */
	if (exec_sql(db, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = ON;"
	    "PRAGMA cache_size = -1000;"
	    "PRAGMA temp_store = MEMORY;"
	    "PRAGMA journal_size_limit = 67108864;") != 0)
		goto out;
	rc = migrate(db);
	if (rc != 0)
		goto out;
	/* Names touched by a bulk drop, recomputed afterwards (7). */
	if (exec_sql(db, "CREATE TEMP TABLE IF NOT EXISTS drop_names "
	    "(name TEXT NOT NULL)") != 0) {
		rc = SH_EDB;
		goto out;
	}
	*out = db;
	db = NULL;
	rc = 0;
out:
	sqlite3_finalize(s);
	db_close(db);
	return rc;
}

void
db_close(struct db *db)
{
	int	i;

	if (db == NULL)
		return;
	if (db->in_tx)
		db_rollback(db);
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->st[i]);
	if (db->h != NULL && sqlite3_close(db->h) != SQLITE_OK)
		LOG_ERROR("db", "%s: close: %s", db->path,
		    sqlite3_errmsg(db->h));
	for (i = 0; i < (int)db->cache_count; i++)
		free(db->cache[i].compl);
	free(db->cache);
	free(db->path);
	free(db);
}

int
db_schema_version(struct db *db)
{
	return db->version;
}

/* Transactions */

int
db_begin(struct db *db)
{
	int	rc;

	if (db->in_tx) {
		LOG_ERROR("db", "%s: nested transaction", db->path);
		return SH_EDB;
	}
	rc = exec_simple(db, ST_BEGIN, "begin");
	if (rc != 0)
		return rc;
	db->in_tx = true;
	db->tx_failed = false;
	seq_forget(db);
	return 0;
}

int
db_commit(struct db *db)
{
	int	rc;

	if (!db->in_tx) {
		LOG_ERROR("db", "%s: commit without a transaction", db->path);
		return SH_EDB;
	}
	if (db->tx_failed) {
		LOG_ERROR("db", "%s: commit of a failed transaction; rolling "
		    "back", db->path);
		db_rollback(db);
		return SH_EDB;
	}
	rc = seq_flush(db);
	if (rc == 0)
		rc = exec_simple(db, ST_COMMIT, "commit");
	if (rc != 0) {
		db_rollback(db);
		return rc;
	}
	db->in_tx = false;
	db->full = false;
	return 0;
}

void
db_rollback(struct db *db)
{
	/* SQLite may already have rolled back by itself (an I/O or full
	 * error); ROLLBACK would then fail with "no transaction". */
	if (!sqlite3_get_autocommit(db->h))
		(void)exec_simple(db, ST_ROLLBACK, "rollback");
	db->in_tx = false;
	db->tx_failed = false;
	seq_forget(db);
	cache_bump_all(db);
}

/* Folders and devices */

int
db_folder_idx(struct db *db, const char *id, int64_t *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	rc = stmt_get(db, ST_FOLDER_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind folder");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		goto out;
	}
	if (r != SQLITE_DONE) {
		rc = dberr(db, "folder lookup");
		goto out;
	}
	stmt_done(s, false);
	s = NULL;
	rc = stmt_get(db, ST_FOLDER_ADD, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind folder");
		goto out;
	}
	rc = stmt_run(db, s, "folder insert");
	if (rc != 0)
		goto out;
	*out = sqlite3_last_insert_rowid(db->h);
out:
	stmt_done(s, false);
	return rc;
}

int
db_device_idx(struct db *db, const struct device_id *id, int64_t *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	/* The zero ID means "none" everywhere; never give it an index. */
	if (is_zero(id->raw, sizeof(id->raw)))
		return -EINVAL;
	rc = stmt_get(db, ST_DEVICE_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_blob(s, 1, id->raw, sizeof(id->raw),
	    SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind device");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		goto out;
	}
	if (r != SQLITE_DONE) {
		rc = dberr(db, "device lookup");
		goto out;
	}
	stmt_done(s, false);
	s = NULL;
	rc = stmt_get(db, ST_DEVICE_ADD, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_blob(s, 1, id->raw, sizeof(id->raw),
	    SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind device");
		goto out;
	}
	rc = stmt_run(db, s, "device insert");
	if (rc != 0)
		goto out;
	*out = sqlite3_last_insert_rowid(db->h);
out:
	stmt_done(s, false);
	return rc;
}

/* Delete lists no file references any more (invariant (4)), after a bulk
 * drop. Uses the partial index on files.blocklist. */
static int
gc_all(struct db *db)
{
	return exec_simple(db, ST_BLOCKLIST_GC_ALL, "blocklist gc");
}

int
db_folder_drop(struct db *db, int64_t folder)
{
	static const enum db_stmt	 drops[] = {
		ST_FOLDER_FILES_DROP, ST_FOLDER_BLOCKS_DROP, ST_FOLDER_IDS_DROP,
		ST_FOLDER_GLOBALS_DROP
	};
	sqlite3_stmt			*s = NULL;
	size_t				 i;
	bool				 own = false;
	int				 rc;

	cache_bump(db, folder);
	rc = op_begin(db, &own);
	if (rc != 0)
		return rc;
	/* Dropping index_ids restarts the local sequence, and the next
	 * db_index_id_get makes a new index ID, as §9.2 requires. */
	for (i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
		rc = stmt_get(db, drops[i], &s);
		if (rc != 0)
			goto out;
		if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
			rc = dberr(db, "bind folder");
			goto out;
		}
		rc = stmt_run(db, s, "folder drop");
		if (rc != 0)
			goto out;
		stmt_done(s, false);
		s = NULL;
	}
	if (db->seq_valid && db->seq_folder == folder)
		seq_forget(db);
	rc = gc_all(db);
out:
	stmt_done(s, false);
	return op_end(db, own, rc);
}

int
db_files_drop(struct db *db, int64_t folder, int64_t device)
{
	sqlite3_stmt	*s = NULL;
	bool		 own = false;
	int		 rc;

	cache_bump(db, folder);
	rc = op_begin(db, &own);
	if (rc != 0)
		return rc;
	rc = stmt_get(db, ST_DROP_NAMES_FILL, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "drop names");
	if (rc != 0)
		goto out;
	stmt_done(s, false);
	s = NULL;
	rc = stmt_get(db, ST_FILES_DROP, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "files drop");
	if (rc != 0)
		goto out;
	stmt_done(s, false);
	s = NULL;
	if (device == DB_LOCAL_DEVICE) {
		/* Keep invariant (5). The sequence counter stays (1). */
		rc = stmt_get(db, ST_FOLDER_BLOCKS_DROP, &s);
		if (rc != 0)
			goto out;
		if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
		rc = stmt_run(db, s, "blocks drop");
		if (rc != 0)
			goto out;
	}
	stmt_done(s, false);
	s = NULL;
	rc = globals_recompute_listed(db, folder);
	if (rc != 0)
		goto out;
	rc = gc_all(db);
out:
	stmt_done(s, false);
	return op_end(db, own, rc);
}

/* Records */

int
db_file_get(struct db *db, int64_t folder, int64_t device, const char *name,
    struct record **out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	*out = NULL;
	rc = stmt_get(db, ST_FILE_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK ||
	    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_DONE) {
		rc = SH_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = dberr(db, "file get");
		goto out;
	}
	rc = read_record(db, s, out);
out:
	stmt_done(s, false);
	return rc;
}

/* The block-list key of the stored record, if it has one. */
static int
old_blocklist(struct db *db, int64_t folder, int64_t device,
    const char *name, uint8_t key[RECORD_HASH_LEN], bool *has)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	*has = false;
	rc = stmt_get(db, ST_FILE_OLD, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK ||
	    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		rc = dberr(db, "file lookup");
		goto out;
	}
	if (r == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		if (sqlite3_column_bytes(s, 0) != RECORD_HASH_LEN) {
			LOG_ERROR("db", "%s: malformed block-list key",
			    db->path);
			rc = SH_ECORRUPT;
			goto out;
		}
		memcpy(key, sqlite3_column_blob(s, 0), RECORD_HASH_LEN);
		*has = true;
	}
out:
	stmt_done(s, false);
	return rc;
}

static int
seq_load(struct db *db, int64_t folder, int64_t *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	*out = 0;
	rc = stmt_get(db, ST_MAX_SEQ_LOCAL, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (r != SQLITE_DONE)
		rc = dberr(db, "max sequence");
out:
	stmt_done(s, false);
	return rc;
}

/* Hand out the folder's next local sequence (invariant (1)). Only inside
 * a transaction, which writes the counter back before committing. */
static int
next_sequence(struct db *db, int64_t folder, int64_t *seq)
{
	int	rc;

	if (!db->seq_valid || db->seq_folder != folder) {
		rc = seq_flush(db);
		if (rc != 0)
			return rc;
		rc = seq_load(db, folder, &db->seq_value);
		if (rc != 0)
			return rc;
		db->seq_folder = folder;
		db->seq_valid = true;
	}
	db->seq_value++;
	db->seq_dirty = true;
	*seq = db->seq_value;
	return 0;
}

static int
bind_record(struct db *db, sqlite3_stmt *s, int64_t folder, int64_t device,
    const struct record *r, int64_t seq, const uint8_t *vec, size_t vec_len,
    const uint8_t *key)
{
	int	e = SQLITE_OK;

	e |= sqlite3_bind_int64(s, 1, folder);
	e |= sqlite3_bind_int64(s, 2, device);
	e |= sqlite3_bind_text(s, 3, r->name, -1, SQLITE_STATIC);
	e |= sqlite3_bind_int(s, 4, (int)r->type);
	e |= sqlite3_bind_int64(s, 5, r->size);
	e |= sqlite3_bind_int64(s, 6, r->permissions);
	e |= sqlite3_bind_int64(s, 7, r->modified_s);
	e |= sqlite3_bind_int(s, 8, r->modified_ns);
	e |= sqlite3_bind_int64(s, 9, (int64_t)r->modified_by);
	e |= sqlite3_bind_int(s, 10, r->deleted);
	e |= sqlite3_bind_int(s, 11, r->invalid);
	e |= sqlite3_bind_int(s, 12, r->no_permissions);
	e |= sqlite3_bind_blob(s, 13, vec, (int)vec_len, SQLITE_STATIC);
	e |= sqlite3_bind_int64(s, 14, seq);
	e |= sqlite3_bind_int(s, 15, r->block_size);
	if (key != NULL)
		e |= sqlite3_bind_blob(s, 16, key, RECORD_HASH_LEN,
		    SQLITE_STATIC);
	else
		e |= sqlite3_bind_null(s, 16);
	if (r->symlink_target != NULL)
		e |= sqlite3_bind_text(s, 17, r->symlink_target, -1,
		    SQLITE_STATIC);
	else
		e |= sqlite3_bind_null(s, 17);
	e |= sqlite3_bind_int64(s, 18, r->local_flags);
	e |= sqlite3_bind_int64(s, 19, (int64_t)r->inode);
	e |= sqlite3_bind_int64(s, 20, (int64_t)r->dev);
	if (e != SQLITE_OK)
		return dberr(db, "bind record");
	return 0;
}

static int
blocklist_gc(struct db *db, const uint8_t key[RECORD_HASH_LEN])
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	rc = stmt_get(db, ST_BLOCKLIST_GC, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_blob(s, 1, key, RECORD_HASH_LEN, SQLITE_STATIC) !=
	    SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "blocklist gc");
out:
	stmt_done(s, false);
	return rc;
}

/*
 * Remove the block index rows of a local name whose old list had key
 * `old_key` (invariant (5)). The rows are found through the old list
 * itself, by primary key, so the table needs no second index on name: on
 * a first scan, where nothing is replaced, that index would only cost an
 * extra insert per block.
 */
static int
block_index_remove(struct db *db, int64_t folder, const char *name,
    const uint8_t old_key[RECORD_HASH_LEN])
{
	sqlite3_stmt	*s = NULL, *d = NULL;
	struct record	 old;
	size_t		 i;
	int		 rc, r;

	memset(&old, 0, sizeof(old));
	rc = stmt_get(db, ST_BLOCKLIST_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_blob(s, 1, old_key, RECORD_HASH_LEN, SQLITE_STATIC) !=
	    SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r != SQLITE_ROW) {
		if (r == SQLITE_DONE) {
			LOG_ERROR("db", "%s: block list of \"%s\" is missing",
			    db->path, name);
			rc = SH_ECORRUPT;
		} else {
			rc = dberr(db, "blocklist get");
		}
		goto out;
	}
	rc = blocks_decode(sqlite3_column_blob(s, 0),
	    (size_t)sqlite3_column_bytes(s, 0), &old);
	if (rc != 0) {
		LOG_ERROR("db", "%s: block list of \"%s\" is malformed",
		    db->path, name);
		goto out;
	}
	rc = stmt_get(db, ST_BLOCKS_DEL, &d);
	if (rc != 0)
		goto out;
	for (i = 0; i < old.block_count; i++) {
		if (sqlite3_bind_int64(d, 1, folder) != SQLITE_OK ||
		    sqlite3_bind_blob(d, 2, old.blocks[i].hash,
		    RECORD_HASH_LEN, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(d, 3, name, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(d, 4, old.blocks[i].offset) !=
		    SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
		rc = stmt_run(db, d, "block index delete");
		if (rc != 0)
			goto out;
		(void)sqlite3_reset(d);
	}
out:
	free(old.blocks);
	stmt_done(d, false);
	stmt_done(s, false);
	return rc;
}

static int
block_index_add(struct db *db, int64_t folder, const struct record *r)
{
	sqlite3_stmt	*s = NULL;
	size_t		 i;
	int		 rc;

	rc = stmt_get(db, ST_BLOCKS_ADD, &s);
	if (rc != 0)
		goto out;
	for (i = 0; i < r->block_count; i++) {
		if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
		    sqlite3_bind_blob(s, 2, r->blocks[i].hash, RECORD_HASH_LEN,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(s, 3, r->name, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(s, 4, r->blocks[i].offset) !=
		    SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
		rc = stmt_run(db, s, "block index insert");
		if (rc != 0)
			goto out;
		(void)sqlite3_reset(s);
	}
out:
	stmt_done(s, false);
	return rc;
}

/*
 * Recompute the global row of one name from its records (invariant 7).
 * Only the fields the rules look at are read; blocks are not.
 */
static int
global_update(struct db *db, int64_t folder, const char *name)
{
	struct record	 cand[2], *best = &cand[0], *cur = &cand[1], *tmp;
	struct record	 local;
	sqlite3_stmt	*s = NULL;
	int64_t		 best_dev = -1;
	bool		 have_local = false;
	int		 rc, e;

	memset(cand, 0, sizeof(cand));
	memset(&local, 0, sizeof(local));
	rc = stmt_get(db, ST_GLOBAL_CANDIDATES, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	while ((e = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t dev = sqlite3_column_int64(s, 0);

		record_clear(cur);
		if (vector_decode(sqlite3_column_blob(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1), &cur->version) != 0) {
			rc = SH_ECORRUPT;
			goto out;
		}
		cur->deleted = sqlite3_column_int(s, 2) != 0;
		cur->invalid = sqlite3_column_int(s, 3) != 0;
		cur->modified_s = sqlite3_column_int64(s, 4);
		cur->modified_ns = sqlite3_column_int(s, 5);
		cur->type = (enum record_type)sqlite3_column_int(s, 6);
		cur->size = sqlite3_column_int64(s, 7);
		if (dev == DB_LOCAL_DEVICE) {
			have_local = true;
			local.deleted = cur->deleted;
			local.invalid = cur->invalid;
			/* model_needs: a record flagged ignored holds
			 * nothing. */
			local.local_flags =
			    (uint32_t)sqlite3_column_int64(s, 8);
			record_vector_copy(&local.version, &cur->version);
		}
		if (best_dev < 0 || model_better(cur, best)) {
			tmp = best;
			best = cur;
			cur = tmp;
			best_dev = dev;
		}
	}
	if (e != SQLITE_DONE) {
		rc = dberr(db, "global candidates");
		goto out;
	}
	stmt_done(s, false);
	s = NULL;
	/* On equal versions we count as the holder: nothing to fetch. */
	if (have_local && best_dev > 0 && !local.invalid &&
	    record_vector_compare(&local.version, &best->version) ==
	    RECORD_EQUAL)
		best_dev = DB_LOCAL_DEVICE;
	if (best_dev < 0) {
		rc = stmt_get(db, ST_GLOBAL_DEL, &s);
		if (rc != 0)
			goto out;
		if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
		    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
		rc = stmt_run(db, s, "global delete");
		goto out;
	}
	rc = stmt_get(db, ST_GLOBAL_PUT, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, best_dev) != SQLITE_OK ||
	    sqlite3_bind_int(s, 4, (int)best->type) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, best->size) != SQLITE_OK ||
	    sqlite3_bind_int(s, 6, best->deleted) != SQLITE_OK ||
	    sqlite3_bind_int(s, 7, best->invalid) != SQLITE_OK ||
	    sqlite3_bind_int(s, 8, model_needs(have_local ? &local : NULL,
	    best)) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "global put");
out:
	stmt_done(s, false);
	record_clear(&cand[0]);
	record_clear(&cand[1]);
	record_clear(&local);
	return rc;
}

/*
 * Recompute the global rows of every name listed in temp.drop_names, then
 * empty it. Used after bulk drops and by the migration to schema 2.
 */
static int
globals_recompute_listed(struct db *db, int64_t folder)
{
	sqlite3_stmt	*s = NULL;
	char		*name;
	int		 rc, e = SQLITE_DONE;

	/* A private statement: global_update reuses the cached ones. */
	if (sqlite3_prepare_v2(db->h, "SELECT DISTINCT name FROM "
	    "temp.drop_names", -1, &s, NULL) != SQLITE_OK)
		return dberr(db, "prepare");
	rc = 0;
	while (rc == 0 && (e = sqlite3_step(s)) == SQLITE_ROW) {
		name = xstrdup((const char *)sqlite3_column_text(s, 0));
		rc = global_update(db, folder, name);
		free(name);
	}
	if (rc == 0 && e != SQLITE_DONE)
		rc = dberr(db, "drop names");
	sqlite3_finalize(s);
	if (rc == 0)
		rc = exec_simple(db, ST_DROP_NAMES_CLEAR, "drop names clear");
	return rc;
}

/*
 * Store `r` for (folder, device). For the local device a new sequence is
 * taken (returned in *seq_out); for a remote one r->sequence is kept.
 */
static int
put_record(struct db *db, int64_t folder, int64_t device,
    const struct record *r, int64_t *seq_out)
{
	sqlite3_stmt	*s = NULL;
	uint8_t		*vec = NULL, *packed = NULL;
	uint8_t		 old_key[RECORD_HASH_LEN], key[RECORD_HASH_LEN];
	size_t		 vec_len = 0, packed_len = 0;
	int64_t		 seq = r->sequence;
	bool		 local = device == DB_LOCAL_DEVICE, has_old, changed;
	bool		 own = false;
	int		 rc, e;

	if (r->name == NULL || r->version.count > RECORD_MAX_COUNTERS ||
	    r->block_count > RECORD_MAX_BLOCKS ||
	    (r->block_count > 0 && r->blocks == NULL))
		return -EINVAL;
	cache_bump(db, folder);
	rc = op_begin(db, &own);
	if (rc != 0)
		return rc;
	rc = old_blocklist(db, folder, device, r->name, old_key, &has_old);
	if (rc != 0)
		goto out;
	if (local) {
		rc = next_sequence(db, folder, &seq);
		if (rc != 0)
			goto out;
	}
	vec = vector_encode(&r->version, &vec_len);
	if (r->block_count > 0) {
		packed = blocks_encode(r->blocks, r->block_count, &packed_len);
		rc = hash_sha256(packed, packed_len, key);
		if (rc != 0) {
			LOG_ERROR("db", "%s: hashing a block list failed",
			    db->path);
			goto out;
		}
	}

	changed = has_old != (packed != NULL) ||
	    (has_old && memcmp(old_key, key, RECORD_HASH_LEN) != 0);
	/* Before the old list can be collected below. Same list under the
	 * same name: the block index already says so. */
	if (local && changed && has_old) {
		rc = block_index_remove(db, folder, r->name, old_key);
		if (rc != 0)
			goto out;
	}

	rc = stmt_get(db, ST_FILE_PUT, &s);
	if (rc != 0)
		goto out;
	rc = bind_record(db, s, folder, device, r, seq, vec, vec_len,
	    packed != NULL ? key : NULL);
	if (rc != 0)
		goto out;
	e = sqlite3_step(s);
	if (e != SQLITE_DONE) {
		if (!local && sqlite3_extended_errcode(db->h) ==
		    SQLITE_CONSTRAINT_UNIQUE) {
			/*
			 * Two names under one sequence from a peer: the
			 * UNIQUE sequence index refuses it. Nothing was
			 * written yet for a remote put, so the transaction
			 * stays usable; the caller drops the peer.
			 */
			LOG_WARN("db", "%s: folder %lld device %lld: "
			    "sequence %lld reused for another name",
			    db->path, (long long)folder, (long long)device,
			    (long long)seq);
			rc = SH_EPROTO;
			goto out;
		}
		rc = dberr(db, "file put");
		goto out;
	}
	stmt_done(s, false);
	s = NULL;
	rc = global_update(db, folder, r->name);
	if (rc != 0)
		goto out;

	if (packed != NULL) {
		rc = stmt_get(db, ST_BLOCKLIST_ADD, &s);
		if (rc != 0)
			goto out;
		if (sqlite3_bind_blob(s, 1, key, RECORD_HASH_LEN,
		    SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_blob(s, 2, packed, (int)packed_len,
		    SQLITE_STATIC) != SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
		rc = stmt_run(db, s, "blocklist insert");
		if (rc != 0)
			goto out;
		stmt_done(s, false);
		s = NULL;
	}
	if (has_old && changed) {
		rc = blocklist_gc(db, old_key);
		if (rc != 0)
			goto out;
	}
	if (local && changed && packed != NULL) {
		rc = block_index_add(db, folder, r);
		if (rc != 0)
			goto out;
	}
	if (seq_out != NULL)
		*seq_out = seq;
	rc = 0;
out:
	stmt_done(s, false);
	free(vec);
	free(packed);
	return op_end(db, own, rc);
}

int
db_local_put(struct db *db, int64_t folder, struct record *r)
{
	int64_t	seq = 0;
	int	rc;

	rc = put_record(db, folder, DB_LOCAL_DEVICE, r, &seq);
	if (rc == 0)
		r->sequence = seq;
	return rc;
}

int
db_remote_put(struct db *db, int64_t folder, int64_t device,
    const struct record *r)
{
	if (device == DB_LOCAL_DEVICE)
		return -EINVAL;
	return put_record(db, folder, device, r, NULL);
}

int
db_max_sequence(struct db *db, int64_t folder, int64_t device, int64_t *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	*out = 0;
	/* Local: the counter, which may be above every stored sequence
	 * when the newest record was replaced (invariant (1)). */
	if (device == DB_LOCAL_DEVICE && db->in_tx && db->seq_valid &&
	    db->seq_folder == folder) {
		*out = db->seq_value;
		return 0;
	}
	rc = stmt_get(db, device == DB_LOCAL_DEVICE ? ST_MAX_SEQ_LOCAL :
	    ST_MAX_SEQ_REMOTE, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    (device != DB_LOCAL_DEVICE &&
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK)) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (r != SQLITE_DONE)
		rc = dberr(db, "max sequence");
out:
	stmt_done(s, false);
	return rc;
}

int
db_entries_under(struct db *db, int64_t folder, int64_t device,
    const char *prefix, db_entry_cb cb, void *arg)
{
	sqlite3_stmt	*s = NULL;
	struct db_entry	 e;
	char		*lo = NULL, *hi = NULL;
	bool		 own = false, all = prefix[0] == '\0';
	int		 rc, r, t;

	rc = stmt_get_iter(db, all ? ST_ENTRIES_ALL : ST_ENTRIES_UNDER, &s,
	    &own);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	if (!all) {
		lo = xasprintf("%s/", prefix);
		hi = xasprintf("%s0", prefix);
		if (sqlite3_bind_text(s, 3, prefix, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
		    sqlite3_bind_text(s, 4, lo, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
		    sqlite3_bind_text(s, 5, hi, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
			rc = dberr(db, "bind");
			goto out;
		}
	}
	for (;;) {
		r = sqlite3_step(s);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = dberr(db, "entries");
			goto out;
		}
		e.name = (const char *)sqlite3_column_text(s, 0);
		t = sqlite3_column_int(s, 1);
		if (e.name == NULL || (t != RECORD_TYPE_FILE &&
		    t != RECORD_TYPE_DIRECTORY && t != RECORD_TYPE_SYMLINK)) {
			LOG_ERROR("db", "%s: malformed stored entry", db->path);
			rc = SH_ECORRUPT;
			goto out;
		}
		e.type = (enum record_type)t;
		e.size = sqlite3_column_int64(s, 2);
		e.deleted = sqlite3_column_int(s, 3) != 0;
		e.invalid = sqlite3_column_int(s, 4) != 0;
		e.sequence = sqlite3_column_int64(s, 5);
		rc = cb(&e, arg);
		if (rc != 0)
			goto out;
	}
	rc = 0;
out:
	stmt_done(s, own);
	free(lo);
	free(hi);
	return rc;
}

int
db_records_since(struct db *db, int64_t folder, int64_t device,
    int64_t since, size_t limit, db_record_cb cb, void *arg)
{
	sqlite3_stmt	*s = NULL;
	struct record	*rec = NULL;
	bool		 own = false;
	int		 rc, r;

	rc = stmt_get_iter(db, ST_SINCE, &s, &own);
	if (rc != 0)
		goto out;
	/* LIMIT -1 is "no limit" in SQLite. */
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, since) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, limit == 0 || limit > INT64_MAX ? -1 :
	    (int64_t)limit) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	for (;;) {
		r = sqlite3_step(s);
		if (r == SQLITE_DONE)
			break;
		if (r != SQLITE_ROW) {
			rc = dberr(db, "records since");
			goto out;
		}
		rc = read_record(db, s, &rec);
		if (rc != 0)
			goto out;
		rc = cb(rec, arg);
		record_free(rec);
		rec = NULL;
		if (rc != 0)
			goto out;
	}
	rc = 0;
out:
	record_free(rec);
	stmt_done(s, own);
	return rc;
}

int
db_counts(struct db *db, int64_t folder, int64_t device, struct db_counts *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	memset(out, 0, sizeof(*out));
	rc = stmt_get(db, ST_COUNTS, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = dberr(db, "counts");
		goto out;
	}
	out->files = (uint64_t)sqlite3_column_int64(s, 0);
	out->directories = (uint64_t)sqlite3_column_int64(s, 1);
	out->bytes = (uint64_t)sqlite3_column_int64(s, 2);
	out->deleted = (uint64_t)sqlite3_column_int64(s, 3);
	out->receive_only_changed = (uint64_t)sqlite3_column_int64(s, 4);
out:
	stmt_done(s, false);
	return rc;
}

int
db_completion(struct db *db, int64_t folder, int64_t device, double *out)
{
	sqlite3_stmt	*s = NULL;
	int64_t		 items, bytes, have_items, have_bytes;
	int		 rc;

	*out = 100.0;
	rc = stmt_get(db, ST_COMPLETION, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = dberr(db, "completion");
		goto out;
	}
	items = sqlite3_column_int64(s, 0);
	bytes = sqlite3_column_int64(s, 1);
	have_items = sqlite3_column_int64(s, 2);
	have_bytes = sqlite3_column_int64(s, 3);
	/* By bytes when there are any, else by items (empty files and
	 * directories still have to arrive). */
	if (bytes > 0)
		*out = 100.0 * (double)have_bytes / (double)bytes;
	else if (items > 0)
		*out = 100.0 * (double)have_items / (double)items;
	if (have_items < items && *out > 99.99)
		*out = 99.99;
	rc = 0;
out:
	stmt_done(s, false);
	return rc;
}

int
db_block_find(struct db *db, int64_t folder,
    const uint8_t hash[RECORD_HASH_LEN], char **name, int64_t *offset)
{
	sqlite3_stmt	*s = NULL;
	const char	*text;
	int		 rc, r;

	*name = NULL;
	rc = stmt_get(db, ST_BLOCK_FIND, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 2, hash, RECORD_HASH_LEN, SQLITE_STATIC) !=
	    SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_DONE) {
		rc = SH_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = dberr(db, "block find");
		goto out;
	}
	text = (const char *)sqlite3_column_text(s, 0);
	if (text == NULL) {
		rc = dberr(db, "block find");
		goto out;
	}
	*name = xstrndup(text, (size_t)sqlite3_column_bytes(s, 0));
	*offset = sqlite3_column_int64(s, 1);
out:
	stmt_done(s, false);
	return rc;
}

/* Index IDs */

static int
index_id_read(struct db *db, int64_t folder, int64_t device, uint64_t *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, r;

	*out = 0;
	rc = stmt_get(db, ST_INDEX_ID_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(s, 0);
	else if (r != SQLITE_DONE)
		rc = dberr(db, "index id");
out:
	stmt_done(s, false);
	return rc;
}

int
db_index_id_get(struct db *db, int64_t folder, int64_t device, uint64_t *out)
{
	uint64_t	id = 0;
	ssize_t		n;
	int		rc;

	rc = index_id_read(db, folder, device, out);
	if (rc != 0 || *out != 0 || device != DB_LOCAL_DEVICE)
		return rc;
	/* Our own index of this folder has no ID yet (new, or dropped):
	 * pick a random non-zero one and keep it (§9.2). */
	while (id == 0) {
		n = getrandom(&id, sizeof(id), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(id)) {
			LOG_ERROR("db", "getrandom failed");
			return SH_ECRYPTO;
		}
	}
	rc = db_index_id_set(db, folder, device, id);
	if (rc == 0)
		*out = id;
	return rc;
}

int
db_index_id_set(struct db *db, int64_t folder, int64_t device,
    uint64_t index_id)
{
	sqlite3_stmt	*s = NULL;
	bool		 own = false;
	int		 rc;

	rc = op_begin(db, &own);
	if (rc != 0)
		return rc;
	rc = stmt_get(db, ST_INDEX_ID_SET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, device) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, (int64_t)index_id) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	rc = stmt_run(db, s, "index id set");
out:
	stmt_done(s, false);
	return op_end(db, own, rc);
}

/* Global view (invariant 7) */

int
db_global_device(struct db *db, int64_t folder, const char *name,
    int64_t *device)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, e;

	rc = stmt_get(db, ST_GLOBAL_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	e = sqlite3_step(s);
	if (e == SQLITE_DONE) {
		rc = SH_ENOTFOUND;
		goto out;
	}
	if (e != SQLITE_ROW) {
		rc = dberr(db, "global get");
		goto out;
	}
	*device = sqlite3_column_int64(s, 0);
	rc = 0;
out:
	stmt_done(s, false);
	return rc;
}

int
db_query_plans(struct db *db, char **out)
{
	struct {
		char	*s;
		size_t	 len;
	} b = { NULL, 0 };
	sqlite3_stmt	*s = NULL;
	size_t		 i, n;
	int		 rc = 0, e;

	for (i = 0; i < ST_COUNT && rc == 0; i++) {
		char	*q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s",
		    stmt_sql[i]);

		if (q == NULL) {
			rc = -ENOMEM;
			break;
		}
		e = sqlite3_prepare_v2(db->h, q, -1, &s, NULL);
		sqlite3_free(q);
		if (e != SQLITE_OK) {
			rc = dberr(db, "explain");
			break;
		}
		n = strlen(stmt_sql[i]);
		b.s = xrealloc(b.s, b.len + n + 2);
		memcpy(b.s + b.len, stmt_sql[i], n);
		b.len += n;
		b.s[b.len++] = '\t';
		while ((e = sqlite3_step(s)) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(s, 3);

			n = d != NULL ? strlen(d) : 0;
			b.s = xrealloc(b.s, b.len + n + 3);
			memcpy(b.s + b.len, d != NULL ? d : "", n);
			b.len += n;
			b.s[b.len++] = ';';
		}
		if (e != SQLITE_DONE)
			rc = dberr(db, "explain");
		sqlite3_finalize(s);
		b.s = xrealloc(b.s, b.len + 2);
		b.s[b.len++] = '\n';
		b.s[b.len] = '\0';
	}
	if (rc != 0) {
		free(b.s);
		return rc;
	}
	*out = b.s;
	return 0;
}

int
db_availability(struct db *db, int64_t folder, const char *name,
    const struct record_vector *v, int64_t *devices, size_t max,
    size_t *count)
{
	sqlite3_stmt	*s = NULL;
	uint8_t		*vec = NULL;
	size_t		 vec_len;
	int		 rc, e;

	*count = 0;
	vec = vector_encode(v, &vec_len);
	rc = stmt_get(db, ST_AVAILABILITY, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 3, vec, (int)vec_len, SQLITE_STATIC) !=
	    SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	while ((e = sqlite3_step(s)) == SQLITE_ROW && *count < max)
		devices[(*count)++] = sqlite3_column_int64(s, 0);
	if (e != SQLITE_ROW && e != SQLITE_DONE) {
		rc = dberr(db, "availability");
		goto out;
	}
	rc = 0;
out:
	stmt_done(s, false);
	free(vec);
	return rc;
}

int
db_need_foreach(struct db *db, int64_t folder, db_need_cb cb, void *arg)
{
	static const enum db_stmt phases[] = {
		ST_NEED_DIRS, ST_NEED_FILES, ST_NEED_DELETES
	};
	struct db_need	 n;
	sqlite3_stmt	*s = NULL;
	size_t		 i;
	bool		 own = false;
	int		 rc = 0, e = SQLITE_DONE;

	for (i = 0; i < sizeof(phases) / sizeof(phases[0]) && rc == 0; i++) {
		rc = stmt_get_iter(db, phases[i], &s, &own);
		if (rc != 0)
			break;
		if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
			rc = dberr(db, "bind");
			break;
		}
		while (rc == 0 && (e = sqlite3_step(s)) == SQLITE_ROW) {
			n.name = (const char *)sqlite3_column_text(s, 0);
			n.type = (enum record_type)sqlite3_column_int(s, 1);
			n.deleted = sqlite3_column_int(s, 2) != 0;
			n.size = sqlite3_column_int64(s, 3);
			n.device = sqlite3_column_int64(s, 4);
			rc = cb(&n, arg);
		}
		if (rc == 0 && e != SQLITE_DONE)
			rc = dberr(db, "need");
		stmt_done(s, own);
		s = NULL;
	}
	stmt_done(s, own);
	return rc;
}

int
db_global_counts(struct db *db, int64_t folder, struct db_global_counts *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc;

	memset(out, 0, sizeof(*out));
	rc = stmt_get(db, ST_GLOBAL_COUNTS, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = dberr(db, "global counts");
		goto out;
	}
	out->files = (uint64_t)sqlite3_column_int64(s, 0);
	out->directories = (uint64_t)sqlite3_column_int64(s, 1);
	out->bytes = (uint64_t)sqlite3_column_int64(s, 2);
	out->need_items = (uint64_t)sqlite3_column_int64(s, 3);
	out->need_bytes = (uint64_t)sqlite3_column_int64(s, 4);
	out->need_deletes = (uint64_t)sqlite3_column_int64(s, 5);
	rc = 0;
out:
	stmt_done(s, false);
	return rc;
}

/* Does the folder need anything at all? One row through globals_need. */
static int
need_any(struct db *db, int64_t folder, bool *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, e;

	*out = true;
	rc = stmt_get(db, ST_NEED_ANY, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	e = sqlite3_step(s);
	if (e != SQLITE_ROW && e != SQLITE_DONE) {
		rc = dberr(db, "need any");
		goto out;
	}
	*out = e == SQLITE_ROW;
out:
	stmt_done(s, false);
	return rc;
}

int
db_global_counts_cached(struct db *db, int64_t folder,
    struct db_global_counts *out)
{
	struct cache_folder	*c;
	uint64_t		 now = util_now_ms(), gen;
	bool			 any;
	int			 rc;

	if (db->in_tx)
		return db_global_counts(db, folder, out);
	c = cache_find(db, folder, true);
	gen = c->gen;
	if (c->g_valid && c->g_gen == gen) {
		*out = c->g;
		return 0;
	}
	/*
	 * Changed since: old values may stand for a while, but only if they
	 * say something is still needed and that is still true, so a stale
	 * value never makes the folder look in sync (or need nothing) early.
	 */
	if (c->g_valid && now - c->g_ms < CACHE_MIN_MS &&
	    c->g.need_items > 0 && c->g.need_bytes > 0) {
		rc = need_any(db, folder, &any);
		if (rc != 0)
			return rc;
		if (any) {
			*out = c->g;
			return 0;
		}
	}
	rc = db_global_counts(db, folder, out);
	if (rc != 0)
		return rc;
	/* The cache array may have moved: look the entry up again. */
	c = cache_find(db, folder, true);
	c->g = *out;
	c->g_gen = gen;
	c->g_ms = now;
	c->g_valid = true;
	return 0;
}

int
db_completion_cached(struct db *db, int64_t folder, int64_t device,
    double *out)
{
	struct cache_folder	*c;
	struct cache_compl	*e = NULL;
	uint64_t		 now = util_now_ms(), gen;
	size_t			 i;
	int			 rc;

	if (db->in_tx)
		return db_completion(db, folder, device, out);
	c = cache_find(db, folder, true);
	gen = c->gen;
	for (i = 0; i < c->compl_count; i++)
		if (c->compl[i].device == device)
			e = &c->compl[i];
	/* As above: a stale value may stand only while it is below 100. */
	if (e != NULL && (e->gen == gen ||
	    (now - e->ms < CACHE_MIN_MS && e->pct < 100.0))) {
		*out = e->pct;
		return 0;
	}
	rc = db_completion(db, folder, device, out);
	if (rc != 0)
		return rc;
	if (e == NULL) {
		c->compl = xreallocarray(c->compl, c->compl_count + 1,
		    sizeof(*c->compl));
		e = &c->compl[c->compl_count++];
		e->device = device;
	}
	e->gen = gen;
	e->ms = now;
	e->pct = *out;
	return 0;
}

int
db_device_id(struct db *db, int64_t device, struct device_id *out)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, e;

	rc = stmt_get(db, ST_DEVICE_ID_GET, &s);
	if (rc != 0)
		goto out;
	if (sqlite3_bind_int64(s, 1, device) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	e = sqlite3_step(s);
	if (e == SQLITE_DONE || (e == SQLITE_ROW &&
	    sqlite3_column_bytes(s, 0) != IDENTITY_ID_LEN)) {
		rc = SH_ENOTFOUND;	/* unknown, or the local device */
		goto out;
	}
	if (e != SQLITE_ROW) {
		rc = dberr(db, "device id");
		goto out;
	}
	memcpy(out->raw, sqlite3_column_blob(s, 0), IDENTITY_ID_LEN);
	rc = 0;
out:
	stmt_done(s, false);
	return rc;
}

int
db_local_flagged(struct db *db, int64_t folder, uint32_t flags,
    db_entry_cb cb, void *arg)
{
	struct db_entry	 e;
	sqlite3_stmt	*s = NULL;
	bool		 own = false;
	int		 rc, r = SQLITE_DONE;

	rc = stmt_get_iter(db, ST_LOCAL_FLAGGED, &s, &own);
	if (rc != 0)
		return rc;
	if (sqlite3_bind_int64(s, 1, folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, flags) != SQLITE_OK) {
		rc = dberr(db, "bind");
		goto out;
	}
	while (rc == 0 && (r = sqlite3_step(s)) == SQLITE_ROW) {
		e.name = (const char *)sqlite3_column_text(s, 0);
		e.type = (enum record_type)sqlite3_column_int(s, 1);
		e.size = sqlite3_column_int64(s, 2);
		e.deleted = sqlite3_column_int(s, 3) != 0;
		e.invalid = sqlite3_column_int(s, 4) != 0;
		e.sequence = sqlite3_column_int64(s, 5);
		rc = cb(&e, arg);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = dberr(db, "flagged");
out:
	stmt_done(s, own);
	return rc;
}

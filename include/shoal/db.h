/* SPDX-License-Identifier: MIT */
/*
 * The index: one SQLite database (WAL mode) per home holding this device's
 * file records and the latest records received from each peer, per folder,
 * with sequence numbers so peers exchange only what changed. Schema is
 * versioned (PRAGMA user_version) with forward migrations. One connection,
 * used only from the loop thread. See docs/internals/db.md.
 */
#ifndef SHOAL_DB_H
#define SHOAL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"
#include "shoal/identity.h"
#include "shoal/record.h"

#define DB_FILE			"index.db"
/* Schema version this build creates and migrates to (PRAGMA user_version). */
#define DB_SCHEMA_VERSION	3
/* Device index of this device in every per-device table. */
#define DB_LOCAL_DEVICE		0

struct db;

/* Light view of a record used by iterations that must not load blocks. */
struct db_entry {
	const char	*name;		/* borrowed; valid during the callback */
	enum record_type type;
	int64_t		 size;
	bool		 deleted;
	bool		 invalid;
	int64_t		 sequence;
};

/* Return 0 to continue, non-zero to stop (that value is returned). */
typedef int (*db_entry_cb)(const struct db_entry *e, void *arg);
typedef int (*db_record_cb)(const struct record *r, void *arg);

/* Invalid records (ignored, unsupported) count in none of the first
 * three fields. */
struct db_counts {
	uint64_t	files;		/* regular files + symlinks, not deleted */
	uint64_t	directories;	/* not deleted */
	uint64_t	bytes;		/* sum of sizes of the counted files */
	uint64_t	deleted;	/* tombstones */
	uint64_t	receive_only_changed; /* RECORD_LOCAL_RECEIVEONLY */
};

/* Lifecycle */
/* Open or create `path`, set WAL, migrate to the current schema. Caller
 * closes with db_close(). 0, SH_EDB or SH_ECORRUPT (newer schema). */
int	db_open(const char *path, struct db **out) SH_MUST_CHECK;
void	db_close(struct db *db);
int	db_schema_version(struct db *db);

/*
 * Transactions (not nested; the scanner groups many puts in one). Outside
 * a transaction every write is atomic on its own. A write that fails inside
 * one marks it failed: later writes and db_commit return SH_EDB (commit
 * rolls back) until db_rollback.
 */
int	db_begin(struct db *db) SH_MUST_CHECK;
int	db_commit(struct db *db) SH_MUST_CHECK;
void	db_rollback(struct db *db);

/* Folders and devices */
/* Index of folder `id`, created if new. */
int	db_folder_idx(struct db *db, const char *id, int64_t *out) SH_MUST_CHECK;
/* Drop every record of a folder (folder removed from config), its block
 * index and its index IDs (the local sequence restarts, and a new local
 * index ID is made on the next db_index_id_get). */
int	db_folder_drop(struct db *db, int64_t folder) SH_MUST_CHECK;
/* Drop every record of (folder, device), e.g. before applying a full Index
 * or when a peer's index ID changed (bep-brief §9.2, §9.3). Index IDs and
 * the local sequence counter are kept. 0 or SH_EDB. */
int	db_files_drop(struct db *db, int64_t folder, int64_t device)
	    SH_MUST_CHECK;
/* Index of a remote device, created if new (never DB_LOCAL_DEVICE);
 * -EINVAL for the all-zero ID. */
int	db_device_idx(struct db *db, const struct device_id *id, int64_t *out)
	    SH_MUST_CHECK;

/* The device ID of a remote device index: 0, SH_ENOTFOUND (unknown or
 * the local device) or SH_EDB. */
int	db_device_id(struct db *db, int64_t device, struct device_id *out)
	    SH_MUST_CHECK;

/* Records */
/* Fetch (folder, device, name) with its blocks. blocks_hash is recomputed
 * from the blocks (has_blocks_hash iff block_count > 0). 0 with *out set
 * (caller frees with record_free), SH_ENOTFOUND, SH_ECORRUPT or SH_EDB. */
int	db_file_get(struct db *db, int64_t folder, int64_t device,
	    const char *name, struct record **out) SH_MUST_CHECK;
/*
 * The folder's generation: it changes with every change to the folder's
 * records (a rollback included), so a record read while it had one value
 * is still current while it has that value. For callers that keep a
 * record between events.
 */
uint64_t	db_folder_gen(struct db *db, int64_t folder);
/* Did the last failed write find the disk full (SQLITE_FULL), with no
 * commit since? Nothing stored is lost then; writes resume with space. */
bool		db_disk_full(const struct db *db);
/*
 * Store a record of this device. Assigns r->sequence = the folder's next
 * local sequence (strictly increasing, never reused) before storing. Also
 * maintains the block hash -> (name, offset) lookup.
 */
int	db_local_put(struct db *db, int64_t folder, struct record *r)
	    SH_MUST_CHECK;
/* Store a record received from a remote device as is (its blocks_hash is
 * not stored but recomputed on read). SH_EPROTO if another name of that
 * device already holds r->sequence (nothing stored; the transaction stays
 * usable), -EINVAL for the local device, else 0 or SH_EDB. */
int	db_remote_put(struct db *db, int64_t folder, int64_t device,
	    const struct record *r) SH_MUST_CHECK;
/* Highest sequence stored for (folder, device); 0 if none. For the local
 * device this is the sequence counter, which may exceed every stored
 * sequence once the newest record was replaced. */
int	db_max_sequence(struct db *db, int64_t folder, int64_t device,
	    int64_t *out) SH_MUST_CHECK;
/*
 * Iterate records of (folder, device) whose name is `prefix` or lies below
 * it ("" = all), ordered by name. Deleted entries are included; the
 * callback filters. The callback may not write to the db.
 */
int	db_entries_under(struct db *db, int64_t folder, int64_t device,
	    const char *prefix, db_entry_cb cb, void *arg) SH_MUST_CHECK;
/* Local records with any of `flags` (RECORD_LOCAL_*), by name. The
 * callback may not write. */
int	db_local_flagged(struct db *db, int64_t folder, uint32_t flags,
	    db_entry_cb cb, void *arg) SH_MUST_CHECK;
/* Full records with sequence > since, ascending, at most `limit` (0 = no
 * limit). For index exchange. */
int	db_records_since(struct db *db, int64_t folder, int64_t device,
	    int64_t since, size_t limit, db_record_cb cb, void *arg)
	    SH_MUST_CHECK;
int	db_counts(struct db *db, int64_t folder, int64_t device,
	    struct db_counts *out) SH_MUST_CHECK;
/*
 * How much of our present (not deleted, valid) items `device` has at the
 * same version, in percent: by bytes, or by items when all are empty.
 * 100 when we have nothing. 0 or SH_EDB.
 */
int	db_completion(struct db *db, int64_t folder, int64_t device,
	    double *out) SH_MUST_CHECK;
/* Find a local block by hash: 0 with name (caller frees) and offset, or
 * SH_ENOTFOUND. */
int	db_block_find(struct db *db, int64_t folder,
	    const uint8_t hash[RECORD_HASH_LEN], char **name, int64_t *offset)
	    SH_MUST_CHECK;

/* Index IDs (bep-brief §9.2): random 64-bit per (folder, device). Get
 * returns 0 in *out for a remote device with none stored; for the local
 * device it makes, stores and returns a random non-zero one if needed. */
int	db_index_id_get(struct db *db, int64_t folder, int64_t device,
	    uint64_t *out) SH_MUST_CHECK;
int	db_index_id_set(struct db *db, int64_t folder, int64_t device,
	    uint64_t index_id) SH_MUST_CHECK;

/* Global view (bep-brief §10.7), kept per name by every put and drop; the
 * rules are model.c's. Used through model.h. */
struct db_need {
	const char	*name;		/* borrowed for the callback */
	enum record_type type;
	bool		 deleted;
	int64_t		 size;
	int64_t		 device;	/* holder of the global version */
};
typedef int (*db_need_cb)(const struct db_need *n, void *arg);

struct db_global_counts {
	uint64_t	files;		/* present valid files + symlinks */
	uint64_t	directories;
	uint64_t	bytes;
	uint64_t	need_items;	/* names we need, deletions included */
	uint64_t	need_bytes;
	uint64_t	need_deletes;
};

/* Device holding the global version of a name: 0, SH_ENOTFOUND, SH_EDB. */
int	db_global_device(struct db *db, int64_t folder, const char *name,
	    int64_t *device) SH_MUST_CHECK;
/* Tests: every cached statement and its EXPLAIN QUERY PLAN, a line each
 * ("SQL<TAB>plan;plan;..."). *out is the caller's to free. */
int	db_query_plans(struct db *db, char **out) SH_MUST_CHECK;
/* Remote devices with a valid record of exactly version v. */
int	db_availability(struct db *db, int64_t folder, const char *name,
	    const struct record_vector *v, int64_t *devices, size_t max,
	    size_t *count) SH_MUST_CHECK;
/* Needed names: directories by name, files and symlinks by name, then
 * deletions by name descending. The callback may not write. */
int	db_need_foreach(struct db *db, int64_t folder, db_need_cb cb,
	    void *arg) SH_MUST_CHECK;
int	db_global_counts(struct db *db, int64_t folder,
	    struct db_global_counts *out) SH_MUST_CHECK;
/*
 * The same figures for status reports, which are polled often: the values
 * are cached per folder and recomputed when the folder's index changed
 * since (every put and drop counts), at most every 250 ms while it keeps
 * changing. A cached value that is out of date is only ever returned while
 * it says something is needed (need_items and need_bytes above 0, and a
 * need row still exists) or, for completion, below 100; otherwise it is
 * recomputed. Values are never cached inside a transaction.
 */
int	db_global_counts_cached(struct db *db, int64_t folder,
	    struct db_global_counts *out) SH_MUST_CHECK;
int	db_completion_cached(struct db *db, int64_t folder, int64_t device,
	    double *out) SH_MUST_CHECK;

#endif /* SHOAL_DB_H */

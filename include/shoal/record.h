/* SPDX-License-Identifier: MIT */
/*
 * Plain data types shared by the index, the scanner, the protocol and the
 * model: file records (BEP FileInfo), blocks and version vectors, plus the
 * version-vector algebra of bep-brief §10.6.
 */
#ifndef SHOAL_RECORD_H
#define SHOAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"

#define RECORD_HASH_LEN		32
#define RECORD_MIN_BLOCK_SIZE	(128 * 1024)
#define RECORD_MAX_BLOCK_SIZE	(16 * 1024 * 1024)
/* Caps on what a record may carry, so a hostile peer cannot make us allocate
 * without bound (bep-brief §17). */
#define RECORD_MAX_NAME_LEN	4096
#define RECORD_MAX_COUNTERS	1024
#define RECORD_MAX_BLOCKS	(1u << 20)

enum record_type {
	RECORD_TYPE_FILE = 0,
	RECORD_TYPE_DIRECTORY = 1,
	RECORD_TYPE_SYMLINK = 4
};

/* Local flags: never sent on the wire. */
#define RECORD_LOCAL_IGNORED	0x1u	/* matched .stignore */
#define RECORD_LOCAL_RECEIVEONLY 0x2u	/* changed locally in a receiveonly folder */
#define RECORD_LOCAL_UNSUPPORTED 0x4u	/* cannot be represented here */

struct record_counter {
	uint64_t	id;		/* short device ID, compared unsigned */
	uint64_t	value;
};

/* Sorted by id ascending, each id at most once (bep-brief §10.6). */
struct record_vector {
	struct record_counter	*counters;	/* owned; NULL when count == 0 */
	size_t			 count;
};

struct record_block {
	int64_t		offset;
	int32_t		size;
	uint8_t		hash[RECORD_HASH_LEN];
	uint32_t	weak_hash;	/* Adler-32; 0 = absent */
};

struct record {
	char			*name;		/* owned; folder-relative, '/' separated */
	enum record_type	 type;
	int64_t			 size;
	uint32_t		 permissions;	/* mode & 0777 */
	int64_t			 modified_s;
	int32_t			 modified_ns;
	uint64_t		 modified_by;	/* short ID of the last changer */
	bool			 deleted;
	bool			 invalid;
	bool			 no_permissions;
	struct record_vector	 version;	/* owned */
	int64_t			 sequence;
	int32_t			 block_size;	/* 0 = absent (128 KiB) */
	struct record_block	*blocks;	/* owned; NULL when block_count == 0 */
	size_t			 block_count;
	uint8_t			 blocks_hash[RECORD_HASH_LEN];
	bool			 has_blocks_hash;
	char			*symlink_target; /* owned; NULL unless symlink */
	/* Local-only state (not on the wire). */
	uint32_t		 local_flags;	/* RECORD_LOCAL_* */
	uint64_t		 inode;		/* for change detection on rescan */
	uint64_t		 dev;
};

enum record_order {
	RECORD_EQUAL = 0,
	RECORD_GREATER,
	RECORD_LESSER,
	RECORD_CONCURRENT_GREATER,
	RECORD_CONCURRENT_LESSER
};

/* Lifecycle */
struct record	*record_new(void);			/* zeroed; free with record_free */
void		 record_free(struct record *r);		/* accepts NULL */
void		 record_clear(struct record *r);	/* frees owned fields, zeroes */
/* Deep copy into a new record. Caller frees with record_free(). */
struct record	*record_dup(const struct record *r);
/*
 * Structural check of a record from a peer or the disk (bep-brief
 * §10.1-§10.4): valid name and vector, known type, no blocks on deleted
 * entries, directories and symlinks, at least one block on a present valid
 * file, blocks contiguous from offset 0 summing to size, caps respected.
 * 0 or SH_EPROTO.
 */
int	record_validate(const struct record *r) SH_MUST_CHECK;

/* Version vectors */
void	record_vector_free(struct record_vector *v);	/* frees counters, zeroes */
/* dst = deep copy of src; dst must be zeroed or valid (its old counters
 * are freed). */
void	record_vector_copy(struct record_vector *dst, const struct record_vector *src);
/* Local change by `short_id` at unix time `now` (bep-brief §10.6 Update). */
void	record_vector_update(struct record_vector *v, uint64_t short_id,
	    int64_t now);
/* dst = merge(dst, src): per id the larger value. */
void	record_vector_merge(struct record_vector *dst,
	    const struct record_vector *src);
enum record_order record_vector_compare(const struct record_vector *a,
	    const struct record_vector *b);
bool	record_vector_concurrent(const struct record_vector *a,
	    const struct record_vector *b);
/* a is Greater or Equal to b. */
bool	record_vector_greater_equal(const struct record_vector *a,
	    const struct record_vector *b);
/* 0 if sorted, unique ids and count <= RECORD_MAX_COUNTERS; else SH_EPROTO. */
int	record_vector_validate(const struct record_vector *v) SH_MUST_CHECK;
const char *record_order_name(enum record_order o);

/* Blocks */
/* Block size for a file of `size` bytes given the previous block size
 * (0 if none), with the hysteresis rule (bep-brief §10.8). */
int32_t	record_block_size(int64_t size, int32_t prev_block_size);
/* SHA-256 over hash[32] || weak_hash BE for each block (1.x, §10.9).
 * Callers use it only for records that have blocks. */
void	record_blocks_hash(const struct record_block *blocks, size_t count,
	    uint8_t out[RECORD_HASH_LEN]);

/* Names */
/*
 * 0 if `name` is a canonical folder-relative name (bep-brief §10.1): not
 * empty, not "." or "..", no leading '/', no "//", no "./" or "../"
 * components, no trailing '/', no NUL, valid UTF-8, length capped.
 * SH_EPROTO otherwise.
 */
int	record_name_validate(const char *name, size_t len) SH_MUST_CHECK;
/* True for .stfolder, .stignore, .stversions (and below) at the root, and
 * for temporary names (.syncthing.*.tmp, .shoal.*.tmp, ~syncthing~*) as
 * any component at any level. */
bool	record_name_internal(const char *name);

#endif /* SHOAL_RECORD_H */

/* SPDX-License-Identifier: MIT */
/*
 * Block hashing with OpenSSL libcrypto's EVP SHA-256 (hardware SHA
 * extensions; about 4x libsodium here). TLS and certificates stay on
 * mbedTLS. The *_work functions block and run on the libuv thread pool.
 */
#ifndef SHOAL_HASH_H
#define SHOAL_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"
#include "shoal/record.h"

/* One-shot SHA-256. 0 or SH_ECRYPTO. */
int	hash_sha256(const void *data, size_t len, uint8_t out[RECORD_HASH_LEN])
	    SH_MUST_CHECK;
/* Adler-32 as zlib's adler32(1, buf, len). */
uint32_t hash_adler32(const void *data, size_t len);

/*
 * Hash an open file block by block (blocking; thread pool). Reads `size`
 * bytes from fd in blocks of `block_size`, filling a new array in *blocks
 * (caller frees with free()) and *count. An empty file yields one block of
 * size 0 with SHA-256(""). `cancel`, if not NULL, is polled between blocks
 * (returns -ECANCELED when set); `progress`, if not NULL, is increased
 * atomically by the bytes hashed. Returns 0, -errno, or SH_ECONFLICT if the
 * file was shorter than `size` (it changed while hashing).
 */
int	hash_file_work(int fd, int64_t size, int32_t block_size,
	    struct record_block **blocks, size_t *count,
	    const volatile int *cancel, uint64_t *progress) SH_MUST_CHECK;
/* Blocks needed for `size` bytes in blocks of `block_size`: 0 if the
 * arguments are out of range or the file needs too many blocks. */
size_t	hash_block_count(int64_t size, int32_t block_size);
/*
 * Hash blocks [first, first + count) of an open file of `size` bytes into
 * bl[first ..] (the caller's array of hash_block_count() entries), the same
 * way hash_file_work() does for the whole file; several threads may hash
 * disjoint ranges of one array at once. Same returns and `cancel`/`progress`
 * as hash_file_work().
 */
int	hash_blocks_work(int fd, int64_t size, int32_t block_size,
	    size_t first, size_t count, struct record_block *bl,
	    const volatile int *cancel, uint64_t *progress) SH_MUST_CHECK;

#endif /* SHOAL_HASH_H */

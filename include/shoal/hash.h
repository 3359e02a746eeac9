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

#endif /* SHOAL_HASH_H */

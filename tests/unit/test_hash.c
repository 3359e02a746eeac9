/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for hash.c: SHA-256 and Adler-32 vectors (bep-brief §10.2,
 * §10.9, §10.10) and block-by-block file hashing.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shoal/hash.h"
#include "shoal/util.h"

static const char *EMPTY_HEX =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char *HELLO_HEX =
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

static void
hex_of(const uint8_t *h, char out[65])
{
	util_hex(h, 32, out);
}

/* Write `len` bytes to a new temp file and return an fd open for reading. */
static int
temp_file(const void *data, size_t len, char *path, size_t path_size)
{
	int	fd;

	snprintf(path, path_size, "/tmp/shoal-test-hash-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	return fd;
}

static void
test_hash_sha256_vectors(void **state)
{
	uint8_t	h[32];
	char	hex[65];

	(void)state;
	assert_int_equal(hash_sha256("", 0, h), 0);
	hex_of(h, hex);
	assert_string_equal(hex, EMPTY_HEX);
	assert_int_equal(hash_sha256("hello", 5, h), 0);
	hex_of(h, hex);
	assert_string_equal(hex, HELLO_HEX);
}

/* Reference: reduce after every byte. */
static uint32_t
adler_slow(const uint8_t *p, size_t len)
{
	uint32_t	a = 1, b = 0;
	size_t		i;

	for (i = 0; i < len; i++) {
		a = (a + p[i]) % 65521;
		b = (b + a) % 65521;
	}
	return (b << 16) | a;
}

static void
test_hash_adler32_vectors(void **state)
{
	uint8_t	*big;
	size_t	 i, n = 3 * 1024 * 1024 + 7;

	(void)state;
	assert_int_equal(hash_adler32("hello", 5), 0x062c0215);
	assert_int_equal(hash_adler32("", 0), 1);
	assert_int_equal(hash_adler32("Wikipedia", 9), 0x11E60398);
	/* All-0xff bytes stress the deferred modulo. */
	big = xmalloc(n);
	memset(big, 0xff, n);
	assert_int_equal(hash_adler32(big, n), adler_slow(big, n));
	for (i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	assert_int_equal(hash_adler32(big, n), adler_slow(big, n));
	free(big);
}

static void
test_hash_file_empty(void **state)
{
	struct record_block	*bl = NULL;
	size_t			 n = 0;
	char			 path[64], hex[65];
	int			 fd;

	(void)state;
	fd = temp_file("", 0, path, sizeof(path));
	assert_int_equal(hash_file_work(fd, 0, RECORD_MIN_BLOCK_SIZE, &bl, &n,
	    NULL, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bl[0].offset, 0);
	assert_int_equal(bl[0].size, 0);
	hex_of(bl[0].hash, hex);
	assert_string_equal(hex, EMPTY_HEX);
	free(bl);
	close(fd);
	unlink(path);
}

static void
test_hash_file_hello(void **state)
{
	struct record_block	*bl = NULL;
	size_t			 n = 0;
	uint64_t		 progress = 0;
	char			 path[64], hex[65];
	int			 fd;

	(void)state;
	fd = temp_file("hello", 5, path, sizeof(path));
	assert_int_equal(hash_file_work(fd, 5, RECORD_MIN_BLOCK_SIZE, &bl, &n,
	    NULL, &progress), 0);
	assert_int_equal(n, 1);
	assert_int_equal(bl[0].size, 5);
	assert_int_equal(bl[0].weak_hash, 0x062c0215);
	hex_of(bl[0].hash, hex);
	assert_string_equal(hex, HELLO_HEX);
	assert_int_equal(progress, 5);
	free(bl);
	close(fd);
	unlink(path);
}

static void
test_hash_file_multi_block(void **state)
{
	struct record_block	*bl = NULL;
	uint8_t			*data, h[32];
	size_t			 n = 0, i, len = 2 * 131072 + 100;
	uint64_t		 progress = 0;
	char			 path[64];
	int			 fd;

	(void)state;
	data = xmalloc(len);
	for (i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 9));
	fd = temp_file(data, len, path, sizeof(path));
	assert_int_equal(hash_file_work(fd, (int64_t)len, 131072, &bl, &n,
	    NULL, &progress), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		size_t	sz = i < 2 ? 131072 : 100;

		assert_int_equal(bl[i].offset, (int64_t)(i * 131072));
		assert_int_equal(bl[i].size, (int32_t)sz);
		assert_int_equal(hash_sha256(data + i * 131072, sz, h), 0);
		assert_memory_equal(bl[i].hash, h, 32);
		assert_int_equal(bl[i].weak_hash,
		    hash_adler32(data + i * 131072, sz));
	}
	assert_int_equal(progress, len);
	free(bl);
	free(data);
	close(fd);
	unlink(path);
}

static void
test_hash_file_shorter_than_announced(void **state)
{
	struct record_block	*bl = NULL;
	size_t			 n = 0;
	char			 path[64];
	int			 fd;

	(void)state;
	fd = temp_file("hello", 5, path, sizeof(path));
	assert_int_equal(hash_file_work(fd, 200000, 131072, &bl, &n, NULL,
	    NULL), SH_ECONFLICT);
	assert_null(bl);
	assert_int_equal(n, 0);
	close(fd);
	unlink(path);
}

static void
test_hash_file_cancel_and_bad_args(void **state)
{
	struct record_block	*bl = NULL;
	size_t			 n = 0;
	volatile int		 cancel = 1;
	char			 path[64];
	int			 fd;

	(void)state;
	fd = temp_file("hello", 5, path, sizeof(path));
	assert_int_equal(hash_file_work(fd, 5, 131072, &bl, &n, &cancel,
	    NULL), -ECANCELED);
	assert_null(bl);
	assert_int_equal(hash_file_work(fd, 5, 1000, &bl, &n, NULL, NULL),
	    -EINVAL);
	assert_int_equal(hash_file_work(-1, 5, 131072, &bl, &n, NULL, NULL),
	    -EBADF);
	close(fd);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_sha256_vectors),
		cmocka_unit_test(test_hash_adler32_vectors),
		cmocka_unit_test(test_hash_file_empty),
		cmocka_unit_test(test_hash_file_hello),
		cmocka_unit_test(test_hash_file_multi_block),
		cmocka_unit_test(test_hash_file_shorter_than_announced),
		cmocka_unit_test(test_hash_file_cancel_and_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

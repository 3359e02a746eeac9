/* SPDX-License-Identifier: MIT */
/* Unit tests for record.c: lifecycle, version-vector algebra (bep-brief
 * §10.6), block size selection (§10.8), blocks_hash (§10.9), names (§10.1,
 * §10.12) and record validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shoal/err.h"
#include "shoal/record.h"
#include "shoal/util.h"

#define MIB	(1024 * 1024)
#define KIB	1024

/* Build a vector from (id, value) pairs; ids must be given sorted. */
static struct record_vector
vec(size_t n, const uint64_t *pairs)
{
	struct record_vector	v = { NULL, 0 };
	size_t			i;

	if (n == 0)
		return v;
	v.counters = xcalloc(n, sizeof(*v.counters));
	v.count = n;
	for (i = 0; i < n; i++) {
		v.counters[i].id = pairs[2 * i];
		v.counters[i].value = pairs[2 * i + 1];
	}
	return v;
}

static void
hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
	size_t		i;
	unsigned int	b;
	char		tmp[3];

	assert_int_equal(strlen(hex), 2 * len);
	for (i = 0; i < len; i++) {
		tmp[0] = hex[2 * i];
		tmp[1] = hex[2 * i + 1];
		tmp[2] = '\0';
		b = (unsigned int)strtoul(tmp, NULL, 16);
		out[i] = (uint8_t)b;
	}
}

static void
test_record_dup_deep(void **state)
{
	struct record	*r, *d;
	uint64_t	 p[] = { 1, 10, 5, 20 };

	(void)state;
	r = record_new();
	r->name = xstrdup("dir/file");
	r->symlink_target = xstrdup("target");
	r->version = vec(2, p);
	r->blocks = xcalloc(2, sizeof(*r->blocks));
	r->block_count = 2;
	r->blocks[1].offset = 131072;
	r->blocks[1].weak_hash = 7;
	r->size = 131073;
	r->inode = 99;
	d = record_dup(r);
	/* Equal content, distinct storage. */
	assert_string_equal(d->name, "dir/file");
	assert_ptr_not_equal(d->name, r->name);
	assert_string_equal(d->symlink_target, "target");
	assert_ptr_not_equal(d->symlink_target, r->symlink_target);
	assert_ptr_not_equal(d->version.counters, r->version.counters);
	assert_int_equal(d->version.count, 2);
	assert_int_equal(d->version.counters[1].value, 20);
	assert_ptr_not_equal(d->blocks, r->blocks);
	assert_int_equal(d->block_count, 2);
	assert_int_equal(d->blocks[1].offset, 131072);
	assert_int_equal(d->blocks[1].weak_hash, 7);
	assert_int_equal(d->inode, 99);
	/* Freeing the original leaves the copy intact (ASan checks). */
	record_free(r);
	assert_string_equal(d->name, "dir/file");
	record_clear(d);
	assert_null(d->name);
	assert_null(d->blocks);
	assert_int_equal(d->version.count, 0);
	record_free(d);
	record_free(NULL);
}

static void
test_record_vector_compare_orders(void **state)
{
	uint64_t		 pa[] = { 1, 2, 2, 3 };
	uint64_t		 pb[] = { 1, 2, 2, 3 };
	uint64_t		 pc[] = { 1, 2, 2, 4 };
	uint64_t		 pd[] = { 1, 3, 2, 2 };
	uint64_t		 pe[] = { 1, 2 };
	struct record_vector	 a = vec(2, pa), b = vec(2, pb),
				 c = vec(2, pc), d = vec(2, pd),
				 e = vec(1, pe), empty = { NULL, 0 };

	(void)state;
	assert_int_equal(record_vector_compare(&a, &b), RECORD_EQUAL);
	assert_int_equal(record_vector_compare(&empty, &empty), RECORD_EQUAL);
	assert_int_equal(record_vector_compare(&c, &a), RECORD_GREATER);
	assert_int_equal(record_vector_compare(&a, &c), RECORD_LESSER);
	/* A missing counter is 0: {1:2} < {1:2, 2:3}. */
	assert_int_equal(record_vector_compare(&e, &a), RECORD_LESSER);
	assert_int_equal(record_vector_compare(&a, &e), RECORD_GREATER);
	assert_int_equal(record_vector_compare(&empty, &a), RECORD_LESSER);
	/* d is larger at id 1 (the lowest differing id), c at id 2. */
	assert_int_equal(record_vector_compare(&d, &c),
	    RECORD_CONCURRENT_GREATER);
	assert_int_equal(record_vector_compare(&c, &d),
	    RECORD_CONCURRENT_LESSER);
	assert_true(record_vector_concurrent(&c, &d));
	assert_false(record_vector_concurrent(&a, &c));
	assert_true(record_vector_greater_equal(&a, &b));
	assert_true(record_vector_greater_equal(&c, &a));
	assert_false(record_vector_greater_equal(&a, &c));
	assert_false(record_vector_greater_equal(&d, &c));
	assert_string_equal(record_order_name(RECORD_CONCURRENT_LESSER),
	    "concurrent-lesser");
	record_vector_free(&a);
	record_vector_free(&b);
	record_vector_free(&c);
	record_vector_free(&d);
	record_vector_free(&e);
}

static void
test_record_vector_compare_disjoint(void **state)
{
	/* Disjoint ids: each side is ahead on its own id. */
	uint64_t		 pa[] = { 1, 5 };
	uint64_t		 pb[] = { 9, 5 };
	struct record_vector	 a = vec(1, pa), b = vec(1, pb);

	(void)state;
	assert_int_equal(record_vector_compare(&a, &b),
	    RECORD_CONCURRENT_GREATER);
	assert_int_equal(record_vector_compare(&b, &a),
	    RECORD_CONCURRENT_LESSER);
	record_vector_free(&a);
	record_vector_free(&b);
}

static void
test_record_vector_update_time(void **state)
{
	uint64_t		 p[] = { 10, 100, 30, 300 };
	struct record_vector	 v = vec(2, p);

	(void)state;
	/* Existing counter: max(value + 1, now). */
	record_vector_update(&v, 10, 50);
	assert_int_equal(v.counters[0].value, 101);
	record_vector_update(&v, 10, 1000);
	assert_int_equal(v.counters[0].value, 1000);
	/* New id inserted at its sorted position with max(1, now). */
	record_vector_update(&v, 20, 0);
	assert_int_equal(v.count, 3);
	assert_int_equal(v.counters[1].id, 20);
	assert_int_equal(v.counters[1].value, 1);
	record_vector_update(&v, 5, 1700000000);
	assert_int_equal(v.count, 4);
	assert_int_equal(v.counters[0].id, 5);
	assert_int_equal(v.counters[0].value, 1700000000);
	/* Ids are unsigned: the high bit sorts last. */
	record_vector_update(&v, UINT64_C(0x8000000000000000), 7);
	assert_int_equal(v.count, 5);
	assert_true(v.counters[4].id == UINT64_C(0x8000000000000000));
	assert_int_equal(v.counters[4].value, 7);
	assert_int_equal(v.counters[3].id, 30);
	assert_int_equal(record_vector_validate(&v), 0);
	record_vector_free(&v);
	assert_null(v.counters);

	/* From empty. */
	record_vector_update(&v, 42, -5);
	assert_int_equal(v.count, 1);
	assert_int_equal(v.counters[0].value, 1);
	record_vector_free(&v);
}

static void
test_record_vector_merge(void **state)
{
	uint64_t		 pa[] = { 1, 5, 3, 1 };
	uint64_t		 pb[] = {
		2, 7, 3, 4, UINT64_C(0xffffffffffffffff), 9
	};
	struct record_vector	 a = vec(2, pa), b = vec(3, pb);
	struct record_vector	 c = { NULL, 0 };

	(void)state;
	record_vector_merge(&a, &b);
	assert_int_equal(a.count, 4);
	assert_int_equal(a.counters[0].id, 1);
	assert_int_equal(a.counters[0].value, 5);
	assert_int_equal(a.counters[1].id, 2);
	assert_int_equal(a.counters[1].value, 7);
	assert_int_equal(a.counters[2].id, 3);
	assert_int_equal(a.counters[2].value, 4);
	assert_true(a.counters[3].id == UINT64_C(0xffffffffffffffff));
	assert_int_equal(record_vector_validate(&a), 0);
	/* The merge dominates both inputs. */
	assert_true(record_vector_greater_equal(&a, &b));
	record_vector_copy(&c, &a);
	assert_int_equal(record_vector_compare(&c, &a), RECORD_EQUAL);
	record_vector_merge(&c, &b);
	assert_int_equal(record_vector_compare(&c, &a), RECORD_EQUAL);
	record_vector_free(&a);
	record_vector_free(&b);
	record_vector_free(&c);
}

static void
test_record_vector_validate(void **state)
{
	uint64_t		 unsorted[] = { 5, 1, 3, 1 };
	uint64_t		 dup[] = { 3, 1, 3, 2 };
	struct record_vector	 a = vec(2, unsorted), b = vec(2, dup);
	struct record_vector	 big = { NULL, 0 };

	(void)state;
	assert_int_equal(record_vector_validate(&a), SH_EPROTO);
	assert_int_equal(record_vector_validate(&b), SH_EPROTO);
	big.count = RECORD_MAX_COUNTERS + 1;
	big.counters = xcalloc(big.count, sizeof(*big.counters));
	assert_int_equal(record_vector_validate(&big), SH_EPROTO);
	record_vector_free(&a);
	record_vector_free(&b);
	record_vector_free(&big);
}

static void
test_record_block_size_table(void **state)
{
	static const struct {
		int64_t	size;
		int32_t	bs;
	} t[] = {
		{ 0, 128 * KIB },
		{ 262143999, 128 * KIB },
		{ 262144000, 256 * KIB },
		{ 524287999, 256 * KIB },
		{ 524288000, 512 * KIB },
		{ 1048575999, 512 * KIB },
		{ 1048576000, 1 * MIB },
		{ 2097151999, 1 * MIB },
		{ 2097152000, 2 * MIB },
		{ 4194304000, 4 * MIB },
		{ 8388608000, 8 * MIB },
		{ 16777215999, 8 * MIB },
		{ 16777216000, 16 * MIB },
		{ INT64_C(1) << 50, 16 * MIB },
	};
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(record_block_size(t[i].size, 0), t[i].bs);
}

static void
test_record_block_size_hysteresis(void **state)
{
	(void)state;
	/* Within a factor of two of the previous size: keep it. */
	assert_int_equal(record_block_size(262144000, 128 * KIB), 128 * KIB);
	assert_int_equal(record_block_size(100, 256 * KIB), 256 * KIB);
	assert_int_equal(record_block_size(600 * MIB, 256 * KIB), 256 * KIB);
	/* Four times apart: take the new size. */
	assert_int_equal(record_block_size(600 * (int64_t)MIB, 128 * KIB),
	    512 * KIB);
	assert_int_equal(record_block_size(100, 512 * KIB), 128 * KIB);
	/* Unchanged class. */
	assert_int_equal(record_block_size(20000, 128 * KIB), 128 * KIB);
	/* An invalid previous size is not kept. */
	assert_int_equal(record_block_size(100, 1000), 128 * KIB);
	assert_int_equal(record_block_size(262144000, 64 * KIB), 256 * KIB);
	assert_int_equal(record_block_size(INT64_C(1) << 40, 16 * MIB),
	    16 * MIB);
	assert_int_equal(record_block_size(INT64_C(1) << 40, 8 * MIB),
	    8 * MIB);
}

static void
test_record_blocks_hash_hello(void **state)
{
	struct record_block	b;
	uint8_t			want[RECORD_HASH_LEN], got[RECORD_HASH_LEN];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.size = 5;
	hex_to_bytes("2cf24dba5fb0a30e26e83b2ac5b9e29e"
	    "1b161e5c1fa7425e73043362938b9824", b.hash, RECORD_HASH_LEN);
	b.weak_hash = 0x062c0215;
	hex_to_bytes("569714c5a4e0fb33bef532666b4a8129"
	    "b8a133cec82425585667fea89131ecea", want, RECORD_HASH_LEN);
	record_blocks_hash(&b, 1, got);
	assert_memory_equal(got, want, RECORD_HASH_LEN);
	/* The weak hash is part of the 1.x formula. */
	b.weak_hash = 0;
	record_blocks_hash(&b, 1, got);
	assert_memory_not_equal(got, want, RECORD_HASH_LEN);
}

static void
test_record_name_validate_table(void **state)
{
	static const struct {
		const char	*name;
		int		 ok;
	} t[] = {
		{ "a", 1 }, { "a/b", 1 }, { "a/b/c.txt", 1 }, { ".hidden", 1 },
		{ "a/.b", 1 }, { "..a", 1 }, { "a..", 1 }, { "a/...", 1 },
		{ "caf\xc3\xa9", 1 }, { "\xf0\x9f\x98\x80", 1 },
		{ "\xef\xbf\xbf", 1 }, { "\xf4\x8f\xbf\xbf", 1 },
		{ "", 0 }, { ".", 0 }, { "..", 0 }, { "/a", 0 }, { "a/", 0 },
		{ "a//b", 0 }, { "./a", 0 }, { "a/./b", 0 }, { "../a", 0 },
		{ "a/../b", 0 }, { "a/..", 0 }, { "a/.", 0 }, { "/", 0 },
		{ "\xff", 0 }, { "a\x80", 0 }, { "\xc3", 0 },
		{ "\xc0\xaf", 0 },		/* overlong '/' */
		{ "\xe0\x80\xaf", 0 },		/* overlong '/' */
		{ "\xf0\x80\x80\xaf", 0 },	/* overlong '/' */
		{ "\xed\xa0\x80", 0 },		/* surrogate U+D800 */
		{ "\xed\xbf\xbf", 0 },		/* surrogate U+DFFF */
		{ "\xf4\x90\x80\x80", 0 },	/* U+110000 */
		{ "\xf8\x88\x80\x80\x80", 0 },	/* 5-byte form */
	};
	char	*longname;
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].ok)
			assert_int_equal(record_name_validate(t[i].name,
			    strlen(t[i].name)), 0);
		else
			assert_int_equal(record_name_validate(t[i].name,
			    strlen(t[i].name)), SH_EPROTO);
	}
	/* An embedded NUL within len. */
	assert_int_equal(record_name_validate("a\0b", 3), SH_EPROTO);
	/* Length cap. */
	longname = xmalloc(RECORD_MAX_NAME_LEN + 2);
	memset(longname, 'x', RECORD_MAX_NAME_LEN + 1);
	longname[RECORD_MAX_NAME_LEN + 1] = '\0';
	assert_int_equal(record_name_validate(longname, RECORD_MAX_NAME_LEN),
	    0);
	assert_int_equal(record_name_validate(longname,
	    RECORD_MAX_NAME_LEN + 1), SH_EPROTO);
	free(longname);
}

static void
test_record_name_internal(void **state)
{
	static const char *const yes[] = {
		".stfolder", ".stignore", ".stversions", ".stfolder/x",
		".stversions/a/b~20240101-000000.txt",
		".syncthing.a.txt.tmp", "dir/.syncthing.a.txt.tmp",
		".shoal.a.tmp", "d/e/.shoal.x.tmp", "~syncthing~a.txt.tmp",
		"d/~syncthing~x", ".syncthing.x.tmp/child",
	};
	static const char *const no[] = {
		"a", ".stfolderx", "x/.stfolder", "d/.stignore",
		".stversionsx/a", ".syncthing.tmp", ".syncthing..tmp",
		".syncthing.a.txt", "a.syncthing.b.tmp", ".shoal.tmp",
		".shoal", "dir/x.tmp", "syncthing~a",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(record_name_internal(yes[i]));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(record_name_internal(no[i]));
}

static void
test_record_validate_rules(void **state)
{
	struct record	*r;

	(void)state;
	r = record_new();
	r->name = xstrdup("f");
	r->type = RECORD_TYPE_FILE;
	r->size = 200000;
	r->blocks = xcalloc(2, sizeof(*r->blocks));
	r->block_count = 2;
	r->blocks[0].size = 131072;
	r->blocks[1].offset = 131072;
	r->blocks[1].size = 200000 - 131072;
	assert_int_equal(record_validate(r), 0);
	/* Gap between blocks. */
	r->blocks[1].offset = 131073;
	assert_int_equal(record_validate(r), SH_EPROTO);
	r->blocks[1].offset = 131072;
	/* Sizes not summing to the file size. */
	r->size = 200001;
	assert_int_equal(record_validate(r), SH_EPROTO);
	r->size = 200000;
	/* A deleted entry carries no blocks. */
	r->deleted = true;
	assert_int_equal(record_validate(r), SH_EPROTO);
	r->deleted = false;
	/* A present valid file has at least one block. */
	free(r->blocks);
	r->blocks = NULL;
	r->block_count = 0;
	assert_int_equal(record_validate(r), SH_EPROTO);
	r->invalid = true;
	assert_int_equal(record_validate(r), 0);
	r->invalid = false;
	/* Empty file: one block of size 0. */
	r->size = 0;
	r->blocks = xcalloc(1, sizeof(*r->blocks));
	r->block_count = 1;
	assert_int_equal(record_validate(r), 0);
	/* Directory with blocks. */
	r->type = RECORD_TYPE_DIRECTORY;
	assert_int_equal(record_validate(r), SH_EPROTO);
	free(r->blocks);
	r->blocks = NULL;
	r->block_count = 0;
	assert_int_equal(record_validate(r), 0);
	/* Bad name, bad type. */
	free(r->name);
	r->name = xstrdup("a/../b");
	assert_int_equal(record_validate(r), SH_EPROTO);
	free(r->name);
	r->name = xstrdup("d");
	r->type = (enum record_type)2;
	assert_int_equal(record_validate(r), SH_EPROTO);
	record_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_dup_deep),
		cmocka_unit_test(test_record_vector_compare_orders),
		cmocka_unit_test(test_record_vector_compare_disjoint),
		cmocka_unit_test(test_record_vector_update_time),
		cmocka_unit_test(test_record_vector_merge),
		cmocka_unit_test(test_record_vector_validate),
		cmocka_unit_test(test_record_block_size_table),
		cmocka_unit_test(test_record_block_size_hysteresis),
		cmocka_unit_test(test_record_blocks_hash_hello),
		cmocka_unit_test(test_record_name_validate_table),
		cmocka_unit_test(test_record_name_internal),
		cmocka_unit_test(test_record_validate_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

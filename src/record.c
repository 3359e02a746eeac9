/* SPDX-License-Identifier: MIT */
/*
 * File records (BEP FileInfo), version vectors and the small pieces of
 * record arithmetic every other module needs: the version-vector algebra of
 * bep-brief §10.6, block size selection with hysteresis (§10.8), the 1.x
 * blocks_hash (§10.9), name validation (§10.1) and the test for Syncthing's
 * internal names (§10.1, §10.12). Everything here is pure computation on
 * plain data, safe on any thread.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "shoal/log.h"
#include "shoal/record.h"
#include "shoal/util.h"

/* Lifecycle */

struct record *
record_new(void)
{
	return xcalloc(1, sizeof(struct record));
}

void
record_clear(struct record *r)
{
	if (r == NULL)
		return;
	free(r->name);
	record_vector_free(&r->version);
	free(r->blocks);
	free(r->symlink_target);
	memset(r, 0, sizeof(*r));
}

void
record_free(struct record *r)
{
	if (r == NULL)
		return;
	record_clear(r);
	free(r);
}

struct record *
record_dup(const struct record *r)
{
	struct record	*d;

	d = record_new();
	*d = *r;
	/* The shallow copy above shares every owned pointer; replace each. */
	d->name = r->name != NULL ? xstrdup(r->name) : NULL;
	d->symlink_target = r->symlink_target != NULL ?
	    xstrdup(r->symlink_target) : NULL;
	d->version.counters = NULL;
	d->version.count = 0;
	record_vector_copy(&d->version, &r->version);
	d->blocks = NULL;
	d->block_count = 0;
	if (r->block_count > 0) {
		d->blocks = xreallocarray(NULL, r->block_count,
		    sizeof(*d->blocks));
		memcpy(d->blocks, r->blocks,
		    r->block_count * sizeof(*d->blocks));
		d->block_count = r->block_count;
	}
	return d;
}

/*
 * Structural checks on a record received from a peer or read back from
 * disk (bep-brief §10.2-§10.4): a valid name and vector, a known type, and
 * a block list that covers the file contiguously from offset 0. Contiguity
 * matters beyond tidiness: a block's size is fixed by its hash, so a list
 * with false offsets or sizes could otherwise pass for ours.
 */
int
record_validate(const struct record *r)
{
	const struct record_block	*b;
	int64_t				 off = 0;
	size_t				 i;
	int				 rc = SH_EPROTO;

	if (r->name == NULL ||
	    record_name_validate(r->name, strlen(r->name)) != 0)
		goto out;
	if (record_vector_validate(&r->version) != 0)
		goto out;
	if (r->type != RECORD_TYPE_FILE && r->type != RECORD_TYPE_DIRECTORY &&
	    r->type != RECORD_TYPE_SYMLINK)
		goto out;
	if (r->size < 0 || r->block_size < 0 ||
	    r->block_size > RECORD_MAX_BLOCK_SIZE)
		goto out;
	if (r->block_count > RECORD_MAX_BLOCKS ||
	    (r->block_count > 0 && r->blocks == NULL))
		goto out;
	/* Deleted entries, directories and symlinks carry no blocks. */
	if ((r->deleted || r->type != RECORD_TYPE_FILE) && r->block_count > 0)
		goto out;
	/* A present, valid file has at least one block (an empty file has
	 * exactly one of size 0). */
	if (r->type == RECORD_TYPE_FILE && !r->deleted && !r->invalid &&
	    r->block_count == 0)
		goto out;
	for (i = 0; i < r->block_count; i++) {
		b = &r->blocks[i];
		if (b->offset != off || b->size < 0 ||
		    b->size > RECORD_MAX_BLOCK_SIZE ||
		    (b->size == 0 && r->block_count != 1))
			goto out;
		off += b->size;
	}
	if (r->block_count > 0 && off != r->size)
		goto out;
	rc = 0;
out:
	return rc;
}

/* Version vectors */

void
record_vector_free(struct record_vector *v)
{
	free(v->counters);
	v->counters = NULL;
	v->count = 0;
}

void
record_vector_copy(struct record_vector *dst, const struct record_vector *src)
{
	struct record_counter	*c = NULL;

	if (dst == src)
		return;
	if (src->count > 0) {
		c = xreallocarray(NULL, src->count, sizeof(*c));
		memcpy(c, src->counters, src->count * sizeof(*c));
	}
	free(dst->counters);
	dst->counters = c;
	dst->count = src->count;
}

void
record_vector_update(struct record_vector *v, uint64_t short_id, int64_t now)
{
	uint64_t	unow = now > 0 ? (uint64_t)now : 0;
	size_t		i;

	for (i = 0; i < v->count && v->counters[i].id < short_id; i++)
		;
	if (i < v->count && v->counters[i].id == short_id) {
		/* Values are roughly timestamps so that they keep rising
		 * even after the index was lost and rebuilt (§10.6). A
		 * counter at UINT64_MAX stays there rather than wrapping. */
		if (v->counters[i].value < UINT64_MAX)
			v->counters[i].value++;
		if (v->counters[i].value < unow)
			v->counters[i].value = unow;
		return;
	}
	v->counters = xreallocarray(v->counters, v->count + 1,
	    sizeof(*v->counters));
	memmove(&v->counters[i + 1], &v->counters[i],
	    (v->count - i) * sizeof(*v->counters));
	v->counters[i].id = short_id;
	v->counters[i].value = unow > 1 ? unow : 1;
	v->count++;
}

void
record_vector_merge(struct record_vector *dst, const struct record_vector *src)
{
	struct record_counter	*out;
	size_t			 i = 0, j = 0, n = 0;

	if (src->count == 0 || dst == src)
		return;
	out = xreallocarray(NULL, dst->count + src->count, sizeof(*out));
	while (i < dst->count || j < src->count) {
		if (j == src->count || (i < dst->count &&
		    dst->counters[i].id < src->counters[j].id)) {
			out[n++] = dst->counters[i++];
		} else if (i == dst->count ||
		    src->counters[j].id < dst->counters[i].id) {
			out[n++] = src->counters[j++];
		} else {
			out[n] = dst->counters[i];
			if (src->counters[j].value > out[n].value)
				out[n].value = src->counters[j].value;
			n++;
			i++;
			j++;
		}
	}
	free(dst->counters);
	dst->counters = out;
	dst->count = n;
}

enum record_order
record_vector_compare(const struct record_vector *a,
    const struct record_vector *b)
{
	enum record_order	 result = RECORD_EQUAL;
	uint64_t		 av, bv;
	size_t			 i = 0, j = 0;

	/* Walk the sorted union in step; a missing counter is 0. */
	while (i < a->count || j < b->count) {
		if (j == b->count || (i < a->count &&
		    a->counters[i].id < b->counters[j].id)) {
			av = a->counters[i++].value;
			bv = 0;
		} else if (i == a->count ||
		    b->counters[j].id < a->counters[i].id) {
			av = 0;
			bv = b->counters[j++].value;
		} else {
			av = a->counters[i++].value;
			bv = b->counters[j++].value;
		}
		if (av > bv) {
			if (result == RECORD_LESSER)
				return RECORD_CONCURRENT_LESSER;
			result = RECORD_GREATER;
		} else if (av < bv) {
			if (result == RECORD_GREATER)
				return RECORD_CONCURRENT_GREATER;
			result = RECORD_LESSER;
		}
	}
	return result;
}

bool
record_vector_concurrent(const struct record_vector *a,
    const struct record_vector *b)
{
	enum record_order	o = record_vector_compare(a, b);

	return o == RECORD_CONCURRENT_GREATER || o == RECORD_CONCURRENT_LESSER;
}

bool
record_vector_greater_equal(const struct record_vector *a,
    const struct record_vector *b)
{
	enum record_order	o = record_vector_compare(a, b);

	return o == RECORD_GREATER || o == RECORD_EQUAL;
}

int
record_vector_validate(const struct record_vector *v)
{
	size_t	i;

	if (v->count > RECORD_MAX_COUNTERS ||
	    (v->count > 0 && v->counters == NULL))
		return SH_EPROTO;
	/* Strictly ascending ids: compare and merge rely on it (§10.6). */
	for (i = 1; i < v->count; i++)
		if (v->counters[i - 1].id >= v->counters[i].id)
			return SH_EPROTO;
	return 0;
}

const char *
record_order_name(enum record_order o)
{
	switch (o) {
	case RECORD_EQUAL:
		return "equal";
	case RECORD_GREATER:
		return "greater";
	case RECORD_LESSER:
		return "lesser";
	case RECORD_CONCURRENT_GREATER:
		return "concurrent-greater";
	case RECORD_CONCURRENT_LESSER:
		return "concurrent-lesser";
	}
	return "unknown";
}

/* Blocks */

static bool
valid_block_size(int32_t bs)
{
	int32_t	s;

	for (s = RECORD_MIN_BLOCK_SIZE; s <= RECORD_MAX_BLOCK_SIZE; s *= 2)
		if (s == bs)
			return true;
	return false;
}

int32_t
record_block_size(int64_t size, int32_t prev_block_size)
{
	int32_t	bs;

	/* The smallest size with fewer than 2000 blocks, else 16 MiB. */
	for (bs = RECORD_MIN_BLOCK_SIZE; bs < RECORD_MAX_BLOCK_SIZE; bs *= 2)
		if (size < 2000 * (int64_t)bs)
			break;
	/*
	 * Hysteresis (scanner/walk.go): a file growing or shrinking across a
	 * boundary keeps its block size while it is within a factor of two,
	 * so an append does not change every block hash. A previous size
	 * that is not one of the valid sizes (0 = none) is not kept.
	 */
	if (valid_block_size(prev_block_size) &&
	    ((bs >= prev_block_size && bs / prev_block_size <= 2) ||
	    (prev_block_size > bs && prev_block_size / bs <= 2)))
		bs = prev_block_size;
	return bs;
}

void
record_blocks_hash(const struct record_block *blocks, size_t count,
    uint8_t out[RECORD_HASH_LEN])
{
	EVP_MD_CTX	*ctx = NULL;
	uint8_t		 weak[4];
	unsigned int	 olen = 0;
	size_t		 i;
	bool		 ok = false;

	ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < count; i++) {
		weak[0] = (uint8_t)(blocks[i].weak_hash >> 24);
		weak[1] = (uint8_t)(blocks[i].weak_hash >> 16);
		weak[2] = (uint8_t)(blocks[i].weak_hash >> 8);
		weak[3] = (uint8_t)blocks[i].weak_hash;
		if (EVP_DigestUpdate(ctx, blocks[i].hash,
		    RECORD_HASH_LEN) != 1 ||
		    EVP_DigestUpdate(ctx, weak, sizeof(weak)) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, out, &olen) != 1 || olen != RECORD_HASH_LEN)
		goto out;
	ok = true;
out:
	/*
	 * EVP SHA-256 does not fail short of a broken libcrypto. The value is
	 * a shortcut peers recompute anyway (§10.9), so a zeroed hash costs
	 * at most a missed dedupe; log it rather than make every caller
	 * handle an error that cannot happen.
	 */
	if (!ok) {
		LOG_ERROR("record", "SHA-256 of a block list failed");
		memset(out, 0, RECORD_HASH_LEN);
	}
	EVP_MD_CTX_free(ctx);
}

/* Names */

/*
 * Length of the UTF-8 sequence at p (at most `left` bytes), or 0 if it is
 * not a valid, shortest-form encoding of a scalar value. Overlong forms,
 * surrogates (U+D800..U+DFFF) and values above U+10FFFF are rejected, as
 * Go's utf8.ValidString does.
 */
static size_t
utf8_seq_len(const unsigned char *p, size_t left)
{
	unsigned char	c = p[0];
	size_t		n, i;
	uint32_t	cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int
record_name_validate(const char *name, size_t len)
{
	const unsigned char	*p = (const unsigned char *)name;
	size_t			 i, n, start;

	if (name == NULL || len == 0 || len > RECORD_MAX_NAME_LEN)
		return SH_EPROTO;
	for (i = 0; i < len; i += n) {
		if (p[i] == '\0')
			return SH_EPROTO;
		n = utf8_seq_len(p + i, len - i);
		if (n == 0)
			return SH_EPROTO;
	}
	/*
	 * Canonical means path.Clean(name) == name (§10.1): every component
	 * is non-empty (no leading or trailing '/', no "//") and neither "."
	 * nor "..". That also rules out "", ".", ".." and "../x".
	 */
	start = 0;
	for (i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		n = i - start;
		if (n == 0 || (n == 1 && p[start] == '.') ||
		    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
			return SH_EPROTO;
		start = i + 1;
	}
	return 0;
}

static bool
has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t	plen = strlen(prefix);

	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/* `.syncthing.<x>.tmp` / `.shoal.<x>.tmp` with a non-empty <x>. */
static bool
temp_component(const char *s, size_t len, const char *prefix)
{
	size_t	plen = strlen(prefix);

	return len > plen + 4 && memcmp(s, prefix, plen) == 0 &&
	    memcmp(s + len - 4, ".tmp", 4) == 0;
}

bool
record_name_internal(const char *name)
{
	static const char *const	 root[] = {
		".stfolder", ".stignore", ".stversions"
	};
	const char			*c, *slash;
	size_t				 i, len, rlen;

	for (i = 0; i < sizeof(root) / sizeof(root[0]); i++) {
		rlen = strlen(root[i]);
		if (strncmp(name, root[i], rlen) == 0 &&
		    (name[rlen] == '\0' || name[rlen] == '/'))
			return true;
	}
	/*
	 * Temporary names may sit in any directory. Every component is
	 * checked, not only the last, so nothing below a temporary name can
	 * slip through either.
	 */
	for (c = name; *c != '\0'; c = slash + 1) {
		slash = strchr(c, '/');
		len = slash != NULL ? (size_t)(slash - c) : strlen(c);
		if (temp_component(c, len, ".syncthing.") ||
		    temp_component(c, len, ".shoal.") ||
		    has_prefix(c, len, "~syncthing~"))
			return true;
		if (slash == NULL)
			break;
	}
	return false;
}

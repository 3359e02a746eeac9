/* SPDX-License-Identifier: MIT */
/*
 * Block hashing for the scanner and the puller. SHA-256 comes from OpenSSL
 * libcrypto's EVP interface, which uses the CPU's SHA extensions where they
 * exist (several times faster than a portable implementation); TLS and
 * certificates stay on mbedTLS. Adler-32 is the "weak hash" of 1.x peers
 * (bep-brief §10.10). hash_file_work() runs on the libuv thread pool and
 * touches nothing but its arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <openssl/evp.h>

#include "shoal/hash.h"
#include "shoal/log.h"
#include "shoal/util.h"

/* Largest n such that 255n(n+1)/2 + (n+1)(BASE-1) fits in 32 bits (zlib). */
#define ADLER_BASE	65521u
#define ADLER_NMAX	5552

static pthread_once_t	 sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD		*sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/*
 * OpenSSL 3 looks the implementation up in its provider tables, under a
 * lock, on every init that names EVP_sha256(); the hash threads would meet
 * on that lock once per block. Fetch it once instead.
 */
static const EVP_MD *
sha256(void)
{
	if (pthread_once(&sha256_once, sha256_fetch) != 0 ||
	    sha256_md == NULL)
		return EVP_sha256();
	return sha256_md;
}

int
hash_sha256(const void *data, size_t len, uint8_t out[RECORD_HASH_LEN])
{
	unsigned int	 olen = 0;

	if (EVP_Digest(data, len, out, &olen, sha256(), NULL) != 1 ||
	    olen != RECORD_HASH_LEN)
		return SH_ECRYPTO;
	return 0;
}

#if defined(__SSE2__)
/*
 * 32 bytes per step with SSE2 (x86-64 baseline): byte sums with psadbw,
 * weighted sums with pmaddwd. For block j with `a` = a_j at its start,
 * b grows by 32 a_j + sum (32 - i) x_i, and a_j = a + the sums of the
 * blocks before j; v_ps accumulates those prefix sums. All partial sums are
 * parts of the byte loop's b, so NMAX keeps them in range.
 */

static void
adler_blocks(uint32_t *pa, uint32_t *pb, const uint8_t *p, size_t blocks)
{
	const __m128i	zero = _mm_setzero_si128();
	const __m128i	w1 = _mm_setr_epi16(32, 31, 30, 29, 28, 27, 26, 25);
	const __m128i	w2 = _mm_setr_epi16(24, 23, 22, 21, 20, 19, 18, 17);
	const __m128i	w3 = _mm_setr_epi16(16, 15, 14, 13, 12, 11, 10, 9);
	const __m128i	w4 = _mm_setr_epi16(8, 7, 6, 5, 4, 3, 2, 1);
	__m128i		ps = zero, s1 = zero, s2 = zero, x, y;
	uint32_t	l[4];
	uint64_t	a = *pa, b = *pb, sum_ps, sum_s1, sum_s2;
	size_t		n = blocks;

	while (n-- > 0) {
		x = _mm_loadu_si128((const __m128i *)(const void *)p);
		y = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
		ps = _mm_add_epi32(ps, s1);
		s1 = _mm_add_epi32(s1, _mm_sad_epu8(x, zero));
		s1 = _mm_add_epi32(s1, _mm_sad_epu8(y, zero));
		s2 = _mm_add_epi32(s2,
		    _mm_madd_epi16(_mm_unpacklo_epi8(x, zero), w1));
		s2 = _mm_add_epi32(s2,
		    _mm_madd_epi16(_mm_unpackhi_epi8(x, zero), w2));
		s2 = _mm_add_epi32(s2,
		    _mm_madd_epi16(_mm_unpacklo_epi8(y, zero), w3));
		s2 = _mm_add_epi32(s2,
		    _mm_madd_epi16(_mm_unpackhi_epi8(y, zero), w4));
		p += 32;
	}
	_mm_storeu_si128((__m128i *)(void *)l, ps);
	sum_ps = (uint64_t)l[0] + l[1] + l[2] + l[3];
	_mm_storeu_si128((__m128i *)(void *)l, s1);
	sum_s1 = (uint64_t)l[0] + l[1] + l[2] + l[3];
	_mm_storeu_si128((__m128i *)(void *)l, s2);
	sum_s2 = (uint64_t)l[0] + l[1] + l[2] + l[3];
	b += 32 * a * blocks + 32 * sum_ps + sum_s2;
	a += sum_s1;
	*pa = (uint32_t)(a % ADLER_BASE);
	*pb = (uint32_t)(b % ADLER_BASE);
}
#else
static void
adler_blocks(uint32_t *pa, uint32_t *pb, const uint8_t *p, size_t blocks)
{
	uint32_t	a = *pa, b = *pb;
	size_t		n = blocks * 32;

	while (n-- > 0) {
		a += *p++;
		b += a;
	}
	*pa = a % ADLER_BASE;
	*pb = b % ADLER_BASE;
}
#endif

uint32_t
hash_adler32(const void *data, size_t len)
{
	const uint8_t	*p = data;
	uint32_t	 a = 1, b = 0;
	size_t		 n, blocks;

	/* Reduce modulo BASE only every NMAX bytes, as zlib does. */
	while (len > 0) {
		n = len < ADLER_NMAX ? len : ADLER_NMAX;
		len -= n;
		blocks = n / 32;
		if (blocks > 0) {
			adler_blocks(&a, &b, p, blocks);
			p += blocks * 32;
			n -= blocks * 32;
		}
		while (n-- > 0) {
			a += *p++;
			b += a;
		}
		a %= ADLER_BASE;
		b %= ADLER_BASE;
	}
	return (b << 16) | a;
}

size_t
hash_block_count(int64_t size, int32_t block_size)
{
	size_t	n;

	if (size < 0 || block_size < RECORD_MIN_BLOCK_SIZE ||
	    block_size > RECORD_MAX_BLOCK_SIZE)
		return 0;
	n = size == 0 ? 1 : (size_t)((size + block_size - 1) / block_size);
	return n > RECORD_MAX_BLOCKS ? 0 : n;
}

/* Number of blocks of a file: 0, -EINVAL (bad size or block size) or
 * -EFBIG (too many blocks). */
static int
block_geometry(int64_t size, int32_t block_size, size_t *n)
{
	if (size < 0 || block_size < RECORD_MIN_BLOCK_SIZE ||
	    block_size > RECORD_MAX_BLOCK_SIZE)
		return -EINVAL;
	*n = hash_block_count(size, block_size);
	return *n == 0 ? -EFBIG : 0;
}

int
hash_blocks_work(int fd, int64_t size, int32_t block_size, size_t first,
    size_t count, struct record_block *bl, const volatile int *cancel,
    uint64_t *progress)
{
	EVP_MD_CTX	*ctx = NULL;
	uint8_t		*buf = NULL;
	size_t		 n, i, bufsize;
	int64_t		 off;
	ssize_t		 got;
	unsigned int	 olen;
	int		 rc;

	rc = block_geometry(size, block_size, &n);
	if (rc != 0)
		goto out;
	if (first > n || count > n - first) {
		rc = -EINVAL;
		goto out;
	}
	if (count == 0) {
		rc = 0;
		goto out;
	}
	if (size == 0) {
		/* An empty file has exactly one empty block (§10.2). */
		rc = hash_sha256("", 0, bl[0].hash);
		if (rc != 0)
			goto out;
		bl[0].offset = 0;
		bl[0].size = 0;
		bl[0].weak_hash = hash_adler32("", 0);
		goto out;
	}

	off = (int64_t)first * block_size;
	/* Sequential read-ahead helps cold caches; failure is harmless. */
	(void)posix_fadvise(fd, (off_t)off, (off_t)((int64_t)count *
	    block_size), POSIX_FADV_SEQUENTIAL);
	/* Small files get a small buffer: no 128 KiB allocation per file. */
	bufsize = (size_t)(size - off < block_size ? size - off : block_size);
	buf = xmalloc(bufsize);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		rc = SH_ECRYPTO;
		goto out;
	}
	for (i = first; i < first + count; i++, off += block_size) {
		size_t	 want = (size_t)(size - off < block_size ?
		    size - off : block_size);

		if (cancel != NULL && *cancel) {
			rc = -ECANCELED;
			goto out;
		}
		got = util_pread_full(fd, buf, want, (off_t)off);
		if (got < 0) {
			rc = (int)got;
			goto out;
		}
		if ((size_t)got != want) {
			/* Truncated since it was stat'ed: the caller retries. */
			rc = SH_ECONFLICT;
			goto out;
		}
		if (EVP_DigestInit_ex(ctx, sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(ctx, buf, want) != 1 ||
		    EVP_DigestFinal_ex(ctx, bl[i].hash, &olen) != 1 ||
		    olen != RECORD_HASH_LEN) {
			rc = SH_ECRYPTO;
			goto out;
		}
		bl[i].offset = off;
		bl[i].size = (int32_t)want;
		bl[i].weak_hash = hash_adler32(buf, want);
		if (progress != NULL)
			__atomic_fetch_add(progress, (uint64_t)want,
			    __ATOMIC_RELAXED);
	}
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

int
hash_file_work(int fd, int64_t size, int32_t block_size,
    struct record_block **blocks, size_t *count, const volatile int *cancel,
    uint64_t *progress)
{
	struct record_block	*bl = NULL;
	size_t			 n;
	int			 rc;

	*blocks = NULL;
	*count = 0;
	rc = block_geometry(size, block_size, &n);
	if (rc != 0)
		goto out;
	bl = xcalloc(n, sizeof(*bl));
	rc = hash_blocks_work(fd, size, block_size, 0, n, bl, cancel,
	    progress);
	if (rc != 0)
		goto out;
	*blocks = bl;
	*count = n;
	bl = NULL;
out:
	free(bl);
	return rc;
}

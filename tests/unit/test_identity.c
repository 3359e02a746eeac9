/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for identity.c: the device ID codec against the vectors of
 * bep-brief §3 (Syncthing's own test vectors and a certificate made by
 * Debian's syncthing), and certificate generation and loading in a
 * temporary home directory.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/version.h>
#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>

#include "shoal/identity.h"
#include "shoal/util.h"

/* bep-brief §3.5 example 1 (Syncthing deviceid_test.go). */
static const uint8_t ex1_raw[IDENTITY_ID_LEN] = {
	0x7f, 0x7c, 0x87, 0x23, 0xec, 0xca, 0x5b, 0x4d,
	0x22, 0x06, 0x1c, 0x49, 0x81, 0xb3, 0x4c, 0x34,
	0xd8, 0x65, 0xec, 0x37, 0x6b, 0xe1, 0xeb, 0x74,
	0x33, 0x08, 0x73, 0xc9, 0xa6, 0xf9, 0xb2, 0x05
};
static const char ex1_id[] =
    "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

/* Example 3: a certificate made by Debian's `syncthing generate`. */
static const char ex3_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICHTCCAaKgAwIBAgIIQipJGJR1Y/EwCgYIKoZIzj0EAwIwSjESMBAGA1UEChMJ\n"
    "U3luY3RoaW5nMSAwHgYDVQQLExdBdXRvbWF0aWNhbGx5IEdlbmVyYXRlZDESMBAG\n"
    "A1UEAxMJc3luY3RoaW5nMB4XDTI2MTEyODAwMDAwMFoXDTQ2MTEyMzAwMDAwMFow\n"
    "SjESMBAGA1UEChMJU3luY3RoaW5nMSAwHgYDVQQLExdBdXRvbWF0aWNhbGx5IEdl\n"
    "bmVyYXRlZDESMBAGA1UEAxMJc3luY3RoaW5nMHYwEAYHKoZIzj0CAQYFK4EEACID\n"
    "YgAEz2GmmvZcKhNIB7lnETe1PjnaQ8L6OpgfO5/jxCVi3bYb46xZJaGkkQiW1XAD\n"
    "PyfWVwpJ32FxJsuRSEQzaVAdISOo4aa0QU8j8L/1h67gpkkhxGb4AUEMB2skkv35\n"
    "XEzAo1UwUzAOBgNVHQ8BAf8EBAMCBaAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsG\n"
    "AQUFBwMCMAwGA1UdEwEB/wQCMAAwFAYDVR0RBA0wC4IJc3luY3RoaW5nMAoGCCqG\n"
    "SM49BAMCA2kAMGYCMQDX9mhVmWO7qkWZFovOIkikzseL954nGsjuV1QYg2OMAV/O\n"
    "wSDLeTDhoLECRMqQ5oYCMQDKKHIBr3fxlUN2q4E/ahMP2SmQX4R00UlPLbaeVO2e\n"
    "1WloCOQ8EiHaZk/a8F4uMg8=\n"
    "-----END CERTIFICATE-----\n";

/* Whole extensions (OID, critical flag, value) as Syncthing encodes them. */
static const uint8_t der_ku_critical[] = {
	0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff,
	0x04, 0x04, 0x03, 0x02, 0x05, 0xa0
};
static const uint8_t der_bc_critical[] = {
	0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff,
	0x04, 0x02, 0x30, 0x00
};
static const uint8_t der_eku[] = {
	0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x16,
	0x30, 0x14,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02
};
static const uint8_t der_san[] = {
	0x30, 0x14, 0x06, 0x03, 0x55, 0x1d, 0x11, 0x04, 0x0d,
	0x30, 0x0b, 0x82, 0x09, 's', 'y', 'n', 'c', 't', 'h', 'i', 'n', 'g'
};

static void
hex_to_raw(const char *hex, uint8_t *out, size_t len)
{
	size_t		i;
	unsigned int	v;

	assert_int_equal(strlen(hex), len * 2);
	for (i = 0; i < len; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static bool
contains(const uint8_t *hay, size_t hay_len, const uint8_t *needle,
    size_t needle_len)
{
	return memmem(hay, hay_len, needle, needle_len) != NULL;
}

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* namedCurve secp384r1 (RFC 5480) in a SubjectPublicKeyInfo: 3.x keeps
 * the parsed key's group private. */
static const uint8_t der_secp384r1[] = {
	0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22
};

/* 3.x's mbedtls_pk_check_pair() needs an RNG (ECC blinding). */
static int
test_rng(void *ctx, unsigned char *out, size_t len)
{
	(void)ctx;
	randombytes_buf(out, len);
	return 0;
}
#endif

/* The signature value; 3.x keeps crt->sig private, so there it is read
 * from the DER after tbsCertificate and signatureAlgorithm. */
static void
crt_signature(const mbedtls_x509_crt *crt, const unsigned char **sig,
    size_t *len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	unsigned char		*p = crt->tbs.p + crt->tbs.len;
	const unsigned char	*end = crt->raw.p + crt->raw.len;
	size_t			 alg_len;

	assert_int_equal(mbedtls_asn1_get_tag(&p, end, &alg_len,
	    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE), 0);
	p += alg_len;
	assert_int_equal(mbedtls_asn1_get_bitstring_null(&p, end, len), 0);
	*sig = p;
#else
	*sig = crt->sig.p;
	*len = crt->sig.len;
#endif
}

static char *
make_tmpdir(void)
{
	char	*dir = xstrdup("/tmp/shoal-test-identity.XXXXXX");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
remove_tmpdir(char *dir)
{
	char	*p;

	p = util_path_join(dir, IDENTITY_KEY_FILE);
	(void)unlink(p);
	free(p);
	p = util_path_join(dir, IDENTITY_CERT_FILE);
	(void)unlink(p);
	free(p);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static char *
read_in(const char *dir, const char *name, size_t *len)
{
	char	*p, *data = NULL;

	p = util_path_join(dir, name);
	assert_int_equal(util_read_file(p, 1 << 20, &data, len), 0);
	free(p);
	return data;
}

static void
write_in(const char *dir, const char *name, const char *data, size_t len)
{
	char	*p;

	p = util_path_join(dir, name);
	assert_int_equal(util_write_file_atomic(p, data, len, 0600), 0);
	free(p);
}

static void
test_identity_luhn32_vectors(void **state)
{
	(void)state;
	/* Syncthing luhn_test.go: the check character of all 18 chars. */
	assert_int_equal(identity_luhn32("AB725E4GHIQPL3ZFGT", 18), 'G');
	/* ... and '1' is not in the alphabet. */
	assert_int_equal(identity_luhn32("3734EJEKMRHWPZQTWYQ1", 20), 0);
	/* bep-brief §3.5, the worked table: first group of example 1. */
	assert_int_equal(identity_luhn32("P56IOI7MZJNU2", 13), 'Y');
	/* The other three check characters of example 1. */
	assert_int_equal(identity_luhn32("IQGDREYDM2MGT", 13), 'I');
	assert_int_equal(identity_luhn32("MGL3BXNPQ6W5B", 13), 'M');
	assert_int_equal(identity_luhn32("TBBZ4TJXZWICQ", 13), '2');
	/* Lower case is not in the alphabet either (parse upper-cases). */
	assert_int_equal(identity_luhn32("p56IOI7MZJNU2", 13), 0);
}

static void
test_identity_format_example1(void **state)
{
	struct device_id	id;
	char			s[IDENTITY_ID_STR_SIZE];
	char			sh[IDENTITY_SHORT_STR_SIZE];

	(void)state;
	memcpy(id.raw, ex1_raw, sizeof(id.raw));
	identity_id_format(&id, s);
	assert_string_equal(s, ex1_id);
	assert_int_equal(strlen(s), 63);
	assert_true(identity_short_id(&id) == UINT64_C(0x7f7c8723ecca5b4d));
	assert_true(identity_short_id(&id) == UINT64_C(9186365928295258957));
	identity_short_format(identity_short_id(&id), sh);
	assert_string_equal(sh, "P56IOI7");
}

static void
test_identity_format_example2(void **state)
{
	struct device_id	id, back;
	char			s[IDENTITY_ID_STR_SIZE];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(id.raw); i += 4)
		memcpy(id.raw + i, "asdl", 4);
	identity_id_format(&id, s);
	assert_string_equal(s,
	    "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD");
	assert_int_equal(identity_id_parse(s, &back, NULL, 0), 0);
	assert_true(identity_id_equal(&id, &back));
}

static void
test_identity_cert_example3(void **state)
{
	mbedtls_x509_crt	crt;
	struct device_id	id, want;
	char			s[IDENTITY_ID_STR_SIZE];

	(void)state;
	mbedtls_x509_crt_init(&crt);
	assert_int_equal(mbedtls_x509_crt_parse(&crt,
	    (const unsigned char *)ex3_pem, sizeof(ex3_pem)), 0);
	identity_id_from_der(crt.raw.p, crt.raw.len, &id);
	hex_to_raw("5a7ed323f3dd298f610fe801853e8335"
	    "ad3dbabd41d5040669acec2f2b883458", want.raw, sizeof(want.raw));
	assert_memory_equal(id.raw, want.raw, sizeof(id.raw));
	identity_id_format(&id, s);
	assert_string_equal(s,
	    "LJ7NGI7-T3UUY6H-YIP5AAY-KPUDGWF-WT3OV5I-HKQIBT6-JVTWC6K-4IGRMAN");
	assert_true(identity_short_id(&id) == UINT64_C(0x5a7ed323f3dd298f));

	/* Our hand-encoded extensions are byte for byte Syncthing's. */
	assert_true(contains(crt.raw.p, crt.raw.len, der_ku_critical,
	    sizeof(der_ku_critical)));
	assert_true(contains(crt.raw.p, crt.raw.len, der_bc_critical,
	    sizeof(der_bc_critical)));
	assert_true(contains(crt.raw.p, crt.raw.len, der_eku,
	    sizeof(der_eku)));
	assert_true(contains(crt.raw.p, crt.raw.len, der_san,
	    sizeof(der_san)));
	mbedtls_x509_crt_free(&crt);
}

static void
test_identity_parse_accepted_spellings(void **state)
{
	static const char *const spellings[] = {
		ex1_id,
		"P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2",
		/* Lower case with the look-alikes 0->O, 1->I, 8->B. */
		"p561017mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmt88z4tjxzwicq2",
		/* 52-character legacy form without check characters. */
		"P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ",
		"P56IOI7 MZJNU2Y IQGDREY DM2MGTI MGL3BXN PQ6W5BM TBBZ4TJ XZWICQ2",
		"p56ioi7-mzjnu2y-iqgdrey-dm2mgti-mgl3bxn-pq6w5bm-tbbz4tj-xzwicq2",
		"P56IOI7MZJNU2IQGDREYDM2MGTMGL3BXNPQ6W5BTBBZ4TJXZWICQ====",
	};
	struct device_id	id;
	char			err[256];
	char			s[IDENTITY_ID_STR_SIZE];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		memset(&id, 0xaa, sizeof(id));
		assert_int_equal(identity_id_parse(spellings[i], &id, err,
		    sizeof(err)), 0);
		assert_memory_equal(id.raw, ex1_raw, sizeof(id.raw));
		identity_id_format(&id, s);
		assert_string_equal(s, ex1_id);
	}
}

static void
test_identity_parse_wrong_check_char(void **state)
{
	struct device_id	id;
	char			err[256];

	(void)state;
	/* Second check character changed from 'I' to 'J'. */
	assert_int_equal(identity_id_parse(
	    "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTJ-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
	    &id, err, sizeof(err)), SH_EPARSE);
	assert_string_equal(err, "device ID \"P56IOI7-MZJNU2Y-IQGDREY-"
	    "DM2MGTJ-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2\": check character 2 is "
	    "'J', expected 'I'");
	assert_true(identity_id_is_zero(&id));

	/* A changed data character is caught by its group's check char. */
	assert_int_equal(identity_id_parse(
	    "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICR2",
	    &id, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, "check character 4 is '2', expected"));
}

static void
test_identity_parse_wrong_length(void **state)
{
	struct device_id	id;
	char			err[256];

	(void)state;
	assert_int_equal(identity_id_parse("ABC", &id, err, sizeof(err)),
	    SH_EPARSE);
	assert_string_equal(err,
	    "device ID \"ABC\": wrong length 3 (want 56 or 52 characters)");
	/* 55 and 57 characters. */
	assert_int_equal(identity_id_parse(
	    "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ",
	    &id, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, "wrong length 55"));
	assert_int_equal(identity_id_parse(
	    "P56IOI7MZJNU2YIQGDREYDM2MGTIMGL3BXNPQ6W5BMTBBZ4TJXZWICQ2A",
	    &id, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, "wrong length 57"));
	/* err may be NULL. */
	assert_int_equal(identity_id_parse("ABC", &id, NULL, 0), SH_EPARSE);
}

static void
test_identity_parse_invalid_char(void **state)
{
	struct device_id	id;
	char			err[256];

	(void)state;
	/* '9' has no look-alike mapping. */
	assert_int_equal(identity_id_parse(
	    "P56IOI9-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2",
	    &id, err, sizeof(err)), SH_EPARSE);
	assert_string_equal(err, "device ID \"P56IOI9-MZJNU2Y-IQGDREY-"
	    "DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2\": invalid character '9' "
	    "at position 7");
	assert_int_equal(identity_id_parse("AB!", &id, err, sizeof(err)),
	    SH_EPARSE);
	assert_string_equal(err,
	    "device ID \"AB!\": invalid character '!' at position 3");
	/* Control characters are escaped in the message. */
	assert_int_equal(identity_id_parse("A\tB", &id, err, sizeof(err)),
	    SH_EPARSE);
	assert_string_equal(err,
	    "device ID \"A\\x09B\": invalid character 0x09 at position 2");
	assert_null(strchr(err, '\n'));
}

static void
test_identity_zero_id(void **state)
{
	struct device_id	id, zero;
	char			s[IDENTITY_ID_STR_SIZE];
	char			sh[IDENTITY_SHORT_STR_SIZE];

	(void)state;
	memset(&zero, 0, sizeof(zero));
	assert_true(identity_id_is_zero(&zero));
	identity_id_format(&zero, s);
	assert_string_equal(s, "");
	memset(&id, 0xaa, sizeof(id));
	assert_false(identity_id_is_zero(&id));
	assert_int_equal(identity_id_parse("", &id, NULL, 0), 0);
	assert_true(identity_id_is_zero(&id));
	assert_true(identity_id_equal(&id, &zero));
	identity_short_format(0, sh);
	assert_string_equal(sh, "");
	assert_true(identity_short_id(&zero) == 0);
}

static void
test_identity_short_format(void **state)
{
	char	sh[IDENTITY_SHORT_STR_SIZE];

	(void)state;
	identity_short_format(UINT64_C(0x7f7c8723ecca5b4d), sh);
	assert_string_equal(sh, "P56IOI7");
	identity_short_format(UINT64_C(0x5a7ed323f3dd298f), sh);
	assert_string_equal(sh, "LJ7NGI7");
	/* Only the first 35 bits show. */
	identity_short_format(UINT64_C(0x7f7c8723e0000000), sh);
	assert_string_equal(sh, "P56IOI7");
}

static void
test_identity_parse_roundtrip(void **state)
{
	struct device_id	id, back;
	char			s[IDENTITY_ID_STR_SIZE];
	unsigned int		seed = 12345;
	int			n;
	size_t			i;

	(void)state;
	for (n = 0; n < 200; n++) {
		for (i = 0; i < sizeof(id.raw); i++) {
			seed = seed * 1103515245u + 12345u;
			id.raw[i] = (uint8_t)(seed >> 16);
		}
		id.raw[0] |= 1;
		identity_id_format(&id, s);
		assert_int_equal(strlen(s), 63);
		assert_int_equal(identity_id_parse(s, &back, NULL, 0), 0);
		assert_true(identity_id_equal(&id, &back));
	}
}

static void
test_identity_generate_load(void **state)
{
	struct identity		*a = NULL, *b = NULL;
	mbedtls_x509_crt	*crt;
	mbedtls_pk_context	*key;
	const mbedtls_x509_sequence *seq;
	struct device_id	 h;
	struct stat		 st;
	struct tm		 tm_from, tm_to;
	char			*dir, *path, *pem;
	char			 dn[256];
	const uint8_t		*der;
	const unsigned char	*sig;
	size_t			 der_len, pem_len, sig_len;
	int			 san_count = 0;
	time_t			 from, to;

	(void)state;
	dir = make_tmpdir();
	assert_int_equal(identity_generate(dir), 0);

	path = util_path_join(dir, IDENTITY_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(path);
	path = util_path_join(dir, IDENTITY_CERT_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	free(path);
	pem = read_in(dir, IDENTITY_KEY_FILE, &pem_len);
	assert_true(strncmp(pem, "-----BEGIN EC PRIVATE KEY-----\n", 31) == 0);
	free(pem);
	pem = read_in(dir, IDENTITY_CERT_FILE, &pem_len);
	assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	free(pem);

	assert_int_equal(identity_load(dir, &a), 0);
	crt = identity_mbedtls_cert(a);
	key = identity_mbedtls_key(a);
	assert_non_null(crt);
	assert_non_null(key);
	assert_null(crt->next);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	assert_int_equal(mbedtls_pk_check_pair(&crt->pk, key, test_rng, NULL),
	    0);
#else
	assert_int_equal(mbedtls_pk_check_pair(&crt->pk, key), 0);
#endif

	/* ECDSA P-384, ecdsa-with-SHA256, version 3. */
	assert_true(mbedtls_pk_can_do(&crt->pk, MBEDTLS_PK_ECDSA));
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	assert_true(contains(crt->pk_raw.p, crt->pk_raw.len, der_secp384r1,
	    sizeof(der_secp384r1)));
#else
	assert_int_equal(mbedtls_pk_ec(crt->pk)->grp.id,
	    MBEDTLS_ECP_DP_SECP384R1);
#endif
	assert_int_equal(crt->sig_oid.len,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256));
	assert_memory_equal(crt->sig_oid.p, MBEDTLS_OID_ECDSA_SHA256,
	    crt->sig_oid.len);
	assert_int_equal(crt->version, 3);

	/* Subject = issuer, in Syncthing's order. */
	assert_true(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt->subject) > 0);
	assert_string_equal(dn,
	    "O=Syncthing, OU=Automatically Generated, CN=syncthing");
	assert_true(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt->issuer) > 0);
	assert_string_equal(dn,
	    "O=Syncthing, OU=Automatically Generated, CN=syncthing");

	/* Exactly one SAN, DNS:syncthing. */
	for (seq = &crt->subject_alt_names; seq != NULL && seq->buf.p != NULL;
	    seq = seq->next) {
		assert_int_equal(seq->buf.tag,
		    MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2);
		assert_int_equal(seq->buf.len, 9);
		assert_memory_equal(seq->buf.p, "syncthing", 9);
		san_count++;
	}
	assert_int_equal(san_count, 1);

	/* EKU serverAuth + clientAuth; KU; critical flags from the DER. */
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(crt,
	    MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(crt,
	    MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
	    0);
	assert_int_equal(mbedtls_x509_crt_check_key_usage(crt,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT),
	    0);
	assert_int_not_equal(mbedtls_x509_crt_check_key_usage(crt,
	    MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
	assert_true(contains(crt->raw.p, crt->raw.len, der_ku_critical,
	    sizeof(der_ku_critical)));
	assert_true(contains(crt->raw.p, crt->raw.len, der_bc_critical,
	    sizeof(der_bc_critical)));
	assert_true(contains(crt->raw.p, crt->raw.len, der_eku,
	    sizeof(der_eku)));
	assert_true(contains(crt->raw.p, crt->raw.len, der_san,
	    sizeof(der_san)));
	/* 3.0-3.5 have no accessor; der_bc_critical shows cA is absent. */
#if MBEDTLS_VERSION_NUMBER >= 0x03060000
	assert_int_equal(mbedtls_x509_crt_get_ca_istrue(crt), 0);
#elif MBEDTLS_VERSION_NUMBER < 0x03000000
	assert_int_equal(crt->ca_istrue, 0);
#endif

	/* Serial: positive, at most 64 bits, not zero. */
	assert_true(crt->serial.len >= 1 && crt->serial.len <= 8);
	assert_int_equal(crt->serial.p[0] & 0x80, 0);
	assert_true(crt->serial.len > 1 || crt->serial.p[0] != 0);

	/* Validity: today 00:00:00 UTC, plus 7300 days. */
	memset(&tm_from, 0, sizeof(tm_from));
	memset(&tm_to, 0, sizeof(tm_to));
	tm_from.tm_year = crt->valid_from.year - 1900;
	tm_from.tm_mon = crt->valid_from.mon - 1;
	tm_from.tm_mday = crt->valid_from.day;
	tm_to.tm_year = crt->valid_to.year - 1900;
	tm_to.tm_mon = crt->valid_to.mon - 1;
	tm_to.tm_mday = crt->valid_to.day;
	assert_int_equal(crt->valid_from.hour, 0);
	assert_int_equal(crt->valid_from.min, 0);
	assert_int_equal(crt->valid_from.sec, 0);
	assert_int_equal(crt->valid_to.hour, 0);
	from = timegm(&tm_from);
	to = timegm(&tm_to);
	assert_true(to - from == (time_t)7300 * 86400);
	assert_true(time(NULL) - from >= 0 && time(NULL) - from < 2 * 86400);

	/* Self-signed: the signature verifies with the certificate's key. */
	identity_id_from_der(crt->tbs.p, crt->tbs.len, &h);
	crt_signature(crt, &sig, &sig_len);
	assert_int_equal(mbedtls_pk_verify(&crt->pk, MBEDTLS_MD_SHA256, h.raw,
	    sizeof(h.raw), sig, sig_len), 0);

	/* The device ID is the SHA-256 of the DER, and stable across loads. */
	der = identity_cert_der(a, &der_len);
	assert_ptr_equal(der, crt->raw.p);
	assert_int_equal(der_len, crt->raw.len);
	identity_id_from_der(der, der_len, &h);
	assert_true(identity_id_equal(&h, identity_device_id(a)));
	assert_false(identity_id_is_zero(identity_device_id(a)));
	assert_int_equal(identity_load(dir, &b), 0);
	assert_true(identity_id_equal(identity_device_id(a),
	    identity_device_id(b)));

	identity_free(a);
	identity_free(b);
	identity_free(NULL);
	remove_tmpdir(dir);
}

static void
test_identity_generate_refuses_overwrite(void **state)
{
	struct identity	*a = NULL, *b = NULL;
	char		*dir, *key1, *cert1, *key2, *cert2, *path;
	size_t		 klen1, clen1, klen2, clen2;
	struct stat	 st;

	(void)state;
	dir = make_tmpdir();
	assert_int_equal(identity_generate(dir), 0);
	assert_int_equal(identity_load(dir, &a), 0);
	key1 = read_in(dir, IDENTITY_KEY_FILE, &klen1);
	cert1 = read_in(dir, IDENTITY_CERT_FILE, &clen1);

	assert_int_equal(identity_generate(dir), SH_EEXIST);
	key2 = read_in(dir, IDENTITY_KEY_FILE, &klen2);
	cert2 = read_in(dir, IDENTITY_CERT_FILE, &clen2);
	assert_int_equal(klen1, klen2);
	assert_int_equal(clen1, clen2);
	assert_memory_equal(key1, key2, klen1);
	assert_memory_equal(cert1, cert2, clen1);
	assert_int_equal(identity_load(dir, &b), 0);
	assert_true(identity_id_equal(identity_device_id(a),
	    identity_device_id(b)));
	identity_free(b);
	b = NULL;

	/* Either file alone is enough to refuse; nothing is created. */
	path = util_path_join(dir, IDENTITY_KEY_FILE);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(identity_generate(dir), SH_EEXIST);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	free(path);
	write_in(dir, IDENTITY_KEY_FILE, key1, klen1);
	path = util_path_join(dir, IDENTITY_CERT_FILE);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(identity_generate(dir), SH_EEXIST);
	assert_int_equal(stat(path, &st), -1);
	free(path);

	free(key1);
	free(cert1);
	free(key2);
	free(cert2);
	identity_free(a);
	remove_tmpdir(dir);
}

static void
test_identity_load_errors(void **state)
{
	struct identity	*id = NULL;
	const char	*bad;
	char		*d1, *d2, *key2, *cert1, *two;
	size_t		 klen, clen;

	(void)state;
	d1 = make_tmpdir();
	d2 = make_tmpdir();

	/* Nothing there. */
	assert_int_equal(identity_load(d1, &id), -ENOENT);
	assert_null(id);

	/* A key that belongs to another certificate. */
	assert_int_equal(identity_generate(d1), 0);
	assert_int_equal(identity_generate(d2), 0);
	key2 = read_in(d2, IDENTITY_KEY_FILE, &klen);
	cert1 = read_in(d1, IDENTITY_CERT_FILE, &clen);
	write_in(d1, IDENTITY_KEY_FILE, key2, klen);
	assert_int_equal(identity_load(d1, &id), SH_ETLS);
	assert_null(id);

	/* Garbage key and garbage certificate. */
	write_in(d2, IDENTITY_KEY_FILE, "not a key\n", 10);
	assert_int_equal(identity_load(d2, &id), SH_ETLS);
	write_in(d2, IDENTITY_KEY_FILE, key2, klen);
	assert_int_equal(identity_load(d2, &id), 0);
	identity_free(id);
	id = NULL;
	bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	write_in(d2, IDENTITY_CERT_FILE, bad, strlen(bad));
	assert_int_equal(identity_load(d2, &id), SH_ETLS);
	write_in(d2, IDENTITY_CERT_FILE, "", 0);
	assert_int_equal(identity_load(d2, &id), SH_ETLS);

	/* Two certificates in cert.pem: peers refuse a chain. */
	two = xasprintf("%s%s", cert1, ex3_pem);
	write_in(d2, IDENTITY_CERT_FILE, two, strlen(two));
	assert_int_equal(identity_load(d2, &id), SH_ETLS);
	assert_null(id);

	free(two);
	free(key2);
	free(cert1);
	remove_tmpdir(d1);
	remove_tmpdir(d2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_luhn32_vectors),
		cmocka_unit_test(test_identity_format_example1),
		cmocka_unit_test(test_identity_format_example2),
		cmocka_unit_test(test_identity_cert_example3),
		cmocka_unit_test(test_identity_parse_accepted_spellings),
		cmocka_unit_test(test_identity_parse_wrong_check_char),
		cmocka_unit_test(test_identity_parse_wrong_length),
		cmocka_unit_test(test_identity_parse_invalid_char),
		cmocka_unit_test(test_identity_zero_id),
		cmocka_unit_test(test_identity_short_format),
		cmocka_unit_test(test_identity_parse_roundtrip),
		cmocka_unit_test(test_identity_generate_load),
		cmocka_unit_test(test_identity_generate_refuses_overwrite),
		cmocka_unit_test(test_identity_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

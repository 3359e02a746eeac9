/* SPDX-License-Identifier: MIT */
/*
 * This device's identity and the device ID codec.
 *
 * The identity is a self-signed ECDSA P-384 certificate and its key, made
 * with mbedTLS in the shape Syncthing's own generator uses (bep-brief §2.3,
 * §2.2a), stored as cert.pem and key.pem in the home directory. Peers know
 * us only by the SHA-256 of that certificate's DER (the device ID, §2.4),
 * so the files are never overwritten once they exist.
 *
 * Device IDs are formatted and parsed exactly as Syncthing does (§3):
 * base32, one Luhn-mod-32 check character per 13-character group, dashes
 * every 7 characters. This module has no mbedTLS version gate of its own:
 * the ones it needs are the tls_compat_* helpers at the end of tls.c.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/version.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>

#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/util.h"
#include "tls_int.h"

#define COMP			"identity"

/* Largest cert.pem / key.pem we are willing to read. */
#define IDENTITY_FILE_MAX	(64 * 1024)
/* PEM output buffers: a P-384 key is ~300 bytes, the certificate ~800. */
#define IDENTITY_PEM_SIZE	4096
/* Syncthing: notAfter = notBefore + 20 * 365 days (bep-brief §2.3). */
#define IDENTITY_VALID_DAYS	7300

/* 13 base32 characters per group, 4 groups, plus one check char each. */
#define B32_LEN			52
#define GROUP_LEN		13
#define GROUP_COUNT		4
#define CHECKED_LEN		56

struct identity {
	mbedtls_x509_crt	crt;
	mbedtls_pk_context	key;
	struct device_id	id;
};

/* The random generator used for key generation and signatures. */
struct rng {
	mbedtls_ctr_drbg_context	drbg;
	bool				seeded;
};

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static const char cert_subject[] =
    "O=Syncthing,OU=Automatically Generated,CN=syncthing";

/*
 * Extension values, DER-encoded by hand because mbedTLS 2.28 has no setter
 * for SAN or extKeyUsage, and its basicConstraints setter marks CA:FALSE
 * non-critical while Syncthing's is critical. Bytes match a certificate
 * made by Syncthing 1.19.2 (bep-brief §3.5 example 3).
 */
/* SEQUENCE { [2] dNSName "syncthing" } */
static const unsigned char ext_san[] = {
	0x30, 0x0b, 0x82, 0x09,
	's', 'y', 'n', 'c', 't', 'h', 'i', 'n', 'g'
};
/* SEQUENCE { id-kp-serverAuth, id-kp-clientAuth } */
static const unsigned char ext_eku[] = {
	0x30, 0x14,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
	0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02
};
/* BIT STRING, 5 unused bits: digitalSignature (0), keyEncipherment (2). */
static const unsigned char ext_ku[] = { 0x03, 0x02, 0x05, 0xa0 };
/* SEQUENCE {}: cA defaults to FALSE and is therefore omitted in DER. */
static const unsigned char ext_bc[] = { 0x30, 0x00 };

#define EXT_OID(oid)	(oid), MBEDTLS_OID_SIZE(oid)
static const struct {
	const char		*oid;
	size_t			 oid_len;
	int			 critical;
	const unsigned char	*val;
	size_t			 val_len;
} cert_exts[] = {
	{ EXT_OID(MBEDTLS_OID_KEY_USAGE), 1, ext_ku, sizeof(ext_ku) },
	{ EXT_OID(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, ext_eku, sizeof(ext_eku) },
	{ EXT_OID(MBEDTLS_OID_BASIC_CONSTRAINTS), 1, ext_bc, sizeof(ext_bc) },
	{ EXT_OID(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, ext_san, sizeof(ext_san) },
};

static void
log_mbedtls(const char *what, const char *path, int ret)
{
	char	msg[160];

	mbedtls_strerror(ret, msg, sizeof(msg));
	if (path != NULL)
		LOG_ERROR(COMP, "%s %s: %s (-0x%04x)", what, path, msg,
		    (unsigned int)-ret);
	else
		LOG_ERROR(COMP, "%s: %s (-0x%04x)", what, msg,
		    (unsigned int)-ret);
}

/*
 * Entropy for the DRBG comes from libsodium (getrandom(2) underneath), so
 * there is one source of randomness in the whole program.
 */
static int
rng_entropy(void *ctx, unsigned char *out, size_t len)
{
	(void)ctx;
	randombytes_buf(out, len);
	return 0;
}

/* mbedTLS 3.x may run key and certificate operations through PSA. */
static int
crypto_init(void)
{
	int	ret;

	ret = tls_compat_crypto_init();
	if (ret != 0) {
		LOG_ERROR(COMP, "PSA crypto initialisation failed (%d)", ret);
		return SH_ECRYPTO;
	}
	return 0;
}

static int
rng_init(struct rng *r)
{
	static const unsigned char pers[] = "shoal identity";
	int	ret;

	mbedtls_ctr_drbg_init(&r->drbg);
	r->seeded = false;
	if (sodium_init() < 0) {
		LOG_ERROR(COMP, "libsodium initialisation failed");
		return SH_ECRYPTO;
	}
	ret = mbedtls_ctr_drbg_seed(&r->drbg, rng_entropy, NULL, pers,
	    sizeof(pers) - 1);
	if (ret != 0) {
		log_mbedtls("seeding the random generator", NULL, ret);
		return SH_ECRYPTO;
	}
	r->seeded = true;
	return 0;
}

static void
rng_free(struct rng *r)
{
	/* Frees and zeroises the DRBG state. */
	mbedtls_ctr_drbg_free(&r->drbg);
	r->seeded = false;
}

/* 0 if `path` does not exist, SH_EEXIST if it does, else -errno. */
static int
check_absent(const char *path)
{
	struct stat	st;
	int		rc;

	if (lstat(path, &st) == 0) {
		LOG_ERROR(COMP, "%s already exists; refusing to replace an "
		    "identity", path);
		return SH_EEXIST;
	}
	if (errno == ENOENT)
		return 0;
	rc = -errno;
	LOG_ERROR(COMP, "cannot stat %s: %s", path, sh_strerror(rc));
	return rc;
}

/*
 * Format the validity bounds as mbedTLS wants them ("YYYYMMDDhhmmss"):
 * today at 00:00:00 UTC and 7300 days later, as Syncthing does.
 */
static int
validity_strings(char nb[16], char na[16])
{
	struct tm	tm;
	time_t		now, start, end;

	now = time(NULL);
	if (now == (time_t)-1) {
		LOG_ERROR(COMP, "cannot read the clock");
		return -EINVAL;
	}
	/* Unix time has no leap seconds, so days are exactly 86400 s. */
	start = now - now % 86400;
	end = start + (time_t)IDENTITY_VALID_DAYS * 86400;
	if (gmtime_r(&start, &tm) == NULL ||
	    strftime(nb, 16, "%Y%m%d%H%M%S", &tm) != 14)
		return -EOVERFLOW;
	if (gmtime_r(&end, &tm) == NULL ||
	    strftime(na, 16, "%Y%m%d%H%M%S", &tm) != 14)
		return -EOVERFLOW;
	return 0;
}

static int
crt_set_serial(mbedtls_x509write_cert *crt, struct rng *r)
{
	unsigned char	serial[8];
	int		ret;

	ret = mbedtls_ctr_drbg_random(&r->drbg, serial, sizeof(serial));
	if (ret != 0)
		goto out;
	/*
	 * Positive 64-bit serial: Go >= 1.23 rejects negative serials, and
	 * DER integers are signed, so the top bit must be clear. A zero
	 * serial is legal but odd; make it 1.
	 */
	serial[0] &= 0x7f;
	if (sodium_is_zero(serial, sizeof(serial)))
		serial[sizeof(serial) - 1] = 1;
	ret = tls_compat_crt_set_serial(crt, serial, sizeof(serial));
out:
	if (ret != 0)
		log_mbedtls("setting the certificate serial", NULL, ret);
	return ret == 0 ? 0 : SH_ETLS;
}

/*
 * Make the key and the self-signed certificate, PEM-encoded into key_pem
 * and cert_pem (each IDENTITY_PEM_SIZE bytes, NUL-terminated).
 */
static int
make_identity(struct rng *r, unsigned char *key_pem, unsigned char *cert_pem)
{
	mbedtls_pk_context	key;
	mbedtls_x509write_cert	crt;
	char			nb[16], na[16];
	size_t			i;
	int			ret, rc;

	mbedtls_pk_init(&key);
	mbedtls_x509write_crt_init(&crt);

	rc = validity_strings(nb, na);
	if (rc != 0)
		goto out;

	rc = SH_ETLS;
	ret = mbedtls_pk_setup(&key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (ret != 0) {
		log_mbedtls("setting up the key", NULL, ret);
		goto out;
	}
	ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(key),
	    mbedtls_ctr_drbg_random, &r->drbg);
	if (ret != 0) {
		log_mbedtls("generating the P-384 key", NULL, ret);
		goto out;
	}
	/* SEC1 "EC PRIVATE KEY", as Syncthing 1.x writes it. */
	ret = mbedtls_pk_write_key_pem(&key, key_pem, IDENTITY_PEM_SIZE);
	if (ret != 0) {
		log_mbedtls("encoding the key", NULL, ret);
		goto out;
	}

	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, &key);
	mbedtls_x509write_crt_set_issuer_key(&crt, &key);
	rc = crt_set_serial(&crt, r);
	if (rc != 0)
		goto out;
	rc = SH_ETLS;
	ret = mbedtls_x509write_crt_set_subject_name(&crt, cert_subject);
	if (ret == 0)
		ret = mbedtls_x509write_crt_set_issuer_name(&crt, cert_subject);
	if (ret != 0) {
		log_mbedtls("setting the certificate names", NULL, ret);
		goto out;
	}
	ret = mbedtls_x509write_crt_set_validity(&crt, nb, na);
	if (ret != 0) {
		log_mbedtls("setting the certificate validity", NULL, ret);
		goto out;
	}
	/* mbedTLS emits extensions in the order added; this is Go's order. */
	for (i = 0; i < sizeof(cert_exts) / sizeof(cert_exts[0]); i++) {
		ret = mbedtls_x509write_crt_set_extension(&crt,
		    cert_exts[i].oid, cert_exts[i].oid_len,
		    cert_exts[i].critical, cert_exts[i].val,
		    cert_exts[i].val_len);
		if (ret != 0) {
			log_mbedtls("adding a certificate extension", NULL,
			    ret);
			goto out;
		}
	}
	/*
	 * mbedTLS 2.28 writes the signature AlgorithmIdentifier with NULL
	 * parameters, which RFC 5758 says to omit for ECDSA; Go ignores them
	 * (Syncthing 1.19.2 loads such a pair and computes the same ID).
	 */
	ret = mbedtls_x509write_crt_pem(&crt, cert_pem, IDENTITY_PEM_SIZE,
	    mbedtls_ctr_drbg_random, &r->drbg);
	if (ret != 0) {
		log_mbedtls("signing the certificate", NULL, ret);
		goto out;
	}
	rc = 0;
out:
	mbedtls_x509write_crt_free(&crt);
	/* mbedtls_pk_free zeroises the private scalar. */
	mbedtls_pk_free(&key);
	return rc;
}

int
identity_generate(const char *dir)
{
	struct rng	 r;
	unsigned char	*key_pem = NULL, *cert_pem = NULL;
	char		*key_path = NULL, *cert_path = NULL;
	bool		 key_written = false;
	int		 ret, rc;

	r.seeded = false;
	key_path = util_path_join(dir, IDENTITY_KEY_FILE);
	cert_path = util_path_join(dir, IDENTITY_CERT_FILE);
	key_pem = xcalloc(1, IDENTITY_PEM_SIZE);
	cert_pem = xcalloc(1, IDENTITY_PEM_SIZE);

	/*
	 * Refuse early if either file exists: a device ID is this device's
	 * name to every peer, and replacing the key would silently change it.
	 * util_write_file_atomic renames over its target, so two processes
	 * racing on one empty home could still both get here; one generate per
	 * home at a time is the caller's business.
	 */
	rc = check_absent(key_path);
	if (rc != 0)
		goto out;
	rc = check_absent(cert_path);
	if (rc != 0)
		goto out;

	rc = crypto_init();
	if (rc != 0)
		goto out;
	rc = rng_init(&r);
	if (rc != 0)
		goto out;
	rc = make_identity(&r, key_pem, cert_pem);
	if (rc != 0)
		goto out;

	/* Key first: a cert.pem without its key would be useless. */
	rc = util_write_file_atomic(key_path, key_pem,
	    strlen((char *)key_pem), 0600);
	if (rc != 0) {
		LOG_ERROR(COMP, "cannot write %s: %s", key_path,
		    sh_strerror(rc));
		goto out;
	}
	key_written = true;
	rc = util_write_file_atomic(cert_path, cert_pem,
	    strlen((char *)cert_pem), 0644);
	if (rc != 0) {
		LOG_ERROR(COMP, "cannot write %s: %s", cert_path,
		    sh_strerror(rc));
		goto out;
	}
	rc = 0;
out:
	/* Remove the half identity we made so a retry is not refused. */
	if (rc != 0 && key_written && unlink(key_path) != 0) {
		ret = -errno;
		LOG_ERROR(COMP, "cannot remove %s: %s", key_path,
		    sh_strerror(ret));
	}
	if (r.seeded)
		rng_free(&r);
	sodium_memzero(key_pem, IDENTITY_PEM_SIZE);
	free(key_pem);
	free(cert_pem);
	free(key_path);
	free(cert_path);
	return rc;
}

/*
 * Read a key file into a buffer we can wipe (util_read_file would leave
 * copies of the key in its stack chunk and in realloc'd memory). On success
 * *out is NUL-terminated, *out_size is the allocation size, and the caller
 * wipes and frees it.
 */
static int
read_secret_file(const char *path, unsigned char **out, size_t *out_len,
    size_t *out_size)
{
	struct stat	 st;
	unsigned char	*buf = NULL;
	size_t		 size = 0, len = 0;
	ssize_t		 n;
	int		 fd = -1, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (st.st_size > IDENTITY_FILE_MAX) {
		rc = -EFBIG;
		goto out;
	}
	if ((st.st_mode & 077) != 0)
		LOG_WARN(COMP, "%s is readable by group or others (mode %04o); "
		    "it should be 0600", path, (unsigned int)(st.st_mode & 07777));
	/* One spare byte to detect growth and one for the NUL. */
	size = (size_t)st.st_size + 2;
	buf = xmalloc(size);
	for (;;) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size - 1) {
			/* The file grew while we read it. */
			rc = -EAGAIN;
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	*out_size = size;
	buf = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (buf != NULL) {
		sodium_memzero(buf, size);
		free(buf);
	}
	return rc;
}

/* Parse the key, with the extra RNG arguments mbedTLS 3.x wants. */
static int
parse_key(mbedtls_pk_context *key, const unsigned char *pem, size_t len,
    struct rng *r)
{
	return tls_compat_pk_parse_key(key, pem, len, mbedtls_ctr_drbg_random,
	    &r->drbg);
}

static int
check_pair(const mbedtls_pk_context *pub, const mbedtls_pk_context *prv,
    struct rng *r)
{
	return tls_compat_pk_check_pair(pub, prv, mbedtls_ctr_drbg_random,
	    &r->drbg);
}

int
identity_load(const char *dir, struct identity **out)
{
	struct identity	*id = NULL;
	struct rng	 r;
	char		*key_path = NULL, *cert_path = NULL, *cert_pem = NULL;
	unsigned char	*key_pem = NULL;
	size_t		 cert_len = 0, key_len = 0, key_size = 0;
	char		 msg[160];
	int		 ret, rc;

	*out = NULL;
	r.seeded = false;
	key_path = util_path_join(dir, IDENTITY_KEY_FILE);
	cert_path = util_path_join(dir, IDENTITY_CERT_FILE);
	id = xcalloc(1, sizeof(*id));
	mbedtls_x509_crt_init(&id->crt);
	mbedtls_pk_init(&id->key);

	rc = crypto_init();
	if (rc != 0)
		goto out;
	rc = util_read_file(cert_path, IDENTITY_FILE_MAX, &cert_pem,
	    &cert_len);
	if (rc != 0) {
		LOG_ERROR(COMP, "cannot read %s: %s", cert_path,
		    sh_strerror(rc));
		goto out;
	}
	/* PEM input must include the terminating NUL in its length. */
	ret = mbedtls_x509_crt_parse(&id->crt, (unsigned char *)cert_pem,
	    cert_len + 1);
	if (ret < 0) {
		log_mbedtls("cannot parse certificate", cert_path, ret);
		rc = SH_ETLS;
		goto out;
	}
	if (ret > 0 || id->crt.raw.p == NULL) {
		LOG_ERROR(COMP, "cannot parse certificate %s: no valid "
		    "certificate found", cert_path);
		rc = SH_ETLS;
		goto out;
	}
	/*
	 * Peers refuse a chain of more than one certificate (bep-brief
	 * §2.3 rule 1), and tls.c would present the whole list.
	 */
	if (id->crt.next != NULL) {
		LOG_ERROR(COMP, "%s holds more than one certificate; it must "
		    "hold exactly one", cert_path);
		rc = SH_ETLS;
		goto out;
	}

	rc = read_secret_file(key_path, &key_pem, &key_len, &key_size);
	if (rc != 0) {
		LOG_ERROR(COMP, "cannot read %s: %s", key_path,
		    sh_strerror(rc));
		goto out;
	}
	rc = rng_init(&r);
	if (rc != 0)
		goto out;
	ret = parse_key(&id->key, key_pem, key_len + 1, &r);
	if (ret != 0) {
		log_mbedtls("cannot parse private key", key_path, ret);
		rc = SH_ETLS;
		goto out;
	}
	ret = check_pair(&id->crt.pk, &id->key, &r);
	if (ret != 0) {
		mbedtls_strerror(ret, msg, sizeof(msg));
		LOG_ERROR(COMP, "%s does not match the certificate in %s: %s",
		    key_path, cert_path, msg);
		rc = SH_ETLS;
		goto out;
	}
	identity_id_from_der(id->crt.raw.p, id->crt.raw.len, &id->id);
	if (identity_id_is_zero(&id->id)) {
		/* identity_id_from_der already logged the hash failure. */
		rc = SH_ECRYPTO;
		goto out;
	}
	*out = id;
	id = NULL;
	rc = 0;
out:
	if (r.seeded)
		rng_free(&r);
	if (key_pem != NULL) {
		sodium_memzero(key_pem, key_size);
		free(key_pem);
	}
	free(cert_pem);
	free(key_path);
	free(cert_path);
	identity_free(id);
	return rc;
}

void
identity_free(struct identity *id)
{
	if (id == NULL)
		return;
	mbedtls_x509_crt_free(&id->crt);
	/* Zeroises the private key. */
	mbedtls_pk_free(&id->key);
	free(id);
}

const struct device_id *
identity_device_id(const struct identity *id)
{
	return &id->id;
}

const uint8_t *
identity_cert_der(const struct identity *id, size_t *len)
{
	*len = id->crt.raw.len;
	return id->crt.raw.p;
}

void *
identity_mbedtls_cert(struct identity *id)
{
	return &id->crt;
}

void *
identity_mbedtls_key(struct identity *id)
{
	return &id->key;
}

/* Device IDs */

void
identity_id_from_der(const uint8_t *der, size_t len, struct device_id *out)
{
	int	ret;

	ret = tls_compat_sha256(der, len, out->raw);
	if (ret != 0) {
		/* The zero ID matches no peer, so a failure cannot admit one. */
		log_mbedtls("SHA-256 of a certificate", NULL, ret);
		memset(out->raw, 0, sizeof(out->raw));
	}
}

/* RFC 4648 base32 without padding; `out` gets ceil(len * 8 / 5) chars. */
static size_t
b32_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t	acc = 0;
	size_t		i, o = 0;
	int		bits = 0;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32_alphabet[(acc >> (bits - 5)) & 0x1f];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 0x1f];
	return o;
}

static int
b32_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

/*
 * Decode B32_LEN characters (already validated) into 32 bytes. The 4
 * trailing bits are ignored, as Go's decoder ignores them.
 */
static void
b32_decode_id(const char *in, uint8_t out[IDENTITY_ID_LEN])
{
	uint32_t	acc = 0;
	size_t		i, o = 0;
	int		bits = 0;

	for (i = 0; i < B32_LEN; i++) {
		acc = (acc << 5) | (uint32_t)b32_value(in[i]);
		bits += 5;
		if (bits >= 8 && o < IDENTITY_ID_LEN) {
			out[o++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
}

char
identity_luhn32(const char *s, size_t len)
{
	unsigned int	factor = 1, sum = 0, addend;
	size_t		i;
	int		cp;

	/*
	 * Syncthing's variant (bep-brief §3.2): the factor starts at 1 on
	 * the FIRST character and alternates left to right. Textbook Luhn
	 * doubles from the right; that gives different check characters.
	 */
	for (i = 0; i < len; i++) {
		cp = b32_value(s[i]);
		if (cp < 0)
			return 0;
		addend = factor * (unsigned int)cp;
		factor = factor == 2 ? 1 : 2;
		sum += addend / 32 + addend % 32;
	}
	return b32_alphabet[(32 - sum % 32) % 32];
}

bool
identity_id_is_zero(const struct device_id *id)
{
	return sodium_is_zero(id->raw, sizeof(id->raw)) == 1;
}

bool
identity_id_equal(const struct device_id *a, const struct device_id *b)
{
	return memcmp(a->raw, b->raw, sizeof(a->raw)) == 0;
}

void
identity_id_format(const struct device_id *id, char out[IDENTITY_ID_STR_SIZE])
{
	char	b32[B32_LEN], checked[CHECKED_LEN];
	size_t	g, i, o;

	if (identity_id_is_zero(id)) {
		out[0] = '\0';
		return;
	}
	(void)b32_encode(id->raw, sizeof(id->raw), b32);
	for (g = 0; g < GROUP_COUNT; g++) {
		memcpy(checked + g * (GROUP_LEN + 1), b32 + g * GROUP_LEN,
		    GROUP_LEN);
		checked[g * (GROUP_LEN + 1) + GROUP_LEN] =
		    identity_luhn32(b32 + g * GROUP_LEN, GROUP_LEN);
	}
	for (i = 0, o = 0; i < CHECKED_LEN; i++) {
		if (i > 0 && i % 7 == 0)
			out[o++] = '-';
		out[o++] = checked[i];
	}
	out[o] = '\0';
}

static void
parse_error(char *err, size_t err_size, const char *s, const char *fmt, ...)
    SH_PRINTF(4, 5);

static void
parse_error(char *err, size_t err_size, const char *s, const char *fmt, ...)
{
	va_list	ap;
	char	quoted[96], reason[128];

	if (err == NULL || err_size == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* User input: escaped, and cut short if it is long. */
	log_escape(s, quoted, sizeof(quoted));
	(void)snprintf(err, err_size, "device ID \"%s\": %s", quoted, reason);
}

int
identity_id_parse(const char *s, struct device_id *out, char *err,
    size_t err_size)
{
	char		norm[CHECKED_LEN], want, shown[8];
	size_t		i, n = 0, bad_pos = 0, g;
	unsigned char	c, bad = 0;
	int		rc = SH_EPARSE;

	memset(out->raw, 0, sizeof(out->raw));
	if (err != NULL && err_size > 0)
		err[0] = '\0';

	/* Normalise as Syncthing does (bep-brief §3.3). */
	for (i = 0; s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		if (c == '-' || c == ' ' || c == '=')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (unsigned char)(c - 'a' + 'A');
		if (c == '0')
			c = 'O';
		else if (c == '1')
			c = 'I';
		else if (c == '8')
			c = 'B';
		if (b32_value((char)c) < 0 && bad == 0) {
			bad = (unsigned char)s[i];
			bad_pos = i + 1;
		}
		if (n < CHECKED_LEN)
			norm[n] = (char)c;
		n++;
	}
	if (bad != 0) {
		if (bad >= 0x20 && bad < 0x7f)
			(void)snprintf(shown, sizeof(shown), "'%c'", bad);
		else
			(void)snprintf(shown, sizeof(shown), "0x%02x", bad);
		parse_error(err, err_size, s, "invalid character %s at "
		    "position %zu", shown, bad_pos);
		goto out;
	}
	if (n == 0) {
		/* The empty string is the all-zero ID (bep-brief §3.1). */
		rc = 0;
		goto out;
	}
	if (n == CHECKED_LEN) {
		for (g = 0; g < GROUP_COUNT; g++) {
			want = identity_luhn32(norm + g * (GROUP_LEN + 1),
			    GROUP_LEN);
			if (norm[g * (GROUP_LEN + 1) + GROUP_LEN] != want) {
				parse_error(err, err_size, s, "check character "
				    "%zu is '%c', expected '%c'", g + 1,
				    norm[g * (GROUP_LEN + 1) + GROUP_LEN], want);
				goto out;
			}
		}
		/* Drop the check characters in place. */
		for (g = 1; g < GROUP_COUNT; g++)
			memmove(norm + g * GROUP_LEN,
			    norm + g * (GROUP_LEN + 1), GROUP_LEN);
	} else if (n != B32_LEN) {
		parse_error(err, err_size, s, "wrong length %zu (want 56 or "
		    "52 characters)", n);
		goto out;
	}
	b32_decode_id(norm, out->raw);
	rc = 0;
out:
	return rc;
}

uint64_t
identity_short_id(const struct device_id *id)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | id->raw[i];
	return v;
}

void
identity_short_format(uint64_t short_id, char out[IDENTITY_SHORT_STR_SIZE])
{
	uint8_t	be[8];
	char	b32[13];
	size_t	i;

	if (short_id == 0) {
		out[0] = '\0';
		return;
	}
	for (i = 0; i < 8; i++)
		be[i] = (uint8_t)(short_id >> (56 - 8 * i));
	(void)b32_encode(be, sizeof(be), b32);
	memcpy(out, b32, IDENTITY_SHORT_STR_SIZE - 1);
	out[IDENTITY_SHORT_STR_SIZE - 1] = '\0';
}

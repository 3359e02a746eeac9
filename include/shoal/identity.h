/* SPDX-License-Identifier: MIT */
/*
 * This device's identity: the self-signed ECDSA P-384 certificate and key
 * (made with mbedTLS, shaped as bep-brief §2.3), and device IDs: SHA-256 of
 * a certificate's DER, formatted with Luhn-mod-32 check characters and
 * dashes (bep-brief §3).
 */
#ifndef SHOAL_IDENTITY_H
#define SHOAL_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"

#define IDENTITY_ID_LEN		32
/* 56 characters + 7 dashes + NUL. */
#define IDENTITY_ID_STR_SIZE	64
/* 7 characters + NUL. */
#define IDENTITY_SHORT_STR_SIZE	8
#define IDENTITY_CERT_FILE	"cert.pem"
#define IDENTITY_KEY_FILE	"key.pem"

struct device_id {
	uint8_t	raw[IDENTITY_ID_LEN];
};

struct identity;

/* Lifecycle */
/*
 * Create key.pem (0600) and cert.pem (0644) in the existing directory `dir`,
 * each written atomically. Refuses with SH_EEXIST if either exists (an
 * identity is never replaced). Returns 0, SH_EEXIST, SH_ETLS, SH_ECRYPTO or
 * -errno; failures are logged, naming the file. On failure neither file is
 * left behind by this call.
 */
int	identity_generate(const char *dir) SH_MUST_CHECK;
/*
 * Load cert.pem/key.pem from `dir`, check that the key belongs to the
 * certificate and that cert.pem holds exactly one certificate. Returns 0
 * and *out (caller frees with identity_free()), or -errno (e.g. -ENOENT
 * when not initialised), SH_ETLS or SH_ECRYPTO with *out = NULL; failures
 * are logged, naming the file.
 */
int	identity_load(const char *dir, struct identity **out) SH_MUST_CHECK;
void	identity_free(struct identity *id);

/* Queries */
const struct device_id *identity_device_id(const struct identity *id);
/* DER of our certificate (borrowed). */
const uint8_t *identity_cert_der(const struct identity *id, size_t *len);
/* mbedTLS objects for tls.c (borrowed; opaque here to keep mbedTLS types
 * out of other modules). */
void	*identity_mbedtls_cert(struct identity *id);
void	*identity_mbedtls_key(struct identity *id);

/* Device IDs */
void	identity_id_from_der(const uint8_t *der, size_t len,
	    struct device_id *out);
/* Format as 63 chars with dashes; the all-zero ID formats as "". */
void	identity_id_format(const struct device_id *id,
	    char out[IDENTITY_ID_STR_SIZE]);
/*
 * Parse any case, with or without dashes/spaces, look-alikes 0/1/8 mapped,
 * 56 chars (check chars verified) or 52 (legacy); "" parses to the zero
 * ID. Returns 0 or SH_EPARSE; on error *out is zeroed and, if `err` is not
 * NULL, a one-line reason quoting the input is written to it, e.g.
 * `device ID "ABC": wrong length 3 (want 56 or 52 characters)`. Nothing is
 * logged (the caller decides whether the input came from a user or a peer).
 */
int	identity_id_parse(const char *s, struct device_id *out, char *err,
	    size_t err_size) SH_MUST_CHECK;
bool	identity_id_equal(const struct device_id *a, const struct device_id *b);
bool	identity_id_is_zero(const struct device_id *id);
uint64_t identity_short_id(const struct device_id *id);
/* 7-character text form; 0 formats as "". */
void	identity_short_format(uint64_t short_id,
	    char out[IDENTITY_SHORT_STR_SIZE]);
/* Luhn mod 32 check character of a base32 group (bep-brief §3.2); returns
 * 0 if a character is outside the alphabet. */
char	identity_luhn32(const char *s, size_t len);

#endif /* SHOAL_IDENTITY_H */

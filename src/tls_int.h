/* SPDX-License-Identifier: MIT */
/*
 * mbedTLS calls whose signatures differ between 2.28 and 3.x, for the
 * modules that use mbedTLS directly (identity.c). Every
 * `#if MBEDTLS_VERSION_NUMBER` of the project lives in tls.c, behind these.
 * Each returns mbedTLS's own code (0 on success).
 */
#ifndef SHOAL_TLS_INT_H
#define SHOAL_TLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

/*
 * Start 3.x's PSA crypto (psa_crypto_init), which TLS 1.3, and with
 * MBEDTLS_USE_PSA_CRYPTO also keys and certificates, rely on; idempotent.
 * Returns 0 or a PSA status; 2.x has nothing to start.
 */
int	tls_compat_crypto_init(void);
/* SHA-256 of len bytes (mbedtls_sha256 / mbedtls_sha256_ret). */
int	tls_compat_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
/* Parse a PEM/DER private key; the RNG is used only on 3.x. */
int	tls_compat_pk_parse_key(mbedtls_pk_context *key, const unsigned char *buf,
	    size_t len, int (*f_rng)(void *, unsigned char *, size_t),
	    void *p_rng);
/* Check that prv is the private half of pub; the RNG is used only on 3.x. */
int	tls_compat_pk_check_pair(const mbedtls_pk_context *pub,
	    const mbedtls_pk_context *prv,
	    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);
/* Set a certificate's serial from big-endian bytes. */
int	tls_compat_crt_set_serial(mbedtls_x509write_cert *crt,
	    const unsigned char *serial, size_t len);

#endif /* SHOAL_TLS_INT_H */

/* SPDX-License-Identifier: MIT */
/*
 * Error codes shared by every module. A function that can fail returns 0 on
 * success and a negative value on failure: either -errno (which is also what
 * libuv returns on Unix, so uv results pass through unchanged) or one of the
 * SH_E* codes below. The SH_E* codes sit below -5000, clear of libuv's
 * -3000..-4095 range.
 */
#ifndef SHOAL_ERR_H
#define SHOAL_ERR_H

#define SH_EPROTO	(-5001)	/* a peer or file broke the protocol/format */
#define SH_ECORRUPT	(-5002)	/* stored data failed a consistency check */
#define SH_ETLS		(-5003)	/* TLS or X.509 failure (detail logged) */
#define SH_EDB		(-5004)	/* SQLite failure (detail logged) */
#define SH_ECONFLICT	(-5005)	/* the disk changed under us */
#define SH_ECONFIG	(-5006)	/* invalid configuration (detail logged) */
#define SH_EEXIST	(-5007)	/* refusing to overwrite something */
#define SH_ENOTFOUND	(-5008)	/* a named thing (device, folder) is unknown */
#define SH_EPARSE	(-5009)	/* input text could not be parsed */
#define SH_ECRYPTO	(-5010)	/* hashing or randomness failure */
#define SH_EHTTP	(-5011)	/* control API request failed */
#define SH_EFOLDER	(-5012)	/* folder root or marker missing */
#define SH_ESPACE	(-5013)	/* free space at or below min_disk_free */

#if defined(__GNUC__) || defined(__clang__)
#define SH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define SH_MUST_CHECK __attribute__((warn_unused_result))
#define SH_NORETURN __attribute__((noreturn))
#else
#define SH_PRINTF(fmt, args)
#define SH_MUST_CHECK
#define SH_NORETURN
#endif

/*
 * Return a static, human-readable description of any code returned by a
 * Shoal function (SH_E*, -errno, or a libuv code). Never returns NULL.
 */
const char	*sh_strerror(int code);

#endif /* SHOAL_ERR_H */

/* SPDX-License-Identifier: MIT */
/*
 * TLS for BEP connections: mbedTLS driven over a libuv TCP stream, with no
 * blocking socket anywhere. One shared struct tls_config holds the client
 * and server settings Syncthing accepts (bep-brief §2, §2.2a), built once
 * from our identity. Each connection is a struct tls that owns its TCP
 * handle, performs the handshake, decrypts into on_read and encrypts
 * tls_write data. Peer authentication is by certificate hash only
 * (bep-brief §2.4): tls.c makes sure the peer presented exactly one
 * certificate and reports its device ID; whether that device is welcome is
 * the caller's decision (tls_id_allowed helps). Everything runs on the loop
 * thread. See docs/internals/tls.md.
 */
#ifndef SHOAL_TLS_H
#define SHOAL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/err.h"
#include "shoal/identity.h"

/* ALPN protocol offered and accepted (bep-brief §2.1). */
#define TLS_ALPN_BEP		"bep/1.0"
/* A handshake that has not finished after this long fails with UV_ETIMEDOUT
 * (see tls_config_set_handshake_timeout()). */
#define TLS_HANDSHAKE_TIMEOUT_MS	10000
/* After tls_close(t, 0), how long we wait for our close_notify to drain and
 * for the peer's FIN before the socket is closed regardless. */
#define TLS_CLOSE_TIMEOUT_MS	2000
/* Ciphertext buffered from the socket per connection (about four full TLS
 * records). When it is full we stop reading the socket (backpressure). */
#define TLS_IN_BUF_SIZE		(64 * 1024)
/* Hard cap on encrypted bytes queued in uv_write requests. tls_write()
 * fails with -ENOBUFS beyond it; callers should keep well below it by
 * watching tls_write_queue_size() and on_drain. */
#define TLS_WRITE_QUEUE_MAX	(64 * 1024 * 1024)

enum tls_role {
	TLS_ROLE_CLIENT,	/* we dialled: TLS client */
	TLS_ROLE_SERVER		/* we accepted: TLS server */
};

enum tls_state {
	TLS_STATE_HANDSHAKE,	/* tls_open() .. handshake done or failed */
	TLS_STATE_OPEN,		/* authenticated transport, data flows */
	TLS_STATE_CLOSING	/* tls_close() or a failure; handles closing */
};

struct tls_config;
struct tls;

/*
 * Callbacks, all run on the loop thread. Each may call any tls_ function on
 * the session, including tls_close(). `on_drain` may be NULL.
 */
struct tls_callbacks {
	/* The handshake ended. status 0: the peer presented exactly one
	 * certificate and tls_peer_id() is valid; the caller still decides
	 * whether that device is welcome (tls_id_allowed). status < 0:
	 * SH_ETLS (detail logged), UV_ETIMEDOUT, UV_EOF or another uv code;
	 * the session is then closing by itself and on_close follows. Runs at
	 * most once, and not at all if tls_close() came first. */
	void	(*on_handshake)(struct tls *t, int status);
	/* Decrypted application data (borrowed, valid during the call). Never
	 * called while reads are paused or after tls_close(). */
	void	(*on_read)(struct tls *t, const uint8_t *data, size_t len);
	/* Optional (may be NULL): where on_read's next `len` bytes may be
	 * decrypted, so that they arrive in place, or NULL for a buffer of
	 * the session's. Asked only for whole records of application data
	 * opened by the fast record layer; a record that fails
	 * authentication leaves garbage there and closes the session. */
	uint8_t	*(*read_dest)(struct tls *t, size_t len);
	/* tls_write_queue_size() dropped to 0. */
	void	(*on_drain)(struct tls *t);
	/* Runs exactly once per successful tls_open(), after every handle is
	 * closed; `t` is freed when it returns. tls_status() says why. */
	void	(*on_close)(struct tls *t);
};

/* Lifecycle: configuration */
/*
 * Build the shared client and server configuration from `id` (borrowed:
 * it must outlive the config). Returns 0 and *out (caller frees with
 * tls_config_free() after every session using it has closed), or SH_ETLS /
 * SH_ECRYPTO with *out = NULL; failures are logged.
 */
int	tls_config_new(struct identity *id, struct tls_config **out)
	    SH_MUST_CHECK;
void	tls_config_free(struct tls_config *cfg);
/* Change the handshake deadline (default TLS_HANDSHAKE_TIMEOUT_MS) for
 * sessions opened from now on. */
void	tls_config_set_handshake_timeout(struct tls_config *cfg, uint64_t ms);
/* Fast records (on by default where the build has them, mbedTLS 2.x):
 * after the handshake, application records are sealed with libsodium
 * instead of mbedTLS (see tls.c). Off: mbedTLS keeps them, and the
 * AES-128-GCM suite is offered too. For sessions opened from now on. */
void	tls_config_set_fast_records(struct tls_config *cfg, bool on);
/* Offer TLS 1.2 at most, as a 1.2-only peer would (tests: an mbedTLS 3.x
 * build otherwise settles on TLS 1.3 with itself; 2.x always is 1.2).
 * For sessions opened from now on. */
void	tls_config_set_max_tls12(struct tls_config *cfg);

/* Lifecycle: sessions */
/*
 * Start a TLS session over `tcp`, a connected (or accepted) TCP handle that
 * the caller allocated with malloc/xmalloc and initialised on `loop`. tls
 * takes ownership of `tcp` in every case: on success it is closed and freed
 * when the session ends; on failure it is closed and freed here, no
 * callback runs, and the function returns SH_ETLS (logged), -EINVAL
 * (on_read or on_close missing) or a uv code. The handshake starts from the
 * loop right after this call (the client sends its ClientHello); no
 * callback runs inside tls_open().
 *   cfg: borrowed, must outlive the session.
 *   cbs: copied; on_read and on_close are required.
 *   data: the caller's pointer, see tls_data().
 *   out: OUT: the session; valid until on_close returns.
 */
int	tls_open(const struct tls_config *cfg, uv_tcp_t *tcp,
	    enum tls_role role, const struct tls_callbacks *cbs, void *data,
	    struct tls **out) SH_MUST_CHECK;
/*
 * End the session. reason 0: send close_notify, let queued data drain,
 * then close the socket (bounded by TLS_CLOSE_TIMEOUT_MS). reason < 0: close
 * the socket at once, dropping queued data; `reason` becomes tls_status().
 * Stops on_read and on_handshake at once; on_close runs later, from the
 * loop. Calling it again, or after a failure closed the session, does
 * nothing.
 */
void	tls_close(struct tls *t, int reason);

/* Operations */
/*
 * Encrypt `len` bytes and queue them on the socket (the data is copied).
 * Only in TLS_STATE_OPEN. Returns 0; -ENOTCONN if not open (not yet, or
 * closing); -ENOBUFS if the queue would pass TLS_WRITE_QUEUE_MAX; SH_ETLS
 * (logged, and the session is closed) if encryption fails.
 */
int	tls_write(struct tls *t, const void *data, size_t len) SH_MUST_CHECK;
/* Encrypted bytes handed to uv_write whose callbacks have not run yet. */
size_t	tls_write_queue_size(const struct tls *t);
/*
 * Stop delivering on_read. Ciphertext keeps arriving until the input
 * buffer is full, then the socket is no longer read, so the peer's TCP
 * window closes. Takes effect immediately, also from inside on_read.
 */
void	tls_pause_read(struct tls *t);
/* Resume delivery; buffered data is delivered from the loop, not from
 * inside this call. */
void	tls_resume_read(struct tls *t);

/* Queries */
void	*tls_data(const struct tls *t);
enum tls_state tls_state(const struct tls *t);
const char *tls_state_name(enum tls_state s);
/*
 * Why the session ended: 0 (closed by us with reason 0), UV_EOF (the peer
 * closed, with or without close_notify), UV_ETIMEDOUT (handshake), SH_ETLS,
 * a uv socket error, or the reason given to tls_close(). 0 while open.
 */
int	tls_status(const struct tls *t);
/* "ip:port" of the peer, for logs. */
const char *tls_peer_addr(const struct tls *t);
/* Device ID of the peer (SHA-256 of its certificate's DER). Returns 0, or
 * -ENOTCONN before the handshake succeeded (then *out is zeroed). */
int	tls_peer_id(const struct tls *t, struct device_id *out) SH_MUST_CHECK;
/* DER of the peer's certificate (borrowed, valid until on_close returns),
 * or NULL before the handshake succeeded. */
const uint8_t *tls_peer_cert_der(const struct tls *t, size_t *len);
/* Bytes read from and written to the socket so far (ciphertext: what
 * crossed the wire, TLS records included). */
void	tls_wire_bytes(const struct tls *t, uint64_t *in, uint64_t *out);
/* Negotiated ALPN protocol, or NULL if none. */
const char *tls_alpn(const struct tls *t);
/* "TLSv1.2" etc., or "unknown" before the handshake. */
const char *tls_version_name(const struct tls *t);
/* mbedTLS name of the ciphersuite, or "unknown" before the handshake. */
const char *tls_ciphersuite_name(const struct tls *t);
/* Whether libsodium protects this session's records (see above). */
bool	tls_fast_records(const struct tls *t);

/* Pinning */
/*
 * True if `peer` equals one of the `n` IDs in `allowed`. Compares every
 * entry in constant time (sodium_memcmp, no early exit), so the timing does
 * not reveal which or how many entries matched.
 */
bool	tls_id_allowed(const struct device_id *peer,
	    const struct device_id *allowed, size_t n);

#endif /* SHOAL_TLS_H */

/* SPDX-License-Identifier: MIT */
/*
 * One BEP connection to one peer, from the TLS handshake to the close: the
 * Hello exchange, authentication against the configuration, ClusterConfig,
 * incremental index exchange in both directions, block requests in both
 * directions, Ping and read timeouts, and Close with a reason on any
 * protocol violation (bep-brief §4-§10, §17). The connection manager
 * (net.c) creates, deduplicates and owns connections; it hears from them
 * through struct conn_hooks. Everything runs on the loop thread except the
 * block reads, which run on the thread pool.
 */
#ifndef SHOAL_CONN_H
#define SHOAL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "shoal/err.h"
#include "shoal/identity.h"
#include "shoal/record.h"
#include "shoal/tls.h"

struct config;
struct db;
struct conn;

/* Timers (bep-brief §10.15). */
#define CONN_HELLO_TIMEOUT_MS	20000
#define CONN_PING_CHECK_MS	30000	/* ping if nothing written for this long, checked as often */
#define CONN_READ_TIMEOUT_MS	300000	/* close when nothing read for this long */
/* Index batches (bep-brief §9.3). */
#define CONN_INDEX_BATCH_FILES	1000
#define CONN_INDEX_BATCH_BYTES	(250 * 1024)
/* Serving: bytes of block data read or queued for one peer at once; more
 * requests wait in a queue of at most CONN_MAX_QUEUED_REQUESTS. */
#define CONN_SEND_MAX_INFLIGHT	(2 * 1024 * 1024)
#define CONN_MAX_QUEUED_REQUESTS 4096
/* Our own outstanding requests to one peer. */
#define CONN_MAX_OWN_REQUESTS	256
#define CONN_REQUEST_TIMEOUT_MS	60000

enum conn_state {
	CONN_STATE_TLS = 0,	/* TLS handshake running */
	CONN_STATE_HELLO,	/* our Hello sent, waiting for the peer's */
	CONN_STATE_CONFIG,	/* accepted; our ClusterConfig sent, waiting for theirs */
	CONN_STATE_ACTIVE,	/* both ClusterConfigs seen: indexes and blocks flow */
	CONN_STATE_CLOSING	/* closing; no more messages either way */
};

/*
 * What a connection needs from the daemon. Owned by the connection manager
 * and borrowed by every connection; `cfg` is replaced on config reload, so
 * connections look things up in it each time and never keep pointers into it.
 */
struct conn_env {
	uv_loop_t		*loop;
	struct db		*db;
	const struct config	*cfg;
	struct tls_config	*tls;
	struct device_id	 self;
	uint64_t		 short_id;
};

struct intro_view;

struct conn_hooks {
	/*
	 * The peer's Hello arrived and TLS authenticated its certificate.
	 * Return 0 to accept it (the connection then sends its ClusterConfig),
	 * or a negative code to refuse it (the connection closes with no folder
	 * data sent). The manager records unknown devices as pending here and
	 * applies the one-connection-per-device rule.
	 */
	int	(*on_hello)(struct conn *c, void *arg);
	/* Both ClusterConfigs exchanged. May be NULL. */
	void	(*on_active)(struct conn *c, void *arg);
	/* A peer's index for a folder changed (records stored). May be NULL. */
	void	(*on_remote_index)(struct conn *c, int64_t folder_idx, void *arg);
	/* A peer our config marks `introducer` sent its ClusterConfig: what
	 * it lists for the folders we share with it (intro.h). The hook owns
	 * `v` (intro_view_free). May be NULL. */
	void	(*on_introduction)(struct conn *c, struct intro_view *v,
		    void *arg);
	/* Runs exactly once, when the connection is gone; `c` is freed when
	 * it returns. */
	void	(*on_closed)(struct conn *c, void *arg);
};

/* Counters and identity of a connection, for status output. */
struct conn_info {
	enum conn_state	 state;
	struct device_id peer;			/* valid from CONN_STATE_HELLO on */
	const char	*address;		/* borrowed: "ip:port" */
	const char	*client_name;		/* borrowed; "" until the Hello */
	const char	*client_version;	/* borrowed */
	const char	*device_name;		/* borrowed: the name in its Hello */
	bool		 outgoing;		/* we dialled */
	uint64_t	 established_ms;	/* util_now_ms() at TLS success */
	uint64_t	 in_bytes;		/* bytes on the wire received (TLS) */
	uint64_t	 out_bytes;		/* bytes on the wire sent (TLS) */
	uint64_t	 index_records_sent;
	uint64_t	 index_records_received;
	uint64_t	 index_messages_sent;
	uint64_t	 index_messages_received;
	uint64_t	 requests_served;
};

/* Completion of one of our own block requests: status 0 with exactly the
 * requested bytes whose SHA-256 matched (data borrowed for the call unless
 * CONN_REQ_GIVE_DATA), or a negative code (-ECANCELED on close,
 * -ETIMEDOUT, SH_EPROTO for a bad response, SH_ENOTFOUND for a peer error
 * code). */
typedef void (*conn_response_cb)(int status, uint8_t *data, size_t len,
	    void *arg);

/* Lifecycle */
/*
 * Start a connection over `tcp` (ownership passes to the connection in
 * every case, as with tls_open). `address` is copied. On success on_closed
 * will run exactly once. Returns 0 or a negative code (no hook runs).
 */
int	conn_open(const struct conn_env *env, uv_tcp_t *tcp, enum tls_role role,
	    const char *address, const struct conn_hooks *hooks, void *arg,
	    struct conn **out) SH_MUST_CHECK;
/* Close with `reason` (sent as a BEP Close once the Hellos are done, and
 * logged). Idempotent. on_closed follows from the loop. */
void	conn_close(struct conn *c, const char *reason);

/* Operations */
/* Our configuration changed: send a fresh ClusterConfig (if active) and
 * re-evaluate which folders flow. */
void	conn_config_changed(struct conn *c);
/* New local records in a folder: send them (coalesced, in batches; `now`
 * when no more are coming soon). */
void	conn_index_kick(struct conn *c, int64_t folder_idx, bool now);
/*
 * Ask the peer for one block. The response is checked against `hash`
 * (length and SHA-256) before cb sees it. Returns 0 (cb will run exactly
 * once), -EAGAIN if CONN_MAX_OWN_REQUESTS are outstanding, or -ENOTCONN.
 */
int	conn_request(struct conn *c, const char *folder, const char *name,
	    int64_t offset, int32_t size, const uint8_t hash[RECORD_HASH_LEN],
	    conn_response_cb cb, void *arg) SH_MUST_CHECK;
/* conn_request() flags. CALLER_VERIFIES: only the length is checked here;
 * the caller must check the SHA-256 before using the data (the puller does
 * it on the thread pool, so that hashing does not hold up the loop). */
#define CONN_REQ_CALLER_VERIFIES	0x1u
/* GIVE_DATA: on status 0 cb owns data and releases it with
 * util_bigbuf_free(); data of at least UTIL_BIGBUF_MIN bytes is then
 * UTIL_BIGBUF_ALIGN-aligned, so it can be written with O_DIRECT as it is
 * (the puller's blocks: no copy between the message and the disk). */
#define CONN_REQ_GIVE_DATA		0x2u
int	conn_request_flags(struct conn *c, const char *folder,
	    const char *name, int64_t offset, int32_t size,
	    const uint8_t hash[RECORD_HASH_LEN], unsigned int flags,
	    conn_response_cb cb, void *arg) SH_MUST_CHECK;

/* Queries */
void	conn_get_info(const struct conn *c, struct conn_info *out);
const struct device_id *conn_peer(const struct conn *c);
enum conn_state conn_state(const struct conn *c);
const char *conn_state_name(enum conn_state s);
/* True if the peer's latest ClusterConfig shares `folder_id` with us (not
 * paused) and our config shares it with the peer. */
bool	conn_folder_shared(const struct conn *c, const char *folder_id);
/* True if the peer has announced our latest local sequence of the folder
 * back to us in a ClusterConfig, or we have sent every local record of it
 * on this connection. */
bool	conn_folder_index_sent(const struct conn *c, int64_t folder_idx);
void	*conn_data(const struct conn *c);
/* The first reason the connection was closed for ("" while open). */
const char *conn_close_reason(const struct conn *c);

#endif /* SHOAL_CONN_H */

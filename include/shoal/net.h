/* SPDX-License-Identifier: MIT */
/*
 * The connection manager: listens for BEP connections on the configured
 * address (port 0 allowed), dials each configured device's static addresses
 * with backoff, keeps exactly one connection per device (a deterministic
 * tie-break when both dial at once), remembers unknown devices that tried
 * to connect as pending, and reports peers for status. Owns every conn.
 */
#ifndef SHOAL_NET_H
#define SHOAL_NET_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "shoal/conn.h"
#include "shoal/err.h"
#include "shoal/identity.h"

#define NET_DIAL_BACKOFF_MIN_MS	1000
#define NET_DIAL_BACKOFF_MAX_MS	60000
/* A connection shorter than this does not reset the dial backoff. */
#define NET_SHORT_CONN_S	10
#define NET_MAX_PENDING		64	/* pending devices remembered */
#define NET_MAX_INCOMING	64	/* connections before their Hello */
/* A second connection to a connected device replaces the first when the
 * first is older than this (the peer saw it die before we did). */
#define NET_REPLACE_AFTER_MS	10000
/* The default BEP port; only a listen address on it falls back to a free
 * port when it is taken (design.md §5). */
#define NET_DEFAULT_PORT	22000
/* Longest host part of a "tcp://HOST:PORT" address, NUL included. */
#define NET_HOST_SIZE		256
/* "tcp://[IPv6]:PORT" plus NUL. */
#define NET_ADDR_SIZE		80
/* Dynamic (discovered) addresses remembered per device. */
#define NET_MAX_DYNAMIC_ADDRS	16

struct net;
struct config;

/* Called when a peer's index of a folder changed (folder_idx), and when
 * peers come and go (folder_idx -1). Never called after net_close(). */
typedef void (*net_change_cb)(struct net *n, int64_t folder_idx, void *arg);
/* An introducer's view (intro.h), owned by the callback from then on. */
struct intro_view;
typedef void (*net_intro_cb)(struct net *n, struct intro_view *v,
	    void *arg);

/* Lifecycle */
/*
 * Bind the listener on env->cfg->listen (if the port is taken and it is the
 * default 22000, fall back to a free port and log it) and start dialling.
 * `env` is copied; env.cfg must be kept valid and updated through
 * net_reconfigure(). Returns 0 or -errno (listen failure, logged).
 */
int	net_open(const struct conn_env *env, net_change_cb cb, void *arg,
	    struct net **out) SH_MUST_CHECK;
/* Close the listener and every connection; freed asynchronously. */
void	net_close(struct net *n);
/* Where introducers' ClusterConfigs go (bep-brief §12); without one they
 * are dropped. */
void	net_set_intro_cb(struct net *n, net_intro_cb cb, void *arg);
/* The config was reloaded: drop connections of removed devices, dial new
 * ones, send fresh ClusterConfigs. */
void	net_reconfigure(struct net *n, const struct config *cfg);

/* Operations */
/* New local records in a folder: tell every connection sharing it (`now`:
 * the batch is complete, skip the coalescing delay). */
void	net_index_kick(struct net *n, int64_t folder_idx, bool now);

/* Queries */
/* "tcp://127.0.0.1:PORT" as actually bound (borrowed). */
const char *net_listen_addr(const struct net *n);
/* The connected (active) connection to `id`, or NULL. */
struct conn *net_find(struct net *n, const struct device_id *id);
/* JSON array for status "peers": every configured device with connected,
 * address, client, in/out bytes, index counters. Caller owns it. */
json_t	*net_peers_json(struct net *n);
/* JSON array of pending devices: device_id, name, address, last_seen. */
json_t	*net_pending_json(struct net *n);

/* Discovery hook */
/*
 * Replace the addresses learnt for configured device `id` by discovery
 * ("tcp://H:P" each; copied, at most NET_MAX_DYNAMIC_ADDRS kept, invalid
 * ones skipped). They are dialled after the static ones; an idle device is
 * dialled at once. Returns 0 or SH_ENOTFOUND if `id` is not configured.
 */
int	net_set_dynamic_addresses(struct net *n, const struct device_id *id,
	    const char *const *addrs, size_t count) SH_MUST_CHECK;
/*
 * Remember (or refresh) `id` as a pending device: it tried to connect but
 * is not configured. At most NET_MAX_PENDING are kept; when full the one
 * seen longest ago is forgotten. Strings are copied.
 */
void	net_pending_note(struct net *n, const struct device_id *id,
	    const char *name, const char *address);

/* Helpers (pure; exposed for tests) */
/*
 * Split "tcp://HOST:PORT" (HOST: IPv4, [IPv6] or a name) into `host`
 * (brackets removed) and `port`. Returns 0 or SH_EPARSE.
 */
int	net_addr_parse(const char *url, char *host, size_t host_size,
	    uint16_t *port) SH_MUST_CHECK;
/* Format an IPv4/IPv6 socket address as "tcp://IP:PORT" (with `scheme`
 * true) or "IP:PORT"; IPv6 in brackets. Returns 0 or a uv code. */
int	net_addr_format(const struct sockaddr *sa, bool scheme, char *out,
	    size_t out_size) SH_MUST_CHECK;
/* True if a listen failure `rc` on `port` should be retried on port 0. */
bool	net_listen_should_fallback(int rc, uint16_t port);
/*
 * The one-connection-per-device rule. An established connection (whose
 * TLS client is `old_client`, established at `old_established_ms`) meets a
 * new one whose TLS client is `new_client`, at `now_ms` (util_now_ms()).
 * Returns true if the new one survives: the old one is older than
 * NET_REPLACE_AFTER_MS, or the new one's TLS client has the lower raw
 * device ID. Both ends reach the same answer for a simultaneous dial.
 */
bool	net_dup_keep_new(const struct device_id *old_client,
	    uint64_t old_established_ms, const struct device_id *new_client,
	    uint64_t now_ms);
/*
 * After a device's connection closed having lasted `lasted_s` seconds:
 * the pause before dialling it again. A connection shorter than
 * NET_SHORT_CONN_S (a peer that drops us at once, an index we cannot
 * store) is retried like a failed dial, the backoff doubling up to
 * NET_DIAL_BACKOFF_MAX_MS, since each new connection sends whole indexes
 * again; a longer one resets it.
 */
uint64_t net_redial_delay(uint64_t *backoff_ms, int64_t lasted_s);

#endif /* SHOAL_NET_H */

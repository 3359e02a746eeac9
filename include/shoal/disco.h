/* SPDX-License-Identifier: MIT */
/*
 * Local discovery (BEP Local Discovery v4, bep-brief §15): every interval
 * we send an Announce (magic + protobuf: our device ID, our listen URLs,
 * an instance ID) as an IPv4 directed broadcast and as IPv6 link-local
 * multicast to [ff12::8384]:21027, and we listen on UDP 21027 for the
 * announcements of others, completing unspecified hosts with the source
 * address of the datagram and keeping what we hear in a bounded cache
 * with a 90 s expiry. The daemon learns about devices through a callback
 * and hands the addresses to the connection manager.
 *
 * Discovery is unauthenticated: anyone on the LAN can claim any device ID
 * and any address. The only protection is the TLS device-ID check when we
 * connect (docs/internals/disco.md).
 *
 * The module has three layers: pure packet and address functions, a cache
 * that takes the time as a parameter (both unit-testable), and the runtime
 * object on a uv loop. Everything runs on the loop thread.
 */
#ifndef SHOAL_DISCO_H
#define SHOAL_DISCO_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "shoal/err.h"
#include "shoal/identity.h"

#define DISCO_MAGIC		0x2EA7D90BU	/* as the BEP Hello */
#define DISCO_MAGIC_V013	0x7D79BC40U	/* Syncthing v0.13; refused */
#define DISCO_DEFAULT_PORT	21027
#define DISCO_MCAST_GROUP	"ff12::8384"
#define DISCO_DEFAULT_INTERVAL_MS 30000
/* Cache entries are used for this many intervals after the last packet. */
#define DISCO_EXPIRY_INTERVALS	3
/* Caps on what we accept (and send): datagram, addresses, one address. */
#define DISCO_MAX_PACKET	65536
#define DISCO_MAX_ADDRS		64
#define DISCO_MAX_ADDR_LEN	256
/* Devices remembered; when full the one heard from longest ago goes. */
#define DISCO_CACHE_MAX		256
/* "tcp://[ffff:...:ffff%IFNAME]:65535" plus NUL, with room to spare. */
#define DISCO_ADDR_SIZE		80
/* Flood limits on what we receive, per one-second window. */
#define DISCO_RATE_PER_SOURCE	10	/* packets from one source IP */
#define DISCO_RATE_GLOBAL	200	/* packets in total */
#define DISCO_RATE_SOURCES	64	/* source IPs tracked */
/* Answering announcements (new device, restart, address change) are sent
 * at most this often. */
#define DISCO_REANNOUNCE_MIN_MS	1000
/* Test knob: when disco_params.interval_ms is 0 this environment variable,
 * if set to a number of milliseconds (>= 10), replaces the 30 s default. */
#define DISCO_INTERVAL_ENV	"SHOAL_DISCO_INTERVAL_MS"

/* Why a packet was refused: one line, peer strings escaped. */
struct disco_err {
	char	msg[256];
};

/* A decoded Announce. */
struct disco_announce {
	struct device_id id;			/* 32 bytes on the wire */
	int64_t		 instance_id;
	size_t		 addr_count;		/* <= DISCO_MAX_ADDRS */
	char		*addrs[DISCO_MAX_ADDRS];/* owned, NUL-terminated, as
						 * sent (unvalidated URLs) */
};

/* How an insert changed the cache (disco_cache_insert()). */
enum disco_change {
	DISCO_CHANGE_NONE = 0,		/* same instance, same addresses */
	DISCO_CHANGE_NEW,		/* unknown or expired device */
	DISCO_CHANGE_RESTARTED,		/* instance_id changed */
	DISCO_CHANGE_ADDRESSES		/* same instance, other addresses */
};

/* One cache entry as seen by iteration (all fields borrowed). */
struct disco_entry {
	struct device_id	 id;
	int64_t			 instance_id;	/* of the latest packet */
	uint64_t		 last_seen_ms;	/* util_now_ms() clock */
	int64_t			 last_seen_unix;/* seconds since the epoch */
	size_t			 addr_count;
	const char *const	*addrs;		/* filled-in tcp:// URLs */
};

struct disco_cache;
struct disco;

typedef void (*disco_entry_cb)(const struct disco_entry *e, void *arg);
/*
 * The usable address set of device `id` changed: it is new, restarted
 * (instance_id changed), gained or lost an address (see
 * disco_cache_insert()), or expired (count 0). `addrs` is the whole
 * current set.
 * `addrs` are "tcp://IP:PORT" URLs (IPv6 bracketed, link-local with a
 * %ifname zone), borrowed for the duration of the call. May be called
 * with count 0 for a device that announced nothing we can dial. Never
 * called for our own ID, and never after disco_close().
 */
typedef void (*disco_seen_cb)(const struct device_id *id,
	    const char *const *addrs, size_t count, void *arg);

/* Packets (pure) */
/*
 * Build a datagram: magic then the Announce. `addrs` (count of them) are
 * sent as given. Returns 0 with *out (caller frees with free()) and
 * *out_len, or -EINVAL when count > DISCO_MAX_ADDRS, an address is longer
 * than DISCO_MAX_ADDR_LEN, or the result would exceed DISCO_MAX_PACKET.
 */
int	disco_packet_encode(const struct device_id *id,
	    const char *const *addrs, size_t count, int64_t instance_id,
	    uint8_t **out, size_t *out_len) SH_MUST_CHECK;
/*
 * Parse a datagram of `len` bytes. Returns:
 *   0                 *out filled (release with disco_announce_clear());
 *   -EMSGSIZE         len > DISCO_MAX_PACKET;
 *   -EPROTONOSUPPORT  the v0.13 magic DISCO_MAGIC_V013 (worth a warning);
 *   SH_EPROTO         any other magic, a malformed protobuf, an id that is
 *                     not 32 bytes, more than DISCO_MAX_ADDRS addresses,
 *                     an address longer than DISCO_MAX_ADDR_LEN or
 *                     holding a NUL or control byte.
 * On failure *out is zeroed and err (may be NULL) holds the reason.
 * Nothing is allocated before the whole packet has been checked.
 */
int	disco_packet_decode(const uint8_t *buf, size_t len,
	    struct disco_announce *out, struct disco_err *err) SH_MUST_CHECK;
/* Free the addresses and zero *a; accepts a zeroed one. */
void	disco_announce_clear(struct disco_announce *a);

/*
 * Turn an announced URL into one we can dial (bep-brief §15.3): schemes
 * tcp://, tcp4:// and tcp6:// are spoken and normalised to tcp://; the
 * host must be an IP literal (names are not resolved: an unauthenticated
 * packet must not make us send DNS queries); an unspecified host
 * (0.0.0.0, ::, empty) becomes the source IP of the datagram `src`
 * (AF_INET or AF_INET6; an IPv4-mapped IPv6 source counts as IPv4); the
 * port is kept and must be 1..65535. A link-local IPv6 result gets the
 * source's zone as "%ifname" ("tcp://[fe80::1%eth0]:22000"); a zone sent
 * by the peer is ignored. Returns:
 *   0                 out (out_size >= DISCO_ADDR_SIZE) holds the URL;
 *   -EPROTONOSUPPORT  a scheme we do not speak (quic://, relay://, ...);
 *   -EAFNOSUPPORT     tcp4:// completed from an IPv6 source or with an
 *                     IPv6 literal, or tcp6:// the other way round;
 *   SH_EPARSE         host:port does not parse.
 */
int	disco_fill_address(const char *url, const struct sockaddr *src,
	    char *out, size_t out_size) SH_MUST_CHECK;

/* Cache (pure; the caller passes the time) */
/*
 * New empty cache holding at most `max_entries` devices (0 means
 * DISCO_CACHE_MAX), each valid for `expiry_ms` after its last insert.
 * Free with disco_cache_free().
 */
struct disco_cache *disco_cache_new(size_t max_entries, uint64_t expiry_ms);
void	disco_cache_free(struct disco_cache *c);
/*
 * Record that `id` announced `addrs` (count, copied; already filled in)
 * with `instance_id` in a datagram from a source of `family` (AF_INET or
 * AF_INET6) at `now_ms` (monotonic) / `now_unix`. A device's address set
 * is the union of the addresses it announced within the expiry, each
 * timed on its own (the IPv4 and the IPv6 copy of one announcement fill
 * in different source addresses); addresses older than the expiry are
 * dropped here. Instance IDs are compared per family (Syncthing uses one
 * per family); a changed one is a restart and forgets the addresses last
 * learnt over that family. A full cache evicts the device heard from
 * longest ago. Returns how the entry changed: NEW (unknown or expired),
 * RESTARTED, ADDRESSES (the set gained or lost an address) or NONE. At
 * most DISCO_MAX_ADDRS addresses are kept per device (the oldest makes
 * room).
 */
enum disco_change disco_cache_insert(struct disco_cache *c,
	    const struct device_id *id, int family, int64_t instance_id,
	    const char *const *addrs, size_t count, uint64_t now_ms,
	    int64_t now_unix);
/*
 * The addresses of `id` if it was heard within the expiry. Returns 0 with
 * *addrs (borrowed until the next insert/expire/free) and *count, or
 * SH_ENOTFOUND (unknown or expired).
 */
int	disco_cache_lookup(struct disco_cache *c, const struct device_id *id,
	    uint64_t now_ms, const char *const **addrs, size_t *count)
	    SH_MUST_CHECK;
/* Call cb for every entry not expired at now_ms, most recent first. */
void	disco_cache_foreach(struct disco_cache *c, uint64_t now_ms,
	    disco_entry_cb cb, void *arg);
/* Remove entries expired at now_ms, calling cb (may be NULL) for each
 * before it is freed. Returns the number removed. */
size_t	disco_cache_expire(struct disco_cache *c, uint64_t now_ms,
	    disco_entry_cb cb, void *arg);
size_t	disco_cache_count(const struct disco_cache *c);

/* Runtime */
struct disco_params {
	struct device_id self;		/* our ID: announced, and ignored */
	bool		 announce;	/* send announcements */
	bool		 listen;	/* receive announcements */
	uint16_t	 port;		/* 0 means DISCO_DEFAULT_PORT */
	uint32_t	 interval_ms;	/* 0: $SHOAL_DISCO_INTERVAL_MS|30 s */
	disco_seen_cb	 on_seen;	/* may be NULL */
	void		*arg;		/* for on_seen */
	/*
	 * Tests only. When not NULL: announcements go only to this
	 * "IPv4:PORT" (e.g. "127.0.0.1:21999"; "" means nowhere until
	 * disco_test_set_unicast()), never broadcast or multicast; the
	 * listener binds 127.0.0.1 instead of 0.0.0.0, no IPv6 socket is
	 * opened, and a `port` of 0 binds an ephemeral port (see
	 * disco_listen_port()). Borrowed for the duration of disco_open().
	 */
	const char	*test_unicast_to;
};

/* Lifecycle */
/*
 * Start discovery on `loop`: bind the listeners (IPv4 0.0.0.0:port with
 * UV_UDP_REUSEADDR so a Syncthing on the same host keeps working; IPv6
 * [::]:port joining ff12::8384 on every multicast-capable interface, or
 * IPv4 only when IPv6 is unavailable), open the send sockets and start
 * the interval timer. Nothing is sent until disco_set_addresses() gives
 * an address. Returns 0 and *out (close with disco_close()), or -EINVAL
 * (bad test_unicast_to), SH_ECRYPTO (libsodium), or the uv code of a
 * failed IPv4 socket/bind (logged), with *out = NULL; handles opened
 * before the failure are closed asynchronously, so run the loop before
 * closing it. A caller may treat failure as "run without discovery".
 */
int	disco_open(uv_loop_t *loop, const struct disco_params *p,
	    struct disco **out) SH_MUST_CHECK;
/* Stop and close every handle; memory is freed from the last close
 * callback, so run the loop afterwards. No callback runs after this.
 * Accepts NULL. */
void	disco_close(struct disco *d);

/* Configuration */
/*
 * Set the URLs we announce (copied; e.g. "tcp://0.0.0.0:22000", whose
 * unspecified host receivers fill in). If the set differs from the
 * previous one an announcement goes out at once (rate-limited to one per
 * DISCO_REANNOUNCE_MIN_MS). Loopback URLs (127/8, [::1], localhost) are
 * never announced; count 0, or only loopback URLs, stops announcing, so a
 * daemon listening on 127.0.0.1 sends nothing to the LAN. Returns 0, or
 * -EINVAL for more than DISCO_MAX_ADDRS or an over-long address (nothing
 * changed).
 */
int	disco_set_addresses(struct disco *d, const char *const *urls,
	    size_t count) SH_MUST_CHECK;
/* Tests only: change the unicast destination of a disco opened with
 * test_unicast_to. Returns 0, -EINVAL (bad address or not in test mode). */
int	disco_test_set_unicast(struct disco *d, const char *hostport)
	    SH_MUST_CHECK;

/* Queries */
/* The local UDP port the IPv4 listener is bound to (0 if not listening). */
uint16_t disco_listen_port(const struct disco *d);
/* Our random instance ID (non-negative, 63 bits). */
int64_t	disco_instance_id(const struct disco *d);
/* The cache, for lookups and iteration (borrowed; valid until close). */
struct disco_cache *disco_cache(struct disco *d);
/*
 * JSON array for status "discovered": one object per unexpired device,
 * {"device_id": "XXXXXXX-...", "addresses": ["tcp://..."],
 *  "instance_id": N, "last_seen": UNIX_SECONDS}. Caller owns it.
 */
json_t	*disco_discovered_json(struct disco *d);

#endif /* SHOAL_DISCO_H */

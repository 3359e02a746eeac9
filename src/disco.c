/* SPDX-License-Identifier: MIT */
/*
 * Local discovery, BEP Local Discovery v4 (bep-brief §15). Three layers:
 *
 *   packets   disco_packet_encode/decode and disco_fill_address: pure, so
 *             the unit tests and the fuzzer reach every decision;
 *   cache     struct disco_cache: device -> filled-in addresses, instance
 *             ID and last-seen time, bounded, with the clock passed in;
 *   runtime   struct disco: sockets and timers on the daemon's uv loop.
 *
 * Everything that arrives is hostile until checked (style.md §4): a
 * datagram is capped at DISCO_MAX_PACKET by the receive buffer itself,
 * the decoder checks every length before it allocates, receiving is
 * rate-limited per source IP and in total per second, and the cache is
 * bounded, so a flood costs a bounded amount of CPU and memory. Nothing
 * heard here is trusted for identity: the TLS device-ID check when we
 * dial is the only protection (docs/internals/disco.md).
 *
 * Sends use uv_udp_try_send(): datagrams are small, and a synchronous send
 * lets us switch the IPv6 multicast interface between sends without
 * queued requests going out on the wrong interface.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "bep.pb-c.h"

#include "shoal/disco.h"
#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/util.h"

#define COMP		"disco"
#define ESC_SIZE	128
#define MIN_INTERVAL_MS	10
#define MAX_INTERVAL_MS	3600000
/* Interfaces we send to per round; more are ignored (logged at DEBUG). */
#define MAX_IFACES	32

/* Packets */

static void
set_err(struct disco_err *err, const char *fmt, ...) SH_PRINTF(2, 3);

static void
set_err(struct disco_err *err, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

int
disco_packet_encode(const struct device_id *id, const char *const *addrs,
    size_t count, int64_t instance_id, uint8_t **out, size_t *out_len)
{
	Shoal__Bep__Announce	 a = SHOAL__BEP__ANNOUNCE__INIT;
	uint8_t			*buf = NULL;
	size_t			 i, plen;
	int			 rc = -EINVAL;

	*out = NULL;
	*out_len = 0;
	if (count > DISCO_MAX_ADDRS)
		goto out;
	for (i = 0; i < count; i++)
		if (strlen(addrs[i]) > DISCO_MAX_ADDR_LEN)
			goto out;
	a.id.data = (uint8_t *)id->raw;
	a.id.len = IDENTITY_ID_LEN;
	/* protobuf-c only reads the strings; the cast drops const. */
	a.addresses = (char **)(uintptr_t)addrs;
	a.n_addresses = count;
	a.instance_id = instance_id;
	plen = shoal__bep__announce__get_packed_size(&a);
	if (plen > DISCO_MAX_PACKET - 4)
		goto out;
	buf = xmalloc(4 + plen);
	buf[0] = (DISCO_MAGIC >> 24) & 0xff;
	buf[1] = (DISCO_MAGIC >> 16) & 0xff;
	buf[2] = (DISCO_MAGIC >> 8) & 0xff;
	buf[3] = DISCO_MAGIC & 0xff;
	if (shoal__bep__announce__pack(&a, buf + 4) != plen) {
		rc = SH_EPROTO;
		goto out;
	}
	*out = buf;
	*out_len = 4 + plen;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Protobuf varint at *pos; 0 or -1 (truncated or longer than 64 bits). */
static int
get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t	r = 0;
	unsigned	shift = 0;
	uint8_t		b;

	while (*pos < len) {
		b = p[(*pos)++];
		if (shift == 63 && b > 1)
			return -1;
		r |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*v = r;
			return 0;
		}
		shift += 7;
		if (shift > 63)
			return -1;
	}
	return -1;
}

void
disco_announce_clear(struct disco_announce *a)
{
	size_t	i;

	if (a == NULL)
		return;
	for (i = 0; i < a->addr_count; i++)
		free(a->addrs[i]);
	memset(a, 0, sizeof(*a));
}

int
disco_packet_decode(const uint8_t *buf, size_t len,
    struct disco_announce *out, struct disco_err *err)
{
	const uint8_t	*p, *id = NULL, *str[DISCO_MAX_ADDRS];
	size_t		 slen[DISCO_MAX_ADDRS], plen, pos = 0, n = 0, idlen = 0;
	size_t		 i, j;
	uint64_t	 key, v, inst = 0;
	uint32_t	 magic;
	int		 rc = SH_EPROTO;

	memset(out, 0, sizeof(*out));
	if (len > DISCO_MAX_PACKET) {
		set_err(err, "datagram of %zu bytes exceeds %d", len,
		    DISCO_MAX_PACKET);
		rc = -EMSGSIZE;
		goto out;
	}
	if (len < 4) {
		set_err(err, "datagram of %zu bytes is too short", len);
		goto out;
	}
	magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	if (magic == DISCO_MAGIC_V013) {
		set_err(err, "older protocol (v0.13 magic 0x%08" PRIx32 ")",
		    magic);
		rc = -EPROTONOSUPPORT;
		goto out;
	}
	if (magic != DISCO_MAGIC) {
		set_err(err, "unknown magic 0x%08" PRIx32, magic);
		goto out;
	}
	p = buf + 4;
	plen = len - 4;
	/*
	 * Walk the protobuf by hand rather than with protobuf-c's unpack:
	 * unpack allocates for every repeated element before we could
	 * apply our caps, and a 64 KiB datagram of empty strings would be
	 * tens of thousands of allocations. Unknown fields are skipped as
	 * proto3 requires; a repeated scalar field keeps its last value.
	 */
	while (pos < plen) {
		if (get_varint(p, plen, &pos, &key) != 0 || (key >> 3) == 0 ||
		    (key >> 3) > UINT32_MAX) {
			set_err(err, "bad field key at offset %zu", pos + 4);
			goto out;
		}
		switch (key & 7) {
		case 0:
			if (get_varint(p, plen, &pos, &v) != 0) {
				set_err(err, "truncated varint");
				goto out;
			}
			if ((key >> 3) == 3)
				inst = v;
			else if ((key >> 3) <= 2) {
				set_err(err, "field %u has the wrong type",
				    (unsigned)(key >> 3));
				goto out;
			}
			break;
		case 1:
		case 5:
			v = (key & 7) == 1 ? 8 : 4;
			if ((key >> 3) <= 3) {
				set_err(err, "field %u has the wrong type",
				    (unsigned)(key >> 3));
				goto out;
			}
			if (plen - pos < v) {
				set_err(err, "truncated fixed field");
				goto out;
			}
			pos += v;
			break;
		case 2:
			if (get_varint(p, plen, &pos, &v) != 0 ||
			    v > plen - pos) {
				set_err(err, "truncated length-delimited "
				    "field");
				goto out;
			}
			if ((key >> 3) == 1) {
				id = p + pos;
				idlen = v;
			} else if ((key >> 3) == 2) {
				if (n == DISCO_MAX_ADDRS) {
					set_err(err, "more than %d addresses",
					    DISCO_MAX_ADDRS);
					goto out;
				}
				if (v > DISCO_MAX_ADDR_LEN) {
					set_err(err, "address of %" PRIu64
					    " bytes exceeds %d", v,
					    DISCO_MAX_ADDR_LEN);
					goto out;
				}
				for (j = 0; j < v; j++)
					if (p[pos + j] < 0x20 ||
					    p[pos + j] == 0x7f) {
						set_err(err, "control byte in "
						    "address %zu", n);
						goto out;
					}
				str[n] = p + pos;
				slen[n] = v;
				n++;
			} else if ((key >> 3) == 3) {
				set_err(err, "field 3 has the wrong type");
				goto out;
			}
			pos += v;
			break;
		default:
			set_err(err, "unsupported wire type %u",
			    (unsigned)(key & 7));
			goto out;
		}
	}
	if (idlen != IDENTITY_ID_LEN) {
		set_err(err, "device ID of %zu bytes (want %d)", idlen,
		    IDENTITY_ID_LEN);
		goto out;
	}
	memcpy(out->id.raw, id, IDENTITY_ID_LEN);
	/* int64 on the wire is two's complement in a 64-bit varint. */
	out->instance_id = (int64_t)inst;
	for (i = 0; i < n; i++)
		out->addrs[i] = xstrndup((const char *)str[i], slen[i]);
	out->addr_count = n;
	rc = 0;
out:
	return rc;
}

/* Addresses */

/* The IPv4 address inside `sa` (plain or IPv4-mapped IPv6), or false. */
static bool
sa_ipv4(const struct sockaddr *sa, struct in_addr *out)
{
	const struct sockaddr_in6	*s6;

	if (sa->sa_family == AF_INET) {
		*out = ((const struct sockaddr_in *)sa)->sin_addr;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(&out->s_addr, &s6->sin6_addr.s6_addr[12], 4);
			return true;
		}
	}
	return false;
}

int
disco_fill_address(const char *url, const struct sockaddr *src, char *out,
    size_t out_size)
{
	const struct sockaddr_in6	*s6 = NULL;
	const char			*hp, *h, *hend, *port_s;
	char				 host[64], ip[INET6_ADDRSTRLEN];
	char				 zone[IF_NAMESIZE + 1];
	struct in_addr			 a4;
	struct in6_addr			 a6;
	uint64_t			 port;
	size_t				 hlen;
	int				 fam = 0, want = 0, w, rc = SH_EPARSE;
	bool				 bracket = false;

	out[0] = '\0';
	zone[0] = '\0';
	hp = strstr(url, "://");
	if (hp == NULL)
		goto out;
	/* Go's url.Parse lower-cases the scheme; so do we. */
	if (hp - url == 3 && strncasecmp(url, "tcp", 3) == 0)
		want = 0;
	else if (hp - url == 4 && strncasecmp(url, "tcp4", 4) == 0)
		want = AF_INET;
	else if (hp - url == 4 && strncasecmp(url, "tcp6", 4) == 0)
		want = AF_INET6;
	else {
		rc = -EPROTONOSUPPORT;
		goto out;
	}
	h = hp + 3;
	if (*h == '[') {
		bracket = true;
		h++;
		hend = strchr(h, ']');
		if (hend == NULL || hend[1] != ':')
			goto out;
		port_s = hend + 2;
	} else {
		hend = strrchr(h, ':');
		if (hend == NULL || memchr(h, ':', (size_t)(hend - h)) != NULL)
			goto out;
		port_s = hend + 1;
	}
	hlen = (size_t)(hend - h);
	if (hlen >= sizeof(host))
		goto out;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	/* A zone from the peer names one of its interfaces, not ours. */
	if (bracket && strchr(host, '%') != NULL)
		*strchr(host, '%') = '\0';
	if (*port_s == '\0' || strlen(port_s) > 5 ||
	    strspn(port_s, "0123456789") != strlen(port_s) ||
	    util_parse_u64(port_s, 1, 65535, &port) != 0)
		goto out;

	if (host[0] == '\0' && !bracket) {
		fam = 0;	/* unspecified, either family */
	} else if (!bracket && inet_pton(AF_INET, host, &a4) == 1) {
		fam = AF_INET;
		if (a4.s_addr == htonl(INADDR_ANY))
			fam = 0;
	} else if (bracket && inet_pton(AF_INET6, host, &a6) == 1) {
		fam = AF_INET6;
		if (IN6_IS_ADDR_UNSPECIFIED(&a6))
			fam = 0;
	} else
		goto out;	/* a name, or garbage: never resolved */

	if (fam == 0) {
		/* §15.3: the unspecified host is the datagram's source. */
		if (sa_ipv4(src, &a4))
			fam = AF_INET;
		else if (src->sa_family == AF_INET6) {
			s6 = (const struct sockaddr_in6 *)src;
			a6 = s6->sin6_addr;
			fam = AF_INET6;
		} else {
			rc = -EAFNOSUPPORT;
			goto out;
		}
	} else if (fam == AF_INET6 && src->sa_family == AF_INET6)
		s6 = (const struct sockaddr_in6 *)src;
	if (want != 0 && fam != want) {
		rc = -EAFNOSUPPORT;
		goto out;
	}

	if (fam == AF_INET) {
		if (inet_ntop(AF_INET, &a4, ip, sizeof(ip)) == NULL) {
			rc = -errno;
			goto out;
		}
		w = snprintf(out, out_size, "tcp://%s:%u", ip,
		    (unsigned)port);
	} else {
		if (inet_ntop(AF_INET6, &a6, ip, sizeof(ip)) == NULL) {
			rc = -errno;
			goto out;
		}
		/*
		 * A link-local address is only dialable with a zone; the
		 * interface the datagram came in on is the right one.
		 */
		if (IN6_IS_ADDR_LINKLOCAL(&a6) && s6 != NULL &&
		    s6->sin6_scope_id != 0 &&
		    if_indextoname(s6->sin6_scope_id, zone + 1) != NULL)
			zone[0] = '%';
		else
			zone[0] = '\0';
		w = snprintf(out, out_size, "tcp://[%s%s]:%u", ip, zone,
		    (unsigned)port);
	}
	if (w < 0 || (size_t)w >= out_size) {
		out[0] = '\0';
		rc = -ENOSPC;
		goto out;
	}
	rc = 0;
out:
	return rc;
}

/* Cache */

/*
 * One device. Its address set is the union of what it announced within
 * the expiry, each address with its own last-seen time: one announcement
 * arrives twice (IPv4 broadcast and IPv6 multicast) and the unspecified
 * host is filled in differently from each source, so replacing the set
 * per packet would make it flip between the two every interval.
 */
/*
 * Instance IDs are kept per source family: Syncthing runs its IPv4 and its
 * IPv6 discovery as two clients, each with its own random instance ID
 * (seen against Debian's syncthing 1.19.2), so one Syncthing alternates
 * between two IDs and comparing with the last packet would call every
 * packet a restart. A restart seen over one family forgets only the
 * addresses last learnt over that family.
 */
#define FAM_V4		0
#define FAM_V6		1

struct centry {
	bool		 used;
	struct device_id id;
	int64_t		 instance_id;		/* of the latest packet */
	int64_t		 inst[2];		/* per FAM_* */
	bool		 has_inst[2];
	uint64_t	 seen_ms;
	int64_t		 seen_unix;
	size_t		 count;
	char		*addrs[DISCO_MAX_ADDRS];	/* owned */
	uint64_t	 addr_seen_ms[DISCO_MAX_ADDRS];
	uint8_t		 addr_fam[DISCO_MAX_ADDRS];	/* FAM_* */
};

struct disco_cache {
	struct centry	*e;		/* max of them */
	size_t		 max;
	size_t		 count;		/* used entries */
	uint64_t	 expiry_ms;
};

struct disco_cache *
disco_cache_new(size_t max_entries, uint64_t expiry_ms)
{
	struct disco_cache	*c;

	c = xcalloc(1, sizeof(*c));
	c->max = max_entries == 0 ? DISCO_CACHE_MAX : max_entries;
	c->e = xcalloc(c->max, sizeof(*c->e));
	c->expiry_ms = expiry_ms;
	return c;
}

static void
centry_drop_addrs(struct centry *e)
{
	size_t	i;

	for (i = 0; i < e->count; i++)
		free(e->addrs[i]);
	e->count = 0;
}

static void
centry_remove_addr(struct centry *e, size_t i)
{
	free(e->addrs[i]);
	e->count--;
	e->addrs[i] = e->addrs[e->count];
	e->addr_seen_ms[i] = e->addr_seen_ms[e->count];
	e->addr_fam[i] = e->addr_fam[e->count];
}

/* Forget the addresses last learnt over `fam`; true if any went. */
static bool
centry_drop_fam(struct centry *e, uint8_t fam)
{
	size_t	i = 0;
	bool	changed = false;

	while (i < e->count) {
		if (e->addr_fam[i] != fam) {
			i++;
			continue;
		}
		centry_remove_addr(e, i);
		changed = true;
	}
	return changed;
}

static void
centry_clear(struct disco_cache *c, struct centry *e)
{
	if (!e->used)
		return;
	centry_drop_addrs(e);
	memset(e, 0, sizeof(*e));
	c->count--;
}

void
disco_cache_free(struct disco_cache *c)
{
	size_t	i;

	if (c == NULL)
		return;
	for (i = 0; i < c->max; i++)
		centry_clear(c, &c->e[i]);
	free(c->e);
	free(c);
}

static bool
is_expired(const struct disco_cache *c, uint64_t seen_ms, uint64_t now_ms)
{
	return now_ms >= seen_ms && now_ms - seen_ms >= c->expiry_ms;
}

static bool
centry_expired(const struct disco_cache *c, const struct centry *e,
    uint64_t now_ms)
{
	return is_expired(c, e->seen_ms, now_ms);
}

static struct centry *
centry_find(struct disco_cache *c, const struct device_id *id)
{
	size_t	i;

	for (i = 0; i < c->max; i++)
		if (c->e[i].used && identity_id_equal(&c->e[i].id, id))
			return &c->e[i];
	return NULL;
}

/* Add or refresh one address; true if the set grew or changed. */
static bool
centry_note_addr(struct centry *e, const char *a, uint8_t fam,
    uint64_t now_ms)
{
	size_t	i, old = 0;

	for (i = 0; i < e->count; i++) {
		if (strcmp(e->addrs[i], a) == 0) {
			e->addr_seen_ms[i] = now_ms;
			e->addr_fam[i] = fam;
			return false;
		}
		if (e->addr_seen_ms[i] < e->addr_seen_ms[old])
			old = i;
	}
	if (e->count == DISCO_MAX_ADDRS) {
		/* Full: the address announced longest ago makes room. */
		free(e->addrs[old]);
		e->addrs[old] = xstrdup(a);
		e->addr_seen_ms[old] = now_ms;
		e->addr_fam[old] = fam;
		return true;
	}
	e->addrs[e->count] = xstrdup(a);
	e->addr_seen_ms[e->count] = now_ms;
	e->addr_fam[e->count] = fam;
	e->count++;
	return true;
}

/* Forget addresses not announced within the expiry; true if any went. */
static bool
centry_prune(const struct disco_cache *c, struct centry *e, uint64_t now_ms)
{
	size_t	i = 0;
	bool	changed = false;

	while (i < e->count) {
		if (!is_expired(c, e->addr_seen_ms[i], now_ms)) {
			i++;
			continue;
		}
		centry_remove_addr(e, i);
		changed = true;
	}
	return changed;
}

enum disco_change
disco_cache_insert(struct disco_cache *c, const struct device_id *id,
    int family, int64_t instance_id, const char *const *addrs, size_t count,
    uint64_t now_ms, int64_t now_unix)
{
	struct centry		*e, *old;
	enum disco_change	 ch = DISCO_CHANGE_NONE;
	size_t			 i;
	uint8_t			 fam = family == AF_INET6 ? FAM_V6 : FAM_V4;
	bool			 grew = false;

	e = centry_find(c, id);
	if (e != NULL && centry_expired(c, e, now_ms)) {
		centry_clear(c, e);
		e = NULL;
	}
	if (e == NULL) {
		ch = DISCO_CHANGE_NEW;
		old = NULL;
		for (i = 0; i < c->max; i++) {
			if (!c->e[i].used) {
				e = &c->e[i];
				break;
			}
			if (old == NULL || c->e[i].seen_ms < old->seen_ms)
				old = &c->e[i];
		}
		if (e == NULL) {
			/* Full: forget the device heard from longest ago. */
			centry_clear(c, old);
			e = old;
		}
		e->used = true;
		e->id = *id;
		c->count++;
	} else if (e->has_inst[fam] && e->inst[fam] != instance_id) {
		/* A restart: what it announced before may be stale (a new
		 * port when it listens on port 0). */
		ch = DISCO_CHANGE_RESTARTED;
		(void)centry_drop_fam(e, fam);
	}
	e->instance_id = instance_id;
	e->inst[fam] = instance_id;
	e->has_inst[fam] = true;
	e->seen_ms = now_ms;
	e->seen_unix = now_unix;
	for (i = 0; i < count && i < DISCO_MAX_ADDRS; i++)
		if (centry_note_addr(e, addrs[i], fam, now_ms))
			grew = true;
	if (centry_prune(c, e, now_ms))
		grew = true;
	if (ch == DISCO_CHANGE_NONE && grew)
		ch = DISCO_CHANGE_ADDRESSES;
	return ch;
}

int
disco_cache_lookup(struct disco_cache *c, const struct device_id *id,
    uint64_t now_ms, const char *const **addrs, size_t *count)
{
	struct centry	*e;
	int		 rc = SH_ENOTFOUND;

	*addrs = NULL;
	*count = 0;
	e = centry_find(c, id);
	if (e == NULL || centry_expired(c, e, now_ms))
		goto out;
	*addrs = (const char *const *)e->addrs;
	*count = e->count;
	rc = 0;
out:
	return rc;
}

static void
centry_view(const struct centry *e, struct disco_entry *v)
{
	v->id = e->id;
	v->instance_id = e->instance_id;
	v->last_seen_ms = e->seen_ms;
	v->last_seen_unix = e->seen_unix;
	v->addr_count = e->count;
	v->addrs = (const char *const *)e->addrs;
}

static int
centry_cmp_recent(const void *a, const void *b)
{
	const struct centry	*x = *(const struct centry *const *)a;
	const struct centry	*y = *(const struct centry *const *)b;

	if (x->seen_ms != y->seen_ms)
		return x->seen_ms > y->seen_ms ? -1 : 1;
	return memcmp(x->id.raw, y->id.raw, IDENTITY_ID_LEN);
}

void
disco_cache_foreach(struct disco_cache *c, uint64_t now_ms,
    disco_entry_cb cb, void *arg)
{
	struct centry		**v;
	struct disco_entry	  view;
	size_t			  i, n = 0;

	if (c->count == 0)
		return;
	v = xcalloc(c->count, sizeof(*v));
	for (i = 0; i < c->max; i++)
		if (c->e[i].used && !centry_expired(c, &c->e[i], now_ms))
			v[n++] = &c->e[i];
	qsort(v, n, sizeof(*v), centry_cmp_recent);
	for (i = 0; i < n; i++) {
		centry_view(v[i], &view);
		cb(&view, arg);
	}
	free(v);
}

size_t
disco_cache_expire(struct disco_cache *c, uint64_t now_ms,
    disco_entry_cb cb, void *arg)
{
	struct disco_entry	view;
	size_t			i, n = 0;

	for (i = 0; i < c->max; i++) {
		if (!c->e[i].used || !centry_expired(c, &c->e[i], now_ms))
			continue;
		if (cb != NULL) {
			centry_view(&c->e[i], &view);
			cb(&view, arg);
		}
		centry_clear(c, &c->e[i]);
		n++;
	}
	return n;
}

size_t
disco_cache_count(const struct disco_cache *c)
{
	return c->count;
}

/* Runtime */

struct rate_slot {
	uint8_t		ip[16];		/* IPv4 as ::ffff:a.b.c.d */
	uint64_t	window;		/* second it counts for */
	uint32_t	count;
};

struct disco {
	uv_loop_t		*loop;
	struct disco_params	 p;		/* test_unicast_to cleared */
	bool			 test_mode;
	bool			 test_dst_set;
	struct sockaddr_in	 test_dst;
	uint16_t		 port;		/* configured (0 in tests) */
	uint32_t		 interval_ms;
	int64_t			 instance_id;
	struct disco_cache	*cache;

	uv_timer_t		 tick;		/* every interval */
	uv_timer_t		 soon;		/* a rate-limited re-announce */
	uv_udp_t		 rx4, rx6, tx4, tx6;
	bool			 rx4_init, rx6_init, tx4_init, tx6_init;
	bool			 timers_init;
	int			 handles;	/* initialised, not closed */
	bool			 closing;

	char			**addrs;	/* what we announce, owned */
	size_t			 addr_count;
	uint8_t			*pkt;		/* encoded announcement */
	size_t			 pkt_len;
	uint64_t		 last_send_ms;
	bool			 sent_once;

	struct rate_slot	 rate[DISCO_RATE_SOURCES];
	uint64_t		 global_window;
	uint32_t		 global_count;
	bool			 warned_old;

	char			 rxbuf[DISCO_MAX_PACKET];
};

static void
free_disco(struct disco *d)
{
	size_t	i;

	disco_cache_free(d->cache);
	for (i = 0; i < d->addr_count; i++)
		free(d->addrs[i]);
	free(d->addrs);
	free(d->pkt);
	free(d);
}

static void
on_handle_closed(uv_handle_t *h)
{
	struct disco	*d = h->data;

	if (--d->handles > 0)
		return;
	free_disco(d);
}

void
disco_close(struct disco *d)
{
	if (d == NULL || d->closing)
		return;
	d->closing = true;
	/* A handle's close callback frees d when it is the last one. */
	if (d->timers_init) {
		uv_close((uv_handle_t *)&d->tick, on_handle_closed);
		uv_close((uv_handle_t *)&d->soon, on_handle_closed);
	}
	if (d->rx4_init)
		uv_close((uv_handle_t *)&d->rx4, on_handle_closed);
	if (d->rx6_init)
		uv_close((uv_handle_t *)&d->rx6, on_handle_closed);
	if (d->tx4_init)
		uv_close((uv_handle_t *)&d->tx4, on_handle_closed);
	if (d->tx6_init)
		uv_close((uv_handle_t *)&d->tx6, on_handle_closed);
	if (d->handles == 0)
		free_disco(d);
}

static void
short_id(const struct device_id *id, char out[IDENTITY_SHORT_STR_SIZE])
{
	identity_short_format(identity_short_id(id), out);
}

/* Send one datagram; failures (no route, interface gone) are routine. */
static void
send_to(struct disco *d, uv_udp_t *h, const struct sockaddr *to,
    const char *what)
{
	uv_buf_t	b;
	int		rc;

	b = uv_buf_init((char *)d->pkt, (unsigned int)d->pkt_len);
	rc = uv_udp_try_send(h, &b, 1, to);
	if (rc < 0)
		LOG_DEBUG(COMP, "announce to %s: %s", what, sh_strerror(rc));
}

static void
announce_v4(struct disco *d, const struct ifaddrs *ifa0)
{
	const struct ifaddrs	*ifa;
	struct sockaddr_in	 dst[MAX_IFACES];
	struct in_addr		 bc;
	char			 txt[INET_ADDRSTRLEN];
	size_t			 i, n = 0;
	uint32_t		 a, m;

	for (ifa = ifa0; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family !=
		    AF_INET || (ifa->ifa_flags & IFF_UP) == 0 ||
		    (ifa->ifa_flags & IFF_BROADCAST) == 0 ||
		    (ifa->ifa_flags & IFF_LOOPBACK) != 0 ||
		    ifa->ifa_netmask == NULL)
			continue;
		a = ntohl(((const struct sockaddr_in *)ifa->ifa_addr)->
		    sin_addr.s_addr);
		/* §15.1: global unicast only; link-local 169.254/16 is not. */
		if ((a >> 16) == 0xa9fe || (a >> 24) == 127)
			continue;
		m = ntohl(((const struct sockaddr_in *)ifa->ifa_netmask)->
		    sin_addr.s_addr);
		bc.s_addr = htonl(a | ~m);
		for (i = 0; i < n; i++)
			if (dst[i].sin_addr.s_addr == bc.s_addr)
				break;
		if (i < n)
			continue;
		if (n == MAX_IFACES) {
			LOG_DEBUG(COMP, "more than %d IPv4 interfaces",
			    MAX_IFACES);
			break;
		}
		memset(&dst[n], 0, sizeof(dst[n]));
		dst[n].sin_family = AF_INET;
		dst[n].sin_port = htons(d->port);
		dst[n].sin_addr = bc;
		n++;
	}
	if (n == 0) {
		memset(&dst[0], 0, sizeof(dst[0]));
		dst[0].sin_family = AF_INET;
		dst[0].sin_port = htons(d->port);
		dst[0].sin_addr.s_addr = htonl(INADDR_BROADCAST);
		n = 1;
	}
	for (i = 0; i < n; i++) {
		if (inet_ntop(AF_INET, &dst[i].sin_addr, txt, sizeof(txt)) ==
		    NULL)
			txt[0] = '\0';
		send_to(d, &d->tx4, (const struct sockaddr *)&dst[i], txt);
	}
}

/* Names of up, multicast-capable, non-loopback interfaces with IPv6. */
static size_t
mcast_ifaces(const struct ifaddrs *ifa0, char names[][IF_NAMESIZE],
    size_t max)
{
	const struct ifaddrs	*ifa;
	size_t			 i, n = 0;

	for (ifa = ifa0; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family !=
		    AF_INET6 || (ifa->ifa_flags & IFF_UP) == 0 ||
		    (ifa->ifa_flags & IFF_MULTICAST) == 0 ||
		    (ifa->ifa_flags & IFF_LOOPBACK) != 0 ||
		    strlen(ifa->ifa_name) >= IF_NAMESIZE)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(names[i], ifa->ifa_name) == 0)
				break;
		if (i < n)
			continue;
		if (n == max)
			break;
		memcpy(names[n], ifa->ifa_name, strlen(ifa->ifa_name) + 1);
		n++;
	}
	return n;
}

/* libuv takes an IPv6 interface as the zone of an address: "::%eth0". */
static int
iface_zone(const char *name, char *out, size_t out_size)
{
	int	w;

	w = snprintf(out, out_size, "::%%%s", name);
	if (w < 0 || (size_t)w >= out_size)
		return -ENAMETOOLONG;
	return 0;
}

static void
announce_v6(struct disco *d, const struct ifaddrs *ifa0)
{
	char			names[MAX_IFACES][IF_NAMESIZE];
	char			ifaddr[IF_NAMESIZE + 4];
	struct sockaddr_in6	dst;
	size_t			i, n;
	int			rc;

	n = mcast_ifaces(ifa0, names, MAX_IFACES);
	for (i = 0; i < n; i++) {
		memset(&dst, 0, sizeof(dst));
		rc = uv_ip6_addr(DISCO_MCAST_GROUP, d->port, &dst);
		if (rc != 0)
			goto bad;
		dst.sin6_scope_id = if_nametoindex(names[i]);
		if (dst.sin6_scope_id == 0)
			continue;	/* gone since getifaddrs() */
		rc = iface_zone(names[i], ifaddr, sizeof(ifaddr));
		if (rc != 0)
			goto bad;
		rc = uv_udp_set_multicast_interface(&d->tx6, ifaddr);
		if (rc != 0)
			goto bad;
		send_to(d, &d->tx6, (const struct sockaddr *)&dst, names[i]);
		continue;
bad:
		LOG_DEBUG(COMP, "multicast on %s: %s", names[i],
		    sh_strerror(rc));
	}
}

static void
announce_now(struct disco *d)
{
	struct ifaddrs	*ifa = NULL;

	if (d->closing || !d->p.announce || d->pkt == NULL)
		return;
	d->last_send_ms = util_now_ms();
	d->sent_once = true;
	if (d->test_mode) {
		if (d->test_dst_set)
			send_to(d, &d->tx4,
			    (const struct sockaddr *)&d->test_dst, "test");
		return;
	}
	if (getifaddrs(&ifa) != 0) {
		LOG_DEBUG(COMP, "getifaddrs: %s", strerror(errno));
		ifa = NULL;
	}
	if (d->tx4_init)
		announce_v4(d, ifa);
	if (d->tx6_init)
		announce_v6(d, ifa);
	if (ifa != NULL)
		freeifaddrs(ifa);
}

static void
on_soon(uv_timer_t *t)
{
	announce_now(t->data);
}

/* Announce now, or as soon as DISCO_REANNOUNCE_MIN_MS allows. */
static void
announce_soon(struct disco *d)
{
	uint64_t	now = util_now_ms(), wait;
	int		rc;

	if (d->closing || !d->p.announce || d->pkt == NULL)
		return;
	if (!d->sent_once || now - d->last_send_ms >= DISCO_REANNOUNCE_MIN_MS) {
		announce_now(d);
		return;
	}
	if (uv_is_active((uv_handle_t *)&d->soon))
		return;
	wait = DISCO_REANNOUNCE_MIN_MS - (now - d->last_send_ms);
	rc = uv_timer_start(&d->soon, on_soon, wait, 0);
	if (rc != 0)
		LOG_WARN(COMP, "re-announce timer: %s", sh_strerror(rc));
}

static void
on_expired(const struct disco_entry *e, void *arg)
{
	struct disco	*d = arg;
	char		 sid[IDENTITY_SHORT_STR_SIZE];

	short_id(&e->id, sid);
	LOG_DEBUG(COMP, "%s: not heard for %" PRIu64 " ms, forgotten", sid,
	    (uint64_t)d->interval_ms * DISCO_EXPIRY_INTERVALS);
	if (d->p.on_seen != NULL && !d->closing)
		d->p.on_seen(&e->id, NULL, 0, d->p.arg);
}

static void
on_tick(uv_timer_t *t)
{
	struct disco	*d = t->data;

	(void)disco_cache_expire(d->cache, util_now_ms(), on_expired, d);
	announce_now(d);
}

/* Per-source and global packets-per-second limits. */
static bool
rate_ok(struct disco *d, const struct sockaddr *from, uint64_t now_ms)
{
	struct rate_slot	*s = NULL;
	struct in_addr		 a4;
	uint8_t			 ip[16];
	uint64_t		 win = now_ms / 1000;
	size_t			 i;

	memset(ip, 0, sizeof(ip));
	if (sa_ipv4(from, &a4)) {
		ip[10] = ip[11] = 0xff;
		memcpy(ip + 12, &a4.s_addr, 4);
	} else if (from->sa_family == AF_INET6)
		memcpy(ip, &((const struct sockaddr_in6 *)from)->sin6_addr, 16);
	else
		return false;
	for (i = 0; i < DISCO_RATE_SOURCES; i++) {
		if (d->rate[i].count != 0 && d->rate[i].window == win &&
		    memcmp(d->rate[i].ip, ip, 16) == 0) {
			s = &d->rate[i];
			break;
		}
		if (s == NULL && (d->rate[i].count == 0 ||
		    d->rate[i].window != win))
			s = &d->rate[i];	/* a free slot, if needed */
	}
	/* More distinct sources this second than slots: drop. */
	if (s == NULL)
		return false;
	if (s->count == 0 || s->window != win ||
	    memcmp(s->ip, ip, 16) != 0) {
		memcpy(s->ip, ip, 16);
		s->window = win;
		s->count = 0;
	}
	if (s->count >= DISCO_RATE_PER_SOURCE)
		return false;
	if (d->global_window != win) {
		d->global_window = win;
		d->global_count = 0;
	}
	if (d->global_count >= DISCO_RATE_GLOBAL)
		return false;
	s->count++;
	d->global_count++;
	return true;
}

static void
handle_packet(struct disco *d, const uint8_t *buf, size_t len,
    const struct sockaddr *from)
{
	struct disco_announce	 a;
	struct disco_err	 err;
	char			 fill[DISCO_MAX_ADDRS][DISCO_ADDR_SIZE];
	const char		*ptr[DISCO_MAX_ADDRS];
	char			 src[64], sid[IDENTITY_SHORT_STR_SIZE];
	char			 esc[ESC_SIZE];
	const char *const	*set;
	struct in_addr		 a4;
	enum disco_change	 ch;
	size_t			 i, j, n = 0, set_count;
	int			 rc;

	memset(&a, 0, sizeof(a));
	if (uv_ip_name(from, src, sizeof(src)) != 0)
		(void)snprintf(src, sizeof(src), "?");
	err.msg[0] = '\0';
	rc = disco_packet_decode(buf, len, &a, &err);
	if (rc == -EPROTONOSUPPORT && !d->warned_old) {
		/* Once per run: a flood must not become a log flood. */
		d->warned_old = true;
		LOG_WARN(COMP, "from %s: %s; ignoring such packets", src,
		    log_escape(err.msg, esc, sizeof(esc)));
		goto out;
	}
	if (rc != 0) {
		LOG_DEBUG(COMP, "from %s: %s", src,
		    log_escape(err.msg, esc, sizeof(esc)));
		goto out;
	}
	if (identity_id_equal(&a.id, &d->p.self))
		goto out;
	for (i = 0; i < a.addr_count; i++) {
		if (disco_fill_address(a.addrs[i], from, fill[n],
		    sizeof(fill[n])) != 0)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(fill[j], fill[n]) == 0)
				break;
		if (j == n) {
			ptr[n] = fill[n];
			n++;
		}
	}
	ch = disco_cache_insert(d->cache, &a.id, sa_ipv4(from, &a4) ?
	    AF_INET : AF_INET6, a.instance_id, ptr, n,
	    util_now_ms(), util_now_unix());
	if (ch == DISCO_CHANGE_NONE)
		goto out;
	short_id(&a.id, sid);
	LOG_DEBUG(COMP, "%s from %s: %s, %zu usable of %zu addresses", sid,
	    src, ch == DISCO_CHANGE_NEW ? "new" : ch ==
	    DISCO_CHANGE_RESTARTED ? "restarted" : "new address set", n,
	    a.addr_count);
	/* The device's merged set, not just this packet's addresses. */
	if (disco_cache_lookup(d->cache, &a.id, util_now_ms(), &set,
	    &set_count) != 0) {
		set = NULL;
		set_count = 0;
	}
	if (d->p.on_seen != NULL)
		d->p.on_seen(&a.id, set, set_count, d->p.arg);
	/* §15.3: a new or restarted device hears from us at once. */
	if (!d->closing && (ch == DISCO_CHANGE_NEW ||
	    ch == DISCO_CHANGE_RESTARTED))
		announce_soon(d);
out:
	disco_announce_clear(&a);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct disco	*d = h->data;

	(void)suggested;
	/* One buffer serves both sockets: libuv hands each datagram to
	 * on_recv before it allocates for the next. */
	*buf = uv_buf_init(d->rxbuf, sizeof(d->rxbuf));
}

static void
on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
    const struct sockaddr *from, unsigned flags)
{
	struct disco	*d = h->data;

	if (d->closing)
		return;
	if (nread < 0) {
		LOG_DEBUG(COMP, "receive: %s", sh_strerror((int)nread));
		return;
	}
	if (nread == 0 || from == NULL)
		return;
	/* Larger than our buffer (DISCO_MAX_PACKET): not an Announce. */
	if (flags & UV_UDP_PARTIAL)
		return;
	if (!rate_ok(d, from, util_now_ms()))
		return;
	handle_packet(d, (const uint8_t *)buf->base, (size_t)nread, from);
}

static int
udp_init(struct disco *d, uv_udp_t *h, int family, bool *flag)
{
	int	rc;

	rc = uv_udp_init_ex(d->loop, h, (unsigned)family);
	if (rc != 0)
		return rc;
	h->data = d;
	*flag = true;
	d->handles++;
	return 0;
}

static int
open_rx4(struct disco *d)
{
	struct sockaddr_in	sa;
	struct sockaddr_storage	bound;
	int			rc, len;

	rc = udp_init(d, &d->rx4, AF_INET, &d->rx4_init);
	if (rc != 0)
		goto out;
	rc = uv_ip4_addr(d->test_mode ? "127.0.0.1" : "0.0.0.0", d->port,
	    &sa);
	if (rc != 0)
		goto out;
	/* SO_REUSEADDR: a Syncthing on this host binds 21027 as well. */
	rc = uv_udp_bind(&d->rx4, (const struct sockaddr *)&sa,
	    UV_UDP_REUSEADDR);
	if (rc != 0)
		goto out;
	len = sizeof(bound);
	rc = uv_udp_getsockname(&d->rx4, (struct sockaddr *)&bound, &len);
	if (rc != 0)
		goto out;
	d->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	rc = uv_udp_recv_start(&d->rx4, on_alloc, on_recv);
out:
	if (rc != 0)
		LOG_ERROR(COMP, "listening on UDP port %u: %s",
		    (unsigned)d->port, sh_strerror(rc));
	return rc;
}

/* IPv6 is optional: any failure here leaves us IPv4-only. */
static void
open_rx6(struct disco *d)
{
	struct sockaddr_in6	 sa;
	struct ifaddrs		*ifa = NULL;
	char			 names[MAX_IFACES][IF_NAMESIZE];
	char			 ifaddr[IF_NAMESIZE + 4];
	size_t			 i, n, joined = 0;
	int			 rc;

	rc = udp_init(d, &d->rx6, AF_INET6, &d->rx6_init);
	if (rc != 0)
		goto out;
	rc = uv_ip6_addr("::", d->port, &sa);
	if (rc != 0)
		goto out;
	rc = uv_udp_bind(&d->rx6, (const struct sockaddr *)&sa,
	    UV_UDP_REUSEADDR | UV_UDP_IPV6ONLY);
	if (rc != 0)
		goto out;
	if (getifaddrs(&ifa) != 0) {
		rc = -errno;
		goto out;
	}
	n = mcast_ifaces(ifa, names, MAX_IFACES);
	for (i = 0; i < n; i++) {
		rc = iface_zone(names[i], ifaddr, sizeof(ifaddr));
		if (rc == 0)
			rc = uv_udp_set_membership(&d->rx6,
			    DISCO_MCAST_GROUP, ifaddr, UV_JOIN_GROUP);
		if (rc != 0) {
			LOG_DEBUG(COMP, "joining %s on %s: %s",
			    DISCO_MCAST_GROUP, names[i], sh_strerror(rc));
			continue;
		}
		joined++;
	}
	LOG_DEBUG(COMP, "joined %s on %zu of %zu interfaces",
	    DISCO_MCAST_GROUP, joined, n);
	rc = uv_udp_recv_start(&d->rx6, on_alloc, on_recv);
out:
	if (ifa != NULL)
		freeifaddrs(ifa);
	if (rc != 0) {
		LOG_INFO(COMP, "IPv6 discovery unavailable (%s); IPv4 only",
		    sh_strerror(rc));
		if (d->rx6_init && uv_is_active((uv_handle_t *)&d->rx6))
			(void)uv_udp_recv_stop(&d->rx6);
	}
}

static int
open_tx4(struct disco *d)
{
	struct sockaddr_in	sa;
	int			rc;

	rc = udp_init(d, &d->tx4, AF_INET, &d->tx4_init);
	if (rc != 0)
		goto out;
	rc = uv_ip4_addr("0.0.0.0", 0, &sa);
	if (rc != 0)
		goto out;
	rc = uv_udp_bind(&d->tx4, (const struct sockaddr *)&sa, 0);
	if (rc != 0)
		goto out;
	if (!d->test_mode)
		rc = uv_udp_set_broadcast(&d->tx4, 1);
out:
	if (rc != 0)
		LOG_ERROR(COMP, "IPv4 send socket: %s", sh_strerror(rc));
	return rc;
}

static void
open_tx6(struct disco *d)
{
	struct sockaddr_in6	sa;
	int			rc;

	rc = udp_init(d, &d->tx6, AF_INET6, &d->tx6_init);
	if (rc != 0)
		goto out;
	rc = uv_ip6_addr("::", 0, &sa);
	if (rc != 0)
		goto out;
	rc = uv_udp_bind(&d->tx6, (const struct sockaddr *)&sa,
	    UV_UDP_IPV6ONLY);
	if (rc != 0)
		goto out;
	/* §15.1: hop limit 1, the packet never leaves the link. */
	rc = uv_udp_set_multicast_ttl(&d->tx6, 1);
out:
	if (rc != 0) {
		LOG_INFO(COMP, "IPv6 announcements unavailable (%s)",
		    sh_strerror(rc));
		if (d->tx6_init) {
			/* Keep the handle for disco_close(), but unused. */
			d->tx6_init = false;
			uv_close((uv_handle_t *)&d->tx6, on_handle_closed);
		}
	}
}

static int
parse_test_dst(const char *s, struct sockaddr_in *out, bool *set)
{
	char		host[INET_ADDRSTRLEN];
	const char	*colon;
	uint64_t	port;
	size_t		hlen;
	int		rc = -EINVAL;

	*set = false;
	if (s[0] == '\0')
		return 0;
	colon = strrchr(s, ':');
	if (colon == NULL)
		goto out;
	hlen = (size_t)(colon - s);
	if (hlen == 0 || hlen >= sizeof(host))
		goto out;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (util_parse_u64(colon + 1, 1, 65535, &port) != 0)
		goto out;
	if (uv_ip4_addr(host, (int)port, out) != 0)
		goto out;
	/* The network rule for tests: loopback only. */
	if ((ntohl(out->sin_addr.s_addr) >> 24) != 127)
		goto out;
	*set = true;
	rc = 0;
out:
	return rc;
}

int
disco_test_set_unicast(struct disco *d, const char *hostport)
{
	struct sockaddr_in	sa;
	bool			set;
	int			rc = -EINVAL;

	if (!d->test_mode || hostport == NULL)
		goto out;
	rc = parse_test_dst(hostport, &sa, &set);
	if (rc != 0)
		goto out;
	d->test_dst = sa;
	d->test_dst_set = set;
out:
	return rc;
}

static uint32_t
pick_interval(uint32_t param)
{
	const char	*env;
	uint64_t	 v;

	if (param != 0)
		return param;
	env = getenv(DISCO_INTERVAL_ENV);
	if (env != NULL && util_parse_u64(env, MIN_INTERVAL_MS,
	    MAX_INTERVAL_MS, &v) == 0) {
		LOG_INFO(COMP, "announcement interval %" PRIu64 " ms (from %s)",
		    v, DISCO_INTERVAL_ENV);
		return (uint32_t)v;
	}
	return DISCO_DEFAULT_INTERVAL_MS;
}

int
disco_open(uv_loop_t *loop, const struct disco_params *p, struct disco **out)
{
	struct disco	*d = NULL;
	uint64_t	 r;
	int		 rc;

	*out = NULL;
	if (sodium_init() < 0) {
		LOG_ERROR(COMP, "libsodium failed to initialise");
		rc = SH_ECRYPTO;
		goto out;
	}
	d = xcalloc(1, sizeof(*d));
	d->loop = loop;
	d->p = *p;
	d->p.test_unicast_to = NULL;
	if (p->test_unicast_to != NULL) {
		d->test_mode = true;
		rc = parse_test_dst(p->test_unicast_to, &d->test_dst,
		    &d->test_dst_set);
		if (rc != 0)
			goto out;
	}
	d->port = p->port != 0 ? p->port :
	    d->test_mode ? 0 : DISCO_DEFAULT_PORT;
	d->interval_ms = pick_interval(p->interval_ms);
	/* Syncthing's instance IDs are non-negative 63-bit numbers. */
	randombytes_buf(&r, sizeof(r));
	d->instance_id = (int64_t)(r & INT64_MAX);
	d->cache = disco_cache_new(DISCO_CACHE_MAX,
	    (uint64_t)d->interval_ms * DISCO_EXPIRY_INTERVALS);

	rc = uv_timer_init(loop, &d->tick);
	if (rc != 0)
		goto out;
	rc = uv_timer_init(loop, &d->soon);
	if (rc != 0) {
		/* tick is initialised and must be closed on its own. */
		d->handles = 1;
		d->tick.data = d;
		d->closing = true;
		uv_close((uv_handle_t *)&d->tick, on_handle_closed);
		d = NULL;
		goto out;
	}
	d->tick.data = d;
	d->soon.data = d;
	d->timers_init = true;
	d->handles = 2;

	if (p->listen) {
		rc = open_rx4(d);
		if (rc != 0)
			goto out;
		if (!d->test_mode)
			open_rx6(d);
	}
	if (p->announce) {
		rc = open_tx4(d);
		if (rc != 0)
			goto out;
		if (!d->test_mode)
			open_tx6(d);
	}
	rc = uv_timer_start(&d->tick, on_tick, d->interval_ms, d->interval_ms);
	if (rc != 0)
		goto out;
	LOG_INFO(COMP, "local discovery: %s%s%s on UDP port %u, every %u ms",
	    p->announce ? "announcing" : "", p->announce && p->listen ?
	    " and " : "", p->listen ? "listening" : "", (unsigned)d->port,
	    (unsigned)d->interval_ms);
	*out = d;
	d = NULL;
	rc = 0;
out:
	if (d != NULL) {
		if (d->timers_init)
			disco_close(d);
		else
			free_disco(d);
	}
	return rc;
}

/* A URL whose host is a loopback address (127/8, ::1, localhost). */
static bool
url_is_loopback(const char *url)
{
	const char	*h;

	h = strstr(url, "://");
	if (h == NULL)
		return false;
	h += 3;
	return strncmp(h, "127.", 4) == 0 || strncmp(h, "[::1]", 5) == 0 ||
	    strncasecmp(h, "localhost:", 10) == 0;
}

int
disco_set_addresses(struct disco *d, const char *const *urls, size_t count)
{
	const char	*lan[DISCO_MAX_ADDRS];
	uint8_t		*pkt = NULL;
	size_t		 i, n = 0, pkt_len = 0;
	bool		 same;
	int		 rc = -EINVAL;

	if (count > DISCO_MAX_ADDRS)
		goto out;
	/*
	 * A loopback URL is useless to anyone else on the LAN, and a daemon
	 * that only listens on 127.0.0.1 (the integration tests) must not
	 * announce itself on the host's network at all.
	 */
	for (i = 0; i < count; i++)
		if (!url_is_loopback(urls[i]))
			lan[n++] = urls[i];
	if (n > 0) {
		rc = disco_packet_encode(&d->p.self, lan, n, d->instance_id,
		    &pkt, &pkt_len);
		if (rc != 0)
			goto out;
	} else if (count > 0)
		LOG_INFO(COMP, "listening on loopback only: not announcing");
	same = count == d->addr_count;
	for (i = 0; same && i < count; i++)
		same = strcmp(urls[i], d->addrs[i]) == 0;
	for (i = 0; i < d->addr_count; i++)
		free(d->addrs[i]);
	free(d->addrs);
	d->addrs = count == 0 ? NULL : xcalloc(count, sizeof(*d->addrs));
	for (i = 0; i < count; i++)
		d->addrs[i] = xstrdup(urls[i]);
	d->addr_count = count;
	free(d->pkt);
	d->pkt = pkt;
	d->pkt_len = pkt_len;
	pkt = NULL;
	if (!same)
		announce_soon(d);
	rc = 0;
out:
	free(pkt);
	return rc;
}

uint16_t
disco_listen_port(const struct disco *d)
{
	return d->rx4_init ? d->port : 0;
}

int64_t
disco_instance_id(const struct disco *d)
{
	return d->instance_id;
}

struct disco_cache *
disco_cache(struct disco *d)
{
	return d->cache;
}

struct json_ctx {
	json_t	*arr;
	int	 rc;
};

static void
entry_json(const struct disco_entry *e, void *arg)
{
	struct json_ctx	*ctx = arg;
	json_t		*o = NULL, *addrs = NULL;
	char		 sid[IDENTITY_ID_STR_SIZE];
	size_t		 i;

	if (ctx->rc != 0)
		return;
	addrs = json_array();
	if (addrs == NULL)
		goto fail;
	for (i = 0; i < e->addr_count; i++)
		if (json_array_append_new(addrs, json_string(e->addrs[i])) != 0)
			goto fail;
	identity_id_format(&e->id, sid);
	o = json_pack("{s:s, s:O, s:I, s:I}", "device_id", sid, "addresses",
	    addrs, "instance_id", (json_int_t)e->instance_id, "last_seen",
	    (json_int_t)e->last_seen_unix);
	if (o == NULL || json_array_append_new(ctx->arr, o) != 0)
		goto fail;
	json_decref(addrs);
	return;
fail:
	json_decref(addrs);
	ctx->rc = -ENOMEM;
}

json_t *
disco_discovered_json(struct disco *d)
{
	struct json_ctx	ctx;

	ctx.rc = 0;
	ctx.arr = json_array();
	if (ctx.arr == NULL)
		return NULL;
	disco_cache_foreach(d->cache, util_now_ms(), entry_json, &ctx);
	if (ctx.rc != 0) {
		json_decref(ctx.arr);
		return NULL;
	}
	return ctx.arr;
}

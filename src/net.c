/* SPDX-License-Identifier: MIT */
/*
 * The connection manager (bep-brief §1, §2.4). It listens on the configured
 * address, dials every configured device's addresses with per-device
 * exponential backoff, authorises each peer when its Hello arrives (unknown
 * devices are refused and remembered as pending), keeps one connection per
 * device with a tie-break both ends agree on, sums per-device traffic
 * across reconnects for status output, and owns every struct conn.
 *
 * Lifetimes (style.md §5.4): struct net is freed only when `refs` is zero
 * after net_close(). Every libuv handle, every dial attempt and every
 * connection holds one reference, dropped in its close callback,
 * getaddrinfo/connect callback, or on_closed hook. Per-device state (struct
 * ndev) lives until the net is freed, so pointers to it never dangle and
 * the traffic totals survive reconnects and config reloads.
 * See docs/internals/net.md.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "shoal/config.h"
#include "shoal/conn.h"
#include "shoal/identity.h"
#include "shoal/intro.h"
#include "shoal/log.h"
#include "shoal/net.h"
#include "shoal/tls.h"
#include "shoal/util.h"

#define COMP		"net"
#define ESC_SIZE	128

struct net;
struct ndev;

/* One connection we own, from conn_open() until its on_closed hook. */
struct npeer {
	struct net	*n;
	struct conn	*c;
	struct ndev	*dev;		/* set once the Hello is accepted */
	struct ndev	*dialled;	/* outgoing: the device we dialled */
	bool		 pre_hello;	/* counts against NET_MAX_INCOMING */
	bool		 hello_done;	/* on_hello ran */
	bool		 accepted;	/* on_hello returned 0 */
	bool		 was_active;	/* on_active ran */
	struct npeer	*next;
};

/* One dial attempt: resolve, then connect. */
struct dial {
	struct net		*n;
	struct ndev		*d;
	uv_getaddrinfo_t	 gai;
	uv_connect_t		 creq;
	uv_tcp_t		*tcp;		/* owned until conn_open() */
	char			*url;		/* owned: the address tried */
	bool			 cancelled;
};

/* Per configured device (and formerly configured ones, for totals). */
struct ndev {
	struct net	*n;
	struct device_id id;
	bool		 configured;
	uv_timer_t	 timer;		/* next dial attempt */
	struct dial	*dial;		/* resolving or connecting */
	struct npeer	*out;		/* our dialled conn before its Hello */
	struct npeer	*active;	/* the conn that passed its Hello */
	uint64_t	 backoff_ms;
	size_t		 addr_idx;	/* next address to try */
	size_t		 round_tries;	/* addresses tried since last backoff */
	unsigned	 failures;	/* since the last ACTIVE connection */
	int64_t		 connected_since;
	char		**dyn;		/* owned: discovered addresses */
	size_t		 dyn_count;
	/* Totals of closed connections (bep wire counters). */
	uint64_t	 in_bytes, out_bytes;
	uint64_t	 idx_rec_sent, idx_rec_recv, idx_msg_sent, idx_msg_recv;
	struct ndev	*next;
};

struct pending {
	struct device_id id;
	char		*name;		/* owned */
	char		*address;	/* owned */
	int64_t		 last_seen;
};

struct net {
	struct conn_env	 env;		/* borrowed by every conn */
	net_change_cb	 cb;
	void		*cb_arg;
	net_intro_cb	 intro_cb;
	void		*intro_arg;
	uv_tcp_t	*listener;	/* NULL when not listening */
	char		 listen_addr[NET_ADDR_SIZE];
	char		*listen_url;	/* owned; the config's, as bound */
	struct ndev	*devs;
	struct npeer	*peers;
	struct device_id *allowed;	/* owned: configured IDs but ours */
	size_t		 allowed_count;
	struct pending	 pending[NET_MAX_PENDING];
	size_t		 pending_count;
	size_t		 incoming;	/* conns before their Hello */
	size_t		 refs;
	bool		 closing;
};

static void	dial_schedule(struct ndev *, uint64_t);
static void	dial_start(struct ndev *);

/* Helpers */

int
net_addr_parse(const char *url, char *host, size_t host_size, uint16_t *port)
{
	const char	*h, *end, *p;
	size_t		 hlen;
	uint64_t	 v;
	int		 rc = SH_EPARSE;

	if (url == NULL || strncmp(url, "tcp://", 6) != 0)
		goto out;
	h = url + 6;
	if (*h == '[') {
		h++;
		end = strchr(h, ']');
		if (end == NULL || end[1] != ':')
			goto out;
		p = end + 2;
	} else {
		end = strrchr(h, ':');
		if (end == NULL)
			goto out;
		/* A bare IPv6 address must be bracketed. */
		if (memchr(h, ':', (size_t)(end - h)) != NULL)
			goto out;
		p = end + 1;
	}
	hlen = (size_t)(end - h);
	if (hlen == 0 || hlen >= host_size || memchr(h, '/', hlen) != NULL)
		goto out;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) ||
	    strlen(p) > 5)
		goto out;
	if (util_parse_u64(p, 0, 65535, &v) != 0)
		goto out;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)v;
	rc = 0;
out:
	return rc;
}

int
net_addr_format(const struct sockaddr *sa, bool scheme, char *out,
    size_t out_size)
{
	char		 ip[64];
	unsigned	 port;
	int		 rc, w;

	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	else {
		rc = UV_EAFNOSUPPORT;
		goto out;
	}
	rc = uv_ip_name(sa, ip, sizeof(ip));
	if (rc != 0)
		goto out;
	w = snprintf(out, out_size, "%s%s%s%s:%u", scheme ? "tcp://" : "",
	    sa->sa_family == AF_INET6 ? "[" : "", ip,
	    sa->sa_family == AF_INET6 ? "]" : "", port);
	if (w < 0 || (size_t)w >= out_size) {
		rc = UV_ENOBUFS;
		goto out;
	}
	rc = 0;
out:
	return rc;
}

bool
net_listen_should_fallback(int rc, uint16_t port)
{
	return rc == UV_EADDRINUSE && port == NET_DEFAULT_PORT;
}

bool
net_dup_keep_new(const struct device_id *old_client,
    uint64_t old_established_ms, const struct device_id *new_client,
    uint64_t now_ms)
{
	/* bep-brief §2.4 step 5: the peer may have seen the old one die. */
	if (now_ms >= old_established_ms &&
	    now_ms - old_established_ms > NET_REPLACE_AFTER_MS)
		return true;
	/*
	 * Syncthing prefers by priority; both of our dials have the same
	 * priority, so we order by the TLS client's ID instead. Each end
	 * sees the same two (client, server) pairs and keeps the same one.
	 */
	return memcmp(new_client->raw, old_client->raw, IDENTITY_ID_LEN) < 0;
}

static const char *
short_id(const struct device_id *id, char out[IDENTITY_SHORT_STR_SIZE])
{
	identity_short_format(identity_short_id(id), out);
	return out;
}

static void
net_unref(struct net *n)
{
	struct ndev	*d, *dn;
	size_t		 i, j;

	n->refs--;
	if (!n->closing || n->refs > 0)
		return;
	for (d = n->devs; d != NULL; d = dn) {
		dn = d->next;
		for (j = 0; j < d->dyn_count; j++)
			free(d->dyn[j]);
		free(d->dyn);
		free(d);
	}
	for (i = 0; i < n->pending_count; i++) {
		free(n->pending[i].name);
		free(n->pending[i].address);
	}
	free(n->allowed);
	free(n->listen_url);
	free(n);
}

static void
handle_free_cb(uv_handle_t *h)
{
	struct net	*n = h->data;

	free(h);
	net_unref(n);
}

static void
timer_close_cb(uv_handle_t *h)
{
	struct ndev	*d = h->data;

	net_unref(d->n);
}

static const struct config_device *
cfg_device(const struct net *n, const struct device_id *id)
{
	if (n->env.cfg == NULL)
		return NULL;
	return config_device_find(n->env.cfg, id);
}

static struct ndev *
ndev_find(const struct net *n, const struct device_id *id)
{
	struct ndev	*d;

	for (d = n->devs; d != NULL; d = d->next)
		if (identity_id_equal(&d->id, id))
			return d;
	return NULL;
}

static int
ndev_get(struct net *n, const struct device_id *id, struct ndev **out)
{
	struct ndev	*d;
	int		 rc = 0;

	d = ndev_find(n, id);
	if (d != NULL)
		goto out;
	d = xcalloc(1, sizeof(*d));
	d->n = n;
	d->id = *id;
	d->backoff_ms = NET_DIAL_BACKOFF_MIN_MS;
	rc = uv_timer_init(n->env.loop, &d->timer);
	if (rc != 0) {
		LOG_ERROR(COMP, "timer: %s", uv_strerror(rc));
		free(d);
		d = NULL;
		goto out;
	}
	d->timer.data = d;
	n->refs++;
	d->next = n->devs;
	n->devs = d;
out:
	*out = d;
	return rc;
}

/* The i-th dialable address of a device: static ones, then discovered. */
static const char *
ndev_addr(const struct ndev *d, size_t i, size_t *count)
{
	const struct config_device	*cd;
	const char			*r = NULL;
	size_t				 k, nst = 0;

	cd = cfg_device(d->n, &d->id);
	if (cd != NULL) {
		for (k = 0; k < cd->address_count; k++) {
			if (strcmp(cd->addresses[k], "dynamic") == 0)
				continue;
			if (nst == i)
				r = cd->addresses[k];
			nst++;
		}
	}
	if (r == NULL && i >= nst && i - nst < d->dyn_count)
		r = d->dyn[i - nst];
	*count = nst + d->dyn_count;
	return r;
}

/* Pending devices */

void
net_pending_note(struct net *n, const struct device_id *id, const char *name,
    const char *address)
{
	struct pending	*p = NULL;
	size_t		 i, oldest = 0;

	for (i = 0; i < n->pending_count; i++) {
		if (identity_id_equal(&n->pending[i].id, id)) {
			p = &n->pending[i];
			break;
		}
		if (n->pending[i].last_seen < n->pending[oldest].last_seen)
			oldest = i;
	}
	if (p == NULL) {
		if (n->pending_count < NET_MAX_PENDING)
			p = &n->pending[n->pending_count++];
		else {
			/* Full: forget the one seen longest ago. */
			p = &n->pending[oldest];
		}
		free(p->name);
		free(p->address);
		p->id = *id;
		p->name = NULL;
		p->address = NULL;
	}
	free(p->name);
	free(p->address);
	p->name = xstrdup(name != NULL ? name : "");
	p->address = xstrdup(address != NULL ? address : "");
	p->last_seen = util_now_unix();
}

static void
pending_drop_configured(struct net *n)
{
	size_t	i = 0;

	while (i < n->pending_count) {
		if (cfg_device(n, &n->pending[i].id) == NULL) {
			i++;
			continue;
		}
		free(n->pending[i].name);
		free(n->pending[i].address);
		n->pending[i] = n->pending[--n->pending_count];
		memset(&n->pending[n->pending_count], 0,
		    sizeof(n->pending[0]));
	}
}

/* Connection hooks */

static int
hook_hello(struct conn *c, void *arg)
{
	struct npeer		*p = arg;
	struct net		*n = p->n;
	const struct device_id	*peer = conn_peer(c);
	struct conn_info	 info, oinfo;
	struct device_id	 nclient, oclient;
	struct ndev		*d;
	char			 idstr[IDENTITY_ID_STR_SIZE];
	char			 sid[IDENTITY_SHORT_STR_SIZE];
	char			 esc[ESC_SIZE];
	int			 rc;

	p->hello_done = true;
	if (p->pre_hello) {
		p->pre_hello = false;
		n->incoming--;
	}
	if (p->dialled != NULL && p->dialled->out == p)
		p->dialled->out = NULL;
	conn_get_info(c, &info);
	if (n->closing) {
		rc = -ECANCELED;
		goto out;
	}
	/* bep-brief §2.4 step 2. */
	if (identity_id_equal(peer, &n->env.self)) {
		LOG_INFO(COMP, "%s: connected to ourselves; refused",
		    info.address);
		rc = -ECONNREFUSED;
		goto out;
	}
	/* Step 4: only configured devices; constant-time over the list. */
	if (!tls_id_allowed(peer, n->allowed, n->allowed_count)) {
		identity_id_format(peer, idstr);
		net_pending_note(n, peer, info.device_name, info.address);
		LOG_INFO(COMP, "device %s (%s) at %s is not configured; "
		    "refused (shown as pending)", idstr,
		    log_escape(info.device_name, esc, sizeof(esc)),
		    info.address);
		rc = -EPERM;
		goto out;
	}
	if (p->dialled != NULL && !identity_id_equal(&p->dialled->id, peer)) {
		/* Configured, but not whom we dialled: accept it anyway. */
		identity_id_format(peer, idstr);
		LOG_INFO(COMP, "%s: expected %s, found %s", info.address,
		    short_id(&p->dialled->id, sid), idstr);
	}
	rc = ndev_get(n, peer, &d);
	if (rc != 0)
		goto out;
	/* Counted in the device's totals even if it loses below. */
	p->dev = d;
	/* Step 5: one connection per device. */
	if (d->active != NULL && d->active != p) {
		conn_get_info(d->active->c, &oinfo);
		oclient = oinfo.outgoing ? n->env.self : d->id;
		nclient = info.outgoing ? n->env.self : d->id;
		if (!net_dup_keep_new(&oclient, oinfo.established_ms,
		    &nclient, util_now_ms())) {
			LOG_DEBUG(COMP, "%s at %s: keeping the existing "
			    "connection at %s", short_id(peer, sid),
			    info.address, oinfo.address);
			conn_close(c, "duplicate connection");
			rc = -EEXIST;
			goto out;
		}
		LOG_DEBUG(COMP, "%s at %s: replaces the connection at %s",
		    short_id(peer, sid), info.address, oinfo.address);
		conn_close(d->active->c, "duplicate connection");
		d->connected_since = 0;
	}
	d->active = p;
	p->accepted = true;
	rc = 0;
out:
	return rc;
}

static void
hook_active(struct conn *c, void *arg)
{
	struct npeer	*p = arg;
	struct ndev	*d = p->dev;
	struct conn_info info;
	const struct config_device *cd;
	const char	*name;
	char		 idstr[IDENTITY_ID_STR_SIZE];
	char		 e1[ESC_SIZE], e2[ESC_SIZE], e3[ESC_SIZE];

	if (d == NULL)
		return;
	p->was_active = true;
	/* The backoff stays: net_redial_delay resets it once the
	 * connection has lasted. */
	d->failures = 0;
	d->round_tries = 0;
	d->connected_since = util_now_unix();
	conn_get_info(c, &info);
	cd = cfg_device(p->n, &d->id);
	identity_id_format(&d->id, idstr);
	/* Our name for it, else the one it gave; no "()" for neither. */
	name = cd != NULL && cd->name[0] != '\0' ? cd->name :
	    info.device_name != NULL ? info.device_name : "";
	LOG_INFO(COMP, "connected to %s%s%s%s at %s, client %s %s, %s",
	    idstr, name[0] != '\0' ? " (" : "",
	    log_escape(name, e1, sizeof(e1)), name[0] != '\0' ? ")" : "",
	    info.address,
	    log_escape(info.client_name, e2, sizeof(e2)),
	    log_escape(info.client_version, e3, sizeof(e3)),
	    info.outgoing ? "outgoing" : "incoming");
	if (p->n->cb != NULL && !p->n->closing)
		p->n->cb(p->n, -1, p->n->cb_arg);
}

static void
hook_remote_index(struct conn *c, int64_t folder_idx, void *arg)
{
	struct npeer	*p = arg;

	(void)c;
	if (p->n->cb != NULL && !p->n->closing)
		p->n->cb(p->n, folder_idx, p->n->cb_arg);
}

static void
dial_failed(struct ndev *d, const char *url, const char *why)
{
	struct net	*n = d->n;
	size_t		 count;
	char		 sid[IDENTITY_SHORT_STR_SIZE];

	if (n->closing || !d->configured)
		goto out;
	/* The first failure after a success is news; the rest is noise. */
	if (d->failures++ == 0)
		LOG_INFO(COMP, "cannot connect to %s at %s: %s; retrying",
		    short_id(&d->id, sid), url, why);
	else
		LOG_DEBUG(COMP, "cannot connect to %s at %s: %s",
		    short_id(&d->id, sid), url, why);
	(void)ndev_addr(d, 0, &count);
	d->addr_idx++;
	d->round_tries++;
	if (d->round_tries < count) {
		/* More addresses to try in this round. */
		dial_schedule(d, 0);
		goto out;
	}
	d->round_tries = 0;
	dial_schedule(d, d->backoff_ms);
	d->backoff_ms *= 2;
	if (d->backoff_ms > NET_DIAL_BACKOFF_MAX_MS)
		d->backoff_ms = NET_DIAL_BACKOFF_MAX_MS;
out:
	return;
}

uint64_t
net_redial_delay(uint64_t *backoff_ms, int64_t lasted_s)
{
	uint64_t	delay;

	if (lasted_s >= NET_SHORT_CONN_S || *backoff_ms == 0)
		*backoff_ms = NET_DIAL_BACKOFF_MIN_MS;
	delay = *backoff_ms;
	if (lasted_s < NET_SHORT_CONN_S) {
		*backoff_ms *= 2;
		if (*backoff_ms > NET_DIAL_BACKOFF_MAX_MS)
			*backoff_ms = NET_DIAL_BACKOFF_MAX_MS;
	}
	return delay;
}

static void
hook_closed(struct conn *c, void *arg)
{
	struct npeer	*p = arg;
	struct net	*n = p->n;
	struct npeer	**pp;
	struct ndev	*d;
	struct conn_info info;
	char		 idstr[IDENTITY_ID_STR_SIZE];
	int64_t		 since = 0;
	bool		 was_active = false;

	for (pp = &n->peers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->pre_hello)
		n->incoming--;
	conn_get_info(c, &info);
	d = p->dev;
	if (d != NULL) {
		d->in_bytes += info.in_bytes;
		d->out_bytes += info.out_bytes;
		d->idx_rec_sent += info.index_records_sent;
		d->idx_rec_recv += info.index_records_received;
		d->idx_msg_sent += info.index_messages_sent;
		d->idx_msg_recv += info.index_messages_received;
		if (d->active == p) {
			d->active = NULL;
			since = d->connected_since;
			d->connected_since = 0;
		}
		if (p->was_active && d->active == NULL) {
			was_active = true;
			identity_id_format(&d->id, idstr);
			LOG_INFO(COMP, "disconnected from %s at %s: %s",
			    idstr, info.address, conn_close_reason(c));
			if (!n->closing && d->configured)
				dial_schedule(d, net_redial_delay(
				    &d->backoff_ms, since != 0 ?
				    util_now_unix() - since : 0));
		} else if (p->accepted && !p->was_active &&
		    p->dialled == d && d->active == NULL) {
			/*
			 * We accepted the peer but it closed before the
			 * ClusterConfigs (it does not know us, or it kept
			 * another connection): back off as for a failed dial.
			 */
			dial_failed(d, info.address, conn_close_reason(c));
		}
	}
	if (p->dialled != NULL && p->dialled->out == p) {
		/* Our dial never got through its Hello. */
		p->dialled->out = NULL;
		dial_failed(p->dialled, info.address,
		    "connection closed before the Hello");
	}
	if (was_active && n->cb != NULL && !n->closing)
		n->cb(n, -1, n->cb_arg);
	free(p);
	net_unref(n);
}

static void
hook_introduction(struct conn *c, struct intro_view *v, void *arg)
{
	struct npeer	*p = arg;

	(void)c;
	if (p->n->intro_cb != NULL && !p->n->closing)
		p->n->intro_cb(p->n, v, p->n->intro_arg);
	else
		intro_view_free(v);
}

static const struct conn_hooks net_hooks = {
	.on_hello = hook_hello,
	.on_active = hook_active,
	.on_remote_index = hook_remote_index,
	.on_introduction = hook_introduction,
	.on_closed = hook_closed,
};

void
net_set_intro_cb(struct net *n, net_intro_cb cb, void *arg)
{
	n->intro_cb = cb;
	n->intro_arg = arg;
}

/* Takes ownership of tcp. */
static int
start_conn(struct net *n, uv_tcp_t *tcp, enum tls_role role,
    const char *address, struct ndev *dialled)
{
	struct npeer	*p;
	int		 rc;

	p = xcalloc(1, sizeof(*p));
	p->n = n;
	p->dialled = dialled;
	p->pre_hello = role == TLS_ROLE_SERVER;
	rc = conn_open(&n->env, tcp, role, address, &net_hooks, p, &p->c);
	if (rc != 0) {
		free(p);
		goto out;
	}
	if (p->pre_hello)
		n->incoming++;
	if (dialled != NULL)
		dialled->out = p;
	p->next = n->peers;
	n->peers = p;
	n->refs++;
out:
	return rc;
}

static void
tune_socket(uv_tcp_t *tcp)
{
	int	rc;

	rc = uv_tcp_nodelay(tcp, 1);
	if (rc != 0)
		LOG_DEBUG(COMP, "TCP_NODELAY: %s", uv_strerror(rc));
	rc = uv_tcp_keepalive(tcp, 1, 60);
	if (rc != 0)
		LOG_DEBUG(COMP, "keepalive: %s", uv_strerror(rc));
}

/* Listener */

static void
on_connection(uv_stream_t *server, int status)
{
	struct net		*n = server->data;
	struct sockaddr_storage	 ss;
	uv_tcp_t		*tcp = NULL;
	char			 addr[NET_ADDR_SIZE];
	int			 len = sizeof(ss), rc = status;

	if (rc < 0)
		goto out;
	tcp = xmalloc(sizeof(*tcp));
	rc = uv_tcp_init(n->env.loop, tcp);
	if (rc != 0) {
		free(tcp);
		tcp = NULL;
		goto out;
	}
	tcp->data = n;
	n->refs++;
	rc = uv_accept(server, (uv_stream_t *)tcp);
	if (rc != 0)
		goto out;
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0 ||
	    net_addr_format((struct sockaddr *)&ss, false, addr,
	    sizeof(addr)) != 0)
		snprintf(addr, sizeof(addr), "unknown");
	if (n->closing || n->incoming >= NET_MAX_INCOMING) {
		/* Before any TLS work, so a flood costs us little. */
		LOG_DEBUG(COMP, "%s: too many connections before Hello; "
		    "closed", addr);
		goto close;
	}
	/* conn_open owns tcp from here; it no longer counts as ours. */
	n->refs--;
	tune_socket(tcp);
	rc = start_conn(n, tcp, TLS_ROLE_SERVER, addr, NULL);
	tcp = NULL;
	if (rc != 0)
		LOG_WARN(COMP, "%s: cannot start connection: %s", addr,
		    sh_strerror(rc));
	rc = 0;
out:
	if (rc != 0)
		LOG_WARN(COMP, "accept: %s", uv_strerror(rc));
close:
	if (tcp != NULL)
		uv_close((uv_handle_t *)tcp, handle_free_cb);
}

/* Bind and listen on `sa`; on failure the handle is closed. */
static int
listen_on(struct net *n, const struct sockaddr *sa)
{
	struct sockaddr_storage	 ss;
	uv_tcp_t		*tcp;
	int			 len = sizeof(ss), rc;

	tcp = xmalloc(sizeof(*tcp));
	rc = uv_tcp_init(n->env.loop, tcp);
	if (rc != 0) {
		free(tcp);
		goto out;
	}
	tcp->data = n;
	n->refs++;
	rc = uv_tcp_bind(tcp, sa, 0);
	/* libuv may report EADDRINUSE only from uv_listen(). */
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)tcp, SOMAXCONN, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len);
	if (rc == 0)
		rc = net_addr_format((struct sockaddr *)&ss, true,
		    n->listen_addr, sizeof(n->listen_addr));
	if (rc != 0) {
		uv_close((uv_handle_t *)tcp, handle_free_cb);
		goto out;
	}
	n->listener = tcp;
out:
	return rc;
}

static int
listen_start(struct net *n, const char *url)
{
	struct sockaddr_storage	 ss;
	struct addrinfo		 hints;
	uv_getaddrinfo_t	 req;
	char			 host[NET_HOST_SIZE];
	uint16_t		 port;
	int			 rc;

	rc = net_addr_parse(url, host, sizeof(host), &port);
	if (rc != 0) {
		LOG_ERROR(COMP, "listen address \"%s\" is not tcp://HOST:PORT",
		    url);
		goto out;
	}
	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
		/* A host name: resolve once, synchronously, at startup. */
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		rc = uv_getaddrinfo(n->env.loop, &req, NULL, host, NULL,
		    &hints);
		if (rc != 0) {
			LOG_ERROR(COMP, "listen address \"%s\": %s", url,
			    uv_strerror(rc));
			goto out;
		}
		memcpy(&ss, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
		uv_freeaddrinfo(req.addrinfo);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
	}
	rc = listen_on(n, (struct sockaddr *)&ss);
	if (net_listen_should_fallback(rc, port)) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = 0;
		rc = listen_on(n, (struct sockaddr *)&ss);
		if (rc == 0)
			LOG_WARN(COMP, "port %u is in use; listening on %s "
			    "instead", port, n->listen_addr);
	}
	if (rc != 0) {
		LOG_ERROR(COMP, "cannot listen on %s: %s", url,
		    uv_strerror(rc));
		goto out;
	}
	LOG_INFO(COMP, "listening on %s", n->listen_addr);
	free(n->listen_url);
	n->listen_url = xstrdup(url);
	rc = 0;
out:
	return rc;
}

static const char *
cfg_listen(const struct net *n)
{
	return n->env.cfg->listen != NULL ? n->env.cfg->listen :
	    CONFIG_DEFAULT_LISTEN;
}

/*
 * The config's listen address changed: listen there instead. The old
 * socket goes first (its descriptor closes at once), so a new host on the
 * same port can bind; if the new address fails, we listen where we did.
 * Connections already made are not touched.
 */
static void
listen_update(struct net *n)
{
	char	*old;

	if (n->listen_url == NULL || strcmp(cfg_listen(n), n->listen_url) == 0)
		return;
	old = xstrdup(n->listen_url);
	if (n->listener != NULL) {
		uv_close((uv_handle_t *)n->listener, handle_free_cb);
		n->listener = NULL;
	}
	n->listen_addr[0] = '\0';
	if (listen_start(n, cfg_listen(n)) != 0) {
		LOG_WARN(COMP, "keeping the old listen address %s", old);
		if (listen_start(n, old) != 0)
			n->listen_addr[0] = '\0';
	}
	free(old);
}

/* Dialler */

static void
dial_done(struct dial *dl)
{
	struct net	*n = dl->n;

	if (dl->d->dial == dl)
		dl->d->dial = NULL;
	free(dl->url);
	free(dl);
	net_unref(n);
}

static void
dial_tcp_close_cb(uv_handle_t *h)
{
	free(h);
}

static void
on_connect(uv_connect_t *req, int status)
{
	struct dial		*dl = req->data;
	struct net		*n = dl->n;
	struct ndev		*d = dl->d;
	struct sockaddr_storage	 ss;
	uv_tcp_t		*tcp = dl->tcp;
	char			 addr[NET_ADDR_SIZE];
	int			 len = sizeof(ss), rc;

	/* When cancelled, dial_cancel() has already closed the handle. */
	if (dl->cancelled)
		goto out;
	dl->tcp = NULL;
	if (status != 0) {
		uv_close((uv_handle_t *)tcp, dial_tcp_close_cb);
		d->dial = NULL;
		dial_failed(d, dl->url, uv_strerror(status));
		goto out;
	}
	d->dial = NULL;
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0 ||
	    net_addr_format((struct sockaddr *)&ss, false, addr,
	    sizeof(addr)) != 0)
		snprintf(addr, sizeof(addr), "%s", dl->url + 6);
	tune_socket(tcp);
	rc = start_conn(n, tcp, TLS_ROLE_CLIENT, addr, d);
	if (rc != 0)
		dial_failed(d, dl->url, sh_strerror(rc));
out:
	dial_done(dl);
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dial	*dl = req->data;
	struct ndev	*d = dl->d;
	int		 rc;

	if (status != 0 || dl->cancelled) {
		if (!dl->cancelled && status != UV_ECANCELED) {
			d->dial = NULL;
			dial_failed(d, dl->url, uv_strerror(status));
		}
		goto fail;
	}
	dl->tcp = xmalloc(sizeof(*dl->tcp));
	rc = uv_tcp_init(dl->n->env.loop, dl->tcp);
	if (rc != 0) {
		free(dl->tcp);
		dl->tcp = NULL;
		d->dial = NULL;
		dial_failed(d, dl->url, uv_strerror(rc));
		goto fail;
	}
	dl->creq.data = dl;
	/* The first result only; the next attempt moves to the next address. */
	rc = uv_tcp_connect(&dl->creq, dl->tcp, res->ai_addr, on_connect);
	if (rc != 0) {
		uv_close((uv_handle_t *)dl->tcp, dial_tcp_close_cb);
		dl->tcp = NULL;
		d->dial = NULL;
		dial_failed(d, dl->url, uv_strerror(rc));
		goto fail;
	}
	uv_freeaddrinfo(res);
	return;
fail:
	uv_freeaddrinfo(res);
	dial_done(dl);
}

static void
dial_start(struct ndev *d)
{
	struct net	*n = d->n;
	struct addrinfo	 hints;
	struct dial	*dl = NULL;
	const char	*url;
	char		 host[NET_HOST_SIZE], port_s[8];
	size_t		 count;
	uint16_t	 port;
	int		 rc;

	if (n->closing || !d->configured || d->active != NULL ||
	    d->dial != NULL || d->out != NULL)
		goto out;
	/* No address (only "dynamic" and nothing discovered): wait. */
	(void)ndev_addr(d, 0, &count);
	if (count == 0)
		goto out;
	url = ndev_addr(d, d->addr_idx % count, &count);
	if (url == NULL ||
	    net_addr_parse(url, host, sizeof(host), &port) != 0) {
		dial_failed(d, url != NULL ? url : "?", "bad address");
		goto out;
	}
	snprintf(port_s, sizeof(port_s), "%u", port);
	dl = xcalloc(1, sizeof(*dl));
	dl->n = n;
	dl->d = d;
	dl->url = xstrdup(url);
	dl->gai.data = dl;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = uv_getaddrinfo(n->env.loop, &dl->gai, on_resolved, host, port_s,
	    &hints);
	if (rc != 0) {
		dial_failed(d, url, uv_strerror(rc));
		free(dl->url);
		free(dl);
		goto out;
	}
	n->refs++;
	d->dial = dl;
out:
	return;
}

static void
dial_timer_cb(uv_timer_t *t)
{
	dial_start(t->data);
}

static void
dial_schedule(struct ndev *d, uint64_t delay_ms)
{
	int	rc;

	if (d->n->closing)
		return;
	rc = uv_timer_start(&d->timer, dial_timer_cb, delay_ms, 0);
	if (rc != 0)
		LOG_ERROR(COMP, "timer: %s", uv_strerror(rc));
}

/* Abandon a dial in progress; its callback frees it. */
static void
dial_cancel(struct ndev *d)
{
	struct dial	*dl = d->dial;

	if (uv_is_active((uv_handle_t *)&d->timer))
		(void)uv_timer_stop(&d->timer);
	if (dl == NULL)
		return;
	d->dial = NULL;
	dl->cancelled = true;
	if (dl->tcp != NULL) {
		/* Closing the handle makes on_connect run with ECANCELED. */
		uv_close((uv_handle_t *)dl->tcp, dial_tcp_close_cb);
		dl->tcp = NULL;
	} else {
		/* EBUSY: the lookup is running; on_resolved sees cancelled. */
		(void)uv_cancel((uv_req_t *)&dl->gai);
	}
}

/* Configuration */

static void
apply_config(struct net *n)
{
	const struct config	*cfg = n->env.cfg;
	struct ndev		*d;
	struct npeer		*p;
	size_t			 i;
	char			 sid[IDENTITY_SHORT_STR_SIZE];
	int			 rc;

	free(n->allowed);
	n->allowed = xcalloc(cfg->device_count + 1, sizeof(*n->allowed));
	n->allowed_count = 0;
	for (d = n->devs; d != NULL; d = d->next)
		d->configured = false;
	for (i = 0; i < cfg->device_count; i++) {
		if (identity_id_equal(&cfg->devices[i].id, &n->env.self))
			continue;
		n->allowed[n->allowed_count++] = cfg->devices[i].id;
		rc = ndev_get(n, &cfg->devices[i].id, &d);
		if (rc != 0)
			continue;
		d->configured = true;
	}
	for (d = n->devs; d != NULL; d = d->next) {
		if (d->configured)
			continue;
		dial_cancel(d);
		if (d->out != NULL)
			conn_close(d->out->c, "device removed from config");
		if (d->active != NULL) {
			LOG_INFO(COMP, "%s: device removed from config",
			    short_id(&d->id, sid));
			conn_close(d->active->c, "device removed from config");
		}
	}
	/* Connections still in TLS or Hello are judged at their Hello. */
	for (p = n->peers; p != NULL; p = p->next)
		if (p->accepted && p->dev != NULL && p->dev->configured)
			conn_config_changed(p->c);
	pending_drop_configured(n);
	for (d = n->devs; d != NULL; d = d->next) {
		if (d->configured && d->active == NULL && d->dial == NULL &&
		    d->out == NULL && !uv_is_active((uv_handle_t *)&d->timer))
			dial_schedule(d, 0);
	}
}

/* Lifecycle */

int
net_open(const struct conn_env *env, net_change_cb cb, void *arg,
    struct net **out)
{
	struct net	*n;
	int		 rc;

	*out = NULL;
	n = xcalloc(1, sizeof(*n));
	n->env = *env;
	n->cb = cb;
	n->cb_arg = arg;
	/* Held until net_close() so that callbacks cannot free us early. */
	n->refs = 1;
	rc = listen_start(n, cfg_listen(n));
	if (rc != 0) {
		net_close(n);
		goto out;
	}
	apply_config(n);
	*out = n;
	rc = 0;
out:
	return rc;
}

void
net_close(struct net *n)
{
	struct ndev	*d;
	struct npeer	*p;

	if (n == NULL || n->closing)
		return;
	n->closing = true;
	if (n->listener != NULL) {
		uv_close((uv_handle_t *)n->listener, handle_free_cb);
		n->listener = NULL;
	}
	for (d = n->devs; d != NULL; d = d->next) {
		dial_cancel(d);
		uv_close((uv_handle_t *)&d->timer, timer_close_cb);
	}
	for (p = n->peers; p != NULL; p = p->next)
		conn_close(p->c, "shutting down");
	net_unref(n);
}

void
net_reconfigure(struct net *n, const struct config *cfg)
{
	if (n == NULL || n->closing)
		return;
	n->env.cfg = cfg;
	listen_update(n);
	apply_config(n);
}

int
net_set_dynamic_addresses(struct net *n, const struct device_id *id,
    const char *const *addrs, size_t count)
{
	struct ndev	*d;
	char		 host[NET_HOST_SIZE];
	uint16_t	 port;
	size_t		 i;
	int		 rc = SH_ENOTFOUND;

	d = ndev_find(n, id);
	if (d == NULL || !d->configured)
		goto out;
	for (i = 0; i < d->dyn_count; i++)
		free(d->dyn[i]);
	free(d->dyn);
	d->dyn = xcalloc(NET_MAX_DYNAMIC_ADDRS, sizeof(*d->dyn));
	d->dyn_count = 0;
	for (i = 0; i < count && d->dyn_count < NET_MAX_DYNAMIC_ADDRS; i++) {
		if (net_addr_parse(addrs[i], host, sizeof(host), &port) != 0)
			continue;
		d->dyn[d->dyn_count++] = xstrdup(addrs[i]);
	}
	if (d->dyn_count > 0 && d->active == NULL && d->dial == NULL &&
	    d->out == NULL && d->failures == 0)
		dial_schedule(d, 0);
	rc = 0;
out:
	return rc;
}

/* Operations */

void
net_index_kick(struct net *n, int64_t folder_idx, bool now)
{
	struct npeer	*p;

	for (p = n->peers; p != NULL; p = p->next)
		if (p->accepted && conn_state(p->c) == CONN_STATE_ACTIVE)
			conn_index_kick(p->c, folder_idx, now);
}

/* Queries */

const char *
net_listen_addr(const struct net *n)
{
	return n->listen_addr;
}

struct conn *
net_find(struct net *n, const struct device_id *id)
{
	struct ndev	*d;

	d = ndev_find(n, id);
	if (d == NULL || d->active == NULL ||
	    conn_state(d->active->c) != CONN_STATE_ACTIVE)
		return NULL;
	return d->active->c;
}

static void
json_set_u64(json_t *o, const char *key, uint64_t v)
{
	(void)json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* A JSON string; text from a peer that is not UTF-8 is escaped. */
static json_t *
json_text(const char *s)
{
	json_t	*j;
	char	 esc[ESC_SIZE];

	j = json_string(s);
	if (j == NULL)
		j = json_string(log_escape(s, esc, sizeof(esc)));
	return j;
}

json_t *
net_peers_json(struct net *n)
{
	const struct config	*cfg = n->env.cfg;
	struct conn_info	 info;
	struct ndev		*d;
	json_t			*arr, *o;
	char			 idstr[IDENTITY_ID_STR_SIZE];
	char			*client;
	bool			 live;
	size_t			 i;

	arr = json_array();
	if (arr == NULL)
		return NULL;
	for (i = 0; cfg != NULL && i < cfg->device_count; i++) {
		if (identity_id_equal(&cfg->devices[i].id, &n->env.self))
			continue;
		d = ndev_find(n, &cfg->devices[i].id);
		memset(&info, 0, sizeof(info));
		live = d != NULL && d->active != NULL;
		if (live)
			conn_get_info(d->active->c, &info);
		o = json_object();
		if (o == NULL)
			continue;
		identity_id_format(&cfg->devices[i].id, idstr);
		(void)json_object_set_new(o, "device_id", json_string(idstr));
		(void)json_object_set_new(o, "name",
		    json_string(cfg->devices[i].name != NULL ?
		    cfg->devices[i].name : ""));
		(void)json_object_set_new(o, "connected",
		    json_boolean(live && info.state == CONN_STATE_ACTIVE));
		(void)json_object_set_new(o, "address", live &&
		    info.address != NULL ? json_string(info.address) :
		    json_null());
		if (live && info.client_name != NULL &&
		    info.client_name[0] != '\0') {
			client = xasprintf("%s %s", info.client_name,
			    info.client_version != NULL ?
			    info.client_version : "");
			(void)json_object_set_new(o, "client",
			    json_text(client));
			free(client);
		} else
			(void)json_object_set_new(o, "client", json_null());
		json_set_u64(o, "in_bytes",
		    (d != NULL ? d->in_bytes : 0) + info.in_bytes);
		json_set_u64(o, "out_bytes",
		    (d != NULL ? d->out_bytes : 0) + info.out_bytes);
		json_set_u64(o, "index_records_sent",
		    (d != NULL ? d->idx_rec_sent : 0) +
		    info.index_records_sent);
		json_set_u64(o, "index_records_received",
		    (d != NULL ? d->idx_rec_recv : 0) +
		    info.index_records_received);
		json_set_u64(o, "index_messages_sent",
		    (d != NULL ? d->idx_msg_sent : 0) +
		    info.index_messages_sent);
		json_set_u64(o, "index_messages_received",
		    (d != NULL ? d->idx_msg_recv : 0) +
		    info.index_messages_received);
		if (d != NULL && d->connected_since != 0)
			(void)json_object_set_new(o, "connected_since",
			    json_integer(d->connected_since));
		else
			(void)json_object_set_new(o, "connected_since",
			    json_null());
		(void)json_array_append_new(arr, o);
	}
	return arr;
}

json_t *
net_pending_json(struct net *n)
{
	json_t	*arr, *o;
	char	 idstr[IDENTITY_ID_STR_SIZE];
	size_t	 i;

	arr = json_array();
	if (arr == NULL)
		return NULL;
	for (i = 0; i < n->pending_count; i++) {
		o = json_object();
		if (o == NULL)
			continue;
		identity_id_format(&n->pending[i].id, idstr);
		(void)json_object_set_new(o, "device_id", json_string(idstr));
		(void)json_object_set_new(o, "name",
		    json_text(n->pending[i].name));
		(void)json_object_set_new(o, "address",
		    json_text(n->pending[i].address));
		(void)json_object_set_new(o, "last_seen",
		    json_integer(n->pending[i].last_seen));
		(void)json_array_append_new(arr, o);
	}
	return arr;
}

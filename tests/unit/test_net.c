/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for net.c: address parsing and formatting, the port-22000
 * fallback rule and the listener on 127.0.0.1:0, the duplicate-connection
 * tie-break, the bounded pending list, and a loopback cluster on one uv
 * loop: two configured nodes that dial each other at the same time end up
 * on one shared TCP connection, and a third, unknown node is refused and
 * listed as pending. Every test closes its nets and checks that the loop
 * has no handle left (ASan checks the memory).
 */
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "shoal/config.h"
#include "shoal/conn.h"
#include "shoal/db.h"
#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/net.h"
#include "shoal/tls.h"
#include "shoal/util.h"

#define WAIT_MS		20000

struct node {
	char			 dir[64];
	struct identity		*id;
	struct tls_config	*tls;
	struct db		*db;
	struct config		*cfg;
	struct net		*net;
	struct conn_env		 env;
	int			 changes;
};

struct fixture {
	uv_loop_t	 loop;
	uv_timer_t	 tick;
	uv_tcp_t	 aux;		/* a test's own socket */
	uv_connect_t	 aux_req;
	struct node	 nodes[3];
	size_t		 node_count;
};

static uint64_t
wait_ms(void)
{
	const char	*m = getenv("SHOAL_TEST_TIMEOUT_MULT");
	uint64_t	 mult = 1;

	if (m != NULL && util_parse_u64(m, 1, 100, &mult) != 0)
		mult = 1;
	return WAIT_MS * mult;
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void
noop_close(uv_handle_t *h)
{
	(void)h;
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 ? 0 : -1;
}

static void
change_cb(struct net *n, int64_t folder_idx, void *arg)
{
	struct node	*nd = arg;

	(void)n;
	(void)folder_idx;
	nd->changes++;
}

static void
node_init(struct fixture *fx, struct node *nd)
{
	char	*path;

	snprintf(nd->dir, sizeof(nd->dir), "/tmp/shoal-net-XXXXXX");
	assert_non_null(mkdtemp(nd->dir));
	assert_int_equal(identity_generate(nd->dir), 0);
	assert_int_equal(identity_load(nd->dir, &nd->id), 0);
	assert_int_equal(tls_config_new(nd->id, &nd->tls), 0);
	path = util_path_join(nd->dir, "index.db");
	assert_int_equal(db_open(path, &nd->db), 0);
	free(path);
	nd->cfg = config_new();
	assert_non_null(nd->cfg);
	free(nd->cfg->listen);
	nd->cfg->listen = xstrdup("tcp://127.0.0.1:0");
	nd->env.loop = &fx->loop;
	nd->env.db = nd->db;
	nd->env.cfg = nd->cfg;
	nd->env.tls = nd->tls;
	nd->env.self = *identity_device_id(nd->id);
	nd->env.short_id = identity_short_id(&nd->env.self);
}

static void
node_free(struct node *nd)
{
	db_close(nd->db);
	config_free(nd->cfg);
	tls_config_free(nd->tls);
	identity_free(nd->id);
	(void)nftw(nd->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	struct fixture	*fx;
	size_t		 i;

	fx = xcalloc(1, sizeof(*fx));
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	/* Wakes UV_RUN_ONCE now and then so deadlines are noticed. */
	assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
	assert_int_equal(uv_timer_start(&fx->tick, tick_cb, 50, 50), 0);
	uv_unref((uv_handle_t *)&fx->tick);
	fx->node_count = 3;
	for (i = 0; i < fx->node_count; i++)
		node_init(fx, &fx->nodes[i]);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*fx = *state;
	size_t		 i;

	for (i = 0; i < fx->node_count; i++) {
		net_close(fx->nodes[i].net);
		fx->nodes[i].net = NULL;
	}
	uv_close((uv_handle_t *)&fx->tick, noop_close);
	/* Every net handle and connection must close by itself. */
	assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	for (i = 0; i < fx->node_count; i++)
		node_free(&fx->nodes[i]);
	free(fx);
	return 0;
}

static void
node_open(struct node *nd)
{
	assert_int_equal(net_open(&nd->env, change_cb, nd, &nd->net), 0);
}

static uint16_t
listen_port(struct net *n)
{
	char		 host[NET_HOST_SIZE];
	uint16_t	 port = 0;

	assert_int_equal(net_addr_parse(net_listen_addr(n), host, sizeof(host),
	    &port), 0);
	return port;
}

/* Pure helpers */

static void
test_net_addr_parse(void **state)
{
	char		 host[NET_HOST_SIZE];
	uint16_t	 port;

	(void)state;
	assert_int_equal(net_addr_parse("tcp://1.2.3.4:5", host, sizeof(host),
	    &port), 0);
	assert_string_equal(host, "1.2.3.4");
	assert_int_equal(port, 5);
	assert_int_equal(net_addr_parse("tcp://[::1]:6", host, sizeof(host),
	    &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 6);
	assert_int_equal(net_addr_parse("tcp://example.org:22000", host,
	    sizeof(host), &port), 0);
	assert_string_equal(host, "example.org");
	assert_int_equal(port, 22000);
	assert_int_equal(net_addr_parse("tcp://0.0.0.0:0", host, sizeof(host),
	    &port), 0);
	assert_int_equal(port, 0);

	assert_int_equal(net_addr_parse("udp://1.2.3.4:5", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("1.2.3.4:5", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://1.2.3.4", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://1.2.3.4:", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://1.2.3.4:65536", host,
	    sizeof(host), &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://1.2.3.4:-1", host,
	    sizeof(host), &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://1.2.3.4:5x", host,
	    sizeof(host), &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://:5", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://::1:6", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://[::1]6", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://[::1:6", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("tcp://[]:6", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse("dynamic", host, sizeof(host),
	    &port), SH_EPARSE);
	assert_int_equal(net_addr_parse(NULL, host, sizeof(host), &port),
	    SH_EPARSE);
	/* Host longer than the buffer. */
	assert_int_equal(net_addr_parse("tcp://abcdefgh:1", host, 8, &port),
	    SH_EPARSE);
}

static void
test_net_addr_format(void **state)
{
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	char			 out[NET_ADDR_SIZE];

	(void)state;
	assert_int_equal(uv_ip4_addr("127.0.0.1", 22001, &s4), 0);
	assert_int_equal(net_addr_format((struct sockaddr *)&s4, true, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "tcp://127.0.0.1:22001");
	assert_int_equal(net_addr_format((struct sockaddr *)&s4, false, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1:22001");
	assert_int_equal(uv_ip6_addr("::1", 6, &s6), 0);
	assert_int_equal(net_addr_format((struct sockaddr *)&s6, true, out,
	    sizeof(out)), 0);
	assert_string_equal(out, "tcp://[::1]:6");
	assert_int_equal(net_addr_format((struct sockaddr *)&s4, true, out,
	    8), UV_ENOBUFS);
}

static void
test_net_listen_fallback_rule(void **state)
{
	(void)state;
	assert_true(net_listen_should_fallback(UV_EADDRINUSE,
	    NET_DEFAULT_PORT));
	assert_false(net_listen_should_fallback(UV_EADDRINUSE, 22001));
	assert_false(net_listen_should_fallback(UV_EACCES, NET_DEFAULT_PORT));
	assert_false(net_listen_should_fallback(0, NET_DEFAULT_PORT));
}

static void
test_net_dup_tiebreak(void **state)
{
	struct device_id	 lo, hi;
	uint64_t		 t0 = 100000;

	(void)state;
	memset(&lo, 0, sizeof(lo));
	memset(&hi, 0, sizeof(hi));
	lo.raw[0] = 0x10;
	hi.raw[0] = 0x20;
	/* Fresh duplicates: the lower TLS client wins, whichever came first. */
	assert_true(net_dup_keep_new(&hi, t0, &lo, t0 + 5));
	assert_false(net_dup_keep_new(&lo, t0, &hi, t0 + 5));
	/* Both ends of a simultaneous dial agree: seen from the other side
	 * the roles of "old" and "new" swap but the survivor is the same. */
	assert_true(net_dup_keep_new(&hi, t0, &lo, t0) ==
	    !net_dup_keep_new(&lo, t0, &hi, t0));
	/* Same client both times (the peer redialled): keep the old one... */
	assert_false(net_dup_keep_new(&lo, t0, &lo, t0 + 10));
	/* ...unless it is older than NET_REPLACE_AFTER_MS. */
	assert_true(net_dup_keep_new(&lo, t0, &lo,
	    t0 + NET_REPLACE_AFTER_MS + 1));
	assert_true(net_dup_keep_new(&lo, t0, &hi,
	    t0 + NET_REPLACE_AFTER_MS + 1));
	assert_false(net_dup_keep_new(&lo, t0, &hi, t0 + NET_REPLACE_AFTER_MS));
}

/* Listener */

static void
connect_cb(uv_connect_t *req, int status)
{
	int	*out = req->data;

	*out = status == 0 ? 1 : status;
}

/* Connections that end at once are retried ever more slowly; one that
 * lasted starts over. */
static void
test_net_redial_delay(void **state)
{
	uint64_t	backoff = NET_DIAL_BACKOFF_MIN_MS;
	uint64_t	want = NET_DIAL_BACKOFF_MIN_MS;
	int		i;

	(void)state;
	for (i = 0; i < 10; i++) {
		assert_int_equal(net_redial_delay(&backoff, 0), want);
		want = want * 2 > NET_DIAL_BACKOFF_MAX_MS ?
		    NET_DIAL_BACKOFF_MAX_MS : want * 2;
	}
	assert_int_equal(net_redial_delay(&backoff, NET_SHORT_CONN_S - 1),
	    NET_DIAL_BACKOFF_MAX_MS);
	assert_int_equal(net_redial_delay(&backoff, NET_SHORT_CONN_S),
	    NET_DIAL_BACKOFF_MIN_MS);
	assert_int_equal(backoff, NET_DIAL_BACKOFF_MIN_MS);
	assert_int_equal(net_redial_delay(&backoff, 3), NET_DIAL_BACKOFF_MIN_MS);
	assert_int_equal(net_redial_delay(&backoff, 3),
	    2 * NET_DIAL_BACKOFF_MIN_MS);
}

static void
test_net_listen_port0(void **state)
{
	struct fixture		*fx = *state;
	struct node		*a = &fx->nodes[0];
	struct sockaddr_in	 sa;
	uv_connect_t		*req = &fx->aux_req;
	uv_tcp_t		*tcp = &fx->aux;
	uint64_t		 deadline;
	uint16_t		 port;
	int			 done = 0;

	node_open(a);
	assert_true(strncmp(net_listen_addr(a->net), "tcp://127.0.0.1:",
	    16) == 0);
	port = listen_port(a->net);
	assert_true(port != 0);
	/* It really listens there. */
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
	assert_int_equal(uv_tcp_init(&fx->loop, tcp), 0);
	req->data = &done;
	assert_int_equal(uv_tcp_connect(req, tcp, (struct sockaddr *)&sa,
	    connect_cb), 0);
	deadline = util_now_ms() + wait_ms();
	while (done == 0 && util_now_ms() < deadline)
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	assert_int_equal(done, 1);
	uv_close((uv_handle_t *)tcp, noop_close);
}

static void
test_net_listen_taken_port(void **state)
{
	struct fixture		*fx = *state;
	struct node		*a = &fx->nodes[0];
	struct sockaddr_in	 sa;
	struct sockaddr_storage	 ss;
	uv_tcp_t		*holder = &fx->aux;
	struct net		*n = NULL;
	int			 len = sizeof(ss);
	char			*url;

	/* A port that is not 22000 and is taken: no fallback, an error. */
	assert_int_equal(uv_tcp_init(&fx->loop, holder), 0);
	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
	assert_int_equal(uv_tcp_bind(holder, (struct sockaddr *)&sa, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)holder, 8, NULL), 0);
	assert_int_equal(uv_tcp_getsockname(holder, (struct sockaddr *)&ss,
	    &len), 0);
	url = xasprintf("tcp://127.0.0.1:%u",
	    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	free(a->cfg->listen);
	a->cfg->listen = url;
	assert_int_equal(net_open(&a->env, NULL, NULL, &n), UV_EADDRINUSE);
	assert_null(n);
	uv_close((uv_handle_t *)holder, noop_close);
}

static void
test_net_listen_default_port_fallback(void **state)
{
	struct fixture		*fx = *state;
	struct node		*a = &fx->nodes[0];
	struct sockaddr_in	 sa;
	uv_tcp_t		*holder = &fx->aux;
	int			 rc;

	/* Take 22000 ourselves; if someone else has it, it is taken anyway. */
	assert_int_equal(uv_tcp_init(&fx->loop, holder), 0);
	assert_int_equal(uv_ip4_addr("127.0.0.1", NET_DEFAULT_PORT, &sa), 0);
	rc = uv_tcp_bind(holder, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)holder, 8, NULL);
	assert_true(rc == 0 || rc == UV_EADDRINUSE);
	free(a->cfg->listen);
	a->cfg->listen = xstrdup("tcp://127.0.0.1:22000");
	node_open(a);
	assert_true(listen_port(a->net) != 0);
	assert_true(listen_port(a->net) != NET_DEFAULT_PORT);
	uv_close((uv_handle_t *)holder, noop_close);
}

static void
test_net_listen_bad_address(void **state)
{
	struct fixture	*fx = *state;
	struct node	*a = &fx->nodes[0];
	struct net	*n = NULL;

	free(a->cfg->listen);
	a->cfg->listen = xstrdup("tcp://127.0.0.1");
	assert_int_equal(net_open(&a->env, NULL, NULL, &n), SH_EPARSE);
	assert_null(n);
}

/* Pending devices */

static void
test_net_pending_bounds(void **state)
{
	struct fixture		*fx = *state;
	struct node		*a = &fx->nodes[0];
	struct device_id	 id;
	json_t			*arr, *o;
	char			 name[32], idstr[IDENTITY_ID_STR_SIZE];
	size_t			 i;

	node_open(a);
	memset(&id, 0, sizeof(id));
	for (i = 0; i < NET_MAX_PENDING + 10; i++) {
		id.raw[0] = (uint8_t)i;
		id.raw[1] = 0x5a;
		snprintf(name, sizeof(name), "dev%zu", i);
		net_pending_note(a->net, &id, name, "127.0.0.1:1");
	}
	arr = net_pending_json(a->net);
	assert_int_equal(json_array_size(arr), NET_MAX_PENDING);
	json_decref(arr);

	/* Seeing a known pending device again updates it in place. */
	id.raw[0] = (uint8_t)(NET_MAX_PENDING + 9);
	net_pending_note(a->net, &id, "renamed", "127.0.0.1:2");
	arr = net_pending_json(a->net);
	assert_int_equal(json_array_size(arr), NET_MAX_PENDING);
	identity_id_format(&id, idstr);
	o = NULL;
	for (i = 0; i < json_array_size(arr); i++) {
		if (strcmp(json_string_value(json_object_get(
		    json_array_get(arr, i), "device_id")), idstr) == 0) {
			assert_null(o);
			o = json_array_get(arr, i);
		}
	}
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "name")),
	    "renamed");
	assert_string_equal(json_string_value(json_object_get(o, "address")),
	    "127.0.0.1:2");
	assert_true(json_integer_value(json_object_get(o, "last_seen")) > 0);
	json_decref(arr);
}

/* Loopback cluster */

static json_t *
peer_entry(struct node *nd, const struct node *other)
{
	json_t	*arr, *o, *r = NULL;
	char	 idstr[IDENTITY_ID_STR_SIZE];
	size_t	 i;

	identity_id_format(&other->env.self, idstr);
	arr = net_peers_json(nd->net);
	assert_non_null(arr);
	for (i = 0; i < json_array_size(arr); i++) {
		o = json_array_get(arr, i);
		if (strcmp(json_string_value(json_object_get(o, "device_id")),
		    idstr) == 0)
			r = json_incref(o);
	}
	json_decref(arr);
	return r;
}

static bool
connected_to(struct node *nd, const struct node *other)
{
	json_t	*o;
	bool	 r;

	o = peer_entry(nd, other);
	if (o == NULL)
		return false;
	r = json_is_true(json_object_get(o, "connected"));
	json_decref(o);
	return r;
}

static bool
is_pending(struct node *nd, const struct node *other)
{
	json_t	*arr;
	char	 idstr[IDENTITY_ID_STR_SIZE];
	bool	 r = false;
	size_t	 i;

	identity_id_format(&other->env.self, idstr);
	arr = net_pending_json(nd->net);
	for (i = 0; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_object_get(
		    json_array_get(arr, i), "device_id")), idstr) == 0)
			r = true;
	json_decref(arr);
	return r;
}

/* The address one node reports for its peer, as "tcp://ip:port". */
static bool
same_connection(struct node *a, struct node *b)
{
	json_t		*oa, *ob;
	char		*va, *vb;
	bool		 a_dialled, b_dialled;

	oa = peer_entry(a, b);
	ob = peer_entry(b, a);
	if (!json_is_string(json_object_get(oa, "address")) ||
	    !json_is_string(json_object_get(ob, "address"))) {
		json_decref(oa);
		json_decref(ob);
		return false;
	}
	va = xasprintf("tcp://%s",
	    json_string_value(json_object_get(oa, "address")));
	vb = xasprintf("tcp://%s",
	    json_string_value(json_object_get(ob, "address")));
	/* Whoever dialled sees the other's listen address. */
	a_dialled = strcmp(va, net_listen_addr(b->net)) == 0;
	b_dialled = strcmp(vb, net_listen_addr(a->net)) == 0;
	free(va);
	free(vb);
	json_decref(oa);
	json_decref(ob);
	return a_dialled != b_dialled;
}

static void
add_device(struct node *nd, const struct node *other, bool with_address)
{
	const char	*addr[1];
	char		 err[CONFIG_ERR_SIZE];

	addr[0] = with_address ? net_listen_addr(other->net) : "dynamic";
	assert_int_equal(config_device_add(nd->cfg, &other->env.self, "peer",
	    addr, 1, false, err, sizeof(err)), 0);
	net_reconfigure(nd->net, nd->cfg);
}

static void
test_net_loopback_connect_and_pending(void **state)
{
	struct fixture	*fx = *state;
	struct node	*a = &fx->nodes[0], *b = &fx->nodes[1];
	struct node	*c = &fx->nodes[2];
	json_t		*o;
	json_int_t	 in_before;
	uint64_t	 deadline;
	bool		 ok = false;

	node_open(a);
	node_open(b);
	node_open(c);
	/* Each knows the other's address, so both dial at once. */
	add_device(a, b, true);
	add_device(b, a, true);
	/* c knows a, but a does not know c. */
	add_device(c, a, true);
	deadline = util_now_ms() + wait_ms();
	while (util_now_ms() < deadline) {
		ok = connected_to(a, b) && connected_to(b, a) &&
		    same_connection(a, b) && is_pending(a, c);
		if (ok)
			break;
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	}
	assert_true(ok);
	assert_non_null(net_find(a->net, &b->env.self));
	assert_null(net_find(a->net, &c->env.self));
	assert_false(connected_to(c, a));
	assert_true(a->changes > 0);

	o = peer_entry(a, b);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "name")),
	    "peer");
	assert_true(json_is_string(json_object_get(o, "client")));
	assert_true(json_integer_value(json_object_get(o, "in_bytes")) > 0);
	assert_true(json_integer_value(json_object_get(o, "out_bytes")) > 0);
	assert_true(json_is_integer(json_object_get(o, "connected_since")));
	in_before = json_integer_value(json_object_get(o, "in_bytes"));
	json_decref(o);

	/* Removing b from a's config drops the connection; the traffic
	 * counted so far stays with the device if it comes back. */
	assert_int_equal(config_device_remove(a->cfg, &b->env.self), 0);
	net_reconfigure(a->net, a->cfg);
	deadline = util_now_ms() + wait_ms();
	while (util_now_ms() < deadline && connected_to(b, a))
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	assert_false(connected_to(b, a));
	assert_null(net_find(a->net, &b->env.self));
	/* b keeps dialling a and is now refused: a lists it as pending. */
	deadline = util_now_ms() + wait_ms();
	while (util_now_ms() < deadline && !is_pending(a, b))
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	assert_true(is_pending(a, b));

	/* Configured again: the counters survived, pending is cleared, and
	 * the two connect again. */
	add_device(a, b, true);
	assert_false(is_pending(a, b));
	o = peer_entry(a, b);
	assert_non_null(o);
	assert_false(json_is_true(json_object_get(o, "connected")));
	assert_true(json_integer_value(json_object_get(o, "in_bytes")) >=
	    in_before);
	json_decref(o);
	deadline = util_now_ms() + wait_ms();
	while (util_now_ms() < deadline &&
	    !(connected_to(a, b) && connected_to(b, a)))
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	assert_true(connected_to(a, b) && connected_to(b, a));
	o = peer_entry(a, b);
	assert_true(json_integer_value(json_object_get(o, "in_bytes")) >
	    in_before);
	json_decref(o);
}

static void
test_net_disconnected_peer_json(void **state)
{
	struct fixture	*fx = *state;
	struct node	*a = &fx->nodes[0], *b = &fx->nodes[1];
	struct device_id other;
	json_t		*o;

	node_open(a);
	node_open(b);
	/* A dynamic-only device is listed but never dialled. */
	add_device(a, b, false);
	o = peer_entry(a, b);
	assert_non_null(o);
	assert_false(json_is_true(json_object_get(o, "connected")));
	assert_true(json_is_null(json_object_get(o, "address")));
	assert_true(json_is_null(json_object_get(o, "client")));
	assert_true(json_is_null(json_object_get(o, "connected_since")));
	assert_int_equal(json_integer_value(json_object_get(o, "in_bytes")),
	    0);
	json_decref(o);
	/* Unknown devices are not ours to give addresses to. */
	memset(&other, 0x77, sizeof(other));
	assert_int_equal(net_set_dynamic_addresses(a->net, &other, NULL, 0),
	    SH_ENOTFOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net_addr_parse),
		cmocka_unit_test(test_net_addr_format),
		cmocka_unit_test(test_net_listen_fallback_rule),
		cmocka_unit_test(test_net_dup_tiebreak),
		cmocka_unit_test(test_net_redial_delay),
		cmocka_unit_test_setup_teardown(test_net_listen_port0,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_listen_taken_port,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_net_listen_default_port_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_listen_bad_address,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_pending_bounds,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_net_loopback_connect_and_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_net_disconnected_peer_json, setup, teardown),
	};

	if (getenv("SHOAL_TEST_LOG") == NULL &&
	    log_set_level("warn") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}

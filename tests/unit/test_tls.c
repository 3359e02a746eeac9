/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for tls.c: two identities in temporary homes, a listener on
 * 127.0.0.1:0 and a client on one uv loop. Handshakes in both roles,
 * device IDs, ALPN and version, 8 MiB each way under backpressure, refusal
 * of peers without exactly one certificate (a raw mbedTLS client on its own
 * thread plays the bad peer), garbage instead of a ClientHello, and close
 * from either side, handshake timeout. With SHOAL_INTEROP_* set, two more
 * tests talk to a real Syncthing (tests/interop/tls_handshake.sh).
 */
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <sodium.h>
#include <uv.h>

#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/tls.h"
#include "shoal/util.h"

#define XFER_TOTAL	(8u * 1024 * 1024)
#define XFER_CHUNK	(64u * 1024)
#define XFER_HIGH	(256u * 1024)
#define PAUSE_EVERY	(1024u * 1024)
#define WATCHDOG_MS	30000

struct fixture;

struct side {
	struct fixture	*fx;
	const char	*name;
	struct tls	*t;
	int		 hs_count;
	int		 hs_status;
	int		 close_count;
	int		 close_status;
	struct device_id peer_id;
	char		 alpn[32];
	char		 version[32];
	char		 suite[96];
	bool		 fast;		/* tls_fast_records() */
	/* What to do after the handshake. */
	bool		 transfer;
	bool		 close_after_hs;
	bool		 close_after_first;	/* once 4 bytes arrived */
	/* Sending. */
	uint64_t	 prng;
	size_t		 sent;
	size_t		 max_queue;
	crypto_hash_sha256_state tx;
	uint8_t		 tx_hash[32];
	bool		 tx_done;
	/* Receiving. */
	size_t		 recvd;
	crypto_hash_sha256_state rx;
	uint8_t		 rx_hash[32];
	bool		 pause_reads;
	bool		 paused;
	int		 pauses;
	bool		 read_while_paused;
	uv_timer_t	 resume;
	bool		 resume_init;
	/* Interop: bytes seen. */
	uint8_t		 first[4];
	size_t		 first_len;
	/* read_dest: records decrypted in place. */
	uint8_t		 dest[16384];
	size_t		 dest_asked;
	size_t		 in_place;
};

struct fixture {
	char		 dir_a[64];
	char		 dir_b[64];
	struct identity	*id_a;
	struct identity	*id_b;
	struct tls_config *cfg_a;	/* server */
	struct tls_config *cfg_b;	/* client */
	uv_loop_t	 loop;
	uv_tcp_t	 listener;
	bool		 listener_open;
	int		 port;
	uv_timer_t	 watchdog;
	bool		 timed_out;
	struct side	 srv;
	struct side	 cli;
	/* Callbacks of our client; NULL means cbs. */
	const struct tls_callbacks *cli_cbs;
	/* Garbage client. */
	uv_tcp_t	 raw;
	uv_connect_t	 conn_req;
	uv_write_t	 raw_write;
	bool		 raw_eof;
};

static void
watchdog_cb(uv_timer_t *timer)
{
	struct fixture	*fx = timer->data;

	fx->timed_out = true;
	uv_stop(&fx->loop);
}

static uint64_t
timeout_ms(void)
{
	const char	*m = getenv("SHOAL_TEST_TIMEOUT_MULT");
	uint64_t	 mult = 1;

	if (m != NULL && util_parse_u64(m, 1, 100, &mult) != 0)
		mult = 1;
	return WATCHDOG_MS * mult;
}

static void
make_home(char *dir, size_t size, struct identity **out)
{
	snprintf(dir, size, "/tmp/shoal-tls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(identity_generate(dir), 0);
	assert_int_equal(identity_load(dir, out), 0);
}

static void
remove_home(const char *dir)
{
	char	*p;

	p = util_path_join(dir, IDENTITY_CERT_FILE);
	(void)unlink(p);
	free(p);
	p = util_path_join(dir, IDENTITY_KEY_FILE);
	(void)unlink(p);
	free(p);
	(void)rmdir(dir);
}

static int
setup(void **state)
{
	struct fixture	*fx;

	fx = xcalloc(1, sizeof(*fx));
	make_home(fx->dir_a, sizeof(fx->dir_a), &fx->id_a);
	make_home(fx->dir_b, sizeof(fx->dir_b), &fx->id_b);
	assert_int_equal(tls_config_new(fx->id_a, &fx->cfg_a), 0);
	assert_int_equal(tls_config_new(fx->id_b, &fx->cfg_b), 0);
	assert_int_equal(uv_loop_init(&fx->loop), 0);
	assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
	fx->watchdog.data = fx;
	assert_int_equal(uv_timer_start(&fx->watchdog, watchdog_cb,
	    timeout_ms(), 0), 0);
	/* The watchdog must not keep the loop alive by itself. */
	uv_unref((uv_handle_t *)&fx->watchdog);
	fx->srv.fx = fx;
	fx->srv.name = "server";
	fx->cli.fx = fx;
	fx->cli.name = "client";
	*state = fx;
	return 0;
}

static void
noop_close(uv_handle_t *h)
{
	(void)h;
}

static int
teardown(void **state)
{
	struct fixture	*fx = *state;

	uv_close((uv_handle_t *)&fx->watchdog, noop_close);
	if (fx->listener_open)
		uv_close((uv_handle_t *)&fx->listener, noop_close);
	if (fx->srv.resume_init)
		uv_close((uv_handle_t *)&fx->srv.resume, noop_close);
	if (fx->cli.resume_init)
		uv_close((uv_handle_t *)&fx->cli.resume, noop_close);
	assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	tls_config_free(fx->cfg_a);
	tls_config_free(fx->cfg_b);
	identity_free(fx->id_a);
	identity_free(fx->id_b);
	remove_home(fx->dir_a);
	remove_home(fx->dir_b);
	free(fx);
	return 0;
}

/* Deterministic stream: both ends can hash what was meant to arrive. */
static void
fill(struct side *s, uint8_t *buf, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		s->prng ^= s->prng << 13;
		s->prng ^= s->prng >> 7;
		s->prng ^= s->prng << 17;
		buf[i] = (uint8_t)s->prng;
	}
}

static void
pump(struct side *s)
{
	static uint8_t	 chunk[XFER_CHUNK];
	size_t		 n;

	while (s->sent < XFER_TOTAL && tls_write_queue_size(s->t) < XFER_HIGH) {
		n = XFER_TOTAL - s->sent;
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		fill(s, chunk, n);
		crypto_hash_sha256_update(&s->tx, chunk, n);
		assert_int_equal(tls_write(s->t, chunk, n), 0);
		s->sent += n;
		if (tls_write_queue_size(s->t) > s->max_queue)
			s->max_queue = tls_write_queue_size(s->t);
	}
	if (s->sent == XFER_TOTAL && !s->tx_done) {
		crypto_hash_sha256_final(&s->tx, s->tx_hash);
		s->tx_done = true;
	}
}

static void
maybe_finish(struct fixture *fx)
{
	/* The client ends the transfer once both directions are complete. */
	if (fx->cli.recvd == XFER_TOTAL && fx->srv.recvd == XFER_TOTAL &&
	    fx->cli.sent == XFER_TOTAL && fx->srv.sent == XFER_TOTAL)
		tls_close(fx->cli.t, 0);
}

static void
resume_cb(uv_timer_t *timer)
{
	struct side	*s = timer->data;

	s->paused = false;
	tls_resume_read(s->t);
}

static void
on_handshake(struct tls *t, int status)
{
	struct side	*s = tls_data(t);
	const char	*alpn;

	s->hs_count++;
	s->hs_status = status;
	if (status != 0)
		return;
	assert_int_equal(tls_state(t), TLS_STATE_OPEN);
	assert_int_equal(tls_peer_id(t, &s->peer_id), 0);
	alpn = tls_alpn(t);
	snprintf(s->alpn, sizeof(s->alpn), "%s", alpn != NULL ? alpn : "");
	snprintf(s->version, sizeof(s->version), "%s", tls_version_name(t));
	snprintf(s->suite, sizeof(s->suite), "%s", tls_ciphersuite_name(t));
	s->fast = tls_fast_records(t);
	if (s->close_after_hs) {
		tls_close(t, 0);
		/* A second close is a no-op. */
		tls_close(t, 0);
		return;
	}
	if (s->transfer) {
		crypto_hash_sha256_init(&s->tx);
		crypto_hash_sha256_init(&s->rx);
		pump(s);
	}
}

static void
on_read(struct tls *t, const uint8_t *data, size_t len)
{
	struct side	*s = tls_data(t);
	size_t		 before = s->recvd;
	size_t		 n;

	if (s->paused)
		s->read_while_paused = true;
	if (s->first_len < sizeof(s->first)) {
		n = sizeof(s->first) - s->first_len;
		if (n > len)
			n = len;
		memcpy(s->first + s->first_len, data, n);
		s->first_len += n;
		if (s->close_after_first && s->first_len == sizeof(s->first)) {
			tls_close(t, 0);
			return;
		}
	}
	if (data == s->dest)
		s->in_place++;
	if (!s->transfer)
		return;
	crypto_hash_sha256_update(&s->rx, data, len);
	s->recvd += len;
	assert_true(s->recvd <= XFER_TOTAL);
	if (s->recvd == XFER_TOTAL) {
		crypto_hash_sha256_final(&s->rx, s->rx_hash);
		maybe_finish(s->fx);
		return;
	}
	/* App-level backpressure: pause at every MiB boundary and resume
	 * from the loop. */
	if (s->pause_reads && before / PAUSE_EVERY != s->recvd / PAUSE_EVERY) {
		tls_pause_read(t);
		s->paused = true;
		s->pauses++;
		assert_int_equal(uv_timer_start(&s->resume, resume_cb, 1, 0),
		    0);
	}
}

static void
on_drain(struct tls *t)
{
	struct side	*s = tls_data(t);

	if (s->transfer && tls_state(t) == TLS_STATE_OPEN) {
		pump(s);
		maybe_finish(s->fx);
	}
}

static void
on_close(struct tls *t)
{
	struct side	*s = tls_data(t);

	s->close_count++;
	s->close_status = tls_status(t);
	s->t = NULL;
}

static const struct tls_callbacks cbs = {
	.on_handshake = on_handshake,
	.on_read = on_read,
	.on_drain = on_drain,
	.on_close = on_close,
};

static void
on_connection(uv_stream_t *server, int status)
{
	struct fixture	*fx = server->data;
	uv_tcp_t	*tcp;

	assert_int_equal(status, 0);
	tcp = xmalloc(sizeof(*tcp));
	assert_int_equal(uv_tcp_init(&fx->loop, tcp), 0);
	assert_int_equal(uv_accept(server, (uv_stream_t *)tcp), 0);
	assert_int_equal(tls_open(fx->cfg_a, tcp, TLS_ROLE_SERVER, &cbs,
	    &fx->srv, &fx->srv.t), 0);
	/* One connection per test. */
	uv_close((uv_handle_t *)&fx->listener, noop_close);
	fx->listener_open = false;
}

static void
listen_on(struct fixture *fx, int port)
{
	struct sockaddr_in	 sin;
	struct sockaddr_storage	 ss;
	int			 len = sizeof(ss);

	assert_int_equal(uv_tcp_init(&fx->loop, &fx->listener), 0);
	fx->listener_open = true;
	fx->listener.data = fx;
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sin), 0);
	assert_int_equal(uv_tcp_bind(&fx->listener,
	    (const struct sockaddr *)&sin, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&fx->listener, 4,
	    on_connection), 0);
	assert_int_equal(uv_tcp_getsockname(&fx->listener,
	    (struct sockaddr *)&ss, &len), 0);
	fx->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
listen_any(struct fixture *fx)
{
	listen_on(fx, 0);
}

static void
on_connect(uv_connect_t *req, int status)
{
	struct fixture	*fx = req->data;

	assert_int_equal(status, 0);
	assert_int_equal(tls_open(fx->cfg_b, (uv_tcp_t *)req->handle,
	    TLS_ROLE_CLIENT, fx->cli_cbs != NULL ? fx->cli_cbs : &cbs,
	    &fx->cli, &fx->cli.t), 0);
	/* Nothing can be sent before the peer is authenticated. */
	assert_int_equal(tls_state(fx->cli.t), TLS_STATE_HANDSHAKE);
	assert_int_equal(tls_write(fx->cli.t, "x", 1), -ENOTCONN);
	assert_int_equal(tls_peer_id(fx->cli.t, &fx->cli.peer_id), -ENOTCONN);
	assert_true(identity_id_is_zero(&fx->cli.peer_id));
}

static void
dial(struct fixture *fx, const char *ip, int port)
{
	struct sockaddr_in	 sin;
	uv_tcp_t		*tcp;

	tcp = xmalloc(sizeof(*tcp));
	assert_int_equal(uv_tcp_init(&fx->loop, tcp), 0);
	assert_int_equal(uv_ip4_addr(ip, port, &sin), 0);
	fx->conn_req.data = fx;
	assert_int_equal(uv_tcp_connect(&fx->conn_req, tcp,
	    (const struct sockaddr *)&sin, on_connect), 0);
}

static void
run(struct fixture *fx)
{
	assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	assert_false(fx->timed_out);
}

static void
assert_authenticated(struct fixture *fx)
{
	assert_int_equal(fx->srv.hs_count, 1);
	assert_int_equal(fx->cli.hs_count, 1);
	assert_int_equal(fx->srv.hs_status, 0);
	assert_int_equal(fx->cli.hs_status, 0);
	/* Each side sees the other's device ID. */
	assert_true(identity_id_equal(&fx->srv.peer_id,
	    identity_device_id(fx->id_b)));
	assert_true(identity_id_equal(&fx->cli.peer_id,
	    identity_device_id(fx->id_a)));
	assert_string_equal(fx->srv.alpn, TLS_ALPN_BEP);
	assert_string_equal(fx->cli.alpn, TLS_ALPN_BEP);
	assert_string_equal(fx->cli.version, fx->srv.version);
	assert_string_equal(fx->cli.suite, fx->srv.suite);
	/* TLS 1.3 only appears on an mbedTLS 3.x build (Debian 12: 2.28). */
	if (strcmp(fx->cli.version, "TLSv1.3") != 0) {
		assert_string_equal(fx->cli.version, "TLSv1.2");
		assert_non_null(strstr(fx->cli.suite, "ECDHE-ECDSA"));
	}
}

/* Both sides on libsodium records where the build has them (mbedTLS 2.x:
 * fast records are on by default). */
static void
assert_fast_default(struct fixture *fx)
{
	bool	want = MBEDTLS_VERSION_NUMBER < 0x03000000;

	assert_int_equal(fx->cli.fast, want);
	assert_int_equal(fx->srv.fast, want);
	if (want)
		assert_true(strstr(fx->cli.suite, "AES-256-GCM") != NULL ||
		    strstr(fx->cli.suite, "CHACHA20") != NULL);
}

static void
test_tls_handshake_both_roles(void **state)
{
	struct fixture	*fx = *state;

	fx->cli.close_after_hs = true;
	listen_any(fx);
	dial(fx, "127.0.0.1", fx->port);
	run(fx);
	assert_authenticated(fx);
	/* Closed by the client with close_notify; the server saw the peer
	 * close. Each on_close exactly once. */
	assert_int_equal(fx->cli.close_count, 1);
	assert_int_equal(fx->srv.close_count, 1);
	assert_int_equal(fx->cli.close_status, 0);
	assert_int_equal(fx->srv.close_status, UV_EOF);
}

static void
test_tls_close_from_server(void **state)
{
	struct fixture	*fx = *state;

	fx->srv.close_after_hs = true;
	listen_any(fx);
	dial(fx, "127.0.0.1", fx->port);
	run(fx);
	assert_authenticated(fx);
	assert_int_equal(fx->cli.close_count, 1);
	assert_int_equal(fx->srv.close_count, 1);
	assert_int_equal(fx->srv.close_status, 0);
	assert_int_equal(fx->cli.close_status, UV_EOF);
}

/* SHA-256 of the XFER_TOTAL bytes that fill() makes from `seed`. */
static void
expected_hash(uint64_t seed, uint8_t out[32])
{
	static uint8_t			 buf[XFER_CHUNK];
	crypto_hash_sha256_state	 h;
	struct side			 ref;
	size_t				 done;

	memset(&ref, 0, sizeof(ref));
	ref.prng = seed;
	crypto_hash_sha256_init(&h);
	for (done = 0; done < XFER_TOTAL; done += sizeof(buf)) {
		fill(&ref, buf, sizeof(buf));
		crypto_hash_sha256_update(&h, buf, sizeof(buf));
	}
	crypto_hash_sha256_final(&h, out);
}

static void
transfer_both_ways(struct fixture *fx)
{
	uint8_t		 want[32];

	fx->srv.transfer = fx->cli.transfer = true;
	fx->srv.prng = 0x9e3779b97f4a7c15ULL;
	fx->cli.prng = 0xd1b54a32d192ed03ULL;
	fx->srv.pause_reads = fx->cli.pause_reads = true;
	assert_int_equal(uv_timer_init(&fx->loop, &fx->srv.resume), 0);
	fx->srv.resume.data = &fx->srv;
	fx->srv.resume_init = true;
	assert_int_equal(uv_timer_init(&fx->loop, &fx->cli.resume), 0);
	fx->cli.resume.data = &fx->cli;
	fx->cli.resume_init = true;
	listen_any(fx);
	dial(fx, "127.0.0.1", fx->port);
	run(fx);
	assert_authenticated(fx);
	assert_int_equal(fx->srv.recvd, XFER_TOTAL);
	assert_int_equal(fx->cli.recvd, XFER_TOTAL);
	/* What arrived is what was sent, both ways. */
	assert_memory_equal(fx->srv.rx_hash, fx->cli.tx_hash, 32);
	assert_memory_equal(fx->cli.rx_hash, fx->srv.tx_hash, 32);
	/* And what was sent is the intended stream (not, say, empty). */
	expected_hash(0xd1b54a32d192ed03ULL, want);
	assert_memory_equal(fx->srv.rx_hash, want, 32);
	/* Backpressure: the senders stayed near the high-water mark, and
	 * no data was delivered while reads were paused. */
	assert_true(fx->cli.max_queue < XFER_HIGH + 2 * XFER_CHUNK);
	assert_true(fx->srv.max_queue < XFER_HIGH + 2 * XFER_CHUNK);
	assert_true(fx->srv.pauses >= 7);
	assert_true(fx->cli.pauses >= 7);
	assert_false(fx->srv.read_while_paused);
	assert_false(fx->cli.read_while_paused);
	assert_int_equal(fx->cli.close_count, 1);
	assert_int_equal(fx->srv.close_count, 1);
	assert_int_equal(fx->cli.close_status, 0);
	assert_int_equal(fx->srv.close_status, UV_EOF);
}

static void
test_tls_transfer_8mib_both_ways(void **state)
{
	struct fixture	*fx = *state;

	transfer_both_ways(fx);
	assert_fast_default(fx);
}

/*
 * A peer that speaks TLS 1.2 at most (Syncthing with old versions
 * allowed, a 2.28 build of ours): an mbedTLS 3.x build must still agree on
 * 1.2 with an ECDHE-ECDSA AEAD suite and move data both ways, in either
 * role. On a 2.x build every session is 1.2 anyway.
 */
static void
tls12_transfer(struct fixture *fx)
{
	transfer_both_ways(fx);
	assert_string_equal(fx->cli.version, "TLSv1.2");
	assert_string_equal(fx->srv.version, "TLSv1.2");
	assert_non_null(strstr(fx->cli.suite, "ECDHE-ECDSA"));
	assert_non_null(strstr(fx->cli.suite, "GCM"));
	assert_fast_default(fx);
}

/* The server (cfg_a) speaks 1.2 at most. */
static void
test_tls_tls12_server(void **state)
{
	struct fixture	*fx = *state;

	tls_config_set_max_tls12(fx->cfg_a);
	tls12_transfer(fx);
}

/* The client (cfg_b) does. */
static void
test_tls_tls12_client(void **state)
{
	struct fixture	*fx = *state;

	tls_config_set_max_tls12(fx->cfg_b);
	tls12_transfer(fx);
}

/*
 * Fast records on one side only: the other keeps mbedTLS's own record
 * layer, so this checks byte-for-byte wire compatibility of ours with
 * mbedTLS's (keys, nonces, additional data, sequence numbers, the
 * close_notify alert) in both directions and both roles.
 */
static void
test_tls_transfer_fast_server_only(void **state)
{
	struct fixture	*fx = *state;

	tls_config_set_fast_records(fx->cfg_b, false);
	transfer_both_ways(fx);
	assert_false(fx->cli.fast);
	assert_int_equal(fx->srv.fast, MBEDTLS_VERSION_NUMBER < 0x03000000);
}

static void
test_tls_transfer_fast_client_only(void **state)
{
	struct fixture	*fx = *state;

	tls_config_set_fast_records(fx->cfg_a, false);
	transfer_both_ways(fx);
	assert_false(fx->srv.fast);
	assert_int_equal(fx->cli.fast, MBEDTLS_VERSION_NUMBER < 0x03000000);
}

/* Every other record may go to the consumer's buffer. */
static uint8_t *
on_read_dest(struct tls *t, size_t len)
{
	struct side	*s = tls_data(t);

	assert_true(len > 0 && len <= sizeof(s->dest));
	return s->dest_asked++ % 2 == 0 ? s->dest : NULL;
}

/*
 * read_dest: fast records are decrypted where the consumer asks (on_read
 * gets that pointer) or, when it declines, into the session's buffer; the
 * stream arrives whole either way.
 */
static void
test_tls_transfer_read_dest(void **state)
{
	struct fixture	*fx = *state;
	static const struct tls_callbacks dest_cbs = {
		.on_handshake = on_handshake,
		.on_read = on_read,
		.read_dest = on_read_dest,
		.on_drain = on_drain,
		.on_close = on_close,
	};

	fx->cli_cbs = &dest_cbs;
	transfer_both_ways(fx);
	if (!fx->cli.fast) {
		/* mbedTLS's own record layer never asks. */
		assert_int_equal(fx->cli.dest_asked, 0);
		return;
	}
	assert_true(fx->cli.dest_asked >= XFER_TOTAL / 16384);
	assert_int_equal(fx->cli.in_place, (fx->cli.dest_asked + 1) / 2);
	assert_int_equal(fx->srv.dest_asked, 0);
}

/* A bad client made with mbedTLS directly, on its own thread. */
struct raw_client {
	int			 port;
	mbedtls_x509_crt	*chain;		/* NULL: send no certificate */
	void			*key;
	int			 hs_ret;
	int			 read_ret;
	/* After the handshake: send "BEEP", with one bit of the record's
	 * tag flipped on the wire if tamper. */
	bool			 beep;
	bool			 tamper;
	bool			 armed;
	mbedtls_net_context	*net;
};

static int
raw_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct raw_client	*rc = ctx;
	unsigned char		 copy[512];

	if (!rc->armed || len > sizeof(copy))
		return mbedtls_net_send(rc->net, buf, len);
	memcpy(copy, buf, len);
	copy[len - 1] ^= 0x01;
	rc->armed = false;
	return mbedtls_net_send(rc->net, copy, len);
}

static int
raw_recv(void *ctx, unsigned char *buf, size_t len, uint32_t timeout)
{
	struct raw_client	*rc = ctx;

	return mbedtls_net_recv_timeout(rc->net, buf, len, timeout);
}

static void *
raw_client_main(void *arg)
{
	struct raw_client		*rc = arg;
	mbedtls_net_context		 net;
	mbedtls_ssl_config		 conf;
	mbedtls_ssl_context		 ssl;
	mbedtls_entropy_context		 entropy;
	mbedtls_ctr_drbg_context	 drbg;
	unsigned char			 buf[256];
	char				 port[16];
	int				 ret;

	mbedtls_net_init(&net);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	rc->hs_ret = rc->read_ret = -1;
	snprintf(port, sizeof(port), "%d", rc->port);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	    NULL, 0) != 0)
		goto out;
	if (mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		goto out;
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_read_timeout(&conf, 10000);
	if (rc->chain != NULL && mbedtls_ssl_conf_own_cert(&conf, rc->chain,
	    rc->key) != 0)
		goto out;
	if (mbedtls_ssl_setup(&ssl, &conf) != 0)
		goto out;
	if (mbedtls_net_connect(&net, "127.0.0.1", port,
	    MBEDTLS_NET_PROTO_TCP) != 0)
		goto out;
	rc->net = &net;
	mbedtls_ssl_set_bio(&ssl, rc, raw_send, NULL, raw_recv);
	rc->hs_ret = mbedtls_ssl_handshake(&ssl);
	if (rc->hs_ret == 0 && rc->beep) {
		/* Only the application record is tampered with. */
		rc->armed = rc->tamper;
		if (mbedtls_ssl_write(&ssl, (const unsigned char *)"BEEP",
		    4) != 4)
			goto out;
		/* A tampered record ends in an alert, a good one in our
		 * server's close_notify. */
		rc->read_ret = mbedtls_ssl_read(&ssl, buf, sizeof(buf));
	} else if (rc->hs_ret == 0) {
		/* The server must never let us in: expect an alert or EOF. */
		ret = mbedtls_ssl_read(&ssl, buf, sizeof(buf));
		rc->read_ret = ret;
	}
out:
	mbedtls_net_free(&net);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return NULL;
}

static void
run_raw_client(struct fixture *fx, struct raw_client *rc)
{
	pthread_t	th;

	listen_any(fx);
	rc->port = fx->port;
	assert_int_equal(pthread_create(&th, NULL, raw_client_main, rc), 0);
	run(fx);
	assert_int_equal(pthread_join(th, NULL), 0);
	/* Refused: the handshake callback reports failure, never success. */
	assert_int_equal(fx->srv.hs_count, 1);
	assert_int_equal(fx->srv.hs_status, SH_ETLS);
	assert_int_equal(fx->srv.close_count, 1);
	assert_int_equal(fx->srv.close_status, SH_ETLS);
	/* The client got no application data. */
	assert_true(rc->hs_ret != 0 || rc->read_ret <= 0);
}

static void
test_tls_refuses_client_without_certificate(void **state)
{
	struct fixture		*fx = *state;
	struct raw_client	 rc;

	memset(&rc, 0, sizeof(rc));
	run_raw_client(fx, &rc);
}

static void
test_tls_refuses_certificate_chain(void **state)
{
	struct fixture		*fx = *state;
	struct raw_client	 rc;
	mbedtls_x509_crt	 chain;
	const uint8_t		*der;
	size_t			 len;

	/* Two certificates, the first matching the key: a valid TLS client
	 * chain that Syncthing would refuse (bep-brief §2.3 rule 1). */
	mbedtls_x509_crt_init(&chain);
	der = identity_cert_der(fx->id_b, &len);
	assert_int_equal(mbedtls_x509_crt_parse_der(&chain, der, len), 0);
	der = identity_cert_der(fx->id_a, &len);
	assert_int_equal(mbedtls_x509_crt_parse_der(&chain, der, len), 0);
	memset(&rc, 0, sizeof(rc));
	rc.chain = &chain;
	rc.key = identity_mbedtls_key(fx->id_b);
	run_raw_client(fx, &rc);
	mbedtls_x509_crt_free(&chain);
}

/*
 * A plain mbedTLS client (its own record layer) talking to our fast-record
 * server: a good record arrives intact; one with a flipped tag bit ends
 * the session with an error and delivers nothing.
 */
static void
raw_beep(struct fixture *fx, bool tamper)
{
	struct raw_client	 rc;
	mbedtls_x509_crt	 crt;
	const uint8_t		*der;
	size_t			 len;
	pthread_t		 th;

	mbedtls_x509_crt_init(&crt);
	der = identity_cert_der(fx->id_b, &len);
	assert_int_equal(mbedtls_x509_crt_parse_der(&crt, der, len), 0);
	memset(&rc, 0, sizeof(rc));
	rc.chain = &crt;
	rc.key = identity_mbedtls_key(fx->id_b);
	rc.beep = true;
	rc.tamper = tamper;
	if (!tamper)
		fx->srv.close_after_first = true;
	listen_any(fx);
	rc.port = fx->port;
	assert_int_equal(pthread_create(&th, NULL, raw_client_main, &rc), 0);
	run(fx);
	assert_int_equal(pthread_join(th, NULL), 0);
	mbedtls_x509_crt_free(&crt);
	assert_int_equal(rc.hs_ret, 0);
	assert_int_equal(fx->srv.hs_count, 1);
	assert_int_equal(fx->srv.hs_status, 0);
	assert_int_equal(fx->srv.fast, MBEDTLS_VERSION_NUMBER < 0x03000000);
	assert_int_equal(fx->srv.close_count, 1);
	if (tamper) {
		assert_int_equal(fx->srv.first_len, 0);
		assert_int_equal(fx->srv.close_status, SH_ETLS);
		/* The client was told why (bad_record_mac alert). */
		assert_int_equal(rc.read_ret,
		    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
	} else {
		assert_int_equal(fx->srv.first_len, 4);
		assert_memory_equal(fx->srv.first, "BEEP", 4);
		assert_int_equal(fx->srv.close_status, 0);
		assert_int_equal(rc.read_ret, MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	}
}

static void
test_tls_fast_record_from_mbedtls_client(void **state)
{
	raw_beep(*state, false);
}

static void
test_tls_fast_record_tampered(void **state)
{
	raw_beep(*state, true);
}

/* A bad server made with mbedTLS directly: it presents a chain. */
struct raw_server {
	mbedtls_net_context	 listen;
	mbedtls_x509_crt	*chain;
	void			*key;
	int			 hs_ret;
	int			 read_ret;
};

static void *
raw_server_main(void *arg)
{
	struct raw_server		*rs = arg;
	mbedtls_net_context		 net;
	mbedtls_ssl_config		 conf;
	mbedtls_ssl_context		 ssl;
	mbedtls_entropy_context		 entropy;
	mbedtls_ctr_drbg_context	 drbg;
	unsigned char			 buf[256];

	mbedtls_net_init(&net);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	rs->hs_ret = rs->read_ret = -1;
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
	    NULL, 0) != 0)
		goto out;
	if (mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		goto out;
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_read_timeout(&conf, 10000);
	if (mbedtls_ssl_conf_own_cert(&conf, rs->chain, rs->key) != 0)
		goto out;
	if (mbedtls_ssl_setup(&ssl, &conf) != 0)
		goto out;
	if (mbedtls_net_accept(&rs->listen, &net, NULL, 0, NULL) != 0)
		goto out;
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL,
	    mbedtls_net_recv_timeout);
	rs->hs_ret = mbedtls_ssl_handshake(&ssl);
	if (rs->hs_ret == 0)
		rs->read_ret = mbedtls_ssl_read(&ssl, buf, sizeof(buf));
out:
	mbedtls_net_free(&net);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return NULL;
}

static void
test_tls_client_refuses_server_chain(void **state)
{
	struct fixture		*fx = *state;
	struct raw_server	 rs;
	mbedtls_x509_crt	 chain;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	const uint8_t		*der;
	size_t			 der_len;
	pthread_t		 th;

	mbedtls_x509_crt_init(&chain);
	der = identity_cert_der(fx->id_a, &der_len);
	assert_int_equal(mbedtls_x509_crt_parse_der(&chain, der, der_len), 0);
	der = identity_cert_der(fx->id_b, &der_len);
	assert_int_equal(mbedtls_x509_crt_parse_der(&chain, der, der_len), 0);
	memset(&rs, 0, sizeof(rs));
	mbedtls_net_init(&rs.listen);
	rs.chain = &chain;
	rs.key = identity_mbedtls_key(fx->id_a);
	assert_int_equal(mbedtls_net_bind(&rs.listen, "127.0.0.1", "0",
	    MBEDTLS_NET_PROTO_TCP), 0);
	assert_int_equal(getsockname(rs.listen.fd, (struct sockaddr *)&sin,
	    &len), 0);
	assert_int_equal(pthread_create(&th, NULL, raw_server_main, &rs), 0);
	dial(fx, "127.0.0.1", ntohs(sin.sin_port));
	run(fx);
	assert_int_equal(pthread_join(th, NULL), 0);
	mbedtls_net_free(&rs.listen);
	mbedtls_x509_crt_free(&chain);
	assert_int_equal(fx->cli.hs_count, 1);
	assert_int_equal(fx->cli.hs_status, SH_ETLS);
	assert_int_equal(fx->cli.close_count, 1);
	assert_int_equal(fx->cli.close_status, SH_ETLS);
	assert_true(rs.hs_ret != 0 || rs.read_ret <= 0);
}

static void
raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char	 space[4096];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(space, sizeof(space));
}

static void
raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct fixture	*fx = s->data;

	(void)buf;
	if (nread < 0) {
		fx->raw_eof = true;
		uv_close((uv_handle_t *)s, noop_close);
	}
}

static void
raw_written(uv_write_t *req, int status)
{
	(void)req;
	(void)status;
}

static void
raw_connected(uv_connect_t *req, int status)
{
	static char	 garbage[] = "GET / HTTP/1.1\r\nHost: shoal\r\n\r\n"
	    "\x16\x03\x03\xff\xff this is not a ClientHello";
	struct fixture	*fx = req->data;
	uv_buf_t	 buf;

	assert_int_equal(status, 0);
	buf = uv_buf_init(garbage, sizeof(garbage) - 1);
	assert_int_equal(uv_write(&fx->raw_write, (uv_stream_t *)&fx->raw,
	    &buf, 1, raw_written), 0);
	assert_int_equal(uv_read_start((uv_stream_t *)&fx->raw, raw_alloc,
	    raw_read), 0);
}

static void
test_tls_garbage_instead_of_client_hello(void **state)
{
	struct fixture		*fx = *state;
	struct sockaddr_in	 sin;

	listen_any(fx);
	assert_int_equal(uv_tcp_init(&fx->loop, &fx->raw), 0);
	fx->raw.data = fx;
	fx->conn_req.data = fx;
	assert_int_equal(uv_ip4_addr("127.0.0.1", fx->port, &sin), 0);
	assert_int_equal(uv_tcp_connect(&fx->conn_req, &fx->raw,
	    (const struct sockaddr *)&sin, raw_connected), 0);
	run(fx);
	assert_int_equal(fx->srv.hs_count, 1);
	assert_int_equal(fx->srv.hs_status, SH_ETLS);
	assert_int_equal(fx->srv.close_count, 1);
	/* The server closed the connection on its own. */
	assert_true(fx->raw_eof);
}

static void
silent_connected(uv_connect_t *req, int status)
{
	struct fixture	*fx = req->data;

	assert_int_equal(status, 0);
	/* Say nothing; just notice when the server gives up. */
	assert_int_equal(uv_read_start((uv_stream_t *)&fx->raw, raw_alloc,
	    raw_read), 0);
}

static void
test_tls_handshake_timeout(void **state)
{
	struct fixture		*fx = *state;
	struct sockaddr_in	 sin;
	uint64_t		 start;

	tls_config_set_handshake_timeout(fx->cfg_a, 200);
	listen_any(fx);
	assert_int_equal(uv_tcp_init(&fx->loop, &fx->raw), 0);
	fx->raw.data = fx;
	fx->conn_req.data = fx;
	assert_int_equal(uv_ip4_addr("127.0.0.1", fx->port, &sin), 0);
	assert_int_equal(uv_tcp_connect(&fx->conn_req, &fx->raw,
	    (const struct sockaddr *)&sin, silent_connected), 0);
	start = util_now_ms();
	run(fx);
	assert_true(util_now_ms() - start >= 200);
	assert_int_equal(fx->srv.hs_count, 1);
	assert_int_equal(fx->srv.hs_status, UV_ETIMEDOUT);
	assert_int_equal(fx->srv.close_count, 1);
	assert_int_equal(fx->srv.close_status, UV_ETIMEDOUT);
	assert_true(fx->raw_eof);
}

static void
abort_on_handshake(struct tls *t, int status)
{
	struct side	*s = tls_data(t);
	uint8_t		*big;
	size_t		 queued;

	s->hs_count++;
	s->hs_status = status;
	/* The write cap is enforced before anything is encrypted. A TLS 1.3
	 * client's last flight (Finished) may still be queued here. */
	queued = tls_write_queue_size(t);
	big = xcalloc(1, TLS_WRITE_QUEUE_MAX + 1);
	assert_int_equal(tls_write(t, big, TLS_WRITE_QUEUE_MAX + 1), -ENOBUFS);
	free(big);
	assert_int_equal(tls_write_queue_size(t), queued);
	/* Abort with data still queued: nothing after this may run. */
	assert_int_equal(tls_write(t, "x", 1), 0);
	tls_close(t, -ECONNABORTED);
	assert_int_equal(tls_write(t, "y", 1), -ENOTCONN);
	tls_close(t, 0);
}

static void
test_tls_abort_close(void **state)
{
	struct fixture		*fx = *state;
	static const struct tls_callbacks abort_cbs = {
		.on_handshake = abort_on_handshake,
		.on_read = on_read,
		.on_close = on_close,
	};

	listen_any(fx);
	fx->cli_cbs = &abort_cbs;
	dial(fx, "127.0.0.1", fx->port);
	run(fx);
	assert_int_equal(fx->cli.hs_count, 1);
	assert_int_equal(fx->cli.hs_status, 0);
	assert_int_equal(fx->cli.close_count, 1);
	assert_int_equal(fx->cli.close_status, -ECONNABORTED);
	/* The server sees the connection end, whatever the kernel sent. */
	assert_int_equal(fx->srv.close_count, 1);
	assert_true(fx->srv.close_status < 0);
}

static void
test_tls_open_failure_frees_tcp(void **state)
{
	struct fixture			*fx = *state;
	static const struct tls_callbacks no_read = {
		.on_close = on_close,
	};
	struct tls			*t = (struct tls *)1;
	uv_tcp_t			*tcp;

	/* tls_open takes ownership even when it fails: ASan checks that the
	 * handle is closed and freed, and no callback runs. */
	tcp = xmalloc(sizeof(*tcp));
	assert_int_equal(uv_tcp_init(&fx->loop, tcp), 0);
	assert_int_equal(tls_open(fx->cfg_a, tcp, TLS_ROLE_SERVER, &no_read,
	    &fx->srv, &t), -EINVAL);
	assert_null(t);
	run(fx);
	assert_int_equal(fx->srv.close_count, 0);
}

static void
test_tls_id_allowed(void **state)
{
	struct device_id	ids[3];
	struct device_id	other;

	(void)state;
	memset(ids, 0, sizeof(ids));
	memset(&other, 0x55, sizeof(other));
	ids[0].raw[0] = 1;
	ids[1].raw[31] = 2;
	ids[2] = other;
	assert_true(tls_id_allowed(&other, ids, 3));
	assert_true(tls_id_allowed(&ids[0], ids, 3));
	assert_false(tls_id_allowed(&other, ids, 2));
	assert_false(tls_id_allowed(&other, ids, 0));
	other.raw[31] ^= 1;
	assert_false(tls_id_allowed(&other, ids, 3));
}

/*
 * Interop with a real Syncthing, driven by tests/interop/tls_handshake.sh:
 * our identity lives in SHOAL_INTEROP_HOME (made if empty), Syncthing's
 * device ID is SHOAL_INTEROP_ID. Skipped when those are not set.
 */
static const uint8_t hello_magic[4] = { 0x2e, 0xa7, 0xd9, 0x0b };

static bool
interop_setup(struct fixture *fx)
{
	const char		*home = getenv("SHOAL_INTEROP_HOME");
	struct identity		*id = NULL;
	int			 rc;

	if (home == NULL || getenv("SHOAL_INTEROP_ID") == NULL)
		return false;
	rc = identity_generate(home);
	assert_true(rc == 0 || rc == SH_EEXIST);
	assert_int_equal(identity_load(home, &id), 0);
	tls_config_free(fx->cfg_a);
	tls_config_free(fx->cfg_b);
	identity_free(fx->id_b);
	fx->id_b = id;
	assert_int_equal(tls_config_new(id, &fx->cfg_a), 0);
	assert_int_equal(tls_config_new(id, &fx->cfg_b), 0);
	return true;
}

/* Handshake done, Syncthing's Hello magic received, then close. */
static void
interop_finish(struct fixture *fx, struct side *s, const char *role)
{
	char	got[IDENTITY_ID_STR_SIZE];

	while (s->first_len < sizeof(hello_magic) && s->close_count == 0 &&
	    !fx->timed_out)
		(void)uv_run(&fx->loop, UV_RUN_ONCE);
	assert_false(fx->timed_out);
	assert_int_equal(s->hs_count, 1);
	assert_int_equal(s->hs_status, 0);
	identity_id_format(&s->peer_id, got);
	print_message("interop (%s): %s %s alpn=%s peer=%s\n", role,
	    s->version, s->suite, s->alpn, got);
	assert_string_equal(got, getenv("SHOAL_INTEROP_ID"));
	assert_string_equal(s->alpn, TLS_ALPN_BEP);
	/* Syncthing's Hello went through our libsodium record layer. */
	assert_int_equal(s->fast, MBEDTLS_VERSION_NUMBER < 0x03000000);
	assert_int_equal(s->first_len, sizeof(hello_magic));
	assert_memory_equal(s->first, hello_magic, sizeof(hello_magic));
	if (s->t != NULL)
		tls_close(s->t, 0);
	run(fx);
	assert_int_equal(s->close_count, 1);
}

/* We dial SHOAL_INTEROP_PORT on 127.0.0.1 (we are the TLS client). */
static void
test_tls_interop_we_dial(void **state)
{
	struct fixture	*fx = *state;
	const char	*port_s = getenv("SHOAL_INTEROP_PORT");
	uint64_t	 port;

	if (port_s == NULL || !interop_setup(fx)) {
		skip();
		return;
	}
	assert_int_equal(util_parse_u64(port_s, 1, 65535, &port), 0);
	dial(fx, "127.0.0.1", (int)port);
	interop_finish(fx, &fx->cli, "client");
}

/* Syncthing dials us on SHOAL_INTEROP_LISTEN (we are the TLS server). */
static void
test_tls_interop_it_dials(void **state)
{
	struct fixture	*fx = *state;
	const char	*port_s = getenv("SHOAL_INTEROP_LISTEN");
	uint64_t	 port;

	if (port_s == NULL || !interop_setup(fx)) {
		skip();
		return;
	}
	assert_int_equal(util_parse_u64(port_s, 1, 65535, &port), 0);
	listen_on(fx, (int)port);
	interop_finish(fx, &fx->srv, "server");
}

/* `test_tls --print-id HOME`: make an identity if needed, print its ID. */
static int
print_id(const char *home)
{
	struct identity	*id = NULL;
	char		 s[IDENTITY_ID_STR_SIZE];
	int		 rc;

	rc = identity_generate(home);
	if (rc != 0 && rc != SH_EEXIST)
		return 1;
	if (identity_load(home, &id) != 0)
		return 1;
	identity_id_format(identity_device_id(id), s);
	printf("%s\n", s);
	identity_free(id);
	return 0;
}

int
main(int argc, char *argv[])
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls_handshake_both_roles,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_close_from_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_transfer_8mib_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_transfer_fast_server_only, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_transfer_fast_client_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_tls12_server, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_tls12_client, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tls_transfer_read_dest,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_fast_record_from_mbedtls_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_fast_record_tampered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_refuses_client_without_certificate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_refuses_certificate_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_client_refuses_server_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_tls_garbage_instead_of_client_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_handshake_timeout,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_abort_close,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_open_failure_frees_tcp,
		    setup, teardown),
		cmocka_unit_test(test_tls_id_allowed),
		cmocka_unit_test_setup_teardown(test_tls_interop_we_dial,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_interop_it_dials,
		    setup, teardown),
	};

	if (argc == 3 && strcmp(argv[1], "--print-id") == 0)
		return print_id(argv[2]);
	if (getenv("SHOAL_TEST_DEBUG") != NULL) {
		if (log_set_level("debug") != 0 || log_set_trace("tls") != 0)
			return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * TLS over libuv streams with mbedTLS.
 *
 * mbedTLS never touches the socket. Its BIO callbacks read ciphertext from
 * an in-memory input buffer that uv_read_start() fills, and append the
 * records it produces to a pending write request that is handed to
 * uv_write() when the current step is done. After every read event the
 * handshake, then mbedtls_ssl_read(), are driven until mbedTLS wants more
 * input. Both directions are capped: the input buffer by TLS_IN_BUF_SIZE
 * (we stop reading the socket when it is full), the write queue by
 * TLS_WRITE_QUEUE_MAX (the caller watches tls_write_queue_size()).
 *
 * Peer authentication follows bep-brief §2.4: the TLS layer requests the
 * peer's certificate in both roles but does not chain-verify it; after the
 * handshake we insist on exactly one certificate and hand its SHA-256 (the
 * device ID) to the caller, who decides.
 *
 * Session states (tls_state_name()):
 *
 *   tls_open() --> HANDSHAKE --(handshake ok, one cert)--> OPEN
 *                      |                                    |
 *                      | failure, timeout, tls_close()      | tls_close(),
 *                      v                                    | peer close, error
 *                   CLOSING <-------------------------------+
 *                      | tcp handle and both timers closed
 *                      v
 *                   on_close(), free
 *
 *   HANDSHAKE -> OPEN      handshake_done()
 *   HANDSHAKE -> CLOSING   handshake_fail(), tls_close()
 *   OPEN -> CLOSING        start_close() from tls_close(), read_records(),
 *                          flush_out(), write_cb(), read_cb()
 *   CLOSING -> freed       finish(), from the last of tcp_closed() and
 *                          handle_closed(); on_close runs just before
 *                          the free.
 *
 * Every mbedTLS version gate of the TLS side lives in this file
 * (style.md §1); Debian 12 has 2.28, where TLS 1.3 is not available.
 *
 * FAST RECORDS. mbedTLS 2.28's AES-GCM and ChaCha20-Poly1305 run at about
 * 180-240 MB/s here, a sixth of what libsodium's AEADs do (1.3-1.9 GB/s),
 * which capped a transfer at less than a third of the disk's and the
 * network's speed. So with 2.28, mbedTLS does the whole handshake
 * (certificates, key exchange, Finished) and hands us the negotiated key
 * block through its key export callback; from then on the application
 * data records of TLS 1.2 (RFC 5246 §6.2.3.3 with RFC 5288 for AES-GCM,
 * RFC 7905 for ChaCha20-Poly1305) are sealed and opened here with
 * libsodium. This is the plain record layer and nothing else: same keys,
 * same nonces (GCM: 4-byte salt + the sequence number as explicit nonce,
 * as mbedTLS sends it; ChaCha: IV xor sequence number), same additional
 * data (sequence, type, version, length), so the peer cannot tell, and
 * any record that fails authentication ends the session. Only the two
 * suites libsodium implements are offered when fast records are on
 * (AES-256-GCM where libsodium has it in hardware, else ChaCha20 first);
 * both are in Syncthing's TLS 1.2 list (bep-brief §2.2). The switch
 * happens only when mbedTLS holds no unread or unsent record and both
 * sequence numbers are where TLS 1.2 puts them after a handshake (1),
 * otherwise the session stays on mbedTLS's own record layer. With 3.x the
 * key export API differs and TLS 1.3 keys are not exported this way:
 * mbedTLS keeps the records there (tls_fast_records()).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif
#include <sodium.h>
#include <uv.h>

#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/tls.h"
#include "shoal/util.h"
#include "tls_int.h"

#define COMP		"tls"

/* Peer authentication hashes the peer's certificate after the handshake. */
#if !defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
#error "tls.c needs mbedTLS built with MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"
#endif

/* TLS 1.3 needs mbedTLS 3.2+ built with it; 2.28's is a client prototype. */
#if MBEDTLS_VERSION_NUMBER >= 0x03020000 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define TLS_HAVE_TLS13	1
#else
#define TLS_HAVE_TLS13	0
#endif

/* One TLS record's worth of plaintext per mbedtls_ssl_read(). */
#define TLS_PLAIN_SIZE	16384
/* Per-record expansion we budget for when checking the write cap: header,
 * explicit nonce and tag for the AEAD suites, rounded up. */
#define TLS_RECORD_OVERHEAD	64
/* First allocation of a pending write request. */
#define TLS_OUT_MIN	4096

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS) && \
    defined(MBEDTLS_GCM_C) && defined(MBEDTLS_CHACHAPOLY_C)
#define TLS_HAVE_FAST	1
#else
#define TLS_HAVE_FAST	0
#endif

/* TLS 1.2 record layer (fast records). */
#define REC_HDR		5
#define REC_TAG		16
#define REC_EXPLICIT	8		/* GCM explicit nonce */
#define REC_MAX_PLAIN	16384		/* 2^14 */
#define REC_MAX_BODY	(16384 + 2048)	/* RFC 5246 §6.2.3 */
#define REC_ALERT	21
#define REC_APPDATA	23

enum rec_aead {
	REC_MBEDTLS = 0,	/* mbedTLS protects the records */
	REC_AES256GCM,
	REC_CHACHA20
};

/* One direction of a fast-record session. */
struct rec_dir {
	crypto_aead_aes256gcm_state aes;	/* expanded key (GCM) */
	uint8_t		 key[32];		/* ChaCha20 key */
	uint8_t		 iv[12];		/* salt (4) or IV (12) */
	uint64_t	 seq;
};

/* Close modes of start_close(). */
enum close_mode {
	CLOSE_ABORT,	/* uv_close at once; queued writes are cancelled */
	CLOSE_FLUSH,	/* flush what mbedTLS queued (an alert), then FIN */
	CLOSE_NOTIFY	/* send close_notify, flush, then FIN */
};

struct tls_config {
	struct identity			*id;		/* borrowed */
	uint64_t			 handshake_timeout_ms;
	bool				 fast;		/* fast records */
	mbedtls_ctr_drbg_context	 drbg;
	mbedtls_ssl_config		 client;
	mbedtls_ssl_config		 server;
};

/* One uv_write: the request owns the bytes that follow it. */
struct write_req {
	uv_write_t	 req;
	struct tls	*t;
	size_t		 len;
	size_t		 cap;
	uint8_t		 data[];
};

struct tls {
	const struct tls_config	*cfg;		/* borrowed */
	uv_tcp_t		*tcp;		/* owned, see tcp_closed() */
	uv_timer_t		 timer;		/* handshake, then close */
	uv_timer_t		 kick;		/* deferred process() */
	uv_shutdown_t		 shutdown_req;
	mbedtls_ssl_context	 ssl;
	enum tls_role		 role;
	enum tls_state		 state;
	struct tls_callbacks	 cbs;
	void			*data;		/* the caller's */
	int			 status;	/* see tls_status() */

	/* Close bookkeeping (style.md §5.4). */
	bool			 closing;	/* state == CLOSING */
	bool			 handles_closing; /* uv_close() done */
	bool			 timer_init;
	bool			 kick_init;
	int			 handles_open;	/* close callbacks still due */
	bool			 shutdown_done;

	/* Bytes on the wire (ciphertext), for status. */
	uint64_t		 wire_in;
	uint64_t		 wire_out;

	/* Input side. */
	bool			 reading;	/* uv_read_start() active */
	bool			 paused;	/* tls_pause_read() */
	bool			 eof;		/* the peer sent FIN */
	size_t			 in_off;	/* consumed by mbedTLS */
	size_t			 in_len;	/* filled by the socket */
	uint8_t			 in[TLS_IN_BUF_SIZE];
	uint8_t			 plain[TLS_PLAIN_SIZE];

	/* Output side. */
	struct write_req	*pending;	/* records not yet in uv */
	size_t			 write_queue;	/* bytes in uv_write reqs */

	/* Fast records: keys from the export callback, then the state. */
	enum rec_aead		 rec;
	bool			 keys_ok;	/* the callback saw usable keys */
	size_t			 key_ivlen;
	struct rec_dir		 tx, rx;

	bool			 peer_ok;	/* handshake succeeded */
	struct device_id	 peer_id;
	char			 addr[64];	/* "ip:port" for logs */
};

static const char *alpn_list[] = { TLS_ALPN_BEP, NULL };

/*
 * Only the ECDHE-ECDSA AEAD suites from Syncthing's TLS 1.2 list (bep-brief
 * §2.2): our key is ECDSA, and these were each verified against Syncthing
 * 1.19.2 (§2.2a). AES-128-GCM first, which is what Syncthing picks anyway.
 */
#if TLS_HAVE_FAST
/*
 * With fast records: only the suites libsodium seals (see the top of the
 * file), the hardware AES first when there is one. AES-128-GCM is left
 * out on purpose: Go servers pick it over both whenever it is offered.
 */
static const int tls_suites_fast_aes[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	0
};
static const int tls_suites_fast_chacha[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	0
};
#endif

static const int tls_suites[] = {
#if TLS_HAVE_TLS13
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
#endif
#if defined(MBEDTLS_GCM_C)
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
#endif
#if defined(MBEDTLS_CHACHAPOLY_C)
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
#endif
	0
};

/*
 * mbedTLS's default order puts P-521 first and Go follows the client's
 * order; this list gives X25519. secp384r1 must stay: mbedTLS checks the
 * peer certificate's curve against this list, and Syncthing's (and our)
 * certificates are P-384 (bep-brief §2.2a).
 */
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
static const uint16_t tls_groups[] = {
	MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_NONE
};
#else
static const mbedtls_ecp_group_id tls_curves[] = {
	MBEDTLS_ECP_DP_CURVE25519,
	MBEDTLS_ECP_DP_SECP256R1,
	MBEDTLS_ECP_DP_SECP384R1,
	MBEDTLS_ECP_DP_NONE
};
#endif

static void	process(struct tls *t);
static void	start_close(struct tls *t, int status, enum close_mode mode);
static void	abort_session(struct tls *t, int status);
static void	update_reading(struct tls *t);

static void
log_mbedtls(enum log_level level, const char *who, const char *what, int ret)
{
	char	msg[160];

	if (!log_enabled(level, COMP))
		return;
	mbedtls_strerror(ret, msg, sizeof(msg));
	log_write(level, COMP, "%s%s%s: %s (-0x%04x)", who != NULL ? who : "",
	    who != NULL ? ": " : "", what, msg, (unsigned int)-ret);
}

/* Configuration */

/* The DRBG draws from libsodium, the program's one randomness source. */
static int
rng_entropy(void *ctx, unsigned char *out, size_t len)
{
	(void)ctx;
	randombytes_buf(out, len);
	return 0;
}

static void
conf_versions(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	/* With 3.x TLS 1.3 is what Syncthing speaks by default (§2.1). */
	mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_tls13_key_exchange_modes(conf,
	    MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL);
#else
	mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
#endif
#else
	/* 2.28's TLS 1.3 is a client-only prototype; Syncthing accepts 1.2
	 * only with insecureAllowOldTLSVersions (bep-brief §2.2). */
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

static void
conf_curves(mbedtls_ssl_config *conf)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
	mbedtls_ssl_conf_groups(conf, tls_groups);
#else
	mbedtls_ssl_conf_curves(conf, tls_curves);
#endif
}

#if TLS_HAVE_FAST
static _Thread_local struct tls *keys_for;	/* session in a handshake step */

/*
 * mbedTLS's key export callback, called inside mbedtls_ssl_handshake()
 * when the keys are derived: keep the key block (RFC 5246 §6.3: MAC keys,
 * client key, server key, client IV, server IV) for the session being
 * stepped. The AEAD suites have no MAC keys.
 */
static int
export_keys_cb(void *p, const unsigned char *ms, const unsigned char *kb,
    size_t maclen, size_t keylen, size_t ivlen,
    const unsigned char client_random[32],
    const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
	struct tls	*t = keys_for;
	const unsigned char *ck, *sk, *civ, *siv;

	(void)p;
	(void)ms;
	(void)client_random;
	(void)server_random;
	(void)prf;
	if (t == NULL)
		return 0;
	t->keys_ok = false;
	if (maclen != 0 || keylen != 32 || (ivlen != 4 && ivlen != 12))
		return 0;
	ck = kb;
	sk = kb + keylen;
	civ = kb + 2 * keylen;
	siv = civ + ivlen;
	memcpy(t->tx.key, t->role == TLS_ROLE_CLIENT ? ck : sk, 32);
	memcpy(t->rx.key, t->role == TLS_ROLE_CLIENT ? sk : ck, 32);
	memcpy(t->tx.iv, t->role == TLS_ROLE_CLIENT ? civ : siv, ivlen);
	memcpy(t->rx.iv, t->role == TLS_ROLE_CLIENT ? siv : civ, ivlen);
	t->key_ivlen = ivlen;
	t->keys_ok = true;
	return 0;
}
#endif

static void
conf_suites(struct tls_config *cfg, mbedtls_ssl_config *conf)
{
#if TLS_HAVE_FAST
	if (cfg->fast) {
		mbedtls_ssl_conf_ciphersuites(conf,
		    crypto_aead_aes256gcm_is_available() ?
		    tls_suites_fast_aes : tls_suites_fast_chacha);
		mbedtls_ssl_conf_export_keys_ext_cb(conf, export_keys_cb, NULL);
		return;
	}
#else
	(void)cfg;
#endif
	mbedtls_ssl_conf_ciphersuites(conf, tls_suites);
}

static int
conf_setup(struct tls_config *cfg, mbedtls_ssl_config *conf, int endpoint)
{
	const char	*role;
	int		 ret;
	int		 rc = SH_ETLS;

	role = endpoint == MBEDTLS_SSL_IS_CLIENT ? "client" : "server";
	ret = mbedtls_ssl_config_defaults(conf, endpoint,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_ERROR, role, "configuration defaults",
		    ret);
		goto out;
	}
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	conf_versions(conf);
	conf_suites(cfg, conf);
	conf_curves(conf);
	/*
	 * OPTIONAL rather than REQUIRED: there is no CA to verify against
	 * (REQUIRED fails with "No CA Chain is set"), and like Go's
	 * RequestClientCert/InsecureSkipVerify it checks no key usages.
	 * The failed chain check only sets flags in verify_result, which
	 * we ignore. The price is that mbedTLS completes a handshake in
	 * which the peer sent no certificate, so handshake_done() refuses
	 * that case itself (bep-brief §2.2a, §2.4).
	 */
	mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	ret = mbedtls_ssl_conf_own_cert(conf,
	    identity_mbedtls_cert(cfg->id), identity_mbedtls_key(cfg->id));
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_ERROR, role, "own certificate", ret);
		goto out;
	}
	ret = mbedtls_ssl_conf_alpn_protocols(conf, alpn_list);
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_ERROR, role, "ALPN", ret);
		goto out;
	}
	if (endpoint == MBEDTLS_SSL_IS_CLIENT) {
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
		/* Syncthing disables resumption (bep-brief §2.1). */
		mbedtls_ssl_conf_session_tickets(conf,
		    MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
	} else {
		/*
		 * No CA names in the CertificateRequest: with a CA list Go
		 * sends no certificate unless it is issued by one of them
		 * (bep-brief §2.2a). The server sets no ticket callback, so
		 * it issues no session tickets.
		 */
		mbedtls_ssl_conf_cert_req_ca_list(conf,
		    MBEDTLS_SSL_CERT_REQ_CA_LIST_DISABLED);
	}
	rc = 0;
out:
	return rc;
}

int
tls_config_new(struct identity *id, struct tls_config **out)
{
	static const unsigned char pers[] = "shoal tls";
	struct tls_config	*cfg;
	int			 ret;
	int			 rc;

	*out = NULL;
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->id = id;
	cfg->handshake_timeout_ms = TLS_HANDSHAKE_TIMEOUT_MS;
	cfg->fast = TLS_HAVE_FAST;
	mbedtls_ctr_drbg_init(&cfg->drbg);
	mbedtls_ssl_config_init(&cfg->client);
	mbedtls_ssl_config_init(&cfg->server);
	if (sodium_init() < 0) {
		LOG_ERROR(COMP, "libsodium initialisation failed");
		rc = SH_ECRYPTO;
		goto out;
	}
	/* 3.x runs TLS 1.3 and much of 1.2 through PSA. */
	ret = tls_compat_crypto_init();
	if (ret != 0) {
		LOG_ERROR(COMP, "PSA crypto initialisation failed (%d)", ret);
		rc = SH_ECRYPTO;
		goto out;
	}
	ret = mbedtls_ctr_drbg_seed(&cfg->drbg, rng_entropy, NULL, pers,
	    sizeof(pers) - 1);
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_ERROR, NULL,
		    "seeding the random generator", ret);
		rc = SH_ECRYPTO;
		goto out;
	}
	rc = conf_setup(cfg, &cfg->client, MBEDTLS_SSL_IS_CLIENT);
	if (rc != 0)
		goto out;
	rc = conf_setup(cfg, &cfg->server, MBEDTLS_SSL_IS_SERVER);
	if (rc != 0)
		goto out;
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	tls_config_free(cfg);
	return rc;
}

void
tls_config_set_handshake_timeout(struct tls_config *cfg, uint64_t ms)
{
	cfg->handshake_timeout_ms = ms;
}

void
tls_config_set_fast_records(struct tls_config *cfg, bool on)
{
	cfg->fast = on && TLS_HAVE_FAST;
	conf_suites(cfg, &cfg->client);
	conf_suites(cfg, &cfg->server);
#if TLS_HAVE_FAST
	if (!cfg->fast) {
		mbedtls_ssl_conf_export_keys_ext_cb(&cfg->client, NULL, NULL);
		mbedtls_ssl_conf_export_keys_ext_cb(&cfg->server, NULL, NULL);
	}
#endif
}

void
tls_config_set_max_tls12(struct tls_config *cfg)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	mbedtls_ssl_conf_max_tls_version(&cfg->client,
	    MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&cfg->server,
	    MBEDTLS_SSL_VERSION_TLS1_2);
#else
	/* conf_versions() allows nothing else. */
	(void)cfg;
#endif
}

void
tls_config_free(struct tls_config *cfg)
{
	if (cfg == NULL)
		return;
	mbedtls_ssl_config_free(&cfg->client);
	mbedtls_ssl_config_free(&cfg->server);
	/* Zeroises the DRBG state. */
	mbedtls_ctr_drbg_free(&cfg->drbg);
	free(cfg);
}

/* BIO: mbedTLS <-> our buffers */

/* Room for len more bytes at the end of the pending write request. */
static uint8_t *
out_reserve(struct tls *t, size_t len)
{
	struct write_req	*w = t->pending;
	size_t			 cap;

	if (w == NULL) {
		cap = len > TLS_OUT_MIN ? len : TLS_OUT_MIN;
		/* A block's records come and go at network speed: reuse. */
		w = util_bigbuf_alloc(sizeof(*w) + cap);
		w->t = t;
		w->len = 0;
		w->cap = cap;
		t->pending = w;
	} else if (w->cap - w->len < len) {
		cap = w->cap * 2;
		if (cap - w->len < len)
			cap = w->len + len;
		w = xrealloc(w, sizeof(*w) + cap);
		w->cap = cap;
		t->pending = w;
	}
	return w->data + w->len;
}

static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls	*t = ctx;

	memcpy(out_reserve(t, len), buf, len);
	t->pending->len += len;
	/* mbedtls_ssl_send_t returns an int; records are at most ~17 KiB. */
	return (int)len;
}

static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls	*t = ctx;
	size_t		 avail = t->in_len - t->in_off;

	if (avail == 0)
		return t->eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;
	if (len > avail)
		len = avail;
	memcpy(buf, t->in + t->in_off, len);
	t->in_off += len;
	return (int)len;
}

/* Fast records (see the top of the file) */

/* Nonce and additional data of record `seq` (RFC 5288 §3, RFC 7905 §2). */
static void
rec_nonce(const struct tls *t, const struct rec_dir *d, uint64_t seq,
    const uint8_t *explicit, uint8_t nonce[12])
{
	uint8_t	s8[8];
	int	i;

	if (t->rec == REC_AES256GCM) {
		memcpy(nonce, d->iv, 4);
		memcpy(nonce + 4, explicit, REC_EXPLICIT);
		return;
	}
	util_put_be64(s8, seq);
	memcpy(nonce, d->iv, 12);
	for (i = 0; i < 8; i++)
		nonce[4 + i] ^= s8[i];
}

static void
rec_aad(uint64_t seq, uint8_t type, size_t plen, uint8_t aad[13])
{
	util_put_be64(aad, seq);
	aad[8] = type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (uint8_t)(plen >> 8);
	aad[12] = (uint8_t)plen;
}

/* Append one sealed record of at most REC_MAX_PLAIN bytes to the pending
 * write. Returns 0 or SH_ETLS (sequence exhausted: never in practice). */
static int
rec_seal(struct tls *t, uint8_t type, const uint8_t *m, size_t len)
{
	struct rec_dir		*d = &t->tx;
	size_t			 expl = t->rec == REC_AES256GCM ? REC_EXPLICIT : 0;
	size_t			 body = expl + len + REC_TAG;
	unsigned long long	 clen;
	uint8_t			*p, nonce[12], aad[13];
	int			 ret;

	if (d->seq == UINT64_MAX)
		return SH_ETLS;
	p = out_reserve(t, REC_HDR + body);
	p[0] = type;
	p[1] = 3;
	p[2] = 3;
	p[3] = (uint8_t)(body >> 8);
	p[4] = (uint8_t)body;
	/* The explicit nonce is the sequence number, as mbedTLS sends it:
	 * unique per key without any state of our own. */
	util_put_be64(p + REC_HDR, d->seq);
	rec_nonce(t, d, d->seq, p + REC_HDR, nonce);
	rec_aad(d->seq, type, len, aad);
	if (t->rec == REC_AES256GCM)
		ret = crypto_aead_aes256gcm_encrypt_afternm(p + REC_HDR + expl,
		    &clen, m, len, aad, sizeof(aad), NULL, nonce, &d->aes);
	else
		ret = crypto_aead_chacha20poly1305_ietf_encrypt(p + REC_HDR +
		    expl, &clen, m, len, aad, sizeof(aad), NULL, nonce, d->key);
	if (ret != 0 || clen != len + REC_TAG)
		return SH_ETLS;
	t->pending->len += REC_HDR + body;
	d->seq++;
	return 0;
}

static void
rec_alert(struct tls *t, uint8_t level, uint8_t desc)
{
	uint8_t	a[2] = { level, desc };

	if (rec_seal(t, REC_ALERT, a, sizeof(a)) != 0)
		LOG_DEBUG(COMP, "%s: cannot send alert %u", t->addr, desc);
}

/*
 * Open the next complete record in the input buffer (*type, *plen) into
 * t->plain, or for application data where read_dest says (*out). Returns
 * 1, 0 if no whole record is buffered yet, or SH_ETLS for a bad one (a
 * fatal alert is queued).
 */
static int
rec_open(struct tls *t, uint8_t *type, uint8_t **out, size_t *plen_out)
{
	struct rec_dir		*d = &t->rx;
	const uint8_t		*p = t->in + t->in_off;
	size_t			 avail = t->in_len - t->in_off;
	size_t			 expl = t->rec == REC_AES256GCM ? REC_EXPLICIT : 0;
	size_t			 body, plen;
	unsigned long long	 mlen;
	uint8_t			 nonce[12], aad[13], *dst = NULL;
	int			 ret;

	if (avail < REC_HDR)
		return 0;
	body = (size_t)p[3] << 8 | p[4];
	if (p[1] != 3 || p[2] != 3 || body < expl + REC_TAG ||
	    body > REC_MAX_BODY || body - expl - REC_TAG > REC_MAX_PLAIN) {
		LOG_WARN(COMP, "%s: bad TLS record (type %u, version %u.%u, "
		    "length %zu)", t->addr, p[0], p[1], p[2], body);
		rec_alert(t, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		    body > REC_MAX_BODY ? MBEDTLS_SSL_ALERT_MSG_RECORD_OVERFLOW :
		    MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR);
		return SH_ETLS;
	}
	if (avail < REC_HDR + body)
		return 0;
	plen = body - expl - REC_TAG;
	*type = p[0];
	/* Straight into the consumer's buffer saves a copy of every byte. */
	if (p[0] == REC_APPDATA && plen > 0 && t->cbs.read_dest != NULL)
		dst = t->cbs.read_dest(t, plen);
	if (dst == NULL)
		dst = t->plain;
	rec_nonce(t, d, d->seq, p + REC_HDR, nonce);
	rec_aad(d->seq, p[0], plen, aad);
	if (t->rec == REC_AES256GCM)
		ret = crypto_aead_aes256gcm_decrypt_afternm(dst, &mlen,
		    NULL, p + REC_HDR + expl, plen + REC_TAG, aad, sizeof(aad),
		    nonce, &d->aes);
	else
		ret = crypto_aead_chacha20poly1305_ietf_decrypt(dst,
		    &mlen, NULL, p + REC_HDR + expl, plen + REC_TAG, aad,
		    sizeof(aad), nonce, d->key);
	if (ret != 0 || mlen != plen || d->seq == UINT64_MAX) {
		LOG_WARN(COMP, "%s: TLS record failed authentication",
		    t->addr);
		rec_alert(t, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		    MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC);
		return SH_ETLS;
	}
	t->in_off += REC_HDR + body;
	d->seq++;
	*out = dst;
	*plen_out = plen;
	return 1;
}

/* Read counterpart of read_records() for fast records. */
static void
rec_read(struct tls *t)
{
	size_t	 n = 0;
	uint8_t	 type = 0, *data = NULL;
	int	 rc;

	while (t->state == TLS_STATE_OPEN && !t->paused) {
		rc = rec_open(t, &type, &data, &n);
		if (rc == 0 && !t->eof)
			break;
		if (rc == 0) {
			LOG_DEBUG(COMP, "%s: peer closed without close_notify",
			    t->addr);
			start_close(t, UV_EOF, CLOSE_FLUSH);
			return;
		}
		if (rc < 0) {
			start_close(t, SH_ETLS, CLOSE_FLUSH);
			return;
		}
		if (type == REC_APPDATA) {
			if (n == 0)
				continue;
			t->cbs.on_read(t, data, n);
			if (t->closing)
				return;
			continue;
		}
		if (type == REC_ALERT && n == 2 && t->plain[1] ==
		    MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY) {
			LOG_DEBUG(COMP, "%s: peer sent close_notify", t->addr);
			start_close(t, UV_EOF, CLOSE_NOTIFY);
			return;
		}
		if (type == REC_ALERT && n == 2) {
			LOG_WARN(COMP, "%s: peer sent TLS alert %u (level %u)",
			    t->addr, t->plain[1], t->plain[0]);
			start_close(t, SH_ETLS, CLOSE_FLUSH);
			return;
		}
		/* No renegotiation, no other record types after the
		 * handshake (mbedTLS is configured the same way). */
		LOG_WARN(COMP, "%s: unexpected TLS record type %u after the "
		    "handshake", t->addr, type);
		rec_alert(t, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		    MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE);
		start_close(t, SH_ETLS, CLOSE_FLUSH);
		return;
	}
}

/*
 * After a successful handshake: take the records over from mbedTLS if the
 * suite is one we seal, the keys were exported, and mbedTLS holds no
 * record of its own (see the top of the file).
 */
static void
rec_enable(struct tls *t)
{
#if TLS_HAVE_FAST
	const char	*name;
	enum rec_aead	 aead;
	uint64_t	 out_seq = 0, in_seq = 0;
	int		 id, i;

	if (!t->cfg->fast || !t->keys_ok)
		return;
	name = mbedtls_ssl_get_ciphersuite(&t->ssl);
	id = name != NULL ? mbedtls_ssl_get_ciphersuite_id(name) : 0;
	if (id == MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 &&
	    t->key_ivlen == 4 && crypto_aead_aes256gcm_is_available())
		aead = REC_AES256GCM;
	else if (id == MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 &&
	    t->key_ivlen == 12)
		aead = REC_CHACHA20;
	else
		goto keep;
	if (mbedtls_ssl_check_pending(&t->ssl) != 0 || t->ssl.out_left != 0 ||
	    t->ssl.in_ctr == NULL)
		goto keep;
	for (i = 0; i < 8; i++) {
		out_seq = out_seq << 8 | t->ssl.cur_out_ctr[i];
		in_seq = in_seq << 8 | t->ssl.in_ctr[i];
	}
	if (out_seq != 1 || in_seq != 1)
		goto keep;
	if (aead == REC_AES256GCM &&
	    (crypto_aead_aes256gcm_beforenm(&t->tx.aes, t->tx.key) != 0 ||
	    crypto_aead_aes256gcm_beforenm(&t->rx.aes, t->rx.key) != 0))
		goto keep;
	t->tx.seq = out_seq;
	t->rx.seq = in_seq;
	t->rec = aead;
	return;
keep:
	LOG_DEBUG(COMP, "%s: records stay with mbedTLS (%s)", t->addr,
	    name != NULL ? name : "?");
#else
	(void)t;
#endif
}

/* Output */

static void
write_cb(uv_write_t *req, int status)
{
	struct write_req	*w = req->data;
	struct tls		*t = w->t;

	t->write_queue -= w->len;
	util_bigbuf_free(w);
	if (status < 0) {
		if (status != UV_ECANCELED && !t->closing) {
			LOG_INFO(COMP, "%s: write failed: %s", t->addr,
			    uv_strerror(status));
			start_close(t, status, CLOSE_ABORT);
		}
		return;
	}
	if (t->write_queue == 0 && !t->closing && t->cbs.on_drain != NULL)
		t->cbs.on_drain(t);
}

/*
 * Hand the records mbedTLS produced to uv_write. Returns 0, or the uv error
 * after closing the session.
 */
static int
flush_out(struct tls *t)
{
	struct write_req	*w = t->pending;
	uv_buf_t		 buf;
	int			 rc;

	if (w == NULL)
		return 0;
	t->pending = NULL;
	if (t->handles_closing || w->len == 0) {
		util_bigbuf_free(w);
		return t->handles_closing ? UV_ECANCELED : 0;
	}
	w->req.data = w;
	buf = uv_buf_init((char *)w->data, (unsigned int)w->len);
	rc = uv_write(&w->req, (uv_stream_t *)t->tcp, &buf, 1, write_cb);
	if (rc != 0) {
		/* The callback will not run: the request is still ours. */
		util_bigbuf_free(w);
		LOG_INFO(COMP, "%s: write failed: %s", t->addr,
		    uv_strerror(rc));
		abort_session(t, rc);
		return rc;
	}
	t->write_queue += w->len;
	t->wire_out += w->len;
	return 0;
}

/* Closing */

static void
finish(struct tls *t)
{
	if (t->cbs.on_close != NULL)
		t->cbs.on_close(t);
	util_bigbuf_free(t->pending);
	/* Zeroises the session keys. */
	mbedtls_ssl_free(&t->ssl);
	sodium_memzero(&t->tx, sizeof(t->tx));
	sodium_memzero(&t->rx, sizeof(t->rx));
	free(t);
}

static void
handle_closed(uv_handle_t *h)
{
	struct tls	*t = h->data;

	if (--t->handles_open == 0)
		finish(t);
}

static void
tcp_closed(uv_handle_t *h)
{
	struct tls	*t = h->data;

	free(h);
	t->tcp = NULL;
	if (--t->handles_open == 0)
		finish(t);
}

static void
close_handles(struct tls *t)
{
	if (t->handles_closing)
		return;
	t->handles_closing = true;
	t->reading = false;
	util_bigbuf_free(t->pending);
	t->pending = NULL;
	/* Pending writes and the shutdown complete with UV_ECANCELED before
	 * tcp_closed() runs, while `t` is still alive. */
	uv_close((uv_handle_t *)t->tcp, tcp_closed);
	if (t->timer_init)
		uv_close((uv_handle_t *)&t->timer, handle_closed);
	if (t->kick_init)
		uv_close((uv_handle_t *)&t->kick, handle_closed);
}

static void
shutdown_cb(uv_shutdown_t *req, int status)
{
	struct tls	*t = req->data;

	t->shutdown_done = true;
	/* Our FIN is out; wait for the peer's, unless it came already. */
	if (status < 0 || t->eof)
		close_handles(t);
}

static void
close_timeout_cb(uv_timer_t *timer)
{
	struct tls	*t = timer->data;

	LOG_DEBUG(COMP, "%s: close timed out, closing the socket", t->addr);
	close_handles(t);
}

/*
 * Enter CLOSING (once). From here on no callback but on_close runs. The
 * graceful modes send what is queued, then our FIN, then wait for the
 * peer's FIN so that the kernel does not answer late data with a RST that
 * could destroy our last records in flight; TLS_CLOSE_TIMEOUT_MS bounds it.
 */
static void
start_close(struct tls *t, int status, enum close_mode mode)
{
	int	ret;
	int	rc;

	if (t->closing)
		return;
	t->closing = true;
	t->state = TLS_STATE_CLOSING;
	t->status = status;
	if (t->timer_init)
		(void)uv_timer_stop(&t->timer);
	if (t->kick_init)
		(void)uv_timer_stop(&t->kick);
	if (mode == CLOSE_ABORT || !t->timer_init)
		goto abort;
	if (mode == CLOSE_NOTIFY && t->rec != REC_MBEDTLS) {
		rec_alert(t, MBEDTLS_SSL_ALERT_LEVEL_WARNING,
		    MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY);
	} else if (mode == CLOSE_NOTIFY) {
		/* Best effort: our BIO accepts everything, so this cannot
		 * block. */
		ret = mbedtls_ssl_close_notify(&t->ssl);
		if (ret != 0)
			log_mbedtls(LOG_LEVEL_DEBUG, t->addr, "close_notify",
			    ret);
	}
	if (flush_out(t) != 0)
		return;
	t->shutdown_req.data = t;
	rc = uv_shutdown(&t->shutdown_req, (uv_stream_t *)t->tcp, shutdown_cb);
	if (rc != 0) {
		LOG_DEBUG(COMP, "%s: shutdown: %s", t->addr, uv_strerror(rc));
		goto abort;
	}
	rc = uv_timer_start(&t->timer, close_timeout_cb, TLS_CLOSE_TIMEOUT_MS,
	    0);
	if (rc != 0)
		goto abort;
	/* Read on (and discard) until the peer's FIN. */
	t->in_off = t->in_len = 0;
	update_reading(t);
	return;
abort:
	close_handles(t);
}

/* Close the socket now, whether or not a graceful close is under way. */
static void
abort_session(struct tls *t, int status)
{
	if (t->closing)
		close_handles(t);
	else
		start_close(t, status, CLOSE_ABORT);
}

void
tls_close(struct tls *t, int reason)
{
	if (t == NULL || t->closing)
		return;
	if (reason == 0 && t->peer_ok)
		start_close(t, 0, CLOSE_NOTIFY);
	else if (reason == 0)
		start_close(t, 0, CLOSE_FLUSH);
	else
		start_close(t, reason, CLOSE_ABORT);
}

/* Input */

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tls	*t = h->data;

	(void)suggested;
	if (t->in_off > 0) {
		memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
		t->in_len -= t->in_off;
		t->in_off = 0;
	}
	buf->base = (char *)t->in + t->in_len;
	buf->len = sizeof(t->in) - t->in_len;
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tls	*t = s->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread == UV_ENOBUFS) {
		/* alloc_cb found the buffer full; process() restarts us. */
		(void)uv_read_stop(s);
		t->reading = false;
		return;
	}
	if (nread < 0) {
		/* libuv stops reading after EOF or an error. */
		t->reading = false;
		if (nread != UV_EOF) {
			if (!t->closing)
				LOG_INFO(COMP, "%s: read failed: %s", t->addr,
				    uv_strerror((int)nread));
			abort_session(t, (int)nread);
			return;
		}
		t->eof = true;
		if (t->closing) {
			if (t->shutdown_done)
				close_handles(t);
			return;
		}
		process(t);
		return;
	}
	t->wire_in += (uint64_t)nread;
	if (t->closing) {
		/* Lingering close: drop whatever still arrives. */
		t->in_off = t->in_len = 0;
		return;
	}
	t->in_len += (size_t)nread;
	process(t);
}

/*
 * Keep the socket read exactly while the input buffer has room. While
 * closing, read_cb discards what arrives, so we read until the peer's FIN.
 */
static void
update_reading(struct tls *t)
{
	bool	want;
	int	rc;

	if (t->handles_closing || t->eof)
		return;
	if (t->in_off == t->in_len)
		t->in_off = t->in_len = 0;
	want = t->closing || t->in_len - t->in_off < sizeof(t->in);
	if (want == t->reading)
		return;
	if (!want) {
		(void)uv_read_stop((uv_stream_t *)t->tcp);
		t->reading = false;
		return;
	}
	rc = uv_read_start((uv_stream_t *)t->tcp, alloc_cb, read_cb);
	if (rc != 0) {
		LOG_INFO(COMP, "%s: read failed: %s", t->addr, uv_strerror(rc));
		abort_session(t, rc);
		return;
	}
	t->reading = true;
}

/* Handshake */

static void
handshake_fail(struct tls *t, int status)
{
	start_close(t, status, CLOSE_FLUSH);
	if (t->cbs.on_handshake != NULL)
		t->cbs.on_handshake(t, status);
}

/* Refuse the peer after a completed handshake, with a fatal alert. */
static void
handshake_refuse(struct tls *t, unsigned char alert)
{
	int	ret;

	ret = mbedtls_ssl_send_alert_message(&t->ssl,
	    MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
	if (ret != 0)
		log_mbedtls(LOG_LEVEL_DEBUG, t->addr, "sending alert", ret);
	handshake_fail(t, SH_ETLS);
}

/*
 * The handshake finished; authenticate by certificate (bep-brief §2.4 step
 * 1, §2.3 rule 1). Returns 0 if the session is open and usable.
 */
static int
handshake_done(struct tls *t)
{
	const mbedtls_x509_crt	*peer;
	const char		*alpn;
	char			 sid[IDENTITY_SHORT_STR_SIZE];

	peer = mbedtls_ssl_get_peer_cert(&t->ssl);
	if (peer == NULL) {
		LOG_WARN(COMP, "%s: handshake failed: the peer presented no "
		    "certificate", t->addr);
		handshake_refuse(t, MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
		return -1;
	}
	if (peer->next != NULL) {
		LOG_WARN(COMP, "%s: handshake failed: the peer presented a "
		    "certificate chain, want exactly one certificate", t->addr);
		handshake_refuse(t, MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
		return -1;
	}
	identity_id_from_der(peer->raw.p, peer->raw.len, &t->peer_id);
	if (identity_id_is_zero(&t->peer_id)) {
		/* Hashing failed (logged); never admit the zero ID. */
		handshake_refuse(t, MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR);
		return -1;
	}
	t->peer_ok = true;
	t->state = TLS_STATE_OPEN;
	(void)uv_timer_stop(&t->timer);
	rec_enable(t);
	alpn = mbedtls_ssl_get_alpn_protocol(&t->ssl);
	identity_short_format(identity_short_id(&t->peer_id), sid);
	/* Syncthing only logs a missing ALPN, and so do we (§2.4). */
	if (alpn == NULL || strcmp(alpn, TLS_ALPN_BEP) != 0)
		LOG_INFO(COMP, "%s: peer %s did not negotiate ALPN %s",
		    t->addr, sid, TLS_ALPN_BEP);
	LOG_DEBUG(COMP, "%s: handshake done as %s with %s: %s, %s, records "
	    "by %s", t->addr, t->role == TLS_ROLE_CLIENT ? "client" : "server",
	    sid, tls_version_name(t), tls_ciphersuite_name(t),
	    tls_fast_records(t) ? "libsodium" : "mbedTLS");
	if (t->cbs.on_handshake != NULL)
		t->cbs.on_handshake(t, 0);
	return t->closing ? -1 : 0;
}

static void
handshake_step(struct tls *t)
{
	char	msg[160];
	int	ret;

#if TLS_HAVE_FAST
	keys_for = t;
#endif
	ret = mbedtls_ssl_handshake(&t->ssl);
#if TLS_HAVE_FAST
	keys_for = NULL;
#endif
	if (flush_out(t) != 0)
		return;
	if (ret == MBEDTLS_ERR_SSL_WANT_READ ||
	    ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	if (ret == MBEDTLS_ERR_SSL_CONN_EOF) {
		LOG_INFO(COMP, "%s: handshake failed: the peer closed the "
		    "connection", t->addr);
		handshake_fail(t, UV_EOF);
		return;
	}
	if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && !TLS_HAVE_TLS13 &&
	    t->role == TLS_ROLE_CLIENT) {
		/* The usual cause; mbedTLS 2.28 cannot tell us the alert. */
		mbedtls_strerror(ret, msg, sizeof(msg));
		LOG_WARN(COMP, "%s: handshake failed: %s (-0x%04x); if the "
		    "peer is Syncthing, it refuses TLS 1.2 unless "
		    "insecureAllowOldTLSVersions is set (and always from "
		    "1.29.6)", t->addr, msg, (unsigned int)-ret);
		handshake_fail(t, SH_ETLS);
		return;
	}
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_WARN, t->addr, "handshake failed", ret);
		handshake_fail(t, SH_ETLS);
		return;
	}
	(void)handshake_done(t);
}

static void
handshake_timeout_cb(uv_timer_t *timer)
{
	struct tls	*t = timer->data;

	if (t->closing)
		return;
	LOG_WARN(COMP, "%s: handshake failed: not done after %llu ms",
	    t->addr, (unsigned long long)t->cfg->handshake_timeout_ms);
	handshake_fail(t, UV_ETIMEDOUT);
}

/* Application data */

static void
read_records(struct tls *t)
{
	int	ret;

	if (t->rec != REC_MBEDTLS) {
		rec_read(t);
		(void)flush_out(t);
		return;
	}
	while (t->state == TLS_STATE_OPEN && !t->paused) {
		ret = mbedtls_ssl_read(&t->ssl, t->plain, sizeof(t->plain));
		if (ret > 0) {
			t->cbs.on_read(t, t->plain, (size_t)ret);
			if (t->closing)
				return;
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ ||
		    ret == MBEDTLS_ERR_SSL_WANT_WRITE)
			break;
#if defined(MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
		/* 3.6 may signal TLS 1.3 tickets; we do not resume. */
		if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
#endif
		if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
			LOG_DEBUG(COMP, "%s: peer sent close_notify", t->addr);
			start_close(t, UV_EOF, CLOSE_NOTIFY);
			return;
		}
		if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
			LOG_DEBUG(COMP, "%s: peer closed without close_notify",
			    t->addr);
			start_close(t, UV_EOF, CLOSE_FLUSH);
			return;
		}
		log_mbedtls(LOG_LEVEL_WARN, t->addr, "read failed", ret);
		start_close(t, SH_ETLS, CLOSE_FLUSH);
		return;
	}
	/* Reading can produce records too (alerts). */
	(void)flush_out(t);
}

/*
 * Drive mbedTLS over whatever input is buffered. The work per call is
 * bounded by TLS_IN_BUF_SIZE of ciphertext.
 */
static void
process(struct tls *t)
{
	if (!t->closing && t->state == TLS_STATE_HANDSHAKE)
		handshake_step(t);
	if (!t->closing && t->state == TLS_STATE_OPEN)
		read_records(t);
	update_reading(t);
}

static void
kick_cb(uv_timer_t *timer)
{
	struct tls	*t = timer->data;

	if (!t->closing)
		process(t);
}

/* Sessions */

static void
format_peer_addr(struct tls *t)
{
	struct sockaddr_storage	ss;
	char			ip[INET6_ADDRSTRLEN];
	int			len = sizeof(ss);
	int			port = 0;
	int			rc;

	snprintf(t->addr, sizeof(t->addr), "?");
	rc = uv_tcp_getpeername(t->tcp, (struct sockaddr *)&ss, &len);
	if (rc != 0)
		return;
	rc = uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
	if (rc != 0)
		return;
	if (ss.ss_family == AF_INET) {
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		snprintf(t->addr, sizeof(t->addr), "%s:%d", ip, port);
	} else {
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(t->addr, sizeof(t->addr), "[%s]:%d", ip, port);
	}
}

int
tls_open(const struct tls_config *cfg, uv_tcp_t *tcp, enum tls_role role,
    const struct tls_callbacks *cbs, void *data, struct tls **out)
{
	struct tls	*t;
	uv_loop_t	*loop = tcp->loop;
	int		 ret;
	int		 rc;

	*out = NULL;
	t = xcalloc(1, sizeof(*t));
	t->cfg = cfg;
	t->tcp = tcp;
	tcp->data = t;
	t->handles_open = 1;
	t->role = role;
	t->state = TLS_STATE_HANDSHAKE;
	t->data = data;
	mbedtls_ssl_init(&t->ssl);
	format_peer_addr(t);

	rc = uv_timer_init(loop, &t->timer);
	if (rc != 0)
		goto out;
	t->timer.data = t;
	t->timer_init = true;
	t->handles_open++;
	rc = uv_timer_init(loop, &t->kick);
	if (rc != 0)
		goto out;
	t->kick.data = t;
	t->kick_init = true;
	t->handles_open++;

	if (cbs->on_read == NULL || cbs->on_close == NULL) {
		rc = -EINVAL;
		goto out;
	}
	ret = mbedtls_ssl_setup(&t->ssl,
	    role == TLS_ROLE_CLIENT ? &cfg->client : &cfg->server);
	if (ret != 0) {
		log_mbedtls(LOG_LEVEL_ERROR, t->addr, "session setup", ret);
		rc = SH_ETLS;
		goto out;
	}
	if (role == TLS_ROLE_CLIENT) {
		/*
		 * No SNI, no host name check (bep-brief §2.1). Setting NULL
		 * explicitly also tells 3.6.3+ that the missing name is
		 * deliberate; it would otherwise refuse to verify.
		 */
		ret = mbedtls_ssl_set_hostname(&t->ssl, NULL);
		if (ret != 0) {
			log_mbedtls(LOG_LEVEL_ERROR, t->addr, "host name", ret);
			rc = SH_ETLS;
			goto out;
		}
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);

	rc = uv_read_start((uv_stream_t *)tcp, alloc_cb, read_cb);
	if (rc != 0) {
		LOG_INFO(COMP, "%s: read failed: %s", t->addr, uv_strerror(rc));
		goto out;
	}
	t->reading = true;
	rc = uv_timer_start(&t->timer, handshake_timeout_cb,
	    cfg->handshake_timeout_ms, 0);
	if (rc != 0)
		goto out;
	/* The first step runs from the loop, so no callback runs inside
	 * tls_open(). */
	rc = uv_timer_start(&t->kick, kick_cb, 0, 0);
	if (rc != 0)
		goto out;
	t->cbs = *cbs;
	*out = t;
	rc = 0;
out:
	if (rc != 0) {
		/* Nothing reaches the caller: on_close is not set yet. */
		t->closing = true;
		t->state = TLS_STATE_CLOSING;
		t->status = rc;
		close_handles(t);
	}
	return rc;
}

/* Operations */

int
tls_write(struct tls *t, const void *data, size_t len)
{
	const unsigned char	*p = data;
	size_t			 need;
	int			 ret;
	int			 rc;

	if (t->state != TLS_STATE_OPEN || t->closing) {
		rc = -ENOTCONN;
		goto out;
	}
	if (len > TLS_WRITE_QUEUE_MAX) {
		rc = -ENOBUFS;
		goto out;
	}
	need = len + (len / TLS_PLAIN_SIZE + 1) * TLS_RECORD_OVERHEAD;
	if (t->write_queue > TLS_WRITE_QUEUE_MAX ||
	    need > TLS_WRITE_QUEUE_MAX - t->write_queue) {
		rc = -ENOBUFS;
		goto out;
	}
	/* Room for all the records at once, not grown record by record
	 * (a block's records reuse one util_bigbuf buffer). */
	if (t->rec != REC_MBEDTLS)
		(void)out_reserve(t, need);
	while (len > 0 && t->rec != REC_MBEDTLS) {
		ret = (int)(len < REC_MAX_PLAIN ? len : REC_MAX_PLAIN);
		if (rec_seal(t, REC_APPDATA, p, (size_t)ret) != 0) {
			LOG_WARN(COMP, "%s: write failed: cannot seal a record",
			    t->addr);
			start_close(t, SH_ETLS, CLOSE_ABORT);
			rc = SH_ETLS;
			goto out;
		}
		p += ret;
		len -= (size_t)ret;
	}
	while (len > 0) {
		ret = mbedtls_ssl_write(&t->ssl, p, len);
		if (ret <= 0) {
			/* Our BIO never blocks, so any of these is fatal. */
			log_mbedtls(LOG_LEVEL_WARN, t->addr, "write failed",
			    ret);
			start_close(t, SH_ETLS, CLOSE_ABORT);
			rc = SH_ETLS;
			goto out;
		}
		p += ret;
		len -= (size_t)ret;
	}
	rc = flush_out(t);
out:
	return rc;
}

size_t
tls_write_queue_size(const struct tls *t)
{
	return t->write_queue;
}

void
tls_pause_read(struct tls *t)
{
	t->paused = true;
}

void
tls_resume_read(struct tls *t)
{
	int	rc;

	if (!t->paused)
		return;
	t->paused = false;
	if (t->closing)
		return;
	rc = uv_timer_start(&t->kick, kick_cb, 0, 0);
	if (rc != 0) {
		LOG_ERROR(COMP, "%s: timer: %s", t->addr, uv_strerror(rc));
		start_close(t, rc, CLOSE_ABORT);
	}
}

/* Queries */

void *
tls_data(const struct tls *t)
{
	return t->data;
}

enum tls_state
tls_state(const struct tls *t)
{
	return t->state;
}

const char *
tls_state_name(enum tls_state s)
{
	switch (s) {
	case TLS_STATE_HANDSHAKE:
		return "handshake";
	case TLS_STATE_OPEN:
		return "open";
	case TLS_STATE_CLOSING:
		return "closing";
	}
	return "unknown";
}

int
tls_status(const struct tls *t)
{
	return t->status;
}

const char *
tls_peer_addr(const struct tls *t)
{
	return t->addr;
}

int
tls_peer_id(const struct tls *t, struct device_id *out)
{
	if (!t->peer_ok) {
		memset(out, 0, sizeof(*out));
		return -ENOTCONN;
	}
	*out = t->peer_id;
	return 0;
}

const uint8_t *
tls_peer_cert_der(const struct tls *t, size_t *len)
{
	const mbedtls_x509_crt	*peer;

	*len = 0;
	if (!t->peer_ok)
		return NULL;
	peer = mbedtls_ssl_get_peer_cert(&t->ssl);
	if (peer == NULL)
		return NULL;
	*len = peer->raw.len;
	return peer->raw.p;
}

const char *
tls_alpn(const struct tls *t)
{
	if (!t->peer_ok)
		return NULL;
	return mbedtls_ssl_get_alpn_protocol(&t->ssl);
}

const char *
tls_version_name(const struct tls *t)
{
	if (!t->peer_ok)
		return "unknown";
	return mbedtls_ssl_get_version(&t->ssl);
}

bool
tls_fast_records(const struct tls *t)
{
	return t->rec != REC_MBEDTLS;
}

const char *
tls_ciphersuite_name(const struct tls *t)
{
	const char	*name;

	if (!t->peer_ok)
		return "unknown";
	name = mbedtls_ssl_get_ciphersuite(&t->ssl);
	return name != NULL ? name : "unknown";
}

/* Pinning */

bool
tls_id_allowed(const struct device_id *peer, const struct device_id *allowed,
    size_t n)
{
	unsigned int	found = 0;
	size_t		i;

	/* sodium_memcmp returns 0 or -1; accumulate without branching. */
	for (i = 0; i < n; i++)
		found |= (unsigned int)(sodium_memcmp(peer->raw,
		    allowed[i].raw, sizeof(peer->raw)) + 1);
	return found != 0;
}

void
tls_wire_bytes(const struct tls *t, uint64_t *in, uint64_t *out)
{
	*in = t->wire_in;
	*out = t->wire_out;
}

/*
 * Version compatibility for identity.c (tls_int.h): the project keeps every
 * mbedTLS version gate in this file.
 */
int
tls_compat_crypto_init(void)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000 && defined(MBEDTLS_PSA_CRYPTO_C)
	return (int)psa_crypto_init();
#else
	return 0;
#endif
}

int
tls_compat_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	return mbedtls_sha256(data, len, out, 0);
#else
	return mbedtls_sha256_ret(data, len, out, 0);
#endif
}

int
tls_compat_pk_parse_key(mbedtls_pk_context *key, const unsigned char *buf,
    size_t len, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	return mbedtls_pk_parse_key(key, buf, len, NULL, 0, f_rng, p_rng);
#else
	(void)f_rng;
	(void)p_rng;
	return mbedtls_pk_parse_key(key, buf, len, NULL, 0);
#endif
}

int
tls_compat_pk_check_pair(const mbedtls_pk_context *pub,
    const mbedtls_pk_context *prv,
    int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	return mbedtls_pk_check_pair(pub, prv, f_rng, p_rng);
#else
	(void)f_rng;
	(void)p_rng;
	return mbedtls_pk_check_pair(pub, prv);
#endif
}

int
tls_compat_crt_set_serial(mbedtls_x509write_cert *crt,
    const unsigned char *serial, size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
	return mbedtls_x509write_crt_set_serial_raw(crt,
	    (unsigned char *)serial, len);
#else
	mbedtls_mpi	mpi;
	int		ret;

	mbedtls_mpi_init(&mpi);
	ret = mbedtls_mpi_read_binary(&mpi, serial, len);
	if (ret == 0)
		ret = mbedtls_x509write_crt_set_serial(crt, &mpi);
	mbedtls_mpi_free(&mpi);
	return ret;
#endif
}

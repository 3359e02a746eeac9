/* SPDX-License-Identifier: MIT */
/*
 * One BEP connection (bep-brief §4-§10). The connection manager hands us a
 * TCP handle; we run TLS over it, exchange Hellos, let the manager accept or
 * refuse the peer, exchange ClusterConfigs, then stream our index to the
 * peer in bounded batches, store the peer's index, serve its block requests
 * from the thread pool and carry our own requests.
 *
 * State machine:
 *
 *   TLS --handshake ok--> HELLO --peer Hello, accepted--> CONFIG
 *                                                           |
 *                                   peer ClusterConfig      v
 *                                                        ACTIVE
 *   any state --conn_close() / error / peer Close--> CLOSING --> freed
 *
 * | from    | to      | event                          | function            |
 * |---------|---------|--------------------------------|---------------------|
 * | TLS     | HELLO   | TLS handshake succeeded        | tls_handshake_cb    |
 * | HELLO   | CONFIG  | Hello parsed, on_hello says ok | handle_hello        |
 * | CONFIG  | ACTIVE  | first ClusterConfig received   | handle_cluster_config |
 * | *       | CLOSING | conn_close, protocol error,    | close_internal      |
 * |         |         | timeout, TLS failure           |                     |
 *
 * Design notes:
 * (1) No folder data (ClusterConfig, Index, Response) is sent before the
 *     manager accepted the peer's device ID in on_hello.
 * (2) Nothing but ClusterConfig and Close is accepted before the peer's
 *     ClusterConfig (bep-brief §6.1); nothing but ClusterConfig goes out
 *     before ours.
 * (3) Index/IndexUpdate flow only for folders that our config shares with
 *     the peer and whose latest ClusterConfig from the peer lists us and is
 *     not paused (§9.3); an index for any other folder closes the link.
 * (4) Memory is bounded: index batches are at most CONN_INDEX_BATCH_FILES
 *     records or CONN_INDEX_BATCH_BYTES, the pump stops while the TLS write
 *     queue is above CONN_PUMP_QUEUE_LIMIT, block reads in flight are capped
 *     by CONN_SEND_MAX_INFLIGHT with at most CONN_MAX_QUEUED_REQUESTS
 *     waiting, and our own requests by CONN_MAX_OWN_REQUESTS.
 * (5) A conn is freed only after TLS has closed, every timer handle has
 *     closed and every pool job has come back (`handles`, `jobs`); then
 *     on_closed runs exactly once.
 * (6) Block data we serve is read through the folder root without
 *     following any symlink (openat with O_NOFOLLOW per component). When
 *     the requested block is the one our record holds and the open file
 *     still has the record's size, mtime (s and ns) and inode before and
 *     after the read, the data is sent without hashing it again: that is
 *     the scanner's own test for "unchanged", and the requester checks
 *     every block's SHA-256 anyway. Otherwise the data is checked against
 *     the requested hash, so a file changed since the scan is answered
 *     NO_SUCH_FILE rather than with wrong data.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "bep.pb-c.h"

#include "shoal/buildinfo.h"
#include "shoal/config.h"
#include "shoal/conn.h"
#include "shoal/db.h"
#include "shoal/hash.h"
#include "shoal/intro.h"
#include "shoal/log.h"
#include "shoal/proto.h"
#include "shoal/util.h"

/* The pump stops adding index messages above this many queued bytes. */
#define CONN_PUMP_QUEUE_LIMIT	(1024 * 1024)
/* Index batches per pump round before yielding to the loop. */
#define CONN_PUMP_BATCHES	4
/* Delay that coalesces the commits of one burst of local changes into one
 * pump; a scan commits at most every 512 records or 200 ms, so this only
 * has to outlast the gap between back-to-back commits. */
#define CONN_KICK_DELAY_MS	20
#define CONN_HELLO_BUF_MAX	(6 + PROTO_HELLO_MAX_LEN)
#define CONN_PING_IDLE_MS	45000

struct conn_folder {
	char		*id;		/* owned */
	int64_t		 idx;		/* db folder index */
	bool		 peer_shares;	/* rule (3), the peer's side */
	bool		 full_next;	/* next batch goes out as Index */
	int64_t		 sent_seq;	/* highest local sequence sent */
};

struct own_request {
	bool			 used;
	int32_t			 id;
	int32_t			 size;
	uint8_t			 hash[RECORD_HASH_LEN];
	uint64_t		 deadline_ms;
	unsigned int		 flags;		/* CONN_REQ_* */
	conn_response_cb	 cb;
	void			*arg;
};

struct serve_job {
	uv_work_t		 work;
	struct conn		*c;
	struct serve_job	*next;		/* wait queue link */
	int32_t			 id;
	char			*root;		/* owned: folder root */
	char			*name;		/* owned: folder-relative name */
	int64_t			 offset;
	int32_t			 size;
	uint8_t			 hash[RECORD_HASH_LEN];
	bool			 check_hash;
	/* Rule (6): the record's metadata, when the block is the record's. */
	bool			 trust_meta;
	int64_t			 file_size;
	int64_t			 mtime_s;
	int32_t			 mtime_ns;
	uint64_t		 inode;
	/* The Response frame, built around the block (data points into
	 * it); NULL unless code is PROTO_CODE_NO_ERROR. */
	uint8_t			*frame;		/* owned */
	size_t			 frame_len;
	uint8_t			*data;
	int			 code;		/* PROTO_CODE_* result */
};

struct conn {
	const struct conn_env	*env;
	struct conn_hooks	 hooks;
	void			*arg;
	struct tls		*tls;
	enum conn_state		 state;
	bool			 outgoing;
	bool			 closing;
	bool			 tls_closed;
	bool			 cc_sent;
	bool			 pump_wait_drain;
	int			 handles;	/* open timer handles */
	int			 jobs;		/* pool jobs in flight */
	char			*address;	/* owned */
	char			*close_reason;	/* owned; first reason */
	char			 peer_short[IDENTITY_SHORT_STR_SIZE];
	struct device_id	 peer;
	int64_t			 peer_idx;	/* db device index; 0 until accepted */
	struct proto_hello	 hello;
	struct util_buf		 hello_buf;
	struct proto_decoder	*dec;
	struct conn_folder	*folders;	/* owned array */
	size_t			 folder_count;
	uv_timer_t		 hello_timer;
	uv_timer_t		 ping_timer;
	uv_timer_t		 pump_timer;
	bool			 pump_scheduled;
	uint64_t		 last_read_ms;
	uint64_t		 last_write_ms;
	/* serving */
	size_t			 serve_inflight;	/* bytes being read or queued */
	struct serve_job	*wait_head, *wait_tail;
	size_t			 wait_count;
	/* The last file served, while its folder's db generation holds: a
	 * peer asks for a big file's blocks one by one, and reading its
	 * record (1,024 blocks for 1 GiB, blocks_hash recomputed) per
	 * request cost 7 % of the sender's loop. */
	struct record		*serve_rec;	/* owned or NULL */
	int64_t			 serve_rec_folder;
	uint64_t		 serve_rec_gen;
	/* our requests */
	struct own_request	 own[CONN_MAX_OWN_REQUESTS];
	size_t			 own_count;
	int32_t			 next_req_id;
	struct conn_info	 info;
};

static void	close_internal(struct conn *c, const char *reason, bool send_close);
static void	pump(struct conn *c);
static void	serve_start_waiting(struct conn *c);

const char *
conn_state_name(enum conn_state s)
{
	switch (s) {
	case CONN_STATE_TLS: return "tls";
	case CONN_STATE_HELLO: return "hello";
	case CONN_STATE_CONFIG: return "config";
	case CONN_STATE_ACTIVE: return "active";
	case CONN_STATE_CLOSING: return "closing";
	}
	return "unknown";
}

/* ---- helpers ---- */

static bool
cfg_shares(const struct conn *c, const struct config_folder *f)
{
	return config_folder_shares(f, &c->peer, NULL);
}

static struct conn_folder *
find_cfolder(struct conn *c, const char *id)
{
	size_t	i;

	for (i = 0; i < c->folder_count; i++)
		if (strcmp(c->folders[i].id, id) == 0)
			return &c->folders[i];
	return NULL;
}

static struct conn_folder *
find_cfolder_idx(struct conn *c, int64_t idx)
{
	size_t	i;

	for (i = 0; i < c->folder_count; i++)
		if (c->folders[i].idx == idx)
			return &c->folders[i];
	return NULL;
}

/* A folder flows when both sides share it (rule 3). */
static bool
folder_flows(const struct conn *c, const struct conn_folder *f)
{
	const struct config_folder *cf;

	if (!f->peer_shares)
		return false;
	cf = config_folder_find(c->env->cfg, f->id);
	return cf != NULL && cfg_shares(c, cf);
}

/* Queue a frame on the socket; takes ownership of buf. */
static int
send_frame(struct conn *c, uint8_t *buf, size_t len)
{
	int	rc;

	if (c->closing && c->state == CONN_STATE_CLOSING && c->tls_closed) {
		util_bigbuf_free(buf);
		return -ENOTCONN;
	}
	rc = tls_write(c->tls, buf, len);
	util_bigbuf_free(buf);
	if (rc == 0) {
		c->last_write_ms = util_now_ms();
	}
	return rc;
}

/* send_frame, and a full queue ends the connection. */
static int
send_or_close(struct conn *c, uint8_t *buf, size_t len)
{
	int	rc;

	rc = send_frame(c, buf, len);
	if (rc != 0 && rc != -ENOTCONN) {
		LOG_WARN("conn", "%s: send failed: %s", c->peer_short,
		    sh_strerror(rc));
		close_internal(c, "send queue overflow", false);
	}
	return rc;
}

static int
send_msg(struct conn *c, enum proto_type type, const ProtobufCMessage *m)
{
	uint8_t	*buf = NULL;
	size_t	 len;
	int	 rc;

	rc = proto_frame_encode(type, m, type != PROTO_RESPONSE, &buf, &len);
	if (rc != 0) {
		LOG_ERROR("conn", "%s: cannot encode %s: %s", c->peer_short,
		    proto_type_name(type), sh_strerror(rc));
		return rc;
	}
	return send_or_close(c, buf, len);
}

SH_PRINTF(2, 3) static void
protocol_error(struct conn *c, const char *fmt, ...)
{
	char	reason[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	LOG_WARN("conn", "%s at %s: protocol error: %s; dropping the peer",
	    c->peer_short, c->address, reason);
	close_internal(c, reason, true);
}

/* ---- teardown ---- */

static void
maybe_free(struct conn *c)
{
	size_t	i;

	if (!c->tls_closed || c->handles > 0 || c->jobs > 0)
		return;
	if (c->hooks.on_closed != NULL)
		c->hooks.on_closed(c, c->arg);
	proto_hello_clear(&c->hello);
	util_buf_free(&c->hello_buf);
	proto_decoder_free(c->dec);
	record_free(c->serve_rec);
	for (i = 0; i < c->folder_count; i++)
		free(c->folders[i].id);
	free(c->folders);
	free(c->address);
	free(c->close_reason);
	free(c);
}

static void
timer_close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->handles--;
	maybe_free(c);
}

static void
fail_own_requests(struct conn *c, int status)
{
	size_t	i;

	for (i = 0; i < CONN_MAX_OWN_REQUESTS; i++) {
		struct own_request r = c->own[i];

		if (!r.used)
			continue;
		c->own[i].used = false;
		c->own_count--;
		r.cb(status, NULL, 0, r.arg);
	}
}

static void
close_internal(struct conn *c, const char *reason, bool send_close)
{
	struct serve_job	*j;
	uint8_t			*buf = NULL;
	size_t			 len;

	if (c->closing)
		return;
	c->closing = true;
	c->close_reason = xstrdup(reason != NULL ? reason : "closed");
	/* A Close goes out only once the Hellos are done (bep-brief §6.1). */
	if (send_close && c->state >= CONN_STATE_CONFIG &&
	    proto_close_encode(c->close_reason, &buf, &len) == 0)
		(void)send_frame(c, buf, len);
	c->state = CONN_STATE_CLOSING;
	c->info.state = CONN_STATE_CLOSING;
	uv_close((uv_handle_t *)&c->hello_timer, timer_close_cb);
	uv_close((uv_handle_t *)&c->ping_timer, timer_close_cb);
	uv_close((uv_handle_t *)&c->pump_timer, timer_close_cb);
	/* Waiting requests never started: drop them now. */
	while ((j = c->wait_head) != NULL) {
		c->wait_head = j->next;
		free(j->root);
		free(j->name);
		free(j);
	}
	c->wait_tail = NULL;
	c->wait_count = 0;
	fail_own_requests(c, -ECANCELED);
	tls_close(c->tls, 0);
}

void
conn_close(struct conn *c, const char *reason)
{
	if (c->closing)
		return;
	LOG_DEBUG("conn", "%s: closing: %s", c->peer_short,
	    reason != NULL ? reason : "closed");
	close_internal(c, reason, true);
}

/* ---- ClusterConfig ---- */

static int64_t
local_seq(struct conn *c, int64_t folder_idx)
{
	int64_t	seq = 0;

	if (db_max_sequence(c->env->db, folder_idx, DB_LOCAL_DEVICE, &seq) != 0)
		return 0;
	return seq;
}

/* Fill a Device entry; strings point into cfg or static storage. */
static void
fill_device(Shoal__Bep__Device *d, const struct device_id *id,
    const char *name, char **addrs, size_t naddr, uint64_t index_id,
    int64_t max_seq)
{
	shoal__bep__device__init(d);
	d->id.data = (uint8_t *)id->raw;
	d->id.len = IDENTITY_ID_LEN;
	d->name = (char *)name;
	d->addresses = addrs;
	d->n_addresses = naddr;
	d->index_id = index_id;
	d->max_sequence = max_seq;
}

static void
send_cluster_config(struct conn *c)
{
	static char		 dynamic_str[] = "dynamic";
	static char		*self_addrs[] = { dynamic_str };
	const struct config	*cfg = c->env->cfg;
	Shoal__Bep__ClusterConfig cc = SHOAL__BEP__CLUSTER_CONFIG__INIT;
	Shoal__Bep__Folder	*folders = NULL, **fptrs = NULL;
	Shoal__Bep__Device	*devs = NULL, **dptrs = NULL;
	size_t			 nf = 0, nd = 0, maxd = 0, i, j;

	for (i = 0; i < cfg->folder_count; i++)
		maxd += cfg->folders[i].share_count + 1;
	folders = xcalloc(cfg->folder_count + 1, sizeof(*folders));
	fptrs = xcalloc(cfg->folder_count + 1, sizeof(*fptrs));
	devs = xcalloc(maxd + 1, sizeof(*devs));
	dptrs = xcalloc(maxd + 1, sizeof(*dptrs));
	for (i = 0; i < cfg->folder_count; i++) {
		const struct config_folder *cf = &cfg->folders[i];
		Shoal__Bep__Folder *f = &folders[nf];
		int64_t fidx;
		uint64_t ix = 0;
		size_t first = nd;

		if (!cfg_shares(c, cf))
			continue;
		if (db_folder_idx(c->env->db, cf->id, &fidx) != 0)
			continue;
		shoal__bep__folder__init(f);
		f->id = cf->id;
		f->label = cf->label;
		f->read_only = (cf->type == CONFIG_FOLDER_SENDONLY);
		if (db_index_id_get(c->env->db, fidx, DB_LOCAL_DEVICE, &ix) != 0)
			ix = 0;
		fill_device(&devs[nd], &c->env->self, cfg->name, self_addrs, 1,
		    ix, local_seq(c, fidx));
		dptrs[nd] = &devs[nd];
		nd++;
		for (j = 0; j < cf->share_count; j++) {
			const struct config_device *cd;
			int64_t didx, ms = 0;
			uint64_t rix = 0;

			cd = config_device_find(cfg, &cf->shares[j]);
			if (cd == NULL)
				continue;
			if (db_device_idx(c->env->db, &cd->id, &didx) == 0) {
				if (db_index_id_get(c->env->db, fidx, didx, &rix) != 0)
					rix = 0;
				if (db_max_sequence(c->env->db, fidx, didx, &ms) != 0)
					ms = 0;
			}
			fill_device(&devs[nd], &cd->id, cd->name, cd->addresses,
			    cd->address_count, rix, ms);
			/* bep-brief §12: whom we take introductions from. */
			devs[nd].introducer = cd->introducer;
			devs[nd].skip_introduction_removals =
			    cd->skip_introduction_removals;
			dptrs[nd] = &devs[nd];
			nd++;
		}
		f->devices = &dptrs[first];
		f->n_devices = nd - first;
		fptrs[nf] = f;
		nf++;
	}
	cc.folders = fptrs;
	cc.n_folders = nf;
	(void)send_msg(c, PROTO_CLUSTER_CONFIG, &cc.base);
	c->cc_sent = true;
	free(folders);
	free(fptrs);
	free(devs);
	free(dptrs);
}

static const Shoal__Bep__Device *
cc_device(const Shoal__Bep__Folder *f, const struct device_id *id)
{
	size_t	i;

	for (i = 0; i < f->n_devices; i++) {
		const Shoal__Bep__Device *d = f->devices[i];

		if (d->id.len == IDENTITY_ID_LEN &&
		    memcmp(d->id.data, id->raw, IDENTITY_ID_LEN) == 0)
			return d;
	}
	return NULL;
}

/* Add or find our per-connection state for a configured folder. */
static struct conn_folder *
cfolder_get(struct conn *c, const char *id)
{
	struct conn_folder	*f = find_cfolder(c, id);
	int64_t			 idx;

	if (f != NULL)
		return f;
	if (db_folder_idx(c->env->db, id, &idx) != 0)
		return NULL;
	c->folders = xreallocarray(c->folders, c->folder_count + 1,
	    sizeof(*c->folders));
	f = &c->folders[c->folder_count++];
	memset(f, 0, sizeof(*f));
	f->id = xstrdup(id);
	f->idx = idx;
	return f;
}

/*
 * Apply the peer's ClusterConfig (bep-brief §9.2): decide per folder where
 * our index stream starts, and drop what we stored from the peer when its
 * index ID changed.
 */
static int
apply_cluster_config(struct conn *c, const Shoal__Bep__ClusterConfig *cc)
{
	const struct config	*cfg = c->env->cfg;
	size_t			 i;

	for (i = 0; i < c->folder_count; i++)
		c->folders[i].peer_shares = false;
	for (i = 0; i < cc->n_folders; i++) {
		const Shoal__Bep__Folder *pf = cc->folders[i];
		const struct config_folder *cf = config_folder_find(cfg, pf->id);
		const Shoal__Bep__Device *mine, *theirs;
		struct conn_folder *f;
		char esc[128];
		bool was;
		uint64_t my_ix = 0, stored = 0;
		int64_t my_seq;

		if (cf == NULL) {
			LOG_INFO("conn", "%s offers folder \"%s\", which we do "
			    "not have", c->peer_short,
			    log_escape(pf->id, esc, sizeof(esc)));
			continue;
		}
		/* Remember the peer's side even when our config does not share
		 * the folder yet: sharing it later must not need another
		 * ClusterConfig from the peer (rule 3 checks both sides at use). */
		if (!cfg_shares(c, cf))
			LOG_INFO("conn", "%s offers folder \"%s\", which we do "
			    "not share with it", c->peer_short, cf->id);
		mine = cc_device(pf, &c->env->self);
		theirs = cc_device(pf, &c->peer);
		if (mine == NULL || pf->paused)
			continue;
		f = cfolder_get(c, cf->id);
		if (f == NULL)
			return SH_EDB;
		was = f->peer_shares;
		f->peer_shares = true;
		if (!was) {
			if (db_index_id_get(c->env->db, f->idx, DB_LOCAL_DEVICE,
			    &my_ix) != 0)
				return SH_EDB;
			my_seq = local_seq(c, f->idx);
			if (mine->index_id == my_ix && mine->max_sequence >= 0 &&
			    mine->max_sequence <= my_seq) {
				f->sent_seq = mine->max_sequence;
				f->full_next = false;
			} else {
				f->sent_seq = 0;
				f->full_next = true;
			}
			LOG_DEBUG("conn", "%s folder \"%s\": peer has our index "
			    "%016llx up to %lld; we are %016llx at %lld; sending "
			    "from %lld", c->peer_short, cf->id,
			    (unsigned long long)mine->index_id,
			    (long long)mine->max_sequence,
			    (unsigned long long)my_ix, (long long)my_seq,
			    (long long)f->sent_seq);
		}
		if (theirs == NULL)
			continue;
		if (db_index_id_get(c->env->db, f->idx, c->peer_idx,
		    &stored) != 0)
			return SH_EDB;
		if (theirs->index_id == 0 || theirs->index_id != stored) {
			if (db_files_drop(c->env->db, f->idx, c->peer_idx) != 0 ||
			    db_index_id_set(c->env->db, f->idx, c->peer_idx,
			    theirs->index_id) != 0)
				return SH_EDB;
			if (stored != 0)
				LOG_INFO("conn", "%s folder \"%s\": peer's index ID "
				    "changed; expecting its full index",
				    c->peer_short, cf->id);
		}
	}
	return 0;
}

/* An introducer's ClusterConfig (bep-brief §12): the devices it lists for
 * the folders we share with it go to the manager, which may change the
 * config. Devices with an encryption token are for encrypted folders,
 * which we do not have. */
static void
report_introductions(struct conn *c, const Shoal__Bep__ClusterConfig *cc)
{
	const struct config		*cfg = c->env->cfg;
	const struct config_device	*pd = config_device_find(cfg, &c->peer);
	struct intro_view		*v;
	size_t				 i, j, k;

	if (pd == NULL || !pd->introducer || c->hooks.on_introduction == NULL)
		return;
	v = xcalloc(1, sizeof(*v));
	v->introducer = c->peer;
	v->folders = xcalloc(cc->n_folders + 1, sizeof(*v->folders));
	for (i = 0; i < cc->n_folders; i++) {
		const Shoal__Bep__Folder *pf = cc->folders[i];
		const struct config_folder *cf = config_folder_find(cfg, pf->id);
		struct intro_folder *f;

		if (cf == NULL || !cfg_shares(c, cf))
			continue;
		f = &v->folders[v->folder_count++];
		f->id = xstrdup(pf->id);
		f->devices = xcalloc(pf->n_devices + 1, sizeof(*f->devices));
		for (j = 0; j < pf->n_devices; j++) {
			const Shoal__Bep__Device *pd2 = pf->devices[j];
			struct intro_device *d;

			if (pd2->id.len != IDENTITY_ID_LEN ||
			    pd2->encryption_password_token.len > 0)
				continue;
			d = &f->devices[f->device_count++];
			memcpy(d->id.raw, pd2->id.data, IDENTITY_ID_LEN);
			d->name = xstrdup(pd2->name != NULL ? pd2->name : "");
			d->introducer = pd2->introducer;
			d->addresses = xcalloc(pd2->n_addresses + 1,
			    sizeof(*d->addresses));
			for (k = 0; k < pd2->n_addresses; k++)
				d->addresses[d->address_count++] =
				    xstrdup(pd2->addresses[k]);
		}
	}
	c->hooks.on_introduction(c, v, c->arg);
}

static void
handle_cluster_config(struct conn *c, const Shoal__Bep__ClusterConfig *cc)
{
	int	rc;

	if (cc->secondary)
		return;
	rc = apply_cluster_config(c, cc);
	if (rc != 0) {
		close_internal(c, "internal error applying cluster config", true);
		return;
	}
	report_introductions(c, cc);
	if (c->state == CONN_STATE_CONFIG) {
		c->state = CONN_STATE_ACTIVE;
		c->info.state = CONN_STATE_ACTIVE;
		uv_timer_stop(&c->hello_timer);
		if (c->hooks.on_active != NULL)
			c->hooks.on_active(c, c->arg);
		if (c->closing)
			return;
	}
	pump(c);
}

/* ---- index out ---- */

struct batch {
	Shoal__Bep__FileInfo	**files;
	size_t			 count;
	size_t			 bytes;
	int64_t			 last_seq;
};

static int
batch_add(const struct record *r, void *arg)
{
	struct batch		*b = arg;
	Shoal__Bep__FileInfo	*fi;

	fi = proto_fileinfo_from_record(r);
	b->files[b->count++] = fi;
	b->bytes += protobuf_c_message_get_packed_size(&fi->base);
	b->last_seq = r->sequence;
	if (b->bytes >= CONN_INDEX_BATCH_BYTES ||
	    b->count == CONN_INDEX_BATCH_FILES)
		return 1;
	return 0;
}

/* Send one batch of a folder. Returns 1 if more may remain, 0 if done,
 * negative on error. */
static int
pump_folder(struct conn *c, struct conn_folder *f)
{
	struct batch	 b;
	int64_t		 my_seq = local_seq(c, f->idx);
	size_t		 i;
	int		 rc;

	if (f->sent_seq >= my_seq)
		return 0;
	memset(&b, 0, sizeof(b));
	b.files = xcalloc(CONN_INDEX_BATCH_FILES, sizeof(*b.files));
	rc = db_records_since(c->env->db, f->idx, DB_LOCAL_DEVICE, f->sent_seq,
	    CONN_INDEX_BATCH_FILES, batch_add, &b);
	if (rc < 0)
		goto out;
	if (b.count == 0) {
		/* The newest sequences belonged to records replaced since. */
		f->sent_seq = my_seq;
		rc = 0;
		goto out;
	}
	if (f->full_next) {
		Shoal__Bep__Index idx = SHOAL__BEP__INDEX__INIT;

		idx.folder = f->id;
		idx.files = b.files;
		idx.n_files = b.count;
		idx.last_sequence = b.last_seq;
		rc = send_msg(c, PROTO_INDEX, &idx.base);
	} else {
		Shoal__Bep__IndexUpdate upd = SHOAL__BEP__INDEX_UPDATE__INIT;

		upd.folder = f->id;
		upd.files = b.files;
		upd.n_files = b.count;
		upd.last_sequence = b.last_seq;
		upd.prev_sequence = f->sent_seq;
		rc = send_msg(c, PROTO_INDEX_UPDATE, &upd.base);
	}
	if (rc != 0)
		goto out;
	LOG_DEBUG("conn", "%s folder \"%s\": sent %s with %zu records "
	    "(sequences %lld..%lld)", c->peer_short, f->id,
	    f->full_next ? "Index" : "IndexUpdate", b.count,
	    (long long)f->sent_seq + 1, (long long)b.last_seq);
	f->full_next = false;
	f->sent_seq = b.last_seq;
	c->info.index_records_sent += b.count;
	c->info.index_messages_sent++;
	rc = f->sent_seq < my_seq ? 1 : 0;
out:
	for (i = 0; i < b.count; i++)
		proto_fileinfo_free(b.files[i]);
	free(b.files);
	return rc;
}

static void
pump_timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	c->pump_scheduled = false;
	pump(c);
}

/* A pump due later is brought forward by a call with delay 0. */
static void
schedule_pump(struct conn *c, uint64_t delay_ms)
{
	if (c->closing || (c->pump_scheduled && delay_ms > 0))
		return;
	c->pump_scheduled = true;
	if (uv_timer_start(&c->pump_timer, pump_timer_cb, delay_ms, 0) != 0)
		c->pump_scheduled = false;
}

/* Send index batches for every flowing folder, a few per call (rule 4). */
static void
pump(struct conn *c)
{
	size_t	i, rounds = 0;
	bool	more = false;
	int	rc;

	if (c->closing || c->state != CONN_STATE_ACTIVE)
		return;
	for (i = 0; i < c->folder_count && !c->closing; i++) {
		struct conn_folder *f = &c->folders[i];

		if (!folder_flows(c, f))
			continue;
		for (;;) {
			if (tls_write_queue_size(c->tls) > CONN_PUMP_QUEUE_LIMIT) {
				c->pump_wait_drain = true;
				return;
			}
			if (rounds == CONN_PUMP_BATCHES) {
				more = true;
				break;
			}
			rc = pump_folder(c, f);
			rounds++;
			if (rc < 0) {
				if (!c->closing)
					close_internal(c, "cannot read the index",
					    true);
				return;
			}
			if (rc == 0)
				break;
		}
	}
	if (more)
		schedule_pump(c, 0);
}

void
conn_index_kick(struct conn *c, int64_t folder_idx, bool now)
{
	(void)folder_idx;
	if (c->closing || c->state != CONN_STATE_ACTIVE)
		return;
	schedule_pump(c, now ? 0 : CONN_KICK_DELAY_MS);
}

void
conn_config_changed(struct conn *c)
{
	size_t	i;

	if (c->closing || c->state < CONN_STATE_CONFIG)
		return;
	/* Folders we no longer share stop flowing; new ones start when the
	 * peer's next ClusterConfig lists them. */
	for (i = 0; i < c->folder_count; i++) {
		const struct config_folder *cf;

		cf = config_folder_find(c->env->cfg, c->folders[i].id);
		if (cf == NULL || !cfg_shares(c, cf))
			c->folders[i].peer_shares = false;
	}
	send_cluster_config(c);
	schedule_pump(c, 0);
}

/* ---- index in ---- */

static void
handle_index(struct conn *c, const struct proto_msg *m, bool full)
{
	Shoal__Bep__FileInfo *const	*files;
	const char			*folder;
	struct conn_folder		*f;
	struct record			*r = NULL;
	struct proto_err		 perr;
	size_t				 n, i, stored = 0;
	char				 esc[128];
	int				 rc;

	n = proto_msg_files(m, &folder, &files);
	f = find_cfolder(c, folder);
	if (f == NULL || !folder_flows(c, f)) {
		protocol_error(c, "index for folder \"%s\", which is not shared",
		    log_escape(folder, esc, sizeof(esc)));
		return;
	}
	rc = db_begin(c->env->db);
	if (rc != 0)
		goto fail;
	if (full) {
		rc = db_files_drop(c->env->db, f->idx, c->peer_idx);
		if (rc != 0)
			goto fail;
	}
	for (i = 0; i < n; i++) {
		rc = proto_record_from_fileinfo(files[i], &r, &perr);
		if (rc != 0) {
			db_rollback(c->env->db);
			protocol_error(c, "%s", perr.msg);
			return;
		}
		/* Internal names are never stored, whoever sends them. */
		if (!record_name_internal(r->name)) {
			rc = db_remote_put(c->env->db, f->idx, c->peer_idx, r);
			if (rc == SH_EPROTO) {
				record_free(r);
				db_rollback(c->env->db);
				protocol_error(c, "sequence %lld used twice in "
				    "folder \"%s\"", (long long)files[i]->sequence,
				    f->id);
				return;
			}
			if (rc != 0) {
				record_free(r);
				goto fail;
			}
			stored++;
		}
		record_free(r);
		r = NULL;
	}
	rc = db_commit(c->env->db);
	if (rc != 0)
		goto fail;
	c->info.index_records_received += n;
	c->info.index_messages_received++;
	LOG_DEBUG("conn", "%s folder \"%s\": received %s with %zu records",
	    c->peer_short, f->id, full ? "Index" : "IndexUpdate", n);
	if (c->hooks.on_remote_index != NULL && stored > 0)
		c->hooks.on_remote_index(c, f->idx, c->arg);
	return;
fail:
	db_rollback(c->env->db);
	LOG_ERROR("conn", "%s folder \"%s\": cannot store the peer's index: %s",
	    c->peer_short, f->id, sh_strerror(rc));
	close_internal(c, "internal error storing index", true);
}

/* ---- serving requests (pool) ---- */

/*
 * Open root/name for reading without following a symlink anywhere below
 * the root (rule 6). Returns an fd or -errno.
 */
static int
open_below(const char *root, const char *name)
{
	const char	*base = strrchr(name, '/');
	int		 dfd, fd;

	dfd = util_open_parent(root, name);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, base != NULL ? base + 1 : name,
	    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	fd = fd < 0 ? -errno : fd;
	close(dfd);
	return fd;
}

/* Is the open file still the one the record describes (rule 6)? */
static bool
serve_unchanged(const struct serve_job *j, int fd)
{
	struct stat	st;

	return j->trust_meta && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size == j->file_size && st.st_mtim.tv_sec == j->mtime_s &&
	    st.st_mtim.tv_nsec == j->mtime_ns &&
	    (uint64_t)st.st_ino == j->inode;
}

static void
serve_work(uv_work_t *w)
{
	struct serve_job	*j = w->data;
	uint8_t			 got[RECORD_HASH_LEN];
	ssize_t			 n;
	bool			 verify;
	int			 fd;

	fd = open_below(j->root, j->name);
	if (fd < 0) {
		j->code = PROTO_CODE_NO_SUCH_FILE;
		return;
	}
	verify = !serve_unchanged(j, fd);
	/* Read into the frame itself: the loop then only seals it. */
	if (proto_response_frame(j->id, (size_t)j->size, &j->frame,
	    &j->frame_len, &j->data) != 0) {
		close(fd);
		j->code = PROTO_CODE_GENERIC;
		return;
	}
	n = util_pread_full(fd, j->data, (size_t)j->size, j->offset);
	/* A write during the read changes the mtime: then verify. */
	if (!verify && !serve_unchanged(j, fd))
		verify = true;
	close(fd);
	if (n != j->size)
		j->code = n < 0 ? PROTO_CODE_GENERIC : PROTO_CODE_NO_SUCH_FILE;
	else if (verify && j->check_hash &&
	    (hash_sha256(j->data, (size_t)j->size, got) != 0 ||
	    sodium_memcmp(got, j->hash, RECORD_HASH_LEN) != 0))
		j->code = PROTO_CODE_NO_SUCH_FILE;
	else
		j->code = PROTO_CODE_NO_ERROR;
	if (j->code != PROTO_CODE_NO_ERROR) {
		util_bigbuf_free(j->frame);
		j->frame = j->data = NULL;
	}
}

/* A Response without data: an error code, or the answer to a request for
 * zero bytes (block data goes out in frames built by serve_work). */
static void
send_empty_response(struct conn *c, int32_t id, int code)
{
	Shoal__Bep__Response	resp = SHOAL__BEP__RESPONSE__INIT;

	resp.id = id;
	resp.code = (Shoal__Bep__ErrorCode)code;
	(void)send_msg(c, PROTO_RESPONSE, &resp.base);
}

static void
serve_done(uv_work_t *w, int status)
{
	struct serve_job	*j = w->data;
	struct conn		*c = j->c;

	c->jobs--;
	c->serve_inflight -= (size_t)j->size;
	if (!c->closing) {
		if (status != 0)
			j->code = PROTO_CODE_GENERIC;
		if (j->code != PROTO_CODE_NO_ERROR) {
			LOG_DEBUG("conn", "%s: request \"%s\" @%lld+%d answered "
			    "with code %d", c->peer_short, j->name,
			    (long long)j->offset, j->size, j->code);
			send_empty_response(c, j->id, j->code);
		} else {
			(void)send_or_close(c, j->frame, j->frame_len);
			j->frame = NULL;
		}
		c->info.requests_served++;
	}
	util_bigbuf_free(j->frame);
	free(j->root);
	free(j->name);
	free(j);
	if (c->closing)
		maybe_free(c);
	else
		serve_start_waiting(c);
}

static bool
serve_can_start(const struct conn *c, int32_t size)
{
	/* Bytes being read plus bytes queued on the socket stay under the cap;
	 * one request always proceeds so that a single large block can pass. */
	size_t used = c->serve_inflight + tls_write_queue_size(c->tls);

	return used == 0 || used + (size_t)size <= CONN_SEND_MAX_INFLIGHT;
}

static void
serve_start(struct conn *c, struct serve_job *j)
{
	int	rc;

	j->work.data = j;
	c->serve_inflight += (size_t)j->size;
	c->jobs++;
	rc = uv_queue_work(c->env->loop, &j->work, serve_work, serve_done);
	if (rc != 0) {
		c->jobs--;
		c->serve_inflight -= (size_t)j->size;
		send_empty_response(c, j->id, PROTO_CODE_GENERIC);
		free(j->root);
		free(j->name);
		free(j);
	}
}

static void
serve_start_waiting(struct conn *c)
{
	struct serve_job	*j;

	while (!c->closing && (j = c->wait_head) != NULL &&
	    serve_can_start(c, j->size)) {
		c->wait_head = j->next;
		if (c->wait_head == NULL)
			c->wait_tail = NULL;
		c->wait_count--;
		serve_start(c, j);
	}
}

/* Is (offset, size, hash) exactly one of the record's blocks? */
static bool
record_has_block(const struct record *r, int64_t offset, int32_t size,
    const uint8_t hash[RECORD_HASH_LEN])
{
	const struct record_block	*b;
	int64_t				 i;

	if (r->block_size <= 0 || offset % r->block_size != 0)
		return false;
	i = offset / r->block_size;
	if (i < 0 || (uint64_t)i >= r->block_count)
		return false;
	b = &r->blocks[i];
	return b->offset == offset && b->size == size &&
	    memcmp(b->hash, hash, RECORD_HASH_LEN) == 0;
}

/* The local record of `name` for a Request, borrowed from c->serve_rec
 * (valid until the next call), or NULL when there is none. */
static const struct record *
serve_record(struct conn *c, int64_t fidx, const char *name)
{
	uint64_t	gen = db_folder_gen(c->env->db, fidx);

	if (c->serve_rec != NULL && c->serve_rec_folder == fidx &&
	    c->serve_rec_gen == gen && strcmp(c->serve_rec->name, name) == 0)
		return c->serve_rec;
	record_free(c->serve_rec);
	c->serve_rec = NULL;
	if (db_file_get(c->env->db, fidx, DB_LOCAL_DEVICE, name,
	    &c->serve_rec) != 0)
		return NULL;
	c->serve_rec_folder = fidx;
	c->serve_rec_gen = gen;
	return c->serve_rec;
}

/* Check a Request against our config and index (bep-brief §10.13). */
static void
handle_request(struct conn *c, const Shoal__Bep__Request *req)
{
	const struct config_folder	*cf;
	struct serve_job		*j;
	const struct record		*r = NULL;
	int64_t				 fidx;
	int32_t				 bs;
	int				 code = PROTO_CODE_NO_ERROR;

	cf = config_folder_find(c->env->cfg, req->folder);
	if (cf == NULL || !cfg_shares(c, cf)) {
		code = PROTO_CODE_GENERIC;
		goto answer;
	}
	if (record_name_internal(req->name)) {
		code = PROTO_CODE_INVALID_FILE;
		goto answer;
	}
	if (db_folder_idx(c->env->db, cf->id, &fidx) != 0) {
		code = PROTO_CODE_GENERIC;
		goto answer;
	}
	r = serve_record(c, fidx, req->name);
	if (r == NULL || r->deleted || r->type != RECORD_TYPE_FILE) {
		code = PROTO_CODE_NO_SUCH_FILE;
		goto answer;
	}
	if (r->invalid || r->local_flags != 0) {
		code = PROTO_CODE_INVALID_FILE;
		goto answer;
	}
	bs = r->block_size > 0 ? r->block_size : RECORD_MIN_BLOCK_SIZE;
	if (req->offset < 0 || req->size < 0 || req->size > bs ||
	    req->offset > r->size || req->size > r->size - req->offset) {
		LOG_INFO("conn", "%s: request outside \"%s\" (offset %lld, size "
		    "%d, file size %lld) refused", c->peer_short, r->name,
		    (long long)req->offset, req->size, (long long)r->size);
		code = PROTO_CODE_INVALID_FILE;
		goto answer;
	}
	if (req->size == 0)
		goto answer;
	if (c->wait_count >= CONN_MAX_QUEUED_REQUESTS) {
		protocol_error(c, "more than %d requests outstanding",
		    CONN_MAX_QUEUED_REQUESTS);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->c = c;
	j->id = req->id;
	j->root = xstrdup(cf->path);
	j->name = xstrdup(req->name);
	j->offset = req->offset;
	j->size = req->size;
	if (req->hash.len == RECORD_HASH_LEN) {
		memcpy(j->hash, req->hash.data, RECORD_HASH_LEN);
		j->check_hash = true;
		if (record_has_block(r, req->offset, req->size, j->hash) &&
		    r->inode != 0) {
			j->trust_meta = true;
			j->file_size = r->size;
			j->mtime_s = r->modified_s;
			j->mtime_ns = r->modified_ns;
			j->inode = r->inode;
		}
	}
	if (c->wait_head == NULL && serve_can_start(c, j->size)) {
		serve_start(c, j);
		return;
	}
	if (c->wait_tail != NULL)
		c->wait_tail->next = j;
	else
		c->wait_head = j;
	c->wait_tail = j;
	c->wait_count++;
	return;
answer:
	send_empty_response(c, req->id, code);
}

/* ---- our requests ---- */

int
conn_request(struct conn *c, const char *folder, const char *name,
    int64_t offset, int32_t size, const uint8_t hash[RECORD_HASH_LEN],
    conn_response_cb cb, void *arg)
{
	return conn_request_flags(c, folder, name, offset, size, hash, 0, cb,
	    arg);
}

int
conn_request_flags(struct conn *c, const char *folder, const char *name,
    int64_t offset, int32_t size, const uint8_t hash[RECORD_HASH_LEN],
    unsigned int flags, conn_response_cb cb, void *arg)
{
	Shoal__Bep__Request	 req = SHOAL__BEP__REQUEST__INIT;
	struct own_request	*slot = NULL;
	size_t			 i;
	int			 rc;

	if (c->closing || c->state != CONN_STATE_ACTIVE)
		return -ENOTCONN;
	if (c->own_count == CONN_MAX_OWN_REQUESTS)
		return -EAGAIN;
	for (i = 0; i < CONN_MAX_OWN_REQUESTS; i++) {
		if (!c->own[i].used) {
			slot = &c->own[i];
			break;
		}
	}
	req.id = c->next_req_id++;
	if (c->next_req_id < 0)
		c->next_req_id = 0;
	req.folder = (char *)folder;
	req.name = (char *)name;
	req.offset = offset;
	req.size = size;
	req.hash.data = (uint8_t *)hash;
	req.hash.len = RECORD_HASH_LEN;
	req.block_no = 0;
	/* The slot is taken only after the send worked: a failed send may
	 * close the connection, and cb must not run when we return an error. */
	rc = send_msg(c, PROTO_REQUEST, &req.base);
	if (rc != 0)
		return rc;
	slot->used = true;
	slot->id = req.id;
	slot->size = size;
	memcpy(slot->hash, hash, RECORD_HASH_LEN);
	slot->deadline_ms = util_now_ms() + CONN_REQUEST_TIMEOUT_MS;
	slot->flags = flags;
	slot->cb = cb;
	slot->arg = arg;
	c->own_count++;
	return 0;
}

static void
handle_response(struct conn *c, Shoal__Bep__Response *resp)
{
	struct own_request	 r;
	uint8_t			 got[RECORD_HASH_LEN];
	size_t			 i;
	int			 status = 0;

	for (i = 0; i < CONN_MAX_OWN_REQUESTS; i++)
		if (c->own[i].used && c->own[i].id == resp->id)
			break;
	if (i == CONN_MAX_OWN_REQUESTS) {
		/* Late answer to a request that timed out. */
		LOG_DEBUG("conn", "%s: response to unknown request %d",
		    c->peer_short, resp->id);
		return;
	}
	r = c->own[i];
	c->own[i].used = false;
	c->own_count--;
	if (resp->code != PROTO_CODE_NO_ERROR)
		status = SH_ENOTFOUND;
	else if (resp->data.len != (size_t)r.size)
		status = SH_EPROTO;
	else if ((r.flags & CONN_REQ_CALLER_VERIFIES) == 0 &&
	    (hash_sha256(resp->data.data, resp->data.len, got) != 0 ||
	    sodium_memcmp(got, r.hash, RECORD_HASH_LEN) != 0))
		status = SH_EPROTO;
	if (status == SH_EPROTO)
		LOG_WARN("conn", "%s: response %d has %zu bytes not matching the "
		    "block hash; discarded", c->peer_short, resp->id,
		    resp->data.len);
	if (status == 0 && (r.flags & CONN_REQ_GIVE_DATA) != 0) {
		uint8_t	*data = resp->data.data;

		/* proto's allocator made it with util_bigbuf_alloc. */
		resp->data.data = NULL;
		resp->data.len = 0;
		r.cb(0, data, (size_t)r.size, r.arg);
		return;
	}
	r.cb(status, status == 0 ? resp->data.data : NULL,
	    status == 0 ? resp->data.len : 0, r.arg);
}

static void
expire_own_requests(struct conn *c)
{
	uint64_t	now = util_now_ms();
	size_t		i;

	for (i = 0; i < CONN_MAX_OWN_REQUESTS && !c->closing; i++) {
		struct own_request r = c->own[i];

		if (!r.used || r.deadline_ms > now)
			continue;
		c->own[i].used = false;
		c->own_count--;
		r.cb(-ETIMEDOUT, NULL, 0, r.arg);
	}
}

/* ---- dispatch ---- */

static void
dispatch(struct conn *c, const struct proto_frame *fr)
{
	struct proto_msg	m;
	struct proto_err	perr;
	char			esc[256];
	int			rc;

	memset(&m, 0, sizeof(m));
	/* Rule (2): before the peer's ClusterConfig only it or Close. */
	if (c->state == CONN_STATE_CONFIG && fr->type != PROTO_CLUSTER_CONFIG &&
	    fr->type != PROTO_CLOSE) {
		protocol_error(c, "%s before ClusterConfig",
		    proto_type_name(fr->type));
		return;
	}
	rc = proto_msg_decode(fr, NULL, &m, &perr);
	if (rc != 0) {
		protocol_error(c, "bad %s: %s", proto_type_name(fr->type),
		    perr.msg);
		return;
	}
	switch (fr->type) {
	case PROTO_CLUSTER_CONFIG:
		handle_cluster_config(c, m.u.cluster_config);
		break;
	case PROTO_INDEX:
		handle_index(c, &m, true);
		break;
	case PROTO_INDEX_UPDATE:
		handle_index(c, &m, false);
		break;
	case PROTO_REQUEST:
		handle_request(c, m.u.request);
		break;
	case PROTO_RESPONSE:
		handle_response(c, m.u.response);
		break;
	case PROTO_DOWNLOAD_PROGRESS:
	case PROTO_PING:
		break;
	case PROTO_CLOSE:
		LOG_INFO("conn", "%s closed the connection: %s", c->peer_short,
		    log_escape(m.u.close->reason != NULL ? m.u.close->reason : "",
		    esc, sizeof(esc)));
		close_internal(c, "closed by peer", false);
		break;
	}
	proto_msg_clear(&m);
}

static void
feed_frames(struct conn *c, const uint8_t *data, size_t len)
{
	struct proto_frame	fr;
	struct proto_err	perr;
	size_t			used;
	int			rc;

	while (len > 0 && !c->closing) {
		rc = proto_decoder_feed(c->dec, data, len, &used, &fr, &perr);
		if (rc < 0) {
			protocol_error(c, "%s", perr.msg);
			return;
		}
		data += used;
		len -= used;
		if (rc == 1)
			dispatch(c, &fr);
		else if (used == 0)
			break;
	}
}

static void
handle_hello(struct conn *c, const uint8_t *data, size_t len)
{
	struct proto_err	perr;
	size_t			used = 0;
	char			n[128], v[64];
	int			rc;

	if (util_buf_append(&c->hello_buf, data, len) != 0) {
		protocol_error(c, "Hello too long");
		return;
	}
	rc = proto_hello_decode((const uint8_t *)c->hello_buf.data,
	    c->hello_buf.len, &used, &c->hello, &perr);
	if (rc == -EAGAIN)
		return;
	if (rc != 0) {
		LOG_WARN("conn", "%s at %s: bad Hello: %s", c->peer_short,
		    c->address, perr.msg);
		close_internal(c, perr.msg, false);
		return;
	}
	c->info.client_name = c->hello.client_name;
	c->info.client_version = c->hello.client_version;
	c->info.device_name = c->hello.device_name;
	LOG_DEBUG("conn", "%s at %s: Hello from %s %s", c->peer_short,
	    c->address, log_escape(c->hello.client_name, n, sizeof(n)),
	    log_escape(c->hello.client_version, v, sizeof(v)));
	rc = c->hooks.on_hello(c, c->arg);
	if (c->closing)
		return;
	if (rc != 0) {
		close_internal(c, "not accepted", false);
		return;
	}
	if (db_device_idx(c->env->db, &c->peer, &c->peer_idx) != 0) {
		close_internal(c, "internal error", false);
		return;
	}
	c->state = CONN_STATE_CONFIG;
	c->info.state = CONN_STATE_CONFIG;
	/* The peer's ClusterConfig must follow within the same deadline. */
	(void)uv_timer_again(&c->hello_timer);
	send_cluster_config(c);
	if (c->closing)
		return;
	/* Bytes after the Hello are already frames. */
	if (c->hello_buf.len > used) {
		struct util_buf rest = c->hello_buf;

		util_buf_init(&c->hello_buf, 0);
		feed_frames(c, (const uint8_t *)rest.data + used,
		    rest.len - used);
		util_buf_free(&rest);
	} else {
		util_buf_free(&c->hello_buf);
	}
}

/* ---- TLS callbacks ---- */

static void
tls_read_cb(struct tls *t, const uint8_t *data, size_t len)
{
	struct conn *c = tls_data(t);

	c->last_read_ms = util_now_ms();
	if (c->closing)
		return;
	if (c->state == CONN_STATE_HELLO)
		handle_hello(c, data, len);
	else
		feed_frames(c, data, len);
}

/* Records that fall inside a frame's body are decrypted straight into the
 * decoder's buffer (tls_read_cb then feeds that same memory, uncopied). */
static uint8_t *
tls_read_dest_cb(struct tls *t, size_t len)
{
	struct conn *c = tls_data(t);

	if (c->closing || c->state == CONN_STATE_HELLO)
		return NULL;
	return proto_decoder_span(c->dec, len);
}

static void
tls_drain_cb(struct tls *t)
{
	struct conn *c = tls_data(t);

	if (c->closing)
		return;
	serve_start_waiting(c);
	if (c->pump_wait_drain) {
		c->pump_wait_drain = false;
		pump(c);
	}
}

static void
tls_close_cb(struct tls *t)
{
	struct conn *c = tls_data(t);

	if (!c->closing) {
		int st = tls_status(t);

		LOG_INFO("conn", "%s at %s: connection lost: %s", c->peer_short,
		    c->address, st == UV_EOF ? "closed by peer" :
		    sh_strerror(st));
		close_internal(c, st == UV_EOF ? "closed by peer" :
		    sh_strerror(st), false);
	}
	tls_wire_bytes(t, &c->info.in_bytes, &c->info.out_bytes);
	c->tls_closed = true;
	c->tls = NULL;
	maybe_free(c);
}

static void
tls_handshake_cb(struct tls *t, int status)
{
	struct conn	*c = tls_data(t);
	char		 idstr[IDENTITY_ID_STR_SIZE];
	uint8_t		*buf = NULL;
	size_t		 len;
	int		 rc;

	if (status != 0) {
		LOG_INFO("conn", "TLS handshake with %s failed: %s", c->address,
		    sh_strerror(status));
		return;
	}
	rc = tls_peer_id(t, &c->peer);
	if (rc != 0) {
		close_internal(c, "no peer certificate", false);
		return;
	}
	c->info.peer = c->peer;
	c->info.established_ms = util_now_ms();
	identity_short_format(identity_short_id(&c->peer), c->peer_short);
	if (identity_id_equal(&c->peer, &c->env->self)) {
		LOG_INFO("conn", "connected to ourselves at %s; closing",
		    c->address);
		close_internal(c, "connected to self", false);
		return;
	}
	identity_id_format(&c->peer, idstr);
	LOG_DEBUG("conn", "TLS with %s at %s: %s %s, ALPN %s", idstr,
	    c->address, tls_version_name(t), tls_ciphersuite_name(t),
	    tls_alpn(t) != NULL ? tls_alpn(t) : "none");
	/* Hello goes out at once, before reading the peer's (§4). The name is
	 * sent only to devices we know, as Syncthing does. */
	rc = proto_hello_encode(config_device_find(c->env->cfg, &c->peer) != NULL ?
	    c->env->cfg->name : "", "shoal", shoal_version, &buf, &len);
	if (rc != 0) {
		close_internal(c, "cannot encode Hello", false);
		return;
	}
	c->state = CONN_STATE_HELLO;
	c->info.state = CONN_STATE_HELLO;
	if (send_frame(c, buf, len) != 0) {
		close_internal(c, "cannot send Hello", false);
		return;
	}
	/* The Hello deadline counts from the end of the handshake. */
	(void)uv_timer_again(&c->hello_timer);
}

/* ---- timers ---- */

static void
hello_timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->state == CONN_STATE_HELLO || c->state == CONN_STATE_CONFIG ||
	    c->state == CONN_STATE_TLS) {
		LOG_INFO("conn", "%s at %s: no %s within %d s; closing",
		    c->peer_short[0] != '\0' ? c->peer_short : "peer", c->address,
		    c->state == CONN_STATE_CONFIG ? "ClusterConfig" : "Hello",
		    CONN_HELLO_TIMEOUT_MS / 1000);
		close_internal(c, "timeout waiting for the peer", true);
	}
}

static void
ping_timer_cb(uv_timer_t *t)
{
	struct conn	*c = t->data;
	uint64_t	 now = util_now_ms();
	uint8_t		*buf = NULL;
	size_t		 len;

	if (c->closing)
		return;
	if (now - c->last_read_ms >= CONN_READ_TIMEOUT_MS) {
		LOG_INFO("conn", "%s at %s: nothing received for %d s; closing",
		    c->peer_short, c->address, CONN_READ_TIMEOUT_MS / 1000);
		close_internal(c, "read timeout", true);
		return;
	}
	expire_own_requests(c);
	if (c->closing)
		return;
	if (c->state == CONN_STATE_ACTIVE &&
	    now - c->last_write_ms >= CONN_PING_IDLE_MS &&
	    proto_ping_encode(&buf, &len) == 0)
		(void)send_frame(c, buf, len);
}

/* ---- lifecycle ---- */

int
conn_open(const struct conn_env *env, uv_tcp_t *tcp, enum tls_role role,
    const char *address, const struct conn_hooks *hooks, void *arg,
    struct conn **out)
{
	static const struct tls_callbacks cbs = {
		.on_handshake = tls_handshake_cb,
		.on_read = tls_read_cb,
		.read_dest = tls_read_dest_cb,
		.on_drain = tls_drain_cb,
		.on_close = tls_close_cb,
	};
	struct conn	*c;
	int		 rc;

	c = xcalloc(1, sizeof(*c));
	c->env = env;
	c->hooks = *hooks;
	c->arg = arg;
	c->outgoing = (role == TLS_ROLE_CLIENT);
	c->address = xstrdup(address);
	snprintf(c->peer_short, sizeof(c->peer_short), "?");
	util_buf_init(&c->hello_buf, CONN_HELLO_BUF_MAX);
	c->dec = proto_decoder_new(NULL);
	c->last_read_ms = c->last_write_ms = util_now_ms();
	c->info.address = c->address;
	c->info.client_name = "";
	c->info.client_version = "";
	c->info.device_name = "";
	c->info.outgoing = c->outgoing;
	rc = uv_timer_init(env->loop, &c->hello_timer);
	if (rc == 0)
		rc = uv_timer_init(env->loop, &c->ping_timer);
	if (rc == 0)
		rc = uv_timer_init(env->loop, &c->pump_timer);
	/* uv_timer_init cannot fail on Linux; if it ever did we would leak
	 * the initialised timers' registration, so treat it as fatal. */
	if (rc != 0) {
		LOG_ERROR("conn", "uv_timer_init: %s", uv_strerror(rc));
		abort();
	}
	c->hello_timer.data = c->ping_timer.data = c->pump_timer.data = c;
	c->handles = 3;
	rc = tls_open(env->tls, tcp, role, &cbs, c, &c->tls);
	if (rc != 0) {
		/* No TLS callback will run: close the timers and free here once
		 * their close callbacks have run (on_closed is not called). */
		c->hooks.on_closed = NULL;
		c->closing = true;
		c->tls_closed = true;
		uv_close((uv_handle_t *)&c->hello_timer, timer_close_cb);
		uv_close((uv_handle_t *)&c->ping_timer, timer_close_cb);
		uv_close((uv_handle_t *)&c->pump_timer, timer_close_cb);
		return rc;
	}
	/* The handshake and Hello share the Hello deadline. */
	rc = uv_timer_start(&c->hello_timer, hello_timer_cb,
	    CONN_HELLO_TIMEOUT_MS, CONN_HELLO_TIMEOUT_MS);
	if (rc == 0)
		rc = uv_timer_start(&c->ping_timer, ping_timer_cb,
		    CONN_PING_CHECK_MS, CONN_PING_CHECK_MS);
	if (rc != 0)
		LOG_WARN("conn", "timer start: %s", uv_strerror(rc));
	*out = c;
	return 0;
}

/* ---- queries ---- */

void
conn_get_info(const struct conn *c, struct conn_info *out)
{
	*out = c->info;
	out->state = c->state;
	/* Wire bytes from TLS while it lives; its last figures after. */
	if (c->tls != NULL)
		tls_wire_bytes(c->tls, &out->in_bytes, &out->out_bytes);
}

const struct device_id *
conn_peer(const struct conn *c)
{
	return &c->peer;
}

enum conn_state
conn_state(const struct conn *c)
{
	return c->state;
}

void *
conn_data(const struct conn *c)
{
	return c->arg;
}

const char *
conn_close_reason(const struct conn *c)
{
	return c->close_reason != NULL ? c->close_reason : "";
}

bool
conn_folder_shared(const struct conn *c, const char *folder_id)
{
	size_t	i;

	for (i = 0; i < c->folder_count; i++)
		if (strcmp(c->folders[i].id, folder_id) == 0)
			return folder_flows(c, &c->folders[i]);
	return false;
}

bool
conn_folder_index_sent(const struct conn *c, int64_t folder_idx)
{
	struct conn	*mc = (struct conn *)c;
	struct conn_folder *f = find_cfolder_idx(mc, folder_idx);

	if (f == NULL || !folder_flows(c, f))
		return true;
	return f->sent_seq >= local_seq(mc, folder_idx);
}

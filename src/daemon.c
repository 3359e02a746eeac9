/* SPDX-License-Identifier: MIT */
/*
 * `shoal serve`. One libuv loop thread owns the control API, the folders and
 * config reloading (design.md §2); blocking work runs on the thread pool
 * inside the folder/scan modules.
 *
 * Config reload: the CLI rewrites the config file atomically (rename), so a
 * one-second uv_fs_poll on it sees a new inode/mtime and we reload; the CLI
 * also POSTs /rest/config/reload so changes usually apply at once. A file
 * that fails to parse is reported ("FILE:LINE: reason") and the last good
 * config stays in force.
 *
 * Shutdown: SIGINT/SIGTERM set `stopping`, close every handle we own, and
 * let uv_run return once their close callbacks have run; then the index is
 * closed and HOME/api.addr removed.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "shoal/api.h"
#include "shoal/buildinfo.h"
#include "shoal/config.h"
#include "shoal/conn.h"
#include "shoal/daemon.h"
#include "shoal/disco.h"
#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/hash.h"
#include "shoal/identity.h"
#include "shoal/intro.h"
#include "shoal/log.h"
#include "shoal/model.h"
#include "shoal/net.h"
#include "shoal/tls.h"
#include "shoal/util.h"

#define DAEMON_CONFIG_POLL_MS	1000
#define DAEMON_TRIM_MS		1000
/* How long a replaced control API listener keeps answering. */
#define DAEMON_API_RETIRE_MS	1000
#define DAEMON_FETCH_MAX	(64 * 1024 * 1024)

/*
 * A diagnostic fetch (POST /rest/debug/fetch): request every block of a
 * peer's file through the normal request path, which verifies each block's
 * SHA-256, and keep the result in memory. It exercises block requests end
 * to end before the puller uses them; tests compare the digest.
 */
struct daemon_fetch {
	struct daemon		*d;
	struct device_id	 peer;
	char			*folder;	/* owned */
	struct record		*rec;		/* owned: the peer's record */
	size_t			 next;		/* next block to request */
	size_t			 ok;
	size_t			 failed;
	bool			 done;
	bool			 in_flight;
	struct util_buf		 data;
};

struct daemon {
	uv_loop_t		 loop;
	char			*home;		/* borrowed from the caller */
	char			*config_path;	/* owned */
	char			*addr_path;	/* owned; HOME/api.addr */
	struct config		*cfg;		/* owned; last good config */
	struct identity		*ident;		/* owned */
	struct db		*db;		/* owned */
	struct api		*api;		/* owned; closed async */
	struct api		*api_old;	/* owned; replaced, closing soon */
	uv_timer_t		 api_timer;	/* closes api_old */
	char			*api_key;	/* owned; wiped on free */
	struct tls_config	*tls;		/* owned; freed after the loop */
	struct conn_env		 env;		/* env.cfg follows cfg */
	struct net		*net;		/* owned; closed async */
	struct disco		*disco;		/* owned; NULL when off */
	uv_signal_t		 sigint;
	uv_signal_t		 sigterm;
	uv_fs_poll_t		 cfg_poll;
	uv_timer_t		 trim;		/* util_bigbuf_trim */
	uv_timer_t		 intro_timer;	/* applies intro_pending */
	struct intro_view	**intro_pending; /* owned; one per introducer */
	size_t			 intro_count;
	struct folder		**folders;	/* owned array of owned folders */
	size_t			 folder_count;
	uint64_t		 start_ms;
	bool			 stopping;
	struct daemon_fetch	*fetch;		/* owned; diagnostics, see h_fetch */
};

int
daemon_lock_home(const char *home)
{
	return util_lock_file(home, DAEMON_LOCK_FILE, true);
}

static struct folder *
find_folder(struct daemon *d, const char *id, size_t *index)
{
	size_t	i;

	for (i = 0; i < d->folder_count; i++) {
		if (strcmp(folder_id(d->folders[i]), id) == 0) {
			if (index != NULL)
				*index = i;
			return d->folders[i];
		}
	}
	return NULL;
}

/* A local change was committed: peers get it in their next batch, at once
 * when a scan or pull pass has ended (r == NULL). */
static void
on_folder_change(struct folder *f, const struct record *r, void *arg)
{
	struct daemon *d = arg;

	if (d->net != NULL)
		net_index_kick(d->net, folder_idx(f), r == NULL);
}

/* The puller asks for a connection to a device by its index number. */
static struct conn *
peer_for(int64_t device_idx, void *arg)
{
	struct daemon		*d = arg;
	struct device_id	 id;

	if (d->net == NULL || db_device_id(d->db, device_idx, &id) != 0)
		return NULL;
	return net_find(d->net, &id);
}

/* A peer's index changed (folder_idx >= 0) or peers came and went (-1). */
static void
on_net_change(struct net *n, int64_t fidx, void *arg)
{
	struct daemon	*d = arg;
	size_t		 i;

	(void)n;
	for (i = 0; i < d->folder_count; i++)
		if (fidx < 0 || folder_idx(d->folders[i]) == fidx)
			folder_remote_changed(d->folders[i]);
}

static void
start_folder(struct daemon *d, const struct config_folder *cf)
{
	struct folder	*f = NULL;
	int		 rc;

	rc = folder_open(&d->loop, d->db, cf,
	    identity_short_id(identity_device_id(d->ident)), on_folder_change, d,
	    &f);
	if (rc != 0) {
		LOG_ERROR("daemon", "folder \"%s\": cannot start: %s", cf->id,
		    sh_strerror(rc));
		return;
	}
	folder_set_peer_lookup(f, peer_for, d);
	d->folders = xreallocarray(d->folders, d->folder_count + 1,
	    sizeof(*d->folders));
	d->folders[d->folder_count++] = f;
	LOG_INFO("daemon", "folder \"%s\" started at \"%s\" (%s)", cf->id,
	    cf->path, config_folder_type_name(cf->type));
}

/* Bring running folders in line with d->cfg. */
static void
apply_folders(struct daemon *d)
{
	size_t	i;

	/* Stop folders that are gone. */
	for (i = 0; i < d->folder_count; ) {
		if (config_folder_find(d->cfg, folder_id(d->folders[i])) == NULL) {
			LOG_INFO("daemon", "folder \"%s\" removed",
			    folder_id(d->folders[i]));
			folder_close(d->folders[i]);
			d->folders[i] = d->folders[--d->folder_count];
			continue;
		}
		i++;
	}
	for (i = 0; i < d->cfg->folder_count; i++) {
		const struct config_folder *cf = &d->cfg->folders[i];
		struct folder *f = find_folder(d, cf->id, NULL);

		if (f == NULL)
			start_folder(d, cf);
		else
			folder_reconfigure(f, cf);
	}
}

/*
 * low_priority: SCHED_BATCH tells the kernel these threads want throughput,
 * not wake-up latency, so a pool thread the loop wakes queues behind the
 * loop instead of preempting it (a user's programs still preempt us when
 * they wake). Measured on 2 cores, two nodes syncing 1 GiB: about
 * 4 % faster. A failure only costs that, so it is logged and ignored.
 */
static void
apply_priority(bool on)
{
	int	rc;

	rc = util_sched_batch(on);
	if (rc != 0)
		LOG_WARN("daemon", "cannot set the scheduling policy to %s: %s",
		    on ? "SCHED_BATCH (low_priority)" : "SCHED_OTHER",
		    sh_strerror(rc));
}

static void	start_discovery(struct daemon *d);
static void	swap_api(struct daemon *d, const char *addr);

/* Reload the config file; keeps the old one on any error. 0 or error. */
static int
reload_config(struct daemon *d, char *err, size_t err_size)
{
	struct config	*cfg = NULL;
	int		 rc;
	bool		 relisten;

	rc = config_load(d->config_path, &cfg, err, err_size);
	if (rc != 0) {
		LOG_ERROR("config", "%s (keeping the last good config)", err);
		return rc;
	}
	if (strcmp(cfg->api, d->cfg->api) != 0)
		swap_api(d, cfg->api);
	if (cfg->low_priority != d->cfg->low_priority)
		apply_priority(cfg->low_priority);
	relisten = strcmp(cfg->listen, d->cfg->listen) != 0 ||
	    cfg->announce_lan != d->cfg->announce_lan ||
	    cfg->listen_lan != d->cfg->listen_lan;
	/* Everything that borrows the config moves to the new one before the
	 * old one is freed; folder_reconfigure copies what it keeps. */
	{
		struct config *old = d->cfg;

		d->cfg = cfg;
		d->env.cfg = cfg;
		if (d->net != NULL)
			net_reconfigure(d->net, cfg);
		apply_folders(d);
		config_free(old);
	}
	/* Discovery announces the address we listen on, with the flags the
	 * config has: start it again when either changed. */
	if (relisten && d->net != NULL) {
		disco_close(d->disco);
		d->disco = NULL;
		start_discovery(d);
	}
	LOG_INFO("config", "reloaded \"%s\" (%zu devices, %zu folders)",
	    d->config_path, cfg->device_count, cfg->folder_count);
	return 0;
}

/* ---- introductions (bep-brief §12) ---- */

#define DAEMON_INTRO_RETRY_MS	100

static void
intro_log(const char *what, void *arg)
{
	(void)arg;
	LOG_INFO("intro", "%s", what);
}

/*
 * Apply the pending introducers' views to the config file, under the
 * lock the CLI takes for its edits, then reload it like any edit. While a
 * CLI holds the lock, look again shortly: the views wait (the latest per
 * introducer).
 */
static void
intro_timer_cb(uv_timer_t *t)
{
	struct daemon	*d = t->data;
	struct config	*cfg = NULL;
	char		 err[CONFIG_ERR_SIZE];
	size_t		 i;
	int		 lock, changes = 0, rc;

	lock = util_lock_file(d->home, CONFIG_LOCK_FILE, true);
	if (lock == -EWOULDBLOCK && uv_timer_start(t, intro_timer_cb,
	    DAEMON_INTRO_RETRY_MS, 0) == 0)
		return;
	if (lock < 0) {
		LOG_WARN("intro", "cannot lock the config for introductions: "
		    "%s", sh_strerror(lock));
		goto out;
	}
	if (config_load(d->config_path, &cfg, err, sizeof(err)) != 0) {
		LOG_WARN("intro", "introductions not applied: %s", err);
		goto out;
	}
	for (i = 0; i < d->intro_count; i++)
		changes += intro_apply(cfg, &d->env.self, d->intro_pending[i],
		    intro_log, d);
	if (changes > 0) {
		rc = config_save(cfg, d->config_path);
		if (rc != 0)
			LOG_ERROR("intro", "cannot write \"%s\": %s",
			    d->config_path, sh_strerror(rc));
		else
			(void)reload_config(d, err, sizeof(err));
	}
out:
	for (i = 0; i < d->intro_count; i++)
		intro_view_free(d->intro_pending[i]);
	d->intro_count = 0;
	config_free(cfg);
	if (lock >= 0)
		close(lock);
}

/* An introducer's ClusterConfig arrived (net.c passes the view on). */
static void
on_introduction(struct net *n, struct intro_view *v, void *arg)
{
	struct daemon	*d = arg;
	size_t		 i;

	(void)n;
	if (d->stopping) {
		intro_view_free(v);
		return;
	}
	for (i = 0; i < d->intro_count; i++) {
		if (identity_id_equal(&d->intro_pending[i]->introducer,
		    &v->introducer)) {
			intro_view_free(d->intro_pending[i]);
			d->intro_pending[i] = v;
			break;
		}
	}
	if (i == d->intro_count) {
		d->intro_pending = xreallocarray(d->intro_pending,
		    d->intro_count + 1, sizeof(*d->intro_pending));
		d->intro_pending[d->intro_count++] = v;
	}
	if (!uv_is_active((uv_handle_t *)&d->intro_timer) &&
	    uv_timer_start(&d->intro_timer, intro_timer_cb, 0, 0) != 0)
		LOG_WARN("intro", "cannot schedule introductions");
}

/* Buffers kept for block transfers go back to the system once the
 * transfers have been quiet for a tick. So do free pages inside the heap:
 * glibc returns only its top, and after pulling 10,000 small files 1.3
 * MiB of free chunks stayed resident under whatever came next (peak RSS
 * over tests/bench/sync 20.1 -> 19.0 MiB). A walk of a heap of a few MiB
 * once a second costs microseconds. */
static void
trim_cb(uv_timer_t *t)
{
	(void)t;
	util_bigbuf_trim();
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

static void
cfg_poll_cb(uv_fs_poll_t *h, int status, const uv_stat_t *prev,
    const uv_stat_t *cur)
{
	struct daemon	*d = h->data;
	char		 err[CONFIG_ERR_SIZE];

	(void)prev;
	(void)cur;
	if (d->stopping)
		return;
	if (status < 0) {
		LOG_WARN("config", "cannot stat \"%s\": %s", d->config_path,
		    uv_strerror(status));
		return;
	}
	if (reload_config(d, err, sizeof(err)) != 0)
		return;
}

/* ---- control API handlers ---- */

/* Connected peers sharing the folder, with their completion; clears
 * *all_sent when one of them has not been sent our whole index yet. */
static json_t *
folder_peers_json(struct daemon *d, const struct config_folder *cf,
    int64_t fidx, bool *all_sent)
{
	json_t	*arr = json_array();
	size_t	 i;

	for (i = 0; i < cf->share_count; i++) {
		struct conn *c = d->net != NULL ?
		    net_find(d->net, &cf->shares[i]) : NULL;
		char idstr[IDENTITY_ID_STR_SIZE];
		int64_t didx;
		double pct = 0.0;

		if (c == NULL || !conn_folder_shared(c, cf->id))
			continue;
		if (!conn_folder_index_sent(c, fidx))
			*all_sent = false;
		if (db_device_idx(d->db, &cf->shares[i], &didx) != 0 ||
		    db_completion_cached(d->db, fidx, didx, &pct) != 0)
			pct = 0.0;
		identity_id_format(&cf->shares[i], idstr);
		json_array_append_new(arr, json_pack("{s:s, s:f}", "device_id",
		    idstr, "completion", pct));
	}
	return arr;
}

static json_t *
folder_json(struct daemon *d, struct folder *f)
{
	const struct config_folder	*cf = folder_config(f);
	struct folder_status		 st;
	struct db_global_counts		 gc;
	json_t				*o, *scan, *peers;
	char				*full_msg = NULL;
	uint64_t			 ign_items, ign_bytes;
	bool				 idle, counted, all_sent = true;

	folder_get_status(f, &st);
	peers = folder_peers_json(d, cf, folder_idx(f), &all_sent);
	/* Polled often: cached, and never stale towards "in sync" (db.h). */
	counted = db_global_counts_cached(d->db, folder_idx(f), &gc) == 0;
	if (!counted)
		memset(&gc, 0, sizeof(gc));
	/* Ignored names are needed in the index's eyes, never pulled. */
	if (counted && folder_ignored_need(f, &ign_items, &ign_bytes)) {
		gc.need_items -= ign_items < gc.need_items ? ign_items :
		    gc.need_items;
		gc.need_bytes -= ign_bytes < gc.need_bytes ? ign_bytes :
		    gc.need_bytes;
	}
	idle = (st.state == FOLDER_STATE_IDLE) && all_sent && counted &&
	    gc.need_items == 0;
	/* A full index disk stalls every folder; each says so (unless it
	 * has a reason of its own to show). */
	if (st.error == NULL && db_disk_full(d->db)) {
		full_msg = xasprintf("the index database in \"%s\" cannot "
		    "grow: its disk is full; free some space there (nothing "
		    "stored is lost, and syncing resumes then)", d->home);
		st.error = full_msg;
	}
	scan = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}",
	    "running", st.scan_running,
	    "entries_seen", (json_int_t)st.scan.entries_seen,
	    "files_hashed", (json_int_t)st.scan.files_hashed,
	    "bytes_hashed", (json_int_t)st.scan.bytes_hashed,
	    "bytes_to_hash", (json_int_t)st.scan.bytes_to_hash,
	    "completed", (json_int_t)st.scans_completed);
	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:I, s:b, s:o, s:o, s:b, s:b, s:I}",
	    "id", cf->id, "path", cf->path,
	    "type", config_folder_type_name(cf->type),
	    "state", folder_state_name(st.state),
	    "error", st.error != NULL ? json_string(st.error) : json_null(),
	    "local_files", (json_int_t)st.local_files,
	    "local_bytes", (json_int_t)st.local_bytes,
	    "local_directories", (json_int_t)st.local_directories,
	    "global_files", (json_int_t)gc.files,
	    "global_bytes", (json_int_t)gc.bytes,
	    "need_files", (json_int_t)gc.need_items,
	    "need_bytes", (json_int_t)gc.need_bytes,
	    "in_sync", idle,
	    "peers", peers,
	    "scan", scan,
	    "watching", st.watching,
	    "watch_degraded", st.watch_degraded,
	    "sequence", (json_int_t)st.local_sequence);
	free(full_msg);
	json_object_set_new(o, "receive_only_changed",
	    json_integer((json_int_t)st.receive_only_changed));
	json_object_set_new(o, "pull", json_pack("{s:b, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I}", "running", st.pull_running,
	    "files_done", (json_int_t)st.pull.files_done,
	    "files_failed", (json_int_t)st.pull.files_failed,
	    "conflicts", (json_int_t)st.pull.conflicts,
	    "versions_kept", (json_int_t)st.pull.versions_kept,
	    "bytes_network", (json_int_t)st.pull.bytes_network,
	    "bytes_local", (json_int_t)st.pull.bytes_local,
	    "bytes_reused", (json_int_t)st.pull.bytes_reused,
	    "bytes_direct", (json_int_t)st.pull.bytes_direct,
	    "completed", (json_int_t)st.pulls_completed));
	return o;
}

static int
h_status(const struct api_request *req, json_t **resp, void *arg)
{
	struct daemon	*d = arg;
	char		 idstr[IDENTITY_ID_STR_SIZE];
	json_t		*folders, *peers, *o;
	size_t		 i;

	(void)req;
	identity_id_format(identity_device_id(d->ident), idstr);
	folders = json_array();
	for (i = 0; i < d->cfg->folder_count; i++) {
		struct folder *f = find_folder(d, d->cfg->folders[i].id, NULL);

		if (f != NULL)
			json_array_append_new(folders, folder_json(d, f));
	}
	peers = net_peers_json(d->net);
	o = json_pack("{s:s, s:s, s:s, s:[s], s:s, s:I, s:o, s:o, s:o}",
	    "device_id", idstr, "name", d->cfg->name, "version", shoal_version,
	    "listen", net_listen_addr(d->net), "api", api_bound_addr(d->api),
	    "uptime_s", (json_int_t)((util_now_ms() - d->start_ms) / 1000),
	    "folders", folders, "peers", peers,
	    "pending_devices", net_pending_json(d->net));
	if (o != NULL)
		json_object_set_new(o, "discovered", d->disco != NULL ?
		    disco_discovered_json(d->disco) : json_array());
	*resp = o;
	return 200;
}

static int
h_scan(const struct api_request *req, json_t **resp, void *arg)
{
	struct daemon	*d = arg;
	struct folder	*f;
	char		*id;
	size_t		 i;

	id = api_query_param(req->query, "folder");
	if (id == NULL) {
		for (i = 0; i < d->folder_count; i++)
			folder_request_scan(d->folders[i], NULL);
		*resp = json_pack("{s:b}", "ok", 1);
		return 200;
	}
	f = find_folder(d, id, NULL);
	if (f == NULL) {
		*resp = json_pack("{s:s+}", "error", "unknown folder ", id);
		free(id);
		return 404;
	}
	free(id);
	folder_request_scan(f, NULL);
	*resp = json_pack("{s:b}", "ok", 1);
	return 200;
}

/* Shared by override and revert: find the folder named in the query. */
static struct folder *
query_folder(struct daemon *d, const struct api_request *req, json_t **resp,
    int *status)
{
	struct folder	*f;
	char		*id;

	id = api_query_param(req->query, "folder");
	if (id == NULL) {
		*resp = json_pack("{s:s}", "error", "missing folder=ID");
		*status = 400;
		return NULL;
	}
	f = find_folder(d, id, NULL);
	if (f == NULL) {
		*resp = json_pack("{s:s+}", "error", "unknown folder ", id);
		*status = 404;
	}
	free(id);
	return f;
}

static int
h_override(const struct api_request *req, json_t **resp, void *arg)
{
	struct folder	*f;
	size_t		 n = 0;
	int		 status = 200, rc;

	f = query_folder(arg, req, resp, &status);
	if (f == NULL)
		return status;
	rc = folder_override(f, &n);
	if (rc == -EINVAL) {
		*resp = json_pack("{s:s}", "error", "override is for send-only "
		    "folders");
		return 409;
	}
	if (rc != 0) {
		*resp = json_pack("{s:s}", "error", sh_strerror(rc));
		return 500;
	}
	*resp = json_pack("{s:I}", "overridden", (json_int_t)n);
	return 200;
}

static int
h_revert(const struct api_request *req, json_t **resp, void *arg)
{
	struct folder	*f;
	size_t		 n = 0, kept = 0;
	int		 status = 200, rc;

	f = query_folder(arg, req, resp, &status);
	if (f == NULL)
		return status;
	rc = folder_revert(f, &n, &kept);
	if (rc == -EINVAL) {
		*resp = json_pack("{s:s}", "error", "revert is for receive-only "
		    "folders");
		return 409;
	}
	if (rc != 0) {
		*resp = json_pack("{s:s}", "error", sh_strerror(rc));
		return 500;
	}
	*resp = json_pack("{s:I, s:I}", "reverted", (json_int_t)n, "kept",
	    (json_int_t)kept);
	return 200;
}

static int
h_reload(const struct api_request *req, json_t **resp, void *arg)
{
	struct daemon	*d = arg;
	char		 err[CONFIG_ERR_SIZE];

	(void)req;
	if (reload_config(d, err, sizeof(err)) != 0) {
		*resp = json_pack("{s:s}", "error", err);
		return 400;
	}
	*resp = json_pack("{s:b}", "ok", 1);
	return 200;
}

static void fetch_next(struct daemon_fetch *f);

static void
fetch_free(struct daemon_fetch *f)
{
	if (f == NULL)
		return;
	free(f->folder);
	record_free(f->rec);
	util_buf_free(&f->data);
	free(f);
}

static void
fetch_response(int status, uint8_t *data, size_t len, void *arg)
{
	struct daemon_fetch *f = arg;

	f->in_flight = false;
	if (status == 0 && util_buf_append(&f->data, data, len) == 0) {
		f->ok++;
	} else {
		f->failed++;
		LOG_INFO("daemon", "fetch: block %zu of \"%s\": %s", f->next,
		    f->rec->name, sh_strerror(status));
	}
	f->next++;
	if (f->d->stopping || f->d->fetch != f) {
		/* Replaced or shutting down: nobody will look at it again. */
		if (f->d->fetch != f)
			fetch_free(f);
		return;
	}
	fetch_next(f);
}

static void
fetch_next(struct daemon_fetch *f)
{
	const struct record_block	*b;
	struct conn			*c;
	int				 rc;

	if (f->next >= f->rec->block_count) {
		f->done = true;
		return;
	}
	c = net_find(f->d->net, &f->peer);
	if (c == NULL) {
		f->failed += f->rec->block_count - f->next;
		f->done = true;
		return;
	}
	b = &f->rec->blocks[f->next];
	rc = conn_request(c, f->folder, f->rec->name, b->offset, b->size,
	    b->hash, fetch_response, f);
	if (rc != 0) {
		f->failed += f->rec->block_count - f->next;
		f->done = true;
		return;
	}
	f->in_flight = true;
}

static int
h_fetch_start(const struct api_request *req, json_t **resp, void *arg)
{
	struct daemon		*d = arg;
	struct daemon_fetch	*f = NULL;
	struct device_id	 peer;
	char			*dev = NULL, *folder = NULL, *name = NULL;
	int64_t			 fidx, didx;
	int			 status = 400;

	dev = api_query_param(req->query, "device");
	folder = api_query_param(req->query, "folder");
	name = api_query_param(req->query, "name");
	if (dev == NULL || folder == NULL || name == NULL ||
	    identity_id_parse(dev, &peer, NULL, 0) != 0) {
		*resp = json_pack("{s:s}", "error", "want device, folder, name");
		goto out;
	}
	f = xcalloc(1, sizeof(*f));
	f->d = d;
	f->peer = peer;
	util_buf_init(&f->data, DAEMON_FETCH_MAX);
	if (db_folder_idx(d->db, folder, &fidx) != 0 ||
	    db_device_idx(d->db, &peer, &didx) != 0 ||
	    db_file_get(d->db, fidx, didx, name, &f->rec) != 0) {
		*resp = json_pack("{s:s}", "error", "no such file from that device");
		status = 404;
		goto out;
	}
	if (f->rec->size > DAEMON_FETCH_MAX) {
		*resp = json_pack("{s:s}", "error", "file too large to fetch");
		goto out;
	}
	f->folder = folder;
	folder = NULL;
	/* A fetch still waiting for a response frees itself when it ends. */
	if (d->fetch != NULL && !d->fetch->in_flight)
		fetch_free(d->fetch);
	d->fetch = f;
	f = NULL;
	fetch_next(d->fetch);
	*resp = json_pack("{s:b}", "ok", 1);
	status = 200;
out:
	fetch_free(f);
	free(dev);
	free(folder);
	free(name);
	return status;
}

static int
h_fetch_status(const struct api_request *req, json_t **resp, void *arg)
{
	struct daemon	*d = arg;
	struct daemon_fetch *f = d->fetch;
	uint8_t		 sum[RECORD_HASH_LEN];
	char		 hex[2 * RECORD_HASH_LEN + 1] = "";

	(void)req;
	if (f == NULL) {
		*resp = json_pack("{s:s}", "error", "no fetch started");
		return 404;
	}
	if (f->done && f->failed == 0 &&
	    hash_sha256(f->data.data != NULL ? f->data.data : "", f->data.len,
	    sum) == 0)
		util_hex(sum, sizeof(sum), hex);
	*resp = json_pack("{s:b, s:I, s:I, s:I, s:s}", "done", f->done,
	    "blocks_ok", (json_int_t)f->ok, "blocks_failed",
	    (json_int_t)f->failed, "bytes", (json_int_t)f->data.len,
	    "sha256", hex);
	return 200;
}

/* ---- lifecycle ---- */

static void
noop_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void
disco_seen(const struct device_id *id, const char *const *addrs,
    size_t count, void *arg)
{
	struct daemon	*d = arg;

	if (d->net != NULL)
		if (net_set_dynamic_addresses(d->net, id, addrs, count) != 0)
			LOG_DEBUG("daemon", "discovered an unknown device");
}

/*
 * LAN discovery (bep-brief §15), when either direction is on. A failure
 * to start it is not fatal: static addresses still work.
 */
static void
start_discovery(struct daemon *d)
{
	struct disco_params	 dp;
	const char		*u[1];

	if (!d->cfg->announce_lan && !d->cfg->listen_lan) {
		LOG_INFO("daemon", "LAN discovery is off");
		return;
	}
	memset(&dp, 0, sizeof(dp));
	dp.self = d->env.self;
	dp.announce = d->cfg->announce_lan;
	dp.listen = d->cfg->listen_lan;
	dp.on_seen = disco_seen;
	dp.arg = d;
	if (disco_open(&d->loop, &dp, &d->disco) != 0) {
		LOG_WARN("daemon", "LAN discovery unavailable; devices need "
		    "static addresses");
		d->disco = NULL;
		return;
	}
	u[0] = net_listen_addr(d->net);
	if (disco_set_addresses(d->disco, u, 1) != 0)
		LOG_WARN("daemon", "cannot announce %s on the LAN", u[0]);
}

static void
stop(struct daemon *d, const char *why)
{
	size_t	i;

	if (d->stopping)
		return;
	d->stopping = true;
	LOG_INFO("daemon", "shutting down (%s)", why);
	for (i = 0; i < d->folder_count; i++)
		folder_close(d->folders[i]);
	d->folder_count = 0;
	disco_close(d->disco);
	d->disco = NULL;
	if (d->net != NULL) {
		net_close(d->net);
		d->net = NULL;
	}
	if (d->api != NULL) {
		api_close(d->api);
		d->api = NULL;
	}
	api_close(d->api_old);
	d->api_old = NULL;
	uv_close((uv_handle_t *)&d->api_timer, noop_close_cb);
	uv_close((uv_handle_t *)&d->sigint, noop_close_cb);
	uv_close((uv_handle_t *)&d->sigterm, noop_close_cb);
	uv_close((uv_handle_t *)&d->cfg_poll, noop_close_cb);
	uv_close((uv_handle_t *)&d->trim, noop_close_cb);
	uv_close((uv_handle_t *)&d->intro_timer, noop_close_cb);
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void
add_routes(struct daemon *d, struct api *a)
{
	api_route(a, "GET", "/rest/status", h_status, d);
	api_route(a, "POST", "/rest/scan", h_scan, d);
	api_route(a, "POST", "/rest/config/reload", h_reload, d);
	api_route(a, "POST", "/rest/folder/override", h_override, d);
	api_route(a, "POST", "/rest/folder/revert", h_revert, d);
	api_route(a, "POST", "/rest/debug/fetch", h_fetch_start, d);
	api_route(a, "GET", "/rest/debug/fetch", h_fetch_status, d);
}

static int	write_addr_file(struct daemon *d);

static void
api_retire_cb(uv_timer_t *t)
{
	struct daemon	*d = t->data;

	api_close(d->api_old);
	d->api_old = NULL;
}

/*
 * The config's api address changed: answer there from now on (api.addr
 * tells the CLI), and close the old listener a moment later, so that the
 * reply to the reload request that brought the change still goes out on
 * it. If the new address cannot be bound, the old one stays.
 */
static void
swap_api(struct daemon *d, const char *addr)
{
	struct api	*a = NULL;
	int		 rc;

	if (d->api == NULL)
		return;
	rc = api_open(&d->loop, addr, d->api_key, &a);
	if (rc != 0) {
		LOG_WARN("api", "cannot listen for the control API on %s: %s; "
		    "staying on %s", addr, sh_strerror(rc),
		    api_bound_addr(d->api));
		return;
	}
	add_routes(d, a);
	api_close(d->api_old);
	d->api_old = d->api;
	d->api = a;
	(void)write_addr_file(d);
	LOG_INFO("api", "control API now on %s", api_bound_addr(a));
	if (uv_timer_start(&d->api_timer, api_retire_cb, DAEMON_API_RETIRE_MS,
	    0) != 0)
		api_retire_cb(&d->api_timer);
}

static int
write_addr_file(struct daemon *d)
{
	const char	*addr = api_bound_addr(d->api);
	char		*line = xasprintf("%s\n", addr);
	int		 rc;

	rc = util_write_file_atomic(d->addr_path, line, strlen(line), 0600);
	free(line);
	if (rc != 0)
		LOG_ERROR("daemon", "cannot write \"%s\": %s", d->addr_path,
		    sh_strerror(rc));
	return rc;
}

static void
walk_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, noop_close_cb);
}

int
daemon_run(const char *home)
{
	struct daemon	 d;
	char		 err[CONFIG_ERR_SIZE], idstr[IDENTITY_ID_STR_SIZE];
	char		*db_path = NULL;
	bool		 loop_ok = false;
	size_t		 i;
	int		 lock = -1, rc;

	memset(&d, 0, sizeof(d));
	d.home = (char *)home;
#ifdef __GLIBC__
	/* glibc gives each pool thread its own arena, each keeping freed
	 * block buffers; two arenas keep the resident set small (the RSS
	 * target is a fraction of Syncthing's) at no measurable speed cost. */
	(void)mallopt(M_ARENA_MAX, 2);
#endif
	d.start_ms = util_now_ms();
	d.config_path = util_path_join(home, CONFIG_FILE);
	d.addr_path = util_path_join(home, API_ADDR_FILE);
	signal(SIGPIPE, SIG_IGN);

	lock = daemon_lock_home(home);
	if (lock == -EWOULDBLOCK) {
		LOG_ERROR("daemon", "another shoal daemon is running for home "
		    "\"%s\"", home);
		rc = lock;
		goto out;
	}
	if (lock < 0) {
		rc = lock;
		LOG_ERROR("daemon", "cannot lock home \"%s\": %s", home,
		    sh_strerror(rc));
		goto out;
	}
	rc = identity_load(home, &d.ident);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot load identity from \"%s\": %s", home,
		    sh_strerror(rc));
		goto out;
	}
	rc = config_load(d.config_path, &d.cfg, err, sizeof(err));
	if (rc != 0) {
		LOG_ERROR("config", "%s", err);
		goto out;
	}
	if (d.cfg->low_priority)
		apply_priority(true);
	db_path = util_path_join(home, DB_FILE);
	rc = db_open(db_path, &d.db);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot open index \"%s\": %s", db_path,
		    sh_strerror(rc));
		goto out;
	}
	rc = api_key_load(home, true, &d.api_key);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot read API key in \"%s\": %s", home,
		    sh_strerror(rc));
		goto out;
	}
	rc = uv_loop_init(&d.loop);
	if (rc != 0) {
		LOG_ERROR("daemon", "uv_loop_init: %s", uv_strerror(rc));
		goto out;
	}
	loop_ok = true;
	rc = api_open(&d.loop, d.cfg->api, d.api_key, &d.api);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot listen for the control API on %s: %s",
		    d.cfg->api, sh_strerror(rc));
		goto out;
	}
	add_routes(&d, d.api);

	rc = tls_config_new(d.ident, &d.tls);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot set up TLS: %s", sh_strerror(rc));
		goto out;
	}
	d.env.loop = &d.loop;
	d.env.db = d.db;
	d.env.cfg = d.cfg;
	d.env.tls = d.tls;
	d.env.self = *identity_device_id(d.ident);
	d.env.short_id = identity_short_id(&d.env.self);
	rc = net_open(&d.env, on_net_change, &d, &d.net);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot listen for peers on %s: %s",
		    d.cfg->listen, sh_strerror(rc));
		goto out;
	}
	rc = write_addr_file(&d);
	if (rc != 0)
		goto out;
	start_discovery(&d);

	rc = uv_signal_init(&d.loop, &d.sigint);
	if (rc == 0)
		rc = uv_signal_init(&d.loop, &d.sigterm);
	if (rc == 0)
		rc = uv_fs_poll_init(&d.loop, &d.cfg_poll);
	if (rc == 0)
		rc = uv_timer_init(&d.loop, &d.trim);
	if (rc == 0)
		rc = uv_timer_init(&d.loop, &d.intro_timer);
	if (rc == 0)
		rc = uv_timer_init(&d.loop, &d.api_timer);
	if (rc != 0) {
		LOG_ERROR("daemon", "handle init: %s", uv_strerror(rc));
		goto out;
	}
	d.sigint.data = d.sigterm.data = d.cfg_poll.data = &d;
	d.intro_timer.data = &d;
	d.api_timer.data = &d;
	net_set_intro_cb(d.net, on_introduction, &d);
	rc = uv_signal_start(&d.sigint, signal_cb, SIGINT);
	if (rc == 0)
		rc = uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
	if (rc == 0)
		rc = uv_fs_poll_start(&d.cfg_poll, cfg_poll_cb, d.config_path,
		    DAEMON_CONFIG_POLL_MS);
	if (rc == 0)
		rc = uv_timer_start(&d.trim, trim_cb, DAEMON_TRIM_MS,
		    DAEMON_TRIM_MS);
	if (rc != 0) {
		LOG_ERROR("daemon", "cannot start signal/config watch: %s",
		    uv_strerror(rc));
		goto out;
	}

	identity_id_format(identity_device_id(d.ident), idstr);
	LOG_INFO("daemon", "shoal %s started; device %s; listening on %s; "
	    "control API on %s", shoal_version, idstr, net_listen_addr(d.net),
	    api_bound_addr(d.api));
	for (i = 0; i < d.cfg->folder_count; i++)
		start_folder(&d, &d.cfg->folders[i]);

	rc = uv_run(&d.loop, UV_RUN_DEFAULT);
	(void)rc;
	rc = 0;
out:
	if (loop_ok) {
		/* Close whatever is still open (the error paths above). */
		if (!d.stopping) {
			d.stopping = true;
			for (i = 0; i < d.folder_count; i++)
				folder_close(d.folders[i]);
			d.folder_count = 0;
			disco_close(d.disco);
			if (d.net != NULL)
				net_close(d.net);
			if (d.api != NULL)
				api_close(d.api);
		}
		uv_walk(&d.loop, walk_close_cb, NULL);
		if (uv_run(&d.loop, UV_RUN_DEFAULT) != 0)
			LOG_WARN("daemon", "loop still had work at shutdown");
		if (uv_loop_close(&d.loop) != 0)
			LOG_WARN("daemon", "loop did not close cleanly");
	}
	if (lock >= 0)
		unlink(d.addr_path);
	/* The second call finds no use since the first: all released. */
	util_bigbuf_trim();
	util_bigbuf_trim();
	free(d.folders);
	for (i = 0; i < d.intro_count; i++)
		intro_view_free(d.intro_pending[i]);
	free(d.intro_pending);
	fetch_free(d.fetch);
	tls_config_free(d.tls);
	db_close(d.db);
	if (d.api_key != NULL) {
		sodium_memzero(d.api_key, strlen(d.api_key));
		free(d.api_key);
	}
	identity_free(d.ident);
	config_free(d.cfg);
	free(db_path);
	free(d.config_path);
	free(d.addr_path);
	if (lock >= 0) {
		LOG_INFO("daemon", "stopped");
		close(lock);
	}
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * A folder at run time (design.md §1, §6): it ties the scanner, the watcher,
 * the .stignore patterns and the periodic rescan timer to one configured
 * folder, and keeps the state that `shoal status` shows.
 *
 * State machine (f->state):
 *
 *                  folder_open
 *                       |
 *                       v      root or marker missing, bad .stignore,
 *      +---------> [ERROR] <---------------------------+ scan failed
 *      |              |  ready() succeeds               |
 *      |              |  (retry timer, scan request)    |
 *      |              v                                 |
 *      |     +--> [SCANNING] ---------------------------+
 *      |     |        |  scan_done_cb(0 or -ECANCELED)
 *      |     |        v
 *      |     +---- [IDLE] <-----> [SYNCING]  puller pass (start_pull,
 *      |  request     |                      pull_done)
 *      |  request     |
 *      +--------------+  rescan timer finds the marker gone
 *
 * Transitions:
 *
 *   from       to         when                                  function
 *   (open)     ERROR      root/marker missing, .stignore bad    enter_error
 *   (open)     SCANNING   root ok: the initial full scan        start_scan
 *   ERROR      SCANNING   retry timer or request, root ok again  kick
 *   IDLE       SCANNING   watcher batch, timer, request         start_scan
 *   SCANNING   IDLE       scan finished (0 or cancelled)        scan_done
 *   SCANNING   ERROR      scan failed (SH_EFOLDER, SH_EDB ...)   scan_done
 *   IDLE       ERROR      marker missing at the next scan       start_scan
 *   IDLE       SYNCING    something needed, no scan pending     start_pull
 *   SYNCING    IDLE       pass done (failures retried later)    pull_done
 *   SYNCING    ERROR      marker gone, disk full, index error   pull_done
 *
 * Scans take precedence over pulls: the puller only runs when no scan is
 * running or pending, so it compares the disk with an up-to-date index
 * (the puller itself also re-checks every entry before touching it).
 * After every scan and whenever a peer's index changes a pull pass is
 * wanted; names that failed (no peer had the block) are retried after
 * FOLDER_PULL_RETRY_MS. Send-only folders never pull.
 *
 * Scan requests that arrive while a scan runs are merged (a set of paths;
 * a full-scan request supersedes paths) and run as one scan when the
 * current one ends. The .stignore patterns are only swapped between scans,
 * because a running scan borrows them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/model.h"
#include "shoal/pull.h"
#include "shoal/scan.h"
#include "shoal/util.h"
#include "shoal/version.h"
#include "shoal/watch.h"

#define FOLDER_RETRY_S		60	/* error retry, degraded-watch cap */
/* Quiet period before a watcher batch is scanned: short, because a finished
 * change should reach peers quickly; the watcher waits longer for paths
 * that keep changing (watch.c). */
#define FOLDER_WATCH_DELAY_MS	250
#define FOLDER_MAX_PATHS	10000
#define FOLDER_MSG_SIZE		512
#define FOLDER_PULL_RETRY_MS	5000	/* first retry of failed names */
#define FOLDER_PULL_RETRY_MAX_MS 60000	/* doubled while nothing progresses */

struct folder {
	uv_loop_t		*loop;
	struct db		*db;		/* borrowed */
	struct config_folder	 cfg;		/* owned deep copy */
	int64_t			 idx;
	uint64_t		 short_id;
	folder_change_cb	 cb;
	void			*arg;

	enum folder_state	 state;
	char			*error;		/* owned; NULL if none */
	/* Needed names the last complete pull pass left alone as ignored,
	 * valid while the folder's db generation is still ign_gen. */
	bool			 ign_valid;
	uint64_t		 ign_gen;
	uint64_t		 ign_items;
	uint64_t		 ign_bytes;
	char			*space_msg;	/* owned; why the last pass left
						 * files for lack of disk space,
						 * or NULL */
	bool			 ready;		/* root checked, ignores loaded */

	struct ignore		*ignore;	/* owned */
	bool			 ignore_reload;
	struct watch		*watch;

	struct scan		*scan;		/* running scan or NULL */
	bool			 scan_full;	/* the running scan is full */
	/* Versions are thinned on the pool (version_clean) after a pull pass
	 * that kept some and after each full scan. */
	uv_work_t		 clean_work;
	bool			 clean_running;
	char			*clean_root;	/* owned while it runs */
	enum config_versioning	 clean_type;
	int			 clean_removed;
	char			*scan_root;	/* owned; borrowed by scan */
	struct scan_progress	 last_progress;
	bool			 want_full;
	/* Merged pending requests, deduplicated by a hash set: a watcher
	 * batch of 10,000 paths was 50 million strcmp calls (0.3 s of loop)
	 * when deduplicated by a linear search. */
	struct util_strset	 paths;
	bool			 reopen;	/* path changed during a scan */

	uv_timer_t		 timer;
	uint64_t		 timer_ms;	/* current period, 0 = off */

	struct pull		*pull;		/* running pass or NULL */
	bool			 pull_wanted;
	bool			 pull_changed;	/* the pass stored a record */
	struct pull_progress	 last_pull;
	struct pull_progress	 pull_total;	/* finished passes, summed */
	uint64_t		 pulls_completed;
	folder_peer_cb		 peer_cb;
	void			*peer_arg;
	uv_timer_t		 pull_timer;	/* retry of failed names */
	uint64_t		 pull_retry_ms;
	bool			 pull_timer_closed;

	struct db_counts	 counts;	/* cached; refreshed per scan */
	int64_t			 local_sequence;
	uint64_t		 scans_completed;

	bool			 closing;
	bool			 timer_closed;
};

static void	kick(struct folder *);
static void	update_timer(struct folder *);
static void	maybe_free(struct folder *);

const char *
folder_state_name(enum folder_state s)
{
	switch (s) {
	case FOLDER_STATE_IDLE:
		return "idle";
	case FOLDER_STATE_SCANNING:
		return "scanning";
	case FOLDER_STATE_SYNCING:
		return "syncing";
	case FOLDER_STATE_ERROR:
		return "error";
	}
	return "unknown";
}

static void
cfg_free(struct config_folder *c)
{
	free(c->id);
	free(c->label);
	free(c->path);
	free(c->shares);
	memset(c, 0, sizeof(*c));
}

static void
cfg_copy(struct config_folder *dst, const struct config_folder *src)
{
	*dst = *src;
	dst->id = xstrdup(src->id != NULL ? src->id : "");
	dst->label = xstrdup(src->label != NULL ? src->label : "");
	dst->path = xstrdup(src->path != NULL ? src->path : "");
	dst->shares = NULL;
	if (src->share_count > 0) {
		dst->shares = xreallocarray(NULL, src->share_count,
		    sizeof(*dst->shares));
		memcpy(dst->shares, src->shares,
		    src->share_count * sizeof(*dst->shares));
	}
}

/* Merge one scan request (NULL or "" = everything) into the pending ones. */
static void
request_add(struct folder *f, const char *path)
{
	if (path == NULL || *path == '\0' ||
	    f->paths.count >= FOLDER_MAX_PATHS) {
		f->want_full = true;
		util_strset_clear(&f->paths);
	} else if (!f->want_full)
		(void)util_strset_add(&f->paths, path);
}

static void
enter_error(struct folder *f, const char *msg)
{
	/* Log a message once, not on every retry. */
	if (f->error == NULL || strcmp(f->error, msg) != 0)
		LOG_WARN("folder", "%s", msg);
	free(f->error);
	f->error = xstrdup(msg);
	f->state = FOLDER_STATE_ERROR;
	f->ready = false;
	update_timer(f);
}

static void
refresh_counts(struct folder *f)
{
	struct db_counts	c;
	int64_t			seq;

	if (db_counts(f->db, f->idx, DB_LOCAL_DEVICE, &c) == 0)
		f->counts = c;
	if (db_max_sequence(f->db, f->idx, DB_LOCAL_DEVICE, &seq) == 0)
		f->local_sequence = seq;
}

static void
watch_batch(struct watch *w, const char *const *paths, size_t count,
    void *arg)
{
	struct folder	*f = arg;
	size_t		 i;

	(void)w;
	if (f->closing)
		return;
	/* Merge the whole batch first, so that it becomes one scan rather
	 * than one for its first path and another for the rest. */
	for (i = 0; i < count; i++) {
		if (strcmp(paths[i], IGNORE_FILE) == 0) {
			/* New patterns change what every path means. */
			f->ignore_reload = true;
			request_add(f, NULL);
		} else {
			request_add(f, paths[i]);
		}
	}
	kick(f);
	update_timer(f);
}

static uint32_t
fallback_s(const struct folder *f)
{
	if (f->cfg.rescan_s == 0 || f->cfg.rescan_s > FOLDER_RETRY_S)
		return FOLDER_RETRY_S;
	return f->cfg.rescan_s;
}

static void
open_watch(struct folder *f)
{
	int	rc;

	if (f->watch != NULL || !f->cfg.watch)
		return;
	rc = watch_open(f->loop, f->cfg.path, f->ignore,
	    FOLDER_WATCH_DELAY_MS, watch_batch, f, &f->watch);
	if (rc != 0) {
		LOG_WARN("folder", "folder \"%s\": cannot watch \"%s\": %s; "
		    "using periodic scans every %u s", f->cfg.id, f->cfg.path,
		    sh_strerror(rc), fallback_s(f));
		f->watch = NULL;
		return;
	}
	watch_set_context(f->watch, f->cfg.id, fallback_s(f));
}

static void
close_watch(struct folder *f)
{
	watch_close(f->watch);
	f->watch = NULL;
}

/* (Re)load .stignore; only between scans. 0 or SH_EPARSE/-errno. */
static int
load_ignore(struct folder *f)
{
	struct ignore	*ig = NULL;
	char		 err[IGNORE_ERR_SIZE];
	char		*msg;
	unsigned char	 a[32], b[32];
	int		 rc;

	f->ignore_reload = false;
	err[0] = '\0';
	rc = ignore_load(f->cfg.path, &ig, err, sizeof(err));
	if (rc != 0) {
		msg = xasprintf("folder \"%s\": bad %s: %s", f->cfg.id,
		    IGNORE_FILE, err[0] != '\0' ? err : sh_strerror(rc));
		enter_error(f, msg);
		free(msg);
		return rc;
	}
	if (f->ignore != NULL) {
		ignore_digest(f->ignore, a);
		ignore_digest(ig, b);
		if (memcmp(a, b, sizeof(a)) == 0) {
			ignore_free(ig);
			return 0;
		}
		LOG_INFO("folder", "folder \"%s\": %s changed (%zu patterns)",
		    f->cfg.id, IGNORE_FILE, ignore_pattern_count(ig));
		f->want_full = true;
	}
	if (f->watch != NULL)
		watch_set_ignore(f->watch, ig);
	ignore_free(f->ignore);
	f->ignore = ig;
	/* Other patterns, other ignored names: the next pass counts them. */
	f->ign_valid = false;
	return 0;
}

/* Check root and marker, load patterns, start the watcher. */
static bool
make_ready(struct folder *f)
{
	char	msg[FOLDER_MSG_SIZE];

	if (f->ready)
		return true;
	if (scan_root_check(f->cfg.id, f->cfg.path, msg, sizeof(msg)) != 0) {
		/* A vanished root must not keep watches on a stale tree. */
		close_watch(f);
		enter_error(f, msg);
		return false;
	}
	if (load_ignore(f) != 0)
		return false;
	open_watch(f);
	if (f->state == FOLDER_STATE_ERROR)
		LOG_INFO("folder", "folder \"%s\": \"%s\" is back", f->cfg.id,
		    f->cfg.path);
	free(f->error);
	f->error = NULL;
	f->ready = true;
	f->want_full = true;	/* whatever happened meanwhile */
	f->state = FOLDER_STATE_IDLE;
	update_timer(f);
	return true;
}

static void
scan_change(const struct record *r, void *arg)
{
	struct folder	*f = arg;

	if (f->cb != NULL)
		f->cb(f, r, f->arg);
}

static void	reopen(struct folder *);

static void
clean_work_cb(uv_work_t *w)
{
	struct folder	*f = w->data;

	f->clean_removed = version_clean(f->clean_root, f->clean_type,
	    time(NULL));
}

static void
clean_done_cb(uv_work_t *w, int status)
{
	struct folder	*f = w->data;

	(void)status;
	f->clean_running = false;
	free(f->clean_root);
	f->clean_root = NULL;
	if (f->clean_removed > 0)
		LOG_INFO("folder", "folder \"%s\": %d old versions aged out",
		    f->cfg.id, f->clean_removed);
	else if (f->clean_removed < 0 && f->clean_removed != -ENOENT)
		LOG_WARN("folder", "folder \"%s\": cannot clean %s: %s",
		    f->cfg.id, VERSION_DIR, sh_strerror(f->clean_removed));
	if (f->closing)
		maybe_free(f);
}

/* Thin the kept versions (version.h): after a pull pass that kept some,
 * and after full scans, so that staggered versions of files that no
 * longer change age out too. */
static void
start_clean(struct folder *f)
{
	if ((f->cfg.versioning != CONFIG_VERSIONING_STAGGERED &&
	    f->cfg.versioning != CONFIG_VERSIONING_SIMPLE) || f->clean_running)
		return;
	f->clean_work.data = f;
	f->clean_type = f->cfg.versioning;
	f->clean_root = xstrdup(f->cfg.path);
	if (uv_queue_work(f->loop, &f->clean_work, clean_work_cb,
	    clean_done_cb) != 0) {
		free(f->clean_root);
		f->clean_root = NULL;
		return;
	}
	f->clean_running = true;
}

static void
scan_done(struct scan *s, int status, void *arg)
{
	struct folder	*f = arg;
	char		*msg;

	scan_get_progress(s, &f->last_progress);
	f->scan = NULL;
	free(f->scan_root);
	f->scan_root = NULL;
	if (f->closing) {
		maybe_free(f);
		return;
	}
	refresh_counts(f);
	if (f->last_progress.changes > 0 && f->cb != NULL)
		f->cb(f, NULL, f->arg);
	/* A scan may have changed what we need (or found a pull's result). */
	f->pull_wanted = true;
	if (status == 0 || status == -ECANCELED) {
		if (status == 0)
			f->scans_completed++;
		if (status == 0 && f->scan_full)
			start_clean(f);
		if (f->state == FOLDER_STATE_SCANNING)
			f->state = FOLDER_STATE_IDLE;
	} else if (status == SH_EFOLDER) {
		char	m[FOLDER_MSG_SIZE];

		close_watch(f);
		if (scan_root_check(f->cfg.id, f->cfg.path, m, sizeof(m)) == 0)
			snprintf(m, sizeof(m), "folder \"%s\": root or marker "
			    "vanished during a scan", f->cfg.id);
		enter_error(f, m);
	} else {
		msg = xasprintf("folder \"%s\": scan failed: %s", f->cfg.id,
		    sh_strerror(status));
		enter_error(f, msg);
		free(msg);
	}
	if (f->reopen)
		reopen(f);
	/* The watcher may have run out of watches during its walk. */
	update_timer(f);
	kick(f);
}

static void
start_scan(struct folder *f)
{
	struct scan_params	 p;
	char			 msg[FOLDER_MSG_SIZE];
	const char		**paths;
	bool			 full = f->want_full;
	int			 rc;

	if (f->ignore_reload && load_ignore(f) != 0)
		return;
	full = f->want_full;
	memset(&p, 0, sizeof(p));
	p.loop = f->loop;
	p.db = f->db;
	p.folder_idx = f->idx;
	p.folder_id = f->cfg.id;
	f->scan_root = xstrdup(f->cfg.path);
	p.root = f->scan_root;
	p.short_id = f->short_id;
	p.receive_only = (f->cfg.type == CONFIG_FOLDER_RECEIVEONLY);
	p.ignore = f->ignore;
	p.change_cb = scan_change;
	p.done_cb = scan_done;
	p.arg = f;
	paths = full ? NULL : util_strset_list(&f->paths);
	f->scan_full = full;
	rc = scan_start(&p, paths, full ? 0 : f->paths.count, &f->scan);
	free(paths);
	f->want_full = false;
	util_strset_clear(&f->paths);
	if (rc != 0) {
		free(f->scan_root);
		f->scan_root = NULL;
		f->scan = NULL;
		if (rc == SH_EFOLDER) {
			close_watch(f);
			if (scan_root_check(f->cfg.id, f->cfg.path, msg,
			    sizeof(msg)) == 0)
				snprintf(msg, sizeof(msg), "folder \"%s\": "
				    "root check failed", f->cfg.id);
			enter_error(f, msg);
		} else {
			char	*m = xasprintf("folder \"%s\": cannot start "
			    "scan: %s", f->cfg.id, sh_strerror(rc));

			enter_error(f, m);
			free(m);
		}
		return;
	}
	f->state = FOLDER_STATE_SCANNING;
}

/* Start the merged pending scan if nothing runs and something waits. */
static void	start_pull(struct folder *f);

static void
kick(struct folder *f)
{
	if (f->closing || f->scan != NULL || f->pull != NULL)
		return;
	if (f->want_full || f->paths.count > 0) {
		if (!make_ready(f))
			return;
		start_scan(f);
		return;
	}
	if (f->pull_wanted && f->state == FOLDER_STATE_IDLE && f->ready &&
	    f->cfg.type != CONFIG_FOLDER_SENDONLY)
		start_pull(f);
}

/* ---- puller ---- */

static struct conn *
pull_peer(int64_t device_idx, void *arg)
{
	struct folder *f = arg;

	return f->peer_cb != NULL ? f->peer_cb(device_idx, f->peer_arg) : NULL;
}

static void
pull_change(const struct record *r, void *arg)
{
	struct folder *f = arg;

	f->pull_changed = true;
	if (f->cb != NULL)
		f->cb(f, r, f->arg);
}

static void
pull_rescan(const char *name, void *arg)
{
	folder_request_scan(arg, name);
}

static void
progress_add(struct pull_progress *t, const struct pull_progress *p)
{
	t->files_done += p->files_done;
	t->bytes_done += p->bytes_done;
	t->files_failed += p->files_failed;
	t->rescans += p->rescans;
	t->conflicts += p->conflicts;
	t->versions_kept += p->versions_kept;
	t->bytes_network += p->bytes_network;
	t->bytes_local += p->bytes_local;
	t->bytes_reused += p->bytes_reused;
	t->bytes_direct += p->bytes_direct;
	t->blocks_network += p->blocks_network;
	t->blocks_local += p->blocks_local;
	t->blocks_reused += p->blocks_reused;
}

/*
 * After a pass: files that wait for disk space (pull.c, min_disk_free)
 * show in the status and the log while they do. Said once when it starts
 * and once when a complete pass no longer meets it.
 */
static void
note_space(struct folder *f, int status)
{
	const struct pull_progress *pr = &f->last_pull;
	char	need[UTIL_BYTES_STR_SIZE], avail[UTIL_BYTES_STR_SIZE];
	char	keep[UTIL_BYTES_STR_SIZE], min[CONFIG_SPACE_STR_SIZE];
	char	prom[UTIL_BYTES_STR_SIZE], others[UTIL_BYTES_STR_SIZE + 48];
	char	*msg;

	if (pr->files_no_space == 0) {
		if (status == 0 && f->space_msg != NULL) {
			LOG_INFO("folder", "folder \"%s\": enough disk space "
			    "again", f->cfg.id);
			free(f->space_msg);
			f->space_msg = NULL;
		}
		return;
	}
	config_space_format(&f->cfg.min_disk_free, min);
	others[0] = '\0';
	if (pr->space_promised > 0)
		(void)snprintf(others, sizeof(others), " (%s of it for files "
		    "being pulled)", util_fmt_bytes(pr->space_promised, prom));
	msg = xasprintf("folder \"%s\": %llu file%s wait%s for disk space: "
	    "the largest needs %s more, %s is free%s and min_disk_free keeps "
	    "%s (%s)", f->cfg.id, (unsigned long long)pr->files_no_space,
	    pr->files_no_space == 1 ? "" : "s",
	    pr->files_no_space == 1 ? "s" : "",
	    util_fmt_bytes(pr->space_need, need),
	    util_fmt_bytes(pr->space_avail, avail), others,
	    util_fmt_bytes(pr->space_keep, keep), min);
	if (f->space_msg == NULL)
		LOG_WARN("folder", "%s", msg);
	free(f->space_msg);
	f->space_msg = msg;
}

static void
pull_retry_cb(uv_timer_t *t)
{
	struct folder *f = t->data;

	f->pull_wanted = true;
	kick(f);
}

static void
pull_done(struct pull *p, int status, void *arg)
{
	struct folder	*f = arg;
	char		*msg;

	pull_get_progress(p, &f->last_pull);
	progress_add(&f->pull_total, &f->last_pull);
	f->pull = NULL;
	if (f->closing) {
		maybe_free(f);
		return;
	}
	refresh_counts(f);
	/* The pass's last records are stored: peers hear of them now, and
	 * see us in sync 20 ms sooner. */
	if (f->pull_changed && f->cb != NULL)
		f->cb(f, NULL, f->arg);
	f->pull_changed = false;
	if (f->state == FOLDER_STATE_SYNCING)
		f->state = FOLDER_STATE_IDLE;
	if (f->last_pull.versions_kept > 0)
		start_clean(f);
	note_space(f, status);
	/* A pass that saw the whole need list counted the ignored names in
	 * it; the index does not know the patterns (folder_ignored_need). */
	f->ign_valid = status == 0 && !f->last_pull.incomplete;
	f->ign_gen = db_folder_gen(f->db, f->idx);
	f->ign_items = f->last_pull.ignored_need;
	f->ign_bytes = f->last_pull.ignored_need_bytes;
	if (status == 0) {
		f->pulls_completed++;
		if (f->last_pull.incomplete)
			f->pull_wanted = true;
		else if (f->last_pull.files_failed > 0) {
			/* Names that keep failing (a directory kept alive by
			 * ignored files, a block no peer has) are retried less
			 * and less often, up to once a minute. */
			if (f->last_pull.files_done > 0 || f->pull_retry_ms == 0)
				f->pull_retry_ms = FOLDER_PULL_RETRY_MS;
			else if (f->pull_retry_ms < FOLDER_PULL_RETRY_MAX_MS)
				f->pull_retry_ms *= 2;
			if (uv_timer_start(&f->pull_timer, pull_retry_cb,
			    f->pull_retry_ms, 0) != 0)
				LOG_WARN("folder", "folder \"%s\": cannot "
				    "schedule a pull retry", f->cfg.id);
		} else
			f->pull_retry_ms = 0;
	} else if (status == SH_EFOLDER) {
		char	m[FOLDER_MSG_SIZE];

		close_watch(f);
		if (scan_root_check(f->cfg.id, f->cfg.path, m, sizeof(m)) == 0)
			snprintf(m, sizeof(m), "folder \"%s\": root or marker "
			    "vanished while syncing", f->cfg.id);
		enter_error(f, m);
	} else if (status != -ECANCELED) {
		msg = xasprintf("folder \"%s\": sync stopped: %s%s", f->cfg.id,
		    sh_strerror(status), status == -ENOSPC ?
		    " (free some space; nothing was replaced)" : "");
		enter_error(f, msg);
		free(msg);
	}
	kick(f);
}

static void
start_pull(struct folder *f)
{
	struct pull_params	p;
	int			rc;

	memset(&p, 0, sizeof(p));
	p.loop = f->loop;
	p.db = f->db;
	p.folder_idx = f->idx;
	p.folder_id = f->cfg.id;
	p.root = f->cfg.path;
	p.receive_only = (f->cfg.type == CONFIG_FOLDER_RECEIVEONLY);
	p.max_conflicts = f->cfg.max_conflicts;
	p.min_disk_free = f->cfg.min_disk_free;
	p.versioning = f->cfg.versioning;
	p.short_id = f->short_id;
	p.ignore = f->ignore;
	p.peer_for = pull_peer;
	p.on_local_change = pull_change;
	p.on_rescan = pull_rescan;
	p.on_done = pull_done;
	p.arg = f;
	f->pull_wanted = false;
	rc = pull_start(&p, &f->pull);
	if (rc != 0) {
		f->pull = NULL;
		LOG_ERROR("folder", "folder \"%s\": cannot start syncing: %s",
		    f->cfg.id, sh_strerror(rc));
		return;
	}
	f->state = FOLDER_STATE_SYNCING;
}

static void
timer_cb(uv_timer_t *t)
{
	struct folder	*f = t->data;

	/* In ERROR this is the retry; otherwise the periodic rescan. */
	folder_request_scan(f, NULL);
}

static void
update_timer(struct folder *f)
{
	uint64_t	ms;

	if (f->closing)
		return;
	if (f->state == FOLDER_STATE_ERROR)
		ms = (uint64_t)fallback_s(f) * 1000;
	else if (f->watch != NULL && watch_degraded(f->watch))
		ms = (uint64_t)fallback_s(f) * 1000;
	else if (f->cfg.watch && f->watch == NULL && f->ready)
		ms = (uint64_t)fallback_s(f) * 1000;
	else
		ms = (uint64_t)f->cfg.rescan_s * 1000;
	if (ms == f->timer_ms)
		return;
	f->timer_ms = ms;
	if (ms == 0)
		(void)uv_timer_stop(&f->timer);
	else if (uv_timer_start(&f->timer, timer_cb, ms, ms) != 0)
		f->timer_ms = 0;
}

static void
reopen(struct folder *f)
{
	f->reopen = false;
	close_watch(f);
	ignore_free(f->ignore);
	f->ignore = NULL;
	f->ready = false;
	f->want_full = true;
	util_strset_clear(&f->paths);
}

int
folder_open(uv_loop_t *loop, struct db *db, const struct config_folder *cfg,
    uint64_t short_id, folder_change_cb cb, void *arg, struct folder **out)
{
	struct folder	*f = NULL;
	int		 rc;

	*out = NULL;
	f = xcalloc(1, sizeof(*f));
	f->loop = loop;
	f->db = db;
	cfg_copy(&f->cfg, cfg);
	f->short_id = short_id;
	f->cb = cb;
	f->arg = arg;
	f->state = FOLDER_STATE_IDLE;
	rc = db_folder_idx(db, f->cfg.id, &f->idx);
	if (rc != 0)
		goto out;
	rc = uv_timer_init(loop, &f->timer);
	if (rc != 0)
		goto out;
	/* Cannot fail on Linux once the first one worked; if it did, the
	 * first timer would already be registered with the loop. */
	rc = uv_timer_init(loop, &f->pull_timer);
	if (rc != 0) {
		LOG_ERROR("folder", "uv_timer_init: %s", uv_strerror(rc));
		abort();
	}
	f->timer.data = f;
	f->pull_timer.data = f;
	refresh_counts(f);
	f->want_full = true;
	/* Sets ERROR (with its retry timer) when the root is missing. */
	kick(f);
	update_timer(f);
	*out = f;
	f = NULL;
	rc = 0;
out:
	if (f != NULL) {
		cfg_free(&f->cfg);
		free(f);
	}
	return rc;
}

static void
folder_timer_closed(uv_handle_t *h)
{
	struct folder	*f = h->data;

	if (h == (uv_handle_t *)&f->timer)
		f->timer_closed = true;
	else
		f->pull_timer_closed = true;
	maybe_free(f);
}

/* Free once closing and every handle, scan and pull is gone. */
static void
maybe_free(struct folder *f)
{
	if (!f->closing || !f->timer_closed || !f->pull_timer_closed ||
	    f->scan != NULL || f->pull != NULL || f->clean_running)
		return;
	cfg_free(&f->cfg);
	free(f->error);
	free(f->space_msg);
	ignore_free(f->ignore);
	util_strset_free(&f->paths);
	free(f);
}

void
folder_close(struct folder *f)
{
	if (f == NULL || f->closing)
		return;
	f->closing = true;
	close_watch(f);
	if (f->scan != NULL)
		scan_cancel(f->scan);
	if (f->pull != NULL)
		pull_cancel(f->pull);
	uv_close((uv_handle_t *)&f->timer, folder_timer_closed);
	uv_close((uv_handle_t *)&f->pull_timer, folder_timer_closed);
}

void
folder_reconfigure(struct folder *f, const struct config_folder *cfg)
{
	struct config_folder	 old;
	bool			 path_changed;

	if (f->closing)
		return;
	path_changed = strcmp(f->cfg.path, cfg->path) != 0;
	/* Files waiting for space may fit under a new minimum: try now. */
	if (f->space_msg != NULL && (f->cfg.min_disk_free.ppm !=
	    cfg->min_disk_free.ppm || f->cfg.min_disk_free.bytes !=
	    cfg->min_disk_free.bytes))
		f->pull_wanted = true;
	old = f->cfg;
	cfg_copy(&f->cfg, cfg);
	if (path_changed) {
		LOG_INFO("folder", "folder \"%s\": path changed to \"%s\"",
		    f->cfg.id, f->cfg.path);
		if (f->scan != NULL) {
			/* The scan borrows the ignores: swap them after. */
			f->reopen = true;
			close_watch(f);
			scan_cancel(f->scan);
		} else {
			reopen(f);
		}
	} else if (!f->cfg.watch && f->watch != NULL) {
		close_watch(f);
	} else if (f->cfg.watch && f->watch == NULL && f->ready) {
		open_watch(f);
		f->want_full = true;	/* events were missed */
	}
	if (f->watch != NULL)
		watch_set_context(f->watch, f->cfg.id, fallback_s(f));
	cfg_free(&old);
	f->timer_ms = UINT64_MAX;	/* force a restart */
	update_timer(f);
	kick(f);
}

void
folder_request_scan(struct folder *f, const char *path)
{
	if (f->closing)
		return;
	request_add(f, path);
	kick(f);
	/* The watcher may have degraded since the last look. */
	update_timer(f);
}

const char *
folder_id(const struct folder *f)
{
	return f->cfg.id;
}

int64_t
folder_idx(const struct folder *f)
{
	return f->idx;
}

const struct config_folder *
folder_config(const struct folder *f)
{
	return &f->cfg;
}

bool
folder_ignored_need(struct folder *f, uint64_t *items, uint64_t *bytes)
{
	if (!f->ign_valid || db_folder_gen(f->db, f->idx) != f->ign_gen)
		return false;
	*items = f->ign_items;
	*bytes = f->ign_bytes;
	return true;
}

void
folder_get_status(struct folder *f, struct folder_status *out)
{
	memset(out, 0, sizeof(*out));
	out->state = f->state;
	/* A stopped folder says why; else files waiting for space do. */
	out->error = f->error != NULL ? f->error : f->space_msg;
	out->local_files = f->counts.files;
	out->local_bytes = f->counts.bytes;
	out->local_directories = f->counts.directories;
	out->scan_running = f->scan != NULL;
	if (f->scan != NULL)
		scan_get_progress(f->scan, &out->scan);
	else
		out->scan = f->last_progress;
	out->scans_completed = f->scans_completed;
	out->watching = f->watch != NULL;
	out->watch_degraded = f->watch != NULL && watch_degraded(f->watch);
	out->local_sequence = f->local_sequence;
	out->receive_only_changed = f->counts.receive_only_changed;
	out->pull_running = f->pull != NULL;
	/* Totals since the daemon started, the running pass included. */
	out->pull = f->pull_total;
	if (f->pull != NULL) {
		struct pull_progress cur;

		pull_get_progress(f->pull, &cur);
		progress_add(&out->pull, &cur);
		out->pull.need_files = cur.need_files;
		out->pull.need_bytes = cur.need_bytes;
	}
	out->pulls_completed = f->pulls_completed;
}

void
folder_set_peer_lookup(struct folder *f, folder_peer_cb cb, void *arg)
{
	f->peer_cb = cb;
	f->peer_arg = arg;
}

void
folder_remote_changed(struct folder *f)
{
	if (f->closing)
		return;
	f->pull_wanted = true;
	kick(f);
}

/* ---- send-only override and receive-only revert (bep-brief §11) ---- */

struct name_list {
	char	**names;
	size_t	  count;
};

static int
collect_need(const struct model_need *n, void *arg)
{
	struct name_list *l = arg;

	l->names = xreallocarray(l->names, l->count + 1, sizeof(*l->names));
	l->names[l->count++] = xstrdup(n->name);
	return 0;
}

static int
collect_entry(const struct db_entry *e, void *arg)
{
	struct name_list *l = arg;

	l->names = xreallocarray(l->names, l->count + 1, sizeof(*l->names));
	l->names[l->count++] = xstrdup(e->name);
	return 0;
}

static void
name_list_free(struct name_list *l)
{
	size_t	i;

	for (i = 0; i < l->count; i++)
		free(l->names[i]);
	free(l->names);
}

/*
 * Make our version of `name` win over the global one: merge the vectors
 * and bump ours, so ours dominates. Where we have nothing, the result is
 * a deletion. The caller is inside a transaction.
 */
static int
override_one(struct folder *f, const char *name, int64_t now)
{
	struct record	*mine = NULL, *g = NULL;
	int		 rc;

	rc = model_global(f->db, f->idx, name, &g, NULL);
	if (rc != 0)
		goto out;
	rc = db_file_get(f->db, f->idx, DB_LOCAL_DEVICE, name, &mine);
	if (rc == SH_ENOTFOUND) {
		mine = record_new();
		mine->name = xstrdup(name);
		mine->type = g->type;
		mine->permissions = g->permissions;
		mine->deleted = true;
		mine->modified_s = now;
		rc = 0;
	}
	if (rc != 0)
		goto out;
	record_vector_merge(&mine->version, &g->version);
	record_vector_update(&mine->version, f->short_id, now);
	mine->modified_by = f->short_id;
	mine->local_flags &= ~(uint32_t)RECORD_LOCAL_RECEIVEONLY;
	rc = db_local_put(f->db, f->idx, mine);
	if (rc == 0 && f->cb != NULL)
		f->cb(f, mine, f->arg);
out:
	record_free(mine);
	record_free(g);
	return rc;
}

/*
 * Forget a receive-only local change: an empty vector loses to every
 * version, so the puller brings back the global one. A name that exists
 * only here is kept as it is (it has no global version to go back to).
 */
static int
revert_one(struct folder *f, const char *name, size_t *kept)
{
	struct record	*mine = NULL;
	int64_t		 holder;
	int		 rc;

	rc = db_global_device(f->db, f->idx, name, &holder);
	if (rc == 0 && holder == DB_LOCAL_DEVICE) {
		/* Only we have it (an addition made here). */
		(*kept)++;
		return 0;
	}
	if (rc != 0 && rc != SH_ENOTFOUND)
		return rc;
	rc = db_file_get(f->db, f->idx, DB_LOCAL_DEVICE, name, &mine);
	if (rc != 0)
		return rc;
	record_vector_free(&mine->version);
	mine->local_flags &= ~(uint32_t)RECORD_LOCAL_RECEIVEONLY;
	rc = db_local_put(f->db, f->idx, mine);
	if (rc == 0 && f->cb != NULL)
		f->cb(f, mine, f->arg);
	record_free(mine);
	return rc;
}

int
folder_override(struct folder *f, size_t *count)
{
	struct name_list	l = { NULL, 0 };
	size_t			i;
	int			rc;

	*count = 0;
	if (f->cfg.type != CONFIG_FOLDER_SENDONLY)
		return -EINVAL;
	rc = model_need_foreach(f->db, f->idx, collect_need, &l);
	if (rc == 0)
		rc = db_begin(f->db);
	for (i = 0; rc == 0 && i < l.count; i++)
		rc = override_one(f, l.names[i], util_now_unix());
	if (rc == 0)
		rc = db_commit(f->db);
	else
		db_rollback(f->db);
	if (rc == 0) {
		*count = l.count;
		LOG_INFO("folder", "folder \"%s\": override: our version of "
		    "%zu item(s) now wins", f->cfg.id, l.count);
	}
	name_list_free(&l);
	return rc;
}

int
folder_revert(struct folder *f, size_t *count, size_t *kept)
{
	struct name_list	l = { NULL, 0 };
	size_t			i;
	int			rc;

	*count = *kept = 0;
	if (f->cfg.type != CONFIG_FOLDER_RECEIVEONLY)
		return -EINVAL;
	rc = db_local_flagged(f->db, f->idx, RECORD_LOCAL_RECEIVEONLY,
	    collect_entry, &l);
	if (rc == 0)
		rc = db_begin(f->db);
	for (i = 0; rc == 0 && i < l.count; i++)
		rc = revert_one(f, l.names[i], kept);
	if (rc == 0)
		rc = db_commit(f->db);
	else
		db_rollback(f->db);
	if (rc == 0) {
		*count = l.count - *kept;
		LOG_INFO("folder", "folder \"%s\": revert: %zu local change(s) "
		    "dropped, %zu item(s) that exist only here kept", f->cfg.id,
		    *count, *kept);
		refresh_counts(f);
		folder_remote_changed(f);
	}
	name_list_free(&l);
	return rc;
}

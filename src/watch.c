/* SPDX-License-Identifier: MIT */
/*
 * The watcher (design.md §1): one uv_fs_event_t per directory (inotify is
 * not recursive, and neither is libuv's Linux backend), fed to a debounced
 * set of changed folder-relative paths. The folder hands each delivered
 * batch to a partial scan.
 *
 * The initial tree walk runs on the loop in chunks of WATCH_WALK_CHUNK
 * directories per loop turn, so a large tree never stalls the loop for
 * long. A new directory reported by an event is added to the same walk
 * queue and reported itself: files created in it before its watch exists
 * are found by the scanner, which recurses into reported directories.
 *
 * Events are collected in a set (deduplicated, at most WATCH_MAX_PATHS
 * entries; beyond that the batch collapses to "" = full rescan) and
 * delivered after `delay_ms` without events, but never later than
 * WATCH_MAX_WAIT_MS after the first event of a batch, so a file written
 * continuously still gets scanned. The quiet period is short so that a
 * finished change reaches the scanner quickly; a batch that opens within
 * WATCH_BACKOFF times the quiet period of the previous delivery waits for
 * that longer quiet period instead, so a file written in bursts slower than
 * `delay_ms` is not rescanned after every single write.
 *
 * A batch made only of name events (created, deleted, moved in or out:
 * libuv's UV_RENAME) settles after a tenth of the quiet period instead.
 * Such a change is complete the moment it happens -- a file moved into
 * the folder, a download or an editor's save renamed into place, a delete
 * -- so waiting the full quiet period only adds latency; the short settle
 * still merges a burst (a tree moved in, `rm -r`) into one batch. Content
 * and attribute events (UV_CHANGE: writes, chmod, touch) mean a writer may
 * still be at work, so the first one seen lengthens the batch's quiet
 * period to the full `delay_ms`. A file created and then written a
 * settle later is scanned twice; the second scan sees the rest.
 *
 * Running out of inotify watches (ENOSPC) or descriptors (EMFILE) marks the
 * watcher degraded, logs one WARN line, and stops adding watches; the folder
 * then rescans periodically.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "shoal/log.h"
#include "shoal/record.h"
#include "shoal/util.h"
#include "shoal/watch.h"

#define WATCH_WALK_CHUNK	32
#define WATCH_MAX_PATHS		10000
#define WATCH_MAX_WAIT_MS	10000
#define WATCH_BUCKETS		1024
#define WATCH_BACKOFF		4
#define WATCH_SETTLE_DIV	10

struct wdir {
	uv_fs_event_t	 h;
	struct watch	*w;
	struct wdir	*next;		/* bucket chain */
	char		*rel;		/* owned; "" for the root */
	bool		 started;
};

struct watch {
	uv_loop_t		*loop;
	char			*root;		/* owned */
	char			*label;		/* owned; for the WARN line */
	uint32_t		 fallback_s;
	const struct ignore	*ig;		/* borrowed */
	uint32_t		 delay_ms;
	watch_cb		 cb;
	void			*arg;
	struct wdir		*buckets[WATCH_BUCKETS];
	size_t			 dir_count;
	/* Directories still to walk and watch. */
	char			**todo;
	size_t			 todo_count;
	size_t			 todo_cap;
	uv_timer_t		 walk_timer;
	uv_timer_t		 debounce;
	struct util_strset	 set;		/* changed paths; cleared on
						 * delivery */
	bool			 full;		/* collapsed to a full rescan */
	uint64_t		 first_ms;	/* 0 = no batch open */
	uint64_t		 last_ms;
	uint64_t		 quiet_ms;	/* of the open batch */
	bool			 content;	/* batch has a UV_CHANGE */
	uint64_t		 delivered_ms;	/* 0 = never */
	bool			 degraded;
	int			 degraded_rc;
	bool			 warned;
	bool			 debounce_inited;
	bool			 closing;
	int			 handles;	/* open uv handles */
};

static void	walk_some(struct watch *);

static void
maybe_free(struct watch *w)
{
	size_t	i;

	if (!w->closing || w->handles > 0)
		return;
	for (i = 0; i < w->todo_count; i++)
		free(w->todo[i]);
	free(w->todo);
	util_strset_free(&w->set);
	free(w->root);
	free(w->label);
	free(w);
}

static void
handle_closed(uv_handle_t *h)
{
	struct watch	*w = h->data;

	w->handles--;
	maybe_free(w);
}

static void
wdir_closed(uv_handle_t *h)
{
	struct wdir	*d = h->data;
	struct watch	*w = d->w;

	free(d->rel);
	free(d);
	w->handles--;
	maybe_free(w);
}

static struct wdir *
dir_find(struct watch *w, const char *rel)
{
	struct wdir	*d;

	for (d = w->buckets[util_str_hash(rel) % WATCH_BUCKETS]; d != NULL;
	    d = d->next)
		if (strcmp(d->rel, rel) == 0)
			return d;
	return NULL;
}

static void
dir_close(struct watch *w, struct wdir *d)
{
	if (d->started)
		(void)uv_fs_event_stop(&d->h);
	w->dir_count--;
	uv_close((uv_handle_t *)&d->h, wdir_closed);
}

/* Drop the watches of `rel` and of everything below it. */
static void
dir_remove_tree(struct watch *w, const char *rel)
{
	struct wdir	**pp, *d;
	size_t		 i, len = strlen(rel);

	for (i = 0; i < WATCH_BUCKETS; i++) {
		pp = &w->buckets[i];
		while ((d = *pp) != NULL) {
			if (strncmp(d->rel, rel, len) == 0 &&
			    (len == 0 || d->rel[len] == '\0' ||
			    d->rel[len] == '/')) {
				*pp = d->next;
				dir_close(w, d);
			} else
				pp = &d->next;
		}
	}
}

static void
set_clear(struct watch *w)
{
	util_strset_clear(&w->set);
	w->full = false;
}

static void
set_add(struct watch *w, const char *path)
{
	if (w->full)
		return;
	if (w->set.count >= WATCH_MAX_PATHS) {
		/* Too much at once: a full rescan is cheaper than the list. */
		set_clear(w);
		w->full = true;
		return;
	}
	(void)util_strset_add(&w->set, path);
}

static void
deliver(struct watch *w)
{
	const char	**paths;
	const char	 *full = "";

	if (w->full)
		w->cb(w, &full, 1, w->arg);
	else if (w->set.count > 0) {
		paths = util_strset_list(&w->set);
		w->cb(w, paths, w->set.count, w->arg);
		free(paths);
	}
	set_clear(w);
	w->first_ms = 0;
	w->delivered_ms = util_now_ms();
}

static void
debounce_cb(uv_timer_t *t)
{
	struct watch	*w = t->data;
	uint64_t	 now = util_now_ms(), max_wait, quiet, wait;

	if (w->closing || w->first_ms == 0)
		return;
	max_wait = w->quiet_ms > WATCH_MAX_WAIT_MS ? w->quiet_ms :
	    WATCH_MAX_WAIT_MS;
	quiet = now - w->last_ms;
	if (quiet >= w->quiet_ms || now - w->first_ms >= max_wait) {
		deliver(w);
		return;
	}
	wait = w->quiet_ms - quiet;
	if (w->first_ms + max_wait - now < wait)
		wait = w->first_ms + max_wait - now;
	if (uv_timer_start(&w->debounce, debounce_cb, wait, 0) != 0)
		deliver(w);
}

/* The quiet period a batch needs, with the backoff after a delivery. */
static uint64_t
quiet_for(const struct watch *w, uint64_t now, bool content)
{
	uint64_t	q = w->delay_ms;

	if (!content && q / WATCH_SETTLE_DIV > 0)
		q /= WATCH_SETTLE_DIV;
	if (w->delivered_ms != 0 && now - w->delivered_ms < WATCH_BACKOFF * q)
		q *= WATCH_BACKOFF;
	return q;
}

/* `content`: a write or attribute change, not only a name event. */
static void
note_change(struct watch *w, const char *rel, bool content)
{
	uint64_t	now = util_now_ms(), q;

	set_add(w, rel);
	w->last_ms = now;
	if (w->first_ms == 0) {
		w->first_ms = now;
		w->content = content;
		w->quiet_ms = quiet_for(w, now, content);
		if (uv_timer_start(&w->debounce, debounce_cb, w->quiet_ms,
		    0) != 0)
			deliver(w);
	} else if (content && !w->content) {
		/* The running timer is shorter; debounce_cb waits out the
		 * rest of the longer period when it fires. */
		w->content = true;
		q = quiet_for(w, w->first_ms, true);
		if (q > w->quiet_ms)
			w->quiet_ms = q;
	}
}

static void
warn_degraded(struct watch *w, int rc)
{
	if (w->warned)
		return;
	w->warned = true;
	if (w->fallback_s > 0)
		LOG_WARN("watch", "folder \"%s\": inotify watch limit reached "
		    "(fs.inotify.max_user_watches) (%s); falling back to "
		    "periodic scans every %u s", w->label != NULL ? w->label :
		    w->root, sh_strerror(rc), w->fallback_s);
	else
		LOG_WARN("watch", "folder \"%s\": inotify watch limit reached "
		    "(fs.inotify.max_user_watches) (%s); falling back to "
		    "periodic scans", w->label != NULL ? w->label : w->root,
		    sh_strerror(rc));
}

static bool
skip_name(const struct watch *w, const char *rel)
{
	/* .stignore is internal but the folder must hear about it. */
	if (strcmp(rel, IGNORE_FILE) == 0)
		return false;
	if (record_name_internal(rel))
		return true;
	return w->ig != NULL && ignore_match(w->ig, rel) != IGNORE_NO;
}

static void	event_cb(uv_fs_event_t *, const char *, int, int);

/* Start watching directory `rel`. 0, or a negative code for the root. */
static int
dir_add(struct watch *w, const char *rel)
{
	struct wdir	*d;
	char		*path;
	uint32_t	 b;
	int		 rc;

	if (w->degraded || dir_find(w, rel) != NULL)
		return 0;
	d = xcalloc(1, sizeof(*d));
	d->w = w;
	d->rel = xstrdup(rel);
	rc = uv_fs_event_init(w->loop, &d->h);
	if (rc != 0) {
		free(d->rel);
		free(d);
		return rc;
	}
	d->h.data = d;
	w->handles++;
	path = *rel == '\0' ? xstrdup(w->root) : util_path_join(w->root, rel);
	rc = uv_fs_event_start(&d->h, event_cb, path, 0);
	free(path);
	if (rc != 0) {
		uv_close((uv_handle_t *)&d->h, wdir_closed);
		if (rc == UV_ENOSPC || rc == UV_EMFILE || rc == UV_ENFILE) {
			/* Warned from walk_some, once the folder has named
			 * itself with watch_set_context(). */
			w->degraded = true;
			w->degraded_rc = rc;
			return 0;
		}
		/* Vanished or unreadable: the scanner will tell. */
		return *rel == '\0' ? rc : 0;
	}
	d->started = true;
	b = util_str_hash(rel) % WATCH_BUCKETS;
	d->next = w->buckets[b];
	w->buckets[b] = d;
	w->dir_count++;
	return 0;
}

static void
todo_push(struct watch *w, const char *rel)
{
	if (w->todo_count == w->todo_cap) {
		w->todo_cap = w->todo_cap == 0 ? 16 : w->todo_cap * 2;
		w->todo = xreallocarray(w->todo, w->todo_cap,
		    sizeof(*w->todo));
	}
	w->todo[w->todo_count++] = xstrdup(rel);
}

static void
walk_timer_cb(uv_timer_t *t)
{
	walk_some(t->data);
}

static void
schedule_walk(struct watch *w)
{
	if (w->todo_count > 0 && !w->closing &&
	    !uv_is_active((uv_handle_t *)&w->walk_timer))
		(void)uv_timer_start(&w->walk_timer, walk_timer_cb, 0, 0);
}

/* Watch one directory and queue its subdirectories. */
static void
walk_dir(struct watch *w, const char *rel)
{
	DIR		*dp;
	struct dirent	*de;
	struct stat	 st;
	char		*path, *child;
	bool		 isdir;

	if (dir_add(w, rel) != 0 || w->degraded)
		return;
	path = *rel == '\0' ? xstrdup(w->root) : util_path_join(w->root, rel);
	dp = opendir(path);
	if (dp == NULL) {
		free(path);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR)
			isdir = true;
		else if (de->d_type == DT_UNKNOWN)
			isdir = fstatat(dirfd(dp), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		else
			isdir = false;	/* symlinks are never followed */
		if (!isdir)
			continue;
		child = *rel == '\0' ? xstrdup(de->d_name) :
		    xasprintf("%s/%s", rel, de->d_name);
		if (!record_name_internal(child) && (w->ig == NULL ||
		    ignore_match(w->ig, child) == IGNORE_NO ||
		    ignore_must_descend(w->ig, child)))
			todo_push(w, child);
		free(child);
	}
	closedir(dp);
	free(path);
}

static void
walk_some(struct watch *w)
{
	char	*rel;
	int	 i;

	for (i = 0; i < WATCH_WALK_CHUNK && w->todo_count > 0 &&
	    !w->closing; i++) {
		rel = w->todo[--w->todo_count];
		walk_dir(w, rel);
		free(rel);
	}
	if (w->degraded) {
		warn_degraded(w, w->degraded_rc);
		while (w->todo_count > 0)
			free(w->todo[--w->todo_count]);
	}
	schedule_walk(w);
}

static void
event_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct wdir	*d = h->data;
	struct watch	*w = d->w;
	struct wdir	*sub;
	struct stat	 st;
	char		*rel = NULL, *path = NULL, *dpath = NULL;

	if (w->closing)
		return;
	if (status < 0) {
		LOG_DEBUG("watch", "\"%s\": event error: %s", w->root,
		    sh_strerror(status));
		goto out;
	}
	dpath = *d->rel == '\0' ? xstrdup(w->root) :
	    util_path_join(w->root, d->rel);
	if (lstat(dpath, &st) != 0 || !S_ISDIR(st.st_mode)) {
		/* The watched directory went away (IN_DELETE_SELF or a
		 * rename): drop it and below; `d` is closed after this. The
		 * root is the folder's business (marker check). */
		if (*d->rel != '\0') {
			note_change(w, d->rel, false);
			dir_remove_tree(w, d->rel);
		}
		goto out;
	}
	if (filename == NULL || *filename == '\0')
		goto out;
	rel = *d->rel == '\0' ? xstrdup(filename) :
	    xasprintf("%s/%s", d->rel, filename);
	if (skip_name(w, rel))
		goto out;
	note_change(w, rel, (events & UV_CHANGE) != 0);
	path = util_path_join(w->root, rel);
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* New (or moved-in) directory: watch it and below. */
		if (dir_find(w, rel) == NULL) {
			todo_push(w, rel);
			schedule_walk(w);
		}
	} else {
		sub = dir_find(w, rel);
		if (sub != NULL)
			dir_remove_tree(w, rel);
	}
out:
	free(dpath);
	free(path);
	free(rel);
}

int
watch_open(uv_loop_t *loop, const char *root, const struct ignore *ig,
    uint32_t delay_ms, watch_cb cb, void *arg, struct watch **out)
{
	struct watch	*w;
	int		 rc;

	*out = NULL;
	w = xcalloc(1, sizeof(*w));
	w->loop = loop;
	w->root = xstrdup(root);
	w->ig = ig;
	w->delay_ms = delay_ms;
	w->cb = cb;
	w->arg = arg;
	rc = uv_timer_init(loop, &w->walk_timer);
	if (rc != 0) {
		free(w->root);
		free(w);
		return rc;
	}
	w->walk_timer.data = w;
	w->handles++;
	rc = uv_timer_init(loop, &w->debounce);
	if (rc != 0) {
		watch_close(w);
		return rc;
	}
	w->debounce.data = w;
	w->debounce_inited = true;
	w->handles++;
	/* The root is watched now, so that a failure is reported here. */
	rc = dir_add(w, "");
	if (rc != 0) {
		watch_close(w);
		return rc;
	}
	/* Its subdirectories are walked in chunks from the next turn on. */
	todo_push(w, "");
	schedule_walk(w);
	*out = w;
	return 0;
}

void
watch_close(struct watch *w)
{
	size_t		 i;
	struct wdir	*d;

	if (w == NULL || w->closing)
		return;
	w->closing = true;
	for (i = 0; i < WATCH_BUCKETS; i++) {
		while ((d = w->buckets[i]) != NULL) {
			w->buckets[i] = d->next;
			dir_close(w, d);
		}
	}
	uv_close((uv_handle_t *)&w->walk_timer, handle_closed);
	if (w->debounce_inited)
		uv_close((uv_handle_t *)&w->debounce, handle_closed);
}

void
watch_set_ignore(struct watch *w, const struct ignore *ig)
{
	w->ig = ig;
}

void
watch_set_context(struct watch *w, const char *label, uint32_t fallback_s)
{
	free(w->label);
	w->label = label != NULL ? xstrdup(label) : NULL;
	w->fallback_s = fallback_s;
}

bool
watch_degraded(const struct watch *w)
{
	return w->degraded;
}

size_t
watch_count(const struct watch *w)
{
	return w->dir_count;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pull.c. Each test builds an index in a temp dir, scans a
 * folder root (with .stfolder) to get real local records, stores remote
 * records for a made-up device with db_remote_put, and runs one pull pass.
 * Most tests have no peer able to answer, so every block must come from
 * the disk: another local file (a rename), the file's old version, or a
 * temporary file left by an earlier pass. test_pull_blocks_from_peers uses
 * a fake conn_request defined below (conn.o is then not linked; if pull.c
 * ever needs more of conn.c, that fake must grow or move). The numbers in
 * the comments are pull.c's invariants.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "shoal/config.h"
#include "shoal/conflict.h"
#include "shoal/conn.h"
#include "shoal/db.h"
#include "shoal/hash.h"
#include "shoal/identity.h"
#include "shoal/model.h"
#include "shoal/ignore.h"
#include "shoal/pull.h"
#include "shoal/record.h"
#include "shoal/scan.h"
#include "shoal/util.h"
#include "shoal/version.h"

#define BS	RECORD_MIN_BLOCK_SIZE

struct fx {
	char		*dir;		/* temp dir holding root/ and index.db */
	char		*root;
	struct db	*db;
	int64_t		 idx;
	int64_t		 rdev;		/* the made-up remote device */
	uint64_t	 me;		/* our short ID */
	uint64_t	 them;		/* the remote's short ID */
	int		 max_conflicts;	/* for the passes; setup: 10 */
	enum config_versioning versioning; /* for the passes; setup: none */
	struct config_space min_disk_free; /* for the passes; setup: none */
	struct ignore	*ignore;	/* for the passes; setup: none */
	int64_t		 rseq;
	/* Results of the last pass. */
	bool		 done;
	int		 status;
	struct pull_progress prog;
	int		 changes;
	int		 rescans;
	char		*rescan_name;
};

static void
fill(uint8_t *buf, size_t len, unsigned int seed)
{
	size_t	i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9)) & 0xff);
}

static char *
path_of(struct fx *f, const char *name)
{
	return util_path_join(f->root, name);
}

static void
write_file(struct fx *f, const char *name, const void *data, size_t len)
{
	char	*p = path_of(f, name);
	int	 fd;

	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
	free(p);
}

static void
expect_file(struct fx *f, const char *name, const void *data, size_t len)
{
	char	*p = path_of(f, name), *got = NULL;
	size_t	 got_len = 0;

	assert_int_equal(util_read_file(p, 64 << 20, &got, &got_len), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, data, len);
	free(got);
	free(p);
}

static bool
exists(struct fx *f, const char *name)
{
	struct stat	 st;
	char		*p = path_of(f, name);
	bool		 ok;

	ok = lstat(p, &st) == 0;
	free(p);
	return ok;
}

static void	net_reset(void);

static int
setup(void **state)
{
	struct fx		*f = xcalloc(1, sizeof(*f));
	struct device_id	 me, them;
	char			*p;

	f->dir = xstrdup("/tmp/shoal-test-pull.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->root = util_path_join(f->dir, "root");
	assert_int_equal(mkdir(f->root, 0755), 0);
	p = path_of(f, ".stfolder");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = util_path_join(f->dir, "index.db");
	assert_int_equal(db_open(p, &f->db), 0);
	free(p);
	assert_int_equal(db_folder_idx(f->db, "f1", &f->idx), 0);
	memset(&me, 0x11, sizeof(me));
	memset(&them, 0xC7, sizeof(them));
	f->me = identity_short_id(&me);
	f->max_conflicts = CONFIG_DEFAULT_MAX_CONFLICTS;
	f->them = identity_short_id(&them);
	assert_int_equal(db_device_idx(f->db, &them, &f->rdev), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		*cmd;

	util_fault_clear();
	net_reset();
	db_close(f->db);
	cmd = xasprintf("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'",
	    f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f->rescan_name);
	free(f->root);
	free(f->dir);
	free(f);
	return 0;
}

static void
scan(struct fx *f)
{
	assert_int_equal(scan_run_once(f->db, f->idx, "f1", f->root, f->me,
	    NULL, false, NULL), 0);
}

static struct record *
local(struct fx *f, const char *name)
{
	struct record	*r = NULL;

	assert_int_equal(db_file_get(f->db, f->idx, DB_LOCAL_DEVICE, name,
	    &r), 0);
	return r;
}

/* A remote file record for `data`, with version `base` (may be NULL)
 * plus a counter of the remote device. Caller frees. */
static struct record *
remote_file(struct fx *f, const char *name, const uint8_t *data, size_t len,
    const struct record_vector *base, int64_t mtime, uint32_t perms)
{
	struct record	*r = record_new();
	size_t		 i, n;

	r->name = xstrdup(name);
	r->type = RECORD_TYPE_FILE;
	r->size = (int64_t)len;
	r->permissions = perms;
	r->modified_s = mtime;
	r->modified_ns = 123456789;
	r->modified_by = f->them;
	r->block_size = BS;
	n = len == 0 ? 1 : (len + BS - 1) / BS;
	r->blocks = xcalloc(n, sizeof(*r->blocks));
	r->block_count = n;
	for (i = 0; i < n; i++) {
		size_t	off = i * BS, sz = len - off < BS ? len - off : BS;

		if (len == 0)
			sz = 0;
		r->blocks[i].offset = (int64_t)off;
		r->blocks[i].size = (int32_t)sz;
		assert_int_equal(hash_sha256(data + off, sz,
		    r->blocks[i].hash), 0);
		r->blocks[i].weak_hash = hash_adler32(data + off, sz);
	}
	record_blocks_hash(r->blocks, r->block_count, r->blocks_hash);
	r->has_blocks_hash = true;
	if (base != NULL)
		record_vector_copy(&r->version, base);
	record_vector_update(&r->version, f->them, util_now_unix() + 100);
	return r;
}

static void
remote_put(struct fx *f, struct record *r)
{
	r->sequence = ++f->rseq;
	assert_int_equal(record_validate(r), 0);
	assert_int_equal(db_remote_put(f->db, f->idx, f->rdev, r), 0);
}

/* A remote directory record `name` with mode `perms`, stored. */
static void
remote_dir(struct fx *f, const char *name, uint32_t perms)
{
	struct record	*r = record_new();

	r->name = xstrdup(name);
	r->type = RECORD_TYPE_DIRECTORY;
	r->permissions = perms;
	r->modified_s = 1700000000;
	r->modified_by = f->them;
	record_vector_update(&r->version, f->them, util_now_unix());
	remote_put(f, r);
	record_free(r);
}

/* The remote deletes `name` after the version we have (its counter
 * `ahead` seconds on): the deletion record is stored, and returned for
 * the caller to look at and free. */
static struct record *
remote_delete(struct fx *f, const char *name, int64_t ahead)
{
	struct record	*l = local(f, name), *r = record_dup(l);

	free(r->blocks);
	r->blocks = NULL;
	r->block_count = 0;
	r->has_blocks_hash = false;
	r->size = 0;
	r->deleted = true;
	r->modified_by = f->them;
	r->inode = r->dev = 0;
	record_vector_update(&r->version, f->them, util_now_unix() + ahead);
	remote_put(f, r);
	record_free(l);
	return r;
}

static void
on_done(struct pull *p, int status, void *arg)
{
	struct fx	*f = arg;

	f->done = true;
	f->status = status;
	pull_get_progress(p, &f->prog);
}

static void
on_change(const struct record *r, void *arg)
{
	struct fx	*f = arg;

	(void)r;
	f->changes++;
}

static void
on_rescan(const char *name, void *arg)
{
	struct fx	*f = arg;

	f->rescans++;
	free(f->rescan_name);
	f->rescan_name = xstrdup(name);
}

/*
 * A fake of conn.c's conn_request for the network path: each fake
 * connection answers from `net_data` on the next loop turn, after
 * checking the hash as conn.c does, or fails every request, or says
 * -EAGAIN a number of times first.
 */
struct conn {
	int		 requests;	/* accepted */
	int		 eagain_left;
	bool		 fail;
	bool		 lie;		/* answers with one byte changed */
	int		 outstanding;
	int		 max_outstanding;
};

struct fake_resp {
	uv_timer_t		 t;
	struct conn		*c;
	char			*name;
	int64_t			 off;
	int32_t			 size;
	uint8_t			 hash[RECORD_HASH_LEN];
	unsigned int		 flags;
	conn_response_cb	 cb;
	void			*arg;
};

static uv_loop_t	*net_loop;
static const uint8_t	*net_data;
static struct conn	 net_conns[2];
static int64_t		 net_devs[2];
/* With net_hold > 0, answers wait until that many requests are in, then
 * all come on the same loop turn (so their files finish together). */
static int		 net_hold;
static struct fake_resp	*net_held[16];
static int		 net_nheld;
/* Called with the file's name right before each answer (the user
 * touching the disk while the pull runs). */
static void		(*net_hook)(const char *name);
static struct fx	*net_fx;

static void
net_reset(void)
{
	net_hold = 0;
	net_nheld = 0;
	net_hook = NULL;
	net_fx = NULL;
	net_data = NULL;
}

static void
fake_close_cb(uv_handle_t *h)
{
	struct fake_resp	*r = h->data;

	free(r->name);
	free(r);
}

static void
fake_fire(uv_timer_t *t)
{
	struct fake_resp	*r = t->data;
	uint8_t			 h[RECORD_HASH_LEN];
	uint8_t			*lie = NULL;
	const uint8_t		*data = net_data + r->off;
	int			 status = 0;

	r->c->outstanding--;
	if (net_hook != NULL)
		net_hook(r->name);
	if (r->c->lie) {
		lie = xmalloc((size_t)r->size);
		memcpy(lie, data, (size_t)r->size);
		lie[r->size / 2] ^= 0x40;
		data = lie;
	}
	if (r->c->fail)
		status = SH_ENOTFOUND;
	else if ((r->flags & CONN_REQ_CALLER_VERIFIES) == 0 &&
	    (hash_sha256(data, (size_t)r->size, h) != 0 ||
	    memcmp(h, r->hash, sizeof(h)) != 0))
		status = SH_EPROTO;
	if (status == 0 && (r->flags & CONN_REQ_GIVE_DATA) != 0) {
		uint8_t	*own = util_bigbuf_alloc((size_t)r->size);

		memcpy(own, data, (size_t)r->size);
		r->cb(0, own, (size_t)r->size, r->arg);
	} else
		r->cb(status, status == 0 ? (uint8_t *)data : NULL,
		    status == 0 ? (size_t)r->size : 0, r->arg);
	free(lie);
	uv_close((uv_handle_t *)&r->t, fake_close_cb);
}

int
conn_request_flags(struct conn *c, const char *folder, const char *name,
    int64_t offset, int32_t size, const uint8_t hash[RECORD_HASH_LEN],
    unsigned int flags, conn_response_cb cb, void *arg)
{
	struct fake_resp	*r;

	assert_string_equal(folder, "f1");
	assert_non_null(name);
	if (c->eagain_left > 0) {
		c->eagain_left--;
		return -EAGAIN;
	}
	r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->name = xstrdup(name);
	r->off = offset;
	r->size = size;
	memcpy(r->hash, hash, RECORD_HASH_LEN);
	r->flags = flags;
	r->cb = cb;
	r->arg = arg;
	assert_int_equal(uv_timer_init(net_loop, &r->t), 0);
	r->t.data = r;
	if (net_hold > 0) {
		assert_true(net_nheld < (int)(sizeof(net_held) /
		    sizeof(net_held[0])));
		net_held[net_nheld++] = r;
		if (net_nheld == net_hold) {
			for (; net_nheld > 0; net_nheld--)
				assert_int_equal(uv_timer_start(
				    &net_held[net_nheld - 1]->t, fake_fire,
				    0, 0), 0);
		}
	} else
		assert_int_equal(uv_timer_start(&r->t, fake_fire, 0, 0), 0);
	c->requests++;
	c->outstanding++;
	if (c->outstanding > c->max_outstanding)
		c->max_outstanding = c->outstanding;
	return 0;
}

static struct conn *
fake_peer_for(int64_t device_idx, void *arg)
{
	size_t	i;

	(void)arg;
	for (i = 0; i < 2; i++)
		if (net_devs[i] == device_idx)
			return &net_conns[i];
	return NULL;
}

/* Parameters of a pass over the fixture's folder on `loop`. */
static void
pull_params_for(struct fx *f, uv_loop_t *loop, struct pull_params *pp)
{
	memset(pp, 0, sizeof(*pp));
	pp->loop = loop;
	pp->db = f->db;
	pp->folder_idx = f->idx;
	pp->folder_id = "f1";
	pp->root = f->root;
	pp->max_conflicts = f->max_conflicts;
	pp->versioning = f->versioning;
	pp->min_disk_free = f->min_disk_free;
	pp->ignore = f->ignore;
	pp->short_id = f->me;
	pp->on_done = on_done;
	pp->arg = f;
}

static int
run_pull(struct fx *f)
{
	struct pull_params	 pp;
	struct pull		*p = NULL;
	uv_loop_t		 loop;

	assert_int_equal(uv_loop_init(&loop), 0);
	pull_params_for(f, &loop, &pp);
	pp.on_local_change = on_change;
	pp.on_rescan = on_rescan;
	pp.peer_for = fake_peer_for;
	net_loop = &loop;
	f->done = false;
	f->changes = 0;
	f->rescans = 0;
	assert_int_equal(pull_start(&pp, &p), 0);
	/* on_done never runs from inside pull_start. */
	assert_false(f->done);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_true(f->done);
	assert_int_equal(uv_loop_close(&loop), 0);
	return f->status;
}

static void
test_pull_rename_from_local_blocks(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *l, *old;
	struct stat	 st;
	uint8_t		*data;
	size_t		 len = 3 * BS + 1000;
	char		*p;

	data = xmalloc(len);
	fill(data, len, 1);
	write_file(f, "a.bin", data, len);
	scan(f);
	old = local(f, "a.bin");

	/* The remote renamed a.bin to b.bin: a new b.bin with the same
	 * blocks, and a.bin deleted after our version. */
	r = remote_file(f, "b.bin", data, len, NULL, 1700000000, 0640);
	remote_put(f, r);
	record_free(r);
	r = remote_delete(f, "a.bin", 100);

	assert_int_equal(run_pull(f), 0);
	expect_file(f, "b.bin", data, len);
	assert_false(exists(f, "a.bin"));
	/* Every block was copied locally, none asked of a peer. */
	assert_int_equal(f->prog.blocks_local, 4);
	assert_int_equal(f->prog.bytes_local, len);
	assert_int_equal(f->prog.bytes_network, 0);
	assert_int_equal(f->prog.files_done, 2);
	assert_int_equal(f->changes, 2);

	/* Mode and mtime applied (bep-brief §10.11). */
	p = path_of(f, "b.bin");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(st.st_mtim.tv_sec, 1700000000);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	free(p);

	/* The local records are the received ones, not bumped (§10.6). */
	l = local(f, "b.bin");
	assert_int_equal(l->modified_by, f->them);
	assert_int_equal(l->inode, (uint64_t)st.st_ino);
	record_free(l);
	{
		struct record	*g = NULL;
		int64_t		 dev;

		assert_int_equal(model_global(f->db, f->idx, "b.bin", &g,
		    &dev), 0);
		l = local(f, "b.bin");
		assert_int_equal(record_vector_compare(&l->version,
		    &g->version), RECORD_EQUAL);
		assert_int_equal(l->block_size, g->block_size);
		assert_int_equal(l->permissions, 0640);
		record_free(l);
		record_free(g);
	}
	l = local(f, "a.bin");
	assert_true(l->deleted);
	assert_int_equal(record_vector_compare(&l->version, &r->version),
	    RECORD_EQUAL);
	assert_int_equal(l->modified_by, f->them);
	record_free(l);

	/* Nothing is needed any more, and a second pass does nothing. */
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 0);
	assert_int_equal(f->prog.need_files, 0);
	record_free(r);
	record_free(old);
	free(data);
}

static void
test_pull_user_change_not_overwritten(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *old, *l;
	uint8_t		 src[5000], mine[3000];
	struct timespec	 ts[2];
	char		*p;

	fill(src, sizeof(src), 2);
	fill(mine, sizeof(mine), 3);
	write_file(f, "src.bin", src, sizeof(src));
	write_file(f, "c.txt", "original", 8);
	write_file(f, "gone.txt", "keep me", 7);
	scan(f);
	old = local(f, "c.txt");

	/* A newer remote version of c.txt whose blocks we have. */
	r = remote_file(f, "c.txt", src, sizeof(src), &old->version,
	    1700000000, 0644);
	remote_put(f, r);
	record_free(r);
	record_free(old);
	/* And a remote deletion of gone.txt after our version. */
	record_free(remote_delete(f, "gone.txt", 100));

	/* The user edits both after the last scan (invariant 1). */
	write_file(f, "c.txt", mine, sizeof(mine));
	write_file(f, "gone.txt", "edited!", 7);
	p = path_of(f, "gone.txt");
	ts[0].tv_sec = ts[1].tv_sec = 1600000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	free(p);

	assert_int_equal(run_pull(f), 0);
	expect_file(f, "c.txt", mine, sizeof(mine));
	expect_file(f, "gone.txt", "edited!", 7);
	assert_int_equal(f->prog.rescans, 2);
	assert_int_equal(f->rescans, 2);
	assert_int_equal(f->prog.files_done, 0);
	assert_int_equal(f->changes, 0);
	/* Our records are untouched: the rescan decides. */
	l = local(f, "c.txt");
	assert_int_equal(l->size, 8);
	assert_int_equal(l->modified_by, f->me);
	record_free(l);
	l = local(f, "gone.txt");
	assert_false(l->deleted);
	record_free(l);
	assert_false(exists(f, ".syncthing.c.txt.tmp"));
}

/* Count entries of the root whose name starts with `prefix`; return the
 * last one in *name. */
static int
count_prefix(struct fx *f, const char *prefix, char **name)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	d = opendir(f->root);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (name != NULL) {
			free(*name);
			*name = xstrdup(e->d_name);
		}
	}
	closedir(d);
	return n;
}

/*
 * max_conflicts (bep-brief §10.7): with 1, each new conflict copy of a
 * file replaces the older one, and the removed copy is rescanned; with 0
 * no copy is made and the local version is replaced.
 */
static void
test_pull_max_conflicts(void **state)
{
	struct fx		*f = *state;
	struct record		*r;
	struct record_vector	 v;
	uint8_t			 src[3000];
	char			 mine[32], *copy = NULL, *first = NULL;
	int			 k;

	f->max_conflicts = 1;
	for (k = 0; k < 4; k++) {
		if (k == 3)
			f->max_conflicts = 0;
		snprintf(mine, sizeof(mine), "mine %d", k);
		write_file(f, "m.txt", mine, strlen(mine));
		/* Where the pull finds the new version's blocks. */
		fill(src, sizeof(src), 30 + (unsigned int)k);
		write_file(f, "src.bin", src, sizeof(src));
		scan(f);
		/* A remote version concurrent with ours, later mtime: it
		 * wins (§10.7). */
		memset(&v, 0, sizeof(v));
		record_vector_update(&v, f->them, util_now_unix() + 1000 +
		    10 * k);
		r = remote_file(f, "m.txt", src, sizeof(src), &v,
		    util_now_unix() + 1000 + k, 0644);
		record_vector_free(&v);
		remote_put(f, r);
		f->rescans = 0;
		assert_int_equal(run_pull(f), 0);
		expect_file(f, "m.txt", src, sizeof(src));
		assert_int_equal(count_prefix(f, "m.sync-conflict-", &copy), 1);
		if (k < 3) {
			/* The one copy left is the newest. */
			expect_file(f, copy, mine, strlen(mine));
			assert_int_equal(f->prog.conflicts, 1);
			/* The copy, and from the second on the removed
			 * older one, are rescanned. */
			assert_int_equal(f->rescans, k == 0 ? 1 : 2);
			if (k > 0)
				assert_false(exists(f, first));
			free(first);
			first = xstrdup(copy);
		} else {
			/* 0: nothing kept, the old copy is left alone. */
			assert_string_equal(copy, first);
			expect_file(f, copy, "mine 2", 6);
			assert_int_equal(f->prog.conflicts, 0);
		}
		record_free(r);
	}
	free(first);
	free(copy);
}

/* Concurrent versions of the same bytes make no conflict copy: the global
 * version (its mtime, its vector) is taken, and the blocks come from the
 * local file. */
static void
test_pull_concurrent_same_bytes_no_copy(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *old, *l;
	uint8_t		 src[7000];
	int64_t		 mtime = util_now_unix() + 1000;

	fill(src, sizeof(src), 12);
	write_file(f, "d.txt", src, sizeof(src));
	scan(f);
	old = local(f, "d.txt");
	r = remote_file(f, "d.txt", src, sizeof(src), NULL, mtime, 0644);
	assert_true(record_vector_concurrent(&r->version, &old->version));
	remote_put(f, r);

	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.conflicts, 0);
	assert_int_equal(count_prefix(f, "d.sync-conflict-", NULL), 0);
	assert_int_equal(f->prog.bytes_network, 0);
	expect_file(f, "d.txt", src, sizeof(src));
	l = local(f, "d.txt");
	assert_int_equal(record_vector_compare(&l->version, &r->version),
	    RECORD_EQUAL);
	assert_int_equal(l->modified_s, mtime);
	record_free(l);

	record_free(r);
	record_free(old);
}

static void
test_pull_concurrent_makes_conflict_copy(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *old, *l;
	uint8_t		 src[7000];
	char		 idtext[IDENTITY_SHORT_STR_SIZE];
	char		*copy = NULL, *want;

	fill(src, sizeof(src), 4);
	write_file(f, "src.bin", src, sizeof(src));
	write_file(f, "d.txt", "my version", 10);
	scan(f);
	old = local(f, "d.txt");

	/* A concurrent remote version (not built on ours) with a later
	 * mtime: it wins the conflict (bep-brief §10.7). */
	r = remote_file(f, "d.txt", src, sizeof(src), NULL,
	    util_now_unix() + 1000, 0644);
	assert_true(record_vector_concurrent(&r->version, &old->version));
	remote_put(f, r);

	assert_int_equal(run_pull(f), 0);
	expect_file(f, "d.txt", src, sizeof(src));
	assert_int_equal(f->prog.conflicts, 1);
	assert_int_equal(count_prefix(f, "d.sync-conflict-", &copy), 1);
	/* Named after the winner's modified_by (§17.22). */
	identity_short_format(f->them, idtext);
	want = xasprintf("-%s.txt", idtext);
	assert_true(strlen(copy) > strlen(want));
	assert_string_equal(copy + strlen(copy) - strlen(want), want);
	assert_true(conflict_is_copy(copy));
	expect_file(f, copy, "my version", 10);
	/* The folder is told to scan the copy in. */
	assert_non_null(f->rescan_name);
	assert_string_equal(f->rescan_name, copy);
	l = local(f, "d.txt");
	assert_int_equal(record_vector_compare(&l->version, &r->version),
	    RECORD_EQUAL);
	record_free(l);
	free(want);
	free(copy);
	record_free(r);
	record_free(old);
}

static void
test_pull_resumes_temp_file(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		*data, *junk;
	size_t		 len = 4 * BS;

	data = xmalloc(len);
	junk = xmalloc(BS);
	fill(data, len, 5);
	memset(junk, 0xEE, BS);
	/* Blocks 2 and 3 exist in another local file. */
	write_file(f, "other.bin", data + 2 * BS, 2 * BS);
	scan(f);
	/* An earlier pass wrote blocks 0 and 1 of big.bin to its temp file
	 * and was interrupted in block 2 (garbage there). */
	write_file(f, ".syncthing.big.bin.tmp", data, 2 * BS);
	{
		char	*p = path_of(f, ".syncthing.big.bin.tmp");
		int	 fd = open(p, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(util_pwrite_all(fd, junk, BS / 2, 2 * BS), 0);
		close(fd);
		free(p);
	}
	r = remote_file(f, "big.bin", data, len, NULL, 1700000000, 0600);
	remote_put(f, r);
	record_free(r);

	assert_int_equal(run_pull(f), 0);
	expect_file(f, "big.bin", data, len);
	assert_int_equal(f->prog.blocks_reused, 2);
	assert_int_equal(f->prog.bytes_reused, 2 * BS);
	assert_int_equal(f->prog.blocks_local, 2);
	assert_int_equal(f->prog.blocks_network, 0);
	assert_false(exists(f, ".syncthing.big.bin.tmp"));
	free(junk);
	free(data);
}

static void
test_pull_no_source_keeps_temp(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		 data[1000];

	fill(data, sizeof(data), 6);
	r = remote_file(f, "nowhere.bin", data, sizeof(data), NULL,
	    1700000000, 0644);
	remote_put(f, r);
	record_free(r);
	/* No peer and no local copy: the file fails for this pass. */
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 1);
	assert_int_equal(f->prog.files_no_source, 1);
	assert_false(exists(f, "nowhere.bin"));
}

/* Needed names that are ignored here are left alone and counted, so that
 * the folder can tell the index's need from what will really come. */
static void
test_pull_counts_ignored_need(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		 data[700];
	char		 err[256];

	fill(data, sizeof(data), 9);
	r = remote_file(f, "x.log", data, sizeof(data), NULL, 1700000000,
	    0644);
	remote_put(f, r);
	record_free(r);
	r = remote_file(f, "x.txt", data, sizeof(data), NULL, 1700000000,
	    0644);
	remote_put(f, r);
	record_free(r);
	assert_int_equal(ignore_parse("*.log\n", 6, ".stignore", NULL,
	    &f->ignore, err, sizeof(err)), 0);
	/* x.txt has no source (no peer): it fails, x.log is not tried. */
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.ignored_need, 1);
	assert_int_equal(f->prog.ignored_need_bytes, sizeof(data));
	assert_int_equal(f->prog.files_failed, 1);
	assert_int_equal(f->prog.files_no_source, 1);
	assert_false(exists(f, "x.log"));
	ignore_free(f->ignore);
	f->ignore = NULL;
}

/* A name the scanner flagged as ignored, deleted while it was, and then
 * no longer ignored: its record stays flagged (the file is gone, so no
 * scan replaces it), but only the patterns decide what is ignored, so
 * the peers' version is pulled. It was left alone forever, and the
 * status counted it as ignored, so the folder looked in sync. */
static void
test_pull_unignored_name_is_pulled(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *l;
	uint8_t		 old[500], data[700];
	char		 err[256], *p;

	fill(old, sizeof(old), 10);
	fill(data, sizeof(data), 11);
	write_file(f, "x.log", old, sizeof(old));
	write_file(f, "src.bin", data, sizeof(data));
	scan(f);
	assert_int_equal(ignore_parse("*.log\n", 6, ".stignore", NULL,
	    &f->ignore, err, sizeof(err)), 0);
	assert_int_equal(scan_run_once(f->db, f->idx, "f1", f->root, f->me,
	    f->ignore, false, NULL), 0);
	l = local(f, "x.log");
	assert_true(l->invalid && (l->local_flags & RECORD_LOCAL_IGNORED));
	record_free(l);
	p = path_of(f, "x.log");
	assert_int_equal(unlink(p), 0);
	free(p);
	ignore_free(f->ignore);
	f->ignore = NULL;
	scan(f);
	l = local(f, "x.log");
	assert_true(l->local_flags & RECORD_LOCAL_IGNORED);

	r = remote_file(f, "x.log", data, sizeof(data), &l->version,
	    1700000000, 0644);
	record_free(l);
	remote_put(f, r);
	record_free(r);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.ignored_need, 0);
	assert_int_equal(f->prog.files_failed, 0);
	expect_file(f, "x.log", data, sizeof(data));
	l = local(f, "x.log");
	assert_false(l->invalid);
	assert_false(l->local_flags & RECORD_LOCAL_IGNORED);
	record_free(l);
}

/* A temporary file's blocks count as reused once, when the file is in
 * place, however many passes found them while the rest had no source. */
static void
test_pull_reused_counted_once(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		*data;
	size_t		 len = 4 * BS;
	int		 i;

	data = xmalloc(len);
	fill(data, len, 8);
	write_file(f, ".syncthing.big.bin.tmp", data, 2 * BS);
	r = remote_file(f, "big.bin", data, len, NULL, 1700000000, 0600);
	remote_put(f, r);
	record_free(r);
	for (i = 0; i < 2; i++) {
		assert_int_equal(run_pull(f), 0);
		assert_int_equal(f->prog.files_no_source, 1);
		assert_int_equal(f->prog.bytes_reused, 0);
		assert_true(exists(f, ".syncthing.big.bin.tmp"));
	}
	/* Blocks 2 and 3 turn up in a local file. */
	write_file(f, "other.bin", data + 2 * BS, 2 * BS);
	scan(f);
	assert_int_equal(run_pull(f), 0);
	expect_file(f, "big.bin", data, len);
	assert_int_equal(f->prog.bytes_reused, 2 * BS);
	assert_int_equal(f->prog.blocks_reused, 2);
	assert_int_equal(f->prog.blocks_local, 2);
	free(data);
}

/* A newer remote version of e.txt whose blocks are in src.bin. */
static void
setup_update(struct fx *f, uint8_t *src, size_t len)
{
	struct record	*r, *old;

	fill(src, len, 7);
	write_file(f, "src.bin", src, len);
	write_file(f, "e.txt", "precious", 8);
	scan(f);
	old = local(f, "e.txt");
	r = remote_file(f, "e.txt", src, len, &old->version, 1700000000,
	    0644);
	remote_put(f, r);
	record_free(r);
	record_free(old);
}

static void
check_untouched(struct fx *f)
{
	struct record	*l;

	expect_file(f, "e.txt", "precious", 8);
	l = local(f, "e.txt");
	assert_int_equal(l->size, 8);
	assert_int_equal(l->modified_by, f->me);
	record_free(l);
}

static void
test_pull_fault_rename_keeps_original(void **state)
{
	struct fx	*f = *state;
	uint8_t		 src[3000];

	setup_update(f, src, sizeof(src));
	util_fault_set(UTIL_FAULT_RENAME, 1, EIO);
	assert_int_equal(run_pull(f), -EIO);
	util_fault_clear();
	check_untouched(f);
	/* The next pass finishes the job from the kept temp file. */
	assert_int_equal(run_pull(f), 0);
	expect_file(f, "e.txt", src, sizeof(src));
	assert_int_equal(f->prog.blocks_reused, 1);
}

static void
test_pull_fault_enospc_keeps_original(void **state)
{
	struct fx	*f = *state;
	uint8_t		 src[3000];

	setup_update(f, src, sizeof(src));
	util_fault_set(UTIL_FAULT_WRITE, 1, ENOSPC);
	/* A full disk stops the pass with the error (invariant 7). */
	assert_int_equal(run_pull(f), -ENOSPC);
	util_fault_clear();
	check_untouched(f);
	assert_int_equal(run_pull(f), 0);
	expect_file(f, "e.txt", src, sizeof(src));
}

/* A peer offers NAME.bin; its blocks are in the local NAME.src (for the
 * caller to scan), so no peer is needed to pull it. */
static void
offer_with_source(struct fx *f, const char *name, const uint8_t *data,
    size_t len)
{
	struct record	*r;
	char		*src = xasprintf("%s.src", name);
	char		*bin = xasprintf("%s.bin", name);

	write_file(f, src, data, len);
	r = remote_file(f, bin, data, len, NULL, 1700000000, 0644);
	remote_put(f, r);
	record_free(r);
	free(src);
	free(bin);
}

/*
 * min_disk_free: a file that would leave less free space than it keeps
 * waits (counted, its empty temp file gone), smaller ones still come, and
 * it comes once there is room. The file system's figures are faked.
 */
static void
test_pull_waits_for_disk_space(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		 big[3000], small[100];

	fill(big, sizeof(big), 3);
	fill(small, sizeof(small), 4);
	offer_with_source(f, "big", big, sizeof(big));
	offer_with_source(f, "small", small, sizeof(small));
	scan(f);

	/* 1,500 bytes free, 1,000 kept: 500 to use. */
	f->min_disk_free.bytes = 1000;
	util_fault_space(1500, 1000000);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 1);
	assert_int_equal(f->prog.files_no_space, 1);
	assert_int_equal(f->prog.space_need, sizeof(big));
	/* small.bin (100 bytes) may have been written, or promised, or
	 * neither when big.bin was looked at. */
	assert_in_range(f->prog.space_avail, 1400, 1500);
	assert_in_range(f->prog.space_avail - f->prog.space_promised, 1400,
	    1500);
	assert_int_equal(f->prog.space_keep, 1000);
	expect_file(f, "small.bin", small, sizeof(small));
	assert_false(exists(f, "big.bin"));
	assert_false(exists(f, ".syncthing.big.bin.tmp"));

	/* 1 % of 1,000,000 kept: 4,000 is not enough either. */
	f->min_disk_free.bytes = 0;
	f->min_disk_free.ppm = 10000;
	util_fault_space(4000, 1000000);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_no_space, 1);
	assert_int_equal(f->prog.space_keep, 10000);
	assert_false(exists(f, "big.bin"));

	/* 13,000 free: 3,000 above the minimum is just enough. */
	util_fault_space(13000, 1000000);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 0);
	assert_int_equal(f->prog.files_no_space, 0);
	expect_file(f, "big.bin", big, sizeof(big));

	/* A file system that reports no size at all (some FUSE ones) is
	 * not judged: "0 of 0 free" would stop every pull there. */
	r = remote_file(f, "more.bin", big, sizeof(big), NULL, 1700000000,
	    0644);
	remote_put(f, r);
	record_free(r);
	f->min_disk_free.ppm = 0;
	f->min_disk_free.bytes = 1000;
	util_fault_space(0, 0);
	assert_int_equal(run_pull(f), 0);
	util_fault_clear();
	assert_int_equal(f->prog.files_no_space, 0);
	expect_file(f, "more.bin", big, sizeof(big));
}

/* Files prepared together see the same free space: each would fit alone,
 * both together would not, so the second waits for the next pass, whether
 * the first is still under way (its bytes are promised) or written (the
 * faked free space shrinks by what is written). */
static void
test_pull_space_promised_to_files_in_flight(void **state)
{
	struct fx	*f = *state;
	uint8_t		 one[3000], two[3000];

	fill(one, sizeof(one), 5);
	fill(two, sizeof(two), 6);
	offer_with_source(f, "one", one, sizeof(one));
	offer_with_source(f, "two", two, sizeof(two));
	scan(f);

	/* 5,000 free, 1,000 kept: 4,000 to use, 6,000 wanted. */
	f->min_disk_free.bytes = 1000;
	util_fault_space(5000, 1000000);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_no_space, 1);
	assert_int_equal(f->prog.files_failed, 1);
	assert_int_equal(f->prog.space_need, 3000);
	assert_true(exists(f, "one.bin") != exists(f, "two.bin"));

	/* Room again: the promise ended with the file, the other fits. */
	util_fault_space(4000, 1000000);
	assert_int_equal(run_pull(f), 0);
	util_fault_clear();
	assert_int_equal(f->prog.files_no_space, 0);
	assert_int_equal(f->prog.files_failed, 0);
	expect_file(f, "one.bin", one, sizeof(one));
	expect_file(f, "two.bin", two, sizeof(two));
}

static void
test_pull_fault_fsync_keeps_original(void **state)
{
	struct fx	*f = *state;
	uint8_t		 src[3000];

	setup_update(f, src, sizeof(src));
	util_fault_set(UTIL_FAULT_FSYNC, 1, EIO);
	assert_int_equal(run_pull(f), -EIO);
	util_fault_clear();
	check_untouched(f);
}

static void
test_pull_finds_finished_file_after_crash(void **state)
{
	struct fx	*f = *state;
	struct record	*l;
	struct timespec	 ts[2];
	struct stat	 st;
	uint8_t		 src[3000];
	char		*p;

	setup_update(f, src, sizeof(src));
	/* A pass renamed the new e.txt into place and died before storing
	 * its record (invariant 4): the file is already the global one. */
	write_file(f, "e.txt", src, sizeof(src));
	p = path_of(f, "e.txt");
	ts[0].tv_sec = ts[1].tv_sec = 1700000000;
	ts[0].tv_nsec = ts[1].tv_nsec = 123456789;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	assert_int_equal(stat(p, &st), 0);
	free(p);

	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 1);
	assert_int_equal(f->prog.rescans, 0);
	assert_int_equal(f->prog.blocks_local, 0);
	l = local(f, "e.txt");
	assert_int_equal(l->modified_by, f->them);
	assert_int_equal(l->size, (int64_t)sizeof(src));
	assert_int_equal(l->inode, (uint64_t)st.st_ino);
	record_free(l);
	expect_file(f, "e.txt", src, sizeof(src));
}

static void
test_pull_cancel(void **state)
{
	struct fx		*f = *state;
	struct pull_params	 pp;
	struct pull		*p = NULL;
	uv_loop_t		 loop;
	uint8_t			 src[3000];

	setup_update(f, src, sizeof(src));
	assert_int_equal(uv_loop_init(&loop), 0);
	pull_params_for(f, &loop, &pp);
	assert_int_equal(pull_start(&pp, &p), 0);
	pull_cancel(p);
	assert_false(f->done);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_true(f->done);
	assert_int_equal(f->status, -ECANCELED);
	assert_int_equal(uv_loop_close(&loop), 0);
	check_untouched(f);
	/* Missing parameters fail at once. */
	pp.on_done = NULL;
	assert_int_equal(pull_start(&pp, &p), -EINVAL);
	assert_null(p);
}

/* A deletion takes the name's temporary file with it: a transfer stopped
 * half way (say a big file) can never be finished once the file is gone
 * everywhere, and would hold its space for a day. */
static void
test_pull_delete_removes_temp_file(void **state)
{
	struct fx	*f = *state;

	write_file(f, "e.bin", "old", 3);
	scan(f);
	write_file(f, ".syncthing.e.bin.tmp", "half of the new", 15);
	record_free(remote_delete(f, "e.bin", 100));
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 1);
	assert_false(exists(f, "e.bin"));
	assert_false(exists(f, ".syncthing.e.bin.tmp"));
}

static void
test_pull_delete_keeps_nonempty_dir(void **state)
{
	struct fx	*f = *state;
	struct record	*l;
	const char	*names[] = { "d/f", "d" };
	char		*p;
	size_t		 i;

	p = path_of(f, "d");
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	write_file(f, "d/f", "file", 4);
	scan(f);
	for (i = 0; i < 2; i++)
		record_free(remote_delete(f, names[i], 100));
	/* A file the index does not know yet appears in d. */
	write_file(f, "d/new", "new", 3);

	assert_int_equal(run_pull(f), 0);
	assert_false(exists(f, "d/f"));
	expect_file(f, "d/new", "new", 3);
	assert_true(exists(f, "d"));
	assert_int_equal(f->prog.files_done, 1);
	assert_int_equal(f->prog.files_failed, 1);
	l = local(f, "d/f");
	assert_true(l->deleted);
	record_free(l);
	l = local(f, "d");
	assert_false(l->deleted);
	record_free(l);

	/* Once d is empty, the next pass removes it. */
	p = path_of(f, "d/new");
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(run_pull(f), 0);
	assert_false(exists(f, "d"));
}

static void
test_pull_missing_marker_stops(void **state)
{
	struct fx	*f = *state;
	uint8_t		 src[3000];
	char		*p;

	setup_update(f, src, sizeof(src));
	p = path_of(f, ".stfolder");
	assert_int_equal(rmdir(p), 0);
	free(p);
	/* Invariant 6: nothing is pulled into a folder without marker. */
	assert_int_equal(run_pull(f), SH_EFOLDER);
	check_untouched(f);
	assert_false(exists(f, ".syncthing.e.txt.tmp"));
}

static void
test_pull_dirs_symlinks_empty_files(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *l;
	struct stat	 st;
	uint8_t		 data[2000];
	char		 buf[256], *p;
	ssize_t		 n;

	fill(data, sizeof(data), 8);
	write_file(f, "seed.bin", data, sizeof(data));
	scan(f);

	remote_dir(f, "sub", 0750);
	r = record_new();
	r->name = xstrdup("sub/link");
	r->type = RECORD_TYPE_SYMLINK;
	r->no_permissions = true;
	r->symlink_target = xstrdup("../seed.bin");
	r->modified_by = f->them;
	record_vector_update(&r->version, f->them, util_now_unix());
	remote_put(f, r);
	record_free(r);
	r = remote_file(f, "sub/copy.bin", data, sizeof(data), NULL,
	    1700000000, 0644);
	remote_put(f, r);
	record_free(r);
	r = remote_file(f, "sub/empty", (const uint8_t *)"", 0, NULL,
	    1700000000, 0644);
	remote_put(f, r);
	record_free(r);

	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 4);
	p = path_of(f, "sub");
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	free(p);
	p = path_of(f, "sub/link");
	n = readlink(p, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "../seed.bin");
	free(p);
	expect_file(f, "sub/copy.bin", data, sizeof(data));
	expect_file(f, "sub/empty", "", 0);
	l = local(f, "sub/link");
	assert_int_equal(l->type, RECORD_TYPE_SYMLINK);
	assert_string_equal(l->symlink_target, "../seed.bin");
	record_free(l);

	/* A rescan finds nothing new: what the pull stored is what is on
	 * disk, so no version gets bumped. */
	{
		int64_t	seq_before, seq_after;

		assert_int_equal(db_max_sequence(f->db, f->idx,
		    DB_LOCAL_DEVICE, &seq_before), 0);
		scan(f);
		assert_int_equal(db_max_sequence(f->db, f->idx,
		    DB_LOCAL_DEVICE, &seq_after), 0);
		assert_int_equal(seq_before, seq_after);
	}
}

static void
test_pull_refuses_symlinked_parent(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		 data[1500];
	char		*outside, *link, *p;

	fill(data, sizeof(data), 9);
	write_file(f, "seed.bin", data, sizeof(data));
	outside = util_path_join(f->dir, "outside");
	assert_int_equal(mkdir(outside, 0755), 0);
	link = path_of(f, "evil");
	assert_int_equal(symlink(outside, link), 0);
	scan(f);
	/* A peer sends evil/x.bin while evil is a symlink here
	 * (invariant 5): nothing may be written through it. */
	r = remote_file(f, "evil/x.bin", data, sizeof(data), NULL,
	    1700000000, 0644);
	remote_put(f, r);
	record_free(r);

	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 1);
	p = util_path_join(outside, "x.bin");
	assert_int_not_equal(access(p, F_OK), 0);
	free(p);
	p = util_path_join(outside, ".syncthing.x.bin.tmp");
	assert_int_not_equal(access(p, F_OK), 0);
	free(p);
	free(link);
	free(outside);
}

/*
 * `len` bytes of `name` (content from `seed`) held in the same version by
 * two fake peers, net_conns[0] and [1]; the data is what they serve.
 */
static struct record *
two_peer_file(struct fx *f, const char *name, uint8_t *data, size_t len,
    int seed)
{
	struct device_id	 other;
	struct record		*r;

	fill(data, len, seed);
	net_data = data;
	memset(net_conns, 0, sizeof(net_conns));
	memset(&other, 0x5A, sizeof(other));
	net_devs[0] = f->rdev;
	assert_int_equal(db_device_idx(f->db, &other, &net_devs[1]), 0);
	r = remote_file(f, name, data, len, NULL, 1700000000, 0644);
	remote_put(f, r);
	r->sequence = 1;
	assert_int_equal(db_remote_put(f->db, f->idx, net_devs[1], r), 0);
	return r;
}

static void
test_pull_blocks_from_peers(void **state)
{
	struct fx		*f = *state;
	struct record		*r, *l;
	uint8_t			*data;
	size_t			 len = 8 * BS + 77;

	data = xmalloc(len);
	r = two_peer_file(f, "net.bin", data, len, 10);
	/* The first peer fails every block; the second is busy at first. */
	net_conns[0].fail = true;
	net_conns[1].eagain_left = 3;

	assert_int_equal(run_pull(f), 0);
	expect_file(f, "net.bin", data, len);
	assert_int_equal(f->prog.blocks_network, 9);
	assert_int_equal(f->prog.bytes_network, len);
	assert_int_equal(f->prog.blocks_local, 0);
	/* Blocks were spread over both peers, and every block the first
	 * one failed went to the second. */
	assert_true(net_conns[0].requests > 0);
	assert_int_equal(net_conns[1].requests, 9);
	assert_int_equal(net_conns[1].eagain_left, 0);
	l = local(f, "net.bin");
	assert_int_equal(record_vector_compare(&l->version, &r->version),
	    RECORD_EQUAL);
	record_free(l);

	/* No peer at all that can give the blocks: the file fails and
	 * nothing is put in place. */
	record_free(r);
	fill(data, len, 11);
	r = remote_file(f, "net2.bin", data, len, NULL, 1700000000, 0644);
	remote_put(f, r);
	memset(net_conns, 0, sizeof(net_conns));
	net_conns[0].fail = true;
	net_devs[1] = -1;
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 1);
	assert_false(exists(f, "net2.bin"));
	assert_true(exists(f, ".syncthing.net2.bin.tmp"));
	record_free(r);
	net_data = NULL;
	free(data);
}

/* Can this file system take O_DIRECT writes (tmpfs before Linux 6.6 not)? */
static bool
direct_works(struct fx *f)
{
	char	*path = xasprintf("%s/.probe", f->root);
	void	*buf = util_bigbuf_alloc(UTIL_BIGBUF_MIN);
	bool	 ok;
	int	 fd;

	memset(buf, 0, UTIL_BIGBUF_MIN);
	fd = open(path, O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
	ok = fd >= 0 && pwrite(fd, buf, UTIL_BIGBUF_MIN, 0) == UTIL_BIGBUF_MIN;
	if (fd >= 0)
		close(fd);
	unlink(path);
	util_bigbuf_free(buf);
	free(path);
	return ok;
}

/*
 * A file of at least 4 MiB: its full blocks go past the page cache
 * (invariant 10), the short last one through it; a write that O_DIRECT
 * refuses (EINVAL) is made through the page cache and the file is whole.
 */
static void
test_pull_big_file_direct(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	uint8_t		*data;
	size_t		 len = 40 * BS + 5;
	bool		 direct = direct_works(f);

	data = xmalloc(len);
	r = two_peer_file(f, "big.bin", data, len, 21);
	assert_int_equal(run_pull(f), 0);
	expect_file(f, "big.bin", data, len);
	assert_int_equal(f->prog.bytes_network, len);
	assert_int_equal(f->prog.bytes_direct, direct ? 40 * BS : 0);
	record_free(r);

	fill(data, len, 22);
	r = remote_file(f, "big2.bin", data, len, NULL, 1700000000, 0644);
	remote_put(f, r);
	memset(net_conns, 0, sizeof(net_conns));
	util_fault_set(UTIL_FAULT_WRITE, 1, EINVAL);
	assert_int_equal(run_pull(f), 0);
	util_fault_clear();
	expect_file(f, "big2.bin", data, len);
	assert_int_equal(f->prog.files_failed, 0);
	assert_true(f->prog.bytes_direct < 40 * BS);
	record_free(r);
	net_data = NULL;
	free(data);
}

/*
 * Invariant 3 when the puller hashes network blocks itself (multi-block
 * files ask conn not to): a peer whose blocks are changed on the way is
 * caught on the pool and every block goes to the honest peer; with only
 * the liar, nothing is put in place.
 */
static void
test_pull_bad_block_from_peer_rejected(void **state)
{
	struct fx		*f = *state;
	struct record		*r;
	uint8_t			*data;
	size_t			 len = 6 * BS + 5;

	data = xmalloc(len);
	r = two_peer_file(f, "lie.bin", data, len, 13);
	net_conns[0].lie = true;
	assert_int_equal(run_pull(f), 0);
	expect_file(f, "lie.bin", data, len);
	assert_true(net_conns[0].requests > 0);
	assert_int_equal(net_conns[1].requests, 7);
	assert_int_equal(f->prog.blocks_network, 7);
	record_free(r);

	fill(data, len, 14);
	r = remote_file(f, "lie2.bin", data, len, NULL, 1700000000, 0644);
	remote_put(f, r);
	memset(net_conns, 0, sizeof(net_conns));
	net_conns[0].lie = true;
	net_devs[1] = -1;
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 1);
	assert_false(exists(f, "lie2.bin"));
	record_free(r);
	net_data = NULL;
	free(data);
}

#define GROUP_FILES	6

/*
 * GROUP_FILES local files g0.. with newer remote versions whose blocks
 * only a peer has; the answers all come on one loop turn, so the first
 * file to finish forms a group alone and the others share the next one.
 * Returns the new content (GROUP_LEN bytes, same for every file).
 */
#define GROUP_LEN	1000
static uint8_t *
setup_group(struct fx *f)
{
	struct record	*r, *old;
	uint8_t		*data;
	char		 name[16], mine[16];
	int		 i;

	data = xmalloc(GROUP_LEN);
	fill(data, GROUP_LEN, 12);
	for (i = 0; i < GROUP_FILES; i++) {
		(void)snprintf(name, sizeof(name), "g%d", i);
		(void)snprintf(mine, sizeof(mine), "old %d", i);
		write_file(f, name, mine, strlen(mine));
	}
	scan(f);
	for (i = 0; i < GROUP_FILES; i++) {
		(void)snprintf(name, sizeof(name), "g%d", i);
		old = local(f, name);
		r = remote_file(f, name, data, GROUP_LEN, &old->version,
		    1700000000, 0644);
		remote_put(f, r);
		record_free(r);
		record_free(old);
	}
	net_data = data;
	memset(net_conns, 0, sizeof(net_conns));
	net_devs[0] = f->rdev;
	net_devs[1] = -1;
	net_hold = GROUP_FILES;
	net_fx = f;
	return data;
}

/* Is g<i> still the user's old file with its old record? */
static bool
group_untouched(struct fx *f, int i)
{
	struct record	*l;
	char		 name[16], mine[16], *p, *got = NULL;
	size_t		 got_len = 0;
	bool		 same;

	(void)snprintf(name, sizeof(name), "g%d", i);
	(void)snprintf(mine, sizeof(mine), "old %d", i);
	p = path_of(f, name);
	assert_int_equal(util_read_file(p, 1 << 20, &got, &got_len), 0);
	same = got_len == strlen(mine) && memcmp(got, mine, got_len) == 0;
	free(got);
	free(p);
	l = local(f, name);
	if (same)
		assert_int_equal(l->modified_by, f->me);
	else
		assert_int_equal(l->modified_by, f->them);
	record_free(l);
	return same;
}

static void
edit_g3(const char *name)
{
	if (strcmp(name, "g3") == 0)
		write_file(net_fx, "g3", "mine, not yours", 15);
}

/*
 * Invariant 1 inside a finish group: g3 is written by the user after its
 * PREP checked it (while its block is on the way). The group's check
 * right before the rename sees it: g3 keeps the user's data and record
 * and is rescanned; the other files of the group are replaced.
 */
static void
test_pull_group_skips_file_changed_before_rename(void **state)
{
	struct fx	*f = *state;
	struct record	*l;
	uint8_t		*data;
	char		 name[16];
	int		 i;

	data = setup_group(f);
	net_hook = edit_g3;
	assert_int_equal(run_pull(f), 0);
	for (i = 0; i < GROUP_FILES; i++) {
		if (i == 3)
			continue;
		(void)snprintf(name, sizeof(name), "g%d", i);
		expect_file(f, name, data, GROUP_LEN);
		assert_false(group_untouched(f, i));
	}
	expect_file(f, "g3", "mine, not yours", 15);
	l = local(f, "g3");
	assert_int_equal(l->modified_by, f->me);
	assert_int_equal(l->size, 5);
	record_free(l);
	assert_int_equal(f->rescans, 1);
	assert_string_equal(f->rescan_name, "g3");
	assert_int_equal(f->prog.files_done, GROUP_FILES - 1);
	assert_int_equal(f->changes, GROUP_FILES - 1);
	free(data);
}

/*
 * Invariants 4, 7 and 9 with groups: the third sync (the first file's
 * group made two: its temp file and its directory) is the one of the
 * second group, and it fails. None of that group's files is renamed or
 * recorded, the pass stops with the error, and every temporary file
 * stays complete: the next pass finishes them all with no peer.
 */
static void
test_pull_group_sync_failure_commits_nothing(void **state)
{
	struct fx	*f = *state;
	uint8_t		*data;
	char		 name[16], *tmp;
	int		 i, placed = 0;

	data = setup_group(f);
	util_fault_set(UTIL_FAULT_FSYNC, 3, EIO);
	assert_int_equal(run_pull(f), -EIO);
	util_fault_clear();
	for (i = 0; i < GROUP_FILES; i++) {
		(void)snprintf(name, sizeof(name), "g%d", i);
		if (!group_untouched(f, i)) {
			expect_file(f, name, data, GROUP_LEN);
			placed++;
			continue;
		}
		tmp = pull_temp_name(name);
		assert_true(exists(f, tmp));
		free(tmp);
	}
	/* Only the lone first file made it, record and all. */
	assert_int_equal(placed, 1);
	assert_int_equal(f->changes, 1);

	net_hold = 0;
	net_conns[0].fail = true;
	assert_int_equal(run_pull(f), 0);
	for (i = 0; i < GROUP_FILES; i++) {
		(void)snprintf(name, sizeof(name), "g%d", i);
		expect_file(f, name, data, GROUP_LEN);
		assert_false(group_untouched(f, i));
	}
	assert_int_equal(f->prog.blocks_reused, GROUP_FILES - 1);
	assert_int_equal(f->prog.bytes_network, 0);
	assert_int_equal(f->changes, GROUP_FILES - 1);
	free(data);
}

/*
 * Directories and deletions run side by side, but never with a job above
 * or below them: a nested tree is created (each directory after its
 * parent) and deleted (each directory after what was in it) in one pass
 * each, with no failure.
 */
static void
test_pull_nested_dirs_side_by_side(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	const char	*dirs[] = { "t", "u", "t/a", "t/x", "t/y", "u/v",
			    "t/a/b", "u/v/w", "t/a/b/c", "t/a/b/c/d" };
	const char	*files[] = { "t/a/b/c/d/f", "u/v/w/g", "t/x/h" };
	size_t		 i, nd = sizeof(dirs) / sizeof(dirs[0]);
	size_t		 nf = sizeof(files) / sizeof(files[0]);

	for (i = 0; i < nd; i++)
		remote_dir(f, dirs[i], 0755);
	for (i = 0; i < nf; i++) {
		r = remote_file(f, files[i], (const uint8_t *)"", 0, NULL,
		    1700000000, 0644);
		remote_put(f, r);
		record_free(r);
	}
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 0);
	assert_int_equal(f->prog.files_done, nd + nf);
	for (i = 0; i < nf; i++)
		assert_true(exists(f, files[i]));

	/* Everything is deleted remotely. */
	for (i = 0; i < nd + nf; i++)
		record_free(remote_delete(f, i < nd ? dirs[i] :
		    files[i - nd], 100));
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_failed, 0);
	assert_int_equal(f->prog.files_done, nd + nf);
	assert_false(exists(f, "t"));
	assert_false(exists(f, "u"));
}

static void
test_pull_temp_name(void **state)
{
	char	 longname[200], *t;

	(void)state;
	t = pull_temp_name("a.txt");
	assert_string_equal(t, ".syncthing.a.txt.tmp");
	free(t);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	t = pull_temp_name(longname);
	/* bep-brief §10.12: hashed when longer than 145 bytes. */
	assert_int_equal(strlen(t), strlen(".syncthing.") + 64 + 4);
	assert_true(record_name_internal(t));
	free(t);
}

/* A record without permissions (a Windows peer's, bep-brief §10.11) is
 * written 0644 and the next scan does not take the mode for a local
 * change: no new version would bounce back to the peer. */
static void
test_pull_no_permissions_not_a_change(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *l;
	struct stat	 st;
	uint8_t		 data[3000];
	int64_t		 seq;
	char		*p;

	fill(data, sizeof(data), 5);
	write_file(f, "seed.bin", data, sizeof(data));	/* blocks found here */
	scan(f);
	r = remote_file(f, "win.txt", data, sizeof(data), NULL, 1700000000,
	    0666);
	r->no_permissions = true;
	remote_put(f, r);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 1);
	p = path_of(f, "win.txt");
	assert_int_equal(stat(p, &st), 0);
	free(p);
	assert_int_equal(st.st_mode & 0777, 0644);
	l = local(f, "win.txt");
	assert_true(l->no_permissions);
	seq = l->sequence;
	record_free(l);
	scan(f);
	l = local(f, "win.txt");
	assert_int_equal(l->sequence, seq);
	assert_int_equal(record_vector_compare(&l->version, &r->version),
	    RECORD_EQUAL);
	record_free(l);
	record_free(r);
}

#define NOBODY	65534

/* One pass without cmocka (a forked child must not longjmp into the
 * runner): files done, or 100 + what failed. */
static int
pull_child(struct fx *f)
{
	struct pull_params	 pp;
	struct pull		*p = NULL;
	uv_loop_t		 loop;
	char			*dbp;

	if (geteuid() == 0 && (setgroups(0, NULL) != 0 ||
	    setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
		return 101;
	dbp = util_path_join(f->dir, "index.db");
	if (db_open(dbp, &f->db) != 0)
		return 102;
	free(dbp);
	if (uv_loop_init(&loop) != 0)
		return 103;
	pull_params_for(f, &loop, &pp);
	f->done = false;
	if (pull_start(&pp, &p) != 0 || uv_run(&loop, UV_RUN_DEFAULT) != 0 ||
	    !f->done)
		return 104;
	if (f->status != 0)
		return 105;
	return (int)f->prog.files_done;
}

/* A directory received read-only (0555) still takes its files in the same
 * pass, and keeps its mode: the puller sets the owner write bit around
 * each create and rename (util_wd_*). Root ignores modes, so as root the
 * pass runs in a child as nobody, over a tree nobody owns. */
static void
test_pull_into_readonly_dir(void **state)
{
	struct fx	*f = *state;
	struct record	*r;
	struct stat	 st;
	uint8_t		 data[5000];
	char		*p, *cmd;
	pid_t		 pid;
	int		 status;

	fill(data, sizeof(data), 9);
	write_file(f, "seed.bin", data, sizeof(data));	/* blocks found here */
	scan(f);
	remote_dir(f, "ro", 0555);
	r = remote_file(f, "ro/a.bin", data, sizeof(data), NULL, 1700000000,
	    0644);
	remote_put(f, r);
	record_free(r);

	db_close(f->db);
	f->db = NULL;
	if (geteuid() == 0) {
		assert_int_equal(chmod(f->dir, 0755), 0);
		cmd = xasprintf("chown -R %d:%d '%s'", NOBODY, NOBODY, f->dir);
		assert_int_equal(system(cmd), 0);
		free(cmd);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(pull_child(f));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 2);
	p = util_path_join(f->dir, "index.db");
	assert_int_equal(db_open(p, &f->db), 0);
	free(p);
	expect_file(f, "ro/a.bin", data, sizeof(data));
	p = path_of(f, "ro");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0555);
	/* Writable again so teardown can remove the tree. */
	assert_int_equal(chmod(p, 0755), 0);
	free(p);
}

static int
count_versions(const struct version_entry *e, void *arg)
{
	int	*n = arg;

	(void)e;
	(*n)++;
	return 0;
}

static int
last_stored(const struct version_entry *e, void *arg)
{
	char	**out = arg;

	free(*out);
	*out = xasprintf("%s/%s", VERSION_DIR, e->stored);
	return 0;
}

/* With versioning, a file replaced by a remote edit and then deleted by
 * the remote is kept in .stversions both times, with its content. */
static void
test_pull_keeps_versions(void **state)
{
	struct fx	*f = *state;
	struct record	*r, *l;
	uint8_t		 old[2000], neu[3000];
	char		*vp = NULL;
	int		 n = 0;

	f->versioning = CONFIG_VERSIONING_SIMPLE;
	fill(old, sizeof(old), 3);
	fill(neu, sizeof(neu), 4);
	write_file(f, "v.txt", old, sizeof(old));
	write_file(f, "seed.bin", neu, sizeof(neu));	/* blocks found here */
	scan(f);
	l = local(f, "v.txt");
	r = remote_file(f, "v.txt", neu, sizeof(neu), &l->version,
	    1700000000, 0644);
	remote_put(f, r);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.files_done, 1);
	assert_int_equal(f->prog.versions_kept, 1);
	expect_file(f, "v.txt", neu, sizeof(neu));
	assert_int_equal(version_list(f->root, "v.txt", count_versions, &n),
	    0);
	assert_int_equal(n, 1);
	assert_int_equal(version_list(f->root, "v.txt", last_stored, &vp), 0);
	expect_file(f, vp, old, sizeof(old));
	free(vp);
	record_free(l);

	/* The remote deletes it after the version we now have. */
	record_free(r);
	r = remote_delete(f, "v.txt", 200);
	assert_int_equal(run_pull(f), 0);
	assert_int_equal(f->prog.versions_kept, 1);
	assert_false(exists(f, "v.txt"));
	n = 0;
	assert_int_equal(version_list(f->root, "v.txt", count_versions, &n),
	    0);
	assert_int_equal(n, 2);
	/* The newest version is the deleted content; nothing else kept
	 * (seed.bin was never replaced). */
	n = 0;
	assert_int_equal(version_list(f->root, NULL, count_versions, &n), 0);
	assert_int_equal(n, 2);
	record_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pull_temp_name),
		cmocka_unit_test_setup_teardown(
		    test_pull_keeps_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_into_readonly_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_no_permissions_not_a_change, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_rename_from_local_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_user_change_not_overwritten, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_concurrent_makes_conflict_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_max_conflicts, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_resumes_temp_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_no_source_keeps_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_fault_rename_keeps_original, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_fault_enospc_keeps_original, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_waits_for_disk_space, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_space_promised_to_files_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_reused_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_concurrent_same_bytes_no_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_unignored_name_is_pulled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_counts_ignored_need, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_fault_fsync_keeps_original, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_missing_marker_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_finds_finished_file_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_delete_keeps_nonempty_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_delete_removes_temp_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_dirs_symlinks_empty_files, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_refuses_symlinked_parent, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_bad_block_from_peer_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_big_file_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_blocks_from_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_group_skips_file_changed_before_rename, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_group_sync_failure_commits_nothing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pull_nested_dirs_side_by_side, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

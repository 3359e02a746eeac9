/* SPDX-License-Identifier: MIT */
/*
 * The global view's rules (bep-brief §10.7) and queries over the derived
 * state the index keeps per name (db.c invariant 7).
 *
 * The global version of a name is the best of all devices' records under
 * model_better(): a valid record beats an invalid one; a dominating vector
 * beats the one it dominates; concurrent vectors go to WinsConflict (1.x):
 * the non-deleted one, then the later mtime, then ConcurrentGreater at the
 * lowest differing id. A device needs the global version unless it is
 * invalid or has an empty vector, it is a deletion of a name the device
 * never had, or the device's own record is Greater or Equal.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "shoal/db.h"
#include "shoal/model.h"

static bool
rec_invalid(const struct record *r)
{
	return r->invalid || r->local_flags != 0;
}

bool
model_wins_conflict(const struct record *a, const struct record *b)
{
	if (rec_invalid(a) != rec_invalid(b))
		return !rec_invalid(a);
	/* 1.x: a modification beats a deletion (bep-brief §10.7 rule 2). */
	if (a->deleted != b->deleted)
		return !a->deleted;
	if (a->modified_s != b->modified_s)
		return a->modified_s > b->modified_s;
	if (a->modified_ns != b->modified_ns)
		return a->modified_ns > b->modified_ns;
	return record_vector_compare(&a->version, &b->version) ==
	    RECORD_CONCURRENT_GREATER;
}

bool
model_better(const struct record *a, const struct record *b)
{
	if (rec_invalid(a) != rec_invalid(b))
		return !rec_invalid(a);
	switch (record_vector_compare(&a->version, &b->version)) {
	case RECORD_GREATER:
		return true;
	case RECORD_LESSER:
	case RECORD_EQUAL:
		return false;
	case RECORD_CONCURRENT_GREATER:
	case RECORD_CONCURRENT_LESSER:
		return model_wins_conflict(a, b);
	}
	return false;
}

bool
model_needs(const struct record *have, const struct record *global)
{
	if (rec_invalid(global) || global->version.count == 0)
		return false;
	/* A record the scanner flagged as ignored holds nothing: the flag
	 * bumped its vector, which may dominate the global one, yet the name
	 * is needed like one we never had. The puller leaves it alone while
	 * a pattern matches (the status does not count it then), and pulls
	 * it once none does, also when the file went meanwhile and no scan
	 * replaces the record. */
	if (have == NULL || (have->local_flags & RECORD_LOCAL_IGNORED))
		return !global->deleted;
	return !record_vector_greater_equal(&have->version, &global->version);
}

int
model_global(struct db *db, int64_t folder, const char *name,
    struct record **out, int64_t *device)
{
	int64_t	dev;
	int	rc;

	*out = NULL;
	rc = db_global_device(db, folder, name, &dev);
	if (rc != 0)
		return rc;
	rc = db_file_get(db, folder, dev, name, out);
	if (rc != 0)
		return rc;
	if (device != NULL)
		*device = dev;
	return 0;
}

int
model_availability(struct db *db, int64_t folder, const char *name,
    const struct record_vector *v, int64_t *devices, size_t max,
    size_t *count)
{
	return db_availability(db, folder, name, v, devices, max, count);
}

struct need_walk {
	model_need_cb	 cb;
	void		*arg;
};

static int
need_adapt(const struct db_need *n, void *arg)
{
	struct need_walk	*w = arg;
	struct model_need	 m;

	m.name = n->name;
	m.type = n->type;
	m.deleted = n->deleted;
	m.size = n->size;
	m.global_device = n->device;
	return w->cb(&m, w->arg);
}

int
model_need_foreach(struct db *db, int64_t folder, model_need_cb cb, void *arg)
{
	struct need_walk	w = { cb, arg };

	return db_need_foreach(db, folder, need_adapt, &w);
}

int
model_counts(struct db *db, int64_t folder, struct model_counts *out)
{
	struct db_global_counts	g;
	int			rc;

	rc = db_global_counts(db, folder, &g);
	if (rc != 0)
		return rc;
	out->global_files = g.files;
	out->global_dirs = g.directories;
	out->global_bytes = g.bytes;
	out->need_files = g.need_items;
	out->need_bytes = g.need_bytes;
	out->need_deletes = g.need_deletes;
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * Introductions (bep-brief §12; see intro.h).
 *
 * NOTES ON THE DESIGN OF INTRODUCTIONS
 *
 *   (1) Only what an introducer itself added is ever taken away: a device
 *       is removable by introducer P only if its introduced_by is P, and
 *       only its shares of folders P lists (the folders we share with P)
 *       are dropped. A device the user added is shared with more folders
 *       but never unshared or removed by an introduction.
 *   (2) A removal happens when P's ClusterConfig no longer lists the
 *       device in a folder P shares with us; the device itself goes once
 *       it shares no folder at all, so a folder the user shared with it
 *       by hand keeps it.
 *   (3) Addresses: "dynamic" first (discovery finds it anywhere), then the
 *       tcp:// addresses P lists that our config accepts; anything else
 *       P says is dropped, not an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/config.h"
#include "shoal/intro.h"
#include "shoal/util.h"

void
intro_view_free(struct intro_view *v)
{
	size_t	i, j, k;

	if (v == NULL)
		return;
	for (i = 0; i < v->folder_count; i++) {
		struct intro_folder *f = &v->folders[i];

		for (j = 0; j < f->device_count; j++) {
			struct intro_device *d = &f->devices[j];

			free(d->name);
			for (k = 0; k < d->address_count; k++)
				free(d->addresses[k]);
			free(d->addresses);
		}
		free(f->devices);
		free(f->id);
	}
	free(v->folders);
	free(v);
}

/* "device ID VERB" or "folder "F" VERB ID", then " (WHY)". */
static void
say(intro_log_cb log, void *arg, const struct device_id *id,
    const char *folder, const char *verb, const char *why)
{
	char	sid[IDENTITY_ID_STR_SIZE], line[256];

	if (log == NULL)
		return;
	identity_id_format(id, sid);
	if (folder != NULL)
		snprintf(line, sizeof(line), "folder \"%s\" %s %s (%s)",
		    folder, verb, sid, why);
	else
		snprintf(line, sizeof(line), "device %s %s (%s)", sid, verb,
		    why);
	log(line, arg);
}

static const struct intro_device *
listed(const struct intro_folder *f, const struct device_id *id)
{
	size_t	i;

	for (i = 0; i < f->device_count; i++)
		if (identity_id_equal(&f->devices[i].id, id))
			return &f->devices[i];
	return NULL;
}

/* Add the device `d` as introduced by `pid` (3). 0 or an error code.
 * (By value: adding moves cfg->devices.) */
static int
add_device(struct config *cfg, const struct intro_device *d,
    struct device_id pid, bool p_skip)
{
	const char		**addrs;
	struct config_device	*nd;
	char			  err[CONFIG_ERR_SIZE];
	size_t			  n = 0, i;
	int			  rc;

	addrs = xcalloc(d->address_count + 1, sizeof(*addrs));
	addrs[n++] = "dynamic";
	for (i = 0; i < d->address_count && n < CONFIG_MAX_ADDRESSES; i++)
		if (strncmp(d->addresses[i], "tcp://", 6) == 0 &&
		    config_address_validate(d->addresses[i], false) == 0)
			addrs[n++] = d->addresses[i];
	rc = config_device_add(cfg, &d->id,
	    d->name != NULL && config_text_valid(d->name) ? d->name : "",
	    addrs, n, d->introducer, err, sizeof(err));
	free(addrs);
	if (rc != 0)
		return rc;
	nd = config_device_find(cfg, &d->id);
	nd->has_introduced_by = true;
	nd->introduced_by = pid;
	if (d->introducer)
		nd->skip_introduction_removals = p_skip;
	return 0;
}

static bool
shares_any(const struct config *cfg, const struct device_id *id)
{
	size_t	i;

	for (i = 0; i < cfg->folder_count; i++)
		if (config_folder_shares(&cfg->folders[i], id, NULL))
			return true;
	return false;
}

int
intro_apply(struct config *cfg, const struct device_id *self,
    const struct intro_view *v, intro_log_cb log, void *arg)
{
	const struct config_device	*p;
	struct config_folder		*cf;
	struct device_id		 pid = v->introducer, id;
	char				 err[CONFIG_ERR_SIZE];
	size_t				 i, j;
	int				 changes = 0;
	bool				 p_skip;

	p = config_device_find(cfg, &pid);
	if (p == NULL || !p->introducer)
		return 0;
	p_skip = p->skip_introduction_removals;
	/* Additions. */
	for (i = 0; i < v->folder_count; i++) {
		const struct intro_folder *f = &v->folders[i];

		cf = config_folder_find(cfg, f->id);
		if (cf == NULL || !config_folder_shares(cf, &pid, NULL))
			continue;
		for (j = 0; j < f->device_count; j++) {
			const struct intro_device *d = &f->devices[j];

			if (identity_id_equal(&d->id, self) ||
			    identity_id_equal(&d->id, &pid) ||
			    identity_id_is_zero(&d->id))
				continue;
			if (config_device_find(cfg, &d->id) == NULL) {
				if (add_device(cfg, d, pid, p_skip) != 0)
					continue;
				say(log, arg, &d->id, NULL, "added",
				    "introduced");
				changes++;
			}
			/* config_device_add may have moved the array. */
			cf = config_folder_find(cfg, f->id);
			if (!config_folder_shares(cf, &d->id, NULL) &&
			    config_folder_share(cfg, f->id, &d->id, err,
			    sizeof(err)) == 0) {
				say(log, arg, &d->id, f->id, "shared with",
				    "introduced");
				changes++;
			}
		}
	}
	if (p_skip)
		return changes;
	/* Removals (1), (2): shares first, then devices left with none. */
	for (i = 0; i < v->folder_count; i++) {
		const struct intro_folder *f = &v->folders[i];

		cf = config_folder_find(cfg, f->id);
		if (cf == NULL || !config_folder_shares(cf, &pid, NULL))
			continue;
		for (j = 0; j < cf->share_count; ) {
			const struct config_device *d;

			id = cf->shares[j];
			d = config_device_find(cfg, &id);
			if (d == NULL || !d->has_introduced_by ||
			    !identity_id_equal(&d->introduced_by, &pid) ||
			    listed(f, &id) != NULL) {
				j++;
				continue;
			}
			if (config_folder_unshare(cfg, f->id, &id) == 0) {
				say(log, arg, &id, f->id, "no longer shared "
				    "with", "no longer introduced");
				changes++;
			} else
				j++;
		}
	}
	for (i = 0; i < cfg->device_count; ) {
		const struct config_device *d = &cfg->devices[i];

		id = d->id;
		if (d->has_introduced_by &&
		    identity_id_equal(&d->introduced_by, &pid) &&
		    !shares_any(cfg, &id) &&
		    config_device_remove(cfg, &id) == 0) {
			say(log, arg, &id, NULL, "removed",
			    "no longer introduced");
			changes++;
			continue;
		}
		i++;
	}
	return changes;
}

/* SPDX-License-Identifier: MIT */
/*
 * Introductions (bep-brief §12): a device marked `introducer` in our config
 * tells us, in its ClusterConfig, which devices share the folders we share
 * with it. We add those devices (marked introduced_by it) and share the
 * folders with them; devices it introduced that it no longer lists lose
 * those folders, and go once they share none, unless the introducer is
 * marked skip_introduction_removals. Plain data and a pure function on a
 * config, so the rules are tested without a network; the daemon applies
 * them to the config file. See docs/configuration.md.
 */
#ifndef SHOAL_INTRO_H
#define SHOAL_INTRO_H

#include <stdbool.h>
#include <stddef.h>

#include "shoal/config.h"
#include "shoal/identity.h"

/* One device an introducer lists for a folder. Owned strings. */
struct intro_device {
	struct device_id	 id;
	char			*name;
	char			**addresses;
	size_t			 address_count;
	bool			 introducer;	/* the introducer's own mark */
};

/* One folder of the introducer's ClusterConfig that we share with it. */
struct intro_folder {
	char			*id;
	struct intro_device	*devices;
	size_t			 device_count;
};

/* What an introducer said, owned by whoever holds it. */
struct intro_view {
	struct device_id	 introducer;
	struct intro_folder	*folders;
	size_t			 folder_count;
};

void	intro_view_free(struct intro_view *v);

/* Called for each change made, with a one-line description. */
typedef void (*intro_log_cb)(const char *what, void *arg);

/*
 * Apply `v` to `cfg` (bep-brief §12). `self` is never added. Returns the
 * number of changes (0: nothing to save). Devices are added with the
 * listed addresses after "dynamic" (only tcp:// ones we accept), named as
 * listed; an introduced device the introducer marks as introducer becomes
 * ours too, inheriting skip_introduction_removals.
 */
int	intro_apply(struct config *cfg, const struct device_id *self,
	    const struct intro_view *v, intro_log_cb log, void *arg);

#endif /* SHOAL_INTRO_H */

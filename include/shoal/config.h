/* SPDX-License-Identifier: MIT */
/*
 * The configuration file (`config` in the home): plain text a person can
 * read and edit, INI-like sections for options, devices and folders. Loaded
 * and validated into plain data; saved atomically (temp, fsync, rename).
 * Errors are reported as "FILE:LINE: reason". A running daemon reloads it
 * when it changes and keeps its last good config if the new one is bad.
 * See docs/configuration.md for the format.
 */
#ifndef SHOAL_CONFIG_H
#define SHOAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"
#include "shoal/identity.h"

#define CONFIG_FILE		"config"
/* flock(2)ed around every read-modify-write of the config file, by the
 * CLI and by the daemon's introductions. */
#define CONFIG_LOCK_FILE	"config.lock"
#define CONFIG_MAX_SIZE		(4 * 1024 * 1024)
#define CONFIG_ERR_SIZE		512
#define CONFIG_DEFAULT_LISTEN	"tcp://0.0.0.0:22000"
#define CONFIG_DEFAULT_API	"127.0.0.1:8385"
#define CONFIG_DEFAULT_RESCAN_S	3600
/* Longest line accepted, in bytes. */
#define CONFIG_MAX_LINE		(64 * 1024)
/* Longest value (after unquoting), so that any value, quoted and escaped,
 * still fits on one line when the config is written back. */
#define CONFIG_MAX_VALUE	(CONFIG_MAX_LINE / 2 - 64)
/* Largest rescan interval (one year), in seconds. */
#define CONFIG_MAX_RESCAN_S	31536000u
/* Conflict copies kept per file (bep-brief §10.7 maxConflicts): -1 keeps
 * all, 0 makes none (the losing local version is replaced). */
#define CONFIG_DEFAULT_MAX_CONFLICTS	10
#define CONFIG_MAX_MAX_CONFLICTS	1000000
/* Free space a folder's file system keeps (Syncthing's minDiskFree): a
 * file is not pulled if writing it would leave less. 1 % by default. */
#define CONFIG_DEFAULT_MIN_FREE_PPM	10000
/* Longest text of a config_space (config_space_format). */
#define CONFIG_SPACE_STR_SIZE		32
/* Most addresses per device accepted by config_device_add(). */
#define CONFIG_MAX_ADDRESSES	64

enum config_folder_type {
	CONFIG_FOLDER_SENDRECEIVE = 0,
	CONFIG_FOLDER_SENDONLY,
	CONFIG_FOLDER_RECEIVEONLY
};

enum config_versioning {
	CONFIG_VERSIONING_NONE = 0,
	CONFIG_VERSIONING_TRASHCAN,
	CONFIG_VERSIONING_SIMPLE,
	CONFIG_VERSIONING_STAGGERED
};

/* An amount of disk space: a share of the file system, or bytes. */
struct config_space {
	uint32_t	ppm;	/* parts per million of the file system's size */
	uint64_t	bytes;	/* or this many bytes (ppm is then 0) */
};

struct config_device {
	struct device_id	 id;
	char			*name;		/* owned; may be "" */
	char			**addresses;	/* owned; "dynamic" or tcp://H:P */
	size_t			 address_count;
	bool			 introducer;
	/* Added by an introducer (bep-brief §12): that device's ID. Its
	 * introductions may remove this device again. */
	bool			 has_introduced_by;
	struct device_id	 introduced_by;
	/* For an introducer: never remove what it introduced. */
	bool			 skip_introduction_removals;
};

struct config_folder {
	char			*id;		/* owned; [A-Za-z0-9._-]{1,64} */
	char			*label;		/* owned; may be "" */
	char			*path;		/* owned; absolute */
	enum config_folder_type	 type;
	enum config_versioning	 versioning;
	uint32_t		 rescan_s;	/* 0 = no periodic rescan */
	bool			 watch;
	int32_t			 max_conflicts;	/* -1 = all, 0 = none */
	struct config_space	 min_disk_free;	/* 0 and 0: no minimum */
	struct device_id	*shares;	/* owned; devices it is shared with */
	size_t			 share_count;
};

struct config {
	char			*name;		/* owned; this device's name */
	char			*listen;	/* owned; tcp://HOST:PORT */
	char			*api;		/* owned; 127.0.0.1:PORT */
	bool			 announce_lan;	/* local discovery: send */
	bool			 listen_lan;	/* local discovery: receive */
	bool			 low_priority;	/* threads under SCHED_BATCH */
	struct config_device	*devices;	/* owned array */
	size_t			 device_count;
	struct config_folder	*folders;	/* owned array */
	size_t			 folder_count;
};

/* Lifecycle */
/* A config with defaults and no devices or folders. Caller frees. */
struct config	*config_new(void);
void		 config_free(struct config *c);
/*
 * Parse `len` bytes of config text. `file` names the source in errors.
 * On error returns SH_ECONFIG and writes "FILE:LINE: reason" into err.
 */
int	config_parse(const char *text, size_t len, const char *file,
	    struct config **out, char *err, size_t err_size) SH_MUST_CHECK;
/* Read and parse `path`; errors as config_parse, or -errno when unreadable
 * (err then says "FILE: reason"). */
int	config_load(const char *path, struct config **out, char *err,
	    size_t err_size) SH_MUST_CHECK;
/*
 * Serialise to text that config_parse() reads back to an equal config.
 * Caller frees. NULL (reason logged) if a string field cannot be written:
 * it holds a control character other than tab, or is longer than
 * CONFIG_MAX_VALUE. Check strings set directly with config_text_valid().
 */
char	*config_format(const struct config *c);
/* Write atomically with mode 0600. 0, -errno, or SH_ECONFIG when
 * config_format() refuses. */
int	config_save(const struct config *c, const char *path) SH_MUST_CHECK;

/* Operations (all return 0, SH_EEXIST, SH_ENOTFOUND or SH_ECONFIG with a
 * reason in err) */
int	config_device_add(struct config *c, const struct device_id *id,
	    const char *name, const char *const *addresses, size_t address_count,
	    bool introducer, char *err, size_t err_size) SH_MUST_CHECK;
int	config_device_remove(struct config *c, const struct device_id *id)
	    SH_MUST_CHECK;
int	config_folder_add(struct config *c, const char *id, const char *path,
	    enum config_folder_type type, enum config_versioning versioning,
	    uint32_t rescan_s, bool watch, char *err, size_t err_size)
	    SH_MUST_CHECK;
int	config_folder_remove(struct config *c, const char *id) SH_MUST_CHECK;
int	config_folder_share(struct config *c, const char *folder_id,
	    const struct device_id *dev, char *err, size_t err_size)
	    SH_MUST_CHECK;
/* Is `f` shared with `dev`? With `at`, where in f->shares. */
bool	config_folder_shares(const struct config_folder *f,
	    const struct device_id *dev, size_t *at);
/* Stop sharing folder `folder_id` with `dev`: 0, or SH_ENOTFOUND when it
 * was not shared with it. */
int	config_folder_unshare(struct config *c, const char *folder_id,
	    const struct device_id *dev) SH_MUST_CHECK;

/* Queries */
struct config_device *config_device_find(const struct config *c,
	    const struct device_id *id);
struct config_folder *config_folder_find(const struct config *c,
	    const char *id);
/* Names <-> enums; *_parse return 0 or SH_EPARSE. */
const char *config_folder_type_name(enum config_folder_type t);
int	config_folder_type_parse(const char *s, enum config_folder_type *out)
	    SH_MUST_CHECK;
const char *config_versioning_name(enum config_versioning v);
int	config_versioning_parse(const char *s, enum config_versioning *out)
	    SH_MUST_CHECK;
/*
 * Disk space: "N%" (0 to 100, up to 4 decimals) or a size, "N [UNIT]"
 * with an optional fraction and UNIT one of B, kB, MB, GB, TB (powers of
 * 1000; K, M, G, T too) or KiB, MiB, GiB, TiB (powers of 1024), any case.
 * 0 or SH_EPARSE. config_space_format writes what config_space_parse
 * reads back to the same value ("1%", "0.5%", "500 MiB", "0").
 */
int	config_space_parse(const char *s, struct config_space *out)
	    SH_MUST_CHECK;
void	config_space_format(const struct config_space *sp,
	    char buf[CONFIG_SPACE_STR_SIZE]);
/* The bytes it means on a file system of `total` bytes. */
uint64_t config_space_bytes(const struct config_space *sp, uint64_t total);
/* Validate "tcp://HOST:PORT" (HOST: IPv4, [IPv6] or name; PORT 0..65535)
 * or, for device addresses, "dynamic". 0 or SH_EPARSE. */
int	config_address_validate(const char *s, bool allow_dynamic) SH_MUST_CHECK;
/* Validate "127.0.0.1:PORT" / "[::1]:PORT" style API address. */
int	config_api_validate(const char *s) SH_MUST_CHECK;
/* Validate a folder ID. */
bool	config_folder_id_valid(const char *id);
/* True if `s` can be stored as a name, label or path: no control
 * characters other than tab, at most CONFIG_MAX_VALUE bytes. */
bool	config_text_valid(const char *s);

#endif /* SHOAL_CONFIG_H */

/* SPDX-License-Identifier: MIT */
/*
 * The command line (design.md §5). main() hands argv here; global options
 * (--home, --log-level, --version, --help) come before the subcommand. Each
 * subcommand is a function in a table, with its own usage text so that
 * `--help` works everywhere without a home.
 *
 * Config-changing commands edit the config file under a lock (read, change,
 * atomic save) whether or not a daemon runs; a running daemon notices the new
 * file within a second, and we also nudge it through the control API so the
 * change applies at once. Commands that need live state (status, scan) talk
 * to the daemon through the control API, found via HOME/api.addr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "shoal/api.h"
#include "shoal/buildinfo.h"
#include "shoal/cli.h"
#include "shoal/config.h"
#include "shoal/daemon.h"
#include "shoal/db.h"
#include "shoal/folder.h"
#include "shoal/identity.h"
#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/record.h"
#include "shoal/scan.h"
#include "shoal/util.h"
#include "shoal/version.h"

#define CLI_EXIT_OK	0
#define CLI_EXIT_FAIL	1
#define CLI_EXIT_USAGE	2
#define CLI_API_TIMEOUT_MS 10000
#define CLI_MAX_LIST	256

struct cli {
	char	*home;		/* owned; absolute or as given */
};

struct cli_cmd {
	const char	*name;
	int		(*fn)(struct cli *c, int argc, char **argv);
	const char	*usage;		/* shown by --help and on usage errors */
};

static const struct cli_cmd *cli_find(const struct cli_cmd *table,
	    const char *name);

SH_PRINTF(1, 2) static int
fail(const char *fmt, ...)
{
	va_list	ap;

	fputs("shoal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_FAIL;
}

SH_PRINTF(2, 3) static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "shoal %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'shoal %s --help')\n", cmd);
	return CLI_EXIT_USAGE;
}

/*
 * getopt_long wrapper state: every subcommand parses its own argv with
 * optind reset, and "-h/--help" is handled uniformly.
 */
static bool
wants_help(int argc, char **argv)
{
	int	i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

static char *
default_home(void)
{
	const char	*xdg = getenv("XDG_STATE_HOME");
	const char	*home = getenv("HOME");

	if (xdg != NULL && xdg[0] == '/')
		return xasprintf("%s/shoal", xdg);
	if (home != NULL && home[0] != '\0')
		return xasprintf("%s/.local/state/shoal", home);
	return NULL;
}

static char *
home_file(const struct cli *c, const char *name)
{
	return util_path_join(c->home, name);
}

static bool
home_initialised(const struct cli *c)
{
	char		*p = home_file(c, IDENTITY_CERT_FILE);
	struct stat	 st;
	bool		 ok = (stat(p, &st) == 0);

	free(p);
	return ok;
}

static int
need_home(const struct cli *c)
{
	if (!home_initialised(c))
		return fail("home \"%s\" is not initialised (run 'shoal --home %s init')",
		    c->home, c->home);
	return 0;
}

/* Absolute form of a user-given path (it need not exist). Caller frees. */
static char *
absolute_path(const char *p)
{
	char	cwd[PATH_MAX];

	if (p[0] == '/')
		return xstrdup(p);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	if (strcmp(p, ".") == 0)
		return xstrdup(cwd);
	return util_path_join(cwd, p);
}

/* Load the config of an initialised home. */
static int
load_config(const struct cli *c, struct config **out)
{
	char	 err[CONFIG_ERR_SIZE];
	char	*path = home_file(c, CONFIG_FILE);
	int	 rc;

	rc = config_load(path, out, err, sizeof(err));
	free(path);
	if (rc != 0)
		return fail("%s", err);
	return 0;
}

/* Serialise read-modify-write of the config between CLI invocations. */
static int
lock_config(const struct cli *c)
{
	return util_lock_file(c->home, CONFIG_LOCK_FILE, false);
}

/*
 * Talk to the daemon of this home. Returns 0 with the HTTP status and body
 * set (caller frees the body), -ECONNREFUSED when no daemon runs, or another
 * error for the caller to report.
 */
static int
daemon_call(const struct cli *c, const char *method, const char *path,
    int *status, char **body)
{
	char	*addr_path = NULL, *addr = NULL, *key = NULL;
	size_t	 len;
	int	 rc;

	*body = NULL;
	addr_path = home_file(c, API_ADDR_FILE);
	rc = util_read_file(addr_path, 256, &addr, &len);
	if (rc == -ENOENT) {
		rc = -ECONNREFUSED;
		goto out;
	}
	if (rc != 0)
		goto out;
	addr[strcspn(addr, "\r\n")] = '\0';
	rc = api_key_load(c->home, false, &key);
	if (rc != 0)
		goto out;
	rc = api_client_call(addr, key, method, path, NULL, CLI_API_TIMEOUT_MS,
	    status, body);
out:
	if (key != NULL) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	free(addr);
	free(addr_path);
	return rc;
}

/* Ask a running daemon to reload its config now; silently fine if none. */
static void
nudge_daemon(const struct cli *c)
{
	char	*body = NULL;
	int	 status;

	if (daemon_call(c, "POST", "/rest/config/reload", &status, &body) == 0 &&
	    status != 200)
		fprintf(stderr, "shoal: warning: the running daemon did not "
		    "accept the new config: %s\n", body != NULL ? body : "");
	free(body);
}

static int
save_config(const struct cli *c, const struct config *cfg)
{
	char	*path = home_file(c, CONFIG_FILE);
	int	 rc;

	rc = config_save(cfg, path);
	if (rc != 0)
		fail("cannot write config \"%s\": %s", path, sh_strerror(rc));
	free(path);
	return rc == 0 ? 0 : CLI_EXIT_FAIL;
}

/*
 * Read-modify-write of the config under its lock, for every config
 * command. `fn` changes the config and returns 0 to save it,
 * EDIT_UNCHANGED when nothing needs saving, or CLI_EXIT_FAIL/USAGE after
 * reporting a failure. A running daemon is asked to reload afterwards.
 */
#define EDIT_UNCHANGED	100
typedef int (*edit_fn)(struct config *cfg, void *arg);

static int
edit_config(struct cli *c, edit_fn fn, void *arg)
{
	struct config	*cfg = NULL;
	int		 lock, r, rc = CLI_EXIT_FAIL;

	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	lock = lock_config(c);
	if (lock < 0)
		return fail("cannot lock config: %s", sh_strerror(lock));
	if (load_config(c, &cfg) != 0)
		goto out;
	r = fn(cfg, arg);
	if (r == EDIT_UNCHANGED) {
		rc = CLI_EXIT_OK;
		goto out;
	}
	if (r != 0) {
		rc = r;
		goto out;
	}
	if (save_config(c, cfg) != 0)
		goto out;
	nudge_daemon(c);
	rc = CLI_EXIT_OK;
out:
	config_free(cfg);
	close(lock);
	return rc;
}

/* Create PATH (if needed) and its .stfolder marker. */
static int
prepare_folder_dir(const char *path)
{
	char	*marker;
	int	 rc;

	rc = util_mkdir_p(path, 0755);
	if (rc != 0)
		return fail("folder path \"%s\": %s", path, sh_strerror(rc));
	marker = util_path_join(path, FOLDER_MARKER);
	rc = util_mkdir_p(marker, 0755);
	if (rc != 0)
		fail("cannot create marker \"%s\": %s", marker, sh_strerror(rc));
	free(marker);
	return rc == 0 ? 0 : CLI_EXIT_FAIL;
}

/* ---- init, id ---- */

static int
cmd_init(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "api", required_argument, NULL, 'a' },
		{ "no-default-folder", no_argument, NULL, 'F' },
		{ "no-discovery", no_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 }
	};
	struct config		*cfg = NULL;
	struct identity		*ident = NULL;
	struct db		*db = NULL;
	const char		*name = NULL, *listen = NULL, *api = NULL;
	char			 idstr[IDENTITY_ID_STR_SIZE], host[256];
	char			 err[CONFIG_ERR_SIZE];
	char			*path = NULL, *key = NULL, *folder_path = NULL;
	bool			 default_folder = true, discovery = true;
	int			 ch, rc = CLI_EXIT_FAIL, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'l': listen = optarg; break;
		case 'a': api = optarg; break;
		case 'F': default_folder = false; break;
		case 'D': discovery = false; break;
		default: return usage_error("init", "bad arguments");
		}
	}
	if (optind != argc)
		return usage_error("init", "unexpected argument \"%s\"", argv[optind]);
	if (listen != NULL && config_address_validate(listen, false) != 0)
		return usage_error("init", "bad --listen \"%s\" (want tcp://HOST:PORT)",
		    listen);
	if (api != NULL && config_api_validate(api) != 0)
		return usage_error("init", "bad --api \"%s\" (want 127.0.0.1:PORT)",
		    api);
	if (name != NULL && (name[0] == '\0' || strlen(name) > 255 ||
	    !config_text_valid(name)))
		return usage_error("init", "bad --name \"%s\"", name);
	if (home_initialised(c))
		return fail("home \"%s\" already holds an identity; refusing to "
		    "overwrite it", c->home);

	r = util_mkdir_p(c->home, 0700);
	if (r != 0) {
		fail("cannot create home \"%s\": %s", c->home, sh_strerror(r));
		goto out;
	}
	r = identity_generate(c->home);
	if (r != 0) {
		fail("cannot create identity in \"%s\": %s", c->home,
		    sh_strerror(r));
		goto out;
	}
	r = identity_load(c->home, &ident);
	if (r != 0) {
		fail("cannot load new identity: %s", sh_strerror(r));
		goto out;
	}

	cfg = config_new();
	if (name == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "shoal");
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	free(cfg->name);
	cfg->name = xstrdup(name);
	if (listen != NULL) {
		free(cfg->listen);
		cfg->listen = xstrdup(listen);
	}
	if (api != NULL) {
		free(cfg->api);
		cfg->api = xstrdup(api);
	}
	cfg->announce_lan = cfg->listen_lan = discovery;
	if (default_folder) {
		const char *h = getenv("HOME");

		if (h == NULL || h[0] != '/') {
			fail("$HOME is not set; use --no-default-folder");
			goto out;
		}
		folder_path = util_path_join(h, "Shoal");
		if (prepare_folder_dir(folder_path) != 0)
			goto out;
		r = config_folder_add(cfg, "default", folder_path,
		    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE,
		    CONFIG_DEFAULT_RESCAN_S, true, err, sizeof(err));
		if (r != 0) {
			fail("%s", err);
			goto out;
		}
	}
	if (save_config(c, cfg) != 0)
		goto out;
	path = home_file(c, DB_FILE);
	r = db_open(path, &db);
	if (r != 0) {
		fail("cannot create index \"%s\": %s", path, sh_strerror(r));
		goto out;
	}
	r = api_key_load(c->home, true, &key);
	if (r != 0) {
		fail("cannot create API key in \"%s\": %s", c->home,
		    sh_strerror(r));
		goto out;
	}
	identity_id_format(identity_device_id(ident), idstr);
	printf("%s\n", idstr);
	rc = CLI_EXIT_OK;
out:
	if (key != NULL) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	db_close(db);
	identity_free(ident);
	config_free(cfg);
	free(path);
	free(folder_path);
	return rc;
}

static int
cmd_id(struct cli *c, int argc, char **argv)
{
	struct identity	*ident = NULL;
	char		 idstr[IDENTITY_ID_STR_SIZE];
	int		 r;

	if (argc > 1)
		return usage_error("id", "unexpected argument \"%s\"", argv[1]);
	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	r = identity_load(c->home, &ident);
	if (r != 0)
		return fail("cannot load identity from \"%s\": %s", c->home,
		    sh_strerror(r));
	identity_id_format(identity_device_id(ident), idstr);
	printf("%s\n", idstr);
	identity_free(ident);
	return CLI_EXIT_OK;
}

static int
cmd_serve(struct cli *c, int argc, char **argv)
{
	int	r;

	if (argc > 1)
		return usage_error("serve", "unexpected argument \"%s\"", argv[1]);
	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	r = daemon_run(c->home);
	return r == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- device ---- */

static int
parse_device(const char *cmd, const char *s, struct device_id *out)
{
	char	err[256];

	if (identity_id_parse(s, out, err, sizeof(err)) != 0 ||
	    identity_id_is_zero(out)) {
		if (identity_id_is_zero(out) && err[0] == '\0')
			snprintf(err, sizeof(err), "empty device ID");
		fprintf(stderr, "shoal %s: %s\n", cmd, err);
		return CLI_EXIT_USAGE;
	}
	return 0;
}

struct device_add_args {
	struct device_id	 id;
	const char		*name;
	const char		**addrs;
	size_t			 naddr;
	bool			 introducer;
};

static int
device_add_edit(struct config *cfg, void *arg)
{
	struct device_add_args	*a = arg;
	char			 err[CONFIG_ERR_SIZE];

	if (config_device_add(cfg, &a->id, a->name, a->addrs, a->naddr,
	    a->introducer, err, sizeof(err)) != 0)
		return fail("%s", err);
	return 0;
}

static int
cmd_device_add(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "address", required_argument, NULL, 'a' },
		{ "introducer", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*addrs[CLI_MAX_LIST];
	struct device_add_args	 a;
	const char		*name = "";
	size_t			 naddr = 0;
	bool			 introducer = false;
	int			 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'a':
			if (naddr == CLI_MAX_LIST)
				return usage_error("device add", "too many addresses");
			if (config_address_validate(optarg, true) != 0)
				return usage_error("device add", "bad --address "
				    "\"%s\" (want tcp://HOST:PORT or dynamic)", optarg);
			addrs[naddr++] = optarg;
			break;
		case 'i': introducer = true; break;
		default: return usage_error("device add", "bad arguments");
		}
	}
	if (argc - optind != 1)
		return usage_error("device add", "expected one device ID");
	r = parse_device("device add", argv[optind], &a.id);
	if (r != 0)
		return r;
	a.name = name;
	a.addrs = addrs;
	a.naddr = naddr;
	a.introducer = introducer;
	return edit_config(c, device_add_edit, &a);
}

static int
device_remove_edit(struct config *cfg, void *arg)
{
	const struct device_id	*id = arg;
	char			 idstr[IDENTITY_ID_STR_SIZE];

	if (config_device_remove(cfg, id) != 0) {
		identity_id_format(id, idstr);
		return fail("device %s is not configured", idstr);
	}
	return 0;
}

static int
cmd_device_remove(struct cli *c, int argc, char **argv)
{
	struct device_id	id;
	int			r;

	if (argc != 2)
		return usage_error("device remove", "expected one device ID");
	r = parse_device("device remove", argv[1], &id);
	if (r != 0)
		return r;
	return edit_config(c, device_remove_edit, &id);
}

/* Commands whose only option is --json. 0, or the usage error status. */
static int
only_json_flag(const char *cmd, int argc, char **argv, bool *as_json)
{
	int	i;

	*as_json = false;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0)
			return usage_error(cmd, "unexpected argument \"%s\"",
			    argv[i]);
		*as_json = true;
	}
	return 0;
}

static int
cmd_device_list(struct cli *c, int argc, char **argv)
{
	struct config	*cfg = NULL;
	json_t		*arr = NULL;
	char		 idstr[IDENTITY_ID_STR_SIZE], byid[IDENTITY_ID_STR_SIZE];
	bool		 as_json = false;
	size_t		 i, j;
	int		 r;

	r = only_json_flag("device list", argc, argv, &as_json);
	if (r != 0)
		return r;
	if (need_home(c) != 0 || load_config(c, &cfg) != 0)
		return CLI_EXIT_FAIL;
	arr = json_array();
	for (i = 0; i < cfg->device_count; i++) {
		const struct config_device *d = &cfg->devices[i];
		json_t *addrs = json_array();

		identity_id_format(&d->id, idstr);
		for (j = 0; j < d->address_count; j++)
			json_array_append_new(addrs, json_string(d->addresses[j]));
		if (d->has_introduced_by)
			identity_id_format(&d->introduced_by, byid);
		if (as_json) {
			json_t *o = json_pack("{s:s, s:s, s:o, s:b}",
			    "device_id", idstr, "name", d->name, "addresses", addrs,
			    "introducer", d->introducer);

			json_object_set_new(o, "introduced_by", d->has_introduced_by ?
			    json_string(byid) : json_null());
			json_array_append_new(arr, o);
			continue;
		}
		printf("%s  %s", idstr, d->name[0] != '\0' ? d->name : "-");
		for (j = 0; j < d->address_count; j++)
			printf("%s%s", j == 0 ? "  " : ",", d->addresses[j]);
		printf("%s", d->introducer ? "  (introducer)" : "");
		if (d->has_introduced_by)
			printf("  (introduced by %.7s)", byid);
		printf("\n");
		json_decref(addrs);
	}
	if (as_json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	json_decref(arr);
	config_free(cfg);
	return CLI_EXIT_OK;
}

/* ---- folder ---- */

struct folder_add_args {
	const char		*id;
	const char		*path;
	enum config_folder_type	 type;
	enum config_versioning	 vers;
	uint32_t		 rescan;
	bool			 watch;
	bool			 has_min_free;
	struct config_space	 min_free;
	const struct device_id	*shares;
	size_t			 nshare;
};

static int
folder_add_edit(struct config *cfg, void *arg)
{
	struct folder_add_args	*a = arg;
	char			 err[CONFIG_ERR_SIZE];
	size_t			 i;

	if (config_folder_add(cfg, a->id, a->path, a->type, a->vers,
	    a->rescan, a->watch, err, sizeof(err)) != 0)
		return fail("%s", err);
	if (a->has_min_free)
		config_folder_find(cfg, a->id)->min_disk_free = a->min_free;
	for (i = 0; i < a->nshare; i++)
		if (config_folder_share(cfg, a->id, &a->shares[i], err,
		    sizeof(err)) != 0)
			return fail("%s", err);
	/* Make the directory and marker before the daemon can see the folder,
	 * so it never starts in the "marker missing" error state. */
	if (prepare_folder_dir(a->path) != 0)
		return CLI_EXIT_FAIL;
	return 0;
}

static int
cmd_folder_add(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "share", required_argument, NULL, 's' },
		{ "versioning", required_argument, NULL, 'v' },
		{ "rescan", required_argument, NULL, 'r' },
		{ "no-watch", no_argument, NULL, 'W' },
		{ "min-disk-free", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 }
	};
	struct device_id	 shares[CLI_MAX_LIST];
	struct folder_add_args	 a;
	enum config_folder_type	 type = CONFIG_FOLDER_SENDRECEIVE;
	enum config_versioning	 vers = CONFIG_VERSIONING_NONE;
	char			*path = NULL;
	uint64_t		 rescan = CONFIG_DEFAULT_RESCAN_S;
	size_t			 nshare = 0;
	bool			 watch = true;
	int			 ch, r, rc;

	memset(&a, 0, sizeof(a));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			if (config_space_parse(optarg, &a.min_free) != 0)
				return usage_error("folder add", "bad "
				    "--min-disk-free \"%s\" (want a percentage "
				    "such as 1%% or a size such as \"2 GiB\")",
				    optarg);
			a.has_min_free = true;
			break;
		case 't':
			if (config_folder_type_parse(optarg, &type) != 0)
				return usage_error("folder add", "bad --type \"%s\" "
				    "(want sendreceive, sendonly or receiveonly)",
				    optarg);
			break;
		case 's':
			if (nshare == CLI_MAX_LIST)
				return usage_error("folder add", "too many --share");
			r = parse_device("folder add", optarg, &shares[nshare]);
			if (r != 0)
				return r;
			nshare++;
			break;
		case 'v':
			if (config_versioning_parse(optarg, &vers) != 0)
				return usage_error("folder add", "bad --versioning "
				    "\"%s\" (want none, trashcan, simple or "
				    "staggered)", optarg);
			break;
		case 'r':
			if (util_parse_u64(optarg, 0, 365u * 86400, &rescan) != 0)
				return usage_error("folder add", "bad --rescan \"%s\" "
				    "(want seconds, 0 to 31536000)", optarg);
			break;
		case 'W': watch = false; break;
		default: return usage_error("folder add", "bad arguments");
		}
	}
	if (argc - optind != 2)
		return usage_error("folder add", "expected FOLDER_ID and PATH");
	if (!config_folder_id_valid(argv[optind]))
		return usage_error("folder add", "bad folder ID \"%s\" (use 1-64 "
		    "letters, digits, '.', '_' or '-')", argv[optind]);
	path = absolute_path(argv[optind + 1]);
	if (path == NULL)
		return fail("cannot resolve path \"%s\"", argv[optind + 1]);
	a.id = argv[optind];
	a.path = path;
	a.type = type;
	a.vers = vers;
	a.rescan = (uint32_t)rescan;
	a.watch = watch;
	a.shares = shares;
	a.nshare = nshare;
	rc = edit_config(c, folder_add_edit, &a);
	free(path);
	return rc;
}

struct folder_share_args {
	const char		*folder;
	struct device_id	 id;
};

static int
folder_share_edit(struct config *cfg, void *arg)
{
	struct folder_share_args	*a = arg;
	char				 err[CONFIG_ERR_SIZE];
	int				 r;

	r = config_folder_share(cfg, a->folder, &a->id, err, sizeof(err));
	/* Already shared: the desired state holds, nothing to write. */
	if (r == SH_EEXIST)
		return EDIT_UNCHANGED;
	if (r != 0)
		return fail("%s", err);
	return 0;
}

static int
cmd_folder_share(struct cli *c, int argc, char **argv)
{
	struct folder_share_args	a;
	int				r;

	if (argc != 3)
		return usage_error("folder share", "expected FOLDER_ID and DEVICE_ID");
	r = parse_device("folder share", argv[2], &a.id);
	if (r != 0)
		return r;
	a.folder = argv[1];
	return edit_config(c, folder_share_edit, &a);
}

static int
folder_remove_edit(struct config *cfg, void *arg)
{
	const char	*id = arg;

	if (config_folder_remove(cfg, id) != 0)
		return fail("folder \"%s\" is not configured", id);
	return 0;
}

static int
cmd_folder_remove(struct cli *c, int argc, char **argv)
{
	if (argc != 2)
		return usage_error("folder remove", "expected one FOLDER_ID");
	return edit_config(c, folder_remove_edit, argv[1]);
}

static int
cmd_folder_list(struct cli *c, int argc, char **argv)
{
	struct config	*cfg = NULL;
	json_t		*arr;
	char		 idstr[IDENTITY_ID_STR_SIZE];
	bool		 as_json = false;
	size_t		 i, j;
	int		 r;

	r = only_json_flag("folder list", argc, argv, &as_json);
	if (r != 0)
		return r;
	if (need_home(c) != 0 || load_config(c, &cfg) != 0)
		return CLI_EXIT_FAIL;
	arr = json_array();
	for (i = 0; i < cfg->folder_count; i++) {
		const struct config_folder *f = &cfg->folders[i];
		json_t *sh = json_array();

		for (j = 0; j < f->share_count; j++) {
			identity_id_format(&f->shares[j], idstr);
			json_array_append_new(sh, json_string(idstr));
		}
		if (as_json) {
			char	space[CONFIG_SPACE_STR_SIZE];

			config_space_format(&f->min_disk_free, space);
			json_array_append_new(arr, json_pack(
			    "{s:s, s:s, s:s, s:s, s:I, s:b, s:i, s:s, s:o}",
			    "id", f->id, "path", f->path,
			    "type", config_folder_type_name(f->type),
			    "versioning", config_versioning_name(f->versioning),
			    "rescan", (json_int_t)f->rescan_s, "watch", f->watch,
			    "max_conflicts", (int)f->max_conflicts,
			    "min_disk_free", space, "shared_with", sh));
			continue;
		}
		printf("%s  %s  %s  shared with %zu device(s)\n", f->id, f->path,
		    config_folder_type_name(f->type), f->share_count);
		json_decref(sh);
	}
	if (as_json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	}
	json_decref(arr);
	config_free(cfg);
	return CLI_EXIT_OK;
}

static int	no_daemon(const struct cli *c);

/* folder override / revert: done by the running daemon. */
static int
cmd_folder_action(struct cli *c, int argc, char **argv)
{
	const char	*what = strchr(argv[0], ' ') + 1;
	json_t		*j;
	char		*path = NULL, *body = NULL;
	int		 r, status, rc = CLI_EXIT_FAIL;

	if (argc != 2)
		return usage_error(argv[0], "expected one FOLDER_ID");
	if (!config_folder_id_valid(argv[1]))
		return usage_error(argv[0], "bad folder ID \"%s\"", argv[1]);
	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	path = xasprintf("/rest/folder/%s?folder=%s", what, argv[1]);
	r = daemon_call(c, "POST", path, &status, &body);
	if (r == -ECONNREFUSED) {
		rc = no_daemon(c);
		goto out;
	}
	if (r != 0) {
		fail("cannot reach the daemon: %s", sh_strerror(r));
		goto out;
	}
	j = json_loads(body, 0, NULL);
	if (status != 200) {
		const char *m = json_string_value(json_object_get(j, "error"));

		fail("folder %s: %s", what, m != NULL ? m : body);
		json_decref(j);
		goto out;
	}
	if (strcmp(what, "revert") == 0)
		printf("%lld local change(s) dropped; %lld item(s) that exist "
		    "only here kept\n", (long long)json_integer_value(
		    json_object_get(j, "reverted")), (long long)
		    json_integer_value(json_object_get(j, "kept")));
	else
		printf("%lld item(s) overridden with our version\n",
		    (long long)json_integer_value(json_object_get(j,
		    "overridden")));
	json_decref(j);
	rc = CLI_EXIT_OK;
out:
	free(path);
	free(body);
	return rc;
}

/* ---- status, scan, conflicts ---- */

static int
no_daemon(const struct cli *c)
{
	return fail("no daemon is running for home \"%s\" (start 'shoal --home "
	    "%s serve')", c->home, c->home);
}

static void
print_status_text(json_t *st)
{
	json_t		*folders, *peers, *v;
	size_t		 i;

	printf("Device ID: %s\n", json_string_value(json_object_get(st,
	    "device_id")));
	folders = json_object_get(st, "folders");
	json_array_foreach(folders, i, v) {
		json_t *err = json_object_get(v, "error");

		printf("Folder %s (%s): %s, %lld files, %lld bytes%s%s\n",
		    json_string_value(json_object_get(v, "id")),
		    json_string_value(json_object_get(v, "path")),
		    json_string_value(json_object_get(v, "state")),
		    (long long)json_integer_value(json_object_get(v, "local_files")),
		    (long long)json_integer_value(json_object_get(v, "local_bytes")),
		    json_is_string(err) ? ": " : "",
		    json_is_string(err) ? json_string_value(err) : "");
	}
	peers = json_object_get(st, "peers");
	json_array_foreach(peers, i, v) {
		printf("Peer %s (%s): %s\n",
		    json_string_value(json_object_get(v, "device_id")),
		    json_string_value(json_object_get(v, "name")),
		    json_is_true(json_object_get(v, "connected")) ?
		    "connected" : "disconnected");
	}
}

static int
cmd_status(struct cli *c, int argc, char **argv)
{
	json_error_t	 jerr;
	json_t		*st;
	char		*body = NULL;
	bool		 as_json = false;
	int		 r, status;

	r = only_json_flag("status", argc, argv, &as_json);
	if (r != 0)
		return r;
	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	r = daemon_call(c, "GET", "/rest/status", &status, &body);
	if (r == -ECONNREFUSED)
		return no_daemon(c);
	if (r != 0)
		return fail("cannot reach the daemon: %s", sh_strerror(r));
	if (status != 200) {
		fail("daemon answered %d: %s", status, body);
		free(body);
		return CLI_EXIT_FAIL;
	}
	if (as_json) {
		printf("%s\n", body);
		free(body);
		return CLI_EXIT_OK;
	}
	st = json_loads(body, 0, &jerr);
	free(body);
	if (st == NULL)
		return fail("daemon sent bad JSON: %s", jerr.text);
	print_status_text(st);
	json_decref(st);
	return CLI_EXIT_OK;
}

/* Scan folders in the foreground without a daemon (`scan --once`). */
static int
scan_once(struct cli *c, const char *only)
{
	struct config		*cfg = NULL;
	struct identity		*ident = NULL;
	struct db		*db = NULL;
	struct ignore		*ig = NULL;
	struct scan_progress	 prog;
	char			 err[IGNORE_ERR_SIZE];
	char			*path = NULL;
	uint64_t		 t0;
	size_t			 i;
	bool			 found = false;
	int			 lock = -1, r, rc = CLI_EXIT_FAIL;

	lock = daemon_lock_home(c->home);
	if (lock == -EWOULDBLOCK)
		return fail("a daemon is running for home \"%s\"; use 'shoal "
		    "scan' without --once", c->home);
	if (lock < 0)
		return fail("cannot lock home \"%s\": %s", c->home,
		    sh_strerror(lock));
	if (load_config(c, &cfg) != 0)
		goto out;
	r = identity_load(c->home, &ident);
	if (r != 0) {
		fail("cannot load identity: %s", sh_strerror(r));
		goto out;
	}
	path = home_file(c, DB_FILE);
	r = db_open(path, &db);
	if (r != 0) {
		fail("cannot open index \"%s\": %s", path, sh_strerror(r));
		goto out;
	}
	for (i = 0; i < cfg->folder_count; i++) {
		const struct config_folder *f = &cfg->folders[i];
		int64_t fidx;

		if (only != NULL && strcmp(only, f->id) != 0)
			continue;
		found = true;
		r = db_folder_idx(db, f->id, &fidx);
		if (r != 0) {
			fail("folder \"%s\": index error", f->id);
			goto out;
		}
		r = ignore_load(f->path, &ig, err, sizeof(err));
		if (r != 0) {
			fail("folder \"%s\": %s", f->id, err);
			goto out;
		}
		t0 = util_now_ms();
		/* Local changes of a receiveonly folder stay local, as
		 * when the daemon scans them (they are announced invalid). */
		r = scan_run_once(db, fidx, f->id, f->path,
		    identity_short_id(identity_device_id(ident)), ig,
		    f->type == CONFIG_FOLDER_RECEIVEONLY, &prog);
		ignore_free(ig);
		ig = NULL;
		if (r != 0) {
			fail("folder \"%s\": scan failed: %s", f->id,
			    sh_strerror(r));
			goto out;
		}
		double secs = (double)(util_now_ms() - t0) / 1000.0;

		printf("folder %s: %llu entries, %llu files hashed, %llu bytes "
		    "hashed, %llu changes in %.2f s (%.1f MB/s)\n", f->id,
		    (unsigned long long)prog.entries_seen,
		    (unsigned long long)prog.files_hashed,
		    (unsigned long long)prog.bytes_hashed,
		    (unsigned long long)prog.changes, secs,
		    secs > 0 ? (double)prog.bytes_hashed / 1e6 / secs : 0.0);
	}
	if (!found) {
		fail("folder \"%s\" is not configured", only);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	ignore_free(ig);
	db_close(db);
	identity_free(ident);
	config_free(cfg);
	free(path);
	close(lock);
	return rc;
}

static int
cmd_scan(struct cli *c, int argc, char **argv)
{
	const char	*folder = NULL;
	char		*path = NULL, *body = NULL, *esc = NULL;
	bool		 once = false;
	int		 i, r, status, rc = CLI_EXIT_FAIL;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = true;
		else if (argv[i][0] == '-')
			return usage_error("scan", "unknown option \"%s\"", argv[i]);
		else if (folder == NULL)
			folder = argv[i];
		else
			return usage_error("scan", "unexpected argument \"%s\"",
			    argv[i]);
	}
	if (folder != NULL && !config_folder_id_valid(folder))
		return usage_error("scan", "bad folder ID \"%s\"", folder);
	if (need_home(c) != 0)
		return CLI_EXIT_FAIL;
	if (once)
		return scan_once(c, folder);
	/* Folder IDs are restricted to URL-safe characters, so no escaping. */
	path = folder != NULL ? xasprintf("/rest/scan?folder=%s", folder) :
	    xstrdup("/rest/scan");
	r = daemon_call(c, "POST", path, &status, &body);
	if (r == -ECONNREFUSED) {
		rc = no_daemon(c);
		goto out;
	}
	if (r != 0) {
		fail("cannot reach the daemon: %s", sh_strerror(r));
		goto out;
	}
	if (status != 200) {
		json_t *j = json_loads(body, 0, NULL);
		const char *m = json_string_value(json_object_get(j, "error"));

		fail("%s", m != NULL ? m : body);
		json_decref(j);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	free(esc);
	free(path);
	free(body);
	return rc;
}

struct conflict_walk {
	json_t	*arr;
	const char *folder;
};

static int
conflict_entry(const struct db_entry *e, void *arg)
{
	struct conflict_walk *w = arg;

	if (e->deleted || e->type != RECORD_TYPE_FILE)
		return 0;
	if (strstr(e->name, ".sync-conflict-") == NULL)
		return 0;
	json_array_append_new(w->arr, json_pack("{s:s, s:s, s:I}", "folder",
	    w->folder, "name", e->name, "size", (json_int_t)e->size));
	return 0;
}

static int
cmd_conflicts(struct cli *c, int argc, char **argv)
{
	struct conflict_walk	 w;
	struct config		*cfg = NULL;
	struct db		*db = NULL;
	const char		*only = NULL;
	char			*path = NULL;
	bool			 as_json = false, found = false;
	size_t			 i;
	json_t			*v;
	int			 r, rc = CLI_EXIT_FAIL;

	for (i = 1; i < (size_t)argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (argv[i][0] == '-')
			return usage_error("conflicts", "unknown option \"%s\"",
			    argv[i]);
		else if (only == NULL)
			only = argv[i];
		else
			return usage_error("conflicts", "unexpected argument "
			    "\"%s\"", argv[i]);
	}
	if (need_home(c) != 0 || load_config(c, &cfg) != 0)
		return CLI_EXIT_FAIL;
	w.arr = json_array();
	path = home_file(c, DB_FILE);
	r = db_open(path, &db);
	if (r != 0) {
		fail("cannot open index \"%s\": %s", path, sh_strerror(r));
		goto out;
	}
	for (i = 0; i < cfg->folder_count; i++) {
		int64_t fidx;

		if (only != NULL && strcmp(only, cfg->folders[i].id) != 0)
			continue;
		found = true;
		w.folder = cfg->folders[i].id;
		if (db_folder_idx(db, w.folder, &fidx) != 0 ||
		    db_entries_under(db, fidx, DB_LOCAL_DEVICE, "",
		    conflict_entry, &w) != 0) {
			fail("folder \"%s\": cannot read the index", w.folder);
			goto out;
		}
	}
	if (only != NULL && !found) {
		fail("folder \"%s\" is not configured", only);
		goto out;
	}
	if (as_json) {
		json_dumpf(w.arr, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		json_array_foreach(w.arr, i, v)
			printf("%s  %s\n", json_string_value(json_object_get(v,
			    "folder")), json_string_value(json_object_get(v, "name")));
	}
	rc = CLI_EXIT_OK;
out:
	json_decref(w.arr);
	db_close(db);
	config_free(cfg);
	free(path);
	return rc;
}

/* ---- versions, restore ---- */

/* A PATH argument as a folder-relative name: "./" and trailing '/' taken
 * off; NULL when it is not a valid name inside the folder. */
static char *
version_arg_name(const char *arg)
{
	char	*n;
	size_t	 len;

	while (arg[0] == '.' && arg[1] == '/')
		arg += 2;
	n = xstrdup(arg);
	len = strlen(n);
	while (len > 1 && n[len - 1] == '/')
		n[--len] = '\0';
	if (record_name_validate(n, len) != 0 || record_name_internal(n)) {
		free(n);
		return NULL;
	}
	return n;
}

static void
version_time_text(time_t t, char *buf, size_t size)
{
	struct tm	tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)t);
}

static int
version_collect(const struct version_entry *e, void *arg)
{
	json_t	*arr = arg;
	char	 when[64];

	version_time_text(e->when, when, sizeof(when));
	json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I, s:s+}",
	    "name", e->name, "time", when, "unix", (json_int_t)e->when,
	    "size", (json_int_t)e->size, "stored", VERSION_DIR "/",
	    e->stored));
	return 0;
}

/* Name ascending, then newest first. */
static int
version_cmp(const void *a, const void *b)
{
	json_t		*x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t	 tx, ty;
	int		 c;

	c = strcmp(json_string_value(json_object_get(x, "name")),
	    json_string_value(json_object_get(y, "name")));
	if (c != 0)
		return c;
	tx = json_integer_value(json_object_get(x, "unix"));
	ty = json_integer_value(json_object_get(y, "unix"));
	if (tx != ty)
		return tx > ty ? -1 : 1;
	return -strcmp(json_string_value(json_object_get(x, "stored")),
	    json_string_value(json_object_get(y, "stored")));
}

/* The versions of `only` (or all) in the folder, sorted; NULL after a
 * message when .stversions cannot be read. */
static json_t *
versions_of(const struct config_folder *cf, const char *only)
{
	json_t	*arr = json_array(), *sorted, **items;
	size_t	 i, n;
	int	 r;

	r = version_list(cf->path, only, version_collect, arr);
	if (r != 0 && r != -ENOENT) {
		fail("folder \"%s\": cannot read %s/%s: %s", cf->id, cf->path,
		    VERSION_DIR, sh_strerror(r));
		json_decref(arr);
		return NULL;
	}
	n = json_array_size(arr);
	items = xcalloc(n + 1, sizeof(*items));
	for (i = 0; i < n; i++)
		items[i] = json_incref(json_array_get(arr, i));
	qsort(items, n, sizeof(*items), version_cmp);
	sorted = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(sorted, items[i]);
	free(items);
	json_decref(arr);
	return sorted;
}

/* Load the config and list the versions of `name` (or all) in FOLDER_ID;
 * NULL after a message. *cfg is the caller's to free either way. */
static json_t *
folder_versions(struct cli *c, const char *id, const char *name,
    struct config **cfg, const struct config_folder **cf)
{
	if (need_home(c) != 0 || load_config(c, cfg) != 0)
		return NULL;
	*cf = config_folder_find(*cfg, id);
	if (*cf == NULL) {
		fail("folder \"%s\" is not configured", id);
		return NULL;
	}
	return versions_of(*cf, name);
}

/*
 * FOLDER_ID [PATH] and options for versions and restore: --json when
 * `as_json` is given, --at TIME when `at` is. *name is the PATH as a
 * folder-relative name (caller frees; NULL without PATH). 0 or the usage
 * error's exit code.
 */
static int
version_args(const char *cmd, int argc, char **argv, bool *as_json,
    const char **at, const char **id, char **name)
{
	const char	*path = NULL;
	size_t		 i;

	*id = NULL;
	*name = NULL;
	for (i = 1; i < (size_t)argc; i++) {
		if (as_json != NULL && strcmp(argv[i], "--json") == 0)
			*as_json = true;
		else if (at != NULL && strcmp(argv[i], "--at") == 0) {
			if (++i == (size_t)argc)
				return usage_error(cmd, "--at needs TIME");
			*at = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return usage_error(cmd, "unknown option \"%s\"",
			    argv[i]);
		else if (*id == NULL)
			*id = argv[i];
		else if (path == NULL)
			path = argv[i];
		else
			return usage_error(cmd, "unexpected argument \"%s\"",
			    argv[i]);
	}
	if (path != NULL && (*name = version_arg_name(path)) == NULL)
		return usage_error(cmd, "bad PATH \"%s\": want a name inside "
		    "the folder", path);
	return 0;
}

static int
cmd_versions(struct cli *c, int argc, char **argv)
{
	const struct config_folder	*cf;
	struct config			*cfg = NULL;
	const char			*id;
	char				*name = NULL;
	bool				 as_json = false;
	json_t				*arr = NULL, *v;
	size_t				 i;
	int				 rc;

	rc = version_args("versions", argc, argv, &as_json, NULL, &id, &name);
	if (rc != 0)
		return rc;
	if (id == NULL)
		return usage_error("versions", "expected FOLDER_ID");
	rc = CLI_EXIT_FAIL;
	arr = folder_versions(c, id, name, &cfg, &cf);
	if (arr == NULL)
		goto out;
	if (as_json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		json_array_foreach(arr, i, v)
			printf("%s  %s  %lld bytes\n",
			    json_string_value(json_object_get(v, "name")),
			    json_string_value(json_object_get(v, "time")),
			    (long long)json_integer_value(json_object_get(v,
			    "size")));
	}
	rc = CLI_EXIT_OK;
out:
	json_decref(arr);
	config_free(cfg);
	free(name);
	return rc;
}

/* --at TIME: YYYY-MM-DDTHH:MM:SS (or a space for the T), YYYYMMDD-HHMMSS
 * (local time), or @UNIXSECONDS. */
static int
parse_at(const char *s, time_t *out)
{
	struct tm	 tm;
	const char	*end;
	uint64_t	 u;

	if (s[0] == '@')
		return util_parse_u64(s + 1, 0, INT64_MAX, &u) == 0 ?
		    (*out = (time_t)u, 0) : -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
	}
	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y%m%d-%H%M%S", &tm);
	}
	if (end == NULL || *end != '\0')
		return -1;
	tm.tm_isdst = -1;
	*out = mktime(&tm);
	return *out == (time_t)-1 ? -1 : 0;
}

static int
cmd_restore(struct cli *c, int argc, char **argv)
{
	const struct config_folder	*cf;
	struct config			*cfg = NULL;
	const char			*id, *at_text = NULL, *stored;
	char				*name = NULL, *kept = NULL, when[64];
	json_t				*arr = NULL, *v, *pick = NULL;
	time_t				 at = 0;
	bool				 have_at;
	size_t				 i;
	int				 r, rc;

	rc = version_args("restore", argc, argv, NULL, &at_text, &id, &name);
	if (rc != 0)
		return rc;
	if (id == NULL || name == NULL) {
		free(name);
		return usage_error("restore", "expected FOLDER_ID PATH");
	}
	have_at = at_text != NULL;
	if (have_at && parse_at(at_text, &at) != 0) {
		free(name);
		return usage_error("restore", "bad --at \"%s\" (want "
		    "YYYY-MM-DDTHH:MM:SS, YYYYMMDD-HHMMSS or @UNIXSECONDS)",
		    at_text);
	}
	rc = CLI_EXIT_FAIL;
	arr = folder_versions(c, id, name, &cfg, &cf);
	if (arr == NULL)
		goto out;
	/* Newest first: the first of `name` not newer than --at. */
	json_array_foreach(arr, i, v) {
		if (strcmp(json_string_value(json_object_get(v, "name")),
		    name) != 0)
			continue;
		if (have_at && json_integer_value(json_object_get(v, "unix")) >
		    (json_int_t)at)
			continue;
		pick = v;
		break;
	}
	if (pick == NULL) {
		fail("folder \"%s\": no kept version of \"%s\"%s", id, name,
		    have_at ? " at or before that time" : "");
		goto out;
	}
	stored = json_string_value(json_object_get(pick, "stored")) +
	    strlen(VERSION_DIR "/");
	r = version_restore(cf->path, name, stored, time(NULL), &kept);
	if (r != 0) {
		fail("folder \"%s\": cannot restore \"%s\": %s", id, name,
		    r == -EISDIR ? "a directory or symlink has that name" :
		    sh_strerror(r));
		goto out;
	}
	version_time_text((time_t)json_integer_value(json_object_get(pick,
	    "unix")), when, sizeof(when));
	printf("restored \"%s\" (version of %s)\n", name, when);
	if (kept != NULL)
		printf("the file it replaced is kept as %s/%s\n", VERSION_DIR,
		    kept);
	rc = CLI_EXIT_OK;
out:
	json_decref(arr);
	config_free(cfg);
	free(name);
	free(kept);
	return rc;
}

/* ---- tables ---- */

static const struct cli_cmd device_cmds[] = {
	{ "add", cmd_device_add,
	  "shoal device add ID [--name N] [--address tcp://HOST:PORT]... "
	  "[--introducer]\n  Add a device we will connect to. Without "
	  "--address it is found through LAN discovery (\"dynamic\").\n"
	  "  --introducer: take the devices it shares our folders with as "
	  "ours too." },
	{ "remove", cmd_device_remove,
	  "shoal device remove ID\n  Forget a device and unshare every folder "
	  "from it." },
	{ "list", cmd_device_list,
	  "shoal device list [--json]\n  List configured devices." },
	{ NULL, NULL, NULL }
};

static const struct cli_cmd folder_cmds[] = {
	{ "add", cmd_folder_add,
	  "shoal folder add FOLDER_ID PATH [--type sendreceive|sendonly|"
	  "receiveonly]\n           [--share DEVICE_ID]... [--versioning none|"
	  "trashcan|simple|staggered]\n           [--rescan SECONDS] "
	  "[--no-watch] [--min-disk-free 1%|SIZE]\n  Add a folder; PATH and "
	  "its .stfolder marker are created if missing." },
	{ "share", cmd_folder_share,
	  "shoal folder share FOLDER_ID DEVICE_ID\n  Share a folder with a "
	  "configured device." },
	{ "remove", cmd_folder_remove,
	  "shoal folder remove FOLDER_ID\n  Stop syncing a folder (its files "
	  "stay on disk)." },
	{ "list", cmd_folder_list,
	  "shoal folder list [--json]\n  List configured folders." },
	{ "override", cmd_folder_action,
	  "shoal folder override FOLDER_ID\n  Send-only folders: push our "
	  "state over remote changes." },
	{ "revert", cmd_folder_action,
	  "shoal folder revert FOLDER_ID\n  Receive-only folders: drop local "
	  "changes and take the global state." },
	{ NULL, NULL, NULL }
};

static int dispatch(struct cli *c, const char *group,
	    const struct cli_cmd *table, int argc, char **argv);

static int
cmd_device(struct cli *c, int argc, char **argv)
{
	return dispatch(c, "device", device_cmds, argc, argv);
}

static int
cmd_folder(struct cli *c, int argc, char **argv)
{
	return dispatch(c, "folder", folder_cmds, argc, argv);
}

static const struct cli_cmd top_cmds[] = {
	{ "init", cmd_init,
	  "shoal init [--name NAME] [--listen tcp://HOST:PORT] [--api "
	  "127.0.0.1:PORT]\n           [--no-default-folder] [--no-discovery]\n"
	  "  Create this device's identity, config and index; prints the "
	  "device ID." },
	{ "id", cmd_id, "shoal id\n  Print this device's ID." },
	{ "serve", cmd_serve,
	  "shoal serve\n  Run the daemon in the foreground until SIGINT or "
	  "SIGTERM." },
	{ "device", cmd_device,
	  "shoal device add|remove|list ...\n  Manage devices (see 'shoal "
	  "device add --help')." },
	{ "folder", cmd_folder,
	  "shoal folder add|share|remove|list|override|revert ...\n  Manage "
	  "folders (see 'shoal folder add --help')." },
	{ "status", cmd_status,
	  "shoal status [--json]\n  Show the running daemon's state." },
	{ "scan", cmd_scan,
	  "shoal scan [FOLDER_ID] [--once]\n  Rescan now. With --once, scan in "
	  "the foreground without a daemon and print a summary." },
	{ "conflicts", cmd_conflicts,
	  "shoal conflicts [FOLDER_ID] [--json]\n  List conflict copies." },
	{ "versions", cmd_versions,
	  "shoal versions FOLDER_ID [PATH] [--json]\n  List kept versions." },
	{ "restore", cmd_restore,
	  "shoal restore FOLDER_ID PATH [--at TIME]\n  Restore a kept "
	  "version." },
	{ NULL, NULL, NULL }
};

static const struct cli_cmd *
cli_find(const struct cli_cmd *table, const char *name)
{
	for (; table->name != NULL; table++)
		if (strcmp(table->name, name) == 0)
			return table;
	return NULL;
}

static void
print_group_usage(FILE *f, const char *group, const struct cli_cmd *table)
{
	if (group == NULL)
		fprintf(f, "usage: shoal [--home DIR] [--log-level LEVEL] "
		    "[--trace COMPONENTS] COMMAND [ARGS]\n"
		    "       shoal --version | --help\n\ncommands:\n");
	else
		fprintf(f, "usage: shoal [--home DIR] %s COMMAND [ARGS]\n\n"
		    "commands:\n", group);
	for (; table->name != NULL; table++)
		fprintf(f, "  %s\n", table->usage);
}

static int
dispatch(struct cli *c, const char *group, const struct cli_cmd *table,
    int argc, char **argv)
{
	const struct cli_cmd	*cmd;
	char			 full[64];

	if (argc < 2) {
		fprintf(stderr, "shoal %s: missing command (see 'shoal %s "
		    "--help')\n", group, group);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_group_usage(stdout, group, table);
		return CLI_EXIT_OK;
	}
	cmd = cli_find(table, argv[1]);
	if (cmd == NULL) {
		fprintf(stderr, "shoal %s: unknown command \"%s\" (see 'shoal %s "
		    "--help')\n", group, argv[1], group);
		return CLI_EXIT_USAGE;
	}
	snprintf(full, sizeof(full), "%s %s", group, cmd->name);
	if (wants_help(argc - 1, argv + 1)) {
		printf("usage: %s\n", cmd->usage);
		return CLI_EXIT_OK;
	}
	/* Subcommands see argv[0] = "group name" for their messages. */
	argv[1] = full;
	return cmd->fn(c, argc - 1, argv + 1);
}

int
cli_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "home", required_argument, NULL, 'H' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "trace", required_argument, NULL, 'T' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct cli_cmd	*cmd;
	struct cli		 c = { NULL };
	const char		*home = NULL;
	int			 ch, rc;

	/* "+" stops at the first non-option: the subcommand. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			if (optarg[0] == '\0') {
				fprintf(stderr, "shoal: --home needs a directory\n");
				return CLI_EXIT_USAGE;
			}
			home = optarg;
			break;
		case 'L':
			if (log_set_level(optarg) != 0) {
				fprintf(stderr, "shoal: bad --log-level \"%s\" (want "
				    "error, warn, info or debug)\n", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'T':
			if (log_set_trace(optarg) != 0) {
				fprintf(stderr, "shoal: bad --trace \"%s\"\n", optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'V':
			printf("shoal %s\n", shoal_version);
			return CLI_EXIT_OK;
		case 'h':
			print_group_usage(stdout, NULL, top_cmds);
			return CLI_EXIT_OK;
		default:
			fprintf(stderr, "shoal: unknown option \"%s\" (see 'shoal "
			    "--help')\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	opterr = 1;
	if (optind >= argc) {
		fprintf(stderr, "shoal: missing command (see 'shoal --help')\n");
		return CLI_EXIT_USAGE;
	}
	cmd = cli_find(top_cmds, argv[optind]);
	if (cmd == NULL) {
		fprintf(stderr, "shoal: unknown command \"%s\" (see 'shoal "
		    "--help')\n", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	if (cmd->fn != cmd_device && cmd->fn != cmd_folder &&
	    wants_help(argc - optind, argv + optind)) {
		printf("usage: %s\n", cmd->usage);
		return CLI_EXIT_OK;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "shoal: libsodium failed to initialise\n");
		return CLI_EXIT_FAIL;
	}
	if (home != NULL)
		c.home = absolute_path(home);
	else
		c.home = default_home();
	if (c.home == NULL) {
		fprintf(stderr, "shoal: no --home given and $HOME is not set\n");
		return CLI_EXIT_USAGE;
	}
	rc = cmd->fn(&c, argc - optind, argv + optind);
	free(c.home);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * The configuration file: a small INI-like text format that a person can
 * read and edit while the daemon runs (docs/configuration.md). This module
 * parses it into the plain data of shoal/config.h, validates every value,
 * formats it back so that format followed by parse gives the same config,
 * saves it atomically, and implements the edits the CLI makes (add and
 * remove devices and folders, share folders). It does no I/O except in
 * config_load() and config_save(); reloading is the daemon's business.
 *
 * Every parse error is one line, "FILE:LINE: reason", and quotes the bad
 * value, in the manner of wireguard-tools config.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shoal/config.h"
#include "shoal/identity.h"
#include "shoal/log.h"
#include "shoal/util.h"

/* Section kinds while parsing. */
enum section {
	SEC_NONE = 0,
	SEC_OPTIONS,
	SEC_DEVICE,
	SEC_FOLDER
};

/* Bits for "this key was already given in this section". */
#define KEY_NAME	(1u << 0)
#define KEY_LISTEN	(1u << 1)
#define KEY_API		(1u << 2)
#define KEY_ANNOUNCE	(1u << 3)
#define KEY_LISTENLAN	(1u << 4)
#define KEY_INTRODUCER	(1u << 5)
#define KEY_LABEL	(1u << 6)
#define KEY_PATH	(1u << 7)
#define KEY_TYPE	(1u << 8)
#define KEY_VERSIONING	(1u << 9)
#define KEY_RESCAN	(1u << 10)
#define KEY_WATCH	(1u << 11)
#define KEY_MAXCONFLICTS (1u << 12)
#define KEY_INTRODUCEDBY (1u << 13)
#define KEY_SKIPREMOVALS (1u << 14)
#define KEY_MINDISKFREE	(1u << 15)
#define KEY_LOWPRIORITY	(1u << 16)

/* A `share =` line, checked once all devices are known. */
struct share_ref {
	size_t	folder;		/* index into c->folders */
	size_t	line;
	char	*text;		/* owned; the value as written, for errors */
};

struct parser {
	const char		*file;
	char			*err;
	size_t			 err_size;
	struct config		*c;
	size_t			 line;
	enum section		 sec;
	unsigned		 seen;		/* KEY_* bits of this section */
	bool			 options_seen;
	size_t			 cur;		/* device/folder index */
	size_t			*folder_lines;	/* owned; section line per folder */
	struct share_ref	*shares;	/* owned */
	size_t			 share_count;
};

static void	 errf(char *err, size_t err_size, const char *fmt, ...)
		    SH_PRINTF(3, 4);
static int	 perr(struct parser *p, const char *fmt, ...) SH_PRINTF(2, 3);

static void
errf(char *err, size_t err_size, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || err_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

/* Report "FILE:LINE: reason" and return SH_ECONFIG. */
static int
perr(struct parser *p, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (p->err == NULL || p->err_size == 0)
		return SH_ECONFIG;
	n = snprintf(p->err, p->err_size, "%s:%zu: ", p->file, p->line);
	if (n < 0 || (size_t)n >= p->err_size)
		return SH_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->err_size - (size_t)n, fmt, ap);
	va_end(ap);
	return SH_ECONFIG;
}

/*
 * A value quoted for an error message: control characters as \xNN, quotes
 * and backslashes escaped, long values cut, so that one bad line gives one
 * readable line.
 */
#define QV_SIZE	96
static const char *
qv(const char *s, char buf[QV_SIZE])
{
	return util_quote(s, buf, QV_SIZE);
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Control characters cannot round-trip through a line-based format. */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return true;
	}
	return false;
}

static bool
parse_bool(const char *s, bool *out)
{
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
	    strcmp(s, "1") == 0) {
		*out = true;
		return true;
	}
	if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
	    strcmp(s, "0") == 0) {
		*out = false;
		return true;
	}
	return false;
}

static const char *const folder_type_names[] = {
	"sendreceive", "sendonly", "receiveonly"
};
static const char *const versioning_names[] = {
	"none", "trashcan", "simple", "staggered"
};

const char *
config_folder_type_name(enum config_folder_type t)
{
	if ((unsigned)t >= sizeof(folder_type_names) / sizeof(*folder_type_names))
		return "unknown";
	return folder_type_names[t];
}

int
config_folder_type_parse(const char *s, enum config_folder_type *out)
{
	size_t	i;

	for (i = 0; i < sizeof(folder_type_names) / sizeof(*folder_type_names);
	    i++) {
		if (strcmp(s, folder_type_names[i]) == 0) {
			*out = (enum config_folder_type)i;
			return 0;
		}
	}
	return SH_EPARSE;
}

const char *
config_versioning_name(enum config_versioning v)
{
	if ((unsigned)v >= sizeof(versioning_names) / sizeof(*versioning_names))
		return "unknown";
	return versioning_names[v];
}

/* Disk space (config_space_parse) */

/* Units as config_space_format writes them, largest first; any case
 * reads, and so do "", K, M, G and T (short is the decimal unit). */
static const struct {
	const char	*name;
	const char	*short_name;
	uint64_t	 mult;
} space_units[] = {
	{ "TiB", NULL, 1ull << 40 }, { "TB", "T", 1000000000000 },
	{ "GiB", NULL, 1ull << 30 }, { "GB", "G", 1000000000 },
	{ "MiB", NULL, 1ull << 20 }, { "MB", "M", 1000000 },
	{ "KiB", NULL, 1ull << 10 }, { "kB", "K", 1000 },
	{ "B", "", 1 },
};

/* Largest size accepted: far above any disk, far below overflow. */
#define SPACE_MAX_BYTES	(1ull << 60)
#define PPM_DECIMALS	4	/* 1 ppm = 0.0001 % */

/* "DIGITS[.DIGITS]": the integer part and up to `maxfrac` fraction digits
 * scaled to 10^maxfrac. Returns the end, or NULL. */
static const char *
parse_decimal(const char *s, unsigned maxfrac, uint64_t *ip, uint64_t *fp)
{
	unsigned	nf = 0;

	*ip = *fp = 0;
	if (!isdigit((unsigned char)*s))
		return NULL;
	for (; isdigit((unsigned char)*s); s++) {
		if (*ip > (SPACE_MAX_BYTES - 9) / 10)
			return NULL;
		*ip = *ip * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return NULL;
		for (; isdigit((unsigned char)*s); s++) {
			if (nf == maxfrac)
				return NULL;
			*fp = *fp * 10 + (uint64_t)(*s - '0');
			nf++;
		}
	}
	for (; nf < maxfrac; nf++)
		*fp *= 10;
	return s;
}

/* Are the `len` bytes at `s` the unit `name` (any case)? */
static bool
unit_is(const char *s, size_t len, const char *name)
{
	return name != NULL && strlen(name) == len &&
	    strncasecmp(s, name, len) == 0;
}

int
config_space_parse(const char *s, struct config_space *out)
{
	struct config_space	sp = { 0, 0 };
	uint64_t		ip, fp, mult = 0;
	const char		*e;
	size_t			i, n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n > 0 && s[n - 1] == '%') {
		e = parse_decimal(s, PPM_DECIMALS, &ip, &fp);
		while (e != NULL && *e == ' ')
			e++;
		if (e == NULL || e != s + n - 1 || ip > 100 ||
		    (ip == 100 && fp > 0))
			return SH_EPARSE;
		sp.ppm = (uint32_t)(ip * 10000 + fp);
		*out = sp;
		return 0;
	}
	/* Sizes: fractions to a millionth of the unit. */
	e = parse_decimal(s, 6, &ip, &fp);
	if (e == NULL)
		return SH_EPARSE;
	while (e < s + n && *e == ' ')
		e++;
	for (i = 0; i < sizeof(space_units) / sizeof(space_units[0]); i++)
		if (unit_is(e, (size_t)(s + n - e), space_units[i].name) ||
		    unit_is(e, (size_t)(s + n - e), space_units[i].short_name))
			mult = space_units[i].mult;
	if (mult == 0 || ip > SPACE_MAX_BYTES / mult)
		return SH_EPARSE;
	/* fp < 10^6 and mult <= 2^40: no overflow. */
	sp.bytes = ip * mult + fp * mult / 1000000;
	if (sp.bytes > SPACE_MAX_BYTES)
		return SH_EPARSE;
	*out = sp;
	return 0;
}

void
config_space_format(const struct config_space *sp,
    char buf[CONFIG_SPACE_STR_SIZE])
{
	size_t	i, n;

	if (sp->ppm > 0) {
		n = (size_t)snprintf(buf, CONFIG_SPACE_STR_SIZE, "%u.%04u",
		    sp->ppm / 10000, sp->ppm % 10000);
		while (buf[n - 1] == '0')
			n--;
		if (buf[n - 1] == '.')
			n--;
		snprintf(buf + n, CONFIG_SPACE_STR_SIZE - n, "%%");
		return;
	}
	/* The largest unit that divides it; "B" divides anything. */
	for (i = 0; sp->bytes > 0; i++)
		if (sp->bytes % space_units[i].mult == 0) {
			snprintf(buf, CONFIG_SPACE_STR_SIZE, "%llu %s",
			    (unsigned long long)(sp->bytes /
			    space_units[i].mult), space_units[i].name);
			return;
		}
	snprintf(buf, CONFIG_SPACE_STR_SIZE, "0");
}

uint64_t
config_space_bytes(const struct config_space *sp, uint64_t total)
{
	/* total * ppm / 10^6 without overflowing. */
	if (sp->ppm > 0)
		return total / 1000000 * sp->ppm +
		    total % 1000000 * sp->ppm / 1000000;
	return sp->bytes;
}

int
config_versioning_parse(const char *s, enum config_versioning *out)
{
	size_t	i;

	for (i = 0; i < sizeof(versioning_names) / sizeof(*versioning_names);
	    i++) {
		if (strcmp(s, versioning_names[i]) == 0) {
			*out = (enum config_versioning)i;
			return 0;
		}
	}
	return SH_EPARSE;
}

bool
config_folder_id_valid(const char *id)
{
	size_t	n = 0;

	if (id == NULL)
		return false;
	for (; id[n] != '\0'; n++) {
		char ch = id[n];

		if (n >= 64)
			return false;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return false;
	}
	return n > 0;
}

/* "0".."65535", decimal digits only. */
static bool
port_valid(const char *s)
{
	uint64_t	v;

	if (strlen(s) > 5)
		return false;
	return util_parse_u64(s, 0, 65535, &v) == 0;
}

/* A DNS-style host name: dot-separated labels of letters, digits, '-'. */
static bool
hostname_valid(const char *h, size_t n)
{
	size_t	i, label = 0;
	bool	all_numeric = true;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char ch = h[i];

		if (ch == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (!(ch >= '0' && ch <= '9'))
			all_numeric = false;
		if (++label > 63)
			return false;
	}
	if (label == 0 || h[n - 1] == '-')
		return false;
	/* "1.2.3" or "999.1.1.1" are bad IPv4, not host names. */
	return !all_numeric;
}

/*
 * Split "HOST:PORT" or "[V6]:PORT" and check both. Writes the address
 * family of a literal host (0 for a name) into *family and the literal into
 * `addr` (16 bytes).
 */
static bool
hostport_valid(const char *s, int *family, unsigned char addr[16])
{
	const char	*colon, *end;
	char		 host[256];
	size_t		 n;

	*family = 0;
	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return false;
		n = (size_t)(end - s - 1);
		if (n == 0 || n >= sizeof(host))
			return false;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, addr) != 1)
			return false;
		*family = AF_INET6;
		return port_valid(end + 2);
	}
	colon = strrchr(s, ':');
	if (colon == NULL)
		return false;
	n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof(host) || memchr(s, ':', n) != NULL)
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	if (!port_valid(colon + 1))
		return false;
	if (inet_pton(AF_INET, host, addr) == 1) {
		*family = AF_INET;
		return true;
	}
	return hostname_valid(host, n);
}

int
config_address_validate(const char *s, bool allow_dynamic)
{
	unsigned char	addr[16];
	int		family;

	if (s == NULL)
		return SH_EPARSE;
	if (allow_dynamic && strcmp(s, "dynamic") == 0)
		return 0;
	if (strncmp(s, "tcp://", 6) != 0)
		return SH_EPARSE;
	if (!hostport_valid(s + 6, &family, addr))
		return SH_EPARSE;
	return 0;
}

int
config_api_validate(const char *s)
{
	static const unsigned char loop6[16] = { [15] = 1 };
	unsigned char	addr[16];
	int		family;

	if (s == NULL || !hostport_valid(s, &family, addr))
		return SH_EPARSE;
	/* The API key is the only guard, so never listen beyond loopback. */
	if (family == AF_INET && addr[0] == 127)
		return 0;
	if (family == AF_INET6 && memcmp(addr, loop6, 16) == 0)
		return 0;
	return SH_EPARSE;
}

/* Lifecycle */

struct config *
config_new(void)
{
	struct config	*c;

	c = xcalloc(1, sizeof(*c));
	c->name = xstrdup("");
	c->listen = xstrdup(CONFIG_DEFAULT_LISTEN);
	c->api = xstrdup(CONFIG_DEFAULT_API);
	c->announce_lan = true;
	c->listen_lan = true;
	c->low_priority = true;
	return c;
}

static void
device_clear(struct config_device *d)
{
	size_t	i;

	free(d->name);
	for (i = 0; i < d->address_count; i++)
		free(d->addresses[i]);
	free(d->addresses);
	memset(d, 0, sizeof(*d));
}

static void
folder_clear(struct config_folder *f)
{
	free(f->id);
	free(f->label);
	free(f->path);
	free(f->shares);
	memset(f, 0, sizeof(*f));
}

void
config_free(struct config *c)
{
	size_t	i;

	if (c == NULL)
		return;
	free(c->name);
	free(c->listen);
	free(c->api);
	for (i = 0; i < c->device_count; i++)
		device_clear(&c->devices[i]);
	free(c->devices);
	for (i = 0; i < c->folder_count; i++)
		folder_clear(&c->folders[i]);
	free(c->folders);
	free(c);
}

/* Queries */

struct config_device *
config_device_find(const struct config *c, const struct device_id *id)
{
	size_t	i;

	for (i = 0; i < c->device_count; i++)
		if (identity_id_equal(&c->devices[i].id, id))
			return &c->devices[i];
	return NULL;
}

struct config_folder *
config_folder_find(const struct config *c, const char *id)
{
	size_t	i;

	for (i = 0; i < c->folder_count; i++)
		if (strcmp(c->folders[i].id, id) == 0)
			return &c->folders[i];
	return NULL;
}

static void
short_id(const struct device_id *id, char out[IDENTITY_SHORT_STR_SIZE])
{
	char	full[IDENTITY_ID_STR_SIZE];

	identity_id_format(id, full);
	memcpy(out, full, IDENTITY_SHORT_STR_SIZE - 1);
	out[IDENTITY_SHORT_STR_SIZE - 1] = '\0';
}

/* Parsing */

/*
 * Turn the trimmed value text into a string: either as written, or, when
 * it starts with '"', the quoted string with \" and \\ unescaped.
 */
static int
parse_value(struct parser *p, const char *s, size_t n, char **out)
{
	char	 qbuf[QV_SIZE];
	char	*v = NULL;
	size_t	 i, j = 0;
	int	 rc;

	*out = NULL;
	if (n > 0 && s[0] == '"') {
		v = xmalloc(n);
		for (i = 1; i < n; i++) {
			if (s[i] == '\\') {
				if (i + 1 >= n ||
				    (s[i + 1] != '"' && s[i + 1] != '\\')) {
					rc = perr(p, "bad escape in quoted "
					    "value (only \\\" and \\\\)");
					goto out;
				}
				v[j++] = s[++i];
			} else if (s[i] == '"')
				break;
			else
				v[j++] = s[i];
		}
		if (i >= n) {
			rc = perr(p, "unterminated quoted value");
			goto out;
		}
		if (i + 1 != n) {
			rc = perr(p, "text after closing quote");
			goto out;
		}
		v[j] = '\0';
	} else
		v = xstrndup(s, n);
	if (has_control(v)) {
		rc = perr(p, "control character in value \"%s\"", qv(v, qbuf));
		goto out;
	}
	if (strlen(v) > CONFIG_MAX_VALUE) {
		rc = perr(p, "value longer than %d bytes", CONFIG_MAX_VALUE);
		goto out;
	}
	*out = v;
	v = NULL;
	rc = 0;
out:
	free(v);
	return rc;
}

static int
parse_section(struct parser *p, const char *s, size_t n)
{
	struct config_device	*d;
	struct config_folder	*f;
	struct device_id	 id;
	char			 qbuf[QV_SIZE], why[128], sid[8];
	char			*inner = NULL, *arg;
	size_t			 i, k;
	int			 rc;

	/* s[0] == '[' and s[n - 1] == ']'; "[ folder  x ]" is accepted. */
	for (k = 1; k < n - 1 && is_blank(s[k]); k++)
		;
	inner = xstrndup(s + k, n - 1 - k);
	for (k = 0; inner[k] != '\0' && !is_blank(inner[k]); k++)
		;
	arg = inner + k;
	if (*arg != '\0')
		*arg++ = '\0';
	while (is_blank(*arg))
		arg++;
	i = strlen(arg);
	while (i > 0 && is_blank(arg[i - 1]))
		arg[--i] = '\0';
	p->seen = 0;

	if (strcmp(inner, "options") == 0 && *arg == '\0') {
		if (p->options_seen) {
			rc = perr(p, "duplicate [options] section");
			goto out;
		}
		p->options_seen = true;
		p->sec = SEC_OPTIONS;
	} else if (strcmp(inner, "device") == 0 && *arg != '\0') {
		if (identity_id_parse(arg, &id, why, sizeof(why)) != 0) {
			rc = perr(p, "bad device ID \"%s\": %s", qv(arg, qbuf),
			    why);
			goto out;
		}
		if (identity_id_is_zero(&id)) {
			rc = perr(p, "bad device ID \"%s\": all zero",
			    qv(arg, qbuf));
			goto out;
		}
		if (config_device_find(p->c, &id) != NULL) {
			short_id(&id, sid);
			rc = perr(p, "duplicate device \"%s\" (%s)",
			    qv(arg, qbuf), sid);
			goto out;
		}
		p->c->devices = xreallocarray(p->c->devices,
		    p->c->device_count + 1, sizeof(*p->c->devices));
		d = &p->c->devices[p->c->device_count];
		memset(d, 0, sizeof(*d));
		d->id = id;
		d->name = xstrdup("");
		p->cur = p->c->device_count++;
		p->sec = SEC_DEVICE;
	} else if (strcmp(inner, "folder") == 0 && *arg != '\0') {
		if (!config_folder_id_valid(arg)) {
			rc = perr(p, "bad folder ID \"%s\" (want 1 to 64 of "
			    "A-Z a-z 0-9 . _ -)", qv(arg, qbuf));
			goto out;
		}
		if (config_folder_find(p->c, arg) != NULL) {
			rc = perr(p, "duplicate folder \"%s\"", arg);
			goto out;
		}
		p->c->folders = xreallocarray(p->c->folders,
		    p->c->folder_count + 1, sizeof(*p->c->folders));
		p->folder_lines = xreallocarray(p->folder_lines,
		    p->c->folder_count + 1, sizeof(*p->folder_lines));
		f = &p->c->folders[p->c->folder_count];
		memset(f, 0, sizeof(*f));
		f->id = xstrdup(arg);
		f->label = xstrdup("");
		f->type = CONFIG_FOLDER_SENDRECEIVE;
		f->versioning = CONFIG_VERSIONING_NONE;
		f->rescan_s = CONFIG_DEFAULT_RESCAN_S;
		f->watch = true;
		f->max_conflicts = CONFIG_DEFAULT_MAX_CONFLICTS;
		f->min_disk_free.ppm = CONFIG_DEFAULT_MIN_FREE_PPM;
		p->folder_lines[p->c->folder_count] = p->line;
		p->cur = p->c->folder_count++;
		p->sec = SEC_FOLDER;
	} else {
		char *hdr = xstrndup(s, n);

		rc = perr(p, "unknown section \"%s\" (want [options], "
		    "[device ID] or [folder ID])", qv(hdr, qbuf));
		free(hdr);
		goto out;
	}
	rc = 0;
out:
	free(inner);
	return rc;
}

/* The KEY_* bit of a single-valued key; 0 for repeatable or unknown keys. */
static unsigned
key_bit(const char *key)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} keys[] = {
		{ "name", KEY_NAME }, { "listen", KEY_LISTEN },
		{ "api", KEY_API }, { "announce_lan", KEY_ANNOUNCE },
		{ "listen_lan", KEY_LISTENLAN }, { "introducer", KEY_INTRODUCER },
		{ "low_priority", KEY_LOWPRIORITY },
		{ "label", KEY_LABEL }, { "path", KEY_PATH },
		{ "type", KEY_TYPE }, { "versioning", KEY_VERSIONING },
		{ "rescan", KEY_RESCAN }, { "watch", KEY_WATCH },
		{ "max_conflicts", KEY_MAXCONFLICTS },
		{ "min_disk_free", KEY_MINDISKFREE },
		{ "introduced_by", KEY_INTRODUCEDBY },
		{ "skip_introduction_removals", KEY_SKIPREMOVALS },
	};
	size_t	i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].name) == 0)
			return keys[i].bit;
	return 0;
}

/* Mark the key as seen; a repeat of a single-valued key is an error. */
static int
key_once(struct parser *p, const char *ctx, const char *key)
{
	unsigned	bit = key_bit(key);

	if (p->seen & bit)
		return perr(p, "%sduplicate key \"%s\"", ctx, key);
	p->seen |= bit;
	return 0;
}

/* The boolean [options] key `key` names, or NULL. */
static bool *
options_flag(struct config *c, const char *key)
{
	if (strcmp(key, "announce_lan") == 0)
		return &c->announce_lan;
	if (strcmp(key, "listen_lan") == 0)
		return &c->listen_lan;
	if (strcmp(key, "low_priority") == 0)
		return &c->low_priority;
	return NULL;
}

static int
parse_options_key(struct parser *p, const char *key, char *v)
{
	struct config	*c = p->c;
	char		 qbuf[QV_SIZE];
	bool		 b, *flag;
	int		 rc;

	rc = key_once(p, "", key);
	if (rc != 0)
		return rc;
	if (strcmp(key, "name") == 0) {
		free(c->name);
		c->name = xstrdup(v);
	} else if (strcmp(key, "listen") == 0) {
		if (config_address_validate(v, false) != 0)
			return perr(p, "bad listen address \"%s\" (want "
			    "tcp://HOST:PORT)", qv(v, qbuf));
		free(c->listen);
		c->listen = xstrdup(v);
	} else if (strcmp(key, "api") == 0) {
		if (config_api_validate(v) != 0)
			return perr(p, "bad api address \"%s\" (want "
			    "127.0.0.1:PORT or [::1]:PORT)", qv(v, qbuf));
		free(c->api);
		c->api = xstrdup(v);
	} else if ((flag = options_flag(c, key)) != NULL) {
		if (!parse_bool(v, &b))
			return perr(p, "%s: bad boolean \"%s\" (want true or "
			    "false)", key, qv(v, qbuf));
		*flag = b;
	} else
		return perr(p, "unknown key \"%s\" in [options]",
		    qv(key, qbuf));
	return 0;
}

static int
parse_device_key(struct parser *p, const char *key, char *v)
{
	struct config_device	*d = &p->c->devices[p->cur];
	char			 ctx[32], sid[IDENTITY_SHORT_STR_SIZE];
	char			 qbuf[QV_SIZE];
	bool			 b;
	int			 rc;

	short_id(&d->id, sid);
	snprintf(ctx, sizeof(ctx), "device \"%s\": ", sid);
	rc = key_once(p, ctx, key);
	if (rc != 0)
		return rc;
	if (strcmp(key, "name") == 0) {
		free(d->name);
		d->name = xstrdup(v);
	} else if (strcmp(key, "address") == 0) {
		if (config_address_validate(v, true) != 0)
			return perr(p, "%sbad address \"%s\" (want "
			    "tcp://HOST:PORT or dynamic)", ctx, qv(v, qbuf));
		d->addresses = xreallocarray(d->addresses,
		    d->address_count + 1, sizeof(*d->addresses));
		d->addresses[d->address_count++] = xstrdup(v);
	} else if (strcmp(key, "introducer") == 0 ||
	    strcmp(key, "skip_introduction_removals") == 0) {
		if (!parse_bool(v, &b))
			return perr(p, "%s%s: bad boolean \"%s\" (want true or "
			    "false)", ctx, key, qv(v, qbuf));
		if (key[0] == 'i')
			d->introducer = b;
		else
			d->skip_introduction_removals = b;
	} else if (strcmp(key, "introduced_by") == 0) {
		char	e[64];

		if (identity_id_parse(v, &d->introduced_by, e, sizeof(e)) != 0)
			return perr(p, "%sintroduced_by: %s", ctx, e);
		d->has_introduced_by = true;
	} else
		return perr(p, "%sunknown key \"%s\"", ctx, qv(key, qbuf));
	return 0;
}

static int
parse_folder_key(struct parser *p, const char *key, char *v)
{
	struct config_folder	*f = &p->c->folders[p->cur];
	char			 ctx[96], qbuf[QV_SIZE];
	uint64_t		 u;
	bool			 b;
	int			 rc;

	snprintf(ctx, sizeof(ctx), "folder \"%s\": ", f->id);
	rc = key_once(p, ctx, key);
	if (rc != 0)
		return rc;
	if (strcmp(key, "label") == 0) {
		free(f->label);
		f->label = xstrdup(v);
	} else if (strcmp(key, "path") == 0) {
		if (v[0] != '/')
			return perr(p, "%spath \"%s\" is not absolute", ctx,
			    qv(v, qbuf));
		free(f->path);
		f->path = xstrdup(v);
	} else if (strcmp(key, "type") == 0) {
		if (config_folder_type_parse(v, &f->type) != 0)
			return perr(p, "%sunknown type \"%s\" (want "
			    "sendreceive, sendonly or receiveonly)", ctx,
			    qv(v, qbuf));
	} else if (strcmp(key, "versioning") == 0) {
		if (config_versioning_parse(v, &f->versioning) != 0)
			return perr(p, "%sunknown versioning \"%s\" (want "
			    "none, trashcan, simple or staggered)", ctx,
			    qv(v, qbuf));
	} else if (strcmp(key, "rescan") == 0) {
		if (strlen(v) > 20 || util_parse_u64(v, 0,
		    CONFIG_MAX_RESCAN_S, &u) != 0)
			return perr(p, "%srescan \"%s\" is not a number of "
			    "seconds in 0..%u", ctx, qv(v, qbuf),
			    (unsigned)CONFIG_MAX_RESCAN_S);
		f->rescan_s = (uint32_t)u;
	} else if (strcmp(key, "watch") == 0) {
		if (!parse_bool(v, &b))
			return perr(p, "%swatch: bad boolean \"%s\" (want "
			    "true or false)", ctx, qv(v, qbuf));
		f->watch = b;
	} else if (strcmp(key, "max_conflicts") == 0) {
		if (strcmp(v, "-1") == 0)
			f->max_conflicts = -1;
		else if (strlen(v) > 20 || util_parse_u64(v, 0,
		    CONFIG_MAX_MAX_CONFLICTS, &u) != 0)
			return perr(p, "%smax_conflicts \"%s\" is not -1 "
			    "(keep all) or a count in 0..%u", ctx,
			    qv(v, qbuf), (unsigned)CONFIG_MAX_MAX_CONFLICTS);
		else
			f->max_conflicts = (int32_t)u;
	} else if (strcmp(key, "min_disk_free") == 0) {
		if (config_space_parse(v, &f->min_disk_free) != 0)
			return perr(p, "%smin_disk_free \"%s\" is not a "
			    "percentage in 0..100%% or a size such as "
			    "\"500 MiB\"", ctx, qv(v, qbuf));
	} else if (strcmp(key, "share") == 0) {
		/* Checked at the end: devices may come after folders. */
		p->shares = xreallocarray(p->shares, p->share_count + 1,
		    sizeof(*p->shares));
		p->shares[p->share_count].folder = p->cur;
		p->shares[p->share_count].line = p->line;
		p->shares[p->share_count].text = xstrdup(v);
		p->share_count++;
	} else
		return perr(p, "%sunknown key \"%s\"", ctx, qv(key, qbuf));
	return 0;
}

static int
parse_line(struct parser *p, const char *s, size_t n)
{
	const char	*eq, *end, *vs;
	char		 qbuf[QV_SIZE];
	char		*key = NULL, *val = NULL;
	size_t		 kn, i;
	int		 rc;

	while (n > 0 && is_blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	end = s + n;
	if (n == 0 || s[0] == '#') {
		rc = 0;
		goto out;
	}
	if (s[0] == '[') {
		if (s[n - 1] != ']') {
			key = xstrndup(s, n);
			rc = perr(p, "unterminated section header \"%s\"",
			    qv(key, qbuf));
			goto out;
		}
		rc = parse_section(p, s, n);
		goto out;
	}
	eq = memchr(s, '=', n);
	if (eq == NULL) {
		key = xstrndup(s, n);
		rc = perr(p, "expected \"key = value\" or \"[section]\", "
		    "got \"%s\"", qv(key, qbuf));
		goto out;
	}
	kn = (size_t)(eq - s);
	while (kn > 0 && is_blank(s[kn - 1]))
		kn--;
	key = xstrndup(s, kn);
	for (i = 0; i < kn; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') || key[i] == '_'))
			break;
	if (kn == 0 || i != kn) {
		rc = perr(p, "bad key \"%s\"", qv(key, qbuf));
		goto out;
	}
	for (vs = eq + 1; vs < end && is_blank(*vs); vs++)
		;
	rc = parse_value(p, vs, (size_t)(end - vs), &val);
	if (rc != 0)
		goto out;
	switch (p->sec) {
	case SEC_OPTIONS:
		rc = parse_options_key(p, key, val);
		break;
	case SEC_DEVICE:
		rc = parse_device_key(p, key, val);
		break;
	case SEC_FOLDER:
		rc = parse_folder_key(p, key, val);
		break;
	default:
		rc = perr(p, "key \"%s\" outside any section", key);
		break;
	}
out:
	free(key);
	free(val);
	return rc;
}

/* Checks that need the whole file: required keys, shares, defaults. */
static int
parse_finish(struct parser *p)
{
	struct config_folder	*f;
	struct config_device	*d;
	struct share_ref	*r;
	struct device_id	 id;
	char			 qbuf[QV_SIZE], why[128];
	size_t			 i;

	for (i = 0; i < p->c->folder_count; i++) {
		f = &p->c->folders[i];
		if (f->path == NULL) {
			p->line = p->folder_lines[i];
			return perr(p, "folder \"%s\": missing path", f->id);
		}
	}
	for (i = 0; i < p->share_count; i++) {
		r = &p->shares[i];
		f = &p->c->folders[r->folder];
		p->line = r->line;
		if (identity_id_parse(r->text, &id, why, sizeof(why)) != 0)
			return perr(p, "folder \"%s\": bad device ID \"%s\" in "
			    "share: %s", f->id, qv(r->text, qbuf), why);
		/*
		 * Sharing with an unknown device would silently do nothing,
		 * so it is an error: add the [device] section first.
		 */
		if (config_device_find(p->c, &id) == NULL)
			return perr(p, "folder \"%s\": shared with unknown "
			    "device \"%s\"", f->id, qv(r->text, qbuf));
		if (config_folder_shares(f, &id, NULL))
			return perr(p, "folder \"%s\": duplicate share \"%s\"",
			    f->id, qv(r->text, qbuf));
		f->shares = xreallocarray(f->shares, f->share_count + 1,
		    sizeof(*f->shares));
		f->shares[f->share_count++] = id;
	}
	for (i = 0; i < p->c->device_count; i++) {
		d = &p->c->devices[i];
		if (d->address_count == 0) {
			d->addresses = xcalloc(1, sizeof(*d->addresses));
			d->addresses[0] = xstrdup("dynamic");
			d->address_count = 1;
		}
	}
	return 0;
}

int
config_parse(const char *text, size_t len, const char *file,
    struct config **out, char *err, size_t err_size)
{
	struct parser	 p;
	const char	*s, *nl, *end;
	size_t		 n, i;
	int		 rc;

	memset(&p, 0, sizeof(p));
	p.file = file != NULL ? file : "config";
	p.err = err;
	p.err_size = err_size;
	p.c = config_new();
	*out = NULL;
	if (err != NULL && err_size > 0)
		err[0] = '\0';
	if (len > CONFIG_MAX_SIZE) {
		errf(err, err_size, "%s: file is larger than %d bytes", p.file,
		    CONFIG_MAX_SIZE);
		rc = SH_ECONFIG;
		goto out;
	}
	s = text;
	end = text + len;
	while (s < end) {
		p.line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		n = (nl != NULL ? nl : end) - s;
		if (n > CONFIG_MAX_LINE) {
			rc = perr(&p, "line longer than %d bytes",
			    CONFIG_MAX_LINE);
			goto out;
		}
		if (memchr(s, '\0', n) != NULL) {
			rc = perr(&p, "NUL byte in line");
			goto out;
		}
		/* Accept CRLF files from editors that write them. */
		if (n > 0 && s[n - 1] == '\r')
			n--;
		rc = parse_line(&p, s, n);
		if (rc != 0)
			goto out;
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	rc = parse_finish(&p);
	if (rc != 0)
		goto out;
	*out = p.c;
	p.c = NULL;
	rc = 0;
out:
	for (i = 0; i < p.share_count; i++)
		free(p.shares[i].text);
	free(p.shares);
	free(p.folder_lines);
	config_free(p.c);
	return rc;
}

int
config_load(const char *path, struct config **out, char *err,
    size_t err_size)
{
	char	*text = NULL;
	size_t	 len;
	int	 rc;

	*out = NULL;
	rc = util_read_file(path, CONFIG_MAX_SIZE, &text, &len);
	if (rc == -EFBIG) {
		errf(err, err_size, "%s: file is larger than %d bytes", path,
		    CONFIG_MAX_SIZE);
		goto out;
	}
	if (rc != 0) {
		errf(err, err_size, "%s: %s", path, strerror(-rc));
		goto out;
	}
	rc = config_parse(text, len, path, out, err, err_size);
out:
	free(text);
	return rc;
}

/* Formatting */

static bool
needs_quotes(const char *s)
{
	size_t	n = strlen(s);

	return n == 0 || is_blank(s[0]) || is_blank(s[n - 1]) || s[0] == '"';
}

/* A text being formatted; the first error sticks (later writes are skipped). */
struct fmt {
	struct util_buf	b;
	int		rc;
};

static void	fmt_printf(struct fmt *, const char *, ...) SH_PRINTF(2, 3);

static void
fmt_printf(struct fmt *f, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	if (f->rc != 0)
		return;
	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	f->rc = util_buf_append(&f->b, s, strlen(s));
	free(s);
}

static void
fmt_append(struct fmt *f, const char *s, size_t len)
{
	if (f->rc == 0)
		f->rc = util_buf_append(&f->b, s, len);
}

/* "key = value", quoted when needs_quotes() says so. */
static void
fmt_value(struct fmt *f, const char *key, const char *v)
{
	const char	*s;

	if (f->rc != 0)
		return;
	/* Refuse what config_parse() could not read back. */
	if (!config_text_valid(v)) {
		LOG_ERROR("config", "%s: value has a control character or is "
		    "longer than %d bytes", key, CONFIG_MAX_VALUE);
		f->rc = SH_ECONFIG;
		return;
	}
	if (!needs_quotes(v)) {
		fmt_printf(f, "%s = %s\n", key, v);
	} else {
		fmt_printf(f, "%s = \"", key);
		for (s = v; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\')
				fmt_append(f, "\\", 1);
			fmt_append(f, s, 1);
		}
		fmt_printf(f, "\"\n");
	}
}

char *
config_format(const struct config *c)
{
	const struct config_device	*d;
	const struct config_folder	*f;
	struct fmt			 o;
	char				 id[IDENTITY_ID_STR_SIZE];
	char				*text = NULL;
	size_t				 i, j;

	util_buf_init(&o.b, SIZE_MAX / 2);
	o.rc = 0;
	fmt_printf(&o, "# Shoal configuration. Edit while the daemon runs; "
	    "it reloads within 2 s.\n# Format: see docs/configuration.md.\n"
	    "\n[options]\n");
	fmt_value(&o, "name", c->name);
	fmt_value(&o, "listen", c->listen);
	fmt_value(&o, "api", c->api);
	fmt_printf(&o, "announce_lan = %s\nlisten_lan = %s\n"
	    "low_priority = %s\n",
	    c->announce_lan ? "true" : "false",
	    c->listen_lan ? "true" : "false",
	    c->low_priority ? "true" : "false");
	for (i = 0; i < c->device_count; i++) {
		d = &c->devices[i];
		identity_id_format(&d->id, id);
		fmt_printf(&o, "\n[device %s]\n", id);
		fmt_value(&o, "name", d->name);
		for (j = 0; j < d->address_count; j++)
			fmt_value(&o, "address", d->addresses[j]);
		fmt_printf(&o, "introducer = %s\n",
		    d->introducer ? "true" : "false");
		if (d->skip_introduction_removals)
			fmt_printf(&o, "skip_introduction_removals = true\n");
		if (d->has_introduced_by) {
			identity_id_format(&d->introduced_by, id);
			fmt_printf(&o, "introduced_by = %s\n", id);
		}
	}
	for (i = 0; i < c->folder_count; i++) {
		char	space[CONFIG_SPACE_STR_SIZE];

		f = &c->folders[i];
		config_space_format(&f->min_disk_free, space);
		fmt_printf(&o, "\n[folder %s]\n", f->id);
		fmt_value(&o, "label", f->label);
		fmt_value(&o, "path", f->path);
		fmt_printf(&o, "type = %s\nversioning = %s\nrescan = %u\n"
		    "watch = %s\nmax_conflicts = %d\nmin_disk_free = %s\n",
		    config_folder_type_name(f->type),
		    config_versioning_name(f->versioning),
		    (unsigned)f->rescan_s, f->watch ? "true" : "false",
		    (int)f->max_conflicts, space);
		for (j = 0; j < f->share_count; j++) {
			identity_id_format(&f->shares[j], id);
			fmt_printf(&o, "share = %s\n", id);
		}
	}
	if (o.rc != 0)
		goto out;
	text = o.b.data;
	o.b.data = NULL;
out:
	util_buf_free(&o.b);
	return text;
}

int
config_save(const struct config *c, const char *path)
{
	char	*text;
	int	 rc;

	text = config_format(c);
	if (text == NULL) {
		rc = SH_ECONFIG;
		goto out;
	}
	rc = util_write_file_atomic(path, text, strlen(text), 0600);
out:
	free(text);
	return rc;
}

/* Operations */

bool
config_text_valid(const char *s)
{
	return s != NULL && !has_control(s) && strlen(s) <= CONFIG_MAX_VALUE;
}

int
config_device_add(struct config *c, const struct device_id *id,
    const char *name, const char *const *addresses, size_t address_count,
    bool introducer, char *err, size_t err_size)
{
	struct config_device	*d;
	char			 sid[IDENTITY_SHORT_STR_SIZE], qbuf[QV_SIZE];
	size_t			 i;

	if (identity_id_is_zero(id)) {
		errf(err, err_size, "device ID is all zero");
		return SH_ECONFIG;
	}
	short_id(id, sid);
	if (config_device_find(c, id) != NULL) {
		errf(err, err_size, "device \"%s\" already exists", sid);
		return SH_EEXIST;
	}
	if (name == NULL)
		name = "";
	if (!config_text_valid(name)) {
		errf(err, err_size, "device \"%s\": control character in "
		    "name \"%s\"", sid, qv(name, qbuf));
		return SH_ECONFIG;
	}
	if (address_count > CONFIG_MAX_ADDRESSES) {
		errf(err, err_size, "device \"%s\": more than %d addresses",
		    sid, CONFIG_MAX_ADDRESSES);
		return SH_ECONFIG;
	}
	for (i = 0; i < address_count; i++) {
		if (config_address_validate(addresses[i], true) != 0) {
			errf(err, err_size, "device \"%s\": bad address \"%s\" "
			    "(want tcp://HOST:PORT or dynamic)", sid,
			    addresses[i] != NULL ? qv(addresses[i], qbuf) : "");
			return SH_ECONFIG;
		}
	}
	c->devices = xreallocarray(c->devices, c->device_count + 1,
	    sizeof(*c->devices));
	d = &c->devices[c->device_count++];
	memset(d, 0, sizeof(*d));
	d->id = *id;
	d->name = xstrdup(name);
	d->introducer = introducer;
	if (address_count == 0) {
		d->addresses = xcalloc(1, sizeof(*d->addresses));
		d->addresses[0] = xstrdup("dynamic");
		d->address_count = 1;
	} else {
		d->addresses = xcalloc(address_count, sizeof(*d->addresses));
		for (i = 0; i < address_count; i++)
			d->addresses[i] = xstrdup(addresses[i]);
		d->address_count = address_count;
	}
	return 0;
}

int
config_device_remove(struct config *c, const struct device_id *id)
{
	struct config_device	*d;
	struct config_folder	*f;
	size_t			 i, j, k;

	d = config_device_find(c, id);
	if (d == NULL)
		return SH_ENOTFOUND;
	i = (size_t)(d - c->devices);
	device_clear(d);
	memmove(&c->devices[i], &c->devices[i + 1],
	    (c->device_count - i - 1) * sizeof(*c->devices));
	c->device_count--;
	/* A share with a device that is gone would make the file invalid. */
	for (i = 0; i < c->folder_count; i++) {
		f = &c->folders[i];
		for (j = 0, k = 0; j < f->share_count; j++)
			if (!identity_id_equal(&f->shares[j], id))
				f->shares[k++] = f->shares[j];
		f->share_count = k;
	}
	return 0;
}

int
config_folder_add(struct config *c, const char *id, const char *path,
    enum config_folder_type type, enum config_versioning versioning,
    uint32_t rescan_s, bool watch, char *err, size_t err_size)
{
	struct config_folder	*f;
	char			 qbuf[QV_SIZE];

	if (!config_folder_id_valid(id)) {
		errf(err, err_size, "bad folder ID \"%s\" (want 1 to 64 of "
		    "A-Z a-z 0-9 . _ -)", id != NULL ? qv(id, qbuf) : "");
		return SH_ECONFIG;
	}
	if (config_folder_find(c, id) != NULL) {
		errf(err, err_size, "folder \"%s\" already exists", id);
		return SH_EEXIST;
	}
	if (path == NULL || path[0] != '/') {
		errf(err, err_size, "folder \"%s\": path \"%s\" is not "
		    "absolute", id, path != NULL ? qv(path, qbuf) : "");
		return SH_ECONFIG;
	}
	if (!config_text_valid(path)) {
		errf(err, err_size, "folder \"%s\": control character in "
		    "path \"%s\"", id, qv(path, qbuf));
		return SH_ECONFIG;
	}
	if ((unsigned)type > CONFIG_FOLDER_RECEIVEONLY) {
		errf(err, err_size, "folder \"%s\": unknown type %d", id,
		    (int)type);
		return SH_ECONFIG;
	}
	if ((unsigned)versioning > CONFIG_VERSIONING_STAGGERED) {
		errf(err, err_size, "folder \"%s\": unknown versioning %d", id,
		    (int)versioning);
		return SH_ECONFIG;
	}
	if (rescan_s > CONFIG_MAX_RESCAN_S) {
		errf(err, err_size, "folder \"%s\": rescan %u is not in "
		    "0..%u", id, (unsigned)rescan_s,
		    (unsigned)CONFIG_MAX_RESCAN_S);
		return SH_ECONFIG;
	}
	c->folders = xreallocarray(c->folders, c->folder_count + 1,
	    sizeof(*c->folders));
	f = &c->folders[c->folder_count++];
	memset(f, 0, sizeof(*f));
	f->id = xstrdup(id);
	f->label = xstrdup("");
	f->path = xstrdup(path);
	f->type = type;
	f->versioning = versioning;
	f->rescan_s = rescan_s;
	f->watch = watch;
	f->max_conflicts = CONFIG_DEFAULT_MAX_CONFLICTS;
	f->min_disk_free.ppm = CONFIG_DEFAULT_MIN_FREE_PPM;
	return 0;
}

int
config_folder_remove(struct config *c, const char *id)
{
	struct config_folder	*f;
	size_t			 i;

	f = config_folder_find(c, id);
	if (f == NULL)
		return SH_ENOTFOUND;
	i = (size_t)(f - c->folders);
	folder_clear(f);
	memmove(&c->folders[i], &c->folders[i + 1],
	    (c->folder_count - i - 1) * sizeof(*c->folders));
	c->folder_count--;
	return 0;
}

int
config_folder_share(struct config *c, const char *folder_id,
    const struct device_id *dev, char *err, size_t err_size)
{
	struct config_folder	*f;
	char			 sid[IDENTITY_SHORT_STR_SIZE], qbuf[QV_SIZE];

	f = config_folder_find(c, folder_id);
	if (f == NULL) {
		errf(err, err_size, "no folder \"%s\"", qv(folder_id, qbuf));
		return SH_ENOTFOUND;
	}
	short_id(dev, sid);
	if (config_device_find(c, dev) == NULL) {
		errf(err, err_size, "folder \"%s\": no device \"%s\" (add it "
		    "first)", folder_id, sid);
		return SH_ENOTFOUND;
	}
	if (config_folder_shares(f, dev, NULL)) {
		errf(err, err_size, "folder \"%s\" is already shared with "
		    "\"%s\"", folder_id, sid);
		return SH_EEXIST;
	}
	f->shares = xreallocarray(f->shares, f->share_count + 1,
	    sizeof(*f->shares));
	f->shares[f->share_count++] = *dev;
	return 0;
}

bool
config_folder_shares(const struct config_folder *f,
    const struct device_id *dev, size_t *at)
{
	size_t	i;

	for (i = 0; i < f->share_count; i++) {
		if (identity_id_equal(&f->shares[i], dev)) {
			if (at != NULL)
				*at = i;
			return true;
		}
	}
	return false;
}

int
config_folder_unshare(struct config *c, const char *folder_id,
    const struct device_id *dev)
{
	struct config_folder	*f = config_folder_find(c, folder_id);
	size_t			 i;

	if (f == NULL || !config_folder_shares(f, dev, &i))
		return SH_ENOTFOUND;
	memmove(&f->shares[i], &f->shares[i + 1],
	    (f->share_count - i - 1) * sizeof(*f->shares));
	f->share_count--;
	return 0;
}

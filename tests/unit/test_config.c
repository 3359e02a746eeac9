/* SPDX-License-Identifier: MIT */
/*
 * Tests for the config module: parse/format round trips, quoting, every
 * kind of parse error with its exact "FILE:LINE: reason" text, the edit
 * operations, address validation, limits, and save/load with mode 0600.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shoal/config.h"
#include "shoal/identity.h"
#include "shoal/util.h"

#define ID1 "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
#define ID2 "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD"
#define ID3 "LJ7NGI7-T3UUY6H-YIP5AAY-KPUDGWF-WT3OV5I-HKQIBT6-JVTWC6K-4IGRMAN"

static const char full_text[] =
    "# Shoal configuration.\n"
    "[options]\n"
    "name = laptop\n"
    "listen = tcp://0.0.0.0:22000\n"
    "api = 127.0.0.1:8385\n"
    "announce_lan = true\n"
    "listen_lan = no\n"
    "low_priority = 0\n"
    "\n"
    "[device " ID1 "]\n"
    "name = desktop\n"
    "address = tcp://192.0.2.7:22000\n"
    "address = tcp://[2001:db8::1]:22000\n"
    "address = dynamic\n"
    "introducer = yes\n"
    "skip_introduction_removals = true\n"
    "\n"
    "[device " ID2 "]\n"
    "introduced_by = " ID1 "\n"
    "\n"
    "[folder default]\n"
    "label = Default Folder\n"
    "path = /home/u/Shoal\n"
    "type = sendonly\n"
    "versioning = staggered\n"
    "rescan = 0\n"
    "watch = 0\n"
    "max_conflicts = -1\n"
    "min_disk_free = 2.5 GiB\n"
    "share = " ID1 "\n"
    "share = " ID2 "\n";

static struct config *
parse_ok(const char *text)
{
	struct config	*c = NULL;
	char		 err[CONFIG_ERR_SIZE];
	int		 rc;

	rc = config_parse(text, strlen(text), "config", &c, err, sizeof(err));
	if (rc != 0)
		fail_msg("unexpected parse error: %s", err);
	assert_non_null(c);
	return c;
}

static void
id_of(const char *s, struct device_id *out)
{
	assert_int_equal(identity_id_parse(s, out, NULL, 0), 0);
}

/* format(parse(format(c))) == format(c) */
static void
assert_round_trip(const struct config *c)
{
	struct config	*c2;
	char		*t1, *t2;

	t1 = config_format(c);
	assert_non_null(t1);
	c2 = parse_ok(t1);
	t2 = config_format(c2);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
	config_free(c2);
}

static void
test_config_defaults(void **state)
{
	struct config	*c;

	(void)state;
	c = config_new();
	assert_string_equal(c->listen, "tcp://0.0.0.0:22000");
	assert_string_equal(c->api, "127.0.0.1:8385");
	assert_true(c->announce_lan);
	assert_true(c->listen_lan);
	assert_true(c->low_priority);
	assert_int_equal(c->device_count, 0);
	assert_int_equal(c->folder_count, 0);
	assert_round_trip(c);
	config_free(c);

	/* A folder section with only a path gets the folder defaults. */
	c = parse_ok("[folder x]\npath = /x\n[device " ID1 "]\n");
	assert_int_equal(c->folders[0].rescan_s, 3600);
	assert_true(c->folders[0].watch);
	assert_int_equal(c->folders[0].type, CONFIG_FOLDER_SENDRECEIVE);
	assert_int_equal(c->folders[0].versioning, CONFIG_VERSIONING_NONE);
	assert_int_equal(c->folders[0].max_conflicts, 10);
	assert_int_equal(c->folders[0].min_disk_free.ppm, 10000);
	assert_int_equal(c->folders[0].min_disk_free.bytes, 0);
	assert_int_equal(c->devices[0].address_count, 1);
	assert_string_equal(c->devices[0].addresses[0], "dynamic");
	assert_false(c->devices[0].introducer);
	assert_string_equal(c->listen, CONFIG_DEFAULT_LISTEN);
	config_free(c);
}

/* What min_disk_free accepts, what it means, and how it is written. */
static void
test_config_space(void **state)
{
	static const struct {
		const char	*in;
		uint32_t	 ppm;
		uint64_t	 bytes;
		const char	*out;
	} ok[] = {
		{ "1%", 10000, 0, "1%" },
		{ " 0.5 % ", 5000, 0, "0.5%" },
		{ "100%", 1000000, 0, "100%" },
		{ "0.0001%", 1, 0, "0.0001%" },
		{ "0%", 0, 0, "0" },
		{ "0", 0, 0, "0" },
		{ "4096", 0, 4096, "4 KiB" },
		{ "1000 b", 0, 1000, "1 kB" },
		{ "500MiB", 0, 500ull << 20, "500 MiB" },
		{ "1.5 GiB", 0, 3ull << 29, "1536 MiB" },
		{ "2 gb", 0, 2000000000, "2 GB" },
		{ "3T", 0, 3000000000000, "3 TB" },
		{ "1 TiB", 0, 1ull << 40, "1 TiB" },
		{ "1001", 0, 1001, "1001 B" },
		{ " 7 ", 0, 7, "7 B" },
	};
	static const char *const bad[] = {
		"", "%", "-1%", "100.0001%", "1.00001%", "1.%", ".5%", "x",
		"1 XB", "1.0000001 GiB", "99999999999 TiB", "1e3", "1 %%",
		"5 parsecs", "1 GiB 2",
	};
	struct config_space	sp;
	char			buf[CONFIG_SPACE_STR_SIZE];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(&sp, 0xff, sizeof(sp));
		if (config_space_parse(ok[i].in, &sp) != 0)
			fail_msg("\"%s\" refused", ok[i].in);
		assert_int_equal(sp.ppm, ok[i].ppm);
		assert_int_equal(sp.bytes, ok[i].bytes);
		config_space_format(&sp, buf);
		assert_string_equal(buf, ok[i].out);
		memset(&sp, 0xff, sizeof(sp));
		assert_int_equal(config_space_parse(buf, &sp), 0);
		assert_int_equal(sp.ppm, ok[i].ppm);
		assert_int_equal(sp.bytes, ok[i].bytes);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_space_parse(bad[i], &sp) != SH_EPARSE)
			fail_msg("\"%s\" accepted", bad[i]);
	/* 1 % of 1 TB; a share of a file system too big for a plain
	 * product; bytes whatever the size. */
	sp.ppm = 10000;
	sp.bytes = 0;
	assert_int_equal(config_space_bytes(&sp, 1000000000000), 10000000000);
	sp.ppm = 1000000;
	assert_int_equal(config_space_bytes(&sp, UINT64_MAX), UINT64_MAX);
	sp.ppm = 0;
	sp.bytes = 42;
	assert_int_equal(config_space_bytes(&sp, 7), 42);
}

static void
test_config_round_trip(void **state)
{
	struct config		*c;
	struct device_id	 id1, id2;
	const struct config_folder *f;

	(void)state;
	id_of(ID1, &id1);
	id_of(ID2, &id2);
	c = parse_ok(full_text);
	assert_string_equal(c->name, "laptop");
	assert_true(c->announce_lan);
	assert_false(c->listen_lan);
	assert_false(c->low_priority);
	assert_int_equal(c->device_count, 2);
	assert_true(identity_id_equal(&c->devices[0].id, &id1));
	assert_string_equal(c->devices[0].name, "desktop");
	assert_int_equal(c->devices[0].address_count, 3);
	assert_string_equal(c->devices[0].addresses[1],
	    "tcp://[2001:db8::1]:22000");
	assert_true(c->devices[0].introducer);
	assert_true(c->devices[0].skip_introduction_removals);
	assert_false(c->devices[0].has_introduced_by);
	assert_true(c->devices[1].has_introduced_by);
	assert_true(identity_id_equal(&c->devices[1].introduced_by, &id1));
	assert_string_equal(c->devices[1].name, "");
	f = config_folder_find(c, "default");
	assert_non_null(f);
	assert_string_equal(f->label, "Default Folder");
	assert_string_equal(f->path, "/home/u/Shoal");
	assert_int_equal(f->type, CONFIG_FOLDER_SENDONLY);
	assert_int_equal(f->versioning, CONFIG_VERSIONING_STAGGERED);
	assert_int_equal(f->rescan_s, 0);
	assert_false(f->watch);
	assert_int_equal(f->max_conflicts, -1);
	assert_int_equal(f->min_disk_free.ppm, 0);
	assert_int_equal(f->min_disk_free.bytes, 5ull << 29);
	assert_int_equal(f->share_count, 2);
	assert_true(identity_id_equal(&f->shares[1], &id2));
	assert_round_trip(c);
	config_free(c);

	/* Lower case and undashed IDs parse to the same device. */
	c = parse_ok("[device p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2]\n");
	assert_true(identity_id_equal(&c->devices[0].id, &id1));
	config_free(c);

	/* CRLF line ends, tabs and comments are accepted. */
	c = parse_ok("# hi\r\n\t[options]\r\n\tname\t=\tbox \r\n"
	    "[ folder\t f ]\npath=/f\n");
	assert_string_equal(c->name, "box");
	assert_non_null(config_folder_find(c, "f"));
	config_free(c);
}

static void
test_config_quoting(void **state)
{
	static const char *const names[] = {
		"", " lead", "trail ", "\tboth\t", "\"starts with quote",
		"has \"inner\" quotes", "back\\slash", "# not a comment",
		"= equals =", "ünïcödé", "\\\"", "\"",
	};
	struct config	*c, *c2;
	char		*t;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		c = config_new();
		free(c->name);
		c->name = xstrdup(names[i]);
		assert_int_equal(config_folder_add(c, "f", "/path with/ spaces ",
		    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 60,
		    true, NULL, 0), 0);
		t = config_format(c);
		c2 = parse_ok(t);
		assert_string_equal(c2->name, names[i]);
		assert_string_equal(c2->folders[0].path, "/path with/ spaces ");
		assert_round_trip(c2);
		free(t);
		config_free(c);
		config_free(c2);
	}

	/* Quoted values unescape; unquoted ones are taken as written. */
	c = parse_ok("[options]\nname = \" a \\\"b\\\" \\\\ \"\n");
	assert_string_equal(c->name, " a \"b\" \\ ");
	config_free(c);
	c = parse_ok("[options]\nname = a \\\"b\n");
	assert_string_equal(c->name, "a \\\"b");
	config_free(c);
	c = parse_ok("[options]\nname =\n");
	assert_string_equal(c->name, "");
	config_free(c);
}

struct err_case {
	const char	*text;
	const char	*err;
};

static const struct err_case err_cases[] = {
	{ "[options]\nname = a\n\n\n[folder docs]\npath = /d\n"
	  "type = sendrecv\n",
	  "config:7: folder \"docs\": unknown type \"sendrecv\" (want "
	  "sendreceive, sendonly or receiveonly)" },
	{ "[folder docs]\npath = /d\nversioning = git\n",
	  "config:3: folder \"docs\": unknown versioning \"git\" (want none, "
	  "trashcan, simple or staggered)" },
	{ "name = x\n",
	  "config:1: key \"name\" outside any section" },
	{ "[options]\ncolour = blue\n",
	  "config:2: unknown key \"colour\" in [options]" },
	{ "[device " ID1 "]\nport = 1\n",
	  "config:2: device \"P56IOI7\": unknown key \"port\"" },
	{ "[device " ID1 "]\nskip_introduction_removals = often\n",
	  "config:2: device \"P56IOI7\": skip_introduction_removals: bad "
	  "boolean \"often\" (want true or false)" },
	{ "[device " ID1 "]\nintroduced_by = ABC\n",
	  "config:2: device \"P56IOI7\": introduced_by: device ID \"ABC\": "
	  "wrong length 3 (want 56 or 52 characters)" },
	{ "[folder a]\npath = /a\nowner = me\n",
	  "config:3: folder \"a\": unknown key \"owner\"" },
	{ "[options]\n[remote x]\n",
	  "config:2: unknown section \"[remote x]\" (want [options], "
	  "[device ID] or [folder ID])" },
	{ "[options]\n[options]\n",
	  "config:2: duplicate [options] section" },
	{ "[options]\n[options\n",
	  "config:2: unterminated section header \"[options\"" },
	{ "[device " ID1 "]\n[device " ID2 "]\n[device "
	  "p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2]\n",
	  "config:3: duplicate device "
	  "\"p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2\" "
	  "(P56IOI7)" },
	{ "[folder a]\npath = /a\n[folder a]\npath = /b\n",
	  "config:3: duplicate folder \"a\"" },
	{ "[folder a/b]\n",
	  "config:1: bad folder ID \"a/b\" (want 1 to 64 of A-Z a-z 0-9 . _ -)" },
	{ "[folder a]\npath = relative/dir\n",
	  "config:2: folder \"a\": path \"relative/dir\" is not absolute" },
	{ "[folder a]\nlabel = x\n\n",
	  "config:1: folder \"a\": missing path" },
	{ "[folder a]\npath = /a\nshare = " ID3 "\n[device " ID1 "]\n",
	  "config:3: folder \"a\": shared with unknown device \"" ID3 "\"" },
	{ "[device " ID1 "]\n[folder a]\npath = /a\nshare = " ID1 "\n"
	  "share = " ID1 "\n",
	  "config:5: folder \"a\": duplicate share \"" ID1 "\"" },
	{ "[options]\nannounce_lan = maybe\n",
	  "config:2: announce_lan: bad boolean \"maybe\" (want true or false)" },
	{ "[folder a]\npath = /a\nwatch = 2\n",
	  "config:3: folder \"a\": watch: bad boolean \"2\" (want true or "
	  "false)" },
	{ "[folder a]\npath = /a\nrescan = -1\n",
	  "config:3: folder \"a\": rescan \"-1\" is not a number of seconds "
	  "in 0..31536000" },
	{ "[folder a]\npath = /a\nmax_conflicts = -2\n",
	  "config:3: folder \"a\": max_conflicts \"-2\" is not -1 (keep all) "
	  "or a count in 0..1000000" },
	{ "[folder a]\npath = /a\nmax_conflicts = ten\n",
	  "config:3: folder \"a\": max_conflicts \"ten\" is not -1 (keep all) "
	  "or a count in 0..1000000" },
	{ "[folder a]\npath = /a\nmax_conflicts = 0\nmax_conflicts = 1\n",
	  "config:4: folder \"a\": duplicate key \"max_conflicts\"" },
	{ "[folder a]\npath = /a\nmin_disk_free = 101%\n",
	  "config:3: folder \"a\": min_disk_free \"101%\" is not a percentage "
	  "in 0..100% or a size such as \"500 MiB\"" },
	{ "[folder a]\npath = /a\nmin_disk_free = 5 parsecs\n",
	  "config:3: folder \"a\": min_disk_free \"5 parsecs\" is not a "
	  "percentage in 0..100% or a size such as \"500 MiB\"" },
	{ "[folder a]\npath = /a\nmin_disk_free = 1%\nmin_disk_free = 2%\n",
	  "config:4: folder \"a\": duplicate key \"min_disk_free\"" },
	{ "[folder a]\npath = /a\nrescan = 31536001\n",
	  "config:3: folder \"a\": rescan \"31536001\" is not a number of "
	  "seconds in 0..31536000" },
	{ "[folder a]\npath = /a\nrescan = 99999999999999999999999\n",
	  "config:3: folder \"a\": rescan \"99999999999999999999999\" is not "
	  "a number of seconds in 0..31536000" },
	{ "[options]\nlisten = udp://1.2.3.4:5\n",
	  "config:2: bad listen address \"udp://1.2.3.4:5\" (want "
	  "tcp://HOST:PORT)" },
	{ "[options]\nlisten = dynamic\n",
	  "config:2: bad listen address \"dynamic\" (want tcp://HOST:PORT)" },
	{ "[options]\napi = 0.0.0.0:8385\n",
	  "config:2: bad api address \"0.0.0.0:8385\" (want 127.0.0.1:PORT "
	  "or [::1]:PORT)" },
	{ "[device " ID1 "]\naddress = tcp://host:70000\n",
	  "config:2: device \"P56IOI7\": bad address \"tcp://host:70000\" "
	  "(want tcp://HOST:PORT or dynamic)" },
	{ "[device P56IOI7-MZJNU2Y]\n",
	  "config:1: bad device ID \"P56IOI7-MZJNU2Y\": " },
	{ "[options]\nname = a\nname = b\n",
	  "config:3: duplicate key \"name\"" },
	{ "[options]\nlow_priority = true\nlow_priority = false\n",
	  "config:3: duplicate key \"low_priority\"" },
	{ "[options]\nlow_priority = 2\n",
	  "config:2: low_priority: bad boolean \"2\" (want true or false)" },
	{ "[folder a]\npath = /a\npath = /b\n",
	  "config:3: folder \"a\": duplicate key \"path\"" },
	{ "[options]\njust some words\n",
	  "config:2: expected \"key = value\" or \"[section]\", got \"just "
	  "some words\"" },
	{ "[options]\nName = x\n",
	  "config:2: bad key \"Name\"" },
	{ "[options]\nname = \"abc\n",
	  "config:2: unterminated quoted value" },
	{ "[options]\nname = \"abc\" def\n",
	  "config:2: text after closing quote" },
	{ "[options]\nname = \"a\\nb\"\n",
	  "config:2: bad escape in quoted value (only \\\" and \\\\)" },
	{ "[options]\nname = a\x01z\n",
	  "config:2: control character in value \"a\\x01z\"" },
};

static void
test_config_parse_errors(void **state)
{
	struct config	*c;
	char		 err[CONFIG_ERR_SIZE];
	size_t		 i;
	int		 rc;

	(void)state;
	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		c = NULL;
		rc = config_parse(err_cases[i].text, strlen(err_cases[i].text),
		    "config", &c, err, sizeof(err));
		if (rc != SH_ECONFIG)
			fail_msg("case %zu: rc %d, want SH_ECONFIG", i, rc);
		assert_null(c);
		/* Cases ending in ": " leave the reason to identity.c. */
		if (strncmp(err, err_cases[i].err,
		    strlen(err_cases[i].err)) != 0 ||
		    (err_cases[i].err[strlen(err_cases[i].err) - 1] != ' ' &&
		    strcmp(err, err_cases[i].err) != 0))
			fail_msg("case %zu:\n got  %s\n want %s", i, err,
			    err_cases[i].err);
		assert_null(strchr(err, '\n'));
	}
}

static void
test_config_limits(void **state)
{
	struct config	*c = NULL;
	char		 err[CONFIG_ERR_SIZE];
	char		*big;
	size_t		 n, i;

	(void)state;
	/* NUL bytes are refused, with the line they are on. */
	assert_int_equal(config_parse("[options]\nname = a\0b\n", 20,
	    "cfg", &c, err, sizeof(err)), SH_ECONFIG);
	assert_string_equal(err, "cfg:2: NUL byte in line");

	/* A line over CONFIG_MAX_LINE. */
	n = CONFIG_MAX_LINE + 20;
	big = xmalloc(n + 1);
	memcpy(big, "[options]\nname = ", 17);
	memset(big + 17, 'x', n - 17);
	big[n] = '\0';
	assert_int_equal(config_parse(big, n, "cfg", &c, err, sizeof(err)),
	    SH_ECONFIG);
	assert_string_equal(err, "cfg:2: line longer than 65536 bytes");
	/* A line of exactly CONFIG_MAX_LINE bytes is fine (a comment). */
	n = 10 + CONFIG_MAX_LINE;
	memcpy(big + 10, "# ", 2);
	big[n] = '\0';
	c = parse_ok(big);
	config_free(c);
	c = NULL;
	free(big);

	/* Values are capped so that they can always be written back: here a
	 * value of CONFIG_MAX_VALUE + 1 quote characters, written escaped. */
	big = xmalloc(18 + 2 * (CONFIG_MAX_VALUE + 1) + 2);
	memcpy(big, "[options]\nname = \"", 18);
	for (i = 0, n = 18; i < CONFIG_MAX_VALUE + 1; i++) {
		big[n++] = '\\';
		big[n++] = '"';
	}
	big[n++] = '"';
	big[n] = '\0';
	assert_int_equal(config_parse(big, n, "cfg", &c, err, sizeof(err)),
	    SH_ECONFIG);
	assert_string_equal(err, "cfg:2: value longer than 32704 bytes");
	/* One quote fewer fits, and its doubled line round-trips. */
	memmove(big + n - 3, big + n - 1, 2);
	c = parse_ok(big);
	assert_int_equal(strlen(c->name), CONFIG_MAX_VALUE);
	assert_round_trip(c);
	config_free(c);
	c = NULL;
	free(big);

	/* The whole file over CONFIG_MAX_SIZE is refused before parsing. */
	n = CONFIG_MAX_SIZE + 1;
	big = xmalloc(n);
	memset(big, '\n', n);
	assert_int_equal(config_parse(big, n, "cfg", &c, err, sizeof(err)),
	    SH_ECONFIG);
	assert_string_equal(err, "cfg: file is larger than 4194304 bytes");
	assert_int_equal(config_parse(big, n - 1, "cfg", &c, err,
	    sizeof(err)), 0);
	config_free(c);
	free(big);

	/* A tiny error buffer truncates but never overflows. */
	assert_int_equal(config_parse("x\n", 2, "config", &c, err, 8),
	    SH_ECONFIG);
	assert_string_equal(err, "config:");
	assert_int_equal(config_parse("x\n", 2, "config", &c, NULL, 0),
	    SH_ECONFIG);
}

static void
test_config_address_validate(void **state)
{
	static const char *const good[] = {
		"tcp://0.0.0.0:22000", "tcp://192.0.2.7:0", "tcp://[::]:1",
		"tcp://[2001:db8::1]:65535", "tcp://example.com:22000",
		"tcp://my-host:80", "tcp://a.b-c.d:22",
	};
	static const char *const bad[] = {
		"", "tcp://", "tcp://:22000", "tcp://host", "tcp://host:",
		"tcp://host:65536", "tcp://host:-1", "tcp://host:+1",
		"tcp://host:000001", "tcp://1.2.3:22", "tcp://256.1.1.1:1",
		"tcp://[1.2.3.4]:1", "tcp://[::1:1", "tcp://::1:22",
		"tcp://-host:1", "tcp://host-:1", "tcp://a..b:1",
		"tcp://ho st:1", "http://host:1", "TCP://host:1",
		"tcp://[::1]22", "quic://1.2.3.4:22000",
	};
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (config_address_validate(good[i], false) != 0)
			fail_msg("rejected %s", good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_address_validate(bad[i], true) != SH_EPARSE)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(config_address_validate("dynamic", true), 0);
	assert_int_equal(config_address_validate("dynamic", false), SH_EPARSE);

	assert_int_equal(config_api_validate("127.0.0.1:8385"), 0);
	assert_int_equal(config_api_validate("127.1.2.3:0"), 0);
	assert_int_equal(config_api_validate("[::1]:8385"), 0);
	assert_int_equal(config_api_validate("0.0.0.0:8385"), SH_EPARSE);
	assert_int_equal(config_api_validate("192.168.1.1:8385"), SH_EPARSE);
	assert_int_equal(config_api_validate("[::]:8385"), SH_EPARSE);
	assert_int_equal(config_api_validate("localhost:8385"), SH_EPARSE);
	assert_int_equal(config_api_validate("127.0.0.1"), SH_EPARSE);
	assert_int_equal(config_api_validate("127.0.0.1:99999"), SH_EPARSE);
	assert_int_equal(config_api_validate("tcp://127.0.0.1:1"), SH_EPARSE);

	assert_true(config_folder_id_valid("a.B_c-9"));
	assert_false(config_folder_id_valid(""));
	assert_false(config_folder_id_valid("a b"));
	assert_true(config_folder_id_valid(
	    "0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(config_folder_id_valid(
	    "01234567890123456789012345678901234567890123456789012345678901234"));
}

static void
test_config_names(void **state)
{
	enum config_folder_type	t;
	enum config_versioning	v;

	(void)state;
	assert_int_equal(config_folder_type_parse("receiveonly", &t), 0);
	assert_int_equal(t, CONFIG_FOLDER_RECEIVEONLY);
	assert_string_equal(config_folder_type_name(t), "receiveonly");
	assert_int_equal(config_folder_type_parse("SendOnly", &t), SH_EPARSE);
	assert_int_equal(config_versioning_parse("trashcan", &v), 0);
	assert_int_equal(v, CONFIG_VERSIONING_TRASHCAN);
	assert_string_equal(config_versioning_name(v), "trashcan");
	assert_int_equal(config_versioning_parse("", &v), SH_EPARSE);
}

static void
test_config_operations(void **state)
{
	struct config		*c;
	struct device_id	 id1, id2, zero;
	const char		*addrs[] = { "tcp://192.0.2.1:22000", "dynamic" };
	const char		*bad_addrs[] = { "tcp://x:99999" };
	char			 err[CONFIG_ERR_SIZE];

	(void)state;
	id_of(ID1, &id1);
	id_of(ID2, &id2);
	memset(&zero, 0, sizeof(zero));
	c = config_new();

	assert_int_equal(config_device_add(c, &id1, "one", addrs, 2, true,
	    err, sizeof(err)), 0);
	assert_int_equal(config_device_add(c, &id1, "again", NULL, 0, false,
	    err, sizeof(err)), SH_EEXIST);
	assert_string_equal(err, "device \"P56IOI7\" already exists");
	assert_int_equal(config_device_add(c, &id2, "two", bad_addrs, 1,
	    false, err, sizeof(err)), SH_ECONFIG);
	assert_string_equal(err, "device \"MFZWI3D\": bad address "
	    "\"tcp://x:99999\" (want tcp://HOST:PORT or dynamic)");
	assert_int_equal(config_device_add(c, &id2, "a\nb", NULL, 0,
	    false, err, sizeof(err)), SH_ECONFIG);
	assert_int_equal(config_device_add(c, &zero, "z", NULL, 0,
	    false, err, sizeof(err)), SH_ECONFIG);
	assert_int_equal(config_device_add(c, &id2, NULL, NULL, 0, false,
	    err, sizeof(err)), 0);
	assert_int_equal(c->device_count, 2);
	assert_string_equal(config_device_find(c, &id2)->addresses[0],
	    "dynamic");
	assert_string_equal(config_device_find(c, &id2)->name, "");

	assert_int_equal(config_folder_add(c, "docs", "/home/u/docs",
	    CONFIG_FOLDER_RECEIVEONLY, CONFIG_VERSIONING_SIMPLE, 60, false,
	    err, sizeof(err)), 0);
	assert_int_equal(config_folder_add(c, "docs", "/x",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 60, true,
	    err, sizeof(err)), SH_EEXIST);
	assert_string_equal(err, "folder \"docs\" already exists");
	assert_int_equal(config_folder_add(c, "bad id", "/x",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 60, true,
	    err, sizeof(err)), SH_ECONFIG);
	assert_string_equal(err, "bad folder ID \"bad id\" (want 1 to 64 of "
	    "A-Z a-z 0-9 . _ -)");
	assert_int_equal(config_folder_add(c, "rel", "x/y",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 60, true,
	    err, sizeof(err)), SH_ECONFIG);
	assert_string_equal(err, "folder \"rel\": path \"x/y\" is not "
	    "absolute");
	assert_int_equal(config_folder_add(c, "big", "/x",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE,
	    CONFIG_MAX_RESCAN_S + 1, true, err, sizeof(err)), SH_ECONFIG);
	assert_int_equal(config_folder_add(c, "t", "/x",
	    (enum config_folder_type)7, CONFIG_VERSIONING_NONE, 1, true,
	    err, sizeof(err)), SH_ECONFIG);
	assert_int_equal(c->folder_count, 1);

	assert_int_equal(config_folder_share(c, "docs", &id1, err,
	    sizeof(err)), 0);
	assert_int_equal(config_folder_share(c, "docs", &id2, err,
	    sizeof(err)), 0);
	assert_int_equal(config_folder_share(c, "docs", &id1, err,
	    sizeof(err)), SH_EEXIST);
	assert_string_equal(err, "folder \"docs\" is already shared with "
	    "\"P56IOI7\"");
	assert_int_equal(config_folder_share(c, "nope", &id1, err,
	    sizeof(err)), SH_ENOTFOUND);
	assert_string_equal(err, "no folder \"nope\"");
	assert_round_trip(c);

	/* Removing a device removes it from every folder's shares. */
	assert_int_equal(config_device_remove(c, &id1), 0);
	assert_int_equal(config_device_remove(c, &id1), SH_ENOTFOUND);
	assert_null(config_device_find(c, &id1));
	assert_int_equal(c->folders[0].share_count, 1);
	assert_true(identity_id_equal(&c->folders[0].shares[0], &id2));
	assert_int_equal(config_folder_share(c, "docs", &id1, err,
	    sizeof(err)), SH_ENOTFOUND);
	assert_string_equal(err, "folder \"docs\": no device \"P56IOI7\" "
	    "(add it first)");
	assert_round_trip(c);

	assert_int_equal(config_folder_remove(c, "docs"), 0);
	assert_int_equal(config_folder_remove(c, "docs"), SH_ENOTFOUND);
	assert_int_equal(c->folder_count, 0);
	assert_round_trip(c);
	config_free(c);
}

static void
test_config_format_refuses(void **state)
{
	struct config	*c;
	char		*big;

	(void)state;
	assert_true(config_text_valid("tab\there, \"quotes\" \\ fine"));
	assert_false(config_text_valid("new\nline"));
	assert_false(config_text_valid(NULL));

	/* A name the format cannot carry is refused, not written broken. */
	c = config_new();
	free(c->name);
	c->name = xstrdup("two\nlines");
	assert_null(config_format(c));
	assert_int_equal(config_save(c, "/nonexistent/dir/config"),
	    SH_ECONFIG);

	/* So is one that would make a line longer than the parser takes. */
	big = xmalloc(CONFIG_MAX_LINE + 1);
	memset(big, 'x', CONFIG_MAX_LINE);
	big[CONFIG_MAX_LINE] = '\0';
	free(c->name);
	c->name = big;
	assert_false(config_text_valid(big));
	assert_null(config_format(c));
	big[CONFIG_MAX_VALUE + 1] = '\0';
	assert_null(config_format(c));
	big[CONFIG_MAX_VALUE] = '\0';
	assert_true(config_text_valid(big));
	assert_round_trip(c);
	config_free(c);
}

static void
test_config_save_load(void **state)
{
	char		 dir[] = "/tmp/shoal-test-config-XXXXXX";
	char		 err[CONFIG_ERR_SIZE];
	char		*path, *t1, *t2;
	struct config	*c, *c2 = NULL;
	struct stat	 st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = util_path_join(dir, CONFIG_FILE);
	c = parse_ok(full_text);
	assert_int_equal(config_save(c, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(config_load(path, &c2, err, sizeof(err)), 0);
	t1 = config_format(c);
	t2 = config_format(c2);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
	config_free(c2);
	c2 = NULL;

	/* Errors name the file as given. */
	assert_int_equal(util_write_file_atomic(path, "[bad]\n", 6, 0600), 0);
	assert_int_equal(config_load(path, &c2, err, sizeof(err)),
	    SH_ECONFIG);
	assert_null(c2);
	assert_non_null(strstr(err, "/config:1: unknown section \"[bad]\""));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(config_load(path, &c2, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/config: No such file or directory"));

	config_free(c);
	free(path);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_round_trip),
		cmocka_unit_test(test_config_quoting),
		cmocka_unit_test(test_config_parse_errors),
		cmocka_unit_test(test_config_limits),
		cmocka_unit_test(test_config_address_validate),
		cmocka_unit_test(test_config_names),
		cmocka_unit_test(test_config_space),
		cmocka_unit_test(test_config_operations),
		cmocka_unit_test(test_config_format_refuses),
		cmocka_unit_test(test_config_save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

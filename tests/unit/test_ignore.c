/* SPDX-License-Identifier: MIT */
/*
 * Tests for .stignore handling (bep-brief §13): a table of (patterns, path,
 * expected) covering each expansion form, glob syntax, prefixes and
 * first-match order; error lines; #include; internal names;
 * ignore_must_descend; the digest; and a pattern that would take
 * exponential time in a backtracking matcher.
 */
#include <errno.h>
#include <stdbool.h>
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

#include "shoal/ignore.h"
#include "shoal/util.h"

#define Y	IGNORE_YES
#define N	IGNORE_NO
#define D	IGNORE_YES_DELETABLE

struct match_case {
	const char		*patterns;
	const char		*path;
	enum ignore_result	 want;
};

static const struct match_case match_cases[] = {
	/* Rooted "/p": p and all below it, at the root only. */
	{ "/foo", "foo", Y },
	{ "/foo", "foo/bar", Y },
	{ "/foo", "foo/bar/baz", Y },
	{ "/foo", "a/foo", N },
	{ "/foo", "foobar", N },
	{ "/a/b", "a/b", Y },
	{ "/a/b", "x/a/b", N },
	/* Rooted with a trailing slash: contents only. */
	{ "/foo/", "foo", N },
	{ "/foo/", "foo/x", Y },
	{ "/foo/", "a/foo/x", N },
	/* Trailing slash "p/": what is below any p, not p itself. */
	{ "foo/", "foo", N },
	{ "foo/", "foo/x", Y },
	{ "foo/", "a/b/foo/x/y", Y },
	{ "foo/", "a/foo", N },
	/* The "p/" + "**" form: below p, anywhere. */
	{ "foo/**", "foo", N },
	{ "foo/**", "foo/x", Y },
	{ "foo/**", "a/foo/x/y", Y },
	{ "foo/**", "a/foox/y", N },
	/* "**" + "/p" form: p anywhere, and below it. */
	{ "**/foo", "foo", Y },
	{ "**/foo", "a/b/foo", Y },
	{ "**/foo", "a/foo/x", Y },
	{ "**/foo", "foo/x", Y },
	{ "**/foo", "afoo", N },
	/* Plain "p": p anywhere, and below it. */
	{ "foo", "foo", Y },
	{ "foo", "a/foo", Y },
	{ "foo", "foo/x", Y },
	{ "foo", "a/foo/x", Y },
	{ "foo", "foox", N },
	{ "foo", "xfoo", N },
	{ "foo", "a/xfoo/b", N },
	{ "a/b", "a/b", Y },
	{ "a/b", "x/a/b/c", Y },
	{ "a/b", "a", N },
	/* * and ? do not cross '/'; ** does. */
	{ "*.txt", "a.txt", Y },
	{ "*.txt", "d/e/a.txt", Y },
	{ "*.txt", "a.txt.bak", N },
	{ "*.txt", ".txt", Y },
	{ "/*.txt", "d/a.txt", N },
	{ "/a*b", "a/b", N },
	{ "/a*b", "axyzb", Y },
	{ "/a**b", "a/x/b", Y },
	{ "/a/**/b", "a/x/y/b", Y },
	{ "/a/**/b", "a/x/y/c", N },
	{ "/a/**", "a", N },
	{ "/a/**", "a/b/c", Y },
	{ "/?", "a", Y },
	{ "/?", "ab", N },
	{ "/?", "\xc3\xa9", Y },		/* one UTF-8 character */
	{ "/??", "\xc3\xa9", N },
	{ "/*??", "\xe2\x82\xac", N },	/* no half characters */
	{ "/a?b", "a/b", N },
	/* Classes. */
	{ "/[a-c]x", "bx", Y },
	{ "/[a-c]x", "dx", N },
	{ "/[!a-c]x", "dx", Y },
	{ "/[!a-c]x", "ax", N },
	{ "/[!a-c]", "/", N },
	{ "/a[!x]b", "a/b", N },
	{ "/[abc-]", "-", Y },
	{ "/[\\]]", "]", Y },
	{ "/[\xc3\xa9]", "\xc3\xa9", Y },
	{ "/[\xc3\xa0-\xc3\xbf]", "\xc3\xa9", Y },
	/* Alternatives, nested. */
	{ "/{a,b}.c", "a.c", Y },
	{ "/{a,b}.c", "b.c", Y },
	{ "/{a,b}.c", "c.c", N },
	{ "/x{a,{b,c}d}y", "xay", Y },
	{ "/x{a,{b,c}d}y", "xcdy", Y },
	{ "/x{a,{b,c}d}y", "xby", N },
	{ "/x{,a}y", "xy", Y },
	{ "/x{,a}y", "xay", Y },
	{ "/{*.c,d/*}", "d/e", Y },
	{ "/{*.c,d/*}", "d/e.c", Y },
	{ "/{*.c,d/*}", "e/e", N },
	{ "a,b", "a,b", Y },
	{ "/a}b", "a}b", Y },
	/* Escapes. */
	{ "/\\*", "*", Y },
	{ "/\\*", "a", N },
	{ "/\\?x", "?x", Y },
	{ "/\\?x", "ax", N },
	{ "/a\\[b]", "a[b]", Y },
	{ "/a\\{b,c}", "a{b,c}", Y },
	{ "/a\\\\b", "a\\b", Y },
	/* First match decides; negation. */
	{ "!a.txt\n*.txt", "a.txt", N },
	{ "!a.txt\n*.txt", "b.txt", Y },
	{ "*.txt\n!a.txt", "a.txt", Y },
	{ "!/keep\n*", "keep", N },
	{ "!/keep\n*", "keep/x", N },
	{ "!/keep\n*", "other", Y },
	{ "!!a\n*", "!a", N },		/* second '!' is a literal */
	{ "!!a\n*", "a", Y },
	/* (?i) and (?d), in any order. */
	{ "/ABC", "abc", N },
	{ "(?i)/ABC", "abc", Y },
	{ "(?i)/abc", "AbC", Y },
	{ "(?i)/[A-C]x", "bX", Y },
	{ "!(?i)/FOO\n*", "foo", N },
	{ "(?i)!/FOO\n*", "Foo", N },
	{ "(?d)*.bak", "a/x.bak", D },
	{ "(?i)(?d)*.BAK", "x.bak", D },
	{ "(?d)!(?i)/X\n*", "x", N },
	/* A prefix only counts at the start; elsewhere it is glob text. */
	{ "/(?i)x", "x", N },
	{ "/(?i)x", "(ai)x", Y },
	/* Comments, blanks, trimming, duplicates. */
	{ "// comment\n\n   /foo   \n", "foo", Y },
	{ "//foo", "foo", N },
	{ "#foo", "#foo", Y },
	{ "foo\nfoo\n!foo", "foo", Y },
	{ "\tfoo\t\r\n", "foo", Y },
	/* Internal names are always ignored, at the root only. */
	{ "", ".stfolder", Y },
	{ "!*", ".stfolder", Y },
	{ "!.stignore", ".stignore", Y },
	{ "", ".stversions/a/b~20240101-000000.txt", Y },
	{ "", "a/.stfolder", N },
	{ "", ".stfolderx", N },
	{ "", ".syncthing.a.txt.tmp", Y },
	{ "!**", "dir/.syncthing.a.txt.tmp", Y },
	{ "", "dir/.shoal.x.tmp", Y },
	{ "", ".shoal.tmp", N },
	{ "", "dir/.syncthing.x.tmp/y", Y },
	{ "", "dir/~syncthing~x.tmp", Y },	/* record_name_internal() */
	{ "", "plain", N },
};

static struct ignore *
parse_ok(const char *text)
{
	struct ignore	*ig = NULL;
	char		 err[IGNORE_ERR_SIZE];
	int		 rc;

	rc = ignore_parse(text, strlen(text), "test", NULL, &ig, err,
	    sizeof(err));
	if (rc != 0)
		fail_msg("parse of \"%s\" failed: %s", text, err);
	return ig;
}

static void
test_ignore_match_table(void **state)
{
	struct ignore	*ig;
	size_t		 i;
	enum ignore_result r;

	(void)state;
	for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		ig = parse_ok(match_cases[i].patterns);
		r = ignore_match(ig, match_cases[i].path);
		if (r != match_cases[i].want)
			fail_msg("case %zu: patterns \"%s\" path \"%s\": got "
			    "%d, want %d", i, match_cases[i].patterns,
			    match_cases[i].path, (int)r,
			    (int)match_cases[i].want);
		ignore_free(ig);
	}
	/* NULL and empty sets ignore only internal names. */
	assert_int_equal(ignore_match(NULL, "a"), IGNORE_NO);
	assert_int_equal(ignore_match(NULL, ".stfolder"), IGNORE_YES);
}

struct err_case {
	const char	*text;
	const char	*err;
};

static const struct err_case err_cases[] = {
	{ "!", "test:1: pattern \"!\" is empty after its prefixes" },
	{ "a\n\n(?i)(?d)", "test:3: pattern \"(?i)(?d)\" is empty after its "
	    "prefixes" },
	{ "!(?d)(?i)", "test:1: pattern \"!(?d)(?i)\" is empty after its "
	    "prefixes" },
	{ "ok\n[abc", "test:2: pattern \"[abc\": unterminated character "
	    "class" },
	{ "[]", "test:1: pattern \"[]\": empty character class" },
	{ "[!]", "test:1: pattern \"[!]\": empty character class" },
	{ "[z-a]", "test:1: pattern \"[z-a]\": character range out of "
	    "order" },
	{ "{a,b", "test:1: pattern \"{a,b\": unterminated {alternatives}" },
	{ "a{b,{c}", "test:1: pattern \"a{b,{c}\": unterminated "
	    "{alternatives}" },
	{ "a\\", "test:1: pattern \"a\\\\\": trailing backslash" },
	{ "#include other", "test:1: #include \"other\": includes need a "
	    "folder directory" },
	{ "#include", "test:1: #include without a file name" },
	{ "{{{{{{{{{{{{{{{{{a}}}}}}}}}}}}}}}}}", "test:1: pattern "
	    "\"{{{{{{{{{{{{{{{{{a}}}}}}}}}}}}}}}}}\": alternatives nested too "
	    "deeply" },
	{ "a\nb\x01\0c\n", "test:2: NUL byte in line" },
};

static void
test_ignore_parse_errors(void **state)
{
	struct ignore	*ig;
	char		 err[IGNORE_ERR_SIZE];
	char		*big;
	size_t		 i, len, n;
	int		 rc;

	(void)state;
	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		ig = NULL;
		len = strlen(err_cases[i].text);
		if (strstr(err_cases[i].err, "NUL") != NULL)
			len = 7;
		rc = ignore_parse(err_cases[i].text, len, "test", NULL, &ig,
		    err, sizeof(err));
		if (rc != SH_EPARSE)
			fail_msg("case %zu: rc %d", i, rc);
		assert_null(ig);
		if (strcmp(err, err_cases[i].err) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err,
			    err_cases[i].err);
	}

	/* Pattern length cap. */
	n = IGNORE_MAX_PATTERN_LEN + 1;
	big = xmalloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	assert_int_equal(ignore_parse(big, n, "test", NULL, &ig, err,
	    sizeof(err)), SH_EPARSE);
	assert_string_equal(err, "test:1: line longer than 4096 bytes");
	ig = parse_ok(big + 1);
	ignore_free(ig);
	free(big);

	/* Pattern count cap: IGNORE_MAX_PATTERNS distinct lines pass. */
	big = xmalloc((IGNORE_MAX_PATTERNS + 1) * 8 + 1);
	for (i = 0, n = 0; i < IGNORE_MAX_PATTERNS; i++)
		n += (size_t)snprintf(big + n, 9, "p%06zu\n", i);
	ig = parse_ok(big);
	assert_int_equal(ignore_pattern_count(ig), IGNORE_MAX_PATTERNS);
	ignore_free(ig);
	n += (size_t)snprintf(big + n, 9, "p%06zu\n", i);
	assert_int_equal(ignore_parse(big, n, "test", NULL, &ig, err,
	    sizeof(err)), SH_EPARSE);
	assert_string_equal(err, "test:10001: more than 10000 patterns");
	free(big);

	/* File size cap. */
	n = IGNORE_MAX_FILE_SIZE + 1;
	big = xmalloc(n);
	memset(big, '\n', n);
	assert_int_equal(ignore_parse(big, n, "test", NULL, &ig, err,
	    sizeof(err)), SH_EPARSE);
	assert_string_equal(err, "test: larger than 1048576 bytes");
	free(big);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char	*path = util_path_join(dir, name);

	assert_int_equal(util_write_file_atomic(path, text, strlen(text),
	    0644), 0);
	free(path);
}

static void
remove_tree(const char *dir)
{
	char	*cmd = xasprintf("rm -rf '%s'", dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
test_ignore_includes(void **state)
{
	char		 tmp[] = "/tmp/shoal-test-ignore-XXXXXX";
	char		 err[IGNORE_ERR_SIZE];
	char		*root, *inc, *path, *want, *name, *text;
	struct ignore	*ig = NULL;
	int		 i;

	(void)state;
	assert_non_null(mkdtemp(tmp));
	root = util_path_join(tmp, "folder");
	inc = util_path_join(root, "inc");
	assert_int_equal(util_mkdir_p(inc, 0755), 0);

	/* No .stignore: an empty set. */
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), 0);
	assert_int_equal(ignore_pattern_count(ig), 0);
	ignore_free(ig);

	/* Good: nested, relative to the including file; duplicates
	 * across files are skipped. */
	write_file(root, ".stignore", "foo\n#include inc/more.txt\n*.log\n");
	write_file(inc, "more.txt", "foo\n#include deeper.txt\n!/keep.log\n");
	write_file(inc, "deeper.txt", "bar\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), 0);
	assert_int_equal(ignore_pattern_count(ig), 4);
	assert_int_equal(ignore_match(ig, "x/foo"), IGNORE_YES);
	assert_int_equal(ignore_match(ig, "bar"), IGNORE_YES);
	assert_int_equal(ignore_match(ig, "a.log"), IGNORE_YES);
	assert_int_equal(ignore_match(ig, "keep.log"), IGNORE_NO);
	assert_int_equal(ignore_match(ig, "baz"), IGNORE_NO);
	ignore_free(ig);
	ig = NULL;

	/* Missing file. */
	write_file(root, ".stignore", "a\n#include nope.txt\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_null(ig);
	want = xasprintf("%s/.stignore:2: #include \"nope.txt\": file not "
	    "found", root);
	assert_string_equal(err, want);
	free(want);

	/* The same file twice, by two spellings, or itself. */
	write_file(root, ".stignore", "#include inc/deeper.txt\n"
	    "#include ./inc/../inc/deeper.txt\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	want = xasprintf("%s/.stignore:2: #include "
	    "\"./inc/../inc/deeper.txt\": file included twice", root);
	assert_string_equal(err, want);
	free(want);
	write_file(root, ".stignore", "#include .stignore\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, ":1: #include \".stignore\": file "
	    "included twice"));

	/* Escaping the root, by name or by symlink. */
	write_file(tmp, "outside.txt", "x\n");
	write_file(root, ".stignore", "#include ../outside.txt\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, ".stignore:1: #include "
	    "\"../outside.txt\": outside the folder"));
	path = util_path_join(root, "link.txt");
	assert_int_equal(symlink("../outside.txt", path), 0);
	free(path);
	write_file(root, ".stignore", "#include link.txt\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, ":1: #include \"link.txt\": outside the "
	    "folder"));

	/* Errors inside an included file name that file and line. */
	write_file(inc, "bad.txt", "ok\n\n[x\n");
	write_file(root, ".stignore", "#include inc/bad.txt\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, "/inc/bad.txt:3: pattern \"[x\": "
	    "unterminated character class"));

	/* Depth cap: a chain of IGNORE_MAX_INCLUDE_DEPTH + 1 files. */
	for (i = 0; i <= IGNORE_MAX_INCLUDE_DEPTH; i++) {
		name = xasprintf("c%d", i);
		text = xasprintf("#include c%d\np%d\n", i + 1, i);
		write_file(inc, name, text);
		free(name);
		free(text);
	}
	write_file(root, ".stignore", "#include inc/c0\n");
	assert_int_equal(ignore_load(root, &ig, err, sizeof(err)), SH_EPARSE);
	assert_non_null(strstr(err, "inc/c15:1: #include \"c16\": includes "
	    "nested deeper than 16"));

	/* Breadth cap: IGNORE_MAX_INCLUDES files in all (.stignore counts). */
	{
		struct util_buf b;

		util_buf_init(&b, 1 << 20);
		for (i = 0; i < IGNORE_MAX_INCLUDES; i++) {
			name = xasprintf("w%d", i);
			write_file(inc, name, "");
			free(name);
			assert_int_equal(util_buf_printf(&b,
			    "#include inc/w%d\n", i), 0);
		}
		write_file(root, ".stignore", b.data);
		assert_int_equal(ignore_load(root, &ig, err, sizeof(err)),
		    SH_EPARSE);
		assert_non_null(strstr(err, ".stignore:256: #include "
		    "\"inc/w255\": more than 256 included files"));
		util_buf_free(&b);
	}

	/* ignore_parse with a base_dir reads includes too. */
	assert_int_equal(ignore_parse("#include inc/deeper.txt\n", 24, "buf",
	    root, &ig, err, sizeof(err)), 0);
	assert_int_equal(ignore_match(ig, "bar"), IGNORE_YES);
	ignore_free(ig);

	free(inc);
	free(root);
	remove_tree(tmp);
}

static void
test_ignore_must_descend(void **state)
{
	struct ignore	*ig;

	(void)state;
	/* A negation before the ignoring pattern can reach below it. */
	ig = parse_ok("!keep.txt\nbuild\n");
	assert_int_equal(ignore_match(ig, "build"), IGNORE_YES);
	assert_int_equal(ignore_match(ig, "build/keep.txt"), IGNORE_NO);
	assert_true(ignore_must_descend(ig, "build"));
	ignore_free(ig);

	/* After it, the directory pattern decides everything below. */
	ig = parse_ok("build\n!keep.txt\n");
	assert_int_equal(ignore_match(ig, "build/keep.txt"), IGNORE_YES);
	assert_false(ignore_must_descend(ig, "build"));
	ignore_free(ig);

	/* Rooted negations only reach their own directory. */
	ig = parse_ok("!/build/keep\n/build\n/other\n");
	assert_true(ignore_must_descend(ig, "build"));
	assert_false(ignore_must_descend(ig, "other"));
	assert_false(ignore_must_descend(ig, "buildx"));
	ignore_free(ig);

	ig = parse_ok("!(?i)/BUILD/keep\n*\n");
	assert_true(ignore_must_descend(ig, "build"));
	assert_true(ignore_must_descend(ig, "Build"));
	ignore_free(ig);

	ig = parse_ok("!/a/{x,y}/keep\n*\n");
	assert_true(ignore_must_descend(ig, "a"));
	assert_true(ignore_must_descend(ig, "a/y"));
	assert_false(ignore_must_descend(ig, "a/z"));
	ignore_free(ig);

	/* No negations: nothing to find below. */
	ig = parse_ok("build\n*.o\n");
	assert_false(ignore_must_descend(ig, "build"));
	ignore_free(ig);
	assert_false(ignore_must_descend(NULL, "x"));
}

static void
test_ignore_digest(void **state)
{
	static const unsigned char empty[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
		0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
		0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	struct ignore	*a, *b, *c, *e;
	unsigned char	 da[32], db[32], dc[32], de[32];

	(void)state;
	e = ignore_new();
	ignore_digest(e, de);
	assert_memory_equal(de, empty, 32);
	ignore_free(e);
	e = parse_ok("// only a comment\n\n");
	ignore_digest(e, de);
	assert_memory_equal(de, empty, 32);

	/* Comments, blanks, spacing and duplicates do not change it. */
	a = parse_ok("foo\n!bar\n");
	b = parse_ok("// x\n  foo \n\nfoo\n!bar\n");
	c = parse_ok("!bar\nfoo\n");
	ignore_digest(a, da);
	ignore_digest(b, db);
	ignore_digest(c, dc);
	assert_memory_equal(da, db, 32);
	assert_memory_not_equal(da, dc, 32);
	assert_memory_not_equal(da, de, 32);
	ignore_free(a);
	ignore_free(b);
	ignore_free(c);
	ignore_free(e);
}

/*
 * A slow, obviously correct reference: recursive backtracking over the
 * glob text (ASCII only). Used on short random inputs to check the
 * compiled matcher, alternatives included.
 */
static bool	ref_match(const char *p, const char *s);

/* End of the class starting at p (just after '['), past its ']'. */
static const char *
ref_class_end(const char *p)
{
	if (*p == '!')
		p++;
	while (*p != ']') {
		if (*p == '\\')
			p++;
		p++;
	}
	return p + 1;
}

static bool
ref_class_has(const char *p, char c)
{
	bool	neg = false, in = false;
	char	lo, hi;

	if (*p == '!') {
		neg = true;
		p++;
	}
	while (*p != ']') {
		if (*p == '\\')
			p++;
		lo = hi = *p++;
		if (p[0] == '-' && p[1] != ']') {
			p++;
			if (*p == '\\')
				p++;
			hi = *p++;
		}
		if (c >= lo && c <= hi)
			in = true;
	}
	return in != neg;
}

static bool
ref_alt(const char *p, const char *s)
{
	const char	*alt = p, *q = p, *end;
	char		 buf[512];
	int		 depth = 0;
	bool		 r = false;

	/* Find the matching '}' first. */
	for (end = p; ; end++) {
		if (*end == '\\')
			end++;
		else if (*end == '[')
			end = ref_class_end(end + 1) - 1;
		else if (*end == '{')
			depth++;
		else if (*end == '}' && depth-- == 0)
			break;
	}
	depth = 0;
	for (q = p; q <= end; q++) {
		if (*q == '\\') {
			q++;
			continue;
		}
		if (*q == '[') {
			q = ref_class_end(q + 1) - 1;
			continue;
		}
		if (*q == '{')
			depth++;
		else if (*q == '}' && depth > 0)
			depth--;
		else if ((*q == ',' && depth == 0) || q == end) {
			snprintf(buf, sizeof(buf), "%.*s%s", (int)(q - alt),
			    alt, end + 1);
			if (ref_match(buf, s))
				r = true;
			alt = q + 1;
		}
	}
	return r;
}

static bool
ref_match(const char *p, const char *s)
{
	size_t	i;

	switch (*p) {
	case '\0':
		return *s == '\0';
	case '*':
		if (p[1] == '*') {
			while (*p == '*')
				p++;
			for (i = 0; ; i++) {
				if (ref_match(p, s + i))
					return true;
				if (s[i] == '\0')
					return false;
			}
		}
		for (i = 0; ; i++) {
			if (ref_match(p + 1, s + i))
				return true;
			if (s[i] == '\0' || s[i] == '/')
				return false;
		}
	case '?':
		return *s != '\0' && *s != '/' && ref_match(p + 1, s + 1);
	case '[':
		return *s != '\0' && *s != '/' && ref_class_has(p + 1, *s) &&
		    ref_match(ref_class_end(p + 1), s + 1);
	case '{':
		return ref_alt(p + 1, s);
	case '\\':
		return *s == p[1] && ref_match(p + 2, s + 1);
	default:
		return *s == *p && ref_match(p + 1, s + 1);
	}
}

static void
test_ignore_matches_reference(void **state)
{
	static const char *const atoms[] = {
		"a", "b", "/", "*", "**", "?", "[ab]", "[!a]", "[a-b]",
		"{a,b}", "{a*,/b}", "{,a{b,/}}", "\\*", "\\{",
	};
	static const char pchars[] = "ab/*{";
	char		 glob[128], pat[136], path[16];
	struct ignore	*ig;
	unsigned	 seed = 12345;
	size_t		 i, k, n, len;
	bool		 want, got;

	(void)state;
	for (i = 0; i < 20000; i++) {
		seed = seed * 1103515245 + 12345;
		n = 1 + seed / 65536 % 6;
		for (k = 0, len = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			len += (size_t)snprintf(glob + len, sizeof(glob) - len,
			    "%s", atoms[seed / 65536 % (sizeof(atoms) /
			    sizeof(atoms[0]))]);
		}
		seed = seed * 1103515245 + 12345;
		len = seed / 65536 % 8;
		for (k = 0; k < len; k++) {
			seed = seed * 1103515245 + 12345;
			path[k] = pchars[seed / 65536 % (sizeof(pchars) - 1)];
		}
		path[len] = '\0';
		if (len == 0 || path[0] == '/' || path[len - 1] == '/' ||
		    strstr(path, "//") != NULL || glob[0] == '/' ||
		    glob[strlen(glob) - 1] == '/' || strncmp(glob, "**/", 3) == 0)
			continue;
		/* A rooted "/g" covers g and everything below a match. */
		snprintf(pat, sizeof(pat), "/%s", glob);
		ig = parse_ok(pat);
		snprintf(pat, sizeof(pat), "%s/**", glob);
		want = ref_match(glob, path) || ref_match(pat, path);
		got = ignore_match(ig, path) == IGNORE_YES;
		if (want != got)
			fail_msg("glob \"%s\" path \"%s\": got %d, want %d",
			    glob, path, got, want);
		ignore_free(ig);
	}
}

static void
test_ignore_pathological_speed(void **state)
{
	static const char *const pats[] = {
		"*a*a*a*a*a*a*a*a*a*a*b",
		"**a**a**a**a**a**a**a**a**b",
		"{*a,a*}{*a,a*}{*a,a*}{*a,a*}{*a,a*}{*a,a*}b",
		"?*?*?*?*?*?*?*?*?*?*b",
	};
	struct ignore	*ig;
	struct timespec	 t0, t1;
	char		*path;
	size_t		 i, n = 20000;
	double		 secs;

	(void)state;
	path = xmalloc(n + 1);
	memset(path, 'a', n);
	path[n] = '\0';
	/* A few slashes so that both * and ** have work to do. */
	path[n / 3] = '/';
	path[2 * n / 3] = '/';
	for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		ig = parse_ok(pats[i]);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(ignore_match(ig, path), IGNORE_NO);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		/* Linear in the path: milliseconds; backtracking: years. */
		if (secs > 2.0)
			fail_msg("pattern \"%s\" took %.2f s", pats[i], secs);
		ignore_free(ig);
	}
	/* And the same patterns still match when they should. */
	path[n - 1] = 'b';
	ig = parse_ok(pats[0]);
	assert_int_equal(ignore_match(ig, path), IGNORE_YES);
	ignore_free(ig);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ignore_match_table),
		cmocka_unit_test(test_ignore_parse_errors),
		cmocka_unit_test(test_ignore_includes),
		cmocka_unit_test(test_ignore_must_descend),
		cmocka_unit_test(test_ignore_digest),
		cmocka_unit_test(test_ignore_matches_reference),
		cmocka_unit_test(test_ignore_pathological_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

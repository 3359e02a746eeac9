/* SPDX-License-Identifier: MIT */
/*
 * .stignore patterns (bep-brief §13). A file is read line by line; each
 * pattern line is expanded into up to four globs by the table of §13.5 and
 * each glob is compiled into a small token list. The scanner asks
 * ignore_match() about every path it meets and ignore_must_descend() about
 * ignored directories; the first pattern with a matching glob decides.
 *
 * NOTES ON THE MATCHER
 *
 * (1) Globs are compiled, never interpreted from text at match time. Tokens
 *     are: a literal byte, `?`, `*`, `**`, a character class and a set of
 *     alternatives (each itself a token list, so `{a,{b,c}*}` nests).
 * (2) Matching is a set simulation, not backtracking: for each token we
 *     keep the set of path offsets at which the token list so far can end,
 *     so the cost is O(tokens x path length) whatever the pattern. A
 *     backtracking matcher takes exponential time on `*a*a*a*a*b` against
 *     a long run of `a`s; this one does not (the test suite times it).
 * (3) `*`, `?` and classes never match '/'; `**` matches anything. `?` and
 *     classes match one UTF-8 character, not one byte, as gobwas/glob does;
 *     (?i) folds ASCII letters only.
 * (4) Internal names (.stfolder, .stignore, .stversions at the root and
 *     below them, temporary names anywhere; record_name_internal() decides)
 *     are ignored before any pattern is looked at, so no pattern can
 *     un-ignore them.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "shoal/ignore.h"
#include "shoal/log.h"
#include "shoal/record.h"
#include "shoal/util.h"

/* Alternatives nested deeper than this are refused (bounds recursion). */
#define IGNORE_MAX_NESTING	16

enum tok_kind {
	TOK_LIT,	/* one byte */
	TOK_ANY,	/* ? */
	TOK_STAR,	/* * */
	TOK_DSTAR,	/* ** */
	TOK_CLASS,	/* [...] */
	TOK_ALT		/* {a,b} */
};

struct range {
	uint32_t	lo;
	uint32_t	hi;
};

struct seq;

struct tok {
	enum tok_kind	 kind;
	unsigned char	 ch;		/* TOK_LIT */
	bool		 negated;	/* TOK_CLASS: [!...] */
	struct range	*ranges;	/* TOK_CLASS: owned */
	size_t		 range_count;
	struct seq	*alts;		/* TOK_ALT: owned array */
	size_t		 alt_count;
};

struct seq {
	struct tok	*toks;		/* owned */
	size_t		 count;
	/* Quick-reject data, top-level globs only (see glob_prepare()). */
	size_t		 min_len;	/* no shorter subject can match */
	size_t		 lit_prefix;	/* leading TOK_LIT tokens */
	size_t		 lit_suffix;	/* trailing TOK_LIT tokens */
	char		*req;		/* owned; a literal run that must occur */
	size_t		 req_len;
};

/* Subjects up to this long are matched in stack buffers. */
#define SMALL_SUBJECT	256

struct pattern {
	char		*line;		/* owned; the trimmed line as written */
	bool		 negate;
	bool		 icase;
	bool		 deletable;
	struct seq	 globs[4];
	size_t		 glob_count;
};

struct ignore {
	struct pattern	*pats;		/* owned array */
	size_t		 count;
	size_t		 cap;		/* allocated entries of pats */
	bool		 any_icase;
	unsigned char	 digest[32];
};

/* Set of strings for duplicate-line detection (open addressing). */
struct strset {
	char	**slots;
	size_t	  cap;		/* power of two */
	size_t	  used;
};

struct ctx {
	struct ignore	*ig;
	char		*err;
	size_t		 err_size;
	char		*root;		/* owned; realpath of base dir or NULL */
	struct strset	 seen;		/* pattern lines seen so far */
	struct strset	 included;	/* realpaths of files read */
	crypto_hash_sha256_state sha;
};

static void	errf(struct ctx *, const char *, size_t, const char *, ...)
		    SH_PRINTF(4, 5);

static void
errf(struct ctx *x, const char *file, size_t line, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (x->err == NULL || x->err_size == 0)
		return;
	if (line > 0)
		n = snprintf(x->err, x->err_size, "%s:%zu: ", file, line);
	else
		n = snprintf(x->err, x->err_size, "%s: ", file);
	if (n < 0 || (size_t)n >= x->err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->err_size - (size_t)n, fmt, ap);
	va_end(ap);
}

/* A pattern or path quoted for a message: escaped as in config.c. */
#define QV_SIZE	96
static const char *
qv(const char *s, char buf[QV_SIZE])
{
	return util_quote(s, buf, QV_SIZE);
}

/* String set */


static void
strset_free(struct strset *set)
{
	size_t	i;

	for (i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	memset(set, 0, sizeof(*set));
}

/* Insert a copy of s; false if it was already there. */
static bool
strset_add(struct strset *set, const char *s)
{
	struct strset	 bigger;
	size_t		 i;

	if (set->used * 2 >= set->cap) {
		memset(&bigger, 0, sizeof(bigger));
		bigger.cap = set->cap == 0 ? 64 : set->cap * 2;
		bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
		for (i = 0; i < set->cap; i++) {
			char *old = set->slots[i];
			size_t j;

			if (old == NULL)
				continue;
			j = util_str_hash(old) & (bigger.cap - 1);
			while (bigger.slots[j] != NULL)
				j = (j + 1) & (bigger.cap - 1);
			bigger.slots[j] = old;
		}
		bigger.used = set->used;
		free(set->slots);
		*set = bigger;
	}
	i = util_str_hash(s) & (set->cap - 1);
	while (set->slots[i] != NULL) {
		if (strcmp(set->slots[i], s) == 0)
			return false;
		i = (i + 1) & (set->cap - 1);
	}
	set->slots[i] = xstrdup(s);
	set->used++;
	return true;
}

/* UTF-8 */

/*
 * Decode one character at s (n > 0 bytes available). Invalid bytes decode
 * as themselves with length 1 so that any byte string can be matched.
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t		len, i;
	uint32_t	v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		v = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		v = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		v = s[0] & 0x07;
	} else
		goto invalid;
	if (len > n)
		goto invalid;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto invalid;
		v = (v << 6) | (s[i] & 0x3f);
	}
	*cp = v;
	return len;
invalid:
	*cp = s[0];
	return 1;
}

/* Glob compiler */

static void
seq_clear(struct seq *s)
{
	size_t	i, j;

	for (i = 0; i < s->count; i++) {
		free(s->toks[i].ranges);
		for (j = 0; j < s->toks[i].alt_count; j++)
			seq_clear(&s->toks[i].alts[j]);
		free(s->toks[i].alts);
	}
	free(s->toks);
	free(s->req);
	memset(s, 0, sizeof(*s));
}

static struct tok *
seq_push(struct seq *s, enum tok_kind kind)
{
	struct tok	*t;

	s->toks = xreallocarray(s->toks, s->count + 1, sizeof(*s->toks));
	t = &s->toks[s->count++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	return t;
}

struct lexer {
	const unsigned char	*p;
	const unsigned char	*end;
	const char		*why;	/* static reason on error */
};

/* One (possibly escaped) class member; false at the end of input. */
static bool
class_char(struct lexer *lx, uint32_t *cp)
{
	if (lx->p < lx->end && *lx->p == '\\')
		lx->p++;
	if (lx->p >= lx->end)
		return false;
	lx->p += utf8_decode(lx->p, (size_t)(lx->end - lx->p), cp);
	return true;
}

/* After '[': members up to ']'. */
static int
parse_class(struct lexer *lx, struct tok *t)
{
	uint32_t	lo, hi;

	if (lx->p < lx->end && *lx->p == '!') {
		t->negated = true;
		lx->p++;
	}
	for (;;) {
		if (lx->p >= lx->end) {
			lx->why = "unterminated character class";
			return SH_EPARSE;
		}
		if (*lx->p == ']') {
			lx->p++;
			break;
		}
		if (!class_char(lx, &lo)) {
			lx->why = "unterminated character class";
			return SH_EPARSE;
		}
		hi = lo;
		if (lx->end - lx->p >= 2 && lx->p[0] == '-' &&
		    lx->p[1] != ']') {
			lx->p++;
			if (!class_char(lx, &hi)) {
				lx->why = "unterminated character class";
				return SH_EPARSE;
			}
			if (hi < lo) {
				lx->why = "character range out of order";
				return SH_EPARSE;
			}
		}
		t->ranges = xreallocarray(t->ranges, t->range_count + 1,
		    sizeof(*t->ranges));
		t->ranges[t->range_count].lo = lo;
		t->ranges[t->range_count].hi = hi;
		t->range_count++;
	}
	if (t->range_count == 0) {
		lx->why = "empty character class";
		return SH_EPARSE;
	}
	return 0;
}

/*
 * Parse tokens until the end, or, inside alternatives (depth > 0), until
 * an unescaped ',' or '}' (left for the caller).
 */
static int
parse_seq(struct lexer *lx, int depth, struct seq *out)
{
	struct tok	*t;
	struct seq	 alt;
	unsigned char	 ch;
	int		 rc;

	while (lx->p < lx->end) {
		ch = *lx->p;
		if (depth > 0 && (ch == ',' || ch == '}'))
			break;
		lx->p++;
		switch (ch) {
		case '*':
			if (lx->p < lx->end && *lx->p == '*') {
				/* "***" is no different from "**". */
				while (lx->p < lx->end && *lx->p == '*')
					lx->p++;
				seq_push(out, TOK_DSTAR);
			} else
				seq_push(out, TOK_STAR);
			break;
		case '?':
			seq_push(out, TOK_ANY);
			break;
		case '[':
			t = seq_push(out, TOK_CLASS);
			rc = parse_class(lx, t);
			if (rc != 0)
				return rc;
			break;
		case '{':
			if (depth >= IGNORE_MAX_NESTING) {
				lx->why = "alternatives nested too deeply";
				return SH_EPARSE;
			}
			t = seq_push(out, TOK_ALT);
			for (;;) {
				memset(&alt, 0, sizeof(alt));
				rc = parse_seq(lx, depth + 1, &alt);
				t = &out->toks[out->count - 1];
				t->alts = xreallocarray(t->alts,
				    t->alt_count + 1, sizeof(*t->alts));
				t->alts[t->alt_count++] = alt;
				if (rc != 0)
					return rc;
				if (lx->p >= lx->end) {
					lx->why = "unterminated {alternatives}";
					return SH_EPARSE;
				}
				if (*lx->p++ == '}')
					break;
			}
			break;
		case '\\':
			if (lx->p >= lx->end) {
				lx->why = "trailing backslash";
				return SH_EPARSE;
			}
			seq_push(out, TOK_LIT)->ch = *lx->p++;
			break;
		default:
			seq_push(out, TOK_LIT)->ch = ch;
			break;
		}
	}
	return 0;
}

/*
 * Most paths fail most globs on a literal: "*.o" needs the suffix ".o",
 * "/build" the prefix "build". Record what a full match needs so that
 * glob_match() can say no without running the matcher.
 */
static void
glob_prepare(struct seq *q)
{
	size_t	i, run = 0, best = 0, best_end = 0;

	for (i = 0; i < q->count; i++) {
		switch (q->toks[i].kind) {
		case TOK_LIT:
		case TOK_ANY:
		case TOK_CLASS:
			q->min_len++;
			break;
		default:
			break;
		}
		if (q->toks[i].kind == TOK_LIT) {
			if (++run > best) {
				best = run;
				best_end = i + 1;
			}
		} else
			run = 0;
	}
	while (q->lit_prefix < q->count &&
	    q->toks[q->lit_prefix].kind == TOK_LIT)
		q->lit_prefix++;
	while (q->lit_suffix < q->count &&
	    q->toks[q->count - 1 - q->lit_suffix].kind == TOK_LIT)
		q->lit_suffix++;
	if (best > 0) {
		q->req = xmalloc(best);
		for (i = 0; i < best; i++)
			q->req[i] = (char)q->toks[best_end - best + i].ch;
		q->req_len = best;
	}
}

static int
glob_compile(const char *text, struct seq *out, const char **why)
{
	struct lexer	lx;
	int		rc;

	memset(out, 0, sizeof(*out));
	lx.p = (const unsigned char *)text;
	lx.end = lx.p + strlen(text);
	lx.why = NULL;
	rc = parse_seq(&lx, 0, out);
	if (rc != 0) {
		*why = lx.why;
		seq_clear(out);
		return rc;
	}
	glob_prepare(out);
	return 0;
}

/* Matcher (note 2) */

struct subject {
	const unsigned char	*s;
	size_t			 n;
	const uint8_t		*start;	/* start[i]: a character starts at i */
};

static bool
class_has(const struct tok *t, uint32_t cp)
{
	size_t	i;

	for (i = 0; i < t->range_count; i++)
		if (cp >= t->ranges[i].lo && cp <= t->ranges[i].hi)
			return !t->negated;
	return t->negated;
}

static bool	run_seq(const struct seq *, const struct subject *,
		    const uint8_t *, uint8_t *, bool *);

/*
 * One token: from the offsets set in `cur`, set in `nxt` (zeroed by the
 * caller) the offsets where the token can end. Returns whether any is set.
 */
static bool
step(const struct tok *t, const struct subject *sub, const uint8_t *cur,
    uint8_t *nxt, bool *alive)
{
	const unsigned char	*s = sub->s;
	uint8_t			 small[SMALL_SUBJECT];
	uint8_t			*tmp;
	uint32_t		 cp;
	size_t			 n = sub->n, p, len, i;
	bool			 carry = false;

	switch (t->kind) {
	case TOK_LIT:
		for (p = 0; p < n; p++)
			if (cur[p] && s[p] == t->ch)
				nxt[p + 1] = 1;
		break;
	case TOK_ANY:
	case TOK_CLASS:
		for (p = 0; p < n; p++) {
			if (!cur[p] || !sub->start[p] || s[p] == '/')
				continue;
			len = utf8_decode(s + p, n - p, &cp);
			if (t->kind == TOK_CLASS && !class_has(t, cp))
				continue;
			nxt[p + len] = 1;
		}
		break;
	case TOK_STAR:
		for (p = 0; p <= n; p++) {
			carry = cur[p] || (carry && s[p - 1] != '/');
			if (carry)
				nxt[p] = 1;
		}
		break;
	case TOK_DSTAR:
		for (p = 0; p <= n; p++) {
			carry = carry || cur[p];
			if (carry)
				nxt[p] = 1;
		}
		break;
	case TOK_ALT:
		tmp = n + 1 > SMALL_SUBJECT ? xmalloc(n + 1) : small;
		for (i = 0; i < t->alt_count; i++) {
			memset(tmp, 0, n + 1);
			if (!run_seq(&t->alts[i], sub, cur, tmp, alive))
				continue;
			for (p = 0; p <= n; p++)
				nxt[p] |= tmp[p];
		}
		if (tmp != small)
			free(tmp);
		break;
	}
	if (nxt[n])
		*alive = true;
	return memchr(nxt, 1, n + 1) != NULL;
}

/*
 * Run a token list from the offsets in `in`; the end offsets go to `out`
 * (zeroed by the caller). *alive is set when some prefix of the list
 * consumes the whole subject, i.e. the subject is a viable prefix.
 */
static bool
run_seq(const struct seq *q, const struct subject *sub, const uint8_t *in,
    uint8_t *out, bool *alive)
{
	uint8_t	 small_a[SMALL_SUBJECT], small_b[SMALL_SUBJECT];
	uint8_t	*a = small_a, *b = small_b, *cur, *nxt;
	size_t	 i, n1 = sub->n + 1;
	bool	 any = false;

	if (in[sub->n])
		*alive = true;
	if (q->count == 0) {
		memcpy(out, in, n1);
		return memchr(out, 1, n1) != NULL;
	}
	if (n1 > SMALL_SUBJECT) {
		a = xmalloc(n1);
		b = xmalloc(n1);
	}
	memcpy(a, in, n1);
	cur = a;
	for (i = 0; i < q->count; i++) {
		nxt = i + 1 == q->count ? out : (cur == a ? b : a);
		memset(nxt, 0, n1);
		any = step(&q->toks[i], sub, cur, nxt, alive);
		if (!any)
			break;
		cur = nxt;
	}
	if (a != small_a) {
		free(a);
		free(b);
	}
	return any;
}

/* True if the literals recorded by glob_prepare() rule a match out. */
static bool
quick_reject(const struct seq *q, const struct subject *sub)
{
	size_t	i, n = sub->n;

	if (n < q->min_len)
		return true;
	for (i = 0; i < q->lit_prefix; i++)
		if (sub->s[i] != q->toks[i].ch)
			return true;
	if (q->lit_prefix == q->count)
		return n != q->count;
	for (i = 0; i < q->lit_suffix; i++)
		if (sub->s[n - 1 - i] != q->toks[q->count - 1 - i].ch)
			return true;
	return q->req_len > 0 &&
	    memmem(sub->s, n, q->req, q->req_len) == NULL;
}

/*
 * Whole-string match, or, with prefix_only, whether some string starting
 * with the subject could match.
 */
static bool
glob_match(const struct seq *q, const struct subject *sub, bool prefix_only)
{
	uint8_t	 small_in[SMALL_SUBJECT], small_out[SMALL_SUBJECT];
	uint8_t	*in = small_in, *out = small_out;
	size_t	 n1 = sub->n + 1;
	bool	 alive = false, full;

	if (!prefix_only && quick_reject(q, sub))
		return false;
	if (n1 > SMALL_SUBJECT) {
		in = xmalloc(n1);
		out = xmalloc(n1);
	}
	memset(in, 0, n1);
	memset(out, 0, n1);
	in[0] = 1;
	(void)run_seq(q, sub, in, out, &alive);
	full = out[sub->n] != 0;
	if (in != small_in) {
		free(in);
		free(out);
	}
	return prefix_only ? (alive || full) : full;
}

/* Subject setup: optional ASCII lower-casing and character starts. */
static void
subject_init(struct subject *sub, const char *path, bool lower,
    char **copy, uint8_t **start)
{
	const unsigned char	*s;
	uint32_t		 cp;
	size_t			 n = strlen(path), p, i;

	*copy = NULL;
	if (lower) {
		*copy = xstrdup(path);
		for (i = 0; i < n; i++)
			if ((*copy)[i] >= 'A' && (*copy)[i] <= 'Z')
				(*copy)[i] += 'a' - 'A';
		path = *copy;
	}
	s = (const unsigned char *)path;
	*start = xcalloc(n + 1, 1);
	for (p = 0; p < n; p += utf8_decode(s + p, n - p, &cp))
		(*start)[p] = 1;
	(*start)[n] = 1;
	sub->s = s;
	sub->n = n;
	sub->start = *start;
}

/* Lifecycle */

struct ignore *
ignore_new(void)
{
	struct ignore	*ig;

	ig = xcalloc(1, sizeof(*ig));
	/* SHA-256 of nothing: the digest of an empty pattern set. */
	crypto_hash_sha256(ig->digest, (const unsigned char *)"", 0);
	return ig;
}

static void
pattern_clear(struct pattern *p)
{
	size_t	i;

	free(p->line);
	for (i = 0; i < p->glob_count; i++)
		seq_clear(&p->globs[i]);
}

void
ignore_free(struct ignore *ig)
{
	size_t	i;

	if (ig == NULL)
		return;
	for (i = 0; i < ig->count; i++)
		pattern_clear(&ig->pats[i]);
	free(ig->pats);
	free(ig);
}

/* Parsing */

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' ||
	    ch == '\f';
}

/* Expand a pattern by the table of bep-brief §13.5 into p->globs. */
static int
expand(struct pattern *p, const char *pat, const char **why)
{
	char	*forms[4] = { NULL, NULL, NULL, NULL };
	size_t	 n = strlen(pat), i, count = 0;
	int	 rc;

	if (pat[0] == '/') {
		/* Rooted: only the root-anchored forms. */
		const char *q = pat + 1;
		size_t qn = n - 1;

		if (qn > 0 && q[qn - 1] == '/')
			forms[count++] = xasprintf("%s**", q);
		else {
			forms[count++] = xstrdup(q);
			forms[count++] = xasprintf("%s/**", q);
		}
	} else if (strncmp(pat, "**/", 3) == 0) {
		forms[count++] = xstrdup(pat);
		forms[count++] = xstrdup(pat + 3);
		forms[count++] = xasprintf("%s/**", pat);
		forms[count++] = xasprintf("%s/**", pat + 3);
	} else if (n >= 3 && strcmp(pat + n - 3, "/**") == 0) {
		forms[count++] = xstrdup(pat);
		forms[count++] = xasprintf("**/%s", pat);
	} else if (pat[n - 1] == '/') {
		/* Trailing slash: the directory's contents only. */
		forms[count++] = xasprintf("%s**", pat);
		forms[count++] = xasprintf("**/%s**", pat);
	} else {
		forms[count++] = xstrdup(pat);
		forms[count++] = xasprintf("**/%s", pat);
		forms[count++] = xasprintf("%s/**", pat);
		forms[count++] = xasprintf("**/%s/**", pat);
	}
	for (i = 0; i < count; i++) {
		rc = glob_compile(forms[i], &p->globs[i], why);
		if (rc != 0)
			goto out;
		p->glob_count = i + 1;
	}
	rc = 0;
out:
	for (i = 0; i < count; i++)
		free(forms[i]);
	return rc;
}

static int	parse_text(struct ctx *, const char *, size_t, const char *,
		    const char *, int);

/* "#include NAME" in `file` (in directory `dir`). */
static int
do_include(struct ctx *x, const char *file, size_t line, const char *dir,
    const char *name, int depth)
{
	struct stat	 st;
	char		 qbuf[QV_SIZE];
	const char	*rel;
	char		*joined = NULL, *real = NULL, *text = NULL, *rdir = NULL;
	char		*slash;
	size_t		 len, rl;
	int		 rc;

	if (*name == '\0') {
		errf(x, file, line, "#include without a file name");
		rc = SH_EPARSE;
		goto out;
	}
	if (x->root == NULL || dir == NULL) {
		errf(x, file, line, "#include \"%s\": includes need a folder "
		    "directory", qv(name, qbuf));
		rc = SH_EPARSE;
		goto out;
	}
	if (depth >= IGNORE_MAX_INCLUDE_DEPTH) {
		errf(x, file, line, "#include \"%s\": includes nested deeper "
		    "than %d", qv(name, qbuf), IGNORE_MAX_INCLUDE_DEPTH);
		rc = SH_EPARSE;
		goto out;
	}
	/* Relative to the including file, even with a leading '/'. */
	for (rel = name; *rel == '/'; rel++)
		;
	joined = util_path_join(dir, rel);
	real = realpath(joined, NULL);
	if (real == NULL) {
		rc = -errno;
		errf(x, file, line, "#include \"%s\": %s", qv(name, qbuf),
		    rc == -ENOENT ? "file not found" : strerror(-rc));
		if (rc == -ENOENT)
			rc = SH_EPARSE;
		goto out;
	}
	/* realpath() resolved symlinks, so this also stops escapes by link. */
	rl = strlen(x->root);
	if (strncmp(real, x->root, rl) != 0 ||
	    (real[rl] != '/' && !(rl == 1 && x->root[0] == '/'))) {
		errf(x, file, line, "#include \"%s\": outside the folder",
		    qv(name, qbuf));
		rc = SH_EPARSE;
		goto out;
	}
	if (stat(real, &st) != 0) {
		rc = -errno;
		errf(x, file, line, "#include \"%s\": %s", qv(name, qbuf),
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errf(x, file, line, "#include \"%s\": not a regular file",
		    qv(name, qbuf));
		rc = SH_EPARSE;
		goto out;
	}
	if (x->included.used >= IGNORE_MAX_INCLUDES) {
		errf(x, file, line, "#include \"%s\": more than %d included "
		    "files", qv(name, qbuf), IGNORE_MAX_INCLUDES);
		rc = SH_EPARSE;
		goto out;
	}
	if (!strset_add(&x->included, real)) {
		errf(x, file, line, "#include \"%s\": file included twice",
		    qv(name, qbuf));
		rc = SH_EPARSE;
		goto out;
	}
	rc = util_read_file(real, IGNORE_MAX_FILE_SIZE, &text, &len);
	if (rc != 0) {
		errf(x, file, line, "#include \"%s\": %s", qv(name, qbuf),
		    rc == -EFBIG ? "file too large" : strerror(-rc));
		goto out;
	}
	rdir = xstrdup(real);
	slash = strrchr(rdir, '/');
	if (slash == rdir)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = parse_text(x, text, len, joined, rdir, depth + 1);
out:
	free(joined);
	free(real);
	free(text);
	free(rdir);
	return rc;
}

/* One trimmed, non-empty, non-comment line. */
static int
parse_pattern(struct ctx *x, const char *file, size_t line, const char *s)
{
	struct ignore	*ig = x->ig;
	struct pattern	 p;
	const char	*pat = s, *why = NULL;
	char		 qbuf[QV_SIZE];
	char		*lower = NULL;
	size_t		 i;
	int		 rc;

	memset(&p, 0, sizeof(p));
	/* A line seen before, here or in another file, adds nothing. */
	if (!strset_add(&x->seen, s)) {
		rc = 0;
		goto out;
	}
	if (ig->count >= IGNORE_MAX_PATTERNS) {
		errf(x, file, line, "more than %d patterns",
		    IGNORE_MAX_PATTERNS);
		rc = SH_EPARSE;
		goto out;
	}
	/* Prefixes in any order, each once; a repeat is part of the glob. */
	for (;;) {
		if (*pat == '!' && !p.negate) {
			p.negate = true;
			pat++;
		} else if (strncmp(pat, "(?i)", 4) == 0 && !p.icase) {
			p.icase = true;
			pat += 4;
		} else if (strncmp(pat, "(?d)", 4) == 0 && !p.deletable) {
			p.deletable = true;
			pat += 4;
		} else
			break;
	}
	if (*pat == '\0') {
		errf(x, file, line, "pattern \"%s\" is empty after its "
		    "prefixes", qv(s, qbuf));
		rc = SH_EPARSE;
		goto out;
	}
	if (p.icase) {
		lower = xstrdup(pat);
		for (i = 0; lower[i] != '\0'; i++)
			if (lower[i] >= 'A' && lower[i] <= 'Z')
				lower[i] += 'a' - 'A';
		pat = lower;
	}
	rc = expand(&p, pat, &why);
	if (rc != 0) {
		errf(x, file, line, "pattern \"%s\": %s", qv(s, qbuf), why);
		goto out;
	}
	p.line = xstrdup(s);
	crypto_hash_sha256_update(&x->sha, (const unsigned char *)s,
	    strlen(s));
	crypto_hash_sha256_update(&x->sha, (const unsigned char *)"\n", 1);
	if (ig->count == ig->cap) {
		ig->cap = ig->cap == 0 ? 16 : ig->cap * 2;
		ig->pats = xreallocarray(ig->pats, ig->cap, sizeof(*ig->pats));
	}
	ig->pats[ig->count++] = p;
	if (p.icase)
		ig->any_icase = true;
	memset(&p, 0, sizeof(p));
	rc = 0;
out:
	pattern_clear(&p);
	free(lower);
	return rc;
}

/*
 * Parse one file's text. `dir` is the directory includes are relative to
 * (NULL: includes refused).
 */
static int
parse_text(struct ctx *x, const char *text, size_t len, const char *file,
    const char *dir, int depth)
{
	const char	*s, *e, *nl, *end = text + len;
	char		*ln = NULL;
	size_t		 line = 0, n;
	int		 rc;

	if (len > IGNORE_MAX_FILE_SIZE) {
		errf(x, file, 0, "larger than %d bytes", IGNORE_MAX_FILE_SIZE);
		rc = SH_EPARSE;
		goto out;
	}
	for (s = text; s < end; s = nl + 1) {
		line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		if (nl == NULL)
			nl = end;
		e = nl;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			errf(x, file, line, "NUL byte in line");
			rc = SH_EPARSE;
			goto out;
		}
		while (s < e && is_space(*s))
			s++;
		while (e > s && is_space(e[-1]))
			e--;
		n = (size_t)(e - s);
		if (n == 0 || (n >= 2 && s[0] == '/' && s[1] == '/'))
			continue;
		if (n > IGNORE_MAX_PATTERN_LEN) {
			errf(x, file, line, "line longer than %d bytes",
			    IGNORE_MAX_PATTERN_LEN);
			rc = SH_EPARSE;
			goto out;
		}
		free(ln);
		ln = xstrndup(s, n);
		if (strncmp(ln, "#include", 8) == 0 &&
		    (ln[8] == '\0' || is_space(ln[8]))) {
			const char *name = ln + 8;

			while (is_space(*name))
				name++;
			rc = do_include(x, file, line, dir, name, depth);
		} else
			rc = parse_pattern(x, file, line, ln);
		if (rc != 0)
			goto out;
	}
	rc = 0;
out:
	free(ln);
	return rc;
}

static int
parse_top(const char *text, size_t len, const char *file,
    const char *base_dir, const char *self, struct ignore **out, char *err,
    size_t err_size)
{
	struct ctx	 x;
	int		 rc;

	memset(&x, 0, sizeof(x));
	x.err = err;
	x.err_size = err_size;
	x.ig = ignore_new();
	*out = NULL;
	if (err != NULL && err_size > 0)
		err[0] = '\0';
	if (file == NULL)
		file = IGNORE_FILE;
	if (sodium_init() < 0) {
		errf(&x, file, 0, "libsodium failed to initialise");
		rc = SH_ECRYPTO;
		goto out;
	}
	crypto_hash_sha256_init(&x.sha);
	if (base_dir != NULL) {
		x.root = realpath(base_dir, NULL);
		if (x.root == NULL) {
			rc = -errno;
			errf(&x, base_dir, 0, "%s", strerror(errno));
			goto out;
		}
	}
	if (self != NULL)
		(void)strset_add(&x.included, self);
	rc = parse_text(&x, text, len, file, x.root, 0);
	if (rc != 0)
		goto out;
	crypto_hash_sha256_final(&x.sha, x.ig->digest);
	*out = x.ig;
	x.ig = NULL;
	rc = 0;
out:
	ignore_free(x.ig);
	free(x.root);
	strset_free(&x.seen);
	strset_free(&x.included);
	return rc;
}

int
ignore_parse(const char *text, size_t len, const char *file,
    const char *base_dir, struct ignore **out, char *err, size_t err_size)
{
	return parse_top(text, len, file, base_dir, NULL, out, err, err_size);
}

int
ignore_load(const char *root, struct ignore **out, char *err,
    size_t err_size)
{
	char	*path = NULL, *text = NULL, *self = NULL;
	size_t	 len;
	int	 rc;

	*out = NULL;
	path = util_path_join(root, IGNORE_FILE);
	rc = util_read_file(path, IGNORE_MAX_FILE_SIZE, &text, &len);
	if (rc == -ENOENT) {
		*out = ignore_new();
		rc = 0;
		goto out;
	}
	if (rc != 0) {
		if (err != NULL && err_size > 0)
			snprintf(err, err_size, "%s: %s", path,
			    rc == -EFBIG ? "file too large" : strerror(-rc));
		goto out;
	}
	/* Including .stignore from itself counts as including it twice. */
	self = realpath(path, NULL);
	rc = parse_top(text, len, path, root, self, out, err, err_size);
out:
	free(path);
	free(text);
	free(self);
	return rc;
}

/* Queries */

enum ignore_result
ignore_match(const struct ignore *ig, const char *path)
{
	struct subject	 exact, folded;
	const struct subject *sub;
	const struct pattern *p;
	enum ignore_result res = IGNORE_NO;
	char		*lower = NULL;
	uint8_t		*start = NULL, *lstart = NULL;
	size_t		 i, j;

	if (path == NULL || *path == '\0')
		return IGNORE_NO;
	if (record_name_internal(path))
		return IGNORE_YES;
	if (ig == NULL || ig->count == 0)
		return IGNORE_NO;
	subject_init(&exact, path, false, &lower, &start);
	if (ig->any_icase)
		subject_init(&folded, path, true, &lower, &lstart);
	for (i = 0; i < ig->count; i++) {
		p = &ig->pats[i];
		sub = p->icase ? &folded : &exact;
		for (j = 0; j < p->glob_count; j++) {
			if (!glob_match(&p->globs[j], sub, false))
				continue;
			if (p->negate)
				res = IGNORE_NO;
			else if (p->deletable)
				res = IGNORE_YES_DELETABLE;
			else
				res = IGNORE_YES;
			goto out;
		}
	}
out:
	free(lower);
	free(start);
	free(lstart);
	return res;
}

/*
 * Whether glob q is X followed by "/" and "**", with X matching `dir`
 * exactly: then the pattern matches everything below dir, and no later
 * pattern is ever consulted for those paths.
 */
static bool
covers_below(const struct seq *q, const struct subject *dir)
{
	struct seq	head;

	if (q->count < 2 || q->toks[q->count - 1].kind != TOK_DSTAR ||
	    q->toks[q->count - 2].kind != TOK_LIT ||
	    q->toks[q->count - 2].ch != '/')
		return false;
	memset(&head, 0, sizeof(head));
	head.toks = q->toks;
	head.count = q->count - 2;
	return glob_match(&head, dir, false);
}

bool
ignore_must_descend(const struct ignore *ig, const char *dir)
{
	const struct pattern *p;
	struct subject	 sub, lsub, dsub, ldsub;
	char		*prefix = NULL, *lower = NULL;
	uint8_t		*start = NULL, *lstart = NULL;
	size_t		 i, j;
	bool		 r = false;

	if (ig == NULL || dir == NULL || *dir == '\0' || record_name_internal(dir))
		return false;
	/* "dir/" for prefix matches; the same bytes less the '/' for "dir". */
	prefix = xasprintf("%s/", dir);
	subject_init(&sub, prefix, false, &lower, &start);
	lsub = sub;
	if (ig->any_icase)
		subject_init(&lsub, prefix, true, &lower, &lstart);
	dsub = sub;
	dsub.n--;
	ldsub = lsub;
	ldsub.n--;
	for (i = 0; i < ig->count; i++) {
		p = &ig->pats[i];
		for (j = 0; j < p->glob_count; j++) {
			if (p->negate && glob_match(&p->globs[j],
			    p->icase ? &lsub : &sub, true)) {
				r = true;
				goto out;
			}
			if (!p->negate && covers_below(&p->globs[j],
			    p->icase ? &ldsub : &dsub))
				goto out;
		}
	}
out:
	free(prefix);
	free(lower);
	free(start);
	free(lstart);
	return r;
}

size_t
ignore_pattern_count(const struct ignore *ig)
{
	return ig != NULL ? ig->count : 0;
}

void
ignore_digest(const struct ignore *ig, unsigned char out[32])
{
	if (ig == NULL) {
		crypto_hash_sha256(out, (const unsigned char *)"", 0);
		return;
	}
	memcpy(out, ig->digest, 32);
}

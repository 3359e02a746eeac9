/* SPDX-License-Identifier: MIT */
/*
 * .stignore patterns with the full syntax of bep-brief §13: comments,
 * #include, prefixes ! (?i) (?d), rooted and trailing-slash forms, and
 * globs (* ** ? [..] {a,b} \ escapes). First match decides.
 */
#ifndef SHOAL_IGNORE_H
#define SHOAL_IGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "shoal/err.h"

#define IGNORE_FILE		".stignore"
#define IGNORE_MAX_FILE_SIZE	(1024 * 1024)
#define IGNORE_MAX_PATTERNS	10000
#define IGNORE_MAX_INCLUDE_DEPTH 16
/* Most distinct files one .stignore may pull in through #include. */
#define IGNORE_MAX_INCLUDES	256
/* Longest pattern line accepted, in bytes (after trimming). */
#define IGNORE_MAX_PATTERN_LEN	4096
#define IGNORE_ERR_SIZE		512

enum ignore_result {
	IGNORE_NO = 0,		/* not ignored (no match, or negated match) */
	IGNORE_YES,		/* ignored */
	IGNORE_YES_DELETABLE	/* ignored and may be deleted ((?d)) */
};

struct ignore;

/* Lifecycle */
/* An empty pattern set. */
struct ignore	*ignore_new(void);
void		 ignore_free(struct ignore *ig);
/*
 * Load `root`/.stignore (a missing file is an empty set). #include paths
 * are resolved relative to the including file and must stay inside root.
 * On error returns SH_EPARSE (or -errno) and writes "FILE:LINE: reason".
 */
int	ignore_load(const char *root, struct ignore **out, char *err,
	    size_t err_size) SH_MUST_CHECK;
/*
 * Parse patterns from a buffer. #include lines fail with SH_EPARSE unless
 * `base_dir` is not NULL (then they are read from disk relative to it).
 */
int	ignore_parse(const char *text, size_t len, const char *file,
	    const char *base_dir, struct ignore **out, char *err,
	    size_t err_size) SH_MUST_CHECK;

/* Queries */
/* Match a folder-relative, '/'-separated path. Internal names (.stfolder,
 * .stignore, .stversions at the root and below them; .syncthing.*.tmp and
 * .shoal.*.tmp anywhere) always give IGNORE_YES. `ig` may be NULL. Time is
 * linear in the path length for each pattern. */
enum ignore_result ignore_match(const struct ignore *ig, const char *path);
/* True if some negated pattern could match below `dir`, so an ignored
 * directory must still be walked. False when an earlier pattern matches
 * everything below `dir` (first match decides), or with no negations. */
bool	ignore_must_descend(const struct ignore *ig, const char *dir);
size_t	ignore_pattern_count(const struct ignore *ig);
/* A 32-byte digest of the effective patterns, to notice changes: SHA-256
 * over each pattern line (trimmed, duplicates and comments dropped,
 * included files in place) followed by '\n'. */
void	ignore_digest(const struct ignore *ig, unsigned char out[32]);

#endif /* SHOAL_IGNORE_H */

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for .stignore parsing and matching. The input is parsed
 * as an ignore file (no base directory, so #include must fail cleanly);
 * when it parses, a few fixed paths and one path made from the input are
 * matched, must_descend is asked, and the digest is taken. Sanitizers and
 * libFuzzer's timeout catch crashes and slow (backtracking) matches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/ignore.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
	"a", "foo", "foo/bar", "a/b/c/d.txt", "Build/x.o", ".stfolder",
	"dir/.syncthing.x.tmp", "\xc3\xa9t\xc3\xa9/caf\xc3\xa9",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ignore	*ig = NULL;
	char		 err[IGNORE_ERR_SIZE];
	unsigned char	 digest[32];
	char		 path[256];
	size_t		 i, n;
	enum ignore_result r;

	if (ignore_parse((const char *)data, size, "fuzz", NULL, &ig, err,
	    sizeof(err)) != 0) {
		if (ig != NULL || strncmp(err, "fuzz", 4) != 0)
			abort();
		return 0;
	}
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		r = ignore_match(ig, paths[i]);
		if (r != IGNORE_NO && r != IGNORE_YES &&
		    r != IGNORE_YES_DELETABLE)
			abort();
		(void)ignore_must_descend(ig, paths[i]);
	}
	/* Internal names win over any pattern. */
	if (ignore_match(ig, ".stfolder") != IGNORE_YES)
		abort();
	/* A path from the input: its last bytes, NULs and newlines mapped. */
	n = size < sizeof(path) - 1 ? size : sizeof(path) - 1;
	memcpy(path, data + size - n, n);
	path[n] = '\0';
	for (i = 0; i < n; i++)
		if (path[i] == '\0' || path[i] == '\n')
			path[i] = '/';
	(void)ignore_match(ig, path);
	(void)ignore_must_descend(ig, path);
	ignore_digest(ig, digest);
	ignore_free(ig);
	return 0;
}

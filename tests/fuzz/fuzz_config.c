/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the config parser. Any input must either fail with
 * a one-line "FILE:LINE: reason" or parse; a parsed config must format to
 * text that parses again and formats to the same text (format is a fixed
 * point of parse), which is what lets the CLI rewrite a hand-edited file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c = NULL, *c2 = NULL;
	char		 err[CONFIG_ERR_SIZE];
	char		*t1 = NULL, *t2 = NULL;

	if (config_parse((const char *)data, size, "fuzz", &c, err,
	    sizeof(err)) != 0) {
		if (c != NULL || strchr(err, '\n') != NULL ||
		    strncmp(err, "fuzz", 4) != 0)
			abort();
		return 0;
	}
	t1 = config_format(c);
	if (t1 == NULL)
		abort();
	if (config_parse(t1, strlen(t1), "formatted", &c2, err,
	    sizeof(err)) != 0)
		abort();
	t2 = config_format(c2);
	if (t2 == NULL || strcmp(t1, t2) != 0)
		abort();
	if (c->device_count != c2->device_count ||
	    c->folder_count != c2->folder_count ||
	    strcmp(c->name, c2->name) != 0)
		abort();
	free(t1);
	free(t2);
	config_free(c);
	config_free(c2);
	return 0;
}

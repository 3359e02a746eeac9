/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the pre-authentication Hello decoder. A Hello that
 * decodes is re-encoded from its strings and must decode to the same
 * strings again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hello	 h, h2;
	uint8_t			*out = NULL;
	size_t			 used, len;

	memset(&h2, 0, sizeof(h2));
	if (proto_hello_decode(data, size, &used, &h, NULL) != 0)
		return 0;
	if (used > size)
		abort();
	if (proto_hello_encode(h.device_name, h.client_name,
	    h.client_version, &out, &len) == 0) {
		if (proto_hello_decode(out, len, &used, &h2, NULL) != 0 ||
		    used != len ||
		    strcmp(h.device_name, h2.device_name) != 0 ||
		    strcmp(h.client_name, h2.client_name) != 0 ||
		    strcmp(h.client_version, h2.client_version) != 0)
			abort();
	}
	proto_hello_clear(&h2);
	proto_hello_clear(&h);
	free(out);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the BEP frame decoder and the typed message layer:
 * the input is a byte stream as it would come out of TLS, fed in chunks
 * whose sizes derive from the input itself, so every split is tried over
 * the corpus; some chunks are written where proto_decoder_span() says, as
 * TLS does when it decrypts in place. Each frame is decoded, validated,
 * its FileInfos converted to
 * records, and re-encoded; nothing may crash, leak or allocate without
 * bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoal/proto.h"
#include "shoal/record.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every FileInfo of a decoded Index converts, and converts back valid. */
static void
files_to_records(const struct proto_msg *msg)
{
	struct Shoal__Bep__FileInfo *const	*files;
	struct Shoal__Bep__FileInfo		*back;
	struct record				*r;
	const char				*folder;
	size_t					 i, n;

	n = proto_msg_files(msg, &folder, &files);
	for (i = 0; i < n; i++) {
		if (proto_record_from_fileinfo(files[i], &r, NULL) != 0)
			abort();
		back = proto_fileinfo_from_record(r);
		if (proto_validate_fileinfo(back, NULL) != 0)
			abort();
		proto_fileinfo_free(back);
		record_free(r);
	}
}

static void
handle(const struct proto_frame *f, const struct proto_limits *lim)
{
	struct proto_msg	 msg;
	uint8_t			*out;
	size_t			 len;

	if (proto_msg_decode(f, lim, &msg, NULL) != 0)
		return;
	files_to_records(&msg);
	if (proto_frame_encode(msg.type, msg.u.base, true, &out, &len) == 0)
		free(out);
	proto_msg_clear(&msg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_limits	 lim = { 1 << 20, 16 << 20 };
	struct proto_decoder	*d;
	struct proto_frame	 f;
	uint32_t		 h = 2166136261u;
	uint8_t			*span;
	size_t			 off = 0, chunk, used, i;
	int			 rc;

	/* FNV-1a of the input seeds the chunk sizes. */
	for (i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	d = proto_decoder_new(&lim);
	while (off < size) {
		h ^= h << 13;
		h ^= h >> 17;
		h ^= h << 5;
		chunk = (h & 3) == 0 ? size - off : 1 + (h >> 8) % 97;
		if (chunk > size - off)
			chunk = size - off;
		while (chunk > 0) {
			span = (h & 4) != 0 ? proto_decoder_span(d, chunk) :
			    NULL;
			if (span != NULL) {
				memcpy(span, data + off, chunk);
				rc = proto_decoder_feed(d, span, chunk, &used,
				    &f, NULL);
				/* A span lies inside one body: all taken. */
				if (used != chunk)
					abort();
			} else {
				rc = proto_decoder_feed(d, data + off, chunk,
				    &used, &f, NULL);
			}
			if (rc < 0)
				goto out;
			off += used;
			chunk -= used;
			if (rc == 1)
				handle(&f, &lim);
		}
	}
out:
	proto_decoder_free(d);
	return 0;
}

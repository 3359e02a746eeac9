/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto.c: Hello, framing, LZ4, typed decoding, validation
 * and FileInfo <-> record, against the captures of bep-brief §4 and
 * Appendix A.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>
#include <lz4.h>

#include "bep.pb-c.h"
#include "shoal/err.h"
#include "shoal/hash.h"
#include "shoal/proto.h"
#include "shoal/record.h"
#include "shoal/util.h"

/* Appendix A.1: Syncthing's ClusterConfig frame, 152 bytes. */
static const uint8_t a1_frame[] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x92, 0x0a, 0x8f, 0x01, 0x0a, 0x05, 0x74,
	0x65, 0x73, 0x74, 0x66, 0x12, 0x06, 0x54, 0x65, 0x73, 0x74, 0x20, 0x46,
	0x82, 0x01, 0x3c, 0x0a, 0x20, 0x5a, 0x7e, 0xd3, 0x23, 0xf3, 0xdd, 0x29,
	0x8f, 0x61, 0x0f, 0xe8, 0x01, 0x85, 0x3e, 0x83, 0x35, 0xad, 0x3d, 0xba,
	0xbd, 0x41, 0xd5, 0x04, 0x06, 0x69, 0xac, 0xec, 0x2f, 0x2b, 0x88, 0x34,
	0x58, 0x12, 0x02, 0x76, 0x6d, 0x1a, 0x07, 0x64, 0x79, 0x6e, 0x61, 0x6d,
	0x69, 0x63, 0x30, 0x0c, 0x40, 0xb0, 0xb8, 0xb6, 0xb6, 0xba, 0xfd, 0x99,
	0xc9, 0xe7, 0x01, 0x82, 0x01, 0x3e, 0x0a, 0x20, 0xc1, 0x3a, 0x16, 0x90,
	0x4f, 0x1e, 0x5f, 0x16, 0x87, 0xdb, 0xd4, 0x8d, 0x6f, 0x76, 0x6d, 0xa0,
	0x4d, 0x36, 0xe2, 0xe8, 0x25, 0xb4, 0x43, 0x9b, 0x95, 0x9e, 0xa4, 0x14,
	0x54, 0x72, 0x8e, 0x4b, 0x12, 0x05, 0x63, 0x70, 0x65, 0x65, 0x72, 0x1a,
	0x07, 0x64, 0x79, 0x6e, 0x61, 0x6d, 0x69, 0x63, 0x30, 0x05, 0x40, 0x88,
	0xef, 0x99, 0xab, 0xc5, 0xe8, 0x8c, 0x91, 0x11
};

/* Appendix A.6: an LZ4-compressed Index frame from Syncthing, 889 bytes. */
static const uint8_t a6_frame[] = {
	0x00, 0x04, 0x08, 0x01, 0x10, 0x01, 0x00, 0x00, 0x03, 0x6f, 0x00, 0x00,
	0x04, 0xc8, 0xf5, 0x1b, 0x0a, 0x05, 0x74, 0x65, 0x73, 0x74, 0x66, 0x12,
	0x36, 0x0a, 0x04, 0x6c, 0x69, 0x6e, 0x6b, 0x10, 0x04, 0x40, 0x01, 0x4a,
	0x12, 0x0a, 0x10, 0x08, 0x8f, 0xd3, 0xf4, 0x9e, 0xbf, 0xe4, 0xb4, 0xbf,
	0x5a, 0x10, 0xbc, 0xcb, 0xa8, 0xd8, 0x06, 0x50, 0x01, 0x60, 0x12, 0x00,
	0xff, 0x0f, 0x8a, 0x01, 0x09, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2e, 0x74,
	0x78, 0x74, 0x12, 0x35, 0x0a, 0x03, 0x73, 0x75, 0x62, 0x10, 0x01, 0x20,
	0xed, 0x03, 0x28, 0xb6, 0xcb, 0xa8, 0xd8, 0x06, 0x3e, 0x00, 0x02, 0x66,
	0x02, 0x58, 0xde, 0xd8, 0xa4, 0x57, 0x43, 0x00, 0xff, 0x04, 0x12, 0x86,
	0x01, 0x0a, 0x09, 0x65, 0x6d, 0x70, 0x74, 0x79, 0x2e, 0x74, 0x78, 0x74,
	0x20, 0xa4, 0x03, 0x28, 0xb5, 0x3c, 0x00, 0x06, 0x76, 0x03, 0x58, 0xde,
	0x8c, 0xc0, 0xde, 0x02, 0x80, 0x00, 0xff, 0x4f, 0x68, 0x80, 0x80, 0x08,
	0x82, 0x01, 0x22, 0x1a, 0x20, 0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c,
	0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
	0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8,
	0x55, 0x92, 0x01, 0x20, 0xd3, 0xbf, 0xe9, 0x8e, 0x8f, 0x1c, 0xe8, 0x91,
	0x61, 0x48, 0x54, 0x56, 0x9a, 0x20, 0xf5, 0xf4, 0x50, 0x8d, 0x6a, 0xb4,
	0x02, 0x5b, 0x87, 0x2b, 0x7b, 0x3a, 0x82, 0x82, 0xef, 0x75, 0xb1, 0x2a,
	0x12, 0xf7, 0x01, 0x0a, 0x07, 0x62, 0x69, 0x67, 0x2e, 0x74, 0x78, 0x74,
	0x18, 0xe0, 0xa7, 0x12, 0x20, 0xa4, 0xc7, 0x00, 0x09, 0x66, 0x06, 0x58,
	0xab, 0xbc, 0x86, 0x50, 0xc7, 0x00, 0x02, 0x8a, 0x00, 0xf2, 0x25, 0x2c,
	0x10, 0x80, 0x80, 0x08, 0x1a, 0x20, 0x15, 0x01, 0xef, 0x3f, 0x3f, 0xbb,
	0xa0, 0x62, 0xdf, 0xfe, 0x6a, 0xed, 0x5b, 0xe9, 0x00, 0x2a, 0xd1, 0x26,
	0xda, 0x53, 0xd6, 0x80, 0x8f, 0xc6, 0xa9, 0x2f, 0xea, 0x24, 0x7e, 0x85,
	0x18, 0xae, 0x20, 0xde, 0x97, 0xa0, 0xbc, 0x0b, 0x82, 0x01, 0x30, 0x08,
	0x80, 0x80, 0x08, 0x33, 0x00, 0xf3, 0x16, 0x68, 0x06, 0x4a, 0x92, 0xb7,
	0x72, 0xf7, 0x39, 0x81, 0x57, 0x52, 0x87, 0xf1, 0xa2, 0x7b, 0xbe, 0x66,
	0x4c, 0xee, 0x1f, 0xb4, 0x3c, 0xb5, 0x1a, 0x13, 0xd9, 0x23, 0x5b, 0x84,
	0xec, 0xc9, 0x23, 0x20, 0xe2, 0x97, 0xb8, 0xc3, 0x33, 0x00, 0xf6, 0x6c,
	0x10, 0x10, 0xe0, 0xa7, 0x02, 0x1a, 0x20, 0x53, 0x51, 0x3b, 0x2f, 0x63,
	0x17, 0xb0, 0x8a, 0xe1, 0xab, 0x7c, 0xf3, 0xef, 0x29, 0xa9, 0xaf, 0xf8,
	0x6a, 0x70, 0xd4, 0x62, 0xa5, 0x52, 0xf7, 0x4c, 0xee, 0x82, 0xc6, 0xa1,
	0xf2, 0x73, 0xf8, 0x20, 0xc3, 0xc9, 0xb6, 0xda, 0x02, 0x92, 0x01, 0x20,
	0x7f, 0x0f, 0x56, 0x7c, 0x8a, 0xfb, 0x66, 0xf8, 0x5b, 0x6d, 0x70, 0x43,
	0x1a, 0x84, 0x86, 0x8c, 0x9a, 0xf2, 0x1f, 0xac, 0xab, 0x85, 0x09, 0xd0,
	0x59, 0x78, 0x48, 0x13, 0x4e, 0xa2, 0x00, 0xd2, 0x12, 0x33, 0x0a, 0x04,
	0x63, 0x64, 0x69, 0x72, 0x10, 0x01, 0x20, 0xed, 0x03, 0x28, 0xc9, 0x93,
	0xa8, 0xd8, 0x06, 0x4a, 0x13, 0x0a, 0x11, 0x08, 0x96, 0xbe, 0xf9, 0xf8,
	0x84, 0xd2, 0x85, 0x9d, 0xc1, 0x01, 0x10, 0xe9, 0xcb, 0xa8, 0xd8, 0x06,
	0x50, 0x07, 0x60, 0x13, 0x00, 0xff, 0x07, 0x12, 0x89, 0x01, 0x0a, 0x09,
	0x66, 0x72, 0x6f, 0x6d, 0x63, 0x2e, 0x74, 0x78, 0x74, 0x18, 0x11, 0x20,
	0xa4, 0x03, 0x28, 0xd9, 0xaf, 0x3b, 0x00, 0x06, 0x47, 0x08, 0x58, 0xf4,
	0x03, 0x3e, 0x00, 0x02, 0x2f, 0x01, 0xff, 0x49, 0x24, 0x10, 0x11, 0x1a,
	0x20, 0x00, 0xb8, 0x07, 0x45, 0xa4, 0x3d, 0xd5, 0x80, 0xed, 0x60, 0x5d,
	0xc2, 0xb6, 0xa2, 0x29, 0x21, 0x38, 0x61, 0x58, 0x96, 0xc0, 0xcd, 0xea,
	0x70, 0x53, 0x7a, 0xea, 0xf2, 0x8a, 0x2c, 0x62, 0x28, 0x92, 0x01, 0x20,
	0xea, 0x5f, 0xe2, 0x56, 0x0f, 0x9e, 0x5f, 0xed, 0x08, 0x6f, 0xd8, 0x3c,
	0xed, 0xf3, 0x14, 0x30, 0xd6, 0xe2, 0xa7, 0x8f, 0xd6, 0xe2, 0xf8, 0x61,
	0xad, 0x60, 0x62, 0xbd, 0x1b, 0x27, 0x69, 0xcd, 0x12, 0x7f, 0x0a, 0x0a,
	0x63, 0x64, 0x69, 0x72, 0x2f, 0x65, 0x6d, 0x70, 0x74, 0x79, 0x20, 0x80,
	0xc5, 0x00, 0x0a, 0x17, 0x09, 0x87, 0x00, 0x0f, 0x3c, 0x02, 0x36, 0x36,
	0x86, 0x01, 0x0a, 0x0a, 0x03, 0x8f, 0x18, 0x1b, 0x20, 0xa4, 0x03, 0x28,
	0x9a, 0xcc, 0x0d, 0x01, 0x00, 0x7f, 0x9a, 0xcc, 0xa8, 0xd8, 0x06, 0x50,
	0x0a, 0x0a, 0x01, 0x00, 0xf3, 0x46, 0x1b, 0x1a, 0x20, 0x07, 0xa1, 0x9f,
	0xfb, 0xe1, 0xc7, 0xfb, 0x42, 0x3b, 0x59, 0x29, 0xb3, 0x76, 0x21, 0xc6,
	0xe3, 0x50, 0xcd, 0x0b, 0xb4, 0xcb, 0x5b, 0x54, 0x57, 0xa8, 0x97, 0x70,
	0x61, 0xd8, 0xff, 0x10, 0x4c, 0x92, 0x01, 0x20, 0xcb, 0xf7, 0xb6, 0x70,
	0x5f, 0xa2, 0xb4, 0xe5, 0x16, 0x4f, 0xa8, 0xc4, 0x41, 0x48, 0x29, 0x1d,
	0x62, 0x9f, 0xd7, 0x5c, 0x59, 0x06, 0xd5, 0xf9, 0xe6, 0xed, 0x02, 0xcb,
	0xcb, 0xd0, 0x5b, 0x4f, 0x12, 0x4a, 0x0a, 0x09, 0x73, 0x75, 0x62, 0x2f,
	0x78, 0x2e, 0x74, 0x78, 0x74, 0x20, 0xed, 0x86, 0x00, 0x4e, 0x30, 0x01,
	0x4a, 0x25, 0x8b, 0x03, 0x0a, 0xe2, 0x01, 0x02, 0x9a, 0x00, 0x17, 0x0b,
	0x1d, 0x01, 0x52, 0x12, 0xb5, 0x01, 0x0a, 0x2f, 0xd5, 0x00, 0xff, 0x1c,
	0x73, 0x79, 0x6e, 0x63, 0x2d, 0x63, 0x6f, 0x6e, 0x66, 0x6c, 0x69, 0x63,
	0x74, 0x2d, 0x32, 0x30, 0x32, 0x36, 0x31, 0x31, 0x32, 0x38, 0x2d, 0x30,
	0x30, 0x35, 0x33, 0x34, 0x36, 0x2d, 0x59, 0x45, 0x35, 0x42, 0x4e, 0x45,
	0x43, 0x2e, 0x74, 0x78, 0x74, 0x18, 0x05, 0xc2, 0x03, 0x05, 0x02, 0x60,
	0x00, 0x1f, 0x0c, 0xc2, 0x03, 0x03, 0xf0, 0x3e, 0x29, 0x10, 0x05, 0x1a,
	0x20, 0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b,
	0x2a, 0xc5, 0xb9, 0xe2, 0x9e, 0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42,
	0x5e, 0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24, 0x20, 0x95, 0x84,
	0xb0, 0x31, 0x92, 0x01, 0x20, 0x56, 0x97, 0x14, 0xc5, 0xa4, 0xe0, 0xfb,
	0x33, 0xbe, 0xf5, 0x32, 0x66, 0x6b, 0x4a, 0x81, 0x29, 0xb8, 0xa1, 0x33,
	0xce, 0xc8, 0x24, 0x25, 0x58, 0x56, 0x67, 0xfe, 0xa8, 0x91, 0x31, 0xec,
	0xea
};

/* §4: the real Hello of Debian's Syncthing, device name "vm". */
static const uint8_t st_hello[] = {
	0x2e, 0xa7, 0xd9, 0x0b, 0x00, 0x1c,
	0x0a, 0x02, 0x76, 0x6d,
	0x12, 0x09, 0x73, 0x79, 0x6e, 0x63, 0x74, 0x68, 0x69, 0x6e, 0x67,
	0x1a, 0x0b, 0x76, 0x31, 0x2e, 0x31, 0x39, 0x2e, 0x32, 0x2d, 0x64,
	0x73, 0x31
};

/* A.5: our hand-built Hello. */
static const uint8_t a5_hello[] = {
	0x2e, 0xa7, 0xd9, 0x0b, 0x00, 0x1c, 0x0a, 0x06, 0x6c, 0x61, 0x70,
	0x74, 0x6f, 0x70, 0x12, 0x09, 0x73, 0x79, 0x6e, 0x63, 0x74, 0x68,
	0x69, 0x6e, 0x67, 0x1a, 0x07, 0x76, 0x31, 0x2e, 0x31, 0x39, 0x2e,
	0x32
};

static const uint8_t a5_close_bye[] = {
	0x00, 0x02, 0x08, 0x07, 0x00, 0x00, 0x00, 0x05, 0x0a, 0x03, 0x62,
	0x79, 0x65
};

static const uint8_t a5_response_hello[] = {
	0x00, 0x02, 0x08, 0x04, 0x00, 0x00, 0x00, 0x07, 0x12, 0x05, 0x68,
	0x65, 0x6c, 0x6c, 0x6f
};

static const uint8_t ping_frame[] = {
	0x00, 0x02, 0x08, 0x06, 0x00, 0x00, 0x00, 0x00
};

/* A frame of unknown type 99 with a 5-byte body. */
static const uint8_t unknown_frame[] = {
	0x00, 0x02, 0x08, 0x63, 0x00, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5
};

static const char sha_empty[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static void
unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t		i;
	unsigned int	v;

	assert_int_equal(strlen(hex), 2 * len);
	for (i = 0; i < len; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void
assert_hex(const uint8_t *data, size_t len, const char *hex)
{
	uint8_t	buf[64];

	assert_true(len <= sizeof(buf));
	unhex(hex, buf, len);
	assert_memory_equal(data, buf, len);
}

/* Frames collected from a decoder, copied out of its borrowed buffers. */
struct got {
	int		 type[16];
	uint8_t		*body[16];
	size_t		 len[16];
	bool		 compressed[16];
	size_t		 count;
};

static void
got_free(struct got *g)
{
	size_t	i;

	for (i = 0; i < g->count; i++)
		free(g->body[i]);
	memset(g, 0, sizeof(*g));
}

/* Feed buf whole; returns the last feed result (0 or negative). */
static int
feed(struct proto_decoder *d, const uint8_t *buf, size_t len, struct got *g)
{
	struct proto_frame	f;
	struct proto_err	err;
	size_t			used;
	int			rc;

	while (len > 0) {
		rc = proto_decoder_feed(d, buf, len, &used, &f, &err);
		if (rc < 0)
			return rc;
		assert_true(used <= len);
		buf += used;
		len -= used;
		if (rc == 1) {
			assert_true(g->count < 16);
			g->type[g->count] = (int)f.type;
			g->len[g->count] = f.body_len;
			g->compressed[g->count] = f.compressed;
			g->body[g->count] = xmalloc(f.body_len);
			if (f.body_len > 0)
				memcpy(g->body[g->count], f.body, f.body_len);
			g->count++;
		} else {
			assert_int_equal(len, 0);
		}
	}
	return 0;
}

/* Decode one whole frame into a typed message. */
static int
decode_one(const uint8_t *buf, size_t len, const struct proto_limits *lim,
    struct proto_msg *msg, struct proto_err *err)
{
	struct proto_decoder	*d;
	struct proto_frame	 f;
	size_t			 used;
	int			 rc;

	d = proto_decoder_new(lim);
	rc = proto_decoder_feed(d, buf, len, &used, &f, err);
	if (rc == 1) {
		assert_int_equal(used, len);
		rc = proto_msg_decode(&f, lim, msg, err);
	} else if (rc == 0) {
		rc = -EAGAIN;
	}
	proto_decoder_free(d);
	return rc;
}

static void
test_proto_hello_syncthing_bytes(void **state)
{
	struct proto_hello	 h;
	struct proto_err	 err;
	uint8_t			 buf[64];
	size_t			 used, i;

	(void)state;
	for (i = 0; i < sizeof(st_hello); i++)
		assert_int_equal(proto_hello_decode(st_hello, i, &used, &h,
		    &err), -EAGAIN);
	assert_null(h.device_name);
	memcpy(buf, st_hello, sizeof(st_hello));
	memcpy(buf + sizeof(st_hello), ping_frame, sizeof(ping_frame));
	assert_int_equal(proto_hello_decode(buf, sizeof(st_hello) +
	    sizeof(ping_frame), &used, &h, &err), 0);
	assert_int_equal(used, 34);
	assert_string_equal(h.device_name, "vm");
	assert_string_equal(h.client_name, "syncthing");
	assert_string_equal(h.client_version, "v1.19.2-ds1");
	assert_int_equal(h.num_connections, 0);
	assert_int_equal(h.timestamp, 0);
	proto_hello_clear(&h);
	assert_null(h.client_name);
}

static void
test_proto_hello_roundtrip(void **state)
{
	struct proto_hello	 h;
	struct proto_err	 err;
	uint8_t			*out = NULL;
	size_t			 len, used;
	char			*big;

	(void)state;
	assert_int_equal(proto_hello_encode("laptop", "syncthing", "v1.19.2",
	    &out, &len), 0);
	assert_int_equal(len, sizeof(a5_hello));
	assert_memory_equal(out, a5_hello, len);
	assert_int_equal(proto_hello_decode(out, len, &used, &h, &err), 0);
	assert_string_equal(h.device_name, "laptop");
	assert_string_equal(h.client_version, "v1.19.2");
	proto_hello_clear(&h);
	free(out);

	assert_int_equal(proto_hello_encode(NULL, "shoal", "v0.1.0", &out,
	    &len), 0);
	assert_int_equal(proto_hello_decode(out, len, &used, &h, &err), 0);
	assert_string_equal(h.device_name, "");
	assert_string_equal(h.client_name, "shoal");
	proto_hello_clear(&h);
	free(out);

	big = xmalloc(PROTO_HELLO_MAX_LEN + 1);
	memset(big, 'x', PROTO_HELLO_MAX_LEN);
	big[PROTO_HELLO_MAX_LEN] = '\0';
	assert_int_equal(proto_hello_encode(big, "shoal", "v0", &out, &len),
	    -E2BIG);
	assert_null(out);
	free(big);
}

static void
test_proto_hello_rejects(void **state)
{
	struct proto_hello	 h;
	struct proto_err	 err;
	size_t			 used;
	static const uint8_t	 v125[] = { 0x2e, 0xa7, 0xd9, 0x0b, 0x00,
	    0x0c, 0x12, 0x05, 's', 'h', 'o', 'a', 'l', 0x20, 0x01, 0x28, 0x80,
	    0x01 };
	static const uint8_t	 old1[] = { 0x00, 0x01, 0x00, 0x01, 0, 0 };
	static const uint8_t	 old2[] = { 0x9f, 0x79, 0xbc, 0x40 };
	static const uint8_t	 newer[] = { 0x12, 0x34, 0x56, 0x78, 0, 0 };
	static const uint8_t	 toolong[] = { 0x2e, 0xa7, 0xd9, 0x0b,
	    0x80, 0x00 };
	static const uint8_t	 garbage[] = { 0x2e, 0xa7, 0xd9, 0x0b, 0x00,
	    0x02, 0x0a, 0x05 };

	(void)state;
	assert_int_equal(proto_hello_decode(old1, sizeof(old1), &used, &h,
	    &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "older protocol"));
	assert_int_equal(proto_hello_decode(old2, sizeof(old2), &used, &h,
	    &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "older protocol"));
	assert_int_equal(proto_hello_decode(newer, sizeof(newer), &used, &h,
	    &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "unknown"));
	assert_int_equal(proto_hello_decode(toolong, sizeof(toolong), &used,
	    &h, &err), SH_EPROTO);
	assert_int_equal(proto_hello_decode(garbage, sizeof(garbage), &used,
	    &h, &err), SH_EPROTO);
	assert_null(h.client_name);
	/* A 1.25+ Hello with num_connections and timestamp. */
	assert_int_equal(proto_hello_decode(v125, sizeof(v125), &used, &h,
	    &err), 0);
	assert_int_equal(used, sizeof(v125));
	assert_string_equal(h.client_name, "shoal");
	assert_int_equal(h.num_connections, 1);
	assert_int_equal(h.timestamp, 128);
	proto_hello_clear(&h);
	/* The same with its last byte cut: the varint is truncated. */
	assert_int_equal(proto_hello_decode(v125, sizeof(v125) - 1, &used, &h,
	    &err), -EAGAIN);
}

static void
test_proto_cluster_config_capture(void **state)
{
	struct proto_msg		 msg;
	struct proto_err		 err;
	Shoal__Bep__ClusterConfig	*cc;
	Shoal__Bep__Folder		*f;
	uint8_t				*out = NULL;
	size_t				 len;

	(void)state;
	assert_int_equal(decode_one(a1_frame, sizeof(a1_frame), NULL, &msg,
	    &err), 0);
	assert_int_equal(msg.type, PROTO_CLUSTER_CONFIG);
	cc = msg.u.cluster_config;
	assert_int_equal(cc->n_folders, 1);
	f = cc->folders[0];
	assert_string_equal(f->id, "testf");
	assert_string_equal(f->label, "Test F");
	assert_int_equal(f->n_devices, 2);
	assert_int_equal(f->devices[0]->id.len, 32);
	assert_hex(f->devices[0]->id.data, 32, "5a7ed323f3dd298f610fe801853e"
	    "8335ad3dbabd41d5040669acec2f2b883458");
	assert_string_equal(f->devices[0]->name, "vm");
	assert_int_equal(f->devices[0]->n_addresses, 1);
	assert_string_equal(f->devices[0]->addresses[0], "dynamic");
	assert_int_equal(f->devices[0]->max_sequence, 12);
	assert_true(f->devices[0]->index_id == 0xe79267eba6cd9c30ull);
	assert_hex(f->devices[1]->id.data, 32, "c13a16904f1e5f1687dbd48d6f76"
	    "6da04d36e2e825b4439b959ea41454728e4b");
	assert_string_equal(f->devices[1]->name, "cpeer");
	assert_int_equal(f->devices[1]->max_sequence, 5);
	assert_true(f->devices[1]->index_id == 0x1122334455667788ull);
	assert_false(cc->secondary);

	/* Our encoder produces Syncthing's bytes exactly (header length 0). */
	assert_int_equal(proto_frame_encode(PROTO_CLUSTER_CONFIG,
	    msg.u.base, false, &out, &len), 0);
	assert_int_equal(len, sizeof(a1_frame));
	assert_memory_equal(out, a1_frame, len);
	free(out);
	proto_msg_clear(&msg);
	assert_null(msg.u.base);
}

/* A.2: a ClusterConfig as one literal-only LZ4 block. */
static void
test_proto_lz4_literal_block(void **state)
{
	Shoal__Bep__ClusterConfig	 cc = SHOAL__BEP__CLUSTER_CONFIG__INIT;
	Shoal__Bep__Folder		 fo = SHOAL__BEP__FOLDER__INIT;
	Shoal__Bep__Folder		*fp = &fo;
	struct proto_msg		 msg;
	struct proto_err		 err;
	uint8_t				 frame[2 + 2 + 4 + 4 + 2 + 127];
	char				 label[128];
	size_t				 s, lab;

	(void)state;
	/* Pad the label until the ClusterConfig is exactly 127 bytes. */
	cc.n_folders = 1;
	cc.folders = &fp;
	fo.id = (char *)"testf";
	for (lab = 1; lab < sizeof(label); lab++) {
		memset(label, 'L', lab);
		label[lab] = '\0';
		fo.label = label;
		s = shoal__bep__cluster_config__get_packed_size(&cc);
		if (s == 127)
			break;
	}
	assert_int_equal(s, 127);
	memcpy(frame, "\x00\x02\x10\x01\x00\x00\x00\x85\x00\x00\x00\x7f"
	    "\xf0\x70", 14);
	(void)shoal__bep__cluster_config__pack(&cc, frame + 14);
	assert_int_equal(decode_one(frame, sizeof(frame), NULL, &msg, &err),
	    0);
	assert_int_equal(msg.type, PROTO_CLUSTER_CONFIG);
	assert_string_equal(msg.u.cluster_config->folders[0]->id, "testf");
	assert_string_equal(msg.u.cluster_config->folders[0]->label, label);
	proto_msg_clear(&msg);

	/* Announce one byte more than the block holds: rejected. */
	frame[11] = 0x80;
	assert_int_equal(decode_one(frame, sizeof(frame), NULL, &msg, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "LZ4"));
	/* And one byte less. */
	frame[11] = 0x7e;
	assert_int_equal(decode_one(frame, sizeof(frame), NULL, &msg, &err),
	    SH_EPROTO);
}

static const Shoal__Bep__FileInfo *
find_file(Shoal__Bep__Index *idx, const char *name)
{
	size_t	i;

	for (i = 0; i < idx->n_files; i++)
		if (strcmp(idx->files[i]->name, name) == 0)
			return idx->files[i];
	fail_msg("no file %s", name);
	return NULL;
}

/* A.3 and A.6: Syncthing's LZ4-compressed Index, byte for byte. */
static void
test_proto_index_capture(void **state)
{
	static const char *const names[] = { "link", "sub", "empty.txt",
	    "big.txt", "cdir", "fromc.txt", "cdir/empty", "hello.txt",
	    "sub/x.txt", "hello.sync-conflict-20261128-005346-YE5BNEC.txt" };
	static const int64_t seqs[] = { 1, 2, 3, 6, 7, 8, 9, 10, 11, 12 };
	struct proto_decoder		*d;
	struct proto_frame		 f;
	struct proto_msg		 msg;
	struct proto_err		 err;
	struct proto_limits		 lim;
	const Shoal__Bep__FileInfo	*fi;
	Shoal__Bep__Index		*idx;
	Shoal__Bep__FileInfo *const	*files;
	const char			*folder;
	struct record			*r;
	uint8_t				 sha[32];
	size_t				 used, i;

	(void)state;
	assert_int_equal(hash_sha256(a6_frame, sizeof(a6_frame), sha), 0);
	assert_hex(sha, 32, "222c26df7d40fcdc466dfd0cc72c4e965d1e9efff683ab"
	    "1044cb4c11626d8886");
	d = proto_decoder_new(NULL);
	assert_int_equal(proto_decoder_feed(d, a6_frame, sizeof(a6_frame),
	    &used, &f, &err), 1);
	assert_int_equal(used, 889);
	assert_int_equal(f.type, PROTO_INDEX);
	assert_true(f.compressed);
	assert_int_equal(f.wire_len, 889);
	assert_int_equal(f.body_len, 1224);
	assert_int_equal(hash_sha256(f.body, f.body_len, sha), 0);
	assert_hex(sha, 32, "9591f551cbc74ecb751d230ff6cfea71116351ee8b84bc"
	    "720f38dc214f7fd09f");

	/* Real data fits a decode budget of 8 x the body: half our factor. */
	lim.max_msg_len = 0;
	lim.max_decoded_len = 8 * f.body_len;
	assert_int_equal(proto_msg_decode(&f, &lim, &msg, &err), 0);
	idx = msg.u.index;
	assert_string_equal(idx->folder, "testf");
	assert_int_equal(proto_msg_files(&msg, &folder, &files), 10);
	assert_string_equal(folder, "testf");
	assert_ptr_equal(files, idx->files);
	assert_int_equal(idx->n_files, 10);
	for (i = 0; i < 10; i++) {
		assert_string_equal(idx->files[i]->name, names[i]);
		assert_int_equal(idx->files[i]->sequence, seqs[i]);
	}

	fi = find_file(idx, "link");
	assert_int_equal(fi->type, 4);
	assert_true(fi->no_permissions);
	assert_int_equal(fi->symlink_target.len, 9);
	assert_memory_equal(fi->symlink_target.data, "hello.txt", 9);
	assert_int_equal(fi->size, 0);
	assert_int_equal(fi->modified_s, 0);
	assert_int_equal(fi->permissions, 0);
	assert_int_equal(fi->version->n_counters, 1);
	assert_true(fi->version->counters[0]->id == 0x5a7ed323f3dd298full);
	assert_int_equal(fi->version->counters[0]->value, 1795827132);
	assert_true(fi->modified_by == 0x5a7ed323f3dd298full);

	fi = find_file(idx, "sub");
	assert_int_equal(fi->type, 1);
	assert_int_equal(fi->permissions, 0755);
	assert_true(fi->modified_s != 0);
	assert_int_equal(fi->n_blocks, 0);

	fi = find_file(idx, "empty.txt");
	assert_int_equal(fi->type, 0);
	assert_int_equal(fi->size, 0);
	assert_int_equal(fi->permissions, 0644);
	assert_int_equal(fi->block_size, 131072);
	assert_int_equal(fi->n_blocks, 1);
	assert_int_equal(fi->blocks[0]->offset, 0);
	assert_int_equal(fi->blocks[0]->size, 0);
	assert_hex(fi->blocks[0]->hash.data, 32, sha_empty);
	assert_hex(fi->blocks_hash.data, 32, "d3bfe98e8f1ce891614854569a20f5"
	    "f4508d6ab4025b872b7b3a8282ef75b12a");

	/* A.3's hello.txt lost a conflict: its "hello" is the copy now. */
	fi = find_file(idx, "hello.txt");
	assert_int_equal(fi->size, 27);
	assert_int_equal(fi->n_blocks, 1);
	fi = find_file(idx,
	    "hello.sync-conflict-20261128-005346-YE5BNEC.txt");
	assert_int_equal(fi->size, 5);
	assert_int_equal(fi->n_blocks, 1);
	assert_int_equal(fi->blocks[0]->size, 5);
	assert_hex(fi->blocks[0]->hash.data, 32, "2cf24dba5fb0a30e26e83b2ac5"
	    "b9e29e1b161e5c1fa7425e73043362938b9824");
	assert_int_equal(fi->blocks[0]->weak_hash, 0x062c0215);
	assert_hex(fi->blocks_hash.data, 32, "569714c5a4e0fb33bef532666b4a81"
	    "29b8a133cec82425585667fea89131ecea");

	fi = find_file(idx, "big.txt");
	assert_int_equal(fi->size, 300000);
	assert_int_equal(fi->n_blocks, 3);
	assert_int_equal(fi->blocks[0]->size, 131072);
	assert_int_equal(fi->blocks[1]->size, 131072);
	assert_int_equal(fi->blocks[1]->offset, 131072);
	assert_int_equal(fi->blocks[2]->size, 37856);
	assert_int_equal(fi->blocks[2]->offset, 262144);

	assert_true(find_file(idx, "sub/x.txt")->deleted);

	/* Every record Syncthing sent converts. */
	for (i = 0; i < idx->n_files; i++) {
		assert_int_equal(proto_record_from_fileinfo(idx->files[i], &r,
		    &err), 0);
		assert_string_equal(r->name, idx->files[i]->name);
		if (strcmp(r->name, "link") == 0) {
			assert_int_equal(r->type, RECORD_TYPE_SYMLINK);
			assert_string_equal(r->symlink_target, "hello.txt");
		}
		if (strcmp(r->name, "big.txt") == 0) {
			assert_int_equal(r->block_count, 3);
			assert_true(r->has_blocks_hash);
		}
		record_free(r);
	}
	proto_msg_clear(&msg);
	proto_decoder_free(d);
}

/* A.4 and A.5: block transfer, Ping, Close. */
static void
test_proto_block_transfer_captures(void **state)
{
	Shoal__Bep__Response	 resp = SHOAL__BEP__RESPONSE__INIT;
	Shoal__Bep__Response	*rp;
	struct proto_msg	 msg;
	struct proto_err	 err;
	struct proto_frame	 f;
	uint8_t			 req[8 + 0x36], data[17], *out = NULL;
	uint8_t			 close_st[64];
	Shoal__Bep__FileInfo *const	*files;
	const char		*folder;
	size_t			 len, n;
	static const char	 why[] =
	    "protocol error on ping: invalid state 0";

	(void)state;
	memcpy(req, "\x00\x02\x08\x03\x00\x00\x00\x36\x12\x05testf"
	    "\x1a\x09" "fromc.txt\x28\x11\x32\x20", 8 + 7 + 11 + 4);
	memset(req + 30, 0xab, 32);
	assert_int_equal(decode_one(req, sizeof(req), NULL, &msg, &err), 0);
	assert_int_equal(msg.type, PROTO_REQUEST);
	assert_int_equal(msg.u.request->id, 0);
	assert_string_equal(msg.u.request->folder, "testf");
	assert_string_equal(msg.u.request->name, "fromc.txt");
	assert_int_equal(msg.u.request->offset, 0);
	assert_int_equal(msg.u.request->size, 17);
	assert_int_equal(msg.u.request->hash.len, 32);
	assert_int_equal(msg.u.request->block_no, 0);
	proto_msg_clear(&msg);

	/* Our Response: 00 02 08 04 | 00 00 00 13 | 12 11 <17 bytes>. */
	memset(data, 'z', sizeof(data));
	resp.data.data = data;
	resp.data.len = sizeof(data);
	assert_int_equal(proto_frame_encode(PROTO_RESPONSE, &resp.base, false,
	    &out, &len), 0);
	assert_int_equal(len, 8 + 0x13);
	assert_memory_equal(out, "\x00\x02\x08\x04\x00\x00\x00\x13\x12\x11",
	    10);
	assert_memory_equal(out + 10, data, 17);
	free(out);

	/* Syncthing's Response for a missing file: id 102, code 2. */
	memset(&f, 0, sizeof(f));
	f.type = PROTO_RESPONSE;
	f.body = (const uint8_t *)"\x08\x66\x18\x02";
	f.body_len = 4;
	assert_int_equal(proto_msg_decode(&f, NULL, &msg, &err), 0);
	rp = msg.u.response;
	assert_int_equal(rp->id, 102);
	assert_int_equal(rp->code, PROTO_CODE_NO_SUCH_FILE);
	assert_int_equal(rp->data.len, 0);
	proto_msg_clear(&msg);

	/* Ping, both ways. */
	assert_int_equal(proto_ping_encode(&out, &len), 0);
	assert_int_equal(len, sizeof(ping_frame));
	assert_memory_equal(out, ping_frame, len);
	free(out);
	assert_int_equal(decode_one(ping_frame, sizeof(ping_frame), NULL,
	    &msg, &err), 0);
	assert_int_equal(msg.type, PROTO_PING);
	assert_int_equal(proto_msg_files(&msg, &folder, &files), 0);
	assert_null(folder);
	proto_msg_clear(&msg);

	/* Close from Syncthing. */
	n = strlen(why);
	memcpy(close_st, "\x00\x02\x08\x07\x00\x00\x00", 7);
	close_st[7] = (uint8_t)(n + 2);
	close_st[8] = 0x0a;
	close_st[9] = (uint8_t)n;
	memcpy(close_st + 10, why, n);
	assert_int_equal(decode_one(close_st, 10 + n, NULL, &msg, &err), 0);
	assert_int_equal(msg.type, PROTO_CLOSE);
	assert_string_equal(msg.u.close->reason, why);
	proto_msg_clear(&msg);

	/* A.5 hand-built frames. */
	assert_int_equal(proto_close_encode("bye", &out, &len), 0);
	assert_int_equal(len, sizeof(a5_close_bye));
	assert_memory_equal(out, a5_close_bye, len);
	free(out);
	resp.data.data = (uint8_t *)"hello";
	resp.data.len = 5;
	assert_int_equal(proto_frame_encode(PROTO_RESPONSE, &resp.base, true,
	    &out, &len), 0);
	assert_int_equal(len, sizeof(a5_response_hello));
	assert_memory_equal(out, a5_response_hello, len);
	free(out);
	assert_int_equal(decode_one(a5_response_hello,
	    sizeof(a5_response_hello), NULL, &msg, &err), 0);
	assert_int_equal(msg.u.response->data.len, 5);
	assert_memory_equal(msg.u.response->data.data, "hello", 5);
	proto_msg_clear(&msg);
}

/* One message of each type, big and repetitive enough to compress. */
struct samples {
	Shoal__Bep__ClusterConfig	 cc;
	Shoal__Bep__Folder		 folder, *folders[1];
	Shoal__Bep__Device		 dev[2], *devs[2];
	char				*addrs[1];
	uint8_t				 ids[2][32];
	Shoal__Bep__Index		 index;
	Shoal__Bep__IndexUpdate		 update;
	Shoal__Bep__FileInfo		*files[3];
	Shoal__Bep__Request		 req;
	uint8_t				 hash[32];
	Shoal__Bep__Response		 resp;
	uint8_t				 data[4096];
	Shoal__Bep__DownloadProgress	 dp;
	Shoal__Bep__ProgressUpdate	 pu, *pus[1];
	Shoal__Bep__Vector		 vec;
	Shoal__Bep__Counter		 ctr, *ctrs[1];
	int32_t				 bidx[40];
	Shoal__Bep__Ping		 ping;
	Shoal__Bep__Close		 close;
	ProtobufCMessage		*msgs[PROTO_TYPE_COUNT];
};

static struct record *
sample_record(const char *name, int64_t size, int32_t bs)
{
	struct record	*r;
	size_t		 i, n;

	r = record_new();
	r->name = xstrdup(name);
	r->type = RECORD_TYPE_FILE;
	r->size = size;
	r->permissions = 0644;
	r->modified_s = 1764290000;
	r->modified_ns = 123456789;
	r->modified_by = 0xc13a16904f1e5f16ull;
	r->sequence = 42;
	r->block_size = bs;
	r->version.count = 2;
	r->version.counters = xcalloc(2, sizeof(*r->version.counters));
	r->version.counters[0].id = 0x5a7ed323f3dd298full;
	r->version.counters[0].value = 1795827132;
	r->version.counters[1].id = 0xc13a16904f1e5f16ull;
	r->version.counters[1].value = 1795827133;
	if (bs == 0)
		bs = RECORD_MIN_BLOCK_SIZE;
	n = size == 0 ? 1 : (size_t)((size + bs - 1) / bs);
	r->blocks = xcalloc(n, sizeof(*r->blocks));
	r->block_count = n;
	for (i = 0; i < n; i++) {
		r->blocks[i].offset = (int64_t)i * bs;
		r->blocks[i].size = (int32_t)(size - r->blocks[i].offset < bs ?
		    size - r->blocks[i].offset : bs);
		memset(r->blocks[i].hash, (int)i + 1, RECORD_HASH_LEN);
		r->blocks[i].weak_hash = (uint32_t)i * 7;
	}
	memset(r->blocks_hash, 0x5a, RECORD_HASH_LEN);
	r->has_blocks_hash = true;
	return r;
}

static void
samples_init(struct samples *s)
{
	struct record	*r;
	size_t		 i;

	memset(s, 0, sizeof(*s));
	shoal__bep__cluster_config__init(&s->cc);
	shoal__bep__folder__init(&s->folder);
	s->folder.id = (char *)"default";
	s->folder.label = (char *)"Default Folder";
	s->folder.paused = true;
	s->addrs[0] = (char *)"tcp://127.0.0.1:22000";
	for (i = 0; i < 2; i++) {
		shoal__bep__device__init(&s->dev[i]);
		memset(s->ids[i], 0x11 * (int)(i + 1), 32);
		s->dev[i].id.data = s->ids[i];
		s->dev[i].id.len = 32;
		s->dev[i].name = (char *)"device name device name";
		s->dev[i].n_addresses = 1;
		s->dev[i].addresses = s->addrs;
		s->dev[i].max_sequence = 1000 + (int64_t)i;
		s->dev[i].index_id = 0xe79267eba6cd9c30ull + i;
		s->devs[i] = &s->dev[i];
	}
	s->folder.n_devices = 2;
	s->folder.devices = s->devs;
	s->folders[0] = &s->folder;
	s->cc.n_folders = 1;
	s->cc.folders = s->folders;

	s->files[0] = proto_fileinfo_from_record(r = sample_record("a/b.txt",
	    300000, 0));
	record_free(r);
	s->files[1] = proto_fileinfo_from_record(r = sample_record("empty",
	    0, 131072));
	record_free(r);
	s->files[2] = proto_fileinfo_from_record(r = sample_record("big",
	    5 * 1024 * 1024, 1024 * 1024));
	record_free(r);
	shoal__bep__index__init(&s->index);
	s->index.folder = (char *)"default";
	s->index.n_files = 3;
	s->index.files = s->files;
	s->index.last_sequence = 42;
	shoal__bep__index_update__init(&s->update);
	s->update.folder = (char *)"default";
	s->update.n_files = 3;
	s->update.files = s->files;
	s->update.prev_sequence = 41;

	shoal__bep__request__init(&s->req);
	s->req.id = 7;
	s->req.folder = (char *)"default";
	s->req.name = (char *)"a/b.txt";
	s->req.offset = 131072;
	s->req.size = 131072;
	memset(s->hash, 0xcd, 32);
	s->req.hash.data = s->hash;
	s->req.hash.len = 32;
	s->req.block_no = 1;

	shoal__bep__response__init(&s->resp);
	s->resp.id = 7;
	for (i = 0; i < sizeof(s->data); i++)
		s->data[i] = (uint8_t)(i % 13);
	s->resp.data.data = s->data;
	s->resp.data.len = sizeof(s->data);

	shoal__bep__download_progress__init(&s->dp);
	shoal__bep__progress_update__init(&s->pu);
	shoal__bep__vector__init(&s->vec);
	shoal__bep__counter__init(&s->ctr);
	s->ctr.id = 5;
	s->ctr.value = 9;
	s->ctrs[0] = &s->ctr;
	s->vec.n_counters = 1;
	s->vec.counters = s->ctrs;
	s->pu.name = (char *)"a/b.txt";
	s->pu.version = &s->vec;
	for (i = 0; i < 40; i++)
		s->bidx[i] = (int32_t)i;
	s->pu.n_block_indexes = 40;
	s->pu.block_indexes = s->bidx;
	s->pu.block_size = 131072;
	s->pus[0] = &s->pu;
	s->dp.folder = (char *)"default";
	s->dp.n_updates = 1;
	s->dp.updates = s->pus;

	shoal__bep__ping__init(&s->ping);
	shoal__bep__close__init(&s->close);
	s->close.reason = (char *)"shutting down shutting down shutting down "
	    "shutting down shutting down shutting down shutting down "
	    "shutting down shutting down shutting down shutting down";

	s->msgs[PROTO_CLUSTER_CONFIG] = &s->cc.base;
	s->msgs[PROTO_INDEX] = &s->index.base;
	s->msgs[PROTO_INDEX_UPDATE] = &s->update.base;
	s->msgs[PROTO_REQUEST] = &s->req.base;
	s->msgs[PROTO_RESPONSE] = &s->resp.base;
	s->msgs[PROTO_DOWNLOAD_PROGRESS] = &s->dp.base;
	s->msgs[PROTO_PING] = &s->ping.base;
	s->msgs[PROTO_CLOSE] = &s->close.base;
}

static void
samples_free(struct samples *s)
{
	size_t	i;

	for (i = 0; i < 3; i++)
		proto_fileinfo_free(s->files[i]);
}

static void
test_proto_roundtrip_all_types(void **state)
{
	struct samples		 s;
	struct proto_decoder	*d;
	struct proto_frame	 f;
	struct proto_msg	 msg;
	struct proto_err	 err;
	uint8_t			*frame, *a, *b;
	size_t			 len, used, la, lb;
	int			 t, z;

	(void)state;
	samples_init(&s);
	d = proto_decoder_new(NULL);
	for (t = 0; t < PROTO_TYPE_COUNT; t++) {
		for (z = 0; z < 2; z++) {
			assert_int_equal(proto_frame_encode(t, s.msgs[t], z,
			    &frame, &len), 0);
			assert_int_equal(proto_decoder_feed(d, frame, len,
			    &used, &f, &err), 1);
			assert_int_equal(used, len);
			assert_int_equal(f.type, t);
			assert_int_equal(f.wire_len, len);
			/* The samples are repetitive: only size decides. */
			assert_int_equal(f.compressed, z &&
			    protobuf_c_message_get_packed_size(s.msgs[t]) >=
			    PROTO_COMPRESS_MIN_LEN);
			if (t == PROTO_INDEX)
				assert_true(f.compressed == (z != 0));
			assert_int_equal(proto_msg_decode(&f, NULL, &msg,
			    &err), 0);
			assert_int_equal(msg.type, t);
			la = protobuf_c_message_get_packed_size(s.msgs[t]);
			lb = protobuf_c_message_get_packed_size(msg.u.base);
			assert_int_equal(la, lb);
			a = xmalloc(la);
			b = xmalloc(lb);
			(void)protobuf_c_message_pack(s.msgs[t], a);
			(void)protobuf_c_message_pack(msg.u.base, b);
			assert_memory_equal(a, b, la);
			free(a);
			free(b);
			proto_msg_clear(&msg);
			free(frame);
		}
	}
	/* A message of the wrong type is refused. */
	assert_int_equal(proto_frame_encode(PROTO_INDEX, &s.ping.base, true,
	    &frame, &len), -EINVAL);
	assert_null(frame);
	assert_string_equal(proto_type_name(PROTO_DOWNLOAD_PROGRESS),
	    "DownloadProgress");
	assert_string_equal(proto_type_name(99), "unknown");
	assert_string_equal(proto_state_name(proto_decoder_state(d)),
	    "header-len");
	proto_decoder_free(d);
	samples_free(&s);
}

/* §5.1: small or incompressible bodies go out raw. */
static void
test_proto_compress_rule(void **state)
{
	Shoal__Bep__Response	 resp = SHOAL__BEP__RESPONSE__INIT;
	Shoal__Bep__Close	 c = SHOAL__BEP__CLOSE__INIT;
	uint8_t			 data[1000], *out;
	uint32_t		 x = 12345;
	char			 reason[120];
	size_t			 len, i;

	(void)state;
	for (i = 0; i < sizeof(data); i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	resp.data.data = data;
	resp.data.len = sizeof(data);
	assert_int_equal(proto_frame_encode(PROTO_RESPONSE, &resp.base, true,
	    &out, &len), 0);
	assert_int_equal(out[1], 2);	/* header 08 04 only: no LZ4 */
	free(out);
	/* 124 bytes of 'a': compressible but below 128. */
	memset(reason, 'a', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = '\0';
	c.reason = reason;
	assert_int_equal(protobuf_c_message_get_packed_size(&c.base), 121);
	assert_int_equal(proto_frame_encode(PROTO_CLOSE, &c.base, true, &out,
	    &len), 0);
	assert_int_equal(len, 8 + 121);
	free(out);
}

static void
build_stream(uint8_t **out, size_t *out_len)
{
	uint8_t	*s;
	size_t	 n = 0;

	s = xmalloc(sizeof(a1_frame) + sizeof(a6_frame) + sizeof(ping_frame) +
	    sizeof(unknown_frame) + sizeof(a5_close_bye));
	memcpy(s + n, a1_frame, sizeof(a1_frame));
	n += sizeof(a1_frame);
	memcpy(s + n, unknown_frame, sizeof(unknown_frame));
	n += sizeof(unknown_frame);
	memcpy(s + n, a6_frame, sizeof(a6_frame));
	n += sizeof(a6_frame);
	memcpy(s + n, ping_frame, sizeof(ping_frame));
	n += sizeof(ping_frame);
	memcpy(s + n, a5_close_bye, sizeof(a5_close_bye));
	n += sizeof(a5_close_bye);
	*out = s;
	*out_len = n;
}

static void
got_equal(const struct got *a, const struct got *b)
{
	size_t	i;

	assert_int_equal(a->count, b->count);
	for (i = 0; i < a->count; i++) {
		assert_int_equal(a->type[i], b->type[i]);
		assert_int_equal(a->len[i], b->len[i]);
		assert_int_equal(a->compressed[i], b->compressed[i]);
		assert_memory_equal(a->body[i], b->body[i], a->len[i]);
	}
}

static void
test_proto_split_every_boundary(void **state)
{
	struct proto_decoder	*d;
	struct got		 ref, g;
	uint8_t			*s;
	size_t			 len, i, j;

	(void)state;
	memset(&ref, 0, sizeof(ref));
	memset(&g, 0, sizeof(g));
	build_stream(&s, &len);
	d = proto_decoder_new(NULL);
	assert_int_equal(feed(d, s, len, &ref), 0);
	proto_decoder_free(d);
	assert_int_equal(ref.count, 4);		/* the unknown one is skipped */
	assert_int_equal(ref.type[0], PROTO_CLUSTER_CONFIG);
	assert_int_equal(ref.type[1], PROTO_INDEX);
	assert_int_equal(ref.type[2], PROTO_PING);
	assert_int_equal(ref.type[3], PROTO_CLOSE);
	assert_int_equal(ref.len[1], 1224);

	/* Two pieces, split at every byte. */
	for (i = 0; i <= len; i++) {
		d = proto_decoder_new(NULL);
		assert_int_equal(feed(d, s, i, &g), 0);
		assert_int_equal(feed(d, s + i, len - i, &g), 0);
		assert_int_equal(proto_decoder_skipped(d), 1);
		assert_int_equal(proto_decoder_state(d),
		    PROTO_STATE_HEADER_LEN);
		got_equal(&ref, &g);
		got_free(&g);
		proto_decoder_free(d);
	}
	/* One byte at a time, and in 7-byte pieces. */
	for (j = 1; j <= 7; j += 6) {
		d = proto_decoder_new(NULL);
		for (i = 0; i < len; i += j)
			assert_int_equal(feed(d, s + i, len - i < j ? len - i :
			    j, &g), 0);
		got_equal(&ref, &g);
		got_free(&g);
		proto_decoder_free(d);
	}
	got_free(&ref);
	free(s);
}

static void
test_proto_zero_lengths(void **state)
{
	static const uint8_t	 empty_cc[] = { 0, 0, 0, 0, 0, 0 };
	struct proto_msg	 msg;
	struct proto_err	 err;

	(void)state;
	/* Empty header (type 0, no compression) and empty body. */
	assert_int_equal(decode_one(empty_cc, sizeof(empty_cc), NULL, &msg,
	    &err), 0);
	assert_int_equal(msg.type, PROTO_CLUSTER_CONFIG);
	assert_int_equal(msg.u.cluster_config->n_folders, 0);
	proto_msg_clear(&msg);
	/* Incomplete: no frame, no error. */
	assert_int_equal(decode_one(empty_cc, 5, NULL, &msg, &err), -EAGAIN);
}

static int
feed_err(const uint8_t *buf, size_t len, const struct proto_limits *lim,
    struct proto_err *err)
{
	struct proto_decoder	*d;
	struct proto_frame	 f;
	size_t			 used;
	int			 rc;

	d = proto_decoder_new(lim);
	rc = proto_decoder_feed(d, buf, len, &used, &f, err);
	if (rc == SH_EPROTO) {
		assert_int_equal(proto_decoder_state(d), PROTO_STATE_ERROR);
		/* Sticky: a good frame afterwards is refused too. */
		assert_int_equal(proto_decoder_feed(d, ping_frame,
		    sizeof(ping_frame), &used, &f, NULL), SH_EPROTO);
		assert_int_equal(used, 0);
	}
	proto_decoder_free(d);
	return rc;
}

static void
test_proto_decoder_rejects(void **state)
{
	struct proto_limits	lim = { 1024, 0 };
	struct proto_err	err;
	static const uint8_t	big_hdr[] = { 0x80, 0x00 };
	static const uint8_t	max_hdr[] = { 0x7f, 0xff };
	static const uint8_t	big_msg[] = { 0x00, 0x02, 0x08, 0x06,
	    0x00, 0x00, 0x04, 0x01 };
	static const uint8_t	huge_msg[] = { 0x00, 0x00, 0x1d, 0xcd,
	    0x65, 0x01 };
	static const uint8_t	comp2[] = { 0x00, 0x02, 0x10, 0x02, 0, 0, 0,
	    0 };
	static const uint8_t	short_lz4[] = { 0x00, 0x02, 0x10, 0x01, 0, 0,
	    0, 2, 0, 0 };
	static const uint8_t	ratio[] = { 0x00, 0x02, 0x10, 0x01, 0, 0, 0,
	    6, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00 };
	static const uint8_t	bad_hdr[] = { 0x00, 0x02, 0x0a, 0x05, 0, 0,
	    0, 0 };

	(void)state;
	assert_int_equal(feed_err(big_hdr, sizeof(big_hdr), NULL, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "header length"));
	/* 0x7fff is allowed: it just waits for more. */
	assert_int_equal(feed_err(max_hdr, sizeof(max_hdr), NULL, &err), 0);
	assert_int_equal(feed_err(big_msg, sizeof(big_msg), &lim, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "exceeds limit 1024"));
	/* 500 000 001 is over the wire cap whatever the limit says. */
	lim.max_msg_len = 1000000000;
	assert_int_equal(feed_err(huge_msg, sizeof(huge_msg), &lim, &err),
	    SH_EPROTO);
	/* And 64 MiB + 1 over our default. */
	assert_int_equal(feed_err((const uint8_t *)"\x00\x00\x04\x00\x00\x01",
	    6, NULL, &err), SH_EPROTO);
	assert_int_equal(feed_err(comp2, sizeof(comp2), NULL, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "unknown compression 2"));
	assert_int_equal(feed_err(short_lz4, sizeof(short_lz4), NULL, &err),
	    SH_EPROTO);
	/* 1 MiB claimed from 2 LZ4 bytes: refused before allocating. */
	assert_int_equal(feed_err(ratio, sizeof(ratio), NULL, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "impossible"));
	assert_int_equal(feed_err(bad_hdr, sizeof(bad_hdr), NULL, &err),
	    SH_EPROTO);
}

static size_t
heap_in_use(void)
{
	struct mallinfo2	mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* A peer that announces a big body but sends little costs little. */
static void
test_proto_decoder_grows_with_data(void **state)
{
	static const uint8_t	 hdr[] = { 0x00, 0x02, 0x08, 0x04, 0x03,
	    0xc0, 0x00, 0x00 };	/* Response, M = 60 MiB */
	struct proto_decoder	*d;
	struct proto_frame	 f;
	uint8_t			 junk[100];
	size_t			 before, used;

	(void)state;
	memset(junk, 0, sizeof(junk));
	d = proto_decoder_new(NULL);
	before = heap_in_use();
	assert_int_equal(proto_decoder_feed(d, hdr, sizeof(hdr), &used, &f,
	    NULL), 0);
	assert_int_equal(proto_decoder_feed(d, junk, sizeof(junk), &used, &f,
	    NULL), 0);
	assert_int_equal(proto_decoder_state(d), PROTO_STATE_BODY);
	/* Under ASan mallinfo2() reports nothing; then only states count. */
	if (before != 0)
		assert_true(heap_in_use() - before < 64 * 1024);
	proto_decoder_free(d);
}

/*
 * proto_decoder_span: bytes written where it says are taken in place (a
 * TLS record decrypted into the body); nothing outside one body is offered.
 */
static void
test_proto_decoder_span(void **state)
{
	static const uint8_t	 hdr[] = { 0x00, 0x02, 0x08, 0x04, 0x00,
	    0x00, 0x00, 0x0a };	/* Response, M = 10 */
	struct proto_decoder	*d;
	struct proto_frame	 f;
	uint8_t			*p, *q;
	size_t			 used;

	(void)state;
	d = proto_decoder_new(NULL);
	assert_null(proto_decoder_span(d, 1));	/* header length first */
	assert_int_equal(proto_decoder_feed(d, hdr, sizeof(hdr), &used, &f,
	    NULL), 0);
	assert_int_equal(used, sizeof(hdr));
	assert_null(proto_decoder_span(d, 11));	/* past the body */
	assert_null(proto_decoder_span(d, 0));
	p = proto_decoder_span(d, 4);
	assert_non_null(p);
	memcpy(p, "abcd", 4);
	assert_int_equal(proto_decoder_feed(d, p, 4, &used, &f, NULL), 0);
	assert_int_equal(used, 4);
	q = proto_decoder_span(d, 6);
	assert_ptr_equal(q, p + 4);
	memcpy(q, "efghij", 6);
	assert_int_equal(proto_decoder_feed(d, q, 6, &used, &f, NULL), 1);
	assert_int_equal(used, 6);
	assert_int_equal(f.type, PROTO_RESPONSE);
	assert_int_equal(f.body_len, 10);
	assert_memory_equal(f.body, "abcdefghij", 10);
	/* The frame was handed out: the next bytes are a new header. */
	assert_null(proto_decoder_span(d, 1));
	proto_decoder_free(d);
}

/* A Response frame built around its data is what the encoder makes. */
static void
test_proto_response_frame(void **state)
{
	static const int32_t	 ids[] = { 0, 1, 300, -1, INT32_MAX };
	static const size_t	 lens[] = { 0, 1, 127, 128, 16384, 1 << 20 };
	Shoal__Bep__Response	 r = SHOAL__BEP__RESPONSE__INIT;
	uint8_t			*want, *got, *data, *blk;
	size_t			 wl, gl, i, k, b;

	(void)state;
	blk = xmalloc(1 << 20);
	for (b = 0; b < (1 << 20); b++)
		blk[b] = (uint8_t)(b * 7 + 3);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
			r.id = ids[i];
			r.data.data = blk;
			r.data.len = lens[k];
			assert_int_equal(proto_frame_encode(PROTO_RESPONSE,
			    &r.base, false, &want, &wl), 0);
			assert_int_equal(proto_response_frame(ids[i], lens[k],
			    &got, &gl, &data), 0);
			assert_true(data >= got && data + lens[k] == got + gl);
			memcpy(data, blk, lens[k]);
			assert_int_equal(gl, wl);
			assert_memory_equal(got, want, wl);
			util_bigbuf_free(want);
			util_bigbuf_free(got);
		}
	}
	assert_int_equal(proto_response_frame(1, PROTO_WIRE_MAX_MSG_LEN, &got,
	    &gl, &data), -E2BIG);
	assert_null(got);
	free(blk);
}

static void
test_proto_unknown_type_skipped(void **state)
{
	struct proto_decoder	*d;
	struct got		 g;
	uint8_t			 s[sizeof(unknown_frame) * 2 +
				    sizeof(ping_frame)];

	(void)state;
	memset(&g, 0, sizeof(g));
	memcpy(s, unknown_frame, sizeof(unknown_frame));
	/* An unknown type with LZ4 is skipped unread as well. */
	memcpy(s + sizeof(unknown_frame), "\x00\x04\x08\x63\x10\x01\x00\x00"
	    "\x00\x05\x01\x02\x03\x04\x05", sizeof(unknown_frame) + 2);
	memcpy(s + 2 * sizeof(unknown_frame) + 2, ping_frame,
	    sizeof(ping_frame) - 2);
	d = proto_decoder_new(NULL);
	assert_int_equal(feed(d, s, sizeof(s), &g), 0);
	assert_int_equal(proto_decoder_skipped(d), 2);
	assert_int_equal(g.count, 0);
	assert_int_equal(feed(d, ping_frame + sizeof(ping_frame) - 2, 2, &g),
	    0);
	assert_int_equal(g.count, 1);
	assert_int_equal(g.type[0], PROTO_PING);
	got_free(&g);
	proto_decoder_free(d);
}

/* A valid live file of `size` bytes; caller frees with proto_fileinfo_free. */
static Shoal__Bep__FileInfo *
good_file(const char *name, int64_t size)
{
	struct record		*r;
	Shoal__Bep__FileInfo	*fi;

	r = sample_record(name, size, 0);
	fi = proto_fileinfo_from_record(r);
	record_free(r);
	return fi;
}

static void
test_proto_validate_names(void **state)
{
	static const char *const bad[] = { "..", "../x", "a/../b", "/abs",
	    "a//b", "a/", ".", "", "./a", "a/.", "bad\xff", "\xc0\xaf" };
	static const char *const good[] = { "a", "a/b", "..a", "a..",
	    "\xc3\xa9t\xc3\xa9", ".stfolderx" };
	Shoal__Bep__FileInfo	*fi;
	Shoal__Bep__Request	 req = SHOAL__BEP__REQUEST__INIT;
	struct proto_err	 err;
	char			*orig;
	size_t			 i;

	(void)state;
	fi = good_file("x", 10);
	orig = fi->name;
	req.folder = (char *)"f";
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fi->name = (char *)bad[i];
		assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
		assert_non_null(strstr(err.msg, "not a canonical"));
		req.name = (char *)bad[i];
		assert_int_equal(proto_validate_request(&req, NULL),
		    SH_EPROTO);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		fi->name = (char *)good[i];
		assert_int_equal(proto_validate_fileinfo(fi, &err), 0);
		req.name = (char *)good[i];
		assert_int_equal(proto_validate_request(&req, NULL), 0);
	}
	fi->name = orig;
	proto_fileinfo_free(fi);
}

static void
test_proto_validate_fileinfo_rules(void **state)
{
	Shoal__Bep__FileInfo	*fi;
	Shoal__Bep__BlockInfo	*b;
	Shoal__Bep__Counter	*c;
	struct proto_err	 err;
	struct record		*r;
	uint64_t		 id;
	size_t			 n;

	(void)state;
	fi = good_file("f", 300000);
	assert_int_equal(proto_validate_fileinfo(fi, &err), 0);

	/* Unsorted, then duplicate, version vector. */
	c = fi->version->counters[0];
	id = c->id;
	c->id = UINT64_MAX;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "vector"));
	c->id = fi->version->counters[1]->id;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	c->id = id;

	/* Wrong offset, wrong size, bad hash length. */
	b = fi->blocks[1];
	b->offset++;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	b->offset--;
	b->size--;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	b->size++;
	b->hash.len = 31;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "hash"));
	b->hash.len = 32;
	fi->blocks[2]->size--;		/* last block short of size */
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->blocks[2]->size++;
	fi->size += 131072;		/* one block missing */
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->size -= 131072;
	fi->block_size = 100000;	/* not a valid block size */
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->block_size = 131072;
	assert_int_equal(proto_validate_fileinfo(fi, &err), 0);
	fi->blocks_hash.len = 16;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->blocks_hash.len = 32;
	fi->modified_ns = 1000000000;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->modified_ns = 0;
	fi->type = 9;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);

	/* A directory or a deleted file with blocks. */
	fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_DIRECTORY;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "directory has blocks"));
	fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_FILE;
	fi->deleted = true;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);

	/* A live file without blocks; fine once deleted or invalid. */
	n = fi->n_blocks;
	fi->n_blocks = 0;
	assert_int_equal(proto_validate_fileinfo(fi, &err), 0);
	fi->deleted = false;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "no blocks"));
	fi->invalid = true;
	assert_int_equal(proto_validate_fileinfo(fi, &err), 0);
	fi->invalid = false;
	fi->n_blocks = n;
	proto_fileinfo_free(fi);

	/* Empty file: exactly one zero-size block. */
	fi = good_file("e", 0);
	assert_int_equal(fi->n_blocks, 1);
	assert_int_equal(proto_validate_fileinfo(fi, &err), 0);
	fi->blocks[0]->size = 1;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->blocks[0]->size = 0;

	/* Deprecated symlink type 2 becomes 4; a live one needs a target. */
	fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_SYMLINK_FILE;
	assert_int_equal(proto_validate_fileinfo(fi, &err), SH_EPROTO);
	fi->symlink_target.data = (uint8_t *)xstrdup("../t");
	fi->symlink_target.len = 4;
	assert_int_equal(proto_record_from_fileinfo(fi, &r, &err), 0);
	assert_int_equal(r->type, RECORD_TYPE_SYMLINK);
	assert_string_equal(r->symlink_target, "../t");
	assert_int_equal(r->block_count, 0);
	record_free(r);
	fi->symlink_target.data[1] = '\0';
	assert_int_equal(proto_record_from_fileinfo(fi, &r, &err), SH_EPROTO);
	assert_null(r);
	proto_fileinfo_free(fi);
}

static void
test_proto_validate_request(void **state)
{
	Shoal__Bep__Request	req = SHOAL__BEP__REQUEST__INIT;
	uint8_t			h[32];

	(void)state;
	memset(h, 1, sizeof(h));
	req.folder = (char *)"default";
	req.name = (char *)"a/b";
	req.size = 16 * 1024 * 1024;
	req.hash.data = h;
	req.hash.len = 32;
	assert_int_equal(proto_validate_request(&req, NULL), 0);
	req.size = 16 * 1024 * 1024 + 1;
	assert_int_equal(proto_validate_request(&req, NULL), SH_EPROTO);
	req.size = 0;
	req.offset = -1;
	assert_int_equal(proto_validate_request(&req, NULL), SH_EPROTO);
	req.offset = 0;
	req.hash.len = 31;
	assert_int_equal(proto_validate_request(&req, NULL), SH_EPROTO);
	req.hash.len = 0;
	assert_int_equal(proto_validate_request(&req, NULL), 0);
	req.folder = (char *)"";
	assert_int_equal(proto_validate_request(&req, NULL), SH_EPROTO);
}

static void
test_proto_validate_cluster_config(void **state)
{
	struct samples		 s;
	struct proto_err	 err;
	Shoal__Bep__Folder	**many;
	size_t			 i;

	(void)state;
	samples_init(&s);
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err), 0);
	s.dev[1].id.len = 31;
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err),
	    SH_EPROTO);
	assert_non_null(strstr(err.msg, "device ID"));
	s.dev[1].id.len = 32;
	s.folder.label = (char *)"bad \xff label";
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err),
	    SH_EPROTO);
	s.folder.label = (char *)"";
	s.folder.id = (char *)"";
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err),
	    SH_EPROTO);
	s.folder.id = (char *)"x";
	many = xcalloc(PROTO_MAX_FOLDERS + 1, sizeof(*many));
	for (i = 0; i <= PROTO_MAX_FOLDERS; i++)
		many[i] = &s.folder;
	s.cc.folders = many;
	s.cc.n_folders = PROTO_MAX_FOLDERS;
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err), 0);
	s.cc.n_folders = PROTO_MAX_FOLDERS + 1;
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err),
	    SH_EPROTO);
	free(many);
	s.cc.folders = s.folders;
	s.cc.n_folders = 1;
	s.folder.n_devices = PROTO_MAX_DEVICES + 1;
	assert_int_equal(proto_validate_cluster_config(&s.cc, &err),
	    SH_EPROTO);
	s.folder.n_devices = 2;
	samples_free(&s);
}

static void
test_proto_record_roundtrip(void **state)
{
	struct record		*r, *back;
	Shoal__Bep__FileInfo	*fi, *fi2;
	struct proto_err	 err;
	uint8_t			*buf;
	size_t			 len, i;

	(void)state;
	r = sample_record("dir/file.bin", 1000000, 262144);
	r->local_flags = 0;
	r->inode = 77;
	r->dev = 88;
	fi = proto_fileinfo_from_record(r);
	len = protobuf_c_message_get_packed_size(&fi->base);
	buf = xmalloc(len);
	(void)protobuf_c_message_pack(&fi->base, buf);
	fi2 = shoal__bep__file_info__unpack(NULL, len, buf);
	assert_non_null(fi2);
	assert_int_equal(proto_record_from_fileinfo(fi2, &back, &err), 0);
	assert_string_equal(back->name, r->name);
	assert_int_equal(back->type, r->type);
	assert_int_equal(back->size, r->size);
	assert_int_equal(back->permissions, r->permissions);
	assert_int_equal(back->modified_s, r->modified_s);
	assert_int_equal(back->modified_ns, r->modified_ns);
	assert_true(back->modified_by == r->modified_by);
	assert_int_equal(back->sequence, r->sequence);
	assert_int_equal(back->block_size, r->block_size);
	assert_int_equal(back->version.count, 2);
	assert_int_equal(record_vector_compare(&back->version, &r->version),
	    RECORD_EQUAL);
	assert_int_equal(back->block_count, r->block_count);
	for (i = 0; i < r->block_count; i++) {
		assert_int_equal(back->blocks[i].offset, r->blocks[i].offset);
		assert_int_equal(back->blocks[i].size, r->blocks[i].size);
		assert_memory_equal(back->blocks[i].hash, r->blocks[i].hash,
		    32);
		assert_int_equal(back->blocks[i].weak_hash,
		    r->blocks[i].weak_hash);
	}
	assert_true(back->has_blocks_hash);
	assert_memory_equal(back->blocks_hash, r->blocks_hash, 32);
	/* Local-only fields never travel. */
	assert_int_equal(back->inode, 0);
	assert_int_equal(back->dev, 0);
	assert_false(back->invalid);
	record_free(back);
	shoal__bep__file_info__free_unpacked(fi2, NULL);
	proto_fileinfo_free(fi);
	free(buf);

	/* A receive-only local change goes out invalid with no version. */
	r->local_flags = RECORD_LOCAL_RECEIVEONLY;
	fi = proto_fileinfo_from_record(r);
	assert_true(fi->invalid);
	assert_null(fi->version);
	assert_int_equal(proto_record_from_fileinfo(fi, &back, &err), 0);
	assert_true(back->invalid);
	assert_int_equal(back->version.count, 0);
	assert_int_equal(back->local_flags, 0);
	record_free(back);
	proto_fileinfo_free(fi);
	r->local_flags = RECORD_LOCAL_IGNORED;
	fi = proto_fileinfo_from_record(r);
	assert_true(fi->invalid);
	assert_non_null(fi->version);
	proto_fileinfo_free(fi);
	record_free(r);

	/* Directory and symlink. */
	r = record_new();
	r->name = xstrdup("d");
	r->type = RECORD_TYPE_SYMLINK;
	r->symlink_target = xstrdup("target/x");
	r->no_permissions = true;
	fi = proto_fileinfo_from_record(r);
	assert_int_equal(fi->type, SHOAL__BEP__FILE_TYPE__FILE_TYPE_SYMLINK);
	assert_int_equal(proto_record_from_fileinfo(fi, &back, &err), 0);
	assert_string_equal(back->symlink_target, "target/x");
	assert_true(back->no_permissions);
	record_free(back);
	proto_fileinfo_free(fi);
	free(r->symlink_target);
	r->symlink_target = NULL;
	r->type = RECORD_TYPE_DIRECTORY;
	r->permissions = 040755;
	fi = proto_fileinfo_from_record(r);
	assert_int_equal(fi->permissions, 0755);
	assert_int_equal(proto_record_from_fileinfo(fi, &back, &err), 0);
	assert_int_equal(back->type, RECORD_TYPE_DIRECTORY);
	assert_null(back->symlink_target);
	record_free(back);
	proto_fileinfo_free(fi);
	record_free(r);
}

/* A body of minimal empty FileInfos costs ~100x in memory: capped. */
static void
test_proto_decode_budget(void **state)
{
	struct proto_frame	 f;
	struct proto_msg	 msg;
	struct proto_err	 err;
	struct proto_limits	 lim = { 0, 0 };
	uint8_t			*body;
	size_t			 n = 200000, i;

	(void)state;
	body = xmalloc(n);
	for (i = 0; i < n; i += 2) {
		body[i] = 0x12;		/* Index.files, length 0 */
		body[i + 1] = 0x00;
	}
	memset(&f, 0, sizeof(f));
	f.type = PROTO_INDEX;
	f.body = body;
	f.body_len = n;
	assert_int_equal(proto_msg_decode(&f, &lim, &msg, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "too large"));
	assert_null(msg.u.base);
	/* The same body as a few files fits, then fails validation. */
	f.body_len = 20;
	assert_int_equal(proto_msg_decode(&f, &lim, &msg, &err), SH_EPROTO);
	assert_non_null(strstr(err.msg, "folder"));
	free(body);
}

static void
test_proto_close_sanitized(void **state)
{
	struct proto_msg	 msg;
	struct proto_err	 err;
	uint8_t			*out;
	char			*big;
	size_t			 len;

	(void)state;
	assert_int_equal(proto_close_encode("bad \xff byte \xc3\xa9", &out,
	    &len), 0);
	assert_int_equal(decode_one(out, len, NULL, &msg, &err), 0);
	assert_string_equal(msg.u.close->reason, "bad ? byte \xc3\xa9");
	proto_msg_clear(&msg);
	free(out);
	big = xmalloc(3000);
	memset(big, 'r', 2999);
	big[2999] = '\0';
	assert_int_equal(proto_close_encode(big, &out, &len), 0);
	assert_int_equal(decode_one(out, len, NULL, &msg, &err), 0);
	assert_int_equal(strlen(msg.u.close->reason), 1024);
	proto_msg_clear(&msg);
	free(out);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proto_hello_syncthing_bytes),
		cmocka_unit_test(test_proto_hello_roundtrip),
		cmocka_unit_test(test_proto_hello_rejects),
		cmocka_unit_test(test_proto_cluster_config_capture),
		cmocka_unit_test(test_proto_lz4_literal_block),
		cmocka_unit_test(test_proto_index_capture),
		cmocka_unit_test(test_proto_block_transfer_captures),
		cmocka_unit_test(test_proto_roundtrip_all_types),
		cmocka_unit_test(test_proto_compress_rule),
		cmocka_unit_test(test_proto_split_every_boundary),
		cmocka_unit_test(test_proto_zero_lengths),
		cmocka_unit_test(test_proto_decoder_rejects),
		cmocka_unit_test(test_proto_decoder_grows_with_data),
		cmocka_unit_test(test_proto_decoder_span),
		cmocka_unit_test(test_proto_response_frame),
		cmocka_unit_test(test_proto_unknown_type_skipped),
		cmocka_unit_test(test_proto_validate_names),
		cmocka_unit_test(test_proto_validate_fileinfo_rules),
		cmocka_unit_test(test_proto_validate_request),
		cmocka_unit_test(test_proto_validate_cluster_config),
		cmocka_unit_test(test_proto_record_roundtrip),
		cmocka_unit_test(test_proto_decode_budget),
		cmocka_unit_test(test_proto_close_sanitized),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}

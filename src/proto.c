/* SPDX-License-Identifier: MIT */
/*
 * The BEP v1 message layer (bep-brief §4, §5, §7, §10): Hello, framing,
 * LZ4, typed decoding with validation, and FileInfo <-> record. It sits
 * between the TLS byte stream (conn) and the model; it owns no socket and
 * no global state.
 *
 * Memory is bounded wherever a peer picks a length:
 *  (1) the header length is < 0x8000 and the message length M and the
 *      uncompressed length U are capped by proto_limits.max_msg_len;
 *  (2) the decoder's buffer grows with the bytes that have arrived, never
 *      ahead of them, and an unknown type's body is counted, not stored.
 *      The one exception is a Response no longer than the biggest block
 *      plus its few fields: its buffer is taken whole at once from
 *      util_bigbuf (pages untouched until data arrives cost nothing, and
 *      a reused buffer costs no page faults);
 *  (3) an LZ4 body is only inflated once it has arrived whole, and U must be
 *      reachable from M at LZ4's best ratio, so a tiny body cannot ask for a
 *      large buffer;
 *  (4) protobuf-c unpacks through a counting allocator, because a minimal
 *      encoding of an empty sub-message is two bytes on the wire but a few
 *      hundred in memory: 16 x the body (plus 64 KiB) and at most
 *      max_decoded_len may be allocated before the unpack fails;
 *  (5) counts inside a record are capped by shoal/record.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <protobuf-c/protobuf-c.h>

#include "bep.pb-c.h"
#include "shoal/log.h"
#include "shoal/proto.h"
#include "shoal/record.h"
#include "shoal/util.h"

#define HELLO_PREFIX_LEN	6	/* magic + uint16 length */
#define DECODED_FACTOR		16
#define DECODED_SLACK		(64u * 1024)
#define LZ4_MAX_RATIO		255	/* LZ4 output per input byte, at most */
/* A Response body: the block plus id, code and field tags (note 2). */
#define RESPONSE_WHOLE_MAX	(RECORD_MAX_BLOCK_SIZE + 64)
/* Decoder buffers larger than this are freed after each frame. */
#define KEEP_BUF_LEN		(1024u * 1024)
#define CLOSE_REASON_MAX	1024
#define NS_PER_S		1000000000

struct proto_decoder {
	enum proto_state state;
	size_t		 max_msg_len;
	uint8_t		 len_buf[4];	/* a length being read */
	size_t		 len_have;
	size_t		 want;		/* H or M of the part being read */
	size_t		 skip_left;	/* SKIP: body bytes still to discard */
	uint8_t		*buf;		/* owned; header, then body */
	size_t		 buf_len;
	size_t		 buf_cap;
	uint8_t		*out;		/* owned; decompressed body */
	size_t		 out_cap;
	int		 type;		/* Header.type of this frame */
	bool		 lz4;
	bool		 returned;	/* a frame borrowed from us is out */
	size_t		 header_len;
	uint64_t	 skipped;
	char		 error[sizeof(((struct proto_err *)0)->msg)];
};

/* A protobuf-c allocator that refuses to go past a byte budget (note 4). */
struct budget {
	size_t	used;
	size_t	max;
};

static const ProtobufCMessageDescriptor *const type_desc[PROTO_TYPE_COUNT] = {
	[PROTO_CLUSTER_CONFIG] = &shoal__bep__cluster_config__descriptor,
	[PROTO_INDEX] = &shoal__bep__index__descriptor,
	[PROTO_INDEX_UPDATE] = &shoal__bep__index_update__descriptor,
	[PROTO_REQUEST] = &shoal__bep__request__descriptor,
	[PROTO_RESPONSE] = &shoal__bep__response__descriptor,
	[PROTO_DOWNLOAD_PROGRESS] = &shoal__bep__download_progress__descriptor,
	[PROTO_PING] = &shoal__bep__ping__descriptor,
	[PROTO_CLOSE] = &shoal__bep__close__descriptor,
};

static const char *const type_names[PROTO_TYPE_COUNT] = {
	[PROTO_CLUSTER_CONFIG] = "ClusterConfig",
	[PROTO_INDEX] = "Index",
	[PROTO_INDEX_UPDATE] = "IndexUpdate",
	[PROTO_REQUEST] = "Request",
	[PROTO_RESPONSE] = "Response",
	[PROTO_DOWNLOAD_PROGRESS] = "DownloadProgress",
	[PROTO_PING] = "Ping",
	[PROTO_CLOSE] = "Close",
};

static void	seterr(struct proto_err *err, const char *fmt, ...)
		    SH_PRINTF(2, 3);

static void
seterr(struct proto_err *err, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* Escape a peer string for an error message. */
static const char *
esc(const char *s, char *buf, size_t size)
{
	return log_escape(s == NULL ? "" : s, buf, size);
}

const char *
proto_type_name(int type)
{
	if (type < 0 || type >= PROTO_TYPE_COUNT)
		return "unknown";
	return type_names[type];
}

const char *
proto_state_name(enum proto_state state)
{
	switch (state) {
	case PROTO_STATE_HEADER_LEN:
		return "header-len";
	case PROTO_STATE_HEADER:
		return "header";
	case PROTO_STATE_MSG_LEN:
		return "msg-len";
	case PROTO_STATE_BODY:
		return "body";
	case PROTO_STATE_SKIP:
		return "skip";
	case PROTO_STATE_ERROR:
		return "error";
	}
	return "unknown";
}

/* Byte order helpers. */

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * Length of the valid UTF-8 sequence at s, or 0. Rejects overlong forms,
 * surrogates and code points above U+10FFFF, as Go's utf8.Valid does.
 */
static size_t
utf8_seq(const uint8_t *s, size_t len)
{
	uint8_t	c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (len >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;
		if (c == 0xed && s[1] >= 0xa0)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (len < 4 || (s[1] & 0xc0) != 0x80 ||
		    (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

static bool
utf8_valid(const char *s, size_t len)
{
	const uint8_t	*p = (const uint8_t *)s;
	size_t		 i, n;

	for (i = 0; i < len; i += n) {
		n = utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
	}
	return true;
}

/* A peer string that we keep or compare: valid UTF-8, capped. */
static int
check_string(const char *what, const char *s, bool nonempty,
    struct proto_err *err)
{
	size_t	len;
	char	e[64];

	if (s == NULL)
		s = "";
	len = strnlen(s, PROTO_MAX_STRING_LEN + 1);
	if (len > PROTO_MAX_STRING_LEN) {
		seterr(err, "%s longer than %d bytes", what,
		    PROTO_MAX_STRING_LEN);
		return SH_EPROTO;
	}
	if (nonempty && len == 0) {
		seterr(err, "%s is empty", what);
		return SH_EPROTO;
	}
	if (!utf8_valid(s, len)) {
		seterr(err, "%s \"%s\" is not valid UTF-8", what,
		    esc(s, e, sizeof(e)));
		return SH_EPROTO;
	}
	return 0;
}

static int
check_name(const char *what, const char *name, struct proto_err *err)
{
	char	e[96];

	if (name == NULL)
		name = "";
	if (record_name_validate(name, strlen(name)) != 0) {
		seterr(err, "%s \"%s\" is not a canonical relative name", what,
		    esc(name, e, sizeof(e)));
		return SH_EPROTO;
	}
	return 0;
}

static bool
block_size_valid(int32_t bs)
{
	int32_t	v;

	if (bs == 0)
		return true;
	for (v = RECORD_MIN_BLOCK_SIZE; v <= RECORD_MAX_BLOCK_SIZE; v *= 2)
		if (bs == v)
			return true;
	return false;
}

/* Protobuf-c allocation under a budget (note 4). */

static void *
budget_alloc(void *data, size_t size)
{
	struct budget	*b = data;

	if (size > b->max - b->used)
		return NULL;
	b->used += size;
	/* Big ones are a Response's block: reused, and aligned so that
	 * the puller can write them with O_DIRECT as they are. */
	return util_bigbuf_alloc(size);
}

static void
budget_free(void *data, void *p)
{
	(void)data;
	util_bigbuf_free(p);
}

static size_t
decoded_budget(size_t len, size_t max_decoded)
{
	size_t	b;

	if (len > (SIZE_MAX - DECODED_SLACK) / DECODED_FACTOR)
		return max_decoded;
	b = len * DECODED_FACTOR + DECODED_SLACK;
	return b < max_decoded ? b : max_decoded;
}

/*
 * Unpack with the counting allocator. What it returns is freed with
 * protobuf_c_message_free_unpacked(m, NULL): every block came from
 * xmalloc or util_bigbuf_alloc, which the default allocator's free()
 * releases.
 */
static ProtobufCMessage *
unpack_bounded(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
    size_t len, size_t max_decoded)
{
	struct budget		b;
	ProtobufCAllocator	a;

	b.used = 0;
	b.max = decoded_budget(len, max_decoded);
	a.alloc = budget_alloc;
	a.free = budget_free;
	a.allocator_data = &b;
	return protobuf_c_message_unpack(desc, &a, len, data);
}

static void
limits_get(const struct proto_limits *l, size_t *max_msg, size_t *max_dec)
{
	*max_msg = PROTO_DEFAULT_MAX_MSG_LEN;
	*max_dec = PROTO_DEFAULT_MAX_DECODED_LEN;
	if (l != NULL && l->max_msg_len != 0)
		*max_msg = l->max_msg_len;
	if (l != NULL && l->max_decoded_len != 0)
		*max_dec = l->max_decoded_len;
	/* Syncthing's own cap is a wire rule; we never accept more. */
	if (*max_msg > PROTO_WIRE_MAX_MSG_LEN)
		*max_msg = PROTO_WIRE_MAX_MSG_LEN;
}

/* Hello */

int
proto_hello_encode(const char *device_name, const char *client_name,
    const char *client_version, uint8_t **out, size_t *out_len)
{
	Shoal__Bep__Hello	 h = SHOAL__BEP__HELLO__INIT;
	uint8_t			*buf = NULL;
	size_t			 n;
	int			 rc;

	*out = NULL;
	*out_len = 0;
	/* protobuf-c takes char *; it only reads them when packing. */
	h.device_name = (char *)(device_name != NULL ? device_name : "");
	h.client_name = (char *)(client_name != NULL ? client_name : "");
	h.client_version = (char *)(client_version != NULL ?
	    client_version : "");
	n = shoal__bep__hello__get_packed_size(&h);
	if (n > PROTO_HELLO_MAX_LEN) {
		rc = -E2BIG;
		goto out;
	}
	buf = xmalloc(HELLO_PREFIX_LEN + n);
	util_put_be32(buf, PROTO_HELLO_MAGIC);
	put_be16(buf + 4, (uint16_t)n);
	(void)shoal__bep__hello__pack(&h, buf + HELLO_PREFIX_LEN);
	*out = buf;
	*out_len = HELLO_PREFIX_LEN + n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

int
proto_hello_decode(const uint8_t *buf, size_t len, size_t *consumed,
    struct proto_hello *out, struct proto_err *err)
{
	Shoal__Bep__Hello	*h;
	uint32_t		 magic;
	size_t			 n;

	*consumed = 0;
	memset(out, 0, sizeof(*out));
	if (len < 4)
		return -EAGAIN;
	magic = util_get_be32(buf);
	if (magic != PROTO_HELLO_MAGIC) {
		/* The magics of BEP before v1 (bep-brief §4). */
		if (magic == 0x00010001u || magic == 0x00010000u ||
		    magic == 0x9F79BC40u)
			seterr(err, "remote speaks an older protocol "
			    "(magic 0x%08x)", magic);
		else
			seterr(err, "remote speaks an unknown (newer?) "
			    "protocol (magic 0x%08x)", magic);
		return SH_EPROTO;
	}
	if (len < HELLO_PREFIX_LEN)
		return -EAGAIN;
	n = get_be16(buf + 4);
	if (n > PROTO_HELLO_MAX_LEN) {
		seterr(err, "hello length %zu exceeds %d", n,
		    PROTO_HELLO_MAX_LEN);
		return SH_EPROTO;
	}
	if (len - HELLO_PREFIX_LEN < n)
		return -EAGAIN;
	h = (Shoal__Bep__Hello *)unpack_bounded(&shoal__bep__hello__descriptor,
	    buf + HELLO_PREFIX_LEN, n, PROTO_DEFAULT_MAX_DECODED_LEN);
	if (h == NULL) {
		seterr(err, "hello of %zu bytes does not parse", n);
		return SH_EPROTO;
	}
	out->device_name = xstrdup(h->device_name);
	out->client_name = xstrdup(h->client_name);
	out->client_version = xstrdup(h->client_version);
	out->num_connections = h->num_connections;
	out->timestamp = h->timestamp;
	shoal__bep__hello__free_unpacked(h, NULL);
	*consumed = HELLO_PREFIX_LEN + n;
	return 0;
}

void
proto_hello_clear(struct proto_hello *h)
{
	free(h->device_name);
	free(h->client_name);
	free(h->client_version);
	memset(h, 0, sizeof(*h));
}

/* Frame decoder */

struct proto_decoder *
proto_decoder_new(const struct proto_limits *limits)
{
	struct proto_decoder	*d;
	size_t			 max_dec;

	d = xcalloc(1, sizeof(*d));
	limits_get(limits, &d->max_msg_len, &max_dec);
	d->state = PROTO_STATE_HEADER_LEN;
	return d;
}

void
proto_decoder_free(struct proto_decoder *d)
{
	if (d == NULL)
		return;
	util_bigbuf_free(d->buf);
	free(d->out);
	free(d);
}

enum proto_state
proto_decoder_state(const struct proto_decoder *d)
{
	return d->state;
}

uint64_t
proto_decoder_skipped(const struct proto_decoder *d)
{
	return d->skipped;
}

static int	dec_fail(struct proto_decoder *d, struct proto_err *err,
		    const char *fmt, ...) SH_PRINTF(3, 4);

/* Enter the sticky ERROR state. */
static int
dec_fail(struct proto_decoder *d, struct proto_err *err, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	d->state = PROTO_STATE_ERROR;
	seterr(err, "%s", d->error);
	return SH_EPROTO;
}

/* Gather a 2- or 4-byte length; true once all `n` bytes are in. */
static bool
take_len(struct proto_decoder *d, size_t n, const uint8_t *buf, size_t len,
    size_t *off)
{
	size_t	k;

	k = n - d->len_have;
	if (k > len - *off)
		k = len - *off;
	memcpy(d->len_buf + d->len_have, buf + *off, k);
	d->len_have += k;
	*off += k;
	return d->len_have == n;
}

/* Room in d->buf for `need` bytes (<= d->want). The buffer doubles as
 * data arrives but never past d->want (note 2). */
static void
buf_room(struct proto_decoder *d, size_t need)
{
	size_t	cap;

	if (need <= d->buf_cap)
		return;
	cap = d->buf_cap < 4096 ? 4096 : d->buf_cap * 2;
	if (cap > d->want)
		cap = d->want;
	if (cap < need)
		cap = need;
	d->buf = xrealloc(d->buf, cap);
	d->buf_cap = cap;
}

/* Append to d->buf up to d->want bytes; true once they are all in. Bytes
 * already in place (see proto_decoder_span) are not copied. */
static bool
take_buf(struct proto_decoder *d, const uint8_t *buf, size_t len,
    size_t *off)
{
	size_t	k;

	k = d->want - d->buf_len;
	if (k > len - *off)
		k = len - *off;
	buf_room(d, d->buf_len + k);
	if (k > 0) {
		if (buf + *off != d->buf + d->buf_len)
			memcpy(d->buf + d->buf_len, buf + *off, k);
		d->buf_len += k;
		*off += k;
	}
	return d->buf_len == d->want;
}

uint8_t *
proto_decoder_span(struct proto_decoder *d, size_t len)
{
	if (d->returned || d->state != PROTO_STATE_BODY || len == 0 ||
	    d->want - d->buf_len < len)
		return NULL;
	buf_room(d, d->buf_len + len);
	return d->buf + d->buf_len;
}

/* A frame was handed out last time: reclaim its buffers. */
static void
dec_release(struct proto_decoder *d)
{
	d->returned = false;
	d->buf_len = 0;
	if (d->buf_cap > KEEP_BUF_LEN) {
		util_bigbuf_free(d->buf);
		d->buf = NULL;
		d->buf_cap = 0;
	}
	if (d->out_cap > KEEP_BUF_LEN) {
		free(d->out);
		d->out = NULL;
		d->out_cap = 0;
	}
}

static int
dec_header(struct proto_decoder *d, struct proto_err *err)
{
	Shoal__Bep__Header	*h;
	int			 comp;

	h = (Shoal__Bep__Header *)unpack_bounded(
	    &shoal__bep__header__descriptor, d->buf, d->buf_len,
	    PROTO_DEFAULT_MAX_DECODED_LEN);
	if (h == NULL)
		return dec_fail(d, err, "header of %zu bytes does not parse",
		    d->buf_len);
	d->type = (int)h->type;
	comp = (int)h->compression;
	shoal__bep__header__free_unpacked(h, NULL);
	/* Unknown compression is fatal, unknown type is not (§5). */
	if (comp != SHOAL__BEP__MSG_COMPRESSION__MSG_COMPRESSION_NONE &&
	    comp != SHOAL__BEP__MSG_COMPRESSION__MSG_COMPRESSION_LZ4)
		return dec_fail(d, err, "unknown compression %d", comp);
	d->lz4 = comp == SHOAL__BEP__MSG_COMPRESSION__MSG_COMPRESSION_LZ4;
	d->buf_len = 0;
	return 0;
}

/* Inflate d->buf into d->out (§5.1); 0 or SH_EPROTO. */
static int
dec_lz4(struct proto_decoder *d, struct proto_err *err, size_t *out_len)
{
	uint32_t	u;
	size_t		m;
	int		r;

	m = d->buf_len;
	if (m < 4)
		return dec_fail(d, err, "LZ4 body of %zu bytes has no length",
		    m);
	u = util_get_be32(d->buf);
	m -= 4;
	if (u > d->max_msg_len)
		return dec_fail(d, err, "uncompressed length %u exceeds "
		    "limit %zu", u, d->max_msg_len);
	if ((uint64_t)u > (uint64_t)m * LZ4_MAX_RATIO + 64)
		return dec_fail(d, err, "uncompressed length %u impossible "
		    "from %zu LZ4 bytes", u, m);
	if (u == 0 && m == 0) {
		*out_len = 0;
		return 0;
	}
	if (d->out_cap < u || d->out == NULL) {
		free(d->out);
		d->out = xmalloc(u);
		d->out_cap = u;
	}
	r = LZ4_decompress_safe((const char *)d->buf + 4, (char *)d->out,
	    (int)m, (int)u);
	if (r < 0 || (uint32_t)r != u)
		return dec_fail(d, err, "LZ4 block does not decompress to "
		    "%u bytes", u);
	*out_len = u;
	return 0;
}

static int
dec_body(struct proto_decoder *d, struct proto_frame *frame,
    struct proto_err *err)
{
	size_t	n = 0;
	int	rc;

	memset(frame, 0, sizeof(*frame));
	frame->type = (enum proto_type)d->type;
	frame->compressed = d->lz4;
	frame->wire_len = 2 + d->header_len + 4 + d->buf_len;
	if (d->lz4) {
		rc = dec_lz4(d, err, &n);
		if (rc != 0)
			return rc;
		frame->body = n > 0 ? d->out : NULL;
		frame->body_len = n;
	} else {
		frame->body = d->buf_len > 0 ? d->buf : NULL;
		frame->body_len = d->buf_len;
	}
	d->returned = true;
	d->state = PROTO_STATE_HEADER_LEN;
	return 1;
}

int
proto_decoder_feed(struct proto_decoder *d, const uint8_t *buf, size_t len,
    size_t *consumed, struct proto_frame *frame, struct proto_err *err)
{
	size_t		off = 0, k;
	uint32_t	m;
	int		rc;

	*consumed = 0;
	if (d->state == PROTO_STATE_ERROR) {
		seterr(err, "%s", d->error);
		return SH_EPROTO;
	}
	if (d->returned)
		dec_release(d);
	for (;;) {
		switch (d->state) {
		case PROTO_STATE_HEADER_LEN:
			if (!take_len(d, 2, buf, len, &off))
				goto more;
			d->len_have = 0;
			d->want = get_be16(d->len_buf);
			if (d->want > PROTO_HEADER_MAX_LEN) {
				rc = dec_fail(d, err, "header length %zu "
				    "exceeds %d", d->want,
				    PROTO_HEADER_MAX_LEN);
				goto out;
			}
			d->header_len = d->want;
			d->buf_len = 0;
			d->state = PROTO_STATE_HEADER;
			break;
		case PROTO_STATE_HEADER:
			if (!take_buf(d, buf, len, &off))
				goto more;
			rc = dec_header(d, err);
			if (rc != 0)
				goto out;
			d->state = PROTO_STATE_MSG_LEN;
			break;
		case PROTO_STATE_MSG_LEN:
			if (!take_len(d, 4, buf, len, &off))
				goto more;
			d->len_have = 0;
			m = util_get_be32(d->len_buf);
			if (m > d->max_msg_len) {
				rc = dec_fail(d, err, "%s message length %u "
				    "exceeds limit %zu",
				    proto_type_name(d->type), m,
				    d->max_msg_len);
				goto out;
			}
			if (d->type < 0 || d->type >= PROTO_TYPE_COUNT) {
				/* Forward compatibility: skip it (§5). */
				d->skip_left = m;
				d->state = PROTO_STATE_SKIP;
				break;
			}
			d->want = m;
			d->buf_len = 0;
			if (d->type == PROTO_RESPONSE && m > d->buf_cap &&
			    m >= UTIL_BIGBUF_MIN && m <= RESPONSE_WHOLE_MAX) {
				/* Note 2's exception. */
				util_bigbuf_free(d->buf);
				d->buf = util_bigbuf_alloc(m);
				d->buf_cap = m;
			}
			d->state = PROTO_STATE_BODY;
			break;
		case PROTO_STATE_BODY:
			if (!take_buf(d, buf, len, &off))
				goto more;
			rc = dec_body(d, frame, err);
			goto out;
		case PROTO_STATE_SKIP:
			k = len - off;
			if (k > d->skip_left)
				k = d->skip_left;
			off += k;
			d->skip_left -= k;
			if (d->skip_left > 0)
				goto more;
			d->skipped++;
			d->state = PROTO_STATE_HEADER_LEN;
			break;
		case PROTO_STATE_ERROR:
			rc = SH_EPROTO;
			goto out;
		}
	}
more:
	rc = 0;
out:
	*consumed = off;
	return rc;
}

/* Validation */

/* Copy a protobuf Vector into a record_vector and validate it. */
static int
vector_from_pb(const Shoal__Bep__Vector *pv, struct record_vector *v,
    struct proto_err *err)
{
	size_t	i, n;

	v->counters = NULL;
	v->count = 0;
	n = pv != NULL ? pv->n_counters : 0;
	if (n > RECORD_MAX_COUNTERS) {
		seterr(err, "version vector has %zu counters (max %d)", n,
		    RECORD_MAX_COUNTERS);
		return SH_EPROTO;
	}
	if (n == 0)
		return 0;
	v->counters = xcalloc(n, sizeof(*v->counters));
	v->count = n;
	for (i = 0; i < n; i++) {
		v->counters[i].id = pv->counters[i]->id;
		v->counters[i].value = pv->counters[i]->value;
	}
	if (record_vector_validate(v) != 0) {
		record_vector_free(v);
		seterr(err, "version vector not sorted by unique id");
		return SH_EPROTO;
	}
	return 0;
}

static int
check_vector(const Shoal__Bep__Vector *pv, struct proto_err *err)
{
	struct record_vector	v;
	int			rc;

	rc = vector_from_pb(pv, &v, err);
	if (rc == 0)
		record_vector_free(&v);
	return rc;
}

/* Block list layout of §10.2 / §17.11-12. */
static int
check_blocks(const Shoal__Bep__FileInfo *fi, const char *name,
    struct proto_err *err)
{
	const Shoal__Bep__BlockInfo	*b;
	int64_t				 bs, expect, off, sz;
	size_t				 i;
	char				 e[64];

	bs = fi->block_size == 0 ? RECORD_MIN_BLOCK_SIZE : fi->block_size;
	if (fi->size > bs * (int64_t)RECORD_MAX_BLOCKS) {
		seterr(err, "\"%s\": size %lld needs more than %u blocks",
		    esc(name, e, sizeof(e)), (long long)fi->size,
		    RECORD_MAX_BLOCKS);
		return SH_EPROTO;
	}
	expect = fi->size == 0 ? 1 : (fi->size + bs - 1) / bs;
	if ((int64_t)fi->n_blocks != expect) {
		seterr(err, "\"%s\": %zu blocks for size %lld (want %lld)",
		    esc(name, e, sizeof(e)), fi->n_blocks,
		    (long long)fi->size, (long long)expect);
		return SH_EPROTO;
	}
	for (i = 0; i < fi->n_blocks; i++) {
		b = fi->blocks[i];
		off = (int64_t)i * bs;
		sz = fi->size - off < bs ? fi->size - off : bs;
		if (b->offset != off || b->size != sz) {
			seterr(err, "\"%s\": block %zu at %lld size %d, want "
			    "%lld size %lld", esc(name, e, sizeof(e)), i,
			    (long long)b->offset, b->size, (long long)off,
			    (long long)sz);
			return SH_EPROTO;
		}
		if (b->hash.len != RECORD_HASH_LEN) {
			seterr(err, "\"%s\": block %zu hash is %zu bytes",
			    esc(name, e, sizeof(e)), i, b->hash.len);
			return SH_EPROTO;
		}
	}
	return 0;
}

int
proto_validate_fileinfo(const struct Shoal__Bep__FileInfo *fi,
    struct proto_err *err)
{
	const char	*name;
	bool		 live;
	int		 rc;
	char		 e[64];

	name = fi->name != NULL ? fi->name : "";
	rc = check_name("file name", name, err);
	if (rc != 0)
		goto out;
	rc = SH_EPROTO;
	if (fi->type < SHOAL__BEP__FILE_TYPE__FILE_TYPE_FILE ||
	    fi->type > SHOAL__BEP__FILE_TYPE__FILE_TYPE_SYMLINK) {
		seterr(err, "\"%s\": unknown file type %d",
		    esc(name, e, sizeof(e)), (int)fi->type);
		goto out;
	}
	if (fi->size < 0 || fi->sequence < 0 || fi->modified_ns < 0 ||
	    fi->modified_ns >= NS_PER_S) {
		seterr(err, "\"%s\": negative size or sequence, or bad "
		    "modified_ns", esc(name, e, sizeof(e)));
		goto out;
	}
	if (!block_size_valid(fi->block_size)) {
		seterr(err, "\"%s\": invalid block size %d",
		    esc(name, e, sizeof(e)), fi->block_size);
		goto out;
	}
	if (fi->blocks_hash.len != 0 &&
	    fi->blocks_hash.len != RECORD_HASH_LEN) {
		seterr(err, "\"%s\": blocks_hash is %zu bytes",
		    esc(name, e, sizeof(e)), fi->blocks_hash.len);
		goto out;
	}
	rc = check_vector(fi->version, err);
	if (rc != 0)
		goto out;
	rc = SH_EPROTO;
	live = !fi->deleted && !fi->invalid;
	switch (fi->type) {
	case SHOAL__BEP__FILE_TYPE__FILE_TYPE_FILE:
		if (fi->deleted && fi->n_blocks > 0) {
			seterr(err, "\"%s\": deleted file has blocks",
			    esc(name, e, sizeof(e)));
			goto out;
		}
		if (live && fi->n_blocks == 0) {
			seterr(err, "\"%s\": file has no blocks",
			    esc(name, e, sizeof(e)));
			goto out;
		}
		if (fi->n_blocks > 0) {
			rc = check_blocks(fi, name, err);
			if (rc != 0)
				goto out;
		}
		break;
	case SHOAL__BEP__FILE_TYPE__FILE_TYPE_DIRECTORY:
		if (fi->n_blocks > 0) {
			seterr(err, "\"%s\": directory has blocks",
			    esc(name, e, sizeof(e)));
			goto out;
		}
		break;
	default:
		/* Symlinks. Blocks, if any, are ignored (2.1.2+ rejects). */
		if (fi->symlink_target.len > RECORD_MAX_NAME_LEN ||
		    (fi->symlink_target.len > 0 &&
		    memchr(fi->symlink_target.data, '\0',
		    fi->symlink_target.len) != NULL)) {
			seterr(err, "\"%s\": bad symlink target",
			    esc(name, e, sizeof(e)));
			goto out;
		}
		if (live && fi->symlink_target.len == 0) {
			seterr(err, "\"%s\": symlink without target",
			    esc(name, e, sizeof(e)));
			goto out;
		}
		break;
	}
	rc = 0;
out:
	return rc;
}

int
proto_validate_request(const struct Shoal__Bep__Request *r,
    struct proto_err *err)
{
	int	rc;

	rc = check_string("request folder", r->folder, true, err);
	if (rc != 0)
		return rc;
	rc = check_name("request name", r->name, err);
	if (rc != 0)
		return rc;
	if (r->offset < 0 || r->size < 0 || r->size > PROTO_MAX_BLOCK_LEN ||
	    r->block_no < 0) {
		seterr(err, "request %d: offset %lld size %d block %d out of "
		    "range", r->id, (long long)r->offset, r->size,
		    r->block_no);
		return SH_EPROTO;
	}
	if (r->hash.len != 0 && r->hash.len != RECORD_HASH_LEN) {
		seterr(err, "request %d: hash is %zu bytes", r->id,
		    r->hash.len);
		return SH_EPROTO;
	}
	return 0;
}

static int
check_device(const Shoal__Bep__Device *dev, struct proto_err *err)
{
	size_t	i;
	int	rc;

	if (dev->id.len != PROTO_DEVICE_ID_LEN) {
		seterr(err, "device ID of %zu bytes", dev->id.len);
		return SH_EPROTO;
	}
	if (dev->n_addresses > PROTO_MAX_ADDRESSES) {
		seterr(err, "device with %zu addresses (max %d)",
		    dev->n_addresses, PROTO_MAX_ADDRESSES);
		return SH_EPROTO;
	}
	rc = check_string("device name", dev->name, false, err);
	if (rc != 0)
		return rc;
	rc = check_string("device cert name", dev->cert_name, false, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < dev->n_addresses; i++) {
		rc = check_string("device address", dev->addresses[i], false,
		    err);
		if (rc != 0)
			return rc;
	}
	if (dev->max_sequence < 0) {
		seterr(err, "device max_sequence %lld",
		    (long long)dev->max_sequence);
		return SH_EPROTO;
	}
	return 0;
}

int
proto_validate_cluster_config(const struct Shoal__Bep__ClusterConfig *cc,
    struct proto_err *err)
{
	const Shoal__Bep__Folder	*f;
	size_t				 i, j;
	int				 rc;

	if (cc->n_folders > PROTO_MAX_FOLDERS) {
		seterr(err, "cluster config with %zu folders (max %d)",
		    cc->n_folders, PROTO_MAX_FOLDERS);
		return SH_EPROTO;
	}
	for (i = 0; i < cc->n_folders; i++) {
		f = cc->folders[i];
		rc = check_string("folder ID", f->id, true, err);
		if (rc != 0)
			return rc;
		rc = check_string("folder label", f->label, false, err);
		if (rc != 0)
			return rc;
		if (f->n_devices > PROTO_MAX_DEVICES) {
			seterr(err, "folder with %zu devices (max %d)",
			    f->n_devices, PROTO_MAX_DEVICES);
			return SH_EPROTO;
		}
		for (j = 0; j < f->n_devices; j++) {
			rc = check_device(f->devices[j], err);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

static int
check_files(const char *folder, Shoal__Bep__FileInfo *const *files, size_t n,
    struct proto_err *err)
{
	size_t	i;
	int	rc;

	rc = check_string("index folder", folder, true, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < n; i++) {
		rc = proto_validate_fileinfo(files[i], err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
check_progress(const Shoal__Bep__DownloadProgress *dp, struct proto_err *err)
{
	const Shoal__Bep__ProgressUpdate	*u;
	size_t					 i, j;
	int					 rc;

	rc = check_string("progress folder", dp->folder, true, err);
	if (rc != 0)
		return rc;
	for (i = 0; i < dp->n_updates; i++) {
		u = dp->updates[i];
		if (u->update_type !=
		    SHOAL__BEP__PROGRESS_UPDATE_TYPE__PROGRESS_UPDATE_APPEND &&
		    u->update_type !=
		    SHOAL__BEP__PROGRESS_UPDATE_TYPE__PROGRESS_UPDATE_FORGET) {
			seterr(err, "unknown progress update type %d",
			    (int)u->update_type);
			return SH_EPROTO;
		}
		rc = check_name("progress name", u->name, err);
		if (rc != 0)
			return rc;
		rc = check_vector(u->version, err);
		if (rc != 0)
			return rc;
		if (!block_size_valid(u->block_size) ||
		    u->n_block_indexes > RECORD_MAX_BLOCKS) {
			seterr(err, "progress update: bad block size or count");
			return SH_EPROTO;
		}
		for (j = 0; j < u->n_block_indexes; j++) {
			if (u->block_indexes[j] < 0) {
				seterr(err, "progress update: negative block "
				    "index");
				return SH_EPROTO;
			}
		}
	}
	return 0;
}

static int
msg_validate(const struct proto_msg *msg, struct proto_err *err)
{
	switch (msg->type) {
	case PROTO_CLUSTER_CONFIG:
		return proto_validate_cluster_config(msg->u.cluster_config,
		    err);
	case PROTO_INDEX:
		return check_files(msg->u.index->folder, msg->u.index->files,
		    msg->u.index->n_files, err);
	case PROTO_INDEX_UPDATE:
		return check_files(msg->u.index_update->folder,
		    msg->u.index_update->files, msg->u.index_update->n_files,
		    err);
	case PROTO_REQUEST:
		return proto_validate_request(msg->u.request, err);
	case PROTO_RESPONSE:
		if (msg->u.response->data.len > PROTO_MAX_BLOCK_LEN) {
			seterr(err, "response %d carries %zu bytes",
			    msg->u.response->id, msg->u.response->data.len);
			return SH_EPROTO;
		}
		return 0;
	case PROTO_DOWNLOAD_PROGRESS:
		return check_progress(msg->u.download_progress, err);
	case PROTO_PING:
	case PROTO_CLOSE:
		return 0;
	}
	return SH_EPROTO;
}

int
proto_msg_decode(const struct proto_frame *frame,
    const struct proto_limits *limits, struct proto_msg *msg,
    struct proto_err *err)
{
	ProtobufCMessage	*m;
	size_t			 max_msg, max_dec;
	int			 rc;

	memset(msg, 0, sizeof(*msg));
	limits_get(limits, &max_msg, &max_dec);
	if ((int)frame->type < 0 || frame->type >= PROTO_TYPE_COUNT) {
		seterr(err, "cannot decode message type %d", (int)frame->type);
		return SH_EPROTO;
	}
	if (frame->body_len > max_msg) {
		seterr(err, "%s of %zu bytes exceeds limit %zu",
		    proto_type_name(frame->type), frame->body_len, max_msg);
		return SH_EPROTO;
	}
	m = unpack_bounded(type_desc[frame->type], frame->body,
	    frame->body_len, max_dec);
	if (m == NULL) {
		seterr(err, "%s of %zu bytes does not parse or is too large "
		    "unpacked", proto_type_name(frame->type), frame->body_len);
		return SH_EPROTO;
	}
	msg->type = frame->type;
	msg->u.base = m;
	rc = msg_validate(msg, err);
	if (rc != 0)
		proto_msg_clear(msg);
	return rc;
}

void
proto_msg_clear(struct proto_msg *msg)
{
	if (msg->u.base != NULL)
		protobuf_c_message_free_unpacked(msg->u.base, NULL);
	memset(msg, 0, sizeof(*msg));
}

size_t
proto_msg_files(const struct proto_msg *msg, const char **folder,
    struct Shoal__Bep__FileInfo *const **files)
{
	*folder = NULL;
	*files = NULL;
	if (msg->u.base == NULL)
		return 0;
	if (msg->type == PROTO_INDEX) {
		*folder = msg->u.index->folder;
		*files = msg->u.index->files;
		return msg->u.index->n_files;
	}
	if (msg->type == PROTO_INDEX_UPDATE) {
		*folder = msg->u.index_update->folder;
		*files = msg->u.index_update->files;
		return msg->u.index_update->n_files;
	}
	return 0;
}

/* Encoding */

/*
 * A frame buffer for `h` and a body of `body_len` bytes, with the header
 * length, the header and the body length written; the body goes at
 * frame + *head.
 */
static uint8_t *
frame_alloc(const Shoal__Bep__Header *h, size_t body_len, size_t *head)
{
	uint8_t	*frame;
	size_t	 hl = shoal__bep__header__get_packed_size(h);

	*head = 2 + hl + 4;
	frame = util_bigbuf_alloc(*head + body_len);
	put_be16(frame, (uint16_t)hl);
	(void)shoal__bep__header__pack(h, frame + 2);
	util_put_be32(frame + 2 + hl, (uint32_t)body_len);
	return frame;
}

int
proto_frame_encode(enum proto_type type, const struct ProtobufCMessage *msg,
    bool compress, uint8_t **out, size_t *out_len)
{
	Shoal__Bep__Header	 h = SHOAL__BEP__HEADER__INIT;
	uint8_t			*body = NULL, *z = NULL, *frame = NULL;
	const uint8_t		*payload;
	size_t			 s, head, ml, zcap;
	int			 zn, rc;

	*out = NULL;
	*out_len = 0;
	if ((int)type < 0 || type >= PROTO_TYPE_COUNT ||
	    msg->descriptor != type_desc[type]) {
		rc = -EINVAL;
		goto out;
	}
	s = protobuf_c_message_get_packed_size(msg);
	if (s > PROTO_WIRE_MAX_MSG_LEN) {
		rc = -E2BIG;
		goto out;
	}
	h.type = (Shoal__Bep__MsgType)type;
	if (!compress || s < PROTO_COMPRESS_MIN_LEN) {
		/* Straight into the frame: a Response's block is copied
		 * once, not twice. */
		frame = frame_alloc(&h, s, &head);
		(void)protobuf_c_message_pack(msg, frame + head);
		*out = frame;
		*out_len = head + s;
		return 0;
	}
	body = xmalloc(s);
	(void)protobuf_c_message_pack(msg, body);
	payload = body;
	ml = s;
	if (compress && s >= PROTO_COMPRESS_MIN_LEN) {
		zcap = (size_t)LZ4_compressBound((int)s);
		z = xmalloc(4 + zcap);
		zn = LZ4_compress_default((const char *)body, (char *)z + 4,
		    (int)s, (int)zcap);
		/* Only worth it when it saves s/32 (§5.1). */
		if (zn > 0 && 4 + (size_t)zn <= s - s / 32) {
			util_put_be32(z, (uint32_t)s);
			payload = z;
			ml = 4 + (size_t)zn;
			h.compression =
			    SHOAL__BEP__MSG_COMPRESSION__MSG_COMPRESSION_LZ4;
		}
	}
	frame = frame_alloc(&h, ml, &head);
	if (ml > 0)
		memcpy(frame + head, payload, ml);
	*out = frame;
	*out_len = head + ml;
	frame = NULL;
	rc = 0;
out:
	free(frame);
	free(z);
	free(body);
	return rc;
}

/* Protobuf base-128 varint; returns its length (at most 10). */
static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t	n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

int
proto_response_frame(int32_t id, size_t len, uint8_t **out, size_t *out_len,
    uint8_t **data)
{
	Shoal__Bep__Header	 h = SHOAL__BEP__HEADER__INIT;
	uint8_t			 pre[1 + 10 + 1 + 10], *frame;
	size_t			 pl = 0, head, s;

	*out = *data = NULL;
	*out_len = 0;
	if (len > PROTO_WIRE_MAX_MSG_LEN - sizeof(pre))
		return -E2BIG;
	/* Fields in number order, proto3 defaults left out, code 0 too:
	 * what protobuf-c packs for the same message. */
	if (id != 0) {
		pre[pl++] = 0x08;	/* 1: id, varint */
		pl += put_varint(pre + pl, (uint64_t)(int64_t)id);
	}
	if (len > 0) {
		pre[pl++] = 0x12;	/* 2: data, length-delimited */
		pl += put_varint(pre + pl, len);
	}
	s = pl + len;
	h.type = SHOAL__BEP__MSG_TYPE__MSG_RESPONSE;
	frame = frame_alloc(&h, s, &head);
	memcpy(frame + head, pre, pl);
	*out = frame;
	*out_len = head + s;
	*data = frame + head + pl;
	return 0;
}

int
proto_close_encode(const char *reason, uint8_t **out, size_t *out_len)
{
	Shoal__Bep__Close	 c = SHOAL__BEP__CLOSE__INIT;
	const uint8_t		*p;
	size_t			 len, i, n, o;
	char			*clean;
	int			 rc;

	if (reason == NULL)
		reason = "";
	p = (const uint8_t *)reason;
	len = strlen(reason);
	clean = xmalloc(CLOSE_REASON_MAX + 1);
	/* Syncthing 1.29+ drops a message with invalid UTF-8 (§8). */
	for (i = 0, o = 0; i < len; i += n) {
		n = utf8_seq(p + i, len - i);
		if (n == 0) {
			if (o + 1 > CLOSE_REASON_MAX)
				break;
			clean[o++] = '?';
			n = 1;
			continue;
		}
		if (o + n > CLOSE_REASON_MAX)
			break;
		memcpy(clean + o, p + i, n);
		o += n;
	}
	clean[o] = '\0';
	c.reason = clean;
	rc = proto_frame_encode(PROTO_CLOSE, &c.base, false, out, out_len);
	free(clean);
	return rc;
}

int
proto_ping_encode(uint8_t **out, size_t *out_len)
{
	Shoal__Bep__Ping	p = SHOAL__BEP__PING__INIT;

	return proto_frame_encode(PROTO_PING, &p.base, false, out, out_len);
}

/* Conversions */

int
proto_record_from_fileinfo(const struct Shoal__Bep__FileInfo *fi,
    struct record **out, struct proto_err *err)
{
	struct record	*r = NULL;
	size_t		 i;
	int		 rc;

	*out = NULL;
	rc = proto_validate_fileinfo(fi, err);
	if (rc != 0)
		goto out;
	r = record_new();
	r->name = xstrdup(fi->name);
	switch (fi->type) {
	case SHOAL__BEP__FILE_TYPE__FILE_TYPE_FILE:
		r->type = RECORD_TYPE_FILE;
		break;
	case SHOAL__BEP__FILE_TYPE__FILE_TYPE_DIRECTORY:
		r->type = RECORD_TYPE_DIRECTORY;
		break;
	default:
		/* 2 and 3 are the deprecated symlink kinds (§7). */
		r->type = RECORD_TYPE_SYMLINK;
		break;
	}
	r->size = fi->size;
	r->permissions = fi->permissions & 0777;
	r->modified_s = fi->modified_s;
	r->modified_ns = fi->modified_ns;
	r->modified_by = fi->modified_by;
	r->deleted = fi->deleted;
	r->invalid = fi->invalid;
	r->no_permissions = fi->no_permissions;
	r->sequence = fi->sequence;
	r->block_size = fi->block_size;
	rc = vector_from_pb(fi->version, &r->version, err);
	if (rc != 0)
		goto out;
	if (r->type == RECORD_TYPE_FILE && fi->n_blocks > 0) {
		r->blocks = xcalloc(fi->n_blocks, sizeof(*r->blocks));
		r->block_count = fi->n_blocks;
		for (i = 0; i < fi->n_blocks; i++) {
			r->blocks[i].offset = fi->blocks[i]->offset;
			r->blocks[i].size = fi->blocks[i]->size;
			memcpy(r->blocks[i].hash, fi->blocks[i]->hash.data,
			    RECORD_HASH_LEN);
			r->blocks[i].weak_hash = fi->blocks[i]->weak_hash;
		}
	}
	if (fi->blocks_hash.len == RECORD_HASH_LEN) {
		memcpy(r->blocks_hash, fi->blocks_hash.data, RECORD_HASH_LEN);
		r->has_blocks_hash = true;
	}
	if (r->type == RECORD_TYPE_SYMLINK && fi->symlink_target.len > 0)
		r->symlink_target = xstrndup((const char *)
		    fi->symlink_target.data, fi->symlink_target.len);
	*out = r;
	r = NULL;
	rc = 0;
out:
	record_free(r);
	return rc;
}

static void
bytes_set(ProtobufCBinaryData *b, const void *data, size_t len)
{
	b->data = xmalloc(len);
	memcpy(b->data, data, len);
	b->len = len;
}

struct Shoal__Bep__FileInfo *
proto_fileinfo_from_record(const struct record *r)
{
	Shoal__Bep__FileInfo	*fi;
	Shoal__Bep__Vector	*v;
	Shoal__Bep__Counter	*c;
	Shoal__Bep__BlockInfo	*b;
	size_t			 i;

	fi = xmalloc(sizeof(*fi));
	shoal__bep__file_info__init(fi);
	fi->name = xstrdup(r->name != NULL ? r->name : "");
	switch (r->type) {
	case RECORD_TYPE_DIRECTORY:
		fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_DIRECTORY;
		break;
	case RECORD_TYPE_SYMLINK:
		fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_SYMLINK;
		break;
	default:
		fi->type = SHOAL__BEP__FILE_TYPE__FILE_TYPE_FILE;
		break;
	}
	fi->size = r->size;
	fi->permissions = r->permissions & 0777;
	fi->modified_s = r->modified_s;
	fi->modified_ns = r->modified_ns;
	fi->modified_by = r->modified_by;
	fi->deleted = r->deleted;
	/* Local "bad" flags go out as invalid (§9.3). */
	fi->invalid = r->invalid || r->local_flags != 0;
	fi->no_permissions = r->no_permissions;
	fi->sequence = r->sequence;
	fi->block_size = r->block_size;
	if (r->version.count > 0 &&
	    (r->local_flags & RECORD_LOCAL_RECEIVEONLY) == 0) {
		v = xmalloc(sizeof(*v));
		shoal__bep__vector__init(v);
		v->counters = xcalloc(r->version.count, sizeof(*v->counters));
		v->n_counters = r->version.count;
		for (i = 0; i < r->version.count; i++) {
			c = xmalloc(sizeof(*c));
			shoal__bep__counter__init(c);
			c->id = r->version.counters[i].id;
			c->value = r->version.counters[i].value;
			v->counters[i] = c;
		}
		fi->version = v;
	}
	if (r->block_count > 0) {
		fi->blocks = xcalloc(r->block_count, sizeof(*fi->blocks));
		fi->n_blocks = r->block_count;
		for (i = 0; i < r->block_count; i++) {
			b = xmalloc(sizeof(*b));
			shoal__bep__block_info__init(b);
			b->offset = r->blocks[i].offset;
			b->size = r->blocks[i].size;
			b->weak_hash = r->blocks[i].weak_hash;
			bytes_set(&b->hash, r->blocks[i].hash, RECORD_HASH_LEN);
			fi->blocks[i] = b;
		}
	}
	if (r->has_blocks_hash)
		bytes_set(&fi->blocks_hash, r->blocks_hash, RECORD_HASH_LEN);
	if (r->type == RECORD_TYPE_SYMLINK && r->symlink_target != NULL)
		bytes_set(&fi->symlink_target, r->symlink_target,
		    strlen(r->symlink_target));
	return fi;
}

void
proto_fileinfo_free(struct Shoal__Bep__FileInfo *fi)
{
	/* Built from xmalloc pieces in the shape protobuf-c frees. */
	if (fi != NULL)
		protobuf_c_message_free_unpacked(&fi->base, NULL);
}

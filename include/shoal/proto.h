/* SPDX-License-Identifier: MIT */
/*
 * The BEP v1 message layer, without sockets (bep-brief §4, §5, §7, §8,
 * §10): the pre-authentication Hello, the post-authentication frame format
 * with optional LZ4, an incremental frame decoder that takes bytes in any
 * split as they come out of TLS, typed decoding of every message into
 * protobuf-c structs with validation, the frame encoder, and conversions
 * between protobuf FileInfo and struct record.
 *
 * Everything a peer controls is bounded: header length (< 0x8000), message
 * length and uncompressed length (struct proto_limits), the heap used to
 * unpack one message, and the counts in a record (shoal/record.h). A hostile
 * peer can make these functions return SH_EPROTO, after which the caller
 * drops the connection; it cannot make them crash or allocate without bound.
 *
 * The protobuf-c types (struct Shoal__Bep__*) are generated from
 * proto/bep.proto into build/<dir>/gen/bep.pb-c.h; this header only
 * forward-declares them, so a module that reads their fields includes
 * "bep.pb-c.h" itself. No function here logs: failures on peer input fill an
 * optional struct proto_err with a one-line reason for the caller to log and
 * to use as the Close reason. All functions run on the loop thread or any
 * other; none keeps global state.
 */
#ifndef SHOAL_PROTO_H
#define SHOAL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoal/err.h"
#include "shoal/record.h"

struct ProtobufCMessage;
struct Shoal__Bep__ClusterConfig;
struct Shoal__Bep__Index;
struct Shoal__Bep__IndexUpdate;
struct Shoal__Bep__FileInfo;
struct Shoal__Bep__Request;
struct Shoal__Bep__Response;
struct Shoal__Bep__DownloadProgress;
struct Shoal__Bep__Ping;
struct Shoal__Bep__Close;

/* Constants */
#define PROTO_HELLO_MAGIC	0x2EA7D90Bu
#define PROTO_HELLO_MAX_LEN	32767		/* Hello protobuf, §4 */
#define PROTO_HEADER_MAX_LEN	0x7fff		/* header length H, §5 */
#define PROTO_WIRE_MAX_MSG_LEN	500000000u	/* Syncthing's cap on M, §5 */
/* Our receive cap on M and on the uncompressed length U: a Response holds
 * at most one 16 MiB block, and Syncthing batches indexes at ~250 KiB. */
#define PROTO_DEFAULT_MAX_MSG_LEN	(64u * 1024 * 1024)
/* Cap on the heap protobuf-c may use to unpack one message. */
#define PROTO_DEFAULT_MAX_DECODED_LEN	(256u * 1024 * 1024)
/* Cap on Request.size and Response.data. */
#define PROTO_MAX_BLOCK_LEN	RECORD_MAX_BLOCK_SIZE
#define PROTO_COMPRESS_MIN_LEN	128		/* §5.1: smaller is sent raw */
/* Caps on ClusterConfig and other peer-supplied lists and strings. */
#define PROTO_MAX_FOLDERS	4096
#define PROTO_MAX_DEVICES	1024		/* per folder */
#define PROTO_MAX_ADDRESSES	256		/* per device */
#define PROTO_MAX_STRING_LEN	1024		/* IDs, labels, addresses */
#define PROTO_DEVICE_ID_LEN	32

/* Message types (bep-brief §7 Header.type). */
enum proto_type {
	PROTO_CLUSTER_CONFIG = 0,
	PROTO_INDEX = 1,
	PROTO_INDEX_UPDATE = 2,
	PROTO_REQUEST = 3,
	PROTO_RESPONSE = 4,
	PROTO_DOWNLOAD_PROGRESS = 5,
	PROTO_PING = 6,
	PROTO_CLOSE = 7
};
#define PROTO_TYPE_COUNT	8

/* Response codes (bep-brief §7 ErrorCode). */
#define PROTO_CODE_NO_ERROR	0
#define PROTO_CODE_GENERIC	1
#define PROTO_CODE_NO_SUCH_FILE	2
#define PROTO_CODE_INVALID_FILE	3

/* Frame decoder states, in the order a frame is read. */
enum proto_state {
	PROTO_STATE_HEADER_LEN = 0,	/* reading the 2-byte header length */
	PROTO_STATE_HEADER,		/* reading H header bytes */
	PROTO_STATE_MSG_LEN,		/* reading the 4-byte message length */
	PROTO_STATE_BODY,		/* reading M body bytes */
	PROTO_STATE_SKIP,		/* discarding an unknown type's body */
	PROTO_STATE_ERROR		/* a protocol error was seen; sticky */
};

/* Why a peer's input was rejected: one line, peer strings escaped. */
struct proto_err {
	char	msg[256];
};

/* The peer's Hello as plain data. Strings are owned, NUL-terminated and
 * unchecked (escape them before logging); proto_hello_clear() frees them. */
struct proto_hello {
	char	*device_name;		/* owned; may be "" */
	char	*client_name;		/* owned */
	char	*client_version;	/* owned */
	int32_t	 num_connections;	/* peers >= 1.25; 0 = not given */
	int64_t	 timestamp;		/* peers >= 1.25; Unix ns, or 0 */
};

struct proto_limits {
	size_t	max_msg_len;		/* cap on M and U; 0 = default */
	size_t	max_decoded_len;	/* cap on unpack heap; 0 = default */
};

/*
 * A complete frame out of the decoder: the type and the protobuf bytes,
 * already decompressed. `body` is borrowed from the decoder and valid until
 * the next proto_decoder_feed() or proto_decoder_free().
 */
struct proto_frame {
	enum proto_type	 type;
	const uint8_t	*body;		/* borrowed; NULL when body_len == 0 */
	size_t		 body_len;
	bool		 compressed;	/* it arrived LZ4-compressed */
	size_t		 wire_len;	/* bytes it took on the wire */
};

/*
 * A decoded, validated message. Exactly the member matching `type` is set.
 * The owner releases it with proto_msg_clear().
 */
struct proto_msg {
	enum proto_type	type;
	union {
		struct ProtobufCMessage			*base;
		struct Shoal__Bep__ClusterConfig	*cluster_config;
		struct Shoal__Bep__Index		*index;
		struct Shoal__Bep__IndexUpdate		*index_update;
		struct Shoal__Bep__Request		*request;
		struct Shoal__Bep__Response		*response;
		struct Shoal__Bep__DownloadProgress	*download_progress;
		struct Shoal__Bep__Ping			*ping;
		struct Shoal__Bep__Close		*close;
	} u;
};

struct proto_decoder;

/* Names for logs */
/* "ClusterConfig", "Index", ...; "unknown" for other values. */
const char	*proto_type_name(int type);
const char	*proto_state_name(enum proto_state state);

/* Hello (pre-authentication, §4) */
/*
 * Build the Hello we send: magic, uint16 BE length, protobuf. The strings
 * may be NULL (sent empty); num_connections and timestamp are not sent.
 * On success *out is a heap buffer the caller frees with free().
 * Returns 0, or -E2BIG if the protobuf would exceed PROTO_HELLO_MAX_LEN.
 */
int	proto_hello_encode(const char *device_name, const char *client_name,
	    const char *client_version, uint8_t **out, size_t *out_len)
	    SH_MUST_CHECK;
/*
 * Parse the peer's Hello from the first `len` bytes it sent (buffer them
 * until this stops returning -EAGAIN; at most 6 + PROTO_HELLO_MAX_LEN are
 * ever needed). Returns:
 *   0          *out is filled (caller releases it with proto_hello_clear())
 *              and *consumed is the bytes it took; bytes after it are
 *              frames;
 *   -EAGAIN    more bytes are needed; *out is zeroed;
 *   SH_EPROTO  bad magic (err says "older protocol" for Syncthing's old
 *              magics 0x00010000, 0x00010001, 0x9F79BC40, else "unknown
 *              protocol"), length > 32767, or an unparsable protobuf.
 * On failure *out is zeroed.
 */
int	proto_hello_decode(const uint8_t *buf, size_t len, size_t *consumed,
	    struct proto_hello *out, struct proto_err *err) SH_MUST_CHECK;
/* Frees the strings and zeroes *h; accepts a zeroed one. */
void	proto_hello_clear(struct proto_hello *h);

/* Frame decoder (post-authentication, §5) */
/*
 * New decoder in state HEADER_LEN. `limits` may be NULL for the defaults.
 * Free with proto_decoder_free(). It allocates only as bytes arrive, never
 * more than about twice the bytes of the current frame received so far, and
 * never beyond the capped announced length.
 */
struct proto_decoder	*proto_decoder_new(const struct proto_limits *limits);
void	proto_decoder_free(struct proto_decoder *d);	/* accepts NULL */
/*
 * Feed `len` bytes. Consumes bytes until one frame is complete or the input
 * is used up, and sets *consumed. Returns:
 *   1          a frame is complete: *frame is set (borrowed, see above);
 *              call again with the bytes after *consumed;
 *   0          all input consumed, no frame complete yet;
 *   SH_EPROTO  header length >= 0x8000, bad header, unknown compression,
 *              M or U over the cap, or an LZ4 block that does not
 *              decompress to exactly U bytes. The decoder stays in ERROR
 *              and returns SH_EPROTO from then on; drop the connection.
 * Frames of unknown type are skipped without buffering their bodies.
 */
int	proto_decoder_feed(struct proto_decoder *d, const uint8_t *buf,
	    size_t len, size_t *consumed, struct proto_frame *frame,
	    struct proto_err *err) SH_MUST_CHECK;
enum proto_state	proto_decoder_state(const struct proto_decoder *d);
/*
 * Where the next `len` input bytes would be stored if they all belong to
 * the body of the frame being read: a pointer into the decoder's buffer
 * (room for `len` bytes is made), or NULL. A caller that can produce its
 * input in place (TLS decrypting a record) writes the bytes there and then
 * passes that same pointer to proto_decoder_feed(), which then does not
 * copy them. The pointer is valid until the next feed or free.
 */
uint8_t	*proto_decoder_span(struct proto_decoder *d, size_t len);
/* Unknown-type frames skipped so far. */
uint64_t		proto_decoder_skipped(const struct proto_decoder *d);

/* Typed decoding and validation */
/*
 * Unpack a frame's body into the protobuf-c struct for its type and
 * validate it with the proto_validate_* rules below (for Index and
 * IndexUpdate: the folder and every FileInfo). `limits` may be NULL.
 * Returns 0 with *msg filled (release with proto_msg_clear()), or SH_EPROTO
 * (*msg zeroed) if the body does not parse, would take more heap than the
 * limit allows, or fails validation.
 */
int	proto_msg_decode(const struct proto_frame *frame,
	    const struct proto_limits *limits, struct proto_msg *msg,
	    struct proto_err *err) SH_MUST_CHECK;
void	proto_msg_clear(struct proto_msg *msg);	/* accepts zeroed; zeroes */
/*
 * For an Index or IndexUpdate: set *folder and *files (both borrowed from
 * msg) and return the number of files. For other types return 0 and set
 * both to NULL.
 */
size_t	proto_msg_files(const struct proto_msg *msg, const char **folder,
	    struct Shoal__Bep__FileInfo *const **files);

/*
 * Each returns 0 or SH_EPROTO with the reason in err (may be NULL).
 *
 * FileInfo (§10.1-10.3, §17.10-12): name canonical (record_name_validate);
 * type 0..4; size, sequence >= 0; modified_ns in [0, 1e9); version sorted,
 * unique, capped (record_vector_validate); block_size 0 or a valid size;
 * blocks_hash empty or 32 bytes; deleted entries and directories carry no
 * blocks; a non-deleted, non-invalid regular file has >= 1 block; when
 * blocks are present, block i has offset i * block_size, size
 * min(block_size, size - offset) (one zero-size block for an empty file),
 * a 32-byte hash, and at most RECORD_MAX_BLOCKS of them; a non-deleted,
 * non-invalid symlink has a target without NUL of at most
 * RECORD_MAX_NAME_LEN bytes.
 */
int	proto_validate_fileinfo(const struct Shoal__Bep__FileInfo *fi,
	    struct proto_err *err) SH_MUST_CHECK;
/* Name canonical; folder a valid string; offset >= 0; size 0..16 MiB;
 * hash empty or 32 bytes; block_no >= 0. */
int	proto_validate_request(const struct Shoal__Bep__Request *r,
	    struct proto_err *err) SH_MUST_CHECK;
/* At most PROTO_MAX_FOLDERS folders, PROTO_MAX_DEVICES devices per folder,
 * PROTO_MAX_ADDRESSES per device; device IDs 32 bytes; strings valid UTF-8
 * of at most PROTO_MAX_STRING_LEN bytes; folder IDs not empty. */
int	proto_validate_cluster_config(
	    const struct Shoal__Bep__ClusterConfig *cc, struct proto_err *err)
	    SH_MUST_CHECK;

/* Frame encoding */
/*
 * Encode `msg` (the `base` of the protobuf-c struct matching `type`) as one
 * frame. With `compress`, the body is LZ4-compressed when the §5.1 rule
 * says it pays (S >= 128 and 4 + compressed <= S - S/32); callers pass true
 * for every type but Response. On success *out is a heap buffer the caller
 * frees with util_bigbuf_free() (which reuses it) or free(). Returns 0, -EINVAL if msg is not of that type, or
 * -E2BIG if the body exceeds PROTO_WIRE_MAX_MSG_LEN.
 */
int	proto_frame_encode(enum proto_type type,
	    const struct ProtobufCMessage *msg, bool compress, uint8_t **out,
	    size_t *out_len) SH_MUST_CHECK;
/*
 * A successful Response{id, data} frame laid out around a hole of `len`
 * bytes for the data (*data, inside *out), so that a served block can be
 * read straight into its frame instead of being copied there. Once the
 * hole is filled the frame is byte for byte what proto_frame_encode()
 * makes of that Response (uncompressed, as every Response we send). *out
 * as above; `len` at most PROTO_WIRE_MAX_MSG_LEN - 16. Returns 0 or
 * -E2BIG.
 */
int	proto_response_frame(int32_t id, size_t len, uint8_t **out,
	    size_t *out_len, uint8_t **data) SH_MUST_CHECK;
/* Close{reason}, uncompressed. Invalid UTF-8 in `reason` is replaced by
 * '?' and it is cut at 1024 bytes. *out as above; returns 0. */
int	proto_close_encode(const char *reason, uint8_t **out, size_t *out_len)
	    SH_MUST_CHECK;
/* The 8-byte Ping frame. *out as above; returns 0. */
int	proto_ping_encode(uint8_t **out, size_t *out_len) SH_MUST_CHECK;

/* Conversions between FileInfo and struct record */
/*
 * Validate `fi` (proto_validate_fileinfo) and convert it. Types 2 and 3
 * become RECORD_TYPE_SYMLINK; permissions are masked to 0777; blocks of a
 * symlink are dropped; blocks_hash is kept when it is 32 bytes; local-only
 * fields are zero. Returns 0 with *out set (caller frees with
 * record_free()), or SH_EPROTO.
 */
int	proto_record_from_fileinfo(const struct Shoal__Bep__FileInfo *fi,
	    struct record **out, struct proto_err *err) SH_MUST_CHECK;
/*
 * The wire form of our record `r` (bep-brief §9.3): local_flags, inode and
 * dev are not sent; a record with any RECORD_LOCAL_* flag goes out with
 * invalid = true, and one with RECORD_LOCAL_RECEIVEONLY with an empty
 * version vector. Never returns NULL. Everything it points to is a separate
 * heap allocation; the caller frees it with proto_fileinfo_free(), also
 * after placing it in an Index (free the files array itself with free()).
 */
struct Shoal__Bep__FileInfo *proto_fileinfo_from_record(const struct record *r);
void	proto_fileinfo_free(struct Shoal__Bep__FileInfo *fi); /* accepts NULL */

#endif /* SHOAL_PROTO_H */

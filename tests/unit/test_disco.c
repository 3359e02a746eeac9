/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for disco.c: the bep-brief §15.2 example packet byte for
 * byte, the decoder's caps and refusals, the §15.3 address completion
 * table, the cache (90 s expiry on an injected clock, the size bound,
 * change detection), and the runtime on a uv loop. The runtime tests only
 * ever send to 127.0.0.1 (the params' test_unicast_to): unit tests never
 * broadcast or multicast.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "shoal/disco.h"
#include "shoal/identity.h"
#include "shoal/util.h"

#define WAIT_MS		10000
#define EX_ID_HEX	"7f7c8723ecca5b4d22061c4981b34c34" \
			"d865ec376be1eb74330873c9a6f9b205"
#define EX_ID_STR	"P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-" \
			"TBBZ4TJ-XZWICQ2"
#define EX_INSTANCE	((int64_t)0x0123456789abcdefLL)

/* bep-brief §15.2, 91 bytes. */
static const uint8_t example_packet[] = {
	0x2e, 0xa7, 0xd9, 0x0b,
	0x0a, 0x20,
	0x7f, 0x7c, 0x87, 0x23, 0xec, 0xca, 0x5b, 0x4d,
	0x22, 0x06, 0x1c, 0x49, 0x81, 0xb3, 0x4c, 0x34,
	0xd8, 0x65, 0xec, 0x37, 0x6b, 0xe1, 0xeb, 0x74,
	0x33, 0x08, 0x73, 0xc9, 0xa6, 0xf9, 0xb2, 0x05,
	0x12, 0x13, 't', 'c', 'p', ':', '/', '/', '0', '.', '0', '.', '0', '.',
	'0', ':', '2', '2', '0', '0', '0',
	0x12, 0x14, 'q', 'u', 'i', 'c', ':', '/', '/', '0', '.', '0', '.', '0',
	'.', '0', ':', '2', '2', '0', '0', '0',
	0x18, 0xef, 0x9b, 0xaf, 0xcd, 0xf8, 0xac, 0xd1, 0x91, 0x01
};

static const char *const example_addrs[] = {
	"tcp://0.0.0.0:22000", "quic://0.0.0.0:22000"
};

static void
hex_id(const char *hex, struct device_id *id)
{
	size_t		i;
	unsigned	v;

	for (i = 0; i < IDENTITY_ID_LEN; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		id->raw[i] = (uint8_t)v;
	}
}

static void
make_id(uint8_t fill, struct device_id *id)
{
	memset(id->raw, fill, sizeof(id->raw));
}

static uint64_t
wait_ms(void)
{
	const char	*m = getenv("SHOAL_TEST_TIMEOUT_MULT");
	uint64_t	 mult = 1;

	if (m != NULL && util_parse_u64(m, 1, 100, &mult) != 0)
		mult = 1;
	return WAIT_MS * mult;
}

/* Packets */

static void
test_disco_encode_example(void **state)
{
	struct device_id	 id;
	uint8_t			*out = NULL;
	size_t			 len = 0;

	(void)state;
	hex_id(EX_ID_HEX, &id);
	assert_int_equal(sizeof(example_packet), 91);
	assert_int_equal(disco_packet_encode(&id, example_addrs, 2,
	    EX_INSTANCE, &out, &len), 0);
	assert_int_equal(len, sizeof(example_packet));
	assert_memory_equal(out, example_packet, len);
	free(out);
}

static void
test_disco_decode_example(void **state)
{
	struct disco_announce	a;
	struct disco_err	err;
	char			s[IDENTITY_ID_STR_SIZE];

	(void)state;
	assert_int_equal(disco_packet_decode(example_packet,
	    sizeof(example_packet), &a, &err), 0);
	identity_id_format(&a.id, s);
	assert_string_equal(s, EX_ID_STR);
	assert_true(a.instance_id == EX_INSTANCE);
	assert_int_equal(a.addr_count, 2);
	assert_string_equal(a.addrs[0], "tcp://0.0.0.0:22000");
	assert_string_equal(a.addrs[1], "quic://0.0.0.0:22000");
	disco_announce_clear(&a);
	assert_int_equal(a.addr_count, 0);
}

static void
test_disco_encode_caps(void **state)
{
	struct device_id	 id;
	const char		*many[DISCO_MAX_ADDRS + 1];
	char			 big[DISCO_MAX_ADDR_LEN + 2];
	const char		*one[1] = { big };
	uint8_t			*out = NULL;
	size_t			 i, len;
	struct disco_announce	 a;

	(void)state;
	make_id(1, &id);
	for (i = 0; i < DISCO_MAX_ADDRS + 1; i++)
		many[i] = "tcp://0.0.0.0:1";
	assert_int_equal(disco_packet_encode(&id, many, DISCO_MAX_ADDRS + 1,
	    1, &out, &len), -EINVAL);
	assert_null(out);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(disco_packet_encode(&id, one, 1, 1, &out, &len),
	    -EINVAL);
	/* The caps are inclusive: 64 addresses of 256 bytes decode again. */
	big[DISCO_MAX_ADDR_LEN] = '\0';
	for (i = 0; i < DISCO_MAX_ADDRS; i++)
		many[i] = big;
	assert_int_equal(disco_packet_encode(&id, many, DISCO_MAX_ADDRS,
	    -1, &out, &len), 0);
	assert_int_equal(disco_packet_decode(out, len, &a, NULL), 0);
	assert_int_equal(a.addr_count, DISCO_MAX_ADDRS);
	assert_true(a.instance_id == -1);
	disco_announce_clear(&a);
	free(out);
}

/* Decode `buf` and expect `want`; the output must come back zeroed. */
static void
expect_bad(const uint8_t *buf, size_t len, int want)
{
	struct disco_announce	a;
	struct disco_err	err;

	memset(&a, 0xa5, sizeof(a));
	err.msg[0] = '\0';
	assert_int_equal(disco_packet_decode(buf, len, &a, &err), want);
	assert_int_equal(a.addr_count, 0);
	assert_true(err.msg[0] != '\0');
}

static void
test_disco_decode_bad(void **state)
{
	uint8_t			*p, *big;
	size_t			 i, n;
	struct disco_announce	 a;

	(void)state;
	p = xmalloc(sizeof(example_packet) + 400);
	memcpy(p, example_packet, sizeof(example_packet));

	/* Wrong and old magic. */
	p[0] = 0x2f;
	expect_bad(p, sizeof(example_packet), SH_EPROTO);
	p[0] = 0x7d; p[1] = 0x79; p[2] = 0xbc; p[3] = 0x40;
	expect_bad(p, sizeof(example_packet), -EPROTONOSUPPORT);
	memcpy(p, example_packet, 4);
	expect_bad(p, 3, SH_EPROTO);
	/* Magic alone: no device ID. */
	expect_bad(p, 4, SH_EPROTO);

	/* Every truncation is refused (cut inside the id, an address, the
	 * varint), except at a field boundary after the ID. */
	for (n = 5; n < sizeof(example_packet); n++) {
		int rc = disco_packet_decode(p, n, &a, NULL);

		if (n == 38 || n == 59 || n == 81)
			assert_int_equal(rc, 0);
		else
			assert_int_equal(rc, SH_EPROTO);
		disco_announce_clear(&a);
	}

	/* Bad ID lengths: 31 and 33 bytes. */
	p[5] = 31;
	expect_bad(p, 4 + 2 + 31, SH_EPROTO);
	memcpy(p, example_packet, sizeof(example_packet));
	p[5] = 33;
	expect_bad(p, 4 + 2 + 33, SH_EPROTO);
	memcpy(p, example_packet, sizeof(example_packet));

	/* Wire-type mismatch: field 3 as length-delimited. */
	p[81] = 0x1a;
	p[82] = 0x00;
	expect_bad(p, 83, SH_EPROTO);
	memcpy(p, example_packet, sizeof(example_packet));

	/* A group wire type. */
	p[81] = 0x1b;
	expect_bad(p, 82, SH_EPROTO);
	memcpy(p, example_packet, sizeof(example_packet));

	/* A NUL inside an address. */
	p[42] = 0x00;
	expect_bad(p, sizeof(example_packet), SH_EPROTO);
	memcpy(p, example_packet, sizeof(example_packet));

	/* An unknown field (9, varint) is skipped. */
	p[91] = 0x48;
	p[92] = 0x05;
	assert_int_equal(disco_packet_decode(p, 93, &a, NULL), 0);
	assert_int_equal(a.addr_count, 2);
	disco_announce_clear(&a);

	/* An 11-byte varint. */
	memset(p + 82, 0xff, 10);
	p[92] = 0x01;
	expect_bad(p, 93, SH_EPROTO);
	free(p);

	/* Oversize datagram, 65 addresses, one 257-byte address. */
	big = xcalloc(1, DISCO_MAX_PACKET + 1);
	memcpy(big, example_packet, 38);
	expect_bad(big, DISCO_MAX_PACKET + 1, -EMSGSIZE);
	n = 38;
	for (i = 0; i < DISCO_MAX_ADDRS + 1; i++) {
		big[n++] = 0x12;
		big[n++] = 1;
		big[n++] = 'x';
	}
	expect_bad(big, n, SH_EPROTO);
	/* 64 of them are fine. */
	assert_int_equal(disco_packet_decode(big, n - 3, &a, NULL), 0);
	assert_int_equal(a.addr_count, DISCO_MAX_ADDRS);
	disco_announce_clear(&a);
	n = 38;
	big[n++] = 0x12;
	big[n++] = 0x81;	/* 257 as a varint: 0x81 0x02 */
	big[n++] = 0x02;
	memset(big + n, 'a', 257);
	n += 257;
	expect_bad(big, n, SH_EPROTO);
	/* A length running past the end. */
	expect_bad(big, n - 1, SH_EPROTO);
	free(big);
}

/* Addresses */

static void
sa4(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	assert_int_equal(uv_ip4_addr(ip, 21027, (struct sockaddr_in *)ss), 0);
}

static void
sa6(const char *ip, uint32_t scope, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	assert_int_equal(uv_ip6_addr(ip, 21027, (struct sockaddr_in6 *)ss),
	    0);
	((struct sockaddr_in6 *)ss)->sin6_scope_id = scope;
}

static void
expect_fill(const char *url, const struct sockaddr_storage *src, int want,
    const char *want_url)
{
	char	out[DISCO_ADDR_SIZE];
	int	rc;

	rc = disco_fill_address(url, (const struct sockaddr *)src, out,
	    sizeof(out));
	if (rc != want)
		fail_msg("%s: got %d, want %d", url, rc, want);
	if (want == 0)
		assert_string_equal(out, want_url);
}

static void
test_disco_fill_address_table(void **state)
{
	struct sockaddr_storage	v4, v6, v6ll, mapped;
	char			lo[IF_NAMESIZE], want[DISCO_ADDR_SIZE];
	unsigned		lo_idx;

	(void)state;
	sa4("192.0.2.7", &v4);
	sa6("2001:db8::7", 0, &v6);
	sa6("::ffff:192.0.2.9", 0, &mapped);
	/* "lo" exists everywhere; the zone only needs a real index. */
	lo_idx = if_nametoindex("lo");
	assert_true(lo_idx != 0);
	assert_non_null(if_indextoname(lo_idx, lo));
	sa6("fe80::1", lo_idx, &v6ll);

	/* Unspecified hosts take the source address, keeping the port. */
	expect_fill("tcp://0.0.0.0:22000", &v4, 0, "tcp://192.0.2.7:22000");
	expect_fill("tcp://:22000", &v4, 0, "tcp://192.0.2.7:22000");
	expect_fill("tcp://[::]:22000", &v4, 0, "tcp://192.0.2.7:22000");
	expect_fill("tcp://0.0.0.0:22000", &v6, 0,
	    "tcp://[2001:db8::7]:22000");
	(void)snprintf(want, sizeof(want), "tcp://[fe80::1%%%s]:22001", lo);
	expect_fill("tcp://[::]:22001", &v6ll, 0, want);
	expect_fill("tcp://:22000", &mapped, 0, "tcp://192.0.2.9:22000");
	expect_fill("TCP://0.0.0.0:22000", &v4, 0, "tcp://192.0.2.7:22000");

	/* Specified hosts are kept (normalised), whatever the source. */
	expect_fill("tcp://198.51.100.4:22000", &v6, 0,
	    "tcp://198.51.100.4:22000");
	expect_fill("tcp://[2001:DB8:0::1]:22000", &v4, 0,
	    "tcp://[2001:db8::1]:22000");
	/* A peer's zone is dropped; ours is added for link-local. */
	(void)snprintf(want, sizeof(want), "tcp://[fe80::2%%%s]:22000", lo);
	expect_fill("tcp://[fe80::2%eth9]:22000", &v6ll, 0, want);

	/* tcp4/tcp6 only with the matching family. */
	expect_fill("tcp4://0.0.0.0:22000", &v4, 0, "tcp://192.0.2.7:22000");
	expect_fill("tcp4://0.0.0.0:22000", &v6, -EAFNOSUPPORT, NULL);
	expect_fill("tcp4://[2001:db8::1]:22000", &v4, -EAFNOSUPPORT, NULL);
	expect_fill("tcp6://[::]:22000", &v6, 0, "tcp://[2001:db8::7]:22000");
	expect_fill("tcp6://:22000", &v4, -EAFNOSUPPORT, NULL);
	expect_fill("tcp6://:22000", &mapped, -EAFNOSUPPORT, NULL);
	expect_fill("tcp6://192.0.2.1:22000", &v4, -EAFNOSUPPORT, NULL);

	/* Schemes we do not speak. */
	expect_fill("quic://0.0.0.0:22000", &v4, -EPROTONOSUPPORT, NULL);
	expect_fill("relay://192.0.2.1:22067/?id=X", &v4, -EPROTONOSUPPORT,
	    NULL);
	expect_fill("tcpx://0.0.0.0:1", &v4, -EPROTONOSUPPORT, NULL);

	/* Garbage. */
	expect_fill("", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0:", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0:0", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0:65536", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0:-1", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://0.0.0.0:22000/", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://::1:22000", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://[::1:22000", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://[]:22000", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://[1.2.3.4]:22000", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://example.com:22000", &v4, SH_EPARSE, NULL);
	expect_fill("tcp://1.2.3.4.5:22000", &v4, SH_EPARSE, NULL);
}

/* Cache */

static const char *const addrs_a[] = { "tcp://192.0.2.1:22000",
	"tcp://[2001:db8::1]:22000" };
static const char *const addrs_a_rev[] = { "tcp://[2001:db8::1]:22000",
	"tcp://192.0.2.1:22000" };
static const char *const addrs_b[] = { "tcp://192.0.2.1:22001" };

/* Insert from an IPv4 source at now_ms. */
static enum disco_change
ins4(struct disco_cache *c, const struct device_id *id, int64_t inst,
    const char *const *addrs, size_t count, uint64_t now_ms)
{
	return disco_cache_insert(c, id, AF_INET, inst, addrs, count, now_ms,
	    (int64_t)(1700000000 + now_ms / 1000));
}

static void
test_disco_cache_expiry(void **state)
{
	struct disco_cache	*c;
	struct device_id	 id;
	const char *const	*got;
	size_t			 n;

	(void)state;
	c = disco_cache_new(0, 90000);
	make_id(7, &id);
	assert_int_equal(disco_cache_lookup(c, &id, 0, &got, &n),
	    SH_ENOTFOUND);
	assert_int_equal(ins4(c, &id, 5, addrs_a, 2, 1000), DISCO_CHANGE_NEW);
	assert_int_equal(disco_cache_lookup(c, &id, 90999, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[0], addrs_a[0]);
	/* 90 s after the last announcement it is no longer used. */
	assert_int_equal(disco_cache_lookup(c, &id, 91000, &got, &n),
	    SH_ENOTFOUND);
	assert_null(got);
	/* A refresh at 60 s extends it to 150 s. */
	assert_int_equal(ins4(c, &id, 5, addrs_a, 2, 60000), DISCO_CHANGE_NONE);
	assert_int_equal(disco_cache_lookup(c, &id, 149999, &got, &n), 0);
	assert_int_equal(disco_cache_expire(c, 149999, NULL, NULL), 0);
	assert_int_equal(disco_cache_count(c), 1);
	assert_int_equal(disco_cache_expire(c, 150000, NULL, NULL), 1);
	assert_int_equal(disco_cache_count(c), 0);
	disco_cache_free(c);
}

static void
count_cb(const struct disco_entry *e, void *arg)
{
	struct device_id	*seen = arg;
	size_t			 i;

	/* Records the IDs in visiting order, first byte only. */
	for (i = 0; i < IDENTITY_ID_LEN && seen->raw[i] != 0; i++)
		;
	assert_true(i < IDENTITY_ID_LEN);
	seen->raw[i] = e->id.raw[0];
}

static void
test_disco_cache_eviction(void **state)
{
	struct disco_cache	*c;
	struct device_id	 id, order;
	const char *const	*got;
	size_t			 n;
	uint8_t			 i;

	(void)state;
	c = disco_cache_new(4, 90000);
	for (i = 1; i <= 4; i++) {
		make_id(i, &id);
		assert_int_equal(ins4(c, &id, i, addrs_b, 1, 1000 * i),
		    DISCO_CHANGE_NEW);
	}
	/* Refresh device 1, so device 2 is now the oldest. */
	make_id(1, &id);
	assert_int_equal(ins4(c, &id, 1, addrs_b, 1, 5000),
	    DISCO_CHANGE_NONE);
	make_id(5, &id);
	assert_int_equal(ins4(c, &id, 5, addrs_b, 1, 6000),
	    DISCO_CHANGE_NEW);
	assert_int_equal(disco_cache_count(c), 4);
	make_id(2, &id);
	assert_int_equal(disco_cache_lookup(c, &id, 6000, &got, &n),
	    SH_ENOTFOUND);
	make_id(3, &id);
	assert_int_equal(disco_cache_lookup(c, &id, 6000, &got, &n), 0);
	/* Iteration: most recent first. */
	memset(&order, 0, sizeof(order));
	disco_cache_foreach(c, 6000, count_cb, &order);
	assert_memory_equal(order.raw, "\x05\x01\x04\x03\x00", 5);
	/* A long enough bound never evicts while the entries are few. */
	for (i = 6; i < 200; i++) {
		make_id(i, &id);
		(void)ins4(c, &id, i, addrs_b, 1, 7000 + i);
	}
	assert_int_equal(disco_cache_count(c), 4);
	disco_cache_free(c);
}

static void
test_disco_cache_changes(void **state)
{
	struct disco_cache	*c;
	struct device_id	 id;
	const char *const	*got;
	size_t			 n;

	(void)state;
	c = disco_cache_new(0, 90000);
	make_id(9, &id);
	assert_int_equal(ins4(c, &id, 100, addrs_a, 2, 0),
	    DISCO_CHANGE_NEW);
	assert_int_equal(ins4(c, &id, 100, addrs_a, 2, 1),
	    DISCO_CHANGE_NONE);
	/* Order does not matter. */
	assert_int_equal(ins4(c, &id, 100, addrs_a_rev, 2, 2),
	    DISCO_CHANGE_NONE);
	/* A new address joins the set (the IPv6 copy of an announcement
	 * fills in another source than the IPv4 one)... */
	assert_int_equal(ins4(c, &id, 100, addrs_b, 1, 3),
	    DISCO_CHANGE_ADDRESSES);
	assert_int_equal(disco_cache_lookup(c, &id, 3, &got, &n), 0);
	assert_int_equal(n, 3);
	/* ...and packets that repeat part of it change nothing. */
	assert_int_equal(ins4(c, &id, 100, addrs_a, 2, 4),
	    DISCO_CHANGE_NONE);
	assert_int_equal(ins4(c, &id, 100, NULL, 0, 5),
	    DISCO_CHANGE_NONE);
	/* An address not announced for 90 s leaves the set. */
	assert_int_equal(ins4(c, &id, 100, addrs_a, 2, 80000),
	    DISCO_CHANGE_NONE);
	assert_int_equal(ins4(c, &id, 100, addrs_a, 2, 90003),
	    DISCO_CHANGE_ADDRESSES);
	assert_int_equal(disco_cache_lookup(c, &id, 90003, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_false(strcmp(got[0], addrs_b[0]) == 0 ||
	    strcmp(got[1], addrs_b[0]) == 0);
	/* A restart, even with the same addresses, replaces the set. */
	assert_int_equal(ins4(c, &id, 101, addrs_b, 1, 90004),
	    DISCO_CHANGE_RESTARTED);
	assert_int_equal(disco_cache_lookup(c, &id, 90004, &got, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(got[0], addrs_b[0]);
	/* After expiry the device is new again. */
	assert_int_equal(ins4(c, &id, 101, NULL, 0, 180004),
	    DISCO_CHANGE_NEW);
	assert_int_equal(disco_cache_count(c), 1);
	disco_cache_free(c);
}

/*
 * Syncthing 1.19 announces over IPv4 and IPv6 from two clients with two
 * instance IDs: alternating between them is not a restart, and a restart
 * over one family keeps what was learnt over the other.
 */
static void
test_disco_cache_instance_per_family(void **state)
{
	struct disco_cache	*c;
	struct device_id	 id;
	const char *const	 v4[] = { "tcp://192.0.2.1:22000" };
	const char *const	 v6[] = { "tcp://[fe80::1%lo]:22000" };
	const char *const	 v4new[] = { "tcp://192.0.2.1:22001" };
	const char *const	*got;
	size_t			 n;

	(void)state;
	c = disco_cache_new(0, 90000);
	make_id(3, &id);
	assert_int_equal(ins4(c, &id, 111, v4, 1, 0), DISCO_CHANGE_NEW);
	assert_int_equal(disco_cache_insert(c, &id, AF_INET6, 222, v6, 1, 1,
	    0), DISCO_CHANGE_ADDRESSES);
	assert_int_equal(ins4(c, &id, 111, v4, 1, 30000), DISCO_CHANGE_NONE);
	assert_int_equal(disco_cache_insert(c, &id, AF_INET6, 222, v6, 1,
	    30001, 0), DISCO_CHANGE_NONE);
	/* Restart seen over IPv4 first: the old IPv4 port goes, the IPv6
	 * address stays until its own restart or expiry. */
	assert_int_equal(ins4(c, &id, 333, v4new, 1, 40000),
	    DISCO_CHANGE_RESTARTED);
	assert_int_equal(disco_cache_lookup(c, &id, 40000, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_true(strcmp(got[0], v4new[0]) == 0 ||
	    strcmp(got[1], v4new[0]) == 0);
	assert_true(strcmp(got[0], v4[0]) != 0 && strcmp(got[1], v4[0]) != 0);
	assert_int_equal(disco_cache_insert(c, &id, AF_INET6, 444, v6, 1,
	    40001, 0), DISCO_CHANGE_RESTARTED);
	assert_int_equal(ins4(c, &id, 333, v4new, 1, 70000), DISCO_CHANGE_NONE);
	disco_cache_free(c);
}

/* Runtime */

struct seen {
	int			 calls;
	struct device_id	 id;
	size_t			 count;
	char			 addr[DISCO_ADDR_SIZE];
};

static void
on_seen(const struct device_id *id, const char *const *addrs, size_t count,
    void *arg)
{
	struct seen	*s = arg;

	s->calls++;
	s->id = *id;
	s->count = count;
	s->addr[0] = '\0';
	if (count > 0)
		(void)snprintf(s->addr, sizeof(s->addr), "%s", addrs[0]);
}

struct rt {
	uv_loop_t	loop;
	uv_timer_t	tick;
};

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void
rt_init(struct rt *rt)
{
	assert_int_equal(uv_loop_init(&rt->loop), 0);
	assert_int_equal(uv_timer_init(&rt->loop, &rt->tick), 0);
	/* Wakes UV_RUN_ONCE now and then so deadlines are noticed. */
	assert_int_equal(uv_timer_start(&rt->tick, tick_cb, 10, 10), 0);
}

static void
rt_fini(struct rt *rt)
{
	uv_close((uv_handle_t *)&rt->tick, NULL);
	assert_int_equal(uv_run(&rt->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&rt->loop), 0);
}

/* Run the loop until *flag >= want; false on timeout. */
static bool
run_until(struct rt *rt, const int *flag, int want)
{
	uint64_t	end = util_now_ms() + wait_ms();

	while (*flag < want && util_now_ms() < end)
		(void)uv_run(&rt->loop, UV_RUN_ONCE);
	return *flag >= want;
}

static void
open_test(struct rt *rt, uint8_t idbyte, const char *to, uint32_t interval,
    struct seen *s, struct disco **out)
{
	struct disco_params	p;

	memset(&p, 0, sizeof(p));
	make_id(idbyte, &p.self);
	p.announce = true;
	p.listen = true;
	p.interval_ms = interval;
	p.on_seen = on_seen;
	p.arg = s;
	p.test_unicast_to = to;
	assert_int_equal(disco_open(&rt->loop, &p, out), 0);
	assert_true(disco_listen_port(*out) != 0);
	assert_true(disco_instance_id(*out) >= 0);
}

static void
set_dst(struct disco *d, uint16_t port)
{
	char	s[32];

	(void)snprintf(s, sizeof(s), "127.0.0.1:%u", (unsigned)port);
	assert_int_equal(disco_test_set_unicast(d, s), 0);
}

static void
test_disco_loopback_exchange(void **state)
{
	struct rt		 rt;
	struct disco		*a = NULL, *b = NULL, *b2 = NULL;
	struct seen		 sa, sb, sb2;
	struct device_id	 want;
	const char		*ua[] = { "tcp://0.0.0.0:22001",
				    "quic://0.0.0.0:22001" };
	const char		*ub[] = { "tcp://:22002" };
	const char		*ub2[] = { "tcp://[::]:22003" };
	json_t			*j;
	const char		*dev;
	char			 idstr[IDENTITY_ID_STR_SIZE];

	(void)state;
	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	memset(&sb2, 0, sizeof(sb2));
	rt_init(&rt);
	/* A long interval: everything below is the immediate sends. */
	open_test(&rt, 0xaa, "", 600000, &sa, &a);
	open_test(&rt, 0xbb, "", 600000, &sb, &b);

	/* A hears itself first: its own ID must be ignored. */
	set_dst(a, disco_listen_port(a));
	assert_int_equal(disco_set_addresses(a, ua, 2), 0);
	/* B announces to A; A sees B with the filled-in source address. */
	set_dst(b, disco_listen_port(a));
	assert_int_equal(disco_set_addresses(b, ub, 1), 0);
	assert_true(run_until(&rt, &sa.calls, 1));
	assert_int_equal(sa.calls, 1);
	make_id(0xbb, &want);
	assert_memory_equal(sa.id.raw, want.raw, IDENTITY_ID_LEN);
	assert_int_equal(sa.count, 1);
	assert_string_equal(sa.addr, "tcp://127.0.0.1:22002");
	assert_int_equal(disco_cache_count(disco_cache(a)), 1);

	/* A answers a new device at once (rate-limited to 1/s after its
	 * own send above), now towards B. */
	set_dst(a, disco_listen_port(b));
	assert_true(run_until(&rt, &sb.calls, 1));
	make_id(0xaa, &want);
	assert_memory_equal(sb.id.raw, want.raw, IDENTITY_ID_LEN);
	assert_int_equal(sb.count, 1);	/* quic dropped */
	assert_string_equal(sb.addr, "tcp://127.0.0.1:22001");

	/* Status listing. */
	j = disco_discovered_json(a);
	assert_non_null(j);
	assert_int_equal(json_array_size(j), 1);
	dev = json_string_value(json_object_get(json_array_get(j, 0),
	    "device_id"));
	make_id(0xbb, &want);
	identity_id_format(&want, idstr);
	assert_non_null(dev);
	assert_string_equal(dev, idstr);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    json_array_get(j, 0), "addresses"), 0)), "tcp://127.0.0.1:22002");
	assert_true(json_integer_value(json_object_get(json_array_get(j, 0),
	    "last_seen")) > 1600000000);
	json_decref(j);

	/* B restarts (same ID, new instance, new port): A learns the new
	 * address and answers at once, long before the interval. */
	disco_close(b);
	b = NULL;
	open_test(&rt, 0xbb, "", 600000, &sb2, &b2);
	assert_true(disco_instance_id(b2) != 0);
	set_dst(a, disco_listen_port(b2));
	set_dst(b2, disco_listen_port(a));
	assert_int_equal(disco_set_addresses(b2, ub2, 1), 0);
	assert_true(run_until(&rt, &sa.calls, 2));
	assert_string_equal(sa.addr, "tcp://127.0.0.1:22003");
	assert_true(run_until(&rt, &sb2.calls, 1));
	assert_string_equal(sb2.addr, "tcp://127.0.0.1:22001");

	disco_close(a);
	disco_close(b2);
	rt_fini(&rt);
}

static void
test_disco_interval_and_expiry(void **state)
{
	struct rt		 rt;
	struct disco		*a = NULL, *b = NULL;
	struct seen		 sa, sb;
	const char		*ub[] = { "tcp://0.0.0.0:22010" };
	uint64_t		 t0;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	rt_init(&rt);
	/* The environment knob is used only when the param is 0. */
	assert_int_equal(setenv(DISCO_INTERVAL_ENV, "50", 1), 0);
	open_test(&rt, 0x11, "", 0, &sa, &a);
	assert_int_equal(unsetenv(DISCO_INTERVAL_ENV), 0);
	open_test(&rt, 0x22, "", 100, &sb, &b);
	set_dst(b, disco_listen_port(a));
	assert_int_equal(disco_set_addresses(b, ub, 1), 0);
	assert_true(run_until(&rt, &sa.calls, 1));
	assert_int_equal(sa.count, 1);
	/* B falls silent: A forgets it after 3 x 50 ms and reports an
	 * empty address set. */
	t0 = util_now_ms();
	assert_int_equal(disco_set_addresses(b, NULL, 0), 0);
	assert_true(run_until(&rt, &sa.calls, 2));
	assert_int_equal(sa.count, 0);
	assert_true(util_now_ms() - t0 >= 100);
	assert_int_equal(disco_cache_count(disco_cache(a)), 0);
	disco_close(a);
	disco_close(b);
	rt_fini(&rt);
}

static void
test_disco_rate_limit(void **state)
{
	struct rt		 rt;
	struct disco		*a = NULL;
	struct seen		 sa;
	struct device_id	 id;
	struct sockaddr_in	 to;
	uv_udp_t		 tx;
	uv_buf_t		 b;
	const char		*u[] = { "tcp://0.0.0.0:1" };
	uint8_t			*pkt;
	size_t			 len;
	uint64_t		 end;
	int			 i;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	rt_init(&rt);
	open_test(&rt, 0x33, "", 600000, &sa, &a);
	assert_int_equal(uv_udp_init(&rt.loop, &tx), 0);
	assert_int_equal(uv_ip4_addr("127.0.0.1", disco_listen_port(a), &to),
	    0);
	/* 25 devices from one source within well under a second: at most
	 * two one-second windows' worth (2 x 10) may pass. */
	for (i = 0; i < 25; i++) {
		make_id((uint8_t)(0x40 + i), &id);
		assert_int_equal(disco_packet_encode(&id, u, 1, i, &pkt, &len),
		    0);
		b = uv_buf_init((char *)pkt, (unsigned)len);
		assert_int_equal(uv_udp_try_send(&tx, &b, 1,
		    (const struct sockaddr *)&to), (int)len);
		free(pkt);
	}
	assert_true(run_until(&rt, &sa.calls, DISCO_RATE_PER_SOURCE));
	/* Give the rest time to arrive (they are already queued). */
	end = util_now_ms() + 300;
	while (util_now_ms() < end)
		(void)uv_run(&rt.loop, UV_RUN_ONCE);
	assert_true(sa.calls <= 2 * DISCO_RATE_PER_SOURCE);
	assert_true(sa.calls < 25);
	uv_close((uv_handle_t *)&tx, NULL);
	disco_close(a);
	rt_fini(&rt);
}

static void
test_disco_open_refuses_non_loopback(void **state)
{
	struct rt		 rt;
	struct disco_params	 p;
	struct disco		*d = (struct disco *)&p;

	(void)state;
	rt_init(&rt);
	memset(&p, 0, sizeof(p));
	make_id(1, &p.self);
	p.announce = true;
	p.test_unicast_to = "192.0.2.1:21027";
	assert_int_equal(disco_open(&rt.loop, &p, &d), -EINVAL);
	assert_null(d);
	p.test_unicast_to = "127.0.0.1";
	assert_int_equal(disco_open(&rt.loop, &p, &d), -EINVAL);
	p.test_unicast_to = "";
	assert_int_equal(disco_open(&rt.loop, &p, &d), 0);
	assert_int_equal(disco_test_set_unicast(d, "10.0.0.1:1"), -EINVAL);
	assert_int_equal(disco_test_set_unicast(d, "127.0.0.2:1"), 0);
	disco_close(d);
	rt_fini(&rt);
}

static void
test_disco_shares_port(void **state)
{
	struct rt		 rt;
	struct disco_params	 p;
	struct disco		*a = NULL, *b = NULL;

	(void)state;
	rt_init(&rt);
	memset(&p, 0, sizeof(p));
	make_id(1, &p.self);
	p.listen = true;
	p.test_unicast_to = "";
	assert_int_equal(disco_open(&rt.loop, &p, &a), 0);
	/* A second listener on the same port, as Syncthing on this host
	 * would be: SO_REUSEADDR lets both bind. */
	p.port = disco_listen_port(a);
	assert_int_equal(disco_open(&rt.loop, &p, &b), 0);
	assert_int_equal(disco_listen_port(b), p.port);
	disco_close(a);
	disco_close(b);
	rt_fini(&rt);
}

/*
 * Loopback listen URLs are never announced: a daemon on 127.0.0.1 (as in
 * the integration tests) must send nothing to the LAN.
 */
static void
test_disco_loopback_urls_not_announced(void **state)
{
	struct rt		 rt;
	struct disco		*a = NULL, *b = NULL;
	struct seen		 sb;
	const char		*lo[] = { "tcp://127.0.0.1:5", "tcp://[::1]:5",
				    "tcp://localhost:5" };
	const char		*mixed[] = { "tcp://127.0.0.1:5",
				    "tcp://0.0.0.0:6" };

	(void)state;
	memset(&sb, 0, sizeof(sb));
	rt_init(&rt);
	open_test(&rt, 0x55, "", 600000, &sb, &b);
	open_test(&rt, 0x66, "", 600000, &sb, &a);
	set_dst(a, disco_listen_port(b));
	/* Nothing goes out for these; then one packet with only :6 does.
	 * Loopback datagrams arrive in order, so a packet from the first
	 * call would have been seen first. */
	assert_int_equal(disco_set_addresses(a, lo, 3), 0);
	assert_int_equal(disco_set_addresses(a, mixed, 2), 0);
	assert_true(run_until(&rt, &sb.calls, 1));
	assert_int_equal(sb.calls, 1);
	assert_int_equal(sb.count, 1);
	assert_string_equal(sb.addr, "tcp://127.0.0.1:6");
	disco_close(a);
	disco_close(b);
	rt_fini(&rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disco_encode_example),
		cmocka_unit_test(test_disco_decode_example),
		cmocka_unit_test(test_disco_encode_caps),
		cmocka_unit_test(test_disco_decode_bad),
		cmocka_unit_test(test_disco_fill_address_table),
		cmocka_unit_test(test_disco_cache_expiry),
		cmocka_unit_test(test_disco_cache_eviction),
		cmocka_unit_test(test_disco_cache_changes),
		cmocka_unit_test(test_disco_cache_instance_per_family),
		cmocka_unit_test(test_disco_loopback_exchange),
		cmocka_unit_test(test_disco_interval_and_expiry),
		cmocka_unit_test(test_disco_rate_limit),
		cmocka_unit_test(test_disco_open_refuses_non_loopback),
		cmocka_unit_test(test_disco_shares_port),
		cmocka_unit_test(test_disco_loopback_urls_not_announced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the local discovery decoder and address filling.
 * A packet that decodes is re-encoded and must decode to the same ID,
 * instance ID and addresses; every address is completed against an IPv4
 * and an IPv6 source, and a result must itself be a complete tcp:// URL
 * that fills to itself (filling is idempotent).
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "shoal/disco.h"
#include "shoal/identity.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_fill(const char *url, const struct sockaddr *src)
{
	char	out[DISCO_ADDR_SIZE], again[DISCO_ADDR_SIZE];

	if (disco_fill_address(url, src, out, sizeof(out)) != 0)
		return;
	if (strncmp(out, "tcp://", 6) != 0)
		abort();
	if (disco_fill_address(out, src, again, sizeof(again)) != 0 ||
	    strcmp(out, again) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct disco_announce	 a, b;
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	uint8_t			*out = NULL;
	size_t			 i, len;

	memset(&b, 0, sizeof(b));
	if (disco_packet_decode(data, size, &a, NULL) != 0)
		return 0;
	if (a.addr_count > DISCO_MAX_ADDRS)
		abort();
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_addr.s_addr = htonl(0xc0000207);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr.s6_addr[0] = 0x20;
	s6.sin6_addr.s6_addr[1] = 0x01;
	s6.sin6_addr.s6_addr[15] = 0x07;
	for (i = 0; i < a.addr_count; i++) {
		check_fill(a.addrs[i], (const struct sockaddr *)&s4);
		check_fill(a.addrs[i], (const struct sockaddr *)&s6);
	}
	if (disco_packet_encode(&a.id, (const char *const *)a.addrs,
	    a.addr_count, a.instance_id, &out, &len) != 0)
		abort();
	if (disco_packet_decode(out, len, &b, NULL) != 0 ||
	    !identity_id_equal(&a.id, &b.id) ||
	    a.instance_id != b.instance_id || a.addr_count != b.addr_count)
		abort();
	for (i = 0; i < a.addr_count; i++)
		if (strcmp(a.addrs[i], b.addrs[i]) != 0)
			abort();
	disco_announce_clear(&b);
	disco_announce_clear(&a);
	free(out);
	return 0;
}

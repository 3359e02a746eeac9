/* SPDX-License-Identifier: MIT */
/*
 * Names for Shoal's error codes. -errno values and libuv codes (which are
 * -errno on Unix) are named by libuv so that every code has one text.
 */
#include <uv.h>

#include "shoal/err.h"

const char *
sh_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case SH_EPROTO:
		return "protocol violation";
	case SH_ECORRUPT:
		return "corrupt data";
	case SH_ETLS:
		return "TLS error";
	case SH_EDB:
		return "index database error";
	case SH_ECONFLICT:
		return "changed on disk meanwhile";
	case SH_ECONFIG:
		return "invalid configuration";
	case SH_EEXIST:
		return "already exists";
	case SH_ENOTFOUND:
		return "not found";
	case SH_EPARSE:
		return "parse error";
	case SH_ECRYPTO:
		return "cryptographic failure";
	case SH_EHTTP:
		return "control API error";
	case SH_EFOLDER:
		return "folder root or marker missing";
	case SH_ESPACE:
		return "not enough free disk space";
	default:
		break;
	}
	if (code < 0 && code > -5000)
		return uv_strerror(code);
	return "unknown error";
}

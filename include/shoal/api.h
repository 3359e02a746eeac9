/* SPDX-License-Identifier: MIT */
/*
 * The control API: HTTP/1.1 on 127.0.0.1 served from the libuv loop, with
 * requests parsed by http-parser (a library, not a hand-made parser) and
 * JSON bodies built with jansson. Every request must carry the API key in
 * the X-API-Key header (compared in constant time). Also the blocking
 * client the CLI uses to talk to a running daemon.
 */
#ifndef SHOAL_API_H
#define SHOAL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "shoal/err.h"

#define API_KEY_FILE		"apikey"
#define API_ADDR_FILE		"api.addr"	/* written by the daemon */
#define API_MAX_REQUEST		(1024 * 1024)
#define API_MAX_CLIENTS		64

struct api;

struct api_request {
	const char	*method;	/* "GET", "POST", ... */
	const char	*path;		/* without the query: "/rest/status" */
	const char	*query;		/* raw query string or "" */
	const char	*body;		/* NUL-terminated, may be "" */
	size_t		 body_len;
};

/*
 * A route handler, run synchronously on the loop thread (it must not
 * block); `req` and its strings are valid only during the call. Returns
 * the HTTP status (outside 100..599 becomes 500); sets *resp to a JSON
 * value (ownership passes to the API, which sends and frees it) or leaves
 * NULL: an error status then gets {"error": reason}, any other an empty
 * body. 204 and 304 never carry a body.
 */
typedef int (*api_handler_cb)(const struct api_request *req, json_t **resp,
	    void *arg);

/* Lifecycle */
/*
 * Listen on `addr` ("127.0.0.1:PORT" or "[::1]:PORT"; PORT may be 0 for an
 * ephemeral port). `key` (copied) is the API key every request must carry.
 * Loop thread only. Returns 0 and sets *out, -EINVAL for an address that is
 * not loopback HOST:PORT or a key that is empty, longer than 256 bytes or
 * not visible ASCII, or a libuv error (e.g. UV_EADDRINUSE). On a libuv
 * error a handle may still be closing: run the loop before closing it.
 */
int	api_open(uv_loop_t *loop, const char *addr, const char *key,
	    struct api **out) SH_MUST_CHECK;
/*
 * Close the listener and all clients (replies not yet written are
 * dropped). Everything is freed from close callbacks, so the loop must run
 * afterwards; `a` must not be used after the call. May be called from a
 * handler. NULL is a no-op.
 */
void	api_close(struct api *a);
/*
 * Close clients idle for `ms` milliseconds (default 30 s; 0 restores the
 * default). Applies to timers started after the call.
 */
void	api_set_idle_timeout(struct api *a, uint64_t ms);
/*
 * Register a handler for exact (method, path); `arg` is passed back to it.
 * Copies the strings. A path with routes but none for the method gets 405,
 * an unknown path 404. Loop thread only.
 */
void	api_route(struct api *a, const char *method, const char *path,
	    api_handler_cb cb, void *arg);
/* The bound address as "127.0.0.1:PORT" or "[::1]:PORT" (borrowed). */
const char *api_bound_addr(const struct api *a);
/*
 * Value of the first query parameter `name` in `query` ("a=b&c=d", with
 * %XX and '+' decoded in names and values; "flag" alone gives ""). Caller
 * frees. NULL when absent or when its value has a bad or NUL escape.
 */
char	*api_query_param(const char *query, const char *name);

/* Key file */
/*
 * Read `home`/apikey, trimming a trailing newline. If it is missing and
 * `create` is set, write a new one atomically (mode 0600, 32 random bytes
 * in hex). Caller frees *out with free() after sodium_memzero(). Returns
 * 0, -ENOENT (missing, !create), -EINVAL (empty, over 256 bytes, or with
 * spaces or control characters), SH_ECRYPTO, or another -errno.
 */
int	api_key_load(const char *home, bool create, char **out) SH_MUST_CHECK;

/* Client (blocking; CLI only) */
/*
 * Send one request to the daemon at `addr` and read the whole response.
 * On 0, *status is the HTTP status and *body the response body (caller
 * frees). Returns 0, -ECONNREFUSED when no daemon listens, -ETIMEDOUT, or
 * SH_EHTTP for a malformed response.
 * `addr` must be loopback, like api_open()'s (the key travels in clear
 * text); `path` starts with '/' and may carry a query; `body` may be NULL;
 * `timeout_ms` (> 0) bounds the whole call. -EINVAL for bad arguments,
 * other -errno from the socket (e.g. -ECONNRESET). Responses over 64 MiB
 * are SH_EHTTP. Blocking: never call it on the loop thread.
 */
int	api_client_call(const char *addr, const char *key, const char *method,
	    const char *path, const char *body, int timeout_ms, int *status,
	    char **resp_body) SH_MUST_CHECK;

#endif /* SHOAL_API_H */

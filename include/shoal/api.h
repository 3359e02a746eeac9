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
	const char	*path;		/* path without query, e.g. "/rest/status" */
	const char	*query;		/* raw query string or "" */
	const char	*body;		/* NUL-terminated, may be "" */
	size_t		 body_len;
};

/*
 * A route handler. Returns the HTTP status; sets *resp to a JSON value
 * (ownership passes to the API, which sends and frees it) or leaves NULL.
 */
typedef int (*api_handler_cb)(const struct api_request *req, json_t **resp,
	    void *arg);

/* Lifecycle */
/* Listen on `addr` ("127.0.0.1:PORT", PORT may be 0). 0 or -errno. */
int	api_open(uv_loop_t *loop, const char *addr, const char *key,
	    struct api **out) SH_MUST_CHECK;
/* Close the listener and all clients; freed asynchronously. */
void	api_close(struct api *a);
/* Register a handler for exact (method, path). Copies the strings. */
void	api_route(struct api *a, const char *method, const char *path,
	    api_handler_cb cb, void *arg);
/* The bound address as "127.0.0.1:PORT" (borrowed). */
const char *api_bound_addr(const struct api *a);
/* Value of query parameter `name` (caller frees) or NULL. */
char	*api_query_param(const char *query, const char *name);

/* Key file */
/* Read `home`/apikey, creating it (0600, random) if missing. Caller frees
 * with free() after wiping. 0 or -errno. */
int	api_key_load(const char *home, bool create, char **out) SH_MUST_CHECK;

/* Client (blocking; CLI only) */
/*
 * Send one request to the daemon at `addr` and read the whole response.
 * On 0, *status is the HTTP status and *body the response body (caller
 * frees). Returns 0, -ECONNREFUSED when no daemon listens, -ETIMEDOUT, or
 * SH_EHTTP for a malformed response.
 */
int	api_client_call(const char *addr, const char *key, const char *method,
	    const char *path, const char *body, int timeout_ms, int *status,
	    char **resp_body) SH_MUST_CHECK;

#endif /* SHOAL_API_H */

/* SPDX-License-Identifier: MIT */
/*
 * The control API. A small HTTP/1.1 server on the daemon's libuv loop,
 * bound to loopback only, that the CLI and the web page talk to. Requests
 * are parsed by http-parser, bodies are JSON (jansson), and every request
 * must carry the API key in X-API-Key. Handlers run synchronously on the
 * loop; each returns a status and a JSON value that we serialise and send.
 *
 * Also here: the key file (home/apikey) and the blocking client the CLI
 * uses to call a running daemon. See docs/internals/api.md.
 *
 * Lifetimes (libuv rules, style.md section 5):
 *   (1) A client struct holds two handles (tcp, timer) and is freed only
 *       after both close callbacks have run.
 *   (2) Each uv_write owns its bytes; they are freed in the write callback.
 *   (3) struct api is freed once the listener and every client are closed,
 *       so code running inside any callback may still read c->api.
 *   (4) After any call that may close a client (dispatching a request),
 *       code checks c->closing before touching the stream again.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>
#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "shoal/api.h"
#include "shoal/log.h"
#include "shoal/util.h"

#define API_IDLE_MS		30000	/* idle keep-alive connections */
#define API_LINGER_MS		2000	/* drain input after a final reply */
#define API_MAX_WRITE_QUEUE	(16 * 1024 * 1024)
#define API_MAX_KEY_LEN		256
#define API_KEY_RANDOM_BYTES	32
#define API_MAX_RESPONSE	(64 * 1024 * 1024)
#define API_MAX_RESP_HEADERS	(64 * 1024)
#define API_ADDR_LEN		64

struct api_route_ent {
	char		*method;	/* owned */
	char		*path;		/* owned */
	api_handler_cb	 cb;
	void		*arg;		/* borrowed, handler's */
};

struct api_client;

struct api {
	uv_loop_t		*loop;		/* borrowed */
	uv_tcp_t		 listener;
	char			*key;		/* owned, wiped on free */
	size_t			 key_len;
	char			 bound[API_ADDR_LEN];
	struct api_route_ent	*routes;	/* owned array */
	size_t			 route_count;
	struct api_client	*clients;	/* list of live clients */
	size_t			 client_count;	/* includes closing ones */
	uint64_t		 idle_ms;	/* idle client timeout */
	bool			 closing;
	bool			 listener_closed;
};

enum api_client_state {
	API_CLIENT_READING,	/* parsing requests */
	API_CLIENT_DRAINING,	/* final reply sent; discarding input */
};

struct api_client {
	uv_tcp_t		 tcp;
	uv_timer_t		 timer;
	struct api		*api;
	struct api_client	*next;
	struct api_client	*prev;
	int			 open_handles;	/* free when it reaches 0 */
	bool			 closing;
	bool			 eof;		/* peer sent FIN */
	enum api_client_state	 state;

	http_parser		 parser;
	size_t			 req_bytes;	/* of this request */
	struct util_buf		 url;
	struct util_buf		 body;
	struct util_buf		 field;		/* header name being read */
	struct util_buf		 key;		/* X-API-Key value */
	bool			 field_done;	/* last callback was a value */
	bool			 in_key;	/* current value is X-API-Key */
	bool			 key_seen;
	bool			 key_bad;	/* repeated or oversized key */
	bool			 too_big;	/* request exceeded the cap */
};

struct api_write {
	uv_write_t	 req;
	char		*data;		/* owned until the callback */
	bool		 close_after;	/* last reply on this connection */
};

/* Only the drop path needs a bare handle (over the client cap). */
struct api_reject {
	uv_tcp_t	 tcp;
};

static void	client_close(struct api_client *);
static void	api_maybe_free(struct api *);

static const char *
status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return status < 400 ? "OK" : "Error";
	}
}

/*
 * Parse "127.0.0.1:PORT" or "[::1]:PORT" into `ss`. Anything that is not a
 * loopback address is refused: the API key travels in clear text, and the
 * design allows the API on loopback only (design.md section 1).
 */
static int
parse_addr(const char *addr, struct sockaddr_storage *ss)
{
	char		 host[INET6_ADDRSTRLEN + 1];
	const char	*colon, *hs, *he;
	uint64_t	 port;
	size_t		 hlen;
	int		 rc;

	memset(ss, 0, sizeof(*ss));
	if (addr == NULL) {
		rc = -EINVAL;
		goto out;
	}
	if (addr[0] == '[') {
		hs = addr + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':') {
			rc = -EINVAL;
			goto out;
		}
		colon = he + 1;
	} else {
		hs = addr;
		colon = strrchr(addr, ':');
		if (colon == NULL) {
			rc = -EINVAL;
			goto out;
		}
		he = colon;
	}
	hlen = (size_t)(he - hs);
	if (hlen == 0 || hlen >= sizeof(host)) {
		rc = -EINVAL;
		goto out;
	}
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (util_parse_u64(colon + 1, 0, 65535, &port) != 0) {
		rc = -EINVAL;
		goto out;
	}
	if (addr[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (uv_ip6_addr(host, (int)port, s6) != 0 ||
		    !IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
			rc = -EINVAL;
			goto out;
		}
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
			rc = -EINVAL;
			goto out;
		}
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		/* All of 127.0.0.0/8 is loopback. */
		if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
			rc = -EINVAL;
			goto out;
		}
	}
	rc = 0;
out:
	return rc;
}

static socklen_t
addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

/* A key goes into a header line, so it must be visible ASCII only. */
static bool
key_valid(const char *key, size_t len)
{
	size_t	i;

	if (len == 0 || len > API_MAX_KEY_LEN)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e)
			return false;
	return true;
}

/* Server: writing replies. */

static void
on_client_closed(uv_handle_t *h)
{
	struct api_client	*c = h->data;
	struct api		*a = c->api;

	if (--c->open_handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	util_buf_free(&c->url);
	util_buf_free(&c->body);
	util_buf_free(&c->field);
	if (c->key.data != NULL)
		sodium_memzero(c->key.data, c->key.cap);
	util_buf_free(&c->key);
	free(c);
	a->client_count--;
	api_maybe_free(a);
}

static void
client_close(struct api_client *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* Pending writes get their callbacks with UV_ECANCELED and free. */
	uv_close((uv_handle_t *)&c->tcp, on_client_closed);
	uv_close((uv_handle_t *)&c->timer, on_client_closed);
}

static void
on_timer(uv_timer_t *t)
{
	struct api_client *c = t->data;

	LOG_DEBUG("api", "client %s, closing",
	    c->state == API_CLIENT_DRAINING ? "linger over" : "idle");
	client_close(c);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/*
 * After the last reply of a connection: send FIN, then keep reading and
 * discarding until the peer closes or the linger timer fires. Closing at
 * once while request bytes are still unread makes the kernel send RST,
 * which can destroy the reply before the client reads it (the 413 case).
 */
static void
client_finish(struct api_client *c)
{
	uv_shutdown_t	*req;
	int		 rc;

	if (c->closing)
		return;
	c->state = API_CLIENT_DRAINING;
	req = xcalloc(1, sizeof(*req));
	rc = uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown);
	if (rc != 0) {
		free(req);
		client_close(c);
		return;
	}
	rc = uv_timer_start(&c->timer, on_timer, API_LINGER_MS, 0);
	if (rc != 0)
		client_close(c);
}

static void
on_write(uv_write_t *req, int status)
{
	struct api_write	*w = (struct api_write *)req;
	struct api_client	*c = req->handle->data;

	if (status != 0 && status != UV_ECANCELED)
		LOG_DEBUG("api", "write failed: %s", sh_strerror(status));
	if (status != 0)
		client_close(c);
	else if (c->eof && uv_stream_get_write_queue_size(req->handle) == 0)
		client_close(c);
	else if (w->close_after)
		client_finish(c);
	free(w->data);
	free(w);
}

/*
 * Queue one response. `resp` is consumed. A NULL `resp` on an error status
 * becomes {"error": reason}; on a success status, an empty body.
 */
static void
client_reply(struct api_client *c, int status, json_t *resp,
    const char *extra_headers, bool close_after)
{
	struct api_write	*w = NULL;
	uv_buf_t		 buf;
	char			*body = NULL, *head = NULL;
	size_t			 body_len, head_len, send_len;
	int			 rc;

	if (c->closing)
		goto out;
	if (status < 100 || status > 599) {
		LOG_WARN("api", "handler returned status %d", status);
		json_decref(resp);
		resp = NULL;
		status = 500;
	}
	/* RFC 9110 sections 15.3.5 and 15.4.5: these never have a body. */
	if (status == 204 || status == 304) {
		json_decref(resp);
		resp = NULL;
	}
	if (resp == NULL && status >= 400)
		resp = json_pack("{s:s}", "error", status_reason(status));
	if (resp != NULL) {
		body = json_dumps(resp, JSON_COMPACT);
		if (body == NULL) {
			LOG_ERROR("api", "cannot serialise a %d reply",
			    status);
			status = 500;
			body = xstrdup(
			    "{\"error\":\"cannot serialise reply\"}");
		}
	}
	body_len = body != NULL ? strlen(body) : 0;
	/* A reply to HEAD says how long the body would be, and omits it. */
	send_len = c->parser.method == HTTP_HEAD ? 0 : body_len;
	head = xasprintf("HTTP/1.1 %d %s\r\n"
	    "%s"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "%s"
	    "\r\n",
	    status, status_reason(status),
	    body != NULL ? "Content-Type: application/json\r\n" : "",
	    body_len,
	    extra_headers != NULL ? extra_headers : "",
	    close_after ? "Connection: close\r\n" : "");
	head_len = strlen(head);

	w = xcalloc(1, sizeof(*w));
	w->data = xmalloc(head_len + send_len + 1);
	memcpy(w->data, head, head_len);
	if (send_len > 0)
		memcpy(w->data + head_len, body, send_len);
	w->close_after = close_after;
	buf = uv_buf_init(w->data, (unsigned int)(head_len + send_len));
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
	if (rc != 0) {
		LOG_DEBUG("api", "uv_write: %s", sh_strerror(rc));
		client_close(c);
		goto out;
	}
	w = NULL;
out:
	if (w != NULL) {
		free(w->data);
		free(w);
	}
	free(head);
	free(body);
	json_decref(resp);
}

static void
client_error(struct api_client *c, int status, const char *msg)
{
	/* The error is final: stop parsing, answer, then close. */
	c->state = API_CLIENT_DRAINING;
	client_reply(c, status, json_pack("{s:s}", "error", msg), NULL, true);
}

/* Server: request dispatch. */

static bool
key_matches(const struct api_client *c)
{
	const struct api	*a = c->api;

	if (!c->key_seen || c->key_bad || c->key.len != a->key_len)
		return false;
	return sodium_memcmp(c->key.data, a->key, a->key_len) == 0;
}

static void
client_dispatch(struct api_client *c)
{
	struct api		*a = c->api;
	struct api_request	 req;
	struct http_parser_url	 u;
	const struct api_route_ent *match = NULL;
	json_t			*resp = NULL;
	char			*path = NULL, *query = NULL, *allow = NULL;
	const char		*method;
	bool			 keep_alive, path_known = false;
	size_t			 i;
	int			 status;

	keep_alive = http_should_keep_alive(&c->parser) != 0 && !a->closing;
	method = http_method_str((enum http_method)c->parser.method);
	if (c->url.data == NULL || c->url.len == 0) {
		client_error(c, 400, "empty request target");
		goto out;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url.data, c->url.len, 0, &u) != 0 ||
	    (u.field_set & (1 << UF_PATH)) == 0) {
		client_error(c, 400, "bad request target");
		goto out;
	}
	path = xstrndup(c->url.data + u.field_data[UF_PATH].off,
	    u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		query = xstrndup(c->url.data + u.field_data[UF_QUERY].off,
		    u.field_data[UF_QUERY].len);
	else
		query = xstrdup("");

	if (!key_matches(c)) {
		LOG_DEBUG("api", "%s: missing or wrong API key", method);
		client_reply(c, 401,
		    json_pack("{s:s}", "error", "missing or wrong API key"),
		    NULL, !keep_alive);
		goto out;
	}
	for (i = 0; i < a->route_count; i++) {
		if (strcmp(a->routes[i].path, path) != 0)
			continue;
		path_known = true;
		if (strcmp(a->routes[i].method, method) == 0) {
			match = &a->routes[i];
			break;
		}
	}
	if (match == NULL && path_known) {
		struct util_buf	 b;

		/* RFC 9110 section 15.5.6: a 405 lists the allowed methods. */
		util_buf_init(&b, 4096);
		for (i = 0; i < a->route_count; i++)
			if (strcmp(a->routes[i].path, path) == 0 &&
			    util_buf_printf(&b, "%s%s", b.len > 0 ? ", " : "",
			    a->routes[i].method) != 0)
				break;
		allow = xasprintf("Allow: %s\r\n",
		    b.data != NULL ? b.data : "");
		util_buf_free(&b);
		client_reply(c, 405,
		    json_pack("{s:s}", "error", "method not allowed"), allow,
		    !keep_alive);
		goto out;
	}
	if (match == NULL) {
		client_reply(c, 404, json_pack("{s:s}", "error", "not found"),
		    NULL, !keep_alive);
		goto out;
	}

	req.method = method;
	req.path = path;
	req.query = query;
	req.body = c->body.data != NULL ? c->body.data : "";
	req.body_len = c->body.len;
	status = match->cb(&req, &resp, match->arg);
	/* The handler may have called api_close(); see invariant (3). */
	if (a->closing)
		keep_alive = false;
	client_reply(c, status, resp, NULL, !keep_alive);
out:
	if (!keep_alive && !c->closing)
		c->state = API_CLIENT_DRAINING;
	free(allow);
	free(query);
	free(path);
}

/* Server: http-parser callbacks. Non-zero stops the parser. */

static int
count_bytes(struct api_client *c, size_t len)
{
	if (len > API_MAX_REQUEST || c->req_bytes > API_MAX_REQUEST - len) {
		c->too_big = true;
		return -1;
	}
	c->req_bytes += len;
	return 0;
}

static int
on_message_begin(http_parser *p)
{
	struct api_client *c = p->data;

	c->req_bytes = 0;
	util_buf_reset(&c->url);
	util_buf_reset(&c->body);
	util_buf_reset(&c->field);
	if (c->key.data != NULL)
		sodium_memzero(c->key.data, c->key.cap);
	util_buf_reset(&c->key);
	c->field_done = false;
	c->in_key = false;
	c->key_seen = false;
	c->key_bad = false;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (count_bytes(c, len) != 0 ||
	    util_buf_append(&c->url, at, len) != 0) {
		c->too_big = true;
		return -1;
	}
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (count_bytes(c, len) != 0)
		return -1;
	/* A field may arrive in pieces; a new one starts after a value. */
	if (c->field_done) {
		util_buf_reset(&c->field);
		c->field_done = false;
	}
	c->in_key = false;
	/* Names we care about are short; a long one is just not ours. */
	if (util_buf_append(&c->field, at, len) != 0)
		util_buf_reset(&c->field);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (count_bytes(c, len) != 0)
		return -1;
	if (!c->field_done) {
		c->field_done = true;
		c->in_key = c->field.data != NULL &&
		    strcasecmp(c->field.data, "X-API-Key") == 0;
		if (c->in_key) {
			/* Two keys: refuse rather than pick one. */
			if (c->key_seen)
				c->key_bad = true;
			c->key_seen = true;
		}
	}
	if (c->in_key && !c->key_bad &&
	    util_buf_append(&c->key, at, len) != 0)
		c->key_bad = true;
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct api_client *c = p->data;

	/* Refuse a declared oversized body before reading any of it. */
	if (p->content_length != ULLONG_MAX &&
	    p->content_length > API_MAX_REQUEST - c->req_bytes) {
		c->too_big = true;
		return -1;
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct api_client *c = p->data;

	if (count_bytes(c, len) != 0 ||
	    util_buf_append(&c->body, at, len) != 0) {
		c->too_big = true;
		return -1;
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct api_client	*c = p->data;
	size_t			 queued;

	queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	if (queued > API_MAX_WRITE_QUEUE) {
		/* Pipelining without reading the replies: drop the client. */
		LOG_WARN("api", "client not reading replies, dropping it");
		client_close(c);
		return -1;
	}
	client_dispatch(c);
	/* Stop at once if that reply was the last one. */
	return c->closing || c->state != API_CLIENT_READING ? -1 : 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Server: reading. */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	if (suggested > 65536)
		suggested = 65536;
	buf->base = xmalloc(suggested);
	buf->len = suggested;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct api_client	*c = s->data;
	enum http_errno		 err;
	size_t			 n;
	int			 rc;

	if (c->closing)
		goto out;
	if (nread == UV_EOF &&
	    uv_stream_get_write_queue_size(s) > 0) {
		/* A half-close after the request: send the replies first. */
		c->eof = true;
		c->state = API_CLIENT_DRAINING;
		rc = uv_read_stop(s);
		if (rc != 0)
			client_close(c);
		goto out;
	}
	if (nread < 0) {
		if (nread != UV_EOF)
			LOG_DEBUG("api", "read: %s", sh_strerror((int)nread));
		client_close(c);
		goto out;
	}
	if (nread == 0 || c->state == API_CLIENT_DRAINING)
		goto out;
	rc = uv_timer_start(&c->timer, on_timer, c->api->idle_ms, 0);
	if (rc != 0) {
		client_close(c);
		goto out;
	}
	n = http_parser_execute(&c->parser, &parser_settings, buf->base,
	    (size_t)nread);
	if (c->closing || c->state != API_CLIENT_READING)
		goto out;
	err = HTTP_PARSER_ERRNO(&c->parser);
	if (c->too_big) {
		client_error(c, 413, "request too large");
		goto out;
	}
	if (err != HPE_OK) {
		LOG_DEBUG("api", "bad request: %s", http_errno_name(err));
		client_error(c, 400, http_errno_description(err));
		goto out;
	}
	if (c->parser.upgrade || n != (size_t)nread) {
		client_error(c, 400, "protocol upgrade not supported");
		goto out;
	}
out:
	free(buf->base);
}

static void
on_reject_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct api		*a = server->data;
	struct api_client	*c = NULL;
	struct api_reject	*r;
	int			 rc;

	if (status != 0) {
		LOG_WARN("api", "accept: %s", sh_strerror(status));
		return;
	}
	if (a->closing)
		return;
	if (a->client_count >= API_MAX_CLIENTS) {
		/* Accept and close at once so the backlog does not fill. */
		r = xcalloc(1, sizeof(*r));
		rc = uv_tcp_init(a->loop, &r->tcp);
		if (rc != 0) {
			free(r);
			return;
		}
		r->tcp.data = r;
		if (uv_accept(server, (uv_stream_t *)&r->tcp) == 0)
			LOG_WARN("api", "too many clients (%d), refusing one",
			    API_MAX_CLIENTS);
		uv_close((uv_handle_t *)&r->tcp, on_reject_closed);
		return;
	}

	c = xcalloc(1, sizeof(*c));
	c->api = a;
	util_buf_init(&c->url, API_MAX_REQUEST);
	util_buf_init(&c->body, API_MAX_REQUEST);
	util_buf_init(&c->field, 64);
	util_buf_init(&c->key, API_MAX_KEY_LEN);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	rc = uv_tcp_init(a->loop, &c->tcp);
	if (rc != 0) {
		LOG_ERROR("api", "uv_tcp_init: %s", sh_strerror(rc));
		free(c);
		return;
	}
	c->tcp.data = c;
	c->open_handles = 1;
	/* From here the struct is freed by on_client_closed. */
	c->next = a->clients;
	if (a->clients != NULL)
		a->clients->prev = c;
	a->clients = c;
	a->client_count++;

	rc = uv_timer_init(a->loop, &c->timer);
	if (rc != 0) {
		LOG_ERROR("api", "uv_timer_init: %s", sh_strerror(rc));
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, on_client_closed);
		return;
	}
	c->timer.data = c;
	c->open_handles = 2;
	rc = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (rc == 0)
		rc = uv_timer_start(&c->timer, on_timer, a->idle_ms, 0);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc != 0) {
		LOG_WARN("api", "new client: %s", sh_strerror(rc));
		client_close(c);
	}
}

/* Server: lifecycle. */

static void
api_maybe_free(struct api *a)
{
	size_t	i;

	if (!a->closing || !a->listener_closed || a->client_count > 0)
		return;
	for (i = 0; i < a->route_count; i++) {
		free(a->routes[i].method);
		free(a->routes[i].path);
	}
	free(a->routes);
	sodium_memzero(a->key, a->key_len);
	free(a->key);
	free(a);
}

static void
on_listener_closed(uv_handle_t *h)
{
	struct api *a = h->data;

	a->listener_closed = true;
	api_maybe_free(a);
}

int
api_open(uv_loop_t *loop, const char *addr, const char *key,
    struct api **out)
{
	struct sockaddr_storage	 ss, bound;
	struct api		*a = NULL;
	char			 host[INET6_ADDRSTRLEN];
	int			 namelen, rc, port;

	*out = NULL;
	rc = parse_addr(addr, &ss);
	if (rc != 0) {
		LOG_ERROR("api", "address \"%s\" is not loopback HOST:PORT",
		    addr != NULL ? addr : "(null)");
		goto out;
	}
	if (key == NULL || !key_valid(key, strlen(key))) {
		LOG_ERROR("api", "the API key is empty or malformed");
		rc = -EINVAL;
		goto out;
	}
	a = xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->idle_ms = API_IDLE_MS;
	a->key_len = strlen(key);
	a->key = xstrdup(key);
	rc = uv_tcp_init(loop, &a->listener);
	if (rc != 0) {
		LOG_ERROR("api", "uv_tcp_init: %s", sh_strerror(rc));
		goto out;
	}
	a->listener.data = a;
	rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->listener, 128,
		    on_connection);
	if (rc == 0) {
		namelen = sizeof(bound);
		rc = uv_tcp_getsockname(&a->listener,
		    (struct sockaddr *)&bound, &namelen);
	}
	if (rc != 0) {
		LOG_ERROR("api", "listen on %s: %s", addr, sh_strerror(rc));
		/* The handle is initialised: free through the close cb. */
		a->closing = true;
		uv_close((uv_handle_t *)&a->listener, on_listener_closed);
		a = NULL;
		goto out;
	}
	if (bound.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (void *)&bound;

		rc = uv_ip6_name(s6, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		if (rc == 0)
			(void)snprintf(a->bound, sizeof(a->bound), "[%s]:%d",
			    host, port);
	} else {
		const struct sockaddr_in *s4 = (void *)&bound;

		rc = uv_ip4_name(s4, host, sizeof(host));
		port = ntohs(s4->sin_port);
		if (rc == 0)
			(void)snprintf(a->bound, sizeof(a->bound), "%s:%d",
			    host, port);
	}
	if (rc != 0) {
		a->closing = true;
		uv_close((uv_handle_t *)&a->listener, on_listener_closed);
		a = NULL;
		goto out;
	}
	LOG_INFO("api", "listening on %s", a->bound);
	*out = a;
	a = NULL;
	rc = 0;
out:
	if (a != NULL) {
		sodium_memzero(a->key, a->key_len);
		free(a->key);
		free(a);
	}
	return rc;
}

void
api_close(struct api *a)
{
	struct api_client *c;

	if (a == NULL || a->closing)
		return;
	a->closing = true;
	uv_close((uv_handle_t *)&a->listener, on_listener_closed);
	for (c = a->clients; c != NULL; c = c->next)
		client_close(c);
}

void
api_set_idle_timeout(struct api *a, uint64_t ms)
{
	a->idle_ms = ms > 0 ? ms : API_IDLE_MS;
}

void
api_route(struct api *a, const char *method, const char *path,
    api_handler_cb cb, void *arg)
{
	struct api_route_ent *r;

	a->routes = xreallocarray(a->routes, a->route_count + 1,
	    sizeof(*a->routes));
	r = &a->routes[a->route_count++];
	r->method = xstrdup(method);
	r->path = xstrdup(path);
	r->cb = cb;
	r->arg = arg;
}

const char *
api_bound_addr(const struct api *a)
{
	return a->bound;
}

/* Query strings. */

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decode application/x-www-form-urlencoded text: '+' is a space and %XX a
 * byte. Returns a new string, or NULL for a bad escape or an encoded NUL
 * (which would silently cut the value short).
 */
static char *
form_decode(const char *s, size_t len)
{
	char	*out;
	size_t	 i, o = 0;
	int	 hi, lo;

	out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			if (len - i < 3)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *
api_query_param(const char *query, const char *name)
{
	const char	*p, *end, *eq;
	char		*k, *v = NULL;
	size_t		 plen;

	if (query == NULL || name == NULL)
		goto out;
	for (p = query; *p != '\0'; p = *end != '\0' ? end + 1 : end) {
		end = strchr(p, '&');
		if (end == NULL)
			end = p + strlen(p);
		plen = (size_t)(end - p);
		if (plen == 0)
			continue;
		eq = memchr(p, '=', plen);
		k = form_decode(p, eq != NULL ? (size_t)(eq - p) : plen);
		if (k == NULL)
			continue;
		if (strcmp(k, name) != 0) {
			free(k);
			continue;
		}
		free(k);
		/* The first occurrence wins, even when it does not decode. */
		if (eq == NULL)
			v = xstrdup("");
		else
			v = form_decode(eq + 1, (size_t)(end - eq - 1));
		break;
	}
out:
	return v;
}

/* Key file. */

int
api_key_load(const char *home, bool create, char **out)
{
	struct stat	 st;
	uint8_t		 raw[API_KEY_RANDOM_BYTES];
	char		 hex[2 * API_KEY_RANDOM_BYTES + 2];
	char		*path = NULL, *data = NULL;
	size_t		 len = 0;
	int		 rc;

	*out = NULL;
	path = util_path_join(home, API_KEY_FILE);
	rc = util_read_file(path, API_MAX_KEY_LEN + 2, &data, &len);
	if (rc == -ENOENT && create) {
		if (sodium_init() < 0) {
			LOG_ERROR("api", "libsodium failed to initialise");
			rc = SH_ECRYPTO;
			goto out;
		}
		randombytes_buf(raw, sizeof(raw));
		util_hex(raw, sizeof(raw), hex);
		len = 2 * sizeof(raw);
		hex[len] = '\n';
		rc = util_write_file_atomic(path, hex, len + 1, 0600);
		if (rc != 0) {
			LOG_ERROR("api", "%s: %s", path, sh_strerror(rc));
			goto out;
		}
		LOG_INFO("api", "created a new API key in %s", path);
		data = xstrndup(hex, len);
		rc = 0;
		goto done;
	}
	if (rc == -EFBIG) {
		LOG_ERROR("api", "%s: key file is too long", path);
		rc = -EINVAL;
		goto out;
	}
	if (rc != 0) {
		if (rc != -ENOENT)
			LOG_ERROR("api", "%s: %s", path, sh_strerror(rc));
		goto out;
	}
	/* An editor or `echo` adds a newline; CRLF from other systems too. */
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		data[--len] = '\0';
	if (!key_valid(data, len)) {
		LOG_ERROR("api", "%s: key is empty, too long or has "
		    "spaces or control characters", path);
		rc = -EINVAL;
		goto out;
	}
	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		LOG_WARN("api", "%s: readable by other users (mode %03o)",
		    path, (unsigned)(st.st_mode & 0777));
done:
	*out = data;
	data = NULL;
	rc = 0;
out:
	if (data != NULL) {
		sodium_memzero(data, len);
		free(data);
	}
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	free(path);
	return rc;
}

/* Client (blocking, for the CLI). */

struct api_resp {
	struct util_buf	 body;
	bool		 head;		/* the request was HEAD */
	bool		 complete;
	bool		 too_big;
};

static int
resp_on_headers_complete(http_parser *p)
{
	struct api_resp *r = p->data;

	/* A reply to HEAD announces a length but carries no body. */
	return r->head ? 1 : 0;
}

static int
resp_on_body(http_parser *p, const char *at, size_t len)
{
	struct api_resp *r = p->data;

	if (util_buf_append(&r->body, at, len) != 0) {
		r->too_big = true;
		return -1;
	}
	return 0;
}

static int
resp_on_complete(http_parser *p)
{
	struct api_resp *r = p->data;

	r->complete = true;
	/* One reply is all we asked for; ignore anything after it. */
	return -1;
}

static int
remaining_ms(uint64_t deadline)
{
	uint64_t now = util_now_ms();

	if (now >= deadline)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

/* poll() one fd until `events` or the deadline. 0, -ETIMEDOUT or -errno. */
static int
wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd	 pfd;
	int		 n, ms;

	for (;;) {
		ms = remaining_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

static int
client_connect(const struct sockaddr_storage *ss, uint64_t deadline,
    int *out)
{
	socklen_t	 sl;
	int		 fd = -1, rc, soerr;

	*out = -1;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (connect(fd, (const struct sockaddr *)ss, addr_len(ss)) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			rc = -errno;
			goto out;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc != 0)
			goto out;
		sl = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
			rc = -errno;
			goto out;
		}
		if (soerr != 0) {
			rc = -soerr;
			goto out;
		}
	}
	*out = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Send everything; a reset mid-way still lets us read an early reply. */
static int
client_send(int fd, const char *data, size_t len, uint64_t deadline)
{
	ssize_t	n;
	size_t	off = 0;
	int	rc;

	while (off < len) {
		n = send(fd, data + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc != 0)
				return rc;
			continue;
		}
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

static bool
token_ok(const char *s, bool path)
{
	if (s == NULL || *s == '\0' || (path && *s != '/'))
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int
api_client_call(const char *addr, const char *key, const char *method,
    const char *path, const char *body, int timeout_ms, int *status,
    char **resp_body)
{
	static const http_parser_settings settings = {
		.on_headers_complete = resp_on_headers_complete,
		.on_body = resp_on_body,
		.on_message_complete = resp_on_complete,
	};
	struct sockaddr_storage	 ss;
	struct api_resp		 r;
	struct util_buf		 req;
	http_parser		 parser;
	uint64_t		 deadline;
	enum http_errno		 err;
	char			 chunk[16384];
	size_t			 body_len, total = 0;
	ssize_t			 n;
	int			 fd = -1, rc, send_rc;

	*status = 0;
	*resp_body = NULL;
	util_buf_init(&req, (size_t)API_MAX_REQUEST + 8192);
	util_buf_init(&r.body, API_MAX_RESPONSE);
	r.head = method != NULL && strcmp(method, "HEAD") == 0;
	r.complete = false;
	r.too_big = false;
	rc = parse_addr(addr, &ss);
	if (rc != 0)
		goto out;
	if (key == NULL || !key_valid(key, strlen(key)) ||
	    !token_ok(method, false) || !token_ok(path, true) ||
	    timeout_ms <= 0) {
		rc = -EINVAL;
		goto out;
	}
	body_len = body != NULL ? strlen(body) : 0;
	if (util_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\n"
	    "X-API-Key: %s\r\nContent-Length: %zu\r\n%s"
	    "Connection: close\r\n\r\n", method, path, addr, key, body_len,
	    body_len > 0 ? "Content-Type: application/json\r\n" : "") != 0 ||
	    util_buf_append(&req, body != NULL ? body : "", body_len) != 0) {
		rc = -E2BIG;
		goto out;
	}
	deadline = util_now_ms() + (uint64_t)timeout_ms;
	rc = client_connect(&ss, deadline, &fd);
	if (rc != 0)
		goto out;
	/* An error while sending may follow an early reply (413): read on. */
	send_rc = client_send(fd, req.data, req.len, deadline);
	if (send_rc == -ETIMEDOUT) {
		rc = send_rc;
		goto out;
	}

	http_parser_init(&parser, HTTP_RESPONSE);
	parser.data = &r;
	while (!r.complete) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_fd(fd, POLLIN, deadline);
			if (rc != 0)
				goto out;
			continue;
		}
		if (n < 0) {
			rc = total == 0 && send_rc != 0 ? send_rc : -errno;
			goto out;
		}
		total += (size_t)n;
		if (total > (size_t)API_MAX_RESPONSE + API_MAX_RESP_HEADERS) {
			rc = SH_EHTTP;
			goto out;
		}
		/* n == 0 tells the parser about EOF, which ends a body
		 * that has no Content-Length. */
		(void)http_parser_execute(&parser, &settings, chunk,
		    (size_t)n);
		err = HTTP_PARSER_ERRNO(&parser);
		if (r.complete)
			break;
		if (r.too_big || err != HPE_OK) {
			rc = SH_EHTTP;
			goto out;
		}
		if (n == 0) {
			/* EOF before a whole reply. */
			rc = total == 0 && send_rc != 0 ? send_rc : SH_EHTTP;
			goto out;
		}
	}
	if (r.body.data == NULL && util_buf_append(&r.body, "", 0) != 0) {
		rc = SH_EHTTP;
		goto out;
	}
	*status = (int)parser.status_code;
	*resp_body = r.body.data;
	r.body.data = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (req.data != NULL)
		sodium_memzero(req.data, req.cap);
	util_buf_free(&req);
	util_buf_free(&r.body);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the control API. Each test runs a real server on its own
 * libuv loop in a thread, on 127.0.0.1:0, and talks to it either with
 * api_client_call() or with a raw socket when the test needs bytes the
 * client would never send (no key, garbage, two requests on one
 * connection). The loop is stopped through a uv_async and must close
 * cleanly, so a leak or a stray handle shows up under ASan/LSan or as
 * uv_loop_close() failing.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <http_parser.h>
#include <jansson.h>
#include <uv.h>

#include "shoal/api.h"
#include "shoal/util.h"

#define TEST_KEY	"0123456789abcdef0123456789abcdef"

struct srv {
	uv_loop_t	 loop;
	uv_async_t	 stop;
	struct api	*api;
	pthread_t	 thread;
	char		 addr[64];
	int		 port;
};

static int
timeout_ms(int base)
{
	const char	*m = getenv("SHOAL_TEST_TIMEOUT_MULT");
	uint64_t	 mult = 1;

	if (m != NULL && util_parse_u64(m, 1, 100, &mult) != 0)
		mult = 1;
	return base * (int)mult;
}

/* Handlers. */

static int
h_hello(const struct api_request *req, json_t **resp, void *arg)
{
	(void)req;
	(void)arg;
	*resp = json_pack("{s:s}", "hello", "world");
	return 200;
}

static int
h_thing(const struct api_request *req, json_t **resp, void *arg)
{
	json_t	*body;

	(void)arg;
	body = json_loadb(req->body, req->body_len, 0, NULL);
	*resp = json_pack("{s:s,s:o?,s:I}", "method", req->method, "body",
	    body, "len", (json_int_t)req->body_len);
	return 200;
}

static int
h_param(const struct api_request *req, json_t **resp, void *arg)
{
	char	*x;

	(void)arg;
	x = api_query_param(req->query, "x");
	*resp = json_pack("{s:s?,s:s}", "x", x, "path", req->path);
	free(x);
	return 200;
}

static int
h_empty(const struct api_request *req, json_t **resp, void *arg)
{
	(void)req;
	(void)resp;
	(void)arg;
	return 204;
}

/* Server thread. */

static void
on_stop(uv_async_t *as)
{
	struct srv *s = as->data;

	api_close(s->api);
	uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;

	(void)uv_run(&s->loop, UV_RUN_DEFAULT);
	return NULL;
}

static struct srv *
srv_start(uint64_t idle_ms)
{
	struct srv	*s;
	const char	*colon;
	uint64_t	 port;

	s = xcalloc(1, sizeof(*s));
	assert_int_equal(uv_loop_init(&s->loop), 0);
	assert_int_equal(api_open(&s->loop, "127.0.0.1:0", TEST_KEY,
	    &s->api), 0);
	/* Before the thread starts: the API is loop-thread only. */
	api_set_idle_timeout(s->api, idle_ms);
	api_route(s->api, "GET", "/hello", h_hello, NULL);
	api_route(s->api, "GET", "/thing", h_thing, NULL);
	api_route(s->api, "POST", "/thing", h_thing, NULL);
	api_route(s->api, "GET", "/param", h_param, NULL);
	api_route(s->api, "POST", "/empty", h_empty, NULL);
	assert_true(strlen(api_bound_addr(s->api)) < sizeof(s->addr));
	(void)snprintf(s->addr, sizeof(s->addr), "%s",
	    api_bound_addr(s->api));
	assert_true(strncmp(s->addr, "127.0.0.1:", 10) == 0);
	colon = strrchr(s->addr, ':');
	assert_int_equal(util_parse_u64(colon + 1, 1, 65535, &port), 0);
	s->port = (int)port;
	assert_int_equal(uv_async_init(&s->loop, &s->stop, on_stop), 0);
	s->stop.data = s;
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

static int
srv_setup(void **state)
{
	*state = srv_start(0);
	return 0;
}

static void
srv_stop(struct srv *s)
{
	assert_int_equal(uv_async_send(&s->stop), 0);
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	/* Every handle of the API must be closed by now. */
	assert_int_equal(uv_loop_close(&s->loop), 0);
}

static int
srv_teardown(void **state)
{
	struct srv *s = *state;

	srv_stop(s);
	free(s);
	return 0;
}

/* Raw socket helpers. */

static int
raw_connect(int port)
{
	struct sockaddr_in	 sin;
	int			 fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
raw_send(int fd, const char *s)
{
	assert_int_equal(util_write_all(fd, s, strlen(s)), 0);
}

struct raw_resp {
	int		 status;
	struct util_buf	 body;
	bool		 complete;
	bool		 keep_alive;
};

static int
raw_on_body(http_parser *p, const char *at, size_t len)
{
	struct raw_resp *r = p->data;

	return util_buf_append(&r->body, at, len) == 0 ? 0 : -1;
}

static int
raw_on_complete(http_parser *p)
{
	struct raw_resp *r = p->data;

	r->complete = true;
	r->status = (int)p->status_code;
	r->keep_alive = http_should_keep_alive(p) != 0;
	http_parser_pause(p, 1);
	return 0;
}

/*
 * Read exactly one response from `fd`, byte by byte so that nothing of a
 * following response is consumed. Returns false on EOF before a response.
 */
static bool
raw_read_response(int fd, struct raw_resp *r)
{
	static const http_parser_settings settings = {
		.on_body = raw_on_body,
		.on_message_complete = raw_on_complete,
	};
	http_parser	 p;
	struct pollfd	 pfd;
	char		 ch;
	ssize_t		 n;

	memset(r, 0, sizeof(*r));
	util_buf_init(&r->body, 1 << 20);
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = r;
	while (!r->complete) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		assert_int_equal(poll(&pfd, 1, timeout_ms(5000)), 1);
		n = read(fd, &ch, 1);
		if (n <= 0)
			return false;
		(void)http_parser_execute(&p, &settings, &ch, 1);
		if (!r->complete)
			assert_int_equal(HTTP_PARSER_ERRNO(&p), HPE_OK);
	}
	if (r->body.data == NULL)
		assert_int_equal(util_buf_append(&r->body, "", 0), 0);
	return true;
}

/*
 * Read a response head only, up to the blank line. A reply to HEAD must be
 * read this way: a response parser would wait for the announced body.
 */
static void
raw_read_head(int fd, char *buf, size_t size)
{
	size_t	got = 0;

	while (got < size - 1) {
		assert_int_equal(read(fd, buf + got, 1), 1);
		buf[++got] = '\0';
		if (got >= 4 && strcmp(buf + got - 4, "\r\n\r\n") == 0)
			return;
	}
	fail_msg("response head too long");
}

/* True when the peer closes (EOF or reset) within the timeout. */
static bool
raw_wait_closed(int fd)
{
	struct pollfd	 pfd;
	char		 buf[4096];
	ssize_t		 n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, timeout_ms(5000)) != 1)
			return false;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return true;
	}
}

static json_t *
parse_json(const char *s)
{
	json_t	*j;

	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	return j;
}

static void
assert_error_body(const char *body)
{
	json_t	*j = parse_json(body);

	assert_true(json_is_string(json_object_get(j, "error")));
	json_decref(j);
}

/* Tests. */

static void
test_api_handler_json(void **state)
{
	struct srv	*s = *state;
	json_t		*j;
	char		*body = NULL;
	int		 status = 0;

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET", "/hello",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 200);
	j = parse_json(body);
	assert_string_equal(json_string_value(json_object_get(j, "hello")),
	    "world");
	json_decref(j);
	free(body);

	/* A handler that returns no JSON sends an empty body. */
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "POST", "/empty",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 204);
	assert_string_equal(body, "");
	free(body);
}

static void
test_api_get_post_routing(void **state)
{
	struct srv	*s = *state;
	json_t		*j;
	char		*body = NULL;
	int		 status = 0;

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET", "/thing",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 200);
	j = parse_json(body);
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "GET");
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 0);
	json_decref(j);
	free(body);

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "POST", "/thing",
	    "{\"a\":42}", timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 200);
	j = parse_json(body);
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "POST");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j,
	    "body"), "a")), 42);
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 8);
	json_decref(j);
	free(body);
}

static void
test_api_query_param_decoding(void **state)
{
	struct srv	*s = *state;
	json_t		*j;
	char		*v, *body = NULL;
	int		 status = 0;

	v = api_query_param("a=1&x=hello%20w%6Frld+again&x=second", "x");
	assert_non_null(v);
	assert_string_equal(v, "hello world again");
	free(v);
	v = api_query_param("a=1&b%3Dc=%2F%26", "b=c");
	assert_non_null(v);
	assert_string_equal(v, "/&");
	free(v);
	v = api_query_param("flag&a=1", "flag");
	assert_non_null(v);
	assert_string_equal(v, "");
	free(v);
	assert_null(api_query_param("a=1&bb=2", "b"));
	assert_null(api_query_param("", "a"));
	assert_null(api_query_param("a=%zz", "a"));
	assert_null(api_query_param("a=%4", "a"));
	assert_null(api_query_param("a=x%00y", "a"));

	/* And through the server: the path excludes the query. */
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET",
	    "/param?y=1&x=caf%C3%A9+au+lait", NULL, timeout_ms(5000),
	    &status, &body), 0);
	assert_int_equal(status, 200);
	j = parse_json(body);
	assert_string_equal(json_string_value(json_object_get(j, "x")),
	    "caf\xc3\xa9 au lait");
	assert_string_equal(json_string_value(json_object_get(j, "path")),
	    "/param");
	json_decref(j);
	free(body);
}

static void
test_api_unauthorized(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		*body = NULL;
	int		 fd, status = 0;

	/* No key at all: only a raw socket can send that. */
	fd = raw_connect(s->port);
	raw_send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 401);
	assert_error_body(r.body.data);
	util_buf_free(&r.body);
	/* Two keys, one right: refused rather than guessed. */
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: nope\r\n"
	    "X-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 401);
	util_buf_free(&r.body);
	close(fd);

	/* Wrong key of the same length, and of another length. */
	assert_int_equal(api_client_call(s->addr,
	    "0123456789abcdef0123456789abcdeX", "GET", "/hello", NULL,
	    timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 401);
	assert_error_body(body);
	free(body);
	assert_int_equal(api_client_call(s->addr, "short", "GET", "/hello",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 401);
	free(body);
	/* Unknown paths are not revealed without the key either. */
	assert_int_equal(api_client_call(s->addr, "short", "GET", "/nope",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 401);
	free(body);
}

static void
test_api_not_found(void **state)
{
	struct srv	*s = *state;
	char		*body = NULL;
	int		 status = 0;

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET", "/nope",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 404);
	assert_error_body(body);
	free(body);
}

static void
test_api_method_not_allowed(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		*body = NULL;
	int		 fd, status = 0;

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "DELETE",
	    "/thing", NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 405);
	assert_error_body(body);
	free(body);
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "POST", "/hello",
	    "{}", timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 405);
	free(body);

	/* A 405 keeps a keep-alive connection usable. */
	fd = raw_connect(s->port);
	raw_send(fd, "PUT /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY
	    "\r\nContent-Length: 0\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 405);
	util_buf_free(&r.body);
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	util_buf_free(&r.body);
	close(fd);
}

static void
test_api_request_too_large(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		*big, *body = NULL;
	int		 fd, status = 0;

	big = xmalloc(API_MAX_REQUEST + 2);
	memset(big, 'a', API_MAX_REQUEST + 1);
	big[API_MAX_REQUEST + 1] = '\0';
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "POST", "/thing",
	    big, timeout_ms(10000), &status, &body), 0);
	assert_int_equal(status, 413);
	assert_error_body(body);
	free(body);
	free(big);

	/* A declared length over the cap is refused before the body. */
	fd = raw_connect(s->port);
	raw_send(fd, "POST /thing HTTP/1.1\r\nX-API-Key: " TEST_KEY
	    "\r\nContent-Length: 99999999999\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 413);
	assert_false(r.keep_alive);
	util_buf_free(&r.body);
	assert_true(raw_wait_closed(fd));
	close(fd);

	/* Chunked bodies count too: no Content-Length to check up front. */
	fd = raw_connect(s->port);
	raw_send(fd, "POST /thing HTTP/1.1\r\nX-API-Key: " TEST_KEY
	    "\r\nTransfer-Encoding: chunked\r\n\r\n");
	big = xmalloc(65536);
	memset(big, 'b', 65536);
	for (size_t sent = 0; sent <= API_MAX_REQUEST; sent += 65536) {
		if (util_write_all(fd, "10000\r\n", 7) != 0 ||
		    util_write_all(fd, big, 65536) != 0 ||
		    util_write_all(fd, "\r\n", 2) != 0)
			break;
	}
	free(big);
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 413);
	util_buf_free(&r.body);
	close(fd);

	/* The server still answers. */
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET", "/hello",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 200);
	free(body);
}

static void
test_api_malformed_request(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		*body = NULL;
	int		 fd, status = 0;

	fd = raw_connect(s->port);
	raw_send(fd, "THIS IS NOT HTTP\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 400);
	assert_error_body(r.body.data);
	util_buf_free(&r.body);
	assert_true(raw_wait_closed(fd));
	close(fd);

	fd = raw_connect(s->port);
	raw_send(fd, "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 400);
	util_buf_free(&r.body);
	close(fd);

	assert_int_equal(api_client_call(s->addr, TEST_KEY, "GET", "/hello",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 200);
	free(body);
}

static void
test_api_keep_alive(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	json_t		*j;
	int		 fd;

	fd = raw_connect(s->port);
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	assert_true(r.keep_alive);
	util_buf_free(&r.body);

	raw_send(fd, "POST /thing HTTP/1.1\r\nX-API-Key: " TEST_KEY
	    "\r\nContent-Length: 7\r\n\r\n{\"b\":7}");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	j = parse_json(r.body.data);
	assert_string_equal(json_string_value(json_object_get(j, "method")),
	    "POST");
	json_decref(j);
	util_buf_free(&r.body);

	/* Two pipelined requests in one write get two replies in order. */
	raw_send(fd, "GET /thing HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n"
	    "GET /nope HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	util_buf_free(&r.body);
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 404);
	util_buf_free(&r.body);

	/* Connection: close is honoured after the reply. */
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY
	    "\r\nConnection: close\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	assert_false(r.keep_alive);
	util_buf_free(&r.body);
	assert_true(raw_wait_closed(fd));
	close(fd);
}

static void
test_api_half_close(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	int		 fd;

	/* Some clients send FIN right after the request; they still get
	 * their reply. */
	fd = raw_connect(s->port);
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	util_buf_free(&r.body);
	assert_true(raw_wait_closed(fd));
	close(fd);
}

static void
test_api_max_clients(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		*body = NULL;
	int		 fds[API_MAX_CLIENTS], fd, i, rc, status = 0;

	for (i = 0; i < API_MAX_CLIENTS; i++)
		fds[i] = raw_connect(s->port);
	/* Make sure the server has taken the first ones: they answer. */
	raw_send(fds[API_MAX_CLIENTS - 1], "GET /hello HTTP/1.1\r\n"
	    "X-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fds[API_MAX_CLIENTS - 1], &r));
	assert_int_equal(r.status, 200);
	util_buf_free(&r.body);

	fd = raw_connect(s->port);
	assert_true(raw_wait_closed(fd));
	close(fd);

	for (i = 0; i < API_MAX_CLIENTS; i++)
		close(fds[i]);
	/* The server notices the closes asynchronously: poll. */
	for (i = 0; i < 500; i++) {
		rc = api_client_call(s->addr, TEST_KEY, "GET", "/hello", NULL,
		    timeout_ms(5000), &status, &body);
		if (rc == 0)
			break;
		(void)poll(NULL, 0, 10);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(status, 200);
	free(body);
}

static void
test_api_idle_timeout(void **state)
{
	struct srv	*s;
	struct raw_resp	 r;
	uint64_t	 t0;
	int		 fd;

	(void)state;
	s = srv_start(100);
	/* A silent client is dropped once idle. */
	t0 = util_now_ms();
	fd = raw_connect(s->port);
	assert_true(raw_wait_closed(fd));
	assert_true(util_now_ms() - t0 >= 90);
	close(fd);
	/* So is a keep-alive client after its last request. */
	fd = raw_connect(s->port);
	raw_send(fd, "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	assert_true(r.keep_alive);
	util_buf_free(&r.body);
	assert_true(raw_wait_closed(fd));
	close(fd);
	srv_stop(s);
	free(s);
}

static void
test_api_head_has_no_body(void **state)
{
	struct srv	*s = *state;
	struct raw_resp	 r;
	char		 head[4096];
	char		*body = NULL;
	int		 fd, status = 0;

	/* HEAD has no route here: 405, and the client must not wait for
	 * the body the Content-Length announces. */
	assert_int_equal(api_client_call(s->addr, TEST_KEY, "HEAD", "/hello",
	    NULL, timeout_ms(5000), &status, &body), 0);
	assert_int_equal(status, 405);
	assert_string_equal(body, "");
	free(body);
	/* On the wire, the next reply follows the headers directly. */
	fd = raw_connect(s->port);
	raw_send(fd, "HEAD /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nX-API-Key: " TEST_KEY "\r\n\r\n");
	raw_read_head(fd, head, sizeof(head));
	assert_true(strncmp(head, "HTTP/1.1 405 ", 13) == 0);
	assert_non_null(strstr(head, "Content-Length: "));
	assert_true(raw_read_response(fd, &r));
	assert_int_equal(r.status, 200);
	util_buf_free(&r.body);
	close(fd);
}

static void
test_api_client_refused(void **state)
{
	struct srv	*s = *state;
	char		 addr[64];
	char		*body = NULL;
	int		 status = 0;

	(void)snprintf(addr, sizeof(addr), "%s", s->addr);
	srv_stop(s);
	assert_int_equal(api_client_call(addr, TEST_KEY, "GET", "/hello",
	    NULL, timeout_ms(5000), &status, &body), -ECONNREFUSED);
	assert_null(body);
	/* Restart so that the teardown has something to stop. */
	free(s);
	*state = srv_start(0);
}

static void
test_api_client_timeout(void **state)
{
	struct sockaddr_in	 sin;
	socklen_t		 sl = sizeof(sin);
	char			 addr[64];
	char			*body = NULL;
	int			 lfd, status = 0;
	uint64_t		 t0;

	(void)state;
	/* A listener that never accepts: connect works, no reply comes. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl),
	    0);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%d",
	    ntohs(sin.sin_port));
	t0 = util_now_ms();
	assert_int_equal(api_client_call(addr, TEST_KEY, "GET", "/hello",
	    NULL, 200, &status, &body), -ETIMEDOUT);
	assert_true(util_now_ms() - t0 >= 190);
	assert_null(body);
	close(lfd);
}

struct bad_server {
	int		 lfd;
	const char	*reply;
};

static void *
bad_server_main(void *arg)
{
	struct bad_server	*b = arg;
	char			 buf[4096];
	ssize_t			 n;
	int			 fd;

	fd = accept(b->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	/* Read the request head, then answer with garbage. */
	n = read(fd, buf, sizeof(buf));
	if (n > 0 && util_write_all(fd, b->reply, strlen(b->reply)) != 0)
		n = -1;
	close(fd);
	return NULL;
}

static void
test_api_client_malformed_response(void **state)
{
	static const char *replies[] = {
		"NOT HTTP AT ALL\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"",
	};
	struct sockaddr_in	 sin;
	struct bad_server	 b;
	pthread_t		 t;
	socklen_t		 sl = sizeof(sin);
	char			 addr[64];
	char			*body = NULL;
	size_t			 i;
	int			 status = 0;

	(void)state;
	b.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(b.lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(b.lfd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(listen(b.lfd, 4), 0);
	assert_int_equal(getsockname(b.lfd, (struct sockaddr *)&sin, &sl),
	    0);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%d",
	    ntohs(sin.sin_port));
	for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		b.reply = replies[i];
		assert_int_equal(pthread_create(&t, NULL, bad_server_main, &b),
		    0);
		assert_int_equal(api_client_call(addr, TEST_KEY, "GET",
		    "/hello", NULL, timeout_ms(5000), &status, &body),
		    SH_EHTTP);
		assert_null(body);
		assert_int_equal(pthread_join(t, NULL), 0);
	}
	close(b.lfd);
}

static void
test_api_open_refuses_non_loopback(void **state)
{
	static const char *bad[] = {
		"0.0.0.0:0", "192.168.1.1:0", "8.8.8.8:80", "[::]:0",
		"[2001:db8::1]:0", "localhost:0", "127.0.0.1", "127.0.0.1:",
		"127.0.0.1:65536", "127.0.0.1:-1", "[::1]0", ":0", "",
	};
	uv_loop_t	 loop;
	struct api	*a = NULL;
	size_t		 i;
	int		 rc;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(api_open(&loop, bad[i], TEST_KEY, &a),
		    -EINVAL);
		assert_null(a);
	}
	/* An empty or malformed key is refused too. */
	assert_int_equal(api_open(&loop, "127.0.0.1:0", "", &a), -EINVAL);
	assert_int_equal(api_open(&loop, "127.0.0.1:0", "a b", &a), -EINVAL);

	/* IPv6 loopback works where the host has it. */
	rc = api_open(&loop, "[::1]:0", TEST_KEY, &a);
	if (rc == 0) {
		assert_true(strncmp(api_bound_addr(a), "[::1]:", 6) == 0);
		api_close(a);
	} else
		assert_true(rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_api_key_load(void **state)
{
	struct stat	 st;
	char		 tmpl[] = "/tmp/shoal-test-api-XXXXXX";
	char		*home, *path, *k1 = NULL, *k2 = NULL, *junk;
	size_t		 i;

	(void)state;
	home = mkdtemp(tmpl);
	assert_non_null(home);
	path = util_path_join(home, API_KEY_FILE);

	assert_int_equal(api_key_load(home, false, &k1), -ENOENT);
	assert_null(k1);
	assert_int_equal(api_key_load(home, true, &k1), 0);
	assert_int_equal(strlen(k1), 64);
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", k1[i]));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(api_key_load(home, true, &k2), 0);
	assert_string_equal(k1, k2);
	free(k2);
	assert_int_equal(api_key_load(home, false, &k2), 0);
	assert_string_equal(k1, k2);
	free(k2);
	free(k1);

	/* A hand-written key with CRLF is trimmed. */
	assert_int_equal(util_write_file_atomic(path, "my-key\r\n", 8, 0600),
	    0);
	assert_int_equal(api_key_load(home, true, &k1), 0);
	assert_string_equal(k1, "my-key");
	free(k1);

	/* Empty, too long, or with spaces: refused, never replaced. */
	assert_int_equal(util_write_file_atomic(path, "\n", 1, 0600), 0);
	assert_int_equal(api_key_load(home, true, &k1), -EINVAL);
	assert_null(k1);
	assert_int_equal(util_write_file_atomic(path, "a key\n", 6, 0600), 0);
	assert_int_equal(api_key_load(home, true, &k1), -EINVAL);
	junk = xmalloc(4096);
	memset(junk, 'k', 4096);
	assert_int_equal(util_write_file_atomic(path, junk, 4096, 0600), 0);
	free(junk);
	assert_int_equal(api_key_load(home, true, &k1), -EINVAL);
	assert_null(k1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4096);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(home), 0);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_api_handler_json,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_get_post_routing,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_query_param_decoding,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_unauthorized,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_not_found,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_method_not_allowed,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_request_too_large,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_malformed_request,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_keep_alive,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_half_close,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_max_clients,
		    srv_setup, srv_teardown),
		cmocka_unit_test(test_api_idle_timeout),
		cmocka_unit_test_setup_teardown(test_api_head_has_no_body,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_api_client_refused,
		    srv_setup, srv_teardown),
		cmocka_unit_test(test_api_client_timeout),
		cmocka_unit_test(test_api_client_malformed_response),
		cmocka_unit_test(test_api_open_refuses_non_loopback),
		cmocka_unit_test(test_api_key_load),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

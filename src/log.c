/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr. Lines look like
 *   2026-11-28T02:30:00.123Z INFO  scan: folder "default": added "a.txt"
 * The level check happens in the LOG_* macros, before arguments are
 * evaluated; log_write() formats and writes one line with one write(2) so
 * lines from the loop and pool threads do not interleave.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "shoal/log.h"

#define LOG_MAX_TRACE	16
#define LOG_NAME_SIZE	16

enum log_level log_max_level = LOG_LEVEL_INFO;

static struct {
	bool	all;
	size_t	count;
	char	on[LOG_MAX_TRACE][LOG_NAME_SIZE];
	size_t	off_count;
	char	off[LOG_MAX_TRACE][LOG_NAME_SIZE];
} trace;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

int
log_set_level(const char *name)
{
	size_t	i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			log_max_level = (enum log_level)i;
			return 0;
		}
	}
	return SH_EPARSE;
}

int
log_set_trace(const char *spec)
{
	const char	*p = spec, *end;
	size_t		 len;

	memset(&trace, 0, sizeof(trace));
	while (*p != '\0') {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > 0) {
			bool neg = (*p == '-');
			const char *n = neg ? p + 1 : p;
			size_t nlen = neg ? len - 1 : len;

			if (nlen == 0 || nlen >= LOG_NAME_SIZE)
				return SH_EPARSE;
			if (!neg && nlen == 3 && strncmp(n, "all", 3) == 0)
				trace.all = true;
			else if (neg) {
				if (trace.off_count == LOG_MAX_TRACE)
					return SH_EPARSE;
				memcpy(trace.off[trace.off_count++], n, nlen);
			} else {
				if (trace.count == LOG_MAX_TRACE)
					return SH_EPARSE;
				memcpy(trace.on[trace.count++], n, nlen);
			}
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

static bool
traced(const char *component)
{
	size_t	i;

	for (i = 0; i < trace.off_count; i++)
		if (strcmp(trace.off[i], component) == 0)
			return false;
	if (trace.all)
		return true;
	for (i = 0; i < trace.count; i++)
		if (strcmp(trace.on[i], component) == 0)
			return true;
	return false;
}

bool
log_enabled(enum log_level level, const char *component)
{
	if (level <= log_max_level)
		return true;
	return level == LOG_LEVEL_DEBUG && traced(component);
}

void
log_write(enum log_level level, const char *component, const char *fmt, ...)
{
	char		 line[2048];
	struct timeval	 tv;
	struct tm	 tm;
	size_t		 n;
	int		 r;
	va_list		 ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s: ",
	    (long)(tv.tv_usec / 1000), level_names[level], component);
	if (r > 0)
		n += (size_t)r;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line; a failed write to stderr has nowhere to go. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

char *
log_escape(const char *in, char *out, size_t out_size)
{
	static const char hex[] = "0123456789abcdef";
	size_t	o = 0;
	const unsigned char *p;

	if (out_size == 0)
		return out;
	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			if (o + 1 >= out_size)
				break;
			out[o++] = (char)*p;
		} else {
			if (o + 4 >= out_size)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
		}
	}
	out[o] = '\0';
	return out;
}

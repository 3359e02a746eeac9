/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr (the journal, under systemd): one line per event with
 * time, level, component and message. Four levels plus a trace switch per
 * component ("conn,pull" or "all,-db"). The macros check the level before
 * evaluating their arguments. Peer strings must be passed through
 * log_escape() before being logged; keys and file contents never are.
 */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "shoal/err.h"

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

extern enum log_level log_max_level;

/* Set the level from "error|warn|info|debug". 0 or SH_EPARSE. */
int	log_set_level(const char *name) SH_MUST_CHECK;
/* Enable DEBUG for components: "scan,db", "all", "all,-db". 0 or SH_EPARSE. */
int	log_set_trace(const char *spec) SH_MUST_CHECK;
/* True if a message at `level` from `component` would be printed. */
bool	log_enabled(enum log_level level, const char *component);
void	log_write(enum log_level level, const char *component,
	    const char *fmt, ...) SH_PRINTF(3, 4);
/*
 * Copy `in` into `out` (size out_size) with control characters and non-ASCII
 * bytes escaped as \xNN, truncating if needed. Returns out.
 */
char	*log_escape(const char *in, char *out, size_t out_size);

#define LOG_AT(lvl, comp, ...) do {					\
	if (log_enabled((lvl), (comp)))					\
		log_write((lvl), (comp), __VA_ARGS__);			\
} while (0)
#define LOG_ERROR(comp, ...)	LOG_AT(LOG_LEVEL_ERROR, comp, __VA_ARGS__)
#define LOG_WARN(comp, ...)	LOG_AT(LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define LOG_INFO(comp, ...)	LOG_AT(LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define LOG_DEBUG(comp, ...)	LOG_AT(LOG_LEVEL_DEBUG, comp, __VA_ARGS__)

#endif /* SHOAL_LOG_H */

/* SPDX-License-Identifier: MIT */
/* Unit tests for log.c: levels, per-component trace switches, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "shoal/log.h"

static void
test_log_levels(void **state)
{
	(void)state;
	assert_int_equal(log_set_level("warn"), 0);
	assert_true(log_enabled(LOG_LEVEL_ERROR, "scan"));
	assert_true(log_enabled(LOG_LEVEL_WARN, "scan"));
	assert_false(log_enabled(LOG_LEVEL_INFO, "scan"));
	assert_int_equal(log_set_level("DEBUG"), 0);
	assert_true(log_enabled(LOG_LEVEL_DEBUG, "scan"));
	assert_int_not_equal(log_set_level("loud"), 0);
	assert_int_equal(log_set_level("info"), 0);
}

static void
test_log_trace_components(void **state)
{
	(void)state;
	assert_int_equal(log_set_level("info"), 0);
	assert_int_equal(log_set_trace("scan,db"), 0);
	assert_true(log_enabled(LOG_LEVEL_DEBUG, "scan"));
	assert_true(log_enabled(LOG_LEVEL_DEBUG, "db"));
	assert_false(log_enabled(LOG_LEVEL_DEBUG, "conn"));
	assert_int_equal(log_set_trace("all,-db"), 0);
	assert_true(log_enabled(LOG_LEVEL_DEBUG, "conn"));
	assert_false(log_enabled(LOG_LEVEL_DEBUG, "db"));
	assert_int_equal(log_set_trace(""), 0);
	assert_false(log_enabled(LOG_LEVEL_DEBUG, "conn"));
	assert_int_not_equal(log_set_trace("averyveryverylongcomponentname"), 0);
	assert_int_not_equal(log_set_trace("-"), 0);
	assert_int_equal(log_set_trace(""), 0);
}

static void
test_log_escape(void **state)
{
	char	out[16];

	(void)state;
	assert_string_equal(log_escape("plain", out, sizeof(out)), "plain");
	assert_string_equal(log_escape("a\nb", out, sizeof(out)), "a\\x0ab");
	assert_string_equal(log_escape("\xff", out, sizeof(out)), "\\xff");
	/* Truncates at a character boundary and stays terminated. */
	log_escape("0123456789abcdefghij", out, sizeof(out));
	assert_int_equal(strlen(out), 15);
	log_escape("0123456789abc\n", out, sizeof(out));
	assert_string_equal(out, "0123456789abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_log_trace_components),
		cmocka_unit_test(test_log_escape),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}

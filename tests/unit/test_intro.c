/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for intro.c: what an introducer's ClusterConfig adds to our
 * config and what it takes away again (bep-brief §12).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shoal/config.h"
#include "shoal/intro.h"
#include "shoal/util.h"

static struct device_id	 self_id, p_id, x_id, y_id, u_id;

static void
ids(void)
{
	memset(&self_id, 0x11, sizeof(self_id));
	memset(&p_id, 0x22, sizeof(p_id));
	memset(&x_id, 0x33, sizeof(x_id));
	memset(&y_id, 0x44, sizeof(y_id));
	memset(&u_id, 0x55, sizeof(u_id));
}

/* Our config: introducer P (shares f), a user-added U, folders f and g. */
static struct config *
base_config(bool p_introducer)
{
	struct config	*c = config_new();
	const char	*paddr[] = { "tcp://127.0.0.1:22001" };
	char		 err[CONFIG_ERR_SIZE];

	assert_int_equal(config_device_add(c, &p_id, "p", paddr, 1,
	    p_introducer, err, sizeof(err)), 0);
	assert_int_equal(config_device_add(c, &u_id, "u", NULL, 0, false, err,
	    sizeof(err)), 0);
	assert_int_equal(config_folder_add(c, "f", "/tmp/intro-f",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 3600, true, err,
	    sizeof(err)), 0);
	assert_int_equal(config_folder_add(c, "g", "/tmp/intro-g",
	    CONFIG_FOLDER_SENDRECEIVE, CONFIG_VERSIONING_NONE, 3600, true, err,
	    sizeof(err)), 0);
	assert_int_equal(config_folder_share(c, "f", &p_id, err, sizeof(err)),
	    0);
	return c;
}

static void
add_dev(struct intro_folder *f, const struct device_id *id, const char *name,
    bool introducer, const char *addr)
{
	struct intro_device	*d;

	f->devices = xreallocarray(f->devices, f->device_count + 1,
	    sizeof(*f->devices));
	d = &f->devices[f->device_count++];
	memset(d, 0, sizeof(*d));
	d->id = *id;
	d->name = xstrdup(name);
	d->introducer = introducer;
	if (addr != NULL) {
		d->addresses = xcalloc(2, sizeof(*d->addresses));
		d->addresses[d->address_count++] = xstrdup(addr);
		d->addresses[d->address_count++] = xstrdup("quic://10.0.0.1:1");
	}
}

/* P's view: folder `fid` listing self, P and the given extra devices. */
static struct intro_view *
view(const char *fid, bool with_x, bool with_y, bool with_u)
{
	struct intro_view	*v = xcalloc(1, sizeof(*v));
	struct intro_folder	*f;

	v->introducer = p_id;
	v->folders = xcalloc(2, sizeof(*v->folders));
	f = &v->folders[v->folder_count++];
	f->id = xstrdup(fid);
	add_dev(f, &self_id, "me", false, NULL);
	add_dev(f, &p_id, "p", false, NULL);
	if (with_x)
		add_dev(f, &x_id, "x", false, "tcp://127.0.0.1:22003");
	if (with_y)
		add_dev(f, &y_id, "y", true, NULL);
	if (with_u)
		add_dev(f, &u_id, "u-as-p-calls-it", false, NULL);
	/* A folder we do not have is ignored. */
	f = &v->folders[v->folder_count++];
	f->id = xstrdup("nosuch");
	add_dev(f, &x_id, "x", false, NULL);
	return v;
}

static bool
shared(const struct config *c, const char *fid, const struct device_id *id)
{
	return config_folder_shares(config_folder_find(c, fid), id, NULL);
}

static int	logged;

static void
count_log(const char *what, void *arg)
{
	(void)arg;
	assert_non_null(strstr(what, "introduced"));
	logged++;
}

static void
test_intro_not_an_introducer(void **state)
{
	struct config		*c;
	struct intro_view	*v;

	(void)state;
	ids();
	c = base_config(false);
	v = view("f", true, true, false);
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 0);
	assert_null(config_device_find(c, &x_id));
	intro_view_free(v);
	config_free(c);
}

static void
test_intro_adds_and_removes(void **state)
{
	struct config			*c;
	struct intro_view		*v;
	const struct config_device	*x, *y;
	char				 err[CONFIG_ERR_SIZE];

	(void)state;
	ids();
	c = base_config(true);
	config_device_find(c, &p_id)->skip_introduction_removals = false;
	v = view("f", true, true, true);
	logged = 0;
	/* X and Y added and shared; U (ours) shared too; self, P skipped. */
	assert_int_equal(intro_apply(c, &self_id, v, count_log, NULL), 5);
	assert_int_equal(logged, 5);
	x = config_device_find(c, &x_id);
	assert_non_null(x);
	assert_string_equal(x->name, "x");
	assert_true(x->has_introduced_by);
	assert_true(identity_id_equal(&x->introduced_by, &p_id));
	assert_false(x->introducer);
	assert_int_equal(x->address_count, 2);
	assert_string_equal(x->addresses[0], "dynamic");
	assert_string_equal(x->addresses[1], "tcp://127.0.0.1:22003");
	y = config_device_find(c, &y_id);
	assert_true(y->introducer);
	assert_int_equal(y->address_count, 1);
	assert_true(shared(c, "f", &x_id) && shared(c, "f", &y_id) &&
	    shared(c, "f", &u_id));
	assert_false(shared(c, "g", &x_id));
	assert_string_equal(config_device_find(c, &u_id)->name, "u");
	assert_false(config_device_find(c, &u_id)->has_introduced_by);
	assert_null(config_device_find(c, &self_id));
	/* Said again: nothing to do. */
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 0);
	intro_view_free(v);

	/* The user shares g with Y by hand. P drops X, Y and U from f: X
	 * and Y lose f; X, sharing nothing else, goes; Y keeps g and stays;
	 * U, which the user added, keeps f. */
	assert_int_equal(config_folder_share(c, "g", &y_id, err, sizeof(err)),
	    0);
	v = view("f", false, false, false);
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 3);
	assert_null(config_device_find(c, &x_id));
	assert_non_null(config_device_find(c, &y_id));
	assert_false(shared(c, "f", &y_id));
	assert_true(shared(c, "g", &y_id));
	assert_true(shared(c, "f", &u_id));
	intro_view_free(v);

	/* The text form keeps the marks. */
	{
		char	*path = xstrdup("/tmp/shoal-test-intro-XXXXXX"), *f;
		struct config *back = NULL;

		assert_non_null(mkdtemp(path));
		f = util_path_join(path, "config");
		assert_int_equal(config_save(c, f), 0);
		assert_int_equal(config_load(f, &back, err, sizeof(err)), 0);
		y = config_device_find(back, &y_id);
		assert_true(y->has_introduced_by && y->introducer);
		assert_true(identity_id_equal(&y->introduced_by, &p_id));
		config_free(back);
		assert_int_equal(remove(f), 0);
		assert_int_equal(remove(path), 0);
		free(f);
		free(path);
	}
	config_free(c);
}

static void
test_intro_skip_removals(void **state)
{
	struct config		*c;
	struct intro_view	*v;

	(void)state;
	ids();
	c = base_config(true);
	config_device_find(c, &p_id)->skip_introduction_removals = true;
	v = view("f", true, true, false);
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 4);
	/* An introduced introducer inherits the setting. */
	assert_true(config_device_find(c, &y_id)->skip_introduction_removals);
	intro_view_free(v);
	v = view("f", false, false, false);
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 0);
	assert_non_null(config_device_find(c, &x_id));
	assert_true(shared(c, "f", &x_id));
	intro_view_free(v);
	/* A folder not shared with P is not P's to fill. */
	v = view("g", true, false, false);
	config_device_find(c, &p_id)->skip_introduction_removals = false;
	assert_int_equal(intro_apply(c, &self_id, v, NULL, NULL), 0);
	assert_false(shared(c, "g", &x_id));
	intro_view_free(v);
	config_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intro_not_an_introducer),
		cmocka_unit_test(test_intro_adds_and_removes),
		cmocka_unit_test(test_intro_skip_removals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_library: the installed library's surface. libshoal.so exports the shoal_* API and
 * nothing else, its soname carries the API's major version, and a program linked against it
 * (this test is, instead of the internal static library) can load an agent type library.
 */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "shoal/agent.h"
#include "shoal/shoal.h"

/* The environment variable meson test sets to name, or skip the test. */
static const char *env_or_skip(const char *name)
{
	const char *v = getenv(name);

	if (!v)
		skip_because("a variable meson test sets is missing (run through meson test)");
	return v;
}

/* The binutils tool meson found for the build's target (a cross file's), else name. */
static const char *tool_path(const char *var, const char *name)
{
	const char *v = getenv(var);

	return v && *v ? v : name;
}

/* Open `cmd` (a binutils tool run on the built library) for reading. */
static FILE *tool_open(const char *cmd)
{
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	return f;
}

/* Close what tool_open() opened; fail the test unless the tool exited 0. */
static void tool_close(FILE *f, const char *cmd)
{
	int st = pclose(f);

	if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
		skip_because("binutils (nm, readelf) are not installed");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("'%s' failed (status 0x%x)", cmd, st);
}

/* Call fn(name, nm type, arg) for each symbol lib defines for others (nm -D). */
static void each_export(const char *lib, void (*fn)(const char *name, char type, void *arg),
			void *arg)
{
	char cmd[4096], line[512];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' -D --defined-only --format=posix '%s'",
		 tool_path("SHOAL_TEST_NM", "nm"), lib);
	f = tool_open(cmd);
	while (fgets(line, sizeof(line), f)) {
		char name[256], type;

		if (sscanf(line, "%255s %c", name, &type) != 2)
			continue;
		/* newer nm writes name@@VERSION: the name is what a program links to */
		name[strcspn(name, "@")] = '\0';
		fn(name, type, arg);
	}
	tool_close(f, cmd);
}

/* What test_library_exports_only_api() found. */
struct api_scan {
	unsigned nbad, napi;
	size_t used;
	char bad[2048];
};

static void scan_api(const char *name, char type, void *arg)
{
	struct api_scan *a = arg;

	if (strncmp(name, "shoal_", 6) == 0) {
		a->napi++;
		return;
	}
	if (type == 'A' && strncmp(name, "SHOAL_", 6) == 0)
		return;
	a->nbad++;
	if (a->used + strlen(name) + 2 < sizeof(a->bad) && a->nbad <= 20)
		a->used +=
			(size_t)snprintf(a->bad + a->used, sizeof(a->bad) - a->used, " %s", name);
}

/*
 * Every symbol libshoal.so defines for others is a shoal_* function, or the name of a
 * version node of its version script (SHOAL_<api>, an absolute symbol): the modules'
 * internals (shm_*, ipc_*, sup_*, wrk_*) stay inside, free to change without an ABI break.
 */
static void test_library_exports_only_api(void **state)
{
	const char *lib = env_or_skip("SHOAL_TEST_LIB");
	static struct api_scan a;

	(void)state;
	memset(&a, 0, sizeof(a));
	each_export(lib, scan_api, &a);
	if (a.nbad)
		fail_msg("%s exports %u symbols outside the shoal_* API (first ones:%s); give them "
			 "a shoal_ name and declare them in include/shoal/ if they are API, "
			 "else they stay internal (libshoal.map)",
			 lib, a.nbad, a.bad);
	/* an empty list would pass the loop: the API must be there */
	assert_true(a.napi > 30);
}

/* A set of symbol names, small enough for the API. */
struct names {
	unsigned n;
	char v[256][64];
};

static bool names_has(const struct names *s, const char *name)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], name))
			return true;
	return false;
}

static void names_add(struct names *s, const char *name)
{
	assert_true(s->n < sizeof(s->v) / sizeof(s->v[0]));
	if (!names_has(s, name))
		snprintf(s->v[s->n++], sizeof(s->v[0]), "%s", name);
}

static void add_api_function(const char *name, char type, void *arg)
{
	if (type == 'T' && strncmp(name, "shoal_", 6) == 0)
		names_add(arg, name);
}

/* The shoal_* functions lib exports (nm's type T). */
static void names_exported(const char *lib, struct names *out)
{
	each_export(lib, add_api_function, out);
}

/*
 * The functions the headers in dir declare: a line at column 0 that is not static (the
 * inline helpers) and names shoal_<x> right before its first '('. Struct members and
 * comments are indented, so they do not count.
 */
static void names_declared(const char *dir, struct names *out)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		fail_msg("cannot open the public headers' directory %s", dir);
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		char path[4096], line[512];
		FILE *f;

		if (len < 3 || strcmp(e->d_name + len - 2, ".h") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f)) {
			char *paren = strchr(line, '(');
			char *id = paren;

			if (!islower((unsigned char)line[0]) || !strncmp(line, "static", 6) ||
			    !paren)
				continue;
			while (id > line && (isalnum((unsigned char)id[-1]) || id[-1] == '_'))
				id--;
			if (!strncmp(paren + 1, "shoal_", 6) && strchr(paren + 1, ')')) {
				/* int (shoal_x)(...): a function also wrapped by a macro of its
				 * name */
				id = paren + 1;
				paren = strchr(id, ')');
			}
			*paren = '\0';
			if (!strncmp(id, "shoal_", 6))
				names_add(out, id);
		}
		fclose(f);
	}
	closedir(d);
}

/*
 * The shoal_* functions exported are exactly those include/shoal/ declares: none is
 * promised and missing, and no internal helper leaks out under a shoal_ name.
 */
static void test_library_exports_match_headers(void **state)
{
	const char *lib = env_or_skip("SHOAL_TEST_LIB");
	const char *dir = env_or_skip("SHOAL_TEST_HEADERS");
	static struct names exported, declared;
	unsigned nbad = 0;

	(void)state;
	names_exported(lib, &exported);
	names_declared(dir, &declared);
	for (unsigned i = 0; i < declared.n; i++)
		if (!names_has(&exported, declared.v[i])) {
			print_error("%s is declared in %s but libshoal.so does not export it\n",
				    declared.v[i], dir);
			nbad++;
		}
	for (unsigned i = 0; i < exported.n; i++)
		if (!names_has(&declared, exported.v[i])) {
			print_error("libshoal.so exports %s, which no header in %s declares: "
				    "declare it there, or rename it with its module's prefix\n",
				    exported.v[i], dir);
			nbad++;
		}
	assert_int_equal(nbad, 0);
	assert_true(declared.n > 30);
}

/* The soname is libshoal.so.<API major>, the number meson.build declares. */
static void test_library_soname_is_api_major(void **state)
{
	const char *lib = env_or_skip("SHOAL_TEST_LIB");
	const char *major = env_or_skip("SHOAL_TEST_API_MAJOR");
	char cmd[4096], line[512], want[64], got[128] = "";
	FILE *f;

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s' -d '%s'", tool_path("SHOAL_TEST_READELF", "readelf"), lib);
	f = tool_open(cmd);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "(SONAME)");

		if (p && (p = strchr(p, '[')) != NULL)
			sscanf(p + 1, "%127[^]]", got);
	}
	tool_close(f, cmd);
	snprintf(want, sizeof(want), "libshoal.so.%s", major);
	assert_string_equal(got, want);
	/* and version.h says the same to programs built against it */
	assert_int_equal(SHOAL_API_MAJOR, atoi(major));
}

/* The library's version is meson.build's project version, in the header and at run time. */
static void test_library_version_is_project_version(void **state)
{
	const char *want = env_or_skip("SHOAL_TEST_PROJECT_VERSION");

	(void)state;
	assert_string_equal(SHOAL_VERSION_STRING, want);
	assert_string_equal(shoal_version(), want);
}

/* `shoal version` prints the project version and the segment layout, in its usual form. */
static void test_library_version_command(void **state)
{
	const char *bin = env_or_skip("SHOAL_BIN");
	const char *pv = env_or_skip("SHOAL_TEST_PROJECT_VERSION");
	char cmd[4096], got[256] = "", want[256];
	FILE *f;

	(void)state;
	snprintf(cmd, sizeof(cmd), "'%s' version", bin);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (!fgets(got, sizeof(got), f))
		got[0] = '\0';
	assert_int_equal(pclose(f), 0);
	snprintf(want, sizeof(want), "shoal %s (segment layout %u.%u)\n", pv, SHOAL_LAYOUT_MAJOR,
		 SHOAL_LAYOUT_MINOR);
	assert_string_equal(got, want);
}

/*
 * An agent type library resolves shoal_* (shoal_agent_type_register(), shoal_self(), ...)
 * from the process that loads it: here from libshoal.so, which this program is linked to.
 */
static void test_library_plugin_resolves_api(void **state)
{
	const char *plugin = env_or_skip("SHOAL_TEST_PLUGIN");
	char err[256] = "";
	int rc;

	(void)state;
	rc = shoal_agent_types_load(plugin, err, sizeof(err));
	if (rc < 1)
		fail_msg("loading %s through libshoal.so: %d (%s)", plugin, rc, err);
	assert_non_null(shoal_agent_type_find("upper"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_exports_only_api),
		cmocka_unit_test(test_library_exports_match_headers),
		cmocka_unit_test(test_library_soname_is_api_major),
		cmocka_unit_test(test_library_version_is_project_version),
		cmocka_unit_test(test_library_version_command),
		cmocka_unit_test(test_library_plugin_resolves_api),
	};

	return cmocka_run_group_tests_name("library", tests, NULL, NULL);
}

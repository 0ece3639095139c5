/* shoal version: the build, the API and the layout it reads. */
#include <assert.h>
#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "shm/shm.h"
#include "shoal/shoal.h"
#include "tools/tools.h"

/* version.h's copy is read from shm/layout.h by meson: they cannot differ unless that broke. */
static_assert(SHOAL_LAYOUT_MAJOR == SHM_LAYOUT_MAJOR && SHOAL_LAYOUT_MINOR == SHM_LAYOUT_MINOR,
	      "include/shoal/version.h's layout version is not shm/layout.h's: reconfigure meson");

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal version [--json]\n"
		   "Prints the release version, the API version (libshoal's soname major and its\n"
		   "additions) and the segment layout version this shoal creates and reads.\n"
		   "  --json  one JSON object: {\"version\": \"X.Y.Z\", \"api\": {\"major\", "
		   "\"minor\"},\n"
		   "          \"layout\": {\"major\", \"minor\"}}\n");
}

/* The versions as one JSON object on stdout (jansson). A CLI exit code. */
static int print_json(void)
{
	json_t *o = json_pack("{s:s, s:{s:i, s:i}, s:{s:i, s:i}}", "version", shoal_version(),
			      "api", "major", SHOAL_API_MAJOR, "minor", SHOAL_API_MINOR, "layout",
			      "major", (int)SHM_LAYOUT_MAJOR, "minor", (int)SHM_LAYOUT_MINOR);
	int ex = EXIT_OK;

	if (!o || json_dumpf(o, stdout, JSON_COMPACT) || puts("") < 0) {
		fprintf(stderr, "shoal version: cannot write the JSON object\n");
		ex = EXIT_SYSTEM;
	}
	json_decref(o);
	return ex;
}

int cmd_version(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shoal version: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (json)
		return print_json();
	printf("shoal %s (segment layout %u.%u)\n", shoal_version(), SHM_LAYOUT_MAJOR,
	       SHM_LAYOUT_MINOR);
	return EXIT_OK;
}

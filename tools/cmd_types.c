/*
 * shoal types: the agent types an instance can start (built in, registered by the program
 * that runs the supervisor, or in a [types] library), from the segment's types table, read
 * through a snapshot like inspect's. Never writes to the segment.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shm/shm.h"
#include "shm/view.h"
#include "tools/tools.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: shoal types [--instance NAME] [--json]\n"
		   "Lists the agent types an instance can start (what 'shoal spawn TYPE NAME' and\n"
		   "an [agent] section's type take): built in, with what each does; registered\n"
		   "by the program that runs the supervisor; or in a [types] library, with its\n"
		   "path. Attaches read-only.\n"
		   "  --json  one JSON object: {\"instance\", \"types\": [{\"name\", \"origin\":\n"
		   "          \"builtin\"|\"host\"|\"library\", \"about\"}]} (about: a library's "
		   "path)\n"
		   "Exit 2 for an unknown instance or a segment without a readable types table.\n");
}

static const char *origin_name(uint32_t o)
{
	switch (o) {
	case SHM_TYPE_BUILTIN:
		return "builtin";
	case SHM_TYPE_HOST:
		return "host";
	case SHM_TYPE_LIBRARY:
		return "library";
	default:
		return "?";
	}
}

/* See tools.h. */
int tool_types_take(const char *instance, struct shm_view **out, char *err, size_t errlen)
{
	struct shm_view *v;
	int r = tool_view_take(instance, &v, err, errlen);

	*out = NULL;
	if (r)
		return r;
	if (v->types_ret == -ENOENT)
		snprintf(err, errlen,
			 "instance '%s': its segment has no types table (layout %u.%u, made by an "
			 "older shoal)",
			 instance, v->hdr.layout_major, v->hdr.layout_minor);
	else if (v->types_ret == -ENODATA)
		snprintf(err, errlen,
			 "instance '%s': its supervisor has not written the types table yet (it is "
			 "starting); try again",
			 instance);
	else if (v->types_ret == -EAGAIN)
		snprintf(
			err, errlen,
			"instance '%s': the types table is half written (its supervisor is writing "
			"it, or died doing so)",
			instance);
	else if (v->types_ret)
		snprintf(err, errlen, "instance '%s': its types table is corrupt (%s)", instance,
			 strerror(-v->types_ret));
	r = v->types_ret == -ENOENT ? -EPROTONOSUPPORT : v->types_ret;
	if (r) {
		shm_view_free(v);
		return r;
	}
	*out = v;
	return 0;
}

static int print_json(const char *instance, const struct shm_view *v)
{
	json_t *o = json_pack("{s:s, s:[]}", "instance", instance, "types");
	json_t *a = o ? json_object_get(o, "types") : NULL;
	int r = 0;

	for (uint32_t i = 0; a && i < v->ntypes && !r; i++)
		r = json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", v->types[i].name,
						       "origin", origin_name(v->types[i].origin),
						       "about", v->types[i].about));
	if (!o || r || json_dumpf(o, stdout, JSON_COMPACT) || fputc('\n', stdout) == EOF) {
		json_decref(o);
		fprintf(stderr, "shoal types: out of memory\n");
		return EXIT_SYSTEM;
	}
	json_decref(o);
	return EXIT_OK;
}

int cmd_types(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *instance = tool_default_instance();
	struct shm_view *v;
	bool json = false;
	char err[512];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "i:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
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
		fprintf(stderr, "shoal types: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	r = tool_types_take(instance, &v, err, sizeof(err));
	if (r) {
		fprintf(stderr, "shoal types: %s\n", err);
		return r == -ENOMEM ? EXIT_SYSTEM : EXIT_USAGE;
	}
	if (json) {
		r = print_json(instance, v);
	} else {
		printf("%-20s %-8s %s\n", "TYPE", "ORIGIN", "WHAT IT IS");
		for (uint32_t i = 0; i < v->ntypes; i++)
			printf("%-20s %-8s %s\n", v->types[i].name, origin_name(v->types[i].origin),
			       v->types[i].about);
		r = EXIT_OK;
	}
	shm_view_free(v);
	return r;
}

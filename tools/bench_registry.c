/* shoal bench registry: placeholder until the registry lands. */
#include <stdio.h>

#include "tools/bench.h"
#include "tools/tools.h"

int bench_registry(int argc, char **argv, struct bench_opts *o)
{
	(void)argc;
	(void)argv;
	(void)o;
	fprintf(stderr, "shoal bench registry: not built yet\n");
	return EXIT_SYSTEM;
}

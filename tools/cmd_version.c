/* shoal version: the build and the layout it reads. */
#include <stdio.h>

#include "shm/shm.h"
#include "shoal/shoal.h"
#include "tools/tools.h"

int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("shoal %s (segment layout %u.%u)\n", shoal_version(), SHM_LAYOUT_MAJOR,
	       SHM_LAYOUT_MINOR);
	return EXIT_OK;
}

/* shoal version: the build and the layout it reads. */
#include <assert.h>
#include <stdio.h>

#include "shm/shm.h"
#include "shoal/shoal.h"
#include "tools/tools.h"

/* version.h's copy is read from shm/layout.h by meson: they cannot differ unless that broke. */
static_assert(SHOAL_LAYOUT_MAJOR == SHM_LAYOUT_MAJOR && SHOAL_LAYOUT_MINOR == SHM_LAYOUT_MINOR,
	      "include/shoal/version.h's layout version is not shm/layout.h's: reconfigure meson");

int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("shoal %s (segment layout %u.%u)\n", shoal_version(), SHM_LAYOUT_MAJOR,
	       SHM_LAYOUT_MINOR);
	return EXIT_OK;
}

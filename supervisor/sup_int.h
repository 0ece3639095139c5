/* supervisor: what its own .c files share. */
#ifndef SUP_SUP_INT_H
#define SUP_SUP_INT_H

#include "shm/shm.h"
#include "shoal/shoal.h"
#include "workers/wrk.h"

#endif

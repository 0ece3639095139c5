/*
 * Allocation counting for the benchmarks: the shoal tool is linked with
 * --wrap=malloc,--wrap=calloc,--wrap=realloc (tools/meson.build), so every call to them from
 * shoal's own objects (the tool and the internal library linked into it) comes here first and
 * adds the bytes it asks for; libc's free is untouched, so nothing else changes. Calls from
 * inside other libraries (libc's strdup, jansson, plugins) and other processes are not seen.
 * A relaxed counter: one locked add per allocation, and the benchmarks read it only around
 * their measured loops.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/bench.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static _Atomic uint64_t alloc_bytes;

/* malloc as the linker routes shoal's calls: counted, then libc's. Any thread. */
void *__wrap_malloc(size_t n)
{
	/* relaxed: a statistic, read after the measured loop by the thread that ran it */
	atomic_fetch_add_explicit(&alloc_bytes, n, memory_order_relaxed);
	return __real_malloc(n);
}

/* calloc, counted (n x size, saturating) then libc's. Any thread. */
void *__wrap_calloc(size_t n, size_t size)
{
	size_t bytes = size && n > SIZE_MAX / size ? SIZE_MAX : n * size;

	atomic_fetch_add_explicit(&alloc_bytes, bytes, memory_order_relaxed);
	return __real_calloc(n, size);
}

/* realloc, counted as a new allocation of n bytes, then libc's. Any thread. */
void *__wrap_realloc(void *p, size_t n)
{
	atomic_fetch_add_explicit(&alloc_bytes, n, memory_order_relaxed);
	return __real_realloc(p, n);
}

/* See bench.h. */
uint64_t bench_alloc_bytes(void)
{
	return atomic_load_explicit(&alloc_bytes, memory_order_relaxed);
}

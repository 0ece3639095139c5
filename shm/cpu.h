/*
 * shm: what a spin wait and a benchmark need from the CPU, one definition per architecture:
 * a spin hint (shm_cpu_relax) and a cycle counter (shm_cpu_ticks, shm_cpu_ticks_ordered).
 * Everything else in shoal is plain C11 and Linux; these are its only per-CPU instructions.
 *
 * x86-64: pause, rdtsc and rdtscp, the very instructions the code used before this header
 * (the compiler builtins behind x86intrin.h's __rdtsc()/__rdtscp()), so figures measured on
 * x86 compare across the change.
 * arm64: isb as the spin hint, and the generic timer's virtual count (cntvct_el0).
 * Anything else: a compiler barrier and CLOCK_MONOTONIC, so shoal still builds and runs.
 */
#ifndef SHM_CPU_H
#define SHM_CPU_H

#include <stdint.h>
#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__)
#include <time.h>
#endif

/*
 * Tell the CPU the caller is in a spin wait, once per turn of the loop: it slows the loop
 * down a little and frees the core's resources for a sibling hyperthread. Any thread.
 *
 * arm64 uses isb, not yield: yield is a nop on most arm64 cores (Neoverse among them), so a
 * loop of it hammers the line it polls, while an isb waits for the pipeline to drain, a
 * pause of a few tens of cycles as on x86 (Rust's std::hint::spin_loop() does the same).
 */
static inline void shm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("isb" : : : "memory");
#else
	__asm__ volatile("" : : : "memory");
#endif
}

/*
 * The cycle counter, read without waiting for earlier instructions (x86 rdtsc, arm64
 * cntvct_el0): cheap, for calibrating against a clock. Its unit is a tick of unknown length
 * (on arm64 the generic timer's, 25 MHz to 1 GHz, coarser than a cycle; elsewhere a
 * nanosecond): convert with a calibration (tools/bench.c). Any thread; ticks of different
 * CPUs compare only where the counter is synchronised (an invariant TSC, arm64's timer).
 */
static inline uint64_t shm_cpu_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t t;

	__asm__ volatile("mrs %0, cntvct_el0" : "=r"(t));
	return t;
#else
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/*
 * The same counter, read only after every earlier instruction has executed (x86 rdtscp;
 * arm64 isb then cntvct_el0, as Linux reads it), so the code being timed is inside the
 * interval: what a benchmark reads around each sample. Any thread.
 */
static inline uint64_t shm_cpu_ticks_ordered(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int aux;

	return __builtin_ia32_rdtscp(&aux);
#elif defined(__aarch64__)
	uint64_t t;

	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(t) : : "memory");
	return t;
#else
	return shm_cpu_ticks();
#endif
}

#endif

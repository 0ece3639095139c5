/* test_segment: create, attach, validate (each failure its own error), process slots, staleness. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/skip.h"

#include "shm/shm.h"
#include "supervisor/sup.h"

static char inst[64];

#define TIMEOUT_MS 15000

/* The segment's file, as the kernel names it (glibc's shm_open() lives in /dev/shm). */
static void seg_file(char *buf, size_t cap)
{
	snprintf(buf, cap, "/dev/shm/shoal.%s", inst);
}

/*
 * In a forked child (cmocka's asserts would unwind into the child's copy of the runner): a
 * failed check says why on stderr and makes the child exit 1.
 */
#define CHILD_CHECK(cond, ...)                                                                     \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/*
 * Wait up to timeout_ms for child pid: its exit code, -signal if a signal ended it, or -1000
 * if it did not end in time (it is killed then). Safe in a forked child (no cmocka).
 */
static int child_wait(pid_t pid, int timeout_ms)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), st, ready = 0;

	if (pidfd >= 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};

		ready = poll(&p, 1, timeout_ms) == 1;
		close(pidfd);
	}
	if (!ready)
		kill(pid, SIGKILL);
	if (waitpid(pid, &st, 0) != pid)
		return -2000;
	if (!ready)
		return -1000;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/*
 * Run `$SHOAL_BIN args...` with stdout and stderr into out (NUL-terminated); its exit code,
 * -signal, -1000 if it had to be killed after TIMEOUT_MS, -1 without SHOAL_BIN. No cmocka:
 * usable in a forked child.
 */
static int tool_run(char *out, size_t cap, const char *const *args)
{
	const char *bin = getenv("SHOAL_BIN");
	char *argv[16];
	size_t n = 0, got = 0;
	int op[2];
	pid_t pid;

	if (!bin || pipe2(op, O_CLOEXEC))
		return -1;
	argv[n++] = (char *)bin;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(op[1], 1);
		dup2(op[1], 2);
		execv(bin, argv);
		_exit(127);
	}
	close(op[1]);
	for (;;) {
		struct pollfd p = {.fd = op[0], .events = POLLIN};
		ssize_t k;

		if (poll(&p, 1, TIMEOUT_MS) != 1)
			break; /* a hung tool: child_wait() kills it */
		k = read(op[0], out + got, cap - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	out[got] = 0;
	close(op[0]);
	return child_wait(pid, TIMEOUT_MS);
}

/*
 * Run fn in a forked child that has its own mount namespace with a 4 MiB tmpfs on /dev/shm:
 * a full /dev/shm without filling the machine's. Skips if the namespace or the mount is not
 * permitted; fails if fn returns nonzero or the child dies of a signal.
 */
static void in_small_shm(int (*fn)(void))
{
	pid_t pid = fork();
	int rc;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0)
			_exit(77);
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=4m,mode=1777") < 0)
			_exit(78);
		_exit(fn());
	}
	rc = child_wait(pid, 2 * TIMEOUT_MS);
	if (rc == 77)
		skip_because("unshare(CLONE_NEWNS) is not permitted: no private /dev/shm to fill");
	if (rc == 78)
		skip_because("cannot mount a private tmpfs on /dev/shm (needs CAP_SYS_ADMIN)");
	if (rc != 0)
		fail_msg("the child in a 4 MiB /dev/shm %s %d (its stderr says why)",
			 rc < 0 ? "died of signal" : "exited", rc < 0 ? -rc : rc);
}

static int setup(void **state)
{
	(void)state;
	snprintf(inst, sizeof(inst), "t-seg-%d", (int)getpid());
	shm_seg_unlink(inst);
	return 0;
}

static int teardown(void **state)
{
	char other[96];

	(void)state;
	shm_seg_unlink(inst);
	/* what a failed test_segment_name_mismatch or remove_only_own leaves */
	snprintf(other, sizeof(other), "%s-b", inst);
	shm_seg_unlink(other);
	snprintf(other, sizeof(other), "/dev/shm/shoal.%s-moved", inst);
	unlink(other);
	return 0;
}

static struct shm_seg *create_published(void)
{
	struct shm_cfg cfg;
	struct shm_seg *seg = NULL;
	char err[256];

	shm_cfg_default(&cfg);
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	return seg;
}

static void test_segment_create_attach(void **state)
{
	struct shm_seg *seg = create_published(), *ro = NULL, *dup = NULL;
	struct shm_cfg cfg;
	char err[256];
	struct stat st;

	(void)state;
	assert_int_equal(fstat(seg->fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 100, &ro, err, sizeof(err)), 0);
	assert_false(ro->writable);
	assert_int_equal(shm_hdr(ro)->seg_size, seg->size);
	assert_int_equal(shm_hdr(ro)->cfg.max_agents, 64);
	/* a second create of the same name is refused, and names the way out */
	shm_cfg_default(&cfg);
	assert_int_equal(shm_seg_create(inst, &cfg, &dup, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "shoal clean"));
	shm_seg_detach(ro);
	shm_seg_detach(seg);
	assert_int_equal(shm_seg_unlink(inst), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "not running"));
}

static void test_segment_bad_names(void **state)
{
	struct shm_seg *seg;
	struct shm_cfg cfg;
	char err[256];

	(void)state;
	shm_cfg_default(&cfg);
	assert_int_equal(shm_seg_create("", &cfg, &seg, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_seg_create("a/b", &cfg, &seg, err, sizeof(err)), -EINVAL);
	assert_int_equal(shm_seg_create("..", &cfg, &seg, err, sizeof(err)), -EINVAL);
	cfg.reg_capacity = 1000; /* not a power of two */
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "power of two"));
}

/*
 * A /dev/shm too small for the segment: create fails with -ENOSPC naming both sizes, before
 * any reader could see the name, and leaves no file and no used space behind.
 */
static int create_too_big_child(void)
{
	struct shm_region regions[SHM_R_COUNT];
	struct shm_cfg cfg;
	struct shm_seg *seg = NULL, *other = NULL;
	struct statvfs vfs;
	struct stat st;
	char err[512], need[32], have[32], path[128];
	unsigned long long size, free_bytes;
	int ret;

	seg_file(path, sizeof(path));
	shm_cfg_default(&cfg);
	size = shm_layout_compute(&cfg, regions);
	CHILD_CHECK(statvfs("/dev/shm", &vfs) == 0, "statvfs: %s", strerror(errno));
	free_bytes = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
	CHILD_CHECK(size > free_bytes, "the default segment (%llu bytes) fits in %llu", size,
		    free_bytes);
	snprintf(need, sizeof(need), "%llu", size);
	snprintf(have, sizeof(have), "%llu", free_bytes);
	ret = shm_seg_create(inst, &cfg, &seg, err, sizeof(err));
	CHILD_CHECK(ret == -ENOSPC, "create returned %d (%s), want -ENOSPC", ret, err);
	CHILD_CHECK(strstr(err, need) && strstr(err, have), "'%s' does not name %s and %s", err,
		    need, have);
	CHILD_CHECK(lstat(path, &st) < 0 && errno == ENOENT, "%s is left behind", path);
	CHILD_CHECK(statvfs("/dev/shm", &vfs) == 0 && vfs.f_bfree == vfs.f_blocks,
		    "%llu blocks of /dev/shm are still in use",
		    (unsigned long long)(vfs.f_blocks - vfs.f_bfree));
	/* one that fits is created there, fully backed */
	cfg.max_procs = 8; /* each slot's latency histograms are 44 KiB (layout minor 10) */
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_monitors = 64;
	ret = shm_seg_create(inst, &cfg, &seg, err, sizeof(err));
	CHILD_CHECK(ret == 0, "a small segment: %d (%s)", ret, err);
	CHILD_CHECK(fstat(seg->fd, &st) == 0 && (unsigned long long)st.st_blocks * 512 >= seg->size,
		    "%llu of %zu bytes backed", (unsigned long long)st.st_blocks * 512, seg->size);
	shm_seg_publish(seg);
	/* a taken name is said first: not "no space" for what could never be created */
	shm_cfg_default(&cfg);
	ret = shm_seg_create(inst, &cfg, &other, err, sizeof(err));
	CHILD_CHECK(ret == -EEXIST && strstr(err, "already exists"), "create: %d (%s)", ret, err);
	shm_seg_detach(seg);
	CHILD_CHECK(shm_seg_unlink(inst) == 0, "unlink");
	return 0;
}

/* Without /proc (a tmpfs mounted over it here) create still names its file. */
static int create_without_proc_child(void)
{
	struct shm_cfg cfg;
	struct shm_seg *seg = NULL;
	char err[512], path[128];
	struct stat st;
	int ret;

	seg_file(path, sizeof(path));
	CHILD_CHECK(mount("tmpfs", "/proc", "tmpfs", 0, "size=1m") == 0, "hiding /proc: %s",
		    strerror(errno));
	shm_cfg_default(&cfg);
	cfg.max_procs = 8; /* each slot's latency histograms are 44 KiB (layout minor 10) */
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	cfg.max_monitors = 64;
	ret = shm_seg_create(inst, &cfg, &seg, err, sizeof(err));
	CHILD_CHECK(ret == 0, "create without /proc: %d (%s)", ret, err);
	CHILD_CHECK(lstat(path, &st) == 0, "%s is not there", path);
	shm_seg_publish(seg);
	CHILD_CHECK(shm_seg_remove(seg) == 0, "remove");
	shm_seg_detach(seg);
	return 0;
}

static void test_segment_create_without_proc(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip_because("linking a nameless file without /proc needs CAP_DAC_READ_SEARCH");
	in_small_shm(create_without_proc_child);
}

static void test_segment_create_no_space(void **state)
{
	(void)state;
	in_small_shm(create_too_big_child);
}

/* A valid header of a default-sized segment, made in the real /dev/shm before a fork. */
static uint8_t big_hdr[SHM_HDR_SIZE];

static void make_big_hdr(void)
{
	struct shm_seg *seg;
	struct shm_cfg cfg;
	char err[256];

	shm_cfg_default(&cfg);
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	atomic_store(&shm_hdr(seg)->state, SHM_INST_RUNNING);
	memcpy(big_hdr, seg->base, sizeof(big_hdr));
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
}

/*
 * A file made by hand in a 4 MiB /dev/shm: full-size but sparse (ftruncate), a valid header,
 * then the rest of the space taken by another file, so reading any hole is a SIGBUS. Attach
 * and the tools must say what is wrong, not die.
 */
static int sparse_file_child(void)
{
	const struct shm_hdr *h = (const struct shm_hdr *)big_hdr;
	char path[128], out[4096];
	const char *inspect[] = {"inspect", "--instance", inst, NULL};
	const char *clean[] = {"clean", "--instance", inst, NULL};
	struct shm_seg *seg = NULL;
	struct statvfs vfs;
	char err[512];
	int fd, filler, ret;

	seg_file(path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHILD_CHECK(fd >= 0, "creating %s: %s", path, strerror(errno));
	CHILD_CHECK(ftruncate(fd, (off_t)h->seg_size) == 0, "ftruncate: %s", strerror(errno));
	CHILD_CHECK(pwrite(fd, big_hdr, sizeof(big_hdr), 0) == (ssize_t)sizeof(big_hdr), "pwrite");
	CHILD_CHECK(statvfs("/dev/shm", &vfs) == 0, "statvfs");
	CHILD_CHECK(h->seg_size > (uint64_t)vfs.f_blocks * vfs.f_frsize, "the file fits");
	filler = open("/dev/shm/filler", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHILD_CHECK(filler >= 0, "creating a filler: %s", strerror(errno));
	ret = posix_fallocate(filler, 0, (off_t)(vfs.f_bavail * vfs.f_frsize));
	CHILD_CHECK(ret == 0, "filling /dev/shm: %s", strerror(ret));
	ret = tool_run(out, sizeof(out), inspect);
	CHILD_CHECK(ret == 2, "shoal inspect: %d, want 2; said: %s", ret, out);
	CHILD_CHECK(strstr(out, "backed"), "shoal inspect said: %s", out);
	ret = tool_run(out, sizeof(out), clean);
	CHILD_CHECK(ret == 2, "shoal clean: %d, want 2; said: %s", ret, out);
	ret = shm_seg_attach(inst, SHM_ATTACH_RO | SHM_ATTACH_NOWAIT | SHM_ATTACH_UNREADY, 0, &seg,
			     err, sizeof(err));
	CHILD_CHECK(ret == shm_verr_errno(SHM_V_SPARSE), "attach: %d (%s)", ret, err);
	CHILD_CHECK(strstr(err, inst) && strstr(err, "backed"), "message: %s", err);
	close(filler);
	close(fd);
	return 0;
}

static void test_segment_sparse_file_full_fs(void **state)
{
	(void)state;
	if (!getenv("SHOAL_BIN"))
		skip_because("SHOAL_BIN is not set (run through meson test)");
	make_big_hdr();
	in_small_shm(sparse_file_child);
}

static int read_last_page(const struct shm_seg *seg, void *arg)
{
	*(volatile uint8_t *)arg = seg->base[seg->size - 1];
	return 7;
}

/*
 * A page that cannot be backed (here: the file truncated under the mapping) read through a
 * guard is an error with the page's offset, not a SIGBUS; a read that works returns fn's
 * value; the process's own SIGBUS disposition is back afterwards.
 */
static void test_segment_guard_sigbus(void **state)
{
	struct shm_seg *seg = create_published(), *ro;
	struct sigaction before, after;
	uint64_t off = 0;
	uint8_t sink;
	char err[256];

	(void)state;
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)), 0);
	assert_int_equal(sigaction(SIGBUS, NULL, &before), 0);
	assert_int_equal(shm_seg_guard(ro, read_last_page, &sink, &off), 7);
	assert_int_equal(ftruncate(seg->fd, SHM_PAGE), 0);
	assert_int_equal(shm_seg_guard(ro, read_last_page, &sink, &off), -EFAULT);
	assert_int_equal(off, ro->size - 1);
	assert_int_equal(sigaction(SIGBUS, NULL, &after), 0);
	assert_true(after.sa_handler == before.sa_handler);
	shm_seg_detach(ro);
	shm_seg_detach(seg);
}

/* `shoal run` with the default segment in a 4 MiB /dev/shm: exit 3, both sizes named. */
static int run_too_big_child(void)
{
	char cfg_path[128], out[8192], path[128];
	const char *run[] = {"run", cfg_path, "--instance", inst, "--status-interval", "0", NULL};
	struct stat st;
	FILE *f;
	int ret;

	seg_file(path, sizeof(path));
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/shoal-%s.ini", inst);
	f = fopen(cfg_path, "w");
	CHILD_CHECK(f, "writing %s", cfg_path);
	fputs("[instance]\nworkers = 1\nplacement = none\n", f);
	fclose(f);
	ret = tool_run(out, sizeof(out), run);
	unlink(cfg_path);
	CHILD_CHECK(ret == 3, "shoal run: %d, want 3; said: %s", ret, out);
	/* run's config check says it first (the same sizes as create's "needs ... free") */
	CHILD_CHECK(strstr(out, "free in /dev/shm") ||
			    (strstr(out, "needs") && strstr(out, "free")),
		    "shoal run said: %s", out);
	CHILD_CHECK(lstat(path, &st) < 0 && errno == ENOENT, "%s is left behind", path);
	return 0;
}

static void test_segment_run_no_space(void **state)
{
	(void)state;
	if (!getenv("SHOAL_BIN"))
		skip_because("SHOAL_BIN is not set (run through meson test)");
	in_small_shm(run_too_big_child);
}

/* A private copy of a valid segment, to corrupt one field at a time. */
static uint8_t *copy_of_valid(size_t *size)
{
	struct shm_seg *seg = create_published();
	uint8_t *buf = malloc(seg->size);

	assert_non_null(buf);
	memcpy(buf, seg->base, seg->size);
	*size = seg->size;
	shm_seg_detach(seg);
	shm_seg_unlink(inst);
	return buf;
}

static void expect_verr(const uint8_t *buf, size_t size, enum shm_verr want, const char *word)
{
	char err[256] = "";
	enum shm_verr v = shm_seg_validate(buf, size, err, sizeof(err));

	if (v != want)
		fail_msg("validate: got %s (%s), want %s", shm_verr_name(v), err,
			 shm_verr_name(want));
	if (word && !strstr(err, word))
		fail_msg("message '%s' does not mention '%s'", err, word);
}

static void test_segment_validate_ok(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);

	(void)state;
	expect_verr(buf, size, SHM_V_OK, NULL);
	free(buf);
}

/*
 * A segment of an older minor with fewer regions (an instance still run by the shoal before
 * an upgrade) is refused with a message that says so and what to do, not only with counts.
 */
static void test_segment_validate_older_minor(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;

	(void)state;
	h->layout_minor = SHM_LAYOUT_MINOR - 1;
	h->nregions = SHM_R_COUNT - 3;
	expect_verr(buf, size, SHM_V_VERSION, "older shoal");
	expect_verr(buf, size, SHM_V_VERSION, "shoal clean");
	h->layout_minor = SHM_LAYOUT_MINOR + 1;
	h->nregions = SHM_R_COUNT + 1;
	expect_verr(buf, size, SHM_V_VERSION, "newer shoal");
	free(buf);
}

static void test_segment_validate_truncated(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);

	(void)state;
	expect_verr(buf, 100, SHM_V_TRUNCATED, "header");
	expect_verr(buf, size - SHM_PAGE, SHM_V_TRUNCATED, "truncated");
	expect_verr(NULL, 0, SHM_V_TRUNCATED, NULL);
	free(buf);
}

static void test_segment_validate_magic(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);

	(void)state;
	((struct shm_hdr *)buf)->magic ^= 1;
	expect_verr(buf, size, SHM_V_MAGIC, "not a shoal segment");
	free(buf);
}

static void test_segment_validate_version(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);

	(void)state;
	((struct shm_hdr *)buf)->layout_major = SHM_LAYOUT_MAJOR + 2;
	expect_verr(buf, size, SHM_V_VERSION, "this shoal reads");
	free(buf);
}

static void test_segment_validate_not_ready(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);

	(void)state;
	atomic_store(&((struct shm_hdr *)buf)->ready, 0);
	expect_verr(buf, size, SHM_V_NOT_READY, "not ready");
	free(buf);
}

static void test_segment_validate_region_bounds(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;

	(void)state;
	h->regions[SHM_R_MBOX].size = h->seg_size; /* runs past the end */
	expect_verr(buf, size, SHM_V_REGION_BOUNDS, "outside");
	h->regions[SHM_R_MBOX].size = 64;
	h->regions[SHM_R_MBOX].off = UINT64_MAX - 8; /* overflow bait */
	expect_verr(buf, size, SHM_V_REGION_BOUNDS, "outside");
	free(buf);
}

static void test_segment_validate_region_overlap(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;

	(void)state;
	h->regions[SHM_R_AGENTS].off = h->regions[SHM_R_PROCS].off;
	expect_verr(buf, size, SHM_V_REGION_OVERLAP, "overlap");
	free(buf);
}

static void test_segment_validate_config(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;

	(void)state;
	h->cfg.max_agents *= 2; /* regions no longer match what the config implies */
	expect_verr(buf, size, SHM_V_CONFIG, NULL);
	h->cfg.max_agents /= 2;
	h->cfg.reg_capacity = 1000;
	expect_verr(buf, size, SHM_V_CONFIG, "power of two");
	free(buf);
}

/*
 * The variables region (layout minor 8): sized from [segment] variables and variable_bytes,
 * and checked like the others: a region that disagrees with them, or a blob size that is not
 * a multiple of 8 within range, is refused.
 */
static void test_segment_validate_vars(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;
	struct shm_cfg cfg;

	(void)state;
	shm_cfg_default(&cfg);
	assert_true(cfg.max_vars >= 1024 && cfg.var_bytes == 256);
	assert_true(h->layout_minor >= 8);
	assert_true(h->cfg.max_vars > 0);
	assert_int_equal(h->regions[SHM_R_VARS].size, shm_var_region_size(&h->cfg));
	assert_true(h->regions[SHM_R_VARS].size >= (uint64_t)h->cfg.max_vars * h->cfg.var_bytes);
	h->regions[SHM_R_VARS].size -= 64;
	{
		char want[16];

		snprintf(want, sizeof(want), "region %d", SHM_R_VARS);
		expect_verr(buf, size, SHM_V_CONFIG, want);
	}
	h->regions[SHM_R_VARS].size += 64;
	expect_verr(buf, size, SHM_V_OK, NULL);
	h->cfg.var_bytes = 100;
	expect_verr(buf, size, SHM_V_CONFIG, "multiple of 8");
	h->cfg.var_bytes = 8192;
	expect_verr(buf, size, SHM_V_CONFIG, "variable_bytes");
	h->cfg.var_bytes = 256;
	h->cfg.max_vars = (1u << 20) + 1;
	expect_verr(buf, size, SHM_V_CONFIG, "variables");
	free(buf);
}

static void test_segment_validate_header(void **state)
{
	size_t size;
	uint8_t *buf = copy_of_valid(&size);
	struct shm_hdr *h = (struct shm_hdr *)buf;

	(void)state;
	memset(h->instance, 'x', sizeof(h->instance));
	expect_verr(buf, size, SHM_V_HEADER, "not terminated");
	free(buf);
}

/* The shm object itself truncated under a tool: attach must not touch past its end. */
static void test_segment_attach_truncated_file(void **state)
{
	struct shm_seg *seg = create_published(), *ro = NULL;
	char err[256];

	(void)state;
	assert_int_equal(ftruncate(seg->fd, (off_t)(seg->size / 2)), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)),
			 shm_verr_errno(SHM_V_TRUNCATED));
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(ftruncate(seg->fd, 10), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)),
			 shm_verr_errno(SHM_V_TRUNCATED));
	/* detach unmaps the creator's original (now partly unbacked) mapping without touching it */
	shm_seg_detach(seg);
}

static void test_segment_attach_foreign_owner(void **state)
{
	struct shm_seg *seg = create_published(), *ro = NULL;
	char err[256];

	(void)state;
	if (geteuid() != 0) {
		shm_seg_detach(seg);
		skip_because("chown to another uid needs root");
	}
	assert_int_equal(fchown(seg->fd, 4242, 4242), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)),
			 shm_verr_errno(SHM_V_FOREIGN));
	assert_non_null(strstr(err, "uid 4242"));
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO | SHM_ATTACH_ANY_OWNER, 0, &ro, err,
					sizeof(err)),
			 0);
	shm_seg_detach(ro);
	shm_seg_detach(seg);
}

/* In a child that becomes nobody (65534): plant a FIFO at the instance's name. */
static void plant_fifo_as_nobody(void)
{
	char path[128];
	pid_t pid;
	int rc;

	seg_file(path, sizeof(path));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		_exit(mkfifo(path, 0666) ? 3 : 0);
	}
	rc = child_wait(pid, TIMEOUT_MS);
	assert_int_equal(rc, 0);
}

static int attach_fifo_child(void)
{
	struct shm_seg *seg;
	char err[256];
	int ret = shm_seg_attach(inst, SHM_ATTACH_RO | SHM_ATTACH_ANY_OWNER | SHM_ATTACH_NOWAIT, 0,
				 &seg, err, sizeof(err));

	CHILD_CHECK(ret == shm_verr_errno(SHM_V_FOREIGN), "attach: %d (%s)", ret, err);
	CHILD_CHECK(strstr(err, "FIFO") && strstr(err, "65534"), "message: %s", err);
	return 0;
}

/*
 * Another user plants a FIFO at the name: root's attach, inspect and clean must not hang in
 * open() but refuse it, naming what it is and whose; clean --force removes it.
 */
static void test_segment_fifo_planted(void **state)
{
	const char *inspect[] = {"inspect", "--instance", inst, NULL};
	const char *clean[] = {"clean", "--instance", inst, NULL};
	const char *force[] = {"clean", "--force", "--instance", inst, NULL};
	char out[4096], path[128];
	struct stat st;
	pid_t pid;

	(void)state;
	if (geteuid() != 0)
		skip_because("planting a file as another uid needs root");
	if (!getenv("SHOAL_BIN"))
		skip_because("SHOAL_BIN is not set (run through meson test)");
	seg_file(path, sizeof(path));
	plant_fifo_as_nobody();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(attach_fifo_child());
	assert_int_equal(child_wait(pid, TIMEOUT_MS), 0);
	assert_int_equal(tool_run(out, sizeof(out), inspect), 2);
	assert_non_null(strstr(out, "FIFO"));
	assert_int_equal(tool_run(out, sizeof(out), clean), 2);
	assert_non_null(strstr(out, "FIFO"));
	assert_int_equal(lstat(path, &st), 0); /* refused: still there */
	assert_int_equal(tool_run(out, sizeof(out), force), 0);
	assert_int_equal(lstat(path, &st), -1);
}

/* A segment copied (here: linked) under another name is not that instance: attach says so. */
static void test_segment_name_mismatch(void **state)
{
	struct shm_seg *seg = create_published(), *ro = NULL;
	char other[80], from[128], to[160], err[256];

	(void)state;
	snprintf(other, sizeof(other), "%s-b", inst);
	seg_file(from, sizeof(from));
	snprintf(to, sizeof(to), "/dev/shm/shoal.%s", other);
	unlink(to);
	assert_int_equal(link(from, to), 0);
	assert_int_equal(shm_seg_attach(other, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)),
			 shm_verr_errno(SHM_V_NAME));
	assert_non_null(strstr(err, inst));
	assert_non_null(strstr(err, other));
	assert_int_equal(unlink(to), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)), 0);
	shm_seg_detach(ro);
	shm_seg_detach(seg);
}

/*
 * Names are not identities: instance A's segment is moved aside and instance B takes the name
 * (as a restart does after A's name was removed); removing A, by its descriptor or by the
 * identity a tool saw, must leave B's file alone.
 */
static void test_segment_remove_only_own(void **state)
{
	struct shm_seg *a = create_published(), *b;
	struct shm_cfg cfg;
	struct stat sa, sb, now;
	char path[128], moved[160], err[256];

	(void)state;
	seg_file(path, sizeof(path));
	snprintf(moved, sizeof(moved), "%s-moved", path);
	assert_int_equal(fstat(a->fd, &sa), 0);
	assert_int_equal(rename(path, moved), 0);
	shm_cfg_default(&cfg);
	assert_int_equal(shm_seg_create(inst, &cfg, &b, err, sizeof(err)), 0);
	assert_int_equal(fstat(b->fd, &sb), 0);
	assert_int_equal(shm_seg_remove(a), -ESTALE);
	assert_int_equal(shm_seg_unlink_if(inst, sa.st_dev, sa.st_ino), -ESTALE);
	assert_int_equal(lstat(path, &now), 0);
	assert_true(now.st_ino == sb.st_ino && now.st_dev == sb.st_dev);
	/* its own file goes; a second remove finds nothing */
	assert_int_equal(shm_seg_remove(b), 0);
	assert_int_equal(lstat(path, &now), -1);
	assert_int_equal(shm_seg_remove(b), -ENOENT);
	/* the identity a tool saw, still in place, is removed */
	assert_int_equal(rename(moved, path), 0);
	assert_int_equal(shm_seg_unlink_if(inst, sa.st_dev, sa.st_ino), 0);
	assert_int_equal(lstat(path, &now), -1);
	shm_seg_detach(b);
	shm_seg_detach(a);
}

/* A child creates the segment and is killed before it publishes it: a half-created one. */
static void create_and_die(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_cfg cfg;
		struct shm_seg *seg;
		char err[256];

		shm_cfg_default(&cfg);
		cfg.max_agents = 64;
		if (shm_seg_create(inst, &cfg, &seg, err, sizeof(err)))
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(child_wait(pid, TIMEOUT_MS), -SIGKILL);
}

/*
 * A segment whose creator died before publishing it is recognisable as such: attach fails at
 * once instead of waiting, a new create replaces it, clean removes it without --force and
 * says what it removed, also a zero-filled one (what an older shoal left); one whose creator
 * lives (it holds the creation lock) is left alone by both.
 */
static void test_segment_half_created(void **state)
{
	const char *clean[] = {"clean", "--instance", inst, NULL};
	struct shm_seg *seg, *live;
	struct shm_cfg cfg;
	char err[256], out[4096], path[128];
	uint64_t t0;
	struct stat st;
	int fd;

	(void)state;
	if (!getenv("SHOAL_BIN"))
		skip_because("SHOAL_BIN is not set (run through meson test)");
	seg_file(path, sizeof(path));
	shm_cfg_default(&cfg);
	/* killed after the name appeared: a waiting attach is told at once */
	create_and_die();
	t0 = shm_now_ns();
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 5000, &seg, err, sizeof(err)),
			 -EOWNERDEAD);
	assert_true(shm_now_ns() - t0 < 2000000000ull);
	assert_non_null(strstr(err, "died"));
	/* ... create replaces it, and says so */
	err[0] = 0;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "half-created"));
	shm_seg_publish(seg);
	assert_int_equal(shm_seg_remove(seg), 0);
	shm_seg_detach(seg);
	/* ... clean removes it without --force */
	create_and_die();
	assert_int_equal(tool_run(out, sizeof(out), clean), 0);
	assert_non_null(strstr(out, "half-created"));
	assert_int_equal(lstat(path, &st), -1);
	/* a zero-filled file, as an older shoal killed while creating left it */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(posix_fallocate(fd, 0, 1 << 20), 0);
	close(fd);
	assert_int_equal(tool_run(out, sizeof(out), clean), 0);
	assert_non_null(strstr(out, "half-created"));
	assert_int_equal(lstat(path, &st), -1);
	/* not all zeros and not a valid header: corrupt, not half-created; kept without --force */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(posix_fallocate(fd, 0, 1 << 20), 0);
	assert_int_equal(pwrite(fd, "x", 1, 100), 1);
	close(fd);
	assert_int_equal(tool_run(out, sizeof(out), clean), 2);
	assert_null(strstr(out, "half-created"));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(unlink(path), 0);
	/* a creator that lives (this process, not yet published): neither replaced nor removed */
	assert_int_equal(shm_seg_create(inst, &cfg, &live, err, sizeof(err)), 0);
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "being created"));
	assert_int_equal(tool_run(out, sizeof(out), clean), 2);
	assert_non_null(strstr(out, "being created"));
	assert_int_equal(lstat(path, &st), 0);
	shm_seg_publish(live);
	shm_seg_detach(live);
}

/* A reader that attaches before publish waits for it; one whose wait runs out says so. */
static void test_segment_attach_waits_for_ready(void **state)
{
	struct shm_cfg cfg;
	struct shm_seg *seg, *ro;
	char err[256];
	int pfd[2];
	pid_t pid;
	int status;

	(void)state;
	shm_cfg_default(&cfg);
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 20, &ro, err, sizeof(err)),
			 -ETIMEDOUT);
	assert_non_null(strstr(err, "ready"));
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		int ret;

		close(pfd[1]);
		/* tell the parent we are about to wait, by closing our read end after reading */
		ret = shm_seg_attach(inst, SHM_ATTACH_RO, 10000, &ro, err, sizeof(err));
		(void)c;
		_exit(ret == 0 && atomic_load(&shm_hdr(ro)->ready) == SHM_READY_WORD ? 0 : 1);
	}
	close(pfd[0]);
	close(pfd[1]);
	shm_seg_publish(seg);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	shm_seg_detach(seg);
}

/*
 * The change counter: a waiter on a read-only attachment sleeps in the futex until
 * another process bumps, and a wait with no bump times out at its deadline.
 */
static void test_segment_change_wait(void **state)
{
	struct shm_seg *seg = create_published(), *ro;
	uint64_t t0, deadline;
	uint32_t c;
	char err[256];
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 1000, &ro, err, sizeof(err)), 0);
	/* no waiter: a bump is a plain add, the waiters bit stays clear */
	c = shm_change_read(ro);
	shm_change_bump(seg);
	assert_int_equal(shm_change_read(ro), c + 2);
	assert_int_equal(atomic_load(&shm_hdr(seg)->changes) & 1, 0);
	/* a stale snapshot returns at once */
	assert_int_equal(shm_change_wait(ro, c, shm_now_ns() + 5000000000ull), 0);
	/* no bump: -ETIMEDOUT, not before the deadline */
	c = shm_change_read(ro);
	t0 = shm_now_ns();
	assert_int_equal(shm_change_wait(ro, c, t0 + 30000000ull), -ETIMEDOUT);
	assert_true(shm_now_ns() - t0 >= 30000000ull);
	/* the read-only waiter announced itself through its read-write header page */
	assert_non_null(ro->hdr_rw);
	assert_int_equal(atomic_load(&shm_hdr(seg)->changes) & 1, 1);
	shm_change_bump(seg); /* clears the bit (and wakes nobody) */
	assert_int_equal(atomic_load(&shm_hdr(seg)->changes) & 1, 0);
	/* a bump from another process, made while we sleep, wakes us */
	c = shm_change_read(ro);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_seg *w;
		uint64_t dl = shm_now_ns() + 10000000000ull;

		if (shm_seg_attach(inst, 0, 1000, &w, NULL, 0))
			_exit(2);
		/* bump only once the parent is (about to be) asleep: its waiters bit is set */
		while (!(atomic_load(&shm_hdr(w)->changes) & 1)) {
			if (shm_now_ns() > dl)
				_exit(3);
			sched_yield();
		}
		shm_change_bump(w);
		_exit(0);
	}
	deadline = shm_now_ns() + 10000000000ull;
	assert_int_equal(shm_change_wait(ro, c, deadline), 0);
	assert_true(shm_now_ns() < deadline);
	assert_int_equal(shm_change_read(ro), c + 2);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the waking bump cleared the bit: later bumps make no syscall */
	assert_int_equal(atomic_load(&shm_hdr(seg)->changes) & 1, 0);
	shm_seg_detach(ro);
	/* a layout-minor-0 segment (its writers never bump): the wait returns after a 1 ms
	 * slice, so the caller's condition is looked at again, and never announces itself */
	shm_hdr(seg)->layout_minor = 0;
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 1000, &ro, err, sizeof(err)), 0);
	c = shm_change_read(ro);
	t0 = shm_now_ns();
	assert_int_equal(shm_change_wait(ro, c, t0 + 10000000000ull), 0);
	assert_true(shm_now_ns() - t0 < 5000000000ull);
	assert_null(ro->hdr_rw);
	assert_int_equal(atomic_load(&shm_hdr(seg)->changes) & 1, 0);
	assert_int_equal(shm_change_wait(ro, c, shm_now_ns() + 500000ull), -ETIMEDOUT);
	shm_seg_detach(ro);
	shm_seg_detach(seg);
}

static void test_segment_proc_claim(void **state)
{
	struct shm_seg *seg = create_published(), *other;
	uint32_t max;
	char err[256];

	(void)state;
	max = shm_hdr(seg)->cfg.max_procs;
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_SUPERVISOR, false), 0);
	assert_int_equal(seg->self, 0);
	assert_true(seg->epoch > 0);
	assert_false(shm_tag_is_dead(seg, seg->tag, true));
	assert_true(shm_proc_is_alive(seg, seg->self));
	/* fill the table from another attachment; the next claim is -ENOSPC, not an overwrite */
	for (uint32_t i = 1; i < max; i++) {
		assert_int_equal(shm_seg_attach(inst, 0, 0, &other, err, sizeof(err)), 0);
		assert_int_equal(shm_proc_claim(other, SHM_ROLE_CLIENT, false), 0);
		assert_int_equal(other->self, i);
		/* leak the attachment deliberately: its slot stays claimed by a live pid */
		other->self = UINT32_MAX;
		shm_seg_detach(other);
	}
	assert_int_equal(shm_seg_attach(inst, 0, 0, &other, err, sizeof(err)), 0);
	assert_int_equal(shm_proc_claim(other, SHM_ROLE_CLIENT, true), -ENOSPC);
	/* a released slot is claimable again, with a new epoch; the old tag reads as dead */
	{
		uint64_t old_tag = seg->tag;

		shm_proc_release(seg);
		assert_true(shm_tag_is_dead(other, old_tag, false));
		assert_int_equal(shm_proc_claim(other, SHM_ROLE_CLIENT, false), 0);
		assert_int_equal(other->self, 0);
		assert_true(other->epoch != SHM_TAG_EPOCH(old_tag));
	}
	shm_seg_detach(other);
	shm_seg_detach(seg);
}

/*
 * The exit log keeps every exit of the last SHM_EXIT_LOG, newest first, with what the slot
 * noted; a client's release of its own slot is noted in the slot only.
 */
static void test_segment_exit_log(void **state)
{
	struct shm_seg *seg = create_published();
	struct shm_exit_rec r[SHM_EXIT_LOG + 4];
	struct shm_proc *p;
	uint64_t total;
	uint32_t n;

	(void)state;
	assert_int_equal(shm_exit_log_read(seg, r, SHM_EXIT_LOG, &total), 0);
	assert_int_equal(total, 0);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_CLIENT, false), 0);
	p = shm_proc_at(seg, 3);
	atomic_store(&p->role, SHM_ROLE_WORKER);
	for (uint32_t i = 0; i < SHM_EXIT_LOG + 9; i++) {
		atomic_store_explicit(&p->last_pid, 1000 + i, memory_order_relaxed);
		atomic_store_explicit(&p->last_epoch, 7, memory_order_relaxed);
		atomic_store_explicit(&p->last_code, -1, memory_order_relaxed);
		atomic_store_explicit(&p->last_signal, 9, memory_order_relaxed);
		atomic_store_explicit(&p->last_reason, SHM_EXIT_SIGNAL, memory_order_relaxed);
		atomic_store_explicit(&p->last_exit_ns, 5000 + i, memory_order_relaxed);
		shm_exit_record(seg, 3);
	}
	n = shm_exit_log_read(seg, r, SHM_EXIT_LOG + 4, &total);
	assert_int_equal(total, SHM_EXIT_LOG + 9);
	assert_int_equal(n, SHM_EXIT_LOG);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(r[i].pid, 1000 + SHM_EXIT_LOG + 8 - i); /* newest first */
		assert_int_equal(r[i].time_ns, 5000 + SHM_EXIT_LOG + 8 - i);
		assert_int_equal(r[i].slot, 3);
		assert_int_equal(r[i].role, SHM_ROLE_WORKER);
		assert_int_equal(r[i].signal, 9);
		assert_int_equal(r[i].reason, SHM_EXIT_SIGNAL);
	}
	assert_int_equal(shm_exit_log_read(seg, r, 2, NULL), 2);
	assert_int_equal(r[1].pid, 1000 + SHM_EXIT_LOG + 7);
	/* a client releasing its own slot notes a normal exit in the slot, not in the log:
	 * client churn must not push crashes out of it */
	shm_proc_release(seg);
	n = shm_exit_log_read(seg, r, 1, &total);
	assert_int_equal(n, 1);
	assert_int_equal(total, SHM_EXIT_LOG + 9);
	assert_int_equal(r[0].pid, 1000 + SHM_EXIT_LOG + 8);
	p = shm_proc_at(seg, 0);
	assert_int_equal(atomic_load(&p->last_pid), (uint32_t)getpid());
	assert_int_equal(atomic_load(&p->last_reason), SHM_EXIT_NORMAL);
	assert_int_equal(atomic_load(&p->state), SHM_PROC_EXITED);
	/* a segment of an older minor has no log: nothing read, nothing written */
	shm_hdr(seg)->layout_minor = 4;
	shm_exit_record(seg, 3);
	assert_int_equal(shm_exit_log_read(seg, r, 1, &total), 0);
	assert_int_equal(total, 0);
	shm_hdr(seg)->layout_minor = SHM_LAYOUT_MINOR;
	assert_int_equal(atomic_load(&shm_hdr(seg)->exit_next), SHM_EXIT_LOG + 9);
	shm_seg_detach(seg);
}

/* --- threads sharing one mapping, for ThreadSanitizer (scripts/test.sh --tsan) --- */

#define SEQ_ROUNDS 20000u

struct seq_race {
	struct shm_seg *seg; /* one mapping, shared by both threads */
	_Atomic uint32_t done;
};

/* Exit records of slot 3 whose every field is the round number. */
static void *exit_log_writer(void *arg)
{
	struct seq_race *r = arg;
	struct shm_proc *p = shm_proc_at(r->seg, 3);

	for (uint32_t k = 1; k <= SEQ_ROUNDS; k++) {
		atomic_store_explicit(&p->last_pid, k, memory_order_relaxed);
		atomic_store_explicit(&p->last_epoch, k, memory_order_relaxed);
		atomic_store_explicit(&p->last_code, (int32_t)k, memory_order_relaxed);
		atomic_store_explicit(&p->last_signal, (int32_t)k, memory_order_relaxed);
		atomic_store_explicit(&p->last_reason, k, memory_order_relaxed);
		atomic_store_explicit(&p->last_exit_ns, k, memory_order_relaxed);
		shm_exit_record(r->seg, 3);
		if (k % 3 == 0)
			shm_exit_update(r->seg, 3); /* rewrites the newest record in place */
	}
	atomic_store(&r->done, 1);
	return NULL;
}

/* A record whose fields are not all one round's is torn. */
static void assert_exit_rec_whole(const struct shm_exit_rec *e)
{
	if (e->pid != e->time_ns || e->epoch != e->pid || (uint32_t)e->code != e->pid ||
	    (uint32_t)e->signal != e->pid || e->reason != e->pid || e->slot != 3)
		fail_msg("torn exit record: time %llu pid %u epoch %u code %d signal %d reason %u",
			 (unsigned long long)e->time_ns, e->pid, e->epoch, e->code, e->signal,
			 e->reason);
}

/* A writer thread and a reader thread over one mapping: the reader never sees a torn record. */
static void test_segment_exit_log_threads(void **state)
{
	struct seq_race r = {.seg = create_published()};
	struct shm_exit_rec e[SHM_EXIT_LOG];
	pthread_t t;
	uint64_t reads = 0, total;
	uint32_t n;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, exit_log_writer, &r), 0);
	while (!atomic_load(&r.done)) {
		n = shm_exit_log_read(r.seg, e, SHM_EXIT_LOG, NULL);
		for (uint32_t i = 0; i < n; i++)
			assert_exit_rec_whole(&e[i]);
		reads += n;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	n = shm_exit_log_read(r.seg, e, SHM_EXIT_LOG, &total);
	assert_int_equal(n, SHM_EXIT_LOG);
	assert_int_equal(total, SEQ_ROUNDS);
	assert_int_equal(e[0].pid, SEQ_ROUNDS);
	for (uint32_t i = 0; i < n; i++)
		assert_exit_rec_whole(&e[i]);
	print_message("exit log: %llu records read while written\n", (unsigned long long)reads);
	shm_seg_detach(r.seg);
}

/* Telemetry flushes of slot 2 whose every field is the round number. */
static void *telem_writer(void *arg)
{
	struct seq_race *r = arg;
	struct shm_telem t;

	for (uint32_t k = 1; k <= SEQ_ROUNDS; k++) {
		memset(&t, 0, sizeof(t));
		t.flushed_ns = t.handled = t.rounds = t.parks = t.flushes = k;
		t.pid = t.final = k;
		for (uint32_t i = 0; i < SHM_TELEM_BUCKETS; i++)
			t.batch[i] = k;
		shm_telem_flush(r->seg, 2, &t);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

/* A block whose fields are not all one flush's is torn (0: never flushed). */
static void assert_telem_whole(const struct shm_telem *t)
{
	uint64_t k = t->flushes;
	bool whole = t->flushed_ns == k && t->handled == k && t->rounds == k && t->parks == k &&
		     t->pid == k && t->final == k;

	for (uint32_t i = 0; i < SHM_TELEM_BUCKETS; i++)
		whole = whole && t->batch[i] == k;
	if (!whole)
		fail_msg("torn telemetry block: flushes %llu, handled %llu, batch[15] %llu",
			 (unsigned long long)k, (unsigned long long)t->handled,
			 (unsigned long long)t->batch[SHM_TELEM_BUCKETS - 1]);
}

/* A flushing thread and a reading thread over one mapping: no torn block is ever read. */
static void test_segment_telemetry_threads(void **state)
{
	struct seq_race r = {.seg = create_published()};
	struct shm_telem out;
	pthread_t t;
	uint64_t reads = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, telem_writer, &r), 0);
	while (!atomic_load(&r.done)) {
		int ret = shm_telem_read(r.seg, 2, &out);

		if (ret == -EAGAIN)
			continue;
		assert_int_equal(ret, 0);
		assert_telem_whole(&out);
		reads++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(shm_telem_read(r.seg, 2, &out), 0);
	assert_telem_whole(&out);
	assert_int_equal(out.flushes, SEQ_ROUNDS);
	print_message("telemetry: %llu blocks read while flushed\n", (unsigned long long)reads);
	shm_seg_detach(r.seg);
}

/* A telemetry block per process slot: written whole, read whole; none past the table. */
static void test_segment_telemetry(void **state)
{
	struct shm_seg *seg = create_published();
	struct shm_telem t = {.pid = 42, .handled = 1000, .rounds = 7, .flushes = 1, .final = 1},
			 out;
	uint32_t max = shm_hdr(seg)->cfg.max_procs;

	(void)state;
	assert_int_equal(shm_hdr(seg)->regions[SHM_R_TELEMETRY].size,
			 (uint64_t)max * sizeof(struct shm_telem));
	assert_int_equal(shm_telem_read(seg, 2, &out), 0);
	assert_int_equal(out.flushes, 0); /* never flushed */
	t.batch[3] = 5;
	shm_telem_flush(seg, 2, &t);
	assert_int_equal(shm_telem_read(seg, 2, &out), 0);
	assert_int_equal(out.pid, 42);
	assert_int_equal(out.handled, 1000);
	assert_int_equal(out.batch[3], 5);
	assert_int_equal(out.final, 1);
	assert_int_equal(atomic_load(&out.seq) % 2, 0);
	assert_int_equal(shm_telem_read(seg, 1, &out), 0);
	assert_int_equal(out.handled, 0); /* its neighbours untouched */
	assert_int_equal(shm_telem_read(seg, max, &out), -ENOENT);
	shm_hdr(seg)->layout_minor = 5;
	assert_int_equal(shm_telem_read(seg, 2, &out), -ENOENT);
	shm_hdr(seg)->layout_minor = SHM_LAYOUT_MINOR;
	shm_seg_detach(seg);
}

/* A client that dies holding a slot: its slot is found dead and reaped when the table fills. */
static void test_segment_proc_dead_client(void **state)
{
	struct shm_seg *seg = create_published();
	uint64_t tag;
	int pfd[2];
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_seg *c;
		char err[256];

		if (shm_seg_attach(inst, 0, 0, &c, err, sizeof(err)) ||
		    shm_proc_claim(c, SHM_ROLE_CLIENT, false))
			_exit(1);
		shm_proc_set_state(c, SHM_PROC_RUNNING);
		if (write(pfd[1], &c->tag, sizeof(c->tag)) != sizeof(c->tag))
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &tag, sizeof(tag)), (ssize_t)sizeof(tag));
	close(pfd[0]);
	assert_false(shm_tag_is_dead(seg, tag, true));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* without a probe nobody has noticed yet; with one, the kernel says it is gone */
	assert_false(shm_tag_is_dead(seg, tag, false));
	assert_true(shm_tag_is_dead(seg, tag, true));
	shm_seg_detach(seg);
}

/* --- a claimer paused or killed at each step of its claim while a reaper runs --- */

struct claim_ctl {
	_Atomic uint32_t reached; /* the step the claimer paused at */
	_Atomic uint32_t go;	  /* set by the test: the claimer goes on */
};

static struct claim_ctl *cctl;
static int claim_step;
static bool claim_kill;

static void claim_hook(int step)
{
	uint64_t end = shm_now_ns() + 10000000000ull;

	if (step != claim_step)
		return;
	if (claim_kill)
		raise(SIGKILL);
	atomic_store(&cctl->reached, (uint32_t)step);
	while (!atomic_load(&cctl->go)) {
		if (shm_now_ns() > end)
			_exit(92); /* the test never let us go on */
		sched_yield();
	}
}

/* Wait for a child's exit through its pidfd, up to 10 s (then kill it); its status. */
static int wait_child(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
	struct pollfd p = {.fd = pfd, .events = POLLIN};

	assert_true(pfd >= 0);
	if (poll(&p, 1, 10000) != 1) {
		kill(pid, SIGKILL);
		fail_msg("child %d did not exit within 10 s", (int)pid);
	}
	close(pfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static bool wait_reached(uint32_t step)
{
	uint64_t end = shm_now_ns() + 10000000000ull;

	while (atomic_load(&cctl->reached) != step) {
		if (shm_now_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

static struct shm_seg *attach_rw(void)
{
	struct shm_seg *s = NULL;
	char err[256];

	assert_int_equal(shm_seg_attach(inst, 0, 0, &s, err, sizeof(err)), 0);
	return s;
}

/* Is a slot in this state held by some live process (claimed, or being claimed)? */
static bool is_taken(uint32_t st)
{
	return st != SHM_PROC_FREE && st != SHM_PROC_EXITED && st != SHM_PROC_DEAD;
}

/*
 * The victim slot, its last owner dead, is claimable again within a few rounds of reaping
 * (the test plays the supervisor: DEAD -> EXITED). Done in a child that then releases it
 * and exits, so the next claim finds an EXITED slot whose own word names a dead process.
 */
static void reclaim_victim(uint32_t victim)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_seg *r = attach_rw();

		for (int round = 0; round < 3; round++) {
			int rc = shm_proc_claim(r, SHM_ROLE_CLIENT, true);
			struct shm_proc *p = shm_proc_at(r, victim);

			if (rc == 0) {
				if (r->self != victim)
					_exit(3);
				shm_proc_release(r);
				_exit(0);
			}
			if (atomic_load(&p->state) == SHM_PROC_DEAD)
				atomic_store(&p->state,
					     SHM_PROC_EXITED); /* the supervisor's repair */
		}
		_exit(4);
	}
	assert_int_equal(wait_child(pid), 0);
}

/*
 * A 4-slot process table whose slots 0..2 this (live) process holds, through seg and the
 * two attachments put in fill: only slot 3, the victim, is left. Maps cctl.
 */
static struct shm_seg *table_but_victim(struct shm_seg *fill[2])
{
	struct shm_seg *seg;
	struct shm_cfg cfg;
	char err[256];

	shm_cfg_default(&cfg);
	cfg.max_procs = 4;
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	cctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(cctl != MAP_FAILED);
	assert_int_equal(shm_proc_claim(seg, SHM_ROLE_CLIENT, false), 0);
	for (int i = 0; i < 2; i++) {
		fill[i] = attach_rw();
		assert_int_equal(shm_proc_claim(fill[i], SHM_ROLE_CLIENT, false), 0);
	}
	return seg;
}

/*
 * A claimer paused at each step of its claim keeps its slot while another claimer reaps a
 * full table: the reaper neither marks it dead nor takes it, and the claimer goes on as the
 * slot's only owner. A claimer killed at each step leaves a slot that reaping (and the
 * supervisor's repair) makes claimable again.
 */
static void test_segment_proc_claim_crash_steps(void **state)
{
	static const int steps[] = {SHM_PROC_STEP_HELD, SHM_PROC_STEP_OWN, SHM_PROC_STEP_FILLED,
				    SHM_PROC_STEP_PUBLISHED};
	struct shm_seg *seg, *r, *fill[2];
	const uint32_t victim = 3;

	(void)state;
	seg = table_but_victim(fill);
	r = attach_rw();
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
			struct shm_proc *p = shm_proc_at(seg, victim);
			int status;
			pid_t pid;

			atomic_store(&cctl->reached, 0);
			atomic_store(&cctl->go, 0);
			claim_step = steps[i];
			claim_kill = k == 1;
			pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				struct shm_seg *c;
				uint64_t own;

				prctl(PR_SET_PDEATHSIG, SIGKILL);
				c = attach_rw();
				shm_proc_test_hook = claim_hook;
				if (shm_proc_claim(c, SHM_ROLE_CLIENT, false) || c->self != victim)
					_exit(1);
				shm_proc_test_hook = NULL;
				/* still the owner after the reaper ran: own and state are ours */
				own = atomic_load(&p->own);
				if ((pid_t)(own >> 32) != getpid() || (uint32_t)own != c->epoch ||
				    atomic_load(&p->state) != SHM_PROC_STARTING)
					_exit(2);
				shm_proc_set_state(c, SHM_PROC_RUNNING);
				_exit(0); /* dies holding the slot */
			}
			if (!claim_kill) {
				if (!wait_reached((uint32_t)steps[i])) {
					kill(pid, SIGKILL);
					fail_msg("claimer never reached step %d", steps[i]);
				}
				/* the table is full: the reaper finds nothing dead to take */
				assert_int_equal(shm_proc_claim(r, SHM_ROLE_CLIENT, true), -ENOSPC);
				/* nor does the supervisor's client scan */
				assert_int_equal(shm_proc_reap(r, victim), 0);
				if (!is_taken(atomic_load(&p->state))) {
					kill(pid, SIGKILL);
					fail_msg("step %d: a live claimer's slot reads %s",
						 steps[i],
						 shm_proc_state_name(atomic_load(&p->state)));
				}
				atomic_store(&cctl->go, 1);
				status = wait_child(pid);
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					fail_msg("step %d: the claimer lost its slot (status %#x)",
						 steps[i], status);
				assert_int_equal(atomic_load(&p->state), SHM_PROC_RUNNING);
			} else {
				status = wait_child(pid);
				assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
			}
			reclaim_victim(victim);
			/* as if its last owner had started long before any claimer here */
			atomic_store(&p->start_time, 1);
		}
	}
	munmap(cctl, 4096);
	shm_seg_detach(r);
	for (int i = 0; i < 2; i++)
		shm_seg_detach(fill[i]);
	shm_seg_detach(seg);
}

/* A child that claims the victim slot, publishes it RUNNING and dies holding it. */
static void dead_owner(uint32_t victim)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_seg *c = attach_rw();

		if (shm_proc_claim(c, SHM_ROLE_CLIENT, false) || c->self != victim)
			_exit(1);
		shm_proc_set_state(c, SHM_PROC_RUNNING);
		_exit(0);
	}
	assert_int_equal(wait_child(pid), 0);
}

/* Fork a reaper of the victim slot that pauses (or dies) at step; it exits with the result. */
static pid_t start_reaper(uint32_t victim, int step, bool die)
{
	pid_t pid;

	atomic_store(&cctl->reached, 0);
	atomic_store(&cctl->go, 0);
	claim_step = step;
	claim_kill = die;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_seg *c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c = attach_rw();
		shm_proc_test_hook = claim_hook;
		_exit(shm_proc_reap(c, victim) == 1 ? 10 : 11);
	}
	return pid;
}

/*
 * A reaper that dies holding a dead owner's slot leaves it to the next reaper, which marks
 * it DEAD. A reaper paused after judging an owner dead, while the slot is repaired and
 * claimed by a live owner that publishes the same state, gives that state back instead
 * of marking the live owner dead.
 */
static void test_segment_proc_reap_crash_steps(void **state)
{
	struct shm_seg *seg, *m, *fill[2];
	const uint32_t victim = 3;
	struct shm_proc *p;
	int status;
	pid_t pid;

	(void)state;
	seg = table_but_victim(fill);
	p = shm_proc_at(seg, victim);

	/* a reaper killed holding the slot: the hold names it; the next reaper finishes */
	dead_owner(victim);
	pid = start_reaper(victim, SHM_PROC_STEP_REAP_HELD, true);
	status = wait_child(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_string_equal(shm_proc_state_name(atomic_load(&p->state)), "reaping");
	assert_int_equal(shm_proc_reap(seg, victim), 1);
	assert_int_equal(atomic_load(&p->state), SHM_PROC_DEAD);
	atomic_store(&p->state, SHM_PROC_EXITED); /* the supervisor's repair */

	/* a reaper paused between its judgement and its hold while the slot changes hands */
	dead_owner(victim);
	pid = start_reaper(victim, SHM_PROC_STEP_REAP_JUDGED, false);
	if (!wait_reached(SHM_PROC_STEP_REAP_JUDGED)) {
		kill(pid, SIGKILL);
		fail_msg("reaper never reached its judgement");
	}
	assert_int_equal(shm_proc_reap(seg, victim), 1); /* another reaper marks it */
	atomic_store(&p->state, SHM_PROC_EXITED);	 /* the supervisor's repair */
	m = attach_rw();
	assert_int_equal(shm_proc_claim(m, SHM_ROLE_CLIENT, false), 0);
	assert_int_equal(m->self, victim);
	shm_proc_set_state(m, SHM_PROC_RUNNING); /* the state the paused reaper judged */
	atomic_store(&cctl->go, 1);
	status = wait_child(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 11); /* it marked nothing */
	assert_int_equal(atomic_load(&p->state), SHM_PROC_RUNNING);
	assert_int_equal(atomic_load(&p->own), ((uint64_t)(uint32_t)getpid() << 32) | m->epoch);
	assert_false(shm_tag_is_dead(seg, m->tag, true));

	shm_seg_detach(m);
	munmap(cctl, 4096);
	for (int i = 0; i < 2; i++)
		shm_seg_detach(fill[i]);
	shm_seg_detach(seg);
}

/* --- claimers, dying claimers, reapers and the repair: threads of one mapping --- */

/*
 * What the threads of test_segment_proc_claim_threads share. Threads share a pid, and a
 * slot's claimer and owner are judged by pid (and start time): so every live claimer is
 * this process, and a claimer "dies" by stopping at a step of its claim (pthread_exit() in
 * the test hook) after claiming in the name of a pid that is gone (a reaped child's): what
 * a SIGKILL leaves, with the one difference that the thread's earlier stores stay in
 * ThreadSanitizer's history. Marks: who the test believes holds each slot.
 */
#define PT_SLOTS     6u
#define PT_LIVE	     2 /* live claimer threads */
#define PT_ROUNDS    300
#define PT_DEAD_MARK 0x100u /* a dying claimer's mark: PT_DEAD_MARK | its step */
struct proc_threads {
	struct shm_seg *seg;		 /* the one mapping */
	pid_t gone;			 /* a pid no process has: dying claimers claim as it */
	_Atomic uint32_t mark[PT_SLOTS]; /* 0, 1 + a live claimer's number, or a dead mark */
	_Atomic uint32_t live_done;	 /* live claimers finished */
	_Atomic uint32_t failed;	 /* 1: why[] says what went wrong */
	_Atomic uint64_t died_published; /* dying claimers that died after publishing */
	_Atomic uint64_t dead_marked;	 /* slots the supervisor found DEAD and repaired */
	char why[256];			 /* written by the first failure only */
};

static struct proc_threads *pt;
static _Thread_local int pt_die_at;	 /* the step this thread dies at, 0 none */
static _Thread_local uint32_t pt_trying; /* the slot this dying claimer tries */

static void pt_fail(const char *fmt, ...)
{
	va_list ap;
	uint32_t zero = 0;

	if (!atomic_compare_exchange_strong(&pt->failed, &zero, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(pt->why, sizeof(pt->why), fmt, ap);
	va_end(ap);
}

/* A mark a new claimer may replace: nobody's, or a dead claimer's (its slot was reaped). */
static void pt_take_mark(uint32_t slot, uint32_t mine)
{
	uint32_t prev = atomic_exchange(&pt->mark[slot], mine);

	if (prev && !(prev & PT_DEAD_MARK))
		pt_fail("slot %u claimed (mark %#x) while live claimer %u still owned it", slot,
			mine, prev - 1);
}

/* The hook of a dying claimer: after C0, mark the slot; at its step, die there. */
static void pt_hook(int step)
{
	if (!pt_die_at)
		return;
	if (step == SHM_PROC_STEP_HELD)
		pt_take_mark(pt_trying, PT_DEAD_MARK | (uint32_t)pt_die_at);
	if (step != pt_die_at)
		return;
	if (step == SHM_PROC_STEP_PUBLISHED)
		atomic_fetch_add(&pt->died_published, 1);
	pthread_exit(NULL);
}

static void *pt_dying(void *arg)
{
	struct shm_seg seg = *pt->seg;
	uint32_t epoch;

	pt_die_at = (int)(intptr_t)arg;
	for (pt_trying = 0; pt_trying < PT_SLOTS; pt_trying++)
		if (shm_proc_claim_slot(&seg, pt_trying, SHM_ROLE_CLIENT, pt->gone, 12345,
					&epoch) == 0)
			pt_fail("claimer dying at step %d claimed slot %u and lived", pt_die_at,
				pt_trying);
	return NULL; /* the table was full: nothing claimed */
}

/* A live owner's checks: its own word and state are its own, and nobody thinks it dead. */
static void pt_check_owned(struct shm_seg *seg, uint32_t me, uint32_t want)
{
	struct shm_proc *p = shm_proc_at(seg, seg->self);
	uint64_t own = atomic_load(&p->own);
	uint32_t st = atomic_load(&p->state);

	if (own != (((uint64_t)(uint32_t)getpid() << 32) | seg->epoch) || st != want ||
	    shm_tag_is_dead(seg, seg->tag, true) || atomic_load(&pt->mark[seg->self]) != me)
		pt_fail("live claimer %u lost slot %u: state %s (want %s), own %#llx, mark %#x",
			me - 1, seg->self, shm_proc_state_name(st), shm_proc_state_name(want),
			(unsigned long long)own, atomic_load(&pt->mark[seg->self]));
}

static void *pt_live(void *arg)
{
	struct shm_seg seg = *pt->seg; /* its own attachment state, the shared mapping */
	uint32_t me = 1 + (uint32_t)(uintptr_t)arg;
	uint64_t end = shm_now_ns() + 120000000000ull;

	for (int round = 0; round < PT_ROUNDS && !atomic_load(&pt->failed);) {
		int r = shm_proc_claim(&seg, SHM_ROLE_CLIENT, true);

		if (r == -ENOSPC) {
			if (shm_now_ns() > end) {
				pt_fail("live claimer %u: the table stayed full for 120 s", me - 1);
				break;
			}
			sched_yield();
			continue;
		}
		if (r) {
			pt_fail("live claimer %u: claim: %s", me - 1, strerror(-r));
			break;
		}
		pt_take_mark(seg.self, me);
		pt_check_owned(&seg, me, SHM_PROC_STARTING);
		shm_proc_set_state(&seg, SHM_PROC_RUNNING);
		sched_yield(); /* let reapers judge it */
		pt_check_owned(&seg, me, SHM_PROC_RUNNING);
		atomic_store(&pt->mark[seg.self], 0);
		shm_proc_release(&seg);
		round++;
	}
	atomic_fetch_add(&pt->live_done, 1);
	return NULL;
}

/* A valid state word: a state, or a hold by this process or by the gone pid. */
static bool pt_is_valid(uint32_t st)
{
	pid_t h = SHM_PROC_HOLD_PID(st);

	if (!(st & SHM_PROC_HELD))
		return st <= SHM_PROC_EXITED;
	return SHM_PROC_HOLD_PREV(st) <= SHM_PROC_STOPPING && (h == getpid() || h == pt->gone);
}

/*
 * A tool and the supervisor's client scan: judge, reap and read every slot; the supervisor
 * (repair: its one thread) also repairs DEAD slots.
 */
static void pt_scan(struct shm_seg *seg, bool repair)
{
	for (uint32_t i = 0; i < PT_SLOTS; i++) {
		struct shm_proc *p = shm_proc_at(seg, i);
		uint32_t st, m;

		shm_proc_reap(seg, i);
		(void)shm_proc_is_alive(seg, i);
		(void)shm_tag_is_dead(seg, SHM_TAG(i, (uint32_t)atomic_load(&p->own)), true);
		/* D1 in sup_clients_scan() */
		st = atomic_load_explicit(&p->state, memory_order_acquire);
		if (!pt_is_valid(st))
			pt_fail("slot %u: state word %#x", i, st);
		if (st != SHM_PROC_DEAD || !repair)
			continue;
		/* only a claimer that died after publishing its claim is found DEAD */
		m = atomic_load(&pt->mark[i]);
		if (m != (PT_DEAD_MARK | SHM_PROC_STEP_PUBLISHED))
			pt_fail("slot %u marked DEAD; its claimer (mark %#x) was not", i, m);
		atomic_store(&pt->mark[i], 0);
		atomic_fetch_add(&pt->dead_marked, 1);
		sup_repair_vanished(seg, i, false);
	}
}

static void *pt_tool(void *arg)
{
	struct shm_seg seg = *pt->seg;
	struct shm_exit_rec e[8];

	(void)arg;
	while (atomic_load(&pt->live_done) < PT_LIVE) {
		pt_scan(&seg, false);
		shm_exit_log_read(&seg, e, 8, NULL);
		sched_yield();
	}
	return NULL;
}

/*
 * Threads of one process on one mapping claim and release process slots (claimers that reap
 * a full table), die at each step of a claim, and judge, reap and repair slots as tools and
 * the supervisor's client scan do: no slot has two owners, a live owner is never judged
 * dead, every state word is valid, and every claimer that died after publishing is found
 * DEAD once. For ThreadSanitizer, which sees no race between processes: the claim's
 * own/state/start_time, the hold word and the repair's exit record. Not covered here: a
 * reaper dying while it holds a slot (K1's give-back: a reaper's hold names this live
 * pid), and an owner's pid reused by another process, told apart by its start time
 * (test_segment_proc_*_crash_steps fork those).
 */
static void test_segment_proc_claim_threads(void **state)
{
	static const int steps[] = {SHM_PROC_STEP_HELD, SHM_PROC_STEP_OWN, SHM_PROC_STEP_FILLED,
				    SHM_PROC_STEP_PUBLISHED};
	struct shm_seg *seg;
	struct shm_cfg cfg;
	pthread_t live[PT_LIVE], tool;
	char err[256];
	pid_t pid;

	(void)state;
	pt = calloc(1, sizeof(*pt));
	assert_non_null(pt);
	shm_cfg_default(&cfg);
	cfg.max_procs = PT_SLOTS;
	cfg.max_agents = 64;
	cfg.reg_capacity = 256;
	assert_int_equal(shm_seg_create(inst, &cfg, &seg, err, sizeof(err)), 0);
	shm_seg_publish(seg);
	pt->seg = seg;
	/* a pid that is gone: a child's, reaped */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(wait_child(pid), 0);
	pt->gone = pid;
	shm_proc_test_hook = pt_hook;
	for (int i = 0; i < PT_LIVE; i++)
		assert_int_equal(pthread_create(&live[i], NULL, pt_live, (void *)(uintptr_t)i), 0);
	assert_int_equal(pthread_create(&tool, NULL, pt_tool, NULL), 0);
	/* the supervisor: a dying claimer at a time, each step in turn, and the client scan */
	for (unsigned n = 0; atomic_load(&pt->live_done) < PT_LIVE; n++) {
		pthread_t t;
		int step = steps[n % 4];

		assert_int_equal(pthread_create(&t, NULL, pt_dying, (void *)(intptr_t)step), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		pt_scan(seg, true);
	}
	for (int i = 0; i < PT_LIVE; i++)
		assert_int_equal(pthread_join(live[i], NULL), 0);
	assert_int_equal(pthread_join(tool, NULL), 0);
	shm_proc_test_hook = NULL;
	if (atomic_load(&pt->failed))
		fail_msg("%s", pt->why);
	/* what is left of the dead: reaped, repaired; then nothing is owned */
	pt_scan(seg, true);
	pt_scan(seg, true);
	for (uint32_t i = 0; i < PT_SLOTS; i++) {
		uint32_t st = atomic_load(&shm_proc_at(seg, i)->state);

		if (st != SHM_PROC_FREE && st != SHM_PROC_EXITED)
			fail_msg("slot %u reads %s after every claimer left", i,
				 shm_proc_state_name(st));
	}
	assert_int_equal(atomic_load(&pt->failed), 0);
	assert_int_equal(atomic_load(&pt->dead_marked), atomic_load(&pt->died_published));
	print_message("process claims: %llu claimers died after publishing, each found dead\n",
		      (unsigned long long)atomic_load(&pt->died_published));
	shm_seg_detach(seg);
	free(pt);
	pt = NULL;
}

/* An instance whose creator died without stopping it is stale; a stopped one is not live. */
static void test_segment_liveness(void **state)
{
	struct shm_seg *ro;
	char err[256];
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_cfg cfg;
		struct shm_seg *seg;

		shm_cfg_default(&cfg);
		if (shm_seg_create(inst, &cfg, &seg, err, sizeof(err)))
			_exit(1);
		atomic_store(&shm_hdr(seg)->state, SHM_INST_RUNNING);
		shm_seg_publish(seg);
		_exit(0); /* dies without marking it stopped */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &ro, err, sizeof(err)), 0);
	assert_int_equal(shm_seg_liveness(ro, 0), SHM_LIVE_STALE);
	shm_seg_detach(ro);

	/* our own live instance */
	shm_seg_unlink(inst);
	ro = create_published();
	atomic_store(&shm_hdr(ro)->state, SHM_INST_RUNNING);
	assert_int_equal(shm_seg_liveness(ro, 0), SHM_LIVE_OK);
	atomic_store(&shm_hdr(ro)->heartbeat_ns, 1);
	assert_int_equal(shm_seg_liveness(ro, 1000000), SHM_LIVE_UNRESPONSIVE);
	atomic_store(&shm_hdr(ro)->state, SHM_INST_STOPPED);
	assert_int_equal(shm_seg_liveness(ro, 0), SHM_LIVE_STOPPED);
	shm_seg_detach(ro);
}

static int run_shoal(const char *args)
{
	char cmd[512];
	const char *bin = getenv("SHOAL_BIN");
	int status;

	if (!bin)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", bin, args);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* shoal clean: refuses a live instance, removes a stale one, is idempotent. */
static void test_segment_clean_command(void **state)
{
	struct shm_seg *seg, *created;
	char args[128], err[256];
	pid_t pid;
	int status;

	(void)state;
	if (!getenv("SHOAL_BIN"))
		skip_because("SHOAL_BIN is not set (run through meson test)");
	created = create_published();
	atomic_store(&shm_hdr(created)->state, SHM_INST_RUNNING);
	snprintf(args, sizeof(args), "clean --instance %s", inst);
	assert_int_equal(run_shoal(args), 2); /* live: refused */
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &seg, err, sizeof(err)), 0);
	shm_seg_detach(seg);
	shm_seg_detach(created);
	shm_seg_unlink(inst);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct shm_cfg cfg;

		shm_cfg_default(&cfg);
		if (shm_seg_create(inst, &cfg, &seg, err, sizeof(err)))
			_exit(1);
		atomic_store(&shm_hdr(seg)->state, SHM_INST_RUNNING);
		shm_seg_publish(seg);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(run_shoal(args), 0); /* stale: removed */
	assert_int_equal(shm_seg_attach(inst, SHM_ATTACH_RO, 0, &seg, err, sizeof(err)), -ENOENT);
	assert_int_equal(run_shoal(args), 0); /* idempotent */
}

/*
 * The one /proc/<pid>/stat parser: a command name with spaces and parentheses, a stopped
 * process, a zombie's exit status, a process that is gone.
 */
static void test_segment_pid_stat(void **state)
{
	struct shm_pid_stat st;
	int up[2], go[2], status;
	pid_t c;
	char b;

	(void)state;
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(go), 0);
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		prctl(PR_SET_NAME, "a) b (c) ");
		(void)!write(up[1], "x", 1);
		(void)!read(go[0], &b, 1); /* until the parent lets it go */
		_exit(7);
	}
	assert_int_equal(read(up[0], &b, 1), 1);
	assert_int_equal(shm_pid_stat_read(c, &st), 0);
	assert_true(st.state == 'S' || st.state == 'R');
	assert_int_equal(st.start_time, shm_pid_start_time(c));
	assert_true(st.start_time > 0);
	assert_int_equal(st.exit_code, 0);
	/* a child that has run: pages resident; our own CPU time grows with work */
	assert_true(st.rss_pages > 0);
	{
		struct shm_pid_stat me0, me1;
		_Atomic uint64_t x = 0; /* work the compiler keeps: relaxed adds */

		assert_int_equal(shm_pid_stat_read(getpid(), &me0), 0);
		while (shm_pid_stat_read(getpid(), &me1) == 0 &&
		       me1.utime + me1.stime <= me0.utime + me0.stime + 1)
			for (int i = 0; i < 1000000; i++)
				atomic_fetch_add_explicit(&x, (uint64_t)i, memory_order_relaxed);
		assert_true(me1.utime + me1.stime > me0.utime + me0.stime + 1);
		assert_true(me1.rss_pages > 0);
	}
	assert_int_equal(kill(c, SIGSTOP), 0);
	{
		uint64_t dl = shm_now_ns() + 15000000000ull;

		while (shm_pid_state(c) != 'T') {
			if (shm_now_ns() > dl)
				fail_msg("pid %d never read as stopped", (int)c);
			sched_yield();
		}
	}
	assert_int_equal(kill(c, SIGCONT), 0);
	assert_int_equal(write(go[1], "x", 1), 1);
	/* a zombie until we reap it: its exit status is there */
	{
		siginfo_t si;

		assert_int_equal(waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT), 0);
	}
	assert_int_equal(shm_pid_stat_read(c, &st), 0);
	assert_int_equal(st.state, 'Z');
	assert_int_equal(st.exit_code, 7 << 8);
	assert_int_equal(waitpid(c, &status, 0), c);
	assert_int_equal(shm_pid_stat_read(c, &st), -ESRCH);
	assert_int_equal(st.exit_code, -1);
	close(up[0]);
	close(up[1]);
	close(go[0]);
	close(go[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segment_pid_stat),
		cmocka_unit_test_setup_teardown(test_segment_create_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_create_no_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_run_no_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_create_without_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_sparse_file_full_fs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_guard_sigbus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_older_minor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_not_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_region_bounds, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_region_overlap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_validate_vars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_attach_truncated_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_attach_foreign_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_fifo_planted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_name_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_remove_only_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_half_created, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_attach_waits_for_ready, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_change_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_proc_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_exit_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_telemetry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_exit_log_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_telemetry_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_proc_dead_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_proc_claim_crash_steps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_proc_reap_crash_steps, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segment_proc_claim_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_liveness, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_clean_command, setup, teardown),
	};

	/* SHOAL_TEST_ONLY=pattern runs the matching tests alone (scripts/test.sh --tsan) */
	if (getenv("SHOAL_TEST_ONLY"))
		cmocka_set_test_filter(getenv("SHOAL_TEST_ONLY"));
	return cmocka_run_group_tests_name("segment", tests, NULL, NULL);
}

/* The segment: create, publish, attach, validate, detach. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"

static const struct {
	const char *name;
	int err;
} verr_tab[SHM_V_COUNT] = {
	[SHM_V_OK] = {"ok", 0},
	[SHM_V_TRUNCATED] = {"truncated", -EBADMSG},
	[SHM_V_MAGIC] = {"magic", -EPROTO},
	[SHM_V_VERSION] = {"version", -EPROTONOSUPPORT},
	[SHM_V_NOT_READY] = {"not-ready", -EAGAIN},
	[SHM_V_HEADER] = {"header", -EUCLEAN},
	[SHM_V_REGION_BOUNDS] = {"region-bounds", -ERANGE},
	[SHM_V_REGION_OVERLAP] = {"region-overlap", -EDOM},
	[SHM_V_CONFIG] = {"config", -ENOEXEC},
	[SHM_V_FOREIGN] = {"foreign", -EPERM},
	[SHM_V_NAME] = {"name", -ENXIO},
	[SHM_V_SPARSE] = {"sparse", -EFAULT},
};

int shm_verr_errno(enum shm_verr v)
{
	return (unsigned)v < SHM_V_COUNT ? verr_tab[v].err : -EINVAL;
}

const char *shm_verr_name(enum shm_verr v)
{
	return (unsigned)v < SHM_V_COUNT ? verr_tab[v].name : "unknown";
}

#define FAIL(v, ...)                                                                               \
	do {                                                                                       \
		if (errlen)                                                                        \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		return (v);                                                                        \
	} while (0)

/*
 * Checks in the order a reader can afford them: size before any field, magic before
 * meaning, version before layout. Copies the header out first so a concurrent writer
 * cannot change a field between its check and its use.
 */
enum shm_verr shm_seg_validate(const void *base, size_t size, char *err, size_t errlen)
{
	struct shm_hdr h;
	struct shm_region expect[SHM_R_COUNT];
	uint64_t want_size;

	if (!base || size < SHM_HDR_SIZE)
		FAIL(SHM_V_TRUNCATED, "segment is %zu bytes, smaller than its %u-byte header", size,
		     SHM_HDR_SIZE);
	memcpy(&h, base, sizeof(h));
	if (h.magic != SHM_MAGIC)
		FAIL(SHM_V_MAGIC, "not a shoal segment (magic %016llx, expected %016llx)",
		     (unsigned long long)h.magic, (unsigned long long)SHM_MAGIC);
	if (h.layout_major != SHM_LAYOUT_MAJOR)
		FAIL(SHM_V_VERSION, "layout %u, this shoal reads %u; use a matching shoal",
		     h.layout_major, SHM_LAYOUT_MAJOR);
	if (atomic_load_explicit(&h.ready, memory_order_relaxed) != SHM_READY_WORD)
		FAIL(SHM_V_NOT_READY, "not ready: its creator has not finished initialising it");
	if (h.seg_size > size)
		FAIL(SHM_V_TRUNCATED, "truncated: %zu bytes, but its header says %llu", size,
		     (unsigned long long)h.seg_size);
	if (h.seg_size < SHM_HDR_SIZE || h.seg_size % SHM_PAGE)
		FAIL(SHM_V_HEADER, "recorded size %llu is not a whole number of pages",
		     (unsigned long long)h.seg_size);
	if (h.hdr_size != SHM_HDR_SIZE)
		FAIL(SHM_V_HEADER, "header size %u, expected %u", h.hdr_size, SHM_HDR_SIZE);
	/* a minor that added regions: the segment of another shoal, said as such */
	if (h.nregions != SHM_R_COUNT && h.layout_minor < SHM_LAYOUT_MINOR)
		FAIL(SHM_V_VERSION,
		     "made by an older shoal (layout %u.%u, %u regions; this shoal reads %u.%u): "
		     "stop it with the shoal that runs it, or remove it with 'shoal clean "
		     "--force', "
		     "and run it again with this one",
		     h.layout_major, h.layout_minor, h.nregions, SHM_LAYOUT_MAJOR,
		     SHM_LAYOUT_MINOR);
	if (h.nregions != SHM_R_COUNT && h.layout_minor > SHM_LAYOUT_MINOR)
		FAIL(SHM_V_VERSION,
		     "made by a newer shoal (layout %u.%u, %u regions; this shoal reads %u.%u): "
		     "use that shoal's tools for it",
		     h.layout_major, h.layout_minor, h.nregions, SHM_LAYOUT_MAJOR,
		     SHM_LAYOUT_MINOR);
	if (h.nregions != SHM_R_COUNT)
		FAIL(SHM_V_HEADER, "%u regions, layout %u has %u", h.nregions, SHM_LAYOUT_MAJOR,
		     SHM_R_COUNT);
	if (!memchr(h.instance, 0, sizeof(h.instance)))
		FAIL(SHM_V_HEADER, "instance name is not terminated");
	for (unsigned i = 0; i < SHM_R_COUNT; i++) {
		const struct shm_region *r = &h.regions[i];

		if (r->off < SHM_HDR_SIZE || r->off > h.seg_size || r->size > h.seg_size - r->off)
			FAIL(SHM_V_REGION_BOUNDS,
			     "region %u [%llu, +%llu) lies outside the %llu-byte segment", i,
			     (unsigned long long)r->off, (unsigned long long)r->size,
			     (unsigned long long)h.seg_size);
		if (r->off % SHM_ALIGN)
			FAIL(SHM_V_REGION_BOUNDS, "region %u at offset %llu is not %u-byte aligned",
			     i, (unsigned long long)r->off, SHM_ALIGN);
	}
	for (unsigned i = 0; i < SHM_R_COUNT; i++) {
		for (unsigned j = i + 1; j < SHM_R_COUNT; j++) {
			const struct shm_region *a = &h.regions[i], *b = &h.regions[j];

			if (a->size && b->size && a->off < b->off + b->size &&
			    b->off < a->off + a->size)
				FAIL(SHM_V_REGION_OVERLAP, "regions %u and %u overlap", i, j);
		}
	}
	if (shm_cfg_check(&h.cfg, err, errlen))
		return SHM_V_CONFIG;
	want_size = shm_layout_compute(&h.cfg, expect);
	if (want_size != h.seg_size)
		FAIL(SHM_V_CONFIG, "configuration implies %llu bytes, header says %llu",
		     (unsigned long long)want_size, (unsigned long long)h.seg_size);
	for (unsigned i = 0; i < SHM_R_COUNT; i++)
		if (expect[i].off != h.regions[i].off || expect[i].size != h.regions[i].size)
			FAIL(SHM_V_CONFIG, "region %u disagrees with the configuration", i);
	return SHM_V_OK;
}

bool shm_is_valid_instance(const char *instance)
{
	size_t n = instance ? strlen(instance) : 0;

	if (n == 0 || n >= SHM_INSTANCE_MAX || instance[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = instance[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Where glibc's shm_open() keeps its objects: create works on the directory itself. */
#define SHM_DIR "/dev/shm"

static struct shm_seg *seg_new(const char *instance)
{
	struct shm_seg *seg = calloc(1, sizeof(*seg));

	if (!seg)
		return NULL;
	seg->fd = -1;
	seg->self = UINT32_MAX;
	snprintf(seg->instance, sizeof(seg->instance), "%s", instance);
	snprintf(seg->path, sizeof(seg->path), "/shoal.%s", instance);
	return seg;
}

/*
 * Reserve size bytes for the (still nameless) file fd: every page allocated now, so no
 * access through a mapping can ever find a page the filesystem cannot back (SIGBUS). A
 * segment bigger than the free space is refused up front, naming both sizes; a reservation
 * that fails anyway (another file took the space meanwhile, a memory cgroup limit) says the
 * same. 0 or -errno.
 */
static int reserve(int fd, const char *instance, uint64_t size, char *err, size_t errlen)
{
	unsigned long long avail = 0;
	struct statvfs vfs;
	bool limited;
	int ret;

	/* a tmpfs without a size limit reports 0 blocks: nothing to compare with */
	limited = fstatvfs(fd, &vfs) == 0 && vfs.f_blocks;
	if (limited) {
		avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		if (size > avail)
			FAIL(-ENOSPC,
			     "instance '%s': the segment needs %llu bytes (%.1f MiB) but " SHM_DIR
			     " has %llu bytes (%.1f MiB) free; free space there ('shoal clean' "
			     "removes stale instances) or configure a smaller [segment]",
			     instance, (unsigned long long)size, (double)size / 1048576.0, avail,
			     (double)avail / 1048576.0);
	}
	/*
	 * tmpfs gives up a large fallocate with EINTR when a signal (or, seen on Linux 6.1, the
	 * task work of an io_uring just torn down) is pending; what it reserved stays, so
	 * asking again goes on from there.
	 */
	do
		ret = posix_fallocate(fd, 0, (off_t)size);
	while (ret == EINTR);
	if ((ret == ENOSPC || ret == ENOMEM) && limited)
		FAIL(-ENOSPC,
		     "instance '%s': reserving %llu bytes (%.1f MiB) for the segment in " SHM_DIR
		     " failed: %s (%llu bytes were free when checked); free space there or "
		     "configure a smaller [segment]",
		     instance, (unsigned long long)size, (double)size / 1048576.0, strerror(ret),
		     avail);
	if (ret == ENOSPC || ret == ENOMEM)
		FAIL(-ENOSPC,
		     "instance '%s': reserving %llu bytes (%.1f MiB) for the segment in " SHM_DIR
		     " failed: %s; free memory or configure a smaller [segment]",
		     instance, (unsigned long long)size, (double)size / 1048576.0, strerror(ret));
	if (ret)
		FAIL(-ret, "instance '%s': reserving %llu bytes in " SHM_DIR ": %s", instance,
		     (unsigned long long)size, strerror(ret));
	return 0;
}

static int open_seg_file(const char *path, int oflag, const char *instance, struct stat *st,
			 char *err, size_t errlen);

/*
 * The creation lock: an OFD write lock on the whole file, taken while the file is still
 * nameless and dropped by shm_seg_publish(). The kernel drops it too when the creator dies
 * (its last descriptor closes), so a named, unpublished file that nobody holds locked has a
 * dead creator, whatever instruction a SIGKILL hit: before the link there is no name, after
 * it the lock is held until publish or death. A pid in the header could not say that before
 * the header is written, nor tell a reused pid without more reads.
 */
static int creation_lock(int fd, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* Does someone hold fd's file's creation lock? 1 yes, 0 no, or -errno. */
static int is_creation_locked(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}

/*
 * What an unpublished file's header says of its creator, for messages: " (pid N)" or "". The
 * header is filled before the name appears, but an older shoal's file may be all zeros.
 */
static void creator_of(const struct shm_hdr *h, char *buf, size_t cap)
{
	if (h->magic == SHM_MAGIC && h->creator_pid)
		snprintf(buf, cap, ", pid %u,", h->creator_pid);
	else
		buf[0] = 0;
}

/*
 * Give the nameless file seg->fd its name: link() never replaces, so this is where a name
 * already taken is found. 0, -EEXIST or another -errno with a sentence in err.
 */
static int link_name(struct shm_seg *seg, char *err, size_t errlen)
{
	char from[64], to[sizeof(SHM_DIR) + sizeof(seg->path)];
	int ret;

	snprintf(from, sizeof(from), "/proc/self/fd/%d", seg->fd);
	snprintf(to, sizeof(to), SHM_DIR "%s", seg->path);
	if (linkat(AT_FDCWD, from, AT_FDCWD, to, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	ret = -errno;
	/* no /proc (a bare container): by the descriptor itself, which takes
	 * CAP_DAC_READ_SEARCH before Linux 6.10; the /proc error stands if that fails too */
	if (ret == -ENOENT && linkat(seg->fd, "", AT_FDCWD, to, AT_EMPTY_PATH) == 0)
		return 0;
	if (ret == -ENOENT && errno == EEXIST)
		ret = -EEXIST;
	if (ret == -EEXIST)
		return ret; /* name_taken() says why */
	FAIL(ret, "instance '%s': naming its segment %s: %s", seg->instance, to, strerror(-ret));
}

/*
 * The name is taken. By a half-created segment whose creator died: remove it, 0 with a note
 * ("replaced ...") in note. Gone meanwhile: 0. Otherwise -EEXIST with a sentence in err.
 */
static int name_taken(const char *instance, char *note, size_t notelen, char *err, size_t errlen)
{
	char why[256];
	int r = shm_seg_remove_abandoned(instance, why, sizeof(why));

	if (r == 0) {
		snprintf(note, notelen, "replaced %s", why);
		return 0;
	}
	if (r == -ENOENT)
		return 0;
	if (r == -EBUSY)
		FAIL(-EEXIST,
		     "instance '%s' already exists; stop it, or remove a stale one with 'shoal "
		     "clean --instance %s'",
		     instance, instance);
	FAIL(-EEXIST, "%s", why);
}

/*
 * The file is made nameless (O_TMPFILE), reserved and filled, and only then linked under
 * its name: a creator that fails, or is killed at any instruction before the link, leaves
 * nothing behind (the kernel frees a nameless file with its last descriptor), and no reader
 * ever sees a name whose pages are not all there.
 */
int shm_seg_create(const char *instance, const struct shm_cfg *cfg, struct shm_seg **out, char *err,
		   size_t errlen)
{
	struct shm_region regions[SHM_R_COUNT];
	struct shm_seg *seg;
	struct shm_hdr *h;
	char note[320] = "";
	struct stat st;
	uint64_t size;
	int ret;

	if (!shm_is_valid_instance(instance))
		FAIL(-EINVAL, "instance name '%s': use 1..%u of A-Z a-z 0-9 _ . -",
		     instance ? instance : "", SHM_INSTANCE_MAX - 1);
	ret = shm_cfg_check(cfg, err, errlen);
	if (ret)
		return ret;
	size = shm_layout_compute(cfg, regions);
	/* a name already taken is said before anything is reserved (link says it again) */
	if (shm_seg_stat(instance, &st) == 0) {
		ret = name_taken(instance, note, sizeof(note), err, errlen);
		if (ret)
			return ret;
	}
	seg = seg_new(instance);
	if (!seg)
		FAIL(-ENOMEM, "out of memory");
	seg->fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, cfg->mode);
	if (seg->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "instance '%s': creating its segment in " SHM_DIR ": %s",
			 instance, strerror(-ret));
		goto out_free;
	}
	/* open applies the umask; the configured mode is what we promised */
	if (fchmod(seg->fd, cfg->mode) < 0) {
		ret = -errno;
		snprintf(err, errlen, "instance '%s': fchmod: %s", instance, strerror(-ret));
		goto out_close;
	}
	ret = creation_lock(seg->fd, F_WRLCK);
	if (ret) {
		snprintf(err, errlen, "instance '%s': locking its new segment: %s", instance,
			 strerror(-ret));
		goto out_close;
	}
	ret = reserve(seg->fd, instance, size, err, errlen);
	if (ret)
		goto out_close;
	/* the pages are charged at the reservation, to the creator's cgroup; MAP_POPULATE
	 * only fills the page tables */
	seg->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, seg->fd, 0);
	if (seg->base == MAP_FAILED) {
		ret = -errno;
		seg->base = NULL;
		snprintf(err, errlen, "mapping %llu bytes of %s: %s", (unsigned long long)size,
			 seg->path, strerror(-ret));
		goto out_close;
	}
	seg->size = size;
	seg->writable = true;
	seg->creator = true;
	h = shm_hdr(seg);
	h->magic = SHM_MAGIC;
	h->layout_major = SHM_LAYOUT_MAJOR;
	h->layout_minor = SHM_LAYOUT_MINOR;
	h->seg_size = size;
	h->hdr_size = SHM_HDR_SIZE;
	h->nregions = SHM_R_COUNT;
	memcpy(h->regions, regions, sizeof(regions));
	h->creator_pid = (uint32_t)getpid();
	h->owner_uid = (uint32_t)geteuid();
	h->creator_start = shm_pid_start_time(getpid());
	h->created_ns = shm_wall_ns();
	atomic_store_explicit(&h->sup_pid, h->creator_pid, memory_order_relaxed);
	atomic_store_explicit(&h->sup_start, h->creator_start, memory_order_relaxed);
	atomic_store_explicit(&h->heartbeat_ns, shm_now_ns(), memory_order_relaxed);
	atomic_store_explicit(&h->next_epoch, 1, memory_order_relaxed);
	atomic_store_explicit(&h->state, SHM_INST_STARTING, memory_order_relaxed);
	snprintf(h->instance, sizeof(h->instance), "%s", instance);
	h->cfg = *cfg;
	shm_reg_geo_init(seg);
	ret = link_name(seg, err, errlen);
	if (ret == -EEXIST) {
		/* taken meanwhile; one retry: a creator that wins the name again is -EEXIST */
		ret = name_taken(instance, note, sizeof(note), err, errlen);
		if (!ret)
			ret = link_name(seg, err, errlen);
		if (ret == -EEXIST)
			snprintf(err, errlen,
				 "instance '%s' already exists (it was created just now); stop it, "
				 "or remove a stale one with 'shoal clean --instance %s'",
				 instance, instance);
	}
	if (ret)
		goto out_unmap;
	if (errlen)
		snprintf(err, errlen, "%s", note);
	*out = seg;
	return 0;

out_unmap:
	munmap(seg->base, seg->size);
out_close:
	close(seg->fd);
out_free:
	free(seg);
	return ret;
}

void shm_seg_publish(struct shm_seg *seg)
{
	/* P0: pairs with A0 in wait_ready(): every region is filled before ready. */
	atomic_store_explicit(&shm_hdr(seg)->ready, SHM_READY_WORD, memory_order_release);
	/* once per segment, so always: attachers may wait on the word (shared futex) */
	syscall(SYS_futex, &shm_hdr(seg)->ready, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	/* after ready: a reader that finds the lock free reads the word as published */
	creation_lock(seg->fd, F_UNLCK);
}

/* Wait for the ready word: a futex wait on it, woken by shm_seg_publish(). */
static bool wait_ready(struct shm_hdr *h, int timeout_ms)
{
	uint64_t deadline = shm_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;

	for (;;) {
		/* A0: pairs with P0 in shm_seg_publish(). */
		uint32_t v = atomic_load_explicit(&h->ready, memory_order_acquire);
		uint64_t now = shm_now_ns();
		struct timespec ts;

		if (v == SHM_READY_WORD)
			return true;
		if (now >= deadline)
			return false;
		ts.tv_sec = (time_t)(deadline / 1000000000u);
		ts.tv_nsec = (long)(deadline % 1000000000u);
		/* absolute CLOCK_MONOTONIC; a publish between our load and the wait makes the
		 * wait return at once (the word differs from v). Shared futex. */
		syscall(SYS_futex, &h->ready, FUTEX_WAIT_BITSET, v, &ts, NULL, 0xffffffffu);
	}
}

static const char *file_type(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFIFO:
		return "a FIFO";
	case S_IFDIR:
		return "a directory";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFLNK:
		return "a symbolic link";
	}
	return "not a regular file";
}

/*
 * Open an instance's file for a look (path "/shoal.<instance>"): O_NONBLOCK, so a FIFO
 * planted there by anyone cannot hang the open (shm_open() adds O_NOFOLLOW: a symbolic link
 * is refused), then anything but a regular file is refused on the descriptor itself, so it
 * is the file we opened that was checked. Its stat in *st. A descriptor, or -errno with a
 * sentence in err (-ENOENT: nothing there; -EPERM: not a regular file).
 */
static int open_seg_file(const char *path, int oflag, const char *instance, struct stat *st,
			 char *err, size_t errlen)
{
	int fd = shm_open(path, oflag | O_NONBLOCK | O_CLOEXEC, 0), ret;

	if (fd < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			FAIL(ret, "instance '%s' is not running (no %s)", instance, path);
		if (ret == -ELOOP)
			FAIL(shm_verr_errno(SHM_V_FOREIGN),
			     "instance '%s': " SHM_DIR "%s is a symbolic link, not a segment; "
			     "remove it with 'shoal clean --force --instance %s'",
			     instance, path, instance);
		FAIL(ret, "instance '%s': opening %s: %s", instance, path, strerror(-ret));
	}
	if (fstat(fd, st) < 0) {
		ret = -errno;
		close(fd);
		FAIL(ret, "instance '%s': fstat: %s", instance, strerror(-ret));
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		FAIL(shm_verr_errno(SHM_V_FOREIGN),
		     "instance '%s': " SHM_DIR "%s is %s owned by uid %u, not a segment; remove "
		     "it with 'shoal clean --force --instance %s'",
		     instance, path, file_type(st->st_mode), (unsigned)st->st_uid, instance);
	}
	return fd;
}

/* A private copy of the header, read from the file (never through the mapping). */
static int read_hdr(int fd, struct shm_hdr *copy)
{
	ssize_t n = pread(fd, copy, SHM_HDR_SIZE, 0);

	if (n < 0)
		return -errno;
	return n == SHM_HDR_SIZE ? 0 : -EBADMSG;
}

/*
 * The header is checked on a copy read with pread(): a read of a hole returns zeros where a
 * load through the mapping would be a SIGBUS on a full filesystem, and a writer cannot change
 * a field between its check and its use. A file with fewer bytes allocated than its size is
 * refused: shoal's creator reserves every page, and a reader (or a worker) touching a hole of
 * such a file on a full /dev/shm would die of SIGBUS.
 */
int shm_seg_attach(const char *instance, unsigned flags, int timeout_ms, struct shm_seg **out,
		   char *err, size_t errlen)
{
	bool ro = flags & SHM_ATTACH_RO;
	struct shm_hdr *copy = NULL;
	struct shm_seg *seg;
	enum shm_verr v;
	struct stat st;
	char why[256];
	int ret;

	if (!shm_is_valid_instance(instance))
		FAIL(-EINVAL, "instance name '%s': use 1..%u of A-Z a-z 0-9 _ . -",
		     instance ? instance : "", SHM_INSTANCE_MAX - 1);
	seg = seg_new(instance);
	if (!seg)
		FAIL(-ENOMEM, "out of memory");
	seg->fd = open_seg_file(seg->path, (ro ? O_RDONLY : O_RDWR), instance, &st, err, errlen);
	if (seg->fd < 0) {
		ret = seg->fd;
		goto out_free;
	}
	if (st.st_uid != geteuid() && !(flags & SHM_ATTACH_ANY_OWNER)) {
		ret = shm_verr_errno(SHM_V_FOREIGN);
		snprintf(err, errlen, "instance '%s' belongs to uid %u, not to us (uid %u)",
			 instance, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out_close;
	}
	/* map only what the file holds: touching a page past its end would be SIGBUS */
	if ((size_t)st.st_size < SHM_HDR_SIZE) {
		ret = shm_verr_errno(SHM_V_TRUNCATED);
		snprintf(err, errlen,
			 "instance '%s': segment is %lld bytes, smaller than its header", instance,
			 (long long)st.st_size);
		goto out_close;
	}
	if ((unsigned long long)st.st_blocks * 512 < (unsigned long long)st.st_size) {
		ret = shm_verr_errno(SHM_V_SPARSE);
		snprintf(err, errlen,
			 "instance '%s': only %llu of the segment's %lld bytes are backed by "
			 "memory (a sparse file, not made by shoal): reading the rest could crash; "
			 "remove it with 'shoal clean --force --instance %s'",
			 instance, (unsigned long long)st.st_blocks * 512, (long long)st.st_size,
			 instance);
		goto out_close;
	}
	copy = malloc(SHM_HDR_SIZE);
	if (!copy) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out_close;
	}
	seg->size = (size_t)st.st_size;
	seg->base =
		mmap(NULL, seg->size, PROT_READ | (ro ? 0 : PROT_WRITE), MAP_SHARED, seg->fd, 0);
	if (seg->base == MAP_FAILED) {
		ret = -errno;
		seg->base = NULL;
		snprintf(err, errlen, "instance '%s': mmap: %s", instance, strerror(-ret));
		goto out_close;
	}
	seg->writable = !ro;
	ret = read_hdr(seg->fd, copy);
	if (ret)
		goto out_read;
	/* a zero magic is a segment being created (the object is zero-filled): wait too */
	if (!(flags & SHM_ATTACH_NOWAIT) && !(flags & SHM_ATTACH_UNREADY) &&
	    (copy->magic == SHM_MAGIC || copy->magic == 0)) {
		/* unpublished and nobody holds the creation lock: waiting cannot help */
		if (atomic_load_explicit(&copy->ready, memory_order_relaxed) != SHM_READY_WORD &&
		    is_creation_locked(seg->fd) == 0 && read_hdr(seg->fd, copy) == 0 &&
		    atomic_load_explicit(&copy->ready, memory_order_relaxed) != SHM_READY_WORD) {
			ret = -EOWNERDEAD;
			snprintf(err, errlen,
				 "instance '%s' was never published: its creator died while "
				 "creating it; 'shoal run' replaces it, 'shoal clean' removes it",
				 instance);
			goto out_unmap;
		}
		if (!wait_ready(shm_hdr(seg), timeout_ms)) {
			ret = -ETIMEDOUT;
			snprintf(err, errlen, "instance '%s' did not become ready within %d ms",
				 instance, timeout_ms);
			goto out_unmap;
		}
		/* A0 made the creator's header visible in the page cache pread reads */
		ret = read_hdr(seg->fd, copy);
		if (ret)
			goto out_read;
	}
	/* validate an unpublished one (UNREADY) as if published: the copy is ours to change */
	if (flags & SHM_ATTACH_UNREADY)
		atomic_store_explicit(&copy->ready, SHM_READY_WORD, memory_order_relaxed);
	/* only the header is read by the validator, so a header-sized copy is enough */
	v = shm_seg_validate(copy, seg->size, why, sizeof(why));
	if (v != SHM_V_OK) {
		ret = shm_verr_errno(v);
		snprintf(err, errlen, "instance '%s': %s", instance, why);
		goto out_unmap;
	}
	/* validated: the name is terminated. A file copied or linked under another name is
	 * not that instance: its supervisor, clients and clean all go by the header's name */
	if (strcmp(copy->instance, instance)) {
		ret = shm_verr_errno(SHM_V_NAME);
		snprintf(err, errlen,
			 "instance '%s': its segment %s belongs to instance '%.*s' (a copy or a "
			 "rename); it is not instance '%s'",
			 instance, seg->path, (int)sizeof(copy->instance), copy->instance,
			 instance);
		goto out_unmap;
	}
	free(copy);
	/* from here on the mapping is the recorded size: regions were checked against it */
	shm_reg_geo_init(seg);
	*out = seg;
	return 0;

out_read:
	snprintf(err, errlen, "instance '%s': reading its header: %s", instance, strerror(-ret));
out_unmap:
	munmap(seg->base, seg->size);
out_close:
	free(copy);
	close(seg->fd);
out_free:
	free(seg);
	return ret;
}

void shm_seg_detach(struct shm_seg *seg)
{
	if (!seg)
		return;
	if (seg->self != UINT32_MAX && seg->writable)
		shm_proc_release(seg);
	if (seg->hdr_rw)
		munmap(seg->hdr_rw, SHM_PAGE);
	if (seg->base)
		munmap(seg->base, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);
	free(seg);
}

/*
 * The guard's state. One guard at a time (tools are single-threaded): the handler compares
 * the fault's address with the range and jumps back into shm_seg_guard().
 */
static sigjmp_buf guard_jmp;
static const uint8_t *guard_lo, *guard_hi;
static volatile sig_atomic_t guard_on;
static const uint8_t *volatile guard_addr;

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
	const uint8_t *a = si->si_addr;

	(void)uc;
	if (guard_on && a >= guard_lo && a < guard_hi) {
		guard_on = 0;
		guard_addr = a;
		siglongjmp(guard_jmp, 1);
	}
	/* not a read of the guarded mapping: the default action, when the fault repeats */
	signal(sig, SIG_DFL);
}

/*
 * The jump abandons fn wherever it was: fn must hold nothing a jump would leak or leave
 * locked (a reader printing what it reads is fine: stdio's lock is recursive and is not
 * taken at all by a single-threaded process).
 */
int shm_seg_guard(const struct shm_seg *seg, int (*fn)(const struct shm_seg *seg, void *arg),
		  void *arg, uint64_t *bad_off)
{
	struct sigaction sa = {.sa_sigaction = guard_handler, .sa_flags = SA_SIGINFO}, old;
	volatile int ret;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old) < 0)
		return -errno;
	guard_lo = seg->base;
	guard_hi = seg->base + seg->size;
	if (sigsetjmp(guard_jmp, 1)) {
		ret = -EFAULT;
		if (bad_off)
			*bad_off = (uint64_t)(guard_addr - guard_lo);
	} else {
		guard_on = 1;
		ret = fn(seg, arg);
		guard_on = 0;
	}
	sigaction(SIGBUS, &old, NULL);
	return ret;
}

int shm_seg_unlink(const char *instance)
{
	char path[SHM_INSTANCE_MAX + 8];

	if (!shm_is_valid_instance(instance))
		return -EINVAL;
	snprintf(path, sizeof(path), "/shoal.%s", instance);
	return shm_unlink(path) < 0 ? -errno : 0;
}

/*
 * Linux has no unlink by descriptor: compare the name's identity (lstat: a link planted
 * there is itself, not what it points to) with the one we were given right before the
 * unlink. What remains is the window between the two calls, instead of the whole time since
 * the file was opened or judged.
 */
int shm_seg_unlink_if(const char *instance, dev_t dev, ino_t ino)
{
	char path[sizeof(SHM_DIR) + SHM_INSTANCE_MAX + 8];
	struct stat now;

	if (!shm_is_valid_instance(instance))
		return -EINVAL;
	snprintf(path, sizeof(path), SHM_DIR "/shoal.%s", instance);
	if (lstat(path, &now) < 0)
		return -errno;
	if (now.st_dev != dev || now.st_ino != ino)
		return -ESTALE;
	return unlink(path) < 0 ? -errno : 0;
}

int shm_seg_stat(const char *instance, struct stat *st)
{
	char path[sizeof(SHM_DIR) + SHM_INSTANCE_MAX + 8];

	if (!shm_is_valid_instance(instance))
		return -EINVAL;
	snprintf(path, sizeof(path), SHM_DIR "/shoal.%s", instance);
	return lstat(path, st) < 0 ? -errno : 0;
}

int shm_seg_remove(const struct shm_seg *seg)
{
	struct stat mine;

	if (fstat(seg->fd, &mine) < 0)
		return -errno;
	return shm_seg_unlink_if(seg->instance, mine.st_dev, mine.st_ino);
}

static bool is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	return n == 0 || (b[0] == 0 && !memcmp(b, b + 1, n - 1));
}

/*
 * The lock is looked at before the ready word: a creator publishes, then unlocks, so a free
 * lock read first means the word read next is final.
 */
int shm_seg_remove_abandoned(const char *instance, char *err, size_t errlen)
{
	char path[SHM_INSTANCE_MAX + 8], who[32];
	struct shm_hdr *h;
	struct stat st;
	ssize_t n;
	int fd, ret;

	if (!shm_is_valid_instance(instance))
		FAIL(-EINVAL, "instance name '%s': use 1..%u of A-Z a-z 0-9 _ . -", instance,
		     SHM_INSTANCE_MAX - 1);
	snprintf(path, sizeof(path), "/shoal.%s", instance);
	fd = open_seg_file(path, O_RDONLY, instance, &st, err, errlen);
	if (fd < 0)
		return fd;
	h = calloc(1, SHM_HDR_SIZE);
	if (!h) {
		ret = -ENOMEM;
		goto out_close;
	}
	ret = is_creation_locked(fd);
	n = pread(fd, h, SHM_HDR_SIZE, 0);
	if (ret >= 0 && n < 0)
		ret = -errno;
	if (ret < 0) {
		snprintf(err, errlen, "instance '%s': looking at %s: %s", instance, path,
			 strerror(-ret));
		goto out_free;
	}
	/* relaxed: a private copy, read by pread after the lock was looked at */
	if (atomic_load_explicit(&h->ready, memory_order_relaxed) == SHM_READY_WORD) {
		ret = -EBUSY; /* published: live, stale or stopped, not half-created */
		goto out_free;
	}
	/*
	 * What a creator leaves before publishing: a full header but for the ready word, or,
	 * from an older shoal killed before it wrote one, zeros. Anything else is corrupt and
	 * is for clean --force, not for a silent removal.
	 */
	if (!is_zero(h, SHM_HDR_SIZE)) {
		atomic_store_explicit(&h->ready, SHM_READY_WORD, memory_order_relaxed);
		if (shm_seg_validate(h, (size_t)st.st_size, NULL, 0) != SHM_V_OK ||
		    strcmp(h->instance, instance)) {
			ret = -EBUSY;
			goto out_free;
		}
		atomic_store_explicit(&h->ready, 0, memory_order_relaxed);
	}
	creator_of(h, who, sizeof(who));
	if (ret) {
		ret = -EINPROGRESS;
		snprintf(err, errlen,
			 "instance '%s' is being created by a live process%s not yet published; "
			 "wait for it, or stop it",
			 instance, who[0] ? who : "");
		goto out_free;
	}
	if (st.st_uid != geteuid()) {
		ret = shm_verr_errno(SHM_V_FOREIGN);
		snprintf(err, errlen,
			 "instance '%s': a half-created segment of uid %u, not ours (uid %u); its "
			 "owner or root can remove it with 'shoal clean --force --instance %s'",
			 instance, (unsigned)st.st_uid, (unsigned)geteuid(), instance);
		goto out_free;
	}
	ret = shm_seg_unlink_if(instance, st.st_dev, st.st_ino);
	if (ret)
		snprintf(err, errlen, "instance '%s': removing its half-created segment: %s",
			 instance, strerror(-ret));
	else
		snprintf(err, errlen,
			 "a half-created segment of instance '%s' (its creator%s died before "
			 "publishing it)",
			 instance, who[0] ? who : "");
out_free:
	free(h);
out_close:
	close(fd);
	return ret;
}

enum shm_liveness shm_seg_liveness(const struct shm_seg *seg, uint64_t stale_after_ns)
{
	const struct shm_hdr *h = shm_hdr(seg);
	/* I0: pairs with the supervisor's release of state: stop_ns etc. before STOPPED. */
	uint32_t st = atomic_load_explicit(&h->state, memory_order_acquire);
	pid_t pid = (pid_t)atomic_load_explicit(&h->sup_pid, memory_order_relaxed);
	uint64_t start = atomic_load_explicit(&h->sup_start, memory_order_relaxed);
	uint64_t hb = atomic_load_explicit(&h->heartbeat_ns, memory_order_relaxed);
	uint64_t now = shm_now_ns();

	if (st == SHM_INST_STOPPED || st == SHM_INST_SUP_DEAD)
		return SHM_LIVE_STOPPED;
	/* a zombie supervisor (its parent has not reaped it yet) is as dead as a reaped one */
	if (!shm_pid_is_running(pid, start))
		return SHM_LIVE_STALE;
	if (stale_after_ns && now > hb && now - hb > stale_after_ns)
		return SHM_LIVE_UNRESPONSIVE;
	return SHM_LIVE_OK;
}

int shm_seg_gone(const struct shm_seg *seg, enum shm_liveness l)
{
	if (l == SHM_LIVE_STALE)
		return -EOWNERDEAD;
	if (l != SHM_LIVE_STOPPED)
		return 0;
	/* relaxed: which of the two ends it was; liveness read the state word with acquire */
	return atomic_load_explicit(&shm_hdr(seg)->state, memory_order_relaxed) == SHM_INST_SUP_DEAD
		       ? -EOWNERDEAD
		       : -ESHUTDOWN;
}

const char *shm_liveness_name(enum shm_liveness l)
{
	switch (l) {
	case SHM_LIVE_OK:
		return "live";
	case SHM_LIVE_UNRESPONSIVE:
		return "unresponsive";
	case SHM_LIVE_STALE:
		return "stale";
	case SHM_LIVE_STOPPED:
		return "stopped";
	}
	return "?";
}

/* Snapshot, overwrite, roll back by merging, on a real LVM volume group,
 * through lvsnap's C ABI only (what examples/snapshot_rollback.rs does in
 * Rust): lvsnap takes the snapshot, reports it, lists it as JSON, rolls the
 * volume back to it by polling, and deletes a second one.
 *
 * Build against the installed library:
 *   ffi/install.sh PREFIX
 *   cc -o snapshot ffi/examples/snapshot.c \
 *      $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs lvsnap)
 * Run it as root where the kernel has device-mapper and LVM2's tools are
 * installed, or anywhere through the VM runner: vm/run ./snapshot
 *
 * Setup and cleanup use LVM's pvcreate, vgcreate, lvcreate and vgremove
 * (lvsnap does not create VGs or plain LVs); the PV is a loop device over a
 * sparse file in $TMPDIR. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lvsnap.h>

#define MIB (1024ull * 1024)
#define PV_SIZE (128 * MIB)
#define COW_SIZE (16 * MIB)
#define TOUCHED (8 * MIB)
#define VG "lvsnapcdemo"

static char backing[4096];
static int loop_fd = -1;
static char loop_path[64];
static int vg_made;

static void cleanup(void)
{
	if (vg_made) {
		if (system("vgremove -f -q " VG " >/dev/null 2>&1") != 0)
			fprintf(stderr, "vgremove %s failed\n", VG);
	}
	if (loop_fd >= 0) {
		ioctl(loop_fd, LOOP_CLR_FD);
		close(loop_fd);
	}
	if (backing[0])
		unlink(backing);
}

static void die(const char *what)
{
	fprintf(stderr, "snapshot: %s\n", what);
	cleanup();
	exit(1);
}

/* Fails the example with lvsnap's error: its kind and message. */
static void check(int rc, lvsnap_error *err, const char *what)
{
	if (rc >= 0)
		return;
	fprintf(stderr, "snapshot: %s: error %d: %s\n", what, lvsnap_error_code(err),
		lvsnap_error_message(err));
	lvsnap_error_free(err);
	cleanup();
	exit(1);
}

/* Runs an LVM command (argv, NULL-terminated) for setup. */
static void run(char *const argv[])
{
	pid_t pid = fork();
	int status;
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "snapshot: %s failed\n", argv[0]);
		cleanup();
		exit(1);
	}
}

/* Attaches a free loop device to a new sparse file of `size` bytes. */
static void make_loop(uint64_t size)
{
	const char *tmp = getenv("TMPDIR");
	struct loop_config cfg;
	int file, ctl, n;
	snprintf(backing, sizeof backing, "%s/lvsnap-c-example-%d.img", tmp ? tmp : "/tmp",
		 (int)getpid());
	file = open(backing, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (file < 0 || ftruncate(file, (off_t)size) < 0)
		die("cannot create the loop backing file");
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		die("cannot open /dev/loop-control");
	for (int tries = 0; tries < 64; tries++) {
		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			die("LOOP_CTL_GET_FREE");
		snprintf(loop_path, sizeof loop_path, "/dev/loop%d", n);
		loop_fd = open(loop_path, O_RDWR | O_CLOEXEC);
		if (loop_fd < 0)
			die("cannot open the loop device");
		memset(&cfg, 0, sizeof cfg);
		cfg.fd = (uint32_t)file;
		if (ioctl(loop_fd, LOOP_CONFIGURE, &cfg) == 0)
			break;
		if (errno != EBUSY)
			die("LOOP_CONFIGURE");
		close(loop_fd); /* taken meanwhile: ask again */
		loop_fd = -1;
	}
	close(ctl);
	close(file);
	if (loop_fd < 0)
		die("no free loop device");
}

/* Writes TOUCHED bytes of a pseudo-random stream (one per seed) at 0. */
static void write_data(const char *dev, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull | 1;
	unsigned char *buf = malloc(TOUCHED);
	int fd = open(dev, O_WRONLY | O_CLOEXEC);
	if (!buf || fd < 0)
		die("cannot open the origin for writing");
	for (uint64_t i = 0; i < TOUCHED; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	if (pwrite(fd, buf, TOUCHED, 0) != (ssize_t)TOUCHED || fsync(fd) < 0)
		die("write");
	close(fd);
	free(buf);
}

/* FNV-1a of the first TOUCHED bytes, read with O_DIRECT (no page cache). */
static uint64_t checksum(const char *dev)
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char *buf;
	int fd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, MIB) != 0)
		die("cannot open a device for reading");
	for (uint64_t off = 0; off < TOUCHED; off += MIB) {
		if (pread(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
			die("read");
		for (uint64_t i = 0; i < MIB; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
	}
	close(fd);
	free(buf);
	return h;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static const char *rollback_name(int state)
{
	switch (state) {
	case LVSNAP_ROLLBACK_SUBMITTED: return "Submitted";
	case LVSNAP_ROLLBACK_IN_PROGRESS: return "InProgress";
	case LVSNAP_ROLLBACK_DEFERRED: return "Deferred";
	case LVSNAP_ROLLBACK_COMPLETED: return "Completed";
	case LVSNAP_ROLLBACK_FAILED: return "Failed";
	default: return "?";
	}
}

int main(void)
{
	lvsnap_error *err = NULL;
	lvsnap_vg *vg = NULL;
	lvsnap_rollback *rb = NULL;
	lvsnap_snapshot_info info;
	lvsnap_snapshot_options opts = {0};
	struct timespec t0;
	char *json = NULL;
	uint64_t before, overwritten, in_snapshot, after;
	int rc, state;

	setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with LVM's output */
	printf("lvsnap %s\n", lvsnap_version());
	make_loop(PV_SIZE);
	printf("PV on %s\n", loop_path);
	run((char *const[]){"pvcreate", "-q", loop_path, NULL});
	run((char *const[]){"vgcreate", "-q", VG, loop_path, NULL});
	vg_made = 1;
	run((char *const[]){"lvcreate", "-q", "-y", "-L", "64M", "-n", "data", VG, NULL});
	const char *origin = "/dev/" VG "/data";

	write_data(origin, 1);
	before = checksum(origin);
	printf("%s/data written: checksum %016" PRIx64 "\n", VG, before);

	check(lvsnap_vg_open(VG, &vg, &err), err, "open");
	opts.snapsize_bytes = COW_SIZE;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	check(lvsnap_snapshot_create(vg, "data", "snapcontent-1", &opts, &err), err, "create");
	printf("snapshot %s/snapcontent-1 taken in %.1f ms\n", VG, ms_since(&t0));

	check(lvsnap_snapshot_status(vg, "snapcontent-1", &info, &err), err, "status");
	printf("status: %s/%s of %s, %" PRIu64 " bytes, %s, merging %d, invalid %d, "
	       "data %.2f%%, created %" PRId64 "\n",
	       info.vg, info.name, info.source_volume, info.capacity_bytes,
	       info.state == LVSNAP_STATE_READY ? "Ready" : "NotReady", info.merging, info.invalid,
	       info.data_percent, info.creation_time);
	if (strcmp(info.name, "snapcontent-1") || strcmp(info.source_volume, "data") ||
	    info.capacity_bytes < COW_SIZE || info.thin || info.state != LVSNAP_STATE_READY ||
	    info.invalid || info.merging || info.data_percent < 0)
		die("the status is not that of the new snapshot");

	check(lvsnap_snapshot_list_json(vg, &json, &err), err, "list");
	printf("list: %s\n", json);
	if (!strstr(json, "\"name\":\"snapcontent-1\""))
		die("the JSON list lacks the snapshot");
	lvsnap_string_free(json);

	write_data(origin, 2);
	overwritten = checksum(origin);
	in_snapshot = checksum("/dev/" VG "/snapcontent-1");
	check(lvsnap_snapshot_status(vg, "snapcontent-1", &info, &err), err, "status");
	printf("origin overwritten: checksum %016" PRIx64 "; snapshot still %016" PRIx64
	       ", COW %.2f%% full\n",
	       overwritten, in_snapshot, info.data_percent);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	check(lvsnap_rollback_start(vg, "snapcontent-1", &rb, &err), err, "rollback");
	for (state = -1;;) {
		rc = lvsnap_rollback_poll(rb, &err);
		check(rc, err, "rollback poll");
		if (rc != state)
			printf("  %s (%.2f%%)\n", rollback_name(rc), lvsnap_rollback_percent(rb));
		state = rc;
		if (state != LVSNAP_ROLLBACK_SUBMITTED && state != LVSNAP_ROLLBACK_IN_PROGRESS)
			break;
		usleep(20 * 1000);
	}
	if (state != LVSNAP_ROLLBACK_COMPLETED) {
		char *why = lvsnap_rollback_reason(rb);
		fprintf(stderr, "snapshot: rollback ended %s: %s\n", rollback_name(state),
			why ? why : "");
		lvsnap_string_free(why);
		die("rollback");
	}
	lvsnap_rollback_free(rb);
	printf("rolled back by merging in %.1f ms\n", ms_since(&t0));

	after = checksum(origin);
	printf("snapshot-time checksum %016" PRIx64 "\n", before);
	printf("origin after rollback  %016" PRIx64 "\n", after);
	rc = lvsnap_snapshot_status(vg, "snapcontent-1", &info, &err);
	if (rc != LVSNAP_E_NOT_FOUND || lvsnap_error_code(err) != LVSNAP_E_NOT_FOUND)
		die("the merged snapshot is still there");
	lvsnap_error_free(err);
	err = NULL;
	if (after != before || in_snapshot != before || overwritten == before)
		die("the rollback did not restore the snapshot-time data");
	printf("rollback verified: the origin holds the snapshot-time data again\n");

	/* A second snapshot, at a percentage of the origin, deleted again. */
	opts = (lvsnap_snapshot_options){.snapsize_percent = 25};
	check(lvsnap_snapshot_create(vg, "data", "snapcontent-2", &opts, &err), err, "create");
	check(lvsnap_snapshot_delete(vg, "snapcontent-2", &err), err, "delete");
	rc = lvsnap_snapshot_delete(vg, "snapcontent-2", NULL);
	if (rc != LVSNAP_E_NOT_FOUND)
		die("a deleted snapshot was found again");
	printf("snapcontent-2 created and deleted\n");

	lvsnap_vg_free(vg);
	cleanup();
	return 0;
}

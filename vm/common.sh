# Shared by vm/run and vm/setup: where the VM's pieces live and how to make them.
# shellcheck shell=bash

# Debian packages the VM, the build and the tests need (golang-go: Debian 12's
# Go 1.19, for ffi/go/lvsnap; lz4 and binutils unpack the kernel for PVH boot).
SETUP_PACKAGES="qemu-system-x86 busybox-static lz4 binutils lvm2 thin-provisioning-tools libdevmapper-dev libclang-dev pkg-config linux-libc-dev golang-go"
LVSNAP_VM_CACHE=${LVSNAP_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/lvsnap-vm}
KERNEL_DIR=$LVSNAP_VM_CACHE/kernel
KERNEL=$KERNEL_DIR/vmlinuz
BUSYBOX=/bin/busybox

# Modules in load order; a leading '?' marks one the VM can do without.
VM_MODULES="?crc32c-intel libcrc32c virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
fuse virtiofs dm-mod dm-bufio dm-bio-prison dm-persistent-data dm-snapshot dm-thin-pool
dm-flakey dm-log-writes dm-delay loop virtio_blk"

find_virtiofsd() {
	local p
	for p in /usr/lib/qemu/virtiofsd /usr/libexec/virtiofsd; do
		[ -x "$p" ] && { echo "$p"; return 0; }
	done
	return 1
}

# Sets PREREQ_MISSING to the first missing piece and fails, or succeeds.
check_prereqs() {
	local c
	for c in qemu-system-x86_64 lvm dmsetup thin_check timeout realpath; do
		command -v "$c" >/dev/null || { PREREQ_MISSING="the command $c"; return 1; }
	done
	"$BUSYBOX" cpio --help >/dev/null 2>&1 || { PREREQ_MISSING="a static busybox at $BUSYBOX"; return 1; }
	find_virtiofsd >/dev/null || { PREREQ_MISSING="virtiofsd"; return 1; }
	[ -f "$KERNEL" ] && [ -f "$KERNEL_DIR/version" ] || { PREREQ_MISSING="the VM kernel ($KERNEL)"; return 1; }
	return 0
}

# Serves the host's / to the guest on the vhost-user socket $1, logging to $2.
start_virtiofsd() {
	local d
	d=$(find_virtiofsd)
	if "$d" --help 2>&1 | grep -q -- '--shared-dir'; then
		exec "$d" --socket-path="$1" --shared-dir=/ --sandbox=chroot --cache=always >"$2" 2>&1
	else
		exec "$d" --socket-path="$1" -o source=/ -o sandbox=chroot -o cache=always >"$2" 2>&1
	fi
}

# Programs the guest runs from RAM rather than over virtiofs: the shells, LVM2's
# tools and the few utilities tests spawn. Each exec over FUSE costs a lookup
# and page-ins that a real machine's disk-backed page cache would not.
RAM_PROGRAMS="sh dash bash lvm dmsetup pdata_tools losetup dd flock sha256sum cmp cat head
blockdev sync sleep kill timeout"

# Prints, one per line, the real paths of the executables $@ and of
# RAM_PROGRAMS, with every shared library they load: what the guest copies
# into RAM and binds over the host's files.
ram_files() {
	local p f
	{
		for p in $RAM_PROGRAMS; do
			f=$(command -v "$p" 2>/dev/null) || continue
			case "$f" in /*) echo "$f" ;; esac
		done
		for p in "$@"; do if [ -f "$p" ]; then echo "$p"; fi; done
	} | while IFS= read -r f; do
		f=$(realpath -- "$f")
		echo "$f"
		ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
			while IFS= read -r l; do realpath -- "$l"; done
	done | awk '!seen[$0]++'
}

# The cached kernel as an uncompressed ELF with its PVH entry note, which qemu
# boots directly: no real-mode set-up, no BIOS disk probing, no decompression
# and relocation by the kernel's own stub, each slow under TCG. Prints its
# path, making it on first use; prints the bzImage where that cannot be done.
boot_kernel() {
	local pvh=$KERNEL_DIR/vmlinux-pvh tmp setup off len magic
	if [ ! -f "$pvh" ]; then
		tmp=$(mktemp "$KERNEL_DIR/vmlinux.XXXXXX")
		# The bzImage's payload: after (setup_sects + 1) sectors, at
		# payload_offset, payload_length bytes, the last 4 of which hold the
		# unpacked size (Documentation/x86/boot.rst).
		setup=$(od -An -t u1 -j $((0x1f1)) -N 1 "$KERNEL" | tr -d ' ')
		[ "$setup" != 0 ] || setup=4
		read -r off len < <(od -An -t u4 -j $((0x248)) -N 8 "$KERNEL")
		# Read at offsets, not as `tail | head`: under pipefail, tail's
		# SIGPIPE when head has enough would fail the whole set-up.
		magic=$(od -An -t x1 -j $(((setup + 1) * 512 + off)) -N 4 "$KERNEL" | tr -d ' ')
		local unpack
		case "$magic" in
		02214c18) unpack="lz4 -dc" ;;
		fd377a58) unpack="xz -dc" ;;
		28b52ffd) unpack="zstd -dcq" ;;
		1f8b*) unpack="gzip -dc" ;;
		*) unpack= ;;
		esac
		if [ -n "$unpack" ] &&
			dd if="$KERNEL" iflag=skip_bytes,count_bytes skip=$(((setup + 1) * 512 + off)) \
				count=$((len - 4)) bs=1M status=none | $unpack >"$tmp" 2>/dev/null &&
			readelf -n "$tmp" 2>/dev/null | grep -q 'Xen.*0x00000012'; then
			chmod 644 "$tmp" && mv "$tmp" "$pvh"
		else
			rm -f "$tmp"
			echo "$KERNEL"
			return 0
		fi
	fi
	echo "$pvh"
}

# Copies the kernel module $1 to $2 without its appended signature: the
# kernel then skips hashing and checking it (slow under TCG) and loads it
# tainted, which the test VM does not mind.
copy_unsigned_module() {
	local magic='~Module signature appended~' size siglen
	cp "$1" "$2"
	if [ "$(tail -c 28 "$1" | head -c 27)" = "$magic" ]; then
		size=$(stat -c %s "$1")
		# struct module_signature (12 bytes, sig_len big-endian last) precedes the magic.
		siglen=$(tail -c 32 "$1" | head -c 4 | od -An -t u1 | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')
		head -c $((size - siglen - 40)) "$1" >"$2"
	fi
}

# Prints the path of a copy of executable $1 without its debug sections,
# made once per build of it: the guest copies lvsnap's CLI into RAM at each
# boot, and a test build's debug information (most of its bytes) is never
# read by an exec. Prints $1 itself if it has none or cannot be stripped.
stripped_copy() {
	local out tmp
	readelf -S "$1" 2>/dev/null | grep -q '\.debug_info' || { echo "$1"; return 0; }
	out=$LVSNAP_VM_CACHE/stripped/$(echo "$1" | sha256sum | cut -c1-16)
	if [ ! "$out" -nt "$1" ]; then
		mkdir -p "${out%/*}"
		tmp=$(mktemp "$out.XXXXXX")
		objcopy --strip-debug "$1" "$tmp" 2>/dev/null && chmod 755 "$tmp" && mv "$tmp" "$out" ||
			{ rm -f "$tmp"; echo "$1"; return 0; }
	fi
	echo "$out"
}

# Prints the path of an initramfs for the cached kernel, building it if needed.
build_initrd() {
	local here key out tmp m
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	key=$({ cat "$here/init" "$KERNEL_DIR/version"; echo "$VM_MODULES unsigned"; sha256sum "$BUSYBOX"; } | sha256sum | cut -c1-16)
	out=$LVSNAP_VM_CACHE/initrd-$key.gz
	if [ ! -f "$out" ]; then
		tmp=$(mktemp -d "$LVSNAP_VM_CACHE/initrd.XXXXXX")
		mkdir -p "$tmp/root/bin" "$tmp/root/modules" "$tmp/root/proc" "$tmp/root/sys" "$tmp/root/dev"
		cp "$BUSYBOX" "$tmp/root/bin/busybox"
		cp "$here/init" "$tmp/root/init"
		chmod 755 "$tmp/root/init"
		for m in $VM_MODULES; do
			if [ -f "$KERNEL_DIR/modules/${m#\?}.ko" ]; then
				copy_unsigned_module "$KERNEL_DIR/modules/${m#\?}.ko" "$tmp/root/modules/${m#\?}.ko"
				echo "$m" >>"$tmp/root/modules.list"
			elif [ "${m#\?}" = "$m" ]; then
				echo "lvsnap-vm: kernel module $m is not in $KERNEL_DIR; run ./vm/setup" >&2
				rm -rf "$tmp"
				return 1
			fi
		done
		(cd "$tmp/root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) | gzip -1 >"$tmp/initrd.gz"
		mv "$tmp/initrd.gz" "$out"
		rm -rf "$tmp"
	fi
	echo "$out"
}

# Downloads Debian's current cloud kernel and keeps vmlinuz and the VM's modules.
fetch_kernel() {
	local pkg tmp m f
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || { echo "lvsnap-vm: apt knows no linux-image-cloud-amd64; run apt-get update" >&2; return 1; }
	if [ -f "$KERNEL_DIR/version" ] && [ "$(cat "$KERNEL_DIR/version")" = "$pkg" ]; then
		return 0
	fi
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || { rm -rf "$tmp"; echo "lvsnap-vm: apt-get download $pkg failed" >&2; return 1; }
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	rm -rf "$KERNEL_DIR"
	mkdir -p "$KERNEL_DIR/modules"
	cp "$tmp"/x/boot/vmlinuz-* "$KERNEL"
	for m in $VM_MODULES; do
		f=$(find "$tmp/x/lib/modules" -name "${m#\?}.ko" | head -n 1)
		[ -n "$f" ] && cp "$f" "$KERNEL_DIR/modules/"
	done
	echo "$pkg" >"$KERNEL_DIR/version"
	rm -rf "$tmp"
}

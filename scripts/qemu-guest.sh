#!/usr/bin/env bash
# Boot a small qemu guest (software emulation: KVM hangs on the development VM) with NUMA
# nodes, run CMD in it as root, and exit with CMD's status. What the host cannot show:
# several NUMA nodes, a cgroup v2 memory controller, the Yama LSM (Debian's kernel has it).
#   qemu-guest.sh --kernel VMLINUZ [--nodes N] [--cpus C] [--mem 2G] [--timeout S] -- DIR CMD...
# DIR is copied into the guest's initramfs at the same absolute path, with the shared
# libraries its ELF files need (ldd; not what they dlopen); CMD runs by sh in DIR. The guest
# has proc, sys, devtmpfs, /dev/shm and cgroup2 mounted, no disk, no network. Exit 125 when
# the guest gave no status (boot failure, timeout); its serial log tail goes to stderr.
set -uo pipefail
NODES=2 CPUS=4 MEM=2G TIMEOUT=600 KERNEL=
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift 2 ;;
	--nodes) NODES=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "qemu-guest: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ $# -lt 2 ] || [ -z "$KERNEL" ]; then
	sed -n 5p "$0" >&2
	exit 2
fi
DIR=$(realpath "$1")
shift
CMD="$*"
[ -d "$DIR" ] || { echo "qemu-guest: no directory $DIR" >&2; exit 2; }
(( CPUS % NODES == 0 )) || { echo "qemu-guest: cpus must be a multiple of nodes" >&2; exit 2; }

WORK=$(mktemp -d /tmp/shoal-qemu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,proc,sys,dev,tmp,etc,root,lib64}
cp /bin/busybox "$ROOT/bin/busybox"
for a in $("$ROOT/bin/busybox" --list); do
	[ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
echo 'root:x:0:' >"$ROOT/etc/group"
mkdir -p "$ROOT$(dirname "$DIR")"
cp -a "$DIR" "$ROOT$DIR"
copylib() { [ -e "$ROOT$1" ] || cp -L --parents "$1" "$ROOT" 2>/dev/null; }
copylib /lib64/ld-linux-x86-64.so.2
find "$DIR" -type f -print0 | while IFS= read -r -d '' f; do
	head -c4 "$f" 2>/dev/null | grep -q $'\x7fELF' || continue
	ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}' |
		while read -r l; do copylib "$l"; done
done
printf '%s\n' "cd '$DIR'" "$CMD" >"$ROOT/cmd.sh"
cat >"$ROOT/init" <<'INIT'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
chmod 1777 /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "QEMU_CMD_START"
sh /cmd.sh </dev/null
rc=$?
sync
echo "QEMU_RC=$rc"
poweroff -f
INIT
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

mb=$(( $(numfmt --from=iec "$MEM") / 1024 / 1024 / NODES ))
per=$((CPUS / NODES))
numa=()
for ((n = 0; n < NODES; n++)); do
	numa+=(-object "memory-backend-ram,id=m$n,size=${mb}M"
		-numa "node,nodeid=$n,cpus=$((n * per))-$(((n + 1) * per - 1)),memdev=m$n")
done
LOG=$WORK/serial.log
# the guest's output between the markers goes to stdout (terminal codes stripped)
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -cpu max \
	-smp "$CPUS" -m $((mb * NODES))M "${numa[@]}" -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
	-append 'console=ttyS0 quiet loglevel=3 rdinit=/init panic=-1' \
	-nographic -no-reboot -nodefaults -serial stdio -monitor none </dev/null |
	tr -d '\r' | sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' | tee "$LOG" |
	awk 'on && /QEMU_RC=[0-9]/ {sub(/QEMU_RC=[0-9]+.*/, ""); if ($0 != "") print; on = 0}
	     on {print; fflush()} /QEMU_CMD_START/ {on = 1}'
rc=$(grep -a -o 'QEMU_RC=[0-9]*' "$LOG" | tail -1 | cut -d= -f2)
if [ -z "$rc" ]; then
	echo "qemu-guest: the guest gave no status (boot failure or timeout); its log ends:" >&2
	tail -30 "$LOG" >&2
	exit 125
fi
exit "$rc"

#!/usr/bin/env bash
# Boot a small qemu guest with NUMA nodes, run CMD in it as root, and exit with CMD's status.
# What the host cannot show: several NUMA nodes, a cgroup v2 memory controller, the Yama LSM
# (Debian's kernel has it).
#   qemu-guest.sh --kernel VMLINUZ [--nodes N] [--cpus C] [--mem 2G] [--timeout S] [--accel A] -- DIR CMD...
# --accel auto (default): KVM when /dev/kvm can be opened and a probe guest boots under it
# within 30 s, else software emulation (TCG), which needs no KVM. Under nested
# virtualisation KVM can be there and still never boot the kernel (the development VM: it
# stops after SeaBIOS), hence the probe. --accel kvm|tcg forces one. CMD sees
# SHOAL_TIME_SCALE: 1 under KVM, 10 under TCG (many times slower), for the timeouts it sets
# (shoal stress reads it; docs/stress.md); --timeout S is the TCG budget, kept under KVM.
# DIR is copied into the guest's initramfs at the same absolute path, with the shared
# libraries its ELF files need (ldd; not what they dlopen); CMD runs by sh in DIR. The guest
# has proc, sys, devtmpfs, /dev/shm and cgroup2 mounted, no disk, no network. Exit 125 when
# the guest gave no status (boot failure, timeout); its serial log tail goes to stderr.
set -uo pipefail
NODES=2 CPUS=4 MEM=2G TIMEOUT=600 KERNEL= ACCEL=auto
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) KERNEL=$2; shift 2 ;;
	--nodes) NODES=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
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
case "$ACCEL" in auto | kvm | tcg) ;; *) echo "qemu-guest: --accel auto, kvm or tcg" >&2; exit 2 ;; esac
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
# the scale the host put on the kernel command line (timeouts in CMD; see the header)
for a in $(cat /proc/cmdline); do
	case "$a" in shoal.time_scale=*) export SHOAL_TIME_SCALE="${a#*=}" ;; esac
done
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
# boot the guest with accelerator $1 (kvm: -cpu host without arch-capabilities, an MSR
# nested KVM refuses to set; tcg: -cpu max), time scale $2, timeout $3, initrd $4, log $5;
# the guest's output between the markers goes to stdout as it comes (terminal codes
# stripped; sed -u all along: tr and mawk would hold the output back in their buffers)
boot() {
	local cpu=max
	[ "$1" = kvm ] && cpu=host,-arch-capabilities
	timeout --foreground -k 10 "$3" qemu-system-x86_64 -machine q35 -accel "$1" -cpu "$cpu" \
		-smp "$CPUS" -m $((mb * NODES))M "${numa[@]}" -kernel "$KERNEL" -initrd "$4" \
		-append "console=ttyS0 quiet loglevel=3 rdinit=/init panic=-1 shoal.time_scale=$2" \
		-nographic -no-reboot -nodefaults -serial stdio -monitor none </dev/null 2>"$5.err" |
		sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' | tee "$5" |
		sed -u -n -e '/QEMU_CMD_START/,/QEMU_RC=[0-9]/{/QEMU_CMD_START/d' \
			-e '/QEMU_RC=[0-9]/{s/QEMU_RC=[0-9].*//; /^$/d}; p}'
}
if [ "$ACCEL" = auto ]; then
	ACCEL=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		# the same kernel and init with a command that only says it ran
		mkdir -p "$WORK/probe"
		cp -a "$ROOT"/{bin,etc,init} "$WORK/probe/"
		mkdir -p "$WORK/probe"/{proc,sys,dev,tmp}
		echo 'echo kvm-ok' >"$WORK/probe/cmd.sh"
		(cd "$WORK/probe" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/probe.gz"
		if boot kvm 1 30 "$WORK/probe.gz" "$WORK/probe.log" | grep -q kvm-ok; then
			ACCEL=kvm
		else
			echo "qemu-guest: /dev/kvm is there but a guest did not boot under KVM in 30 s" \
				"(nested virtualisation?); using software emulation (TCG)" >&2
		fi
	fi
fi
SCALE=1
[ "$ACCEL" = tcg ] && SCALE=10
echo "qemu-guest: accelerator $ACCEL, SHOAL_TIME_SCALE=$SCALE in the guest" >&2
LOG=$WORK/serial.log
boot "$ACCEL" "$SCALE" "$TIMEOUT" "$WORK/initrd.gz" "$LOG"
rc=$(grep -a -o 'QEMU_RC=[0-9]*' "$LOG" | tail -1 | cut -d= -f2)
if [ -z "$rc" ]; then
	echo "qemu-guest: the guest gave no status (boot failure, or over --timeout $TIMEOUT s);" \
		"its log ends:" >&2
	tail -n 30 "$LOG" "$LOG.err" >&2
	exit 125
fi
exit "$rc"

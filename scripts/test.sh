#!/usr/bin/env bash
# Install what is missing, build shoal with -Werror, run every test (meson test), the quick
# benchmarks against bench/budgets.txt, a 60 s shoal stress, then the libFuzzer target of the segment validator for
# a bounded number of runs (clang).
#   --sanitize   the same tests built with AddressSanitizer + UBSan (build-asan/)
#   --tsan       only the tests where threads share one segment mapping, built with
#                ThreadSanitizer (build-tsan/, clang: gcc refuses atomic_thread_fence under
#                -fsanitize=thread; suite 'tsan', suppressions in tests/tsan.supp)
#   --soak       also run the long soak/stress suite
#   --qemu       also run the tests that need what this machine lacks (several NUMA nodes, a
#                cgroup v2 memory controller, Yama and Debian 12's kernel without io_uring
#                futex, so the fd wake path) in a 2-node qemu guest (scripts/qemu-guest.sh;
#                installs qemu and unpacks a Debian kernel into build-qemu/)
#   --cross      instead of all that: build the library, the shoal tool and the tests for
#                arm64 with -Werror (build-arm64/, scripts/cross/aarch64-linux-gnu.ini;
#                installs Debian's cross compiler and the arm64 libraries through multiarch),
#                and check they are AArch64 programs; nothing runs (no arm64 machine here)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
opts=(-Dwerror=true -Dtests=true -Dtest_hooks=true)
sanitize=0
tsan=0
qemu=0
cross=0
for a in "$@"; do
	case "$a" in
	--sanitize) sanitize=1 ;;
	--tsan) tsan=1 ;;
	--qemu) qemu=1 ;;
	--cross) cross=1 ;;
	--soak) opts+=(-Dsoak=true) ;;
	*) echo "test.sh: unknown option $a" >&2; exit 2 ;;
	esac
done
bash scripts/deps.sh
if [ "$cross" = 1 ]; then
	if [ "$sanitize$qemu" != 00 ] || [[ " ${opts[*]} " == *" -Dsoak=true "* ]]; then
		echo "test.sh: --cross only builds; run --sanitize, --soak or --qemu on their own" >&2
		exit 2
	fi
	bash scripts/deps.sh --arm64
	dir=build-arm64
	# the host's libei (erlang-dev) is an amd64 archive: the arm64 build goes without the
	# distribution gateway
	opts+=(--cross-file scripts/cross/aarch64-linux-gnu.ini -Ddist=disabled)
	# a setup that failed leaves a directory meson cannot reconfigure: start that one anew
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		opts+=(--reconfigure)
	else
		rm -rf "$dir"
	fi
	# meson says on stdout what it did not find: shown only when the setup fails
	if ! out=$(meson setup "$dir" "${opts[@]}"); then
		echo "$out" >&2
		exit 1
	fi
	ninja -C "$dir"
	# every program and library built is an AArch64 ELF file, the tool and the library among them
	n=0
	while read -r f; do
		[ "$(head -c 4 "$f" | tr -d '\177')" = ELF ] || continue
		m=$(readelf -h "$f" | awk -F': *' '/Machine:/ {print $2}')
		if [ "$m" != AArch64 ]; then
			echo "test.sh --cross: $f is built for '$m', not AArch64" >&2
			exit 1
		fi
		n=$((n + 1))
	done < <(find "$dir" -type f \( -name '*.so*' -o -perm -u+x \) ! -path '*.p/*' ! -path '*/meson-*')
	for f in "$dir/tools/shoal" "$dir/libshoal.so"; do
		[ "$(readelf -h "$f" | awk -F': *' '/Machine:/ {print $2}')" = AArch64 ] || {
			echo "test.sh --cross: $f was not built for AArch64" >&2
			exit 1
		}
	done
	echo "cross: $n programs and libraries in $dir built for AArch64 (not run: no arm64 machine)"
	exit 0
fi
if [ "$sanitize" = 1 ]; then
	dir=build-asan
	opts+=(-Db_sanitize=address,undefined -Db_lundef=false)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
suite=()
if [ "$tsan" = 1 ]; then
	if [ "$sanitize" = 1 ]; then
		echo "test.sh: --sanitize and --tsan are separate builds; give one at a time" >&2
		exit 2
	fi
	dir=build-tsan
	export CC=clang
	opts+=(-Db_sanitize=thread -Db_lundef=false)
	suite=(--suite tsan)
fi
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
	meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir"
meson test -C "$dir" --print-errorlogs --num-processes 2 "${suite[@]}"
if [ "$sanitize" = 0 ] && [ "$tsan" = 0 ]; then
	# the budgets (docs/budgets.md): every suite once, quickly; a broken gating budget fails
	# here and prints its figure, baseline and ratio
	"$dir/tools/shoal" bench all --quick --check --budgets bench/budgets.txt
	# a minute of chaos on a whole instance, its books checked (docs/stress.md); the seed
	# changes from run to run and is printed, so a failure can be replayed
	"$dir/tools/shoal" stress --seconds 60
	# the layout STYLE.md asks for, as .clang-format states it
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
	echo "clang-format: every C file conforms"
	# meson install gives other programs what they need to build against shoal
	bash tests/install_check.sh "$dir"
	# the validator under libFuzzer (clang, ASan+UBSan), bounded
	if [ -d build-fuzz ]; then
		CC=clang meson setup --reconfigure build-fuzz -Dfuzz=true -Dtests=false >/dev/null
	else
		CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=false >/dev/null
	fi
	ninja -C build-fuzz fuzz/fuzz_validate
	meson test -C build-fuzz --print-errorlogs --suite fuzz
fi
if [ "$qemu" = 1 ]; then
	# a Debian kernel and qemu; the kernel package is unpacked here, never installed
	missing=()
	for p in qemu-system-x86 busybox-static cpio; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
	fi
	mkdir -p build-qemu
	if ! ls build-qemu/kernel/boot/vmlinuz-* >/dev/null 2>&1; then
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		if [ -z "$kpkg" ]; then
			apt-get update -qq
			kpkg=$(apt-cache depends linux-image-amd64 |
				awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		fi
		(cd build-qemu && apt-get download -qq "$kpkg")
		dpkg-deb -x build-qemu/"$kpkg"_*.deb build-qemu/kernel
	fi
	guest=$PWD/build-qemu/guest
	rm -rf "$guest"
	mkdir -p "$guest/tools" "$guest/tests"
	cp "$dir/tools/shoal" "$guest/tools/"
	cp "$dir/tests/test_numa" "$dir/tests/test_supervisor" "$dir/tests/test_wake" "$guest/tests/"
	# the guest's cgroup v2 has a memory controller: a delegated cgroup for the cap test
	cg=/sys/fs/cgroup/shoal-test
	# test_wake runs with Yama's ptrace_scope at 1 (a non-ancestor producer must still wake
	# a waiter), each test in its own process: on this 6.1 kernel, shm_seg_create() in a
	# process that has torn down an io_uring ring can fail with EINTR (posix_fallocate on
	# tmpfs sees the ring's late task_work notification as a pending signal)
	echo "qemu: test_numa, the cgroup v2 memory cap, test_wake under Yama in a 2-node guest"
	bash scripts/qemu-guest.sh --kernel "$(ls build-qemu/kernel/boot/vmlinuz-* | head -1)" \
		--nodes 2 --cpus 4 --timeout 900 -- "$guest" \
		"set -e; export SHOAL_BIN=$guest/tools/shoal; $guest/tests/test_numa;" \
		"mkdir $cg; echo +memory >/sys/fs/cgroup/cgroup.subtree_control;" \
		"echo +memory >$cg/cgroup.subtree_control;" \
		"SHOAL_TEST_CGROUP=$cg SHOAL_TEST_ONLY=test_supervisor_memory_cap_cgroup" \
		"$guest/tests/test_supervisor;" \
		"echo 1 >/proc/sys/kernel/yama/ptrace_scope;" \
		"for t in \$($guest/tests/test_wake --list); do" \
		"SHOAL_TEST_ONLY=\$t $guest/tests/test_wake; done"
fi

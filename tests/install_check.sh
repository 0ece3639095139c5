#!/usr/bin/env bash
# Install a build into a scratch root and build a program against it with pkg-config: the
# installed headers, libshoal and shoal.pc must be enough. Usage: install_check.sh BUILDDIR
set -euo pipefail
build=$1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --destdir "$root" --quiet
pc=$(dirname "$(find "$root" -name shoal.pc | head -n 1)")
cat >"$root/prog.c" <<'C'
#include <shoal/shoal.h>
#include <shoal/agent.h>
#include <shoal/client.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	struct shoal_client *c;
	char err[256] = "";
	int rc = shoal_client_open("install-check-no-such-instance", &c, err, sizeof(err));

	printf("shoal %s: %s; a client of no instance: %d (%s)\n", shoal_version(),
	       shoal_strerror(SHOAL_ENOENT), rc, err);
	/* what the installed `shoal version` must print, from the installed version.h */
	printf("shoal %s (segment layout %u.%u)\n", SHOAL_VERSION_STRING, SHOAL_LAYOUT_MAJOR,
	       SHOAL_LAYOUT_MINOR);
	return strcmp(shoal_version(), SHOAL_VERSION_STRING) != 0 || rc != SHOAL_ENOENT;
}
C
export PKG_CONFIG_PATH="$pc" PKG_CONFIG_SYSROOT_DIR="$root"
# shellcheck disable=SC2046
cc -std=gnu11 -Wall -Werror "$root/prog.c" -o "$root/prog" $(pkg-config --cflags --libs shoal)
out=$(LD_LIBRARY_PATH="$(dirname "$(find "$root" -name 'libshoal.so*' | head -n 1)")" "$root/prog")
echo "$out"
# wherever the prefix put it (a build set up with --prefix=/opt/shoal puts it there)
bin=$(find "$root" -path '*/bin/shoal' -type f | head -n 1)
[ -n "$bin" ] || { echo "install check: no bin/shoal under $root" >&2; exit 1; }
version=$("$bin" version)
echo "$version"
if [ "$version" != "$(tail -n 1 <<<"$out")" ]; then
	echo "install check: the installed shoal and include/shoal/version.h disagree" >&2
	exit 1
fi
# the stress agent types' plugin (shoal stress --attach-ok), beside the library
find "$root" -path '*/shoal/stress.so' -type f | grep -q . ||
	{ echo "install check: no shoal/stress.so (the stress plugin) under $root" >&2; exit 1; }
echo "install check: ok"

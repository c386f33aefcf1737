#!/usr/bin/env bash
# Builds the images the tests run, without a registry and without `docker build`: each image is a
# root filesystem packed from this host's binaries plus the libraries `ldd` lists, then
# `docker import`ed. An image is rebuilt only when its inputs changed (their hash is stored in the
# image label dev.skiff.test.input-hash).
#
#   skiff-test/postgres:15    Debian's postgresql-15, official image conventions (POSTGRES_* env, PGDATA)
#   skiff-test/redis:7        Debian's redis-server 7 + redis-cli, arguments pass through
#   skiff-test/busybox:latest static busybox
#   skiff-test/app:1, :2, :bad-health, :bad-migrate   the test app (tests/TestApp) on the host's .NET runtime
#   skiff-test/skiff:dev      the operator (operator/, `skiff` on PATH) on the host's .NET + ASP.NET Core runtime;
#                             its ReadyToRun publish stays in .build/skiff for the integration tests
#
# Usage: scripts/build-test-images.sh [--force]
#        scripts/build-test-images.sh --native DIR   only skiff-test/skiff:native, from the NativeAOT publish in DIR
#                                                    (dotnet publish operator -c Release -r linux-x64 -p:PublishAot=true
#                                                    -o DIR): the executable the Dockerfile ships, for the benchmarks
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
here="$repo/scripts/test-images"
work="$repo/.build/images"
# The operator as the skiff-test/skiff:dev image holds it (build_skiff), for the integration tests to run.
skiff_publish="$repo/.build/skiff"
force=0
native=""
case "${1:-}" in
    --force) force=1 ;;
    --native) native="${2:?--native DIR: the folder of a NativeAOT publish}"; [[ -x "$native/skiff" ]] || { echo "build-test-images: no executable $native/skiff" >&2; exit 1; } ;;
esac

hash_label="dev.skiff.test.input-hash"
# Where this host's libc lives (x86_64-linux-gnu, aarch64-linux-gnu, ...).
libdir="$(dirname "$(ldd /bin/sh | awk '/libc\.so/ { print $3 }')")"
base_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() { echo "build-test-images: $*" >&2; exit 1; }

for tool in docker ldd tar sha256sum busybox setpriv; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs what is needed)"
done
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || die "PostgreSQL 15 binaries are missing: apt-get install postgresql-15"
command -v redis-server >/dev/null || die "redis-server is missing: apt-get install redis-server"
# grep reads the whole list (no -q): busybox writes one name per write(2), and a grep that quit at "sh" would leave
# it to die of SIGPIPE, which pipefail then reports as the check failing.
busybox --list | grep -x sh >/dev/null || die "busybox has no sh applet: apt-get install busybox-static"

# Hash of everything an image is made of: this script, its own files, the versions of the host
# packages it packs, and any extra text (e.g. a source tree's digest).
input_hash() {
    local dir="$1"; shift
    {
        sha256sum "$0"
        [[ -d "$dir" ]] && find "$dir" -type f -print0 | sort -z | xargs -0 -r sha256sum
        dpkg-query -W libc6 "$@" 2>/dev/null || true
    } | sha256sum | cut -c1-16
}

current_hash() {
    docker image inspect -f "{{ index .Config.Labels \"$hash_label\" }}" "$1" 2>/dev/null || true
}

# up_to_date HASH IMAGE... : true when every image exists with this input hash.
up_to_date() {
    local want="$1"; shift
    [[ $force == 1 ]] && return 1
    for image in "$@"; do
        [[ "$(current_hash "$image")" == "$want" ]] || return 1
    done
}

# A fresh root with the directories every image needs, /usr merged as on Debian 12.
new_root() {
    local root="$work/$1"
    rm -rf "$root"
    mkdir -p "$root"/{etc,tmp,root,usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,var/tmp,proc,sys,dev}
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    echo "$root"
}

add_user() { # root name uid home
    echo "$2:x:$3:$3:$2:$4:/bin/sh" >> "$1/etc/passwd"
    echo "$2:x:$3:" >> "$1/etc/group"
}

# Copies host files to the same path under root (symlinks resolved), unless already there.
add_files() {
    local root="$1"; shift
    for f in "$@"; do
        [[ -e "$root$f" ]] || cp -L --parents "$f" "$root/"
    done
}

# Copies the shared libraries that the given ELF files load (the files may live anywhere).
add_libs() {
    local root="$1"; shift
    local libs
    libs="$( { for f in "$@"; do ldd "$f" 2>/dev/null || true; done; } \
        | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u)"
    # shellcheck disable=SC2086 # one path per word
    [[ -z "$libs" ]] || add_files "$root" $libs
}

# Copies host files to the same path with every shared library they load.
add_with_libs() {
    add_files "$@"
    add_libs "$@"
}

# Copies a tree as is (symlinks kept), and the libraries its ELF files load.
add_tree() {
    local root="$1" src="$2"; shift 2
    mkdir -p "$root$(dirname "$src")"
    cp -a "$src" "$root$(dirname "$src")/"
    local elves=()
    while IFS= read -r -d '' f; do
        if head -c 4 "$f" | grep -q 'ELF'; then elves+=("$f"); fi
    done < <(find "$src" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
    ((${#elves[@]} == 0)) || add_libs "$root" "${elves[@]}"
}

add_busybox() {
    local root="$1"
    cp /bin/busybox "$root/usr/bin/busybox"
    for applet in $(busybox --list); do
        [[ -e "$root/usr/bin/$applet" || -L "$root/usr/bin/$applet" ]] || ln -s busybox "$root/usr/bin/$applet"
    done
}

# import ROOT|TARBALL HASH IMAGE [--change ...]: makes IMAGE of a root folder or a tarball of
# one, and drops the image it replaces.
import() {
    local src="$1" hash="$2" image="$3"; shift 3
    local old
    old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    local changes=(--change "LABEL $hash_label=$hash" --change "LABEL dev.skiff.test.image=true" "$@")
    if [[ -d "$src" ]]; then
        tar -C "$src" --numeric-owner -cf - . | docker import "${changes[@]}" - "$image" >/dev/null
    else
        docker import "${changes[@]}" "$src" "$image" >/dev/null
    fi
    local new
    new="$(docker image inspect -f '{{.Id}}' "$image")"
    if [[ -n "$old" && "$old" != "$new" ]]; then
        docker rmi "$old" >/dev/null 2>&1 || true   # still used by a container or another tag: keep
    fi
    printf 'built    %-28s %s\n' "$image" "$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

skipped() { printf 'skipped  %-28s (inputs unchanged)\n' "$1"; }

build_busybox() {
    local image="skiff-test/busybox:latest" hash
    hash="$(input_hash /nonexistent busybox-static)"
    if up_to_date "$hash" "$image"; then skipped "$image"; return; fi
    local root
    root="$(new_root busybox)"
    add_busybox "$root"
    import "$root" "$hash" "$image" --change "ENV PATH=$base_path" --change 'CMD ["sh"]'
}

build_postgres() {
    local image="skiff-test/postgres:15" hash
    hash="$(input_hash "$here/postgres" postgresql-15 libpq5 busybox-static util-linux tzdata)"
    if up_to_date "$hash" "$image"; then skipped "$image"; return; fi
    local root pg=/usr/lib/postgresql/15
    root="$(new_root postgres)"
    add_with_libs "$root" /usr/bin/setpriv
    add_tree "$root" "$pg/bin"
    # The JIT provider needs LLVM (~100 MB): leave it out and run with jit=off.
    local modules
    mapfile -t modules < <(find "$pg/lib" -maxdepth 1 -type f -name '*.so' ! -name 'llvmjit*')
    add_with_libs "$root" "${modules[@]}"
    mkdir -p "$root/usr/share/postgresql" "$root/usr/share/zoneinfo" "$root/usr/lib/locale"
    cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
    rm -rf "$root/usr/share/postgresql/15/man"
    cp -a /usr/share/zoneinfo/. "$root/usr/share/zoneinfo/"
    rm -rf "$root/usr/share/zoneinfo/right"
    [[ -d /usr/lib/locale/C.utf8 ]] && cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"
    # initdb asks `locale -a` for collations to import; answer with the locales the image has.
    printf '#!/bin/sh\n[ "${1:-}" = -a ] && printf "C\\nC.utf8\\nPOSIX\\n"\n' > "$root/usr/bin/locale"
    chmod 755 "$root/usr/bin/locale"
    add_busybox "$root"   # last: real binaries (setpriv) win over applets of the same name
    add_user "$root" postgres 999 /var/lib/postgresql
    mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/docker-entrypoint-initdb.d"
    chown -R 999:999 "$root/var/lib/postgresql" "$root/var/run/postgresql"
    chmod 700 "$root/var/lib/postgresql/data"
    chmod 3777 "$root/var/run/postgresql"
    install -m 0755 "$here/postgres/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    import "$root" "$hash" "$image" \
        --change "ENV PATH=$base_path:$pg/bin" \
        --change "ENV PG_MAJOR=15" \
        --change "ENV PGDATA=/var/lib/postgresql/data" \
        --change "ENV LANG=C.UTF-8" \
        --change 'VOLUME ["/var/lib/postgresql/data"]' \
        --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
        --change 'CMD ["postgres"]' \
        --change 'EXPOSE 5432'
}

build_redis() {
    local image="skiff-test/redis:7" hash
    hash="$(input_hash "$here/redis" redis-server redis-tools busybox-static util-linux)"
    if up_to_date "$hash" "$image"; then skipped "$image"; return; fi
    local root
    root="$(new_root redis)"
    add_with_libs "$root" /usr/bin/setpriv /usr/bin/redis-server /usr/bin/redis-cli
    add_busybox "$root"   # last: real binaries (setpriv) win over applets of the same name
    add_user "$root" redis 999 /data
    mkdir -p "$root/data"
    chown 999:999 "$root/data"
    install -m 0755 "$here/redis/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    import "$root" "$hash" "$image" \
        --change "ENV PATH=$base_path" \
        --change 'VOLUME ["/data"]' \
        --change 'WORKDIR /data' \
        --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
        --change 'CMD ["redis-server"]' \
        --change 'EXPOSE 6379'
}

build_app() {
    local images=(skiff-test/app:1 skiff-test/app:2 skiff-test/app:bad-health skiff-test/app:bad-migrate)
    local dotnet_root runtime_dir runtime_version aspnet_dir source_digest hash
    dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
    runtime_dir="$(find "$dotnet_root/shared/Microsoft.NETCore.App" -mindepth 1 -maxdepth 1 -type d -name '10.*' | sort -V | tail -1)"
    [[ -n "$runtime_dir" ]] || die "no .NET 10 runtime under $dotnet_root/shared/Microsoft.NETCore.App"
    runtime_version="$(basename "$runtime_dir")"
    # The app serves HTTP with Kestrel (the managed HttpListener crashes when a client connects while it starts).
    aspnet_dir="$(find "$dotnet_root/shared/Microsoft.AspNetCore.App" -mindepth 1 -maxdepth 1 -type d -name '10.*' 2>/dev/null | sort -V | tail -1)"
    [[ -n "$aspnet_dir" ]] || die "no ASP.NET Core 10 shared framework under $dotnet_root/shared/Microsoft.AspNetCore.App"
    source_digest="$(cd "$repo" && find tests/TestApp -type f ! -path '*/bin/*' ! -path '*/obj/*' -print0 \
        | sort -z | xargs -0 sha256sum; sha256sum Directory.Build.props Directory.Packages.props)"
    hash="$( { input_hash /nonexistent libssl3 libgssapi-krb5-2 libstdc++6 zlib1g; echo "$runtime_version"; basename "$aspnet_dir"; echo "$source_digest"; } | sha256sum | cut -c1-16)"
    if up_to_date "$hash" "${images[@]}"; then
        for image in "${images[@]}"; do skipped "$image"; done
        return
    fi

    local publish="$work/testapp-publish"
    rm -rf "$publish"
    dotnet publish "$repo/tests/TestApp/TestApp.csproj" -c Release -o "$publish" --nologo -v quiet \
        -p:UseAppHost=true -p:SelfContained=false >/dev/null || die "dotnet publish tests/TestApp failed"

    local root
    root="$(new_root app)"
    # The runtime where the apphost looks for it ($DOTNET_ROOT), without the SDK.
    mkdir -p "$root/usr/share/dotnet/shared/Microsoft.NETCore.App" "$root/usr/share/dotnet/shared/Microsoft.AspNetCore.App" \
        "$root/usr/share/dotnet/host"
    cp -a "$dotnet_root/dotnet" "$root/usr/share/dotnet/"
    cp -a "$dotnet_root/host/fxr" "$root/usr/share/dotnet/host/"
    cp -a "$runtime_dir" "$root/usr/share/dotnet/shared/Microsoft.NETCore.App/"
    cp -a "$aspnet_dir" "$root/usr/share/dotnet/shared/Microsoft.AspNetCore.App/"
    rm -f "$root/usr/share/dotnet/shared/Microsoft.NETCore.App/$runtime_version"/{createdump,libmscordbi.so,libmscordaccore.so}
    mkdir -p "$root/app"
    cp -a "$publish/." "$root/app/"
    ln -s /app/testapp "$root/usr/local/bin/testapp"
    local natives
    mapfile -t natives < <(find "$root/usr/share/dotnet" "$root/app" -type f \( -name '*.so' -o -name dotnet -o -name testapp \))
    add_libs "$root" "${natives[@]}"
    # The runtime loads OpenSSL (SCRAM, TLS) and GSSAPI (Npgsql probes Kerberos) with dlopen, so
    # ldd does not list them; without GSSAPI every connection prints "Cannot load library".
    add_with_libs "$root" "$libdir/libssl.so.3" "$libdir/libcrypto.so.3" "$libdir/libgssapi_krb5.so.2"
    add_user "$root" app 10001 /app

    local tar="$work/app.tar"
    tar -C "$root" --numeric-owner -cf "$tar" .
    local common=(
        --change "ENV PATH=$base_path"
        --change "ENV DOTNET_ROOT=/usr/share/dotnet"
        --change "ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1"
        --change "ENV PORT=8080"
        --change 'WORKDIR /app'
        --change 'USER app'
        --change 'ENTRYPOINT ["testapp"]'
        --change 'EXPOSE 8080'
    )
    # One tarball, four tags: identical layers are stored once.
    import "$tar" "$hash" skiff-test/app:1 "${common[@]}" --change "ENV APP_VERSION=1"
    import "$tar" "$hash" skiff-test/app:2 "${common[@]}" --change "ENV APP_VERSION=2"
    import "$tar" "$hash" skiff-test/app:bad-health "${common[@]}" --change "ENV APP_VERSION=bad-health" --change "ENV TESTAPP_FAIL_HEALTH=1"
    import "$tar" "$hash" skiff-test/app:bad-migrate "${common[@]}" --change "ENV APP_VERSION=bad-migrate" --change "ENV TESTAPP_FAIL_MIGRATE=1"
    rm -f "$tar"
}

# The operator image for tests, packed like the app: `skiff` on the host's .NET runtime and ASP.NET Core
# shared framework (Kestrel serves /metrics and the proxy), as root (the proxy binds published ports, the
# operator talks to the Docker socket). `docker run --network host -v DIR:/routes skiff-test/skiff:dev
# proxy --routes /routes/routes.json` runs the node proxy.
build_skiff() {
    local image="skiff-test/skiff:dev"
    local dotnet_root netcore aspnet source_digest hash
    dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
    netcore="$(find "$dotnet_root/shared/Microsoft.NETCore.App" -mindepth 1 -maxdepth 1 -type d -name '10.*' | sort -V | tail -1)"
    aspnet="$(find "$dotnet_root/shared/Microsoft.AspNetCore.App" -mindepth 1 -maxdepth 1 -type d -name '10.*' 2>/dev/null | sort -V | tail -1)"
    [[ -n "$netcore" ]] || die "no .NET 10 runtime under $dotnet_root/shared/Microsoft.NETCore.App"
    [[ -n "$aspnet" ]] || die "no ASP.NET Core 10 shared framework under $dotnet_root/shared/Microsoft.AspNetCore.App"
    source_digest="$(cd "$repo" && find operator crds -type f ! -path '*/bin/*' ! -path '*/obj/*' -print0 \
        | sort -z | xargs -0 sha256sum; sha256sum global.json Directory.Build.props Directory.Packages.props .editorconfig)"
    hash="$( { input_hash /nonexistent libssl3 libgssapi-krb5-2 libstdc++6 zlib1g; basename "$netcore"; basename "$aspnet"; echo "$source_digest"; } \
        | sha256sum | cut -c1-16)"
    # Published once for the image and for the integration tests, which run this skiff.dll (scripts/test.sh sets
    # SKIFF_TEST_SKIFF_DLL): precompiled with ReadyToRun as the Dockerfile does, so the hundreds of skiff processes a
    # test run starts do not each JIT the same code (docs/PERFORMANCE.md, P9).
    local publish="$skiff_publish"
    if up_to_date "$hash" "$image" && [[ -f "$publish/skiff.dll" && "$(cat "$publish/.input-hash" 2>/dev/null)" == "$hash" ]]; then
        skipped "$image"; return
    fi

    rm -rf "$publish"
    dotnet publish "$repo/operator/Skiff.csproj" -c Release -o "$publish" --nologo -v quiet --use-current-runtime \
        -p:UseAppHost=true -p:SelfContained=false -p:PublishReadyToRun=true >/dev/null || die "dotnet publish operator failed"
    echo "$hash" > "$publish/.input-hash"

    local root
    root="$(new_root skiff)"
    mkdir -p "$root/usr/share/dotnet/shared/Microsoft.NETCore.App" "$root/usr/share/dotnet/shared/Microsoft.AspNetCore.App" \
        "$root/usr/share/dotnet/host"
    cp -a "$dotnet_root/dotnet" "$root/usr/share/dotnet/"
    cp -a "$dotnet_root/host/fxr" "$root/usr/share/dotnet/host/"
    cp -a "$netcore" "$root/usr/share/dotnet/shared/Microsoft.NETCore.App/"
    cp -a "$aspnet" "$root/usr/share/dotnet/shared/Microsoft.AspNetCore.App/"
    rm -f "$root/usr/share/dotnet/shared/Microsoft.NETCore.App/$(basename "$netcore")"/{createdump,libmscordbi.so,libmscordaccore.so}
    mkdir -p "$root/app" "$root/var/lib/skiff"
    cp -a "$publish/." "$root/app/"
    rm -f "$root/app/.input-hash"
    ln -s /app/skiff "$root/usr/local/bin/skiff"
    local natives
    mapfile -t natives < <(find "$root/usr/share/dotnet" "$root/app" -type f \( -name '*.so' -o -name dotnet -o -name skiff \))
    add_libs "$root" "${natives[@]}"
    # Loaded with dlopen (ldd does not list them): OpenSSL for TLS (registries, the Kubernetes API), GSSAPI.
    add_with_libs "$root" "$libdir/libssl.so.3" "$libdir/libcrypto.so.3" "$libdir/libgssapi_krb5.so.2"
    import "$root" "$hash" "$image" \
        --change "ENV PATH=$base_path" \
        --change "ENV DOTNET_ROOT=/usr/share/dotnet" \
        --change "ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1" \
        --change "ENV DOTNET_CLI_TELEMETRY_OPTOUT=1" \
        --change 'ENV ASPNETCORE_HTTP_PORTS=' \
        --change 'WORKDIR /app' \
        --change 'ENTRYPOINT ["skiff"]' \
        --change 'CMD ["--help"]'
}

# The NativeAOT executable as the Dockerfile's image holds it: skiff alone (the runtime and ASP.NET Core are compiled
# into it) and the libraries it loads, as root. No git or age (the Dockerfile's image adds them from Debian).
build_skiff_native() {
    local image="skiff-test/skiff:native" hash root
    hash="$( { input_hash /nonexistent libssl3 libgssapi-krb5-2 zlib1g; sha256sum "$native/skiff"; } | sha256sum | cut -c1-16)"
    if up_to_date "$hash" "$image"; then
        skipped "$image"; return
    fi

    root="$(new_root skiff-native)"
    mkdir -p "$root/app" "$root/var/lib/skiff"
    cp "$native/skiff" "$root/app/skiff"
    ln -s /app/skiff "$root/usr/local/bin/skiff"
    add_libs "$root" "$root/app/skiff"
    # Loaded with dlopen (ldd does not list them): OpenSSL for TLS (registries, the Kubernetes API), GSSAPI.
    add_with_libs "$root" "$libdir/libssl.so.3" "$libdir/libcrypto.so.3" "$libdir/libgssapi_krb5.so.2"
    import "$root" "$hash" "$image" \
        --change "ENV PATH=$base_path" \
        --change 'ENV ASPNETCORE_HTTP_PORTS=' \
        --change 'WORKDIR /app' \
        --change 'ENTRYPOINT ["skiff"]' \
        --change 'CMD ["--help"]'
}

start=$SECONDS
mkdir -p "$work"
if [[ -n "$native" ]]; then
    build_skiff_native
    echo "native image ready in $((SECONDS - start)) s"
    exit 0
fi
build_busybox
build_redis
build_postgres
build_app
build_skiff
echo "test images ready in $((SECONDS - start)) s"

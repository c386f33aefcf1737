# The Skiff operator image: `skiff run` as the Helm chart's DaemonSet runs it, and every other
# skiff command (`docker run --rm IMAGE validate /stacks`).
#
#   docker build -t registry.example.com/skiff/skiff:0.1.0 .
#
# Build: the .NET 10 SDK restores and publishes the operator (Release) with NativeAOT: one native
# executable, no JIT, no .NET runtime to load. Start-up is part of every `skiff` command and of each
# restart: against the composite ReadyToRun build this image shipped before, `skiff run` answers
# /readyz in 0.29 s instead of 0.61 s, a restart's resync of 200 stacks took 3.8 s instead of 9.3 s in
# the same run, and the operator holds about 47 MiB less with those 200 stacks (docs/PERFORMANCE.md,
# "NativeAOT runs" and "NativeAOT: the whole suite"). Every JSON shape skiff reads or writes has
# metadata generated at compile time, and the integration suite passes against this executable
# (`SKIFF_TEST_SKIFF=PATH bash scripts/test.sh`). The linker needs clang and zlib, which the SDK
# image lacks. The publish takes about 5 minutes on 2 cores. linux-x64 only; for arm64 change the
# runtime identifier (and build on arm64: NativeAOT does not cross-compile between architectures).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
RUN apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Restore first, from the project files alone, so that a source change does not re-download packages.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY operator/Skiff.csproj operator/
RUN dotnet restore operator/Skiff.csproj -r linux-x64 -p:PublishAot=true
COPY operator/ operator/
COPY crds/ crds/
# The executable alone: its debug symbols (skiff.dbg, three times its size) and the XML docs stay behind.
RUN dotnet publish operator -c Release -r linux-x64 -o /out --no-restore -p:PublishAot=true \
    && mkdir /app && cp /out/skiff /app/

# Run: only the native libraries the executable loads (libc, and OpenSSL for TLS when first needed); the
# runtime and ASP.NET Core (Kestrel serves /metrics, /status, the probes and the node proxy) are compiled
# into it.
# Globalization is invariant (Skiff.csproj), so no ICU either.
FROM mcr.microsoft.com/dotnet/runtime-deps:10.0
# The base image would make ASP.NET Core listen on :8080 by default; Skiff binds its own
# addresses (--metrics-bind-address, --health-probe-bind-address) and ignores ASPNETCORE_*.
ENV ASPNETCORE_HTTP_PORTS="" \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1
# git (with ssh) for the Git source (`skiff run --source git`, docs/GIT.md); age for the encrypted
# Secret files of the folder and Git sources (--age-key-file).
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates age \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app ./
# No USER line: the image runs as root, like the chart's pod. Skiff talks to the host's Docker
# socket, which only root or the docker group can use, and whoever uses that socket is root on
# the host anyway (docs/SECURITY.md). To run as a non-root user, give it the docker group's id:
#   docker run --user 1654:$(getent group docker | cut -d: -f3) ...
# (1654 is the base image's "app" user) and a writable --state-dir.
EXPOSE 8080 8081
ENTRYPOINT ["/app/skiff"]
CMD ["--help"]

# The Skiff operator image: `skiff run` as the Helm chart's DaemonSet runs it, and every other
# skiff command (`docker run --rm IMAGE validate /stacks`).
#
#   docker build -t registry.example.com/skiff/skiff:0.1.0 .
#
# Build: the .NET 10 SDK restores and publishes the operator (Release) self-contained and precompiled
# as one composite ReadyToRun image: the runtime, ASP.NET Core and skiff in one version bubble, so
# that even the generic code across them (every async method's state machine) is compiled ahead of
# time. Start-up is part of every `skiff` command and of each restart: against the framework-
# dependent ReadyToRun build this image used before, a restart's resync of 200 stacks takes 3.1 s
# instead of 3.8 s with a quarter less CPU, and a no-op `skiff run --once` 0.80 s instead of 1.06 s; it
# costs about 16 MiB more resident memory (the larger precompiled image is mapped) and a few
# minutes of build (docs/PERFORMANCE.md, "Composite ReadyToRun"). linux-x64 only; for arm64
# change the runtime identifier.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files alone, so that a source change does not re-download packages.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY operator/Skiff.csproj operator/
RUN dotnet restore operator/Skiff.csproj -r linux-x64 -p:SelfContained=true -p:PublishReadyToRun=true
COPY operator/ operator/
COPY crds/ crds/
RUN dotnet publish operator -c Release -r linux-x64 --self-contained true -o /app --no-restore \
        -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true

# Run: only the native libraries .NET needs; the runtime and ASP.NET Core (Kestrel serves /metrics,
# /status, the probes and the node proxy) come with the self-contained publish. Globalization is
# invariant (Skiff.csproj), so no ICU either.
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

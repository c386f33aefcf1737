# Sourced by scripts/test.sh and scripts/second-engine.sh: removing what a test engine leaves on
# the host. Needs root.

# Unmounts whatever is mounted at or below $1 (deepest first): overlay and netns mounts that a
# dockerd which did not stop cleanly leaves in its data root and exec root.
unmount_under() {
    local m
    awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while IFS= read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Removes folders, unmounting what is mounted in them first.
remove_tree() {
    local dir
    for dir in "$@"; do
        [[ -e $dir ]] || continue
        unmount_under "$dir"
        rm -rf "$dir"
    done
}

# Waits up to $2 seconds for process $1 to exit; 0 when it did.
wait_exit() {
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.5
    done
    return 1
}

# Sourced by tools/deno and bin/k8stun (POSIX sh): `once MARKER COMMAND [ARGS...]` runs COMMAND
# unless MARKER exists, then creates MARKER.
#
# Several first runs can start together (tests in parallel, two terminals, `sudo bin/k8stun run`
# beside `bin/k8stun status`). They must not fill the same directory at once: one run's
# `chmod -R` then trips over the files another run's download is still renaming, and a half
# filled directory gets its marker. So the runs queue on a lock next to the marker, and each one
# checks the marker again once it holds the lock: the first fills, the others find it done.
#
# COMMAND runs in a subshell that holds the lock, so the lock is released when it ends and a
# program the caller execs afterwards does not inherit it.
once() {
  _once_marker=$1
  shift
  [ -e "$_once_marker" ] && return 0
  (
    _once_lock="$_once_marker.lock"
    _once_waiting="k8stun: waiting for another first run to finish filling $(dirname "$_once_marker")"
    if command -v flock >/dev/null 2>&1; then
      exec 9>>"$_once_lock"
      flock -n 9 || { echo "$_once_waiting" >&2; flock 9; }
    else
      # No flock(1) (macOS): mkdir is atomic everywhere. A lock whose process is gone (killed
      # during a download) is taken over; `ps -p` also sees processes of other users. One that
      # never got its pid (killed right after mkdir) is taken over after 10 s.
      #
      # A lock is removed only if it still names the owner found gone: that owner may have ended
      # normally (its lock released) and another run taken a new lock meanwhile, which must stay.
      # A run whose new lock was removed anyway (its pid cannot be written) goes back to waiting.
      _once_unowned=0
      until mkdir "$_once_lock.d" 2>/dev/null && echo $$ 2>/dev/null >"$_once_lock.d/pid"; do
        [ -z "$_once_waiting" ] || { echo "$_once_waiting" >&2; _once_waiting=; }
        _once_owner=$(cat "$_once_lock.d/pid" 2>/dev/null || true)
        if [ -n "$_once_owner" ] && ! ps -p "$_once_owner" >/dev/null 2>&1; then
          [ "$(cat "$_once_lock.d/pid" 2>/dev/null || true)" != "$_once_owner" ] ||
            rm -rf "$_once_lock.d"
        elif [ -z "$_once_owner" ] && [ "$_once_unowned" -ge 10 ]; then
          rm -rf "$_once_lock.d"
          _once_unowned=0
        else
          [ -n "$_once_owner" ] || _once_unowned=$((_once_unowned + 1))
          sleep 1
        fi
      done
      trap 'rm -rf "$_once_lock.d"' EXIT
    fi
    [ -e "$_once_marker" ] && exit 0
    "$@"
    touch "$_once_marker"
  )
}

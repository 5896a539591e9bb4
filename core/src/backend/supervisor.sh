# The supervisor of a process backend: a bash loop inside the sandbox that runs one command at a time.
# stdin: requests from the orchestrator; stdout: command output and replies, each reply framed as
# "\x1e<nonce> <verb> <id> <value>\n" (the nonce is never given to commands, and RESET changes it).
#   RUN <id> <timeout_ms> <bytes>\n<command>   run in a fresh bash with the saved cwd and exports
#   PING <id>                                  reply PONG
#   RESET <id> <new-nonce>                     kill every process, empty the workspace, reset state
# $1 = workspace, $2 = 1 when in a private PID namespace (kill -9 -1 is then safe).
set -u
export LC_ALL=C
ws=$1
pidns=$2
IFS= read -r nonce || exit 0
state=$(mktemp -d /tmp/.phasekit-XXXXXX) || exit 1
base_env() {
  printf 'declare -x PATH="/usr/local/bin:/usr/bin:/bin"\ndeclare -x HOME="%s"\n' "$ws"
  printf 'declare -x LANG="C.UTF-8"\ndeclare -x TERM="dumb"\n'
}
base_env > "$state/env"
printf '%s\n' "$ws" > "$state/cwd"
: > "$state/groups"
reply() { printf '\036%s %s %s %s\n' "$nonce" "$1" "$2" "$3"; }
# Every fork costs milliseconds here: the loop uses bash builtins only, and the runner saves its own
# cwd and exports on exit (so a command killed mid-way keeps what it had changed until then).
runner='unset LC_ALL; cd -- "$1" 2>/dev/null || cd -- "$HOME"; . "$2/env" 2>/dev/null
trap '"'"'__phk_status=$?; export -n SHLVL _ 2>/dev/null; pwd > "$2/cwd"; export -p > "$2/env"; exit $__phk_status'"'"' EXIT
eval "$3"'
reply READY 0 0
while IFS=' ' read -r verb id arg n; do
  case "$verb" in
    RUN)
      IFS= read -r -d '' -N "$n" cmd || cmd=
      printf -v secs '%d.%03d' $((arg / 1000)) $((arg % 1000))
      IFS= read -r cwd < "$state/cwd" || cwd=$ws
      timeout -k 1 "$secs" bash --noprofile --norc -c "$runner" phasekit "$cwd" "$state" "$cmd" </dev/null 2>&1 &
      printf '%s\n' "$!" >> "$state/groups"
      wait "$!"
      status=$?
      reply DONE "$id" "$status"
      ;;
    PING)
      reply PONG "$id" 0
      ;;
    RESET)
      if [[ "$pidns" == 1 ]]; then
        kill -9 -1 2>/dev/null
      else
        while read -r group; do kill -9 -- "-$group" 2>/dev/null; done < "$state/groups"
      fi
      : > "$state/groups"
      find "$ws" -mindepth 1 -delete 2>/dev/null
      base_env > "$state/env"
      printf '%s\n' "$ws" > "$state/cwd"
      old=$nonce
      nonce=$arg
      printf '\036%s %s %s %s\n' "$old" RESET "$id" 0
      ;;
    *)
      reply ERROR "$id" 0
      ;;
  esac
done
rm -rf "$state"

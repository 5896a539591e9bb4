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
: > "$state/groups"
reply() { printf '\036%s %s %s %s\n' "$nonce" "$1" "$2" "$3"; }
# Every fork costs milliseconds here: the loop uses bash builtins only. The runner saves its cwd and
# exports on exit into one of two slots and marks the slot complete last; the supervisor adopts a
# slot only when it is complete, so a command killed half-way through saving changes nothing.
runner='unset LC_ALL; cd -- "$1" 2>/dev/null || cd -- "$HOME"; . "$5" 2>/dev/null
trap '"'"'__phk_status=$?; export -n SHLVL _ 2>/dev/null; export -p > "$2/env.$4"; pwd > "$2/cwd.$4"; echo 1 > "$2/ok.$4"; exit $__phk_status'"'"' EXIT
eval "$3"'
cwd=$ws
envfile="$state/env"
reply READY 0 0
while IFS=' ' read -r verb id arg n; do
  case "$verb" in
    RUN)
      IFS= read -r -d '' -N "$n" cmd || cmd=
      printf -v secs '%d.%03d' $((arg / 1000)) $((arg % 1000))
      # Write into the slot the current state is not read from.
      if [[ "$envfile" == "$state/env.0" ]]; then slot=1; else slot=0; fi
      : > "$state/ok.$slot"
      timeout -k 1 "$secs" bash --noprofile --norc -c "$runner" phasekit "$cwd" "$state" "$cmd" "$slot" "$envfile" \
        </dev/null 2>&1 &
      printf '%s\n' "$!" >> "$state/groups"
      wait "$!"
      status=$?
      if [[ -s "$state/ok.$slot" ]] && IFS= read -r next < "$state/cwd.$slot"; then
        cwd=$next
        envfile="$state/env.$slot"
      fi
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
      # A fork only when the workspace holds something (the worker moves a session's files out first).
      shopt -s nullglob dotglob
      left=("$ws"/*)
      shopt -u nullglob dotglob
      if ((${#left[@]} > 0)); then find "$ws" -mindepth 1 -delete 2>/dev/null; fi
      base_env > "$state/env"
      envfile="$state/env"
      cwd=$ws
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

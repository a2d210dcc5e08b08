# The function: reads the event from $1, logs to stderr, writes its JSON result to stdout.
handler() {
  echo "received: $1" >&2
  if [[ $1 == *'"fail"'* ]]; then
    return 3
  fi
  printf '{"echo": %s}' "$1"
}

#!/usr/bin/env bash
# The request-flow benchmark: in one run, side by side on the same server,
#   healthz     GET /healthz (public: the gate and the record step, no token, no tenant)
#   flow        GET /api/v1/assistants/{id} with a bearer token: resolve, authenticate (JWT),
#               authorize (membership), handler, record — per-request log lines off (warn)
#   healthz+log, flow+log   the same two with the per-request log line written (info,
#               stdout to a file), as production runs
# reporting requests/s, p50/p99 latency, the server's RSS, and each flow's ratios to the
# health check of the same logging setting.
#
# Usage: bash benches/flow.sh [--write] [--duration SECONDS] [--connections N] [--rounds N]
#   --write   also replace the results section of docs/BENCHMARKS.md
# Each case runs --rounds times (default 3), interleaved with the others, and the median
# round is reported, so one burst of noise on a shared VM does not decide the result.
# Needs wrk (installed from Debian when missing). Traffic stays on 127.0.0.1. The server is
# pinned to CPU 0 and wrk to CPU 1 (taskset), so the numbers are per server core.
set -euo pipefail
cd "$(dirname "$0")/.."

write=0
duration=10
connections=32
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --write) write=1 ;;
        --duration) duration="$2"; shift ;;
        --connections) connections="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bastion-target}"
if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
echo "building release…" >&2
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/bastion"

work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

password='load test secret, long enough'
init_out=$(printf '%s\n' "$password" | "$bin" init --email bench@example.test --password-stdin --data-dir "$work/data")
assistant=$(sed -n 's/^assistant .*(\(.*\))$/\1/p' <<<"$init_out")
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"

# CPU pinning prefixes (empty without taskset).
on_cpu0=() on_cpu1=()
if command -v taskset >/dev/null 2>&1; then on_cpu0=(taskset -c 0) on_cpu1=(taskset -c 1); fi

start_server() { # $1 = log level
    [ -n "$server_pid" ] && { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
    BASTION_LOG_LEVEL="$1" BASTION_RATE_LIMIT_IP_PER_MINUTE=10000000 BASTION_RATE_LIMIT_USER_PER_MINUTE=10000000 \
        BASTION_RATE_LIMIT_KEY_PER_MINUTE=10000000 "${on_cpu0[@]}" "$bin" serve --data-dir "$work/data" --bind "127.0.0.1:$port" >"$work/server-$1.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fs "$base/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "server did not start" >&2; cat "$work/server-$1.log" >&2; exit 1
}

# wrk's latency lines are like "99%    2.35ms"; print microseconds.
to_us() {
    awk '{ v=$1; if (v ~ /us$/) { sub(/us$/,"",v); print v+0 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } }'
}

declare -A rps p50 p99 rss
measure() { # $1 = name, $2 = url, rest = extra wrk args
    local name=$1 url=$2; shift 2
    "${on_cpu1[@]}" wrk -t1 -c"$connections" -d2s "$@" "$url" >/dev/null # warm-up
    local out
    out=$("${on_cpu1[@]}" wrk -t1 -c"$connections" -d"${duration}s" --latency "$@" "$url")
    if grep -q 'Non-2xx' <<<"$out"; then echo "$name: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
    rps[$name]+="$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out") "
    p50[$name]+="$(awk '$1=="50%" {print $2}' <<<"$out" | to_us) "
    p99[$name]+="$(awk '$1=="99%" {print $2}' <<<"$out" | to_us) "
    rss[$name]+="$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status") "
}

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

login() {
    curl -fs "$base/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"bench@example.test\",\"password\":\"$password\"}" |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}

start_server warn
token=$(login)
auth=(-H "Authorization: Bearer $token")
# An assistant API key allowed what the flow route needs (any capability; settings here).
key=$(curl -fs "$base/api/v1/assistants/$assistant/api-keys" "${auth[@]}" -H 'content-type: application/json' \
    -d '{"name":"bench","capabilities":["settings.manage"]}' | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[ -n "$key" ] || { echo "could not create an API key" >&2; exit 1; }
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: healthz, flow, flow (API key)" >&2
    measure healthz "$base/healthz"
    measure flow "$base/api/v1/assistants/$assistant" "${auth[@]}"
    measure "flow (API key)" "$base/api/v1/assistants/$assistant" -H "Authorization: Bearer $key"
done
start_server info
token=$(login)
auth=(-H "Authorization: Bearer $token")
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: healthz+log, flow+log" >&2
    measure "healthz+log" "$base/healthz"
    measure "flow+log" "$base/api/v1/assistants/$assistant" "${auth[@]}"
done
cases=(healthz flow "flow (API key)" "healthz+log" "flow+log")
for name in "${cases[@]}"; do
    for m in rps p50 p99 rss; do
        declare -n series=$m
        series[$name]=$(median "${series[$name]}")
        unset -n series
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
table=$(
    echo "| case | requests/s | p50 | p99 | server RSS | p99 vs its healthz | req/s vs its healthz |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for name in "${cases[@]}"; do
        base_case=healthz
        [[ $name == *+log ]] && base_case="healthz+log"
        printf '| %s | %s | %s µs | %s µs | %s MiB | %sx | %sx |\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" \
            "$(awk -v k="${rss[$name]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
            "$(ratio "${p99[$name]}" "${p99[$base_case]}")" "$(ratio "${rps[$name]}" "${rps[$base_case]}")"
    done
)
machine="$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(date -u +%Y-%m-%d)"
echo "$table"
echo
echo "machine: $machine; wrk -t1 -c$connections -d${duration}s after a 2 s warm-up, median of $rounds rounds; SQLite"

if [ "$write" = 1 ]; then
    doc=docs/BENCHMARKS.md
    python3 - "$doc" "$table" "$machine" "$connections" "$duration" "$rounds" <<'PY'
import sys
path, table, machine, conns, secs, rounds = sys.argv[1:]
text = open(path).read()
start, end = "<!-- results:start -->", "<!-- results:end -->"
block = f"{start}\nMachine: {machine}. wrk -t1 -c{conns} -d{secs}s per case after a 2 s warm-up; median of {rounds} interleaved rounds; SQLite store.\n\n{table}\n{end}"
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + block + tail)
PY
    echo "wrote $doc" >&2
fi

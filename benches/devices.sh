#!/usr/bin/env bash
# The device connection benchmark: memory of bastion holding many idle device channels.
#
# For each transport (the WebSocket channel, then the MQTT endpoint) a fresh bastion (release
# build, SQLite, embedded defaults plus `mqtt_bind`) gets --count devices bound to its
# assistant the way a device and its owner do it (handshake, code entered, handshake again),
# then benches/device-load opens one channel per device and says hello on it, from several
# loopback source addresses, and holds them all open. At each step (--steps) the server's
# resident memory (VmRSS) is read with every channel held; reported: total RSS and RSS added
# per connection over the server with the devices bound but no channel open.
#
# Usage: bash benches/devices.sh [--write] [--steps LIST] [--no-build]
#   --write     also replace the device results section of docs/BENCHMARKS.md
#   --steps     connection counts, comma-separated (default 1000,10000)
#   --no-build  use the binaries already built
# Builds bastion and the load generator in release mode into $CARGO_TARGET_DIR (default
# ~/.cache/bastion-release). Needs `ulimit -n` of at least twice the largest step (raised
# here to the hard limit).
set -euo pipefail
cd "$(dirname "$0")/.."

write=0
steps=1000,10000
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --write) write=1 ;;
        --steps) steps="$2"; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

ulimit -n "$(ulimit -Hn)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bastion-release}"
if [ "$build" = 1 ]; then
    echo "building release (bastion, load generator)…" >&2
    cargo build --release --quiet -p bastion -p bastion-device-load
fi
bin="$CARGO_TARGET_DIR/release"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
password='correct horse battery staple, twice over'

# One run: a fresh server, devices bound, channels held over `transport`.
run() {
    local transport=$1 dir="$work/$1"
    mkdir -p "$dir"
    local port
    port=$(free_port)
    cat >"$dir/bastion.toml" <<TOML
mqtt_bind = "127.0.0.1:0"
device_handshakes_per_minute = 100000
rate_limit_ip_per_minute = 10000000
TOML
    local init_out assistant
    init_out=$(printf '%s\n' "$password" | "$bin/bastion" init --config "$dir/bastion.toml" --email bench@example.test --password-stdin --data-dir "$dir/data")
    assistant=$(sed -n 's/^assistant .*(\(.*\))$/\1/p' <<<"$init_out")
    "$bin/bastion" serve --config "$dir/bastion.toml" --data-dir "$dir/data" --bind "127.0.0.1:$port" >"$dir/bastion.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    local token
    token=$(curl -fsS "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"bench@example.test\",\"password\":\"$password\"}" | json_field access_token)
    "$bin/device-load" --base "http://127.0.0.1:$port" --token "$token" --assistant "$assistant" \
        --steps "$steps" --transport "$transport" --pid "$pid" | tee "$dir/result.jsonl" >&2
    kill "$pid"; wait "$pid" 2>/dev/null || true
    cp "$dir/result.jsonl" "$work/$transport.jsonl"
}

run ws
run mqtt

table=$(python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = []
for t, name in (("ws", "WebSocket"), ("mqtt", "MQTT")):
    lines = [json.loads(l) for l in open(f"{work}/{t}.jsonl")]
    bound = next(l for l in lines if l["step"] == "bound")
    for l in lines:
        if l["step"] == "held":
            rows.append(f"| {name} | {l['connections']:,} | {bound['server_rss_kib']/1024:.1f} | "
                        f"{l['server_rss_kib']/1024:.1f} | {l['per_connection_kib']:.1f} |")
print("| transport | idle connections after hello | server RSS, devices bound, no channel (MiB) | server RSS with all held (MiB) | added per connection (KiB) |")
print("| --- | ---: | ---: | ---: | ---: |")
print("\n".join(rows))
PY
)
echo "$table"

if [ "$write" = 1 ]; then
    python3 - "$table" "$steps" <<'PY'
import re, sys, datetime, subprocess
table, steps = sys.argv[1], sys.argv[2]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
section = f"""## Device connections

`bash benches/devices.sh --steps {steps} --write` on {datetime.date.today()} ({cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores): a release build
on SQLite, devices bound through the API, then one channel per device opened with hello and
held idle (benches/device-load, from 8 loopback source addresses). RSS is the server's VmRSS
with every channel held.

{table}
"""
p = "docs/BENCHMARKS.md"
s = open(p).read()
pat = re.compile(r"## Device connections\n.*?(?=\n## |\Z)", re.S)
s = pat.sub(section.rstrip() + "\n", s) if pat.search(s) else s.rstrip() + "\n\n" + section
open(p, "w").write(s)
PY
fi

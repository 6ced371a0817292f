#!/usr/bin/env bash
# The LLM proxy benchmark: what bastion adds in front of a model provider, next to LiteLLM's
# proxy in front of the same provider and to calling that provider directly, in one run.
#
#   direct    the fake provider (bastion-fake-provider, a Rust server that answers at once)
#   bastion   POST /v1/chat/completions with an assistant API key: the full flow — key,
#             assistant policy, spend-cap check, usage record, trace — to the same fake
#   LiteLLM   the LiteLLM proxy (pinned version, own venv) with a master key and no
#             database, model "fake-model" routed to the same fake
#
# Each of {non-stream, stream} × {concurrency 1 (closed loop), 200 and 2,000 requests/s
# (open loop, latency counted from when each request was due)} runs for direct and one
# proxy, interleaved, --rounds times; the median round is reported. Then each target's
# highest rate held with p99 < 20 ms is searched (doubling rates, then bisecting). Each proxy
# has a phase of its own beside direct (bastion's first): LiteLLM falls behind at these
# rates and keeps a core busy with requests the client gave up on, which would otherwise
# slow whatever is measured next. Reported: added latency (proxy − direct of its phase) at
# p50/p99, added time to first token, LiteLLM ÷ bastion.
#
# Usage: bash benches/llm.sh [--write] [--duration SECONDS] [--rounds N] [--rates LIST]
#                            [--search-duration SECONDS] [--no-search] [--no-litellm] [--no-build]
#   --write            also replace the LLM results section of docs/BENCHMARKS.md
#   --duration         seconds per case and round (default 10)
#   --rounds           rounds (default 3)
#   --rates            open-loop rates, comma-separated (default 200,2000)
#   --search-duration  seconds per step of the highest-rate search (default 5)
#   --no-search        skip that search
#   --no-litellm       bastion and direct only (no venv needed)
#   --no-build         use the binaries already built
# Builds bastion, the fake and the load generator (benches/llm-load) in release mode into
# $CARGO_TARGET_DIR (default ~/.cache/bastion-release); installs LiteLLM into
# ~/.cache/bastion-litellm-venv when missing. Traffic stays on 127.0.0.1. Pinning (taskset):
# the proxies on CPU 0, the load generator and the fake on CPU 1 — each proxy gets one
# core to itself, and the direct baseline runs with the same client, fake and core.
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest LiteLLM whose [proxy] extra installs from PyPI as reachable here: 1.108.8 and
# later pin litellm-enterprise / litellm-proxy-extras / litellm-proxy releases that are not
# published there.
LITELLM_VERSION=1.108.7

write=0
duration=10
rounds=3
rates=200,2000
search_duration=5
search=1
litellm=1
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --write) write=1 ;;
        --duration) duration="$2"; shift ;;
        --rounds) rounds="$2"; shift ;;
        --rates) rates="$2"; shift ;;
        --search-duration) search_duration="$2"; shift ;;
        --no-search) search=0 ;;
        --no-litellm) litellm=0 ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bastion-release}"
if [ "$build" = 1 ]; then
    echo "building release (bastion, fake provider, load generator)…" >&2
    cargo build --release --quiet -p bastion -p bastion-fake-provider -p bastion-llm-load
fi
bin="$CARGO_TARGET_DIR/release"

venv="$HOME/.cache/bastion-litellm-venv"
if [ "$litellm" = 1 ]; then
    if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" != "$LITELLM_VERSION" ]; then
        echo "installing litellm[proxy]==$LITELLM_VERSION into $venv…" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet "litellm[proxy]==$LITELLM_VERSION"
    fi
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

on_cpu0=() on_cpu1=()
if command -v taskset >/dev/null 2>&1; then on_cpu0=(taskset -c 0) on_cpu1=(taskset -c 1); fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
wait_for() { # $1 = url, $2 = what, $3 = log, $4 = tries (0.2 s apart); rest = curl args
    local url=$1 what=$2 log=$3 tries=$4; shift 4
    for _ in $(seq 1 "$tries"); do curl -fs "$@" "$url" >/dev/null 2>&1 && return; sleep 0.2; done
    echo "$what did not start:" >&2; tail -n 30 "$log" >&2; exit 1
}

# The fake provider.
provider_key=sk-bench-0000000000
fake_port=$(free_port)
fake="http://127.0.0.1:$fake_port/v1"
"${on_cpu1[@]}" "$bin/bastion-fake-provider" --listen "127.0.0.1:$fake_port" --no-record >"$work/fake.log" 2>&1 &
pids+=($!)
wait_for "$fake/models" "the fake provider" "$work/fake.log" 50 -H "Authorization: Bearer $provider_key"

# bastion, with a price for the fake model (a spend cap needs one) and no per-request log.
cat >"$work/bastion.toml" <<EOF
log_level = "warn"
# The load comes from one address and one key, far above the flood guards' defaults.
rate_limit_ip_per_minute = 10000000
rate_limit_key_per_minute = 10000000
rate_limit_user_per_minute = 10000000
# The fake provider listens on loopback.
provider_private_hosts = ["127.0.0.1"]

[model_prices."fake-model"]
input_per_mtok_usd = 1.0
output_per_mtok_usd = 2.0
EOF
password='correct horse battery staple, twice over'
init_out=$(printf '%s\n' "$password" | "$bin/bastion" init --config "$work/bastion.toml" --email bench@example.test --password-stdin --data-dir "$work/data")
workspace=$(sed -n 's/^workspace .*(\(.*\))$/\1/p' <<<"$init_out")
assistant=$(sed -n 's/^assistant .*(\(.*\))$/\1/p' <<<"$init_out")
port=$(free_port)
base="http://127.0.0.1:$port"
"${on_cpu0[@]}" "$bin/bastion" serve --config "$work/bastion.toml" --data-dir "$work/data" --bind "127.0.0.1:$port" >"$work/bastion.log" 2>&1 &
bastion_pid=$!
pids+=("$bastion_pid")
wait_for "$base/healthz" bastion "$work/bastion.log" 100

api() { # $1 = method, $2 = path, $3 = JSON body
    curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $token" -H 'content-type: application/json' -d "$3"
}
token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.test\",\"password\":\"$password\"}" | json_field access_token)
provider_key_id=$(api POST "/api/v1/workspaces/$workspace/provider-keys" \
    "{\"provider\":\"openai-compatible\",\"label\":\"fake\",\"secret\":\"$provider_key\",\"base_url\":\"$fake\"}" | json_field id)
api PUT "/api/v1/assistants/$assistant/settings" \
    "{\"system_prompt\":\"You are terse.\",\"provider_key_id\":\"$provider_key_id\",\"model\":\"fake-model\",\"max_reply_tokens\":256,\"context_tokens\":8192}" >/dev/null
key=$(api POST "/api/v1/assistants/$assistant/api-keys" \
    '{"name":"bench","capabilities":["chat"],"monthly_spend_cap_usd":1000000}' | json_field key)

targets=(--target "direct,$fake,$provider_key" --target "bastion,$base/v1,$key")

# LiteLLM: one uvicorn worker (its default), master key, no database, no access log.
if [ "$litellm" = 1 ]; then
    master=sk-litellm-bench-master-0000
    lport=$(free_port)
    cat >"$work/litellm.yaml" <<EOF
model_list:
  - model_name: fake-model
    litellm_params:
      model: openai/fake-model
      api_base: $fake
      api_key: $provider_key
general_settings:
  master_key: $master
EOF
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR "${on_cpu0[@]}" "$venv/bin/litellm" \
        --config "$work/litellm.yaml" --host 127.0.0.1 --port "$lport" --num_workers 1 >"$work/litellm.log" 2>&1 &
    litellm_pid=$!
    pids+=("$litellm_pid")
    wait_for "http://127.0.0.1:$lport/health/liveliness" LiteLLM "$work/litellm.log" 600
    targets+=(--target "LiteLLM,http://127.0.0.1:$lport/v1,$master")
fi

search_args=()
[ "$search" = 1 ] && search_args=(--search --search-duration "$search_duration")
[ "$litellm" = 1 ] && search_args+=(--isolate)
"${on_cpu1[@]}" "$bin/llm-load" "${targets[@]}" --duration "$duration" --rounds "$rounds" --rates "$rates" \
    "${search_args[@]}" --json "$work/llm.json" --markdown "$work/llm.md" >/dev/null
mkdir -p "$CARGO_TARGET_DIR/llm-bench"
cp "$work/llm.json" "$CARGO_TARGET_DIR/llm-bench/last.json"

rss() { awk '/^VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$1/status"; }
# LiteLLM's worker may be a child of the launcher: take the largest RSS of the tree.
tree_rss() { local best=0 p r; for p in $1 $(pgrep -P "$1" || true); do r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0); [ "$r" -gt "$best" ] && best=$r; done; awk -v k="$best" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
memory="bastion $(rss "$bastion_pid")"
[ "$litellm" = 1 ] && memory+=", LiteLLM $(tree_rss "$litellm_pid")"
machine="$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(date -u +%Y-%m-%d)"
revision="$(git describe --always --dirty 2>/dev/null || echo unknown)"
versions="bastion $revision"
[ "$litellm" = 1 ] && versions+=", LiteLLM $LITELLM_VERSION (Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), uvicorn + uvloop, 1 worker)"
block="Machine: $machine. Versions: $versions. Proxies pinned to CPU 0, the load generator and the fake provider to CPU 1. ${duration} s per case and round, $rounds interleaved rounds; search steps ${search_duration} s. RSS after the run: $memory. Raw samples: \`\$CARGO_TARGET_DIR/llm-bench/last.json\`.

$(cat "$work/llm.md")"
echo "$block"

if [ "$write" = 1 ]; then
    doc=docs/BENCHMARKS.md
    python3 - "$doc" "$block" <<'PY'
import sys
path, block = sys.argv[1:]
text = open(path).read()
start, end = "<!-- llm-results:start -->", "<!-- llm-results:end -->"
if start not in text:
    text = text.rstrip("\n") + f"\n\n## LLM proxy overhead\n\n`bash benches/llm.sh --write`\n\n{start}\n{end}\n"
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + start + "\n" + block.rstrip("\n") + "\n" + end + tail)
PY
    echo "wrote $doc" >&2
fi

//! `llm-load`: the load generator of `benches/llm.sh`.
//!
//! It sends OpenAI chat-completion requests (whole or streamed) to several targets — the
//! first is the baseline, e.g. a fake provider called directly, the others proxies in front
//! of it — interleaved in one run, and reports per target what each proxy adds.
//!
//! - Closed loop (`c=1`): one request at a time, back to back, on one kept-alive connection.
//! - Open loop at a fixed rate: request *i* is due at `t0 + i / rate`, sent then by a
//!   scheduler thread whatever the earlier requests are doing, and its latency is counted
//!   from when it was due, so a server that stalls is charged for every request that
//!   waited behind the stall (no coordinated omission). Requests still running `--grace`
//!   seconds after the last one was due are abandoned and counted as timeouts, with the
//!   time they had waited as their (lower-bound) latency.
//!
//! Per request it records the total latency and, for streams, the time to the first
//! `data:` chunk whose `choices[0].delta.content` is not empty (time to first token).
//! Percentiles come from HDR histograms (nanoseconds, 3 significant digits).

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(
    name = "llm-load",
    about = "Added latency of OpenAI-compatible proxies over a direct baseline: closed loop at concurrency 1, open loop at fixed rates, and a search for the highest rate held under a p99 bound"
)]
struct Args {
    /// A target as NAME,BASE_URL,KEY with BASE_URL the OpenAI base (`http://host:port/v1`).
    /// Repeat it; the first is the baseline the others' added latency is measured against.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// The `model` sent.
    #[arg(long, default_value = "fake-model")]
    model: String,
    /// The user message sent (the fake provider echoes it, one word per chunk).
    #[arg(long, default_value = "Say hello to the benchmark")]
    prompt: String,
    /// Seconds per measured case.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Rounds; each case's targets run interleaved in every round, and the median round is
    /// reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of warm-up per target and mode before the first round (closed loop, 4 at a time).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Open-loop rates (requests/s) measured besides concurrency 1.
    #[arg(long, value_delimiter = ',', default_value = "200,2000")]
    rates: Vec<f64>,
    /// Which modes: both, stream or plain.
    #[arg(long, default_value = "both")]
    modes: String,
    /// Also search each target's highest rate held with p99 under --search-p99-ms.
    #[arg(long)]
    search: bool,
    /// The p99 bound of the search, in milliseconds.
    #[arg(long, default_value_t = 20.0)]
    search_p99_ms: f64,
    /// Seconds per step of the search.
    #[arg(long, default_value_t = 5.0)]
    search_duration: f64,
    /// The search's first rate; it doubles until a rate is not held, then bisects.
    #[arg(long, default_value_t = 125.0)]
    search_start: f64,
    /// Bisection steps after the doubling.
    #[arg(long, default_value_t = 3)]
    search_bisect: u32,
    /// The search stops here.
    #[arg(long, default_value_t = 64000.0)]
    search_max: f64,
    /// Open loop: at most this many requests in flight per target (each on its own
    /// connection); the others wait for one, and their wait counts.
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Open loop: seconds after the last request was due before the ones still running are
    /// abandoned as timeouts.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Seconds of rest after each case (longer after one with timeouts or errors, so that a
    /// proxy's backlog does not spill into the next case).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Write every sample (each target, case and round, and each search step) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the markdown tables here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Measure each proxy in a phase of its own, next to the baseline, one phase after the
    /// other — so that a proxy that falls behind (and keeps working on requests the client
    /// gave up on) cannot slow down the others' measurements.
    #[arg(long)]
    isolate: bool,
    /// Only send one request of each mode to each target, print what came back, and exit.
    #[arg(long)]
    check: bool,
}

// ---------------------------------------------------------------------------------------
// Targets and connections

struct Target {
    name: String,
    authority: HeaderValue,
    path: String,
    auth: HeaderValue,
    plain_body: Bytes,
    stream_body: Bytes,
    pool: Pool,
}

impl Target {
    fn parse(spec: &str, args: &Args) -> Result<Target> {
        let mut parts = spec.splitn(3, ',');
        let (Some(name), Some(base), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("--target {spec:?}: expected NAME,BASE_URL,KEY");
        };
        let rest = base
            .strip_prefix("http://")
            .with_context(|| format!("--target {name}: only http:// base URLs"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let addr = authority
            .to_socket_addrs()
            .with_context(|| format!("--target {name}: resolving {authority}"))?
            .next()
            .with_context(|| format!("--target {name}: no address for {authority}"))?;
        let body = |stream: bool| -> Bytes {
            serde_json::json!({
                "model": args.model,
                "messages": [{"role": "user", "content": args.prompt}],
                "stream": stream,
            })
            .to_string()
            .into()
        };
        Ok(Target {
            name: name.to_string(),
            authority: HeaderValue::from_str(authority)?,
            path: format!("{prefix}/chat/completions"),
            auth: HeaderValue::from_str(&format!("Bearer {key}"))?,
            plain_body: body(false),
            stream_body: body(true),
            pool: Pool {
                addr,
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(args.max_connections),
            },
        })
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Kept-alive HTTP/1.1 connections, one per request in flight, at most `slots` of them.
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<Sender>>,
    slots: Semaphore,
}

impl Pool {
    async fn get(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, Sender), String> {
        let permit = self.slots.acquire().await.map_err(|e| e.to_string())?;
        loop {
            let idle = self.idle.lock().unwrap().pop();
            match idle {
                Some(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Ok((permit, s));
                    }
                }
                None => break,
            }
        }
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((permit, sender))
    }

    fn put(&self, s: Sender) {
        if !s.is_closed() {
            self.idle.lock().unwrap().push(s);
        }
    }
}

/// What one request took: its total latency, and for a stream its time to first token.
type Timing = (Duration, Option<Duration>);

/// One request, timed from `due` (when it should have been sent).
async fn request(t: &Target, stream: bool, due: Instant) -> Result<Timing, String> {
    let (_permit, mut sender) = t.pool.get().await?;
    let body = if stream {
        t.stream_body.clone()
    } else {
        t.plain_body.clone()
    };
    let req = hyper::Request::post(&t.path)
        .header(HOST, t.authority.clone())
        .header(AUTHORIZATION, t.auth.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = res.status();
    let mut body = res.into_body();
    if status != hyper::StatusCode::OK {
        let text = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        return Err(format!(
            "HTTP {status}: {}",
            text.chars().take(160).collect::<String>()
        ));
    }
    if !stream {
        let bytes = body
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let end = Instant::now();
        t.pool.put(sender);
        if !contains(&bytes, b"\"choices\"") {
            return Err("answer without choices".into());
        }
        return Ok((end - due, None));
    }
    let mut buf = BytesMut::new();
    let mut first = None;
    let mut done = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("stream: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(nl + 1);
            let Some(payload) = line.strip_prefix(b"data:") else {
                continue;
            };
            let payload = payload.trim_ascii();
            if payload == b"[DONE]" {
                done = true;
            } else if first.is_none() && has_content(payload) {
                first = Some(due.elapsed());
            }
        }
    }
    let end = Instant::now();
    t.pool.put(sender);
    if !done {
        return Err("stream ended without [DONE]".into());
    }
    let Some(first) = first else {
        return Err("stream without content".into());
    };
    Ok((end - due, Some(first)))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A chunk carrying text: `choices[0].delta.content` is a non-empty string.
fn has_content(payload: &[u8]) -> bool {
    serde_json::from_slice::<Value>(payload).is_ok_and(|v| {
        v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    })
}

// ---------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Closed(usize),
    Open(f64),
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Closed(c) => format!("c={c}"),
            Load::Open(r) => format!("{} rps", group(r.round() as i64)),
        }
    }
}

fn mode_label(stream: bool) -> &'static str {
    if stream {
        "stream"
    } else {
        "non-stream"
    }
}

struct Stats {
    total: Histogram<u64>,
    ttft: Histogram<u64>,
    ok: u64,
    timeouts: u64,
    errors: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

impl Stats {
    fn new() -> Stats {
        let h = || Histogram::new_with_bounds(1_000, 600_000_000_000, 3).expect("histogram");
        Stats {
            total: h(),
            ttft: h(),
            ok: 0,
            timeouts: 0,
            errors: BTreeMap::new(),
            last_done: None,
        }
    }

    fn record(&mut self, r: Result<Timing, String>) {
        let now = Instant::now();
        match r {
            Ok((total, first)) => {
                self.ok += 1;
                self.total.saturating_record(total.as_nanos() as u64);
                if let Some(f) = first {
                    self.ttft.saturating_record(f.as_nanos() as u64);
                }
                self.last_done = Some(now);
            }
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    fn timeout(&mut self, waited: Duration) {
        self.timeouts += 1;
        self.total.saturating_record(waited.as_nanos() as u64);
    }
}

/// One target, one case, one round.
#[derive(Serialize, Clone)]
struct Sample {
    phase: &'static str,
    /// The proxy whose phase this sample belongs to (`all` without --isolate).
    group: String,
    round: usize,
    target: String,
    load: String,
    mode: &'static str,
    rate: Option<f64>,
    duration_s: f64,
    ok: u64,
    errors: u64,
    timeouts: u64,
    first_error: Option<String>,
    achieved_rps: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    ttft_p50_us: Option<f64>,
    ttft_p99_us: Option<f64>,
}

impl Sample {
    fn failed(&self) -> u64 {
        self.errors + self.timeouts
    }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[allow(clippy::too_many_arguments)]
fn sample(
    phase: &'static str,
    round: usize,
    t: &Target,
    load: Load,
    stream: bool,
    started: Instant,
    duration: Duration,
    s: &Stats,
) -> Sample {
    let span = s
        .last_done
        .map(|l| (l - started).as_secs_f64())
        .unwrap_or(0.0)
        .max(duration.as_secs_f64() * 0.5);
    let ttft = |q| (stream && !s.ttft.is_empty()).then(|| us(&s.ttft, q));
    Sample {
        phase,
        group: String::new(),
        round,
        target: t.name.clone(),
        load: load.label(),
        mode: mode_label(stream),
        rate: match load {
            Load::Open(r) => Some(r),
            Load::Closed(_) => None,
        },
        duration_s: duration.as_secs_f64(),
        ok: s.ok,
        errors: s.errors.values().sum(),
        timeouts: s.timeouts,
        first_error: s.errors.keys().next().cloned(),
        achieved_rps: s.ok as f64 / span,
        p50_us: us(&s.total, 0.50),
        p90_us: us(&s.total, 0.90),
        p99_us: us(&s.total, 0.99),
        p999_us: us(&s.total, 0.999),
        max_us: s.total.max() as f64 / 1000.0,
        ttft_p50_us: ttft(0.50),
        ttft_p99_us: ttft(0.99),
    }
}

/// `concurrency` requests at a time, each sent as soon as the one before it is answered.
async fn closed_loop(
    t: &Arc<Target>,
    stream: bool,
    concurrency: usize,
    duration: Duration,
) -> (Instant, Stats) {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let started = Instant::now();
    let end = started + duration;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (t, stats) = (t.clone(), stats.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let due = Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(30), request(&t, stream, due))
                    .await
                    .unwrap_or_else(|_| Err("timeout (30 s)".into()));
                stats.lock().unwrap().record(r);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let stats = Arc::into_inner(stats).unwrap().into_inner().unwrap();
    (started, stats)
}

/// Lets the scheduler thread sleep to the microsecond instead of the default 50 µs slack.
fn tight_timer() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Requests due at a fixed rate, each timed from when it was due.
async fn open_loop(
    t: &Arc<Target>,
    stream: bool,
    rate: f64,
    duration: Duration,
    grace: Duration,
) -> (Instant, Stats) {
    let stats = Arc::new(Mutex::new(Stats::new()));
    let count = (rate * duration.as_secs_f64()).round() as u64;
    let started = Instant::now() + Duration::from_millis(10);
    let deadline = started + duration + grace;
    let pending = Arc::new(AtomicU64::new(0));
    let handle = tokio::runtime::Handle::current();
    let scheduler = {
        let (t, stats, pending) = (t.clone(), stats.clone(), pending.clone());
        std::thread::spawn(move || {
            tight_timer();
            for i in 0..count {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                pending.fetch_add(1, Ordering::SeqCst);
                let (t, stats, pending) = (t.clone(), stats.clone(), pending.clone());
                handle.spawn(async move {
                    let r =
                        tokio::time::timeout_at(deadline.into(), request(&t, stream, due)).await;
                    let mut s = stats.lock().unwrap();
                    match r {
                        Ok(r) => s.record(r),
                        Err(_) => s.timeout(deadline - due),
                    }
                    drop(s);
                    pending.fetch_sub(1, Ordering::SeqCst);
                });
            }
        })
    };
    let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
    while pending.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = Arc::into_inner(stats).unwrap().into_inner().unwrap();
    (started, stats)
}

async fn run(
    phase: &'static str,
    round: usize,
    t: &Arc<Target>,
    load: Load,
    stream: bool,
    duration: Duration,
    args: &Args,
) -> Sample {
    let (started, stats) = match load {
        Load::Closed(c) => closed_loop(t, stream, c, duration).await,
        Load::Open(rate) => open_loop(t, stream, rate, duration, secs(args.grace)).await,
    };
    let s = sample(phase, round, t, load, stream, started, duration, &stats);
    let rest = if s.failed() > 0 {
        args.settle.max(5.0)
    } else {
        args.settle
    };
    tokio::time::sleep(secs(rest)).await;
    s
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn progress(s: &Sample, prefix: &str) {
    let mut line = format!(
        "{prefix}{} · {} · {}: {} ok, {:.0} req/s, p50 {}, p99 {}, max {}",
        s.load,
        s.mode,
        s.target,
        s.ok,
        s.achieved_rps,
        fmt_us(s.p50_us),
        fmt_us(s.p99_us),
        fmt_us(s.max_us)
    );
    if let (Some(a), Some(b)) = (s.ttft_p50_us, s.ttft_p99_us) {
        let _ = write!(line, ", TTFT p50 {} p99 {}", fmt_us(a), fmt_us(b));
    }
    if s.failed() > 0 {
        let _ = write!(
            line,
            " — {} errors, {} timeouts ({})",
            s.errors,
            s.timeouts,
            s.first_error.as_deref().unwrap_or("-")
        );
    }
    eprintln!("{line}");
}

// ---------------------------------------------------------------------------------------
// The search for the highest rate held

#[derive(Serialize, Clone)]
struct Found {
    target: String,
    mode: &'static str,
    /// The highest rate held (0 when not even the first step was).
    rate: f64,
    /// That step's sample.
    at: Option<Sample>,
    /// The lowest rate tried that was not held.
    failed_at: Option<f64>,
}

fn held(s: &Sample, rate: f64, bound_us: f64) -> bool {
    s.failed() == 0 && s.p99_us < bound_us && s.achieved_rps >= 0.95 * rate
}

async fn search(t: &Arc<Target>, stream: bool, args: &Args, samples: &mut Vec<Sample>) -> Found {
    let bound = args.search_p99_ms * 1000.0;
    let dur = secs(args.search_duration);
    let step = |rate: f64| {
        let t = t.clone();
        async move {
            let s = run("search", 0, &t, Load::Open(rate), stream, dur, args).await;
            progress(&s, "search · ");
            s
        }
    };
    let mut best: Option<(f64, Sample)> = None;
    let mut bad = None;
    let mut rate = args.search_start;
    while rate <= args.search_max {
        let s = step(rate).await;
        samples.push(s.clone());
        if held(&s, rate, bound) {
            best = Some((rate, s));
            rate *= 2.0;
        } else {
            bad = Some(rate);
            break;
        }
    }
    if let Some(mut hi) = bad {
        let mut lo = best.as_ref().map_or(0.0, |b| b.0);
        for _ in 0..args.search_bisect {
            let mid = ((lo + hi) / 2.0).round();
            if mid <= lo || mid >= hi {
                break;
            }
            let s = step(mid).await;
            samples.push(s.clone());
            if held(&s, mid, bound) {
                lo = mid;
                best = Some((mid, s));
            } else {
                hi = mid;
            }
        }
        bad = Some(hi);
    }
    Found {
        target: t.name.clone(),
        mode: mode_label(stream),
        rate: best.as_ref().map_or(0.0, |b| b.0),
        at: best.map(|b| b.1),
        failed_at: bad,
    }
}

// ---------------------------------------------------------------------------------------
// Reporting

fn group(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("−{out}")
    } else {
        out
    }
}

/// Microseconds, or milliseconds and seconds when large; signed ("−" for negatives).
fn fmt_us(v: f64) -> String {
    let sign = if v < 0.0 { "−" } else { "" };
    let a = v.abs();
    if a < 10_000.0 {
        format!("{sign}{} µs", group(a.round() as i64))
    } else if a < 1_000_000.0 {
        format!("{sign}{:.1} ms", a / 1000.0)
    } else {
        format!("{sign}{:.2} s", a / 1_000_000.0)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) / 2]
}

/// The median over rounds of each metric of one target and case.
struct Summary {
    achieved: f64,
    p50: f64,
    p99: f64,
    max: f64,
    ttft50: Option<f64>,
    ttft99: Option<f64>,
    failed: u64,
    total: u64,
}

fn summarize(samples: &[&Sample]) -> Summary {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(|s| f(s)).collect());
    let mo = |f: &dyn Fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(|s| f(s)).collect();
        (!v.is_empty()).then(|| median(v))
    };
    Summary {
        achieved: m(&|s| s.achieved_rps),
        p50: m(&|s| s.p50_us),
        p99: m(&|s| s.p99_us),
        max: m(&|s| s.max_us),
        ttft50: mo(&|s| s.ttft_p50_us),
        ttft99: mo(&|s| s.ttft_p99_us),
        failed: samples.iter().map(|s| s.failed()).sum(),
        total: samples.iter().map(|s| s.ok + s.failed()).sum(),
    }
}

fn ratio(other: f64, ours: f64) -> String {
    if ours <= 0.0 {
        "— (≤ 0 added)".into()
    } else {
        format!("{:.0}x", other / ours)
    }
}

fn report(
    targets: &[Arc<Target>],
    cases: &[(Load, bool)],
    samples: &[Sample],
    found: &[Found],
    args: &Args,
) -> String {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let base = names[0];
    let proxies = &names[1..];
    // The phase a proxy was measured in, and so the baseline it is compared with.
    let group_of = |proxy: &str| {
        if args.isolate {
            proxy.to_string()
        } else {
            "all".to_string()
        }
    };
    let get_in = |group: &str, target: &str, load: Load, stream: bool| {
        let v: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.phase == "case"
                    && s.group == group
                    && s.target == target
                    && s.load == load.label()
                    && s.mode == mode_label(stream)
            })
            .collect();
        summarize(&v)
    };
    let get =
        |target: &str, load: Load, stream: bool| get_in(&group_of(target), target, load, stream);
    let mut out = String::new();

    // Added latency.
    let _ = writeln!(
        out,
        "**Added latency** (proxy − {base}; each target's percentile is the median of {} rounds):\n",
        args.rounds
    );
    let mut head = "| load | mode |".to_string();
    let mut rule = "| --- | --- |".to_string();
    for p in proxies {
        let _ = write!(head, " {p} added p50 | {p} added p99 |");
        rule.push_str(" ---: | ---: |");
    }
    if proxies.len() >= 2 {
        let _ = write!(head, " {} ÷ {} (p99) |", proxies[1], proxies[0]);
        rule.push_str(" ---: |");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for &(load, stream) in cases {
        let mut row = format!("| {} | {} |", load.label(), mode_label(stream));
        let mut added99 = Vec::new();
        for p in proxies {
            let b = get_in(&group_of(p), base, load, stream);
            let s = get(p, load, stream);
            let flag = if s.failed > 0 { " ⚠" } else { "" };
            let _ = write!(
                row,
                " {} | {}{flag} |",
                fmt_us(s.p50 - b.p50),
                fmt_us(s.p99 - b.p99)
            );
            added99.push(s.p99 - b.p99);
        }
        if added99.len() >= 2 {
            let _ = write!(row, " {} |", ratio(added99[1], added99[0]));
        }
        let _ = writeln!(out, "{row}");
    }

    // Added time to first token.
    if cases.iter().any(|c| c.1) {
        let _ = writeln!(out, "\n**Added time to first token** (streams):\n");
        let mut head = "| load |".to_string();
        let mut rule = "| --- |".to_string();
        for p in proxies {
            let _ = write!(head, " {p} added TTFT p50 | {p} added TTFT p99 |");
            rule.push_str(" ---: | ---: |");
        }
        if proxies.len() >= 2 {
            let _ = write!(head, " {} ÷ {} (TTFT p99) |", proxies[1], proxies[0]);
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for &(load, stream) in cases.iter().filter(|c| c.1) {
            let mut row = format!("| {} |", load.label());
            let mut added = Vec::new();
            for p in proxies {
                let b = get_in(&group_of(p), base, load, stream);
                let s = get(p, load, stream);
                let d50 = s.ttft50.unwrap_or(f64::NAN) - b.ttft50.unwrap_or(f64::NAN);
                let d99 = s.ttft99.unwrap_or(f64::NAN) - b.ttft99.unwrap_or(f64::NAN);
                let _ = write!(row, " {} | {} |", fmt_us(d50), fmt_us(d99));
                added.push(d99);
            }
            if added.len() >= 2 {
                let _ = write!(row, " {} |", ratio(added[1], added[0]));
            }
            let _ = writeln!(out, "{row}");
        }
    }

    // Highest rate held.
    if !found.is_empty() {
        let _ = writeln!(
            out,
            "\n**Highest rate held** with p99 < {} ms, no errors and ≥ 95 % of the rate achieved ({} s steps, doubling from {} req/s, then {} bisections; p99 at that rate in brackets):\n",
            args.search_p99_ms, args.search_duration, args.search_start, args.search_bisect
        );
        let mut head = "| mode |".to_string();
        let mut rule = "| --- |".to_string();
        for n in &names {
            let _ = write!(head, " {n} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for stream in [false, true] {
            if !found.iter().any(|f| f.mode == mode_label(stream)) {
                continue;
            }
            let mut row = format!("| {} |", mode_label(stream));
            for n in &names {
                match found
                    .iter()
                    .find(|f| f.target == *n && f.mode == mode_label(stream))
                {
                    Some(f) => {
                        let p99 = f.at.as_ref().map_or("-".into(), |s| fmt_us(s.p99_us));
                        let cap = if f.failed_at.is_none() {
                            " (search max)"
                        } else {
                            ""
                        };
                        let _ = write!(
                            row,
                            " {} req/s ({p99}){cap} |",
                            group(f.rate.round() as i64)
                        );
                    }
                    None => row.push_str(" - |"),
                }
            }
            let _ = writeln!(out, "{row}");
        }
    }

    // Every target, raw.
    let _ = writeln!(
        out,
        "\n**Every target** (median of {} rounds; failed = errors + timeouts over all rounds):\n",
        args.rounds
    );
    let _ = writeln!(
        out,
        "| load | mode | target | achieved req/s | p50 | p99 | max | TTFT p50 | TTFT p99 | failed |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    // (label, phase, target): with --isolate, the baseline once per phase.
    let rows: Vec<(String, String, &str)> = if args.isolate {
        proxies
            .iter()
            .flat_map(|p| {
                [
                    (format!("{base} ({p} phase)"), p.to_string(), base),
                    (p.to_string(), p.to_string(), *p),
                ]
            })
            .collect()
    } else {
        names
            .iter()
            .map(|n| (n.to_string(), "all".to_string(), *n))
            .collect()
    };
    for &(load, stream) in cases {
        for (n, phase, target) in &rows {
            let s = get_in(phase, target, load, stream);
            let o = |v: Option<f64>| v.map_or("-".into(), fmt_us);
            let _ = writeln!(
                out,
                "| {} | {} | {n} | {} | {} | {} | {} | {} | {} | {} / {} |",
                load.label(),
                mode_label(stream),
                group(s.achieved.round() as i64),
                fmt_us(s.p50),
                fmt_us(s.p99),
                fmt_us(s.max),
                o(s.ttft50),
                o(s.ttft99),
                group(s.failed as i64),
                group(s.total as i64)
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------

fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

async fn check(targets: &[Arc<Target>]) -> Result<()> {
    for t in targets {
        for stream in [false, true] {
            let r = request(t, stream, Instant::now()).await;
            match r {
                Ok((total, first)) => eprintln!(
                    "check · {} · {}: ok in {}{}",
                    t.name,
                    mode_label(stream),
                    fmt_us(total.as_nanos() as f64 / 1000.0),
                    first.map_or(String::new(), |f| format!(
                        ", first token {}",
                        fmt_us(f.as_nanos() as f64 / 1000.0)
                    ))
                ),
                Err(e) => bail!("check · {} · {}: {e}", t.name, mode_label(stream)),
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(main_async(args))
}

async fn main_async(args: Args) -> Result<()> {
    let targets = args
        .targets
        .iter()
        .map(|spec| Target::parse(spec, &args).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    check(&targets).await?;
    if args.check {
        return Ok(());
    }
    let modes: Vec<bool> = match args.modes.as_str() {
        "both" => vec![false, true],
        "stream" => vec![true],
        "plain" | "non-stream" => vec![false],
        other => bail!("--modes {other:?}: both, stream or plain"),
    };
    let mut cases = Vec::new();
    for load in std::iter::once(Load::Closed(1)).chain(args.rates.iter().map(|&r| Load::Open(r))) {
        for &stream in &modes {
            cases.push((load, stream));
        }
    }

    // Phases: every target at once, or (--isolate) the baseline with one proxy at a time.
    let phases: Vec<(String, Vec<Arc<Target>>)> = if args.isolate {
        targets[1..]
            .iter()
            .map(|p| (p.name.clone(), vec![targets[0].clone(), p.clone()]))
            .collect()
    } else {
        vec![("all".to_string(), targets.clone())]
    };
    let mut samples = Vec::new();
    let mut found = Vec::new();
    let dur = secs(args.duration);
    for (n, (group, phase)) in phases.iter().enumerate() {
        if phases.len() > 1 {
            eprintln!("phase {}/{} · {group}", n + 1, phases.len());
        }
        for t in phase {
            for &stream in &modes {
                eprintln!("warm-up · {} · {}", t.name, mode_label(stream));
                let (_, s) = closed_loop(t, stream, 4, secs(args.warmup)).await;
                if s.ok == 0 || !s.errors.is_empty() {
                    bail!(
                        "warm-up of {} ({}) failed: {:?}",
                        t.name,
                        mode_label(stream),
                        s.errors
                    );
                }
            }
        }
        for round in 1..=args.rounds {
            for &(load, stream) in &cases {
                // Rotate the order each round, so no target always runs first or last.
                for i in 0..phase.len() {
                    let t = &phase[(i + round - 1) % phase.len()];
                    let mut s = run("case", round, t, load, stream, dur, &args).await;
                    progress(&s, &format!("round {round}/{} · ", args.rounds));
                    s.group = group.clone();
                    samples.push(s);
                }
            }
        }
        if args.search {
            for &stream in &modes {
                // The baseline's highest rate is searched once, in the first phase.
                for t in phase.iter().filter(|t| n == 0 || t.name != targets[0].name) {
                    found.push(search(t, stream, &args, &mut samples).await);
                }
            }
        }
    }

    if let Some(path) = &args.json {
        let doc = serde_json::json!({"samples": samples, "highest_rate_held": found});
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    let md = report(&targets, &cases, &samples, &found, &args);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md)?;
    }
    println!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_chunks() {
        assert!(has_content(
            br#"{"choices":[{"index":0,"delta":{"content":"You"}}]}"#
        ));
        assert!(!has_content(
            br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#
        ));
        assert!(!has_content(br#"{"choices":[],"usage":{}}"#));
        assert!(!has_content(b"[DONE]"));
    }

    #[test]
    fn formatting() {
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(-12), "−12");
        assert_eq!(fmt_us(87.4), "87 µs");
        assert_eq!(fmt_us(-1234.0), "−1,234 µs");
        assert_eq!(fmt_us(25_300.0), "25.3 ms");
        assert_eq!(fmt_us(2_500_000.0), "2.50 s");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.0);
    }
}

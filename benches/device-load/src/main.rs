//! The device connection benchmark's client (benches/devices.sh): binds `--count` devices to
//! an assistant the way a device and its owner do (handshake, code entered, handshake again
//! for the channel's credentials), then opens one channel per device and says hello on it —
//! a WebSocket, or an MQTT connection with its subscription — from several loopback source
//! addresses (one address has ~28,000 ephemeral ports), and holds them all open while it
//! reads the server's resident memory. Prints one JSON line per step.

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use futures::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{Codec, Connect, Login, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::Framed;

#[derive(Parser)]
struct Args {
    /// bastion's base URL.
    #[arg(long)]
    base: String,
    /// An access token of someone with devices.manage on the assistant.
    #[arg(long)]
    token: String,
    #[arg(long)]
    assistant: String,
    /// Connections to hold at each step, comma-separated (e.g. 1000,10000).
    #[arg(long, value_delimiter = ',')]
    steps: Vec<usize>,
    /// `ws` or `mqtt`.
    #[arg(long, default_value = "ws")]
    transport: String,
    /// The server's process id, whose VmRSS is read.
    #[arg(long)]
    pid: u32,
    /// Loopback source addresses to spread connections over (127.0.0.1 to 127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Requests and connection attempts in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to hold each step before measuring (the server settles).
    #[arg(long, default_value_t = 3)]
    settle: u64,
}

/// A bound device's channel credentials.
struct Creds {
    mac: String,
    ws_url: String,
    token: String,
    mqtt: Option<Value>,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS")
}

fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

async fn bind_one(http: &reqwest::Client, a: &Args, n: usize) -> anyhow::Result<Creds> {
    let b = uuid::Uuid::new_v4().into_bytes();
    let mac = format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0],
        b[1],
        b[2],
        (n >> 8) as u8,
        n as u8
    );
    let client_id = uuid::Uuid::new_v4().to_string();
    let handshake = |secret: Option<String>| {
        let mut r = http
            .post(format!("{}/ota/", a.base))
            .header("Device-Id", &mac)
            .header("Client-Id", &client_id)
            .json(&json!({"application": {"version": "1.6.0"}, "board": {"type": "bench"}}));
        if let Some(s) = secret {
            r = r.header("Device-Secret", s);
        }
        r.send()
    };
    let first: Value = handshake(None).await?.error_for_status()?.json().await?;
    let secret = first["device"]["secret"].as_str().map(str::to_string);
    let code = first["activation"]["code"].as_str().context("no code")?;
    http.post(format!(
        "{}/api/v1/assistants/{}/devices/bind",
        a.base, a.assistant
    ))
    .bearer_auth(&a.token)
    .json(&json!({"code": code, "confirm": true}))
    .send()
    .await?
    .error_for_status()?;
    let creds: Value = handshake(secret).await?.error_for_status()?.json().await?;
    Ok(Creds {
        mac,
        ws_url: creds["websocket"]["url"]
            .as_str()
            .context("no websocket")?
            .to_string(),
        token: creds["websocket"]["token"]
            .as_str()
            .context("no token")?
            .to_string(),
        mqtt: creds.get("mqtt").cloned(),
    })
}

async fn dial(addr: SocketAddr, source: IpAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let s = socket.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

const HELLO: &str = r#"{"type":"hello","version":1,"features":{"mcp":false},"transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}"#;

/// A WebSocket channel after hello, held by a task until `stop` closes.
async fn open_ws(c: &Creds, source: IpAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut req = c.ws_url.as_str().into_client_request()?;
    let host = req.uri().host().context("host")?.to_string();
    let port = req.uri().port_u16().unwrap_or(80);
    let h = req.headers_mut();
    h.insert("Authorization", format!("Bearer {}", c.token).parse()?);
    h.insert("Device-Id", c.mac.parse()?);
    h.insert("Protocol-Version", "1".parse()?);
    let stream = dial(SocketAddr::new(host.parse()?, port), source).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    ws.send(Message::Text(HELLO.into())).await?;
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("\"hello\"") => {}
        other => bail!("no hello answer: {other:?}"),
    }
    Ok(tokio::spawn(async move {
        // Idle: answer pings, until the connection goes.
        while let Some(Ok(_)) = ws.next().await {}
    }))
}

/// An MQTT connection, subscribed, after hello.
async fn open_mqtt(c: &Creds, source: IpAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let m = c
        .mqtt
        .as_ref()
        .context("no mqtt section: is mqtt_bind set?")?;
    let s = |k: &str| m[k].as_str().map(str::to_string).context("mqtt field");
    let addr: SocketAddr = s("endpoint")?.parse()?;
    let stream = dial(addr, source).await?;
    let codec = Codec {
        max_incoming_size: 64 * 1024,
        max_outgoing_size: 64 * 1024,
    };
    let mut conn = Framed::with_capacity(stream, codec, 1024);
    let mut connect = Connect::new(s("client_id")?);
    connect.keep_alive = 0;
    connect.login = Some(Login::new(s("username")?, s("password")?));
    conn.send(Packet::Connect(connect)).await?;
    match conn.next().await {
        Some(Ok(Packet::ConnAck(a)))
            if a.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {}
        other => bail!("connack: {other:?}"),
    }
    conn.send(Packet::Subscribe(Subscribe::new(
        s("subscribe_topic")?,
        QoS::AtMostOnce,
    )))
    .await?;
    conn.send(Packet::Publish(Publish::new(
        s("publish_topic")?,
        QoS::AtMostOnce,
        Bytes::from_static(HELLO.as_bytes()).to_vec(),
    )))
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.next()).await {
            Ok(Some(Ok(Packet::Publish(p)))) if p.payload.windows(7).any(|w| w == b"\"hello\"") => {
                break
            }
            Ok(Some(Ok(_))) => continue,
            other => bail!("no hello answer: {other:?}"),
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(_)) = conn.next().await {}
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(Args::parse());
    raise_fd_limit();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let total = a.steps.iter().copied().max().unwrap_or(0);
    let baseline = rss_kib(a.pid)?;
    println!("{}", json!({"step": "start", "server_rss_kib": baseline}));

    // Bind the devices.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(a.concurrency));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let (http, a, gate) = (http.clone(), a.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _p = gate.acquire().await;
            bind_one(&http, &a, n).await
        }));
    }
    let mut devices = Vec::with_capacity(total);
    for t in tasks {
        devices.push(t.await??);
    }
    drop(http);
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let bound = rss_kib(a.pid)?;
    println!(
        "{}",
        json!({"step": "bound", "devices": total, "secs": started.elapsed().as_secs_f64(), "server_rss_kib": bound})
    );

    // Open channels, step by step, and measure with all of them held.
    let mut held = Vec::with_capacity(total);
    let devices = Arc::new(devices);
    for &step in &a.steps {
        let started = Instant::now();
        let mut opening = Vec::new();
        for i in held.len()..step {
            let (a, gate, devices) = (a.clone(), gate.clone(), devices.clone());
            opening.push(tokio::spawn(async move {
                let _p = gate.acquire().await;
                let source = IpAddr::from([127, 0, 0, 1 + (i % a.sources as usize) as u8]);
                let c = &devices[i];
                if a.transport == "mqtt" {
                    open_mqtt(c, source).await
                } else {
                    open_ws(c, source).await
                }
            }));
        }
        for t in opening {
            held.push(t.await??);
        }
        tokio::time::sleep(Duration::from_secs(a.settle)).await;
        let rss = rss_kib(a.pid)?;
        println!(
            "{}",
            json!({"step": "held", "transport": a.transport, "connections": held.len(),
                   "secs": started.elapsed().as_secs_f64(), "server_rss_kib": rss,
                   "per_connection_kib": (rss as f64 - bound as f64) / held.len() as f64})
        );
    }
    for h in held {
        h.abort();
    }
    Ok(())
}

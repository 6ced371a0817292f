//! The egress guard under attack. Each test is an SSRF attempt that would reach a private
//! address (or the local test server) if the guard were removed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bastion_tools::egress::{
    self, check, ClientOptions, EgressError, EgressPolicy, Resolve, StaticResolver, SystemResolver,
};
use bastion_tools::fetch::{fetch, FetchError, FetchLimits};
use futures::future::BoxFuture;
use url::Url;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn no_private() -> EgressPolicy {
    EgressPolicy::default()
}

fn allow(hosts: &[&str]) -> EgressPolicy {
    EgressPolicy {
        allowed_private_hosts: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

/// Fails fast if a guard-less fetch tried to connect somewhere unreachable.
fn quick() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_secs(3),
        ..FetchLimits::default()
    }
}

/// URLs naming a private address directly, each with the address the guard must refuse.
const PRIVATE_LITERALS: &[(&str, &str)] = &[
    ("http://127.0.0.1/", "127.0.0.1"),
    ("http://[::1]/", "::1"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254",
    ),
    ("http://10.0.0.1/", "10.0.0.1"),
    ("http://172.16.0.1/", "172.16.0.1"),
    ("http://192.168.1.1/", "192.168.1.1"),
    ("http://100.64.0.1/", "100.64.0.1"),
    ("http://0.0.0.0/", "0.0.0.0"),
    // Other spellings of 127.0.0.1 the WHATWG parser normalizes.
    ("http://2130706433/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://0x7f.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("https://127.0.0.1:8443/", "127.0.0.1"),
    // IPv6 forms that carry a private IPv4 address.
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1::"),
    // The IPv6 cloud metadata address and link-local.
    ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ("http://[fe80::1]/", "fe80::1"),
];

#[tokio::test]
async fn private_ip_literals_are_refused_by_check() {
    for (url, addr) in PRIVATE_LITERALS {
        let parsed = Url::parse(url).unwrap();
        match check(&no_private(), &SystemResolver, &parsed).await {
            Err(EgressError::Refused { addr: refused, .. }) => {
                assert_eq!(refused, addr.parse::<IpAddr>().unwrap(), "{url}");
            }
            other => panic!("{url}: expected Refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn private_ip_literals_are_refused_by_fetch() {
    for (url, _) in PRIVATE_LITERALS {
        match fetch(&no_private(), &SystemResolver, url, &quick()).await {
            Err(FetchError::Egress(EgressError::Refused { .. })) => {}
            other => panic!("{url}: expected an egress refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn refusal_says_what_and_why() {
    let url = Url::parse("http://127.0.0.1/").unwrap();
    let err = check(&no_private(), &SystemResolver, &url)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "127.0.0.1 is not a public address (loopback); an admin can allow this exact host"
    );
    let url = Url::parse("http://[::ffff:169.254.169.254]/").unwrap();
    let err = check(&no_private(), &SystemResolver, &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("169.254.169.254") && err.contains("link-local"),
        "{err}"
    );
}

#[tokio::test]
async fn localhost_via_the_system_resolver_is_refused() {
    let url = Url::parse("http://localhost:9/").unwrap();
    match check(&no_private(), &SystemResolver, &url).await {
        Err(EgressError::Refused { host, addr, .. }) => {
            assert_eq!(host, "localhost");
            assert!(addr.is_loopback(), "{addr}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused() {
    let dns = StaticResolver::new().with("rebind.test", [LOOPBACK]);
    let url = Url::parse("http://rebind.test/").unwrap();
    let err = check(&no_private(), &dns, &url).await.unwrap_err();
    assert!(
        matches!(&err, EgressError::Refused { addr, .. } if *addr == LOOPBACK),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "rebind.test resolves to 127.0.0.1, which is not a public address (loopback); \
         an admin can allow this exact host"
    );
}

#[tokio::test]
async fn a_mixed_public_and_private_answer_is_refused() {
    let public: IpAddr = "93.184.215.14".parse().unwrap();
    let private: IpAddr = "10.0.0.1".parse().unwrap();
    for answer in [[public, private], [private, public]] {
        let dns = StaticResolver::new().with("mixed.test", answer);
        let url = Url::parse("http://mixed.test/").unwrap();
        match check(&no_private(), &dns, &url).await {
            Err(EgressError::Refused { addr, .. }) => assert_eq!(addr, private),
            other => panic!("expected Refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn public_destinations_pass_with_their_addresses() {
    let public: IpAddr = "93.184.215.14".parse().unwrap();
    let dns = StaticResolver::new().with("example.test", [public]);
    let url = Url::parse("https://Example.TEST/page?q=1").unwrap();
    let dest = check(&no_private(), &dns, &url).await.unwrap();
    assert_eq!(dest.host, "example.test");
    assert_eq!(dest.addrs, vec![SocketAddr::new(public, 443)]);

    let url = Url::parse("http://[2606:4700:4700::1111]:8080/").unwrap();
    let dest = check(&no_private(), &dns, &url).await.unwrap();
    assert_eq!(dest.host, "2606:4700:4700::1111");
    assert_eq!(
        dest.addrs,
        vec!["[2606:4700:4700::1111]:8080".parse().unwrap()]
    );
}

#[tokio::test]
async fn other_schemes_are_refused() {
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/",
        "gopher://127.0.0.1:6379/_INFO",
        "ws://example.com/",
        "data:text/plain,hi",
    ] {
        let parsed = Url::parse(url).unwrap();
        let err = check(&no_private(), &SystemResolver, &parsed)
            .await
            .unwrap_err();
        assert!(matches!(err, EgressError::Scheme(_)), "{url}: {err:?}");
        let err = fetch(&no_private(), &SystemResolver, url, &quick())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Egress(EgressError::Scheme(_))),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn credentials_in_the_url_are_refused_without_echoing_them() {
    for url in [
        "http://user:s3cr3t@example.com/",
        "http://s3cr3t@example.com/",
        "http://:s3cr3t@example.com/",
    ] {
        let parsed = Url::parse(url).unwrap();
        let err = check(&no_private(), &SystemResolver, &parsed)
            .await
            .unwrap_err();
        assert!(matches!(err, EgressError::Credentials), "{url}: {err:?}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }
    // Even to an allowed host: the guard refuses before anything is sent.
    let (port, hits) = serve().await;
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://user:s3cr3t@127.0.0.1:{port}/ok"),
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Egress(EgressError::Credentials)),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("s3cr3t"));
    assert_eq!(hits.ok.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unresolvable_and_empty_answers_are_errors() {
    let dns = StaticResolver::new().with("empty.test", []);
    let url = Url::parse("http://empty.test/").unwrap();
    assert!(matches!(
        check(&no_private(), &dns, &url).await,
        Err(EgressError::NoAddresses { .. })
    ));
    let url = Url::parse("http://unknown.test/").unwrap();
    assert!(matches!(
        check(&no_private(), &dns, &url).await,
        Err(EgressError::Resolve { .. })
    ));
}

#[tokio::test]
async fn the_allowlist_is_exact() {
    let dns = StaticResolver::new().with("localhost", [LOOPBACK]);
    let policy = allow(&["127.0.0.1"]);
    for ok in ["http://127.0.0.1/", "http://2130706433/"] {
        let url = Url::parse(ok).unwrap();
        assert!(check(&policy, &dns, &url).await.is_ok(), "{ok}");
    }
    for refused in [
        "http://localhost/",
        "http://127.0.0.2/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let url = Url::parse(refused).unwrap();
        assert!(
            matches!(
                check(&policy, &dns, &url).await,
                Err(EgressError::Refused { .. })
            ),
            "{refused}"
        );
    }
}

// --- against a local server -------------------------------------------------------------

#[derive(Clone, Default)]
struct Hits {
    secret: Arc<AtomicUsize>,
    ok: Arc<AtomicUsize>,
    looped: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct App {
    port: u16,
    hits: Hits,
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

async fn serve() -> (u16, Hits) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Hits::default();
    let app = Router::new()
        .route(
            "/ok",
            get(|State(app): State<App>| async move {
                app.hits.ok.fetch_add(1, Ordering::SeqCst);
                "hello"
            }),
        )
        .route(
            "/secret",
            get(|State(app): State<App>| async move {
                app.hits.secret.fetch_add(1, Ordering::SeqCst);
                "the metadata token"
            }),
        )
        .route(
            "/go",
            get(|State(app): State<App>| async move {
                redirect(format!("http://localhost:{}/secret", app.port))
            }),
        )
        .route(
            "/hop",
            get(|State(app): State<App>| async move {
                redirect(format!("http://127.0.0.1:{}/ok", app.port))
            }),
        )
        .route("/relative", get(|| async { redirect("ok".into()) }))
        .route(
            "/loop",
            get(|State(app): State<App>| async move {
                app.hits.looped.fetch_add(1, Ordering::SeqCst);
                redirect("/loop".into())
            }),
        )
        .route("/big", get(|| async { "a".repeat(1024 * 1024) }))
        .route(
            "/bin",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    vec![0u8; 64],
                )
            }),
        )
        .route(
            "/ld",
            get(|| async { ([(header::CONTENT_TYPE, "application/ld+json")], "{}") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such page") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .with_state(App {
            port,
            hits: hits.clone(),
        });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, hits)
}

#[tokio::test]
async fn an_allowed_exact_host_is_fetched() {
    let (port, hits) = serve().await;
    let got = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/ok"),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "hello");
    assert!(!got.truncated);
    assert!(
        got.content_type.starts_with("text/plain"),
        "{}",
        got.content_type
    );
    assert_eq!(hits.ok.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_local_server_is_refused_without_the_allowlist() {
    let (port, hits) = serve().await;
    let err = fetch(
        &no_private(),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/secret"),
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Egress(EgressError::Refused { .. })),
        "{err:?}"
    );
    assert_eq!(hits.secret.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_loopback_is_refused() {
    let (port, hits) = serve().await;
    // localhost really is the server: only the per-hop check stands in the way.
    let dns = StaticResolver::new().with("localhost", [LOOPBACK]);
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &dns,
        &format!("http://127.0.0.1:{port}/go"),
        &quick(),
    )
    .await
    .unwrap_err();
    match &err {
        FetchError::Egress(EgressError::Refused { host, .. }) => assert_eq!(host, "localhost"),
        other => panic!("expected an egress refusal, got {other:?}"),
    }
    assert_eq!(hits.secret.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_the_same_allowed_host_is_followed() {
    let (port, hits) = serve().await;
    for path in ["hop", "relative"] {
        let got = fetch(
            &allow(&["127.0.0.1"]),
            &SystemResolver,
            &format!("http://127.0.0.1:{port}/{path}"),
            &quick(),
        )
        .await
        .unwrap();
        assert_eq!(got.body, "hello");
        assert_eq!(got.final_url, format!("http://127.0.0.1:{port}/ok"));
    }
    assert_eq!(hits.ok.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn too_many_redirects_are_refused() {
    let (port, hits) = serve().await;
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/loop"),
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects(3)), "{err:?}");
    // The first request and three redirects, then it stops.
    assert_eq!(hits.looped.load(Ordering::SeqCst), 4);

    let no_redirects = FetchLimits {
        max_redirects: 0,
        ..quick()
    };
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/hop"),
        &no_redirects,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects(0)), "{err:?}");
    assert_eq!(hits.ok.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_large_body_is_truncated() {
    let (port, _) = serve().await;
    let limits = FetchLimits {
        max_bytes: 1024,
        ..quick()
    };
    let got = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/big"),
        &limits,
    )
    .await
    .unwrap();
    assert!(got.truncated);
    assert_eq!(got.body.len(), 1024);
    assert!(got.body.bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn binary_content_is_refused() {
    let (port, _) = serve().await;
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/bin"),
        &quick(),
    )
    .await
    .unwrap_err();
    match err {
        FetchError::ContentType(ct) => assert_eq!(ct, "application/octet-stream"),
        other => panic!("expected ContentType, got {other:?}"),
    }
    let got = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/ld"),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(got.body, "{}");
}

#[tokio::test]
async fn a_404_is_a_result_not_an_error() {
    let (port, _) = serve().await;
    let got = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/missing"),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(got.status, 404);
    assert_eq!(got.body, "no such page");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let (port, _) = serve().await;
    let limits = FetchLimits {
        timeout: Duration::from_millis(300),
        ..FetchLimits::default()
    };
    let started = std::time::Instant::now();
    let err = fetch(
        &allow(&["127.0.0.1"]),
        &SystemResolver,
        &format!("http://127.0.0.1:{port}/slow"),
        &limits,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// --- pinning ----------------------------------------------------------------------------

/// Counts lookups, so a test can see that nobody resolved the name a second time.
struct Counting {
    inner: StaticResolver,
    calls: AtomicUsize,
}

impl Resolve for Counting {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve(host, port)
    }
}

#[tokio::test]
async fn the_connection_goes_to_the_checked_address() {
    let (port, hits) = serve().await;
    // pinned.test exists only in this resolver: if reqwest looked it up itself, the fetch
    // would fail.
    let dns = Counting {
        inner: StaticResolver::new().with("pinned.test", [LOOPBACK]),
        calls: AtomicUsize::new(0),
    };
    let got = fetch(
        &allow(&["pinned.test"]),
        &dns,
        &format!("http://pinned.test:{port}/ok"),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(got.body, "hello");
    assert_eq!(dns.calls.load(Ordering::SeqCst), 1);
    assert_eq!(hits.ok.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pinned_client_reaches_no_other_name() {
    let (port, hits) = serve().await;
    let dns = StaticResolver::new().with("pinned.test", [LOOPBACK]);
    let url = Url::parse(&format!("http://pinned.test:{port}/ok")).unwrap();
    let dest = check(&allow(&["pinned.test"]), &dns, &url).await.unwrap();
    let client = egress::pinned_client(&dest, ClientOptions::default()).unwrap();
    let body = client
        .get(dest.url.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello");
    // localhost resolves on this machine, but not through a pinned client.
    let other = client
        .get(format!("http://localhost:{port}/secret"))
        .send()
        .await;
    assert!(other.is_err(), "{other:?}");
    assert_eq!(hits.secret.load(Ordering::SeqCst), 0);
}

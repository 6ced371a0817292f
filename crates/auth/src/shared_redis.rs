//! The one Redis connection that the attempt limiter and the nonce store share across the
//! nodes of a cluster, set up with short timeouts: these sit on the sign-in path, and a hung
//! Redis must turn into a prompt, typed error (the server's 503), not a request that waits.

pub use redis::aio::ConnectionManager;
pub use redis::RedisError;

use redis::aio::ConnectionManagerConfig;
use std::time::Duration;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for its reply.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection attempts after the connection drops, before a command fails.
pub const RECONNECT_RETRIES: usize = 2;

/// Connects to `url` (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS if the
/// redis crate is built with it). Eager: a wrong URL or a Redis that is down fails here, at
/// start-up, rather than at the first sign-in. The manager reconnects on its own afterwards.
pub async fn connect(url: &str) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}

/// The Redis the tests use (it runs on developer machines and in CI).
#[cfg(test)]
pub(crate) const TEST_URL: &str = "redis://127.0.0.1:6379/";

/// Test support: a TCP relay to the test Redis that can be cut, to see how callers behave
/// when Redis goes away under them.
/// A unique key prefix per test, so tests run in parallel and leave nothing behind.
#[cfg(test)]
pub(crate) struct TestPrefix(pub String);

#[cfg(test)]
impl TestPrefix {
    pub fn new() -> TestPrefix {
        TestPrefix(format!(
            "bastion-test:{}:",
            hex::encode(rand::random::<[u8; 8]>())
        ))
    }
}

#[cfg(test)]
impl Drop for TestPrefix {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(TEST_URL) {
            if let Ok(mut c) = client.get_connection() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}*", self.0))
                    .query(&mut c)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query(&mut c);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod relay {
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    /// Cuts the relay (closes its connections and stops listening) when dropped or cut.
    pub struct Relay {
        pub url: String,
        cut: watch::Sender<bool>,
    }

    impl Relay {
        pub fn cut(&self) {
            let _ = self.cut.send(true);
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            self.cut();
        }
    }

    pub async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (cut, mut cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cut_rx.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { return };
                        let mut cut_rx = cut_rx.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect("127.0.0.1:6379").await else {
                                return;
                            };
                            tokio::select! {
                                _ = cut_rx.changed() => {}
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            }
                        });
                    }
                }
            }
        });
        Relay {
            url: format!("redis://{addr}/"),
            cut,
        }
    }
}

//! bastion's MQTT endpoint for devices, at the protocol level: MQTT 3.1.1 packets (the
//! `mqttbytes` codec of rumqttc) and bastion's rules. It is a device endpoint, not a broker:
//! a connection is one authenticated device, which may publish on its own `up` topic and
//! subscribe to its own `down` topic and nothing else. Nothing one device sends ever reaches
//! another: what it publishes goes to bastion, and bastion publishes to it alone.
//!
//! A publish outside its topic, a QoS 2 publish or a second CONNECT ends the connection; a
//! subscription to any other filter (wildcards included) is refused in the SUBACK. A silent
//! connection is closed after one and a half keep-alive periods.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use rumqttc::mqttbytes::QoS;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

pub use rumqttc::mqttbytes::v4::ConnectReturnCode as Refusal;

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest packet a device may send (and bastion sends).
    pub max_packet: usize,
    /// CONNECT must arrive this soon.
    pub connect_timeout: Duration,
    /// The keep-alive a device that asks for none (or for more) gets.
    pub max_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            max_keep_alive: Duration::from_secs(600),
        }
    }
}

/// What a device presented in its CONNECT.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// The two topics of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Where the device publishes (bastion reads).
    pub up: String,
    /// Where the device subscribes (bastion publishes).
    pub down: String,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The device disconnected or closed the connection.
    Left,
    /// bastion cut it (revoked, unbound, shutting down).
    Cut,
    /// The device broke a rule.
    Violation(&'static str),
    /// Nothing arrived within the keep-alive.
    Silent,
    /// The connection or a packet failed.
    Broken(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("no CONNECT in time")]
    Timeout,
    #[error("the first packet was not CONNECT")]
    NotConnect,
    #[error("refused: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("connection: {0}")]
    Io(String),
}

/// An authenticated connection, CONNACK sent.
pub struct Accepted<IO> {
    conn: Framed<IO, Codec>,
    topics: Topics,
    keep_alive: Duration,
    /// Whether the device subscribed to its `down` topic.
    subscribed: bool,
}

/// What happened next on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The device published this on its `up` topic.
    Up(Bytes),
    Ended(Ended),
}

fn codec(limits: &Limits) -> Codec {
    Codec {
        max_incoming_size: limits.max_packet,
        max_outgoing_size: limits.max_packet,
    }
}

/// Reads the CONNECT (within the limit's time), asks `authenticate` who it is, and answers
/// CONNACK: accepted with the device's topics and `grant`, or refused.
pub async fn accept<IO, T, F, Fut>(
    io: IO,
    limits: &Limits,
    authenticate: F,
) -> Result<(Accepted<IO>, T), AcceptError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Credentials) -> Fut,
    Fut: Future<Output = Result<(Topics, T), ConnectReturnCode>>,
{
    // A small read buffer: it grows for a large packet, and an idle device costs little.
    let mut conn = Framed::with_capacity(io, codec(limits), 512);
    let first = tokio::time::timeout(limits.connect_timeout, conn.next())
        .await
        .map_err(|_| AcceptError::Timeout)?;
    let connect = match first {
        Some(Ok(Packet::Connect(c))) => c,
        Some(Err(e)) => return Err(AcceptError::Io(e.to_string())),
        _ => return Err(AcceptError::NotConnect),
    };
    let login = connect.login.clone();
    let creds = Credentials {
        client_id: connect.client_id.clone(),
        username: login.as_ref().map(|l| l.username.clone()),
        password: login.map(|l| l.password),
    };
    let keep_alive = match connect.keep_alive {
        0 => limits.max_keep_alive,
        s => Duration::from_secs(u64::from(s)).min(limits.max_keep_alive),
    };
    match authenticate(creds).await {
        Ok((topics, grant)) => {
            conn.send(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            )))
            .await
            .map_err(|e| AcceptError::Io(e.to_string()))?;
            Ok((
                Accepted {
                    conn,
                    topics,
                    keep_alive,
                    subscribed: false,
                },
                grant,
            ))
        }
        Err(code) => {
            let _ = conn.send(Packet::ConnAck(ConnAck::new(code, false))).await;
            Err(AcceptError::Refused(code))
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Accepted<IO> {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Serves the connection until the device publishes on its `up` topic (returned) or the
    /// connection ends: what arrives on `down` meanwhile is published to the device (while
    /// it is subscribed to its `down` topic); `cut` ends it from bastion's side.
    pub async fn next<D: Into<Bytes>>(
        &mut self,
        down: &mut mpsc::Receiver<D>,
        cut: impl Future<Output = ()>,
    ) -> Event {
        let silence = self.keep_alive + self.keep_alive / 2;
        tokio::pin!(cut);
        loop {
            tokio::select! {
                _ = &mut cut => {
                    let _ = self.conn.send(Packet::Disconnect).await;
                    return Event::Ended(Ended::Cut);
                }
                out = down.recv() => match out {
                    Some(payload) if self.subscribed => {
                        let p = Publish::from_bytes(self.topics.down.clone(), QoS::AtMostOnce, payload.into());
                        if let Err(e) = self.conn.send(Packet::Publish(p)).await {
                            return Event::Ended(Ended::Broken(e.to_string()));
                        }
                    }
                    Some(_) => {}
                    None => return Event::Ended(Ended::Cut),
                },
                got = tokio::time::timeout(silence, self.conn.next()) => {
                    let packet = match got {
                        Err(_) => return Event::Ended(Ended::Silent),
                        Ok(None) => return Event::Ended(Ended::Left),
                        Ok(Some(Err(e))) => return Event::Ended(Ended::Broken(e.to_string())),
                        Ok(Some(Ok(p))) => p,
                    };
                    match self.on_packet(packet).await {
                        Ok(Some(payload)) => return Event::Up(payload),
                        Ok(None) => {}
                        Err(end) => return Event::Ended(end),
                    }
                }
            }
        }
    }

    /// One packet from the device: a payload it published on its topic, or nothing to hand on.
    async fn on_packet(&mut self, packet: Packet) -> Result<Option<Bytes>, Ended> {
        let send_err = |e: rumqttc::mqttbytes::Error| Ended::Broken(e.to_string());
        match packet {
            Packet::Publish(p) => {
                if p.topic != self.topics.up {
                    return Err(Ended::Violation("publish outside its own topic"));
                }
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        self.conn
                            .send(Packet::PubAck(PubAck::new(p.pkid)))
                            .await
                            .map_err(send_err)?;
                    }
                    QoS::ExactlyOnce => return Err(Ended::Violation("QoS 2 is not offered")),
                }
                return Ok(Some(p.payload));
            }
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|f| {
                        if f.path == self.topics.down {
                            self.subscribed = true;
                            SubscribeReasonCode::Success(QoS::AtMostOnce)
                        } else {
                            SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
                self.conn
                    .send(Packet::SubAck(SubAck::new(s.pkid, codes)))
                    .await
                    .map_err(send_err)?;
            }
            Packet::Unsubscribe(u) => {
                if u.topics.contains(&self.topics.down) {
                    self.subscribed = false;
                }
                self.conn
                    .send(Packet::UnsubAck(UnsubAck::new(u.pkid)))
                    .await
                    .map_err(send_err)?;
            }
            Packet::PingReq => {
                self.conn.send(Packet::PingResp).await.map_err(send_err)?;
            }
            Packet::Disconnect => return Err(Ended::Left),
            Packet::Connect(_) => return Err(Ended::Violation("a second CONNECT")),
            // Acknowledgements of QoS 0 publishes never come; anything else is ignored.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Connect, Login, Subscribe, SubscribeFilter};
    use rumqttc::mqttbytes::Protocol;

    fn connect(user: &str, pass: &str) -> Packet {
        let mut c = Connect::new("client-1");
        c.keep_alive = 30;
        c.login = Some(Login::new(user, pass));
        c.protocol = Protocol::V4;
        Packet::Connect(c)
    }

    fn topics() -> Topics {
        Topics {
            up: "devices/a/up".into(),
            down: "devices/a/down".into(),
        }
    }

    async fn auth(c: Credentials) -> Result<(Topics, ()), ConnectReturnCode> {
        if c.username.as_deref() == Some("a") && c.password.as_deref() == Some("right") {
            Ok((topics(), ()))
        } else {
            Err(ConnectReturnCode::BadUserNamePassword)
        }
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_in_the_connack() {
        let (client, server) = tokio::io::duplex(4096);
        let mut c = Framed::new(client, codec(&Limits::default()));
        c.send(connect("a", "wrong")).await.unwrap();
        let r = accept(server, &Limits::default(), auth).await;
        assert!(matches!(
            r,
            Err(AcceptError::Refused(ConnectReturnCode::BadUserNamePassword))
        ));
        match c.next().await {
            Some(Ok(Packet::ConnAck(a))) => {
                assert_eq!(a.code, ConnectReturnCode::BadUserNamePassword)
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_device_gets_its_own_topics_only() {
        let (client, server) = tokio::io::duplex(4096);
        let mut c = Framed::new(client, codec(&Limits::default()));
        c.send(connect("a", "right")).await.unwrap();
        let (acc, ()) = accept(server, &Limits::default(), auth).await.unwrap();
        assert!(matches!(c.next().await, Some(Ok(Packet::ConnAck(_)))));
        let mut acc = acc;
        let (down_tx, mut down_rx) = mpsc::channel::<Bytes>(4);
        let (events_tx, mut events) = mpsc::channel(4);
        let run = tokio::spawn(async move {
            loop {
                let e = acc.next(&mut down_rx, std::future::pending()).await;
                let end = matches!(e, Event::Ended(_));
                events_tx.send(e).await.unwrap();
                if end {
                    return;
                }
            }
        });
        // Its own down topic is granted, another device's and a wildcard are not.
        c.send(Packet::Subscribe(Subscribe::new_many([
            SubscribeFilter::new("devices/a/down".into(), QoS::AtMostOnce),
            SubscribeFilter::new("devices/b/down".into(), QoS::AtMostOnce),
            SubscribeFilter::new("devices/#".into(), QoS::AtMostOnce),
        ])))
        .await
        .unwrap();
        match c.next().await {
            Some(Ok(Packet::SubAck(a))) => assert_eq!(
                a.return_codes,
                vec![
                    SubscribeReasonCode::Success(QoS::AtMostOnce),
                    SubscribeReasonCode::Failure,
                    SubscribeReasonCode::Failure
                ]
            ),
            other => panic!("{other:?}"),
        }
        // What it publishes on its up topic reaches bastion; bastion's reaches it.
        let mut hi = Publish::new("devices/a/up", QoS::AtLeastOnce, b"hi".to_vec());
        hi.pkid = 1;
        c.send(Packet::Publish(hi)).await.unwrap();
        assert!(matches!(c.next().await, Some(Ok(Packet::PubAck(_)))));
        assert_eq!(
            events.recv().await.unwrap(),
            Event::Up(Bytes::from_static(b"hi"))
        );
        down_tx.send(Bytes::from_static(b"hello")).await.unwrap();
        match c.next().await {
            Some(Ok(Packet::Publish(p))) => {
                assert_eq!(
                    (p.topic.as_str(), &p.payload[..]),
                    ("devices/a/down", &b"hello"[..])
                )
            }
            other => panic!("{other:?}"),
        }
        // Publishing on another device's topic ends the connection; nothing is forwarded.
        c.send(Packet::Publish(Publish::new(
            "devices/b/down",
            QoS::AtMostOnce,
            b"x".to_vec(),
        )))
        .await
        .unwrap();
        // Nothing it published there was handed on: the next event is the end.
        assert_eq!(
            events.recv().await.unwrap(),
            Event::Ended(Ended::Violation("publish outside its own topic"))
        );
        run.await.unwrap();
    }

    #[tokio::test]
    async fn a_cut_disconnects() {
        let (client, server) = tokio::io::duplex(4096);
        let mut c = Framed::new(client, codec(&Limits::default()));
        c.send(connect("a", "right")).await.unwrap();
        let (mut acc, ()) = accept(server, &Limits::default(), auth).await.unwrap();
        let _ = c.next().await;
        let (_down_tx, mut down_rx) = mpsc::channel::<Bytes>(4);
        let ended = acc.next(&mut down_rx, async {}).await;
        assert_eq!(ended, Event::Ended(Ended::Cut));
        assert!(matches!(c.next().await, Some(Ok(Packet::Disconnect))));
    }
}

//! The bytes a device sends to bastion's MQTT endpoint: the CONNECT (credentials asked of a
//! stand-in authenticator), then packets until the input ends. Nothing but the device's own
//! `up` topic is ever handed on.
#![no_main]
use bastion_devices::mqtt::{accept, Event, Limits, Refusal, Topics};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let io = tokio::io::join(data, tokio::io::sink());
        let accepted = accept(io, &Limits::default(), |c| async move {
            if c.client_id == "bastion-d" && c.password.as_deref() == Some("bdt_ok") {
                Ok((
                    Topics {
                        up: "devices/d/up".into(),
                        down: "devices/d/down".into(),
                    },
                    (),
                ))
            } else {
                Err(Refusal::NotAuthorized)
            }
        })
        .await;
        let Ok((mut conn, ())) = accepted else {
            return;
        };
        let (_tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        for _ in 0..1000 {
            match conn.next(&mut rx, std::future::pending()).await {
                Event::Up(_) => {}
                Event::Ended(_) => break,
            }
        }
    });
});

use super::*;

const WS: &str = "01900000-0000-7000-8000-000000000001";

fn master(seed: u8) -> MasterKey {
    let bytes: Vec<u8> = (0..32u8).map(|i| i.wrapping_add(seed)).collect();
    MasterKey::from_bytes(&bytes).unwrap()
}

fn vault() -> Vault {
    Vault::new(master(0), vec![])
}

fn binding(workspace: &str, record: &'static str) -> Binding<'static> {
    Binding {
        workspace: workspace.parse().unwrap(),
        kind: "provider_key",
        record,
    }
}

/// Computed independently with Python's `cryptography` (HKDF-SHA256, AESGCM) from the
/// format's definition: master key bytes 0..32, nonce twelve 0x42 bytes.
const KNOWN: &str =
    "v1.630dcd2966c43366.QkJCQkJCQkJCQkJClPdrmdzdFidiSWSKGO7_Dxt8LoN9v9CcFrsULew884DPGg";

#[test]
fn the_format_matches_its_known_answer() {
    let v = vault();
    let at = binding(WS, "rec-1");
    let sealed = v
        .seal_with_nonce(&at, b"sk-test-0123456789", [0x42; 12])
        .unwrap();
    assert_eq!(sealed, KNOWN);
    assert_eq!(&*v.open(&at, KNOWN).unwrap(), b"sk-test-0123456789");
    assert_eq!(v.current_id(), "630dcd2966c43366");
}

#[test]
fn each_seal_has_its_own_nonce() {
    let v = vault();
    let at = binding(WS, "rec-1");
    let a = v.seal(&at, b"same secret").unwrap();
    let b = v.seal(&at, b"same secret").unwrap();
    assert_ne!(a, b);
    assert_eq!(&*v.open(&at, &a).unwrap(), b"same secret");
    assert_eq!(&*v.open(&at, &b).unwrap(), b"same secret");
}

/// Flips one bit at every position of the payload (nonce, ciphertext, tag): each is an
/// error, never other plaintext.
#[test]
fn a_flipped_bit_anywhere_is_refused() {
    let v = vault();
    let at = binding(WS, "rec-1");
    let (head, body) = KNOWN.rsplit_once('.').unwrap();
    let payload = URL_SAFE_NO_PAD.decode(body).unwrap();
    for i in 0..payload.len() * 8 {
        let mut bad = payload.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bad));
        assert_eq!(v.open(&at, &tampered), Err(VaultError::Decrypt), "bit {i}");
    }
}

#[test]
fn another_record_or_kind_does_not_open_it() {
    let v = vault();
    assert_eq!(
        v.open(&binding(WS, "rec-2"), KNOWN),
        Err(VaultError::Decrypt)
    );
    let other_kind = Binding {
        kind: "mcp_token",
        ..binding(WS, "rec-1")
    };
    assert_eq!(v.open(&other_kind, KNOWN), Err(VaultError::Decrypt));
}

#[test]
fn another_workspace_does_not_open_it() {
    let v = vault();
    let other = binding("01900000-0000-7000-8000-000000000002", "rec-1");
    assert_eq!(v.open(&other, KNOWN), Err(VaultError::Decrypt));
}

#[test]
fn another_master_key_does_not_open_it_and_a_forged_key_id_does_not_help() {
    let other = Vault::new(master(1), vec![]);
    let at = binding(WS, "rec-1");
    assert!(matches!(
        other.open(&at, KNOWN),
        Err(VaultError::UnknownKey(_))
    ));
    // Claiming the other vault's key id: the id is in the associated data, the key is not.
    let forged = KNOWN.replace("630dcd2966c43366", other.current_id());
    assert_eq!(other.open(&at, &forged), Err(VaultError::Decrypt));
}

#[test]
fn malformed_values_are_refused() {
    let v = vault();
    let at = binding(WS, "rec-1");
    for bad in [
        "",
        "v1",
        "v2.630dcd2966c43366.QkJC",
        "v1.630dcd2966c43366.",
        "v1.630dcd2966c43366.!!!",
        "v1.short.QkJCQkJCQkJCQkJClPdrmdzdFidiSWSKGO7_Dxt8LoN9v9CcFrsULew884DPGg",
        "plain text secret",
    ] {
        assert_eq!(v.open(&at, bad), Err(VaultError::Malformed), "{bad:?}");
    }
}

#[test]
fn a_rotation_rewraps_under_the_new_key_and_the_old_opens_until_dropped() {
    let at = binding(WS, "rec-1");
    let old = vault();
    let sealed = old.seal(&at, b"secret").unwrap();
    let rotating = Vault::new(master(7), vec![master(0)]);
    assert!(!rotating.is_current(&sealed));
    assert_eq!(&*rotating.open(&at, &sealed).unwrap(), b"secret");
    let rewrapped = rotating.rewrap(&at, &sealed).unwrap();
    assert!(rotating.is_current(&rewrapped));
    let done = Vault::new(master(7), vec![]);
    assert_eq!(&*done.open(&at, &rewrapped).unwrap(), b"secret");
    assert!(matches!(
        done.open(&at, &sealed),
        Err(VaultError::UnknownKey(_))
    ));
}

#[test]
fn keys_of_the_wrong_length_are_refused_and_never_printed() {
    assert_eq!(
        MasterKey::from_bytes(&[0u8; 31]).unwrap_err(),
        VaultError::KeyLength
    );
    let shown = format!("{:?}", vault());
    assert!(shown.contains("630dcd2966c43366"));
    assert!(!shown.contains("[0, 1, 2"), "{shown}");
}

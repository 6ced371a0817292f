//! `bastion vault …`: re-wrapping every sealed secret under a new master key, and checking
//! that every sealed secret opens.

use crate::config::{self, StoreArgs};
use anyhow::{bail, Context};
use bastion_auth::keys::DerivedKeys;
use bastion_auth::{seal, signing_key};
use bastion_server::Settings;
use bastion_store::provider_keys::VAULT_KIND;
use bastion_store::Store;
use bastion_vault::{Binding, MasterKey, Vault};
use clap::Subcommand;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

const PAGE: i64 = 200;

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Re-wrap every sealed secret (provider keys, TOTP secrets) under a new master key.
    #[command(
        long_about = "Re-wrap every sealed secret (provider keys, TOTP secrets) under a \
        new master key, one record at a time: each record is replaced atomically and only if \
        it did not change meanwhile, so the command can be stopped at any point and run \
        again to finish. The key file is created (0600) when it does not exist.\n\n\
        Before: add the new key file to `previous_master_key_files` on every node, so they \
        open what is already re-wrapped. After: make it `master_key_file` on every node, with \
        the old key in `previous_master_key_files` until every node has restarted; then \
        drop the old key."
    )]
    RotateMaster {
        /// The new master key (32 bytes, base64, mode 0600).
        #[arg(long)]
        new_key_file: PathBuf,
        /// Pause this long after each record, to spare a busy database.
        #[arg(long, default_value_t = 0)]
        throttle_ms: u64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Open every sealed secret with the configured master keys; exit 1 if any does not open.
    Check {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The configured master key and the previous ones; never creates a key.
fn configured_keys(settings: &Settings) -> anyhow::Result<Vec<Zeroizing<Vec<u8>>>> {
    let inline = settings
        .master_key
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret);
    let current = match inline {
        Some(_) => signing_key::load_master_key(inline, &settings.master_key_path())?,
        None => signing_key::load_existing_master_key(&settings.master_key_path())
            .context("the current master key")?,
    };
    let mut keys = vec![current];
    for p in &settings.previous_master_key_files {
        keys.push(signing_key::load_existing_master_key(p)?);
    }
    Ok(keys)
}

fn vault_of(current: &[u8], others: &[Zeroizing<Vec<u8>>]) -> anyhow::Result<Vault> {
    let previous = others
        .iter()
        .map(|k| MasterKey::from_bytes(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Vault::new(MasterKey::from_bytes(current)?, previous))
}

/// What happened to each sealed record.
#[derive(Default)]
struct Tally {
    seen: i64,
    changed: i64,
    already: i64,
    failed: i64,
}

/// A progress line on standard error: rewritten in place on a terminal, every 100 records
/// otherwise.
fn progress(what: &str, t: &Tally, total: i64) {
    if std::io::stderr().is_terminal() {
        eprint!("\r{what}: {}/{total}", t.seen);
    } else if t.seen % 100 == 0 || t.seen == total {
        eprintln!("{what}: {}/{total}", t.seen);
    }
}

/// Opens `sealed` (a TOTP value of `user`) with the first of `keys` that opens it.
fn open_totp(keys: &[DerivedKeys], aad: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
    keys.iter()
        .find_map(|k| seal::open(&k.totp_seal, aad, sealed).ok())
}

pub async fn run(cmd: VaultCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VaultCommand::RotateMaster {
            new_key_file,
            throttle_ms,
            store: args,
        } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            let old = configured_keys(&settings)?;
            let new = signing_key::load_master_key(None, &new_key_file)
                .with_context(|| format!("the new master key {}", new_key_file.display()))?;
            if old.iter().any(|k| k.as_slice() == new.as_slice()) {
                bail!("the new key is already one of the configured master keys");
            }
            let vault = vault_of(&new, &old)?;
            let new_totp = DerivedKeys::from_master(&new);
            let old_totp: Vec<DerivedKeys> =
                old.iter().map(|k| DerivedKeys::from_master(k)).collect();
            let pause = Duration::from_millis(throttle_ms);
            let total = store.sealed_secret_count().await?;
            let mut t = Tally::default();
            rotate_provider_keys(&store, &vault, &mut t, total, pause).await?;
            rotate_totp(&store, &new_totp, &old_totp, &mut t, total, pause).await?;
            store.close().await;
            eprintln!();
            println!(
                "{} re-wrapped, {} already under key {}, {} failed",
                t.changed,
                t.already,
                vault.current_id(),
                t.failed
            );
            if t.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "next: on every node set master_key_file = {} and keep the old key in \
                 previous_master_key_files until all have restarted",
                new_key_file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        VaultCommand::Check { store: args } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            let keys = configured_keys(&settings)?;
            let vault = vault_of(&keys[0], &keys[1..])?;
            let derived: Vec<DerivedKeys> =
                keys.iter().map(|k| DerivedKeys::from_master(k)).collect();
            let (mut ok, mut failed) = (0, 0);
            let mut after = None;
            loop {
                let page = store.provider_keys().sealed_page(after, PAGE).await?;
                for (id, workspace, sealed) in &page {
                    let record = id.to_string();
                    let at = Binding {
                        workspace: *workspace,
                        kind: VAULT_KIND,
                        record: &record,
                    };
                    match vault.open(&at, sealed) {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            failed += 1;
                            println!("provider key {id}: {e}");
                        }
                    }
                }
                match page.last() {
                    Some((id, _, _)) => after = Some(*id),
                    None => break,
                }
            }
            let mut after = None;
            loop {
                let page = store.mfa().sealed_page(after, PAGE).await?;
                for (user, _, sealed) in &page {
                    match open_totp(&derived, &seal::totp_aad(*user), sealed) {
                        Some(_) => ok += 1,
                        None => {
                            failed += 1;
                            println!("TOTP secret of user {user}: does not open");
                        }
                    }
                }
                match page.last() {
                    Some((id, _, _)) => after = Some(*id),
                    None => break,
                }
            }
            store.close().await;
            println!("{ok} sealed secrets open, {failed} do not");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn rotate_provider_keys(
    store: &Store,
    vault: &Vault,
    t: &mut Tally,
    total: i64,
    pause: Duration,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store.provider_keys().sealed_page(after, PAGE).await?;
        for (id, workspace, sealed) in &page {
            t.seen += 1;
            let record = id.to_string();
            let at = Binding {
                workspace: *workspace,
                kind: VAULT_KIND,
                record: &record,
            };
            if vault.is_current(sealed) {
                t.already += 1;
            } else {
                match vault.rewrap(&at, sealed) {
                    Ok(new) => {
                        if store
                            .provider_keys()
                            .replace_sealed(*id, sealed, &new)
                            .await?
                        {
                            t.changed += 1;
                        }
                    }
                    Err(e) => {
                        t.failed += 1;
                        eprintln!("\nprovider key {id}: {e}");
                    }
                }
                tokio::time::sleep(pause).await;
            }
            progress("rotate-master", t, total);
        }
        match page.last() {
            Some((id, _, _)) => after = Some(*id),
            None => return Ok(()),
        }
    }
}

async fn rotate_totp(
    store: &Store,
    new: &DerivedKeys,
    old: &[DerivedKeys],
    t: &mut Tally,
    total: i64,
    pause: Duration,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = store.mfa().sealed_page(after, PAGE).await?;
        for (user, column, sealed) in &page {
            t.seen += 1;
            let aad = seal::totp_aad(*user);
            if seal::open(&new.totp_seal, &aad, sealed).is_ok() {
                t.already += 1;
            } else {
                match open_totp(old, &aad, sealed) {
                    Some(secret) => {
                        let resealed = seal::seal(&new.totp_seal, &aad, &secret)?;
                        if store
                            .mfa()
                            .replace_sealed(*user, *column, sealed, &resealed)
                            .await?
                        {
                            t.changed += 1;
                        }
                    }
                    None => {
                        t.failed += 1;
                        eprintln!("\nTOTP secret of user {user}: opens with no configured key");
                    }
                }
                tokio::time::sleep(pause).await;
            }
            progress("rotate-master", t, total);
        }
        match page.last() {
            Some((id, _, _)) => after = Some(*id),
            None => return Ok(()),
        }
    }
}

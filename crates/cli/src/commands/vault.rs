//! `bastion vault …`: re-wrapping every sealed secret under a new master key, and checking
//! that every sealed secret opens.

use crate::config::{self, StoreArgs};
use anyhow::{bail, Context};
use bastion_auth::keys::DerivedKeys;
use bastion_auth::{seal, signing_key};
use bastion_core::{DeviceId, McpServerId, ProviderKeyId, UserId, WorkspaceId};
use bastion_server::Settings;
use bastion_store::devices::HMAC_KEY_KIND;
use bastion_store::mfa::TotpColumn;
use bastion_store::provider_keys::VAULT_KIND;
use bastion_store::tools::CREDENTIAL_KIND;
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

/// The master keys a command works with: the first seals, all of them open.
struct Keys {
    vault: Vault,
    totp: Vec<DerivedKeys>,
}

impl Keys {
    fn new(first: &[u8], others: &[Zeroizing<Vec<u8>>]) -> anyhow::Result<Keys> {
        let previous = others
            .iter()
            .map(|k| MasterKey::from_bytes(k))
            .collect::<Result<Vec<_>, _>>()?;
        let totp = std::iter::once(first)
            .chain(others.iter().map(|k| k.as_slice()))
            .map(DerivedKeys::from_master)
            .collect();
        Ok(Keys {
            vault: Vault::new(MasterKey::from_bytes(first)?, previous),
            totp,
        })
    }

    fn open(&self, record: &SealedRecord) -> Result<Zeroizing<Vec<u8>>, String> {
        match record {
            SealedRecord::Vaulted {
                table,
                id,
                workspace,
                value,
            } => {
                let at = Binding {
                    workspace: *workspace,
                    kind: table.kind(),
                    record: id,
                };
                self.vault.open(&at, value).map_err(|e| e.to_string())
            }
            SealedRecord::Totp { user, value, .. } => {
                let keys = self.totp.iter().map(|k| &*k.totp_seal);
                seal::open_with_any(keys, &seal::totp_aad(*user), value).map_err(|e| e.to_string())
            }
        }
    }

    /// Whether the first key sealed it (TOTP values carry no key id: try to open them).
    fn is_current(&self, record: &SealedRecord) -> bool {
        match record {
            SealedRecord::Vaulted { value, .. } => self.vault.is_current(value),
            SealedRecord::Totp { user, value, .. } => {
                seal::open(&self.totp[0].totp_seal, &seal::totp_aad(*user), value).is_ok()
            }
        }
    }

    /// The record's secret sealed again under the first key.
    fn rewrap(&self, record: &SealedRecord) -> Result<String, String> {
        let secret = self.open(record)?;
        match record {
            SealedRecord::Vaulted {
                table,
                id,
                workspace,
                ..
            } => {
                let at = Binding {
                    workspace: *workspace,
                    kind: table.kind(),
                    record: id,
                };
                self.vault.seal(&at, &secret).map_err(|e| e.to_string())
            }
            SealedRecord::Totp { user, .. } => {
                seal::seal(&self.totp[0].totp_seal, &seal::totp_aad(*user), &secret)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Where a vault-sealed secret lives.
#[derive(Debug, Clone, Copy)]
enum VaultTable {
    ProviderKey,
    McpCredential,
    DeviceKey,
}

impl VaultTable {
    /// The vault record kind it is sealed under.
    fn kind(self) -> &'static str {
        match self {
            VaultTable::ProviderKey => VAULT_KIND,
            VaultTable::McpCredential => CREDENTIAL_KIND,
            VaultTable::DeviceKey => HMAC_KEY_KIND,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            VaultTable::ProviderKey => "provider key",
            VaultTable::McpCredential => "credential of MCP server",
            VaultTable::DeviceKey => "factory key of device",
        }
    }
}

/// One sealed secret of the store.
enum SealedRecord {
    /// Sealed by the vault, bound to its workspace, its kind and its record's id.
    Vaulted {
        table: VaultTable,
        id: String,
        workspace: WorkspaceId,
        value: String,
    },
    Totp {
        user: UserId,
        column: TotpColumn,
        value: String,
    },
}

impl SealedRecord {
    fn vaulted<I: ToString>(table: VaultTable, page: Vec<(I, WorkspaceId, String)>) -> Vec<Self> {
        page.into_iter()
            .map(|(id, workspace, value)| SealedRecord::Vaulted {
                table,
                id: id.to_string(),
                workspace,
                value,
            })
            .collect()
    }

    fn describe(&self) -> String {
        match self {
            SealedRecord::Vaulted { table, id, .. } => format!("{} {id}", table.noun()),
            SealedRecord::Totp { user, .. } => format!("TOTP secret of user {user}"),
        }
    }

    /// Replaces the sealed value by `new` if it is still what was read.
    async fn replace(&self, store: &Store, new: &str) -> anyhow::Result<bool> {
        Ok(match self {
            SealedRecord::Vaulted {
                table, id, value, ..
            } => match table {
                VaultTable::ProviderKey => {
                    store
                        .provider_keys()
                        .replace_sealed(id.parse()?, value, new)
                        .await?
                }
                VaultTable::McpCredential => {
                    store
                        .tools()
                        .replace_sealed(id.parse()?, value, new)
                        .await?
                }
                VaultTable::DeviceKey => {
                    store
                        .devices()
                        .replace_sealed(id.parse()?, value, new)
                        .await?
                }
            },
            SealedRecord::Totp {
                user,
                column,
                value,
            } => {
                store
                    .mfa()
                    .replace_sealed(*user, *column, value, new)
                    .await?
            }
        })
    }
}

/// Every sealed secret of the store, a page at a time: provider keys, TOTP secrets, MCP
/// server credentials, then devices' factory keys.
enum Walk {
    ProviderKeys(Option<ProviderKeyId>),
    Totp(Option<UserId>),
    McpCredentials(Option<McpServerId>),
    DeviceKeys(Option<DeviceId>),
    Done,
}

impl Walk {
    async fn next_page(&mut self, store: &Store) -> anyhow::Result<Vec<SealedRecord>> {
        loop {
            match *self {
                Walk::ProviderKeys(after) => {
                    let page = store.provider_keys().sealed_page(after, PAGE).await?;
                    let Some((last, _, _)) = page.last() else {
                        *self = Walk::Totp(None);
                        continue;
                    };
                    *self = Walk::ProviderKeys(Some(*last));
                    return Ok(SealedRecord::vaulted(VaultTable::ProviderKey, page));
                }
                Walk::Totp(after) => {
                    let page = store.mfa().sealed_page(after, PAGE).await?;
                    let Some((last, _, _)) = page.last() else {
                        *self = Walk::McpCredentials(None);
                        continue;
                    };
                    *self = Walk::Totp(Some(*last));
                    return Ok(page
                        .into_iter()
                        .map(|(user, column, value)| SealedRecord::Totp {
                            user,
                            column,
                            value,
                        })
                        .collect());
                }
                Walk::McpCredentials(after) => {
                    let page = store.tools().sealed_page(after, PAGE).await?;
                    let Some((last, _, _)) = page.last() else {
                        *self = Walk::DeviceKeys(None);
                        continue;
                    };
                    *self = Walk::McpCredentials(Some(*last));
                    return Ok(SealedRecord::vaulted(VaultTable::McpCredential, page));
                }
                Walk::DeviceKeys(after) => {
                    let page = store.devices().sealed_page(after, PAGE).await?;
                    let Some((last, _, _)) = page.last() else {
                        *self = Walk::Done;
                        continue;
                    };
                    *self = Walk::DeviceKeys(Some(*last));
                    return Ok(SealedRecord::vaulted(VaultTable::DeviceKey, page));
                }
                Walk::Done => return Ok(Vec::new()),
            }
        }
    }
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
            let keys = Keys::new(&new, &old)?;
            let pause = Duration::from_millis(throttle_ms);
            let total = store.sealed_secret_count().await?;
            let mut t = Tally::default();
            let mut walk = Walk::ProviderKeys(None);
            loop {
                let page = walk.next_page(&store).await?;
                if page.is_empty() {
                    break;
                }
                for record in &page {
                    t.seen += 1;
                    if keys.is_current(record) {
                        t.already += 1;
                    } else {
                        match keys.rewrap(record) {
                            Ok(new) => {
                                if record.replace(&store, &new).await? {
                                    t.changed += 1;
                                }
                            }
                            Err(e) => {
                                t.failed += 1;
                                eprintln!("\n{}: {e}", record.describe());
                            }
                        }
                        tokio::time::sleep(pause).await;
                    }
                    progress("rotate-master", &t, total);
                }
            }
            store.close().await;
            eprintln!();
            println!(
                "{} re-wrapped, {} already under key {}, {} failed",
                t.changed,
                t.already,
                keys.vault.current_id(),
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
            let configured = configured_keys(&settings)?;
            let keys = Keys::new(&configured[0], &configured[1..])?;
            let (mut ok, mut failed) = (0, 0);
            let mut walk = Walk::ProviderKeys(None);
            loop {
                let page = walk.next_page(&store).await?;
                if page.is_empty() {
                    break;
                }
                for record in &page {
                    match keys.open(record) {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            failed += 1;
                            println!("{}: {e}", record.describe());
                        }
                    }
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

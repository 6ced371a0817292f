//! One module per subcommand, plus what they share.

pub mod audit;
pub mod certs;
pub mod init;
pub mod routes;
pub mod security;
pub mod serve;
pub mod sessions;
pub mod users;
pub mod vault;

use anyhow::{bail, Context};
use bastion_server::Settings;
use bastion_store::Store;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::SecretString;
use std::io::Read;

/// Creates the data directory (0700) and opens the store, running pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    if settings.database_url.is_none() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    Store::open(&settings.database_url())
        .await
        .context("cannot open the store")
}

/// A password read from standard input (the first line), or a generated one.
pub enum NewPassword {
    Given(SecretString),
    Generated(SecretString),
}

impl NewPassword {
    pub fn obtain(from_stdin: bool, email: &str) -> anyhow::Result<NewPassword> {
        if !from_stdin {
            // 24 alphanumerics: about 143 bits, printed once.
            let p = Alphanumeric.sample_string(&mut rand::rngs::OsRng, 24);
            return Ok(NewPassword::Generated(SecretString::from(p)));
        }
        let mut input = String::new();
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut input)
            .context("cannot read the password from standard input")?;
        let line = input.lines().next().unwrap_or("").to_string();
        input.clear();
        if let Err(e) = bastion_auth::password_policy::check(&line, email) {
            bail!("{e}");
        }
        Ok(NewPassword::Given(SecretString::from(line)))
    }

    pub fn secret(&self) -> &SecretString {
        match self {
            NewPassword::Given(s) | NewPassword::Generated(s) => s,
        }
    }
}

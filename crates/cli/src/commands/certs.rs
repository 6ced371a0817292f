//! `bastion certs self-signed`: a certificate and key for trying bastion's own TLS locally.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Write a self-signed certificate and its key (ECDSA P-256) for local use.
    #[command(
        long_about = "Write a self-signed certificate (cert.pem) and its private key \
(key.pem, mode 0600) for trying bastion's own TLS on this machine. Browsers and devices will \
not trust it: for anything others reach, use a certificate from a CA.\n\n\
Then serve with:\n  tls_cert_file = \"DIR/cert.pem\"\n  tls_key_file = \"DIR/key.pem\"\n\n\
Examples:\n  bastion certs self-signed\n  bastion certs self-signed --out-dir /etc/bastion/tls \
--host bastion.lan --host 192.168.1.20 --days 30"
    )]
    SelfSigned(SelfSignedArgs),
}

#[derive(Args)]
pub struct SelfSignedArgs {
    /// Where to write cert.pem and key.pem.
    #[arg(long, value_name = "DIR", default_value = "./bastion-data/tls")]
    out_dir: PathBuf,
    /// A name or address the certificate is for (repeat for more) [default: localhost,
    /// 127.0.0.1, ::1].
    #[arg(long = "host", value_name = "NAME")]
    hosts: Vec<String>,
    /// Days until it expires.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=825))]
    days: u32,
    /// Replace files already there.
    #[arg(long)]
    force: bool,
}

pub async fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCommand::SelfSigned(args) => self_signed(args),
    }
}

fn self_signed(args: SelfSignedArgs) -> anyhow::Result<ExitCode> {
    let hosts = if args.hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        args.hosts
    };
    let mut params = rcgen::CertificateParams::new(hosts.clone())
        .context("the host names are not valid in a certificate")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hosts[0].clone());
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;

    // Owner-only, as `serve` makes the data directory: the default is inside it, and a
    // directory created here first would otherwise leave the database open to others.
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dirs.mode(0o700);
    }
    dirs.create(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let cert_path = args.out_dir.join("cert.pem");
    let key_path = args.out_dir.join("key.pem");
    for p in [&cert_path, &key_path] {
        if p.exists() && !args.force {
            bail!("{} exists: pass --force to replace it", p.display());
        }
    }
    write(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write(&cert_path, cert.pem().as_bytes(), 0o644)?;
    println!(
        "wrote {} and {} (self-signed for {}, valid {} days)\n\nserve with:\n  tls_cert_file = {:?}\n  tls_key_file = {:?}",
        cert_path.display(),
        key_path.display(),
        hosts.join(", "),
        args.days,
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a file with `mode` from its creation on (the key is never readable by others).
fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

//! `bastion-fake-provider`: the fake provider as a process, for benchmarks and for tests that
//! drive bastion's real executable. It answers at once (unless told to pause between tokens)
//! and logs nothing per request.

use bastion_fake_provider::FakeProvider;
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "bastion-fake-provider",
    about = "A fake LLM provider speaking the OpenAI Chat Completions and Anthropic Messages wire formats"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Pause before each event of a streamed answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    token_delay_ms: u64,
    /// Keep no record of requests (GET /_fake/requests stays empty): for benchmarks, where
    /// the record would only cost time and memory.
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let fake = FakeProvider::start_with(args.listen, !args.no_record)?;
    fake.set_token_delay(Duration::from_millis(args.token_delay_ms));
    println!(
        "bastion-fake-provider listening on {} (OpenAI and Anthropic under /v1)",
        fake.base_url_openai()
    );
    tokio::signal::ctrl_c().await?;
    fake.shutdown();
    Ok(())
}

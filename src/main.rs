//! gameday's command line: parse, call the library, exit with its code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gameday::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GAMEDAY_LOG")
        // kube's client logs every failed connection as an error, and goose
        // every failed request as a warning (thousands while a node is
        // lost); gameday counts and reports them itself.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off,goose=error")
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gameday: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(gameday::exit_codes::ERROR as u8);
        }
    };
    let code = runtime.block_on(gameday::cli::run(cli));
    std::process::ExitCode::from(code as u8)
}

use clap::Parser as _;
use filter_user::cli::{update::exit_code, Cli};

fn main() -> std::process::ExitCode {
    // Die quietly when the reader of our output goes away (`regionfilter stats | head`).
    // SAFETY: restoring the default disposition of a signal has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match Cli::parse().run() {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit_code(&err))
        }
    }
}

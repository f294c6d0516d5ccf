use std::io::Write as _;

use clap::Parser as _;
use filter_user::{
    cli::{error_line, Cli, Command},
    ops::OpError,
};

fn main() -> std::process::ExitCode {
    // Die quietly when the reader of our output goes away (`regionfilter stats | head`).
    // SAFETY: restoring the default disposition of a signal has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    // The library says what it noticed through `log`; a command prints it as `warning: ...` and
    // `note: ...` lines on stderr (the agent logs it as structured lines instead).
    if !matches!(cli.command, Command::Agent(_)) {
        init_logger();
    }
    match cli.run() {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            let message = format!("{err:#}");
            eprintln!("{}", error_line(&message, OpError::is_forceable(&err)));
            std::process::ExitCode::from(OpError::exit_code_of(&err))
        }
    }
}

fn init_logger() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,filter_user=info"),
    )
    .format(|out, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "note",
            log::Level::Debug | log::Level::Trace => "debug",
        };
        writeln!(out, "{level}: {}", record.args())
    })
    .init();
}

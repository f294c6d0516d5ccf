//! One structured line per event on stderr (journald keeps it as the message): `key=value`
//! pairs (logfmt) or one JSON object. The library's own warnings come through `log` and are
//! written the same way.

use std::{
    io::Write as _,
    sync::atomic::{AtomicBool, Ordering},
};

use super::config::LogFormat;
use crate::sys::time::{date, unix_now};

static JSON: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// Writes lines in `format` from now on, and routes the library's `log` records here.
pub fn init(format: LogFormat) {
    set_format(format);
    // Only the first call installs the logger; a reload only changes the format.
    if log::set_boxed_logger(Box::new(Bridge)).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        log_panics();
    }
}

/// A panic in any thread or task of the agent aborts the process (the profiles say
/// `panic = "abort"`): nothing half-done keeps running as if it were fine, and the service
/// manager restarts it, which adopts the filters from their pins. Before the abort, the panic
/// is one `event=panic` line in the agent's own format, so it reaches the journal (and any log
/// search) like every other event.
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        event(
            Level::Error,
            "panic",
            &[("thread", &thread), ("at", &location), ("msg", &message)],
        );
        default(info);
    }));
}

pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Writes one event line: `level`, `event`, then `fields` in order.
pub fn event(level: Level, event: &str, fields: &[(&str, &dyn std::fmt::Display)]) {
    let line = render(
        JSON.load(Ordering::Relaxed),
        level,
        event,
        &fields
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect::<Vec<_>>(),
    );
    // One write per line, so lines from several threads never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn render(json: bool, level: Level, event: &str, fields: &[(&str, String)]) -> String {
    let ts = date(unix_now());
    if json {
        let mut map = serde_json::Map::new();
        map.insert("ts".into(), ts.into());
        map.insert("level".into(), level.name().into());
        map.insert("event".into(), event.into());
        for (k, v) in fields {
            map.insert((*k).into(), v.clone().into());
        }
        return format!("{}\n", serde_json::Value::Object(map));
    }
    let mut line = format!("ts={ts} level={} event={event}", level.name());
    for (k, v) in fields {
        line.push(' ');
        line.push_str(k);
        line.push('=');
        line.push_str(&logfmt_value(v));
    }
    line.push('\n');
    line
}

/// A value as logfmt writes it: bare when it can be, else quoted with `\` escapes.
fn logfmt_value(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if bare {
        return value.to_owned();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The library's `log::warn!` and `log::info!` as `event=warning` / `event=note` lines.
struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info && metadata.target().starts_with("filter_user")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (level, name) = match record.level() {
            log::Level::Error => (Level::Error, "error"),
            log::Level::Warn => (Level::Warning, "warning"),
            _ => (Level::Info, "note"),
        };
        event(level, name, &[("msg", &record.args())]);
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        assert_eq!(logfmt_value("eth0"), "eth0");
        assert_eq!(logfmt_value(""), "\"\"");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value("x=\"1\"\nnext"), "\"x=\\\"1\\\"\\nnext\"");
    }

    #[test]
    fn json_lines_hold_every_field() {
        let line = render(
            true,
            Level::Error,
            "refresh_failed",
            &[("iface", "eth0".into()), ("msg", "a \"b\"".into())],
        );
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["event"], "refresh_failed");
        assert_eq!(value["iface"], "eth0");
        assert_eq!(value["msg"], "a \"b\"");
        let text = render(false, Level::Info, "attached", &[("iface", "eth0".into())]);
        assert!(
            text.ends_with(" level=info event=attached iface=eth0\n"),
            "{text}"
        );
    }
}

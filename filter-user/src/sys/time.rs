//! Time as every record and message shows it.

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An epoch time as RFC 3339 (`2026-06-17T19:00:00Z`), as every message and record shows it.
#[must_use]
pub fn date(epoch: u64) -> String {
    // RFC 3339 ends with the year 9999; past it, the number itself.
    if epoch > 253_402_300_799 {
        return format!("{epoch} (Unix time)");
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
        .to_string()
}

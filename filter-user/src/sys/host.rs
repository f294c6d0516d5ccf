//! What this host calls itself.

/// The host name, as the kernel holds it (`/proc/sys/kernel/hostname`).
pub fn name() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_owned())
}

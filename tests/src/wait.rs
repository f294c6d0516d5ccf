//! Polling for a state that the kernel or another process reaches in its own time.

use std::time::{Duration, Instant};

/// Calls `done` until it returns true or `timeout` has passed, pausing `every` between calls
/// (yielding the CPU only, when `every` is zero); returns whether `done` held. `done` is called
/// at least once, so it may also do the work whose result it checks (read a socket, send).
pub fn wait_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if every.is_zero() {
            std::thread::yield_now();
        } else {
            std::thread::sleep(every);
        }
    }
}

//! Four hundred updates through the library path `regionfilter update` takes must leave no BPF
//! map or program behind in the kernel and no memory in the process. Its own test binary, so
//! no other test creates maps while it counts.

use filter_user::{
    data::CountryField,
    ops::{
        data_spec::DataSpec,
        policy_spec::PolicyChange,
        update::{update, Guard, Outcome, Target},
    },
    state::Layout,
};
use std::time::Duration;

use integration_tests::{update::Attached, wait::wait_until};

fn kernel_objects() -> (usize, usize) {
    (
        aya::maps::loaded_maps().filter(Result::is_ok).count(),
        aya::programs::loaded_programs()
            .filter(Result::is_ok)
            .count(),
    )
}

/// Resident memory after handing free heap pages back to the kernel, so what remains is
/// memory still in use (glibc keeps freed pages otherwise, which would look like a leak).
fn rss_bytes() -> u64 {
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe { libc::malloc_trim(0) };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap()
}

#[test]
fn four_hundred_updates_leak_no_maps_programs_or_memory() {
    // One malloc arena: the source readers run on threads, and glibc gives a thread a new
    // arena whenever the others are busy, at a moment of its choosing; each new arena adds
    // about 9 MB of resident memory that no trim returns, which is the allocator's doing, not
    // a leak, and came up in the measured stretch in one run of three.
    // SAFETY: mallopt only changes the allocator's tuning; called before any reader thread.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    // The plain tries keep each update cheap; the objects an update creates (the self-test
    // program and its maps, the pinned maps it opens) are the same for both lookups.
    let filter = Attached::with_options("leak", &["--lookup", "lpm"]);
    let layout = Layout {
        pin_root: filter.inst.pin_root.clone(),
        state_dir: filter.inst.state_dir.clone(),
        lib_dir: filter.inst.lib_dir(),
    };
    let load = |path: &str| {
        DataSpec {
            db: vec![path.into()],
            format: vec![],
            country_field: CountryField::Country,
            prefer: vec![],
            artifact: None,
        }
        .load()
        .unwrap()
    };
    let guard = Guard {
        force: false,
        max_change: 10.0,
        wait: std::time::Duration::from_secs(5),
        allow_older: false,
    };
    let update = |i: usize| {
        let list = if i.is_multiple_of(2) {
            &filter.list_b
        } else {
            &filter.list_a
        };
        let target = Target::Update {
            data: Some(Box::new(load(list))),
            policy: PolicyChange::Keep,
        };
        let outcome = update(&layout, &filter.iface.parse().unwrap(), &target, &guard).unwrap();
        assert!(matches!(outcome, Outcome::Updated { .. }), "update {i}");
    };
    // Warm up before measuring: the heap settles about 9 MB higher, usually within the first
    // hundred updates but once seen later (then stays flat), which is not what this test is
    // after; two hundred leave a margin.
    const WARM_UP: usize = 200;
    for i in 0..WARM_UP {
        update(i);
    }
    // Any kernel object left behind shows at once; 400 updates show a leak of 2.6 KB each
    // in the RSS bound below.
    const MEASURED: usize = 400;
    let (objects, rss) = (kernel_objects(), rss_bytes());
    for i in WARM_UP..WARM_UP + MEASURED {
        update(i);
    }
    // The kernel frees a released map from a work queue, so the last update's old objects may
    // still be counted for a moment; a leak never goes away.
    let mut after = kernel_objects();
    wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        after = kernel_objects();
        after == objects
    });
    assert_eq!(
        after, objects,
        "(maps, programs) before and after {MEASURED} updates"
    );
    let grown = rss_bytes().saturating_sub(rss);
    assert!(
        grown < 1 << 20,
        "RSS grew by {grown} bytes over {MEASURED} updates"
    );
}

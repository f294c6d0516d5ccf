//! The XDP program loaded into the kernel without attaching it, for BPF_PROG_TEST_RUN.

use std::net::IpAddr;

use aya::{
    programs::{TestRun as _, TestRunOptions, Xdp},
    Ebpf,
};
use filter_common::{PROGRAM_NAME, RAW_IP, SELFTEST_HALF, SELFTEST_PROGRAM};
use filter_user::{
    compile::paint,
    compile::Prefixes,
    kernel::maps::{FilterMaps, HalfContents},
    kernel::program,
    kernel::selftest,
    kernel::tables::FastTables,
    model::lookup::Lookup,
    model::policy::Policy,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The half [`LoadedFilter::new`] fills and activates, and the self-test program judges by.
const HALF: usize = 1;

/// The program with its maps filled, ready for test runs.
pub struct LoadedFilter {
    ebpf: Ebpf,
    pub maps: FilterMaps,
    pub lookup: Lookup,
}

impl LoadedFilter {
    /// Loads the program with `prefixes` (which may overlap) and `policy`; panics with the reason
    /// on failure.
    #[must_use]
    pub fn new(prefixes: &Prefixes, policy: &Policy, lookup: Lookup) -> Self {
        Self::with_entries(
            &paint::entries_of_prefixes(prefixes, Some(policy)),
            policy,
            lookup,
            false,
        )
    }

    /// Loads the program with painted `entries`, for Ethernet or raw-IP (`raw_ip`) frames.
    #[must_use]
    pub fn with_entries(
        entries: &paint::Entries,
        policy: &Policy,
        lookup: Lookup,
        raw_ip: bool,
    ) -> Self {
        let mut ebpf = program::loader(lookup)
            .override_global(SELFTEST_HALF, &(HALF as u32), true)
            .override_global(RAW_IP, &u32::from(raw_ip), true)
            .load(filter_user::EBPF_OBJECT)
            .expect("load object");
        let mut maps = FilterMaps::take(&mut ebpf, None).expect("take maps");
        let tables = (lookup == Lookup::Fast).then(|| FastTables::build(entries).expect("tables"));
        let contents = HalfContents {
            entries,
            tables: tables.as_ref(),
            policy,
            content_hash: [0; 32],
            generation: 1,
        };
        maps.halves[HALF]
            .write(&contents, lookup)
            .expect("write half");
        maps.set_active(HALF).expect("activate half");
        program::load_xdp(&mut ebpf).expect("verifier accepts the program");
        program::load_named(&mut ebpf, SELFTEST_PROGRAM).expect("verifier accepts the self-test");
        Self { ebpf, maps, lookup }
    }

    fn program(&mut self, name: &str) -> &mut Xdp {
        self.ebpf
            .program_mut(name)
            .expect("program in object")
            .try_into()
            .expect("an XDP program")
    }

    /// The program's return code for one frame.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        };
        self.program(PROGRAM_NAME)
            .test_run(opts)
            .expect("BPF_PROG_TEST_RUN")
            .return_value
    }

    /// Counter slot and return code the self-test program gives a source, without counting.
    pub fn classify(&mut self, src: IpAddr) -> (u32, u32) {
        self.classify_frame(&selftest::frame(src))
    }

    /// Counter slot and return code the self-test program gives a frame, without counting.
    pub fn classify_frame(&mut self, frame: &[u8]) -> (u32, u32) {
        let (slot, action) =
            selftest::judge(self.program(SELFTEST_PROGRAM), frame).expect("BPF_PROG_TEST_RUN");
        let code = match action {
            Some(filter_user::model::policy::Action::Pass) => XDP_PASS,
            Some(filter_user::model::policy::Action::Drop) => XDP_DROP,
            None => 0,
        };
        (slot, code)
    }
}

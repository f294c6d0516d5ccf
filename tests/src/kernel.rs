//! The XDP program loaded into the kernel without attaching it, for BPF_PROG_TEST_RUN.

use aya::{
    programs::{TestRun as _, TestRunOptions, Xdp},
    Ebpf,
};
use filter_common::PROGRAM_NAME;
use filter_user::{compile::Prefixes, maps::FilterMaps, policy::Policy, program};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// The program with its maps filled, ready for test runs.
pub struct LoadedFilter {
    ebpf: Ebpf,
    pub maps: FilterMaps,
}

impl LoadedFilter {
    /// Loads the program with `prefixes` and `policy`; panics with the reason on failure.
    #[must_use]
    pub fn new(prefixes: &Prefixes, policy: &Policy) -> Self {
        let mut ebpf = program::load_object().expect("load object");
        let mut maps = FilterMaps::take(&mut ebpf, None).expect("take maps");
        maps.write_regions(prefixes).expect("write regions");
        maps.write_policy(policy).expect("write policy");
        program::load_xdp(&mut ebpf).expect("verifier accepts the program");
        Self { ebpf, maps }
    }

    /// The program's return code for one frame.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .expect("program in object")
            .try_into()
            .expect("an XDP program");
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        };
        prog.test_run(opts).expect("BPF_PROG_TEST_RUN").return_value
    }
}

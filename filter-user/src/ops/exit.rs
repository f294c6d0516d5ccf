//! Every exit status a command ends with: the one list the code, the docs' table (docs/updates.md) and the man
//! pages' EXIT STATUS sections come from (`cargo xtask lint` checks the docs against it).

/// A command's exit status. Cron jobs and scripts act on these; their numbers never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exit {
    Success,
    Failed,
    Usage,
    Unchanged,
    Busy,
    Empty,
    TooDifferent,
    CountryMissing,
    Older,
    SelfTest,
    LockOut,
}

impl Exit {
    /// Every status, in numeric order.
    pub const ALL: [Self; 11] = [
        Self::Success,
        Self::Failed,
        Self::Usage,
        Self::Unchanged,
        Self::Busy,
        Self::Empty,
        Self::TooDifferent,
        Self::CountryMissing,
        Self::Older,
        Self::SelfTest,
        Self::LockOut,
    ];

    /// The number the process exits with.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Unchanged => 3,
            Self::Busy => 4,
            Self::Empty => 5,
            Self::TooDifferent => 6,
            Self::CountryMissing => 7,
            Self::Older => 8,
            Self::SelfTest => 9,
            Self::LockOut => 10,
        }
    }

    /// What the status means, as the docs' table says it.
    #[must_use]
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Success => {
                "success; for `update`: halves switched (with `--all`: at least one interface \
                 updated, none failed). Bookkeeping after the switch that fails (renaming the \
                 known-good files, the status record) is a `warning: IF: switched, but ...` \
                 line, never a failure: the new data is live"
            }
            Self::Failed => {
                "failed before any change: unreadable or corrupt data, data or exceptions the \
                 maps cannot hold, a failed download, an interface not attached, gone or with an \
                 unfinished attach, a kernel error. Nothing changed"
            }
            Self::Usage => {
                "bad command line (unknown option, bad value); nothing was read or changed"
            }
            Self::Unchanged => {
                "unchanged: same content hash as the loaded data, nothing switched (`--all`: \
                 every interface); a missing or damaged known-good copy is written again \
                 (`note:`), or a `warning:` says it could not be"
            }
            Self::Busy => {
                "busy: another attach, detach, update or rollback of the interface held its lock \
                 past `--wait`"
            }
            Self::Empty => {
                "refused: the new data is empty (a source without ranges or without country \
                 data); cannot be forced"
            }
            Self::TooDifferent => {
                "refused: the IPv4 or IPv6 prefix count or address coverage changes by more than \
                 `--max-change` (default 10%)"
            }
            Self::CountryMissing => {
                "refused: a country the policy names (in its main rule or a service) has no \
                 prefixes in the new data, where the loaded data had some or the loaded policy \
                 did not name it in the same kind of list"
            }
            Self::Older => {
                "refused: the new data was built before the loaded data (database build epoch, \
                 or file time)"
            }
            Self::SelfTest => {
                "the self-test on the inactive half failed; packets still see the old data"
            }
            Self::LockOut => {
                "refused by the lock-out guard: the new policy would drop the client of your SSH \
                 session or the peer of an established TCP connection to the interface (listed); \
                 `--force` overrides"
            }
        }
    }

    /// The docs' table, `| exit | meaning |` in Markdown.
    #[must_use]
    pub fn markdown_table() -> String {
        let mut table = String::from("| exit | meaning |\n|---|---|\n");
        for exit in Self::ALL {
            table.push_str(&format!("| {} | {} |\n", exit.code(), exit.meaning()));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (0..=10).collect::<Vec<u8>>());
    }
}

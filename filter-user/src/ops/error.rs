//! The error every operation returns: a kind the caller can act on (exit code, log field,
//! retry or not) beside the whole message.

use crate::{
    data::DataError,
    kernel::selftest::SelftestError,
    ops::{
        exit::Exit,
        guards::Refusal,
        lock::{Busy, Cancelled},
        lockout::LockOut,
        update::Refused,
    },
};

/// What kind of failure an operation met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A guard refused the change (empty data, large change, older data, ...); nothing changed.
    Refused,
    /// The policy would drop an SSH client or an established TCP peer; nothing changed.
    LockOut,
    /// Another command holds the interface.
    Busy,
    /// The new tables judged a sample address wrongly; the old ones stay live.
    SelfTest,
    /// Anything else: bad input, a missing interface, a kernel error.
    Failed,
}

impl ErrorKind {
    /// The word the agent logs as `reason=`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::LockOut => "lockout",
            Self::Busy => "busy",
            Self::SelfTest => "selftest",
            Self::Failed => "failed",
        }
    }
}

/// Displays the whole chain of `error` itself; not a `source` field, or `{:#}` would print the
/// chain twice.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct OpError {
    kind: ErrorKind,
    exit_code: u8,
    error: anyhow::Error,
}

impl OpError {
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    #[must_use]
    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    /// The error of type `E` this one is, or wraps.
    #[must_use]
    pub fn downcast_ref<E: std::fmt::Display + std::fmt::Debug + Send + Sync + 'static>(
        &self,
    ) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// Whether `--force` would have gone ahead: a guard or the lock-out check refused.
    #[must_use]
    pub fn forceable(&self) -> bool {
        Self::is_forceable(&self.error)
    }

    /// [`Self::forceable`] for any error a command ends with.
    #[must_use]
    pub fn is_forceable(err: &anyhow::Error) -> bool {
        match err.downcast_ref::<Self>() {
            Some(op) => op.forceable(),
            None => {
                err.downcast_ref::<Refused>().is_some() || err.downcast_ref::<LockOut>().is_some()
            }
        }
    }

    /// The exit code for any error a command ends with.
    #[must_use]
    pub fn exit_code_of(err: &anyhow::Error) -> u8 {
        match err.downcast_ref::<Self>() {
            Some(op) => op.exit_code,
            None => classify(err).1,
        }
    }
}

impl From<anyhow::Error> for OpError {
    fn from(error: anyhow::Error) -> Self {
        let (kind, exit_code) = match error.downcast_ref::<Self>() {
            Some(op) => (op.kind, op.exit_code),
            None => classify(&error),
        };
        Self {
            kind,
            exit_code,
            error,
        }
    }
}

fn classify(err: &anyhow::Error) -> (ErrorKind, u8) {
    if let Some(refused) = err.downcast_ref::<Refused>() {
        let code = refused
            .0
            .first()
            .map_or(Exit::Failed.code(), Refusal::exit_code);
        return (ErrorKind::Refused, code);
    }
    // A source without ranges is the "empty data" refusal, caught while reading.
    if let Some(DataError::Empty { .. } | DataError::NoCountries { .. }) =
        err.downcast_ref::<DataError>()
    {
        return (ErrorKind::Refused, Refusal::Empty.exit_code());
    }
    if err.downcast_ref::<LockOut>().is_some() {
        return (ErrorKind::LockOut, Exit::LockOut.code());
    }
    if err.downcast_ref::<Busy>().is_some() || err.downcast_ref::<Cancelled>().is_some() {
        return (ErrorKind::Busy, Exit::Busy.code());
    }
    if err.downcast_ref::<SelftestError>().is_some() {
        return (ErrorKind::SelfTest, Exit::SelfTest.code());
    }
    (ErrorKind::Failed, Exit::Failed.code())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn no_error_type_formats_its_source_twice() {
        let io = || std::io::Error::other("disk on fire");
        let path = PathBuf::from("x");
        let errors: Vec<anyhow::Error> = vec![
            crate::data::DataError::Io {
                path: path.clone(),
                source: io(),
            }
            .into(),
            crate::compile::artifact::ArtifactError::Io {
                path: path.clone(),
                source: io(),
            }
            .into(),
            crate::ops::download::DownloadError::Body {
                url: "https://x/".to_owned(),
                source: io(),
            }
            .into(),
            crate::ops::download::DownloadError::Cache { path, source: io() }.into(),
        ];
        for err in errors {
            let rendered = format!("{err:#}");
            assert_eq!(rendered.matches("disk on fire").count(), 1, "{rendered}");
        }
    }
}

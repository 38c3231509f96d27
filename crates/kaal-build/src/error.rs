//! The crate's error type.

use std::{io, path::PathBuf, process::ExitStatus};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while building or booting an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A program could not be started at all (usually: it is not installed).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line, for the message.
        command: String,
        /// Why it could not start.
        #[source]
        source: io::Error,
    },
    /// A program ran and reported failure.
    #[error("`{command}` failed ({status})")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// A required tool is missing and could not be installed from here.
    #[error("{tool} is missing; install it with:\n\n    {install}\n")]
    MissingTool {
        /// What is missing.
        tool: String,
        /// The exact command that installs it.
        install: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The component archive could not be packed.
    #[error("cannot pack component `{component}`: {reason}")]
    Archive {
        /// The archive entry's name.
        component: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The system description (`system.toml`) is invalid or could not be read or written.
    #[error(transparent)]
    System(#[from] crate::system::SystemTomlError),
    /// A value given by the caller (a CPU name, a GIC version, ...) is not valid.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

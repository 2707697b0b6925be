//! The CLI's error type: every failure carries the process exit status the
//! docker CLI would use for it.

use std::fmt;

/// Exit status for errors raised by the CLI itself or by the daemon while
/// creating/starting a container (docker uses 125 for these).
pub const EXIT_CLI_ERROR: i32 = 125;
/// Exit status when the container command cannot be invoked (permission denied).
pub const EXIT_CANNOT_INVOKE: i32 = 126;
/// Exit status when the container command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// A failure that ends the command with a given exit status.
#[derive(Debug, thiserror::Error)]
pub struct CliError {
    /// The process exit status.
    pub code: i32,
    /// The line printed on stderr (without the `vmrun: ` prefix); `None`
    /// exits silently (the message, if any, was already printed).
    pub message: Option<String>,
}

impl CliError {
    /// An error with a message and an exit status.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
        }
    }

    /// Bad user input detected before any API call (exit 125, like docker).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_CLI_ERROR, message)
    }

    /// A plain exit status with nothing more to print.
    pub fn status(code: i32) -> Self {
        Self {
            code,
            message: None,
        }
    }

    /// The same error with `vmrun: ` before its message (docker names itself
    /// in local option errors of `create`, but not in the daemon's).
    pub fn prefixed(self) -> Self {
        Self {
            code: self.code,
            message: self.message.map(|m| format!("vmrun: {m}")),
        }
    }

    /// An error returned by the daemon, printed like docker does.
    pub fn daemon(code: i32, err: &bollard::errors::Error) -> Self {
        Self::new(code, daemon_message(err))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m} (exit status {})", self.code),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

/// Renders an API error the way the docker CLI does
/// (`Error response from daemon: <message>`).
pub fn daemon_message(err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError { message, .. } => {
            format!("Error response from daemon: {}", message.trim_end())
        }
        E::DockerStreamError { error } => error.trim_end().to_string(),
        other => other.to_string(),
    }
}

/// The HTTP status of a daemon error response, if that is what `err` is.
pub fn status_code(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Maps a daemon error from `start` to docker's exit statuses: 127 when the
/// command was not found, 126 when it could not be invoked, 125 otherwise.
pub fn start_error_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        EXIT_NOT_FOUND
    } else if message.contains("permission denied") || message.contains("is a directory") {
        EXIT_CANNOT_INVOKE
    } else {
        EXIT_CLI_ERROR
    }
}

/// Renders an I/O error the way Go prints one (`no such file or directory`,
/// not `No such file or directory (os error 2)`), for docker-like messages.
pub fn go_io_error(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => &text[..i],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A shorthand for results of command implementations.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_exit_codes() {
        assert_eq!(
            start_error_code(
                "failed to create shim task: exec: \"nope\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(start_error_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(start_error_code("cgroup setup failed"), 125);
    }

    #[test]
    fn io_errors_read_like_go() {
        let err = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_io_error(&err), "no such file or directory");
        let err = std::io::Error::other("Custom thing");
        assert_eq!(go_io_error(&err), "custom thing");
    }

    #[test]
    fn daemon_errors_are_prefixed() {
        let err = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x\n".into(),
        };
        assert_eq!(
            daemon_message(&err),
            "Error response from daemon: No such container: x"
        );
        assert_eq!(status_code(&err), Some(404));
    }
}

//! The crate's error type: every input that comes from outside (a caller's tensor, a file, a
//! setting) is checked and answered with an [`Error`] naming what was wrong, never a panic.

/// What went wrong, with a message that names the offending input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor of the wrong shape was given to a layer or to the model.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        /// The tensor, e.g. `Conv2d input`.
        what: String,
        /// The shape that was expected, e.g. `(N, 1, 28, 28)`.
        expected: String,
        /// The shape that was given, e.g. `(4, 3, 28, 28)`.
        got: String,
    },
    /// A value outside its domain: a label above 9, a NaN pixel, a negative learning rate.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A setting outside its range, named by its field as the core's settings and the page's
    /// JSON name it (`batch_size`, `learning_rate`, …): each face can name it its own way (the
    /// command line by its flag).
    #[error("invalid input: {name} {message}")]
    Setting {
        /// The setting's field, e.g. `batch_size`.
        name: &'static str,
        /// What is wrong with its value, e.g. `must be at least 1, got 0`.
        message: String,
    },
    /// An IDX file that is not a well-formed MNIST file.
    #[error("IDX file {name}: {message}")]
    Idx {
        /// The file's name or path.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A weights file (safetensors) that cannot be loaded into the model.
    #[error("weights file: {0}")]
    Weights(String),
    /// A checkpoint file (a session's saved state) that cannot be restored.
    #[error("checkpoint file: {0}")]
    Checkpoint(String),
    /// Training produced a non-finite loss or non-finite weights; the weights were restored.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The path that could not be read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A UNIPEN file that cannot be read as one (see [`crate::data::unipen`]).
    #[error("UNIPEN file {file}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Unipen {
        /// The file's path (or name), as the distribution names it.
        file: String,
        /// The line, counted from 1, when the problem is on one line.
        line: Option<usize>,
        /// What is wrong with it.
        message: String,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Setting`] for the setting `name`.
pub(crate) fn setting_error(name: &'static str, message: impl Into<String>) -> Error {
    Error::Setting { name, message: message.into() }
}

/// Builds an [`Error::Shape`] from a tensor's name, the expected shape and the given shape.
pub(crate) fn shape_error(what: &str, expected: impl Into<String>, got: &[usize]) -> Error {
    Error::Shape { what: what.to_string(), expected: expected.into(), got: fmt_shape(got) }
}

/// Formats a shape as PyTorch prints it, e.g. `(64, 1, 28, 28)`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("({})", dims.join(", "))
}

/// A float as a message shows it: the shortest decimal that reads back to the same value
/// (`0.1307`, `1e-7`, `NaN`), without a trailing `.0` on whole numbers.
///
/// Written by zmij, which the JSON writer already brings, rather than by `Display`: the core's
/// float formatter (Grisu with a Dragon4 fallback, for every precision) is about 10 KiB of the
/// gzipped wasm module. Every float in a message of this crate goes through `Num`.
pub(crate) struct Num<T>(pub T);

macro_rules! num_display {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for Num<$t> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut buffer = zmij::Buffer::new();
                let text = buffer.format(self.0);
                f.write_str(text.strip_suffix(".0").unwrap_or(text))
            }
        }
    )*};
}
num_display!(f32, f64);

#[cfg(test)]
mod tests {
    use super::Num;

    #[test]
    fn num_shows_the_shortest_decimal() {
        let shown: Vec<String> =
            [0.1307f32, 1.0, -2.5, 1e-7, f32::NAN, f32::INFINITY].iter().map(|&v| Num(v).to_string()).collect();
        assert_eq!(shown, ["0.1307", "1", "-2.5", "1e-7", "NaN", "inf"]);
        assert_eq!(Num(0.1f64).to_string(), "0.1");
        assert_eq!(Num(1e6f64).to_string(), "1000000");
    }
}

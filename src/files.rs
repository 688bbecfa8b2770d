//! Reading the files a person names (weights, checkpoints, MNIST, UNIPEN) natively, with a limit.

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// [`read_bounded_io`], its error naming `path` ([`crate::Error::Io`]).
///
/// # Errors
/// As [`read_bounded_io`], in [`crate::Error::Io`].
pub(crate) fn read_bounded(path: &Path, max_bytes: u64) -> crate::Result<Vec<u8>> {
    read_bounded_io(path, max_bytes).map_err(|source| crate::Error::Io { path: path.display().to_string(), source })
}

/// The bytes of the regular file at `path` (symbolic links followed), reading at most
/// `max_bytes + 1` of them: a file that is larger, or that never ends (`/dev/zero`), is refused
/// without being read whole, where reading it would take all the memory there is.
///
/// # Errors
/// The open or read error; [`ErrorKind::InvalidInput`] for what is not a regular file (a device,
/// a named pipe, whose reading could also wait forever for a writer, or a folder);
/// [`ErrorKind::FileTooLarge`] for a file above `max_bytes`. Their messages read after the path,
/// as [`read_bounded`] shows them.
pub(crate) fn read_bounded_io(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        return Err(Error::new(ErrorKind::InvalidInput, "is a folder, not a file"));
    }
    if !metadata.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "is not a regular file (a device or a named pipe?)"));
    }
    if metadata.len() > max_bytes {
        return Err(too_large(format!("{} bytes, more", metadata.len()), max_bytes));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max_bytes + 1).read_to_end(&mut bytes)?;
    // The file may have grown since its size was read.
    if bytes.len() as u64 > max_bytes {
        return Err(too_large("more".into(), max_bytes));
    }
    Ok(bytes)
}

fn too_large(size: String, max_bytes: u64) -> Error {
    Error::new(ErrorKind::FileTooLarge, format!("{size} than the {max_bytes} bytes accepted here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_folders_and_files_above_the_limit() {
        let dir = std::env::temp_dir();
        assert_eq!(read_bounded_io(Path::new("/dev/zero"), 10).unwrap_err().kind(), ErrorKind::InvalidInput);
        let folder = read_bounded_io(&dir, 10).unwrap_err();
        assert_eq!(folder.to_string(), "is a folder, not a file");
        let path = dir.join(format!("lenet-files-{}", std::process::id()));
        std::fs::write(&path, [7u8; 11]).unwrap();
        let big = read_bounded(&path, 10).unwrap_err();
        assert_eq!(big.to_string(), format!("{}: 11 bytes, more than the 10 bytes accepted here", path.display()));
        let big = read_bounded_io(&path, 10).unwrap_err();
        let fits = read_bounded(&path, 11).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(big.to_string(), "11 bytes, more than the 10 bytes accepted here");
        assert_eq!(fits, [7u8; 11]);
    }
}

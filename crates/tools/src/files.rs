//! The built-in workspace file tools (`read_file`, `write_file`, `list_files`): an assistant
//! reads, writes and lists files in its own directory and nothing outside it.
//!
//! Two layers keep it there. Every path is checked as text first ([`validate_path`]: no
//! absolute paths, no `..`, bounded lengths), and every filesystem call then goes through a
//! [`cap_std::fs::Dir`] handle opened once on the assistant's directory, which resolves
//! symlinks itself and refuses any resolution that would leave the directory. Only
//! [`AssistantFiles::open`] uses ambient authority, and only for the root.
//!
//! Error messages are read by the model and the user, so they never contain host paths.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions};
use serde::Serialize;
use serde_json::{json, Value};

/// Tool names as the model sees them.
pub const READ_FILE: &str = "read_file";
pub const WRITE_FILE: &str = "write_file";
pub const LIST_FILES: &str = "list_files";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLimits {
    /// A read returns at most this many bytes and says it was truncated.
    pub max_read_bytes: usize,
    /// A write of more than this many bytes is refused outright.
    pub max_write_bytes: usize,
    /// The whole relative path, in bytes.
    pub max_path_bytes: usize,
    /// One path component, in bytes (255 is the usual filesystem limit).
    pub max_component_bytes: usize,
    /// A listing returns at most this many entries and says it was cut.
    pub max_entries: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_read_bytes: 256 * 1024,
            max_write_bytes: 1024 * 1024,
            max_path_bytes: 1024,
            max_component_bytes: 255,
            max_entries: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("path leaves the assistant's directory")]
    Escapes,
    #[error("absolute paths are not allowed; use a path relative to the assistant's directory")]
    Absolute,
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    #[error("no such file or directory")]
    NotFound,
    #[error("not a regular file")]
    NotAFile,
    #[error("not a directory")]
    NotADirectory,
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("path or file name is too long")]
    NameTooLong,
    #[error("file is not UTF-8 text")]
    NotText,
    #[error("file operation failed: {0}")]
    Io(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadResult {
    pub content: String,
    /// The file holds more than `content`: it was cut at `max_read_bytes`.
    pub truncated: bool,
    /// The file's full size in bytes.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteResult {
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    /// Reported as itself, not followed: a listing does not reveal where a link points.
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    /// Length in bytes for files, 0 for everything else.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListResult {
    /// Sorted by name.
    pub entries: Vec<Entry>,
    /// The directory holds more than `max_entries` entries.
    pub truncated: bool,
}

/// One assistant's directory. Cheap to clone: clones share the open handle.
#[derive(Clone, Debug)]
pub struct AssistantFiles {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: Dir,
    limits: FileLimits,
}

impl AssistantFiles {
    /// Opens (creating it if missing) the assistant's directory. This is the only place that
    /// uses ambient authority; every later operation goes through the returned handle.
    pub fn open(root: &Path, limits: FileLimits) -> Result<AssistantFiles, FileError> {
        std::fs::create_dir_all(root).map_err(map_io)?;
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(map_io)?;
        Ok(AssistantFiles {
            inner: Arc::new(Inner { dir, limits }),
        })
    }

    pub fn limits(&self) -> &FileLimits {
        &self.inner.limits
    }

    /// Reads a UTF-8 text file, at most `max_read_bytes` of it.
    pub async fn read(&self, path: &str) -> Result<ReadResult, FileError> {
        let rel = validate_path(path, &self.inner.limits)?;
        if rel.as_os_str().is_empty() {
            return Err(FileError::InvalidPath("empty path"));
        }
        self.blocking(move |inner| inner.read(&rel)).await
    }

    /// Writes `content` to a file, creating parent directories inside the root. The write is
    /// atomic: readers (and a crash) see the old content or the new, never half of it.
    pub async fn write(&self, path: &str, content: &str) -> Result<WriteResult, FileError> {
        let rel = validate_path(path, &self.inner.limits)?;
        if rel.as_os_str().is_empty() {
            return Err(FileError::InvalidPath("empty path"));
        }
        let limit = self.inner.limits.max_write_bytes;
        if content.len() > limit {
            return Err(FileError::TooLarge { limit });
        }
        let content = content.to_owned();
        self.blocking(move |inner| inner.write(&rel, content.as_bytes()))
            .await
    }

    /// Lists a directory; `""` or `"."` is the root.
    pub async fn list(&self, path: &str) -> Result<ListResult, FileError> {
        let rel = validate_path(path, &self.inner.limits)?;
        self.blocking(move |inner| inner.list(&rel)).await
    }

    async fn blocking<T, F>(&self, op: F) -> Result<T, FileError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, FileError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || op(&inner))
            .await
            .map_err(|_| FileError::Io("the file operation did not complete".into()))?
    }
}

impl Inner {
    fn read(&self, rel: &Path) -> Result<ReadResult, FileError> {
        // Checked before opening: opening a FIFO or device for reading could block or have
        // side effects.
        if !self.dir.metadata(rel).map_err(map_io)?.is_file() {
            return Err(FileError::NotAFile);
        }
        let file = self.dir.open(rel).map_err(map_io)?;
        let meta = file.metadata().map_err(map_io)?;
        if !meta.is_file() {
            return Err(FileError::NotAFile);
        }
        let max = self.limits.max_read_bytes;
        let mut bytes = Vec::new();
        // One byte past the limit tells "exactly at the limit" from "cut", even if the file
        // changed size since the stat.
        (&file)
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(map_io)?;
        let truncated = bytes.len() > max;
        bytes.truncate(max);
        Ok(ReadResult {
            content: decode_text(bytes, truncated)?,
            truncated,
            size: meta.len(),
        })
    }

    fn write(&self, rel: &Path, content: &[u8]) -> Result<WriteResult, FileError> {
        if let Some(parent) = non_empty_parent(rel) {
            self.ensure_dir(parent)?;
        }
        let target = self.write_target(rel)?;
        let tmp = self.write_temp(non_empty_parent(&target), content)?;
        // rename does not follow a symlink at the target name, and cap-std resolves both
        // parents inside the root, so this cannot land outside even if the tree changed.
        if let Err(err) = self.dir.rename(&tmp, &self.dir, &target) {
            let _ = self.dir.remove_file(&tmp);
            return Err(map_io(err));
        }
        Ok(WriteResult {
            size: content.len() as u64,
        })
    }

    fn ensure_dir(&self, parent: &Path) -> Result<(), FileError> {
        // metadata first: it reports a symlinked parent that leaves the root as an escape,
        // where create_dir_all would only say "already exists".
        match self.dir.metadata(parent) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(FileError::NotADirectory),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.dir.create_dir_all(parent).map_err(map_io)
            }
            Err(err) => Err(map_io(err)),
        }
    }

    /// The path the new content replaces. A symlink is written through (to its target, which
    /// must be a file inside the root) rather than silently replaced by a plain file.
    fn write_target(&self, rel: &Path) -> Result<PathBuf, FileError> {
        match self.dir.symlink_metadata(rel) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(rel.to_path_buf()),
            Err(err) => Err(map_io(err)),
            Ok(meta) if meta.is_symlink() => {
                let resolved = self.dir.canonicalize(rel).map_err(map_io)?;
                if self.dir.metadata(&resolved).map_err(map_io)?.is_file() {
                    Ok(resolved)
                } else {
                    Err(FileError::NotAFile)
                }
            }
            Ok(meta) if meta.is_file() => Ok(rel.to_path_buf()),
            Ok(_) => Err(FileError::NotAFile),
        }
    }

    /// Writes the content to a fresh, synced temporary file in `parent` (so the rename stays
    /// within one filesystem) and returns its path.
    fn write_temp(&self, parent: Option<&Path>, content: &[u8]) -> Result<PathBuf, FileError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // A short fixed-shape name: a name derived from the target could exceed the
        // component limit. Retrying covers leftovers from a crashed earlier process.
        for _ in 0..8 {
            let name = format!(
                ".bastion-tmp-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let tmp = match parent {
                Some(parent) => parent.join(name),
                None => PathBuf::from(name),
            };
            let mut file = match self.dir.open_with(&tmp, &options) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(map_io(err)),
            };
            if let Err(err) = file.write_all(content).and_then(|()| file.sync_all()) {
                drop(file);
                let _ = self.dir.remove_file(&tmp);
                return Err(map_io(err));
            }
            return Ok(tmp);
        }
        Err(FileError::Io("could not create a temporary file".into()))
    }

    fn list(&self, rel: &Path) -> Result<ListResult, FileError> {
        let entries = if rel.as_os_str().is_empty() {
            self.dir.entries().map_err(map_io)?
        } else {
            if !self.dir.metadata(rel).map_err(map_io)?.is_dir() {
                return Err(FileError::NotADirectory);
            }
            self.dir
                .open_dir(rel)
                .map_err(map_io)?
                .entries()
                .map_err(map_io)?
        };
        let mut named = Vec::new();
        for entry in entries {
            let entry = entry.map_err(map_io)?;
            named.push((entry.file_name().to_string_lossy().into_owned(), entry));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let truncated = named.len() > self.limits.max_entries;
        named.truncate(self.limits.max_entries);

        let mut out = Vec::with_capacity(named.len());
        for (name, entry) in named {
            // DirEntry::metadata does not follow symlinks, so a link to a file outside the
            // root is reported as a symlink and never stat'ed through.
            let meta = entry.metadata().map_err(map_io)?;
            let (kind, size) = if meta.is_symlink() {
                (EntryKind::Symlink, 0)
            } else if meta.is_dir() {
                (EntryKind::Dir, 0)
            } else if meta.is_file() {
                (EntryKind::File, meta.len())
            } else {
                (EntryKind::Other, 0)
            };
            out.push(Entry { name, kind, size });
        }
        Ok(ListResult {
            entries: out,
            truncated,
        })
    }
}

/// Checks a model-supplied path as text and returns it as plain relative components (`.`
/// dropped; empty for the root). Runs before any filesystem call; cap-std is the second line.
///
/// Both `/` and `\` count as separators so `a\..\..\x` cannot slip past as one odd name on
/// Unix and then mean something else on Windows.
pub fn validate_path(path: &str, limits: &FileLimits) -> Result<PathBuf, FileError> {
    if path.contains('\0') {
        return Err(FileError::InvalidPath("contains a NUL byte"));
    }
    if path.len() > limits.max_path_bytes {
        return Err(FileError::NameTooLong);
    }
    if path.starts_with(['/', '\\']) || has_drive_prefix(path) {
        return Err(FileError::Absolute);
    }
    let mut rel = PathBuf::new();
    for component in path.split(['/', '\\']) {
        match component {
            "" | "." => {}
            ".." => return Err(FileError::Escapes),
            name if name.len() > limits.max_component_bytes => return Err(FileError::NameTooLong),
            name => rel.push(name),
        }
    }
    // The platform's own parser must agree that only plain names are left.
    if rel
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        Ok(rel)
    } else {
        Err(FileError::Escapes)
    }
}

/// `C:`, `c:\x`, `C:x`: a Windows drive, refused on every platform.
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

fn non_empty_parent(rel: &Path) -> Option<&Path> {
    rel.parent().filter(|parent| !parent.as_os_str().is_empty())
}

fn decode_text(bytes: Vec<u8>, truncated: bool) -> Result<String, FileError> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(err) => {
            let utf8 = err.utf8_error();
            // A cut at the read limit can split the last character; that is not binary
            // content, so drop the partial character instead of refusing the file.
            if truncated && utf8.error_len().is_none() {
                let mut bytes = err.into_bytes();
                bytes.truncate(utf8.valid_up_to());
                String::from_utf8(bytes).map_err(|_| FileError::NotText)
            } else {
                Err(FileError::NotText)
            }
        }
    }
}

/// Maps an I/O error to what the model may see: its kind, never the OS message's paths.
fn map_io(err: io::Error) -> FileError {
    // cap-std reports an attempted escape (`..` past the root, an absolute or outward
    // symlink) as PermissionDenied with no OS error code; a real EACCES carries one.
    if err.kind() == io::ErrorKind::PermissionDenied && err.raw_os_error().is_none() {
        return FileError::Escapes;
    }
    match err.kind() {
        io::ErrorKind::NotFound => FileError::NotFound,
        io::ErrorKind::NotADirectory => FileError::NotADirectory,
        io::ErrorKind::IsADirectory => FileError::NotAFile,
        io::ErrorKind::InvalidFilename => FileError::NameTooLong,
        kind => FileError::Io(kind.to_string()),
    }
}

/// The file tools as the model sees them, with the default limits: `(name, description,
/// JSON Schema of the arguments)`.
pub fn tool_specs() -> Vec<(&'static str, &'static str, Value)> {
    tool_specs_with(&FileLimits::default())
}

/// [`tool_specs`] for non-default limits, so the schema's bounds match what is enforced.
pub fn tool_specs_with(limits: &FileLimits) -> Vec<(&'static str, &'static str, Value)> {
    let path = |description: &str| {
        json!({
            "type": "string",
            "description": description,
            "maxLength": limits.max_path_bytes,
        })
    };
    vec![
        (
            READ_FILE,
            "Read a UTF-8 text file from your workspace directory. Long files are truncated.",
            json!({
                "type": "object",
                "properties": {
                    "path": path("Path relative to your workspace directory, e.g. notes/todo.md"),
                },
                "required": ["path"],
                "additionalProperties": false,
            }),
        ),
        (
            WRITE_FILE,
            "Create or replace a text file in your workspace directory. Missing parent \
             directories are created.",
            json!({
                "type": "object",
                "properties": {
                    "path": path("Path relative to your workspace directory, e.g. notes/todo.md"),
                    "content": {
                        "type": "string",
                        "description": "The complete new content of the file.",
                        "maxLength": limits.max_write_bytes,
                    },
                },
                "required": ["path", "content"],
                "additionalProperties": false,
            }),
        ),
        (
            LIST_FILES,
            "List the files and directories in a directory of your workspace.",
            json!({
                "type": "object",
                "properties": {
                    "path": path("Directory relative to your workspace directory; omit for the top level."),
                },
                "additionalProperties": false,
            }),
        ),
    ]
}

//! Attacks on the workspace file tools. Each sandbox is a temp dir holding `root/` (the
//! assistant's directory) and a sibling `outside/secret.txt` that must stay unreadable and
//! unchanged whatever the assistant asks for.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bastion_tools::files::{
    tool_specs, AssistantFiles, EntryKind, FileError, FileLimits, ListResult,
};
use tempfile::TempDir;

const SECRET: &str = "the launch codes";

struct Sandbox {
    tmp: TempDir,
    files: AssistantFiles,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox::with_limits(FileLimits::default())
    }

    fn with_limits(limits: FileLimits) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret.txt"), SECRET).unwrap();
        // root/ does not exist yet: open must create it.
        let files = AssistantFiles::open(&tmp.path().join("root"), limits).unwrap();
        Sandbox { tmp, files }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    fn secret_abs(&self) -> String {
        self.outside()
            .join("secret.txt")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Everything in the temp dir except what lives under root/: anything an escape could
    /// have created or changed.
    fn outside_root(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut all = snapshot(self.tmp.path());
        all.retain(|path, _| !path.starts_with("root/") && path != Path::new("root"));
        all
    }
}

/// Relative path -> file content (None for directories and symlinks), recursively, without
/// following symlinks.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, None);
                walk(base, &path, out);
            } else if meta.is_file() {
                out.insert(rel, Some(fs::read(&path).unwrap()));
            } else {
                out.insert(rel, None);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn names(list: &ListResult) -> Vec<&str> {
    list.entries.iter().map(|e| e.name.as_str()).collect()
}

#[tokio::test]
async fn traversal_and_absolute_paths_are_refused() {
    let sb = Sandbox::new();
    fs::create_dir(sb.root().join("a")).unwrap();
    let before = sb.outside_root();

    let secret_abs = sb.secret_abs();
    let attacks: Vec<(&str, FileError)> = vec![
        ("..", FileError::Escapes),
        ("../outside/secret.txt", FileError::Escapes),
        ("a/../../outside/secret.txt", FileError::Escapes),
        ("./../x", FileError::Escapes),
        ("a/./../..", FileError::Escapes),
        ("a\\..\\..\\outside\\secret.txt", FileError::Escapes),
        ("/etc/passwd", FileError::Absolute),
        (secret_abs.as_str(), FileError::Absolute),
        ("\\etc\\passwd", FileError::Absolute),
        ("C:\\Windows\\win.ini", FileError::Absolute),
        ("c:secret.txt", FileError::Absolute),
    ];

    for (path, expected) in &attacks {
        assert_eq!(
            sb.files.read(path).await.unwrap_err(),
            *expected,
            "read {path}"
        );
        assert_eq!(
            sb.files.write(path, "pwned").await.unwrap_err(),
            *expected,
            "write {path}"
        );
        assert_eq!(
            sb.files.list(path).await.unwrap_err(),
            *expected,
            "list {path}"
        );
    }

    assert_eq!(sb.outside_root(), before, "something outside root changed");
    assert_eq!(
        fs::read_to_string(sb.outside().join("secret.txt")).unwrap(),
        SECRET
    );
    // Nothing was created inside root either.
    assert_eq!(snapshot(&sb.root()).len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_out_of_the_root_are_refused() {
    use std::os::unix::fs::symlink;

    let sb = Sandbox::new();
    let root = sb.root();
    symlink("../outside/secret.txt", root.join("rel_link")).unwrap();
    symlink(sb.secret_abs(), root.join("abs_link")).unwrap();
    symlink("../outside", root.join("rel_dir_link")).unwrap();
    symlink(sb.outside(), root.join("abs_dir_link")).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    // Resolves outside only after climbing through a real directory.
    symlink("../../outside/secret.txt", root.join("sub/deep_link")).unwrap();
    let before = sb.outside_root();
    let links_before = snapshot(&root);

    for link in ["rel_link", "abs_link", "sub/deep_link"] {
        assert_eq!(
            sb.files.read(link).await.unwrap_err(),
            FileError::Escapes,
            "read {link}"
        );
        assert_eq!(
            sb.files.write(link, "pwned").await.unwrap_err(),
            FileError::Escapes,
            "write {link}"
        );
    }
    for link in ["rel_dir_link", "abs_dir_link"] {
        assert_eq!(
            sb.files.list(link).await.unwrap_err(),
            FileError::Escapes,
            "list {link}"
        );
        let inner = format!("{link}/secret.txt");
        assert_eq!(
            sb.files.read(&inner).await.unwrap_err(),
            FileError::Escapes,
            "read {inner}"
        );
        for target in [format!("{link}/secret.txt"), format!("{link}/new.txt")] {
            assert_eq!(
                sb.files.write(&target, "pwned").await.unwrap_err(),
                FileError::Escapes,
                "write {target}"
            );
        }
        let nested = format!("{link}/made/up/dirs.txt");
        assert_eq!(
            sb.files.write(&nested, "pwned").await.unwrap_err(),
            FileError::Escapes,
            "write {nested}"
        );
    }

    assert_eq!(sb.outside_root(), before, "something outside root changed");
    // The refused writes did not replace the links with plain files either.
    assert_eq!(snapshot(&root), links_before);

    // Listing the root shows the links as links, without following them.
    let list = sb.files.list("").await.unwrap();
    let kinds: Vec<_> = list
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("abs_dir_link", EntryKind::Symlink),
            ("abs_link", EntryKind::Symlink),
            ("rel_dir_link", EntryKind::Symlink),
            ("rel_link", EntryKind::Symlink),
            ("sub", EntryKind::Dir),
        ]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_inside_the_root_work() {
    use std::os::unix::fs::symlink;

    let sb = Sandbox::new();
    let root = sb.root();
    fs::write(root.join("real.txt"), "inside").unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    symlink("real.txt", root.join("alias")).unwrap();
    symlink("../real.txt", root.join("sub/up_alias")).unwrap();
    symlink("sub", root.join("sub_alias")).unwrap();

    assert_eq!(sb.files.read("alias").await.unwrap().content, "inside");
    assert_eq!(
        sb.files.read("sub/up_alias").await.unwrap().content,
        "inside"
    );

    // Writing through an inside link updates its target and keeps the link.
    sb.files.write("alias", "updated").await.unwrap();
    assert_eq!(
        fs::read_to_string(root.join("real.txt")).unwrap(),
        "updated"
    );
    assert!(fs::symlink_metadata(root.join("alias"))
        .unwrap()
        .file_type()
        .is_symlink());

    sb.files.write("sub_alias/via_link.txt", "x").await.unwrap();
    assert_eq!(
        fs::read_to_string(root.join("sub/via_link.txt")).unwrap(),
        "x"
    );
    assert_eq!(
        names(&sb.files.list("sub_alias").await.unwrap()),
        vec!["up_alias", "via_link.txt"]
    );
}

#[tokio::test]
async fn overlong_and_malformed_names_are_refused() {
    let sb = Sandbox::new();
    let long_component = "a".repeat(300);
    let long_path = "abcd/".repeat(1000); // 5000 bytes of short components
    let nested_long = format!("notes/{long_component}/x.txt");

    for path in [
        long_component.as_str(),
        long_path.as_str(),
        nested_long.as_str(),
    ] {
        assert_eq!(
            sb.files.read(path).await.unwrap_err(),
            FileError::NameTooLong
        );
        assert_eq!(
            sb.files.write(path, "x").await.unwrap_err(),
            FileError::NameTooLong
        );
        assert_eq!(
            sb.files.list(path).await.unwrap_err(),
            FileError::NameTooLong
        );
    }

    for path in ["a\0b", "notes/\0", "\0"] {
        assert!(matches!(
            sb.files.read(path).await.unwrap_err(),
            FileError::InvalidPath(_)
        ));
        assert!(matches!(
            sb.files.write(path, "x").await.unwrap_err(),
            FileError::InvalidPath(_)
        ));
        assert!(matches!(
            sb.files.list(path).await.unwrap_err(),
            FileError::InvalidPath(_)
        ));
    }

    for path in ["", ".", "./", "a/.."] {
        assert!(sb.files.read(path).await.is_err(), "read {path:?}");
        assert!(sb.files.write(path, "x").await.is_err(), "write {path:?}");
    }

    assert!(snapshot(&sb.root()).is_empty(), "something was created");
}

#[tokio::test]
async fn os_name_limit_maps_to_name_too_long() {
    // With our own component limit lifted, the filesystem's 255-byte limit still refuses,
    // and that refusal is reported the same way.
    let sb = Sandbox::with_limits(FileLimits {
        max_component_bytes: 4096,
        ..FileLimits::default()
    });
    let name = "b".repeat(300);
    assert_eq!(
        sb.files.write(&name, "x").await.unwrap_err(),
        FileError::NameTooLong
    );
    assert_eq!(
        sb.files.read(&name).await.unwrap_err(),
        FileError::NameTooLong
    );
    assert!(snapshot(&sb.root()).is_empty());
}

#[tokio::test]
async fn round_trip_write_read_list() {
    let sb = Sandbox::new();
    let written = sb.files.write("notes/a.txt", "hello\n").await.unwrap();
    assert_eq!(written.size, 6);
    assert!(sb.root().join("notes").is_dir());

    let read = sb.files.read("notes/a.txt").await.unwrap();
    assert_eq!(read.content, "hello\n");
    assert!(!read.truncated);
    assert_eq!(read.size, 6);
    assert_eq!(
        sb.files.read("./notes//a.txt").await.unwrap().content,
        "hello\n"
    );

    // Overwrite replaces the content and leaves no temporary file behind.
    sb.files.write("notes/a.txt", "bye").await.unwrap();
    assert_eq!(sb.files.read("notes/a.txt").await.unwrap().content, "bye");
    sb.files.write("top.txt", "t").await.unwrap();

    for root in ["", ".", "./"] {
        let list = sb.files.list(root).await.unwrap();
        assert!(!list.truncated);
        assert_eq!(names(&list), vec!["notes", "top.txt"]);
        assert_eq!(list.entries[0].kind, EntryKind::Dir);
        assert_eq!(list.entries[1].kind, EntryKind::File);
        assert_eq!(list.entries[1].size, 1);
    }
    let notes = sb.files.list("notes").await.unwrap();
    assert_eq!(names(&notes), vec!["a.txt"]);
    assert_eq!(notes.entries[0].size, 3);

    // Clones share the handle.
    let clone = sb.files.clone();
    assert_eq!(clone.read("top.txt").await.unwrap().content, "t");
}

#[tokio::test]
async fn reads_are_capped_and_marked_truncated() {
    let sb = Sandbox::with_limits(FileLimits {
        max_read_bytes: 1024,
        ..FileLimits::default()
    });
    fs::write(sb.root().join("big.txt"), "x".repeat(1024 * 1024)).unwrap();
    let read = sb.files.read("big.txt").await.unwrap();
    assert_eq!(read.content.len(), 1024);
    assert!(read.truncated);
    assert_eq!(read.size, 1024 * 1024);

    // Exactly at the limit is not truncated.
    fs::write(sb.root().join("exact.txt"), "y".repeat(1024)).unwrap();
    let read = sb.files.read("exact.txt").await.unwrap();
    assert_eq!(read.content.len(), 1024);
    assert!(!read.truncated);

    // A cut through a multi-byte character drops that character, not the file.
    fs::write(sb.root().join("odd.txt"), format!("a{}", "é".repeat(1000))).unwrap();
    let read = sb.files.read("odd.txt").await.unwrap();
    assert!(read.truncated);
    assert_eq!(read.content, format!("a{}", "é".repeat(511)));
}

#[tokio::test]
async fn oversized_writes_are_refused_and_create_nothing() {
    let sb = Sandbox::with_limits(FileLimits {
        max_write_bytes: 10,
        ..FileLimits::default()
    });
    assert_eq!(
        sb.files
            .write("dir/big.txt", "01234567890")
            .await
            .unwrap_err(),
        FileError::TooLarge { limit: 10 }
    );
    assert!(snapshot(&sb.root()).is_empty());
    assert_eq!(
        sb.files.write("ok.txt", "0123456789").await.unwrap().size,
        10
    );
}

#[tokio::test]
async fn wrong_kinds_and_missing_paths() {
    let sb = Sandbox::new();
    let root = sb.root();
    fs::write(root.join("bin.dat"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
    fs::create_dir(root.join("dir")).unwrap();
    fs::write(root.join("file.txt"), "f").unwrap();

    assert_eq!(
        sb.files.read("bin.dat").await.unwrap_err(),
        FileError::NotText
    );
    assert_eq!(sb.files.read("dir").await.unwrap_err(), FileError::NotAFile);
    assert_eq!(
        sb.files.read("missing.txt").await.unwrap_err(),
        FileError::NotFound
    );
    assert_eq!(
        sb.files.read("nope/missing.txt").await.unwrap_err(),
        FileError::NotFound
    );
    assert_eq!(
        sb.files.list("file.txt").await.unwrap_err(),
        FileError::NotADirectory
    );
    assert_eq!(
        sb.files.list("missing").await.unwrap_err(),
        FileError::NotFound
    );
    assert_eq!(
        sb.files.write("dir", "x").await.unwrap_err(),
        FileError::NotAFile
    );
    assert_eq!(
        sb.files.write("file.txt/child.txt", "x").await.unwrap_err(),
        FileError::NotADirectory
    );
    assert_eq!(fs::read_to_string(root.join("file.txt")).unwrap(), "f");
}

#[tokio::test]
async fn listings_are_sorted_and_capped() {
    let sb = Sandbox::with_limits(FileLimits {
        max_entries: 3,
        ..FileLimits::default()
    });
    for name in ["e", "c", "a", "d", "b"] {
        fs::write(sb.root().join(name), name).unwrap();
    }
    let list = sb.files.list("").await.unwrap();
    assert!(list.truncated);
    assert_eq!(names(&list), vec!["a", "b", "c"]);
}

#[tokio::test]
async fn concurrent_writes_never_leave_a_mixed_file() {
    let sb = Sandbox::new();
    let contents: Vec<String> = (0..8u8)
        .map(|i| char::from(b'a' + i).to_string().repeat(64 * 1024))
        .collect();
    let tasks: Vec<_> = contents
        .iter()
        .map(|content| {
            let files = sb.files.clone();
            let content = content.clone();
            tokio::spawn(async move { files.write("shared.txt", &content).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let read = sb.files.read("shared.txt").await.unwrap();
    assert!(contents.contains(&read.content));
    // Only the target remains: every temporary file was renamed away.
    assert_eq!(names(&sb.files.list("").await.unwrap()), vec!["shared.txt"]);
}

#[test]
fn tool_specs_are_strict() {
    let specs = tool_specs();
    let names: Vec<_> = specs.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, vec!["read_file", "write_file", "list_files"]);
    for (name, description, schema) in &specs {
        assert!(!description.is_empty());
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name}");
        assert_eq!(schema["properties"]["path"]["type"], "string", "{name}");
        assert_eq!(schema["properties"]["path"]["maxLength"], 1024, "{name}");
    }
    assert_eq!(specs[0].2["required"], serde_json::json!(["path"]));
    assert_eq!(
        specs[1].2["required"],
        serde_json::json!(["path", "content"])
    );
    assert!(specs[2].2.get("required").is_none());
}

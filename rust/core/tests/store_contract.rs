//! The two library stores agree: one scenario touching every operation of
//! `LibraryStore` (odd file names included: bytes that are not UTF-8, a
//! newline, a 255-byte name) runs on SQLite and on PostgreSQL, and every
//! answer each store gave is the same, timestamps aside.

use std::fmt::Debug;
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use phasekit_core::content::Want;
use phasekit_core::library::validate::{validate_page, ValidateMode};
use phasekit_core::library::{
    file_records, hash_missing, DigestText, EntryRow, FileDigest, FoundChecksum, HashedContent,
    IndexMode, LibraryStore, Location, NewIssue, ScanWriter,
};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::CancelToken;

#[allow(unused_macros)]
mod common;
use common::Libraries;

/// What a store answered, one line per answer, its work folder's name
/// left out.
struct Transcript(Vec<String>, String);

impl Transcript {
    fn note(&mut self, what: &str, value: impl Debug) {
        let line = format!("{what}: {value:?}").replace(&self.1, "<work>");
        self.0.push(line);
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// Entries without what differs between two trees made alike (times,
/// inode and device numbers).
fn timeless(mut rows: Vec<EntryRow>) -> Vec<EntryRow> {
    for row in &mut rows {
        row.indexed_at = 0.0;
        (row.mtime_ns, row.ctime_ns, row.inode, row.device) = (0, 0, 0, 0);
    }
    rows
}

/// A location without its creation time, its path relative to the work folder.
fn location(mut l: Location) -> Location {
    l.created_at = 0.0;
    l.path = l
        .path
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default()
        .to_vec();
    l
}

fn odd(name: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(name))
}

const LONG: [u8; 255] = [b'n'; 255];

fn tree(root: &Path) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir(root.join(odd(b"caf\xe9"))).unwrap();
    fs::write(root.join("a/one.TXT"), b"one").unwrap();
    fs::write(root.join("a/b/two"), b"two!").unwrap();
    fs::write(root.join("a/b/same"), b"two!").unwrap();
    fs::write(root.join(odd(b"caf\xe9/new\nline")), b"odd name").unwrap();
    fs::write(root.join(odd(&LONG)), vec![3u8; 200_000]).unwrap();
    fs::write(root.join(" -dash "), b"dash").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::hard_link(root.join("a/one.TXT"), root.join("hard")).unwrap();
    std::os::unix::fs::symlink("a/one.TXT", root.join("link")).unwrap();
}

fn scan(db: &mut impl LibraryStore, loc: i64, root: &Path, fresh: bool, hash: bool) -> String {
    let opts = WalkOptions {
        batch_size: 4,
        threads: 1,
        hash: Want {
            cas_id: hash,
            checksum: false,
        },
        ..WalkOptions::default()
    };
    let mut walker = Walker::new(&[bytes(root)], opts, CancelToken::new()).unwrap();
    let mut writer = ScanWriter::new(db, loc, fresh).unwrap();
    while let Some(batch) = walker.next_batch().unwrap() {
        assert!(writer.write_batch(db, &batch).unwrap().is_empty());
    }
    writer.sweep(db).unwrap();
    let sums = writer.aggregate(db).unwrap();
    format!("{:?} {sums:?}", writer.stats())
}

/// Every operation, in an order a library meets them; the answers.
fn scenario(db: &mut (impl LibraryStore + Send), work: &Path) -> Transcript {
    let mut t = Transcript(Vec::new(), work.to_string_lossy().into_owned());
    let root = work.join("tree");
    let copy = work.join("copy");
    fs::create_dir(&root).unwrap();
    tree(&root);
    assert!(db.schema_version().unwrap() >= 1);

    // Locations and settings.
    let loc = db
        .add_location(&bytes(&root), IndexMode::Content, true)
        .unwrap();
    t.note("added", location(loc.clone()));
    t.note(
        "again",
        db.add_location(&bytes(&root), IndexMode::Content, true)
            .map_err(|e| e.to_string()),
    );
    t.note(
        "relative",
        db.add_location(b"rel", IndexMode::Content, true)
            .map_err(|e| e.to_string()),
    );
    t.note("missing", db.location(9999).map_err(|e| e.to_string()));
    t.note(
        "by path",
        db.location_by_path(&bytes(&root)).unwrap().map(location),
    );
    t.note("by other path", db.location_by_path(b"/nowhere").unwrap());
    t.note("no setting", db.setting("thumbs").unwrap());
    db.set_setting("thumbs", Some("[1]")).unwrap();
    db.set_setting("thumbs", Some("[\"\\u00e9\"]")).unwrap();
    t.note("setting", db.setting("thumbs").unwrap());
    db.set_setting("thumbs", None).unwrap();
    t.note("setting removed", db.setting("thumbs").unwrap());
    t.note("pending at first", db.links_pending().unwrap());

    // A fresh content scan, then its links.
    t.note("fresh scan", scan(db, loc.id, &root, true, true));
    let all = timeless(db.entries(loc.id, 0, 1000).unwrap());
    t.note("entries", &all);
    t.note("page", timeless(db.entries(loc.id, all[2].id, 3).unwrap()));
    t.note("count", db.entry_count(loc.id).unwrap());
    for rel in [
        &b"caf\xe9/new\nline"[..],
        &LONG,
        b" -dash ",
        b"a/b",
        b"",
        b"nope/x",
    ] {
        t.note("at", db.entry_at(loc.id, rel).unwrap().map(|e| e.id));
    }
    let two = db.entry_at(loc.id, b"a/b/two").unwrap().unwrap();
    let two_cas = two.cas_id.clone().unwrap();
    t.note("pending", db.links_pending().unwrap());
    t.note(
        "by cas before links",
        db.entries_by_cas_id(&two_cas).unwrap().len(),
    );
    t.note("linked", db.link_identities(loc.id, false).unwrap());
    t.note("linked again", db.link_identities(loc.id, false).unwrap());
    t.note("pending after", db.links_pending().unwrap());
    t.note("by cas", timeless(db.entries_by_cas_id(&two_cas).unwrap()));
    let identity = db.content_identity(&two_cas).unwrap().map(|c| (c.0, c.1));
    t.note("identity", identity);
    t.note("aggregate", db.aggregate_sizes(loc.id).unwrap());

    // Changes: a file modified, one touched, one moved, a folder deleted,
    // one added; a re-scan without hashing.
    fs::write(root.join("a/one.TXT"), b"one, longer").unwrap();
    let long = root.join(odd(&LONG));
    File::options()
        .write(true)
        .open(&long)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(std::time::SystemTime::now()))
        .unwrap();
    fs::set_permissions(&long, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fs::rename(root.join(" -dash "), root.join("a/dash moved")).unwrap();
    fs::remove_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join(odd(b"caf\xe9/\xff\xfe")), b"new one").unwrap();
    t.note("rescan", scan(db, loc.id, &root, false, false));
    t.note(
        "after rescan",
        timeless(db.entries(loc.id, 0, 1000).unwrap()),
    );
    t.note(
        "lost identity",
        db.content_identity(&two_cas).unwrap().is_some(),
    );
    t.note(
        "linked after rescan",
        db.link_identities(loc.id, false).unwrap(),
    );
    t.note(
        "lost identity after link",
        db.content_identity(&two_cas).unwrap().is_some(),
    );

    // Content: what is missing, hashed in two pages, stored, linked.
    t.note("missing", db.count_missing(loc.id, false).unwrap());
    t.note("missing sums", db.count_missing(loc.id, true).unwrap());
    let missing = db.missing_content(loc.id, 0, 1, false).unwrap();
    let rest = db
        .missing_content(loc.id, missing[0].id, 100, false)
        .unwrap();
    let ids = |m: &[phasekit_core::library::MissingContent]| -> Vec<(i64, Vec<u8>, i64)> {
        m.iter().map(|m| (m.id, m.path.clone(), m.size)).collect()
    };
    t.note("first missing", ids(&missing));
    t.note("rest missing", ids(&rest));
    db.defer_links(loc.id).unwrap();
    let pass = hash_missing(db, loc.id, 0, 1, false, Some(1), &CancelToken::new()).unwrap();
    t.note("hashed", (pass.last_id, pass.hashed, pass.errors.len()));
    t.note("pending while deferred", db.links_pending().unwrap());
    let pass = hash_missing(
        db,
        loc.id,
        pass.last_id,
        100,
        true,
        Some(1),
        &CancelToken::new(),
    );
    t.note(
        "hashed rest",
        pass.map(|p| (p.hashed, p.errors.len())).unwrap(),
    );
    t.note("linked deferred", db.link_identities(loc.id, true).unwrap());
    t.note("pending after deferred", db.links_pending().unwrap());
    // An entry given twice in one page ends as the last said.
    let one = db.entry_at(loc.id, b"a/one.TXT").unwrap().unwrap();
    db.store_content(&[
        HashedContent {
            id: one.id,
            cas_id: Some("00000000000000aa".into()),
            checksum: Some("sum-a".into()),
        },
        HashedContent {
            id: one.id,
            cas_id: Some("00000000000000bb".into()),
            checksum: None,
        },
    ])
    .unwrap();
    t.note(
        "stored twice",
        timeless(vec![db.entry_at(loc.id, b"a/one.TXT").unwrap().unwrap()]),
    );
    t.note(
        "identity aa",
        db.content_identity("00000000000000aa").unwrap().is_some(),
    );
    t.note(
        "identity bb",
        db.content_identity("00000000000000bb")
            .unwrap()
            .map(|c| c.1),
    );
    t.note("links", db.link_identities(loc.id, true).unwrap());
    t.note(
        "identity aa pruned",
        db.content_identity("00000000000000aa").unwrap().is_some(),
    );

    // Duplicates: the files, and digests stored (one stale).
    let mut files = Vec::new();
    db.regular_files(loc.id, |f| files.push(f)).unwrap();
    files.sort_by_key(|f| f.id);
    let shown = files
        .iter()
        .map(|f| (f.id, &f.path, f.size, &f.cas_id, &f.checksum));
    t.note("regular files", shown.collect::<Vec<_>>());
    let mut records = file_records(db, loc.id, false).unwrap();
    records.sort_by_key(|r| r.entry_id);
    let relative = |r: &phasekit_core::dupes::FileRecord| r.path[root.as_os_str().len()..].to_vec();
    t.note(
        "records",
        records
            .iter()
            .map(|r| (relative(r), r.entry_id, r.cas))
            .collect::<Vec<_>>(),
    );
    let f = &files[0];
    let digests = [
        FileDigest {
            id: f.id,
            size: f.size,
            mtime_ns: f.mtime_ns,
            digest: DigestText::Checksum("c1".into()),
        },
        FileDigest {
            id: f.id,
            size: f.size,
            mtime_ns: f.mtime_ns,
            digest: DigestText::Checksum("c2".into()),
        },
        FileDigest {
            id: f.id,
            size: f.size + 1,
            mtime_ns: f.mtime_ns,
            digest: DigestText::CasId("ffffffffffffffff".into()),
        },
        FileDigest {
            id: files[1].id,
            size: files[1].size,
            mtime_ns: files[1].mtime_ns,
            digest: DigestText::CasId("0000000000000001".into()),
        },
    ];
    t.note("digests stored", db.store_digests(&digests).unwrap());
    t.note(
        "after digests",
        timeless(db.entries(loc.id, 0, 1000).unwrap()),
    );
    t.note(
        "identity of a digest",
        db.content_identity("0000000000000001")
            .unwrap()
            .map(|c| c.1),
    );

    // A copy of a folder, indexed shallow, takes its source's content.
    {
        fs::create_dir_all(copy.join("a")).unwrap();
        for name in ["one.TXT", "dash moved"] {
            let from = root.join("a").join(name);
            fs::copy(&from, copy.join("a").join(name)).unwrap();
            let mtime = fs::metadata(&from).unwrap().modified().unwrap();
            File::options()
                .write(true)
                .open(copy.join("a").join(name))
                .unwrap()
                .set_times(FileTimes::new().set_modified(mtime))
                .unwrap();
        }
        fs::write(copy.join("a/other"), b"other").unwrap();
    }
    let second = db
        .add_location(&bytes(&copy), IndexMode::Shallow, true)
        .unwrap();
    t.note("second", location(second.clone()));
    t.note("second scan", scan(db, second.id, &copy, true, false));
    t.note(
        "carried",
        db.carry_content((second.id, b"a"), (loc.id, b"a"), 0)
            .unwrap(),
    );
    t.note(
        "carried again",
        db.carry_content((second.id, b"a"), (loc.id, b"a"), 0)
            .unwrap(),
    );
    t.note("copy", timeless(db.entries(second.id, 0, 100).unwrap()));
    db.set_location_mode(second.id, IndexMode::Deep).unwrap();
    db.mark_indexed(second.id, 12.5).unwrap();
    t.note("second now", location(db.location(second.id).unwrap()));
    t.note(
        "mode of none",
        db.set_location_mode(9999, IndexMode::Deep)
            .map_err(|e| e.to_string()),
    );
    t.note(
        "all",
        db.locations()
            .unwrap()
            .into_iter()
            .map(location)
            .collect::<Vec<_>>(),
    );

    // Validation: a run in pages, its issues, a page recorded by hand.
    fs::remove_file(root.join("empty")).unwrap();
    fs::write(root.join("a/dash moved"), b"dash, longer").unwrap();
    db.clear_issues(loc.id).unwrap();
    let mut after = 0;
    loop {
        let pass = validate_page(
            db,
            loc.id,
            "run",
            after,
            3,
            ValidateMode::Complete,
            Some(1),
            &CancelToken::new(),
        )
        .unwrap();
        if pass.looked_at == 0 {
            break;
        }
        t.note(
            "validated",
            (
                pass.last_id,
                pass.looked_at,
                pass.hashed,
                pass.unverified,
                &pass.found,
            ),
        );
        after = pass.last_id;
    }
    t.note("issue counts", db.issue_counts("run").unwrap());
    let issues = db.issues("run", (0, ""), 100).unwrap();
    // The details name times: the rest of an issue is compared.
    let shown = |issues: Vec<phasekit_core::library::IssueRow>| -> Vec<(i64, String, Vec<u8>)> {
        issues
            .into_iter()
            .map(|i| (i.entry_id, i.category, i.path))
            .collect()
    };
    let first = (issues[0].entry_id, issues[0].category.clone());
    t.note("issues", shown(issues));
    t.note(
        "issues after",
        shown(db.issues("run", (first.0, &first.1), 2).unwrap()),
    );
    // Checksums for the copy's files, which have none (one of them stale).
    let mut copied = Vec::new();
    db.regular_files(second.id, |f| copied.push(f)).unwrap();
    copied.sort_by_key(|f| f.id);
    let target = copied.iter().find(|f| f.checksum.is_none()).unwrap();
    let stale = &copied[0];
    let recorded = db
        .record_validation(
            "hand",
            loc.id,
            &[
                NewIssue {
                    entry_id: 1,
                    category: "missing",
                    path: b"x\n\xff",
                    detail: "first",
                },
                NewIssue {
                    entry_id: 1,
                    category: "missing",
                    path: b"x\n\xff",
                    detail: "second",
                },
                NewIssue {
                    entry_id: 2,
                    category: "empty",
                    path: b"y",
                    detail: "",
                },
            ],
            &[
                FoundChecksum {
                    id: target.id,
                    checksum: "sum",
                    size: target.size,
                    mtime_ns: target.mtime_ns,
                    inode: target.inode,
                },
                FoundChecksum {
                    id: target.id,
                    checksum: "sum2",
                    size: target.size,
                    mtime_ns: target.mtime_ns,
                    inode: target.inode,
                },
                FoundChecksum {
                    id: stale.id,
                    checksum: "stale",
                    size: stale.size,
                    mtime_ns: 1,
                    inode: stale.inode,
                },
            ],
        )
        .unwrap();
    t.note("recorded", recorded);
    t.note("hand issues", db.issues("hand", (0, ""), 10).unwrap());
    t.note("hand counts", db.issue_counts("hand").unwrap());
    let sums = db
        .entries(second.id, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.checksum);
    t.note("checksums recorded", sums.collect::<Vec<_>>());
    t.note("cleared", db.clear_issues(loc.id).unwrap());
    t.note("cleared again", db.clear_issues(loc.id).unwrap());

    // Removing a location takes its entries, issues and lone identities.
    db.record_validation(
        "gone",
        second.id,
        &[NewIssue {
            entry_id: 1,
            category: "x",
            path: b"p",
            detail: "",
        }],
        &[],
    )
    .unwrap();
    let cas_of_copy: Vec<String> = db
        .entries(second.id, 0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.cas_id)
        .collect();
    t.note("removed", db.remove_location(loc.id).unwrap());
    t.note(
        "shared identities kept",
        cas_of_copy
            .iter()
            .map(|c| db.content_identity(c).unwrap().is_some())
            .collect::<Vec<_>>(),
    );
    t.note(
        "lone identity dropped",
        db.content_identity(&two_cas).unwrap().is_some(),
    );
    t.note("removed second", db.remove_location(second.id).unwrap());
    t.note(
        "identities left",
        cas_of_copy
            .iter()
            .map(|c| db.content_identity(c).unwrap().is_some())
            .collect::<Vec<_>>(),
    );
    t.note("issues left", db.issue_counts("gone").unwrap());
    t.note(
        "remove none",
        db.remove_location(second.id).map_err(|e| e.to_string()),
    );
    t.note("locations left", db.locations().unwrap());
    t
}

#[test]
fn postgres_answers_as_sqlite_does() {
    // Two trees made alike, one per store.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sqlite = scenario(&mut common::Sqlite::files().open(), one.path());
    let postgres = scenario(&mut common::Postgres::server().open(), two.path());
    assert!(sqlite.0.len() > 80);
    for (i, (s, p)) in sqlite.0.iter().zip(&postgres.0).enumerate() {
        assert_eq!(s, p, "answer {i} differs");
    }
    assert_eq!(sqlite.0.len(), postgres.0.len());
}

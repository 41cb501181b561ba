//! The README's layout section against the tree: every folder git tracks files in is listed,
//! one line each, and nothing listed is gone. Fixture and seed trees count as one folder.

use std::{collections::BTreeSet, process::Command};

use crate::helpers::repo_root;

/// Trees listed as one folder: what lies below them is data, not structure.
const COLLAPSED: [&str; 2] = ["tests/fixtures", "fuzz/seeds"];

/// The folders git tracks files in, with [`COLLAPSED`] trees as one; the root itself is left out.
fn tracked_folders() -> BTreeSet<String> {
    let output = Command::new("git").arg("ls-files").current_dir(repo_root()).output().expect("git runs");
    assert!(output.status.success(), "git ls-files: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("paths are UTF-8")
        .lines()
        .filter_map(|file| file.rsplit_once('/').map(|(folder, _)| folder.to_owned()))
        .map(|folder| match COLLAPSED.iter().find(|tree| folder.starts_with(&format!("{tree}/"))) {
            Some(tree) => (*tree).to_owned(),
            None => folder,
        })
        .collect()
}

/// The folders the README's `## Layout` code block lists: each line's first word, ending in `/`.
fn listed_folders() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme.split("\n## Layout\n").nth(1).expect("a ## Layout section");
    let block = section.split("```").nth(1).expect("a code block in the layout section");
    block
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|word| word.strip_suffix('/'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_lists_every_folder() {
    let (tracked, listed) = (tracked_folders(), listed_folders());
    let missing: Vec<_> = tracked.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&tracked).collect();
    assert!(missing.is_empty() && gone.is_empty(), "README layout: missing {missing:?}, listed but gone {gone:?}");
}

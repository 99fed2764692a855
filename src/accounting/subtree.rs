//! The child groups below the container's cgroup v1 memory group, and what their counters add to it.
//!
//! v1 counts an OOM kill (`memory.oom_control oom_kill`) only in the group of the killed process: the
//! kernel does not pass memory events up on v1. A workload that makes its own child memory group (a
//! batch runner, a nested container) and is OOM-killed there would show no kill in the container's
//! group. The same holds for `memory.failcnt` when a child hits its own limit (a child hitting the
//! container's limit bumps the container's counter: the kernel counts the failure on the counter whose
//! limit was hit). So each sample adds the growth of every descendant group present: a group that
//! existed at start contributes only its increase, a group that appears later all of its count, and a
//! group that is removed keeps what the samples saw of it. A group created and removed between two
//! samples takes its counters with it: nothing outside it kept them.
//!
//! A sample must stay cheap, so the tree is not walked every time. cgroupfs (kernfs) gives a directory
//! a link count of 2 plus its number of subdirectories, so one `fstat` per known group, through
//! directories held open, tells whether a group was added or removed anywhere in the tree; only then
//! is it walked again, and the walk is bounded ([`MAX_GROUPS`] groups, [`MAX_DEPTH`] levels). A group
//! removed and another made under the same parent between two samples leaves the count unchanged; the
//! final reading walks the tree regardless ([`Subtree::rescan`]). A filesystem that does not count
//! subdirectories (link count below 2) is walked at every sample.

use super::files::CounterFile;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// At most this many descendant groups are followed; more are a misuse, not a workload.
pub const MAX_GROUPS: usize = 256;
/// At most this many levels below the container's group.
pub const MAX_DEPTH: usize = 16;

/// What the descendants add to the group's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub oom_kills: u64,
    /// `memory.failcnt` plus `memory.memsw.failcnt`.
    pub limit_hits: u64,
}

impl Totals {
    fn add(self, other: Totals) -> Totals {
        Totals {
            oom_kills: self.oom_kills.saturating_add(other.oom_kills),
            limit_hits: self.limit_hits.saturating_add(other.limit_hits),
        }
    }

    /// The growth from `base`; a counter someone reset (gone backwards) adds nothing.
    fn since(self, base: Totals) -> Totals {
        Totals {
            oom_kills: self.oom_kills.saturating_sub(base.oom_kills),
            limit_hits: self.limit_hits.saturating_sub(base.limit_hits),
        }
    }
}

/// One descendant group, its directory and counter files held open.
struct Group {
    path: PathBuf,
    inode: u64,
    dir: File,
    links: u64,
    depth: usize,
    oom_control: Option<CounterFile>,
    failcnt: Option<CounterFile>,
    memsw_failcnt: Option<CounterFile>,
    /// The counters when the group was first seen: its values then if it existed at start, else 0.
    base: Totals,
    /// The counters at the latest sample that could read them.
    last: Totals,
}

impl Group {
    /// Re-reads the counters; a file that cannot be read (the group was removed: ENODEV) keeps its
    /// last value.
    fn refresh(&mut self) {
        if let Some(kills) = self.oom_control.as_mut().and_then(|f| f.keyed(["oom_kill"])).and_then(|[k]| k) {
            self.last.oom_kills = kills;
        }
        let failcnt = self.failcnt.as_mut().and_then(CounterFile::value);
        let memsw = self.memsw_failcnt.as_mut().and_then(CounterFile::value);
        if failcnt.is_some() || memsw.is_some() {
            self.last.limit_hits = failcnt.unwrap_or(0).saturating_add(memsw.unwrap_or(0));
        }
    }
}

/// The descendants of one v1 memory group.
pub struct Subtree {
    root: PathBuf,
    /// The group's own directory, held open for its link count.
    root_dir: Option<File>,
    root_links: u64,
    groups: Vec<Group>,
    /// What removed groups contributed while they were seen.
    gone: Totals,
    /// The first sample (the baseline) has been taken: groups found from now on are new.
    started: bool,
    walk_next: bool,
    said_too_many: bool,
}

impl Subtree {
    pub fn open(root: &Path) -> Subtree {
        let root_dir = open_dir(root).ok();
        Subtree {
            root: root.to_path_buf(),
            root_links: 0,
            root_dir,
            groups: Vec::new(),
            gone: Totals::default(),
            started: false,
            walk_next: true,
            said_too_many: false,
        }
    }

    /// The next sample walks the tree whatever the link counts say (the final reading).
    pub fn rescan(&mut self) {
        self.walk_next = true;
    }

    /// What the descendants added since the first sample (which is the baseline: it adds nothing).
    pub fn sample(&mut self) -> Totals {
        if self.root_dir.is_none() {
            return Totals::default();
        }
        if self.walk_next || self.changed() {
            self.walk();
            self.walk_next = false;
        }
        let mut total = self.gone;
        for group in &mut self.groups {
            group.refresh();
            total = total.add(group.last.since(group.base));
        }
        self.started = true;
        total
    }

    /// Has a group been added or removed below a known one? True when a link count cannot say.
    fn changed(&self) -> bool {
        let links = |dir: &File| dir.metadata().map_or(0, |m| m.nlink());
        let root_links = self.root_dir.as_ref().map_or(0, links);
        if root_links < 2 || root_links != self.root_links {
            return true;
        }
        self.groups.iter().any(|g| links(&g.dir) != g.links)
    }

    /// Finds the groups present now (bounded), keeps the known ones, opens the new ones and books the
    /// removed ones' contributions.
    fn walk(&mut self) {
        // The link count is taken before the directory is listed: a group made in between changes it
        // again and is found by the next sample.
        self.root_links = self.root_dir.as_ref().and_then(|d| d.metadata().ok()).map_or(0, |m| m.nlink());
        let mut known = std::mem::take(&mut self.groups);
        let mut found: Vec<Group> = Vec::new();
        let mut pending: Vec<(PathBuf, usize)> = vec![(self.root.clone(), 0)];
        let mut too_many = false;
        while let Some((dir, depth)) = pending.pop() {
            if depth >= MAX_DEPTH {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                // Every subdirectory of a v1 cgroup directory is a child group; d_type, no symlinks.
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if found.len() >= MAX_GROUPS {
                    too_many = true;
                    break;
                }
                let path = entry.path();
                let Ok(handle) = open_dir(&path) else { continue };
                let Ok(meta) = handle.metadata() else { continue };
                let group = match known.iter().position(|g| g.path == path && g.inode == meta.ino()) {
                    Some(i) => {
                        let mut group = known.swap_remove(i);
                        group.links = meta.nlink();
                        group
                    }
                    // The same name with another inode is a new group: the old one's count is booked
                    // below and the new one starts from zero.
                    None => self.new_group(path.clone(), handle, meta.ino(), meta.nlink(), depth + 1),
                };
                found.push(group);
                pending.push((path, depth + 1));
            }
        }
        if too_many && !self.said_too_many {
            self.said_too_many = true;
            crate::debug!(
                "accounting: more than {MAX_GROUPS} memory groups below {}; the others' OOM kills are not counted",
                self.root.display()
            );
        }
        for removed in known {
            crate::debug!("accounting: memory group {} is gone", removed.path.display());
            self.gone = self.gone.add(removed.last.since(removed.base));
        }
        self.groups = found;
    }

    fn new_group(&self, path: PathBuf, dir: File, inode: u64, links: u64, depth: usize) -> Group {
        let mut group = Group {
            oom_control: CounterFile::open(&path, "memory.oom_control"),
            failcnt: CounterFile::open(&path, "memory.failcnt"),
            memsw_failcnt: CounterFile::open(&path, "memory.memsw.failcnt"),
            path,
            inode,
            dir,
            links,
            depth,
            base: Totals::default(),
            last: Totals::default(),
        };
        group.refresh();
        if !self.started {
            // There before the workload: only its growth is the run's.
            group.base = group.last;
        }
        crate::debug!(
            "accounting: following memory group {} (level {}, {})",
            group.path.display(),
            group.depth,
            if self.started { "new: all of its counts" } else { "there at start: its growth" }
        );
        group
    }
}

/// A directory, opened without following a final symlink, for `fstat` and nothing else.
fn open_dir(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sentinit-subtree-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn group(dir: &Path, kills: u64, failcnt: u64) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("memory.oom_control"), format!("oom_kill_disable 0\nunder_oom 0\noom_kill {kills}\n"))
            .unwrap();
        std::fs::write(dir.join("memory.failcnt"), format!("{failcnt}\n")).unwrap();
    }

    #[test]
    fn baselines_new_groups_and_removed_groups() {
        let root = scratch("books");
        group(&root.join("old"), 4, 100);
        let mut tree = Subtree::open(&root);
        assert_eq!(tree.sample(), Totals::default(), "the baseline adds nothing");
        group(&root.join("old"), 5, 130);
        assert_eq!(tree.sample(), Totals { oom_kills: 1, limit_hits: 30 }, "an old group adds its growth");
        group(&root.join("old/new"), 2, 7);
        assert_eq!(tree.sample(), Totals { oom_kills: 3, limit_hits: 37 }, "a new group adds all of its count");
        std::fs::remove_dir_all(root.join("old/new")).unwrap();
        assert_eq!(tree.sample(), Totals { oom_kills: 3, limit_hits: 37 }, "a removed group keeps what was seen");
        // Removed and made again under the same name: a new group, whose count is all the run's.
        std::fs::remove_dir_all(root.join("old")).unwrap();
        group(&root.join("old"), 1, 0);
        tree.rescan();
        assert_eq!(tree.sample(), Totals { oom_kills: 4, limit_hits: 37 });
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_walk_is_bounded() {
        let root = scratch("bounded");
        let mut deep = root.clone();
        for _ in 0..MAX_DEPTH + 3 {
            deep = deep.join("d");
            group(&deep, 1, 0);
        }
        let mut tree = Subtree::open(&root);
        tree.sample();
        assert_eq!(tree.groups.len(), MAX_DEPTH);
        std::fs::remove_dir_all(&root).unwrap();
    }
}

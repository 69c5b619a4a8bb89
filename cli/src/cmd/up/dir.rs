//! Reading `kan up`'s directory: every YAML file parsed and validated, remembering each file's
//! last good version. A file caught mid-write — empty, or not YAML yet — is "not changed yet":
//! its previous version keeps serving and the file is reported, never treated as a deletion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kan_api::manifest::{KanObject, parse_manifests};

/// What one file says now, given its last good version.
#[derive(Debug, Clone)]
pub enum FileReading {
    /// Parsed and validated.
    Objects(Vec<KanObject>),
    /// Empty or unparseable while a good version is remembered: keep that one. The reason says
    /// what is wrong with the file now.
    NotChangedYet(String),
    /// Empty, with nothing remembered: contributes nothing yet.
    Empty,
    /// Refused: objects that fail validation, or a file that never parsed.
    Invalid(Vec<String>),
}

/// Judges a file's text; `known` is whether a good version of it is remembered.
pub fn judge(text: &str, known: bool) -> FileReading {
    if text.trim().is_empty() {
        return if known {
            FileReading::NotChangedYet("the file is empty".into())
        } else {
            FileReading::Empty
        };
    }
    match parse_manifests(text) {
        Ok(objects) => {
            let problems: Vec<String> = objects
                .iter()
                .filter_map(|o| {
                    kan_api::validate::object(o)
                        .err()
                        .map(|e| format!("{} {}: {e}", o.kind(), o.name()))
                })
                .collect();
            if problems.is_empty() {
                FileReading::Objects(objects)
            } else {
                FileReading::Invalid(problems)
            }
        }
        Err(e) if known => FileReading::NotChangedYet(format!("it does not parse yet ({e})")),
        Err(e) => FileReading::Invalid(vec![e.to_string()]),
    }
}

/// The directory as `kan up` serves it.
#[derive(Debug, Clone)]
pub struct DirState {
    pub objects: Vec<KanObject>,
    /// Changes whenever what is served would change (not when a file is mid-write).
    pub fingerprint: String,
    /// Files whose previous version keeps serving, with the reason.
    pub waiting: Vec<String>,
}

#[derive(Debug, Clone)]
struct GoodFile {
    text: String,
    objects: Vec<KanObject>,
}

/// Reads the directory, remembering the last good version of each file.
#[derive(Debug, Default)]
pub struct DirReader {
    good: BTreeMap<PathBuf, GoodFile>,
}

impl DirReader {
    /// Reads every `*.yaml`/`*.yml` of `dir`. Fails (remembering nothing new) when a file is
    /// refused or a reference between objects dangles; the error names each file and object.
    pub fn read(&mut self, dir: &Path) -> anyhow::Result<DirState> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let mut next = BTreeMap::new();
        let mut problems = Vec::new();
        let mut waiting = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                // Removed between listing and reading: gone, as a deletion should be.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    problems.push(format!("{}: cannot be read: {e}", file.display()));
                    continue;
                }
            };
            let known = self.good.get(&file);
            match judge(&text, known.is_some()) {
                FileReading::Objects(objects) => {
                    next.insert(file, GoodFile { text, objects });
                }
                FileReading::NotChangedYet(reason) => {
                    waiting.push(format!(
                        "{}: not changed yet: {reason}; its previous version keeps serving",
                        file.display()
                    ));
                    if let Some(good) = known {
                        next.insert(file, good.clone());
                    }
                }
                FileReading::Empty => {}
                FileReading::Invalid(reasons) => {
                    for reason in reasons {
                        problems.push(format!("{}: {reason}", file.display()));
                    }
                }
            }
        }
        // Each file is fine on its own; the set must also resolve its references.
        let origins: Vec<(String, &KanObject)> = next
            .iter()
            .flat_map(|(file, good): (&PathBuf, &GoodFile)| {
                good.objects
                    .iter()
                    .map(move |o| (file.display().to_string(), o))
            })
            .collect();
        let objects: Vec<(&str, &KanObject)> =
            origins.iter().map(|(f, o)| (f.as_str(), *o)).collect();
        problems.extend(
            kan_api::validate::references(&objects, kan_api::validate::Scope::Complete)
                .iter()
                .map(ToString::to_string),
        );
        if !problems.is_empty() {
            bail!(
                "invalid objects in {}:\n  {}",
                dir.display(),
                problems.join("\n  ")
            );
        }
        let mut objects = Vec::new();
        let mut all_text = String::new();
        for (file, good) in &next {
            objects.extend(good.objects.iter().cloned());
            all_text.push_str(&file.display().to_string());
            all_text.push('\0');
            all_text.push_str(&good.text);
        }
        self.good = next;
        Ok(DirState {
            objects,
            fingerprint: kan_api::bundle::sha256_hex(all_text.as_bytes()),
            waiting,
        })
    }
}

/// What changed in the directory's reported trouble since the last check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TroubleChange {
    /// A new or different problem: log it once.
    Now(String),
    /// The problem went away: log that things are back to normal.
    Fixed,
}

/// The directory's trouble as last reported, so it is logged when it changes, not every poll.
#[derive(Debug, Default)]
pub struct Trouble {
    current: Option<String>,
}

impl Trouble {
    /// Records the trouble seen now; says what changed, if anything.
    pub fn set(&mut self, now: Option<String>) -> Option<TroubleChange> {
        if now == self.current {
            return None;
        }
        let change = match &now {
            Some(text) => TroubleChange::Now(text.clone()),
            None => TroubleChange::Fixed,
        };
        self.current = now;
        Some(change)
    }

    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: editorial}
spec:
  strategy:
    type: operational
    operational:
      items: [{itemId: a}]
";

    const GATEWAY: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: feed}
spec:
  queues: [{name: editorial}]
";

    /// `kind/name` of each object, to compare what is served.
    fn names(objects: &[KanObject]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", o.kind(), o.name()))
            .collect()
    }

    #[test]
    fn an_empty_or_half_written_file_is_not_changed_yet_when_a_good_version_is_known() {
        assert!(
            matches!(judge("", true), FileReading::NotChangedYet(r) if r == "the file is empty")
        );
        assert!(matches!(
            judge(&QUEUE[..60], true),
            FileReading::NotChangedYet(_)
        ));
        assert!(matches!(judge("  \n", false), FileReading::Empty));
        assert!(matches!(
            judge(&QUEUE[..60], false),
            FileReading::Invalid(_)
        ));
        assert!(matches!(judge(QUEUE, false), FileReading::Objects(o) if o.len() == 1));
    }

    #[test]
    fn a_file_emptied_mid_write_keeps_serving_its_previous_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("queue.yaml");
        std::fs::write(&file, QUEUE).expect("write");
        let mut reader = DirReader::default();
        let first = reader.read(dir.path()).expect("read");
        assert_eq!(first.objects.len(), 1);

        std::fs::write(&file, "").expect("truncate");
        let mid = reader.read(dir.path()).expect("read");
        assert_eq!(names(&mid.objects), names(&first.objects), "not a deletion");
        assert_eq!(mid.fingerprint, first.fingerprint, "nothing to apply");
        assert_eq!(mid.waiting.len(), 1);
        assert!(
            mid.waiting[0].contains("not changed yet"),
            "{:?}",
            mid.waiting
        );

        std::fs::write(&file, &QUEUE[..60]).expect("half");
        let half = reader.read(dir.path()).expect("read");
        assert_eq!(names(&half.objects), ["RecallQueue/editorial"]);
        assert!(
            half.waiting[0].contains("does not parse yet"),
            "{:?}",
            half.waiting
        );

        std::fs::remove_file(&file).expect("delete");
        let gone = reader.read(dir.path()).expect("read");
        assert!(gone.objects.is_empty(), "a deleted file is a deletion");
        assert!(gone.waiting.is_empty());
    }

    fn experiment(traffic: i32) -> String {
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: exp}}\nspec:\n  gateway: feed\n  traffic: {traffic}\n  arms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50}}]\n"
        )
    }

    #[test]
    fn a_refused_file_names_itself_and_keeps_the_remembered_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("experiment.yaml");
        std::fs::write(&file, experiment(100)).expect("write");
        std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
        std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
        let mut reader = DirReader::default();
        let good = reader.read(dir.path()).expect("read");
        std::fs::write(&file, experiment(250)).expect("bad");
        let refused = reader.read(dir.path()).expect_err("traffic 250 is refused");
        let message = format!("{refused:#}");
        assert!(
            message.contains("experiment.yaml") && message.contains("traffic"),
            "{message}"
        );
        assert!(!message.contains("spec: spec:"), "{message}");
        std::fs::write(&file, "").expect("truncate");
        let after = reader.read(dir.path()).expect("read");
        assert_eq!(
            names(&after.objects),
            names(&good.objects),
            "the good version is still known"
        );
    }

    #[test]
    fn a_gateway_naming_a_missing_queue_is_refused_and_the_good_state_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
        let gateway = dir.path().join("gateway.yaml");
        std::fs::write(&gateway, GATEWAY).expect("write");
        let mut reader = DirReader::default();
        let good = reader.read(dir.path()).expect("read");
        std::fs::write(&gateway, GATEWAY.replace("editorial", "nope")).expect("edit");
        let refused = reader
            .read(dir.path())
            .expect_err("a dangling route is refused");
        let message = format!("{refused:#}");
        assert!(
            message.contains(&format!(
                "{}: RecallGateway feed: spec.queues[0].name: RecallQueue 'nope' does not exist",
                gateway.display()
            )),
            "{message}"
        );
        // Deleting the queue the gateway routes to dangles the same way.
        std::fs::write(&gateway, GATEWAY).expect("fix");
        std::fs::remove_file(dir.path().join("queue.yaml")).expect("delete");
        assert!(
            reader.read(dir.path()).is_err(),
            "the route now names nothing"
        );
        std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("restore");
        let back = reader.read(dir.path()).expect("read");
        assert_eq!(names(&back.objects), names(&good.objects));
    }

    #[test]
    fn trouble_is_reported_once_per_change_and_once_when_fixed() {
        let mut t = Trouble::default();
        assert_eq!(t.set(None), None);
        assert_eq!(
            t.set(Some("x".into())),
            Some(TroubleChange::Now("x".into()))
        );
        assert_eq!(t.set(Some("x".into())), None, "not every poll");
        assert_eq!(
            t.set(Some("y".into())),
            Some(TroubleChange::Now("y".into()))
        );
        assert_eq!(t.set(None), Some(TroubleChange::Fixed));
        assert_eq!(t.current(), None);
    }
}

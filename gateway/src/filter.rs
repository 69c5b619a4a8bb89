//! Filters over the merged list. Each returns what it kept and what it removed, so the pipeline
//! can check that nothing vanished and count removals per filter.

use std::collections::{HashMap, HashSet};

use crate::merge::Merged;

/// The outcome of one filter: every input candidate is in exactly one of the two lists, and
/// `kept` keeps the input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterResult<'a> {
    pub kept: Vec<Merged<'a>>,
    pub removed: Vec<Merged<'a>>,
}

/// A filter stage.
pub trait Filter {
    /// Stable name, used as the metric label.
    fn name(&self) -> &'static str;

    /// False skips the filter (everything kept).
    fn enable(&self) -> bool {
        true
    }

    /// The filter's work.
    fn filter<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a>;

    /// Runs the filter under a span and counts what it removed.
    fn run<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a> {
        if !self.enable() {
            return FilterResult {
                kept: candidates,
                removed: Vec::new(),
            };
        }
        let span = tracing::trace_span!("filter", name = self.name(), input = candidates.len());
        let _enter = span.enter();
        let result = self.filter(candidates);
        if !result.removed.is_empty() {
            metrics::counter!(crate::metrics::FILTERED, "filter" => self.name())
                .increment(result.removed.len() as u64);
        }
        result
    }
}

/// Runs the stages in order, each over what the previous kept.
pub fn run_all<'a>(filters: &[&dyn Filter], candidates: Vec<Merged<'a>>) -> Vec<Merged<'a>> {
    filters
        .iter()
        .fold(candidates, |kept, filter| filter.run(kept).kept)
}

fn partition<'a>(
    candidates: Vec<Merged<'a>>,
    mut keep: impl FnMut(&Merged<'a>) -> bool,
) -> FilterResult<'a> {
    let (kept, removed) = candidates.into_iter().partition(|c| keep(c));
    FilterResult { kept, removed }
}

/// Drops the items the request asked to exclude (already seen, already shown).
pub struct ExcludeFilter<'a> {
    ids: HashSet<&'a str>,
}

impl<'a> ExcludeFilter<'a> {
    pub fn new(ids: &'a [String]) -> Self {
        Self {
            ids: ids.iter().map(String::as_str).collect(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

impl Filter for ExcludeFilter<'_> {
    fn name(&self) -> &'static str {
        "exclude"
    }
    fn enable(&self) -> bool {
        !self.ids.is_empty()
    }
    fn filter<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a> {
        partition(candidates, |c| !self.ids.contains(c.item_id))
    }
}

/// Drops the config's blocklisted items.
pub struct BlocklistFilter<'a> {
    ids: &'a HashSet<String>,
}

impl<'a> BlocklistFilter<'a> {
    pub fn new(ids: &'a HashSet<String>) -> Self {
        Self { ids }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

impl Filter for BlocklistFilter<'_> {
    fn name(&self) -> &'static str {
        "blocklist"
    }
    fn enable(&self) -> bool {
        !self.ids.is_empty()
    }
    fn filter<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a> {
        partition(candidates, |c| !self.ids.contains(c.item_id))
    }
}

/// Keeps at most `max` candidates credited to any one queue, crediting each candidate to its
/// first (best-position) source, so one prolific queue cannot crowd out the others.
pub struct MaxPerSourceFilter {
    max: Option<usize>,
}

impl MaxPerSourceFilter {
    pub fn new(max: Option<usize>) -> Self {
        Self { max }
    }
}

impl Filter for MaxPerSourceFilter {
    fn name(&self) -> &'static str {
        "max_per_source"
    }
    fn enable(&self) -> bool {
        self.max.is_some()
    }
    fn filter<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a> {
        let max = self.max.unwrap_or(usize::MAX);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        partition(candidates, |c| {
            let Some(&source) = c.sources.first() else {
                return true;
            };
            let n = counts.entry(source).or_insert(0);
            *n += 1;
            *n <= max
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn m<'a>(id: &'a str, sources: &[&'a str]) -> Merged<'a> {
        Merged {
            item_id: id,
            score: 1.0,
            sources: sources.iter().copied().collect(),
        }
    }

    fn ids<'a>(v: &[Merged<'a>]) -> Vec<&'a str> {
        v.iter().map(|m| m.item_id).collect()
    }

    #[test]
    fn exclude_removes_exactly_the_requested_ids() {
        let exclude = vec!["b".to_string(), "zz".to_string()];
        let r =
            ExcludeFilter::new(&exclude).run(vec![m("a", &["q"]), m("b", &["q"]), m("c", &["q"])]);
        assert_eq!(ids(&r.kept), ["a", "c"]);
        assert_eq!(ids(&r.removed), ["b"]);
    }

    #[test]
    fn blocklist_removes_blocked_ids() {
        let blocked: HashSet<String> = ["a".to_string()].into();
        let r = BlocklistFilter::new(&blocked).run(vec![m("a", &["q"]), m("b", &["q"])]);
        assert_eq!(ids(&r.kept), ["b"]);
        assert_eq!(ids(&r.removed), ["a"]);
    }

    #[test]
    fn max_per_source_credits_each_item_to_its_first_source() {
        let input = vec![
            m("a", &["x"]),
            m("b", &["x", "y"]),
            m("c", &["y", "x"]),
            m("d", &["x"]),
            m("e", &["y"]),
        ];
        let r = MaxPerSourceFilter::new(Some(2)).run(input);
        assert_eq!(ids(&r.kept), ["a", "b", "c", "e"]);
        assert_eq!(ids(&r.removed), ["d"]);
    }

    #[test]
    fn disabled_filters_keep_everything() {
        let input = vec![m("a", &["x"]), m("b", &["x"])];
        assert_eq!(MaxPerSourceFilter::new(None).run(input.clone()).kept, input);
        assert_eq!(ExcludeFilter::new(&[]).run(input.clone()).kept, input);
    }

    proptest! {
        #[test]
        fn every_candidate_is_either_kept_or_removed_and_order_is_kept(
            items in prop::collection::vec((0u8..30, 0u8..4), 0..60),
            exclude in prop::collection::vec(0u8..30, 0..10),
            max in prop::option::of(1usize..5),
        ) {
            let names: Vec<(String, String)> = items.iter().enumerate()
                .map(|(i, (id, src))| (format!("i{id}-{i}"), format!("q{src}"))).collect();
            let input: Vec<Merged> = names.iter().map(|(id, src)| m(id, &[src])).collect();
            let exclude: Vec<String> = exclude.iter().enumerate().map(|(i, id)| format!("i{id}-{i}")).collect();
            let filters: [&dyn Filter; 2] = [&ExcludeFilter::new(&exclude), &MaxPerSourceFilter::new(max)];
            for f in filters {
                let r = f.run(input.clone());
                prop_assert_eq!(r.kept.len() + r.removed.len(), input.len());
                let kept_in_input_order: Vec<&Merged> = input.iter().filter(|c| r.kept.contains(c)).collect();
                prop_assert_eq!(kept_in_input_order, r.kept.iter().collect::<Vec<_>>());
            }
            let r = MaxPerSourceFilter::new(max).run(input.clone());
            for q in 0..4 {
                let n = r.kept.iter().filter(|c| c.sources[0] == format!("q{q}").as_str()).count();
                prop_assert!(n <= max.unwrap_or(usize::MAX));
            }
        }
    }
}

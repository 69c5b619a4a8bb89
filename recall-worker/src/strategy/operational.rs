//! Operational recall: editor-pinned items from the spec, each live within its optional
//! `[start, end)` window; no bundle. Scores are the spec's, else by position (first = 1.0).
//! Cold start: the same list for everyone.

use futures::future::BoxFuture;
use kan_api::crd::OperationalSettings;
use kan_api::validate::parse_rfc3339;

use super::{Query, Strategy};
use crate::bundle::Catalogue;
use crate::error::{Error, Result};
use crate::index::Hit;

struct Pin {
    score: f32,
    start: Option<i64>,
    end: Option<i64>,
}

pub struct Operational {
    catalogue: Catalogue,
    pins: Vec<Pin>,
}

impl Operational {
    pub fn new(settings: &OperationalSettings) -> Result<Self> {
        let n = settings.items.len().max(1) as f32;
        let mut ids = Vec::new();
        let mut pins = Vec::new();
        for (i, item) in settings.items.iter().enumerate() {
            if ids.contains(&item.item_id) {
                continue; // the first pin of an item wins
            }
            let time = |t: &Option<String>, field: &str| -> Result<Option<i64>> {
                t.as_deref()
                    .map(|s| {
                        parse_rfc3339(s).ok_or_else(|| {
                            Error::Config(format!("strategy.operational.items[{i}].{field}: '{s}' is not an RFC 3339 time"))
                        })
                    })
                    .transpose()
            };
            pins.push(Pin {
                score: item.score.map(|s| s as f32).unwrap_or(1.0 - i as f32 / n),
                start: time(&item.start, "start")?,
                end: time(&item.end, "end")?,
            });
            ids.push(item.item_id.clone());
        }
        Ok(Self {
            catalogue: Catalogue::new(ids)?,
            pins,
        })
    }

    /// Pins live at `now`, best score first (ties keep spec order).
    pub fn live(&self, now: i64) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .pins
            .iter()
            .enumerate()
            .filter(|(_, p)| p.start.is_none_or(|s| s <= now) && p.end.is_none_or(|e| now < e))
            .map(|(i, p)| Hit {
                item: i as u32,
                score: p.score,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits
    }
}

impl Strategy for Operational {
    fn name(&self) -> &'static str {
        "operational"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move { Ok(self.live(query.now)) })
    }
}

#[cfg(test)]
mod tests {
    use kan_api::crd::PinnedItem;

    use super::*;

    fn pin(id: &str, score: Option<f64>, start: Option<&str>, end: Option<&str>) -> PinnedItem {
        PinnedItem {
            item_id: id.into(),
            score,
            start: start.map(Into::into),
            end: end.map(Into::into),
        }
    }

    #[test]
    fn pins_are_live_only_inside_their_window() {
        let op = Operational::new(&OperationalSettings {
            items: vec![
                pin("a", None, None, None),
                pin(
                    "b",
                    Some(5.0),
                    Some("2026-01-01T00:00:00Z"),
                    Some("2026-01-02T00:00:00Z"),
                ),
                pin("c", None, Some("2030-01-01T00:00:00Z"), None),
            ],
        })
        .unwrap();
        let jan1_noon = parse_rfc3339("2026-01-01T12:00:00Z").unwrap();
        let ids = |hits: Vec<Hit>| {
            hits.iter()
                .map(|h| op.catalogue.id(h.item).unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(op.live(jan1_noon)), vec!["b", "a"]);
        assert_eq!(ids(op.live(jan1_noon + 86_400)), vec!["a"]);
    }
}

//! Per-strategy hyper-parameters given as `--param KEY=VALUE`. Each trainer declares the keys it
//! reads, so a typo or a key meant for another strategy is an error instead of a silent default.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Numeric hyper-parameters by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HyperParams(BTreeMap<String, f64>);

impl HyperParams {
    /// Parses `KEY=VALUE` pairs (VALUE a number); a key given twice keeps the last value.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Self> {
        let mut map = BTreeMap::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                Error::InvalidInput(format!(
                    "--param `{pair}` is not KEY=VALUE (e.g. --param alpha=0.8)"
                ))
            })?;
            let value: f64 = value.trim().parse().map_err(|_| {
                Error::InvalidInput(format!("--param {key}: `{value}` is not a number"))
            })?;
            if !value.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "--param {key}: the value must be finite"
                )));
            }
            map.insert(key.trim().to_string(), value);
        }
        Ok(HyperParams(map))
    }

    /// Fails when a key is not one `strategy` reads, listing the ones it does.
    pub fn check(&self, strategy: &str, known: &[&str]) -> Result<()> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) if known.is_empty() => Err(Error::InvalidInput(format!(
                "--param {k}: {strategy} has no tunable parameters"
            ))),
            Some(k) => Err(Error::InvalidInput(format!(
                "--param {k}: {strategy} does not read it; it reads {}",
                known.join(", ")
            ))),
        }
    }

    /// The value of `key`, or `default`.
    pub fn f64(&self, key: &str, default: f64) -> f64 {
        self.0.get(key).copied().unwrap_or(default)
    }

    /// A positive `f64` (learning rates, temperatures, half-lives).
    pub fn positive(&self, key: &str, default: f64) -> Result<f64> {
        let v = self.f64(key, default);
        if v > 0.0 {
            Ok(v)
        } else {
            Err(Error::InvalidInput(format!(
                "--param {key}={v}: must be greater than 0"
            )))
        }
    }

    /// A finite `f64` ≥ 0 (weight decay).
    pub fn non_negative(&self, key: &str, default: f64) -> Result<f64> {
        let v = self.f64(key, default);
        if v >= 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err(Error::InvalidInput(format!(
                "--param {key}={v}: must be a number ≥ 0"
            )))
        }
    }

    /// A probability in [0, 1) (dropout rates).
    pub fn dropout(&self, key: &str, default: f64) -> Result<f64> {
        let v = self.f64(key, default);
        if (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            Err(Error::InvalidInput(format!(
                "--param {key}={v}: must be in [0, 1)"
            )))
        }
    }

    /// A count ≥ 1 (neighbours, window sizes); fractional values are an error.
    pub fn count(&self, key: &str, default: usize) -> Result<usize> {
        let v = self.f64(key, default as f64);
        if v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
            Ok(v as usize)
        } else {
            Err(Error::InvalidInput(format!(
                "--param {key}={v}: must be a whole number ≥ 1"
            )))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Searches the best value of a 1-D grid (higher `eval` is better), widening it geometrically
/// by `factor` past whichever edge holds the best, at most `max_widen` times per side.
pub fn search_widening<F>(
    grid: &[f64],
    factor: f64,
    max_widen: usize,
    mut eval: F,
) -> Result<(f64, f64)>
where
    F: FnMut(f64) -> Result<f64>,
{
    let mut tried: Vec<(f64, f64)> = Vec::new();
    for &x in grid {
        tried.push((x, eval(x)?));
    }
    for _ in 0..max_widen {
        tried.sort_by(|a, b| a.0.total_cmp(&b.0));
        let best = tried
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
            .ok_or_else(|| Error::InvalidInput("an empty grid".into()))?;
        let next = if best == 0 {
            tried[0].0 / factor
        } else if best == tried.len() - 1 {
            tried[best].0 * factor
        } else {
            break;
        };
        tried.push((next, eval(next)?));
    }
    tried
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| Error::InvalidInput("an empty grid".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_into_numbers_and_unknown_keys_are_named_with_the_known_ones() {
        let h = HyperParams::parse(&["alpha=0.8", "top_n = 100"]).unwrap();
        assert_eq!(h.f64("alpha", 1.0), 0.8);
        assert_eq!(h.count("top_n", 200).unwrap(), 100);
        assert_eq!(h.f64("beta", 0.5), 0.5);
        assert!(h.check("itemcf", &["alpha", "beta", "top_n"]).is_ok());
        let err = h.check("popular", &["half_life_days"]).unwrap_err();
        assert!(err.to_string().contains("--param alpha"), "{err}");
        assert!(err.to_string().contains("half_life_days"), "{err}");
        let err = h.check("operational", &[]).unwrap_err();
        assert!(err.to_string().contains("no tunable"), "{err}");
    }

    #[test]
    fn malformed_pairs_and_out_of_range_values_are_rejected_with_the_key() {
        for bad in ["alpha", "alpha=x", "alpha=NaN", "alpha=inf"] {
            let err = HyperParams::parse(&[bad]).unwrap_err().to_string();
            assert!(err.contains("alpha"), "{bad}: {err}");
        }
        let h = HyperParams::parse(&["top_n=2.5", "lr=0", "window=0"]).unwrap();
        assert!(
            h.count("top_n", 1)
                .unwrap_err()
                .to_string()
                .contains("top_n")
        );
        assert!(
            h.positive("lr", 0.1)
                .unwrap_err()
                .to_string()
                .contains("lr")
        );
        assert!(h.count("window", 5).is_err());
        let h = HyperParams::parse(&["weight_decay=-0.1", "zero=0"]).unwrap();
        let err = h.non_negative("weight_decay", 0.0).unwrap_err().to_string();
        assert!(err.contains("weight_decay") && err.contains("≥ 0"), "{err}");
        assert_eq!(h.non_negative("zero", 1.0).unwrap(), 0.0);
    }
}

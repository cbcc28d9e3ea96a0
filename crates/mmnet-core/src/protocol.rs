//! The paper's evaluation protocol (Sec. IV-A-3, pinned in SPEC): stratified 8:2 split;
//! D_u = every training normal plus training anomalies making up `contamination` of D_u;
//! D_l = `labeled` further training anomalies; the rest of the training anomalies unused.
//!
//! With known types (Sec. IV-E), the anomalies that enter training (D_l and the
//! contamination of D_u) are all of a known type, and the test set keeps the test normals
//! and only the anomalies of the *other* types: what an operator faces after labeling a
//! few incidents of one or two kinds.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{CoreError, Result};

/// Protocol settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolConfig {
    /// Share of each class held out for testing. Default 0.2.
    pub test_fraction: f64,
    /// Labeled anomalies in D_l. Default 30.
    pub labeled: usize,
    /// Share of anomalies in D_u. Default 0.02.
    pub contamination: f64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            test_fraction: 0.2,
            labeled: 30,
            contamination: 0.02,
        }
    }
}

/// Known/unknown anomaly setting: per-row type and the types treated as known.
#[derive(Debug, Clone, Copy)]
pub struct KnownType<'a> {
    /// Anomaly type of every row (ignored for normal rows).
    pub types: &'a [i64],
    /// The known types (one or more); anomalies of any other type are unseen in training.
    pub known: &'a [i64],
}

impl KnownType<'_> {
    /// Whether row `i`'s anomaly type is a known one.
    pub fn is_known(&self, i: usize) -> bool {
        self.known.contains(&self.types[i])
    }

    /// The known types as `1` or `1, 2`, for messages and reports.
    pub fn describe(&self) -> String {
        let v: Vec<String> = self.known.iter().map(|k| k.to_string()).collect();
        v.join(", ")
    }
}

/// Row indices of one run's three sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// D_u.
    pub unlabeled: Vec<usize>,
    /// D_l.
    pub labeled: Vec<usize>,
    /// Test set.
    pub test: Vec<usize>,
}

/// Draws one run's split.
pub fn split(
    labels: &[bool],
    known: Option<KnownType<'_>>,
    cfg: &ProtocolConfig,
    seed: u64,
) -> Result<Split> {
    if !(0.0..1.0).contains(&cfg.test_fraction) {
        return Err(CoreError::param("test_fraction", "must be in [0, 1)"));
    }
    if !(0.0..1.0).contains(&cfg.contamination) {
        return Err(CoreError::param("contamination", "must be in [0, 1)"));
    }
    if let Some(k) = known
        && k.types.len() != labels.len()
    {
        return Err(CoreError::Shape {
            what: "anomaly types".into(),
            expected: format!("{} rows", labels.len()),
            got: format!("{} rows", k.types.len()),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normals: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    let mut anomalies: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    normals.shuffle(&mut rng);
    anomalies.shuffle(&mut rng);
    let n_test_norm = (normals.len() as f64 * cfg.test_fraction).round() as usize;
    let n_test_anom = (anomalies.len() as f64 * cfg.test_fraction).round() as usize;
    let (test_norm, train_norm) = normals.split_at(n_test_norm);
    let (test_anom, train_anom) = anomalies.split_at(n_test_anom);

    if let Some(k) = known
        && k.known.is_empty()
    {
        return Err(CoreError::param("known types", "needs at least one type"));
    }
    let is_known = |i: &usize| known.is_none_or(|k| k.is_known(*i));
    let train_pool: Vec<usize> = train_anom.iter().copied().filter(is_known).collect();
    if train_pool.len() < cfg.labeled {
        return Err(CoreError::Data(format!(
            "the training split has {} anomalies{}, fewer than the {} labeled anomalies asked for",
            train_pool.len(),
            known.map_or(String::new(), |k| format!(" of type {}", k.describe())),
            cfg.labeled
        )));
    }
    let (labeled, rest) = train_pool.split_at(cfg.labeled);
    let want = (cfg.contamination / (1.0 - cfg.contamination) * train_norm.len() as f64).round();
    let n_contam = (want as usize).min(rest.len());
    let mut unlabeled: Vec<usize> = train_norm.to_vec();
    unlabeled.extend_from_slice(&rest[..n_contam]);
    unlabeled.sort_unstable();

    let mut test: Vec<usize> = test_norm.to_vec();
    test.extend(
        test_anom
            .iter()
            .copied()
            .filter(|i| known.is_none_or(|k| !k.is_known(*i))),
    );
    test.sort_unstable();
    let mut labeled = labeled.to_vec();
    labeled.sort_unstable();
    Ok(Split {
        unlabeled,
        labeled,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n_norm: usize, n_anom: usize) -> Vec<bool> {
        let mut l = vec![false; n_norm];
        l.extend(vec![true; n_anom]);
        l
    }

    #[test]
    fn sizes_follow_the_paper() {
        let l = labels(1000, 200);
        let s = split(&l, None, &ProtocolConfig::default(), 7).unwrap();
        // 200 test normals + 40 test anomalies.
        assert_eq!(s.test.len(), 240);
        assert_eq!(s.labeled.len(), 30);
        // 800 training normals; 2 % contamination -> 800 * 0.02 / 0.98 = 16.3 -> 16.
        let contam = s.unlabeled.iter().filter(|&&i| l[i]).count();
        assert_eq!(contam, 16);
        assert_eq!(s.unlabeled.len(), 816);
        assert!(s.labeled.iter().all(|&i| l[i]));
    }

    #[test]
    fn sets_are_disjoint_and_seeded() {
        let l = labels(500, 100);
        let a = split(&l, None, &ProtocolConfig::default(), 1).unwrap();
        let b = split(&l, None, &ProtocolConfig::default(), 1).unwrap();
        let c = split(&l, None, &ProtocolConfig::default(), 2).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut all: Vec<usize> = a
            .unlabeled
            .iter()
            .chain(&a.labeled)
            .chain(&a.test)
            .copied()
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a row is in two sets");
    }

    #[test]
    fn known_type_keeps_unknown_types_for_testing() {
        let l = labels(500, 150);
        // Types 1 and 2 alternate among anomalies.
        let types: Vec<i64> = (0..650)
            .map(|i| if i < 500 { 0 } else { 1 + (i % 2) as i64 })
            .collect();
        let k = KnownType {
            types: &types,
            known: &[1],
        };
        let s = split(&l, Some(k), &ProtocolConfig::default(), 3).unwrap();
        assert!(s.labeled.iter().all(|&i| types[i] == 1));
        assert!(
            s.unlabeled
                .iter()
                .filter(|&&i| l[i])
                .all(|&i| types[i] == 1)
        );
        assert!(s.test.iter().filter(|&&i| l[i]).all(|&i| types[i] == 2));
        assert!(s.test.iter().any(|&i| l[i]));
    }

    #[test]
    fn two_known_types_leave_the_third_for_testing() {
        let l = labels(500, 300);
        let types: Vec<i64> = (0..800)
            .map(|i| if i < 500 { 0 } else { 1 + (i % 3) as i64 })
            .collect();
        let k = KnownType {
            types: &types,
            known: &[1, 3],
        };
        let s = split(&l, Some(k), &ProtocolConfig::default(), 5).unwrap();
        let train_anom = s.labeled.iter().chain(&s.unlabeled).filter(|&&i| l[i]);
        assert!(train_anom.clone().all(|&i| types[i] != 2));
        // Both known types are drawn, not just the first one listed.
        for t in [1, 3] {
            assert!(s.labeled.iter().any(|&i| types[i] == t), "type {t}");
        }
        assert!(s.test.iter().filter(|&&i| l[i]).all(|&i| types[i] == 2));
        let none = KnownType {
            types: &types,
            known: &[],
        };
        assert!(split(&l, Some(none), &ProtocolConfig::default(), 5).is_err());
    }

    #[test]
    fn too_few_anomalies_is_an_error() {
        let l = labels(100, 10);
        assert!(matches!(
            split(&l, None, &ProtocolConfig::default(), 0),
            Err(CoreError::Data(_))
        ));
    }
}

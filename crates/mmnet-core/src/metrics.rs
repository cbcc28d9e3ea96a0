//! Ranking metrics: AUC-ROC and AUC-PR (average precision as scikit-learn defines it).
//! Higher score = more anomalous; label 1 = anomaly. Ties are handled exactly (no
//! dependence on the order of tied rows).

use std::cmp::Ordering;

/// Indices of `scores` sorted by descending score (NaN sorts last).
fn order_desc(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
        }
    });
    idx
}

/// Groups of tied scores in descending order: for each group, (positives, negatives).
fn tie_groups(scores: &[f32], labels: &[bool]) -> Vec<(usize, usize)> {
    let idx = order_desc(scores);
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<f32> = None;
    for i in idx {
        let s = scores[i];
        let same = prev.is_some_and(|p| p == s || (p.is_nan() && s.is_nan()));
        if !same {
            groups.push((0, 0));
        }
        let g = groups.last_mut().expect("pushed above");
        if labels[i] {
            g.0 += 1
        } else {
            g.1 += 1
        }
        prev = Some(s);
    }
    groups
}

/// Area under the ROC curve; ties count one half (the Mann-Whitney statistic).
/// `None` when one class is absent.
pub fn auc_roc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels differ in length"
    );
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Walking from the highest score down, each positive beats every negative below it.
    let mut neg_below = neg as f64;
    let mut wins = 0.0;
    for (p, n) in tie_groups(scores, labels) {
        neg_below -= n as f64;
        wins += p as f64 * (neg_below + 0.5 * n as f64);
    }
    Some(wins / (pos as f64 * neg as f64))
}

/// Average precision: `sum_n (R_n - R_{n-1}) P_n` over distinct thresholds, as
/// `sklearn.metrics.average_precision_score`. `None` without positives.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels differ in length"
    );
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut ap = 0.0;
    for (p, n) in tie_groups(scores, labels) {
        tp += p;
        fp += n;
        if p > 0 {
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (p as f64 / pos as f64) * precision;
        }
    }
    Some(ap)
}

/// The ROC curve as (false-positive rate, true-positive rate) points, one per distinct
/// threshold from the highest score down, starting at (0, 0) and ending at (1, 1). Its
/// trapezoidal area is [`auc_roc`]. `None` when one class is absent.
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Option<Vec<(f64, f64)>> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels differ in length"
    );
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut pts = vec![(0.0, 0.0)];
    for (p, n) in tie_groups(scores, labels) {
        tp += p;
        fp += n;
        pts.push((fp as f64 / neg, tp as f64 / pos));
    }
    Some(pts)
}

/// The precision-recall curve as (recall, precision) points, one per distinct threshold
/// from the highest score down (the steps whose weighted sum is [`average_precision`]).
/// `None` without positives.
pub fn pr_curve(scores: &[f32], labels: &[bool]) -> Option<Vec<(f64, f64)>> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels differ in length"
    );
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut pts = Vec::new();
    for (p, n) in tie_groups(scores, labels) {
        tp += p;
        fp += n;
        pts.push((tp as f64 / pos, tp as f64 / (tp + fp) as f64));
    }
    Some(pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_agree_with_the_areas() {
        let scores = [0.9f32, 0.8, 0.8, 0.7, 0.5, 0.4, 0.4, 0.1];
        let labels = b(&[1, 0, 1, 1, 0, 0, 1, 0]);
        let roc = roc_curve(&scores, &labels).unwrap();
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
        let trapezoid: f64 = roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((trapezoid - auc_roc(&scores, &labels).unwrap()).abs() < 1e-12);
        let pr = pr_curve(&scores, &labels).unwrap();
        let mut prev_recall = 0.0;
        let steps: f64 = pr
            .iter()
            .map(|&(r, p)| {
                let a = (r - prev_recall) * p;
                prev_recall = r;
                a
            })
            .sum();
        assert!((steps - average_precision(&scores, &labels).unwrap()).abs() < 1e-12);
        assert_eq!(pr.last().unwrap().0, 1.0);
        assert!(roc_curve(&scores, &[true; 8]).is_none());
        assert!(pr_curve(&scores, &[false; 8]).is_none());
    }

    fn b(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&x| x == 1).collect()
    }

    #[test]
    fn perfect_and_inverted_ranking() {
        let s = [0.9, 0.8, 0.2, 0.1];
        assert_eq!(auc_roc(&s, &b(&[1, 1, 0, 0])), Some(1.0));
        assert_eq!(auc_roc(&s, &b(&[0, 0, 1, 1])), Some(0.0));
        assert_eq!(average_precision(&s, &b(&[1, 1, 0, 0])), Some(1.0));
    }

    /// sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75,
    /// average_precision_score(same) = 0.8333...
    #[test]
    fn sklearn_doc_example() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = b(&[0, 0, 1, 1]);
        assert!((auc_roc(&s, &l).unwrap() - 0.75).abs() < 1e-12);
        assert!((average_precision(&s, &l).unwrap() - 5.0 / 6.0).abs() < 1e-12);
    }

    /// Hand-computed with ties. Scores (label): 0.9(1) 0.5(1) 0.5(0) 0.5(0) 0.1(1) 0.1(0).
    /// ROC: pairs pos x neg = 3 x 3 = 9. pos 0.9 beats 3; pos 0.5 beats 1 (0.1) + ties 2 x 0.5;
    /// pos 0.1 ties 1 x 0.5 -> (3 + 2 + 0.5) / 9 = 5.5 / 9.
    /// AP: thresholds 0.9 -> R 1/3, P 1; 0.5 -> R 2/3, P 2/4; 0.1 -> R 1, P 3/6.
    /// AP = 1/3 * 1 + 1/3 * 0.5 + 1/3 * 0.5 = 2/3.
    #[test]
    fn ties_hand_computed() {
        let s = [0.5, 0.9, 0.1, 0.5, 0.5, 0.1];
        let l = b(&[1, 1, 1, 0, 0, 0]);
        assert!((auc_roc(&s, &l).unwrap() - 5.5 / 9.0).abs() < 1e-12);
        assert!((average_precision(&s, &l).unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn all_tied_is_chance_roc_and_prevalence_ap() {
        let s = [1.0; 5];
        let l = b(&[1, 0, 0, 1, 0]);
        assert_eq!(auc_roc(&s, &l), Some(0.5));
        assert!((average_precision(&s, &l).unwrap() - 0.4).abs() < 1e-12);
    }

    #[test]
    fn undefined_without_both_classes() {
        assert_eq!(auc_roc(&[0.1, 0.2], &b(&[0, 0])), None);
        assert_eq!(auc_roc(&[0.1, 0.2], &b(&[1, 1])), None);
        assert_eq!(average_precision(&[0.1, 0.2], &b(&[0, 0])), None);
    }

    #[test]
    fn invariant_to_order_of_rows() {
        let s = [0.3, 0.3, 0.7, 0.1, 0.7, 0.3];
        let l = b(&[1, 0, 1, 0, 0, 1]);
        let (r1, a1) = (auc_roc(&s, &l), average_precision(&s, &l));
        let perm = [5, 3, 1, 0, 4, 2];
        let s2: Vec<f32> = perm.iter().map(|&i| s[i]).collect();
        let l2: Vec<bool> = perm.iter().map(|&i| l[i]).collect();
        assert_eq!(auc_roc(&s2, &l2), r1);
        assert_eq!(average_precision(&s2, &l2), a1);
    }
}

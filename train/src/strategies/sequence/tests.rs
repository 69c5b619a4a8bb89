use super::*;
use crate::data::{Dataset, Interaction};
use crate::progress::Progress;
use crate::split::Split;
use crate::strategies::{HyperParams, TrainOptions};

fn history(rows: &[(u32, u32, i64)], n_users: usize) -> History {
    let rows: Vec<Interaction> = rows
        .iter()
        .enumerate()
        .map(|(s, &(user, item, ts))| Interaction {
            user,
            item,
            ts,
            weight: 1.0,
            seq: s as u32,
        })
        .collect();
    History::build(&rows, n_users)
}

#[test]
fn windows_cover_every_transition_once_and_predict_the_next_item_at_each_position() {
    // One user who saw 1, 2, 3, 4, 5 in that order: most recent first [5, 4, 3, 2, 1].
    let h = history(&[(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4), (0, 5, 5)], 1);
    let w = windows(&h, 2);
    assert_eq!(w, vec![(0, 0), (0, 2)]);
    let b = make_batch(&h, &w, 2).unwrap();
    // Window 0 reads [4, 3] and predicts 5 after 4 and 4 after 3; window 2 reads [2, 1].
    assert_eq!(
        b.ids.to_vec2::<i64>().unwrap(),
        vec![vec![4, 3], vec![2, 1]]
    );
    assert_eq!(b.targets, vec![5, 4, 3, 2]);
    assert_eq!(b.rows.to_vec1::<u32>().unwrap(), vec![0, 1, 2, 3]);
    // A window shorter than L is padded on the older side and its padding is not a row.
    let b = make_batch(&h, &[(0, 2)], 3).unwrap();
    assert_eq!(b.ids.to_vec2::<i64>().unwrap(), vec![vec![2, 1, 0]]);
    assert_eq!(b.mask.to_vec2::<f32>().unwrap(), vec![vec![1.0, 1.0, 0.0]]);
    assert_eq!(b.targets, vec![3, 2]);
    // A user with one item has no transition.
    assert!(windows(&history(&[(0, 1, 1)], 1), 4).is_empty());
}

#[test]
fn sampled_softmax_over_the_whole_catalogue_equals_the_full_softmax() {
    let net = Net::new(
        Shape {
            n_items: 9,
            dim: 8,
            heads: 2,
            blocks: 1,
            max_len: 4,
        },
        3,
    )
    .unwrap();
    let h = history(
        &[
            (0, 1, 1),
            (0, 2, 2),
            (0, 3, 3),
            (1, 8, 1),
            (1, 0, 2),
            (1, 5, 3),
        ],
        2,
    );
    let b = make_batch(&h, &windows(&h, 4), 4).unwrap();
    let full = loss(&net, &b, 0.2, None, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // Every item is a negative, so each row's target appears twice: once as the positive and
    // once masked as an accidental hit.
    let all: Vec<u32> = (0..9).collect();
    let sampled = loss(&net, &b, 0.2, Some(&all), None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((full - sampled).abs() < 1e-5, "{full} vs {sampled}");
}

/// Users walk a ring of 12 items: whatever they saw last, the next item is its successor.
fn ring(n_items: u32, users: u32, len: u32) -> (Dataset, History) {
    let mut ds = Dataset::default();
    for i in 0..n_items {
        ds.items.intern(&format!("i{i}"));
    }
    let mut rows = Vec::new();
    for u in 0..users {
        ds.users.intern(&format!("u{u}"));
        let start = (u * 5) % n_items;
        for t in 0..len {
            rows.push((u, (start + t) % n_items, t as i64));
        }
    }
    let h = history(&rows, users as usize);
    ds.interactions = rows
        .iter()
        .enumerate()
        .map(|(s, &(user, item, ts))| Interaction {
            user,
            item,
            ts,
            weight: 1.0,
            seq: s as u32,
        })
        .collect();
    (ds, h)
}

#[test]
fn training_learns_a_next_item_rule_and_the_loss_falls() {
    let (ds, h) = ring(12, 36, 10);
    let split = Split {
        train: ds.interactions.clone(),
        ..Split::default()
    };
    let opts = TrainOptions {
        epochs: Some(40),
        dim: 16,
        seed: 1,
        history_length: 5,
        progress: false,
        params: HyperParams::parse(&["learning_rate=0.01", "dropout=0", "batch=16"]).unwrap(),
    };
    let progress = Progress::new(false);
    let ctx = Context {
        ds: &ds,
        split: &split,
        history: &h,
        opts: &opts,
        progress: &progress,
    };
    let model = train(&ctx).unwrap();
    assert!(model.full_softmax);
    let first = model.curve[0].train_loss;
    let last = model.curve[model.curve.len() - 1].train_loss;
    assert!(last < 0.5 * first, "loss fell from {first} to only {last}");
    // Histories ending (most recent first) in each item k: the top item is k + 1.
    let hists: Vec<Vec<u32>> = (0..12u32)
        .map(|k| vec![k, (k + 11) % 12, (k + 10) % 12])
        .collect();
    let queries: Vec<Query> = hists
        .iter()
        .map(|hh| Query {
            user: None,
            history: hh,
            exclude: &[],
        })
        .collect();
    let lists = model.recall(&queries, 1).unwrap();
    let right = lists
        .iter()
        .enumerate()
        .filter(|(k, l)| l.first() == Some(&((*k as u32 + 1) % 12)))
        .count();
    assert!(right >= 11, "next item first for only {right} of 12");
}

#[test]
fn unknown_and_out_of_range_params_are_refused() {
    let (ds, h) = ring(12, 4, 4);
    let split = Split::default();
    let progress = Progress::new(false);
    for bad in [&["dropout=1"][..], &["heads=3"][..]] {
        let opts = TrainOptions {
            epochs: Some(1),
            dim: 16,
            params: HyperParams::parse(bad).unwrap(),
            ..TrainOptions::default()
        };
        let ctx = Context {
            ds: &ds,
            split: &split,
            history: &h,
            opts: &opts,
            progress: &progress,
        };
        assert!(train(&ctx).is_err(), "{bad:?}");
    }
}

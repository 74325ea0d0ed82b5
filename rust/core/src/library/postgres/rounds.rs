//! Writes given as a list, applied as sets with SQLite's order kept.
//!
//! SQLite's store runs one statement per item, in order; PostgreSQL's runs
//! one statement per set (every statement is a round trip). A set must not
//! name one row twice: an `UPDATE ... FROM unnest(...)` would apply one of
//! the two at random, and an upsert refuses. So a list is cut into rounds:
//! the first mention of each row in the first round, the second in the
//! second, and so on. Each round is one statement, and a row's writes are
//! applied in their order, triggers included (a cas_id stored twice links
//! and unlinks as SQLite does). A list without repeats, the usual case, is
//! one round.

use std::collections::HashMap;
use std::hash::Hash;

/// `items` in rounds by `key` (see the module comment).
pub(super) fn rounds<T, K: Hash + Eq>(items: &[T], key: impl Fn(&T) -> K) -> Vec<Vec<&T>> {
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(items.len());
    let mut out: Vec<Vec<&T>> = Vec::new();
    for item in items {
        let round = seen.entry(key(item)).or_insert(0);
        if out.len() <= *round {
            out.push(Vec::new());
        }
        out[*round].push(item);
        *round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeats_go_to_later_rounds_in_order() {
        let items = [(1, 'a'), (2, 'b'), (1, 'c'), (1, 'd'), (3, 'e')];
        let rounds = super::rounds(&items, |i| i.0);
        let names: Vec<String> = rounds
            .iter()
            .map(|r| r.iter().map(|i| i.1).collect())
            .collect();
        assert_eq!(names, ["abe", "c", "d"]);
        assert!(super::rounds(&items[..0], |i| i.0).is_empty());
    }
}

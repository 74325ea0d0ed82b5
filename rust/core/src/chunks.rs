//! Batching: split `len` items into index ranges.
//!
//! Used by the jobs (write N entries per transaction) and by item-limit
//! splitting (a job over too many items becomes several jobs).

use std::ops::Range;

use crate::error::{Error, Result};

/// Consecutive ranges of at most `size` items; all but the last are full.
pub fn fixed(len: usize, size: usize) -> Result<Vec<Range<usize>>> {
    if size == 0 {
        return Err(Error::InvalidArgument(
            "chunk size must be at least 1".into(),
        ));
    }
    Ok((0..len)
        .step_by(size)
        .map(|start| start..(start + size).min(len))
        .collect())
}

/// The fewest ranges of at most `size` items, with lengths differing by at
/// most one (so no tiny last chunk): what item-limit splitting wants.
pub fn balanced(len: usize, size: usize) -> Result<Vec<Range<usize>>> {
    if size == 0 {
        return Err(Error::InvalidArgument(
            "chunk size must be at least 1".into(),
        ));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let count = len.div_ceil(size);
    let (base, extra) = (len / count, len % count);
    let mut start = 0;
    Ok((0..count)
        .map(|i| {
            let n = base + usize::from(i < extra);
            let range = start..start + n;
            start += n;
            range
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_covers_everything_in_order() {
        for len in 0..50 {
            for size in 1..12 {
                let ranges = fixed(len, size).unwrap();
                let flat: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..len).collect::<Vec<_>>());
                assert!(ranges.iter().all(|r| r.len() <= size && !r.is_empty()));
                if let Some((last, rest)) = ranges.split_last() {
                    assert!(rest.iter().all(|r| r.len() == size));
                    assert!(last.len() <= size);
                }
            }
        }
    }

    #[test]
    fn balanced_is_minimal_and_even() {
        for len in 0..60 {
            for size in 1..13 {
                let ranges = balanced(len, size).unwrap();
                let flat: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..len).collect::<Vec<_>>());
                assert_eq!(ranges.len(), len.div_ceil(size));
                let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                if let (Some(min), Some(max)) = (lens.iter().min(), lens.iter().max()) {
                    assert!(max - min <= 1 && *max <= size && *min >= 1);
                }
            }
        }
    }

    #[test]
    fn zero_size_is_an_error() {
        assert!(fixed(3, 0).is_err());
        assert!(balanced(3, 0).is_err());
    }
}
